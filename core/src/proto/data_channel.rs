//! DCEP, the Data Channel Establishment Protocol (RFC 8832), carried as SCTP PPID 50.
//!
//! mediasoup-client negotiates every channel out of band (`negotiated: true`, id = stream id) and
//! never sends DCEP; a plain `RTCPeerConnection.createDataChannel()` sends DATA_CHANNEL_OPEN on
//! the chosen stream and waits for DATA_CHANNEL_ACK. [`handle_dcep`] turns an incoming OPEN into
//! the channel's parameters plus the ACK to send back, so the engine can serve both kinds.
//!
//! Wire format of DATA_CHANNEL_OPEN (RFC 8832 §5.1), all integers big-endian:
//! `type(1)=0x03 | channel type(1) | priority(2) | reliability parameter(4) |
//!  label length(2) | protocol length(2) | label | protocol`. DATA_CHANNEL_ACK is the single byte 0x02.

use thiserror::Error;

use crate::rtp_parameters::SctpStreamParameters;
use crate::sctp::{PartialReliability, Reliability};

/// DCEP message type of DATA_CHANNEL_OPEN.
pub const DATA_CHANNEL_OPEN: u8 = 0x03;
/// DCEP message type of DATA_CHANNEL_ACK.
pub const DATA_CHANNEL_ACK: u8 = 0x02;
/// The whole DATA_CHANNEL_ACK message.
pub const DCEP_ACK: [u8; 1] = [DATA_CHANNEL_ACK];

/// Fixed part of DATA_CHANNEL_OPEN before label and protocol.
const OPEN_HEADER_LEN: usize = 12;

/// Channel type bit meaning "unordered" (RFC 8832 §5.1).
const CHANNEL_UNORDERED: u8 = 0x80;
/// Channel type low bits.
const CHANNEL_RELIABLE: u8 = 0x00;
const CHANNEL_PARTIAL_RELIABLE_REXMIT: u8 = 0x01;
const CHANNEL_PARTIAL_RELIABLE_TIMED: u8 = 0x02;

/// Why a DCEP message could not be parsed or built.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum DcepError {
    /// No bytes at all.
    #[error("empty DCEP message")]
    Empty,
    /// First byte is neither OPEN nor ACK.
    #[error("unknown DCEP message type {0:#04x}")]
    UnknownMessageType(u8),
    /// Shorter than its header or its declared label/protocol lengths.
    #[error("truncated DATA_CHANNEL_OPEN: need {need} bytes, have {have}")]
    Truncated {
        /// Bytes the header asks for.
        need: usize,
        /// Bytes present.
        have: usize,
    },
    /// Channel type not defined by RFC 8832.
    #[error("unknown DCEP channel type {0:#04x}")]
    UnknownChannelType(u8),
    /// Label or protocol is not UTF-8.
    #[error("DCEP {0} is not valid UTF-8")]
    InvalidUtf8(&'static str),
    /// Label or protocol longer than 65535 bytes (cannot be encoded).
    #[error("DCEP {0} longer than 65535 bytes")]
    TooLong(&'static str),
}

/// A DATA_CHANNEL_OPEN message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataChannelOpen {
    /// Ordering and partial reliability requested for the channel.
    pub reliability: Reliability,
    /// Priority (RFC 8832 §5.1: 128 below normal, 256 normal, 512 high, 1024 extra high).
    pub priority: u16,
    /// Channel label.
    pub label: String,
    /// Sub-protocol (may be empty).
    pub protocol: String,
}

/// A parsed DCEP message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DcepMessage {
    /// DATA_CHANNEL_OPEN.
    Open(DataChannelOpen),
    /// DATA_CHANNEL_ACK.
    Ack,
}

impl DcepMessage {
    /// Parses a PPID-50 payload. Trailing bytes after an ACK or after the protocol are ignored, as
    /// RFC 8832 defines no extensions and browsers send none.
    pub fn parse(buf: &[u8]) -> Result<DcepMessage, DcepError> {
        match buf.first() {
            None => Err(DcepError::Empty),
            Some(&DATA_CHANNEL_ACK) => Ok(DcepMessage::Ack),
            Some(&DATA_CHANNEL_OPEN) => DataChannelOpen::parse(buf).map(DcepMessage::Open),
            Some(&t) => Err(DcepError::UnknownMessageType(t)),
        }
    }
}

fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

impl DataChannelOpen {
    /// Parses a DATA_CHANNEL_OPEN (the first byte must be 0x03).
    pub fn parse(buf: &[u8]) -> Result<DataChannelOpen, DcepError> {
        let truncated = |need| DcepError::Truncated {
            need,
            have: buf.len(),
        };
        let head = buf
            .get(..OPEN_HEADER_LEN)
            .ok_or_else(|| truncated(OPEN_HEADER_LEN))?;
        match head[0] {
            DATA_CHANNEL_OPEN => {}
            t => return Err(DcepError::UnknownMessageType(t)),
        }
        let channel_type = head[1];
        let priority = be16(head, 2);
        let param = u32::from_be_bytes([head[4], head[5], head[6], head[7]]);
        let label_len = usize::from(be16(head, 8));
        let protocol_len = usize::from(be16(head, 10));
        let need = OPEN_HEADER_LEN + label_len + protocol_len;
        let body = buf
            .get(OPEN_HEADER_LEN..need)
            .ok_or_else(|| truncated(need))?;
        let (label, protocol) = body.split_at(label_len);
        let partial = match channel_type & !CHANNEL_UNORDERED {
            // The parameter "is ignored" for reliable channels (RFC 8832 §5.1).
            CHANNEL_RELIABLE => PartialReliability::Reliable,
            CHANNEL_PARTIAL_RELIABLE_REXMIT => PartialReliability::MaxRetransmits(param),
            CHANNEL_PARTIAL_RELIABLE_TIMED => PartialReliability::MaxPacketLifeTime(param),
            _ => return Err(DcepError::UnknownChannelType(channel_type)),
        };
        Ok(DataChannelOpen {
            reliability: Reliability {
                ordered: channel_type & CHANNEL_UNORDERED == 0,
                partial,
            },
            priority,
            label: std::str::from_utf8(label)
                .map_err(|_| DcepError::InvalidUtf8("label"))?
                .to_owned(),
            protocol: std::str::from_utf8(protocol)
                .map_err(|_| DcepError::InvalidUtf8("protocol"))?
                .to_owned(),
        })
    }

    /// Appends the encoded DATA_CHANNEL_OPEN to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) -> Result<(), DcepError> {
        let label_len = u16::try_from(self.label.len()).map_err(|_| DcepError::TooLong("label"))?;
        let protocol_len =
            u16::try_from(self.protocol.len()).map_err(|_| DcepError::TooLong("protocol"))?;
        let (kind, param) = match self.reliability.partial {
            PartialReliability::Reliable => (CHANNEL_RELIABLE, 0),
            PartialReliability::MaxRetransmits(n) => (CHANNEL_PARTIAL_RELIABLE_REXMIT, n),
            PartialReliability::MaxPacketLifeTime(ms) => (CHANNEL_PARTIAL_RELIABLE_TIMED, ms),
        };
        let channel_type = if self.reliability.ordered {
            kind
        } else {
            kind | CHANNEL_UNORDERED
        };
        out.reserve(OPEN_HEADER_LEN + self.label.len() + self.protocol.len());
        out.push(DATA_CHANNEL_OPEN);
        out.push(channel_type);
        out.extend_from_slice(&self.priority.to_be_bytes());
        out.extend_from_slice(&param.to_be_bytes());
        out.extend_from_slice(&label_len.to_be_bytes());
        out.extend_from_slice(&protocol_len.to_be_bytes());
        out.extend_from_slice(self.label.as_bytes());
        out.extend_from_slice(self.protocol.as_bytes());
        Ok(())
    }

    /// The channel as mediasoup `sctpStreamParameters` on `stream_id` (lifetimes and retransmit
    /// counts above 65535 saturate: the mediasoup API carries them as 16-bit values).
    pub fn stream_parameters(&self, stream_id: u16) -> SctpStreamParameters {
        let sat = |v: u32| u16::try_from(v).unwrap_or(u16::MAX);
        let (life, retr) = match self.reliability.partial {
            PartialReliability::Reliable => (None, None),
            PartialReliability::MaxRetransmits(n) => (None, Some(sat(n))),
            PartialReliability::MaxPacketLifeTime(ms) => (Some(sat(ms)), None),
        };
        SctpStreamParameters {
            stream_id,
            ordered: Some(self.reliability.ordered),
            max_packet_life_time: life,
            max_retransmits: retr,
        }
    }
}

/// What the engine should do with an incoming PPID-50 message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DcepAction {
    /// The peer opened a channel on `stream_id`: create a DataProducer from `open` and send
    /// [`DCEP_ACK`] on the same stream (PPID 50, reliable ordered).
    Opened {
        /// Stream the OPEN arrived on: the channel id.
        stream_id: u16,
        /// The channel's label, protocol and reliability.
        open: DataChannelOpen,
        /// The reply to send on `stream_id` with PPID 50.
        ack: [u8; 1],
    },
    /// The peer acknowledged a channel we opened with DCEP on `stream_id`.
    Acked {
        /// The acknowledged stream.
        stream_id: u16,
    },
}

/// Interprets a DCEP message received on `stream_id`.
pub fn handle_dcep(stream_id: u16, payload: &[u8]) -> Result<DcepAction, DcepError> {
    Ok(match DcepMessage::parse(payload)? {
        DcepMessage::Open(open) => DcepAction::Opened {
            stream_id,
            open,
            ack: DCEP_ACK,
        },
        DcepMessage::Ack => DcepAction::Acked { stream_id },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// DATA_CHANNEL_OPEN built by hand from RFC 8832 §5.1: unordered, partial reliable
    /// (retransmit), priority 256, 3 retransmits, label "chat", protocol "x-y".
    const HAND_OPEN: [u8; 19] = [
        0x03, // message type OPEN
        0x81, // DATA_CHANNEL_PARTIAL_RELIABLE_REXMIT_UNORDERED
        0x01, 0x00, // priority 256
        0x00, 0x00, 0x00, 0x03, // reliability parameter
        0x00, 0x04, // label length
        0x00, 0x03, // protocol length
        b'c', b'h', b'a', b't', b'x', b'-', b'y',
    ];

    fn hand_open() -> DataChannelOpen {
        DataChannelOpen {
            reliability: Reliability {
                ordered: false,
                partial: PartialReliability::MaxRetransmits(3),
            },
            priority: 256,
            label: "chat".into(),
            protocol: "x-y".into(),
        }
    }

    #[test]
    fn parses_hand_built_open() {
        assert_eq!(
            DcepMessage::parse(&HAND_OPEN),
            Ok(DcepMessage::Open(hand_open()))
        );
    }

    #[test]
    fn encodes_to_hand_built_bytes() {
        let mut out = Vec::new();
        hand_open().encode(&mut out).unwrap();
        assert_eq!(out, HAND_OPEN);
    }

    #[test]
    fn round_trip_all_channel_types() {
        for ordered in [true, false] {
            for partial in [
                PartialReliability::Reliable,
                PartialReliability::MaxRetransmits(0),
                PartialReliability::MaxRetransmits(70_000),
                PartialReliability::MaxPacketLifeTime(1500),
            ] {
                let open = DataChannelOpen {
                    reliability: Reliability { ordered, partial },
                    priority: 512,
                    label: "ünïcode label".into(),
                    protocol: String::new(),
                };
                let mut out = Vec::new();
                open.encode(&mut out).unwrap();
                let ct = out[1];
                assert_eq!(ct & 0x80 == 0, ordered);
                assert_eq!(DataChannelOpen::parse(&out), Ok(open));
            }
        }
    }

    #[test]
    fn reliable_channel_ignores_parameter() {
        let mut b = HAND_OPEN;
        b[1] = 0x00;
        let open = DataChannelOpen::parse(&b).unwrap();
        assert_eq!(open.reliability, Reliability::RELIABLE_ORDERED);
        assert_eq!(
            open.stream_parameters(4),
            SctpStreamParameters {
                stream_id: 4,
                ordered: Some(true),
                max_packet_life_time: None,
                max_retransmits: None
            }
        );
    }

    #[test]
    fn ack_and_handle_dcep() {
        assert_eq!(DcepMessage::parse(&DCEP_ACK), Ok(DcepMessage::Ack));
        assert_eq!(
            handle_dcep(3, &[0x02]),
            Ok(DcepAction::Acked { stream_id: 3 })
        );
        match handle_dcep(6, &HAND_OPEN).unwrap() {
            DcepAction::Opened {
                stream_id,
                open,
                ack,
            } => {
                assert_eq!(stream_id, 6);
                assert_eq!(ack, [0x02]);
                assert_eq!(
                    open.stream_parameters(stream_id),
                    SctpStreamParameters {
                        stream_id: 6,
                        ordered: Some(false),
                        max_packet_life_time: None,
                        max_retransmits: Some(3)
                    }
                );
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn malformed_messages_are_typed_errors() {
        assert_eq!(DcepMessage::parse(&[]), Err(DcepError::Empty));
        assert_eq!(
            DcepMessage::parse(&[0x07]),
            Err(DcepError::UnknownMessageType(0x07))
        );
        for n in 1..HAND_OPEN.len() {
            assert!(
                matches!(
                    DcepMessage::parse(&HAND_OPEN[..n]),
                    Err(DcepError::Truncated { .. })
                ),
                "prefix {n}"
            );
        }
        let mut b = HAND_OPEN;
        b[1] = 0x03;
        assert_eq!(
            DcepMessage::parse(&b),
            Err(DcepError::UnknownChannelType(0x03))
        );
        let mut b = HAND_OPEN;
        b[12] = 0xff;
        assert_eq!(DcepMessage::parse(&b), Err(DcepError::InvalidUtf8("label")));
        let mut b = HAND_OPEN;
        b[18] = 0xc3;
        assert_eq!(
            DcepMessage::parse(&b),
            Err(DcepError::InvalidUtf8("protocol"))
        );
        let long = DataChannelOpen {
            label: "a".repeat(65_536),
            ..hand_open()
        };
        assert_eq!(
            long.encode(&mut Vec::new()),
            Err(DcepError::TooLong("label"))
        );
    }
}
