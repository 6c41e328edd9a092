//! What a sans-IO engine cannot know by itself: the time and its randomness.
//!
//! The convention (issue 12 item 3): no code in the engine, the media graph or the protocol
//! modules reads a clock or the OS's randomness.
//! - Monotonic time: every state-changing [`Engine`] call takes `now: Instant` as its last
//!   argument; the caller (the worker loop, an I/O driver, a test with virtual time) reads the
//!   clock once per batch or timer and passes it down.
//! - Wall-clock time (NTP timestamps in sender reports and RTT, stats timestamps): the engine
//!   maps `now` onto the wall clock with a [`WallClock`] anchor, given to [`Engine::new`] and
//!   refreshed by every [`Engine::handle_timeout`] (at least every 100 ms in the worker), so a
//!   stepped system clock is followed within one timer tick.
//! - Randomness (ids, SSRCs, ICE credentials, SRTP keys): the engine's own [`EngineRng`], a
//!   CSPRNG seeded by [`Engine::new`]'s `seed` (the worker draws the seed from the OS; tests pass a
//!   fixed one, so a run is reproducible).

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rand::{Rng, SeedableRng};
use uuid::Uuid;

use super::Engine;

/// The engine's random number generator: ChaCha12 (`rand`'s `StdRng`), cryptographically secure,
/// so ICE passwords and SRTP master keys may come from it.
pub type EngineRng = rand::rngs::StdRng;

/// The seed of an [`EngineRng`] (256 bits).
pub type RngSeed = [u8; 32];

/// A reading of the wall clock at a monotonic instant: wall time at any `now` is this reading plus
/// the monotonic time elapsed since (no clock read on the packet path).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WallClock {
    at: Instant,
    since_epoch: Duration,
}

impl WallClock {
    /// The wall clock read `wall` at monotonic instant `at` (before 1970 counts as 1970).
    pub fn new(at: Instant, wall: SystemTime) -> Self {
        WallClock {
            at,
            since_epoch: wall.duration_since(UNIX_EPOCH).unwrap_or_default(),
        }
    }

    /// Time since the Unix epoch at `now`.
    pub fn since_epoch(&self, now: Instant) -> Duration {
        if now >= self.at {
            self.since_epoch + (now - self.at)
        } else {
            self.since_epoch.saturating_sub(self.at - now)
        }
    }

    /// Milliseconds since the Unix epoch at `now` (stats timestamps).
    pub fn unix_ms(&self, now: Instant) -> u64 {
        self.since_epoch(now).as_millis() as u64
    }

    /// The 64-bit NTP timestamp at `now` as (seconds since 1900, 2^-32 fractions).
    pub fn ntp(&self, now: Instant) -> (u32, u32) {
        let d = self.since_epoch(now);
        let secs = d.as_secs() + 2_208_988_800;
        let frac = ((d.subsec_nanos() as u64) << 32) / 1_000_000_000;
        (secs as u32, frac as u32)
    }
}

/// A fresh engine RNG from `seed`.
pub(super) fn rng_from_seed(seed: RngSeed) -> EngineRng {
    EngineRng::from_seed(seed)
}

impl Engine {
    /// A fresh object id (a version-4 UUID drawn from the engine's RNG).
    pub(super) fn new_id(&mut self) -> Uuid {
        uuid::Builder::from_random_bytes(self.rng.gen()).into_uuid()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wall_clock_follows_monotonic_time_from_its_anchor() {
        let t0 = Instant::now();
        let w = WallClock::new(t0, UNIX_EPOCH + Duration::from_millis(1_700_000_000_123));
        assert_eq!(w.unix_ms(t0), 1_700_000_000_123);
        assert_eq!(
            w.unix_ms(t0 + Duration::from_millis(877)),
            1_700_000_001_000
        );
        let (s, f) = w.ntp(t0 + Duration::from_millis(877));
        assert_eq!(s, (1_700_000_001u64 + 2_208_988_800) as u32);
        assert_eq!(f, 0);
        let (_, half) = WallClock::new(t0, UNIX_EPOCH + Duration::from_millis(500)).ntp(t0);
        assert_eq!(half, 1 << 31);
    }

    #[test]
    fn ids_from_one_seed_repeat_and_are_version_4() {
        let mut a = rng_from_seed([7; 32]);
        let mut b = rng_from_seed([7; 32]);
        let ida = uuid::Builder::from_random_bytes(a.gen()).into_uuid();
        let idb = uuid::Builder::from_random_bytes(b.gen()).into_uuid();
        assert_eq!(ida, idb);
        assert_eq!(ida.get_version_num(), 4);
    }
}
