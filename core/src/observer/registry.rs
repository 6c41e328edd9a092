//! The RTP observers of one worker: creation, membership, pause/resume, the packet-path hook
//! and the timers, with events naming observers and producers by their public ids.
//!
//! The engine keeps one [`RtpObservers`] and, per producer, the keys of the observers that
//! watch it (so the packet path visits only those). Producers are known here by the engine's
//! producer key, with their id for events.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use slab::Slab;
use uuid::Uuid;

use super::active_speaker::ActiveSpeakerObserver;
use super::audio_level::{AudioLevelEvent, AudioLevelObserver, AudioLevelOptions};
use super::ObserverError;

/// What observers report (through the engine's event queue).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ObserverEvent {
    /// AudioLevelObserver: loudest producers, loudest first, with their average dBov.
    Volumes {
        /// Observer id.
        observer: Uuid,
        /// (producer id, average volume in dBov), loudest first.
        volumes: Vec<(Uuid, i8)>,
    },
    /// AudioLevelObserver: no producer reached the threshold.
    Silence {
        /// Observer id.
        observer: Uuid,
    },
    /// ActiveSpeakerObserver: a new dominant speaker.
    DominantSpeaker {
        /// Observer id.
        observer: Uuid,
        /// The dominant producer.
        producer: Uuid,
    },
    /// The observer was closed because its router closed.
    RouterClosed {
        /// Observer id.
        observer: Uuid,
    },
}

/// The two kinds of observer.
#[derive(Debug, Clone)]
pub enum ObserverKind {
    /// Loudest producers per interval.
    AudioLevel(AudioLevelObserver<usize>),
    /// Dominant speaker.
    ActiveSpeaker(ActiveSpeakerObserver<usize>),
}

/// One observer.
#[derive(Debug, Clone)]
pub struct RtpObserver {
    /// Public id.
    pub id: Uuid,
    /// Router key.
    pub router: usize,
    /// State.
    pub kind: ObserverKind,
    /// Observed producers: (key, id).
    producers: Vec<(usize, Uuid)>,
}

impl RtpObserver {
    /// Keys of the observed producers.
    pub fn producer_keys(&self) -> impl Iterator<Item = usize> + '_ {
        self.producers.iter().map(|p| p.0)
    }

    /// Whether the observer is paused.
    pub fn is_paused(&self) -> bool {
        match &self.kind {
            ObserverKind::AudioLevel(o) => o.is_paused(),
            ObserverKind::ActiveSpeaker(o) => o.is_paused(),
        }
    }

    fn producer_id(&self, key: usize) -> Option<Uuid> {
        self.producers.iter().find(|p| p.0 == key).map(|p| p.1)
    }
}

/// All observers of a worker.
#[derive(Debug, Default)]
pub struct RtpObservers {
    slab: Slab<RtpObserver>,
    ids: HashMap<Uuid, usize>,
}

impl RtpObservers {
    /// No observers.
    pub fn new() -> Self {
        Self::default()
    }

    /// The key of an observer id.
    pub fn key(&self, id: &Uuid) -> Option<usize> {
        self.ids.get(id).copied()
    }

    /// An observer by key.
    pub fn get(&self, key: usize) -> Option<&RtpObserver> {
        self.slab.get(key)
    }

    /// Number of observers.
    pub fn len(&self) -> usize {
        self.slab.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.slab.is_empty()
    }

    fn insert(&mut self, router: usize, id: Uuid, kind: ObserverKind) -> usize {
        let key = self.slab.insert(RtpObserver {
            id,
            router,
            kind,
            producers: Vec::new(),
        });
        self.ids.insert(id, key);
        key
    }

    /// Creates an AudioLevelObserver `id` on router `router`; returns its key.
    pub fn create_audio_level(
        &mut self,
        router: usize,
        id: Uuid,
        opts: AudioLevelOptions,
        now: Instant,
    ) -> usize {
        self.insert(
            router,
            id,
            ObserverKind::AudioLevel(AudioLevelObserver::new(opts, now)),
        )
    }

    /// Creates an ActiveSpeakerObserver `id` on router `router`; returns its key.
    pub fn create_active_speaker(
        &mut self,
        router: usize,
        id: Uuid,
        interval: Duration,
        now: Instant,
    ) -> usize {
        self.insert(
            router,
            id,
            ObserverKind::ActiveSpeaker(ActiveSpeakerObserver::new(interval, now)),
        )
    }

    /// Observes producer `pkey` (id `pid`) with observer `okey`. Ok(false) when an
    /// AudioLevelObserver already had it (nothing changes).
    pub fn add_producer(
        &mut self,
        okey: usize,
        pkey: usize,
        pid: Uuid,
        producer_paused: bool,
        now: Instant,
    ) -> Result<bool, ObserverError> {
        let Some(o) = self.slab.get_mut(okey) else {
            return Ok(false);
        };
        if o.producers.iter().any(|p| p.0 == pkey) {
            return match o.kind {
                ObserverKind::AudioLevel(_) => Ok(false),
                ObserverKind::ActiveSpeaker(_) => Err(ObserverError::AlreadyAdded),
            };
        }
        match &mut o.kind {
            ObserverKind::AudioLevel(a) => a.add_producer(pkey, producer_paused),
            ObserverKind::ActiveSpeaker(s) => s.add_producer(pkey, producer_paused, now)?,
        }
        o.producers.push((pkey, pid));
        Ok(true)
    }

    /// Stops observing producer `pkey` (it was removed or closed); a removed dominant speaker
    /// may name a new one at once. False when it was not observed.
    pub fn remove_producer(
        &mut self,
        okey: usize,
        pkey: usize,
        now: Instant,
        out: &mut impl FnMut(ObserverEvent),
    ) -> bool {
        let Some(o) = self.slab.get_mut(okey) else {
            return false;
        };
        let Some(i) = o.producers.iter().position(|p| p.0 == pkey) else {
            return false;
        };
        o.producers.remove(i);
        match &mut o.kind {
            ObserverKind::AudioLevel(a) => {
                a.remove_producer(pkey);
            }
            ObserverKind::ActiveSpeaker(s) => {
                if let Some(k) = s.remove_producer(pkey, now) {
                    if let Some(producer) = o.producer_id(k) {
                        out(ObserverEvent::DominantSpeaker {
                            observer: o.id,
                            producer,
                        });
                    }
                }
            }
        }
        true
    }

    /// Producer `pkey`, watched by observers `okeys`, was paused or resumed.
    pub fn set_producer_paused(&mut self, okeys: &[usize], pkey: usize, paused: bool) {
        for &k in okeys {
            match self.slab.get_mut(k).map(|o| &mut o.kind) {
                Some(ObserverKind::AudioLevel(a)) => a.set_producer_paused(pkey, paused),
                Some(ObserverKind::ActiveSpeaker(s)) => s.set_producer_paused(pkey, paused),
                None => {}
            }
        }
    }

    /// Packet path: a packet of producer `pkey` (watched by `okeys`) carried audio level
    /// `level` (-dBov). No allocation.
    pub fn on_level(&mut self, okeys: &[usize], pkey: usize, level: u8, now: Instant) {
        for &k in okeys {
            match self.slab.get_mut(k).map(|o| &mut o.kind) {
                Some(ObserverKind::AudioLevel(a)) => a.on_level(pkey, level),
                Some(ObserverKind::ActiveSpeaker(s)) => s.on_level(pkey, level, now),
                None => {}
            }
        }
    }

    /// Pauses an observer (an AudioLevelObserver that was reporting volumes reports silence).
    pub fn pause(&mut self, okey: usize, out: &mut impl FnMut(ObserverEvent)) {
        let Some(o) = self.slab.get_mut(okey) else {
            return;
        };
        match &mut o.kind {
            ObserverKind::AudioLevel(a) => {
                if let Some(AudioLevelEvent::Silence) = a.pause() {
                    out(ObserverEvent::Silence { observer: o.id });
                }
            }
            ObserverKind::ActiveSpeaker(s) => s.pause(),
        }
    }

    /// Resumes an observer.
    pub fn resume(&mut self, okey: usize, now: Instant) {
        match self.slab.get_mut(okey).map(|o| &mut o.kind) {
            Some(ObserverKind::AudioLevel(a)) => a.resume(now),
            Some(ObserverKind::ActiveSpeaker(s)) => s.resume(now),
            None => {}
        }
    }

    /// Removes an observer; the caller unlinks its producers (see
    /// [`RtpObserver::producer_keys`]).
    pub fn close(&mut self, okey: usize) -> Option<RtpObserver> {
        let o = self.slab.try_remove(okey)?;
        self.ids.remove(&o.id);
        Some(o)
    }

    /// Keys of the observers of router `router`.
    pub fn of_router(&self, router: usize) -> Vec<usize> {
        self.slab
            .iter()
            .filter(|(_, o)| o.router == router)
            .map(|(k, _)| k)
            .collect()
    }

    /// The earliest timer of any observer.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.slab
            .iter()
            .filter_map(|(_, o)| match &o.kind {
                ObserverKind::AudioLevel(a) => a.poll_timeout(),
                ObserverKind::ActiveSpeaker(s) => s.poll_timeout(),
            })
            .min()
    }

    /// Runs the observers whose interval is due; reports through `out`.
    pub fn handle_timeout(&mut self, now: Instant, out: &mut impl FnMut(ObserverEvent)) {
        for (_, o) in self.slab.iter_mut() {
            match &mut o.kind {
                ObserverKind::AudioLevel(a) => match a.handle_timeout(now) {
                    Some(AudioLevelEvent::Volumes(v)) => {
                        let volumes = v
                            .into_iter()
                            .filter_map(|(k, vol)| {
                                o.producers.iter().find(|p| p.0 == k).map(|p| (p.1, vol))
                            })
                            .collect();
                        out(ObserverEvent::Volumes {
                            observer: o.id,
                            volumes,
                        });
                    }
                    Some(AudioLevelEvent::Silence) => {
                        out(ObserverEvent::Silence { observer: o.id })
                    }
                    None => {}
                },
                ObserverKind::ActiveSpeaker(s) => {
                    if let Some(k) = s.handle_timeout(now) {
                        if let Some(producer) = o.producers.iter().find(|p| p.0 == k) {
                            out(ObserverEvent::DominantSpeaker {
                                observer: o.id,
                                producer: producer.1,
                            });
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_routes_levels_and_reports_by_id() {
        let t0 = Instant::now();
        let ms = Duration::from_millis(1);
        let mut r = RtpObservers::new();
        let (alo_id, aso_id) = (Uuid::from_u128(1), Uuid::from_u128(2));
        let alo = r.create_audio_level(0, alo_id, AudioLevelOptions::default(), t0);
        let aso = r.create_active_speaker(0, aso_id, Duration::from_millis(300), t0);
        let (p1, p2) = (Uuid::new_v4(), Uuid::new_v4());
        assert_eq!(r.add_producer(alo, 10, p1, false, t0), Ok(true));
        assert_eq!(r.add_producer(alo, 10, p1, false, t0), Ok(false));
        assert_eq!(r.add_producer(alo, 11, p2, false, t0), Ok(true));
        assert_eq!(r.add_producer(aso, 10, p1, false, t0), Ok(true));
        assert_eq!(
            r.add_producer(aso, 10, p1, false, t0),
            Err(ObserverError::AlreadyAdded)
        );
        assert_eq!(r.of_router(0).len(), 2);
        assert_eq!(r.poll_timeout(), Some(t0 + 300 * ms));
        let links = [alo, aso];
        let mut events = Vec::new();
        let mut t = t0;
        while t < t0 + 1000 * ms {
            r.on_level(&links, 10, 30, t);
            r.on_level(&links[..1], 11, 60, t);
            t += 20 * ms;
            r.handle_timeout(t, &mut |e| events.push(e));
        }
        assert_eq!(
            events,
            vec![
                ObserverEvent::DominantSpeaker {
                    observer: aso_id,
                    producer: p1
                },
                ObserverEvent::Volumes {
                    observer: alo_id,
                    volumes: vec![(p1, -30)]
                }
            ]
        );
        events.clear();
        r.pause(alo, &mut |e| events.push(e));
        assert_eq!(events, vec![ObserverEvent::Silence { observer: alo_id }]);
        assert!(r.get(alo).unwrap().is_paused());
        assert!(r.remove_producer(alo, 10, t, &mut |e| events.push(e)));
        assert!(!r.remove_producer(alo, 10, t, &mut |e| events.push(e)));
        let closed = r.close(aso).unwrap();
        assert_eq!(closed.producer_keys().collect::<Vec<_>>(), [10]);
        assert_eq!(r.key(&aso_id), None);
        assert_eq!(r.key(&alo_id), Some(alo));
    }
}
