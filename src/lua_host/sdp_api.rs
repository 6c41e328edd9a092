//! `ringsfu.sdp`: SDP offer/answer for scripts that serve SDP clients (WHIP/WHEP,
//! `lua/http/whip.lua`). The work is done by `ringsfu_core::sdp`; these functions convert.
//!
//! | function | returns |
//! |---|---|
//! | `ringsfu.sdp.publish(offer, routerCaps)` | `{iceUfrag, icePwd, dtlsParameters, sections = [{index, mid, kind, rtpParameters?, rejected?}]}`, or `nil, message, unacceptable` |
//! | `ringsfu.sdp.subscribe(offer, routerCaps)` | `{iceUfrag, icePwd, dtlsParameters, sections = [{index, mid, kind, rtpCapabilities?, rejected?}]}`, or `nil, message, unacceptable` |
//! | `ringsfu.sdp.answer(offer, transport, sections)` | the answer text; `transport` = `{iceParameters, iceCandidates, dtlsParameters}` (a WebRtcTransport's fields), `sections` = `[{index, rtpParameters?, direction?, msid?}]` |
//! | `ringsfu.sdp.parseFragment(text)` | `{iceUfrag?, icePwd?, candidates, endOfCandidates, mids}`, or `nil, message` |
//! | `ringsfu.sdp.fragment(iceParameters, iceCandidates, mids)` | an sdpfrag with our (new) credentials and candidates |
//!
//! `message` names the offending line (`SDP line 7 \`a=rtpmap:96 VP8\`: missing or bad clock
//! rate`); `unacceptable` is true when the offer is well-formed but has no codec in common with
//! the router (WHIP answers 406 then).

use mlua::{Lua, LuaSerdeExt, MultiValue, Table, Value};
use ringsfu_core::rtp_parameters::RtpCapabilities;
use ringsfu_core::sdp::{self, AnswerSection, AnswerTransport, Candidate, Fingerprint};
use serde_json::{json, Value as Json};

fn err(e: impl std::fmt::Display) -> mlua::Error {
    super::error::invalid(e.to_string())
}

fn json_of(lua: &Lua, v: Value) -> mlua::Result<Json> {
    lua.from_value(v)
}

fn failure(lua: &Lua, e: &sdp::SdpError) -> mlua::Result<MultiValue> {
    Ok(MultiValue::from_vec(vec![
        Value::Nil,
        Value::String(lua.create_string(e.to_string())?),
        Value::Boolean(e.unacceptable),
    ]))
}

fn negotiate(lua: &Lua, offer: String, caps: Value, publish: bool) -> mlua::Result<MultiValue> {
    let caps: RtpCapabilities = serde_json::from_value(json_of(lua, caps)?)
        .map_err(|e| err(format!("router capabilities: {e}")))?;
    let offer = match sdp::parse_offer(&offer) {
        Ok(o) => o,
        Err(e) => return failure(lua, &e),
    };
    let sections = if publish {
        sdp::publish(&offer, &caps).map(|s| serde_json::to_value(s).unwrap_or_default())
    } else {
        sdp::subscribe(&offer, &caps).map(|s| serde_json::to_value(s).unwrap_or_default())
    };
    let sections = match sections {
        Ok(s) => s,
        Err(e) => return failure(lua, &e),
    };
    let out = json!({
        "iceUfrag": offer.ice_ufrag,
        "icePwd": offer.ice_pwd,
        "dtlsParameters": offer.dtls_parameters(),
        "sections": sections,
    });
    Ok(MultiValue::from_vec(vec![lua.to_value(&out)?]))
}

fn candidates(v: Json) -> mlua::Result<Vec<Candidate>> {
    serde_json::from_value(v).map_err(|e| err(format!("iceCandidates: {e}")))
}

/// Installs `ringsfu.sdp` into the `ringsfu` table.
pub(crate) fn install(lua: &Lua, ringsfu: &Table) -> mlua::Result<()> {
    let t = lua.create_table()?;
    t.set(
        "publish",
        lua.create_function(|lua, (offer, caps): (String, Value)| {
            negotiate(lua, offer, caps, true)
        })?,
    )?;
    t.set(
        "subscribe",
        lua.create_function(|lua, (offer, caps): (String, Value)| {
            negotiate(lua, offer, caps, false)
        })?,
    )?;
    t.set(
        "answer",
        lua.create_function(
            |lua, (offer, transport, sections): (String, Value, Value)| {
                let offer = sdp::parse_offer(&offer).map_err(err)?;
                let tr = json_of(lua, transport)?;
                let transport = AnswerTransport {
                    ice_ufrag: tr["iceParameters"]["usernameFragment"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned(),
                    ice_pwd: tr["iceParameters"]["password"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned(),
                    candidates: candidates(tr["iceCandidates"].clone())?,
                    fingerprints: serde_json::from_value::<Vec<Fingerprint>>(
                        tr["dtlsParameters"]["fingerprints"].clone(),
                    )
                    .map_err(|e| err(format!("dtlsParameters.fingerprints: {e}")))?,
                };
                let sections: Vec<AnswerSection> = serde_json::from_value(json_of(lua, sections)?)
                    .map_err(|e| err(format!("sections: {e}")))?;
                Ok(sdp::write_answer(&offer, &transport, &sections, rand_id()))
            },
        )?,
    )?;
    t.set(
        "parseFragment",
        lua.create_function(|lua, text: String| match sdp::parse_fragment(&text) {
            Ok(f) => Ok(MultiValue::from_vec(vec![lua.to_value(&f)?])),
            Err(e) => failure(lua, &e),
        })?,
    )?;
    t.set(
        "fragment",
        lua.create_function(|lua, (ice, cands, mids): (Value, Value, Value)| {
            let ice = json_of(lua, ice)?;
            let cands = candidates(json_of(lua, cands)?)?;
            let mids: Vec<String> = match mids {
                Value::Nil => Vec::new(),
                v => serde_json::from_value(json_of(lua, v)?).map_err(err)?,
            };
            Ok(sdp::write_fragment(
                ice["usernameFragment"].as_str().unwrap_or_default(),
                ice["password"].as_str().unwrap_or_default(),
                &cands,
                &mids,
            ))
        })?,
    )?;
    ringsfu.set("sdp", t)?;
    Ok(())
}

fn rand_id() -> u64 {
    // The o= session id: any value works; derived from a fresh UUID (no clock, no global RNG).
    let u = uuid::Uuid::new_v4();
    u64::from_le_bytes(u.as_bytes()[..8].try_into().unwrap_or_default()) >> 2
}
