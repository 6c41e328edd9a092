//! The TURN side of the wire: long-term and REST credential keys, error reason phrases, and
//! the XOR-address and attribute codecs TURN adds to core's STUN codec.

use std::net::{IpAddr, SocketAddr};

use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha1::Sha1;

use super::tattr;
use crate::stun::{attr, StunWriter, HEADER_LEN};

type HmacSha1 = Hmac<Sha1>;

/// The long-term credential key: MD5(username ":" realm ":" password) (RFC 8489 §9.2.2).
pub fn long_term_key(username: &str, realm: &str, password: &str) -> [u8; 16] {
    use md5::{Digest, Md5};
    let mut h = Md5::new();
    h.update(username.as_bytes());
    h.update(b":");
    h.update(realm.as_bytes());
    h.update(b":");
    h.update(password.as_bytes());
    h.finalize().into()
}

/// The TURN REST API password of `username`: base64(HMAC-SHA1(secret, username)).
pub fn rest_password(secret: &str, username: &str) -> String {
    let mut mac = HmacSha1::new_from_slice(secret.as_bytes()).expect("HMAC takes any key length");
    mac.update(username.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// The reason phrase of an error code.
pub(super) fn reason(code: u16) -> &'static str {
    match code {
        400 => "Bad Request",
        401 => "Unauthenticated",
        403 => "Forbidden",
        420 => "Unknown Attribute",
        437 => "Allocation Mismatch",
        438 => "Stale Nonce",
        440 => "Address Family not Supported",
        441 => "Wrong Credentials",
        442 => "Unsupported Transport Protocol",
        486 => "Allocation Quota Reached",
        500 => "Server Error",
        508 => "Insufficient Capacity",
        _ => "Error",
    }
}

/// Decodes an XOR-ADDRESS attribute value (XOR-PEER-ADDRESS, ...).
pub(super) fn xor_address(v: &[u8], txid: &[u8; 12]) -> Option<SocketAddr> {
    if v.len() < 4 {
        return None;
    }
    let port = u16::from_be_bytes([v[2], v[3]]) ^ 0x2112;
    let cookie = crate::stun::MAGIC_COOKIE.to_be_bytes();
    match v[1] {
        0x01 if v.len() == 8 => {
            let mut ip = [0u8; 4];
            for i in 0..4 {
                ip[i] = v[4 + i] ^ cookie[i];
            }
            Some(SocketAddr::new(IpAddr::from(ip), port))
        }
        0x02 if v.len() == 20 => {
            let mut ip = [0u8; 16];
            for i in 0..16 {
                let m = if i < 4 { cookie[i] } else { txid[i - 4] };
                ip[i] = v[4 + i] ^ m;
            }
            Some(SocketAddr::new(IpAddr::from(ip), port))
        }
        _ => None,
    }
}

/// Writes an XOR-ADDRESS attribute of type `ty`.
pub(super) fn put_xor_address(
    w: &mut StunWriter<'_>,
    ty: u16,
    addr: SocketAddr,
    txid: &[u8; 12],
) -> Result<(), crate::stun::StunError> {
    let port = (addr.port() ^ 0x2112).to_be_bytes();
    let cookie = crate::stun::MAGIC_COOKIE.to_be_bytes();
    match addr.ip() {
        IpAddr::V4(ip) => {
            let o = ip.octets();
            let mut v = [0u8; 8];
            v[1] = 1;
            v[2..4].copy_from_slice(&port);
            for i in 0..4 {
                v[4 + i] = o[i] ^ cookie[i];
            }
            w.attribute(ty, &v)
        }
        IpAddr::V6(ip) => {
            let o = ip.octets();
            let mut v = [0u8; 20];
            v[1] = 2;
            v[2..4].copy_from_slice(&port);
            for i in 0..16 {
                let m = if i < 4 { cookie[i] } else { txid[i - 4] };
                v[4 + i] = o[i] ^ m;
            }
            w.attribute(ty, &v)
        }
    }
}

/// Which known attributes a request may carry (comprehension-required ones not listed → 420).
pub(super) fn known_attribute(t: u16) -> bool {
    t >= 0x8000
        || matches!(
            t,
            attr::USERNAME
                | attr::MESSAGE_INTEGRITY
                | attr::REALM
                | attr::NONCE
                | attr::XOR_MAPPED_ADDRESS
                | attr::PRIORITY
                | attr::USE_CANDIDATE
                | tattr::CHANNEL_NUMBER
                | tattr::LIFETIME
                | tattr::XOR_PEER_ADDRESS
                | tattr::DATA
                | tattr::REQUESTED_ADDRESS_FAMILY
                | tattr::EVEN_PORT
                | tattr::REQUESTED_TRANSPORT
                | tattr::DONT_FRAGMENT
                | tattr::RESERVATION_TOKEN
                | 0x001C // MESSAGE-INTEGRITY-SHA256 (ignored)
                | 0x001D // PASSWORD-ALGORITHM
                | 0x001E // USERHASH
        )
}

/// Iterates the attributes of a parsed message: (type, value).
pub(super) fn attributes(buf: &[u8]) -> impl Iterator<Item = (u16, &[u8])> {
    let mut off = HEADER_LEN;
    std::iter::from_fn(move || {
        if off + 4 > buf.len() {
            return None;
        }
        let t = u16::from_be_bytes([buf[off], buf[off + 1]]);
        let l = usize::from(u16::from_be_bytes([buf[off + 2], buf[off + 3]]));
        let v = buf.get(off + 4..off + 4 + l)?;
        off += 4 + l.div_ceil(4) * 4;
        Some((t, v))
    })
}
