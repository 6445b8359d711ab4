//! How client-core reaches a relay. The client signs requests itself; a
//! transport only moves bytes, so tests can run the relay in-process.

use std::future::Future;
use std::pin::Pin;

use conclave_crypto::{DeviceKey, RequestSigner};

/// A boxed, sendable future (what the transport traits return).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// One HTTP request.
#[derive(Debug, Clone)]
pub struct HttpRequest {
    /// `GET`, `POST`, …
    pub method: &'static str,
    /// Path and query, e.g. `/v1/messages?limit=100`.
    pub path: String,
    /// Extra headers (the request signature).
    pub headers: Vec<(&'static str, String)>,
    /// The body.
    pub body: Vec<u8>,
}

impl HttpRequest {
    /// A request signed by `key` now, over exactly `body` (see
    /// `conclave_crypto::canonical_request`).
    pub fn signed(key: &DeviceKey, method: &'static str, path: &str, body: Vec<u8>) -> Self {
        let headers = RequestSigner::new(key)
            .sign(method, path, &body, unix_now())
            .to_pairs()
            .to_vec();
        Self {
            method,
            path: path.to_owned(),
            headers,
            body,
        }
    }
}

/// Seconds since the Unix epoch, as request timestamps count them.
pub(crate) fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// One HTTP response.
#[derive(Debug, Clone)]
pub struct HttpResponse {
    /// Status code.
    pub status: u16,
    /// Body bytes.
    pub body: Vec<u8>,
}

/// Transport failures: the relay could not be reached or the stream broke.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct TransportError(pub String);

/// Moves requests to a relay.
pub trait Transport: Send + Sync + 'static {
    /// Sends one request and waits for its response.
    fn send(&self, request: HttpRequest) -> BoxFuture<'_, Result<HttpResponse, TransportError>>;

    /// Opens the push stream (`GET /v1/stream`, signed like any request).
    fn open_stream(
        &self,
        request: HttpRequest,
    ) -> BoxFuture<'_, Result<Box<dyn PushStream>, TransportError>>;
}

/// A relay's push channel: JSON frames in, acknowledgement frames out.
pub trait PushStream: Send {
    /// The next frame, or `None` when the relay closed the stream.
    fn next_frame(&mut self) -> BoxFuture<'_, Option<Result<String, TransportError>>>;
    /// The next frame and, without waiting, up to `limit - 1` more that have
    /// already arrived; `None` when the relay closed the stream. A reader
    /// that answers each burst with one cumulative acknowledgement sends
    /// (and has the relay read) one frame where it would send several.
    /// The default takes one frame at a time. Dropped before it completes,
    /// it must lose no frame: [`AckPacer`](crate::AckPacer) waits on it
    /// with a deadline, and reads again after sending what fell due.
    fn next_frames(
        &mut self,
        limit: usize,
    ) -> BoxFuture<'_, Option<Result<Vec<String>, TransportError>>> {
        let _ = limit;
        Box::pin(async move { Some(self.next_frame().await?.map(|frame| vec![frame])) })
    }
    /// Sends a frame to the relay.
    fn send_frame(&mut self, text: String) -> BoxFuture<'_, Result<(), TransportError>>;
}
