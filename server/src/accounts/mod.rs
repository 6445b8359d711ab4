//! Accounts, the rules without the HTTP: who may sign in and how that can
//! change. `http/accounts.rs` reads requests and writes answers; everything
//! it decides, it asks here.
//!
//! - `proof.rs`: a fresh proof that the account holder is present (the
//!   password and a second factor, or a passkey), counted against the
//!   limits, every failure logged;
//! - `factors.rs`: TOTP, recovery codes and invite codes as formats;
//! - `challenges.rs`: WebAuthn ceremonies waiting for their second half;
//! - `recovery_codes.rs`: new sets of recovery codes;
//! - `changes.rs`: a change to who can sign in, applied with its audit
//!   entries and announced to the account's devices;
//! - `invites.rs`: invite codes and bot passwords (the admin CLI uses them
//!   too);
//! - `register.rs`: a new account, by invite unless registration is open;
//! - `passwords.rs`: the password as OPAQUE (its setup, the start of a
//!   proof, the finish inside one, accounts from before OPAQUE);
//! - `login.rs`: signing in a device, a new one or one the account has;
//! - `recovery.rs`: recovery by code (factors of the last days removed)
//!   and by a host administrator's recovery invite.

use conclave_crypto::Username;

use crate::error::{ApiError, ApiResult};

pub(crate) mod challenges;
pub(crate) mod changes;
pub(crate) mod devices;
pub(crate) mod factors;
pub(crate) mod invites;
pub(crate) mod login;
pub(crate) mod password;
pub(crate) mod passwords;
pub(crate) mod proof;
pub(crate) mod recovery;
pub(crate) mod recovery_codes;
pub(crate) mod register;
pub(crate) mod second_factors;
pub(crate) mod status;

/// Name under which the TOTP issuer and the WebAuthn relying party appear.
pub(crate) const ISSUER: &str = "Conclave";
/// Role that may issue invites over the API.
pub const ADMIN_ROLE: &str = "admin";

/// `text` as a username, or a 400 that says what is wrong with it.
pub(crate) fn username(text: &str) -> ApiResult<Username> {
    Username::parse(text).map_err(|e| ApiError::BadRequest(e.to_string()))
}
