//! The authplug broker: get tokens from a credential plugin without ever
//! writing its state to disk, without running it twice when many callers ask
//! at once, and without getting stuck when a server rejects a token.
//!
//! A [`Broker`] wraps one plugin command. It keeps the plugin's token and
//! state in memory only (zeroized on drop, redacted in `Debug`, never
//! logged), shares one run among concurrent callers (single flight), cancels
//! a run nobody waits for any more, re-runs the plugin when a server rejects
//! a token ([`Broker::reject`], compare-and-clear), refreshes a JWT ahead of
//! its `exp`, and backs off after a failed interactive login.
//!
//! ```no_run
//! use authplug_broker::{Broker, BrokerOptions, PluginCommand};
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let command = PluginCommand::parse("authplug-oidc --issuer https://id.example.com --client-id cli")?;
//! let broker = Broker::new(command, BrokerOptions::default());
//!
//! // Either take the token yourself and report a 401 with `reject`...
//! let token = broker.token().await?;
//! # let server_said_401 = false;
//! if server_said_401 {
//!     broker.reject(&token);
//!     let _fresh = broker.token().await?; // runs the plugin with AUTHPLUG_REASON=rejected
//! }
//!
//! // ...or let the HTTP helper add the Bearer header and retry once on 401.
//! let client = reqwest::Client::new();
//! let response = broker.send(client.get("https://api.example.com/me")).await?;
//! println!("{}", response.status());
//! # Ok(()) }
//! ```
//!
//! The `authplug` binary built from this crate runs brokers in an agent
//! daemon for one user, reachable on a unix socket.
//!
//! What this crate is not: it does not speak the plugin protocol itself (the
//! `authplug-protocol` crate enforces every rule of it: limits, fd 3,
//! timeouts, process groups), and it knows nothing of OAuth or OpenID
//! Connect (that is the plugins' job). It never verifies a token's signature;
//! it reads a JWT's `exp` only to decide when to ask the plugin again.

pub mod agent;
mod broker;
#[cfg(feature = "http")]
mod http;
mod jwt;
mod retry;

pub use authplug_protocol::host::{PluginCommand, RunError, RunOptions};
pub use authplug_protocol::{State, Token};
pub use broker::{Broker, BrokerError, BrokerOptions, RunRecord, Status, TokenRequest};
#[cfg(feature = "http")]
pub use http::HttpError;
pub use jwt::expiry as jwt_expiry;
pub use retry::{Failure, WithTokenError};
