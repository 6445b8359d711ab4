//! `conclave-server admin …`: accounts, roles, invites and policy, managed
//! from the server host. Nothing here is reachable over the network: whoever
//! can run this can already read the data directory.

use clap::{Subcommand, ValueEnum};

use crate::account_api::issue_invite;
use crate::events::{AuthAction, AuthEvent, AuthEvents};
use crate::{Config, open_store};

/// What to do instead of serving.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Manage accounts, invites and workspace policy from the server host.
    #[command(subcommand)]
    Admin(AdminCommand),
}

/// Host-side administration.
#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// List accounts with their roles, second factors and devices.
    Users,
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
    },
    /// Show the latest authentication events.
    Events {
        /// How many.
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
}

/// Roles an account can hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Role {
    /// May issue invites over the API.
    Admin,
    /// Will read the whole audit log (issue 4); grants nothing yet.
    Auditor,
}

impl Role {
    fn as_str(self) -> &'static str {
        match self {
            Role::Admin => crate::account_api::ADMIN_ROLE,
            Role::Auditor => "auditor",
        }
    }
}

/// Who host-side changes are attributed to in the event record.
const HOST_ADMIN: &str = "host-admin";

/// Runs one admin command against the configured database.
pub async fn run(config: Config, command: AdminCommand) -> Result<(), String> {
    let store = open_store(&config).await?;
    let events = AuthEvents::new(store.clone(), false);
    let db = |e: crate::StoreError| format!("database: {e}");
    match command {
        AdminCommand::Users => {
            println!(
                "{:<32} {:<16} {:<5} {:<8} DEVICES",
                "USERNAME", "ROLES", "TOTP", "PASSKEYS"
            );
            for account in store.accounts().await.map_err(db)? {
                let roles = if account.roles.is_empty() {
                    "-".to_owned()
                } else {
                    account.roles.join(",")
                };
                println!(
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
                return Err(format!("no account named {username:?}"));
            }
            events
                .record(
                    AuthEvent::success(AuthAction::RoleChanged, HOST_ADMIN)
                        .target(format!("{username}:+{}", role.as_str())),
                )
                .await;
            println!("{username} is now {}", role.as_str());
        }
        AdminCommand::RevokeRole { username, role } => {
            if !store
                .revoke_role(&username, role.as_str())
                .await
                .map_err(db)?
            {
                return Err(format!(
                    "{username:?} does not have the {} role",
                    role.as_str()
                ));
            }
            events
                .record(
                    AuthEvent::success(AuthAction::RoleChanged, HOST_ADMIN)
                        .target(format!("{username}:-{}", role.as_str())),
                )
                .await;
            println!("{username} is no longer {}", role.as_str());
        }
        AdminCommand::Invite { expires_in, count } => {
            let ttl = crate::config::parse_duration("--expires-in", &expires_in)?;
            for _ in 0..count {
                let (code, id, expires_at) = issue_invite(&store, HOST_ADMIN, ttl)
                    .await
                    .map_err(|e| e.to_string())?;
                events
                    .record(
                        AuthEvent::success(AuthAction::InviteCreated, HOST_ADMIN)
                            .target(format!("invite:{id}")),
                    )
                    .await;
                println!("{}  (expires {})", code.as_str(), utc(expires_at));
            }
        }
        AdminCommand::Policy {
            require_second_factor,
        } => {
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
                        AuthEvent::success(AuthAction::PolicyChanged, HOST_ADMIN)
                            .target(format!("require_second_factor={required}")),
                    )
                    .await;
            }
            let required = store
                .setting("require_second_factor")
                .await
                .map_err(db)?
                .as_deref()
                == Some("true");
            println!("require_second_factor = {required}");
            println!("open_registration = {}", config.open_registration);
        }
        AdminCommand::Events { limit } => {
            for event in store.auth_events(limit).await.map_err(db)? {
                println!(
                    "{} {} {} actor={} device={} target={}{}",
                    utc(event.at),
                    event.action,
                    event.outcome,
                    event.actor.as_deref().unwrap_or("-"),
                    event.actor_device.as_deref().unwrap_or("-"),
                    event.target.as_deref().unwrap_or("-"),
                    event
                        .client_ip
                        .map(|ip| format!(" ip={ip}"))
                        .unwrap_or_default(),
                );
            }
        }
    }
    Ok(())
}

/// Unix seconds as `YYYY-MM-DD HH:MM UTC` (Howard Hinnant's civil-from-days).
pub fn utc(unix: u64) -> String {
    let days = (unix / 86_400) as i64;
    let (hour, minute) = ((unix % 86_400) / 3600, (unix % 3600) / 60);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02} {hour:02}:{minute:02} UTC")
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
