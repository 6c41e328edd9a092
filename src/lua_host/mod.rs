//! The Lua host: one Lua state per worker thread, created on that thread the first time a room
//! lands there. Rooms live on one worker and their handlers run there, next to their media.
//!
//! Every handler invocation runs in its own coroutine ([`runner`]), with an instruction budget
//! and the state's memory cap; host calls that wait (a peer's answer, a sleep) yield it, and the
//! worker's packet loop never waits for Lua.

pub mod calls;
pub mod engine_api;
pub mod error;
mod globals;
pub mod json;
pub mod lua_ref;
mod options;
pub mod room;
pub mod runner;
mod sdp_api;

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Instant;

use mlua::{Function, HookTriggers, Lua, Table, Value as LuaValue, VmState};
use serde_json::{json, Value};

use crate::config::LuaLimits;
use crate::registry::Registry;
use crate::scripts::ScriptStore;

/// What every worker's host needs; shared by all workers.
#[derive(Debug)]
pub struct HostSettings {
    /// Lua limits.
    pub limits: LuaLimits,
    /// Room scripts.
    pub scripts: Arc<ScriptStore>,
    /// Room → worker registry.
    pub registry: Arc<Registry>,
    /// The router codecs every room's router is created with (mediasoup JSON shapes).
    pub media_codecs: Vec<Value>,
    /// The script serving `/rooms/:roomId/...` HTTP requests (a path known to `scripts`).
    pub http_script: Option<String>,
    /// Whether such a request creates a room that does not exist (else 404).
    pub create_rooms_over_http: bool,
    /// Exposed to scripts as `ringsfu.config`.
    pub script_config: Value,
    /// Server limits (`limits` in the configuration); a room script's `limits` table overrides
    /// them for its rooms (see [`crate::ops::limits`]).
    pub limits_config: crate::ops::config::LimitsConfig,
    /// What `ringsfu.turn_credentials` mints from (None: no TURN server).
    pub turn: Option<TurnMint>,
}

/// TURN REST API credential minting (`ringsfu.turn_credentials`).
#[derive(Debug, Clone)]
pub struct TurnMint {
    /// Shared secret.
    pub secret: String,
    /// Credential lifetime, seconds.
    pub ttl: u64,
    /// TURN URLs handed out with the credentials.
    pub urls: Vec<String>,
}

/// One worker's Lua state and rooms. Lives in a thread local of the worker thread.
pub struct Host {
    /// The Lua state.
    pub(crate) lua: Lua,
    /// Shared settings.
    pub(crate) settings: Arc<HostSettings>,
    /// Worker index.
    pub(crate) worker: usize,
    /// Rooms of this worker by id.
    pub(crate) rooms: RefCell<HashMap<String, Rc<room::Room>>>,
    /// The engine objects scripts hold (with their callbacks), by id.
    pub(crate) objects: engine_api::Registry,
    /// Start of the host, for `ringsfu.now()`.
    pub(crate) started: Instant,
    /// Compiled script chunks by script name, with the source they were compiled from: a
    /// room runs the compiled chunk instead of parsing its script again (one entry per script).
    chunks: RefCell<HashMap<String, (Arc<str>, Function)>>,
}

thread_local! {
    static HOST: RefCell<Option<Rc<Host>>> = const { RefCell::new(None) };
}

/// The debug dump of this worker thread (run on it): its Lua host's state ([`Host::debug_dump`],
/// `null` before the first room) and its engine's live objects and tables (`null` without an
/// engine).
pub fn worker_debug(index: usize, collect: bool) -> Value {
    json!({
        "worker": index,
        "lua": Host::current().map(|h| h.debug_dump(collect)),
        "engine": engine_api::engine_counts(),
    })
}

/// Why a Lua state could not be made.
#[derive(Debug, thiserror::Error)]
#[error("cannot create the Lua state: {0}")]
pub struct HostError(#[from] mlua::Error);

impl Host {
    /// This thread's host, created on first use.
    pub fn get_or_init(settings: &Arc<HostSettings>, worker: usize) -> Result<Rc<Host>, HostError> {
        if let Some(h) = Host::current() {
            return Ok(h);
        }
        let lua = Lua::new();
        lua.set_memory_limit(settings.limits.memory_limit_mb as usize * 1024 * 1024)?;
        let host = Rc::new(Host {
            lua,
            settings: settings.clone(),
            worker,
            rooms: RefCell::new(HashMap::new()),
            objects: engine_api::Registry::default(),
            started: Instant::now(),
            chunks: RefCell::new(HashMap::new()),
        });
        globals::install(&host)?;
        HOST.with(|h| *h.borrow_mut() = Some(host.clone()));
        log::debug!("worker {worker}: Lua state created");
        Ok(host)
    }

    /// This thread's host, if any.
    pub fn current() -> Option<Rc<Host>> {
        HOST.with(|h| h.borrow().clone())
    }

    /// Number of rooms on this worker.
    pub fn room_count(&self) -> usize {
        self.rooms.borrow().len()
    }

    /// The compiled chunk of script `name` for `source`, compiled on first use and again only
    /// when a reload changed the source.
    pub(crate) fn chunk(&self, name: &str, source: &Arc<str>) -> mlua::Result<Function> {
        if let Some((src, f)) = self.chunks.borrow().get(name) {
            if Arc::ptr_eq(src, source) || **src == **source {
                return Ok(f.clone());
            }
        }
        let f = self
            .lua
            .load(&**source)
            .set_name(format!("@{name}"))
            .into_function()?;
        self.chunks
            .borrow_mut()
            .insert(name.to_owned(), (source.clone(), f.clone()));
        Ok(f)
    }

    /// Runs a script chunk (with the instruction budget; it may not wait) and returns its table.
    /// The chunk is compiled once per worker and script version (see [`Host::chunk`]); each call
    /// runs it afresh, so every room gets its own hook table and module-level locals.
    pub(crate) fn eval_module(&self, name: &str, source: &Arc<str>) -> mlua::Result<Table> {
        let f = self.chunk(name, source)?;
        let thread = self.lua.create_thread(f)?;
        let limit = self.budget();
        let used = Rc::new(Cell::new(0u64));
        thread.set_hook(
            HookTriggers::new().every_nth_instruction(1000),
            move |_, _| {
                used.set(used.get() + 1000);
                if used.get() > limit {
                    return Err(mlua::Error::RuntimeError(format!(
                        "instruction limit ({limit}) exceeded while loading"
                    )));
                }
                Ok(VmState::Continue)
            },
        )?;
        let v: LuaValue = thread.resume(())?;
        if thread.status() == mlua::thread::ThreadStatus::Resumable {
            return Err(mlua::Error::RuntimeError(
                "a room script may not wait while it loads".into(),
            ));
        }
        match v {
            LuaValue::Table(t) => Ok(t),
            other => Err(mlua::Error::RuntimeError(format!(
                "a room script must return a table of hooks, it returned a {}",
                other.type_name()
            ))),
        }
    }

    /// The instruction budget of one handler invocation.
    pub(crate) fn budget(&self) -> u64 {
        self.settings.limits.instruction_limit
    }

    /// What this worker's Lua state holds (`GET /admin/debug`): memory, rooms, peers, the
    /// engine and data objects scripts can reach, and the userdata Rust keeps alive for them.
    /// With `collect`, a full garbage collection runs first so memory is what is reachable.
    pub fn debug_dump(&self, collect: bool) -> Value {
        if collect {
            // Twice: the first pass may only run finalizers of what it found dead.
            let _ = self.lua.gc_collect();
            let _ = self.lua.gc_collect();
        }
        let rooms = self.rooms.borrow();
        let peers: usize = rooms.values().map(|r| r.peer_count()).sum();
        let mut objects = serde_json::Map::new();
        for (kind, n) in self.objects.counts() {
            objects.insert(kind.to_owned(), json!(n));
        }
        json!({
            "luaMemoryBytes": self.lua.used_memory(),
            "luaMemoryLimitBytes": self.settings.limits.memory_limit_mb * 1024 * 1024,
            "rooms": rooms.len(),
            "peers": peers,
            "luaObjects": objects,
            "luaHeldUserdata": lua_ref::live(),
            "compiledChunks": self.chunks.borrow().len(),
        })
    }
}
