//! Conclave's client core: end-to-end encrypted team chat on MLS (RFC 9420).
//!
//! A [`Client`] is one device of one account; a [`Channel`] is one of its
//! channels, addressed by its group id, and holds what can be done there. It keeps its identity key,
//! its openmls group state and the decrypted history in one SQLite file
//! (mode 0600) under a home directory, and reaches the relay through a
//! [`Transport`]: [`HttpsTransport`] in production, anything in tests.
//!
//! ```
//! use conclave_client::{Client, HttpsTransport, KeyProtection, LocalPassphrase, ServerTrust};
//!
//! # #[tokio::main(flavor = "multi_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # // A relay for this example, on a free port with its data in a temp dir.
//! # let dir = std::env::temp_dir().join(format!("conclave-doc-{}", std::process::id()));
//! # let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
//! # let url = format!("https://{}", listener.local_addr()?);
//! # let mut relay = conclave_server::Config::with_data_dir(dir.join("relay"));
//! # relay.open_registration = true;
//! # tokio::spawn(conclave_server::run(listener, relay, std::future::pending()));
//! # let cert = dir.join("relay/tls-cert.pem");
//! # let trust = loop {
//! #     if let Ok(trust) = ServerTrust::ca_file(&cert) { break trust; }
//! #     tokio::time::sleep(std::time::Duration::from_millis(20)).await;
//! # };
//! // `trust` accepts the relay's certificate (ServerTrust::pin takes its SHA-256).
//! // Alice's device key is sealed under a local passphrase in her home;
//! // bob's is kept in clear, which is for unattended bots only.
//! let sealed = KeyProtection::Passphrase(LocalPassphrase::new("a local passphrase"));
//! let alice = Client::open_with(&dir.join("alice"), HttpsTransport::new(&url, trust.clone())?, sealed).await?;
//! let bob = Client::open_with(&dir.join("bob"), HttpsTransport::new(&url, trust)?, KeyProtection::Unprotected).await?;
//! alice.register("alice", "correct horse battery staple").await?;
//! bob.register("bob", "tr0ub4dor&3, but longer").await?;
//!
//! let general = alice.create_channel("general").await?;
//! general.invite("bob").await?;      // every device bob has
//! general.send("hello, bob").await?; // encrypted before it leaves
//!
//! bob.sync().await?; // joins, learns the channel's name, decrypts
//! let history = bob.channel_named("general").await?.history().await?;
//! assert_eq!((history[0].sender.as_str(), history[0].text.as_str()), ("alice", "hello, bob"));
//! # std::fs::remove_dir_all(&dir)?;
//! # Ok(())
//! # }
//! ```
//!
//! Everything runs on a multi-threaded tokio runtime.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod account;
mod alert;
mod audit;
mod bot;
mod channel;
mod channel_info;
mod client;
mod commands;
mod content;
mod device_key;
mod error;
mod event;
mod files;
mod gossip;
mod group;
mod group_cache;
mod history;
mod history_entry;
mod https;
mod identity;
mod key_at_rest;
mod membership;
mod messaging;
mod password;
mod public;
mod receive;
mod retry;
mod send;
mod session;
mod settings;
mod store;
mod stream_acks;
mod sync;
mod transport;
mod webhook;

#[cfg(feature = "hardware-key")]
pub use account::HardwareKey;
#[cfg(feature = "soft-authenticator")]
pub use account::SoftAuthenticator;
pub use account::{
    AccountStatus, Authenticator, AuthenticatorError, Credentials, DeviceInfo, PasskeyInfo,
    RecoveryCodes, RecoveryReport, SecondFactor, TotpEnrollment,
};
pub use alert::{AlertKind, SecurityAlert};
pub use audit::AuditPage;
pub use bot::{Bot, HandlerError, HttpCaller, MAX_CALL_ANSWER, Request};
pub use channel::Channel;
pub use channel_info::{ChannelInfo, ChannelState, Member};
pub use client::Client;
pub use commands::{CommandSent, SlashCommand};
/// The log's sans-IO verification (proofs, notes, checkpoints, events), for
/// clients that check more than client-core does for them.
pub use conclave_audit as transparency;
pub use conclave_crypto::{NEW_PASSWORD_CHARS, check_new_password, is_command_name};
pub use content::{Content, Decoded, FileRef, SecretText, reaction_emoji};
pub use error::{Cause, ClientError, Result};
pub use event::Event;
pub use files::Progress;
pub use history::MAX_BUNDLE_MESSAGES;
pub use history_entry::{FileInfo, HistoryEntry, Reaction};
pub use https::{HttpsTransport, ServerTrust};
pub use key_at_rest::{KeyProtection, KeyStatus, LocalPassphrase, SealedUnder, UnlockKey};
pub use messaging::{Reacted, SearchQuery};
pub use public::PublicChannel;
pub use settings::{RelaySettings, SETTINGS_FILE};
pub use stream_acks::AckPacer;
pub use transport::{BoxFuture, HttpRequest, HttpResponse, PushStream, Transport, TransportError};
pub use webhook::{
    MAX_WEBHOOK_BODY, Webhook, WebhookError, WebhookSecret, WebhookSignature, sign_webhook,
};
