//! protoo message framing (protoo spec §2), sans-IO: text in, typed message out, and back.
//!
//! A message is one JSON object. Field presence decides its kind, checked in the order
//! `request` → `response` → `notification`, with JavaScript truthiness as protoo does.
//! Anything else (not JSON, not an object, missing or mistyped required fields) is a
//! [`ParseError`]; the protoo rule is to log and drop it, never to answer it.

use serde_json::{json, Map, Value};

/// Error code carried when an error response has no usable `errorCode`.
pub const DEFAULT_ERROR_CODE: u16 = 500;

/// Largest id accepted from the wire: ids must survive a trip through a JavaScript number.
const MAX_SAFE_ID: u64 = (1 << 53) - 1;

/// One parsed protoo message.
#[derive(Debug, Clone, PartialEq)]
pub enum ProtooMessage {
    /// `{"request":true,"id":…,"method":…,"data":…}`.
    Request {
        /// Requester-chosen id, echoed in the response.
        id: u64,
        /// Method name.
        method: String,
        /// Payload; `{}` when absent or falsy.
        data: Value,
    },
    /// `{"response":true,"id":…, "ok":true,"data":…}` or `{…,"errorCode":…,"errorReason":…}`.
    Response {
        /// Id of the request this answers.
        id: u64,
        /// `Ok(data)` for a success response, `Err((errorCode, errorReason))` otherwise.
        result: Result<Value, (u16, String)>,
    },
    /// `{"notification":true,"method":…,"data":…}`.
    Notification {
        /// Method name.
        method: String,
        /// Payload; `{}` when absent or falsy.
        data: Value,
    },
}

/// Why a text frame is not a protoo message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// The text is not JSON.
    #[error("invalid JSON: {0}")]
    Json(String),
    /// The JSON is not an object.
    #[error("message is not a JSON object")]
    NotObject,
    /// None of `request`, `response`, `notification` is set.
    #[error("message is neither request, response nor notification")]
    UnknownKind,
    /// `id` is missing or not a non-negative integral number.
    #[error("missing or invalid id")]
    BadId,
    /// `method` is missing or not a string.
    #[error("missing or invalid method")]
    BadMethod,
}

/// Parses one text frame.
pub fn parse(text: &str) -> Result<ProtooMessage, ParseError> {
    let value: Value = serde_json::from_str(text).map_err(|e| ParseError::Json(e.to_string()))?;
    let Value::Object(mut obj) = value else {
        return Err(ParseError::NotObject);
    };
    if truthy(obj.get("request")) {
        let id = parse_id(obj.get("id"))?;
        let method = take_method(&mut obj)?;
        Ok(ProtooMessage::Request {
            id,
            method,
            data: take_data(&mut obj),
        })
    } else if truthy(obj.get("response")) {
        let id = parse_id(obj.get("id"))?;
        let result = if truthy(obj.get("ok")) {
            Ok(take_data(&mut obj))
        } else {
            let code = obj
                .get("errorCode")
                .and_then(Value::as_u64)
                .and_then(|c| u16::try_from(c).ok())
                .unwrap_or(DEFAULT_ERROR_CODE);
            let reason = match obj.get("errorReason") {
                Some(Value::String(s)) => s.clone(),
                Some(Value::Null) | None => String::new(),
                Some(other) => other.to_string(),
            };
            Err((code, reason))
        };
        Ok(ProtooMessage::Response { id, result })
    } else if truthy(obj.get("notification")) {
        let method = take_method(&mut obj)?;
        Ok(ProtooMessage::Notification {
            method,
            data: take_data(&mut obj),
        })
    } else {
        Err(ParseError::UnknownKind)
    }
}

/// Serializes a request.
pub fn request_json(id: u64, method: &str, data: Value) -> String {
    json!({"request": true, "id": id, "method": method, "data": data}).to_string()
}

/// Serializes a success response.
pub fn ok_response_json(id: u64, data: Value) -> String {
    json!({"response": true, "id": id, "ok": true, "data": data}).to_string()
}

/// Serializes an error response (protoo puts no `ok` field in it).
pub fn error_response_json(id: u64, code: u16, reason: &str) -> String {
    json!({"response": true, "id": id, "errorCode": code, "errorReason": reason}).to_string()
}

/// Serializes a notification.
pub fn notification_json(method: &str, data: Value) -> String {
    json!({"notification": true, "method": method, "data": data}).to_string()
}

/// JavaScript truthiness, because protoo tests these fields with `if (object.request)`.
fn truthy(v: Option<&Value>) -> bool {
    match v {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(Value::Number(n)) => n.as_f64().is_some_and(|f| f != 0.0 && !f.is_nan()),
        Some(Value::String(s)) => !s.is_empty(),
        Some(Value::Array(_)) | Some(Value::Object(_)) => true,
    }
}

/// protoo only requires `typeof id === 'number'`; we also need it to be a u64 to echo it
/// exactly, so integral floats (`5.0`) are accepted and anything else is refused.
fn parse_id(v: Option<&Value>) -> Result<u64, ParseError> {
    let Some(Value::Number(n)) = v else {
        return Err(ParseError::BadId);
    };
    let id = match n.as_u64() {
        Some(id) => id,
        None => {
            let f = n.as_f64().ok_or(ParseError::BadId)?;
            if f.fract() != 0.0 || !(0.0..=MAX_SAFE_ID as f64).contains(&f) {
                return Err(ParseError::BadId);
            }
            // Exact: f is integral and within the 53-bit range.
            f as u64
        }
    };
    if id > MAX_SAFE_ID {
        return Err(ParseError::BadId);
    }
    Ok(id)
}

fn take_method(obj: &mut Map<String, Value>) -> Result<String, ParseError> {
    match obj.remove("method") {
        Some(Value::String(s)) => Ok(s),
        _ => Err(ParseError::BadMethod),
    }
}

/// protoo: `data = object.data || {}`.
fn take_data(obj: &mut Map<String, Value>) -> Value {
    let data = obj.remove("data");
    if truthy(data.as_ref()) {
        data.unwrap_or_else(|| json!({}))
    } else {
        json!({})
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_spec_examples() {
        assert_eq!(
            parse(r#"{"request":true,"id":5342671,"method":"getRouterRtpCapabilities","data":{}}"#),
            Ok(ProtooMessage::Request {
                id: 5342671,
                method: "getRouterRtpCapabilities".into(),
                data: json!({})
            })
        );
        assert_eq!(
            parse(r#"{"response":true,"id":5342671,"ok":true,"data":{"codecs":[]}}"#),
            Ok(ProtooMessage::Response {
                id: 5342671,
                result: Ok(json!({"codecs": []}))
            })
        );
        assert_eq!(
            parse(
                r#"{"response":true,"id":881,"errorCode":500,"errorReason":"transport with id \"abc\" not found"}"#
            ),
            Ok(ProtooMessage::Response {
                id: 881,
                result: Err((500, "transport with id \"abc\" not found".into()))
            })
        );
        assert_eq!(
            parse(r#"{"notification":true,"method":"peerClosed","data":{"peerId":"x7k2m9qa"}}"#),
            Ok(ProtooMessage::Notification {
                method: "peerClosed".into(),
                data: json!({"peerId": "x7k2m9qa"})
            })
        );
    }

    #[test]
    fn data_defaults_and_array_data() {
        assert_eq!(
            parse(r#"{"request":true,"id":1,"method":"m"}"#),
            Ok(ProtooMessage::Request {
                id: 1,
                method: "m".into(),
                data: json!({})
            })
        );
        assert_eq!(
            parse(r#"{"notification":true,"method":"m","data":null}"#),
            Ok(ProtooMessage::Notification {
                method: "m".into(),
                data: json!({})
            })
        );
        // Stats responses carry arrays.
        assert_eq!(
            parse(r#"{"response":true,"id":2,"ok":true,"data":[1,2]}"#),
            Ok(ProtooMessage::Response {
                id: 2,
                result: Ok(json!([1, 2]))
            })
        );
    }

    #[test]
    fn falsy_ok_is_an_error_response() {
        assert_eq!(
            parse(r#"{"response":true,"id":3,"ok":false,"errorCode":403,"errorReason":"no"}"#),
            Ok(ProtooMessage::Response {
                id: 3,
                result: Err((403, "no".into()))
            })
        );
        assert_eq!(
            parse(r#"{"response":true,"id":3}"#),
            Ok(ProtooMessage::Response {
                id: 3,
                result: Err((DEFAULT_ERROR_CODE, String::new()))
            })
        );
    }

    #[test]
    fn kind_precedence_is_request_first() {
        let m = parse(r#"{"notification":true,"request":true,"id":9,"method":"x"}"#).unwrap();
        assert!(matches!(m, ProtooMessage::Request { id: 9, .. }));
    }

    #[test]
    fn rejects_malformed() {
        assert!(matches!(parse("{not json"), Err(ParseError::Json(_))));
        assert_eq!(parse("[1,2]"), Err(ParseError::NotObject));
        assert_eq!(parse("42"), Err(ParseError::NotObject));
        assert_eq!(
            parse(r#"{"id":1,"method":"x"}"#),
            Err(ParseError::UnknownKind)
        );
        assert_eq!(
            parse(r#"{"request":false,"id":1,"method":"x"}"#),
            Err(ParseError::UnknownKind)
        );
        assert_eq!(
            parse(r#"{"request":true,"method":"x"}"#),
            Err(ParseError::BadId)
        );
        assert_eq!(
            parse(r#"{"request":true,"id":"1","method":"x"}"#),
            Err(ParseError::BadId)
        );
        assert_eq!(
            parse(r#"{"request":true,"id":-1,"method":"x"}"#),
            Err(ParseError::BadId)
        );
        assert_eq!(
            parse(r#"{"request":true,"id":1.5,"method":"x"}"#),
            Err(ParseError::BadId)
        );
        assert_eq!(
            parse(r#"{"request":true,"id":1}"#),
            Err(ParseError::BadMethod)
        );
        assert_eq!(
            parse(r#"{"notification":true,"method":7}"#),
            Err(ParseError::BadMethod)
        );
        assert_eq!(
            parse(r#"{"response":true,"ok":true}"#),
            Err(ParseError::BadId)
        );
    }

    #[test]
    fn integral_float_ids_are_accepted() {
        assert!(matches!(
            parse(r#"{"request":true,"id":7.0,"method":"x"}"#),
            Ok(ProtooMessage::Request { id: 7, .. })
        ));
    }

    /// The writers against the wire examples of the protoo spec (shared/spec/protoo.md §2, the
    /// shapes protoo-client's Message.js builds), compared as JSON values: independent of `parse`.
    #[test]
    fn writers_match_the_spec_examples() {
        let wire = |text: &str| serde_json::from_str::<Value>(text).unwrap();
        let cases = [
            (
                request_json(5342671, "getRouterRtpCapabilities", json!({})),
                r#"{"request":true,"id":5342671,"method":"getRouterRtpCapabilities","data":{}}"#,
            ),
            (
                ok_response_json(5342671, json!({"codecs": [], "headerExtensions": []})),
                r#"{"response":true,"id":5342671,"ok":true,"data":{"codecs":[],"headerExtensions":[]}}"#,
            ),
            (
                error_response_json(881, 500, "transport with id \"abc\" not found"),
                r#"{"response":true,"id":881,"errorCode":500,"errorReason":"transport with id \"abc\" not found"}"#,
            ),
            (
                notification_json("peerClosed", json!({"peerId": "x7k2m9qa"})),
                r#"{"notification":true,"method":"peerClosed","data":{"peerId":"x7k2m9qa"}}"#,
            ),
        ];
        for (ours, spec) in cases {
            assert_eq!(wire(&ours), wire(spec), "{ours}");
        }
    }

    #[test]
    fn serialized_messages_parse_back() {
        let cases = [
            (
                request_json(12, "newConsumer", json!({"a": 1})),
                ProtooMessage::Request {
                    id: 12,
                    method: "newConsumer".into(),
                    data: json!({"a": 1}),
                },
            ),
            (
                ok_response_json(12, json!({"b": 2})),
                ProtooMessage::Response {
                    id: 12,
                    result: Ok(json!({"b": 2})),
                },
            ),
            (
                error_response_json(12, 403, "nope"),
                ProtooMessage::Response {
                    id: 12,
                    result: Err((403, "nope".into())),
                },
            ),
            (
                notification_json("peerClosed", json!({"peerId": "p"})),
                ProtooMessage::Notification {
                    method: "peerClosed".into(),
                    data: json!({"peerId": "p"}),
                },
            ),
        ];
        for (text, expected) in cases {
            assert_eq!(parse(&text), Ok(expected), "{text}");
        }
        // The exact protoo wire shape of an error response: no `ok` field at all.
        let v: Value = serde_json::from_str(&error_response_json(1, 500, "x")).unwrap();
        assert_eq!(
            v,
            json!({"response": true, "id": 1, "errorCode": 500, "errorReason": "x"})
        );
    }
}
