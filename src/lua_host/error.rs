//! Errors as scripts and clients see them: a status code (the protoo `errorCode`, or an HTTP
//! status) and a reason that names the problem.
//!
//! Every error a host function raises carries its code, so no script matches error text:
//! invalid arguments are 400 ([`invalid`]), a request the object's state refuses 409
//! ([`bad_state`]), engine errors their fixed code ([`engine_error`], from
//! [`EngineError::status`]: not found 404, bad state 409, invalid 400, unsupported 501), and
//! everything else (a script bug, the memory or instruction limit) 500. Scripts read the code
//! of an error they caught with `ringsfu.error_status(err)` ([`install`]).

use mlua::{Lua, Table, Value};
use ringsfu_core::engine::EngineError;

/// An error with a status code: raised by scripts with `ringsfu.error(code, reason)` and by
/// host functions; carried through Lua as a Rust error so `pcall` still catches it.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{reason}")]
pub struct ScriptFailure {
    /// protoo errorCode / HTTP status.
    pub code: u16,
    /// errorReason.
    pub reason: String,
}

/// Why a handler produced no result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandlerError {
    /// protoo errorCode.
    pub code: u16,
    /// errorReason sent to the peer.
    pub reason: String,
}

/// An error answered with `code` and `reason`.
pub fn failure(code: u16, reason: impl Into<String>) -> mlua::Error {
    mlua::Error::external(ScriptFailure {
        code,
        reason: reason.into(),
    })
}

/// A bad argument from the script (a wrong option, a malformed id, a missing field): 400.
pub fn invalid(reason: impl Into<String>) -> mlua::Error {
    failure(400, reason)
}

/// A call the object's current state refuses (a closed room): 409.
pub fn bad_state(reason: impl Into<String>) -> mlua::Error {
    failure(409, reason)
}

/// A failure of the host itself (no engine on this worker): 500.
pub fn internal(reason: impl Into<String>) -> mlua::Error {
    failure(500, reason)
}

/// An engine error with the engine's message and the fixed code of its kind.
pub fn engine_error(e: EngineError) -> mlua::Error {
    failure(e.status(), e.to_string())
}

/// The error code and reason a failure is answered with.
pub fn classify(e: &mlua::Error) -> HandlerError {
    match e {
        mlua::Error::CallbackError { cause, .. } => classify(cause),
        mlua::Error::WithContext { cause, .. } => classify(cause),
        mlua::Error::ExternalError(inner) => match inner.downcast_ref::<ScriptFailure>() {
            Some(f) => HandlerError {
                code: f.code,
                reason: f.reason.clone(),
            },
            None => HandlerError {
                code: 500,
                reason: inner.to_string(),
            },
        },
        // A host function called with an argument of the wrong type.
        mlua::Error::BadArgument { .. } | mlua::Error::FromLuaConversionError { .. } => {
            HandlerError {
                code: 400,
                reason: e.to_string(),
            }
        }
        mlua::Error::RuntimeError(m) => HandlerError {
            code: 500,
            // The peer gets the message with its location; the traceback is for the log.
            reason: m
                .split("\nstack traceback:")
                .next()
                .unwrap_or_default()
                .to_owned(),
        },
        mlua::Error::MemoryError(_) => HandlerError {
            code: 500,
            reason: "Lua memory limit exceeded".into(),
        },
        other => HandlerError {
            code: 500,
            reason: other.to_string(),
        },
    }
}

/// The code and reason of an error value a script caught with `pcall`: a host error's own
/// code, 500 for a Lua `error(...)` (its message), 500 and nil for `nil`.
pub fn classify_value(v: &Value) -> HandlerError {
    match v {
        Value::Error(e) => classify(e),
        Value::String(s) => HandlerError {
            code: 500,
            reason: s.to_string_lossy(),
        },
        Value::Nil => HandlerError {
            code: 500,
            reason: String::new(),
        },
        other => HandlerError {
            code: 500,
            reason: other
                .to_string()
                .unwrap_or_else(|_| other.type_name().into()),
        },
    }
}

/// The error with its Lua traceback, for logs.
pub fn full_message(e: &mlua::Error) -> String {
    match e {
        mlua::Error::CallbackError { cause, traceback } => {
            format!("{}\n{traceback}", full_message(cause))
        }
        mlua::Error::RuntimeError(m) => m.clone(),
        other => other.to_string(),
    }
}

/// Installs `ringsfu.error(code, reason)` (raises an error answered with that code) and
/// `ringsfu.error_status(err)` (the `code, reason` of an error caught with `pcall`: 404 for an
/// unknown object, 400 for a bad argument, 409 for a refused state, 501 for what is not built,
/// the script's own code for `ringsfu.error`, 500 for the rest).
pub fn install(lua: &Lua, r: &Table) -> mlua::Result<()> {
    r.set(
        "error",
        lua.create_function(|_, (code, reason): (u16, String)| {
            Err::<(), _>(failure(code, reason))
        })?,
    )?;
    r.set(
        "error_status",
        lua.create_function(|_, err: Value| {
            let e = classify_value(&err);
            Ok((e.code, e.reason))
        })?,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scripts_read_the_code_of_caught_errors() {
        let lua = Lua::new();
        let r = lua.create_table().unwrap();
        install(&lua, &r).unwrap();
        r.set(
            "engine_fails",
            lua.create_function(|_, ()| -> mlua::Result<()> {
                Err(engine_error(EngineError::NotFound {
                    kind: "transport",
                    id: "x".into(),
                }))
            })
            .unwrap(),
        )
        .unwrap();
        r.set(
            "wants_table",
            lua.create_function(|_, _t: Table| Ok(())).unwrap(),
        )
        .unwrap();
        lua.globals().set("ringsfu", r).unwrap();
        let out: Vec<(u16, String)> = lua
            .load(
                r#"
                local out = {}
                local function st(f, ...)
                  local ok, e = pcall(f, ...)
                  assert(not ok)
                  local code, reason = ringsfu.error_status(e)
                  out[#out + 1] = { code, reason }
                end
                st(ringsfu.engine_fails)
                st(ringsfu.error, 429, "slow down")
                st(error, "plain")
                st(ringsfu.wants_table, 3)
                return out
                "#,
            )
            .eval::<Vec<Table>>()
            .unwrap()
            .into_iter()
            .map(|t| (t.get(1).unwrap(), t.get(2).unwrap()))
            .collect();
        assert_eq!(out[0], (404, "transport not found: x".into()), "{out:?}");
        assert_eq!(out[1], (429, "slow down".into()));
        assert_eq!(out[2].0, 500);
        assert!(out[2].1.ends_with("plain"), "{out:?}");
        assert_eq!(out[3].0, 400, "{out:?}");
    }
}
