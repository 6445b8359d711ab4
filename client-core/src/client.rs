//! The client: one account's device, its channels and their history.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::{Arc, RwLock};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use conclave_crypto::{
    CIPHERSUITE, DeviceCredential, DeviceKey, DevicePublicKey, Username, sha256_hex,
};
use conclave_proto::{
    AckAnswer, AckBody, Delivered, ErrorBody, ErrorCode, FetchAnswer, KeyPackageStock, MessageKind,
    PostAnswer, PostMessage, StreamFrame, routes,
};
use openmls::prelude::tls_codec::{Deserialize as _, Serialize as _};
use openmls::prelude::*;
use openmls_rust_crypto::RustCrypto;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use sqlx::{Connection, Row, SqliteConnection};
use tokio::sync::{Mutex, broadcast};
use zeroize::Zeroizing;

use crate::channel::{Channel, ChannelState, Member, validate_channel_name};
use crate::content::{
    Content, Decoded, MAX_BODY, mentions_in, message_aad, message_id_from_aad, new_message_id,
};
use crate::error::{ClientError, Result};
use crate::event::Event;
use crate::group::{create_config, join_config, load_group, tls_bytes, users_of};
use crate::history_entry::HistoryEntry;
use crate::identity::Identity;
use crate::retry::{MAX_ATTEMPTS, backoff, reconnect_delay, retry_delay};
use crate::store::{self, TxProvider};
use crate::transport::{HttpRequest, Transport};

/// One-time key packages a device keeps on the relay.
const KEY_PACKAGE_TARGET: u64 = 40;
/// Below this many, the device uploads more.
const KEY_PACKAGE_LOW: u64 = 10;

/// What the last fetch said about the account's devices, for the membership
/// upkeep that follows a sync.
#[derive(Default)]
struct DeviceNews {
    /// The account's devices that are not revoked.
    active: Vec<String>,
    /// (group id, device id) of revoked devices still in our groups.
    revoked_members: Vec<(String, String)>,
}

pub(crate) struct Inner {
    transport: Arc<dyn Transport>,
    pub(crate) db: Mutex<SqliteConnection>,
    pub(crate) crypto: RustCrypto,
    /// Set while the device key is in memory (unprotected, or unlocked).
    identity: RwLock<Option<Arc<Identity>>>,
    /// How the device key is kept at rest, and who it is while locked.
    pub(crate) at_rest: std::sync::Mutex<crate::key_at_rest::AtRest>,
    pub(crate) events: broadcast::Sender<Event>,
    device_news: Mutex<DeviceNews>,
    /// Serializes key-transparency checks, so each stored checkpoint is
    /// checked against the one stored just before it.
    pub(crate) transparency: Mutex<()>,
    /// Groups whose every member passed the key-transparency check since
    /// their membership last changed, and a counter of membership changes.
    members_checked: std::sync::Mutex<(u64, std::collections::HashSet<String>)>,
    /// Held while this client lives: one process per home directory, since
    /// two would race each other over the same MLS state.
    _home_lock: std::fs::File,
}

/// A Conclave client for one device. Cheap to clone; clones share state.
///
/// Needs a multi-threaded tokio runtime (openmls's SQLite storage blocks in place).
#[derive(Clone)]
pub struct Client {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let user = self.username();
        f.debug_struct("Client")
            .field("user", &user)
            .finish_non_exhaustive()
    }
}

/// A refusal, from the relay's [`ErrorBody`] (or from a body that is none:
/// a proxy's page, say).
fn server_error(status: u16, body: &[u8]) -> ClientError {
    let (code, message) = match serde_json::from_slice::<ErrorBody>(body) {
        Ok(body) => (body.error.into(), body.message),
        Err(_) => ("unknown".to_owned(), "no explanation".to_owned()),
    };
    ClientError::Server {
        status,
        code,
        message,
    }
}

/// The relay's answer to `path` was not the protocol's `what`.
fn malformed_answer(path: &str, e: serde_json::Error) -> ClientError {
    ClientError::Invalid(format!("the relay's answer to {path} is malformed: {e}"))
}

impl Client {
    /// Opens (or creates) the device store in `home` and talks to the relay through `transport`.
    ///
    /// A device key sealed under a local passphrase stays locked until
    /// [`Client::unlock`]; this client cannot log in (it would not know how
    /// to keep the new key): [`Client::open_with`] says how.
    ///
    /// Only one process at a time may use a home directory: a second gets
    /// [`ClientError::HomeInUse`].
    pub async fn open(home: &Path, transport: impl Transport) -> Result<Self> {
        let home_lock = store::lock_home(home)?;
        let mut db = store::open(home).await?;
        let (identity, at_rest) = crate::key_at_rest::load(&mut db).await?;
        let (events, _) = broadcast::channel(1024);
        Ok(Self {
            inner: Arc::new(Inner {
                transport: Arc::new(transport),
                db: Mutex::new(db),
                crypto: RustCrypto::default(),
                identity: RwLock::new(identity.map(Arc::new)),
                at_rest: std::sync::Mutex::new(at_rest),
                events,
                device_news: Mutex::new(DeviceNews::default()),
                transparency: Mutex::new(()),
                members_checked: std::sync::Mutex::default(),
                _home_lock: home_lock,
            }),
        })
    }

    pub(crate) fn identity(&self) -> Result<Arc<Identity>> {
        self.inner
            .identity
            .read()
            .map_err(|_| ClientError::store("identity lock poisoned"))?
            .clone()
            .ok_or_else(|| {
                if self.key_status() == crate::KeyStatus::Locked {
                    ClientError::KeyLocked
                } else {
                    ClientError::NotLoggedIn
                }
            })
    }

    /// Makes `identity` this client's usable one (its key in memory).
    pub(crate) fn set_identity(&self, identity: Identity) -> Result<()> {
        *self
            .inner
            .identity
            .write()
            .map_err(|_| ClientError::store("identity lock poisoned"))? = Some(Arc::new(identity));
        Ok(())
    }

    /// The logged-in username, if any (also while the key is locked).
    pub fn username(&self) -> Option<String> {
        match self.identity() {
            Ok(identity) => Some(identity.username.to_string()),
            Err(_) => self.locked_as().map(|(user, _)| user),
        }
    }

    /// This device's id, if logged in (also while the key is locked).
    pub fn device_id(&self) -> Option<String> {
        match self.identity() {
            Ok(identity) => Some(identity.key.device_id().to_string()),
            Err(_) => self.locked_as().map(|(_, device)| device),
        }
    }

    /// Subscribes to events (messages, joins, membership changes) as they are processed.
    pub fn events(&self) -> broadcast::Receiver<Event> {
        self.inner.events.subscribe()
    }

    // ----- talking to the relay ------------------------------------------

    /// A signed GET whose answer is text, not JSON.
    pub(crate) async fn signed_text(&self, path: &str) -> Result<String> {
        let identity = self.identity()?;
        let request = HttpRequest::signed(&identity.key, "GET", path, Vec::new());
        let response = self.inner.transport.send(request).await?;
        if (200..300).contains(&response.status) {
            return String::from_utf8(response.body)
                .map_err(|_| ClientError::Invalid(format!("{path} answered with non-UTF-8 text")));
        }
        Err(server_error(response.status, &response.body))
    }

    /// A signed request with a raw body, whose answer is raw bytes.
    pub(crate) async fn signed_bytes(
        &self,
        method: &'static str,
        path: &str,
        body: Vec<u8>,
    ) -> Result<Vec<u8>> {
        let identity = self.identity()?;
        let request = HttpRequest::signed(&identity.key, method, path, body);
        let response = self.inner.transport.send(request).await?;
        if (200..300).contains(&response.status) {
            return Ok(response.body);
        }
        Err(server_error(response.status, &response.body))
    }

    pub(crate) async fn call(
        &self,
        method: &'static str,
        path: &str,
        body: Option<&Value>,
        signer: Option<&DeviceKey>,
    ) -> Result<Value> {
        let body = match body {
            Some(value) => serde_json::to_vec(value).map_err(ClientError::store)?,
            None => Vec::new(),
        };
        let answer = self.call_bytes(method, path, body, signer).await?;
        Ok(serde_json::from_slice(&answer).unwrap_or(Value::Null))
    }

    /// A signed request of the relay protocol: `body` and the answer are
    /// `conclave_proto` wire types.
    pub(crate) async fn exchange<A: DeserializeOwned>(
        &self,
        method: &'static str,
        path: &str,
        body: &impl Serialize,
    ) -> Result<A> {
        let identity = self.identity()?;
        let body = serde_json::to_vec(body).map_err(ClientError::store)?;
        let answer = self
            .call_bytes(method, path, body, Some(&identity.key))
            .await?;
        serde_json::from_slice(&answer).map_err(|e| malformed_answer(path, e))
    }

    /// A signed GET of the relay protocol, whose answer is a
    /// `conclave_proto` wire type.
    pub(crate) async fn fetch<A: DeserializeOwned>(&self, path: &str) -> Result<A> {
        let identity = self.identity()?;
        let answer = self
            .call_bytes("GET", path, Vec::new(), Some(&identity.key))
            .await?;
        serde_json::from_slice(&answer).map_err(|e| malformed_answer(path, e))
    }

    /// Sends a request (signed by `signer`, if any) and returns the body of
    /// a 2xx answer, or the relay's refusal as [`ClientError::Server`].
    async fn call_bytes(
        &self,
        method: &'static str,
        path: &str,
        body: Vec<u8>,
        signer: Option<&DeviceKey>,
    ) -> Result<Vec<u8>> {
        // Reading and acknowledging change nothing that doing them twice
        // would change: when the answer is lost (its node died), ask again,
        // on another node if there is one. Freshly signed each time, as the
        // relay spends every nonce once.
        let tries = if method == "GET" || path == routes::MESSAGES_ACK {
            3
        } else {
            1
        };
        let mut tried = 0;
        let mut busy_tries = 0;
        let response = loop {
            tried += 1;
            let request = match signer {
                Some(key) => HttpRequest::signed(key, method, path, body.clone()),
                None => HttpRequest {
                    method,
                    path: path.to_owned(),
                    headers: Vec::new(),
                    body: body.clone(),
                },
            };
            match self.inner.transport.send(request).await {
                Err(e) if tried < tries => {
                    tracing::debug!(error = %e, tried, "asking again after a lost answer");
                    tokio::time::sleep(retry_delay(tried)).await;
                }
                // The relay refused before doing anything (its password
                // hashing or its database was saturated) and said when to
                // come back: do, a few times, freshly signed.
                Ok(response) if response.status == 503 && busy_tries < MAX_BUSY_TRIES => {
                    let Ok(refusal) = serde_json::from_slice::<ErrorBody>(&response.body) else {
                        break response;
                    };
                    if refusal.error != ErrorCode::Busy {
                        break response;
                    }
                    busy_tries += 1;
                    tried -= 1;
                    let wait = refusal.retry_after.unwrap_or(1).clamp(1, 5);
                    tracing::debug!(wait, "relay busy; trying again");
                    tokio::time::sleep(std::time::Duration::from_secs(wait)).await;
                }
                outcome => break outcome?,
            }
        };
        if (200..300).contains(&response.status) {
            return Ok(response.body);
        }
        Err(server_error(response.status, &response.body))
    }

    pub(crate) async fn signed(
        &self,
        method: &'static str,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value> {
        let identity = self.identity()?;
        self.call(method, path, body, Some(&identity.key)).await
    }

    /// Creates an account and logs this device in, on a relay with open
    /// registration (else see [`Client::register_with_invite`]).
    pub async fn register(&self, username: &str, password: &str) -> Result<()> {
        self.create_account(username, password, None).await?;
        self.login(username, password).await
    }

    pub(crate) async fn create_account(
        &self,
        username: &str,
        password: &str,
        invite_code: Option<&str>,
    ) -> Result<()> {
        let name = Username::parse(username).map_err(|e| ClientError::Invalid(e.to_string()))?;
        if let Some(logged_in) = self.username() {
            return Err(ClientError::AlreadyLoggedIn(logged_in));
        }
        self.check_key_protection()?;
        let mut body = json!({ "username": name.as_str(), "password": password });
        if let Some(code) = invite_code {
            body["invite_code"] = json!(code);
        }
        self.call("POST", "/v1/accounts", Some(&body), None).await?;
        Ok(())
    }

    /// Logs this device in with the password alone, for an account without a
    /// second factor (its first device). See [`Client::login_with`].
    pub async fn login(&self, username: &str, password: &str) -> Result<()> {
        self.login_with(username, crate::Credentials::password(password))
            .await
    }

    /// Keeps a freshly registered device key (sealed or not, as this
    /// client's [`crate::KeyProtection`] says), then uploads key packages so
    /// others can add this device to channels.
    pub(crate) async fn adopt_identity(&self, name: Username, key: DeviceKey) -> Result<()> {
        self.store_new_key(&name, &key).await?;
        *self
            .inner
            .identity
            .write()
            .map_err(|_| ClientError::store("identity lock poisoned"))? =
            Some(Arc::new(Identity {
                username: name.clone(),
                key,
                bot_owner: None,
            }));
        // A bot's every leaf says so, and names its owner: learn it before
        // the first key package is made.
        let status = self.signed("GET", "/v1/account", None).await?;
        if let Some(owner) = status["bot_owner"].as_str() {
            let owner = Username::parse(owner).map_err(|e| ClientError::Invalid(e.to_string()))?;
            {
                let mut db = self.inner.db.lock().await;
                sqlx::query("UPDATE identity SET bot_owner = $1 WHERE id = 1")
                    .bind(owner.as_str())
                    .execute(&mut *db)
                    .await?;
            }
            let key = DeviceKey::from_secret_bytes(&self.identity()?.key.to_secret_bytes());
            *self
                .inner
                .identity
                .write()
                .map_err(|_| ClientError::store("identity lock poisoned"))? =
                Some(Arc::new(Identity {
                    username: name,
                    key,
                    bot_owner: Some(owner),
                }));
        }
        self.refill_key_packages().await
    }

    /// Tops up this device's key packages on the relay when they run low.
    pub async fn refill_key_packages(&self) -> Result<()> {
        let stock: KeyPackageStock = self.fetch(routes::KEY_PACKAGE_STOCK).await?;
        self.refill_from_stock(&stock).await
    }

    async fn refill_from_stock(&self, stock: &KeyPackageStock) -> Result<()> {
        let one_time = stock.one_time;
        let has_last_resort = stock.last_resort;
        let wanted = if one_time < KEY_PACKAGE_LOW {
            KEY_PACKAGE_TARGET - one_time
        } else {
            0
        };
        if wanted == 0 && has_last_resort {
            return Ok(());
        }
        let identity = self.identity()?;
        let credential = CredentialWithKey {
            credential: identity.credential().to_mls(),
            signature_key: identity.key.public().to_bytes().to_vec().into(),
        };
        let mut encoded = Vec::new();
        let mut db = self.inner.db.lock().await;
        let mut tx = db.begin().await?;
        {
            let provider = TxProvider::new(&self.inner.crypto, &mut tx);
            let last_resort = (!has_last_resort).then_some(true);
            for is_last_resort in (0..wanted).map(|_| false).chain(last_resort) {
                // The last-resort extension must be listed in the leaf's capabilities.
                let capabilities = Capabilities::builder()
                    .extensions(vec![ExtensionType::LastResort])
                    .build();
                let mut builder = KeyPackage::builder().leaf_node_capabilities(capabilities);
                if is_last_resort {
                    builder = builder.mark_as_last_resort();
                }
                let bundle = builder
                    .build(CIPHERSUITE, &provider, &identity.key, credential.clone())
                    .map_err(ClientError::mls)?;
                let message = MlsMessageOut::from(bundle.key_package().clone());
                encoded.push(STANDARD.encode(tls_bytes(&message)?));
            }
        }
        // Private init keys are stored before the public halves leave the device.
        tx.commit().await?;
        drop(db);
        // Small batches keep each request well under any sensible body limit.
        for batch in encoded.chunks(10) {
            self.signed(
                "POST",
                "/v1/key-packages",
                Some(&json!({ "key_packages": batch })),
            )
            .await?;
        }
        Ok(())
    }

    // ----- channels -------------------------------------------------------

    pub(crate) async fn channel_by_name(
        &self,
        db: &mut SqliteConnection,
        name: &str,
    ) -> Result<(String, bool)> {
        let row = sqlx::query("SELECT group_id, active FROM channels WHERE name = $1")
            .bind(name)
            .fetch_optional(db)
            .await?
            .ok_or_else(|| ClientError::NoSuchChannel(name.to_owned()))?;
        Ok((row.get(0), row.get::<i64, _>(1) != 0))
    }

    pub(crate) async fn active_channel(&self, name: &str) -> Result<String> {
        let mut db = self.inner.db.lock().await;
        match self.channel_by_name(&mut db, name).await? {
            (group_id, true) => Ok(group_id),
            (_, false) => Err(ClientError::NotInChannel(name.to_owned())),
        }
    }

    /// Creates a private channel with this device as its only member: its
    /// name and topic travel only inside the group, and members join by
    /// invitation.
    pub async fn create_channel(&self, name: &str) -> Result<()> {
        self.create_group_named(name, None, "channel").await
    }

    /// Creates a group of `kind`: a channel, public (listed with
    /// `public_topic` in the workspace directory, open to join) or private,
    /// or this account's own `self` group.
    pub(crate) async fn create_group_named(
        &self,
        name: &str,
        public_topic: Option<&str>,
        kind: &str,
    ) -> Result<()> {
        validate_channel_name(name)?;
        let identity = self.identity()?;
        let mut db = self.inner.db.lock().await;
        if self.channel_by_name(&mut db, name).await.is_ok() {
            return Err(ClientError::ChannelExists(name.to_owned()));
        }
        let mut tx = db.begin().await?;
        let (group_id, body) = {
            let provider = TxProvider::new(&self.inner.crypto, &mut tx);
            let credential = CredentialWithKey {
                credential: identity.credential().to_mls(),
                signature_key: identity.key.public().to_bytes().to_vec().into(),
            };
            let group = MlsGroup::new(&provider, &identity.key, &create_config(), credential)
                .map_err(ClientError::mls)?;
            let info = group
                .export_group_info(provider.crypto(), &identity.key, false)
                .map_err(ClientError::mls)?;
            let tree = group
                .export_ratchet_tree()
                .tls_serialize_detached()
                .map_err(ClientError::mls)?;
            let mut body = json!({ "group_info": STANDARD.encode(tls_bytes(&info)?), "ratchet_tree": STANDARD.encode(tree) });
            if let Some(topic) = public_topic {
                body["public"] = json!({ "name": name, "topic": topic });
            }
            (hex::encode(group.group_id().as_slice()), body)
        };
        // The group exists locally only if the relay accepted it: the transaction spans the call.
        self.signed("POST", "/v1/groups", Some(&body)).await?;
        sqlx::query(
            "INSERT INTO channels (group_id, name, processed_seq, active, kind, topic)
             VALUES ($1, $2, 0, 1, $3, $4)",
        )
        .bind(&group_id)
        .bind(name)
        .bind(if public_topic.is_some() {
            "public"
        } else {
            kind
        })
        .bind(public_topic.unwrap_or(""))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        drop(db);
        // The account's other devices belong in the channel too.
        self.sync().await?;
        Ok(())
    }

    /// Adds every device of `username` to the channel.
    pub async fn invite(&self, channel: &str, username: &str) -> Result<()> {
        let name = Username::parse(username).map_err(|e| ClientError::Invalid(e.to_string()))?;
        let group_id = self.active_channel(channel).await?;
        if self
            .members(channel)
            .await?
            .iter()
            .any(|m| m.user == name.as_str())
        {
            return Err(ClientError::AlreadyAMember(
                name.to_string(),
                channel.to_owned(),
            ));
        }
        let packages = self.claim_key_packages(&name, None).await?;
        self.commit(&group_id, move |group, provider, key| {
            let (commit, welcome, group_info) = group
                .add_members(provider, key, &packages)
                .map_err(ClientError::mls)?;
            Ok((commit, Some(welcome), group_info))
        })
        .await
    }

    /// Claims (and checks) a key package for each device of `name`, or only
    /// for `only_device`.
    pub(crate) async fn claim_key_packages(
        &self,
        name: &Username,
        only_device: Option<&str>,
    ) -> Result<Vec<KeyPackage>> {
        let mut body = json!({ "username": name.as_str() });
        if let Some(device) = only_device {
            body["device_id"] = json!(device);
        }
        let claimed = self
            .signed("POST", "/v1/key-packages/claim", Some(&body))
            .await?;
        let mut packages = Vec::new();
        let mut refused = Vec::new();
        for entry in claimed["key_packages"].as_array().into_iter().flatten() {
            let bytes = STANDARD
                .decode(entry["key_package"].as_str().unwrap_or_default())
                .map_err(|_| {
                    ClientError::Mls("relay sent a key package that is not base64".into())
                })?;
            let MlsMessageBodyIn::KeyPackage(package) = MlsMessageIn::tls_deserialize_exact(&bytes)
                .map_err(ClientError::mls)?
                .extract()
            else {
                return Err(ClientError::Mls(
                    "relay sent something other than a key package".into(),
                ));
            };
            let package = package
                .validate(&self.inner.crypto, ProtocolVersion::Mls10)
                .map_err(ClientError::mls)?;
            let credential = DeviceCredential::from_mls(package.leaf_node().credential())
                .map_err(ClientError::mls)?;
            if credential.user() != name {
                return Err(ClientError::Mls(format!(
                    "relay sent a key package of {} for {name}",
                    credential.user()
                )));
            }
            // Device ids are derived from keys: a package cannot claim one of
            // the user's devices while carrying some other key.
            let key_device =
                DevicePublicKey::from_bytes(package.leaf_node().signature_key().as_slice())
                    .map(|key| key.device_id());
            if key_device != Ok(credential.device()) {
                return Err(ClientError::Mls(format!(
                    "relay sent a key package whose key does not belong to device {} of {name}",
                    credential.device()
                )));
            }
            if only_device.is_some_and(|d| d != credential.device().to_string()) {
                return Err(ClientError::Mls(format!(
                    "relay sent a key package of another device of {name}"
                )));
            }
            // Only a device whose key the transparency log registered is
            // added; any other is refused with a security alert.
            match self
                .verify_device(
                    name.as_str(),
                    &credential.device().to_string(),
                    package.leaf_node().signature_key().as_slice(),
                )
                .await
            {
                Ok(()) => packages.push(package),
                Err(e @ ClientError::KeyTransparency(_)) => refused.push(e),
                Err(e) => return Err(e),
            }
        }
        match (packages.is_empty(), refused.into_iter().next()) {
            (true, Some(refusal)) => Err(refusal),
            _ => Ok(packages),
        }
    }

    /// Archives a channel (its creator or a workspace admin may): the relay
    /// refuses every later post, and members see it archived at their next
    /// sync.
    pub async fn archive(&self, channel: &str) -> Result<()> {
        let group_id = {
            let mut db = self.inner.db.lock().await;
            self.channel_by_name(&mut db, channel).await?.0
        };
        self.signed("POST", &format!("/v1/groups/{group_id}/archive"), None)
            .await?;
        let mut db = self.inner.db.lock().await;
        sqlx::query("UPDATE channels SET archived = 1 WHERE group_id = $1")
            .bind(&group_id)
            .execute(&mut *db)
            .await?;
        Ok(())
    }

    /// Sets how long the relay keeps this channel's message ciphertext, in
    /// days (`None`: the workspace's policy); its creator or an admin may.
    /// Every member's device prunes its own copy to match.
    pub async fn set_retention(&self, channel: &str, days: Option<u32>) -> Result<()> {
        let group_id = {
            let mut db = self.inner.db.lock().await;
            self.channel_by_name(&mut db, channel).await?.0
        };
        self.signed(
            "POST",
            &format!("/v1/groups/{group_id}/retention"),
            Some(&json!({ "days": days })),
        )
        .await?;
        Ok(())
    }

    /// Prunes local history older than each channel's retention, as the
    /// relay reports it: the device keeps no more than the relay does.
    async fn note_retention(&self, answer: &FetchAnswer) -> Result<()> {
        let now = crate::transport::unix_now();
        let mut db = self.inner.db.lock().await;
        for rule in &answer.retention {
            let (group_id, days) = (rule.group_id.as_str(), u64::from(rule.days));
            let cutoff =
                i64::try_from(now.saturating_sub(days.saturating_mul(86_400))).unwrap_or(i64::MAX);
            let mut tx = db.begin().await?;
            sqlx::query(
                "DELETE FROM reactions WHERE group_id = $1 AND message_id IN
                   (SELECT message_id FROM history WHERE group_id = $1 AND at < $2)",
            )
            .bind(group_id)
            .bind(cutoff)
            .execute(&mut *tx)
            .await?;
            sqlx::query(
                "DELETE FROM search_index WHERE group_id = $1 AND seq IN
                   (SELECT seq FROM history WHERE group_id = $1 AND at < $2)",
            )
            .bind(group_id)
            .bind(cutoff)
            .execute(&mut *tx)
            .await?;
            sqlx::query("DELETE FROM history WHERE group_id = $1 AND at < $2")
                .bind(group_id)
                .bind(cutoff)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
        }
        Ok(())
    }

    /// Marks the channels the relay reports archived; an event for each newly so.
    async fn note_archived(&self, answer: &FetchAnswer) -> Result<Vec<Event>> {
        let mut events = Vec::new();
        let mut db = self.inner.db.lock().await;
        for group_id in &answer.archived_groups {
            let newly = sqlx::query(
                "UPDATE channels SET archived = 1 WHERE group_id = $1 AND archived = 0 RETURNING name",
            )
            .bind(group_id)
            .fetch_optional(&mut *db)
            .await?;
            if let Some(row) = newly {
                events.push(Event::Archived {
                    channel: row.get(0),
                });
            }
        }
        Ok(events)
    }

    /// Leaves a channel: proposes the removal of every device of this
    /// account, which the next member to sync commits, and stops following
    /// the channel at once. An invitation brings the account back.
    pub async fn leave(&self, channel: &str) -> Result<()> {
        let group_id = self.active_channel(channel).await?;
        let identity = self.identity()?;
        for attempt in 1..=MAX_ATTEMPTS {
            self.sync_without_upkeep().await?;
            let proposals = {
                let mut db = self.inner.db.lock().await;
                // Built in a transaction that is never committed: this
                // device will not commit again in the channel, so its own
                // store must not keep the proposals.
                let mut tx = db.begin().await?;
                let provider = TxProvider::new(&self.inner.crypto, &mut tx);
                let mut group = load_group(&provider, &group_id)?;
                let me = group.own_leaf_index();
                let others: Vec<LeafNodeIndex> = group
                    .members()
                    .filter(|m| {
                        m.index != me
                            && DeviceCredential::from_mls(&m.credential)
                                .is_ok_and(|c| c.user() == &identity.username)
                    })
                    .map(|m| m.index)
                    .collect();
                let mut proposals = Vec::new();
                for leaf in others {
                    let (message, _) = group
                        .propose_remove_member(&provider, &identity.key, leaf)
                        .map_err(ClientError::mls)?;
                    proposals.push(tls_bytes(&message)?);
                }
                let own = group
                    .leave_group(&provider, &identity.key)
                    .map_err(ClientError::mls)?;
                proposals.push(tls_bytes(&own)?);
                proposals
            };
            let mut lost_race = false;
            for proposal in &proposals {
                let body = PostMessage::message(STANDARD.encode(proposal));
                match self.post_to_group(&group_id, &body).await {
                    Ok(_) => {}
                    Err(e) if e.is_wrong_epoch() => {
                        lost_race = true;
                        break;
                    }
                    Err(e) => return Err(e),
                }
            }
            if lost_race {
                backoff(attempt).await;
                continue;
            }
            let mut db = self.inner.db.lock().await;
            sqlx::query("UPDATE channels SET active = 0 WHERE group_id = $1")
                .bind(&group_id)
                .execute(&mut *db)
                .await?;
            return Ok(());
        }
        Err(ClientError::TooManyConflicts(MAX_ATTEMPTS))
    }

    /// Removes every device of `username` from the channel.
    pub async fn remove(&self, channel: &str, username: &str) -> Result<()> {
        let name = Username::parse(username).map_err(|e| ClientError::Invalid(e.to_string()))?;
        let group_id = self.active_channel(channel).await?;
        let channel_name = channel.to_owned();
        self.commit(&group_id, move |group, provider, key| {
            let leaves: Vec<LeafNodeIndex> = group
                .members()
                .filter(|m| {
                    DeviceCredential::from_mls(&m.credential).is_ok_and(|c| c.user() == &name)
                })
                .map(|m| m.index)
                .collect();
            if leaves.is_empty() {
                return Err(ClientError::NotAMember(
                    name.to_string(),
                    channel_name.clone(),
                ));
            }
            let (commit, welcome, group_info) = group
                .remove_members(provider, key, &leaves)
                .map_err(ClientError::mls)?;
            Ok((commit, welcome, group_info))
        })
        .await
    }

    /// Builds a commit on the current state and posts it; when another
    /// member's commit wins the epoch, processes it and builds again.
    pub(crate) async fn commit<F>(&self, group_id: &str, mut build: F) -> Result<()>
    where
        F: FnMut(
            &mut MlsGroup,
            &TxProvider<'_>,
            &DeviceKey,
        ) -> Result<(
            MlsMessageOut,
            Option<MlsMessageOut>,
            Option<openmls::messages::group_info::GroupInfo>,
        )>,
    {
        let identity = self.identity()?;
        for attempt in 1..=MAX_ATTEMPTS {
            self.sync_without_upkeep().await?;
            let mut db = self.inner.db.lock().await;
            let mut tx = db.begin().await?;
            let (commit, welcome, group_info) = {
                let provider = TxProvider::new(&self.inner.crypto, &mut tx);
                let mut group = load_group(&provider, group_id)?;
                // After a full sync, a commit still pending was never accepted.
                group
                    .clear_pending_commit(provider.storage())
                    .map_err(ClientError::mls)?;
                let (commit, welcome, group_info) = build(&mut group, &provider, &identity.key)?;
                (
                    tls_bytes(&commit)?,
                    welcome.as_ref().map(tls_bytes).transpose()?,
                    group_info
                        .map(|info| tls_bytes(&MlsMessageOut::from(info)))
                        .transpose()?,
                )
            };
            // Remember our commit so we recognise it when the relay echoes it,
            // even if we crash before hearing the relay's answer.
            sqlx::query(
                "INSERT OR REPLACE INTO pending_commits (group_id, commit_hash) VALUES ($1, $2)",
            )
            .bind(group_id)
            .bind(sha256_hex(&commit))
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            drop(db);
            // The new epoch's GroupInfo goes along: a public channel's relay
            // keeps it so that others can join on their own (others ignore it).
            let body = PostMessage {
                group_info: group_info.map(|g| STANDARD.encode(g)),
                message: STANDARD.encode(&commit),
                welcome: welcome.map(|w| STANDARD.encode(w)),
            };
            match self.post_to_group(group_id, &body).await {
                Ok(_) => {
                    self.sync_without_upkeep().await?;
                    return Ok(());
                }
                Err(e) if e.is_wrong_epoch() => {
                    tracing::debug!(attempt, "commit lost the race; retrying");
                    backoff(attempt).await;
                }
                Err(e) => return Err(e),
            }
        }
        Err(ClientError::TooManyConflicts(MAX_ATTEMPTS))
    }

    /// Posts an MLS message (and any Welcome) to a group, again with the
    /// same bytes if the answer is lost (the node died, the connection
    /// broke): the relay knows a message, proposal or commit by its bytes and
    /// answers a repeat with the first one's position, so a retry can neither
    /// lose it nor double it.
    async fn post_to_group(&self, group_id: &str, body: &PostMessage) -> Result<PostAnswer> {
        const TRIES: u32 = 4;
        let path = routes::group_messages(group_id);
        let mut tries = 0;
        loop {
            tries += 1;
            match self.exchange("POST", &path, body).await {
                Err(ClientError::Transport(e)) if tries < TRIES => {
                    tracing::debug!(error = %e, tries, "posting again after a lost answer");
                    tokio::time::sleep(retry_delay(tries)).await;
                }
                outcome => return outcome,
            }
        }
    }

    /// Sends a text message to a channel. Returns its position in the channel.
    pub async fn send(&self, channel: &str, text: &str) -> Result<u64> {
        if text.is_empty() {
            return Err(ClientError::Invalid("message is empty".into()));
        }
        let content = Content::Text {
            body: text.to_owned(),
            mentions: mentions_in(text),
        };
        self.send_content(channel, content).await
    }

    /// Sends any content to a channel and returns its position. The typed
    /// calls ([`Client::reply`], [`Client::react`], …) check more first;
    /// every receiver enforces the rules on its own either way.
    pub async fn send_content(&self, channel: &str, content: Content) -> Result<u64> {
        let group_id = self.active_channel(channel).await?;
        self.send_checked(&group_id, content, &new_message_id())
            .await
    }

    /// Sends `content` under `message_id`, unless it is malformed or the
    /// channel is archived.
    pub(crate) async fn send_checked(
        &self,
        group_id: &str,
        content: Content,
        message_id: &str,
    ) -> Result<u64> {
        content.check_text()?;
        if !content.is_well_formed() {
            return Err(ClientError::Invalid(format!(
                "malformed message (empty, or over {MAX_BODY} bytes)"
            )));
        }
        let (channel, archived) = {
            let mut db = self.inner.db.lock().await;
            let row = sqlx::query("SELECT name, archived FROM channels WHERE group_id = $1")
                .bind(group_id)
                .fetch_one(&mut *db)
                .await?;
            (row.get::<String, _>(0), row.get::<i64, _>(1) != 0)
        };
        if archived {
            return Err(ClientError::Invalid(format!(
                "{channel} is archived: nothing more can be posted to it"
            )));
        }
        let plaintext = Zeroizing::new(content.encode());
        self.send_bytes(group_id, &plaintext, message_id).await
    }

    /// Sends `plaintext` as it is, under `message_id`: for tests of how
    /// receivers treat replayed ids and content they do not know.
    #[doc(hidden)]
    pub async fn send_raw(&self, channel: &str, plaintext: &[u8], message_id: &str) -> Result<u64> {
        let group_id = self.active_channel(channel).await?;
        self.send_bytes(&group_id, plaintext, message_id).await
    }

    pub(crate) async fn send_payload(&self, group_id: &str, content: &Content) -> Result<u64> {
        let plaintext = Zeroizing::new(content.encode());
        self.send_bytes(group_id, &plaintext, &new_message_id())
            .await
    }

    async fn send_bytes(&self, group_id: &str, plaintext: &[u8], message_id: &str) -> Result<u64> {
        let identity = self.identity()?;
        // Nothing is encrypted to a device the transparency log does not vouch for.
        self.check_members(group_id).await?;
        for attempt in 1..=MAX_ATTEMPTS {
            let mut db = self.inner.db.lock().await;
            let mut tx = db.begin().await?;
            let ciphertext = {
                let provider = TxProvider::new(&self.inner.crypto, &mut tx);
                let mut group = load_group(&provider, group_id)?;
                if !group.is_active() {
                    return Err(ClientError::NotInChannel(group_id.to_owned()));
                }
                // The id rides in the authenticated data, under the signature.
                group.set_aad(message_aad(message_id));
                let message = group
                    .create_message(&provider, &identity.key, plaintext)
                    .map_err(ClientError::mls)?;
                tls_bytes(&message)?
            };
            let hash = sha256_hex(&ciphertext);
            // Recorded before sending, so our own message is never lost even if we crash mid-call.
            sqlx::query(
                "INSERT INTO outgoing (ciphertext_hash, group_id, body, message_id) VALUES ($1, $2, $3, $4)",
            )
            .bind(&hash)
            .bind(group_id)
            .bind(String::from_utf8_lossy(plaintext).into_owned())
            .bind(message_id)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            drop(db);
            let body = PostMessage::message(STANDARD.encode(&ciphertext));
            match self.post_to_group(group_id, &body).await {
                Ok(answer) => {
                    let seq = answer.seq;
                    let mut db = self.inner.db.lock().await;
                    let events = self.record_own(&mut db, group_id, seq, &hash).await?;
                    drop(db);
                    for event in events {
                        let _ = self.inner.events.send(event);
                    }
                    return Ok(seq);
                }
                Err(e) if e.is_wrong_epoch() => {
                    let mut db = self.inner.db.lock().await;
                    sqlx::query("DELETE FROM outgoing WHERE ciphertext_hash = $1")
                        .bind(&hash)
                        .execute(&mut *db)
                        .await?;
                    drop(db);
                    backoff(attempt).await;
                    self.sync_messages().await?;
                }
                Err(e) => return Err(e),
            }
        }
        Err(ClientError::TooManyConflicts(MAX_ATTEMPTS))
    }

    /// Applies an own outgoing message to the history at `seq`, once the
    /// relay accepted it.
    async fn record_own(
        &self,
        db: &mut SqliteConnection,
        group_id: &str,
        seq: u64,
        hash: &str,
    ) -> Result<Vec<Event>> {
        let mut tx = db.begin().await?;
        let events = self.apply_own(&mut tx, group_id, seq, hash).await?;
        tx.commit().await?;
        Ok(events.unwrap_or_default())
    }

    /// Takes the outgoing row of ciphertext `hash` and applies its content
    /// as this device's message at `seq`; `None` if there is no such row.
    async fn apply_own(
        &self,
        tx: &mut SqliteConnection,
        group_id: &str,
        seq: u64,
        hash: &str,
    ) -> Result<Option<Vec<Event>>> {
        let identity = self.identity()?;
        let Some(row) = sqlx::query(
            "DELETE FROM outgoing WHERE ciphertext_hash = $1 RETURNING body, message_id",
        )
        .bind(hash)
        .fetch_optional(&mut *tx)
        .await?
        else {
            return Ok(None);
        };
        let (plaintext, message_id): (String, String) = (row.get(0), row.get(1));
        let channel: String = sqlx::query("SELECT name FROM channels WHERE group_id = $1")
            .bind(group_id)
            .fetch_one(&mut *tx)
            .await?
            .get(0);
        let me = identity.username.to_string();
        let device = identity.key.device_id().to_string();
        crate::messaging::apply_content(
            tx,
            group_id,
            &channel,
            seq,
            crate::messaging::Author {
                user: &me,
                device: &device,
            },
            &message_id,
            Content::decode(plaintext.as_bytes()),
            crate::messaging::Reader {
                user: &me,
                bot: identity.bot_owner.is_some(),
            },
        )
        .await
        .map(Some)
    }

    /// A channel that still goes by its placeholder takes the name a member
    /// announced (made unique among this device's channels).
    async fn take_name(
        &self,
        tx: &mut SqliteConnection,
        group_id: &str,
        placeholder: &str,
        announced: &str,
        kind: &str,
        topic: &str,
    ) -> Result<Option<Event>> {
        let unnamed = sqlx::query("SELECT named FROM channels WHERE group_id = $1")
            .bind(group_id)
            .fetch_one(&mut *tx)
            .await?
            .get::<i64, _>(0)
            == 0;
        if !unnamed {
            // Named already (we created it, or an earlier announcement).
            return Ok(None);
        }
        if validate_channel_name(announced).is_err() {
            // Another member's bad input must not stall our queue.
            tracing::warn!(group = %group_id, "invalid channel name announced; ignored");
            return Ok(None);
        }
        let fresh = unique_name(tx, announced).await?;
        sqlx::query(
            "UPDATE channels SET name = $2, named = 1, kind = $3, topic = $4 WHERE group_id = $1",
        )
        .bind(group_id)
        .bind(&fresh)
        .bind(kind)
        .bind(topic)
        .execute(&mut *tx)
        .await?;
        Ok(Some(Event::Named {
            placeholder: placeholder.to_owned(),
            name: fresh,
        }))
    }

    // ----- receiving ------------------------------------------------------

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
            let mut db = self.inner.db.lock().await;
            sqlx::query_scalar("SELECT name FROM channels WHERE kind = 'self'")
                .fetch_all(&mut *db)
                .await?
                .into_iter()
                .collect()
        };
        // Joined before it was named, it went by a placeholder.
        for event in &events {
            if let Event::Named { placeholder, name } = event
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

    async fn sync_without_upkeep(&self) -> Result<Vec<Event>> {
        let events = self.sync_messages().await?;
        self.announce_pending().await?;
        Ok(events)
    }

    /// Tells new members the channel's name, for every commit of ours that
    /// added someone and has not been announced yet.
    async fn announce_pending(&self) -> Result<()> {
        let pending: Vec<(String, Content)> = {
            let mut db = self.inner.db.lock().await;
            sqlx::query(
                "SELECT a.group_id, c.name, c.kind, c.topic FROM announcements a
                 JOIN channels c ON c.group_id = a.group_id AND c.active = 1",
            )
            .fetch_all(&mut *db)
            .await?
            .iter()
            .map(|r| {
                let kind: String = r.get(2);
                let info = Content::ChannelInfo {
                    name: r.get(1),
                    direct: kind == "dm",
                    topic: r.get(3),
                    scope: if kind == "public" || kind == "self" {
                        kind
                    } else {
                        String::new()
                    },
                };
                (r.get(0), info)
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
            let mut db = self.inner.db.lock().await;
            sqlx::query("DELETE FROM announcements WHERE group_id = $1")
                .bind(&group_id)
                .execute(&mut *db)
                .await?;
        }
        Ok(())
    }

    async fn sync_messages(&self) -> Result<Vec<Event>> {
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
        let mut stream = self.inner.transport.open_stream(request).await?;
        while let Some(frame) = stream.next_frame().await {
            let frame: StreamFrame = serde_json::from_str(&frame?)
                .map_err(|e| ClientError::Mls(format!("relay sent a malformed frame: {e}")))?;
            let delivered = match frame {
                StreamFrame::Message(delivered) => delivered,
                StreamFrame::DevicesChanged => {
                    // The account gained or lost a device: tell the user, and
                    // bring the channels in step.
                    self.sync().await?;
                    continue;
                }
            };
            let batch = [delivered];
            let events = self.process(&batch).await?;
            let ack = serde_json::to_string(&AckBody::up_to(&batch)).map_err(ClientError::store)?;
            stream.send_frame(ack).await?;
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
        }
        Ok(())
    }

    async fn process(&self, batch: &[Delivered]) -> Result<Vec<Event>> {
        let mut events = Vec::new();
        let mut db = self.inner.db.lock().await;
        for delivered in batch {
            if delivered.kind != MessageKind::Application {
                // A commit or Welcome may change who is in the group.
                let mut checked = self.members_checked();
                checked.0 += 1;
                checked.1.remove(&delivered.group_id);
            }
            let mut tx = db.begin().await?;
            let produced = self.process_one(&mut tx, delivered).await?;
            tx.commit().await?;
            // The group of this account's own devices is no channel the
            // user knows of: its events serve upkeep only (see
            // `without_own_devices_group`), but alerts always go out.
            // (Asked only when there is something to show: most deliveries
            // of a busy channel produce one event, many produce none.)
            let shown = produced.is_empty()
                || sqlx::query_scalar::<_, String>("SELECT kind FROM channels WHERE group_id = $1")
                    .bind(&delivered.group_id)
                    .fetch_optional(&mut *db)
                    .await?
                    .as_deref()
                    != Some("self");
            for event in &produced {
                if shown || event.channel().is_none() {
                    let _ = self.inner.events.send(event.clone());
                }
            }
            events.extend(produced);
        }
        Ok(events)
    }

    async fn process_one(
        &self,
        tx: &mut SqliteConnection,
        delivered: &Delivered,
    ) -> Result<Vec<Event>> {
        let payload = STANDARD
            .decode(&delivered.payload)
            .map_err(|_| ClientError::Mls("relay sent a payload that is not base64".into()))?;
        let channel =
            sqlx::query("SELECT name, processed_seq, active FROM channels WHERE group_id = $1")
                .bind(&delivered.group_id)
                .fetch_optional(&mut *tx)
                .await?
                .map(|r| {
                    (
                        r.get::<String, _>(0),
                        r.get::<i64, _>(1) as u64,
                        r.get::<i64, _>(2) != 0,
                    )
                });
        if delivered.kind == MessageKind::Welcome {
            return match channel {
                Some((_, _, true)) => Ok(Vec::new()), // already joined (a redelivery)
                // Removed earlier and invited again: a new membership.
                Some((name, _, false)) => {
                    self.join_from_welcome(tx, delivered, &payload, Some(name))
                        .await
                }
                None => self.join_from_welcome(tx, delivered, &payload, None).await,
            };
        }
        let Some((name, processed_seq, true)) = channel else {
            return Ok(Vec::new()); // not (or no longer) ours
        };
        if delivered.seq <= processed_seq {
            return Ok(Vec::new()); // redelivered after a crash before the ack
        }
        let events = self.apply(tx, delivered, &payload, &name).await?;
        sqlx::query("UPDATE channels SET processed_seq = $2 WHERE group_id = $1")
            .bind(&delivered.group_id)
            .bind(delivered.seq as i64)
            .execute(&mut *tx)
            .await?;
        Ok(events)
    }

    /// Joins a group from its Welcome; `rejoining` names the channel this
    /// device was removed from earlier, whose old MLS state is replaced.
    async fn join_from_welcome(
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
            let provider = TxProvider::new(&self.inner.crypto, tx);
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
            sqlx::query("UPDATE channels SET active = 1, processed_seq = $2 WHERE group_id = $1")
                .bind(&delivered.group_id)
                .bind(delivered.seq as i64)
                .execute(&mut *tx)
                .await?;
            for stale in [
                "DELETE FROM pending_commits WHERE group_id = $1",
                "DELETE FROM announcements WHERE group_id = $1",
            ] {
                sqlx::query(stale)
                    .bind(&delivered.group_id)
                    .execute(&mut *tx)
                    .await?;
            }
            return Ok(vec![Event::Joined { channel: name }]);
        }
        // Until the inviter's channel info arrives, the channel goes by its id.
        let name = unique_name(
            tx,
            &format!(
                "channel-{}",
                delivered.group_id.chars().take(8).collect::<String>()
            ),
        )
        .await?;
        sqlx::query(
            "INSERT INTO channels (group_id, name, processed_seq, active, named) VALUES ($1, $2, $3, 1, 0)",
        )
        .bind(&delivered.group_id)
        .bind(&name)
        .bind(delivered.seq as i64)
        .execute(&mut *tx)
        .await?;
        Ok(vec![Event::Joined { channel: name }])
    }

    async fn apply(
        &self,
        tx: &mut SqliteConnection,
        delivered: &Delivered,
        payload: &[u8],
        name: &str,
    ) -> Result<Vec<Event>> {
        let group_id = delivered.group_id.as_str();
        let already = sqlx::query("SELECT 1 FROM seen_messages WHERE group_id = $1 AND seq = $2")
            .bind(group_id)
            .bind(delivered.seq as i64)
            .fetch_optional(&mut *tx)
            .await?;
        if already.is_some() {
            return Ok(Vec::new()); // our own message, recorded when the relay accepted it
        }
        let hash = sha256_hex(payload);
        let own_commit = sqlx::query("SELECT commit_hash FROM pending_commits WHERE group_id = $1")
            .bind(group_id)
            .fetch_optional(&mut *tx)
            .await?
            .map(|r| r.get::<String, _>(0));
        let mut outcome = Outcome::Nothing;
        {
            let provider = TxProvider::new(&self.inner.crypto, tx);
            let mut group = load_group(&provider, group_id)?;
            let before = users_of(&group);
            if delivered.kind == MessageKind::Commit && own_commit.as_deref() == Some(hash.as_str())
            {
                group
                    .merge_pending_commit(&provider)
                    .map_err(ClientError::mls)?;
                outcome = Outcome::Membership(before, users_of(&group), false, true);
            } else {
                if delivered.kind == MessageKind::Commit && group.pending_commit().is_some() {
                    // Another member's commit won this epoch: ours is void.
                    group
                        .clear_pending_commit(provider.storage())
                        .map_err(ClientError::mls)?;
                }
                let processed = MlsMessageIn::tls_deserialize_exact(payload)
                    .map_err(ClientError::mls)
                    .and_then(|m| m.try_into_protocol_message().map_err(ClientError::mls))
                    .and_then(|m| {
                        group
                            .process_message(&provider, m)
                            .map_err(ClientError::mls)
                    });
                match processed {
                    Ok(processed) => {
                        let sender = DeviceCredential::from_mls(processed.credential())
                            .map_err(ClientError::mls)?;
                        let aad = processed.aad().to_vec();
                        match processed.into_content() {
                            ProcessedMessageContent::ApplicationMessage(app) => {
                                outcome = Outcome::Application(sender, app.into_bytes(), aad);
                            }
                            ProcessedMessageContent::StagedCommitMessage(staged) => {
                                let self_removed = staged.self_removed();
                                group
                                    .merge_staged_commit(&provider, *staged)
                                    .map_err(ClientError::mls)?;
                                outcome = Outcome::Membership(
                                    before,
                                    users_of(&group),
                                    self_removed,
                                    false,
                                );
                            }
                            ProcessedMessageContent::ProposalMessage(proposal) => {
                                group
                                    .store_pending_proposal(provider.storage(), *proposal)
                                    .map_err(ClientError::mls)?;
                            }
                            // openmls reports our own echoed ciphertext as Ok, not as an
                            // error: match it to the outgoing row by hash below.
                            ProcessedMessageContent::OwnPrivateMessage => {
                                outcome = Outcome::Undecryptable("our own message".into());
                            }
                            // Our commit, recognised by openmls even if its hash record was lost.
                            ProcessedMessageContent::OwnPendingCommit => {
                                group
                                    .merge_pending_commit(&provider)
                                    .map_err(ClientError::mls)?;
                                outcome =
                                    Outcome::Membership(before, users_of(&group), false, true);
                            }
                            other => {
                                tracing::warn!(group = %group_id, seq = delivered.seq, kind = ?std::mem::discriminant(&other), "unexpected MLS content skipped");
                            }
                        }
                    }
                    Err(e) if delivered.kind == MessageKind::Application => {
                        outcome = Outcome::Undecryptable(e.to_string())
                    }
                    Err(e) => {
                        return Err(ClientError::Mls(format!(
                            "cannot process commit {}: {e}",
                            delivered.seq
                        )));
                    }
                }
            }
        }
        let mut events = Vec::new();
        match outcome {
            Outcome::Nothing => {}
            Outcome::Membership(before, after, self_removed, own) => {
                sqlx::query("DELETE FROM pending_commits WHERE group_id = $1")
                    .bind(group_id)
                    .execute(&mut *tx)
                    .await?;
                let added: Vec<String> = after
                    .keys()
                    .filter(|u| !before.contains_key(*u))
                    .cloned()
                    .collect();
                let new_device = after.iter().any(|(user, devices)| {
                    devices
                        .iter()
                        .any(|d| !before.get(user).is_some_and(|known| known.contains(d)))
                });
                if own && new_device {
                    // We added someone (a user or a device): we owe them the channel's name. Recorded in
                    // this transaction so a crash or a lost answer cannot skip it.
                    sqlx::query("INSERT OR IGNORE INTO announcements (group_id) VALUES ($1)")
                        .bind(group_id)
                        .execute(&mut *tx)
                        .await?;
                }
                let removed: Vec<String> = before
                    .keys()
                    .filter(|u| !after.contains_key(*u))
                    .cloned()
                    .collect();
                if self_removed {
                    sqlx::query("UPDATE channels SET active = 0 WHERE group_id = $1")
                        .bind(group_id)
                        .execute(&mut *tx)
                        .await?;
                    events.push(Event::Removed {
                        channel: name.to_owned(),
                    });
                } else if !added.is_empty() || !removed.is_empty() {
                    events.push(Event::MembersChanged {
                        channel: name.to_owned(),
                        added,
                        removed,
                    });
                }
            }
            Outcome::Application(sender, plaintext, aad) => {
                let Some(message_id) = message_id_from_aad(&aad) else {
                    // Without an id it can be neither referenced nor deduplicated.
                    tracing::warn!(group = %group_id, seq = delivered.seq, "message without an id; skipped");
                    return Ok(events);
                };
                let decoded = Content::decode(&plaintext);
                let identity = self.identity()?;
                let me = identity.username.to_string();
                if let Decoded::Known(Content::ChannelInfo {
                    name: announced,
                    direct,
                    topic,
                    scope,
                }) = &decoded
                {
                    let announced = if *direct {
                        direct_name(announced, sender.user().as_str(), &me)
                    } else {
                        announced.clone()
                    };
                    let kind = match scope.as_str() {
                        _ if *direct => "dm",
                        "public" => "public",
                        // Only this account can declare a group its own.
                        "self" if sender.user().as_str() == me => "self",
                        _ => "channel",
                    };
                    if let Some(event) = self
                        .take_name(tx, group_id, name, &announced, kind, topic)
                        .await?
                    {
                        events.push(event);
                    }
                }
                events.extend(
                    crate::messaging::apply_content(
                        tx,
                        group_id,
                        name,
                        delivered.seq,
                        crate::messaging::Author {
                            user: sender.user().as_str(),
                            device: &sender.device().to_string(),
                        },
                        &message_id,
                        decoded,
                        crate::messaging::Reader {
                            user: &me,
                            bot: identity.bot_owner.is_some(),
                        },
                    )
                    .await?,
                );
            }
            Outcome::Undecryptable(reason) => {
                // Our own ciphertext cannot be decrypted by us: match it by hash.
                if let Some(own) = self.apply_own(tx, group_id, delivered.seq, &hash).await? {
                    events.extend(own);
                } else {
                    tracing::warn!(group = %group_id, seq = delivered.seq, %reason, "undecryptable message skipped");
                }
            }
        }
        Ok(events)
    }

    // ----- local views ----------------------------------------------------

    /// Channels this device knows, by name.
    pub async fn channels(&self) -> Result<Vec<Channel>> {
        let mut db = self.inner.db.lock().await;
        let me = self.identity()?.username.to_string();
        let rows = sqlx::query(
            "SELECT c.name, c.group_id, c.active, c.kind, c.topic,
                    (SELECT COUNT(*) FROM history h WHERE h.group_id = c.group_id
                       AND h.seq > c.read_seq AND h.sender <> $1 AND h.deleted = 0),
                    c.archived
             FROM channels c WHERE c.kind <> 'self' ORDER BY c.name",
        )
        .bind(&me)
        .fetch_all(&mut *db)
        .await?;
        Ok(rows
            .iter()
            .map(|r| Channel {
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

    /// This device's view of the channel's group: its epoch and a code to
    /// compare with other members'.
    pub async fn channel_state(&self, channel: &str) -> Result<ChannelState> {
        let mut db = self.inner.db.lock().await;
        let (group_id, _) = self.channel_by_name(&mut db, channel).await?;
        let provider = TxProvider::new(&self.inner.crypto, &mut db);
        let group = load_group(&provider, &group_id)?;
        let authenticator = group.epoch_authenticator().as_slice();
        let digits = hex::encode(authenticator.get(..16).unwrap_or(authenticator));
        let code = digits
            .as_bytes()
            .chunks(4)
            .map(|c| String::from_utf8_lossy(c).into_owned())
            .collect::<Vec<_>>()
            .join(" ");
        Ok(ChannelState {
            epoch: group.epoch().as_u64(),
            code,
        })
    }

    /// Gives this device a fresh leaf key in the channel (an MLS self-update
    /// commit): whoever may have stolen its current keys cannot read what
    /// follows (post-compromise security).
    pub async fn rotate_keys(&self, channel: &str) -> Result<()> {
        let group_id = self.active_channel(channel).await?;
        self.commit(&group_id, |group, provider, key| {
            let bundle = group
                .self_update(provider, key, LeafNodeParameters::default())
                .map_err(ClientError::mls)?;
            let (commit, welcome, group_info) = bundle.into_contents();
            // Only pending Add proposals would bring a Welcome along.
            let welcome =
                welcome.map(|w| MlsMessageOut::from_welcome(w, ProtocolVersion::default()));
            Ok((commit, welcome, group_info))
        })
        .await
    }

    /// Members of a channel, from this device's MLS state.
    pub async fn members(&self, channel: &str) -> Result<Vec<Member>> {
        let mut db = self.inner.db.lock().await;
        let (group_id, _) = self.channel_by_name(&mut db, channel).await?;
        let provider = TxProvider::new(&self.inner.crypto, &mut db);
        let group = load_group(&provider, &group_id)?;
        let owners: BTreeMap<String, String> = group
            .members()
            .filter_map(|m| DeviceCredential::from_mls(&m.credential).ok())
            .filter_map(|c| Some((c.user().to_string(), c.bot_owner()?.to_string())))
            .collect();
        Ok(users_of(&group)
            .into_iter()
            .map(|(user, devices)| Member {
                bot_owner: owners.get(&user).cloned(),
                user,
                devices: devices.into_iter().collect(),
            })
            .collect())
    }

    /// Verifies every member device of a group against the transparency log
    /// (each device once: verified keys are remembered). Every device that
    /// fails raises an alert; the first failure is returned.
    pub(crate) async fn check_members(&self, group_id: &str) -> Result<()> {
        let generation = {
            let checked = self.members_checked();
            if checked.1.contains(group_id) {
                return Ok(());
            }
            checked.0
        };
        let (members, verified) = {
            let mut db = self.inner.db.lock().await;
            let verified: BTreeMap<(String, String), Vec<u8>> =
                sqlx::query("SELECT username, device_id, public_key FROM verified_devices")
                    .fetch_all(&mut *db)
                    .await?
                    .iter()
                    .map(|r| ((r.get(0), r.get(1)), r.get(2)))
                    .collect();
            let provider = TxProvider::new(&self.inner.crypto, &mut db);
            let group = load_group(&provider, group_id)?;
            let members: Vec<_> = group
                .members()
                .map(|m| {
                    let credential = DeviceCredential::from_mls(&m.credential).ok();
                    (credential, m.signature_key)
                })
                .collect();
            (members, verified)
        };
        let mut first_refusal = None;
        let mut unverified = Vec::new();
        for (credential, key) in members {
            let Some(credential) = credential else {
                first_refusal.get_or_insert(ClientError::KeyTransparency(
                    "a member of this channel has no Conclave credential".into(),
                ));
                continue;
            };
            let (user, device) = (
                credential.user().to_string(),
                credential.device().to_string(),
            );
            if verified.get(&(user.clone(), device.clone())) != Some(&key) {
                unverified.push((user, device, key));
            }
        }
        // One request for every member not verified yet (issue 19: a
        // request per device was a thousand after a 999-device commit).
        let to_check: Vec<crate::audit::DeviceToCheck<'_>> = unverified
            .iter()
            .map(|(user, device, key)| crate::audit::DeviceToCheck {
                username: user,
                device_id: device,
                public_key: key,
            })
            .collect();
        if !to_check.is_empty() {
            for outcome in self.verify_devices(&to_check).await? {
                match outcome {
                    Ok(()) => {}
                    Err(e @ ClientError::KeyTransparency(_)) => {
                        first_refusal.get_or_insert(e);
                    }
                    Err(e) => return Err(e),
                }
            }
        }
        if let Some(refusal) = first_refusal {
            return Err(refusal);
        }
        let mut checked = self.members_checked();
        // Only if no membership changed while we were checking.
        if checked.0 == generation {
            checked.1.insert(group_id.to_owned());
        }
        Ok(())
    }

    fn members_checked(
        &self,
    ) -> std::sync::MutexGuard<'_, (u64, std::collections::HashSet<String>)> {
        // The set is only ever extended with fully checked groups.
        self.inner
            .members_checked
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// After members changed, checks the channels concerned so that a device
    /// slipped in is flagged at once, not only at the next send. A refusal
    /// is an alert here, not an error: receiving goes on.
    async fn check_changed_channels(&self, events: &[Event]) {
        for event in events {
            let Event::MembersChanged { channel, .. } = event else {
                continue;
            };
            let Ok(group_id) = self.active_channel(channel).await else {
                continue;
            };
            match self.check_members(&group_id).await {
                Ok(()) | Err(ClientError::KeyTransparency(_)) => {}
                Err(e) => tracing::warn!(error = %e, "could not check a channel's new members"),
            }
        }
    }

    // ----- keeping channels in step with the account's devices -------------

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
            let mut db = self.inner.db.lock().await;
            let mut tx = db.begin().await?;
            let first_look = sqlx::query("SELECT COUNT(*) FROM known_devices")
                .fetch_one(&mut *tx)
                .await?
                .get::<i64, _>(0)
                == 0;
            for (device_id, revoked) in &reported {
                let known: Option<bool> =
                    sqlx::query("SELECT revoked FROM known_devices WHERE device_id = $1")
                        .bind(device_id)
                        .fetch_optional(&mut *tx)
                        .await?
                        .map(|r| r.get::<i64, _>(0) != 0);
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
                sqlx::query(
                    "INSERT OR REPLACE INTO known_devices (device_id, revoked) VALUES ($1, $2)",
                )
                .bind(device_id)
                .bind(i64::from(*revoked))
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
        }
        let revoked_members = answer
            .revoked_members
            .iter()
            .map(|m| (m.group_id.clone(), m.device_id.clone()))
            .collect();
        *self.inner.device_news.lock().await = DeviceNews {
            active: reported
                .into_iter()
                .filter(|(_, revoked)| !revoked)
                .map(|(id, _)| id)
                .collect(),
            revoked_members,
        };
        for event in &events {
            let _ = self.inner.events.send(event.clone());
        }
        Ok(events)
    }

    /// Removes revoked devices from our channels and adds this account's new
    /// devices to them. A step that fails (a device without key packages yet,
    /// a race lost too often) is logged and tried again at the next sync.
    async fn membership_upkeep(&self) -> Result<Vec<Event>> {
        let news = std::mem::take(&mut *self.inner.device_news.lock().await);
        let identity = self.identity()?;
        let me = identity.username.to_string();
        let channels: Vec<(String, String)> = {
            let mut db = self.inner.db.lock().await;
            sqlx::query("SELECT group_id, name FROM channels WHERE active = 1 ORDER BY name")
                .fetch_all(&mut *db)
                .await?
                .iter()
                .map(|r| (r.get(0), r.get(1)))
                .collect()
        };
        // Members who left proposed their own removal: commit it.
        for (group_id, channel) in &channels {
            let pending = {
                let mut db = self.inner.db.lock().await;
                let provider = TxProvider::new(&self.inner.crypto, &mut db);
                let group = load_group(&provider, group_id)?;
                group.is_active() && group.pending_proposals().next().is_some()
            };
            if !pending {
                continue;
            }
            let result = self
                .commit(group_id, |group, provider, key| {
                    if group.pending_proposals().next().is_none() {
                        // Another member committed them first.
                        return Err(ClientError::NotAMember(
                            "anyone pending".into(),
                            "the channel".into(),
                        ));
                    }
                    let (commit, welcome, group_info) = group
                        .commit_to_pending_proposals(provider, key)
                        .map_err(ClientError::mls)?;
                    Ok((commit, welcome, group_info))
                })
                .await;
            match result {
                Ok(()) | Err(ClientError::NotAMember(..)) => {}
                Err(e) => {
                    tracing::warn!(%channel, error = %e, "could not commit pending proposals")
                }
            }
        }
        for (group_id, device_id) in &news.revoked_members {
            if !channels.iter().any(|(g, _)| g == group_id) {
                continue;
            }
            let gone = device_id.clone();
            let result = self
                .commit(group_id, move |group, provider, key| {
                    let leaves: Vec<LeafNodeIndex> = group
                        .members()
                        .filter(|m| {
                            DeviceCredential::from_mls(&m.credential)
                                .is_ok_and(|c| c.device().to_string() == gone)
                        })
                        .map(|m| m.index)
                        .collect();
                    if leaves.is_empty() {
                        return Err(ClientError::NotAMember(gone.clone(), "the channel".into()));
                    }
                    let (commit, welcome, group_info) = group
                        .remove_members(provider, key, &leaves)
                        .map_err(ClientError::mls)?;
                    Ok((commit, welcome, group_info))
                })
                .await;
            match result {
                Ok(()) | Err(ClientError::NotAMember(..)) => {}
                Err(e) => {
                    tracing::warn!(group = %group_id, error = %e, "could not remove a revoked device")
                }
            }
        }
        for (group_id, channel) in &channels {
            let present: BTreeSet<String> = {
                let mut db = self.inner.db.lock().await;
                let provider = TxProvider::new(&self.inner.crypto, &mut db);
                let group = load_group(&provider, group_id)?;
                if !group.is_active() {
                    continue;
                }
                users_of(&group).remove(&me).unwrap_or_default()
            };
            let missing: Vec<&String> = news
                .active
                .iter()
                .filter(|d| !present.contains(*d))
                .collect();
            for device in missing {
                if let Err(e) = self.add_own_device(group_id, device).await {
                    tracing::warn!(%channel, %device, error = %e, "could not add a new device of this account");
                }
            }
        }
        Ok(Vec::new())
    }

    async fn add_own_device(&self, group_id: &str, device: &str) -> Result<()> {
        let identity = self.identity()?;
        let packages = self
            .claim_key_packages(&identity.username, Some(device))
            .await?;
        let wanted = device.to_owned();
        let result = self
            .commit(group_id, move |group, provider, key| {
                let already = group.members().any(|m| {
                    DeviceCredential::from_mls(&m.credential)
                        .is_ok_and(|c| c.device().to_string() == wanted)
                });
                if already {
                    return Err(ClientError::AlreadyAMember(
                        wanted.clone(),
                        "the channel".into(),
                    ));
                }
                let (commit, welcome, group_info) = group
                    .add_members(provider, key, &packages)
                    .map_err(ClientError::mls)?;
                Ok((commit, Some(welcome), group_info))
            })
            .await;
        match result {
            Ok(()) | Err(ClientError::AlreadyAMember(..)) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// The decrypted history of a channel, in channel order, with threads,
    /// reactions, edits and tombstones as they stand.
    pub async fn history(&self, channel: &str) -> Result<Vec<HistoryEntry>> {
        let mut db = self.inner.db.lock().await;
        let (group_id, _) = self.channel_by_name(&mut db, channel).await?;
        crate::messaging::history_of(&mut db, &group_id, channel).await
    }
}

enum Outcome {
    Nothing,
    /// Users before and after, whether we were removed, whether the commit was ours.
    Membership(
        BTreeMap<String, BTreeSet<String>>,
        BTreeMap<String, BTreeSet<String>>,
        bool,
        bool,
    ),
    /// Sender, plaintext, authenticated data.
    Application(DeviceCredential, Vec<u8>, Vec<u8>),
    Undecryptable(String),
}

/// A direct message's local name: `@` and every participant but this
/// account, from the name its announcer gave it (the participants but the
/// announcer) and the announcer.
fn direct_name(announced: &str, announcer: &str, me: &str) -> String {
    let mut people: BTreeSet<&str> = announced
        .trim_start_matches('@')
        .split(',')
        .filter(|p| !p.is_empty())
        .collect();
    people.insert(announcer);
    people.remove(me);
    format!("@{}", people.into_iter().collect::<Vec<_>>().join(","))
}

pub(crate) async fn unique_name(tx: &mut SqliteConnection, wanted: &str) -> Result<String> {
    let mut candidate = wanted.to_owned();
    for n in 2.. {
        let taken = sqlx::query("SELECT 1 FROM channels WHERE name = $1")
            .bind(&candidate)
            .fetch_optional(&mut *tx)
            .await?;
        if taken.is_none() {
            break;
        }
        candidate = format!("{wanted}-{n}");
    }
    Ok(candidate)
}

/// Times a request answered 503 `busy` is sent again, after the wait the
/// relay asked for.
const MAX_BUSY_TRIES: u32 = 5;
