//! A version for each group's openmls state, kept by the database itself:
//! triggers on openmls's own tables bump it whenever any of the group's
//! state is inserted, changed or deleted, by whatever path (a send, a
//! received commit, a Welcome, leaving). [`crate::group_cache`] keeps a group
//! in memory only while its version is the one its own write left.
//!
//! The triggers are made again each time the store opens, after openmls's
//! migrations: a migration that rebuilds one of its tables drops the
//! triggers with the old table.

use openmls::prelude::GroupId;
use openmls_sqlx_storage::Codec as _;
use sqlx::SqliteConnection;

use super::codec::CborCodec;
use crate::error::{ClientError, Result};

/// openmls's tables keyed by group: everything an `MlsGroup` is loaded from.
const GROUP_TABLES: [&str; 4] = [
    "openmls_group_data",
    "openmls_proposal",
    "openmls_own_leaf_node",
    "openmls_epoch_key_pairs",
];

/// Makes the version triggers that are missing. Runs in the transaction
/// that opens the store.
pub(super) async fn install(tx: &mut SqliteConnection) -> Result<()> {
    for table in GROUP_TABLES {
        for (event, row) in [("insert", "NEW"), ("update", "NEW"), ("delete", "OLD")] {
            // Names from the lists above, never from outside.
            let statement = format!(
                "CREATE TRIGGER IF NOT EXISTS {table}_{event}_bumps_version \
                 AFTER {event} ON {table} BEGIN \
                 INSERT INTO mls_state_versions (group_id, version) VALUES ({row}.group_id, 1) \
                 ON CONFLICT (group_id) DO UPDATE SET version = version + 1; \
                 END"
            );
            sqlx::query(&statement).execute(&mut *tx).await?;
        }
    }
    Ok(())
}

/// The version of `group_id`'s stored state (0: never written since the
/// triggers were made).
pub(crate) async fn version(db: &mut SqliteConnection, group_id: &GroupId) -> Result<i64> {
    let version: Option<i64> =
        sqlx::query_scalar("SELECT version FROM mls_state_versions WHERE group_id = $1")
            .bind(key(group_id)?)
            .fetch_optional(&mut *db)
            .await?;
    Ok(version.unwrap_or(0))
}

/// The key of `group_id` in openmls's tables and in `mls_state_versions`:
/// the group id as the codec encodes it.
pub(crate) fn key(group_id: &GroupId) -> Result<Vec<u8>> {
    CborCodec::to_vec(group_id).map_err(ClientError::store)
}
