//! Origin checks: CORS on the HTTP API and the `Origin` check of the protoo WebSocket.
//!
//! A browser names the page a request comes from in the `Origin` header. A request whose Origin
//! is the server's own (same scheme, host and port as the `Host` header it was sent to) is
//! same-origin and always allowed; a request without an `Origin` header does not come from a web
//! page's script (curl, ffmpeg scripts, libmediasoupclient apps) and is allowed too. Any other
//! Origin must match an entry of the configured list, else the request is refused with 403
//! before any handler runs. That closes the hole where any web page a visitor opens could drive
//! the broadcaster API (or open a protoo session) through the visitor's browser.

use http::{header, HeaderMap};

/// A list of allowed origins.
///
/// Entries are `scheme://host[:port]` (`https://app.example.com`, `http://127.0.0.1:8080`),
/// compared ASCII case-insensitively, with the scheme's default port filled in. A port of `*`
/// (`http://127.0.0.1:*`) allows every port of that host; the single entry `*` allows every
/// origin (not recommended). The literal `null` matches the `null` origin browsers send for
/// `file://` pages and sandboxed frames.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OriginList {
    entries: Vec<String>,
}

/// Parsed `scheme://host:port`.
#[derive(Debug, PartialEq, Eq)]
struct Parsed<'a> {
    scheme: String,
    host: String,
    port: Option<&'a str>,
}

fn default_port(scheme: &str) -> Option<&'static str> {
    match scheme {
        "http" | "ws" => Some("80"),
        "https" | "wss" => Some("443"),
        _ => None,
    }
}

/// Splits `scheme://host[:port]` (no path); IPv6 hosts keep their brackets.
fn parse(origin: &str) -> Option<Parsed<'_>> {
    let (scheme, rest) = origin.split_once("://")?;
    if rest.is_empty() || rest.contains('/') {
        return None;
    }
    let (host, port) = split_host_port(rest)?;
    Some(Parsed {
        scheme: scheme.to_ascii_lowercase(),
        host: host.to_ascii_lowercase(),
        port,
    })
}

/// `host[:port]` → (host, port); `[v6]:port` keeps the brackets on the host.
fn split_host_port(s: &str) -> Option<(&str, Option<&str>)> {
    if s.starts_with('[') {
        let end = s.find(']')?;
        let host = &s[..=end];
        let rest = &s[end + 1..];
        return match rest.strip_prefix(':') {
            Some(p) if !p.is_empty() => Some((host, Some(p))),
            None if rest.is_empty() => Some((host, None)),
            _ => None,
        };
    }
    match s.rsplit_once(':') {
        Some((h, p)) if !h.is_empty() && !p.is_empty() && !h.contains(':') => Some((h, Some(p))),
        Some(_) => None,
        None => Some((s, None)),
    }
}

impl OriginList {
    /// A list from configuration entries. Errors name the first malformed entry.
    pub fn new<I, S>(entries: I) -> Result<OriginList, String>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let mut out = Vec::new();
        for e in entries {
            let e: String = e.into();
            let e = e.trim().to_owned();
            if e != "*" && e != "null" {
                let p = parse(&e).ok_or_else(|| {
                    format!("origin {e:?} is not scheme://host[:port] (no path), \"*\" or \"null\"")
                })?;
                if let Some(port) = p.port {
                    if port != "*" && port.parse::<u16>().is_err() {
                        return Err(format!("origin {e:?}: port {port:?} is not a number or *"));
                    }
                }
            }
            out.push(e);
        }
        Ok(OriginList { entries: out })
    }

    /// Whether the list is empty (same-origin only).
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Whether `origin` (an `Origin` header value) matches an entry.
    pub fn allows(&self, origin: &str) -> bool {
        let origin = origin.trim();
        let parsed = parse(origin);
        self.entries.iter().any(|e| {
            if e == "*" {
                return true;
            }
            if e == "null" {
                return origin == "null";
            }
            let (Some(want), Some(got)) = (parse(e), parsed.as_ref()) else {
                return false;
            };
            if want.scheme != got.scheme || want.host != got.host {
                return false;
            }
            match want.port {
                Some("*") => true,
                wp => {
                    let wp = wp.or(default_port(&want.scheme));
                    let gp = got.port.or(default_port(&got.scheme));
                    wp == gp
                }
            }
        })
    }
}

/// What the origin check decided for one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OriginVerdict {
    /// No `Origin` header: not a browser page's script.
    NoOrigin,
    /// The Origin is the server's own.
    SameOrigin,
    /// A configured cross origin (echo it in `Access-Control-Allow-Origin`).
    Allowed(String),
    /// A cross origin that is not configured: refuse.
    Refused(String),
}

impl OriginVerdict {
    /// Whether the request may go on.
    pub fn is_allowed(&self) -> bool {
        !matches!(self, OriginVerdict::Refused(_))
    }

    /// Marks an answer for this verdict: a configured cross origin is echoed in
    /// `Access-Control-Allow-Origin`, and `Vary: Origin` always, because the answer depends on
    /// Origin and caches must not hand one origin's answer to another.
    pub fn stamp(&self, headers: &mut HeaderMap) {
        if let OriginVerdict::Allowed(origin) = self {
            if let Ok(v) = http::HeaderValue::from_str(origin) {
                headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, v);
            }
        }
        headers.append(header::VARY, http::HeaderValue::from_static("Origin"));
    }
}

/// Checks a request's `Origin` against its `Host` (same origin) and `allowed`. `tls` tells
/// the scheme the server speaks (https/wss or http/ws).
pub fn check(headers: &HeaderMap, tls: bool, allowed: &OriginList) -> OriginVerdict {
    let Some(origin) = headers.get(header::ORIGIN) else {
        return OriginVerdict::NoOrigin;
    };
    let Ok(origin) = origin.to_str() else {
        return OriginVerdict::Refused("<not ASCII>".into());
    };
    let origin = origin.trim();
    if is_same_origin(
        origin,
        headers.get(header::HOST).and_then(|h| h.to_str().ok()),
        tls,
    ) {
        return OriginVerdict::SameOrigin;
    }
    if allowed.allows(origin) {
        OriginVerdict::Allowed(origin.to_owned())
    } else {
        OriginVerdict::Refused(origin.to_owned())
    }
}

/// Whether `origin` names the server itself as reached through `host` (the Host header).
fn is_same_origin(origin: &str, host: Option<&str>, tls: bool) -> bool {
    let (Some(o), Some(host)) = (parse(origin), host) else {
        return false;
    };
    let scheme = if tls { "https" } else { "http" };
    if o.scheme != scheme {
        return false;
    }
    let Some((h, p)) = split_host_port(host.trim()) else {
        return false;
    };
    o.host == h.to_ascii_lowercase()
        && o.port.or(default_port(&o.scheme)) == p.or(default_port(scheme))
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn headers(origin: Option<&str>, host: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, HeaderValue::from_str(host).unwrap());
        if let Some(o) = origin {
            h.insert(header::ORIGIN, HeaderValue::from_str(o).unwrap());
        }
        h
    }

    #[test]
    fn same_origin_and_no_origin_pass_everything_else_needs_the_list() {
        let none = OriginList::default();
        assert_eq!(
            check(&headers(None, "a:1"), false, &none),
            OriginVerdict::NoOrigin
        );
        assert_eq!(
            check(
                &headers(Some("http://127.0.0.1:4443"), "127.0.0.1:4443"),
                false,
                &none
            ),
            OriginVerdict::SameOrigin
        );
        assert_eq!(
            check(
                &headers(Some("https://sfu.example"), "SFU.example:443"),
                true,
                &none
            ),
            OriginVerdict::SameOrigin
        );
        // Same host, other port or scheme: another origin.
        for o in [
            "http://127.0.0.1:8080",
            "https://127.0.0.1:4443",
            "null",
            "http://evil.example",
        ] {
            assert!(
                !check(&headers(Some(o), "127.0.0.1:4443"), false, &none).is_allowed(),
                "{o}"
            );
        }
        let list = OriginList::new([
            "http://127.0.0.1:8080",
            "https://app.example",
            "http://localhost:*",
        ])
        .unwrap();
        assert_eq!(
            check(
                &headers(Some("http://127.0.0.1:8080"), "127.0.0.1:4443"),
                false,
                &list
            ),
            OriginVerdict::Allowed("http://127.0.0.1:8080".into())
        );
        assert!(list.allows("https://APP.example:443"));
        assert!(!list.allows("http://app.example"));
        assert!(list.allows("http://localhost:1234"));
        assert!(!list.allows("http://localhost.evil:1234"));
        assert!(!list.allows("http://127.0.0.1:8081"));
        assert!(OriginList::new(["*"]).unwrap().allows("http://x.y"));
        assert!(OriginList::new(["null"]).unwrap().allows("null"));
    }

    #[test]
    fn malformed_entries_are_refused() {
        assert!(OriginList::new(["example.com"]).is_err());
        assert!(OriginList::new(["http://a.b/path"]).is_err());
        assert!(OriginList::new(["http://a.b:x"]).is_err());
        assert!(OriginList::new(["http://[::1]:80"])
            .unwrap()
            .allows("http://[::1]"));
    }
}
