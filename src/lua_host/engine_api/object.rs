//! What every engine object scripts hold has, written once: an id, its room and router, a
//! `closed` flag, one userdata carrying its `appData` and its `obj:on` callbacks (see
//! [`lua_ref`]), and a place in the worker's one [`Registry`] from creation until it closes.
//!
//! Each kind of object is its own userdata type, [`Handle<K>`]: this common part plus the
//! kind's own fields and methods ([`Kind`]). A method exists only on the kinds that have it:
//! `router:pause()` fails as Lua fails on any missing method ("attempt to call a nil value
//! (method 'pause')"), and a function expecting a producer refuses any other object.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::marker::PhantomData;
use std::rc::Rc;

use mlua::{
    Function, IntoLuaMulti, Lua, LuaSerdeExt, Table, UserData, UserDataFields, UserDataMethods,
    Value,
};
use ringsfu_core::engine::{Engine, EngineError};
use serde_json::Value as Json;
use uuid::Uuid;

use super::super::error::{bad_state, internal, invalid};
use super::super::lua_ref::{self, LuaRef};
use super::super::runner;
use super::super::Host;
use super::engine;

/// The kinds of objects scripts hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tag {
    /// A room's router.
    Router,
    /// A WebRtcTransport.
    WebRtcTransport,
    /// A PlainTransport.
    PlainTransport,
    /// An in-process transport for direct data producers and consumers (host-only).
    DirectTransport,
    /// A producer.
    Producer,
    /// A consumer.
    Consumer,
    /// A data producer (sctp or direct).
    DataProducer,
    /// A data consumer (sctp or direct).
    DataConsumer,
    /// An AudioLevelObserver.
    AudioLevelObserver,
    /// An ActiveSpeakerObserver.
    ActiveSpeakerObserver,
}

impl Tag {
    /// Every kind, in the order of the debug dump.
    pub const ALL: [Tag; 10] = [
        Tag::Router,
        Tag::WebRtcTransport,
        Tag::PlainTransport,
        Tag::Producer,
        Tag::Consumer,
        Tag::DirectTransport,
        Tag::DataProducer,
        Tag::DataConsumer,
        Tag::AudioLevelObserver,
        Tag::ActiveSpeakerObserver,
    ];

    /// `obj.objectType` (both network transports are `"transport"`).
    pub fn object_type(self) -> &'static str {
        match self {
            Tag::Router => "router",
            Tag::WebRtcTransport | Tag::PlainTransport => "transport",
            Tag::DirectTransport => "directTransport",
            Tag::Producer => "producer",
            Tag::Consumer => "consumer",
            Tag::DataProducer => "dataProducer",
            Tag::DataConsumer => "dataConsumer",
            Tag::AudioLevelObserver => "audioLevelObserver",
            Tag::ActiveSpeakerObserver => "activeSpeakerObserver",
        }
    }

    /// The events scripts may subscribe to with `obj:on(event, fn)`.
    pub fn events(self) -> &'static [&'static str] {
        match self {
            Tag::Router => &[],
            Tag::WebRtcTransport => &[
                "icestatechange",
                "iceselectedtuplechange",
                "dtlsstatechange",
                "sctpstatechange",
                "bwe",
                "close",
            ],
            Tag::PlainTransport => &["tuple", "bwe", "close"],
            Tag::DirectTransport => &["close"],
            Tag::Producer => &["transportclose", "score"],
            Tag::Consumer => &[
                "producerclose",
                "transportclose",
                "producerpause",
                "producerresume",
                "layerschange",
                "score",
            ],
            Tag::DataProducer => &["transportclose", "peerclose"],
            Tag::DataConsumer => &["message", "dataproducerclose", "transportclose"],
            Tag::AudioLevelObserver => &["volumes", "silence", "routerclose"],
            Tag::ActiveSpeakerObserver => &["dominantspeaker", "routerclose"],
        }
    }
}

/// One object scripts hold: what every kind has, then the few fields only some kinds use.
pub struct Obj {
    /// The engine's id (a direct transport's: the host's).
    pub id: Uuid,
    /// Its kind.
    pub tag: Tag,
    /// The room it belongs to (it is forgotten when the room closes).
    pub room: String,
    /// The router it belongs to (a router: its own id).
    pub router: Uuid,
    /// The engine's description at creation (iceParameters, rtpParameters, label, ...), read by
    /// the kinds' fields.
    pub info: Json,
    /// Set when it closed (by a script, by an engine event, or with its room).
    pub closed: Cell<bool>,
    /// Producers, consumers, data producers and consumers, observers: `obj.paused`.
    pub paused: Cell<bool>,
    /// Consumers: whether their producer is paused.
    pub producer_paused: Cell<bool>,
    /// The object's userdata (with its appData and callbacks) while it is live.
    pub lua: LuaRef,
    /// Direct data producers and consumers: their direct transport.
    pub parent: Option<Uuid>,
    /// Direct transports: their data producers and consumers (closed with them).
    pub children: RefCell<Vec<Uuid>>,
    /// Direct transports and their data objects: the longest message sent or received.
    pub max_message_size: usize,
}

impl Obj {
    /// A new live object of `tag` (not paused, no direct transport).
    pub fn new(tag: Tag, id: Uuid, room: &str, router: Uuid, info: Json) -> Obj {
        Obj {
            id,
            tag,
            room: room.to_owned(),
            router,
            info,
            closed: Cell::new(false),
            paused: Cell::new(false),
            producer_paused: Cell::new(false),
            lua: LuaRef::default(),
            parent: None,
            children: RefCell::new(Vec::new()),
            max_message_size: usize::MAX,
        }
    }

    /// A new live object of `tag` created under this one (same room and router).
    pub fn child(&self, tag: Tag, id: Uuid, info: Json) -> Obj {
        Obj::new(tag, id, &self.room, self.router, info)
    }

    /// `"<objectType> <id>"`, as `tostring(obj)` and the logs name it.
    pub fn name(&self) -> String {
        format!("{} {}", self.tag.object_type(), self.id)
    }
}

/// The objects scripts hold on this worker, by id, from creation until they close (by a
/// script, by an engine event, or with their room). Holding an object here is what keeps its
/// userdata, and so its callbacks, alive (see [`lua_ref`]).
#[derive(Default)]
pub struct Registry {
    objs: RefCell<HashMap<Uuid, Rc<Obj>>>,
}

impl Registry {
    /// The live object `id`.
    pub fn get(&self, id: &Uuid) -> Option<Rc<Obj>> {
        self.objs.borrow().get(id).cloned()
    }

    fn insert(&self, obj: Rc<Obj>) {
        self.objs.borrow_mut().insert(obj.id, obj);
    }

    /// Forgets an object that closed: marks it closed, takes it off its direct transport's
    /// list and lets go of its userdata. Read its callbacks before (they go with it).
    pub fn forget(&self, id: &Uuid) -> Option<Rc<Obj>> {
        let obj = self.objs.borrow_mut().remove(id)?;
        obj.closed.set(true);
        if let Some(t) = obj.parent.and_then(|t| self.get(&t)) {
            t.children.borrow_mut().retain(|c| c != id);
        }
        obj.lua.release();
        Some(obj)
    }

    /// Forgets every object of a closed room; returns them.
    pub fn drop_room(&self, room: &str) -> Vec<Rc<Obj>> {
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
        for o in &gone {
            o.closed.set(true);
            o.lua.release();
        }
        gone
    }

    /// Live objects by `objectType` (every type listed, zeros included).
    pub fn counts(&self) -> Vec<(&'static str, usize)> {
        let mut out: Vec<(&'static str, usize)> = Vec::new();
        for tag in Tag::ALL {
            if !out.iter().any(|(t, _)| *t == tag.object_type()) {
                out.push((tag.object_type(), 0));
            }
        }
        for o in self.objs.borrow().values() {
            if let Some(entry) = out.iter_mut().find(|(t, _)| *t == o.tag.object_type()) {
                entry.1 += 1;
            }
        }
        out
    }
}

/// A kind of object: its tag, its own fields and methods, and how a script's `close()` closes
/// it in the engine. Implemented by an uninhabited marker type per kind.
pub trait Kind: Sized + 'static {
    /// The kind's tag.
    const TAG: Tag;

    /// Fields beyond `id`, `appData`, `closed` and `objectType`.
    fn add_fields<F: UserDataFields<Handle<Self>>>(_fields: &mut F) {}

    /// Methods beyond `on` and `close`.
    fn add_methods<M: UserDataMethods<Handle<Self>>>(methods: &mut M);

    /// Closes the live object `obj` in the engine for a script's `obj:close()`; the registry
    /// forgets it afterwards. Closing what a cascade already closed is not an error.
    fn close(obj: &Rc<Obj>) -> mlua::Result<()>;
}

/// The userdata of an object of kind `K`.
pub struct Handle<K>(pub Rc<Obj>, PhantomData<K>);

impl<K: Kind> Handle<K> {
    /// The userdata value of `obj` (of kind `K`).
    pub fn new(obj: Rc<Obj>) -> Self {
        debug_assert_eq!(obj.tag, K::TAG);
        Handle(obj, PhantomData)
    }

    /// The object as a Lua value: its one userdata while live; once closed, a detached one
    /// (closed, empty appData, no callbacks).
    pub fn value(lua: &Lua, obj: &Rc<Obj>) -> mlua::Result<Value> {
        match obj.lua.get() {
            Some(ud) => Ok(Value::UserData(ud)),
            None => lua
                .create_userdata(Handle::<K>::new(obj.clone()))
                .map(Value::UserData),
        }
    }

    /// Registers a new live object of kind `K` with `app` as its appData (a new table when
    /// absent) and returns its userdata.
    pub fn register(lua: &Lua, obj: Obj, app: Option<Table>) -> mlua::Result<Value> {
        let host = Host::current().ok_or_else(|| internal("no Lua host on this thread"))?;
        let app = match app {
            Some(t) => t,
            None => lua.create_table()?,
        };
        let obj = Rc::new(obj);
        let ud = lua.create_userdata(Handle::<K>::new(obj.clone()))?;
        obj.lua.hold(&ud, app)?;
        host.objects.insert(obj);
        Ok(Value::UserData(ud))
    }
}

impl<K> Handle<K> {
    /// The object's id.
    pub fn id(&self) -> Uuid {
        self.0.id
    }

    /// Fails with 409 (bad state: closed objects take no calls) when the object is closed.
    pub fn alive(&self) -> mlua::Result<()> {
        if self.0.closed.get() {
            return Err(bad_state(format!("{} is closed", self.0.name())));
        }
        Ok(())
    }
}

impl<K: Kind> UserData for Handle<K> {
    fn add_fields<F: UserDataFields<Self>>(fields: &mut F) {
        fields.add_field_method_get("id", |_, this| Ok(this.0.id.to_string()));
        fields.add_field_function_get("appData", |lua, ud| lua_ref::data_of(lua, &ud));
        fields.add_field_method_get("closed", |_, this| Ok(this.0.closed.get()));
        fields.add_field_method_get("objectType", |_, _| Ok(K::TAG.object_type()));
        K::add_fields(fields);
    }

    fn add_methods<M: UserDataMethods<Self>>(methods: &mut M) {
        methods.add_meta_method(mlua::MetaMethod::ToString, |_, this, ()| Ok(this.0.name()));
        methods.add_meta_method(mlua::MetaMethod::Eq, |_, this, other: mlua::AnyUserData| {
            Ok(other.borrow::<Self>().is_ok_and(|o| o.0.id == this.0.id))
        });
        methods.add_method("on", |lua, this, (event, f): (String, Function)| {
            let allowed = K::TAG.events();
            if !allowed.contains(&event.as_str()) {
                let hint = match event.as_str() {
                    "trace" => " (traces are not built yet)",
                    _ => "",
                };
                return Err(invalid(format!(
                    "a {} has no event {event:?}{hint}; events: {}",
                    K::TAG.object_type(),
                    allowed.join(", ")
                )));
            }
            // A closed object has no events left; a live one keeps its callbacks in its one
            // userdata, released when it closes.
            if let Some(canonical) = this.0.lua.get() {
                lua_ref::add_handler(lua, &canonical, &event, f)?;
            }
            Ok(())
        });
        methods.add_method("close", |_, this, ()| {
            if this.0.closed.get() {
                return Ok(());
            }
            let r = K::close(&this.0);
            if let Some(host) = Host::current() {
                host.objects.forget(&this.0.id);
            }
            this.0.closed.set(true);
            r
        });
        K::add_methods(methods);
    }
}

/// Adds getters for `names`, each read from the object's creation JSON (nil when absent).
pub fn add_info_fields<K: Kind, F: UserDataFields<Handle<K>>>(
    fields: &mut F,
    names: &'static [&'static str],
) {
    for name in names {
        fields.add_field_method_get(*name, move |lua, this| match this.0.info.get(*name) {
            Some(v) => lua.to_value(v),
            None => Ok(Value::Nil),
        });
    }
}

/// An engine call that pauses (`true`) or resumes (`false`) object `id`.
pub type PauseFn = fn(&mut Engine, &Uuid, bool) -> Result<(), EngineError>;

/// `pause()` and `resume()` of a live object: the engine call, then `obj.paused`.
pub fn add_pause_methods<K: Kind, M: UserDataMethods<Handle<K>>>(methods: &mut M, set: PauseFn) {
    for (name, paused) in [("pause", true), ("resume", false)] {
        methods.add_method(name, move |_, this, ()| {
            this.alive()?;
            let id = this.id();
            engine(|e| set(e, &id, paused))?;
            this.0.paused.set(paused);
            Ok(())
        });
    }
}

/// Runs each `event` callback of `obj` in its own coroutine (see [`runner::spawn_each`]).
pub fn run_handlers<A: IntoLuaMulti>(
    host: &Rc<Host>,
    obj: &Obj,
    event: &str,
    args: impl FnOnce() -> mlua::Result<A>,
) {
    let handlers = obj.lua.handlers(event);
    let what = format!("{} event {event} (room {})", obj.name(), obj.room);
    runner::spawn_each(host, &what, handlers, || args()?.into_lua_multi(&host.lua));
}
