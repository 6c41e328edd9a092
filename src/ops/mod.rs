//! Running ringsfu in production: operations configuration ([`config`]), the Prometheus
//! `/metrics` endpoint ([`metrics`]), Lua handler accounting ([`lua_stats`]), the JWT helper
//! for scripts ([`jwt`]), access to the admin routes, and drain mode.

pub mod config;
pub mod jwt;
pub mod limits;
pub mod logging;
pub mod lua_stats;
pub mod metrics;
pub mod state;

pub use state::{admin_allowed, Drain, OpsState};

use std::sync::Arc;

use ringsfu_plugins::HttpResponse;
use serde_json::json;

use crate::shared::Shared;

/// `POST /admin/drain`.
pub fn drain_over_http(shared: &Shared) -> HttpResponse {
    if shared.ops.drain.start() {
        log::warn!("drain mode on (POST /admin/drain): new rooms are refused");
    }
    status(shared)
}

/// `GET /admin/status`: `{draining, rooms, workers, uptimeSeconds}`.
pub fn status(shared: &Shared) -> HttpResponse {
    HttpResponse::json(
        200,
        json!({
            "draining": shared.ops.drain.is_on(),
            "rooms": shared.registry.len(),
            "workers": shared.workers.len(),
            "uptimeSeconds": shared.ops.started.elapsed().as_secs(),
        }),
    )
}

/// Closes every room on every worker (their peers with code 4000, their routers with every
/// transport), then waits until the registry is empty or `deadline`. Returns whether it
/// emptied in time.
pub async fn close_all_rooms(shared: &Arc<Shared>, deadline: tokio::time::Instant) -> bool {
    for w in &shared.workers {
        w.post(Box::new(|| {
            if let Some(host) = crate::lua_host::Host::current() {
                let rooms: Vec<_> = host.rooms.borrow().values().cloned().collect();
                for room in rooms {
                    crate::lua_host::room::close_room(&host, &room, "server shutting down");
                }
            }
        }));
    }
    loop {
        if shared.registry.is_empty() {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            log::warn!(
                "shutdown: {} room(s) still open at the deadline",
                shared.registry.len()
            );
            return false;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}
