//! Shared test fixtures: a test double standing in for the Lua host, and small clients.
#![allow(dead_code)] // each test file uses a different subset

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http_body_util::{BodyExt, Full};
use ringsfu_plugins::{
    BoxFuture, ConnectRequest, HttpHandler, HttpRequest, HttpResponse, PeerHandle, PeerInbound,
    ProtooHandler, Reject, ServerConfig, ServerHandle,
};
use serde_json::{json, Value};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

/// Upper bound for any single wait in the tests.
pub const WAIT: Duration = Duration::from_secs(5);

/// One accepted peer as the test sees it: the handle plus what the plugin delivers.
pub struct Accepted {
    pub peer: PeerHandle,
    pub inbound: mpsc::UnboundedReceiver<PeerInbound>,
    pub query: Vec<(String, String)>,
    pub remote_addr: SocketAddr,
}

impl Accepted {
    /// Next inbound message, failing the test after [`WAIT`].
    pub async fn next(&mut self) -> PeerInbound {
        tokio::time::timeout(WAIT, self.inbound.recv())
            .await
            .expect("timed out waiting for inbound")
            .expect("inbound channel closed without Closed")
    }
}

/// Test double of the Lua host: rejects peer ids starting with `reject-` with status 409 and
/// hands every accepted peer to the test.
pub struct TestProtoo {
    accepted: mpsc::UnboundedSender<Accepted>,
}

impl ProtooHandler for TestProtoo {
    fn connect(
        &self,
        req: ConnectRequest,
    ) -> BoxFuture<'static, Result<mpsc::UnboundedSender<PeerInbound>, Reject>> {
        let accepted = self.accepted.clone();
        Box::pin(async move {
            if req.peer_id.starts_with("reject-") {
                return Err(Reject::new(409, "rejected by test"));
            }
            let (tx, rx) = mpsc::unbounded_channel();
            let _ = accepted.send(Accepted {
                peer: req.peer,
                inbound: rx,
                query: req.query,
                remote_addr: req.remote_addr,
            });
            Ok(tx)
        })
    }
}

/// Test double of the HTTP routes: `/echo` answers with what it received, `/text` with text;
/// anything else is 404. Counts calls.
#[derive(Default)]
pub struct TestHttp {
    pub calls: AtomicUsize,
}

impl HttpHandler for TestHttp {
    fn handle(&self, req: HttpRequest) -> BoxFuture<'static, HttpResponse> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        Box::pin(async move {
            match req.segments.first().map(String::as_str) {
                Some("echo") => HttpResponse::json(
                    200,
                    json!({
                        "method": req.method.as_str(),
                        "path": req.path,
                        "segments": req.segments,
                        "query": req.query,
                        "body": req.body,
                        "loopback": req.remote_addr.ip().is_loopback(),
                    }),
                ),
                Some("text") => HttpResponse::text(200, "broadcaster deleted"),
                _ => HttpResponse::not_found(),
            }
        })
    }
}

/// A running server with its test doubles.
pub struct Fixture {
    pub server: ServerHandle,
    pub accepted: mpsc::UnboundedReceiver<Accepted>,
    pub http: Arc<TestHttp>,
}

impl Fixture {
    pub fn addr(&self) -> SocketAddr {
        self.server.local_addr()
    }

    /// Next accepted peer, failing the test after [`WAIT`].
    pub async fn next_peer(&mut self) -> Accepted {
        tokio::time::timeout(WAIT, self.accepted.recv())
            .await
            .expect("timed out waiting for a peer")
            .expect("handler gone")
    }
}

/// Config on 127.0.0.1 port 0, adjusted by `tweak`.
pub fn config(tweak: impl FnOnce(&mut ServerConfig)) -> ServerConfig {
    let mut c = ServerConfig::new("127.0.0.1:0".parse().unwrap());
    tweak(&mut c);
    c
}

pub async fn start(config: ServerConfig) -> Fixture {
    let (tx, rx) = mpsc::unbounded_channel();
    let http = Arc::new(TestHttp::default());
    let server =
        ringsfu_plugins::serve(config, Arc::new(TestProtoo { accepted: tx }), http.clone())
            .await
            .expect("serve");
    Fixture {
        server,
        accepted: rx,
        http,
    }
}

/// A client handshake request for `url`, offering `subprotocol` when given.
pub fn ws_request(
    url: &str,
    subprotocol: Option<&str>,
) -> tokio_tungstenite::tungstenite::handshake::client::Request {
    let mut req = url.into_client_request().unwrap();
    if let Some(p) = subprotocol {
        req.headers_mut()
            .insert("Sec-WebSocket-Protocol", HeaderValue::from_str(p).unwrap());
    }
    req
}

pub type Client = WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Connects a protoo client; returns the socket and the server's `Sec-WebSocket-Protocol`.
pub async fn ws_connect(addr: SocketAddr, query: &str) -> (Client, Option<String>) {
    let url = format!("ws://{addr}/?{query}");
    let (ws, resp) = tokio_tungstenite::connect_async(ws_request(&url, Some("protoo")))
        .await
        .expect("ws connect");
    let proto = resp
        .headers()
        .get("sec-websocket-protocol")
        .map(|v| v.to_str().unwrap().to_owned());
    (ws, proto)
}

/// The HTTP status of a refused upgrade.
pub async fn ws_refused_status(addr: SocketAddr, query: &str, subprotocol: Option<&str>) -> u16 {
    let url = format!("ws://{addr}/?{query}");
    match tokio_tungstenite::connect_async(ws_request(&url, subprotocol)).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => resp.status().as_u16(),
        Err(e) => panic!("unexpected error {e}"),
        Ok(_) => panic!("upgrade unexpectedly accepted"),
    }
}

/// Next text message from the server, parsed as JSON (skips pings/pongs).
pub async fn recv_json<S>(ws: &mut WebSocketStream<S>) -> Value
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    loop {
        let msg = tokio::time::timeout(WAIT, ws.next())
            .await
            .expect("timed out waiting for a message")
            .expect("stream ended")
            .expect("ws error");
        match msg {
            Message::Text(t) => return serde_json::from_str(t.as_str()).expect("server sent JSON"),
            Message::Ping(_) | Message::Pong(_) => continue,
            other => panic!("unexpected message {other:?}"),
        }
    }
}

pub async fn send_json<S>(ws: &mut WebSocketStream<S>, v: Value)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    ws.send(Message::text(v.to_string())).await.unwrap();
}

/// Reads until the close frame; returns its code (panics if the stream ends without one).
pub async fn recv_close_code<S>(ws: &mut WebSocketStream<S>) -> u16
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    loop {
        let msg = tokio::time::timeout(WAIT, ws.next())
            .await
            .expect("timed out waiting for close")
            .expect("stream ended without close frame")
            .expect("ws error");
        if let Message::Close(frame) = msg {
            // Reading on flushes the client's automatic close reply, completing the handshake.
            let _ = tokio::time::timeout(WAIT, ws.next()).await;
            return frame.map(|f| u16::from(f.code)).unwrap_or(1005);
        }
    }
}

/// A parsed HTTP response.
#[derive(Debug)]
pub struct HttpReply {
    pub status: u16,
    pub headers: hyper::HeaderMap,
    pub body: Bytes,
}

impl HttpReply {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("JSON body")
    }
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().unwrap())
    }
}

/// Sends one HTTP/1.1 request over `io` with hyper's client.
pub async fn http_over<S>(io: S, req: hyper::Request<Full<Bytes>>) -> HttpReply
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(io))
            .await
            .expect("http handshake");
    tokio::spawn(conn);
    let resp = tokio::time::timeout(WAIT, sender.send_request(req))
        .await
        .expect("http timeout")
        .expect("http request");
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = resp.into_body().collect().await.expect("body").to_bytes();
    HttpReply {
        status,
        headers,
        body,
    }
}

/// Sends one plain HTTP request to `addr`.
pub async fn http(addr: SocketAddr, method: &str, path: &str, body: Option<&[u8]>) -> HttpReply {
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    http_over(tcp, build_request(addr, method, path, body)).await
}

pub fn build_request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: Option<&[u8]>,
) -> hyper::Request<Full<Bytes>> {
    let mut b = hyper::Request::builder()
        .method(method)
        .uri(path)
        .header("host", addr.to_string());
    if body.is_some() {
        b = b.header("content-type", "application/json");
    }
    b.body(Full::new(Bytes::copy_from_slice(body.unwrap_or_default())))
        .unwrap()
}

/// A fresh, empty directory under the system temp dir.
pub fn temp_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("ringsfu-plugins-{}-{}", std::process::id(), name));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
