//! The two tasks that call client-core for the UI, so the UI never waits
//! on the network or the local store:
//!
//! - **actions** runs what the user asked for (send, react, edit, …) one at
//!   a time, in the order typed, so two quick messages arrive in that order;
//! - **views** loads the channel list and what the message pane shows,
//!   skipping straight to the newest request when several queued up while it
//!   was busy (a burst of relay events costs one load, not one per event).
//!
//! Both report back as [`Update`]s. Errors travel as their one-line
//! `Display`, which client-core keeps free of message text and secrets.

use conclave_client::{Channel, Client, HistoryEntry, SearchQuery};
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender};

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
    Direct {
        users: Vec<String>,
        text: String,
    },
    Leave {
        channel: String,
    },
    Create {
        name: String,
    },
    Invite {
        channel: String,
        user: String,
    },
    Members {
        channel: String,
    },
}

/// What an action achieved.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Done {
    /// A line for the status bar, if the result is not visible anyway.
    pub(crate) notice: Option<String>,
    /// A channel to switch to (a new DM or channel).
    pub(crate) select: Option<String>,
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
}

/// What to load: the channel list, and the entries of `view` in `selected`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ViewRequest {
    pub(crate) selected: Option<String>,
    pub(crate) view: View,
}

/// The loaded state for one [`ViewRequest`].
#[derive(Debug)]
pub(crate) struct Snapshot {
    pub(crate) request: ViewRequest,
    pub(crate) channels: Result<Vec<Channel>, String>,
    pub(crate) entries: Result<Vec<HistoryEntry>, String>,
}

/// What the tasks report to the UI loop.
#[derive(Debug)]
pub(crate) enum Update {
    /// Security alerts raised before this session that were never shown.
    EarlierAlerts(Vec<conclave_client::SecurityAlert>),
    /// The first sync finished (the push stream starts after it).
    Synced(Result<(), String>),
    Snapshot(Snapshot),
    Finished(Result<Done, String>),
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
}

fn quiet() -> Done {
    Done::default()
}

fn notice(text: String) -> Done {
    Done {
        notice: Some(text),
        select: None,
    }
}

async fn perform(client: &Client, action: Action) -> Result<Done, String> {
    let error = |e: conclave_client::ClientError| e.to_string();
    match action {
        Action::Send { channel, text } => {
            client.send(&channel, &text).await.map_err(error)?;
            Ok(quiet())
        }
        Action::Reply { channel, seq, text } => {
            let parent = client.message_id_at(&channel, seq).await.map_err(error)?;
            client
                .reply(&channel, &parent, &text)
                .await
                .map_err(error)?;
            Ok(quiet())
        }
        Action::React {
            channel,
            seq,
            emoji,
            add,
        } => {
            let target = client.message_id_at(&channel, seq).await.map_err(error)?;
            client
                .react(&channel, &target, &emoji, add)
                .await
                .map_err(error)?;
            Ok(quiet())
        }
        Action::Edit { channel, seq, text } => {
            let target = client.message_id_at(&channel, seq).await.map_err(error)?;
            client.edit(&channel, &target, &text).await.map_err(error)?;
            Ok(notice(format!("edited #{seq}")))
        }
        Action::Delete { channel, seq } => {
            let target = client.message_id_at(&channel, seq).await.map_err(error)?;
            client.delete(&channel, &target).await.map_err(error)?;
            Ok(notice(format!("deleted #{seq}")))
        }
        Action::Topic { channel, topic } => {
            client.set_topic(&channel, &topic).await.map_err(error)?;
            Ok(notice(if topic.is_empty() {
                format!("topic of {channel} cleared")
            } else {
                format!("topic of {channel} set")
            }))
        }
        Action::Direct { users, text } => {
            let people: Vec<&str> = users.iter().map(String::as_str).collect();
            let channel = client.direct(&people).await.map_err(error)?;
            client.send(&channel, &text).await.map_err(error)?;
            Ok(Done {
                notice: None,
                select: Some(channel),
            })
        }
        Action::Leave { channel } => {
            client.leave(&channel).await.map_err(error)?;
            Ok(notice(format!(
                "left {channel}; an invitation brings you back"
            )))
        }
        Action::Create { name } => {
            client.create_channel(&name).await.map_err(error)?;
            Ok(Done {
                notice: Some(format!("created {name}: /invite USER to add people")),
                select: Some(name),
            })
        }
        Action::Invite { channel, user } => {
            client.invite(&channel, &user).await.map_err(error)?;
            Ok(notice(format!("invited {user} to {channel}")))
        }
        Action::Members { channel } => {
            let members = client.members(&channel).await.map_err(error)?;
            let list: Vec<String> = members
                .iter()
                .map(|m| {
                    let n = m.devices.len();
                    format!("{} ({n} device{})", m.user, if n == 1 { "" } else { "s" })
                })
                .collect();
            Ok(notice(format!("in {channel}: {}", list.join(", "))))
        }
    }
}

async fn load(client: &Client, request: ViewRequest) -> Snapshot {
    let error = |e: conclave_client::ClientError| e.to_string();
    // Looking at a channel reads it: mark it before counting what is unread.
    let mark = match (&request.selected, &request.view) {
        (Some(channel), View::Channel | View::Thread { .. }) => {
            client.mark_read(channel).await.map_err(error)
        }
        _ => Ok(()),
    };
    let channels = client.channels().await.map_err(error);
    let entries = match (&request.selected, &request.view) {
        (_, View::Search(query)) => client.search(query).await.map_err(error),
        (_, View::Help) | (None, _) => Ok(Vec::new()),
        (Some(channel), View::Channel) => client.history(channel).await.map_err(error),
        (Some(channel), View::Thread { seq }) => match client.message_id_at(channel, *seq).await {
            Ok(parent) => client.thread(channel, &parent).await.map_err(error),
            Err(e) => Err(error(e)),
        },
    };
    let entries = match (mark, entries) {
        (_, Err(e)) | (Err(e), Ok(_)) => Err(e),
        (Ok(()), Ok(entries)) => Ok(entries),
    };
    Snapshot {
        request,
        channels,
        entries,
    }
}
