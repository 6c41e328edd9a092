//! Room script sources: which script serves a room, where its text comes from, and reload.
//!
//! Sources are read from disk only at start and on reload (never while serving). Each room
//! runs the source that was current when it was created; a reload changes what NEW rooms get,
//! and running rooms keep their own compiled copy until they end.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use crate::config::RoomRoute;

/// Scripts embedded in the binary, found by their configured relative path.
const EMBEDDED: &[(&str, &str)] = &[
    ("lua/rooms/demo.lua", include_str!("../lua/rooms/demo.lua")),
    (
        "lua/rooms/one_to_one.lua",
        include_str!("../lua/rooms/one_to_one.lua"),
    ),
    (
        "lua/http/broadcasters.lua",
        include_str!("../lua/http/broadcasters.lua"),
    ),
    (
        "lua/rooms/token_room.lua",
        include_str!("../lua/rooms/token_room.lua"),
    ),
    (
        "lua/calls/socketio_room.lua",
        include_str!("../lua/calls/socketio_room.lua"),
    ),
    ("lua/http/whip.lua", include_str!("../lua/http/whip.lua")),
    (
        "lua/lib/whip_util.lua",
        include_str!("../lua/lib/whip_util.lua"),
    ),
    (
        "lua/lib/demo_peers.lua",
        include_str!("../lua/lib/demo_peers.lua"),
    ),
    (
        "lua/calls/call_relay.lua",
        include_str!("../lua/calls/call_relay.lua"),
    ),
];

/// Why a script could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ScriptError {
    /// Not on disk, not embedded.
    #[error("room script {0:?} not found (looked in the working directory, the config directory and the embedded scripts)")]
    NotFound(String),
    /// Found but unreadable.
    #[error("cannot read room script {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
    /// The text does not compile.
    #[error("room script {name}: {message}")]
    Compile {
        /// Script name.
        name: String,
        /// The Lua error.
        message: String,
    },
    /// A routing pattern is not a valid Lua pattern.
    #[error("rooms[{index}].match {pattern:?}: {message}")]
    Pattern {
        /// 1-based index in `rooms`.
        index: usize,
        /// The pattern.
        pattern: String,
        /// The Lua error.
        message: String,
    },
}

/// One script version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Script {
    /// Name used in Lua error locations (the configured path).
    pub name: String,
    /// Lua source text.
    pub source: Arc<str>,
}

/// Where a room script comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScriptSource {
    /// A path, resolved as documented on [`ScriptStore`].
    Path(String),
    /// Inline source (for tests and embedders).
    Inline {
        /// Name used in error locations.
        name: String,
        /// Lua source text.
        source: String,
    },
}

/// A routing rule: rooms whose id matches `pattern` (a Lua pattern) use `script`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// Lua pattern.
    pub pattern: String,
    /// The script.
    pub script: ScriptSource,
}

impl From<&RoomRoute> for Route {
    fn from(r: &RoomRoute) -> Self {
        Route {
            pattern: r.pattern.clone(),
            script: ScriptSource::Path(r.script.clone()),
        }
    }
}

/// The current scripts, shared by every worker. Relative paths are looked up in the working
/// directory, then in `base_dir`, then among the embedded scripts.
#[derive(Debug)]
pub struct ScriptStore {
    routes: Vec<Route>,
    /// Scripts loaded (and reloaded) without serving rooms: the HTTP API script.
    extra: Vec<ScriptSource>,
    base_dir: Option<PathBuf>,
    current: RwLock<Arc<HashMap<String, Script>>>,
}

impl ScriptStore {
    /// Loads every routed script (and checks it compiles); fails on the first bad one.
    pub fn new(routes: Vec<Route>, base_dir: Option<PathBuf>) -> Result<ScriptStore, ScriptError> {
        ScriptStore::with_extra(routes, Vec::new(), base_dir)
    }

    /// Like [`ScriptStore::new`], also loading `extra` scripts that serve no room (found with
    /// [`ScriptStore::by_path`]), e.g. the HTTP API script.
    pub fn with_extra(
        routes: Vec<Route>,
        extra: Vec<ScriptSource>,
        base_dir: Option<PathBuf>,
    ) -> Result<ScriptStore, ScriptError> {
        let store = ScriptStore {
            routes,
            extra,
            base_dir,
            current: RwLock::new(Arc::new(HashMap::new())),
        };
        store.check_patterns()?;
        store.reload()?;
        Ok(store)
    }

    /// Re-reads every script. All-or-nothing: on any error the previous versions stay. Returns
    /// the names of the scripts whose text changed.
    pub fn reload(&self) -> Result<Vec<String>, ScriptError> {
        let mut fresh = HashMap::new();
        for src in self.routes.iter().map(|r| &r.script).chain(&self.extra) {
            let key = route_key(src);
            if fresh.contains_key(&key) {
                continue;
            }
            let script = self.read(src)?;
            compile_check(&script)?;
            fresh.insert(key, script);
        }
        // Embedded scripts are always available to `ringsfu.include` (disk copies win).
        for (name, _) in EMBEDDED {
            let key = route_key(&ScriptSource::Path((*name).to_owned()));
            if let std::collections::hash_map::Entry::Vacant(slot) = fresh.entry(key) {
                let script = self.read(&ScriptSource::Path((*name).to_owned()))?;
                compile_check(&script)?;
                slot.insert(script);
            }
        }
        let mut cur = self.current.write().unwrap_or_else(|e| e.into_inner());
        let changed = fresh
            .iter()
            .filter(|(k, v)| cur.get(*k) != Some(*v))
            .map(|(_, v)| v.name.clone())
            .collect();
        *cur = Arc::new(fresh);
        Ok(changed)
    }

    /// The script serving `room_id` (first matching route), or `None` when no route matches.
    pub fn script_for(&self, room_id: &str) -> Option<Script> {
        let cur = self
            .current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let lua = mlua::Lua::new();
        let find: mlua::Function = lua
            .globals()
            .get::<mlua::Table>("string")
            .ok()?
            .get("find")
            .ok()?;
        for r in &self.routes {
            let hit: mlua::Value = find
                .call((room_id, r.pattern.as_str()))
                .unwrap_or(mlua::Value::Nil);
            if !hit.is_nil() {
                return cur.get(&route_key(&r.script)).cloned();
            }
        }
        None
    }

    /// A loaded script by its configured path (routed scripts and the embedded ones), for
    /// `ringsfu.include`. Never touches the disk.
    pub fn by_path(&self, path: &str) -> Option<Script> {
        let cur = self.current.read().unwrap_or_else(|e| e.into_inner());
        cur.get(&route_key(&ScriptSource::Path(path.to_owned())))
            .cloned()
    }

    fn check_patterns(&self) -> Result<(), ScriptError> {
        let lua = mlua::Lua::new();
        let find: mlua::Function =
            lua.load("return string.find")
                .eval()
                .map_err(|e| ScriptError::Compile {
                    name: "string.find".into(),
                    message: e.to_string(),
                })?;
        for (i, r) in self.routes.iter().enumerate() {
            find.call::<mlua::Value>(("", r.pattern.as_str()))
                .map_err(|e| ScriptError::Pattern {
                    index: i + 1,
                    pattern: r.pattern.clone(),
                    message: e.to_string(),
                })?;
        }
        Ok(())
    }

    fn read(&self, src: &ScriptSource) -> Result<Script, ScriptError> {
        match src {
            ScriptSource::Inline { name, source } => Ok(Script {
                name: name.clone(),
                source: source.as_str().into(),
            }),
            ScriptSource::Path(p) => {
                let mut candidates = vec![PathBuf::from(p)];
                if Path::new(p).is_relative() {
                    if let Some(base) = &self.base_dir {
                        candidates.push(base.join(p));
                    }
                }
                for c in candidates {
                    if c.is_file() {
                        let text =
                            std::fs::read_to_string(&c).map_err(|source| ScriptError::Read {
                                path: c.clone(),
                                source,
                            })?;
                        return Ok(Script {
                            name: p.clone(),
                            source: text.into(),
                        });
                    }
                }
                EMBEDDED
                    .iter()
                    .find(|(name, _)| *name == p.trim_start_matches("./"))
                    .map(|(name, text)| Script {
                        name: (*name).to_owned(),
                        source: (*text).into(),
                    })
                    .ok_or_else(|| ScriptError::NotFound(p.clone()))
            }
        }
    }
}

fn route_key(s: &ScriptSource) -> String {
    match s {
        ScriptSource::Path(p) => format!("path:{p}"),
        ScriptSource::Inline { name, .. } => format!("inline:{name}"),
    }
}

/// Compiles (without running) to refuse syntax errors before any room uses the script.
fn compile_check(s: &Script) -> Result<(), ScriptError> {
    let lua = mlua::Lua::new();
    lua.load(&*s.source)
        .set_name(format!("@{}", s.name))
        .into_function()
        .map(|_| ())
        .map_err(|e| ScriptError::Compile {
            name: s.name.clone(),
            message: e.to_string(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inline(name: &str, src: &str) -> ScriptSource {
        ScriptSource::Inline {
            name: name.into(),
            source: src.into(),
        }
    }

    #[test]
    fn routes_by_pattern_first_match_wins() {
        let store = ScriptStore::new(
            vec![
                Route {
                    pattern: "^one2one%-".into(),
                    script: inline("a", "return {}"),
                },
                Route {
                    pattern: ".*".into(),
                    script: inline("b", "return {x=1}"),
                },
            ],
            None,
        )
        .unwrap();
        assert_eq!(store.script_for("one2one-x").unwrap().name, "a");
        assert_eq!(store.script_for("other").unwrap().name, "b");
    }

    #[test]
    fn embedded_scripts_are_found_and_compile() {
        let store = ScriptStore::new(
            vec![
                Route {
                    pattern: "^one2one%-".into(),
                    script: ScriptSource::Path("lua/rooms/one_to_one.lua".into()),
                },
                Route {
                    pattern: ".*".into(),
                    script: ScriptSource::Path("lua/rooms/demo.lua".into()),
                },
            ],
            Some(PathBuf::from("/nonexistent")),
        )
        .unwrap();
        assert_eq!(store.script_for("r").unwrap().name, "lua/rooms/demo.lua");
    }

    #[test]
    fn errors_are_named() {
        let e = ScriptStore::new(
            vec![Route {
                pattern: ".*".into(),
                script: inline("broken.lua", "return {"),
            }],
            None,
        )
        .unwrap_err();
        assert!(e.to_string().contains("broken.lua"), "{e}");
        let e = ScriptStore::new(
            vec![Route {
                pattern: ".*".into(),
                script: ScriptSource::Path("nope/missing.lua".into()),
            }],
            None,
        )
        .unwrap_err();
        assert!(matches!(e, ScriptError::NotFound(_)), "{e}");
        let e = ScriptStore::new(
            vec![Route {
                pattern: "[".into(),
                script: inline("x", "return {}"),
            }],
            None,
        )
        .unwrap_err();
        assert!(matches!(e, ScriptError::Pattern { index: 1, .. }), "{e}");
    }

    #[test]
    fn reload_picks_up_changes_and_keeps_old_on_error() {
        let dir = std::env::temp_dir().join(format!("ringsfu-scripts-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("room.lua");
        std::fs::write(&file, "return {v=1}").unwrap();
        let store = ScriptStore::new(
            vec![Route {
                pattern: ".*".into(),
                script: ScriptSource::Path(file.display().to_string()),
            }],
            None,
        )
        .unwrap();
        assert!(store.script_for("r").unwrap().source.contains("v=1"));
        std::fs::write(&file, "return {v=2}").unwrap();
        assert_eq!(store.reload().unwrap().len(), 1);
        assert!(store.script_for("r").unwrap().source.contains("v=2"));
        std::fs::write(&file, "return {").unwrap();
        assert!(store.reload().is_err());
        assert!(store.script_for("r").unwrap().source.contains("v=2"));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
