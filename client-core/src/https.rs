//! The real transport: HTTPS and WebSocket over rustls, TLS 1.3 only, with a
//! server certificate trusted through a CA file or a SHA-256 pin. There is no
//! way to turn verification off.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use futures_util::{SinkExt, StreamExt};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, verify_tls13_signature};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use subtle::ConstantTimeEq;
use tokio_tungstenite::tungstenite;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::transport::{
    BoxFuture, HttpRequest, HttpResponse, PushStream, Transport, TransportError,
};

/// How the client decides to trust the relay's certificate.
#[derive(Debug, Clone)]
pub enum ServerTrust {
    /// Certificates (PEM) to use as trust anchors, e.g. the relay's self-signed one.
    CaCertificates(Vec<CertificateDer<'static>>),
    /// The hex SHA-256 of the relay's leaf certificate.
    PinSha256([u8; 32]),
}

impl ServerTrust {
    /// Reads a PEM file of trusted certificates.
    pub fn ca_file(path: &Path) -> Result<Self, TransportError> {
        let certs: Vec<_> = CertificateDer::pem_file_iter(path)
            .and_then(|it| it.collect::<Result<Vec<_>, _>>())
            .map_err(|e| {
                TransportError(format!(
                    "cannot read CA certificate {}: {e}",
                    path.display()
                ))
            })?;
        if certs.is_empty() {
            return Err(TransportError(format!(
                "no certificate in {}",
                path.display()
            )));
        }
        Ok(Self::CaCertificates(certs))
    }

    /// Parses a hex SHA-256 pin (colons allowed, as browsers print them).
    pub fn pin(hex_pin: &str) -> Result<Self, TransportError> {
        let cleaned: String = hex_pin
            .chars()
            .filter(|c| *c != ':')
            .collect::<String>()
            .to_ascii_lowercase();
        let mut pin = [0u8; 32];
        hex::decode_to_slice(&cleaned, &mut pin)
            .map_err(|_| TransportError("--pin-sha256 must be 64 hex characters".into()))?;
        Ok(Self::PinSha256(pin))
    }
}

/// HTTPS + WebSocket transport to a relay, served by one node or several.
///
/// With several nodes (`https://a:8443,https://b:8443`) it starts with the
/// first and keeps to the one that answered last, and moves to the next when a node cannot be reached:
/// a request whose connection failed never reached a node, so it is safe to
/// send it to another one; a push stream moves the same way.
#[derive(Debug, Clone)]
pub struct HttpsTransport {
    nodes: Arc<[Node]>,
    /// The node that answered last.
    preferred: Arc<AtomicUsize>,
    http: reqwest::Client,
    tls: Arc<ClientConfig>,
}

#[derive(Debug)]
struct Node {
    base: String,
    host: String,
    port: u16,
}

impl Node {
    fn parse(server_url: &str) -> Result<Self, TransportError> {
        let url = reqwest::Url::parse(server_url)
            .map_err(|e| TransportError(format!("invalid server URL {server_url:?}: {e}")))?;
        if url.scheme() != "https" {
            return Err(TransportError(format!(
                "server URL must start with https://, got {server_url:?}"
            )));
        }
        let host = url
            .host_str()
            .ok_or_else(|| TransportError("server URL has no host".into()))?
            .trim_matches(['[', ']'])
            .to_owned();
        let port = url.port_or_known_default().unwrap_or(443);
        Ok(Self {
            base: server_url.trim_end_matches('/').to_owned(),
            host,
            port,
        })
    }
}

impl HttpsTransport {
    /// A transport for `server_url` (`https://host:port`), or for several
    /// nodes of one relay, comma-separated, all trusted the same way.
    pub fn new(server_url: &str, trust: ServerTrust) -> Result<Self, TransportError> {
        let nodes = server_url
            .split(',')
            .map(str::trim)
            .filter(|url| !url.is_empty())
            .map(Node::parse)
            .collect::<Result<Vec<_>, _>>()?;
        if nodes.is_empty() {
            return Err(TransportError("no server URL given".into()));
        }
        let tls = Arc::new(client_config(trust)?);
        let http = reqwest::Client::builder()
            .use_preconfigured_tls((*tls).clone())
            .timeout(std::time::Duration::from_secs(30))
            .build()
            .map_err(|e| TransportError(format!("HTTP client: {e}")))?;
        Ok(Self {
            nodes: nodes.into(),
            // The first node listed, until it fails.
            preferred: Arc::new(AtomicUsize::new(0)),
            http,
            tls,
        })
    }

    /// The nodes to try, the preferred one first.
    fn in_order(&self) -> impl Iterator<Item = (usize, &Node)> {
        let count = self.nodes.len();
        let first = self.preferred.load(Ordering::Relaxed) % count;
        (0..count).map(move |i| {
            let index = (first + i) % count;
            (index, &self.nodes[index])
        })
    }
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn client_config(trust: ServerTrust) -> Result<ClientConfig, TransportError> {
    let builder = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| TransportError(format!("TLS setup: {e}")))?;
    let config = match trust {
        ServerTrust::CaCertificates(certs) => {
            let mut roots = RootCertStore::empty();
            for cert in certs {
                roots
                    .add(cert)
                    .map_err(|e| TransportError(format!("bad CA certificate: {e}")))?;
            }
            builder.with_root_certificates(roots).with_no_client_auth()
        }
        ServerTrust::PinSha256(pin) => builder
            .dangerous() // a custom verifier, not a disabled one: it checks the pin and the handshake signature
            .with_custom_certificate_verifier(Arc::new(PinnedCertificate {
                pin,
                provider: provider(),
            }))
            .with_no_client_auth(),
    };
    Ok(config)
}

/// Accepts exactly the certificate whose SHA-256 is pinned.
#[derive(Debug)]
struct PinnedCertificate {
    pin: [u8; 32],
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for PinnedCertificate {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        use sha2::Digest;
        let seen: [u8; 32] = sha2::Sha256::digest(end_entity).into();
        if bool::from(seen.ct_eq(&self.pin)) {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::General(format!(
                "{PIN_MISMATCH} {}",
                hex::encode(seen)
            )))
        }
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Err(rustls::Error::General("TLS 1.2 is not accepted".into()))
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// How the pin verifier's refusal starts, so that the transport can tell a
/// relay that answered with another certificate from one it could not reach.
const PIN_MISMATCH: &str = "certificate does not match the pin; it has SHA-256";

/// Why a request reached no answer from `base`: a certificate that is not
/// the pinned one is said plainly (the relay was reached, and may not be
/// yours), anything else as "cannot reach".
fn unreachable(base: &str, error: &reqwest::Error) -> String {
    let text = describe(error);
    match text.find(PIN_MISMATCH) {
        Some(at) => {
            let seen: String = text[at + PIN_MISMATCH.len()..]
                .trim_start()
                .chars()
                .take_while(char::is_ascii_hexdigit)
                .collect();
            format!(
                "{base} answered, but its certificate does not match the pinned fingerprint \
                 (it has SHA-256 {seen}): the relay's certificate changed, or this is not your relay; \
                 check the fingerprint with its operator before pinning it"
            )
        }
        None => format!("cannot reach {base}: {text}"),
    }
}

fn describe(error: &reqwest::Error) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(inner) = source {
        text = format!("{text}: {inner}");
        source = inner.source();
    }
    text
}

/// What a push stream reads at most at a time. tungstenite zero-fills its
/// read buffer up to this much before every read, so its default (128 KiB)
/// cost a 128 KiB `memset` per frame received, most of a receiver's work
/// per message. A frame longer than this still arrives whole: the buffer
/// grows to the length its header names.
const STREAM_READ_BUFFER: usize = 8 * 1024;

impl HttpsTransport {
    async fn stream_from(
        &self,
        node: &Node,
        request: &HttpRequest,
    ) -> Result<Box<dyn PushStream>, TransportError> {
        let tcp = tokio::net::TcpStream::connect((node.host.as_str(), node.port))
            .await
            .map_err(|e| TransportError(format!("cannot reach {}: {e}", node.base)))?;
        // Acknowledgements leave as they are written, not after the relay
        // ACKs the previous one (Nagle), as reqwest does for requests.
        tcp.set_nodelay(true).map_err(|e| {
            TransportError(format!("cannot set up the socket to {}: {e}", node.base))
        })?;
        let name = ServerName::try_from(node.host.clone())
            .map_err(|_| TransportError(format!("invalid server name {}", node.host)))?;
        let tls = tokio_rustls::TlsConnector::from(self.tls.clone())
            .connect(name, tcp)
            .await
            .map_err(|e| TransportError(format!("TLS with {}: {e}", node.base)))?;
        let url = format!("wss://{}:{}{}", node.host, node.port, request.path);
        let mut ws_request = url
            .into_client_request()
            .map_err(|e| TransportError(format!("stream request: {e}")))?;
        for (name, value) in &request.headers {
            let value = value
                .parse()
                .map_err(|_| TransportError("bad header".into()))?;
            ws_request.headers_mut().insert(*name, value);
        }
        let config =
            tungstenite::protocol::WebSocketConfig::default().read_buffer_size(STREAM_READ_BUFFER);
        let (socket, _) =
            tokio_tungstenite::client_async_with_config(ws_request, tls, Some(config))
                .await
                .map_err(|e| TransportError(format!("opening stream: {e}")))?;
        Ok(Box::new(WebSocketStream {
            socket,
            ended: None,
        }) as Box<dyn PushStream>)
    }
}

impl Transport for HttpsTransport {
    fn send(&self, request: HttpRequest) -> BoxFuture<'_, Result<HttpResponse, TransportError>> {
        Box::pin(async move {
            let method = reqwest::Method::from_bytes(request.method.as_bytes())
                .map_err(|_| TransportError("bad method".into()))?;
            let mut failure = None;
            let mut answered = None;
            let last = self.nodes.len() - 1;
            for (tried, (index, node)) in self.in_order().enumerate() {
                let mut builder = self
                    .http
                    .request(method.clone(), format!("{}{}", node.base, request.path));
                for (name, value) in &request.headers {
                    builder = builder.header(*name, value);
                }
                let sent = builder
                    .header("content-type", "application/json")
                    .body(request.body.clone())
                    .send()
                    .await;
                match sent {
                    // This node cannot reach its database; another node may.
                    // (Should it have spent the request's nonce before it
                    // lost the database, the next node refuses the request
                    // as replayed: an error either way, never a double.)
                    Ok(response) if response.status().as_u16() == 503 && tried < last => {
                        failure = Some(format!("{} is unavailable (503)", node.base));
                        answered = Some(response);
                    }
                    Ok(response) => {
                        self.preferred.store(index, Ordering::Relaxed);
                        answered = Some(response);
                        break;
                    }
                    // Nothing reached this node: another may take it.
                    Err(e) if e.is_connect() && !describe(&e).contains(PIN_MISMATCH) => {
                        failure = Some(unreachable(&node.base, &e));
                    }
                    Err(e) => return Err(TransportError(unreachable(&node.base, &e))),
                }
            }
            let Some(response) = answered else {
                return Err(TransportError(
                    failure.unwrap_or_else(|| "no relay node answered".into()),
                ));
            };
            let status = response.status().as_u16();
            let body = response
                .bytes()
                .await
                .map_err(|e| TransportError(format!("reading response: {}", describe(&e))))?;
            Ok(HttpResponse {
                status,
                body: body.to_vec(),
            })
        })
    }

    fn open_stream(
        &self,
        request: HttpRequest,
    ) -> BoxFuture<'_, Result<Box<dyn PushStream>, TransportError>> {
        Box::pin(async move {
            let mut failure = TransportError("no relay node answered".into());
            for (index, node) in self.in_order() {
                match self.stream_from(node, &request).await {
                    Ok(stream) => {
                        self.preferred.store(index, Ordering::Relaxed);
                        return Ok(stream);
                    }
                    Err(e) => failure = e,
                }
            }
            Err(failure)
        })
    }
}

struct WebSocketStream<S> {
    socket: tokio_tungstenite::WebSocketStream<S>,
    /// How the stream ended (closed, or failed), when that was found while
    /// taking frames that had already arrived: told on the next read, after
    /// the frames before it.
    ended: Option<Option<Result<String, TransportError>>>,
}

/// The relay pings every open stream every 20 s; a stream that carried
/// nothing for this long is taken for dead (its node lost power, or the
/// network between us broke without a reset) and given up, so the client
/// reconnects, to another node if there is one.
const SILENCE_LIMIT: std::time::Duration = std::time::Duration::from_secs(60);

/// What one WebSocket message means to a reader of frames: a frame, the
/// end of the stream, or nothing (a ping or pong, which tungstenite answers).
fn frame_of(
    next: Option<Result<tungstenite::Message, tungstenite::Error>>,
) -> Option<Option<Result<String, TransportError>>> {
    match next {
        None | Some(Ok(tungstenite::Message::Close(_))) => Some(None),
        Some(Ok(tungstenite::Message::Text(text))) => Some(Some(Ok(text.to_string()))),
        Some(Ok(_)) => None,
        Some(Err(e)) => Some(Some(Err(TransportError(format!("stream: {e}"))))),
    }
}

impl<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send> PushStream
    for WebSocketStream<S>
{
    fn next_frame(&mut self) -> BoxFuture<'_, Option<Result<String, TransportError>>> {
        Box::pin(async move {
            if let Some(ended) = self.ended.take() {
                return ended;
            }
            loop {
                let Ok(next) = tokio::time::timeout(SILENCE_LIMIT, self.socket.next()).await else {
                    return Some(Err(TransportError(format!(
                        "stream: the relay sent nothing for {} s",
                        SILENCE_LIMIT.as_secs()
                    ))));
                };
                if let Some(frame) = frame_of(next) {
                    return frame;
                }
            }
        })
    }

    fn next_frames(
        &mut self,
        limit: usize,
    ) -> BoxFuture<'_, Option<Result<Vec<String>, TransportError>>> {
        // Its one wait is for the first frame (tungstenite keeps a frame
        // read in part in the stream), so dropping it loses nothing.
        Box::pin(async move {
            let mut frames = match self.next_frame().await? {
                Ok(first) => vec![first],
                Err(e) => return Some(Err(e)),
            };
            // Whatever tungstenite can give without waiting: frames already
            // in its buffer or the socket's.
            while frames.len() < limit {
                let Some(next) = futures_util::FutureExt::now_or_never(self.socket.next()) else {
                    break;
                };
                match frame_of(next) {
                    None => continue,
                    Some(Some(Ok(frame))) => frames.push(frame),
                    Some(ended) => {
                        self.ended = Some(ended);
                        break;
                    }
                }
            }
            Some(Ok(frames))
        })
    }

    fn send_frame(&mut self, text: String) -> BoxFuture<'_, Result<(), TransportError>> {
        Box::pin(async move {
            self.socket
                .send(tungstenite::Message::Text(text.into()))
                .await
                .map_err(|e| TransportError(format!("stream: {e}")))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tungstenite::protocol::Role;

    /// A client's stream and the relay's end of it, over memory.
    async fn pair() -> (
        WebSocketStream<tokio::io::DuplexStream>,
        tokio_tungstenite::WebSocketStream<tokio::io::DuplexStream>,
    ) {
        let (client, relay) = tokio::io::duplex(64 * 1024);
        let client =
            tokio_tungstenite::WebSocketStream::from_raw_socket(client, Role::Client, None);
        let relay = tokio_tungstenite::WebSocketStream::from_raw_socket(relay, Role::Server, None);
        let (client, relay) = tokio::join!(client, relay);
        (
            WebSocketStream {
                socket: client,
                ended: None,
            },
            relay,
        )
    }

    fn text(frame: &str) -> tungstenite::Message {
        tungstenite::Message::Text(frame.into())
    }

    #[tokio::test]
    async fn frames_that_arrived_together_are_taken_together_and_the_close_after_them() {
        let (mut client, mut relay) = pair().await;
        for frame in ["a", "b", "c"] {
            relay.feed(text(frame)).await.unwrap();
        }
        relay
            .feed(tungstenite::Message::Ping("p".into()))
            .await
            .unwrap();
        relay.feed(text("d")).await.unwrap();
        // Written into the pipe before the client looks: all have arrived.
        relay.flush().await.unwrap();

        let taken = client.next_frames(2).await.unwrap().unwrap();
        assert_eq!(taken, ["a", "b"], "no more than the limit");
        let taken = client.next_frames(64).await.unwrap().unwrap();
        assert_eq!(taken, ["c", "d"], "the rest, the ping skipped");

        relay.send(text("e")).await.unwrap();
        relay.close(None).await.unwrap();
        let taken = client.next_frames(64).await.unwrap().unwrap();
        assert_eq!(taken, ["e"], "the frame before the close");
        assert!(
            client.next_frames(64).await.is_none(),
            "then the close, on the next read"
        );
    }

    #[tokio::test]
    async fn a_failure_found_after_a_frame_is_told_on_the_next_read() {
        let (mut client, mut relay) = pair().await;
        relay.send(text("a")).await.unwrap();
        // The relay's end goes away without a close frame.
        drop(relay);
        let taken = client.next_frames(64).await.unwrap().unwrap();
        assert_eq!(taken, ["a"]);
        let next = client.next_frames(64).await.unwrap();
        let error = next.expect_err("a stream cut short is an error");
        assert!(error.0.starts_with("stream:"), "{error}");
    }
}
