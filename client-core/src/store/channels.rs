//! The `channels` table: every group this device is or was in, by local
//! name, with its kind (`channel`, `public`, `dm`, or `self` for the
//! account's own devices), topic, cursors and flags.

use sqlx::{Row, SqliteConnection};

use super::to_i64;
use crate::channel_info::ChannelInfo;
use crate::error::Result;

/// A channel as this device first records it.
pub(crate) struct NewChannel<'a> {
    pub(crate) group_id: &'a str,
    pub(crate) name: &'a str,
    /// The last position processed (the join's, or 0 for a new group).
    pub(crate) processed_seq: u64,
    pub(crate) kind: &'a str,
    pub(crate) topic: &'a str,
    /// `false` while a joined channel goes by its placeholder name.
    pub(crate) named: bool,
}

/// Records a channel this device is a member of.
pub(crate) async fn insert(db: &mut SqliteConnection, channel: &NewChannel<'_>) -> Result<()> {
    sqlx::query(
        "INSERT INTO channels (group_id, name, processed_seq, active, kind, topic, named)
         VALUES ($1, $2, $3, 1, $4, $5, $6)",
    )
    .bind(channel.group_id)
    .bind(channel.name)
    .bind(to_i64(channel.processed_seq))
    .bind(channel.kind)
    .bind(channel.topic)
    .bind(i64::from(channel.named))
    .execute(&mut *db)
    .await?;
    Ok(())
}

/// Records a public channel joined on this device's own (again, if it was
/// a member before).
pub(crate) async fn join_public(
    db: &mut SqliteConnection,
    group_id: &str,
    name: &str,
    processed_seq: u64,
    topic: &str,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO channels (group_id, name, processed_seq, active, kind, topic, named)
         VALUES ($1, $2, $3, 1, 'public', $4, 1)
         ON CONFLICT (group_id) DO UPDATE SET
           active = 1, processed_seq = excluded.processed_seq, topic = excluded.topic",
    )
    .bind(group_id)
    .bind(name)
    .bind(to_i64(processed_seq))
    .bind(topic)
    .execute(&mut *db)
    .await?;
    Ok(())
}

/// The group id of the channel named `name`, and whether this device is
/// still a member.
pub(crate) async fn by_name(
    db: &mut SqliteConnection,
    name: &str,
) -> Result<Option<(String, bool)>> {
    Ok(
        sqlx::query("SELECT group_id, active FROM channels WHERE name = $1")
            .bind(name)
            .fetch_optional(&mut *db)
            .await?
            .map(|row| (row.get(0), row.get::<i64, _>(1) != 0)),
    )
}

/// Whether this device is still a member of the group `group_id`.
pub(crate) async fn is_active(db: &mut SqliteConnection, group_id: &str) -> Result<bool> {
    Ok(
        sqlx::query_scalar::<_, i64>("SELECT active FROM channels WHERE group_id = $1")
            .bind(group_id)
            .fetch_optional(&mut *db)
            .await?
            == Some(1),
    )
}

/// The local name of the channel of `group_id`, if this device has it.
pub(crate) async fn name_of(db: &mut SqliteConnection, group_id: &str) -> Result<Option<String>> {
    Ok(
        sqlx::query_scalar("SELECT name FROM channels WHERE group_id = $1")
            .bind(group_id)
            .fetch_optional(&mut *db)
            .await?,
    )
}

/// The local name of the channel of `group_id`, which this device has.
pub(crate) async fn name(db: &mut SqliteConnection, group_id: &str) -> Result<String> {
    Ok(
        sqlx::query_scalar("SELECT name FROM channels WHERE group_id = $1")
            .bind(group_id)
            .fetch_one(&mut *db)
            .await?,
    )
}

/// The kind of the channel of `group_id`, if this device has it.
pub(crate) async fn kind_of(db: &mut SqliteConnection, group_id: &str) -> Result<Option<String>> {
    Ok(
        sqlx::query_scalar("SELECT kind FROM channels WHERE group_id = $1")
            .bind(group_id)
            .fetch_optional(&mut *db)
            .await?,
    )
}

/// Whether a channel of this device goes by `name`.
pub(crate) async fn name_taken(db: &mut SqliteConnection, name: &str) -> Result<bool> {
    Ok(sqlx::query("SELECT 1 FROM channels WHERE name = $1")
        .bind(name)
        .fetch_optional(&mut *db)
        .await?
        .is_some())
}

/// `wanted`, or `wanted-2`, `wanted-3`…: the first no channel of this
/// device goes by.
pub(crate) async fn unique_name(db: &mut SqliteConnection, wanted: &str) -> Result<String> {
    let mut candidate = wanted.to_owned();
    for n in 2.. {
        if !name_taken(db, &candidate).await? {
            break;
        }
        candidate = format!("{wanted}-{n}");
    }
    Ok(candidate)
}

/// What a send checks of the channel of `group_id`: its name, whether
/// this device is still a member, and whether it is archived.
pub(crate) struct SendCheck {
    pub(crate) name: String,
    pub(crate) active: bool,
    pub(crate) archived: bool,
}

/// The channel of `group_id` as a send checks it, in one read.
pub(crate) async fn send_check(db: &mut SqliteConnection, group_id: &str) -> Result<SendCheck> {
    let row = sqlx::query("SELECT name, active, archived FROM channels WHERE group_id = $1")
        .bind(group_id)
        .fetch_one(&mut *db)
        .await?;
    Ok(SendCheck {
        name: row.get(0),
        active: row.get::<i64, _>(1) != 0,
        archived: row.get::<i64, _>(2) != 0,
    })
}

/// Where the receive path stands in a channel: its name, the last position
/// processed, and whether this device is a member.
pub(crate) struct Cursor {
    pub(crate) name: String,
    pub(crate) processed_seq: u64,
    pub(crate) active: bool,
}

pub(crate) async fn cursor(db: &mut SqliteConnection, group_id: &str) -> Result<Option<Cursor>> {
    Ok(
        sqlx::query("SELECT name, processed_seq, active FROM channels WHERE group_id = $1")
            .bind(group_id)
            .fetch_optional(&mut *db)
            .await?
            .map(|r| Cursor {
                name: r.get(0),
                processed_seq: r.get::<i64, _>(1) as u64,
                active: r.get::<i64, _>(2) != 0,
            }),
    )
}

/// Moves the receive cursor to `seq`.
pub(crate) async fn set_processed(
    db: &mut SqliteConnection,
    group_id: &str,
    seq: u64,
) -> Result<()> {
    sqlx::query("UPDATE channels SET processed_seq = $2 WHERE group_id = $1")
        .bind(group_id)
        .bind(to_i64(seq))
        .execute(&mut *db)
        .await?;
    Ok(())
}

/// A member again (invited back), from position `seq` on.
pub(crate) async fn rejoin(db: &mut SqliteConnection, group_id: &str, seq: u64) -> Result<()> {
    sqlx::query("UPDATE channels SET active = 1, processed_seq = $2 WHERE group_id = $1")
        .bind(group_id)
        .bind(to_i64(seq))
        .execute(&mut *db)
        .await?;
    Ok(())
}

/// No longer a member (left, or removed).
pub(crate) async fn deactivate(db: &mut SqliteConnection, group_id: &str) -> Result<()> {
    sqlx::query("UPDATE channels SET active = 0 WHERE group_id = $1")
        .bind(group_id)
        .execute(&mut *db)
        .await?;
    Ok(())
}

/// Marks a channel archived; its name if it was not before.
pub(crate) async fn archive(db: &mut SqliteConnection, group_id: &str) -> Result<Option<String>> {
    Ok(sqlx::query_scalar(
        "UPDATE channels SET archived = 1 WHERE group_id = $1 AND archived = 0 RETURNING name",
    )
    .bind(group_id)
    .fetch_optional(&mut *db)
    .await?)
}

/// Whether the channel still goes by its placeholder name.
pub(crate) async fn is_unnamed(db: &mut SqliteConnection, group_id: &str) -> Result<bool> {
    let named: i64 = sqlx::query_scalar("SELECT named FROM channels WHERE group_id = $1")
        .bind(group_id)
        .fetch_one(&mut *db)
        .await?;
    Ok(named == 0)
}

/// Gives a channel going by its placeholder its name, kind and topic.
pub(crate) async fn take_name(
    db: &mut SqliteConnection,
    group_id: &str,
    name: &str,
    kind: &str,
    topic: &str,
) -> Result<()> {
    sqlx::query(
        "UPDATE channels SET name = $2, named = 1, kind = $3, topic = $4 WHERE group_id = $1",
    )
    .bind(group_id)
    .bind(name)
    .bind(kind)
    .bind(topic)
    .execute(&mut *db)
    .await?;
    Ok(())
}

pub(crate) async fn rename(db: &mut SqliteConnection, group_id: &str, name: &str) -> Result<()> {
    sqlx::query("UPDATE channels SET name = $2 WHERE group_id = $1")
        .bind(group_id)
        .bind(name)
        .execute(&mut *db)
        .await?;
    Ok(())
}

/// Makes the channel named `name` a direct message.
pub(crate) async fn make_direct(db: &mut SqliteConnection, name: &str) -> Result<()> {
    sqlx::query("UPDATE channels SET kind = 'dm' WHERE name = $1")
        .bind(name)
        .execute(&mut *db)
        .await?;
    Ok(())
}

pub(crate) async fn set_topic(
    db: &mut SqliteConnection,
    group_id: &str,
    topic: &str,
) -> Result<()> {
    sqlx::query("UPDATE channels SET topic = $2 WHERE group_id = $1")
        .bind(group_id)
        .bind(topic)
        .execute(&mut *db)
        .await?;
    Ok(())
}

/// Moves the read position forward to `seq`; whether it moved.
pub(crate) async fn move_read(db: &mut SqliteConnection, group_id: &str, seq: u64) -> Result<bool> {
    Ok(
        sqlx::query("UPDATE channels SET read_seq = $2 WHERE group_id = $1 AND read_seq < $2")
            .bind(group_id)
            .bind(to_i64(seq))
            .execute(&mut *db)
            .await?
            .rows_affected()
            == 1,
    )
}

/// The group ids of the account's own groups this device is in.
pub(crate) async fn own_groups(db: &mut SqliteConnection) -> Result<Vec<String>> {
    Ok(
        sqlx::query_scalar("SELECT group_id FROM channels WHERE kind = 'self' AND active = 1")
            .fetch_all(&mut *db)
            .await?,
    )
}

/// The local names of the account's own groups (hidden from the user).
pub(crate) async fn own_group_names(db: &mut SqliteConnection) -> Result<Vec<String>> {
    Ok(
        sqlx::query_scalar("SELECT name FROM channels WHERE kind = 'self'")
            .fetch_all(&mut *db)
            .await?,
    )
}

/// `(group id, name)` of every channel this device is a member of, by name.
pub(crate) async fn active(db: &mut SqliteConnection) -> Result<Vec<(String, String)>> {
    Ok(
        sqlx::query("SELECT group_id, name FROM channels WHERE active = 1 ORDER BY name")
            .fetch_all(&mut *db)
            .await?
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect(),
    )
}

/// The channels the user knows (not the account's own groups), by name,
/// with what `me` has not read in each.
pub(crate) async fn list(db: &mut SqliteConnection, me: &str) -> Result<Vec<ChannelInfo>> {
    listed(db, me, None).await
}

/// The channel `group_id` as [`list`] shows it (`None` for the account's
/// own channel or one this device does not know).
pub(crate) async fn info(
    db: &mut SqliteConnection,
    me: &str,
    group_id: &str,
) -> Result<Option<ChannelInfo>> {
    Ok(listed(db, me, Some(group_id)).await?.pop())
}

async fn listed(
    db: &mut SqliteConnection,
    me: &str,
    only: Option<&str>,
) -> Result<Vec<ChannelInfo>> {
    let rows = sqlx::query(
        "SELECT c.name, c.group_id, c.active, c.kind, c.topic,
                (SELECT COUNT(*) FROM history h WHERE h.group_id = c.group_id
                   AND h.seq > c.read_seq AND h.sender <> $1 AND h.deleted = 0),
                c.archived
         FROM channels c WHERE c.kind <> 'self' AND ($2 IS NULL OR c.group_id = $2)
         ORDER BY c.name",
    )
    .bind(me)
    .bind(only)
    .fetch_all(&mut *db)
    .await?;
    Ok(rows
        .iter()
        .map(|r| ChannelInfo {
            name: r.get(0),
            group_id: r.get(1),
            active: r.get::<i64, _>(2) != 0,
            direct: r.get::<String, _>(3) == "dm",
            topic: r.get(4),
            unread: r.get::<i64, _>(5).try_into().unwrap_or(0),
            archived: r.get::<i64, _>(6) != 0,
        })
        .collect())
}
