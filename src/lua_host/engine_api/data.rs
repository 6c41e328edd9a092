//! Data channels as Lua sees them: data producers and data consumers on a WebRtcTransport's SCTP
//! association, and direct transports (in-process, no network) whose data producers scripts
//! `send()` on and whose data consumers hand every message to a Lua callback — the demo's bot.
//!
//! A direct transport exists only here: the engine knows direct data producers and consumers
//! by router, so the host groups them (the transport's `children`), enforces the transport's
//! `maxMessageSize`, and closes them with the transport or the room ([`close_direct`]).

use std::rc::Rc;
use std::time::Instant;

use mlua::{Lua, LuaSerdeExt, Table, UserDataFields, UserDataMethods, Value};
use ringsfu_core::data::DataMessage;
use ringsfu_core::sctp::Ppid;
use serde_json::{json, Value as Json};

use super::super::error::invalid;
use super::super::options::{parse, ConsumeDataOpts, ProduceDataOpts};
use super::object::{add_info_fields, add_pause_methods, run_handlers, Handle, Kind, Obj, Tag};
use super::{
    close_in_engine, created_id, engine, host, json_of, opts_or_empty, parse_id, LuaDataConsumer,
    LuaDataProducer,
};

/// The direct transport kind.
pub enum DirectTransport {}

/// The data producer kind (sctp or direct).
pub enum DataProducer {}

/// The data consumer kind (sctp or direct).
pub enum DataConsumer {}

/// Where a data producer or consumer is created.
pub enum On<'a> {
    /// On this WebRtcTransport's SCTP association.
    Sctp(&'a Obj),
    /// On this direct transport.
    Direct(&'a Obj),
}

impl Kind for DirectTransport {
    const TAG: Tag = Tag::DirectTransport;

    fn add_fields<F: UserDataFields<Handle<Self>>>(fields: &mut F) {
        add_info_fields(fields, &["maxMessageSize"]);
    }

    fn add_methods<M: UserDataMethods<Handle<Self>>>(methods: &mut M) {
        methods.add_method("produceData", |lua, this, opts: Option<Table>| {
            this.alive()?;
            produce_data(lua, On::Direct(&this.0), &opts_or_empty(lua, opts)?)
        });
        methods.add_method("consumeData", |lua, this, opts: Table| {
            this.alive()?;
            consume_data(lua, On::Direct(&this.0), &opts)
        });
        methods.add_method("getStats", |lua, this, ()| {
            let timestamp = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_millis() as u64)
                .unwrap_or(0);
            lua.to_value(&json!([{
                "type": "direct-transport",
                "transportId": this.id().to_string(),
                "timestamp": timestamp,
            }]))
        });
    }

    /// Closes its data producers and consumers, whose `transportclose` callbacks run (as for a
    /// closed WebRtcTransport), then runs its own `close` callbacks.
    fn close(obj: &Rc<Obj>) -> mlua::Result<()> {
        let host = host()?;
        let children = std::mem::take(&mut *obj.children.borrow_mut());
        let kids: Vec<Rc<Obj>> = children
            .iter()
            .filter_map(|id| host.objects.get(id))
            .collect();
        for k in &kids {
            run_handlers(&host, k, "transportclose", || Ok(()));
            host.objects.forget(&k.id);
        }
        run_handlers(&host, obj, "close", || Ok(()));
        close_direct(&kids);
        Ok(())
    }
}

impl Kind for DataProducer {
    const TAG: Tag = Tag::DataProducer;

    fn add_fields<F: UserDataFields<Handle<Self>>>(fields: &mut F) {
        add_info_fields(
            fields,
            &["type", "label", "protocol", "sctpStreamParameters"],
        );
        fields.add_field_method_get("paused", |_, this| Ok(this.0.paused.get()));
    }

    fn add_methods<M: UserDataMethods<Handle<Self>>>(methods: &mut M) {
        add_pause_methods(methods, |e, id, paused| {
            e.set_data_producer_paused(id, paused, Instant::now())
        });
        // dataProducer:send(data, ppid = 51): direct data producers only (the engine refuses
        // the others).
        methods.add_method(
            "send",
            |_, this, (data, ppid): (mlua::LuaString, Option<u32>)| {
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
                let id = this.id();
                engine(|e| e.send_data(&id, DataMessage { ppid, data }, Instant::now()))
            },
        );
        methods.add_method("getStats", |lua, this, ()| {
            let id = this.id();
            lua.to_value(&json_of(&engine(|e| {
                e.data_producer_stats(&id, Instant::now())
            })?)?)
        });
    }

    fn close(obj: &Rc<Obj>) -> mlua::Result<()> {
        let id = obj.id;
        close_in_engine(|e| e.close_data_producer(&id, Instant::now()))
    }
}

impl Kind for DataConsumer {
    const TAG: Tag = Tag::DataConsumer;

    fn add_fields<F: UserDataFields<Handle<Self>>>(fields: &mut F) {
        add_info_fields(
            fields,
            &[
                "type",
                "label",
                "protocol",
                "sctpStreamParameters",
                "dataProducerId",
            ],
        );
        fields.add_field_method_get("paused", |_, this| Ok(this.0.paused.get()));
    }

    fn add_methods<M: UserDataMethods<Handle<Self>>>(methods: &mut M) {
        add_pause_methods(methods, |e, id, paused| {
            e.set_data_consumer_paused(id, paused, Instant::now())
        });
        methods.add_method("getStats", |lua, this, ()| {
            let id = this.id();
            lua.to_value(&json_of(&engine(|e| {
                e.data_consumer_stats(&id, Instant::now())
            })?)?)
        });
    }

    fn close(obj: &Rc<Obj>) -> mlua::Result<()> {
        let id = obj.id;
        close_in_engine(|e| e.close_data_consumer(&id, Instant::now()))
    }
}

/// `transport:produceData{...}` and `directTransport:produceData{...}`.
pub fn produce_data(lua: &Lua, on: On<'_>, opts: &Table) -> mlua::Result<Value> {
    let o: ProduceDataOpts = parse(lua, Some(opts), "produceData")?;
    let (parent, transport, params) = match on {
        On::Sctp(t) => {
            let params = o
                .sctp_stream_parameters
                .ok_or_else(|| invalid("missing sctpStreamParameters"))?;
            (t, Some(t.id), Some(params))
        }
        On::Direct(t) => (t, None, None),
    };
    let label = o.label.unwrap_or_default();
    let protocol = o.protocol.unwrap_or_default();
    let paused = o.paused.unwrap_or(false);
    let router = parent.router;
    let info = engine(|e| {
        e.produce_data(
            &router,
            transport.as_ref(),
            params,
            &label,
            &protocol,
            paused,
            Instant::now(),
        )
    })?;
    let obj = new_data_obj(on, Tag::DataProducer, json_of(&info)?, paused)?;
    LuaDataProducer::register(lua, obj, opts.get("appData")?)
}

/// `transport:consumeData{...}` and `directTransport:consumeData{...}`.
pub fn consume_data(lua: &Lua, on: On<'_>, opts: &Table) -> mlua::Result<Value> {
    let o: ConsumeDataOpts = parse(lua, Some(opts), "consumeData")?;
    let dp = o
        .data_producer_id
        .ok_or_else(|| invalid("missing dataProducerId"))?;
    let dp = parse_id(&dp, "dataProducerId")?;
    let paused = o.paused.unwrap_or(false);
    let transport = match on {
        On::Sctp(t) => Some(t.id),
        On::Direct(_) => None,
    };
    let info = engine(|e| {
        e.consume_data(
            transport.as_ref(),
            &dp,
            o.ordered,
            o.max_packet_life_time,
            o.max_retransmits,
            paused,
            Instant::now(),
        )
    })?;
    let obj = new_data_obj(on, Tag::DataConsumer, json_of(&info)?, paused)?;
    LuaDataConsumer::register(lua, obj, opts.get("appData")?)
}

/// The object of a data producer or consumer the engine just created; a direct one joins its
/// transport's children and takes its `maxMessageSize`.
fn new_data_obj(on: On<'_>, tag: Tag, info: Json, paused: bool) -> mlua::Result<Obj> {
    let id = created_id(&info)?;
    let obj = match on {
        On::Sctp(t) => t.child(tag, id, info),
        On::Direct(t) => {
            t.children.borrow_mut().push(id);
            let mut obj = t.child(tag, id, info);
            obj.parent = Some(t.id);
            obj.max_message_size = t.max_message_size;
            obj
        }
    };
    obj.paused.set(paused);
    Ok(obj)
}

/// Closes the direct data producers and consumers among `objs` (already forgotten) in the
/// engine, consumers first so closing a producer does not report them as `dataproducerclose`.
/// Closing a router does not reach them: they belong to no transport.
pub fn close_direct(objs: &[Rc<Obj>]) {
    for tag in [Tag::DataConsumer, Tag::DataProducer] {
        for o in objs.iter().filter(|o| o.tag == tag && o.parent.is_some()) {
            let id = o.id;
            let r = match tag {
                Tag::DataConsumer => {
                    close_in_engine(|e| e.close_data_consumer(&id, Instant::now()))
                }
                _ => close_in_engine(|e| e.close_data_producer(&id, Instant::now())),
            };
            if let Err(e) = r {
                log::debug!("closing {}: {e}", o.name());
            }
        }
    }
}
