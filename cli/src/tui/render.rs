//! Drawing: pure functions from client-core's data to ratatui lines, and
//! the frame's layout.
//!
//! Everything another member wrote (text, names, topics, emoji) passes
//! through [`sanitize`] before it reaches the terminal: no control or
//! bidirectional-override character of theirs can move the cursor, rewrite
//! the screen or make one message look like another.

use std::collections::HashMap;

use conclave_client::{ChannelInfo, DeviceInfo, HistoryEntry, PublicChannel};
use jiff::tz::TimeZone;
use jiff::{Timestamp, civil::Date};
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style, Stylize};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, List, ListItem, ListState, Paragraph, Wrap};
use unicode_width::{UnicodeWidthChar, UnicodeWidthStr};

use super::app::{App, PaneMetrics, Scroll, Tone};
use super::command::COMMANDS;
use super::worker::{Listing, View};

pub(crate) use crate::sanitize::sanitize;

/// Message times in the reader's time zone, and what "today" is there.
#[derive(Debug, Clone)]
pub(crate) struct Clock {
    tz: TimeZone,
    today: Date,
    /// Unix seconds, for "5 min ago".
    now: u64,
}

impl Clock {
    /// The system's time zone, now.
    pub(crate) fn local() -> Self {
        let tz = TimeZone::system();
        let now = Timestamp::now();
        let today = now.to_zoned(tz.clone()).date();
        let now = u64::try_from(now.as_second()).unwrap_or(0);
        Self { tz, today, now }
    }

    /// Noon UTC on `today`.
    #[cfg(test)]
    pub(crate) fn utc_on(today: Date) -> Self {
        let noon = today
            .at(12, 0, 0, 0)
            .to_zoned(TimeZone::UTC)
            .map_or(0, |at| {
                u64::try_from(at.timestamp().as_second()).unwrap_or(0)
            });
        Self {
            tz: TimeZone::UTC,
            today,
            now: noon,
        }
    }

    fn date_and_time(&self, at: u64) -> (Date, String) {
        let seconds = i64::try_from(at).unwrap_or(i64::MAX);
        match Timestamp::from_second(seconds) {
            Ok(ts) => {
                let zoned = ts.to_zoned(self.tz.clone());
                (zoned.date(), zoned.strftime("%H:%M").to_string())
            }
            Err(_) => (self.today, "--:--".to_owned()),
        }
    }

    fn day_label(&self, date: Date) -> String {
        if date == self.today {
            "Today".to_owned()
        } else if self.today.yesterday().ok() == Some(date) {
            "Yesterday".to_owned()
        } else {
            date.strftime("%a %Y-%m-%d").to_string()
        }
    }
}

/// How entries are laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// A channel: by day, replies marked with their thread.
    Channel,
    /// One thread: the first message and its replies.
    Thread,
    /// Search results, best first, each with its channel and full date.
    Search,
}

const DIM: Style = Style::new().fg(Color::DarkGray);
const AUTHORS: [Color; 6] = [
    Color::Cyan,
    Color::Magenta,
    Color::Blue,
    Color::LightMagenta,
    Color::LightBlue,
    Color::LightCyan,
];

fn author_style(user: &str, me: &str) -> Style {
    let color = if user == me {
        Color::Green
    } else {
        let hash = user
            .bytes()
            .fold(0usize, |h, b| h.wrapping_mul(31) + b as usize);
        AUTHORS[hash % AUTHORS.len()]
    };
    Style::new().fg(color).add_modifier(Modifier::BOLD)
}

/// The lines of the message pane for `entries`, wrapped to `width` columns.
pub(crate) fn message_lines(
    entries: &[HistoryEntry],
    mode: Mode,
    me: &str,
    clock: &Clock,
    width: usize,
) -> Vec<Line<'static>> {
    let seq_of: HashMap<&str, u64> = entries.iter().map(|e| (e.id.as_str(), e.seq)).collect();
    let mut replies: HashMap<&str, usize> = HashMap::new();
    for entry in entries {
        if let Some(parent) = &entry.parent {
            *replies.entry(parent.as_str()).or_default() += 1;
        }
    }
    let mut lines = Vec::new();
    let mut last_day = None;
    for entry in entries {
        let (day, time) = clock.date_and_time(entry.at);
        if mode != Mode::Search && last_day != Some(day) {
            last_day = Some(day);
            lines.push(Line::styled(format!("── {} ──", clock.day_label(day)), DIM));
        }
        let mut prefix: Vec<Span<'static>> = Vec::new();
        if mode == Mode::Search {
            prefix.push(Span::styled(
                format!("[{}] ", sanitize(&entry.channel)),
                Style::new().fg(Color::Cyan),
            ));
        }
        if let Some(parent) = entry.parent.as_deref().filter(|_| mode != Mode::Search) {
            let number = seq_of
                .get(parent)
                .map_or_else(|| "?".to_owned(), |s| s.to_string());
            prefix.push(Span::styled(
                format!("  \u{21b3} #{number} \u{b7} "),
                Style::new().fg(Color::Cyan),
            ));
        }
        prefix.push(Span::styled(
            format!("#{} ", entry.seq),
            Style::new().add_modifier(Modifier::BOLD),
        ));
        let when = if mode == Mode::Search {
            format!("{} {time} ", day.strftime("%Y-%m-%d"))
        } else {
            format!("{time} ")
        };
        prefix.push(Span::styled(when, DIM));
        prefix.push(Span::styled(
            sanitize(&entry.sender),
            author_style(&entry.sender, me),
        ));
        prefix.push(Span::raw(": "));
        let indent: usize = prefix.iter().map(|s| s.content.width()).sum();

        let mentioned = entry.mentions.iter().any(|m| m == me) && entry.sender != me;
        let text_style = if mentioned {
            Style::new().fg(Color::Yellow)
        } else {
            Style::new()
        };
        let gone = Style::new()
            .fg(Color::DarkGray)
            .add_modifier(Modifier::ITALIC);
        let mut body: Vec<Vec<Span<'static>>> = if entry.deleted {
            vec![vec![Span::styled("[message deleted]", gone)]]
        } else if entry.unsupported {
            vec![vec![Span::styled(
                "[unsupported message: update conclave to read it]",
                gone,
            )]]
        } else {
            entry
                .text
                .split('\n')
                .map(|line| vec![Span::styled(sanitize(line), text_style)])
                .collect()
        };
        let mut suffix = Vec::new();
        if entry.edited && !entry.deleted {
            suffix.push(Span::styled(" (edited)", DIM));
        }
        let count = replies.get(entry.id.as_str()).copied().unwrap_or(0);
        if count > 0 && mode == Mode::Channel {
            let label = if count == 1 { "reply" } else { "replies" };
            suffix.push(Span::styled(
                format!("  [{count} {label}: /thread {}]", entry.seq),
                Style::new().fg(Color::Cyan),
            ));
        }
        if let Some(last) = body.last_mut() {
            last.extend(suffix);
        }
        if let Some(file) = entry.file.as_ref().filter(|_| !entry.deleted) {
            let label = Span::styled(
                format!(
                    "[file: {} ({})]",
                    sanitize(&file.name),
                    crate::human_size(file.size)
                ),
                Style::new().fg(Color::Cyan),
            );
            if entry.text.is_empty() {
                // No caption: the file is the message.
                if let Some(first) = body.first_mut() {
                    first.insert(0, label);
                }
            } else {
                body.push(vec![label]);
            }
        }
        let mut first = true;
        for line in body {
            let spans = if std::mem::take(&mut first) {
                let mut spans = prefix.clone();
                spans.extend(line);
                spans
            } else {
                let mut spans = vec![Span::raw(" ".repeat(indent))];
                spans.extend(line);
                spans
            };
            lines.extend(wrap(spans, width, indent));
        }
        if !entry.deleted && !entry.reactions.is_empty() {
            let mut spans = vec![Span::raw(" ".repeat(indent))];
            for (i, reaction) in entry.reactions.iter().enumerate() {
                if i > 0 {
                    spans.push(Span::raw("  "));
                }
                let mine = reaction.users.iter().any(|u| u == me);
                let style = if mine {
                    Style::new().fg(Color::Yellow).add_modifier(Modifier::BOLD)
                } else {
                    Style::new().fg(Color::Yellow)
                };
                let n = reaction.users.len();
                spans.push(Span::styled(
                    format!("{} {n}", sanitize(&reaction.emoji)),
                    style,
                ));
                if n <= 3 {
                    spans.push(Span::styled(
                        format!(" ({})", sanitize(&reaction.users.join(", "))),
                        DIM,
                    ));
                }
            }
            lines.extend(wrap(spans, width, indent));
        }
    }
    lines
}

/// Breaks styled text into lines of at most `width` columns, at spaces
/// where it can; continuation lines start with `indent` spaces.
pub(crate) fn wrap(spans: Vec<Span<'static>>, width: usize, indent: usize) -> Vec<Line<'static>> {
    let width = width.max(1);
    let indent = indent.min(width / 2);
    let mut done: Vec<Vec<(char, Style)>> = Vec::new();
    let mut line: Vec<(char, Style)> = Vec::new();
    let mut used = 0;
    // The start of the line's content (after the indent of a continuation).
    let mut start = 0;
    // Where the last word on this line begins.
    let mut word_start: Option<usize> = None;
    for span in &spans {
        for c in span.content.chars() {
            let w = c.width().unwrap_or(0);
            if w > 0 && used + w > width && line.len() > start {
                let carry_from = word_start.filter(|&i| {
                    let carried: usize =
                        line[i..].iter().map(|(c, _)| c.width().unwrap_or(0)).sum();
                    // Only when a word moves whole and leaves something behind.
                    let left_behind = line[start..i].iter().any(|(c, _)| *c != ' ');
                    left_behind && indent + carried + w <= width
                });
                let carried = match carry_from {
                    Some(i) => line.split_off(i),
                    None => Vec::new(),
                };
                while line.len() > start && line.last().is_some_and(|(c, _)| *c == ' ') {
                    line.pop();
                }
                done.push(std::mem::take(&mut line));
                line = vec![(' ', Style::new()); indent];
                start = indent;
                line.extend(carried);
                used = line.iter().map(|(c, _)| c.width().unwrap_or(0)).sum();
                word_start = None;
                if c == ' ' && line.len() == start {
                    continue; // no space at the start of a continuation
                }
            }
            if c == ' ' {
                word_start = Some(line.len() + 1);
            }
            line.push((c, span.style));
            used += w;
        }
    }
    done.push(line);
    done.into_iter()
        .map(|cells| {
            let mut out: Vec<Span<'static>> = Vec::new();
            let mut text = String::new();
            let mut style = None;
            for (c, s) in cells {
                if style.is_some_and(|current| current != s) {
                    out.push(Span::styled(
                        std::mem::take(&mut text),
                        style.unwrap_or_default(),
                    ));
                }
                style = Some(s);
                text.push(c);
            }
            if !text.is_empty() {
                out.push(Span::styled(text, style.unwrap_or_default()));
            }
            Line::from(out)
        })
        .collect()
}

/// One channel in the list: name, unread count, and what else matters.
pub(crate) fn channel_label(channel: &ChannelInfo) -> Line<'static> {
    let mut style = Style::new();
    if channel.unread > 0 {
        style = style.add_modifier(Modifier::BOLD);
    }
    if !channel.active || channel.archived {
        style = style.fg(Color::DarkGray);
    }
    let mut spans = vec![Span::styled(sanitize(&channel.name), style)];
    if channel.unread > 0 {
        spans.push(Span::styled(
            format!(" ({})", channel.unread),
            Style::new().fg(Color::Yellow).add_modifier(Modifier::BOLD),
        ));
    }
    if !channel.active {
        // Left or removed: client-core records only that this device is out
        // of the group (the CLI's `channel list` says the same).
        spans.push(Span::styled(" (not a member)", DIM));
    } else if channel.archived {
        spans.push(Span::styled(" (archived)", DIM));
    }
    Line::from(spans)
}

/// The channel list: channels, then a heading and the direct messages.
/// Returns the items and which of them is the selected channel.
pub(crate) fn channel_items(
    channels: &[ChannelInfo],
    selected: Option<&str>,
) -> (Vec<ListItem<'static>>, Option<usize>) {
    let mut items = Vec::new();
    let mut at = None;
    let mut dm_heading = false;
    for channel in channels {
        if channel.direct && !dm_heading {
            dm_heading = true;
            items.push(ListItem::new(Line::styled(
                "Direct messages",
                DIM.add_modifier(Modifier::BOLD),
            )));
        }
        if selected == Some(channel.name.as_str()) {
            at = Some(items.len());
        }
        items.push(ListItem::new(channel_label(channel)));
    }
    (items, at)
}

/// `/browse`: each public channel with its member count, whether you are
/// in it, and its topic; names in a column.
pub(crate) fn directory_lines(channels: &[PublicChannel], width: usize) -> Vec<Line<'static>> {
    let names: Vec<String> = channels.iter().map(|c| sanitize(&c.name)).collect();
    let column = names.iter().map(|n| n.width()).max().unwrap_or(0) + 2;
    let mut lines = Vec::new();
    for (channel, name) in channels.iter().zip(names) {
        let n = channel.members;
        let mut spans = vec![
            Span::styled(
                format!("{name:<column$}"),
                Style::new().add_modifier(Modifier::BOLD),
            ),
            Span::styled(
                format!("({n} member{})", if n == 1 { "" } else { "s" }),
                DIM,
            ),
        ];
        if channel.joined {
            spans.push(Span::styled("  [joined]", Style::new().fg(Color::Green)));
        }
        if channel.archived {
            spans.push(Span::styled("  [archived]", DIM));
        }
        if !channel.topic.is_empty() {
            spans.push(Span::raw(format!("  {}", sanitize(&channel.topic))));
        }
        lines.extend(wrap(spans, width, column));
    }
    lines
}

/// `/devices`: one line each, as `conclave device list` prints them; this
/// device stands out, revoked ones fade.
pub(crate) fn device_lines(devices: &[DeviceInfo], now: u64, width: usize) -> Vec<Line<'static>> {
    let mut lines = Vec::new();
    for device in devices {
        let style = if device.current {
            Style::new().fg(Color::Green).add_modifier(Modifier::BOLD)
        } else if device.revoked_at.is_some() {
            DIM
        } else {
            Style::new()
        };
        let text = sanitize(&crate::describe_device(device, now));
        lines.extend(wrap(vec![Span::styled(text, style)], width, 2));
    }
    lines
}

/// `/help`: commands, then keys.
pub(crate) fn help_lines(width: usize) -> Vec<Line<'static>> {
    let bold = Style::new().add_modifier(Modifier::BOLD);
    let mut lines = vec![Line::styled("Commands", bold)];
    let column = COMMANDS
        .iter()
        .chain(KEYS)
        .map(|(name, _)| name.width())
        .max()
        .unwrap_or(0)
        + 2;
    for (usage, what) in COMMANDS {
        let spans = vec![
            Span::styled(format!("  {usage:<column$}"), Style::new().fg(Color::Cyan)),
            Span::raw(*what),
        ];
        lines.extend(wrap(spans, width, column + 2));
    }
    lines.push(Line::raw(""));
    lines.push(Line::styled("Keys", bold));
    for (keys, what) in KEYS {
        let spans = vec![
            Span::styled(format!("  {keys:<column$}"), Style::new().fg(Color::Cyan)),
            Span::raw(*what),
        ];
        lines.extend(wrap(spans, width, column + 2));
    }
    lines.push(Line::raw(""));
    lines.extend(wrap(
        vec![Span::styled(
            "Any other line is sent to the channel (in a thread: replies in it). \
             Start with // to send a line beginning with /.",
            DIM,
        )],
        width,
        0,
    ));
    lines
}

const KEYS: &[(&str, &str)] = &[
    ("Enter", "send the line, or run the command"),
    (
        "Tab, Shift-Tab",
        "next, previous channel (also Alt-Down/Alt-Up, Ctrl-N/Ctrl-P); after /name, Tab completes the command",
    ),
    (
        "PgUp, PgDn",
        "scroll messages (Shift-Up/Down: a line; Ctrl-End: newest)",
    ),
    ("Up, Down", "earlier lines you sent"),
    (
        "Esc",
        "back to the channel from a thread, search, help, /browse or /devices; cancels /revoke's prompt",
    ),
    (
        "Ctrl-U, Ctrl-K, Ctrl-W",
        "delete to start, to end, the word before",
    ),
    ("Alt-Enter", "a new line in the message"),
    ("Ctrl-L", "redraw the screen"),
    ("Ctrl-C", "quit"),
];

/// Lines drawn for the message pane, kept while nothing they show changed.
#[derive(Debug, Default)]
pub(crate) struct LineCache {
    key: Option<(u64, usize, Date)>,
    lines: Vec<Line<'static>>,
}

/// Draws the whole screen and records the message pane's metrics in `app`.
pub(crate) fn draw(frame: &mut Frame<'_>, app: &mut App, clock: &Clock, cache: &mut LineCache) {
    let area = frame.area();
    let banner_height = if app.alerts.is_empty() { 0 } else { 2 };
    let [header, banner, body, composer, status] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Length(banner_height),
        Constraint::Min(3),
        Constraint::Length(3),
        Constraint::Length(1),
    ])
    .areas(area);
    // A quarter of the screen, or what the longest label needs (with the
    // selection mark and the borders) up to a third of it: "general (not a
    // member)" is read whole, not cut.
    let widest = app
        .channels
        .iter()
        .map(|c| channel_label(c).width() + 4)
        .max()
        .unwrap_or(0);
    let widest = u16::try_from(widest).unwrap_or(u16::MAX);
    let list_width = widest
        .max(area.width / 4)
        .clamp(14, (area.width / 3).clamp(14, 30));
    let [list, pane] =
        Layout::horizontal([Constraint::Length(list_width), Constraint::Min(10)]).areas(body);

    draw_header(frame, app, header);
    if let Some(alert) = app.alerts.last() {
        let more = if app.alerts.len() > 1 {
            format!(" ({} alerts)", app.alerts.len())
        } else {
            String::new()
        };
        let text = format!("{alert}{more}  /dismiss when read");
        let style = Style::new()
            .fg(Color::White)
            .bg(Color::Red)
            .add_modifier(Modifier::BOLD);
        frame.render_widget(
            Paragraph::new(text).style(style).wrap(Wrap { trim: true }),
            banner,
        );
    }

    let (items, at) = channel_items(&app.channels, app.selected.as_deref());
    let empty = items.is_empty();
    let channel_list = List::new(items)
        .block(Block::bordered().title(" Channels "))
        .highlight_style(Style::new().add_modifier(Modifier::REVERSED))
        .highlight_symbol("> ");
    let mut state = ListState::default().with_selected(at);
    frame.render_stateful_widget(channel_list, list, &mut state);
    if empty && !app.syncing {
        let inner = Block::bordered().inner(list);
        frame.render_widget(
            Paragraph::new(
                "No channels yet: /create NAME, /browse public ones, or ask to be invited.",
            )
            .style(DIM)
            .wrap(Wrap { trim: true }),
            inner,
        );
    }

    draw_messages(frame, app, clock, cache, pane);
    draw_composer(frame, app, composer);
    draw_status(frame, app, status);
}

fn draw_header(frame: &mut Frame<'_>, app: &App, area: Rect) {
    let mut spans = vec![
        Span::styled(" conclave ", Style::new().fg(Color::Black).bg(Color::Cyan)),
        Span::raw(" "),
        Span::styled(sanitize(&app.me), author_style(&app.me, &app.me)),
    ];
    if let Some(channel) = app.selected_channel() {
        spans.push(Span::styled(" \u{2502} ", DIM));
        let kind = if channel.direct {
            "direct message "
        } else {
            ""
        };
        spans.push(Span::styled(kind, DIM));
        spans.push(Span::raw(sanitize(&channel.name)).bold());
        if !channel.topic.is_empty() {
            spans.push(Span::raw(format!(" \u{2014} {}", sanitize(&channel.topic))));
        }
    }
    let busy = match (app.syncing, app.pending) {
        (true, _) => " syncing\u{2026}".to_owned(),
        (false, 0) => String::new(),
        (false, 1) => " sending\u{2026}".to_owned(),
        (false, n) => format!(" sending {n}\u{2026}"),
    };
    let [left, right] = Layout::horizontal([
        Constraint::Min(1),
        Constraint::Length(busy.width() as u16 + 1),
    ])
    .areas(area);
    frame.render_widget(Paragraph::new(Line::from(spans)), left);
    frame.render_widget(Paragraph::new(busy).style(DIM), right);
}

fn draw_messages(
    frame: &mut Frame<'_>,
    app: &mut App,
    clock: &Clock,
    cache: &mut LineCache,
    area: Rect,
) {
    let channel = app.selected.clone().unwrap_or_default();
    let title = match &app.view {
        View::Channel => {
            let note = match app.selected_channel() {
                Some(c) if !c.active => " (not a member: read-only)",
                Some(c) if c.archived => " (archived: read-only)",
                _ => "",
            };
            format!(" {}{note} ", sanitize(&channel))
        }
        View::Thread { seq } => {
            format!(
                " thread of #{seq} in {} \u{b7} Esc returns ",
                sanitize(&channel)
            )
        }
        View::Search(query) => {
            let found = if app.loaded() {
                format!("{} found", app.listing.len())
            } else {
                "searching\u{2026}".to_owned()
            };
            format!(
                " search: {} \u{b7} {found} \u{b7} Esc returns ",
                sanitize(&query.words)
            )
        }
        View::Help => " help \u{b7} Esc returns ".to_owned(),
        View::Browse => {
            let found = if app.loaded() {
                format!("{} listed", app.listing.len())
            } else {
                "loading\u{2026}".to_owned()
            };
            format!(
                " public channels \u{b7} {found} \u{b7} /join NAME joins one \u{b7} Esc returns "
            )
        }
        View::Devices => {
            let found = if app.loaded() {
                format!("{} listed", app.listing.len())
            } else {
                "loading\u{2026}".to_owned()
            };
            format!(
                " devices of {} \u{b7} {found} \u{b7} /revoke ID signs one out \u{b7} Esc returns ",
                sanitize(&app.me)
            )
        }
    };
    let mut block = Block::bordered().title(title);
    if app.unseen_below && app.scroll != Scroll::Pinned {
        block = block.title_bottom(
            Line::styled(
                " \u{2193} new messages: PgDn ",
                Style::new().fg(Color::Yellow),
            )
            .right_aligned(),
        );
    }
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let width = inner.width as usize;
    let height = inner.height as usize;

    let placeholder = |text: &str| vec![Line::styled(text.to_owned(), DIM)];
    let help;
    let lines: &[Line<'static>] = if app.view == View::Help {
        help = help_lines(width);
        &help
    } else if !app.loaded() {
        help = placeholder("loading\u{2026}");
        &help
    } else if app.listing.is_empty() {
        help = match (&app.view, app.selected.is_some()) {
            (View::Search(_), _) => placeholder("No messages found."),
            (View::Browse, _) => {
                placeholder("No public channels yet: /create NAME --public TOPIC makes one.")
            }
            (View::Devices, _) => placeholder("The relay listed no devices."),
            (_, true) => placeholder("No messages yet. Type below and press Enter."),
            (_, false) => placeholder("Type /help for commands."),
        };
        &help
    } else {
        let key = (app.generation, width, clock.today);
        if cache.key != Some(key) {
            cache.lines = match &app.listing {
                Listing::Messages(entries) => {
                    let mode = match app.view {
                        View::Thread { .. } => Mode::Thread,
                        View::Search(_) => Mode::Search,
                        _ => Mode::Channel,
                    };
                    message_lines(entries, mode, &app.me, clock, width)
                }
                Listing::PublicChannels(channels) => directory_lines(channels, width),
                Listing::Devices(devices) => device_lines(devices, clock.now, width),
            };
            cache.key = Some(key);
        }
        &cache.lines
    };
    let total = lines.len();
    let bottom = total.saturating_sub(height);
    let top = match app.scroll {
        Scroll::Pinned => bottom,
        Scroll::Top(top) => top.min(bottom),
    };
    // Scrolled to the end of what is loaded: follow new lines from here on.
    // (Not while loading: a search must open at its best match.)
    let settled = app.view == View::Help || app.loaded();
    if settled && top >= bottom {
        app.scroll = Scroll::Pinned;
        app.unseen_below = false;
    }
    app.metrics = PaneMetrics {
        lines: total,
        height,
    };
    let visible = lines[top..(top + height).min(total)].to_vec();
    frame.render_widget(Paragraph::new(visible), inner);
}

fn draw_composer(frame: &mut Frame<'_>, app: &App, area: Rect) {
    if let Some(step_up) = &app.step_up {
        // Nothing of what is typed is drawn, not even how much: the line
        // stays empty, the cursor at its start.
        let block = Block::bordered()
            .title(sanitize(&step_up.question()))
            .border_style(Style::new().fg(Color::Yellow));
        let inner = block.inner(area);
        frame.render_widget(block, area);
        if inner.width > 0 && inner.height > 0 {
            frame.set_cursor_position((inner.x, inner.y));
        }
        return;
    }
    let channel = app.selected_channel();
    let title = match (&app.view, channel) {
        (_, None) => " type /help for commands ".to_owned(),
        (_, Some(c)) if !c.active => {
            format!(" not a member of {}: read-only ", sanitize(&c.name))
        }
        (_, Some(c)) if c.archived => format!(" {} is archived: read-only ", sanitize(&c.name)),
        (View::Thread { seq }, Some(_)) => format!(" reply in the thread of #{seq} "),
        (_, Some(c)) => format!(" message {} ", sanitize(&c.name)),
    };
    let mut block = Block::bordered().title(title);
    if let Some(hint) = app.command_hint() {
        block = block.title_bottom(Line::styled(sanitize(&hint), Style::new().fg(Color::Cyan)));
    }
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let (shown, column) = app.composer.visible(inner.width as usize);
    frame.render_widget(Paragraph::new(shown), inner);
    if inner.width > 0 && inner.height > 0 {
        let x = inner.x + (column as u16).min(inner.width - 1);
        frame.set_cursor_position((x, inner.y));
    }
}

fn draw_status(frame: &mut Frame<'_>, app: &App, area: Rect) {
    let line = match &app.status {
        Some(status) => {
            let (label, style) = match status.tone {
                Tone::Info => ("", Style::new()),
                Tone::Warning => (
                    "",
                    Style::new().fg(Color::Yellow).add_modifier(Modifier::BOLD),
                ),
                Tone::Error => (
                    "error: ",
                    Style::new().fg(Color::Red).add_modifier(Modifier::BOLD),
                ),
            };
            Line::styled(format!("{label}{}", status.text), style)
        }
        None => Line::styled(
            "Enter send \u{b7} /help commands \u{b7} Tab next channel \u{b7} PgUp/PgDn scroll \u{b7} Ctrl-C quit",
            DIM,
        ),
    };
    frame.render_widget(Paragraph::new(line), area);
}

#[cfg(test)]
mod tests {
    use super::*;
    use conclave_client::Reaction;
    use ratatui::Terminal;
    use ratatui::backend::TestBackend;

    use super::super::worker::{Snapshot, Update, ViewRequest};

    /// 2026-11-24 14:05 UTC.
    const AT: u64 = 1_795_529_100;

    fn today() -> Date {
        jiff::civil::date(2026, 11, 24)
    }

    fn entry(seq: u64, sender: &str, text: &str) -> HistoryEntry {
        HistoryEntry {
            channel: "launch".into(),
            group_id: "5f0c".into(),
            seq,
            sender: sender.into(),
            device: "d".into(),
            text: text.into(),
            id: format!("id{seq}"),
            parent: None,
            mentions: Vec::new(),
            edited: false,
            deleted: false,
            unsupported: false,
            at: AT,
            reactions: Vec::new(),
            file: None,
            shared_by: None,
        }
    }

    fn plain(lines: &[Line<'_>]) -> Vec<String> {
        lines
            .iter()
            .map(|l| l.spans.iter().map(|s| s.content.as_ref()).collect())
            .collect()
    }

    fn sample() -> Vec<HistoryEntry> {
        let mut edited = entry(6, "alice", "fuel check at 11");
        edited.edited = true;
        edited.reactions = vec![
            Reaction {
                emoji: "\u{1f680}".into(),
                users: vec!["bob".into()],
            },
            Reaction {
                emoji: ":tada:".into(),
                users: vec!["alice".into(), "bob".into()],
            },
        ];
        let mut reply = entry(7, "bob", "looks good");
        reply.parent = Some("id6".into());
        let mut deleted = entry(9, "alice", "");
        deleted.deleted = true;
        let mut unsupported = entry(10, "carol", "");
        unsupported.unsupported = true;
        vec![
            entry(5, "alice", "the plan"),
            edited,
            reply,
            deleted,
            unsupported,
        ]
    }

    #[test]
    fn a_channel_shows_numbers_edits_reactions_threads_and_tombstones() {
        let clock = Clock::utc_on(today());
        let lines = plain(&message_lines(&sample(), Mode::Channel, "bob", &clock, 80));
        assert_eq!(
            lines,
            [
                "── Today ──",
                "#5 14:05 alice: the plan",
                "#6 14:05 alice: fuel check at 11 (edited)  [1 reply: /thread 6]",
                "                \u{1f680} 1 (bob)  :tada: 2 (alice, bob)",
                "  \u{21b3} #6 \u{b7} #7 14:05 bob: looks good",
                "#9 14:05 alice: [message deleted]",
                "#10 14:05 carol: [unsupported message: update conclave to read it]",
            ]
        );
    }

    #[test]
    fn shared_files_show_their_name_and_size() {
        let clock = Clock::utc_on(today());
        let file = conclave_client::FileInfo {
            name: "plan.pdf".into(),
            size: 2_500_000,
            sha256: "00".repeat(32),
        };
        let mut captioned = entry(5, "alice", "the plan");
        captioned.file = Some(file.clone());
        let mut bare = entry(6, "alice", "");
        bare.file = Some(file);
        let lines = plain(&message_lines(
            &[captioned, bare],
            Mode::Channel,
            "bob",
            &clock,
            80,
        ));
        assert_eq!(
            lines[1..],
            [
                "#5 14:05 alice: the plan",
                "                [file: plan.pdf (2.5 MB)]",
                "#6 14:05 alice: [file: plan.pdf (2.5 MB)]",
            ]
        );
    }

    #[test]
    fn search_results_name_their_channel_and_day() {
        let clock = Clock::utc_on(jiff::civil::date(2026, 12, 1));
        let lines = plain(&message_lines(
            &sample()[..1],
            Mode::Search,
            "bob",
            &clock,
            80,
        ));
        assert_eq!(lines, ["[launch] #5 2026-11-24 14:05 alice: the plan"]);
    }

    #[test]
    fn long_messages_wrap_at_spaces_under_their_text() {
        let clock = Clock::utc_on(today());
        let long = entry(5, "alice", "one two three four five six seven");
        let lines = plain(&message_lines(&[long], Mode::Channel, "bob", &clock, 32));
        assert_eq!(
            lines,
            [
                "── Today ──",
                "#5 14:05 alice: one two three",
                "                four five six",
                "                seven",
            ]
        );
        // A word longer than the line is cut, never lost.
        let lines = plain(&wrap(vec![Span::raw("abcdefghij")], 4, 0));
        assert_eq!(lines, ["abcd", "efgh", "ij"]);
    }

    #[test]
    fn terminal_escapes_and_bidi_overrides_are_neutralised() {
        assert_eq!(sanitize("a\u{1b}[2Jb\u{7}"), "a\u{fffd}[2Jb\u{fffd}");
        assert_eq!(sanitize("evil\u{202e}txt.exe"), "evil\u{fffd}txt.exe");
        let clock = Clock::utc_on(today());
        let hostile = entry(5, "mallory", "line one\nline\u{1b}]0;owned\u{7} two");
        let lines = plain(&message_lines(&[hostile], Mode::Channel, "bob", &clock, 80));
        assert_eq!(
            lines[2],
            "                  line\u{fffd}]0;owned\u{fffd} two"
        );
        assert!(lines.iter().all(|l| !l.contains('\u{1b}')));
    }

    #[test]
    fn public_channels_show_members_membership_and_topic() {
        let listed = |name: &str, members, joined, topic: &str| PublicChannel {
            name: name.into(),
            topic: topic.into(),
            members,
            joined,
            archived: false,
        };
        let mut old = listed("old-news", 3, false, "");
        old.archived = true;
        let lines = plain(&directory_lines(
            &[
                listed("announcements", 12, true, "company news"),
                listed("lobby", 1, false, "say hi"),
                old,
            ],
            80,
        ));
        assert_eq!(
            lines,
            [
                "announcements  (12 members)  [joined]  company news",
                "lobby          (1 member)  say hi",
                "old-news       (3 members)  [archived]",
            ]
        );
    }

    #[test]
    fn the_channel_list_marks_unread_dms_and_the_selection() {
        let channel = |name: &str, unread, direct| ChannelInfo {
            name: name.into(),
            group_id: String::new(),
            active: true,
            direct,
            topic: String::new(),
            unread,
            archived: false,
        };
        let channels = [
            channel("general", 0, false),
            channel("random", 3, false),
            channel("@bob", 1, true),
        ];
        let (items, at) = channel_items(&channels, Some("@bob"));
        assert_eq!(items.len(), 4, "three channels and the DM heading");
        assert_eq!(at, Some(3));
        assert_eq!(plain(&[channel_label(&channels[1])]), ["random (3)"]);
    }

    #[test]
    fn the_whole_screen_draws_in_a_small_terminal() {
        let mut app = App::new("bob".into());
        let channels = vec![
            ChannelInfo {
                name: "launch".into(),
                group_id: String::new(),
                active: true,
                direct: false,
                topic: "launch prep, T-3 days".into(),
                unread: 0,
                archived: false,
            },
            ChannelInfo {
                name: "random".into(),
                group_id: String::new(),
                active: true,
                direct: false,
                topic: String::new(),
                unread: 2,
                archived: false,
            },
        ];
        let first = ViewRequest {
            selected: None,
            view: View::Channel,
        };
        app.on_update(Update::Snapshot(Snapshot {
            request: first,
            channels: Ok(channels.clone()),
            listing: Ok(Listing::default()),
        }));
        app.on_update(Update::Snapshot(Snapshot {
            request: app.request(),
            channels: Ok(channels),
            listing: Ok(Listing::Messages(sample())),
        }));
        app.syncing = false;
        app.composer.insert("/react 6 :tada:");
        let mut terminal = Terminal::new(TestBackend::new(100, 20)).expect("test terminal");
        let clock = Clock::utc_on(today());
        let mut cache = LineCache::default();
        terminal
            .draw(|frame| draw(frame, &mut app, &clock, &mut cache))
            .expect("draw");
        let buffer = terminal.backend().buffer();
        let screen: Vec<String> = (0..buffer.area.height)
            .map(|y| {
                (0..buffer.area.width)
                    .map(|x| buffer[(x, y)].symbol())
                    .collect::<String>()
            })
            .collect();
        let all = screen.join("\n");
        for expected in [
            "bob \u{2502} launch \u{2014} launch prep, T-3 days",
            "> launch",
            "random (2)",
            "#6 14:05 alice: fuel check at 11 (edited)",
            "\u{21b3} #6 \u{b7} #7 14:05 bob: looks good",
            "message launch",
            "/react 6 :tada:",
        ] {
            assert!(all.contains(expected), "{expected:?} not on screen:\n{all}");
        }
        assert_eq!(app.metrics.height, 13);
        assert_eq!(app.scroll, Scroll::Pinned);
    }

    #[test]
    fn a_channel_this_device_is_out_of_and_the_devices_read_as_in_the_cli() {
        let out = ChannelInfo {
            name: "ops".into(),
            group_id: String::new(),
            active: false,
            direct: false,
            topic: String::new(),
            unread: 0,
            archived: false,
        };
        assert_eq!(plain(&[channel_label(&out)]), ["ops (not a member)"]);
        let devices = [
            DeviceInfo {
                device_id: "3f4c".into(),
                created_at: AT - 12 * 86_400,
                last_seen_at: AT,
                revoked_at: None,
                session_active: true,
                current: true,
            },
            DeviceInfo {
                device_id: "9a0b".into(),
                created_at: AT - 7_200,
                last_seen_at: AT - 300,
                revoked_at: Some(AT),
                session_active: false,
                current: false,
            },
        ];
        assert_eq!(
            plain(&device_lines(&devices, AT, 100)),
            [
                "3f4c (this device)  active  added 12 days ago  last seen just now",
                "9a0b  revoked  added 2 h ago  last seen 5 min ago"
            ]
        );
    }

    #[test]
    fn the_revoke_prompt_shows_its_question_and_nothing_typed() {
        use super::super::step_up::{PromptKey, Prompted, StepUp};
        let mut app = App::new("alice".into());
        app.syncing = false;
        let prompt = StepUp::new("3f4c".into());
        let Prompted::Asking(prompt) = prompt.handle(PromptKey::Text("hunter2")) else {
            panic!("still asking");
        };
        app.step_up = Some(prompt);
        let mut terminal = Terminal::new(TestBackend::new(100, 20)).expect("test terminal");
        let clock = Clock::utc_on(today());
        let mut cache = LineCache::default();
        terminal
            .draw(|frame| draw(frame, &mut app, &clock, &mut cache))
            .expect("draw");
        let buffer = terminal.backend().buffer();
        let all: String = (0..buffer.area.height)
            .flat_map(|y| (0..buffer.area.width).map(move |x| (x, y)))
            .map(|at| buffer[at].symbol().to_owned())
            .collect();
        assert!(
            all.contains("your password (hidden), to revoke 3f4c"),
            "{all}"
        );
        assert!(
            !all.contains("hunter2") && !all.contains("*******"),
            "{all}"
        );
    }
}
