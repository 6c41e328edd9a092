//! AudioLevelObserver: every `interval`, the average audio level of each observed producer over
//! that interval (only producers that sent at least [`MIN_PACKETS`] packets with the audio
//! level extension), and a `volumes` report of the `max_entries` loudest at or above
//! `threshold`, loudest first; when none qualifies, one `silence` report (repeated only after
//! some volumes again). Paused producers are left out; pausing the observer reports silence.
//! Mirrors mediasoup's AudioLevelObserver.

use std::time::{Duration, Instant};

use super::ObserverError;

/// Packets with a level needed in an interval for a producer to be considered.
pub const MIN_PACKETS: u32 = 10;
/// Shortest interval; shorter requests are raised to it.
pub const MIN_INTERVAL: Duration = Duration::from_millis(250);
/// Longest interval; longer requests are lowered to it.
pub const MAX_INTERVAL: Duration = Duration::from_millis(5000);

/// Options of an [`AudioLevelObserver`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AudioLevelOptions {
    /// Most producers in one `volumes` report (≥ 1).
    pub max_entries: u16,
    /// Least average level reported, in dBov (-127..=0).
    pub threshold: i8,
    /// Reporting interval (250 ms..=5 s).
    pub interval: Duration,
}

impl Default for AudioLevelOptions {
    /// mediasoup's defaults: 1 entry, -80 dBov, 1000 ms.
    fn default() -> Self {
        AudioLevelOptions {
            max_entries: 1,
            threshold: -80,
            interval: Duration::from_millis(1000),
        }
    }
}

impl AudioLevelOptions {
    /// Checks options as mediasoup does: `max_entries` ≥ 1, `threshold` within -127..=0 (an
    /// error otherwise); `interval_ms` clamped into 250..=5000.
    pub fn new(max_entries: i64, threshold: i64, interval_ms: i64) -> Result<Self, ObserverError> {
        let max_entries = u16::try_from(max_entries)
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| ObserverError::InvalidOption {
                field: "maxEntries",
                reason: format!("{max_entries} is not a positive number (1..65535)"),
            })?;
        let threshold = i8::try_from(threshold)
            .ok()
            .filter(|t| (-127..=0).contains(t))
            .ok_or_else(|| ObserverError::InvalidOption {
                field: "threshold",
                reason: format!("{threshold} is not a dBov value within -127..0"),
            })?;
        let interval = Duration::from_millis(interval_ms.clamp(
            MIN_INTERVAL.as_millis() as i64,
            MAX_INTERVAL.as_millis() as i64,
        ) as u64);
        Ok(AudioLevelOptions {
            max_entries,
            threshold,
            interval,
        })
    }
}

/// What an [`AudioLevelObserver`] reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AudioLevelEvent<K> {
    /// The loudest producers at or above the threshold, loudest first, with their average
    /// level in dBov (negative; 0 is the loudest).
    Volumes(Vec<(K, i8)>),
    /// No observed producer reached the threshold (reported once per silent stretch).
    Silence,
}

#[derive(Debug, Clone, Copy)]
struct Entry<K> {
    key: K,
    /// Producer paused: its levels are ignored.
    paused: bool,
    /// Sum of -dBov levels in the interval.
    sum: u32,
    count: u32,
}

/// The observer's state.
#[derive(Debug, Clone)]
pub struct AudioLevelObserver<K> {
    opts: AudioLevelOptions,
    entries: Vec<Entry<K>>,
    paused: bool,
    silence: bool,
    next: Option<Instant>,
}

impl<K: Copy + Eq> AudioLevelObserver<K> {
    /// A running observer whose first report is due one interval after `now`.
    pub fn new(opts: AudioLevelOptions, now: Instant) -> Self {
        AudioLevelObserver {
            opts,
            entries: Vec::new(),
            paused: false,
            silence: true,
            next: Some(now + opts.interval),
        }
    }

    /// Its options.
    pub fn options(&self) -> AudioLevelOptions {
        self.opts
    }

    /// Whether the observer is paused.
    pub fn is_paused(&self) -> bool {
        self.paused
    }

    /// Observes a producer (adding one already observed changes nothing, as in mediasoup).
    pub fn add_producer(&mut self, key: K, producer_paused: bool) {
        if self.entries.iter().any(|e| e.key == key) {
            return;
        }
        self.entries.push(Entry {
            key,
            paused: producer_paused,
            sum: 0,
            count: 0,
        });
    }

    /// Stops observing a producer; false when it was not observed.
    pub fn remove_producer(&mut self, key: K) -> bool {
        let before = self.entries.len();
        self.entries.retain(|e| e.key != key);
        self.entries.len() != before
    }

    /// Whether a producer is observed.
    pub fn contains(&self, key: K) -> bool {
        self.entries.iter().any(|e| e.key == key)
    }

    /// Number of observed producers.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no producer is observed.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// A producer was paused (its levels are ignored and its interval forgotten) or resumed.
    pub fn set_producer_paused(&mut self, key: K, paused: bool) {
        if let Some(e) = self.entries.iter_mut().find(|e| e.key == key) {
            e.paused = paused;
            e.sum = 0;
            e.count = 0;
        }
    }

    /// A packet of `key` carried audio level `level` (-dBov, 0..=127). Packet path: a scan of
    /// the observed producers and two additions.
    pub fn on_level(&mut self, key: K, level: u8) {
        if self.paused {
            return;
        }
        if let Some(e) = self.entries.iter_mut().find(|e| e.key == key) {
            if !e.paused {
                e.sum = e.sum.saturating_add(u32::from(level.min(127)));
                e.count = e.count.saturating_add(1);
            }
        }
    }

    /// Pauses reporting; reports silence unless already silent.
    pub fn pause(&mut self) -> Option<AudioLevelEvent<K>> {
        if self.paused {
            return None;
        }
        self.paused = true;
        self.next = None;
        self.reset_sums();
        if self.silence {
            None
        } else {
            self.silence = true;
            Some(AudioLevelEvent::Silence)
        }
    }

    /// Resumes reporting; the next report is one interval after `now`.
    pub fn resume(&mut self, now: Instant) {
        if !self.paused {
            return;
        }
        self.paused = false;
        self.next = Some(now + self.opts.interval);
    }

    /// When the next report is due (None while paused).
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.next
    }

    /// Closes the interval if it is due: the report, if any.
    pub fn handle_timeout(&mut self, now: Instant) -> Option<AudioLevelEvent<K>> {
        let next = self.next?;
        if now < next {
            return None;
        }
        // A late timer does not try to catch up with missed intervals.
        let after = next + self.opts.interval;
        self.next = Some(if after > now {
            after
        } else {
            now + self.opts.interval
        });
        self.update()
    }

    fn update(&mut self) -> Option<AudioLevelEvent<K>> {
        let threshold = self.opts.threshold;
        let mut loud: Vec<(K, i8)> = self
            .entries
            .iter()
            .filter(|e| e.count >= MIN_PACKETS)
            .map(|e| {
                // Rounded average of -dBov, as a negative dBov.
                let avg = (e.sum + e.count / 2) / e.count;
                (e.key, -(avg.min(127) as i8))
            })
            .filter(|&(_, v)| v >= threshold)
            .collect();
        self.reset_sums();
        if loud.is_empty() {
            if self.silence {
                return None;
            }
            self.silence = true;
            return Some(AudioLevelEvent::Silence);
        }
        self.silence = false;
        // Loudest first; stable, so ties keep the order producers were added in.
        loud.sort_by_key(|e| std::cmp::Reverse(e.1));
        loud.truncate(self.opts.max_entries as usize);
        Some(AudioLevelEvent::Volumes(loud))
    }

    fn reset_sums(&mut self) {
        for e in self.entries.iter_mut() {
            e.sum = 0;
            e.count = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    /// Feeds `n` packets of `level` for `key`.
    fn feed(o: &mut AudioLevelObserver<u32>, key: u32, level: u8, n: usize) {
        for _ in 0..n {
            o.on_level(key, level);
        }
    }

    #[test]
    fn options_are_checked_and_clamped() {
        let o = AudioLevelOptions::new(1, -80, 1000).unwrap();
        assert_eq!(o, AudioLevelOptions::default());
        assert_eq!(
            AudioLevelOptions::new(3, 0, 10).unwrap().interval,
            MIN_INTERVAL
        );
        assert_eq!(
            AudioLevelOptions::new(3, -127, 60_000).unwrap().interval,
            MAX_INTERVAL
        );
        for (m, t) in [(0, -80), (-1, -80), (70_000, -80), (1, 1), (1, -128)] {
            let e = AudioLevelOptions::new(m, t, 1000).unwrap_err();
            assert!(matches!(e, ObserverError::InvalidOption { .. }), "{m} {t}");
        }
    }

    #[test]
    fn reports_loudest_above_threshold_then_silence_once() {
        let t0 = Instant::now();
        let opts = AudioLevelOptions::new(2, -60, 1000).unwrap();
        let mut o = AudioLevelObserver::new(opts, t0);
        o.add_producer(1, false);
        o.add_producer(2, false);
        o.add_producer(3, false);
        assert_eq!(o.poll_timeout(), Some(t0 + 1000 * MS));
        // 1 at -30 dBov, 2 at -20 (loudest), 3 at -70 (under the threshold).
        feed(&mut o, 1, 30, 50);
        feed(&mut o, 2, 20, 50);
        feed(&mut o, 3, 70, 50);
        assert_eq!(o.handle_timeout(t0 + 999 * MS), None);
        assert_eq!(
            o.handle_timeout(t0 + 1000 * MS),
            Some(AudioLevelEvent::Volumes(vec![(2, -20), (1, -30)]))
        );
        // Averages are rounded: 20 and 21 alternate → 20.5 → 21.
        for _ in 0..10 {
            o.on_level(1, 20);
            o.on_level(1, 21);
        }
        // Fewer than 10 packets in an interval do not count.
        feed(&mut o, 2, 0, 9);
        assert_eq!(
            o.handle_timeout(t0 + 2000 * MS),
            Some(AudioLevelEvent::Volumes(vec![(1, -21)]))
        );
        // Nothing loud: silence, once.
        feed(&mut o, 3, 90, 50);
        assert_eq!(
            o.handle_timeout(t0 + 3000 * MS),
            Some(AudioLevelEvent::Silence)
        );
        assert_eq!(o.handle_timeout(t0 + 4000 * MS), None);
        // Loud again: volumes again.
        feed(&mut o, 3, 10, 10);
        assert_eq!(
            o.handle_timeout(t0 + 5000 * MS),
            Some(AudioLevelEvent::Volumes(vec![(3, -10)]))
        );
    }

    #[test]
    fn paused_producers_and_observer() {
        let t0 = Instant::now();
        let mut o = AudioLevelObserver::new(AudioLevelOptions::default(), t0);
        o.add_producer(7, false);
        o.add_producer(8, true);
        feed(&mut o, 7, 40, 20);
        feed(&mut o, 8, 10, 20); // paused: ignored
        assert_eq!(
            o.handle_timeout(t0 + 1000 * MS),
            Some(AudioLevelEvent::Volumes(vec![(7, -40)]))
        );
        // Swap: 7 paused, 8 resumed.
        feed(&mut o, 7, 40, 5);
        o.set_producer_paused(7, true);
        o.set_producer_paused(8, false);
        feed(&mut o, 7, 40, 20);
        feed(&mut o, 8, 10, 20);
        assert_eq!(
            o.handle_timeout(t0 + 2000 * MS),
            Some(AudioLevelEvent::Volumes(vec![(8, -10)]))
        );
        // Removing and unknown producers.
        assert!(o.remove_producer(8));
        assert!(!o.remove_producer(8));
        feed(&mut o, 8, 10, 20);
        assert_eq!(
            o.handle_timeout(t0 + 3000 * MS),
            Some(AudioLevelEvent::Silence)
        );
        // Pausing the observer after volumes reports silence; no timer while paused.
        o.set_producer_paused(7, false);
        feed(&mut o, 7, 30, 20);
        assert!(matches!(
            o.handle_timeout(t0 + 4000 * MS),
            Some(AudioLevelEvent::Volumes(_))
        ));
        assert_eq!(o.pause(), Some(AudioLevelEvent::Silence));
        assert_eq!(o.pause(), None);
        assert_eq!(o.poll_timeout(), None);
        feed(&mut o, 7, 30, 20);
        o.resume(t0 + 4500 * MS);
        assert_eq!(o.poll_timeout(), Some(t0 + 5500 * MS));
        // Levels fed while paused were dropped: too few packets → nothing (already silent).
        assert_eq!(o.handle_timeout(t0 + 5500 * MS), None);
    }

    #[test]
    fn late_timer_does_not_burst() {
        let t0 = Instant::now();
        let mut o: AudioLevelObserver<u32> =
            AudioLevelObserver::new(AudioLevelOptions::default(), t0);
        o.add_producer(1, false);
        feed(&mut o, 1, 50, 10);
        assert!(o.handle_timeout(t0 + 3500 * MS).is_some());
        assert_eq!(o.poll_timeout(), Some(t0 + 4500 * MS));
        assert!(o.handle_timeout(t0 + 3600 * MS).is_none());
    }
}
