//! Test helpers: the independent WebRTC peer (webrtc-rs ICE agent, DTLS client, SRTP contexts) of
//! the `ringsfu-testpeer` crate, re-exported, plus the helpers that need ringsfu-core (a router's
//! codecs, an SCTP worker and peer). Nothing of ringsfu's protocol code is used on the peer side.

#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;
use std::time::Instant;

use serde_json::json;

pub use ringsfu_testpeer::*;

use ringsfu_core::rtp_parameters::RtpCodecCapability;

/// The mediasoup-demo router codecs.
pub fn demo_media_codecs() -> Vec<RtpCodecCapability> {
    serde_json::from_value(json!([
        {"kind": "audio", "mimeType": "audio/opus", "clockRate": 48000, "channels": 2},
        {"kind": "video", "mimeType": "video/VP8", "clockRate": 90000,
         "parameters": {"x-google-start-bitrate": 1000}},
        {"kind": "video", "mimeType": "video/VP9", "clockRate": 90000,
         "parameters": {"profile-id": 2, "x-google-start-bitrate": 1000}},
        {"kind": "video", "mimeType": "video/h264", "clockRate": 90000,
         "parameters": {"packetization-mode": 1, "profile-level-id": "4d0032",
                        "level-asymmetry-allowed": 1, "x-google-start-bitrate": 1000}},
        {"kind": "video", "mimeType": "video/h264", "clockRate": 90000,
         "parameters": {"packetization-mode": 1, "profile-level-id": "42e01f",
                        "level-asymmetry-allowed": 1, "x-google-start-bitrate": 1000}}
    ]))
    .expect("codecs")
}

/// A worker on ephemeral loopback ports for data-channel tests.
pub fn spawn_sctp_worker() -> Arc<ringsfu_core::worker::Worker> {
    Arc::new(
        ringsfu_core::worker::Worker::spawn(ringsfu_core::worker::WorkerSettings {
            index: 0,
            pin_core: None,
            listen_ip: std::net::IpAddr::from([127, 0, 0, 1]),
            announced_address: None,
            udp_port: Some(0),
            tcp_port: None,
            rtc_port_range: (43000, 43999),
            backend: ringsfu_core::io::IoBackend::Epoll,
            cert: ringsfu_core::dtls::DtlsCertificate::generate().unwrap(),
        })
        .unwrap(),
    )
}

/// A connected peer with an SCTP association (webrtc-sctp) over its DTLS.
pub struct SctpPeer {
    /// The server transport id.
    pub transport: uuid::Uuid,
    /// The ICE/DTLS peer.
    pub peer: TestPeer,
    /// The association.
    pub assoc: Arc<webrtc::sctp::association::Association>,
}

/// Gives WebRtcTransport `transport` of `w`'s engine the remote DTLS parameters `dtls`
/// (asserting the engine takes them).
pub async fn engine_connect(
    w: &ringsfu_core::worker::Worker,
    transport: uuid::Uuid,
    dtls: serde_json::Value,
) {
    w.with_engine(move |e| {
        e.connect_webrtc_transport(
            &transport,
            &serde_json::from_value(dtls).unwrap(),
            Instant::now(),
        )
    })
    .await
    .unwrap()
    .unwrap();
}

/// Connects the independent peer to WebRtcTransport `transport` (created with `data`) of `w`'s
/// engine, which gets the peer's DTLS parameters with `engine_connect`.
pub async fn connect_engine_peer(
    w: Arc<ringsfu_core::worker::Worker>,
    transport: uuid::Uuid,
    data: &serde_json::Value,
) -> TestPeer {
    connect_peer(
        &RemoteTransport::from_data(data),
        None,
        |dtls| async move { engine_connect(&w, transport, dtls).await },
        None,
    )
    .await
    .expect("peer connects")
}

/// Creates an SCTP-enabled transport and connects an independent peer with an association.
pub async fn sctp_peer(w: &Arc<ringsfu_core::worker::Worker>, router: uuid::Uuid) -> SctpPeer {
    let data = w
        .with_engine(move |e| {
            e.create_webrtc_transport(
                &router,
                ringsfu_core::engine::WebRtcTransportOptions {
                    sctp: Some((1024, 1024)),
                    ..Default::default()
                },
                Instant::now(),
            )
            .map(|v| serde_json::to_value(v).unwrap())
        })
        .await
        .unwrap()
        .unwrap();
    assert_eq!(data["sctpParameters"]["port"], 5000);
    let transport: uuid::Uuid = data["id"].as_str().unwrap().parse().unwrap();
    let peer = connect_engine_peer(Arc::clone(w), transport, &data).await;
    let net_conn: Arc<dyn webrtc::util::Conn + Send + Sync> = peer.dtls.clone();
    let assoc = tokio::time::timeout(
        Duration::from_secs(20),
        webrtc::sctp::association::Association::client(webrtc::sctp::association::Config {
            net_conn,
            max_receive_buffer_size: 0,
            max_message_size: 262144,
            mtu: 0,
            name: "test-peer".into(),
            remote_port: 5000,
            local_port: 5000,
        }),
    )
    .await
    .expect("SCTP handshake in time")
    .expect("SCTP association");
    SctpPeer {
        transport,
        peer,
        assoc: Arc::new(assoc),
    }
}
