//! Sans-IO protocol modules: each is fed bytes (and, where it keeps timers, the current time) and
//! returns what to send; none of them owns a socket, reads a clock on the packet path or knows the
//! engine. `dtls` wraps the async `dtls` crate behind the same input/output shape.

pub mod codecs;
pub mod data_channel;
pub mod dtls;
pub mod ice;
pub mod rtcp;
pub mod rtp;
pub mod sctp;
pub mod srtp;
pub mod stun;
pub mod tuple;
