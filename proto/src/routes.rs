//! The route paths of the relay protocol, as the relay registers them and
//! the client calls them.
//!
//! A path with a parameter comes twice: as the template the relay's router
//! takes (`{group_id}`), and as a function that fills it in. A path with a
//! query has a function that writes the query (its type names the fields).
//! Every request but registration (and its password setup), the WebAuthn
//! challenge and the health checks is signed by a device.

// ----- health -----------------------------------------------------------------

/// `GET` (unsigned): the process answers ([`HealthAnswer`](crate::HealthAnswer)).
pub const HEALTHZ: &str = "/healthz";

/// `GET` (unsigned): [`HEALTHZ`] under the protocol's prefix.
pub const HEALTH: &str = "/v1/health";

/// `GET` (unsigned): ready for traffic, 200, or not, 503
/// ([`HealthAnswer`](crate::HealthAnswer)).
pub const READYZ: &str = "/readyz";

// ----- accounts -----------------------------------------------------------------

/// `POST` (unsigned): creates an account ([`RegisterBody`](crate::RegisterBody) →
/// [`RegisterAnswer`](crate::RegisterAnswer)).
pub const ACCOUNTS: &str = "/v1/accounts";

/// `POST` (unsigned): the first half of setting a password for a new or a
/// locked account ([`PasswordSetupBody`](crate::PasswordSetupBody) →
/// [`PasswordSetupAnswer`](crate::PasswordSetupAnswer)).
pub const ACCOUNTS_PASSWORD: &str = "/v1/accounts/password";

/// `POST`: starts an OPAQUE password proof, signed by the key that will
/// present it ([`PasswordLoginBody`](crate::PasswordLoginBody) →
/// [`PasswordLoginAnswer`](crate::PasswordLoginAnswer)).
pub const PASSWORD_LOGIN: &str = "/v1/password/login";

/// `POST`: for an account whose password predates OPAQUE, the first half of
/// the record that replaces it, signed like [`PASSWORD_LOGIN`]
/// ([`LegacyUpgradeBody`](crate::LegacyUpgradeBody) →
/// [`PasswordSetupAnswer`](crate::PasswordSetupAnswer)).
pub const PASSWORD_UPGRADE: &str = "/v1/password/upgrade";

/// `POST`: a login, signed by the key it registers ([`LoginBody`](crate::LoginBody) →
/// [`LoginAnswer`](crate::LoginAnswer)); `GET`: the account's devices
/// ([`DeviceList`](crate::DeviceList)).
pub const DEVICES: &str = "/v1/devices";

/// `POST`: revokes a device (a [`Proof`](crate::Proof), or nothing for the
/// signing device itself → [`RevokedAnswer`](crate::RevokedAnswer)); the
/// router's template.
pub const DEVICE_REVOKE: &str = "/v1/devices/{device_id}/revoke";

/// `POST` (unsigned): starts a passkey authentication
/// ([`WebauthnChallengeBody`](crate::WebauthnChallengeBody) →
/// [`WebauthnChallenge`](crate::WebauthnChallenge)).
pub const WEBAUTHN_CHALLENGE: &str = "/v1/auth/webauthn/challenge";

/// `GET`: the account's roles, factors and policy
/// ([`AccountStatus`](crate::AccountStatus)).
pub const ACCOUNT: &str = "/v1/account";

/// `POST`: a new password ([`PasswordChangeBody`](crate::PasswordChangeBody) →
/// [`PasswordChangeAnswer`](crate::PasswordChangeAnswer)).
pub const ACCOUNT_PASSWORD: &str = "/v1/account/password";

/// `POST`: the first half of a new password
/// ([`NewPasswordSetupBody`](crate::NewPasswordSetupBody) →
/// [`PasswordSetupAnswer`](crate::PasswordSetupAnswer)).
pub const ACCOUNT_PASSWORD_SETUP: &str = "/v1/account/password/setup";

/// `POST`: starts a TOTP enrollment (a [`Proof`](crate::Proof) →
/// [`TotpEnrollmentAnswer`](crate::TotpEnrollmentAnswer)); `DELETE`: removes
/// TOTP (a [`Proof`](crate::Proof) → [`FactorRemovedAnswer`](crate::FactorRemovedAnswer)).
pub const ACCOUNT_TOTP: &str = "/v1/account/totp";

/// `POST`: confirms a TOTP enrollment ([`TotpConfirmBody`](crate::TotpConfirmBody) →
/// [`RecoveryCodesAnswer`](crate::RecoveryCodesAnswer)).
pub const ACCOUNT_TOTP_CONFIRM: &str = "/v1/account/totp/confirm";

/// `POST`: starts a passkey registration (a [`Proof`](crate::Proof) →
/// [`WebauthnChallenge`](crate::WebauthnChallenge)).
pub const ACCOUNT_WEBAUTHN_REGISTER: &str = "/v1/account/webauthn/register";

/// `POST`: finishes it ([`PasskeyRegistrationBody`](crate::PasskeyRegistrationBody) →
/// [`PasskeyAddedAnswer`](crate::PasskeyAddedAnswer)).
pub const ACCOUNT_WEBAUTHN_REGISTER_FINISH: &str = "/v1/account/webauthn/register/finish";

/// `DELETE`: removes a passkey (a [`Proof`](crate::Proof) →
/// [`FactorRemovedAnswer`](crate::FactorRemovedAnswer)); the router's template.
pub const ACCOUNT_PASSKEY: &str = "/v1/account/webauthn/{credential_id}";

/// `POST`: replaces the recovery codes (a [`Proof`](crate::Proof) →
/// [`RecoveryCodesAnswer`](crate::RecoveryCodesAnswer)).
pub const ACCOUNT_RECOVERY_CODES: &str = "/v1/account/recovery-codes";

/// `POST`: takes the account back (a [`Proof`](crate::Proof) of password and
/// recovery code → [`RecoveryAnswer`](crate::RecoveryAnswer)).
pub const ACCOUNT_RECOVER: &str = "/v1/account/recover";

/// `POST`: a new invite code, for admins ([`InviteBody`](crate::InviteBody) →
/// [`InviteAnswer`](crate::InviteAnswer)).
pub const ADMIN_INVITES: &str = "/v1/admin/invites";

/// [`DEVICE_REVOKE`] for one device (its hex id).
pub fn device_revoke(device_id: &str) -> String {
    format!("/v1/devices/{device_id}/revoke")
}

/// [`ACCOUNT_PASSKEY`] for one passkey (its base64url id).
pub fn account_passkey(credential_id: &str) -> String {
    format!("/v1/account/webauthn/{credential_id}")
}

// ----- key packages ---------------------------------------------------------------

/// `POST`: uploads key packages ([`KeyPackageUpload`](crate::KeyPackageUpload) →
/// [`KeyPackageStock`](crate::KeyPackageStock)).
pub const KEY_PACKAGES: &str = "/v1/key-packages";

/// `GET`: this device's key packages on the relay
/// ([`KeyPackageStock`](crate::KeyPackageStock)).
pub const KEY_PACKAGE_STOCK: &str = "/v1/key-packages/stock";

/// `POST`: claims a user's key packages ([`KeyPackageClaim`](crate::KeyPackageClaim) →
/// [`ClaimedKeyPackages`](crate::ClaimedKeyPackages)).
pub const KEY_PACKAGES_CLAIM: &str = "/v1/key-packages/claim";

// ----- groups and channels ------------------------------------------------------------

/// `POST`: creates a group ([`CreateGroupBody`](crate::CreateGroupBody) →
/// [`CreateGroupAnswer`](crate::CreateGroupAnswer)).
pub const GROUPS: &str = "/v1/groups";

/// `POST`: an MLS message for a group ([`PostMessage`](crate::PostMessage) →
/// [`PostAnswer`](crate::PostAnswer)); the router's template.
pub const GROUP_MESSAGES: &str = "/v1/groups/{group_id}/messages";

/// `POST` (no body): archives a group ([`ArchiveAnswer`](crate::ArchiveAnswer));
/// the router's template.
pub const GROUP_ARCHIVE: &str = "/v1/groups/{group_id}/archive";

/// `POST`: a group's retention ([`GroupRetentionBody`](crate::GroupRetentionBody) →
/// [`GroupRetentionAnswer`](crate::GroupRetentionAnswer)); the router's template.
pub const GROUP_RETENTION: &str = "/v1/groups/{group_id}/retention";

/// `GET`: what joining a public channel needs
/// ([`GroupInfoAnswer`](crate::GroupInfoAnswer)); the router's template.
pub const GROUP_INFO: &str = "/v1/groups/{group_id}/group-info";

/// `POST`: whether members may share history with new members
/// ([`HistorySharingBody`](crate::HistorySharingBody) →
/// [`HistorySharingAnswer`](crate::HistorySharingAnswer)); the router's template.
pub const GROUP_HISTORY_SHARING: &str = "/v1/groups/{group_id}/history-sharing";

/// `POST`: a public channel's listed topic ([`ChannelTopicBody`](crate::ChannelTopicBody) →
/// [`ChannelTopicAnswer`](crate::ChannelTopicAnswer)); the router's template.
pub const GROUP_TOPIC: &str = "/v1/groups/{group_id}/topic";

/// `POST`: a public channel's listed name ([`ChannelNameBody`](crate::ChannelNameBody) →
/// [`ChannelNameAnswer`](crate::ChannelNameAnswer)); the router's template.
pub const GROUP_NAME: &str = "/v1/groups/{group_id}/name";

/// `GET`: the workspace's public channels ([`PublicChannels`](crate::PublicChannels)).
pub const PUBLIC_CHANNELS: &str = "/v1/channels/public";

/// `GET`: the workspace's slash commands ([`SlashCommands`](crate::SlashCommands)).
pub const COMMANDS: &str = "/v1/commands";

/// [`GROUP_MESSAGES`] for one group (its hex id).
pub fn group_messages(group_id: &str) -> String {
    format!("/v1/groups/{group_id}/messages")
}

/// [`GROUP_ARCHIVE`] for one group.
pub fn group_archive(group_id: &str) -> String {
    format!("/v1/groups/{group_id}/archive")
}

/// [`GROUP_RETENTION`] for one group.
pub fn group_retention(group_id: &str) -> String {
    format!("/v1/groups/{group_id}/retention")
}

/// [`GROUP_INFO`] for one group.
pub fn group_info(group_id: &str) -> String {
    format!("/v1/groups/{group_id}/group-info")
}

/// [`GROUP_HISTORY_SHARING`] for one group.
pub fn group_history_sharing(group_id: &str) -> String {
    format!("/v1/groups/{group_id}/history-sharing")
}

/// [`GROUP_TOPIC`] for one group.
pub fn group_topic(group_id: &str) -> String {
    format!("/v1/groups/{group_id}/topic")
}

/// [`GROUP_NAME`] for one group.
pub fn group_name(group_id: &str) -> String {
    format!("/v1/groups/{group_id}/name")
}

// ----- messages -----------------------------------------------------------------------

/// `GET`: the messages pending for this device ([`FetchAnswer`](crate::FetchAnswer)),
/// with an optional [`FetchQuery`](crate::FetchQuery).
pub const MESSAGES: &str = "/v1/messages";

/// `POST`: acknowledges messages ([`AckBody`](crate::AckBody) →
/// [`AckAnswer`](crate::AckAnswer)).
pub const MESSAGES_ACK: &str = "/v1/messages/ack";

/// `GET`: the push stream, a WebSocket of [`StreamFrame`](crate::StreamFrame)s.
pub const STREAM: &str = "/v1/stream";

/// [`MESSAGES`] asking for at most `limit` messages.
pub fn messages_page(limit: u32) -> String {
    format!("{MESSAGES}?limit={limit}")
}

// ----- attachments ----------------------------------------------------------------------

/// `POST`: room for a sealed file ([`CreateBlobBody`](crate::CreateBlobBody) →
/// [`CreateBlobAnswer`](crate::CreateBlobAnswer)).
pub const BLOBS: &str = "/v1/blobs";

/// `GET`: the account's storage ([`BlobUsage`](crate::BlobUsage)).
pub const BLOB_USAGE: &str = "/v1/blobs/usage";

/// `DELETE`: the uploader takes a blob back
/// ([`BlobDeletedAnswer`](crate::BlobDeletedAnswer)); the router's template.
pub const BLOB: &str = "/v1/blobs/{blob_id}";

/// `POST` (no body): every chunk is there
/// ([`BlobCompleteAnswer`](crate::BlobCompleteAnswer)); the router's template.
pub const BLOB_COMPLETE: &str = "/v1/blobs/{blob_id}/complete";

/// `PUT`: a sealed chunk, the raw body ([`ChunkStoredAnswer`](crate::ChunkStoredAnswer));
/// `GET`: the sealed chunk, raw; the router's template.
pub const BLOB_CHUNK: &str = "/v1/blobs/{blob_id}/chunks/{index}";

/// [`BLOB`] for one blob (its hex id).
pub fn blob(blob_id: &str) -> String {
    format!("/v1/blobs/{blob_id}")
}

/// [`BLOB_COMPLETE`] for one blob.
pub fn blob_complete(blob_id: &str) -> String {
    format!("/v1/blobs/{blob_id}/complete")
}

/// [`BLOB_CHUNK`] for one chunk of a blob.
pub fn blob_chunk(blob_id: &str, index: impl std::fmt::Display) -> String {
    format!("/v1/blobs/{blob_id}/chunks/{index}")
}

// ----- the transparency log -------------------------------------------------------------

/// `GET`: the latest signed checkpoint, as note text.
pub const AUDIT_CHECKPOINT: &str = "/v1/audit/checkpoint";

/// `GET`: the log's verifier key, as a text line.
pub const AUDIT_KEY: &str = "/v1/audit/key";

/// `GET`: the log key's rotations ([`KeyRotations`](crate::KeyRotations)).
pub const AUDIT_KEY_ROTATIONS: &str = "/v1/audit/key-rotations";

/// `GET`: the workspace's witness policy
/// ([`WitnessPolicy`](crate::WitnessPolicy)).
pub const AUDIT_WITNESSES: &str = "/v1/audit/witnesses";

/// `GET`: one device's registration proof, with a
/// [`DeviceProofQuery`](crate::DeviceProofQuery)
/// ([`DeviceProofAnswer`](crate::DeviceProofAnswer)); the router's template.
pub const AUDIT_DEVICE: &str = "/v1/audit/devices/{username}/{device_id}";

/// `POST`: many devices' registration proofs
/// ([`DeviceProofsBody`](crate::DeviceProofsBody) →
/// [`DeviceProofsAnswer`](crate::DeviceProofsAnswer)).
pub const AUDIT_DEVICES: &str = "/v1/audit/devices";

/// `GET`: log entries, for auditors ([`AuditEntriesQuery`](crate::AuditEntriesQuery) →
/// [`AuditEntriesAnswer`](crate::AuditEntriesAnswer)).
pub const AUDIT_ENTRIES: &str = "/v1/audit/entries";

/// `GET`: an inclusion proof, for auditors
/// ([`InclusionProofQuery`](crate::InclusionProofQuery) →
/// [`InclusionProofAnswer`](crate::InclusionProofAnswer)).
pub const AUDIT_INCLUSION: &str = "/v1/audit/proof/inclusion";

/// `GET`: a consistency proof, for any signed-in device
/// ([`ConsistencyProofQuery`](crate::ConsistencyProofQuery) →
/// [`ConsistencyProofAnswer`](crate::ConsistencyProofAnswer)).
pub const AUDIT_CONSISTENCY: &str = "/v1/audit/proof/consistency";

/// `GET`, no signature: the latest signed checkpoint, at the C2SP
/// tlog-tiles path under the log's prefix `/log/`.
pub const LOG_CHECKPOINT: &str = "/log/checkpoint";

/// `GET`, no signature: a hash tile (`/log/tile/<L>/<N>[.p/<W>]`) or an
/// entry bundle (`/log/tile/entries/<N>[.p/<W>]`), C2SP tlog-tiles; the
/// router's template.
pub const LOG_TILE: &str = "/log/tile/{*path}";

/// [`AUDIT_DEVICE`] for one device, for a client that holds a checkpoint of
/// `since` entries.
pub fn audit_device(username: &str, device_id: &str, since: u64) -> String {
    format!("/v1/audit/devices/{username}/{device_id}?since={since}")
}

/// [`AUDIT_ENTRIES`] from `start` up to `end`.
pub fn audit_entries(start: u64, end: u64) -> String {
    format!("{AUDIT_ENTRIES}?start={start}&end={end}")
}

/// [`AUDIT_INCLUSION`] of entry `index` in the tree of `size` entries.
pub fn audit_inclusion(index: u64, size: u64) -> String {
    format!("{AUDIT_INCLUSION}?index={index}&size={size}")
}

/// [`AUDIT_CONSISTENCY`] from `old` to `new` entries.
pub fn audit_consistency(old: u64, new: u64) -> String {
    format!("{AUDIT_CONSISTENCY}?old={old}&new={new}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_pinned() {
        assert_eq!(HEALTHZ, "/healthz");
        assert_eq!(HEALTH, "/v1/health");
        assert_eq!(READYZ, "/readyz");

        assert_eq!(ACCOUNTS, "/v1/accounts");
        assert_eq!(DEVICES, "/v1/devices");
        assert_eq!(device_revoke("d1"), "/v1/devices/d1/revoke");
        assert_eq!(WEBAUTHN_CHALLENGE, "/v1/auth/webauthn/challenge");
        assert_eq!(ACCOUNT, "/v1/account");
        assert_eq!(ACCOUNT_PASSWORD, "/v1/account/password");
        assert_eq!(ACCOUNT_TOTP, "/v1/account/totp");
        assert_eq!(ACCOUNT_TOTP_CONFIRM, "/v1/account/totp/confirm");
        assert_eq!(ACCOUNT_WEBAUTHN_REGISTER, "/v1/account/webauthn/register");
        assert_eq!(
            ACCOUNT_WEBAUTHN_REGISTER_FINISH,
            "/v1/account/webauthn/register/finish"
        );
        assert_eq!(account_passkey("k-1"), "/v1/account/webauthn/k-1");
        assert_eq!(ACCOUNT_RECOVERY_CODES, "/v1/account/recovery-codes");
        assert_eq!(ACCOUNT_RECOVER, "/v1/account/recover");
        assert_eq!(ADMIN_INVITES, "/v1/admin/invites");

        assert_eq!(KEY_PACKAGES, "/v1/key-packages");
        assert_eq!(KEY_PACKAGE_STOCK, "/v1/key-packages/stock");
        assert_eq!(KEY_PACKAGES_CLAIM, "/v1/key-packages/claim");

        assert_eq!(GROUPS, "/v1/groups");
        assert_eq!(group_messages("ab01"), "/v1/groups/ab01/messages");
        assert_eq!(group_archive("ab01"), "/v1/groups/ab01/archive");
        assert_eq!(group_retention("ab01"), "/v1/groups/ab01/retention");
        assert_eq!(group_info("ab01"), "/v1/groups/ab01/group-info");
        assert_eq!(
            group_history_sharing("ab01"),
            "/v1/groups/ab01/history-sharing"
        );
        assert_eq!(group_topic("ab01"), "/v1/groups/ab01/topic");
        assert_eq!(group_name("ab01"), "/v1/groups/ab01/name");
        assert_eq!(PUBLIC_CHANNELS, "/v1/channels/public");
        assert_eq!(COMMANDS, "/v1/commands");

        assert_eq!(MESSAGES, "/v1/messages");
        assert_eq!(MESSAGES_ACK, "/v1/messages/ack");
        assert_eq!(STREAM, "/v1/stream");
        assert_eq!(messages_page(200), "/v1/messages?limit=200");

        assert_eq!(BLOBS, "/v1/blobs");
        assert_eq!(BLOB_USAGE, "/v1/blobs/usage");
        assert_eq!(blob("0f"), "/v1/blobs/0f");
        assert_eq!(blob_complete("0f"), "/v1/blobs/0f/complete");
        assert_eq!(blob_chunk("0f", 3), "/v1/blobs/0f/chunks/3");

        assert_eq!(AUDIT_CHECKPOINT, "/v1/audit/checkpoint");
        assert_eq!(AUDIT_KEY, "/v1/audit/key");
        assert_eq!(
            audit_device("bob", "d1", 4),
            "/v1/audit/devices/bob/d1?since=4"
        );
        assert_eq!(AUDIT_DEVICES, "/v1/audit/devices");
        assert_eq!(audit_entries(0, 10), "/v1/audit/entries?start=0&end=10");
        assert_eq!(
            audit_inclusion(3, 8),
            "/v1/audit/proof/inclusion?index=3&size=8"
        );
        assert_eq!(
            audit_consistency(2, 8),
            "/v1/audit/proof/consistency?old=2&new=8"
        );
    }

    #[test]
    fn each_function_fills_in_its_template() {
        assert_eq!(device_revoke("{device_id}"), DEVICE_REVOKE);
        assert_eq!(account_passkey("{credential_id}"), ACCOUNT_PASSKEY);
        assert_eq!(group_messages("{group_id}"), GROUP_MESSAGES);
        assert_eq!(group_archive("{group_id}"), GROUP_ARCHIVE);
        assert_eq!(group_retention("{group_id}"), GROUP_RETENTION);
        assert_eq!(group_info("{group_id}"), GROUP_INFO);
        assert_eq!(group_history_sharing("{group_id}"), GROUP_HISTORY_SHARING);
        assert_eq!(group_topic("{group_id}"), GROUP_TOPIC);
        assert_eq!(group_name("{group_id}"), GROUP_NAME);
        assert_eq!(blob("{blob_id}"), BLOB);
        assert_eq!(blob_complete("{blob_id}"), BLOB_COMPLETE);
        assert_eq!(blob_chunk("{blob_id}", "{index}"), BLOB_CHUNK);
        assert_eq!(
            audit_device("{username}", "{device_id}", 0),
            format!("{AUDIT_DEVICE}?since=0")
        );
    }
}
