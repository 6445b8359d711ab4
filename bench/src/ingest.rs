//! Durable ingest: the relay's own append path (`Store::append`: duplicate
//! check, epoch compare-and-swap, position, insert, with group commit)
//! against two raw sqlx inserts of the same rows into the same table, with
//! the same connection settings (SQLite: WAL, synchronous=FULL):
//!
//! - one durable statement per row, from as many writers as the relay's;
//! - the baseline: multi-row `INSERT`s of `BATCH` rows, each batch one
//!   durable transaction, from one writer (what a single writer that
//!   gathers rows can reach).

use std::sync::Arc;
use std::time::Instant;

use conclave_server::{Backend, MessageKind, Store};

use crate::PAYLOAD;

/// Writers at once.
const WRITERS: usize = 64;
/// Rows each writer adds.
const PER_WRITER: usize = 100;
/// Groups the rows are spread over.
const GROUPS: usize = 16;
/// Rows per multi-row insert: as many as the relay's writers have waiting
/// at most.
pub const BATCH: usize = WRITERS;

/// Rows per second through each path.
pub struct Ingest {
    pub store: f64,
    /// One statement per row.
    pub raw: f64,
    /// Multi-row inserts, one transaction each.
    pub multi_row: f64,
}

const INSERT: &str = "INSERT INTO messages (group_id, seq, kind, epoch, sender_device, payload, created_at, payload_hash) VALUES ";

fn payload(writer: usize, n: usize) -> Vec<u8> {
    let mut bytes = format!("{writer}:{n}:").into_bytes();
    bytes.resize(PAYLOAD, b'x');
    bytes
}

pub async fn ingest(url: &str) -> Ingest {
    let store = Store::connect(url).await.unwrap();
    store.create_account("bench", "not-a-hash").await.unwrap();
    let registration = conclave_audit::Event::new(0, 0, conclave_audit::DEVICE_ADDED)
        .actor("bench")
        .device("bench-device")
        .detail("public_key", "00");
    store
        .add_device("bench", "bench-device", &[1; 32], registration)
        .await
        .unwrap();
    for g in 0..GROUPS {
        for prefix in ["store", "raw", "multi"] {
            let group = format!("{prefix}-{g}");
            store
                .create_group(
                    &group,
                    0,
                    b"s",
                    "bench-device",
                    "bench",
                    None,
                    conclave_audit::Event::new(0, 0, "group_created").actor("bench"),
                )
                .await
                .unwrap();
        }
    }

    // The relay's path.
    let started = Instant::now();
    let mut writers = Vec::new();
    for w in 0..WRITERS {
        let store = store.clone();
        writers.push(tokio::spawn(async move {
            for n in 0..PER_WRITER {
                let group = format!("store-{}", (w + n) % GROUPS);
                store
                    .append(
                        &group,
                        0,
                        MessageKind::Application,
                        "bench-device",
                        &payload(w, n),
                        None,
                    )
                    .await
                    .unwrap()
                    .unwrap();
            }
        }));
    }
    for writer in writers {
        writer.await.unwrap();
    }
    let store_rate = (WRITERS * PER_WRITER) as f64 / started.elapsed().as_secs_f64();

    // The same rows, inserted raw: positions handed out up front, no checks.
    let pool = store.pool().clone();
    let next = Arc::new(std::sync::Mutex::new(vec![0i64; GROUPS]));
    let started = Instant::now();
    let mut writers = Vec::new();
    for w in 0..WRITERS {
        let (pool, next) = (pool.clone(), next.clone());
        writers.push(tokio::spawn(async move {
            for n in 0..PER_WRITER {
                let g = (w + n) % GROUPS;
                let seq = {
                    let mut next = next.lock().unwrap();
                    next[g] += 1;
                    next[g]
                };
                let payload = payload(w, n);
                sqlx::query(&format!(
                    "{INSERT} ($1, $2, 'application', 0, 'bench-device', $3, 0, $4)"
                ))
                .bind(format!("raw-{g}"))
                .bind(seq)
                .bind(payload.clone())
                .bind(conclave_crypto::sha256_hex(&payload))
                .execute(&pool)
                .await
                .unwrap();
            }
        }));
    }
    for writer in writers {
        writer.await.unwrap();
    }
    let raw_rate = (WRITERS * PER_WRITER) as f64 / started.elapsed().as_secs_f64();

    // The same rows again, in multi-row inserts of `BATCH` rows.
    let rows: Vec<(usize, Vec<u8>)> = (0..WRITERS)
        .flat_map(|w| (0..PER_WRITER).map(move |n| ((w + n) % GROUPS, payload(w, n))))
        .collect();
    let mut next = [0i64; GROUPS];
    let started = Instant::now();
    // Numbered parameters on PostgreSQL; anonymous ones on SQLite, which
    // finds a numbered one by a linear search (as the relay's own
    // multi-row statements do, so that neither side pays it).
    let parameter = |n: usize| match store.backend() {
        Backend::Sqlite => "?".to_owned(),
        Backend::Postgres => format!("${n}"),
    };
    for batch in rows.chunks(BATCH) {
        let values: Vec<String> = (0..batch.len())
            .map(|r| {
                let at = r * 4;
                format!(
                    "({}, {}, 'application', 0, 'bench-device', {}, 0, {})",
                    parameter(at + 1),
                    parameter(at + 2),
                    parameter(at + 3),
                    parameter(at + 4)
                )
            })
            .collect();
        let sql = format!("{INSERT}{}", values.join(", "));
        let mut insert = sqlx::query(&sql);
        for (g, payload) in batch {
            next[*g] += 1;
            insert = insert
                .bind(format!("multi-{g}"))
                .bind(next[*g])
                .bind(payload.clone())
                .bind(conclave_crypto::sha256_hex(payload));
        }
        let mut tx = pool.begin().await.unwrap();
        insert.execute(&mut *tx).await.unwrap();
        tx.commit().await.unwrap();
    }
    let multi_row_rate = rows.len() as f64 / started.elapsed().as_secs_f64();
    Ingest {
        store: store_rate,
        raw: raw_rate,
        multi_row: multi_row_rate,
    }
}
