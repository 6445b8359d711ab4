//! A read position from another device of this account, through the
//! account's own `self` group: the channel's unread count follows it.

use sqlx::{Row, SqliteConnection};

use super::Received;
use crate::error::Result;
use crate::event::Event;
use crate::messaging::to_i64;

pub(super) async fn apply(
    tx: &mut SqliteConnection,
    message: &Received<'_>,
    target: &str,
    read: u64,
) -> Result<Vec<Event>> {
    // Only this account's own devices, in their own group, move its read
    // positions.
    let own_group = sqlx::query("SELECT kind FROM channels WHERE group_id = $1")
        .bind(message.group_id)
        .fetch_optional(&mut *tx)
        .await?
        .is_some_and(|r| r.get::<String, _>(0) == "self");
    if message.by_someone_else() || !own_group {
        tracing::warn!(group = %message.group_id, seq = message.seq, "a read position from elsewhere ignored");
        return Ok(Vec::new());
    }
    let moved =
        sqlx::query("UPDATE channels SET read_seq = $2 WHERE group_id = $1 AND read_seq < $2")
            .bind(target)
            .bind(to_i64(read))
            .execute(&mut *tx)
            .await?
            .rows_affected()
            == 1;
    if !moved {
        return Ok(Vec::new());
    }
    let name: Option<String> = sqlx::query("SELECT name FROM channels WHERE group_id = $1")
        .bind(target)
        .fetch_optional(&mut *tx)
        .await?
        .map(|r| r.get(0));
    Ok(name
        .map(|name| Event::ReadElsewhere { channel: name })
        .into_iter()
        .collect())
}
