//! The route paths of the relay protocol, as the relay registers them and
//! the client calls them.
//!
//! A path with a parameter comes twice: as the template the relay's router
//! takes (`{group_id}`), and as a function that fills it in.

/// `GET`: the messages pending for this device ([`FetchAnswer`](crate::FetchAnswer)),
/// with an optional [`FetchQuery`](crate::FetchQuery).
pub const MESSAGES: &str = "/v1/messages";

/// `POST`: acknowledges messages ([`AckBody`](crate::AckBody) →
/// [`AckAnswer`](crate::AckAnswer)).
pub const MESSAGES_ACK: &str = "/v1/messages/ack";

/// `GET`: the push stream, a WebSocket of [`StreamFrame`](crate::StreamFrame)s.
pub const STREAM: &str = "/v1/stream";

/// `GET`: this device's key packages on the relay
/// ([`KeyPackageStock`](crate::KeyPackageStock)).
pub const KEY_PACKAGE_STOCK: &str = "/v1/key-packages/stock";

/// `POST`: an MLS message for a group ([`PostMessage`](crate::PostMessage) →
/// [`PostAnswer`](crate::PostAnswer)); the router's template.
pub const GROUP_MESSAGES: &str = "/v1/groups/{group_id}/messages";

/// [`GROUP_MESSAGES`] for one group (its hex id).
pub fn group_messages(group_id: &str) -> String {
    format!("/v1/groups/{group_id}/messages")
}

/// [`MESSAGES`] asking for at most `limit` messages.
pub fn messages_page(limit: u32) -> String {
    format!("{MESSAGES}?limit={limit}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_pinned() {
        assert_eq!(MESSAGES, "/v1/messages");
        assert_eq!(MESSAGES_ACK, "/v1/messages/ack");
        assert_eq!(STREAM, "/v1/stream");
        assert_eq!(KEY_PACKAGE_STOCK, "/v1/key-packages/stock");
        assert_eq!(messages_page(200), "/v1/messages?limit=200");
        assert_eq!(group_messages("ab01"), "/v1/groups/ab01/messages");
    }

    #[test]
    fn each_function_fills_in_its_template() {
        assert_eq!(group_messages("{group_id}"), GROUP_MESSAGES);
    }
}
