//! Log key rotation: the old key introduces the new one.
//!
//! A rotation statement is a signed note whose text names the log and both
//! keys, signed by the key it retires *and* by the key that replaces it:
//!
//! ```text
//! conclave-log-key-rotation/v1
//! origin <origin>
//! old <old verifier key>
//! new <new verifier key>
//!
//! — <origin> <signature by the old key>
//! — <origin> <signature by the new key>
//! ```
//!
//! A client that pinned the old key follows the chain of statements to the
//! newest key it reaches, keeping the log's name (its checkpoints'
//! origin). Without the old key's signature a new key is refused: a relay
//! that merely swapped its key, or a thief who holds only the new one, gets
//! no client to follow.
//!
//! ```
//! use conclave_audit::rotation::{follow, rotation_statement};
//! use conclave_audit::NoteSigner;
//! use ed25519_dalek::SigningKey;
//!
//! let old = NoteSigner::new("log.example", SigningKey::from_bytes(&[1; 32]))?;
//! let new = NoteSigner::new("log.example", SigningKey::from_bytes(&[2; 32]))?;
//! let statement = rotation_statement(&old, &new)?;
//! let reached = follow(old.verifier_key(), &[statement]).unwrap();
//! assert_eq!(reached.last(), Some(new.verifier_key()));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use crate::{NoteError, NoteSigner, SignedNote, VerifierKey};

const HEADER: &str = "conclave-log-key-rotation/v1";

/// The statement that retires `old` for `new` (both named after the log).
pub fn rotation_statement(old: &NoteSigner, new: &NoteSigner) -> Result<String, NoteError> {
    let (old_key, new_key) = (old.verifier_key(), new.verifier_key());
    if old_key.name() != new_key.name() {
        return Err(NoteError::InvalidKeyName(format!(
            "{} (the new key must keep the log's name, {})",
            new_key.name(),
            old_key.name()
        )));
    }
    let text = format!(
        "{HEADER}\norigin {}\nold {old_key}\nnew {new_key}\n",
        old_key.name()
    );
    let mut note = old.sign(&text)?;
    note.push_str(&new.signature_line(&text)?);
    Ok(note)
}

/// The keys reached from `pinned` through `statements` (in any order), in
/// the order they were reached; empty if none retires `pinned`. A statement
/// counts only if the key it retires and the key it names both signed it,
/// and the new key keeps the log's name.
pub fn follow(pinned: &VerifierKey, statements: &[String]) -> Option<Vec<VerifierKey>> {
    let mut current = pinned.clone();
    let mut reached = Vec::new();
    // Each step retires the current key: at most one step per statement.
    for _ in 0..statements.len() {
        let next = statements
            .iter()
            .find_map(|statement| step(&current, statement))?;
        reached.push(next.clone());
        current = next;
        if !statements.iter().any(|s| step(&current, s).is_some()) {
            break;
        }
    }
    (!reached.is_empty()).then_some(reached)
}

/// The key `statement` moves `current` to, if it is a valid rotation of it.
fn step(current: &VerifierKey, statement: &str) -> Option<VerifierKey> {
    let note = SignedNote::parse(statement).ok()?;
    let by_old = note.verify(std::slice::from_ref(current)).ok()?;
    let mut lines = by_old.text().lines();
    if lines.next()? != HEADER {
        return None;
    }
    let origin = lines.next()?.strip_prefix("origin ")?;
    let old = VerifierKey::parse(lines.next()?.strip_prefix("old ")?).ok()?;
    let new = VerifierKey::parse(lines.next()?.strip_prefix("new ")?).ok()?;
    if lines.next().is_some()
        || &old != current
        || origin != current.name()
        || new.name() != current.name()
        || new == old
    {
        return None;
    }
    note.verify(std::slice::from_ref(&new)).ok()?;
    Some(new)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::SigningKey;

    fn key(seed: u8) -> NoteSigner {
        NoteSigner::new("log.example", SigningKey::from_bytes(&[seed; 32])).unwrap()
    }

    #[test]
    fn a_chain_is_followed_and_only_a_chain_the_old_keys_signed() {
        let (k1, k2, k3) = (key(1), key(2), key(3));
        let one = rotation_statement(&k1, &k2).unwrap();
        let two = rotation_statement(&k2, &k3).unwrap();
        // In any order.
        let reached = follow(k1.verifier_key(), &[two.clone(), one.clone()]).unwrap();
        assert_eq!(
            reached,
            [k2.verifier_key().clone(), k3.verifier_key().clone()]
        );
        // From the middle, and from the end: nothing to follow.
        assert_eq!(
            follow(k2.verifier_key(), &[one.clone(), two.clone()]).unwrap(),
            [k3.verifier_key().clone()]
        );
        assert_eq!(follow(k3.verifier_key(), &[one.clone(), two.clone()]), None);

        // Signed by the new key alone: a thief's statement.
        let text = format!(
            "{HEADER}\norigin log.example\nold {}\nnew {}\n",
            k1.verifier_key(),
            k3.verifier_key()
        );
        let thief = k3.sign(&text).unwrap();
        assert_eq!(follow(k1.verifier_key(), &[thief]), None);
        // Signed by the old key alone: not proven the new key is held.
        let unproven = k1.sign(&text).unwrap();
        assert_eq!(follow(k1.verifier_key(), &[unproven]), None);
        // Another log's name.
        let other = NoteSigner::new("other.example", SigningKey::from_bytes(&[4; 32])).unwrap();
        assert!(rotation_statement(&k1, &other).is_err());
    }
}
