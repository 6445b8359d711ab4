//! Incoming webhooks: an outside service (CI, monitoring) POSTs JSON to an
//! endpoint the bot's owner hosts, and the bot posts it, encrypted, in a
//! channel it is a member of. The relay never sees the payload.
//!
//! Each webhook has its own secret, shown once when it is made. A request
//! carries three headers:
//!
//! - `X-Conclave-Timestamp`: Unix seconds, within five minutes of the bot's clock;
//! - `X-Conclave-Nonce`: 16–128 characters of `A-Z a-z 0-9 _ -`, never reused;
//! - `X-Conclave-Signature`: `v1=` and the hex HMAC-SHA256, under the secret
//!   (its text, as bytes), of `v1:{timestamp}:{nonce}:{body}`.
//!
//! With `openssl`, a sender signs like this:
//!
//! ```text
//! ts=$(date +%s); nonce=$(openssl rand -hex 16)
//! sig=$(printf 'v1:%s:%s:%s' "$ts" "$nonce" "$body" | openssl dgst -sha256 -hmac "$secret" -r | cut -d' ' -f1)
//! curl -H "X-Conclave-Timestamp: $ts" -H "X-Conclave-Nonce: $nonce" \
//!      -H "X-Conclave-Signature: v1=$sig" --data "$body" https://bot.example/hooks/ci
//! ```
//!
//! The message is the webhook's template with `{{path}}` replaced by the
//! payload's field at that path (`{{build.status}}`, `{{commits.0.id}}`).
//!
//! A nonce is spent once its message went out: a replay gets
//! [`WebhookError::Replayed`]. A request retried after the bot failed to
//! post it is posted once, under a message id derived from its nonce.

use hmac::{Hmac, Mac};
use rand::RngCore;
use serde_json::Value;
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::client::Client;
use crate::content::{Content, MAX_BODY, mentions_in};
use crate::error::{ClientError, Result};
use crate::store::webhooks;
use crate::transport::unix_now;

/// The largest request body a webhook accepts.
pub const MAX_WEBHOOK_BODY: usize = 64 * 1024;

/// How far a request's timestamp may be from the bot's clock, in seconds.
const WINDOW_SECS: u64 = 300;

/// The longest template, in bytes.
const MAX_TEMPLATE: usize = 2000;

/// A webhook's signing secret. Shown once; the bot keeps it in its store.
#[derive(Clone)]
pub struct WebhookSecret(Zeroizing<String>);

impl WebhookSecret {
    fn generate() -> Self {
        let mut bytes = Zeroizing::new([0u8; 32]);
        rand::rngs::OsRng.fill_bytes(&mut *bytes);
        Self(Zeroizing::new(format!("cwh_{}", hex::encode(*bytes))))
    }

    /// The secret's text, to hand to the sending service.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WebhookSecret(<redacted>)")
    }
}

/// One incoming webhook of this bot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Webhook {
    /// Its name: the endpoint is `/hooks/NAME`.
    pub name: String,
    /// The channel it posts in, by the name this device gives it now.
    pub channel: String,
    /// The message, with `{{path}}` for payload fields.
    pub template: String,
}

/// The signature headers of a request, as received (absent ones `None`).
#[derive(Debug, Clone, Copy, Default)]
pub struct WebhookSignature<'a> {
    /// `X-Conclave-Timestamp`.
    pub timestamp: Option<&'a str>,
    /// `X-Conclave-Nonce`.
    pub nonce: Option<&'a str>,
    /// `X-Conclave-Signature`.
    pub signature: Option<&'a str>,
}

/// Why a webhook request was refused. [`WebhookError::status`] is the HTTP
/// status to answer with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WebhookError {
    /// No webhook by that name.
    #[error("no webhook named {0:?}")]
    Unknown(String),
    /// A signature header is missing or malformed.
    #[error("missing or malformed {0} header")]
    BadHeader(&'static str),
    /// The signature does not match the body under the webhook's secret.
    #[error("the signature does not match")]
    BadSignature,
    /// The timestamp is too far from the bot's clock.
    #[error("the timestamp is more than {WINDOW_SECS} seconds off")]
    Stale,
    /// This nonce was used before: a replay.
    #[error("this request was delivered before (its nonce is spent)")]
    Replayed,
    /// The body is larger than [`MAX_WEBHOOK_BODY`].
    #[error("the body is larger than {MAX_WEBHOOK_BODY} bytes")]
    TooLarge,
    /// The payload does not fit the template.
    #[error("{0}")]
    BadPayload(String),
    /// The message could not be posted.
    #[error("could not post: {0}")]
    Posting(#[from] ClientError),
}

impl WebhookError {
    /// The HTTP status for this refusal.
    pub fn status(&self) -> u16 {
        match self {
            WebhookError::Unknown(_) => 404,
            WebhookError::BadHeader(_) | WebhookError::BadSignature | WebhookError::Stale => 401,
            WebhookError::Replayed => 409,
            WebhookError::TooLarge => 413,
            WebhookError::BadPayload(_) => 422,
            WebhookError::Posting(ClientError::Transport(_)) => 503,
            WebhookError::Posting(_) => 502,
        }
    }

    /// A short machine-readable code for this refusal.
    pub fn code(&self) -> &'static str {
        match self {
            WebhookError::Unknown(_) => "unknown_webhook",
            WebhookError::BadHeader(_) => "missing_signature",
            WebhookError::BadSignature => "bad_signature",
            WebhookError::Stale => "stale_timestamp",
            WebhookError::Replayed => "replayed",
            WebhookError::TooLarge => "too_large",
            WebhookError::BadPayload(_) => "bad_payload",
            WebhookError::Posting(_) => "posting_failed",
        }
    }
}

/// The `X-Conclave-Signature` value for a request: what a sending service
/// computes (and tests, and `conclave bot webhook sign`).
pub fn sign_webhook(secret: &str, timestamp: u64, nonce: &str, body: &[u8]) -> String {
    format!(
        "v1={}",
        hex::encode(
            mac(secret, &timestamp.to_string(), nonce, body)
                .finalize()
                .into_bytes()
        )
    )
}

fn mac(secret: &str, timestamp: &str, nonce: &str, body: &[u8]) -> Hmac<Sha256> {
    #[allow(clippy::expect_used)] // HMAC takes a key of any length
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(format!("v1:{timestamp}:{nonce}:").as_bytes());
    mac.update(body);
    mac
}

/// Whether every `{{` of `template` is closed by a `}}`, and no `}}` is stray.
fn placeholders_pair_up(template: &str) -> bool {
    let mut rest = template;
    loop {
        match (rest.find("{{"), rest.find("}}")) {
            (None, None) => return true,
            (Some(open), Some(close)) if open < close => rest = &rest[close + 2..],
            _ => return false,
        }
    }
}

fn is_webhook_name(name: &str) -> bool {
    conclave_crypto::is_command_name(name)
}

fn is_nonce(nonce: &str) -> bool {
    (16..=128).contains(&nonce.len())
        && nonce
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Checks a request's signature headers against `secret` at time `now`.
fn verify(
    secret: &str,
    headers: &WebhookSignature<'_>,
    body: &[u8],
    now: u64,
) -> Result<(), WebhookError> {
    let timestamp = headers
        .timestamp
        .filter(|t| !t.is_empty() && t.len() <= 12 && t.bytes().all(|b| b.is_ascii_digit()))
        .ok_or(WebhookError::BadHeader("X-Conclave-Timestamp"))?;
    let nonce = headers
        .nonce
        .filter(|n| is_nonce(n))
        .ok_or(WebhookError::BadHeader("X-Conclave-Nonce"))?;
    let signature = headers
        .signature
        .and_then(|s| s.strip_prefix("v1="))
        .and_then(|s| hex::decode(s).ok())
        .filter(|s| s.len() == 32)
        .ok_or(WebhookError::BadHeader("X-Conclave-Signature"))?;
    // Constant-time comparison, inside the hmac crate.
    mac(secret, timestamp, nonce, body)
        .verify_slice(&signature)
        .map_err(|_| WebhookError::BadSignature)?;
    let at: u64 = timestamp
        .parse()
        .map_err(|_| WebhookError::BadHeader("X-Conclave-Timestamp"))?;
    if at.abs_diff(now) > WINDOW_SECS {
        return Err(WebhookError::Stale);
    }
    Ok(())
}

/// Fills `template`'s `{{path}}` placeholders from `payload`.
fn render(template: &str, payload: Option<&Value>) -> Result<String, WebhookError> {
    let mut out = String::new();
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after
            .find("}}")
            .ok_or_else(|| WebhookError::BadPayload("the template has an unclosed {{".into()))?;
        let path = after[..end].trim();
        let payload = payload.ok_or_else(|| {
            WebhookError::BadPayload("the body is not JSON, and the template needs fields".into())
        })?;
        let mut value = payload;
        for part in path.split('.').filter(|p| !p.is_empty()) {
            let next = match value {
                Value::Object(map) => map.get(part),
                Value::Array(items) => part.parse::<usize>().ok().and_then(|i| items.get(i)),
                _ => None,
            };
            value = next.ok_or_else(|| {
                WebhookError::BadPayload(format!("the payload has no field `{path}`"))
            })?;
        }
        match value {
            Value::String(text) => out.push_str(text),
            Value::Null => {}
            other => out.push_str(&other.to_string()),
        }
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

impl Client {
    /// Makes webhook `name`, posting in `channel` (which this bot must be a
    /// member of) by `template`, and returns its secret: shown this once.
    pub async fn add_webhook(
        &self,
        name: &str,
        channel: &str,
        template: &str,
    ) -> Result<WebhookSecret> {
        if !is_webhook_name(name) {
            return Err(ClientError::Invalid(format!(
                "{name:?} cannot be a webhook name: use 1-32 of a-z 0-9 _ -"
            )));
        }
        if template.trim().is_empty() || template.len() > MAX_TEMPLATE {
            return Err(ClientError::Invalid(format!(
                "a template is 1 to {MAX_TEMPLATE} bytes"
            )));
        }
        if !placeholders_pair_up(template) {
            return Err(ClientError::Invalid(
                "the template's {{ and }} do not pair up".into(),
            ));
        }
        let group_id = self.active_channel(channel).await?;
        let secret = WebhookSecret::generate();
        let mut db = self.db().await;
        let added = webhooks::add(
            &mut db,
            name,
            (&group_id, channel),
            template,
            secret.expose(),
        )
        .await?;
        if !added {
            return Err(ClientError::Invalid(format!(
                "a webhook named {name} exists; remove it first to make a new secret"
            )));
        }
        Ok(secret)
    }

    /// This bot's webhooks, by name.
    pub async fn webhooks(&self) -> Result<Vec<Webhook>> {
        let mut db = self.db().await;
        Ok(webhooks::list(&mut db)
            .await?
            .into_iter()
            .map(|(name, channel, template)| Webhook {
                name,
                channel,
                template,
            })
            .collect())
    }

    /// Removes webhook `name`: its secret stops working at once.
    pub async fn remove_webhook(&self, name: &str) -> Result<()> {
        let mut db = self.db().await;
        if webhooks::remove(&mut db, name).await? {
            Ok(())
        } else {
            Err(ClientError::Invalid(format!(
                "there is no webhook named {name}"
            )))
        }
    }

    /// Checks a request to webhook `name` and posts its message; returns
    /// the message's position in the channel (`None` if it had been posted
    /// already, by an earlier try of the same request).
    pub async fn deliver_webhook(
        &self,
        name: &str,
        headers: &WebhookSignature<'_>,
        body: &[u8],
    ) -> Result<Option<u64>, WebhookError> {
        if body.len() > MAX_WEBHOOK_BODY {
            return Err(WebhookError::TooLarge);
        }
        let hook = {
            let mut db = self.db().await;
            webhooks::get(&mut db, name)
                .await?
                .ok_or_else(|| WebhookError::Unknown(name.to_owned()))?
        };
        let (template, secret) = (&hook.template, &hook.secret);
        let now = unix_now();
        verify(secret, headers, body, now)?;
        let nonce = headers.nonce.unwrap_or_default();
        {
            // Spend the nonce, unless a delivered request spent it already.
            let mut db = self.db().await;
            // Kept as long as the timestamp could still pass the window.
            let expires_at = now + 2 * WINDOW_SECS + 60;
            if !webhooks::spend_nonce(&mut db, name, nonce, now, expires_at).await? {
                return Err(WebhookError::Replayed);
            }
        }
        let payload = serde_json::from_slice::<Value>(body).ok();
        let text = render(template, payload.as_ref())?;
        if text.trim().is_empty() || text.len() > MAX_BODY {
            return Err(WebhookError::BadPayload(format!(
                "the message would be empty or longer than {MAX_BODY} bytes"
            )));
        }
        let content = Content::Text {
            mentions: mentions_in(&text),
            body: text,
        };
        // By group id: the channel may have been renamed since.
        let channel = match &hook.group_id {
            Some(group_id) => self.channel(group_id).await?,
            None => self.channel_named(&hook.channel).await?,
        };
        let posted = channel
            .send_once(content, &format!("webhook:{name}:{nonce}"))
            .await?;
        let mut db = self.db().await;
        webhooks::delivered(&mut db, name, nonce).await?;
        Ok(posted)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const SECRET: &str = "cwh_test-secret";
    const NONCE: &str = "0123456789abcdef";

    fn headers<'a>(timestamp: &'a str, signature: &'a str) -> WebhookSignature<'a> {
        WebhookSignature {
            timestamp: Some(timestamp),
            nonce: Some(NONCE),
            signature: Some(signature),
        }
    }

    #[test]
    fn a_signed_request_verifies_and_any_change_breaks_it() {
        let body = br#"{"status":"green"}"#;
        let signature = sign_webhook(SECRET, 1_000_000, NONCE, body);
        assert!(verify(SECRET, &headers("1000000", &signature), body, 1_000_010).is_ok());
        // Another body, secret, timestamp or nonce: the signature fails.
        assert!(matches!(
            verify(
                SECRET,
                &headers("1000000", &signature),
                br#"{"status":"red"}"#,
                1_000_010
            ),
            Err(WebhookError::BadSignature)
        ));
        assert!(matches!(
            verify(
                "cwh_other",
                &headers("1000000", &signature),
                body,
                1_000_010
            ),
            Err(WebhookError::BadSignature)
        ));
        assert!(matches!(
            verify(SECRET, &headers("1000001", &signature), body, 1_000_010),
            Err(WebhookError::BadSignature)
        ));
        let other_nonce = WebhookSignature {
            nonce: Some("fedcba9876543210"),
            ..headers("1000000", &signature)
        };
        assert!(matches!(
            verify(SECRET, &other_nonce, body, 1_000_010),
            Err(WebhookError::BadSignature)
        ));
    }

    #[test]
    fn old_or_unsigned_requests_are_refused() {
        let body = b"{}";
        let signature = sign_webhook(SECRET, 1_000_000, NONCE, body);
        assert!(matches!(
            verify(
                SECRET,
                &headers("1000000", &signature),
                body,
                1_000_000 + WINDOW_SECS + 1
            ),
            Err(WebhookError::Stale)
        ));
        assert!(matches!(
            verify(SECRET, &WebhookSignature::default(), body, 1_000_000),
            Err(WebhookError::BadHeader("X-Conclave-Timestamp"))
        ));
        let unsigned = WebhookSignature {
            signature: None,
            ..headers("1000000", &signature)
        };
        assert!(matches!(
            verify(SECRET, &unsigned, body, 1_000_000),
            Err(WebhookError::BadHeader("X-Conclave-Signature"))
        ));
        let short_nonce = WebhookSignature {
            nonce: Some("abc"),
            ..headers("1000000", &signature)
        };
        assert!(matches!(
            verify(SECRET, &short_nonce, body, 1_000_000),
            Err(WebhookError::BadHeader("X-Conclave-Nonce"))
        ));
        for status in [
            WebhookError::BadSignature,
            WebhookError::Stale,
            WebhookError::BadHeader("x"),
        ] {
            assert_eq!(status.status(), 401);
        }
        assert_eq!(WebhookError::Replayed.status(), 409);
    }

    #[test]
    fn templates_take_fields_by_path() {
        let payload = json!({
            "build": { "status": "passed", "number": 42, "ok": true },
            "commits": [{ "id": "abc123" }],
            "note": null
        });
        assert_eq!(
            render(
                "Build #{{build.number}} {{ build.status }} ({{commits.0.id}}) {{build.ok}}{{note}}",
                Some(&payload)
            )
            .unwrap(),
            "Build #42 passed (abc123) true"
        );
        assert_eq!(render("plain text", None).unwrap(), "plain text");
        assert!(matches!(
            render("{{build.missing}}", Some(&payload)),
            Err(WebhookError::BadPayload(m)) if m.contains("build.missing")
        ));
        assert!(matches!(
            render("{{x}}", None),
            Err(WebhookError::BadPayload(_))
        ));
        assert!(matches!(
            render("{{x", Some(&payload)),
            Err(WebhookError::BadPayload(_))
        ));
        assert!(placeholders_pair_up("CI {{build.status}}: {{url}}"));
        assert!(placeholders_pair_up("no fields"));
        assert!(!placeholders_pair_up("{{open"));
        assert!(!placeholders_pair_up("stray}} {{x}}"));
    }

    #[test]
    fn secrets_do_not_show_in_debug_output() {
        let secret = WebhookSecret::generate();
        assert!(secret.expose().starts_with("cwh_"));
        assert_eq!(secret.expose().len(), 68);
        assert!(!format!("{secret:?}").contains(&secret.expose()[4..]));
    }
}
