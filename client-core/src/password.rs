//! The password, proved and set with OPAQUE: it never leaves this process.
//!
//! Proving it is two requests. [`Client::prove_password`] starts an OPAQUE
//! login (`POST /v1/password/login`), opens the relay's answer with the
//! password and returns the finalization, which goes into the proof of the
//! request that needed it (a login, a step-up). Setting it (a new account,
//! a new password, a recovery invite) is a registration: the relay answers
//! a blinded request, and [`Client::password_record`] returns the record it
//! keeps. The key stretching (argon2id) runs here, on the client, off the
//! async runtime's threads.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use conclave_crypto::password::{PasswordLogin, PasswordRegistration};
use conclave_crypto::{DeviceKey, Username};
use conclave_proto::{
    NewPasswordSetupBody, OpaqueProof, Password, PasswordLoginAnswer, PasswordLoginBody,
    PasswordSetupAnswer, PasswordSetupBody, RegisterAnswer, RegisterBody, SecretText, routes,
};
use webauthn_rs_proto::PublicKeyCredential;
use zeroize::Zeroizing;

use crate::client::Client;
use crate::error::{ClientError, Result};

/// A second factor as it travels.
pub(crate) type PresentedFactor = conclave_proto::SecondFactor<PublicKeyCredential>;

/// The password part of a proof.
#[derive(Debug)]
pub(crate) enum PasswordPart {
    /// Proved with OPAQUE; a factor given to [`Client::prove_password`] was
    /// checked with the start and must not be sent again.
    Opaque(OpaqueProof),
    /// The account's password predates OPAQUE: the password itself, once,
    /// with the factor given back for the proof, and (when a record was
    /// asked for) the record that replaces the old hash.
    Legacy {
        password: Password,
        factor: Option<Box<PresentedFactor>>,
        record: Option<SecretText>,
    },
}

/// Whose password a registration sets.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Setup<'a> {
    /// A new account, with its invite (none on a relay with open
    /// registration).
    NewAccount { invite_code: Option<&'a str> },
    /// A locked account, with the host administrator's recovery invite.
    RecoveryInvite(&'a str),
    /// The signed-in account's new password.
    SignedIn,
}

fn decode(field: &str, text: &str) -> Result<Vec<u8>> {
    STANDARD
        .decode(text)
        .map_err(|_| ClientError::Invalid(format!("the relay sent a malformed {field}")))
}

fn opaque_error(error: conclave_crypto::Error) -> ClientError {
    ClientError::Invalid(format!("the relay's password answer: {error}"))
}

/// Runs the key stretching (argon2id, tens of milliseconds and 19 MiB) on a
/// blocking thread, not on the runtime's.
async fn stretch<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| ClientError::Invalid(format!("password task: {e}")))
}

impl Client {
    /// Proves `password` for `username` as the device with `key`: starts an
    /// OPAQUE login and finishes it here. `factor`, a passkey assertion or a
    /// recovery code, goes with the start, so the relay checks it before the
    /// password (see [`PasswordLoginBody`]). With `upgrade`, an account whose
    /// password predates OPAQUE also gets the record that replaces it.
    pub(crate) async fn prove_password(
        &self,
        username: &Username,
        password: &str,
        key: &DeviceKey,
        factor: Option<PresentedFactor>,
        upgrade: bool,
    ) -> Result<PasswordPart> {
        let secret = Zeroizing::new(password.as_bytes().to_vec());
        let (login, request) = PasswordLogin::start(&secret).map_err(opaque_error)?;
        let mut body = PasswordLoginBody {
            public_key: STANDARD.encode(key.public().to_bytes()),
            request: STANDARD.encode(request),
            second_factor: factor,
            username: username.to_string(),
        };
        let answer: PasswordLoginAnswer = self
            .call("POST", routes::PASSWORD_LOGIN, &body, Some(key))
            .await?;
        if answer.legacy {
            // Without OPAQUE the password itself would go to the relay:
            // only when the user allowed it, since anyone answering for the
            // relay can claim the account is that old.
            if !self
                .session
                .legacy_password_allowed
                .load(std::sync::atomic::Ordering::Relaxed)
            {
                return Err(ClientError::PasswordDowngrade);
            }
            let record = if upgrade {
                Some(self.legacy_upgrade_record(username, password, key).await?)
            } else {
                None
            };
            return Ok(PasswordPart::Legacy {
                password: Password::new(password.to_owned()),
                factor: body.second_factor.take().map(Box::new),
                record,
            });
        }
        let (Some(login_id), Some(response)) = (answer.login_id, answer.response) else {
            return Err(ClientError::Invalid(
                "the relay's password answer has no login".into(),
            ));
        };
        let response = decode("password answer", &response)?;
        let name = username.to_string();
        let finalization = stretch(move || login.finish(&secret, &response, &name))
            .await?
            .map_err(opaque_error)?;
        Ok(PasswordPart::Opaque(OpaqueProof {
            login_id,
            // None: the password did not open the relay's answer. The relay
            // is told, so that it counts and logs the failure.
            finalization: finalization.map(|bytes| STANDARD.encode(bytes)),
        }))
    }

    /// The record of a password from before OPAQUE, made as the device with
    /// `key` signs in with it: a registration whose request rides on a
    /// password login start of its own.
    async fn legacy_upgrade_record(
        &self,
        username: &Username,
        password: &str,
        key: &DeviceKey,
    ) -> Result<SecretText> {
        let secret = Zeroizing::new(password.as_bytes().to_vec());
        let (registration, request) = PasswordRegistration::start(&secret).map_err(opaque_error)?;
        let body = conclave_proto::LegacyUpgradeBody {
            public_key: STANDARD.encode(key.public().to_bytes()),
            request: STANDARD.encode(request),
            username: username.to_string(),
        };
        let answer: PasswordSetupAnswer = self
            .call("POST", routes::PASSWORD_UPGRADE, &body, Some(key))
            .await?;
        self.finish_registration(registration, secret, username, &answer)
            .await
    }

    /// A new OPAQUE record of `password` for `username` (see [`Setup`]).
    pub(crate) async fn password_record(
        &self,
        username: &Username,
        password: &str,
        setup: Setup<'_>,
    ) -> Result<SecretText> {
        conclave_crypto::check_new_password(password)
            .map_err(|e| ClientError::Invalid(e.to_string()))?;
        let secret = Zeroizing::new(password.as_bytes().to_vec());
        let (registration, request) = PasswordRegistration::start(&secret).map_err(opaque_error)?;
        let request = STANDARD.encode(request);
        let answer: PasswordSetupAnswer = match setup {
            Setup::SignedIn => {
                self.exchange(
                    "POST",
                    routes::ACCOUNT_PASSWORD_SETUP,
                    &NewPasswordSetupBody { request },
                )
                .await?
            }
            Setup::NewAccount { invite_code } => {
                let body = PasswordSetupBody {
                    invite_code: invite_code.map(|code| SecretText::new(code.to_owned())),
                    recovery_invite: None,
                    request,
                    username: username.to_string(),
                };
                self.call("POST", routes::ACCOUNTS_PASSWORD, &body, None)
                    .await?
            }
            Setup::RecoveryInvite(invite) => {
                let body = PasswordSetupBody {
                    invite_code: None,
                    recovery_invite: Some(SecretText::new(invite.to_owned())),
                    request,
                    username: username.to_string(),
                };
                self.call("POST", routes::ACCOUNTS_PASSWORD, &body, None)
                    .await?
            }
        };
        self.finish_registration(registration, secret, username, &answer)
            .await
    }

    async fn finish_registration(
        &self,
        registration: PasswordRegistration,
        secret: Zeroizing<Vec<u8>>,
        username: &Username,
        answer: &PasswordSetupAnswer,
    ) -> Result<SecretText> {
        let response = decode("password setup answer", &answer.response)?;
        let name = username.to_string();
        let upload = stretch(move || registration.finish(&secret, &response, &name))
            .await?
            .map_err(opaque_error)?;
        Ok(SecretText::new(STANDARD.encode(upload)))
    }

    /// Creates account `username` with `password` (its OPAQUE record, never
    /// the password), spending `invite_code` unless the relay is open.
    pub(crate) async fn create_account(
        &self,
        username: &str,
        password: &str,
        invite_code: Option<&str>,
    ) -> Result<()> {
        let name = Username::parse(username).map_err(|e| ClientError::Invalid(e.to_string()))?;
        if let Some(logged_in) = self.username() {
            return Err(ClientError::AlreadyLoggedIn(logged_in));
        }
        self.check_key_protection()?;
        let password_record = self
            .password_record(&name, password, Setup::NewAccount { invite_code })
            .await?;
        let body = RegisterBody {
            invite_code: invite_code.map(|code| SecretText::new(code.to_owned())),
            password_record,
            username: name.to_string(),
        };
        let _: RegisterAnswer = self.call("POST", routes::ACCOUNTS, &body, None).await?;
        Ok(())
    }
}
