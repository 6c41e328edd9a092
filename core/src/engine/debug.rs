//! The engine's table sizes for the debug dump (`GET /admin/debug`): every slab, id index and
//! demultiplexing map, so an endurance test can see that a closed room leaves no entry behind.

use super::*;
use serde_json::json;

impl Engine {
    /// Entries in each of the engine's tables (slabs of objects, id → key indexes, demultiplexer
    /// maps, per-transport SSRC/MID/SCTP tables summed over transports, queued events). All are 0
    /// on a worker with no router once its events were drained.
    pub fn table_sizes(&self) -> Value {
        let per_transport = |f: fn(&Transport) -> usize| -> usize {
            self.transports.iter().map(|(_, t)| f(t)).sum()
        };
        json!({
            "routers": self.routers.len(),
            "transports": self.transports.len(),
            "producers": self.producers.len(),
            "consumers": self.consumers.len(),
            "dataProducers": self.data_producers.len(),
            "dataConsumers": self.data_consumers.len(),
            "rtpObservers": self.observers.len(),
            "routerIds": self.router_ids.len(),
            "transportIds": self.transport_ids.len(),
            "producerIds": self.producer_ids.len(),
            "consumerIds": self.consumer_ids.len(),
            "dataProducerIds": self.data_producer_ids.len(),
            "dataConsumerIds": self.data_consumer_ids.len(),
            "iceUfrags": self.ufrags.len(),
            "udpPaths": self.udp_paths.len(),
            "tcpPaths": self.tcp_paths.len(),
            "plainSockets": self.plain_sockets.len(),
            "ssrcEntries": per_transport(|t| t.ssrc_table.len()),
            "midEntries": per_transport(|t| t.mid_table.len()),
            "sctpStreamEntries": per_transport(|t| t.sctp_in_streams.len()),
            "pendingEvents": self.events.len(),
        })
    }
}
