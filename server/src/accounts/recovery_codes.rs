//! Recovery codes: made in sets, stored only as argon2id hashes, shown
//! to their owner once.

use conclave_proto::SecretText;
use zeroize::Zeroizing;

use super::factors::{RECOVERY_CODE, RECOVERY_CODES};
use crate::auth::hash_secret;
use crate::error::ApiResult;

/// A fresh set of recovery codes: the codes to show once, and the rows to
/// store (id, argon2id hash of the whole code).
pub(crate) async fn new_recovery_code_set()
-> ApiResult<(Vec<Zeroizing<String>>, Vec<(String, String)>)> {
    let mut codes: Vec<Zeroizing<String>> = Vec::with_capacity(RECOVERY_CODES);
    let mut rows = Vec::with_capacity(RECOVERY_CODES);
    while codes.len() < RECOVERY_CODES {
        let code = RECOVERY_CODE.generate();
        let Some((id, whole)) = RECOVERY_CODE.parse(&code) else {
            continue;
        };
        if rows.iter().any(|(existing, _)| *existing == id) {
            continue;
        }
        rows.push((id, hash_secret(whole).await?));
        codes.push(code);
    }
    Ok((codes, rows))
}

/// Codes to show their owner once, in an answer.
pub(crate) fn shown(codes: Vec<Zeroizing<String>>) -> Vec<SecretText> {
    codes.into_iter().map(SecretText::from).collect()
}
