//! Transport tuples: where a packet came from and which local socket got it.

use std::net::SocketAddr;

/// Transport protocol of a tuple.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Protocol {
    /// Plain UDP datagrams.
    Udp,
    /// RFC 4571 framed packets on a TCP connection.
    Tcp,
}

impl Protocol {
    /// Lower-case name as mediasoup prints it (`"udp"` / `"tcp"`).
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Udp => "udp",
            Protocol::Tcp => "tcp",
        }
    }
}

/// A 5-tuple: local address, remote address and protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TransportTuple {
    /// Our address (the socket that received the packet).
    pub local: SocketAddr,
    /// The peer's address.
    pub remote: SocketAddr,
    /// UDP or TCP.
    pub protocol: Protocol,
}
