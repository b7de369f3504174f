//! Content keys and the hash algorithms that make them.
//!
//! An element's key is `H( H(value) ‖ encode(GPBType{object_id, version}) )`: SHA-1 by default
//! (ION's keys, 20 bytes), or BLAKE3 (32 bytes) for repositories that accept writes from
//! untrusted parties.

use std::fmt;

use crate::types::TypeId;

/// The hash function a repository records at creation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum HashAlgorithm {
    /// SHA-1, ION-compatible: 20-byte keys.
    #[default]
    Sha1,
    /// BLAKE3 with the same construction: 32-byte keys.
    Blake3,
}

impl HashAlgorithm {
    /// The length of this algorithm's keys in bytes.
    pub const fn key_len(self) -> usize {
        match self {
            HashAlgorithm::Sha1 => 20,
            HashAlgorithm::Blake3 => 32,
        }
    }

    /// The algorithm whose keys have `len` bytes.
    pub const fn for_key_len(len: usize) -> Option<HashAlgorithm> {
        match len {
            20 => Some(HashAlgorithm::Sha1),
            32 => Some(HashAlgorithm::Blake3),
            _ => None,
        }
    }

    /// The name used in configuration and on the command line.
    pub const fn name(self) -> &'static str {
        match self {
            HashAlgorithm::Sha1 => "sha1",
            HashAlgorithm::Blake3 => "blake3",
        }
    }

    /// The key of an element with this `value` and type.
    pub fn element_key(self, value: &[u8], ty: TypeId) -> Key {
        let mut ty_buf = [0u8; 24];
        let ty_len = ty.encode_into(&mut ty_buf);
        let ty_bytes = &ty_buf[..ty_len];
        match self {
            HashAlgorithm::Sha1 => Key::from_array20(sha1_key(value, ty_bytes)),
            HashAlgorithm::Blake3 => {
                let inner = blake3::hash(value);
                let mut outer = blake3::Hasher::new();
                outer.update(inner.as_bytes());
                outer.update(ty_bytes);
                Key::from_array32(*outer.finalize().as_bytes())
            }
        }
    }
}

impl std::str::FromStr for HashAlgorithm {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "sha1" => Ok(HashAlgorithm::Sha1),
            "blake3" => Ok(HashAlgorithm::Blake3),
            other => Err(format!("unknown hash algorithm {other:?}: expected \"sha1\" or \"blake3\"")),
        }
    }
}

/// SHA-1's initial state (FIPS 180-4, 5.3.1).
const SHA1_H0: [u32; 5] = [0x6745_2301, 0xEFCD_AB89, 0x98BA_DCFE, 0x1032_5476, 0xC3D2_E1F0];

/// `SHA1( SHA1(value) ‖ ty )` straight on the compression function: the value's whole blocks
/// are hashed in place and the padding and the outer hash are built on the stack. Measured
/// faster than the streaming hasher for small objects (see BENCHMARKS.md); equal by test.
fn sha1_key(value: &[u8], ty: &[u8]) -> [u8; 20] {
    let inner = sha1_oneshot(value);
    let mut block = [0u8; 64];
    let n = 20 + ty.len();
    block[..20].copy_from_slice(&inner);
    block[20..n].copy_from_slice(ty);
    block[n] = 0x80;
    block[56..].copy_from_slice(&((n as u64) * 8).to_be_bytes());
    let mut state = SHA1_H0;
    sha1::block_api::compress(&mut state, &[block]);
    digest_bytes(state)
}

fn sha1_oneshot(data: &[u8]) -> [u8; 20] {
    let mut state = SHA1_H0;
    let (blocks, rest) = data.as_chunks::<64>();
    sha1::block_api::compress(&mut state, blocks);
    let mut tail = [[0u8; 64]; 2];
    let flat = tail.as_flattened_mut();
    flat[..rest.len()].copy_from_slice(rest);
    flat[rest.len()] = 0x80;
    let used = if rest.len() < 56 { 1 } else { 2 };
    flat[used * 64 - 8..used * 64].copy_from_slice(&((data.len() as u64) * 8).to_be_bytes());
    sha1::block_api::compress(&mut state, &tail[..used]);
    digest_bytes(state)
}

fn digest_bytes(state: [u32; 5]) -> [u8; 20] {
    let mut out = [0u8; 20];
    for (chunk, word) in out.chunks_exact_mut(4).zip(state) {
        chunk.copy_from_slice(&word.to_be_bytes());
    }
    out
}

/// A content key: 20 raw bytes (SHA-1) or 32 (BLAKE3). Ordered and hashed by its bytes.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Key {
    len: u8,
    bytes: [u8; 32],
}

impl Key {
    fn from_array20(a: [u8; 20]) -> Key {
        let mut bytes = [0u8; 32];
        bytes[..20].copy_from_slice(&a);
        Key { len: 20, bytes }
    }

    fn from_array32(bytes: [u8; 32]) -> Key {
        Key { len: 32, bytes }
    }

    /// A key from its raw bytes; `None` unless there are exactly 20 or 32 of them.
    pub fn from_slice(raw: &[u8]) -> Option<Key> {
        HashAlgorithm::for_key_len(raw.len())?;
        let mut bytes = [0u8; 32];
        bytes[..raw.len()].copy_from_slice(raw);
        Some(Key { len: raw.len() as u8, bytes })
    }

    /// A key from hexadecimal (either case).
    pub fn from_hex(hex: &str) -> Option<Key> {
        if !hex.len().is_multiple_of(2) {
            return None;
        }
        let raw: Option<Vec<u8>> =
            (0..hex.len()).step_by(2).map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok()).collect();
        Key::from_slice(&raw?)
    }

    /// The raw key bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len as usize]
    }

    /// The algorithm that makes keys of this length.
    pub fn algorithm(&self) -> HashAlgorithm {
        HashAlgorithm::for_key_len(self.len as usize).expect("keys have a valid length")
    }

    /// Uppercase hexadecimal, as ION prints keys.
    pub fn to_hex(&self) -> String {
        self.to_string()
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.as_bytes() {
            write!(f, "{b:02X}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Key({self})")
    }
}

#[cfg(test)]
mod tests {
    use sha1::Digest as _;

    use super::*;

    #[test]
    fn sha1_key_equals_the_streaming_hasher() {
        let data: Vec<u8> = (0..300u32).map(|i| (i * 7 + 3) as u8).collect();
        for ty in [TypeId::new(1, 1), TypeId::new(20001, 1), TypeId::new(-99, 1), TypeId::new(i32::MAX, i32::MIN)] {
            for len in 0..=data.len() {
                let value = &data[..len];
                let mut outer = sha1::Sha1::new();
                outer.update(sha1::Sha1::digest(value));
                outer.update(ty.encode());
                let expected: [u8; 20] = outer.finalize().into();
                assert_eq!(HashAlgorithm::Sha1.element_key(value, ty).as_bytes(), expected, "len {len}, type {ty}");
            }
        }
    }
}
