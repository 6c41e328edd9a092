//! ringsfu: the server. Configuration ([`config`]), room scripts ([`scripts`]), the Lua host
//! ([`lua_host`]), the room registry ([`registry`]), worker threads ([`executor`]), the protoo
//! and HTTP glue ([`signaling`]) and the startable server ([`server`]).

pub mod calls;
pub mod config;
pub mod executor;
pub mod lua_host;
pub mod ops;
pub mod registry;
pub mod scripts;
pub mod server;
pub mod shared;
pub mod signaling;
pub mod whip;
pub mod workers;

pub use crate::config::Config;
pub use crate::server::{start, start_with, Server, StartError};
