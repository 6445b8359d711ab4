//! The log read from its public C2SP tlog-tiles endpoint: the checkpoint and
//! the entry bundles, over HTTPS, with no device and no sign-in. What an
//! auditor (or a witness's operator) needs is the log's URL, its verifier
//! key and how to trust its certificate.

use conclave_audit::VerifierKey;
use conclave_audit::tiles::{TILE_WIDTH, Tile};
use conclave_client::{ClientError, HttpRequest, HttpsTransport, ServerTrust, Transport};
use conclave_proto::{ErrorBody, ErrorCode};

use crate::error::AuditError;
use crate::verification::open_checkpoint;

/// Most times one read waits for the relay's rate limit before giving up.
const MAX_WAITS: u32 = 30;

/// The seconds a 429 answer asks to wait (1 to 60), if it is the public
/// log's pace (`slow_down`; `rate_limited` from relays before that code).
fn rate_limit_wait(status: u16, body: &[u8]) -> Option<u64> {
    if status != 429 {
        return None;
    }
    let refusal: ErrorBody = serde_json::from_slice(body).ok()?;
    if !matches!(refusal.error, ErrorCode::SlowDown | ErrorCode::RateLimited) {
        return None;
    }
    Some(refusal.retry_after.unwrap_or(1).clamp(1, 60))
}

/// A log's tiles endpoint: `https://HOST[:PORT]/PREFIX`.
#[derive(Debug)]
pub struct TilesEndpoint {
    transport: HttpsTransport,
    /// The path before `checkpoint` and `tile/`, without a trailing `/`.
    prefix: String,
}

impl TilesEndpoint {
    /// The endpoint at `url` (e.g. `https://relay.example:8443/log`),
    /// trusted by `trust`.
    pub fn new(url: &str, trust: ServerTrust) -> Result<Self, AuditError> {
        let bad = || {
            AuditError::Usage(format!(
                "--tiles {url:?}: give the log's URL, e.g. https://relay.example:8443/log"
            ))
        };
        let rest = url.strip_prefix("https://").ok_or_else(bad)?;
        let (host, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if host.is_empty() {
            return Err(bad());
        }
        let transport = HttpsTransport::new(&format!("https://{host}"), trust)
            .map_err(|e| AuditError::relay(format!("reaching {url}"), e.into()))?;
        let prefix = prefix.trim_end_matches('/');
        Ok(Self {
            transport,
            prefix: if prefix.is_empty() {
                String::new()
            } else {
                format!("/{prefix}")
            },
        })
    }

    async fn get(&self, path: &str) -> Result<Vec<u8>, AuditError> {
        let path = format!("{}/{path}", self.prefix);
        let mut waits = 0;
        let answer = loop {
            let answer = self
                .transport
                .send(HttpRequest {
                    method: "GET",
                    path: path.clone(),
                    headers: Vec::new(),
                    body: Vec::new(),
                })
                .await
                .map_err(|e| AuditError::relay(format!("reading {path}"), e.into()))?;
            // The relay paces reads per address: wait as long as it says
            // and ask again, so a long log downloads at the allowed pace.
            match rate_limit_wait(answer.status, &answer.body) {
                Some(seconds) if waits < MAX_WAITS => {
                    waits += 1;
                    tokio::time::sleep(std::time::Duration::from_secs(seconds)).await;
                }
                _ => break answer,
            }
        };
        if answer.status != 200 {
            return Err(AuditError::relay(
                format!("reading {path}"),
                ClientError::Server {
                    status: answer.status,
                    code: "tiles".into(),
                    message: String::from_utf8_lossy(&answer.body)
                        .chars()
                        .take(200)
                        .collect(),
                },
            ));
        }
        Ok(answer.body)
    }

    /// The latest checkpoint, checked with `key`, and the entries it covers
    /// from the entry bundles (each bundle's framing checked).
    pub async fn download(&self, key: &VerifierKey) -> Result<(String, Vec<Vec<u8>>), AuditError> {
        let note = String::from_utf8(self.get("checkpoint").await?)
            .map_err(|_| AuditError::Usage("the log's checkpoint is not text".into()))?;
        let size = open_checkpoint(key, &note)?.size();
        let mut entries = Vec::new();
        let mut index = 0;
        while (entries.len() as u64) < size {
            let tile = Tile {
                level: None,
                index,
                width: (size - index * TILE_WIDTH).min(TILE_WIDTH),
            };
            let bundle = self.get(&format!("tile/{}", tile.path())).await?;
            let first = index * TILE_WIDTH;
            let mut rest = bundle.as_slice();
            while let [high, low, tail @ ..] = rest {
                let length = usize::from(u16::from_be_bytes([*high, *low]));
                let Some((entry, tail)) = tail.split_at_checked(length) else {
                    break;
                };
                entries.push(entry.to_vec());
                rest = tail;
            }
            if !rest.is_empty() || entries.len() as u64 != first + tile.width {
                return Err(AuditError::MissingEntry {
                    index: entries.len() as u64,
                    detail: format!(
                        "entry bundle {} does not hold {} whole entries",
                        tile.path(),
                        tile.width
                    ),
                });
            }
            index += 1;
        }
        Ok((note, entries))
    }
}

#[cfg(test)]
mod tests {
    use super::rate_limit_wait;

    #[test]
    fn only_a_rate_limit_answer_is_waited_for_as_long_as_it_says() {
        let paced = br#"{"error":"slow_down","message":"slow down","retry_after":3}"#;
        assert_eq!(rate_limit_wait(429, paced), Some(3));
        let limited = br#"{"error":"rate_limited","message":"too many","retry_after":7}"#;
        assert_eq!(rate_limit_wait(429, limited), Some(7));
        assert_eq!(
            rate_limit_wait(
                429,
                br#"{"error":"rate_limited","message":"too many","retry_after":86400}"#
            ),
            Some(60),
            "a wait is capped at a minute"
        );
        assert_eq!(
            rate_limit_wait(429, br#"{"error":"rate_limited","message":"too many"}"#),
            Some(1)
        );
        assert_eq!(rate_limit_wait(200, limited), None);
        assert_eq!(
            rate_limit_wait(429, br#"{"error":"busy","message":"busy","retry_after":2}"#),
            None
        );
        assert_eq!(rate_limit_wait(429, b"not json"), None);
    }
}
