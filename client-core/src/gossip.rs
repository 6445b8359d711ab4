//! Checkpoint gossip among members (issue 18, point 4).
//!
//! A relay that shows different people different logs (a split view) passes
//! every check each client makes on its own: each view is signed by the log
//! key and consistent with itself. So members compare notes. Every message
//! a client sends carries, inside the encrypted content, the newest
//! checkpoint it verified (`"log"` in the envelope, see `content.rs`); the
//! relay cannot read it, so it cannot drop just the messages that would give
//! it away. A receiver checks what it heard after each batch:
//!
//! - the note must be signed by the log key this device pinned;
//! - the two trees must be consistent: equal roots at equal sizes, else the
//!   relay's consistency proof from the smaller to the larger, checked
//!   against both roots (the relay cannot make one for two trees that are
//!   not one log's);
//!
//! and a checkpoint that fails raises a security alert naming the channel
//! and the sender. Notes found consistent are remembered for the session.
//! This module holds the state and the comparison; `audit.rs`
//! (`Client::check_gossip`) asks the relay and raises the alerts.

use std::collections::HashSet;
use std::sync::Arc;

use conclave_audit::{Checkpoint, SignedNote, VerifierKey};

/// Most heard notes kept waiting for a check (the rest are dropped: a
/// channel repeats its members' notes with every message).
const MAX_HEARD: usize = 64;

/// What this device gossips and what it heard.
#[derive(Debug, Default)]
pub(crate) struct Gossip {
    /// The newest checkpoint this device verified, sent with every message.
    own: Option<Arc<str>>,
    /// Checkpoints members sent, not yet checked.
    pub(crate) heard: Vec<Heard>,
    /// Notes already judged (consistent, or alerted once).
    pub(crate) agreed: HashSet<String>,
}

/// A checkpoint a member sent.
#[derive(Debug, Clone)]
pub(crate) struct Heard {
    /// The channel it came in.
    pub(crate) group_id: String,
    /// The channel's name when it came (a joined channel may not be named
    /// yet: the alert names it as it is called then).
    pub(crate) channel: String,
    /// The sender's account.
    pub(crate) sender: String,
    /// The sender's device.
    pub(crate) device: String,
    /// The signed note.
    pub(crate) note: String,
}

impl Gossip {
    pub(crate) fn new(own: Option<String>) -> Self {
        Self {
            own: own.map(Arc::from),
            ..Self::default()
        }
    }

    /// The note to send with the next message.
    pub(crate) fn own(&self) -> Option<Arc<str>> {
        self.own.clone()
    }

    /// This device verified `note`, its newest checkpoint now.
    pub(crate) fn verified(&mut self, note: &str) {
        self.own = Some(Arc::from(note));
    }

    /// A member sent `heard`: kept for the next check, unless it is this
    /// device's own checkpoint or one found consistent already.
    pub(crate) fn heard(&mut self, heard: Heard) {
        self.heard.truncate(MAX_HEARD);
        if self.own.as_deref() == Some(heard.note.as_str())
            || self.agreed.contains(&heard.note)
            || self.heard.iter().any(|h| h.note == heard.note)
            || self.heard.len() >= MAX_HEARD
        {
            return;
        }
        self.heard.push(heard);
    }
}

/// What a heard checkpoint says about this device's view, before asking
/// the relay anything.
pub(crate) enum Comparison {
    /// One log, as far as can be told without a proof (equal trees, or an
    /// empty one).
    Agrees,
    /// Two trees that cannot be one log's.
    Contradicts(String),
    /// One log only if the relay proves the smaller tree a prefix of the
    /// larger: sizes and roots, smaller first.
    NeedsProof {
        /// The smaller tree.
        small: (u64, [u8; 32]),
        /// The larger tree.
        large: (u64, [u8; 32]),
    },
}

/// Compares the checkpoint a member sent (`note`, which must be signed by
/// one of the log's `keys`, the pinned one or one a rotation retired) with
/// this device's newest, `ours`.
pub(crate) fn compare(keys: &[VerifierKey], ours: &Checkpoint, note: &str) -> Comparison {
    let theirs = match parse_checkpoint(note, keys) {
        Ok(theirs) => theirs,
        Err(why) => return Comparison::Contradicts(why),
    };
    let (small, large) = if theirs.size() <= ours.size() {
        (&theirs, ours)
    } else {
        (ours, &theirs)
    };
    if small.size() == 0 {
        return Comparison::Agrees;
    }
    if small.size() == large.size() {
        return if small.root_hash() == large.root_hash() {
            Comparison::Agrees
        } else {
            Comparison::Contradicts(format!("two different trees of {} entries", small.size()))
        };
    }
    Comparison::NeedsProof {
        small: (small.size(), *small.root_hash()),
        large: (large.size(), *large.root_hash()),
    }
}

/// The checkpoint in `note`, once one of the log's `keys` signed it.
pub(crate) fn parse_checkpoint(note: &str, keys: &[VerifierKey]) -> Result<Checkpoint, String> {
    let verified = SignedNote::parse(note)
        .and_then(|n| n.verify(keys))
        .map_err(|e| format!("a checkpoint the pinned log key did not sign ({e})"))?;
    let checkpoint = Checkpoint::from_note_text(verified.text())
        .map_err(|e| format!("a malformed checkpoint ({e})"))?;
    if keys.iter().all(|key| checkpoint.origin() != key.name()) {
        return Err(format!(
            "a checkpoint of another log ({:?})",
            checkpoint.origin()
        ));
    }
    Ok(checkpoint)
}
