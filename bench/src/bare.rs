//! Bare baselines inside the benchmark's process: an axum server over the
//! same TLS as the relay's (rustls, TLS 1.3, ring), with no storage, no
//! signatures and no checks, reached through client-core's own transport.
//!
//! - [`broadcast`]: `POST /send` hands the body, as it is, to every open
//!   `GET /v1/stream` WebSocket; streams write what is ready in one flush,
//!   as the relay's do, and read (and drop) what their devices send.
//! - [`echo`]: `POST /echo` answers with the body: one TLS round trip.

use std::sync::Arc;

use axum::extract::State;
use axum::extract::ws::{Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::routing::{get, post};
use conclave_client::{HttpsTransport, ServerTrust};
use futures_util::SinkExt;
use tokio::sync::broadcast;

/// Frames a stream writes before it flushes, as the relay's streams drain
/// what is ready.
const MAX_DRAINED: usize = 64;

/// A bare server, serving until the process ends, and a transport to it.
pub struct Bare {
    pub transport: HttpsTransport,
}

/// Serves `app` over TLS on a loopback port, with a fresh self-signed
/// certificate the transport pins.
pub fn serve(app: axum::Router) -> Bare {
    let certified = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()]).unwrap();
    let cert_der = certified.cert.der().clone();
    let key =
        rustls::pki_types::PrivateKeyDer::try_from(certified.signing_key.serialize_der()).unwrap();
    let tls = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_protocol_versions(&[&rustls::version::TLS13])
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(vec![cert_der.clone()], key)
    .unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let url = format!("https://{}", listener.local_addr().unwrap());
    let config = axum_server::tls_rustls::RustlsConfig::from_config(Arc::new(tls));
    // TCP_NODELAY, as the relay sets it.
    let acceptor = axum_server::tls_rustls::RustlsAcceptor::new(config)
        .acceptor(axum_server::accept::NoDelayAcceptor::new());
    tokio::spawn(
        axum_server::from_tcp(listener)
            .unwrap()
            .acceptor(acceptor)
            .serve(app.into_make_service()),
    );
    let pin: [u8; 32] = {
        use sha2::Digest;
        sha2::Sha256::digest(&cert_der).into()
    };
    Bare {
        transport: HttpsTransport::new(&url, ServerTrust::PinSha256(pin)).unwrap(),
    }
}

/// The broadcast: every body posted to `/send` goes to every open stream.
pub fn broadcast() -> axum::Router {
    let (tx, _) = broadcast::channel::<Utf8Bytes>(65536);
    axum::Router::new()
        .route(
            "/send",
            post(
                |State(tx): State<broadcast::Sender<Utf8Bytes>>, body: String| async move {
                    let _ = tx.send(body.into());
                    "{}"
                },
            ),
        )
        .route(
            "/v1/stream",
            get(
                |State(tx): State<broadcast::Sender<Utf8Bytes>>, ws: WebSocketUpgrade| async move {
                    let rx = tx.subscribe();
                    ws.read_buffer_size(8192)
                        .on_upgrade(move |socket| stream(socket, rx))
                },
            ),
        )
        .with_state(tx)
}

/// One stream: writes every frame that is ready, then flushes once; reads
/// and drops what the device sends.
async fn stream(mut socket: WebSocket, mut rx: broadcast::Receiver<Utf8Bytes>) {
    loop {
        tokio::select! {
            frame = rx.recv() => {
                let mut next = match frame {
                    Ok(frame) => Some(frame),
                    // Lost frames show as missing deliveries.
                    Err(broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(broadcast::error::RecvError::Closed) => return,
                };
                let mut drained = 0;
                while let Some(frame) = next.take() {
                    if socket.feed(Message::Text(frame)).await.is_err() {
                        return;
                    }
                    drained += 1;
                    if drained < MAX_DRAINED {
                        next = rx.try_recv().ok();
                    }
                }
                if socket.flush().await.is_err() {
                    return;
                }
            }
            incoming = socket.recv() => match incoming {
                Some(Ok(_)) => {}
                _ => return,
            },
        }
    }
}

/// The echo: `/echo` answers with the body it was sent.
pub fn echo() -> axum::Router {
    axum::Router::new().route("/echo", post(|body: axum::body::Bytes| async move { body }))
}
