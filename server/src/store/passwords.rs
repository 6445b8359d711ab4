//! Passwords as OPAQUE: the relay's own secrets that every node shares
//! (sealed under the server key before they get here), and the logins
//! between their start and the proof that finishes them.

use sqlx::Row;

use super::{Store, StoreError, to_i64, to_u64};

/// An OPAQUE login between its start and its proof.
#[derive(Debug, Clone)]
pub struct PendingLogin {
    /// Random, hex: what the proof names.
    pub login_id: String,
    /// The account it is for.
    pub username: String,
    /// The device that started it, and alone may finish it.
    pub device_id: String,
    /// The relay's key-exchange state, sealed under the server key.
    pub sealed_state: String,
    /// Whether the account exists (a start for a made-up name gets an
    /// answer too, which no proof can finish).
    pub account_exists: bool,
    /// Which password budget the start spent, to start over on success.
    pub budget: String,
    /// The second factor checked with the start, if any.
    pub factor: Option<String>,
    /// Which one: a passkey's credential id, a recovery code's id.
    pub factor_id: Option<String>,
    /// Unix seconds.
    pub expires_at: u64,
}

const LOGIN_COLUMNS: &str = "login_id, username, device_id, sealed_state, account_exists, \
                             budget, factor, factor_id, expires_at";

fn pending_login(row: &sqlx::any::AnyRow) -> PendingLogin {
    PendingLogin {
        login_id: row.get(0),
        username: row.get(1),
        device_id: row.get(2),
        sealed_state: row.get(3),
        account_exists: row.get::<i64, _>(4) == 1,
        budget: row.get(5),
        factor: row.get(6),
        factor_id: row.get(7),
        expires_at: to_u64(row.get(8)),
    }
}

impl Store {
    /// The relay secret `name`, sealed.
    pub async fn relay_secret(&self, name: &str) -> Result<Option<String>, StoreError> {
        let row = sqlx::query("SELECT sealed FROM relay_secrets WHERE name = $1")
            .bind(name)
            .fetch_optional(&self.readers)
            .await?;
        Ok(row.map(|r| r.get(0)))
    }

    /// Keeps `sealed` as relay secret `name` unless a node kept one first;
    /// returns the one kept, so that every node uses the same.
    pub async fn keep_relay_secret(&self, name: &str, sealed: &str) -> Result<String, StoreError> {
        sqlx::query(
            "INSERT INTO relay_secrets (name, sealed, created_at) VALUES ($1, $2, $3)
             ON CONFLICT (name) DO NOTHING",
        )
        .bind(name)
        .bind(sealed)
        .bind(self.now())
        .execute(self.writes())
        .await?;
        self.relay_secret(name)
            .await?
            .ok_or_else(|| StoreError::Database(sqlx::Error::RowNotFound))
    }

    /// Keeps a started login until its proof comes (or it expires).
    pub async fn add_password_login(&self, login: &PendingLogin) -> Result<(), StoreError> {
        sqlx::query(&format!(
            "INSERT INTO password_logins ({LOGIN_COLUMNS})
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
        ))
        .bind(&login.login_id)
        .bind(&login.username)
        .bind(&login.device_id)
        .bind(&login.sealed_state)
        .bind(i64::from(login.account_exists))
        .bind(&login.budget)
        .bind(login.factor.as_deref())
        .bind(login.factor_id.as_deref())
        .bind(to_i64(login.expires_at))
        .execute(self.writes())
        .await?;
        Ok(())
    }

    /// Takes a started login, once: `None` if it is unknown, was taken
    /// already or expired.
    pub async fn take_password_login(
        &self,
        login_id: &str,
    ) -> Result<Option<PendingLogin>, StoreError> {
        let row = sqlx::query(&format!(
            "DELETE FROM password_logins WHERE login_id = $1 RETURNING {LOGIN_COLUMNS}"
        ))
        .bind(login_id)
        .fetch_optional(self.writes())
        .await?;
        let now = to_u64(self.now());
        Ok(row
            .map(|r| pending_login(&r))
            .filter(|login| login.expires_at > now))
    }

    /// Takes every login that expired unfinished.
    pub async fn take_expired_password_logins(&self) -> Result<Vec<PendingLogin>, StoreError> {
        let rows = sqlx::query(&format!(
            "DELETE FROM password_logins WHERE expires_at <= $1 RETURNING {LOGIN_COLUMNS}"
        ))
        .bind(self.now())
        .fetch_all(self.writes())
        .await?;
        Ok(rows.iter().map(pending_login).collect())
    }

    /// Replaces an account's password from before OPAQUE (its argon2id hash,
    /// `old`) with `verifier`, unless it changed meanwhile; with its audit
    /// entry, in one transaction.
    pub async fn upgrade_password(
        &self,
        username: &str,
        old: &str,
        verifier: &str,
        entry: conclave_audit::Event,
    ) -> Result<bool, StoreError> {
        let mut tx = self.begin_write().await?;
        let changed = sqlx::query(
            "UPDATE accounts SET password_hash = $3 WHERE username = $1 AND password_hash = $2",
        )
        .bind(username)
        .bind(old)
        .bind(verifier)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        if changed {
            conclave_audit::log::append(&mut tx, entry).await?;
        }
        tx.commit().await?;
        Ok(changed)
    }
}
