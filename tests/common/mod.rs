//! Shared helpers of the protoo-level tests: a server on ephemeral ports, a protoo client.

#![allow(dead_code)]

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use ringsfu::executor::{LocalThread, WorkerExec};
use ringsfu::scripts::{Route, ScriptSource};
use ringsfu::Config;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// How long a test waits for any one message.
pub const WAIT: Duration = Duration::from_secs(10);

/// The embedded config on ephemeral ports, `workers` workers, a small instruction budget.
pub fn test_config(workers: usize) -> Config {
    let mut c = Config::default_with_env().expect("embedded config");
    c.http.port = 0;
    c.web_rtc.port = 0;
    c.workers = workers;
    c.lua.instruction_limit = 2_000_000;
    // Parallel tests must not fight over the TURN port.
    c.turn.enabled = false;
    c
}

/// An inline script route.
pub fn inline(pattern: &str, name: &str, source: &str) -> Route {
    Route {
        pattern: pattern.into(),
        script: ScriptSource::Inline {
            name: name.into(),
            source: source.into(),
        },
    }
}

/// A path route.
pub fn path(pattern: &str, p: &str) -> Route {
    Route {
        pattern: pattern.into(),
        script: ScriptSource::Path(p.into()),
    }
}

/// Starts a server with engine-less worker threads (signaling logic only).
pub async fn start_local(routes: Vec<Route>, workers: usize) -> ringsfu::Server {
    let threads: Vec<Arc<dyn WorkerExec>> = (0..workers)
        .map(|i| Arc::new(LocalThread::spawn(i).unwrap()) as Arc<dyn WorkerExec>)
        .collect();
    ringsfu::start_with(test_config(workers), routes, threads)
        .await
        .expect("server starts")
}

/// A protoo client.
pub struct Client {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    /// Messages received while waiting for something else.
    pub backlog: VecDeque<Value>,
    next_id: u64,
}

/// Why a connection failed.
#[derive(Debug)]
pub enum ConnectError {
    /// The upgrade was refused with this status and body.
    Http(u16, String),
    /// Something else.
    Other(String),
}

/// The upgrade request of `ws://addr/?query` with the protoo subprotocol.
fn protoo_request(
    addr: SocketAddr,
    query: &str,
) -> tokio_tungstenite::tungstenite::handshake::client::Request {
    let mut req = format!("ws://{addr}/?{query}")
        .into_client_request()
        .unwrap();
    req.headers_mut()
        .insert("Sec-WebSocket-Protocol", "protoo".parse().unwrap());
    req
}

impl Client {
    /// Connects `ws://addr/?roomId=..&peerId=..` with the protoo subprotocol.
    pub async fn connect(addr: SocketAddr, room: &str, peer: &str) -> Result<Client, ConnectError> {
        Client::connect_query(addr, &format!("roomId={room}&peerId={peer}")).await
    }

    /// Connects with a raw query string.
    pub async fn connect_query(addr: SocketAddr, query: &str) -> Result<Client, ConnectError> {
        Client::handshake(tokio_tungstenite::connect_async(protoo_request(addr, query)).await)
    }

    /// Connects from the local address `from` (e.g. 127.0.0.2, another client IP on loopback).
    pub async fn connect_from(
        from: std::net::IpAddr,
        addr: SocketAddr,
        query: &str,
    ) -> Result<Client, ConnectError> {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind(SocketAddr::new(from, 0)).unwrap();
        let tcp = socket
            .connect(addr)
            .await
            .map_err(|e| ConnectError::Other(e.to_string()))?;
        Client::handshake(
            tokio_tungstenite::client_async(
                protoo_request(addr, query),
                MaybeTlsStream::Plain(tcp),
            )
            .await,
        )
    }

    /// The client of a finished WebSocket handshake, or why it failed.
    fn handshake<R>(
        result: Result<
            (WebSocketStream<MaybeTlsStream<TcpStream>>, R),
            tokio_tungstenite::tungstenite::Error,
        >,
    ) -> Result<Client, ConnectError> {
        match result {
            Ok((ws, _)) => Ok(Client {
                ws,
                backlog: VecDeque::new(),
                next_id: 1,
            }),
            Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
                let body = resp
                    .body()
                    .as_ref()
                    .map(|b| String::from_utf8_lossy(b).into_owned())
                    .unwrap_or_default();
                Err(ConnectError::Http(resp.status().as_u16(), body))
            }
            Err(e) => Err(ConnectError::Other(e.to_string())),
        }
    }

    /// Sends a raw text frame.
    pub async fn send_text(&mut self, text: &str) {
        self.ws.send(Message::text(text)).await.unwrap();
    }

    /// Next JSON message from the socket (not the backlog); None on close.
    pub async fn recv(&mut self) -> Option<Value> {
        loop {
            let msg = tokio::time::timeout(WAIT, self.ws.next())
                .await
                .expect("timed out waiting for a message")?;
            match msg {
                Ok(Message::Text(t)) => return Some(serde_json::from_str(&t).unwrap()),
                Ok(Message::Close(_)) | Err(_) => return None,
                Ok(_) => continue,
            }
        }
    }

    /// Waits for the close frame and returns its code.
    pub async fn closed_with(&mut self) -> Option<u16> {
        loop {
            let msg = tokio::time::timeout(WAIT, self.ws.next())
                .await
                .expect("timed out waiting for close")?;
            match msg {
                Ok(Message::Close(Some(f))) => return Some(u16::from(f.code)),
                Ok(Message::Close(None)) => return Some(u16::from(CloseCode::Status)),
                Ok(Message::Text(t)) => self.backlog.push_back(serde_json::from_str(&t).unwrap()),
                Ok(_) => continue,
                Err(_) => return None,
            }
        }
    }

    /// Sends a request and waits for its response (other messages go to the backlog).
    pub async fn request(&mut self, method: &str, data: Value) -> Value {
        let id = self.next_id;
        self.next_id += 1;
        let text = json!({"request": true, "id": id, "method": method, "data": data}).to_string();
        self.send_text(&text).await;
        self.response(id).await
    }

    /// Waits for the response to request `id`.
    pub async fn response(&mut self, id: u64) -> Value {
        if let Some(pos) = self
            .backlog
            .iter()
            .position(|m| m["response"] == true && m["id"] == id)
        {
            return self.backlog.remove(pos).unwrap();
        }
        loop {
            let m = self
                .recv()
                .await
                .expect("connection closed before the response");
            if m["response"] == true && m["id"] == id {
                return m;
            }
            self.backlog.push_back(m);
        }
    }

    /// Waits for a notification (or a request from the server) with `method`.
    pub async fn wait_for(&mut self, method: &str) -> Value {
        if let Some(pos) = self.backlog.iter().position(|m| m["method"] == method) {
            return self.backlog.remove(pos).unwrap();
        }
        loop {
            let m = self
                .recv()
                .await
                .unwrap_or_else(|| panic!("connection closed while waiting for {method}"));
            if m["method"] == method {
                return m;
            }
            self.backlog.push_back(m);
        }
    }

    /// Answers a server request with success.
    pub async fn answer_ok(&mut self, id: &Value, data: Value) {
        let text = json!({"response": true, "id": id, "ok": true, "data": data}).to_string();
        self.send_text(&text).await;
    }

    /// Closes the socket.
    pub async fn close(mut self) {
        let _ = self.ws.close(None).await;
    }

    /// Closes the socket and waits until the server has closed its side too (it has then seen
    /// the close).
    pub async fn close_and_wait(mut self) {
        let _ = self.ws.close(None).await;
        while let Ok(Some(Ok(_))) = tokio::time::timeout(WAIT, self.ws.next()).await {}
    }
}

/// `ok` response data, or panics with the error.
pub fn ok(resp: &Value) -> &Value {
    assert_eq!(resp["ok"], true, "expected success, got {resp}");
    &resp["data"]
}

/// (errorCode, errorReason) of an error response.
pub fn err(resp: &Value) -> (u64, String) {
    assert!(resp.get("ok").is_none(), "expected an error, got {resp}");
    (
        resp["errorCode"].as_u64().unwrap(),
        resp["errorReason"].as_str().unwrap().to_owned(),
    )
}

/// A minimal HTTP/1.1 request without a body; returns (status, body).
pub async fn http(addr: SocketAddr, method: &str, path: &str) -> (u16, String) {
    let a = call_with(addr, method, path, &[], "").await;
    (a.status, a.body)
}

/// Polls `f` until true or the wait expires.
pub async fn eventually(mut f: impl FnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + WAIT;
    while tokio::time::Instant::now() < deadline {
        if f() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

/// An HTTP answer: status, content type, head, body text.
#[derive(Debug)]
pub struct Answer {
    /// HTTP status code (0 when the answer could not be parsed).
    pub status: u16,
    /// The Content-Type header value ("" when absent).
    pub content_type: String,
    /// The status line and headers, lowercased.
    pub head: String,
    /// The body text.
    pub body: String,
}

impl Answer {
    /// The body parsed as JSON (panics with the body text when it is not JSON).
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.body))
    }
}

/// A minimal HTTP/1.1 client (one request per connection) sending `body` as JSON text.
pub async fn call_raw(addr: SocketAddr, method: &str, path: &str, body: &str) -> Answer {
    call_with(
        addr,
        method,
        path,
        &[("Content-Type", "application/json")],
        body,
    )
    .await
}

/// A minimal HTTP/1.1 client (one request per connection) sending `body` with exactly the
/// `headers` given (besides Host, Content-Length and Connection).
pub async fn call_with(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Answer {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str(&format!(
        "Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    ));
    s.write_all(req.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    tokio::time::timeout(WAIT, s.read_to_end(&mut buf))
        .await
        .expect("HTTP answer in time")
        .unwrap();
    let text = String::from_utf8_lossy(&buf).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let content_type = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-type")
                .then(|| v.trim().to_owned())
        })
        .unwrap_or_default();
    Answer {
        status,
        content_type,
        head: head.to_ascii_lowercase(),
        body: body.to_owned(),
    }
}

/// Connects a protoo peer as the demo app does: waits for `mediasoup-version`, creates a
/// WebRtcTransport (`producing`, else consuming) and joins as a Chrome device with
/// `rtp_capabilities` (asserting both answers are ok). Returns the client, the transport data
/// and the join answer's data.
pub async fn join_with_transport(
    addr: SocketAddr,
    room: &str,
    peer: &str,
    producing: bool,
    rtp_capabilities: Value,
) -> (Client, Value, Value) {
    let mut c = Client::connect(addr, room, peer).await.unwrap();
    c.wait_for("mediasoup-version").await;
    let transport = ok(&c
        .request(
            "createWebRtcTransport",
            json!({"forceTcp": false, "producing": producing, "consuming": !producing}),
        )
        .await)
    .clone();
    let joined = ok(&c
        .request(
            "join",
            json!({"displayName": peer, "device": {"flag": "chrome", "name": "Chrome"},
                   "rtpCapabilities": rtp_capabilities}),
        )
        .await)
    .clone();
    (c, transport, joined)
}

/// Connects the independent webrtc-rs peer (`ringsfu-testpeer`: ICE, DTLS, SRTP) to the
/// WebRtcTransport `transport` (a `createWebRtcTransport` answer) of protoo peer `client`, which
/// sends its DTLS parameters with `connectWebRtcTransport` (asserting the answer is ok).
pub async fn connect_webrtc_peer(
    client: &Arc<tokio::sync::Mutex<Client>>,
    transport: &Value,
) -> ringsfu_testpeer::TestPeer {
    let client = client.clone();
    let transport_id = transport["id"].as_str().expect("transport id").to_owned();
    ringsfu_testpeer::connect_peer(
        &ringsfu_testpeer::RemoteTransport::from_data(transport),
        None,
        move |dtls| async move {
            let r = client
                .lock()
                .await
                .request(
                    "connectWebRtcTransport",
                    json!({"transportId": transport_id, "dtlsParameters": dtls}),
                )
                .await;
            ok(&r);
        },
        None,
    )
    .await
    .expect("webrtc-rs peer connects")
}
