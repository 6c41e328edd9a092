//! SRTP and SRTCP packet protection (RFC 3711, AEAD-GCM per RFC 7714), in place.
//!
//! An [`SrtpContext`] holds one direction's session keys (derived once from the master key;
//! key derivation rate 0, as DTLS-SRTP mandates) and per-SSRC state: the RTP rollover counter,
//! the SRTCP index and replay windows. Every operation works on a caller-owned buffer and does
//! no heap allocation once an SSRC has been seen.
//!
//! Crypto choices are performance driven: RustCrypto `aes`/`ctr` (AES-NI) for AES-CM and the
//! key derivation function, RustCrypto `hmac`/`sha1` (SHA-NI) for HMAC-SHA1, and `ring` for
//! AES-GCM.

use std::collections::HashMap;

use aes::cipher::{InnerIvInit, KeyInit, KeyIvInit, StreamCipher};
use aes::{Aes128, Aes128Enc, Aes256};
use hmac::{Hmac, Mac};
use ring::aead::{self, Aad, LessSafeKey, Nonce, UnboundKey};
use sha1::Sha1;

type HmacSha1 = Hmac<Sha1>;

/// Size of the fixed RTP header, before CSRCs and the header extension.
const RTP_FIXED_HEADER_LEN: usize = 12;
/// Size of the part of an RTCP packet that SRTCP leaves in the clear (header + sender SSRC).
const RTCP_CLEAR_LEN: usize = 8;
/// Size of the SRTCP trailer word holding the E flag and the 31-bit SRTCP index.
const SRTCP_INDEX_LEN: usize = 4;
/// The E flag within the SRTCP trailer word: set when the packet body is encrypted.
const SRTCP_E_FLAG: u32 = 0x8000_0000;
/// The SRTCP index is 31 bits wide.
const SRTCP_INDEX_MASK: u32 = 0x7fff_ffff;
/// AES-GCM authentication tag length (RFC 7714 mandates the 16-octet tag).
const GCM_TAG_LEN: usize = 16;
/// Length of the HMAC-SHA1 session authentication key (n_a = 160 bits).
const HMAC_KEY_LEN: usize = 20;
/// Replay window width in packets (RFC 3711 requires at least 64).
const REPLAY_WINDOW: u64 = 128;

/// Key derivation labels (RFC 3711 §4.3.1).
const LABEL_RTP_ENCRYPTION: u8 = 0x00;
const LABEL_RTP_AUTH: u8 = 0x01;
const LABEL_RTP_SALT: u8 = 0x02;
const LABEL_RTCP_ENCRYPTION: u8 = 0x03;
const LABEL_RTCP_AUTH: u8 = 0x04;
const LABEL_RTCP_SALT: u8 = 0x05;

/// Why a packet could not be protected or unprotected; the engine counts drops per variant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SrtpError {
    /// The packet is shorter than its headers, CSRCs, extension and tag claim.
    #[error("packet too short")]
    TooShort,
    /// The packet is not RTP/RTCP version 2.
    #[error("malformed packet")]
    Malformed,
    /// The output buffer has no room for the authentication tag / SRTCP trailer.
    #[error("buffer too small for the protected packet")]
    BufferTooSmall,
    /// The authentication tag does not match: forged or corrupted packet, or wrong keys.
    #[error("authentication failed")]
    AuthFailed,
    /// The packet index was already received, or is older than the replay window.
    #[error("replayed packet")]
    Replayed,
    /// The protection profile is not one we implement.
    #[error("unknown SRTP protection profile")]
    UnknownProfile,
    /// The master key, master salt or keying material length does not fit the profile.
    #[error("bad master key or salt length")]
    BadKeyLength,
    /// The 31-bit SRTCP index of an outbound SSRC is used up; the keys must be renegotiated
    /// (RFC 3711 §9.2) rather than reuse an index (and, for GCM, a nonce).
    #[error("SRTCP index exhausted")]
    IndexExhausted,
}

/// An SRTP protection profile (RFC 5764 §4.1.2, RFC 7714 §14.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SrtpProfile {
    /// AES-128 counter mode with an 80-bit HMAC-SHA1 tag.
    Aes128CmHmacSha1_80,
    /// AES-128 counter mode with a 32-bit HMAC-SHA1 tag on RTP (80-bit on RTCP).
    Aes128CmHmacSha1_32,
    /// AES-128-GCM with a 16-octet tag.
    AeadAes128Gcm,
    /// AES-256-GCM with a 16-octet tag.
    AeadAes256Gcm,
}

impl SrtpProfile {
    /// Length of the master key in bytes.
    pub fn master_key_len(self) -> usize {
        match self {
            Self::AeadAes256Gcm => 32,
            _ => 16,
        }
    }

    /// Length of the master salt in bytes.
    pub fn master_salt_len(self) -> usize {
        match self {
            Self::Aes128CmHmacSha1_80 | Self::Aes128CmHmacSha1_32 => 14,
            Self::AeadAes128Gcm | Self::AeadAes256Gcm => 12,
        }
    }

    /// Bytes an SRTP packet grows by when protected (the tag).
    pub fn rtp_tag_len(self) -> usize {
        match self {
            Self::Aes128CmHmacSha1_80 => 10,
            Self::Aes128CmHmacSha1_32 => 4,
            Self::AeadAes128Gcm | Self::AeadAes256Gcm => GCM_TAG_LEN,
        }
    }

    /// Length of the SRTCP tag; an SRTCP packet grows by this plus the 4-byte E|index word.
    pub fn rtcp_tag_len(self) -> usize {
        match self {
            Self::Aes128CmHmacSha1_80 | Self::Aes128CmHmacSha1_32 => 10,
            Self::AeadAes128Gcm | Self::AeadAes256Gcm => GCM_TAG_LEN,
        }
    }

    /// The profile for a DTLS `use_srtp` protection profile id (RFC 5764, RFC 7714).
    pub fn from_dtls_id(id: u16) -> Option<Self> {
        match id {
            0x0001 => Some(Self::Aes128CmHmacSha1_80),
            0x0002 => Some(Self::Aes128CmHmacSha1_32),
            0x0007 => Some(Self::AeadAes128Gcm),
            0x0008 => Some(Self::AeadAes256Gcm),
            _ => None,
        }
    }

    /// The DTLS `use_srtp` protection profile id of this profile.
    pub fn dtls_id(self) -> u16 {
        match self {
            Self::Aes128CmHmacSha1_80 => 0x0001,
            Self::Aes128CmHmacSha1_32 => 0x0002,
            Self::AeadAes128Gcm => 0x0007,
            Self::AeadAes256Gcm => 0x0008,
        }
    }

    /// The profile for its mediasoup name (e.g. `"AES_CM_128_HMAC_SHA1_80"`).
    pub fn from_name(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.name() == s)
    }

    /// The mediasoup name of this profile.
    pub fn name(self) -> &'static str {
        match self {
            Self::Aes128CmHmacSha1_80 => "AES_CM_128_HMAC_SHA1_80",
            Self::Aes128CmHmacSha1_32 => "AES_CM_128_HMAC_SHA1_32",
            Self::AeadAes128Gcm => "AEAD_AES_128_GCM",
            Self::AeadAes256Gcm => "AEAD_AES_256_GCM",
        }
    }

    /// Every implemented profile.
    pub const ALL: [SrtpProfile; 4] = [
        Self::Aes128CmHmacSha1_80,
        Self::Aes128CmHmacSha1_32,
        Self::AeadAes128Gcm,
        Self::AeadAes256Gcm,
    ];

    fn is_aead(self) -> bool {
        matches!(self, Self::AeadAes128Gcm | Self::AeadAes256Gcm)
    }
}

/// Length of the DTLS-exported keying material the profile needs (RFC 5764 §4.2).
pub fn keying_material_len(profile: SrtpProfile) -> usize {
    2 * (profile.master_key_len() + profile.master_salt_len())
}

/// Splits DTLS-exported keying material (RFC 5764 §4.2: client key, server key, client salt,
/// server salt) into (local-outbound, remote-inbound) contexts for our role.
pub fn contexts_from_dtls(
    profile: SrtpProfile,
    material: &[u8],
    we_are_dtls_client: bool,
) -> Result<(SrtpContext, SrtpContext), SrtpError> {
    if material.len() != keying_material_len(profile) {
        return Err(SrtpError::BadKeyLength);
    }
    let k = profile.master_key_len();
    let s = profile.master_salt_len();
    let (client_key, rest) = material.split_at(k);
    let (server_key, rest) = rest.split_at(k);
    let (client_salt, server_salt) = rest.split_at(s);
    let client = SrtpContext::new(profile, client_key, client_salt)?;
    let server = SrtpContext::new(profile, server_key, server_salt)?;
    Ok(if we_are_dtls_client {
        (client, server)
    } else {
        (server, client)
    })
}

/// RFC 3711 §4.3.3 AES-CM PRF with key derivation rate 0: the keystream of AES-CTR under the
/// master key, IV = master salt (left aligned, zero padded to 14 bytes as libsrtp does for
/// 12-byte GCM salts) XOR label at byte 7, counter in the last two bytes.
fn derive(
    master_key: &[u8],
    master_salt: &[u8],
    label: u8,
    out: &mut [u8],
) -> Result<(), SrtpError> {
    let mut iv = [0u8; 16];
    iv.get_mut(..master_salt.len())
        .ok_or(SrtpError::BadKeyLength)?
        .copy_from_slice(master_salt);
    iv[7] ^= label;
    out.fill(0);
    match master_key.len() {
        16 => ctr::Ctr128BE::<Aes128>::new_from_slices(master_key, &iv)
            .map_err(|_| SrtpError::BadKeyLength)?
            .apply_keystream(out),
        32 => ctr::Ctr128BE::<Aes256>::new_from_slices(master_key, &iv)
            .map_err(|_| SrtpError::BadKeyLength)?
            .apply_keystream(out),
        _ => return Err(SrtpError::BadKeyLength),
    }
    Ok(())
}

/// Session keys for one of SRTP/SRTCP under an AES-CM + HMAC-SHA1 profile.
#[derive(Clone)]
struct CmKeys {
    aes: Aes128Enc,
    salt: [u8; 14],
    /// HMAC keyed once; cloning it per packet reuses the precomputed inner/outer pads.
    mac: HmacSha1,
}

impl CmKeys {
    fn derive(master_key: &[u8], master_salt: &[u8], rtcp: bool) -> Result<Self, SrtpError> {
        let (enc_label, auth_label, salt_label) = if rtcp {
            (LABEL_RTCP_ENCRYPTION, LABEL_RTCP_AUTH, LABEL_RTCP_SALT)
        } else {
            (LABEL_RTP_ENCRYPTION, LABEL_RTP_AUTH, LABEL_RTP_SALT)
        };
        let mut key = [0u8; 16];
        let mut salt = [0u8; 14];
        let mut auth = [0u8; HMAC_KEY_LEN];
        derive(master_key, master_salt, enc_label, &mut key)?;
        derive(master_key, master_salt, auth_label, &mut auth)?;
        derive(master_key, master_salt, salt_label, &mut salt)?;
        Ok(Self::from_session(&key, &salt, &auth))
    }

    fn from_session(key: &[u8; 16], salt: &[u8; 14], auth: &[u8; HMAC_KEY_LEN]) -> Self {
        Self {
            aes: Aes128Enc::new(key.into()),
            salt: *salt,
            mac: <HmacSha1 as KeyInit>::new_from_slice(auth).expect("HMAC takes any key length"),
        }
    }

    /// XORs the AES-CM keystream for (ssrc, 48-bit index) into `data` (RFC 3711 §4.1.1).
    fn apply_keystream(&self, ssrc: u32, index: u64, data: &mut [u8]) {
        let mut iv = [0u8; 16];
        iv[..14].copy_from_slice(&self.salt);
        for (b, s) in iv[4..8].iter_mut().zip(ssrc.to_be_bytes()) {
            *b ^= s;
        }
        for (b, s) in iv[8..14].iter_mut().zip(index.to_be_bytes()[2..].iter()) {
            *b ^= s;
        }
        // Borrowing the expanded key avoids copying the key schedule per packet.
        let core = ctr::CtrCore::<&Aes128Enc, ctr::flavors::Ctr128BE>::inner_iv_init(
            &self.aes,
            &iv.into(),
        );
        ctr::Ctr128BE::from_core(core).apply_keystream(data);
    }

    /// HMAC-SHA1 over `parts` concatenated.
    fn mac(&self, parts: &[&[u8]]) -> HmacSha1 {
        let mut mac = self.mac.clone();
        for p in parts {
            mac.update(p);
        }
        mac
    }
}

/// Session keys for one of SRTP/SRTCP under an AEAD-GCM profile.
struct GcmKeys {
    key: LessSafeKey,
    salt: [u8; 12],
}

impl GcmKeys {
    fn derive(
        profile: SrtpProfile,
        master_key: &[u8],
        master_salt: &[u8],
        rtcp: bool,
    ) -> Result<Self, SrtpError> {
        let (enc_label, salt_label) = if rtcp {
            (LABEL_RTCP_ENCRYPTION, LABEL_RTCP_SALT)
        } else {
            (LABEL_RTP_ENCRYPTION, LABEL_RTP_SALT)
        };
        let mut key = [0u8; 32];
        let key = &mut key[..profile.master_key_len()];
        let mut salt = [0u8; 12];
        derive(master_key, master_salt, enc_label, key)?;
        derive(master_key, master_salt, salt_label, &mut salt)?;
        Self::from_session(profile, key, &salt)
    }

    fn from_session(profile: SrtpProfile, key: &[u8], salt: &[u8; 12]) -> Result<Self, SrtpError> {
        let alg = match profile {
            SrtpProfile::AeadAes256Gcm => &aead::AES_256_GCM,
            _ => &aead::AES_128_GCM,
        };
        let key = UnboundKey::new(alg, key).map_err(|_| SrtpError::BadKeyLength)?;
        Ok(Self {
            key: LessSafeKey::new(key),
            salt: *salt,
        })
    }

    /// RFC 7714 §8.1 / §9.1: 00 00 || SSRC || 32-bit word || 16-bit word, XOR the session salt.
    fn nonce(&self, ssrc: u32, hi: u32, lo: u16) -> Nonce {
        let mut iv = [0u8; 12];
        iv[2..6].copy_from_slice(&ssrc.to_be_bytes());
        iv[6..10].copy_from_slice(&hi.to_be_bytes());
        iv[10..12].copy_from_slice(&lo.to_be_bytes());
        for (b, s) in iv.iter_mut().zip(self.salt) {
            *b ^= s;
        }
        Nonce::assume_unique_for_key(iv)
    }

    fn rtp_nonce(&self, ssrc: u32, index: u64) -> Nonce {
        self.nonce(ssrc, (index >> 16) as u32, index as u16)
    }

    fn rtcp_nonce(&self, ssrc: u32, srtcp_index: u32) -> Nonce {
        // 00 00 || SSRC || 00 00 || 0 || 31-bit index: the index occupies the last four bytes.
        self.nonce(ssrc, srtcp_index >> 16, srtcp_index as u16)
    }
}

/// Both kinds of session keys live inline: a context is long-lived (one per transport
/// direction), so boxing the larger variant would only add an indirection per packet.
#[allow(clippy::large_enum_variant)]
enum Keys {
    Cm { rtp: CmKeys, rtcp: CmKeys },
    Gcm { rtp: GcmKeys, rtcp: GcmKeys },
}

/// A sliding replay window over 64-bit packet indices; `top` is the highest accepted index.
#[derive(Debug, Clone, Copy)]
struct ReplayWindow {
    top: u64,
    /// Bit i set: index `top - i` was accepted.
    seen: u128,
}

impl ReplayWindow {
    fn new(first: u64) -> Self {
        Self {
            top: first,
            seen: 1,
        }
    }

    fn check(&self, index: u64) -> Result<(), SrtpError> {
        if index > self.top {
            return Ok(());
        }
        let age = self.top - index;
        if age >= REPLAY_WINDOW || self.seen >> age & 1 == 1 {
            return Err(SrtpError::Replayed);
        }
        Ok(())
    }

    fn accept(&mut self, index: u64) {
        if index > self.top {
            let shift = index - self.top;
            self.seen = if shift >= REPLAY_WINDOW {
                0
            } else {
                self.seen << shift
            };
            self.seen |= 1;
            self.top = index;
        } else {
            self.seen |= 1 << (self.top - index);
        }
    }
}

/// RFC 3711 Appendix A: estimates the 48-bit index of `seq` from the highest index so far.
fn estimate_index(highest: u64, seq: u16) -> u64 {
    let roc = highest >> 16;
    let s_l = highest as u16;
    let v = if s_l < 0x8000 {
        if seq > s_l && seq - s_l > 0x8000 {
            // A late packet from before the last wrap; there is none before ROC 0, so such a
            // packet can only be far ahead in ROC 0 (the same choice as webrtc-rs).
            roc.saturating_sub(1)
        } else {
            roc
        }
    } else if s_l - 0x8000 > seq {
        roc + 1
    } else {
        roc
    };
    (v << 16 | u64::from(seq)) & 0xffff_ffff_ffff
}

/// Parsed RTP header: the length of the part left in the clear, SSRC and sequence number.
struct RtpHeader {
    len: usize,
    ssrc: u32,
    seq: u16,
}

/// Parses the RTP header of `pkt`, including CSRCs and the header extension.
fn parse_rtp(pkt: &[u8]) -> Result<RtpHeader, SrtpError> {
    let fixed = pkt.get(..RTP_FIXED_HEADER_LEN).ok_or(SrtpError::TooShort)?;
    if fixed[0] >> 6 != 2 {
        return Err(SrtpError::Malformed);
    }
    let csrc_count = usize::from(fixed[0] & 0x0f);
    let mut len = RTP_FIXED_HEADER_LEN + 4 * csrc_count;
    if fixed[0] & 0x10 != 0 {
        let ext = pkt.get(len..len + 4).ok_or(SrtpError::TooShort)?;
        len += 4 + 4 * usize::from(u16::from_be_bytes([ext[2], ext[3]]));
    }
    if len > pkt.len() {
        return Err(SrtpError::TooShort);
    }
    Ok(RtpHeader {
        len,
        seq: u16::from_be_bytes([fixed[2], fixed[3]]),
        ssrc: u32::from_be_bytes([fixed[8], fixed[9], fixed[10], fixed[11]]),
    })
}

/// Checks the RTCP version and returns the sender SSRC of the first packet.
fn parse_rtcp(pkt: &[u8]) -> Result<u32, SrtpError> {
    let h = pkt.get(..RTCP_CLEAR_LEN).ok_or(SrtpError::TooShort)?;
    if h[0] >> 6 != 2 {
        return Err(SrtpError::Malformed);
    }
    Ok(u32::from_be_bytes([h[4], h[5], h[6], h[7]]))
}

fn read_u32(buf: &[u8], at: usize) -> Result<u32, SrtpError> {
    let b = buf.get(at..at + 4).ok_or(SrtpError::TooShort)?;
    Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
}

/// One direction's SRTP state for one master key; keeps per-SSRC rollover counter and replay window.
///
/// On error the buffer's contents are unspecified (a failed AEAD open may have overwritten the
/// payload); the packet must be dropped.
pub struct SrtpContext {
    profile: SrtpProfile,
    keys: Keys,
    /// Outbound RTP: highest 48-bit index sent per SSRC (carries the ROC).
    rtp_out: HashMap<u32, u64>,
    /// Inbound RTP: replay window per SSRC; its top carries the ROC and highest sequence number.
    rtp_in: HashMap<u32, ReplayWindow>,
    /// Outbound RTCP: last SRTCP index used per SSRC.
    rtcp_out: HashMap<u32, u32>,
    /// Inbound RTCP: replay window over the SRTCP index per SSRC.
    rtcp_in: HashMap<u32, ReplayWindow>,
}

impl std::fmt::Debug for SrtpContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Keys stay out of logs.
        f.debug_struct("SrtpContext")
            .field("profile", &self.profile)
            .field("rtp_ssrcs", &(self.rtp_out.len() + self.rtp_in.len()))
            .field("rtcp_ssrcs", &(self.rtcp_out.len() + self.rtcp_in.len()))
            .finish_non_exhaustive()
    }
}

impl SrtpContext {
    /// Derives the session keys for `profile` from a master key and salt.
    pub fn new(
        profile: SrtpProfile,
        master_key: &[u8],
        master_salt: &[u8],
    ) -> Result<Self, SrtpError> {
        if master_key.len() != profile.master_key_len()
            || master_salt.len() != profile.master_salt_len()
        {
            return Err(SrtpError::BadKeyLength);
        }
        let keys = if profile.is_aead() {
            Keys::Gcm {
                rtp: GcmKeys::derive(profile, master_key, master_salt, false)?,
                rtcp: GcmKeys::derive(profile, master_key, master_salt, true)?,
            }
        } else {
            Keys::Cm {
                rtp: CmKeys::derive(master_key, master_salt, false)?,
                rtcp: CmKeys::derive(master_key, master_salt, true)?,
            }
        };
        Ok(Self::with_keys(profile, keys))
    }

    fn with_keys(profile: SrtpProfile, keys: Keys) -> Self {
        Self {
            profile,
            keys,
            rtp_out: HashMap::new(),
            rtp_in: HashMap::new(),
            rtcp_out: HashMap::new(),
            rtcp_in: HashMap::new(),
        }
    }

    /// The protection profile of this context.
    pub fn profile(&self) -> SrtpProfile {
        self.profile
    }

    /// Encrypts the RTP packet in buf[..len] in place, appends the tag; returns the new length.
    /// buf must have room for [`SrtpProfile::rtp_tag_len`] more bytes.
    pub fn protect_rtp(&mut self, buf: &mut [u8], len: usize) -> Result<usize, SrtpError> {
        let hdr = parse_rtp(buf.get(..len).ok_or(SrtpError::TooShort)?)?;
        let tag_len = self.profile.rtp_tag_len();
        let out_len = len + tag_len;
        if buf.len() < out_len {
            return Err(SrtpError::BufferTooSmall);
        }
        let index = match self.rtp_out.get_mut(&hdr.ssrc) {
            Some(highest) => {
                let index = estimate_index(*highest, hdr.seq);
                *highest = (*highest).max(index);
                index
            }
            None => {
                self.rtp_out.insert(hdr.ssrc, u64::from(hdr.seq));
                u64::from(hdr.seq)
            }
        };
        let (pkt, tag_out) = buf[..out_len].split_at_mut(len);
        match &self.keys {
            Keys::Cm { rtp, .. } => {
                rtp.apply_keystream(hdr.ssrc, index, &mut pkt[hdr.len..]);
                let roc = ((index >> 16) as u32).to_be_bytes();
                let tag = rtp.mac(&[pkt, &roc]).finalize().into_bytes();
                tag_out.copy_from_slice(&tag[..tag_len]);
            }
            Keys::Gcm { rtp, .. } => {
                let (header, payload) = pkt.split_at_mut(hdr.len);
                let tag = rtp
                    .key
                    .seal_in_place_separate_tag(
                        rtp.rtp_nonce(hdr.ssrc, index),
                        Aad::from(&*header),
                        payload,
                    )
                    .map_err(|_| SrtpError::TooShort)?;
                tag_out.copy_from_slice(tag.as_ref());
            }
        }
        Ok(out_len)
    }

    /// Authenticates + decrypts in place, checks replay; returns the plaintext RTP length.
    pub fn unprotect_rtp(&mut self, buf: &mut [u8], len: usize) -> Result<usize, SrtpError> {
        let tag_len = self.profile.rtp_tag_len();
        let pkt = buf.get_mut(..len).ok_or(SrtpError::TooShort)?;
        let plain_len = len.checked_sub(tag_len).ok_or(SrtpError::TooShort)?;
        let hdr = parse_rtp(&pkt[..plain_len])?;
        let state = self.rtp_in.get(&hdr.ssrc);
        let index = match state {
            Some(w) => {
                let index = estimate_index(w.top, hdr.seq);
                w.check(index)?;
                index
            }
            None => u64::from(hdr.seq),
        };
        match &self.keys {
            Keys::Cm { rtp, .. } => {
                let (authed, tag) = pkt.split_at_mut(plain_len);
                let roc = ((index >> 16) as u32).to_be_bytes();
                rtp.mac(&[authed, &roc])
                    .verify_truncated_left(tag)
                    .map_err(|_| SrtpError::AuthFailed)?;
                rtp.apply_keystream(hdr.ssrc, index, &mut authed[hdr.len..]);
            }
            Keys::Gcm { rtp, .. } => {
                let (header, payload) = pkt.split_at_mut(hdr.len);
                rtp.key
                    .open_in_place(rtp.rtp_nonce(hdr.ssrc, index), Aad::from(&*header), payload)
                    .map_err(|_| SrtpError::AuthFailed)?;
            }
        }
        // Only an authenticated packet may create state or move the window (RFC 3711 §3.3.2).
        match self.rtp_in.get_mut(&hdr.ssrc) {
            Some(w) => w.accept(index),
            None => {
                self.rtp_in.insert(hdr.ssrc, ReplayWindow::new(index));
            }
        }
        Ok(plain_len)
    }

    /// Encrypts the RTCP compound packet in buf[..len] in place, appends the E|index word and the
    /// tag; returns the new length. buf must have room for
    /// [`SrtpProfile::rtcp_tag_len`] + 4 more bytes.
    pub fn protect_rtcp(&mut self, buf: &mut [u8], len: usize) -> Result<usize, SrtpError> {
        let ssrc = parse_rtcp(buf.get(..len).ok_or(SrtpError::TooShort)?)?;
        let out_len = len + SRTCP_INDEX_LEN + self.profile.rtcp_tag_len();
        if buf.len() < out_len {
            return Err(SrtpError::BufferTooSmall);
        }
        // The first index used is 1, as libsrtp and webrtc-rs do.
        let counter = self.rtcp_out.entry(ssrc).or_insert(0);
        if *counter >= SRTCP_INDEX_MASK {
            return Err(SrtpError::IndexExhausted);
        }
        *counter += 1;
        let index = *counter;
        let e_index = (SRTCP_E_FLAG | index).to_be_bytes();
        let (pkt, trailer) = buf[..out_len].split_at_mut(len);
        match &self.keys {
            Keys::Cm { rtcp, .. } => {
                rtcp.apply_keystream(ssrc, u64::from(index), &mut pkt[RTCP_CLEAR_LEN..]);
                let (idx_out, tag_out) = trailer.split_at_mut(SRTCP_INDEX_LEN);
                idx_out.copy_from_slice(&e_index);
                let tag = rtcp.mac(&[pkt, &e_index]).finalize().into_bytes();
                tag_out.copy_from_slice(&tag[..tag_out.len()]);
            }
            Keys::Gcm { rtcp, .. } => {
                // RFC 7714 §9: AAD = header + sender SSRC + E|index; tag precedes E|index.
                let mut aad = [0u8; RTCP_CLEAR_LEN + SRTCP_INDEX_LEN];
                aad[..RTCP_CLEAR_LEN].copy_from_slice(&pkt[..RTCP_CLEAR_LEN]);
                aad[RTCP_CLEAR_LEN..].copy_from_slice(&e_index);
                let tag = rtcp
                    .key
                    .seal_in_place_separate_tag(
                        rtcp.rtcp_nonce(ssrc, index),
                        Aad::from(aad),
                        &mut pkt[RTCP_CLEAR_LEN..],
                    )
                    .map_err(|_| SrtpError::TooShort)?;
                let (tag_out, idx_out) = trailer.split_at_mut(GCM_TAG_LEN);
                tag_out.copy_from_slice(tag.as_ref());
                idx_out.copy_from_slice(&e_index);
            }
        }
        Ok(out_len)
    }

    /// Authenticates + decrypts (when the E flag is set) an SRTCP packet in place, checks replay;
    /// returns the plaintext RTCP length.
    pub fn unprotect_rtcp(&mut self, buf: &mut [u8], len: usize) -> Result<usize, SrtpError> {
        let tag_len = self.profile.rtcp_tag_len();
        let pkt = buf.get_mut(..len).ok_or(SrtpError::TooShort)?;
        let plain_len = len
            .checked_sub(SRTCP_INDEX_LEN + tag_len)
            .filter(|&l| l >= RTCP_CLEAR_LEN)
            .ok_or(SrtpError::TooShort)?;
        let ssrc = parse_rtcp(pkt)?;
        let index_at = match self.keys {
            Keys::Cm { .. } => plain_len,
            Keys::Gcm { .. } => len - SRTCP_INDEX_LEN,
        };
        let e_index = read_u32(pkt, index_at)?;
        let encrypted = e_index & SRTCP_E_FLAG != 0;
        let index = e_index & SRTCP_INDEX_MASK;
        if let Some(w) = self.rtcp_in.get(&ssrc) {
            w.check(u64::from(index))?;
        }
        match &self.keys {
            Keys::Cm { rtcp, .. } => {
                let (authed, tag) = pkt.split_at_mut(plain_len + SRTCP_INDEX_LEN);
                rtcp.mac(&[authed])
                    .verify_truncated_left(tag)
                    .map_err(|_| SrtpError::AuthFailed)?;
                if encrypted {
                    rtcp.apply_keystream(
                        ssrc,
                        u64::from(index),
                        &mut authed[RTCP_CLEAR_LEN..plain_len],
                    );
                }
            }
            Keys::Gcm { rtcp, .. } => {
                let nonce = rtcp.rtcp_nonce(ssrc, index);
                let e_bytes = e_index.to_be_bytes();
                if encrypted {
                    let mut aad = [0u8; RTCP_CLEAR_LEN + SRTCP_INDEX_LEN];
                    aad[..RTCP_CLEAR_LEN].copy_from_slice(&pkt[..RTCP_CLEAR_LEN]);
                    aad[RTCP_CLEAR_LEN..].copy_from_slice(&e_bytes);
                    rtcp.key
                        .open_in_place(
                            nonce,
                            Aad::from(aad),
                            &mut pkt[RTCP_CLEAR_LEN..len - SRTCP_INDEX_LEN],
                        )
                        .map_err(|_| SrtpError::AuthFailed)?;
                } else {
                    // RFC 7714 §9.2: the whole packet plus E|index is AAD. Move the E|index
                    // word over the tag so the AAD is contiguous, keeping the tag aside.
                    let mut tag = [0u8; GCM_TAG_LEN];
                    tag.copy_from_slice(&pkt[plain_len..plain_len + GCM_TAG_LEN]);
                    pkt[plain_len..plain_len + SRTCP_INDEX_LEN].copy_from_slice(&e_bytes);
                    let (aad, rest) = pkt.split_at_mut(plain_len + SRTCP_INDEX_LEN);
                    rtcp.key
                        .open_in_place_separate_tag(
                            nonce,
                            Aad::from(&*aad),
                            aead::Tag::from(tag),
                            &mut rest[..0],
                            0..,
                        )
                        .map_err(|_| SrtpError::AuthFailed)?;
                }
            }
        }
        match self.rtcp_in.get_mut(&ssrc) {
            Some(w) => w.accept(u64::from(index)),
            None => {
                self.rtcp_in
                    .insert(ssrc, ReplayWindow::new(u64::from(index)));
            }
        }
        Ok(plain_len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use webrtc_srtp::context::Context as WebrtcContext;
    use webrtc_srtp::protection_profile::ProtectionProfile as WebrtcProfile;

    fn hex(s: &str) -> Vec<u8> {
        let s: String = s.chars().filter(|c| !c.is_whitespace()).collect();
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    fn webrtc_profile(p: SrtpProfile) -> WebrtcProfile {
        match p {
            SrtpProfile::Aes128CmHmacSha1_80 => WebrtcProfile::Aes128CmHmacSha1_80,
            SrtpProfile::Aes128CmHmacSha1_32 => WebrtcProfile::Aes128CmHmacSha1_32,
            SrtpProfile::AeadAes128Gcm => WebrtcProfile::AeadAes128Gcm,
            SrtpProfile::AeadAes256Gcm => WebrtcProfile::AeadAes256Gcm,
        }
    }

    fn master(p: SrtpProfile) -> (Vec<u8>, Vec<u8>) {
        let key = (0..p.master_key_len()).map(|i| (i * 7 + 3) as u8).collect();
        let salt = (0..p.master_salt_len()).map(|i| 0xa0 ^ i as u8).collect();
        (key, salt)
    }

    fn ours(p: SrtpProfile) -> SrtpContext {
        let (k, s) = master(p);
        SrtpContext::new(p, &k, &s).unwrap()
    }

    fn theirs(p: SrtpProfile) -> WebrtcContext {
        let (k, s) = master(p);
        WebrtcContext::new(&k, &s, webrtc_profile(p), None, None).unwrap()
    }

    /// Builds an RTP packet with `csrcs` CSRCs, an optional one-byte-header extension of
    /// `ext_words` 32-bit words, `payload_len` payload bytes and `padding` bytes of padding.
    fn rtp(
        seq: u16,
        ssrc: u32,
        csrcs: u8,
        ext_words: Option<u16>,
        payload_len: usize,
        padding: u8,
    ) -> Vec<u8> {
        let mut p = vec![
            0x80 | if padding > 0 { 0x20 } else { 0 }
                | if ext_words.is_some() { 0x10 } else { 0 }
                | csrcs,
            96,
        ];
        p.extend_from_slice(&seq.to_be_bytes());
        p.extend_from_slice(&(u32::from(seq).wrapping_mul(960)).to_be_bytes());
        p.extend_from_slice(&ssrc.to_be_bytes());
        for c in 0..u32::from(csrcs) {
            p.extend_from_slice(&(0x1000 + c).to_be_bytes());
        }
        if let Some(words) = ext_words {
            p.extend_from_slice(&[0xbe, 0xde]);
            p.extend_from_slice(&words.to_be_bytes());
            // Well-formed one-byte-header elements (id, L=2, three data bytes), one per
            // word: webrtc-srtp re-serialises the parsed header, so it must round-trip.
            for w in 0..words {
                p.extend_from_slice(&[((w % 14 + 1) << 4) as u8 | 2, 0x5a, w as u8, 0xa5]);
            }
        }
        p.extend((0..payload_len).map(|i| (i as u8).wrapping_add(seq as u8)));
        if padding > 0 {
            p.extend(std::iter::repeat_n(0, usize::from(padding) - 1));
            p.push(padding);
        }
        p
    }

    /// An RTCP compound packet: SR, RR with one report block, SDES with a CNAME.
    fn rtcp_compound(ssrc: u32, n: u32) -> Vec<u8> {
        let mut p = vec![0x80, 200, 0, 6];
        p.extend_from_slice(&ssrc.to_be_bytes());
        p.extend_from_slice(&[0xe0, 0, 0, 0, 0x10, 0x20, 0x30, n as u8]);
        p.extend_from_slice(&(n * 960).to_be_bytes());
        p.extend_from_slice(&n.to_be_bytes());
        p.extend_from_slice(&(n * 1000).to_be_bytes());
        p.extend_from_slice(&[0x81, 201, 0, 7]);
        p.extend_from_slice(&ssrc.to_be_bytes());
        p.extend_from_slice(&0xdead_beef_u32.to_be_bytes());
        p.extend_from_slice(&[0; 20]);
        let cname = b"ringsfu@test";
        p.extend_from_slice(&[0x81, 202, 0, 5]);
        p.extend_from_slice(&ssrc.to_be_bytes());
        p.extend_from_slice(&[1, cname.len() as u8]);
        p.extend_from_slice(cname);
        p.extend_from_slice(&[0, 0]);
        p
    }

    fn protect_rtp(ctx: &mut SrtpContext, pkt: &[u8]) -> Result<Vec<u8>, SrtpError> {
        let mut buf = pkt.to_vec();
        buf.resize(pkt.len() + 16, 0);
        let n = ctx.protect_rtp(&mut buf, pkt.len())?;
        buf.truncate(n);
        Ok(buf)
    }

    fn unprotect_rtp(ctx: &mut SrtpContext, pkt: &[u8]) -> Result<Vec<u8>, SrtpError> {
        let mut buf = pkt.to_vec();
        let n = ctx.unprotect_rtp(&mut buf, pkt.len())?;
        buf.truncate(n);
        Ok(buf)
    }

    fn protect_rtcp(ctx: &mut SrtpContext, pkt: &[u8]) -> Result<Vec<u8>, SrtpError> {
        let mut buf = pkt.to_vec();
        buf.resize(pkt.len() + 20, 0);
        let n = ctx.protect_rtcp(&mut buf, pkt.len())?;
        buf.truncate(n);
        Ok(buf)
    }

    fn unprotect_rtcp(ctx: &mut SrtpContext, pkt: &[u8]) -> Result<Vec<u8>, SrtpError> {
        let mut buf = pkt.to_vec();
        let n = ctx.unprotect_rtcp(&mut buf, pkt.len())?;
        buf.truncate(n);
        Ok(buf)
    }

    #[test]
    fn profile_parameters_match_webrtc_and_ids_round_trip() {
        for p in SrtpProfile::ALL {
            let w = webrtc_profile(p);
            assert_eq!(p.master_key_len(), w.key_len(), "{p:?}");
            assert_eq!(p.master_salt_len(), w.salt_len(), "{p:?}");
            assert_eq!(
                p.rtp_tag_len(),
                w.rtp_auth_tag_len() + w.aead_auth_tag_len()
            );
            assert_eq!(
                p.rtcp_tag_len(),
                w.rtcp_auth_tag_len() + w.aead_auth_tag_len()
            );
            assert_eq!(SrtpProfile::from_dtls_id(p.dtls_id()), Some(p));
            assert_eq!(p.dtls_id(), w as u16);
            assert_eq!(SrtpProfile::from_name(p.name()), Some(p));
        }
        assert_eq!(SrtpProfile::from_dtls_id(0x0003), None);
        assert_eq!(SrtpProfile::from_name("AES_CM_256_HMAC_SHA1_80"), None);
        assert_eq!(keying_material_len(SrtpProfile::Aes128CmHmacSha1_80), 60);
        assert_eq!(keying_material_len(SrtpProfile::AeadAes128Gcm), 56);
        assert_eq!(keying_material_len(SrtpProfile::AeadAes256Gcm), 88);
    }

    #[test]
    fn bad_key_lengths_are_rejected() {
        for p in SrtpProfile::ALL {
            let (k, s) = master(p);
            assert_eq!(
                SrtpContext::new(p, &k[1..], &s).unwrap_err(),
                SrtpError::BadKeyLength
            );
            assert_eq!(
                SrtpContext::new(p, &k, &s[1..]).unwrap_err(),
                SrtpError::BadKeyLength
            );
            let material = vec![1u8; keying_material_len(p) + 1];
            assert_eq!(
                contexts_from_dtls(p, &material, true).unwrap_err(),
                SrtpError::BadKeyLength
            );
        }
    }

    /// RFC 3711 Appendix B.3: session keys derived from the example master key and salt.
    #[test]
    fn rfc3711_b3_key_derivation() {
        let key = hex("E1F97A0D3E018BE0D64FA32C06DE4139");
        let salt = hex("0EC675AD498AFEEBB6960B3AABE6");
        let mut enc = [0u8; 16];
        let mut sal = [0u8; 14];
        let mut auth = [0u8; 94];
        derive(&key, &salt, LABEL_RTP_ENCRYPTION, &mut enc).unwrap();
        derive(&key, &salt, LABEL_RTP_SALT, &mut sal).unwrap();
        derive(&key, &salt, LABEL_RTP_AUTH, &mut auth).unwrap();
        assert_eq!(enc.to_vec(), hex("C61E7A93744F39EE10734AFE3FF7A087"));
        assert_eq!(sal.to_vec(), hex("30CBBC08863D8C85D49DB34A9AE1"));
        assert_eq!(
            auth.to_vec(),
            hex(
                "CEBE321F6FF7716B6FD4AB49AF256A15 6D38BAA48F0A0ACF3C34E2359E6CDBCE
                 E049646C43D9327AD175578EF7227098 6371C10C9A369AC2F94A8C5FBCDDDC25
                 6D6E919A48B610EF17C2041E47403576 6B68642C59BBFC2F34DB60DBDFB2"
            )
        );
    }

    /// RFC 3711 Appendix B.2: AES-CM keystream for SSRC 0, index 0.
    #[test]
    fn rfc3711_b2_aes_cm_keystream() {
        let key: [u8; 16] = hex("2B7E151628AED2A6ABF7158809CF4F3C").try_into().unwrap();
        let salt: [u8; 14] = hex("F0F1F2F3F4F5F6F7F8F9FAFBFCFD").try_into().unwrap();
        let keys = CmKeys::from_session(&key, &salt, &[0; HMAC_KEY_LEN]);
        let mut stream = [0u8; 48];
        keys.apply_keystream(0, 0, &mut stream);
        assert_eq!(
            stream.to_vec(),
            hex(
                "E03EAD0935C95E80E166B16DD92B4EB4 D23513162B02D0F72A43A2FE4A5F97AB
                 41E95B3BB0A2E8DD477901E4FCA894C0"
            )
        );
    }

    const RFC7714_KEY_128: &str = "000102030405060708090a0b0c0d0e0f";
    const RFC7714_KEY_256: &str =
        "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
    const RFC7714_SALT: &str = "517569642070726f2071756f";
    const RFC7714_RTP: &str = "8040f17b8041f8d35501a0b2 47616c6c696120657374206f6d6e6973
        2064697669736120696e207061727465732074726573";
    const RFC7714_RTCP: &str = "81c8000d4d6172734e5450314e545032525450200000042a0000e930
        4c756e61deadbeefdeadbeefdeadbeefdeadbeefdeadbeef";

    /// A context keyed directly with RFC 7714's session key and salt (the vectors sit
    /// below the key derivation function).
    fn rfc7714_context(profile: SrtpProfile, key: &str) -> SrtpContext {
        let salt: [u8; 12] = hex(RFC7714_SALT).try_into().unwrap();
        let keys = || GcmKeys::from_session(profile, &hex(key), &salt).unwrap();
        SrtpContext::with_keys(
            profile,
            Keys::Gcm {
                rtp: keys(),
                rtcp: keys(),
            },
        )
    }

    /// RFC 7714 §16.1.1 / §16.2.1 (SRTP) and §17.1 / §17.2 (SRTCP, index 0x5d4).
    #[test]
    fn rfc7714_gcm_vectors() {
        let cases = [
            (
                SrtpProfile::AeadAes128Gcm,
                RFC7714_KEY_128,
                "8040f17b8041f8d35501a0b2f24de3a3fb34de6cacba861c9d7e4bcabe633bd50d294e6f
                 42a5f47a51c7d19b36de3adf8833899d7f27beb16a9152cf765ee4390cce",
                "81c8000d4d61727363e94885dcdab67ca727d7662f6b7e997ff5c0f76c06f32dc676a5f1
                 730d6fda4ce09b4686303ded0bb9275bc84aa45896cf4d2fc5abf87245d9eade800005d4",
            ),
            (
                SrtpProfile::AeadAes256Gcm,
                RFC7714_KEY_256,
                "8040f17b8041f8d35501a0b232b1de78a822fe12ef9f78fa332e33aab18012389a58e2f3
                 b50b2a0276ffae0f1ba63799b87b7aa3db36dfffd6b0f9bb7878d7a76c13",
                "81c8000d4d617273d50ae4d1f5ce5d304ba297e47d470c282c3ece5dbffe0a50a2eaa5c1
                 110555be8415f658c61de0476f1b6fad1d1eb30c4446839f57ff6f6cb26ac3be800005d4",
            ),
        ];
        for (profile, key, srtp, srtcp) in cases {
            let (rtp, srtp) = (hex(RFC7714_RTP), hex(srtp));
            let mut tx = rfc7714_context(profile, key);
            assert_eq!(protect_rtp(&mut tx, &rtp).unwrap(), srtp, "{profile:?}");
            let mut rx = rfc7714_context(profile, key);
            assert_eq!(unprotect_rtp(&mut rx, &srtp).unwrap(), rtp, "{profile:?}");

            let (rtcp, srtcp) = (hex(RFC7714_RTCP), hex(srtcp));
            let mut tx = rfc7714_context(profile, key);
            // The next index protect_rtcp uses is the vector's 0x5d4.
            tx.rtcp_out.insert(0x4d61_7273, 0x5d3);
            assert_eq!(protect_rtcp(&mut tx, &rtcp).unwrap(), srtcp, "{profile:?}");
            let mut rx = rfc7714_context(profile, key);
            assert_eq!(
                unprotect_rtcp(&mut rx, &srtcp).unwrap(),
                rtcp,
                "{profile:?}"
            );

            // The last index 2^31 - 1 is used once; after it the sender refuses to go on.
            tx.rtcp_out.insert(0x4d61_7273, SRTCP_INDEX_MASK - 1);
            let last = protect_rtcp(&mut tx, &rtcp).unwrap();
            assert_eq!(last[last.len() - 4..], [0xff; 4]);
            assert_eq!(protect_rtcp(&mut tx, &rtcp), Err(SrtpError::IndexExhausted));
        }
    }

    /// RFC 7714 §17.3: SRTCP with the E flag clear is authenticated only.
    #[test]
    fn rfc7714_srtcp_authenticated_only() {
        let tagged = hex(
            "81c8000d4d6172734e5450314e545032525450200000042a0000e9304c756e61deadbeef
             deadbeefdeadbeefdeadbeefdeadbeef841dd9683dd78ec92ae58790125f62b3000005d4",
        );
        let mut rx = rfc7714_context(SrtpProfile::AeadAes128Gcm, RFC7714_KEY_128);
        assert_eq!(unprotect_rtcp(&mut rx, &tagged).unwrap(), hex(RFC7714_RTCP));
        // Flipping a clear byte must fail authentication.
        let mut forged = tagged.clone();
        forged[20] ^= 1;
        let mut rx = rfc7714_context(SrtpProfile::AeadAes128Gcm, RFC7714_KEY_128);
        assert_eq!(unprotect_rtcp(&mut rx, &forged), Err(SrtpError::AuthFailed));
    }

    /// RFC 3711 §4.3.1 key derivation (key derivation rate 0) written out here with the aes/ctr
    /// crates, independently of `derive`: AES-CM keystream under the master key with
    /// IV = (master salt XOR label at octet 7) * 2^16.
    fn independent_session_key(
        master_key: &[u8],
        master_salt: &[u8],
        label: u8,
        n: usize,
    ) -> Vec<u8> {
        use ::aes::cipher::{KeyIvInit, StreamCipher};
        let mut iv = [0u8; 16];
        iv[..14].copy_from_slice(master_salt);
        iv[7] ^= label;
        let mut out = vec![0u8; n];
        let mut c = ::ctr::Ctr128BE::<::aes::Aes128>::new(master_key.into(), &iv.into());
        c.apply_keystream(&mut out);
        out
    }

    #[test]
    fn independent_key_derivation_reproduces_rfc3711_b3() {
        let key = hex("E1F97A0D3E018BE0D64FA32C06DE4139");
        let salt = hex("0EC675AD498AFEEBB6960B3AABE6");
        assert_eq!(
            independent_session_key(&key, &salt, 0, 16),
            hex("C61E7A93744F39EE10734AFE3FF7A087")
        );
        assert_eq!(
            independent_session_key(&key, &salt, 2, 14),
            hex("30CBBC08863D8C85D49DB34A9AE1")
        );
    }

    /// SRTCP with the E flag clear under AES-CM: HMAC over packet || index, body in clear. The
    /// tag is computed here (RFC 3711 §4.2: HMAC-SHA1 with the SRTCP authentication key, label 4,
    /// truncated to 80 bits), not with the context's own MAC.
    #[test]
    fn aes_cm_srtcp_authenticated_only() {
        let p = SrtpProfile::Aes128CmHmacSha1_80;
        let rtcp = rtcp_compound(0x1234_5678, 1);
        let mut rx = ours(p);
        let mut pkt = rtcp.clone();
        pkt.extend_from_slice(&7u32.to_be_bytes()); // E = 0, SRTCP index 7
        let (mk, ms) = master(p);
        let auth_key = independent_session_key(&mk, &ms, 0x04, 20);
        let mut mac = <hmac::Hmac<sha1::Sha1> as Mac>::new_from_slice(&auth_key).unwrap();
        mac.update(&pkt);
        let tag = mac.finalize().into_bytes();
        pkt.extend_from_slice(&tag[..10]);
        assert_eq!(unprotect_rtcp(&mut rx, &pkt).unwrap(), rtcp);
        assert_eq!(unprotect_rtcp(&mut rx, &pkt), Err(SrtpError::Replayed));
    }

    /// Packets with CSRCs, header extensions and padding, in every shape, against webrtc-srtp:
    /// identical ciphertext, and each side decrypts the other's.
    #[test]
    fn rtp_matches_webrtc_srtp() {
        let shapes: [(u8, Option<u16>, usize, u8); 7] = [
            (0, None, 160, 0),
            (0, None, 1200, 0),
            (2, None, 100, 0),
            (0, Some(3), 100, 0),
            (3, Some(2), 333, 4),
            (15, Some(1), 7, 1),
            (0, Some(0), 0, 0),
        ];
        for p in SrtpProfile::ALL {
            let (mut our_tx, mut our_rx) = (ours(p), ours(p));
            let (mut their_tx, mut their_rx) = (theirs(p), theirs(p));
            for (i, &(csrcs, ext, payload, padding)) in shapes.iter().cycle().take(50).enumerate() {
                let seq = 1000 + i as u16;
                let plain = rtp(seq, 0xcafe_f00d, csrcs, ext, payload, padding);
                let ours_ct = protect_rtp(&mut our_tx, &plain).unwrap();
                let theirs_ct = their_tx.encrypt_rtp(&plain).unwrap();
                assert_eq!(ours_ct, theirs_ct.to_vec(), "{p:?} shape {i}");
                assert_eq!(ours_ct.len(), plain.len() + p.rtp_tag_len());
                // Header (with extension) stays in the clear, payload does not.
                let hlen = parse_rtp(&plain).unwrap().len;
                assert_eq!(ours_ct[..hlen], plain[..hlen]);
                if plain.len() - hlen >= 8 {
                    assert_ne!(ours_ct[hlen..plain.len()], plain[hlen..]);
                }
                assert_eq!(their_rx.decrypt_rtp(&ours_ct).unwrap().to_vec(), plain);
                assert_eq!(unprotect_rtp(&mut our_rx, &theirs_ct).unwrap(), plain);
            }
        }
    }

    #[test]
    fn rtcp_compound_matches_webrtc_srtp() {
        for p in SrtpProfile::ALL {
            let (mut our_tx, mut our_rx) = (ours(p), ours(p));
            let (mut their_tx, mut their_rx) = (theirs(p), theirs(p));
            for n in 0..20 {
                let ssrc = 0x1111_0000 + n % 3;
                let plain = rtcp_compound(ssrc, n);
                let ours_ct = protect_rtcp(&mut our_tx, &plain).unwrap();
                let theirs_ct = their_tx.encrypt_rtcp(&plain).unwrap();
                assert_eq!(ours_ct, theirs_ct.to_vec(), "{p:?} packet {n}");
                assert_eq!(ours_ct.len(), plain.len() + 4 + p.rtcp_tag_len());
                assert_eq!(ours_ct[..8], plain[..8]);
                assert_eq!(their_rx.decrypt_rtcp(&ours_ct).unwrap().to_vec(), plain);
                assert_eq!(unprotect_rtcp(&mut our_rx, &theirs_ct).unwrap(), plain);
            }
        }
    }

    /// Several thousand packets across the 65535 -> 0 wrap: ciphertext stays identical to
    /// webrtc-srtp (so the outbound ROC increments alike) and both sides keep decrypting.
    #[test]
    fn rollover_counter_wraps_on_both_sides() {
        for p in SrtpProfile::ALL {
            let (mut our_tx, mut our_rx) = (ours(p), ours(p));
            let (mut their_tx, mut their_rx) = (theirs(p), theirs(p));
            let start: u16 = 65535 - 2500;
            for i in 0..5000u16 {
                let seq = start.wrapping_add(i);
                let plain = rtp(seq, 0x0bad_cafe, 0, Some(1), 40, 0);
                let ours_ct = protect_rtp(&mut our_tx, &plain).unwrap();
                let theirs_ct = their_tx.encrypt_rtp(&plain).unwrap();
                assert_eq!(ours_ct, theirs_ct.to_vec(), "{p:?} seq {seq}");
                assert_eq!(their_rx.decrypt_rtp(&ours_ct).unwrap().to_vec(), plain);
                assert_eq!(unprotect_rtp(&mut our_rx, &theirs_ct).unwrap(), plain);
            }
            assert_eq!(our_tx.rtp_out[&0x0bad_cafe] >> 16, 1, "sender ROC");
            assert_eq!(our_rx.rtp_in[&0x0bad_cafe].top >> 16, 1, "receiver ROC");
        }
    }

    /// Out-of-order delivery around the wrap, including a pre-wrap packet arriving after
    /// a hundred post-wrap packets.
    #[test]
    fn reordered_packets_near_the_wrap_decrypt() {
        for p in SrtpProfile::ALL {
            let mut tx = ours(p);
            let mut their_tx = theirs(p);
            let seqs: Vec<u16> = (65500..=65535).chain(0..200).collect();
            let sent: Vec<(u16, Vec<u8>, Vec<u8>)> = seqs
                .iter()
                .map(|&s| {
                    let plain = rtp(s, 42, 1, None, 80, 0);
                    let ct = protect_rtp(&mut tx, &plain).unwrap();
                    assert_eq!(ct, their_tx.encrypt_rtp(&plain).unwrap().to_vec());
                    (s, plain, ct)
                })
                .collect();
            let by_seq = |s: u16| sent.iter().find(|(q, ..)| *q == s).unwrap();
            // Pre-wrap stragglers 65520 and 65530 arrive ~100 packets after the wrap, still
            // inside the 128-packet window.
            let order: Vec<u16> = [65500, 65501, 65503, 2, 65502, 0, 65535, 1, 65534, 3]
                .into_iter()
                .chain(4..100)
                .chain([65520, 100, 65530])
                .chain(101..200)
                .collect();
            let mut rx = ours(p);
            for s in order {
                let (_, plain, ct) = by_seq(s);
                assert_eq!(
                    unprotect_rtp(&mut rx, ct).as_ref(),
                    Ok(plain),
                    "{p:?} seq {s}"
                );
            }
            assert_eq!(rx.rtp_in[&42].top, 65536 + 199);
            // The same straggler again is a replay; an unseen one now past the window too.
            assert_eq!(
                unprotect_rtp(&mut rx, &by_seq(65520).2),
                Err(SrtpError::Replayed)
            );
            assert_eq!(
                unprotect_rtp(&mut rx, &by_seq(65504).2),
                Err(SrtpError::Replayed)
            );
        }
    }

    #[test]
    fn replay_window() {
        for p in SrtpProfile::ALL {
            let mut tx = ours(p);
            let pkts: Vec<(Vec<u8>, Vec<u8>)> = (0..=300u16)
                .map(|s| {
                    let plain = rtp(s, 7, 0, None, 20, 0);
                    (plain.clone(), protect_rtp(&mut tx, &plain).unwrap())
                })
                .collect();
            let mut rx = ours(p);
            for (s, (plain, ct)) in pkts.iter().enumerate() {
                if s != 250 && s != 100 {
                    assert_eq!(unprotect_rtp(&mut rx, ct).as_ref(), Ok(plain));
                }
            }
            // Exact duplicate of the newest and of a recent packet.
            assert_eq!(
                unprotect_rtp(&mut rx, &pkts[300].1),
                Err(SrtpError::Replayed)
            );
            assert_eq!(
                unprotect_rtp(&mut rx, &pkts[299].1),
                Err(SrtpError::Replayed)
            );
            // Never received but older than the 128-packet window.
            assert_eq!(
                unprotect_rtp(&mut rx, &pkts[100].1),
                Err(SrtpError::Replayed)
            );
            // Out of order inside the window: accepted once.
            assert_eq!(
                unprotect_rtp(&mut rx, &pkts[250].1).as_ref(),
                Ok(&pkts[250].0)
            );
            assert_eq!(
                unprotect_rtp(&mut rx, &pkts[250].1),
                Err(SrtpError::Replayed)
            );

            // A forged packet far ahead must not move the window.
            let mut forged = protect_rtp(&mut ours(p), &rtp(5000, 7, 0, None, 20, 0)).unwrap();
            let last = forged.len() - 1;
            forged[last] ^= 0x80;
            assert_eq!(unprotect_rtp(&mut rx, &forged), Err(SrtpError::AuthFailed));
            assert_eq!(
                unprotect_rtp(&mut rx, &pkts[200].1),
                Err(SrtpError::Replayed)
            );

            // SRTCP: duplicate rejected, distinct index accepted.
            let mut tx = ours(p);
            let a = protect_rtcp(&mut tx, &rtcp_compound(9, 1)).unwrap();
            let b = protect_rtcp(&mut tx, &rtcp_compound(9, 2)).unwrap();
            let mut rx = ours(p);
            assert!(unprotect_rtcp(&mut rx, &b).is_ok());
            assert!(unprotect_rtcp(&mut rx, &a).is_ok());
            assert_eq!(unprotect_rtcp(&mut rx, &a), Err(SrtpError::Replayed));
            assert_eq!(unprotect_rtcp(&mut rx, &b), Err(SrtpError::Replayed));
        }
    }

    #[test]
    fn replay_window_unit() {
        let mut w = ReplayWindow::new(1000);
        assert_eq!(w.check(1000), Err(SrtpError::Replayed));
        assert_eq!(w.check(1000 - 127), Ok(()));
        assert_eq!(w.check(1000 - 128), Err(SrtpError::Replayed));
        w.accept(1000 + 500);
        assert_eq!(w.check(1000), Err(SrtpError::Replayed));
        assert_eq!(w.check(1499), Ok(()));
        w.accept(1499);
        assert_eq!(w.check(1499), Err(SrtpError::Replayed));
        w.accept(1501);
        assert_eq!(w.check(1499), Err(SrtpError::Replayed));
        assert_eq!(w.check(1500), Err(SrtpError::Replayed));
        assert_eq!(w.check(1498), Ok(()));
    }

    #[test]
    fn index_estimation_follows_rfc3711_appendix_a() {
        // (highest index, seq, expected index)
        let cases = [
            (0, 5, 5),
            (100, 50, 50),
            (65535, 0, 65536),
            (65536 + 10, 65530, 65530),
            (65536 + 10, 20, 65536 + 20),
            (3 << 16 | 40000, 100, 4 << 16 | 100),
            (3 << 16 | 40000, 30000, 3 << 16 | 30000),
            (3 << 16 | 100, 60000, 2 << 16 | 60000),
            // No ROC before 0: a far packet is taken as ahead in ROC 0.
            (10, 60000, 60000),
        ];
        for (highest, seq, want) in cases {
            assert_eq!(estimate_index(highest, seq), want, "{highest} {seq}");
        }
    }

    #[test]
    fn forged_packets_fail_authentication() {
        for p in SrtpProfile::ALL {
            let plain = rtp(77, 0x5555, 1, Some(2), 200, 0);
            let ct = protect_rtp(&mut ours(p), &plain).unwrap();
            let hlen = parse_rtp(&plain).unwrap().len;
            // Payload, tag, header extension and CSRC bytes are all covered.
            for at in [
                hlen + 5,
                ct.len() - 1,
                ct.len() - p.rtp_tag_len(),
                hlen - 2,
                13,
            ] {
                for bit in [0x01, 0x80] {
                    let mut forged = ct.clone();
                    forged[at] ^= bit;
                    assert_eq!(
                        unprotect_rtp(&mut ours(p), &forged),
                        Err(SrtpError::AuthFailed),
                        "{p:?} byte {at}"
                    );
                }
            }
            // The right packet under other keys.
            let (k, s) = master(p);
            let mut other = SrtpContext::new(p, &k, &vec![0; s.len()]).unwrap();
            assert_eq!(unprotect_rtp(&mut other, &ct), Err(SrtpError::AuthFailed));

            let rtcp = rtcp_compound(0x5555, 3);
            let ct = protect_rtcp(&mut ours(p), &rtcp).unwrap();
            for at in [3, 9, 40, ct.len() - 1, ct.len() - 5] {
                let mut forged = ct.clone();
                forged[at] ^= 0x10;
                assert_eq!(
                    unprotect_rtcp(&mut ours(p), &forged),
                    Err(SrtpError::AuthFailed),
                    "{p:?} rtcp byte {at}"
                );
            }
        }
    }

    #[test]
    fn truncated_and_garbage_packets_error_without_panic() {
        for p in SrtpProfile::ALL {
            let ct = protect_rtp(&mut ours(p), &rtp(1, 2, 2, Some(2), 30, 3)).unwrap();
            for n in 0..ct.len() {
                assert!(unprotect_rtp(&mut ours(p), &ct[..n]).is_err(), "{p:?} {n}");
            }
            let ct = protect_rtcp(&mut ours(p), &rtcp_compound(2, 1)).unwrap();
            for n in 0..ct.len() {
                assert!(unprotect_rtcp(&mut ours(p), &ct[..n]).is_err(), "{p:?} {n}");
            }
            let mut buf = [0u8; 64];
            assert_eq!(
                ours(p).unprotect_rtp(&mut buf, 65),
                Err(SrtpError::TooShort)
            );
            assert_eq!(ours(p).protect_rtp(&mut buf, 65), Err(SrtpError::TooShort));
            assert_eq!(ours(p).protect_rtcp(&mut buf, 4), Err(SrtpError::TooShort));
            // Version 0 is not RTP.
            assert_eq!(ours(p).protect_rtp(&mut buf, 40), Err(SrtpError::Malformed));
            // An extension whose length runs past the packet.
            let mut bad = rtp(1, 2, 0, Some(1), 0, 0);
            bad[15] = 200;
            bad.resize(64, 0);
            assert_eq!(ours(p).protect_rtp(&mut bad, 20), Err(SrtpError::TooShort));
            // No room for the tag.
            let plain = rtp(1, 2, 0, None, 20, 0);
            let mut tight = plain.clone();
            assert_eq!(
                ours(p).protect_rtp(&mut tight, plain.len()),
                Err(SrtpError::BufferTooSmall)
            );
            let mut tight = rtcp_compound(2, 1);
            let n = tight.len();
            assert_eq!(
                ours(p).protect_rtcp(&mut tight, n),
                Err(SrtpError::BufferTooSmall)
            );

            // Deterministic pseudo-random garbage, with plausible first bytes.
            let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
            let mut rx = ours(p);
            for _ in 0..3000 {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let len = (x % 80) as usize;
                let mut b: Vec<u8> = (0..len).map(|i| (x >> (i % 56)) as u8).collect();
                if let Some(first) = b.first_mut() {
                    *first = 0x80 | (*first & 0x3f);
                }
                assert!(rx.unprotect_rtp(&mut b.clone(), len).is_err());
                assert!(rx.unprotect_rtcp(&mut b, len).is_err());
            }
        }
    }

    #[test]
    fn dtls_keying_material_split() {
        for p in SrtpProfile::ALL {
            let material: Vec<u8> = (0..keying_material_len(p)).map(|i| i as u8).collect();
            let (mut client_out, mut client_in) = contexts_from_dtls(p, &material, true).unwrap();
            let (mut server_out, mut server_in) = contexts_from_dtls(p, &material, false).unwrap();
            let plain = rtp(1, 3, 0, None, 50, 0);
            let c2s = protect_rtp(&mut client_out, &plain).unwrap();
            let s2c = protect_rtp(&mut server_out, &plain).unwrap();
            assert_ne!(c2s, s2c);
            assert_eq!(unprotect_rtp(&mut server_in, &c2s).unwrap(), plain);
            assert_eq!(unprotect_rtp(&mut client_in, &s2c).unwrap(), plain);
            // Our own outbound packets do not authenticate with the inbound keys.
            let c2s_next = protect_rtp(&mut client_out, &rtp(2, 3, 0, None, 50, 0)).unwrap();
            assert_eq!(
                unprotect_rtp(&mut client_in, &c2s_next),
                Err(SrtpError::AuthFailed)
            );
            // RFC 5764 §4.2 layout: client key, server key, client salt, server salt.
            let (k, s) = (p.master_key_len(), p.master_salt_len());
            let client_key = &material[..k];
            let client_salt = &material[2 * k..2 * k + s];
            let mut reference =
                WebrtcContext::new(client_key, client_salt, webrtc_profile(p), None, None).unwrap();
            assert_eq!(reference.decrypt_rtp(&c2s).unwrap().to_vec(), plain);
        }
    }
}
