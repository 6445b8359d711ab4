//! The wire types of the Conclave relay protocol: request and response
//! bodies, push-stream frames, error codes and route paths.
//!
//! The relay (`conclave-server`) and the client core (`conclave-client`)
//! both speak through these types, so the JSON each side writes is the JSON
//! the other reads. Nothing here does I/O; the crate depends on serde alone,
//! and a client in another language can read the protocol off this crate.
//!
//! Binary fields (MLS messages, Welcomes, GroupInfos) travel as standard
//! base64 with padding, in `String`s: each side decodes them where it
//! checks them.
//!
//! ```
//! use conclave_proto::{AckBody, Delivered, MessageKind, StreamFrame, routes};
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
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod error;
mod message;
pub mod routes;
mod stream;

pub use error::{ErrorBody, ErrorCode};
pub use message::{
    AccountChange, Ack, AckAnswer, AckBody, Delivered, DeviceStatus, FetchAnswer, FetchQuery,
    KeyPackageStock, MessageKind, PostAnswer, PostMessage, Retention, RevokedMember,
    UnknownMessageKind,
};
pub use stream::StreamFrame;
