//! `conclave-audit witness`: a C2SP tlog-witness, run by an auditor.
//!
//! It follows the logs whose keys it is given. For each, it keeps the
//! latest checkpoint it cosigned in `--state` (one file per log, written
//! durably before it answers), and cosigns a new checkpoint only if the
//! log's key signed it and a consistency proof shows it extends that one.
//! A relay that forks its log, even with its log key stolen, gets no
//! cosignature for the fork. It speaks `POST /add-checkpoint` as the
//! specification has it, so other witnesses can stand in for it and it can
//! witness other logs.
//!
//! Plain HTTP: run it on a private network, or behind a TLS proxy. It holds
//! no secret but its own key (`--state/witness.key`, 0600).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use conclave_audit::VerifierKey;
use conclave_audit::witness::{AddCheckpoint, Cosigner, Refusal, Witnessed, check};
use tokio::sync::Mutex;
use zeroize::Zeroizing;

use crate::error::AuditError;
use crate::state::write_atomically;

/// What `conclave-audit witness` is told.
#[derive(Debug)]
pub struct WitnessOptions {
    /// Where to listen.
    pub listen: SocketAddr,
    /// Its key and what it cosigned.
    pub state: PathBuf,
    /// Its name, in its cosignatures.
    pub name: String,
    /// The logs it follows.
    pub logs: Vec<VerifierKey>,
}

struct Witness {
    cosigner: Cosigner,
    logs: Vec<VerifierKey>,
    state: PathBuf,
    /// Per log origin, the latest checkpoint cosigned. The lock spans the
    /// check and the write, so two requests cannot both pass against the
    /// same old checkpoint.
    witnessed: Mutex<HashMap<String, Witnessed>>,
}

/// Runs the witness until the process is stopped.
pub async fn run(options: WitnessOptions) -> Result<(), AuditError> {
    private_dir(&options.state)?;
    private_dir(&options.state.join("logs"))?;
    let cosigner = load_or_create_key(&options.state.join("witness.key"), &options.name)?;
    let witnessed = load_witnessed(&options.state.join("logs"))?;
    let listener = tokio::net::TcpListener::bind(options.listen)
        .await
        .map_err(|e| AuditError::Usage(format!("cannot listen on {}: {e}", options.listen)))?;
    let address = listener
        .local_addr()
        .map_err(|e| AuditError::Usage(format!("cannot read the listening address: {e}")))?;
    println!("witness key: {}", cosigner.verifier_key());
    for log in &options.logs {
        let at = witnessed.get(log.name()).map_or_else(
            || "nothing cosigned yet".to_owned(),
            |w| format!("cosigned up to {} entries", w.size),
        );
        println!("following log {log} ({at})");
    }
    println!("witness listening on http://{address}/add-checkpoint");
    let witness = Arc::new(Witness {
        cosigner,
        logs: options.logs,
        state: options.state,
        witnessed: Mutex::new(witnessed),
    });
    let app = Router::new()
        .route("/add-checkpoint", post(add_checkpoint))
        .with_state(witness);
    axum::serve(listener, app)
        .await
        .map_err(|e| AuditError::Usage(format!("the witness stopped: {e}")))
}

async fn add_checkpoint(State(witness): State<Arc<Witness>>, body: String) -> Response {
    let request = match AddCheckpoint::parse(&body) {
        Ok(request) => request,
        Err(refusal) => return refused(&refusal),
    };
    let origin = request.note.lines().next().unwrap_or_default().to_owned();
    let mut witnessed = witness.witnessed.lock().await;
    let (_, now) = match check(&request, &witness.logs, witnessed.get(&origin)) {
        Ok(checked) => checked,
        Err(refusal) => {
            eprintln!("refused a checkpoint of {origin:?}: {refusal}");
            return refused(&refusal);
        }
    };
    // Durable before it is answered: a witness that forgot would cosign a fork.
    let file = witness
        .state
        .join("logs")
        .join(URL_SAFE_NO_PAD.encode(&origin));
    let record = format!("{origin}\n{}\n{}\n", now.size, STANDARD.encode(now.root));
    if let Err(e) = write_atomically(&file, record.as_bytes()) {
        eprintln!("cannot keep the witnessed checkpoint: {e}");
        return (StatusCode::SERVICE_UNAVAILABLE, "cannot store state\n").into_response();
    }
    witnessed.insert(origin, now);
    drop(witnessed);
    // The text the log signed, checked by `check` above.
    match witness
        .cosigner
        .cosign(note_text(&request.note), unix_now())
    {
        Ok(line) => (StatusCode::OK, line).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")).into_response(),
    }
}

/// The text of a signed note: up to and including the blank line's newline.
fn note_text(note: &str) -> &str {
    note.rfind("\n\n").map_or(note, |at| &note[..=at])
}

fn refused(refusal: &Refusal) -> Response {
    let status = StatusCode::from_u16(refusal.status()).unwrap_or(StatusCode::BAD_REQUEST);
    match refusal {
        Refusal::Conflict { known } => (
            status,
            [(header::CONTENT_TYPE, "text/x.tlog.size")],
            format!("{known}\n"),
        )
            .into_response(),
        other => (status, format!("{other}\n")).into_response(),
    }
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Creates `dir` (0700) if it is missing.
fn private_dir(dir: &Path) -> Result<(), AuditError> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir).map_err(|e| AuditError::io(dir, e))
}

/// The witness's key: made once (0600), then read at every start.
fn load_or_create_key(path: &Path, name: &str) -> Result<Cosigner, AuditError> {
    let seed: Zeroizing<[u8; 32]> = match std::fs::read_to_string(path) {
        Ok(text) => {
            let text = Zeroizing::new(text);
            let bytes = Zeroizing::new(STANDARD.decode(text.trim()).map_err(|_| {
                AuditError::Usage(format!("{} does not hold a witness key", path.display()))
            })?);
            Zeroizing::new(bytes.as_slice().try_into().map_err(|_| {
                AuditError::Usage(format!("{} does not hold a witness key", path.display()))
            })?)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let mut seed = Zeroizing::new([0u8; 32]);
            rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut seed[..]);
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create_new(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
            let line = Zeroizing::new(format!("{}\n", STANDARD.encode(&seed[..])));
            use std::io::Write;
            options
                .open(path)
                .and_then(|mut file| {
                    file.write_all(line.as_bytes())?;
                    file.sync_all()
                })
                .map_err(|e| AuditError::io(path, e))?;
            seed
        }
        Err(e) => return Err(AuditError::io(path, e)),
    };
    Cosigner::new(name, ed25519_dalek::SigningKey::from_bytes(&seed))
        .map_err(|e| AuditError::Usage(format!("witness name {name:?}: {e}")))
}

/// What the witness cosigned before, per log origin.
fn load_witnessed(dir: &Path) -> Result<HashMap<String, Witnessed>, AuditError> {
    let mut witnessed = HashMap::new();
    for entry in std::fs::read_dir(dir).map_err(|e| AuditError::io(dir, e))? {
        let path = entry.map_err(|e| AuditError::io(dir, e))?.path();
        if path.extension().is_some() {
            // A temporary file an interrupted write left.
            continue;
        }
        let text = std::fs::read_to_string(&path).map_err(|e| AuditError::io(&path, e))?;
        let mut lines = text.lines();
        let parsed = (|| {
            let origin = lines.next()?.to_owned();
            let size = lines.next()?.parse().ok()?;
            let root = STANDARD.decode(lines.next()?).ok()?.try_into().ok()?;
            Some((origin, Witnessed { size, root }))
        })();
        let (origin, state) = parsed.ok_or_else(|| {
            AuditError::Usage(format!(
                "{} is not a witnessed checkpoint: a witness that cannot read its state must not cosign",
                path.display()
            ))
        })?;
        witnessed.insert(origin, state);
    }
    Ok(witnessed)
}
