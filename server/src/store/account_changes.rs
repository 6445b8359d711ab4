//! Changes to who can sign in to an account. Each one commits in a single
//! transaction with its audit-log entries and the notice every device of the
//! account is shown (`account_changes`): the change, its record and its
//! announcement land together or not at all.

use sqlx::Row;

use super::accounts::CredentialRow;
use super::{Store, StoreError, to_i64, to_u64};

/// One change to an account's sign-in.
#[derive(Debug)]
pub enum AccountChange<'a> {
    /// A pending TOTP enrollment was confirmed with the code of `step`.
    TotpConfirmed {
        /// The time step spent.
        step: u64,
        /// Recovery codes to store with it, if this is the first factor.
        first_codes: &'a [(String, String)],
    },
    /// The TOTP was removed.
    TotpRemoved,
    /// A passkey was registered; with `passwordless`, it alone signs in.
    PasskeyAdded {
        /// The credential.
        credential: &'a CredentialRow,
        /// Whether the account becomes passwordless.
        passwordless: bool,
        /// Recovery codes to store with it, if this is the first factor.
        first_codes: &'a [(String, String)],
    },
    /// A passkey was removed.
    PasskeyRemoved {
        /// Its base64url id.
        credential_id: &'a str,
    },
    /// Every recovery code was replaced by these (id, argon2id hash).
    RecoveryCodesReplaced {
        /// The new codes.
        codes: &'a [(String, String)],
    },
    /// The password changed; every session but `keep_device`'s ends.
    PasswordChanged {
        /// The new argon2id hash.
        hash: &'a str,
        /// The device that changed it.
        keep_device: &'a str,
    },
    /// A device was revoked.
    DeviceRevoked {
        /// The device.
        device_id: &'a str,
    },
    /// The owner recovered the account with a recovery code: every other
    /// device is revoked, every factor added since `since` removed, the
    /// account is no longer passwordless and gets new recovery codes.
    Recovered {
        /// The device that recovered it.
        keep_device: &'a str,
        /// Factors added at or after this time (unix seconds) are removed.
        since: u64,
        /// The new recovery codes.
        codes: &'a [(String, String)],
    },
    /// A host administrator locked the account: every device revoked,
    /// every factor and recovery code removed, no sign-in until a recovery
    /// invite is redeemed.
    Locked,
    /// A recovery invite was redeemed: a new password, the account unlocked.
    Unlocked {
        /// The new argon2id hash.
        hash: &'a str,
        /// The recovery invite spent.
        invite_id: &'a str,
    },
}

impl AccountChange<'_> {
    /// The name the account's devices are shown.
    pub fn kind(&self) -> &'static str {
        match self {
            AccountChange::TotpConfirmed { .. } => "totp_added",
            AccountChange::TotpRemoved => "totp_removed",
            AccountChange::PasskeyAdded {
                passwordless: true, ..
            } => "passkey_added_passwordless",
            AccountChange::PasskeyAdded { .. } => "passkey_added",
            AccountChange::PasskeyRemoved { .. } => "passkey_removed",
            AccountChange::RecoveryCodesReplaced { .. } => "recovery_codes_replaced",
            AccountChange::PasswordChanged { .. } => "password_changed",
            AccountChange::DeviceRevoked { .. } => "device_revoked",
            AccountChange::Recovered { .. } => "account_recovered",
            AccountChange::Locked => "account_locked",
            AccountChange::Unlocked { .. } => "account_unlocked",
        }
    }
}

/// What a change did.
#[derive(Debug, Default)]
pub struct ChangeOutcome {
    /// `false` if nothing matched (the factor or device was not there, the
    /// TOTP step was spent, the invite was used): nothing was written.
    pub applied: bool,
    /// Devices whose sessions ended or that were revoked.
    pub devices_ended: Vec<String>,
    /// Factors removed, as `totp` or `webauthn:<credential id>`.
    pub factors_removed: Vec<String>,
}

/// One entry of the account's change list, as its devices fetch it.
#[derive(Debug, Clone)]
pub struct AccountChangeRow {
    /// Increasing id.
    pub id: u64,
    /// Unix seconds.
    pub at: u64,
    /// [`AccountChange::kind`].
    pub kind: String,
    /// The factor or device concerned, if any.
    pub detail: Option<String>,
    /// The device that made the change (none for the host administrator).
    pub device_id: Option<String>,
}

type Tx = sqlx::Transaction<'static, sqlx::Any>;

async fn revoke_all_but(
    tx: &mut Tx,
    username: &str,
    keep: &str,
    now: i64,
) -> Result<Vec<String>, StoreError> {
    let rows = sqlx::query(
        "UPDATE devices SET revoked_at = $3, session_started_at = NULL
         WHERE username = $1 AND device_id <> $2 AND revoked_at IS NULL
         RETURNING device_id",
    )
    .bind(username)
    .bind(keep)
    .bind(now)
    .fetch_all(&mut **tx)
    .await?;
    let revoked: Vec<String> = rows.iter().map(|r| r.get(0)).collect();
    for device in &revoked {
        sqlx::query("DELETE FROM key_packages WHERE device_id = $1")
            .bind(device)
            .execute(&mut **tx)
            .await?;
    }
    Ok(revoked)
}

async fn replace_codes(
    tx: &mut Tx,
    username: &str,
    codes: &[(String, String)],
) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM recovery_codes WHERE username = $1")
        .bind(username)
        .execute(&mut **tx)
        .await?;
    for (id, hash) in codes {
        sqlx::query(
            "INSERT INTO recovery_codes (username, code_id, code_hash, used_at)
             VALUES ($1, $2, $3, NULL)",
        )
        .bind(username)
        .bind(id)
        .bind(hash)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

/// Removes factors added at or after `since` (all of them for 0).
async fn remove_factors_since(
    tx: &mut Tx,
    username: &str,
    since: u64,
) -> Result<Vec<String>, StoreError> {
    let mut removed = Vec::new();
    let totp =
        sqlx::query("DELETE FROM totp WHERE username = $1 AND created_at >= $2 RETURNING username")
            .bind(username)
            .bind(to_i64(since))
            .fetch_all(&mut **tx)
            .await?;
    if !totp.is_empty() {
        removed.push("totp".to_owned());
    }
    let passkeys = sqlx::query(
        "DELETE FROM webauthn_credentials WHERE username = $1 AND created_at >= $2
         RETURNING credential_id",
    )
    .bind(username)
    .bind(to_i64(since))
    .fetch_all(&mut **tx)
    .await?;
    removed.extend(
        passkeys
            .iter()
            .map(|r| format!("webauthn:{}", r.get::<String, _>(0))),
    );
    Ok(removed)
}

impl Store {
    /// Applies `change` to `username`'s account, made by `by_device` (none
    /// for the host administrator), with the audit entries `events` builds
    /// from the outcome, in one transaction. Nothing is written if the
    /// change does not apply.
    pub async fn change_account(
        &self,
        username: &str,
        change: AccountChange<'_>,
        by_device: Option<&str>,
        events: impl FnOnce(&ChangeOutcome) -> Vec<conclave_audit::Event>,
    ) -> Result<ChangeOutcome, StoreError> {
        let mut tx = self.begin_write().await?;
        let mut outcome = ChangeOutcome::default();
        let mut detail: Option<String> = None;
        match &change {
            AccountChange::TotpConfirmed { step, first_codes } => {
                // The compare-and-set on the step also makes the code single-use.
                outcome.applied = sqlx::query(
                    "UPDATE totp SET last_step = $2, confirmed = TRUE, created_at = $3
                     WHERE username = $1 AND last_step < $2 AND NOT confirmed",
                )
                .bind(username)
                .bind(to_i64(*step))
                .bind(self.now())
                .execute(&mut *tx)
                .await?
                .rows_affected()
                    == 1;
                if outcome.applied && !first_codes.is_empty() {
                    replace_codes(&mut tx, username, first_codes).await?;
                }
            }
            AccountChange::TotpRemoved => {
                outcome.applied = sqlx::query("DELETE FROM totp WHERE username = $1")
                    .bind(username)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected()
                    == 1;
                outcome.factors_removed.push("totp".to_owned());
            }
            AccountChange::PasskeyAdded {
                credential,
                passwordless,
                first_codes,
            } => {
                outcome.applied = sqlx::query(
                    "INSERT INTO webauthn_credentials (credential_id, username, name, passkey, created_at)
                     VALUES ($1, $2, $3, $4, $5) ON CONFLICT (credential_id) DO NOTHING",
                )
                .bind(&credential.credential_id)
                .bind(username)
                .bind(&credential.name)
                .bind(&credential.passkey)
                .bind(self.now())
                .execute(&mut *tx)
                .await?
                .rows_affected()
                    == 1;
                if outcome.applied && !first_codes.is_empty() {
                    replace_codes(&mut tx, username, first_codes).await?;
                }
                if outcome.applied && *passwordless {
                    sqlx::query("UPDATE accounts SET passwordless = TRUE WHERE username = $1")
                        .bind(username)
                        .execute(&mut *tx)
                        .await?;
                }
                detail = Some(format!("webauthn:{}", credential.credential_id));
            }
            AccountChange::PasskeyRemoved { credential_id } => {
                outcome.applied = sqlx::query(
                    "DELETE FROM webauthn_credentials WHERE username = $1 AND credential_id = $2",
                )
                .bind(username)
                .bind(*credential_id)
                .execute(&mut *tx)
                .await?
                .rows_affected()
                    == 1;
                // Passwordless needs a passkey to sign in with.
                sqlx::query(
                    "UPDATE accounts SET passwordless = FALSE WHERE username = $1
                     AND NOT EXISTS (SELECT 1 FROM webauthn_credentials WHERE username = $1)",
                )
                .bind(username)
                .execute(&mut *tx)
                .await?;
                detail = Some(format!("webauthn:{credential_id}"));
                outcome
                    .factors_removed
                    .push(format!("webauthn:{credential_id}"));
            }
            AccountChange::RecoveryCodesReplaced { codes } => {
                replace_codes(&mut tx, username, codes).await?;
                outcome.applied = true;
            }
            AccountChange::PasswordChanged { hash, keep_device } => {
                sqlx::query("UPDATE accounts SET password_hash = $2 WHERE username = $1")
                    .bind(username)
                    .bind(*hash)
                    .execute(&mut *tx)
                    .await?;
                let ended = sqlx::query(
                    "UPDATE devices SET session_started_at = NULL
                     WHERE username = $1 AND device_id <> $2 AND session_started_at IS NOT NULL
                     RETURNING device_id",
                )
                .bind(username)
                .bind(*keep_device)
                .fetch_all(&mut *tx)
                .await?;
                outcome.devices_ended = ended.iter().map(|r| r.get(0)).collect();
                outcome.applied = true;
            }
            AccountChange::DeviceRevoked { device_id } => {
                outcome.applied = sqlx::query(
                    "UPDATE devices SET revoked_at = $3, session_started_at = NULL
                     WHERE username = $1 AND device_id = $2 AND revoked_at IS NULL",
                )
                .bind(username)
                .bind(*device_id)
                .bind(self.now())
                .execute(&mut *tx)
                .await?
                .rows_affected()
                    == 1;
                sqlx::query("DELETE FROM key_packages WHERE device_id = $1")
                    .bind(*device_id)
                    .execute(&mut *tx)
                    .await?;
                outcome.devices_ended.push((*device_id).to_owned());
                detail = Some(format!("device:{device_id}"));
            }
            AccountChange::Recovered {
                keep_device,
                since,
                codes,
            } => {
                outcome.devices_ended =
                    revoke_all_but(&mut tx, username, keep_device, self.now()).await?;
                outcome.factors_removed = remove_factors_since(&mut tx, username, *since).await?;
                sqlx::query("UPDATE accounts SET passwordless = FALSE WHERE username = $1")
                    .bind(username)
                    .execute(&mut *tx)
                    .await?;
                replace_codes(&mut tx, username, codes).await?;
                outcome.applied = true;
            }
            AccountChange::Locked => {
                outcome.applied = sqlx::query(
                    "UPDATE accounts SET locked_at = $2, passwordless = FALSE WHERE username = $1",
                )
                .bind(username)
                .bind(self.now())
                .execute(&mut *tx)
                .await?
                .rows_affected()
                    == 1;
                outcome.devices_ended = revoke_all_but(&mut tx, username, "", self.now()).await?;
                outcome.factors_removed = remove_factors_since(&mut tx, username, 0).await?;
                replace_codes(&mut tx, username, &[]).await?;
                // A recovery invite issued before the lock must not outlive it.
                sqlx::query(
                    "UPDATE invites SET expires_at = $2 WHERE for_account = $1 AND used_by IS NULL",
                )
                .bind(username)
                .bind(self.now())
                .execute(&mut *tx)
                .await?;
            }
            AccountChange::Unlocked { hash, invite_id } => {
                outcome.applied = sqlx::query(
                    "UPDATE invites SET used_by = $2, used_at = $3
                     WHERE invite_id = $1 AND for_account = $2 AND used_by IS NULL AND expires_at > $3",
                )
                .bind(*invite_id)
                .bind(username)
                .bind(self.now())
                .execute(&mut *tx)
                .await?
                .rows_affected()
                    == 1;
                if outcome.applied {
                    sqlx::query(
                        "UPDATE accounts SET password_hash = $2, locked_at = NULL WHERE username = $1",
                    )
                    .bind(username)
                    .bind(*hash)
                    .execute(&mut *tx)
                    .await?;
                }
            }
        }
        if !outcome.applied {
            return Ok(outcome);
        }
        for event in events(&outcome) {
            conclave_audit::log::append(&mut tx, event).await?;
        }
        sqlx::query(
            "INSERT INTO account_changes (username, at, kind, detail, device_id)
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(username)
        .bind(self.now())
        .bind(change.kind())
        .bind(detail.as_deref())
        .bind(by_device)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(outcome)
    }

    /// Appends `entry` to the log and, unless `by_device` was already the
    /// subject of a `kind` announcement at or after `since`, tells the
    /// account's devices about it (wrong passwords from one of its devices,
    /// say), in one transaction. Returns whether it announced.
    pub async fn announce_once(
        &self,
        username: &str,
        kind: &str,
        detail: &str,
        by_device: &str,
        since: u64,
        entry: conclave_audit::Event,
    ) -> Result<bool, StoreError> {
        let mut tx = self.begin_write().await?;
        conclave_audit::log::append(&mut tx, entry).await?;
        let told = sqlx::query(
            "SELECT 1 FROM account_changes
             WHERE username = $1 AND kind = $2 AND device_id = $3 AND at >= $4",
        )
        .bind(username)
        .bind(kind)
        .bind(by_device)
        .bind(to_i64(since))
        .fetch_optional(&mut *tx)
        .await?
        .is_some();
        if told {
            tx.commit().await?;
            return Ok(false);
        }
        sqlx::query(
            "INSERT INTO account_changes (username, at, kind, detail, device_id)
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(username)
        .bind(self.now())
        .bind(kind)
        .bind(detail)
        .bind(by_device)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    /// The account's changes of the last 30 days, oldest first, for its
    /// devices to show the ones they have not seen.
    pub async fn account_changes(
        &self,
        username: &str,
    ) -> Result<Vec<AccountChangeRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, at, kind, detail, device_id FROM account_changes
             WHERE username = $1 AND at > $2 ORDER BY id",
        )
        .bind(username)
        .bind(self.now() - 30 * 86_400)
        .fetch_all(&self.readers)
        .await?;
        Ok(rows
            .iter()
            .map(|r| AccountChangeRow {
                id: to_u64(r.get(0)),
                at: to_u64(r.get(1)),
                kind: r.get(2),
                detail: r.get(3),
                device_id: r.get(4),
            })
            .collect())
    }

    /// Whether a host administrator locked the account.
    pub async fn account_locked(&self, username: &str) -> Result<bool, StoreError> {
        let row = sqlx::query("SELECT locked_at FROM accounts WHERE username = $1")
            .bind(username)
            .fetch_optional(&self.readers)
            .await?;
        Ok(row.is_some_and(|r| r.get::<Option<i64>, _>(0).is_some()))
    }

    /// Stores a recovery invite for `username` (its code only as an argon2id
    /// hash), with its audit entry `issued`, in one transaction; any earlier
    /// one for the account stops working.
    pub async fn create_recovery_invite(
        &self,
        invite_id: &str,
        code_hash: &str,
        created_by: &str,
        username: &str,
        expires_at: u64,
        issued: conclave_audit::Event,
    ) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "UPDATE invites SET expires_at = $2 WHERE for_account = $1 AND used_by IS NULL",
        )
        .bind(username)
        .bind(self.now())
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO invites (invite_id, code_hash, created_by, created_at, expires_at, for_account)
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(invite_id)
        .bind(code_hash)
        .bind(created_by)
        .bind(self.now())
        .bind(to_i64(expires_at))
        .bind(username)
        .execute(&mut *tx)
        .await?;
        conclave_audit::log::append(&mut tx, issued).await?;
        tx.commit().await?;
        Ok(())
    }

    /// The hash of an open recovery invite for `username`.
    pub async fn open_recovery_invite(
        &self,
        invite_id: &str,
        username: &str,
    ) -> Result<Option<String>, StoreError> {
        let row = sqlx::query(
            "SELECT code_hash FROM invites
             WHERE invite_id = $1 AND for_account = $2 AND used_by IS NULL AND expires_at > $3",
        )
        .bind(invite_id)
        .bind(username)
        .bind(self.now())
        .fetch_optional(&self.readers)
        .await?;
        Ok(row.map(|r| r.get(0)))
    }

    /// Counts a failed login for an account that does not exist, in the
    /// current five-minute window. Such guesses enter the audit log as one
    /// entry per window with the count ([`Store::flush_unknown_logins`]),
    /// not one leaf each: a flood of made-up names cannot grow the log.
    pub async fn tally_unknown_login(&self) -> Result<(), StoreError> {
        let now = self.now();
        let window = now - now % UNKNOWN_LOGIN_WINDOW;
        sqlx::query(
            "INSERT INTO rate_limits (bucket, window_start, hits) VALUES ($1, $2, 1)
             ON CONFLICT (bucket) DO UPDATE SET hits = rate_limits.hits + 1",
        )
        .bind(format!("{UNKNOWN_LOGIN_BUCKET}{window}"))
        .bind(window)
        .execute(self.writes())
        .await?;
        Ok(())
    }

    /// Moves the counts of failed logins for unknown accounts into the audit
    /// log: each closed window (every window with `all`, at shutdown) becomes
    /// one entry built by `entry(count, window_start)`, in the transaction
    /// that deletes its count. Returns how many failures were logged.
    pub async fn flush_unknown_logins(
        &self,
        all: bool,
        entry: impl Fn(u64, u64) -> conclave_audit::Event,
    ) -> Result<u64, StoreError> {
        let now = self.now();
        let open_window = now - now % UNKNOWN_LOGIN_WINDOW;
        let windows = sqlx::query(
            "SELECT bucket FROM rate_limits WHERE bucket LIKE $1 AND (window_start < $2 OR $3 = 1)",
        )
        .bind(format!("{UNKNOWN_LOGIN_BUCKET}%"))
        .bind(open_window)
        .bind(i64::from(all))
        .fetch_all(&self.readers)
        .await?;
        let mut logged = 0;
        for window in windows {
            let bucket: String = window.get(0);
            let mut tx = self.begin_write().await?;
            let taken = sqlx::query(
                "DELETE FROM rate_limits WHERE bucket = $1 RETURNING hits, window_start",
            )
            .bind(&bucket)
            .fetch_optional(&mut *tx)
            .await?;
            if let Some(row) = taken {
                let count = to_u64(row.get(0));
                conclave_audit::log::append(&mut tx, entry(count, to_u64(row.get(1)))).await?;
                logged += count;
            }
            tx.commit().await?;
        }
        Ok(logged)
    }
}

/// Seconds of one window of failed logins for unknown accounts.
const UNKNOWN_LOGIN_WINDOW: i64 = 300;
/// The rate-limit bucket prefix those windows are counted under.
const UNKNOWN_LOGIN_BUCKET: &str = "unknown-login:";
