//! Zero-copy RTP (RFC 3550) parsing and rewriting.
//!
//! Everything here works on caller-owned byte slices: [`RtpHeader::parse`] only records offsets,
//! the setters patch fields in place, and [`write_forwarded`] is the single copy the forwarding
//! path makes per receiving consumer. Nothing allocates per packet.
//!
//! Header extensions follow RFC 8285 (one-byte `0xBEDE` and two-byte `0x100X` forms); RTX
//! follows RFC 4588.

use thiserror::Error;

/// Fixed RTP header length (no CSRCs, no extension).
pub const FIXED_HEADER_LEN: usize = 12;
/// Profile value of the RFC 8285 one-byte header extension form.
pub const ONE_BYTE_PROFILE: u16 = 0xBEDE;
/// Profile value of the RFC 8285 two-byte form (the low 4 "appbits" may be anything).
pub const TWO_BYTE_PROFILE: u16 = 0x1000;

/// Why a packet could not be parsed or written.
#[derive(Debug, Error, Clone, Copy, PartialEq, Eq)]
pub enum RtpError {
    /// Shorter than the 12-byte fixed header.
    #[error("packet shorter than the RTP fixed header")]
    TooShort,
    /// Version field is not 2.
    #[error("unsupported RTP version {0}")]
    BadVersion(u8),
    /// The CSRC list runs past the end of the packet.
    #[error("CSRC list truncated")]
    CsrcTruncated,
    /// The header extension runs past the end of the packet.
    #[error("header extension truncated")]
    ExtensionTruncated,
    /// Padding count is zero or larger than the payload.
    #[error("invalid padding length")]
    BadPadding,
    /// The destination buffer cannot hold the packet being written.
    #[error("destination buffer too small: need {needed} bytes, have {available}")]
    BufferTooSmall {
        /// Bytes the packet needs.
        needed: usize,
        /// Bytes the buffer has.
        available: usize,
    },
    /// An extension to write has an id or value length no RFC 8285 form can carry.
    #[error("header extension id {id} with a {len}-byte value cannot be encoded")]
    BadExtension {
        /// The extension id.
        id: u8,
        /// The value length.
        len: usize,
    },
    /// An RTX packet without the 2-byte original sequence number.
    #[error("RTX payload shorter than the original sequence number")]
    RtxTooShort,
    /// `len` passed with a buffer does not fit the buffer or the parsed header.
    #[error("packet length does not match the buffer")]
    BadLength,
}

/// Offsets and fields of a parsed RTP packet; the bytes stay in the caller's buffer.
///
/// Offsets are relative to the start of the buffer given to [`RtpHeader::parse`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtpHeader {
    /// P bit: the packet ends with padding (already excluded from `payload_len`).
    pub padding: bool,
    /// M bit.
    pub marker: bool,
    /// Payload type (7 bits).
    pub payload_type: u8,
    /// Sequence number.
    pub sequence: u16,
    /// RTP timestamp.
    pub timestamp: u32,
    /// Synchronization source.
    pub ssrc: u32,
    /// Number of CSRCs (0..=15); they start at byte 12.
    pub csrc_count: u8,
    /// X bit: a header extension is present.
    pub has_extension: bool,
    /// Extension profile (`0xBEDE`, `0x100X`, or other), 0 without extension.
    pub ext_profile: u16,
    /// Offset of the extension body (after its 4-byte profile/length word).
    pub ext_offset: usize,
    /// Length of the extension body in bytes (a multiple of 4).
    pub ext_len: usize,
    /// Offset of the payload.
    pub payload_offset: usize,
    /// Payload length, padding removed.
    pub payload_len: usize,
    /// Number of padding bytes at the end (0 without padding).
    pub padding_len: u8,
}

impl RtpHeader {
    /// Parses the header of the RTP packet occupying all of `buf`.
    pub fn parse(buf: &[u8]) -> Result<RtpHeader, RtpError> {
        if buf.len() < FIXED_HEADER_LEN {
            return Err(RtpError::TooShort);
        }
        let b0 = buf[0];
        let version = b0 >> 6;
        if version != 2 {
            return Err(RtpError::BadVersion(version));
        }
        let padding = b0 & 0x20 != 0;
        let has_extension = b0 & 0x10 != 0;
        let csrc_count = b0 & 0x0f;
        let mut offset = FIXED_HEADER_LEN + 4 * csrc_count as usize;
        if buf.len() < offset {
            return Err(RtpError::CsrcTruncated);
        }
        let (mut ext_profile, mut ext_offset, mut ext_len) = (0, 0, 0);
        if has_extension {
            let word = buf
                .get(offset..offset + 4)
                .ok_or(RtpError::ExtensionTruncated)?;
            ext_profile = u16::from_be_bytes([word[0], word[1]]);
            ext_len = 4 * u16::from_be_bytes([word[2], word[3]]) as usize;
            ext_offset = offset + 4;
            offset = ext_offset + ext_len;
            if buf.len() < offset {
                return Err(RtpError::ExtensionTruncated);
            }
        }
        let mut padding_len = 0u8;
        if padding {
            // The last octet counts the padding including itself, so 0 is invalid.
            padding_len = buf[buf.len() - 1];
            if padding_len == 0 || padding_len as usize > buf.len() - offset {
                return Err(RtpError::BadPadding);
            }
        }
        Ok(RtpHeader {
            padding,
            marker: buf[1] & 0x80 != 0,
            payload_type: buf[1] & 0x7f,
            sequence: u16::from_be_bytes([buf[2], buf[3]]),
            timestamp: u32::from_be_bytes([buf[4], buf[5], buf[6], buf[7]]),
            ssrc: u32::from_be_bytes([buf[8], buf[9], buf[10], buf[11]]),
            csrc_count,
            has_extension,
            ext_profile,
            ext_offset,
            ext_len,
            payload_offset: offset,
            payload_len: buf.len() - offset - padding_len as usize,
            padding_len,
        })
    }

    /// The `i`th CSRC, if present in `buf`.
    pub fn csrc(&self, buf: &[u8], i: usize) -> Option<u32> {
        if i >= self.csrc_count as usize {
            return None;
        }
        let at = FIXED_HEADER_LEN + 4 * i;
        let b = buf.get(at..at + 4)?;
        Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// The payload bytes (padding excluded); empty if `buf` is not the parsed packet.
    pub fn payload<'a>(&self, buf: &'a [u8]) -> &'a [u8] {
        buf.get(self.payload_offset..self.payload_offset + self.payload_len)
            .unwrap_or(&[])
    }

    /// Iterator over the RFC 8285 extensions of the packet in `buf`.
    pub fn extensions<'a>(&self, buf: &'a [u8]) -> ExtensionIter<'a> {
        let body = buf
            .get(self.ext_offset..self.ext_offset + self.ext_len)
            .filter(|_| self.has_extension)
            .unwrap_or(&[]);
        ExtensionIter::new(self.ext_profile, body)
    }
}

/// Writes `ssrc` into the packet in `buf`.
pub fn set_ssrc(buf: &mut [u8], ssrc: u32) -> Result<(), RtpError> {
    put(buf, 8, &ssrc.to_be_bytes())
}

/// Writes the 7-bit payload type, keeping the marker bit.
pub fn set_payload_type(buf: &mut [u8], pt: u8) -> Result<(), RtpError> {
    let b = buf.get_mut(1).ok_or(RtpError::TooShort)?;
    *b = (*b & 0x80) | (pt & 0x7f);
    header_len_ok(buf)
}

/// Writes the sequence number.
pub fn set_sequence(buf: &mut [u8], seq: u16) -> Result<(), RtpError> {
    put(buf, 2, &seq.to_be_bytes())
}

/// Writes the RTP timestamp.
pub fn set_timestamp(buf: &mut [u8], ts: u32) -> Result<(), RtpError> {
    put(buf, 4, &ts.to_be_bytes())
}

/// Sets or clears the marker bit.
pub fn set_marker(buf: &mut [u8], marker: bool) -> Result<(), RtpError> {
    let b = buf.get_mut(1).ok_or(RtpError::TooShort)?;
    *b = (*b & 0x7f) | if marker { 0x80 } else { 0 };
    header_len_ok(buf)
}

fn header_len_ok(buf: &[u8]) -> Result<(), RtpError> {
    if buf.len() < FIXED_HEADER_LEN {
        Err(RtpError::TooShort)
    } else {
        Ok(())
    }
}

fn put(buf: &mut [u8], at: usize, bytes: &[u8]) -> Result<(), RtpError> {
    header_len_ok(buf)?;
    buf.get_mut(at..at + bytes.len())
        .ok_or(RtpError::TooShort)?
        .copy_from_slice(bytes);
    Ok(())
}

/// Which RFC 8285 element layout an extension block uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ExtForm {
    OneByte,
    TwoByte,
    /// Not an RFC 8285 block: yields nothing.
    Opaque,
}

/// Iterator over `(id, value)` pairs of an RFC 8285 extension block.
///
/// Stops at the first malformed element (a truncated value) or at the one-byte reserved id 15,
/// as RFC 8285 §4.2 asks; non-RFC 8285 profiles yield nothing.
#[derive(Debug, Clone)]
pub struct ExtensionIter<'a> {
    form: ExtForm,
    body: &'a [u8],
    pos: usize,
}

impl<'a> ExtensionIter<'a> {
    /// Iterates the extension `body` (the bytes after the profile/length word) of `profile`.
    pub fn new(profile: u16, body: &'a [u8]) -> Self {
        let form = if profile == ONE_BYTE_PROFILE {
            ExtForm::OneByte
        } else if profile & 0xfff0 == TWO_BYTE_PROFILE {
            ExtForm::TwoByte
        } else {
            ExtForm::Opaque
        };
        ExtensionIter { form, body, pos: 0 }
    }
}

impl<'a> Iterator for ExtensionIter<'a> {
    type Item = (u8, &'a [u8]);

    fn next(&mut self) -> Option<(u8, &'a [u8])> {
        loop {
            let b = *self.body.get(self.pos)?;
            if b == 0 {
                // Padding byte between elements (both forms).
                self.pos += 1;
                continue;
            }
            let (id, len, start) = match self.form {
                ExtForm::Opaque => return None,
                ExtForm::OneByte => {
                    let id = b >> 4;
                    if id == 15 {
                        self.pos = self.body.len();
                        return None;
                    }
                    (id, (b & 0x0f) as usize + 1, self.pos + 1)
                }
                ExtForm::TwoByte => {
                    let len = *self.body.get(self.pos + 1)? as usize;
                    (b, len, self.pos + 2)
                }
            };
            let Some(value) = self.body.get(start..start + len) else {
                self.pos = self.body.len();
                return None;
            };
            self.pos = start + len;
            return Some((id, value));
        }
    }
}

/// The value of extension `id` in the packet `buf` parsed as `hdr`.
pub fn find_extension<'a>(buf: &'a [u8], hdr: &RtpHeader, id: u8) -> Option<&'a [u8]> {
    hdr.extensions(buf).find(|&(i, _)| i == id).map(|(_, v)| v)
}

/// Mutable access to the value of extension `id`, for fields the sending transport fills in
/// (abs-send-time, transport-wide sequence number) after [`write_forwarded`].
pub fn find_extension_mut<'a>(buf: &'a mut [u8], hdr: &RtpHeader, id: u8) -> Option<&'a mut [u8]> {
    let base = hdr.ext_offset;
    let body = buf
        .get(base..base + hdr.ext_len)
        .filter(|_| hdr.has_extension)?;
    // Locate the value by offset first so the shared borrow ends before the mutable one.
    let mut it = ExtensionIter::new(hdr.ext_profile, body);
    let (start, len) = loop {
        let (i, v) = it.next()?;
        if i == id {
            break (v.as_ptr() as usize - body.as_ptr() as usize, v.len());
        }
    };
    buf.get_mut(base + start..base + start + len)
}

/// How [`write_forwarded`] rewrites a packet for one consumer.
#[derive(Debug, Clone, Copy)]
pub struct Rewrite<'a> {
    /// Outgoing SSRC (the consumer's, or its RTX SSRC).
    pub ssrc: u32,
    /// Outgoing payload type (7 bits).
    pub payload_type: u8,
    /// Outgoing sequence number.
    pub sequence: u16,
    /// Outgoing RTP timestamp.
    pub timestamp: u32,
    /// Source extension id → outgoing id; 0 drops the extension.
    pub ext_map: &'a [u8; 256],
    /// Extension added or replaced with this value (the consumer's MID), by outgoing id.
    pub mid: Option<(u8, &'a [u8])>,
    /// Further extensions added or replaced, by outgoing id (e.g. placeholders the sending
    /// transport fills in later through [`find_extension_mut`]).
    pub extra: &'a [(u8, &'a [u8])],
    /// Build an RFC 4588 RTX packet: the payload is prefixed with this original sequence number.
    pub rtx_osn: Option<u16>,
}

/// Writes the packet `src` (parsed as `hdr`) into `dst` rewritten per `rw`; returns its length.
///
/// The marker bit and CSRCs are kept; extensions are re-encoded with mapped ids (one-byte form
/// when every id ≤ 14 and every value is 1..=16 bytes, else two-byte form); a non-RFC 8285
/// (opaque) extension block is dropped; padding is dropped.
/// Leaves `dst` unspecified on error.
pub fn write_forwarded(
    src: &[u8],
    hdr: &RtpHeader,
    dst: &mut [u8],
    rw: &Rewrite,
) -> Result<usize, RtpError> {
    let payload = src
        .get(hdr.payload_offset..hdr.payload_offset + hdr.payload_len)
        .ok_or(RtpError::BadLength)?;
    let csrc_end = FIXED_HEADER_LEN + 4 * hdr.csrc_count as usize;
    let csrcs = src
        .get(FIXED_HEADER_LEN..csrc_end)
        .ok_or(RtpError::BadLength)?;

    // Pass 1: pick the form and size, so the room check happens before any write.
    let mut one_byte = true;
    let mut ext_bytes = 0usize;
    let mut count = 0usize;
    for (id, value) in outgoing_extensions(src, hdr, rw) {
        if id == 0 || value.len() > 255 {
            return Err(RtpError::BadExtension {
                id,
                len: value.len(),
            });
        }
        one_byte &= id <= 14 && (1..=16).contains(&value.len());
        ext_bytes += value.len();
        count += 1;
    }
    let ext_block = if count == 0 {
        0
    } else {
        let elems = ext_bytes + count * if one_byte { 1 } else { 2 };
        4 + elems.div_ceil(4) * 4
    };
    let osn_len = if rw.rtx_osn.is_some() { 2 } else { 0 };
    let total = csrc_end + ext_block + osn_len + payload.len();
    if dst.len() < total {
        return Err(RtpError::BufferTooSmall {
            needed: total,
            available: dst.len(),
        });
    }

    // Pass 2: write. All slices below are in bounds because `total` fits.
    dst[0] = 0x80 | if ext_block > 0 { 0x10 } else { 0 } | hdr.csrc_count;
    dst[1] = if hdr.marker { 0x80 } else { 0 } | (rw.payload_type & 0x7f);
    dst[2..4].copy_from_slice(&rw.sequence.to_be_bytes());
    dst[4..8].copy_from_slice(&rw.timestamp.to_be_bytes());
    dst[8..12].copy_from_slice(&rw.ssrc.to_be_bytes());
    dst[FIXED_HEADER_LEN..csrc_end].copy_from_slice(csrcs);
    let mut pos = csrc_end;
    if ext_block > 0 {
        let profile = if one_byte {
            ONE_BYTE_PROFILE
        } else {
            TWO_BYTE_PROFILE
        };
        dst[pos..pos + 2].copy_from_slice(&profile.to_be_bytes());
        dst[pos + 2..pos + 4].copy_from_slice(&(((ext_block - 4) / 4) as u16).to_be_bytes());
        let end = pos + ext_block;
        pos += 4;
        for (id, value) in outgoing_extensions(src, hdr, rw) {
            if one_byte {
                dst[pos] = (id << 4) | (value.len() as u8 - 1);
                pos += 1;
            } else {
                dst[pos] = id;
                dst[pos + 1] = value.len() as u8;
                pos += 2;
            }
            dst[pos..pos + value.len()].copy_from_slice(value);
            pos += value.len();
        }
        dst[pos..end].fill(0);
        pos = end;
    }
    if let Some(osn) = rw.rtx_osn {
        dst[pos..pos + 2].copy_from_slice(&osn.to_be_bytes());
        pos += 2;
    }
    dst[pos..pos + payload.len()].copy_from_slice(payload);
    Ok(pos + payload.len())
}

/// The extensions `write_forwarded` emits: mapped source ones (minus those the rewrite
/// replaces), then the MID, then `extra`.
fn outgoing_extensions<'a>(
    src: &'a [u8],
    hdr: &RtpHeader,
    rw: &'a Rewrite<'a>,
) -> impl Iterator<Item = (u8, &'a [u8])> + 'a {
    let replaced = move |id: u8| {
        rw.mid.is_some_and(|(m, _)| m == id) || rw.extra.iter().any(|&(e, _)| e == id)
    };
    hdr.extensions(src)
        .filter_map(move |(id, v)| {
            let out = rw.ext_map[id as usize];
            (out != 0 && !replaced(out)).then_some((out, v))
        })
        .chain(rw.mid)
        .chain(rw.extra.iter().copied())
}

/// Turns the RTX packet in `buf[..len]` (parsed as `hdr`) back into the original packet in
/// place: the payload moves over the 2-byte OSN, the sequence number becomes the OSN, the payload
/// type becomes `original_pt` and padding is dropped. Returns `(new_len, original_seq)`; the
/// caller then sets the original SSRC with [`set_ssrc`].
pub fn rtx_decapsulate_in_place(
    buf: &mut [u8],
    len: usize,
    hdr: &RtpHeader,
    original_pt: u8,
) -> Result<(usize, u16), RtpError> {
    let start = hdr.payload_offset;
    let end = start + hdr.payload_len;
    if len > buf.len() || end > len {
        return Err(RtpError::BadLength);
    }
    if hdr.payload_len < 2 {
        return Err(RtpError::RtxTooShort);
    }
    let osn = u16::from_be_bytes([buf[start], buf[start + 1]]);
    buf.copy_within(start + 2..end, start);
    buf[0] &= !0x20;
    set_sequence(buf, osn)?;
    set_payload_type(buf, original_pt)?;
    Ok((end - 2, osn))
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use rtp::header::{Extension, Header};
    use rtp::packet::Packet;
    use webrtc_util::{Marshal, Unmarshal};

    fn reference_packet(
        csrc: Vec<u32>,
        profile: u16,
        exts: &[(u8, &[u8])],
        payload: &[u8],
    ) -> Packet {
        Packet {
            header: Header {
                version: 2,
                padding: false,
                extension: !exts.is_empty(),
                marker: true,
                payload_type: 96,
                sequence_number: 0xfffe,
                timestamp: 0xdead_beef,
                ssrc: 0x1234_5678,
                csrc,
                extension_profile: if exts.is_empty() { 0 } else { profile },
                extensions: exts
                    .iter()
                    .map(|&(id, v)| Extension {
                        id,
                        payload: Bytes::copy_from_slice(v),
                    })
                    .collect(),
                extensions_padding: 0,
            },
            payload: Bytes::copy_from_slice(payload),
        }
    }

    /// Compares our parse of `raw` with the `rtp` crate's.
    fn assert_matches_reference(raw: &[u8]) {
        let ours = RtpHeader::parse(raw).unwrap();
        let theirs = Packet::unmarshal(&mut &raw[..]).unwrap();
        let h = &theirs.header;
        assert_eq!(ours.marker, h.marker);
        assert_eq!(ours.padding, h.padding);
        assert_eq!(ours.payload_type, h.payload_type);
        assert_eq!(ours.sequence, h.sequence_number);
        assert_eq!(ours.timestamp, h.timestamp);
        assert_eq!(ours.ssrc, h.ssrc);
        assert_eq!(ours.csrc_count as usize, h.csrc.len());
        for (i, c) in h.csrc.iter().enumerate() {
            assert_eq!(ours.csrc(raw, i), Some(*c));
        }
        assert_eq!(ours.has_extension, h.extension);
        assert_eq!(ours.ext_profile, h.extension_profile);
        let exts: Vec<(u8, &[u8])> = ours.extensions(raw).collect();
        let ref_exts: Vec<(u8, &[u8])> = h
            .extensions
            .iter()
            .map(|e| (e.id, &e.payload[..]))
            .collect();
        assert_eq!(exts, ref_exts);
        assert_eq!(ours.payload(raw), &theirs.payload[..]);
    }

    #[test]
    fn parse_matches_rtp_crate() {
        let cases = [
            reference_packet(vec![], 0, &[], b"hello"),
            reference_packet(vec![1, 2, 3], 0, &[], b"payload"),
            reference_packet(
                vec![7],
                ONE_BYTE_PROFILE,
                &[(1, b"0"), (4, &[1, 2, 3]), (14, &[9; 16])],
                b"x",
            ),
            reference_packet(
                vec![],
                TWO_BYTE_PROFILE,
                &[(1, b"mid"), (200, &[5; 40]), (3, &[])],
                &[0u8; 100],
            ),
        ];
        for p in &cases {
            let raw = p.marshal().unwrap();
            assert_matches_reference(&raw);
        }
    }

    #[test]
    fn padding_is_excluded_from_payload() {
        let p = reference_packet(vec![], ONE_BYTE_PROFILE, &[(1, b"ab")], b"data");
        let mut raw = p.marshal().unwrap().to_vec();
        raw[0] |= 0x20;
        raw.extend_from_slice(&[0, 0, 3]);
        assert_matches_reference(&raw);
        let h = RtpHeader::parse(&raw).unwrap();
        assert_eq!((h.padding_len, h.payload_len), (3, 4));
        // Padding count 0 or past the payload is invalid.
        let last = raw.len() - 1;
        raw[last] = 0;
        assert_eq!(RtpHeader::parse(&raw), Err(RtpError::BadPadding));
        raw[last] = 200;
        assert_eq!(RtpHeader::parse(&raw), Err(RtpError::BadPadding));
    }

    #[test]
    fn typed_errors() {
        assert_eq!(RtpHeader::parse(&[0x80; 11]), Err(RtpError::TooShort));
        let mut raw = [0u8; 12];
        raw[0] = 0x40;
        assert_eq!(RtpHeader::parse(&raw), Err(RtpError::BadVersion(1)));
        raw[0] = 0x81;
        assert_eq!(RtpHeader::parse(&raw), Err(RtpError::CsrcTruncated));
        raw[0] = 0x90;
        assert_eq!(RtpHeader::parse(&raw), Err(RtpError::ExtensionTruncated));
    }

    #[test]
    fn setters_patch_in_place() {
        let p = reference_packet(vec![], ONE_BYTE_PROFILE, &[(1, b"ab")], b"data");
        let mut raw = p.marshal().unwrap().to_vec();
        set_ssrc(&mut raw, 42).unwrap();
        set_payload_type(&mut raw, 111).unwrap();
        set_sequence(&mut raw, 7).unwrap();
        set_timestamp(&mut raw, 9).unwrap();
        set_marker(&mut raw, false).unwrap();
        let h = Packet::unmarshal(&mut &raw[..]).unwrap().header;
        assert_eq!(
            (
                h.ssrc,
                h.payload_type,
                h.sequence_number,
                h.timestamp,
                h.marker
            ),
            (42, 111, 7, 9, false)
        );
        set_marker(&mut raw, true).unwrap();
        assert!(RtpHeader::parse(&raw).unwrap().marker);
        assert_eq!(RtpHeader::parse(&raw).unwrap().payload_type, 111);
        assert_eq!(set_ssrc(&mut raw[..11], 1), Err(RtpError::TooShort));
    }

    #[test]
    fn find_extension_and_mut() {
        let p = reference_packet(vec![], ONE_BYTE_PROFILE, &[(1, b"ab"), (5, &[0, 0])], b"d");
        let mut raw = p.marshal().unwrap().to_vec();
        let h = RtpHeader::parse(&raw).unwrap();
        assert_eq!(find_extension(&raw, &h, 1), Some(&b"ab"[..]));
        assert_eq!(find_extension(&raw, &h, 2), None);
        find_extension_mut(&mut raw, &h, 5)
            .unwrap()
            .copy_from_slice(&[0x12, 0x34]);
        let theirs = Packet::unmarshal(&mut &raw[..]).unwrap();
        assert_eq!(theirs.header.get_extension(5).unwrap(), &[0x12, 0x34][..]);
    }

    fn identity_map() -> [u8; 256] {
        std::array::from_fn(|i| i as u8)
    }

    #[test]
    fn write_forwarded_rewrites_and_maps_extensions() {
        let src_pkt = reference_packet(
            vec![11, 22],
            TWO_BYTE_PROFILE,
            &[(3, b"midvalue"), (9, &[1, 2, 3]), (20, &[4, 5])],
            b"media payload",
        );
        let mut src = src_pkt.marshal().unwrap().to_vec();
        // Add padding to check it is dropped.
        src[0] |= 0x20;
        src.extend_from_slice(&[0, 2]);
        let hdr = RtpHeader::parse(&src).unwrap();
        let mut map = [0u8; 256];
        map[3] = 1; // producer MID id → consumer 1 (then replaced by rw.mid)
        map[9] = 10;
        // 20 unmapped → dropped.
        let rw = Rewrite {
            ssrc: 0xaabbccdd,
            payload_type: 100,
            sequence: 500,
            timestamp: 123456,
            ext_map: &map,
            mid: Some((1, b"c0")),
            extra: &[],
            rtx_osn: None,
        };
        let mut dst = [0u8; 1500];
        let n = write_forwarded(&src, &hdr, &mut dst, &rw).unwrap();
        let out = Packet::unmarshal(&mut &dst[..n]).unwrap();
        let h = &out.header;
        assert_eq!(h.ssrc, 0xaabbccdd);
        assert_eq!(h.payload_type, 100);
        assert_eq!(h.sequence_number, 500);
        assert_eq!(h.timestamp, 123456);
        assert!(h.marker);
        assert!(!h.padding);
        assert_eq!(h.csrc, vec![11, 22]);
        assert_eq!(h.extension_profile, ONE_BYTE_PROFILE);
        let exts: Vec<(u8, &[u8])> = h
            .extensions
            .iter()
            .map(|e| (e.id, &e.payload[..]))
            .collect();
        assert_eq!(exts, vec![(10, &[1u8, 2, 3][..]), (1, &b"c0"[..])]);
        assert_eq!(&out.payload[..], b"media payload");
        assert_matches_reference(&dst[..n]);
    }

    #[test]
    fn write_forwarded_picks_two_byte_form_when_needed() {
        let src = reference_packet(vec![], ONE_BYTE_PROFILE, &[(4, &[1, 2, 3])], b"p")
            .marshal()
            .unwrap();
        let hdr = RtpHeader::parse(&src).unwrap();
        let map = identity_map();
        let mut dst = [0u8; 200];
        // A 20-byte MID does not fit the one-byte form.
        let long = [b'm'; 20];
        let rw = Rewrite {
            ssrc: 1,
            payload_type: 96,
            sequence: 1,
            timestamp: 1,
            ext_map: &map,
            mid: Some((1, &long)),
            extra: &[(15, &[7])],
            rtx_osn: None,
        };
        let n = write_forwarded(&src, &hdr, &mut dst, &rw).unwrap();
        let out = Packet::unmarshal(&mut &dst[..n]).unwrap();
        assert_eq!(out.header.extension_profile, TWO_BYTE_PROFILE);
        assert_eq!(out.header.get_extension(4).unwrap(), &[1, 2, 3][..]);
        assert_eq!(out.header.get_extension(1).unwrap(), &long[..]);
        assert_eq!(out.header.get_extension(15).unwrap(), &[7][..]);
        // Without extensions at all the X bit is clear.
        let drop_all = [0u8; 256];
        let rw = Rewrite {
            ext_map: &drop_all,
            mid: None,
            extra: &[],
            ..rw
        };
        let n = write_forwarded(&src, &hdr, &mut dst, &rw).unwrap();
        assert_eq!(n, 13);
        assert_eq!(dst[0], 0x80);
        assert!(matches!(
            write_forwarded(&src, &hdr, &mut dst[..12], &rw),
            Err(RtpError::BufferTooSmall {
                needed: 13,
                available: 12
            })
        ));
    }

    #[test]
    fn rtx_round_trip() {
        let orig = reference_packet(vec![], ONE_BYTE_PROFILE, &[(1, b"a")], b"original")
            .marshal()
            .unwrap();
        let hdr = RtpHeader::parse(&orig).unwrap();
        let map = identity_map();
        let rw = Rewrite {
            ssrc: 999,
            payload_type: 97,
            sequence: 40,
            timestamp: hdr.timestamp,
            ext_map: &map,
            mid: None,
            extra: &[],
            rtx_osn: Some(hdr.sequence),
        };
        let mut buf = [0u8; 1500];
        let n = write_forwarded(&orig, &hdr, &mut buf, &rw).unwrap();
        let rtx = Packet::unmarshal(&mut &buf[..n]).unwrap();
        assert_eq!(rtx.header.sequence_number, 40);
        assert_eq!(&rtx.payload[..2], &hdr.sequence.to_be_bytes());
        assert_eq!(&rtx.payload[2..], b"original");

        let rhdr = RtpHeader::parse(&buf[..n]).unwrap();
        let (len, osn) = rtx_decapsulate_in_place(&mut buf, n, &rhdr, 96).unwrap();
        assert_eq!(osn, 0xfffe);
        set_ssrc(&mut buf, hdr.ssrc).unwrap();
        assert_eq!(&buf[..len], &orig[..]);

        let short = RtpHeader::parse(&orig[..orig.len() - 7]).unwrap();
        let mut copy = orig.to_vec();
        assert_eq!(
            rtx_decapsulate_in_place(&mut copy, orig.len() - 7, &short, 96),
            Err(RtpError::RtxTooShort)
        );
    }

    #[test]
    fn prefixes_and_random_bytes_never_panic() {
        let raw = reference_packet(
            vec![1, 2],
            TWO_BYTE_PROFILE,
            &[(1, b"abc"), (30, &[9; 30])],
            b"payload",
        )
        .marshal()
        .unwrap();
        let map = identity_map();
        let rw = Rewrite {
            ssrc: 1,
            payload_type: 1,
            sequence: 1,
            timestamp: 1,
            ext_map: &map,
            mid: Some((1, b"x")),
            extra: &[],
            rtx_osn: Some(3),
        };
        let mut dst = [0u8; 1500];
        let exercise = |pkt: &[u8], dst: &mut [u8]| {
            if let Ok(h) = RtpHeader::parse(pkt) {
                let _ = h.extensions(pkt).count();
                let _ = find_extension(pkt, &h, 30);
                let _ = write_forwarded(pkt, &h, dst, &rw);
                let mut copy = pkt.to_vec();
                let _ = rtx_decapsulate_in_place(&mut copy, pkt.len(), &h, 5);
            }
        };
        for n in 0..=raw.len() {
            exercise(&raw[..n], &mut dst);
        }
        // Deterministic xorshift: reproducible "random" packets, forced to look like RTP.
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let mut pkt = [0u8; 64];
        for _ in 0..20_000 {
            for b in pkt.iter_mut() {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                *b = x as u8;
            }
            pkt[0] = (pkt[0] & 0x3f) | 0x80;
            let len = (x >> 40) as usize % pkt.len();
            exercise(&pkt[..len], &mut dst);
        }
    }
}
