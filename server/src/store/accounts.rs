//! Accounts beyond the password: sessions, second factors, recovery and
//! invite codes, roles, workspace settings, rate limits and the record of
//! authentication events.

use sqlx::Row;

use super::{Store, StoreError, to_i64, to_u64};

/// What the request authenticator needs to know about a signing device, in one query.
#[derive(Debug, Clone)]
pub struct DeviceSession {
    /// The owning account.
    pub username: String,
    /// The Ed25519 public key.
    pub public_key: Vec<u8>,
    /// When the device last proved the password and second factor; `None`
    /// once its session was ended (password change) and it must log in again.
    pub session_started_at: Option<u64>,
    /// When the device last made a request (to a minute).
    pub last_seen_at: u64,
    /// Set once the device is revoked, for good.
    pub revoked_at: Option<u64>,
    /// The account has a confirmed TOTP or a WebAuthn credential.
    pub has_second_factor: bool,
    /// The workspace requires a second factor of everyone.
    pub second_factor_required: bool,
}

/// One of an account's devices, as its owner sees the list.
#[derive(Debug, Clone)]
pub struct DeviceInfo {
    /// Hex device id.
    pub device_id: String,
    /// Registered at (unix seconds).
    pub created_at: u64,
    /// Last request (unix seconds, to a minute).
    pub last_seen_at: u64,
    /// Revoked at, if it was.
    pub revoked_at: Option<u64>,
    /// Whether it holds a live session.
    pub session_active: bool,
}

/// An account's TOTP enrolment.
#[derive(Debug, Clone)]
pub struct TotpRow {
    /// The secret, sealed under the server key.
    pub sealed_secret: String,
    /// Whether the user proved a code after enrolling.
    pub confirmed: bool,
    /// The last time step accepted; a code for it or an earlier step is refused.
    pub last_step: u64,
}

/// A stored WebAuthn credential.
#[derive(Debug, Clone)]
pub struct CredentialRow {
    /// base64url credential id.
    pub credential_id: String,
    /// The name the user gave it.
    pub name: String,
    /// webauthn-rs `Passkey`, as JSON: public key and signature counter.
    pub passkey: String,
}

/// When an account's second factors were added (unix seconds).
#[derive(Debug, Clone, Default)]
pub struct FactorAges {
    /// The confirmed TOTP, if any.
    pub totp: Option<u64>,
    /// Each passkey: its base64url credential id, and when it was added.
    pub passkeys: Vec<(String, u64)>,
}

/// A pending WebAuthn ceremony.
#[derive(Debug, Clone)]
pub struct ChallengeRow {
    /// The account it is for.
    pub username: String,
    /// `register` or `authenticate`.
    pub purpose: String,
    /// webauthn-rs ceremony state, as JSON.
    pub state: String,
    /// Unix seconds after which it is void.
    pub expires_at: u64,
}

/// An account as the admin tool lists it.
#[derive(Debug, Clone)]
pub struct AccountSummary {
    /// Username.
    pub username: String,
    /// Granted roles.
    pub roles: Vec<String>,
    /// Confirmed TOTP.
    pub totp: bool,
    /// WebAuthn credentials.
    pub webauthn: u64,
    /// Devices that are not revoked.
    pub active_devices: u64,
}

/// Result of counting one request against a rate-limit bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BucketState {
    /// Requests counted in the current window.
    pub hits: u64,
    /// When the current window started (unix seconds).
    pub window_start: u64,
}

/// The columns of a [`DeviceSession`], from `devices d JOIN accounts a`, in
/// the order [`device_session_at`] reads them. A second factor is a
/// confirmed TOTP or any WebAuthn credential.
pub(super) const DEVICE_SESSION_COLUMNS: &str =
    "d.username, d.public_key, d.session_started_at, d.last_seen_at, d.revoked_at,
     CAST(CASE WHEN EXISTS (SELECT 1 FROM totp t WHERE t.username = a.username AND t.confirmed)
                 OR EXISTS (SELECT 1 FROM webauthn_credentials w WHERE w.username = a.username)
          THEN 1 ELSE 0 END AS BIGINT),
     CAST(CASE WHEN a.bot_owner IS NULL AND EXISTS (SELECT 1 FROM settings s
          WHERE s.name = 'require_second_factor' AND s.value = 'true')
          THEN 1 ELSE 0 END AS BIGINT)";

/// How many columns [`DEVICE_SESSION_COLUMNS`] names.
pub(super) const DEVICE_SESSION_WIDTH: usize = 7;

/// The [`DeviceSession`] in `row`'s columns from `first` on.
pub(super) fn device_session_at(row: &sqlx::any::AnyRow, first: usize) -> DeviceSession {
    DeviceSession {
        username: row.get(first),
        public_key: row.get(first + 1),
        session_started_at: opt_u64(row, first + 2),
        last_seen_at: to_u64(row.get(first + 3)),
        revoked_at: opt_u64(row, first + 4),
        has_second_factor: row.get::<i64, _>(first + 5) == 1,
        second_factor_required: row.get::<i64, _>(first + 6) == 1,
    }
}

fn opt_u64(row: &sqlx::any::AnyRow, index: usize) -> Option<u64> {
    row.get::<Option<i64>, _>(index).map(to_u64)
}

impl Store {
    /// Creates an account; `false` if the name is taken.
    pub async fn create_account(
        &self,
        username: &str,
        password_hash: &str,
    ) -> Result<bool, StoreError> {
        let result = sqlx::query(
            "INSERT INTO accounts (username, password_hash, created_at) VALUES ($1, $2, $3)
             ON CONFLICT (username) DO NOTHING",
        )
        .bind(username)
        .bind(password_hash)
        .bind(self.now())
        .execute(self.writes())
        .await?;
        Ok(result.rows_affected() == 1)
    }

    /// The stored password hash of `username`.
    pub async fn password_hash(&self, username: &str) -> Result<Option<String>, StoreError> {
        let row = sqlx::query("SELECT password_hash FROM accounts WHERE username = $1")
            .bind(username)
            .fetch_optional(&self.readers)
            .await?;
        Ok(row.map(|r| r.get::<String, _>(0)))
    }

    // ----- sessions and devices -------------------------------------------

    /// The signing device with its session and its account's second-factor state.
    pub async fn device_session(
        &self,
        device_id: &str,
    ) -> Result<Option<DeviceSession>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {DEVICE_SESSION_COLUMNS}
             FROM devices d JOIN accounts a ON a.username = d.username
             WHERE d.device_id = $1"
        ))
        .bind(device_id)
        .fetch_optional(&self.readers)
        .await?;
        Ok(row.map(|r| device_session_at(&r, 0)))
    }

    /// Records that a device was seen now.
    pub async fn touch_device(&self, device_id: &str) -> Result<(), StoreError> {
        sqlx::query("UPDATE devices SET last_seen_at = $2 WHERE device_id = $1")
            .bind(device_id)
            .bind(self.now())
            .execute(self.writes())
            .await?;
        Ok(())
    }

    /// Starts a fresh session for a device that just proved the password
    /// (and second factor). Refused (`false`) for a revoked device.
    pub async fn start_session(&self, device_id: &str) -> Result<bool, StoreError> {
        let result = sqlx::query(
            "UPDATE devices SET session_started_at = $2, last_seen_at = $2
             WHERE device_id = $1 AND revoked_at IS NULL",
        )
        .bind(device_id)
        .bind(self.now())
        .execute(self.writes())
        .await?;
        Ok(result.rows_affected() == 1)
    }

    /// Ends the sessions of every device of `username` but `keep`; returns the devices affected.
    pub async fn end_sessions(
        &self,
        username: &str,
        keep: &str,
    ) -> Result<Vec<String>, StoreError> {
        let rows = sqlx::query(
            "UPDATE devices SET session_started_at = NULL
             WHERE username = $1 AND device_id <> $2 AND session_started_at IS NOT NULL
             RETURNING device_id",
        )
        .bind(username)
        .bind(keep)
        .fetch_all(self.writes())
        .await?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    /// Revokes a device of `username` for good and drops its key packages, so
    /// nobody can add it to a group again. `false` if there is no such
    /// unrevoked device.
    pub async fn revoke_device(&self, username: &str, device_id: &str) -> Result<bool, StoreError> {
        let mut tx = self.begin_write().await?;
        let revoked = sqlx::query(
            "UPDATE devices SET revoked_at = $3, session_started_at = NULL
             WHERE username = $1 AND device_id = $2 AND revoked_at IS NULL",
        )
        .bind(username)
        .bind(device_id)
        .bind(self.now())
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        if revoked {
            sqlx::query("DELETE FROM key_packages WHERE device_id = $1")
                .bind(device_id)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
        }
        Ok(revoked)
    }

    /// Every device of `username`, oldest first.
    pub async fn devices_of(&self, username: &str) -> Result<Vec<DeviceInfo>, StoreError> {
        let rows = sqlx::query(
            "SELECT device_id, created_at, last_seen_at, revoked_at,
                    CAST(CASE WHEN session_started_at IS NULL THEN 0 ELSE 1 END AS BIGINT)
             FROM devices WHERE username = $1 ORDER BY created_at, device_id",
        )
        .bind(username)
        .fetch_all(&self.readers)
        .await?;
        Ok(rows
            .iter()
            .map(|r| DeviceInfo {
                device_id: r.get(0),
                created_at: to_u64(r.get(1)),
                last_seen_at: to_u64(r.get(2)),
                revoked_at: opt_u64(r, 3),
                session_active: r.get::<i64, _>(4) == 1,
            })
            .collect())
    }

    /// Revoked devices that are still members of a group `device_id` is in:
    /// the members of those groups should commit their removal.
    pub async fn revoked_members(
        &self,
        device_id: &str,
    ) -> Result<Vec<(String, String)>, StoreError> {
        let rows = sqlx::query(
            "SELECT DISTINCT other.group_id, other.device_id
             FROM memberships mine
             JOIN memberships other ON other.group_id = mine.group_id
             JOIN devices d ON d.device_id = other.device_id
             WHERE mine.device_id = $1 AND mine.leave_seq IS NULL
               AND other.leave_seq IS NULL AND d.revoked_at IS NOT NULL
             ORDER BY other.group_id, other.device_id",
        )
        .bind(device_id)
        .fetch_all(&self.readers)
        .await?;
        Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
    }

    // ----- password and account flags -------------------------------------

    /// Replaces the password hash.
    pub async fn set_password_hash(&self, username: &str, hash: &str) -> Result<(), StoreError> {
        sqlx::query("UPDATE accounts SET password_hash = $2 WHERE username = $1")
            .bind(username)
            .bind(hash)
            .execute(self.writes())
            .await?;
        Ok(())
    }

    /// Whether the account signs in with a passkey alone.
    pub async fn passwordless(&self, username: &str) -> Result<bool, StoreError> {
        let row = sqlx::query(
            "SELECT CAST(CASE WHEN passwordless THEN 1 ELSE 0 END AS BIGINT)
             FROM accounts WHERE username = $1",
        )
        .bind(username)
        .fetch_optional(&self.readers)
        .await?;
        Ok(row.is_some_and(|r| r.get::<i64, _>(0) == 1))
    }

    /// Chooses whether the account may sign in with a passkey alone.
    pub async fn set_passwordless(&self, username: &str, on: bool) -> Result<(), StoreError> {
        sqlx::query("UPDATE accounts SET passwordless = $2 WHERE username = $1")
            .bind(username)
            .bind(on)
            .execute(self.writes())
            .await?;
        Ok(())
    }

    /// Devices of `username` that are not revoked.
    pub async fn active_device_count(&self, username: &str) -> Result<u64, StoreError> {
        let row =
            sqlx::query("SELECT COUNT(*) FROM devices WHERE username = $1 AND revoked_at IS NULL")
                .bind(username)
                .fetch_one(&self.readers)
                .await?;
        Ok(to_u64(row.get(0)))
    }

    // ----- TOTP -----------------------------------------------------------

    /// Stores a new, unconfirmed TOTP secret; `false` if a confirmed one exists.
    pub async fn begin_totp(
        &self,
        username: &str,
        sealed_secret: &str,
    ) -> Result<bool, StoreError> {
        let result = sqlx::query(
            "INSERT INTO totp (username, sealed_secret, confirmed, last_step, created_at)
             VALUES ($1, $2, FALSE, 0, $3)
             ON CONFLICT (username) DO UPDATE SET sealed_secret = $2, created_at = $3
             WHERE totp.confirmed = FALSE",
        )
        .bind(username)
        .bind(sealed_secret)
        .bind(self.now())
        .execute(self.writes())
        .await?;
        Ok(result.rows_affected() == 1)
    }

    /// The account's TOTP enrolment, confirmed or not.
    pub async fn totp(&self, username: &str) -> Result<Option<TotpRow>, StoreError> {
        let row = sqlx::query(
            "SELECT sealed_secret, CAST(CASE WHEN confirmed THEN 1 ELSE 0 END AS BIGINT), last_step
             FROM totp WHERE username = $1",
        )
        .bind(username)
        .fetch_optional(&self.readers)
        .await?;
        Ok(row.map(|r| TotpRow {
            sealed_secret: r.get(0),
            confirmed: r.get::<i64, _>(1) == 1,
            last_step: to_u64(r.get(2)),
        }))
    }

    /// Spends time step `step`: `false` if it, or a later one, was already
    /// used. Also confirms a pending enrolment. This compare-and-set is the
    /// one place that makes a TOTP code single-use, across nodes too.
    pub async fn spend_totp_step(&self, username: &str, step: u64) -> Result<bool, StoreError> {
        let result = sqlx::query(
            "UPDATE totp SET last_step = $2, confirmed = TRUE
             WHERE username = $1 AND last_step < $2",
        )
        .bind(username)
        .bind(to_i64(step))
        .execute(self.writes())
        .await?;
        Ok(result.rows_affected() == 1)
    }

    /// Removes the account's TOTP.
    pub async fn delete_totp(&self, username: &str) -> Result<bool, StoreError> {
        let result = sqlx::query("DELETE FROM totp WHERE username = $1")
            .bind(username)
            .execute(self.writes())
            .await?;
        Ok(result.rows_affected() == 1)
    }

    // ----- recovery codes -------------------------------------------------

    /// Replaces every recovery code of `username` with `codes` (id, argon2id hash).
    pub async fn replace_recovery_codes(
        &self,
        username: &str,
        codes: &[(String, String)],
    ) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        sqlx::query("DELETE FROM recovery_codes WHERE username = $1")
            .bind(username)
            .execute(&mut *tx)
            .await?;
        for (id, hash) in codes {
            sqlx::query(
                "INSERT INTO recovery_codes (username, code_id, code_hash, used_at)
                 VALUES ($1, $2, $3, NULL)",
            )
            .bind(username)
            .bind(id)
            .bind(hash)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// The hash of an unused recovery code.
    pub async fn unused_recovery_code(
        &self,
        username: &str,
        code_id: &str,
    ) -> Result<Option<String>, StoreError> {
        let row = sqlx::query(
            "SELECT code_hash FROM recovery_codes
             WHERE username = $1 AND code_id = $2 AND used_at IS NULL",
        )
        .bind(username)
        .bind(code_id)
        .fetch_optional(&self.readers)
        .await?;
        Ok(row.map(|r| r.get(0)))
    }

    /// Marks a recovery code used; `false` if a racing request used it first.
    pub async fn spend_recovery_code(
        &self,
        username: &str,
        code_id: &str,
    ) -> Result<bool, StoreError> {
        let result = sqlx::query(
            "UPDATE recovery_codes SET used_at = $3
             WHERE username = $1 AND code_id = $2 AND used_at IS NULL",
        )
        .bind(username)
        .bind(code_id)
        .bind(self.now())
        .execute(self.writes())
        .await?;
        Ok(result.rows_affected() == 1)
    }

    /// Unused recovery codes left.
    pub async fn recovery_codes_left(&self, username: &str) -> Result<u64, StoreError> {
        let row = sqlx::query(
            "SELECT COUNT(*) FROM recovery_codes WHERE username = $1 AND used_at IS NULL",
        )
        .bind(username)
        .fetch_one(&self.readers)
        .await?;
        Ok(to_u64(row.get(0)))
    }

    // ----- WebAuthn -------------------------------------------------------

    /// Stores a registered credential; `false` if its id is already registered.
    pub async fn add_webauthn_credential(
        &self,
        username: &str,
        credential: &CredentialRow,
    ) -> Result<bool, StoreError> {
        let result = sqlx::query(
            "INSERT INTO webauthn_credentials (credential_id, username, name, passkey, created_at)
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (credential_id) DO NOTHING",
        )
        .bind(&credential.credential_id)
        .bind(username)
        .bind(&credential.name)
        .bind(&credential.passkey)
        .bind(self.now())
        .execute(self.writes())
        .await?;
        Ok(result.rows_affected() == 1)
    }

    /// The account's WebAuthn credentials.
    pub async fn webauthn_credentials(
        &self,
        username: &str,
    ) -> Result<Vec<CredentialRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT credential_id, name, passkey FROM webauthn_credentials
             WHERE username = $1 ORDER BY created_at, credential_id",
        )
        .bind(username)
        .fetch_all(&self.readers)
        .await?;
        Ok(rows
            .iter()
            .map(|r| CredentialRow {
                credential_id: r.get(0),
                name: r.get(1),
                passkey: r.get(2),
            })
            .collect())
    }

    /// When each of the account's second factors was added: the confirmed
    /// TOTP, and every passkey by its credential id.
    pub async fn factor_ages(&self, username: &str) -> Result<FactorAges, StoreError> {
        let totp = sqlx::query("SELECT created_at FROM totp WHERE username = $1 AND confirmed")
            .bind(username)
            .fetch_optional(&self.readers)
            .await?
            .map(|r| to_u64(r.get(0)));
        let passkeys = sqlx::query(
            "SELECT credential_id, created_at FROM webauthn_credentials WHERE username = $1",
        )
        .bind(username)
        .fetch_all(&self.readers)
        .await?
        .iter()
        .map(|r| (r.get(0), to_u64(r.get(1))))
        .collect();
        Ok(FactorAges { totp, passkeys })
    }

    /// Saves a credential's new state (its signature counter) after use.
    pub async fn update_webauthn_credential(
        &self,
        credential_id: &str,
        passkey: &str,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE webauthn_credentials SET passkey = $2, last_used_at = $3 WHERE credential_id = $1",
        )
        .bind(credential_id)
        .bind(passkey)
        .bind(self.now())
        .execute(self.writes())
        .await?;
        Ok(())
    }

    /// Keeps a ceremony's state server-side until its answer comes back.
    pub async fn put_challenge(
        &self,
        id: &str,
        challenge: &ChallengeRow,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO webauthn_challenges (challenge_id, username, purpose, state, expires_at)
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(id)
        .bind(&challenge.username)
        .bind(&challenge.purpose)
        .bind(&challenge.state)
        .bind(to_i64(challenge.expires_at))
        .execute(self.writes())
        .await?;
        Ok(())
    }

    /// Takes a ceremony's state out: a challenge answers at most once.
    pub async fn take_challenge(&self, id: &str) -> Result<Option<ChallengeRow>, StoreError> {
        let row = sqlx::query(
            "DELETE FROM webauthn_challenges WHERE challenge_id = $1
             RETURNING username, purpose, state, expires_at",
        )
        .bind(id)
        .fetch_optional(self.writes())
        .await?;
        Ok(row.map(|r| ChallengeRow {
            username: r.get(0),
            purpose: r.get(1),
            state: r.get(2),
            expires_at: to_u64(r.get(3)),
        }))
    }

    // ----- roles, invites, settings ---------------------------------------

    /// Grants a role, with its audit entry `granted`, in one transaction;
    /// `false` (nothing changed or logged) if the account does not exist.
    pub async fn grant_role(
        &self,
        username: &str,
        role: &str,
        granted: conclave_audit::Event,
    ) -> Result<bool, StoreError> {
        let mut tx = self.begin_write().await?;
        let exists = sqlx::query("SELECT 1 FROM accounts WHERE username = $1")
            .bind(username)
            .fetch_optional(&mut *tx)
            .await?
            .is_some();
        if !exists {
            return Ok(false);
        }
        sqlx::query(
            "INSERT INTO account_roles (username, role, granted_at) VALUES ($1, $2, $3)
             ON CONFLICT (username, role) DO NOTHING",
        )
        .bind(username)
        .bind(role)
        .bind(self.now())
        .execute(&mut *tx)
        .await?;
        conclave_audit::log::append(&mut tx, granted).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Takes a role away, with its audit entry `revoked`, in one
    /// transaction; `false` (nothing logged) if the account did not have it.
    pub async fn revoke_role(
        &self,
        username: &str,
        role: &str,
        revoked: conclave_audit::Event,
    ) -> Result<bool, StoreError> {
        let mut tx = self.begin_write().await?;
        let result = sqlx::query("DELETE FROM account_roles WHERE username = $1 AND role = $2")
            .bind(username)
            .bind(role)
            .execute(&mut *tx)
            .await?;
        if result.rows_affected() != 1 {
            return Ok(false);
        }
        conclave_audit::log::append(&mut tx, revoked).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// The account's roles.
    pub async fn roles(&self, username: &str) -> Result<Vec<String>, StoreError> {
        let rows = sqlx::query("SELECT role FROM account_roles WHERE username = $1 ORDER BY role")
            .bind(username)
            .fetch_all(&self.readers)
            .await?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    /// Every account with its roles and factors, for the admin tool.
    pub async fn accounts(&self) -> Result<Vec<AccountSummary>, StoreError> {
        let rows = sqlx::query(
            "SELECT a.username,
                    CAST(CASE WHEN EXISTS (SELECT 1 FROM totp t WHERE t.username = a.username AND t.confirmed) THEN 1 ELSE 0 END AS BIGINT),
                    (SELECT COUNT(*) FROM webauthn_credentials w WHERE w.username = a.username),
                    (SELECT COUNT(*) FROM devices d WHERE d.username = a.username AND d.revoked_at IS NULL)
             FROM accounts a ORDER BY a.username",
        )
        .fetch_all(&self.readers)
        .await?;
        let mut accounts = Vec::with_capacity(rows.len());
        for r in rows {
            let username: String = r.get(0);
            accounts.push(AccountSummary {
                roles: self.roles(&username).await?,
                username,
                totp: r.get::<i64, _>(1) == 1,
                webauthn: to_u64(r.get(2)),
                active_devices: to_u64(r.get(3)),
            });
        }
        Ok(accounts)
    }

    /// Stores an invite (its code only as an argon2id hash), with its audit
    /// entry `issued`, in one transaction.
    pub async fn create_invite(
        &self,
        invite_id: &str,
        code_hash: &str,
        created_by: &str,
        expires_at: u64,
        issued: conclave_audit::Event,
    ) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "INSERT INTO invites (invite_id, code_hash, created_by, created_at, expires_at)
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(invite_id)
        .bind(code_hash)
        .bind(created_by)
        .bind(self.now())
        .bind(to_i64(expires_at))
        .execute(&mut *tx)
        .await?;
        conclave_audit::log::append(&mut tx, issued).await?;
        tx.commit().await?;
        Ok(())
    }

    /// The hash of an invite that is unused and unexpired.
    pub async fn open_invite(&self, invite_id: &str) -> Result<Option<String>, StoreError> {
        let row = sqlx::query(
            "SELECT code_hash FROM invites
             WHERE invite_id = $1 AND used_by IS NULL AND expires_at > $2 AND for_account IS NULL",
        )
        .bind(invite_id)
        .bind(self.now())
        .fetch_optional(&self.readers)
        .await?;
        Ok(row.map(|r| r.get(0)))
    }

    /// Creates an account, spending `invite_id` in the same transaction when
    /// one is given, and appending `created`, its audit entry, in it too.
    /// Returns `Err(reason)` without changing or logging anything if the
    /// name is taken or the invite was spent meanwhile.
    pub async fn create_account_with_invite(
        &self,
        username: &str,
        password_hash: &str,
        invite_id: Option<&str>,
        created: conclave_audit::Event,
    ) -> Result<Result<(), &'static str>, StoreError> {
        let mut tx = self.begin_write().await?;
        let inserted = sqlx::query(
            "INSERT INTO accounts (username, password_hash, created_at) VALUES ($1, $2, $3)
             ON CONFLICT (username) DO NOTHING",
        )
        .bind(username)
        .bind(password_hash)
        .bind(self.now())
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        if !inserted {
            return Ok(Err("username"));
        }
        if let Some(invite_id) = invite_id {
            let spent = sqlx::query(
                "UPDATE invites SET used_by = $2, used_at = $3
                 WHERE invite_id = $1 AND used_by IS NULL AND expires_at > $3
                   AND for_account IS NULL",
            )
            .bind(invite_id)
            .bind(username)
            .bind(self.now())
            .execute(&mut *tx)
            .await?
            .rows_affected()
                == 1;
            if !spent {
                return Ok(Err("invite"));
            }
        }
        conclave_audit::log::append(&mut tx, created).await?;
        tx.commit().await?;
        Ok(Ok(()))
    }

    /// A workspace setting.
    pub async fn setting(&self, name: &str) -> Result<Option<String>, StoreError> {
        let row = sqlx::query("SELECT value FROM settings WHERE name = $1")
            .bind(name)
            .fetch_optional(&self.readers)
            .await?;
        Ok(row.map(|r| r.get(0)))
    }

    /// Changes a workspace setting, with its audit entry `changed`, in one
    /// transaction.
    pub async fn set_setting(
        &self,
        name: &str,
        value: &str,
        changed: conclave_audit::Event,
    ) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "INSERT INTO settings (name, value) VALUES ($1, $2)
             ON CONFLICT (name) DO UPDATE SET value = $2",
        )
        .bind(name)
        .bind(value)
        .execute(&mut *tx)
        .await?;
        conclave_audit::log::append(&mut tx, changed).await?;
        tx.commit().await?;
        Ok(())
    }

    // ----- rate limits ----------------------------------------------------

    /// Counts one request against `bucket`, in fixed windows of `window` seconds.
    pub async fn hit_bucket(&self, bucket: &str, window: u64) -> Result<BucketState, StoreError> {
        let now = self.now();
        let row = sqlx::query(
            "INSERT INTO rate_limits (bucket, window_start, hits) VALUES ($1, $2, 1)
             ON CONFLICT (bucket) DO UPDATE SET
               hits = CASE WHEN rate_limits.window_start <= $3 THEN 1 ELSE rate_limits.hits + 1 END,
               window_start = CASE WHEN rate_limits.window_start <= $3 THEN $2 ELSE rate_limits.window_start END
             RETURNING hits, window_start",
        )
        .bind(bucket)
        .bind(now)
        .bind(now - to_i64(window))
        .fetch_one(self.writes())
        .await?;
        Ok(BucketState {
            hits: to_u64(row.get(0)),
            window_start: to_u64(row.get(1)),
        })
    }

    /// Reserves one attempt in a backoff bucket, whose `window_start` is the
    /// time of the last attempt: allowed while fewer than `free` attempts were
    /// made, or once the wait after the last one (doubling from a second,
    /// at most `cap`) is over, or after `window` seconds of quiet. The check
    /// and the count are one statement, so parallel attempts each see the
    /// count the one before left. `Some((attempts, last_attempt))` if refused.
    pub async fn reserve_backoff(
        &self,
        bucket: &str,
        free: u64,
        cap: u64,
        window: u64,
    ) -> Result<Option<(u64, u64)>, StoreError> {
        let now = self.now();
        let reserved = sqlx::query(
            "INSERT INTO rate_limits (bucket, window_start, hits) VALUES ($1, $2, 1)
             ON CONFLICT (bucket) DO UPDATE SET
               hits = CASE WHEN rate_limits.window_start <= $3 THEN 1 ELSE rate_limits.hits + 1 END,
               window_start = $2
             WHERE rate_limits.window_start <= $3
                OR rate_limits.hits < $4
                OR rate_limits.window_start + (CASE
                     WHEN rate_limits.hits - $4 >= 20 THEN $5
                     WHEN (CAST(1 AS BIGINT) << CAST(rate_limits.hits - $4 AS INTEGER)) > $5 THEN $5
                     ELSE (CAST(1 AS BIGINT) << CAST(rate_limits.hits - $4 AS INTEGER))
                   END) <= $2
             RETURNING hits",
        )
        .bind(bucket)
        .bind(now)
        .bind(now - to_i64(window))
        .bind(to_i64(free))
        .bind(to_i64(cap))
        .fetch_optional(self.writes())
        .await?;
        if reserved.is_some() {
            return Ok(None);
        }
        let row = sqlx::query("SELECT hits, window_start FROM rate_limits WHERE bucket = $1")
            .bind(bucket)
            .fetch_optional(&self.readers)
            .await?;
        Ok(Some(row.map_or((0, to_u64(now)), |r| {
            (to_u64(r.get(0)), to_u64(r.get(1)))
        })))
    }

    /// The current count of `bucket`, without adding to it.
    pub async fn peek_bucket(&self, bucket: &str, window: u64) -> Result<BucketState, StoreError> {
        let row = sqlx::query(
            "SELECT hits, window_start FROM rate_limits WHERE bucket = $1 AND window_start > $2",
        )
        .bind(bucket)
        .bind(self.now() - to_i64(window))
        .fetch_optional(&self.readers)
        .await?;
        Ok(match row {
            Some(r) => BucketState {
                hits: to_u64(r.get(0)),
                window_start: to_u64(r.get(1)),
            },
            None => BucketState {
                hits: 0,
                window_start: to_u64(self.now()),
            },
        })
    }

    /// Empties a bucket (after a success, failures start over).
    pub async fn clear_bucket(&self, bucket: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM rate_limits WHERE bucket = $1")
            .bind(bucket)
            .execute(self.writes())
            .await?;
        Ok(())
    }

    /// Forgets rate-limit windows and WebAuthn challenges that are over.
    pub async fn prune_auth_state(&self) -> Result<(), StoreError> {
        sqlx::query(
            "DELETE FROM rate_limits WHERE window_start < $1 AND bucket NOT LIKE 'unknown-login:%'",
        )
        .bind(self.now() - 86_400)
        .execute(self.writes())
        .await?;
        sqlx::query("DELETE FROM webauthn_challenges WHERE expires_at < $1")
            .bind(self.now())
            .execute(self.writes())
            .await?;
        Ok(())
    }

    // ----- authentication events ------------------------------------------

    /// Creates a bot account owned by `owner`, with its audit entry
    /// `created`, in one transaction; `false` (nothing logged) if the name
    /// is taken.
    pub async fn create_bot(
        &self,
        username: &str,
        password_hash: &str,
        owner: &str,
        created: conclave_audit::Event,
    ) -> Result<bool, StoreError> {
        let mut tx = self.begin_write().await?;
        let result = sqlx::query(
            "INSERT INTO accounts (username, password_hash, created_at, bot_owner)
             VALUES ($1, $2, $3, $4)
             ON CONFLICT (username) DO NOTHING",
        )
        .bind(username)
        .bind(password_hash)
        .bind(self.now())
        .bind(owner)
        .execute(&mut *tx)
        .await?;
        if result.rows_affected() != 1 {
            return Ok(false);
        }
        conclave_audit::log::append(&mut tx, created).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// For a bot account, its owner.
    pub async fn bot_owner(&self, username: &str) -> Result<Option<String>, StoreError> {
        Ok(
            sqlx::query("SELECT bot_owner FROM accounts WHERE username = $1")
                .bind(username)
                .fetch_optional(&self.readers)
                .await?
                .and_then(|r| r.get::<Option<String>, _>(0)),
        )
    }

    /// Registers (or re-points) slash command `name` to `bot`, with its
    /// audit entry `changed`, in one transaction.
    pub async fn set_command(
        &self,
        name: &str,
        bot: &str,
        usage: &str,
        changed: conclave_audit::Event,
    ) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "INSERT INTO slash_commands (name, bot, usage, created_at) VALUES ($1, $2, $3, $4)
             ON CONFLICT (name) DO UPDATE SET bot = excluded.bot, usage = excluded.usage",
        )
        .bind(name)
        .bind(bot)
        .bind(usage)
        .bind(self.now())
        .execute(&mut *tx)
        .await?;
        conclave_audit::log::append(&mut tx, changed).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Removes slash command `name`, with its audit entry `removed`, in one
    /// transaction; `false` (nothing logged) if there was none.
    pub async fn remove_command(
        &self,
        name: &str,
        removed: conclave_audit::Event,
    ) -> Result<bool, StoreError> {
        let mut tx = self.begin_write().await?;
        let gone = sqlx::query("DELETE FROM slash_commands WHERE name = $1")
            .bind(name)
            .execute(&mut *tx)
            .await?
            .rows_affected()
            == 1;
        if !gone {
            return Ok(false);
        }
        conclave_audit::log::append(&mut tx, removed).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Every slash command: name, bot, usage, by name.
    pub async fn commands(&self) -> Result<Vec<(String, String, String)>, StoreError> {
        Ok(
            sqlx::query("SELECT name, bot, usage FROM slash_commands ORDER BY name")
                .fetch_all(&self.readers)
                .await?
                .iter()
                .map(|r| (r.get(0), r.get(1), r.get(2)))
                .collect(),
        )
    }
}
