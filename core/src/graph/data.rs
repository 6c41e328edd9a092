//! DataProducer and DataConsumer: data-channel messages into and out of a router, over a
//! WebRtcTransport's SCTP association or "direct" (in-process, for server-side scripts like the
//! demo's bot).

use crate::api::{DataConsumerInfo, DataProducerInfo};
use uuid::Uuid;

use crate::keys::{DataConsumerKey, DataProducerKey, RouterKey, TransportKey};
use crate::rtp_parameters::SctpStreamParameters;
use crate::sctp::{Ppid, Reliability};

/// Counters of a data producer or consumer.
#[derive(Debug, Default, Clone, Copy)]
pub struct DataCounters {
    /// Messages handled.
    pub messages: u64,
    /// Payload bytes handled.
    pub bytes: u64,
    /// Messages that could not be delivered (too large, stream closed, association down).
    pub dropped: u64,
}

/// A data producer owned by a worker.
pub struct DataProducer {
    /// Public id.
    pub id: Uuid,
    /// Router key.
    pub router: RouterKey,
    /// Transport key; `None` for a direct data producer.
    pub transport: Option<TransportKey>,
    /// Incoming SCTP stream parameters (None for direct).
    pub sctp_stream_parameters: Option<SctpStreamParameters>,
    /// Channel label.
    pub label: String,
    /// Channel sub-protocol.
    pub protocol: String,
    /// Paused: messages are dropped.
    pub paused: bool,
    /// Data consumer keys.
    pub consumers: Vec<DataConsumerKey>,
    /// Messages received.
    pub counters: DataCounters,
}

impl DataProducer {
    /// mediasoup's `type`: "sctp" or "direct".
    pub fn kind(&self) -> &'static str {
        if self.transport.is_some() {
            "sctp"
        } else {
            "direct"
        }
    }

    /// What mediasoup returns for a data producer.
    pub fn info(&self) -> DataProducerInfo {
        DataProducerInfo {
            id: self.id.to_string(),
            data_producer_type: self.kind(),
            label: self.label.clone(),
            protocol: self.protocol.clone(),
            paused: self.paused,
            sctp_stream_parameters: self.sctp_stream_parameters,
        }
    }
}

/// A data consumer owned by a worker.
pub struct DataConsumer {
    /// Public id.
    pub id: Uuid,
    /// Data producer key.
    pub data_producer: DataProducerKey,
    /// Data producer id (for events after it is gone).
    pub data_producer_id: Uuid,
    /// Transport key; `None` for a direct data consumer (messages become engine events).
    pub transport: Option<TransportKey>,
    /// Outgoing SCTP stream parameters (None for direct).
    pub sctp_stream_parameters: Option<SctpStreamParameters>,
    /// How messages are sent on the stream.
    pub reliability: Reliability,
    /// Label copied from the producer.
    pub label: String,
    /// Protocol copied from the producer.
    pub protocol: String,
    /// Paused by the API.
    pub paused: bool,
    /// Mirrors the data producer's pause state.
    pub data_producer_paused: bool,
    /// Messages sent.
    pub counters: DataCounters,
}

impl DataConsumer {
    /// mediasoup's `type`: "sctp" or "direct".
    pub fn kind(&self) -> &'static str {
        if self.transport.is_some() {
            "sctp"
        } else {
            "direct"
        }
    }

    /// What mediasoup returns for a data consumer.
    pub fn info(&self) -> DataConsumerInfo {
        DataConsumerInfo {
            id: self.id.to_string(),
            data_producer_id: self.data_producer_id.to_string(),
            data_consumer_type: self.kind(),
            label: self.label.clone(),
            protocol: self.protocol.clone(),
            paused: self.paused,
            data_producer_paused: self.data_producer_paused,
            sctp_stream_parameters: self.sctp_stream_parameters,
        }
    }
}

/// A data-channel message as it travels through the router.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataMessage {
    /// String or binary (the empty variants are folded into these).
    pub ppid: Ppid,
    /// Payload (may be empty).
    pub data: Vec<u8>,
}

impl DataMessage {
    /// Whether the message is text.
    pub fn is_string(&self) -> bool {
        self.ppid.is_string()
    }
}

/// Allocates outgoing SCTP stream ids on a transport: the lowest free id, searching from just
/// after the last one given, within the transport's MIS (mediasoup's rule).
#[derive(Debug, Clone)]
pub struct StreamIdAllocator {
    used: Vec<bool>,
    last: usize,
}

impl StreamIdAllocator {
    /// A pool of `size` stream ids (the peer's MIS).
    pub fn new(size: u16) -> Self {
        Self {
            used: vec![false; size.max(1) as usize],
            last: usize::MAX,
        }
    }

    /// Takes a free id, or None when all are in use.
    pub fn allocate(&mut self) -> Option<u16> {
        let n = self.used.len();
        for k in 0..n {
            let i = (self.last.wrapping_add(1 + k)) % n;
            if !self.used[i] {
                self.used[i] = true;
                self.last = i;
                return Some(i as u16);
            }
        }
        None
    }

    /// Returns an id to the pool.
    pub fn release(&mut self, id: u16) {
        if let Some(u) = self.used.get_mut(id as usize) {
            *u = false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_ids_rotate_and_are_reused_after_release() {
        let mut a = StreamIdAllocator::new(3);
        assert_eq!(a.allocate(), Some(0));
        assert_eq!(a.allocate(), Some(1));
        a.release(0);
        assert_eq!(a.allocate(), Some(2), "continues after the last one given");
        assert_eq!(a.allocate(), Some(0), "then wraps to the freed one");
        assert_eq!(a.allocate(), None, "pool exhausted");
    }
}
