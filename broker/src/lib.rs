//! The authplug broker: get tokens from a credential plugin without ever
//! writing its state to disk, without running it twice when many callers ask
//! at once, and without getting stuck when a server rejects a token.
//!
//! A [`Broker`] wraps one plugin command. It keeps the plugin's token and
//! state in memory only (zeroized on drop, redacted in `Debug`, never
//! logged), shares one run among concurrent callers (single flight), cancels
//! a run nobody waits for any more, re-runs the plugin when a server rejects
//! a token ([`Broker::reject`], compare-and-clear), refreshes a token in the
//! background before it expires (as its plugin reports, PROTOCOL.md rule
//! 10, or a JWT's `exp`), and backs off after a failed interactive login.
//!
//! ```no_run
//! use authplug_broker::{Broker, BrokerOptions, PluginCommand, Token};
//!
//! async fn call_api(url: &str) -> Result<(), Box<dyn std::error::Error>> {
//!     let command = PluginCommand::parse("authplug-oidc --issuer https://id.example.com --client-id cli")?;
//!     let broker = Broker::new(command, BrokerOptions::default()); // clone it freely
//!
//!     // The HTTP helper adds `Authorization: Bearer <token>`; on a 401 it rejects
//!     // the token, runs the plugin again and retries once.
//!     let response = broker.send(reqwest::Client::new().get(url)).await?;
//!     println!("{}", response.status());
//!
//!     // Or by hand: report a refused token with `reject` (compare-and-clear),
//!     // and the next `token()` runs the plugin with AUTHPLUG_REASON=rejected.
//!     let token = broker.token().await?;
//!     if refused_by_server(&token) {
//!         broker.reject(&token);
//!         let _fresh = broker.token().await?;
//!     }
//!     Ok(())
//! }
//!
//! fn refused_by_server(_token: &Token) -> bool {
//!     false
//! }
//! ```
//!
//! The `authplug` binary (the `authplug-agent` package beside this one)
//! runs brokers in an agent daemon for one user, reachable on a unix
//! socket.
//!
//! What this crate is not: it does not speak the plugin protocol itself (the
//! `authplug-protocol` crate enforces every rule of it: limits, fd 3,
//! timeouts, process groups), and it knows nothing of OAuth or OpenID
//! Connect (that is the plugins' job). It never verifies a token's signature;
//! it learns when a token expires only to decide when to ask the plugin
//! again.

#![warn(missing_docs)]

mod broker;
#[cfg(feature = "http")]
mod http;
mod retry;

pub use authplug_protocol::host::{PluginCommand, RunError, RunOptions};
pub use authplug_protocol::jwt_expiry;
pub use authplug_protocol::{State, Token};
pub use broker::{
    Broker, BrokerError, BrokerOptions, FailureKind, Issued, LogoutOutcome, RunRecord, Status,
    TokenRequest,
};
#[cfg(feature = "http")]
pub use http::HttpError;
pub use retry::{Failure, WithTokenError};
