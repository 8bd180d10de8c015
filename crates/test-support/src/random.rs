//! Seeded randomness for tests that pick moments at random (SIGKILLs): the
//! seed is printed, and `CRASH_SEED` replays a failure.

use std::time::{SystemTime, UNIX_EPOCH};

/// A small deterministic generator (a 64-bit LCG).
pub struct Lcg(pub u64);

impl Lcg {
    /// A number in `0..below`.
    pub fn next(&mut self, below: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % below.max(1)
    }
}

/// `CRASH_SEED` if set, else one from the clock; printed with `what`.
pub fn crash_seed(what: &str) -> u64 {
    let seed = std::env::var("CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64)
        });
    println!("{what} seed {seed} (CRASH_SEED={seed} replays it)");
    seed
}
