//! The HTTP (REST) side: every non-upgrade request goes to the [`HttpHandler`] with its JSON
//! body parsed. The plugin itself refuses other origins' requests unless configured (403,
//! `crate::origin`), answers CORS preflights, malformed JSON (400), oversized
//! bodies (413), and static files for `GET`/`HEAD` requests the handler answers with 404.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use serde_json::{json, Value};

use crate::ctx::Ctx;
use crate::handler::{HttpBody, HttpRequest, HttpResponse};
use crate::request::{parse_query, path_segments};

/// Time a client has to send its whole request body.
const BODY_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// Whether a body of this content type is carried as text instead of parsed as JSON.
fn is_sdp_content_type(content_type: &str) -> bool {
    let ct = content_type.trim().to_ascii_lowercase();
    ct.starts_with("application/sdp") || ct.starts_with("application/trickle-ice-sdpfrag")
}

/// Paths whose `OPTIONS` requests go to the handler (WHIP/WHEP advertise ICE servers there);
/// every other `OPTIONS` is a CORS preflight the plugin answers itself.
fn options_to_handler(path: &str) -> bool {
    path.starts_with("/whip/") || path.starts_with("/whep/")
}

/// Serves one non-upgrade request.
pub(crate) async fn handle_http(
    req: Request<Incoming>,
    remote_addr: SocketAddr,
    ctx: Arc<Ctx>,
) -> Response<Full<Bytes>> {
    // Origin check (see `crate::origin`): a web page of another origin may call the API only
    // when its origin is configured; it then gets `Access-Control-Allow-Origin: <origin>`.
    let tls = ctx.config.tls.is_some();
    let verdict = crate::origin::check(req.headers(), tls, &ctx.config.cors_origins);
    let mut resp = match &verdict {
        crate::origin::OriginVerdict::Refused(origin) => {
            log::debug!(
                "HTTP {} {} from {remote_addr}: origin {origin:?} refused",
                req.method(),
                req.uri().path()
            );
            error_json(
                StatusCode::FORBIDDEN,
                format!("origin {origin:?} is not allowed (config security.corsOrigins)"),
            )
        }
        _ => route(req, remote_addr, &ctx).await,
    };
    verdict.stamp(resp.headers_mut());
    resp
}

async fn route(
    req: Request<Incoming>,
    remote_addr: SocketAddr,
    ctx: &Ctx,
) -> Response<Full<Bytes>> {
    let handler_options = req.method() == Method::OPTIONS && options_to_handler(req.uri().path());
    if req.method() == Method::OPTIONS && !handler_options {
        return preflight(&req);
    }
    let preflight_resp = handler_options.then(|| preflight(&req));
    let max = ctx.config.max_body_bytes;
    let declared_len = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    // Ids in the path (room, broadcaster, transport ids) are bounded before anything runs.
    for seg in path_segments(req.uri().path()) {
        if let Err(e) = crate::limits::check_id("path segment", &seg) {
            return error_json(StatusCode::BAD_REQUEST, e);
        }
    }
    let (parts, mut body) = req.into_parts();
    if declared_len.is_some_and(|len| len > max as u64) {
        drain(body);
        return too_large(max);
    }
    let mut buf = bytes::BytesMut::new();
    let read = tokio::time::timeout(BODY_READ_TIMEOUT, async {
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| format!("cannot read body: {e}"))?;
            if let Ok(data) = frame.into_data() {
                if buf.len() + data.len() > max {
                    return Ok(false);
                }
                buf.extend_from_slice(&data);
            }
        }
        Ok::<bool, String>(true)
    })
    .await;
    let bytes = match read {
        Err(_) => return error_json(StatusCode::REQUEST_TIMEOUT, "request body timeout".into()),
        Ok(Ok(false)) => {
            drain(body);
            return too_large(max);
        }
        Ok(Err(e)) => return error_json(StatusCode::BAD_REQUEST, e),
        Ok(Ok(true)) => buf.freeze(),
    };
    let sdp_body = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(is_sdp_content_type)
        // WHIP/WHEP bodies are never JSON: their script answers a wrong content type (415).
        || options_to_handler(parts.uri.path());
    let mut text = None;
    let body = if bytes.iter().all(u8::is_ascii_whitespace) {
        None
    } else if sdp_body {
        text = Some(String::from_utf8_lossy(&bytes).into_owned());
        None
    } else {
        match serde_json::from_slice::<Value>(&bytes) {
            Ok(v) => Some(v),
            Err(e) => {
                return error_json(StatusCode::BAD_REQUEST, format!("invalid JSON body: {e}"));
            }
        }
    };

    let path = parts.uri.path().to_owned();
    let authorization = parts
        .headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let request = HttpRequest {
        authorization,
        method: parts.method.clone(),
        segments: path_segments(&path),
        query: parse_query(parts.uri.query()),
        path,
        body,
        remote_addr,
        text,
        headers: parts
            .headers
            .iter()
            .filter_map(|(k, v)| Some((k.as_str().to_owned(), v.to_str().ok()?.to_owned())))
            .collect(),
    };
    let answer = ctx.http.handle(request).await;
    if let Some(mut pre) = preflight_resp {
        // The handler's headers (Link: ice servers) on top of the CORS preflight answer.
        if answer.status != 404 {
            for (k, v) in &answer.headers {
                if let (Ok(k), Ok(v)) = (
                    header::HeaderName::from_bytes(k.as_bytes()),
                    HeaderValue::from_str(v),
                ) {
                    pre.headers_mut().append(k, v);
                }
            }
        }
        return pre;
    }

    if answer.status == 404 && (parts.method == Method::GET || parts.method == Method::HEAD) {
        if let Some(dir) = &ctx.config.static_dir {
            if let Some((content_type, data)) =
                crate::static_files::load(dir, parts.uri.path()).await
            {
                let mut resp = Response::new(Full::new(data));
                resp.headers_mut()
                    .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
                return resp;
            }
        }
    }
    to_hyper(answer)
}

/// Converts the handler's answer.
fn to_hyper(answer: HttpResponse) -> Response<Full<Bytes>> {
    let status = StatusCode::from_u16(answer.status)
        .ok()
        .filter(|s| !s.is_informational())
        .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let (content_type, data) = match answer.body {
        HttpBody::Json(v) => (Some("application/json"), Bytes::from(v.to_string())),
        HttpBody::Text(t) => (Some("text/plain; charset=utf-8"), Bytes::from(t)),
        HttpBody::Empty => (None, Bytes::new()),
        HttpBody::Raw { content_type, data } => (Some(content_type), data),
    };
    let mut resp = Response::new(Full::new(data));
    *resp.status_mut() = status;
    for (k, v) in &answer.headers {
        if let (Ok(k), Ok(v)) = (
            header::HeaderName::from_bytes(k.as_bytes()),
            HeaderValue::from_str(v),
        ) {
            resp.headers_mut().append(k, v);
        }
    }
    if !answer.headers.is_empty() {
        // Let browser clients on other origins read Location/ETag/Link (WHIP/WHEP).
        resp.headers_mut().insert(
            header::ACCESS_CONTROL_EXPOSE_HEADERS,
            HeaderValue::from_static("Location, ETag, Link"),
        );
    }
    if let Some(ct) = content_type {
        resp.headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(ct));
    }
    resp
}

/// CORS preflight (its origin already passed the check): the methods the REST API uses and
/// whatever headers the browser asks for.
fn preflight(req: &Request<Incoming>) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::new()));
    *resp.status_mut() = StatusCode::NO_CONTENT;
    let h = resp.headers_mut();
    h.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS"),
    );
    let allow_headers = req
        .headers()
        .get(header::ACCESS_CONTROL_REQUEST_HEADERS)
        .cloned()
        .unwrap_or_else(|| HeaderValue::from_static("Content-Type"));
    h.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, allow_headers);
    h.insert(
        header::ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from_static("86400"),
    );
    resp
}

/// Most bytes of an oversized body read (and dropped) after its 413, so the client, still
/// sending, is not reset before it reads the answer.
const DRAIN_MAX_BYTES: usize = 64 << 20;
/// Longest time spent draining an oversized body.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

/// Reads and drops the rest of a body on its own task while the connection sends the answer
/// (a "lingering close"): closing a socket with unread data makes the kernel send a reset, which
/// can destroy the 413 before the client reads it. Bounded by [`DRAIN_MAX_BYTES`] and
/// [`DRAIN_TIMEOUT`]; past either, the connection is dropped.
fn drain(mut body: Incoming) {
    tokio::spawn(async move {
        let mut n = 0usize;
        let _ = tokio::time::timeout(DRAIN_TIMEOUT, async {
            while let Some(Ok(frame)) = body.frame().await {
                if let Some(d) = frame.data_ref() {
                    n += d.len();
                    if n > DRAIN_MAX_BYTES {
                        break;
                    }
                }
            }
        })
        .await;
    });
}

fn too_large(max: usize) -> Response<Full<Bytes>> {
    crate::limits::note("httpBodyBytes", &format!("request body over {max} bytes"));
    let mut resp = error_json(
        StatusCode::PAYLOAD_TOO_LARGE,
        format!("limit httpBodyBytes: request body larger than {max} bytes"),
    );
    // The rest of the body is drained (see `drain`), then the connection ends.
    resp.headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    resp
}

/// A JSON error body `{"error": "<message>"}`.
fn error_json(status: StatusCode, message: String) -> Response<Full<Bytes>> {
    let mut resp = to_hyper(HttpResponse::json(
        status.as_u16(),
        json!({"error": message}),
    ));
    *resp.status_mut() = status;
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_is_form_decoded() {
        assert_eq!(
            parse_query(Some("roomId=a%20b&peerId=x+y&flag&e=")),
            vec![
                ("roomId".into(), "a b".into()),
                ("peerId".into(), "x y".into()),
                ("flag".into(), "".into()),
                ("e".into(), "".into()),
            ]
        );
        assert!(parse_query(None).is_empty());
    }

    #[test]
    fn segments_are_decoded_individually() {
        assert_eq!(
            path_segments("/rooms/a%2Fb//broadcasters/%E2%82%AC/"),
            vec!["rooms", "a/b", "broadcasters", "€"]
        );
        assert!(path_segments("/").is_empty());
    }

    #[test]
    fn invalid_status_becomes_500() {
        assert_eq!(to_hyper(HttpResponse::text(99, "x")).status(), 500);
        assert_eq!(to_hyper(HttpResponse::text(1000, "x")).status(), 500);
        assert_eq!(to_hyper(HttpResponse::text(101, "x")).status(), 500);
        assert_eq!(to_hyper(HttpResponse::text(201, "x")).status(), 201);
    }
}
