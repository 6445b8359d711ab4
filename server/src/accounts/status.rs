//! What an account's device may know about its account.

use conclave_proto::{AccountStatus, DEFAULT_MAX_GROUP_DM, PasskeyInfo};

use crate::AppState;
use crate::auth::Signed;
use crate::error::ApiResult;

/// The account as its device may see it: factors, devices, policy.
pub(crate) async fn account_status(state: &AppState, signed: Signed) -> ApiResult<AccountStatus> {
    let user = signed.username()?;
    let store = &state.store;
    let totp = store.totp(user).await?;
    let passkeys = store
        .webauthn_credentials(user)
        .await?
        .into_iter()
        .map(|c| PasskeyInfo {
            credential_id: c.credential_id,
            name: c.name,
        })
        .collect();
    let bot_owner = store.bot_owner(user).await?;
    // A bot signs in with its admin-issued 192-bit password alone: it runs
    // unattended, where a second factor would sit beside the password.
    let required = bot_owner.is_none()
        && store.setting("require_second_factor").await?.as_deref() == Some("true");
    let max_group_dm: u32 = store
        .setting("max_group_dm")
        .await?
        .and_then(|v| v.parse().ok())
        .unwrap_or(DEFAULT_MAX_GROUP_DM);
    Ok(AccountStatus {
        bot_owner,
        max_group_dm,
        passwordless: store.passwordless(user).await?,
        recovery_codes_left: store.recovery_codes_left(user).await?,
        roles: store.roles(user).await?,
        second_factor_required: required,
        totp: totp.as_ref().is_some_and(|t| t.confirmed),
        totp_pending: totp.as_ref().is_some_and(|t| !t.confirmed),
        username: user.to_owned(),
        webauthn: passkeys,
    })
}
