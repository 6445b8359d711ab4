//! Accounts: registration, login, the proofs a sensitive change asks for,
//! second factors, recovery, devices and invites.
//!
//! A proof is the password and, if the account has one, a second factor
//! (or a passkey alone, for a passwordless account). It comes in the body of
//! a login and of every change to who can sign in.
//!
//! The password itself never travels: it is proved with OPAQUE (RFC 9807,
//! `conclave_crypto::password`). A login or step-up starts with
//! [`PasswordLoginBody`], whose answer carries the relay's half of the key
//! exchange; the proof then carries the client's finalization
//! ([`OpaqueProof`]). Setting a password (a new account, a new password, a
//! recovery invite) starts with a registration request
//! ([`PasswordSetupBody`], [`NewPasswordSetupBody`]) and ends with the
//! record the client built. Only an account whose password predates OPAQUE
//! still sends it, once, in [`Proof::password`], with a record to replace it
//! ([`LoginBody::password_record`]).
//!
//! The WebAuthn objects inside some bodies (the options a ceremony starts
//! with, the credential or assertion an authenticator answers) are the
//! W3C WebAuthn JSON, which each side's WebAuthn library defines: these
//! types leave them as type parameters (`A` for an assertion, `C` for a new
//! credential, `O` for options). The relay and the client both fill them
//! with `webauthn-rs-proto`'s types.
//!
//! Answers declare their fields alphabetically: the relay built them with
//! `serde_json::json!`, whose maps are sorted, and the bytes stayed the same.

use serde::{Deserialize, Serialize};

use crate::secret::{Password, SecretText};

/// `POST /v1/accounts` (unsigned): creates an account.
#[derive(Debug, Serialize, Deserialize)]
pub struct RegisterBody {
    /// Required unless the relay has open registration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invite_code: Option<SecretText>,
    /// The new account's OPAQUE registration record (the client's upload),
    /// base64: it answers a [`PasswordSetupBody`] for this name.
    pub password_record: SecretText,
    /// The new account's name.
    pub username: String,
}

/// `POST /v1/accounts/password` (unsigned): the first half of setting a
/// password with OPAQUE for a new account (with its invite, unless the relay
/// has open registration) or for a locked one (with the host
/// administrator's recovery invite). The relay stores nothing.
#[derive(Debug, Serialize, Deserialize)]
pub struct PasswordSetupBody {
    /// For a new account.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invite_code: Option<SecretText>,
    /// For a locked account.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recovery_invite: Option<SecretText>,
    /// The OPAQUE registration request, base64.
    pub request: String,
    /// The account.
    pub username: String,
}

/// `POST /v1/account/password/setup`: the first half of a new password for
/// the signed-in account (the second is [`PasswordChangeBody`]).
#[derive(Debug, Serialize, Deserialize)]
pub struct NewPasswordSetupBody {
    /// The OPAQUE registration request, base64.
    pub request: String,
}

/// The answer to [`PasswordSetupBody`] and [`NewPasswordSetupBody`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PasswordSetupAnswer {
    /// The OPAQUE registration response, base64.
    pub response: String,
}

/// `POST /v1/password/login`: starts proving the password with OPAQUE, for
/// a login or a step-up. Signed by the device key that will present the
/// proof (for a login, the key it registers, as [`LoginBody`] is).
///
/// Starting is what counts against the password budgets: OPAQUE tells the
/// client whether its password was right before it answers. A second factor
/// that cannot be guessed (a passkey or a recovery code) may come here, so
/// it is checked first and the new-device backoff does not apply; the proof
/// then leaves it out.
#[derive(Debug, Serialize, Deserialize)]
#[serde(bound(deserialize = "A: Deserialize<'de>"))]
pub struct PasswordLoginBody<A> {
    /// The device's Ed25519 public key, base64.
    pub public_key: String,
    /// The OPAQUE credential request (KE1), base64.
    pub request: String,
    /// A passkey assertion or a recovery code, checked before the password.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub second_factor: Option<SecondFactor<A>>,
    /// The account.
    pub username: String,
}

/// The answer to [`PasswordLoginBody`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PasswordLoginAnswer {
    /// The account's password predates OPAQUE: prove it this once in
    /// [`Proof::password`] (a login also sends a record to replace it).
    #[serde(default, skip_serializing_if = "crate::is_false")]
    pub legacy: bool,
    /// Names this login in the [`OpaqueProof`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub login_id: Option<String>,
    /// The OPAQUE credential response (KE2), base64.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response: Option<String>,
}

/// `POST /v1/password/upgrade`: for an account whose password predates
/// OPAQUE, the registration request of the record that replaces it. Signed
/// like [`PasswordLoginBody`]; the record then comes with the login that
/// proves the old password ([`LoginBody::password_record`]).
#[derive(Debug, Serialize, Deserialize)]
pub struct LegacyUpgradeBody {
    /// The device's Ed25519 public key, base64.
    pub public_key: String,
    /// The OPAQUE registration request, base64.
    pub request: String,
    /// The account.
    pub username: String,
}

/// The password part of a proof: the finalization of an OPAQUE login this
/// device started.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpaqueProof {
    /// The login, as [`PasswordLoginAnswer::login_id`] named it.
    pub login_id: String,
    /// The OPAQUE credential finalization (KE3), base64; `None` when the
    /// client could not open the relay's answer: its password was wrong.
    pub finalization: Option<String>,
}

/// The answer to [`RegisterBody`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegisterAnswer {
    /// The account's name as the relay keeps it.
    pub username: String,
}

/// A second factor, as a proof presents it: `{"type": "totp", "code": …}`.
/// `A` is a WebAuthn assertion (a `PublicKeyCredential`).
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum SecondFactor<A> {
    /// A 6-digit code from an authenticator app.
    Totp {
        /// The code.
        code: SecretText,
    },
    /// One of the account's single-use recovery codes.
    RecoveryCode {
        /// The code.
        code: SecretText,
    },
    /// A WebAuthn assertion answering a [`WebauthnChallenge`].
    Webauthn {
        /// The challenge's id.
        challenge_id: String,
        /// The authenticator's assertion.
        credential: A,
    },
}

/// What proves the account holder is present. Sent on its own as the body
/// of a step-up (enrolling or removing a factor, new recovery codes,
/// recovering, revoking another device), and inside [`LoginBody`],
/// [`PasswordChangeBody`] and [`InviteBody`].
///
/// An empty proof proves nothing: the relay answers `step_up_required`.
#[derive(Debug, Serialize, Deserialize)]
// Not the derived bound, which asks `A: Default` for the defaulted field.
#[serde(bound(deserialize = "A: Deserialize<'de>"))]
pub struct Proof<A> {
    /// The password proved with OPAQUE (absent for a passwordless account's
    /// passkey).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub opaque: Option<OpaqueProof>,
    /// The password itself, only for an account whose password predates
    /// OPAQUE ([`PasswordLoginAnswer::legacy`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<Password>,
    /// The second factor, `null` if none.
    #[serde(default)]
    pub second_factor: Option<SecondFactor<A>>,
}

impl<A> Proof<A> {
    /// Whether the proof carries nothing at all.
    pub fn is_empty(&self) -> bool {
        self.opaque.is_none() && self.password.is_none() && self.second_factor.is_none()
    }

    /// Whether the proof carries the password, either way.
    pub fn has_password(&self) -> bool {
        self.opaque.is_some() || self.password.is_some()
    }
}

// Not derived: that would ask for `A: Default`, which no assertion is.
impl<A> Default for Proof<A> {
    fn default() -> Self {
        Proof {
            opaque: None,
            password: None,
            second_factor: None,
        }
    }
}

/// `POST /v1/devices`: registers a device key with an account and starts
/// its session (a login), or renews the session of a device the account
/// has. Signed by the key it registers.
///
/// Its fields besides the proof:
/// - `recover` with a proof of password and recovery code takes the
///   account back at once (the answer's [`LoginAnswer::recovery`]);
/// - `recovery_invite` with `new_password_record` (and no proof) signs in
///   to a locked account with the host administrator's recovery invite.
#[derive(Debug, Serialize, Deserialize)]
pub struct LoginBody<A> {
    /// With `recovery_invite`: the OPAQUE record of the account's new
    /// password (answering a [`PasswordSetupBody`] with that invite), base64.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new_password_record: Option<SecretText>,
    /// With a legacy [`Proof::password`]: the OPAQUE record that replaces
    /// the stored hash once the password verified, base64.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_record: Option<SecretText>,
    /// The proof; left out entirely when there is none.
    #[serde(flatten, skip_serializing_if = "Proof::is_empty")]
    pub proof: Proof<A>,
    /// The device's Ed25519 public key, base64.
    pub public_key: String,
    /// Recover the account at once (see above).
    #[serde(default, skip_serializing_if = "crate::is_false")]
    pub recover: bool,
    /// A recovery invite from the host administrator, for a locked account.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recovery_invite: Option<SecretText>,
    /// The account.
    pub username: String,
}

impl<A> LoginBody<A> {
    /// A plain login of the device with `public_key` (base64) to `username`.
    pub fn new(username: String, public_key: String, proof: Proof<A>) -> Self {
        LoginBody {
            new_password_record: None,
            password_record: None,
            proof,
            public_key,
            recover: false,
            recovery_invite: None,
            username,
        }
    }
}

/// The answer to [`LoginBody`].
#[derive(Debug, Serialize, Deserialize)]
pub struct LoginAnswer {
    /// The device's hex id.
    pub device_id: String,
    /// With `recover`: what the recovery did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recovery: Option<RecoveryAnswer>,
    /// Unused recovery codes the account has left.
    pub recovery_codes_left: u64,
    /// The kind of second factor the proof used (`totp`, `webauthn`,
    /// `recovery_code`); `null` for an account without one.
    pub second_factor: Option<String>,
    /// The account.
    pub username: String,
}

/// What an account recovery did: the answer to `POST /v1/account/recover`
/// (a [`Proof`] of password and recovery code), and part of a recovering
/// login's answer.
#[derive(Debug, Serialize, Deserialize)]
pub struct RecoveryAnswer {
    /// Hex ids of the devices revoked.
    pub devices_revoked: Vec<String>,
    /// The factors removed: `totp`, or `webauthn:<credential id>`.
    pub factors_removed: Vec<String>,
    /// The account's new recovery codes, shown this once.
    pub recovery_codes: Vec<SecretText>,
}

/// `POST /v1/auth/webauthn/challenge` (unsigned): starts a passkey
/// authentication, for a login or a step-up.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebauthnChallengeBody {
    /// The account whose passkeys may answer.
    pub username: String,
}

/// A WebAuthn ceremony the relay started: the answer to
/// [`WebauthnChallengeBody`] (`O` a `RequestChallengeResponse`) and to
/// `POST /v1/account/webauthn/register` (a [`Proof`]; `O` a
/// `CreationChallengeResponse`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebauthnChallenge<O> {
    /// Names the ceremony in the body that finishes it.
    pub challenge_id: String,
    /// The options to hand the authenticator.
    pub options: O,
    /// The origin the relay expects the authenticator to sign for.
    pub origin: String,
}

/// `POST /v1/account/webauthn/register/finish`: the new passkey, answering
/// the registration's [`WebauthnChallenge`]. `C` is a
/// `RegisterPublicKeyCredential`.
#[derive(Debug, Serialize, Deserialize)]
pub struct PasskeyRegistrationBody<C> {
    /// The registration's challenge id.
    pub challenge_id: String,
    /// The authenticator's new credential.
    pub credential: C,
    /// A name for it, 1 to 64 printable characters.
    pub name: String,
    /// Whether the passkey alone signs the account in from now on.
    #[serde(default)]
    pub passwordless: bool,
}

/// The answer to [`PasskeyRegistrationBody`].
#[derive(Debug, Serialize, Deserialize)]
pub struct PasskeyAddedAnswer {
    /// The passkey's id, base64url.
    pub credential_id: String,
    /// Whether it alone signs the account in.
    pub passwordless: bool,
    /// With the account's first second factor, its recovery codes, shown
    /// this once; else empty.
    pub recovery_codes: Vec<SecretText>,
}

/// The most people a group direct message may have, unless the workspace's
/// policy says otherwise.
pub const DEFAULT_MAX_GROUP_DM: u32 = 9;

fn default_max_group_dm() -> u32 {
    DEFAULT_MAX_GROUP_DM
}

/// The answer to `GET /v1/account`: the account's roles, second factors
/// and policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountStatus {
    /// For a bot account, the account that owns it.
    #[serde(default)]
    pub bot_owner: Option<String>,
    /// The most people a group direct message may have in this workspace
    /// ([`DEFAULT_MAX_GROUP_DM`] from a relay that does not say).
    #[serde(default = "default_max_group_dm")]
    pub max_group_dm: u32,
    /// Whether a passkey alone signs in.
    pub passwordless: bool,
    /// Unused recovery codes.
    pub recovery_codes_left: u64,
    /// Roles (`admin`, `auditor`).
    pub roles: Vec<String>,
    /// Whether the workspace requires a second factor.
    pub second_factor_required: bool,
    /// A confirmed TOTP.
    pub totp: bool,
    /// A TOTP enrollment waiting for its first code.
    pub totp_pending: bool,
    /// Username.
    pub username: String,
    /// Registered passkeys and security keys.
    pub webauthn: Vec<PasskeyInfo>,
}

/// A registered WebAuthn credential.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PasskeyInfo {
    /// base64url credential id.
    pub credential_id: String,
    /// Its name.
    pub name: String,
}

/// The answer to `POST /v1/account/totp` (a [`Proof`]): the enrollment,
/// waiting for its first code ([`TotpConfirmBody`]).
#[derive(Debug, Serialize, Deserialize)]
pub struct TotpEnrollmentAnswer {
    /// The `otpauth://` URI for an authenticator app; it holds the seed.
    pub otpauth_uri: SecretText,
}

/// `POST /v1/account/totp/confirm`: the first code from the app, which
/// confirms the enrollment. Answered with [`RecoveryCodesAnswer`].
#[derive(Debug, Serialize, Deserialize)]
pub struct TotpConfirmBody {
    /// The code.
    pub code: SecretText,
}

/// Recovery codes, shown this once: the answer to [`TotpConfirmBody`]
/// (empty unless TOTP is the account's first second factor) and to
/// `POST /v1/account/recovery-codes` (a [`Proof`]).
#[derive(Debug, Serialize, Deserialize)]
pub struct RecoveryCodesAnswer {
    /// The codes.
    pub recovery_codes: Vec<SecretText>,
}

/// The answer to removing a second factor: `DELETE /v1/account/totp` and
/// `DELETE /v1/account/webauthn/{credential_id}` (each a [`Proof`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FactorRemovedAnswer {
    /// What was removed: `totp`, or `webauthn:<credential id>`.
    pub removed: String,
}

/// `POST /v1/account/password`: a new password, with a proof that holds
/// the current one. Every other device's session ends.
#[derive(Debug, Serialize, Deserialize)]
pub struct PasswordChangeBody<A> {
    /// The OPAQUE record of the new password (answering a
    /// [`NewPasswordSetupBody`]), base64.
    pub new_password_record: SecretText,
    /// The proof, with the current password.
    #[serde(flatten)]
    pub proof: Proof<A>,
}

/// The answer to [`PasswordChangeBody`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PasswordChangeAnswer {
    /// How many other devices' sessions ended.
    pub sessions_ended: u64,
}

/// The answer to `GET /v1/devices`: the account's devices.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceList {
    /// Oldest first.
    pub devices: Vec<DeviceInfo>,
}

/// One of the account's devices.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceInfo {
    /// Registered at (unix seconds).
    pub created_at: u64,
    /// Whether it is the device that asked.
    pub current: bool,
    /// Hex device id.
    pub device_id: String,
    /// Last request (unix seconds, to a minute).
    pub last_seen_at: u64,
    /// Revoked at, if it was.
    pub revoked_at: Option<u64>,
    /// Whether it holds a live session.
    pub session_active: bool,
}

/// The answer to `POST /v1/devices/{device_id}/revoke`. The body is empty
/// when a device signs itself out, and a [`Proof`] to revoke another.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevokedAnswer {
    /// The revoked device's hex id.
    pub revoked: String,
}

/// `POST /v1/admin/invites` (admins only): a new invite code. An empty body
/// asks for the default lifetime, with no proof (refused: an invite needs
/// one).
#[derive(Debug, Serialize, Deserialize)]
pub struct InviteBody<A> {
    /// How long the invite stays open, 60 s to 30 days (7 days if absent).
    #[serde(default)]
    pub expires_in_secs: Option<u64>,
    /// The admin's proof.
    #[serde(flatten)]
    pub proof: Proof<A>,
}

/// The answer to [`InviteBody`].
#[derive(Debug, Serialize, Deserialize)]
pub struct InviteAnswer {
    /// When the invite closes (unix seconds).
    pub expires_at: u64,
    /// The code, shown this once.
    pub invite_code: SecretText,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pinned;
    use serde_json::{Value, json};

    /// A stand-in for the WebAuthn JSON objects.
    type Proof = super::Proof<Value>;

    fn password_and_totp() -> Proof {
        Proof {
            opaque: Some(OpaqueProof {
                login_id: "l1".into(),
                finalization: Some("S0Uz".into()),
            }),
            password: None,
            second_factor: Some(SecondFactor::Totp {
                code: SecretText::new("123456".into()),
            }),
        }
    }

    #[test]
    fn registration_is_pinned() {
        pinned(
            &RegisterBody {
                invite_code: None,
                password_record: SecretText::new("UkVD".into()),
                username: "alice".into(),
            },
            r#"{"password_record":"UkVD","username":"alice"}"#,
        );
        pinned(
            &RegisterBody {
                invite_code: Some(SecretText::new("ABCD-EFGH".into())),
                password_record: SecretText::new("UkVD".into()),
                username: "alice".into(),
            },
            r#"{"invite_code":"ABCD-EFGH","password_record":"UkVD","username":"alice"}"#,
        );
        pinned(
            &RegisterAnswer {
                username: "alice".into(),
            },
            r#"{"username":"alice"}"#,
        );
    }

    #[test]
    fn proofs_are_pinned() {
        pinned(&Proof::default(), r#"{"second_factor":null}"#);
        pinned(
            &Proof {
                opaque: None,
                password: Some(Password::new("pw".into())),
                second_factor: None,
            },
            r#"{"password":"pw","second_factor":null}"#,
        );
        pinned(
            &password_and_totp(),
            concat!(
                r#"{"opaque":{"login_id":"l1","finalization":"S0Uz"},"#,
                r#""second_factor":{"type":"totp","code":"123456"}}"#
            ),
        );
        pinned(
            &Proof {
                opaque: None,
                password: Some(Password::new("pw".into())),
                second_factor: Some(SecondFactor::RecoveryCode {
                    code: SecretText::new("r-1".into()),
                }),
            },
            r#"{"password":"pw","second_factor":{"type":"recovery_code","code":"r-1"}}"#,
        );
        pinned(
            &Proof {
                opaque: None,
                password: None,
                second_factor: Some(SecondFactor::Webauthn {
                    challenge_id: "c1".into(),
                    credential: json!({"id": "k"}),
                }),
            },
            r#"{"second_factor":{"type":"webauthn","challenge_id":"c1","credential":{"id":"k"}}}"#,
        );
        // An empty body, or `{}`, is an empty proof.
        assert!(serde_json::from_str::<Proof>("{}").unwrap().is_empty());
        assert!(!password_and_totp().is_empty());
    }

    #[test]
    fn a_proof_shows_no_secret_when_printed() {
        assert_eq!(
            format!("{:?}", password_and_totp()),
            "Proof { opaque: Some(OpaqueProof { login_id: \"l1\", finalization: Some(\"S0Uz\") }), \
             password: None, second_factor: Some(Totp { code: SecretText(<redacted>) }) }"
        );
    }

    #[test]
    fn logins_are_pinned() {
        pinned(
            &LoginBody::new("alice".into(), "S0VZ".into(), password_and_totp()),
            concat!(
                r#"{"opaque":{"login_id":"l1","finalization":"S0Uz"},"#,
                r#""second_factor":{"type":"totp","code":"123456"},"#,
                r#""public_key":"S0VZ","username":"alice"}"#
            ),
        );
        let mut recovering = LoginBody::new("alice".into(), "S0VZ".into(), password_and_totp());
        recovering.recover = true;
        pinned(
            &recovering,
            concat!(
                r#"{"opaque":{"login_id":"l1","finalization":"S0Uz"},"#,
                r#""second_factor":{"type":"totp","code":"123456"},"#,
                r#""public_key":"S0VZ","recover":true,"username":"alice"}"#
            ),
        );
        // A recovery invite comes without a proof: no proof fields at all.
        let mut invited = LoginBody::<Value>::new("alice".into(), "S0VZ".into(), Proof::default());
        invited.recovery_invite = Some(SecretText::new("INV".into()));
        invited.new_password_record = Some(SecretText::new("UkVD".into()));
        pinned(
            &invited,
            r#"{"new_password_record":"UkVD","public_key":"S0VZ","recovery_invite":"INV","username":"alice"}"#,
        );
        // An account from before OPAQUE proves its password once, and sends
        // the record that replaces it.
        let mut upgrading = LoginBody::<Value>::new(
            "alice".into(),
            "S0VZ".into(),
            Proof {
                opaque: None,
                password: Some(Password::new("pw".into())),
                second_factor: None,
            },
        );
        upgrading.password_record = Some(SecretText::new("UkVD".into()));
        pinned(
            &upgrading,
            concat!(
                r#"{"password_record":"UkVD","password":"pw","second_factor":null,"#,
                r#""public_key":"S0VZ","username":"alice"}"#
            ),
        );
        pinned(
            &PasswordLoginBody::<Value> {
                public_key: "S0VZ".into(),
                request: "S0Ux".into(),
                second_factor: None,
                username: "alice".into(),
            },
            r#"{"public_key":"S0VZ","request":"S0Ux","username":"alice"}"#,
        );
        pinned(
            &PasswordLoginAnswer {
                legacy: false,
                login_id: Some("l1".into()),
                response: Some("S0Uy".into()),
            },
            r#"{"login_id":"l1","response":"S0Uy"}"#,
        );
        pinned(
            &PasswordLoginAnswer {
                legacy: true,
                login_id: None,
                response: None,
            },
            r#"{"legacy":true}"#,
        );
        pinned(
            &LoginAnswer {
                device_id: "d1".into(),
                recovery: None,
                recovery_codes_left: 10,
                second_factor: None,
                username: "alice".into(),
            },
            r#"{"device_id":"d1","recovery_codes_left":10,"second_factor":null,"username":"alice"}"#,
        );
        pinned(
            &LoginAnswer {
                device_id: "d1".into(),
                recovery: Some(RecoveryAnswer {
                    devices_revoked: vec!["d0".into()],
                    factors_removed: vec!["totp".into()],
                    recovery_codes: vec![SecretText::new("r-2".into())],
                }),
                recovery_codes_left: 10,
                second_factor: Some("recovery_code".into()),
                username: "alice".into(),
            },
            concat!(
                r#"{"device_id":"d1","recovery":{"devices_revoked":["d0"],"factors_removed":["totp"],"#,
                r#""recovery_codes":["r-2"]},"recovery_codes_left":10,"#,
                r#""second_factor":"recovery_code","username":"alice"}"#
            ),
        );
    }

    #[test]
    fn webauthn_ceremonies_are_pinned() {
        pinned(
            &WebauthnChallengeBody {
                username: "alice".into(),
            },
            r#"{"username":"alice"}"#,
        );
        pinned(
            &WebauthnChallenge {
                challenge_id: "c1".into(),
                options: json!({"publicKey": {}}),
                origin: "https://chat.example".into(),
            },
            r#"{"challenge_id":"c1","options":{"publicKey":{}},"origin":"https://chat.example"}"#,
        );
        pinned(
            &PasskeyRegistrationBody {
                challenge_id: "c1".into(),
                credential: json!({"id": "k"}),
                name: "yubikey".into(),
                passwordless: false,
            },
            r#"{"challenge_id":"c1","credential":{"id":"k"},"name":"yubikey","passwordless":false}"#,
        );
        pinned(
            &PasskeyAddedAnswer {
                credential_id: "k".into(),
                passwordless: true,
                recovery_codes: vec![],
            },
            r#"{"credential_id":"k","passwordless":true,"recovery_codes":[]}"#,
        );
    }

    #[test]
    fn account_status_is_pinned() {
        pinned(
            &AccountStatus {
                bot_owner: None,
                max_group_dm: 9,
                passwordless: false,
                recovery_codes_left: 10,
                roles: vec!["admin".into()],
                second_factor_required: true,
                totp: true,
                totp_pending: false,
                username: "alice".into(),
                webauthn: vec![PasskeyInfo {
                    credential_id: "k".into(),
                    name: "yubikey".into(),
                }],
            },
            concat!(
                r#"{"bot_owner":null,"max_group_dm":9,"passwordless":false,"recovery_codes_left":10,"#,
                r#""roles":["admin"],"second_factor_required":true,"totp":true,"totp_pending":false,"#,
                r#""username":"alice","webauthn":[{"credential_id":"k","name":"yubikey"}]}"#
            ),
        );
        // From a relay older than the group direct message policy.
        let older: AccountStatus = serde_json::from_str(concat!(
            r#"{"passwordless":false,"recovery_codes_left":0,"roles":[],"#,
            r#""second_factor_required":false,"totp":false,"totp_pending":false,"#,
            r#""username":"bob","webauthn":[]}"#
        ))
        .unwrap();
        assert_eq!(older.max_group_dm, DEFAULT_MAX_GROUP_DM);
        assert_eq!(older.bot_owner, None);
    }

    #[test]
    fn factor_changes_are_pinned() {
        pinned(
            &TotpEnrollmentAnswer {
                otpauth_uri: SecretText::new("otpauth://totp/x".into()),
            },
            r#"{"otpauth_uri":"otpauth://totp/x"}"#,
        );
        pinned(
            &TotpConfirmBody {
                code: SecretText::new("123456".into()),
            },
            r#"{"code":"123456"}"#,
        );
        pinned(
            &RecoveryCodesAnswer {
                recovery_codes: vec![SecretText::new("r-1".into()), SecretText::new("r-2".into())],
            },
            r#"{"recovery_codes":["r-1","r-2"]}"#,
        );
        pinned(
            &FactorRemovedAnswer {
                removed: "webauthn:k".into(),
            },
            r#"{"removed":"webauthn:k"}"#,
        );
        pinned(
            &PasswordChangeBody {
                new_password_record: SecretText::new("UkVD".into()),
                proof: password_and_totp(),
            },
            concat!(
                r#"{"new_password_record":"UkVD","opaque":{"login_id":"l1","finalization":"S0Uz"},"#,
                r#""second_factor":{"type":"totp","code":"123456"}}"#
            ),
        );
        pinned(
            &PasswordChangeAnswer { sessions_ended: 2 },
            r#"{"sessions_ended":2}"#,
        );
    }

    #[test]
    fn devices_and_invites_are_pinned() {
        pinned(
            &DeviceList {
                devices: vec![DeviceInfo {
                    created_at: 1,
                    current: true,
                    device_id: "d1".into(),
                    last_seen_at: 2,
                    revoked_at: None,
                    session_active: true,
                }],
            },
            concat!(
                r#"{"devices":[{"created_at":1,"current":true,"device_id":"d1","#,
                r#""last_seen_at":2,"revoked_at":null,"session_active":true}]}"#
            ),
        );
        pinned(
            &RevokedAnswer {
                revoked: "d2".into(),
            },
            r#"{"revoked":"d2"}"#,
        );
        pinned(
            &InviteBody {
                expires_in_secs: Some(3600),
                proof: password_and_totp(),
            },
            concat!(
                r#"{"expires_in_secs":3600,"opaque":{"login_id":"l1","finalization":"S0Uz"},"#,
                r#""second_factor":{"type":"totp","code":"123456"}}"#
            ),
        );
        pinned(
            &InviteAnswer {
                expires_at: 1_700_000_000,
                invite_code: SecretText::new("ABCD".into()),
            },
            r#"{"expires_at":1700000000,"invite_code":"ABCD"}"#,
        );
    }
}
