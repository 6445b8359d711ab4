//! Acknowledging what a push stream delivered, at a pace the relay can use.
//!
//! An acknowledgement is cumulative (a channel's position covers every
//! message before it) and the relay writes the positions it gets at most
//! once a second per node (its acknowledgement writer), so acknowledging
//! each burst of a busy stream spends a TLS record and a system call on
//! each side, and a read and a parse on the relay's, for nothing more
//! durable. [`AckPacer`] answers a stream's first message at once, as
//! before, and a busy stream at most every [`AckPacer::INTERVAL`]: one
//! frame for everything read since. Nothing is lost by waiting: what a
//! device has not acknowledged when its stream breaks is pushed again when
//! it reconnects, and it drops what it already has by position.

use std::collections::BTreeMap;
use std::time::Duration;

use conclave_proto::{Ack, AckBody, Delivered};
use tokio::time::Instant;

use crate::transport::{PushStream, TransportError};

/// The acknowledgement a reader of a push stream owes, and when it is due.
///
/// ```
/// # async fn read(stream: &mut dyn conclave_client::PushStream) -> Result<(), conclave_client::TransportError> {
/// use conclave_client::AckPacer;
/// use conclave_proto::StreamFrame;
///
/// let mut acks = AckPacer::new();
/// // Frames as they arrive; an acknowledgement that falls due while this
/// // waits is sent meanwhile.
/// while let Some(frames) = acks.next_frames(stream, 64).await {
///     for frame in frames? {
///         if let Ok(StreamFrame::Message(delivered)) = serde_json::from_str(&frame) {
///             // … apply `delivered`, then:
///             acks.note(&delivered);
///         }
///     }
///     acks.send_if_due(stream).await?;
/// }
/// # Ok(()) }
/// ```
#[derive(Debug, Default)]
pub struct AckPacer {
    /// The highest position read per channel, not yet acknowledged.
    owed: BTreeMap<String, u64>,
    /// When the last acknowledgement left.
    last_sent: Option<Instant>,
}

impl AckPacer {
    /// The shortest time between two acknowledgements on one stream: well
    /// under the relay's own second between writes of what it was told.
    pub const INTERVAL: Duration = Duration::from_millis(100);

    /// Nothing owed yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Notes a message read (and applied): it is owed an acknowledgement.
    pub fn note(&mut self, delivered: &Delivered) {
        // The channel's id is copied only the first time it is owed.
        match self.owed.get_mut(&delivered.group_id) {
            Some(seq) => *seq = (*seq).max(delivered.seq),
            None => {
                self.owed.insert(delivered.group_id.clone(), delivered.seq);
            }
        }
    }

    /// When the acknowledgement owed is due: at once if none was sent in
    /// the last [`Self::INTERVAL`]; `None` when nothing is owed.
    pub fn due(&self) -> Option<Instant> {
        if self.owed.is_empty() {
            return None;
        }
        Some(match self.last_sent {
            Some(at) => at + Self::INTERVAL,
            None => Instant::now(),
        })
    }

    /// The acknowledgement owed, if any, as the frame to send; from now on
    /// it counts as sent.
    pub fn take_frame(&mut self) -> Option<String> {
        if self.owed.is_empty() {
            return None;
        }
        let body = AckBody {
            acks: std::mem::take(&mut self.owed)
                .into_iter()
                .map(|(group_id, seq)| Ack { group_id, seq })
                .collect(),
        };
        self.last_sent = Some(Instant::now());
        // Strings and numbers always serialize; were it ever to fail, the
        // messages would only be pushed again after a reconnect.
        serde_json::to_string(&body).ok()
    }

    /// Sends the acknowledgement owed if it is due now.
    pub async fn send_if_due(&mut self, stream: &mut dyn PushStream) -> Result<(), TransportError> {
        if self.due().is_some_and(|due| due <= Instant::now()) {
            self.send(stream).await?;
        }
        Ok(())
    }

    /// The next frames of `stream` (see [`PushStream::next_frames`]); the
    /// acknowledgement owed is sent when it falls due while this waits.
    pub async fn next_frames(
        &mut self,
        stream: &mut dyn PushStream,
        limit: usize,
    ) -> Option<Result<Vec<String>, TransportError>> {
        loop {
            let Some(due) = self.due() else {
                return stream.next_frames(limit).await;
            };
            match tokio::time::timeout_at(due, stream.next_frames(limit)).await {
                Ok(frames) => return frames,
                // Due: reading loses nothing by being dropped (see
                // `PushStream::next_frames`).
                Err(_) => {
                    if let Err(e) = self.send(stream).await {
                        return Some(Err(e));
                    }
                }
            }
        }
    }

    async fn send(&mut self, stream: &mut dyn PushStream) -> Result<(), TransportError> {
        match self.take_frame() {
            Some(frame) => stream.send_frame(frame).await,
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn delivered(group_id: &str, seq: u64) -> Delivered {
        Delivered {
            group_id: group_id.into(),
            seq,
            kind: conclave_proto::MessageKind::Application,
            payload: String::new(),
        }
    }

    #[test]
    fn the_first_is_due_at_once_and_a_busy_stream_every_interval() {
        let mut acks = AckPacer::new();
        assert_eq!(acks.due(), None, "nothing read, nothing owed");
        acks.note(&delivered("g1", 4));
        assert!(acks.due().unwrap() <= Instant::now());
        let before = Instant::now();
        let first = acks.take_frame().unwrap();
        let after = Instant::now();
        assert_eq!(acks.take_frame(), None, "owed once");

        acks.note(&delivered("g2", 9));
        acks.note(&delivered("g1", 6));
        acks.note(&delivered("g1", 5));
        let due = acks.due().unwrap();
        assert!(
            before + AckPacer::INTERVAL <= due && due <= after + AckPacer::INTERVAL,
            "a busy stream's next acknowledgement waits an interval after the last"
        );
        let second: AckBody = serde_json::from_str(&acks.take_frame().unwrap()).unwrap();
        let positions: Vec<(&str, u64)> = second
            .acks
            .iter()
            .map(|a| (a.group_id.as_str(), a.seq))
            .collect();
        assert_eq!(
            positions,
            [("g1", 6), ("g2", 9)],
            "the highest of each channel"
        );
        let first: AckBody = serde_json::from_str(&first).unwrap();
        assert_eq!(first.acks[0].seq, 4);
    }

    /// A push stream whose frames come from a channel and whose sent
    /// frames are kept, with when they left.
    struct Scripted {
        incoming: tokio::sync::mpsc::UnboundedReceiver<String>,
        sent: std::sync::Arc<std::sync::Mutex<Vec<(Instant, String)>>>,
    }

    impl PushStream for Scripted {
        fn next_frame(&mut self) -> crate::BoxFuture<'_, Option<Result<String, TransportError>>> {
            Box::pin(async move { self.incoming.recv().await.map(Ok) })
        }

        fn send_frame(&mut self, text: String) -> crate::BoxFuture<'_, Result<(), TransportError>> {
            self.sent.lock().unwrap().push((Instant::now(), text));
            Box::pin(async { Ok(()) })
        }
    }

    #[tokio::test]
    async fn an_acknowledgement_held_back_leaves_while_the_stream_is_quiet() {
        let (frames, incoming) = tokio::sync::mpsc::unbounded_channel();
        let sent = std::sync::Arc::default();
        let mut stream = Scripted {
            incoming,
            sent: std::sync::Arc::clone(&sent),
        };
        let mut acks = AckPacer::new();
        acks.note(&delivered("g", 1));
        acks.send_if_due(&mut stream).await.unwrap();
        assert_eq!(sent.lock().unwrap().len(), 1, "the first leaves at once");
        acks.note(&delivered("g", 2));
        acks.send_if_due(&mut stream).await.unwrap();
        assert_eq!(sent.lock().unwrap().len(), 1, "the second waits");

        // Nothing arrives for three intervals: the held acknowledgement
        // leaves on time, and the read goes on until a frame comes.
        tokio::spawn(async move {
            tokio::time::sleep(3 * AckPacer::INTERVAL).await;
            frames.send("next".to_owned()).unwrap();
        });
        let read = acks.next_frames(&mut stream, 8).await.unwrap().unwrap();
        assert_eq!(read, ["next"]);
        let sent = sent.lock().unwrap();
        assert_eq!(sent.len(), 2, "{sent:?}");
        let waited = sent[1].0 - sent[0].0;
        assert!(
            waited >= AckPacer::INTERVAL,
            "sent {waited:?} after the first"
        );
        let body: AckBody = serde_json::from_str(&sent[1].1).unwrap();
        assert_eq!(body.acks[0].seq, 2);
        assert_eq!(acks.due(), None, "nothing owed after it");
    }
}
