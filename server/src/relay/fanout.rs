//! Fan-out across relay nodes. Every node tells its own connected devices
//! at once, through an in-process broadcast; on PostgreSQL it also
//! publishes the notice with `pg_notify`, and listens (`LISTEN`) for the
//! other nodes' notices. A notice names what changed (a group and a
//! position, a device, an account), never a message: the receiving node's
//! streams fetch from the database, which stays the one source of truth.
//! That keeps every payload far below NOTIFY's 8000-byte limit.
//!
//! A notice that gets lost (the listening connection dropped, say) costs
//! latency, not messages: after reconnecting a node tells every stream to
//! look in the database again, and streams look every half minute anyway.

use serde::{Deserialize, Serialize};
use sqlx::postgres::PgListener;

use super::notice::{Notice, Notifier};
use crate::store::MessageKind;

/// The PostgreSQL notification channel the nodes share.
pub(crate) const CHANNEL: &str = "conclave_fanout";

/// A notice as it travels between nodes.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub(crate) enum Wire {
    /// Something was appended to a group.
    Appended {
        node: String,
        group_id: String,
        seq: u64,
        message_kind: MessageKind,
        /// Unix milliseconds, for the delivery-latency histogram.
        accepted_ms: u64,
    },
    SessionEnded {
        node: String,
        device_id: String,
    },
    DevicesChanged {
        node: String,
        username: String,
    },
    Joined {
        node: String,
        device_id: String,
    },
}

impl Wire {
    /// The wire form of `notice`, if other nodes need it.
    pub(crate) fn of(node: &str, notice: &Notice) -> Option<Self> {
        let node = node.to_owned();
        Some(match notice {
            Notice::Message(p, accepted, _) => Wire::Appended {
                node,
                group_id: p.group_id.clone(),
                seq: p.seq,
                message_kind: p.kind,
                // A latency measurement between nodes: the system's clock.
                accepted_ms: crate::Clock::system()
                    .unix_millis()
                    .saturating_sub(u64::try_from(accepted.elapsed().as_millis()).unwrap_or(0)),
            },
            Notice::Appended { .. } | Notice::Resync | Notice::GoingAway => return None,
            Notice::SessionEnded { device_id } => Wire::SessionEnded {
                node,
                device_id: device_id.clone(),
            },
            Notice::DevicesChanged { username } => Wire::DevicesChanged {
                node,
                username: username.clone(),
            },
            Notice::Joined { device_id } => Wire::Joined {
                node,
                device_id: device_id.clone(),
            },
        })
    }

    fn node(&self) -> &str {
        match self {
            Wire::Appended { node, .. }
            | Wire::SessionEnded { node, .. }
            | Wire::DevicesChanged { node, .. }
            | Wire::Joined { node, .. } => node,
        }
    }

    /// The notice for this node's streams.
    fn into_notice(self) -> Notice {
        match self {
            Wire::Appended {
                group_id,
                seq,
                message_kind,
                accepted_ms,
                ..
            } => Notice::Appended {
                group_id,
                seq,
                kind: message_kind,
                accepted_ms,
            },
            Wire::SessionEnded { device_id, .. } => Notice::SessionEnded { device_id },
            Wire::DevicesChanged { username, .. } => Notice::DevicesChanged { username },
            Wire::Joined { device_id, .. } => Notice::Joined { device_id },
        }
    }
}

/// Publishes `notice` for the other nodes (PostgreSQL only), off the
/// request's path.
pub(crate) fn publish(notifier: &Notifier, notice: &Notice) {
    if !notifier.shared_database() {
        return;
    }
    let Some(wire) = Wire::of(notifier.node(), notice) else {
        return;
    };
    let Ok(payload) = serde_json::to_string(&wire) else {
        return;
    };
    let pool = notifier.store().pool().clone();
    tokio::spawn(async move {
        let sent = sqlx::query("SELECT pg_notify($1, $2)")
            .bind(CHANNEL)
            .bind(payload)
            .execute(&pool)
            .await;
        if let Err(e) = sent {
            // Other nodes' streams catch up at their next look.
            tracing::warn!(error = %e, "cannot tell other relay nodes");
        }
    });
}

/// Listens for the other nodes' notices on PostgreSQL at `url` until it is
/// dropped (the relay's tasks end it at shutdown), reconnecting when the
/// connection drops.
pub(crate) async fn listen(url: String, notifier: Notifier) {
    {
        loop {
            match PgListener::connect(&url).await {
                Ok(mut listener) => match listener.listen(CHANNEL).await {
                    Ok(()) => {
                        // Whatever was said while we were not listening:
                        // every stream looks in the database.
                        notifier.tell_local(Notice::Resync);
                        follow(&mut listener, &notifier).await;
                    }
                    Err(e) => tracing::warn!(error = %e, "cannot LISTEN for other relay nodes"),
                },
                Err(e) => {
                    tracing::warn!(error = %e, "cannot connect to listen for other relay nodes")
                }
            }
            tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        }
    }
}

/// Passes another node's notice to this node's streams. A message that
/// needs no membership change is fetched once here, for every stream, and
/// handed on as if accepted here; anything else sends the streams that care
/// to the database themselves.
fn tell_streams(notifier: &Notifier, notice: Notice) {
    let Notice::Appended {
        group_id,
        seq,
        kind,
        accepted_ms,
    } = &notice
    else {
        return notifier.tell_local(notice);
    };
    if !kind.is_plain() {
        return notifier.tell_local(notice);
    }
    let (notifier, group_id, seq, accepted_ms) =
        (notifier.clone(), group_id.clone(), *seq, *accepted_ms);
    tokio::spawn(async move {
        let age = crate::Clock::system()
            .unix_millis()
            .saturating_sub(accepted_ms);
        let accepted = std::time::Instant::now()
            .checked_sub(std::time::Duration::from_millis(age))
            .unwrap_or_else(std::time::Instant::now);
        match notifier.store().message_at(&group_id, seq).await {
            Ok(Some(message)) => notifier.tell_local(Notice::message(message, accepted)),
            // Gone (retention) or unreadable right now: the streams look.
            Ok(None) | Err(_) => notifier.tell_local(notice),
        }
    });
}

async fn follow(listener: &mut PgListener, notifier: &Notifier) {
    loop {
        match listener.try_recv().await {
            Ok(Some(notification)) => match serde_json::from_str::<Wire>(notification.payload()) {
                Ok(wire) if wire.node() == notifier.node() => {}
                Ok(wire) => tell_streams(notifier, wire.into_notice()),
                Err(e) => tracing::warn!(error = %e, "unreadable notice from another node"),
            },
            // The connection dropped and came back: notices may be lost.
            Ok(None) => notifier.tell_local(Notice::Resync),
            Err(e) => {
                tracing::warn!(error = %e, "lost the connection to other relay nodes");
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notices_travel_as_small_json_and_come_back_the_same() {
        let notice = Notice::message(
            crate::Pending {
                group_id: "ab".repeat(32),
                seq: 42,
                kind: MessageKind::Application,
                payload: vec![7; 100_000].into(),
            },
            std::time::Instant::now(),
        );
        let wire = Wire::of("node-1", &notice).unwrap();
        let text = serde_json::to_string(&wire).unwrap();
        // Ids only: far below NOTIFY's 8000-byte limit, whatever the message.
        assert!(text.len() < 300, "{text}");
        let back: Wire = serde_json::from_str(&text).unwrap();
        assert_eq!(back, wire);
        assert_eq!(back.node(), "node-1");
        assert!(matches!(
            back.into_notice(),
            Notice::Appended {
                seq: 42,
                kind: MessageKind::Application,
                ..
            }
        ));
        assert!(Wire::of("node-1", &Notice::Resync).is_none());
        assert!(Wire::of("node-1", &Notice::GoingAway).is_none());
    }
}
