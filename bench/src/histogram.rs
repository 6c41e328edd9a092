//! A fixed-size log-linear latency histogram (about 1.6% relative precision, 1 ns to ~1 h), so the
//! receivers record every packet without allocating.

/// Sub-buckets per power of two (precision 1/64).
const SUB: usize = 64;
const SUB_BITS: u32 = 6;
/// Powers of two covered above the linear range.
const GROUPS: usize = 42;

/// Latency histogram in nanoseconds.
#[derive(Clone)]
pub struct Histogram {
    counts: Vec<u64>,
    total: u64,
    max: u64,
}

impl Default for Histogram {
    fn default() -> Self {
        Self {
            counts: vec![0; SUB * (GROUPS + 1)],
            total: 0,
            max: 0,
        }
    }
}

fn index(v: u64) -> usize {
    if v < SUB as u64 {
        return v as usize;
    }
    let top = 63 - v.leading_zeros(); // >= SUB_BITS
    let group = (top - SUB_BITS + 1) as usize;
    let sub = (v >> (top - SUB_BITS)) as usize - SUB; // 0..SUB
    (group * SUB + sub).min(SUB * (GROUPS + 1) - 1)
}

/// The upper bound of bucket `i` (inclusive-ish representative value).
fn value_of(i: usize) -> u64 {
    let group = i / SUB;
    let sub = (i % SUB) as u64;
    if group == 0 {
        return sub;
    }
    let shift = group as u32 - 1;
    ((SUB as u64 + sub + 1) << shift) - 1
}

impl Histogram {
    /// Records one value.
    pub fn record(&mut self, ns: u64) {
        self.counts[index(ns)] += 1;
        self.total += 1;
        self.max = self.max.max(ns);
    }

    /// The value at quantile `q` (0..=1); 0 when empty.
    pub fn quantile(&self, q: f64) -> u64 {
        if self.total == 0 {
            return 0;
        }
        let rank = ((q * self.total as f64).ceil() as u64).clamp(1, self.total);
        let mut seen = 0;
        for (i, c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return value_of(i).min(self.max);
            }
        }
        self.max
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_are_within_precision() {
        let mut h = Histogram::default();
        for v in 1..=100_000u64 {
            h.record(v * 1000);
        }
        for (q, want) in [
            (0.5, 50_000_000f64),
            (0.99, 99_000_000.0),
            (0.999, 99_900_000.0),
        ] {
            let got = h.quantile(q) as f64;
            assert!((got - want).abs() / want < 0.02, "q{q}: {got} vs {want}");
        }
        assert_eq!(h.quantile(1.0), 100_000_000);
        assert_eq!(Histogram::default().quantile(0.5), 0);
    }

    #[test]
    fn bucket_bounds_contain_their_values() {
        for v in [
            0u64,
            1,
            63,
            64,
            65,
            127,
            128,
            1000,
            123_456_789,
            1_000_000_000_000,
        ] {
            let i = index(v);
            assert!(value_of(i) >= v, "{v}");
            if i > 0 {
                assert!(value_of(i - 1) < v, "{v}");
            }
        }
    }
}
