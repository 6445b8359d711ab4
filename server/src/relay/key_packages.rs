//! Key package stock: how many a device still has on the relay.

use conclave_proto::KeyPackageStock;

use super::Relay;
use crate::error::ApiResult;

/// Most unused one-time key packages one device may hold. Clients keep 40
/// (refilling below 10); the cap bounds what a flood of uploads can store.
pub const MAX_KEY_PACKAGE_STOCK: u64 = 200;

impl Relay<'_> {
    /// The unused key packages `device` has on the relay.
    pub(crate) async fn key_package_stock(&self, device: &str) -> ApiResult<KeyPackageStock> {
        let (one_time, last_resort) = self.store.key_package_stock(device).await?;
        Ok(KeyPackageStock {
            last_resort,
            one_time,
        })
    }
}
