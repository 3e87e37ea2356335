//! `authplug-exchange`: an authplug plugin that trades another login's
//! token for a service's own.
//!
//! Some services take no provider token directly: an MCP registry accepts
//! a user's OIDC ID token and answers with a registry token; a platform
//! trades an OIDC JWT for its session token; an STS follows RFC 8693. This
//! plugin gets the **subject token** from another profile of the agent (the
//! same login that serves kubectl and git) or from a command, trades it at
//! the endpoint, and hands the new token (and when it ends) to its host.
//!
//! A refusal of the subject token (stale: `invalid_grant`, `invalid_token`,
//! a 401) is reported to the agent, which clears that token; the plugin
//! then trades a fresh one, once. A refusal of the exchange itself (an
//! audience it will not serve, a claim rule the login does not meet) is
//! reported plainly and never retried.
//!
//! What it is not: it logs no one in (the subject profile does), keeps no
//! subject token beyond a run, and knows nothing of the agent but the
//! `authplug token` and `authplug reject` commands.

#![warn(missing_docs)]
#![deny(clippy::print_stdout, clippy::print_stderr)]

pub mod config;
mod failure;
mod http;
mod issued;
mod json_exchange;
mod lifetime;
mod rfc8693;
mod state;
mod subject;

use std::time::SystemTime;

use authplug_protocol::plugin::{Plugin, Request, Response};
use authplug_protocol::{Reason, Token};

use config::{Config, Format};
use failure::Failure;
use issued::Issued;
use state::Held;
use subject::Subject;

/// Any error a run reports (the SDK prints it).
pub type Error = authplug_protocol::plugin::Error;

/// A line on stderr that cannot panic.
pub(crate) fn say(line: &str) {
    use std::io::Write as _;
    let _ = writeln!(std::io::stderr(), "{line}");
}

/// The plugin: validated flags.
pub struct ExchangePlugin {
    config: Config,
}

impl ExchangePlugin {
    /// The plugin for flags that go together; the error names the flag.
    pub fn new(config: Config) -> Result<Self, config::FlagError> {
        config.validate()?;
        Ok(ExchangePlugin { config })
    }

    /// One trade of `subject`'s token.
    fn trade(&self, http: &reqwest::blocking::Client, subject: &Token) -> Result<Issued, Failure> {
        let text = subject
            .to_str()
            .map_err(|_| "the subject token is not UTF-8 text")?;
        match self.config.format {
            Format::Rfc8693 => rfc8693::post(
                http,
                &self.config,
                rfc8693::exchange_form(&self.config, text),
            ),
            Format::Json => json_exchange::post(http, &self.config, text),
        }
    }

    /// A refresh with the refresh token an earlier exchange gave, if any;
    /// `None` when there is none or it no longer works (then trade anew).
    fn refresh(&self, http: &reqwest::blocking::Client, held: &Held) -> Option<Issued> {
        let refresh_token = held.refresh_token.as_ref()?;
        match rfc8693::post(
            http,
            &self.config,
            rfc8693::refresh_form(&self.config, refresh_token),
        ) {
            Ok(issued) => Some(issued),
            Err(Failure::SubjectRefused(_)) => None,
            Err(Failure::Other(error)) => {
                say(&format!("authplug-exchange: the refresh failed ({error}); trading the subject token instead"));
                None
            }
        }
    }
}

impl Plugin for ExchangePlugin {
    fn run(&mut self, request: Request) -> Result<Response, Error> {
        let held = Held::load(&request.state);
        if request.reason == Reason::Logout {
            // The exchanged token cannot be revoked by this plugin; the
            // host forgets it, and the state goes.
            return Ok(Response::nothing());
        }
        if request.may_reuse_token() {
            if let Some((token, expires_at)) = held.usable_token(SystemTime::now()) {
                return Ok(Response::new(token, request.state.clone()).expires_at(expires_at));
            }
        }
        let http = http::client(&self.config)?;
        let (issued, refresh_token) = match self.refresh(&http, &held) {
            // RFC 6749 §6: an answer without a refresh token leaves the
            // one held in force.
            Some(mut issued) => {
                let kept = issued.refresh_token.take().or(held.refresh_token);
                (issued, kept)
            }
            None => {
                let mut issued = self.trade_with_retry(&http, request.interactive)?;
                let given = issued.refresh_token.take();
                (issued, given)
            }
        };
        let state = Held::new(&issued.token, issued.expires_at, refresh_token).to_state();
        Ok(Response::new(issued.token, state).expires_at(issued.expires_at))
    }
}

impl ExchangePlugin {
    /// Trades the subject token; if the endpoint refuses it as stale,
    /// reports that and trades a fresh one, once.
    fn trade_with_retry(
        &self,
        http: &reqwest::blocking::Client,
        interactive: bool,
    ) -> Result<Issued, Error> {
        let source = Subject::from_config(&self.config)?;
        let subject = source.fetch(interactive)?;
        let why = match self.trade(http, &subject) {
            Ok(issued) => return Ok(issued),
            Err(Failure::Other(error)) => return Err(error),
            Err(Failure::SubjectRefused(why)) => why,
        };
        say(&format!(
            "authplug-exchange: the exchange endpoint refused {}'s token ({why}); getting a fresh one",
            source.describe()
        ));
        source.refused(&subject)?;
        let fresh = source.fetch(interactive)?;
        if fresh.as_bytes() == subject.as_bytes() {
            return Err(format!(
                "the exchange endpoint {} refused {}'s token ({why}), and it has no other to give",
                self.config.endpoint,
                source.describe()
            )
            .into());
        }
        drop(subject);
        match self.trade(http, &fresh) {
            Ok(issued) => Ok(issued),
            Err(Failure::Other(error)) => Err(error),
            Err(Failure::SubjectRefused(why)) => Err(format!(
                "the exchange endpoint {} refused a fresh token of {} too: {why}; the service may not accept this login (its issuer, audience or claims), or --subject-token-type is wrong",
                self.config.endpoint,
                source.describe()
            )
            .into()),
        }
    }
}
