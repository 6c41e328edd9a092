//! Consumers for SDP offerers (WHEP): the receiver's offer fixes the payload types and header
//! extension ids, so the consumer is negotiated in the router's numbering as usual and then
//! renumbered into the offer's (see `crate::sdp::remote_numbering`).

use std::time::Instant;

use uuid::Uuid;

use super::{ConsumeOptions, Engine, EngineError};
use crate::api::ConsumerInfo;
use crate::sdp::{caps_in_router_numbering, remote_numbering};

impl Engine {
    /// Like [`Engine::consume`], for a receiver that made the SDP offer: `opts.rtp_capabilities`
    /// are in the offerer's numbering (from `sdp::subscribe`), and the consumer sends with the
    /// offer's payload types and extension ids. `mid`, when given, replaces the transport's next
    /// mid (the offer's section mid, written into the MID extension).
    pub fn consume_for_offerer(
        &mut self,
        transport: &Uuid,
        mut opts: ConsumeOptions,
        mid: Option<String>,
        now: Instant,
    ) -> Result<ConsumerInfo, EngineError> {
        let tkey = self.transport_key(transport)?;
        let router = self.transports[tkey].router;
        let remote = opts.rtp_capabilities.clone();
        let router_caps = &self
            .routers
            .get(router)
            .ok_or_else(|| EngineError::Invalid("transport has no router".into()))?
            .rtp_capabilities;
        opts.rtp_capabilities = caps_in_router_numbering(&remote, router_caps);
        let mut data = self.consume(transport, opts, now)?;
        let id = Uuid::parse_str(&data.id)
            .ok()
            .ok_or_else(|| EngineError::Invalid("consume returned no id".into()))?;
        let Some(&ckey) = self.consumer_ids.get(&id) else {
            return Err(EngineError::Invalid("consumer vanished".into()));
        };
        let c = &mut self.consumers[ckey];
        let n = remote_numbering(&mut c.rtp_parameters, &remote);
        let pt = |v: u8| {
            n.payload_types
                .iter()
                .find(|(r, _)| *r == v)
                .map(|(_, o)| *o)
                .unwrap_or(v)
        };
        let ext = |v: u8| {
            n.extension_ids
                .iter()
                .find(|(r, _)| *r == v)
                .map(|(_, o)| *o)
                .unwrap_or(v)
        };
        for v in c.pt_map.iter_mut().filter(|v| **v != 255) {
            *v = pt(*v);
        }
        for v in c.ext_map.iter_mut().filter(|v| **v != 0) {
            *v = ext(*v);
        }
        if let Some((ssrc, rtx_pt)) = c.rtx {
            c.rtx = Some((ssrc, pt(rtx_pt)));
        }
        if let Some((id, value)) = c.mid.take() {
            let value = mid.clone().map(String::into_bytes).unwrap_or(value);
            c.mid = Some((ext(id), value));
        }
        if let Some(m) = mid {
            c.rtp_parameters.mid = Some(m);
        }
        data.rtp_parameters = c.rtp_parameters.clone();
        Ok(data)
    }
}
