//! RTP observers as Lua sees them: `router:createAudioLevelObserver{}` and
//! `router:createActiveSpeakerObserver{}` return observer objects with mediasoup's methods
//! (`addProducer{producerId}`, `removeProducer{producerId}`, `pause()`, `resume()`, `close()`)
//! and events (`volumes`, `silence`, `dominantspeaker`, `routerclose`).
//!
//! The observers themselves run in the engine (levels read on the packet path, evaluation on
//! the engine's timers); Lua only receives their events, at most once per interval per
//! observer: nothing here runs per packet.
//!
//! This is a child module of [`super`] (the engine API): it uses its helpers and the router and
//! producer userdata; the engine API calls [`add_methods`], [`on_event`] and [`drop_room`].

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use std::time::Instant;

use mlua::{Function, IntoLuaMulti, Lua, Table, UserData, UserDataFields, UserDataMethods, Value};
use ringsfu_core::engine::EngineEvent;
use ringsfu_core::observer::audio_level::AudioLevelOptions;
use ringsfu_core::observer::registry::ObserverEvent;
use ringsfu_core::observer::{active_speaker, ObserverError};
use uuid::Uuid;

use super::super::error::invalid;
use super::super::options::{parse, rounded, ActiveSpeakerObserverOpts, AudioLevelObserverOpts};
use super::super::runner;
use super::super::Host;
use super::{engine, parse_id, LuaObj, ObjKind};

/// Which observer a [`LuaObserver`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ObserverType {
    /// AudioLevelObserver.
    AudioLevel,
    /// ActiveSpeakerObserver.
    ActiveSpeaker,
}

impl ObserverType {
    /// mediasoup's `observer.type`.
    fn name(self) -> &'static str {
        match self {
            ObserverType::AudioLevel => "audiolevel",
            ObserverType::ActiveSpeaker => "activespeaker",
        }
    }

    fn events(self) -> &'static [&'static str] {
        match self {
            ObserverType::AudioLevel => &["volumes", "silence", "routerclose"],
            ObserverType::ActiveSpeaker => &["dominantspeaker", "routerclose"],
        }
    }
}

/// One observer known to Lua.
pub struct ObserverObj {
    id: Uuid,
    kind: ObserverType,
    room: String,
    app_data: Table,
    closed: Cell<bool>,
    paused: Cell<bool>,
    handlers: RefCell<Vec<(String, Function)>>,
}

thread_local! {
    static OBSERVERS: RefCell<HashMap<Uuid, Rc<ObserverObj>>> = RefCell::new(HashMap::new());
}

fn get(id: &Uuid) -> Option<Rc<ObserverObj>> {
    OBSERVERS.with(|o| o.borrow().get(id).cloned())
}

fn remove(id: &Uuid) -> Option<Rc<ObserverObj>> {
    let o = OBSERVERS.with(|o| o.borrow_mut().remove(id));
    if let Some(o) = &o {
        o.closed.set(true);
    }
    o
}

/// A userdata wrapping an observer.
#[derive(Clone)]
pub struct LuaObserver(pub Rc<ObserverObj>);

fn observer_error(e: ObserverError) -> mlua::Error {
    invalid(e.to_string())
}

/// Router methods: `createAudioLevelObserver{maxEntries?, threshold?, interval?, appData?}` and
/// `createActiveSpeakerObserver{interval?, appData?}`.
pub fn add_methods<M: UserDataMethods<LuaObj>>(methods: &mut M) {
    methods.add_method(
        "createAudioLevelObserver",
        |lua, this, opts: Option<Table>| {
            this.expect(ObjKind::Router, "createAudioLevelObserver")?;
            let opts = match opts {
                Some(t) => t,
                None => lua.create_table()?,
            };
            let p: AudioLevelObserverOpts = parse(lua, Some(&opts), "createAudioLevelObserver")?;
            let o = AudioLevelOptions::new(
                rounded(p.max_entries, 1),
                rounded(p.threshold, -80),
                rounded(p.interval, 1000),
            )
            .map_err(observer_error)?;
            let router = this.0.id;
            let id = engine(|e| e.create_audio_level_observer(&router, o, Instant::now()))?;
            new_observer(lua, &this.0.room, id, ObserverType::AudioLevel, &opts)
        },
    );
    methods.add_method(
        "createActiveSpeakerObserver",
        |lua, this, opts: Option<Table>| {
            this.expect(ObjKind::Router, "createActiveSpeakerObserver")?;
            let opts = match opts {
                Some(t) => t,
                None => lua.create_table()?,
            };
            let p: ActiveSpeakerObserverOpts =
                parse(lua, Some(&opts), "createActiveSpeakerObserver")?;
            let interval = active_speaker::interval_from_ms(rounded(p.interval, 300));
            let router = this.0.id;
            let id =
                engine(|e| e.create_active_speaker_observer(&router, interval, Instant::now()))?;
            new_observer(lua, &this.0.room, id, ObserverType::ActiveSpeaker, &opts)
        },
    );
}

fn new_observer(
    lua: &Lua,
    room: &str,
    id: Uuid,
    kind: ObserverType,
    opts: &Table,
) -> mlua::Result<Value> {
    let app_data = match opts.get::<Option<Table>>("appData")? {
        Some(t) => t,
        None => lua.create_table()?,
    };
    let obj = Rc::new(ObserverObj {
        id,
        kind,
        room: room.to_owned(),
        app_data,
        closed: Cell::new(false),
        paused: Cell::new(false),
        handlers: RefCell::new(Vec::new()),
    });
    OBSERVERS.with(|o| o.borrow_mut().insert(id, obj.clone()));
    lua.create_userdata(LuaObserver(obj)).map(Value::UserData)
}

/// The `producerId` of an `{producerId = ...}` argument (a producer object is accepted too).
fn producer_arg(arg: Value) -> mlua::Result<Uuid> {
    match arg {
        Value::Table(t) => match t.get::<Value>("producerId")? {
            Value::String(s) => parse_id(&s.to_str()?, "producerId"),
            Value::Nil => Err(invalid("missing producerId")),
            v => Err(invalid(format!(
                "producerId must be a string, got {}",
                v.type_name()
            ))),
        },
        Value::UserData(u) => Ok(u.borrow::<LuaObj>()?.0.id),
        Value::String(s) => parse_id(&s.to_str()?, "producerId"),
        v => Err(invalid(format!(
            "expected {{producerId = ...}}, got {}",
            v.type_name()
        ))),
    }
}

impl UserData for LuaObserver {
    fn add_fields<F: UserDataFields<Self>>(fields: &mut F) {
        fields.add_field_method_get("id", |_, this| Ok(this.0.id.to_string()));
        fields.add_field_method_get("type", |_, this| Ok(this.0.kind.name()));
        fields.add_field_method_get("appData", |_, this| Ok(this.0.app_data.clone()));
        fields.add_field_method_get("closed", |_, this| Ok(this.0.closed.get()));
        fields.add_field_method_get("paused", |_, this| Ok(this.0.paused.get()));
        fields.add_field_method_get("objectType", |_, this| {
            Ok(match this.0.kind {
                ObserverType::AudioLevel => "audioLevelObserver",
                ObserverType::ActiveSpeaker => "activeSpeakerObserver",
            })
        });
    }

    fn add_methods<M: UserDataMethods<Self>>(methods: &mut M) {
        methods.add_meta_method(mlua::MetaMethod::ToString, |_, this, ()| {
            Ok(format!("{}Observer {}", this.0.kind.name(), this.0.id))
        });
        methods.add_method("addProducer", |_, this, arg: Value| {
            this.alive()?;
            let producer = producer_arg(arg)?;
            let id = this.0.id;
            engine(|e| e.observer_add_producer(&id, &producer, Instant::now()))
        });
        methods.add_method("removeProducer", |_, this, arg: Value| {
            this.alive()?;
            let producer = producer_arg(arg)?;
            let id = this.0.id;
            engine(|e| e.observer_remove_producer(&id, &producer, Instant::now()))
        });
        methods.add_method("pause", |_, this, ()| {
            this.alive()?;
            let id = this.0.id;
            engine(|e| e.pause_observer(&id, Instant::now()))?;
            this.0.paused.set(true);
            Ok(())
        });
        methods.add_method("resume", |_, this, ()| {
            this.alive()?;
            let id = this.0.id;
            engine(|e| e.resume_observer(&id, Instant::now()))?;
            this.0.paused.set(false);
            Ok(())
        });
        methods.add_method("close", |_, this, ()| {
            if this.0.closed.get() {
                return Ok(());
            }
            let id = this.0.id;
            remove(&id);
            // Already gone with its router: not an error for scripts.
            let _ = engine(|e| e.close_observer(&id, Instant::now()));
            Ok(())
        });
        methods.add_method("on", |_, this, (event, f): (String, Function)| {
            let allowed = this.0.kind.events();
            if !allowed.contains(&event.as_str()) {
                return Err(invalid(format!(
                    "a {} observer has no event {event:?}; events: {}",
                    this.0.kind.name(),
                    allowed.join(", ")
                )));
            }
            this.0.handlers.borrow_mut().push((event, f));
            Ok(())
        });
    }
}

impl LuaObserver {
    fn alive(&self) -> mlua::Result<()> {
        if self.0.closed.get() {
            return Err(invalid(format!(
                "{} observer {} is closed",
                self.0.kind.name(),
                self.0.id
            )));
        }
        Ok(())
    }
}

/// Forgets the observers of a closed room (its router closed them in the engine).
pub fn drop_room(room: &str) {
    OBSERVERS.with(|o| {
        o.borrow_mut().retain(|_, obj| {
            if obj.room == room {
                obj.closed.set(true);
                false
            } else {
                true
            }
        })
    });
}

/// The Lua producer object of a producer id, if scripts hold it.
fn producer_value(host: &Host, lua: &Lua, id: &Uuid) -> mlua::Result<Option<Value>> {
    match host.callbacks.get(id) {
        // The producer's own userdata (its appData and callbacks), not a new one.
        Some(o) => Ok(Some(o.to_lua(lua)?)),
        None => Ok(None),
    }
}

/// Handles observer events; returns false for the others.
pub fn on_event(host: &Rc<Host>, ev: &EngineEvent) -> bool {
    let EngineEvent::Observer(ev) = ev else {
        return false;
    };
    let lua = &host.lua;
    match ev {
        ObserverEvent::Volumes { observer, volumes } => {
            let Some(obj) = get(observer) else {
                return true;
            };
            run_handlers(host, &obj, "volumes", || {
                // [{producer = <producer>, volume = dBov}, ...], loudest first.
                let list = lua.create_table()?;
                for (pid, volume) in volumes {
                    let Some(producer) = producer_value(host, lua, pid)? else {
                        continue;
                    };
                    let entry = lua.create_table()?;
                    entry.set("producer", producer)?;
                    entry.set("volume", *volume)?;
                    list.push(entry)?;
                }
                list.into_lua_multi(lua)
            });
        }
        ObserverEvent::Silence { observer } => {
            if let Some(obj) = get(observer) {
                run_handlers(host, &obj, "silence", || ().into_lua_multi(lua));
            }
        }
        ObserverEvent::DominantSpeaker { observer, producer } => {
            let Some(obj) = get(observer) else {
                return true;
            };
            run_handlers(host, &obj, "dominantspeaker", || {
                let t = lua.create_table()?;
                if let Some(p) = producer_value(host, lua, producer)? {
                    t.set("producer", p)?;
                }
                t.into_lua_multi(lua)
            });
        }
        ObserverEvent::RouterClosed { observer } => {
            if let Some(obj) = remove(observer) {
                run_handlers(host, &obj, "routerclose", || ().into_lua_multi(lua));
            }
        }
    }
    true
}

/// Runs each `event` callback of `obj` in its own coroutine with the instruction budget.
fn run_handlers(
    host: &Rc<Host>,
    obj: &ObserverObj,
    event: &str,
    args: impl FnOnce() -> mlua::Result<mlua::MultiValue>,
) {
    let handlers: Vec<Function> = obj
        .handlers
        .borrow()
        .iter()
        .filter(|(n, _)| n == event)
        .map(|(_, f)| f.clone())
        .collect();
    let what = format!(
        "{} observer {} event {event} (room {})",
        obj.kind.name(),
        obj.id,
        obj.room
    );
    runner::spawn_each(host, &what, handlers, args);
}
