//! ringsfu-core: the forwarding engine.
//!
//! The folders show the layers, bottom to top:
//!
//! - [`proto`]: sans-IO protocol modules (STUN, ICE-lite, DTLS, SRTP, RTP, RTCP, SCTP, DCEP,
//!   codec payload inspection, transport tuples): state machines fed bytes and time.
//! - [`ortc`]: RTP/SCTP parameter types and mediasoup's ORTC negotiation as pure functions.
//! - [`transport`]: the per-peer state of a WebRtcTransport or PlainTransport.
//! - [`graph`]: the media graph: routers, producers, consumers (`Consumer::forward`), per-stream
//!   receive state, data producers/consumers.
//! - [`engine`]: one per worker; demultiplexes packets to transports and ties the layers together
//!   (packet path, RTCP feedback, data channels, close cascades, stats).
//! - [`api`]: the typed values the engine's public methods take and return (serialized to
//!   mediasoup's JSON only at the Lua/HTTP edge).
//! - [`worker`] runs one engine per pinned thread; [`io`] only moves bytes.
//!
//! The old flat module paths (`ringsfu_core::stun`, `ringsfu_core::producer`, ...) are kept as
//! re-exports so code outside the core does not depend on the folder layout.

pub mod api;
pub mod bwe;
pub mod engine;
pub mod graph;
pub mod io;
pub mod keys;
pub mod metrics;
pub mod observer;
pub mod ortc;
pub mod proto;
pub mod score;
pub mod sdp;
pub mod transport;
pub mod turn;
pub mod worker;

// Flat paths of the previous layout.
pub use graph::{consumer, data, producer, router, rtp_stream, seq_map};
pub use ortc::parameters as rtp_parameters;
pub use proto::{codecs, data_channel, dtls, ice, rtcp, rtp, sctp, srtp, stun, tuple};
