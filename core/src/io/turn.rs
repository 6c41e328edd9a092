//! The TURN server's I/O: a UDP socket (and optionally a TCP listener) for clients and one UDP
//! socket per allocation, all driven by tasks on the calling thread's tokio `LocalSet` (a
//! worker thread): no thread per allocation. The protocol decisions are [`TurnServer`]'s.
//! Sends use `try_send_to` (a full socket buffer drops the packet and counts it), so no borrow
//! of the server state is held across an await. TCP clients get RFC 6062-less TURN over TCP
//! (RFC 8656 §3.1: STUN and ChannelData framed on the stream); their outbound frames are
//! queued per connection.

use std::cell::RefCell;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::io::epoll::bind_udp;

use crate::turn::{
    Action, Client, Clock, RelayPorts, Transport, TurnConfig, TurnServer, TurnStats,
};

/// Where the TURN server listens and relays.
#[derive(Debug, Clone)]
pub struct TurnListen {
    /// UDP listening address (3478 by default).
    pub udp: SocketAddr,
    /// TCP listening address (same port), if enabled.
    pub tcp: Option<SocketAddr>,
    /// IP relay sockets bind (and announce in XOR-RELAYED-ADDRESS).
    pub relay_ip: IpAddr,
    /// Relay port range, inclusive.
    pub relay_ports: (u16, u16),
}

/// Largest datagram handled.
const BUF: usize = 65_536;

fn clock() -> Clock {
    Clock {
        now: Instant::now(),
        unix: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
    }
}

struct Relay {
    socket: Rc<UdpSocket>,
    task: JoinHandle<()>,
}

struct Binder {
    ip: IpAddr,
    range: (u16, u16),
    next: u16,
    bound: Vec<(SocketAddr, std::net::UdpSocket)>,
    released: Vec<SocketAddr>,
}

impl RelayPorts for Binder {
    fn bind(&mut self) -> Option<SocketAddr> {
        let span = u32::from(self.range.1 - self.range.0) + 1;
        for _ in 0..span {
            let port = self.next;
            self.next = if self.next >= self.range.1 {
                self.range.0
            } else {
                self.next + 1
            };
            // Large buffers as on the media ports: a worker busy with media must not overflow
            // a relay socket at a few thousand packets per second.
            if let Ok(s) = bind_udp(SocketAddr::new(self.ip, port), false) {
                let addr = s.local_addr().ok()?;
                self.bound.push((addr, s));
                return Some(addr);
            }
        }
        None
    }
    fn release(&mut self, relay: SocketAddr) {
        self.released.push(relay);
    }
}

struct Inner {
    server: TurnServer,
    binder: Binder,
    relays: HashMap<SocketAddr, Relay>,
    tcp_conns: HashMap<SocketAddr, mpsc::UnboundedSender<Vec<u8>>>,
    udp: Rc<UdpSocket>,
    out: Vec<u8>,
    send_drops: u64,
}

type Shared = Rc<RefCell<Inner>>;

/// A running TURN server's counters (updated every second from the worker).
#[derive(Debug, Clone, Default)]
pub struct TurnHandle {
    /// The latest counters, plus live allocations.
    pub stats: Arc<Mutex<(TurnStats, usize)>>,
    /// The bound UDP address.
    pub udp: Option<SocketAddr>,
}

/// Binds the sockets and starts the tasks on the current `LocalSet`. Returns once bound.
pub async fn serve(
    config: TurnConfig,
    listen: TurnListen,
    nonce_key: [u8; 16],
) -> std::io::Result<TurnHandle> {
    let udp = Rc::new(UdpSocket::from_std(bind_udp(listen.udp, false)?)?);
    let tcp = match listen.tcp {
        Some(a) => Some(TcpListener::bind(a).await?),
        None => None,
    };
    let handle = TurnHandle {
        stats: Arc::new(Mutex::new((TurnStats::default(), 0))),
        udp: udp.local_addr().ok(),
    };
    let (lo, hi) = listen.relay_ports;
    let inner = Rc::new(RefCell::new(Inner {
        server: TurnServer::new(config, nonce_key),
        binder: Binder {
            ip: listen.relay_ip,
            range: (lo.min(hi), hi.max(lo)),
            next: lo.min(hi),
            bound: Vec::new(),
            released: Vec::new(),
        },
        relays: HashMap::new(),
        tcp_conns: HashMap::new(),
        udp: udp.clone(),
        out: vec![0u8; BUF + 64],
        send_drops: 0,
    }));
    tokio::task::spawn_local(udp_loop(inner.clone(), udp));
    if let Some(l) = tcp {
        tokio::task::spawn_local(tcp_accept(inner.clone(), l));
    }
    let stats = handle.stats.clone();
    tokio::task::spawn_local(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tick.tick().await;
            let mut st = inner.borrow_mut();
            let Inner { server, binder, .. } = &mut *st;
            server.expire(Instant::now(), binder);
            sync_relays(&inner, &mut st);
            if let Ok(mut s) = stats.lock() {
                *s = (st.server.stats(), st.server.allocation_count());
            }
        }
    });
    Ok(handle)
}

/// Starts tasks for newly bound relay sockets and stops released ones.
fn sync_relays(shared: &Shared, st: &mut Inner) {
    for addr in std::mem::take(&mut st.binder.released) {
        if let Some(r) = st.relays.remove(&addr) {
            r.task.abort();
        }
    }
    for (addr, sock) in std::mem::take(&mut st.binder.bound) {
        let Ok(sock) = UdpSocket::from_std(sock) else {
            continue;
        };
        let sock = Rc::new(sock);
        let task = tokio::task::spawn_local(relay_loop(shared.clone(), addr, sock.clone()));
        st.relays.insert(addr, Relay { socket: sock, task });
    }
}

/// Carries out an action for input `data`.
fn act(st: &mut Inner, action: Action, data: &[u8]) {
    match action {
        Action::None => {}
        Action::Reply { to, len } => {
            let bytes = &st.out[..len];
            match to.transport {
                Transport::Udp => {
                    if st.udp.try_send_to(bytes, to.addr).is_err() {
                        st.send_drops += 1;
                    }
                }
                Transport::Tcp => {
                    if let Some(tx) = st.tcp_conns.get(&to.addr) {
                        let _ = tx.send(bytes.to_vec());
                    }
                }
            }
        }
        Action::Relay { relay, peer, range } => {
            if let Some(r) = st.relays.get(&relay) {
                if r.socket.try_send_to(&data[range], peer).is_err() {
                    st.send_drops += 1;
                }
            }
        }
    }
}

fn from_client(shared: &Shared, from: Client, data: &[u8]) {
    let mut guard = shared.borrow_mut();
    let st = &mut *guard;
    let action = {
        let Inner {
            server,
            binder,
            out,
            ..
        } = st;
        server.handle_client(clock(), from, data, binder, out)
    };
    act(st, action, data);
    if !st.binder.bound.is_empty() || !st.binder.released.is_empty() {
        sync_relays(shared, st);
    }
}

async fn udp_loop(shared: Shared, udp: Rc<UdpSocket>) {
    let mut buf = vec![0u8; BUF];
    loop {
        let (n, from) = match udp.recv_from(&mut buf).await {
            Ok(r) => r,
            Err(e) => {
                log::debug!("TURN UDP receive error: {e}");
                continue;
            }
        };
        from_client(
            &shared,
            Client {
                transport: Transport::Udp,
                addr: from,
            },
            &buf[..n],
        );
    }
}

async fn relay_loop(shared: Shared, relay: SocketAddr, sock: Rc<UdpSocket>) {
    let mut buf = vec![0u8; BUF];
    loop {
        let (n, peer) = match sock.recv_from(&mut buf).await {
            Ok(r) => r,
            Err(_) => continue,
        };
        let mut guard = shared.borrow_mut();
        let st = &mut *guard;
        let action = {
            let Inner { server, out, .. } = st;
            server.handle_peer(clock(), relay, peer, &buf[..n], out)
        };
        act(st, action, &buf[..n]);
    }
}

async fn tcp_accept(shared: Shared, listener: TcpListener) {
    loop {
        let Ok((stream, addr)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let _ = stream.set_nodelay(true);
        let (tx, mut rx) = mpsc::unbounded_channel::<Vec<u8>>();
        shared.borrow_mut().tcp_conns.insert(addr, tx);
        let (mut rd, mut wr) = stream.into_split();
        let writer = tokio::task::spawn_local(async move {
            while let Some(frame) = rx.recv().await {
                if wr.write_all(&frame).await.is_err() {
                    break;
                }
            }
        });
        let shared = shared.clone();
        tokio::task::spawn_local(async move {
            let client = Client {
                transport: Transport::Tcp,
                addr,
            };
            let mut buf = vec![0u8; BUF + 4];
            let mut have = 0usize;
            'conn: loop {
                match rd.read(&mut buf[have..]).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => have += n,
                }
                // Frames: STUN (20-byte header + length) or ChannelData (4 + length, padded to 4).
                loop {
                    if have < 4 {
                        break;
                    }
                    let len = usize::from(u16::from_be_bytes([buf[2], buf[3]]));
                    let frame = match buf[0] {
                        0..=3 => HEADER + len,
                        0x40..=0x7f => 4 + len.div_ceil(4) * 4,
                        _ => {
                            shared.borrow_mut().server.count_malformed();
                            break 'conn;
                        }
                    };
                    if frame > buf.len() {
                        shared.borrow_mut().server.count_malformed();
                        break 'conn;
                    }
                    if have < frame {
                        break;
                    }
                    let used = if buf[0] <= 3 { frame } else { 4 + len };
                    from_client(&shared, client, &buf[..used]);
                    buf.copy_within(frame..have, 0);
                    have -= frame;
                }
            }
            let mut st = shared.borrow_mut();
            st.tcp_conns.remove(&addr);
            let Inner { server, binder, .. } = &mut *st;
            server.client_gone(&client, binder);
            sync_relays(&shared, &mut st);
            writer.abort();
        });
    }
}

const HEADER: usize = crate::stun::HEADER_LEN;
