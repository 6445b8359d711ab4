//! Key packages: a device uploads its own, and whoever adds a user's
//! devices to a group claims one of each.
//!
//! The stock a device holds is [`KeyPackageStock`](crate::KeyPackageStock),
//! which a fetch reports too.

use serde::{Deserialize, Serialize};

/// `POST /v1/key-packages`: up to 200 of the signing device's key packages
/// (MLS messages, base64). Answered with its new
/// [`KeyPackageStock`](crate::KeyPackageStock).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyPackageUpload {
    /// The packages.
    pub key_packages: Vec<String>,
}

/// `POST /v1/key-packages/claim`: one key package of each of a user's
/// devices, or of one of them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyPackageClaim {
    /// Only this device of the user (hex id): to add one's own new device.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_id: Option<String>,
    /// The user.
    pub username: String,
}

/// The answer to [`KeyPackageClaim`]: never empty (a user with no package
/// to hand out is answered `no_key_packages`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClaimedKeyPackages {
    /// One per device.
    pub key_packages: Vec<ClaimedKeyPackage>,
}

/// One device's claimed key package.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClaimedKeyPackage {
    /// The device's hex id.
    pub device_id: String,
    /// The key package (an MLS message), base64.
    pub key_package: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pinned;

    #[test]
    fn uploads_and_claims_are_pinned() {
        pinned(
            &KeyPackageUpload {
                key_packages: vec!["S1A=".into()],
            },
            r#"{"key_packages":["S1A="]}"#,
        );
        pinned(
            &KeyPackageClaim {
                device_id: None,
                username: "bob".into(),
            },
            r#"{"username":"bob"}"#,
        );
        pinned(
            &KeyPackageClaim {
                device_id: Some("d1".into()),
                username: "bob".into(),
            },
            r#"{"device_id":"d1","username":"bob"}"#,
        );
        pinned(
            &ClaimedKeyPackages {
                key_packages: vec![ClaimedKeyPackage {
                    device_id: "d1".into(),
                    key_package: "S1A=".into(),
                }],
            },
            r#"{"key_packages":[{"device_id":"d1","key_package":"S1A="}]}"#,
        );
    }
}
