//! The bot SDK: a bot is an account of its own (created by an admin, marked
//! as a bot in its MLS credential) that members add to their channels. It
//! runs client-core on its owner's infrastructure, so commands, messages
//! and replies stay end-to-end encrypted: the relay never sees them.
//!
//! A [`Bot`] wraps a logged-in [`Client`] of a bot account, calls your
//! handlers for the slash commands the workspace registry routes to it
//! (`conclave-server admin command add NAME --bot BOT`) and, if you ask,
//! for every message in its channels, and keeps going across crashes and
//! lost connections:
//!
//! - **Nothing is lost.** A command is written to the bot's inbox in the
//!   same local transaction that stores the message, before the relay is
//!   told it arrived; it leaves the inbox only once its handler finished.
//! - **Nothing is done twice.** Each reply's message id is derived from
//!   the command and the reply's position in the handler's run. A handler
//!   run again after a crash skips the replies it already sent, and every
//!   receiver drops a message id it has seen before. (Effects outside the
//!   chat, such as an HTTP call, are at least once: make them idempotent.)
//!
//! ```
//! use conclave_client::{Bot, Client, HttpsTransport, KeyProtection, ServerTrust};
//!
//! # #[tokio::main(flavor = "multi_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let dir = std::env::temp_dir().join(format!("conclave-bot-doc-{}", std::process::id()));
//! # let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
//! # let url = format!("https://{}", listener.local_addr()?);
//! # let mut relay = conclave_server::Config::with_data_dir(dir.join("relay"));
//! # relay.open_registration = true;
//! # tokio::spawn(conclave_server::run(listener, relay.clone(), std::future::pending()));
//! # let cert = dir.join("relay/tls-cert.pem");
//! # let trust = loop {
//! #     if let Ok(trust) = ServerTrust::ca_file(&cert) { break trust; }
//! #     tokio::time::sleep(std::time::Duration::from_millis(20)).await;
//! # };
//! # let alice = Client::open_with(&dir.join("alice"), HttpsTransport::new(&url, trust.clone())?, KeyProtection::Unprotected).await?;
//! # alice.register("alice", "correct horse battery staple").await?;
//! # // What `conclave-server admin bot echo-bot --owner alice` and
//! # // `admin command add echo --bot echo-bot --usage "/echo TEXT"` do.
//! # let password = conclave_server::admin::create_bot(&relay, "echo-bot", "alice").await?;
//! # conclave_server::admin::add_command(&relay, "echo", "echo-bot", "/echo TEXT").await?;
//! // The bot's device logs in with the password its admin issued. It runs
//! // unattended, so its key is kept unprotected, by explicit choice.
//! let home = dir.join("echo-bot");
//! let client = Client::open_with(&home, HttpsTransport::new(&url, trust)?, KeyProtection::Unprotected).await?;
//! client.login("echo-bot", &password).await?;
//! let bot = Bot::new(client).command("echo", |request| async move {
//!     request.reply_in_thread(request.args()).await?;
//!     Ok(())
//! });
//! let running = tokio::spawn(bot.run());
//!
//! // A member adds the bot to a channel and calls it.
//! let general = alice.create_channel("general").await?;
//! general.invite("echo-bot").await?;
//! general.run_command("/echo hello from alice").await?;
//! let answer = loop {
//!     alice.sync().await?;
//!     let history = general.history().await?;
//!     if let Some(reply) = history.iter().find(|m| m.sender == "echo-bot") {
//!         break reply.clone();
//!     }
//!     tokio::time::sleep(std::time::Duration::from_millis(50)).await;
//! };
//! assert_eq!(answer.text, "hello from alice");
//! assert!(answer.parent.is_some()); // in the command's thread
//! running.abort();
//! # std::fs::remove_dir_all(&dir)?;
//! # Ok(())
//! # }
//! ```
//!
//! Handlers run one at a time, in the order the messages arrived; one that
//! waits on something slow should spawn a task for it.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use crate::channel::Channel;
use crate::client::Client;
use crate::content::{Content, mentions_in};
use crate::error::{ClientError, Result};
use crate::retry::retry_delay;
use crate::store::{bot_state, inbox, messages};
use crate::transport::{BoxFuture, TransportError};

/// What a handler returns when it fails. The bot tells the invoker, unless
/// the failure was the relay being out of reach: then the command waits in
/// the inbox and its handler runs again later.
pub type HandlerError = Box<dyn std::error::Error + Send + Sync>;

type Handler = Arc<dyn Fn(Request) -> BoxFuture<'static, Result<(), HandlerError>> + Send + Sync>;

/// How often a running bot syncs even without news from its push stream.
const RESYNC: Duration = Duration::from_secs(30);

/// A bot: handlers for commands and messages around a bot account's
/// [`Client`]. See the [module docs](self).
pub struct Bot {
    client: Client,
    commands: HashMap<String, Handler>,
    messages: Option<Handler>,
}

impl std::fmt::Debug for Bot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut commands: Vec<&String> = self.commands.keys().collect();
        commands.sort();
        f.debug_struct("Bot")
            .field("client", &self.client)
            .field("commands", &commands)
            .field("handles_messages", &self.messages.is_some())
            .finish()
    }
}

impl Bot {
    /// A bot around `client`, which must be logged in as a bot account.
    pub fn new(client: Client) -> Self {
        Self {
            client,
            commands: HashMap::new(),
            messages: None,
        }
    }

    /// Calls `handler` for `/name …` (name without the slash).
    pub fn command<F, Fut>(mut self, name: &str, handler: F) -> Self
    where
        F: Fn(Request) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), HandlerError>> + Send + 'static,
    {
        let name = name.trim_start_matches('/').to_owned();
        self.commands
            .insert(name, Arc::new(move |request| Box::pin(handler(request))));
        self
    }

    /// Calls `handler` for every text message and reply from someone else
    /// in the bot's channels ([`Request::command`] is `None`).
    pub fn on_message<F, Fut>(mut self, handler: F) -> Self
    where
        F: Fn(Request) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), HandlerError>> + Send + 'static,
    {
        self.messages = Some(Arc::new(move |request| Box::pin(handler(request))));
        self
    }

    /// The bot's client, for posting on its own (see [`Channel::send_once`](crate::Channel::send_once)).
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Runs until an error only its operator can fix (the session expired,
    /// or the device was revoked). Everything else, such as the relay going
    /// away, it rides out: it reconnects with backoff and carries on from
    /// where it was.
    pub async fn run(self) -> Result<()> {
        self.run_until(std::future::pending()).await
    }

    /// [`Bot::run`], until `shutdown` completes. A handler that is running
    /// then is finished first.
    pub async fn run_until(self, shutdown: impl Future<Output = ()>) -> Result<()> {
        let identity = self.client.identity()?;
        if identity.bot_owner.is_none() {
            return Err(ClientError::Invalid(format!(
                "{} is not a bot account: an admin creates bots with `conclave-server admin bot NAME --owner USER`",
                identity.username
            )));
        }
        // Subscribed before the stream opens, so no wake-up is missed.
        let mut wake = self.client.events();
        let _listener = AbortOnDrop(self.client.listen());
        self.check_registry().await;
        tokio::pin!(shutdown);
        let mut failures = 0u32;
        let mut synced_at: Option<Instant> = None;
        loop {
            let sync_due = synced_at.is_none_or(|at| at.elapsed() >= RESYNC);
            let round = async {
                if sync_due {
                    self.client.sync().await?;
                }
                self.handle_waiting().await
            };
            match round.await {
                Ok(_) => {
                    failures = 0;
                    if sync_due {
                        synced_at = Some(Instant::now());
                    }
                }
                Err(e) if needs_operator(&e) => return Err(e),
                Err(e) => {
                    failures += 1;
                    tracing::warn!(error = %e, failures, "bot: relay unavailable; retrying");
                }
            }
            let pause = if failures == 0 {
                RESYNC
            } else {
                retry_delay(failures)
            };
            tokio::select! {
                () = &mut shutdown => return Ok(()),
                _ = wake.recv() => {
                    // Several events may have queued up: one round handles them all.
                    while wake.try_recv().is_ok() {}
                }
                () = tokio::time::sleep(pause) => {}
            }
        }
    }

    /// Runs the handler of everything waiting in the inbox, oldest first,
    /// and returns how many were handled. (`run` calls this; tests and
    /// one-shot bots may call it after a [`Client::sync`].)
    pub async fn handle_waiting(&self) -> Result<usize> {
        let mut handled = 0;
        while let Some(request) = self.next_waiting().await? {
            let id = request.inner.inbox_id;
            if self.handle(request).await? {
                let mut db = self.client.db().await;
                inbox::remove(&mut db, id).await?;
                handled += 1;
            } else {
                // The relay is out of reach: keep it, and the rest, for later.
                return Err(ClientError::Transport(TransportError(
                    "relay unavailable while handling a command; it waits in the inbox".into(),
                )));
            }
        }
        Ok(handled)
    }

    /// Runs one request's handler. `Ok(false)`: retry later.
    async fn handle(&self, request: Request) -> Result<bool> {
        let handler = match &request.inner.command {
            Some(name) => match self.commands.get(name) {
                Some(handler) => handler.clone(),
                None => {
                    let text = format!("This bot has no handler for /{name}.");
                    return Ok(self.tell_invoker(&request, &text).await);
                }
            },
            None => match &self.messages {
                Some(handler) => handler.clone(),
                None => return Ok(true),
            },
        };
        // In a task of its own, so a panicking handler is a failure, not a crash.
        let outcome = tokio::spawn(handler(request.clone())).await;
        let problem = match outcome {
            Ok(Ok(())) => return Ok(true),
            Ok(Err(error)) => {
                if is_unreachable(&error) {
                    tracing::warn!(error = %error, "bot: handler could not reach the relay; will run again");
                    return Ok(false);
                }
                error.to_string()
            }
            Err(join) if join.is_panic() => "the handler panicked".to_owned(),
            Err(join) => join.to_string(),
        };
        match &request.inner.command {
            Some(name) => {
                tracing::warn!(command = %name, problem = %problem, "bot: command failed");
                let text = format!("/{name} failed: {problem}");
                Ok(self.tell_invoker(&request, &text).await)
            }
            None => {
                tracing::warn!(problem = %problem, "bot: message handler failed");
                Ok(true)
            }
        }
    }

    /// Reports to the invoker in the command's thread; `false` if the relay
    /// was out of reach (other failures are logged and dropped).
    async fn tell_invoker(&self, request: &Request, text: &str) -> bool {
        match request.reply_in_thread(text).await {
            Ok(()) => true,
            Err(ClientError::Transport(_)) => false,
            Err(e) => {
                tracing::warn!(error = %e, "bot: could not report to the invoker");
                true
            }
        }
    }

    async fn next_waiting(&self) -> Result<Option<Request>> {
        let mut db = self.client.db().await;
        let Some(waiting) = inbox::oldest(&mut db).await? else {
            return Ok(None);
        };
        Ok(Some(Request {
            inner: Arc::new(RequestInner {
                client: self.client.clone(),
                inbox_id: waiting.id,
                group_id: waiting.group_id,
                message_id: waiting.message_id,
                sender: waiting.sender,
                command: waiting.command,
                text: waiting.body,
                parent: waiting.parent,
                idempotency_key: hex::encode(
                    &Sha256::digest(format!("idempotency:{}", waiting.reply_key))[..16],
                ),
                reply_key: waiting.reply_key,
                channel: waiting.channel,
                replies: AtomicU32::new(0),
            }),
        }))
    }

    /// Warns about commands the registry routes here that no handler
    /// answers, and handlers for commands the registry does not route here.
    async fn check_registry(&self) {
        let Ok(me) = self.client.identity() else {
            return;
        };
        let Ok(registry) = self.client.commands().await else {
            return;
        };
        let routed: Vec<&str> = registry
            .iter()
            .filter(|c| c.bot == me.username.as_str())
            .map(|c| c.name.as_str())
            .collect();
        for name in &routed {
            if !self.commands.contains_key(*name) {
                tracing::warn!(command = %name, "the registry routes /{name} to this bot, which has no handler for it");
            }
        }
        for name in self.commands.keys() {
            if !routed.contains(&name.as_str()) {
                tracing::warn!(command = %name, "no one can call /{name} yet: `conclave-server admin command add {name} --bot {}`", me.username);
            }
        }
    }
}

/// A command or message for a handler, and how to answer it.
#[derive(Clone)]
pub struct Request {
    inner: Arc<RequestInner>,
}

struct RequestInner {
    client: Client,
    inbox_id: i64,
    group_id: String,
    channel: String,
    message_id: String,
    sender: String,
    command: Option<String>,
    text: String,
    parent: Option<String>,
    reply_key: String,
    /// Derived from `reply_key`, so handing it to outside services tells
    /// them nothing about the replies' ids.
    idempotency_key: String,
    replies: AtomicU32,
}

impl std::fmt::Debug for Request {
    // No arguments or text: message content stays out of logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Request")
            .field("channel", &self.inner.channel)
            .field("sender", &self.inner.sender)
            .field("command", &self.inner.command)
            .finish_non_exhaustive()
    }
}

impl Request {
    /// The channel it came from (local name).
    pub fn channel(&self) -> &str {
        &self.inner.channel
    }

    /// The group id of the channel it came from: [`Client::channel`] gives
    /// its handle.
    pub fn group_id(&self) -> &str {
        &self.inner.group_id
    }

    /// Who sent it.
    pub fn sender(&self) -> &str {
        &self.inner.sender
    }

    /// The command, without the slash; `None` for a plain message.
    pub fn command(&self) -> Option<&str> {
        self.inner.command.as_deref()
    }

    /// Everything after the command (for a message: its text).
    pub fn args(&self) -> &str {
        &self.inner.text
    }

    /// The id of the message that carried it.
    pub fn message_id(&self) -> &str {
        &self.inner.message_id
    }

    /// The bot's client.
    pub fn client(&self) -> &Client {
        &self.inner.client
    }

    /// A key unique to this request, stable across runs of its handler:
    /// for effects outside the chat (an idempotency key for an HTTP call),
    /// or for [`Channel::send_once`].
    pub fn idempotency_key(&self) -> &str {
        &self.inner.idempotency_key
    }

    /// Answers in the channel, for everyone.
    pub async fn reply(&self, text: &str) -> Result<()> {
        let content = Content::Text {
            body: text.to_owned(),
            mentions: mentions_in(text),
        };
        self.answer(&self.inner.group_id, content).await
    }

    /// Answers in the thread of the message (its own thread, if it was a
    /// reply in one).
    pub async fn reply_in_thread(&self, text: &str) -> Result<()> {
        let parent = self
            .inner
            .parent
            .clone()
            .unwrap_or_else(|| self.inner.message_id.clone());
        let content = Content::Reply {
            parent,
            body: text.to_owned(),
            mentions: mentions_in(text),
        };
        self.answer(&self.inner.group_id, content).await
    }

    /// Answers the sender alone, in a direct message (opened if needed).
    pub async fn reply_privately(&self, text: &str) -> Result<()> {
        let client = &self.inner.client;
        let direct = client.direct(&[&self.inner.sender]).await?;
        let group_id = direct.active_group().await?;
        let content = Content::Text {
            body: text.to_owned(),
            mentions: Vec::new(),
        };
        self.answer(group_id, content).await
    }

    async fn answer(&self, group_id: &str, content: Content) -> Result<()> {
        // The n-th answer of every run of the handler gets the same id.
        let n = self.inner.replies.fetch_add(1, Ordering::SeqCst);
        let key = format!("reply:{}:{n}", self.inner.reply_key);
        self.inner
            .client
            .send_once_to(group_id, content, &key)
            .await
            .map(drop)
    }
}

impl Channel {
    /// Sends `content` to the channel at most once for `key`: the message id
    /// is derived from `key` under this device's secret key, so sending
    /// again after a crash or a lost answer neither loses the message nor
    /// shows it twice (receivers drop an id they have seen), and no one else
    /// can know the id in advance. `None` if this device already has it in
    /// its history.
    pub async fn send_once(&self, content: Content, key: &str) -> Result<Option<u64>> {
        let group_id = self.active_group().await?;
        self.client.send_once_to(group_id, content, key).await
    }
}

impl Client {
    pub(crate) async fn send_once_to(
        &self,
        group_id: &str,
        content: Content,
        key: &str,
    ) -> Result<Option<u64>> {
        // A deterministic Ed25519 signature is a function of the device's
        // secret key: the same key gives the same id on this device, and
        // nobody else can tell the id beforehand (and take it first). The
        // signature itself never leaves this function.
        let identity = self.identity()?;
        let mut message = b"conclave send-once v1\0".to_vec();
        message.extend_from_slice(key.as_bytes());
        let signature = zeroize::Zeroizing::new(identity.key.sign(&message));
        let message_id = hex::encode(&Sha256::digest(&signature[..])[..16]);
        {
            let mut db = self.db().await;
            if messages::seen(&mut db, group_id, &message_id).await? {
                return Ok(None);
            }
        }
        self.send_checked(group_id, content, &message_id)
            .await
            .map(Some)
    }

    /// A value the bot keeps in its local store under `key` (its reminders,
    /// say), or `None`.
    pub async fn bot_state(&self, key: &str) -> Result<Option<String>> {
        let mut db = self.db().await;
        bot_state::get(&mut db, key).await
    }

    /// Every `(key, value)` kept under keys starting with `prefix`, by key.
    pub async fn bot_states(&self, prefix: &str) -> Result<Vec<(String, String)>> {
        let mut db = self.db().await;
        bot_state::with_prefix(&mut db, prefix).await
    }

    /// Keeps `value` under `key` (durably, in the device's store), or
    /// forgets the key with `None`.
    pub async fn set_bot_state(&self, key: &str, value: Option<&str>) -> Result<()> {
        let mut db = self.db().await;
        match value {
            Some(value) => bot_state::set(&mut db, key, value).await,
            None => bot_state::forget(&mut db, key).await,
        }
    }
}

/// Errors a bot cannot retry its way out of.
fn needs_operator(error: &ClientError) -> bool {
    matches!(
        error,
        ClientError::NotLoggedIn
            | ClientError::KeyLocked
            | ClientError::Server { status: 401, .. }
            | ClientError::Store(_)
    )
}

/// Whether a handler failed only because the relay was out of reach.
fn is_unreachable(error: &HandlerError) -> bool {
    matches!(
        error.downcast_ref::<ClientError>(),
        Some(ClientError::Transport(_))
    )
}

/// Stops the push stream's task when the bot stops.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Calls external HTTP APIs from a handler: a JSON POST with a timeout and
/// a bounded answer, checking certificates against the system's roots.
#[derive(Debug, Clone)]
pub struct HttpCaller {
    http: reqwest::Client,
}

/// The longest answer [`HttpCaller::post_json`] reads.
pub const MAX_CALL_ANSWER: usize = 64 * 1024;

impl HttpCaller {
    /// A caller with a 10-second timeout.
    pub fn new() -> Result<Self> {
        use rustls_platform_verifier::BuilderVerifierExt;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .and_then(|b| b.with_platform_verifier())
            .map_err(|e| ClientError::Transport(TransportError(format!("TLS setup: {e}"))))?
            .with_no_client_auth();
        let http = reqwest::Client::builder()
            .use_preconfigured_tls(tls)
            .timeout(Duration::from_secs(10))
            .redirect(reqwest::redirect::Policy::limited(3))
            .build()
            .map_err(|e| ClientError::Transport(TransportError(format!("HTTP client: {e}"))))?;
        Ok(Self { http })
    }

    /// POSTs `body` as JSON to `url` and returns the answer's text: the
    /// `text` field of a JSON object, or the whole body otherwise.
    pub async fn post_json(&self, url: &str, body: &serde_json::Value) -> Result<String> {
        let unreachable =
            |e: reqwest::Error| ClientError::Invalid(format!("calling {}: {e}", redact_url(url)));
        let mut response = self
            .http
            .post(url)
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(serde_json::to_vec(body).map_err(ClientError::store)?)
            .send()
            .await
            .map_err(unreachable)?;
        let status = response.status();
        if !status.is_success() {
            return Err(ClientError::Invalid(format!(
                "{} answered {status}",
                redact_url(url)
            )));
        }
        // Read no more than the cap, whatever the service sends.
        let too_long = || {
            ClientError::Invalid(format!(
                "{} answered with more than {MAX_CALL_ANSWER} bytes",
                redact_url(url)
            ))
        };
        if response
            .content_length()
            .is_some_and(|length| length > MAX_CALL_ANSWER as u64)
        {
            return Err(too_long());
        }
        let mut bytes = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(unreachable)? {
            bytes.extend_from_slice(&chunk);
            if bytes.len() > MAX_CALL_ANSWER {
                return Err(too_long());
            }
        }
        let text = String::from_utf8_lossy(&bytes).into_owned();
        Ok(match serde_json::from_str::<serde_json::Value>(&text) {
            Ok(serde_json::Value::Object(map)) => match map.get("text") {
                Some(serde_json::Value::String(answer)) => answer.clone(),
                _ => text,
            },
            _ => text,
        })
    }
}

/// A URL without its query or user info, which may hold keys.
fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(parsed) => {
            format!(
                "{}://{}{}",
                parsed.scheme(),
                parsed.host_str().unwrap_or_default(),
                parsed.port().map(|p| format!(":{p}")).unwrap_or_default()
            ) + parsed.path()
        }
        Err(_) => "the URL".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_delays_grow_and_stay_bounded() {
        for failures in 1..40 {
            let delay = retry_delay(failures);
            assert!(delay <= Duration::from_secs(30), "{delay:?}");
            assert!(delay >= Duration::from_millis(125), "{delay:?}");
        }
        assert!(retry_delay(1) <= Duration::from_millis(500));
    }

    #[test]
    fn urls_lose_their_secrets_in_messages() {
        assert_eq!(
            redact_url("https://user:pw@api.example:8443/v1/status?key=s3cret"),
            "https://api.example:8443/v1/status"
        );
        assert_eq!(redact_url("not a url"), "the URL");
    }

    #[test]
    fn only_transport_failures_are_retried() {
        let unreachable: HandlerError =
            Box::new(ClientError::Transport(TransportError("down".into())));
        assert!(is_unreachable(&unreachable));
        let refused: HandlerError = Box::new(ClientError::Invalid("no".into()));
        assert!(!is_unreachable(&refused));
        let other: HandlerError = "custom".into();
        assert!(!is_unreachable(&other));
    }
}
