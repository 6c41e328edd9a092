//! Producer: a media source a peer sends into a router. Keeps per-encoding receive state (stats,
//! NACK generation, a retransmission store for consumers' NACKs) and the maps that turn the peer's
//! payload types and header-extension ids into the router's.

use std::time::{Duration, Instant};

use uuid::Uuid;

use crate::codecs::PayloadCodec;
use crate::keys::{ConsumerKey, RouterKey, TransportKey};
use crate::rtp::RtpHeader;
use crate::rtp_parameters::{is_rtx_mime_type, MediaKind, ParamValue, RtpParameters};
use crate::rtp_stream::{NackConfig, NackGenerator, RecvStats, RetransmitStore};
use crate::score::RecvScore;

/// Slots in a video stream's retransmission store (about 1 s of 1 Mbit/s video).
pub const VIDEO_RTX_SLOTS: usize = 512;

/// Minimum spacing of keyframe requests sent upstream for one stream while the last one is
/// unanswered (a keyframe arriving answers it, and the next request may go out at once).
pub const KEYFRAME_REQUEST_INTERVAL: Duration = Duration::from_millis(500);

/// Receive state of one encoding (simulcast layer, or the only stream).
pub struct ProducerStream {
    /// Media SSRC, signaled or learned from the first packet (MID/RID matching).
    pub ssrc: Option<u32>,
    /// RTX SSRC, signaled or learned.
    pub rtx_ssrc: Option<u32>,
    /// RID of this encoding (simulcast).
    pub rid: Option<String>,
    /// SSRC consumers see in dumps (the router's mapped SSRC).
    pub mapped_ssrc: u32,
    /// Receive statistics (loss, jitter) for RTCP receiver reports.
    pub stats: RecvStats,
    /// Missing sequence numbers to NACK upstream.
    pub nack: NackGenerator,
    /// Recent packets, to answer consumers' NACKs (video only).
    pub store: Option<RetransmitStore>,
    /// Packets received (including retransmissions).
    pub packets: u64,
    /// Bytes received.
    pub bytes: u64,
    /// Retransmitted packets received (RTX).
    pub rtx_packets: u64,
    /// RTX packets repeating a packet already received (probes): not forwarded.
    pub rtx_duplicates: u64,
    /// When the last packet arrived.
    pub last_packet: Option<Instant>,
    /// Reference instant for arrival times in RTP clock units (jitter).
    pub epoch: Instant,
    /// When we last asked for a keyframe on this stream.
    pub last_keyframe_request: Option<Instant>,
    /// Last sender report: (NTP middle 32 bits, arrival) for DLSR.
    pub last_sr: Option<(u32, Instant)>,
    /// Quality score (mediasoup's), updated on the report timer.
    pub score: RecvScore,
    /// Missing packets recovered by a retransmission (for the score).
    pub repaired: u64,
    /// Measured bitrate, sampled by the layer allocator.
    pub rate: crate::bwe::alloc::RateMeter,
    /// Bytes received per VP8 temporal layer (TID), for the allocator's per-layer rates.
    pub temporal_bytes: [u64; 4],
    /// Measured bitrate of each temporal layer alone (sampled with `rate`).
    pub temporal_rate: [crate::bwe::alloc::RateMeter; 4],
    /// Highest VP8 TID seen on this stream (None: no temporal layer ids).
    pub max_tid: Option<u8>,
}

impl ProducerStream {
    #[allow(clippy::too_many_arguments)]
    fn new(
        ssrc: Option<u32>,
        rtx_ssrc: Option<u32>,
        rid: Option<String>,
        mapped_ssrc: u32,
        clock_rate: u32,
        video: bool,
        dtx: bool,
        now: Instant,
    ) -> Self {
        Self {
            ssrc,
            rtx_ssrc,
            rid,
            mapped_ssrc,
            stats: RecvStats::new(ssrc.unwrap_or(0), clock_rate),
            nack: NackGenerator::new(NackConfig::default()),
            epoch: now,
            store: video.then(|| RetransmitStore::new(VIDEO_RTX_SLOTS)),
            packets: 0,
            bytes: 0,
            rtx_packets: 0,
            rtx_duplicates: 0,
            last_packet: None,
            last_keyframe_request: None,
            last_sr: None,
            score: RecvScore::new(dtx),
            repaired: 0,
            rate: Default::default(),
            temporal_bytes: [0; 4],
            temporal_rate: Default::default(),
            max_tid: None,
        }
    }

    /// Whether packets arrived within `window` before `now`.
    pub fn is_active(&self, now: Instant, window: Duration) -> bool {
        self.last_packet
            .is_some_and(|t| now.duration_since(t) < window)
    }
}

/// A producer owned by a worker.
pub struct Producer {
    /// Public id.
    pub id: Uuid,
    /// audio or video.
    pub kind: MediaKind,
    /// Transport key.
    pub transport: TransportKey,
    /// Router key.
    pub router: RouterKey,
    /// Parameters as the peer gave them.
    pub rtp_parameters: RtpParameters,
    /// The router-side parameters consumers are built from.
    pub consumable: RtpParameters,
    /// Simple, simulcast or SVC ([`crate::ortc::producer_type`], decided at validation).
    pub producer_type: crate::ortc::ProducerType,
    /// Paused by the API.
    pub paused: bool,
    /// One per encoding.
    pub streams: Vec<ProducerStream>,
    /// Peer media PT → router PT (255 = not a media PT of this producer).
    pub pt_map: [u8; 128],
    /// Peer RTX PT → peer media PT (255 = not RTX).
    pub rtx_to_media: [u8; 128],
    /// Codec of each peer media PT, for keyframe detection.
    pub codec_of_pt: [Option<PayloadCodec>; 128],
    /// Peer header-extension id → router id (0 = unknown to the router).
    pub ext_map: [u8; 256],
    /// Consumer keys of this producer.
    pub consumers: Vec<ConsumerKey>,
    /// Keys of the RTP observers watching this producer (see `crate::observer`).
    pub observers: Vec<usize>,
    /// Peer's id of the RFC 6464 audio level header extension (0: not negotiated).
    pub audio_level_ext: u8,
    /// A stream score changed on the packet path (reactivation, first packet): emit on the next
    /// report tick.
    pub score_dirty: bool,
}

impl Producer {
    /// Builds a producer's receive state. `pt_map`, `ext_map` etc. are computed by the engine from the
    /// ORTC mapping.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        id: Uuid,
        kind: MediaKind,
        transport: TransportKey,
        router: RouterKey,
        rtp_parameters: RtpParameters,
        consumable: RtpParameters,
        producer_type: crate::ortc::ProducerType,
        mapped_ssrcs: &[u32],
        paused: bool,
        now: Instant,
    ) -> Self {
        let video = kind == MediaKind::Video;
        let mut pt_map = [255u8; 128];
        let mut rtx_to_media = [255u8; 128];
        let mut codec_of_pt = [None; 128];
        let media_codecs: Vec<_> = rtp_parameters
            .codecs
            .iter()
            .filter(|c| !is_rtx_mime_type(&c.mime_type))
            .collect();
        for (i, c) in media_codecs.iter().enumerate() {
            let pt = (c.payload_type & 0x7f) as usize;
            codec_of_pt[pt] = PayloadCodec::from_mime(&c.mime_type);
            // Consumable codecs keep the producer's order, so index i maps to the router's PT.
            if let Some(cc) = consumable
                .codecs
                .iter()
                .filter(|c| !is_rtx_mime_type(&c.mime_type))
                .nth(i)
            {
                pt_map[pt] = cc.payload_type;
            }
        }
        for c in rtp_parameters
            .codecs
            .iter()
            .filter(|c| is_rtx_mime_type(&c.mime_type))
        {
            if let Some(apt) = c.parameters.get("apt").and_then(ParamValue::as_u64) {
                rtx_to_media[(c.payload_type & 0x7f) as usize] = apt as u8;
            }
        }
        let mut ext_map = [0u8; 256];
        for e in &rtp_parameters.header_extensions {
            if let Some(r) = consumable.header_extensions.iter().find(|r| r.uri == e.uri) {
                ext_map[e.id as usize] = r.id;
            }
        }
        let clock_rate = media_codecs.first().map(|c| c.clock_rate).unwrap_or(90000);
        let streams = rtp_parameters
            .encodings
            .iter()
            .enumerate()
            .map(|(i, e)| {
                ProducerStream::new(
                    e.ssrc,
                    e.rtx.as_ref().map(|r| r.ssrc),
                    e.rid.clone(),
                    mapped_ssrcs.get(i).copied().unwrap_or(0),
                    clock_rate,
                    video,
                    e.dtx.unwrap_or(false),
                    now,
                )
            })
            .collect();
        let audio_level_ext = rtp_parameters
            .header_extensions
            .iter()
            .find(|e| e.uri == crate::observer::AUDIO_LEVEL_URI)
            .map_or(0, |e| e.id);
        Self {
            id,
            kind,
            transport,
            router,
            rtp_parameters,
            consumable,
            producer_type,
            paused,
            streams,
            pt_map,
            rtx_to_media,
            codec_of_pt,
            ext_map,
            consumers: Vec::new(),
            observers: Vec::new(),
            audio_level_ext,
            score_dirty: false,
        }
    }

    /// Whether a keyframe request for stream `i` may go out now (rate limit); marks it sent.
    pub fn take_keyframe_request(&mut self, i: usize, now: Instant) -> bool {
        let Some(s) = self.streams.get_mut(i) else {
            return false;
        };
        if s.last_keyframe_request
            .is_some_and(|t| now.duration_since(t) < KEYFRAME_REQUEST_INTERVAL)
        {
            return false;
        }
        s.last_keyframe_request = Some(now);
        true
    }

    /// A keyframe arrived on stream `i`: any outstanding request is answered, so a consumer that
    /// joins just after it may ask for the next one at once instead of waiting out the interval.
    pub fn keyframe_received(&mut self, i: usize) {
        if let Some(s) = self.streams.get_mut(i) {
            s.last_keyframe_request = None;
        }
    }

    /// The VP8 payload descriptor of a packet, when its payload type is VP8.
    pub fn vp8_descriptor(
        &self,
        buf: &[u8],
        hdr: &RtpHeader,
    ) -> Option<crate::codecs::Vp8Descriptor> {
        (self.codec_of_pt[(hdr.payload_type & 0x7f) as usize] == Some(PayloadCodec::Vp8))
            .then(|| crate::codecs::Vp8Descriptor::parse(hdr.payload(buf)))
            .flatten()
    }

    /// Whether the packet is a keyframe start for its codec.
    pub fn is_keyframe(&self, buf: &[u8], hdr: &RtpHeader) -> bool {
        self.kind == MediaKind::Video
            && self.codec_of_pt[(hdr.payload_type & 0x7f) as usize]
                .is_some_and(|c| crate::codecs::is_keyframe(c, hdr.payload(buf)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn vp8_producer() -> Producer {
        let params: RtpParameters = serde_json::from_value(json!({
            "mid": "0",
            "codecs": [{"mimeType": "video/VP8", "payloadType": 96, "clockRate": 90000}],
            "encodings": [{"ssrc": 1111}],
            "headerExtensions": []
        }))
        .expect("parameters");
        Producer::new(
            Uuid::new_v4(),
            MediaKind::Video,
            crate::keys::Key::from_index(0),
            crate::keys::Key::from_index(0),
            params.clone(),
            params,
            crate::ortc::ProducerType::Simple,
            &[1111],
            false,
            Instant::now(),
        )
    }

    #[test]
    fn keyframe_requests_are_spaced_until_one_is_answered() {
        let mut p = vp8_producer();
        let t0 = Instant::now();
        assert!(p.take_keyframe_request(0, t0));
        // Unanswered: a second consumer joining 100 ms later does not re-ask.
        assert!(!p.take_keyframe_request(0, t0 + Duration::from_millis(100)));
        // Still unanswered after the interval: retried.
        assert!(p.take_keyframe_request(0, t0 + KEYFRAME_REQUEST_INTERVAL));
        // Answered: the next consumer asks at once.
        p.keyframe_received(0);
        assert!(
            p.take_keyframe_request(0, t0 + KEYFRAME_REQUEST_INTERVAL + Duration::from_millis(1))
        );
        // Unknown stream index: nothing, no panic.
        assert!(!p.take_keyframe_request(7, t0));
        p.keyframe_received(7);
    }
}
