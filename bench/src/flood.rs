//! `webrtc --flood PPS`: while the streams run, one thread sprays the worker's shared UDP port
//! with traffic for transports that do not exist, from `SOURCES` source ports on 127.0.0.1, in
//! equal parts:
//!
//! - garbage: 20..300 random bytes (any first byte: RFC 7983 demux by first byte sends it to
//!   "unknown protocol", "STUN", "DTLS" or "RTP" and each path drops it);
//! - valid-looking RTP: version 2, PT 111, random SSRC, 160-byte payload, from unknown tuples;
//! - STUN Binding requests with a USERNAME whose ufrag no transport has, a MESSAGE-INTEGRITY
//!   and a correct FINGERPRINT.
//!
//! Paced like the generator (everything due sent every millisecond, `sendmmsg` batches of 64).
//! The engine's drop counters and socket counters are read from the worker (by message) before
//! and after, so the report says how many flood packets the worker saw and why it dropped them.

use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use ringsfu_core::io::epoll::EpollUdp;
use ringsfu_core::io::{Route, TxQueue};
use serde::Serialize;

/// Packets per send call (the engine's sender splits at 64 per `sendmmsg`).
const BATCH: usize = 64;
/// Source sockets the flood rotates through (distinct unknown tuples).
pub const SOURCES: usize = 32;
/// Highest flood rate accepted.
pub const MAX_FLOOD_PPS: f64 = 1_000_000.0;

/// What the flood thread sent.
#[derive(Debug, Clone, Default, Serialize)]
pub struct FloodSent {
    /// Packets handed to the kernel.
    pub sent: u64,
    /// Garbage / RTP-looking / STUN packets sent.
    pub by_kind: [u64; 3],
    /// Seconds the flood ran.
    pub seconds: f64,
    /// Packets the local socket refused (socket buffer full).
    pub send_errors: u64,
}

/// The flood's part of the report.
#[derive(Debug, Clone, Serialize)]
pub struct FloodOutcome {
    /// Offered flood rate.
    pub offered_pps: f64,
    /// Achieved flood rate (sent / seconds).
    pub sent_pps: f64,
    /// What was sent.
    pub sent: FloodSent,
    /// Datagrams the worker's sockets received meanwhile (flood + media + RTCP).
    pub worker_datagrams_received: u64,
    /// The worker's drop counters' growth meanwhile, by reason.
    pub drops: Vec<(String, u64)>,
}

fn stun_request(rng: &mut impl Rng, buf: &mut Vec<u8>) {
    buf.clear();
    // Header: Binding request, length patched below, magic cookie, transaction id.
    buf.extend_from_slice(&[0x00, 0x01, 0, 0, 0x21, 0x12, 0xa4, 0x42]);
    buf.extend((0..12).map(|_| rng.gen::<u8>()));
    // USERNAME "<unknown ufrag>:<remote>" (16 bytes, no padding needed).
    buf.extend_from_slice(&[0x00, 0x06, 0x00, 16]);
    let ufrag: u32 = rng.gen();
    buf.extend_from_slice(format!("x{ufrag:08x}:remote").as_bytes());
    // PRIORITY, ICE-CONTROLLING.
    buf.extend_from_slice(&[0x00, 0x24, 0x00, 0x04]);
    buf.extend_from_slice(&rng.gen::<u32>().to_be_bytes());
    buf.extend_from_slice(&[0x80, 0x2a, 0x00, 0x08]);
    buf.extend((0..8).map(|_| rng.gen::<u8>()));
    // MESSAGE-INTEGRITY (random: nobody can check it without the ufrag's password).
    buf.extend_from_slice(&[0x00, 0x08, 0x00, 20]);
    buf.extend((0..20).map(|_| rng.gen::<u8>()));
    // FINGERPRINT over everything before it, with the length covering it.
    let len = (buf.len() - 20 + 8) as u16;
    buf[2..4].copy_from_slice(&len.to_be_bytes());
    let crc = crc32(buf) ^ 0x5354_554e;
    buf.extend_from_slice(&[0x80, 0x28, 0x00, 0x04]);
    buf.extend_from_slice(&crc.to_be_bytes());
}

/// CRC-32 (IEEE), bitwise: the flood builds few enough STUN packets per second for this.
fn crc32(data: &[u8]) -> u32 {
    let mut crc = 0xffff_ffffu32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xedb8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

fn rtp_like(rng: &mut impl Rng, seq: u16, buf: &mut Vec<u8>) {
    buf.clear();
    buf.extend_from_slice(&[0x80, 111]);
    buf.extend_from_slice(&seq.to_be_bytes());
    buf.extend_from_slice(&(u32::from(seq) * 960).to_be_bytes());
    buf.extend_from_slice(&rng.gen::<u32>().to_be_bytes());
    buf.extend((0..160).map(|_| rng.gen::<u8>()));
}

fn garbage(rng: &mut impl Rng, buf: &mut Vec<u8>) {
    buf.clear();
    let n = rng.gen_range(20..300);
    buf.extend((0..n).map(|_| rng.gen::<u8>()));
}

/// Runs the flood to `dest` at `pps` until `stop`; pinned to `core` when given.
pub fn run(dest: SocketAddr, pps: f64, stop: Arc<AtomicBool>, core: Option<usize>) -> FloodSent {
    let mut out = FloodSent::default();
    if let Some(c) = core {
        let _ = ringsfu_core::io::pin_current_thread(c);
    }
    if !dest.ip().is_loopback() {
        return out;
    }
    // The engine's own batched sender (sendmmsg, 64 per call) needs a runtime to register with.
    let Ok(rt) = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    else {
        return out;
    };
    let _guard = rt.enter();
    let socks: Vec<EpollUdp> = (0..SOURCES)
        .filter_map(|_| {
            let s = UdpSocket::bind("127.0.0.1:0").ok()?;
            s.set_nonblocking(true).ok()?;
            EpollUdp::new(s).ok()
        })
        .collect();
    if socks.is_empty() {
        return out;
    }
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x000f_100d);
    let mut q = TxQueue::new();
    let mut scratch = Vec::with_capacity(400);
    let order: Vec<u32> = (0..BATCH as u32).collect();
    let t0 = Instant::now();
    let mut seq = 0u16;
    let mut next_sock = 0usize;
    while !stop.load(Ordering::Relaxed) {
        let due = (t0.elapsed().as_secs_f64() * pps) as u64;
        let mut todo = due.saturating_sub(out.sent + out.send_errors);
        while todo > 0 {
            let n = (todo as usize).min(BATCH);
            for _ in 0..n {
                let kind = rng.gen_range(0..3usize);
                match kind {
                    0 => garbage(&mut rng, &mut scratch),
                    1 => {
                        seq = seq.wrapping_add(1);
                        rtp_like(&mut rng, seq, &mut scratch)
                    }
                    _ => stun_request(&mut rng, &mut scratch),
                }
                out.by_kind[kind] += 1;
                q.push(&scratch, Route::Udp { socket: 0, dest });
            }
            let sock = &socks[next_sock % socks.len()];
            next_sock += 1;
            let drops_before = sock.send_drops();
            sock.send_entries(q.queued(), &order[..n]);
            let refused = sock.send_drops().saturating_sub(drops_before);
            q.clear();
            out.sent += n as u64 - refused;
            out.send_errors += refused;
            todo -= n as u64;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    out.seconds = t0.elapsed().as_secs_f64();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stun_flood_packets_parse_with_a_valid_fingerprint_and_an_unknown_ufrag() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        let mut b = Vec::new();
        stun_request(&mut rng, &mut b);
        let m = ringsfu_core::stun::StunMessage::parse(&b).expect("parses");
        assert!(m.verify_fingerprint());
        let (local, _) = m.username_fragments().expect("has a username");
        assert!(local.starts_with(b"x"));
        rtp_like(&mut rng, 7, &mut b);
        assert!(ringsfu_core::rtp::RtpHeader::parse(&b).is_ok());
    }
}
