//! Producers and consumers: pause/resume, stats, and the consumer's layer, priority and
//! keyframe controls.

use std::rc::Rc;
use std::time::Instant;

use mlua::{LuaSerdeExt, Table, UserDataFields, UserDataMethods};

use super::super::error::invalid;
use super::object::{add_info_fields, add_pause_methods, Handle, Kind, Obj, Tag};
use super::{close_in_engine, engine};

/// The producer kind.
pub enum Producer {}

/// The consumer kind.
pub enum Consumer {}

impl Kind for Producer {
    const TAG: Tag = Tag::Producer;

    fn add_fields<F: UserDataFields<Handle<Self>>>(fields: &mut F) {
        add_info_fields(fields, &["kind", "type", "rtpParameters"]);
        fields.add_field_method_get("paused", |_, this| Ok(this.0.paused.get()));
    }

    fn add_methods<M: UserDataMethods<Handle<Self>>>(methods: &mut M) {
        add_pause_methods(methods, |e, id, paused| {
            if paused {
                e.pause_producer(id, Instant::now())
            } else {
                e.resume_producer(id, Instant::now())
            }
        });
        methods.add_method("getStats", |lua, this, ()| {
            let id = this.id();
            lua.to_value(&engine(|e| e.producer_stats(&id, Instant::now()))?)
        });
    }

    fn close(obj: &Rc<Obj>) -> mlua::Result<()> {
        let id = obj.id;
        close_in_engine(|e| e.close_producer(&id, Instant::now()))
    }
}

impl Kind for Consumer {
    const TAG: Tag = Tag::Consumer;

    fn add_fields<F: UserDataFields<Handle<Self>>>(fields: &mut F) {
        add_info_fields(fields, &["kind", "type", "producerId", "rtpParameters"]);
        fields.add_field_method_get("paused", |_, this| Ok(this.0.paused.get()));
        fields.add_field_method_get("producerPaused", |_, this| Ok(this.0.producer_paused.get()));
    }

    fn add_methods<M: UserDataMethods<Handle<Self>>>(methods: &mut M) {
        add_pause_methods(methods, |e, id, paused| {
            if paused {
                e.pause_consumer(id, Instant::now())
            } else {
                e.resume_consumer(id, Instant::now())
            }
        });
        methods.add_method("getStats", |lua, this, ()| {
            let id = this.id();
            lua.to_value(&engine(|e| e.consumer_stats(&id, Instant::now()))?)
        });
        methods.add_method("dump", |lua, this, ()| {
            let id = this.id();
            lua.to_value(&engine(|e| e.consumer_dump(&id))?)
        });
        methods.add_method("setPreferredLayers", |_, this, layers: Table| {
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
            let id = this.id();
            engine(|e| e.set_consumer_preferred_layers(&id, spatial, temporal, Instant::now()))
        });
        methods.add_method("setPriority", |_, this, priority: i64| {
            let p = u8::try_from(priority)
                .ok()
                .filter(|p| *p > 0)
                .ok_or_else(|| invalid("wrong priority"))?;
            let id = this.id();
            engine(|e| e.set_consumer_priority(&id, p, Instant::now()))
        });
        methods.add_method("requestKeyFrame", |_, this, ()| {
            let id = this.id();
            engine(|e| e.request_consumer_key_frame(&id, Instant::now()))
        });
    }

    fn close(obj: &Rc<Obj>) -> mlua::Result<()> {
        let id = obj.id;
        close_in_engine(|e| e.close_consumer(&id, Instant::now()))
    }
}
