//! `sqlx::migrate!` reads `migrations/` while compiling; a new file there
//! must rebuild the relay even when no Rust source changed.

fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
