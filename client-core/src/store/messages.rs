//! A channel's decrypted history (`history`), its full-text index
//! (`search_index`, SQLite FTS5) and the message ids seen in each channel
//! (`seen_messages`, against replays).

use sqlx::{Row, SqliteConnection};

use super::{reactions, to_i64};
use crate::content::FileRef;
use crate::error::{ClientError, Result};
use crate::history_entry::{FileInfo, HistoryEntry};

/// A message about to be added to a channel's history.
pub(crate) struct NewRow<'a> {
    pub(crate) group_id: &'a str,
    pub(crate) seq: u64,
    pub(crate) sender: &'a str,
    pub(crate) device: &'a str,
    pub(crate) message_id: &'a str,
    /// `text`, `reply`, `file`, `command`, `notice` or `unsupported`.
    pub(crate) kind: &'a str,
    pub(crate) parent: Option<&'a str>,
    pub(crate) body: &'a str,
    pub(crate) mentions: &'a [String],
    /// Unix time this device received it.
    pub(crate) at: u64,
}

/// `query` with `row` bound to `$1`…`$10`: group, position, sender,
/// device, body, message id, kind, parent, mentions, time.
fn bind_row<'q>(
    query: sqlx::query::Query<'q, sqlx::Sqlite, sqlx::sqlite::SqliteArguments<'q>>,
    row: &NewRow<'q>,
) -> sqlx::query::Query<'q, sqlx::Sqlite, sqlx::sqlite::SqliteArguments<'q>> {
    query
        .bind(row.group_id)
        .bind(to_i64(row.seq))
        .bind(row.sender)
        .bind(row.device)
        .bind(row.body)
        .bind(row.message_id)
        .bind(row.kind)
        .bind(row.parent)
        .bind(row.mentions.join(" "))
        .bind(to_i64(row.at))
}

/// Adds `row` to the history (once: a row already at its place stays) and
/// to the full-text index (a new row has no entry there: history and index
/// rows are only ever deleted together). Whether it was added.
///
/// Both writes go to the store in one statement list, one trip to sqlx's
/// worker thread instead of two: each trip is a wake-up of that thread and
/// of ours, which on two shared cores costs more than either write.
pub(crate) async fn insert(tx: &mut SqliteConnection, row: &NewRow<'_>) -> Result<bool> {
    // `changes()` is what the statement before it changed: 1 if the
    // history row was new (the history table has no triggers to count). A
    // row without text has nothing to index.
    let changed = bind_row(
        sqlx::query(
            "INSERT OR IGNORE INTO history
               (group_id, seq, sender, device, body, message_id, kind, parent_id, mentions, at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10);
             INSERT INTO search_index (body, group_id, seq)
               SELECT $5, $1, $2 WHERE changes() = 1 AND $5 <> ''",
        ),
        row,
    )
    .execute(&mut *tx)
    .await?
    .rows_affected();
    // The changes of both statements, summed: 0 when the row was there.
    Ok(changed > 0)
}

/// What [`insert_own`] did.
pub(crate) enum OwnInsert {
    /// Nothing: there was no outgoing row (the relay's echo was applied
    /// first), or its id was seen before (a replay; its row is gone).
    NotMarked,
    /// The id marked seen; `added` whether the history row was new.
    Marked { added: bool },
}

/// [`insert`] for this device's own message, accepted by the relay, whose
/// outgoing row (by ciphertext `hash`) is still there: the row taken, the
/// message id marked seen in the channel at `row.seq`, the history row and
/// its index entry, in one statement list, each step only if the one
/// before changed a row (`changes()`).
pub(crate) async fn insert_own(
    tx: &mut SqliteConnection,
    hash: &str,
    row: &NewRow<'_>,
) -> Result<OwnInsert> {
    let changed = bind_row(
        sqlx::query(
            "DELETE FROM outgoing WHERE ciphertext_hash = $11;
             INSERT OR IGNORE INTO seen_messages (group_id, message_id, seq)
               SELECT $1, $6, $2 WHERE changes() = 1;
             INSERT OR IGNORE INTO history
               (group_id, seq, sender, device, body, message_id, kind, parent_id, mentions, at)
               SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10 WHERE changes() = 1;
             INSERT INTO search_index (body, group_id, seq)
               SELECT $5, $1, $2 WHERE changes() = 1 AND $5 <> ''",
        ),
        row,
    )
    .bind(hash)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    // The statements' changes, summed: the row taken (1), the id marked
    // (1), the history row (1) and its index entry (1, or 0 without text).
    Ok(match changed {
        0 | 1 => OwnInsert::NotMarked,
        2 => OwnInsert::Marked { added: false },
        _ => OwnInsert::Marked { added: true },
    })
}

/// Adds a history row's text to the full-text index.
async fn index(tx: &mut SqliteConnection, group_id: &str, seq: u64, body: &str) -> Result<()> {
    sqlx::query("INSERT INTO search_index (body, group_id, seq) VALUES ($1, $2, $3)")
        .bind(body)
        .bind(group_id)
        .bind(to_i64(seq))
        .execute(&mut *tx)
        .await?;
    Ok(())
}

/// Keeps the full-text index in step with one history row.
pub(crate) async fn reindex(
    tx: &mut SqliteConnection,
    group_id: &str,
    seq: u64,
    body: Option<&str>,
) -> Result<()> {
    sqlx::query("DELETE FROM search_index WHERE group_id = $1 AND seq = $2")
        .bind(group_id)
        .bind(to_i64(seq))
        .execute(&mut *tx)
        .await?;
    if let Some(body) = body {
        index(tx, group_id, seq, body).await?;
    }
    Ok(())
}

/// The message a reply to `id` belongs under: `id` itself, or the root of
/// the thread `id` is a reply in; `None` if this device does not have `id`.
pub(crate) async fn thread_root(
    tx: &mut SqliteConnection,
    group_id: &str,
    id: &str,
) -> Result<Option<String>> {
    let parent: Option<Option<String>> =
        sqlx::query_scalar("SELECT parent_id FROM history WHERE group_id = $1 AND message_id = $2")
            .bind(group_id)
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?;
    Ok(parent.map(|root| root.unwrap_or_else(|| id.to_owned())))
}

/// The seq and author of message `id` in a group.
pub(crate) async fn find(
    tx: &mut SqliteConnection,
    group_id: &str,
    id: &str,
) -> Result<Option<(u64, String)>> {
    Ok(
        sqlx::query("SELECT seq, sender FROM history WHERE group_id = $1 AND message_id = $2")
            .bind(group_id)
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?
            .map(|r| (r.get::<i64, _>(0).try_into().unwrap_or(0), r.get(1))),
    )
}

const ENTRY_COLUMNS: &str = "seq, sender, device, body, message_id, parent_id, kind, edited, deleted, mentions, at, attachment, shared_by, group_id";

/// The file reference (with its key) of message `id`, if it shares one.
pub(crate) async fn attachment_of(
    db: &mut SqliteConnection,
    group_id: &str,
    id: &str,
) -> Result<Option<FileRef>> {
    let text: Option<String> = sqlx::query(
        "SELECT attachment FROM history WHERE group_id = $1 AND message_id = $2 AND deleted = 0",
    )
    .bind(group_id)
    .bind(id)
    .fetch_optional(&mut *db)
    .await?
    .and_then(|r| r.get(0));
    text.map(|t| serde_json::from_str(&t).map_err(ClientError::store))
        .transpose()
}

fn entry_from_row(row: &sqlx::sqlite::SqliteRow, channel: &str) -> HistoryEntry {
    let mentions: String = row.get(9);
    HistoryEntry {
        channel: channel.to_owned(),
        group_id: row.get(13),
        seq: row.get::<i64, _>(0).try_into().unwrap_or(0),
        sender: row.get(1),
        device: row.get(2),
        text: row.get(3),
        id: row.get::<Option<String>, _>(4).unwrap_or_default(),
        parent: row.get(5),
        unsupported: row.get::<String, _>(6) == "unsupported",
        edited: row.get::<i64, _>(7) != 0,
        deleted: row.get::<i64, _>(8) != 0,
        mentions: mentions.split_whitespace().map(str::to_owned).collect(),
        at: row.get::<i64, _>(10).try_into().unwrap_or(0),
        reactions: Vec::new(),
        file: row
            .get::<Option<String>, _>(11)
            .and_then(|t| serde_json::from_str::<FileRef>(&t).ok())
            .map(|f| FileInfo {
                name: f.name.clone(),
                size: f.size,
                sha256: f.sha256.clone(),
            }),
        shared_by: row.get(12),
    }
}

/// The entry of `row` just added (by [`insert`]), as [`entry`] would read
/// it, without reading: nothing has changed it yet, and it has no reactions
/// (a reaction counts only on a message already in the history).
pub(crate) fn added_entry(row: &NewRow<'_>, channel: &str) -> HistoryEntry {
    HistoryEntry {
        channel: channel.to_owned(),
        group_id: row.group_id.to_owned(),
        seq: u64::try_from(to_i64(row.seq)).unwrap_or(0),
        sender: row.sender.to_owned(),
        device: row.device.to_owned(),
        text: row.body.to_owned(),
        id: row.message_id.to_owned(),
        parent: row.parent.map(str::to_owned),
        unsupported: row.kind == "unsupported",
        edited: false,
        deleted: false,
        mentions: row
            .mentions
            .iter()
            .flat_map(|m| m.split_whitespace())
            .map(str::to_owned)
            .collect(),
        at: u64::try_from(to_i64(row.at)).unwrap_or(0),
        reactions: Vec::new(),
        file: None,
        shared_by: None,
    }
}

pub(crate) async fn entry(
    tx: &mut SqliteConnection,
    group_id: &str,
    channel: &str,
    id: &str,
) -> Result<HistoryEntry> {
    let row = sqlx::query(&format!(
        "SELECT {ENTRY_COLUMNS} FROM history WHERE group_id = $1 AND message_id = $2"
    ))
    .bind(group_id)
    .bind(id)
    .fetch_one(&mut *tx)
    .await?;
    reactions::fill_one(tx, group_id, entry_from_row(&row, channel)).await
}

/// A channel's history, in order, with reactions.
pub(crate) async fn history_of(
    db: &mut SqliteConnection,
    group_id: &str,
    channel: &str,
) -> Result<Vec<HistoryEntry>> {
    let rows = sqlx::query(&format!(
        "SELECT {ENTRY_COLUMNS} FROM history WHERE group_id = $1 ORDER BY seq"
    ))
    .bind(group_id)
    .fetch_all(&mut *db)
    .await?;
    let entries = rows.iter().map(|r| entry_from_row(r, channel)).collect();
    reactions::fill(db, group_id, entries).await
}

/// Records message id `message_id` at `seq` in a group; `false` if the
/// group had it already (a replay).
pub(crate) async fn mark_seen(
    db: &mut SqliteConnection,
    group_id: &str,
    message_id: &str,
    seq: u64,
) -> Result<bool> {
    Ok(sqlx::query(
        "INSERT OR IGNORE INTO seen_messages (group_id, message_id, seq) VALUES ($1, $2, $3)",
    )
    .bind(group_id)
    .bind(message_id)
    .bind(to_i64(seq))
    .execute(&mut *db)
    .await?
    .rows_affected()
        == 1)
}

/// Whether the group has a message at `seq` already (this device's own,
/// recorded when the relay accepted it).
pub(crate) async fn seen_at(db: &mut SqliteConnection, group_id: &str, seq: u64) -> Result<bool> {
    Ok(
        sqlx::query("SELECT 1 FROM seen_messages WHERE group_id = $1 AND seq = $2")
            .bind(group_id)
            .bind(to_i64(seq))
            .fetch_optional(&mut *db)
            .await?
            .is_some(),
    )
}

/// Whether the group has seen message id `message_id`.
pub(crate) async fn seen(
    db: &mut SqliteConnection,
    group_id: &str,
    message_id: &str,
) -> Result<bool> {
    Ok(
        sqlx::query("SELECT 1 FROM seen_messages WHERE group_id = $1 AND message_id = $2")
            .bind(group_id)
            .bind(message_id)
            .fetch_optional(&mut *db)
            .await?
            .is_some(),
    )
}

/// Keeps the file reference (with its key) of a message that shares one.
pub(crate) async fn set_attachment(
    db: &mut SqliteConnection,
    group_id: &str,
    message_id: &str,
    file: &FileRef,
) -> Result<()> {
    let reference = serde_json::to_string(file).map_err(ClientError::store)?;
    sqlx::query("UPDATE history SET attachment = $3 WHERE group_id = $1 AND message_id = $2")
        .bind(group_id)
        .bind(message_id)
        .bind(&reference)
        .execute(&mut *db)
        .await?;
    Ok(())
}

/// Replaces the text (and mentions) of a message not deleted; whether it
/// changed.
pub(crate) async fn edit(
    db: &mut SqliteConnection,
    group_id: &str,
    message_id: &str,
    body: &str,
    mentions: &[String],
) -> Result<bool> {
    Ok(sqlx::query(
        "UPDATE history SET body = $3, edited = 1, mentions = $4
         WHERE group_id = $1 AND message_id = $2 AND deleted = 0",
    )
    .bind(group_id)
    .bind(message_id)
    .bind(body)
    .bind(mentions.join(" "))
    .execute(&mut *db)
    .await?
    .rows_affected()
        == 1)
}

/// Leaves a tombstone in a message's place: no text, mentions or file.
pub(crate) async fn tombstone(
    db: &mut SqliteConnection,
    group_id: &str,
    message_id: &str,
) -> Result<()> {
    sqlx::query(
        "UPDATE history SET body = '', deleted = 1, mentions = '', attachment = NULL
         WHERE group_id = $1 AND message_id = $2",
    )
    .bind(group_id)
    .bind(message_id)
    .execute(&mut *db)
    .await?;
    Ok(())
}

/// Deletes the messages received before Unix time `cutoff` (and their
/// reactions and index entries).
pub(crate) async fn prune(db: &mut SqliteConnection, group_id: &str, cutoff: u64) -> Result<()> {
    let cutoff = to_i64(cutoff);
    reactions::prune(db, group_id, cutoff).await?;
    sqlx::query(
        "DELETE FROM search_index WHERE group_id = $1 AND seq IN
           (SELECT seq FROM history WHERE group_id = $1 AND at < $2)",
    )
    .bind(group_id)
    .bind(cutoff)
    .execute(&mut *db)
    .await?;
    sqlx::query("DELETE FROM history WHERE group_id = $1 AND at < $2")
        .bind(group_id)
        .bind(cutoff)
        .execute(&mut *db)
        .await?;
    Ok(())
}

/// A message another member handed over with the channel's earlier
/// history.
pub(crate) struct SharedRow<'a> {
    pub(crate) group_id: &'a str,
    pub(crate) seq: u64,
    pub(crate) sender: &'a str,
    pub(crate) device: &'a str,
    pub(crate) message_id: &'a str,
    pub(crate) parent: Option<&'a str>,
    pub(crate) body: &'a str,
    pub(crate) at: u64,
    pub(crate) edited: bool,
    /// The member who handed it over.
    pub(crate) shared_by: &'a str,
    pub(crate) file: Option<&'a FileRef>,
}

/// Adds a shared message, unless this device has (or had) a message of that
/// id: those stay as MLS delivered them. Whether it was added.
pub(crate) async fn insert_shared(db: &mut SqliteConnection, row: &SharedRow<'_>) -> Result<bool> {
    let kind = if row.file.is_some() { "file" } else { "text" };
    let attachment = row
        .file
        .map(serde_json::to_string)
        .transpose()
        .map_err(ClientError::store)?;
    let inserted = sqlx::query(
        "INSERT OR IGNORE INTO history
           (group_id, seq, sender, device, body, message_id, kind, parent_id, mentions, at, edited, shared_by, attachment)
         SELECT $1, $2, $3, $4, $5, $6, $11, $7, '', $8, $9, $10, $12
         WHERE NOT EXISTS (SELECT 1 FROM seen_messages WHERE group_id = $1 AND message_id = $6)
           AND NOT EXISTS (SELECT 1 FROM history WHERE group_id = $1 AND message_id = $6)",
    )
    .bind(row.group_id)
    .bind(to_i64(row.seq))
    .bind(row.sender)
    .bind(row.device)
    .bind(row.body)
    .bind(row.message_id)
    .bind(row.parent)
    .bind(to_i64(row.at))
    .bind(i64::from(row.edited))
    .bind(row.shared_by)
    .bind(kind)
    .bind(attachment)
    .execute(&mut *db)
    .await?
    .rows_affected()
        == 1;
    if inserted {
        index(db, row.group_id, row.seq, row.body).await?;
    }
    Ok(inserted)
}

/// The newest position in a channel's history (0 if empty).
pub(crate) async fn newest_seq(db: &mut SqliteConnection, group_id: &str) -> Result<u64> {
    let newest: i64 =
        sqlx::query_scalar("SELECT COALESCE(MAX(seq), 0) FROM history WHERE group_id = $1")
            .bind(group_id)
            .fetch_one(&mut *db)
            .await?;
    Ok(u64::try_from(newest).unwrap_or(0))
}

/// The id of the message at `seq`.
pub(crate) async fn id_at(
    db: &mut SqliteConnection,
    group_id: &str,
    seq: u64,
) -> Result<Option<String>> {
    Ok(
        sqlx::query("SELECT message_id FROM history WHERE group_id = $1 AND seq = $2")
            .bind(group_id)
            .bind(to_i64(seq))
            .fetch_optional(&mut *db)
            .await?
            .and_then(|r| r.get::<Option<String>, _>(0)),
    )
}

/// What a search of the history looks for, as the index takes it.
pub(crate) struct Search<'a> {
    /// An FTS5 query.
    pub(crate) fts: &'a str,
    pub(crate) group_id: Option<&'a str>,
    pub(crate) author: Option<&'a str>,
    pub(crate) since: Option<u64>,
    pub(crate) until: Option<u64>,
}

/// The messages (not deleted) that match, best first, at most 200.
pub(crate) async fn search(
    db: &mut SqliteConnection,
    search: &Search<'_>,
) -> Result<Vec<HistoryEntry>> {
    let rows = sqlx::query(
        "SELECT h.seq, h.sender, h.device, h.body, h.message_id, h.parent_id, h.kind,
                h.edited, h.deleted, h.mentions, h.at, h.attachment, h.shared_by, c.name, h.group_id
         FROM search_index s
         JOIN history h ON h.group_id = s.group_id AND h.seq = s.seq
         JOIN channels c ON c.group_id = h.group_id
         WHERE search_index MATCH $1
           AND ($2 IS NULL OR h.group_id = $2)
           AND ($3 IS NULL OR h.sender = $3)
           AND ($4 IS NULL OR h.at >= $4)
           AND ($5 IS NULL OR h.at < $5)
           AND h.deleted = 0
         ORDER BY s.rank
         LIMIT 200",
    )
    .bind(search.fts)
    .bind(search.group_id)
    .bind(search.author)
    .bind(search.since.map(to_i64))
    .bind(search.until.map(to_i64))
    .fetch_all(&mut *db)
    .await?;
    let mut found = Vec::with_capacity(rows.len());
    for row in &rows {
        let channel: String = row.get(13);
        let group_id: String = row.get(14);
        let entry = entry_from_row(row, &channel);
        found.push(reactions::fill_one(db, &group_id, entry).await?);
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A home directory of its own for one test's store.
    fn temp_home(test: &str) -> std::path::PathBuf {
        std::env::temp_dir().join(format!(
            "conclave-{test}-{}-{}",
            std::process::id(),
            rand::random::<u64>()
        ))
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn an_added_entry_is_what_reading_it_gives() {
        let home = temp_home("added-entry");
        let mut db = crate::store::open(&home).await.expect("open");
        let mentions = ["bob".to_owned(), " carol  dave ".to_owned(), String::new()];
        for (seq, kind, parent, body) in [
            (7, "text", None, "hello @bob"),
            (8, "reply", Some("0a"), "in a thread"),
            (9, "unsupported", None, ""),
        ] {
            let message_id = format!("{seq:032x}");
            let row = NewRow {
                group_id: "00ff",
                seq,
                sender: "alice",
                device: "d1",
                message_id: &message_id,
                kind,
                parent,
                body,
                mentions: &mentions,
                at: 1_700_000_000,
            };
            assert!(insert(&mut db, &row).await.expect("insert"));
            let read = entry(&mut db, "00ff", "general", &message_id)
                .await
                .expect("read");
            assert_eq!(added_entry(&row, "general"), read);
            assert!(!insert(&mut db, &row).await.expect("again"), "added once");
        }
        drop(db);
        let _ = std::fs::remove_dir_all(&home);
    }

    /// The history row and its index entry go in one statement list: the
    /// entry follows the row only when the row was new.
    #[tokio::test(flavor = "multi_thread")]
    async fn a_new_row_is_indexed_once_and_a_row_not_added_is_not() {
        let home = temp_home("indexed-once");
        let mut db = crate::store::open(&home).await.expect("open");
        let row = |seq: u64, message_id: &'static str, body: &'static str| NewRow {
            group_id: "00ff",
            seq,
            sender: "alice",
            device: "d1",
            message_id,
            kind: "text",
            parent: None,
            body,
            mentions: &[],
            at: 1_700_000_000,
        };
        assert!(
            insert(&mut db, &row(7, "a7", "fuel check at ten"))
                .await
                .expect("first")
        );
        // The same place again, with other words: the history keeps the
        // first row, and the index must not gain the other words.
        assert!(
            !insert(&mut db, &row(7, "b7", "nozzle drawing"))
                .await
                .expect("same place")
        );
        assert!(
            !insert(&mut db, &row(7, "a7", "fuel check at ten"))
                .await
                .expect("same row")
        );
        // A row without text is added, with nothing to index.
        assert!(insert(&mut db, &row(8, "a8", "")).await.expect("empty"));
        let indexed: Vec<(String, i64)> =
            sqlx::query_as("SELECT body, seq FROM search_index ORDER BY seq")
                .fetch_all(&mut db)
                .await
                .expect("index");
        assert_eq!(indexed, vec![("fuel check at ten".to_owned(), 7)]);
        let found = search(
            &mut db,
            &Search {
                fts: "nozzle",
                group_id: None,
                author: None,
                since: None,
                until: None,
            },
        )
        .await
        .expect("search");
        assert!(found.is_empty(), "words of a row not added: {found:?}");
        drop(db);
        let _ = std::fs::remove_dir_all(&home);
    }
}
