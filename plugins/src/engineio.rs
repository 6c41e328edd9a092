//! socket.io over Engine.IO v4 (server side): what `socket.io-client` 4.x speaks, unmodified.
//!
//! Engine.IO carries packets (`0` open, `1` close, `2` ping, `3` pong, `4` message, `5`
//! upgrade, `6` noop) over HTTP long-polling (several packets per body, separated by `\x1e`)
//! and/or a WebSocket (one packet per text frame). The client's default is to start polling
//! (`GET /socket.io/?EIO=4&transport=polling` → open packet with the session id), then probe a
//! WebSocket (`2probe`/`3probe`), send `5` and move over; `transports: ['websocket']` opens a
//! WebSocket directly. The server pings every `ping_interval`; a client that does not pong
//! within `ping_timeout` is dropped.
//!
//! Inside `4` messages, socket.io packets: `0` CONNECT (answered `0{"sid":...}`), `1`
//! DISCONNECT, `2` EVENT (`2["name",arg...]`, optionally with an ack id, answered with an
//! empty ack), `3` ACK, `4` CONNECT_ERROR, `5`/`6` binary variants (not supported: dropped and
//! counted). Only the main namespace `/` exists; others get a CONNECT_ERROR.
//!
//! One task per Engine.IO session (the driver) owns its state; HTTP requests and the
//! WebSocket task talk to it through a channel. Signaling rate only: nothing here is on the
//! media path.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use crate::ctx::{sleep_until_opt, stopped, Ctx};
use crate::eio_sessions::Cmd;
use crate::request::{parse_query, text, upgrade_response};
use crate::session::{
    count_drop, random_id, SessionHandle, SessionInbound, SessionKind, SessionOpen,
    SessionOutbound, SessionRoutes,
};

/// Largest polling POST body (Engine.IO's `maxPayload` default).
pub(crate) const MAX_PAYLOAD: usize = 1_000_000;
/// Packet separator in polling payloads.
const SEPARATOR: char = '\x1e';

/// An Engine.IO error answer (`{"code": N, "message": "..."}`, status 400 or 403).
fn eio_error(status: StatusCode, code: u8, message: &str) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::from(
        json!({"code": code, "message": message}).to_string(),
    )));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

/// Serves one request under the socket.io path.
pub(crate) async fn handle(
    req: Request<Incoming>,
    remote_addr: SocketAddr,
    ctx: Arc<Ctx>,
    routes: SessionRoutes,
) -> Response<Full<Bytes>> {
    let query = parse_query(req.uri().query());
    let q = |k: &str| query.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    if req.method() == Method::OPTIONS {
        let mut resp = text(StatusCode::NO_CONTENT, "");
        resp.headers_mut().insert(
            header::ACCESS_CONTROL_ALLOW_METHODS,
            HeaderValue::from_static("GET, POST, OPTIONS"),
        );
        return resp;
    }
    if q("EIO").as_deref() != Some("4") {
        return eio_error(StatusCode::BAD_REQUEST, 5, "Unsupported protocol version");
    }
    let sid = q("sid");
    match (q("transport").as_deref(), sid) {
        (Some("polling"), None) if req.method() == Method::GET => {
            let (sid, _) = start(&ctx, &routes, remote_addr, query.clone(), None);
            let mut resp = text(StatusCode::OK, &open_packet(&sid, &routes, true));
            no_cache(&mut resp);
            resp
        }
        (Some("polling"), Some(sid)) => {
            let Some(cmd) = ctx.eio.get(&sid) else {
                return eio_error(StatusCode::BAD_REQUEST, 1, "Session ID unknown");
            };
            if req.method() == Method::GET {
                let (tx, rx) = oneshot::channel();
                if cmd.send(Cmd::Poll(tx)).is_err() {
                    return eio_error(StatusCode::BAD_REQUEST, 1, "Session ID unknown");
                }
                let wait = routes.ping_interval + routes.ping_timeout;
                let body = match tokio::time::timeout(wait, rx).await {
                    Ok(Ok(payload)) => payload,
                    Ok(Err(_)) => "1".to_owned(),
                    Err(_) => "6".to_owned(),
                };
                let mut resp = text(StatusCode::OK, &body);
                no_cache(&mut resp);
                resp
            } else if req.method() == Method::POST {
                let body = match Limited::new(req.into_body(), MAX_PAYLOAD).collect().await {
                    Ok(b) => b.to_bytes(),
                    Err(_) => {
                        count_drop("polling body too large or unreadable");
                        return eio_error(StatusCode::BAD_REQUEST, 3, "Bad request");
                    }
                };
                let Ok(body) = std::str::from_utf8(&body) else {
                    count_drop("polling body is not UTF-8");
                    return eio_error(StatusCode::BAD_REQUEST, 3, "Bad request");
                };
                let packets = body.split(SEPARATOR).map(str::to_owned).collect();
                if cmd.send(Cmd::Packets(packets)).is_err() {
                    return eio_error(StatusCode::BAD_REQUEST, 1, "Session ID unknown");
                }
                text(StatusCode::OK, "ok")
            } else {
                eio_error(StatusCode::BAD_REQUEST, 2, "Bad handshake method")
            }
        }
        (Some("websocket"), sid) => websocket(req, remote_addr, ctx, routes, query, sid).await,
        (Some("polling"), None) => eio_error(StatusCode::BAD_REQUEST, 2, "Bad handshake method"),
        _ => eio_error(StatusCode::BAD_REQUEST, 0, "Transport unknown"),
    }
}

fn no_cache(resp: &mut Response<Full<Bytes>>) {
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
}

/// The open packet (`0{...}`).
fn open_packet(sid: &str, routes: &SessionRoutes, polling: bool) -> String {
    let upgrades: Vec<&str> = if polling { vec!["websocket"] } else { vec![] };
    format!(
        "0{}",
        json!({
            "sid": sid,
            "upgrades": upgrades,
            "pingInterval": routes.ping_interval.as_millis() as u64,
            "pingTimeout": routes.ping_timeout.as_millis() as u64,
            "maxPayload": MAX_PAYLOAD,
        })
    )
}

/// Starts a session's driver; `ws` when the session starts on a WebSocket.
fn start(
    ctx: &Arc<Ctx>,
    routes: &SessionRoutes,
    remote_addr: SocketAddr,
    query: Vec<(String, String)>,
    ws: Option<mpsc::UnboundedSender<String>>,
) -> (String, mpsc::UnboundedSender<Cmd>) {
    let sid = random_id();
    let (tx, rx) = mpsc::unbounded_channel();
    ctx.eio.insert(sid.clone(), tx.clone());
    let mut driver = Driver {
        sid: sid.clone(),
        routes: routes.clone(),
        remote_addr,
        query,
        queue: Vec::new(),
        poll: None,
        probing: false,
        ws: None,
        socket: None,
        out_rx: None,
    };
    if let Some(ws) = ws {
        driver.queue.push(open_packet(&sid, routes, false));
        driver.ws = Some(ws);
    }
    let ctx = ctx.clone();
    tokio::spawn(async move {
        let reason = driver.run(rx, ctx.shutdown.clone()).await;
        ctx.eio.remove(&driver.sid);
        driver.end(reason);
    });
    (sid, tx)
}

/// One Engine.IO session.
struct Driver {
    sid: String,
    routes: SessionRoutes,
    remote_addr: SocketAddr,
    query: Vec<(String, String)>,
    /// Packets waiting for a transport.
    queue: Vec<String>,
    /// A polling GET waiting for packets.
    poll: Option<oneshot::Sender<String>>,
    /// A WebSocket probe passed: polls get noops until the upgrade.
    probing: bool,
    /// The WebSocket, once upgraded.
    ws: Option<mpsc::UnboundedSender<String>>,
    /// The connected socket.io socket's inbound channel (namespace `/`).
    socket: Option<mpsc::UnboundedSender<SessionInbound>>,
    /// What the handler sends to the socket.
    out_rx: Option<mpsc::UnboundedReceiver<SessionOutbound>>,
}

async fn recv_opt(
    rx: &mut Option<mpsc::UnboundedReceiver<SessionOutbound>>,
) -> Option<SessionOutbound> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

impl Driver {
    async fn run(
        &mut self,
        mut cmds: mpsc::UnboundedReceiver<Cmd>,
        mut shutdown: tokio::sync::watch::Receiver<bool>,
    ) -> String {
        let interval = self.routes.ping_interval;
        let mut ping = tokio::time::interval_at(Instant::now() + interval, interval);
        ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut pong_deadline: Option<Instant> = None;
        loop {
            self.flush();
            tokio::select! {
                cmd = cmds.recv() => match cmd {
                    None => return "session gone".into(),
                    Some(Cmd::Poll(tx)) => {
                        if self.ws.is_some() || self.probing {
                            let _ = tx.send("6".into());
                        } else if let Some(old) = self.poll.replace(tx) {
                            let _ = old.send("6".into());
                        }
                    }
                    Some(Cmd::Packets(packets)) => {
                        for p in packets {
                            if p == "3" {
                                pong_deadline = None;
                            }
                            if let Some(reason) = self.packet(&p).await {
                                return reason;
                            }
                        }
                    }
                    Some(Cmd::Probe) => {
                        self.probing = true;
                        if let Some(poll) = self.poll.take() {
                            let _ = poll.send("6".into());
                        }
                    }
                    Some(Cmd::Upgrade(ws)) => {
                        if let Some(poll) = self.poll.take() {
                            let _ = poll.send("6".into());
                        }
                        self.ws = Some(ws);
                    }
                    Some(Cmd::TransportClosed(reason)) => return reason,
                },
                out = recv_opt(&mut self.out_rx) => match out {
                    Some(SessionOutbound::Event { name, args }) => {
                        let mut arr = Vec::with_capacity(args.len() + 1);
                        arr.push(Value::String(name));
                        arr.extend(args);
                        self.queue.push(format!("42{}", Value::Array(arr)));
                    }
                    Some(SessionOutbound::Text(_)) => {}
                    Some(SessionOutbound::Close) => {
                        self.queue.push("41".into());
                        self.out_rx = None;
                        if let Some(s) = self.socket.take() {
                            let _ = s.send(SessionInbound::Closed { reason: "server namespace disconnect".into() });
                        }
                    }
                    None => self.out_rx = None,
                },
                _ = ping.tick() => {
                    self.queue.push("2".into());
                    pong_deadline.get_or_insert(Instant::now() + self.routes.ping_timeout);
                }
                _ = sleep_until_opt(pong_deadline) => return "ping timeout".into(),
                _ = stopped(&mut shutdown) => {
                    self.queue.push("41".into());
                    self.queue.push("1".into());
                    self.flush();
                    return "server shutting down".into();
                }
            }
        }
    }

    /// Hands queued packets to the transport if it can take them.
    fn flush(&mut self) {
        if self.queue.is_empty() {
            return;
        }
        if let Some(ws) = &self.ws {
            for p in self.queue.drain(..) {
                let _ = ws.send(p);
            }
            return;
        }
        if let Some(poll) = self.poll.take() {
            let payload = self.queue.join("\x1e");
            if poll.send(payload).is_ok() {
                self.queue.clear();
            }
        }
    }

    /// One Engine.IO packet from the client. Returns a reason when the session must end.
    async fn packet(&mut self, p: &str) -> Option<String> {
        match p.as_bytes().first() {
            Some(b'1') => return Some("transport close".into()),
            Some(b'2') => self.queue.push(format!("3{}", &p[1..])),
            Some(b'3') | Some(b'5') | Some(b'6') => {}
            Some(b'4') => self.socketio(&p[1..]).await,
            _ => count_drop("malformed Engine.IO packet"),
        }
        None
    }

    /// One socket.io packet.
    async fn socketio(&mut self, data: &str) {
        let SioPacket { ty, nsp, ack, rest } = match parse_socketio(data) {
            Ok(p) => p,
            Err(why) => {
                count_drop(why);
                return;
            }
        };
        match ty {
            b'0' => self.connect(nsp).await,
            b'1' => {
                if nsp == "/" {
                    self.out_rx = None;
                    if let Some(s) = self.socket.take() {
                        let _ = s.send(SessionInbound::Closed {
                            reason: "client namespace disconnect".into(),
                        });
                    }
                }
            }
            b'2' => {
                let Some(socket) = self.socket.as_ref().filter(|_| nsp == "/") else {
                    count_drop("event for a namespace that is not connected");
                    return;
                };
                let Ok(Value::Array(mut items)) = serde_json::from_str::<Value>(rest) else {
                    count_drop("socket.io event that is not a JSON array");
                    return;
                };
                if items.is_empty() || !items[0].is_string() {
                    count_drop("socket.io event without a name");
                    return;
                }
                let name = match items.remove(0) {
                    Value::String(s) => s,
                    _ => unreachable!("checked above"),
                };
                let _ = socket.send(SessionInbound::Event { name, args: items });
                if let Some(id) = ack {
                    self.queue.push(format!("43{id}[]"));
                }
            }
            b'3' => {}
            b'5' | b'6' => count_drop("binary socket.io packets are not supported"),
            _ => count_drop("unknown socket.io packet type"),
        }
    }

    async fn connect(&mut self, nsp: &str) {
        if nsp != "/" {
            self.queue.push(format!(
                "44{nsp},{}",
                json!({"message": "Invalid namespace"})
            ));
            return;
        }
        if self.socket.is_some() {
            return;
        }
        let id = random_id();
        let (handle, out_rx) = SessionHandle::new(&id);
        let open = SessionOpen {
            kind: SessionKind::SocketIo,
            id: id.clone(),
            remote_addr: self.remote_addr,
            query: self.query.clone(),
            handle,
        };
        match self.routes.handler.open(open).await {
            Ok(tx) => {
                self.socket = Some(tx);
                self.out_rx = Some(out_rx);
                self.queue.push(format!("40{}", json!({"sid": id})));
            }
            Err(rej) => {
                self.queue
                    .push(format!("44{}", json!({"message": rej.reason})));
            }
        }
    }

    /// The session is over: tell the handler and the transports.
    fn end(&mut self, reason: String) {
        log::debug!("socket.io session {} ended: {reason}", self.sid);
        if let Some(s) = self.socket.take() {
            let _ = s.send(SessionInbound::Closed { reason });
        }
        if let Some(poll) = self.poll.take() {
            let _ = poll.send("1".into());
        }
        self.ws = None;
    }
}

/// The parts of one socket.io packet (the text of an Engine.IO `4` message packet).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SioPacket<'a> {
    /// Packet type digit (`b'0'` CONNECT ... `b'6'`).
    pub(crate) ty: u8,
    /// Namespace (`/` unless the packet names one).
    pub(crate) nsp: &'a str,
    /// Acknowledgement id, if any.
    pub(crate) ack: Option<u64>,
    /// The payload (JSON for events).
    pub(crate) rest: &'a str,
}

/// Splits a socket.io packet: type digit, optional `/namespace,`, optional ack id, payload.
/// Err: why it is dropped. (A first character that is not an ASCII digit is refused here: the
/// old inline code sliced after its first byte and panicked on a multi-byte character.)
pub(crate) fn parse_socketio(data: &str) -> Result<SioPacket<'_>, &'static str> {
    let Some(&ty) = data.as_bytes().first() else {
        return Err("empty socket.io packet");
    };
    if !ty.is_ascii_digit() {
        return Err("unknown socket.io packet type");
    }
    let mut rest = &data[1..];
    let mut nsp = "/";
    if rest.starts_with('/') {
        let end = rest.find(',').unwrap_or(rest.len());
        nsp = &rest[..end];
        rest = &rest[(end + 1).min(rest.len())..];
    }
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    let ack: Option<u64> = rest[..digits].parse().ok();
    rest = &rest[digits..];
    Ok(SioPacket { ty, nsp, ack, rest })
}

/// Parses an Engine.IO polling payload as the session does (packets separated by `\x1e`; the
/// socket.io packet inside each `4` message; an event's JSON array): the number of events.
/// For the fuzz target.
pub(crate) fn parse_payload(body: &str) -> usize {
    let mut events = 0;
    for p in body.split(SEPARATOR) {
        let Some(sio) = p.strip_prefix('4') else {
            continue;
        };
        if let Ok(SioPacket { ty: b'2', rest, .. }) = parse_socketio(sio) {
            if let Ok(Value::Array(items)) = serde_json::from_str::<Value>(rest) {
                events += usize::from(items.first().is_some_and(Value::is_string));
            }
        }
    }
    events
}

/// A WebSocket under the socket.io path: a fresh session (no sid) or an upgrade.
async fn websocket(
    mut req: Request<Incoming>,
    remote_addr: SocketAddr,
    ctx: Arc<Ctx>,
    routes: SessionRoutes,
    query: Vec<(String, String)>,
    sid: Option<String>,
) -> Response<Full<Bytes>> {
    let resp = match upgrade_response(&req) {
        Ok(r) => r,
        Err(e) => return e,
    };
    let (out_tx, out_rx) = mpsc::unbounded_channel();
    let (cmd, upgrading_tx) = match sid {
        Some(sid) => match ctx.eio.get(&sid) {
            Some(cmd) => (cmd, Some(out_tx)),
            None => return eio_error(StatusCode::BAD_REQUEST, 1, "Session ID unknown"),
        },
        None => {
            let (_, cmd) = start(&ctx, &routes, remote_addr, query, Some(out_tx));
            (cmd, None)
        }
    };
    let on_upgrade = hyper::upgrade::on(&mut req);
    let config = ctx.ws_config();
    tokio::spawn(async move {
        let upgraded = match on_upgrade.await {
            Ok(u) => u,
            Err(e) => {
                if upgrading_tx.is_none() {
                    let _ = cmd.send(Cmd::TransportClosed(format!("upgrade failed: {e}")));
                }
                return;
            }
        };
        let ws =
            WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, Some(config))
                .await;
        run_ws(ws, cmd, upgrading_tx, out_rx).await;
    });
    resp
}

/// Drives a session's WebSocket. `upgrading`: the session is on polling and this socket must
/// first pass the probe (`2probe` → `3probe`, then `5`).
async fn run_ws<S>(
    ws: WebSocketStream<S>,
    cmd: mpsc::UnboundedSender<Cmd>,
    mut upgrading: Option<mpsc::UnboundedSender<String>>,
    mut out_rx: mpsc::UnboundedReceiver<String>,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let (mut sink, mut stream) = ws.split();
    let mut upgraded = upgrading.is_none();
    let reason = loop {
        tokio::select! {
            next = stream.next() => match next {
                None => break "transport close".to_owned(),
                Some(Err(e)) => break format!("transport error: {e}"),
                Some(Ok(Message::Text(t))) => {
                    let t = t.as_str();
                    if !upgraded {
                        if t == "2probe" {
                            if sink.send(Message::text("3probe")).await.is_err() {
                                break "transport error".into();
                            }
                            let _ = cmd.send(Cmd::Probe);
                        } else if t == "5" {
                            upgraded = true;
                            if let Some(tx) = upgrading.take() {
                                if cmd.send(Cmd::Upgrade(tx)).is_err() {
                                    break "session gone".into();
                                }
                            }
                        } else {
                            count_drop("packet on a WebSocket before the upgrade");
                        }
                    } else if cmd.send(Cmd::Packets(vec![t.to_owned()])).is_err() {
                        break "session gone".into();
                    }
                }
                Some(Ok(Message::Binary(_))) => count_drop("binary Engine.IO frame"),
                Some(Ok(_)) => {}
            },
            out = out_rx.recv() => match out {
                Some(p) => {
                    if sink.send(Message::text(p)).await.is_err() {
                        break "transport error".into();
                    }
                }
                None => {
                    let _ = tokio::time::timeout(Duration::from_secs(2), sink.send(Message::Close(None))).await;
                    break "session ended".into();
                }
            },
        }
    };
    if upgraded {
        let _ = cmd.send(Cmd::TransportClosed(reason));
    }
}

#[cfg(test)]
mod parse_tests {
    use super::*;

    #[test]
    fn socketio_packets_split_and_non_ascii_types_are_refused() {
        assert_eq!(
            parse_socketio("2/chat,12[\"hi\"]"),
            Ok(SioPacket {
                ty: b'2',
                nsp: "/chat",
                ack: Some(12),
                rest: "[\"hi\"]"
            })
        );
        assert_eq!(parse_socketio("0").map(|p| p.nsp), Ok("/"));
        // A multi-byte first character (a client sending `4é`) used to panic the session.
        assert_eq!(parse_socketio("é"), Err("unknown socket.io packet type"));
        assert_eq!(parse_socketio(""), Err("empty socket.io packet"));
        assert_eq!(parse_payload("42[\"a\",1]\x1e4é\x1e2\x1e42[\"b\"]"), 2);
    }
}
