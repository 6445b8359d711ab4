//! One security event, and the exact bytes of its log leaf.
//!
//! # The leaf encoding (version 1)
//!
//! A leaf is UTF-8 text made only of printable ASCII: a version line, then
//! one `name value` line per field, each ending in a single `\n` (0x0A):
//!
//! ```text
//! conclave-audit-event/v1
//! seq 41
//! time 1732460000
//! action device_added
//! outcome success
//! actor alice
//! device 6c1f…(64 hex digits)
//! target device:6c1f…
//! client-ip sha256:3e7a…(64 hex digits)
//! public_key 9a0b…(64 hex digits)
//! ```
//!
//! - The nine lines up to `client-ip` are always present, in that order.
//! - `seq` is the entry's index in the log, from 0; `time` is Unix seconds.
//!   Both are decimal without leading zeros.
//! - `action` and detail names are `[a-z0-9_]+`.
//! - `outcome` is `success` or `failure:<reason>`.
//! - `actor` is the account, `device` the acting device's id, `target` what
//!   the action was done to. A single `-` means "none".
//! - `client-ip` is `-` unless the relay records addresses. If it does, the
//!   leaf holds only a salted commitment to the address, never the address:
//!   `sha256:` and 64 lowercase hex digits of SHA-256 over
//!   [`CLIENT_IP_LABEL`], a NUL byte, a random 16-byte salt of this entry
//!   and the address as text (see [`ClientIpOpening`]). Every signed-in
//!   device may fetch a device-registration leaf (key transparency) and
//!   hashes exactly its bytes, so the address cannot be in them; the relay
//!   keeps the salt and the address in a table only auditors read, and an
//!   auditor checks them against the commitment. Any other `client-ip`
//!   value (an address itself) is from a relay older than this rule.
//! - Any further lines are details (`name value`), sorted by name, each name
//!   at most once: for example `public_key` (hex) on `device_added`, `count`
//!   on `key_packages_uploaded`, `added` and `removed` (comma-separated
//!   `account/device` pairs) on `membership_changed`.
//! - Every value is 1 to 1024 bytes in `!`..`~` (0x21–0x7E): no spaces, no
//!   control characters; a value is never `-` alone.
//!
//! Decoding is strict: [`Event::decode`] accepts only bytes that
//! [`Event::encode`] would produce for the same event, so one event has one
//! leaf and an independent verifier hashes exactly the bytes it reads.
//!
//! An event never holds message content, passwords, codes or private keys:
//! only names, ids, public keys, counts and fixed reasons.
//!
//! ```
//! use conclave_audit::Event;
//!
//! let event = Event::new(7, 1_732_460_000, "login").actor("alice").failure("bad_password");
//! let leaf = event.encode()?;
//! assert!(std::str::from_utf8(&leaf)?.starts_with("conclave-audit-event/v1\nseq 7\n"));
//! assert_eq!(Event::decode(&leaf)?, event);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The first line of every version-1 leaf.
pub const LEAF_VERSION_LINE: &str = "conclave-audit-event/v1";

/// The longest value a field may hold, in bytes.
pub const MAX_VALUE_LEN: usize = 1024;

/// The action of a device key registration, the entry key transparency checks.
pub const DEVICE_ADDED: &str = "device_added";

/// The domain label hashed before a client address's salt and text.
pub const CLIENT_IP_LABEL: &str = "conclave-audit-client-ip/v1";

/// How a commitment to a client address starts in the `client-ip` field.
const COMMITMENT_PREFIX: &str = "sha256:";

const SUCCESS: &str = "success";
const NONE: &str = "-";
const FIXED_FIELDS: [&str; 8] = [
    "seq",
    "time",
    "action",
    "outcome",
    "actor",
    "device",
    "target",
    "client-ip",
];

/// A leaf that is not a canonical version-1 event.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum EventError {
    /// The bytes are not printable ASCII lines ending in `\n`.
    #[error("event is not printable ASCII lines each ending in a newline")]
    NotText,
    /// The first line is not the version line.
    #[error("event does not start with {LEAF_VERSION_LINE:?}")]
    UnknownVersion,
    /// A mandatory field is missing or out of order.
    #[error("event line {line} should be the {expected:?} field")]
    MissingField {
        /// 1-based line number.
        line: usize,
        /// The field expected there.
        expected: &'static str,
    },
    /// A field's value is not allowed.
    #[error("event field {field:?} has an invalid value: {why}")]
    InvalidValue {
        /// The field.
        field: String,
        /// What is wrong with it.
        why: &'static str,
    },
    /// Details are not sorted by name or a name repeats.
    #[error("event detail {0:?} is out of order or repeated")]
    DetailOrder(String),
}

/// What opens a `client-ip` commitment: the entry's salt and the address.
/// The relay keeps it beside the log, for auditors only; it is never part
/// of a leaf.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientIpOpening {
    /// 16 random bytes, fresh for each entry.
    pub salt: [u8; 16],
    /// The client address as text, e.g. `192.0.2.1`.
    pub ip: String,
}

impl ClientIpOpening {
    /// The commitment the leaf's `client-ip` field holds:
    /// `sha256:` + hex SHA-256(label ‖ 0x00 ‖ salt ‖ address).
    pub fn commitment(&self) -> String {
        let digest = Sha256::new()
            .chain_update(CLIENT_IP_LABEL.as_bytes())
            .chain_update([0u8])
            .chain_update(self.salt)
            .chain_update(self.ip.as_bytes())
            .finalize();
        let mut text = String::with_capacity(COMMITMENT_PREFIX.len() + 64);
        text.push_str(COMMITMENT_PREFIX);
        for byte in digest {
            let _ = write!(text, "{byte:02x}");
        }
        text
    }

    /// Whether this salt and address are what `commitment` commits to.
    pub fn opens(&self, commitment: &str) -> bool {
        // Both sides are public (the leaf and the auditor's table): a plain
        // comparison leaks nothing.
        self.commitment() == commitment
    }
}

/// One security event, as it is committed to the log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// Position in the log, from 0.
    pub seq: u64,
    /// Unix seconds.
    pub time: u64,
    /// What happened, e.g. `device_added`.
    pub action: String,
    /// `success` or `failure:<reason>`.
    pub outcome: String,
    /// The acting account.
    pub actor: Option<String>,
    /// The acting device (hex id).
    pub device: Option<String>,
    /// What the action was done to.
    pub target: Option<String>,
    /// The `client-ip` field: a commitment to the client's address, where
    /// the relay records addresses (see the module docs).
    pub client_ip: Option<String>,
    /// Further named values (public keys, counts, member lists).
    pub details: BTreeMap<String, String>,
    /// The salt and address behind `client_ip`, on the relay's side before
    /// the entry is appended; never in the leaf, and `None` after decoding.
    #[serde(skip)]
    opening: Option<ClientIpOpening>,
}

impl Event {
    /// A successful `action` at `time`, to be entered at index `seq`.
    pub fn new(seq: u64, time: u64, action: &str) -> Self {
        Self {
            seq,
            time,
            action: action.to_owned(),
            outcome: SUCCESS.to_owned(),
            actor: None,
            device: None,
            target: None,
            client_ip: None,
            details: BTreeMap::new(),
            opening: None,
        }
    }

    /// With the acting account.
    pub fn actor(mut self, account: &str) -> Self {
        self.actor = Some(account.to_owned());
        self
    }

    /// With the acting device.
    pub fn device(mut self, device_id: &str) -> Self {
        self.device = Some(device_id.to_owned());
        self
    }

    /// With a target.
    pub fn target(mut self, target: &str) -> Self {
        self.target = Some(target.to_owned());
        self
    }

    /// Marks the event as failed for `reason` (a fixed word, never user input).
    pub fn failure(mut self, reason: &str) -> Self {
        self.outcome = format!("failure:{reason}");
        self
    }

    /// With a `client-ip` field value as it is (a commitment, or the
    /// address itself as relays before commitments wrote it).
    pub fn client_ip(mut self, value: &str) -> Self {
        self.client_ip = Some(value.to_owned());
        self
    }

    /// With the client's address as a commitment in the leaf; the opening
    /// goes to the auditors' table when the entry is appended.
    pub fn client_address(mut self, opening: ClientIpOpening) -> Self {
        self.client_ip = Some(opening.commitment());
        self.opening = Some(opening);
        self
    }

    /// The salt and address behind this event's `client-ip` commitment, if
    /// this event was built with [`Event::client_address`] (decoded leaves
    /// have none).
    pub fn client_ip_opening(&self) -> Option<&ClientIpOpening> {
        self.opening.as_ref()
    }

    /// With a detail.
    pub fn detail(mut self, name: &str, value: impl ToString) -> Self {
        self.details.insert(name.to_owned(), value.to_string());
        self
    }

    /// Whether the action succeeded.
    pub fn succeeded(&self) -> bool {
        self.outcome == SUCCESS
    }

    /// The canonical leaf bytes (see the module docs).
    pub fn encode(&self) -> Result<Vec<u8>, EventError> {
        check_token("action", &self.action)?;
        match self.outcome.strip_prefix("failure:") {
            Some(reason) => check_token("outcome", reason)?,
            None if self.outcome == SUCCESS => {}
            None => {
                return Err(invalid("outcome", "must be success or failure:<reason>"));
            }
        }
        let optional = [
            ("actor", &self.actor),
            ("device", &self.device),
            ("target", &self.target),
            ("client-ip", &self.client_ip),
        ];
        for (name, value) in optional {
            if let Some(value) = value {
                check_value(name, value)?;
            }
        }
        if let Some(commitment) = self
            .client_ip
            .as_deref()
            .and_then(|v| v.strip_prefix(COMMITMENT_PREFIX))
            && (commitment.len() != 64
                || !commitment
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)))
        {
            return Err(invalid(
                "client-ip",
                "a commitment is sha256: and 64 lowercase hex digits",
            ));
        }
        if let Some(opening) = &self.opening
            && self.client_ip.as_deref() != Some(opening.commitment().as_str())
        {
            return Err(invalid(
                "client-ip",
                "does not hold the commitment to the event's address",
            ));
        }
        for (name, value) in &self.details {
            check_token(name, name)?;
            if FIXED_FIELDS.contains(&name.as_str()) {
                return Err(invalid(name, "is a reserved field name"));
            }
            check_value(name, value)?;
        }
        // Writing to a String cannot fail.
        let mut text = String::with_capacity(256);
        text.push_str(LEAF_VERSION_LINE);
        text.push('\n');
        let _ = writeln!(text, "seq {}", self.seq);
        let _ = writeln!(text, "time {}", self.time);
        let _ = writeln!(text, "action {}", self.action);
        let _ = writeln!(text, "outcome {}", self.outcome);
        for (name, value) in optional {
            let _ = writeln!(text, "{name} {}", value.as_deref().unwrap_or(NONE));
        }
        for (name, value) in &self.details {
            let _ = writeln!(text, "{name} {value}");
        }
        Ok(text.into_bytes())
    }

    /// Parses leaf bytes, accepting only the canonical encoding.
    pub fn decode(leaf: &[u8]) -> Result<Self, EventError> {
        let text = std::str::from_utf8(leaf).map_err(|_| EventError::NotText)?;
        let body = text.strip_suffix('\n').ok_or(EventError::NotText)?;
        if body
            .bytes()
            .any(|b| b != b'\n' && !(b' '..=b'~').contains(&b))
        {
            return Err(EventError::NotText);
        }
        let mut lines = body.split('\n');
        if lines.next() != Some(LEAF_VERSION_LINE) {
            return Err(EventError::UnknownVersion);
        }
        let mut fixed: Vec<&str> = Vec::with_capacity(FIXED_FIELDS.len());
        for (i, expected) in FIXED_FIELDS.iter().enumerate() {
            let value = lines
                .next()
                .and_then(|l| l.strip_prefix(expected))
                .and_then(|l| l.strip_prefix(' '))
                .ok_or(EventError::MissingField {
                    line: i + 2,
                    expected,
                })?;
            fixed.push(value);
        }
        let optional = |value: &str| (value != NONE).then(|| value.to_owned());
        let mut event = Event {
            seq: parse_decimal("seq", fixed[0])?,
            time: parse_decimal("time", fixed[1])?,
            action: fixed[2].to_owned(),
            outcome: fixed[3].to_owned(),
            actor: optional(fixed[4]),
            device: optional(fixed[5]),
            target: optional(fixed[6]),
            client_ip: optional(fixed[7]),
            details: BTreeMap::new(),
            opening: None,
        };
        let mut previous: Option<&str> = None;
        for line in lines {
            let (name, value) = line.split_once(' ').ok_or(EventError::NotText)?;
            if previous.is_some_and(|p| p >= name) {
                return Err(EventError::DetailOrder(name.to_owned()));
            }
            previous = Some(name);
            event.details.insert(name.to_owned(), value.to_owned());
        }
        // Re-encoding checks every value and rules out any second spelling.
        if event.encode()? != leaf {
            return Err(EventError::NotText);
        }
        Ok(event)
    }

    /// The device registration this event records, if it is one: a
    /// successful `device_added` with the account, device id and public key.
    pub fn device_registration(&self) -> Option<DeviceRegistration> {
        if self.action != DEVICE_ADDED || !self.succeeded() {
            return None;
        }
        let public_key = hex_decode(self.details.get("public_key")?)?;
        Some(DeviceRegistration {
            username: self.actor.clone()?,
            device_id: self.device.clone()?,
            public_key,
        })
    }
}

/// A device key as the log recorded its registration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceRegistration {
    /// The account.
    pub username: String,
    /// The device id (hex).
    pub device_id: String,
    /// The device's Ed25519 public key.
    pub public_key: Vec<u8>,
}

/// Unix seconds as an RFC 3339 UTC timestamp, `YYYY-MM-DDTHH:MM:SSZ`
/// (Howard Hinnant's civil-from-days).
pub fn rfc3339(unix: u64) -> String {
    let days = (unix / 86_400) as i64;
    let seconds = unix % 86_400;
    let (hour, minute, second) = (seconds / 3600, (seconds % 3600) / 60, seconds % 60);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}Z")
}

fn invalid(field: &str, why: &'static str) -> EventError {
    EventError::InvalidValue {
        field: field.to_owned(),
        why,
    }
}

fn check_token(field: &str, value: &str) -> Result<(), EventError> {
    if value.is_empty()
        || value.len() > 64
        || !value
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
    {
        return Err(invalid(field, "must be 1 to 64 of a-z, 0-9 and _"));
    }
    Ok(())
}

fn check_value(field: &str, value: &str) -> Result<(), EventError> {
    if value.is_empty() || value.len() > MAX_VALUE_LEN {
        return Err(invalid(field, "must be 1 to 1024 bytes long"));
    }
    if value == NONE {
        return Err(invalid(field, "\"-\" alone means \"none\""));
    }
    if !value.bytes().all(|b| (b'!'..=b'~').contains(&b)) {
        return Err(invalid(field, "must be printable ASCII without spaces"));
    }
    Ok(())
}

fn parse_decimal(field: &str, value: &str) -> Result<u64, EventError> {
    let canonical = !value.is_empty()
        && value.bytes().all(|b| b.is_ascii_digit())
        && (value == "0" || !value.starts_with('0'));
    value
        .parse()
        .ok()
        .filter(|_| canonical)
        .ok_or_else(|| invalid(field, "must be decimal without leading zeros"))
}

fn hex_decode(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn registration() -> Event {
        Event::new(3, 1_700_000_000, DEVICE_ADDED)
            .actor("alice")
            .device("ab12")
            .target("device:ab12")
            .detail("public_key", "00ff")
    }

    #[test]
    fn timestamps() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_795_529_682), "2026-11-24T14:14:42Z");
    }

    #[test]
    fn encoding_is_the_documented_text() {
        let leaf = registration().client_ip("192.0.2.1").encode().unwrap();
        assert_eq!(
            std::str::from_utf8(&leaf).unwrap(),
            "conclave-audit-event/v1\nseq 3\ntime 1700000000\naction device_added\n\
             outcome success\nactor alice\ndevice ab12\ntarget device:ab12\n\
             client-ip 192.0.2.1\npublic_key 00ff\n"
        );
    }

    #[test]
    fn round_trips_and_reads_registrations() {
        let event = registration().detail("count", 5);
        let decoded = Event::decode(&event.encode().unwrap()).unwrap();
        assert_eq!(decoded, event);
        let device = decoded.device_registration().unwrap();
        assert_eq!(device.username, "alice");
        assert_eq!(device.public_key, vec![0x00, 0xff]);
        assert!(
            registration()
                .failure("revoked")
                .device_registration()
                .is_none()
        );
    }

    #[test]
    fn refuses_every_second_spelling() {
        let leaf = String::from_utf8(registration().encode().unwrap()).unwrap();
        let variants = [
            leaf.replace("seq 3", "seq 03"),
            leaf.replace("\n", "\r\n"),
            leaf.replace("actor alice", "actor  alice"),
            leaf.trim_end().to_owned(),
            leaf.replace("public_key 00ff\n", "public_key 00ff\ncount 1\n"),
            leaf.replace("public_key 00ff\n", "public_key 00ff\npublic_key 00ff\n"),
            leaf.replace("conclave-audit-event/v1", "conclave-audit-event/v2"),
            leaf.replace("client-ip -\n", ""),
            leaf.replace("outcome success", "outcome ok"),
        ];
        for variant in variants {
            assert!(
                Event::decode(variant.as_bytes()).is_err(),
                "accepted {variant:?}"
            );
        }
    }

    #[test]
    fn a_client_address_enters_the_leaf_only_as_a_commitment() {
        let opening = ClientIpOpening {
            salt: [7; 16],
            ip: "192.0.2.1".to_owned(),
        };
        let event = registration().client_address(opening.clone());
        let leaf = event.encode().unwrap();
        let text = std::str::from_utf8(&leaf).unwrap();
        assert!(!text.contains("192.0.2.1"), "{text}");
        let decoded = Event::decode(&leaf).unwrap();
        assert!(decoded.client_ip_opening().is_none());
        let commitment = decoded.client_ip.unwrap();
        assert!(commitment.starts_with("sha256:") && commitment.len() == 71);
        assert!(opening.opens(&commitment));
        let other_ip = ClientIpOpening {
            ip: "192.0.2.2".to_owned(),
            ..opening.clone()
        };
        let other_salt = ClientIpOpening {
            salt: [8; 16],
            ..opening.clone()
        };
        assert!(!other_ip.opens(&commitment) && !other_salt.opens(&commitment));
        // A malformed commitment, or one that is not the opening's, is refused.
        assert!(registration().client_ip("sha256:00").encode().is_err());
        let upper = text.replace(&commitment[7..], &commitment[7..].to_uppercase());
        assert!(Event::decode(upper.as_bytes()).is_err());
        let mut forged = registration().client_address(opening);
        forged.client_ip = Some(other_ip.commitment());
        assert!(forged.encode().is_err());
    }

    #[test]
    fn refuses_values_that_would_break_the_format() {
        for bad in ["two words", "new\nline", "", "-", "caf\u{e9}"] {
            assert!(registration().target(bad).encode().is_err(), "{bad:?}");
        }
        assert!(registration().detail("Public", "x").encode().is_err());
        assert!(registration().detail("seq", "9").encode().is_err());
        assert!(Event::new(0, 0, "login").failure("").encode().is_err());
    }
}
