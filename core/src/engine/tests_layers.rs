//! Engine tests of layer selection on the packet path: a VP8 L1T3 producer (one stream with
//! temporal layers, and two-stream simulcast) on a plain transport, a plain consumer, packets fed
//! through `handle_packet` and read back from the send queue. What a receiver would notice:
//! sequence numbers without gaps (nothing to NACK), picture ids and TL0PICIDX continuous, only the
//! temporal layers asked for, `layerschange` with the temporal layer.

use super::*;
use crate::codecs::Vp8Descriptor;
use crate::tuple::Protocol;
use serde_json::{json, Value};

const PT: u8 = 101;
const PRODUCER_ADDR: &str = "127.0.0.1:54010";
const CONSUMER_ADDR: &str = "127.0.0.1:54011";
const PEER: &str = "127.0.0.1:54099";

struct Rig {
    e: Engine,
    consumer: Uuid,
    ckey: usize,
    consumer_ssrc: u32,
    src: PacketSource,
    now: Instant,
}

/// An L1T3 stream as Chrome sends it: TIDs 0 2 1 2, layer sync on the first T2 and the T1 of each
/// cycle, TL0PICIDX counting base-layer frames, a 15-bit picture id per frame, two packets per
/// frame.
struct Vp8Source {
    ssrc: u32,
    seq: u16,
    ts: u32,
    pid: u16,
    tl0: u8,
    frame: u64,
}

/// One sent packet as the receiver parses it.
#[derive(Debug, Clone, Copy)]
struct Out {
    seq: u16,
    ts: u32,
    pid: u16,
    tl0: u8,
    tid: u8,
    start: bool,
}

impl Vp8Source {
    fn new(ssrc: u32, seq: u16, pid: u16, tl0: u8) -> Self {
        Vp8Source {
            ssrc,
            seq,
            ts: 1000,
            pid,
            tl0,
            frame: 0,
        }
    }

    /// The next frame's packets (a key frame when `key`).
    fn frame(&mut self, key: bool) -> Vec<Vec<u8>> {
        let pos = self.frame % 4;
        let (tid, sync) = [(0u8, false), (2, true), (1, true), (2, false)][pos as usize];
        let tid = if key { 0 } else { tid };
        if tid == 0 {
            self.tl0 = self.tl0.wrapping_add(1);
        }
        self.pid = (self.pid + 1) & 0x7fff;
        self.ts = self.ts.wrapping_add(3000);
        let mut packets = vec![];
        for part in 0..2u8 {
            let mut p = vec![0x80, PT, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
            if part == 1 {
                p[1] |= 0x80; // marker on the frame's last packet
            }
            p[2..4].copy_from_slice(&self.seq.to_be_bytes());
            p[4..8].copy_from_slice(&self.ts.to_be_bytes());
            p[8..12].copy_from_slice(&self.ssrc.to_be_bytes());
            let s_bit = if part == 0 { 0x10 } else { 0 };
            p.extend([
                0x80 | s_bit,
                0xe0,
                0x80 | (self.pid >> 8) as u8,
                self.pid as u8,
                self.tl0,
                tid << 6 | if sync { 0x20 } else { 0 },
            ]);
            if part == 0 {
                p.extend(if key {
                    [0x50, 0x42, 0x00, 0x9d, 0x01, 0x2a]
                } else {
                    [0x31, 0x10, 0x00, 0xaa, 0xbb, 0xcc]
                });
            }
            p.extend(std::iter::repeat_n(self.frame as u8, 200));
            self.seq = self.seq.wrapping_add(1);
            packets.push(p);
        }
        self.frame += 1;
        packets
    }
}

fn rig(encodings: Value) -> Rig {
    let listen = ListenInfo {
        udp: Some((0, "127.0.0.1:54000".parse().unwrap())),
        tcp: None,
        announced_address: None,
    };
    let mut e = Engine::new(
        0,
        listen,
        DtlsCertificate::generate().unwrap(),
        Instant::now(),
        std::time::SystemTime::now(),
        [7; 32],
    );
    let codecs = serde_json::from_value::<Vec<RtpCodecCapability>>(json!([
        {"kind": "video", "mimeType": "video/VP8", "clockRate": 90000}
    ]))
    .unwrap();
    let r = e.create_router(&codecs, Instant::now()).unwrap();
    let plain = |e: &mut Engine, socket: SocketId, addr: &str, comedia: bool| {
        let info = e
            .create_plain_transport(
                &r,
                (socket, addr.parse().unwrap()),
                None,
                comedia,
                false,
                None,
                Instant::now(),
            )
            .unwrap();
        info.id.parse::<Uuid>().unwrap()
    };
    let pt = plain(&mut e, 10, PRODUCER_ADDR, true);
    let ct = plain(&mut e, 11, CONSUMER_ADDR, false);
    e.connect_plain_transport(
        &ct,
        &serde_json::from_value(json!({"ip": "127.0.0.1", "port": 54098})).unwrap(),
        Instant::now(),
    )
    .unwrap();
    let params = serde_json::from_value(json!({
        "codecs": [{"mimeType": "video/VP8", "payloadType": PT, "clockRate": 90000,
                    "rtcpFeedback": [{"type": "nack"}, {"type": "nack", "parameter": "pli"}]}],
        "encodings": encodings,
        "headerExtensions": []
    }))
    .unwrap();
    let p = e
        .produce(
            &pt,
            ProduceOptions {
                kind: MediaKind::Video,
                rtp_parameters: params,
                paused: false,
            },
            Instant::now(),
        )
        .unwrap();
    let caps = e.routers[e.router_ids[&r]].rtp_capabilities.clone();
    let c = e
        .consume(
            &ct,
            ConsumeOptions {
                producer_id: p.id.parse().unwrap(),
                rtp_capabilities: caps,
                paused: false,
                enable_rtx: false,
            },
            Instant::now(),
        )
        .unwrap();
    let consumer: Uuid = c.id.parse().unwrap();
    let consumer_ssrc = c.rtp_parameters.encodings[0].ssrc.unwrap();
    let ckey = e.consumer_ids[&consumer];
    let src = PacketSource {
        socket: 10,
        tcp_conn: None,
        tuple: TransportTuple {
            local: PRODUCER_ADDR.parse().unwrap(),
            remote: PEER.parse().unwrap(),
            protocol: Protocol::Udp,
        },
    };
    while e.poll_event().is_some() {}
    Rig {
        e,
        consumer,
        ckey,
        consumer_ssrc,
        src,
        now: Instant::now(),
    }
}

impl Rig {
    /// Feeds packets (33 ms apart per call) and returns what the consumer sent.
    fn feed(&mut self, packets: Vec<Vec<u8>>) -> Vec<Out> {
        self.now += Duration::from_millis(33);
        for p in packets {
            let mut buf = vec![0u8; PACKET_BUF_SIZE].into_boxed_slice();
            buf[..p.len()].copy_from_slice(&p);
            self.e.handle_packet(self.src, &mut buf, p.len(), self.now);
        }
        self.sent()
    }

    fn sent(&mut self) -> Vec<Out> {
        let out = self
            .e
            .tx
            .queued()
            .iter()
            .filter_map(|q| {
                let b = &q.buf[..q.len];
                let h = RtpHeader::parse(b).ok()?;
                (h.ssrc == self.consumer_ssrc).then_some(())?;
                let d = Vp8Descriptor::parse(h.payload(b))?;
                Some(Out {
                    seq: h.sequence,
                    ts: h.timestamp,
                    pid: d.picture_id?.0,
                    tl0: d.tl0_pic_idx?,
                    tid: d.tid?,
                    start: d.frame_start,
                })
            })
            .collect();
        self.e.tx.clear();
        out
    }

    fn frames(&mut self, src: &mut Vp8Source, n: usize) -> Vec<Out> {
        (0..n)
            .flat_map(|_| src.frame(false))
            .fold(vec![], |mut acc, p| {
                acc.extend(self.feed(vec![p]));
                acc
            })
    }

    /// The (spatial, temporal) layers of the `layerschange` events queued since the last call.
    fn layer_events(&mut self) -> Vec<(Option<usize>, Option<u8>)> {
        let mut v = vec![];
        while let Some(ev) = self.e.poll_event() {
            if let EngineEvent::ConsumerLayersChange {
                consumer,
                spatial_layer,
                temporal_layer,
            } = ev
            {
                assert_eq!(consumer, self.consumer);
                v.push((spatial_layer, temporal_layer));
            }
        }
        v
    }
}

/// Checks what a receiver checks: each packet's sequence number follows the last one's (no gap
/// to NACK), each new frame's picture id follows the last frame's, TL0PICIDX moves by one at
/// each base-layer frame, timestamps never go back. `prev` is the last packet of before.
fn assert_continuous(prev: Option<Out>, out: &[Out]) {
    let mut last = prev;
    for o in out {
        if let Some(l) = last {
            assert_eq!(
                o.seq,
                l.seq.wrapping_add(1),
                "sequence gap: {l:?} then {o:?}"
            );
            let want_pid = if o.start { (l.pid + 1) & 0x7fff } else { l.pid };
            assert_eq!(o.pid, want_pid, "picture id: {l:?} then {o:?}");
            let want_tl0 = if o.start && o.tid == 0 {
                l.tl0.wrapping_add(1)
            } else {
                l.tl0
            };
            assert_eq!(o.tl0, want_tl0, "TL0PICIDX: {l:?} then {o:?}");
            assert!(o.ts.wrapping_sub(l.ts) < 0x8000_0000, "timestamp back");
        }
        last = Some(*o);
    }
}

#[test]
fn temporal_layer_drop_leaves_no_gap_and_comes_back_at_a_sync_frame() {
    let mut r = rig(json!([{"ssrc": 1000, "scalabilityMode": "L1T3"}]));
    let mut s = Vp8Source::new(1000, 65500, 0x7ff0, 250);
    // Key frame, then all three temporal layers flow.
    let mut all = r.feed(s.frame(true));
    all.extend(r.frames(&mut s, 11));
    assert_eq!(all.len(), 24, "every packet of 12 frames");
    assert_continuous(None, &all);
    assert_eq!(r.layer_events().last(), Some(&(Some(0), Some(2))));

    // Down to temporal layer 0: only base-layer frames, numbering still continuous (across the
    // sequence-number and 15-bit picture-id wraps).
    r.e.set_consumer_preferred_layers(&r.consumer, 0, Some(0), Instant::now())
        .unwrap();
    let low = r.frames(&mut s, 19);
    assert_eq!(low.len(), 10, "5 base-layer frames of 19: {low:?}");
    assert!(low.iter().all(|o| o.tid == 0));
    assert_continuous(all.last().copied(), &low);
    assert_eq!(r.layer_events(), vec![(Some(0), Some(0))]);
    assert!(r.e.consumer_dump(&r.consumer).unwrap().temporal_drops >= 24);

    // A NACK of a packet sent while dropping is answered with the very packet the receiver got.
    let nacked = low[3];
    r.e.retransmit(r.ckey, nacked.seq, r.now);
    let resent = r.sent();
    assert_eq!(resent.len(), 1);
    assert_eq!(
        (resent[0].seq, resent[0].pid, resent[0].tl0),
        (nacked.seq, nacked.pid, nacked.tl0)
    );

    // Back up, mid-cycle: the next frame is a T2 without layer sync (it references the T1 the
    // receiver never got): still dropped. The T0 after it goes, the T2 after that has layer
    // sync: from there every frame flows again.
    r.e.set_consumer_preferred_layers(&r.consumer, 0, None, Instant::now())
        .unwrap();
    let back = r.frames(&mut s, 8);
    assert_continuous(low.last().copied(), &back);
    assert_eq!(back[0].tid, 0, "{back:?}");
    assert_eq!(back.len(), 14, "every packet of 7 frames: {back:?}");
    assert_eq!(r.layer_events(), vec![(Some(0), Some(2))]);
}

#[test]
fn spatial_switch_keeps_picture_id_and_tl0picidx_continuous() {
    let mut r = rig(json!([
        {"ssrc": 1000, "scalabilityMode": "L1T3"},
        {"ssrc": 2000, "scalabilityMode": "L1T3"}
    ]));
    // Independent numbering on each stream, as a browser's encoders have.
    let mut lo = Vp8Source::new(1000, 100, 5000, 10);
    let mut hi = Vp8Source::new(2000, 40000, 20, 200);
    let mut sent = r.feed(lo.frame(true));
    sent.extend(r.feed(hi.frame(true)));
    for _ in 0..7 {
        sent.extend(r.feed(lo.frame(false)));
        sent.extend(r.feed(hi.frame(false)));
    }
    assert_eq!(sent.len(), 16, "the top layer's 8 frames only");
    assert_continuous(None, &sent);
    assert_eq!(r.layer_events().last(), Some(&(Some(1), Some(2))));

    // Preferred spatial layer 0 at temporal layer 1: the switch waits for layer 0's key frame.
    r.e.set_consumer_preferred_layers(&r.consumer, 0, Some(1), Instant::now())
        .unwrap();
    let mut after = vec![];
    for _ in 0..3 {
        after.extend(r.feed(lo.frame(false)));
        after.extend(r.feed(hi.frame(false)));
    }
    // Until layer 0's key frame the top layer goes on, at temporal layers 0 and 1 at once
    // (frames T0 T2 T1: two of three).
    assert_eq!(after.len(), 4, "{after:?}");
    assert!(after.iter().all(|o| o.tid <= 1));
    after.extend(r.feed(lo.frame(true)));
    for _ in 0..8 {
        after.extend(r.feed(lo.frame(false)));
        after.extend(r.feed(hi.frame(false)));
    }
    assert_continuous(sent.last().copied(), &after);
    assert!(after.iter().rev().take(6).all(|o| o.tid <= 1));
    let tids: Vec<u8> = after.iter().filter(|o| o.start).map(|o| o.tid).collect();
    assert!(tids.contains(&1), "temporal layer 1 flows: {tids:?}");
    // The temporal step down happened at once on the top layer, the spatial one at the key frame.
    assert_eq!(
        r.layer_events(),
        vec![(Some(1), Some(1)), (Some(0), Some(1))]
    );
}
