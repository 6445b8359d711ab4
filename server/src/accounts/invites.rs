//! Invite codes and bot passwords: the API and the admin CLI issue them
//! the same way.

use zeroize::Zeroizing;

use super::factors::INVITE_CODE;
use crate::auth::hash_secret;
use crate::error::{ApiError, ApiResult};
use crate::store::Store;

/// A bot's password: 32 random base64url characters (192 bits).
pub(crate) fn new_bot_password() -> String {
    use base64::Engine;
    use rand::RngCore;
    let mut bytes = [0u8; 24];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// Issues an invite code valid for `ttl` seconds: the code to hand out,
/// its id and when it expires.
pub(crate) async fn issue_invite(
    store: &Store,
    created_by: &str,
    ttl: u64,
) -> ApiResult<(Zeroizing<String>, String, u64)> {
    let code = INVITE_CODE.generate();
    let (id, whole) = INVITE_CODE
        .parse(&code)
        .ok_or_else(|| ApiError::Internal("generated invite code does not parse".into()))?;
    let expires_at = store.clock().unix_now() + ttl;
    store
        .create_invite(&id, &hash_secret(whole).await?, created_by, expires_at)
        .await?;
    Ok((code, id, expires_at))
}
