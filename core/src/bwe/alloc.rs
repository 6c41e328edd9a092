//! Distribution of a transport's available outgoing bitrate over its consumers, as mediasoup's
//! `Transport::DistributeAvailableOutgoingBitrate`: every simulcast consumer first gets its
//! lowest active layer, then, in rounds, consumers in descending priority each try to move one
//! layer up `priority` times per round while the increase fits in what remains. A layer is a
//! (spatial, temporal) pair, temporal first within a spatial layer: the next step up from (1, 2)
//! is (2, 0), and the first step down from (2, 2) is (2, 1). Consumers without layers (audio,
//! single-stream video without temporal ids) are paid for first at their measured rate.
//!
//! Hysteresis against oscillation: moving above the layer being forwarded needs 10 % headroom
//! over the layer's rate (the engine also waits until the higher choice held for a while); the
//! layer being forwarded stays as long as it fits without headroom.
//!
//! Pure functions on caller-owned slices: the engine keeps its scratch list, nothing allocates.

use std::time::Instant;

use crate::keys::ConsumerKey;

/// Most spatial layers considered per consumer.
pub const MAX_LAYERS: usize = 4;
/// Most temporal layers considered per spatial layer (VP8's TID has two bits).
pub const MAX_TEMPORAL: usize = 4;
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
///
/// Its layers are ordered as mediasoup orders them: spatial layer first, temporal within it
/// ((0,0) < (0,1) < … < (1,0) < …), so a consumer that must give bits back first drops temporal
/// layers of its spatial layer, then moves down a spatial layer.
#[derive(Debug, Clone, Copy)]
pub struct Candidate {
    /// Engine key of the consumer (passed through).
    pub key: ConsumerKey,
    /// 1..=255; higher is served first and more often.
    pub priority: u8,
    /// Rate in bits per second of spatial layer `s` up to temporal layer `t` (that temporal
    /// layer and all below it): `layers[s][t]`; `None`: not active. A stream without temporal
    /// layer ids has only `t = 0`.
    pub layers: [[Option<u64>; MAX_TEMPORAL]; MAX_LAYERS],
    /// Number of spatial layers the producer has.
    pub n_layers: usize,
    /// Number of temporal layers (1: none). A consumer with one spatial and one temporal
    /// layer is not allocated: it is paid at `layers[0][0]`'s rate.
    pub n_temporal: usize,
    /// Highest spatial layer allowed (preferred spatial layer).
    pub max_layer: usize,
    /// Highest temporal layer allowed within the preferred spatial layer (below it, all).
    pub max_temporal: usize,
    /// Layers (spatial, temporal) being forwarded now, if any.
    pub current: Option<(usize, usize)>,
    /// Output: the layers (spatial, temporal) chosen.
    pub target: (usize, usize),
}

impl Candidate {
    /// Whether no preference caps the temporal layer of the chosen spatial layer.
    pub fn preferred_all_temporal(&self) -> bool {
        self.target.0 != self.max_layer || self.max_temporal >= MAX_TEMPORAL - 1
    }

    fn layered(&self) -> bool {
        self.n_layers > 1 || self.n_temporal > 1
    }

    fn rate(&self, (s, t): (usize, usize)) -> u64 {
        self.layers
            .get(s)
            .and_then(|l| l.get(t))
            .copied()
            .flatten()
            .unwrap_or(0)
    }

    /// The allowed layers in ascending order (see the type's documentation).
    fn allowed(&self) -> impl Iterator<Item = (usize, usize)> + '_ {
        let top = self
            .max_layer
            .min(self.n_layers.min(MAX_LAYERS).saturating_sub(1));
        // The preference caps the temporal layer of the preferred spatial layer only; when that
        // layer is above what exists, the top one that exists gets every temporal layer.
        let tmax = |s: usize| {
            let all = self.n_temporal.clamp(1, MAX_TEMPORAL) - 1;
            if s == self.max_layer {
                self.max_temporal.min(all)
            } else {
                all
            }
        };
        (0..=top)
            .flat_map(move |s| (0..=tmax(s)).map(move |t| (s, t)))
            .filter(|&(s, t)| self.layers[s][t].is_some())
    }

    fn next_above(&self, cur: (usize, usize)) -> Option<(usize, usize)> {
        self.allowed().find(|&l| l > cur)
    }

    fn lowest(&self) -> (usize, usize) {
        self.allowed().next().unwrap_or((0, 0))
    }

    fn highest(&self) -> (usize, usize) {
        self.allowed().last().unwrap_or((0, 0))
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

/// Sets every candidate's `target` to the highest allowed layers when nothing limits them.
pub fn allocate_unlimited(cands: &mut [Candidate]) {
    for c in cands.iter_mut() {
        c.target = c.highest();
    }
}

/// Sets every candidate's `target` so that the layers fit `available` bits per second.
/// `order` is scratch space (cleared and refilled with indexes sorted by priority).
pub fn allocate(available: u64, cands: &mut [Candidate], order: &mut Vec<usize>) -> Allocation {
    let mut remaining = available as i64;
    let mut out = Allocation::default();
    for c in cands.iter_mut() {
        if !c.layered() {
            c.target = (0, 0);
            remaining -= c.rate((0, 0)) as i64;
            out.desired += c.rate((0, 0));
            out.effective += c.rate((0, 0));
        } else {
            c.target = c.lowest();
            remaining -= c.rate(c.target) as i64;
            out.desired += c.rate(c.highest());
        }
    }
    order.clear();
    order.extend((0..cands.len()).filter(|&i| cands[i].layered()));
    order.sort_by(|&a, &b| cands[b].priority.cmp(&cands[a].priority));
    loop {
        let mut changed = false;
        for &i in order.iter() {
            let c = &mut cands[i];
            for _ in 0..c.priority.max(1) {
                let Some(next) = c.next_above(c.target) else {
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
    for c in cands.iter().filter(|c| c.layered()) {
        out.effective += c.rate(c.target);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::Key;

    fn spatial(rates: [Option<u64>; MAX_LAYERS]) -> [[Option<u64>; MAX_TEMPORAL]; MAX_LAYERS] {
        rates.map(|r| [r, None, None, None])
    }

    fn cand(key: usize, priority: u8, current: Option<usize>) -> Candidate {
        Candidate {
            key: ConsumerKey::from_index(key),
            priority,
            layers: spatial([Some(150_000), Some(500_000), Some(1_500_000), None]),
            n_layers: 3,
            n_temporal: 1,
            max_layer: 2,
            max_temporal: usize::MAX,
            current: current.map(|s| (s, 0)),
            target: (0, 0),
        }
    }

    /// Three spatial layers of three temporal layers each (cumulative rates: T0 40 %, T0+T1
    /// 70 %, all 100 % of the spatial layer's rate), as Chrome's L1T3 simulcast sends them.
    fn l1t3(key: usize, priority: u8, current: Option<(usize, usize)>) -> Candidate {
        let mut layers = [[None; MAX_TEMPORAL]; MAX_LAYERS];
        for (s, rate) in [150_000u64, 500_000, 1_500_000].into_iter().enumerate() {
            layers[s][0] = Some(rate * 4 / 10);
            layers[s][1] = Some(rate * 7 / 10);
            layers[s][2] = Some(rate);
        }
        Candidate {
            key: ConsumerKey::from_index(key),
            priority,
            layers,
            n_layers: 3,
            n_temporal: 3,
            max_layer: usize::MAX,
            max_temporal: usize::MAX,
            current,
            target: (0, 0),
        }
    }

    #[test]
    fn picks_the_highest_layer_that_fits() {
        let mut order = vec![];
        let mut c = [cand(0, 1, Some(0))];
        let a = allocate(5_000_000, &mut c, &mut order);
        assert_eq!(c[0].target, (2, 0));
        assert_eq!(a.desired, 1_500_000);
        assert_eq!(a.effective, 1_500_000);
        allocate(700_000, &mut c, &mut order);
        assert_eq!(c[0].target, (1, 0));
        // Not even the lowest fits: the lowest anyway.
        allocate(100_000, &mut c, &mut order);
        assert_eq!(c[0].target, (0, 0));
        // Preferred layer caps it.
        c[0].max_layer = 1;
        allocate(5_000_000, &mut c, &mut order);
        assert_eq!(c[0].target, (1, 0));
        // Inactive layers are skipped.
        c[0].max_layer = 2;
        c[0].layers[1][0] = None;
        allocate(1_000_000, &mut c, &mut order);
        assert_eq!(c[0].target, (0, 0));
        allocate(2_000_000, &mut c, &mut order);
        assert_eq!(c[0].target, (2, 0));
    }

    #[test]
    fn hysteresis_keeps_the_current_layer_but_needs_headroom_to_climb() {
        let mut order = vec![];
        // 520k: layer 1 (500k) fits, but not with 10 % headroom.
        let mut c = [cand(0, 1, Some(0))];
        allocate(520_000, &mut c, &mut order);
        assert_eq!(c[0].target, (0, 0), "no climb without headroom");
        c[0].current = Some((1, 0));
        allocate(520_000, &mut c, &mut order);
        assert_eq!(c[0].target, (1, 0), "stays while it fits");
        allocate(480_000, &mut c, &mut order);
        assert_eq!(c[0].target, (0, 0), "leaves when it does not fit");
    }

    #[test]
    fn temporal_layers_go_first_when_bits_run_short() {
        let mut order = vec![];
        let mut c = [l1t3(0, 1, Some((2, 2)))];
        allocate(5_000_000, &mut c, &mut order);
        assert_eq!(c[0].target, (2, 2));
        // 1.2 Mbps: the top spatial layer at two temporal layers (1.05 M), not a spatial drop.
        allocate(1_200_000, &mut c, &mut order);
        assert_eq!(c[0].target, (2, 1));
        c[0].current = Some((2, 1));
        allocate(700_000, &mut c, &mut order);
        assert_eq!(
            c[0].target,
            (2, 0),
            "base temporal layer of the top spatial layer"
        );
        c[0].current = Some((2, 0));
        allocate(550_000, &mut c, &mut order);
        assert_eq!(
            c[0].target,
            (1, 2),
            "then the next spatial layer down, all of it"
        );
        // Hysteresis on temporal steps too: (2, 0) at 600 k needs 660 k to come back.
        c[0].current = Some((1, 2));
        allocate(620_000, &mut c, &mut order);
        assert_eq!(c[0].target, (1, 2), "no climb to (2, 0) without headroom");
        allocate(700_000, &mut c, &mut order);
        assert_eq!(c[0].target, (2, 0));
        // Going round the same estimate never flips: with (2, 0) forwarded it stays.
        c[0].current = Some((2, 0));
        for _ in 0..5 {
            allocate(620_000, &mut c, &mut order);
            assert_eq!(c[0].target, (2, 0));
        }
    }

    #[test]
    fn preferred_temporal_layer_caps_the_preferred_spatial_layer_only() {
        let mut order = vec![];
        let mut c = [l1t3(0, 1, None)];
        c[0].max_layer = 0;
        c[0].max_temporal = 0;
        allocate(5_000_000, &mut c, &mut order);
        assert_eq!(c[0].target, (0, 0));
        c[0].max_layer = 1;
        c[0].max_temporal = 1;
        allocate(5_000_000, &mut c, &mut order);
        assert_eq!(c[0].target, (1, 1));
        allocate_unlimited(&mut c);
        assert_eq!(c[0].target, (1, 1));
        // A preferred spatial layer above what exists: the top one with all its temporal layers.
        c[0].max_layer = 7;
        allocate_unlimited(&mut c);
        assert_eq!(c[0].target, (2, 2));
        // One spatial layer with temporal layers (L1T3 single stream) is allocated too.
        let mut one = l1t3(1, 1, Some((0, 2)));
        one.n_layers = 1;
        let mut c = [one];
        let a = allocate(110_000, &mut c, &mut order);
        assert_eq!(c[0].target, (0, 1));
        assert_eq!((a.desired, a.effective), (150_000, 105_000));
    }

    #[test]
    fn priority_decides_who_gets_the_higher_layer() {
        let mut order = vec![];
        // Room for one consumer at layer 2 and one at layer 0 (plus audio).
        let audio = Candidate {
            key: ConsumerKey::from_index(9),
            priority: 1,
            layers: spatial([Some(40_000), None, None, None]),
            n_layers: 1,
            n_temporal: 1,
            max_layer: 0,
            max_temporal: 0,
            current: Some((0, 0)),
            target: (0, 0),
        };
        let mut c = [cand(0, 1, None), cand(1, 2, None), audio];
        let a = allocate(1_900_000, &mut c, &mut order);
        assert_eq!((c[0].target.0, c[1].target.0), (0, 2), "priority 2 first");
        assert_eq!(a.desired, 3_040_000);
        assert_eq!(a.effective, 1_690_000);
        c[0].priority = 3;
        allocate(1_900_000, &mut c, &mut order);
        assert_eq!(
            (c[0].target.0, c[1].target.0),
            (2, 0),
            "priority 3 wins now"
        );
        // Equal priorities, plenty: both on top.
        c[0].priority = 2;
        allocate(4_000_000, &mut c, &mut order);
        assert_eq!((c[0].target.0, c[1].target.0), (2, 2));
    }
}
