//! Key transparency, and the audit log reads of an auditor's device.
//!
//! Every device key a relay accepts is an entry in its transparency log.
//! Before this client adds a device to a channel, and before it encrypts to
//! a channel, it checks that each member device's key has such an entry,
//! proven included in a checkpoint signed by the log key this client pinned,
//! and that the checkpoint extends every checkpoint it has seen before. A
//! relay that invents a device, swaps a key, or shows this client a forked
//! or rolled-back log is caught here: the device is refused and a
//! [`SecurityAlert`] is raised and kept.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use conclave_audit::witness::CosignerKey;
use conclave_audit::{
    Checkpoint, ClientIpOpening, Event as LogEvent, Hash, SignedNote, VerifierKey, leaf_hash,
    verify_consistency, verify_inclusion,
};
use conclave_proto::{
    AuditEntriesAnswer, ClientAddress, ConsistencyProofAnswer, DeviceName, DeviceProofsAnswer,
    DeviceProofsBody, InclusionProofAnswer, KeyRotations, ProvenDevice, RegistrationProof,
    WitnessPolicy, routes,
};
use sqlx::{Connection, SqliteConnection};

use crate::alert::{AlertKind, SecurityAlert};
use crate::client::Client;
use crate::error::{ClientError, Result};
use crate::event::Event;
use crate::gossip::{self, Comparison, Heard};
use crate::store::{devices, transparency};
use crate::transport::unix_now;

/// One page of log entries, as an auditor reads them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditPage {
    /// The log's size when the page was read.
    pub size: u64,
    /// `(index, leaf bytes)`, in order.
    pub entries: Vec<(u64, Vec<u8>)>,
    /// `(index, salt and address)` for the page's entries whose `client-ip`
    /// field commits to an address, each checked against that commitment.
    pub addresses: Vec<(u64, ClientIpOpening)>,
}

fn bad_answer(what: &str) -> ClientError {
    ClientError::KeyTransparency(format!("the relay's answer has no valid {what}"))
}

fn decode_hashes(hashes: &[String], what: &str) -> Result<Vec<Hash>> {
    hashes
        .iter()
        .map(|h| {
            STANDARD
                .decode(h)
                .ok()
                .and_then(|bytes| Hash::try_from(bytes).ok())
                .ok_or_else(|| bad_answer(what))
        })
        .collect()
}

/// The opening of a leaf's `client-ip` commitment, from the auditor's entries.
fn client_address(address: ClientAddress) -> Option<ClientIpOpening> {
    let salt = hex::decode(&address.salt).ok()?.try_into().ok()?;
    Some(ClientIpOpening {
        salt,
        ip: address.ip,
    })
}

fn kt(reason: impl std::fmt::Display) -> ClientError {
    ClientError::KeyTransparency(reason.to_string())
}

impl Client {
    // ----- reading the log (auditor role for entries and proofs) ---------

    /// The relay's log verifier key as it states it now (not trusted: see
    /// [`Client::log_key`] for the pinned one).
    pub async fn relay_log_key(&self) -> Result<String> {
        Ok(self
            .signed_text(routes::AUDIT_KEY)
            .await?
            .trim_end()
            .to_owned())
    }

    /// `pinned`, or the key a chain of rotation statements signed by it
    /// reaches, if `note` is signed by that one and not by `pinned` (then
    /// pinned in its place).
    async fn follow_key_rotation(&self, pinned: VerifierKey, note: &str) -> Result<VerifierKey> {
        let signed_by = |key: &VerifierKey| {
            SignedNote::parse(note)
                .and_then(|n| n.verify(std::slice::from_ref(key)))
                .is_ok()
        };
        if signed_by(&pinned) {
            return Ok(pinned);
        }
        let rotations: KeyRotations = match self.fetch(routes::AUDIT_KEY_ROTATIONS).await {
            Ok(rotations) => rotations,
            Err(ClientError::Server { status: 404, .. }) => return Ok(pinned),
            Err(e) => return Err(e),
        };
        let Some(newest) = conclave_audit::rotation::follow(&pinned, &rotations.statements)
            .and_then(|reached| reached.last().cloned())
            .filter(|newest| signed_by(newest))
        else {
            // No rotation signed by the pinned key leads to this one: the
            // checkpoint is refused as it stands.
            return Ok(pinned);
        };
        tracing::info!(old = %pinned, new = %newest, "the log key was rotated; following its signed statement");
        let mut db = self.db().await;
        transparency::rotate_log_key(&mut db, &pinned.to_string(), &newest.to_string()).await?;
        Ok(newest)
    }

    /// The witness policy the relay states (a relay from before witnesses:
    /// none required).
    pub(crate) async fn relay_witness_policy(&self) -> Result<transparency::PinnedWitnesses> {
        let policy: WitnessPolicy = match self.fetch(routes::AUDIT_WITNESSES).await {
            Ok(policy) => policy,
            Err(ClientError::Server { status: 404, .. }) => WitnessPolicy {
                witnesses: Vec::new(),
                quorum: 0,
                grace_seconds: 0,
            },
            Err(e) => return Err(e),
        };
        for witness in &policy.witnesses {
            CosignerKey::parse(witness).map_err(|e| {
                kt(format!(
                    "the relay's witness key {witness:?} is unusable: {e}"
                ))
            })?;
        }
        if policy.quorum > policy.witnesses.len() as u64 {
            return Err(kt(
                "the relay's witness policy asks for more cosignatures than it has witnesses",
            ));
        }
        Ok(transparency::PinnedWitnesses {
            witnesses: policy.witnesses,
            quorum: policy.quorum,
            grace: policy.grace_seconds,
            last_quorum_at: unix_now(),
        })
    }

    /// The relay's latest signed checkpoint, as note text (unverified).
    pub async fn relay_checkpoint(&self) -> Result<String> {
        self.signed_text(routes::AUDIT_CHECKPOINT).await
    }

    /// Entries `start..end` (the relay returns at most one page; read on from
    /// the last index). Needs the auditor role.
    pub async fn audit_entries(&self, start: u64, end: u64) -> Result<AuditPage> {
        let answer: AuditEntriesAnswer = self.fetch(&routes::audit_entries(start, end)).await?;
        let mut addresses = Vec::new();
        let entries = answer
            .entries
            .into_iter()
            .map(|e| {
                let index = e.index;
                let leaf = STANDARD.decode(&e.leaf).map_err(|_| bad_answer("leaf"))?;
                if let Some(address) = e.client_address {
                    let opening = client_address(address).ok_or_else(|| bad_answer("client_address"))?;
                    // The address must be the one the signed leaf commits to.
                    let commitment = LogEvent::decode(&leaf).ok().and_then(|event| event.client_ip);
                    if !commitment.is_some_and(|c| opening.opens(&c)) {
                        return Err(kt(format!(
                            "the address the relay gives for entry {index} is not the one its leaf commits to"
                        )));
                    }
                    addresses.push((index, opening));
                }
                Ok((index, leaf))
            })
            .collect::<Result<_>>()?;
        Ok(AuditPage {
            size: answer.size,
            entries,
            addresses,
        })
    }

    /// The inclusion proof of entry `index` in the tree of `size` entries.
    /// Needs the auditor role.
    pub async fn audit_inclusion_proof(&self, index: u64, size: u64) -> Result<Vec<Hash>> {
        let answer: InclusionProofAnswer =
            self.fetch(&routes::audit_inclusion(index, size)).await?;
        decode_hashes(&answer.proof, "proof")
    }

    /// The consistency proof from `old` to `new` entries (any signed-in
    /// device may ask: members check each other's checkpoints with it).
    pub async fn audit_consistency_proof(&self, old: u64, new: u64) -> Result<Vec<Hash>> {
        let answer: ConsistencyProofAnswer =
            self.fetch(&routes::audit_consistency(old, new)).await?;
        decode_hashes(&answer.proof, "proof")
    }

    // ----- key transparency ----------------------------------------------

    /// Pins the log's verifier key, as received out of band (from the relay's
    /// operator). Without this, the key the relay states at the first check
    /// is pinned (trust on first use). A different key than the pinned one
    /// is refused.
    pub async fn pin_log_key(&self, verifier_key: &str) -> Result<()> {
        let key = VerifierKey::parse(verifier_key.trim())
            .map_err(|e| ClientError::Invalid(format!("log key: {e}")))?;
        let mut db = self.db().await;
        if let Some(pinned) = pinned_key(&mut db).await? {
            if pinned == key {
                return Ok(());
            }
            return Err(kt(format!(
                "this device already trusts log key {pinned}, not {key}"
            )));
        }
        store_key(&mut db, &key).await
    }

    /// The pinned log verifier key, if any yet.
    pub async fn log_key(&self) -> Result<Option<String>> {
        let mut db = self.db().await;
        Ok(pinned_key(&mut db).await?.map(|k| k.to_string()))
    }

    /// The newest checkpoint this device has verified, as signed note text:
    /// compare it out of band with other users' to detect a split view.
    pub async fn latest_checkpoint(&self) -> Result<Option<String>> {
        let mut db = self.db().await;
        Ok(transparency::newest_checkpoint(&mut db)
            .await?
            .map(|checkpoint| checkpoint.note))
    }

    /// Fetches and verifies a fresh checkpoint, through the proof of this
    /// device's own registration, and returns it.
    pub async fn refresh_checkpoint(&self) -> Result<String> {
        let identity = self.identity()?;
        self.check_device(
            identity.username.as_str(),
            &identity.key.device_id().to_string(),
            &identity.key.public().to_bytes(),
            true,
        )
        .await?;
        self.latest_checkpoint()
            .await?
            .ok_or_else(|| kt("no checkpoint was stored"))
    }

    /// Security alerts raised on this device; with `only_unseen`, those not
    /// returned before (and marks them seen).
    pub async fn security_alerts(&self, only_unseen: bool) -> Result<Vec<SecurityAlert>> {
        let mut db = self.db().await;
        Ok(transparency::take_alerts(&mut db, only_unseen)
            .await?
            .into_iter()
            .map(|stored| SecurityAlert {
                at: stored.at,
                kind: AlertKind::parse(&stored.kind),
                username: stored.username,
                device_id: stored.device_id,
                reason: stored.reason,
            })
            .collect())
    }

    /// Checks that `device_id` of `username` with `public_key` is registered
    /// in the log. On failure the device is refused: an alert is stored and
    /// raised, and the error says why.
    pub(crate) async fn verify_device(
        &self,
        username: &str,
        device_id: &str,
        public_key: &[u8],
    ) -> Result<()> {
        let device = DeviceToCheck {
            username,
            device_id,
            public_key,
        };
        self.verify_devices(std::slice::from_ref(&device))
            .await?
            .pop()
            .unwrap_or_else(|| Err(kt("no answer for this device")))
    }

    /// [`Client::verify_device`] for many devices at once (one request to
    /// the relay): each outcome in the order given; each refused device
    /// raises its alert.
    pub(crate) async fn verify_devices(
        &self,
        devices: &[DeviceToCheck<'_>],
    ) -> Result<Vec<Result<()>>> {
        let mut outcomes = Vec::with_capacity(devices.len());
        // As many per request as the relay answers at once.
        for batch in devices.chunks(MAX_DEVICES_PER_REQUEST) {
            match self.check_devices(batch, false).await {
                Ok(checked) => outcomes.extend(checked),
                // The checkpoint itself failed: nothing it vouches for stands.
                Err(ClientError::KeyTransparency(reason)) => {
                    outcomes.extend(batch.iter().map(|_| Err(kt(&reason))));
                }
                Err(e) => return Err(e),
            }
        }
        let mut checked = Vec::with_capacity(outcomes.len());
        for (device, outcome) in devices.iter().zip(outcomes) {
            checked.push(match outcome {
                Err(ClientError::KeyTransparency(reason)) => {
                    self.raise_alert(device.username, device.device_id, &reason)
                        .await?;
                    Err(ClientError::KeyTransparency(format!(
                        "refused device {} of {}: {reason}",
                        device.device_id, device.username
                    )))
                }
                other => other,
            });
        }
        Ok(checked)
    }

    async fn raise_alert(&self, username: &str, device_id: &str, reason: &str) -> Result<()> {
        tracing::warn!(%username, %device_id, %reason, "key transparency check failed");
        let stored = transparency::StoredAlert {
            at: unix_now(),
            username: username.to_owned(),
            device_id: device_id.to_owned(),
            reason: reason.to_owned(),
            kind: AlertKind::KeyTransparency.as_str().to_owned(),
        };
        let mut db = self.db().await;
        transparency::add_alert(&mut db, &stored).await?;
        drop(db);
        self.session.publish(Event::SecurityAlert(SecurityAlert {
            at: unix_now(),
            kind: AlertKind::KeyTransparency,
            username: username.to_owned(),
            device_id: device_id.to_owned(),
            reason: reason.to_owned(),
        }));
        Ok(())
    }

    async fn check_device(
        &self,
        username: &str,
        device_id: &str,
        public_key: &[u8],
        refresh: bool,
    ) -> Result<()> {
        let device = DeviceToCheck {
            username,
            device_id,
            public_key,
        };
        self.check_devices(std::slice::from_ref(&device), refresh)
            .await?
            .pop()
            .unwrap_or_else(|| Err(kt("no answer for this device")))
    }

    /// Checks many devices (a channel's members) against the log in one
    /// request: one fresh checkpoint, signed by the pinned key and extending
    /// every checkpoint this device saw, and an inclusion proof for each
    /// device's registration. A failure of the checkpoint refuses them all
    /// (the error); a device the log does not vouch for is refused on its own
    /// (its entry in the answer, in the order asked). Devices verified before
    /// with the same key are not asked about again, unless `refresh`.
    async fn check_devices(
        &self,
        devices: &[DeviceToCheck<'_>],
        refresh: bool,
    ) -> Result<Vec<Result<()>>> {
        let _one_at_a_time = self.session.transparency.lock().await;
        let mut db = self.db().await;
        let mut outcomes: Vec<Option<Result<()>>> = Vec::with_capacity(devices.len());
        for device in devices {
            let known = if refresh {
                None
            } else {
                devices::verified_key(&mut db, device.username, device.device_id).await?
            };
            outcomes.push((known.as_deref() == Some(device.public_key)).then_some(Ok(())));
        }
        let asked: Vec<usize> = (0..devices.len())
            .filter(|&i| outcomes[i].is_none())
            .collect();
        if asked.is_empty() {
            return Ok(outcomes.into_iter().flatten().collect());
        }
        let key = match pinned_key(&mut db).await? {
            Some(key) => key,
            None => {
                drop(db);
                let stated = self.relay_log_key().await?;
                let key = VerifierKey::parse(&stated)
                    .map_err(|e| kt(format!("the relay's log key is unusable: {e}")))?;
                db = self.db().await;
                store_key(&mut db, &key).await?;
                key
            }
        };
        let witnesses = match transparency::witness_policy(&mut db).await? {
            Some(policy) => policy,
            None => {
                drop(db);
                let policy = self.relay_witness_policy().await?;
                db = self.db().await;
                transparency::pin_witness_policy(&mut db, &policy).await?;
                transparency::witness_policy(&mut db)
                    .await?
                    .ok_or_else(|| kt("the witness policy was not kept"))?
            }
        };
        let previous = newest_checkpoint(&mut db).await?;
        drop(db);

        let body = DeviceProofsBody {
            devices: asked
                .iter()
                .map(|&i| DeviceName {
                    device_id: devices[i].device_id.to_owned(),
                    username: devices[i].username.to_owned(),
                })
                .collect(),
            since: previous.as_ref().map_or(0, |c| c.size()),
        };
        let answer = self
            .exchange_raw("POST", routes::AUDIT_DEVICES, &body)
            .await?;
        // An answer that does not parse vouches for no one: the devices are
        // refused as for a bad proof, with an alert.
        let answer: DeviceProofsAnswer = serde_json::from_slice(&answer)
            .map_err(|e| kt(format!("the relay's proof answer is malformed: {e}")))?;
        let note_text = answer.checkpoint.as_str();
        // Signed by a key this device did not pin: the log key may have been
        // rotated, which a statement the pinned key signed says.
        let key = self.follow_key_rotation(key, note_text).await?;
        let checkpoint = verified_checkpoint(
            note_text,
            &key,
            previous.as_ref(),
            answer.consistency.as_deref(),
        )?;
        let quorum_at = match witnessed(&witnesses, note_text, &checkpoint, unix_now()) {
            Ok(at) => at,
            Err(missing) => {
                self.raise_alert("", "", &missing).await?;
                return Err(kt(missing));
            }
        };
        if answer.devices.len() != asked.len() {
            return Err(bad_answer("devices"));
        }
        let proven = &answer.devices;

        let mut db = self.db().await;
        let mut tx = sqlx::Connection::begin(&mut *db).await?;
        transparency::add_checkpoint(
            &mut tx,
            checkpoint.size(),
            checkpoint.root_hash().as_slice(),
            note_text,
        )
        .await?;
        if let Some(at) = quorum_at {
            transparency::quorum_seen(&mut tx, at).await?;
        }
        for (&i, entry) in asked.iter().zip(proven) {
            let device = &devices[i];
            let outcome = match verified_registration(entry, device, &checkpoint) {
                Ok(index) => {
                    devices::set_verified(
                        &mut tx,
                        device.username,
                        device.device_id,
                        device.public_key,
                        index,
                    )
                    .await?;
                    Ok(())
                }
                Err(refused) => Err(refused),
            };
            outcomes[i] = Some(outcome);
        }
        tx.commit().await?;
        drop(db);
        // The newest checkpoint this device verified goes with its messages.
        self.session.gossip().verified(note_text);
        Ok(outcomes
            .into_iter()
            .map(|o| o.unwrap_or_else(|| Err(kt("no answer for this device"))))
            .collect())
    }
}

impl Client {
    /// Checks the checkpoints members gossiped since the last check (see
    /// `gossip.rs`); raises a security alert for each that contradicts this
    /// device's view. Never fails the receive path: a relay that cannot be
    /// reached leaves the check for later.
    pub(crate) async fn check_gossip(&self) {
        let heard = std::mem::take(&mut self.session.gossip().heard);
        if heard.is_empty() {
            return;
        }
        let (key, retired, ours) = {
            let mut db = self.db().await;
            let key = transparency::log_key(&mut db).await;
            let retired = transparency::retired_log_keys(&mut db).await;
            let ours = transparency::newest_checkpoint(&mut db).await;
            match (key, retired, ours) {
                (Ok(Some(key)), Ok(retired), Ok(Some(ours))) => (key, retired, ours),
                // Nothing pinned or verified yet: nothing to compare with
                // until this device checks a member.
                _ => {
                    self.session.gossip().heard.extend(heard);
                    return;
                }
            }
        };
        // The pinned key first; members may still gossip checkpoints signed
        // before a rotation this device followed.
        let keys: Vec<VerifierKey> = std::iter::once(key)
            .chain(retired)
            .filter_map(|text| VerifierKey::parse(&text).ok())
            .collect();
        let Ok(ours) = gossip::parse_checkpoint(&ours.note, &keys) else {
            return;
        };
        for heard in heard {
            let verdict = match gossip::compare(&keys, &ours, &heard.note) {
                Comparison::Agrees => Ok(()),
                Comparison::Contradicts(why) => Err(Some(why)),
                Comparison::NeedsProof { small, large } => self.proven(small, large).await,
            };
            match verdict {
                Ok(()) => {
                    self.session.gossip().agreed.insert(heard.note);
                }
                Err(None) => self.session.gossip().heard.push(heard),
                Err(Some(detail)) => {
                    if let Err(e) = self.raise_split_view(&heard, &detail).await {
                        tracing::warn!(error = %e, "could not store a split-view alert");
                    }
                    // Told once per note and session.
                    self.session.gossip().agreed.insert(heard.note);
                }
            }
        }
    }

    /// Whether the relay proves the tree `small` a prefix of `large`:
    /// `Err(None)` when it cannot be asked now.
    async fn proven(
        &self,
        (small, small_root): (u64, Hash),
        (large, large_root): (u64, Hash),
    ) -> std::result::Result<(), Option<String>> {
        let proof = match self.audit_consistency_proof(small, large).await {
            Ok(proof) => proof,
            // The relay answers, but cannot prove it: a tree it never showed
            // this device is no tree of the log it shows this device.
            Err(ClientError::Server {
                status, message, ..
            }) if (400..500).contains(&status) => {
                return Err(Some(format!(
                    "the relay cannot prove that the log of {large} entries extends the one of {small}: {message}"
                )));
            }
            Err(_) => return Err(None),
        };
        verify_consistency(small, large, &proof, &small_root, &large_root).map_err(|e| {
            Some(format!(
                "the log of {large} entries does not extend the one of {small}: {e}"
            ))
        })
    }

    async fn raise_split_view(&self, heard: &Heard, detail: &str) -> Result<()> {
        let channel = {
            let mut db = self.db().await;
            crate::store::channels::name_of(&mut db, &heard.group_id)
                .await?
                .unwrap_or_else(|| heard.channel.clone())
        };
        let reason = format!(
            "{} in {channel} holds a checkpoint that contradicts this device's view of the log ({detail}): \
             the relay may be showing different people different logs",
            heard.sender
        );
        tracing::warn!(sender = %heard.sender, %channel, "split view: {detail}");
        let alert = SecurityAlert {
            at: unix_now(),
            kind: AlertKind::SplitView,
            username: heard.sender.clone(),
            device_id: heard.device.clone(),
            reason,
        };
        let mut db = self.db().await;
        transparency::add_alert(
            &mut db,
            &transparency::StoredAlert {
                at: alert.at,
                username: alert.username.clone(),
                device_id: alert.device_id.clone(),
                reason: alert.reason.clone(),
                kind: alert.kind.as_str().to_owned(),
            },
        )
        .await?;
        drop(db);
        self.session.publish(Event::SecurityAlert(alert));
        Ok(())
    }
}

/// Most devices the relay proves in one request (`POST /v1/audit/devices`).
const MAX_DEVICES_PER_REQUEST: usize = 1000;

/// One device to check against the log.
pub(crate) struct DeviceToCheck<'a> {
    pub(crate) username: &'a str,
    pub(crate) device_id: &'a str,
    pub(crate) public_key: &'a [u8],
}

/// The checkpoint of a proof answer: signed by the pinned `key`, for this
/// log, and extending `previous` (the newest this device verified) by the
/// answer's consistency proof.
fn verified_checkpoint(
    note_text: &str,
    key: &VerifierKey,
    previous: Option<&Checkpoint>,
    consistency: Option<&[String]>,
) -> Result<Checkpoint> {
    let note = SignedNote::parse(note_text)
        .and_then(|n| n.verify(std::slice::from_ref(key)))
        .map_err(|e| kt(format!("checkpoint signature: {e}")))?;
    let checkpoint =
        Checkpoint::from_note_text(note.text()).map_err(|e| kt(format!("checkpoint: {e}")))?;
    if checkpoint.origin() != key.name() {
        return Err(kt(format!(
            "checkpoint is for log {:?}, not {:?}",
            checkpoint.origin(),
            key.name()
        )));
    }
    // Every tree extends the empty one (a relay signs one at its first
    // start, and a device that was refused may have stored it).
    let Some(previous) = previous.filter(|p| p.size() > 0) else {
        return Ok(checkpoint);
    };
    if checkpoint.size() < previous.size() {
        return Err(kt(format!(
            "the log went back from {} to {} entries (rollback)",
            previous.size(),
            checkpoint.size()
        )));
    }
    if checkpoint.size() == previous.size() {
        if checkpoint.root_hash() != previous.root_hash() {
            return Err(kt(format!(
                "two different trees of {} entries (fork)",
                checkpoint.size()
            )));
        }
        return Ok(checkpoint);
    }
    let proof = decode_hashes(
        consistency.ok_or_else(|| bad_answer("consistency proof"))?,
        "consistency proof",
    )?;
    verify_consistency(
        previous.size(),
        checkpoint.size(),
        &proof,
        previous.root_hash(),
        checkpoint.root_hash(),
    )
    .map_err(|e| {
        kt(format!(
            "the log of {} entries does not extend the one of {} this device saw (fork): {e}",
            checkpoint.size(),
            previous.size()
        ))
    })?;
    Ok(checkpoint)
}

/// Whether the checkpoint in `note` carries the cosignatures the pinned
/// witness policy requires: `Ok(Some(time))` with the newest cosignature's
/// time when it has the quorum, `Ok(None)` when none is required or it is
/// within the grace after the last checkpoint that had it, and otherwise the
/// refusal, naming the witnesses that did not cosign.
fn witnessed(
    policy: &transparency::PinnedWitnesses,
    note: &str,
    checkpoint: &Checkpoint,
    now: u64,
) -> std::result::Result<Option<u64>, String> {
    if policy.quorum == 0 {
        return Ok(None);
    }
    let parsed = SignedNote::parse(note).map_err(|e| format!("checkpoint: {e}"))?;
    let mut cosigned = Vec::new();
    let mut missing = Vec::new();
    for text in &policy.witnesses {
        let Ok(key) = CosignerKey::parse(text) else {
            continue;
        };
        match key.verify(&parsed) {
            Ok(Some(at)) => cosigned.push(at),
            _ => missing.push(key.name().to_owned()),
        }
    }
    if cosigned.len() as u64 >= policy.quorum {
        return Ok(cosigned.into_iter().max());
    }
    if now <= policy.last_quorum_at.saturating_add(policy.grace) {
        return Ok(None);
    }
    Err(format!(
        "the log's checkpoint of {} entries has {} of the {} witness cosignatures this workspace requires, \
         and none with them for {} s (grace {} s); no cosignature from {}: a witness is down, or the relay \
         shows a log its witnesses never saw",
        checkpoint.size(),
        cosigned.len(),
        policy.quorum,
        now.saturating_sub(policy.last_quorum_at),
        policy.grace,
        missing.join(", ")
    ))
}

/// The index of `device`'s registration in one entry of a proof answer,
/// once it registers exactly this device and key and is in `checkpoint`.
fn verified_registration(
    entry: &ProvenDevice,
    device: &DeviceToCheck<'_>,
    checkpoint: &Checkpoint,
) -> Result<u64> {
    if entry.username != device.username || entry.device_id != device.device_id {
        return Err(bad_answer("devices (out of order)"));
    }
    let RegistrationProof::Included(included) = &entry.registration else {
        return Err(kt(
            "the transparency log has no registration of this device",
        ));
    };
    let index = included.index;
    let leaf = STANDARD
        .decode(&included.leaf)
        .map_err(|_| bad_answer("leaf"))?;
    let registration = LogEvent::decode(&leaf)
        .ok()
        .and_then(|event| event.device_registration())
        .ok_or_else(|| kt("the log entry offered is not a device registration"))?;
    if registration.username != device.username
        || registration.device_id != device.device_id
        || registration.public_key != device.public_key
    {
        return Err(kt("the log registers a different key for this device"));
    }
    let proof = decode_hashes(&included.inclusion, "inclusion proof")?;
    verify_inclusion(
        index,
        checkpoint.size(),
        &leaf_hash(&leaf),
        &proof,
        checkpoint.root_hash(),
    )
    .map_err(|e| kt(format!("inclusion proof: {e}")))?;
    Ok(index)
}

async fn pinned_key(db: &mut SqliteConnection) -> Result<Option<VerifierKey>> {
    let Some(text) = transparency::log_key(db).await? else {
        return Ok(None);
    };
    VerifierKey::parse(&text)
        .map(Some)
        .map_err(|e| ClientError::store(format!("pinned log key: {e}")))
}

async fn store_key(db: &mut SqliteConnection, key: &VerifierKey) -> Result<()> {
    transparency::pin_log_key(db, &key.to_string()).await
}

async fn newest_checkpoint(db: &mut SqliteConnection) -> Result<Option<Checkpoint>> {
    let Some(stored) = transparency::newest_checkpoint(db).await? else {
        return Ok(None);
    };
    let root = Hash::try_from(stored.root_hash)
        .map_err(|_| ClientError::store("stored checkpoint is corrupt"))?;
    // Stored only after verification; the origin comes from the note.
    let origin = stored.note.lines().next().unwrap_or_default().to_owned();
    Checkpoint::new(&origin, stored.size, root)
        .map(Some)
        .map_err(|e| ClientError::store(format!("stored checkpoint: {e}")))
}

/// What an account change means, in words for its owner.
fn describe_change(kind: &str, detail: Option<&str>) -> String {
    let what = match kind {
        "totp_added" => "an authenticator app (TOTP) was added",
        "totp_removed" => "the authenticator app (TOTP) was removed",
        "passkey_added" => "a passkey was added",
        "passkey_added_passwordless" => "a passkey was added and now signs in without the password",
        "passkey_removed" => "a passkey was removed",
        "recovery_codes_replaced" => "the recovery codes were replaced",
        "password_changed" => "the password was changed",
        "device_revoked" => "a device was revoked",
        "account_recovered" => {
            "the account was recovered with a recovery code: other devices and recent factors were removed"
        }
        "account_locked" => "the workspace's administrator locked the account",
        "account_unlocked" => "the account was unlocked with a recovery invite",
        "password_guesses" => {
            "wrong passwords were tried on that device; if it was not you, revoke it"
        }
        _ => "the account's sign-in settings changed",
    };
    match detail {
        Some(detail) => format!("{what} ({detail})"),
        None => what.to_owned(),
    }
}

impl Client {
    /// Notes the account changes a fetch reports: each one made elsewhere
    /// (not by this device) and not seen before becomes a stored alert and an
    /// [`Event::AccountChanged`]. A device's first look only takes note.
    pub(crate) async fn note_account_changes(
        &self,
        answer: &conclave_proto::FetchAnswer,
    ) -> Result<Vec<Event>> {
        let list = &answer.account_changes;
        let identity = self.identity()?;
        let me = identity.key.device_id().to_string();
        let mut alerts = Vec::new();
        {
            let mut db = self.db().await;
            let mut tx = db.begin().await?;
            let first_look = transparency::no_account_change_seen(&mut tx).await?;
            if first_look {
                // A marker, so that a device whose account had no changes yet
                // still tells the first one.
                transparency::see_account_change(&mut tx, 0).await?;
            }
            for change in list {
                let Ok(id) = i64::try_from(change.id) else {
                    continue;
                };
                let new = transparency::see_account_change(&mut tx, id).await?;
                let by = change.device_id.as_deref().unwrap_or_default();
                if !new || first_look || by == me {
                    continue;
                }
                let alert = SecurityAlert {
                    at: change.at,
                    kind: AlertKind::AccountChange,
                    username: identity.username.to_string(),
                    device_id: by.to_owned(),
                    reason: describe_change(&change.kind, change.detail.as_deref()),
                };
                let stored = transparency::StoredAlert {
                    at: alert.at,
                    username: alert.username.clone(),
                    device_id: alert.device_id.clone(),
                    reason: alert.reason.clone(),
                    kind: alert.kind.as_str().to_owned(),
                };
                transparency::add_alert(&mut tx, &stored).await?;
                alerts.push(alert);
            }
            tx.commit().await?;
        }
        Ok(alerts.into_iter().map(Event::AccountChanged).collect())
    }
}
