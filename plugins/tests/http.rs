//! HTTP front end over real sockets on 127.0.0.1.

mod common;

use std::sync::atomic::Ordering;

use common::*;
use serde_json::json;

#[tokio::test]
async fn json_round_trip() {
    let f = start(config(|_| {})).await;
    let reply = http(
        f.addr(),
        "POST",
        "/echo/rooms/a%2Fb?x=1&y=two+words",
        Some(br#"{"id":"b1","displayName":"Broadcaster","device":{"name":"FFmpeg"}}"#),
    )
    .await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("content-type"), Some("application/json"));
    assert_eq!(reply.header("access-control-allow-origin"), Some("*"));
    assert_eq!(
        reply.json(),
        json!({
            "method": "POST",
            "path": "/echo/rooms/a%2Fb",
            "segments": ["echo", "rooms", "a/b"],
            "query": [["x", "1"], ["y", "two words"]],
            "body": {"id": "b1", "displayName": "Broadcaster", "device": {"name": "FFmpeg"}},
            "loopback": true,
        })
    );
}

#[tokio::test]
async fn empty_body_is_none() {
    let f = start(config(|_| {})).await;
    let reply = http(f.addr(), "GET", "/echo", None).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.json()["body"], json!(null));
    assert_eq!(reply.json()["method"], "GET");
}

#[tokio::test]
async fn text_response_has_text_content_type() {
    let f = start(config(|_| {})).await;
    let reply = http(f.addr(), "DELETE", "/text", None).await;
    assert_eq!(reply.status, 200);
    assert_eq!(
        reply.header("content-type"),
        Some("text/plain; charset=utf-8")
    );
    assert_eq!(&reply.body[..], b"broadcaster deleted");
}

#[tokio::test]
async fn malformed_json_is_400_without_calling_the_handler() {
    let f = start(config(|_| {})).await;
    let reply = http(f.addr(), "POST", "/echo", Some(b"{\"id\": ")).await;
    assert_eq!(reply.status, 400);
    assert_eq!(reply.header("content-type"), Some("application/json"));
    let error = reply.json()["error"].as_str().unwrap().to_owned();
    assert!(error.starts_with("invalid JSON body"), "{error}");
    assert_eq!(f.http.calls.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn oversized_body_is_413_without_calling_the_handler() {
    let f = start(config(|c| c.max_body_bytes = 1024)).await;
    let big = format!(r#"{{"pad":"{}"}}"#, "x".repeat(2048));
    let reply = http(f.addr(), "POST", "/echo", Some(big.as_bytes())).await;
    assert_eq!(reply.status, 413);
    assert!(reply.json()["error"].as_str().unwrap().contains("1024"));
    // Exactly at the limit is fine.
    let fits = format!(r#"{{"pad":"{}"}}"#, "x".repeat(1024 - 10));
    assert_eq!(fits.len(), 1024);
    assert_eq!(
        http(f.addr(), "POST", "/echo", Some(fits.as_bytes()))
            .await
            .status,
        200
    );
    assert_eq!(f.http.calls.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn oversized_chunked_body_is_413() {
    // No Content-Length: the limit must hold while streaming too.
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let f = start(config(|c| c.max_body_bytes = 1024)).await;
    let mut tcp = tokio::net::TcpStream::connect(f.addr()).await.unwrap();
    let chunk = "x".repeat(800);
    let req = format!(
        "POST /echo HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n{:x}\r\n{chunk}\r\n{:x}\r\n{chunk}\r\n0\r\n\r\n",
        chunk.len(),
        chunk.len()
    );
    tcp.write_all(req.as_bytes()).await.unwrap();
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(WAIT, tcp.read(&mut buf))
        .await
        .unwrap()
        .unwrap();
    let head = String::from_utf8_lossy(&buf[..n]);
    assert!(head.starts_with("HTTP/1.1 413"), "{head}");
    assert_eq!(f.http.calls.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn cors_preflight_is_answered() {
    let f = start(config(|_| {})).await;
    let req = hyper::Request::builder()
        .method("OPTIONS")
        .uri("/rooms/r/broadcasters")
        .header("host", "x")
        .header("origin", "https://example.test")
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", "content-type, x-custom")
        .body(http_body_util::Full::new(bytes::Bytes::new()))
        .unwrap();
    let tcp = tokio::net::TcpStream::connect(f.addr()).await.unwrap();
    let reply = http_over(tcp, req).await;
    assert_eq!(reply.status, 204);
    assert_eq!(reply.header("access-control-allow-origin"), Some("*"));
    assert!(reply
        .header("access-control-allow-methods")
        .unwrap()
        .contains("DELETE"));
    assert_eq!(
        reply.header("access-control-allow-headers"),
        Some("content-type, x-custom")
    );
    assert_eq!(f.http.calls.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn unknown_route_is_handler_404() {
    let f = start(config(|_| {})).await;
    let reply = http(f.addr(), "GET", "/nothing", None).await;
    assert_eq!(reply.status, 404);
    assert_eq!(reply.json(), json!({"error": "not found"}));
}

#[tokio::test]
async fn static_files_serve_what_the_handler_does_not() {
    let dir = temp_dir("static");
    std::fs::write(dir.join("index.html"), "<h1>demo</h1>").unwrap();
    std::fs::create_dir(dir.join("js")).unwrap();
    std::fs::write(dir.join("js").join("app.js"), "console.log(1)").unwrap();
    let outside = dir
        .parent()
        .unwrap()
        .join(format!("ringsfu-secret-{}", std::process::id()));
    std::fs::write(&outside, "secret").unwrap();

    let f = start(config(|c| c.static_dir = Some(dir.clone()))).await;
    let index = http(f.addr(), "GET", "/", None).await;
    assert_eq!(index.status, 200);
    assert_eq!(
        index.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    assert_eq!(&index.body[..], b"<h1>demo</h1>");
    let js = http(f.addr(), "GET", "/js/app.js", None).await;
    assert_eq!(
        js.header("content-type"),
        Some("text/javascript; charset=utf-8")
    );
    assert_eq!(&js.body[..], b"console.log(1)");
    // Directories map to index.html only when one exists.
    assert_eq!(http(f.addr(), "GET", "/js", None).await.status, 404);
    // The handler's routes win over files.
    assert_eq!(
        http(f.addr(), "GET", "/echo", None).await.json()["method"],
        "GET"
    );
    // No escape from the directory, even percent-encoded.
    let name = outside.file_name().unwrap().to_str().unwrap();
    for path in [
        format!("/../{name}"),
        format!("/%2e%2e/{name}"),
        format!("/js/..%2F..%2F{name}"),
    ] {
        let reply = http(f.addr(), "GET", &path, None).await;
        assert_eq!(reply.status, 404, "{path}");
        assert_ne!(&reply.body[..], b"secret");
    }
    // Only GET/HEAD fall back to files.
    assert_eq!(http(f.addr(), "POST", "/js/app.js", None).await.status, 404);
    let _ = std::fs::remove_file(outside);
    let _ = std::fs::remove_dir_all(dir);
}
