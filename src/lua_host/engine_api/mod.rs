//! The engine as Lua sees it: routers, transports, producers, consumers, data producers and
//! consumers, direct transports and RTP observers as userdata whose methods call the worker's
//! engine synchronously (they never yield), and engine events delivered to callbacks registered
//! with `obj:on(event, fn)`, each run in its own coroutine.
//!
//! One userdata type per kind ([`LuaRouter`], [`LuaWebRtcTransport`], [`LuaPlainTransport`],
//! [`LuaProducer`], [`LuaConsumer`], [`LuaDirectTransport`], [`LuaDataProducer`],
//! [`LuaDataConsumer`], [`LuaAudioLevelObserver`], [`LuaActiveSpeakerObserver`]), each with only
//! its kind's methods, all built on one generic piece ([`object`]: id, closed flag, appData,
//! callbacks, the one [`Registry`]). The kinds live in [`router`], [`transport`], [`media`],
//! [`data`] and [`observer`]; engine events reach callbacks through [`events`].
//!
//! The worker's context is kept in a thread local, installed by the first task a media
//! worker runs for the signaling side; on a thread without an engine every call fails with a
//! clear error and rooms have no router.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Instant;

use mlua::{Lua, LuaSerdeExt, Table, Value};
use ringsfu_core::engine::{Engine, EngineError};
use ringsfu_core::rtp_parameters::RtpCodecCapability;
use ringsfu_core::worker::WorkerContext;
use serde_json::{json, Value as Json};
use uuid::Uuid;

use super::error::{engine_error, internal, invalid};
use super::Host;

pub mod data;
mod events;
pub mod media;
pub mod object;
pub mod observer;
pub mod router;
pub mod transport;

pub use object::{Handle, Kind, Obj, Registry, Tag};

/// A router's userdata.
pub type LuaRouter = Handle<router::Router>;
/// A WebRtcTransport's userdata.
pub type LuaWebRtcTransport = Handle<transport::WebRtcTransport>;
/// A PlainTransport's userdata.
pub type LuaPlainTransport = Handle<transport::PlainTransport>;
/// A producer's userdata.
pub type LuaProducer = Handle<media::Producer>;
/// A consumer's userdata.
pub type LuaConsumer = Handle<media::Consumer>;
/// A direct transport's userdata.
pub type LuaDirectTransport = Handle<data::DirectTransport>;
/// A data producer's userdata.
pub type LuaDataProducer = Handle<data::DataProducer>;
/// A data consumer's userdata.
pub type LuaDataConsumer = Handle<data::DataConsumer>;
/// An AudioLevelObserver's userdata.
pub type LuaAudioLevelObserver = Handle<observer::AudioLevelObserver>;
/// An ActiveSpeakerObserver's userdata.
pub type LuaActiveSpeakerObserver = Handle<observer::ActiveSpeakerObserver>;

thread_local! {
    static CTX: RefCell<Option<Rc<WorkerContext>>> = const { RefCell::new(None) };
}

/// Makes this worker's engine reachable from Lua (idempotent) and subscribes to its events.
pub fn install(ctx: &Rc<WorkerContext>) {
    let fresh = CTX.with(|c| {
        let mut c = c.borrow_mut();
        if c.is_some() {
            return false;
        }
        *c = Some(ctx.clone());
        true
    });
    if fresh {
        ctx.add_observer(Box::new(events::on_event));
    }
}

fn ctx() -> Option<Rc<WorkerContext>> {
    CTX.with(|c| c.borrow().clone())
}

/// This worker's context, when the thread is a media worker (for the `/metrics` scrape).
pub fn worker_context() -> Option<Rc<WorkerContext>> {
    ctx()
}

/// Runs `f` on this worker's engine, or fails when the thread has none.
fn engine<R>(f: impl FnOnce(&mut Engine) -> Result<R, EngineError>) -> mlua::Result<R> {
    let ctx = ctx().ok_or_else(|| internal("no media engine on this worker"))?;
    ctx.with_engine(f).map_err(engine_error)
}

/// The JSON of a typed engine result: the core returns structs (`ringsfu_core::api`), the Lua
/// host is where they become mediasoup's JSON.
pub(super) fn json_of<T: serde::Serialize>(v: &T) -> mlua::Result<Json> {
    serde_json::to_value(v).map_err(mlua::Error::external)
}

/// This thread's Lua host (every object method runs on one).
fn host() -> mlua::Result<Rc<Host>> {
    Host::current().ok_or_else(|| internal("no Lua host on this thread"))
}

/// Creates a router for a room on this thread's engine; None when there is no engine.
pub fn create_router(codecs: &[Json]) -> Option<Result<Uuid, String>> {
    let ctx = ctx()?;
    let parsed: Result<Vec<RtpCodecCapability>, String> =
        serde_path_to_error::deserialize(Json::Array(codecs.to_vec()))
            .map_err(|e| format!("router.mediaCodecs{}: {}", e.path(), e.inner()));
    Some(parsed.and_then(|codecs| {
        ctx.with_engine(|e| e.create_router(&codecs, Instant::now()))
            .map_err(|e| e.to_string())
    }))
}

/// Checks media codecs by creating (and closing) a router on a scratch engine-free path: only
/// the JSON shape is validated here; the engine validates the codecs themselves at room creation.
pub fn check_media_codecs(codecs: &[Json]) -> Result<(), String> {
    let parsed: Vec<RtpCodecCapability> =
        serde_path_to_error::deserialize(Json::Array(codecs.to_vec()))
            .map_err(|e| format!("{}: {}", e.path(), e.inner()))?;
    ringsfu_core::ortc::generate_router_rtp_capabilities(&parsed)
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// The engine's live objects and table sizes (None on a thread without an engine).
pub fn engine_counts() -> Option<ringsfu_core::engine::TableSizes> {
    let ctx = ctx()?;
    Some(ctx.with_engine(|e| e.table_sizes()))
}

/// Closes a room's router (cascading to everything in it).
pub fn close_router(host: &Host, router: Uuid) {
    if let Some(ctx) = ctx() {
        if let Err(e) = ctx.with_engine(|e| e.close_router(&router, Instant::now())) {
            log::debug!("closing router {router}: {e}");
        }
    }
    host.objects.forget(&router);
}

/// A router's RTP capabilities as JSON.
pub fn rtp_capabilities(router: Uuid) -> Option<Json> {
    let ctx = ctx()?;
    ctx.with_engine(|e| {
        e.router_rtp_capabilities(&router)
            .ok()
            .and_then(|c| serde_json::to_value(c).ok())
    })
}

/// The Lua value of a room's router.
pub fn router_value(lua: &Lua, id: Uuid, room: &str) -> mlua::Result<Value> {
    let host = host()?;
    if let Some(o) = host.objects.get(&id) {
        return LuaRouter::value(lua, &o);
    }
    let obj = Obj::new(Tag::Router, id, room, id, json!({ "id": id.to_string() }));
    // A closed room's router is not registered again (it would outlive the room).
    let live = engine(|e| e.router_rtp_capabilities(&id).map(|_| ())).is_ok();
    if !live {
        obj.closed.set(true);
        return LuaRouter::value(lua, &Rc::new(obj));
    }
    LuaRouter::register(lua, obj, None)
}

/// Forgets every object of a closed room (after its router closed); the direct data producers
/// and consumers, which belong to no engine transport, are closed in the engine here.
pub fn drop_room(host: &Host, room: &str) {
    data::close_direct(&host.objects.drop_room(room));
}

/// An options table, or a new empty one when the script passed none.
fn opts_or_empty(lua: &Lua, opts: Option<Table>) -> mlua::Result<Table> {
    match opts {
        Some(t) => Ok(t),
        None => lua.create_table(),
    }
}

/// Closes an object in the engine; one already gone (closed by a cascade) is not an error for
/// scripts.
fn close_in_engine(f: impl FnOnce(&mut Engine) -> Result<(), EngineError>) -> mlua::Result<()> {
    match engine(f) {
        Err(e) if super::error::classify(&e).code != 404 => Err(e),
        _ => Ok(()),
    }
}

fn parse_id(s: &str, what: &str) -> mlua::Result<Uuid> {
    Uuid::parse_str(s).map_err(|_| invalid(format!("{what} {s:?} is not a valid id")))
}

/// The id the engine gave an object it just created (from its creation JSON).
fn created_id(info: &Json) -> mlua::Result<Uuid> {
    info.get("id")
        .and_then(Json::as_str)
        .and_then(|s| Uuid::parse_str(s).ok())
        .ok_or_else(|| internal("engine returned no id"))
}

/// Deserializes a Lua value (through JSON, so shapes match mediasoup's) naming the field.
fn from_lua<T: serde::de::DeserializeOwned>(lua: &Lua, v: Value, what: &str) -> mlua::Result<T> {
    if v.is_nil() {
        return Err(invalid(format!("missing {what}")));
    }
    let json: Json = lua.from_value(v)?;
    serde_path_to_error::deserialize(json).map_err(|e| {
        let path = e.path().to_string();
        let path = if path == "." {
            String::new()
        } else {
            format!(".{path}")
        };
        invalid(format!("invalid {what}{path}: {}", e.inner()))
    })
}
