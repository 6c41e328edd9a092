//! ringsfu-core: the forwarding engine.
//!
//! Sans-IO protocol modules (stun, ice, srtp, rtp, rtcp, ortc) are state machines fed bytes and
//! time; [`engine::Engine`] ties them into the per-worker media graph; [`worker`] runs one engine per
//! pinned thread and [`io`] only moves bytes.

pub mod codecs;
pub mod consumer;
pub mod data;
pub mod data_channel;
pub mod dtls;
pub mod engine;
pub mod ice;
pub mod io;
pub mod observer;
pub mod ortc;
pub mod producer;
pub mod router;
pub mod rtcp;
pub mod rtp;
pub mod rtp_parameters;
pub mod rtp_stream;
pub mod score;
pub mod sctp;
pub mod srtp;
pub mod stun;
pub mod transport;
pub mod tuple;
pub mod worker;
