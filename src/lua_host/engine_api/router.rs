//! A room's router (`room.router`): RTP capabilities, and the factory of everything else a
//! script creates: WebRTC, plain and direct transports, audio level and active speaker
//! observers.

use std::rc::Rc;
use std::time::Duration;
use std::time::Instant;

use mlua::{LuaSerdeExt, Table, UserDataMethods, Value};
use ringsfu_core::engine::WebRtcTransportOptions;
use ringsfu_core::io::SocketId;
use ringsfu_core::observer::active_speaker;
use ringsfu_core::observer::audio_level::AudioLevelOptions;
use ringsfu_core::rtp_parameters::RtpCapabilities;
use ringsfu_core::worker::WorkerContext;
use serde_json::{json, Value as Json};
use uuid::Uuid;

use super::super::error::{engine_error, internal, invalid};
use super::super::options::{
    parse, rounded, ActiveSpeakerObserverOpts, AudioLevelObserverOpts, DirectTransportOpts,
    PlainTransportOpts, WebRtcTransportOpts,
};
use super::object::{Handle, Kind, Obj, Tag};
use super::{
    close_in_engine, created_id, ctx, engine, from_lua, json_of, opts_or_empty, parse_id,
    LuaActiveSpeakerObserver, LuaAudioLevelObserver, LuaDirectTransport, LuaPlainTransport,
    LuaWebRtcTransport,
};

/// Default `maxMessageSize` of a direct transport (mediasoup's default).
pub const DEFAULT_DIRECT_MAX_MESSAGE_SIZE: usize = 262_144;

/// The router kind.
pub enum Router {}

impl Kind for Router {
    const TAG: Tag = Tag::Router;

    fn add_methods<M: UserDataMethods<Handle<Self>>>(methods: &mut M) {
        methods.add_method("rtpCapabilities", |lua, this, ()| {
            let id = this.id();
            let caps = engine(|e| {
                e.router_rtp_capabilities(&id)
                    .map(|c| serde_json::to_value(c).unwrap_or(Json::Null))
            })?;
            lua.to_value(&caps)
        });
        methods.add_method("canConsume", |lua, _, (producer, caps): (String, Value)| {
            let producer = parse_id(&producer, "producerId")?;
            let caps: RtpCapabilities = from_lua(lua, caps, "rtpCapabilities")?;
            Ok(engine(|e| e.can_consume(&producer, &caps)).unwrap_or(false))
        });
        methods.add_method("createWebRtcTransport", |lua, this, opts: Option<Table>| {
            let opts = opts_or_empty(lua, opts)?;
            let options = webrtc_options(parse(lua, Some(&opts), "createWebRtcTransport")?)?;
            let router = this.id();
            let info = json_of(&engine(|e| {
                e.create_webrtc_transport(&router, options, Instant::now())
            })?)?;
            let obj = this.0.child(Tag::WebRtcTransport, created_id(&info)?, info);
            LuaWebRtcTransport::register(lua, obj, opts.get("appData")?)
        });
        methods.add_method("createPlainTransport", |lua, this, opts: Option<Table>| {
            let opts = opts_or_empty(lua, opts)?;
            let o: PlainTransportOpts = parse(lua, Some(&opts), "createPlainTransport")?;
            let info = create_plain_transport(this.id(), o)?;
            let obj = this.0.child(Tag::PlainTransport, created_id(&info)?, info);
            LuaPlainTransport::register(lua, obj, opts.get("appData")?)
        });
        methods.add_method("createDirectTransport", |lua, this, opts: Option<Table>| {
            let opts = opts_or_empty(lua, opts)?;
            let o: DirectTransportOpts = parse(lua, Some(&opts), "createDirectTransport")?;
            let max = o
                .max_message_size
                .unwrap_or(DEFAULT_DIRECT_MAX_MESSAGE_SIZE as i64);
            let max = usize::try_from(max)
                .ok()
                .filter(|m| *m > 0)
                .ok_or_else(|| invalid(format!("wrong maxMessageSize {max}")))?;
            // A direct transport exists only in the host: the engine knows direct data
            // producers and consumers by router.
            let id = Uuid::new_v4();
            let info = json!({ "id": id.to_string(), "maxMessageSize": max });
            let mut obj = this.0.child(Tag::DirectTransport, id, info);
            obj.max_message_size = max;
            LuaDirectTransport::register(lua, obj, opts.get("appData")?)
        });
        methods.add_method(
            "createAudioLevelObserver",
            |lua, this, opts: Option<Table>| {
                let opts = opts_or_empty(lua, opts)?;
                let p: AudioLevelObserverOpts =
                    parse(lua, Some(&opts), "createAudioLevelObserver")?;
                let o = AudioLevelOptions::new(
                    rounded(p.max_entries, 1),
                    rounded(p.threshold, -80),
                    rounded(p.interval, 1000),
                )
                .map_err(|e| invalid(e.to_string()))?;
                let router = this.id();
                let id = engine(|e| e.create_audio_level_observer(&router, o, Instant::now()))?;
                let info = json!({ "id": id.to_string(), "type": "audiolevel" });
                let obj = this.0.child(Tag::AudioLevelObserver, id, info);
                LuaAudioLevelObserver::register(lua, obj, opts.get("appData")?)
            },
        );
        methods.add_method(
            "createActiveSpeakerObserver",
            |lua, this, opts: Option<Table>| {
                let opts = opts_or_empty(lua, opts)?;
                let p: ActiveSpeakerObserverOpts =
                    parse(lua, Some(&opts), "createActiveSpeakerObserver")?;
                let interval = active_speaker::interval_from_ms(rounded(p.interval, 300));
                let router = this.id();
                let id = engine(|e| {
                    e.create_active_speaker_observer(&router, interval, Instant::now())
                })?;
                let info = json!({ "id": id.to_string(), "type": "activespeaker" });
                let obj = this.0.child(Tag::ActiveSpeakerObserver, id, info);
                LuaActiveSpeakerObserver::register(lua, obj, opts.get("appData")?)
            },
        );
    }

    fn close(obj: &Rc<Obj>) -> mlua::Result<()> {
        let id = obj.id;
        close_in_engine(|e| e.close_router(&id, Instant::now()))
    }
}

/// The engine options of `createWebRtcTransport{...}`, checked.
fn webrtc_options(o: WebRtcTransportOpts) -> mlua::Result<WebRtcTransportOptions> {
    let consent = o.ice_consent_timeout.unwrap_or(30.0);
    if !(0.0..=3600.0).contains(&consent) {
        return Err(invalid(format!("iceConsentTimeout {consent} out of range")));
    }
    let initial_available_outgoing_bitrate = match o.initial_available_outgoing_bitrate {
        None => 0,
        Some(b) if (0..=1_000_000_000).contains(&b) => b as u64,
        Some(b) => {
            return Err(invalid(format!(
                "initialAvailableOutgoingBitrate {b} out of range"
            )))
        }
    };
    Ok(WebRtcTransportOptions {
        enable_udp: o.enable_udp.unwrap_or(true),
        enable_tcp: o.enable_tcp.unwrap_or(true),
        prefer_udp: o.prefer_udp.unwrap_or(false),
        ice_consent_timeout: Duration::from_secs_f64(consent),
        sctp: o
            .num_sctp_streams
            .map(|n| (n.os.unwrap_or(1024), n.mis.unwrap_or(1024))),
        initial_available_outgoing_bitrate,
    })
}

/// Binds the port(s) of a plain transport on `router` and creates it; the ports are given
/// back when creation fails. Returns the transport's JSON.
fn create_plain_transport(router: Uuid, o: PlainTransportOpts) -> mlua::Result<Json> {
    let ctx = ctx().ok_or_else(|| internal("no media engine on this worker"))?;
    let rtcp_mux = o.rtcp_mux.unwrap_or(true);
    let comedia = o.comedia.unwrap_or(false);
    let enable_srtp = o.enable_srtp.unwrap_or(false);
    let suite = o.srtp_crypto_suite;
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
            Instant::now(),
        )
    });
    match created {
        Ok(info) => json_of(&info),
        Err(e) => {
            release_ports(&ctx, socket, rtcp);
            Err(engine_error(e))
        }
    }
}

/// Gives back ports bound for a plain transport whose creation failed.
fn release_ports(
    ctx: &WorkerContext,
    socket: (SocketId, std::net::SocketAddr),
    rtcp: Option<(SocketId, std::net::SocketAddr)>,
) {
    ctx.release_rtc_port(socket.0);
    if let Some((sid, _)) = rtcp {
        ctx.release_rtc_port(sid);
    }
}
