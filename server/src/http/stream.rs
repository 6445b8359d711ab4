//! `GET /v1/stream`: a device's push stream, a WebSocket of
//! [`StreamFrame`]s. This file is the shell: the socket, the database and
//! the timers. What to push, in which order, and when to look in the
//! database is decided by [`DeliveryCursor`].
//!
//! The socket carries the same JSON objects as `GET /v1/messages`, plus
//! `{"kind":"devices_changed"}` when the account's device list changed; the
//! device acknowledges with [`AckBody`] frames or over HTTP. The stream is
//! closed (code 4001) the moment the device is revoked or its session ends.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::response::Response;
use conclave_proto::{AckBody, StreamFrame};
use futures_util::SinkExt;
use tokio::sync::broadcast;
use tokio::time::Instant;

use crate::AppState;
use crate::auth::{Signed, idle_clock_due, session_problem};
use crate::error::{ApiError, ApiResult};
use crate::metrics::METRICS;
use crate::relay::Notice;
use crate::relay::delivery::{DeliveryCursor, Step, encode_frame, frame_of};
use crate::relay::pending::FETCH_LIMIT;
use crate::store::{Ack, StoreError};

/// How often an open stream pings its client, so that a client whose node
/// vanished without a word (power cut, partition) notices within
/// `conclave_client`'s silence limit and moves to another node, and so that
/// load balancers see traffic on an idle connection.
const HEARTBEAT: Duration = Duration::from_secs(20);

/// What a stream's read buffer starts at: it only ever reads acknowledgements
/// of a few dozen bytes, and grows on demand for a longer one. (tungstenite
/// allocates it whole up front, per connection: at 8 KiB, most of an idle
/// stream's memory.)
const READ_BUFFER: usize = 512;

/// The largest frame a device may send: acknowledgements for about a
/// thousand groups. A longer one closes the stream (tungstenite refuses it
/// before it is buffered whole), so no device can make the relay hold
/// megabytes per frame (the default is 64 MiB).
const MAX_INCOMING_FRAME: usize = 64 * 1024;

/// WebSocket close code for "your session is over" (private-use range).
const CLOSE_SESSION_ENDED: u16 = 4001;

/// "Going away" (RFC 6455 §7.4.1): this node is shutting down; the client
/// should reconnect, to another node, at once.
const CLOSE_GOING_AWAY: u16 = 1001;

pub(crate) async fn stream(
    State(state): State<AppState>,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
    signed: Signed,
) -> ApiResult<Response> {
    let user = signed.username()?.to_owned();
    let ws = ws.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let opened = Box::new(OpenedStream {
        notifications: state.notifier.subscribe(),
        cursor: DeliveryCursor::new(signed.device_id.to_string(), user),
        state,
    });
    Ok(ws
        .read_buffer_size(READ_BUFFER)
        .max_message_size(MAX_INCOMING_FRAME)
        .max_frame_size(MAX_INCOMING_FRAME)
        .on_upgrade(move |socket| push_messages(opened, socket)))
}

/// Why a stream ended other than by a close: logged at debug level, as a
/// stream's end is the client's business.
#[derive(Debug, thiserror::Error)]
enum StreamError {
    /// The socket failed (the client went away, a write timed out).
    #[error("socket: {0}")]
    Socket(#[from] axum::Error),
    /// The store could not be read.
    #[error("store: {0}")]
    Store(#[from] StoreError),
    /// The client sent a frame that is not an acknowledgement.
    #[error("bad frame: {0}")]
    BadFrame(#[from] serde_json::Error),
}

/// How often a stream re-checks its device's session, for lifetimes that run
/// out while it is open and revocations made on another node:
/// At most every 30 s, and at least twice per idle timeout.
fn session_recheck(config: &crate::Config) -> Duration {
    Duration::from_secs((config.session_idle_timeout / 2).clamp(1, 30))
}

/// Pushes what the database holds for the device and the cursor has not
/// pushed, page by page. Each page goes on from the one before, past what
/// the stream pushed in its last group: the device's acknowledged
/// position, where the database starts, is written only once a second, so
/// on a busy channel the first hundreds of messages after it are ones the
/// stream pushed already, and a missing one lies beyond them.
async fn resync(
    state: &AppState,
    device_key: &str,
    cursor: &mut DeliveryCursor,
    socket: &mut WebSocket,
) -> Result<(), StreamError> {
    let groups = state.store.groups_of(device_key).await?;
    cursor.begin_resync(groups);
    let mut after: Option<(String, u64)> = None;
    loop {
        let page = state
            .store
            .pending_after(
                device_key,
                after.as_ref().map(|(group, seq)| (group.as_str(), *seq)),
                FETCH_LIMIT,
            )
            .await?;
        let last_page = page.len() < FETCH_LIMIT as usize;
        if let Some(last) = page.last() {
            let pushed = cursor.pushed_up_to(&last.group_id).unwrap_or(0);
            after = Some((last.group_id.clone(), last.seq.max(pushed)));
        }
        for p in cursor.unsent(&page) {
            send_text(socket, &frame_of(p)).await?;
            if let Some(accepted) = cursor.pushed(p) {
                METRICS
                    .delivery_latency
                    .observe(accepted.elapsed().as_secs_f64());
            }
        }
        if last_page {
            break;
        }
    }
    cursor.end_resync();
    Ok(())
}

/// What a stream needs once its socket is open. It travels boxed, so that
/// the upgrade's callback, which every stream's task keeps for as long as
/// the stream is open, holds a pointer and not a second copy of it.
struct OpenedStream {
    state: AppState,
    cursor: DeliveryCursor,
    notifications: broadcast::Receiver<Arc<Notice>>,
}

/// Serves one stream until it ends; why it ended, if not by a close, is
/// logged at debug level (a stream's end is the client's business).
///
/// Every open stream's task is this future, so its size is most of an idle
/// stream's memory. It is a plain function returning an `async move` block
/// on purpose: an `async fn` keeps each argument twice (as passed, and
/// moved into its body), and so would an async block that moves them in
/// again. Here each value is stored once, and the loop borrows it.
fn push_messages(
    opened: Box<OpenedStream>,
    mut socket: WebSocket,
) -> impl Future<Output = ()> + Send + 'static {
    let OpenedStream {
        state,
        mut cursor,
        mut notifications,
    } = *opened;
    async move {
        if let Err(e) = serve_stream(&state, &mut cursor, &mut socket, &mut notifications).await {
            tracing::debug!(device = cursor.device_id(), error = %e, "stream closed");
        }
    }
}

async fn serve_stream(
    state: &AppState,
    cursor: &mut DeliveryCursor,
    socket: &mut WebSocket,
    notifications: &mut broadcast::Receiver<Arc<Notice>>,
) -> Result<(), StreamError> {
    let device_key = cursor.device_id().to_owned();
    let _counted = crate::metrics::OpenStream::new();
    // One timer per stream, set to whichever comes first: the heartbeat,
    // the session re-check, or the end of a wait for a missing message.
    // (Three timers, rebuilt on every turn of the loop, cost a thousand
    // streams more than their deliveries.)
    let recheck_every = session_recheck(&state.config);
    let mut next_heartbeat = Instant::now() + HEARTBEAT;
    let mut next_recheck = Instant::now() + recheck_every;
    let timer = tokio::time::sleep_until(next_heartbeat.min(next_recheck));
    tokio::pin!(timer);
    // Every stream's task holds this future for as long as the stream is
    // open, sized for its largest state: the database calls a stream makes
    // now and then (a resync, the session re-check) are boxed, so that an
    // idle stream does not carry their room.
    loop {
        if cursor.needs_resync() {
            Box::pin(resync(state, &device_key, cursor, socket)).await?;
        }
        let gap_deadline = cursor.gap_deadline().map(Instant::from_std);
        let due = gap_deadline
            .map_or(next_heartbeat, |gap| gap.min(next_heartbeat))
            .min(next_recheck);
        if timer.deadline() != due {
            timer.as_mut().reset(due);
        }
        tokio::select! {
            note = notifications.recv() => match note {
                Ok(notice) => {
                    if let Some(close_with) = push_ready(cursor, socket, notifications, notice).await? {
                        let (code, reason) = close_with;
                        return Box::pin(close(socket, code, reason)).await;
                    }
                }
                Err(broadcast::error::RecvError::Lagged(_)) => cursor.request_resync(),
                Err(broadcast::error::RecvError::Closed) => return Ok(()),
            },
            () = &mut timer => {
                let now = Instant::now();
                // A gap that did not fill in time: the database knows.
                if gap_deadline.is_some_and(|gap| gap <= now) {
                    cursor.on_gap_timeout();
                }
                if next_heartbeat <= now {
                    next_heartbeat = now + HEARTBEAT;
                    socket.send(Message::Ping(Default::default())).await?;
                }
                if next_recheck <= now {
                    next_recheck = now + recheck_every;
                    // A notice from another node may have been lost: look anyway.
                    // (One node alone loses none: its broadcast reports lag.)
                    if state.notifier.shared_database() {
                        cursor.request_resync();
                    }
                    let session = Box::pin(state.store.device_session(&device_key)).await?;
                    let Some(session) = session.filter(|s| session_problem(s, &state.config).is_none()) else {
                        return Box::pin(close(socket, CLOSE_SESSION_ENDED, "session ended")).await;
                    };
                    // A device that holds its stream open is in use, even if it
                    // sends no other request: keep its idle clock from running out.
                    if idle_clock_due(session.last_seen_at, &state.config) {
                        Box::pin(state.store.touch_device(&device_key)).await?;
                    }
                }
            },
            incoming = socket.recv() => match incoming {
                Some(Ok(Message::Text(text))) => {
                    let body: AckBody = serde_json::from_str(text.as_str())?;
                    // One writer gathers every stream's acknowledgements. Only
                    // groups this stream delivers count, once each: a device
                    // naming made-up groups by the thousand, or one group
                    // a thousand times, fills no memory there.
                    let mut highest: std::collections::BTreeMap<String, u64> = Default::default();
                    for ack in body.acks.into_iter().filter(|ack| cursor.follows(&ack.group_id)) {
                        let seq = highest.entry(ack.group_id).or_default();
                        *seq = (*seq).max(ack.seq);
                    }
                    state.acks.submit(
                        highest
                            .into_iter()
                            .map(|(group_id, seq)| Ack { device_id: device_key.clone(), group_id, seq })
                            .collect(),
                    ).await;
                }
                Some(Ok(Message::Close(_))) | None => return Ok(()),
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(e.into()),
            },
        }
    }
}

/// Most notices a stream takes in one go before it writes what they gave.
const MAX_DRAINED: usize = 64;

/// Carries out what `notice`, and every notice already waiting behind it,
/// asks of the stream, and writes the frames at once: one flush (one TLS
/// record write) for a burst, not one per message. `Some` close code and
/// reason if the stream must close.
async fn push_ready(
    cursor: &mut DeliveryCursor,
    socket: &mut WebSocket,
    notifications: &mut broadcast::Receiver<Arc<Notice>>,
    first: Arc<Notice>,
) -> Result<Option<(u16, &'static str)>, StreamError> {
    // Latency is measured on the system's clock, as the node that accepted a
    // message stamped it, whatever clock the relay's policies read.
    let latency_clock = crate::Clock::system();
    let mut next = Some(first);
    let mut drained = 0;
    while let Some(notice) = next.take() {
        for step in cursor.on_notice(
            &notice,
            std::time::Instant::now(),
            latency_clock.unix_millis(),
        ) {
            let frame = match step {
                Step::Push(push) => {
                    METRICS
                        .delivery_latency
                        .observe(push.accepted.elapsed().as_secs_f64());
                    METRICS.delivered.inc();
                    push.frame()
                }
                Step::DevicesChanged => encode_frame(&StreamFrame::DevicesChanged).into(),
                Step::CloseSessionEnded => return Ok(Some((CLOSE_SESSION_ENDED, "session ended"))),
                Step::CloseGoingAway => {
                    return Ok(Some((CLOSE_GOING_AWAY, "relay node shutting down")));
                }
            };
            socket.feed(Message::Text(frame)).await?;
        }
        drained += 1;
        if drained < MAX_DRAINED && !cursor.needs_resync() {
            match notifications.try_recv() {
                Ok(notice) => next = Some(notice),
                Err(broadcast::error::TryRecvError::Lagged(_)) => cursor.request_resync(),
                // Nothing waiting, or the sender gone (the next recv says so).
                Err(_) => {}
            }
        }
    }
    socket.flush().await?;
    Ok(None)
}

async fn close(socket: &mut WebSocket, code: u16, reason: &'static str) -> Result<(), StreamError> {
    let frame = axum::extract::ws::CloseFrame {
        code,
        reason: reason.into(),
    };
    socket.send(Message::Close(Some(frame))).await?;
    Ok(())
}

async fn send_text(socket: &mut WebSocket, text: &str) -> Result<(), StreamError> {
    socket.send(Message::Text(text.into())).await?;
    METRICS.delivered.inc();
    Ok(())
}
