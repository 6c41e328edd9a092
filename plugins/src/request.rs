//! What every front end reads from a request and answers with, below all of them: query and
//! path decoding, WebSocket upgrade checks, plain-text answers. No front end's state here.

use bytes::Bytes;
use http::{header, HeaderMap, HeaderValue, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;

/// Decodes a query string (`application/x-www-form-urlencoded`: `+` is a space).
pub(crate) fn parse_query(query: Option<&str>) -> Vec<(String, String)> {
    query
        .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default()
}

/// Splits and percent-decodes a path into its non-empty segments.
pub(crate) fn path_segments(path: &str) -> Vec<String> {
    path.split('/')
        .filter(|s| !s.is_empty())
        .map(|s| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8_lossy()
                .into_owned()
        })
        .collect()
}

/// Whether the request asks for a WebSocket upgrade (`Upgrade: websocket`).
pub(crate) fn is_upgrade(headers: &HeaderMap) -> bool {
    header_has_token(headers, header::UPGRADE, "websocket")
}

/// Whether any value of header `name` has the comma-separated token `token`, ASCII
/// case-insensitively (right for `Upgrade` and `Connection`).
pub(crate) fn header_has_token(headers: &HeaderMap, name: header::HeaderName, token: &str) -> bool {
    header_tokens(headers, name).any(|t| t.eq_ignore_ascii_case(token))
}

/// Whether the client offers subprotocol `name`; subprotocol names are case-sensitive
/// (RFC 6455 §4.1, and protoo-server compares exactly).
pub(crate) fn offers_subprotocol(headers: &HeaderMap, name: &str) -> bool {
    header_tokens(headers, header::SEC_WEBSOCKET_PROTOCOL).any(|t| t == name)
}

fn header_tokens(headers: &HeaderMap, name: header::HeaderName) -> impl Iterator<Item = &str> {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|s| s.split(','))
        .map(str::trim)
}

/// A plain-text response.
pub(crate) fn text(status: StatusCode, body: &str) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::from(body.to_owned())));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}

/// Checks a WebSocket upgrade request; answers the 101 response headers, or the error.
#[allow(clippy::result_large_err)] // both variants are responses, returned once per request
pub(crate) fn upgrade_response(
    req: &Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Response<Full<Bytes>>> {
    if !is_upgrade(req.headers()) || req.method() != http::Method::GET {
        return Err(text(
            StatusCode::BAD_REQUEST,
            "expected a WebSocket upgrade",
        ));
    }
    if req
        .headers()
        .get(header::SEC_WEBSOCKET_VERSION)
        .is_none_or(|v| v.as_bytes() != b"13")
    {
        return Err(text(
            StatusCode::UPGRADE_REQUIRED,
            "unsupported WebSocket version",
        ));
    }
    let Some(key) = req.headers().get(header::SEC_WEBSOCKET_KEY) else {
        return Err(text(StatusCode::BAD_REQUEST, "missing Sec-WebSocket-Key"));
    };
    let mut resp = Response::new(Full::new(Bytes::new()));
    *resp.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = resp.headers_mut();
    h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    if let Ok(v) = HeaderValue::from_str(&derive_accept_key(key.as_bytes())) {
        h.insert(header::SEC_WEBSOCKET_ACCEPT, v);
    }
    Ok(resp)
}
