//! ringsfu: the server. Configuration ([`config`]), room scripts ([`scripts`]), the Lua host
//! ([`lua_host`]), the room registry ([`registry`]), worker threads ([`executor`]), the protoo
//! and HTTP glue ([`signaling`]) and the startable server ([`server`]).

pub mod config;
pub mod executor;
pub mod lua_host;
pub mod registry;
pub mod scripts;
