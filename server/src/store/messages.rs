//! The ciphertext log of each group, and each device's delivery cursor
//! (`memberships.acked_seq`).

use sqlx::Row;
use sqlx::any::AnyRow;

use super::{Append, MessageKind, Nonce, Store, StoreError, group_commit, to_i64, to_u64};

/// The SHA-256 (hex) of a posted MLS message: how a retry of the same
/// bytes is recognised. Computed once per post and handed along.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PayloadHash(String);

impl PayloadHash {
    /// The hash of `payload`.
    pub fn of(payload: &[u8]) -> Self {
        PayloadHash(conclave_crypto::sha256_hex(payload))
    }

    pub(super) fn as_str(&self) -> &str {
        &self.0
    }
}

/// Acknowledgements per multi-row statement (3 parameters each).
const ACKS_PER_STATEMENT: usize = 256;

/// A device's acknowledgement of a group up to a position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ack {
    /// Hex device id.
    pub device_id: String,
    /// Hex group id.
    pub group_id: String,
    /// Everything up to here was received.
    pub seq: u64,
}

/// One message waiting for one device.
#[derive(Debug, Clone)]
pub struct Pending {
    /// Hex group id.
    pub group_id: String,
    /// Position in the group's order.
    pub seq: u64,
    /// What the payload is.
    pub kind: MessageKind,
    /// The MLS message bytes (shared, not copied, by every stream that
    /// holds it).
    pub payload: bytes::Bytes,
}

pub(super) fn pending_from_row(row: &AnyRow) -> Result<Pending, StoreError> {
    Ok(Pending {
        group_id: row.get(0),
        seq: to_u64(row.get(1)),
        kind: stored_kind(row, 2)?,
        payload: row.get::<Vec<u8>, _>(3).into(),
    })
}

/// The message kind in column `index`, by its stored name.
fn stored_kind(row: &AnyRow, index: usize) -> Result<MessageKind, StoreError> {
    let name: String = row.try_get(index)?;
    name.parse()
        .map_err(|e: conclave_proto::UnknownMessageKind| {
            StoreError::Database(sqlx::Error::Decode(Box::new(e)))
        })
}

/// Inserts one message row; `hash` is that of everything a client posts and
/// may post again after a lost answer.
#[allow(clippy::too_many_arguments)]
pub(super) async fn insert_message(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    group_id: &str,
    seq: i64,
    kind: MessageKind,
    epoch: u64,
    sender: &str,
    payload: &[u8],
    hash: Option<&PayloadHash>,
    created_at: i64,
) -> Result<(), sqlx::Error> {
    let hash = hash.map(PayloadHash::as_str);
    sqlx::query(
        "INSERT INTO messages (group_id, seq, kind, epoch, sender_device, payload, created_at, payload_hash)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(group_id)
    .bind(seq)
    .bind(kind.as_str())
    .bind(to_i64(epoch))
    .bind(sender)
    .bind(payload.to_vec())
    .bind(created_at)
    .bind(hash)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

impl Store {
    /// Appends a non-commit message if the group is still at `epoch`.
    /// Returns its sequence number (the first one's, if these very bytes
    /// are already there), or `Err(current_epoch)` on a conflict. A proposal
    /// also replaces the public state (it joins the proposal queue).
    ///
    /// Durable when it returns; appends made at the same moment share one
    /// transaction (see `group_commit`).
    pub async fn append(
        &self,
        group_id: &str,
        epoch: u64,
        kind: MessageKind,
        sender: &str,
        payload: &[u8],
        new_public_state: Option<&[u8]>,
    ) -> Result<Result<u64, u64>, StoreError> {
        self.append_message(Append {
            group_id: group_id.to_owned(),
            epoch,
            kind,
            sender: sender.to_owned(),
            payload: payload.to_vec(),
            payload_hash: PayloadHash::of(payload),
            public_state: new_public_state.map(<[u8]>::to_vec),
        })
        .await
    }

    /// [`Store::append`] of a message whose hash the caller has already.
    pub async fn append_message(&self, append: Append) -> Result<Result<u64, u64>, StoreError> {
        let appended = self.append_queued(append, None).await?;
        // Without a nonce there is nothing to find spent.
        appended.ok_or(StoreError::Database(sqlx::Error::RowNotFound))
    }

    /// [`Store::append_message`], spending the posting request's `nonce` in
    /// the same transaction (one flush to disk for both). `None`: the nonce
    /// was spent before (a replay), and nothing was appended.
    pub async fn append_spending(
        &self,
        append: Append,
        nonce: Nonce,
    ) -> Result<Option<Result<u64, u64>>, StoreError> {
        self.append_queued(append, Some(nonce)).await
    }

    async fn append_queued(
        &self,
        append: Append,
        nonce: Option<Nonce>,
    ) -> Result<Option<Result<u64, u64>>, StoreError> {
        let received_at = self.now();
        let (answer, answered) = tokio::sync::oneshot::channel();
        let queued = group_commit::Queued::Append {
            append,
            nonce,
            received_at,
            answer,
        };
        if let Err(refused) = self.appends.send(queued).await {
            // No committer (the runtime is shutting down): on our own.
            group_commit::write_alone(&self.writer, self.backend, refused.0).await;
        }
        answered
            .await
            .unwrap_or(Err(StoreError::Database(sqlx::Error::WorkerCrashed)))
    }

    /// The message at `seq` in a group, if it is stored.
    pub async fn message_at(
        &self,
        group_id: &str,
        seq: u64,
    ) -> Result<Option<Pending>, StoreError> {
        sqlx::query("SELECT kind, payload FROM messages WHERE group_id = $1 AND seq = $2")
            .bind(group_id)
            .bind(to_i64(seq))
            .fetch_optional(&self.readers)
            .await?
            .map(|r| {
                Ok(Pending {
                    group_id: group_id.to_owned(),
                    seq,
                    kind: stored_kind(&r, 0)?,
                    payload: r.get::<Vec<u8>, _>(1).into(),
                })
            })
            .transpose()
    }

    /// The position of a message (application, proposal or commit) already
    /// accepted with exactly these bytes, if any: a client's retry after a
    /// lost answer.
    pub async fn seq_of_payload(
        &self,
        group_id: &str,
        payload: &[u8],
    ) -> Result<Option<u64>, StoreError> {
        self.seq_of_hash(group_id, &PayloadHash::of(payload)).await
    }

    pub(super) async fn seq_of_hash(
        &self,
        group_id: &str,
        hash: &PayloadHash,
    ) -> Result<Option<u64>, StoreError> {
        Ok(
            sqlx::query("SELECT seq FROM messages WHERE group_id = $1 AND payload_hash = $2")
                .bind(group_id)
                .bind(hash.as_str())
                .fetch_optional(&self.readers)
                .await?
                .map(|r| to_u64(r.get(0))),
        )
    }

    /// Messages waiting for `device_id`, oldest first within each group.
    ///
    /// A device sees its Welcome (at its `join_seq`), then every later message
    /// of the group up to and including the commit that removed it.
    pub async fn pending(&self, device_id: &str, limit: u32) -> Result<Vec<Pending>, StoreError> {
        self.pending_after(device_id, None, limit).await
    }

    /// [`Store::pending`], only the messages after `after` (a group and a
    /// position in it) in the same order: the next page for a reader that
    /// goes on from where it stopped, since the device's acknowledged
    /// position does not move while it reads.
    pub async fn pending_after(
        &self,
        device_id: &str,
        after: Option<(&str, u64)>,
        limit: u32,
    ) -> Result<Vec<Pending>, StoreError> {
        let (after_group, after_seq) = after.unwrap_or(("", 0));
        let rows = sqlx::query(
            "SELECT m.group_id, m.seq, m.kind, m.payload
             FROM memberships ms JOIN messages m ON m.group_id = ms.group_id
             WHERE ms.device_id = $1
               AND m.seq > ms.acked_seq
               AND ((m.seq = ms.join_seq AND m.kind = 'welcome')
                    OR (m.seq > ms.join_seq AND m.kind <> 'welcome'))
               AND (ms.leave_seq IS NULL OR m.seq <= ms.leave_seq)
               AND (m.group_id > $3 OR (m.group_id = $3 AND m.seq > $4))
             ORDER BY m.group_id, m.seq
             LIMIT $2",
        )
        .bind(device_id)
        .bind(i64::from(limit))
        .bind(after_group)
        .bind(to_i64(after_seq))
        .fetch_all(&self.readers)
        .await?;
        rows.iter().map(pending_from_row).collect()
    }

    /// Acknowledges everything in `group_id` up to `seq` for `device_id`.
    /// Finished memberships (removed and fully acknowledged) are dropped.
    pub async fn ack(&self, device_id: &str, group_id: &str, seq: u64) -> Result<(), StoreError> {
        self.ack_many(&[Ack {
            device_id: device_id.to_owned(),
            group_id: group_id.to_owned(),
            seq,
        }])
        .await
    }

    /// [`Store::ack`] for many devices and groups, in one transaction (one
    /// flush to disk for all of them) of a few statements: the highest
    /// position per device and group, in multi-row statements. (Two
    /// statements per acknowledgement on the one writer let a single request
    /// naming thousands of groups hold everyone's writes.)
    pub async fn ack_many(&self, acks: &[Ack]) -> Result<(), StoreError> {
        let mut highest: std::collections::BTreeMap<(&str, &str), u64> =
            std::collections::BTreeMap::new();
        for ack in acks {
            let seq = highest
                .entry((ack.device_id.as_str(), ack.group_id.as_str()))
                .or_default();
            *seq = (*seq).max(ack.seq);
        }
        if highest.is_empty() {
            return Ok(());
        }
        let highest: Vec<((&str, &str), u64)> = highest.into_iter().collect();
        let mut tx = self.begin_write().await?;
        for chunk in highest.chunks(ACKS_PER_STATEMENT) {
            // `VALUES` names its columns column1, column2, … on SQLite and
            // PostgreSQL alike.
            let rows = |width: usize| super::parameter_rows(self.backend, chunk.len(), width);
            let mut update =
                String::from("UPDATE memberships SET acked_seq = v.column3 FROM (VALUES ");
            update.push_str(&rows(3));
            update.push_str(
                ") AS v WHERE memberships.device_id = v.column1 AND memberships.group_id = v.column2
                   AND memberships.acked_seq < v.column3 AND memberships.join_seq <= v.column3",
            );
            let mut query = sqlx::query(&update);
            for ((device_id, group_id), seq) in chunk {
                query = query.bind(*device_id).bind(*group_id).bind(to_i64(*seq));
            }
            query.execute(&mut *tx).await?;
            // Memberships that ended and are now fully acknowledged go.
            let mut finished = String::from(
                "DELETE FROM memberships WHERE leave_seq IS NOT NULL AND acked_seq >= leave_seq
                   AND (device_id, group_id) IN (VALUES ",
            );
            finished.push_str(&rows(2));
            finished.push(')');
            let mut query = sqlx::query(&finished);
            for ((device_id, group_id), _) in chunk {
                query = query.bind(*device_id).bind(*group_id);
            }
            query.execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }
}
