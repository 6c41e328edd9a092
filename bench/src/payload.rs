//! The test packets: RTP whose payload carries a stream id, a counter and the send time, then a
//! fill derived from the counter, so receivers can check order, content and latency.
//!
//! Payload layout: [VP8 descriptor + frame tag, 5 bytes, video only] magic(4) producer(4)
//! counter(8) send_ns(8) fill(..).

/// Marks our payloads ("RSFB").
pub const MAGIC: u32 = 0x5253_4642;
/// RTP header length we write (no CSRCs, no extensions).
pub const RTP_HEADER: usize = 12;
/// Length of magic + producer + counter + send time.
const META: usize = 24;
/// Length of the VP8 prefix on video payloads.
const VP8_PREFIX: usize = 5;
/// One keyframe every this many packets (and the first), like a GOP.
const KEYFRAME_EVERY: u64 = 1000;

/// Smallest payload size that holds the metadata.
pub fn min_payload(vp8: bool) -> usize {
    META + if vp8 { VP8_PREFIX } else { 0 }
}

fn fill_byte(counter: u64, i: usize) -> u8 {
    (counter as u8).wrapping_add(i as u8) ^ 0x5a
}

/// Writes a plaintext RTP packet with `payload_len` bytes of payload into `buf`; returns its length.
/// `buf` must hold RTP_HEADER + payload_len bytes (the caller sizes it).
#[allow(clippy::too_many_arguments)]
pub fn write_packet(
    buf: &mut [u8],
    pt: u8,
    ssrc: u32,
    producer: u32,
    counter: u64,
    send_ns: u64,
    payload_len: usize,
    vp8: bool,
    clock_step: u32,
) -> usize {
    let len = RTP_HEADER + payload_len;
    let seq = counter as u16;
    let ts = (counter as u32).wrapping_mul(clock_step);
    buf[0] = 0x80;
    buf[1] = pt & 0x7f;
    buf[2..4].copy_from_slice(&seq.to_be_bytes());
    buf[4..8].copy_from_slice(&ts.to_be_bytes());
    buf[8..12].copy_from_slice(&ssrc.to_be_bytes());
    let mut at = RTP_HEADER;
    if vp8 {
        let key = counter.is_multiple_of(KEYFRAME_EVERY);
        // S=1 PID=0 only on keyframes: the rest look like continuation packets.
        // X=1 with a 15-bit PictureID, as browsers send: mediasoup 3.12 ignores descriptors
        // without X (never sees a keyframe) and widens 7-bit PictureIDs to 15 bits.
        let pid = (counter & 0x7fff) as u16;
        buf[at..at + 5].copy_from_slice(&[
            if key { 0x90 } else { 0x80 },
            0x80,
            0x80 | (pid >> 8) as u8,
            pid as u8,
            if key { 0 } else { 1 },
        ]);
        at += VP8_PREFIX;
    }
    buf[at..at + 4].copy_from_slice(&MAGIC.to_be_bytes());
    buf[at + 4..at + 8].copy_from_slice(&producer.to_be_bytes());
    buf[at + 8..at + 16].copy_from_slice(&counter.to_be_bytes());
    buf[at + 16..at + 24].copy_from_slice(&send_ns.to_be_bytes());
    for (i, b) in buf[at + META..len].iter_mut().enumerate() {
        *b = fill_byte(counter, i);
    }
    len
}

/// Turns a VP8 packet written by [`write_packet`] into a keyframe start (S=1, PID=0, P=0): what a
/// sender does when the forwarder asks for one (PLI/FIR). No-op if `buf` is too short.
pub fn mark_keyframe(buf: &mut [u8]) {
    if let Some(d) = buf.get_mut(RTP_HEADER..RTP_HEADER + 5) {
        d[0] = 0x90;
        d[4] = 0x00;
    }
}

/// What a receiver learned from one decrypted packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decoded {
    /// Payload type.
    pub pt: u8,
    /// SSRC.
    pub ssrc: u32,
    /// Producer index.
    pub producer: u32,
    /// Counter.
    pub counter: u64,
    /// Send time (ns since the run's epoch).
    pub send_ns: u64,
}

/// Parses and verifies a plaintext packet; None if it is not one of ours or its fill is wrong.
pub fn decode(pkt: &[u8], vp8: bool) -> Option<Decoded> {
    let b0 = *pkt.first()?;
    if b0 >> 6 != 2 {
        return None;
    }
    let cc = (b0 & 0x0f) as usize;
    let mut at = RTP_HEADER + 4 * cc;
    if b0 & 0x10 != 0 {
        let words = u16::from_be_bytes(pkt.get(at + 2..at + 4)?.try_into().ok()?) as usize;
        at += 4 + 4 * words;
    }
    let padding = if b0 & 0x20 != 0 {
        *pkt.last()? as usize
    } else {
        0
    };
    let end = pkt.len().checked_sub(padding)?;
    if vp8 {
        at += VP8_PREFIX;
    }
    let meta = pkt.get(at..at + META)?;
    let word = |r: std::ops::Range<usize>| {
        meta.get(r)
            .map(|s| s.iter().fold(0u64, |a, &x| (a << 8) | x as u64))
    };
    if word(0..4)? as u32 != MAGIC {
        return None;
    }
    let d = Decoded {
        pt: pkt[1] & 0x7f,
        ssrc: u32::from_be_bytes(pkt.get(8..12)?.try_into().ok()?),
        producer: word(4..8)? as u32,
        counter: word(8..16)?,
        send_ns: word(16..24)?,
    };
    let fill = pkt.get(at + META..end)?;
    if fill
        .iter()
        .enumerate()
        .any(|(i, &b)| b != fill_byte(d.counter, i))
    {
        return None;
    }
    Some(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_corruption_is_caught() {
        for vp8 in [false, true] {
            let mut buf = vec![0u8; 2048];
            let n = write_packet(&mut buf, 100, 7, 3, 12345, 999, 160, vp8, 960);
            assert_eq!(n, 172);
            let d = decode(&buf[..n], vp8).unwrap();
            assert_eq!(
                (d.pt, d.ssrc, d.producer, d.counter, d.send_ns),
                (100, 7, 3, 12345, 999)
            );
            buf[n - 1] ^= 1;
            assert_eq!(decode(&buf[..n], vp8), None);
            assert_eq!(decode(&buf[..5], vp8), None);
        }
    }

    #[test]
    fn decode_skips_header_extensions_a_forwarder_adds() {
        let mut plain = vec![0u8; 2048];
        let n = write_packet(&mut plain, 100, 7, 0, 5, 1, 160, false, 960);
        // Same packet with a one-byte-header extension block (one word) inserted.
        let mut ext = plain[..12].to_vec();
        ext[0] |= 0x10;
        ext.extend_from_slice(&[0xbe, 0xde, 0, 1, 0x10, b'0', 0, 0]);
        ext.extend_from_slice(&plain[12..n]);
        assert_eq!(decode(&ext, false).unwrap().counter, 5);
    }

    #[test]
    fn keyframes_are_marked_for_vp8() {
        let mut buf = vec![0u8; 2048];
        write_packet(&mut buf, 96, 1, 0, 0, 0, 1200, true, 3000);
        // S=1 PID=0 with X, then a 15-bit PictureID, then a key frame tag (P=0).
        assert_eq!(&buf[12..17], &[0x90, 0x80, 0x80, 0x00, 0x00]);
        let n = write_packet(&mut buf, 96, 1, 0, 1, 0, 1200, true, 3000);
        assert_eq!(&buf[12..17], &[0x80, 0x80, 0x80, 0x01, 0x01]);
        mark_keyframe(&mut buf[..n]);
        assert_eq!(&buf[12..17], &[0x90, 0x80, 0x80, 0x01, 0x00]);
        assert_eq!(decode(&buf[..n], true).unwrap().counter, 1);
    }
}
