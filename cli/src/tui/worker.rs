//! The tasks that call client-core for the UI, so the UI never waits on the
//! network or the local store:
//!
//! - **actions** runs what the user asked for (send, react, edit, …) one at
//!   a time, in the order typed, so two quick messages arrive in that order;
//! - **views** loads the channel list and what the message pane shows,
//!   skipping straight to the newest request when several queued up while it
//!   was busy (a burst of relay events costs one load, not one per event);
//! - **transfers** (one task per file) upload or download beside the
//!   actions, so a long upload holds up no message, and report their
//!   progress as they go.
//!
//! All report back as [`Update`]s. Errors travel as their one-line
//! `Display`, which client-core keeps free of message text and secrets.

use std::path::{Path, PathBuf};

use conclave_client::{
    Channel, ChannelInfo, Client, ClientError, DeviceInfo, HistoryEntry, PublicChannel, SearchQuery,
};
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender};

use super::step_up::{FactorAsked, Proof, RevokeCheck, RevokeTarget};

/// Something the user asked for that changes state on the relay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Action {
    Send {
        channel: String,
        text: String,
    },
    Reply {
        channel: String,
        seq: u64,
        text: String,
    },
    React {
        channel: String,
        seq: u64,
        emoji: String,
        add: bool,
    },
    Edit {
        channel: String,
        seq: u64,
        text: String,
    },
    Delete {
        channel: String,
        seq: u64,
    },
    Topic {
        channel: String,
        topic: String,
    },
    /// Rename `channel` to `name` for every member.
    Rename {
        channel: String,
        name: String,
    },
    Direct {
        users: Vec<String>,
        text: String,
    },
    Leave {
        channel: String,
    },
    Join {
        channel: String,
    },
    Create {
        name: String,
        public: bool,
        topic: String,
    },
    Invite {
        channel: String,
        user: String,
    },
    Members {
        channel: String,
    },
    Commands,
    RunCommand {
        channel: String,
        line: String,
    },
    /// `/revoke`: find the device `device` names (its id, or the start of
    /// it) and what the step-up will ask for, while the password is typed.
    PrepareRevoke {
        device: String,
    },
    /// Revoke another device of this account with the proof typed for it.
    Revoke {
        device_id: String,
        proof: Proof,
    },
}

/// A file going to or coming from the relay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Transfer {
    /// Which transfer its [`Update::Progress`] reports are about.
    pub(crate) id: u64,
    pub(crate) channel: String,
    pub(crate) direction: Direction,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Direction {
    /// Share the file at `path` (as typed) with `caption`.
    Upload { path: String, caption: String },
    /// Save the file of message `seq` to `to` (as typed: a file or a
    /// directory), or to the current directory.
    Download { seq: u64, to: Option<String> },
}

/// What an action achieved.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Done {
    /// A line for the status bar, if the result is not visible anyway.
    pub(crate) notice: Option<String>,
    /// A channel to switch to (a new DM or channel).
    pub(crate) select: Option<String>,
    /// The answer `/revoke`'s prompt waits for, found or refused.
    pub(crate) revoke_check: Option<RevokeCheck>,
}

/// What the message pane shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum View {
    /// The selected channel's history.
    Channel,
    /// The thread of message `seq` in the selected channel.
    Thread { seq: u64 },
    /// Search results, from every channel unless the query says otherwise.
    Search(SearchQuery),
    /// The list of commands and keys.
    Help,
    /// The workspace's public channels.
    Browse,
    /// This account's devices.
    Devices,
}

/// What to load: the channel list, and the entries of `view` in `selected`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ViewRequest {
    pub(crate) selected: Option<String>,
    pub(crate) view: View,
}

/// What the message pane lists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Listing {
    /// A channel's history, a thread, or search results.
    Messages(Vec<HistoryEntry>),
    /// The workspace's public channels, by name.
    PublicChannels(Vec<PublicChannel>),
    /// This account's devices, as the relay lists them.
    Devices(Vec<DeviceInfo>),
}

impl Default for Listing {
    fn default() -> Self {
        Self::Messages(Vec::new())
    }
}

impl Listing {
    pub(crate) fn len(&self) -> usize {
        match self {
            Self::Messages(entries) => entries.len(),
            Self::PublicChannels(channels) => channels.len(),
            Self::Devices(devices) => devices.len(),
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The loaded state for one [`ViewRequest`].
#[derive(Debug)]
pub(crate) struct Snapshot {
    pub(crate) request: ViewRequest,
    pub(crate) channels: Result<Vec<ChannelInfo>, String>,
    pub(crate) listing: Result<Listing, String>,
}

/// What the tasks report to the UI loop.
#[derive(Debug)]
pub(crate) enum Update {
    /// Security alerts raised before this session that were never shown.
    EarlierAlerts(Vec<conclave_client::SecurityAlert>),
    /// The first sync finished (the push stream starts after it).
    Synced(Result<(), String>),
    /// The workspace's slash commands, for completion: (name, usage).
    Commands(Vec<(String, String)>),
    Snapshot(Snapshot),
    Finished(Result<Done, String>),
    /// A transfer moved on: its line for the status bar.
    Progress {
        id: u64,
        line: String,
    },
    /// A transfer ended: the final notice, or what went wrong.
    Transferred {
        id: u64,
        result: Result<String, String>,
    },
}

/// Runs actions in order until the UI hangs up.
pub(crate) async fn actions(
    client: Client,
    mut requests: UnboundedReceiver<Action>,
    updates: UnboundedSender<Update>,
) {
    while let Some(action) = requests.recv().await {
        let result = perform(&client, action).await;
        if updates.send(Update::Finished(result)).is_err() {
            break;
        }
    }
}

/// Loads views until the UI hangs up, newest request first.
pub(crate) async fn views(
    client: Client,
    mut requests: UnboundedReceiver<ViewRequest>,
    updates: UnboundedSender<Update>,
) {
    while let Some(mut request) = requests.recv().await {
        while let Ok(newer) = requests.try_recv() {
            request = newer;
        }
        let snapshot = load(&client, request).await;
        if updates.send(Update::Snapshot(snapshot)).is_err() {
            break;
        }
    }
}

/// The security alerts of earlier sessions nobody has seen yet, then the
/// first sync (whose own alerts arrive as events).
pub(crate) async fn start(client: Client, updates: UnboundedSender<Update>) {
    if let Ok(alerts) = client.security_alerts(true).await
        && !alerts.is_empty()
    {
        let _ = updates.send(Update::EarlierAlerts(alerts));
    }
    let synced = client.sync().await.map(|_| ()).map_err(|e| e.to_string());
    let _ = updates.send(Update::Synced(synced));
    if let Ok(commands) = client.commands().await {
        let commands = commands.into_iter().map(|c| (c.name, c.usage)).collect();
        let _ = updates.send(Update::Commands(commands));
    }
}

/// Runs one transfer to its end, reporting progress on the way.
pub(crate) async fn transfer(client: Client, transfer: Transfer, updates: UnboundedSender<Update>) {
    let Transfer {
        id,
        channel,
        direction,
    } = transfer;
    let result = match direction {
        Direction::Upload { path, caption } => {
            upload(&client, id, &channel, &path, &caption, &updates).await
        }
        Direction::Download { seq, to } => {
            download(&client, id, &channel, seq, to.as_deref(), &updates).await
        }
    };
    let _ = updates.send(Update::Transferred { id, result });
}

async fn upload(
    client: &Client,
    id: u64,
    channel: &str,
    typed: &str,
    caption: &str,
    updates: &UnboundedSender<Update>,
) -> Result<String, String> {
    let path = local_path(typed);
    let name = path
        .file_name()
        .map_or_else(|| typed.to_owned(), |n| n.to_string_lossy().into_owned());
    let mut meter = Meter::new(id, format!("uploading {name}"), updates.clone());
    let seq = named(client, channel)
        .await?
        .upload(&path, caption, move |done, total| meter.report(done, total))
        .await
        .map_err(|e| e.to_string())?;
    Ok(format!("shared {name} in {channel} (#{seq})"))
}

async fn download(
    client: &Client,
    id: u64,
    channel: &str,
    seq: u64,
    to: Option<&str>,
    updates: &UnboundedSender<Update>,
) -> Result<String, String> {
    let error = |e: conclave_client::ClientError| e.to_string();
    // The entry itself, not just its id: "#7 has no file" reads better than
    // client-core's answer, which can only name the message by its id.
    let channel = named(client, channel).await?;
    let history = channel.history().await.map_err(error)?;
    let entry = history
        .iter()
        .find(|e| e.seq == seq)
        .ok_or_else(|| format!("no message #{seq} in {}", channel.name()))?;
    let file = entry
        .file
        .as_ref()
        .filter(|_| !entry.deleted)
        .ok_or_else(|| format!("message #{seq} has no file"))?;
    // Absolute, so the final notice says exactly where the file went.
    let destination = local_path(to.unwrap_or("."));
    let destination = std::path::absolute(&destination).unwrap_or(destination);
    let mut meter = Meter::new(id, format!("downloading {}", file.name), updates.clone());
    let (saved, info) = channel
        .download(&entry.id, &destination, move |done, total| {
            meter.report(done, total)
        })
        .await
        .map_err(error)?;
    Ok(format!(
        "saved {} ({}, SHA-256 verified)",
        saved.display(),
        crate::human_size(info.size)
    ))
}

/// Turns client-core's progress calls into status lines, one per percent
/// at most, so a large file does not flood the UI with redraws.
struct Meter {
    id: u64,
    label: String,
    updates: UnboundedSender<Update>,
    shown: Option<u64>,
}

impl Meter {
    fn new(id: u64, label: String, updates: UnboundedSender<Update>) -> Self {
        Self {
            id,
            label,
            updates,
            shown: None,
        }
    }

    fn report(&mut self, done: u64, total: u64) {
        let percent = percent(done, total);
        if self.shown == Some(percent) {
            return;
        }
        self.shown = Some(percent);
        let _ = self.updates.send(Update::Progress {
            id: self.id,
            line: progress_line(&self.label, done, total),
        });
    }
}

fn percent(done: u64, total: u64) -> u64 {
    if total == 0 {
        100
    } else {
        (u128::from(done.min(total)) * 100 / u128::from(total)) as u64
    }
}

/// `uploading plan.pdf 42% (4.2 MB of 10.0 MB)`.
pub(crate) fn progress_line(label: &str, done: u64, total: u64) -> String {
    format!(
        "{label} {}% ({} of {})",
        percent(done, total),
        crate::human_size(done),
        crate::human_size(total)
    )
}

/// A path as typed, with a leading `~` meaning the home directory.
fn local_path(typed: &str) -> PathBuf {
    let home = std::env::var_os("HOME").map(PathBuf::from);
    expand_home(typed, home.as_deref())
}

/// `~` and `~/…` under `home`; anything else (`~bob/…` included) as typed.
fn expand_home(typed: &str, home: Option<&Path>) -> PathBuf {
    match (typed.strip_prefix('~'), home) {
        (Some(""), Some(home)) => home.to_owned(),
        (Some(rest), Some(home)) if rest.starts_with('/') => {
            home.join(rest.trim_start_matches('/'))
        }
        _ => PathBuf::from(typed),
    }
}

fn quiet() -> Done {
    Done::default()
}

fn notice(text: String) -> Done {
    Done {
        notice: Some(text),
        ..Done::default()
    }
}

/// Switch to `channel`, which this device may have just entered.
fn entered(channel: String, notice: Option<String>) -> Done {
    Done {
        notice,
        select: Some(channel),
        ..Done::default()
    }
}

/// The one device of this account whose id is, or starts with, `typed`;
/// never this device, nor one revoked already.
fn device_to_revoke<'a>(devices: &'a [DeviceInfo], typed: &str) -> Result<&'a DeviceInfo, String> {
    let matching: Vec<&DeviceInfo> = devices
        .iter()
        .filter(|d| d.device_id.starts_with(typed))
        .collect();
    let device = match matching.as_slice() {
        [] => {
            return Err(format!(
                "no device {typed} on your account: /devices lists them"
            ));
        }
        [device] => *device,
        several => {
            return Err(format!(
                "{typed} starts {} device ids: type more of the one to revoke",
                several.len()
            ));
        }
    };
    if device.current {
        return Err(format!(
            "{} is this device: /revoke signs out your other devices (to sign this one out, \
             /quit, then run `conclave device revoke {}`)",
            device.device_id, device.device_id
        ));
    }
    if device.revoked_at.is_some() {
        return Err(format!("{} is revoked already", device.device_id));
    }
    Ok(device)
}

/// The device `typed` names and what its owner will be asked for.
async fn revoke_target(client: &Client, typed: &str) -> Result<RevokeTarget, String> {
    let error = |e: ClientError| e.to_string();
    let devices = client.devices().await.map_err(error)?;
    let device_id = device_to_revoke(&devices, typed)?.device_id.clone();
    let account = client.account().await.map_err(error)?;
    let factor = FactorAsked::for_account(&account)?;
    Ok(RevokeTarget { device_id, factor })
}

/// One line for a refused revocation. A refusal of the proof (wrong
/// password, a code refused or missing, too many attempts) names what to
/// fix and leaves the device as it was; the relay's code is kept for
/// whoever reads it to a helper.
fn revoke_refused(device_id: &str, error: ClientError) -> String {
    match error {
        ClientError::Server { code, message, .. } => {
            let reason = match code.as_str() {
                // The username is not in doubt here.
                "bad_credentials" => "wrong password".to_owned(),
                _ => message,
            };
            format!("{device_id} was not revoked: {reason} ({code})")
        }
        other => format!("revoking {device_id} failed: {other}"),
    }
}

/// The channel the TUI shows as `name`.
async fn named(client: &Client, name: &str) -> Result<Channel, String> {
    client.channel_named(name).await.map_err(|e| e.to_string())
}

async fn perform(client: &Client, action: Action) -> Result<Done, String> {
    let error = |e: conclave_client::ClientError| e.to_string();
    match action {
        Action::Send { channel, text } => {
            named(client, &channel)
                .await?
                .send(&text)
                .await
                .map_err(error)?;
            Ok(quiet())
        }
        Action::Reply { channel, seq, text } => {
            let channel = named(client, &channel).await?;
            let parent = channel.message_id_at(seq).await.map_err(error)?;
            channel.reply(&parent, &text).await.map_err(error)?;
            Ok(quiet())
        }
        Action::React {
            channel,
            seq,
            emoji,
            add,
        } => {
            let channel = named(client, &channel).await?;
            let target = channel.message_id_at(seq).await.map_err(error)?;
            match channel.react(&target, &emoji, add).await.map_err(error)? {
                conclave_client::Reacted::Unchanged { emoji } if add => Ok(notice(format!(
                    "you already reacted {emoji} on #{seq}; nothing changed"
                ))),
                conclave_client::Reacted::Unchanged { emoji } => Ok(notice(format!(
                    "you had not reacted {emoji} on #{seq}; nothing changed"
                ))),
                _ => Ok(quiet()),
            }
        }
        Action::Edit { channel, seq, text } => {
            let channel = named(client, &channel).await?;
            let target = channel.message_id_at(seq).await.map_err(error)?;
            channel.edit(&target, &text).await.map_err(error)?;
            Ok(notice(format!("edited #{seq}")))
        }
        Action::Delete { channel, seq } => {
            let channel = named(client, &channel).await?;
            let target = channel.message_id_at(seq).await.map_err(error)?;
            channel.delete(&target).await.map_err(error)?;
            Ok(notice(format!("deleted #{seq}")))
        }
        Action::Topic { channel, topic } => {
            named(client, &channel)
                .await?
                .set_topic(&topic)
                .await
                .map_err(error)?;
            Ok(notice(if topic.is_empty() {
                format!("topic of {channel} cleared")
            } else {
                format!("topic of {channel} set")
            }))
        }
        Action::Rename { channel, name } => {
            named(client, &channel)
                .await?
                .rename(&name)
                .await
                .map_err(error)?;
            // The next snapshot lists it by its new name, and the UI
            // follows it there by its group id.
            Ok(notice(format!("renamed {channel} to {name}")))
        }
        Action::Direct { users, text } => {
            let people: Vec<&str> = users.iter().map(String::as_str).collect();
            let direct = client.direct(&people).await.map_err(error)?;
            direct.send(&text).await.map_err(error)?;
            Ok(entered(direct.name().to_owned(), None))
        }
        Action::Leave { channel } => {
            named(client, &channel)
                .await?
                .leave()
                .await
                .map_err(error)?;
            Ok(notice(format!(
                "left {channel}; an invitation brings you back"
            )))
        }
        Action::Join { channel } => {
            client.join(&channel).await.map_err(error)?;
            let joined = format!("joined {channel}");
            Ok(entered(channel, Some(joined)))
        }
        Action::Create {
            name,
            public: false,
            ..
        } => {
            client.create_channel(&name).await.map_err(error)?;
            let created = format!("created {name}: /invite USER to add people");
            Ok(entered(name, Some(created)))
        }
        Action::Create {
            name,
            public: true,
            topic,
        } => {
            client
                .create_public_channel(&name, &topic)
                .await
                .map_err(error)?;
            let created =
                format!("created public channel {name}: anyone in the workspace can /join it");
            Ok(entered(name, Some(created)))
        }
        Action::Invite { channel, user } => {
            named(client, &channel)
                .await?
                .invite(&user)
                .await
                .map_err(error)?;
            Ok(notice(format!("invited {user} to {channel}")))
        }
        Action::Commands => {
            let commands = client.commands().await.map_err(error)?;
            if commands.is_empty() {
                return Ok(notice("this workspace has no commands yet".into()));
            }
            let list: Vec<String> = commands
                .iter()
                .map(|c| format!("{} ({})", c.usage, c.bot))
                .collect();
            Ok(notice(list.join(" · ")))
        }
        Action::RunCommand { channel, line } => {
            let sent = named(client, &channel)
                .await?
                .run_command(&line)
                .await
                .map_err(error)?;
            let to: Vec<String> = sent
                .iter()
                .map(|s| format!("{} (#{})", s.bot, s.seq))
                .collect();
            Ok(notice(format!("sent to {}", to.join(", "))))
        }
        Action::Members { channel } => {
            let members = named(client, &channel)
                .await?
                .members()
                .await
                .map_err(error)?;
            let list: Vec<String> = members.iter().map(crate::describe_member).collect();
            Ok(notice(format!("in {channel}: {}", list.join(", "))))
        }
        Action::PrepareRevoke { device } => {
            // A refusal is the prompt's answer too (it must close), so it
            // travels in `Done`, not as this action's error.
            let result = revoke_target(client, &device).await;
            Ok(Done {
                revoke_check: Some(RevokeCheck {
                    typed: device,
                    result,
                }),
                ..Done::default()
            })
        }
        Action::Revoke { device_id, proof } => {
            client
                .revoke_device(&device_id, Some(proof.credentials()))
                .await
                .map_err(|e| revoke_refused(&device_id, e))?;
            Ok(notice(format!(
                "revoked {device_id}: its session is closed and it is being removed from your channels"
            )))
        }
    }
}

async fn load(client: &Client, request: ViewRequest) -> Snapshot {
    let error = |e: conclave_client::ClientError| e.to_string();
    let selected = match &request.selected {
        Some(name) => Some(named(client, name).await),
        None => None,
    };
    // Looking at a channel reads it: mark it before counting what is unread.
    let mark = match (&selected, &request.view) {
        (Some(Ok(channel)), View::Channel | View::Thread { .. }) => {
            channel.mark_read().await.map_err(error)
        }
        _ => Ok(()),
    };
    let channels = client.channels().await.map_err(error);
    let listing = match (selected, &request.view) {
        (_, View::Browse) => client
            .public_channels()
            .await
            .map(Listing::PublicChannels)
            .map_err(error),
        (_, View::Search(query)) => client
            .search(query)
            .await
            .map(Listing::Messages)
            .map_err(error),
        (_, View::Devices) => client.devices().await.map(Listing::Devices).map_err(error),
        (_, View::Help) | (None, _) => Ok(Listing::default()),
        (Some(Err(e)), _) => Err(e),
        (Some(Ok(channel)), View::Channel) => channel
            .history()
            .await
            .map(Listing::Messages)
            .map_err(error),
        (Some(Ok(channel)), View::Thread { seq }) => match channel.message_id_at(*seq).await {
            Ok(parent) => channel
                .thread(&parent)
                .await
                .map(Listing::Messages)
                .map_err(error),
            Err(e) => Err(error(e)),
        },
    };
    let listing = match (mark, listing) {
        (_, Err(e)) | (Err(e), Ok(_)) => Err(e),
        (Ok(()), Ok(listing)) => Ok(listing),
    };
    Snapshot {
        request,
        channels,
        listing,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_leading_tilde_is_the_home_directory() {
        let home = Path::new("/home/bob");
        assert_eq!(expand_home("~", Some(home)), home);
        assert_eq!(
            expand_home("~/Downloads/plan.pdf", Some(home)),
            Path::new("/home/bob/Downloads/plan.pdf")
        );
        assert_eq!(expand_home("~carol/x", Some(home)), Path::new("~carol/x"));
        assert_eq!(expand_home("a/~/b", Some(home)), Path::new("a/~/b"));
        assert_eq!(expand_home("~/x", None), Path::new("~/x"));
    }

    #[test]
    fn progress_reads_as_percent_and_sizes() {
        assert_eq!(
            progress_line("uploading plan.pdf", 4_200_000, 10_000_000),
            "uploading plan.pdf 42% (4.2 MB of 10.0 MB)"
        );
        assert_eq!(
            progress_line("downloading empty", 0, 0),
            "downloading empty 100% (0 B of 0 B)"
        );
    }

    #[test]
    fn the_meter_reports_each_percent_once() {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let mut meter = Meter::new(3, "uploading a".into(), tx);
        for done in [0, 1, 2, 500, 1000] {
            meter.report(done, 1000);
        }
        let mut lines = Vec::new();
        while let Ok(Update::Progress { id, line }) = rx.try_recv() {
            assert_eq!(id, 3);
            lines.push(line);
        }
        assert_eq!(
            lines,
            [
                "uploading a 0% (0 B of 1.0 kB)",
                "uploading a 50% (500 B of 1.0 kB)",
                "uploading a 100% (1.0 kB of 1.0 kB)"
            ]
        );
    }

    fn device(id: &str, current: bool, revoked: bool) -> DeviceInfo {
        DeviceInfo {
            device_id: id.into(),
            created_at: 0,
            last_seen_at: 0,
            revoked_at: revoked.then_some(1),
            session_active: !revoked,
            current,
        }
    }

    #[test]
    fn a_device_to_revoke_is_named_by_a_unique_prefix_and_is_another_one() {
        let devices = [
            device("3f4c01", true, false),
            device("3f4c02", false, false),
            device("9a0b01", false, true),
            device("9a0b02", false, false),
        ];
        assert_eq!(
            device_to_revoke(&devices, "3f4c02").unwrap().device_id,
            "3f4c02"
        );
        assert_eq!(
            device_to_revoke(&devices, "9a0b0").unwrap_err(),
            "9a0b0 starts 2 device ids: type more of the one to revoke"
        );
        assert_eq!(
            device_to_revoke(&devices, "9a0b02").unwrap().device_id,
            "9a0b02"
        );
        for (typed, expected) in [
            ("3f4c01", "is this device"),
            ("9a0b01", "revoked already"),
            ("ffff", "no device ffff on your account"),
        ] {
            let refused = device_to_revoke(&devices, typed).unwrap_err();
            assert!(refused.contains(expected), "{typed}: {refused}");
        }
    }

    #[test]
    fn a_refused_revocation_says_why_in_one_line() {
        let refused = |code: &str, message: &str| {
            revoke_refused(
                "3f4c",
                ClientError::Server {
                    status: 401,
                    code: code.into(),
                    message: message.into(),
                },
            )
        };
        assert_eq!(
            refused("bad_credentials", "wrong username or password"),
            "3f4c was not revoked: wrong password (bad_credentials)"
        );
        assert_eq!(
            refused(
                "second_factor_invalid",
                "second factor rejected: totp code wrong or reused"
            ),
            "3f4c was not revoked: second factor rejected: totp code wrong or reused \
             (second_factor_invalid)"
        );
        let local = revoke_refused("3f4c", ClientError::Invalid("no".into()));
        assert_eq!(local, "revoking 3f4c failed: no");
    }
}
