//! RTP observers as Lua sees them: `router:createAudioLevelObserver{}` and
//! `router:createActiveSpeakerObserver{}` ([`super::router`]) return observer objects with
//! mediasoup's methods (`addProducer{producerId}`, `removeProducer{producerId}`, `pause()`,
//! `resume()`, `close()`) and events (`volumes`, `silence`, `dominantspeaker`, `routerclose`,
//! delivered by [`super::events`]).
//!
//! The observers themselves run in the engine (levels read on the packet path, evaluation on
//! the engine's timers); Lua only receives their events, at most once per interval per
//! observer: nothing here runs per packet.

use std::rc::Rc;
use std::time::Instant;

use mlua::{UserDataFields, UserDataMethods, Value};
use uuid::Uuid;

use super::super::error::invalid;
use super::object::{add_info_fields, add_pause_methods, Handle, Kind, Obj, Tag};
use super::{close_in_engine, engine, parse_id, LuaProducer};

/// Both observers have the same fields and methods; only their tag (events, objectType)
/// differs.
macro_rules! observer_kind {
    ($(#[$doc:meta])* $kind:ident, $tag:expr) => {
        $(#[$doc])*
        pub enum $kind {}

        impl Kind for $kind {
            const TAG: Tag = $tag;

            fn add_fields<F: UserDataFields<Handle<Self>>>(fields: &mut F) {
                add_observer_fields(fields);
            }

            fn add_methods<M: UserDataMethods<Handle<Self>>>(methods: &mut M) {
                add_observer_methods(methods);
            }

            fn close(obj: &Rc<Obj>) -> mlua::Result<()> {
                let id = obj.id;
                close_in_engine(|e| e.close_observer(&id, Instant::now()))
            }
        }
    };
}

observer_kind!(
    /// The AudioLevelObserver kind.
    AudioLevelObserver,
    Tag::AudioLevelObserver
);
observer_kind!(
    /// The ActiveSpeakerObserver kind.
    ActiveSpeakerObserver,
    Tag::ActiveSpeakerObserver
);

/// `observer.type` (`"audiolevel"` / `"activespeaker"`) and `observer.paused`.
fn add_observer_fields<K: Kind, F: UserDataFields<Handle<K>>>(fields: &mut F) {
    add_info_fields(fields, &["type"]);
    fields.add_field_method_get("paused", |_, this| Ok(this.0.paused.get()));
}

/// What both observers do: watch producers of their router, pause and resume.
fn add_observer_methods<K: Kind, M: UserDataMethods<Handle<K>>>(methods: &mut M) {
    methods.add_method("addProducer", |_, this, arg: Value| {
        this.alive()?;
        let producer = producer_arg(arg)?;
        let id = this.id();
        engine(|e| e.observer_add_producer(&id, &producer, Instant::now()))
    });
    methods.add_method("removeProducer", |_, this, arg: Value| {
        this.alive()?;
        let producer = producer_arg(arg)?;
        let id = this.id();
        engine(|e| e.observer_remove_producer(&id, &producer, Instant::now()))
    });
    add_pause_methods(methods, |e, id, paused| {
        if paused {
            e.pause_observer(id, Instant::now())
        } else {
            e.resume_observer(id, Instant::now())
        }
    });
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
        Value::UserData(u) => match u.borrow::<LuaProducer>() {
            Ok(p) => Ok(p.id()),
            Err(_) => Err(invalid("expected {producerId = ...} or a producer")),
        },
        Value::String(s) => parse_id(&s.to_str()?, "producerId"),
        v => Err(invalid(format!(
            "expected {{producerId = ...}}, got {}",
            v.type_name()
        ))),
    }
}
