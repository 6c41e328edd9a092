//! ActiveSpeakerObserver: dominant speaker identification after Volfin & Cohen, "Dominant
//! Speaker Identification for Multipoint Videoconferencing" (IEEE 2012), in the form Jitsi
//! (`DominantSpeakerIdentification`) and mediasoup (`ActiveSpeakerObserver`) use.
//!
//! Each speaker keeps the last 50 levels (one per 20 ms of audio, from the RFC 6464 extension,
//! as loudness 0..127). Three time scales are derived from them: *immediates* (each level
//! quantised into 13 steps above the speaker's adaptive noise floor), *mediums* (per 100 ms:
//! how many immediates exceed 7) and *longs* (per second: how many mediums exceed 4). For each
//! scale a speech activity score is the log-likelihood ratio of speech over non-speech of the
//! most recent value (binomial with p = 0.5 against an exponential prior with λ = 0.78, 24,
//! 47). Every interval (300 ms by default), a challenger replaces the dominant speaker when
//! the logs of its score ratios to the dominant's exceed C1 = 3, C2 = 2 and C3 = 0 on the
//! three scales (the one with the best medium ratio wins). Paused speakers do not challenge;
//! a speaker that sends nothing has its levels decay to silence every 40 ms.

use std::time::{Duration, Instant};

use super::ObserverError;

const C1: f64 = 3.0;
const C2: f64 = 2.0;
const C3: f64 = 0.0;
const N1: u32 = 13;
const N2: u32 = 5;
const N3: u32 = 10;
const LONG_COUNT: usize = 1;
const LEVEL_IDLE_TIMEOUT: Duration = Duration::from_millis(40);
const SPEAKER_IDLE_TIMEOUT: Duration = Duration::from_secs(60 * 60);
const LONG_THRESHOLD: u8 = 4;
const MEDIUM_THRESHOLD: u8 = 7;
const MAX_LEVEL: u8 = 127;
const MIN_LEVEL: u8 = 0;
/// Levels (20 ms each) over which the noise floor may rise: 15 s.
const MIN_LEVEL_WINDOW_LEN: u32 = 15 * 1000 / 20;
/// Width of one immediate step: ceil(127 / 13) = 10.
const SUBUNIT_LENGTH_N1: u8 = ((MAX_LEVEL - MIN_LEVEL) as u32).div_ceil(N1) as u8;
const IMMEDIATE_BUFF_LEN: usize = LONG_COUNT * N3 as usize * N2 as usize;
const MEDIUMS_BUFF_LEN: usize = LONG_COUNT * N3 as usize;
const LONGS_BUFF_LEN: usize = LONG_COUNT;
const LEVELS_BUFF_LEN: usize = LONG_COUNT * N3 as usize * N2 as usize;
const MIN_ACTIVITY_SCORE: f64 = 1e-10;
/// Audio the algorithm expects per level sample.
const SAMPLE: Duration = Duration::from_millis(20);

/// Shortest interval; shorter requests are raised to it.
pub const MIN_INTERVAL: Duration = Duration::from_millis(100);
/// Longest interval; longer requests are lowered to it.
pub const MAX_INTERVAL: Duration = Duration::from_millis(5000);
/// Default evaluation interval (mediasoup's).
pub const DEFAULT_INTERVAL: Duration = Duration::from_millis(300);

/// The evaluation interval for a requested `interval_ms`, clamped into 100..=5000 ms.
pub fn interval_from_ms(interval_ms: i64) -> Duration {
    Duration::from_millis(interval_ms.clamp(
        MIN_INTERVAL.as_millis() as i64,
        MAX_INTERVAL.as_millis() as i64,
    ) as u64)
}

fn binomial_coefficient(n: u32, r: u32) -> u64 {
    let m = n - r;
    let r = r.max(m);
    let mut t: u64 = 1;
    let mut j: u64 = 1;
    let mut i = n as u64;
    while i > r as u64 {
        t = t * i / j;
        i -= 1;
        j += 1;
    }
    t
}

fn activity_score(v_l: u8, n_r: u32, p: f64, lambda: f64) -> f64 {
    let v = u32::from(v_l).min(n_r);
    let score = (binomial_coefficient(n_r, v) as f64).ln()
        + f64::from(v) * p.ln()
        + f64::from(n_r - v) * (1.0 - p).ln()
        - lambda.ln()
        + lambda * f64::from(v);
    score.max(MIN_ACTIVITY_SCORE)
}

/// Counts, for each big, the littles of its share above `threshold`; true when any changed.
fn compute_bigs(littles: &[u8], bigs: &mut [u8], threshold: u8) -> bool {
    let per_big = littles.len() / bigs.len();
    let mut changed = false;
    for (b, chunk) in bigs.iter_mut().zip(littles.chunks(per_big)) {
        let sum = chunk.iter().filter(|&&l| l > threshold).count() as u8;
        if *b != sum {
            *b = sum;
            changed = true;
        }
    }
    changed
}

#[derive(Debug, Clone)]
struct Speaker<K> {
    key: K,
    paused: bool,
    scores: [f64; 3],
    last_level_change: Instant,
    min_level: u8,
    next_min_level: u8,
    next_min_level_window_len: u32,
    immediates: [u8; IMMEDIATE_BUFF_LEN],
    mediums: [u8; MEDIUMS_BUFF_LEN],
    longs: [u8; LONGS_BUFF_LEN],
    /// Circular buffer of loudness samples; the next one goes to `next_level_index`.
    levels: [u8; LEVELS_BUFF_LEN],
    next_level_index: usize,
}

impl<K> Speaker<K> {
    fn new(key: K, paused: bool, now: Instant) -> Self {
        Speaker {
            key,
            paused,
            scores: [MIN_ACTIVITY_SCORE; 3],
            last_level_change: now,
            min_level: MIN_LEVEL,
            next_min_level: MIN_LEVEL,
            next_min_level_window_len: 0,
            immediates: [0; IMMEDIATE_BUFF_LEN],
            mediums: [0; MEDIUMS_BUFF_LEN],
            longs: [0; LONGS_BUFF_LEN],
            levels: [0; LEVELS_BUFF_LEN],
            next_level_index: 0,
        }
    }

    /// A loudness sample (0 silent .. 127 loudest). A packet covering more than 20 ms (longer
    /// packetisation, DTX, a gap) fills one sample per 20 ms elapsed, at most the whole buffer.
    fn level_changed(&mut self, level: u8, now: Instant) {
        if self.last_level_change > now {
            return;
        }
        let elapsed = now - self.last_level_change;
        self.last_level_change = now;
        let b = level.min(MAX_LEVEL);
        let n = ((elapsed.as_millis() / SAMPLE.as_millis()) as usize).clamp(1, LEVELS_BUFF_LEN);
        for _ in 0..n {
            self.levels[self.next_level_index] = b;
            self.next_level_index = (self.next_level_index + 1) % LEVELS_BUFF_LEN;
        }
        self.update_min_level(b);
    }

    fn update_min_level(&mut self, level: u8) {
        if level == MIN_LEVEL {
            return;
        }
        if self.min_level == MIN_LEVEL || self.min_level > level {
            self.min_level = level;
            self.next_min_level = MIN_LEVEL;
            self.next_min_level_window_len = 0;
        } else if self.next_min_level == MIN_LEVEL {
            self.next_min_level = level;
            self.next_min_level_window_len = 1;
        } else {
            self.next_min_level = self.next_min_level.min(level);
            self.next_min_level_window_len += 1;
            if self.next_min_level_window_len >= MIN_LEVEL_WINDOW_LEN {
                let new = (f64::from(self.min_level) * f64::from(self.next_min_level)).sqrt();
                self.min_level = new.clamp(f64::from(MIN_LEVEL), f64::from(MAX_LEVEL)) as u8;
                self.next_min_level = MIN_LEVEL;
                self.next_min_level_window_len = 0;
            }
        }
    }

    fn compute_immediates(&mut self) -> bool {
        let floor = u32::from(self.min_level) + u32::from(SUBUNIT_LENGTH_N1);
        let mut changed = false;
        for i in 0..IMMEDIATE_BUFF_LEN {
            // Most recent first.
            let idx = (self.next_level_index + LEVELS_BUFF_LEN - i - 1) % LEVELS_BUFF_LEN;
            let mut level = self.levels[idx];
            if u32::from(level) < floor {
                level = MIN_LEVEL;
            }
            let immediate = level / SUBUNIT_LENGTH_N1;
            if self.immediates[i] != immediate {
                self.immediates[i] = immediate;
                changed = true;
            }
        }
        changed
    }

    fn eval_activity_scores(&mut self) {
        if !self.compute_immediates() {
            return;
        }
        self.scores[0] = activity_score(self.immediates[0], N1, 0.5, 0.78);
        if !compute_bigs(&self.immediates, &mut self.mediums, MEDIUM_THRESHOLD) {
            return;
        }
        self.scores[1] = activity_score(self.mediums[0], N2, 0.5, 24.0);
        if !compute_bigs(&self.mediums, &mut self.longs, LONG_THRESHOLD) {
            return;
        }
        self.scores[2] = activity_score(self.longs[0], N3, 0.5, 47.0);
    }
}

/// The observer's state.
#[derive(Debug, Clone)]
pub struct ActiveSpeakerObserver<K> {
    interval: Duration,
    speakers: Vec<Speaker<K>>,
    dominant: Option<K>,
    paused: bool,
    next: Option<Instant>,
    last_level_idle: Option<Instant>,
}

impl<K: Copy + Eq> ActiveSpeakerObserver<K> {
    /// A running observer evaluating every `interval` (see [`interval_from_ms`]), first one
    /// interval after `now`.
    pub fn new(interval: Duration, now: Instant) -> Self {
        let interval = interval.clamp(MIN_INTERVAL, MAX_INTERVAL);
        ActiveSpeakerObserver {
            interval,
            speakers: Vec::new(),
            dominant: None,
            paused: false,
            next: Some(now + interval),
            last_level_idle: None,
        }
    }

    /// The evaluation interval.
    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// The current dominant speaker.
    pub fn dominant(&self) -> Option<K> {
        self.dominant
    }

    /// Whether the observer is paused.
    pub fn is_paused(&self) -> bool {
        self.paused
    }

    /// Observes a producer (an error if it already is, as in mediasoup).
    pub fn add_producer(
        &mut self,
        key: K,
        producer_paused: bool,
        now: Instant,
    ) -> Result<(), ObserverError> {
        if self.contains(key) {
            return Err(ObserverError::AlreadyAdded);
        }
        self.speakers.push(Speaker::new(key, producer_paused, now));
        Ok(())
    }

    /// Whether a producer is observed.
    pub fn contains(&self, key: K) -> bool {
        self.speakers.iter().any(|s| s.key == key)
    }

    /// Number of observed producers.
    pub fn len(&self) -> usize {
        self.speakers.len()
    }

    /// Whether no producer is observed.
    pub fn is_empty(&self) -> bool {
        self.speakers.is_empty()
    }

    /// Stops observing a producer. When it was the dominant speaker a new one is chosen at
    /// once: the returned key, if one is.
    pub fn remove_producer(&mut self, key: K, now: Instant) -> Option<K> {
        let i = self.speakers.iter().position(|s| s.key == key)?;
        self.speakers.remove(i);
        if self.dominant == Some(key) {
            self.dominant = None;
            return self.update(now);
        }
        None
    }

    /// A producer was paused (it no longer challenges) or resumed.
    pub fn set_producer_paused(&mut self, key: K, paused: bool) {
        if let Some(s) = self.speakers.iter_mut().find(|s| s.key == key) {
            s.paused = paused;
        }
    }

    /// A packet of `key` carried audio level `level` (-dBov, 0 loudest .. 127 silent) at
    /// `now`. Packet path: a scan of the speakers and a write into fixed buffers.
    pub fn on_level(&mut self, key: K, level: u8, now: Instant) {
        if self.paused {
            return;
        }
        if let Some(s) = self.speakers.iter_mut().find(|s| s.key == key) {
            s.level_changed(MAX_LEVEL - level.min(MAX_LEVEL), now);
        }
    }

    /// Pauses evaluation.
    pub fn pause(&mut self) {
        self.paused = true;
        self.next = None;
    }

    /// Resumes evaluation, next one interval after `now`.
    pub fn resume(&mut self, now: Instant) {
        if self.paused {
            self.paused = false;
            self.next = Some(now + self.interval);
        }
    }

    /// When the next evaluation is due (None while paused).
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.next
    }

    /// Evaluates if due: the new dominant speaker when it changed.
    pub fn handle_timeout(&mut self, now: Instant) -> Option<K> {
        let next = self.next?;
        if now < next {
            return None;
        }
        let after = next + self.interval;
        self.next = Some(if after > now {
            after
        } else {
            now + self.interval
        });
        self.update(now)
    }

    fn update(&mut self, now: Instant) -> Option<K> {
        match self.last_level_idle {
            Some(t) if now.saturating_duration_since(t) >= LEVEL_IDLE_TIMEOUT => {
                self.timeout_idle_levels(now);
                self.last_level_idle = Some(now);
            }
            Some(_) => {}
            None => self.last_level_idle = Some(now),
        }
        if !self.speakers.is_empty() && self.calculate_active_speaker() {
            self.dominant
        } else {
            None
        }
    }

    fn timeout_idle_levels(&mut self, now: Instant) {
        let dominant = self.dominant;
        for s in self.speakers.iter_mut() {
            let idle = now.saturating_duration_since(s.last_level_change);
            if idle > SPEAKER_IDLE_TIMEOUT && dominant != Some(s.key) {
                s.paused = true;
            } else if idle > LEVEL_IDLE_TIMEOUT {
                s.level_changed(MIN_LEVEL, now);
            }
        }
    }

    /// True when the dominant speaker changed.
    fn calculate_active_speaker(&mut self) -> bool {
        let new = if self.speakers.len() == 1 {
            Some(self.speakers[0].key)
        } else {
            let current = self
                .dominant
                .and_then(|d| self.speakers.iter().position(|s| s.key == d));
            let (dom_idx, mut new) = match current {
                Some(i) => (i, None),
                None => (0, Some(self.speakers[0].key)),
            };
            self.speakers[dom_idx].eval_activity_scores();
            let dom_scores = self.speakers[dom_idx].scores;
            let mut best_c2 = C2;
            for s in self.speakers.iter_mut() {
                if Some(s.key) == self.dominant || s.paused {
                    continue;
                }
                s.eval_activity_scores();
                let c1 = (s.scores[0] / dom_scores[0]).ln();
                let c2 = (s.scores[1] / dom_scores[1]).ln();
                let c3 = (s.scores[2] / dom_scores[2]).ln();
                if c1 > C1 && c2 > C2 && c3 > C3 && c2 > best_c2 {
                    best_c2 = c2;
                    new = Some(s.key);
                }
            }
            new
        };
        match new {
            Some(k) if self.dominant != Some(k) => {
                self.dominant = Some(k);
                true
            }
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn constants_match_the_references() {
        assert_eq!(SUBUNIT_LENGTH_N1, 10);
        assert_eq!(IMMEDIATE_BUFF_LEN, 50);
        assert_eq!(MEDIUMS_BUFF_LEN, 10);
        assert_eq!(binomial_coefficient(13, 0), 1);
        assert_eq!(binomial_coefficient(13, 6), 1716);
        assert_eq!(binomial_coefficient(10, 10), 1);
        // Silence scores the floor; full-scale speech on the immediate scale ≈ 3.2.
        assert_eq!(activity_score(0, N1, 0.5, 0.78), MIN_ACTIVITY_SCORE);
        let s = activity_score(12, N1, 0.5, 0.78);
        assert!((s - 3.16).abs() < 0.01, "{s}");
        assert_eq!(interval_from_ms(10), MIN_INTERVAL);
        assert_eq!(interval_from_ms(300), DEFAULT_INTERVAL);
        assert_eq!(interval_from_ms(100_000), MAX_INTERVAL);
    }

    /// A talking voice in -dBov: mostly -25 dBov, with a quiet gap (-100) every 10th packet that
    /// sets the noise floor as real speech does.
    fn voice(i: u64) -> u8 {
        if i % 10 == 9 {
            100
        } else {
            25
        }
    }

    /// Drives `obs` for `duration` from `*t` in virtual time: 20 ms packets from `talker`
    /// (voice) and from `quiet` (digital silence, level 127), an evaluation whenever due.
    /// Returns the dominant-speaker changes with their times.
    fn run(
        obs: &mut ActiveSpeakerObserver<u8>,
        t: &mut Instant,
        duration: Duration,
        talker: u8,
        quiet: Option<u8>,
    ) -> Vec<(Duration, u8)> {
        let start = *t;
        let mut changes = Vec::new();
        let mut i = 0u64;
        while *t < start + duration {
            obs.on_level(talker, voice(i), *t);
            if let Some(q) = quiet {
                obs.on_level(q, 127, *t);
            }
            if obs.poll_timeout().is_some_and(|d| d <= *t) {
                if let Some(k) = obs.handle_timeout(*t) {
                    changes.push((*t - start, k));
                }
            }
            i += 1;
            *t += 20 * MS;
        }
        changes
    }

    #[test]
    fn switches_between_two_synthetic_speakers() {
        let t0 = Instant::now();
        let mut t = t0;
        let mut obs = ActiveSpeakerObserver::new(DEFAULT_INTERVAL, t0);
        // B is added first, so it is the initial choice; A talks and must take over.
        obs.add_producer(b'B', false, t0).unwrap();
        obs.add_producer(b'A', false, t0).unwrap();
        let changes = run(&mut obs, &mut t, 3000 * MS, b'A', Some(b'B'));
        assert_eq!(changes.last().map(|c| c.1), Some(b'A'), "{changes:?}");
        assert!(changes.last().unwrap().0 <= 1500 * MS, "{changes:?}");
        assert_eq!(obs.dominant(), Some(b'A'));
        // Swap: B talks, A goes quiet. The switch needs A's last second to fall silent (the
        // long scale), so it comes within ~1.5 s, and exactly once.
        let changes = run(&mut obs, &mut t, 4000 * MS, b'B', Some(b'A'));
        assert_eq!(changes.len(), 1, "{changes:?}");
        assert_eq!(changes[0].1, b'B');
        assert!(
            changes[0].0 >= 300 * MS && changes[0].0 <= 1800 * MS,
            "{changes:?}"
        );
        // And back.
        let changes = run(&mut obs, &mut t, 4000 * MS, b'A', Some(b'B'));
        assert_eq!(changes.iter().map(|c| c.1).collect::<Vec<_>>(), [b'A']);
    }

    #[test]
    fn a_paused_producer_does_not_challenge_and_silence_keeps_the_speaker() {
        let t0 = Instant::now();
        let mut t = t0;
        let mut obs = ActiveSpeakerObserver::new(DEFAULT_INTERVAL, t0);
        obs.add_producer(1u8, false, t0).unwrap();
        obs.add_producer(2u8, true, t0).unwrap();
        assert_eq!(
            obs.add_producer(1, false, t0),
            Err(ObserverError::AlreadyAdded)
        );
        // 2 talks but is paused: 1 stays dominant (the initial choice).
        let changes = run(&mut obs, &mut t, 3000 * MS, 2, Some(1));
        assert_eq!(changes, vec![(300 * MS, 1)]);
        // Resumed: it takes over.
        obs.set_producer_paused(2, false);
        let changes = run(&mut obs, &mut t, 3000 * MS, 2, Some(1));
        assert_eq!(changes.iter().map(|c| c.1).collect::<Vec<_>>(), [2]);
        // Both silent (nothing sent at all): levels decay, nobody challenges, 2 stays.
        let mut quiet_changes = 0;
        for _ in 0..30 {
            t += 300 * MS;
            if obs.handle_timeout(t).is_some() {
                quiet_changes += 1;
            }
        }
        assert_eq!(quiet_changes, 0);
        assert_eq!(obs.dominant(), Some(2));
        // Removing the dominant speaker picks the remaining one at once.
        assert_eq!(obs.remove_producer(2, t), Some(1));
        assert_eq!(obs.dominant(), Some(1));
        assert_eq!(obs.remove_producer(2, t), None);
        // Paused observer: no evaluation.
        obs.pause();
        assert_eq!(obs.poll_timeout(), None);
        assert_eq!(obs.handle_timeout(t + 1000 * MS), None);
        obs.resume(t);
        assert_eq!(obs.poll_timeout(), Some(t + DEFAULT_INTERVAL));
    }

    #[test]
    fn long_packets_fill_several_samples() {
        let t0 = Instant::now();
        let mut s: Speaker<u8> = Speaker::new(0, false, t0);
        s.level_changed(100, t0 + 60 * MS);
        assert_eq!(s.next_level_index, 3);
        s.level_changed(100, t0 + 60 * MS);
        assert_eq!(s.next_level_index, 4);
        // A long gap fills the buffer once, not more.
        s.level_changed(50, t0 + 10_000 * MS);
        assert_eq!(s.next_level_index, 4);
        assert!(s.levels.iter().all(|&l| l == 50));
        // Time going backwards is ignored.
        s.level_changed(10, t0);
        assert!(s.levels.iter().all(|&l| l == 50));
    }
}
