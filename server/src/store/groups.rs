//! Groups: their public MLS state and epoch, who may post and read, the
//! commit that moves an epoch, archiving and retention.

use sqlx::Row;

use super::accounts::{DEVICE_SESSION_COLUMNS, DEVICE_SESSION_WIDTH, device_session_at};
use super::blobs::delete_blobs_where;
use super::messages::insert_message;
use super::{
    DeviceSession, MessageKind, NewGroup, PayloadHash, PublicListing, Store, StoreError, to_i64,
    to_u64,
};

/// A group's public state.
#[derive(Debug, Clone)]
pub struct GroupRow {
    /// Current epoch.
    pub epoch: u64,
    /// openmls public-group state (no secrets).
    pub public_state: Vec<u8>,
    /// A public channel: listed, and open to join by external commit.
    pub public: bool,
    /// Archived: read-only.
    pub archived: bool,
    /// Members may hand newcomers the group's history.
    pub history_sharing: bool,
}

/// What the relay needs to admit a message to a group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupAccess {
    /// Current epoch.
    pub epoch: u64,
    /// Whether the asking device is a current member.
    pub member: bool,
    /// Whether the group was archived (read-only).
    pub archived: bool,
}

/// What the relay needs to admit a posted message: the group's
/// [`GroupAccess`] for the posting device, and whether the same bytes were
/// accepted before (their position and first sender).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Admission {
    /// Epoch, membership and archival.
    pub access: GroupAccess,
    /// The same bytes, accepted earlier: their position and the device that
    /// posted them.
    pub earlier_post: Option<(u64, String)>,
}

/// The changes one accepted commit makes.
#[derive(Debug)]
pub struct CommitRecord<'a> {
    /// Hex group id.
    pub group_id: &'a str,
    /// The epoch the commit was built on.
    pub from_epoch: u64,
    /// The epoch after it.
    pub to_epoch: u64,
    /// Public state after merging it.
    pub public_state: &'a [u8],
    /// The committing device.
    pub sender: &'a str,
    /// The commit message.
    pub commit: &'a [u8],
    /// The Welcome for added devices, if any were added by a member (an
    /// external commit adds its sender, who needs none).
    pub welcome: Option<&'a [u8]>,
    /// A public channel's GroupInfo for the new epoch.
    pub group_info: Option<&'a [u8]>,
    /// Devices added by the commit.
    pub added: &'a [String],
    /// Devices removed by the commit.
    pub removed: &'a [String],
    /// Log entries for the membership changes, entered with the commit.
    pub audit: Vec<conclave_audit::Event>,
}

/// The columns [`Store::access`] and [`Store::device_session_and_admission`]
/// share, over `groups g`: the epoch, whether device `$2` is a current
/// member, and whether the group is archived.
macro_rules! epoch_membership_archived {
    () => {
        "g.epoch, CAST(CASE WHEN EXISTS (
             SELECT 1 FROM memberships m
             WHERE m.group_id = g.group_id AND m.device_id = $2 AND m.leave_seq IS NULL
         ) THEN 1 ELSE 0 END AS BIGINT),
         CAST(CASE WHEN g.archived_at IS NULL THEN 0 ELSE 1 END AS BIGINT)"
    };
}

/// The [`Admission`] in `row`'s columns from `first` on: those of
/// `epoch_membership_archived!()`, then the earlier post's position and
/// sender.
fn admission_at(row: &sqlx::any::AnyRow, first: usize) -> Admission {
    let earlier_seq: Option<i64> = row.get(first + 3);
    let earlier_sender: Option<String> = row.get(first + 4);
    Admission {
        access: GroupAccess {
            epoch: to_u64(row.get(first)),
            member: row.get::<i64, _>(first + 1) == 1,
            archived: row.get::<i64, _>(first + 2) == 1,
        },
        earlier_post: earlier_seq.map(|seq| (to_u64(seq), earlier_sender.unwrap_or_default())),
    }
}

impl Store {
    /// Creates a group with its creator (`creator` device of account
    /// `created_by`) as the only member, entering `created` in the audit log
    /// in the same transaction; nothing is stored, and nothing logged, if
    /// the id or the public name is taken.
    #[allow(clippy::too_many_arguments)] // the group's row, its first member and its entry
    pub async fn create_group(
        &self,
        group_id: &str,
        epoch: u64,
        public_state: &[u8],
        creator: &str,
        created_by: &str,
        listing: Option<&PublicListing<'_>>,
        created: conclave_audit::Event,
    ) -> Result<NewGroup, StoreError> {
        let mut tx = self.begin_write().await?;
        let inserted = sqlx::query(
            "INSERT INTO groups (group_id, epoch, next_seq, public_state, created_at, created_by,
                                 public_name, public_topic, group_info)
             VALUES ($1, $2, 1, $3, $4, $5, $6, $7, $8) ON CONFLICT (group_id) DO NOTHING",
        )
        .bind(group_id)
        .bind(to_i64(epoch))
        .bind(public_state.to_vec())
        .bind(self.now())
        .bind(created_by)
        .bind(listing.map(|l| l.name))
        .bind(listing.map(|l| l.topic))
        .bind(listing.map(|l| l.group_info.to_vec()))
        .execute(&mut *tx)
        .await;
        let inserted = match inserted {
            // Another public channel has the name: the unique index decides,
            // even between two creators at once.
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
                return Ok(NewGroup::NameTaken);
            }
            other => other?.rows_affected() == 1,
        };
        if !inserted {
            return Ok(NewGroup::Exists);
        }
        sqlx::query(
            "INSERT INTO memberships (group_id, device_id, join_seq, leave_seq, acked_seq)
             VALUES ($1, $2, 0, NULL, 0)",
        )
        .bind(group_id)
        .bind(creator)
        .execute(&mut *tx)
        .await?;
        conclave_audit::log::append(&mut tx, created).await?;
        tx.commit().await?;
        Ok(NewGroup::Created)
    }

    /// A group's epoch and public state.
    pub async fn group(&self, group_id: &str) -> Result<Option<GroupRow>, StoreError> {
        let row = sqlx::query(
            "SELECT epoch, public_state,
                    CAST(CASE WHEN public_name IS NULL THEN 0 ELSE 1 END AS BIGINT),
                    CAST(CASE WHEN archived_at IS NULL THEN 0 ELSE 1 END AS BIGINT),
                    history_sharing
             FROM groups WHERE group_id = $1",
        )
        .bind(group_id)
        .fetch_optional(&self.readers)
        .await?;
        Ok(row.map(|r| GroupRow {
            epoch: to_u64(r.get(0)),
            public_state: r.get(1),
            public: r.get::<i64, _>(2) == 1,
            archived: r.get::<i64, _>(3) == 1,
            history_sharing: r.get::<i64, _>(4) == 1,
        }))
    }

    /// A group's current epoch and whether `device_id` is a current member,
    /// in one small query (the public state stays on disk).
    pub async fn access(
        &self,
        group_id: &str,
        device_id: &str,
    ) -> Result<Option<GroupAccess>, StoreError> {
        let row = sqlx::query(concat!(
            "SELECT ",
            epoch_membership_archived!(),
            " FROM groups g WHERE g.group_id = $1"
        ))
        .bind(group_id)
        .bind(device_id)
        .fetch_optional(&self.readers)
        .await?;
        Ok(row.map(|r| GroupAccess {
            epoch: to_u64(r.get(0)),
            member: r.get::<i64, _>(1) == 1,
            archived: r.get::<i64, _>(2) == 1,
        }))
    }

    /// The signing device's [`DeviceSession`] and, if it has one, the
    /// [`Admission`] to `group_id` of a message with `payload_hash` that it
    /// posted, in one query: the relay's reads for a post in one trip to
    /// the database rather than two. `(None, None)` for an unknown device,
    /// `(Some(_), None)` if there is no such group. The admission may be used
    /// only once the request's signature holds.
    pub async fn device_session_and_admission(
        &self,
        device_id: &str,
        group_id: &str,
        payload_hash: &PayloadHash,
    ) -> Result<(Option<DeviceSession>, Option<Admission>), StoreError> {
        let row = sqlx::query(&format!(
            concat!(
                "SELECT {session}, CAST(CASE WHEN g.group_id IS NULL THEN 0 ELSE 1 END AS BIGINT), ",
                epoch_membership_archived!(),
                ", p.seq, p.sender_device
                 FROM devices d JOIN accounts a ON a.username = d.username
                 LEFT JOIN groups g ON g.group_id = $1
                 LEFT JOIN messages p ON p.group_id = g.group_id AND p.payload_hash = $3
                 WHERE d.device_id = $2"
            ),
            session = DEVICE_SESSION_COLUMNS
        ))
        .bind(group_id)
        .bind(device_id)
        .bind(payload_hash.as_str())
        .fetch_optional(&self.readers)
        .await?;
        let Some(row) = row else {
            return Ok((None, None));
        };
        let session = device_session_at(&row, 0);
        let group = DEVICE_SESSION_WIDTH;
        if row.get::<i64, _>(group) == 0 {
            return Ok((Some(session), None));
        }
        Ok((Some(session), Some(admission_at(&row, group + 1))))
    }

    /// The account that created a group, if the group exists.
    pub async fn group_creator(&self, group_id: &str) -> Result<Option<String>, StoreError> {
        let row = sqlx::query("SELECT COALESCE(created_by, '') FROM groups WHERE group_id = $1")
            .bind(group_id)
            .fetch_optional(&self.readers)
            .await?;
        Ok(row.map(|r| r.get(0)))
    }

    /// Archives a group: from now on nothing more is appended to it.
    /// `archived` enters the audit log in the same transaction. `false`
    /// (and nothing logged) if it was archived already.
    pub async fn archive_group(
        &self,
        group_id: &str,
        archived: conclave_audit::Event,
    ) -> Result<bool, StoreError> {
        let mut tx = self.begin_write().await?;
        let result = sqlx::query(
            "UPDATE groups SET archived_at = $2 WHERE group_id = $1 AND archived_at IS NULL",
        )
        .bind(group_id)
        .bind(self.now())
        .execute(&mut *tx)
        .await?;
        if result.rows_affected() != 1 {
            return Ok(false);
        }
        conclave_audit::log::append(&mut tx, archived).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Sets a group's own retention (`None`: the workspace's applies), with
    /// its audit entry `changed`, in one transaction.
    pub async fn set_group_retention(
        &self,
        group_id: &str,
        days: Option<u32>,
        changed: conclave_audit::Event,
    ) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        sqlx::query("UPDATE groups SET retention_days = $2 WHERE group_id = $1")
            .bind(group_id)
            .bind(days.map(i64::from))
            .execute(&mut *tx)
            .await?;
        conclave_audit::log::append(&mut tx, changed).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Each group's retention in days (its own, else the workspace's), for
    /// the groups that have one.
    pub async fn retention(&self, workspace_days: u32) -> Result<Vec<(String, u32)>, StoreError> {
        Ok(sqlx::query(
            "SELECT group_id, COALESCE(retention_days, $1) FROM groups
             WHERE COALESCE(retention_days, $1) > 0",
        )
        .bind(i64::from(workspace_days))
        .fetch_all(&self.readers)
        .await?
        .iter()
        .map(|r| {
            (
                r.get(0),
                u32::try_from(r.get::<i64, _>(1)).unwrap_or(u32::MAX),
            )
        })
        .collect())
    }

    /// The retention in days of each group `device_id` belongs to that has one.
    pub async fn retention_of(
        &self,
        device_id: &str,
        workspace_days: u32,
    ) -> Result<Vec<(String, u32)>, StoreError> {
        Ok(sqlx::query(
            "SELECT DISTINCT g.group_id, COALESCE(g.retention_days, $2)
             FROM memberships m JOIN groups g ON g.group_id = m.group_id
             WHERE m.device_id = $1 AND m.leave_seq IS NULL
               AND COALESCE(g.retention_days, $2) > 0",
        )
        .bind(device_id)
        .bind(i64::from(workspace_days))
        .fetch_all(&self.readers)
        .await?
        .iter()
        .map(|r| {
            (
                r.get(0),
                u32::try_from(r.get::<i64, _>(1)).unwrap_or(u32::MAX),
            )
        })
        .collect())
    }

    /// Applies retention to one group: deletes its application messages
    /// (ciphertext) and its files stored before `cutoff` (Unix seconds).
    /// Commits and Welcomes stay: a device that was away still needs them
    /// to follow the group. If anything went, `deleted(messages, files)`
    /// is the audit entry that says so, appended in the same transaction:
    /// nothing is deleted without it. Returns (messages, files) deleted.
    pub async fn delete_expired(
        &self,
        group_id: &str,
        cutoff: u64,
        deleted: impl FnOnce(u64, u64) -> conclave_audit::Event,
    ) -> Result<(u64, u64), StoreError> {
        let mut tx = self.begin_write().await?;
        let messages = sqlx::query(
            "DELETE FROM messages WHERE group_id = $1 AND kind = 'application' AND created_at < $2",
        )
        .bind(group_id)
        .bind(to_i64(cutoff))
        .execute(&mut *tx)
        .await?
        .rows_affected();
        let files = delete_blobs_where(
            &mut tx,
            "group_id = $1 AND created_at < $2",
            Some(group_id),
            cutoff,
        )
        .await?;
        if messages > 0 || files > 0 {
            conclave_audit::log::append(&mut tx, deleted(messages, files)).await?;
        }
        tx.commit().await?;
        Ok((messages, files))
    }

    /// The archived groups `device_id` belongs to.
    pub async fn archived_groups_of(&self, device_id: &str) -> Result<Vec<String>, StoreError> {
        Ok(sqlx::query(
            "SELECT DISTINCT g.group_id FROM memberships m JOIN groups g ON g.group_id = m.group_id
             WHERE m.device_id = $1 AND m.leave_seq IS NULL AND g.archived_at IS NOT NULL",
        )
        .bind(device_id)
        .fetch_all(&self.readers)
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect())
    }

    /// The groups `device_id` currently belongs to.
    pub async fn groups_of(&self, device_id: &str) -> Result<Vec<String>, StoreError> {
        Ok(sqlx::query(
            "SELECT DISTINCT group_id FROM memberships WHERE device_id = $1 AND leave_seq IS NULL",
        )
        .bind(device_id)
        .fetch_all(&self.readers)
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect())
    }

    /// Applies an accepted commit if the group is still at its epoch: the
    /// commit, its Welcome and the membership changes land together or not at
    /// all. Returns the commit's sequence number, or `Err(current_epoch)`.
    pub async fn apply_commit(
        &self,
        record: &CommitRecord<'_>,
    ) -> Result<Result<u64, u64>, StoreError> {
        let commit_hash = PayloadHash::of(record.commit);
        let mut tx = self.begin_write().await?;
        let slots = if record.welcome.is_some() { 2 } else { 1 };
        let bumped = sqlx::query(
            "UPDATE groups SET epoch = $3, public_state = $4, next_seq = next_seq + $5
             WHERE group_id = $1 AND epoch = $2 RETURNING next_seq - $5",
        )
        .bind(record.group_id)
        .bind(to_i64(record.from_epoch))
        .bind(to_i64(record.to_epoch))
        .bind(record.public_state.to_vec())
        .bind(slots)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = bumped else {
            drop(tx);
            // The same commit, posted twice at once (a retry racing the
            // first try): the first moved the epoch, and this one is it.
            if let Some(first) = self.seq_of_hash(record.group_id, &commit_hash).await? {
                return Ok(Ok(first));
            }
            return Ok(Err(self.current_epoch(record.group_id).await?));
        };
        let seq: i64 = row.get(0);
        insert_message(
            &mut tx,
            record.group_id,
            seq,
            MessageKind::Commit,
            record.from_epoch,
            record.sender,
            record.commit,
            Some(&commit_hash),
            self.now(),
        )
        .await?;
        for device in record.removed {
            sqlx::query(
                "UPDATE memberships SET leave_seq = $3
                 WHERE group_id = $1 AND device_id = $2 AND leave_seq IS NULL",
            )
            .bind(record.group_id)
            .bind(device)
            .bind(seq)
            .execute(&mut *tx)
            .await?;
        }
        if let Some(welcome) = record.welcome {
            let welcome_seq = seq + 1;
            insert_message(
                &mut tx,
                record.group_id,
                welcome_seq,
                MessageKind::Welcome,
                record.to_epoch,
                record.sender,
                welcome,
                // A Welcome only ever travels with its commit: never posted
                // again on its own, so never looked up by its bytes.
                None,
                self.now(),
            )
            .await?;
            for device in record.added {
                sqlx::query(
                    "INSERT INTO memberships (group_id, device_id, join_seq, leave_seq, acked_seq)
                     VALUES ($1, $2, $3, NULL, $4)",
                )
                .bind(record.group_id)
                .bind(device)
                .bind(welcome_seq)
                .bind(seq)
                .execute(&mut *tx)
                .await?;
            }
        } else {
            // Joined by external commit: the device built its state from the
            // commit itself and reads from the next message on.
            for device in record.added {
                sqlx::query(
                    "INSERT INTO memberships (group_id, device_id, join_seq, leave_seq, acked_seq)
                     VALUES ($1, $2, $3, NULL, $3)",
                )
                .bind(record.group_id)
                .bind(device)
                .bind(seq)
                .execute(&mut *tx)
                .await?;
            }
        }
        if let Some(group_info) = record.group_info {
            sqlx::query("UPDATE groups SET group_info = $2 WHERE group_id = $1")
                .bind(record.group_id)
                .bind(group_info.to_vec())
                .execute(&mut *tx)
                .await?;
        }
        for entry in &record.audit {
            conclave_audit::log::append(&mut tx, entry.clone()).await?;
        }
        tx.commit().await?;
        Ok(Ok(to_u64(seq)))
    }

    async fn current_epoch(&self, group_id: &str) -> Result<u64, StoreError> {
        Ok(self.group(group_id).await?.map(|g| g.epoch).unwrap_or(0))
    }
}
