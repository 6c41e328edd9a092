//! Worker: one OS thread, pinned to a core, running one event loop (a tokio current-thread runtime
//! with a LocalSet) that owns an [`Engine`] outright. Other threads reach it only through
//! [`Worker::run`] / [`Worker::post`] messages; nothing on the packet path is shared or locked.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::rc::Rc;
use std::time::{Duration, Instant, SystemTime};

use slab::Slab;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot};

use crate::dtls::DtlsCertificate;
use crate::engine::{Engine, EngineEvent, ListenInfo, PacketSource};
use crate::io::epoll::bind_udp;
use crate::io::{IoBackend, RecvBatch, Route, SocketId, TxQueue, UdpIo};
use crate::tuple::{Protocol, TransportTuple};

/// Flush queued sends once this many are pending, even mid-batch (bounds buffer memory).
const FLUSH_AT: usize = 512;
/// Datagrams per receive call on the shared port.
const RECV_BATCH: usize = 64;
/// Datagrams per receive call on a plain transport's own port.
const PLAIN_RECV_BATCH: usize = 16;
/// Largest RFC 4571 frame we accept on ICE-TCP.
const MAX_TCP_FRAME: usize = 2048;
/// Most bytes queued for one ICE-TCP connection; beyond, packets are dropped (a stalled reader
/// must not grow the worker's memory without bound).
const TCP_OUTBOX_LIMIT: usize = 4 << 20;

/// Frames waiting for one ICE-TCP connection (RFC 4571: 2-byte length, then the packet). The
/// worker's flush appends to `pending`; the connection's writer task swaps it out and writes it
/// whole, so a burst is one `write` and no packet allocates (the buffers keep their capacity).
/// Shared on the worker thread only (`Rc`), so no lock.
#[derive(Default)]
struct TcpOutbox {
    pending: RefCell<Vec<u8>>,
    wake: tokio::sync::Notify,
    closed: Cell<bool>,
    drops: Cell<u64>,
}

impl TcpOutbox {
    /// Queues one framed packet and wakes the writer; dropped (and counted) when over the limit.
    fn push(&self, packet: &[u8]) {
        let mut p = self.pending.borrow_mut();
        if self.closed.get() || p.len() + 2 + packet.len() > TCP_OUTBOX_LIMIT {
            self.drops.set(self.drops.get() + 1);
            return;
        }
        p.extend_from_slice(&(packet.len() as u16).to_be_bytes());
        p.extend_from_slice(packet);
        self.wake.notify_one();
    }

    /// Ends the writer task once it has written what is queued.
    fn close(&self) {
        self.closed.set(true);
        self.wake.notify_one();
    }
}

/// Writes what `outbox` queues to `wr` until the connection fails or the outbox is closed.
async fn tcp_writer(outbox: Rc<TcpOutbox>, mut wr: tokio::net::tcp::OwnedWriteHalf) {
    let mut out = Vec::new();
    loop {
        outbox.wake.notified().await;
        loop {
            std::mem::swap(&mut *outbox.pending.borrow_mut(), &mut out);
            if out.is_empty() {
                break;
            }
            if wr.write_all(&out).await.is_err() {
                outbox.closed.set(true);
                return;
            }
            out.clear();
            // Give back the memory of an exceptional burst.
            if out.capacity() > TCP_OUTBOX_LIMIT / 4 {
                out = Vec::new();
            }
        }
        if outbox.closed.get() {
            return;
        }
    }
}

/// Errors starting a worker or reaching it.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    /// A socket could not be opened.
    #[error("worker {index}: cannot bind {what} {addr}: {source}")]
    Bind {
        /// Worker index.
        index: usize,
        /// "UDP" or "TCP".
        what: &'static str,
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        source: io::Error,
    },
    /// The thread could not start.
    #[error("worker {0}: cannot start thread: {1}")]
    Thread(usize, io::Error),
    /// The worker has stopped.
    #[error("worker {0} is gone")]
    Gone(usize),
    /// No free port in the configured range.
    #[error("no free port in {0}-{1}")]
    NoPort(u16, u16),
}

/// How to start a worker.
#[derive(Clone)]
pub struct WorkerSettings {
    /// Worker index (0-based).
    pub index: usize,
    /// Core to pin the thread to (None = no pinning).
    pub pin_core: Option<usize>,
    /// IP to listen on.
    pub listen_ip: IpAddr,
    /// Address announced in ICE candidates and plain tuples instead of `listen_ip`.
    pub announced_address: Option<String>,
    /// Shared WebRTC UDP port (0 = any). Port-per-worker layout: the caller passes base + index.
    pub udp_port: Option<u16>,
    /// Shared WebRTC TCP port (0 = any).
    pub tcp_port: Option<u16>,
    /// Port range for PlainTransports.
    pub rtc_port_range: (u16, u16),
    /// I/O backend wanted.
    pub backend: IoBackend,
    /// The process's DTLS certificate.
    pub cert: DtlsCertificate,
}

type Task = Box<dyn FnOnce(&Rc<WorkerContext>) + Send>;

/// A Send handle to a worker thread.
pub struct Worker {
    index: usize,
    tasks: mpsc::UnboundedSender<Task>,
    listen: ListenInfo,
    backend: IoBackend,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Worker {
    /// Starts the worker thread, binds its shared ports and returns once it is running.
    pub fn spawn(settings: WorkerSettings) -> Result<Worker, WorkerError> {
        let index = settings.index;
        let (tasks_tx, tasks_rx) = mpsc::unbounded_channel::<Task>();
        let (ready_tx, ready_rx) =
            std::sync::mpsc::channel::<Result<(ListenInfo, IoBackend), WorkerError>>();
        let thread = std::thread::Builder::new()
            .name(format!("ringsfu-worker-{index}"))
            .spawn(move || worker_main(settings, tasks_rx, ready_tx))
            .map_err(|e| WorkerError::Thread(index, e))?;
        let (listen, backend) = ready_rx.recv().map_err(|_| WorkerError::Gone(index))??;
        Ok(Worker {
            index,
            tasks: tasks_tx,
            listen,
            backend,
            thread: Some(thread),
        })
    }

    /// Worker index.
    pub fn index(&self) -> usize {
        self.index
    }

    /// The shared listening endpoints.
    pub fn listen_info(&self) -> &ListenInfo {
        &self.listen
    }

    /// The I/O backend in use.
    pub fn backend(&self) -> IoBackend {
        self.backend
    }

    /// Runs `f` on the worker thread and returns its result.
    pub async fn run<R, F>(&self, f: F) -> Result<R, WorkerError>
    where
        R: Send + 'static,
        F: FnOnce(&Rc<WorkerContext>) -> R + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        self.post(move |ctx| {
            let _ = tx.send(f(ctx));
        })?;
        rx.await.map_err(|_| WorkerError::Gone(self.index))
    }

    /// Runs `f` with the engine on the worker thread (then flushes sends and dispatches events).
    pub async fn with_engine<R, F>(&self, f: F) -> Result<R, WorkerError>
    where
        R: Send + 'static,
        F: FnOnce(&mut Engine) -> R + Send + 'static,
    {
        self.run(move |ctx| ctx.with_engine(f)).await
    }

    /// Queues `f` to run on the worker thread without waiting.
    pub fn post<F>(&self, f: F) -> Result<(), WorkerError>
    where
        F: FnOnce(&Rc<WorkerContext>) + Send + 'static,
    {
        self.tasks
            .send(Box::new(f))
            .map_err(|_| WorkerError::Gone(self.index))
    }

    /// Subscribes to the worker's engine events from another thread.
    pub async fn events(&self) -> Result<mpsc::UnboundedReceiver<EngineEvent>, WorkerError> {
        let (tx, rx) = mpsc::unbounded_channel();
        self.run(move |ctx| {
            ctx.add_observer(Box::new(move |ev: &EngineEvent| {
                let _ = tx.send(ev.clone());
            }))
        })
        .await?;
        Ok(rx)
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.post(|ctx| ctx.stop());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// An engine event observer living on the worker thread.
pub type Observer = Box<dyn FnMut(&EngineEvent)>;

struct UdpEntry {
    socket: Rc<UdpIo>,
    task: Option<tokio::task::JoinHandle<()>>,
}

struct IoState {
    udp: Slab<UdpEntry>,
    /// The worker-wide io_uring send ring (io_uring backend only).
    uring_sender: Option<crate::io::uring::UringSender>,
    tcp_writers: HashMap<u32, Rc<TcpOutbox>>,
    order: Vec<u32>,
    socket_ids: Vec<SocketId>,
}

/// What a worker thread owns, reachable from tasks on that thread.
pub struct WorkerContext {
    /// Worker index.
    pub index: usize,
    engine: RefCell<Engine>,
    io: RefCell<IoState>,
    observers: RefCell<Vec<Observer>>,
    dispatching: Cell<bool>,
    listen_ip: IpAddr,
    backend: IoBackend,
    rtc_port_range: (u16, u16),
    next_port: Cell<u16>,
    next_tcp_conn: Cell<u32>,
    stop: RefCell<Option<oneshot::Sender<()>>>,
    /// Socket-level counters (plain integers: this thread only), read by [`Self::metrics`].
    io_totals: Cell<crate::metrics::IoTotals>,
    /// The latest time handed to the engine: its clock never runs backwards (see [`Self::now`]).
    engine_clock: Cell<Instant>,
}

impl WorkerContext {
    /// The worker's counters and gauges for `/metrics` (engine sums and socket counters).
    /// Runs on the worker thread at scrape time; the packet path only bumps plain integers.
    pub fn metrics(&self) -> crate::metrics::WorkerMetrics {
        let mut io = self.io_totals.get();
        io.send_drops = self
            .io
            .borrow()
            .udp
            .iter()
            .map(|(_, e)| e.socket.send_drops())
            .sum();
        crate::metrics::WorkerMetrics {
            engine: self.engine.borrow().metrics(),
            io,
        }
    }

    fn count_received(&self, datagrams: usize, bytes: usize) {
        let mut t = self.io_totals.get();
        t.datagrams_received += datagrams as u64;
        t.bytes_received += bytes as u64;
        self.io_totals.set(t);
    }

    /// The time to hand the engine for an event happening now.
    fn now(&self) -> Instant {
        let t = Instant::now().max(self.engine_clock.get());
        self.engine_clock.set(t);
        t
    }

    /// When a datagram read at `read_at` reached its socket, `age` (the kernel's receive
    /// timestamp) earlier: congestion feedback reports these times, and a batch read after a
    /// busy spell must not look like one burst. Never earlier than what the engine already saw,
    /// so its clock stays monotonic.
    fn arrival(&self, read_at: Instant, age: Duration) -> Instant {
        let t = read_at
            .checked_sub(age)
            .unwrap_or(read_at)
            .max(self.engine_clock.get());
        self.engine_clock.set(t);
        t
    }

    /// Runs `f` on the engine, then flushes the packets it queued and dispatches its events.
    pub fn with_engine<R>(&self, f: impl FnOnce(&mut Engine) -> R) -> R {
        let r = f(&mut self.engine.borrow_mut());
        self.after_step();
        r
    }

    /// Adds an engine event observer (called on this thread for every event).
    pub fn add_observer(&self, o: Observer) {
        self.observers.borrow_mut().push(o);
    }

    fn stop(&self) {
        if let Some(s) = self.stop.borrow_mut().take() {
            let _ = s.send(());
        }
    }

    fn after_step(&self) {
        {
            let mut e = self.engine.borrow_mut();
            self.flush(&mut e.tx);
            for s in e.take_released_sockets() {
                self.release_rtc_port(s);
            }
        }
        self.dispatch_events();
    }

    /// Closes a UDP socket of this worker (a port from [`WorkerContext::bind_rtc_port`]): stops
    /// its receive task and gives the port back. Closed transports' sockets come here; so do
    /// ports bound for a transport whose creation then failed. Unknown ids are ignored.
    pub fn release_rtc_port(&self, sid: SocketId) {
        let mut io = self.io.borrow_mut();
        if io.udp.contains(sid as usize) {
            let entry = io.udp.remove(sid as usize);
            if let Some(t) = entry.task {
                t.abort();
            }
        }
    }

    fn dispatch_events(&self) {
        // Observers may call back into the engine (Lua does): the outer call keeps draining.
        if self.dispatching.replace(true) {
            return;
        }
        loop {
            let Some(ev) = self.engine.borrow_mut().poll_event() else {
                break;
            };
            let mut observers = std::mem::take(&mut *self.observers.borrow_mut());
            for o in observers.iter_mut() {
                o(&ev);
            }
            let mut slot = self.observers.borrow_mut();
            observers.append(&mut slot);
            *slot = observers;
            drop(slot);
            self.flush(&mut self.engine.borrow_mut().tx);
        }
        self.dispatching.set(false);
    }

    /// Sends everything queued: UDP grouped per socket (one `sendmmsg` per 64 packets), TCP framed.
    fn flush(&self, tx: &mut TxQueue) {
        if tx.pending() == 0 {
            return;
        }
        let mut io = self.io.borrow_mut();
        let io = &mut *io;
        let entries = tx.queued();
        {
            let mut t = self.io_totals.get();
            t.datagrams_sent += entries.len() as u64;
            t.bytes_sent += entries.iter().map(|e| e.len as u64).sum::<u64>();
            self.io_totals.set(t);
        }
        io.order.clear();
        io.socket_ids.clear();
        for (i, e) in entries.iter().enumerate() {
            match e.route {
                Route::Udp { socket, .. } => {
                    io.order.push(i as u32);
                    if !io.socket_ids.contains(&socket) {
                        io.socket_ids.push(socket);
                    }
                }
                Route::Tcp { conn } => {
                    if let Some(w) = io.tcp_writers.get(&conn) {
                        w.push(&e.buf[..e.len]);
                    }
                }
            }
        }
        if let Some(sender) = &io.uring_sender {
            // One submission for every socket's datagrams (sendmmsg would need one call each).
            let (udp, order) = (&io.udp, &io.order);
            let socket_of = |k: usize| match order.get(k).map(|&i| entries[i as usize].route) {
                Some(Route::Udp { socket, .. }) => udp.get(socket as usize),
                _ => None,
            };
            sender.send(
                entries,
                order,
                |k| socket_of(k).and_then(|e| e.socket.uring_fd()).unwrap_or(-1),
                |k| {
                    if let Some(e) = socket_of(k) {
                        e.socket.note_send_drops(1);
                    }
                },
            );
            tx.clear();
            return;
        }
        if io.socket_ids.len() > 1 {
            io.order.sort_by_key(|i| match entries[*i as usize].route {
                Route::Udp { socket, .. } => socket,
                Route::Tcp { .. } => SocketId::MAX,
            });
        }
        let mut start = 0;
        while start < io.order.len() {
            let sid = match entries[io.order[start] as usize].route {
                Route::Udp { socket, .. } => socket,
                Route::Tcp { .. } => break,
            };
            let mut end = start;
            while end < io.order.len()
                && matches!(entries[io.order[end] as usize].route, Route::Udp { socket, .. } if socket == sid)
            {
                end += 1;
            }
            if let Some(entry) = io.udp.get_mut(sid as usize) {
                entry
                    .socket
                    .send_entries(entries, &io.order[start..end], None);
            }
            start = end;
        }
        tx.clear();
    }

    /// Feeds a received batch from UDP socket `sid` to the engine.
    fn handle_batch(&self, sid: SocketId, local: SocketAddr, batch: &mut RecvBatch) {
        let read_at = Instant::now();
        self.count_received(batch.count, batch.lens[..batch.count].iter().sum());
        let mut e = self.engine.borrow_mut();
        for i in 0..batch.count {
            let src = PacketSource {
                socket: sid,
                tcp_conn: None,
                tuple: TransportTuple {
                    local,
                    remote: batch.addrs[i],
                    protocol: Protocol::Udp,
                },
            };
            let len = batch.lens[i];
            let arrived = self.arrival(read_at, batch.ages[i]);
            e.handle_packet(src, &mut batch.bufs[i], len, arrived);
            if e.tx.pending() >= FLUSH_AT {
                self.flush(&mut e.tx);
            }
        }
        drop(e);
        self.after_step();
    }

    /// Binds a UDP socket in the RTC port range and starts receiving on it; returns its id and address.
    pub fn bind_rtc_port(self: &Rc<Self>) -> Result<(SocketId, SocketAddr), WorkerError> {
        let (lo, hi) = self.rtc_port_range;
        let span = (hi - lo) as u32 + 1;
        for _ in 0..span {
            let p = self.next_port.get();
            let next = if p >= hi || p < lo { lo } else { p + 1 };
            self.next_port.set(next);
            let addr = SocketAddr::new(self.listen_ip, p.clamp(lo, hi));
            if let Ok(sock) = bind_udp(addr, false) {
                let sid =
                    self.add_udp(sock, PLAIN_RECV_BATCH)
                        .map_err(|source| WorkerError::Bind {
                            index: self.index,
                            what: "UDP",
                            addr,
                            source,
                        })?;
                return Ok((sid, addr));
            }
        }
        Err(WorkerError::NoPort(lo, hi))
    }

    fn add_udp(self: &Rc<Self>, sock: std::net::UdpSocket, batch: usize) -> io::Result<SocketId> {
        let socket = Rc::new(UdpIo::new(sock, self.backend, batch)?);
        let local = socket.local_addr();
        let sid = self.io.borrow_mut().udp.insert(UdpEntry {
            socket: Rc::clone(&socket),
            task: None,
        }) as SocketId;
        let ctx = Rc::clone(self);
        // The task is aborted when the socket's transport closes.
        let task = tokio::task::spawn_local(async move {
            let mut rb = RecvBatch::new(batch);
            loop {
                if socket.readable().await.is_err() {
                    return;
                }
                loop {
                    match socket.recv_batch(&mut rb) {
                        Ok(0) => break,
                        Ok(_) => ctx.handle_batch(sid, local, &mut rb),
                        Err(e) => {
                            log::debug!("udp recv on {local}: {e}");
                            break;
                        }
                    }
                }
            }
        });
        self.io.borrow_mut().udp[sid as usize].task = Some(task);
        Ok(sid)
    }

    fn spawn_tcp_listener(
        self: &Rc<Self>,
        listener: tokio::net::TcpListener,
        listen_sid: SocketId,
    ) {
        let ctx = Rc::clone(self);
        tokio::task::spawn_local(async move {
            loop {
                let Ok((stream, remote)) = listener.accept().await else {
                    continue;
                };
                let _ = stream.set_nodelay(true);
                let local = stream.local_addr().unwrap_or(remote);
                let conn = ctx.next_tcp_conn.get();
                ctx.next_tcp_conn.set(conn.wrapping_add(1));
                let (rd, wr) = stream.into_split();
                // Buffered: a burst of frames is one read, not two per frame.
                let mut rd = tokio::io::BufReader::with_capacity(64 * 1024, rd);
                let outbox = Rc::new(TcpOutbox::default());
                ctx.io
                    .borrow_mut()
                    .tcp_writers
                    .insert(conn, Rc::clone(&outbox));
                tokio::task::spawn_local(tcp_writer(outbox, wr));
                let ctx2 = Rc::clone(&ctx);
                tokio::task::spawn_local(async move {
                    let mut buf: Box<[u8]> =
                        vec![0u8; crate::io::PACKET_BUF_SIZE].into_boxed_slice();
                    let tuple = TransportTuple {
                        local,
                        remote,
                        protocol: Protocol::Tcp,
                    };
                    loop {
                        let mut lenb = [0u8; 2];
                        if rd.read_exact(&mut lenb).await.is_err() {
                            break;
                        }
                        let len = u16::from_be_bytes(lenb) as usize;
                        if len == 0 || len > MAX_TCP_FRAME {
                            // A wrong length desynchronises the stream for good: drop the connection.
                            break;
                        }
                        if rd.read_exact(&mut buf[..len]).await.is_err() {
                            break;
                        }
                        let src = PacketSource {
                            socket: listen_sid,
                            tcp_conn: Some(conn),
                            tuple,
                        };
                        ctx2.count_received(1, len);
                        ctx2.engine
                            .borrow_mut()
                            .handle_packet(src, &mut buf, len, ctx2.now());
                        if buf.len() < crate::io::PACKET_BUF_SIZE {
                            buf = vec![0u8; crate::io::PACKET_BUF_SIZE].into_boxed_slice();
                        }
                        ctx2.after_step();
                    }
                    let outbox = ctx2.io.borrow_mut().tcp_writers.remove(&conn);
                    if let Some(outbox) = outbox {
                        if outbox.drops.get() > 0 {
                            log::warn!(
                                "ICE-TCP {remote}: {} packets dropped, the peer read too slowly",
                                outbox.drops.get()
                            );
                        }
                        outbox.close();
                    }
                    let now = ctx2.now();
                    ctx2.with_engine(|e| e.tcp_connection_closed(conn, now));
                });
            }
        });
    }
}

fn worker_main(
    settings: WorkerSettings,
    tasks: mpsc::UnboundedReceiver<Task>,
    ready: std::sync::mpsc::Sender<Result<(ListenInfo, IoBackend), WorkerError>>,
) {
    pin_thread(&settings);
    let rt = match worker_runtime(settings.index) {
        Ok(rt) => rt,
        Err(e) => {
            let _ = ready.send(Err(e));
            return;
        }
    };
    let local = tokio::task::LocalSet::new();
    local.block_on(&rt, async move {
        let (ctx, listen) = match start_worker(&settings) {
            Ok(started) => started,
            Err(e) => {
                let _ = ready.send(Err(e));
                return;
            }
        };
        let (stop_tx, stop_rx) = oneshot::channel();
        *ctx.stop.borrow_mut() = Some(stop_tx);
        let _ = ready.send(Ok((listen, ctx.backend)));
        serve_tasks(&ctx, tasks, stop_rx).await;
    });
}

/// Pins the worker thread to its core, when configured (a failure is logged).
fn pin_thread(settings: &WorkerSettings) {
    if let Some(core) = settings.pin_core {
        if let Err(e) = crate::io::pin_current_thread(core) {
            log::warn!("worker {}: cannot pin to core {core}: {e}", settings.index);
        }
    }
}

/// The worker's single-threaded runtime.
fn worker_runtime(index: usize) -> Result<tokio::runtime::Runtime, WorkerError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        // Named so a test can prove no blocking-pool thread is ever started on a worker runtime.
        .thread_name(format!("ringsfu-w{index}-blocking"))
        .build()
        .map_err(|e| WorkerError::Thread(index, e))
}

/// The io_uring sender when the io_uring backend is configured and usable here; None: epoll.
fn uring_sender(backend: IoBackend, index: usize) -> Option<crate::io::uring::UringSender> {
    if backend == IoBackend::Epoll {
        return None;
    }
    match crate::io::uring::UringSender::new() {
        Ok(s) => Some(s),
        Err(e) => {
            if index == 0 {
                log::warn!(
                    "io_uring is unavailable here ({e}; seccomp profile or \
                     kernel.io_uring_disabled): using the epoll backend"
                );
            }
            None
        }
    }
}

/// The worker's shared UDP socket and TCP listener, each when configured.
type SharedPorts = (Option<std::net::UdpSocket>, Option<tokio::net::TcpListener>);

/// Binds the worker's shared ports first, so a failure is reported before anything runs.
fn bind_shared_ports(settings: &WorkerSettings) -> Result<SharedPorts, WorkerError> {
    let index = settings.index;
    let udp = match settings.udp_port {
        Some(port) => {
            let addr = SocketAddr::new(settings.listen_ip, port);
            let sock = bind_udp(addr, false).map_err(|source| WorkerError::Bind {
                index,
                what: "UDP",
                addr,
                source,
            })?;
            Some(sock)
        }
        None => None,
    };
    let tcp = match settings.tcp_port {
        Some(port) => {
            let addr = SocketAddr::new(settings.listen_ip, port);
            let listener = std::net::TcpListener::bind(addr)
                .and_then(|l| {
                    l.set_nonblocking(true)?;
                    tokio::net::TcpListener::from_std(l)
                })
                .map_err(|source| WorkerError::Bind {
                    index,
                    what: "TCP",
                    addr,
                    source,
                })?;
            Some(listener)
        }
        None => None,
    };
    Ok((udp, tcp))
}

/// Binds the worker's ports, creates its context (engine and I/O state), starts receiving on
/// the ports and starts the timer task. Returns the context and what it
/// listens on.
fn start_worker(settings: &WorkerSettings) -> Result<(Rc<WorkerContext>, ListenInfo), WorkerError> {
    let index = settings.index;
    let uring_sender = uring_sender(settings.backend, index);
    let backend = if uring_sender.is_some() {
        IoBackend::IoUring
    } else {
        IoBackend::Epoll
    };
    let (udp, tcp) = bind_shared_ports(settings)?;
    let udp_addr = udp.as_ref().and_then(|s| s.local_addr().ok());
    let tcp_addr = tcp.as_ref().and_then(|l| l.local_addr().ok());
    // The engine clock starts here: the engine and `WorkerContext::now` share this first reading.
    let start = Instant::now();
    let ctx = Rc::new(WorkerContext {
        index,
        engine: RefCell::new(Engine::new(
            index,
            ListenInfo {
                udp: None,
                tcp: tcp_addr,
                announced_address: settings.announced_address.clone(),
            },
            settings.cert.clone(),
            start,
            SystemTime::now(),
            os_seed(),
        )),
        io: RefCell::new(IoState {
            udp: Slab::new(),
            uring_sender,
            tcp_writers: HashMap::new(),
            order: Vec::new(),
            socket_ids: Vec::new(),
        }),
        observers: RefCell::new(Vec::new()),
        dispatching: Cell::new(false),
        listen_ip: settings.listen_ip,
        backend,
        rtc_port_range: settings.rtc_port_range,
        next_port: Cell::new(settings.rtc_port_range.0),
        next_tcp_conn: Cell::new(1),
        stop: RefCell::new(None),
        io_totals: Cell::new(crate::metrics::IoTotals::default()),
        engine_clock: Cell::new(start),
    });
    let mut listen = ListenInfo {
        udp: None,
        tcp: tcp_addr,
        announced_address: settings.announced_address.clone(),
    };
    if let (Some(sock), Some(addr)) = (udp, udp_addr) {
        let sid = ctx
            .add_udp(sock, RECV_BATCH)
            .map_err(|source| WorkerError::Bind {
                index,
                what: "UDP",
                addr,
                source,
            })?;
        listen.udp = Some((sid, addr));
    }
    if let Some(l) = tcp {
        // TCP frames carry the shared UDP socket id only as a label; routing uses the conn id.
        ctx.spawn_tcp_listener(l, SocketId::MAX);
    }
    ctx.engine.borrow_mut().set_listen_info(listen.clone());
    spawn_timers(&ctx);
    Ok((ctx, listen))
}

/// The engine's timers: sleeps until its next deadline (at most 100 ms), then runs them.
fn spawn_timers(ctx: &Rc<WorkerContext>) {
    let c = Rc::clone(ctx);
    tokio::task::spawn_local(async move {
        loop {
            let now = Instant::now();
            let next = c
                .engine
                .borrow()
                .poll_timeout()
                .unwrap_or(now + Duration::from_millis(100));
            let next = next
                .min(now + Duration::from_millis(100))
                .max(now + Duration::from_millis(1));
            tokio::time::sleep_until(next.into()).await;
            let now = c.now();
            c.with_engine(|e| e.handle_timeout(now, SystemTime::now()));
        }
    });
}

/// A seed for an engine's RNG from the OS (the engine itself never reads OS randomness).
fn os_seed() -> crate::engine::RngSeed {
    use rand::RngCore;
    let mut seed = crate::engine::RngSeed::default();
    rand::rngs::OsRng.fill_bytes(&mut seed);
    seed
}

/// Runs the tasks posted to the worker until it is stopped or every sender is gone.
async fn serve_tasks(
    ctx: &Rc<WorkerContext>,
    mut tasks: mpsc::UnboundedReceiver<Task>,
    stop: oneshot::Receiver<()>,
) {
    let serve = async {
        while let Some(task) = tasks.recv().await {
            task(ctx);
        }
    };
    tokio::select! {
        _ = serve => {}
        _ = stop => {}
    }
}

/// A boxed future that stays on the worker thread.
pub type LocalBoxFuture<T> = Pin<Box<dyn Future<Output = T>>>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tcp_outbox_frames_packets_and_bounds_its_memory() {
        let ob = TcpOutbox::default();
        ob.push(&[1, 2, 3]);
        ob.push(&[9]);
        assert_eq!(&*ob.pending.borrow(), &[0, 3, 1, 2, 3, 0, 1, 9]);
        // A reader that stopped reading: the queue stops at the limit and counts the rest.
        let big = vec![0u8; 1400];
        for _ in 0..(TCP_OUTBOX_LIMIT / 1402 + 10) {
            ob.push(&big);
        }
        assert!(ob.pending.borrow().len() <= TCP_OUTBOX_LIMIT);
        assert!(ob.drops.get() >= 9);
        // Closed: nothing more is queued.
        let before = ob.pending.borrow().len();
        ob.close();
        ob.push(&[1]);
        assert_eq!(ob.pending.borrow().len(), before);
    }

    #[test]
    fn tcp_writer_writes_queued_frames_in_order_then_ends_on_close() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let local = tokio::task::LocalSet::new();
        local.block_on(&rt, async {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let client = tokio::net::TcpStream::connect(addr);
            let (accepted, client) = tokio::join!(listener.accept(), client);
            let (_rd, wr) = accepted.unwrap().0.into_split();
            let mut client = client.unwrap();
            let ob = Rc::new(TcpOutbox::default());
            let writer = tokio::task::spawn_local(tcp_writer(Rc::clone(&ob), wr));
            let mut want = Vec::new();
            for i in 0..100u8 {
                let pkt = vec![i; 1 + i as usize];
                ob.push(&pkt);
                want.extend_from_slice(&(pkt.len() as u16).to_be_bytes());
                want.extend_from_slice(&pkt);
                if i % 10 == 0 {
                    tokio::task::yield_now().await;
                }
            }
            ob.close();
            tokio::time::timeout(Duration::from_secs(20), writer)
                .await
                .expect("writer ends after close")
                .unwrap();
            let mut got = vec![0u8; want.len()];
            tokio::time::timeout(Duration::from_secs(20), client.read_exact(&mut got))
                .await
                .expect("frames arrive")
                .unwrap();
            assert_eq!(got, want);
        });
    }
}
