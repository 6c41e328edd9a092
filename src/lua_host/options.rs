//! The options tables scripts pass to engine methods (`router:createWebRtcTransport{...}`,
//! `transport:produce{...}`, ...), parsed into typed structs that name every key they accept.
//! A key no struct knows (a typo such as `enableUpd`) is refused with a 400 naming it, instead
//! of being ignored; a value of the wrong type is refused naming its path
//! (`invalid rtpParameters.codecs[0].clockRate: ...`).
//!
//! `appData` is never parsed here: it stays the script's own Lua table (it may hold anything,
//! functions and objects included), read by the caller.

use mlua::{Lua, LuaSerdeExt, Table, Value};
use ringsfu_core::rtp_parameters::{
    MediaKind, RtpCapabilities, RtpParameters, SctpStreamParameters,
};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::Value as Json;

use super::error::invalid;

/// Parses `opts` (nil: every option absent) as `T`; `what` names the call in errors.
pub(crate) fn parse<T: DeserializeOwned>(
    lua: &Lua,
    opts: Option<&Table>,
    what: &str,
) -> mlua::Result<T> {
    // Through JSON, so shapes match mediasoup's (and a Lua array stays an array), without
    // appData (the script's own table, never converted).
    let copy = lua.create_table()?;
    if let Some(t) = opts {
        for pair in t.pairs::<Value, Value>() {
            let (k, v) = pair?;
            if matches!(&k, Value::String(s) if s.as_bytes() == b"appData".as_slice()) {
                continue;
            }
            copy.raw_set(k, v)?;
        }
    }
    let json: Json = lua
        .from_value(Value::Table(copy))
        .map_err(|e| invalid(format!("{what} options: {e}")))?;
    // An empty Lua table converts to an empty array or object alike.
    let mut json = match json {
        Json::Array(a) if a.is_empty() => Json::Object(Default::default()),
        other => other,
    };
    integral_floats_to_integers(&mut json);
    serde_path_to_error::deserialize(json).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.inner().to_string();
        if path == "." || inner.starts_with("unknown field") {
            invalid(format!("{what} options: {inner}"))
        } else {
            invalid(format!("invalid {path}: {inner}"))
        }
    })
}

/// Lua 5.4 numbers written `5e5` or computed with `/` are floats; one with an integral value is
/// made an integer so it fills an integer field (`maxBitrate = rate / 2`, `ssrc = 1e6`), as
/// mediasoup (JavaScript numbers) accepts it. A fractional value still fails, naming its path.
fn integral_floats_to_integers(v: &mut Json) {
    match v {
        Json::Number(n) => {
            let int = n
                .as_f64()
                .filter(|f| n.is_f64() && f.fract() == 0.0 && f.abs() <= 9.0e15);
            if let Some(f) = int {
                *v = Json::from(f as i64);
            }
        }
        Json::Array(a) => a.iter_mut().for_each(integral_floats_to_integers),
        Json::Object(o) => o.values_mut().for_each(integral_floats_to_integers),
        _ => {}
    }
}

/// `numSctpStreams` of `createWebRtcTransport` (a client's `sctpCapabilities.numStreams`,
/// passed through: other keys are ignored).
#[derive(Debug, Default, Deserialize)]
pub(crate) struct NumSctpStreams {
    /// Outgoing streams (default 1024).
    #[serde(rename = "OS")]
    pub os: Option<u16>,
    /// Incoming streams (default 1024).
    #[serde(rename = "MIS")]
    pub mis: Option<u16>,
}

/// `router:createWebRtcTransport{...}`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct WebRtcTransportOpts {
    /// Offer UDP candidates (default true).
    pub enable_udp: Option<bool>,
    /// Offer TCP candidates (default true).
    pub enable_tcp: Option<bool>,
    /// Rank UDP first.
    pub prefer_udp: Option<bool>,
    /// ICE consent timeout, seconds (0..3600, default 30).
    pub ice_consent_timeout: Option<f64>,
    /// Enables SCTP with these stream counts.
    pub num_sctp_streams: Option<NumSctpStreams>,
    /// Starting send-side estimate, bps.
    pub initial_available_outgoing_bitrate: Option<i64>,
}

/// `router:createPlainTransport{...}`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct PlainTransportOpts {
    /// RTP and RTCP on one port (default true).
    pub rtcp_mux: Option<bool>,
    /// Learn the remote address from the first packet.
    pub comedia: Option<bool>,
    /// SRTP on the plain transport.
    pub enable_srtp: Option<bool>,
    /// The SRTP crypto suite.
    pub srtp_crypto_suite: Option<String>,
}

/// `transport:produce{...}`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct ProduceOpts {
    /// `audio` or `video` (required).
    pub kind: Option<MediaKind>,
    /// The producer's RTP parameters (required).
    pub rtp_parameters: Option<RtpParameters>,
    /// Created paused.
    pub paused: Option<bool>,
}

/// `transport:consume{...}`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct ConsumeOpts {
    /// The producer to consume (required).
    pub producer_id: Option<String>,
    /// The consuming endpoint's capabilities (required).
    pub rtp_capabilities: Option<RtpCapabilities>,
    /// Created paused.
    pub paused: Option<bool>,
    /// Negotiate RTX.
    pub enable_rtx: Option<bool>,
    /// The capabilities come from an SDP offer (WHEP): use its payload types and ids.
    pub offerer: Option<bool>,
    /// With `offerer`: the offer's `mid`.
    pub mid: Option<String>,
}

/// `router:createDirectTransport{...}`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct DirectTransportOpts {
    /// Largest message sent or received, bytes.
    pub max_message_size: Option<i64>,
}

/// `transport:produceData{...}` (WebRTC and direct transports).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct ProduceDataOpts {
    /// The SCTP stream (WebRTC transports: required; direct: absent).
    pub sctp_stream_parameters: Option<SctpStreamParameters>,
    /// Channel label.
    pub label: Option<String>,
    /// Channel subprotocol.
    pub protocol: Option<String>,
    /// Created paused.
    pub paused: Option<bool>,
}

/// `transport:consumeData{...}`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct ConsumeDataOpts {
    /// The data producer to consume (required).
    pub data_producer_id: Option<String>,
    /// Ordered delivery (default: the producer's).
    pub ordered: Option<bool>,
    /// Partial reliability: lifetime, ms.
    pub max_packet_life_time: Option<u16>,
    /// Partial reliability: retransmissions.
    pub max_retransmits: Option<u16>,
    /// Created paused.
    pub paused: Option<bool>,
}

/// `router:createAudioLevelObserver{...}`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct AudioLevelObserverOpts {
    /// Entries per `volumes` event (default 1).
    pub max_entries: Option<f64>,
    /// dBov threshold (default -80).
    pub threshold: Option<f64>,
    /// Interval, ms (default 1000).
    pub interval: Option<f64>,
}

/// `router:createActiveSpeakerObserver{...}`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct ActiveSpeakerObserverOpts {
    /// Interval, ms (default 300).
    pub interval: Option<f64>,
}

/// A number option rounded to an integer, or `default`.
pub(crate) fn rounded(v: Option<f64>, default: i64) -> i64 {
    match v {
        Some(n) if n.is_finite() => n.round() as i64,
        _ => default,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_keys_and_wrong_types_are_refused_naming_them() {
        let lua = Lua::new();
        let t: Table = lua
            .load("return { enableUdp = true, enableUpd = false, appData = { f = print } }")
            .eval()
            .unwrap();
        let err = parse::<WebRtcTransportOpts>(&lua, Some(&t), "createWebRtcTransport")
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown field `enableUpd`"), "{err}");
        assert!(err.contains("createWebRtcTransport"), "{err}");
        let t: Table = lua.load("return { enableUdp = 'yes' }").eval().unwrap();
        let err = parse::<WebRtcTransportOpts>(&lua, Some(&t), "createWebRtcTransport")
            .unwrap_err()
            .to_string();
        assert!(err.contains("invalid enableUdp"), "{err}");
        // appData (with a function in it) is the script's: never parsed.
        let t: Table = lua
            .load("return { enableTcp = false, numSctpStreams = { OS = 16, MIS = 16 }, appData = { f = print } }")
            .eval()
            .unwrap();
        let o = parse::<WebRtcTransportOpts>(&lua, Some(&t), "createWebRtcTransport").unwrap();
        assert_eq!(o.enable_tcp, Some(false));
        assert_eq!(o.num_sctp_streams.unwrap().os, Some(16));
        let empty = lua.create_table().unwrap();
        let o = parse::<ConsumeDataOpts>(&lua, Some(&empty), "consumeData").unwrap();
        assert!(o.data_producer_id.is_none());
        let o = parse::<ConsumeDataOpts>(&lua, None, "consumeData").unwrap();
        assert!(o.paused.is_none());
    }

    /// RTP parameters are checked for shape here (serde, path-named); what serde cannot check
    /// is the engine's (`ortc::normalize_rtp_parameters`).
    #[test]
    fn rtp_parameters_shape_errors_name_the_path() {
        let lua = Lua::new();
        let produce = |src: &str| {
            let t: Table = lua.load(src).eval().unwrap();
            parse::<ProduceOpts>(&lua, Some(&t), "produce")
        };
        let codec = "{ mimeType = 'video/VP8', payloadType = 96, clockRate = 90000 }";
        let rtx = "{ mimeType = 'video/rtx', clockRate = 90000, parameters = { apt = 96 } }";
        let err = produce(&format!(
            "return {{ kind = 'video', rtpParameters = {{ codecs = {{ {codec}, {rtx} }} }} }}"
        ))
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("invalid rtpParameters.codecs[1]: missing field `payloadType`"),
            "{err}"
        );
        let err = produce(&format!(
            "return {{ kind = 'video', rtpParameters = {{ codecs = {{ {codec} }}, encodings = {{ {{ ssrc = '123' }} }} }} }}"
        ))
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("invalid rtpParameters.encodings[0].ssrc"),
            "{err}"
        );
        let err = produce(&format!(
            "return {{ kind = 'video', rtpParameters = {{ codecs = {{ {codec} }}, encodings = {{ {{ ssrc = 1, rtx = {{ foo = 1 }} }} }} }} }}"
        ))
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("invalid rtpParameters.encodings[0].rtx: missing field `ssrc`"),
            "{err}"
        );
        let err = produce("return { kind = 'video', rtpParameters = { mid = '0' } }")
            .unwrap_err()
            .to_string();
        assert!(err.contains("missing field `codecs`"), "{err}");
        // Integral floats fill integer fields; a fraction does not.
        let o = produce(&format!(
            "return {{ kind = 'video', rtpParameters = {{ codecs = {{ {codec} }}, encodings = {{ {{ ssrc = 1e6, maxBitrate = 3000000 / 2, scaleResolutionDownBy = 2.0 }} }} }} }}"
        ))
        .unwrap();
        let enc = &o.rtp_parameters.unwrap().encodings[0];
        assert_eq!(enc.ssrc, Some(1_000_000));
        assert_eq!(enc.max_bitrate, Some(1_500_000));
        assert_eq!(enc.scale_resolution_down_by, Some(2.0));
        let err = produce(&format!(
            "return {{ kind = 'video', rtpParameters = {{ codecs = {{ {codec} }}, encodings = {{ {{ ssrc = 1.5 }} }} }} }}"
        ))
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("invalid rtpParameters.encodings[0].ssrc"),
            "{err}"
        );
    }
}
