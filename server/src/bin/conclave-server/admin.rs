//! `conclave-server admin …`: the command line of [`conclave_server::admin`],
//! which decides and records; this prints.

use clap::{Subcommand, ValueEnum};
use conclave_server::ServerError;
use conclave_server::admin::{Admin, PolicyChange, Role, utc};

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
        role: RoleArg,
    },
    /// Take a role away from an account.
    RevokeRole {
        /// The account.
        username: String,
        /// The role.
        role: RoleArg,
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
    /// Replace the log key: a new key under the log's name, introduced to clients by a
    /// statement the old and new keys sign. Restart every node afterwards.
    RotateLogKey,
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
pub enum RoleArg {
    /// May issue invites over the API.
    Admin,
    /// May read every audit log entry and ask for any proof.
    Auditor,
}

impl From<RoleArg> for Role {
    fn from(role: RoleArg) -> Self {
        match role {
            RoleArg::Admin => Role::Admin,
            RoleArg::Auditor => Role::Auditor,
        }
    }
}

const LOCKED: &str = "every device revoked, every second factor and recovery code removed";

/// Runs one admin command against the configured relay's data.
pub async fn run(
    config: conclave_server::Config,
    command: AdminCommand,
) -> Result<(), ServerError> {
    let admin = Admin::open(config).await?;
    match command {
        AdminCommand::Users => {
            out!(
                "{:<32} {:<16} {:<5} {:<8} DEVICES",
                "USERNAME",
                "ROLES",
                "TOTP",
                "PASSKEYS"
            );
            for account in admin.accounts().await? {
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
            let role = Role::from(role);
            admin.grant(&username, role).await?;
            out!("{username} is now {}", role.as_str());
        }
        AdminCommand::RevokeRole { username, role } => {
            let role = Role::from(role);
            admin.revoke_role(&username, role).await?;
            out!("{username} is no longer {}", role.as_str());
        }
        AdminCommand::Command(SlashCommandAdmin::Add { name, bot, usage }) => {
            let (name, usage) = admin.add_command(&name, &bot, usage.as_deref()).await?;
            out!("/{name} is answered by {bot}: {usage}");
        }
        AdminCommand::Command(SlashCommandAdmin::Remove { name }) => {
            let name = admin.remove_command(&name).await?;
            out!("removed /{name}");
        }
        AdminCommand::Command(SlashCommandAdmin::List) => {
            for (name, bot, usage) in admin.commands().await? {
                out!("/{name}  ({bot})  {usage}");
            }
        }
        AdminCommand::Bot { name, owner } => {
            let password = admin.create_bot(&name, &owner).await?;
            out!("created bot {name}, owned by {owner}");
            out!(
                "its password (shown once; give it to the bot's host): {}",
                password.as_str()
            );
        }
        AdminCommand::Invite { expires_in, count } => {
            let ttl = conclave_server::parse_duration("--expires-in", &expires_in)?;
            for _ in 0..count {
                let invite = admin.invite(ttl).await?;
                out!(
                    "{}  (expires {})",
                    invite.code.as_str(),
                    utc(invite.expires_at)
                );
            }
        }
        AdminCommand::Policy {
            require_second_factor,
            retention_days,
            max_group_dm,
        } => {
            let policy = admin
                .policy(PolicyChange {
                    require_second_factor,
                    retention_days,
                    max_group_dm,
                })
                .await?;
            out!("require_second_factor = {}", policy.require_second_factor);
            // 0 keeps messages forever: say so rather than leave "0 days".
            if policy.retention_days == "0" {
                out!("retention_days = 0 (forever)");
            } else {
                out!("retention_days = {}", policy.retention_days);
            }
            out!("max_group_dm = {}", policy.max_group_dm);
            out!("open_registration = {}", policy.open_registration);
        }
        AdminCommand::Events { limit } => {
            for logged in admin.recent_events(limit).await? {
                let Some(event) = logged.event else {
                    out!("#{} (not a valid event: the log was altered)", logged.index);
                    continue;
                };
                let details: String = event
                    .details
                    .iter()
                    .map(|(name, value)| format!(" {name}={value}"))
                    .collect();
                out!(
                    "#{} {} {} {} actor={} device={} target={}{}{}",
                    logged.index,
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
        AdminCommand::RotateLogKey => {
            let key = admin.rotate_log_key().await?;
            out!("new audit log verifier key: {key}");
            out!(
                "restart every node to sign with it; clients that pinned the old key follow the signed rotation; give auditors the new key"
            );
        }
        AdminCommand::LogKey => {
            let (key, checkpoint) = admin.log_key().await?;
            out!("{key}");
            out_raw!("{checkpoint}");
        }
        AdminCommand::Lock { username } => {
            admin.lock(&username).await?;
            out!("locked {username}: {LOCKED}");
            out!(
                "give its owner a recovery invite with `conclave-server admin recover {username}`"
            );
        }
        AdminCommand::Recover {
            username,
            expires_in,
        } => {
            let ttl = conclave_server::parse_duration("--expires-in", &expires_in)?;
            if !admin.is_locked(&username).await? {
                admin.lock(&username).await?;
                out!("locked {username}: {LOCKED}");
            }
            let invite = admin.recovery_invite(&username, ttl).await?;
            out!(
                "recovery invite for {username} (one use, expires {}):",
                utc(invite.expires_at)
            );
            out!("{}", invite.code.as_str());
            out!("its owner runs: conclave login {username} --recovery-invite");
        }
    }
    Ok(())
}
