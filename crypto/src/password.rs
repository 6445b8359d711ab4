//! Passwords as OPAQUE (RFC 9807), so that the relay never sees one.
//!
//! The relay keeps, per account, an OPAQUE *registration record*: the
//! client's public key and an envelope sealed under a key only the password
//! and the relay's OPRF key together can rebuild. Logging in is a key
//! exchange in which the client proves it could rebuild that key. Nothing
//! that crosses the wire, and nothing in the relay's database alone, lets
//! anyone test a password guess offline: that needs the OPRF key as well
//! (kept in the relay's key directory, see [`PasswordServer`]), and then
//! still costs one argon2id run per guess per account ([`key_stretching`]).
//!
//! Both halves live here, as bytes in and bytes out, so the relay and
//! `client-core` share one definition of the suite and its parameters:
//!
//! ```
//! use conclave_crypto::password::{PasswordLogin, PasswordRegistration, PasswordServer};
//!
//! let relay = PasswordServer::generate();
//! // Registration: two messages, and the relay keeps the record.
//! let (registration, request) = PasswordRegistration::start(b"correct horse").unwrap();
//! let response = relay.registration_response(&request, "alice").unwrap();
//! let upload = registration.finish(b"correct horse", &response, "alice").unwrap();
//! let record = relay.record(&upload).unwrap();
//!
//! // Login: the relay learns only whether the client knew the password.
//! let (login, ke1) = PasswordLogin::start(b"correct horse").unwrap();
//! let (pending, ke2) = relay.start_login(Some(&record), &ke1, "alice").unwrap();
//! let ke3 = login.finish(b"correct horse", &ke2, "alice").unwrap().expect("right password");
//! assert!(relay.finish_login(&pending, &ke3, "alice"));
//!
//! // A wrong password opens nothing, on the client's side.
//! let (login, ke1) = PasswordLogin::start(b"wrong horse").unwrap();
//! let (_, ke2) = relay.start_login(Some(&record), &ke1, "alice").unwrap();
//! assert!(login.finish(b"wrong horse", &ke2, "alice").unwrap().is_none());
//! ```

use argon2::{Algorithm, Argon2, Params, Version};
use opaque_ke::errors::ProtocolError;
use opaque_ke::{
    CipherSuite, ClientLogin, ClientLoginFinishParameters, ClientRegistration,
    ClientRegistrationFinishParameters, CredentialFinalization, CredentialRequest,
    CredentialResponse, Identifiers, RegistrationRequest, RegistrationResponse, RegistrationUpload,
    Ristretto255, ServerLogin, ServerLoginParameters, ServerRegistration, ServerSetup, TripleDh,
};
use rand::rngs::OsRng;
use zeroize::Zeroizing;

use crate::Error;

/// The OPAQUE suite: ristretto255 for the OPRF and for the 3DH key
/// exchange (with SHA-512), argon2id to stretch the OPRF output.
#[derive(Debug)]
pub struct PasswordSuite;

impl CipherSuite for PasswordSuite {
    type OprfCs = Ristretto255;
    type KeyExchange = TripleDh<Ristretto255, sha2::Sha512>;
    type Ksf = Argon2<'static>;
}

/// The key stretching the client runs on every registration and login:
/// argon2id with 19 MiB, two passes, one lane (the parameters the relay used
/// for its own password hashes before OPAQUE, and OWASP's recommendation).
/// An attacker who holds the relay's record *and* its OPRF key pays this
/// once per guess per account.
pub fn key_stretching() -> Argon2<'static> {
    #[allow(clippy::unwrap_used)] // constant, valid parameters
    let params = Params::new(19 * 1024, 2, 1, None).unwrap();
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// What the login transcript is bound to besides the key exchange: the
/// protocol and its version, so a transcript means nothing elsewhere.
const CONTEXT: &[u8] = b"conclave password login v1";

/// The identifier the relay derives an account's OPRF key from.
fn credential_identifier(username: &str) -> Vec<u8> {
    [b"conclave account\0".as_slice(), username.as_bytes()].concat()
}

/// The identities bound into the envelope and the key exchange: the
/// account's name (so a record cannot be moved to another account) and the
/// relay's OPAQUE public key (the default).
fn identifiers(username: &str) -> Identifiers<'_> {
    Identifiers {
        client: Some(username.as_bytes()),
        server: None,
    }
}

fn malformed(what: &'static str) -> impl Fn(ProtocolError) -> Error {
    move |_| Error::MalformedPassword(what)
}

/// The client's half of a registration: a new account, a new password, or
/// a record for an account that had an older kind of password.
pub struct PasswordRegistration(ClientRegistration<PasswordSuite>);

impl std::fmt::Debug for PasswordRegistration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PasswordRegistration(<redacted>)")
    }
}

impl PasswordRegistration {
    /// Blinds the password; returns the state to keep and the request to send.
    pub fn start(password: &[u8]) -> Result<(Self, Vec<u8>), Error> {
        let started = ClientRegistration::<PasswordSuite>::start(&mut OsRng, password)
            .map_err(malformed("password"))?;
        Ok((Self(started.state), started.message.serialize().to_vec()))
    }

    /// Turns the relay's response into the record upload for `username`.
    /// Runs [`key_stretching`].
    pub fn finish(
        self,
        password: &[u8],
        response: &[u8],
        username: &str,
    ) -> Result<Vec<u8>, Error> {
        let response = RegistrationResponse::<PasswordSuite>::deserialize(response)
            .map_err(malformed("registration response"))?;
        let ksf = key_stretching();
        let finished = self
            .0
            .finish(
                &mut OsRng,
                password,
                response,
                ClientRegistrationFinishParameters::new(identifiers(username), Some(&ksf)),
            )
            .map_err(malformed("registration response"))?;
        Ok(finished.message.serialize().to_vec())
    }
}

/// The client's half of a login.
pub struct PasswordLogin(ClientLogin<PasswordSuite>);

impl std::fmt::Debug for PasswordLogin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PasswordLogin(<redacted>)")
    }
}

impl PasswordLogin {
    /// Blinds the password and starts the key exchange (KE1).
    pub fn start(password: &[u8]) -> Result<(Self, Vec<u8>), Error> {
        let started = ClientLogin::<PasswordSuite>::start(&mut OsRng, password)
            .map_err(malformed("password"))?;
        Ok((Self(started.state), started.message.serialize().to_vec()))
    }

    /// Opens the relay's answer (KE2) with the password and returns the
    /// finalization (KE3) that proves it, or `None` if the password is wrong
    /// (or the answer did not come from the relay that holds the record).
    /// Runs [`key_stretching`].
    pub fn finish(
        self,
        password: &[u8],
        response: &[u8],
        username: &str,
    ) -> Result<Option<Vec<u8>>, Error> {
        let response = CredentialResponse::<PasswordSuite>::deserialize(response)
            .map_err(malformed("login response"))?;
        let ksf = key_stretching();
        match self.0.finish(
            &mut OsRng,
            password,
            response,
            ClientLoginFinishParameters::new(Some(CONTEXT), identifiers(username), Some(&ksf)),
        ) {
            Ok(finished) => Ok(Some(finished.message.serialize().to_vec())),
            Err(ProtocolError::InvalidLoginError) => Ok(None),
            Err(_) => Err(Error::MalformedPassword("login response")),
        }
    }
}

/// The relay's half: its OPAQUE setup (the OPRF seed and its key-exchange
/// key pair), from which every account's OPRF key is derived. Whoever holds
/// it *and* a record can test guesses for that account at argon2 cost; the
/// record alone gives nothing. Keep it with the relay's other keys.
pub struct PasswordServer(ServerSetup<PasswordSuite>);

impl std::fmt::Debug for PasswordServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PasswordServer(<redacted>)")
    }
}

impl PasswordServer {
    /// A new setup, from the operating system's randomness.
    pub fn generate() -> Self {
        Self(ServerSetup::new(&mut OsRng))
    }

    /// The setup as bytes, to store in the key directory.
    pub fn to_bytes(&self) -> Zeroizing<Vec<u8>> {
        Zeroizing::new(self.0.serialize().to_vec())
    }

    /// A setup stored with [`PasswordServer::to_bytes`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, Error> {
        ServerSetup::deserialize(bytes)
            .map(Self)
            .map_err(|_| Error::MalformedPassword("OPAQUE server setup"))
    }

    /// Answers a registration request for `username` (the OPRF evaluated
    /// under that account's key; nothing is stored).
    pub fn registration_response(&self, request: &[u8], username: &str) -> Result<Vec<u8>, Error> {
        let request = RegistrationRequest::<PasswordSuite>::deserialize(request)
            .map_err(malformed("registration request"))?;
        let started = ServerRegistration::start(&self.0, request, &credential_identifier(username))
            .map_err(malformed("registration request"))?;
        Ok(started.message.serialize().to_vec())
    }

    /// The record to store from the client's upload.
    pub fn record(&self, upload: &[u8]) -> Result<Vec<u8>, Error> {
        let upload = RegistrationUpload::<PasswordSuite>::deserialize(upload)
            .map_err(malformed("registration upload"))?;
        Ok(ServerRegistration::finish(upload).serialize().to_vec())
    }

    /// Starts a login against `record` (`None` for an account that does not
    /// exist: the answer then looks the same, and no finalization will ever
    /// verify). Returns the state to keep until the finalization comes (a
    /// secret: it holds the MAC the client must produce) and the answer (KE2).
    pub fn start_login(
        &self,
        record: Option<&[u8]>,
        request: &[u8],
        username: &str,
    ) -> Result<(Zeroizing<Vec<u8>>, Vec<u8>), Error> {
        let record = record
            .map(ServerRegistration::<PasswordSuite>::deserialize)
            .transpose()
            .map_err(|_| Error::MalformedPassword("stored password record"))?;
        let request = CredentialRequest::<PasswordSuite>::deserialize(request)
            .map_err(malformed("login request"))?;
        let started = ServerLogin::start(
            &mut OsRng,
            &self.0,
            record,
            request,
            &credential_identifier(username),
            ServerLoginParameters {
                context: Some(CONTEXT),
                identifiers: identifiers(username),
            },
        )
        .map_err(malformed("login request"))?;
        Ok((
            Zeroizing::new(started.state.serialize().to_vec()),
            started.message.serialize().to_vec(),
        ))
    }

    /// Whether `finalization` (KE3) completes the login kept in `state`:
    /// whether the client knew the password.
    pub fn finish_login(&self, state: &[u8], finalization: &[u8], username: &str) -> bool {
        let (Ok(state), Ok(finalization)) = (
            ServerLogin::<PasswordSuite>::deserialize(state),
            CredentialFinalization::<PasswordSuite>::deserialize(finalization),
        ) else {
            return false;
        };
        state
            .finish(
                finalization,
                ServerLoginParameters {
                    context: Some(CONTEXT),
                    identifiers: identifiers(username),
                },
            )
            .is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn registered(relay: &PasswordServer, password: &[u8], username: &str) -> Vec<u8> {
        let (registration, request) = PasswordRegistration::start(password).unwrap();
        let response = relay.registration_response(&request, username).unwrap();
        let upload = registration.finish(password, &response, username).unwrap();
        relay.record(&upload).unwrap()
    }

    fn logs_in(
        relay: &PasswordServer,
        record: Option<&[u8]>,
        password: &[u8],
        username: &str,
    ) -> bool {
        let (login, ke1) = PasswordLogin::start(password).unwrap();
        let (state, ke2) = relay.start_login(record, &ke1, username).unwrap();
        match login.finish(password, &ke2, username).unwrap() {
            Some(ke3) => relay.finish_login(&state, &ke3, username),
            None => false,
        }
    }

    #[test]
    fn the_stretching_is_argon2id_at_the_old_hash_parameters() {
        let ksf = key_stretching();
        let params = ksf.params();
        assert_eq!(
            (params.m_cost(), params.t_cost(), params.p_cost()),
            (19 * 1024, 2, 1)
        );
        // The suite's default is the same, should anything build it without us.
        let default = Argon2::default();
        assert_eq!(default.params().m_cost(), params.m_cost());
        assert_eq!(default.params().t_cost(), params.t_cost());
    }

    #[test]
    fn only_the_registered_password_logs_in() {
        let relay = PasswordServer::generate();
        let record = registered(&relay, b"correct horse battery", "alice");
        assert!(logs_in(
            &relay,
            Some(&record),
            b"correct horse battery",
            "alice"
        ));
        assert!(!logs_in(
            &relay,
            Some(&record),
            b"correct horse battery!",
            "alice"
        ));
        // The record is bound to its account: under another name it opens nothing.
        assert!(!logs_in(
            &relay,
            Some(&record),
            b"correct horse battery",
            "mallory"
        ));
        // An account that does not exist gets an answer, and no login.
        assert!(!logs_in(&relay, None, b"correct horse battery", "nobody"));
    }

    #[test]
    fn another_relays_setup_opens_nothing() {
        let relay = PasswordServer::generate();
        let record = registered(&relay, b"correct horse battery", "alice");
        let impostor = PasswordServer::generate();
        assert!(!logs_in(
            &impostor,
            Some(&record),
            b"correct horse battery",
            "alice"
        ));
        // The setup survives a round trip through its bytes.
        let again = PasswordServer::from_bytes(&relay.to_bytes()).unwrap();
        assert!(logs_in(
            &again,
            Some(&record),
            b"correct horse battery",
            "alice"
        ));
    }

    #[test]
    fn a_finalization_is_good_for_its_own_login_only() {
        let relay = PasswordServer::generate();
        let record = registered(&relay, b"correct horse battery", "alice");
        let (login, ke1) = PasswordLogin::start(b"correct horse battery").unwrap();
        let (state, ke2) = relay.start_login(Some(&record), &ke1, "alice").unwrap();
        let ke3 = login
            .finish(b"correct horse battery", &ke2, "alice")
            .unwrap()
            .unwrap();
        let (_, other_ke1) = PasswordLogin::start(b"correct horse battery").unwrap();
        let (other_state, _) = relay
            .start_login(Some(&record), &other_ke1, "alice")
            .unwrap();
        assert!(!relay.finish_login(&other_state, &ke3, "alice"));
        assert!(relay.finish_login(&state, &ke3, "alice"));
        assert!(!relay.finish_login(&state, b"garbage", "alice"));
    }

    #[test]
    fn no_message_carries_the_password() {
        let password = b"a password nobody should see";
        let relay = PasswordServer::generate();
        let (registration, request) = PasswordRegistration::start(password).unwrap();
        let response = relay.registration_response(&request, "alice").unwrap();
        let upload = registration.finish(password, &response, "alice").unwrap();
        let record = relay.record(&upload).unwrap();
        let (login, ke1) = PasswordLogin::start(password).unwrap();
        let (_, ke2) = relay.start_login(Some(&record), &ke1, "alice").unwrap();
        let ke3 = login.finish(password, &ke2, "alice").unwrap().unwrap();
        for message in [&request, &response, &upload, &record, &ke1, &ke2, &ke3] {
            assert!(!message.windows(password.len()).any(|w| w == password));
        }
    }

    #[test]
    fn debug_shows_no_key() {
        assert_eq!(
            format!("{:?}", PasswordServer::generate()),
            "PasswordServer(<redacted>)"
        );
    }
}
