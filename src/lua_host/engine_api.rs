//! The engine as Lua sees it: routers, transports, producers and consumers as userdata whose
//! methods call the worker's engine synchronously (they never yield), and engine events
//! delivered to callbacks registered with `obj:on(event, fn)`, each run in its own coroutine.
//!
//! The worker's context is kept in a thread local, installed by the first task a media
//! worker runs for the signaling side; on a thread without an engine every call fails with a
//! clear error and rooms have no router.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use std::time::Duration;

use mlua::{
    AnyUserData, Function, Lua, LuaSerdeExt, Table, UserData, UserDataFields, UserDataMethods,
    Value,
};
use ringsfu_core::api::{DtlsParameters, PlainConnectParams};
use ringsfu_core::engine::{
    ConsumeOptions, Engine, EngineError, EngineEvent, ProduceOptions, WebRtcTransportOptions,
};
use ringsfu_core::rtp_parameters::{RtpCapabilities, RtpCodecCapability};
use ringsfu_core::worker::WorkerContext;
use serde_json::{json, Value as Json};
use uuid::Uuid;

use super::error::{engine_error, internal, invalid};
use super::lua_ref::{self, LuaRef};
use super::options::{parse, ConsumeOpts, PlainTransportOpts, ProduceOpts, WebRtcTransportOpts};
use super::runner;
use super::Host;

#[path = "data_api.rs"]
pub mod data_api;
#[path = "observer_api.rs"]
pub mod observer_api;

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
        ctx.add_observer(Box::new(on_event));
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

/// What kind of engine object a userdata is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ObjKind {
    /// A router.
    Router,
    /// A WebRtcTransport or PlainTransport.
    Transport,
    /// A producer.
    Producer,
    /// A consumer.
    Consumer,
}

impl ObjKind {
    fn name(self) -> &'static str {
        match self {
            ObjKind::Router => "router",
            ObjKind::Transport => "transport",
            ObjKind::Producer => "producer",
            ObjKind::Consumer => "consumer",
        }
    }

    /// Events scripts may subscribe to.
    fn events(self) -> &'static [&'static str] {
        match self {
            ObjKind::Router => &[],
            ObjKind::Transport => &[
                "icestatechange",
                "iceselectedtuplechange",
                "dtlsstatechange",
                "sctpstatechange",
                "tuple",
                "bwe",
                "close",
            ],
            ObjKind::Producer => &["transportclose", "score"],
            ObjKind::Consumer => &[
                "producerclose",
                "transportclose",
                "producerpause",
                "producerresume",
                "layerschange",
                "score",
            ],
        }
    }
}

/// One engine object known to Lua.
pub struct Obj {
    id: Uuid,
    kind: ObjKind,
    room: String,
    /// The engine's JSON description at creation (iceParameters, rtpParameters, ...).
    info: Json,
    closed: Cell<bool>,
    paused: Cell<bool>,
    producer_paused: Cell<bool>,
    /// The object's userdata (with its appData and callbacks) while it is live.
    lua: LuaRef,
    /// For routers and transports: the router id they belong to.
    router: Option<Uuid>,
}

impl Obj {
    /// The object as a Lua value: its userdata while live; once closed, a detached one
    /// (closed, empty appData, no callbacks).
    pub fn to_lua(self: &Rc<Obj>, lua: &Lua) -> mlua::Result<Value> {
        match self.lua.get() {
            Some(ud) => Ok(Value::UserData(ud)),
            None => lua
                .create_userdata(LuaObj(self.clone()))
                .map(Value::UserData),
        }
    }
}

/// The live engine objects scripts hold, by id, with their event callbacks. An object leaves
/// it when it closes (by a script, by an engine event, or with its room), and with it Rust's
/// hold on its userdata (see [`lua_ref`]).
#[derive(Default)]
pub struct Callbacks {
    objs: RefCell<HashMap<Uuid, Rc<Obj>>>,
}

impl Callbacks {
    /// Forgets every object of a room (it closed).
    pub fn drop_room(&self, room: &str) {
        data_api::drop_room(room);
        observer_api::drop_room(room);
        let gone: Vec<Rc<Obj>> = {
            let mut objs = self.objs.borrow_mut();
            let ids: Vec<Uuid> = objs
                .values()
                .filter(|o| o.room == room)
                .map(|o| o.id)
                .collect();
            ids.iter().filter_map(|id| objs.remove(id)).collect()
        };
        // Released outside the borrow: dropping a userdata may run Lua.
        for o in gone {
            o.closed.set(true);
            o.lua.release();
        }
    }

    /// Live engine objects by kind (`router`, `transport`, `producer`, `consumer`).
    pub fn counts(&self) -> [(&'static str, usize); 4] {
        let mut out = [
            (ObjKind::Router.name(), 0),
            (ObjKind::Transport.name(), 0),
            (ObjKind::Producer.name(), 0),
            (ObjKind::Consumer.name(), 0),
        ];
        for o in self.objs.borrow().values() {
            let i = match o.kind {
                ObjKind::Router => 0,
                ObjKind::Transport => 1,
                ObjKind::Producer => 2,
                ObjKind::Consumer => 3,
            };
            out[i].1 += 1;
        }
        out
    }

    fn insert(&self, obj: Rc<Obj>) {
        self.objs.borrow_mut().insert(obj.id, obj);
    }

    fn get(&self, id: &Uuid) -> Option<Rc<Obj>> {
        self.objs.borrow().get(id).cloned()
    }

    fn remove(&self, id: &Uuid) -> Option<Rc<Obj>> {
        let o = self.objs.borrow_mut().remove(id);
        if let Some(o) = &o {
            o.closed.set(true);
            o.lua.release();
        }
        o
    }
}

/// A userdata wrapping an engine object.
#[derive(Clone)]
pub struct LuaObj(pub Rc<Obj>);

/// Creates a router for a room on this thread's engine; None when there is no engine.
pub fn create_router(codecs: &[Json]) -> Option<Result<Uuid, String>> {
    let ctx = ctx()?;
    let parsed: Result<Vec<RtpCodecCapability>, String> =
        serde_path_to_error::deserialize(Json::Array(codecs.to_vec()))
            .map_err(|e| format!("router.mediaCodecs{}: {}", e.path(), e.inner()));
    Some(parsed.and_then(|codecs| {
        ctx.with_engine(|e| e.create_router(&codecs))
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
        if let Err(e) = ctx.with_engine(|e| e.close_router(&router)) {
            log::debug!("closing router {router}: {e}");
        }
    }
    host.callbacks.remove(&router);
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
    let host = Host::current().ok_or_else(|| internal("no Lua host on this thread"))?;
    if let Some(o) = host.callbacks.get(&id) {
        return o.to_lua(lua);
    }
    let obj = Rc::new(Obj {
        id,
        kind: ObjKind::Router,
        room: room.to_owned(),
        info: json!({ "id": id.to_string() }),
        closed: Cell::new(false),
        paused: Cell::new(false),
        producer_paused: Cell::new(false),
        lua: LuaRef::default(),
        router: Some(id),
    });
    // A closed room's router is not registered again (it would outlive the room).
    let live = engine(|e| e.router_rtp_capabilities(&id).map(|_| ())).is_ok();
    if !live {
        obj.closed.set(true);
        return obj.to_lua(lua);
    }
    let ud = lua.create_userdata(LuaObj(obj.clone()))?;
    obj.lua.hold(&ud, lua.create_table()?)?;
    host.callbacks.insert(obj);
    Ok(Value::UserData(ud))
}

/// Field names read from the creation JSON.
const INFO_FIELDS: &[&str] = &[
    "kind",
    "type",
    "producerId",
    "rtpParameters",
    "iceParameters",
    "iceCandidates",
    "dtlsParameters",
    "sctpParameters",
    "tuple",
    "rtcpTuple",
    "srtpParameters",
];

impl UserData for LuaObj {
    fn add_fields<F: UserDataFields<Self>>(fields: &mut F) {
        fields.add_field_method_get("id", |_, this| Ok(this.0.id.to_string()));
        fields.add_field_function_get("appData", |lua, ud| lua_ref::data_of(lua, &ud));
        fields.add_field_method_get("closed", |_, this| Ok(this.0.closed.get()));
        fields.add_field_method_get("paused", |_, this| Ok(this.0.paused.get()));
        fields.add_field_method_get("producerPaused", |_, this| Ok(this.0.producer_paused.get()));
        fields.add_field_method_get("objectType", |_, this| Ok(this.0.kind.name()));
        for name in INFO_FIELDS {
            fields.add_field_method_get(*name, move |lua, this| match this.0.info.get(*name) {
                Some(v) => lua.to_value(v),
                None => Ok(Value::Nil),
            });
        }
    }

    fn add_methods<M: UserDataMethods<Self>>(methods: &mut M) {
        methods.add_meta_method(mlua::MetaMethod::ToString, |_, this, ()| {
            Ok(format!("{} {}", this.0.kind.name(), this.0.id))
        });
        methods.add_meta_method(mlua::MetaMethod::Eq, |_, this, other: mlua::AnyUserData| {
            Ok(other.borrow::<LuaObj>().is_ok_and(|o| o.0.id == this.0.id))
        });

        // ---- router
        methods.add_method("rtpCapabilities", |lua, this, ()| {
            this.expect(ObjKind::Router, "rtpCapabilities")?;
            let id = this.0.id;
            let caps = engine(|e| {
                e.router_rtp_capabilities(&id)
                    .map(|c| serde_json::to_value(c).unwrap_or(Json::Null))
            })?;
            lua.to_value(&caps)
        });
        methods.add_method(
            "canConsume",
            |lua, this, (producer, caps): (String, Value)| {
                this.expect(ObjKind::Router, "canConsume")?;
                let producer = parse_id(&producer, "producerId")?;
                let caps: RtpCapabilities = from_lua(lua, caps, "rtpCapabilities")?;
                match engine(|e| e.can_consume(&producer, &caps)) {
                    Ok(b) => Ok(b),
                    Err(_) => Ok(false),
                }
            },
        );
        methods.add_method("createWebRtcTransport", |lua, this, opts: Option<Table>| {
            this.expect(ObjKind::Router, "createWebRtcTransport")?;
            let opts = match opts {
                Some(t) => t,
                None => lua.create_table()?,
            };
            let o: WebRtcTransportOpts = parse(lua, Some(&opts), "createWebRtcTransport")?;
            let consent = o.ice_consent_timeout.unwrap_or(30.0);
            if !(0.0..=3600.0).contains(&consent) {
                return Err(invalid(format!("iceConsentTimeout {consent} out of range")));
            }
            let sctp = o
                .num_sctp_streams
                .map(|n| (n.os.unwrap_or(1024), n.mis.unwrap_or(1024)));
            let options = WebRtcTransportOptions {
                enable_udp: o.enable_udp.unwrap_or(true),
                enable_tcp: o.enable_tcp.unwrap_or(true),
                prefer_udp: o.prefer_udp.unwrap_or(false),
                ice_consent_timeout: Duration::from_secs_f64(consent),
                sctp,
                initial_available_outgoing_bitrate: match o.initial_available_outgoing_bitrate {
                    None => 0,
                    Some(b) if (0..=1_000_000_000).contains(&b) => b as u64,
                    Some(b) => {
                        return Err(invalid(format!(
                            "initialAvailableOutgoingBitrate {b} out of range"
                        )))
                    }
                },
            };
            let router = this.0.id;
            let info = json_of(&engine(|e| e.create_webrtc_transport(&router, options))?)?;
            new_obj(lua, &this.0, ObjKind::Transport, info, opts.get("appData")?)
        });
        methods.add_method("createPlainTransport", |lua, this, opts: Option<Table>| {
            this.expect(ObjKind::Router, "createPlainTransport")?;
            let opts = match opts {
                Some(t) => t,
                None => lua.create_table()?,
            };
            let ctx = ctx().ok_or_else(|| internal("no media engine on this worker"))?;
            let o: PlainTransportOpts = parse(lua, Some(&opts), "createPlainTransport")?;
            let rtcp_mux = o.rtcp_mux.unwrap_or(true);
            let comedia = o.comedia.unwrap_or(false);
            let enable_srtp = o.enable_srtp.unwrap_or(false);
            let suite = o.srtp_crypto_suite;
            let router = this.0.id;
            // Fail before binding ports where we can (a closed router).
            engine(|e| e.router_rtp_capabilities(&router).map(|_| ()))?;
            let socket = ctx.bind_rtc_port().map_err(|e| internal(e.to_string()))?;
            let rtcp = if rtcp_mux {
                None
            } else {
                match ctx.bind_rtc_port() {
                    Ok(s) => Some(s),
                    Err(e) => {
                        release_ports(&ctx, socket, None);
                        return Err(internal(e.to_string()));
                    }
                }
            };
            let created = ctx.with_engine(|e| {
                e.create_plain_transport(
                    &router,
                    socket,
                    rtcp,
                    comedia,
                    enable_srtp,
                    suite.as_deref(),
                )
            });
            let info = match created {
                Ok(info) => json_of(&info)?,
                Err(e) => {
                    release_ports(&ctx, socket, rtcp);
                    return Err(engine_error(e));
                }
            };
            new_obj(lua, &this.0, ObjKind::Transport, info, opts.get("appData")?)
        });

        // ---- transport
        methods.add_method("connect", |lua, this, params: Table| {
            this.expect(ObjKind::Transport, "connect")?;
            let id = this.0.id;
            if this.0.info.get("iceParameters").is_some() {
                let dtls: DtlsParameters =
                    from_lua(lua, params.get("dtlsParameters")?, "dtlsParameters")?;
                engine(|e| e.connect_webrtc_transport(&id, &dtls))?;
                Ok(Value::Nil)
            } else {
                let p: PlainConnectParams = from_lua(lua, Value::Table(params), "params")?;
                let out = engine(|e| e.connect_plain_transport(&id, &p))?;
                lua.to_value(&out)
            }
        });
        // transport:setMaxOutgoingBitrate(bps): caps the send-side estimate the layers of this
        // transport's consumers are fitted under (0 removes it; below 30000 raises).
        methods.add_method("setMaxOutgoingBitrate", |_, this, bps: i64| {
            this.expect(ObjKind::Transport, "setMaxOutgoingBitrate")?;
            if bps < 0 {
                return Err(invalid(format!(
                    "setMaxOutgoingBitrate: negative bitrate {bps}"
                )));
            }
            let id = this.0.id;
            engine(|e| e.set_max_outgoing_bitrate(&id, bps as u64))
        });
        // transport:setMaxIncomingBitrate(bps): REMB cap announced to the remote (0 removes it).
        methods.add_method("setMaxIncomingBitrate", |_, this, bps: i64| {
            this.expect(ObjKind::Transport, "setMaxIncomingBitrate")?;
            let bps = u64::try_from(bps).map_err(|_| invalid(format!("wrong bitrate {bps}")))?;
            let id = this.0.id;
            engine(|e| e.set_max_incoming_bitrate(&id, bps))
        });
        methods.add_method("restartIce", |lua, this, ()| {
            this.expect(ObjKind::Transport, "restartIce")?;
            let id = this.0.id;
            let ice = engine(|e| e.restart_ice(&id))?;
            lua.to_value(&ice)
        });
        methods.add_method("produce", |lua, this, opts: Table| {
            this.expect(ObjKind::Transport, "produce")?;
            let o: ProduceOpts = parse(lua, Some(&opts), "produce")?;
            let kind = o.kind.ok_or_else(|| invalid("missing kind"))?;
            let rtp_parameters = o
                .rtp_parameters
                .ok_or_else(|| invalid("missing rtpParameters"))?;
            let paused = o.paused.unwrap_or(false);
            let id = this.0.id;
            let info = engine(|e| {
                e.produce(
                    &id,
                    ProduceOptions {
                        kind,
                        rtp_parameters,
                        paused,
                    },
                )
            })?;
            let info = json_of(&info)?;
            let v = new_obj(lua, &this.0, ObjKind::Producer, info, opts.get("appData")?)?;
            if let Value::UserData(u) = &v {
                u.borrow::<LuaObj>()?.0.paused.set(paused);
            }
            Ok(v)
        });
        methods.add_method("consume", |lua, this, opts: Table| {
            this.expect(ObjKind::Transport, "consume")?;
            let o: ConsumeOpts = parse(lua, Some(&opts), "consume")?;
            let producer_id = o.producer_id.ok_or_else(|| invalid("missing producerId"))?;
            let producer_id = parse_id(&producer_id, "producerId")?;
            let rtp_capabilities = o
                .rtp_capabilities
                .ok_or_else(|| invalid("missing rtpCapabilities"))?;
            let paused = o.paused.unwrap_or(false);
            let enable_rtx = o.enable_rtx.unwrap_or(false);
            // `offerer = true`: rtpCapabilities come from an SDP offer (WHEP, ringsfu.sdp) and
            // the consumer uses that offer's payload types, extension ids and `mid`.
            let offerer = o.offerer.unwrap_or(false);
            let mid = o.mid;
            let id = this.0.id;
            let info = engine(|e| {
                let o = ConsumeOptions {
                    producer_id,
                    rtp_capabilities,
                    paused,
                    enable_rtx,
                };
                if offerer {
                    e.consume_for_offerer(&id, o, mid)
                } else {
                    e.consume(&id, o)
                }
            })?;
            let producer_paused = info.producer_paused;
            let info = json_of(&info)?;
            let v = new_obj(lua, &this.0, ObjKind::Consumer, info, opts.get("appData")?)?;
            if let Value::UserData(u) = &v {
                let o = u.borrow::<LuaObj>()?;
                o.0.paused.set(paused);
                o.0.producer_paused.set(producer_paused);
            }
            Ok(v)
        });
        methods.add_method("dump", |lua, this, ()| {
            let id = this.0.id;
            match this.0.kind {
                ObjKind::Transport => lua.to_value(&engine(|e| e.transport_dump(&id))?),
                ObjKind::Consumer => lua.to_value(&engine(|e| e.consumer_dump(&id))?),
                k => Err(invalid(format!("dump() of a {} is not built", k.name()))),
            }
        });

        // ---- shared
        methods.add_method("getStats", |lua, this, ()| {
            let id = this.0.id;
            match this.0.kind {
                ObjKind::Transport => lua.to_value(&engine(|e| e.transport_stats(&id))?),
                ObjKind::Producer => lua.to_value(&engine(|e| e.producer_stats(&id))?),
                ObjKind::Consumer => lua.to_value(&engine(|e| e.consumer_stats(&id))?),
                ObjKind::Router => Err(invalid("a router has no stats")),
            }
        });
        methods.add_method("close", |_, this, ()| {
            if this.0.closed.get() {
                return Ok(());
            }
            let id = this.0.id;
            let r = match this.0.kind {
                ObjKind::Router => engine(|e| e.close_router(&id)),
                ObjKind::Transport => engine(|e| e.close_transport(&id)),
                ObjKind::Producer => engine(|e| e.close_producer(&id)),
                ObjKind::Consumer => engine(|e| e.close_consumer(&id)),
            };
            if let Some(host) = Host::current() {
                host.callbacks.remove(&id);
            }
            this.0.closed.set(true);
            // Closing something already gone (cascade) is not an error for scripts.
            match r {
                Err(e) if super::error::classify(&e).code != 404 => Err(e),
                _ => Ok(()),
            }
        });
        methods.add_method("pause", |_, this, ()| {
            let id = this.0.id;
            match this.0.kind {
                ObjKind::Producer => engine(|e| e.pause_producer(&id))?,
                ObjKind::Consumer => engine(|e| e.pause_consumer(&id))?,
                k => return Err(invalid(format!("a {} cannot be paused", k.name()))),
            }
            this.0.paused.set(true);
            Ok(())
        });
        methods.add_method("resume", |_, this, ()| {
            let id = this.0.id;
            match this.0.kind {
                ObjKind::Producer => engine(|e| e.resume_producer(&id))?,
                ObjKind::Consumer => engine(|e| e.resume_consumer(&id))?,
                k => return Err(invalid(format!("a {} cannot be resumed", k.name()))),
            }
            this.0.paused.set(false);
            Ok(())
        });

        // ---- consumer
        methods.add_method("setPreferredLayers", |_, this, layers: Table| {
            this.expect(ObjKind::Consumer, "setPreferredLayers")?;
            let spatial: i64 = layers
                .get::<Option<i64>>("spatialLayer")?
                .ok_or_else(|| invalid("missing spatialLayer"))?;
            let spatial = usize::try_from(spatial)
                .map_err(|_| invalid(format!("wrong spatialLayer {spatial}")))?;
            let temporal = match layers.get::<Option<i64>>("temporalLayer")? {
                None => None,
                Some(t) => Some(
                    u8::try_from(t)
                        .ok()
                        .filter(|t| *t <= 3)
                        .ok_or_else(|| invalid(format!("wrong temporalLayer {t}")))?,
                ),
            };
            let id = this.0.id;
            engine(|e| e.set_consumer_preferred_layers(&id, spatial, temporal))
        });
        methods.add_method("setPriority", |_, this, priority: i64| {
            this.expect(ObjKind::Consumer, "setPriority")?;
            let p = u8::try_from(priority)
                .ok()
                .filter(|p| *p > 0)
                .ok_or_else(|| invalid("wrong priority"))?;
            let id = this.0.id;
            engine(|e| e.set_consumer_priority(&id, p))
        });
        methods.add_method("requestKeyFrame", |_, this, ()| {
            this.expect(ObjKind::Consumer, "requestKeyFrame")?;
            let id = this.0.id;
            engine(|e| e.request_consumer_key_frame(&id))
        });

        // ---- data channels: router:createDirectTransport, transport:produceData/consumeData
        data_api::add_methods(methods);
        // ---- RTP observers: router:createAudioLevelObserver / createActiveSpeakerObserver
        observer_api::add_methods(methods);

        // ---- events
        methods.add_function(
            "on",
            |lua, (ud, event, f): (AnyUserData, String, Function)| {
                let this = ud.borrow::<LuaObj>()?;
                let allowed = this.0.kind.events();
                if !allowed.contains(&event.as_str()) {
                    let hint = match event.as_str() {
                        "trace" => " (traces are not built yet)",
                        _ => "",
                    };
                    return Err(invalid(format!(
                        "a {} has no event {event:?}{hint}; events: {}",
                        this.0.kind.name(),
                        allowed.join(", ")
                    )));
                }
                // A closed object has no events left; a live one keeps its callbacks in its one
                // userdata, released when it closes.
                if let Some(canonical) = this.0.lua.get() {
                    lua_ref::add_handler(lua, &canonical, &event, f)?;
                }
                Ok(())
            },
        );
    }
}

impl LuaObj {
    fn expect(&self, kind: ObjKind, method: &str) -> mlua::Result<()> {
        if self.0.kind != kind {
            return Err(invalid(format!(
                "{method}() is a {} method, called on a {}",
                kind.name(),
                self.0.kind.name()
            )));
        }
        Ok(())
    }
}

/// Gives back ports bound for a plain transport whose creation failed.
fn release_ports(
    ctx: &WorkerContext,
    socket: (ringsfu_core::io::SocketId, std::net::SocketAddr),
    rtcp: Option<(ringsfu_core::io::SocketId, std::net::SocketAddr)>,
) {
    ctx.release_rtc_port(socket.0);
    if let Some((sid, _)) = rtcp {
        ctx.release_rtc_port(sid);
    }
}

fn parse_id(s: &str, what: &str) -> mlua::Result<Uuid> {
    Uuid::parse_str(s).map_err(|_| invalid(format!("{what} {s:?} is not a valid id")))
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

/// Registers a new engine object created under `parent`.
fn new_obj(
    lua: &Lua,
    parent: &Obj,
    kind: ObjKind,
    info: Json,
    app: Option<Table>,
) -> mlua::Result<Value> {
    let host = Host::current().ok_or_else(|| internal("no Lua host on this thread"))?;
    let id = info
        .get("id")
        .and_then(Json::as_str)
        .and_then(|s| Uuid::parse_str(s).ok())
        .ok_or_else(|| internal("engine returned no id"))?;
    let app_data = match app {
        Some(t) => t,
        None => lua.create_table()?,
    };
    let obj = Rc::new(Obj {
        id,
        kind,
        room: parent.room.clone(),
        info,
        closed: Cell::new(false),
        paused: Cell::new(false),
        producer_paused: Cell::new(false),
        lua: LuaRef::default(),
        router: parent.router,
    });
    let ud = lua.create_userdata(LuaObj(obj.clone()))?;
    obj.lua.hold(&ud, app_data)?;
    host.callbacks.insert(obj);
    Ok(Value::UserData(ud))
}

/// Engine observer (on the worker thread): updates object state, then runs the callbacks.
fn on_event(ev: &EngineEvent) {
    let Some(host) = Host::current() else { return };
    if data_api::on_event(&host, ev) || observer_api::on_event(&host, ev) {
        return;
    }
    let (id, name, gone): (Uuid, &str, bool) = match ev {
        EngineEvent::IceStateChange { transport, .. } => (*transport, "icestatechange", false),
        EngineEvent::IceSelectedTupleChange { transport, .. } => {
            (*transport, "iceselectedtuplechange", false)
        }
        EngineEvent::DtlsStateChange { transport, .. } => (*transport, "dtlsstatechange", false),
        EngineEvent::PlainTupleChange { transport, .. } => (*transport, "tuple", false),
        EngineEvent::TransportClosed { transport } => (*transport, "close", true),
        EngineEvent::ProducerTransportClosed { producer } => (*producer, "transportclose", true),
        EngineEvent::ConsumerProducerClosed { consumer, .. } => (*consumer, "producerclose", true),
        EngineEvent::ConsumerTransportClosed { consumer } => (*consumer, "transportclose", true),
        EngineEvent::ConsumerProducerPause { consumer } => (*consumer, "producerpause", false),
        EngineEvent::ConsumerProducerResume { consumer } => (*consumer, "producerresume", false),
        EngineEvent::ConsumerLayersChange { consumer, .. } => (*consumer, "layerschange", false),
        EngineEvent::TransportBwe { transport, .. } => (*transport, "bwe", false),
        EngineEvent::ProducerScore { producer, .. } => (*producer, "score", false),
        EngineEvent::ConsumerScore { consumer, .. } => (*consumer, "score", false),
        #[allow(unreachable_patterns)]
        _ => return,
    };
    let Some(obj) = host.callbacks.get(&id) else {
        return;
    };
    match ev {
        EngineEvent::ConsumerProducerPause { .. } => obj.producer_paused.set(true),
        EngineEvent::ConsumerProducerResume { .. } => obj.producer_paused.set(false),
        _ => {}
    }
    // Read before a closing event lets go of the object's userdata (and its callbacks).
    let handlers = obj.lua.handlers(name);
    if gone {
        host.callbacks.remove(&id);
    }
    let what = format!(
        "{} {} event {name} (room {})",
        obj.kind.name(),
        obj.id,
        obj.room
    );
    runner::spawn_each(&host, &what, handlers, || {
        event_args(&host.lua, ev, &obj.info)
    });
}

/// The callback arguments of an event.
fn event_args(lua: &Lua, ev: &EngineEvent, info: &Json) -> mlua::Result<mlua::MultiValue> {
    use mlua::IntoLuaMulti;
    match ev {
        EngineEvent::IceStateChange { state, .. } => state.as_str().into_lua_multi(lua),
        EngineEvent::IceSelectedTupleChange { tuple, .. } => lua
            .to_value(&ringsfu_core::transport::tuple_info(tuple, None))?
            .into_lua_multi(lua),
        EngineEvent::DtlsStateChange { state, reason, .. } => {
            (state.as_str(), reason.clone()).into_lua_multi(lua)
        }
        EngineEvent::PlainTupleChange { remote, .. } => lua
            .to_value(&json!({"remoteIp": remote.ip().to_string(), "remotePort": remote.port()}))?
            .into_lua_multi(lua),
        EngineEvent::ConsumerLayersChange {
            spatial_layer,
            temporal_layer,
            ..
        } => match spatial_layer {
            // As mediasoup: a stream without temporal layer ids is at temporal layer 0.
            Some(s) => lua
                .to_value(
                    &json!({ "spatialLayer": s, "temporalLayer": temporal_layer.unwrap_or(0) }),
                )?
                .into_lua_multi(lua),
            None => Value::Nil.into_lua_multi(lua),
        },
        // {desiredBitrate, effectiveDesiredBitrate, availableBitrate} (mediasoup's bwe trace info).
        EngineEvent::TransportBwe { info, .. } => lua.to_value(info)?.into_lua_multi(lua),
        // mediasoup's shapes: [{encodingIdx, ssrc, rid?, score}] and
        // {score, producerScore, producerScores}.
        EngineEvent::ProducerScore { scores, .. } => {
            // The engine's entries carry no rid (no allocation there): add it from the
            // producer's rtpParameters.
            let encodings = info.pointer("/rtpParameters/encodings");
            let list: Vec<Json> = scores
                .as_slice()
                .iter()
                .map(|e| {
                    let mut v =
                        json!({"encodingIdx": e.encoding_idx, "ssrc": e.ssrc, "score": e.score});
                    if let Some(rid) = encodings
                        .and_then(|x| x.get(e.encoding_idx))
                        .and_then(|x| x.get("rid"))
                        .filter(|r| r.is_string())
                    {
                        v["rid"] = rid.clone();
                    }
                    v
                })
                .collect();
            lua.to_value(&list)?.into_lua_multi(lua)
        }
        EngineEvent::ConsumerScore { score, .. } => lua.to_value(score)?.into_lua_multi(lua),
        _ => ().into_lua_multi(lua),
    }
}
