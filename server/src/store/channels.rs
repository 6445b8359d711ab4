//! Public channels: a name and topic the workspace may see, and the
//! GroupInfo that lets an account join without waiting for a member.

use sqlx::Row;

use super::{Store, StoreError, to_u64};

/// A public channel as the workspace's directory lists it.
#[derive(Debug, Clone)]
pub struct PublicChannel {
    /// Hex group id.
    pub group_id: String,
    /// Its name.
    pub name: String,
    /// Its topic.
    pub topic: String,
    /// How many accounts belong to it.
    pub members: u64,
    /// Whether the asking device belongs to it.
    pub joined: bool,
    /// Archived: readable by its members, closed to new ones.
    pub archived: bool,
}

/// What makes a new group public: its listing and first GroupInfo.
#[derive(Debug, Clone, Copy)]
pub struct PublicListing<'a> {
    /// The name the workspace sees.
    pub name: &'a str,
    /// The topic the workspace sees.
    pub topic: &'a str,
    /// The GroupInfo to join from (public, signed by the creator).
    pub group_info: &'a [u8],
}

/// How creating a group went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NewGroup {
    /// Created.
    Created,
    /// A group with this id exists.
    Exists,
    /// Another public channel has this name.
    NameTaken,
}

impl Store {
    /// Every public channel, by name, with whether `device_id` is in it.
    pub async fn public_channels(&self, device_id: &str) -> Result<Vec<PublicChannel>, StoreError> {
        let rows = sqlx::query(
            "SELECT g.group_id, g.public_name, COALESCE(g.public_topic, ''),
                    (SELECT COUNT(DISTINCT d.username) FROM memberships m
                       JOIN devices d ON d.device_id = m.device_id
                      WHERE m.group_id = g.group_id AND m.leave_seq IS NULL),
                    CAST(CASE WHEN EXISTS (SELECT 1 FROM memberships m
                       WHERE m.group_id = g.group_id AND m.device_id = $1 AND m.leave_seq IS NULL)
                       THEN 1 ELSE 0 END AS BIGINT),
                    CAST(CASE WHEN g.archived_at IS NULL THEN 0 ELSE 1 END AS BIGINT)
             FROM groups g WHERE g.public_name IS NOT NULL
             ORDER BY g.public_name",
        )
        .bind(device_id)
        .fetch_all(&self.readers)
        .await?;
        Ok(rows
            .iter()
            .map(|r| PublicChannel {
                group_id: r.get(0),
                name: r.get(1),
                topic: r.get(2),
                members: to_u64(r.get(3)),
                joined: r.get::<i64, _>(4) == 1,
                archived: r.get::<i64, _>(5) == 1,
            })
            .collect())
    }

    /// A public group's latest GroupInfo, with its public state (for the
    /// ratchet tree); `None` if the group is not public.
    pub async fn public_group_info(
        &self,
        group_id: &str,
    ) -> Result<Option<(Vec<u8>, Vec<u8>)>, StoreError> {
        Ok(sqlx::query(
            "SELECT group_info, public_state FROM groups
             WHERE group_id = $1 AND public_name IS NOT NULL AND group_info IS NOT NULL",
        )
        .bind(group_id)
        .fetch_optional(&self.readers)
        .await?
        .map(|r| (r.get(0), r.get(1))))
    }

    /// Lets members hand newcomers the group's history, or stops them,
    /// with its audit entry `changed`, in one transaction.
    pub async fn set_history_sharing(
        &self,
        group_id: &str,
        allowed: bool,
        changed: conclave_audit::Event,
    ) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        sqlx::query("UPDATE groups SET history_sharing = $2 WHERE group_id = $1")
            .bind(group_id)
            .bind(i64::from(allowed))
            .execute(&mut *tx)
            .await?;
        conclave_audit::log::append(&mut tx, changed).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Whether any current (not revoked) device of `username` is a current
    /// member of the group.
    pub async fn user_in_group(&self, group_id: &str, username: &str) -> Result<bool, StoreError> {
        Ok(sqlx::query(
            "SELECT 1 FROM memberships m JOIN devices d ON d.device_id = m.device_id
             WHERE m.group_id = $1 AND d.username = $2 AND m.leave_seq IS NULL
               AND d.revoked_at IS NULL",
        )
        .bind(group_id)
        .bind(username)
        .fetch_optional(&self.readers)
        .await?
        .is_some())
    }

    /// Renames a public channel in the directory, with its audit entry
    /// `renamed`, in one transaction; `false` (nothing changed or logged) if
    /// another public channel has the name (the unique index decides, even
    /// between two renames at once).
    pub async fn set_public_name(
        &self,
        group_id: &str,
        name: &str,
        renamed: conclave_audit::Event,
    ) -> Result<bool, StoreError> {
        let mut tx = self.begin_write().await?;
        let updated = sqlx::query("UPDATE groups SET public_name = $2 WHERE group_id = $1")
            .bind(group_id)
            .bind(name)
            .execute(&mut *tx)
            .await;
        match updated {
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => return Ok(false),
            other => other?,
        };
        conclave_audit::log::append(&mut tx, renamed).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Changes a public channel's listed topic.
    pub async fn set_public_topic(&self, group_id: &str, topic: &str) -> Result<(), StoreError> {
        sqlx::query("UPDATE groups SET public_topic = $2 WHERE group_id = $1")
            .bind(group_id)
            .bind(topic)
            .execute(self.writes())
            .await?;
        Ok(())
    }
}
