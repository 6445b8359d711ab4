//! How openmls's state is encoded in the store: CBOR (RFC 8949), binary
//! and self-describing. Self-describing matters: openmls's serde includes
//! an untagged enum (the join config's past-epoch policy), which formats
//! without type information, such as postcard or bincode, cannot read.
//!
//! Every value starts with the self-described CBOR tag (`d9 d9 f7`, RFC 8949
//! §3.4.6), which no JSON text can start with. Stores written before this
//! codec kept openmls's state as JSON (keys as well as values, and keys are
//! compared byte for byte), so the store converts every such row once when
//! it opens ([`convert_json_state`]); from then on no JSON is read or written.

use openmls_sqlx_storage::Codec;
use sqlx::{Row, SqliteConnection};

use crate::error::Result;

/// The self-described CBOR tag that opens every encoded value.
const MAGIC: [u8; 3] = [0xd9, 0xd9, 0xf7];

/// Encodes openmls entities and keys as CBOR in the store.
#[derive(Debug, Default)]
pub(crate) struct CborCodec;

/// An openmls value that could not be encoded, or a stored one that does
/// not decode.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CodecError {
    #[error("cannot encode MLS state as CBOR: {0}")]
    Encode(#[from] ciborium::ser::Error<std::io::Error>),
    #[error("stored MLS state is not valid CBOR for its type: {0}")]
    Decode(#[from] ciborium::de::Error<std::io::Error>),
    #[error("stored MLS state does not start with the CBOR tag (an unconverted or damaged row)")]
    Unmarked,
    #[error("stored MLS state kept as JSON does not parse: {0}")]
    Json(#[from] serde_json::Error),
}

impl Codec for CborCodec {
    type Error = CodecError;

    fn to_vec<T: serde::Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, Self::Error> {
        let mut encoded = MAGIC.to_vec();
        ciborium::into_writer(value, &mut encoded)?;
        Ok(encoded)
    }

    fn from_slice<T: serde::de::DeserializeOwned>(slice: &[u8]) -> Result<T, Self::Error> {
        let cbor = slice.strip_prefix(&MAGIC).ok_or(CodecError::Unmarked)?;
        Ok(ciborium::from_reader(cbor)?)
    }
}

/// The tables openmls_sqlx_storage keeps, and their columns that hold an
/// encoded key or value (the others are plain SQL values).
const STATE_COLUMNS: &[(&str, &[&str])] = &[
    ("openmls_group_data", &["group_id", "group_data"]),
    (
        "openmls_proposal",
        &["group_id", "proposal_ref", "proposal"],
    ),
    ("openmls_own_leaf_node", &["group_id", "leaf_node"]),
    ("openmls_signature_key", &["public_key", "signature_key"]),
    ("openmls_encryption_key", &["public_key", "key_pair"]),
    (
        "openmls_epoch_key_pairs",
        &["group_id", "epoch_id", "key_pairs"],
    ),
    ("openmls_key_package", &["key_package_ref", "key_package"]),
    ("openmls_psk", &["psk_id", "psk_bundle"]),
];

/// Re-encodes, in the open transaction `tx`, every openmls key and value
/// kept as JSON into what [`CborCodec`] writes for the same value, byte for
/// byte, so that lookups by key still find their rows.
pub(crate) async fn convert_json_state(tx: &mut SqliteConnection) -> Result<()> {
    for (table, columns) in STATE_COLUMNS {
        // Names from the list above, never from outside.
        let select = format!("SELECT rowid, {} FROM {table}", columns.join(", "));
        let assignments: Vec<String> = columns
            .iter()
            .enumerate()
            .map(|(i, column)| format!("{column} = ${}", i + 1))
            .collect();
        let update = format!(
            "UPDATE {table} SET {} WHERE rowid = ${}",
            assignments.join(", "),
            columns.len() + 1
        );
        for row in sqlx::query(&select).fetch_all(&mut *tx).await? {
            let rowid: i64 = row.get(0);
            let mut query = sqlx::query(&update);
            for i in 0..columns.len() {
                let stored: Vec<u8> = row.get(i + 1);
                query = query.bind(cbor_of_stored(&stored).map_err(|e| {
                    crate::error::ClientError::store(format!(
                        "cannot convert {table}.{} (row {rowid}) from JSON: {e}",
                        columns[i]
                    ))
                })?);
            }
            query.bind(rowid).execute(&mut *tx).await?;
        }
    }
    Ok(())
}

/// A stored value as [`CborCodec`] encodes it: as it is if it already is,
/// converted if it is JSON.
fn cbor_of_stored(stored: &[u8]) -> Result<Vec<u8>, CodecError> {
    if stored.starts_with(&MAGIC) {
        return Ok(stored.to_vec());
    }
    let mut value: ciborium::Value = serde_json::from_slice(stored)?;
    integer_map_keys(&mut value);
    CborCodec::to_vec(&value)
}

/// JSON writes a map's integer keys as strings ("3"); CBOR keeps them as
/// integers. Struct fields and enum variants, the other keys in openmls's
/// state, are Rust identifiers, which never read as a number, and its state
/// has no map keyed by strings; so a key that reads as an integer was one.
fn integer_map_keys(value: &mut ciborium::Value) {
    match value {
        ciborium::Value::Map(entries) => {
            for (key, item) in entries {
                if let ciborium::Value::Text(text) = key
                    && let Some(number) = canonical_integer(text)
                {
                    *key = ciborium::Value::Integer(number);
                }
                integer_map_keys(item);
            }
        }
        ciborium::Value::Array(items) => items.iter_mut().for_each(integer_map_keys),
        ciborium::Value::Tag(_, inner) => integer_map_keys(inner),
        _ => {}
    }
}

/// `text` as an integer, if it is one written as serde_json writes them.
fn canonical_integer(text: &str) -> Option<ciborium::value::Integer> {
    if let Ok(number) = text.parse::<u64>() {
        return (number.to_string() == text).then(|| number.into());
    }
    let number = text.parse::<i64>().ok()?;
    (number.to_string() == text).then(|| number.into())
}

#[cfg(test)]
mod tests;
