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

use std::io::{BufRead, IsTerminal, Read};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use conclave_client::{
    Authenticator, Client, Credentials, Event, HistoryEntry, KeyProtection, KeyStatus,
    RecoveryCodes, RelaySettings, SearchQuery, SecondFactor, SoftAuthenticator,
};
use zeroize::Zeroizing;

mod bots;
mod key_session;
mod os_secret_store;
mod sanitize;
mod tui;

/// `println!` for a line holding anything another user (or the relay) wrote:
/// text, names, topics, file names, reactions. Goes through
/// [`sanitize::sanitize`], so no escape sequence, newline or direction
/// override of theirs reaches the terminal.
macro_rules! say {
    ($($arg:tt)*) => {
        println!("{}", sanitize::sanitize(&format!($($arg)*)))
    };
}

#[derive(Parser)]
#[command(
    name = "conclave",
    version,
    about = "End-to-end encrypted team chat (MLS) from the terminal"
)]
struct Cli {
    /// Relay URL, e.g. https://127.0.0.1:8443; several nodes of one relay
    /// comma-separated (the next is tried when one cannot be reached).
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
    /// Read the password from the first line of standard input instead of prompting
    /// (`password change` reads the current one, then the new one).
    #[arg(long, global = true)]
    password_stdin: bool,
    /// Read the local passphrase that seals this device's key from the first line of
    /// standard input (before the password, if both are read) instead of
    /// CONCLAVE_KEY_PASSPHRASE or a prompt.
    #[arg(long, global = true)]
    key_passphrase_stdin: bool,
    /// `register`/`login` only, and for unattended bots only: keep this device's
    /// key in clear in <home>/conclave.db, so no passphrase is ever needed. Anyone
    /// who copies that file can then sign as this device until it is revoked.
    #[arg(long, global = true, conflicts_with = "key_passphrase_stdin")]
    unprotected_key: bool,
    /// `register`/`login` only: where the key that seals this device's key is
    /// kept. `auto` uses the operating system's secret store (Keychain, Secret
    /// Service, Credential Manager) when it answers and no passphrase was
    /// given, else a local passphrase.
    #[arg(long, global = true, value_enum, default_value = "auto")]
    key_store: key_session::KeyStore,
    /// Second factor: a 6-digit code from your authenticator app.
    #[arg(long, global = true, conflicts_with_all = ["recovery_code", "passkey"])]
    totp: Option<String>,
    /// Second factor: one of your recovery codes (each works once).
    #[arg(long, global = true, conflicts_with = "passkey")]
    recovery_code: Option<String>,
    /// Second factor: your passkey or security key.
    #[arg(long, global = true)]
    passkey: bool,
    /// FOR TESTING ONLY: use a software passkey kept in this file instead of a
    /// hardware key. Anyone who can read the file can use it.
    #[arg(long, global = true, value_name = "FILE")]
    soft_authenticator: Option<PathBuf>,
    /// For an account whose password was set before the relay moved to
    /// OPAQUE, and only then: send the password itself this once (over TLS),
    /// when the relay asks for it. Without this flag such a request is
    /// refused, since a relay impersonated with its stolen TLS key could make
    /// it for any account.
    #[arg(long, global = true)]
    password_from_before_opaque: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create an account and log this device in.
    Register {
        /// Username (a-z, 0-9, '.', '_', '-').
        user: String,
        /// The invite code an admin gave you.
        #[arg(long)]
        invite: Option<String>,
    },
    /// Log this device in (a new device needs --totp, --passkey or --recovery-code once
    /// the account has a second factor); run again to renew an expired session.
    Login {
        /// Username.
        user: String,
        /// Sign in with --passkey alone (the account must have chosen passwordless sign-in).
        #[arg(long)]
        no_password: bool,
        /// With the password and --recovery-code: take the account back at once
        /// (every other device revoked, factors added in the last days removed).
        #[arg(long, requires = "recovery_code")]
        recover: bool,
        /// A recovery invite from the workspace's host administrator, for a locked
        /// account: sets a new password (prompted) and signs this device in.
        #[arg(long, value_name = "CODE", conflicts_with_all = ["recover", "no_password"])]
        recovery_invite: Option<String>,
    },
    /// The account as a whole.
    #[command(subcommand)]
    Account(AccountCommand),
    /// Second factors: TOTP, passkeys, recovery codes.
    #[command(name = "2fa", subcommand)]
    TwoFactor(TwoFactorCommand),
    /// This account's devices.
    #[command(subcommand)]
    Device(DeviceCommand),
    /// Change the password (every other device must log in again).
    #[command(subcommand)]
    Password(PasswordCommand),
    /// Forget this login session's unlocked device key: the next command asks
    /// for the local passphrase again.
    Lock,
    /// Issue an invite code (admins only).
    Invite {
        /// How long it stays valid, in hours.
        #[arg(long, default_value_t = 168)]
        hours: u64,
    },
    /// Manage channels.
    #[command(subcommand)]
    Channel(ChannelCommand),
    /// Send a message to a channel.
    Send {
        /// Channel name.
        channel: String,
        /// The text; `-` reads it from standard input (up to its end), for a
        /// long message or one made by another program.
        #[arg(required_unless_present = "file")]
        text: Option<String>,
        /// Send the text of this UTF-8 file instead.
        #[arg(long, conflicts_with = "text")]
        file: Option<PathBuf>,
    },
    /// Send a direct message to one user, or to several (comma-separated) as a group DM.
    Dm {
        /// Username, or usernames separated by commas.
        users: String,
        /// The text.
        text: String,
    },
    /// Show a thread (the message #SEQ and its replies), or reply in it.
    Thread {
        /// Channel name.
        channel: String,
        /// The thread's first message, as `history` numbers it.
        seq: u64,
        /// Reply with this text instead of showing the thread.
        reply: Option<String>,
    },
    /// React to message #SEQ with an emoji (or take the reaction back).
    React {
        /// Channel name.
        channel: String,
        /// The message, as `history` numbers it.
        seq: u64,
        /// The emoji, e.g. 👍 or :tada:.
        emoji: String,
        /// Take the reaction back.
        #[arg(long)]
        remove: bool,
    },
    /// Change the text of your message #SEQ.
    Edit {
        /// Channel name.
        channel: String,
        /// The message, as `history` numbers it.
        seq: u64,
        /// The new text.
        text: String,
    },
    /// Delete your message #SEQ (everyone keeps a tombstone).
    Delete {
        /// Channel name.
        channel: String,
        /// The message, as `history` numbers it.
        seq: u64,
    },
    /// Share a file in a channel: it is encrypted on this device, then uploaded.
    Upload {
        /// Channel name.
        channel: String,
        /// The file to share.
        file: PathBuf,
        /// Text to show with the file.
        #[arg(long)]
        caption: Option<String>,
    },
    /// Save the file shared by message #SEQ, once it decrypts and matches its hash.
    Download {
        /// Channel name.
        channel: String,
        /// The message, as `history` numbers it.
        seq: u64,
        /// Where to save it: a file name, or a directory to keep the sender's name.
        #[arg(default_value = ".")]
        to: PathBuf,
    },
    /// List the workspace's slash commands, their usage and the bots that
    /// answer them (those starting with PREFIX, if given).
    Commands {
        /// Only commands whose name starts with this (`/dep` or `dep`).
        prefix: Option<String>,
    },
    /// Run a slash command in a channel, e.g. `conclave run ops /deploy web v2`
    /// (encrypted for the bot, which must be in the channel).
    Run {
        /// Channel name.
        channel: String,
        /// The command and its arguments.
        #[arg(required = true, num_args = 1.., allow_hyphen_values = true)]
        line: Vec<String>,
    },
    /// Search this device's decrypted history (nothing is sent to the server).
    Search {
        /// Words to find; `word*` finds prefixes.
        #[arg(required = true)]
        words: Vec<String>,
        /// Only in this channel.
        #[arg(long)]
        channel: Option<String>,
        /// Only messages by this user.
        #[arg(long)]
        from: Option<String>,
        /// Only messages received on or after this day (YYYY-MM-DD, UTC) or Unix time.
        #[arg(long)]
        since: Option<String>,
        /// Only messages received before this day (YYYY-MM-DD, UTC) or Unix time.
        #[arg(long)]
        until: Option<String>,
    },
    /// Fetch and print new messages.
    Sync,
    /// Print a channel's decrypted history.
    History {
        /// Channel name.
        channel: String,
    },
    /// Key transparency: the relay's audit log as this device has verified it.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// The terminal UI: channels, live messages, threads, reactions and search
    /// (type /help inside).
    Tui,
    /// Run a bot that ships with Conclave, logged in as a bot account
    /// (`conclave-server admin bot NAME --owner USER` makes one).
    #[command(subcommand)]
    Bot(bots::BotCommand),
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Print the log key this device trusts and the newest checkpoint it verified;
    /// compare both with other users out of band.
    Checkpoint {
        /// Fetch and verify a fresh checkpoint first.
        #[arg(long)]
        refresh: bool,
    },
    /// Trust this log verifier key (given by your admin out of band) rather than
    /// the first one the relay shows.
    PinKey {
        /// The verifier key, `<origin>+<key id>+<base64 key>`.
        key: String,
    },
    /// Every security alert this device has raised.
    Alerts,
}

#[derive(Subcommand)]
enum TwoFactorCommand {
    /// Show which second factors the account has.
    Status,
    /// Set up TOTP: prints a QR code for your authenticator app.
    TotpEnroll,
    /// Finish setting up TOTP with the code your app shows; prints recovery codes.
    TotpConfirm {
        /// The 6-digit code.
        code: String,
    },
    /// Remove TOTP (needs the password and a second factor).
    TotpRemove,
    /// Register a passkey or security key.
    PasskeyAdd {
        /// A name to recognise it by.
        name: String,
        /// Let this passkey alone sign in, without the password.
        #[arg(long)]
        passwordless: bool,
    },
    /// Remove a passkey (needs the password and a second factor).
    PasskeyRemove {
        /// Its id, from `2fa status`.
        id: String,
    },
    /// Replace your recovery codes (needs the password and a second factor).
    RecoveryCodes,
}

#[derive(Subcommand)]
enum AccountCommand {
    /// Take the account back after a device or factor was stolen: with the password
    /// and --recovery-code, every other device is revoked, every factor added in the
    /// last days removed, passwordless sign-in turned off and new recovery codes issued.
    Recover,
}

#[derive(Subcommand)]
enum DeviceCommand {
    /// List this account's devices.
    List,
    /// Revoke a device at once (another device needs the password and a second factor).
    Revoke {
        /// Device id, from `device list`.
        id: String,
    },
}

#[derive(Subcommand)]
enum PasswordCommand {
    /// Change the password.
    Change,
}

#[derive(Subcommand)]
enum ChannelCommand {
    /// Create a channel: private (invitation only; the relay never sees its
    /// name) unless --public.
    Create {
        /// Channel name.
        name: String,
        /// List it for the whole workspace, open to join.
        #[arg(long)]
        public: bool,
        /// The public channel's topic.
        #[arg(long, requires = "public")]
        topic: Option<String>,
    },
    /// List the workspace's public channels.
    Browse,
    /// Let members hand newcomers the channel's earlier history (creator or admin).
    HistorySharing {
        /// Channel name.
        name: String,
        /// `on` or `off`.
        #[arg(value_parser = ["on", "off"])]
        setting: String,
    },
    /// Hand a member who joined later the channel's history from this device.
    ShareHistory {
        /// Channel name.
        name: String,
        /// Username.
        user: String,
    },
    /// Join a public channel (no invitation needed).
    Join {
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
    /// Show this device's epoch and security code for a channel: members who
    /// see the same code share one group (compare them in person or by call).
    Verify {
        /// Channel name.
        name: String,
    },
    /// Give this device fresh keys in a channel, so that whoever stole its
    /// current ones cannot read what follows.
    RotateKeys {
        /// Channel name.
        name: String,
    },
    /// Archive a channel (its creator or an admin): it stays readable, nobody can post.
    Archive {
        /// Channel name.
        name: String,
    },
    /// How long the relay keeps this channel's messages (its creator or an admin).
    Retention {
        /// Channel name.
        name: String,
        /// Days to keep messages; `forever` (or 0) to keep them all; `workspace`
        /// to follow the workspace's policy.
        days: String,
    },
    /// Leave a channel (all your devices); an invitation brings you back.
    Leave {
        /// Channel name.
        name: String,
    },
    /// Rename a channel for all its members (encrypted; a public channel is
    /// renamed in the workspace's directory too).
    Rename {
        /// The channel's name now.
        name: String,
        /// Its new name.
        new_name: String,
    },
    /// Set a channel's topic (encrypted; only members see it).
    Topic {
        /// Channel name.
        name: String,
        /// The topic; empty to clear it.
        topic: String,
    },
}

/// Exit status when the command ran but this device refused a device
/// (see `conclave audit alerts`).
const EXIT_SECURITY_ALERT: u8 = 3;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli).await {
        Ok(false) => ExitCode::SUCCESS,
        Ok(true) => ExitCode::from(EXIT_SECURITY_ALERT),
        Err(message) => {
            // The message may quote the relay, or names and text from other
            // users: shown, never obeyed by the terminal.
            eprintln!("conclave: {}", sanitize::sanitize(&message));
            ExitCode::FAILURE
        }
    }
}

/// Prints alerts raised since they were last shown, loudly, on stderr.
/// Returns whether there were any.
async fn show_new_alerts(client: &Client) -> bool {
    let alerts = client.security_alerts(true).await.unwrap_or_default();
    for alert in &alerts {
        print_alert(alert);
    }
    !alerts.is_empty()
}

fn print_alert(alert: &conclave_client::SecurityAlert) {
    // Names and reasons may come from the relay or other users.
    let (username, reason, device_id) = (
        sanitize::sanitize(&alert.username),
        sanitize::sanitize(&alert.reason),
        sanitize::sanitize(&alert.device_id),
    );
    if alert.kind == conclave_client::AlertKind::AccountChange {
        let by = if alert.device_id.is_empty() {
            "the workspace's host administrator".to_owned()
        } else {
            format!("device {device_id}")
        };
        eprintln!(
            "\n!!! SECURITY ALERT: on your account {}, {} by {by}.\n!!! If it wasn't you, take the account back now: \
             `conclave account recover --recovery-code CODE` (or, from a new device, `conclave login {} --recover --recovery-code CODE`).\n",
            username, reason, username
        );
        return;
    }
    if alert.username.is_empty() && alert.device_id.is_empty() {
        // About the log itself (its witnesses), not one device.
        eprintln!(
            "\n!!! SECURITY ALERT: {reason}\n!!! No new device is trusted until this clears. Tell your workspace admin and auditors.\n"
        );
        return;
    }
    if alert.kind == conclave_client::AlertKind::SplitView {
        eprintln!(
            "\n!!! SECURITY ALERT: {reason}\n!!! Compare `conclave audit checkpoint` with {username} out of band, \
             and tell your workspace admin and auditors: the relay may be keeping a second log.\n"
        );
        return;
    }
    eprintln!(
        "\n!!! SECURITY ALERT: refused device {} of {}: {}\n!!! The relay offered a device its transparency log does not vouch for; \
         nothing was encrypted to it. Tell your workspace admin, and compare `conclave audit checkpoint` with other users.\n",
        device_id, username, reason
    );
}

/// Runs the command; `Ok(true)` if it raised a security alert.
async fn run(cli: Cli) -> Result<bool, String> {
    let home = cli.home.clone().unwrap_or_else(RelaySettings::default_home);
    if let Command::Lock = cli.command {
        if key_session::lock(&home)? {
            println!("locked: the next command asks for the local passphrase");
        } else {
            println!(
                "nothing to lock: no unlocked key is kept for {}",
                home.display()
            );
        }
        return Ok(false);
    }
    let key_flags = key_session::PassphraseFlags {
        from_stdin: cli.key_passphrase_stdin,
        unprotected: cli.unprotected_key,
        store: cli.key_store,
    };
    // What `register`/`login` remember so later commands need no flags.
    let remember = RelaySettings::read(&home)
        .map_err(|e| e.to_string())?
        .overridden_by(
            cli.server.clone(),
            cli.ca_cert.clone(),
            cli.pin_sha256.clone(),
        );
    let mut client = Client::open(&home, remember.transport().map_err(|e| e.to_string())?)
        .await
        .map_err(|e| e.to_string())?;
    let logs_in = matches!(
        cli.command,
        Command::Register { .. } | Command::Login { .. }
    );
    let mut asked_os_store = false;
    if logs_in && client.key_status() == KeyStatus::NotLoggedIn {
        // A new device key: say how it is kept before it is made.
        let protection = key_session::new_key_protection(&home, key_flags)?;
        asked_os_store = matches!(protection, KeyProtection::SecretStore(_));
        drop(client);
        client = Client::open_with(
            &home,
            remember.transport().map_err(|e| e.to_string())?,
            protection,
        )
        .await
        .map_err(|e| e.to_string())?;
    } else {
        if cli.unprotected_key
            && matches!(client.key_status(), KeyStatus::Locked | KeyStatus::Unlocked)
        {
            return Err(
                "this device's key is sealed: --unprotected-key applies only when `register` or \
                 `login` makes a new key (on a new --home)"
                    .into(),
            );
        }
        key_session::unlock(&client, &home, key_flags).await?;
    }
    client.allow_password_from_before_opaque(cli.password_from_before_opaque);
    let outcome = execute(&client, cli, &home, remember).await;
    if logs_in {
        if asked_os_store && outcome.is_err() && client.key_status() == KeyStatus::NotLoggedIn {
            // A refused login stored no key: leave nothing of it in the
            // secret store either.
            os_secret_store::forget(&key_session::home_hash(&home));
        }
        key_session::keep_session(&client, &home)?;
    }
    // Alerts are shown whatever became of the command: a refused device is
    // news even when the rest of an invite went through.
    let alerted = show_new_alerts(&client).await;
    outcome.map_err(|e| e.to_string())?;
    Ok(alerted)
}

/// The channel a command names. A channel this device does not know yet
/// (invited since it last synced) is looked for once more after a sync, as
/// every command that names a channel does.
async fn named_channel(
    client: &Client,
    name: &str,
) -> Result<conclave_client::Channel, conclave_client::ClientError> {
    match client.channel_named(name).await {
        Err(conclave_client::ClientError::NoSuchChannel(_)) => {
            client.sync().await?;
            client.channel_named(name).await
        }
        found => found,
    }
}

/// The text `send` was given: as an argument, from standard input (`-`),
/// or from a file. One final newline (what `echo` and editors add) is not
/// part of the message.
fn message_text(text: Option<String>, file: Option<PathBuf>) -> Result<String, String> {
    let mut text = match (text.as_deref(), file) {
        (_, Some(path)) => std::fs::read_to_string(&path)
            .map_err(|e| format!("cannot read the message from {}: {e}", path.display()))?,
        (Some("-"), None) => {
            let mut text = String::new();
            std::io::stdin()
                .read_to_string(&mut text)
                .map_err(|e| format!("cannot read the message from standard input: {e}"))?;
            text
        }
        (Some(_), None) => return Ok(text.unwrap_or_default()),
        (None, None) => {
            return Err("no message: give its text, `-` for standard input, or --file".into());
        }
    };
    if text.ends_with('\n') {
        text.pop();
        if text.ends_with('\r') {
            text.pop();
        }
    }
    Ok(text)
}

/// The account password, from standard input with `--password-stdin`, else
/// asked for on the terminal.
fn read_password(from_stdin: bool) -> Result<Zeroizing<String>, String> {
    read_password_as("Password: ", from_stdin)
}

fn read_password_as(prompt: &str, from_stdin: bool) -> Result<Zeroizing<String>, String> {
    if from_stdin {
        let mut line = Zeroizing::new(String::new());
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .map_err(|e| format!("reading the password from standard input: {e}"))?;
        let trimmed = Zeroizing::new(line.trim_end_matches(['\n', '\r']).to_owned());
        if trimmed.is_empty() {
            return Err("no password on standard input".into());
        }
        return Ok(trimmed);
    }
    prompt_password(prompt)
}

/// A new account password: checked against the relay's rule at once (not
/// after it was typed twice), then, on a terminal, typed again.
fn read_new_password(prompt: &str, from_stdin: bool) -> Result<Zeroizing<String>, String> {
    let password = read_password_as(prompt, from_stdin)?;
    conclave_client::check_new_password(&password).map_err(|e| e.to_string())?;
    if !from_stdin {
        let again = prompt_password("Repeat password: ")?;
        if *again != *password {
            return Err("passwords do not match".into());
        }
    }
    Ok(password)
}

/// Asks on the terminal; without one (no controlling terminal, as under a
/// script or a service), says how to give the password instead.
fn prompt_password(prompt: &str) -> Result<Zeroizing<String>, String> {
    rpassword::prompt_password(prompt)
        .map(Zeroizing::new)
        .map_err(|e| {
            format!(
                "cannot ask for the password on this terminal ({e}): pass --password-stdin and \
                 give it on the first line of standard input"
            )
        })
}

/// The second factor the flags name, if any.
struct FactorFlags {
    totp: Option<String>,
    recovery_code: Option<String>,
    authenticator: Option<Box<dyn Authenticator>>,
}

/// The software passkey in `soft` if given (testing only), else the first
/// security key plugged in (in builds with the `hardware-key` feature).
async fn open_authenticator(soft: Option<&Path>) -> Result<Box<dyn Authenticator>, String> {
    if let Some(path) = soft {
        return Ok(Box::new(
            SoftAuthenticator::open(path).map_err(|e| e.to_string())?,
        ));
    }
    #[cfg(feature = "hardware-key")]
    {
        eprintln!("looking for a security key…");
        let key = conclave_client::HardwareKey::first_connected()
            .await
            .map_err(|e| e.to_string())?;
        Ok(Box::new(key))
    }
    #[cfg(not(feature = "hardware-key"))]
    Err(NO_HARDWARE_KEY.into())
}

impl FactorFlags {
    async fn from_cli(cli: &Cli) -> Result<Self, String> {
        let authenticator = if cli.passkey {
            Some(open_authenticator(cli.soft_authenticator.as_deref()).await?)
        } else {
            None
        };
        Ok(Self {
            totp: cli.totp.clone(),
            recovery_code: cli.recovery_code.clone(),
            authenticator,
        })
    }

    fn second_factor(&mut self) -> Option<SecondFactor<'_>> {
        if let Some(code) = &self.totp {
            return Some(SecondFactor::Totp(code));
        }
        if let Some(code) = &self.recovery_code {
            return Some(SecondFactor::RecoveryCode(code));
        }
        self.authenticator
            .as_mut()
            .map(|a| SecondFactor::Webauthn(a.as_mut()))
    }
}

#[cfg(not(feature = "hardware-key"))]
const NO_HARDWARE_KEY: &str = "this build of conclave has no security key support (build it with \
     `--features hardware-key`); for testing, pass --soft-authenticator FILE to use a software passkey";

/// Adds the flags' hint to a refusal that asks for a second factor.
/// Adds to a "second factor required" refusal the flags that give the
/// factors this account has (the relay lists them), and only those.
fn hint(error: conclave_client::ClientError) -> Box<dyn std::error::Error> {
    let text = error.to_string();
    let Some((_, listed)) = text.split_once("a second factor is required: ") else {
        return error.into();
    };
    let flags: Vec<&str> = listed
        .split(',')
        .filter_map(|factor| match factor.trim() {
            "totp" => Some("--totp CODE"),
            "webauthn" => Some("--passkey"),
            "recovery_code" => Some("--recovery-code CODE"),
            _ => None,
        })
        .collect();
    let flags = match flags.as_slice() {
        [] => "--totp CODE, --passkey or --recovery-code CODE".to_owned(),
        [only] => (*only).to_owned(),
        [first @ .., last] => format!("{} or {last}", first.join(", ")),
    };
    format!("a second factor is required: pass {flags}").into()
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// "just now", "5 min ago", "3 h ago", "12 days ago": how long before `now`
/// (both unix seconds) `unix` was.
fn ago(unix: u64, now: u64) -> String {
    match now.saturating_sub(unix) {
        0..60 => "just now".to_owned(),
        s @ 60..3600 => format!("{} min ago", s / 60),
        s @ 3600..86_400 => format!("{} h ago", s / 3600),
        s => format!("{} days ago", s / 86_400),
    }
}

fn print_recovery(report: &conclave_client::RecoveryReport) {
    println!(
        "account recovered: {} other device(s) revoked, {} recent factor(s) removed",
        report.devices_revoked.len(),
        report.factors_removed.len()
    );
    for device in &report.devices_revoked {
        println!("  revoked device {device}");
    }
    for factor in &report.factors_removed {
        println!("  removed {factor}");
    }
    println!("passwordless sign-in is off; enroll your second factors again if you need them");
    print_recovery_codes(&RecoveryCodes(report.recovery_codes.clone()));
}

fn print_recovery_codes(codes: &RecoveryCodes) {
    if codes.0.is_empty() {
        return;
    }
    println!(
        "Recovery codes (each signs in once if you lose your second factor; store them offline):"
    );
    for code in &codes.0 {
        println!("  {code}");
    }
}

fn print_qr(uri: &str) {
    use qrcode::render::unicode::Dense1x2;
    match qrcode::QrCode::new(uri.as_bytes()) {
        Ok(code) => println!(
            "{}",
            code.render::<Dense1x2>()
                .dark_color(Dense1x2::Light)
                .light_color(Dense1x2::Dark)
                .quiet_zone(true)
                .build()
        ),
        Err(e) => eprintln!("conclave: cannot draw the QR code ({e}); use the URI"),
    }
}

async fn execute(
    client: &Client,
    cli: Cli,
    home: &Path,
    remember: RelaySettings,
) -> Result<(), Box<dyn std::error::Error>> {
    let mut factors = FactorFlags::from_cli(&cli).await?;
    match cli.command {
        Command::Register { user, invite } => {
            let password = read_new_password("Password: ", cli.password_stdin)?;
            let outcome = match &invite {
                Some(code) => client.register_with_invite(&user, &password, code).await,
                None => client.register(&user, &password).await,
            };
            if client.username().is_some() {
                remember.write(home)?;
            }
            outcome?;
            println!(
                "registered {user}; this device is {}",
                client.device_id().unwrap_or_default()
            );
        }
        Command::Login {
            user,
            no_password,
            recover,
            recovery_invite,
        } => {
            if no_password && !cli.passkey {
                return Err("--no-password signs in with a passkey: add --passkey".into());
            }
            if let Some(invite) = recovery_invite {
                if client.username().is_some() {
                    return Err(
                        "a recovery invite signs in a new device: use a fresh --home".into(),
                    );
                }
                let new = read_new_password("New password: ", cli.password_stdin)?;
                let outcome = client
                    .login_with_recovery_invite(&user, &invite, &new)
                    .await;
                if client.username().is_some() {
                    remember.write(home)?;
                }
                outcome?;
                println!(
                    "account {user} unlocked with a new password; this device is {}",
                    client.device_id().unwrap_or_default()
                );
                println!("enroll a second factor again: `conclave 2fa totp-enroll`");
                return Ok(());
            }
            if recover {
                let code = cli.recovery_code.clone().unwrap_or_default();
                let password = read_password(cli.password_stdin)?;
                let outcome = client.login_and_recover(&user, &password, &code).await;
                if client.username().is_some() {
                    remember.write(home)?;
                }
                let report = outcome.map_err(hint)?;
                println!(
                    "logged in as {user}; this device is {}",
                    client.device_id().unwrap_or_default()
                );
                print_recovery(&report);
                return Ok(());
            }
            let password = if no_password {
                None
            } else {
                Some(read_password(cli.password_stdin)?)
            };
            let credentials = Credentials {
                password: password.as_deref().map(String::as_str),
                second_factor: factors.second_factor(),
            };
            if let Some(current) = client.username() {
                if current != user {
                    return Err(
                        format!("this home is logged in as {current}; use another --home").into(),
                    );
                }
                client.reauthenticate(credentials).await.map_err(hint)?;
                println!("session renewed for {user} on this device");
                return Ok(());
            }
            let outcome = client.login_with(&user, credentials).await;
            if client.username().is_some() {
                remember.write(home)?;
            }
            outcome.map_err(hint)?;
            println!(
                "logged in as {user}; this device is {}",
                client.device_id().unwrap_or_default()
            );
        }
        Command::TwoFactor(TwoFactorCommand::Status) => {
            let account = client.account().await?;
            println!("account: {}", account.username);
            println!(
                "roles: {}",
                if account.roles.is_empty() {
                    "-".to_owned()
                } else {
                    account.roles.join(", ")
                }
            );
            println!(
                "totp: {}",
                if account.totp {
                    "on"
                } else if account.totp_pending {
                    "pending confirmation"
                } else {
                    "off"
                }
            );
            for key in &account.webauthn {
                println!("passkey: {} ({})", key.name, key.credential_id);
            }
            println!("passwordless: {}", account.passwordless);
            println!("recovery codes left: {}", account.recovery_codes_left);
            if account.second_factor_required && !account.totp && account.webauthn.is_empty() {
                println!(
                    "this workspace requires a second factor: run `conclave 2fa totp-enroll` or `conclave 2fa passkey-add`"
                );
            }
        }
        Command::TwoFactor(TwoFactorCommand::TotpEnroll) => {
            let password = read_password(cli.password_stdin)?;
            let credentials = Credentials {
                password: Some(&password),
                second_factor: factors.second_factor(),
            };
            let enrollment = client.enroll_totp(credentials).await.map_err(hint)?;
            println!("Scan this with your authenticator app:");
            print_qr(&enrollment.otpauth_uri);
            println!("or enter this URI: {}", enrollment.otpauth_uri);
            println!("then run: conclave 2fa totp-confirm <the 6-digit code>");
        }
        Command::TwoFactor(TwoFactorCommand::TotpConfirm { code }) => {
            let codes = client.confirm_totp(&code).await?;
            println!("TOTP is on: new devices now need a code from your app");
            print_recovery_codes(&codes);
        }
        Command::TwoFactor(TwoFactorCommand::TotpRemove) => {
            let password = read_password(cli.password_stdin)?;
            let credentials = Credentials {
                password: Some(&password),
                second_factor: factors.second_factor(),
            };
            client.remove_totp(credentials).await.map_err(hint)?;
            println!("TOTP removed");
        }
        Command::TwoFactor(TwoFactorCommand::PasskeyAdd { name, passwordless }) => {
            if cli.passkey {
                return Err(
                    "the new passkey cannot also be the proof: prove with --totp or \
                     --recovery-code (or the password alone if the account has no second factor)"
                        .into(),
                );
            }
            let password = read_password(cli.password_stdin)?;
            let credentials = Credentials {
                password: Some(&password),
                second_factor: factors.second_factor(),
            };
            let mut authenticator = open_authenticator(cli.soft_authenticator.as_deref()).await?;
            let codes = client
                .enroll_passkey(authenticator.as_mut(), &name, passwordless, credentials)
                .await
                .map_err(hint)?;
            println!("passkey {name:?} registered");
            print_recovery_codes(&codes);
        }
        Command::TwoFactor(TwoFactorCommand::PasskeyRemove { id }) => {
            let password = read_password(cli.password_stdin)?;
            let credentials = Credentials {
                password: Some(&password),
                second_factor: factors.second_factor(),
            };
            client
                .remove_passkey(&id, credentials)
                .await
                .map_err(hint)?;
            println!("passkey {id} removed");
        }
        Command::Account(AccountCommand::Recover) => {
            let Some(code) = cli.recovery_code.as_deref() else {
                return Err("recovering the account needs --recovery-code CODE".into());
            };
            let password = read_password(cli.password_stdin)?;
            let report = client.recover_account(&password, code).await?;
            print_recovery(&report);
        }
        Command::TwoFactor(TwoFactorCommand::RecoveryCodes) => {
            let password = read_password(cli.password_stdin)?;
            let credentials = Credentials {
                password: Some(&password),
                second_factor: factors.second_factor(),
            };
            let codes = client.new_recovery_codes(credentials).await.map_err(hint)?;
            println!("your old recovery codes no longer work");
            print_recovery_codes(&codes);
        }
        Command::Device(DeviceCommand::List) => {
            let now = unix_now();
            for device in client.devices().await? {
                println!("{}", describe_device(&device, now));
            }
        }
        Command::Device(DeviceCommand::Revoke { id }) => {
            if client.device_id().as_deref() == Some(id.as_str()) {
                client.revoke_device(&id, None).await?;
                println!("this device is revoked: it can no longer sign in");
            } else {
                let password = read_password(cli.password_stdin)?;
                let credentials = Credentials {
                    password: Some(&password),
                    second_factor: factors.second_factor(),
                };
                client
                    .revoke_device(&id, Some(credentials))
                    .await
                    .map_err(hint)?;
                println!(
                    "revoked {id}: its session is closed and it is being removed from your channels"
                );
            }
        }
        Command::Password(PasswordCommand::Change) => {
            let current = read_password_as("Current password: ", cli.password_stdin)?;
            let new = read_new_password("New password: ", cli.password_stdin)?;
            let credentials = Credentials {
                password: Some(&current),
                second_factor: factors.second_factor(),
            };
            let ended = client
                .change_password(credentials, &new)
                .await
                .map_err(hint)?;
            println!(
                "password changed; {ended} other session(s) ended: those devices must log in again"
            );
        }
        // Handled in `run`, before any client is opened.
        Command::Lock => {}
        Command::Invite { hours } => {
            let password = read_password(cli.password_stdin)?;
            let credentials = Credentials {
                password: Some(&password),
                second_factor: factors.second_factor(),
            };
            let (code, expires_at) = client
                .create_invite(hours.saturating_mul(3600), credentials)
                .await
                .map_err(hint)?;
            let hours_left = expires_at.saturating_sub(unix_now()) / 3600;
            println!("{code}  (single use, expires in {hours_left} h)");
        }
        Command::Channel(ChannelCommand::Create {
            name,
            public,
            topic,
        }) => {
            if public {
                client
                    .create_public_channel(&name, topic.as_deref().unwrap_or(""))
                    .await?;
                println!("created public channel {name}");
            } else {
                client.create_channel(&name).await?;
                println!("created {name}");
            }
        }
        Command::Channel(ChannelCommand::Browse) => {
            let listed = client.public_channels().await?;
            if listed.is_empty() {
                println!("no public channels yet: `conclave channel create NAME --public`");
            }
            for channel in listed {
                let mut line = format!(
                    "{}  ({} member{})",
                    channel.name,
                    channel.members,
                    if channel.members == 1 { "" } else { "s" }
                );
                if channel.joined {
                    line.push_str("  [joined]");
                }
                if channel.archived {
                    line.push_str("  [archived]");
                }
                if !channel.topic.is_empty() {
                    line.push_str(&format!("  {}", channel.topic));
                }
                say!("{line}");
            }
        }
        Command::Channel(ChannelCommand::HistorySharing { name, setting }) => {
            let allowed = setting == "on";
            named_channel(client, &name)
                .await?
                .set_history_sharing(allowed)
                .await?;
            if allowed {
                println!("members of {name} may now share its history with newcomers");
            } else {
                println!("{name}'s history can no longer be shared");
            }
        }
        Command::Channel(ChannelCommand::ShareHistory { name, user }) => {
            client.sync().await?;
            let count = named_channel(client, &name)
                .await?
                .share_history(&user)
                .await?;
            println!("shared {count} earlier messages of {name} with {user}");
        }
        Command::Channel(ChannelCommand::Join { name }) => {
            client.join(&name).await?;
            println!("joined {name}");
        }
        Command::Channel(ChannelCommand::Invite { name, user }) => {
            named_channel(client, &name).await?.invite(&user).await?;
            println!("invited {user} to {name}");
        }
        Command::Channel(ChannelCommand::Remove { name, user }) => {
            named_channel(client, &name).await?.remove(&user).await?;
            println!("removed {user} from {name}");
        }
        Command::Channel(ChannelCommand::List) => {
            client.sync().await?;
            for channel in client.channels().await? {
                let mut line = channel.name.clone();
                if channel.unread > 0 {
                    line.push_str(&format!(" ({} unread)", channel.unread));
                }
                if !channel.active {
                    // Left or removed: client-core records only that this
                    // device is out of the group, not who took it out.
                    line.push_str(" (not a member)");
                }
                if channel.archived {
                    line.push_str(" (archived)");
                }
                if !channel.topic.is_empty() {
                    line.push_str(&format!(" \u{2014} {}", channel.topic));
                }
                say!("{line}");
            }
        }
        Command::Channel(ChannelCommand::Archive { name }) => {
            named_channel(client, &name).await?.archive().await?;
            println!("archived {name}");
        }
        Command::Channel(ChannelCommand::Retention { name, days }) => {
            // The relay reads 0 days as "keep forever"; say so in words.
            let days = match days.as_str() {
                "workspace" => None,
                "forever" | "off" | "0" => Some(0),
                number => Some(number.parse::<u32>().map_err(|_| {
                    format!(
                        "{number:?} is not a number of days: give days, `forever`, or `workspace`"
                    )
                })?),
            };
            named_channel(client, &name)
                .await?
                .set_retention(days)
                .await?;
            match days {
                Some(0) => println!("{name} keeps messages forever"),
                Some(1) => println!("{name} keeps messages for 1 day"),
                Some(days) => println!("{name} keeps messages for {days} days"),
                None => println!("{name} follows the workspace's retention"),
            }
        }
        Command::Channel(ChannelCommand::Leave { name }) => {
            named_channel(client, &name).await?.leave().await?;
            println!("left {name}");
        }
        Command::Channel(ChannelCommand::Rename { name, new_name }) => {
            named_channel(client, &name)
                .await?
                .rename(&new_name)
                .await?;
            println!("renamed {name} to {new_name}");
        }
        Command::Channel(ChannelCommand::Topic { name, topic }) => {
            client.sync().await?;
            named_channel(client, &name)
                .await?
                .set_topic(&topic)
                .await?;
            println!("topic of {name} set");
        }
        Command::Dm { users, text } => {
            client.sync().await?;
            let people: Vec<&str> = users.split(',').map(str::trim).collect();
            let direct = client.direct(&people).await?;
            let seq = direct.send(&text).await?;
            println!("sent to {} (#{seq})", direct.name());
        }
        Command::Channel(ChannelCommand::Members { name }) => {
            client.sync().await?;
            for member in named_channel(client, &name).await?.members().await? {
                say!("{}", describe_member(&member));
            }
        }
        Command::Channel(ChannelCommand::Verify { name }) => {
            client.sync().await?;
            let state = named_channel(client, &name).await?.state().await?;
            println!(
                "{name}: epoch {}, security code {}",
                state.epoch, state.code
            );
        }
        Command::Channel(ChannelCommand::RotateKeys { name }) => {
            let channel = named_channel(client, &name).await?;
            channel.rotate_keys().await?;
            let state = channel.state().await?;
            println!("new keys in {name}: epoch {}", state.epoch);
        }
        Command::Send {
            channel,
            text,
            file,
        } => {
            let text = message_text(text, file)?;
            let seq = named_channel(client, &channel).await?.send(&text).await?;
            println!("sent to {channel} (#{seq})");
        }
        Command::Thread {
            channel,
            seq,
            reply,
        } => {
            client.sync().await?;
            let name = channel;
            let channel = named_channel(client, &name).await?;
            let parent = channel.message_id_at(seq).await?;
            // #seq may be a reply: its thread is its root's, and so is the
            // number this says.
            let thread = channel.thread(&parent).await?;
            match reply {
                Some(text) => {
                    let at = channel.reply(&parent, &text).await?;
                    let root = thread.first().map_or(seq, |root| root.seq);
                    println!("replied in the thread of #{root} in {name} (#{at})");
                }
                None => {
                    for entry in thread {
                        say!("{}", render(&entry));
                    }
                }
            }
        }
        Command::React {
            channel,
            seq,
            emoji,
            remove,
        } => {
            client.sync().await?;
            let handle = named_channel(client, &channel).await?;
            let target = handle.message_id_at(seq).await?;
            match handle.react(&target, &emoji, !remove).await? {
                conclave_client::Reacted::Unchanged { emoji } if remove => {
                    println!("you had not reacted {emoji} on #{seq} in {channel}; nothing changed");
                }
                conclave_client::Reacted::Unchanged { emoji } => {
                    println!("you already reacted {emoji} on #{seq} in {channel}; nothing changed");
                }
                conclave_client::Reacted::Sent { emoji, .. } => {
                    let verb = if remove { "took back" } else { "reacted" };
                    println!("{verb} {emoji} on #{seq} in {channel}");
                }
                _ => {}
            }
        }
        Command::Edit { channel, seq, text } => {
            client.sync().await?;
            let handle = named_channel(client, &channel).await?;
            let target = handle.message_id_at(seq).await?;
            handle.edit(&target, &text).await?;
            println!("edited #{seq} in {channel}");
        }
        Command::Delete { channel, seq } => {
            client.sync().await?;
            let handle = named_channel(client, &channel).await?;
            let target = handle.message_id_at(seq).await?;
            handle.delete(&target).await?;
            println!("deleted #{seq} in {channel}");
        }
        Command::Commands { prefix } => {
            let prefix = prefix.unwrap_or_default();
            let prefix = prefix.trim_start_matches('/');
            let commands: Vec<_> = client
                .commands()
                .await?
                .into_iter()
                .filter(|c| c.name.starts_with(prefix))
                .collect();
            if commands.is_empty() && prefix.is_empty() {
                println!("no slash commands in this workspace yet");
            } else if commands.is_empty() {
                return Err(format!("no command starts with /{prefix}").into());
            }
            let width = commands.iter().map(|c| c.usage.len()).max().unwrap_or(0);
            for command in commands {
                let usage = if command.usage.is_empty() {
                    format!("/{}", command.name)
                } else {
                    command.usage
                };
                say!("{usage:<width$}  (answered by {})", command.bot);
            }
        }
        Command::Run { channel, line } => {
            client.sync().await?;
            let line = line.join(" ");
            let name = line
                .split_whitespace()
                .next()
                .unwrap_or_default()
                .to_owned();
            for sent in named_channel(client, &channel)
                .await?
                .run_command(&line)
                .await?
            {
                say!("sent {name} to {} in {channel} (#{})", sent.bot, sent.seq);
            }
        }
        Command::Upload {
            channel,
            file,
            caption,
        } => {
            client.sync().await?;
            let bar = transfer_bar("uploading");
            let seq = named_channel(client, &channel)
                .await?
                .upload(&file, caption.as_deref().unwrap_or(""), |done, total| {
                    bar.set_length(total);
                    bar.set_position(done);
                })
                .await;
            bar.finish_and_clear();
            println!("shared {} in {channel} (#{})", file.display(), seq?);
        }
        Command::Download { channel, seq, to } => {
            client.sync().await?;
            let handle = named_channel(client, &channel).await?;
            let message = handle.message_id_at(seq).await?;
            let bar = transfer_bar("downloading");
            let saved = handle
                .download(&message, &to, |done, total| {
                    bar.set_length(total);
                    bar.set_position(done);
                })
                .await;
            bar.finish_and_clear();
            let (path, info) = saved?;
            say!(
                "saved {} ({}, SHA-256 {} verified)",
                path.display(),
                human_size(info.size),
                info.sha256
            );
        }
        Command::Search {
            words,
            channel,
            from,
            since,
            until,
        } => {
            client.sync().await?;
            let query = SearchQuery {
                words: words.join(" "),
                channel,
                author: from,
                since: since.as_deref().map(parse_day).transpose()?,
                until: until.as_deref().map(parse_day).transpose()?,
            };
            let found = client.search(&query).await?;
            if found.is_empty() {
                println!("no messages found");
            }
            for entry in found {
                say!("[{}] {}", entry.channel, render(&entry));
            }
        }
        Command::Tui => tui::run(client.clone()).await?,
        Command::Bot(command) => bots::run(client, command).await?,
        Command::Sync => {
            let events = client.sync().await?;
            for event in &events {
                print_event(event);
            }
            // Scripts read an empty answer; a person is told.
            if events.is_empty() && std::io::stderr().is_terminal() {
                eprintln!("nothing new");
            }
        }
        Command::History { channel } => {
            client.sync().await?;
            let channel = named_channel(client, &channel).await?;
            let history = channel.history().await?;
            for entry in &history {
                say!("{}", render_in(entry, &history));
            }
            channel.mark_read().await?;
        }
        Command::Audit(AuditCommand::Checkpoint { refresh }) => {
            if refresh {
                client.refresh_checkpoint().await?;
            }
            let key = client.log_key().await?;
            match (key, client.latest_checkpoint().await?) {
                (Some(key), Some(checkpoint)) => {
                    println!("log key: {key}");
                    print!("{checkpoint}");
                }
                _ => println!(
                    "no checkpoint verified yet: run `conclave audit checkpoint --refresh`"
                ),
            }
        }
        Command::Audit(AuditCommand::PinKey { key }) => {
            client.pin_log_key(&key).await?;
            println!("this device now trusts log key {}", key.trim());
        }
        Command::Audit(AuditCommand::Alerts) => {
            let alerts = client.security_alerts(false).await?;
            if alerts.is_empty() {
                println!("no security alerts");
            }
            for alert in &alerts {
                say!(
                    "{} refused device {} of {}: {}",
                    conclave_client::transparency::rfc3339(alert.at),
                    alert.device_id,
                    alert.username,
                    alert.reason
                );
            }
        }
    }
    Ok(())
}

fn print_event(event: &Event) {
    match event {
        Event::Message(m) => say!("[{}] {}", m.channel, render(m)),
        Event::Mentioned(m) => say!(
            "[{}] you were mentioned by {} in #{}",
            m.channel,
            m.sender,
            m.seq
        ),
        Event::DirectMessage(m) => say!("[{}] direct message from {}", m.channel, m.sender),
        Event::Archived { channel, .. } => say!("[{channel}] was archived"),
        Event::TopicChanged {
            channel, topic, by, ..
        } => {
            say!("[{channel}] {by} set the topic: {topic}")
        }
        Event::Reacted {
            channel,
            user,
            emoji,
            added,
            ..
        } => {
            let verb = if *added { "reacted" } else { "took back" };
            say!("[{channel}] {user} {verb} {emoji}");
        }
        Event::Edited(m) => say!("[{}] {}", m.channel, render(m)),
        Event::Deleted { channel, .. } => say!("[{channel}] a message was deleted"),
        Event::Joined { channel, .. } => say!("[{channel}] you joined"),
        Event::MembersChanged {
            channel,
            added,
            removed,
            ..
        } => {
            for user in added {
                say!("[{channel}] {user} joined");
            }
            for user in removed {
                say!("[{channel}] {user} left");
            }
        }
        Event::Removed { channel, .. } => say!("[{channel}] you were removed"),
        Event::Named {
            placeholder, name, ..
        } => say!("[{placeholder}] is now {name}"),
        Event::Renamed { from, to, by, .. } => say!("[{from}] {by} renamed the channel to {to}"),
        Event::DeviceAdded { device_id } => say!(
            "a new device signed in to your account: {device_id} (if it wasn't you, run `conclave device revoke {device_id}`)"
        ),
        Event::DeviceRevoked { device_id } => say!("device {device_id} was revoked"),
        // Kept as alerts, and shown once with every other alert not shown
        // yet when the command ends (`show_new_alerts`).
        Event::SecurityAlert(_) | Event::AccountChanged(_) => {}
        Event::HistoryReceived {
            channel,
            from,
            added,
            ..
        } => say!("[{channel}] {from} shared {added} earlier messages with you"),
        _ => {}
    }
}

/// One message as a line: `#seq sender: text`, with its thread, edit,
/// tombstone and reactions marked.
fn render(entry: &HistoryEntry) -> String {
    let text = if entry.deleted {
        "[message deleted]".to_owned()
    } else if entry.unsupported {
        "[unsupported message: update conclave to read it]".to_owned()
    } else {
        entry.text.clone()
    };
    let mut line = format!("#{} {}: {text}", entry.seq, entry.sender);
    if let Some(file) = entry.file.as_ref().filter(|_| !entry.deleted) {
        if !entry.text.is_empty() {
            line.push(' ');
        }
        line.push_str(&format!(
            "[file: {} ({})]",
            file.name,
            human_size(file.size)
        ));
    }
    if entry.edited && !entry.deleted {
        line.push_str(" (edited)");
    }
    if let Some(from) = &entry.shared_by {
        line.push_str(&format!(" (from {from}'s copy)"));
    }
    for reaction in &entry.reactions {
        line.push_str(&format!(
            "  [{} {}]",
            reaction.emoji,
            reaction.users.join(", ")
        ));
    }
    line
}

/// `3f4c…  active  added 12 days ago  last seen just now`, with
/// `(this device)` after the id of the device asking: one line of
/// `device list`, and of the terminal UI's `/devices`.
fn describe_device(device: &conclave_client::DeviceInfo, now: u64) -> String {
    let state = match (device.revoked_at, device.session_active) {
        (Some(_), _) => "revoked",
        (None, true) => "active",
        (None, false) => "signed out",
    };
    format!(
        "{}{}  {state}  added {}  last seen {}",
        device.device_id,
        if device.current { " (this device)" } else { "" },
        ago(device.created_at, now),
        ago(device.last_seen_at, now)
    )
}

/// `alice (2 devices)`, `deploy-bot [bot, owned by alice] (1 device)`.
fn describe_member(member: &conclave_client::Member) -> String {
    let bot = member
        .bot_owner
        .as_ref()
        .map(|owner| format!(" [bot, owned by {owner}]"))
        .unwrap_or_default();
    let n = member.devices.len();
    format!(
        "{}{bot} ({n} device{})",
        member.user,
        if n == 1 { "" } else { "s" }
    )
}

/// A progress bar on stderr for a transfer, hidden when stderr is not a terminal.
fn transfer_bar(verb: &'static str) -> indicatif::ProgressBar {
    if !std::io::stderr().is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(0);
    if let Ok(style) = indicatif::ProgressStyle::with_template(&format!(
        "{verb} {{bar:40}} {{bytes}}/{{total_bytes}} ({{bytes_per_sec}}, {{eta}} left)"
    )) {
        bar.set_style(style);
    }
    bar
}

/// Bytes as a person reads them: `512 B`, `3.4 MB`.
fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit + 1 < UNITS.len() {
        value /= 1000.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// [`render`], with replies shown under the number of their thread.
fn render_in(entry: &HistoryEntry, history: &[HistoryEntry]) -> String {
    match &entry.parent {
        Some(parent) => {
            let thread = history
                .iter()
                .find(|e| &e.id == parent)
                .map(|e| format!("#{}", e.seq))
                .unwrap_or_else(|| "?".into());
            format!("    \u{21b3} {} (in the thread of {thread})", render(entry))
        }
        None => render(entry),
    }
}

/// `YYYY-MM-DD` (midnight UTC) or Unix seconds.
fn parse_day(text: &str) -> Result<u64, String> {
    if let Ok(seconds) = text.parse::<u64>() {
        return Ok(seconds);
    }
    let bad = || format!("{text:?} is not a date (YYYY-MM-DD) or Unix time");
    let mut parts = text
        .splitn(3, '-')
        .map(|p| p.parse::<i64>().map_err(|_| bad()));
    let (Some(year), Some(month), Some(day)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(bad());
    };
    let (year, month, day) = (year?, month?, day?);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || year < 1970 {
        return Err(bad());
    }
    // Howard Hinnant's days_from_civil.
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    u64::try_from(days * 86_400).map_err(|_| bad())
}

#[cfg(test)]
mod tests {

    #[test]
    fn a_second_factor_hint_names_only_the_factors_the_account_has() {
        let refused = |factors: &str| {
            hint(conclave_client::ClientError::Server {
                status: 401,
                code: "second_factor_required".into(),
                message: format!("a second factor is required: {factors}"),
            })
            .to_string()
        };
        assert_eq!(
            refused("webauthn, recovery_code"),
            "a second factor is required: pass --passkey or --recovery-code CODE"
        );
        assert_eq!(
            refused("totp"),
            "a second factor is required: pass --totp CODE"
        );
        assert_eq!(
            refused("totp, webauthn, recovery_code"),
            "a second factor is required: pass --totp CODE, --passkey or --recovery-code CODE"
        );
    }
    use super::*;

    #[test]
    fn days_parse_to_utc_midnight() {
        assert_eq!(parse_day("1970-01-01"), Ok(0));
        assert_eq!(parse_day("2000-02-29"), Ok(951_782_400));
        assert_eq!(parse_day("1795529682"), Ok(1_795_529_682));
        assert!(parse_day("2026-13-01").is_err());
        assert!(parse_day("yesterday").is_err());
    }
}
