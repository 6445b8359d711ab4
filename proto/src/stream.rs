//! The frames of the push stream, `GET /v1/stream` (a WebSocket).
//!
//! The relay sends text frames, each a [`StreamFrame`]; the device answers
//! with [`AckBody`](crate::AckBody) frames, the same JSON as
//! `POST /v1/messages/ack`.

use serde::{Deserialize, Serialize};

use crate::Delivered;

/// One frame the relay pushes.
///
/// ```text
/// {"group_id":"ab01","seq":7,"kind":"application","payload":"…"}   a message
/// {"kind":"devices_changed"}                                        a notice
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "RawFrame", into = "RawFrame")]
pub enum StreamFrame {
    /// A message, the same object as in a fetch's `messages`.
    Message(Delivered),
    /// The account's device list changed: the device should fetch, to
    /// learn of (and add or remove) its account's devices.
    DevicesChanged,
}

/// The JSON shapes: a message has a payload, a notice only its kind.
#[derive(Serialize, Deserialize)]
#[serde(untagged)]
enum RawFrame {
    Message(Delivered),
    Notice { kind: NoticeKind },
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum NoticeKind {
    DevicesChanged,
}

impl From<RawFrame> for StreamFrame {
    fn from(raw: RawFrame) -> Self {
        match raw {
            RawFrame::Message(delivered) => StreamFrame::Message(delivered),
            RawFrame::Notice {
                kind: NoticeKind::DevicesChanged,
            } => StreamFrame::DevicesChanged,
        }
    }
}

impl From<StreamFrame> for RawFrame {
    fn from(frame: StreamFrame) -> Self {
        match frame {
            StreamFrame::Message(delivered) => RawFrame::Message(delivered),
            StreamFrame::DevicesChanged => RawFrame::Notice {
                kind: NoticeKind::DevicesChanged,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MessageKind;

    fn pinned(frame: &StreamFrame, json: &str) {
        assert_eq!(serde_json::to_string(frame).unwrap(), json);
        assert_eq!(&serde_json::from_str::<StreamFrame>(json).unwrap(), frame);
    }

    #[test]
    fn frames_are_pinned() {
        pinned(
            &StreamFrame::DevicesChanged,
            r#"{"kind":"devices_changed"}"#,
        );
        pinned(
            &StreamFrame::Message(Delivered {
                group_id: "ab01".into(),
                seq: 2,
                kind: MessageKind::Proposal,
                payload: "AAEC".into(),
            }),
            r#"{"group_id":"ab01","seq":2,"kind":"proposal","payload":"AAEC"}"#,
        );
    }

    #[test]
    fn malformed_frames_are_refused() {
        for bad in [
            r#"{"kind":"something_else"}"#,
            r#"{"group_id":"ab01","seq":2,"kind":"devices_changed_not","payload":"AAEC"}"#,
            r#"{"group_id":"ab01","kind":"application","payload":"AAEC"}"#,
            r#"[]"#,
        ] {
            assert!(serde_json::from_str::<StreamFrame>(bad).is_err(), "{bad}");
        }
    }
}
