//! TLS mode: one port serves https and wss with a self-signed certificate made here.

mod common;

use std::sync::Arc;

use common::*;
use ringsfu_plugins::{PeerInbound, TlsFiles};
use serde_json::json;
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::ServerName;

/// Writes a fresh self-signed `localhost` certificate; returns the files and the DER cert.
fn self_signed(name: &str) -> (TlsFiles, rustls::pki_types::CertificateDer<'static>) {
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let dir = temp_dir(name);
    let files = TlsFiles {
        cert_pem: dir.join("cert.pem"),
        key_pem: dir.join("key.pem"),
    };
    std::fs::write(&files.cert_pem, certified.cert.pem()).unwrap();
    std::fs::write(&files.key_pem, certified.key_pair.serialize_pem()).unwrap();
    (files, certified.cert.der().clone())
}

fn connector(cert: rustls::pki_types::CertificateDer<'static>) -> tokio_rustls::TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert).unwrap();
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    tokio_rustls::TlsConnector::from(Arc::new(config))
}

async fn tls_stream(
    connector: &tokio_rustls::TlsConnector,
    addr: std::net::SocketAddr,
) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    connector
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .expect("TLS handshake")
}

#[tokio::test]
async fn https_and_wss_on_one_port() {
    let (files, cert) = self_signed("tls");
    let mut f = start(config(|c| c.tls = Some(files))).await;
    assert!(f.server.is_tls());
    let connector = connector(cert);

    // https
    let stream = tls_stream(&connector, f.addr()).await;
    let reply = http_over(
        stream,
        build_request(f.addr(), "POST", "/echo?a=b", Some(br#"{"k":[1,2]}"#)),
    )
    .await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("content-type"), Some("application/json"));
    assert_eq!(reply.json()["body"], json!({"k": [1, 2]}));
    assert_eq!(reply.json()["query"], json!([["a", "b"]]));

    // wss
    let stream = tls_stream(&connector, f.addr()).await;
    let url = format!("wss://localhost:{}/?roomId=r&peerId=p", f.addr().port());
    let (mut ws, resp) = tokio_tungstenite::client_async(ws_request(&url, Some("protoo")), stream)
        .await
        .expect("wss handshake");
    assert_eq!(
        resp.headers().get("sec-websocket-protocol").unwrap(),
        "protoo"
    );
    let mut a = f.next_peer().await;
    send_json(
        &mut ws,
        json!({"request": true, "id": 42, "method": "join", "data": {"displayName": "Z"}}),
    )
    .await;
    assert_eq!(
        a.next().await,
        PeerInbound::Request {
            id: 42,
            method: "join".into(),
            data: json!({"displayName": "Z"})
        }
    );
    a.peer.respond_ok(42, json!({"peers": []}));
    assert_eq!(
        recv_json(&mut ws).await,
        json!({"response": true, "id": 42, "ok": true, "data": {"peers": []}})
    );
    let pending = tokio::spawn(a.peer.request("newConsumer", json!({"id": "c"})));
    let req = recv_json(&mut ws).await;
    send_json(
        &mut ws,
        json!({"response": true, "id": req["id"], "ok": true}),
    )
    .await;
    assert_eq!(pending.await.unwrap(), Ok(json!({})));
}

#[tokio::test]
async fn plain_http_is_refused_on_a_tls_port() {
    let (files, _) = self_signed("tls-plain");
    let f = start(config(|c| c.tls = Some(files))).await;
    let tcp = tokio::net::TcpStream::connect(f.addr()).await.unwrap();
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tcp))
            .await
            .unwrap();
    tokio::spawn(conn);
    let result = tokio::time::timeout(
        WAIT,
        sender.send_request(build_request(f.addr(), "GET", "/echo", None)),
    )
    .await
    .expect("server must hang up, not stall");
    assert!(
        result.is_err(),
        "plain HTTP must not be served on the TLS port"
    );
    assert_eq!(f.http.calls.load(std::sync::atomic::Ordering::SeqCst), 0);
}

#[tokio::test]
async fn bad_tls_files_are_reported() {
    let dir = temp_dir("tls-bad");
    let files = TlsFiles {
        cert_pem: dir.join("missing.pem"),
        key_pem: dir.join("missing-key.pem"),
    };
    let err = ringsfu_plugins::serve(
        config(|c| c.tls = Some(files)),
        Arc::new(NeverProtoo),
        Arc::new(TestHttp::default()),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(err, ringsfu_plugins::PluginError::TlsFile { .. }),
        "{err}"
    );

    std::fs::write(dir.join("empty.pem"), "").unwrap();
    let files = TlsFiles {
        cert_pem: dir.join("empty.pem"),
        key_pem: dir.join("empty.pem"),
    };
    let err = ringsfu_plugins::serve(
        config(|c| c.tls = Some(files)),
        Arc::new(NeverProtoo),
        Arc::new(TestHttp::default()),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(err, ringsfu_plugins::PluginError::NoCertificate(_)),
        "{err}"
    );
}

/// A protoo handler for servers that never see a WebSocket.
struct NeverProtoo;

impl ringsfu_plugins::ProtooHandler for NeverProtoo {
    fn connect(
        &self,
        _req: ringsfu_plugins::ConnectRequest,
    ) -> ringsfu_plugins::BoxFuture<
        'static,
        Result<tokio::sync::mpsc::UnboundedSender<PeerInbound>, ringsfu_plugins::Reject>,
    > {
        Box::pin(async { Err(ringsfu_plugins::Reject::new(503, "unused")) })
    }
}
