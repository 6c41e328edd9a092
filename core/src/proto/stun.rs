//! STUN (RFC 5389 / RFC 8489) messages: a zero-copy parser and allocation-free writers.
//!
//! Only what an ICE-lite server (and a test client talking to it) needs: the header, the ICE
//! attributes (RFC 8445 §16), short-term-credential MESSAGE-INTEGRITY (HMAC-SHA1) and
//! FINGERPRINT. Parsing validates the whole attribute layout once, so the accessors afterwards
//! cannot fail; any malformed input yields a [`StunError`], never a panic.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use hmac::{Hmac, Mac};
use sha1::Sha1;

type HmacSha1 = Hmac<Sha1>;

/// The fixed magic cookie of RFC 5389 headers.
pub const MAGIC_COOKIE: u32 = 0x2112_A442;
/// Size of the STUN header.
pub const HEADER_LEN: usize = 20;
/// FINGERPRINT is the CRC-32 of the message XORed with this ("STUN" in ASCII).
const FINGERPRINT_XOR: u32 = 0x5354_554e;
/// Size of a MESSAGE-INTEGRITY attribute including its 4-byte header.
const INTEGRITY_ATTR_LEN: usize = 24;
/// Size of a FINGERPRINT attribute including its 4-byte header.
const FINGERPRINT_ATTR_LEN: usize = 8;

/// The Binding method (the only one ICE uses).
pub const METHOD_BINDING: u16 = 0x001;

/// Attribute type codes used by ICE.
pub mod attr {
    /// MAPPED-ADDRESS (RFC 5389 §15.1).
    pub const MAPPED_ADDRESS: u16 = 0x0001;
    /// USERNAME (RFC 5389 §15.3).
    pub const USERNAME: u16 = 0x0006;
    /// MESSAGE-INTEGRITY, HMAC-SHA1 (RFC 5389 §15.4).
    pub const MESSAGE_INTEGRITY: u16 = 0x0008;
    /// ERROR-CODE (RFC 5389 §15.6).
    pub const ERROR_CODE: u16 = 0x0009;
    /// UNKNOWN-ATTRIBUTES (RFC 5389 §15.9).
    pub const UNKNOWN_ATTRIBUTES: u16 = 0x000A;
    /// REALM (RFC 5389 §15.7).
    pub const REALM: u16 = 0x0014;
    /// NONCE (RFC 5389 §15.8).
    pub const NONCE: u16 = 0x0015;
    /// XOR-MAPPED-ADDRESS (RFC 5389 §15.2).
    pub const XOR_MAPPED_ADDRESS: u16 = 0x0020;
    /// PRIORITY (RFC 8445 §16.1).
    pub const PRIORITY: u16 = 0x0024;
    /// USE-CANDIDATE (RFC 8445 §16.1).
    pub const USE_CANDIDATE: u16 = 0x0025;
    /// SOFTWARE (RFC 5389 §15.10).
    pub const SOFTWARE: u16 = 0x8022;
    /// FINGERPRINT (RFC 5389 §15.5).
    pub const FINGERPRINT: u16 = 0x8028;
    /// ICE-CONTROLLED (RFC 8445 §16.1).
    pub const ICE_CONTROLLED: u16 = 0x8029;
    /// ICE-CONTROLLING (RFC 8445 §16.1).
    pub const ICE_CONTROLLING: u16 = 0x802A;
    /// NOMINATION (draft-thatcher-ice-renomination), sent by Chrome with `renomination`.
    pub const NOMINATION: u16 = 0xC001;
}

/// Errors from parsing or writing STUN messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum StunError {
    /// Shorter than a header, top bits set, or no magic cookie.
    #[error("not a STUN message")]
    NotStun,
    /// The header's length field disagrees with the bytes received.
    #[error("STUN length field says {declared} bytes of attributes but {actual} were received")]
    LengthMismatch {
        /// Attribute bytes announced by the header.
        declared: usize,
        /// Attribute bytes actually present.
        actual: usize,
    },
    /// The header's length field is not a multiple of 4.
    #[error("STUN length {0} is not a multiple of 4")]
    UnalignedLength(usize),
    /// An attribute (header, value or padding) runs past the end of the message.
    #[error("STUN attribute 0x{attr_type:04x} is truncated")]
    TruncatedAttribute {
        /// Type of the truncated attribute (0 when even its header is cut).
        attr_type: u16,
    },
    /// A known attribute has a length its definition does not allow.
    #[error("STUN attribute 0x{attr_type:04x} has invalid length {len}")]
    BadAttributeLength {
        /// Attribute type.
        attr_type: u16,
        /// Its value length.
        len: usize,
    },
    /// An address attribute has an unknown family.
    #[error("STUN address family 0x{0:02x} is unknown")]
    BadAddressFamily(u8),
    /// An ERROR-CODE attribute holds a class or number out of range.
    #[error("STUN ERROR-CODE value is out of range")]
    BadErrorCode,
    /// Something follows FINGERPRINT, which must be the last attribute.
    #[error("STUN attribute after FINGERPRINT")]
    AttributeAfterFingerprint,
    /// The output buffer cannot hold the message being written.
    #[error("output buffer too small for the STUN message")]
    BufferTooSmall,
    /// An attribute value or the whole message exceeds the 16-bit length fields.
    #[error("STUN attribute or message too long")]
    TooLong,
}

/// The class of a STUN message (RFC 5389 §6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Class {
    /// A request (expects a response).
    Request,
    /// An indication (no response).
    Indication,
    /// A success response.
    SuccessResponse,
    /// An error response.
    ErrorResponse,
}

impl Class {
    fn bits(self) -> u16 {
        match self {
            Class::Request => 0,
            Class::Indication => 1,
            Class::SuccessResponse => 2,
            Class::ErrorResponse => 3,
        }
    }

    fn from_bits(bits: u16) -> Class {
        match bits & 3 {
            0 => Class::Request,
            1 => Class::Indication,
            2 => Class::SuccessResponse,
            _ => Class::ErrorResponse,
        }
    }
}

/// Interleaves class and 12-bit method into the 14-bit message type (RFC 5389 §6, figure 3).
pub fn encode_message_type(class: Class, method: u16) -> u16 {
    let m = method & 0x0FFF;
    let c = class.bits();
    (m & 0x000F) | ((c & 1) << 4) | ((m & 0x0070) << 1) | ((c & 2) << 7) | ((m & 0x0F80) << 2)
}

/// Splits a message type into class and method; inverse of [`encode_message_type`].
pub fn decode_message_type(message_type: u16) -> (Class, u16) {
    let t = message_type;
    let class = Class::from_bits(((t >> 4) & 1) | ((t >> 7) & 2));
    let method = (t & 0x000F) | ((t >> 1) & 0x0070) | ((t >> 2) & 0x0F80);
    (class, method)
}

/// Cheap demultiplexing test (RFC 7983): first byte 0..=3, a full header and the magic cookie.
pub fn is_stun(buf: &[u8]) -> bool {
    buf.len() >= HEADER_LEN && buf[0] <= 3 && buf[4..8] == MAGIC_COOKIE.to_be_bytes()
}

/// Standard reason phrase for the error codes ICE uses.
pub fn reason_phrase(code: u16) -> &'static str {
    match code {
        300 => "Try Alternate",
        400 => "Bad Request",
        401 => "Unauthorized",
        420 => "Unknown Attribute",
        438 => "Stale Nonce",
        487 => "Role Conflict",
        500 => "Server Error",
        _ => "",
    }
}

/// A decoded ERROR-CODE attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ErrorCode<'a> {
    /// The code, class·100 + number (e.g. 487).
    pub code: u16,
    /// The reason phrase bytes (UTF-8 by the RFC, not checked here).
    pub reason: &'a [u8],
}

/// A byte range inside the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Span {
    start: usize,
    end: usize,
}

/// A parsed STUN message borrowing the received bytes.
#[derive(Debug, Clone)]
pub struct StunMessage<'a> {
    buf: &'a [u8],
    class: Class,
    method: u16,
    transaction_id: [u8; 12],
    username: Option<Span>,
    software: Option<Span>,
    /// Offset of the MESSAGE-INTEGRITY attribute header.
    integrity: Option<usize>,
    /// Offset of the FINGERPRINT attribute header.
    fingerprint: Option<usize>,
    priority: Option<u32>,
    use_candidate: bool,
    ice_controlling: Option<u64>,
    ice_controlled: Option<u64>,
    nomination: Option<u32>,
    xor_mapped_address: Option<SocketAddr>,
    error_code: Option<(u16, Span)>,
}

fn be_u16(b: &[u8], at: usize) -> Option<u16> {
    let s = b.get(at..at.checked_add(2)?)?;
    Some(u16::from_be_bytes([s[0], s[1]]))
}

fn be_u32(b: &[u8]) -> Option<u32> {
    Some(u32::from_be_bytes(b.get(0..4)?.try_into().ok()?))
}

fn be_u64(b: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(b.get(0..8)?.try_into().ok()?))
}

fn fixed_len(attr_type: u16, value: &[u8], len: usize) -> Result<(), StunError> {
    if value.len() == len {
        Ok(())
    } else {
        Err(StunError::BadAttributeLength {
            attr_type,
            len: value.len(),
        })
    }
}

/// Decodes an XOR-MAPPED-ADDRESS value (RFC 5389 §15.2).
fn decode_xor_address(value: &[u8], transaction_id: &[u8; 12]) -> Result<SocketAddr, StunError> {
    let bad_len = StunError::BadAttributeLength {
        attr_type: attr::XOR_MAPPED_ADDRESS,
        len: value.len(),
    };
    let family = *value.get(1).ok_or(bad_len)?;
    let xport = be_u16(value, 2).ok_or(bad_len)?;
    let port = xport ^ (MAGIC_COOKIE >> 16) as u16;
    match family {
        0x01 => {
            if value.len() != 8 {
                return Err(bad_len);
            }
            let x = be_u32(value.get(4..8).ok_or(bad_len)?).ok_or(bad_len)?;
            Ok(SocketAddr::new(
                IpAddr::V4(Ipv4Addr::from(x ^ MAGIC_COOKIE)),
                port,
            ))
        }
        0x02 => {
            if value.len() != 20 {
                return Err(bad_len);
            }
            let mut ip = [0u8; 16];
            let mask = xor_mask_v6(transaction_id);
            for (i, (o, m)) in ip.iter_mut().zip(mask.iter()).enumerate() {
                *o = value.get(4 + i).copied().ok_or(bad_len)? ^ m;
            }
            Ok(SocketAddr::new(IpAddr::V6(Ipv6Addr::from(ip)), port))
        }
        other => Err(StunError::BadAddressFamily(other)),
    }
}

/// Magic cookie followed by the transaction id: the IPv6 XOR mask.
fn xor_mask_v6(transaction_id: &[u8; 12]) -> [u8; 16] {
    let mut mask = [0u8; 16];
    mask[..4].copy_from_slice(&MAGIC_COOKIE.to_be_bytes());
    mask[4..].copy_from_slice(transaction_id);
    mask
}

impl<'a> StunMessage<'a> {
    /// Parses one whole STUN message (a UDP datagram or one RFC 4571 frame).
    ///
    /// The header length must match `buf` exactly. Attributes after MESSAGE-INTEGRITY other
    /// than FINGERPRINT are ignored (RFC 5389 §15.4); anything after FINGERPRINT is an error.
    /// For repeated attributes the first occurrence wins.
    pub fn parse(buf: &'a [u8]) -> Result<Self, StunError> {
        if !is_stun(buf) {
            return Err(StunError::NotStun);
        }
        let message_type = be_u16(buf, 0).ok_or(StunError::NotStun)?;
        let declared = usize::from(be_u16(buf, 2).ok_or(StunError::NotStun)?);
        let actual = buf.len() - HEADER_LEN;
        if declared != actual {
            return Err(StunError::LengthMismatch { declared, actual });
        }
        if declared % 4 != 0 {
            return Err(StunError::UnalignedLength(declared));
        }
        let (class, method) = decode_message_type(message_type);
        let mut transaction_id = [0u8; 12];
        transaction_id.copy_from_slice(buf.get(8..HEADER_LEN).ok_or(StunError::NotStun)?);

        let mut msg = StunMessage {
            buf,
            class,
            method,
            transaction_id,
            username: None,
            software: None,
            integrity: None,
            fingerprint: None,
            priority: None,
            use_candidate: false,
            ice_controlling: None,
            ice_controlled: None,
            nomination: None,
            xor_mapped_address: None,
            error_code: None,
        };

        let mut off = HEADER_LEN;
        while off < buf.len() {
            if msg.fingerprint.is_some() {
                return Err(StunError::AttributeAfterFingerprint);
            }
            let (attr_type, value, next) = next_attribute(buf, off)?;
            let span = Span {
                start: off + 4,
                end: off + 4 + value.len(),
            };
            if attr_type == attr::FINGERPRINT {
                fixed_len(attr_type, value, 4)?;
                msg.fingerprint = Some(off);
            } else if msg.integrity.is_some() {
                // Not covered by MESSAGE-INTEGRITY, so it must not be trusted (RFC 5389 §15.4).
            } else {
                msg.take_attribute(attr_type, value, span, off)?;
            }
            off = next;
        }
        Ok(msg)
    }

    /// Records one attribute that precedes MESSAGE-INTEGRITY (or is MESSAGE-INTEGRITY).
    fn take_attribute(
        &mut self,
        attr_type: u16,
        value: &[u8],
        span: Span,
        header_off: usize,
    ) -> Result<(), StunError> {
        match attr_type {
            attr::MESSAGE_INTEGRITY => {
                fixed_len(attr_type, value, 20)?;
                self.integrity = Some(header_off);
            }
            attr::USERNAME if self.username.is_none() => self.username = Some(span),
            attr::SOFTWARE if self.software.is_none() => self.software = Some(span),
            attr::PRIORITY if self.priority.is_none() => {
                fixed_len(attr_type, value, 4)?;
                self.priority = be_u32(value);
            }
            attr::USE_CANDIDATE => {
                fixed_len(attr_type, value, 0)?;
                self.use_candidate = true;
            }
            attr::ICE_CONTROLLING if self.ice_controlling.is_none() => {
                fixed_len(attr_type, value, 8)?;
                self.ice_controlling = be_u64(value);
            }
            attr::ICE_CONTROLLED if self.ice_controlled.is_none() => {
                fixed_len(attr_type, value, 8)?;
                self.ice_controlled = be_u64(value);
            }
            attr::NOMINATION if self.nomination.is_none() => {
                fixed_len(attr_type, value, 4)?;
                self.nomination = be_u32(value);
            }
            attr::XOR_MAPPED_ADDRESS if self.xor_mapped_address.is_none() => {
                self.xor_mapped_address = Some(decode_xor_address(value, &self.transaction_id)?);
            }
            attr::ERROR_CODE if self.error_code.is_none() => {
                if value.len() < 4 {
                    return Err(StunError::BadAttributeLength {
                        attr_type,
                        len: value.len(),
                    });
                }
                let class = u16::from(value[2] & 0x07);
                let number = u16::from(value[3]);
                if !(3..=6).contains(&class) || number > 99 {
                    return Err(StunError::BadErrorCode);
                }
                let reason = Span {
                    start: span.start + 4,
                    end: span.end,
                };
                self.error_code = Some((class * 100 + number, reason));
            }
            _ => {}
        }
        Ok(())
    }

    fn span(&self, span: Span) -> &'a [u8] {
        self.buf.get(span.start..span.end).unwrap_or(&[])
    }

    /// The message class.
    pub fn class(&self) -> Class {
        self.class
    }

    /// The 12-bit method (1 = Binding).
    pub fn method(&self) -> u16 {
        self.method
    }

    /// The 96-bit transaction id.
    pub fn transaction_id(&self) -> &[u8; 12] {
        &self.transaction_id
    }

    /// The whole message as received.
    pub fn as_bytes(&self) -> &'a [u8] {
        self.buf
    }

    /// The first occurrence of any attribute, by type (covers types without an accessor).
    pub fn attribute(&self, attr_type: u16) -> Option<&'a [u8]> {
        let mut off = HEADER_LEN;
        while off < self.buf.len() {
            let (t, value, next) = next_attribute(self.buf, off).ok()?;
            if t == attr_type {
                return Some(value);
            }
            off = next;
        }
        None
    }

    /// USERNAME bytes (for ICE: `<receiver ufrag>:<sender ufrag>`).
    pub fn username(&self) -> Option<&'a [u8]> {
        self.username.map(|s| self.span(s))
    }

    /// USERNAME split at its first `:` into (receiver's ufrag, sender's ufrag); the engine
    /// routes STUN on a shared port by the first part.
    pub fn username_fragments(&self) -> Option<(&'a [u8], &'a [u8])> {
        let user = self.username()?;
        let colon = user.iter().position(|&b| b == b':')?;
        Some((&user[..colon], &user[colon + 1..]))
    }

    /// SOFTWARE bytes.
    pub fn software(&self) -> Option<&'a [u8]> {
        self.software.map(|s| self.span(s))
    }

    /// PRIORITY value.
    pub fn priority(&self) -> Option<u32> {
        self.priority
    }

    /// Whether USE-CANDIDATE is present.
    pub fn use_candidate(&self) -> bool {
        self.use_candidate
    }

    /// ICE-CONTROLLING tie-breaker.
    pub fn ice_controlling(&self) -> Option<u64> {
        self.ice_controlling
    }

    /// ICE-CONTROLLED tie-breaker.
    pub fn ice_controlled(&self) -> Option<u64> {
        self.ice_controlled
    }

    /// NOMINATION value (renomination).
    pub fn nomination(&self) -> Option<u32> {
        self.nomination
    }

    /// Decoded XOR-MAPPED-ADDRESS.
    pub fn xor_mapped_address(&self) -> Option<SocketAddr> {
        self.xor_mapped_address
    }

    /// Decoded ERROR-CODE.
    pub fn error_code(&self) -> Option<ErrorCode<'a>> {
        self.error_code.map(|(code, reason)| ErrorCode {
            code,
            reason: self.span(reason),
        })
    }

    /// Whether MESSAGE-INTEGRITY is present.
    pub fn has_integrity(&self) -> bool {
        self.integrity.is_some()
    }

    /// Checks MESSAGE-INTEGRITY with `key` (for ICE, the receiver's password bytes).
    ///
    /// The HMAC covers the message up to the attribute with the header length rewritten to
    /// end just after MESSAGE-INTEGRITY (RFC 5389 §15.4), so a trailing FINGERPRINT is
    /// excluded. The comparison is constant-time. False when the attribute is absent.
    pub fn verify_integrity(&self, key: &[u8]) -> bool {
        let Some(off) = self.integrity else {
            return false;
        };
        let (Some(head), Some(body), Some(tag)) = (
            self.buf.get(..HEADER_LEN),
            self.buf.get(HEADER_LEN..off),
            self.buf.get(off + 4..off + INTEGRITY_ATTR_LEN),
        ) else {
            return false;
        };
        let Ok(adjusted) = u16::try_from(off + INTEGRITY_ATTR_LEN - HEADER_LEN) else {
            return false;
        };
        let Ok(mut mac) = HmacSha1::new_from_slice(key) else {
            return false;
        };
        mac.update(&head[..2]);
        mac.update(&adjusted.to_be_bytes());
        mac.update(&head[4..]);
        mac.update(body);
        mac.verify_slice(tag).is_ok()
    }

    /// Whether FINGERPRINT is present.
    pub fn has_fingerprint(&self) -> bool {
        self.fingerprint.is_some()
    }

    /// Checks FINGERPRINT: CRC-32 of everything before it, XOR 0x5354554e. False when absent.
    pub fn verify_fingerprint(&self) -> bool {
        let Some(off) = self.fingerprint else {
            return false;
        };
        let (Some(covered), Some(value)) = (
            self.buf.get(..off),
            self.buf.get(off + 4..off + FINGERPRINT_ATTR_LEN),
        ) else {
            return false;
        };
        be_u32(value) == Some(fingerprint_of(covered))
    }
}

/// Reads the attribute at `off`: (type, value without padding, offset of the next one).
fn next_attribute(buf: &[u8], off: usize) -> Result<(u16, &[u8], usize), StunError> {
    let truncated = |attr_type| StunError::TruncatedAttribute { attr_type };
    let attr_type = be_u16(buf, off).ok_or(truncated(0))?;
    let len = usize::from(be_u16(buf, off + 2).ok_or(truncated(attr_type))?);
    let start = off + 4;
    let padded_end = start + ((len + 3) & !3);
    if padded_end > buf.len() {
        return Err(truncated(attr_type));
    }
    let value = buf.get(start..start + len).ok_or(truncated(attr_type))?;
    Ok((attr_type, value, padded_end))
}

fn fingerprint_of(covered: &[u8]) -> u32 {
    crc32fast::hash(covered) ^ FINGERPRINT_XOR
}

/// Builds a STUN message in a caller-owned buffer, attribute by attribute.
///
/// The header length is kept current after every attribute, so MESSAGE-INTEGRITY and
/// FINGERPRINT (which must be added last, in that order) see the right length.
#[derive(Debug)]
pub struct StunWriter<'b> {
    buf: &'b mut [u8],
    len: usize,
    padding: u8,
}

impl<'b> StunWriter<'b> {
    /// Starts a message: writes the 20-byte header with an empty body.
    pub fn new(
        buf: &'b mut [u8],
        class: Class,
        method: u16,
        transaction_id: &[u8; 12],
    ) -> Result<Self, StunError> {
        let head = buf.get_mut(..HEADER_LEN).ok_or(StunError::BufferTooSmall)?;
        head[0..2].copy_from_slice(&encode_message_type(class, method).to_be_bytes());
        head[2..4].copy_from_slice(&0u16.to_be_bytes());
        head[4..8].copy_from_slice(&MAGIC_COOKIE.to_be_bytes());
        head[8..20].copy_from_slice(transaction_id);
        Ok(StunWriter {
            buf,
            len: HEADER_LEN,
            padding: 0,
        })
    }

    /// Sets the byte used to pad attribute values to 4 bytes (default 0; receivers ignore
    /// it, but the RFC 5769 vectors pad with spaces, so reproducing them needs 0x20).
    pub fn set_padding_byte(&mut self, byte: u8) {
        self.padding = byte;
    }

    /// Bytes written so far.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when only the header has been written.
    pub fn is_empty(&self) -> bool {
        self.len == HEADER_LEN
    }

    fn set_length(&mut self, body_len: usize) -> Result<(), StunError> {
        let len = u16::try_from(body_len).map_err(|_| StunError::TooLong)?;
        self.buf[2..4].copy_from_slice(&len.to_be_bytes());
        Ok(())
    }

    /// Appends an attribute whose value `fill` writes into the `value_len` bytes given to it.
    fn put(
        &mut self,
        attr_type: u16,
        value_len: usize,
        fill: impl FnOnce(&mut [u8]),
    ) -> Result<(), StunError> {
        let len16 = u16::try_from(value_len).map_err(|_| StunError::TooLong)?;
        let start = self.len;
        let padded = (value_len + 3) & !3;
        let end = start + 4 + padded;
        let padding = self.padding;
        let slot = self
            .buf
            .get_mut(start..end)
            .ok_or(StunError::BufferTooSmall)?;
        slot[0..2].copy_from_slice(&attr_type.to_be_bytes());
        slot[2..4].copy_from_slice(&len16.to_be_bytes());
        fill(&mut slot[4..4 + value_len]);
        slot[4 + value_len..].fill(padding);
        self.set_length(end - HEADER_LEN)?;
        self.len = end;
        Ok(())
    }

    /// Appends any attribute.
    pub fn attribute(&mut self, attr_type: u16, value: &[u8]) -> Result<(), StunError> {
        self.put(attr_type, value.len(), |v| v.copy_from_slice(value))
    }

    /// Appends USERNAME.
    pub fn username(&mut self, username: &str) -> Result<(), StunError> {
        self.attribute(attr::USERNAME, username.as_bytes())
    }

    /// Appends SOFTWARE.
    pub fn software(&mut self, software: &str) -> Result<(), StunError> {
        self.attribute(attr::SOFTWARE, software.as_bytes())
    }

    /// Appends PRIORITY.
    pub fn priority(&mut self, priority: u32) -> Result<(), StunError> {
        self.attribute(attr::PRIORITY, &priority.to_be_bytes())
    }

    /// Appends USE-CANDIDATE.
    pub fn use_candidate(&mut self) -> Result<(), StunError> {
        self.attribute(attr::USE_CANDIDATE, &[])
    }

    /// Appends ICE-CONTROLLING with a tie-breaker.
    pub fn ice_controlling(&mut self, tie_breaker: u64) -> Result<(), StunError> {
        self.attribute(attr::ICE_CONTROLLING, &tie_breaker.to_be_bytes())
    }

    /// Appends ICE-CONTROLLED with a tie-breaker.
    pub fn ice_controlled(&mut self, tie_breaker: u64) -> Result<(), StunError> {
        self.attribute(attr::ICE_CONTROLLED, &tie_breaker.to_be_bytes())
    }

    /// Appends NOMINATION.
    pub fn nomination(&mut self, value: u32) -> Result<(), StunError> {
        self.attribute(attr::NOMINATION, &value.to_be_bytes())
    }

    /// Appends XOR-MAPPED-ADDRESS for `addr` (IPv4 or IPv6).
    pub fn xor_mapped_address(&mut self, addr: SocketAddr) -> Result<(), StunError> {
        let mut txid = [0u8; 12];
        txid.copy_from_slice(&self.buf[8..HEADER_LEN]);
        let xport = addr.port() ^ (MAGIC_COOKIE >> 16) as u16;
        match addr.ip() {
            IpAddr::V4(ip) => self.put(attr::XOR_MAPPED_ADDRESS, 8, |v| {
                v[0] = 0;
                v[1] = 0x01;
                v[2..4].copy_from_slice(&xport.to_be_bytes());
                v[4..8].copy_from_slice(&(u32::from(ip) ^ MAGIC_COOKIE).to_be_bytes());
            }),
            IpAddr::V6(ip) => self.put(attr::XOR_MAPPED_ADDRESS, 20, |v| {
                v[0] = 0;
                v[1] = 0x02;
                v[2..4].copy_from_slice(&xport.to_be_bytes());
                let mask = xor_mask_v6(&txid);
                for ((o, a), m) in v[4..20].iter_mut().zip(ip.octets()).zip(mask) {
                    *o = a ^ m;
                }
            }),
        }
    }

    /// Appends ERROR-CODE with `code` (300..=699) and its standard reason phrase.
    pub fn error_code(&mut self, code: u16) -> Result<(), StunError> {
        if !(300..700).contains(&code) {
            return Err(StunError::BadErrorCode);
        }
        let reason = reason_phrase(code).as_bytes();
        self.put(attr::ERROR_CODE, 4 + reason.len(), |v| {
            v[0] = 0;
            v[1] = 0;
            v[2] = (code / 100) as u8;
            v[3] = (code % 100) as u8;
            v[4..].copy_from_slice(reason);
        })
    }

    /// Appends MESSAGE-INTEGRITY keyed with `key` (for ICE, the password bytes).
    pub fn message_integrity(&mut self, key: &[u8]) -> Result<(), StunError> {
        let start = self.len;
        let end = start + INTEGRITY_ATTR_LEN;
        if end > self.buf.len() {
            return Err(StunError::BufferTooSmall);
        }
        // The HMAC input carries a length that already counts this attribute.
        self.set_length(end - HEADER_LEN)?;
        // HMAC takes keys of any length, so this error cannot occur; mapped for totality.
        let mut mac = HmacSha1::new_from_slice(key).map_err(|_| StunError::TooLong)?;
        mac.update(&self.buf[..start]);
        let tag = mac.finalize().into_bytes();
        let slot = &mut self.buf[start..end];
        slot[0..2].copy_from_slice(&attr::MESSAGE_INTEGRITY.to_be_bytes());
        slot[2..4].copy_from_slice(&20u16.to_be_bytes());
        slot[4..].copy_from_slice(&tag);
        self.len = end;
        Ok(())
    }

    /// Appends FINGERPRINT; must be the last attribute.
    pub fn fingerprint(&mut self) -> Result<(), StunError> {
        let start = self.len;
        let end = start + FINGERPRINT_ATTR_LEN;
        if end > self.buf.len() {
            return Err(StunError::BufferTooSmall);
        }
        self.set_length(end - HEADER_LEN)?;
        let crc = fingerprint_of(&self.buf[..start]);
        let slot = &mut self.buf[start..end];
        slot[0..2].copy_from_slice(&attr::FINGERPRINT.to_be_bytes());
        slot[2..4].copy_from_slice(&4u16.to_be_bytes());
        slot[4..].copy_from_slice(&crc.to_be_bytes());
        self.len = end;
        Ok(())
    }

    /// Ends the message, returning its length in bytes.
    pub fn finish(self) -> usize {
        self.len
    }
}

/// Writes a Binding success response: [SOFTWARE], XOR-MAPPED-ADDRESS, MESSAGE-INTEGRITY
/// (keyed with our ICE password), FINGERPRINT. Returns the length written.
pub fn write_binding_success(
    out: &mut [u8],
    transaction_id: &[u8; 12],
    mapped: SocketAddr,
    key: &[u8],
    software: Option<&str>,
) -> Result<usize, StunError> {
    let mut w = StunWriter::new(out, Class::SuccessResponse, METHOD_BINDING, transaction_id)?;
    if let Some(software) = software {
        w.software(software)?;
    }
    w.xor_mapped_address(mapped)?;
    w.message_integrity(key)?;
    w.fingerprint()?;
    Ok(w.finish())
}

/// Writes an error response for `method` with ERROR-CODE `code`, MESSAGE-INTEGRITY when
/// `key` is given (only once the request has authenticated, RFC 5389 §10.1.2), and
/// FINGERPRINT. Returns the length written.
pub fn write_error_response(
    out: &mut [u8],
    method: u16,
    transaction_id: &[u8; 12],
    code: u16,
    key: Option<&[u8]>,
) -> Result<usize, StunError> {
    let mut w = StunWriter::new(out, Class::ErrorResponse, method, transaction_id)?;
    w.error_code(code)?;
    if let Some(key) = key {
        w.message_integrity(key)?;
    }
    w.fingerprint()?;
    Ok(w.finish())
}

/// The ICE role attribute a request carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IceRole {
    /// ICE-CONTROLLING with this tie-breaker.
    Controlling(u64),
    /// ICE-CONTROLLED with this tie-breaker.
    Controlled(u64),
}

/// An ICE connectivity-check (Binding request) description, for tests and test clients.
///
/// Attribute order: SOFTWARE, PRIORITY, role, USE-CANDIDATE, NOMINATION, USERNAME,
/// MESSAGE-INTEGRITY, FINGERPRINT. Optional parts exist so tests can build invalid requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BindingRequest<'s> {
    /// Transaction id.
    pub transaction_id: [u8; 12],
    /// USERNAME (`<remote ufrag>:<local ufrag>` from the sender's view).
    pub username: Option<&'s str>,
    /// PRIORITY.
    pub priority: Option<u32>,
    /// ICE-CONTROLLING / ICE-CONTROLLED.
    pub role: Option<IceRole>,
    /// Add USE-CANDIDATE.
    pub use_candidate: bool,
    /// NOMINATION value.
    pub nomination: Option<u32>,
    /// SOFTWARE.
    pub software: Option<&'s str>,
    /// MESSAGE-INTEGRITY key (the receiver's password); none omits the attribute.
    pub key: Option<&'s [u8]>,
    /// Add FINGERPRINT.
    pub fingerprint: bool,
}

impl<'s> BindingRequest<'s> {
    /// A well-formed controlling check: USERNAME, PRIORITY (0x6e0001ff, the RFC 5769 value),
    /// ICE-CONTROLLING (a fixed tie-breaker), integrity with `key`, FINGERPRINT.
    pub fn new(transaction_id: [u8; 12], username: &'s str, key: &'s [u8]) -> Self {
        BindingRequest {
            transaction_id,
            username: Some(username),
            priority: Some(0x6e00_01ff),
            role: Some(IceRole::Controlling(0x0102_0304_0506_0708)),
            use_candidate: false,
            nomination: None,
            software: None,
            key: Some(key),
            fingerprint: true,
        }
    }

    /// Writes the request into `out`, returning its length.
    pub fn write(&self, out: &mut [u8]) -> Result<usize, StunError> {
        let mut w = StunWriter::new(out, Class::Request, METHOD_BINDING, &self.transaction_id)?;
        if let Some(software) = self.software {
            w.software(software)?;
        }
        if let Some(priority) = self.priority {
            w.priority(priority)?;
        }
        match self.role {
            Some(IceRole::Controlling(tb)) => w.ice_controlling(tb)?,
            Some(IceRole::Controlled(tb)) => w.ice_controlled(tb)?,
            None => {}
        }
        if self.use_candidate {
            w.use_candidate()?;
        }
        if let Some(nomination) = self.nomination {
            w.nomination(nomination)?;
        }
        if let Some(username) = self.username {
            w.username(username)?;
        }
        if let Some(key) = self.key {
            w.message_integrity(key)?;
        }
        if self.fingerprint {
            w.fingerprint()?;
        }
        Ok(w.finish())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    const PASSWORD: &[u8] = b"VOkJxbRl1RmTxUk/WvJxBt";
    const TXID: [u8; 12] = [
        0xb7, 0xe7, 0xa7, 0x01, 0xbc, 0x34, 0xd6, 0x86, 0xfa, 0x87, 0xdf, 0xae,
    ];

    /// RFC 5769 §2.1 sample request.
    #[rustfmt::skip]
    const REQ: &[u8] = &[
        0x00, 0x01, 0x00, 0x58, 0x21, 0x12, 0xa4, 0x42,
        0xb7, 0xe7, 0xa7, 0x01, 0xbc, 0x34, 0xd6, 0x86, 0xfa, 0x87, 0xdf, 0xae,
        0x80, 0x22, 0x00, 0x10, 0x53, 0x54, 0x55, 0x4e, 0x20, 0x74, 0x65, 0x73,
        0x74, 0x20, 0x63, 0x6c, 0x69, 0x65, 0x6e, 0x74,
        0x00, 0x24, 0x00, 0x04, 0x6e, 0x00, 0x01, 0xff,
        0x80, 0x29, 0x00, 0x08, 0x93, 0x2f, 0xf9, 0xb1, 0x51, 0x26, 0x3b, 0x36,
        0x00, 0x06, 0x00, 0x09, 0x65, 0x76, 0x74, 0x6a, 0x3a, 0x68, 0x36, 0x76,
        0x59, 0x20, 0x20, 0x20,
        0x00, 0x08, 0x00, 0x14, 0x9a, 0xea, 0xa7, 0x0c, 0xbf, 0xd8, 0xcb, 0x56,
        0x78, 0x1e, 0xf2, 0xb5, 0xb2, 0xd3, 0xf2, 0x49, 0xc1, 0xb5, 0x71, 0xa2,
        0x80, 0x28, 0x00, 0x04, 0xe5, 0x7a, 0x3b, 0xcf,
    ];

    /// RFC 5769 §2.2 sample IPv4 response.
    #[rustfmt::skip]
    const RESP_V4: &[u8] = &[
        0x01, 0x01, 0x00, 0x3c, 0x21, 0x12, 0xa4, 0x42,
        0xb7, 0xe7, 0xa7, 0x01, 0xbc, 0x34, 0xd6, 0x86, 0xfa, 0x87, 0xdf, 0xae,
        0x80, 0x22, 0x00, 0x0b, 0x74, 0x65, 0x73, 0x74, 0x20, 0x76, 0x65, 0x63,
        0x74, 0x6f, 0x72, 0x20,
        0x00, 0x20, 0x00, 0x08, 0x00, 0x01, 0xa1, 0x47, 0xe1, 0x12, 0xa6, 0x43,
        0x00, 0x08, 0x00, 0x14, 0x2b, 0x91, 0xf5, 0x99, 0xfd, 0x9e, 0x90, 0xc3,
        0x8c, 0x74, 0x89, 0xf9, 0x2a, 0xf9, 0xba, 0x53, 0xf0, 0x6b, 0xe7, 0xd7,
        0x80, 0x28, 0x00, 0x04, 0xc0, 0x7d, 0x4c, 0x96,
    ];

    /// RFC 5769 §2.3 sample IPv6 response.
    #[rustfmt::skip]
    const RESP_V6: &[u8] = &[
        0x01, 0x01, 0x00, 0x48, 0x21, 0x12, 0xa4, 0x42,
        0xb7, 0xe7, 0xa7, 0x01, 0xbc, 0x34, 0xd6, 0x86, 0xfa, 0x87, 0xdf, 0xae,
        0x80, 0x22, 0x00, 0x0b, 0x74, 0x65, 0x73, 0x74, 0x20, 0x76, 0x65, 0x63,
        0x74, 0x6f, 0x72, 0x20,
        0x00, 0x20, 0x00, 0x14, 0x00, 0x02, 0xa1, 0x47,
        0x01, 0x13, 0xa9, 0xfa, 0xa5, 0xd3, 0xf1, 0x79,
        0xbc, 0x25, 0xf4, 0xb5, 0xbe, 0xd2, 0xb9, 0xd9,
        0x00, 0x08, 0x00, 0x14, 0xa3, 0x82, 0x95, 0x4e, 0x4b, 0xe6, 0x7b, 0xf1,
        0x17, 0x84, 0xc9, 0x7c, 0x82, 0x92, 0xc2, 0x75, 0xbf, 0xe3, 0xed, 0x41,
        0x80, 0x28, 0x00, 0x04, 0xc8, 0xfb, 0x0b, 0x4c,
    ];

    /// RFC 5769 §2.4 request with long-term credentials (parsed only: no long-term keys).
    #[rustfmt::skip]
    const REQ_LTC: &[u8] = &[
        0x00, 0x01, 0x00, 0x60, 0x21, 0x12, 0xa4, 0x42,
        0x78, 0xad, 0x34, 0x33, 0xc6, 0xad, 0x72, 0xc0, 0x29, 0xda, 0x41, 0x2e,
        0x00, 0x06, 0x00, 0x12,
        0xe3, 0x83, 0x9e, 0xe3, 0x83, 0x88, 0xe3, 0x83, 0xaa, 0xe3, 0x83, 0x83,
        0xe3, 0x82, 0xaf, 0xe3, 0x82, 0xb9, 0x00, 0x00,
        0x00, 0x15, 0x00, 0x1c,
        0x66, 0x2f, 0x2f, 0x34, 0x39, 0x39, 0x6b, 0x39, 0x35, 0x34, 0x64, 0x36,
        0x4f, 0x4c, 0x33, 0x34, 0x6f, 0x4c, 0x39, 0x46, 0x53, 0x54, 0x76, 0x79,
        0x36, 0x34, 0x73, 0x41,
        0x00, 0x14, 0x00, 0x0b, 0x65, 0x78, 0x61, 0x6d, 0x70, 0x6c, 0x65, 0x2e,
        0x6f, 0x72, 0x67, 0x00,
        0x00, 0x08, 0x00, 0x14, 0xf6, 0x70, 0x24, 0x65, 0x6d, 0xd6, 0x4a, 0x3e,
        0x02, 0xb8, 0xe0, 0x71, 0x2e, 0x85, 0xc9, 0xa2, 0x8c, 0xa8, 0x96, 0x66,
    ];

    fn v4_mapped() -> SocketAddr {
        "192.0.2.1:32853".parse().unwrap()
    }

    fn v6_mapped() -> SocketAddr {
        "[2001:db8:1234:5678:11:2233:4455:6677]:32853"
            .parse()
            .unwrap()
    }

    #[test]
    fn rfc5769_request_parses_and_verifies() {
        let m = StunMessage::parse(REQ).unwrap();
        assert_eq!(m.class(), Class::Request);
        assert_eq!(m.method(), METHOD_BINDING);
        assert_eq!(m.transaction_id(), &TXID);
        assert_eq!(m.software(), Some(&b"STUN test client"[..]));
        assert_eq!(m.username(), Some(&b"evtj:h6vY"[..]));
        assert_eq!(m.username_fragments(), Some((&b"evtj"[..], &b"h6vY"[..])));
        assert_eq!(m.priority(), Some(0x6e00_01ff));
        assert_eq!(m.ice_controlled(), Some(0x932f_f9b1_5126_3b36));
        assert_eq!(m.ice_controlling(), None);
        assert!(!m.use_candidate());
        assert_eq!(m.nomination(), None);
        assert!(m.has_integrity() && m.has_fingerprint());
        assert!(m.verify_integrity(PASSWORD));
        assert!(!m.verify_integrity(b"VOkJxbRl1RmTxUk/WvJxBu"));
        assert!(m.verify_fingerprint());
    }

    #[test]
    fn rfc5769_request_recreated_byte_identical() {
        let mut out = [0u8; 256];
        let mut w = StunWriter::new(&mut out, Class::Request, METHOD_BINDING, &TXID).unwrap();
        w.set_padding_byte(b' ');
        w.software("STUN test client").unwrap();
        w.priority(0x6e00_01ff).unwrap();
        w.ice_controlled(0x932f_f9b1_5126_3b36).unwrap();
        w.username("evtj:h6vY").unwrap();
        w.message_integrity(PASSWORD).unwrap();
        w.fingerprint().unwrap();
        let n = w.finish();
        assert_eq!(&out[..n], REQ);
    }

    #[test]
    fn binding_request_builder_matches_rfc5769_layout() {
        // Same attributes via the high-level builder: identical except the USERNAME padding
        // (zeros, not spaces), which changes the integrity and fingerprint values.
        let req = BindingRequest {
            transaction_id: TXID,
            username: Some("evtj:h6vY"),
            priority: Some(0x6e00_01ff),
            role: Some(IceRole::Controlled(0x932f_f9b1_5126_3b36)),
            use_candidate: false,
            nomination: None,
            software: Some("STUN test client"),
            key: Some(PASSWORD),
            fingerprint: true,
        };
        let mut out = [0u8; 256];
        let n = req.write(&mut out).unwrap();
        assert_eq!(n, REQ.len());
        let pad = 73..76;
        assert_eq!(&out[pad.clone()], &[0, 0, 0]);
        assert_eq!(&out[..pad.start], &REQ[..pad.start]);
        // Up to and including the MESSAGE-INTEGRITY attribute header.
        assert_eq!(&out[pad.end..80], &REQ[pad.end..80]);
        let m = StunMessage::parse(&out[..n]).unwrap();
        assert!(m.verify_integrity(PASSWORD));
        assert!(m.verify_fingerprint());
    }

    fn check_response(vector: &[u8], mapped: SocketAddr) {
        let m = StunMessage::parse(vector).unwrap();
        assert_eq!(m.class(), Class::SuccessResponse);
        assert_eq!(m.method(), METHOD_BINDING);
        assert_eq!(m.transaction_id(), &TXID);
        assert_eq!(m.software(), Some(&b"test vector"[..]));
        assert_eq!(m.xor_mapped_address(), Some(mapped));
        assert!(m.verify_integrity(PASSWORD));
        assert!(!m.verify_integrity(b"wrong"));
        assert!(m.verify_fingerprint());

        // Byte-identical with the low-level writer (space padding, as in the RFC).
        let mut out = [0u8; 256];
        let mut w =
            StunWriter::new(&mut out, Class::SuccessResponse, METHOD_BINDING, &TXID).unwrap();
        w.set_padding_byte(b' ');
        w.software("test vector").unwrap();
        w.xor_mapped_address(mapped).unwrap();
        w.message_integrity(PASSWORD).unwrap();
        w.fingerprint().unwrap();
        let n = w.finish();
        assert_eq!(&out[..n], vector);

        // The high-level writer: same bytes except the SOFTWARE pad byte (0, not a space)
        // and so the integrity and fingerprint values, which must still verify.
        let mut out = [0u8; 256];
        let n =
            write_binding_success(&mut out, &TXID, mapped, PASSWORD, Some("test vector")).unwrap();
        assert_eq!(n, vector.len());
        assert_eq!(&out[..35], &vector[..35]);
        assert_eq!(out[35], 0);
        let mi_off = n - 32;
        assert_eq!(&out[36..mi_off + 4], &vector[36..mi_off + 4]);
        let m = StunMessage::parse(&out[..n]).unwrap();
        assert_eq!(m.xor_mapped_address(), Some(mapped));
        assert!(m.verify_integrity(PASSWORD));
        assert!(m.verify_fingerprint());
    }

    #[test]
    fn rfc5769_ipv4_response() {
        check_response(RESP_V4, v4_mapped());
    }

    #[test]
    fn rfc5769_ipv6_response() {
        check_response(RESP_V6, v6_mapped());
    }

    #[test]
    fn rfc5769_long_term_request_parses() {
        let m = StunMessage::parse(REQ_LTC).unwrap();
        assert_eq!(m.class(), Class::Request);
        assert_eq!(
            m.username(),
            Some("\u{30DE}\u{30C8}\u{30EA}\u{30C3}\u{30AF}\u{30B9}".as_bytes())
        );
        assert_eq!(m.attribute(attr::REALM), Some(&b"example.org"[..]));
        assert_eq!(
            m.attribute(attr::NONCE),
            Some(&b"f//499k954d6OL34oL9FSTvy64sA"[..])
        );
        assert!(m.has_integrity());
        assert!(!m.has_fingerprint());
        assert!(!m.verify_fingerprint());
    }

    #[test]
    fn every_single_bit_flip_is_detected() {
        for vector in [REQ, RESP_V4, RESP_V6] {
            for i in 0..vector.len() {
                for bit in 0..8 {
                    let mut b = vector.to_vec();
                    b[i] ^= 1 << bit;
                    if let Ok(m) = StunMessage::parse(&b) {
                        assert!(
                            !(m.verify_integrity(PASSWORD) && m.verify_fingerprint()),
                            "flip of byte {i} bit {bit} went unnoticed"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn every_prefix_is_rejected_without_panic() {
        for vector in [REQ, RESP_V4, RESP_V6, REQ_LTC] {
            for n in 0..vector.len() {
                assert!(StunMessage::parse(&vector[..n]).is_err(), "prefix {n}");
            }
            // A prefix with the header length patched to match exercises attribute truncation.
            for n in (HEADER_LEN..vector.len()).step_by(1) {
                let mut b = vector[..n].to_vec();
                let body = (n - HEADER_LEN) as u16;
                b[2..4].copy_from_slice(&body.to_be_bytes());
                if let Ok(m) = StunMessage::parse(&b) {
                    // Only whole-attribute prefixes can parse; they lack a valid fingerprint.
                    assert!(!m.verify_fingerprint() || n == vector.len());
                    let _ = m.verify_integrity(PASSWORD);
                }
            }
        }
    }

    fn exercise(m: &StunMessage<'_>) {
        let _ = (
            m.class(),
            m.method(),
            m.transaction_id(),
            m.username(),
            m.username_fragments(),
            m.software(),
            m.priority(),
            m.use_candidate(),
            m.ice_controlling(),
            m.ice_controlled(),
            m.nomination(),
            m.xor_mapped_address(),
            m.error_code(),
            m.verify_integrity(PASSWORD),
            m.verify_fingerprint(),
            m.attribute(attr::NONCE),
        );
    }

    #[test]
    fn random_bytes_never_panic() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(0x5354_554e);
        let mut buf = [0u8; 160];
        let mut parsed = 0;
        for round in 0..200_000 {
            let n = rng.gen_range(0..buf.len());
            rng.fill(&mut buf[..n]);
            if round % 2 == 0 && n >= HEADER_LEN {
                // Make the header plausible so attribute parsing is reached.
                buf[0] &= 0x01;
                buf[2..4].copy_from_slice(&((n - HEADER_LEN) as u16).to_be_bytes());
                buf[4..8].copy_from_slice(&MAGIC_COOKIE.to_be_bytes());
                if round % 4 == 0 {
                    // Plausible attribute lengths: small values in each length field.
                    let mut off = HEADER_LEN;
                    while off + 4 <= n {
                        let l = rng.gen_range(0..24u16);
                        buf[off + 2..off + 4].copy_from_slice(&l.to_be_bytes());
                        off += 4 + ((usize::from(l) + 3) & !3);
                    }
                }
            }
            if let Ok(m) = StunMessage::parse(&buf[..n]) {
                exercise(&m);
                parsed += 1;
            }
        }
        // The generator must reach the attribute walker, not just the header checks.
        assert!(parsed > 1_000, "only {parsed} random messages parsed");
    }

    #[test]
    fn is_stun_demultiplexes() {
        assert!(is_stun(REQ));
        assert!(is_stun(RESP_V6));
        assert!(!is_stun(&REQ[..19]));
        let mut rtp = REQ.to_vec();
        rtp[0] = 0x80;
        assert!(!is_stun(&rtp));
        let mut dtls = REQ.to_vec();
        dtls[0] = 22;
        assert!(!is_stun(&dtls));
        let mut no_cookie = REQ.to_vec();
        no_cookie[4] = 0;
        assert!(!is_stun(&no_cookie));
        assert_eq!(
            StunMessage::parse(&no_cookie).unwrap_err(),
            StunError::NotStun
        );
    }

    #[test]
    fn message_type_round_trips() {
        for class in [
            Class::Request,
            Class::Indication,
            Class::SuccessResponse,
            Class::ErrorResponse,
        ] {
            for method in 0..0x1000u16 {
                let t = encode_message_type(class, method);
                assert_eq!(t & 0xC000, 0);
                assert_eq!(decode_message_type(t), (class, method));
            }
        }
        assert_eq!(encode_message_type(Class::Request, METHOD_BINDING), 0x0001);
        assert_eq!(
            encode_message_type(Class::Indication, METHOD_BINDING),
            0x0011
        );
        assert_eq!(
            encode_message_type(Class::SuccessResponse, METHOD_BINDING),
            0x0101
        );
        assert_eq!(
            encode_message_type(Class::ErrorResponse, METHOD_BINDING),
            0x0111
        );
    }

    #[test]
    fn error_responses_round_trip() {
        for (code, reason) in [
            (400, "Bad Request"),
            (401, "Unauthorized"),
            (487, "Role Conflict"),
        ] {
            let mut out = [0u8; 128];
            let n = write_error_response(&mut out, METHOD_BINDING, &TXID, code, None).unwrap();
            let m = StunMessage::parse(&out[..n]).unwrap();
            assert_eq!(m.class(), Class::ErrorResponse);
            assert_eq!(m.transaction_id(), &TXID);
            let e = m.error_code().unwrap();
            assert_eq!((e.code, e.reason), (code, reason.as_bytes()));
            assert!(!m.has_integrity());
            assert!(m.verify_fingerprint());

            let n = write_error_response(&mut out, METHOD_BINDING, &TXID, code, Some(PASSWORD))
                .unwrap();
            let m = StunMessage::parse(&out[..n]).unwrap();
            assert_eq!(m.error_code().unwrap().code, code);
            assert!(m.verify_integrity(PASSWORD));
            assert!(m.verify_fingerprint());
        }
        let mut out = [0u8; 128];
        assert_eq!(
            write_error_response(&mut out, METHOD_BINDING, &TXID, 299, None),
            Err(StunError::BadErrorCode)
        );
    }

    #[test]
    fn writers_report_small_buffers() {
        for len in 0..76 {
            let mut out = vec![0u8; len];
            assert_eq!(
                write_binding_success(&mut out, &TXID, v6_mapped(), PASSWORD, None),
                Err(StunError::BufferTooSmall),
                "len {len}"
            );
        }
        let mut out = [0u8; 76];
        assert_eq!(
            write_binding_success(&mut out, &TXID, v6_mapped(), PASSWORD, None),
            Ok(76)
        );
    }

    #[test]
    fn request_builder_round_trips_all_fields() {
        let req = BindingRequest {
            use_candidate: true,
            nomination: Some(7),
            ..BindingRequest::new(TXID, "local:remote", b"secretpassword")
        };
        let mut out = [0u8; 256];
        let n = req.write(&mut out).unwrap();
        let m = StunMessage::parse(&out[..n]).unwrap();
        assert_eq!(m.username(), Some(&b"local:remote"[..]));
        assert_eq!(m.priority(), Some(0x6e00_01ff));
        assert_eq!(m.ice_controlling(), Some(0x0102_0304_0506_0708));
        assert!(m.use_candidate());
        assert_eq!(m.nomination(), Some(7));
        assert!(m.verify_integrity(b"secretpassword"));
        assert!(m.verify_fingerprint());
    }

    /// Our writers read by an independent STUN implementation (webrtc-rs's `stun` crate): type,
    /// transaction id, XOR-MAPPED-ADDRESS, ERROR-CODE, USERNAME, PRIORITY, USE-CANDIDATE,
    /// MESSAGE-INTEGRITY (with the right and a wrong password) and FINGERPRINT.
    #[test]
    fn writers_are_read_by_the_stun_crate() {
        use webrtc::stun::attributes::{
            ATTR_ICE_CONTROLLING, ATTR_PRIORITY, ATTR_SOFTWARE, ATTR_USERNAME, ATTR_USE_CANDIDATE,
        };
        use webrtc::stun::error_code::ErrorCodeAttribute;
        use webrtc::stun::fingerprint::FINGERPRINT;
        use webrtc::stun::integrity::MessageIntegrity;
        use webrtc::stun::message::{
            Getter, Message, BINDING_ERROR, BINDING_REQUEST, BINDING_SUCCESS,
        };
        use webrtc::stun::textattrs::TextAttribute;
        use webrtc::stun::xoraddr::XorMappedAddress;
        let read = |bytes: &[u8]| {
            let mut m = Message::new();
            m.unmarshal_binary(bytes).expect("the stun crate parses it");
            m
        };
        let integrity = |pwd: &[u8]| {
            MessageIntegrity::new_short_term_integrity(String::from_utf8(pwd.to_vec()).unwrap())
        };
        let mut out = [0u8; 256];
        for mapped in [v4_mapped(), v6_mapped()] {
            let n =
                write_binding_success(&mut out, &TXID, mapped, PASSWORD, Some("ringsfu")).unwrap();
            let mut m = read(&out[..n]);
            assert_eq!(m.typ, BINDING_SUCCESS);
            assert_eq!(m.transaction_id.0, TXID);
            let mut xa = XorMappedAddress::default();
            xa.get_from(&m).unwrap();
            assert_eq!(SocketAddr::new(xa.ip, xa.port), mapped);
            let sw = TextAttribute::get_from_as(&m, ATTR_SOFTWARE).unwrap();
            assert_eq!(sw.text, "ringsfu");
            integrity(PASSWORD).check(&mut m).expect("integrity");
            assert!(integrity(b"wrong").check(&mut m).is_err());
            FINGERPRINT.check(&m).expect("fingerprint");
        }

        let n = write_error_response(&mut out, METHOD_BINDING, &TXID, 487, Some(PASSWORD)).unwrap();
        let mut m = read(&out[..n]);
        assert_eq!(m.typ, BINDING_ERROR);
        let mut e = ErrorCodeAttribute::default();
        e.get_from(&m).unwrap();
        assert_eq!(
            (e.code.0, e.reason.as_slice()),
            (487, &b"Role Conflict"[..])
        );
        integrity(PASSWORD).check(&mut m).expect("integrity");
        FINGERPRINT.check(&m).expect("fingerprint");

        let mut req = BindingRequest::new(TXID, "remote:local", b"secretpassword");
        req.use_candidate = true;
        let n = req.write(&mut out).unwrap();
        let mut m = read(&out[..n]);
        assert_eq!(m.typ, BINDING_REQUEST);
        let user = TextAttribute::get_from_as(&m, ATTR_USERNAME).unwrap();
        assert_eq!(user.text, "remote:local");
        assert_eq!(m.get(ATTR_PRIORITY).unwrap(), 0x6e00_01ffu32.to_be_bytes());
        assert_eq!(
            m.get(ATTR_ICE_CONTROLLING).unwrap(),
            0x0102_0304_0506_0708u64.to_be_bytes()
        );
        assert!(m.contains(ATTR_USE_CANDIDATE));
        integrity(b"secretpassword")
            .check(&mut m)
            .expect("integrity");
        FINGERPRINT.check(&m).expect("fingerprint");
    }

    #[test]
    fn layout_rules() {
        // Attribute after FINGERPRINT is malformed.
        let mut b = RESP_V4.to_vec();
        b.extend_from_slice(&[0x80, 0x22, 0x00, 0x00]);
        let body = (b.len() - HEADER_LEN) as u16;
        b[2..4].copy_from_slice(&body.to_be_bytes());
        assert_eq!(
            StunMessage::parse(&b).unwrap_err(),
            StunError::AttributeAfterFingerprint
        );

        // Attributes between MESSAGE-INTEGRITY and FINGERPRINT are ignored.
        let mut out = [0u8; 256];
        let mut w = StunWriter::new(&mut out, Class::Request, METHOD_BINDING, &TXID).unwrap();
        w.username("a:b").unwrap();
        w.message_integrity(PASSWORD).unwrap();
        w.priority(5).unwrap();
        w.use_candidate().unwrap();
        w.fingerprint().unwrap();
        let n = w.finish();
        let m = StunMessage::parse(&out[..n]).unwrap();
        assert_eq!(m.priority(), None);
        assert!(!m.use_candidate());
        assert!(m.verify_integrity(PASSWORD));
        assert!(m.verify_fingerprint());

        // Wrong fixed lengths are typed errors.
        let mut w = StunWriter::new(&mut out, Class::Request, METHOD_BINDING, &TXID).unwrap();
        w.attribute(attr::PRIORITY, &[1, 2, 3]).unwrap();
        let n = w.finish();
        assert_eq!(
            StunMessage::parse(&out[..n]).unwrap_err(),
            StunError::BadAttributeLength {
                attr_type: attr::PRIORITY,
                len: 3
            }
        );

        // Unaligned header length.
        let mut b = REQ.to_vec();
        b.push(0);
        let body = (b.len() - HEADER_LEN) as u16;
        b[2..4].copy_from_slice(&body.to_be_bytes());
        assert_eq!(
            StunMessage::parse(&b).unwrap_err(),
            StunError::UnalignedLength(b.len() - HEADER_LEN)
        );
    }
}
