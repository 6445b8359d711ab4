//! `conclave-bench`: one run, one report. Build first, then run:
//! `cargo build --release --workspace --bins && target/release/conclave-bench`
//! (the benchmark never builds anything itself: a build would run beside
//! what it measures).
//!
//! 1. Fan-out: the real relay (separate processes: TLS, signed requests, MLS
//!    validation, durable append before the answer) on SQLite, on
//!    PostgreSQL and as two nodes, against a bare axum WebSocket broadcast
//!    (same TLS, no storage, no checks), at channel sizes 10, 100 and 1000:
//!    at the most each accepts (closed loop), then at 100% and 50% of that
//!    (open loop), every device acknowledging every message.
//! 2. Connections: idle TLS WebSockets held by one node, and its memory per
//!    connection; a reconnect storm onto the surviving node.
//! 3. Durable ingest: the relay's append path against a multi-row insert of
//!    the same rows, and against one insert statement per row.
//! 4. client-core: a durable send against its floor measured in the same
//!    run, and against raw openmls in memory.
//!
//! PostgreSQL rows need `CONCLAVE_TEST_DATABASE_URL` (a fresh database is
//! made for each part); without it they are skipped, and the report says so.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a benchmark: a panic is the report

mod bare;
mod client_core;
mod connections;
mod fanout;
mod ingest;
mod load;

use std::time::{Duration, Instant};

use conclave_tests::{ServerProcess, TempDir, fresh_postgres};
use fanout::{Rows, Senders};
use load::{Load, Percentiles};

/// Message size.
pub const PAYLOAD: usize = 1024;
/// Member devices that send (fewer when the channel is smaller).
pub const SENDER_DEVICES: usize = 8;
/// Sends in flight at once in the closed loop, spread over the sender
/// devices: enough to saturate both systems. With 16, the relay's and the
/// benchmark's processes left a tenth of the two cores idle at 100 devices,
/// and 32 and 64 each delivered more, on both systems.
pub const IN_FLIGHT: usize = 64;

/// How long and how large each fan-out phase is.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    /// At least this many messages per phase.
    pub min_messages: usize,
    /// At least this long per phase (the open loop sends for this long).
    pub phase: Duration,
}

const USAGE: &str = "\
usage: conclave-bench [--quick | --full] [--only PART]

Measures the relay (real conclave-server processes over TLS) against a bare
TLS WebSocket broadcast, durable ingest against a multi-row insert of the same
rows, and client-core's durable send against its floor (an fsync on each side,
a loopback TLS round trip, openmls), and prints one report.

  --quick   channel sizes 10 and 100 only, shorter phases, and 2,000 idle
            connections instead of 10,000
  --full    also holds 50,000 idle connections
  --only PART
            measures one part only: fan-out, connections, ingest or
            client-core
  --help    this text

Build first: cargo build --release --workspace --bins
PostgreSQL rows need CONCLAVE_TEST_DATABASE_URL; without it they are skipped.";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Quick,
    Default,
    Full,
}

/// The parts of the report.
const PARTS: [&str; 4] = ["fan-out", "connections", "ingest", "client-core"];

/// What to run.
struct Options {
    mode: Mode,
    /// One part of [`PARTS`] only.
    only: Option<String>,
}

impl Options {
    fn runs(&self, part: &str) -> bool {
        self.only.as_deref().is_none_or(|only| only == part)
    }
}

/// The options, or the reason to stop before measuring anything.
fn arguments() -> Result<Options, std::process::ExitCode> {
    let mut mode = Mode::Default;
    let mut only = None;
    let mut arguments = std::env::args().skip(1);
    while let Some(argument) = arguments.next() {
        match argument.as_str() {
            "--quick" if mode != Mode::Full => mode = Mode::Quick,
            "--full" if mode != Mode::Quick => mode = Mode::Full,
            "--only" => match arguments.next() {
                Some(part) if PARTS.contains(&part.as_str()) => only = Some(part),
                part => {
                    eprintln!(
                        "conclave-bench: --only takes one of {}, not {part:?}\n\n{USAGE}",
                        PARTS.join(", ")
                    );
                    return Err(std::process::ExitCode::from(2));
                }
            },
            "--help" | "-h" => {
                use std::io::Write as _;
                // `| head` may close the pipe early: not an error here.
                let _ = writeln!(std::io::stdout(), "{USAGE}");
                return Err(std::process::ExitCode::SUCCESS);
            }
            other => {
                eprintln!("conclave-bench: unexpected argument {other:?}\n\n{USAGE}");
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
    Ok(Options { mode, only })
}

/// Raises this process's limit on open files to `wanted` (the relays it
/// starts inherit it): each idle connection is a socket on both sides.
/// The limit it got.
fn raise_open_files(wanted: u64) -> u64 {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let now = getrlimit(Resource::Nofile);
    if now.current.is_none_or(|soft| soft >= wanted) {
        return now.current.unwrap_or(u64::MAX);
    }
    let ceiling = std::fs::read_to_string("/proc/sys/fs/nr_open")
        .ok()
        .and_then(|n| n.trim().parse::<u64>().ok())
        .unwrap_or(wanted);
    let wanted = wanted.min(ceiling);
    let raised = Rlimit {
        current: Some(wanted),
        maximum: Some(now.maximum.map_or(wanted, |hard| hard.max(wanted))),
    };
    // Raising the hard limit needs privilege; the soft one can go up to it.
    if setrlimit(Resource::Nofile, raised).is_err() {
        let soft = Rlimit {
            current: now.maximum,
            maximum: now.maximum,
        };
        let _ = setrlimit(Resource::Nofile, soft);
    }
    getrlimit(Resource::Nofile).current.unwrap_or(u64::MAX)
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let options = match arguments() {
        Ok(options) => options,
        Err(code) => return code,
    };
    let mode = options.mode;
    let started = Instant::now();
    // The relay logs warnings only: logging every request would be measured too.
    conclave_tests::set_relay_log_level("warn");
    let sizes: &[usize] = if mode == Mode::Quick {
        &[10, 100]
    } else {
        &[10, 100, 1000]
    };
    let connections: &[usize] = match mode {
        Mode::Quick => &[2_000],
        Mode::Default => &[10_000],
        Mode::Full => &[10_000, 50_000],
    };
    let open_files = raise_open_files(*connections.iter().max().unwrap() as u64 + 16_384);
    let settings = if mode == Mode::Quick {
        Settings {
            min_messages: 100,
            phase: Duration::from_secs(1),
        }
    } else {
        Settings {
            min_messages: 200,
            phase: Duration::from_secs(3),
        }
    };
    println!(
        "conclave-bench{}: messages of {PAYLOAD} B; each fan-out phase sends at least {} messages \
         for at least {} s\n",
        match mode {
            Mode::Quick => " --quick",
            Mode::Default => "",
            Mode::Full => " --full",
        },
        settings.min_messages,
        settings.phase.as_secs_f64()
    );
    let fan_out = match options.runs("fan-out") {
        true => Some(fan_out(sizes, &settings).await),
        false => None,
    };
    let idle = match options.runs("connections") {
        true => idle_and_storm(connections, open_files).await,
        false => Vec::new(),
    };
    let ingest = match options.runs("ingest") {
        true => durable_ingest().await,
        false => Vec::new(),
    };
    let send = match options.runs("client-core") {
        true => {
            println!("## client-core\n");
            Some(client_core::client_vs_openmls().await)
        }
        false => None,
    };
    goals(fan_out.as_ref(), &idle, &ingest, send);
    println!(
        "\n(the whole run took {:.0} s)",
        started.elapsed().as_secs_f64()
    );
    std::process::ExitCode::SUCCESS
}

/// What the goals are checked against: per channel size, the bare
/// broadcast's rows and the one-node SQLite relay's.
struct FanOut {
    bare: Vec<(usize, Rows)>,
    sqlite: Vec<(usize, Rows)>,
}

async fn fan_out(sizes: &[usize], settings: &Settings) -> FanOut {
    let mut rows: Vec<(usize, &str, Rows)> = Vec::new();
    let mut bare = Vec::new();
    let mut sqlite = Vec::new();
    for &members in sizes {
        bare.push((members, fanout::bare(members, settings).await));
    }

    // SQLite, one node.
    {
        let node = relay(Vec::new());
        let (host, host_home) = fanout::host(&node).await;
        for &members in sizes {
            let mut channel = fanout::channel(&node, &host, &host_home, members).await;
            let system = "relay, SQLite";
            let measured =
                fanout::relay(&mut channel, &[&node], system, settings, Senders::Posting).await;
            rows.push((members, system, measured));
            sqlite.push((members, measured));
            // The same channel with client-core's own send behind each post,
            // on the same two cores as the relay.
            let system = "relay, SQLite, client-core senders";
            let measured =
                fanout::relay(&mut channel, &[&node], system, settings, Senders::Clients).await;
            rows.push((members, system, measured));
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
                let mut channel = fanout::channel(&node_a, &host, &host_home, members).await;
                let system = "relay, PostgreSQL";
                let measured =
                    fanout::relay(&mut channel, &[&node_a], system, settings, Senders::Posting)
                        .await;
                rows.push((members, system, measured));
                channels.push(channel);
            }
            let node_b = node_a.another_node();
            for channel in &mut channels {
                let system = "relay, 2 nodes";
                let nodes = [&node_a, &node_b];
                let measured =
                    fanout::relay(channel, &nodes, system, settings, Senders::Posting).await;
                rows.push((channel.members, system, measured));
            }
        }
    }

    println!("## Fan-out\n");
    println!(
        "| channel | system | load | accepted msg/s | deliveries/s | send→ack ms p50 / p99 / p99.9 | \
         send→last delivery ms p50 / p99 / p99.9 | CPU cores system / bench | errors |"
    );
    println!("|---|---|---|---:|---:|---:|---:|---:|---:|");
    for (members, bare) in &bare {
        print_rows(*members, "bare broadcast", bare);
        for (_, system, measured) in rows.iter().filter(|(m, _, _)| m == members) {
            print_rows(*members, system, measured);
        }
        if let Some((_, relay)) = sqlite.iter().find(|(m, _)| m == members) {
            let (relay, bare) = (&relay.max, &bare.max);
            let ratio = |relay: &Percentiles, bare: &Percentiles| {
                format!(
                    "{:.1}x / {:.1}x / {:.1}x",
                    relay.p50 / bare.p50,
                    relay.p99 / bare.p99,
                    relay.p999 / bare.p999
                )
            };
            println!(
                "| {members} devices | SQLite relay / bare | max | {:.2} | **{:.2}** | {} | {} | | |",
                relay.accepted / bare.accepted,
                relay.deliveries / bare.deliveries,
                ratio(&relay.ack, &bare.ack),
                ratio(&relay.last_delivery, &bare.last_delivery),
            );
        }
    }
    if skipped {
        println!("\n(PostgreSQL and two-node rows skipped: CONCLAVE_TEST_DATABASE_URL is not set)");
    }
    println!(
        "\n**max**: a closed loop, {IN_FLIGHT} sends in flight spread over {SENDER_DEVICES} sender \
         devices (fewer in a smaller channel), each sender warmed by one send first (as a client \
         that has checked its channel's members). **open 100% / 50%**: sends due at a fixed rate, \
         that share of the rate the max just sustained (messages accepted, or \
         delivered to every device, per second, whichever is fewer), each timed from when it was due, whatever the \
         answers before it did. Every member device reads its TLS WebSocket stream and \
         acknowledges every message as client-core does (its `AckPacer`: the first at once, then \
         at most one frame every 100 ms for all read since). send→ack: until the \
         sender has the answer (the relay's 200 after a durable append); send→last delivery: until \
         the message is on the last device of the channel. The relay's senders post, each in a \
         request it signs, an MLS message shaped as one of the channel's own 1 KiB messages \
         (same group, epoch and length, its bytes made unique), as the bare broadcast's sender \
         posts a ready frame of the same shape with no signature, storage or checks; rows marked \
         client-core senders send through client-core instead (MLS encryption and a durable \
         local write per send, on the same cores). Streams write what is ready in one flush, \
         on both. CPU: cores kept busy on average by \
         the relay processes and by the benchmark's own process (senders, receivers, and the bare \
         broadcast itself), of 2. errors: failed sends plus deliveries that never came. Two nodes: \
         the senders post to node A; every other device streams from node B.\n"
    );
    FanOut { bare, sqlite }
}

fn print_rows(members: usize, system: &str, rows: &Rows) {
    let cell = |p: &Percentiles| format!("{:.1} / {:.1} / {:.1}", p.p50, p.p99, p.p999);
    for (label, load) in [
        (
            format!("max ({IN_FLIGHT} in flight; {} msgs)", rows.max.messages),
            &rows.max,
        ),
        (open_label("open 100%", &rows.full), &rows.full),
        (open_label("open 50%", &rows.half), &rows.half),
    ] {
        let cpu = match load.system_cpu {
            Some(system) => format!("{system:.2} / {:.2}", load.bench_cpu),
            None => format!("– / {:.2}", load.bench_cpu),
        };
        println!(
            "| {members} devices | {system} | {label} | {:.0} | {:.0} | {} | {} | {cpu} | {} |",
            load.accepted,
            load.deliveries,
            cell(&load.ack),
            cell(&load.last_delivery),
            load.failed + load.missing,
        );
    }
}

fn open_label(name: &str, load: &Load) -> String {
    format!(
        "{name} ({:.0}/s; {} msgs)",
        load.offered.unwrap_or_default(),
        load.messages
    )
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

/// Idle connections a node can hold with `open_files` open files per
/// process: its own database and listening sockets need a few more.
fn holdable(open_files: u64) -> usize {
    usize::try_from(open_files.saturating_sub(1_024)).unwrap_or(usize::MAX)
}

async fn idle_and_storm(
    counts: &[usize],
    open_files: u64,
) -> Vec<(usize, Option<connections::Idle>)> {
    println!("## Connections\n");
    println!("| measure | value |");
    println!("|---|---:|");
    let mut held = Vec::new();
    for &count in counts {
        if count > holdable(open_files) {
            println!(
                "| idle TLS WebSockets held by one node (SQLite) | {count}: not measured, one process may \
                 open only {open_files} files here and raising that needs privilege (CAP_SYS_RESOURCE) \
                 this machine does not give |"
            );
            held.push((count, None));
            continue;
        }
        let idle = connections::idle(count).await;
        let per = idle.rss_after.saturating_sub(idle.rss_before) as f64 / idle.count as f64;
        println!(
            "| idle TLS WebSockets held by one node (SQLite), from {} source address{} | {} with **{} errors** |",
            idle.sources,
            if idle.sources == 1 { "" } else { "es" },
            idle.count,
            idle.errors
        );
        println!(
            "| time to open them, {} at a time | {:.1} s ({:.0}/s) |",
            connections::OPENING,
            idle.opened_in.as_secs_f64(),
            idle.count as f64 / idle.opened_in.as_secs_f64()
        );
        println!(
            "| node memory (RSS) before / after | {:.0} MiB / {:.0} MiB |",
            idle.rss_before as f64 / 1048576.0,
            idle.rss_after as f64 / 1048576.0
        );
        println!("| memory per idle connection | {:.1} KiB |", per / 1024.0);
        held.push((count, Some(idle)));
    }
    let storm_count = counts[0];
    match fresh_postgres("bench_storm").await {
        None => println!("| reconnect storm | skipped: CONCLAVE_TEST_DATABASE_URL is not set |"),
        Some(url) => {
            let storm = connections::storm(url, storm_count).await;
            println!(
                "| reconnect storm: {} streams of a SIGKILLed node, all at once, onto the other ({} did not open) | p50 {:.2} s, p99 {:.2} s, all back in {:.2} s |",
                storm.count,
                storm.errors,
                storm.p50.as_secs_f64(),
                storm.p99.as_secs_f64(),
                storm.all_back.as_secs_f64()
            );
        }
    }
    println!(
        "\nErrors: streams that did not open, or that closed while held (each is read, \
         answering the relay's pings). The reconnect storm: two nodes on PostgreSQL, every \
         stream on node A, each client reconnecting at once, with no jitter, through \
         client-core's transport naming both nodes.\n"
    );
    held
}

/// Per database: its name, and the relay's and the multi-row insert's rates.
async fn durable_ingest() -> Vec<(&'static str, ingest::Ingest)> {
    println!("## Durable ingest\n");
    println!(
        "| database | relay append (group commit) rows/s | multi-row insert rows/s | relay / multi-row | one insert per row rows/s |"
    );
    println!("|---|---:|---:|---:|---:|");
    let dir = TempDir::new("bench-ingest");
    let sqlite = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("ingest.db").display()
    );
    let mut targets = vec![("SQLite (WAL, synchronous=FULL)", sqlite)];
    if let Some(url) = fresh_postgres("bench_ingest").await {
        targets.push(("PostgreSQL (synchronous_commit on)", url));
    }
    let mut results = Vec::new();
    for (name, url) in targets {
        let result = ingest::ingest(&url).await;
        println!(
            "| {name} | {:.0} | {:.0} | **{:.2}** | {:.0} |",
            result.store,
            result.multi_row,
            result.store / result.multi_row,
            result.raw,
        );
        results.push((name, result));
    }
    println!(
        "\n6,400 rows of 1 KiB over 16 groups, into the relay's own table with its connection \
         settings. The relay's append: 64 writers at once, each append checking for a repeat, \
         comparing the epoch and taking the next position, durable before it returns. Multi-row \
         insert: the same rows from one writer, {} rows per INSERT, each its own durable \
         transaction. One insert per row: 64 writers, one durable statement per row.\n",
        ingest::BATCH
    );
    results
}

/// The goals of issue 19, against what this run measured.
fn goals(
    fan_out: Option<&FanOut>,
    idle: &[(usize, Option<connections::Idle>)],
    ingest: &[(&str, ingest::Ingest)],
    send: Option<client_core::SendCost>,
) {
    println!("## Goals\n");
    println!("| goal | this run | met |");
    println!("|---|---:|:---:|");
    if let Some(fan_out) = fan_out {
        fan_out_goals(fan_out);
    }
    if let Some(send) = send {
        let ratio = send.send / send.floor;
        println!(
            "| client-core durable send ≤ 2x the floor | {:.2} ms / {:.2} ms = {ratio:.1}x | {} |",
            send.send,
            send.floor,
            met(ratio <= 2.0)
        );
    }
    for (name, result) in ingest {
        let ratio = result.store / result.multi_row;
        println!(
            "| durable ingest ≥ 0.5x a multi-row insert, {name} | {ratio:.2}x | {} |",
            met(ratio >= 0.5)
        );
    }
    for (count, idle) in idle {
        match idle {
            Some(idle) => println!(
                "| {count} idle TLS WebSockets, 0 errors | {} errors | {} |",
                idle.errors,
                met(idle.errors == 0)
            ),
            None => println!(
                "| {count} idle TLS WebSockets, 0 errors | not measurable here (open-files limit) | |"
            ),
        }
    }
    let measured = idle.iter().filter_map(|(_, idle)| idle.as_ref());
    if let Some(idle) = measured.max_by_key(|idle| idle.count) {
        let per =
            idle.rss_after.saturating_sub(idle.rss_before) as f64 / idle.count as f64 / 1024.0;
        println!(
            "| memory per idle stream < 12 KiB | {per:.1} KiB | {} |",
            met(per < 12.0)
        );
    }
}

fn met(ok: bool) -> &'static str {
    if ok { "yes" } else { "no" }
}

/// The fan-out goals: deliveries against the bare broadcast, and the
/// 1000-device tail.
fn fan_out_goals(fan_out: &FanOut) {
    for members in [100, 1000] {
        let bare = fan_out.bare.iter().find(|(m, _)| *m == members);
        let relay = fan_out.sqlite.iter().find(|(m, _)| *m == members);
        match (bare, relay) {
            (Some((_, bare)), Some((_, relay))) => {
                let ratio = relay.max.deliveries / bare.max.deliveries;
                println!(
                    "| deliveries/s at {members} devices ≥ 0.5x bare broadcast (SQLite relay, max) | {ratio:.2}x | {} |",
                    met(ratio >= 0.5)
                );
            }
            _ => println!(
                "| deliveries/s at {members} devices ≥ 0.5x bare broadcast | not measured (--quick) | |"
            ),
        }
    }
    match fan_out.sqlite.iter().find(|(m, _)| *m == 1000) {
        Some((_, relay)) => {
            for (share, load) in [("50%", &relay.half), ("100%", &relay.full)] {
                let p999 = load.last_delivery.p999;
                println!(
                    "| p99.9 send→last delivery at 1000 devices, one node (SQLite), {share} of max load, < 250 ms | {p999:.0} ms | {} |",
                    met(p999 < 250.0 && load.missing == 0)
                );
            }
        }
        None => println!(
            "| p99.9 send→last delivery at 1000 devices, one node, < 250 ms | not measured (--quick) | |"
        ),
    }
}
