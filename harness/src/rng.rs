//! Seeded randomness: one seed per run, and sub-seeds derived from it by name, so that adding a
//! consumer of randomness does not shift the numbers any other consumer sees.

use sha2::{Digest, Sha256};

/// A seed for the consumer called `name`, derived from the run's seed.
pub fn sub_seed(seed: u64, name: &str) -> u64 {
    let mut h = Sha256::new();
    h.update(seed.to_le_bytes());
    h.update(name.as_bytes());
    let digest = h.finalize();
    u64::from_le_bytes(
        digest[..8]
            .try_into()
            .expect("a sha256 digest has 32 bytes"),
    )
}

#[cfg(test)]
mod tests {
    use super::sub_seed;

    #[test]
    fn sub_seeds_depend_on_seed_and_name() {
        assert_eq!(sub_seed(7, "net"), sub_seed(7, "net"));
        assert_ne!(sub_seed(7, "net"), sub_seed(8, "net"));
        assert_ne!(sub_seed(7, "net"), sub_seed(7, "lakes"));
    }
}
