//! A read position from another device of this account, through the
//! account's own `self` group: the channel's unread count follows it.

use sqlx::SqliteConnection;

use super::Received;
use crate::error::Result;
use crate::event::Event;
use crate::store::channels;

pub(super) async fn apply(
    tx: &mut SqliteConnection,
    message: &Received<'_>,
    target: &str,
    read: u64,
) -> Result<Vec<Event>> {
    // Only this account's own devices, in their own group, move its read
    // positions.
    let own_group = channels::kind_of(tx, message.group_id).await?.as_deref() == Some("self");
    if message.by_someone_else() || !own_group {
        tracing::warn!(group = %message.group_id, seq = message.seq, "a read position from elsewhere ignored");
        return Ok(Vec::new());
    }
    if !channels::move_read(tx, target, read).await? {
        return Ok(Vec::new());
    }
    let name = channels::name_of(tx, target).await?;
    Ok(name
        .map(|name| Event::ReadElsewhere {
            channel: name,
            group_id: target.to_owned(),
        })
        .into_iter()
        .collect())
}
