//! Conclave's client core: end-to-end encrypted team chat on MLS (RFC 9420).
//!
//! A [`Client`] is one device of one account. It keeps its identity key,
//! its openmls group state and the decrypted history in one SQLite file
//! (mode 0600) under a home directory, and reaches the relay through a
//! [`Transport`]: [`HttpsTransport`] in production, anything in tests.
//!
//! ```no_run
//! use conclave_client::{Client, HttpsTransport, ServerTrust};
//!
//! # async fn demo() -> Result<(), conclave_client::ClientError> {
//! let trust = ServerTrust::pin("5f1c…the fingerprint the server printed…")?;
//! let transport = HttpsTransport::new("https://127.0.0.1:8443", trust)?;
//! let alice = Client::open("/home/alice/.conclave".as_ref(), transport).await?;
//! alice.register("alice", "correct horse battery staple").await?;
//! alice.create_channel("general").await?;
//! alice.invite("general", "bob").await?;       // every device bob has
//! alice.send("general", "hello, bob").await?;  // encrypted before it leaves
//! for event in alice.sync().await? {
//!     println!("{event:?}");
//! }
//! # Ok(()) }
//! ```
//!
//! Everything runs on a multi-threaded tokio runtime.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod client;
mod error;
mod https;
mod store;
mod transport;

pub use client::{Channel, Client, Event, HistoryEntry, Member};
pub use error::{ClientError, Result};
pub use https::{HttpsTransport, ServerTrust};
pub use transport::{BoxFuture, HttpRequest, HttpResponse, PushStream, Transport, TransportError};
