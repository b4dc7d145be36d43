//! The simulator's one source of randomness: a hash of a position, so that every random choice
//! is a pure function of where it is made and every party recomputes the same market.

/// SplitMix64's finalizer: cheap, well-mixed, deterministic.
pub(crate) fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}
