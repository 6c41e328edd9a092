//! The portable backend: tokio's epoll reactor tells when a socket is readable; datagrams move with
//! `recvmmsg`/`sendmmsg`, up to a batch per system call.

use std::cell::{Cell, RefCell};
use std::io;
use std::mem::MaybeUninit;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;

use socket2::{Domain, SockAddr, Socket, Type};
use tokio::io::unix::AsyncFd;

use super::{RecvBatch, Route, TxEntry};

/// Kernel socket buffer size we ask for: bursts of fan-out must not overflow it.
const SOCKET_BUFFER_BYTES: usize = 8 * 1024 * 1024;

/// Most datagrams handed to one `sendmmsg` call.
const SEND_BATCH: usize = 64;

/// Opens a non-blocking UDP socket bound to `addr`, with large buffers; `reuse_port` for a
/// SO_REUSEPORT group shared by workers.
pub fn bind_udp(addr: SocketAddr, reuse_port: bool) -> io::Result<UdpSocket> {
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, None)?;
    if reuse_port {
        socket.set_reuse_port(true)?;
    }
    let _ = socket.set_recv_buffer_size(SOCKET_BUFFER_BYTES);
    let _ = socket.set_send_buffer_size(SOCKET_BUFFER_BYTES);
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    Ok(socket.into())
}

/// A UDP socket driven by epoll readiness with batched system calls.
pub struct EpollUdp {
    fd: AsyncFd<UdpSocket>,
    local: SocketAddr,
    /// Datagrams that could not be sent because the socket buffer was full.
    send_drops: Cell<u64>,
    /// Reused `sendmmsg` scratch (kept so a flush allocates nothing).
    scratch: RefCell<SendScratch>,
}

#[derive(Default)]
struct SendScratch {
    addrs: Vec<SockAddr>,
    iovs: Vec<libc::iovec>,
    hdrs: Vec<libc::mmsghdr>,
}

impl EpollUdp {
    /// Wraps a bound non-blocking socket; must be called inside the worker's runtime.
    pub fn new(socket: UdpSocket) -> io::Result<Self> {
        let local = socket.local_addr()?;
        Ok(Self {
            fd: AsyncFd::new(socket)?,
            local,
            send_drops: Cell::new(0),
            scratch: RefCell::new(SendScratch::default()),
        })
    }

    /// Datagrams dropped because the socket buffer was full.
    pub fn send_drops(&self) -> u64 {
        self.send_drops.get()
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Waits until the socket is readable.
    pub async fn readable(&self) -> io::Result<()> {
        let mut guard = self.fd.readable().await?;
        guard.clear_ready();
        Ok(())
    }

    /// Receives up to `batch.bufs.len()` datagrams without blocking; returns how many (0 when none
    /// are waiting).
    pub fn recv_batch(&self, batch: &mut RecvBatch) -> io::Result<usize> {
        let n = batch.bufs.len();
        let mut storages: [MaybeUninit<libc::sockaddr_storage>; 64] =
            [const { MaybeUninit::uninit() }; 64];
        let n = n.min(storages.len());
        let mut iovs: [libc::iovec; 64] = [libc::iovec {
            iov_base: std::ptr::null_mut(),
            iov_len: 0,
        }; 64];
        // SAFETY: mmsghdr is a plain C struct for which all-zero bytes is a valid value.
        let mut hdrs: [libc::mmsghdr; 64] = unsafe { std::mem::zeroed() };
        for i in 0..n {
            iovs[i].iov_base = batch.bufs[i].as_mut_ptr().cast();
            iovs[i].iov_len = batch.bufs[i].len();
            hdrs[i].msg_hdr.msg_name = storages[i].as_mut_ptr().cast();
            hdrs[i].msg_hdr.msg_namelen = std::mem::size_of::<libc::sockaddr_storage>() as u32;
            hdrs[i].msg_hdr.msg_iov = &mut iovs[i];
            hdrs[i].msg_hdr.msg_iovlen = 1;
        }
        // SAFETY: every header points at a live iovec over a buffer of iov_len bytes and at a
        // sockaddr_storage of msg_namelen bytes, all of which outlive the call; n <= 64 entries.
        let r = unsafe {
            libc::recvmmsg(
                self.fd.get_ref().as_raw_fd(),
                hdrs.as_mut_ptr(),
                n as u32,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
            )
        };
        if r < 0 {
            let e = io::Error::last_os_error();
            return match e.kind() {
                io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted => Ok(0),
                _ => Err(e),
            };
        }
        let got = r as usize;
        for i in 0..got {
            batch.lens[i] = hdrs[i].msg_len as usize;
            // SAFETY: the kernel filled msg_namelen bytes of this storage with a socket address.
            let addr = unsafe {
                SockAddr::new(storages[i].assume_init(), hdrs[i].msg_hdr.msg_namelen)
            };
            batch.addrs[i] = addr
                .as_socket()
                .unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0)));
        }
        batch.count = got;
        Ok(got)
    }

    /// Sends the queued entries `order` (all routed to this socket), `SEND_BATCH` per system call.
    /// A full socket buffer drops the packet it stopped at (counted), as a congested link would.
    pub fn send_entries(&self, entries: &[TxEntry], order: &[u32]) {
        let fd = self.fd.get_ref().as_raw_fd();
        let mut scratch = self.scratch.borrow_mut();
        for chunk in order.chunks(SEND_BATCH) {
            let s = &mut *scratch;
            s.addrs.clear();
            s.iovs.clear();
            s.hdrs.clear();
            for &i in chunk {
                let e = &entries[i as usize];
                if let Route::Udp { dest, .. } = e.route {
                    s.addrs.push(SockAddr::from(dest));
                    s.iovs.push(libc::iovec {
                        iov_base: e.buf.as_ptr() as *mut libc::c_void,
                        iov_len: e.len,
                    });
                }
            }
            let count = s.iovs.len();
            for i in 0..count {
                // SAFETY: all-zero is a valid mmsghdr; the pointers set below stay valid until
                // sendmmsg returns (addrs and iovs are not modified in between).
                let mut h: libc::mmsghdr = unsafe { std::mem::zeroed() };
                h.msg_hdr.msg_name = s.addrs[i].as_ptr() as *mut libc::c_void;
                h.msg_hdr.msg_namelen = s.addrs[i].len();
                h.msg_hdr.msg_iov = &mut s.iovs[i];
                h.msg_hdr.msg_iovlen = 1;
                s.hdrs.push(h);
            }
            let mut sent = 0usize;
            while sent < count {
                // SAFETY: hdrs[sent..count] point at live addresses and at iovecs over queued
                // buffers that the TxQueue keeps alive for the duration of this call.
                let r = unsafe {
                    libc::sendmmsg(
                        fd,
                        s.hdrs[sent..].as_mut_ptr(),
                        (count - sent) as u32,
                        libc::MSG_DONTWAIT,
                    )
                };
                if r <= 0 {
                    let e = io::Error::last_os_error();
                    if e.kind() == io::ErrorKind::Interrupted {
                        continue;
                    }
                    // EAGAIN (buffer full) or an error for this destination: skip it, go on.
                    self.send_drops.set(self.send_drops.get() + 1);
                    sent += 1;
                } else {
                    sent += r as usize;
                }
            }
        }
    }
}
