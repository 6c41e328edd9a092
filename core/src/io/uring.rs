//! The io_uring backend: a multishot `RecvMsg` with a provided-buffer ring keeps receives armed
//! without a system call per datagram; the ring's file descriptor is registered with tokio's reactor
//! so the worker's event loop wakes when completions arrive. Sends go as a batch of `SendMsg`
//! entries on a second ring, submitted with one `io_uring_enter` per batch (MSG_DONTWAIT, so a full
//! socket buffer drops instead of blocking the worker).
//!
//! Received payloads are copied from the kernel-filled ring buffer into the worker's batch buffer
//! (≤ 1.5 KB memcpy), because the engine keeps packets in owned buffers for retransmission.

use std::alloc::{alloc_zeroed, dealloc, Layout};
use std::cell::{Cell, RefCell};
use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicU16, Ordering};

use io_uring::types::{BufRingEntry, RecvMsgOut};
use io_uring::{cqueue, opcode, types, IoUring};
use tokio::io::unix::AsyncFd;

use super::{rx_time, RecvBatch, TxEntry, PACKET_BUF_SIZE};

/// Most provided buffers a receive ring may have (a power of two).
pub const MAX_RING_BUFFERS: u16 = 4096;
/// Buffer group id of the receive ring.
const BGID: u16 = 7;
/// Room for the recvmsg header, the peer address, the receive timestamp and a full datagram.
const RING_BUF_SIZE: usize = 16 + 128 + rx_time::CONTROL_LEN + PACKET_BUF_SIZE;
/// user_data of the multishot receive.
const RECV_TAG: u64 = 1;
/// Most sends per submission.
const SEND_BATCH: usize = 256;

/// Whether io_uring can be set up here (it is blocked by Docker's default seccomp profile and by
/// `kernel.io_uring_disabled`).
pub fn available() -> bool {
    IoUring::new(8).is_ok()
}

/// The ring fd, for tokio's reactor (io_uring fds are pollable: readable when CQEs are waiting).
struct RingFd(RawFd);

impl AsRawFd for RingFd {
    fn as_raw_fd(&self) -> RawFd {
        self.0
    }
}

/// Page-aligned raw memory the kernel reads (ring entries) or writes (packet buffers); never
/// reached through Rust references while the kernel may use it.
struct RawMemory {
    ptr: *mut u8,
    layout: Layout,
}

impl RawMemory {
    fn new(size: usize) -> io::Result<Self> {
        let layout = Layout::from_size_align(size, 4096).map_err(io::Error::other)?;
        // SAFETY: the layout has a non-zero size; zeroed memory is a valid value for both uses.
        let ptr = unsafe { alloc_zeroed(layout) };
        if ptr.is_null() {
            return Err(io::Error::other("io_uring buffer allocation failed"));
        }
        Ok(Self { ptr, layout })
    }
}

impl Drop for RawMemory {
    fn drop(&mut self) {
        // SAFETY: allocated in RawMemory::new with this exact layout and freed only here.
        unsafe { dealloc(self.ptr, self.layout) }
    }
}

/// A UDP socket driven by io_uring.
// Field order is drop order: the reactor registration, then the rings (cancelling the multishot
// receive), then the memory the kernel used, then the socket.
pub struct UringUdp {
    ring_fd: AsyncFd<RingFd>,
    recv_ring: RefCell<IoUring>,
    entries: RawMemory,
    buffers: RawMemory,
    socket: UdpSocket,
    local: SocketAddr,
    /// Local tail of the buffer ring (entries handed to the kernel so far).
    tail: Cell<u16>,
    /// msghdr template for the multishot receive (kernel reads namelen/controllen from it).
    msghdr: Box<libc::msghdr>,
    /// Provided buffers in the receive ring (a power of two).
    ring_buffers: u16,
    armed: Cell<bool>,
    send_drops: Cell<u64>,
}

impl UringUdp {
    /// Sets up the rings for a bound non-blocking socket; must be called inside the worker's runtime.
    /// `ring_buffers` (rounded up to a power of two, 8..=[`MAX_RING_BUFFERS`]) is how many
    /// datagrams the kernel may hold for us between two drains: each costs ~2.2 KB that stay
    /// resident, so a busy shared port wants hundreds and a PlainTransport's own port a few dozen.
    pub fn new(socket: UdpSocket, ring_buffers: u16) -> io::Result<Self> {
        let ring_buffers = ring_buffers.clamp(8, MAX_RING_BUFFERS).next_power_of_two();
        let local = socket.local_addr()?;
        let recv_ring = IoUring::builder()
            .setup_cqsize(u32::from(ring_buffers) * 2)
            .build(64)?;
        let entries = RawMemory::new(ring_buffers as usize * std::mem::size_of::<BufRingEntry>())?;
        let buffers = RawMemory::new(ring_buffers as usize * RING_BUF_SIZE)?;
        // SAFETY: the entry array is page aligned, `ring_buffers` entries long, and lives in
        // `entries` until after the rings are dropped (field order drops rings first).
        unsafe {
            recv_ring.submitter().register_buf_ring_with_flags(
                entries.ptr as u64,
                ring_buffers,
                BGID,
                0,
            )?;
        }
        // SAFETY: a zeroed msghdr is valid; only the lengths are set for the multishot template.
        let mut msghdr: Box<libc::msghdr> = Box::new(unsafe { std::mem::zeroed() });
        msghdr.msg_namelen = std::mem::size_of::<libc::sockaddr_storage>() as u32;
        msghdr.msg_controllen = rx_time::CONTROL_LEN;
        if let Err(e) = rx_time::enable(socket.as_raw_fd()) {
            log::debug!("no kernel receive timestamps on {local}: {e}");
        }
        // SAFETY: the ring (owner of the fd) is dropped after this registration (field order).
        let ring_fd = unsafe {
            AsyncFd::register_with_interest(
                RingFd(recv_ring.as_raw_fd()),
                tokio::io::Interest::READABLE,
            )?
        };
        let this = Self {
            socket,
            local,
            recv_ring: RefCell::new(recv_ring),
            ring_fd,
            entries,
            buffers,
            tail: Cell::new(0),
            ring_buffers,
            msghdr,
            armed: Cell::new(false),
            send_drops: Cell::new(0),
        };
        for bid in 0..ring_buffers {
            this.provide(bid);
        }
        this.arm()?;
        Ok(this)
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Datagrams dropped because the socket buffer was full.
    pub fn send_drops(&self) -> u64 {
        self.send_drops.get()
    }

    /// Hands buffer `bid` (back) to the kernel.
    fn provide(&self, bid: u16) {
        let mask = self.ring_buffers - 1;
        let tail = self.tail.get();
        // SAFETY: bid < self.ring_buffers, so the address is inside the buffer allocation.
        let addr = unsafe { self.buffers.ptr.add(bid as usize * RING_BUF_SIZE) } as u64;
        let ring = self.entries.ptr.cast::<BufRingEntry>();
        // SAFETY: (tail & mask) < ring_buffers, inside the entry array; the kernel only reads
        // entries between its head and our published tail, and this one is past the tail.
        unsafe {
            let e = &mut *ring.add((tail & mask) as usize);
            e.set_addr(addr);
            e.set_len(RING_BUF_SIZE as u32);
            e.set_bid(bid);
        }
        self.tail.set(tail.wrapping_add(1));
        // SAFETY: the tail field lives in the first entry of the ring (BufRingEntry::tail); the
        // kernel reads it concurrently, hence the atomic release store.
        unsafe {
            let tail_ptr = BufRingEntry::tail(ring) as *const AtomicU16;
            (*tail_ptr).store(self.tail.get(), Ordering::Release);
        }
    }

    /// (Re)arms the multishot receive.
    fn arm(&self) -> io::Result<()> {
        let entry = opcode::RecvMsgMulti::new(
            types::Fd(self.socket.as_raw_fd()),
            &*self.msghdr as *const libc::msghdr,
            BGID,
        )
        .build()
        .user_data(RECV_TAG);
        let mut ring = self.recv_ring.borrow_mut();
        // SAFETY: the SQE points at self.msghdr and the socket, both alive as long as self; the
        // buffers it selects come from the registered ring.
        unsafe {
            ring.submission()
                .push(&entry)
                .map_err(|_| io::Error::other("submission queue full"))?;
        }
        ring.submit()?;
        self.armed.set(true);
        Ok(())
    }

    /// Waits until completions are waiting.
    pub async fn readable(&self) -> io::Result<()> {
        let mut guard = self.ring_fd.readable().await?;
        guard.clear_ready();
        Ok(())
    }

    /// Moves up to `batch.bufs.len()` received datagrams into the batch; returns how many.
    pub fn recv_batch(&self, batch: &mut RecvBatch) -> io::Result<usize> {
        let mut got = 0;
        let mut rearm = !self.armed.get();
        let wall_now = rx_time::wall_now();
        {
            let mut ring = self.recv_ring.borrow_mut();
            let mut cq = ring.completion();
            cq.sync();
            while got < batch.bufs.len() {
                let Some(cqe) = cq.next() else { break };
                let more = cqueue::more(cqe.flags());
                if !more {
                    rearm = true;
                }
                let res = cqe.result();
                let Some(bid) = cqueue::buffer_select(cqe.flags()) else {
                    // No buffer: an error (ENOBUFS when the ring ran dry) that ended the multishot.
                    if res < 0 && res != -libc::ENOBUFS {
                        log::debug!("io_uring recv on {}: error {}", self.local, -res);
                    }
                    continue;
                };
                if res > 0 && (res as usize) <= RING_BUF_SIZE && bid < self.ring_buffers {
                    // SAFETY: the kernel completed writing `res` bytes into buffer `bid` and will
                    // not touch it again until provide() hands it back below.
                    let data = unsafe {
                        std::slice::from_raw_parts(
                            self.buffers.ptr.add(bid as usize * RING_BUF_SIZE),
                            res as usize,
                        )
                    };
                    if let Ok(out) = RecvMsgOut::parse(data, &self.msghdr) {
                        let payload = out.payload_data();
                        if !out.is_payload_truncated() && payload.len() <= batch.bufs[got].len() {
                            batch.bufs[got][..payload.len()].copy_from_slice(payload);
                            batch.lens[got] = payload.len();
                            batch.addrs[got] = addr_from_name(out.name_data())
                                .unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0)));
                            batch.ages[got] =
                                rx_time::age(rx_time::parse(out.control_data()), wall_now);
                            got += 1;
                        }
                    }
                }
                drop(cq);
                self.provide(bid);
                cq = ring.completion();
            }
        }
        if rearm {
            self.armed.set(false);
            self.arm()?;
        }
        batch.count = got;
        Ok(got)
    }

    /// The socket's fd, for the worker's [`UringSender`].
    pub fn fd(&self) -> RawFd {
        self.socket.as_raw_fd()
    }

    /// Counts datagrams the worker's [`UringSender`] could not send from this socket.
    pub fn note_send_drops(&self, n: u64) {
        self.send_drops.set(self.send_drops.get() + n);
    }
}

/// One send ring for all of a worker's io_uring sockets. A fan-out to many PlainTransports
/// (each on its own port) then costs one `io_uring_enter` per flush, where `sendmmsg` needs one
/// call per socket: the one thing io_uring can batch that epoll cannot.
pub struct UringSender {
    ring: RefCell<IoUring>,
    scratch: RefCell<super::SendScratch>,
}

impl UringSender {
    /// Sets up the ring (`SEND_BATCH` submissions in flight at most).
    pub fn new() -> io::Result<Self> {
        Ok(Self {
            ring: RefCell::new(IoUring::builder().build(SEND_BATCH as u32)?),
            scratch: RefCell::new(super::SendScratch::default()),
        })
    }

    /// Sends the UDP entries `order` of `entries`, entry `order[k]` from socket `fd_of(k)`, in
    /// submissions of `SEND_BATCH`, and waits for them (MSG_DONTWAIT: a full socket buffer fails
    /// at once instead of parking the request). `on_drop(k)` is called for each one not sent.
    pub fn send(
        &self,
        entries: &[TxEntry],
        order: &[u32],
        fd_of: impl Fn(usize) -> RawFd,
        mut on_drop: impl FnMut(usize),
    ) {
        let mut scratch = self.scratch.borrow_mut();
        let mut ring = self.ring.borrow_mut();
        for (c, chunk) in order.chunks(SEND_BATCH).enumerate() {
            let base = c * SEND_BATCH;
            let s = &mut *scratch;
            let n = s.fill(entries, chunk);
            let mut pushed = 0;
            {
                let mut sq = ring.submission();
                for (k, h) in s.hdrs.iter().enumerate() {
                    let fd = fd_of(base + k);
                    let e = opcode::SendMsg::new(types::Fd(fd), h as *const libc::msghdr)
                        .flags(libc::MSG_DONTWAIT as u32)
                        .build()
                        .user_data((base + k) as u64);
                    // SAFETY: the msghdr, its address and iovec, and the packet buffer all outlive
                    // the submission: we wait for every completion before returning.
                    if unsafe { sq.push(&e) }.is_err() {
                        break;
                    }
                    pushed += 1;
                }
            }
            for k in pushed..n {
                on_drop(base + k);
            }
            let mut tries = 0;
            let submitted = loop {
                match ring.submit_and_wait(pushed) {
                    Ok(_) => break true,
                    Err(e)
                        if tries < 8
                            && matches!(
                                e.raw_os_error(),
                                Some(libc::EINTR | libc::EAGAIN | libc::EBUSY)
                            ) =>
                    {
                        tries += 1
                    }
                    Err(e) => {
                        log::warn!("io_uring send submission failed: {e}");
                        break false;
                    }
                }
            };
            if !submitted {
                // The entries may still sit in the queue: replace the ring so they can never be
                // submitted later, after their buffers were reused.
                for k in 0..pushed {
                    on_drop(base + k);
                }
                match IoUring::builder().build(SEND_BATCH as u32) {
                    Ok(fresh) => *ring = fresh,
                    Err(e) => log::error!("io_uring send ring could not be rebuilt: {e}"),
                }
                continue;
            }
            let mut done = 0;
            while done < pushed {
                let mut cq = ring.completion();
                cq.sync();
                let mut any = false;
                for cqe in &mut cq {
                    any = true;
                    done += 1;
                    if cqe.result() < 0 {
                        on_drop(cqe.user_data() as usize);
                    }
                }
                drop(cq);
                if !any && ring.submit_and_wait(1).is_err() {
                    break;
                }
            }
        }
    }
}

impl Drop for UringUdp {
    fn drop(&mut self) {
        // Unregister the buffer ring before its memory is freed (the ring fd closes right after).
        let _ = self
            .recv_ring
            .borrow()
            .submitter()
            .unregister_buf_ring(BGID);
    }
}

/// Reads the peer address the kernel wrote into the recvmsg name area.
fn addr_from_name(name: &[u8]) -> Option<SocketAddr> {
    if name.len() < 2 {
        return None;
    }
    let family = u16::from_ne_bytes([name[0], name[1]]) as libc::c_int;
    match family {
        libc::AF_INET if name.len() >= 8 => {
            let port = u16::from_be_bytes([name[2], name[3]]);
            let ip = std::net::Ipv4Addr::new(name[4], name[5], name[6], name[7]);
            Some(SocketAddr::from((ip, port)))
        }
        libc::AF_INET6 if name.len() >= 24 => {
            let port = u16::from_be_bytes([name[2], name[3]]);
            let mut ip = [0u8; 16];
            ip.copy_from_slice(&name[8..24]);
            Some(SocketAddr::from((std::net::Ipv6Addr::from(ip), port)))
        }
        _ => None,
    }
}
