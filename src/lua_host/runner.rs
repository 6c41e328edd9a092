//! Runs one handler invocation in its own coroutine, with an instruction budget, and turns a
//! Lua failure into a protoo-style error (code + reason, see [`super::error`]) plus a log line
//! with the location.

use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;

use mlua::{Function, HookTriggers, IntoLuaMulti, Lua, MultiValue, VmState};

use super::error::{classify, full_message, invalid, HandlerError};
use super::Host;

/// Instructions between two budget checks.
const HOOK_EVERY: u32 = 1000;

/// Longest `ringsfu.sleep` / timer delay accepted (one day), so a typo cannot park a coroutine
/// forever.
pub(crate) const MAX_DELAY_S: f64 = 86_400.0;

/// Converts a script's delay in seconds, refusing negative, NaN and huge values.
pub(crate) fn delay(seconds: f64) -> mlua::Result<Duration> {
    if !(0.0..=MAX_DELAY_S).contains(&seconds) {
        return Err(invalid(format!(
            "delay {seconds} s is not within 0..{MAX_DELAY_S}"
        )));
    }
    Ok(Duration::from_secs_f64(seconds))
}

/// Runs `f(args)` in the background, in its own coroutine with the host's budget (hooks,
/// event callbacks, `ringsfu.spawn`); a failure is logged under `what`. The one way the host
/// starts a handler nobody waits for.
pub fn spawn(host: &Rc<Host>, what: String, f: Function, args: impl IntoLuaMulti) {
    let args = match args.into_lua_multi(&host.lua) {
        Ok(a) => a,
        Err(e) => {
            log::warn!("lua {what}: bad arguments: {e}");
            return;
        }
    };
    let host = host.clone();
    tokio::task::spawn_local(async move {
        let _ = run(&host.lua, &what, host.budget(), f, args).await;
    });
}

/// Runs every callback of one event with the same arguments, each by [`spawn`]; the
/// arguments are built only when there is a callback.
pub fn spawn_each(
    host: &Rc<Host>,
    what: &str,
    handlers: Vec<Function>,
    args: impl FnOnce() -> mlua::Result<MultiValue>,
) {
    if handlers.is_empty() {
        return;
    }
    let args = match args() {
        Ok(a) => a,
        Err(e) => {
            log::warn!("lua {what}: cannot build arguments: {e}");
            return;
        }
    };
    for f in handlers {
        spawn(host, what.to_owned(), f, args.clone());
    }
}

/// Runs `f(args)` as a new coroutine to completion (it may yield on host calls), charging at
/// most `budget` VM instructions. `what` names the handler in logs.
pub async fn run(
    lua: &Lua,
    what: &str,
    budget: u64,
    f: Function,
    args: impl IntoLuaMulti,
) -> Result<MultiValue, HandlerError> {
    crate::ops::lua_stats::invoked();
    let result = crate::ops::lua_stats::Timed::new(async {
        let thread = lua.create_thread(f)?;
        let used = Rc::new(Cell::new(0u64));
        thread.set_hook(
            HookTriggers::new().every_nth_instruction(HOOK_EVERY),
            move |_lua, debug| {
                used.set(used.get() + u64::from(HOOK_EVERY));
                if used.get() > budget {
                    let src = debug.source();
                    let at = format!(
                        "{}:{}",
                        src.short_src.as_deref().unwrap_or("?"),
                        debug.current_line().unwrap_or(0)
                    );
                    return Err(mlua::Error::RuntimeError(format!(
                        "instruction limit ({budget}) exceeded at {at}"
                    )));
                }
                Ok(VmState::Continue)
            },
        )?;
        thread.into_async::<MultiValue>(args)?.await
    })
    .await;
    result.map_err(|e| {
        crate::ops::lua_stats::failed();
        let failure = classify(&e);
        if failure.code >= 500 {
            log::warn!("lua {what} failed: {}", full_message(&e));
        } else {
            log::debug!("lua {what} refused: {} {}", failure.code, failure.reason);
        }
        failure
    })
}

#[cfg(test)]
mod tests {
    use super::super::error::ScriptFailure;
    use super::*;

    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        tokio::task::LocalSet::new().block_on(&rt, f)
    }

    #[test]
    fn returns_values_and_counts_instructions() {
        let lua = Lua::new();
        let f: Function = lua
            .load("return function(a) local s = 0 for i = 1, a do s = s + i end return s end")
            .eval()
            .unwrap();
        let out = block_on(run(&lua, "t", 1_000_000, f.clone(), 100)).unwrap();
        assert_eq!(out.into_iter().next().unwrap().as_i64(), Some(5050));
        // The same function over the budget is stopped, naming the limit and the location.
        let err = block_on(run(&lua, "t", 10_000, f, 1_000_000)).unwrap_err();
        assert_eq!(err.code, 500);
        assert!(
            err.reason.contains("instruction limit (10000) exceeded at"),
            "{}",
            err.reason
        );
    }

    #[test]
    fn endless_loop_is_stopped() {
        let lua = Lua::new();
        let f: Function = lua
            .load("return function() while true do end end")
            .set_name("@loop.lua")
            .eval()
            .unwrap();
        let err = block_on(run(&lua, "t", 100_000, f, ())).unwrap_err();
        assert!(err.reason.contains("loop.lua:1"), "{}", err.reason);
    }

    #[test]
    fn raised_errors_keep_location_and_script_failures_their_code() {
        let lua = Lua::new();
        let fail = lua
            .create_function(|_, (code, reason): (u16, String)| {
                Err::<(), _>(mlua::Error::external(ScriptFailure { code, reason }))
            })
            .unwrap();
        lua.globals().set("fail", fail).unwrap();
        let f: Function = lua
            .load("return function() error('boom') end")
            .set_name("@room.lua")
            .eval()
            .unwrap();
        let err = block_on(run(&lua, "t", 1_000_000, f, ())).unwrap_err();
        assert_eq!(
            err,
            HandlerError {
                code: 500,
                reason: "room.lua:1: boom".into()
            }
        );
        let f: Function = lua
            .load("return function() fail(403, 'nope') end")
            .eval()
            .unwrap();
        let err = block_on(run(&lua, "t", 1_000_000, f, ())).unwrap_err();
        assert_eq!(
            err,
            HandlerError {
                code: 403,
                reason: "nope".into()
            }
        );
    }

    #[test]
    fn memory_limit_stops_the_handler_and_the_state_goes_on() {
        let lua = Lua::new();
        lua.set_memory_limit(8 * 1024 * 1024).unwrap();
        let f: Function = lua
            .load("return function() local t = {} for i = 1, 1e8 do t[i] = ('x'):rep(100) .. i end end")
            .eval()
            .unwrap();
        let err = block_on(run(&lua, "t", u64::MAX, f, ())).unwrap_err();
        assert!(err.reason.contains("memory"), "{}", err.reason);
        let ok: i64 = lua.load("return 1 + 1").eval().unwrap();
        assert_eq!(ok, 2);
    }

    #[test]
    fn yields_on_async_host_calls() {
        use std::cell::RefCell;
        // The handler awaits a host call that only completes when another task on the same
        // single-threaded executor has run: it can only finish if `run` yields while it waits.
        let lua = Lua::new();
        let log = Rc::new(RefCell::new(Vec::<String>::new()));
        let gate = Rc::new(tokio::sync::Notify::new());
        let (l, g) = (log.clone(), gate.clone());
        let wait = lua
            .create_async_function(move |_, tag: String| {
                let (l, g) = (l.clone(), g.clone());
                async move {
                    l.borrow_mut().push(format!("{tag} waits"));
                    g.notified().await;
                    l.borrow_mut().push(format!("{tag} resumed"));
                    Ok(tag.len())
                }
            })
            .unwrap();
        lua.globals().set("wait", wait).unwrap();
        let f: Function = lua
            .load("return function() return wait('lua') + wait('again') end")
            .eval()
            .unwrap();
        let other = async {
            for step in ["lua waits", "again waits"] {
                while !log.borrow().iter().any(|e| e == step) {
                    tokio::task::yield_now().await;
                }
                log.borrow_mut().push(format!("other ran after {step}"));
                gate.notify_one();
            }
        };
        let out = block_on(async {
            tokio::time::timeout(std::time::Duration::from_secs(10), async {
                tokio::join!(run(&lua, "t", 1_000_000, f, ()), other).0
            })
            .await
            .expect("the handler never yielded to the other task")
        })
        .unwrap();
        assert_eq!(out.into_iter().next().unwrap().as_i64(), Some(8));
        assert_eq!(
            *log.borrow(),
            [
                "lua waits",
                "other ran after lua waits",
                "lua resumed",
                "again waits",
                "other ran after again waits",
                "again resumed"
            ]
        );
    }
}
