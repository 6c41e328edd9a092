//! The protoo WebSocket side: upgrade checks, then one task per connected peer that reads
//! frames, keeps the peer alive with pings, and hands messages to the handler.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http::{header, HeaderValue, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{CloseCode, Data, OpCode};
use tokio_tungstenite::tungstenite::protocol::frame::{CloseFrame, Frame};
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::WebSocketStream;

use crate::ctx::{sleep_until_opt, Ctx};
use crate::message::{self, ProtooMessage};
use crate::peer::{Outbound, PeerHandle};
use crate::protoo::{ConnectRequest, PeerInbound};
use crate::request::{header_has_token, offers_subprotocol, parse_query, text};

/// The only subprotocol accepted.
const SUBPROTOCOL: &str = "protoo";
/// Close code for a frame or message over the size limit (RFC 6455 "message too big").
const CLOSE_CODE_TOO_BIG: u16 = 1009;
/// Close code sent when the server shuts down (RFC 6455 "going away"; clients reconnect).
const CLOSE_CODE_GOING_AWAY: u16 = 1001;
/// How long a closing connection waits for the peer's close frame before dropping TCP.
const CLOSE_GRACE: Duration = Duration::from_secs(2);

/// Runs the protocol checks, asks the handler, and answers 101 (spawning the peer task) or
/// an error status.
pub(crate) async fn handle_upgrade(
    mut req: Request<Incoming>,
    remote_addr: SocketAddr,
    ctx: Arc<Ctx>,
) -> Response<Full<Bytes>> {
    let headers = req.headers();
    if req.method() != http::Method::GET
        || !header_has_token(headers, header::CONNECTION, "upgrade")
    {
        return text(StatusCode::BAD_REQUEST, "invalid WebSocket upgrade request");
    }
    if headers
        .get(header::SEC_WEBSOCKET_VERSION)
        .is_none_or(|v| v.as_bytes() != b"13")
    {
        let mut resp = text(
            StatusCode::UPGRADE_REQUIRED,
            "unsupported WebSocket version",
        );
        resp.headers_mut().insert(
            header::SEC_WEBSOCKET_VERSION,
            HeaderValue::from_static("13"),
        );
        return resp;
    }
    let Some(key) = headers.get(header::SEC_WEBSOCKET_KEY) else {
        return text(StatusCode::BAD_REQUEST, "missing Sec-WebSocket-Key");
    };
    let accept_key = derive_accept_key(key.as_bytes());
    // protoo-server checks the subprotocol before the demo looks at the query: 403 first.
    if !offers_subprotocol(headers, SUBPROTOCOL) {
        return text(
            StatusCode::FORBIDDEN,
            "invalid/missing Sec-WebSocket-Protocol",
        );
    }
    // A web page of another origin may open a session only when its origin is configured:
    // otherwise any page a visitor opens could join rooms in the visitor's name.
    if let crate::origin::OriginVerdict::Refused(origin) =
        crate::origin::check(headers, ctx.config.tls.is_some(), &ctx.config.ws_origins)
    {
        log::info!("WebSocket from {remote_addr}: origin {origin:?} refused");
        return text(
            StatusCode::FORBIDDEN,
            &format!("origin {origin:?} is not allowed (config security.wsOrigins)"),
        );
    }
    let Some(conn_guard) = ctx.ips.connect(
        remote_addr.ip(),
        ctx.config.max_connections_per_ip,
        ctx.config.requests_per_second_per_ip,
    ) else {
        let max = ctx.config.max_connections_per_ip;
        crate::limits::note(
            "connectionsPerIp",
            &format!("{} already has {max} connections", remote_addr.ip()),
        );
        return text(
            StatusCode::TOO_MANY_REQUESTS,
            &format!("limit connectionsPerIp ({max}) reached for this address"),
        );
    };
    let query = parse_query(req.uri().query());
    let param = |name: &str| {
        query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .filter(|v| !v.is_empty())
    };
    let (Some(room_id), Some(peer_id)) = (param("roomId"), param("peerId")) else {
        return text(
            StatusCode::BAD_REQUEST,
            "Connection request without roomId and/or peerId",
        );
    };
    for (what, id) in [("roomId", &room_id), ("peerId", &peer_id)] {
        if let Err(e) = crate::limits::check_id(what, id) {
            return text(StatusCode::BAD_REQUEST, &e);
        }
    }

    let (out_tx, out_rx) = mpsc::unbounded_channel();
    let peer = PeerHandle::new(
        room_id.clone(),
        peer_id.clone(),
        out_tx,
        ctx.config.request_timeout,
        ctx.runtime.clone(),
    );
    let on_upgrade = hyper::upgrade::on(&mut req);
    let verdict = ctx
        .protoo
        .connect(ConnectRequest {
            room_id,
            peer_id,
            remote_addr,
            query,
            peer: peer.clone(),
        })
        .await;
    let inbound = match verdict {
        Ok(inbound) => inbound,
        Err(reject) => {
            peer.mark_closed();
            let status = StatusCode::from_u16(reject.status)
                .ok()
                .filter(|s| s.is_client_error() || s.is_server_error())
                .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            return text(status, &reject.reason);
        }
    };

    let settings = PeerSettings {
        ping_interval: ctx.config.ping_interval,
        pong_timeout: ctx.config.pong_timeout,
        max_frame: ctx.config.max_ws_frame_bytes.max(1),
    };
    let rates = Rates {
        per_connection: ctx.config.requests_per_second,
        per_ip: ctx.config.requests_per_second_per_ip,
        ips: ctx.ips.clone(),
        ip: remote_addr.ip(),
        bucket: crate::limits::Bucket::new(
            ctx.config.requests_per_second,
            std::time::Instant::now(),
        ),
        _conn: conn_guard,
    };
    let ws_config = WebSocketConfig::default()
        .max_frame_size(Some(settings.max_frame))
        .max_message_size(Some(settings.max_frame));
    let shutdown = ctx.shutdown.clone();
    tokio::spawn(async move {
        match on_upgrade.await {
            Ok(upgraded) => {
                let ws = WebSocketStream::from_raw_socket(
                    TokioIo::new(upgraded),
                    Role::Server,
                    Some(ws_config),
                )
                .await;
                run_peer(ws, peer, out_rx, inbound, settings, shutdown, rates).await;
            }
            Err(e) => {
                peer.mark_closed();
                let _ = inbound.send(PeerInbound::Closed {
                    reason: format!("WebSocket upgrade failed: {e}"),
                });
            }
        }
    });

    let mut resp = Response::new(Full::new(Bytes::new()));
    *resp.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = resp.headers_mut();
    h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    if let Ok(v) = HeaderValue::from_str(&accept_key) {
        h.insert(header::SEC_WEBSOCKET_ACCEPT, v);
    }
    h.insert(
        header::SEC_WEBSOCKET_PROTOCOL,
        HeaderValue::from_static(SUBPROTOCOL),
    );
    resp
}

/// Request rate limits of one connection; holds its count against its IP until dropped.
struct Rates {
    per_connection: u32,
    per_ip: u32,
    ips: Arc<crate::limits::IpTable>,
    ip: std::net::IpAddr,
    bucket: crate::limits::Bucket,
    _conn: crate::limits::ConnGuard,
}

impl Rates {
    /// Whether one more request or notification may go through; `Err(limit name, value)`.
    fn admit(&mut self) -> Result<(), (&'static str, u32)> {
        if !self
            .bucket
            .take(self.per_connection, std::time::Instant::now())
        {
            return Err(("requestsPerSecond", self.per_connection));
        }
        if !self.ips.take_request(self.ip, self.per_ip) {
            return Err(("requestsPerSecondPerIp", self.per_ip));
        }
        Ok(())
    }
}

/// Per-connection timing and size settings.
#[derive(Debug, Clone, Copy)]
struct PeerSettings {
    ping_interval: Duration,
    pong_timeout: Duration,
    max_frame: usize,
}

/// Drives one accepted peer until its connection ends, then delivers `Closed`.
async fn run_peer<S>(
    ws: WebSocketStream<S>,
    peer: PeerHandle,
    out_rx: mpsc::UnboundedReceiver<Outbound>,
    inbound: mpsc::UnboundedSender<PeerInbound>,
    settings: PeerSettings,
    mut shutdown: watch::Receiver<bool>,
    mut rates: Rates,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (sink, mut stream) = ws.split();
    let mut writer = tokio::spawn(write_loop(sink, out_rx, settings.max_frame));
    let mut ping = tokio::time::interval_at(
        Instant::now() + settings.ping_interval,
        settings.ping_interval,
    );
    // After a stall, ping once rather than in a burst.
    ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut pong_deadline: Option<Instant> = None;
    let mut close_deadline: Option<Instant> = None;
    let mut watching_shutdown = true;
    let mut reason: Option<String> = None;

    let reason = loop {
        tokio::select! {
            next = stream.next() => {
                let msg = match next {
                    None => break reason.unwrap_or_else(|| "connection closed".into()),
                    Some(Ok(msg)) => msg,
                    Some(Err(WsError::Capacity(e))) => {
                        log::warn!("peer {}: {e}; closing", peer.peer_id());
                        peer.close_with(CLOSE_CODE_TOO_BIG, "message too big");
                        // The stream cannot resync after an oversized frame: let the writer
                        // flush the close frame, then drop the connection.
                        let _ = tokio::time::timeout(CLOSE_GRACE, &mut writer).await;
                        break format!("message too big: {e}");
                    }
                    Some(Err(e)) => break reason.unwrap_or_else(|| format!("WebSocket error: {e}")),
                };
                // protoo keepalive: any traffic proves the peer alive.
                pong_deadline = None;
                match msg {
                    Message::Text(text) => {
                        if !peer.is_closed() && !dispatch(&peer, &inbound, text.as_str(), &mut rates) {
                            log::info!("peer {}: handler dropped its inbound channel", peer.peer_id());
                            peer.close();
                        }
                    }
                    Message::Binary(b) => {
                        log::debug!("peer {}: ignoring binary frame of {} bytes", peer.peer_id(), b.len());
                    }
                    Message::Close(frame) => {
                        // tungstenite answers the close itself; the stream ends next.
                        reason.get_or_insert_with(|| match frame {
                            Some(f) => format!("closed by peer (code {}, reason {:?})", u16::from(f.code), f.reason.as_str()),
                            None => "closed by peer".into(),
                        });
                    }
                    Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => {}
                }
            }
            _ = ping.tick(), if close_deadline.is_none() => {
                peer.send_ping();
                pong_deadline.get_or_insert(Instant::now() + settings.pong_timeout);
            }
            _ = sleep_until_opt(pong_deadline) => {
                peer.mark_closed();
                break "keepalive timeout".into();
            }
            _ = peer.closed_signal(), if close_deadline.is_none() => {
                close_deadline = Some(Instant::now() + CLOSE_GRACE);
                reason.get_or_insert_with(|| "closed by server".into());
            }
            _ = sleep_until_opt(close_deadline) => {
                break reason.unwrap_or_else(|| "closed by server".into());
            }
            changed = shutdown.changed(), if watching_shutdown => {
                if changed.is_err() || *shutdown.borrow() {
                    watching_shutdown = false;
                    peer.close_with(CLOSE_CODE_GOING_AWAY, "server shutting down");
                }
            }
        }
    };

    peer.mark_closed();
    writer.abort();
    log::debug!(
        "peer {} of room {} closed: {reason}",
        peer.peer_id(),
        peer.room_id()
    );
    let _ = inbound.send(PeerInbound::Closed { reason });
}

/// Handles one text frame. Returns false if the handler's inbound channel is gone.
fn dispatch(
    peer: &PeerHandle,
    inbound: &mpsc::UnboundedSender<PeerInbound>,
    text: &str,
    rates: &mut Rates,
) -> bool {
    let parsed = message::parse(text);
    if matches!(
        parsed,
        Ok(ProtooMessage::Request { .. } | ProtooMessage::Notification { .. })
    ) {
        if let Err((limit, value)) = rates.admit() {
            crate::limits::note(
                limit,
                &format!(
                    "peer {} of room {} ({})",
                    peer.peer_id(),
                    peer.room_id(),
                    rates.ip
                ),
            );
            if let Ok(ProtooMessage::Request { id, .. }) = parsed {
                peer.respond_error(id, 429, &format!("limit {limit} ({value}/s) exceeded"));
            }
            return true;
        }
    }
    match parsed {
        Ok(ProtooMessage::Request { id, method, data }) => inbound
            .send(PeerInbound::Request { id, method, data })
            .is_ok(),
        Ok(ProtooMessage::Notification { method, data }) => inbound
            .send(PeerInbound::Notification { method, data })
            .is_ok(),
        Ok(ProtooMessage::Response { id, result }) => {
            if !peer.complete(id, result) {
                log::warn!(
                    "peer {}: response for unknown request id {id}; dropped",
                    peer.peer_id()
                );
            }
            true
        }
        Err(e) => {
            // protoo rule: invalid messages are dropped silently (never answered).
            log::warn!(
                "peer {}: invalid protoo message dropped: {e}",
                peer.peer_id()
            );
            true
        }
    }
}

/// Sends queued messages in order; stops after a close frame or a write error.
async fn write_loop<S>(
    mut sink: futures_util::stream::SplitSink<WebSocketStream<S>, Message>,
    mut out_rx: mpsc::UnboundedReceiver<Outbound>,
    max_frame: usize,
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
    while let Some(out) = out_rx.recv().await {
        let result = match out {
            Outbound::Text(text) if text.len() > max_frame => {
                send_fragmented(&mut sink, Bytes::from(text), max_frame).await
            }
            Outbound::Text(text) => sink.send(Message::text(text)).await,
            Outbound::Ping => sink.send(Message::Ping(Bytes::new())).await,
            Outbound::Close { code, reason } => {
                let frame = CloseFrame {
                    code: CloseCode::from(code),
                    reason: reason.into(),
                };
                let _ = sink.send(Message::Close(Some(frame))).await;
                return;
            }
        };
        if let Err(e) = result {
            log::debug!("WebSocket write failed: {e}");
            return;
        }
    }
}

/// Splits a long text message into frames of at most `max_frame` bytes, as the demo's
/// websocket-node does, so that peers with the same frame limit accept it. Fragment borders
/// may split a UTF-8 sequence; RFC 6455 only requires the reassembled message to be UTF-8.
async fn send_fragmented<S>(
    sink: &mut futures_util::stream::SplitSink<WebSocketStream<S>, Message>,
    payload: Bytes,
    max_frame: usize,
) -> Result<(), WsError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let total = payload.len();
    let mut offset = 0;
    while offset < total {
        let end = total.min(offset + max_frame);
        let opcode = if offset == 0 {
            OpCode::Data(Data::Text)
        } else {
            OpCode::Data(Data::Continue)
        };
        let frame = Frame::message(payload.slice(offset..end), opcode, end == total);
        sink.feed(Message::Frame(frame)).await?;
        offset = end;
    }
    sink.flush().await
}
