//! The portable backend: tokio's epoll reactor tells when a socket is readable; datagrams move with
//! `recvmmsg`/`sendmmsg`, up to a batch per system call.

use std::cell::{Cell, RefCell};
use std::io;
use std::mem::MaybeUninit;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;

use socket2::{Domain, Socket, Type};
use tokio::io::unix::AsyncFd;

use super::{rx_time, RecvBatch, TxEntry};

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
    msgs: super::SendScratch,
    mmsg: Vec<libc::mmsghdr>,
}

impl EpollUdp {
    /// Wraps a bound non-blocking socket; must be called inside the worker's runtime.
    pub fn new(socket: UdpSocket) -> io::Result<Self> {
        let local = socket.local_addr()?;
        if let Err(e) = rx_time::enable(socket.as_raw_fd()) {
            log::debug!("no kernel receive timestamps on {local}: {e}");
        }
        Ok(Self {
            // SAFETY: the AsyncFd owns the socket, so the descriptor stays open for as long as it
            // is registered with the reactor.
            fd: unsafe { AsyncFd::register(socket)? },
            local,
            send_drops: Cell::new(0),
            scratch: RefCell::new(SendScratch::default()),
        })
    }

    /// Counts datagrams a caller could not send from this socket.
    pub fn note_send_drops(&self, n: u64) {
        self.send_drops.set(self.send_drops.get() + n);
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
        // One receive timestamp per datagram (u64 words keep the control messages aligned).
        let mut controls = [[0u64; rx_time::CONTROL_LEN / 8]; 64];
        // SAFETY: mmsghdr is a plain C struct for which all-zero bytes is a valid value.
        let mut hdrs: [libc::mmsghdr; 64] = unsafe { std::mem::zeroed() };
        for i in 0..n {
            hdrs[i].msg_hdr.msg_control = controls[i].as_mut_ptr().cast();
            hdrs[i].msg_hdr.msg_controllen = rx_time::CONTROL_LEN;
            iovs[i].iov_base = batch.bufs[i].as_mut_ptr().cast();
            iovs[i].iov_len = batch.bufs[i].len();
            hdrs[i].msg_hdr.msg_name = storages[i].as_mut_ptr().cast();
            hdrs[i].msg_hdr.msg_namelen = std::mem::size_of::<libc::sockaddr_storage>() as u32;
            hdrs[i].msg_hdr.msg_iov = &mut iovs[i];
            hdrs[i].msg_hdr.msg_iovlen = 1;
        }
        // SAFETY: every header points at a live iovec over a buffer of iov_len bytes, at a
        // sockaddr_storage of msg_namelen bytes and at a control buffer of msg_controllen bytes,
        // all of which outlive the call; n <= 64 entries.
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
        let wall_now = rx_time::wall_now();
        for i in 0..got {
            let control_len = hdrs[i].msg_hdr.msg_controllen.min(rx_time::CONTROL_LEN);
            // SAFETY: any u64 array may be read as its bytes; control_len <= its size.
            let control = unsafe {
                std::slice::from_raw_parts(controls[i].as_ptr().cast::<u8>(), control_len)
            };
            batch.ages[i] = rx_time::age(rx_time::parse(control), wall_now);
            batch.lens[i] = hdrs[i].msg_len as usize;
            // SAFETY: the kernel wrote a socket address of msg_namelen bytes into this storage;
            // the rest of it stays uninitialised, which sockaddr_from_storage never reads past.
            let storage = unsafe { storages[i].assume_init_ref() };
            batch.addrs[i] = sockaddr_from_storage(storage, hdrs[i].msg_hdr.msg_namelen)
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
            let count = s.msgs.fill(entries, chunk);
            s.mmsg.clear();
            for h in &s.msgs.hdrs {
                // SAFETY: all-zero is a valid mmsghdr; the msghdr copied in points at scratch
                // data that is not modified until sendmmsg returns.
                let mut m: libc::mmsghdr = unsafe { std::mem::zeroed() };
                m.msg_hdr = *h;
                s.mmsg.push(m);
            }
            let mut sent = 0usize;
            while sent < count {
                // SAFETY: hdrs[sent..count] point at live addresses and at iovecs over queued
                // buffers that the TxQueue keeps alive for the duration of this call.
                let r = unsafe {
                    libc::sendmmsg(
                        fd,
                        s.mmsg[sent..].as_mut_ptr(),
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

/// Reads an IPv4 or IPv6 address the kernel wrote into a `sockaddr_storage`.
fn sockaddr_from_storage(
    storage: &libc::sockaddr_storage,
    len: libc::socklen_t,
) -> Option<SocketAddr> {
    let len = len as usize;
    match storage.ss_family as libc::c_int {
        libc::AF_INET if len >= std::mem::size_of::<libc::sockaddr_in>() => {
            // SAFETY: the family says this storage holds a sockaddr_in, which fits inside it
            // (sockaddr_storage is sized and aligned for every address type).
            let a =
                unsafe { &*(storage as *const libc::sockaddr_storage).cast::<libc::sockaddr_in>() };
            let ip = std::net::Ipv4Addr::from(u32::from_be(a.sin_addr.s_addr));
            Some(SocketAddr::from((ip, u16::from_be(a.sin_port))))
        }
        libc::AF_INET6 if len >= std::mem::size_of::<libc::sockaddr_in6>() => {
            // SAFETY: as above, for sockaddr_in6.
            let a = unsafe {
                &*(storage as *const libc::sockaddr_storage).cast::<libc::sockaddr_in6>()
            };
            let ip = std::net::Ipv6Addr::from(a.sin6_addr.s6_addr);
            Some(SocketAddr::V6(std::net::SocketAddrV6::new(
                ip,
                u16::from_be(a.sin6_port),
                a.sin6_flowinfo,
                a.sin6_scope_id,
            )))
        }
        _ => None,
    }
}
