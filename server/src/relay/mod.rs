//! The relay's core: what happens to an MLS message between the request
//! that carries it and the streams that deliver it, with no HTTP in sight.
//!
//! - [`accept`]: a posted message is checked (group, membership, epoch,
//!   repeats) and appended;
//! - [`commit_rules`]: what a handshake (proposal, commit, external join)
//!   must satisfy beyond RFC 9420, and what an accepted commit records;
//! - [`mls`]: RFC 9420 validation against each group's public state, with
//!   no secrets;
//! - [`delivery`]: one device's stream as a sans-IO cursor, fed notices and
//!   telling its shell what to push;
//! - [`notice`] and [`fanout`]: who is told what changed, on this node and
//!   on the others sharing the database;
//! - [`pending`]: what a device fetches and acknowledges, and [`acks`]
//!   the one writer of what streams acknowledge;
//! - [`retention`]: ciphertext past its channel's retention goes.
//!
//! The HTTP shell (`crate::http`) parses a request, makes one call here,
//! and maps the answer; status codes come from [`ApiError`] alone.

pub(crate) mod accept;
pub(crate) mod acks;
pub(crate) mod commit_rules;
pub(crate) mod delivery;
pub(crate) mod fanout;
pub(crate) mod key_packages;
pub(crate) mod mls;
pub(crate) mod notice;
pub(crate) mod pending;
pub(crate) mod retention;

use conclave_crypto::DeviceId;

pub(crate) use crate::error::ApiError;
use crate::events::AuditTrail;
use crate::store::Store;
pub(crate) use notice::{Notice, Notifier};

/// What the core needs of the relay's state: its storage, its audit trail
/// and its notifier. Borrowed from the HTTP shell's state for one call.
#[derive(Clone, Copy)]
pub(crate) struct Relay<'a> {
    pub(crate) store: &'a Store,
    pub(crate) audit: &'a AuditTrail,
    pub(crate) notifier: &'a Notifier,
}

/// The device a request came from, as its signature proved it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Poster {
    /// The device.
    pub(crate) device_id: DeviceId,
    /// Its Ed25519 public key: a handshake must be signed in MLS with the
    /// same key that signed the request.
    pub(crate) signature_key: [u8; 32],
}
