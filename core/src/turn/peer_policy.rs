//! Which peer addresses a TURN allocation may relay to.
//!
//! An open relay on the internet lets anyone reach the operator's internal network through it, so
//! loopback, private, link-local and special addresses are refused by default (coturn's
//! `no-loopback-peers` / `denied-peer-ip` defaults). Operators open loopback or private ranges
//! explicitly and may deny further ranges ([`PeerRange`]), which win over every allowance.

use std::net::IpAddr;
use std::str::FromStr;

/// An address range in CIDR notation (`10.0.0.0/8`, `fd00::/8`) or a single address, as
/// coturn's `denied-peer-ip` takes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerRange {
    net: IpAddr,
    prefix: u8,
}

impl PeerRange {
    /// Whether `ip` lies in the range (IPv4-mapped IPv6 addresses count as IPv4).
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.net, unmap(ip)) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

/// Why a peer range string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PeerRangeError {
    /// The address part is not an IP address.
    #[error("`{0}` is not an IP address or CIDR range")]
    Address(String),
    /// The prefix length is not a number within the address family's bits.
    #[error("`{0}` has a prefix length outside 0-32 (IPv4) / 0-128 (IPv6)")]
    Prefix(String),
}

impl FromStr for PeerRange {
    type Err = PeerRangeError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let net = unmap(
            addr.trim()
                .parse::<IpAddr>()
                .map_err(|_| PeerRangeError::Address(s.to_owned()))?,
        );
        let bits = if net.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => bits,
            Some(p) => match p.trim().parse::<u8>() {
                Ok(p) if p <= bits => p,
                _ => return Err(PeerRangeError::Prefix(s.to_owned())),
            },
        };
        Ok(PeerRange { net, prefix })
    }
}

fn unmap(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    }
}

/// Whether `ip` is a peer address refused by default (loopback unless `allow_loopback`,
/// private and link-local unless `allow_private`, and always unspecified, multicast,
/// broadcast and 0.0.0.0/8).
pub fn is_denied_peer(ip: IpAddr, allow_loopback: bool, allow_private: bool) -> bool {
    match unmap(ip) {
        IpAddr::V4(v4) => {
            if v4.is_loopback() {
                return !allow_loopback;
            }
            if v4.is_private() || v4.is_link_local() {
                return !allow_private;
            }
            v4.is_unspecified() || v4.is_multicast() || v4.is_broadcast() || v4.octets()[0] == 0
        }
        IpAddr::V6(v6) => {
            if v6.is_loopback() {
                return !allow_loopback;
            }
            let seg0 = v6.segments()[0];
            if (seg0 & 0xfe00) == 0xfc00 || (seg0 & 0xffc0) == 0xfe80 {
                return !allow_private;
            }
            v6.is_unspecified() || v6.is_multicast()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn ranges_match_their_prefix_only() {
        let r: PeerRange = "10.1.0.0/16".parse().unwrap();
        assert!(r.contains(ip("10.1.255.3")));
        assert!(!r.contains(ip("10.2.0.1")));
        assert!(
            r.contains(ip("::ffff:10.1.0.9")),
            "IPv4-mapped counts as IPv4"
        );
        assert!(!r.contains(ip("fd00::1")));
        let one: PeerRange = "127.0.0.2".parse().unwrap();
        assert!(one.contains(ip("127.0.0.2")) && !one.contains(ip("127.0.0.1")));
        let all: PeerRange = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains(ip("203.0.113.7")));
        let v6: PeerRange = "fd00::/8".parse().unwrap();
        assert!(v6.contains(ip("fdab::1")) && !v6.contains(ip("fe80::1")));
    }

    #[test]
    fn bad_ranges_name_the_problem() {
        assert_eq!(
            "10.0.0/8".parse::<PeerRange>(),
            Err(PeerRangeError::Address("10.0.0/8".into()))
        );
        assert_eq!(
            "10.0.0.0/33".parse::<PeerRange>(),
            Err(PeerRangeError::Prefix("10.0.0.0/33".into()))
        );
        assert!("::1/129".parse::<PeerRange>().is_err());
        assert!("::1/128".parse::<PeerRange>().is_ok());
    }

    #[test]
    fn defaults_refuse_the_open_relay_holes() {
        for a in [
            "127.0.0.1",
            "10.0.0.1",
            "192.168.1.1",
            "169.254.0.1",
            "0.0.0.0",
            "224.0.0.1",
            "::1",
            "fe80::1",
            "fc00::1",
        ] {
            assert!(is_denied_peer(ip(a), false, false), "{a}");
        }
        assert!(!is_denied_peer(ip("203.0.113.7"), false, false));
        assert!(!is_denied_peer(ip("127.0.0.1"), true, false));
        assert!(is_denied_peer(ip("10.0.0.1"), true, false));
        assert!(!is_denied_peer(ip("10.0.0.1"), false, true));
    }
}
