//! Security alerts: what the owner must look at, kept in the local store
//! until shown.

/// Something the owner must look at: a device this client refused, or a
/// change to who can sign in to the account made elsewhere. Kept in the
/// local store until shown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecurityAlert {
    /// Unix seconds.
    pub at: u64,
    /// What kind of alert.
    pub kind: AlertKind,
    /// The account the device claimed, or this account for a change.
    pub username: String,
    /// The refused device, or the device that made the change (empty for the
    /// host administrator).
    pub device_id: String,
    /// What failed, or what changed.
    pub reason: String,
}

/// The kinds of [`SecurityAlert`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum AlertKind {
    /// A device failed the key-transparency check and was refused.
    KeyTransparency,
    /// Who can sign in to this account changed (a factor, the password, a
    /// recovery), made on another device or by the host administrator.
    AccountChange,
    /// A member sent a checkpoint that contradicts this device's view of
    /// the transparency log: the relay may show people different logs.
    SplitView,
}

impl AlertKind {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            AlertKind::KeyTransparency => "key_transparency",
            AlertKind::AccountChange => "account_change",
            AlertKind::SplitView => "split_view",
        }
    }

    pub(crate) fn parse(text: &str) -> Self {
        match text {
            "account_change" => AlertKind::AccountChange,
            "split_view" => AlertKind::SplitView,
            _ => AlertKind::KeyTransparency,
        }
    }
}
