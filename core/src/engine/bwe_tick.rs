//! Congestion reactions of the send side that act on consumers (the allocation itself is in
//! `feedback.rs`'s `select_layers`).

use super::*;

impl Engine {
    /// Switches down on a congested link without waiting on the old layer: a simulcast consumer
    /// whose target is below the layer it forwards, on a transport whose estimate fell recently
    /// ([`SendSideBwe::congested`](crate::bwe::send::SendSideBwe::congested)), stops forwarding
    /// the old layer now instead of at the target's keyframe. On a link that is already
    /// overflowing, the old layer's packets would keep the bottleneck queue full, so the target's
    /// keyframe would queue behind them or be dropped (seen as 2–4 s decode stalls with a
    /// 500 kbit/s tbf); drained, the keyframe arrives within about one queue delay. What the
    /// receiver loses is only the old layer's tail, which it could not decode in time anyway.
    /// Without congestion (preferred layers, a layer that went inactive) the old layer keeps
    /// flowing until the switch, leaving no gap.
    pub(super) fn drain_congested(&mut self, now: Instant) {
        for tkey in self.transports.slots() {
            let Some(t) = self.transports.get(tkey) else {
                continue;
            };
            if !t
                .bwe
                .send_side()
                .is_some_and(|s| s.has_feedback() && s.congested(now))
            {
                continue;
            }
            for i in 0..t.consumers.len() {
                let ckey = self.transports[tkey].consumers[i];
                let c = &mut self.consumers[ckey];
                if c.kind != MediaKind::Video || !c.is_active() {
                    continue;
                }
                if c.current_layer.is_some_and(|l| l > c.target_layer) {
                    // Nothing of the old layer is forwarded (nor retransmitted) any more; the
                    // next keyframe of the target layer resumes the stream, continuous in
                    // sequence numbers and timestamps, and emits `layerschange`.
                    c.current_layer = None;
                    let (pkey, target) = (c.producer, c.target_layer);
                    self.transports[tkey].bwe.congestion_drains += 1;
                    self.request_keyframe(pkey, target, now);
                }
            }
        }
    }
}
