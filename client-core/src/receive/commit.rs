//! A commit merged: who joined the channel, who left, and whether this
//! device was removed. A commit of this device's that added someone leaves
//! a debt: the channel's name, owed to the newcomers.

use std::collections::{BTreeMap, BTreeSet};

use sqlx::SqliteConnection;

use crate::error::Result;
use crate::event::Event;
use crate::store::{channels, pending};

/// Members (users and their devices) before and after a commit.
pub(super) struct Change<'a> {
    pub(super) before: &'a BTreeMap<String, BTreeSet<String>>,
    pub(super) after: &'a BTreeMap<String, BTreeSet<String>>,
    /// The commit removed this device.
    pub(super) self_removed: bool,
    /// The commit was this device's own.
    pub(super) own: bool,
}

pub(super) async fn apply(
    tx: &mut SqliteConnection,
    group_id: &str,
    name: &str,
    change: &Change<'_>,
) -> Result<Vec<Event>> {
    let Change {
        before,
        after,
        self_removed,
        own,
    } = *change;
    pending::forget_commit(tx, group_id).await?;
    let added: Vec<String> = after
        .keys()
        .filter(|u| !before.contains_key(*u))
        .cloned()
        .collect();
    let new_device = after.iter().any(|(user, devices)| {
        devices
            .iter()
            .any(|d| !before.get(user).is_some_and(|known| known.contains(d)))
    });
    if own && new_device {
        // We added someone (a user or a device): we owe them the channel's
        // name. Recorded in this transaction so a crash or a lost answer
        // cannot skip it.
        pending::owe_announcement(tx, group_id).await?;
    }
    let removed: Vec<String> = before
        .keys()
        .filter(|u| !after.contains_key(*u))
        .cloned()
        .collect();
    if self_removed {
        channels::deactivate(tx, group_id).await?;
        return Ok(vec![Event::Removed {
            channel: name.to_owned(),
            group_id: group_id.to_owned(),
        }]);
    }
    if added.is_empty() && removed.is_empty() {
        return Ok(Vec::new());
    }
    Ok(vec![Event::MembersChanged {
        channel: name.to_owned(),
        group_id: group_id.to_owned(),
        added,
        removed,
    }])
}
