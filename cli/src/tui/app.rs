//! The UI's state and how keys, relay events and finished work change it.
//!
//! Nothing here does I/O: every handler returns the [`Effect`]s the event
//! loop must carry out (load a view, queue an action, quit), so the whole
//! behaviour can be tested without a terminal or a relay.

use std::collections::HashMap;

use conclave_client::{ChannelInfo, Event};
use crossterm::event::{Event as TermEvent, KeyCode, KeyEvent, KeyEventKind, KeyModifiers};

use super::command::{self, Input, SlashCommand};
use super::composer::Composer;
use super::render::sanitize;
use super::step_up::{PromptKey, Prompted, RevokeCheck, StepUp};
use super::worker::{
    Action, Direction, Done, Listing, Snapshot, Transfer, Update, View, ViewRequest,
};

/// What the event loop must do after a handler ran.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Effect {
    /// Load the channel list and the current view again.
    Reload,
    /// Queue an action on the relay.
    Do(Action),
    /// Start a file transfer beside the actions.
    Transfer(Transfer),
    /// Start the push stream (after the first sync).
    Listen,
    /// Redraw everything from scratch (Ctrl-L).
    ClearScreen,
    /// Leave the UI.
    Quit,
}

/// How bad a status-line message is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Tone {
    Info,
    Warning,
    Error,
}

/// The status line's message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Status {
    pub(crate) tone: Tone,
    pub(crate) text: String,
}

/// Where the message pane is scrolled to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scroll {
    /// Following the newest line.
    Pinned,
    /// This line (0 = the first) at the top, where the user scrolled to.
    Top(usize),
}

/// The message pane's size and content, as the last draw laid it out.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct PaneMetrics {
    pub(crate) lines: usize,
    pub(crate) height: usize,
}

#[derive(Debug)]
pub(crate) struct App {
    /// This account.
    pub(crate) me: String,
    /// Channels in display order: channels first, then direct messages.
    pub(crate) channels: Vec<ChannelInfo>,
    pub(crate) selected: Option<String>,
    pub(crate) view: View,
    /// What `loaded_for`'s view lists.
    pub(crate) listing: Listing,
    pub(crate) loaded_for: Option<ViewRequest>,
    /// Bumped whenever `listing` changes, so drawn lines can be cached.
    pub(crate) generation: u64,
    pub(crate) composer: Composer,
    /// What was typed in each channel left for another, and not sent; it
    /// comes back when the channel does, so nothing typed for one channel
    /// is sent to the next.
    drafts: HashMap<String, String>,
    /// `/revoke`'s masked prompt: while it is open, keys go to it, not to
    /// the composer.
    pub(crate) step_up: Option<StepUp>,
    pub(crate) status: Option<Status>,
    /// Security alerts and new devices, shown until dismissed.
    pub(crate) alerts: Vec<String>,
    pub(crate) scroll: Scroll,
    /// New lines arrived below while scrolled up.
    pub(crate) unseen_below: bool,
    pub(crate) metrics: PaneMetrics,
    /// Actions queued or running.
    pub(crate) pending: usize,
    /// The first sync has not finished.
    pub(crate) syncing: bool,
    /// Files on their way, by id, each with its latest progress line.
    pub(crate) transfers: Vec<(u64, String)>,
    next_transfer: u64,
    /// `/quit` was refused once because something was still being sent.
    quit_armed: bool,
    /// The workspace's slash commands: (name, usage).
    pub(crate) workspace_commands: Vec<(String, String)>,
}

fn key_is(key: &KeyEvent, code: KeyCode, modifiers: KeyModifiers) -> bool {
    key.code == code && key.modifiers == modifiers
}

impl App {
    pub(crate) fn new(me: String) -> Self {
        Self {
            me,
            channels: Vec::new(),
            selected: None,
            view: View::Channel,
            listing: Listing::default(),
            loaded_for: None,
            generation: 0,
            composer: Composer::default(),
            drafts: HashMap::new(),
            step_up: None,
            status: None,
            alerts: Vec::new(),
            scroll: Scroll::Pinned,
            unseen_below: false,
            metrics: PaneMetrics::default(),
            pending: 0,
            syncing: true,
            transfers: Vec::new(),
            next_transfer: 1,
            quit_armed: false,
            workspace_commands: Vec::new(),
        }
    }

    /// What the views task should load for the current state.
    pub(crate) fn request(&self) -> ViewRequest {
        ViewRequest {
            selected: self.selected.clone(),
            view: self.view.clone(),
        }
    }

    /// Whether `listing` belongs to what is on screen now.
    pub(crate) fn loaded(&self) -> bool {
        self.loaded_for.as_ref() == Some(&self.request())
    }

    pub(crate) fn selected_channel(&self) -> Option<&ChannelInfo> {
        let name = self.selected.as_deref()?;
        self.channels.iter().find(|c| c.name == name)
    }

    fn notice(&mut self, text: impl Into<String>) {
        self.set_status(Tone::Info, text);
    }

    fn error(&mut self, text: impl Into<String>) {
        self.set_status(Tone::Error, text);
    }

    fn set_status(&mut self, tone: Tone, text: impl Into<String>) {
        self.status = Some(Status {
            tone,
            text: sanitize(&text.into()),
        });
    }

    fn show(&mut self, view: View) -> Vec<Effect> {
        // Conversations open at their newest line; help, search results
        // (best match first) and the public channels at their first.
        self.scroll = match view {
            View::Channel | View::Thread { .. } => Scroll::Pinned,
            View::Search(_) | View::Help | View::Browse | View::Devices => Scroll::Top(0),
        };
        self.view = view;
        self.unseen_below = false;
        vec![Effect::Reload]
    }

    fn select(&mut self, channel: Option<String>) -> Vec<Effect> {
        if channel != self.selected {
            self.swap_drafts(channel.as_deref());
        }
        self.selected = channel;
        self.quit_armed = false;
        self.show(View::Channel)
    }

    /// A channel this UI knew as `from` is called `to` now: the selection
    /// and the draft go with it (the view, a thread say, stays as it is).
    fn follow_rename(&mut self, from: &str, to: &str) {
        if from == to {
            return;
        }
        if self.selected.as_deref() == Some(from) {
            self.selected = Some(to.to_owned());
        }
        if let Some(draft) = self.drafts.remove(from) {
            self.drafts.insert(to.to_owned(), draft);
        }
    }

    /// Keeps what the composer holds as the draft of the channel being left,
    /// and puts the draft of `entering` (or nothing) in its place.
    fn swap_drafts(&mut self, entering: Option<&str>) {
        let waiting = entering.and_then(|name| self.drafts.remove(name));
        if self.selected.is_none() && waiting.is_none() {
            // Typed before any channel was shown: it was meant for this one.
            return;
        }
        let left = self.composer.switch_to(waiting.unwrap_or_default());
        if let Some(name) = &self.selected
            && !left.is_empty()
        {
            self.drafts.insert(name.clone(), left);
        }
    }

    /// Every command's name and usage: this UI's own, then the workspace's
    /// (a workspace command by a built-in name never runs here).
    fn known_commands(&self) -> Vec<(String, String)> {
        let mut known: Vec<(String, String)> = command::COMMANDS
            .iter()
            .map(|(usage, _)| {
                let name = usage.split(' ').next().unwrap_or(usage);
                (name.trim_start_matches('/').to_owned(), (*usage).to_owned())
            })
            .collect();
        for (name, usage) in &self.workspace_commands {
            if !known.iter().any(|(n, _)| n == name) {
                let usage = if usage.is_empty() {
                    format!("/{name}")
                } else {
                    usage.clone()
                };
                known.push((name.clone(), usage));
            }
        }
        known
    }

    /// The command name being typed (after `/`, before any space), if the
    /// composer holds nothing else and the cursor is at its end.
    fn typing_command_name(&self) -> Option<&str> {
        let text = self.composer.text();
        let name = text.strip_prefix('/')?;
        (self.composer.at_end() && !name.starts_with('/') && !name.contains(char::is_whitespace))
            .then_some(name)
    }

    /// Tab on `/na`: completes the name if one command starts so, or as far
    /// as all of them agree, and lists them.
    fn complete(&mut self) {
        let Some(typed) = self.typing_command_name().map(str::to_owned) else {
            return;
        };
        let matches: Vec<(String, String)> = self
            .known_commands()
            .into_iter()
            .filter(|(name, _)| name.starts_with(&typed))
            .collect();
        match matches.as_slice() {
            [] => self.error(format!("no command starts with /{typed}")),
            [(name, usage)] => {
                self.composer.replace(&format!("/{name} "));
                self.notice(usage.clone());
            }
            several => {
                let mut common = several[0].0.clone();
                for (name, _) in several {
                    while !name.starts_with(&common) {
                        common.pop();
                    }
                }
                self.composer.replace(&format!("/{common}"));
                let usages: Vec<&str> = several.iter().map(|(_, u)| u.as_str()).collect();
                self.notice(usages.join(" · "));
            }
        }
    }

    /// What the composer's border shows while a command is typed: the
    /// commands that fit the name so far, or the usage of the one chosen.
    pub(crate) fn command_hint(&self) -> Option<String> {
        let text = self.composer.text();
        let rest = text.strip_prefix('/')?;
        if rest.starts_with('/') {
            return None;
        }
        let (name, args) = match rest.split_once(char::is_whitespace) {
            Some((name, args)) => (name, Some(args)),
            None => (rest, None),
        };
        let known = self.known_commands();
        let shown: Vec<String> = match args {
            Some(_) => known
                .into_iter()
                .filter(|(n, _)| n == name)
                .map(|(_, usage)| usage)
                .collect(),
            None => known
                .into_iter()
                .filter(|(n, _)| n.starts_with(name))
                .map(|(_, usage)| usage)
                .take(8)
                .collect(),
        };
        (!shown.is_empty()).then(|| format!(" {} ", shown.join(" · ")))
    }

    /// Tab and friends: the next (`+1`) or previous (`-1`) channel, wrapping.
    fn cycle(&mut self, step: isize) -> Vec<Effect> {
        if self.channels.is_empty() {
            return Vec::new();
        }
        let count = self.channels.len() as isize;
        let at = self
            .selected
            .as_deref()
            .and_then(|name| self.channels.iter().position(|c| c.name == name))
            .map_or(0, |i| i as isize);
        let next = (at + step).rem_euclid(count) as usize;
        let name = self.channels[next].name.clone();
        self.select(Some(name))
    }

    fn scroll_by(&mut self, lines: isize) {
        let PaneMetrics {
            lines: total,
            height,
        } = self.metrics;
        let bottom = total.saturating_sub(height);
        let top = match self.scroll {
            Scroll::Pinned => bottom,
            Scroll::Top(top) => top.min(bottom),
        };
        let top = top.saturating_add_signed(lines).min(bottom);
        self.scroll = if top >= bottom {
            self.unseen_below = false;
            Scroll::Pinned
        } else {
            Scroll::Top(top)
        };
    }

    /// A key, a paste or a resize.
    pub(crate) fn on_terminal(&mut self, event: TermEvent) -> Vec<Effect> {
        match event {
            TermEvent::Key(key) if key.kind != KeyEventKind::Release => self.on_key(key),
            TermEvent::Paste(text) if self.step_up.is_some() => {
                self.on_prompt_key(PromptKey::Text(&text))
            }
            TermEvent::Paste(text) => {
                self.composer.insert(&text);
                Vec::new()
            }
            _ => Vec::new(),
        }
    }

    pub(crate) fn on_key(&mut self, key: KeyEvent) -> Vec<Effect> {
        let (ctrl, alt, none) = (KeyModifiers::CONTROL, KeyModifiers::ALT, KeyModifiers::NONE);
        if key_is(&key, KeyCode::Char('c'), ctrl) {
            return vec![Effect::Quit];
        }
        if self.step_up.is_some() {
            // Nothing else (no channel switch, no scrolling) while a
            // password is typed: every key goes to the prompt or nowhere.
            let prompt_key = match (key.code, key.modifiers) {
                (KeyCode::Esc, _) => PromptKey::Cancel,
                (KeyCode::Enter, _) => PromptKey::Enter,
                (KeyCode::Backspace, _) => PromptKey::Backspace,
                (KeyCode::Char('u'), KeyModifiers::CONTROL) => PromptKey::Clear,
                (KeyCode::Char(c), m)
                    if !m.intersects(KeyModifiers::CONTROL | KeyModifiers::ALT) =>
                {
                    return self.on_prompt_key(PromptKey::Text(c.encode_utf8(&mut [0; 4])));
                }
                _ => return Vec::new(),
            };
            return self.on_prompt_key(prompt_key);
        }
        if key_is(&key, KeyCode::Tab, none) && self.typing_command_name().is_some() {
            self.complete();
            return Vec::new();
        }
        if key_is(&key, KeyCode::Tab, none)
            || key_is(&key, KeyCode::Down, alt)
            || key_is(&key, KeyCode::Char('n'), ctrl)
        {
            return self.cycle(1);
        }
        if key.code == KeyCode::BackTab
            || key_is(&key, KeyCode::Up, alt)
            || key_is(&key, KeyCode::Char('p'), ctrl)
        {
            return self.cycle(-1);
        }
        let page = self.metrics.height.saturating_sub(2).max(1) as isize;
        match (key.code, key.modifiers) {
            (KeyCode::PageUp, _) => self.scroll_by(-page),
            (KeyCode::PageDown, _) => self.scroll_by(page),
            (KeyCode::Up, KeyModifiers::SHIFT) => self.scroll_by(-1),
            (KeyCode::Down, KeyModifiers::SHIFT) => self.scroll_by(1),
            (KeyCode::Home, KeyModifiers::CONTROL) => self.scroll = Scroll::Top(0),
            (KeyCode::End, KeyModifiers::CONTROL) => self.scroll_by(isize::MAX),
            (KeyCode::Esc, _) => {
                if self.view != View::Channel {
                    return self.show(View::Channel);
                }
                self.status = None;
            }
            (KeyCode::Enter, m) if !m.contains(KeyModifiers::ALT) => return self.submit(),
            (KeyCode::Enter, _) => self.composer.insert("\n"),
            (KeyCode::Char('l'), KeyModifiers::CONTROL) => return vec![Effect::ClearScreen],
            (KeyCode::Char('a'), KeyModifiers::CONTROL) | (KeyCode::Home, _) => {
                self.composer.home()
            }
            (KeyCode::Char('e'), KeyModifiers::CONTROL) | (KeyCode::End, _) => self.composer.end(),
            (KeyCode::Char('u'), KeyModifiers::CONTROL) => self.composer.kill_to_start(),
            (KeyCode::Char('k'), KeyModifiers::CONTROL) => self.composer.kill_to_end(),
            (KeyCode::Char('w'), KeyModifiers::CONTROL)
            | (KeyCode::Backspace, KeyModifiers::ALT) => self.composer.kill_word(),
            (KeyCode::Backspace, _) => self.composer.backspace(),
            (KeyCode::Delete, _) => self.composer.delete(),
            (KeyCode::Left, _) => self.composer.left(),
            (KeyCode::Right, _) => self.composer.right(),
            (KeyCode::Up, _) => self.composer.older(),
            (KeyCode::Down, _) => self.composer.newer(),
            (KeyCode::Char(c), m) if !m.intersects(KeyModifiers::CONTROL | KeyModifiers::ALT) => {
                self.composer.insert(c.encode_utf8(&mut [0; 4]));
            }
            _ => {}
        }
        Vec::new()
    }

    /// A key for `/revoke`'s prompt, which must be open.
    fn on_prompt_key(&mut self, key: PromptKey<'_>) -> Vec<Effect> {
        match self.step_up.take() {
            Some(step_up) => self.prompted(step_up.handle(key)),
            None => Vec::new(),
        }
    }

    /// The device `/revoke` named was looked up.
    fn on_revoke_check(&mut self, check: RevokeCheck) -> Vec<Effect> {
        let Some(step_up) = self.step_up.take() else {
            return Vec::new(); // cancelled meanwhile
        };
        if step_up.typed_device() != check.typed {
            // The answer to an earlier `/revoke`, cancelled since.
            self.step_up = Some(step_up);
            return Vec::new();
        }
        match check.result {
            Ok(target) => self.prompted(step_up.found(target)),
            Err(problem) => {
                // The prompt goes, and whatever was typed in it.
                drop(step_up);
                self.error(problem);
                Vec::new()
            }
        }
    }

    fn prompted(&mut self, prompted: Prompted) -> Vec<Effect> {
        match prompted {
            Prompted::Asking(next) => {
                self.step_up = Some(next);
                Vec::new()
            }
            Prompted::Cancelled { device } => {
                self.notice(format!("cancelled: {device} was not revoked"));
                Vec::new()
            }
            Prompted::Ready { device_id, proof } => {
                self.notice(format!("revoking {device_id}\u{2026}"));
                vec![self.queue(Action::Revoke { device_id, proof })]
            }
        }
    }

    /// Enter: send the line, or run the command.
    fn submit(&mut self) -> Vec<Effect> {
        let line = self.composer.take();
        match command::parse(&line) {
            Ok(None) => Vec::new(),
            Err(problem) => {
                self.error(problem);
                Vec::new()
            }
            Ok(Some(Input::Text(text))) => {
                let Some(channel) = self.selected.clone() else {
                    self.error("no channel selected: /create NAME, or /dm USER TEXT");
                    return Vec::new();
                };
                let (action, mut effects) = match &self.view {
                    View::Thread { seq } => (
                        Action::Reply {
                            channel,
                            seq: *seq,
                            text,
                        },
                        Vec::new(),
                    ),
                    View::Channel => (Action::Send { channel, text }, Vec::new()),
                    // Typing into search results, help, the public
                    // channels or the devices goes to the channel.
                    View::Search(_) | View::Help | View::Browse | View::Devices => {
                        let back = self.show(View::Channel);
                        (Action::Send { channel, text }, back)
                    }
                };
                self.scroll = Scroll::Pinned;
                effects.push(self.queue(action));
                effects
            }
            Ok(Some(Input::Command(command))) => self.run(command),
        }
    }

    fn queue(&mut self, action: Action) -> Effect {
        self.pending += 1;
        Effect::Do(action)
    }

    /// Starts a transfer; its progress takes over the status line.
    fn start(&mut self, channel: String, direction: Direction) -> Effect {
        let id = self.next_transfer;
        self.next_transfer += 1;
        let line = match &direction {
            Direction::Upload { path, .. } => format!("uploading {path}\u{2026}"),
            Direction::Download { seq, .. } => format!("downloading the file of #{seq}\u{2026}"),
        };
        self.transfers.push((id, line));
        self.show_transfers();
        Effect::Transfer(Transfer {
            id,
            channel,
            direction,
        })
    }

    /// Every running transfer's progress, in the status line.
    fn show_transfers(&mut self) {
        if self.transfers.is_empty() {
            return;
        }
        let lines: Vec<&str> = self.transfers.iter().map(|(_, l)| l.as_str()).collect();
        let text = lines.join(" \u{b7} ");
        self.notice(text);
    }

    /// A slash command. The ones that need a channel say so when none is selected.
    fn run(&mut self, command: SlashCommand) -> Vec<Effect> {
        if command != SlashCommand::Quit {
            self.quit_armed = false;
        }
        let needs_channel = !matches!(
            command,
            SlashCommand::Help
                | SlashCommand::Search(_)
                | SlashCommand::Dm { .. }
                | SlashCommand::Join { .. }
                | SlashCommand::Browse
                | SlashCommand::Create { .. }
                | SlashCommand::Devices
                | SlashCommand::Revoke { .. }
                | SlashCommand::Dismiss
                | SlashCommand::Quit
        );
        let channel = match (&self.selected, needs_channel) {
            (Some(channel), _) => channel.clone(),
            (None, false) => String::new(),
            (None, true) => {
                self.error("no channel selected: /create NAME, or /dm USER TEXT");
                return Vec::new();
            }
        };
        let action = match command {
            SlashCommand::Help => return self.show(View::Help),
            SlashCommand::Thread { seq } => return self.show(View::Thread { seq }),
            SlashCommand::Search(query) => return self.show(View::Search(query)),
            SlashCommand::Browse => return self.show(View::Browse),
            SlashCommand::Devices => return self.show(View::Devices),
            SlashCommand::Revoke { device } => {
                // The prompt opens now, not when the device is found: a
                // password typed at once must not land in the composer.
                self.step_up = Some(StepUp::new(device.clone()));
                self.notice(format!(
                    "revoking {device} needs a fresh proof that it is you: type your password \
                     (hidden), Enter confirms, Esc cancels"
                ));
                Action::PrepareRevoke { device }
            }
            SlashCommand::Dismiss => {
                self.alerts.clear();
                self.notice(
                    "alerts dismissed; after /quit, `conclave audit alerts` lists them again",
                );
                return Vec::new();
            }
            SlashCommand::Join { channel } => {
                if self.channels.iter().any(|c| c.name == channel && c.active) {
                    self.notice(format!("you are already in {channel}"));
                    return self.select(Some(channel));
                }
                Action::Join { channel }
            }
            SlashCommand::Upload { path, caption } => {
                return vec![self.start(channel, Direction::Upload { path, caption })];
            }
            SlashCommand::Download { seq, to } => {
                return vec![self.start(channel, Direction::Download { seq, to })];
            }
            SlashCommand::Quit => {
                let busy = match (self.transfers.is_empty(), self.pending) {
                    (false, _) => Some("a file is still on its way"),
                    (true, 0) => None,
                    (true, _) => Some("still sending"),
                };
                if let Some(busy) = busy.filter(|_| !self.quit_armed) {
                    self.quit_armed = true;
                    self.set_status(
                        Tone::Warning,
                        format!("{busy}: /quit again to leave anyway (Ctrl-C also quits)"),
                    );
                    return Vec::new();
                }
                return vec![Effect::Quit];
            }
            SlashCommand::Reply { seq, text } => Action::Reply { channel, seq, text },
            SlashCommand::React { seq, emoji, add } => Action::React {
                channel,
                seq,
                emoji,
                add,
            },
            SlashCommand::Edit { seq, text } => Action::Edit { channel, seq, text },
            SlashCommand::Delete { seq } => Action::Delete { channel, seq },
            SlashCommand::Topic(topic) => Action::Topic { channel, topic },
            SlashCommand::Rename { name } => Action::Rename { channel, name },
            SlashCommand::Dm { users, text } => Action::Direct { users, text },
            SlashCommand::Leave => Action::Leave { channel },
            SlashCommand::Create {
                name,
                public,
                topic,
            } => Action::Create {
                name,
                public,
                topic,
            },
            SlashCommand::Invite { user } => Action::Invite { channel, user },
            SlashCommand::Members => Action::Members { channel },
            SlashCommand::Commands => Action::Commands,
            SlashCommand::Registered { line } => Action::RunCommand { channel, line },
        };
        vec![self.queue(action)]
    }

    /// Something the relay told client-core. Everything reloads the view;
    /// some things also deserve a line in the status bar or the banner.
    pub(crate) fn on_event(&mut self, event: &Event) -> Vec<Effect> {
        let here = |channel: &str| self.selected.as_deref() == Some(channel);
        match event {
            Event::SecurityAlert(alert) => self.alerts.push(sanitize(&format!(
                "SECURITY ALERT: refused device {} of {}: {}. Nothing was encrypted to it; \
                 tell your workspace admin and compare `conclave audit checkpoint` with others.",
                alert.device_id, alert.username, alert.reason
            ))),
            Event::AccountChanged(alert) => self.alerts.push(sanitize(&format!(
                "SECURITY ALERT: on your account, {} (by {}). If it wasn't you, take the \
                 account back: /quit, then `conclave account recover --recovery-code CODE`.",
                alert.reason,
                if alert.device_id.is_empty() {
                    "the host administrator"
                } else {
                    alert.device_id.as_str()
                }
            ))),
            // `/revoke`, not `conclave device revoke`: the CLI cannot use
            // this home while the UI holds it.
            Event::DeviceAdded { device_id } => self.alerts.push(sanitize(&format!(
                "A new device signed in to your account: {device_id}. If it wasn't you, \
                 revoke it: /revoke {device_id}"
            ))),
            Event::DeviceRevoked { device_id } => {
                self.notice(format!("device {device_id} was revoked"))
            }
            Event::Mentioned(m) if !here(&m.channel) => self.set_status(
                Tone::Warning,
                format!("{} mentioned you in {} (#{})", m.sender, m.channel, m.seq),
            ),
            Event::DirectMessage(m) if !here(&m.channel) => self.set_status(
                Tone::Warning,
                format!("direct message from {} in {}", m.sender, m.channel),
            ),
            Event::Named {
                placeholder, name, ..
            } => {
                self.follow_rename(placeholder, name);
                self.notice(format!("you joined {name}"));
            }
            Event::Renamed { from, to, by, .. } => {
                self.follow_rename(from, to);
                self.notice(format!("{by} renamed {from} to {to}"));
            }
            Event::Removed { channel, .. } => {
                self.set_status(Tone::Warning, format!("you were removed from {channel}"))
            }
            Event::Archived { channel, .. } => {
                self.notice(format!("{channel} was archived: it is read-only now"))
            }
            Event::TopicChanged { channel, by, .. } => {
                self.notice(format!("{by} set the topic of {channel}"))
            }
            Event::MembersChanged {
                channel,
                added,
                removed,
                ..
            } if here(channel) => {
                let mut parts = Vec::new();
                if !added.is_empty() {
                    parts.push(format!("{} joined", added.join(", ")));
                }
                if !removed.is_empty() {
                    parts.push(format!("{} left", removed.join(", ")));
                }
                if !parts.is_empty() {
                    self.notice(format!("{channel}: {}", parts.join("; ")));
                }
            }
            _ => {}
        }
        vec![Effect::Reload]
    }

    /// Work the tasks finished.
    pub(crate) fn on_update(&mut self, update: Update) -> Vec<Effect> {
        match update {
            Update::Synced(result) => {
                self.syncing = false;
                if let Err(problem) = result {
                    self.error(format!(
                        "sync failed: {problem} (will keep trying in the background)"
                    ));
                }
                vec![Effect::Listen, Effect::Reload]
            }
            Update::Commands(commands) => {
                self.workspace_commands = commands;
                Vec::new()
            }
            Update::EarlierAlerts(alerts) => {
                for alert in alerts {
                    self.alerts.push(sanitize(&format!(
                        "SECURITY ALERT (earlier): refused device {} of {}: {}. Tell your workspace admin.",
                        alert.device_id, alert.username, alert.reason
                    )));
                }
                Vec::new()
            }
            Update::Finished(result) => {
                self.pending = self.pending.saturating_sub(1);
                match result {
                    Ok(Done {
                        notice,
                        select,
                        revoke_check,
                    }) => {
                        if let Some(text) = notice {
                            self.notice(text);
                        }
                        // The relay's stream follows channels this device
                        // creates or joins, so nothing more is needed here.
                        let mut effects = match select {
                            Some(channel) => self.select(Some(channel)),
                            None => vec![Effect::Reload],
                        };
                        if let Some(check) = revoke_check {
                            effects.extend(self.on_revoke_check(check));
                        }
                        effects
                    }
                    Err(problem) => {
                        self.error(problem);
                        vec![Effect::Reload]
                    }
                }
            }
            Update::Progress { id, line } => {
                if let Some((_, shown)) = self.transfers.iter_mut().find(|(t, _)| *t == id) {
                    *shown = line;
                    self.show_transfers();
                }
                Vec::new()
            }
            Update::Transferred { id, result } => {
                self.transfers.retain(|(t, _)| *t != id);
                match result {
                    Ok(text) => self.notice(text),
                    Err(problem) => self.error(problem),
                }
                vec![Effect::Reload]
            }
            Update::Snapshot(snapshot) => self.on_snapshot(snapshot),
        }
    }

    fn on_snapshot(&mut self, snapshot: Snapshot) -> Vec<Effect> {
        let Snapshot {
            request,
            channels,
            listing,
        } = snapshot;
        let mut effects = Vec::new();
        match channels {
            Ok(mut channels) => {
                // Channels first, then direct messages; each by name.
                channels.sort_by(|a, b| (a.direct, &a.name).cmp(&(b.direct, &b.name)));
                // A channel is its group; its name can change under us (a
                // member renamed it, and this list may show it before the
                // event that says so). What was selected or drafted under
                // the old name follows the group to its new one.
                let renamed: Vec<(String, String)> = self
                    .channels
                    .iter()
                    .filter(|old| !channels.iter().any(|c| c.name == old.name))
                    .filter_map(|old| {
                        let new = channels.iter().find(|c| c.group_id == old.group_id)?;
                        Some((old.name.clone(), new.name.clone()))
                    })
                    .collect();
                let before = self.request();
                for (from, to) in renamed {
                    self.follow_rename(&from, &to);
                }
                if self.request() != before {
                    effects.push(Effect::Reload);
                }
                self.channels = channels;
                let known = self
                    .selected
                    .as_deref()
                    .is_some_and(|name| self.channels.iter().any(|c| c.name == name));
                if !known {
                    let first = self.channels.first().map(|c| c.name.clone());
                    if first != self.selected {
                        effects = self.select(first);
                    }
                }
            }
            Err(problem) => self.error(problem),
        }
        if request != self.request() {
            return effects; // a newer view is on its way
        }
        match listing {
            Ok(listing) => {
                let same_view = self.loaded_for.as_ref() == Some(&request);
                if same_view && listing.len() > self.listing.len() && self.scroll != Scroll::Pinned
                {
                    self.unseen_below = true;
                }
                if !same_view || listing != self.listing {
                    self.listing = listing;
                    self.generation += 1;
                }
                self.loaded_for = Some(request);
                // `/thread 7` on a reply shows the thread it is in: the
                // view names that thread's first message from now on.
                if let (View::Thread { seq }, Listing::Messages(thread)) =
                    (&self.view, &self.listing)
                    && let Some(root) = thread.first()
                    && root.seq != *seq
                {
                    self.view = View::Thread { seq: root.seq };
                    self.loaded_for = Some(self.request());
                }
            }
            Err(problem) => {
                self.error(problem);
                if self.view != View::Channel {
                    // A thread, search or directory that cannot be shown:
                    // back to the channel.
                    effects.extend(self.show(View::Channel));
                } else {
                    self.listing = Listing::default();
                    self.generation += 1;
                    self.loaded_for = Some(request);
                }
            }
        }
        effects
    }
}

#[cfg(test)]
mod tests {
    use super::super::step_up::{
        FactorAsked, Proof, RevokeCheck, RevokeTarget, Secret, TypedFactor,
    };
    use super::*;
    use conclave_client::HistoryEntry;

    fn channel(name: &str, unread: u64) -> ChannelInfo {
        ChannelInfo {
            name: name.into(),
            group_id: format!("g-{name}"),
            active: true,
            direct: name.starts_with('@'),
            topic: String::new(),
            unread,
            archived: false,
        }
    }

    fn loaded(app: &mut App, names: &[&str]) {
        let snapshot = Snapshot {
            request: app.request(),
            channels: Ok(names.iter().map(|n| channel(n, 0)).collect()),
            listing: Ok(Listing::default()),
        };
        app.on_update(Update::Snapshot(snapshot));
    }

    fn key(code: KeyCode) -> KeyEvent {
        KeyEvent::new(code, KeyModifiers::NONE)
    }

    fn type_line(app: &mut App, line: &str) -> Vec<Effect> {
        app.composer.insert(line);
        app.on_key(key(KeyCode::Enter))
    }

    #[test]
    fn the_first_channel_is_selected_and_tab_cycles_channels_then_dms() {
        let mut app = App::new("alice".into());
        loaded(&mut app, &["@bob", "random", "general"]);
        assert_eq!(app.selected.as_deref(), Some("general"));
        let names: Vec<&str> = app.channels.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["general", "random", "@bob"]);
        assert_eq!(app.on_key(key(KeyCode::Tab)), [Effect::Reload]);
        assert_eq!(app.selected.as_deref(), Some("random"));
        app.on_key(KeyEvent::new(KeyCode::Char('n'), KeyModifiers::CONTROL));
        assert_eq!(app.selected.as_deref(), Some("@bob"));
        app.on_key(key(KeyCode::Tab));
        assert_eq!(app.selected.as_deref(), Some("general"));
        app.on_key(key(KeyCode::BackTab));
        assert_eq!(app.selected.as_deref(), Some("@bob"));
    }

    #[test]
    fn tab_completes_command_names_and_the_border_shows_their_usage() {
        let mut app = App::new("alice".into());
        loaded(&mut app, &["ops", "random"]);
        app.on_update(Update::Commands(vec![
            ("deploy".into(), "/deploy SERVICE [VERSION]".into()),
            ("dice".into(), String::new()),
        ]));
        // While a name is typed, the border lists what fits, with usage.
        app.composer.insert("/de");
        let hint = app.command_hint().unwrap();
        assert!(
            hint.contains("/deploy SERVICE [VERSION]") && hint.contains("/delete N"),
            "{hint}"
        );
        // Tab completes as far as the candidates agree, not a channel switch.
        assert_eq!(app.on_key(key(KeyCode::Tab)), []);
        assert_eq!(app.selected.as_deref(), Some("ops"));
        assert_eq!(app.composer.text(), "/de");
        app.composer.insert("p");
        app.on_key(key(KeyCode::Tab));
        assert_eq!(app.composer.text(), "/deploy ");
        assert_eq!(
            app.status.as_ref().unwrap().text,
            "/deploy SERVICE [VERSION]"
        );
        assert_eq!(app.command_hint().unwrap(), " /deploy SERVICE [VERSION] ");
        // A command without usage text shows its name; built-ins complete too.
        app.composer.replace("/dic");
        app.on_key(key(KeyCode::Tab));
        assert_eq!(app.composer.text(), "/dice ");
        app.composer.replace("/uplo");
        app.on_key(key(KeyCode::Tab));
        assert_eq!(app.composer.text(), "/upload ");
        app.composer.replace("/zz");
        app.on_key(key(KeyCode::Tab));
        assert_eq!(app.status.as_ref().unwrap().tone, Tone::Error);
        assert_eq!(app.composer.text(), "/zz");
        // Plain text, or a line past its name: Tab goes back to switching channels.
        app.composer.replace("hello");
        assert_eq!(app.command_hint(), None);
        assert_eq!(app.on_key(key(KeyCode::Tab)), [Effect::Reload]);
        assert_eq!(app.selected.as_deref(), Some("random"));
    }

    #[test]
    fn enter_sends_to_the_channel_or_replies_in_the_open_thread() {
        let mut app = App::new("alice".into());
        loaded(&mut app, &["general"]);
        let sent = type_line(&mut app, "hello");
        assert_eq!(
            sent,
            [Effect::Do(Action::Send {
                channel: "general".into(),
                text: "hello".into()
            })]
        );
        assert_eq!(type_line(&mut app, "/thread 4"), [Effect::Reload]);
        let replied = type_line(&mut app, "in the thread");
        assert_eq!(
            replied,
            [Effect::Do(Action::Reply {
                channel: "general".into(),
                seq: 4,
                text: "in the thread".into()
            })]
        );
        assert_eq!(app.pending, 2);
        app.on_key(key(KeyCode::Esc));
        assert_eq!(app.view, View::Channel);
    }

    #[test]
    fn bad_commands_set_an_error_and_do_nothing_else() {
        let mut app = App::new("alice".into());
        loaded(&mut app, &["general"]);
        for line in ["/Frob!", "/react x y", "/download plan.pdf"] {
            assert_eq!(type_line(&mut app, line), [], "{line}");
            let status = app.status.clone().expect("an error line");
            assert_eq!(status.tone, Tone::Error, "{line}");
        }
        assert_eq!(app.pending, 0);
        assert!(app.composer.is_empty());
    }

    #[test]
    fn browse_lists_public_channels_and_join_switches_to_one() {
        let mut app = App::new("bob".into());
        loaded(&mut app, &["general"]);
        assert_eq!(type_line(&mut app, "/browse"), [Effect::Reload]);
        assert_eq!(app.view, View::Browse);
        assert_eq!(app.scroll, Scroll::Top(0));
        // A channel bob is in already is only selected.
        assert_eq!(type_line(&mut app, "/join general"), [Effect::Reload]);
        assert_eq!(app.view, View::Channel);
        assert_eq!(app.pending, 0);
        type_line(&mut app, "/browse");
        let joined = type_line(&mut app, "/join lobby");
        assert_eq!(
            joined,
            [Effect::Do(Action::Join {
                channel: "lobby".into()
            })]
        );
        let done = Done {
            notice: Some("joined lobby".into()),
            select: Some("lobby".into()),
            ..Done::default()
        };
        assert_eq!(app.on_update(Update::Finished(Ok(done))), [Effect::Reload]);
        assert_eq!(app.selected.as_deref(), Some("lobby"));
        assert_eq!(app.view, View::Channel);
    }

    #[test]
    fn a_transfer_shows_its_progress_then_its_outcome() {
        let mut app = App::new("alice".into());
        loaded(&mut app, &["general"]);
        let started = type_line(&mut app, "/upload ~/plan.pdf the plan");
        assert_eq!(
            started,
            [Effect::Transfer(Transfer {
                id: 1,
                channel: "general".into(),
                direction: Direction::Upload {
                    path: "~/plan.pdf".into(),
                    caption: "the plan".into()
                }
            })]
        );
        app.on_update(Update::Progress {
            id: 1,
            line: "uploading plan.pdf 42% (4.2 MB of 10.0 MB)".into(),
        });
        let status = app.status.clone().expect("a progress line");
        assert_eq!(status.text, "uploading plan.pdf 42% (4.2 MB of 10.0 MB)");
        // Leaving mid-transfer takes a second /quit.
        assert_eq!(type_line(&mut app, "/quit"), []);
        assert!(app.status.as_ref().is_some_and(|s| s.tone == Tone::Warning));
        let ended = app.on_update(Update::Transferred {
            id: 1,
            result: Err("cannot read /home/alice/plan.pdf: not found".into()),
        });
        assert_eq!(ended, [Effect::Reload]);
        let status = app.status.clone().expect("an error line");
        assert_eq!(status.tone, Tone::Error);
        assert!(app.transfers.is_empty());
        // A late progress report of a finished transfer changes nothing.
        app.on_update(Update::Progress {
            id: 1,
            line: "uploading plan.pdf 100%".into(),
        });
        assert_eq!(app.status, Some(status));
    }

    #[test]
    fn quit_waits_for_a_second_quit_while_sending() {
        let mut app = App::new("alice".into());
        loaded(&mut app, &["general"]);
        type_line(&mut app, "on its way");
        assert_eq!(type_line(&mut app, "/quit"), []);
        assert_eq!(type_line(&mut app, "/quit"), [Effect::Quit]);
        let ctrl_c = KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL);
        assert_eq!(app.on_key(ctrl_c), [Effect::Quit]);
    }

    #[test]
    fn scrolling_up_unpins_and_scrolling_back_down_pins_again() {
        let mut app = App::new("alice".into());
        app.metrics = PaneMetrics {
            lines: 100,
            height: 20,
        };
        app.on_key(key(KeyCode::PageUp));
        assert_eq!(app.scroll, Scroll::Top(62));
        app.on_key(key(KeyCode::PageDown));
        assert_eq!(app.scroll, Scroll::Pinned);
    }

    #[test]
    fn a_security_alert_stays_until_dismissed() {
        let mut app = App::new("alice".into());
        loaded(&mut app, &["general"]);
        app.on_event(&Event::DeviceAdded {
            device_id: "0a2b".into(),
        });
        // It names the command that works here: the CLI cannot use this
        // home while the UI runs.
        assert!(app.alerts[0].contains("/revoke 0a2b"), "{}", app.alerts[0]);
        assert!(!app.alerts[0].contains("conclave device revoke"));
        type_line(&mut app, "/dismiss");
        assert!(app.alerts.is_empty());
    }

    #[test]
    fn a_renamed_channel_stays_selected() {
        let mut app = App::new("bob".into());
        loaded(&mut app, &["channel-5f0c1a2b"]);
        app.on_event(&Event::Named {
            placeholder: "channel-5f0c1a2b".into(),
            name: "general".into(),
            group_id: "5f0c1a2b".into(),
        });
        assert_eq!(app.selected.as_deref(), Some("general"));
    }

    /// A snapshot of `channels` (name, group id) and `entries`, for what
    /// `app` asks now.
    fn snapshot(
        app: &mut App,
        channels: &[(&str, &str)],
        entries: Vec<HistoryEntry>,
    ) -> Vec<Effect> {
        let snapshot = Snapshot {
            request: app.request(),
            channels: Ok(channels
                .iter()
                .map(|(name, group_id)| ChannelInfo {
                    group_id: (*group_id).into(),
                    ..channel(name, 0)
                })
                .collect()),
            listing: Ok(Listing::Messages(entries)),
        };
        app.on_update(Update::Snapshot(snapshot))
    }

    #[test]
    fn a_channel_renamed_by_someone_else_keeps_its_selection_and_draft() {
        let mut app = App::new("bob".into());
        loaded(&mut app, &["general", "launch"]);
        app.on_key(key(KeyCode::Tab));
        assert_eq!(app.selected.as_deref(), Some("launch"));
        app.composer.insert("half typed for launch");
        let effects = app.on_event(&Event::Renamed {
            from: "launch".into(),
            to: "liftoff".into(),
            by: "alice".into(),
            group_id: "g-launch".into(),
        });
        assert_eq!(effects, [Effect::Reload]);
        assert_eq!(app.selected.as_deref(), Some("liftoff"));
        assert_eq!(app.composer.text(), "half typed for launch");
        assert_eq!(
            app.status.as_ref().map(|s| s.text.as_str()),
            Some("alice renamed launch to liftoff")
        );
        snapshot(
            &mut app,
            &[("general", "g-general"), ("liftoff", "g-launch")],
            Vec::new(),
        );
        assert_eq!(app.selected.as_deref(), Some("liftoff"));
        // Enter sends to the channel under its new name.
        assert_eq!(
            app.on_key(key(KeyCode::Enter)),
            [Effect::Do(Action::Send {
                channel: "liftoff".into(),
                text: "half typed for launch".into()
            })]
        );
    }

    #[test]
    fn a_rename_the_channel_list_shows_first_is_followed_by_group_id() {
        let mut app = App::new("bob".into());
        snapshot(
            &mut app,
            &[("general", "g-general"), ("launch", "g-launch")],
            Vec::new(),
        );
        app.on_key(key(KeyCode::Tab));
        assert_eq!(app.selected.as_deref(), Some("launch"));
        app.composer.insert("for launch");
        // The list arrives with the new name before the event says so: the
        // selection does not jump to general, and asks for the view again.
        let effects = snapshot(
            &mut app,
            &[("general", "g-general"), ("liftoff", "g-launch")],
            Vec::new(),
        );
        assert_eq!(app.selected.as_deref(), Some("liftoff"));
        assert!(effects.contains(&Effect::Reload), "{effects:?}");
        assert_eq!(app.composer.text(), "for launch");
        // The event, when it comes, changes nothing more.
        app.on_event(&Event::Renamed {
            from: "launch".into(),
            to: "liftoff".into(),
            by: "alice".into(),
            group_id: "g-launch".into(),
        });
        assert_eq!(app.selected.as_deref(), Some("liftoff"));
        assert_eq!(app.composer.text(), "for launch");
        // A draft left in a channel that is renamed while not shown waits
        // under its new name.
        app.on_key(key(KeyCode::BackTab));
        assert_eq!(app.selected.as_deref(), Some("general"));
        assert!(app.composer.is_empty());
        snapshot(
            &mut app,
            &[("general", "g-general"), ("rocket", "g-launch")],
            Vec::new(),
        );
        app.on_key(key(KeyCode::Tab));
        assert_eq!(app.selected.as_deref(), Some("rocket"));
        assert_eq!(app.composer.text(), "for launch");
    }

    #[test]
    fn rename_renames_the_selected_channel() {
        let mut app = App::new("bob".into());
        loaded(&mut app, &["general", "launch"]);
        assert_eq!(
            type_line(&mut app, "/rename liftoff"),
            [Effect::Do(Action::Rename {
                channel: "general".into(),
                name: "liftoff".into()
            })]
        );
    }

    #[test]
    fn the_thread_of_a_reply_is_shown_as_its_roots() {
        let mut app = App::new("bob".into());
        loaded(&mut app, &["launch"]);
        type_line(&mut app, "/thread 7");
        assert_eq!(app.view, View::Thread { seq: 7 });
        let entry = |seq: u64, parent: Option<&str>| HistoryEntry {
            channel: "launch".into(),
            group_id: "g-launch".into(),
            seq,
            sender: "alice".into(),
            device: "d".into(),
            text: format!("message {seq}"),
            id: format!("m{seq}"),
            parent: parent.map(str::to_owned),
            mentions: Vec::new(),
            edited: false,
            deleted: false,
            unsupported: false,
            at: 0,
            reactions: Vec::new(),
            file: None,
            shared_by: None,
        };
        snapshot(
            &mut app,
            &[("launch", "g-launch")],
            vec![entry(6, None), entry(7, Some("m6")), entry(9, Some("m6"))],
        );
        assert_eq!(app.view, View::Thread { seq: 6 });
        assert!(app.loaded());
        // Enter replies in it.
        assert_eq!(
            type_line(&mut app, "me too"),
            [Effect::Do(Action::Reply {
                channel: "launch".into(),
                seq: 6,
                text: "me too".into()
            })]
        );
    }

    #[test]
    fn a_draft_stays_with_its_channel() {
        let mut app = App::new("alice".into());
        loaded(&mut app, &["general", "random"]);
        app.composer.insert("for general only");
        app.on_key(key(KeyCode::Tab));
        assert_eq!(app.selected.as_deref(), Some("random"));
        assert!(app.composer.is_empty(), "{:?}", app.composer.text());
        // Enter in random sends nothing of general's draft.
        assert_eq!(app.on_key(key(KeyCode::Enter)), []);
        assert_eq!(
            type_line(&mut app, "for random"),
            [Effect::Do(Action::Send {
                channel: "random".into(),
                text: "for random".into()
            })]
        );
        app.on_key(key(KeyCode::BackTab));
        assert_eq!(app.composer.text(), "for general only");
        assert_eq!(
            app.on_key(key(KeyCode::Enter)),
            [Effect::Do(Action::Send {
                channel: "general".into(),
                text: "for general only".into()
            })]
        );
        // Sent, it is no draft any more.
        app.on_key(key(KeyCode::Tab));
        app.on_key(key(KeyCode::BackTab));
        assert!(app.composer.is_empty());
        // A switch made by the relay's answer (a new DM) keeps the draft
        // too, and a channel's draft follows it when it gets its name.
        app.composer.insert("still typing");
        let done = Done {
            select: Some("channel-5f0c".into()),
            ..Done::default()
        };
        app.on_update(Update::Finished(Ok(done)));
        assert!(app.composer.is_empty());
        app.composer.insert("for the new one");
        app.on_key(key(KeyCode::Tab));
        assert_eq!(app.selected.as_deref(), Some("random"));
        app.on_event(&Event::Named {
            placeholder: "channel-5f0c".into(),
            name: "launch".into(),
            group_id: "5f0c".into(),
        });
        loaded(&mut app, &["general", "launch", "random"]);
        app.on_key(key(KeyCode::BackTab));
        assert_eq!(app.selected.as_deref(), Some("launch"));
        assert_eq!(app.composer.text(), "for the new one");
        app.on_key(key(KeyCode::BackTab));
        assert_eq!(app.selected.as_deref(), Some("general"));
        assert_eq!(app.composer.text(), "still typing");
    }

    fn revoke_check(typed: &str, result: Result<RevokeTarget, String>) -> Update {
        Update::Finished(Ok(Done {
            revoke_check: Some(RevokeCheck {
                typed: typed.into(),
                result,
            }),
            ..Done::default()
        }))
    }

    #[test]
    fn revoke_asks_for_the_proof_in_a_masked_prompt_then_queues_it() {
        let mut app = App::new("alice".into());
        loaded(&mut app, &["general", "random"]);
        assert_eq!(
            type_line(&mut app, "/revoke 3f4c"),
            [Effect::Do(Action::PrepareRevoke {
                device: "3f4c".into()
            })]
        );
        // The prompt is open before the device is found: keys go to it,
        // not to the composer, and switch no channel.
        assert!(app.step_up.is_some());
        app.composer.insert("a draft");
        for c in "hunter2".chars() {
            assert_eq!(app.on_key(key(KeyCode::Char(c))), []);
        }
        assert_eq!(app.on_key(key(KeyCode::Tab)), []);
        assert_eq!(app.selected.as_deref(), Some("general"));
        assert_eq!(app.composer.text(), "a draft");
        assert_eq!(app.on_key(key(KeyCode::Enter)), []);
        let device_id = "3f4c0a0b0c0d0e0f3f4c0a0b0c0d0e0f".to_owned();
        let target = RevokeTarget {
            device_id: device_id.clone(),
            factor: FactorAsked::TotpOrRecoveryCode,
        };
        // An answer about another device (an earlier /revoke) is not this one's.
        app.on_update(revoke_check("9a0b", Ok(target.clone())));
        app.on_update(revoke_check("3f4c", Ok(target)));
        assert!(app.step_up.is_some(), "the account has TOTP: a code next");
        app.on_terminal(TermEvent::Paste("123 456".into()));
        let queued = app.on_key(key(KeyCode::Enter));
        assert_eq!(
            queued,
            [Effect::Do(Action::Revoke {
                device_id: device_id.clone(),
                proof: Proof {
                    password: Secret::new("hunter2"),
                    second_factor: Some(TypedFactor::Totp(Secret::new("123456"))),
                },
            })]
        );
        assert!(!format!("{queued:?}").contains("hunter2"));
        assert!(app.step_up.is_none());
        // The relay's refusal is one line of error.
        let refusal = format!("{device_id} was not revoked: wrong password (bad_credentials)");
        app.on_update(Update::Finished(Err(refusal.clone())));
        let status = app.status.clone().expect("an error line");
        assert_eq!((status.tone, status.text), (Tone::Error, refusal));
        assert_eq!(app.pending, 0);
        // Nothing typed in the prompt is recalled by Up.
        app.composer.replace("");
        app.on_key(key(KeyCode::Up));
        assert_eq!(app.composer.text(), "/revoke 3f4c");
        app.composer.replace("");

        // A device that cannot be revoked closes the prompt with the reason.
        type_line(&mut app, "/revoke ffff");
        app.on_key(key(KeyCode::Char('x')));
        let refused = "no device ffff on your account: /devices lists them".to_owned();
        app.on_update(revoke_check("ffff", Err(refused.clone())));
        assert!(app.step_up.is_none());
        assert_eq!(app.status.clone().unwrap().text, refused);
        // Esc closes the prompt and revokes nothing.
        type_line(&mut app, "/revoke 3f4c");
        app.on_key(key(KeyCode::Char('x')));
        assert_eq!(app.on_key(key(KeyCode::Esc)), []);
        assert!(app.step_up.is_none());
        assert_eq!(
            app.status.clone().unwrap().text,
            "cancelled: 3f4c was not revoked"
        );
        assert_eq!(
            app.on_update(revoke_check("3f4c", Err("late".into()))),
            [Effect::Reload]
        );
        assert_ne!(app.status.clone().unwrap().text, "late");
    }

    #[test]
    fn devices_open_in_the_pane_and_esc_returns() {
        let mut app = App::new("alice".into());
        loaded(&mut app, &["general"]);
        assert_eq!(type_line(&mut app, "/devices"), [Effect::Reload]);
        assert_eq!(app.view, View::Devices);
        assert_eq!(app.pending, 0);
        app.on_key(key(KeyCode::Esc));
        assert_eq!(app.view, View::Channel);
    }
}
