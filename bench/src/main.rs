//! `conclave-bench`: one run, one report. Build first, then run:
//! `cargo build --release --workspace --bins && target/release/conclave-bench`
//! (the benchmark never builds anything itself: a build would run beside
//! what it measures).
//!
//! 1. Fan-out: the real relay (separate processes: TLS, signed requests, MLS
//!    validation, durable append before the answer) on SQLite, on
//!    PostgreSQL and as two nodes, against a bare axum WebSocket broadcast
//!    (same TLS, no storage, no checks), at channel sizes 10, 100 and 1000.
//! 2. Connections: idle TLS WebSockets held by one node, and its memory per
//!    connection; a reconnect storm onto the surviving node.
//! 3. Durable ingest: the relay's append path against raw sqlx inserts.
//! 4. client-core against raw openmls, in memory.
//!
//! PostgreSQL rows need `CONCLAVE_TEST_DATABASE_URL` (a fresh database is
//! made for each part); without it they are skipped, and the report says so.
//! `--quick` measures channel sizes 10 and 100 only, with 2,000 connections.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a benchmark: a panic is the report

mod client_core;
mod connections;
mod fanout;
mod ingest;

use conclave_tests::{ServerProcess, TempDir, fresh_postgres};
use fanout::Load;

/// Messages per fan-out run.
pub const MESSAGES: usize = 400;
/// Concurrent sender devices.
pub const SENDERS: usize = 4;
/// Message size.
pub const PAYLOAD: usize = 1024;

const USAGE: &str = "\
usage: conclave-bench [--quick]

Measures the relay (real conclave-server processes over TLS) against a bare
TLS WebSocket broadcast, durable ingest against raw inserts, and client-core
against raw openmls, and prints one report.

  --quick   channel sizes 10 and 100 only, and 2,000 idle connections
            instead of 10,000
  --help    this text

Build first: cargo build --release --workspace --bins
PostgreSQL rows need CONCLAVE_TEST_DATABASE_URL; without it they are skipped.";

/// `--quick`, or the reason to stop before measuring anything.
fn arguments() -> Result<bool, std::process::ExitCode> {
    let mut quick = false;
    for argument in std::env::args().skip(1) {
        match argument.as_str() {
            "--quick" => quick = true,
            "--help" | "-h" => {
                use std::io::Write as _;
                // `| head` may close the pipe early: not an error here.
                let _ = writeln!(std::io::stdout(), "{USAGE}");
                return Err(std::process::ExitCode::SUCCESS);
            }
            other => {
                eprintln!("conclave-bench: unknown argument {other:?}\n\n{USAGE}");
                return Err(std::process::ExitCode::from(2));
            }
        }
    }
    let missing = conclave_tests::missing_binaries(&["conclave-server"]);
    if let Some(binary) = missing.first() {
        // Built beside this binary, in the same profile: a debug bench
        // measures debug relays.
        let release = if cfg!(debug_assertions) {
            ""
        } else {
            " --release"
        };
        eprintln!(
            "conclave-bench: {} is missing: build first with `cargo build{release} --workspace --bins`",
            binary.display()
        );
        return Err(std::process::ExitCode::from(2));
    }
    Ok(quick)
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let quick = match arguments() {
        Ok(quick) => quick,
        Err(code) => return code,
    };
    // The relay logs warnings only: logging every request would be measured too.
    conclave_tests::set_relay_log_level("warn");
    let sizes: &[usize] = if quick { &[10, 100] } else { &[10, 100, 1000] };
    let connections = if quick { 2_000 } else { 10_000 };
    println!(
        "conclave-bench: {MESSAGES} messages of {PAYLOAD} B from {SENDERS} concurrent senders per run; \
         the median of 3 runs per row (1 run at 1000 devices)\n"
    );
    fan_out(sizes).await;
    idle_and_storm(connections).await;
    durable_ingest().await;
    client_core::client_vs_openmls().await;
    std::process::ExitCode::SUCCESS
}

fn repeats(members: usize) -> usize {
    if members >= 1000 { 1 } else { 3 }
}

async fn fan_out(sizes: &[usize]) {
    let mut rows: Vec<(usize, &str, Load)> = Vec::new();
    let mut bare = Vec::new();
    for &members in sizes {
        bare.push((members, fanout::bare_load(members, repeats(members)).await));
    }

    // SQLite, one node.
    {
        let node = relay(Vec::new());
        let (host, host_home) = fanout::host(&node).await;
        for &members in sizes {
            let channel = fanout::channel(&node, &host, &host_home, members).await;
            let load = fanout::relay_load(&channel, &[&node], repeats(members)).await;
            rows.push((members, "relay, SQLite", load));
        }
    }

    // PostgreSQL: one node, then a second node sharing the database, with
    // half of every channel's streams on it.
    let mut skipped = false;
    match fresh_postgres("bench_fanout").await {
        None => skipped = true,
        Some(url) => {
            let node_a = relay(vec!["--database-url".into(), url]);
            let (host, host_home) = fanout::host(&node_a).await;
            let mut channels = Vec::new();
            for &members in sizes {
                let channel = fanout::channel(&node_a, &host, &host_home, members).await;
                let load = fanout::relay_load(&channel, &[&node_a], repeats(members)).await;
                rows.push((members, "relay, PostgreSQL", load));
                channels.push(channel);
            }
            let node_b = node_a.another_node();
            for channel in &channels {
                let load =
                    fanout::relay_load(channel, &[&node_a, &node_b], repeats(channel.members))
                        .await;
                rows.push((channel.members, "relay, 2 nodes", load));
            }
        }
    }

    println!("## Fan-out\n");
    println!("| channel | system | accepted msg/s | deliveries/s | p50 ms | p99 ms | p99.9 ms |");
    println!("|---|---|---:|---:|---:|---:|---:|");
    for (members, bare) in &bare {
        print_row(*members, "bare broadcast", bare);
        for (_, system, load) in rows.iter().filter(|(m, _, _)| m == members) {
            print_row(*members, system, load);
        }
        if let Some((_, _, relay)) = rows.iter().find(|(m, _, _)| m == members) {
            println!(
                "| {members} devices | SQLite relay / bare | {:.2} | {:.2} | {:.1}x | {:.1}x | {:.1}x |",
                relay.accepted / bare.accepted,
                relay.deliveries / bare.deliveries,
                relay.p50 / bare.p50,
                relay.p99 / bare.p99,
                relay.p999 / bare.p999
            );
        }
    }
    if skipped {
        println!("\n(PostgreSQL and two-node rows skipped: CONCLAVE_TEST_DATABASE_URL is not set)");
    }
    println!(
        "\nLatency is from the start of a send to its arrival on each device. Two nodes: the \
         senders post to node A, every other device streams from node B."
    );
}

fn print_row(members: usize, system: &str, load: &Load) {
    println!(
        "| {members} devices | {system} | {:.0} | {:.0} | {:.1} | {:.1} | {:.1} |",
        load.accepted, load.deliveries, load.p50, load.p99, load.p999
    );
}

/// A relay process for measuring: release build, warnings only, no rate
/// limits (the crowd signs in from one address faster than any person
/// would), and room for the commit that adds 999 devices at once (with its
/// Welcome, over the default 1 MiB).
fn relay(mut extra: Vec<String>) -> ServerProcess {
    extra.extend([
        "--rate-limits".into(),
        "false".into(),
        "--max-body-bytes".into(),
        "16777216".into(),
    ]);
    ServerProcess::start_with(extra)
}

async fn idle_and_storm(count: usize) {
    println!("\n## Connections\n");
    let idle = connections::idle(count).await;
    let per = idle.rss_after.saturating_sub(idle.rss_before) as f64 / idle.count as f64;
    println!("| measure | value |");
    println!("|---|---:|");
    println!(
        "| idle TLS WebSockets held by one node (SQLite) | {} |",
        idle.count
    );
    println!(
        "| time to open them, {} at a time | {:.1} s ({:.0}/s) |",
        256,
        idle.opened_in.as_secs_f64(),
        idle.count as f64 / idle.opened_in.as_secs_f64()
    );
    println!(
        "| node memory (RSS) before / after | {:.0} MiB / {:.0} MiB |",
        idle.rss_before as f64 / 1048576.0,
        idle.rss_after as f64 / 1048576.0
    );
    println!("| memory per idle connection | {:.1} KiB |", per / 1024.0);
    match fresh_postgres("bench_storm").await {
        None => println!("| reconnect storm | skipped: CONCLAVE_TEST_DATABASE_URL is not set |"),
        Some(url) => {
            let storm = connections::storm(url, count).await;
            println!(
                "| reconnect storm: {} streams of a SIGKILLed node, all at once, onto the other | p50 {:.2} s, p99 {:.2} s, all back in {:.2} s |",
                storm.count,
                storm.p50.as_secs_f64(),
                storm.p99.as_secs_f64(),
                storm.all_back.as_secs_f64()
            );
        }
    }
}

async fn durable_ingest() {
    println!("\n## Durable ingest\n");
    println!("| database | relay append (group commit) rows/s | raw sqlx insert rows/s | ratio |");
    println!("|---|---:|---:|---:|");
    let dir = TempDir::new("bench-ingest");
    let sqlite = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("ingest.db").display()
    );
    let mut targets = vec![("SQLite (WAL, synchronous=FULL)", sqlite)];
    if let Some(url) = fresh_postgres("bench_ingest").await {
        targets.push(("PostgreSQL (synchronous_commit on)", url));
    }
    for (name, url) in targets {
        let result = ingest::ingest(&url).await;
        println!(
            "| {name} | {:.0} | {:.0} | {:.2} |",
            result.store,
            result.raw,
            result.store / result.raw
        );
    }
    println!(
        "\n64 writers at once, 6,400 rows of 1 KiB over 16 groups. The relay's append checks for a \
         repeat, compares the epoch and takes the next position in the same transaction; \
         the raw insert only inserts, one durable statement per row.\n"
    );
}
