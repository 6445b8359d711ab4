//! A change to who can sign in to an account (a factor added or removed, a
//! new password, a device revoked, a recovery), applied in one transaction
//! with its audit entries, then announced to the account's devices.

use crate::error::ApiResult;
use crate::events::AuditEvent;
use crate::store::{AccountChange, ChangeOutcome};
use crate::{AppState, Notice};

/// Applies a change to who can sign in to `user`'s account, together with
/// its audit entries and the notice its devices are shown, then tells the
/// account's devices (and ends the streams of devices it cut off).
pub(crate) async fn apply_change(
    state: &AppState,
    user: &str,
    change: AccountChange<'_>,
    by_device: Option<&str>,
    events: impl FnOnce(&ChangeOutcome) -> Vec<AuditEvent>,
) -> ApiResult<ChangeOutcome> {
    let audit = &state.audit;
    let outcome = state
        .store
        .change_account(user, change, by_device, |outcome| {
            events(outcome)
                .into_iter()
                .map(|event| audit.entry(event))
                .collect()
        })
        .await?;
    if outcome.applied {
        for device_id in &outcome.devices_ended {
            state.tell(Notice::SessionEnded {
                device_id: device_id.clone(),
            });
        }
        state.tell(Notice::DevicesChanged {
            username: user.to_owned(),
        });
    }
    Ok(outcome)
}
