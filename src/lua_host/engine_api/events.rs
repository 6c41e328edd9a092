//! Engine events to script callbacks, on the worker thread: each event names one object and
//! one of its events ([`target`]); the object's state is updated, an event that closed it
//! makes the registry forget it, and its callbacks run each in its own coroutine with the
//! event's arguments ([`event_args`]).

use std::rc::Rc;

use mlua::{IntoLuaMulti, Lua, LuaSerdeExt, MultiValue, Value};
use ringsfu_core::engine::EngineEvent;
use ringsfu_core::observer::registry::ObserverEvent;
use serde_json::{json, Value as Json};
use uuid::Uuid;

use super::super::Host;
use super::object::{run_handlers, Obj, Tag};
use super::LuaProducer;

/// The object an event is about, the script event it is, and whether it closed the object.
fn target(ev: &EngineEvent) -> Option<(Uuid, &'static str, bool)> {
    use EngineEvent as E;
    Some(match ev {
        E::IceStateChange { transport, .. } => (*transport, "icestatechange", false),
        E::IceSelectedTupleChange { transport, .. } => {
            (*transport, "iceselectedtuplechange", false)
        }
        E::DtlsStateChange { transport, .. } => (*transport, "dtlsstatechange", false),
        E::SctpStateChange { transport, .. } => (*transport, "sctpstatechange", false),
        E::PlainTupleChange { transport, .. } => (*transport, "tuple", false),
        E::TransportBwe { transport, .. } => (*transport, "bwe", false),
        E::TransportClosed { transport } => (*transport, "close", true),
        E::ProducerTransportClosed { producer } => (*producer, "transportclose", true),
        E::ProducerScore { producer, .. } => (*producer, "score", false),
        E::ConsumerProducerClosed { consumer, .. } => (*consumer, "producerclose", true),
        E::ConsumerTransportClosed { consumer } => (*consumer, "transportclose", true),
        E::ConsumerProducerPause { consumer } => (*consumer, "producerpause", false),
        E::ConsumerProducerResume { consumer } => (*consumer, "producerresume", false),
        E::ConsumerLayersChange { consumer, .. } => (*consumer, "layerschange", false),
        E::ConsumerScore { consumer, .. } => (*consumer, "score", false),
        E::DataConsumerMessage { data_consumer, .. } => (*data_consumer, "message", false),
        E::DataConsumerDataProducerClosed { data_consumer, .. } => {
            (*data_consumer, "dataproducerclose", true)
        }
        E::DataConsumerTransportClosed { data_consumer } => {
            (*data_consumer, "transportclose", true)
        }
        E::DataProducerTransportClosed { data_producer } => {
            (*data_producer, "transportclose", true)
        }
        E::DataProducerClosedByPeer { data_producer } => (*data_producer, "peerclose", true),
        E::Observer(o) => match o {
            ObserverEvent::Volumes { observer, .. } => (*observer, "volumes", false),
            ObserverEvent::Silence { observer } => (*observer, "silence", false),
            ObserverEvent::DominantSpeaker { observer, .. } => {
                (*observer, "dominantspeaker", false)
            }
            ObserverEvent::RouterClosed { observer } => (*observer, "routerclose", true),
        },
        #[allow(unreachable_patterns)]
        _ => return None,
    })
}

/// Engine observer (on the worker thread): updates object state, then runs the callbacks.
pub fn on_event(ev: &EngineEvent) {
    let Some(host) = Host::current() else { return };
    let Some((id, name, gone)) = target(ev) else {
        return;
    };
    let Some(obj) = host.objects.get(&id) else {
        return;
    };
    match ev {
        EngineEvent::ConsumerProducerPause { .. } => obj.producer_paused.set(true),
        EngineEvent::ConsumerProducerResume { .. } => obj.producer_paused.set(false),
        // A direct data consumer drops what its transport's maxMessageSize does not allow.
        EngineEvent::DataConsumerMessage { message, .. }
            if message.data.len() > obj.max_message_size =>
        {
            log::debug!(
                "{}: message of {} bytes dropped (maxMessageSize {})",
                obj.name(),
                message.data.len(),
                obj.max_message_size
            );
            return;
        }
        _ => {}
    }
    // Read before a closing event lets go of the object's userdata (and its callbacks).
    run_handlers(&host, &obj, name, || event_args(&host, ev, &obj));
    if gone {
        host.objects.forget(&id);
    }
}

/// The callback arguments of an event.
fn event_args(host: &Rc<Host>, ev: &EngineEvent, obj: &Obj) -> mlua::Result<MultiValue> {
    let lua = &host.lua;
    match ev {
        EngineEvent::IceStateChange { state, .. } => state.as_str().into_lua_multi(lua),
        EngineEvent::IceSelectedTupleChange { tuple, .. } => lua
            .to_value(&ringsfu_core::transport::tuple_info(tuple, None))?
            .into_lua_multi(lua),
        EngineEvent::DtlsStateChange { state, reason, .. } => {
            (state.as_str(), reason.clone()).into_lua_multi(lua)
        }
        EngineEvent::SctpStateChange { state, .. } => state.as_str().into_lua_multi(lua),
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
        EngineEvent::ProducerScore { scores, .. } => {
            let list: Vec<Json> = scores
                .as_slice()
                .iter()
                .map(|e| score_entry(&obj.info, e.encoding_idx, e.ssrc, e.score))
                .collect();
            lua.to_value(&list)?.into_lua_multi(lua)
        }
        // {score, producerScore, producerScores}.
        EngineEvent::ConsumerScore { score, .. } => lua.to_value(score)?.into_lua_multi(lua),
        // (bytes as a Lua string, ppid).
        EngineEvent::DataConsumerMessage { message, .. } => {
            (lua.create_string(&message.data)?, message.ppid.as_u32()).into_lua_multi(lua)
        }
        EngineEvent::Observer(o) => observer_args(host, lua, o),
        _ => ().into_lua_multi(lua),
    }
}

/// mediasoup's producer score entry `{encodingIdx, ssrc, rid?, score}`: the engine's entries
/// carry no rid (no allocation there), so it comes from the producer's rtpParameters.
fn score_entry(info: &Json, encoding_idx: usize, ssrc: u32, score: u8) -> Json {
    let mut v = json!({"encodingIdx": encoding_idx, "ssrc": ssrc, "score": score});
    if let Some(rid) = info
        .pointer("/rtpParameters/encodings")
        .and_then(|x| x.get(encoding_idx))
        .and_then(|x| x.get("rid"))
        .filter(|r| r.is_string())
    {
        v["rid"] = rid.clone();
    }
    v
}

/// Observer event arguments: `volumes` gets `{{producer = <producer>, volume = dBov}, ...}`
/// (loudest first), `dominantspeaker` `{producer = <producer>}`, the others nothing.
fn observer_args(host: &Host, lua: &Lua, ev: &ObserverEvent) -> mlua::Result<MultiValue> {
    match ev {
        ObserverEvent::Volumes { volumes, .. } => {
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
        }
        ObserverEvent::DominantSpeaker { producer, .. } => {
            let t = lua.create_table()?;
            if let Some(p) = producer_value(host, lua, producer)? {
                t.set("producer", p)?;
            }
            t.into_lua_multi(lua)
        }
        ObserverEvent::Silence { .. } | ObserverEvent::RouterClosed { .. } => {
            ().into_lua_multi(lua)
        }
    }
}

/// The producer's own userdata (its appData and callbacks), if scripts hold it.
fn producer_value(host: &Host, lua: &Lua, id: &Uuid) -> mlua::Result<Option<Value>> {
    match host.objects.get(id) {
        Some(o) if o.tag == Tag::Producer => Ok(Some(LuaProducer::value(lua, &o)?)),
        _ => Ok(None),
    }
}
