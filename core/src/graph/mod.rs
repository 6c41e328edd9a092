//! The media graph of a worker: routers (rooms), producers and their per-stream receive state,
//! consumers (the per-receiver rewrite in [`consumer::Consumer::forward`]), and data
//! producers/consumers. The engine owns the objects; these modules hold their state and logic.

pub mod consumer;
pub mod data;
pub mod producer;
pub mod router;
pub mod rtp_stream;
pub mod seq_map;
