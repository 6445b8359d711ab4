//! The relay, reached through the auditor's logged-in device: the same home
//! directory, server and trust that the `conclave` CLI remembers.

use std::io::IsTerminal;
use std::path::PathBuf;

use std::collections::BTreeMap;

use conclave_audit::{ClientIpOpening, Hash, VerifierKey};
use conclave_client::{Client, KeyStatus, LocalPassphrase, RelaySettings};
use indicatif::{ProgressBar, ProgressStyle};

use crate::error::AuditError;
use crate::verification::EntryCollector;

/// Where the relay is and how to trust it; unset values come from the
/// home directory's `server.toml`, as the CLI wrote it.
#[derive(Debug, Clone, Default)]
pub struct RelayOptions {
    /// The auditor's device (default `~/.conclave`).
    pub home: Option<PathBuf>,
    /// The relay URL.
    pub server: Option<String>,
    /// Trust the relay certificate issued by this PEM file.
    pub ca_cert: Option<PathBuf>,
    /// Trust exactly the certificate with this SHA-256 fingerprint.
    pub pin_sha256: Option<String>,
}

/// Opens the auditor's device, which must be logged in.
pub async fn connect(options: &RelayOptions) -> Result<Client, AuditError> {
    let home = options
        .home
        .clone()
        .unwrap_or_else(RelaySettings::default_home);
    let not_a_device = || {
        AuditError::Usage(format!(
            "{} holds no logged-in Conclave device: log the auditor in first with `conclave --home {} login NAME`",
            home.display(),
            home.display()
        ))
    };
    // Opening a client creates its store; an auditor's tool must not.
    if !home.join("conclave.db").is_file() {
        return Err(not_a_device());
    }
    let transport = RelaySettings::read(&home)
        .map_err(|e| AuditError::Usage(e.to_string()))?
        .overridden_by(
            options.server.clone(),
            options.ca_cert.clone(),
            options.pin_sha256.clone(),
        )
        .transport()
        .map_err(|e| AuditError::Usage(e.to_string()))?;
    let client = Client::open(&home, transport)
        .await
        .map_err(|e| AuditError::relay(format!("opening {}", home.display()), e))?;
    if client.username().is_none() {
        return Err(not_a_device());
    }
    // A device key sealed under a local passphrase: unlocked from the
    // environment, as for the conclave CLI's scripts (else every signed
    // call says the key is locked).
    if client.key_status() == KeyStatus::Locked
        && let Ok(passphrase) = std::env::var("CONCLAVE_KEY_PASSPHRASE")
    {
        client
            .unlock(&LocalPassphrase::new(passphrase))
            .await
            .map_err(|e| AuditError::relay("unlocking the device key", e))?;
    }
    Ok(client)
}

/// The key to trust: `given` (parsed), else the one the relay states, with
/// a warning on stderr that this proves only that the relay agrees with itself.
pub async fn trusted_key(
    client: &Client,
    given: Option<&VerifierKey>,
) -> Result<VerifierKey, AuditError> {
    if let Some(key) = given {
        return Ok(key.clone());
    }
    let stated = client
        .relay_log_key()
        .await
        .map_err(|e| AuditError::relay("reading the relay's log key", e))?;
    let key = VerifierKey::parse(&stated).map_err(|source| AuditError::LogKey {
        key: stated.clone(),
        source,
    })?;
    eprintln!(
        "warning: no --log-key given; trusting the key the relay states ({key}). \
         This proves only that the relay is consistent with itself: get the key from the operator out of band."
    );
    Ok(key)
}

/// The relay's latest signed checkpoint note (not yet verified).
pub async fn checkpoint(client: &Client) -> Result<String, AuditError> {
    client
        .relay_checkpoint()
        .await
        .map_err(|e| AuditError::relay("reading the relay's checkpoint", e))
}

/// Entries from index 0, page by page, up to the log's size when the first
/// page was read (or `limit`, if smaller), refusing any gap or reordering.
pub async fn entries(client: &Client, limit: Option<u64>) -> Result<Vec<Vec<u8>>, AuditError> {
    Ok(entries_and_addresses(client, limit).await?.0)
}

/// [`entries`], and the client addresses behind the entries' `client-ip`
/// commitments (each checked against its leaf by client-core), by index.
pub async fn entries_and_addresses(
    client: &Client,
    limit: Option<u64>,
) -> Result<(Vec<Vec<u8>>, BTreeMap<u64, ClientIpOpening>), AuditError> {
    let end = limit.unwrap_or(u64::MAX);
    let read = |start: u64| async move {
        client
            .audit_entries(start, end)
            .await
            .map_err(|e| AuditError::relay("reading the log's entries", e))
    };
    let first = read(0).await?;
    let size = first.size.min(end);
    let progress = progress_bar(size);
    let mut collector = EntryCollector::default();
    let mut addresses = BTreeMap::new();
    let mut page = first;
    loop {
        let got = page.entries.len() as u64;
        addresses.extend(page.addresses.into_iter().filter(|(i, _)| *i < size));
        collector.push_page(page.entries)?;
        progress.set_position(collector.len());
        if got == 0 || collector.len() >= size {
            break;
        }
        page = read(collector.len()).await?;
    }
    progress.finish_and_clear();
    let mut entries = collector.finish(size)?;
    // A log that grew between pages: keep what the first page promised.
    entries.truncate(usize::try_from(size).unwrap_or(usize::MAX));
    Ok((entries, addresses))
}

/// A bar on stderr for downloads of more than one page, only on a terminal.
fn progress_bar(total: u64) -> ProgressBar {
    if total <= 1000 || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(total);
    if let Ok(style) =
        ProgressStyle::with_template("reading entries {bar:40} {pos}/{len} ({eta} left)")
    {
        bar.set_style(style);
    }
    bar
}

/// The relay's proof that its first `old` entries are a prefix of its first `new`.
pub async fn consistency_proof(
    client: &Client,
    old: u64,
    new: u64,
) -> Result<Vec<Hash>, AuditError> {
    client
        .audit_consistency_proof(old, new)
        .await
        .map_err(|e| AuditError::relay("reading the relay's consistency proof", e))
}

/// The relay's proof that entry `index` is in the tree of `size` entries.
pub async fn inclusion_proof(
    client: &Client,
    index: u64,
    size: u64,
) -> Result<Vec<Hash>, AuditError> {
    client
        .audit_inclusion_proof(index, size)
        .await
        .map_err(|e| AuditError::relay("reading the relay's inclusion proof", e))
}
