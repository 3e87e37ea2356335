//! `authplug token`: print a profile's token, from the agent.
//!
//! Also a credential plugin in its own right, for hosts such as an
//! epithet-style SSH certificate agent (`--auth "authplug token --profile
//! NAME"`): when a host gives it a state pipe on fd 3, it hands back the
//! token it printed as its state, and a later run with that state and no
//! reason, or with `AUTHPLUG_REASON=rejected`, first rejects that token in
//! the agent (compare-and-clear): a host re-running it after a 401 gets a
//! new token, not the refused one (PROTOCOL.md rule 1).

use std::io::Write;
use std::process::ExitCode;
use std::time::SystemTime;

use super::paste_relay::PasteRelay;
use authplug_agent::client::{Client, ClientError, TokenAnswer, TokenAsk};
use authplug_agent::wire::{ErrorKind, WireToken};
use authplug_protocol::plugin::{self, Request, Response};
use authplug_protocol::State;
use zeroize::Zeroize;

use super::fail;

use super::shared_args::{ConfigArg, ProfileArg, SocketArg};

/// Print a profile's token (starting the agent if none runs)
#[derive(Debug, clap::Args)]
pub struct TokenArgs {
    #[command(flatten)]
    pub source: TokenSource,
    /// Print `Authorization: Bearer TOKEN`, for `curl -H @-` and the like
    #[arg(long, conflicts_with = "claims")]
    pub header: bool,
    /// Print the claims of the token (a JWT) as JSON instead of the token;
    /// the signature is not checked
    #[arg(long)]
    pub claims: bool,
}

/// Where a token comes from: a profile of the agent (shared by `token` and
/// `exec`).
#[derive(Debug, clap::Args)]
pub struct TokenSource {
    #[command(flatten)]
    pub socket: SocketArg,
    #[command(flatten)]
    pub target: ProfileArg,
    /// Fail instead of letting the plugin open a browser or prompt
    #[arg(long)]
    pub non_interactive: bool,
    /// Start an interactive login even during the cool-down after a failed one
    #[arg(long)]
    pub force: bool,
    /// Fail if no agent is running instead of starting one
    #[arg(long)]
    pub no_autostart: bool,
    #[command(flatten)]
    pub config: ConfigArg,
}

pub fn run(args: TokenArgs) -> ExitCode {
    // Decided in `main` before anything could open a file as fd 3.
    let host = if plugin::protect_state_fd() {
        match plugin::read_request() {
            Ok(request) => Some(request),
            Err(error) => return fail(format!("cannot read the state on stdin: {error}")),
        }
    } else {
        None
    };
    if args.claims && host.is_some() {
        return fail("--claims shows a token's claims to a person; a host running `authplug token` as its plugin gets the token");
    }
    let Fetched {
        mut token,
        expires_at,
    } = match args.source.fetch(host.as_ref()) {
        Ok(fetched) => fetched,
        // A host that offered it is told "a login is needed" its way
        // (PROTOCOL.md rule 6); other failures are failures to it.
        Err(error) => match host.as_ref().and_then(|r| r.login_needed_exit) {
            Some(code) if error.kind == ErrorKind::LoginNeeded => {
                say_on_stderr!("authplug: {error}");
                return ExitCode::from(code.clamp(1, 255) as u8);
            }
            _ => return error.fail(),
        },
    };
    if host.is_some() {
        let state = held_state(token.expose_secret());
        // The agent's expiry goes on to a host that offers the info
        // channel (PROTOCOL.md rule 10), so it refreshes in time too.
        let response = Response::new(token.expose_secret().as_str(), state).expires_at(expires_at);
        return match plugin::write_response(&response) {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => fail(format!("cannot hand the token to the host: {error}")),
        };
    }
    if args.claims {
        return print_claims(token.expose_secret(), args.source.target.profile.as_deref());
    }
    if args.header {
        token
            .expose_secret_mut()
            .insert_str(0, "Authorization: Bearer ");
    }
    // Wiped when `token` drops, newline and all.
    token.expose_secret_mut().push('\n');
    let written = std::io::stdout()
        .lock()
        .write_all(token.expose_secret().as_bytes());
    match written {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => fail(format!("cannot write the token to stdout: {error}")),
    }
}

/// Why no token came: of what kind, and the words for the user.
#[derive(Debug)]
pub struct FetchError {
    pub kind: ErrorKind,
    pub message: String,
}

impl std::fmt::Display for FetchError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl FetchError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> FetchError {
        FetchError {
            kind,
            message: message.into(),
        }
    }

    /// Says so on stderr and exits with the kind's code (cli/exit.rs).
    pub fn fail(&self) -> ExitCode {
        super::exit::fail(self.kind, &self.message)
    }
}

/// A failure of this command's own (a flag, the config file): no kind the
/// agent names, exit code 1.
impl From<String> for FetchError {
    fn from(message: String) -> FetchError {
        FetchError::new(ErrorKind::Unknown, message)
    }
}

impl From<ClientError> for FetchError {
    fn from(error: ClientError) -> FetchError {
        FetchError::new(error.kind(), error.to_string())
    }
}

/// A token from the agent, and when it expires if the agent knows.
pub struct Fetched {
    pub token: WireToken,
    pub expires_at: Option<SystemTime>,
}

impl TokenSource {
    /// The profile's token from the agent, started if need be (unless
    /// `--no-autostart`), with the plugin's stderr shown live: that is
    /// where a login URL shows up. `host`: the request of a host running
    /// `authplug token` as its plugin.
    pub fn fetch(&self, host: Option<&Request>) -> Result<Fetched, FetchError> {
        self.fetch_for(host, None)
    }

    /// [`TokenSource::fetch`] for a named consumer (`authplug kubectl`):
    /// its second ask rejects the token it was given first (the agent's
    /// `consumers`).
    pub fn fetch_for(
        &self,
        host: Option<&Request>,
        consumer: Option<String>,
    ) -> Result<Fetched, FetchError> {
        let socket =
            (self.socket.path()).map_err(|e| FetchError::new(ErrorKind::AgentUnreachable, e))?;
        let connected = Client::connect_maybe_starting(
            &socket,
            !self.no_autostart,
            self.config.config.as_deref(),
        );
        let mut client = connected.map_err(|error| match error {
            ClientError::NotRunning(socket) => FetchError::new(ErrorKind::AgentUnreachable, format!(
                "no agent is running on {} (--no-autostart: start one with `authplug agent`, or leave the flag out)",
                socket.display()
            )),
            other => other.into(),
        })?;
        if let Some(request) = host {
            reject_refused(&mut client, &self.target.profile, request)?;
        }
        let mut ask = TokenAsk::new(self.target.profile.clone());
        // A host that says "not interactive" means it.
        ask.interactive = !self.non_interactive && host.map_or(true, |r| r.interactive);
        ask.force = self.force;
        ask.consumer = consumer;
        // A login's progress: its address may have to be pasted back here
        // (cli/paste_relay.rs). Never for a host running us as its plugin.
        let mut relay = PasteRelay::default();
        let interactive_here = host.is_none() && !self.non_interactive;
        let answer = client.token(
            ask,
            |line| {
                say_on_stderr!("{line}");
                if interactive_here {
                    relay.start_once();
                }
            },
            None,
        );
        // Stops reading the terminal before anything else may use it.
        drop(relay);
        let TokenAnswer {
            token, expires_at, ..
        } = answer?;
        Ok(Fetched { token, expires_at })
    }
}

/// The token's claims, pretty JSON on stdout (never the token), and a
/// word on stderr that nothing was verified.
fn print_claims(token: &str, profile: Option<&str>) -> ExitCode {
    let profile = profile.map_or_else(
        || "the default profile".to_owned(),
        |p| format!("profile `{p}`"),
    );
    let Some(claims) = authplug_protocol::expiry::jwt_claims(token.as_bytes()) else {
        return fail(format!(
            "the token of {profile} is not a JWT (it is opaque to clients), so it has no claims to show"
        ));
    };
    match serde_json::to_string_pretty(&claims) {
        Ok(json) => {
            say_on_stderr!(
                "authplug: the claims of the token of {profile}, as the token states them (its signature is not checked here)"
            );
            say!("{json}");
            ExitCode::SUCCESS
        }
        Err(error) => fail(format!("cannot show the claims: {error}")),
    }
}

/// The state `authplug token` hands a host: the token it printed, so that a
/// later run can reject exactly that one.
#[derive(serde::Serialize, serde::Deserialize)]
struct Held {
    authplug_token: u32,
    token: String,
}

fn held_state(token: &str) -> State {
    let mut held = Held {
        authplug_token: 1,
        token: token.to_owned(),
    };
    let json = serde_json::to_vec(&held).unwrap_or_default();
    held.token.zeroize();
    State::new(json)
}

/// When the host may be asking because a server refused the token it holds
/// (it says `rejected`, or it gives no reason, as epithet), rejects that
/// token in the agent. A state that is not ours is ignored.
fn reject_refused(
    client: &mut Client,
    profile: &Option<String>,
    request: &Request,
) -> Result<(), FetchError> {
    // Not for `expiring` (a host refreshing ahead): the token still works.
    if !request.held_token_may_be_refused() || request.state.is_empty() {
        return Ok(());
    }
    let Ok(mut held) = serde_json::from_slice::<Held>(request.state.as_bytes()) else {
        return Ok(());
    };
    let token = WireToken::new(std::mem::take(&mut held.token));
    // A challenge the server gave our host goes on to the agent's plugin.
    let rejected = client.reject(profile.clone(), token, request.challenge.clone());
    rejected.map(|_| ()).map_err(|error| {
        FetchError::new(
            error.kind(),
            format!("cannot reject the token the host held: {error}"),
        )
    })
}
