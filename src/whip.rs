//! WHIP (RFC 9725) and WHEP endpoints and the demo page at `/`. The plugin carries the request
//! (SDP bodies as text, headers); `lua/http/whip.lua` decides on the room's worker, with
//! `ringsfu.sdp` for the offer/answer.

use ringsfu_plugins::{HttpRequest, HttpResponse};

use crate::lua_host::room;
use crate::shared::{call_on_room_worker, Shared};

/// The script serving `/whip/...` and `/whep/...` (embedded; a file of that path next to the
/// config wins).
pub const SCRIPT: &str = "lua/http/whip.lua";

/// The demo page (plain HTML + JS, embedded).
pub fn page() -> HttpResponse {
    HttpResponse::raw(
        200,
        "text/html; charset=utf-8",
        include_bytes!("whip/index.html"),
    )
}

/// Hands `/whip/:roomId/...` or `/whep/:roomId/...` to the WHIP script on the room's worker
/// (the room is created there if needed). The script's `handle` gets the segments
/// `{"whip"|"whep", rest...}` (without the room id) and `{text, headers}`.
pub async fn call(shared: &Shared, req: HttpRequest) -> HttpResponse {
    let mut segments = req.segments.into_iter();
    let endpoint = segments.next().unwrap_or_default();
    let room_id = segments.next().unwrap_or_default();
    if room_id.is_empty() || room_id.len() > 128 {
        return HttpResponse::text(400, "bad room id");
    }
    // Drain mode and the rooms limit apply to WHIP/WHEP like to every other way into a room.
    if let Err(rej) = shared.ops.admit_room(&shared.registry, &room_id) {
        return HttpResponse::text(rej.status, rej.reason);
    }
    let call = room::http::HttpCall {
        room_id,
        method: req.method.as_str().to_owned(),
        segments: std::iter::once(endpoint).chain(segments).collect(),
        query: req.query,
        body: req.body,
        authorization: req.authorization,
        script: Some(SCRIPT.to_owned()),
        text: req.text,
        headers: req.headers,
    };
    call_on_room_worker(shared, call).await
}
