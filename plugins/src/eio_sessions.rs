//! The live Engine.IO sessions of a server, by sid, and what their drivers are told
//! ([`Cmd`]). Owned by the server's [`crate::ctx::Ctx`]; driven by [`crate::engineio`].

use std::collections::HashMap;
use std::sync::Mutex;

use tokio::sync::{mpsc, oneshot};

/// Live Engine.IO sessions by sid.
#[derive(Debug, Default)]
pub(crate) struct Registry {
    map: Mutex<HashMap<String, mpsc::UnboundedSender<Cmd>>>,
}

impl Registry {
    pub(crate) fn get(&self, sid: &str) -> Option<mpsc::UnboundedSender<Cmd>> {
        self.map.lock().ok()?.get(sid).cloned()
    }
    pub(crate) fn insert(&self, sid: String, tx: mpsc::UnboundedSender<Cmd>) {
        if let Ok(mut m) = self.map.lock() {
            m.insert(sid, tx);
        }
    }
    pub(crate) fn remove(&self, sid: &str) {
        if let Ok(mut m) = self.map.lock() {
            m.remove(sid);
        }
    }
}

/// What requests and the WebSocket task tell a session's driver.
#[derive(Debug)]
pub(crate) enum Cmd {
    /// A polling GET waits for packets.
    Poll(oneshot::Sender<String>),
    /// Packets from a polling POST or a WebSocket frame.
    Packets(Vec<String>),
    /// The WebSocket finished the upgrade: send there from now on.
    Upgrade(mpsc::UnboundedSender<String>),
    /// A WebSocket passed the probe: answer the pending poll (and any new one) with a noop,
    /// so the client can pause polling and finish the upgrade.
    Probe,
    /// The WebSocket (the session's transport) ended.
    TransportClosed(String),
}
