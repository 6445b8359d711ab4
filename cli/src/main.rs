//! `conclave`: end-to-end encrypted team chat from the terminal.
//!
//! ```text
//! conclave --server https://127.0.0.1:8443 --pin-sha256 <fingerprint> --home ~/.conclave-alice register alice
//! conclave --home ~/.conclave-alice channel create general
//! conclave --home ~/.conclave-alice channel invite general bob
//! conclave --home ~/.conclave-alice send general "hello bob"
//! ```
//!
//! The server URL and how to trust it are remembered in the home directory
//! after the first successful `register` or `login`.

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use conclave_client::{Client, Event, HttpsTransport, ServerTrust};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

#[derive(Parser)]
#[command(
    name = "conclave",
    version,
    about = "End-to-end encrypted team chat (MLS) from the terminal"
)]
struct Cli {
    /// Relay URL, e.g. https://127.0.0.1:8443.
    #[arg(long, env = "CONCLAVE_SERVER", global = true)]
    server: Option<String>,
    /// Directory holding this device's keys and history [default: ~/.conclave].
    #[arg(long, env = "CONCLAVE_HOME", global = true)]
    home: Option<PathBuf>,
    /// Trust the relay certificate issued by this PEM certificate (or the self-signed one itself).
    #[arg(long, global = true, conflicts_with = "pin_sha256")]
    ca_cert: Option<PathBuf>,
    /// Trust exactly the relay certificate with this SHA-256 fingerprint (hex).
    #[arg(long, global = true)]
    pin_sha256: Option<String>,
    /// Read the password from the first line of standard input instead of prompting.
    #[arg(long, global = true)]
    password_stdin: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create an account and log this device in.
    Register {
        /// Username (a-z, 0-9, '.', '_', '-').
        user: String,
    },
    /// Log this device in to an existing account.
    Login {
        /// Username.
        user: String,
    },
    /// Manage channels.
    #[command(subcommand)]
    Channel(ChannelCommand),
    /// Send a message to a channel.
    Send {
        /// Channel name.
        channel: String,
        /// The text.
        text: String,
    },
    /// Fetch and print new messages.
    Sync,
    /// Print a channel's decrypted history.
    History {
        /// Channel name.
        channel: String,
    },
}

#[derive(Subcommand)]
enum ChannelCommand {
    /// Create a channel.
    Create {
        /// Channel name.
        name: String,
    },
    /// Add all of a user's devices to a channel.
    Invite {
        /// Channel name.
        name: String,
        /// Username.
        user: String,
    },
    /// Remove all of a user's devices from a channel.
    Remove {
        /// Channel name.
        name: String,
        /// Username.
        user: String,
    },
    /// List channels.
    List,
    /// List a channel's members.
    Members {
        /// Channel name.
        name: String,
    },
}

/// What `register`/`login` remember so later commands need no flags.
#[derive(Serialize, Deserialize, Default)]
struct Remembered {
    server: Option<String>,
    ca_cert: Option<PathBuf>,
    pin_sha256: Option<String>,
}

const REMEMBERED: &str = "server.toml";

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("conclave: {message}");
            ExitCode::FAILURE
        }
    }
}

fn default_home() -> PathBuf {
    std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."))
        .join(".conclave")
}

fn read_remembered(home: &Path) -> Result<Remembered, String> {
    match std::fs::read_to_string(home.join(REMEMBERED)) {
        Ok(text) => {
            toml::from_str(&text).map_err(|e| format!("{}: {e}", home.join(REMEMBERED).display()))
        }
        Err(_) => Ok(Remembered::default()),
    }
}

async fn run(cli: Cli) -> Result<(), String> {
    let home = cli.home.clone().unwrap_or_else(default_home);
    let remembered = read_remembered(&home)?;
    let server = cli
        .server
        .clone()
        .or(remembered.server.clone())
        .ok_or("no server: pass --server https://HOST:PORT (or set CONCLAVE_SERVER)")?;
    let (ca_cert, pin) = match (&cli.ca_cert, &cli.pin_sha256) {
        (None, None) => (remembered.ca_cert.clone(), remembered.pin_sha256.clone()),
        (ca, pin) => (ca.clone(), pin.clone()),
    };
    let trust = match (&ca_cert, &pin) {
        (Some(path), _) => ServerTrust::ca_file(path).map_err(|e| e.to_string())?,
        (None, Some(pin)) => ServerTrust::pin(pin).map_err(|e| e.to_string())?,
        (None, None) => {
            return Err("no way to trust the server: pass --ca-cert FILE or --pin-sha256 HEX (the server prints its fingerprint at start)".into());
        }
    };
    let transport = HttpsTransport::new(&server, trust).map_err(|e| e.to_string())?;
    let client = Client::open(&home, transport)
        .await
        .map_err(|e| e.to_string())?;
    let remember = Remembered {
        server: Some(server),
        ca_cert,
        pin_sha256: pin,
    };
    execute(&client, cli, &home, remember)
        .await
        .map_err(|e| e.to_string())
}

fn read_password(from_stdin: bool, confirm: bool) -> Result<Zeroizing<String>, String> {
    if from_stdin {
        let mut line = Zeroizing::new(String::new());
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .map_err(|e| format!("reading password: {e}"))?;
        let trimmed = Zeroizing::new(line.trim_end_matches(['\n', '\r']).to_owned());
        if trimmed.is_empty() {
            return Err("no password on standard input".into());
        }
        return Ok(trimmed);
    }
    let password = Zeroizing::new(
        rpassword::prompt_password("Password: ").map_err(|e| format!("reading password: {e}"))?,
    );
    if confirm {
        let again = Zeroizing::new(
            rpassword::prompt_password("Repeat password: ")
                .map_err(|e| format!("reading password: {e}"))?,
        );
        if *again != *password {
            return Err("passwords do not match".into());
        }
    }
    Ok(password)
}

async fn execute(
    client: &Client,
    cli: Cli,
    home: &Path,
    remember: Remembered,
) -> Result<(), Box<dyn std::error::Error>> {
    match cli.command {
        Command::Register { user } => {
            let password = read_password(cli.password_stdin, true)?;
            let outcome = client.register(&user, &password).await;
            if client.username().is_some() {
                save_remembered(home, &remember)?;
            }
            outcome?;
            println!(
                "registered {user}; this device is {}",
                client.device_id().unwrap_or_default()
            );
        }
        Command::Login { user } => {
            let password = read_password(cli.password_stdin, false)?;
            let outcome = client.login(&user, &password).await;
            if client.username().is_some() {
                save_remembered(home, &remember)?;
            }
            outcome?;
            println!(
                "logged in as {user}; this device is {}",
                client.device_id().unwrap_or_default()
            );
        }
        Command::Channel(ChannelCommand::Create { name }) => {
            client.create_channel(&name).await?;
            println!("created {name}");
        }
        Command::Channel(ChannelCommand::Invite { name, user }) => {
            client.invite(&name, &user).await?;
            println!("invited {user} to {name}");
        }
        Command::Channel(ChannelCommand::Remove { name, user }) => {
            client.remove(&name, &user).await?;
            println!("removed {user} from {name}");
        }
        Command::Channel(ChannelCommand::List) => {
            client.sync().await?;
            for channel in client.channels().await? {
                let note = if channel.active { "" } else { " (removed)" };
                println!("{}{note}", channel.name);
            }
        }
        Command::Channel(ChannelCommand::Members { name }) => {
            client.sync().await?;
            for member in client.members(&name).await? {
                println!(
                    "{} ({} device{})",
                    member.user,
                    member.devices.len(),
                    if member.devices.len() == 1 { "" } else { "s" }
                );
            }
        }
        Command::Send { channel, text } => {
            let seq = client.send(&channel, &text).await?;
            println!("sent to {channel} (#{seq})");
        }
        Command::Sync => {
            for event in client.sync().await? {
                print_event(&event);
            }
        }
        Command::History { channel } => {
            client.sync().await?;
            for entry in client.history(&channel).await? {
                println!("#{} {}: {}", entry.seq, entry.sender, entry.text);
            }
        }
    }
    Ok(())
}

fn print_event(event: &Event) {
    match event {
        Event::Message(m) => println!("[{}] #{} {}: {}", m.channel, m.seq, m.sender, m.text),
        Event::Joined { channel } => println!("[{channel}] you joined"),
        Event::MembersChanged {
            channel,
            added,
            removed,
        } => {
            for user in added {
                println!("[{channel}] {user} joined");
            }
            for user in removed {
                println!("[{channel}] {user} left");
            }
        }
        Event::Removed { channel } => println!("[{channel}] you were removed"),
        Event::Named { placeholder, name } => println!("[{placeholder}] is now {name}"),
        _ => {}
    }
}

fn save_remembered(home: &Path, remember: &Remembered) -> Result<(), String> {
    let text = toml::to_string(remember).map_err(|e| e.to_string())?;
    std::fs::write(home.join(REMEMBERED), text)
        .map_err(|e| format!("cannot save server settings: {e}"))
}
