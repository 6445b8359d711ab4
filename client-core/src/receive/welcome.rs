//! A Welcome: this device joins a channel, or rejoins one it was removed
//! from. The channel goes by a placeholder (`channel-<id>`) until the
//! inviter's announcement of its name arrives (see `channel_info.rs`).

use conclave_proto::Delivered;
use openmls::prelude::tls_codec::Deserialize as _;
use openmls::prelude::*;
use sqlx::SqliteConnection;

use crate::client::Client;
use crate::error::Result;
use crate::event::Event;
use crate::group::join_config;
use crate::store::{TxProvider, channels, pending};

impl Client {
    /// Joins a group from its Welcome; `rejoining` names the channel this
    /// device was removed from earlier, whose old MLS state is replaced.
    pub(super) async fn join_from_welcome(
        &self,
        tx: &mut SqliteConnection,
        delivered: &Delivered,
        payload: &[u8],
        rejoining: Option<String>,
    ) -> Result<Vec<Event>> {
        // A welcome we cannot read cannot be acted on: skip it rather than
        // stall every later message behind it.
        let Ok(MlsMessageBodyIn::Welcome(welcome)) =
            MlsMessageIn::tls_deserialize_exact(payload).map(MlsMessageIn::extract)
        else {
            tracing::warn!(group = %delivered.group_id, "welcome slot holds no Welcome; skipping it");
            return Ok(Vec::new());
        };
        let joined = {
            let provider = TxProvider::new(&self.session.crypto, tx);
            StagedWelcome::build_from_welcome(&provider, &join_config(), welcome)
                .and_then(|builder| match rejoining {
                    Some(_) => builder.replace_old_group().build(),
                    None => builder.build(),
                })
                .and_then(|staged| staged.into_group(&provider))
        };
        if let Err(e) = joined {
            tracing::warn!(group = %delivered.group_id, error = ?e, "cannot join from welcome; skipping it");
            return Ok(Vec::new());
        }
        if let Some(name) = rejoining {
            // Same channel, same name and history; what we did in the old
            // membership (a pending commit, an owed announcement) is void.
            channels::rejoin(tx, &delivered.group_id, delivered.seq).await?;
            pending::forget_commit(tx, &delivered.group_id).await?;
            pending::announced(tx, &delivered.group_id).await?;
            return Ok(vec![Event::Joined {
                channel: name,
                group_id: delivered.group_id.clone(),
            }]);
        }
        // Until the inviter's channel info arrives, the channel goes by its id.
        let name = channels::unique_name(
            tx,
            &format!(
                "channel-{}",
                delivered.group_id.chars().take(8).collect::<String>()
            ),
        )
        .await?;
        let channel = channels::NewChannel {
            group_id: &delivered.group_id,
            name: &name,
            processed_seq: delivered.seq,
            kind: "channel",
            topic: "",
            named: false,
        };
        channels::insert(tx, &channel).await?;
        Ok(vec![Event::Joined {
            channel: name,
            group_id: delivered.group_id.clone(),
        }])
    }
}
