//! What the operations features keep on the signaling side: admin access, drain mode, the
//! rooms limit ([`OpsState`]). Below [`crate::shared`], which holds it.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};

/// Whether a client may use `/admin/*` and `/metrics`: loopback clients always; others only
/// with `Authorization: Bearer <token>` matching the configured `security.adminToken`
/// (compared in constant time), and never when no token is configured.
pub fn admin_allowed(remote: SocketAddr, authorization: Option<&str>, token: Option<&str>) -> bool {
    if remote.ip().is_loopback() {
        return true;
    }
    let (Some(token), Some(auth)) = (token, authorization) else {
        return false;
    };
    let Some(given) = auth
        .strip_prefix("Bearer ")
        .or_else(|| auth.strip_prefix("bearer "))
    else {
        return false;
    };
    constant_time_eq(given.trim().as_bytes(), token.as_bytes())
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Drain mode: set by `POST /admin/drain`, SIGUSR1 or SIGTERM; new rooms are refused (503)
/// while existing rooms go on.
#[derive(Debug, Default)]
pub struct Drain {
    on: AtomicBool,
}

impl Drain {
    /// Turns drain mode on; returns whether it was off.
    pub fn start(&self) -> bool {
        !self.on.swap(true, Ordering::SeqCst)
    }

    /// Whether drain mode is on.
    pub fn is_on(&self) -> bool {
        self.on.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admin_is_loopback_only_unless_a_token_is_sent() {
        let lo: SocketAddr = "127.0.0.1:5".parse().unwrap();
        let far: SocketAddr = "203.0.113.9:5".parse().unwrap();
        let t = Some("0123456789abcdef");
        assert!(admin_allowed(lo, None, None));
        assert!(!admin_allowed(far, None, None));
        assert!(!admin_allowed(far, Some("Bearer 0123456789abcdef"), None));
        assert!(!admin_allowed(far, None, t));
        assert!(!admin_allowed(far, Some("Bearer 0123456789abcdeX"), t));
        assert!(!admin_allowed(far, Some("0123456789abcdef"), t));
        assert!(admin_allowed(far, Some("Bearer 0123456789abcdef"), t));
    }
}

use std::sync::atomic::AtomicU64;

use ringsfu_plugins::{HttpRequest, Reject};

use crate::registry::Registry;

/// What the operations features share on the signaling side.
#[derive(Debug)]
pub struct OpsState {
    /// `security.adminToken`.
    pub admin_token: Option<String>,
    /// Drain mode.
    pub drain: Drain,
    /// New rooms refused because of drain mode.
    pub refused_draining: AtomicU64,
    /// When the server started (for `/admin/status`).
    pub started: std::time::Instant,
    /// `limits.rooms` (0: unlimited).
    pub max_rooms: u32,
}

impl OpsState {
    /// The state for `config`.
    pub fn new(config: &crate::Config) -> OpsState {
        OpsState {
            admin_token: config.security.admin_token.clone(),
            drain: Drain::default(),
            refused_draining: AtomicU64::new(0),
            started: std::time::Instant::now(),
            max_rooms: config.limits.rooms,
        }
    }

    /// Whether `req` may use `/admin/*` and `/metrics` (see [`admin_allowed`]).
    pub fn admin_allowed(&self, req: &HttpRequest) -> bool {
        admin_allowed(
            req.remote_addr,
            req.authorization.as_deref(),
            self.admin_token.as_deref(),
        )
    }

    /// Whether a connection or HTTP request for `room_id` may go on: a room that does not
    /// exist yet is refused with 503 while draining.
    pub fn admit_room(&self, registry: &Registry, room_id: &str) -> Result<(), Reject> {
        let new_room = registry.worker_of(room_id).is_none();
        if new_room && self.max_rooms != 0 && registry.len() >= self.max_rooms as usize {
            ringsfu_plugins::limits::note("rooms", &format!("room {room_id} refused"));
            return Err(Reject::new(
                429,
                format!("limit rooms ({}) reached: no new rooms", self.max_rooms),
            ));
        }
        if self.drain.is_on() && new_room {
            self.refused_draining.fetch_add(1, Ordering::Relaxed);
            return Err(Reject::new(
                503,
                "server is draining: no new rooms (existing rooms go on)",
            ));
        }
        Ok(())
    }
}
