//! What members say about the channel itself: its name when a member
//! announces it to newcomers, a rename, a topic. The name and topic travel
//! only inside the group: the relay never sees them.

use std::collections::BTreeSet;

use sqlx::SqliteConnection;

use super::Received;
use crate::channel::validate_channel_name;
use crate::error::Result;
use crate::event::Event;
use crate::store::channels;

/// A member's announcement of the channel's name, kind and topic (what an
/// inviter owes the people it added).
pub(super) struct Announcement<'a> {
    pub(super) name: &'a str,
    pub(super) direct: bool,
    pub(super) topic: &'a str,
    /// `public`, `self` (the account's own devices), or empty.
    pub(super) scope: &'a str,
}

/// A channel that still goes by its placeholder takes the name `announcer`
/// announced (made unique among this device's channels), its kind and its
/// topic. A channel named already (this device created it, or an earlier
/// announcement came) keeps its name.
pub(super) async fn take_name(
    tx: &mut SqliteConnection,
    group_id: &str,
    placeholder: &str,
    announcement: &Announcement<'_>,
    announcer: &str,
    me: &str,
) -> Result<Option<Event>> {
    let announced = if announcement.direct {
        direct_name(announcement.name, announcer, me)
    } else {
        announcement.name.to_owned()
    };
    let kind = match announcement.scope {
        _ if announcement.direct => "dm",
        "public" => "public",
        // Only this account can declare a group its own.
        "self" if announcer == me => "self",
        _ => "channel",
    };
    if !channels::is_unnamed(tx, group_id).await? {
        return Ok(None);
    }
    if validate_channel_name(&announced).is_err() {
        // Another member's bad input must not stall our queue.
        tracing::warn!(group = %group_id, "invalid channel name announced; ignored");
        return Ok(None);
    }
    let fresh = channels::unique_name(tx, &announced).await?;
    channels::take_name(tx, group_id, &fresh, kind, announcement.topic).await?;
    Ok(Some(Event::Named {
        placeholder: placeholder.to_owned(),
        name: fresh,
        group_id: group_id.to_owned(),
    }))
}

/// A member renamed the channel. A direct message keeps the names of its
/// people.
pub(super) async fn apply_rename(
    tx: &mut SqliteConnection,
    message: &Received<'_>,
    wanted: &str,
) -> Result<Vec<Event>> {
    let group_id = message.group_id;
    let kind = channels::kind_of(tx, group_id).await?;
    if matches!(kind.as_deref(), Some("dm" | "self")) {
        tracing::warn!(group = %group_id, "a rename of a direct message ignored");
        return Ok(Vec::new());
    }
    if validate_channel_name(wanted).is_err() {
        // Another member's bad input must not stall our queue.
        tracing::warn!(group = %group_id, "invalid channel name in a rename; ignored");
        return Ok(Vec::new());
    }
    if wanted == message.channel {
        return Ok(Vec::new());
    }
    // Made unique among this device's channels, as a name announced at
    // join is.
    let renamed = channels::unique_name(tx, wanted).await?;
    channels::rename(tx, group_id, &renamed).await?;
    Ok(vec![Event::Renamed {
        from: message.channel.to_owned(),
        to: renamed,
        by: message.author.user.to_owned(),
        group_id: group_id.to_owned(),
    }])
}

/// A member set the channel's topic.
pub(super) async fn apply_topic(
    tx: &mut SqliteConnection,
    message: &Received<'_>,
    topic: String,
) -> Result<Vec<Event>> {
    channels::set_topic(tx, message.group_id, &topic).await?;
    Ok(vec![Event::TopicChanged {
        channel: message.channel.to_owned(),
        group_id: message.group_id.to_owned(),
        topic,
        by: message.author.user.to_owned(),
    }])
}

/// A direct message's local name: `@` and every participant but this
/// account, from the name its announcer gave it (the participants but the
/// announcer) and the announcer.
fn direct_name(announced: &str, announcer: &str, me: &str) -> String {
    let mut people: BTreeSet<&str> = announced
        .trim_start_matches('@')
        .split(',')
        .filter(|p| !p.is_empty())
        .collect();
    people.insert(announcer);
    people.remove(me);
    format!("@{}", people.into_iter().collect::<Vec<_>>().join(","))
}
