//! Second factors and one-time codes: TOTP (RFC 6238, through totp-rs),
//! WebAuthn passkeys (through webauthn-rs), recovery and invite codes.

use crate::error::ServerError;
use std::fmt;

use rand::Rng;
use sha2::{Digest, Sha256};
use totp_rs::{Algorithm, Totp};
use webauthn_rs::prelude::{Url, Uuid, Webauthn, WebauthnBuilder};
use zeroize::Zeroizing;

/// Seconds a TOTP code lasts.
pub const TOTP_STEP_SECS: u64 = 30;
/// Steps either side of now that are still accepted (clock drift).
pub const TOTP_SKEW_STEPS: u16 = 1;
/// Bytes of a TOTP secret: 160 bits, as RFC 4226 recommends.
const TOTP_SECRET_BYTES: usize = 20;
/// Seconds a WebAuthn challenge stays answerable.
pub const CHALLENGE_TTL_SECS: u64 = 300;
/// Recovery codes issued at a time.
pub const RECOVERY_CODES: usize = 10;

// ----- TOTP ---------------------------------------------------------------

/// A fresh random TOTP secret.
pub fn new_totp_secret() -> Zeroizing<Vec<u8>> {
    let mut secret = Zeroizing::new(vec![0u8; TOTP_SECRET_BYTES]);
    rand::rngs::OsRng.fill(secret.as_mut_slice());
    secret
}

/// The account's TOTP generator: SHA-1, 6 digits, 30-second steps, the
/// parameters every authenticator app supports.
pub fn totp(secret: &[u8], issuer: &str, username: &str) -> Result<Totp, totp_rs::TotpError> {
    totp_rs::Builder::new()
        .with_algorithm(Algorithm::SHA1)
        .with_digits(6)
        .with_skew(TOTP_SKEW_STEPS)
        .with_step_duration(TOTP_STEP_SECS)
        .with_secret(secret.to_vec())
        .with_issuer(Some(issuer))
        .with_account_name(username)
        .build()
}

/// The time step `code` is valid for at `now`, if it is valid at all.
/// Refusing a step that was used before is the caller's job (the store's
/// compare-and-set), as RFC 6238 §5.2 asks.
pub fn totp_step(totp: &Totp, code: &str, now: u64) -> Option<u64> {
    let code = code.trim();
    if code.len() != 6 || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    totp.check(code, now)
}

// ----- one-time codes -----------------------------------------------------

/// Lower-case base32 without the letters people confuse (i, l, o, u).
const ALPHABET: &[u8; 32] = b"0123456789abcdefghjkmnpqrstvwxyz";

/// A single-use code: a public id that finds its row, then a secret part.
/// Only an argon2id hash of the whole code is stored.
#[derive(Debug, Clone, Copy)]
pub struct CodeShape {
    /// Characters of the lookup id.
    pub id_len: usize,
    /// Characters of the secret part (5 bits each).
    pub secret_len: usize,
}

/// Recovery codes: 20-bit id, 60-bit secret, e.g. `k7m2-xq4p-9d3f-hh2a`.
pub const RECOVERY_CODE: CodeShape = CodeShape {
    id_len: 4,
    secret_len: 12,
};
/// Invite codes: 40-bit id, 80-bit secret.
pub const INVITE_CODE: CodeShape = CodeShape {
    id_len: 8,
    secret_len: 16,
};

impl CodeShape {
    /// A new random code, grouped by four for reading aloud.
    pub fn generate(self) -> Zeroizing<String> {
        let mut rng = rand::rngs::OsRng;
        let raw: Zeroizing<Vec<u8>> = Zeroizing::new(
            (0..self.id_len + self.secret_len)
                .map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())])
                .collect(),
        );
        let mut code = Zeroizing::new(String::with_capacity(raw.len() * 5 / 4));
        for (i, c) in raw.iter().enumerate() {
            if i > 0 && i % 4 == 0 {
                code.push('-');
            }
            code.push(char::from(*c));
        }
        code
    }

    /// Normalizes typed input (case, dashes, spaces) and splits off the id.
    /// `None` if it can't be a code of this shape.
    pub fn parse(self, typed: &str) -> Option<(String, Zeroizing<String>)> {
        let normalized: Zeroizing<String> = Zeroizing::new(
            typed
                .chars()
                .filter(|c| *c != '-' && !c.is_whitespace())
                .map(|c| c.to_ascii_lowercase())
                .collect(),
        );
        let valid = normalized.len() == self.id_len + self.secret_len
            && normalized.bytes().all(|b| ALPHABET.contains(&b));
        valid.then(|| (normalized[..self.id_len].to_owned(), normalized))
    }
}

// ----- WebAuthn -----------------------------------------------------------

/// The relying party: which origin and RP id passkeys are bound to.
pub struct RelyingParty {
    /// The webauthn-rs verifier.
    pub webauthn: Webauthn,
    /// The origin clients must claim.
    pub origin: Url,
}

impl fmt::Debug for RelyingParty {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RelyingParty")
            .field("origin", &self.origin.as_str())
            .finish()
    }
}

impl RelyingParty {
    /// Builds the relying party for `origin` (its host is the RP id).
    pub fn new(origin: &str, name: &str) -> Result<Self, ServerError> {
        let origin = Url::parse(origin)
            .map_err(|e| ServerError::Setting(format!("webauthn_origin {origin:?}: {e}")))?;
        let rp_id = origin
            .domain()
            .ok_or_else(|| {
                ServerError::Setting(
                    "webauthn_origin must name a domain (WebAuthn refuses IP addresses)".into(),
                )
            })?
            .to_owned();
        let webauthn = WebauthnBuilder::new(&rp_id, &origin)
            .and_then(|b| b.rp_name(name).build())
            .map_err(|e| ServerError::Setting(format!("webauthn_origin {origin}: {e}")))?;
        Ok(Self { webauthn, origin })
    }
}

/// The WebAuthn user handle for an account: stable, and not the name itself.
pub fn user_handle(username: &str) -> Uuid {
    let digest = Sha256::digest(format!("conclave user handle\0{username}").as_bytes());
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    Uuid::from_bytes(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6238 Appendix B, with the seed lengths the published codes need
    /// (see `shared/vectors/README.md`): 20 bytes for SHA-1, 32 for SHA-256,
    /// 64 for SHA-512, all the ASCII digits "1234567890" repeated.
    #[test]
    fn rfc6238_appendix_b_vectors() {
        let seed =
            |len: usize| -> Vec<u8> { b"1234567890".iter().cycle().take(len).copied().collect() };
        let cases: &[(u64, &str, &str, &str)] = &[
            (59, "94287082", "46119246", "90693936"),
            (1111111109, "07081804", "68084774", "25091201"),
            (1111111111, "14050471", "67062674", "99943326"),
            (1234567890, "89005924", "91819424", "93441116"),
            (2000000000, "69279037", "90698825", "38618901"),
            (20000000000, "65353130", "77737706", "47863826"),
        ];
        for (time, sha1, sha256, sha512) in cases {
            for (algorithm, len, expected) in [
                (Algorithm::SHA1, 20, sha1),
                (Algorithm::SHA256, 32, sha256),
                (Algorithm::SHA512, 64, sha512),
            ] {
                let totp = totp_rs::Builder::new()
                    .with_algorithm(algorithm)
                    .with_digits(8)
                    .with_step_duration(30)
                    .with_secret(seed(len))
                    .build_noncompliant();
                assert_eq!(
                    totp.generate(*time).to_string(),
                    *expected,
                    "{algorithm:?} at T={time}"
                );
            }
        }
    }

    #[test]
    fn totp_codes_match_their_step_and_nothing_else() {
        let secret = new_totp_secret();
        let totp = totp(&secret, "Conclave", "alice").unwrap();
        let now = 1_800_000_000;
        let code = totp.generate(now).to_string();
        assert_eq!(totp_step(&totp, &code, now), Some(now / 30));
        // Still accepted one step later (drift), not three steps later.
        assert_eq!(totp_step(&totp, &code, now + 30), Some(now / 30));
        assert_eq!(totp_step(&totp, &code, now + 90), None);
        assert_eq!(totp_step(&totp, "12345", now), None);
        assert_eq!(totp_step(&totp, "abcdef", now), None);
        let uri = totp.to_url().unwrap();
        assert!(uri.starts_with("otpauth://totp/Conclave:alice?"), "{uri}");
    }

    #[test]
    fn codes_parse_back_whatever_the_typing() {
        let code = RECOVERY_CODE.generate();
        assert_eq!(code.len(), 19);
        let (id, whole) = RECOVERY_CODE.parse(&code).unwrap();
        assert_eq!(id, code[..4]);
        let shouted = code.to_uppercase().replace('-', " ");
        assert_eq!(RECOVERY_CODE.parse(&shouted).unwrap().1, whole);
        assert!(RECOVERY_CODE.parse("short").is_none());
        assert!(RECOVERY_CODE.parse("iiii-iiii-iiii-iiii").is_none());
        assert_ne!(INVITE_CODE.generate(), INVITE_CODE.generate());
        assert_eq!(
            format!("{:?}", conclave_proto::SecretText::new("123456".into())),
            "SecretText(<redacted>)"
        );
    }

    #[test]
    fn relying_party_needs_a_domain() {
        assert!(RelyingParty::new("https://localhost:8443", "Conclave").is_ok());
        let err = RelyingParty::new("https://127.0.0.1:8443", "Conclave").unwrap_err();
        assert!(
            matches!(&err, ServerError::Setting(m) if m.contains("domain")),
            "{err}"
        );
    }
}
