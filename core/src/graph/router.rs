//! Router: one room's media graph. It owns nothing on the packet path itself; it records which
//! transports and producers belong to the room and the capabilities consumers are negotiated against.

use uuid::Uuid;

use crate::keys::{ProducerKey, TransportKey};

use crate::rtp_parameters::RtpCapabilities;

/// A router owned by a worker.
pub struct Router {
    /// Public id.
    pub id: Uuid,
    /// Router RTP capabilities generated from the configured media codecs.
    pub rtp_capabilities: RtpCapabilities,
    /// Transport keys.
    pub transports: Vec<TransportKey>,
    /// Producer keys.
    pub producers: Vec<ProducerKey>,
}
