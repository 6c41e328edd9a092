//! Video payload inspection: key-frame detection from the RTP payload (payload descriptor and
//! the first bytes of the codec bitstream), without decoding anything.
//!
//! The SFU needs this to switch simulcast layers and to know when a key-frame request has been
//! answered. All checks read the caller's bytes with bounds checks and never panic.

/// Video codecs whose key frames the SFU can recognize.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PayloadCodec {
    /// VP8 (RFC 7741).
    Vp8,
    /// VP9 (RFC 9628).
    Vp9,
    /// H.264 (RFC 6184), packetization-mode 0 or 1.
    H264,
    /// H.264 SVC: same NAL framing as H.264 for key-frame purposes.
    H264Svc,
    /// H.265 (RFC 7798).
    H265,
    /// AV1 (AOM RTP payload format).
    Av1,
}

impl PayloadCodec {
    /// The codec for a mime type such as `"video/VP8"` (case-insensitive); `None` for codecs
    /// without key-frame detection (audio, RTX, …).
    pub fn from_mime(mime: &str) -> Option<PayloadCodec> {
        let (kind, name) = mime.split_once('/')?;
        if !kind.eq_ignore_ascii_case("video") {
            return None;
        }
        [
            ("VP8", PayloadCodec::Vp8),
            ("VP9", PayloadCodec::Vp9),
            ("H264", PayloadCodec::H264),
            ("H264-SVC", PayloadCodec::H264Svc),
            ("H265", PayloadCodec::H265),
            ("AV1", PayloadCodec::Av1),
        ]
        .into_iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, c)| c)
    }
}

/// True if `payload` (the RTP payload, padding removed) starts or carries a key frame.
///
/// For fragmented frames only the first packet of the key frame is recognized (that is where
/// the information is); a switch point is "the packet for which this returns true".
pub fn is_keyframe(codec: PayloadCodec, payload: &[u8]) -> bool {
    match codec {
        PayloadCodec::Vp8 => vp8_keyframe(payload),
        PayloadCodec::Vp9 => vp9_keyframe(payload),
        PayloadCodec::H264 | PayloadCodec::H264Svc => h264_keyframe(payload),
        PayloadCodec::H265 => h265_keyframe(payload),
        PayloadCodec::Av1 => av1_keyframe(payload),
    }
}

/// RFC 7741 §4.2 descriptor, then the VP8 frame tag: key frame iff this is the start of
/// partition 0 (S=1, PID=0) and the frame tag's inverse key-frame bit P is 0.
fn vp8_keyframe(p: &[u8]) -> bool {
    let Some(&b0) = p.first() else { return false };
    let start_of_partition0 = b0 & 0x10 != 0 && b0 & 0x07 == 0;
    if !start_of_partition0 {
        return false;
    }
    let mut pos = 1;
    if b0 & 0x80 != 0 {
        let Some(&x) = p.get(1) else { return false };
        pos = 2;
        if x & 0x80 != 0 {
            // Picture ID: 7 bits, or 15 with the M bit.
            let Some(&pid) = p.get(pos) else { return false };
            pos += if pid & 0x80 != 0 { 2 } else { 1 };
        }
        if x & 0x40 != 0 {
            pos += 1; // TL0PICIDX
        }
        if x & 0x30 != 0 {
            pos += 1; // TID/Y/KEYIDX
        }
    }
    p.get(pos).is_some_and(|tag| tag & 0x01 == 0)
}

/// The fields of a VP8 payload descriptor (RFC 7741 §4.2) that temporal layer selection and
/// picture-id continuity need, with the byte offsets of the rewritable ones (from the start of the
/// RTP payload), so a forwarded copy can be patched in place.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Vp8Descriptor {
    /// S=1 and PID=0: the first packet of a frame.
    pub frame_start: bool,
    /// The frame is a key frame (only known on its first packet).
    pub keyframe: bool,
    /// PictureID and whether it is the 15-bit form (M=1).
    pub picture_id: Option<(u16, bool)>,
    /// Offset of the PictureID field.
    pub picture_id_at: u8,
    /// TL0PICIDX, when L=1.
    pub tl0_pic_idx: Option<u8>,
    /// Offset of the TL0PICIDX byte.
    pub tl0_at: u8,
    /// Temporal layer index, when T=1.
    pub tid: Option<u8>,
    /// Y: layer sync (the frame depends only on the base layer).
    pub layer_sync: bool,
}

impl Vp8Descriptor {
    /// Parses the descriptor at the start of `p` (a VP8 RTP payload); `None` when truncated.
    pub fn parse(p: &[u8]) -> Option<Vp8Descriptor> {
        let b0 = *p.first()?;
        let mut d = Vp8Descriptor {
            frame_start: b0 & 0x10 != 0 && b0 & 0x07 == 0,
            ..Default::default()
        };
        let mut pos = 1usize;
        if b0 & 0x80 != 0 {
            let x = *p.get(1)?;
            pos = 2;
            if x & 0x80 != 0 {
                let hi = *p.get(pos)?;
                d.picture_id_at = pos as u8;
                if hi & 0x80 != 0 {
                    let lo = *p.get(pos + 1)?;
                    d.picture_id = Some((u16::from_be_bytes([hi & 0x7f, lo]), true));
                    pos += 2;
                } else {
                    d.picture_id = Some((hi as u16, false));
                    pos += 1;
                }
            }
            if x & 0x40 != 0 {
                d.tl0_pic_idx = Some(*p.get(pos)?);
                d.tl0_at = pos as u8;
                pos += 1;
            }
            if x & 0x30 != 0 {
                let t = *p.get(pos)?;
                if x & 0x20 != 0 {
                    d.tid = Some(t >> 6);
                    d.layer_sync = t & 0x20 != 0;
                }
                pos += 1;
            }
        }
        d.keyframe = d.frame_start && p.get(pos).is_some_and(|tag| tag & 0x01 == 0);
        Some(d)
    }

    /// Writes `picture_id` (kept to the field's width: 7 or 15 bits) and `tl0_pic_idx` into the
    /// descriptor at the start of `p`, where [`parse`](Self::parse) found them. Fields the
    /// descriptor does not carry are left alone; a payload shorter than the descriptor is not
    /// touched.
    pub fn rewrite(&self, p: &mut [u8], picture_id: u16, tl0_pic_idx: u8) {
        if let Some((_, long)) = self.picture_id {
            let at = self.picture_id_at as usize;
            if long {
                if let Some(f) = p.get_mut(at..at + 2) {
                    let v = picture_id & 0x7fff;
                    f[0] = 0x80 | (v >> 8) as u8;
                    f[1] = v as u8;
                }
            } else if let Some(f) = p.get_mut(at) {
                *f = (picture_id & 0x7f) as u8;
            }
        }
        if self.tl0_pic_idx.is_some() {
            if let Some(f) = p.get_mut(self.tl0_at as usize) {
                *f = tl0_pic_idx;
            }
        }
    }
}

/// RFC 9628 §4.2 descriptor: key frame iff not inter-predicted (P=0), start of a frame (B=1)
/// and the base spatial layer (SID 0, or no layer indices).
fn vp9_keyframe(p: &[u8]) -> bool {
    let Some(&b0) = p.first() else { return false };
    let (i, inter, l, flexible, begin) = (
        b0 & 0x80 != 0,
        b0 & 0x40 != 0,
        b0 & 0x20 != 0,
        b0 & 0x10 != 0,
        b0 & 0x08 != 0,
    );
    if inter || !begin {
        return false;
    }
    let mut pos = 1;
    if i {
        let Some(&pid) = p.get(pos) else { return false };
        pos += if pid & 0x80 != 0 { 2 } else { 1 };
    }
    if l {
        let Some(&layers) = p.get(pos) else {
            return false;
        };
        // Non-flexible mode carries TL0PICIDX after the layer byte.
        let end = pos + if flexible { 1 } else { 2 };
        if p.len() < end {
            return false;
        }
        return (layers >> 1) & 0x07 == 0;
    }
    p.len() >= pos
}

fn h264_nal_is_key(nal_type: u8) -> bool {
    // IDR slice or SPS (an SPS precedes the IDR of every key frame).
    nal_type == 5 || nal_type == 7
}

/// RFC 6184: single NAL unit, STAP-A (24) aggregates, FU-A/FU-B (28/29) start fragments.
fn h264_keyframe(p: &[u8]) -> bool {
    let Some(&b0) = p.first() else { return false };
    match b0 & 0x1f {
        t @ 1..=23 => h264_nal_is_key(t),
        24 => {
            let mut pos = 1;
            while let Some(size) = p.get(pos..pos + 2) {
                let size = u16::from_be_bytes([size[0], size[1]]) as usize;
                pos += 2;
                match p.get(pos) {
                    Some(&nal) if size > 0 => {
                        if h264_nal_is_key(nal & 0x1f) {
                            return true;
                        }
                    }
                    _ => return false,
                }
                pos += size;
            }
            false
        }
        28 | 29 => p
            .get(1)
            .is_some_and(|&fu| fu & 0x80 != 0 && h264_nal_is_key(fu & 0x1f)),
        _ => false,
    }
}

fn h265_nal_is_key(nal_type: u8) -> bool {
    // IRAP pictures (BLA/IDR/CRA, 16..=21) or VPS/SPS (32, 33).
    (16..=21).contains(&nal_type) || nal_type == 32 || nal_type == 33
}

/// RFC 7798: single NAL unit, aggregation packets (48), fragmentation units (49).
fn h265_keyframe(p: &[u8]) -> bool {
    let Some(&b0) = p.first() else { return false };
    match (b0 >> 1) & 0x3f {
        48 => {
            // 2-byte payload header, then (size, NAL) pairs; DONL fields are not supported.
            let mut pos = 2;
            while let Some(size) = p.get(pos..pos + 2) {
                let size = u16::from_be_bytes([size[0], size[1]]) as usize;
                pos += 2;
                match p.get(pos) {
                    Some(&nal) if size > 0 => {
                        if h265_nal_is_key((nal >> 1) & 0x3f) {
                            return true;
                        }
                    }
                    _ => return false,
                }
                pos += size;
            }
            false
        }
        49 => p
            .get(2)
            .is_some_and(|&fu| fu & 0x80 != 0 && h265_nal_is_key(fu & 0x3f)),
        t => p.len() >= 2 && h265_nal_is_key(t),
    }
}

/// AV1 RTP aggregation header `|Z|Y|W W|N|-|-|-|`: key frame iff N=1 (first packet of a new
/// coded video sequence), or the packet's first OBU element is not a continuation (Z=0) and is
/// a sequence header (senders that do not set N still lead key frames with one).
fn av1_keyframe(p: &[u8]) -> bool {
    let Some(&agg) = p.first() else { return false };
    if agg & 0x08 != 0 {
        return true;
    }
    if agg & 0x80 != 0 {
        return false;
    }
    let w = (agg >> 4) & 0x03;
    let mut pos = 1;
    if w != 1 {
        // The first element carries a LEB128 length unless W=1 (single element, no length).
        loop {
            let Some(&b) = p.get(pos) else { return false };
            pos += 1;
            if b & 0x80 == 0 {
                break;
            }
            if pos > 9 {
                return false;
            }
        }
    }
    const OBU_SEQUENCE_HEADER: u8 = 1;
    p.get(pos)
        .is_some_and(|&h| (h >> 3) & 0x0f == OBU_SEQUENCE_HEADER)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use rtp::packetizer::Payloader;

    #[test]
    fn from_mime() {
        assert_eq!(
            PayloadCodec::from_mime("video/VP8"),
            Some(PayloadCodec::Vp8)
        );
        assert_eq!(
            PayloadCodec::from_mime("video/vp9"),
            Some(PayloadCodec::Vp9)
        );
        assert_eq!(
            PayloadCodec::from_mime("Video/H264"),
            Some(PayloadCodec::H264)
        );
        assert_eq!(
            PayloadCodec::from_mime("video/H264-SVC"),
            Some(PayloadCodec::H264Svc)
        );
        assert_eq!(
            PayloadCodec::from_mime("video/H265"),
            Some(PayloadCodec::H265)
        );
        assert_eq!(
            PayloadCodec::from_mime("video/AV1"),
            Some(PayloadCodec::Av1)
        );
        assert_eq!(PayloadCodec::from_mime("audio/opus"), None);
        assert_eq!(PayloadCodec::from_mime("video/rtx"), None);
        assert_eq!(PayloadCodec::from_mime("VP8"), None);
    }

    /// A VP8 key frame's first bytes: frame tag with P=0, then the start code 9d 01 2a.
    const VP8_KEY: [u8; 10] = [0x50, 0x42, 0x00, 0x9d, 0x01, 0x2a, 0x80, 0x02, 0xe0, 0x01];
    /// A VP8 inter frame tag (P=1).
    const VP8_DELTA: [u8; 4] = [0x31, 0x10, 0x00, 0xaa];

    #[test]
    fn vp8_hand_built() {
        let key = |desc: &[u8], frame: &[u8]| {
            let mut v = desc.to_vec();
            v.extend_from_slice(frame);
            is_keyframe(PayloadCodec::Vp8, &v)
        };
        assert!(key(&[0x10], &VP8_KEY));
        assert!(!key(&[0x10], &VP8_DELTA));
        assert!(!key(&[0x00], &VP8_KEY)); // S=0: a continuation
        assert!(!key(&[0x11], &VP8_KEY)); // PID=1
                                          // X with I (15-bit picture id), L, T|K.
        assert!(key(&[0x90, 0xf0, 0x81, 0x23, 0x05, 0x40], &VP8_KEY));
        assert!(!key(&[0x90, 0xf0, 0x81, 0x23, 0x05, 0x40], &VP8_DELTA));
        // X with 7-bit picture id only.
        assert!(key(&[0x90, 0x80, 0x12], &VP8_KEY));
        // Truncated descriptors.
        assert!(!key(&[0x90, 0xf0, 0x81], &[]));
        assert!(!key(&[0x10], &[]));
    }

    #[test]
    fn vp8_from_rtp_payloader() {
        let mut pay = rtp::codecs::vp8::Vp8Payloader::default();
        pay.enable_picture_id = true;
        let mut frame = VP8_KEY.to_vec();
        frame.resize(300, 7);
        let packets = pay.payload(100, &Bytes::from(frame)).unwrap();
        assert!(packets.len() > 2);
        assert!(is_keyframe(PayloadCodec::Vp8, &packets[0]));
        assert!(packets[1..]
            .iter()
            .all(|p| !is_keyframe(PayloadCodec::Vp8, p)));
        let mut delta = VP8_DELTA.to_vec();
        delta.resize(300, 7);
        let packets = pay.payload(100, &Bytes::from(delta)).unwrap();
        assert!(
            packets.len() > 2,
            "a delta frame of 300 bytes: {}",
            packets.len()
        );
        assert!(packets.iter().all(|p| !is_keyframe(PayloadCodec::Vp8, p)));
    }

    #[test]
    fn vp8_descriptor_fields_and_in_place_rewrite() {
        // X; I (15-bit pid 0x0123), L (TL0PICIDX 7), T (TID 2, Y=1, KEYIDX 0); key frame tag.
        let mut p = vec![0x90, 0xe0, 0x81, 0x23, 0x07, 0xa0];
        p.extend_from_slice(&VP8_KEY);
        let d = Vp8Descriptor::parse(&p).unwrap();
        assert!(d.frame_start && d.keyframe);
        assert_eq!(d.picture_id, Some((0x0123, true)));
        assert_eq!(d.tl0_pic_idx, Some(7));
        assert_eq!((d.tid, d.layer_sync), (Some(2), true));
        d.rewrite(&mut p, 0x7ffe + 3, 200);
        let r = Vp8Descriptor::parse(&p).unwrap();
        assert_eq!(r.picture_id, Some((0x0001, true)), "15 bits wrap");
        assert_eq!(r.tl0_pic_idx, Some(200));
        assert_eq!((r.tid, r.layer_sync, r.keyframe), (Some(2), true, true));
        assert_eq!(&p[6..], &VP8_KEY, "frame bytes untouched");
        // 7-bit picture id, no L, T without Y; continuation packet.
        let mut p = vec![0x80, 0xa0, 0x05, 0x40, 0x33];
        let d = Vp8Descriptor::parse(&p).unwrap();
        assert!(!d.frame_start && !d.keyframe);
        assert_eq!(d.picture_id, Some((5, false)));
        assert_eq!((d.tl0_pic_idx, d.tid, d.layer_sync), (None, Some(1), false));
        d.rewrite(&mut p, 0x1ff, 9);
        assert_eq!(p, [0x80, 0xa0, 0x7f, 0x40, 0x33]);
        // K only (no T): no temporal id.
        let d = Vp8Descriptor::parse(&[0x90, 0x10, 0x03, 0x00]).unwrap();
        assert_eq!(d.tid, None);
        // Truncated.
        assert_eq!(Vp8Descriptor::parse(&[0x90, 0xe0, 0x81]), None);
        assert_eq!(Vp8Descriptor::parse(&[]), None);
    }

    #[test]
    fn vp9_hand_built() {
        let k = |p: &[u8]| is_keyframe(PayloadCodec::Vp9, p);
        // Non-flexible, I (15-bit pid), L with SID 0 + TL0PICIDX, B.
        assert!(k(&[0xa8, 0x80, 0x01, 0x00, 0x07, 0xaa]));
        // Same with SID 1.
        assert!(!k(&[0xa8, 0x80, 0x01, 0x02, 0x07, 0xaa]));
        // P=1: inter-predicted.
        assert!(!k(&[0xe8, 0x80, 0x01, 0x00, 0x07, 0xaa]));
        // B=0: not the start of the frame.
        assert!(!k(&[0xa0, 0x80, 0x01, 0x00, 0x07, 0xaa]));
        // Flexible mode, L without TL0PICIDX.
        assert!(k(&[0xb8, 0x05, 0x00, 0xaa]));
        // Layer byte missing, or TL0PICIDX missing in non-flexible mode.
        assert!(!k(&[0xa8, 0x05]));
        assert!(!k(&[0xa8, 0x05, 0x00]));
        assert!(!k(&[]));
    }

    #[test]
    fn vp9_from_rtp_payloader() {
        // The payloader writes flexible-mode descriptors with a 15-bit picture id and never
        // sets P, so only B distinguishes the first packet.
        let mut pay = rtp::codecs::vp9::Vp9Payloader::default();
        let packets = pay.payload(50, &Bytes::from(vec![0x82u8; 200])).unwrap();
        assert!(packets.len() > 2);
        assert!(is_keyframe(PayloadCodec::Vp9, &packets[0]));
        assert!(packets[1..]
            .iter()
            .all(|p| !is_keyframe(PayloadCodec::Vp9, p)));
    }

    #[test]
    fn h264_hand_built() {
        let k = |p: &[u8]| is_keyframe(PayloadCodec::H264, p);
        assert!(k(&[0x65, 0x88])); // IDR
        assert!(k(&[0x67, 0x42])); // SPS
        assert!(!k(&[0x68, 0xce])); // PPS alone
        assert!(!k(&[0x41, 0x9a])); // non-IDR slice
                                    // STAP-A: PPS then IDR.
        assert!(k(&[0x78, 0x00, 0x02, 0x68, 0xce, 0x00, 0x02, 0x65, 0x88]));
        assert!(!k(&[0x78, 0x00, 0x02, 0x68, 0xce, 0x00, 0x02, 0x41, 0x9a]));
        // STAP-A with a size running past the end.
        assert!(!k(&[0x78, 0x00, 0x09, 0x68]));
        // FU-A: start of IDR, middle of IDR, start of non-IDR.
        assert!(k(&[0x7c, 0x85, 0x00]));
        assert!(!k(&[0x7c, 0x05, 0x00]));
        assert!(!k(&[0x7c, 0x81, 0x00]));
        assert!(!k(&[0x7c]));
        assert!(is_keyframe(PayloadCodec::H264Svc, &[0x65]));
    }

    #[test]
    fn h264_from_rtp_payloader() {
        let mut pay = rtp::codecs::h264::H264Payloader::default();
        let annexb = |nals: &[&[u8]]| {
            let mut v = Vec::new();
            for n in nals {
                v.extend_from_slice(&[0, 0, 0, 1]);
                v.extend_from_slice(n);
            }
            Bytes::from(v)
        };
        let idr: Vec<u8> = std::iter::once(0x65)
            .chain(std::iter::repeat_n(0x11, 300))
            .collect();
        let sps: &[u8] = &[0x67, 0x42, 0x00, 0x1f];
        let pps: &[u8] = &[0x68, 0xce, 0x3c, 0x80];
        let packets = pay.payload(100, &annexb(&[sps, pps, &idr])).unwrap();
        // STAP-A(SPS, PPS), then FU-A fragments of the IDR.
        assert_eq!(packets[0][0] & 0x1f, 24);
        assert!(is_keyframe(PayloadCodec::H264, &packets[0]));
        assert_eq!(packets[1][0] & 0x1f, 28);
        assert!(is_keyframe(PayloadCodec::H264, &packets[1]));
        assert!(
            packets.len() > 3,
            "FU-A fragments follow: {}",
            packets.len()
        );
        assert!(packets[2..]
            .iter()
            .all(|p| !is_keyframe(PayloadCodec::H264, p)));

        let slice: Vec<u8> = std::iter::once(0x41)
            .chain(std::iter::repeat_n(0x22, 300))
            .collect();
        let packets = pay.payload(100, &annexb(&[&slice])).unwrap();
        assert!(
            packets.len() > 1,
            "a 301-byte slice in FU-A: {}",
            packets.len()
        );
        assert!(packets.iter().all(|p| !is_keyframe(PayloadCodec::H264, p)));
    }

    #[test]
    fn h265_hand_built() {
        let k = |p: &[u8]| is_keyframe(PayloadCodec::H265, p);
        assert!(k(&[19 << 1, 0x01, 0xaa])); // IDR_W_RADL
        assert!(k(&[33 << 1, 0x01])); // SPS
        assert!(!k(&[1 << 1, 0x01, 0xaa])); // TRAIL_R
                                            // AP with VPS.
        assert!(k(&[48 << 1, 0x01, 0x00, 0x02, 32 << 1, 0x01]));
        // FU start of CRA, FU middle.
        assert!(k(&[49 << 1, 0x01, 0x80 | 21]));
        assert!(!k(&[49 << 1, 0x01, 21]));
    }

    fn obu(obu_type: u8, data: &[u8]) -> Vec<u8> {
        // OBU header with has_size_field, then a 1-byte LEB128 size.
        let mut v = vec![(obu_type << 3) | 0x02, data.len() as u8];
        v.extend_from_slice(data);
        v
    }

    #[test]
    fn av1_hand_built() {
        let k = |p: &[u8]| is_keyframe(PayloadCodec::Av1, p);
        assert!(k(&[0x08])); // N bit
                             // W=1 (no length), first OBU a sequence header (type 1) without N.
        assert!(k(&[0x10, 1 << 3, 0x00]));
        // W=2 with a length-prefixed first element: a sequence header.
        assert!(k(&[0x20, 0x02, 1 << 3, 0x00, 6 << 3]));
        // Frame OBU (type 6) first.
        assert!(!k(&[0x10, 6 << 3, 0x00]));
        // Z=1: continuation of a previous OBU, even if its bytes look like a sequence header.
        assert!(!k(&[0x90, 1 << 3]));
        assert!(!k(&[0x20, 0x82]));
    }

    #[test]
    fn av1_from_rtp_payloader() {
        let mut pay = rtp::codecs::av1::Av1Payloader::default();
        let mut key = obu(1, &[0x00, 0x00, 0x00, 0x0a]);
        key.extend(obu(6, &[0x10; 120]));
        let packets = pay.payload(60, &Bytes::from(key)).unwrap();
        assert!(packets.len() > 1);
        assert!(is_keyframe(PayloadCodec::Av1, &packets[0]));
        assert!(packets[1..]
            .iter()
            .all(|p| !is_keyframe(PayloadCodec::Av1, p)));
        let delta = obu(6, &[0x30; 120]);
        let packets = pay.payload(60, &Bytes::from(delta)).unwrap();
        assert!(
            packets.len() > 1,
            "a 122-byte frame OBU at MTU 60: {}",
            packets.len()
        );
        assert!(packets.iter().all(|p| !is_keyframe(PayloadCodec::Av1, p)));
    }

    #[test]
    fn random_payloads_never_panic() {
        let mut x = 0x1234_5678_9abc_def1u64;
        let mut p = [0u8; 40];
        for _ in 0..50_000 {
            for b in p.iter_mut() {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                *b = x as u8;
            }
            let len = (x >> 50) as usize % p.len();
            for c in [
                PayloadCodec::Vp8,
                PayloadCodec::Vp9,
                PayloadCodec::H264,
                PayloadCodec::H265,
                PayloadCodec::Av1,
            ] {
                let _ = is_keyframe(c, &p[..len]);
            }
            if let Some(d) = Vp8Descriptor::parse(&p[..len]) {
                let mut q = p;
                d.rewrite(&mut q[..len], 0xffff, 0xff);
            }
        }
    }
}
