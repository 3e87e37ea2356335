//! The socket protocol, version 1.
//!
//! Requests (one JSON object per line, at most [`MAX_LINE`] bytes):
//!
//! ```text
//! {"v":1,"op":"token","profile":"work","interactive":true,"force":false}
//! {"v":1,"op":"reject","profile":"work","token":"eyJ..."}
//! {"v":1,"op":"reject_current","profile":"work"}
//! {"v":1,"op":"logout","profile":"work"}
//! {"v":1,"op":"status"}
//! {"v":1,"op":"stop"}
//! ```
//!
//! `profile` may be left out for the default profile. Answers: progress
//! lines `{"v":1,"stderr":"line"}` while a plugin runs, then one final line:
//! `{"v":1,"ok":true,"token":"...","expires_at":1700000000}`,
//! `{"v":1,"ok":true,"cleared":true}`,
//! `{"v":1,"ok":true,"logged_out":true,"cleanup_error":"..."}`,
//! `{"v":1,"ok":true,"profiles":[...]}`, `{"v":1,"ok":true}`, or
//! `{"v":1,"ok":false,"kind":"login_needed","error":"what happened and what to do"}`.
//!
//! A client acts on `kind` ([`ErrorKind`]), never on the words of `error`.

use authplug_protocol::Secret;
use serde::{Deserialize, Serialize};

/// The protocol version this crate speaks.
pub const WIRE_VERSION: u32 = 1;

/// Longest request or response line, newline included: room for the
/// largest token the protocol allows, JSON-escaped.
pub const MAX_LINE: usize = 2 * authplug_protocol::TOKEN_LIMIT + 64 * 1024;

/// One request line.
#[derive(Debug, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Request {
    /// The protocol version, [`WIRE_VERSION`].
    pub v: u32,
    #[serde(flatten)]
    /// What is asked.
    pub op: Op,
}

/// A request's version alone: read before the rest, so that a client of
/// another version (with ops or fields this agent does not know) is told
/// about the version rather than that its request is malformed.
#[derive(Deserialize)]
pub struct Version {
    /// The version, read alone when the rest of a request does not parse.
    pub v: u32,
}

/// What a request asks for. A client of this version sends only these; an
/// op a newer client sends is answered "malformed request" (the version,
/// read first, says why).
#[derive(Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Op {
    /// A token for a profile.
    Token {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        /// The profile; the default one if absent.
        profile: Option<String>,
        #[serde(default = "yes")]
        /// Whether a run may open a browser or prompt (default true).
        interactive: bool,
        #[serde(default)]
        /// Start an interactive run even during the cool-down.
        force: bool,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        /// Names one program that keeps the token it gets and asks again
        /// only when that token failed it or expired (a kubectl process):
        /// its next ask first rejects the token it was given (see
        /// [`consumers`](crate::consumers)).
        consumer: Option<String>,
        #[serde(default, skip_serializing_if = "is_false")]
        /// The run goes on if this client stops waiting, its token cached
        /// for the next ask: a caller with a short time limit (an MCP
        /// client's headers hook) does not lose a login it started.
        keep_running: bool,
    },
    /// Report a token a server refused (compare-and-clear).
    Reject {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        /// The profile; the default one if absent.
        profile: Option<String>,
        /// The refused token.
        token: WireToken,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        /// The refusing server's `WWW-Authenticate` challenge, for the
        /// plugin's next run (`AUTHPLUG_CHALLENGE`).
        challenge: Option<String>,
    },
    /// Report that a server refused whatever token is cached, for a client
    /// that does not have it at hand.
    RejectCurrent {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        /// The profile; the default one if absent.
        profile: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        /// As for `Reject`.
        challenge: Option<String>,
    },
    /// Forget a profile's login, after its plugin's `logout` run.
    Logout {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        /// The profile; the default one if absent.
        profile: Option<String>,
    },
    /// Every profile's status.
    Status,
    /// Stop the agent.
    Stop,
}

impl std::fmt::Debug for Op {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Op::Token {
                profile,
                interactive,
                force,
                consumer,
                keep_running,
            } => f
                .debug_struct("Token")
                .field("profile", profile)
                .field("interactive", interactive)
                .field("force", force)
                .field("consumer", consumer)
                .field("keep_running", keep_running)
                .finish(),
            Op::Reject {
                profile, challenge, ..
            } => f
                .debug_struct("Reject")
                .field("profile", profile)
                .field("token", &"REDACTED")
                .field("challenge", challenge)
                .finish(),
            Op::RejectCurrent { profile, challenge } => f
                .debug_struct("RejectCurrent")
                .field("profile", profile)
                .field("challenge", challenge)
                .finish(),
            Op::Logout { profile } => f.debug_struct("Logout").field("profile", profile).finish(),
            Op::Status => f.write_str("Status"),
            Op::Stop => f.write_str("Stop"),
        }
    }
}

fn is_false(value: &bool) -> bool {
    !*value
}

fn yes() -> bool {
    true
}

impl Request {
    /// A request of this version ([`WIRE_VERSION`]).
    pub fn new(op: Op) -> Request {
        Request {
            v: WIRE_VERSION,
            op,
        }
    }
}

/// A token on the wire: wiped when dropped, never shown by `Debug`, written
/// and read as a JSON string.
pub type WireToken = Secret<String>;

/// One answer line. A line without `ok` is progress; the line with `ok`
/// ends the answer.
#[derive(Debug, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Response {
    /// The protocol version.
    pub v: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    /// Present on the final line only: whether the request succeeded.
    pub ok: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    /// A progress line: one line of the plugin's stderr.
    pub stderr: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    /// The token, on a successful token request.
    pub token: Option<WireToken>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    /// With the token: when it expires, Unix seconds, if the agent knows
    /// (its plugin reported it, PROTOCOL.md rule 10, or it is a JWT with an
    /// `exp`).
    pub expires_at: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    /// For reject: whether the token was the cached one (and is now cleared).
    pub cleared: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    /// For logout: whether the profile held a login (token or state).
    pub logged_out: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    /// For logout: why the plugin could not clean up (the login is
    /// forgotten all the same).
    pub cleanup_error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    /// For status: every profile.
    pub profiles: Option<Vec<ProfileStatus>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    /// Why the request failed, for the user.
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    /// With `error`: what kind of failure, for the client to act on.
    pub kind: Option<ErrorKind>,
    /// A heartbeat while a token request waits for its plugin (every
    /// [`HEARTBEAT`](crate::server::HEARTBEAT)); carries nothing else.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waiting: Option<bool>,
}

impl Response {
    /// Version set, everything else empty.
    pub fn empty() -> Response {
        Response {
            v: WIRE_VERSION,
            ok: None,
            stderr: None,
            token: None,
            expires_at: None,
            cleared: None,
            logged_out: None,
            cleanup_error: None,
            profiles: None,
            error: None,
            kind: None,
            waiting: None,
        }
    }

    /// A progress line carrying one line of the plugin's stderr.
    pub fn progress(line: &str) -> Response {
        let mut response = Response::empty();
        response.stderr = Some(line.to_owned());
        response
    }

    /// The heartbeat sent while a plugin runs.
    pub fn waiting() -> Response {
        let mut response = Response::empty();
        response.waiting = Some(true);
        response
    }

    /// A final line saying the request succeeded.
    pub fn ok() -> Response {
        let mut response = Response::empty();
        response.ok = Some(true);
        response
    }

    /// A final line saying the request failed, of what kind, and why.
    pub fn error(kind: ErrorKind, message: impl Into<String>) -> Response {
        let mut response = Response::ok();
        response.ok = Some(false);
        response.error = Some(message.into());
        response.kind = Some(kind);
        response
    }

    /// Whether this is the final line of an answer.
    pub fn is_final(&self) -> bool {
        self.ok.is_some()
    }
}

/// What kind of failure an error answer is. Clients act on this, never
/// on the message. New kinds may come: a client reads one it does not know
/// as [`ErrorKind::Unknown`], and an answer without `kind` (an older
/// agent) is `None`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ErrorKind {
    /// A login is needed, and this request did not allow one
    /// (`interactive: false`): ask again interactively, from a terminal.
    LoginNeeded,
    /// An interactive login was refused: one failed less than the
    /// cool-down ago. Ask with `force` to start one anyway.
    CoolingDown,
    /// The request names no profile the agent has, or none and there is
    /// no default.
    UnknownProfile,
    /// The plugin ran and failed (its stderr, streamed, says why).
    PluginFailed,
    /// The plugin broke the plugin protocol.
    PluginBrokeProtocol,
    /// The plugin could not be started: its command line is wrong.
    PluginNotStarted,
    /// The plugin handed back the very token a server had refused.
    TokenRefusedAgain,
    /// The profile was logged out while its plugin ran.
    LoggedOut,
    /// The run was stopped before it finished.
    Cancelled,
    /// The token cannot be carried here (not UTF-8 text).
    UnusableToken,
    /// The request is malformed, too long, or came too slowly.
    BadRequest,
    /// The request is of another protocol version.
    OtherVersion,
    /// The agent is too busy to serve this connection; try again.
    Busy,
    /// The client is another user.
    Forbidden,
    /// Never sent by the agent: a client's own. No agent could be reached
    /// or started.
    AgentUnreachable,
    /// Never sent by the agent: the client's time ran out first.
    OutOfTime,
    /// Never sent by the agent: talking to it failed, or it made no sense.
    AgentBroken,
    /// A kind this client does not know (a newer agent's).
    #[serde(other)]
    Unknown,
}

impl From<authplug_broker::FailureKind> for ErrorKind {
    fn from(kind: authplug_broker::FailureKind) -> ErrorKind {
        use authplug_broker::FailureKind as F;
        match kind {
            F::LoginNeeded => ErrorKind::LoginNeeded,
            F::CoolingDown => ErrorKind::CoolingDown,
            F::PluginFailed => ErrorKind::PluginFailed,
            F::PluginBrokeProtocol => ErrorKind::PluginBrokeProtocol,
            F::PluginNotStarted => ErrorKind::PluginNotStarted,
            F::TokenRefusedAgain => ErrorKind::TokenRefusedAgain,
            F::LoggedOut => ErrorKind::LoggedOut,
            F::Cancelled => ErrorKind::Cancelled,
            _ => ErrorKind::PluginFailed,
        }
    }
}

/// A profile's [`Status`](authplug_broker::Status) on the wire: times in seconds
/// since the Unix epoch, no secrets.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ProfileStatus {
    /// The profile's name.
    pub name: String,
    /// Whether it is the default profile.
    pub default: bool,
    /// A token is cached.
    pub has_token: bool,
    /// When the cached token expires, Unix seconds: the earlier of what its
    /// plugin reported and its `exp` if it is a JWT; absent if unknown.
    pub expires_at: Option<u64>,
    /// From when callers wait for a new token instead of getting this one,
    /// Unix seconds.
    pub refresh_at: Option<u64>,
    /// When the agent will next refresh it in the background, before
    /// anyone waits (only for a token asked for since it was obtained),
    /// Unix seconds.
    #[serde(default)]
    pub refresh_ahead_at: Option<u64>,
    /// The plugin has a state.
    pub has_state: bool,
    /// A run is under way.
    pub running: bool,
    /// Callers waiting on it.
    pub waiters: usize,
    /// The last token was rejected and no new one obtained yet.
    pub rejected: bool,
    /// Runs finished since the agent started.
    pub runs: u64,
    /// The last finished run.
    pub last_run: Option<LastRun>,
    /// The last failed run's message, until a run succeeds.
    pub last_error: Option<String>,
    /// Interactive runs are refused until then, Unix seconds.
    pub cooldown_until: Option<u64>,
}

/// A finished run, on the wire.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[non_exhaustive]
pub struct LastRun {
    /// When it ended, Unix seconds.
    pub finished_at: u64,
    /// Its `AUTHPLUG_REASON`.
    pub reason: String,
    /// Whether it ran interactively.
    pub interactive: bool,
    /// Whether it gave a token.
    pub ok: bool,
    /// How long it took, milliseconds.
    pub elapsed_ms: u64,
    /// Whether the agent started it on its own, to refresh ahead.
    #[serde(default)]
    pub background: bool,
    /// What was wrong with the expiry the plugin reported (the run
    /// succeeded all the same).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warning: Option<String>,
}

pub(crate) use authplug_protocol::expiry::unix_seconds;

impl ProfileStatus {
    /// The wire form of a broker's status.
    pub fn new(name: &str, default: bool, status: &authplug_broker::Status) -> ProfileStatus {
        ProfileStatus {
            name: name.to_owned(),
            default,
            has_token: status.has_token,
            expires_at: status.expires_at.map(unix_seconds),
            refresh_at: status.refresh_at.map(unix_seconds),
            refresh_ahead_at: status.refresh_ahead_at.map(unix_seconds),
            has_state: status.has_state,
            running: status.running,
            waiters: status.waiters,
            rejected: status.rejected,
            runs: status.runs,
            last_run: status.last_run.as_ref().map(|run| LastRun {
                finished_at: unix_seconds(run.finished_at),
                reason: run.reason.clone(),
                interactive: run.interactive,
                ok: run.ok,
                elapsed_ms: run.elapsed.as_millis() as u64,
                background: run.background,
                warning: run.warning.clone(),
            }),
            last_error: status.last_error.clone(),
            cooldown_until: status.cooldown_until.map(unix_seconds),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_parse_with_defaults_and_debug_hides_the_token() {
        let request: Request =
            serde_json::from_str(r#"{"v":1,"op":"token"}"#).expect("token request");
        assert!(matches!(
            request.op,
            Op::Token {
                profile: None,
                interactive: true,
                force: false,
                consumer: None,
                keep_running: false,
            }
        ));
        let mut reject: Request =
            serde_json::from_str(r#"{"v":1,"op":"reject","profile":"p","token":"sekrit"}"#)
                .expect("reject request");
        assert!(!format!("{reject:?}").contains("sekrit"));
        let Op::Reject { token, .. } = &mut reject.op else {
            panic!("not a reject");
        };
        assert_eq!(token.expose_secret(), "sekrit");
        let sent = serde_json::to_string(&Request {
            v: 1,
            op: Op::Reject {
                profile: None,
                token: WireToken::new("tok\"1".into()),
                challenge: None,
            },
        })
        .expect("serialize");
        assert_eq!(sent, r#"{"v":1,"op":"reject","token":"tok\"1"}"#);
        assert!(serde_json::from_str::<Request>(r#"{"v":1,"op":"launch"}"#).is_err());
        let mut response = Response::ok();
        response.token = Some(WireToken::new("sekrit".into()));
        assert!(!format!("{response:?}").contains("sekrit"));
    }
}

#[cfg(test)]
mod kinds {
    use super::ErrorKind;

    /// Every kind the agent sends, as AGENT-PROTOCOL.md's table names it.
    const SENT: &[ErrorKind] = &[
        ErrorKind::LoginNeeded,
        ErrorKind::CoolingDown,
        ErrorKind::UnknownProfile,
        ErrorKind::PluginFailed,
        ErrorKind::PluginBrokeProtocol,
        ErrorKind::PluginNotStarted,
        ErrorKind::TokenRefusedAgain,
        ErrorKind::LoggedOut,
        ErrorKind::Cancelled,
        ErrorKind::UnusableToken,
        ErrorKind::BadRequest,
        ErrorKind::OtherVersion,
        ErrorKind::Busy,
        ErrorKind::Forbidden,
    ];

    #[test]
    fn the_document_lists_every_kind_sent_and_an_unknown_one_reads_as_unknown() {
        let doc = include_str!("../AGENT-PROTOCOL.md");
        for kind in SENT {
            let name = serde_json::to_string(kind).expect("a string");
            let row = format!("| `{}` |", name.trim_matches('"'));
            assert!(doc.contains(&row), "AGENT-PROTOCOL.md lacks {row}");
        }
        let newer: ErrorKind = serde_json::from_str("\"quota_exceeded\"").expect("read");
        assert_eq!(newer, ErrorKind::Unknown);
        let old: super::Response =
            serde_json::from_str(r#"{"v":1,"ok":false,"error":"x"}"#).expect("an older agent's");
        assert_eq!(old.kind, None);
    }
}
