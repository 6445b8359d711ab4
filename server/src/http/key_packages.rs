//! `POST /v1/key-packages`, `GET /v1/key-packages/stock` and
//! `POST /v1/key-packages/claim`: devices stock their MLS key packages,
//! and whoever adds a device to a group claims one of its packages.

use axum::Json;
use axum::extract::State;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use conclave_proto::{
    ClaimedKeyPackage, ClaimedKeyPackages, KeyPackageClaim, KeyPackageStock, KeyPackageUpload,
};

use crate::auth::Signed;
use crate::error::{ApiError, ApiResult};
use crate::error::{decode_b64, username_in};
use crate::events::{AuditAction, AuditEvent};
use crate::limits::{self, ip_key};
use crate::relay::key_packages::MAX_KEY_PACKAGE_STOCK;
use crate::relay::mls;
use crate::store::{KeyPackagesAdded, NewKeyPackage};
use crate::{AppState, Notice};

/// Most key packages one upload may carry.
const MAX_UPLOAD: usize = 200;

pub(crate) async fn upload_key_packages(
    State(state): State<AppState>,
    signed: Signed,
) -> ApiResult<Json<KeyPackageStock>> {
    // Each accepted upload is stored and logged: limit how fast a device
    // may make them, before any parsing.
    limits::count(
        &state,
        limits::KEY_PACKAGE_UPLOADS_PER_DEVICE,
        &signed.device_id.to_string(),
    )
    .await?;
    let body: KeyPackageUpload = signed.json()?;
    if body.key_packages.is_empty() || body.key_packages.len() > MAX_UPLOAD {
        return Err(ApiError::BadRequest(format!(
            "upload 1 to {MAX_UPLOAD} key packages at a time"
        )));
    }
    let user = signed.username()?;
    let now = state.config.clock.unix_now();
    let mut packages = Vec::with_capacity(body.key_packages.len());
    for encoded in &body.key_packages {
        let bytes = decode_b64("key_packages[]", encoded)?;
        let checked = mls::check_key_package(&bytes)?;
        if checked.credential.device() != signed.device_id
            || checked.credential.user().as_str() != user
            || checked.signature_key != signed.public_key.to_bytes()
        {
            return Err(ApiError::InvalidMls(
                "key package credential or signature key is not this device's".into(),
            ));
        }
        let owner = state.store.bot_owner(user).await?;
        if checked.credential.bot_owner().map(|o| o.as_str()) != owner.as_deref() {
            return Err(ApiError::InvalidMls(
                "key package credential's bot mark is not this account's".into(),
            ));
        }
        if checked.not_after <= now {
            return Err(ApiError::InvalidMls("key package has expired".into()));
        }
        packages.push(NewKeyPackage {
            bytes,
            last_resort: checked.last_resort,
            expires_at: checked.not_after,
        });
    }
    let device = signed.device_id.to_string();
    let (had_one_time, had_last_resort) = state.store.key_package_stock(&device).await?;
    let last_resort = packages.iter().filter(|p| p.last_resort).count();
    let uploaded = state.audit.entry(
        AuditEvent::success(AuditAction::KeyPackagesUploaded, user)
            .device(&device)
            .detail("count", packages.len())
            .detail("last_resort", last_resort),
    );
    match state
        .store
        .add_key_packages(&device, &packages, MAX_KEY_PACKAGE_STOCK, uploaded)
        .await?
    {
        KeyPackagesAdded::Added => {}
        KeyPackagesAdded::Duplicate => return Err(ApiError::DuplicateKeyPackage),
        KeyPackagesAdded::StockFull { stocked } => {
            return Err(ApiError::KeyPackageStockFull {
                stocked,
                max: MAX_KEY_PACKAGE_STOCK,
            });
        }
    }
    if had_one_time == 0 && !had_last_resort {
        // A new device's first packages: its account's other devices can
        // now add it to their channels.
        state.tell(Notice::DevicesChanged {
            username: user.to_owned(),
        });
    }
    state.relay().key_package_stock(&device).await.map(Json)
}

pub(crate) async fn key_package_stock(
    State(state): State<AppState>,
    signed: Signed,
) -> ApiResult<Json<KeyPackageStock>> {
    signed.username()?;
    state
        .relay()
        .key_package_stock(&signed.device_id.to_string())
        .await
        .map(Json)
}

pub(crate) async fn claim_key_packages(
    State(state): State<AppState>,
    signed: Signed,
) -> ApiResult<Json<ClaimedKeyPackages>> {
    let claimer = signed.username()?;
    // Every claim spends one of someone's one-time packages: limit how fast.
    limits::count(&state, limits::CLAIMS_PER_ACCOUNT, claimer).await?;
    limits::count(&state, limits::CLAIMS_PER_IP, &ip_key(signed.ip)).await?;
    let body: KeyPackageClaim = signed.json()?;
    let name = username_in(&body.username)?;
    // And how often one account may drain one other account's packages.
    limits::count(
        &state,
        limits::CLAIMS_PER_TARGET,
        &format!("{claimer}>{}", name.as_str()),
    )
    .await?;
    let claimed = state
        .store
        .claim_key_packages(name.as_str(), body.device_id.as_deref())
        .await?;
    if claimed.is_empty() {
        // Only the empty answer pays for the look-up that tells the two apart.
        if state.store.password_hash(name.as_str()).await?.is_none() {
            return Err(ApiError::NotFound("user"));
        }
        return Err(ApiError::NoKeyPackages(name.to_string()));
    }
    let key_packages = claimed
        .into_iter()
        .map(|(device_id, kp)| ClaimedKeyPackage {
            device_id,
            key_package: STANDARD.encode(kp),
        })
        .collect();
    Ok(Json(ClaimedKeyPackages { key_packages }))
}
