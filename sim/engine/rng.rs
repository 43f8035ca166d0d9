//! Seeded random streams, one per named component.
//!
//! Each component draws from its own generator seeded by `(scenario seed, component name)`.
//! A component's draws therefore do not depend on how its events interleave with other
//! components', and adding a component does not perturb the others. The name hash is FNV-1a
//! (stable across Rust versions and platforms, unlike `std`'s `DefaultHasher`), mixed with
//! SplitMix64; the generator is ChaCha8, whose output is specified and portable.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// The generator type every component uses.
pub type SimRng = ChaCha8Rng;

/// A generator for the component `name` under the scenario `seed`.
pub fn stream_rng(seed: u64, name: &str) -> SimRng {
    let mut state = seed ^ fnv1a(name.as_bytes());
    let mut key = [0u8; 32];
    for chunk in key.chunks_mut(8) {
        chunk.copy_from_slice(&splitmix64(&mut state).to_le_bytes());
    }
    ChaCha8Rng::from_seed(key)
}

fn fnv1a(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in bytes {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::RngCore;

    #[test]
    fn streams_are_reproducible_and_distinct() {
        let a1 = stream_rng(7, "workload/arrivals").next_u64();
        let a2 = stream_rng(7, "workload/arrivals").next_u64();
        let b = stream_rng(7, "workload/lengths").next_u64();
        let c = stream_rng(8, "workload/arrivals").next_u64();
        assert_eq!(a1, a2);
        assert_ne!(a1, b);
        assert_ne!(a1, c);
    }

    #[test]
    fn stream_values_are_pinned() {
        // Guards against an accidental change of hash, mixer or generator: outputs of old
        // scenarios must not change silently.
        assert_eq!(fnv1a(b"abc"), 0xe71f_a219_0541_574b);
        let mut stream = stream_rng(42, "x");
        let draws = [stream.next_u64(), stream.next_u64()];
        assert_eq!(draws, [0x5f64_a7dc_d179_12b2, 0x654c_e77c_1f9b_ad58]);
    }
}
