//! Prometheus metrics, served as text on `--metrics-listen` (plain HTTP, for
//! the operator's network only: counts and timings, never content, users
//! or groups).

use std::sync::LazyLock;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// Every metric of this process.
pub(crate) struct Metrics {
    registry: Registry,
    /// Messages appended, by kind (`application`, `commit`, `proposal`, `welcome`).
    accepted: Family<Vec<(String, String)>, Counter>,
    /// Messages pushed down a stream.
    pub(crate) delivered: Counter,
    /// Seconds from acceptance on this node to a push down a stream here.
    pub(crate) delivery_latency: Histogram,
    /// Push streams open now.
    pub(crate) open_streams: Gauge,
    /// Commits refused because the group had moved to another epoch.
    pub(crate) commit_conflicts: Counter,
    /// Requests refused by a rate limit.
    pub(crate) rate_limited: Counter,
    db_connections: Gauge,
    db_idle: Gauge,
}

/// The process's metrics.
pub(crate) static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);

impl Metrics {
    fn new() -> Self {
        let mut registry = Registry::with_prefix("conclave");
        let accepted = Family::<Vec<(String, String)>, Counter>::default();
        registry.register(
            "messages_accepted",
            "Messages appended to groups, by kind",
            accepted.clone(),
        );
        let delivered = Counter::default();
        registry.register(
            "messages_delivered",
            "Messages pushed to devices over their streams",
            delivered.clone(),
        );
        // 0.5 ms to about 16 s.
        let delivery_latency = Histogram::new(
            prometheus_client::metrics::histogram::exponential_buckets(0.0005, 2.0, 16),
        );
        registry.register(
            "delivery_latency_seconds",
            "From acceptance to the push down a stream, on the same node",
            delivery_latency.clone(),
        );
        let open_streams = Gauge::default();
        registry.register(
            "open_streams",
            "Push streams (WebSocket connections) open now",
            open_streams.clone(),
        );
        let commit_conflicts = Counter::default();
        registry.register(
            "commit_conflicts",
            "Commits refused with wrong_epoch: another commit came first",
            commit_conflicts.clone(),
        );
        let rate_limited = Counter::default();
        registry.register(
            "rate_limited_requests",
            "Requests refused with 429",
            rate_limited.clone(),
        );
        let db_connections = Gauge::default();
        registry.register(
            "db_pool_connections",
            "Database connections open (on SQLite, the readers and the writer)",
            db_connections.clone(),
        );
        let db_idle = Gauge::default();
        registry.register(
            "db_pool_idle_connections",
            "Database connections idle (on SQLite, the readers and the writer)",
            db_idle.clone(),
        );
        Self {
            registry,
            accepted,
            delivered,
            delivery_latency,
            open_streams,
            commit_conflicts,
            rate_limited,
            db_connections,
            db_idle,
        }
    }

    /// Counts one appended message of `kind`.
    pub(crate) fn accepted(&self, kind: &str) {
        self.accepted
            .get_or_create(&vec![("kind".to_owned(), kind.to_owned())])
            .inc();
    }

    /// The text exposition, with the pools' figures as of now (summed: on
    /// SQLite the readers and the one writer).
    pub(crate) fn render(&self, pools: &[sqlx::AnyPool]) -> String {
        let open: u32 = pools.iter().map(sqlx::AnyPool::size).sum();
        let idle: usize = pools.iter().map(sqlx::AnyPool::num_idle).sum();
        self.db_connections.set(i64::from(open));
        self.db_idle.set(i64::try_from(idle).unwrap_or(i64::MAX));
        let mut text = String::new();
        if encode(&mut text, &self.registry).is_err() {
            text.clear();
        }
        text
    }
}

/// Counts a push stream for as long as it lives.
pub(crate) struct OpenStream;

impl OpenStream {
    pub(crate) fn new() -> Self {
        METRICS.open_streams.inc();
        OpenStream
    }
}

impl Drop for OpenStream {
    fn drop(&mut self) {
        METRICS.open_streams.dec();
    }
}

/// Serves `/metrics` over plain HTTP on `listener` until the process ends.
pub(crate) fn serve(listener: tokio::net::TcpListener, pools: Vec<sqlx::AnyPool>) {
    use axum::routing::get;
    let app = axum::Router::new().route(
        "/metrics",
        get(move || {
            let pools = pools.clone();
            async move {
                (
                    [(
                        axum::http::header::CONTENT_TYPE,
                        "application/openmetrics-text; version=1.0.0; charset=utf-8",
                    )],
                    METRICS.render(&pools),
                )
            }
        }),
    );
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(error = %e, "metrics endpoint stopped");
        }
    });
}
