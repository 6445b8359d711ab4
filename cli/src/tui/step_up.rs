//! Proving it is you, inside the UI: the password, and a second factor if
//! the account has one, that the relay's step-up asks for before this device
//! may revoke another (the same proof `conclave device revoke` asks for).
//!
//! What is typed goes into a masked line, not the composer: it is never
//! drawn, never kept for Up/Down recall, never saved as a channel's draft,
//! and wiped from memory when it is dropped.

use std::fmt;

use conclave_client::{AccountStatus, Credentials, SecondFactor};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

/// A password or a code, as typed. Zeroized on drop; `Debug` shows nothing
/// of it; two compare in constant time.
#[derive(Clone)]
pub(crate) struct Secret(Zeroizing<String>);

impl Secret {
    #[cfg(test)]
    pub(crate) fn new(text: &str) -> Self {
        Self(Zeroizing::new(text.to_owned()))
    }

    pub(crate) fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl PartialEq for Secret {
    fn eq(&self, other: &Self) -> bool {
        self.0.as_bytes().ct_eq(other.0.as_bytes()).into()
    }
}

impl Eq for Secret {}

/// The masked line being typed. Its buffer never grows in place: a `String`
/// that reallocates leaves the old bytes behind in freed memory, so a
/// bigger buffer is made first and the old one wiped as it is dropped.
#[derive(Default)]
struct MaskedInput {
    text: Zeroizing<String>,
}

impl MaskedInput {
    /// Enough for any password a person types; a longer one (pasted from a
    /// password manager) moves to a buffer twice the size.
    const FIRST_CAPACITY: usize = 128;

    fn insert(&mut self, typed: &str) {
        // Line ends and other control characters are no part of a password
        // typed or pasted on one line.
        for c in typed.chars().filter(|c| !c.is_control()) {
            if self.text.len() + c.len_utf8() > self.text.capacity() {
                let wanted = (self.text.capacity() * 2).max(Self::FIRST_CAPACITY);
                let mut bigger = Zeroizing::new(String::with_capacity(wanted));
                bigger.push_str(&self.text);
                self.text = bigger;
            }
            self.text.push(c);
        }
    }

    fn backspace(&mut self) {
        // The byte stays in the buffer's spare room until the buffer is
        // dropped, which wipes all of it.
        self.text.pop();
    }

    fn clear(&mut self) {
        self.text = Zeroizing::default();
    }

    fn is_blank(&self) -> bool {
        self.text.trim().is_empty()
    }

    /// The line, moved out without a copy.
    fn take(&mut self) -> Secret {
        Secret(std::mem::take(&mut self.text))
    }
}

impl fmt::Debug for MaskedInput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MaskedInput(<redacted>)")
    }
}

/// What the relay will want besides the password. It mirrors the relay's
/// rule (`available_factors`): a confirmed TOTP or a registered passkey
/// makes a second factor necessary; recovery codes stand in for either.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FactorAsked {
    /// The account has no second factor: the password alone.
    Nothing,
    /// A code from the authenticator app, or one of the recovery codes.
    TotpOrRecoveryCode,
    /// The account's only second factors are passkeys, which this UI cannot
    /// use (a security key's prompt would tear through the screen): one of
    /// its recovery codes.
    RecoveryCode,
}

impl FactorAsked {
    /// What to ask the holder of `account` for, or why this UI cannot.
    pub(crate) fn for_account(account: &AccountStatus) -> Result<Self, String> {
        if account.totp {
            Ok(Self::TotpOrRecoveryCode)
        } else if account.webauthn.is_empty() {
            Ok(Self::Nothing)
        } else if account.recovery_codes_left > 0 {
            Ok(Self::RecoveryCode)
        } else {
            Err(
                "your second factor is a passkey, which this UI cannot use: /quit, then run \
                 `conclave device revoke ID --passkey`"
                    .into(),
            )
        }
    }
}

/// A second factor as typed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum TypedFactor {
    Totp(Secret),
    RecoveryCode(Secret),
}

/// The proof for one revocation, ready to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Proof {
    pub(crate) password: Secret,
    pub(crate) second_factor: Option<TypedFactor>,
}

impl Proof {
    /// Borrowed by client-core for the one request it signs.
    pub(crate) fn credentials(&self) -> Credentials<'_> {
        Credentials {
            password: Some(self.password.expose()),
            second_factor: self.second_factor.as_ref().map(|factor| match factor {
                TypedFactor::Totp(code) => SecondFactor::Totp(code.expose()),
                TypedFactor::RecoveryCode(code) => SecondFactor::RecoveryCode(code.expose()),
            }),
        }
    }
}

/// Which device to revoke, and what its owner must type first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RevokeTarget {
    /// The whole id (the user may have typed a prefix).
    pub(crate) device_id: String,
    pub(crate) factor: FactorAsked,
}

/// The answer to `/revoke DEVICE`: the device `typed` names and what to ask
/// for, or why it cannot be revoked from here. The prompt waits for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RevokeCheck {
    pub(crate) typed: String,
    pub(crate) result: Result<RevokeTarget, String>,
}

/// A key, as the prompt understands it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PromptKey<'a> {
    /// Typed or pasted text.
    Text(&'a str),
    Backspace,
    /// Ctrl-U: start the line again.
    Clear,
    Enter,
    /// Esc.
    Cancel,
}

/// The prompt for revoking a device, one masked line at a time.
///
/// It opens the moment `/revoke` is entered, before the device has been
/// looked up, so that a password typed straight away lands here, hidden,
/// and never in the composer.
///
/// | state          | Enter, on a line with something in it           | the device is found                  | Esc         |
/// |----------------|-------------------------------------------------|--------------------------------------|-------------|
/// | `Password`     | `Checking`, or once found `SecondFactor` / `Ready` | `Password` (found)                | `Cancelled` |
/// | `Checking`     | —                                               | `SecondFactor`, or `Ready` if the account has no second factor | `Cancelled` |
/// | `SecondFactor` | `Ready`                                         | —                                    | `Cancelled` |
///
/// Enter on an empty line changes nothing; other keys edit the line (in
/// `Checking`, there is no line). If the device cannot be revoked, the
/// prompt is dropped, and what was typed with it.
#[derive(Debug)]
pub(crate) enum StepUp {
    Password(PasswordStep),
    Checking(CheckingStep),
    SecondFactor(SecondFactorStep),
}

#[derive(Debug)]
pub(crate) struct PasswordStep {
    typed_device: String,
    /// Known once the device was looked up.
    target: Option<RevokeTarget>,
    typed: MaskedInput,
}

#[derive(Debug)]
pub(crate) struct CheckingStep {
    typed_device: String,
    password: Secret,
}

#[derive(Debug)]
pub(crate) struct SecondFactorStep {
    typed_device: String,
    target: RevokeTarget,
    password: Secret,
    typed: MaskedInput,
}

/// Where the prompt is after a key or an answer.
#[derive(Debug)]
pub(crate) enum Prompted {
    Asking(StepUp),
    Cancelled { device: String },
    Ready { device_id: String, proof: Proof },
}

impl StepUp {
    /// The prompt for `/revoke typed_device`.
    pub(crate) fn new(typed_device: String) -> Self {
        Self::Password(PasswordStep {
            typed_device,
            target: None,
            typed: MaskedInput::default(),
        })
    }

    /// The device as the user typed it: an answer about another one (an
    /// earlier `/revoke`, cancelled) is not for this prompt.
    pub(crate) fn typed_device(&self) -> &str {
        match self {
            Self::Password(step) => &step.typed_device,
            Self::Checking(step) => &step.typed_device,
            Self::SecondFactor(step) => &step.typed_device,
        }
    }

    /// The whole id once it is known, else what was typed.
    fn device(&self) -> &str {
        match self {
            Self::Password(PasswordStep {
                target: Some(target),
                ..
            })
            | Self::SecondFactor(SecondFactorStep { target, .. }) => &target.device_id,
            other => other.typed_device(),
        }
    }

    /// What the composer's border asks for.
    pub(crate) fn question(&self) -> String {
        let device = self.device();
        match self {
            Self::Password(_) => format!(" your password (hidden), to revoke {device} "),
            Self::Checking(_) => format!(" looking up device {device}\u{2026} (Esc cancels) "),
            Self::SecondFactor(step) => {
                let asked = match step.target.factor {
                    FactorAsked::RecoveryCode => "a recovery code (passkeys cannot be used here)",
                    FactorAsked::TotpOrRecoveryCode | FactorAsked::Nothing => {
                        "the code from your authenticator app, or a recovery code"
                    }
                };
                format!(" {asked} (hidden), to revoke {device} ")
            }
        }
    }

    pub(crate) fn handle(self, key: PromptKey<'_>) -> Prompted {
        if key == PromptKey::Cancel {
            return Prompted::Cancelled {
                device: self.device().to_owned(),
            };
        }
        match self {
            Self::Password(mut step) => {
                if key != PromptKey::Enter || step.typed.is_blank() {
                    edit(&mut step.typed, key);
                    return Prompted::Asking(Self::Password(step));
                }
                // Not trimmed: spaces may be part of a password.
                let password = step.typed.take();
                match step.target {
                    Some(target) => ask_second_factor(step.typed_device, target, password),
                    None => Prompted::Asking(Self::Checking(CheckingStep {
                        typed_device: step.typed_device,
                        password,
                    })),
                }
            }
            Self::Checking(step) => Prompted::Asking(Self::Checking(step)),
            Self::SecondFactor(mut step) => {
                if key != PromptKey::Enter || step.typed.is_blank() {
                    edit(&mut step.typed, key);
                    return Prompted::Asking(Self::SecondFactor(step));
                }
                let code = step.typed.take();
                let second_factor = typed_factor(code, step.target.factor);
                Prompted::Ready {
                    device_id: step.target.device_id,
                    proof: Proof {
                        password: step.password,
                        second_factor: Some(second_factor),
                    },
                }
            }
        }
    }

    /// The device was looked up: `target` is what to revoke and ask for.
    pub(crate) fn found(self, target: RevokeTarget) -> Prompted {
        match self {
            Self::Password(step) => Prompted::Asking(Self::Password(PasswordStep {
                target: Some(target),
                ..step
            })),
            Self::Checking(step) => ask_second_factor(step.typed_device, target, step.password),
            // Already found: the answer came twice; the first stands.
            asking @ Self::SecondFactor(_) => Prompted::Asking(asking),
        }
    }
}

/// After the password: the second factor, or nothing more if the account
/// has none.
fn ask_second_factor(typed_device: String, target: RevokeTarget, password: Secret) -> Prompted {
    if target.factor == FactorAsked::Nothing {
        return Prompted::Ready {
            device_id: target.device_id,
            proof: Proof {
                password,
                second_factor: None,
            },
        };
    }
    Prompted::Asking(StepUp::SecondFactor(SecondFactorStep {
        typed_device,
        target,
        password,
        typed: MaskedInput::default(),
    }))
}

fn edit(typed: &mut MaskedInput, key: PromptKey<'_>) {
    match key {
        PromptKey::Text(text) => typed.insert(text),
        PromptKey::Backspace => typed.backspace(),
        PromptKey::Clear => typed.clear(),
        PromptKey::Enter | PromptKey::Cancel => {}
    }
}

/// A code as the relay wants it: a TOTP code is its digits (`123 456`
/// works), anything else a recovery code (`abcd-efgh-…`), with every
/// blank taken out.
fn typed_factor(code: Secret, asked: FactorAsked) -> TypedFactor {
    // Sized first, so the copy never reallocates and leaves bytes behind.
    let mut squeezed = Zeroizing::new(String::with_capacity(code.expose().len()));
    squeezed.extend(code.expose().chars().filter(|c| !c.is_whitespace()));
    let squeezed = Secret(squeezed);
    let digits = squeezed.expose().bytes().all(|b| b.is_ascii_digit());
    if digits && asked == FactorAsked::TotpOrRecoveryCode {
        TypedFactor::Totp(squeezed)
    } else {
        TypedFactor::RecoveryCode(squeezed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn found(prompt: StepUp, factor: FactorAsked) -> StepUp {
        let target = RevokeTarget {
            device_id: "3f4c0a".into(),
            factor,
        };
        match prompt.found(target) {
            Prompted::Asking(prompt) => prompt,
            other => panic!("not asking: {other:?}"),
        }
    }

    fn typed(mut prompt: StepUp, keys: &[PromptKey<'_>]) -> Prompted {
        for (i, key) in keys.iter().enumerate() {
            match prompt.handle(*key) {
                Prompted::Asking(next) => prompt = next,
                done if i + 1 == keys.len() => return done,
                done => panic!("ended early, at key {i}: {done:?}"),
            }
        }
        Prompted::Asking(prompt)
    }

    #[test]
    fn the_password_then_a_totp_code_make_the_proof() {
        let prompt = found(StepUp::new("3f4c".into()), FactorAsked::TotpOrRecoveryCode);
        assert!(
            prompt
                .question()
                .contains("your password (hidden), to revoke 3f4c0a")
        );
        let keys = [
            PromptKey::Enter, // nothing typed yet: still asking
            PromptKey::Text("hunter"),
            PromptKey::Text("22"),
            PromptKey::Backspace,
            PromptKey::Text(" "),
            PromptKey::Enter,
            PromptKey::Text("123 45"),
            PromptKey::Text("6\n"),
            PromptKey::Enter,
        ];
        let Prompted::Ready { device_id, proof } = typed(prompt, &keys) else {
            panic!("not ready");
        };
        assert_eq!(device_id, "3f4c0a");
        assert_eq!(proof.password, Secret::new("hunter2 "));
        assert_eq!(
            proof.second_factor,
            Some(TypedFactor::Totp(Secret::new("123456")))
        );
    }

    #[test]
    fn a_password_typed_before_the_device_is_found_waits_for_it() {
        let prompt = StepUp::new("3f4c".into());
        assert_eq!(prompt.typed_device(), "3f4c");
        let Prompted::Asking(prompt) = typed(prompt, &[PromptKey::Text("pw"), PromptKey::Enter])
        else {
            panic!("still asking");
        };
        assert!(prompt.question().contains("looking up device 3f4c"));
        // Keys while looking are no password.
        let Prompted::Asking(prompt) = typed(prompt, &[PromptKey::Text("x"), PromptKey::Enter])
        else {
            panic!("still asking");
        };
        let target = RevokeTarget {
            device_id: "3f4c0a".into(),
            factor: FactorAsked::Nothing,
        };
        let Prompted::Ready { device_id, proof } = prompt.found(target) else {
            panic!("not ready");
        };
        assert_eq!(device_id, "3f4c0a");
        assert_eq!(proof.password, Secret::new("pw"));
        assert_eq!(proof.second_factor, None);
    }

    #[test]
    fn a_recovery_code_stands_in_for_the_app() {
        let prompt = found(StepUp::new("3f4c".into()), FactorAsked::TotpOrRecoveryCode);
        let keys = [
            PromptKey::Text("pw"),
            PromptKey::Enter,
            PromptKey::Text("abcd-efgh-ijkl-mnop"),
            PromptKey::Enter,
        ];
        let Prompted::Ready { proof, .. } = typed(prompt, &keys) else {
            panic!("not ready");
        };
        assert_eq!(
            proof.second_factor,
            Some(TypedFactor::RecoveryCode(Secret::new(
                "abcd-efgh-ijkl-mnop"
            )))
        );
        // With passkeys only, even digits are a recovery code.
        let prompt = found(StepUp::new("3f4c".into()), FactorAsked::RecoveryCode);
        let keys = [
            PromptKey::Text("pw"),
            PromptKey::Enter,
            PromptKey::Text("1234"),
            PromptKey::Enter,
        ];
        let Prompted::Ready { proof, .. } = typed(prompt, &keys) else {
            panic!("not ready");
        };
        assert_eq!(
            proof.second_factor,
            Some(TypedFactor::RecoveryCode(Secret::new("1234")))
        );
    }

    #[test]
    fn esc_cancels_and_nothing_typed_shows_in_debug() {
        let prompt = found(StepUp::new("3f4c".into()), FactorAsked::TotpOrRecoveryCode);
        let Prompted::Asking(prompt) = typed(
            prompt,
            &[
                PromptKey::Text("hunter2"),
                PromptKey::Enter,
                PromptKey::Text("999"),
                PromptKey::Clear,
                PromptKey::Text("424242"),
            ],
        ) else {
            panic!("still asking");
        };
        let shown = format!("{prompt:?}");
        assert!(
            !shown.contains("hunter2") && !shown.contains("4242"),
            "{shown}"
        );
        assert!(prompt.question().contains("authenticator app"));
        assert!(matches!(
            prompt.handle(PromptKey::Cancel),
            Prompted::Cancelled { device } if device == "3f4c0a"
        ));
    }

    #[test]
    fn a_long_paste_moves_to_a_bigger_buffer_intact() {
        let mut input = MaskedInput::default();
        let long = "x".repeat(300);
        input.insert(&long);
        input.insert("é");
        assert_eq!(input.take().expose(), format!("{long}é"));
    }

    #[test]
    fn a_passkey_only_account_is_asked_for_a_recovery_code_or_sent_to_the_cli() {
        let mut account = AccountStatus {
            username: "alice".into(),
            roles: Vec::new(),
            totp: false,
            totp_pending: true,
            webauthn: Vec::new(),
            passwordless: false,
            recovery_codes_left: 0,
            second_factor_required: false,
            max_group_dm: 8,
            bot_owner: None,
        };
        // A TOTP still waiting for its first code is no factor yet.
        assert_eq!(FactorAsked::for_account(&account), Ok(FactorAsked::Nothing));
        account.webauthn.push(conclave_client::PasskeyInfo {
            credential_id: "AAAA".into(),
            name: "yubikey".into(),
        });
        let refused = FactorAsked::for_account(&account).unwrap_err();
        assert!(refused.contains("--passkey"), "{refused}");
        account.recovery_codes_left = 3;
        assert_eq!(
            FactorAsked::for_account(&account),
            Ok(FactorAsked::RecoveryCode)
        );
        account.totp = true;
        assert_eq!(
            FactorAsked::for_account(&account),
            Ok(FactorAsked::TotpOrRecoveryCode)
        );
    }
}
