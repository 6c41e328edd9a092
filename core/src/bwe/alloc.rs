//! Distribution of a transport's available outgoing bitrate over its consumers, as mediasoup's
//! `Transport::DistributeAvailableOutgoingBitrate`: every simulcast consumer first gets its
//! lowest active layer, then, in rounds, consumers in descending priority each try to move one
//! layer up `priority` times per round while the increase fits in what remains. Consumers that are
//! not simulcast (audio, single-stream video) are paid for first at their measured rate.
//!
//! Hysteresis against oscillation: moving above the layer being forwarded needs 10 % headroom
//! over the layer's rate (the engine also waits until the higher choice held for a while); the
//! layer being forwarded stays as long as it fits without headroom.
//!
//! Pure functions on caller-owned slices: the engine keeps its scratch list, nothing allocates.

use std::time::Instant;

/// Most spatial layers considered per consumer.
pub const MAX_LAYERS: usize = 4;
/// Headroom needed to move above the forwarded layer (fraction of the new layer's rate).
pub const UPGRADE_HEADROOM: f64 = 0.10;

/// Measured bitrate of a stream: an exponentially smoothed rate from a byte counter sampled at
/// allocation time (time constant about 1 s).
#[derive(Debug, Clone, Copy, Default)]
pub struct RateMeter {
    last: Option<(Instant, u64)>,
    bps: f64,
}

impl RateMeter {
    /// Updates from the stream's byte counter `bytes` at `now`; returns the smoothed rate.
    pub fn sample(&mut self, bytes: u64, now: Instant) -> u64 {
        if let Some((t, b)) = self.last {
            let dt = now.saturating_duration_since(t).as_secs_f64();
            if dt < 0.05 {
                return self.bps as u64;
            }
            let inst = bytes.saturating_sub(b) as f64 * 8.0 / dt;
            let alpha = (dt / 1.0).min(1.0);
            self.bps = if self.bps == 0.0 {
                inst
            } else {
                self.bps + alpha * (inst - self.bps)
            };
        }
        self.last = Some((now, bytes));
        self.bps as u64
    }

    /// The last smoothed rate in bits per second.
    pub fn bps(&self) -> u64 {
        self.bps as u64
    }
}

/// One consumer as the allocator sees it.
#[derive(Debug, Clone, Copy)]
pub struct Candidate {
    /// Engine key of the consumer (passed through).
    pub key: usize,
    /// 1..=255; higher is served first and more often.
    pub priority: u8,
    /// Rate of each spatial layer in bits per second; `None`: the layer is not active.
    pub layers: [Option<u64>; MAX_LAYERS],
    /// Number of layers the producer has (1: not simulcast, paid at `layers[0]`'s rate).
    pub n_layers: usize,
    /// Highest layer allowed (preferred layer).
    pub max_layer: usize,
    /// Layer being forwarded now, if any.
    pub current: Option<usize>,
    /// Output: the layer chosen.
    pub target: usize,
}

impl Candidate {
    fn rate(&self, layer: usize) -> u64 {
        self.layers.get(layer).copied().flatten().unwrap_or(0)
    }

    fn next_active_above(&self, layer: usize) -> Option<usize> {
        let top = self
            .max_layer
            .min(self.n_layers.min(MAX_LAYERS).saturating_sub(1));
        (layer + 1..=top).find(|&l| self.layers[l].is_some())
    }

    fn lowest_active(&self) -> usize {
        let top = self
            .max_layer
            .min(self.n_layers.min(MAX_LAYERS).saturating_sub(1));
        (0..=top).find(|&l| self.layers[l].is_some()).unwrap_or(0)
    }

    fn highest_wanted(&self) -> usize {
        let top = self
            .max_layer
            .min(self.n_layers.min(MAX_LAYERS).saturating_sub(1));
        (0..=top)
            .rev()
            .find(|&l| self.layers[l].is_some())
            .unwrap_or(0)
    }
}

/// What an allocation found.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Allocation {
    /// What every consumer would send at its highest wanted layer (mediasoup's
    /// `desiredBitrate`).
    pub desired: u64,
    /// What the chosen layers send (`effectiveDesiredBitrate`).
    pub effective: u64,
}

/// Sets every candidate's `target` so that the layers fit `available` bits per second.
/// `order` is scratch space (cleared and refilled with indexes sorted by priority).
pub fn allocate(available: u64, cands: &mut [Candidate], order: &mut Vec<usize>) -> Allocation {
    let mut remaining = available as i64;
    let mut out = Allocation::default();
    for c in cands.iter_mut() {
        if c.n_layers <= 1 {
            c.target = 0;
            remaining -= c.rate(0) as i64;
            out.desired += c.rate(0);
            out.effective += c.rate(0);
        } else {
            c.target = c.lowest_active();
            remaining -= c.rate(c.target) as i64;
            out.desired += c.rate(c.highest_wanted());
        }
    }
    order.clear();
    order.extend((0..cands.len()).filter(|&i| cands[i].n_layers > 1));
    order.sort_by(|&a, &b| cands[b].priority.cmp(&cands[a].priority));
    loop {
        let mut changed = false;
        for &i in order.iter() {
            let c = &mut cands[i];
            for _ in 0..c.priority.max(1) {
                let Some(next) = c.next_active_above(c.target) else {
                    break;
                };
                let rate = c.rate(next);
                let cost = rate as i64 - c.rate(c.target) as i64;
                let headroom = if c.current.is_some_and(|cur| next <= cur) {
                    0
                } else {
                    (rate as f64 * UPGRADE_HEADROOM) as i64
                };
                if cost + headroom > remaining {
                    break;
                }
                remaining -= cost;
                c.target = next;
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }
    for c in cands.iter().filter(|c| c.n_layers > 1) {
        out.effective += c.rate(c.target);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cand(key: usize, priority: u8, current: Option<usize>) -> Candidate {
        Candidate {
            key,
            priority,
            layers: [Some(150_000), Some(500_000), Some(1_500_000), None],
            n_layers: 3,
            max_layer: 2,
            current,
            target: 0,
        }
    }

    #[test]
    fn picks_the_highest_layer_that_fits() {
        let mut order = vec![];
        let mut c = [cand(0, 1, Some(0))];
        let a = allocate(5_000_000, &mut c, &mut order);
        assert_eq!(c[0].target, 2);
        assert_eq!(a.desired, 1_500_000);
        assert_eq!(a.effective, 1_500_000);
        allocate(700_000, &mut c, &mut order);
        assert_eq!(c[0].target, 1);
        // Not even the lowest fits: the lowest anyway.
        allocate(100_000, &mut c, &mut order);
        assert_eq!(c[0].target, 0);
        // Preferred layer caps it.
        c[0].max_layer = 1;
        allocate(5_000_000, &mut c, &mut order);
        assert_eq!(c[0].target, 1);
        // Inactive layers are skipped.
        c[0].max_layer = 2;
        c[0].layers[1] = None;
        allocate(1_000_000, &mut c, &mut order);
        assert_eq!(c[0].target, 0);
        allocate(2_000_000, &mut c, &mut order);
        assert_eq!(c[0].target, 2);
    }

    #[test]
    fn hysteresis_keeps_the_current_layer_but_needs_headroom_to_climb() {
        let mut order = vec![];
        // 520k: layer 1 (500k) fits, but not with 10 % headroom.
        let mut c = [cand(0, 1, Some(0))];
        allocate(520_000, &mut c, &mut order);
        assert_eq!(c[0].target, 0, "no climb without headroom");
        c[0].current = Some(1);
        allocate(520_000, &mut c, &mut order);
        assert_eq!(c[0].target, 1, "stays while it fits");
        allocate(480_000, &mut c, &mut order);
        assert_eq!(c[0].target, 0, "leaves when it does not fit");
    }

    #[test]
    fn priority_decides_who_gets_the_higher_layer() {
        let mut order = vec![];
        // Room for one consumer at layer 2 and one at layer 0 (plus audio).
        let audio = Candidate {
            key: 9,
            priority: 1,
            layers: [Some(40_000), None, None, None],
            n_layers: 1,
            max_layer: 0,
            current: Some(0),
            target: 0,
        };
        let mut c = [cand(0, 1, None), cand(1, 2, None), audio];
        let a = allocate(1_900_000, &mut c, &mut order);
        assert_eq!((c[0].target, c[1].target), (0, 2), "priority 2 first");
        assert_eq!(a.desired, 3_040_000);
        assert_eq!(a.effective, 1_690_000);
        c[0].priority = 3;
        allocate(1_900_000, &mut c, &mut order);
        assert_eq!((c[0].target, c[1].target), (2, 0), "priority 3 wins now");
        // Equal priorities, plenty: both on top.
        c[0].priority = 2;
        allocate(4_000_000, &mut c, &mut order);
        assert_eq!((c[0].target, c[1].target), (2, 2));
    }
}
