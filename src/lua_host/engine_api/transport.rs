//! WebRtcTransports and PlainTransports: what both have (bitrate caps, `produce`, `consume`,
//! stats and dump, [`add_common_methods`]), then each kind's own `connect` and fields; ICE
//! restart and SCTP data channels (`produceData`, `consumeData`) are WebRtcTransport methods.

use std::rc::Rc;
use std::time::Instant;

use mlua::{LuaSerdeExt, Table, UserDataFields, UserDataMethods, Value};
use ringsfu_core::api::{DtlsParameters, PlainConnectParams};
use ringsfu_core::engine::{ConsumeOptions, ProduceOptions};

use super::super::error::invalid;
use super::super::options::{parse, ConsumeOpts, ProduceOpts};
use super::object::{add_info_fields, Handle, Kind, Obj, Tag};
use super::{
    close_in_engine, created_id, data, engine, from_lua, json_of, parse_id, LuaConsumer,
    LuaProducer,
};

/// The WebRtcTransport kind.
pub enum WebRtcTransport {}

/// The PlainTransport kind.
pub enum PlainTransport {}

impl Kind for WebRtcTransport {
    const TAG: Tag = Tag::WebRtcTransport;

    fn add_fields<F: UserDataFields<Handle<Self>>>(fields: &mut F) {
        add_info_fields(
            fields,
            &[
                "iceParameters",
                "iceCandidates",
                "dtlsParameters",
                "sctpParameters",
            ],
        );
    }

    fn add_methods<M: UserDataMethods<Handle<Self>>>(methods: &mut M) {
        add_common_methods(methods);
        // transport:connect{dtlsParameters}: the remote DTLS parameters.
        methods.add_method("connect", |lua, this, params: Table| {
            let dtls: DtlsParameters =
                from_lua(lua, params.get("dtlsParameters")?, "dtlsParameters")?;
            let id = this.id();
            engine(|e| e.connect_webrtc_transport(&id, &dtls, Instant::now()))
        });
        methods.add_method("restartIce", |lua, this, ()| {
            let id = this.id();
            lua.to_value(&engine(|e| e.restart_ice(&id, Instant::now()))?)
        });
        methods.add_method("produceData", |lua, this, opts: Table| {
            data::produce_data(lua, data::On::Sctp(&this.0), &opts)
        });
        methods.add_method("consumeData", |lua, this, opts: Table| {
            data::consume_data(lua, data::On::Sctp(&this.0), &opts)
        });
    }

    fn close(obj: &Rc<Obj>) -> mlua::Result<()> {
        close_transport(obj)
    }
}

impl Kind for PlainTransport {
    const TAG: Tag = Tag::PlainTransport;

    fn add_fields<F: UserDataFields<Handle<Self>>>(fields: &mut F) {
        add_info_fields(fields, &["tuple", "rtcpTuple", "srtpParameters"]);
    }

    fn add_methods<M: UserDataMethods<Handle<Self>>>(methods: &mut M) {
        add_common_methods(methods);
        // transport:connect{ip, port, rtcpPort?, srtpParameters?}: returns the transport data.
        methods.add_method("connect", |lua, this, params: Table| {
            let p: PlainConnectParams = from_lua(lua, Value::Table(params), "params")?;
            let id = this.id();
            lua.to_value(&engine(|e| {
                e.connect_plain_transport(&id, &p, Instant::now())
            })?)
        });
    }

    fn close(obj: &Rc<Obj>) -> mlua::Result<()> {
        close_transport(obj)
    }
}

fn close_transport(obj: &Obj) -> mlua::Result<()> {
    let id = obj.id;
    close_in_engine(|e| e.close_transport(&id, Instant::now()))
}

/// The methods every network transport has.
fn add_common_methods<K: Kind, M: UserDataMethods<Handle<K>>>(methods: &mut M) {
    // transport:setMaxOutgoingBitrate(bps): caps the send-side estimate the layers of this
    // transport's consumers are fitted under (0 removes it; below 30000 raises).
    methods.add_method("setMaxOutgoingBitrate", |_, this, bps: i64| {
        if bps < 0 {
            return Err(invalid(format!(
                "setMaxOutgoingBitrate: negative bitrate {bps}"
            )));
        }
        let id = this.id();
        engine(|e| e.set_max_outgoing_bitrate(&id, bps as u64, Instant::now()))
    });
    // transport:setMaxIncomingBitrate(bps): REMB cap announced to the remote (0 removes it).
    methods.add_method("setMaxIncomingBitrate", |_, this, bps: i64| {
        let bps = u64::try_from(bps).map_err(|_| invalid(format!("wrong bitrate {bps}")))?;
        let id = this.id();
        engine(|e| e.set_max_incoming_bitrate(&id, bps, Instant::now()))
    });
    methods.add_method("produce", |lua, this, opts: Table| {
        let o: ProduceOpts = parse(lua, Some(&opts), "produce")?;
        let kind = o.kind.ok_or_else(|| invalid("missing kind"))?;
        let rtp_parameters = o
            .rtp_parameters
            .ok_or_else(|| invalid("missing rtpParameters"))?;
        let paused = o.paused.unwrap_or(false);
        let options = ProduceOptions {
            kind,
            rtp_parameters,
            paused,
        };
        let id = this.id();
        let info = json_of(&engine(|e| e.produce(&id, options, Instant::now()))?)?;
        let obj = this.0.child(Tag::Producer, created_id(&info)?, info);
        obj.paused.set(paused);
        LuaProducer::register(lua, obj, opts.get("appData")?)
    });
    methods.add_method("consume", |lua, this, opts: Table| {
        let o: ConsumeOpts = parse(lua, Some(&opts), "consume")?;
        let producer_id = o.producer_id.ok_or_else(|| invalid("missing producerId"))?;
        let options = ConsumeOptions {
            producer_id: parse_id(&producer_id, "producerId")?,
            rtp_capabilities: o
                .rtp_capabilities
                .ok_or_else(|| invalid("missing rtpCapabilities"))?,
            paused: o.paused.unwrap_or(false),
            enable_rtx: o.enable_rtx.unwrap_or(false),
        };
        let paused = options.paused;
        // `offerer = true`: rtpCapabilities come from an SDP offer (WHEP, ringsfu.sdp) and the
        // consumer uses that offer's payload types, extension ids and `mid`.
        let offerer = o.offerer.unwrap_or(false);
        let mid = o.mid;
        let id = this.id();
        let info = engine(|e| {
            if offerer {
                e.consume_for_offerer(&id, options, mid, Instant::now())
            } else {
                e.consume(&id, options, Instant::now())
            }
        })?;
        let producer_paused = info.producer_paused;
        let info = json_of(&info)?;
        let obj = this.0.child(Tag::Consumer, created_id(&info)?, info);
        obj.paused.set(paused);
        obj.producer_paused.set(producer_paused);
        LuaConsumer::register(lua, obj, opts.get("appData")?)
    });
    methods.add_method("getStats", |lua, this, ()| {
        let id = this.id();
        lua.to_value(&engine(|e| e.transport_stats(&id, Instant::now()))?)
    });
    methods.add_method("dump", |lua, this, ()| {
        let id = this.id();
        lua.to_value(&engine(|e| e.transport_dump(&id))?)
    });
}
