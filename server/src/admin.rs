//! Host-side administration: accounts, roles, invites, bots, commands and
//! policy, managed from the server host through [`Admin`]. Nothing here is
//! reachable over the network: whoever can run this can already read the
//! data directory. `conclave-server admin …` (the binary's `admin.rs`) is
//! its command line; this module decides and records, the binary prints.

use crate::accounts::invites::issue_invite;
use crate::error::ServerError;
use crate::events::{AuditAction, AuditEvent, AuditTrail};
use crate::{Config, Store, open_store};

/// Roles an account can hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// May issue invites over the API.
    Admin,
    /// May read every audit log entry and ask for any proof.
    Auditor,
}

impl Role {
    /// The role's name, as the relay stores it.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => crate::accounts::ADMIN_ROLE,
            Role::Auditor => crate::http::audit::AUDITOR_ROLE,
        }
    }
}

/// A database failure, as an admin command reports it. A change whose audit
/// entry the log could not take was rolled back with it: say so.
fn db(source: crate::StoreError) -> ServerError {
    match source {
        crate::StoreError::Log(e) => ServerError::Refused(format!(
            "the audit log could not record this change, so nothing was changed: {e}"
        )),
        source => ServerError::Database {
            what: "database",
            source,
        },
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
        &password_server(config, &store).await?,
        name,
        owner,
    )
    .await
}

/// The relay's OPAQUE setup, for a password the host makes (a bot's).
async fn password_server(
    config: &Config,
    store: &Store,
) -> Result<conclave_crypto::password::PasswordServer, ServerError> {
    let server_key = crate::server_key::ServerKey::load(&config.server_key)?;
    crate::accounts::passwords::load_password_server(store, &server_key)
        .await
        .map_err(refused)
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
    passwords: &conclave_crypto::password::PasswordServer,
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
    // The bot's password is made here and shown once; only its OPAQUE
    // record is kept, as for any account.
    let hash = crate::accounts::passwords::verifier_for_generated(
        passwords,
        name.as_str(),
        password.as_bytes(),
    )
    .await
    .map_err(refused)?;
    let created = events.entry(
        AuditEvent::success(AuditAction::AccountCreated, HOST_ADMIN)
            .target(name.as_str())
            .detail("bot_owner", owner),
    );
    if !store
        .create_bot(name.as_str(), &hash, owner, created)
        .await
        .map_err(db)?
    {
        return Err(ServerError::Refused(format!(
            "an account named {name} already exists"
        )));
    }
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
    let changed = events.entry(
        AuditEvent::success(AuditAction::PolicyChanged, HOST_ADMIN)
            .target(format!("command:{name}"))
            .detail("bot", bot),
    );
    store
        .set_command(&name, bot, usage, changed)
        .await
        .map_err(db)?;
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
    // A log key the data directory still holds from an earlier release
    // moves into the key directory first.
    crate::keys::prepare(&config.key_layout())?;
    if let Some(log_key) = config.log_key.file()
        && !log_key.is_file()
    {
        return Err(ServerError::Refused(format!(
            "no audit log key at {} (the key directory of the data directory {}): {start_first}",
            log_key.display(),
            data_dir.display()
        )));
    }
    Ok(())
}

/// The relay's data, opened for host-side administration. Every change is
/// recorded in the audit log as the host administrator's, in the change's
/// own transaction: if the log cannot take the entry, the command fails and
/// nothing changes.
#[derive(Debug)]
pub struct Admin {
    config: Config,
    store: Store,
    log: conclave_audit::log::TransparencyLog,
    events: AuditTrail,
}

/// Workspace policy, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// Every account must have a second factor.
    pub require_second_factor: bool,
    /// Days messages are kept (0: forever), where a channel sets none.
    pub retention_days: String,
    /// The most people in a group direct message.
    pub max_group_dm: String,
    /// Whether anyone may register without an invite (a relay setting).
    pub open_registration: bool,
}

/// A change to workspace policy; `None` leaves a setting as it is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PolicyChange {
    /// Require a second factor of every account.
    pub require_second_factor: Option<bool>,
    /// Days messages are kept (0: forever).
    pub retention_days: Option<u32>,
    /// The most people in a group direct message.
    pub max_group_dm: Option<u32>,
}

/// An issued invite: the code to hand out (shown once) and when it expires.
pub struct IssuedInvite {
    /// The code.
    pub code: zeroize::Zeroizing<String>,
    /// Unix seconds.
    pub expires_at: u64,
}

impl std::fmt::Debug for IssuedInvite {
    // The code lets someone in: it never reaches a log through `{:?}`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuedInvite")
            .field("code", &"<redacted>")
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

/// One entry of the audit log, as an administrator reads it.
#[derive(Debug)]
pub struct LoggedEvent {
    /// Its position in the log.
    pub index: u64,
    /// The event; `None` if the entry does not decode (the log was altered).
    pub event: Option<conclave_audit::Event>,
}

impl Admin {
    /// Opens the relay's data for administration, refusing a data directory
    /// where no relay has started (see `refuse_a_missing_relay`).
    pub async fn open(config: Config) -> Result<Self, ServerError> {
        refuse_a_missing_relay(&config)?;
        let store = open_store(&config).await?;
        let (log, _) = crate::transparency_log(&store, &config)?;
        let events = AuditTrail::new(log.clone(), false, store.clock().clone());
        Ok(Self {
            config,
            store,
            log,
            events,
        })
    }

    /// Every account, with its roles, second factors and devices.
    pub async fn accounts(&self) -> Result<Vec<crate::store::AccountSummary>, ServerError> {
        self.store.accounts().await.map_err(db)
    }

    /// Grants `role` to `username`.
    pub async fn grant(&self, username: &str, role: Role) -> Result<(), ServerError> {
        let granted = self.events.entry(
            AuditEvent::success(AuditAction::RoleChanged, HOST_ADMIN)
                .target(format!("{username}:+{}", role.as_str())),
        );
        if !self
            .store
            .grant_role(username, role.as_str(), granted)
            .await
            .map_err(db)?
        {
            return Err(ServerError::Refused(format!(
                "no account named {username:?}"
            )));
        }
        Ok(())
    }

    /// Takes `role` away from `username`.
    pub async fn revoke_role(&self, username: &str, role: Role) -> Result<(), ServerError> {
        let revoked = self.events.entry(
            AuditEvent::success(AuditAction::RoleChanged, HOST_ADMIN)
                .target(format!("{username}:-{}", role.as_str())),
        );
        if !self
            .store
            .revoke_role(username, role.as_str(), revoked)
            .await
            .map_err(db)?
        {
            return Err(ServerError::Refused(format!(
                "{username:?} does not have the {} role",
                role.as_str()
            )));
        }
        Ok(())
    }

    /// Routes `/name` to `bot`, shown with `usage` (default `/name`).
    /// Returns the name without its slash, and the usage.
    pub async fn add_command(
        &self,
        name: &str,
        bot: &str,
        usage: Option<&str>,
    ) -> Result<(String, String), ServerError> {
        let usage = usage.map_or_else(
            || format!("/{}", name.trim_start_matches('/')),
            str::to_owned,
        );
        let name = register_command(&self.store, &self.events, name, bot, &usage).await?;
        Ok((name, usage))
    }

    /// Removes `/name`; returns the name without its slash.
    pub async fn remove_command(&self, name: &str) -> Result<String, ServerError> {
        let name = name.trim_start_matches('/').to_owned();
        let removed = self.events.entry(
            AuditEvent::success(AuditAction::PolicyChanged, HOST_ADMIN)
                .target(format!("command:{name}"))
                .detail("removed", true),
        );
        if !self
            .store
            .remove_command(&name, removed)
            .await
            .map_err(db)?
        {
            return Err(ServerError::Refused(format!("there is no command /{name}")));
        }
        Ok(name)
    }

    /// The slash commands: name, bot, usage.
    pub async fn commands(&self) -> Result<Vec<(String, String, String)>, ServerError> {
        self.store.commands().await.map_err(db)
    }

    /// Creates bot account `name` run by `owner`; returns its password,
    /// which exists nowhere else.
    pub async fn create_bot(
        &self,
        name: &str,
        owner: &str,
    ) -> Result<zeroize::Zeroizing<String>, ServerError> {
        let passwords = password_server(&self.config, &self.store).await?;
        new_bot(&self.store, &self.events, &passwords, name, owner).await
    }

    /// Issues one single-use invite code valid for `ttl` seconds.
    pub async fn invite(&self, ttl: u64) -> Result<IssuedInvite, ServerError> {
        let (code, _, expires_at) = issue_invite(&self.store, HOST_ADMIN, ttl, |id| {
            self.events.entry(
                AuditEvent::success(AuditAction::InviteCreated, HOST_ADMIN)
                    .target(format!("invite:{id}")),
            )
        })
        .await
        .map_err(refused)?;
        Ok(IssuedInvite { code, expires_at })
    }

    /// Applies `change`, then reads the policy back.
    pub async fn policy(&self, change: PolicyChange) -> Result<Policy, ServerError> {
        let settings = [
            ("max_group_dm", change.max_group_dm.map(|p| p.to_string())),
            (
                "retention_days",
                change.retention_days.map(|d| d.to_string()),
            ),
            (
                "require_second_factor",
                change.require_second_factor.map(|r| r.to_string()),
            ),
        ];
        for (name, value) in settings {
            let Some(value) = value else { continue };
            let changed = self.events.entry(
                AuditEvent::success(AuditAction::PolicyChanged, HOST_ADMIN)
                    .target(format!("{name}={value}")),
            );
            self.store
                .set_setting(name, &value, changed)
                .await
                .map_err(db)?;
        }
        let setting =
            |name: &'static str| async move { self.store.setting(name).await.map_err(db) };
        Ok(Policy {
            require_second_factor: setting("require_second_factor").await?.as_deref()
                == Some("true"),
            retention_days: setting("retention_days")
                .await?
                .unwrap_or_else(|| "0".to_owned()),
            max_group_dm: setting("max_group_dm")
                .await?
                .unwrap_or_else(|| conclave_proto::DEFAULT_MAX_GROUP_DM.to_string()),
            open_registration: self.config.open_registration,
        })
    }

    /// The latest `limit` entries of the audit log, oldest first.
    pub async fn recent_events(&self, limit: u32) -> Result<Vec<LoggedEvent>, ServerError> {
        let log_error =
            |e: conclave_audit::log::LogError| ServerError::Refused(format!("audit log: {e}"));
        let size = self.log.size().await.map_err(log_error)?;
        let start = size.saturating_sub(u64::from(limit));
        Ok(self
            .log
            .entries(start, size)
            .await
            .map_err(log_error)?
            .into_iter()
            .map(|entry| LoggedEvent {
                index: entry.index,
                event: conclave_audit::Event::decode(&entry.leaf).ok(),
            })
            .collect())
    }

    /// The log's verifier key, and a checkpoint signed now.
    pub async fn log_key(&self) -> Result<(String, String), ServerError> {
        let checkpoint = self
            .log
            .checkpoint(self.store.clock().unix_now())
            .await
            .map_err(|e| ServerError::Refused(format!("audit log: {e}")))?;
        Ok((self.log.verifier_key().to_string(), checkpoint.note))
    }

    /// Replaces the log key with a new one under the same name, and keeps
    /// the statement, signed by both, that introduces it to clients that
    /// pinned the old one. The old key moves to `log.key.retired-<time>`
    /// (0600) for the operator to destroy once every node runs the new one.
    /// Returns the new verifier key. Nodes sign with it from their next
    /// start.
    pub async fn rotate_log_key(&self) -> Result<String, ServerError> {
        let Some(path) = self.config.log_key.file() else {
            return Err(ServerError::Refused(
                "the log key comes from CONCLAVE_LOG_KEY: rotate it where it is kept, with a rotation statement made by `admin rotate-log-key` on a copy in a file".into(),
            ));
        };
        let (old, _) =
            crate::log_key::load_or_create(&self.config.log_key, &self.config.log_origin)?;
        let new = conclave_audit::NoteSigner::new(
            old.verifier_key().name(),
            ed25519_dalek::SigningKey::generate(&mut rand::rngs::OsRng),
        )
        .map_err(|e| ServerError::Key(format!("new log key: {e}")))?;
        let statement = conclave_audit::rotation::rotation_statement(&old, &new)
            .map_err(|e| ServerError::Key(format!("rotation statement: {e}")))?;
        let now = self.store.clock().unix_now();
        self.log
            .add_key_rotation(&new.verifier_key().to_string(), &statement, now)
            .await
            .map_err(|e| ServerError::Refused(format!("audit log: {e}")))?;
        let retired = path.with_file_name(format!(
            "{}.retired-{now}",
            path.file_name()
                .and_then(|n| n.to_str())
                .unwrap_or("log.key")
        ));
        std::fs::rename(path, &retired)
            .map_err(|e| ServerError::file("retire the log key", path, e))?;
        let mut line = new.private_key();
        line.push('\n');
        crate::private_files::write_secret_file(path, "log key", line.as_bytes())?;
        Ok(new.verifier_key().to_string())
    }

    /// Locks `username` at once: every device revoked, every second factor
    /// and recovery code removed, no sign-in until a recovery invite.
    pub async fn lock(&self, username: &str) -> Result<(), ServerError> {
        lock_account(&self.store, &self.events, username).await
    }

    /// Whether `username` is locked.
    pub async fn is_locked(&self, username: &str) -> Result<bool, ServerError> {
        self.store.account_locked(username).await.map_err(db)
    }

    /// A one-time recovery invite for `username` (locked already), valid
    /// for `ttl` seconds.
    pub async fn recovery_invite(
        &self,
        username: &str,
        ttl: u64,
    ) -> Result<IssuedInvite, ServerError> {
        let code = crate::accounts::factors::INVITE_CODE.generate();
        let (id, whole) = crate::accounts::factors::INVITE_CODE
            .parse(&code)
            .ok_or_else(|| ServerError::Refused("a generated invite code does not parse".into()))?;
        let hash = crate::auth::hash_secret(whole).await.map_err(refused)?;
        let expires_at = self.store.clock().unix_now() + ttl;
        let issued = self.events.entry(
            AuditEvent::success(AuditAction::InviteCreated, HOST_ADMIN)
                .target(format!("invite:{id}"))
                .detail("recovers", username),
        );
        self.store
            .create_recovery_invite(&id, &hash, HOST_ADMIN, username, expires_at, issued)
            .await
            .map_err(db)?;
        Ok(IssuedInvite { code, expires_at })
    }
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
    fn an_issued_invite_never_shows_its_code() {
        let invite = super::IssuedInvite {
            code: zeroize::Zeroizing::new("inv-secret-code".into()),
            expires_at: 7,
        };
        let shown = format!("{invite:?}");
        assert!(!shown.contains("inv-secret-code"), "{shown}");
        assert!(shown.contains("<redacted>"));
    }

    #[test]
    fn utc_dates() {
        assert_eq!(super::utc(0), "1970-01-01 00:00 UTC");
        assert_eq!(super::utc(951_782_400), "2000-02-29 00:00 UTC");
        assert_eq!(super::utc(1_795_529_682), "2026-11-24 14:14 UTC");
    }
}
