//! The wire types of the Conclave relay protocol: request and response
//! bodies, push-stream frames, error codes and route paths.
//!
//! The relay (`conclave-server`) and the client core (`conclave-client`)
//! both speak through these types, so the JSON each side writes is the JSON
//! the other reads. Nothing here does I/O; the crate depends on serde (and
//! zeroize, for secrets) alone, and a client in another language can read
//! the protocol off this crate.
//!
//! Binary fields (MLS messages, Welcomes, GroupInfos, log leaves and
//! hashes) travel as standard base64 with padding, in `String`s: each side
//! decodes them where it checks them. Passwords and codes travel in
//! [`Password`] and [`SecretText`], which are wiped when dropped and never
//! print.
//!
//! One module per resource: accounts and their proofs, key packages,
//! groups, the message path, attachments, the transparency log, health
//! checks; [`routes`] names every path.
//!
//! ```
//! use conclave_proto::{AckBody, Delivered, MessageKind, Proof, StreamFrame, routes};
//!
//! // What the relay pushes on /v1/stream for one message…
//! let frame = StreamFrame::Message(Delivered {
//!     group_id: "ab01".into(),
//!     seq: 7,
//!     kind: MessageKind::Application,
//!     payload: "AAEC".into(),
//! });
//! let json = serde_json::to_string(&frame).unwrap();
//! assert_eq!(json, r#"{"group_id":"ab01","seq":7,"kind":"application","payload":"AAEC"}"#);
//!
//! // …and how a device reads it and acknowledges it.
//! let StreamFrame::Message(delivered) = serde_json::from_str(&json).unwrap() else {
//!     panic!("a message frame");
//! };
//! let ack = AckBody::up_to([&delivered]);
//! assert_eq!(serde_json::to_string(&ack).unwrap(), r#"{"acks":[{"group_id":"ab01","seq":7}]}"#);
//!
//! // Route paths come from here on both sides.
//! assert_eq!(routes::group_messages("ab01"), "/v1/groups/ab01/messages");
//!
//! // A proof read from a body never prints its password (`()` stands in
//! // for the WebAuthn assertion a passkey would bring).
//! let proof: Proof<()> =
//!     serde_json::from_str(r#"{"password":"hunter2","second_factor":null}"#).unwrap();
//! assert_eq!(proof.password.as_ref().unwrap().expose(), "hunter2");
//! assert!(!format!("{proof:?}").contains("hunter2"));
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod account;
mod audit;
mod blob;
mod error;
mod group;
mod health;
mod key_package;
mod message;
pub mod routes;
mod secret;
mod stream;

pub use account::{
    AccountStatus, DEFAULT_MAX_GROUP_DM, DeviceInfo, DeviceList, FactorRemovedAnswer, InviteAnswer,
    InviteBody, LegacyUpgradeBody, LoginAnswer, LoginBody, NewPasswordSetupBody, OpaqueProof,
    PasskeyAddedAnswer, PasskeyInfo, PasskeyRegistrationBody, PasswordChangeAnswer,
    PasswordChangeBody, PasswordLoginAnswer, PasswordLoginBody, PasswordSetupAnswer,
    PasswordSetupBody, Proof, RecoveryAnswer, RecoveryCodesAnswer, RegisterAnswer, RegisterBody,
    RevokedAnswer, SecondFactor, TotpConfirmBody, TotpEnrollmentAnswer, WebauthnChallenge,
    WebauthnChallengeBody,
};
pub use audit::{
    AuditEntriesAnswer, AuditEntriesQuery, AuditEntry, ClientAddress, ConsistencyProofAnswer,
    ConsistencyProofQuery, DeviceName, DeviceProofAnswer, DeviceProofQuery, DeviceProofsAnswer,
    DeviceProofsBody, InclusionProofAnswer, InclusionProofQuery, KeyRotations, LeafInclusion,
    LoggedEvent, ProvenDevice, RegistrationProof, WitnessPolicy,
};
pub use blob::{
    BlobCompleteAnswer, BlobDeletedAnswer, BlobUsage, ChunkStoredAnswer, CreateBlobAnswer,
    CreateBlobBody,
};
pub use error::{ErrorBody, ErrorCode};
pub use group::{
    ArchiveAnswer, ChannelNameAnswer, ChannelNameBody, ChannelTopicAnswer, ChannelTopicBody,
    CreateGroupAnswer, CreateGroupBody, GroupInfoAnswer, GroupRetentionAnswer, GroupRetentionBody,
    HistorySharingAnswer, HistorySharingBody, ListedChannel, PublicChannels, PublicListing,
    SlashCommand, SlashCommands,
};
pub use health::{HealthAnswer, HealthStatus};
pub use key_package::{ClaimedKeyPackage, ClaimedKeyPackages, KeyPackageClaim, KeyPackageUpload};
pub use message::{
    AccountChange, Ack, AckAnswer, AckBody, Delivered, DeviceStatus, FetchAnswer, FetchQuery,
    KeyPackageStock, MessageKind, PostAnswer, PostMessage, Retention, RevokedMember,
    UnknownMessageKind,
};
pub use secret::{Password, SecretText};
pub use stream::StreamFrame;

/// For `skip_serializing_if`: a flag that is off is left out.
fn is_false(flag: &bool) -> bool {
    !flag
}

/// `value` serializes to exactly `json`, and `json` reads back as a value
/// that serializes to it again (which needs no `PartialEq`, so secrets
/// need not be comparable).
#[cfg(test)]
fn pinned<T: serde::Serialize + serde::de::DeserializeOwned>(value: &T, json: &str) {
    assert_eq!(serde_json::to_string(value).unwrap(), json);
    let read: T = serde_json::from_str(json).unwrap();
    assert_eq!(serde_json::to_string(&read).unwrap(), json);
}
