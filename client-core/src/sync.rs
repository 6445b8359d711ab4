//! Fetching what waits on the relay, and listening for more: each page of
//! messages is processed (see `receive/`) before the relay is told it may
//! drop them, so a crash between the two only means a redelivery, which the
//! receive path recognises. Every fetch also reports the account's devices,
//! its sign-in changes, archived channels and retention, which are noted
//! here.

use conclave_proto::{AckAnswer, AckBody, Delivered, FetchAnswer, StreamFrame, routes};
use sqlx::Connection;

use crate::client::Client;
use crate::content::Content;
use crate::error::{ClientError, Result};
use crate::event::Event;
use crate::retry::reconnect_delay;
use crate::store::{channels, devices, messages, pending};
use crate::stream_acks::AckPacer;
use crate::transport::HttpRequest;

/// The most pushed frames taken together.
const STREAM_BURST: usize = 64;

impl Client {
    /// Fetches and processes everything waiting on the relay. Returns the events, in order.
    ///
    /// Then it keeps the account's channels in step with its devices: a new
    /// device of this account is added to every channel, and revoked devices
    /// are removed from them.
    pub async fn sync(&self) -> Result<Vec<Event>> {
        let mut events = self.sync_without_upkeep().await?;
        events.extend(self.import_shared_history().await?);
        events.extend(self.membership_upkeep().await?);
        self.check_changed_channels(&events).await;
        self.without_own_devices_group(events).await
    }

    /// Drops the events of the hidden group of this account's own devices
    /// (it carries read positions, and is no channel the user knows of):
    /// its joins, its naming, its members. They served the upkeep above;
    /// alerts about devices are not tied to a channel and always stay.
    async fn without_own_devices_group(&self, events: Vec<Event>) -> Result<Vec<Event>> {
        let mut hidden: std::collections::HashSet<String> = {
            let mut db = self.db().await;
            channels::own_group_names(&mut db)
                .await?
                .into_iter()
                .collect()
        };
        // Joined before it was named, it went by a placeholder.
        for event in &events {
            if let Event::Named {
                placeholder, name, ..
            } = event
                && hidden.contains(name)
            {
                hidden.insert(placeholder.clone());
            }
        }
        Ok(events
            .into_iter()
            .filter(|event| event.channel().is_none_or(|c| !hidden.contains(c)))
            .collect())
    }

    pub(crate) async fn sync_without_upkeep(&self) -> Result<Vec<Event>> {
        let events = self.sync_messages().await?;
        self.announce_pending().await?;
        Ok(events)
    }

    /// Tells new members the channel's name, for every commit of ours that
    /// added someone and has not been announced yet.
    pub(crate) async fn announce_pending(&self) -> Result<()> {
        let pending: Vec<(String, Content)> = {
            let mut db = self.db().await;
            pending::owed_announcements(&mut db)
                .await?
                .into_iter()
                .map(|owed| {
                    let kind = owed.kind;
                    let info = Content::ChannelInfo {
                        name: owed.name,
                        direct: kind == "dm",
                        topic: owed.topic,
                        scope: if kind == "public" || kind == "self" {
                            kind
                        } else {
                            String::new()
                        },
                    };
                    (owed.group_id, info)
                })
                .collect()
        };
        for (group_id, info) in pending {
            match self.send_payload(&group_id, &info).await {
                Ok(_) => {}
                // Archived meanwhile: nobody new will read it.
                Err(ClientError::Server { status: 403, .. }) => {}
                Err(e) => return Err(e),
            }
            let mut db = self.db().await;
            pending::announced(&mut db, &group_id).await?;
        }
        Ok(())
    }

    pub(crate) async fn sync_messages(&self) -> Result<Vec<Event>> {
        let mut events = Vec::new();
        let mut first = true;
        loop {
            let answer: FetchAnswer = self.fetch(&routes::messages_page(200)).await?;
            if std::mem::take(&mut first) {
                // The relay reports our key package stock with every fetch.
                self.refill_from_stock(&answer.key_package_stock).await?;
                events.extend(self.note_devices(&answer).await?);
                events.extend(self.note_account_changes(&answer).await?);
                events.extend(self.note_archived(&answer).await?);
                self.note_retention(&answer).await?;
            }
            let batch = answer.messages;
            if batch.is_empty() {
                break;
            }
            events.extend(self.process(&batch).await?);
            let _: AckAnswer = self
                .exchange("POST", routes::MESSAGES_ACK, &AckBody::up_to(&batch))
                .await?;
        }
        Ok(events)
    }

    /// Keeps a push stream open and processes messages as they arrive, until
    /// the returned task is aborted. Reconnects (to another node, if the
    /// transport knows several) after [`reconnect_delay`]; the stream opens
    /// at this device's cursor, so nothing is lost or repeated meanwhile.
    pub fn listen(&self) -> tokio::task::JoinHandle<()> {
        let client = self.clone();
        tokio::spawn(async move {
            let mut failures = 0;
            loop {
                let opened = std::time::Instant::now();
                let outcome = client.listen_once().await;
                if opened.elapsed() > std::time::Duration::from_secs(60) {
                    // It worked for a while: this is a new failure, not more
                    // of the same.
                    failures = 0;
                }
                match outcome {
                    Ok(()) => failures = 0,
                    Err(e) => {
                        failures += 1;
                        tracing::debug!(error = %e, failures, "push stream failed");
                    }
                }
                tokio::time::sleep(reconnect_delay(failures)).await;
            }
        })
    }

    async fn listen_once(&self) -> Result<()> {
        let identity = self.identity()?;
        let request = HttpRequest::signed(&identity.key, "GET", routes::STREAM, Vec::new());
        let mut stream = self.session.transport.open_stream(request).await?;
        // Messages are acknowledged once applied, a busy stream's at most
        // every `AckPacer::INTERVAL` in one frame (see `stream_acks.rs`).
        let mut acks = AckPacer::new();
        while let Some(frames) = acks.next_frames(stream.as_mut(), STREAM_BURST).await {
            // Messages that arrived together are applied in order.
            let mut batch = Vec::new();
            for frame in frames? {
                let frame: StreamFrame = serde_json::from_str(&frame)
                    .map_err(|e| ClientError::mls(format!("relay sent a malformed frame: {e}")))?;
                match frame {
                    StreamFrame::Message(delivered) => batch.push(delivered),
                    StreamFrame::DevicesChanged => {
                        // The account gained or lost a device: tell the
                        // user, and bring the channels in step (after what
                        // came before, in order).
                        self.apply_pushed(std::mem::take(&mut batch), &mut acks)
                            .await?;
                        self.sync().await?;
                    }
                }
            }
            self.apply_pushed(batch, &mut acks).await?;
            acks.send_if_due(stream.as_mut()).await?;
        }
        Ok(())
    }

    /// Applies messages pushed on a stream, notes them as owed an
    /// acknowledgement, and does the upkeep their events ask for.
    async fn apply_pushed(&self, batch: Vec<Delivered>, acks: &mut AckPacer) -> Result<()> {
        if batch.is_empty() {
            return Ok(());
        }
        let events = self.process(&batch).await?;
        for delivered in &batch {
            acks.note(delivered);
        }
        if events.iter().any(|e| matches!(e, Event::Joined { .. })) {
            self.refill_key_packages().await?;
        }
        if events
            .iter()
            .any(|e| matches!(e, Event::MembersChanged { .. }))
        {
            self.announce_pending().await?;
            self.check_changed_channels(&events).await;
        }
        Ok(())
    }

    /// Prunes local history older than each channel's retention, as the
    /// relay reports it: the device keeps no more than the relay does.
    async fn note_retention(&self, answer: &FetchAnswer) -> Result<()> {
        let now = crate::transport::unix_now();
        let mut db = self.db().await;
        for rule in &answer.retention {
            let (group_id, days) = (rule.group_id.as_str(), u64::from(rule.days));
            let cutoff = now.saturating_sub(days.saturating_mul(86_400));
            let mut tx = db.begin().await?;
            messages::prune(&mut tx, group_id, cutoff).await?;
            tx.commit().await?;
        }
        Ok(())
    }

    /// Marks the channels the relay reports archived; an event for each newly so.
    async fn note_archived(&self, answer: &FetchAnswer) -> Result<Vec<Event>> {
        let mut events = Vec::new();
        let mut db = self.db().await;
        for group_id in &answer.archived_groups {
            if let Some(channel) = channels::archive(&mut db, group_id).await? {
                events.push(Event::Archived {
                    channel,
                    group_id: group_id.clone(),
                });
            }
        }
        Ok(events)
    }

    /// Notes the account's device list from a fetch: new and revoked devices
    /// become events (not on this device's first look, when all are new).
    async fn note_devices(&self, answer: &FetchAnswer) -> Result<Vec<Event>> {
        let me = self.identity()?.key.device_id().to_string();
        let reported: Vec<(String, bool)> = answer
            .devices
            .iter()
            .map(|d| (d.device_id.clone(), d.revoked))
            .collect();
        let mut events = Vec::new();
        {
            let mut db = self.db().await;
            let mut tx = db.begin().await?;
            let first_look = devices::none_known(&mut tx).await?;
            for (device_id, revoked) in &reported {
                let known = devices::known_revoked(&mut tx, device_id).await?;
                let news = match (known, revoked) {
                    (None, false) => Some(Event::DeviceAdded {
                        device_id: device_id.clone(),
                    }),
                    (None | Some(false), true) => Some(Event::DeviceRevoked {
                        device_id: device_id.clone(),
                    }),
                    _ => None,
                };
                if let Some(event) = news.filter(|_| !first_look && *device_id != me) {
                    events.push(event);
                }
                if known == Some(*revoked) {
                    continue; // nothing new: no write on every sync
                }
                devices::set_known(&mut tx, device_id, *revoked).await?;
            }
            tx.commit().await?;
        }
        let revoked_members = answer
            .revoked_members
            .iter()
            .map(|m| (m.group_id.clone(), m.device_id.clone()))
            .collect();
        *self.session.device_news.lock().await = crate::session::DeviceNews {
            active: reported
                .into_iter()
                .filter(|(_, revoked)| !revoked)
                .map(|(id, _)| id)
                .collect(),
            revoked_members,
        };
        for event in &events {
            self.session.publish(event.clone());
        }
        Ok(events)
    }
}
