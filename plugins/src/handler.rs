//! What the HTTP side hands the server's handler and gets back: [`HttpRequest`],
//! [`HttpResponse`] and the [`HttpHandler`] trait the server binary implements.

use std::net::SocketAddr;

use bytes::Bytes;
use http::Method;
use serde_json::{json, Value};

use crate::BoxFuture;

/// One HTTP request, as the handler sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct HttpRequest {
    /// Request method.
    pub method: Method,
    /// Path as sent (still percent-encoded), without the query string. Starts with `/`.
    pub path: String,
    /// The path's non-empty `/`-separated segments, each percent-decoded (so a `%2F` inside a
    /// room id stays inside its segment): `/rooms/a%20b/broadcasters` → `["rooms", "a b",
    /// "broadcasters"]`.
    pub segments: Vec<String>,
    /// Query parameters, decoded, in order.
    pub query: Vec<(String, String)>,
    /// The body parsed as JSON; `None` when the body is empty.
    pub body: Option<Value>,
    /// The TCP peer's address.
    pub remote_addr: SocketAddr,
    /// The `Authorization` header, when present and ASCII (e.g. `Bearer <token>`).
    pub authorization: Option<String>,
    /// The body as text when its content type is SDP (`application/sdp`,
    /// `application/trickle-ice-sdpfrag`: WHIP/WHEP); `body` is then `None`.
    pub text: Option<String>,
    /// Request headers (names lower case), in order.
    pub headers: Vec<(String, String)>,
}

/// Body of an [`HttpResponse`].
#[derive(Debug, Clone, PartialEq)]
pub enum HttpBody {
    /// Sent as `application/json`.
    Json(Value),
    /// Sent as `text/plain; charset=utf-8` (the demo answers DELETE and errors in text).
    Text(String),
    /// No body.
    Empty,
    /// Bytes with their content type (pages and scripts served from the binary).
    Raw {
        /// `Content-Type` header value.
        content_type: &'static str,
        /// The bytes.
        data: Bytes,
    },
}

/// The handler's answer.
#[derive(Debug, Clone, PartialEq)]
pub struct HttpResponse {
    /// HTTP status; a value that is not a valid status code is sent as 500.
    pub status: u16,
    /// Body.
    pub body: HttpBody,
    /// Extra response headers (`Location`, `ETag`, `Link`, ...); invalid ones are skipped.
    pub headers: Vec<(String, String)>,
}

impl HttpResponse {
    /// A JSON response.
    pub fn json(status: u16, body: Value) -> Self {
        HttpResponse {
            status,
            body: HttpBody::Json(body),
            headers: Vec::new(),
        }
    }

    /// A plain-text response.
    pub fn text(status: u16, body: impl Into<String>) -> Self {
        HttpResponse {
            status,
            body: HttpBody::Text(body.into()),
            headers: Vec::new(),
        }
    }

    /// A response with a static body and content type.
    pub fn raw(status: u16, content_type: &'static str, data: &'static [u8]) -> Self {
        HttpResponse {
            status,
            body: HttpBody::Raw {
                content_type,
                data: Bytes::from_static(data),
            },
            headers: Vec::new(),
        }
    }

    /// `404` with a JSON error body; also the signal to fall back to static files.
    pub fn not_found() -> Self {
        HttpResponse::json(404, json!({"error": "not found"}))
    }
}

/// Answers HTTP requests. Implemented by the server binary.
pub trait HttpHandler: Send + Sync + 'static {
    /// Answers one request. `OPTIONS` requests never get here (the plugin answers them as CORS
    /// preflights) except under `/whip/` and `/whep/`, where the answer's headers are added to
    /// the preflight's (a 404 adds none); nor requests with malformed JSON or oversized bodies.
    fn handle(&self, req: HttpRequest) -> BoxFuture<'static, HttpResponse>;
}
