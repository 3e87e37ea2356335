//! The agent: brokers for one user's named profiles behind a unix socket,
//! and the client the `authplug` CLI uses to talk to it.
//!
//! The socket speaks JSON lines: one request per line, answered by zero or
//! more progress lines (`{"v":1,"stderr":"..."}`, the plugin's stderr while a
//! run is under way) and one final line with `"ok"`. See [`wire`].

pub mod client;
pub mod config;
pub mod paths;
pub mod server;
pub mod wire;
