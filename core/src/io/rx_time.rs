//! Kernel receive timestamps (`SO_TIMESTAMPNS`): when each datagram really arrived.
//!
//! A worker reads a socket in batches. When it was busy (or not scheduled) for a few milliseconds,
//! one `recvmmsg` returns packets that arrived milliseconds apart, and stamping them all with the
//! time of the read makes them look like one burst. Receive-side congestion feedback
//! (transport-cc) reports those times to the sender, whose estimator then sees false delay jumps
//! and rejects its bandwidth probes (a probe whose packets all "arrived" at once has no receive
//! interval). The kernel stamps each datagram when it is queued on the socket; the backends ask
//! for that stamp as a control message and hand the engine each packet's age at read time.

use std::os::fd::RawFd;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Bytes of control buffer one datagram needs for its timestamp: a `cmsghdr` followed by a
/// `timespec`, both multiples of the control-message alignment on 64-bit Linux.
pub const CONTROL_LEN: usize = std::mem::size_of::<libc::cmsghdr>() + 16;

/// Ages above this are treated as a wall-clock step, not a real wait, and ignored.
const MAX_AGE: Duration = Duration::from_secs(1);

/// Asks the kernel to stamp every datagram received on `fd`. Failure is not fatal: packets then
/// carry no stamp and count as just read.
pub fn enable(fd: RawFd) -> std::io::Result<()> {
    let on: libc::c_int = 1;
    // SAFETY: `on` outlives the call and its size is passed; SO_TIMESTAMPNS takes an int flag.
    let r = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_TIMESTAMPNS,
            (&on as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// The `SCM_TIMESTAMPNS` stamp (time since the Unix epoch, wall clock) among the control
/// messages in `control`, as the kernel laid them out.
pub fn parse(control: &[u8]) -> Option<Duration> {
    const HDR: usize = std::mem::size_of::<libc::cmsghdr>();
    let word = std::mem::size_of::<usize>();
    let mut rest = control;
    while rest.len() >= HDR {
        let cmsg_len = usize::from_ne_bytes(rest[..word].try_into().ok()?);
        let level = i32::from_ne_bytes(rest[word..word + 4].try_into().ok()?);
        let kind = i32::from_ne_bytes(rest[word + 4..word + 8].try_into().ok()?);
        if cmsg_len < HDR || cmsg_len > rest.len() {
            return None;
        }
        if level == libc::SOL_SOCKET && kind == libc::SCM_TIMESTAMPNS && cmsg_len >= HDR + 16 {
            let secs = i64::from_ne_bytes(rest[HDR..HDR + 8].try_into().ok()?);
            let nanos = i64::from_ne_bytes(rest[HDR + 8..HDR + 16].try_into().ok()?);
            return (secs >= 0 && (0..1_000_000_000).contains(&nanos))
                .then(|| Duration::new(secs as u64, nanos as u32));
        }
        let step = cmsg_len.div_ceil(word) * word;
        rest = rest.get(step..)?;
    }
    None
}

/// The wall clock now, as the kernel's stamps count it.
pub fn wall_now() -> Duration {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
}

/// How long before `wall_now` a datagram stamped `stamp` arrived (zero without a stamp, or when
/// the wall clock stepped).
pub fn age(stamp: Option<Duration>, wall_now: Duration) -> Duration {
    match stamp.and_then(|s| wall_now.checked_sub(s)) {
        Some(a) if a <= MAX_AGE => a,
        _ => Duration::ZERO,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cmsg(level: i32, kind: i32, data: &[u8]) -> Vec<u8> {
        let hdr = std::mem::size_of::<libc::cmsghdr>();
        let len = hdr + data.len();
        let mut v = Vec::new();
        v.extend_from_slice(&len.to_ne_bytes());
        v.extend_from_slice(&level.to_ne_bytes());
        v.extend_from_slice(&kind.to_ne_bytes());
        v.extend_from_slice(data);
        while v.len() % 8 != 0 {
            v.push(0);
        }
        v
    }

    fn timespec(secs: i64, nanos: i64) -> Vec<u8> {
        [secs.to_ne_bytes(), nanos.to_ne_bytes()].concat()
    }

    #[test]
    fn finds_the_stamp_among_other_control_messages() {
        let mut c = cmsg(libc::IPPROTO_IP, libc::IP_TOS, &[0x2e, 0, 0, 0]);
        c.extend(cmsg(
            libc::SOL_SOCKET,
            libc::SCM_TIMESTAMPNS,
            &timespec(1_700_000_000, 5),
        ));
        assert_eq!(parse(&c), Some(Duration::new(1_700_000_000, 5)));
        assert_eq!(parse(&c[..8]), None);
        assert_eq!(parse(&[]), None);
    }

    #[test]
    fn malformed_control_data_gives_no_stamp() {
        let mut c = cmsg(
            libc::SOL_SOCKET,
            libc::SCM_TIMESTAMPNS,
            &timespec(1, 2_000_000_000),
        );
        assert_eq!(parse(&c), None, "nanoseconds out of range");
        c = cmsg(libc::SOL_SOCKET, libc::SCM_TIMESTAMPNS, &timespec(1, 2));
        c[0] = 200; // claims more bytes than there are
        assert_eq!(parse(&c), None);
        c[..8].copy_from_slice(&0usize.to_ne_bytes());
        assert_eq!(parse(&c), None, "a zero length must not loop");
    }

    #[test]
    fn a_real_socket_stamps_datagrams_and_ages_are_bounded() {
        use std::os::fd::AsRawFd;
        let rx = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        enable(rx.as_raw_fd()).unwrap();
        let tx = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        tx.send_to(b"x", rx.local_addr().unwrap()).unwrap();
        let mut buf = [0u8; 16];
        let mut control = [0u64; CONTROL_LEN / 8];
        let mut iov = libc::iovec {
            iov_base: buf.as_mut_ptr().cast(),
            iov_len: buf.len(),
        };
        // SAFETY: a zeroed msghdr is valid; the pointers set below outlive the call.
        let mut hdr: libc::msghdr = unsafe { std::mem::zeroed() };
        hdr.msg_iov = &mut iov;
        hdr.msg_iovlen = 1;
        hdr.msg_control = control.as_mut_ptr().cast();
        hdr.msg_controllen = CONTROL_LEN;
        // SAFETY: hdr points at live buffers of the lengths it states (blocking read of the one
        // datagram sent above).
        let n = unsafe { libc::recvmsg(rx.as_raw_fd(), &mut hdr, 0) };
        assert_eq!(n, 1);
        let bytes: Vec<u8> = control.iter().flat_map(|w| w.to_ne_bytes()).collect();
        let stamp = parse(&bytes[..hdr.msg_controllen]).expect("a kernel stamp");
        let now = wall_now();
        assert!(age(Some(stamp), now) < Duration::from_millis(500));
        assert_eq!(age(Some(now + Duration::from_secs(5)), now), Duration::ZERO);
        assert_eq!(age(Some(now - Duration::from_secs(5)), now), Duration::ZERO);
        assert_eq!(age(None, now), Duration::ZERO);
    }

    /// Two datagrams that reach the socket 30 ms apart and are read late keep their spacing, on
    /// both backends (the point of the stamps: a batch is not one burst).
    #[test]
    fn one_batch_keeps_the_spacing_of_its_datagrams_on_both_backends() {
        use crate::io::{IoBackend, RecvBatch, UdpIo};
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let mut backends = vec![IoBackend::Epoll];
        if crate::io::uring::available() {
            backends.push(IoBackend::IoUring);
        }
        for backend in backends {
            rt.block_on(async {
                let sock =
                    crate::io::epoll::bind_udp("127.0.0.1:0".parse().unwrap(), false).unwrap();
                let io = UdpIo::new(sock, backend, 8).unwrap();
                let tx = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
                tx.send_to(b"first", io.local_addr()).unwrap();
                std::thread::sleep(Duration::from_millis(30));
                tx.send_to(b"second", io.local_addr()).unwrap();
                // Arrival = read time - age, for each datagram, however the reads batch them.
                let mut batch = RecvBatch::new(8);
                let mut arrivals = Vec::new();
                let deadline = std::time::Instant::now() + Duration::from_secs(10);
                while arrivals.len() < 2 && std::time::Instant::now() < deadline {
                    let _ = tokio::time::timeout(Duration::from_millis(100), io.readable()).await;
                    let got = io.recv_batch(&mut batch).unwrap();
                    let read_at = std::time::Instant::now();
                    for age in &batch.ages[..got] {
                        assert!(*age > Duration::ZERO, "{backend:?}: a kernel stamp");
                        arrivals.push(read_at - *age);
                    }
                }
                assert_eq!(arrivals.len(), 2, "{backend:?}: both datagrams read");
                let spacing = arrivals[1].saturating_duration_since(arrivals[0]);
                assert!(
                    spacing >= Duration::from_millis(25),
                    "{backend:?}: arrivals {spacing:?} apart"
                );
            });
        }
    }
}
