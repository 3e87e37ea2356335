//! The authplug agent: [`Broker`](authplug_broker::Broker)s for one user's
//! named profiles behind a unix socket, and the client that talks to it.
//! The `authplug` binary (`src/main.rs`, a thin command line over this
//! library) runs it and is its client.
//!
//! - [`server`]: binds the socket (0600 in a 0700 directory, peers' uid
//!   checked), serves JSON lines, keeps itself available (connection cap,
//!   idle timeout, a bound on unfinished input).
//! - [`activation`]: the socket a supervisor (systemd) passes, for socket
//!   activation.
//! - [`client`]: connects, starts an agent on demand, sends one request
//!   and reads its answer.
//! - [`wire`]: the socket protocol's types, versioned; the contract for
//!   clients in any language (docs/agent.md, "The socket protocol").
//! - [`config`]: the profiles file and `--profile` flags.
//! - `consumers` (internal): the token each named consumer (a kubectl
//!   process) was last given, so that its next ask, after a 401, gets a
//!   new one.
//! - [`reload`]: the profiles as the config file says now (an edit needs
//!   no restart).
//! - [`paths`]: where the socket, its lock, the log and the config live.
//! - [`secret_file`]: reading a file that holds secrets into one wiped
//!   buffer.
//!
//! What this crate is not: it does not run plugins or cache tokens (the
//! broker library does), and it parses no command line (the binary does).

#![warn(missing_docs)]

pub mod activation;
pub mod client;
pub mod config;
pub(crate) mod consumers;
pub(crate) mod mcp_servers;
pub mod paths;
pub mod reload;
pub mod secret_file;
pub mod server;
pub mod wire;
