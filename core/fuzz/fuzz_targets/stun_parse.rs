//! Fuzzes the STUN parser and the ICE-lite server with arbitrary bytes.
//!
//! Run with `cargo +nightly fuzz run stun_parse` from `core/`. Properties: no panic on any
//! input; a message that parses can be fed to `IceServer::handle_stun`, and any response it
//! writes parses back as a STUN message with a valid FINGERPRINT.
#![no_main]

use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use ringsfu_core::ice::IceServer;
use ringsfu_core::stun::{attr, StunMessage};
use ringsfu_core::tuple::{Protocol, TransportTuple};

fuzz_target!(|data: &[u8]| {
    let Ok(msg) = StunMessage::parse(data) else {
        return;
    };
    let _ = (
        msg.username_fragments(),
        msg.software(),
        msg.priority(),
        msg.use_candidate(),
        msg.ice_controlling(),
        msg.ice_controlled(),
        msg.nomination(),
        msg.xor_mapped_address(),
        msg.error_code(),
        msg.attribute(attr::NONCE),
        msg.verify_integrity(b"password"),
        msg.verify_fingerprint(),
    );

    let mut ice = IceServer::new("ufrag".into(), "password".into(), Duration::from_secs(30));
    let tuple = TransportTuple {
        local: "127.0.0.1:40000".parse().unwrap(),
        remote: "[::1]:5000".parse().unwrap(),
        protocol: Protocol::Udp,
    };
    let mut out = [0u8; 256];
    let outcome = ice.handle_stun(&msg, tuple, Instant::now(), &mut out);
    if let Some(n) = outcome.response_len {
        let resp = StunMessage::parse(&out[..n]).expect("our responses parse");
        assert!(resp.verify_fingerprint());
        assert_eq!(resp.transaction_id(), msg.transaction_id());
    }
});
