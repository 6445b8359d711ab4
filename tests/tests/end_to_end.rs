//! The end-to-end tests: the real relay binary over real TLS, the real
//! client core, the `conclave` and `conclave-audit` binaries, SQLite and
//! PostgreSQL. Each file is one module of this one test binary (see
//! `tests/Cargo.toml`); `cargo test -p conclave-tests abuse::` runs one file.

mod abuse;
mod accounts;
mod architecture;
mod audit_atomic;
mod audit_log;
mod bots;
mod chaos;
mod device_key;
mod e2e;
mod files;
mod in_process;
mod integrations;
mod messaging;
mod migrations;
mod opaque;
mod operations;
mod privacy;
mod public_channels;
mod readme;
mod replay_post;
mod rough_edges;
mod scale_out;
mod storage;
mod transparency;
mod tui;
