//! The I/O layer: moves datagrams between sockets and the engine, in batches. It knows nothing of
//! protocols. Two backends fill the same [`RecvBatch`] and drain the same [`TxQueue`]:
//! [`epoll`] (tokio's epoll reactor + `recvmmsg`/`sendmmsg`) and [`uring`] (io_uring). [`turn`]
//! is the TURN server's driver (its sockets and tasks around the sans-IO `crate::turn`).
//! The I/O drivers and the worker loop are the only places that read the clocks (`Instant`,
//! `SystemTime`) or the OS's randomness; they pass them into the sans-IO code.

pub mod epoll;
pub mod rx_time;
pub mod turn;
pub mod uring;

use std::net::SocketAddr;
use std::time::Duration;

/// Size of every packet buffer: a full Ethernet MTU datagram plus room for SRTP tags and RTX headers.
pub const PACKET_BUF_SIZE: usize = 2048;

/// Which local socket of the worker a packet came in on or leaves from.
pub type SocketId = u16;

/// Where a queued packet goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// A datagram from one of the worker's UDP sockets to `dest`.
    Udp {
        /// Index of the worker's UDP socket.
        socket: SocketId,
        /// Destination address.
        dest: SocketAddr,
    },
    /// A framed packet on one of the worker's TCP connections (RFC 4571).
    Tcp {
        /// The connection id.
        conn: u32,
    },
}

/// I/O backend choice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IoBackend {
    /// epoll readiness + recvmmsg/sendmmsg: portable, works where io_uring is blocked.
    Epoll,
    /// io_uring multishot receive with a provided-buffer ring, batched sends.
    IoUring,
}

impl IoBackend {
    /// Parses `"epoll"` or `"io_uring"`/`"uring"`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "epoll" => Some(IoBackend::Epoll),
            "io_uring" | "uring" | "iouring" => Some(IoBackend::IoUring),
            _ => None,
        }
    }

    /// Name as the config spells it.
    pub fn name(self) -> &'static str {
        match self {
            IoBackend::Epoll => "epoll",
            IoBackend::IoUring => "io_uring",
        }
    }
}

fn new_buf() -> Box<[u8]> {
    vec![0u8; PACKET_BUF_SIZE].into_boxed_slice()
}

/// A batch of received datagrams in buffers the worker owns. A buffer may be swapped out (handed to a
/// retransmission store) and replaced by another of the same size: nothing is copied on receive.
pub struct RecvBatch {
    /// Packet buffers, `PACKET_BUF_SIZE` bytes each.
    pub bufs: Vec<Box<[u8]>>,
    /// Length of the datagram in each buffer (valid for the first `count`).
    pub lens: Vec<usize>,
    /// Source address of each datagram (valid for the first `count`).
    pub addrs: Vec<SocketAddr>,
    /// How long before the read each datagram reached the socket, from the kernel's receive
    /// timestamp ([`rx_time`]); zero where the socket gave none.
    pub ages: Vec<Duration>,
    /// How many datagrams the last receive filled.
    pub count: usize,
}

impl RecvBatch {
    /// A batch of `n` buffers.
    pub fn new(n: usize) -> Self {
        Self {
            bufs: (0..n).map(|_| new_buf()).collect(),
            lens: vec![0; n],
            addrs: vec![SocketAddr::from(([0, 0, 0, 0], 0)); n],
            ages: vec![Duration::ZERO; n],
            count: 0,
        }
    }
}

/// One queued outgoing packet.
pub struct TxEntry {
    /// The packet buffer (`PACKET_BUF_SIZE` bytes); `len` of it are to be sent.
    pub buf: Box<[u8]>,
    /// Bytes to send.
    pub len: usize,
    /// Where to.
    pub route: Route,
}

/// Outgoing packets of the current batch. Buffers are kept between batches, so in steady state
/// queueing a packet allocates nothing.
#[derive(Default)]
pub struct TxQueue {
    entries: Vec<TxEntry>,
    pending: usize,
}

impl TxQueue {
    /// An empty queue.
    pub fn new() -> Self {
        Self::default()
    }

    /// The next free buffer to write a packet into (`PACKET_BUF_SIZE` bytes); call [`Self::commit`]
    /// to queue it, or don't to discard it.
    pub fn next_buffer(&mut self) -> &mut [u8] {
        if self.pending == self.entries.len() {
            self.entries.push(TxEntry {
                buf: new_buf(),
                len: 0,
                route: Route::Tcp { conn: 0 },
            });
        }
        &mut self.entries[self.pending].buf
    }

    /// Queues the buffer last returned by [`Self::next_buffer`] with `len` bytes for `route`.
    pub fn commit(&mut self, len: usize, route: Route) {
        if self.pending < self.entries.len() {
            let e = &mut self.entries[self.pending];
            e.len = len;
            e.route = route;
            self.pending += 1;
        }
    }

    /// Copies `data` into a buffer and queues it (for control packets: STUN, DTLS).
    pub fn push(&mut self, data: &[u8], route: Route) {
        let n = data.len().min(PACKET_BUF_SIZE);
        self.next_buffer()[..n].copy_from_slice(&data[..n]);
        self.commit(n, route);
    }

    /// Number of queued packets.
    pub fn pending(&self) -> usize {
        self.pending
    }

    /// The queued packets, in order.
    pub fn queued(&self) -> &[TxEntry] {
        &self.entries[..self.pending]
    }

    /// Forgets the queued packets (after they were sent), keeping the buffers.
    pub fn clear(&mut self) {
        self.pending = 0;
    }
}

/// Pins the calling thread to CPU `core` (best effort: errors are returned for logging).
pub fn pin_current_thread(core: usize) -> std::io::Result<()> {
    // SAFETY: cpu_set_t is a plain bit set for which all-zero is valid; CPU_SET writes inside it
    // (core is checked against its capacity), and sched_setaffinity reads exactly that many bytes.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if core >= 8 * std::mem::size_of::<libc::cpu_set_t>() {
            return Err(std::io::Error::other("core index out of range"));
        }
        libc::CPU_SET(core, &mut set);
        if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

/// A worker UDP socket on either backend. The engine never sees which.
pub enum UdpIo {
    /// epoll readiness + recvmmsg/sendmmsg.
    Epoll(epoll::EpollUdp),
    /// io_uring multishot receive + batched SendMsg.
    Uring(Box<uring::UringUdp>),
}

impl UdpIo {
    /// Wraps a bound non-blocking socket for `backend`; must be called inside the worker's runtime.
    /// `recv_batch` is how many datagrams one drain takes: io_uring keeps 8 × that many receive
    /// buffers in its ring (epoll needs none: the socket's own buffer holds the backlog).
    pub fn new(
        socket: std::net::UdpSocket,
        backend: IoBackend,
        recv_batch: usize,
    ) -> std::io::Result<Self> {
        Ok(match backend {
            IoBackend::Epoll => UdpIo::Epoll(epoll::EpollUdp::new(socket)?),
            IoBackend::IoUring => {
                let ring = (recv_batch.saturating_mul(8)).min(uring::MAX_RING_BUFFERS as usize);
                UdpIo::Uring(Box::new(uring::UringUdp::new(socket, ring as u16)?))
            }
        })
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        match self {
            UdpIo::Epoll(s) => s.local_addr(),
            UdpIo::Uring(s) => s.local_addr(),
        }
    }

    /// Waits until datagrams may be waiting.
    pub async fn readable(&self) -> std::io::Result<()> {
        match self {
            UdpIo::Epoll(s) => s.readable().await,
            UdpIo::Uring(s) => s.readable().await,
        }
    }

    /// Receives a batch without blocking; returns how many datagrams (0 when none).
    pub fn recv_batch(&self, batch: &mut RecvBatch) -> std::io::Result<usize> {
        match self {
            UdpIo::Epoll(s) => s.recv_batch(batch),
            UdpIo::Uring(s) => s.recv_batch(batch),
        }
    }

    /// Sends the queued entries listed in `order` (all routed to this socket): an epoll socket
    /// with `sendmmsg`, an io_uring socket through `sender`, its worker's shared send ring
    /// (without one, its entries are counted as dropped). A worker whose sockets all use
    /// io_uring sends a whole flush through the ring at once instead (see `WorkerContext::flush`).
    pub fn send_entries(
        &self,
        entries: &[TxEntry],
        order: &[u32],
        sender: Option<&uring::UringSender>,
    ) {
        match (self, sender) {
            (UdpIo::Epoll(s), _) => s.send_entries(entries, order),
            (UdpIo::Uring(s), Some(tx)) => {
                let fd = s.fd();
                tx.send(entries, order, |_| fd, |_| s.note_send_drops(1));
            }
            (UdpIo::Uring(s), None) => s.note_send_drops(order.len() as u64),
        }
    }

    /// The fd of an io_uring socket (None for epoll).
    pub fn uring_fd(&self) -> Option<std::os::fd::RawFd> {
        match self {
            UdpIo::Epoll(_) => None,
            UdpIo::Uring(s) => Some(s.fd()),
        }
    }

    /// Counts datagrams a caller could not send from this socket.
    pub fn note_send_drops(&self, n: u64) {
        match self {
            UdpIo::Epoll(s) => s.note_send_drops(n),
            UdpIo::Uring(s) => s.note_send_drops(n),
        }
    }

    /// Datagrams dropped on send (socket buffer full).
    pub fn send_drops(&self) -> u64 {
        match self {
            UdpIo::Epoll(s) => s.send_drops(),
            UdpIo::Uring(s) => s.send_drops(),
        }
    }
}

/// Per-batch `sendmsg` arguments both backends need: destination addresses, iovecs over the
/// queued buffers and the `msghdr`s pointing at them. Kept between batches so a flush allocates
/// nothing in steady state.
#[derive(Default)]
pub(crate) struct SendScratch {
    addrs: Vec<socket2::SockAddr>,
    iovs: Vec<libc::iovec>,
    /// One header per UDP entry of the last `fill`.
    pub(crate) hdrs: Vec<libc::msghdr>,
}

impl SendScratch {
    /// Rebuilds the headers for the UDP entries `chunk` of `entries`; returns how many. The
    /// headers stay valid until the next `fill` (or until `entries` is modified).
    pub(crate) fn fill(&mut self, entries: &[TxEntry], chunk: &[u32]) -> usize {
        self.addrs.clear();
        self.iovs.clear();
        self.hdrs.clear();
        for &i in chunk {
            let e = &entries[i as usize];
            if let Route::Udp { dest, .. } = e.route {
                self.addrs.push(socket2::SockAddr::from(dest));
                self.iovs.push(libc::iovec {
                    iov_base: e.buf.as_ptr() as *mut libc::c_void,
                    iov_len: e.len,
                });
            }
        }
        // Headers are built only after both vectors stopped growing, so their pointers stay put.
        for i in 0..self.iovs.len() {
            // SAFETY: a zeroed msghdr is a valid value; only plain fields are set below.
            let mut h: libc::msghdr = unsafe { std::mem::zeroed() };
            h.msg_name = self.addrs[i].as_ptr() as *mut libc::c_void;
            h.msg_namelen = self.addrs[i].len();
            h.msg_iov = &mut self.iovs[i];
            h.msg_iovlen = 1;
            self.hdrs.push(h);
        }
        self.hdrs.len()
    }
}
