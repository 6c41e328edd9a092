//! The engine's side of scores and RTP observers (see `crate::score` and `crate::observer`):
//! observer API calls, the hooks producers' lifecycle calls, score updates on the report
//! timer and the events they produce. Kept apart from the packet path, which only counts.

use std::time::{Duration, Instant};

use uuid::Uuid;

use super::{not_found, Engine, EngineError, EngineEvent};
use crate::observer::audio_level::AudioLevelOptions;
use crate::observer::registry::ObserverEvent;
use crate::rtp_parameters::MediaKind;
use crate::score::{ConsumerScore, ProducerScore, ProducerScores, RecvCounters};

impl Engine {
    // ------------------------------------------------------------------ RTP observers

    /// Creates an AudioLevelObserver on a router.
    pub fn create_audio_level_observer(
        &mut self,
        router: &Uuid,
        opts: AudioLevelOptions,
        now: Instant,
    ) -> Result<Uuid, EngineError> {
        let rkey = self.router_key(router)?;
        let id = self.new_id();
        self.observers.create_audio_level(rkey, id, opts, now);
        Ok(id)
    }

    /// Creates an ActiveSpeakerObserver on a router, evaluated every `interval` (100 ms..5 s).
    pub fn create_active_speaker_observer(
        &mut self,
        router: &Uuid,
        interval: Duration,
        now: Instant,
    ) -> Result<Uuid, EngineError> {
        let rkey = self.router_key(router)?;
        let id = self.new_id();
        self.observers
            .create_active_speaker(rkey, id, interval, now);
        Ok(id)
    }

    fn observer_key(&self, observer: &Uuid) -> Result<usize, EngineError> {
        self.observers
            .key(observer)
            .ok_or_else(|| not_found("rtpObserver", observer))
    }

    /// Adds an audio producer of the observer's router to an observer.
    pub fn observer_add_producer(
        &mut self,
        observer: &Uuid,
        producer: &Uuid,
        now: Instant,
    ) -> Result<(), EngineError> {
        let okey = self.observer_key(observer)?;
        let pkey = self.producer_key(producer)?;
        let router = self.observers.get(okey).map(|o| o.router);
        let p = &mut self.producers[pkey];
        if Some(p.router) != router {
            return Err(not_found("producer (in this router)", producer));
        }
        if p.kind != MediaKind::Audio {
            return Err(EngineError::Invalid(format!(
                "producer {producer} is not an audio producer"
            )));
        }
        let added = self
            .observers
            .add_producer(okey, pkey, p.id, p.paused, now)
            .map_err(|e| EngineError::Invalid(e.to_string()))?;
        if added {
            p.observers.push(okey);
        }
        Ok(())
    }

    /// Removes a producer from an observer (not observed: nothing happens).
    pub fn observer_remove_producer(
        &mut self,
        observer: &Uuid,
        producer: &Uuid,
        now: Instant,
    ) -> Result<(), EngineError> {
        let okey = self.observer_key(observer)?;
        let pkey = self.producer_key(producer)?;
        self.unobserve(okey, pkey, now);
        Ok(())
    }

    fn unobserve(&mut self, okey: usize, pkey: usize, now: Instant) {
        let events = &mut self.events;
        self.observers.remove_producer(okey, pkey, now, &mut |e| {
            events.push_back(EngineEvent::Observer(e))
        });
        if let Some(p) = self.producers.get_mut(pkey) {
            p.observers.retain(|&k| k != okey);
        }
    }

    /// Pauses an observer.
    pub fn pause_observer(&mut self, observer: &Uuid, _now: Instant) -> Result<(), EngineError> {
        let okey = self.observer_key(observer)?;
        let events = &mut self.events;
        self.observers
            .pause(okey, &mut |e| events.push_back(EngineEvent::Observer(e)));
        Ok(())
    }

    /// Resumes an observer.
    pub fn resume_observer(&mut self, observer: &Uuid, now: Instant) -> Result<(), EngineError> {
        let okey = self.observer_key(observer)?;
        self.observers.resume(okey, now);
        Ok(())
    }

    /// Closes an observer.
    pub fn close_observer(&mut self, observer: &Uuid, _now: Instant) -> Result<(), EngineError> {
        let okey = self.observer_key(observer)?;
        self.drop_observer(okey);
        Ok(())
    }

    fn drop_observer(&mut self, okey: usize) {
        if let Some(o) = self.observers.close(okey) {
            for pkey in o.producer_keys() {
                if let Some(p) = self.producers.get_mut(pkey) {
                    p.observers.retain(|&k| k != okey);
                }
            }
        }
    }

    /// Hook: a router is closing; its observers close with `RouterClosed` events.
    pub(super) fn observers_router_closed(&mut self, rkey: usize) {
        for okey in self.observers.of_router(rkey) {
            if let Some(id) = self.observers.get(okey).map(|o| o.id) {
                self.drop_observer(okey);
                self.events
                    .push_back(EngineEvent::Observer(ObserverEvent::RouterClosed {
                        observer: id,
                    }));
            }
        }
    }

    /// Hook: a producer is closing; it leaves its observers.
    pub(super) fn observers_producer_closed(&mut self, pkey: usize, now: Instant) {
        let okeys = std::mem::take(&mut self.producers[pkey].observers);
        for okey in okeys {
            self.unobserve(okey, pkey, now);
        }
    }

    /// Hook: a producer was paused or resumed.
    pub(super) fn observers_producer_paused(&mut self, pkey: usize, paused: bool) {
        let p = &self.producers[pkey];
        if !p.observers.is_empty() {
            self.observers
                .set_producer_paused(&p.observers, pkey, paused);
        }
    }

    /// Timer: runs the observers whose interval is due.
    pub(super) fn run_observers(&mut self, now: Instant) {
        if self.observers.is_empty() {
            return;
        }
        let events = &mut self.events;
        self.observers
            .handle_timeout(now, &mut |e| events.push_back(EngineEvent::Observer(e)));
    }

    // ------------------------------------------------------------------ scores

    /// Report timer (every second): closes each producer stream's score interval, checks
    /// inactivity, and emits `ProducerScore` (and `ConsumerScore` for its consumers) where a
    /// score changed or a stream started.
    pub(super) fn update_scores(&mut self, now: Instant) {
        for pkey in 0..self.producers.capacity() {
            let Some(p) = self.producers.get_mut(pkey) else {
                continue;
            };
            let mut changed = std::mem::take(&mut p.score_dirty);
            for s in p.streams.iter_mut() {
                if s.packets == 0 {
                    continue;
                }
                if s.score.check_inactivity(now, s.last_packet) {
                    changed = true;
                    continue;
                }
                let totals = RecvCounters {
                    expected: s.stats.packets_expected(),
                    // RecvStats counts retransmissions as received; scores count them apart.
                    received: s.stats.packets_received().saturating_sub(s.rtx_packets),
                    repaired: s.repaired,
                    retransmitted: s.rtx_packets,
                };
                if s.score.update(totals, s.rtx_ssrc.is_some()).is_some() {
                    changed = true;
                }
            }
            if changed {
                self.emit_producer_score(pkey);
            }
        }
    }

    fn emit_producer_score(&mut self, pkey: usize) {
        let p = &self.producers[pkey];
        let mut scores = ProducerScores::default();
        for (i, s) in p.streams.iter().enumerate() {
            if s.packets > 0 {
                scores.push(ProducerScore {
                    encoding_idx: i,
                    ssrc: s.ssrc.unwrap_or(0),
                    score: s.score.score(),
                });
            }
        }
        self.events.push_back(EngineEvent::ProducerScore {
            producer: p.id,
            scores,
        });
        for i in 0..self.producers[pkey].consumers.len() {
            let ckey = self.producers[pkey].consumers[i];
            self.emit_consumer_score(ckey);
        }
    }

    /// Queues a consumer's `ConsumerScore` event (fixed size: no allocation).
    pub(super) fn emit_consumer_score(&mut self, ckey: usize) {
        let Some(c) = self.consumers.get(ckey) else {
            return;
        };
        let p = &self.producers[c.producer];
        let stream_score = |s: &crate::producer::ProducerStream| {
            if s.packets > 0 {
                s.score.score()
            } else {
                0
            }
        };
        let forwarded = c.current_layer.or((p.streams.len() == 1).then_some(0));
        let producer_score = forwarded
            .and_then(|l| p.streams.get(l))
            .map_or(0, stream_score);
        let score = ConsumerScore::new(
            c.score.score(),
            producer_score,
            p.streams.iter().map(stream_score),
        );
        self.events.push_back(EngineEvent::ConsumerScore {
            consumer: c.id,
            score,
        });
    }
}
