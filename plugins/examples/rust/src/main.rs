//! An authplug plugin written with the `authplug-protocol` SDK.
//!
//! Like the shell example it hands out a token taken from `$EXAMPLE_TOKEN`,
//! or from the file named by `$EXAMPLE_TOKEN_FILE`, and keeps a run counter
//! as its state to show the round trip. The SDK does the protocol: it marks
//! fd 3 close-on-exec before anything else, reads the state from stdin,
//! writes the new state on fd 3 and the token on stdout, and turns an error
//! into a message on stderr and exit code 1 (so the host keeps the old
//! state). With `$EXAMPLE_EXPIRES_IN` (seconds) it says when the token
//! expires (`Response::expires_at`), which the SDK passes to a host that
//! offers the info channel (PROTOCOL.md rule 10) and to no other.
//!
//! What it is not: a real credential source. See plugins/oidc for one.

use authplug_protocol::plugin::{self, Plugin, Request, Response};
use authplug_protocol::{Secret, State, Token};

struct EnvToken;

impl EnvToken {
    fn token() -> Result<Token, plugin::Error> {
        if let Some(token) = std::env::var_os("EXAMPLE_TOKEN").filter(|v| !v.is_empty()) {
            let token = token
                .into_string()
                .map_err(|_| "EXAMPLE_TOKEN is not valid UTF-8")?;
            return Ok(Token::from(token));
        }
        let Some(path) = std::env::var_os("EXAMPLE_TOKEN_FILE").filter(|v| !v.is_empty()) else {
            return Err(
                "set EXAMPLE_TOKEN, or EXAMPLE_TOKEN_FILE to a file holding the token".into(),
            );
        };
        let text = Secret::new(std::fs::read_to_string(&path).map_err(|e| {
            format!(
                "cannot read EXAMPLE_TOKEN_FILE ({}): {e}",
                std::path::Path::new(&path).display()
            )
        })?);
        Ok(Token::from(text.expose_secret().trim_end()))
    }

    /// `$EXAMPLE_EXPIRES_IN` seconds from now, if set.
    fn expires_at() -> Result<Option<std::time::SystemTime>, plugin::Error> {
        let Some(seconds) = std::env::var_os("EXAMPLE_EXPIRES_IN").filter(|v| !v.is_empty()) else {
            return Ok(None);
        };
        let seconds: u64 = (seconds.to_str())
            .and_then(|text| text.parse().ok())
            .ok_or("EXAMPLE_EXPIRES_IN is not a number of seconds")?;
        Ok(Some(
            std::time::SystemTime::now() + std::time::Duration::from_secs(seconds),
        ))
    }

    /// The state is the number of successful runs so far, in decimal.
    fn runs(state: &State) -> u64 {
        let parsed = state.to_str().ok().and_then(|text| text.parse().ok());
        if parsed.is_none() && !state.is_empty() {
            eprintln!("env-token (rust): the state is not a run counter; starting again from 0");
        }
        parsed.unwrap_or(0)
    }
}

impl Plugin for EnvToken {
    fn run(&mut self, request: Request) -> Result<Response, plugin::Error> {
        let token = Self::token()?;
        if token.is_empty() {
            return Err("the token is empty".into());
        }
        let runs = Self::runs(&request.state) + 1;
        eprintln!(
            "env-token (rust): run {runs} (reason: {}, interactive: {})",
            request.reason, request.interactive
        );
        Ok(Response::new(token, runs.to_string()).expires_at(Self::expires_at()?))
    }
}

fn main() {
    plugin::main(EnvToken)
}
