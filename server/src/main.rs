//! `conclave-server`: see `conclave-server --help`.

use clap::Parser;
use conclave_server::{Args, Config};

#[tokio::main]
async fn main() {
    let args = Args::parse();
    // An admin command prints its answer; only problems go to the log.
    let default_level = if args.command.is_some() {
        "warn"
    } else {
        "info"
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("CONCLAVE_LOG")
                .unwrap_or_else(|_| default_level.into()),
        )
        .with_writer(std::io::stderr)
        .init();
    if let Err(message) = serve(args).await {
        eprintln!("conclave-server: {message}");
        std::process::exit(1);
    }
}

async fn serve(mut args: Args) -> Result<(), String> {
    let command = args.command.take();
    let config = Config::resolve(args)?;
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
