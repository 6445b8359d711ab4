//! `conclave-server`: see `conclave-server --help`.

use clap::Parser;
use conclave_server::{Args, Config, LogFormat};

/// The command line: the relay's settings, and optionally a command to run
/// instead of serving.
#[derive(Debug, Parser)]
#[command(
    name = "conclave-server",
    version,
    about = "The Conclave relay: stores only MLS ciphertext and public keys"
)]
struct CommandLine {
    #[command(flatten)]
    settings: Args,
    /// What to do instead of serving.
    #[command(subcommand)]
    command: Option<conclave_server::admin::Command>,
}

#[tokio::main]
async fn main() {
    if let Err(message) = serve(CommandLine::parse()).await {
        eprintln!("conclave-server: {message}");
        std::process::exit(1);
    }
}

/// Logs to stderr, as text or JSON lines; `CONCLAVE_LOG` sets the levels.
fn start_logging(format: LogFormat, admin_command: bool) {
    // An admin command prints its answer; only problems go to the log.
    // PostgreSQL's notices ("relation … already exists, skipping" at every
    // start) are not news.
    let default_level = if admin_command {
        "warn"
    } else {
        "info,sqlx::postgres::notice=warn"
    };
    let logs = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("CONCLAVE_LOG")
                .unwrap_or_else(|_| default_level.into()),
        )
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => logs.init(),
        LogFormat::Json => logs.json().flatten_event(true).init(),
    }
}

async fn serve(command_line: CommandLine) -> Result<(), String> {
    let CommandLine { settings, command } = command_line;
    let config = Config::resolve(settings)?;
    start_logging(config.log_format, command.is_some());
    if let Some(conclave_server::admin::Command::Admin(command)) = command {
        return conclave_server::admin::run(config, command).await;
    }
    let listener = std::net::TcpListener::bind(config.listen)
        .map_err(|e| format!("cannot listen on {}: {e}", config.listen))?;
    // SIGTERM (an orchestrator stopping the node) or Ctrl-C: stop accepting,
    // finish what is in flight, send open streams away.
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|e| format!("cannot watch for SIGTERM: {e}"))?;
    let shutdown = async move {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = terminate.recv() => {}
        }
    };
    conclave_server::run(listener, config, shutdown).await
}
