//! `conclave-audit`: the auditor's tool for a Conclave relay's transparency log.
//!
//! ```text
//! # Once, on the relay's host: make an auditor, and read the log key to hand over.
//! conclave-server admin grant carol auditor
//! conclave-server admin log-key | head -1        # log.example+1a2b3c4d+AX…
//!
//! # The auditor's device, logged in with the conclave CLI as usual.
//! conclave --server https://relay.example:8443 --pin-sha256 $FP --home ~/.conclave-audit login carol
//!
//! # Download everything, check it against the signed checkpoint, and check that the log
//! # extends the one verified last time (kept in --state). Run it from cron.
//! conclave-audit --home ~/.conclave-audit verify --log-key "$LOG_KEY" --state ~/.conclave-audit/state
//!
//! # Or with no device and no sign-in at all: the log's public tlog-tiles endpoint.
//! conclave-audit --pin-sha256 $FP verify --tiles https://relay.example:8443/log --log-key "$LOG_KEY"
//!
//! # Take the log away, and check it later with no relay at all.
//! conclave-audit --home ~/.conclave-audit export --bundle log.json --log-key "$LOG_KEY"
//! conclave-audit verify --bundle log.json --log-key "$LOG_KEY"
//!
//! # Read it: who did what, when.
//! conclave-audit --home ~/.conclave-audit export --format csv --since 2026-11-24 --actor alice
//!
//! # Run a witness for the relay's log: it cosigns checkpoints that extend the last it cosigned.
//! conclave-audit witness --listen 0.0.0.0:7380 --state ~/witness --log-key "$LOG_KEY"
//!
//! # Prove one entry to someone holding only the checkpoint.
//! conclave-audit --home ~/.conclave-audit prove 41 --log-key "$LOG_KEY"
//! ```
//!
//! Every check that fails ends the run with a non-zero status and one line,
//! `conclave-audit: <what failed>`. The checks themselves are in the
//! `verification` module and touch neither network nor files.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use clap::{ArgGroup, Parser, Subcommand};
use conclave_audit::{
    ClientIpOpening, Event, VerifierKey, leaf_hash, root_hash_from_leaf_hashes, verify_consistency,
    verify_inclusion,
};
use conclave_client::{Client, ServerTrust};
use serde_json::json;

mod bundle;
mod error;
mod export;
mod filter;
mod relay;
mod state;
mod tiles;
mod verification;
mod witness;

use bundle::Bundle;
use error::AuditError;
use export::Format;
use filter::Filter;
use relay::RelayOptions;
use verification::{
    VerifiedLog, check_consistency_proof, check_saved, needs_consistency_proof, open_checkpoint,
    summary, verify_snapshot,
};

#[derive(Parser)]
#[command(
    name = "conclave-audit",
    version,
    about = "Verify a Conclave relay's transparency log, export it, and prove entries"
)]
struct Cli {
    /// Relay URL, e.g. https://127.0.0.1:8443 [default: the one remembered in --home].
    #[arg(long, env = "CONCLAVE_SERVER", global = true)]
    server: Option<String>,
    /// The auditor's logged-in device [default: ~/.conclave].
    #[arg(long, env = "CONCLAVE_HOME", global = true)]
    home: Option<PathBuf>,
    /// Trust the relay certificate issued by this PEM certificate.
    #[arg(long, global = true, conflicts_with = "pin_sha256")]
    ca_cert: Option<PathBuf>,
    /// Trust exactly the relay certificate with this SHA-256 fingerprint (hex).
    #[arg(long, global = true)]
    pin_sha256: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Check the whole log against its signed checkpoint, and against the
    /// checkpoint verified last time (--state).
    Verify {
        /// The log's verifier key, from its operator (`conclave-server admin log-key`).
        #[arg(long)]
        log_key: Option<String>,
        /// Keep the verified checkpoint here, and check the next run against it.
        #[arg(long, value_name = "DIR")]
        state: Option<PathBuf>,
        /// Check this bundle offline (see `export --bundle`) instead of the relay.
        #[arg(long, value_name = "FILE", conflicts_with = "tiles")]
        bundle: Option<PathBuf>,
        /// Read the log from its public C2SP tlog-tiles endpoint, e.g.
        /// https://relay.example:8443/log, with no device or sign-in (needs
        /// --log-key, and --ca-cert or --pin-sha256).
        #[arg(long, value_name = "URL", requires = "log_key")]
        tiles: Option<String>,
    },
    /// Write the log as a bundle to verify offline, or its entries as JSON Lines or CSV.
    #[command(group(ArgGroup::new("what").required(true).args(["bundle", "format"])))]
    Export {
        /// Write a bundle (checkpoint, log key, entries) for `verify --bundle`.
        #[arg(long, value_name = "FILE")]
        bundle: Option<PathBuf>,
        /// Write the decoded entries in this format.
        #[arg(long, value_enum)]
        format: Option<Format>,
        /// Write to this file [default: standard output].
        #[arg(long, short, value_name = "FILE", conflicts_with = "bundle")]
        output: Option<PathBuf>,
        /// Only entries at or after T: RFC 3339, a date (midnight UTC) or Unix seconds.
        #[arg(long, value_name = "T", conflicts_with = "bundle")]
        since: Option<String>,
        /// Only entries before T (same spellings as --since).
        #[arg(long, value_name = "T", conflicts_with = "bundle")]
        until: Option<String>,
        /// Only entries by this account.
        #[arg(long, value_name = "NAME", conflicts_with = "bundle")]
        actor: Option<String>,
        /// Only entries of this action, e.g. device_added.
        #[arg(long, value_name = "NAME", conflicts_with = "bundle")]
        action: Option<String>,
        /// The log's verifier key [default: the key the relay states].
        #[arg(long)]
        log_key: Option<String>,
    },
    /// Run a C2SP tlog-witness: cosign each new checkpoint of the given logs
    /// that extends the last one it cosigned, and refuse forks.
    Witness {
        /// Address to serve `POST /add-checkpoint` on (plain HTTP).
        #[arg(long, value_name = "ADDR")]
        listen: std::net::SocketAddr,
        /// Its key (`witness.key`, made at first start) and what it cosigned.
        #[arg(long, value_name = "DIR")]
        state: PathBuf,
        /// The verifier key of a log to follow (repeat for more).
        #[arg(long = "log-key", value_name = "KEY", required = true)]
        log_keys: Vec<String>,
        /// The witness's name in its cosignatures.
        #[arg(long, default_value = "conclave-audit/witness")]
        name: String,
    },
    /// Print the proof that entry INDEX is in the log, after checking it.
    Prove {
        /// The entry's index.
        index: u64,
        /// The tree size to prove it in [default: the latest checkpoint's].
        #[arg(long)]
        size: Option<u64>,
        /// The log's verifier key [default: the key the relay states].
        #[arg(long)]
        log_key: Option<String>,
    },
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("conclave-audit: {error}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Result<(), AuditError> {
    let relay = RelayOptions {
        home: cli.home,
        server: cli.server,
        ca_cert: cli.ca_cert,
        pin_sha256: cli.pin_sha256,
    };
    match cli.command {
        Command::Verify {
            log_key,
            state,
            bundle,
            tiles,
        } => {
            let given = parse_key(log_key.as_deref())?;
            let source = match (bundle, tiles) {
                (Some(path), _) => Source::Bundle(path),
                (None, Some(url)) => Source::Tiles(url),
                (None, None) => Source::Relay,
            };
            verify(&relay, given, state.as_deref(), source).await
        }
        Command::Export {
            bundle,
            format,
            output,
            since,
            until,
            actor,
            action,
            log_key,
        } => {
            let given = parse_key(log_key.as_deref())?;
            match (bundle, format) {
                (Some(path), _) => export_bundle(&relay, given, &path).await,
                (None, Some(format)) => {
                    let filter = Filter::parse(since.as_deref(), until.as_deref(), actor, action)?;
                    export_entries(&relay, given, format, &filter, output.as_deref()).await
                }
                (None, None) => Err(AuditError::Usage(
                    "export needs --bundle FILE or --format jsonl|csv".into(),
                )),
            }
        }
        Command::Witness {
            listen,
            state,
            log_keys,
            name,
        } => {
            let logs = log_keys
                .iter()
                .map(|key| {
                    VerifierKey::parse(key.trim()).map_err(|source| AuditError::LogKey {
                        key: key.clone(),
                        source,
                    })
                })
                .collect::<Result<Vec<_>, _>>()?;
            witness::run(witness::WitnessOptions {
                listen,
                state,
                name,
                logs,
            })
            .await
        }
        Command::Prove {
            index,
            size,
            log_key,
        } => {
            let given = parse_key(log_key.as_deref())?;
            prove(&relay, given, index, size).await
        }
    }
}

fn parse_key(text: Option<&str>) -> Result<Option<VerifierKey>, AuditError> {
    text.map(|text| {
        VerifierKey::parse(text.trim()).map_err(|source| AuditError::LogKey {
            key: text.to_owned(),
            source,
        })
    })
    .transpose()
}

/// Where `verify` reads the log.
enum Source {
    /// The relay, through the auditor's signed-in device.
    Relay,
    /// A bundle written by `export --bundle`.
    Bundle(PathBuf),
    /// The log's public tlog-tiles endpoint.
    Tiles(String),
}

/// `verify`: the relay's log (or a bundle, or the tiles), then the saved
/// state, then save.
async fn verify(
    relay: &RelayOptions,
    given: Option<VerifierKey>,
    state_dir: Option<&Path>,
    source: Source,
) -> Result<(), AuditError> {
    let (log, key, client) = match source {
        Source::Tiles(url) => {
            let key = given.ok_or_else(|| {
                AuditError::Usage("--tiles needs the log's key: --log-key".into())
            })?;
            let trust = match (&relay.ca_cert, &relay.pin_sha256) {
                (Some(path), _) => ServerTrust::ca_file(path),
                (None, Some(pin)) => ServerTrust::pin(pin),
                (None, None) => {
                    return Err(AuditError::Usage(
                        "--tiles needs --ca-cert FILE or --pin-sha256 HEX to trust the log's certificate"
                            .into(),
                    ));
                }
            }
            .map_err(|e| AuditError::Usage(e.to_string()))?;
            let (note, entries) = tiles::TilesEndpoint::new(&url, trust)?
                .download(&key)
                .await?;
            (verify_snapshot(&key, &note, &entries)?, key, None)
        }
        Source::Bundle(path) => {
            let path = path.as_path();
            let name = path.display().to_string();
            let text = std::fs::read_to_string(path).map_err(|e| AuditError::io(path, e))?;
            let bundle = Bundle::parse(&text, &name)?;
            let (key, from_bundle) = bundle.trusted_key(given.as_ref())?;
            if from_bundle {
                eprintln!(
                    "warning: no --log-key given; trusting the key in the bundle ({key}). \
                     This proves only that the bundle is consistent with itself: pass the log key from its operator."
                );
            }
            let log = verify_snapshot(&key, &bundle.checkpoint, &bundle.leaves(&name)?)?;
            (log, key, None)
        }
        Source::Relay => {
            let (client, key, log, _, addresses) = download(relay, given).await?;
            // Each was checked against its entry's commitment on download.
            if !addresses.is_empty() {
                println!(
                    "client addresses: {} opened their entries' commitments",
                    addresses.len()
                );
            }
            (log, key, Some(client))
        }
    };

    let mut saved = None;
    let mut proof_checked = false;
    if let Some(dir) = state_dir {
        let path = state::checkpoint_path(dir).display().to_string();
        if let Some(note) = state::load(dir)? {
            let old = check_saved(&log, &key, &note, &path)?;
            if let Some(client) = &client
                && needs_consistency_proof(&old, &log.checkpoint)
            {
                let proof =
                    relay::consistency_proof(client, old.size(), log.checkpoint.size()).await?;
                check_consistency_proof(&old, &log.checkpoint, &proof)?;
                proof_checked = true;
            }
            saved = Some((old, path));
        }
    }
    print!(
        "{}",
        summary(
            &log,
            saved.as_ref().map(|(c, p)| (c, p.as_str())),
            proof_checked
        )
    );
    if let Some(dir) = state_dir {
        state::save(dir, &log.note)?;
        println!(
            "saved this checkpoint in {} for the next run",
            state::checkpoint_path(dir).display()
        );
    }
    Ok(())
}

/// What [`download`] gives: the client, the trusted key, the verified log,
/// its leaves, and the client addresses that open their commitments.
type Downloaded = (
    Client,
    VerifierKey,
    VerifiedLog,
    Vec<Vec<u8>>,
    BTreeMap<u64, ClientIpOpening>,
);

/// Connects, downloads the checkpoint and then every entry, and verifies
/// them with the trusted key.
async fn download(
    relay: &RelayOptions,
    given: Option<VerifierKey>,
) -> Result<Downloaded, AuditError> {
    let client = relay::connect(relay).await?;
    let key = relay::trusted_key(&client, given.as_ref()).await?;
    let note = relay::checkpoint(&client).await?;
    let (entries, addresses) = relay::entries_and_addresses(&client, None).await?;
    let log = verify_snapshot(&key, &note, &entries)?;
    Ok((client, key, log, entries, addresses))
}

/// `export --bundle`: only a log that verifies is written.
async fn export_bundle(
    relay: &RelayOptions,
    given: Option<VerifierKey>,
    path: &Path,
) -> Result<(), AuditError> {
    let (_, key, log, mut entries, _) = download(relay, given).await?;
    entries.truncate(usize::try_from(log.checkpoint.size()).unwrap_or(usize::MAX));
    let bundle = Bundle::new(&log.note, &key, &entries);
    state::write_atomically(path, bundle.to_json().as_bytes())?;
    eprintln!(
        "wrote the checkpoint at size {} and its {} entries to {}",
        log.checkpoint.size(),
        entries.len(),
        path.display()
    );
    Ok(())
}

/// `export --format`: the verified entries that pass `filter`.
async fn export_entries(
    relay: &RelayOptions,
    given: Option<VerifierKey>,
    format: Format,
    filter: &Filter,
    output: Option<&Path>,
) -> Result<(), AuditError> {
    let (_, _, log, _, addresses) = download(relay, given).await?;
    let kept = (0u64..)
        .zip(&log.events)
        .filter(|(_, event)| filter.keeps(event));
    let mut bytes = Vec::new();
    let count = export::write_entries(format, kept, &addresses, &mut bytes)
        .map_err(|e| AuditError::io(output.unwrap_or(Path::new("output")), e))?;
    match output {
        Some(path) => state::write_atomically(path, &bytes)?,
        None => {
            use std::io::Write;
            std::io::stdout()
                .lock()
                .write_all(&bytes)
                .map_err(|e| AuditError::io("standard output", e))?;
        }
    }
    eprintln!(
        "exported {count} of {} entries (verified against the checkpoint at size {})",
        log.events.len(),
        log.checkpoint.size()
    );
    Ok(())
}

/// `prove`: fetch, check and print the inclusion proof of one entry.
async fn prove(
    relay: &RelayOptions,
    given: Option<VerifierKey>,
    index: u64,
    size: Option<u64>,
) -> Result<(), AuditError> {
    let client = relay::connect(relay).await?;
    let key = relay::trusted_key(&client, given.as_ref()).await?;
    let note = relay::checkpoint(&client).await?;
    let checkpoint = open_checkpoint(&key, &note)?;
    let size = size.unwrap_or(checkpoint.size());
    if size > checkpoint.size() {
        return Err(AuditError::Usage(format!(
            "--size {size} is beyond the latest signed checkpoint, which covers {} entries",
            checkpoint.size()
        )));
    }
    if index >= size {
        return Err(AuditError::Usage(format!(
            "entry {index} is not among the first {size} entries of the log"
        )));
    }

    let leaf = client
        .audit_entries(index, index + 1)
        .await
        .map_err(|e| AuditError::relay("reading the entry", e))?
        .entries
        .into_iter()
        .find(|(i, _)| *i == index)
        .map(|(_, leaf)| leaf)
        .ok_or_else(|| AuditError::MissingEntry {
            index,
            detail: "the relay did not return it".into(),
        })?;
    let event =
        Event::decode(&leaf).map_err(|source| AuditError::UndecodableEntry { index, source })?;
    if event.seq != index {
        return Err(AuditError::WrongSeq {
            index,
            seq: event.seq,
        });
    }

    // The root of the tree of `size` entries: signed, or proven a prefix of the signed one.
    let (root, consistency) = if size == checkpoint.size() {
        (*checkpoint.root_hash(), None)
    } else {
        let prefix = relay::entries(&client, Some(size)).await?;
        let hashes: Vec<_> = prefix.iter().map(|leaf| leaf_hash(leaf)).collect();
        let root = root_hash_from_leaf_hashes(&hashes);
        let proof = relay::consistency_proof(&client, size, checkpoint.size()).await?;
        verify_consistency(
            size,
            checkpoint.size(),
            &proof,
            &root,
            checkpoint.root_hash(),
        )
        .map_err(|source| AuditError::PrefixProof {
            size,
            checkpoint_size: checkpoint.size(),
            source,
        })?;
        (root, Some(proof))
    };
    let proof = relay::inclusion_proof(&client, index, size).await?;
    let hash = leaf_hash(&leaf);
    verify_inclusion(index, size, &hash, &proof, &root).map_err(|source| {
        AuditError::InclusionProof {
            index,
            size,
            source,
        }
    })?;

    let b64 = |hashes: &[conclave_audit::Hash]| -> Vec<String> {
        hashes.iter().map(|h| STANDARD.encode(h)).collect()
    };
    let mut answer = json!({
        "index": index,
        "size": size,
        "leaf": STANDARD.encode(&leaf),
        "leaf_hash": STANDARD.encode(hash),
        "proof": b64(&proof),
        "root": STANDARD.encode(root),
        "event": event,
        "checkpoint": note,
        "log_key": key.to_string(),
    });
    if let Some(consistency) = consistency {
        answer["consistency"] = json!(b64(&consistency));
    }
    println!(
        "{}",
        serde_json::to_string_pretty(&answer).unwrap_or_default()
    );
    Ok(())
}
