//! `conclave-server admin …`: accounts, roles, invites and policy, managed
//! from the server host. Nothing here is reachable over the network: whoever
//! can run this can already read the data directory.

use clap::{Subcommand, ValueEnum};

use crate::accounts::invites::issue_invite;
use crate::error::ServerError;
use crate::events::{AuditAction, AuditEvent, AuditTrail};
use crate::{Config, Store, open_store};

/// Prints a line to standard output. A reader that went away (`| head -1`)
/// ends the output quietly instead of panicking the command.
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

/// [`out!`] without the newline.
macro_rules! out_raw {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = write!(std::io::stdout(), $($arg)*);
    }};
}

/// What to do instead of serving.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Manage accounts, invites and workspace policy from the server host.
    #[command(subcommand)]
    Admin(AdminCommand),
}

/// Managing slash commands.
#[derive(Debug, Subcommand)]
pub enum SlashCommandAdmin {
    /// Register /NAME, answered by BOT (a bot account).
    Add {
        /// The command, without the slash: 1-32 of a-z 0-9 _ -.
        name: String,
        /// The bot account that answers it.
        #[arg(long)]
        bot: String,
        /// One line shown to people, e.g. "/deploy SERVICE [VERSION]" [default: /NAME].
        #[arg(long)]
        usage: Option<String>,
    },
    /// Remove /NAME.
    Remove {
        /// The command, without the slash.
        name: String,
    },
    /// List the commands.
    List,
}

/// Host-side administration.
#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// List accounts with their roles, second factors and devices.
    Users,
    /// Create a bot account run by OWNER: its devices carry the bot mark and
    /// the owner in their MLS credential. Prints the bot's password once.
    Bot {
        /// The bot's account name.
        name: String,
        /// The account responsible for it.
        #[arg(long)]
        owner: String,
    },
    /// The workspace's slash commands: each is answered by a bot.
    #[command(subcommand)]
    Command(SlashCommandAdmin),
    /// Grant a role to an account.
    Grant {
        /// The account.
        username: String,
        /// The role.
        role: Role,
    },
    /// Take a role away from an account.
    RevokeRole {
        /// The account.
        username: String,
        /// The role.
        role: Role,
    },
    /// Issue single-use invite codes (registration is invite-only unless open_registration is set).
    Invite {
        /// How long the codes stay valid, e.g. 7d, 12h.
        #[arg(long, default_value = "7d")]
        expires_in: String,
        /// How many codes to issue.
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=100))]
        count: u32,
    },
    /// Show workspace policy, or change it.
    Policy {
        /// Require every account to have a second factor; accounts without one can only enroll.
        #[arg(long)]
        require_second_factor: Option<bool>,
        /// Delete message ciphertext older than this many days in every channel
        /// (0: keep forever); a channel's own setting wins.
        #[arg(long, value_name = "DAYS")]
        retention_days: Option<u32>,
        /// The most people a group direct message may have, its creator
        /// included (clients enforce it; beyond it, make a channel) [default: 9].
        #[arg(long, value_name = "PEOPLE", value_parser = clap::value_parser!(u32).range(2..=256))]
        max_group_dm: Option<u32>,
    },
    /// Show the latest entries of the audit log.
    Events {
        /// How many.
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
    /// Print the audit log's verifier key (for auditors and clients) and its latest checkpoint.
    LogKey,
    /// Lock an account at once: every device revoked, every second factor and
    /// recovery code removed, no sign-in until a recovery invite is redeemed.
    Lock {
        /// The account.
        username: String,
    },
    /// Hand an account back to its owner: lock it (as `lock`) and print a
    /// one-time recovery invite. With it, `conclave login USER --recovery-invite`
    /// sets a new password and signs in a new device.
    Recover {
        /// The account.
        username: String,
        /// How long the invite stays valid, e.g. 1d, 12h.
        #[arg(long, default_value = "1d")]
        expires_in: String,
    },
}

/// Roles an account can hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Role {
    /// May issue invites over the API.
    Admin,
    /// May read every audit log entry and ask for any proof.
    Auditor,
}

impl Role {
    fn as_str(self) -> &'static str {
        match self {
            Role::Admin => crate::accounts::ADMIN_ROLE,
            Role::Auditor => crate::http::audit::AUDITOR_ROLE,
        }
    }
}

/// A database failure, as an admin command reports it.
fn db(source: crate::StoreError) -> ServerError {
    ServerError::Database {
        what: "database",
        source,
    }
}

/// A refusal from a layer below (a name that does not parse, an audit entry
/// the log could not take), as an admin command reports it.
fn refused(error: impl std::fmt::Display) -> ServerError {
    ServerError::Refused(error.to_string())
}

/// Who host-side changes are attributed to in the event record.
const HOST_ADMIN: &str = "host-admin";

/// Creates bot account `name` for `owner` (what `admin bot` does) and
/// returns its password, which exists nowhere else.
pub async fn create_bot(
    config: &Config,
    name: &str,
    owner: &str,
) -> Result<zeroize::Zeroizing<String>, ServerError> {
    let store = open_store(config).await?;
    let (log, _) = crate::transparency_log(&store, config)?;
    new_bot(
        &store,
        &AuditTrail::new(log, false, store.clock().clone()),
        name,
        owner,
    )
    .await
}

/// Routes `/name` to `bot` with `usage` (what `admin command add` does).
pub async fn add_command(
    config: &Config,
    name: &str,
    bot: &str,
    usage: &str,
) -> Result<(), ServerError> {
    let store = open_store(config).await?;
    let (log, _) = crate::transparency_log(&store, config)?;
    register_command(
        &store,
        &AuditTrail::new(log, false, store.clock().clone()),
        name,
        bot,
        usage,
    )
    .await
    .map(drop)
}

async fn new_bot(
    store: &Store,
    events: &AuditTrail,
    name: &str,
    owner: &str,
) -> Result<zeroize::Zeroizing<String>, ServerError> {
    let name = conclave_crypto::Username::parse(name).map_err(refused)?;
    if store.password_hash(owner).await.map_err(db)?.is_none() {
        return Err(ServerError::Refused(format!(
            "no account named {owner:?} to own the bot"
        )));
    }
    let password = zeroize::Zeroizing::new(crate::accounts::invites::new_bot_password());
    let hash = crate::auth::hash_secret(password.clone())
        .await
        .map_err(refused)?;
    if !store
        .create_bot(name.as_str(), &hash, owner)
        .await
        .map_err(db)?
    {
        return Err(ServerError::Refused(format!(
            "an account named {name} already exists"
        )));
    }
    events
        .record(
            AuditEvent::success(AuditAction::AccountCreated, HOST_ADMIN)
                .target(name.as_str())
                .detail("bot_owner", owner),
        )
        .await
        .map_err(refused)?;
    Ok(password)
}

/// Returns the command's name without its slash.
async fn register_command(
    store: &Store,
    events: &AuditTrail,
    name: &str,
    bot: &str,
    usage: &str,
) -> Result<String, ServerError> {
    let name = name.trim_start_matches('/').to_owned();
    if !conclave_crypto::is_command_name(&name) {
        return Err(ServerError::Refused(format!(
            "{name:?} cannot be a command: use 1-32 of a-z 0-9 _ -"
        )));
    }
    if store.bot_owner(bot).await.map_err(db)?.is_none() {
        return Err(ServerError::Refused(format!(
            "{bot:?} is not a bot account: create one with `admin bot NAME --owner USER`"
        )));
    }
    if usage.len() > 200 || usage.chars().any(char::is_control) {
        return Err(ServerError::Refused(
            "the usage is one line of at most 200 bytes".into(),
        ));
    }
    store.set_command(&name, bot, usage).await.map_err(db)?;
    events
        .record(
            AuditEvent::success(AuditAction::PolicyChanged, HOST_ADMIN)
                .target(format!("command:{name}"))
                .detail("bot", bot),
        )
        .await
        .map_err(refused)?;
    Ok(name)
}

/// Refuses an admin command aimed at a relay that is not there: run from
/// another directory without `--data-dir`, it would otherwise make a fresh
/// `./conclave-data` and print invite codes no relay knows. The relay makes
/// its data directory, keys and database at its first start; an admin
/// command only ever works on one that has started.
fn refuse_a_missing_relay(config: &Config) -> Result<(), ServerError> {
    let data_dir =
        std::path::absolute(&config.data_dir).unwrap_or_else(|_| config.data_dir.clone());
    let start_first = "start conclave-server there once first, or pass --data-dir (or \
                       CONCLAVE_DATA_DIR) naming the relay's data directory";
    if !data_dir.is_dir() {
        return Err(ServerError::Refused(format!(
            "no relay data directory at {}: {start_first}",
            data_dir.display()
        )));
    }
    let database = data_dir.join("conclave.db");
    if config.database_url.is_none() && !database.is_file() {
        return Err(ServerError::Refused(format!(
            "no relay database at {} (looked in the data directory {}): {start_first}",
            database.display(),
            data_dir.display()
        )));
    }
    if !config.log_key_file.is_file() {
        return Err(ServerError::Refused(format!(
            "no audit log key at {} (looked in the data directory {}): {start_first}",
            config.log_key_file.display(),
            data_dir.display()
        )));
    }
    Ok(())
}

/// Runs one admin command against the configured database.
pub async fn run(config: Config, command: AdminCommand) -> Result<(), ServerError> {
    refuse_a_missing_relay(&config)?;
    let store = open_store(&config).await?;
    let (log, _) = crate::transparency_log(&store, &config)?;
    let events = AuditTrail::new(log.clone(), false, store.clock().clone());
    match command {
        AdminCommand::Users => {
            out!(
                "{:<32} {:<16} {:<5} {:<8} DEVICES",
                "USERNAME",
                "ROLES",
                "TOTP",
                "PASSKEYS"
            );
            for account in store.accounts().await.map_err(db)? {
                let roles = if account.roles.is_empty() {
                    "-".to_owned()
                } else {
                    account.roles.join(",")
                };
                out!(
                    "{:<32} {:<16} {:<5} {:<8} {}",
                    account.username,
                    roles,
                    if account.totp { "yes" } else { "no" },
                    account.webauthn,
                    account.active_devices
                );
            }
        }
        AdminCommand::Grant { username, role } => {
            if !store
                .grant_role(&username, role.as_str())
                .await
                .map_err(db)?
            {
                return Err(ServerError::Refused(format!(
                    "no account named {username:?}"
                )));
            }
            events
                .record(
                    AuditEvent::success(AuditAction::RoleChanged, HOST_ADMIN)
                        .target(format!("{username}:+{}", role.as_str())),
                )
                .await
                .map_err(refused)?;
            out!("{username} is now {}", role.as_str());
        }
        AdminCommand::RevokeRole { username, role } => {
            if !store
                .revoke_role(&username, role.as_str())
                .await
                .map_err(db)?
            {
                return Err(ServerError::Refused(format!(
                    "{username:?} does not have the {} role",
                    role.as_str()
                )));
            }
            events
                .record(
                    AuditEvent::success(AuditAction::RoleChanged, HOST_ADMIN)
                        .target(format!("{username}:-{}", role.as_str())),
                )
                .await
                .map_err(refused)?;
            out!("{username} is no longer {}", role.as_str());
        }
        AdminCommand::Command(SlashCommandAdmin::Add { name, bot, usage }) => {
            let usage = usage.unwrap_or_else(|| format!("/{}", name.trim_start_matches('/')));
            let name = register_command(&store, &events, &name, &bot, &usage).await?;
            out!("/{name} is answered by {bot}: {usage}");
        }
        AdminCommand::Command(SlashCommandAdmin::Remove { name }) => {
            let name = name.trim_start_matches('/').to_owned();
            if !store.remove_command(&name).await.map_err(db)? {
                return Err(ServerError::Refused(format!("there is no command /{name}")));
            }
            events
                .record(
                    AuditEvent::success(AuditAction::PolicyChanged, HOST_ADMIN)
                        .target(format!("command:{name}"))
                        .detail("removed", true),
                )
                .await
                .map_err(refused)?;
            out!("removed /{name}");
        }
        AdminCommand::Command(SlashCommandAdmin::List) => {
            for (name, bot, usage) in store.commands().await.map_err(db)? {
                out!("/{name}  ({bot})  {usage}");
            }
        }
        AdminCommand::Bot { name, owner } => {
            let password = new_bot(&store, &events, &name, &owner).await?;
            out!("created bot {name}, owned by {owner}");
            out!(
                "its password (shown once; give it to the bot's host): {}",
                password.as_str()
            );
        }
        AdminCommand::Invite { expires_in, count } => {
            let ttl = crate::config::parse_duration("--expires-in", &expires_in)?;
            for _ in 0..count {
                let (code, id, expires_at) = issue_invite(&store, HOST_ADMIN, ttl)
                    .await
                    .map_err(refused)?;
                events
                    .record(
                        AuditEvent::success(AuditAction::InviteCreated, HOST_ADMIN)
                            .target(format!("invite:{id}")),
                    )
                    .await
                    .map_err(refused)?;
                out!("{}  (expires {})", code.as_str(), utc(expires_at));
            }
        }
        AdminCommand::Policy {
            require_second_factor,
            retention_days,
            max_group_dm,
        } => {
            if let Some(people) = max_group_dm {
                store
                    .set_setting("max_group_dm", &people.to_string())
                    .await
                    .map_err(db)?;
                events
                    .record(
                        AuditEvent::success(AuditAction::PolicyChanged, HOST_ADMIN)
                            .target(format!("max_group_dm={people}")),
                    )
                    .await
                    .map_err(refused)?;
            }
            if let Some(days) = retention_days {
                store
                    .set_setting("retention_days", &days.to_string())
                    .await
                    .map_err(db)?;
                events
                    .record(
                        AuditEvent::success(AuditAction::PolicyChanged, HOST_ADMIN)
                            .target(format!("retention_days={days}")),
                    )
                    .await
                    .map_err(refused)?;
            }
            if let Some(required) = require_second_factor {
                store
                    .set_setting(
                        "require_second_factor",
                        if required { "true" } else { "false" },
                    )
                    .await
                    .map_err(db)?;
                events
                    .record(
                        AuditEvent::success(AuditAction::PolicyChanged, HOST_ADMIN)
                            .target(format!("require_second_factor={required}")),
                    )
                    .await
                    .map_err(refused)?;
            }
            let required = store
                .setting("require_second_factor")
                .await
                .map_err(db)?
                .as_deref()
                == Some("true");
            out!("require_second_factor = {required}");
            let retention = store.setting("retention_days").await.map_err(db)?;
            out!("retention_days = {}", retention.as_deref().unwrap_or("0"));
            let people = store.setting("max_group_dm").await.map_err(db)?;
            out!(
                "max_group_dm = {}",
                people.unwrap_or_else(|| conclave_proto::DEFAULT_MAX_GROUP_DM.to_string())
            );
            out!("open_registration = {}", config.open_registration);
        }
        AdminCommand::Events { limit } => {
            let log_error =
                |e: conclave_audit::log::LogError| ServerError::Refused(format!("audit log: {e}"));
            let size = log.size().await.map_err(log_error)?;
            let start = size.saturating_sub(u64::from(limit));
            for entry in log.entries(start, size).await.map_err(log_error)? {
                let Ok(event) = conclave_audit::Event::decode(&entry.leaf) else {
                    out!("#{} (not a valid event: the log was altered)", entry.index);
                    continue;
                };
                let details: String = event
                    .details
                    .iter()
                    .map(|(name, value)| format!(" {name}={value}"))
                    .collect();
                out!(
                    "#{} {} {} {} actor={} device={} target={}{}{}",
                    entry.index,
                    utc(event.time),
                    event.action,
                    event.outcome,
                    event.actor.as_deref().unwrap_or("-"),
                    event.device.as_deref().unwrap_or("-"),
                    event.target.as_deref().unwrap_or("-"),
                    event
                        .client_ip
                        .map(|ip| format!(" ip={ip}"))
                        .unwrap_or_default(),
                    details,
                );
            }
        }
        AdminCommand::LogKey => {
            out!("{}", log.verifier_key());
            let checkpoint = log
                .checkpoint(store.clock().unix_now())
                .await
                .map_err(|e| ServerError::Refused(format!("audit log: {e}")))?;
            out_raw!("{}", checkpoint.note);
        }
        AdminCommand::Lock { username } => {
            lock_account(&store, &events, &username).await?;
            out!(
                "locked {username}: every device revoked, every second factor and recovery code removed"
            );
            out!(
                "give its owner a recovery invite with `conclave-server admin recover {username}`"
            );
        }
        AdminCommand::Recover {
            username,
            expires_in,
        } => {
            let ttl = crate::config::parse_duration("--expires-in", &expires_in)?;
            if !store.account_locked(&username).await.map_err(db)? {
                lock_account(&store, &events, &username).await?;
                out!(
                    "locked {username}: every device revoked, every second factor and recovery code removed"
                );
            }
            let code = crate::accounts::factors::INVITE_CODE.generate();
            let (id, whole) = crate::accounts::factors::INVITE_CODE
                .parse(&code)
                .ok_or_else(|| {
                    ServerError::Refused("a generated invite code does not parse".into())
                })?;
            let hash = crate::auth::hash_secret(whole).await.map_err(refused)?;
            let expires_at = store.clock().unix_now() + ttl;
            store
                .create_recovery_invite(&id, &hash, HOST_ADMIN, &username, expires_at)
                .await
                .map_err(db)?;
            events
                .record(
                    AuditEvent::success(AuditAction::InviteCreated, HOST_ADMIN)
                        .target(format!("invite:{id}"))
                        .detail("recovers", &username),
                )
                .await
                .map_err(refused)?;
            out!(
                "recovery invite for {username} (one use, expires {}):",
                utc(expires_at)
            );
            out!("{}", code.as_str());
            out!("its owner runs: conclave login {username} --recovery-invite");
        }
    }
    Ok(())
}

/// Locks `username`: every device revoked, every factor and recovery code
/// removed, with its log entries, in one transaction.
async fn lock_account(
    store: &Store,
    events: &AuditTrail,
    username: &str,
) -> Result<(), ServerError> {
    if store.password_hash(username).await.map_err(db)?.is_none() {
        return Err(ServerError::Refused(format!(
            "no account named {username:?}"
        )));
    }
    let outcome = store
        .change_account(
            username,
            crate::store::AccountChange::Locked,
            None,
            |outcome| {
                let mut entries = vec![
                    events.entry(
                        AuditEvent::success(AuditAction::AccountLocked, HOST_ADMIN)
                            .target(username)
                            .detail("devices_revoked", outcome.devices_ended.len())
                            .detail("factors_removed", outcome.factors_removed.len()),
                    ),
                ];
                for device in &outcome.devices_ended {
                    entries.push(
                        events.entry(
                            AuditEvent::success(AuditAction::DeviceRevoked, HOST_ADMIN)
                                .target(format!("device:{device}")),
                        ),
                    );
                }
                entries
            },
        )
        .await
        .map_err(db)?;
    if !outcome.applied {
        return Err(ServerError::Refused(format!(
            "no account named {username:?}"
        )));
    }
    Ok(())
}

/// Unix seconds as `YYYY-MM-DD HH:MM UTC`.
pub fn utc(unix: u64) -> String {
    let stamp = conclave_audit::rfc3339(unix);
    format!("{} {} UTC", &stamp[..10], &stamp[11..16])
}

#[cfg(test)]
mod tests {
    #[test]
    fn utc_dates() {
        assert_eq!(super::utc(0), "1970-01-01 00:00 UTC");
        assert_eq!(super::utc(951_782_400), "2000-02-29 00:00 UTC");
        assert_eq!(super::utc(1_795_529_682), "2026-11-24 14:14 UTC");
    }
}
