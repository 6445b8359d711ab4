//! Signing in a device: a new one (a registration entered in the log with
//! it, and a second factor required once the account has a device), or one
//! the account already has (a new session). Recovery rides along when asked.

use conclave_crypto::DevicePublicKey;
use conclave_proto::LoginAnswer;
use webauthn_rs::prelude::PublicKeyCredential;

use super::passwords::{StoredPassword, stored_password, upgrade_legacy};
use super::proof::{Factor, Presenter, verify_proof};
use super::recovery::{recover_account, recovery_answer, recovery_proof, redeem_recovery_invite};
use super::username;
use crate::auth::Signed;
use crate::error::{ApiError, ApiResult};
use crate::events::{AuditAction, AuditEvent};
use crate::{AppState, Notice};

/// A login body as the relay receives it: a passkey assertion travels boxed.
type LoginBody = conclave_proto::LoginBody<Box<PublicKeyCredential>>;

/// Signs in the device that signed the request (see the module's doc).
pub(crate) async fn login(state: &AppState, signed: Signed) -> ApiResult<LoginAnswer> {
    let body: LoginBody = signed.json()?;
    let name = username(&body.username)?;
    let user = name.as_str();
    let key = crate::error::decode_b64("public_key", &body.public_key)?;
    let device = DevicePublicKey::from_bytes(&key)
        .map_err(|_| ApiError::BadRequest("public_key is not a valid Ed25519 key".into()))?;
    // Proof of possession: the request must be signed by the key it registers,
    // not by some other device that is already known.
    if device != signed.public_key {
        return Err(ApiError::BadSignature(
            "a login must be signed by the device key it registers",
        ));
    }
    let device_id = device.device_id().to_string();
    let known = match &signed.username {
        Some(owner) if owner != user => return Err(ApiError::Conflict("device")),
        Some(_) => true,
        None => false,
    };
    if body.recover {
        recovery_proof(&body.proof)?;
    }
    // A password from before OPAQUE, as stored before this login proves it:
    // the record the client sent replaces it once the proof holds.
    let legacy = match (&body.password_record, body.proof.password.is_some()) {
        (Some(_), true) => match stored_password(&state.store, user).await? {
            Some(StoredPassword::Legacy(hash)) => Some(hash),
            _ => None,
        },
        (Some(_), false) => {
            return Err(ApiError::BadRequest(
                "password_record comes with a password from before OPAQUE, and only with it".into(),
            ));
        }
        (None, _) => None,
    };
    let factor = match (body.recovery_invite, body.new_password_record) {
        (Some(invite), Some(record)) => {
            if known {
                return Err(ApiError::BadRequest(
                    "a recovery invite signs in a new device; this one is already registered"
                        .into(),
                ));
            }
            redeem_recovery_invite(state, user, invite, &record, signed.ip).await?;
            None
        }
        (Some(_), None) | (None, Some(_)) => {
            return Err(ApiError::BadRequest(
                "a recovery invite comes with new_password_record, and only with it".into(),
            ));
        }
        (None, None) => {
            let presenter = if known {
                Presenter::KnownDevice(&device_id)
            } else {
                Presenter::NewDevice
            };
            verify_proof(
                state,
                user,
                body.proof,
                signed.ip,
                AuditAction::Login,
                presenter,
                &device_id,
            )
            .await?
        }
    };
    // The old password held: its hash gives way to the record, whether or
    // not this device may sign in.
    if let (Some(old_hash), Some(record)) = (legacy, &body.password_record) {
        upgrade_legacy(state, user, &old_hash, record, &device_id).await?;
    }
    if body.recover && factor != Some(Factor::RecoveryCode) {
        return Err(ApiError::BadRequest(
            "recovering an account needs the password and an unused recovery code".into(),
        ));
    }
    // Without a second factor only an account's first device may sign in:
    // the password alone never adds a device to an account that has one.
    if factor.is_none() && !known && state.store.active_device_count(user).await? > 0 {
        state
            .audit
            .record(
                AuditEvent::failure(AuditAction::Login, user, "new_device_needs_second_factor")
                    .device(&device_id)
                    .from_ip(signed.ip),
            )
            .await?;
        return Err(ApiError::EnrollmentRequired(
            "a new device needs a second factor; enroll TOTP or a passkey on a device you already use",
        ));
    }
    if known {
        if !state.store.start_session(&device_id).await? {
            return Err(ApiError::DeviceRevoked);
        }
    } else {
        // The registration clients check before they trust this key: it
        // lands in the log in the same transaction as the device.
        let registration = state.audit.entry(
            AuditEvent::success(AuditAction::DeviceAdded, user)
                .device(&device_id)
                .target(format!("device:{device_id}"))
                .detail("public_key", hex::encode(&key))
                .from_ip(signed.ip),
        );
        if !state
            .store
            .add_device(user, &device_id, &key, registration)
            .await?
        {
            return Err(ApiError::Conflict("device"));
        }
        state.tell(Notice::DevicesChanged {
            username: user.to_owned(),
        });
    }
    state
        .audit
        .record(
            AuditEvent::success(AuditAction::Login, user)
                .device(&device_id)
                .from_ip(signed.ip),
        )
        .await?;
    let recovery = if body.recover {
        let (outcome, codes) = recover_account(state, user, &device_id, signed.ip).await?;
        Some(recovery_answer(outcome, codes))
    } else {
        None
    };
    Ok(LoginAnswer {
        recovery_codes_left: state.store.recovery_codes_left(user).await?,
        device_id,
        recovery,
        second_factor: factor.map(|f| f.as_str().to_owned()),
        username: user.to_owned(),
    })
}
