//! The engine's table sizes for the debug dump (`GET /admin/debug`): every slab, id index and
//! demultiplexing map, so an endurance test can see that a closed room leaves no entry behind.

use super::*;

/// Entries in each of the engine's tables ([`Engine::table_sizes`]); serialized with
/// camelCase keys (`dataProducers`, `iceUfrags`, ...) in the debug dump.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TableSizes {
    /// Routers (slab).
    pub routers: usize,
    /// Transports (slab).
    pub transports: usize,
    /// Producers (slab).
    pub producers: usize,
    /// Consumers (slab).
    pub consumers: usize,
    /// Data producers (slab).
    pub data_producers: usize,
    /// Data consumers (slab).
    pub data_consumers: usize,
    /// RTP observers (slab).
    pub rtp_observers: usize,
    /// Router id → key index.
    pub router_ids: usize,
    /// Transport id → key index.
    pub transport_ids: usize,
    /// Producer id → key index.
    pub producer_ids: usize,
    /// Consumer id → key index.
    pub consumer_ids: usize,
    /// Data producer id → key index.
    pub data_producer_ids: usize,
    /// Data consumer id → key index.
    pub data_consumer_ids: usize,
    /// ICE username fragment → transport (demultiplexer).
    pub ice_ufrags: usize,
    /// UDP 5-tuple → transport (demultiplexer).
    pub udp_paths: usize,
    /// TCP connection → transport (demultiplexer).
    pub tcp_paths: usize,
    /// Plain transports' own sockets → transport.
    pub plain_sockets: usize,
    /// SSRC table entries, summed over transports.
    pub ssrc_entries: usize,
    /// MID table entries, summed over transports.
    pub mid_entries: usize,
    /// SCTP incoming stream entries, summed over transports.
    pub sctp_stream_entries: usize,
    /// Events not yet drained.
    pub pending_events: usize,
}

impl Engine {
    /// Entries in each of the engine's tables (slabs of objects, id → key indexes, demultiplexer
    /// maps, per-transport SSRC/MID/SCTP tables summed over transports, queued events). All are 0
    /// on a worker with no router once its events were drained.
    pub fn table_sizes(&self) -> TableSizes {
        let per_transport = |f: fn(&Transport) -> usize| -> usize {
            self.transports.iter().map(|(_, t)| f(t)).sum()
        };
        TableSizes {
            routers: self.routers.len(),
            transports: self.transports.len(),
            producers: self.producers.len(),
            consumers: self.consumers.len(),
            data_producers: self.data_producers.len(),
            data_consumers: self.data_consumers.len(),
            rtp_observers: self.observers.len(),
            router_ids: self.router_ids.len(),
            transport_ids: self.transport_ids.len(),
            producer_ids: self.producer_ids.len(),
            consumer_ids: self.consumer_ids.len(),
            data_producer_ids: self.data_producer_ids.len(),
            data_consumer_ids: self.data_consumer_ids.len(),
            ice_ufrags: self.ufrags.len(),
            udp_paths: self.udp_paths.len(),
            tcp_paths: self.tcp_paths.len(),
            plain_sockets: self.plain_sockets.len(),
            ssrc_entries: per_transport(|t| t.ssrc_table.len()),
            mid_entries: per_transport(|t| t.mid_table.len()),
            sctp_stream_entries: per_transport(|t| t.sctp_in_streams.len()),
            pending_events: self.events.len(),
        }
    }
}
