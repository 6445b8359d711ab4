//! The Conclave relay.
//!
//! It stores accounts (argon2id hashes), device public keys, key packages,
//! each group's public MLS state and the ciphertext log, and fans messages out
//! to devices. It never holds a private key or a message in clear.
//!
//! Tests and embedders start it on any listener:
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let config = conclave_server::Config::with_data_dir("/tmp/conclave-demo");
//! let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
//! let shutdown = std::future::pending::<()>();
//! conclave_server::run(listener, config, shutdown).await?; // a ServerError names what failed
//! # Ok(())
//! # }
//! ```
#![forbid(unsafe_code)]

mod accounts;
pub mod admin;
mod auth;
mod clock;
mod config;
mod error;
mod events;
mod http;
mod keys;
mod limits;
mod log_key;
mod metrics;
mod private_files;
mod relay;
mod server_key;
mod store;
mod tasks;
mod tls;
mod witnesses;

use std::future::Future;
use std::sync::Arc;

pub use clock::Clock;
pub use config::{Config, DatabaseUrl, LogFormat, Settings, WitnessEndpoint, parse_duration};
pub use error::{ApiError, ServerError};
pub use events::{AuditAction, AuditEvent, AuditTrail};
pub use keys::{KeySource, KeyText};
use relay::{Notice, Notifier};
pub use store::{
    AccountSummary, Admission, Append, Backend, BlobSpec, ChallengeRow, CommitRecord,
    DeviceSession, GroupAccess, GroupRow, KeyPackagesAdded, MessageKind, NewBlob, NewGroup,
    NewKeyPackage, Nonce, PayloadHash, Pending, PublicListing, Store, StoreError,
};
pub use tls::TlsIdentity;

/// Shared by every request.
#[derive(Clone, Debug)]
pub struct AppState {
    store: Store,
    config: Arc<Config>,
    notifier: Notifier,
    /// The one writer of what push streams acknowledge.
    acks: relay::acks::AckWriter,
    server_key: server_key::ServerKey,
    relying_party: Arc<accounts::factors::RelyingParty>,
    /// The OPAQUE setup, read (or made) at its first use.
    password_server: Arc<tokio::sync::OnceCell<Arc<conclave_crypto::password::PasswordServer>>>,
    audit: AuditTrail,
    /// Rate-limit buckets this node saw full (see `limits::count`).
    full_buckets: Arc<limits::FullBuckets>,
    /// The pace of signature-free reads, per address.
    public_reads: Arc<limits::Pace>,
    /// The pace of each known device's signed requests.
    device_requests: Arc<limits::Pace>,
    /// Background work, ended and joined at shutdown.
    tasks: Arc<tasks::Tasks>,
}

impl AppState {
    /// The relay's core, over this state.
    fn relay(&self) -> relay::Relay<'_> {
        relay::Relay {
            store: &self.store,
            audit: &self.audit,
            notifier: &self.notifier,
        }
    }

    /// Tells this node's devices, and the other nodes'.
    fn tell(&self, notice: Notice) {
        self.notifier.tell(notice);
    }
}

/// Opens storage and builds the router, without TLS: for in-process transports.
pub async fn app(config: Config) -> Result<axum::Router, ServerError> {
    let store = open_store(&config).await?;
    Ok(http::router(state(store, config)?))
}

/// The transparency log in `store`, signed with the configured log key
/// (created on first use; the flag says whether it was just created).
pub(crate) fn transparency_log(
    store: &Store,
    config: &Config,
) -> Result<(conclave_audit::log::TransparencyLog, bool), ServerError> {
    let (signer, created) = log_key::load_or_create(&config.log_key, &config.log_origin)?;
    Ok((
        conclave_audit::log::TransparencyLog::new(store.pool().clone(), signer)
            .reading_from(store.read_pool().clone()),
        created,
    ))
}

fn state(store: Store, config: Config) -> Result<AppState, ServerError> {
    // Spent nonces only matter while their requests could still pass the
    // freshness check; forget the rest off the request path.
    let tasks = Arc::new(tasks::Tasks::new());
    let minute = std::time::Duration::from_secs(60);
    let pruning = store.clone();
    tasks.every("pruning", minute, move || {
        let pruning = pruning.clone();
        async move {
            if let Err(e) = pruning.prune_nonces().await {
                tracing::warn!(error = %e, "pruning request nonces failed");
            }
            if let Err(e) = pruning.prune_auth_state().await {
                tracing::warn!(error = %e, "pruning rate limits and challenges failed");
            }
        }
    });
    let (log, created) = transparency_log(&store, &config)?;
    if created {
        println!(
            "created a new audit log key in {}; give auditors its verifier key:",
            config.log_key
        );
    }
    println!("audit log verifier key: {}", log.verifier_key());
    // Checkpoints follow the log at the configured pace; a device proof that
    // needs a newer one signs it on demand (see api::audit).
    let signing = log.clone();
    let clock = config.clock.clone();
    let interval = std::time::Duration::from_secs(config.checkpoint_interval);
    tasks.every("checkpoints", interval, move || {
        let (signing, now) = (signing.clone(), clock.unix_now());
        async move {
            if let Err(e) = signing.checkpoint(now).await {
                tracing::error!(error = %e, "cannot sign an audit log checkpoint");
            }
        }
    });
    // Witnesses are asked to cosign, a round after each checkpoint round.
    if !config.witnesses.is_empty() {
        let (log, witnesses, http) = (
            log.clone(),
            Arc::new(config.witnesses.clone()),
            witnesses::http_client()?,
        );
        tasks.every("witnesses", interval, move || {
            let (log, witnesses, http) = (log.clone(), witnesses.clone(), http.clone());
            async move { witnesses::cosign_round(&log, &witnesses, &http).await }
        });
    }
    // Failed logins for made-up names enter the log as one count per window.
    let tallying = (
        store.clone(),
        AuditTrail::new(log.clone(), config.record_client_ip, config.clock.clone()),
    );
    tasks.every("unknown-login tallies", minute, move || {
        let (store, audit) = tallying.clone();
        async move {
            if let Err(e) = audit.flush_unknown_logins(&store, false).await {
                tracing::error!(error = %e, "cannot log the failed logins for unknown accounts");
            }
        }
    });
    let notifier = Notifier::new(store.clone());
    let acks = relay::acks::AckWriter::start(store.clone());
    let server_key = server_key::ServerKey::load(&config.server_key)?;
    let relying_party =
        accounts::factors::RelyingParty::new(&config.webauthn_origin, accounts::ISSUER)?;
    let public_reads = limits::Pace::new(config.public_reads_per_second, config.public_read_burst);
    let device_requests = limits::Pace::new(
        config.device_requests_per_second,
        config.device_request_burst,
    );
    let state = AppState {
        audit: AuditTrail::new(log, config.record_client_ip, config.clock.clone()),
        full_buckets: Arc::default(),
        public_reads: Arc::new(public_reads),
        device_requests: Arc::new(device_requests),
        store,
        config: Arc::new(config),
        notifier,
        acks,
        server_key,
        relying_party: Arc::new(relying_party),
        password_server: Arc::default(),
        tasks,
    };
    if state.notifier.shared_database()
        && let Some(url) = state.config.database_url.as_ref()
    {
        let url = url.expose().to_owned();
        let listening = relay::fanout::listen(url, state.notifier.clone());
        state.tasks.spawn("listener for other nodes", listening);
    }
    // Retention: old message ciphertext goes, and the log says so.
    let retaining = state.clone();
    let period = std::time::Duration::from_secs(state.config.retention_interval);
    state.tasks.every("retention", period, move || {
        let retaining = retaining.clone();
        async move {
            if let Err(e) = retaining.relay().apply_retention().await {
                tracing::warn!(error = %e, "applying retention failed");
            }
        }
    });
    // Password logins started and never finished: gone, and in the log.
    let abandoned = state.clone();
    state
        .tasks
        .every("abandoned password logins", minute, move || {
            let abandoned = abandoned.clone();
            async move {
                if let Err(e) = accounts::passwords::log_abandoned_logins(&abandoned).await {
                    tracing::warn!(error = %e, "logging abandoned password logins failed");
                }
            }
        });
    Ok(state)
}

pub(crate) async fn open_store(config: &Config) -> Result<Store, ServerError> {
    // Every file from here on is the owner's alone, and no key file that
    // others can read is used (see `private_files`).
    private_files::restrict_new_files();
    keys::prepare(&config.key_layout())?;
    // A new data directory is the owner's alone too; an existing one may
    // not be, so the database is created 0600 before SQLite opens it.
    let mut data_dir = std::fs::DirBuilder::new();
    data_dir.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut data_dir, 0o700);
    data_dir
        .create(&config.data_dir)
        .map_err(|e| ServerError::file("create data directory", &config.data_dir, e))?;
    let url = match &config.database_url {
        Some(url) => url.expose().to_owned(),
        None => {
            let database = config.data_dir.join("conclave.db");
            // SQLite gives its -wal and -shm files the database file's mode.
            private_files::create_or_restrict(&database)?;
            for suffix in ["-wal", "-shm"] {
                let mut side = database.clone().into_os_string();
                side.push(suffix);
                private_files::restrict_if_present(std::path::Path::new(&side))?;
            }
            format!("sqlite://{}?mode=rwc", database.display())
        }
    };
    let store = Store::connect_with_clock(&url, config.clock.clone())
        .await
        .map_err(|source| ServerError::Database {
            what: "cannot open database",
            source,
        })?;
    refuse_new_keys_for_an_old_workspace(&store, config).await?;
    Ok(store)
}

/// A workspace that has been used holds an audit log signed with its log
/// key and secrets sealed with its server key. A node (or an admin run)
/// started without those files would quietly make new ones: checkpoints no
/// client accepts, TOTP secrets no other node opens. Refuse instead.
async fn refuse_new_keys_for_an_old_workspace(
    store: &Store,
    config: &Config,
) -> Result<(), ServerError> {
    let size = conclave_audit::log::stored_size(store.read_pool())
        .await
        .map_err(|source| ServerError::Database {
            what: "cannot read the audit log",
            source: source.into(),
        })?;
    if size == 0 {
        return Ok(());
    }
    for (source, flag, what) in [
        (
            &config.log_key,
            "--log-key-file",
            "the key that signs its audit log",
        ),
        (
            &config.server_key,
            "--server-key-file",
            "the key that seals its TOTP secrets",
        ),
    ] {
        if let Some(path) = source.file()
            && !path.exists()
        {
            return Err(ServerError::Key(format!(
                "{} does not exist, but this database already belongs to a workspace: \
                 give this node the workspace's file (in its key directory, --key-dir, or \
                 {flag}), {what}, instead of a new one",
                path.display()
            )));
        }
    }
    Ok(())
}

/// Serves HTTPS (TLS 1.3 only) on `listener` until `shutdown` resolves.
pub async fn run(
    listener: std::net::TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServerError> {
    let store = open_store(&config).await?;
    let identity = tls::load_or_generate(&config)?;
    let address = listener.local_addr().map_err(|source| ServerError::Host {
        what: "cannot read the listening address".into(),
        source,
    })?;
    println!("conclave-server listening on https://{address}");
    println!("certificate: {}", identity.cert_path.display());
    println!("certificate SHA-256 fingerprint: {}", identity.fingerprint);
    let backend = match store.backend() {
        Backend::Sqlite => "sqlite",
        Backend::Postgres => "postgres",
    };
    tracing::info!(%address, backend, "serving");
    if let Some(address) = config.metrics_listen {
        let metrics = tokio::net::TcpListener::bind(address)
            .await
            .map_err(|source| ServerError::Host {
                what: format!("cannot listen for metrics on {address}"),
                source,
            })?;
        let bound = metrics.local_addr().map_err(|source| ServerError::Host {
            what: "cannot read the metrics address".into(),
            source,
        })?;
        println!("metrics at http://{bound}/metrics");
        metrics::serve(metrics, store.pools());
    }
    let state = state(store, config)?;
    let flushing = state.clone();
    let router = http::router(state.clone());
    let handle = axum_server::Handle::new();
    let on_shutdown = handle.clone();
    tokio::spawn(async move {
        shutdown.await;
        tracing::info!("shutting down: no new connections; finishing requests in flight");
        // Open streams close with "going away", so their clients move on now
        // rather than when the grace period ends.
        state.notifier.tell_local(Notice::GoingAway);
        on_shutdown.graceful_shutdown(Some(std::time::Duration::from_secs(10)));
    });
    let host = |what: &str| {
        let what = what.to_owned();
        move |source| ServerError::Host { what, source }
    };
    listener
        .set_nonblocking(true)
        .map_err(host("cannot make the listener non-blocking"))?;
    let rustls = axum_server::tls_rustls::RustlsConfig::from_config(identity.config);
    // TCP_NODELAY: an answer or a pushed frame leaves at once. With Nagle's
    // algorithm a small write waits for the peer to acknowledge the one
    // before it, which a peer that delays its ACKs holds back up to 40 ms.
    // The relay already writes each answer, and each burst of frames, in
    // one go, so there is nothing left for Nagle to gather.
    let acceptor = axum_server::tls_rustls::RustlsAcceptor::new(rustls)
        .acceptor(axum_server::accept::NoDelayAcceptor::new());
    axum_server::from_tcp(listener)
        .map_err(host("cannot serve TLS on the listener"))?
        .acceptor(acceptor)
        .handle(handle)
        .serve(router.into_make_service_with_connect_info::<std::net::SocketAddr>())
        .await
        .map_err(host("server failed"))?;
    // Background rounds finish and stop; then what streams acknowledged is
    // written, before the process ends.
    flushing.tasks.shutdown().await;
    flushing.acks.flush().await;
    // Counts of the current window must not die with the process.
    flushing
        .audit
        .flush_unknown_logins(&flushing.store, true)
        .await
        .map_err(|source| ServerError::Database {
            what: "cannot log the failed logins for unknown accounts",
            source,
        })?;
    Ok(())
}
