//! Data channels as Lua sees them: data producers and data consumers on a WebRtcTransport's SCTP
//! association, and direct transports (in-process, no network) whose data producers scripts
//! `send()` on and whose data consumers hand every message to a Lua callback — the demo's bot.
//!
//! A direct transport exists only here: the engine knows direct data producers and consumers
//! by router, so the host groups them, enforces the transport's `maxMessageSize`, and closes
//! them with the transport or the room.
//!
//! This is a child module of [`super`] (the engine API) so it shares its helpers and the
//! transport/router userdata; the engine API calls [`add_methods`], [`on_event`] and
//! [`drop_room`].

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;

use mlua::{
    AnyUserData, Function, IntoLuaMulti, Lua, LuaSerdeExt, Table, UserData, UserDataFields,
    UserDataMethods, Value,
};
use ringsfu_core::data::DataMessage;
use ringsfu_core::engine::EngineEvent;
use ringsfu_core::rtp_parameters::SctpStreamParameters;
use ringsfu_core::sctp::Ppid;
use serde_json::{json, Value as Json};
use uuid::Uuid;

use super::super::error::invalid;
use super::super::lua_ref::{self, LuaRef};
use super::super::options::{parse, ConsumeDataOpts, DirectTransportOpts, ProduceDataOpts};
use super::super::runner;
use super::super::Host;
use super::{engine, json_of, parse_id, LuaObj, ObjKind};

/// Default `maxMessageSize` of a direct transport (mediasoup's default).
pub const DEFAULT_DIRECT_MAX_MESSAGE_SIZE: usize = 262_144;

/// What kind of data object a [`LuaData`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataKind {
    /// An in-process transport for direct data producers and consumers.
    DirectTransport,
    /// A data producer (sctp or direct).
    DataProducer,
    /// A data consumer (sctp or direct).
    DataConsumer,
}

impl DataKind {
    fn name(self) -> &'static str {
        match self {
            DataKind::DirectTransport => "directTransport",
            DataKind::DataProducer => "dataProducer",
            DataKind::DataConsumer => "dataConsumer",
        }
    }

    /// Events scripts may subscribe to.
    fn events(self) -> &'static [&'static str] {
        match self {
            DataKind::DirectTransport => &["close"],
            DataKind::DataProducer => &["transportclose", "peerclose"],
            DataKind::DataConsumer => &["message", "dataproducerclose", "transportclose"],
        }
    }
}

/// One data object known to Lua.
pub struct DataObj {
    id: Uuid,
    kind: DataKind,
    room: String,
    /// Engine JSON at creation (label, protocol, sctpStreamParameters, ...).
    info: Json,
    closed: Cell<bool>,
    paused: Cell<bool>,
    /// The object's userdata (with its appData and callbacks) while it is live.
    lua: LuaRef,
    /// The direct transport this object belongs to (None: sctp, or it is the transport).
    direct_transport: Option<Uuid>,
    /// Direct transports: their router.
    router: Option<Uuid>,
    /// Direct transports: the limit on messages sent and received.
    max_message_size: usize,
    /// Direct transports: their data producers and consumers.
    children: RefCell<Vec<Uuid>>,
}

thread_local! {
    static DATA: RefCell<HashMap<Uuid, Rc<DataObj>>> = RefCell::new(HashMap::new());
}

fn get(id: &Uuid) -> Option<Rc<DataObj>> {
    DATA.with(|d| d.borrow().get(id).cloned())
}

fn insert(obj: Rc<DataObj>) {
    DATA.with(|d| d.borrow_mut().insert(obj.id, obj));
}

/// Forgets a closed object. The caller runs its closing callbacks, then lets go of its userdata
/// (`obj.lua.release()`).
fn remove(id: &Uuid) -> Option<Rc<DataObj>> {
    let o = DATA.with(|d| d.borrow_mut().remove(id));
    if let Some(o) = &o {
        o.closed.set(true);
    }
    o
}

/// Live data objects by kind (`directTransport`, `dataProducer`, `dataConsumer`).
pub fn counts() -> [(&'static str, usize); 3] {
    let mut out = [
        (DataKind::DirectTransport.name(), 0),
        (DataKind::DataProducer.name(), 0),
        (DataKind::DataConsumer.name(), 0),
    ];
    DATA.with(|d| {
        for o in d.borrow().values() {
            let i = match o.kind {
                DataKind::DirectTransport => 0,
                DataKind::DataProducer => 1,
                DataKind::DataConsumer => 2,
            };
            out[i].1 += 1;
        }
    });
    out
}

/// A userdata wrapping a data object.
#[derive(Clone)]
pub struct LuaData(pub Rc<DataObj>);

/// Methods added to routers (`createDirectTransport`) and transports (`produceData`,
/// `consumeData`).
pub fn add_methods<M: UserDataMethods<LuaObj>>(methods: &mut M) {
    methods.add_method("createDirectTransport", |lua, this, opts: Option<Table>| {
        this.expect(ObjKind::Router, "createDirectTransport")?;
        let opts = match opts {
            Some(t) => t,
            None => lua.create_table()?,
        };
        let o: DirectTransportOpts = parse(lua, Some(&opts), "createDirectTransport")?;
        let max = o
            .max_message_size
            .unwrap_or(DEFAULT_DIRECT_MAX_MESSAGE_SIZE as i64);
        let max = usize::try_from(max)
            .ok()
            .filter(|m| *m > 0)
            .ok_or_else(|| invalid(format!("wrong maxMessageSize {max}")))?;
        let id = Uuid::new_v4();
        let info = json!({ "id": id.to_string(), "maxMessageSize": max });
        new_data(
            lua,
            NewData {
                id,
                kind: DataKind::DirectTransport,
                room: this.0.room.clone(),
                info,
                app: opts.get("appData")?,
                paused: false,
                direct_transport: None,
                router: Some(router_of(&this.0)?),
                max_message_size: max,
            },
        )
    });
    methods.add_method("produceData", |lua, this, opts: Table| {
        this.expect(ObjKind::Transport, "produceData")?;
        let o: ProduceDataOpts = parse(lua, Some(&opts), "produceData")?;
        let params = o
            .sctp_stream_parameters
            .ok_or_else(|| invalid("missing sctpStreamParameters"))?;
        let router = router_of(&this.0)?;
        let transport = this.0.id;
        produce_data(
            lua,
            &this.0.room,
            router,
            Some(transport),
            Some(params),
            &opts,
            None,
        )
    });
    methods.add_method("consumeData", |lua, this, opts: Table| {
        this.expect(ObjKind::Transport, "consumeData")?;
        let transport = this.0.id;
        consume_data(lua, &this.0.room, Some(transport), &opts, None)
    });
}

fn router_of(o: &super::Obj) -> mlua::Result<Uuid> {
    o.router
        .ok_or_else(|| invalid(format!("{} {} has no router", o.kind.name(), o.id)))
}

fn produce_data(
    lua: &Lua,
    room: &str,
    router: Uuid,
    transport: Option<Uuid>,
    params: Option<SctpStreamParameters>,
    opts: &Table,
    direct: Option<&DataObj>,
) -> mlua::Result<Value> {
    let o: ProduceDataOpts = parse(lua, Some(opts), "produceData")?;
    let label = o.label.unwrap_or_default();
    let protocol = o.protocol.unwrap_or_default();
    let paused = o.paused.unwrap_or(false);
    let info = engine(|e| {
        e.produce_data(
            &router,
            transport.as_ref(),
            params,
            &label,
            &protocol,
            paused,
        )
    })?;
    let info = json_of(&info)?;
    register(
        lua,
        room,
        DataKind::DataProducer,
        info,
        opts,
        paused,
        direct,
    )
}

fn consume_data(
    lua: &Lua,
    room: &str,
    transport: Option<Uuid>,
    opts: &Table,
    direct: Option<&DataObj>,
) -> mlua::Result<Value> {
    let o: ConsumeDataOpts = parse(lua, Some(opts), "consumeData")?;
    let dp = o
        .data_producer_id
        .ok_or_else(|| invalid("missing dataProducerId"))?;
    let dp = parse_id(&dp, "dataProducerId")?;
    let ordered = o.ordered;
    let life = o.max_packet_life_time;
    let retransmits = o.max_retransmits;
    let paused = o.paused.unwrap_or(false);
    let info =
        engine(|e| e.consume_data(transport.as_ref(), &dp, ordered, life, retransmits, paused))?;
    let info = json_of(&info)?;
    register(
        lua,
        room,
        DataKind::DataConsumer,
        info,
        opts,
        paused,
        direct,
    )
}

/// Registers an engine data object just created (under a direct transport when `direct`).
fn register(
    lua: &Lua,
    room: &str,
    kind: DataKind,
    info: Json,
    opts: &Table,
    paused: bool,
    direct: Option<&DataObj>,
) -> mlua::Result<Value> {
    let id = info
        .get("id")
        .and_then(Json::as_str)
        .and_then(|s| Uuid::parse_str(s).ok())
        .ok_or_else(|| super::super::error::internal("engine returned no id"))?;
    if let Some(t) = direct {
        t.children.borrow_mut().push(id);
    }
    new_data(
        lua,
        NewData {
            id,
            kind,
            room: room.to_owned(),
            info,
            app: opts.get("appData")?,
            paused,
            direct_transport: direct.map(|t| t.id),
            router: None,
            max_message_size: direct.map(|t| t.max_message_size).unwrap_or(usize::MAX),
        },
    )
}

struct NewData {
    id: Uuid,
    kind: DataKind,
    room: String,
    info: Json,
    app: Option<Table>,
    paused: bool,
    direct_transport: Option<Uuid>,
    router: Option<Uuid>,
    max_message_size: usize,
}

fn new_data(lua: &Lua, n: NewData) -> mlua::Result<Value> {
    let app_data = match n.app {
        Some(t) => t,
        None => lua.create_table()?,
    };
    let obj = Rc::new(DataObj {
        id: n.id,
        kind: n.kind,
        room: n.room,
        info: n.info,
        closed: Cell::new(false),
        paused: Cell::new(n.paused),
        lua: LuaRef::default(),
        direct_transport: n.direct_transport,
        router: n.router,
        max_message_size: n.max_message_size,
        children: RefCell::new(Vec::new()),
    });
    let ud = lua.create_userdata(LuaData(obj.clone()))?;
    obj.lua.hold(&ud, app_data)?;
    insert(obj);
    Ok(Value::UserData(ud))
}

/// Field names read from the creation JSON.
const INFO_FIELDS: &[&str] = &[
    "type",
    "label",
    "protocol",
    "sctpStreamParameters",
    "dataProducerId",
    "maxMessageSize",
];

impl UserData for LuaData {
    fn add_fields<F: UserDataFields<Self>>(fields: &mut F) {
        fields.add_field_method_get("id", |_, this| Ok(this.0.id.to_string()));
        fields.add_field_function_get("appData", |lua, ud| lua_ref::data_of(lua, &ud));
        fields.add_field_method_get("closed", |_, this| Ok(this.0.closed.get()));
        fields.add_field_method_get("paused", |_, this| Ok(this.0.paused.get()));
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
            Ok(other.borrow::<LuaData>().is_ok_and(|o| o.0.id == this.0.id))
        });

        // ---- direct transport
        methods.add_method("produceData", |lua, this, opts: Option<Table>| {
            this.expect(DataKind::DirectTransport, "produceData")?;
            this.alive()?;
            let opts = match opts {
                Some(t) => t,
                None => lua.create_table()?,
            };
            let router = this
                .0
                .router
                .ok_or_else(|| super::super::error::internal("directTransport without router"))?;
            produce_data(lua, &this.0.room, router, None, None, &opts, Some(&this.0))
        });
        methods.add_method("consumeData", |lua, this, opts: Table| {
            this.expect(DataKind::DirectTransport, "consumeData")?;
            this.alive()?;
            consume_data(lua, &this.0.room, None, &opts, Some(&this.0))
        });

        // ---- direct data producer
        methods.add_method(
            "send",
            |_, this, (data, ppid): (mlua::LuaString, Option<u32>)| {
                this.expect(DataKind::DataProducer, "send")?;
                this.alive()?;
                let ppid = match ppid.unwrap_or(51) {
                    51 | 56 => Ppid::String,
                    53 | 57 => Ppid::Binary,
                    p => return Err(invalid(format!("wrong ppid {p} (51 string, 53 binary)"))),
                };
                let data = data.as_bytes().to_vec();
                if data.len() > this.0.max_message_size {
                    return Err(invalid(format!(
                        "message of {} bytes exceeds maxMessageSize {}",
                        data.len(),
                        this.0.max_message_size
                    )));
                }
                let id = this.0.id;
                engine(|e| e.send_data(&id, DataMessage { ppid, data }))
            },
        );

        // ---- shared
        methods.add_method("getStats", |lua, this, ()| {
            let id = this.0.id;
            let v = match this.0.kind {
                DataKind::DataProducer => json_of(&engine(|e| e.data_producer_stats(&id))?)?,
                DataKind::DataConsumer => json_of(&engine(|e| e.data_consumer_stats(&id))?)?,
                DataKind::DirectTransport => json!([{
                    "type": "direct-transport", "transportId": id.to_string(),
                    "timestamp": std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map(|d| d.as_millis() as u64)
                        .unwrap_or(0),
                }]),
            };
            lua.to_value(&v)
        });
        methods.add_method("close", |_, this, ()| {
            close_obj(&this.0);
            Ok(())
        });
        methods.add_method("pause", |_, this, ()| this.set_paused(true));
        methods.add_method("resume", |_, this, ()| this.set_paused(false));
        methods.add_function(
            "on",
            |lua, (ud, event, f): (AnyUserData, String, Function)| {
                let this = ud.borrow::<LuaData>()?;
                let allowed = this.0.kind.events();
                if !allowed.contains(&event.as_str()) {
                    return Err(invalid(format!(
                        "a {} has no event {event:?}; events: {}",
                        this.0.kind.name(),
                        allowed.join(", ")
                    )));
                }
                // Kept in the object's userdata while it is live (see lua_ref).
                if let Some(canonical) = this.0.lua.get() {
                    lua_ref::add_handler(lua, &canonical, &event, f)?;
                }
                Ok(())
            },
        );
    }
}

impl LuaData {
    fn expect(&self, kind: DataKind, method: &str) -> mlua::Result<()> {
        if self.0.kind != kind {
            return Err(invalid(format!(
                "{method}() is a {} method, called on a {}",
                kind.name(),
                self.0.kind.name()
            )));
        }
        Ok(())
    }

    fn alive(&self) -> mlua::Result<()> {
        if self.0.closed.get() {
            return Err(invalid(format!(
                "{} {} is closed",
                self.0.kind.name(),
                self.0.id
            )));
        }
        Ok(())
    }

    fn set_paused(&self, paused: bool) -> mlua::Result<()> {
        let id = self.0.id;
        match self.0.kind {
            DataKind::DataProducer => engine(|e| e.set_data_producer_paused(&id, paused))?,
            DataKind::DataConsumer => engine(|e| e.set_data_consumer_paused(&id, paused))?,
            DataKind::DirectTransport => return Err(invalid("a directTransport cannot be paused")),
        }
        self.0.paused.set(paused);
        Ok(())
    }
}

/// Closes a data object in the engine and forgets it. A direct transport closes its data
/// producers and consumers, whose `transportclose` callbacks run (as for a closed
/// WebRtcTransport).
fn close_obj(obj: &Rc<DataObj>) {
    if obj.closed.get() {
        return;
    }
    remove(&obj.id);
    match obj.kind {
        DataKind::DataProducer | DataKind::DataConsumer => {
            if let Some(t) = obj.direct_transport.and_then(|t| get(&t)) {
                t.children.borrow_mut().retain(|c| *c != obj.id);
            }
            close_in_engine(obj);
            obj.lua.release();
        }
        DataKind::DirectTransport => {
            let children = std::mem::take(&mut *obj.children.borrow_mut());
            // Consumers first, so closing a producer does not report them as
            // `dataproducerclose` too.
            let mut kids: Vec<Rc<DataObj>> = children.iter().filter_map(remove).collect();
            kids.sort_by_key(|k| k.kind == DataKind::DataProducer);
            for k in &kids {
                close_in_engine(k);
            }
            if let Some(host) = Host::current() {
                for k in &kids {
                    run_handlers(&host, k, "transportclose", || Ok(()));
                }
                run_handlers(&host, obj, "close", || Ok(()));
            }
            for k in &kids {
                k.lua.release();
            }
            obj.lua.release();
        }
    }
}

fn close_in_engine(obj: &DataObj) {
    let id = obj.id;
    let r = match obj.kind {
        DataKind::DataProducer => engine(|e| e.close_data_producer(&id)),
        DataKind::DataConsumer => engine(|e| e.close_data_consumer(&id)),
        DataKind::DirectTransport => Ok(()),
    };
    // Already gone through a cascade: nothing to do.
    if let Err(e) = r {
        log::debug!("closing {} {id}: {e}", obj.kind.name());
    }
}

/// Forgets every data object of a closed room; direct ones are closed in the engine (closing
/// the router does not reach them: they belong to no transport).
pub fn drop_room(room: &str) {
    let objs: Vec<Rc<DataObj>> = DATA.with(|d| {
        let mut d = d.borrow_mut();
        let ids: Vec<Uuid> = d
            .values()
            .filter(|o| o.room == room)
            .map(|o| o.id)
            .collect();
        ids.iter().filter_map(|id| d.remove(id)).collect()
    });
    for o in &objs {
        o.closed.set(true);
        o.lua.release();
    }
    for o in objs.iter().filter(|o| o.kind == DataKind::DataConsumer) {
        if o.direct_transport.is_some() {
            close_in_engine(o);
        }
    }
    for o in objs.iter().filter(|o| o.kind == DataKind::DataProducer) {
        if o.direct_transport.is_some() {
            close_in_engine(o);
        }
    }
}

/// Handles the data-channel engine events; returns false for the others.
pub fn on_event(host: &Rc<Host>, ev: &EngineEvent) -> bool {
    match ev {
        EngineEvent::DataConsumerMessage {
            data_consumer,
            message,
        } => {
            let Some(obj) = get(data_consumer) else {
                return true;
            };
            if message.data.len() > obj.max_message_size {
                log::debug!(
                    "direct data consumer {data_consumer}: message of {} bytes dropped (maxMessageSize {})",
                    message.data.len(),
                    obj.max_message_size
                );
                return true;
            }
            let ppid = message.ppid.as_u32();
            let lua = &host.lua;
            run_handlers(host, &obj, "message", || {
                let bytes = lua.create_string(&message.data)?;
                (bytes, ppid).into_lua_multi(lua)
            });
        }
        EngineEvent::DataConsumerDataProducerClosed { data_consumer, .. } => {
            gone(host, data_consumer, "dataproducerclose");
        }
        EngineEvent::DataConsumerTransportClosed { data_consumer } => {
            gone(host, data_consumer, "transportclose");
        }
        EngineEvent::DataProducerTransportClosed { data_producer } => {
            gone(host, data_producer, "transportclose");
        }
        EngineEvent::DataProducerClosedByPeer { data_producer } => {
            gone(host, data_producer, "peerclose");
        }
        EngineEvent::SctpStateChange { transport, state } => {
            let Some(obj) = host.callbacks.get(transport) else {
                return true;
            };
            let handlers = obj.lua.handlers("sctpstatechange");
            let state = state.as_str();
            let what = format!(
                "transport {} event sctpstatechange (room {})",
                obj.id, obj.room
            );
            runner::spawn_each(host, &what, handlers, || state.into_lua_multi(&host.lua));
        }
        _ => return false,
    }
    true
}

/// The object closed in the engine: forget it and run its `event` callbacks.
fn gone(host: &Rc<Host>, id: &Uuid, event: &str) {
    if let Some(obj) = remove(id) {
        if let Some(t) = obj.direct_transport.and_then(|t| get(&t)) {
            t.children.borrow_mut().retain(|c| c != id);
        }
        run_handlers(host, &obj, event, || Ok(()));
        obj.lua.release();
    }
}

fn run_handlers<A: IntoLuaMulti>(
    host: &Rc<Host>,
    obj: &DataObj,
    event: &str,
    args: impl FnOnce() -> mlua::Result<A>,
) {
    let handlers = obj.lua.handlers(event);
    let what = format!(
        "{} {} event {event} (room {})",
        obj.kind.name(),
        obj.id,
        obj.room
    );
    runner::spawn_each(host, &what, handlers, || args()?.into_lua_multi(&host.lua));
}
