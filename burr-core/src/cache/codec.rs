//! How typed values are stored as bytes: JSON, and vectors of `f32` as little-endian
//! blobs (4 bytes a number: an embedding of 384 dimensions is 1,536 bytes).

use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::error::CacheError;
use super::key::CacheKey;

/// `value` as JSON bytes.
pub fn encode_json<T: Serialize + ?Sized>(key: &CacheKey, value: &T) -> Result<Bytes, CacheError> {
    serde_json::to_vec(value)
        .map(Bytes::from)
        .map_err(|source| CacheError::Encode {
            key: key.to_string(),
            source: source.into(),
        })
}

/// JSON bytes read back as a `T`.
pub fn decode_json<T: DeserializeOwned>(key: &CacheKey, bytes: &[u8]) -> Result<T, CacheError> {
    serde_json::from_slice(bytes).map_err(|error| CacheError::Decode {
        key: key.to_string(),
        reason: error.to_string(),
    })
}

/// `values` as a little-endian blob, 4 bytes a number.
pub fn encode_f32s(values: &[f32]) -> Bytes {
    let mut out = Vec::with_capacity(values.len() * 4);
    for value in values {
        out.extend_from_slice(&value.to_le_bytes());
    }
    Bytes::from(out)
}

/// A little-endian blob read back as `f32`s; an error when its length is not a multiple
/// of 4.
pub fn decode_f32s(key: &CacheKey, bytes: &[u8]) -> Result<Vec<f32>, CacheError> {
    if bytes.len() % 4 != 0 {
        return Err(CacheError::Decode {
            key: key.to_string(),
            reason: format!(
                "an f32 vector is a multiple of 4 bytes long, this one is {} bytes",
                bytes.len()
            ),
        });
    }
    Ok(bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::InputHash;

    #[test]
    fn f32_vectors_round_trip_bit_for_bit() {
        let key = CacheKey::new("m", "1", InputHash::of_str("t"));
        let values = [0.0, -0.0, 1.5, f32::MIN_POSITIVE, f32::MAX, -3.25e-7];
        let bytes = encode_f32s(&values);
        assert_eq!(bytes.len(), 24);
        assert_eq!(&bytes[8..12], &1.5f32.to_le_bytes());
        let back = decode_f32s(&key, &bytes).unwrap();
        assert_eq!(
            back.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
            values.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
        );
        assert!(matches!(
            decode_f32s(&key, &bytes[..5]),
            Err(CacheError::Decode { .. })
        ));
    }
}
