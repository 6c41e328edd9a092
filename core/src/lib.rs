//! ringsfu-core: the forwarding engine.
//!
//! Sans-IO protocol modules (stun, ice, srtp, rtp, rtcp, ortc) are state machines fed bytes and
//! time; the worker's I/O layer only moves bytes.

pub mod ice;
pub mod stun;
pub mod ortc;
pub mod rtp_parameters;
pub mod codecs;
pub mod rtcp;
pub mod rtp;
pub mod rtp_stream;
pub mod tuple;
pub mod consumer;
pub mod dtls;
pub mod engine;
pub mod io;
pub mod producer;
pub mod router;
pub mod transport;
pub mod worker;
