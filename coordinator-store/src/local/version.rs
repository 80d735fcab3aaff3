//! Versions: the 128-bit FNV-1a digest of an object's content.

use crate::Version;

/// The 128-bit FNV-1a digest of `bytes`.
pub(crate) fn fnv1a_128(bytes: &[u8]) -> u128 {
    const OFFSET: u128 = 0x6c62_272e_07bb_0142_62b8_2175_6295_c58d;
    const PRIME: u128 = 0x0000_0000_0100_0000_0000_0000_0000_013b;
    bytes.iter().fold(OFFSET, |hash, &byte| {
        (hash ^ u128::from(byte)).wrapping_mul(PRIME)
    })
}

pub(super) fn version_of(bytes: &[u8]) -> Version {
    Version::new(format!("{:032x}", fnv1a_128(bytes)))
}
