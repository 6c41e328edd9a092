//! Consumer: one receiver's copy of a producer's stream. Rewrites SSRC, payload type, sequence
//! number, timestamp and header-extension ids so the receiver sees one continuous stream across
//! pauses and (simulcast) layer switches; holds video until a keyframe after every resync.

use std::time::{Duration, Instant};

use uuid::Uuid;

use crate::codecs::Vp8Descriptor;
use crate::keys::{ProducerKey, TransportKey};
use crate::rtp::{write_forwarded, Rewrite, RtpHeader};
use crate::rtp_parameters::{MediaKind, RtpParameters};
use crate::seq_map::SeqMap;

/// Highest VP8 temporal layer index (TID is two bits).
pub const MAX_TEMPORAL_LAYER: u8 = 3;

/// Counters of a consumer.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct ConsumerCounters {
    /// RTP packets sent.
    pub packets: u64,
    /// RTP bytes sent.
    pub bytes: u64,
    /// Retransmissions sent (RTX or plain).
    pub retransmitted: u64,
    /// NACKed packets we no longer had.
    pub nack_misses: u64,
    /// PLI/FIR received from the consumer.
    pub keyframe_requests: u64,
    /// NACK packets received.
    pub nacks: u64,
    /// Packets not sent because their temporal layer is above the one forwarded.
    pub temporal_drops: u64,
}

impl ConsumerCounters {
    /// Adds `o` into `self` (the worker's running totals, [`crate::metrics::TrafficTotals`]).
    pub fn add(&mut self, o: &ConsumerCounters) {
        self.packets += o.packets;
        self.bytes += o.bytes;
        self.retransmitted += o.retransmitted;
        self.nack_misses += o.nack_misses;
        self.keyframe_requests += o.keyframe_requests;
        self.nacks += o.nacks;
        self.temporal_drops += o.temporal_drops;
    }
}

/// A consumer owned by a worker.
pub struct Consumer {
    /// Public id.
    pub id: Uuid,
    /// audio or video.
    pub kind: MediaKind,
    /// Producer key.
    pub producer: ProducerKey,
    /// Producer id (for events after the producer is gone).
    pub producer_id: Uuid,
    /// Transport key.
    pub transport: TransportKey,
    /// The parameters the receiver was told.
    pub rtp_parameters: RtpParameters,
    /// "simple", "simulcast" or "svc".
    pub consumer_type: &'static str,
    /// Paused by the API.
    pub paused: bool,
    /// Mirrors the producer's pause state.
    pub producer_paused: bool,
    /// Outgoing media SSRC.
    pub ssrc: u32,
    /// Outgoing RTX SSRC and PT when RTX was negotiated.
    pub rtx: Option<(u32, u8)>,
    /// Producer PT → consumer PT (255 = drop).
    pub pt_map: [u8; 128],
    /// Producer ext id → consumer ext id (0 = drop).
    pub ext_map: [u8; 256],
    /// MID extension (consumer id, value) written into every packet.
    pub mid: Option<(u8, Vec<u8>)>,
    /// Producer stream (encoding) being forwarded.
    pub current_layer: Option<usize>,
    /// Encoding we want to forward (simulcast).
    pub target_layer: usize,
    /// Preferred spatial layer set by the API (None = highest).
    pub preferred_layer: Option<usize>,
    /// VP8 temporal layer being forwarded: packets with a higher TID are dropped.
    pub current_temporal: u8,
    /// Temporal layer wanted (the allocator's choice under the preference).
    pub target_temporal: u8,
    /// Preferred temporal layer set by the API (None = highest).
    pub preferred_temporal: Option<u8>,
    /// Highest VP8 TID seen in forwarded-layer packets (what "all temporal layers" means).
    pub max_tid_seen: Option<u8>,
    /// The media codec is VP8: picture id and TL0PICIDX are rewritten, temporal layers filtered.
    pub vp8: bool,
    /// Layers last reported with `layers_switched` (spatial, temporal).
    pub reported_layers: (Option<usize>, Option<u8>),
    /// Next packet needs new offsets (start, resume, layer switch).
    pub sync_required: bool,
    /// Producer → consumer sequence number, picture id and TL0PICIDX offsets, with the packets
    /// dropped on purpose taken out (see [`SeqMap`]).
    pub seq_map: SeqMap,
    /// Last VP8 picture id sent (for continuity across a resync).
    pub last_picture_id: u16,
    /// Last VP8 TL0PICIDX sent.
    pub last_tl0: u8,
    /// Added to the producer's timestamps.
    pub ts_offset: u32,
    /// Last sequence number sent.
    pub last_seq: u16,
    /// Last timestamp sent.
    pub last_ts: u32,
    /// When the last packet was sent.
    pub last_sent: Option<Instant>,
    /// Whether anything was sent yet.
    pub started: bool,
    /// Next RTX sequence number.
    pub rtx_seq: u16,
    /// Clock rate of the media codec.
    pub clock_rate: u32,
    /// Priority (1..=255) set by the API.
    pub priority: u8,
    /// Counters.
    pub counters: ConsumerCounters,
    /// Last receiver report: fraction lost (0..=255) and RTT if known.
    pub last_rr: Option<(u8, Option<Duration>)>,
    /// Quality score of what it sends (mediasoup's), updated on the peer's receiver reports.
    pub score: crate::score::SendScore,
    /// Outgoing transport-wide sequence number extension id (0: not negotiated): every packet
    /// sent carries the transport's own sequence number there.
    pub twcc_ext: u8,
    /// When the allocator first wanted a layer above the target (upgrades wait for it to hold).
    pub upgrade_since: Option<Instant>,
    /// Set by [`forward`](Self::forward) when the forwarded layers changed (a spatial switch
    /// really happened, at a keyframe, or the temporal layer moved); the engine turns it into a
    /// `layerschange` event and clears it.
    pub layer_switched: bool,
}

/// Outcome of offering a packet to a consumer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ForwardOutcome {
    /// Written: this many bytes of plaintext RTP.
    Sent(usize),
    /// Not forwarded (paused, other layer, waiting for a keyframe).
    Skipped,
    /// Waiting for a keyframe on this stream: the engine should ask for one.
    NeedKeyframe,
}

impl Consumer {
    /// Whether media flows (neither side paused).
    pub fn is_active(&self) -> bool {
        !self.paused && !self.producer_paused
    }

    /// Marks that the next forwarded packet starts a new stretch (resume, layer switch).
    pub fn request_sync(&mut self) {
        self.sync_required = true;
    }

    /// Offers a producer packet from encoding `layer` (parsed as `hdr`; `vp8` is its VP8
    /// payload descriptor when the codec is VP8) and writes the rewritten plaintext packet into
    /// `dst` if it is to be sent. `twcc_seq` is the sending transport's next transport-wide
    /// sequence number, written when [`twcc_ext`](Self::twcc_ext) is set (the caller confirms
    /// it to the transport when the outcome is `Sent`).
    ///
    /// Spatial layers switch at a keyframe of the target layer; the temporal layer moves at the
    /// start of a frame: down at once, up at a frame of the new layer with the layer-sync bit
    /// (decodable from the base layer). Packets above the forwarded temporal layer are dropped
    /// without leaving a gap in the sequence numbers or picture ids (see [`SeqMap`]).
    #[allow(clippy::too_many_arguments)]
    pub fn forward(
        &mut self,
        layer: usize,
        src: &[u8],
        hdr: &RtpHeader,
        is_keyframe: bool,
        vp8: Option<&Vp8Descriptor>,
        now: Instant,
        twcc_seq: u16,
        dst: &mut [u8],
    ) -> ForwardOutcome {
        if !self.is_active() {
            return ForwardOutcome::Skipped;
        }
        let video = self.kind == MediaKind::Video;
        // Simulcast: switch to the target layer only at one of its keyframes.
        if self.current_layer != Some(layer) {
            if layer != self.target_layer {
                return ForwardOutcome::Skipped;
            }
            if video && !is_keyframe {
                return ForwardOutcome::NeedKeyframe;
            }
            self.current_layer = Some(layer);
            self.sync_required = true;
        }
        if self.sync_required {
            if video && !is_keyframe {
                return ForwardOutcome::NeedKeyframe;
            }
            self.resync(hdr, vp8, now);
            // Everything after a keyframe decodes: forward the temporal layer wanted.
            self.current_temporal = self.target_temporal;
        }
        let vp8 = vp8.filter(|_| self.vp8);
        if let Some((d, tid)) = vp8.and_then(|d| d.tid.map(|t| (d, t))) {
            self.max_tid_seen = Some(self.max_tid_seen.map_or(tid, |m| m.max(tid)));
            if d.frame_start {
                if self.target_temporal < self.current_temporal {
                    self.current_temporal = self.target_temporal;
                } else if tid > self.current_temporal && tid <= self.target_temporal && d.layer_sync
                {
                    self.current_temporal = tid;
                }
            }
            if tid > self.current_temporal {
                self.seq_map
                    .drop_packet(hdr.sequence, d.picture_id.map(|p| p.0));
                self.counters.temporal_drops += 1;
                self.note_layers();
                return ForwardOutcome::Skipped;
            }
        }
        let pt = self.pt_map[(hdr.payload_type & 0x7f) as usize];
        if pt == 255 {
            return ForwardOutcome::Skipped;
        }
        // A packet from before the resync point (reordered) has no offsets: drop it.
        let Some(off) = self.seq_map.lookup(hdr.sequence) else {
            return ForwardOutcome::Skipped;
        };
        let seq = hdr.sequence.wrapping_add(off.seq);
        let ts = hdr.timestamp.wrapping_add(self.ts_offset);
        let twcc = twcc_seq.to_be_bytes();
        let extra = [(self.twcc_ext, &twcc[..])];
        let rw = Rewrite {
            ssrc: self.ssrc,
            payload_type: pt,
            sequence: seq,
            timestamp: ts,
            ext_map: &self.ext_map,
            mid: self.mid.as_ref().map(|(id, v)| (*id, v.as_slice())),
            extra: if self.twcc_ext != 0 { &extra } else { &[] },
            rtx_osn: None,
        };
        match write_forwarded(src, hdr, dst, &rw) {
            Ok(n) => {
                let newest = !self.started || seq_newer(seq, self.last_seq);
                if let Some(d) = vp8 {
                    // In place, in the outgoing copy: the payload is its last bytes.
                    let pid = d.picture_id.map_or(0, |p| p.0).wrapping_add(off.picture_id);
                    let tl0 = d.tl0_pic_idx.unwrap_or(0).wrapping_add(off.tl0);
                    d.rewrite(&mut dst[n - hdr.payload_len..n], pid, tl0);
                    if newest {
                        if d.picture_id.is_some() {
                            self.last_picture_id = pid;
                        }
                        if d.tl0_pic_idx.is_some() {
                            self.last_tl0 = tl0;
                        }
                    }
                }
                if newest {
                    self.last_seq = seq;
                    self.last_ts = ts;
                    self.last_sent = Some(now);
                }
                self.started = true;
                self.counters.packets += 1;
                self.counters.bytes += n as u64;
                self.note_layers();
                ForwardOutcome::Sent(n)
            }
            Err(_) => ForwardOutcome::Skipped,
        }
    }

    /// The layers being forwarded as `layerschange` reports them: the spatial layer and, when
    /// the stream carries VP8 temporal ids, the temporal one.
    pub fn current_layers(&self) -> (Option<usize>, Option<u8>) {
        let temporal = self
            .max_tid_seen
            .map(|m| m.min(self.current_temporal))
            .filter(|_| self.current_layer.is_some());
        (self.current_layer, temporal)
    }

    /// Flags a `layerschange` when the forwarded layers differ from the last reported.
    fn note_layers(&mut self) {
        let now = self.current_layers();
        if now != self.reported_layers {
            self.reported_layers = now;
            self.layer_switched = true;
        }
    }

    /// Computes offsets so that this packet follows the last one sent: sequence number and
    /// timestamp, and for VP8 the picture id and TL0PICIDX.
    fn resync(&mut self, hdr: &RtpHeader, vp8: Option<&Vp8Descriptor>, now: Instant) {
        self.sync_required = false;
        if !self.started {
            self.ts_offset = 0;
            self.seq_map.reset(hdr.sequence, 0, 0, 0);
            return;
        }
        let next_seq = self.last_seq.wrapping_add(1);
        let elapsed = self
            .last_sent
            .map(|t| now.duration_since(t))
            .unwrap_or_default();
        let ticks =
            ((elapsed.as_micros() as u64 * self.clock_rate as u64) / 1_000_000).max(1) as u32;
        let next_ts = self.last_ts.wrapping_add(ticks);
        self.ts_offset = next_ts.wrapping_sub(hdr.timestamp);
        let (pid_off, tl0_off) = match vp8 {
            Some(d) => (
                d.picture_id.map_or(0, |p| {
                    self.last_picture_id.wrapping_add(1).wrapping_sub(p.0)
                }),
                d.tl0_pic_idx
                    .map_or(0, |t| self.last_tl0.wrapping_add(1).wrapping_sub(t)),
            ),
            None => (0, 0),
        };
        self.seq_map.reset(
            hdr.sequence,
            next_seq.wrapping_sub(hdr.sequence),
            pid_off,
            tl0_off,
        );
    }

    /// Producer sequence number for a sequence number the receiver NACKed, if it was sent in the
    /// current stretch.
    pub fn producer_seq(&self, consumer_seq: u16) -> Option<u16> {
        self.seq_map.reverse(consumer_seq).map(|(seq, _)| seq)
    }

    /// Writes a retransmission of the stored producer packet `src` for the receiver's `consumer_seq`:
    /// RTX when negotiated, else the same packet again; with its own transport-wide sequence
    /// number `twcc_seq` as in [`forward`](Self::forward).
    pub fn write_retransmission(
        &mut self,
        src: &[u8],
        hdr: &RtpHeader,
        consumer_seq: u16,
        twcc_seq: u16,
        dst: &mut [u8],
    ) -> Option<usize> {
        let pt = self.pt_map[(hdr.payload_type & 0x7f) as usize];
        if pt == 255 {
            return None;
        }
        let (_, off) = self.seq_map.reverse(consumer_seq)?;
        let ts = hdr.timestamp.wrapping_add(self.ts_offset);
        let (ssrc, payload_type, sequence, rtx_osn) = match self.rtx {
            Some((rtx_ssrc, rtx_pt)) => {
                self.rtx_seq = self.rtx_seq.wrapping_add(1);
                (rtx_ssrc, rtx_pt, self.rtx_seq, Some(consumer_seq))
            }
            None => (self.ssrc, pt, consumer_seq, None),
        };
        let twcc = twcc_seq.to_be_bytes();
        let extra = [(self.twcc_ext, &twcc[..])];
        let rw = Rewrite {
            ssrc,
            payload_type,
            sequence,
            timestamp: ts,
            ext_map: &self.ext_map,
            mid: self.mid.as_ref().map(|(id, v)| (*id, v.as_slice())),
            extra: if self.twcc_ext != 0 { &extra } else { &[] },
            rtx_osn,
        };
        let n = write_forwarded(src, hdr, dst, &rw).ok()?;
        if self.vp8 {
            // The picture id / TL0PICIDX the receiver saw in the original.
            if let Some(d) = Vp8Descriptor::parse(hdr.payload(src)) {
                let pid = d.picture_id.map_or(0, |p| p.0).wrapping_add(off.picture_id);
                let tl0 = d.tl0_pic_idx.unwrap_or(0).wrapping_add(off.tl0);
                d.rewrite(&mut dst[n - hdr.payload_len..n], pid, tl0);
            }
        }
        self.counters.retransmitted += 1;
        Some(n)
    }
}

/// `a` is newer than `b` in sequence-number space.
pub fn seq_newer(a: u16, b: u16) -> bool {
    a != b && a.wrapping_sub(b) < 0x8000
}

/// `a` is older than `b` in sequence-number space.
pub fn seq_older(a: u16, b: u16) -> bool {
    seq_newer(b, a)
}
