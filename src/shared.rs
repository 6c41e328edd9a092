//! What the signaling front ends share (the protoo and HTTP handlers, WHIP/WHEP, the operations
//! endpoints): the workers, the room registry, the Lua host settings, and the one way an HTTP
//! call reaches its room's worker.

use std::sync::Arc;

use ringsfu_plugins::HttpResponse;
use tokio::sync::oneshot;

use crate::executor::WorkerExec;
use crate::lua_host::{room, HostSettings};
use crate::ops::state::OpsState;
use crate::registry::Registry;
use crate::scripts::ScriptStore;

/// What the handlers share.
pub struct Shared {
    /// Worker threads, by index.
    pub workers: Vec<Arc<dyn WorkerExec>>,
    /// Room → worker.
    pub registry: Arc<Registry>,
    /// Settings of every worker's Lua host.
    pub host: Arc<HostSettings>,
    /// Room scripts (for reload).
    pub scripts: Arc<ScriptStore>,
    /// Whether POST /admin/reload is served (from loopback only).
    pub admin_reload: bool,
    /// Operations state: admin token, drain mode, counters (see [`crate::ops`]).
    pub ops: OpsState,
    /// Whether the call pages (`GET /calls/...`) are served.
    pub call_pages: bool,
    /// The TURN server's counters (`GET /turn/stats`, loopback only).
    pub turn_stats: Option<Arc<std::sync::Mutex<(ringsfu_core::turn::TurnStats, usize)>>>,
}

/// Runs an HTTP `call` on its room's worker (chosen, and the room registered, here; the room is
/// created there if needed) and awaits the script's answer. The registration is undone when the
/// worker cannot take the call.
pub(crate) async fn call_on_room_worker(
    shared: &Shared,
    call: room::http::HttpCall,
) -> HttpResponse {
    let room_id = call.room_id.clone();
    let index = shared.registry.acquire(&room_id);
    let Some(worker) = shared.workers.get(index) else {
        shared.registry.release(&room_id);
        return HttpResponse::text(500, "Error: no worker");
    };
    let (tx, rx) = oneshot::channel();
    let settings = shared.host.clone();
    if !worker.post(Box::new(move || {
        room::http::http_call(settings, index, call, tx)
    })) {
        shared.registry.release(&room_id);
        return HttpResponse::text(500, format!("Error: worker {index} is gone"));
    }
    rx.await
        .unwrap_or_else(|_| HttpResponse::text(500, "Error: the worker dropped the request"))
}
