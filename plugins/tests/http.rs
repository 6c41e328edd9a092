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
    // No Origin header (not a web page): served, with no CORS grant.
    assert_eq!(reply.header("access-control-allow-origin"), None);
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

/// Sends `method path` with an `Origin` header (and `host: 127.0.0.1:PORT`, the server itself).
async fn with_origin(
    f: &Fixture,
    method: &str,
    path: &str,
    origin: &str,
    body: &[u8],
) -> HttpReply {
    let req = hyper::Request::builder()
        .method(method)
        .uri(path)
        .header("host", f.addr().to_string())
        .header("origin", origin)
        .header("content-type", "text/plain")
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", "content-type, x-custom")
        .body(http_body_util::Full::new(bytes::Bytes::copy_from_slice(
            body,
        )))
        .unwrap();
    let tcp = tokio::net::TcpStream::connect(f.addr()).await.unwrap();
    http_over(tcp, req).await
}

#[tokio::test]
async fn cors_preflight_is_answered_for_a_configured_origin_only() {
    let f = start(config(|c| {
        c.cors_origins = ringsfu_plugins::OriginList::new(["https://example.test"]).unwrap();
    }))
    .await;
    let reply = with_origin(
        &f,
        "OPTIONS",
        "/rooms/r/broadcasters",
        "https://example.test",
        b"",
    )
    .await;
    assert_eq!(reply.status, 204);
    assert_eq!(
        reply.header("access-control-allow-origin"),
        Some("https://example.test")
    );
    assert!(reply
        .header("access-control-allow-methods")
        .unwrap()
        .contains("DELETE"));
    assert_eq!(
        reply.header("access-control-allow-headers"),
        Some("content-type, x-custom")
    );
    let refused = with_origin(
        &f,
        "OPTIONS",
        "/rooms/r/broadcasters",
        "https://evil.test",
        b"",
    )
    .await;
    assert_eq!(refused.status, 403);
    assert_eq!(refused.header("access-control-allow-origin"), None);
    assert_eq!(f.http.calls.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn cross_origin_post_is_refused_by_default_and_served_for_a_configured_origin() {
    // Default: same origin only. A "simple" cross-origin POST (text/plain, no preflight) must
    // not reach the handler at all: refusing only the CORS grant would still run it.
    let f = start(config(|_| {})).await;
    let body = br#"{"id":"b1"}"#;
    let reply = with_origin(&f, "POST", "/echo", "http://evil.example", body).await;
    assert_eq!(reply.status, 403);
    assert!(reply.json()["error"]
        .as_str()
        .unwrap()
        .contains("http://evil.example"));
    assert_eq!(reply.header("access-control-allow-origin"), None);
    assert_eq!(
        f.http.calls.load(Ordering::SeqCst),
        0,
        "handler must not run"
    );
    // The server's own origin is fine.
    let own = format!("http://{}", f.addr());
    let reply = with_origin(&f, "POST", "/echo", &own, body).await;
    assert_eq!(reply.status, 200);
    assert_eq!(f.http.calls.load(Ordering::SeqCst), 1);

    let f = start(config(|c| {
        c.cors_origins = ringsfu_plugins::OriginList::new(["http://app.example:8080"]).unwrap();
    }))
    .await;
    let reply = with_origin(&f, "POST", "/echo", "http://app.example:8080", body).await;
    assert_eq!(reply.status, 200);
    assert_eq!(
        reply.header("access-control-allow-origin"),
        Some("http://app.example:8080")
    );
    assert_eq!(reply.json()["body"]["id"], "b1");
    let reply = with_origin(&f, "POST", "/echo", "http://app.example:8081", body).await;
    assert_eq!(reply.status, 403);
    assert_eq!(f.http.calls.load(Ordering::SeqCst), 1);
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
