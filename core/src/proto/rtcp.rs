//! Zero-copy RTCP (RFC 3550, RFC 4585, RFC 5104, REMB, transport-cc) parsing and writing.
//!
//! [`RtcpIter`] walks a compound or reduced-size (RFC 5506) buffer and yields borrowed views;
//! the `write_*` functions serialize into caller buffers and return the length written, so
//! compound packets are built by writing one after another into the same buffer.

use std::ops::Range;
use std::slice::ChunksExact;
use thiserror::Error;

/// Sender report packet type.
pub const PT_SR: u8 = 200;
/// Receiver report packet type.
pub const PT_RR: u8 = 201;
/// Source description packet type.
pub const PT_SDES: u8 = 202;
/// Goodbye packet type.
pub const PT_BYE: u8 = 203;
/// Application-defined packet type.
pub const PT_APP: u8 = 204;
/// Transport-layer feedback (RFC 4585) packet type.
pub const PT_RTPFB: u8 = 205;
/// Payload-specific feedback (RFC 4585) packet type.
pub const PT_PSFB: u8 = 206;

const REPORT_BLOCK_LEN: usize = 24;

/// Why an RTCP packet could not be parsed or written.
#[derive(Debug, Error, Clone, Copy, PartialEq, Eq)]
pub enum RtcpError {
    /// Fewer than 4 bytes where a packet header should be.
    #[error("RTCP header truncated")]
    TooShort,
    /// Version field is not 2.
    #[error("unsupported RTCP version {0}")]
    BadVersion(u8),
    /// The length field points past the end of the buffer.
    #[error("RTCP length field exceeds the buffer")]
    LengthOverrun,
    /// Padding count is zero or larger than the packet body.
    #[error("invalid RTCP padding")]
    BadPadding,
    /// The body is too short for what its type and count announce.
    #[error("malformed RTCP packet (pt {pt}, fmt {fmt})")]
    Malformed {
        /// Packet type.
        pt: u8,
        /// Count / feedback message type field.
        fmt: u8,
    },
    /// The destination buffer cannot hold the packet.
    #[error("destination buffer too small: need {needed} bytes, have {available}")]
    BufferTooSmall {
        /// Bytes the packet needs.
        needed: usize,
        /// Bytes the buffer has.
        available: usize,
    },
    /// More items than the packet format can carry (e.g. > 31 report blocks).
    #[error("too many items for one RTCP packet")]
    TooManyItems,
    /// Not a feedback packet (RTPFB/PSFB) where one was required.
    #[error("not an RTCP feedback packet")]
    NotFeedback,
}

/// True if a demultiplexed RTP/RTCP datagram is RTCP (RFC 5761 §4: second byte 192..=223 with
/// an RTP-range first byte).
pub fn is_rtcp(buf: &[u8]) -> bool {
    matches!(buf, [128..=191, 192..=223, ..])
}

/// One reception report block (RFC 3550 §6.4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ReportBlock {
    /// SSRC of the reported source.
    pub ssrc: u32,
    /// Fraction lost since the previous report, in 1/256.
    pub fraction_lost: u8,
    /// Cumulative number of packets lost (signed 24-bit on the wire).
    pub cumulative_lost: i32,
    /// Extended highest sequence number received.
    pub highest_seq: u32,
    /// Interarrival jitter in timestamp units.
    pub jitter: u32,
    /// Middle 32 bits of the NTP timestamp of the last SR received (LSR).
    pub lsr: u32,
    /// Delay since that SR, in 1/65536 s (DLSR).
    pub dlsr: u32,
}

impl ReportBlock {
    fn parse(b: &[u8]) -> ReportBlock {
        // Sign-extend the 24-bit cumulative loss.
        let lost = i32::from_be_bytes([b[5], b[6], b[7], 0]) >> 8;
        ReportBlock {
            ssrc: be32(b, 0),
            fraction_lost: b[4],
            cumulative_lost: lost,
            highest_seq: be32(b, 8),
            jitter: be32(b, 12),
            lsr: be32(b, 16),
            dlsr: be32(b, 20),
        }
    }

    fn write(&self, b: &mut [u8]) {
        b[0..4].copy_from_slice(&self.ssrc.to_be_bytes());
        b[4] = self.fraction_lost;
        let lost = self.cumulative_lost.clamp(-0x80_0000, 0x7f_ffff);
        b[5..8].copy_from_slice(&lost.to_be_bytes()[1..]);
        b[8..12].copy_from_slice(&self.highest_seq.to_be_bytes());
        b[12..16].copy_from_slice(&self.jitter.to_be_bytes());
        b[16..20].copy_from_slice(&self.lsr.to_be_bytes());
        b[20..24].copy_from_slice(&self.dlsr.to_be_bytes());
    }
}

/// Round-trip time from a report block about a stream we send (RFC 3550 §6.4.1): the time now
/// minus LSR minus DLSR, all as the middle 32 bits of NTP time (1/65536 s). None when the peer has
/// not received a sender report yet (LSR 0) or the result is not a plausible RTT (clock skew, a
/// stale block): over 60 s, or now earlier than LSR + DLSR by more than a rounding unit.
pub fn rtt_from_report(now_ntp_middle: u32, lsr: u32, dlsr: u32) -> Option<std::time::Duration> {
    if lsr == 0 {
        return None;
    }
    // Wrapping: the middle 32 bits roll over every ~18 hours.
    let rtt = now_ntp_middle.wrapping_sub(lsr).wrapping_sub(dlsr);
    if rtt > 60 << 16 {
        return None;
    }
    Some(std::time::Duration::from_micros(
        (u64::from(rtt) * 1_000_000) >> 16,
    ))
}

/// Iterator over the report blocks of an SR or RR.
#[derive(Debug, Clone)]
pub struct ReportBlocks<'a>(ChunksExact<'a, u8>);

impl Iterator for ReportBlocks<'_> {
    type Item = ReportBlock;
    fn next(&mut self) -> Option<ReportBlock> {
        self.0.next().map(ReportBlock::parse)
    }
    fn size_hint(&self) -> (usize, Option<usize>) {
        self.0.size_hint()
    }
}
impl ExactSizeIterator for ReportBlocks<'_> {}

/// Iterator over a list of 32-bit SSRCs.
#[derive(Debug, Clone)]
pub struct SsrcIter<'a>(ChunksExact<'a, u8>);

impl Iterator for SsrcIter<'_> {
    type Item = u32;
    fn next(&mut self) -> Option<u32> {
        self.0.next().map(|c| be32(c, 0))
    }
    fn size_hint(&self) -> (usize, Option<usize>) {
        self.0.size_hint()
    }
}
impl ExactSizeIterator for SsrcIter<'_> {}

/// Sender information of an SR (RFC 3550 §6.4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SenderInfo {
    /// SSRC of the sender.
    pub ssrc: u32,
    /// NTP timestamp, integer seconds.
    pub ntp_sec: u32,
    /// NTP timestamp, fraction.
    pub ntp_frac: u32,
    /// RTP timestamp matching the NTP time.
    pub rtp_ts: u32,
    /// Packets sent.
    pub packet_count: u32,
    /// Payload octets sent.
    pub octet_count: u32,
}

impl SenderInfo {
    /// The middle 32 bits of the NTP timestamp, as echoed in LSR.
    pub fn ntp_middle(&self) -> u32 {
        (self.ntp_sec << 16) | (self.ntp_frac >> 16)
    }
}

/// One NACK FCI item: a packet id and a bitmask of the 16 following losses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NackItem {
    /// First lost sequence number.
    pub pid: u16,
    /// Bit i set: `pid + i + 1` is lost too.
    pub blp: u16,
}

impl NackItem {
    /// All sequence numbers this item reports lost, ascending (mod 2^16).
    pub fn lost_seqs(self) -> impl Iterator<Item = u16> {
        std::iter::once(self.pid).chain(
            (0..16u16)
                .filter(move |i| self.blp & (1 << i) != 0)
                .map(move |i| self.pid.wrapping_add(i + 1)),
        )
    }
}

/// Iterator over NACK FCI items.
#[derive(Debug, Clone)]
pub struct NackItems<'a>(ChunksExact<'a, u8>);

impl Iterator for NackItems<'_> {
    type Item = NackItem;
    fn next(&mut self) -> Option<NackItem> {
        self.0.next().map(|c| NackItem {
            pid: u16::from_be_bytes([c[0], c[1]]),
            blp: u16::from_be_bytes([c[2], c[3]]),
        })
    }
}

impl<'a> NackItems<'a> {
    /// Every sequence number reported lost, in packet order.
    pub fn lost_seqs(self) -> impl Iterator<Item = u16> + 'a {
        self.flat_map(NackItem::lost_seqs)
    }
}

/// One FIR FCI entry (RFC 5104 §4.3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FirEntry {
    /// SSRC of the media source asked for a key frame.
    pub ssrc: u32,
    /// Command sequence number.
    pub seq_nr: u8,
}

/// Iterator over FIR entries.
#[derive(Debug, Clone)]
pub struct FirEntries<'a>(ChunksExact<'a, u8>);

impl Iterator for FirEntries<'_> {
    type Item = FirEntry;
    fn next(&mut self) -> Option<FirEntry> {
        self.0.next().map(|c| FirEntry {
            ssrc: be32(c, 0),
            seq_nr: c[4],
        })
    }
}

/// A parsed RTCP packet borrowing from the buffer.
#[derive(Debug, Clone)]
pub enum RtcpPacket<'a> {
    /// Sender report.
    SenderReport {
        /// Sender information.
        info: SenderInfo,
        /// Reception report blocks.
        reports: ReportBlocks<'a>,
    },
    /// Receiver report.
    ReceiverReport {
        /// SSRC of the report sender.
        ssrc: u32,
        /// Reception report blocks.
        reports: ReportBlocks<'a>,
    },
    /// Source description; the chunks are left raw.
    Sdes {
        /// Number of chunks (SC field).
        count: u8,
        /// The chunk bytes.
        chunks: &'a [u8],
    },
    /// Goodbye.
    Bye {
        /// SSRCs leaving.
        ssrcs: SsrcIter<'a>,
    },
    /// Generic NACK (RTPFB fmt 1).
    Nack {
        /// SSRC of the feedback sender.
        sender_ssrc: u32,
        /// SSRC of the media the NACK is about.
        media_ssrc: u32,
        /// FCI items.
        items: NackItems<'a>,
    },
    /// Picture loss indication (PSFB fmt 1).
    Pli {
        /// SSRC of the feedback sender.
        sender_ssrc: u32,
        /// SSRC of the media source.
        media_ssrc: u32,
    },
    /// Full intra request (PSFB fmt 4).
    Fir {
        /// SSRC of the feedback sender.
        sender_ssrc: u32,
        /// Media source field of the header (0 per RFC 5104).
        media_ssrc: u32,
        /// Requested sources.
        entries: FirEntries<'a>,
    },
    /// Receiver estimated maximum bitrate (PSFB fmt 15, "REMB").
    Remb {
        /// SSRC of the feedback sender.
        sender_ssrc: u32,
        /// Estimated bitrate in bits per second (saturating).
        bitrate_bps: u64,
        /// SSRCs the estimate applies to.
        ssrcs: SsrcIter<'a>,
    },
    /// Transport-wide congestion control feedback (RTPFB fmt 15); FCI left raw.
    TransportCc {
        /// SSRC of the feedback sender.
        sender_ssrc: u32,
        /// SSRC of the media source field.
        media_ssrc: u32,
        /// The FCI bytes.
        fci: &'a [u8],
    },
    /// APP or any packet type / feedback format not decoded above.
    Other {
        /// Packet type.
        pt: u8,
        /// Count / format field.
        fmt: u8,
        /// Body after the 4-byte header, padding removed.
        body: &'a [u8],
    },
}

/// Iterator over the packets of a compound (or reduced-size) RTCP buffer.
///
/// A packet with a bad body yields an error and iteration continues with the next one; a bad
/// header (version, length) yields an error and ends iteration, since nothing after it can be
/// framed.
#[derive(Debug, Clone)]
pub struct RtcpIter<'a> {
    buf: &'a [u8],
    pos: usize,
    last: Range<usize>,
}

impl<'a> RtcpIter<'a> {
    /// Iterates the RTCP packets in `buf`.
    pub fn new(buf: &'a [u8]) -> Self {
        RtcpIter {
            buf,
            pos: 0,
            last: 0..0,
        }
    }

    /// Byte range in the buffer of the packet most recently yielded (for in-place rewrites).
    pub fn last_range(&self) -> Range<usize> {
        self.last.clone()
    }

    fn fail(&mut self, e: RtcpError) -> Option<Result<RtcpPacket<'a>, RtcpError>> {
        self.pos = self.buf.len();
        Some(Err(e))
    }
}

impl<'a> Iterator for RtcpIter<'a> {
    type Item = Result<RtcpPacket<'a>, RtcpError>;

    fn next(&mut self) -> Option<Self::Item> {
        let rest = self.buf.get(self.pos..).filter(|r| !r.is_empty())?;
        let Some(h) = rest.get(..4) else {
            return self.fail(RtcpError::TooShort);
        };
        if h[0] >> 6 != 2 {
            return self.fail(RtcpError::BadVersion(h[0] >> 6));
        }
        let len = 4 * (u16::from_be_bytes([h[2], h[3]]) as usize + 1);
        let Some(packet) = rest.get(..len) else {
            return self.fail(RtcpError::LengthOverrun);
        };
        self.last = self.pos..self.pos + len;
        self.pos += len;
        Some(parse_packet(packet))
    }
}

/// Parses one RTCP packet occupying all of `packet` (header included).
pub fn parse_packet(packet: &[u8]) -> Result<RtcpPacket<'_>, RtcpError> {
    let h = packet.get(..4).ok_or(RtcpError::TooShort)?;
    let (fmt, pt) = (h[0] & 0x1f, h[1]);
    let mut body = &packet[4..];
    if h[0] & 0x20 != 0 {
        let pad = *body.last().ok_or(RtcpError::BadPadding)? as usize;
        if pad == 0 || pad > body.len() {
            return Err(RtcpError::BadPadding);
        }
        body = &body[..body.len() - pad];
    }
    let bad = RtcpError::Malformed { pt, fmt };
    let need = |n: usize| if body.len() < n { Err(bad) } else { Ok(()) };
    let blocks = |at: usize| {
        ReportBlocks(body[at..at + fmt as usize * REPORT_BLOCK_LEN].chunks_exact(REPORT_BLOCK_LEN))
    };
    Ok(match (pt, fmt) {
        (PT_SR, _) => {
            need(24 + fmt as usize * REPORT_BLOCK_LEN)?;
            RtcpPacket::SenderReport {
                info: SenderInfo {
                    ssrc: be32(body, 0),
                    ntp_sec: be32(body, 4),
                    ntp_frac: be32(body, 8),
                    rtp_ts: be32(body, 12),
                    packet_count: be32(body, 16),
                    octet_count: be32(body, 20),
                },
                reports: blocks(24),
            }
        }
        (PT_RR, _) => {
            need(4 + fmt as usize * REPORT_BLOCK_LEN)?;
            RtcpPacket::ReceiverReport {
                ssrc: be32(body, 0),
                reports: blocks(4),
            }
        }
        (PT_SDES, _) => RtcpPacket::Sdes {
            count: fmt,
            chunks: body,
        },
        (PT_BYE, _) => {
            need(4 * fmt as usize)?;
            RtcpPacket::Bye {
                ssrcs: SsrcIter(body[..4 * fmt as usize].chunks_exact(4)),
            }
        }
        (PT_RTPFB | PT_PSFB, _) => {
            need(8)?;
            let (sender_ssrc, media_ssrc, fci) = (be32(body, 0), be32(body, 4), &body[8..]);
            match (pt, fmt) {
                (PT_RTPFB, 1) => RtcpPacket::Nack {
                    sender_ssrc,
                    media_ssrc,
                    items: NackItems(fci.chunks_exact(4)),
                },
                (PT_RTPFB, 15) => RtcpPacket::TransportCc {
                    sender_ssrc,
                    media_ssrc,
                    fci,
                },
                (PT_PSFB, 1) => RtcpPacket::Pli {
                    sender_ssrc,
                    media_ssrc,
                },
                (PT_PSFB, 4) => RtcpPacket::Fir {
                    sender_ssrc,
                    media_ssrc,
                    entries: FirEntries(fci.chunks_exact(8)),
                },
                (PT_PSFB, 15) if fci.starts_with(b"REMB") => {
                    need(16)?;
                    let n = fci[4] as usize;
                    let ssrcs = fci.get(8..8 + 4 * n).ok_or(bad)?;
                    let exp = u32::from(fci[5] >> 2);
                    let mantissa = u64::from(be32(fci, 4) & 0x3_ffff);
                    // exp can reach 63: saturate rather than overflow.
                    let bitrate_bps = match mantissa.checked_shl(exp) {
                        Some(v) if v >> exp == mantissa => v,
                        _ => u64::MAX,
                    };
                    RtcpPacket::Remb {
                        sender_ssrc,
                        bitrate_bps,
                        ssrcs: SsrcIter(ssrcs.chunks_exact(4)),
                    }
                }
                _ => RtcpPacket::Other { pt, fmt, body },
            }
        }
        _ => RtcpPacket::Other { pt, fmt, body },
    })
}

/// The first CNAME item of the SDES `chunks` (from [`RtcpPacket::Sdes`]): `(ssrc, cname)`.
pub fn sdes_cname(chunks: &[u8]) -> Option<(u32, &[u8])> {
    let mut pos = 0;
    while let Some(ssrc) = chunks.get(pos..pos + 4) {
        let ssrc = be32(ssrc, 0);
        pos += 4;
        // Items until a null type octet, then padding to the next word.
        loop {
            let kind = *chunks.get(pos)?;
            if kind == 0 {
                pos = (pos + 4) & !3;
                break;
            }
            let len = *chunks.get(pos + 1)? as usize;
            let text = chunks.get(pos + 2..pos + 2 + len)?;
            if kind == 1 {
                return Some((ssrc, text));
            }
            pos += 2 + len;
        }
    }
    None
}

fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// Checks room and writes the common header; `len` is the whole packet length (multiple of 4).
fn header(buf: &mut [u8], fmt: u8, pt: u8, len: usize) -> Result<(), RtcpError> {
    if buf.len() < len {
        return Err(RtcpError::BufferTooSmall {
            needed: len,
            available: buf.len(),
        });
    }
    buf[0] = 0x80 | (fmt & 0x1f);
    buf[1] = pt;
    buf[2..4].copy_from_slice(&((len / 4 - 1) as u16).to_be_bytes());
    Ok(())
}

/// Writes a receiver report; returns its length.
pub fn write_rr(buf: &mut [u8], ssrc: u32, blocks: &[ReportBlock]) -> Result<usize, RtcpError> {
    if blocks.len() > 31 {
        return Err(RtcpError::TooManyItems);
    }
    let len = 8 + blocks.len() * REPORT_BLOCK_LEN;
    header(buf, blocks.len() as u8, PT_RR, len)?;
    buf[4..8].copy_from_slice(&ssrc.to_be_bytes());
    for (b, out) in blocks
        .iter()
        .zip(buf[8..len].chunks_exact_mut(REPORT_BLOCK_LEN))
    {
        b.write(out);
    }
    Ok(len)
}

/// Writes a sender report; returns its length.
pub fn write_sr(
    buf: &mut [u8],
    info: &SenderInfo,
    blocks: &[ReportBlock],
) -> Result<usize, RtcpError> {
    if blocks.len() > 31 {
        return Err(RtcpError::TooManyItems);
    }
    let len = 28 + blocks.len() * REPORT_BLOCK_LEN;
    header(buf, blocks.len() as u8, PT_SR, len)?;
    let fields = [
        info.ssrc,
        info.ntp_sec,
        info.ntp_frac,
        info.rtp_ts,
        info.packet_count,
        info.octet_count,
    ];
    for (v, out) in fields.iter().zip(buf[4..28].chunks_exact_mut(4)) {
        out.copy_from_slice(&v.to_be_bytes());
    }
    for (b, out) in blocks
        .iter()
        .zip(buf[28..len].chunks_exact_mut(REPORT_BLOCK_LEN))
    {
        b.write(out);
    }
    Ok(len)
}

/// Writes an SDES packet with one chunk holding one CNAME item; returns its length.
pub fn write_sdes_cname(buf: &mut [u8], ssrc: u32, cname: &[u8]) -> Result<usize, RtcpError> {
    if cname.len() > 255 {
        return Err(RtcpError::TooManyItems);
    }
    // ssrc + type + len + text, then at least one null octet ending the item list, to a word.
    let chunk = (4 + 2 + cname.len() + 1).div_ceil(4) * 4;
    let len = 4 + chunk;
    header(buf, 1, PT_SDES, len)?;
    buf[4..8].copy_from_slice(&ssrc.to_be_bytes());
    buf[8] = 1; // CNAME
    buf[9] = cname.len() as u8;
    buf[10..10 + cname.len()].copy_from_slice(cname);
    buf[10 + cname.len()..len].fill(0);
    Ok(len)
}

/// Writes a BYE for `ssrcs` (no reason); returns its length.
pub fn write_bye(buf: &mut [u8], ssrcs: &[u32]) -> Result<usize, RtcpError> {
    if ssrcs.len() > 31 {
        return Err(RtcpError::TooManyItems);
    }
    let len = 4 + 4 * ssrcs.len();
    header(buf, ssrcs.len() as u8, PT_BYE, len)?;
    for (s, out) in ssrcs.iter().zip(buf[4..len].chunks_exact_mut(4)) {
        out.copy_from_slice(&s.to_be_bytes());
    }
    Ok(len)
}

/// Packs `seqs` into NACK items: a sequence within 16 after the current item's pid sets a bit,
/// anything else starts a new item. Ascending input (mod 2^16) packs tightest.
fn nack_items(seqs: &[u16]) -> impl Iterator<Item = NackItem> + '_ {
    let mut i = 0;
    std::iter::from_fn(move || {
        let pid = *seqs.get(i)?;
        let mut blp = 0u16;
        i += 1;
        while let Some(&s) = seqs.get(i) {
            let d = s.wrapping_sub(pid);
            if !(1..=16).contains(&d) {
                break;
            }
            blp |= 1 << (d - 1);
            i += 1;
        }
        Some(NackItem { pid, blp })
    })
}

/// Writes a generic NACK for the lost `seqs`; returns its length.
pub fn write_nack(
    buf: &mut [u8],
    sender_ssrc: u32,
    media_ssrc: u32,
    seqs: &[u16],
) -> Result<usize, RtcpError> {
    let n = nack_items(seqs).count();
    if n == 0 {
        return Err(RtcpError::TooManyItems);
    }
    let len = 12 + 4 * n;
    if len > 4 * 65536 {
        return Err(RtcpError::TooManyItems);
    }
    header(buf, 1, PT_RTPFB, len)?;
    buf[4..8].copy_from_slice(&sender_ssrc.to_be_bytes());
    buf[8..12].copy_from_slice(&media_ssrc.to_be_bytes());
    for (item, out) in nack_items(seqs).zip(buf[12..len].chunks_exact_mut(4)) {
        out[..2].copy_from_slice(&item.pid.to_be_bytes());
        out[2..].copy_from_slice(&item.blp.to_be_bytes());
    }
    Ok(len)
}

/// Writes a PLI; returns its length (12).
pub fn write_pli(buf: &mut [u8], sender_ssrc: u32, media_ssrc: u32) -> Result<usize, RtcpError> {
    header(buf, 1, PT_PSFB, 12)?;
    buf[4..8].copy_from_slice(&sender_ssrc.to_be_bytes());
    buf[8..12].copy_from_slice(&media_ssrc.to_be_bytes());
    Ok(12)
}

/// Writes a FIR asking `media_ssrc` for a key frame with command number `seq_nr`; returns its
/// length (20). The header's media field is 0 as RFC 5104 §4.3.1 requires.
pub fn write_fir(
    buf: &mut [u8],
    sender_ssrc: u32,
    media_ssrc: u32,
    seq_nr: u8,
) -> Result<usize, RtcpError> {
    header(buf, 4, PT_PSFB, 20)?;
    buf[4..8].copy_from_slice(&sender_ssrc.to_be_bytes());
    buf[8..12].fill(0);
    buf[12..16].copy_from_slice(&media_ssrc.to_be_bytes());
    buf[16] = seq_nr;
    buf[17..20].fill(0);
    Ok(20)
}

/// Writes a REMB; returns its length. The bitrate is encoded as an 18-bit mantissa and a 6-bit
/// exponent, rounding down.
pub fn write_remb(
    buf: &mut [u8],
    sender_ssrc: u32,
    bitrate_bps: u64,
    ssrcs: &[u32],
) -> Result<usize, RtcpError> {
    if ssrcs.len() > 255 {
        return Err(RtcpError::TooManyItems);
    }
    let len = 20 + 4 * ssrcs.len();
    header(buf, 15, PT_PSFB, len)?;
    let exp = (64 - bitrate_bps.leading_zeros()).saturating_sub(18);
    let mantissa = (bitrate_bps >> exp) as u32;
    buf[4..8].copy_from_slice(&sender_ssrc.to_be_bytes());
    buf[8..12].fill(0);
    buf[12..16].copy_from_slice(b"REMB");
    buf[16] = ssrcs.len() as u8;
    buf[17] = ((exp as u8) << 2) | (mantissa >> 16) as u8;
    buf[18..20].copy_from_slice(&(mantissa as u16).to_be_bytes());
    for (s, out) in ssrcs.iter().zip(buf[20..len].chunks_exact_mut(4)) {
        out.copy_from_slice(&s.to_be_bytes());
    }
    Ok(len)
}

/// Rewrites the SSRCs of one RTPFB/PSFB packet in place: the sender field becomes
/// `sender_ssrc` and the media source becomes `media_ssrc` (for FIR, every FCI entry's SSRC,
/// since its header media field stays 0). This is how the SFU turns a consumer's NACK/PLI/FIR
/// into one addressed to the producer's stream.
pub fn rewrite_feedback_ssrcs(
    packet: &mut [u8],
    sender_ssrc: u32,
    media_ssrc: u32,
) -> Result<(), RtcpError> {
    let (fmt, pt) = match packet {
        [b0, pt @ (PT_RTPFB | PT_PSFB), ..] => (*b0 & 0x1f, *pt),
        _ => return Err(RtcpError::NotFeedback),
    };
    if packet.len() < 12 {
        return Err(RtcpError::Malformed { pt, fmt });
    }
    packet[4..8].copy_from_slice(&sender_ssrc.to_be_bytes());
    if (pt, fmt) == (PT_PSFB, 4) {
        for entry in packet[12..].chunks_exact_mut(8) {
            entry[..4].copy_from_slice(&media_ssrc.to_be_bytes());
        }
    } else {
        packet[8..12].copy_from_slice(&media_ssrc.to_be_bytes());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use rtcp::goodbye::Goodbye;
    use rtcp::payload_feedbacks::full_intra_request::{self as fir, FullIntraRequest};
    use rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
    use rtcp::payload_feedbacks::receiver_estimated_maximum_bitrate::ReceiverEstimatedMaximumBitrate;
    use rtcp::receiver_report::ReceiverReport;
    use rtcp::reception_report::ReceptionReport;
    use rtcp::sender_report::SenderReport;
    use rtcp::source_description::{
        SdesType, SourceDescription, SourceDescriptionChunk, SourceDescriptionItem,
    };
    use rtcp::transport_feedbacks::transport_layer_cc::TransportLayerCc;
    use rtcp::transport_feedbacks::transport_layer_nack::{NackPair, TransportLayerNack};
    use webrtc_util::{Marshal, Unmarshal};

    fn ref_block(i: u32) -> ReceptionReport {
        ReceptionReport {
            ssrc: 0x1000 + i,
            fraction_lost: 3 + i as u8,
            total_lost: 1000 + i,
            last_sequence_number: 0x0001_fff0 + i,
            jitter: 77 + i,
            last_sender_report: 0xabcd_0000 + i,
            delay: 0x0002_8000 + i,
        }
    }

    fn our_block(r: &ReceptionReport) -> ReportBlock {
        ReportBlock {
            ssrc: r.ssrc,
            fraction_lost: r.fraction_lost,
            cumulative_lost: r.total_lost as i32,
            highest_seq: r.last_sequence_number,
            jitter: r.jitter,
            lsr: r.last_sender_report,
            dlsr: r.delay,
        }
    }

    fn one(buf: &[u8]) -> RtcpPacket<'_> {
        let mut it = RtcpIter::new(buf);
        let p = it.next().unwrap().unwrap();
        assert!(it.next().is_none());
        p
    }

    #[test]
    fn is_rtcp_rfc5761() {
        assert!(is_rtcp(&[0x80, 200]));
        assert!(is_rtcp(&[0x81, 223]));
        assert!(!is_rtcp(&[0x80, 96]));
        assert!(!is_rtcp(&[0x80, 224]));
        assert!(!is_rtcp(&[0x16, 200])); // DTLS
        assert!(!is_rtcp(&[0x80]));
    }

    #[test]
    fn receiver_report_both_ways() {
        let rr = ReceiverReport {
            ssrc: 0xdead,
            reports: vec![ref_block(0), ref_block(1)],
            profile_extensions: Bytes::new(),
        };
        let raw = rr.marshal().unwrap();
        let RtcpPacket::ReceiverReport { ssrc, reports } = one(&raw) else {
            panic!("not RR")
        };
        assert_eq!(ssrc, 0xdead);
        let ours: Vec<ReportBlock> = reports.collect();
        assert_eq!(ours, rr.reports.iter().map(our_block).collect::<Vec<_>>());

        let mut buf = [0u8; 200];
        let n = write_rr(&mut buf, 0xdead, &ours).unwrap();
        assert_eq!(&buf[..n], &raw[..]);
        let back = ReceiverReport::unmarshal(&mut &buf[..n]).unwrap();
        assert_eq!(back, rr);
    }

    #[test]
    fn negative_cumulative_loss_round_trips() {
        let b = ReportBlock {
            cumulative_lost: -5,
            ..Default::default()
        };
        let mut buf = [0u8; 64];
        let n = write_rr(&mut buf, 1, &[b]).unwrap();
        let RtcpPacket::ReceiverReport { mut reports, .. } = one(&buf[..n]) else {
            panic!()
        };
        assert_eq!(reports.next().unwrap().cumulative_lost, -5);
    }

    #[test]
    fn sender_report_both_ways() {
        let sr = SenderReport {
            ssrc: 0x0102_0304,
            ntp_time: 0xe000_0001_8000_0000,
            rtp_time: 90_000,
            packet_count: 12,
            octet_count: 3456,
            reports: vec![ref_block(5)],
            profile_extensions: Bytes::new(),
        };
        let raw = sr.marshal().unwrap();
        let RtcpPacket::SenderReport { info, reports } = one(&raw) else {
            panic!("not SR")
        };
        assert_eq!(info.ssrc, sr.ssrc);
        assert_eq!(
            ((info.ntp_sec as u64) << 32) | info.ntp_frac as u64,
            sr.ntp_time
        );
        assert_eq!(info.ntp_middle(), 0x0001_8000);
        assert_eq!(
            (info.rtp_ts, info.packet_count, info.octet_count),
            (90_000, 12, 3456)
        );
        let blocks: Vec<ReportBlock> = reports.collect();
        let mut buf = [0u8; 200];
        let n = write_sr(&mut buf, &info, &blocks).unwrap();
        assert_eq!(SenderReport::unmarshal(&mut &buf[..n]).unwrap(), sr);
    }

    #[test]
    fn sdes_and_bye() {
        let mut buf = [0u8; 100];
        for cname in [&b""[..], b"a", b"ab", b"abcdefgh-cname"] {
            let n = write_sdes_cname(&mut buf, 77, cname).unwrap();
            let sdes = SourceDescription::unmarshal(&mut &buf[..n]).unwrap();
            assert_eq!(
                sdes.chunks,
                vec![SourceDescriptionChunk {
                    source: 77,
                    items: vec![SourceDescriptionItem {
                        sdes_type: SdesType::SdesCname,
                        text: Bytes::copy_from_slice(cname),
                    }],
                }]
            );
            let RtcpPacket::Sdes { count, chunks } = one(&buf[..n]) else {
                panic!()
            };
            assert_eq!((count, chunks.len()), (1, n - 4));
            assert_eq!(sdes_cname(chunks), Some((77, cname)));
        }
        let two = SourceDescription {
            chunks: vec![
                SourceDescriptionChunk {
                    source: 1,
                    items: vec![SourceDescriptionItem {
                        sdes_type: SdesType::SdesTool,
                        text: Bytes::from_static(b"tool"),
                    }],
                },
                SourceDescriptionChunk {
                    source: 2,
                    items: vec![
                        SourceDescriptionItem {
                            sdes_type: SdesType::SdesNote,
                            text: Bytes::from_static(b"n"),
                        },
                        SourceDescriptionItem {
                            sdes_type: SdesType::SdesCname,
                            text: Bytes::from_static(b"the-cname"),
                        },
                    ],
                },
            ],
        }
        .marshal()
        .unwrap();
        let RtcpPacket::Sdes { count: 2, chunks } = one(&two) else {
            panic!()
        };
        assert_eq!(sdes_cname(chunks), Some((2, &b"the-cname"[..])));
        assert_eq!(sdes_cname(&chunks[..chunks.len() - 8]), None);
        let raw = Goodbye {
            sources: vec![1, 2, 3],
            reason: Bytes::from_static(b"bye"),
        }
        .marshal()
        .unwrap();
        let RtcpPacket::Bye { ssrcs } = one(&raw) else {
            panic!()
        };
        assert_eq!(ssrcs.collect::<Vec<_>>(), vec![1, 2, 3]);
        let n = write_bye(&mut buf, &[9, 8]).unwrap();
        assert_eq!(
            Goodbye::unmarshal(&mut &buf[..n]).unwrap().sources,
            vec![9, 8]
        );
    }

    #[test]
    fn nack_both_ways() {
        let nack = TransportLayerNack {
            sender_ssrc: 5,
            media_ssrc: 6,
            nacks: vec![
                NackPair {
                    packet_id: 65530,
                    lost_packets: 0b1000_0000_0000_0101,
                },
                NackPair {
                    packet_id: 100,
                    lost_packets: 0,
                },
            ],
        };
        let raw = nack.marshal().unwrap();
        let RtcpPacket::Nack {
            sender_ssrc,
            media_ssrc,
            items,
        } = one(&raw)
        else {
            panic!()
        };
        assert_eq!((sender_ssrc, media_ssrc), (5, 6));
        let ours: Vec<u16> = items.lost_seqs().collect();
        let theirs: Vec<u16> = nack.nacks.iter().flat_map(|p| p.packet_list()).collect();
        assert_eq!(ours, theirs);
        assert_eq!(ours, vec![65530, 65531, 65533, 10, 100]);

        let mut buf = [0u8; 100];
        let n = write_nack(&mut buf, 5, 6, &ours).unwrap();
        let back = TransportLayerNack::unmarshal(&mut &buf[..n]).unwrap();
        let back_seqs: Vec<u16> = back.nacks.iter().flat_map(|p| p.packet_list()).collect();
        assert_eq!(back_seqs, ours);
        assert_eq!(back.nacks.len(), 2);
        assert!(matches!(
            write_nack(&mut buf, 5, 6, &[]),
            Err(RtcpError::TooManyItems)
        ));
    }

    #[test]
    fn pli_fir_remb_tcc() {
        let mut buf = [0u8; 100];
        let pli = PictureLossIndication {
            sender_ssrc: 1,
            media_ssrc: 2,
        };
        let raw = pli.marshal().unwrap();
        assert!(matches!(
            one(&raw),
            RtcpPacket::Pli {
                sender_ssrc: 1,
                media_ssrc: 2
            }
        ));
        let n = write_pli(&mut buf, 1, 2).unwrap();
        assert_eq!(&buf[..n], &raw[..]);

        let f = FullIntraRequest {
            sender_ssrc: 1,
            media_ssrc: 0,
            fir: vec![fir::FirEntry {
                ssrc: 0x55,
                sequence_number: 9,
            }],
        };
        let raw = f.marshal().unwrap();
        let RtcpPacket::Fir {
            sender_ssrc,
            entries,
            ..
        } = one(&raw)
        else {
            panic!()
        };
        assert_eq!(sender_ssrc, 1);
        assert_eq!(
            entries.collect::<Vec<_>>(),
            vec![FirEntry {
                ssrc: 0x55,
                seq_nr: 9
            }]
        );
        let n = write_fir(&mut buf, 1, 0x55, 9).unwrap();
        assert_eq!(FullIntraRequest::unmarshal(&mut &buf[..n]).unwrap(), f);

        let remb = ReceiverEstimatedMaximumBitrate {
            sender_ssrc: 4,
            bitrate: 8_927_168.0,
            ssrcs: vec![0x11, 0x22],
        };
        let raw = remb.marshal().unwrap();
        let RtcpPacket::Remb {
            sender_ssrc,
            bitrate_bps,
            ssrcs,
        } = one(&raw)
        else {
            panic!()
        };
        assert_eq!((sender_ssrc, bitrate_bps), (4, 8_927_168));
        assert_eq!(ssrcs.collect::<Vec<_>>(), vec![0x11, 0x22]);
        let n = write_remb(&mut buf, 4, 8_927_168, &[0x11, 0x22]).unwrap();
        assert_eq!(&buf[..n], &raw[..]);
        let back = ReceiverEstimatedMaximumBitrate::unmarshal(&mut &buf[..n]).unwrap();
        assert_eq!(back.bitrate, 8_927_168.0);

        let tcc = TransportLayerCc {
            sender_ssrc: 7,
            media_ssrc: 8,
            base_sequence_number: 1,
            packet_status_count: 0,
            reference_time: 0,
            fb_pkt_count: 0,
            packet_chunks: vec![],
            recv_deltas: vec![],
        };
        let raw = tcc.marshal().unwrap();
        assert!(matches!(
            one(&raw),
            RtcpPacket::TransportCc {
                sender_ssrc: 7,
                media_ssrc: 8,
                ..
            }
        ));
    }

    #[test]
    fn compound_and_reference_unmarshal() {
        let mut buf = [0u8; 300];
        let mut n = write_rr(&mut buf, 1, &[our_block(&ref_block(0))]).unwrap();
        n += write_sdes_cname(&mut buf[n..], 1, b"cname").unwrap();
        n += write_nack(&mut buf[n..], 1, 2, &[10, 12]).unwrap();
        n += write_pli(&mut buf[n..], 1, 2).unwrap();
        n += write_remb(&mut buf[n..], 1, 500_000, &[2]).unwrap();
        let theirs = rtcp::packet::unmarshal(&mut &buf[..n]).unwrap();
        assert_eq!(theirs.len(), 5);
        let ours: Vec<_> = RtcpIter::new(&buf[..n]).map(|p| p.unwrap()).collect();
        assert!(matches!(ours[0], RtcpPacket::ReceiverReport { .. }));
        assert!(matches!(ours[1], RtcpPacket::Sdes { .. }));
        assert!(matches!(ours[2], RtcpPacket::Nack { .. }));
        assert!(matches!(ours[3], RtcpPacket::Pli { .. }));
        assert!(matches!(
            ours[4],
            RtcpPacket::Remb {
                bitrate_bps: 500_000,
                ..
            }
        ));
    }

    #[test]
    fn rewrite_ssrcs_in_place() {
        let mut buf = [0u8; 100];
        let mut n = write_pli(&mut buf, 1, 2).unwrap();
        n += write_fir(&mut buf[n..], 1, 2, 3).unwrap();
        let mut ranges = Vec::new();
        let mut it = RtcpIter::new(&buf[..n]);
        while it.next().is_some() {
            ranges.push(it.last_range());
        }
        for r in ranges {
            rewrite_feedback_ssrcs(&mut buf[r], 10, 20).unwrap();
        }
        let pli = PictureLossIndication::unmarshal(&mut &buf[..12]).unwrap();
        assert_eq!((pli.sender_ssrc, pli.media_ssrc), (10, 20));
        let f = FullIntraRequest::unmarshal(&mut &buf[12..n]).unwrap();
        assert_eq!((f.sender_ssrc, f.media_ssrc, f.fir[0].ssrc), (10, 0, 20));
        let mut rr = [0u8; 8];
        write_rr(&mut rr, 1, &[]).unwrap();
        assert_eq!(
            rewrite_feedback_ssrcs(&mut rr, 1, 2),
            Err(RtcpError::NotFeedback)
        );
    }

    #[test]
    fn malformed_packets_give_typed_errors() {
        let mut buf = [0u8; 64];
        let n = write_rr(&mut buf, 1, &[ReportBlock::default()]).unwrap();
        // Claim two report blocks while only one is present.
        buf[0] = 0x82;
        let mut it = RtcpIter::new(&buf[..n]);
        assert_eq!(
            it.next().unwrap().unwrap_err(),
            RtcpError::Malformed { pt: PT_RR, fmt: 2 }
        );
        assert!(it.next().is_none());
        assert_eq!(
            RtcpIter::new(&buf[..n - 4]).next().unwrap().unwrap_err(),
            RtcpError::LengthOverrun
        );
        assert_eq!(
            RtcpIter::new(&[0x40, 201, 0, 0])
                .next()
                .unwrap()
                .unwrap_err(),
            RtcpError::BadVersion(1)
        );
        assert_eq!(
            RtcpIter::new(&[0x80, 201]).next().unwrap().unwrap_err(),
            RtcpError::TooShort
        );
        // A bad body in the middle does not stop the following packets.
        let mut c = [0u8; 64];
        c[..4].copy_from_slice(&[0x81, PT_PSFB, 0, 0]); // PLI with no body
        let mut m = 4;
        m += write_pli(&mut c[m..], 3, 4).unwrap();
        let v: Vec<_> = RtcpIter::new(&c[..m]).collect();
        assert!(v[0].is_err());
        assert!(matches!(v[1], Ok(RtcpPacket::Pli { sender_ssrc: 3, .. })));
        assert!(matches!(
            write_pli(&mut c[..11], 1, 2),
            Err(RtcpError::BufferTooSmall {
                needed: 12,
                available: 11
            })
        ));
    }

    #[test]
    fn random_bytes_never_panic() {
        let mut x = 0x2545_f491_4f6c_dd1du64;
        let mut pkt = [0u8; 96];
        // How many packets of each kind parsed, and how many were refused: proof that the loop
        // reached the parsers' accepting paths and their error paths, not only early exits.
        let (mut sr, mut rr, mut fb, mut bye, mut other, mut errors) = (0, 0, 0, 0, 0, 0);
        let mut report_blocks = 0;
        for round in 0..30_000 {
            for b in pkt.iter_mut() {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                *b = x as u8;
            }
            pkt[0] = (pkt[0] & 0x3f) | 0x80;
            pkt[1] = 200 + (round % 8) as u8;
            pkt[2] = 0;
            pkt[3] %= 24;
            let len = (x >> 40) as usize % pkt.len();
            for p in RtcpIter::new(&pkt[..len]) {
                match p {
                    Ok(RtcpPacket::SenderReport { reports, .. }) => {
                        sr += 1;
                        report_blocks += reports.count();
                    }
                    Ok(RtcpPacket::ReceiverReport { reports, .. }) => {
                        rr += 1;
                        report_blocks += reports.count();
                    }
                    Ok(RtcpPacket::Nack { items, .. }) => {
                        fb += 1;
                        let _ = items.lost_seqs().count();
                    }
                    Ok(RtcpPacket::Fir { entries, .. }) => {
                        fb += 1;
                        let _ = entries.count();
                    }
                    Ok(RtcpPacket::Remb { ssrcs, .. }) => {
                        fb += 1;
                        let _ = ssrcs.count();
                    }
                    Ok(RtcpPacket::Bye { ssrcs }) => {
                        bye += 1;
                        let _ = ssrcs.count();
                    }
                    Ok(RtcpPacket::Pli { .. }) => fb += 1,
                    Ok(_) => other += 1,
                    Err(_) => errors += 1,
                }
            }
            let _ = sdes_cname(&pkt[..len]);
            let mut copy = pkt;
            let _ = rewrite_feedback_ssrcs(&mut copy[..len], 1, 2);
        }
        let counts = (sr, rr, fb, bye, other, errors, report_blocks);
        assert!(
            // Seen with this seed: (34, 55, 82, 288, 4674, 38974, 41).
            sr > 10
                && rr > 10
                && fb > 10
                && bye > 100
                && other > 100
                && errors > 1000
                && report_blocks > 10,
            "sr, rr, feedback, bye, other, errors, report blocks: {counts:?}"
        );
    }

    #[test]
    fn rtt_from_report_block() {
        // SR sent at NTP middle 0x0001_0000 (1 s); the peer held it 0.25 s; now 1.5 s → 250 ms.
        let rtt = rtt_from_report(0x0001_8000, 0x0001_0000, 0x0000_4000).unwrap();
        assert_eq!(rtt.as_millis(), 250);
        // No SR received by the peer yet.
        assert_eq!(rtt_from_report(0x0001_8000, 0, 0), None);
        // Now before LSR + DLSR (skew) or absurdly large: not an RTT.
        assert_eq!(rtt_from_report(0x0001_0000, 0x0001_0000, 0x0000_4000), None);
        assert_eq!(rtt_from_report(0x0100_0000, 0x0001_0000, 0), None);
        // Across the 32-bit wrap of the middle bits.
        let rtt = rtt_from_report(0x0000_1000, 0xffff_f000, 0).unwrap();
        assert_eq!(rtt.as_micros(), (0x2000u128 * 1_000_000) >> 16);
    }
}
