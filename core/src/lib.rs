//! ringsfu-core: the forwarding engine.
//!
//! Sans-IO protocol modules (stun, ice, srtp, rtp, rtcp, ortc) are state machines fed bytes and
//! time; the worker's I/O layer only moves bytes.

pub mod srtp;
pub mod tuple;
