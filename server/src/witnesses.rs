//! Asking witnesses to cosign the log's checkpoints (C2SP tlog-witness),
//! and serving their cosignatures with the checkpoint.
//!
//! After the log's checkpoints, a background round asks each configured
//! witness to cosign the latest one: `add-checkpoint` with the size that
//! witness cosigned last and the consistency proof from it. A witness that
//! answers 409 says which size it holds; the round asks once more from
//! there. A witness that is down or refuses is logged and asked again next
//! round; the relay never waits on one to serve.
//!
//! Every checkpoint the relay hands out (to devices, to auditors, on the
//! public tiles endpoint) carries the cosignature lines it has for it.

use std::sync::Arc;
use std::time::Duration;

use conclave_audit::SignedNote;
use conclave_audit::log::{LogError, SignedCheckpoint, TransparencyLog};
use conclave_audit::witness::AddCheckpoint;

use crate::config::WitnessEndpoint;
use crate::error::ServerError;

/// `checkpoint`'s note with every cosignature the relay holds for it.
pub(crate) async fn cosigned_note(
    log: &TransparencyLog,
    checkpoint: &SignedCheckpoint,
) -> Result<String, LogError> {
    let mut note = checkpoint.note.clone();
    for line in log.cosignatures(checkpoint.size).await? {
        note.push_str(&line);
    }
    Ok(note)
}

/// An HTTP client for witnesses: TLS 1.2+ checked against the system's
/// roots for `https://` witnesses, ten seconds per request.
pub(crate) fn http_client() -> Result<reqwest::Client, ServerError> {
    use rustls_platform_verifier::BuilderVerifierExt;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .and_then(|builder| builder.with_platform_verifier())
        .map_err(|e| ServerError::Key(format!("TLS for witnesses: {e}")))?
        .with_no_client_auth();
    reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .timeout(Duration::from_secs(10))
        .build()
        .map_err(|e| ServerError::Setting(format!("HTTP client for witnesses: {e}")))
}

/// One round: every witness asked to cosign the latest checkpoint it has
/// not cosigned yet.
pub(crate) async fn cosign_round(
    log: &TransparencyLog,
    witnesses: &[WitnessEndpoint],
    http: &reqwest::Client,
) {
    let latest = match log.latest_checkpoint().await {
        Ok(Some(latest)) if latest.size > 0 => latest,
        Ok(_) => return,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the latest checkpoint for witnesses");
            return;
        }
    };
    for witness in witnesses {
        if let Err(why) = ask(log, witness, &latest, http).await {
            tracing::warn!(witness = witness.key.name(), url = %witness.url, size = latest.size, "no cosignature: {why}");
        }
    }
}

/// Asks `witness` to cosign `latest`, and keeps the cosignature.
async fn ask(
    log: &TransparencyLog,
    witness: &WitnessEndpoint,
    latest: &SignedCheckpoint,
    http: &reqwest::Client,
) -> Result<(), String> {
    let name = witness.key.name();
    let mut old = log.cosigned_by(name).await.map_err(|e| e.to_string())?;
    // At most twice: the second time from the size the witness said it holds.
    for _ in 0..2 {
        if old == latest.size {
            return Ok(());
        }
        if old > latest.size {
            return Err(format!(
                "the witness cosigned {old} entries, more than this log's {}: a fork, or another log under this name",
                latest.size
            ));
        }
        let proof = if old == 0 {
            Vec::new()
        } else {
            log.consistency_proof(old, latest.size)
                .await
                .map_err(|e| e.to_string())?
        };
        let body = AddCheckpoint {
            old_size: old,
            proof,
            note: latest.note.clone(),
        }
        .to_body();
        let answer = http
            .post(format!("{}/add-checkpoint", witness.url))
            .body(body)
            .send()
            .await
            .map_err(|e| format!("unreachable: {e}"))?;
        let status = answer.status().as_u16();
        let text = answer.text().await.map_err(|e| e.to_string())?;
        match status {
            200 => {
                let line = text
                    .lines()
                    .find(|line| line.starts_with(&format!("\u{2014} {name} ")))
                    .ok_or("the answer holds no cosignature by this witness")?;
                let line = format!("{line}\n");
                // Only a cosignature that verifies under the configured key is kept.
                let cosigned = SignedNote::parse(&format!("{}{line}", latest.note))
                    .map_err(|e| format!("the cosignature is malformed: {e}"))?;
                match witness.key.verify(&cosigned) {
                    Ok(Some(_)) => {}
                    Ok(None) | Err(_) => {
                        return Err(
                            "the cosignature does not verify under the witness's key".into()
                        );
                    }
                }
                log.add_cosignature(name, latest.size, &line)
                    .await
                    .map_err(|e| e.to_string())?;
                tracing::info!(witness = name, size = latest.size, "checkpoint cosigned");
                return Ok(());
            }
            409 => {
                old = text
                    .trim()
                    .parse()
                    .map_err(|_| format!("409 without a size: {}", text.trim()))?;
            }
            other => return Err(format!("refused ({other}): {}", text.trim())),
        }
    }
    Err("the witness's size kept changing".into())
}
