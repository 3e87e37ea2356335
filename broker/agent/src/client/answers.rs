//! One method and one answer type per operation, over
//! [`Client::request`]: a caller gets a token, a `cleared`, a logout's
//! outcome or the profiles, never a [`Response`] with ten optional
//! members. The wire format is the agent's, unchanged (AGENT-PROTOCOL.md).

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::{Client, ClientError, ProtocolProblem};
use crate::wire::{Op, ProfileStatus, Response, WireToken};

/// What a `token` request asks for.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct TokenAsk {
    /// The profile; the agent's default one if `None`.
    pub profile: Option<String>,
    /// Whether the plugin may open a browser or prompt.
    pub interactive: bool,
    /// Start an interactive run even during the cool-down.
    pub force: bool,
    /// The program that keeps the token (see the agent's consumers).
    pub consumer: Option<String>,
    /// The run goes on if this client stops waiting.
    pub keep_running: bool,
}

impl TokenAsk {
    /// The profile's token (`None`: the default profile), interactively.
    pub fn new(profile: Option<String>) -> TokenAsk {
        TokenAsk {
            profile,
            interactive: true,
            force: false,
            consumer: None,
            keep_running: false,
        }
    }
}

/// A token, and when it expires if the agent knows.
#[derive(Debug)]
#[non_exhaustive]
pub struct TokenAnswer {
    /// The token.
    pub token: WireToken,
    /// When it expires.
    pub expires_at: Option<SystemTime>,
}

/// What a logout did.
#[derive(Debug)]
#[non_exhaustive]
pub struct LogoutAnswer {
    /// Whether the profile held a login (a token or a state).
    pub logged_out: bool,
    /// Why the plugin could not clean up at its provider, if it could not.
    pub cleanup_error: Option<String>,
}

fn missing(member: &'static str) -> ClientError {
    ClientError::Protocol(ProtocolProblem::Missing(member))
}

impl Client {
    /// A profile's token; the plugin's stderr lines go to `on_stderr` while
    /// it runs. With `deadline`, gives up then ([`ClientError::OutOfTime`]).
    pub fn token(
        &mut self,
        ask: TokenAsk,
        on_stderr: impl FnMut(&str),
        deadline: Option<Instant>,
    ) -> Result<TokenAnswer, ClientError> {
        let op = Op::Token {
            profile: ask.profile,
            interactive: ask.interactive,
            force: ask.force,
            consumer: ask.consumer,
            keep_running: ask.keep_running,
        };
        let mut response = match deadline {
            Some(deadline) => self.request_until(op, on_stderr, deadline)?,
            None => self.request(op, on_stderr)?,
        };
        let token = response.token.take().ok_or_else(|| missing("token"))?;
        let expires_at = (response.expires_at)
            .and_then(|seconds| UNIX_EPOCH.checked_add(Duration::from_secs(seconds)));
        Ok(TokenAnswer { token, expires_at })
    }

    /// Reports that a server refused `token` (compare-and-clear): whether
    /// it was the cached one.
    pub fn reject(
        &mut self,
        profile: Option<String>,
        token: WireToken,
        challenge: Option<String>,
    ) -> Result<bool, ClientError> {
        let op = Op::Reject {
            profile,
            token,
            challenge,
        };
        cleared(self.request(op, |_| {})?)
    }

    /// Reports that a server refused whatever token is cached: whether one
    /// was.
    pub fn reject_current(
        &mut self,
        profile: Option<String>,
        challenge: Option<String>,
    ) -> Result<bool, ClientError> {
        cleared(self.request(Op::RejectCurrent { profile, challenge }, |_| {})?)
    }

    /// Logs a profile out; the plugin's stderr lines go to `on_stderr`.
    pub fn logout(
        &mut self,
        profile: Option<String>,
        on_stderr: impl FnMut(&str),
    ) -> Result<LogoutAnswer, ClientError> {
        let response = self.request(Op::Logout { profile }, on_stderr)?;
        Ok(LogoutAnswer {
            logged_out: response.logged_out.ok_or_else(|| missing("logged_out"))?,
            cleanup_error: response.cleanup_error,
        })
    }

    /// Asks the agent to stop (see [`super::wait_until_stopped`]).
    pub fn stop(&mut self) -> Result<(), ClientError> {
        self.request(Op::Stop, |_| {}).map(|_| ())
    }

    /// Every profile's status.
    pub fn status(&mut self) -> Result<Vec<ProfileStatus>, ClientError> {
        (self.request(Op::Status, |_| {})?.profiles).ok_or_else(|| missing("profiles"))
    }
}

fn cleared(response: Response) -> Result<bool, ClientError> {
    response.cleared.ok_or_else(|| missing("cleared"))
}
