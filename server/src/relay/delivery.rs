//! Delivery to one device's stream, as a sans-IO cursor.
//!
//! [`DeliveryCursor`] holds what the stream has pushed per group, which
//! groups the device is in, messages announced ahead of one still missing,
//! and when to stop waiting for it. Its shell (`http::stream`)
//! owns the socket, the database and the timers: it feeds the cursor
//! notices ([`DeliveryCursor::on_notice`]) and database pages, and carries
//! out the [`Step`]s it gets back. Every rule of ordering lives here, where
//! a unit test can drive it without a socket.
//!
//! The rules:
//! - a group's messages are pushed in order, each once;
//! - a message announced just after the last one pushed goes out at once,
//!   with the frame every other stream shares;
//! - one announced a little early (appends committed together are announced
//!   in no particular order) is held for [`REORDER_WAIT`], then the
//!   database is asked;
//! - anything else that concerns the device (a membership change, a
//!   Welcome, a missed notice, another node's append) sends the shell to
//!   the database, which stays the one source of truth.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use conclave_proto::{Delivered, StreamFrame};

use super::Notice;
use crate::store::{MessageKind, Pending};

/// How far ahead of the next expected position an announced message may be
/// held (rather than fetched) while the ones before it are announced.
const REORDER_WINDOW: u64 = 256;
/// How long such a message is held before the stream asks the database.
pub(crate) const REORDER_WAIT: Duration = Duration::from_millis(100);

/// One message as delivered to a device.
pub(crate) fn delivered(p: &Pending) -> Delivered {
    Delivered {
        group_id: p.group_id.clone(),
        seq: p.seq,
        kind: p.kind,
        payload: STANDARD.encode(&p.payload),
    }
}

/// The stream frame for `p`: the same JSON object as `GET /v1/messages`.
pub(crate) fn frame_of(p: &Pending) -> String {
    encode_frame(&StreamFrame::Message(delivered(p)))
}

/// A stream frame as the text the socket carries.
pub(crate) fn encode_frame(frame: &StreamFrame) -> String {
    // Strings and numbers: serializing cannot fail.
    serde_json::to_string(frame).unwrap_or_default()
}

/// A stream frame's text, shared by every stream that pushes it (a
/// reference count, not a copy per stream).
pub(crate) type Frame = axum::extract::ws::Utf8Bytes;

/// A message to push now.
#[derive(Debug)]
pub(crate) struct Push<'n> {
    /// The message.
    pub(crate) message: Cow<'n, Pending>,
    /// The frame the notice shares among this node's streams, if it came
    /// from one.
    shared_frame: Option<&'n OnceLock<Frame>>,
    /// That frame, taken already (a message held back for a moment).
    held_frame: Option<Frame>,
    /// When the relay accepted it, for the delivery-latency histogram.
    pub(crate) accepted: Instant,
}

impl Push<'_> {
    /// The text to send: the shared frame (encoded by the first stream that
    /// needs it), or one made for this push.
    pub(crate) fn frame(&self) -> Frame {
        if let Some(held) = &self.held_frame {
            return held.clone();
        }
        match self.shared_frame {
            Some(shared) => shared
                .get_or_init(|| frame_of(&self.message).into())
                .clone(),
            None => frame_of(&self.message).into(),
        }
    }
}

/// What the stream's shell must do, in order.
#[derive(Debug)]
pub(crate) enum Step<'n> {
    /// Push a message.
    Push(Push<'n>),
    /// Tell the device its account's device list changed.
    DevicesChanged,
    /// Close the stream: the device's session ended (close code 4001).
    CloseSessionEnded,
    /// Close the stream: this node is shutting down (close code 1001).
    CloseGoingAway,
}

/// One device's delivery state; see the module docs.
#[derive(Debug)]
pub(crate) struct DeliveryCursor {
    device_id: String,
    username: String,
    /// The last position pushed, per group.
    sent: HashMap<String, u64>,
    /// The groups the device is in, as of the last look in the database.
    groups: HashSet<String>,
    /// When messages announced to this stream were accepted, until the
    /// database look that pushes them.
    arrivals: HashMap<(String, u64), Instant>,
    /// Messages announced ahead of one still missing, per group.
    ahead: HashMap<String, BTreeMap<u64, (Pending, Instant, Frame)>>,
    /// When to stop waiting for the missing one.
    gap_deadline: Option<Instant>,
    /// The database must be asked before anything else is pushed.
    resync: bool,
}

impl DeliveryCursor {
    /// A stream for `device_id` of account `username`; it starts by asking
    /// the database.
    pub(crate) fn new(device_id: String, username: String) -> Self {
        DeliveryCursor {
            device_id,
            username,
            sent: HashMap::new(),
            groups: HashSet::new(),
            arrivals: HashMap::new(),
            ahead: HashMap::new(),
            gap_deadline: None,
            resync: true,
        }
    }

    /// The device this stream delivers to (hex id).
    pub(crate) fn device_id(&self) -> &str {
        &self.device_id
    }

    /// Whether the shell must look in the database before going on.
    pub(crate) fn needs_resync(&self) -> bool {
        self.resync
    }

    /// Something may have been missed (a lagging broadcast, a lost notice
    /// from another node): look in the database.
    pub(crate) fn request_resync(&mut self) {
        self.resync = true;
    }

    /// A database look begins: `groups` are the device's groups now. What
    /// was held back is forgotten, since the look covers it.
    pub(crate) fn begin_resync(&mut self, groups: impl IntoIterator<Item = String>) {
        for (group, held) in self.ahead.drain() {
            for (seq, (_, accepted, _)) in held {
                self.arrivals.insert((group.clone(), seq), accepted);
            }
        }
        self.gap_deadline = None;
        self.groups = groups.into_iter().collect();
    }

    /// Of a page of the device's pending messages, those not pushed yet.
    pub(crate) fn unsent<'p>(&self, page: &'p [Pending]) -> Vec<&'p Pending> {
        page.iter()
            .filter(|p| self.sent.get(&p.group_id).is_none_or(|s| p.seq > *s))
            .collect()
    }

    /// The highest position of `group_id` this stream pushed (every one
    /// before it was pushed too: a group's messages go in order).
    pub(crate) fn pushed_up_to(&self, group_id: &str) -> Option<u64> {
        self.sent.get(group_id).copied()
    }

    /// `p` was pushed from the database; when it was accepted, if a notice
    /// said so.
    pub(crate) fn pushed(&mut self, p: &Pending) -> Option<Instant> {
        self.sent.insert(p.group_id.clone(), p.seq);
        self.arrivals.remove(&(p.group_id.clone(), p.seq))
    }

    /// The database look is over.
    pub(crate) fn end_resync(&mut self) {
        self.resync = false;
        // Announced but not pending here (not ours, or acknowledged): forget.
        self.arrivals.clear();
    }

    /// Whether the device was in `group_id` at the last database look: a
    /// stream takes acknowledgements for those groups only.
    pub(crate) fn follows(&self, group_id: &str) -> bool {
        self.groups.contains(group_id)
    }

    /// When a held message stops waiting for the one before it.
    pub(crate) fn gap_deadline(&self) -> Option<Instant> {
        self.gap_deadline
    }

    /// The gap did not fill in time: the database knows.
    pub(crate) fn on_gap_timeout(&mut self) {
        self.resync = true;
    }

    /// What to do about `notice`, at `now` (and `now_unix_ms`, to place
    /// another node's acceptance time).
    pub(crate) fn on_notice<'n>(
        &mut self,
        notice: &'n Notice,
        now: Instant,
        now_unix_ms: u64,
    ) -> Vec<Step<'n>> {
        match notice {
            Notice::SessionEnded { device_id } if *device_id == self.device_id => {
                vec![Step::CloseSessionEnded]
            }
            Notice::DevicesChanged { username } if *username == self.username => {
                vec![Step::DevicesChanged]
            }
            // A group this device created or joined on its own: follow it.
            Notice::Joined { device_id } if *device_id == self.device_id => {
                self.resync = true;
                Vec::new()
            }
            Notice::SessionEnded { .. } | Notice::DevicesChanged { .. } | Notice::Joined { .. } => {
                Vec::new()
            }
            // Appended through another node: fetch it from the database.
            Notice::Appended {
                group_id,
                seq,
                kind,
                accepted_ms,
            } => {
                let unseen = self.sent.get(group_id).is_none_or(|s| seq > s);
                if (self.groups.contains(group_id) && unseen) || *kind == MessageKind::Welcome {
                    let age = now_unix_ms.saturating_sub(*accepted_ms);
                    let accepted = now.checked_sub(Duration::from_millis(age)).unwrap_or(now);
                    self.arrivals.insert((group_id.clone(), *seq), accepted);
                    self.resync = true;
                }
                Vec::new()
            }
            Notice::Resync => {
                self.resync = true;
                Vec::new()
            }
            Notice::GoingAway => vec![Step::CloseGoingAway],
            Notice::Message(p, accepted, frame) => self.on_message(p, *accepted, frame, now),
        }
    }

    /// The frame every stream shares for `p`, encoded here if this stream
    /// is the first to need it.
    fn shared(p: &Pending, frame: &OnceLock<Frame>) -> Frame {
        frame.get_or_init(|| frame_of(p).into()).clone()
    }

    fn on_message<'n>(
        &mut self,
        p: &'n Pending,
        accepted: Instant,
        frame: &'n OnceLock<Frame>,
        now: Instant,
    ) -> Vec<Step<'n>> {
        let last = self.sent.get(&p.group_id).copied();
        let plain = p.kind.is_plain();
        let member = self.groups.contains(&p.group_id);
        match last {
            // Already pushed (fetched meanwhile, or a repeat's notice).
            Some(last) if member && p.seq <= last => Vec::new(),
            Some(last) if member && plain && p.seq == last + 1 => {
                let mut steps = vec![Step::Push(Push {
                    message: Cow::Borrowed(p),
                    shared_frame: Some(frame),
                    held_frame: None,
                    accepted,
                })];
                self.sent.insert(p.group_id.clone(), p.seq);
                // Then whatever was held back behind it.
                let held = self.ahead.get_mut(&p.group_id);
                if let Some(held) = held {
                    let mut next = p.seq + 1;
                    while let Some((message, accepted, frame)) = held.remove(&next) {
                        steps.push(Step::Push(Push {
                            message: Cow::Owned(message),
                            shared_frame: None,
                            held_frame: Some(frame),
                            accepted,
                        }));
                        self.sent.insert(p.group_id.clone(), next);
                        next += 1;
                    }
                }
                self.ahead.retain(|_, held| !held.is_empty());
                if self.ahead.is_empty() {
                    self.gap_deadline = None;
                }
                steps
            }
            // Appends committed together are announced in no particular
            // order: hold one that came early for a moment rather than ask
            // the database.
            Some(last) if member && plain && p.seq <= last + REORDER_WINDOW => {
                self.ahead
                    .entry(p.group_id.clone())
                    .or_default()
                    .insert(p.seq, (p.clone(), accepted, Self::shared(p, frame)));
                self.gap_deadline.get_or_insert(now + REORDER_WAIT);
                Vec::new()
            }
            _ if member || p.kind == MessageKind::Welcome => {
                // Membership may have changed or we missed something: ask the database.
                self.arrivals.insert((p.group_id.clone(), p.seq), accepted);
                self.resync = true;
                Vec::new()
            }
            _ => Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ME: &str = "d1";

    fn pending(group: &str, seq: u64, kind: MessageKind) -> Pending {
        Pending {
            group_id: group.into(),
            seq,
            kind,
            payload: vec![seq as u8].into(),
        }
    }

    fn message(group: &str, seq: u64) -> Notice {
        Notice::message(
            pending(group, seq, MessageKind::Application),
            Instant::now(),
        )
    }

    /// A cursor that looked in the database and pushed `g` up to `last`.
    fn cursor_at(last: u64) -> DeliveryCursor {
        let mut cursor = DeliveryCursor::new(ME.into(), "alice".into());
        assert!(cursor.needs_resync(), "a new stream starts with a look");
        cursor.begin_resync(["g".to_owned()]);
        let page: Vec<Pending> = (1..=last)
            .map(|seq| pending("g", seq, MessageKind::Application))
            .collect();
        for p in cursor.unsent(&page) {
            assert!(cursor.pushed(p).is_none());
        }
        assert!(cursor.unsent(&page).is_empty(), "each message once");
        cursor.end_resync();
        cursor
    }

    fn pushed_seqs(steps: &[Step<'_>]) -> Vec<u64> {
        steps
            .iter()
            .map(|step| match step {
                Step::Push(push) => push.message.seq,
                other => panic!("expected only pushes, got {other:?}"),
            })
            .collect()
    }

    #[test]
    fn the_next_message_goes_out_at_once_with_the_shared_frame() {
        let mut cursor = cursor_at(3);
        let notice = message("g", 4);
        let steps = cursor.on_notice(&notice, Instant::now(), 0);
        assert_eq!(pushed_seqs(&steps), [4]);
        let Step::Push(push) = &steps[0] else {
            unreachable!()
        };
        let frame = push.frame();
        let Notice::Message(_, _, shared) = &notice else {
            unreachable!()
        };
        assert_eq!(shared.get().map(Frame::as_str), Some(frame.as_str()));
        assert!(frame.as_str().contains(r#""seq":4"#), "{frame}");
        assert!(!cursor.needs_resync());
        // Its repeat (a retry's notice) is not pushed again.
        assert!(
            cursor
                .on_notice(&message("g", 4), Instant::now(), 0)
                .is_empty()
        );
    }

    #[test]
    fn an_early_message_waits_for_the_one_before_it() {
        let mut cursor = cursor_at(3);
        let now = Instant::now();
        assert!(cursor.on_notice(&message("g", 6), now, 0).is_empty());
        assert!(cursor.on_notice(&message("g", 5), now, 0).is_empty());
        assert_eq!(cursor.gap_deadline(), Some(now + REORDER_WAIT));
        let fourth = message("g", 4);
        let steps = cursor.on_notice(&fourth, now, 0);
        assert_eq!(pushed_seqs(&steps), [4, 5, 6]);
        assert_eq!(cursor.gap_deadline(), None);
        assert!(!cursor.needs_resync());
    }

    #[test]
    fn a_gap_that_does_not_fill_sends_the_stream_to_the_database() {
        let mut cursor = cursor_at(3);
        assert!(
            cursor
                .on_notice(&message("g", 5), Instant::now(), 0)
                .is_empty()
        );
        cursor.on_gap_timeout();
        assert!(cursor.needs_resync());
        // The look covers what was held; its arrival time is kept for the
        // latency histogram.
        cursor.begin_resync(["g".to_owned()]);
        assert_eq!(cursor.gap_deadline(), None);
        let page = [
            pending("g", 4, MessageKind::Application),
            pending("g", 5, MessageKind::Application),
        ];
        assert_eq!(cursor.unsent(&page).len(), 2);
        assert!(cursor.pushed(&page[0]).is_none());
        assert!(cursor.pushed(&page[1]).is_some());
        cursor.end_resync();
        assert!(
            cursor
                .on_notice(&message("g", 5), Instant::now(), 0)
                .is_empty()
        );
    }

    #[test]
    fn a_message_far_ahead_or_a_commit_goes_to_the_database() {
        let mut cursor = cursor_at(3);
        assert!(
            cursor
                .on_notice(&message("g", 3 + 1 + REORDER_WINDOW), Instant::now(), 0)
                .is_empty()
        );
        assert!(cursor.needs_resync());

        let mut cursor = cursor_at(3);
        let commit = Notice::message(pending("g", 4, MessageKind::Commit), Instant::now());
        assert!(cursor.on_notice(&commit, Instant::now(), 0).is_empty());
        assert!(cursor.needs_resync(), "membership may have changed");
    }

    #[test]
    fn other_groups_concern_the_stream_only_through_a_welcome() {
        let mut cursor = cursor_at(3);
        assert!(
            cursor
                .on_notice(&message("other", 1), Instant::now(), 0)
                .is_empty()
        );
        assert!(!cursor.needs_resync());
        let welcome = Notice::message(pending("other", 1, MessageKind::Welcome), Instant::now());
        assert!(cursor.on_notice(&welcome, Instant::now(), 0).is_empty());
        assert!(cursor.needs_resync());
    }

    #[test]
    fn session_and_device_notices_concern_their_own_device_and_account() {
        let mut cursor = cursor_at(0);
        let theirs = Notice::SessionEnded {
            device_id: "d2".into(),
        };
        assert!(cursor.on_notice(&theirs, Instant::now(), 0).is_empty());
        let mine = Notice::SessionEnded {
            device_id: ME.into(),
        };
        assert!(matches!(
            cursor.on_notice(&mine, Instant::now(), 0)[..],
            [Step::CloseSessionEnded]
        ));
        let bobs = Notice::DevicesChanged {
            username: "bob".into(),
        };
        assert!(cursor.on_notice(&bobs, Instant::now(), 0).is_empty());
        let alices = Notice::DevicesChanged {
            username: "alice".into(),
        };
        assert!(matches!(
            cursor.on_notice(&alices, Instant::now(), 0)[..],
            [Step::DevicesChanged]
        ));
        assert!(matches!(
            cursor.on_notice(&Notice::GoingAway, Instant::now(), 0)[..],
            [Step::CloseGoingAway]
        ));
        let joined = Notice::Joined {
            device_id: ME.into(),
        };
        assert!(cursor.on_notice(&joined, Instant::now(), 0).is_empty());
        assert!(
            cursor.needs_resync(),
            "a group joined without a Welcome is followed"
        );
    }

    #[test]
    fn a_stream_follows_only_the_groups_the_database_named() {
        let cursor = cursor_at(0);
        assert!(cursor.follows("g"));
        assert!(!cursor.follows("made-up"));
    }

    #[test]
    fn another_nodes_append_is_fetched_and_timed_from_its_acceptance() {
        let mut cursor = cursor_at(3);
        let now = Instant::now();
        let appended = Notice::Appended {
            group_id: "g".into(),
            seq: 4,
            kind: MessageKind::Application,
            accepted_ms: 10_000,
        };
        assert!(cursor.on_notice(&appended, now, 10_250).is_empty());
        assert!(cursor.needs_resync());
        cursor.begin_resync(["g".to_owned()]);
        let accepted = cursor.pushed(&pending("g", 4, MessageKind::Application));
        assert_eq!(accepted, now.checked_sub(Duration::from_millis(250)));
        // One already pushed is not fetched again.
        cursor.end_resync();
        assert!(cursor.on_notice(&appended, now, 10_250).is_empty());
        assert!(!cursor.needs_resync());
    }
}
