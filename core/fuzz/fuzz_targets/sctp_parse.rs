//! Fuzzes SCTP input handling and the DCEP parser with arbitrary bytes.
//!
//! Run with `cargo +nightly fuzz run sctp_parse` from `core/`. The first byte picks the target:
//! - even: the bytes as they are, to a passive association (mostly rejected by the CRC check);
//! - odd: the rest with the checksum fixed and the verification tag of an established
//!   association patched in, so sctp-proto's chunk parsers and state machine see them.
//!
//! Every input is also parsed as DCEP; an OPEN that parses must re-encode to an equal OPEN.
//! Properties: no panic; the established association keeps a consistent state.
#![no_main]

use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use ringsfu_core::data_channel::{DataChannelOpen, DcepMessage};
use ringsfu_core::sctp::{set_packet_checksum, validate_packet, SctpAssociation, SctpConfig};

/// A client and server association after the handshake, plus the tag the server expects.
fn established(now: Instant) -> (SctpAssociation, [u8; 4]) {
    let mut c = SctpAssociation::new(SctpConfig::default(), now);
    let mut s = SctpAssociation::new(SctpConfig::default(), now);
    c.connect(now).expect("fresh association connects");
    let mut tag = [0u8; 4];
    for _ in 0..8 {
        while let Some(p) = c.poll_transmit(now) {
            if p[4..8] != [0; 4] {
                tag.copy_from_slice(&p[4..8]);
            }
            s.handle_input(now, &p);
        }
        while let Some(p) = s.poll_transmit(now) {
            c.handle_input(now, &p);
        }
    }
    (s, tag)
}

fuzz_target!(|data: &[u8]| {
    if let Ok(DcepMessage::Open(open)) = DcepMessage::parse(data) {
        let mut out = Vec::new();
        open.encode(&mut out).expect("parsed lengths fit");
        assert_eq!(DataChannelOpen::parse(&out), Ok(open));
    }
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let now = Instant::now();
    if mode % 2 == 0 {
        let _ = validate_packet(rest);
        let mut a = SctpAssociation::new(SctpConfig::default(), now);
        a.handle_input(now, rest);
        while a.poll_transmit(now).is_some() {}
        return;
    }
    let (mut s, tag) = established(now);
    let mut pkt = rest.to_vec();
    if pkt.len() >= 12 {
        pkt[4..8].copy_from_slice(&tag);
        set_packet_checksum(&mut pkt);
    }
    s.handle_input(now, &pkt);
    while s.poll_event().is_some() {}
    let later = now + Duration::from_secs(5);
    while s.poll_transmit(later).is_some() {}
    s.handle_timeout(later);
    while s.poll_transmit(later).is_some() {}
});
