//! The client: one account's device, its channels and their history.

use std::path::Path;
use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use conclave_crypto::{CIPHERSUITE, DeviceCredential, DeviceKey, DevicePublicKey, Username};
use conclave_proto::{
    AccountStatus, ClaimedKeyPackages, ErrorBody, ErrorCode, KeyPackageClaim, KeyPackageStock,
    KeyPackageUpload, routes,
};
use openmls::prelude::tls_codec::Deserialize as _;
use openmls::prelude::*;
use serde::Serialize;
use serde::de::DeserializeOwned;
use sqlx::{Connection, SqliteConnection};
use tokio::sync::broadcast;

use crate::error::{ClientError, Result};
use crate::event::Event;
use crate::group::tls_bytes;
use crate::identity::Identity;
use crate::retry::retry_delay;
use crate::session::Session;
use crate::store::{self, TxProvider, channels};
use crate::transport::{HttpRequest, Transport};

/// One-time key packages a device keeps on the relay.
const KEY_PACKAGE_TARGET: u64 = 40;
/// Below this many, the device uploads more.
const KEY_PACKAGE_LOW: u64 = 10;

/// A Conclave client for one device. Cheap to clone; clones share state.
///
/// Needs a multi-threaded tokio runtime (openmls's SQLite storage blocks in place).
#[derive(Clone)]
pub struct Client {
    pub(crate) session: Arc<Session>,
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

/// The relay's answer to `path`, read as the protocol's type `A`.
fn read_answer<A: DeserializeOwned>(path: &str, answer: &[u8]) -> Result<A> {
    serde_json::from_slice(answer).map_err(|e| {
        ClientError::Invalid(format!("the relay's answer to {path} is malformed: {e}"))
    })
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
        let session = Session::open(home, Arc::new(transport)).await?;
        Ok(Self {
            session: Arc::new(session),
        })
    }

    /// Lets this client send the password itself, over TLS, when the relay
    /// answers that the account's password was set before the relay moved
    /// to OPAQUE (the account then moves to OPAQUE with that login). Off by
    /// default: a relay impersonated with its stolen TLS key could give that
    /// answer for any account, and learn any password that way
    /// ([`ClientError::PasswordDowngrade`]). Turn it on for one login, when
    /// the account is known to be that old.
    pub fn allow_password_from_before_opaque(&self, allow: bool) {
        self.session
            .legacy_password_allowed
            .store(allow, std::sync::atomic::Ordering::Relaxed);
    }

    /// Who this device is, with its key; an error while logged out or
    /// locked.
    pub(crate) fn identity(&self) -> Result<Arc<Identity>> {
        self.session.identity()?.ok_or_else(|| {
            if self.key_status() == crate::KeyStatus::Locked {
                ClientError::KeyLocked
            } else {
                ClientError::NotLoggedIn
            }
        })
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
        self.session.subscribe()
    }

    // ----- talking to the relay ------------------------------------------

    /// A signed GET whose answer is text, not JSON.
    pub(crate) async fn signed_text(&self, path: &str) -> Result<String> {
        let identity = self.identity()?;
        let request = HttpRequest::signed(&identity.key, "GET", path, Vec::new());
        let response = self.session.transport.send(request).await?;
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
        let response = self.session.transport.send(request).await?;
        if (200..300).contains(&response.status) {
            return Ok(response.body);
        }
        Err(server_error(response.status, &response.body))
    }

    /// A request of the relay protocol signed by `signer` (a key this
    /// device does not use yet, for a login), or by no one (registration,
    /// a WebAuthn challenge): `body` and the answer are `conclave_proto`
    /// wire types.
    pub(crate) async fn call<A: DeserializeOwned>(
        &self,
        method: &'static str,
        path: &str,
        body: &impl Serialize,
        signer: Option<&DeviceKey>,
    ) -> Result<A> {
        let answer = self.send_json(method, path, body, signer).await?;
        read_answer(path, &answer)
    }

    /// A signed request of the relay protocol: `body` and the answer are
    /// `conclave_proto` wire types.
    pub(crate) async fn exchange<A: DeserializeOwned>(
        &self,
        method: &'static str,
        path: &str,
        body: &impl Serialize,
    ) -> Result<A> {
        let answer = self.exchange_raw(method, path, body).await?;
        read_answer(path, &answer)
    }

    /// [`Client::exchange`], with the answer left unread: for a caller that
    /// judges a malformed answer itself.
    pub(crate) async fn exchange_raw(
        &self,
        method: &'static str,
        path: &str,
        body: &impl Serialize,
    ) -> Result<Vec<u8>> {
        let identity = self.identity()?;
        self.send_json(method, path, body, Some(&identity.key))
            .await
    }

    /// Sends `body` as JSON; the answer's bytes, as [`Client::call_bytes`].
    async fn send_json(
        &self,
        method: &'static str,
        path: &str,
        body: &impl Serialize,
        signer: Option<&DeviceKey>,
    ) -> Result<Vec<u8>> {
        let body = serde_json::to_vec(body).map_err(ClientError::store)?;
        self.call_bytes(method, path, body, signer).await
    }

    /// A signed GET of the relay protocol, whose answer is a
    /// `conclave_proto` wire type.
    pub(crate) async fn fetch<A: DeserializeOwned>(&self, path: &str) -> Result<A> {
        self.bodiless("GET", path).await
    }

    /// A signed request without a body, whose answer is a `conclave_proto`
    /// wire type.
    pub(crate) async fn bodiless<A: DeserializeOwned>(
        &self,
        method: &'static str,
        path: &str,
    ) -> Result<A> {
        let identity = self.identity()?;
        let answer = self
            .call_bytes(method, path, Vec::new(), Some(&identity.key))
            .await?;
        read_answer(path, &answer)
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
        let mut waits = 0;
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
            match self.session.transport.send(request).await {
                Err(e) if tried < tries => {
                    tracing::debug!(error = %e, tried, "asking again after a lost answer");
                    tokio::time::sleep(retry_delay(tried)).await;
                }
                // The relay refused before doing anything (its password
                // hashing or its database was saturated, or this device
                // asked faster than its pace) and said when to come back:
                // do, a few times, freshly signed.
                Ok(response) if matches!(response.status, 429 | 503) && waits < MAX_WAITS => {
                    let Some(wait) = wait_asked(&response) else {
                        break response;
                    };
                    waits += 1;
                    tried -= 1;
                    tracing::debug!(
                        wait,
                        status = response.status,
                        "asked to wait; trying again"
                    );
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

    /// Creates an account and logs this device in, on a relay with open
    /// registration (else see [`Client::register_with_invite`]).
    pub async fn register(&self, username: &str, password: &str) -> Result<()> {
        self.create_account(username, password, None).await?;
        self.login(username, password).await
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
        self.session.set_identity(Identity {
            username: name.clone(),
            key,
            bot_owner: None,
        })?;
        // A bot's every leaf says so, and names its owner: learn it before
        // the first key package is made.
        let status: AccountStatus = self.fetch(routes::ACCOUNT).await?;
        if let Some(owner) = &status.bot_owner {
            let owner = Username::parse(owner).map_err(|e| ClientError::Invalid(e.to_string()))?;
            {
                let mut db = self.db().await;
                store::identity::set_bot_owner(&mut db, owner.as_str()).await?;
            }
            let key = DeviceKey::from_secret_bytes(&self.identity()?.key.to_secret_bytes());
            self.session.set_identity(Identity {
                username: name,
                key,
                bot_owner: Some(owner),
            })?;
        }
        self.refill_key_packages().await
    }

    /// Tops up this device's key packages on the relay when they run low.
    pub async fn refill_key_packages(&self) -> Result<()> {
        let stock: KeyPackageStock = self.fetch(routes::KEY_PACKAGE_STOCK).await?;
        self.refill_from_stock(&stock).await
    }

    pub(crate) async fn refill_from_stock(&self, stock: &KeyPackageStock) -> Result<()> {
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
        let mut db = self.db().await;
        let mut tx = db.begin().await?;
        {
            let provider = TxProvider::new(&self.session.crypto, &mut tx);
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
            let upload = KeyPackageUpload {
                key_packages: batch.to_vec(),
            };
            let _: KeyPackageStock = self.exchange("POST", routes::KEY_PACKAGES, &upload).await?;
        }
        Ok(())
    }

    // ----- channels -------------------------------------------------------

    pub(crate) async fn channel_by_name(
        &self,
        db: &mut SqliteConnection,
        name: &str,
    ) -> Result<(String, bool)> {
        channels::by_name(db, name)
            .await?
            .ok_or_else(|| ClientError::NoSuchChannel(name.to_owned()))
    }

    pub(crate) async fn active_channel(&self, name: &str) -> Result<String> {
        let mut db = self.db().await;
        match self.channel_by_name(&mut db, name).await? {
            (group_id, true) => Ok(group_id),
            (_, false) => Err(ClientError::NotInChannel(name.to_owned())),
        }
    }

    /// Claims (and checks) a key package for each device of `name`, or only
    /// for `only_device`.
    pub(crate) async fn claim_key_packages(
        &self,
        name: &Username,
        only_device: Option<&str>,
    ) -> Result<Vec<KeyPackage>> {
        let claim = KeyPackageClaim {
            device_id: only_device.map(str::to_owned),
            username: name.to_string(),
        };
        let claimed: ClaimedKeyPackages = self
            .exchange("POST", routes::KEY_PACKAGES_CLAIM, &claim)
            .await?;
        let mut packages = Vec::new();
        let mut refused = Vec::new();
        for entry in &claimed.key_packages {
            let bytes = STANDARD.decode(&entry.key_package).map_err(|_| {
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
                .validate(&self.session.crypto, ProtocolVersion::Mls10)
                .map_err(ClientError::mls)?;
            let credential = DeviceCredential::from_mls(package.leaf_node().credential())
                .map_err(ClientError::mls)?;
            if credential.user() != name {
                return Err(ClientError::mls(format!(
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
                return Err(ClientError::mls(format!(
                    "relay sent a key package whose key does not belong to device {} of {name}",
                    credential.device()
                )));
            }
            if only_device.is_some_and(|d| d != credential.device().to_string()) {
                return Err(ClientError::mls(format!(
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
}

/// Times a request answered 503 `busy` or 429 `slow_down` is sent again,
/// after the wait the relay asked for.
const MAX_WAITS: u32 = 5;

/// Longest wait a refusal may ask for and still be waited out here; a
/// longer one goes back to the caller as the refusal it is.
const MAX_WAIT_SECS: u64 = 30;

/// The seconds to wait before sending `response`'s request again, if the
/// relay refused it before doing anything and asked for a wait: 503 `busy`
/// or 429 `slow_down`. Never 429 `rate_limited`: that one counts attempts
/// (a password, a second factor) that must not be repeated unasked.
fn wait_asked(response: &crate::transport::HttpResponse) -> Option<u64> {
    let refusal: ErrorBody = serde_json::from_slice(&response.body).ok()?;
    let asked = match (response.status, &refusal.error) {
        (503, ErrorCode::Busy) | (429, ErrorCode::SlowDown) => refusal.retry_after.unwrap_or(1),
        _ => return None,
    };
    (asked <= MAX_WAIT_SECS).then_some(asked.max(1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transport::HttpResponse;

    fn answer(status: u16, body: &str) -> HttpResponse {
        HttpResponse {
            status,
            body: body.as_bytes().to_vec(),
        }
    }

    #[test]
    fn only_a_pace_or_a_busy_relay_is_waited_out() {
        let paced = r#"{"error":"slow_down","message":"slow down","retry_after":2}"#;
        assert_eq!(wait_asked(&answer(429, paced)), Some(2));
        let busy = r#"{"error":"busy","message":"busy","retry_after":1}"#;
        assert_eq!(wait_asked(&answer(503, busy)), Some(1));
        let no_wait_given = r#"{"error":"slow_down","message":"slow down"}"#;
        assert_eq!(wait_asked(&answer(429, no_wait_given)), Some(1));
        // Guesses are counted: a refused login is never sent again unasked.
        let limited = r#"{"error":"rate_limited","message":"too many","retry_after":1}"#;
        assert_eq!(wait_asked(&answer(429, limited)), None);
        // A long wait is the caller's to decide on.
        let long = r#"{"error":"slow_down","message":"slow down","retry_after":31}"#;
        assert_eq!(wait_asked(&answer(429, long)), None);
        // A code with the wrong status, or no error body at all.
        assert_eq!(wait_asked(&answer(503, paced)), None);
        assert_eq!(wait_asked(&answer(429, "<html>")), None);
    }
}
