//! DTLS handshake time against an independent peer (webrtc-rs's `dtls` client) over loopback UDP:
//! from the server receiving the ClientHello to our session reporting `Connected` with SRTP keys.
//!
//! `cargo test --profile ci -p ringsfu-core --test dtls_handshake -- --ignored --nocapture`
//! (`DTLS_HANDSHAKES=200` sets the count). The default run does a few handshakes as an interop test.

use std::sync::Arc;
use std::time::{Duration, Instant};

use ringsfu_core::dtls::{fingerprint_of, DtlsCertificate, DtlsOutput, DtlsRole, DtlsSession};
use tokio::net::UdpSocket;
use webrtc::dtls::config::{Config, ExtendedMasterSecretType};
use webrtc::dtls::conn::DTLSConn;
use webrtc::dtls::crypto::Certificate;
use webrtc::dtls::extension::extension_use_srtp::SrtpProtectionProfile;

/// One handshake: webrtc-rs client ↔ our server session. Returns ClientHello → Connected.
async fn handshake(cert: &DtlsCertificate) -> Duration {
    let server = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let client = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    client.connect(server.local_addr().unwrap()).await.unwrap();
    let peer_addr = client.local_addr().unwrap();
    let client_cert = Certificate::generate_self_signed(vec!["peer".into()]).unwrap();
    let client_fp = fingerprint_of(client_cert.certificate[0].as_ref(), "sha-256").unwrap();
    let config = Config {
        certificates: vec![client_cert],
        srtp_protection_profiles: vec![
            SrtpProtectionProfile::Srtp_Aead_Aes_128_Gcm,
            SrtpProtectionProfile::Srtp_Aes128_Cm_Hmac_Sha1_80,
        ],
        extended_master_secret: ExtendedMasterSecretType::Require,
        insecure_skip_verify: true,
        ..Default::default()
    };
    let (done_tx, done_rx) = tokio::sync::oneshot::channel::<()>();
    let peer = tokio::task::spawn_local(async move {
        let conn = DTLSConn::new(Arc::new(client), config, true, None)
            .await
            .expect("webrtc-rs client handshake");
        // Keep the connection up until the server is done with it.
        let _ = done_rx.await;
        drop(conn);
    });

    let mut session: Option<DtlsSession> = None;
    let mut first_hello = None;
    let mut buf = vec![0u8; 2048];
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let wake = session
            .as_ref()
            .and_then(|s| s.poll_timeout())
            .unwrap_or(deadline)
            .min(deadline);
        tokio::select! {
            r = server.recv_from(&mut buf) => {
                let (n, from) = r.unwrap();
                assert_eq!(from, peer_addr);
                let now = Instant::now();
                let s = session.get_or_insert_with(|| {
                    first_hello = Some(now);
                    DtlsSession::new(DtlsRole::Server, cert, client_fp.clone(), now)
                });
                s.handle_input(&buf[..n], now);
            }
            _ = tokio::time::sleep_until(wake.into()) => {
                assert!(Instant::now() < deadline, "handshake did not finish");
                if let Some(s) = session.as_mut() {
                    s.handle_timeout(Instant::now());
                }
            }
        }
        let Some(s) = session.as_mut() else { continue };
        while let Some(out) = s.poll_output() {
            match out {
                DtlsOutput::Transmit(r) => {
                    server.send_to(r, peer_addr).await.unwrap();
                }
                DtlsOutput::Connected { material, .. } => {
                    assert!(!material.is_empty());
                    let took = first_hello.unwrap().elapsed();
                    // Let the client see our last flight before it is dropped.
                    while let Some(DtlsOutput::Transmit(r)) = s.poll_output() {
                        server.send_to(r, peer_addr).await.unwrap();
                    }
                    // The client finishes once it has our last flight; then it may go.
                    let _ = done_tx.send(());
                    peer.await.unwrap();
                    return took;
                }
                other => panic!("unexpected {other:?}"),
            }
        }
    }
}

fn run(count: usize) -> Vec<Duration> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let local = tokio::task::LocalSet::new();
    local.block_on(&rt, async move {
        let cert = DtlsCertificate::generate().unwrap();
        let mut times = Vec::with_capacity(count);
        for _ in 0..count {
            times.push(handshake(&cert).await);
        }
        times
    })
}

#[test]
fn webrtc_rs_client_completes_handshakes_with_our_server() {
    let times = run(3);
    assert_eq!(times.len(), 3);
}

#[test]
#[ignore = "measurement: run with --ignored --nocapture"]
fn handshake_time_median_and_p95() {
    let n = std::env::var("DTLS_HANDSHAKES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(200);
    let mut times = run(n);
    times.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!(
        "DTLS server handshakes (ClientHello -> Connected, webrtc-rs client, loopback): n={n} median={:.2} ms p95={:.2} ms min={:.2} ms max={:.2} ms",
        ms(times[n / 2]),
        ms(times[n * 95 / 100]),
        ms(times[0]),
        ms(times[n - 1])
    );
}
