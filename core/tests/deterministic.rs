//! Deterministic engine tests: the engine and browser-like test peers over in-memory datagrams
//! with a virtual clock (see `deterministic/harness.rs`). No socket, no thread, no sleep: each
//! test simulates seconds to minutes of a session in milliseconds, and the same input always
//! gives the same result.

mod common;
#[path = "deterministic/harness.rs"]
mod harness;

use std::time::Duration;

use harness::{PeerId, Sim};
use ringsfu_core::api::ConsumerInfo;
use ringsfu_core::engine::{ConsumeOptions, EngineEvent, ProduceOptions, WebRtcTransportOptions};
use ringsfu_core::ice::IceState;
use ringsfu_core::rtcp;
use ringsfu_core::rtp_parameters::{MediaKind, RtpCapabilities, RtpParameters};
use serde_json::{json, Value};
use uuid::Uuid;

/// Virtual time of one engine tick (its fine timer; `engine::TICK`).
const TICK: Duration = Duration::from_millis(20);
/// The engine checks ICE consent on its report timer, once a second (`engine::REPORT_INTERVAL`).
const REPORT_INTERVAL: Duration = Duration::from_secs(1);
/// VP8 payload type of `vp8_producer_params`.
const VP8_PT: u8 = 96;

fn router(sim: &mut Sim) -> Uuid {
    sim.engine
        .create_router(&common::demo_media_codecs(), sim.now())
        .unwrap()
}

fn connected_peer(sim: &mut Sim, router: &Uuid) -> PeerId {
    let p = sim.add_peer(router, WebRtcTransportOptions::default());
    sim.connect(p);
    p
}

fn produce(sim: &mut Sim, peer: PeerId, kind: MediaKind, params: Value) -> Uuid {
    let rtp_parameters: RtpParameters = serde_json::from_value(params).unwrap();
    let t = sim.peers[peer].transport;
    let info = sim
        .engine
        .produce(
            &t,
            ProduceOptions {
                kind,
                rtp_parameters,
                paused: false,
            },
            sim.now(),
        )
        .unwrap();
    info.id.parse().unwrap()
}

fn consume(sim: &mut Sim, peer: PeerId, producer: Uuid) -> ConsumerInfo {
    let caps: RtpCapabilities = serde_json::from_value(common::chrome_rtp_capabilities()).unwrap();
    let t = sim.peers[peer].transport;
    let info = sim
        .engine
        .consume(
            &t,
            ConsumeOptions {
                producer_id: producer,
                rtp_capabilities: caps,
                paused: false,
                enable_rtx: true,
            },
            sim.now(),
        )
        .unwrap();
    sim.drain_events();
    info
}

/// A VP8 packet: descriptor (S=1, partition 0), frame tag with the key-frame bit, then 100 bytes
/// starting with `tag` (so a receiver can tell where a forwarded packet came from).
fn vp8(ssrc: u32, seq: u16, key: bool, tag: u8) -> Vec<u8> {
    let mut payload = vec![0x10, if key { 0x00 } else { 0x01 }, 0x02, 0x00];
    payload.extend((0..100u8).map(|i| tag.wrapping_add(i)));
    common::build_rtp(
        VP8_PT,
        seq,
        u32::from(seq) * 3000,
        ssrc,
        true,
        &[],
        &payload,
    )
}

fn rtp_of(data: &[u8]) -> webrtc::rtp::packet::Packet {
    common::parse_rtp(data)
}

fn consumer_ssrcs(info: &ConsumerInfo) -> (u32, u32, u8) {
    let enc = &info.rtp_parameters.encodings[0];
    let rtx_pt = info
        .rtp_parameters
        .codecs
        .iter()
        .find(|c| c.mime_type.eq_ignore_ascii_case("video/rtx"))
        .expect("rtx codec")
        .payload_type;
    (
        enc.ssrc.unwrap(),
        enc.rtx.as_ref().expect("rtx ssrc").ssrc,
        rtx_pt,
    )
}

fn ice_states(sim: &Sim, transport: Uuid) -> Vec<(Duration, IceState)> {
    sim.events_where(|e| match *e {
        EngineEvent::IceStateChange {
            transport: t,
            state,
        } if t == transport => Some(state),
        _ => None,
    })
}

/// RFC 7675 consent: while the peer keeps sending checks the transport stays up; once it goes
/// silent the transport reports `disconnected` at the consent timeout after the last check (on
/// the engine's next 1 s report tick), not a moment before.
#[test]
fn ice_consent_expires_at_the_timeout_after_the_last_check() {
    const CONSENT: Duration = Duration::from_secs(30);
    let mut sim = Sim::new();
    let r = router(&mut sim);
    let p = sim.add_peer(
        &r,
        WebRtcTransportOptions {
            ice_consent_timeout: CONSENT,
            ..Default::default()
        },
    );
    sim.connect(p);
    let t = sim.peers[p].transport;
    assert_eq!(
        ice_states(&sim, t).last().map(|s| s.1),
        Some(IceState::Completed),
        "USE-CANDIDATE nominates"
    );

    // A minute of checks every 5 s: consent is refreshed, nothing changes.
    sim.run_for(Duration::from_secs(60));
    assert_eq!(ice_states(&sim, t).len(), 1, "{:?}", ice_states(&sim, t));

    // The peer goes silent.
    sim.peers[p].consent = false;
    let expiry_at = sim.peers[p].last_check.unwrap() + CONSENT;
    let expiry = sim.since_start(expiry_at);
    sim.run_until(expiry_at - Duration::from_millis(1));
    assert_eq!(
        ice_states(&sim, t).len(),
        1,
        "disconnected before the consent timeout ran out"
    );
    sim.run_for(REPORT_INTERVAL + TICK);
    let states = ice_states(&sim, t);
    assert_eq!(states.len(), 2, "{states:?}");
    let (at, state) = states[1];
    assert_eq!(state, IceState::Disconnected);
    assert!(
        at >= expiry && at <= expiry + REPORT_INTERVAL + TICK,
        "disconnected at {at:?}, consent ran out at {expiry:?}"
    );

    // A check brings it back (consent restored on a fresh request).
    let now = sim.now();
    sim.peers[p].send_check(now);
    sim.run_for(TICK);
    assert_eq!(ice_states(&sim, t).last().unwrap().1, IceState::Completed);
}

/// A consumer that lost a forwarded packet NACKs it and gets it back on its RTX stream: RTX
/// payload type and SSRC, the lost packet's sequence number as OSN, the same payload.
#[test]
fn a_nacked_packet_comes_back_as_rtx_with_the_original_sequence_number() {
    let mut sim = Sim::new();
    let r = router(&mut sim);
    let a = connected_peer(&mut sim, &r);
    let b = connected_peer(&mut sim, &r);
    let producer = produce(
        &mut sim,
        a,
        MediaKind::Video,
        common::vp8_producer_params(1111, 1112, "0"),
    );
    let info = consume(&mut sim, b, producer);
    let (cssrc, rtx_ssrc, rtx_pt) = consumer_ssrcs(&info);

    // The 6th media packet to B is lost on the way.
    let mut to_b = 0;
    sim.loss = Some(Box::new(move |peer, d| {
        let media = peer == b && !rtcp::is_rtcp(d) && d[8..12] == cssrc.to_be_bytes();
        if media {
            to_b += 1;
        }
        media && to_b == 6
    }));
    let sent: Vec<Vec<u8>> = (0..10u16)
        .map(|i| vp8(1111, 100 + i, i == 0, i as u8))
        .collect();
    for pkt in &sent {
        sim.peers[a].send_rtp(pkt);
        sim.run_for(TICK);
    }
    let got: Vec<_> = sim.peers[b]
        .rtp
        .iter()
        .map(|r| rtp_of(&r.data))
        .filter(|p| p.header.ssrc == cssrc)
        .collect();
    assert_eq!(got.len(), 9, "one of ten lost");
    let seqs: Vec<u16> = got.iter().map(|p| p.header.sequence_number).collect();
    let missing = seqs[4].wrapping_add(1);
    assert_eq!(seqs[5], missing.wrapping_add(1), "a gap in {seqs:?}");

    // B's receiver asks for it (RR + NACK, as browsers send it).
    let mut buf = [0u8; 128];
    let n = rtcp::write_rr(&mut buf, 0xb0b, &[]).unwrap();
    let n = n + rtcp::write_nack(&mut buf[n..], 0xb0b, cssrc, &[missing]).unwrap();
    sim.peers[b].rtp.clear();
    sim.peers[b].send_rtcp(&buf[..n]);
    sim.run_for(TICK);

    let rtx: Vec<_> = sim.peers[b]
        .rtp
        .iter()
        .map(|r| rtp_of(&r.data))
        .filter(|p| p.header.ssrc == rtx_ssrc)
        .collect();
    assert_eq!(rtx.len(), 1, "one retransmission");
    let rtx = &rtx[0];
    assert_eq!(rtx.header.payload_type, rtx_pt);
    assert_eq!(
        u16::from_be_bytes([rtx.payload[0], rtx.payload[1]]),
        missing,
        "OSN is the lost packet's sequence number"
    );
    let original = rtp_of(&sent[5]);
    assert_eq!(&rtx.payload[2..], &original.payload[..], "same payload");
}

/// Closing a transport closes its producers, the consumers of those producers on other
/// transports and its own consumers (each with its event); media from the closed peer no longer
/// reaches anyone. Closing the router then leaves every engine table empty.
#[test]
fn closing_a_transport_and_the_router_cascades_to_every_object() {
    let mut sim = Sim::new();
    let r = router(&mut sim);
    let a = connected_peer(&mut sim, &r);
    let b = connected_peer(&mut sim, &r);
    let video = produce(
        &mut sim,
        a,
        MediaKind::Video,
        common::vp8_producer_params(1111, 1112, "0"),
    );
    let audio = produce(
        &mut sim,
        a,
        MediaKind::Audio,
        common::opus_producer_params(2222, "1"),
    );
    let b_audio = produce(
        &mut sim,
        b,
        MediaKind::Audio,
        common::opus_producer_params(3333, "0"),
    );
    let c_video: Uuid = consume(&mut sim, b, video).id.parse().unwrap();
    let c_audio: Uuid = consume(&mut sim, b, audio).id.parse().unwrap();
    let c_back: Uuid = consume(&mut sim, a, b_audio).id.parse().unwrap();
    let (ta, tb) = (sim.peers[a].transport, sim.peers[b].transport);

    // Media flows A → B before the close.
    sim.peers[a].send_rtp(&vp8(1111, 1, true, 0));
    sim.run_for(TICK);
    assert_eq!(sim.peers[b].rtp.len(), 1);

    sim.events.clear();
    sim.engine.close_transport(&ta, sim.now()).unwrap();
    sim.exchange();
    let closed: Vec<String> = sim.events.iter().map(|(_, e)| describe(e)).collect();
    let want = [
        format!("ProducerTransportClosed {video}"),
        format!("ConsumerProducerClosed {c_video} {video}"),
        format!("ProducerTransportClosed {audio}"),
        format!("ConsumerProducerClosed {c_audio} {audio}"),
        format!("ConsumerTransportClosed {c_back}"),
        format!("TransportClosed {ta}"),
    ];
    assert_eq!(closed, want);
    assert!(sim.peers[a].dtls_closed, "A got close_notify");
    for c in [c_video, c_audio, c_back] {
        assert!(
            sim.engine.close_consumer(&c, sim.now()).is_err(),
            "{c} is gone"
        );
    }

    // A's packets now belong to no transport: B gets nothing more.
    sim.peers[b].rtp.clear();
    sim.peers[a].send_rtp(&vp8(1111, 2, true, 1));
    sim.run_for(TICK);
    assert!(sim.peers[b].rtp.is_empty());

    sim.events.clear();
    sim.engine.close_router(&r, sim.now()).unwrap();
    sim.exchange();
    let closed: Vec<String> = sim.events.iter().map(|(_, e)| describe(e)).collect();
    assert_eq!(
        closed,
        [
            format!("ProducerTransportClosed {b_audio}"),
            format!("TransportClosed {tb}"),
        ]
    );
    let sizes = serde_json::to_value(sim.engine.table_sizes()).unwrap();
    let nonzero: Vec<_> = sizes
        .as_object()
        .expect("table sizes")
        .iter()
        .filter(|(_, v)| v.as_u64() != Some(0))
        .collect();
    assert!(nonzero.is_empty(), "tables left: {nonzero:?}");
    assert_eq!(sim.engine.poll_timeout(), None, "no timer without objects");
}

fn describe(e: &EngineEvent) -> String {
    match e {
        EngineEvent::ProducerTransportClosed { producer } => {
            format!("ProducerTransportClosed {producer}")
        }
        EngineEvent::ConsumerProducerClosed { consumer, producer } => {
            format!("ConsumerProducerClosed {consumer} {producer}")
        }
        EngineEvent::ConsumerTransportClosed { consumer } => {
            format!("ConsumerTransportClosed {consumer}")
        }
        EngineEvent::TransportClosed { transport } => format!("TransportClosed {transport}"),
        other => format!("{other:?}"),
    }
}

/// PLI/FIR storms from many receivers reach the sender as at most one PLI per
/// `KEYFRAME_REQUEST_INTERVAL` while the request is unanswered; a keyframe answers it, and the
/// next receiver request then goes upstream at once.
#[test]
fn keyframe_requests_from_many_consumers_are_spaced_until_a_keyframe_answers() {
    use ringsfu_core::producer::KEYFRAME_REQUEST_INTERVAL;
    let mut sim = Sim::new();
    let r = router(&mut sim);
    let a = connected_peer(&mut sim, &r);
    let producer = produce(
        &mut sim,
        a,
        MediaKind::Video,
        common::vp8_producer_params(1111, 1112, "0"),
    );
    let receivers: Vec<(PeerId, u32)> = (0..3)
        .map(|_| {
            let p = connected_peer(&mut sim, &r);
            let (ssrc, _, _) = consumer_ssrcs(&consume(&mut sim, p, producer));
            (p, ssrc)
        })
        .collect();
    // Everyone synced on a keyframe, then a second of delta frames: no request outstanding.
    let mut seq = 1;
    let mut frame = |sim: &mut Sim, key: bool| {
        sim.peers[a].send_rtp(&vp8(1111, seq, key, seq as u8));
        seq += 1;
    };
    frame(&mut sim, true);
    for _ in 0..30 {
        frame(&mut sim, false);
        sim.run_for(Duration::from_millis(33));
    }
    for &(p, _) in &receivers {
        assert!(sim.peers[p].rtp.len() >= 30, "receiver {p} gets video");
    }
    sim.peers[a].rtcp.clear();

    // Two seconds in which every receiver asks every 10 ms (PLI, or FIR for the last one); the
    // sender keeps sending delta frames only.
    let start = sim.elapsed();
    let mut fir_seq = 0u8;
    for i in 0..200 {
        for (k, &(p, ssrc)) in receivers.iter().enumerate() {
            let mut buf = [0u8; 64];
            let n = rtcp::write_rr(&mut buf, 0xb0b + k as u32, &[]).unwrap();
            let n = n + if k == 2 {
                fir_seq = fir_seq.wrapping_add(1);
                rtcp::write_fir(&mut buf[n..], 0xb0b + k as u32, ssrc, fir_seq).unwrap()
            } else {
                rtcp::write_pli(&mut buf[n..], 0xb0b + k as u32, ssrc).unwrap()
            };
            sim.peers[p].send_rtcp(&buf[..n]);
        }
        if i % 3 == 0 {
            frame(&mut sim, false);
        }
        sim.run_for(Duration::from_millis(10));
    }
    let window = sim.elapsed() - start;
    let plis: Vec<Duration> = sim.peers[a]
        .keyframe_requests()
        .into_iter()
        .filter(|(_, ssrc)| *ssrc == 1111)
        .map(|(at, _)| at)
        .collect();
    assert!(!plis.is_empty(), "the requests reach the sender");
    assert!(
        plis[0] - start <= TICK,
        "the first request goes out at once: {plis:?}"
    );
    let max = 1 + (window.as_millis() / KEYFRAME_REQUEST_INTERVAL.as_millis()) as usize;
    assert!(
        plis.len() <= max,
        "600 receiver requests in {window:?} gave {} PLIs (policy allows {max}): {plis:?}",
        plis.len()
    );
    for w in plis.windows(2) {
        assert!(
            w[1] - w[0] >= KEYFRAME_REQUEST_INTERVAL,
            "PLIs {:?} apart: {plis:?}",
            w[1] - w[0]
        );
    }

    // The keyframe answers: after it the next receiver request goes upstream at once, though
    // the last PLI was less than the interval ago (and one before the keyframe was held back).
    let (p, ssrc) = receivers[0];
    let pli = |sim: &mut Sim| {
        let mut buf = [0u8; 64];
        let n = rtcp::write_pli(&mut buf, 0xb0b, ssrc).unwrap();
        sim.peers[p].send_rtcp(&buf[..n]);
        sim.run_for(Duration::from_millis(50));
    };
    sim.run_for(KEYFRAME_REQUEST_INTERVAL);
    sim.peers[a].rtcp.clear();
    pli(&mut sim);
    pli(&mut sim);
    assert_eq!(
        sim.peers[a].keyframe_requests().len(),
        1,
        "the second request 50 ms later waits"
    );
    frame(&mut sim, true);
    pli(&mut sim);
    let after = sim.peers[a].keyframe_requests();
    assert_eq!(after.len(), 2, "request after the keyframe: {after:?}");
    assert!(after[1].0 - after[0].0 < KEYFRAME_REQUEST_INTERVAL);
}

/// Simulcast producer parameters: three VP8 encodings with their own SSRCs.
fn simulcast_params(ssrcs: [u32; 3]) -> Value {
    json!({
        "mid": "0",
        "codecs": [{"mimeType": "video/VP8", "payloadType": VP8_PT, "clockRate": 90000,
                    "rtcpFeedback": [{"type": "nack"}, {"type": "nack", "parameter": "pli"},
                                     {"type": "ccm", "parameter": "fir"}]}],
        "headerExtensions": [{"uri": "urn:ietf:params:rtp-hdrext:sdes:mid", "id": 4}],
        "encodings": [{"ssrc": ssrcs[0]}, {"ssrc": ssrcs[1]}, {"ssrc": ssrcs[2]}],
        "rtcp": {"cname": "sim", "reducedSize": true}
    })
}

/// A simulcast consumer whose target layer drops from 2 to 0 keeps receiving layer 2 until a
/// keyframe of layer 0 arrives (the engine asks for one), then only layer 0, with no gap in its
/// sequence numbers; `layerschange` reports the switch at that keyframe.
#[test]
fn simulcast_switches_layers_at_a_keyframe_of_the_new_layer() {
    const SSRCS: [u32; 3] = [2000, 2001, 2002];
    let mut sim = Sim::new();
    let r = router(&mut sim);
    let a = connected_peer(&mut sim, &r);
    let b = connected_peer(&mut sim, &r);
    let producer = produce(&mut sim, a, MediaKind::Video, simulcast_params(SSRCS));
    let info = consume(&mut sim, b, producer);
    assert_eq!(info.consumer_type, "simulcast");
    let consumer: Uuid = info.id.parse().unwrap();
    let (cssrc, _, _) = consumer_ssrcs(&info);

    let mut seqs = [100u16, 5000, 9000];
    // One frame: a packet on each layer (layer `l` tags its payload with `l`).
    let mut frame = |sim: &mut Sim, key: [bool; 3]| {
        for l in 0..3 {
            sim.peers[a].send_rtp(&vp8(SSRCS[l], seqs[l], key[l], l as u8));
            seqs[l] = seqs[l].wrapping_add(1);
        }
        sim.run_for(Duration::from_millis(33));
    };
    frame(&mut sim, [true; 3]);
    for _ in 0..30 {
        frame(&mut sim, [false; 3]);
    }
    // (layer tag, keyframe, sequence number) of what B received.
    let received = |sim: &Sim| -> Vec<(Duration, u8, bool, u16)> {
        sim.peers[b]
            .rtp
            .iter()
            .map(|r| (r.at, rtp_of(&r.data)))
            .filter(|(_, p)| p.header.ssrc == cssrc)
            .map(|(at, p)| {
                (
                    at,
                    p.payload[4],
                    p.payload[1] & 1 == 0,
                    p.header.sequence_number,
                )
            })
            .collect()
    };
    let got = received(&sim);
    assert_eq!(got.len(), 31, "one packet per frame");
    assert!(got.iter().all(|g| g.1 == 2), "the highest layer: {got:?}");

    sim.peers[a].rtcp.clear();
    sim.engine
        .set_consumer_preferred_layers(&consumer, 0, None, sim.now())
        .unwrap();
    for _ in 0..10 {
        frame(&mut sim, [false; 3]);
    }
    let asked: Vec<u32> = sim.peers[a]
        .keyframe_requests()
        .iter()
        .map(|r| r.1)
        .collect();
    assert!(
        asked.contains(&SSRCS[0]),
        "a keyframe of layer 0 is requested: {asked:?}"
    );
    let before_key = received(&sim);
    assert_eq!(before_key.len(), 41, "forwarding goes on while waiting");
    assert!(
        before_key.iter().all(|g| g.1 == 2),
        "still layer 2 until layer 0 has a keyframe"
    );

    let key_at = sim.elapsed();
    frame(&mut sim, [true, false, false]);
    for _ in 0..10 {
        frame(&mut sim, [false; 3]);
    }
    let got = received(&sim);
    let after: Vec<_> = got.iter().filter(|g| g.0 >= key_at).collect();
    assert_eq!(after.len(), 11);
    assert!(after[0].2, "the switch happens at the keyframe");
    assert!(after.iter().all(|g| g.1 == 0), "only layer 0: {after:?}");
    for w in got.windows(2) {
        assert_eq!(w[1].3, w[0].3.wrapping_add(1), "no gap across the switch");
    }
    let changes = sim.events_where(|e| match *e {
        EngineEvent::ConsumerLayersChange {
            consumer: c,
            spatial_layer,
            ..
        } if c == consumer => Some(spatial_layer),
        _ => None,
    });
    assert_eq!(
        changes.last().copied(),
        Some((key_at, Some(0))),
        "{changes:?}"
    );
}

/// With SCTP enabled, the peer's association (it is the DTLS client, so it sends INIT) comes up
/// over DTLS and the transport reports `sctpstatechange` connecting → connected; a channel the
/// peer opens with DCEP becomes a data producer (ACK sent back), and a message on it reaches a
/// direct data consumer; a server-side data producer's message reaches the peer.
#[test]
fn sctp_association_starts_and_a_data_channel_message_arrives() {
    use ringsfu_core::data::DataMessage;
    use ringsfu_core::data_channel::DataChannelOpen;
    use ringsfu_core::sctp::{Ppid, Reliability, SctpEvent, SctpState};
    let mut sim = Sim::new();
    let r = router(&mut sim);
    let p = sim.add_peer(
        &r,
        WebRtcTransportOptions {
            sctp: Some((1024, 1024)),
            ..Default::default()
        },
    );
    sim.connect(p);
    let t = sim.peers[p].transport;
    let states = sim.events_where(|e| match *e {
        EngineEvent::SctpStateChange {
            transport: tr,
            state,
        } if tr == t => Some(state),
        _ => None,
    });
    let states: Vec<SctpState> = states.into_iter().map(|s| s.1).collect();
    assert_eq!(states, [SctpState::Connecting, SctpState::Connected]);
    assert!(sim.peers[p].sctp_events.contains(&SctpEvent::Connected));

    // The peer opens channel 1 in-band.
    let mut open = Vec::new();
    DataChannelOpen {
        reliability: Reliability::RELIABLE_ORDERED,
        priority: 256,
        label: "chat".into(),
        protocol: String::new(),
    }
    .encode(&mut open)
    .unwrap();
    let now = sim.now();
    sim.peers[p].sctp_send(1, Ppid::Dcep, &open, now);
    sim.run_for(TICK);
    let opened = sim.events_where(|e| match e {
        EngineEvent::DataProducerOpenedByPeer {
            data_producer,
            label,
            ..
        } => Some((*data_producer, label.clone())),
        _ => None,
    });
    assert_eq!(opened.len(), 1, "{:?}", sim.events);
    let (dp, label) = opened[0].1.clone();
    assert_eq!(label, "chat");
    assert!(
        sim.peers[p].sctp_events.iter().any(|e| matches!(
            e,
            SctpEvent::Message { stream_id: 1, ppid: Ppid::Dcep, data } if data == &[0x02]
        )),
        "DATA_CHANNEL_ACK: {:?}",
        sim.peers[p].sctp_events
    );

    // A server-side (direct) data consumer receives what the peer sends on the channel.
    let dc: Uuid = sim
        .engine
        .consume_data(None, &dp, None, None, None, false, sim.now())
        .unwrap()
        .id
        .parse()
        .unwrap();
    let now = sim.now();
    sim.peers[p].sctp_send(1, Ppid::String, b"hello", now);
    sim.run_for(TICK);
    let messages = sim.events_where(|e| match e {
        EngineEvent::DataConsumerMessage {
            data_consumer,
            message,
        } if *data_consumer == dc => Some((message.ppid, message.data.clone())),
        _ => None,
    });
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0].1, (Ppid::String, b"hello".to_vec()));

    // The other way: a server-side data producer consumed over the peer's association.
    let now = sim.now();
    let server_dp: Uuid = sim
        .engine
        .produce_data(&r, None, None, "server", "", false, now)
        .unwrap()
        .id
        .parse()
        .unwrap();
    let stream = sim
        .engine
        .consume_data(Some(&t), &server_dp, None, None, None, false, now)
        .unwrap()
        .sctp_stream_parameters
        .expect("an SCTP stream for the peer")
        .stream_id;
    let message = DataMessage {
        ppid: Ppid::Binary,
        data: vec![1, 2, 3],
    };
    sim.engine.send_data(&server_dp, message, now).unwrap();
    sim.run_for(TICK);
    assert!(
        sim.peers[p].sctp_events.contains(&SctpEvent::Message {
            stream_id: stream,
            ppid: Ppid::Binary,
            data: vec![1, 2, 3],
        }),
        "{:?}",
        sim.peers[p].sctp_events
    );
}

/// What one run of a session looks like from outside: the engine's events (ids included) and
/// the media a receiver decrypted, with their virtual times.
fn session_trace() -> Vec<String> {
    let mut sim = Sim::new();
    let r = router(&mut sim);
    let a = connected_peer(&mut sim, &r);
    let b = connected_peer(&mut sim, &r);
    let producer = produce(
        &mut sim,
        a,
        MediaKind::Video,
        common::vp8_producer_params(1111, 1112, "0"),
    );
    let info = consume(&mut sim, b, producer);
    let (cssrc, _, _) = consumer_ssrcs(&info);
    let mut n = 0;
    sim.loss = Some(Box::new(move |peer, d| {
        n += 1;
        peer == b && !rtcp::is_rtcp(d) && n % 7 == 0
    }));
    for i in 0..60u16 {
        sim.peers[a].send_rtp(&vp8(1111, i, i % 30 == 0, i as u8));
        if let (9, Some(last)) = (i % 10, sim.peers[b].rtp.last()) {
            // Ask again for the one before the last packet (answered on RTX).
            let seq = rtp_of(&last.data).header.sequence_number.wrapping_sub(1);
            let mut buf = [0u8; 64];
            let k = rtcp::write_rr(&mut buf, 0xb0b, &[]).unwrap();
            let k = k + rtcp::write_nack(&mut buf[k..], 0xb0b, cssrc, &[seq]).unwrap();
            sim.peers[b].send_rtcp(&buf[..k]);
        }
        sim.run_for(Duration::from_millis(33));
    }
    sim.run_for(Duration::from_secs(3));
    let now = sim.now();
    sim.engine.close_router(&r, now).unwrap();
    sim.exchange();
    let mut trace: Vec<String> = sim
        .events
        .iter()
        .map(|(at, e)| format!("{at:?} {e:?}"))
        .collect();
    for p in [a, b] {
        trace.extend(
            sim.peers[p]
                .rtp
                .iter()
                .chain(&sim.peers[p].rtcp)
                .map(|r| format!("{p} {:?} {:?}", r.at, r.data)),
        );
    }
    trace
}

/// Sans-IO for real: with time, wall clock and the RNG seed as inputs, two runs of the same
/// session are identical, event for event and byte for byte of what the peers decrypt.
#[test]
fn the_same_inputs_give_the_same_session() {
    let first = session_trace();
    assert!(first.len() > 60, "a session with traffic: {}", first.len());
    let second = session_trace();
    let diff = first.iter().zip(&second).position(|(x, y)| x != y);
    assert_eq!(
        (first.len(), diff),
        (second.len(), None),
        "first difference: {:?}",
        diff.map(|i| [&first[i], &second[i]].map(|l| l.chars().take(160).collect::<String>()))
    );
}
