//! The account side of a device: second factors, devices, sessions and the
//! password.

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use conclave_crypto::{DeviceKey, Username};
pub use conclave_proto::{AccountStatus, DeviceInfo, PasskeyInfo};
use conclave_proto::{
    DeviceList, FactorRemovedAnswer, InviteAnswer, LoginAnswer, PasskeyAddedAnswer,
    PasswordChangeAnswer, RecoveryAnswer, RecoveryCodesAnswer, RevokedAnswer, SecretText,
    TotpConfirmBody, TotpEnrollmentAnswer, WebauthnChallenge, WebauthnChallengeBody, routes,
};
use webauthn_rs_proto::{
    CreationChallengeResponse, PublicKeyCredential, RegisterPublicKeyCredential,
    RequestChallengeResponse,
};

use crate::client::Client;
use crate::error::{ClientError, Result};
use crate::password::{PasswordPart, Setup};

/// Something that performs WebAuthn ceremonies: a hardware security key, a
/// platform passkey, or (for tests) [`SoftAuthenticator`].
///
/// The relay sends the ceremony's options and the origin it expects; the
/// authenticator answers with a new credential or an assertion.
pub trait Authenticator: Send {
    /// Creates a credential (registration ceremony).
    fn register(
        &mut self,
        origin: &url::Url,
        options: CreationChallengeResponse,
    ) -> std::result::Result<RegisterPublicKeyCredential, AuthenticatorError>;

    /// Signs a challenge with an existing credential (authentication ceremony).
    fn authenticate(
        &mut self,
        origin: &url::Url,
        options: RequestChallengeResponse,
    ) -> std::result::Result<PublicKeyCredential, AuthenticatorError>;
}

/// Why an authenticator did not complete a ceremony.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct AuthenticatorError(String);

impl AuthenticatorError {
    /// An authenticator's own refusal or failure, as it describes it.
    pub fn new(message: impl Into<String>) -> Self {
        Self(message.into())
    }

    /// The ceremony failed in the authenticator (webauthn-authenticator-rs
    /// describes its errors only through `Debug`).
    #[cfg(any(feature = "soft-authenticator", feature = "hardware-key"))]
    fn ceremony(error: impl fmt::Debug) -> Self {
        Self(format!("{error:?}"))
    }

    /// The authenticator's own state could not be kept.
    #[cfg(feature = "soft-authenticator")]
    fn storage(error: ClientError) -> Self {
        Self(error.to_string())
    }
}

/// A second factor for a login or a sensitive change.
pub enum SecondFactor<'a> {
    /// A 6-digit code from an authenticator app.
    Totp(&'a str),
    /// One of the account's single-use recovery codes.
    RecoveryCode(&'a str),
    /// A passkey or security key.
    Webauthn(&'a mut dyn Authenticator),
}

impl fmt::Debug for SecondFactor<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SecondFactor::Totp(_) => "Totp(<redacted>)",
            SecondFactor::RecoveryCode(_) => "RecoveryCode(<redacted>)",
            SecondFactor::Webauthn(_) => "Webauthn",
        })
    }
}

/// What proves the account holder is present: the password, and a second
/// factor if the account has one. A passwordless account gives only a passkey.
#[derive(Debug, Default)]
pub struct Credentials<'a> {
    /// The account password.
    pub password: Option<&'a str>,
    /// The second factor.
    pub second_factor: Option<SecondFactor<'a>>,
}

impl<'a> Credentials<'a> {
    /// The password alone.
    pub fn password(password: &'a str) -> Self {
        Self {
            password: Some(password),
            second_factor: None,
        }
    }

    /// The password and a second factor.
    pub fn with(password: &'a str, second_factor: SecondFactor<'a>) -> Self {
        Self {
            password: Some(password),
            second_factor: Some(second_factor),
        }
    }
}

/// Recovery codes, shown once: each signs in once in place of a second factor.
pub struct RecoveryCodes(pub Vec<String>);

impl fmt::Debug for RecoveryCodes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RecoveryCodes({} codes, <redacted>)", self.0.len())
    }
}

impl From<RecoveryCodesAnswer> for RecoveryCodes {
    fn from(answer: RecoveryCodesAnswer) -> Self {
        RecoveryCodes(shown(answer.recovery_codes))
    }
}

/// What an account recovery did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecoveryReport {
    /// Devices revoked (hex ids).
    pub devices_revoked: Vec<String>,
    /// Factors removed: `totp` or `webauthn:<credential id>`.
    pub factors_removed: Vec<String>,
    /// The new recovery codes, shown once.
    pub recovery_codes: Vec<String>,
}

impl From<RecoveryAnswer> for RecoveryReport {
    fn from(answer: RecoveryAnswer) -> Self {
        RecoveryReport {
            devices_revoked: answer.devices_revoked,
            factors_removed: answer.factors_removed,
            recovery_codes: shown(answer.recovery_codes),
        }
    }
}

/// Codes the relay showed once, for their owner to keep.
fn shown(codes: Vec<SecretText>) -> Vec<String> {
    codes.iter().map(|code| code.expose().to_owned()).collect()
}

/// A TOTP enrollment waiting for its first code.
pub struct TotpEnrollment {
    /// The `otpauth://` URI for an authenticator app (holds the secret).
    pub otpauth_uri: String,
}

impl fmt::Debug for TotpEnrollment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TotpEnrollment(<redacted>)")
    }
}

// The protocol's bodies, with the WebAuthn objects as webauthn-rs-proto
// writes them.
type Proof = conclave_proto::Proof<PublicKeyCredential>;
type LoginBody = conclave_proto::LoginBody<PublicKeyCredential>;

fn origin_of<O>(challenge: &WebauthnChallenge<O>) -> Result<url::Url> {
    url::Url::parse(&challenge.origin)
        .map_err(|e| ClientError::Invalid(format!("relay sent a bad WebAuthn origin: {e}")))
}

impl Client {
    /// Turns credentials into the proof the relay checks, as the device with
    /// `key`: a WebAuthn ceremony first if a passkey is the second factor,
    /// then the password proved with OPAQUE (a passkey or a recovery code
    /// goes with its start). With `upgrade`, an account whose password
    /// predates OPAQUE also gets the record that replaces it (returned
    /// beside the proof).
    pub(crate) async fn proof(
        &self,
        username: &str,
        credentials: Credentials<'_>,
        key: &DeviceKey,
        upgrade: bool,
    ) -> Result<(Proof, Option<SecretText>)> {
        use conclave_proto::SecondFactor as Presented;
        let name = Username::parse(username).map_err(|e| ClientError::Invalid(e.to_string()))?;
        let second_factor = match credentials.second_factor {
            None => None,
            Some(SecondFactor::Totp(code)) => Some(Presented::Totp {
                code: SecretText::new(code.to_owned()),
            }),
            Some(SecondFactor::RecoveryCode(code)) => Some(Presented::RecoveryCode {
                code: SecretText::new(code.to_owned()),
            }),
            Some(SecondFactor::Webauthn(authenticator)) => {
                let asking = WebauthnChallengeBody {
                    username: username.to_owned(),
                };
                let challenge: WebauthnChallenge<RequestChallengeResponse> = self
                    .call("POST", routes::WEBAUTHN_CHALLENGE, &asking, None)
                    .await?;
                let origin = origin_of(&challenge)?;
                let assertion = authenticator
                    .authenticate(&origin, challenge.options)
                    .map_err(|e| ClientError::Invalid(format!("authenticator: {e}")))?;
                Some(Presented::Webauthn {
                    challenge_id: challenge.challenge_id,
                    credential: assertion,
                })
            }
        };
        let Some(password) = credentials.password else {
            return Ok((
                Proof {
                    opaque: None,
                    password: None,
                    second_factor,
                },
                None,
            ));
        };
        // A factor that cannot be guessed is checked with the start.
        let (at_start, in_proof) = match second_factor {
            Some(factor @ (Presented::Webauthn { .. } | Presented::RecoveryCode { .. })) => {
                (Some(factor), None)
            }
            other => (None, other),
        };
        Ok(
            match self
                .prove_password(&name, password, key, at_start, upgrade)
                .await?
            {
                PasswordPart::Opaque(opaque) => (
                    Proof {
                        opaque: Some(opaque),
                        password: None,
                        second_factor: in_proof,
                    },
                    None,
                ),
                PasswordPart::Legacy {
                    password,
                    factor,
                    record,
                } => (
                    Proof {
                        opaque: None,
                        password: Some(password),
                        second_factor: factor.map(|factor| *factor).or(in_proof),
                    },
                    record,
                ),
            },
        )
    }

    /// Creates an account with an invite code and logs this device in.
    /// (Without one, [`Client::register`] works on relays with open registration.)
    pub async fn register_with_invite(
        &self,
        username: &str,
        password: &str,
        invite_code: &str,
    ) -> Result<()> {
        self.create_account(username, password, Some(invite_code))
            .await?;
        self.login(username, password).await
    }

    /// Logs this device in with the password and, if the account has one, a
    /// second factor. A new device always needs the second factor once the
    /// account has one; the account's other devices are told.
    pub async fn login_with(&self, username: &str, credentials: Credentials<'_>) -> Result<()> {
        self.login_request(username, credentials, |_| {}).await?;
        Ok(())
    }

    /// Registers a new device key with `credentials`, in a login body that
    /// `complete` fills in further; adopts the key once the relay accepted
    /// it. Returns the answer.
    async fn login_request(
        &self,
        username: &str,
        credentials: Credentials<'_>,
        complete: impl FnOnce(&mut LoginBody),
    ) -> Result<LoginAnswer> {
        let name = Username::parse(username).map_err(|e| ClientError::Invalid(e.to_string()))?;
        if let Some(logged_in) = self.username() {
            return Err(ClientError::AlreadyLoggedIn(logged_in));
        }
        self.check_key_protection()?;
        let key = DeviceKey::generate();
        let (proof, record) = self.proof(name.as_str(), credentials, &key, true).await?;
        let mut body = login_body(&name, &key, proof);
        body.password_record = record;
        complete(&mut body);
        let answer = self
            .call("POST", routes::DEVICES, &body, Some(&key))
            .await?;
        self.adopt_identity(name, key).await?;
        Ok(answer)
    }

    /// Renews this device's session after it expired or was ended by a
    /// password change: the same proof as a login, the same device.
    pub async fn reauthenticate(&self, credentials: Credentials<'_>) -> Result<()> {
        let identity = self.identity()?;
        let (proof, record) = self
            .proof(identity.username.as_str(), credentials, &identity.key, true)
            .await?;
        let mut body = login_body(&identity.username, &identity.key, proof);
        body.password_record = record;
        let _: LoginAnswer = self
            .call("POST", routes::DEVICES, &body, Some(&identity.key))
            .await?;
        Ok(())
    }

    /// The account's roles, second factors and policy.
    pub async fn account(&self) -> Result<AccountStatus> {
        self.fetch(routes::ACCOUNT).await
    }

    /// The proof a change to who can sign in needs (step-up): the password
    /// and a second factor if the account has one, or a passkey.
    async fn step_up_proof(&self, credentials: Credentials<'_>) -> Result<Proof> {
        let identity = self.identity()?;
        let (proof, _) = self
            .proof(
                identity.username.as_str(),
                credentials,
                &identity.key,
                false,
            )
            .await?;
        Ok(proof)
    }

    /// Starts a TOTP enrollment: show the URI (or its QR code) to an
    /// authenticator app, then confirm with [`Client::confirm_totp`]. Needs a
    /// fresh proof with the factors the account has now (the password alone
    /// if it has none).
    pub async fn enroll_totp(&self, credentials: Credentials<'_>) -> Result<TotpEnrollment> {
        let proof = self.step_up_proof(credentials).await?;
        let answer: TotpEnrollmentAnswer =
            self.exchange("POST", routes::ACCOUNT_TOTP, &proof).await?;
        Ok(TotpEnrollment {
            otpauth_uri: answer.otpauth_uri.expose().to_owned(),
        })
    }

    /// Confirms a TOTP enrollment with a current code. Returns the recovery
    /// codes if this is the account's first second factor (else none).
    pub async fn confirm_totp(&self, code: &str) -> Result<RecoveryCodes> {
        let body = TotpConfirmBody {
            code: SecretText::new(code.to_owned()),
        };
        let answer: RecoveryCodesAnswer = self
            .exchange("POST", routes::ACCOUNT_TOTP_CONFIRM, &body)
            .await?;
        Ok(answer.into())
    }

    /// Removes the account's TOTP (needs the password and a second factor).
    pub async fn remove_totp(&self, credentials: Credentials<'_>) -> Result<()> {
        let proof = self.step_up_proof(credentials).await?;
        let _: FactorRemovedAnswer = self
            .exchange("DELETE", routes::ACCOUNT_TOTP, &proof)
            .await?;
        Ok(())
    }

    /// Registers a passkey or security key. With `passwordless`, it alone
    /// signs the account in from then on. Needs a fresh proof with the
    /// factors the account has now (the new passkey can never vouch for
    /// itself). Returns the recovery codes if this is the account's first
    /// second factor.
    pub async fn enroll_passkey(
        &self,
        authenticator: &mut dyn Authenticator,
        name: &str,
        passwordless: bool,
        credentials: Credentials<'_>,
    ) -> Result<RecoveryCodes> {
        let proof = self.step_up_proof(credentials).await?;
        let challenge: WebauthnChallenge<CreationChallengeResponse> = self
            .exchange("POST", routes::ACCOUNT_WEBAUTHN_REGISTER, &proof)
            .await?;
        let origin = origin_of(&challenge)?;
        let credential = authenticator
            .register(&origin, challenge.options)
            .map_err(|e| ClientError::Invalid(format!("authenticator: {e}")))?;
        let body = conclave_proto::PasskeyRegistrationBody::<RegisterPublicKeyCredential> {
            challenge_id: challenge.challenge_id,
            credential,
            name: name.to_owned(),
            passwordless,
        };
        let answer: PasskeyAddedAnswer = self
            .exchange("POST", routes::ACCOUNT_WEBAUTHN_REGISTER_FINISH, &body)
            .await?;
        Ok(RecoveryCodes(shown(answer.recovery_codes)))
    }

    /// Removes a passkey (needs a fresh proof).
    pub async fn remove_passkey(
        &self,
        credential_id: &str,
        credentials: Credentials<'_>,
    ) -> Result<()> {
        if credential_id.is_empty()
            || !credential_id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(ClientError::Invalid(format!(
                "{credential_id:?} is not a passkey id (from `2fa status`)"
            )));
        }
        let proof = self.step_up_proof(credentials).await?;
        let _: FactorRemovedAnswer = self
            .exchange("DELETE", &routes::account_passkey(credential_id), &proof)
            .await?;
        Ok(())
    }

    /// Takes the account back after a device or a factor was stolen: with
    /// the password and an unused recovery code, every other device is
    /// revoked, every factor added in the relay's recovery window (7 days
    /// unless configured) removed, passwordless sign-in turned off, and new
    /// recovery codes issued.
    pub async fn recover_account(
        &self,
        password: &str,
        recovery_code: &str,
    ) -> Result<RecoveryReport> {
        let proof = self
            .step_up_proof(Credentials::with(
                password,
                SecondFactor::RecoveryCode(recovery_code),
            ))
            .await?;
        let answer: RecoveryAnswer = self
            .exchange("POST", routes::ACCOUNT_RECOVER, &proof)
            .await?;
        let report = RecoveryReport::from(answer);
        // Take the revoked devices out of our channels now.
        self.sync().await?;
        Ok(report)
    }

    /// Signs this (new) device in with the password and an unused recovery
    /// code and recovers the account at once (see [`Client::recover_account`]).
    pub async fn login_and_recover(
        &self,
        username: &str,
        password: &str,
        recovery_code: &str,
    ) -> Result<RecoveryReport> {
        let answer = self
            .login_request(
                username,
                Credentials::with(password, SecondFactor::RecoveryCode(recovery_code)),
                |body| body.recover = true,
            )
            .await?;
        let report = answer.recovery.map(RecoveryReport::from).ok_or_else(|| {
            ClientError::Invalid(
                "the relay signed this device in but did not say what its recovery did".into(),
            )
        })?;
        self.sync().await?;
        Ok(report)
    }

    /// Signs this (new) device in to a locked account with the one-time
    /// recovery invite its host administrator issued
    /// (`conclave-server admin recover`), setting a new password.
    pub async fn login_with_recovery_invite(
        &self,
        username: &str,
        recovery_invite: &str,
        new_password: &str,
    ) -> Result<()> {
        let name = Username::parse(username).map_err(|e| ClientError::Invalid(e.to_string()))?;
        let record = self
            .password_record(&name, new_password, Setup::RecoveryInvite(recovery_invite))
            .await?;
        self.login_request(username, Credentials::default(), |body| {
            body.recovery_invite = Some(SecretText::new(recovery_invite.to_owned()));
            body.new_password_record = Some(record);
        })
        .await?;
        Ok(())
    }

    /// Replaces the recovery codes (needs the password and a second factor).
    pub async fn new_recovery_codes(&self, credentials: Credentials<'_>) -> Result<RecoveryCodes> {
        let proof = self.step_up_proof(credentials).await?;
        let answer: RecoveryCodesAnswer = self
            .exchange("POST", routes::ACCOUNT_RECOVERY_CODES, &proof)
            .await?;
        Ok(answer.into())
    }

    /// Changes the password; every other device must log in again. Returns
    /// how many sessions that ended.
    pub async fn change_password(
        &self,
        credentials: Credentials<'_>,
        new_password: &str,
    ) -> Result<u64> {
        let identity = self.identity()?;
        // The proof first: the relay counts a new password's setup against
        // this device's password budget, as a guess.
        let proof = self.step_up_proof(credentials).await?;
        let record = self
            .password_record(&identity.username, new_password, Setup::SignedIn)
            .await?;
        let body = conclave_proto::PasswordChangeBody {
            new_password_record: record,
            proof,
        };
        let answer: PasswordChangeAnswer = self
            .exchange("POST", routes::ACCOUNT_PASSWORD, &body)
            .await?;
        Ok(answer.sessions_ended)
    }

    /// The account's devices, this one included.
    pub async fn devices(&self) -> Result<Vec<DeviceInfo>> {
        let list: DeviceList = self.fetch(routes::DEVICES).await?;
        Ok(list.devices)
    }

    /// Revokes a device at once: its stream closes, its requests are refused,
    /// and the members of its channels remove it from them. Revoking another
    /// device needs credentials; revoking this one (signing out) does not.
    pub async fn revoke_device(
        &self,
        device_id: &str,
        credentials: Option<Credentials<'_>>,
    ) -> Result<()> {
        let identity = self.identity()?;
        if device_id.is_empty() || !device_id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(ClientError::Invalid(format!(
                "{device_id:?} is not a device id (hex, from `device list`)"
            )));
        }
        let path = routes::device_revoke(device_id);
        // Signing oneself out needs no proof, and sends no body.
        let _: RevokedAnswer = match credentials {
            Some(credentials) => {
                let proof = self.step_up_proof(credentials).await?;
                self.exchange("POST", &path, &proof).await?
            }
            None => self.bodiless("POST", &path).await?,
        };
        if device_id != identity.key.device_id().to_string() {
            // Take it out of our channels now rather than at the next sync.
            self.sync().await?;
        }
        Ok(())
    }

    /// Issues an invite code (admins only; needs a fresh proof, since an
    /// invite lets someone in). Returns the code and its expiry (unix seconds).
    pub async fn create_invite(
        &self,
        expires_in_secs: u64,
        credentials: Credentials<'_>,
    ) -> Result<(String, u64)> {
        let body = conclave_proto::InviteBody {
            expires_in_secs: Some(expires_in_secs),
            proof: self.step_up_proof(credentials).await?,
        };
        let answer: InviteAnswer = self.exchange("POST", routes::ADMIN_INVITES, &body).await?;
        Ok((answer.invite_code.expose().to_owned(), answer.expires_at))
    }
}

/// A login of the device with `key` to `name`, with `proof`.
fn login_body(name: &Username, key: &DeviceKey, proof: Proof) -> LoginBody {
    LoginBody::new(
        name.to_string(),
        STANDARD.encode(key.public().to_bytes()),
        proof,
    )
}

/// A software authenticator for tests and demos: a passkey whose private key
/// sits in memory or in a file. It offers none of a hardware key's
/// protection; never use it for a real account.
#[cfg(feature = "soft-authenticator")]
pub struct SoftAuthenticator {
    token: webauthn_authenticator_rs::softtoken::SoftToken,
    file: Option<std::path::PathBuf>,
}

#[cfg(feature = "soft-authenticator")]
impl fmt::Debug for SoftAuthenticator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SoftAuthenticator")
            .field("file", &self.file)
            .finish_non_exhaustive()
    }
}

#[cfg(feature = "soft-authenticator")]
impl SoftAuthenticator {
    /// A fresh authenticator in memory.
    pub fn new() -> Result<Self> {
        let (token, _) = webauthn_authenticator_rs::softtoken::SoftToken::new(true)
            .map_err(|e| ClientError::Invalid(format!("soft authenticator: {e:?}")))?;
        Ok(Self { token, file: None })
    }

    /// The authenticator kept in `path` (mode 0600), created if missing;
    /// saved again after every ceremony.
    pub fn open(path: &std::path::Path) -> Result<Self> {
        match std::fs::read(path) {
            Ok(bytes) => {
                let token = webauthn_authenticator_rs::softtoken::SoftToken::from_cbor(&bytes)
                    .map_err(|e| {
                        ClientError::Invalid(format!(
                            "{} is not a soft authenticator: {e:?}",
                            path.display()
                        ))
                    })?;
                Ok(Self {
                    token,
                    file: Some(path.to_owned()),
                })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut fresh = Self::new()?;
                fresh.file = Some(path.to_owned());
                fresh.save()?;
                Ok(fresh)
            }
            Err(e) => Err(ClientError::store(format!("{}: {e}", path.display()))),
        }
    }

    fn save(&self) -> Result<()> {
        let Some(path) = &self.file else {
            return Ok(());
        };
        let bytes = zeroize::Zeroizing::new(
            self.token
                .to_cbor()
                .map_err(|e| ClientError::store(format!("soft authenticator: {e:?}")))?,
        );
        crate::store::write_private(path, &bytes)
    }
}

#[cfg(feature = "soft-authenticator")]
impl Authenticator for SoftAuthenticator {
    fn register(
        &mut self,
        origin: &url::Url,
        options: CreationChallengeResponse,
    ) -> std::result::Result<RegisterPublicKeyCredential, AuthenticatorError> {
        use webauthn_authenticator_rs::WebauthnAuthenticator;
        let credential = self
            .token
            .do_registration(origin.clone(), options)
            .map_err(AuthenticatorError::ceremony)?;
        self.save().map_err(AuthenticatorError::storage)?;
        Ok(credential)
    }

    fn authenticate(
        &mut self,
        origin: &url::Url,
        options: RequestChallengeResponse,
    ) -> std::result::Result<PublicKeyCredential, AuthenticatorError> {
        use webauthn_authenticator_rs::WebauthnAuthenticator;
        let assertion = self
            .token
            .do_authentication(origin.clone(), options)
            .map_err(AuthenticatorError::ceremony)?;
        self.save().map_err(AuthenticatorError::storage)?;
        Ok(assertion)
    }
}

/// A FIDO2 security key over USB (feature `hardware-key`). PIN prompts and
/// "touch the key" go to the terminal.
#[cfg(feature = "hardware-key")]
pub struct HardwareKey {
    authenticator: webauthn_authenticator_rs::ctap2::CtapAuthenticator<
        'static,
        webauthn_authenticator_rs::usb::USBToken,
        webauthn_authenticator_rs::ui::Cli,
    >,
}

#[cfg(feature = "hardware-key")]
static TERMINAL_PROMPTS: webauthn_authenticator_rs::ui::Cli = webauthn_authenticator_rs::ui::Cli {};

#[cfg(feature = "hardware-key")]
impl fmt::Debug for HardwareKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("HardwareKey")
    }
}

#[cfg(feature = "hardware-key")]
impl HardwareKey {
    /// The first security key plugged in.
    pub async fn first_connected() -> Result<Self> {
        use webauthn_authenticator_rs::transport::Transport as _;
        let fail = |e: webauthn_authenticator_rs::error::WebauthnCError| {
            ClientError::Invalid(format!("security key: {e:?}"))
        };
        let usb = webauthn_authenticator_rs::usb::USBTransport::new()
            .await
            .map_err(fail)?;
        let token = usb
            .tokens()
            .await
            .map_err(fail)?
            .into_iter()
            .next()
            .ok_or_else(|| ClientError::Invalid("no security key is plugged in".into()))?;
        let authenticator =
            webauthn_authenticator_rs::ctap2::CtapAuthenticator::new(token, &TERMINAL_PROMPTS)
                .await
                .ok_or_else(|| {
                    ClientError::Invalid(
                        "the security key speaks no supported FIDO2 version".into(),
                    )
                })?;
        Ok(Self { authenticator })
    }
}

#[cfg(feature = "hardware-key")]
impl Authenticator for HardwareKey {
    fn register(
        &mut self,
        origin: &url::Url,
        options: CreationChallengeResponse,
    ) -> std::result::Result<RegisterPublicKeyCredential, AuthenticatorError> {
        use webauthn_authenticator_rs::WebauthnAuthenticator;
        self.authenticator
            .do_registration(origin.clone(), options)
            .map_err(AuthenticatorError::ceremony)
    }

    fn authenticate(
        &mut self,
        origin: &url::Url,
        options: RequestChallengeResponse,
    ) -> std::result::Result<PublicKeyCredential, AuthenticatorError> {
        use webauthn_authenticator_rs::WebauthnAuthenticator;
        self.authenticator
            .do_authentication(origin.clone(), options)
            .map_err(AuthenticatorError::ceremony)
    }
}
