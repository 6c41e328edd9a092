//! Call sessions served by Lua: socket.io sockets and plain `/call` WebSockets. The plugin
//! carries frames; the session's script (`calls.socketIoScript` / `calls.wsScript`) decides
//! what each event or frame does.
//!
//! A call script is a chunk returning a table of hooks, evaluated once per worker Lua state
//! (so its upvalues, e.g. the rooms of `socketio_room.lua`, are shared by every session it
//! serves). Hooks (all optional):
//!
//! * `on_connect(session)`: a session opened; return `false, code, reason` to refuse it
//!   (socket.io: `connect_error` with the reason; WebSocket: that HTTP status).
//! * `events[name](session, ...)` (socket.io): the client emitted `name` with those arguments;
//!   `on_event(session, name, ...)` is the fallback.
//! * `on_message(session, text)` (WebSocket): a text frame.
//! * `on_disconnect(session, reason)`: the session ended (client left, transport dropped, ping
//!   timeout). Always the last hook of a session.
//!
//! Each hook runs in its own coroutine with the instruction budget; a session's hooks run one
//! after the other in arrival order.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;

use mlua::{Function, LuaSerdeExt, MultiValue, Table, UserData, Value};
use ringsfu_plugins::{Reject, SessionHandle, SessionInbound, SessionKind, SessionOpen};
use tokio::sync::{mpsc, oneshot};

use super::{runner, Host, HostSettings};

thread_local! {
    /// Loaded call scripts of this worker, by configured path.
    static APPS: RefCell<HashMap<String, Table>> = RefCell::new(HashMap::new());
}

/// A session as scripts see it (`session` in the hooks).
pub(crate) struct LuaSession {
    handle: SessionHandle,
    kind: &'static str,
    remote: String,
    closed: Rc<Cell<bool>>,
}

impl UserData for LuaSession {
    fn add_fields<F: mlua::UserDataFields<Self>>(fields: &mut F) {
        fields.add_field_method_get("id", |_, s| Ok(s.handle.id().to_owned()));
        fields.add_field_method_get("kind", |_, s| Ok(s.kind));
        // `data` and `query` are user values of the userdata, not Rust fields: a Table held in
        // Rust is a GC root, so a script keeping the session in its own data would leak both.
        fields.add_field_function_get("data", |_, ud| ud.named_user_value::<Table>("data"));
        fields.add_field_function_get("query", |_, ud| ud.named_user_value::<Table>("query"));
        fields.add_field_method_get("remoteAddress", |_, s| Ok(s.remote.clone()));
        fields.add_field_method_get("closed", |_, s| Ok(s.closed.get()));
    }

    fn add_methods<M: mlua::UserDataMethods<Self>>(methods: &mut M) {
        // socket:emit(event, ...): a socket.io event to this socket. Returns false when the
        // session is gone.
        methods.add_method("emit", |lua, s, (name, args): (String, MultiValue)| {
            let mut json = Vec::with_capacity(args.len());
            for v in args {
                json.push(to_json(lua, v)?);
            }
            Ok(!s.closed.get() && s.handle.emit(name, json))
        });
        // session:send(text_or_table): a text frame (a table is sent as its JSON).
        methods.add_method("send", |lua, s, v: Value| {
            let text = match v {
                Value::String(t) => t.to_str()?.to_owned(),
                other => to_json(lua, other)?.to_string(),
            };
            Ok(!s.closed.get() && s.handle.send_text(text))
        });
        // session:close() / socket:disconnect(): ends the session; on_disconnect follows.
        methods.add_method("close", |_, s, ()| Ok(s.handle.close()));
        methods.add_method("disconnect", |_, s, ()| Ok(s.handle.close()));
        methods.add_meta_method(mlua::MetaMethod::ToString, |_, s, ()| {
            Ok(format!("{} session {}", s.kind, s.handle.id()))
        });
    }
}

fn to_json(lua: &mlua::Lua, v: Value) -> mlua::Result<serde_json::Value> {
    match v {
        Value::Nil => Ok(serde_json::Value::Null),
        v => lua.from_value(v),
    }
}

/// Opens a session on this worker (called on the worker thread) with the script `script`:
/// answers `reply` with the verdict, then serves the session's inbound messages until it ends.
pub fn open(
    settings: Arc<HostSettings>,
    worker: usize,
    script: String,
    open: SessionOpen,
    inbound: mpsc::UnboundedReceiver<SessionInbound>,
    reply: oneshot::Sender<Result<(), Reject>>,
) {
    let host = match Host::get_or_init(&settings, worker) {
        Ok(h) => h,
        Err(e) => {
            let _ = reply.send(Err(Reject::new(500, e.to_string())));
            return;
        }
    };
    tokio::task::spawn_local(serve(host, script, open, inbound, reply));
}

/// The script's hook table, evaluated on first use on this worker.
fn app(host: &Host, name: &str) -> Result<Table, String> {
    if let Some(t) = APPS.with(|a| a.borrow().get(name).cloned()) {
        return Ok(t);
    }
    let script = host
        .settings
        .scripts
        .by_path(name)
        .ok_or_else(|| format!("call script {name:?} is not loaded"))?;
    let t = host
        .eval_module(&script.name, &script.source)
        .map_err(|e| format!("call script {name} failed to load: {e}"))?;
    APPS.with(|a| a.borrow_mut().insert(name.to_owned(), t.clone()));
    Ok(t)
}

fn hook(app: &Table, name: &str) -> Option<Function> {
    app.get::<Option<Function>>(name).ok().flatten()
}

async fn serve(
    host: Rc<Host>,
    script: String,
    open: SessionOpen,
    mut inbound: mpsc::UnboundedReceiver<SessionInbound>,
    reply: oneshot::Sender<Result<(), Reject>>,
) {
    let lua = &host.lua;
    let budget = host.settings.limits.instruction_limit;
    let app = match app(&host, &script) {
        Ok(a) => a,
        Err(e) => {
            log::error!("{e}");
            let _ = reply.send(Err(Reject::new(500, e)));
            return;
        }
    };
    let closed = Rc::new(Cell::new(false));
    let made = (|| -> mlua::Result<mlua::AnyUserData> {
        let query = lua.create_table()?;
        for (k, v) in &open.query {
            if !query.contains_key(k.as_str())? {
                query.set(k.as_str(), v.as_str())?;
            }
        }
        let ud = lua.create_userdata(LuaSession {
            handle: open.handle.clone(),
            kind: match open.kind {
                SessionKind::SocketIo => "socket.io",
                SessionKind::WebSocket { .. } => "websocket",
            },
            remote: open.remote_addr.ip().to_string(),
            closed: closed.clone(),
        })?;
        ud.set_named_user_value("data", lua.create_table()?)?;
        ud.set_named_user_value("query", query)?;
        Ok(ud)
    })();
    let session = match made {
        Ok(s) => s,
        Err(e) => {
            let _ = reply.send(Err(Reject::new(500, e.to_string())));
            return;
        }
    };
    let what = |h: &str| format!("{h} ({script}, session {})", open.id);
    if let Some(f) = hook(&app, "on_connect") {
        match runner::run(lua, &what("on_connect"), budget, f, session.clone()).await {
            Ok(vals) => {
                let mut vals = vals.into_iter();
                if matches!(vals.next(), Some(Value::Boolean(false))) {
                    let code = vals.next().and_then(|v| v.as_u32()).unwrap_or(403) as u16;
                    let reason = vals
                        .next()
                        .and_then(|v| {
                            v.as_string()
                                .and_then(|s| s.to_str().ok().map(|s| s.to_owned()))
                        })
                        .unwrap_or_else(|| "refused".into());
                    closed.set(true);
                    let _ = reply.send(Err(Reject::new(code, reason)));
                    return;
                }
            }
            Err(e) => {
                closed.set(true);
                let _ = reply.send(Err(Reject::new(e.code, e.reason)));
                return;
            }
        }
    }
    let plugin_alive = reply.send(Ok(())).is_ok();
    let mut end_reason = "the plugin dropped the session".to_owned();
    if plugin_alive {
        while let Some(msg) = inbound.recv().await {
            match msg {
                SessionInbound::Event { name, args } => {
                    let direct = app
                        .get::<Option<Table>>("events")
                        .ok()
                        .flatten()
                        .and_then(|t| t.get::<Option<Function>>(name.as_str()).ok().flatten());
                    let mut mv = MultiValue::new();
                    mv.push_back(Value::UserData(session.clone()));
                    let f = match direct {
                        Some(f) => f,
                        None => match hook(&app, "on_event") {
                            Some(f) => {
                                mv.push_back(Value::String(match lua.create_string(&name) {
                                    Ok(s) => s,
                                    Err(_) => continue,
                                }));
                                f
                            }
                            None => {
                                log::debug!("{script}: no handler for event {name:?}; ignored");
                                continue;
                            }
                        },
                    };
                    let mut ok = true;
                    for a in &args {
                        match lua.to_value(a) {
                            Ok(v) => mv.push_back(v),
                            Err(_) => ok = false,
                        }
                    }
                    if ok {
                        let _ =
                            runner::run(lua, &what(&format!("event {name}")), budget, f, mv).await;
                    }
                }
                SessionInbound::Text(text) => {
                    if let Some(f) = hook(&app, "on_message") {
                        let _ = runner::run(
                            lua,
                            &what("on_message"),
                            budget,
                            f,
                            (session.clone(), text),
                        )
                        .await;
                    }
                }
                SessionInbound::Closed { reason } => {
                    end_reason = reason;
                    break;
                }
            }
        }
    }
    closed.set(true);
    if let Some(f) = hook(&app, "on_disconnect") {
        let _ = runner::run(
            lua,
            &what("on_disconnect"),
            budget,
            f,
            (session.clone(), end_reason),
        )
        .await;
    }
}
