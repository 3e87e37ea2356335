//! `authplug mcp-headers`: the HTTP headers an MCP client's headers hook
//! asks for (Claude Code's `headersHelper`): one JSON object on stdout,
//! `{"Authorization": "Bearer TOKEN"}`, with the agent's token for the
//! profile.
//!
//! The hook runs it before connecting and gives it a few seconds (Claude
//! Code: 10, with the server's name and URL in
//! `CLAUDE_CODE_MCP_SERVER_NAME` and `CLAUDE_CODE_MCP_SERVER_URL`). It
//! gives no 401 back, so the token must be fresh when printed: the agent
//! hands out a token only while it is valid beyond its skew, and refreshes
//! a token in use before it expires (refresh ahead).
//!
//! A login needed now starts as for `authplug token` (a browser opens),
//! but the hook would kill this command before most logins end: at
//! `--wait` it gives up with a message saying what to do, and the login
//! goes on in the agent (`keep_running`), whose token the next call gets.
//! A second call meanwhile joins that same login.

use std::io::Write;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use authplug_agent::client::{Client, ClientError, TokenAsk};
use zeroize::Zeroizing;

use super::fail;
use super::shared_args::{ConfigArg, ProfileArg, SocketArg};
use super::token::FetchError;

/// The server's URL, as Claude Code passes it to its headers hook.
const SERVER_URL_VAR: &str = "CLAUDE_CODE_MCP_SERVER_URL";

/// Print an MCP server's HTTP headers as JSON, for an MCP client's headers hook
///
/// In `.mcp.json` (Claude Code):
/// `"headersHelper": "authplug mcp-headers --profile work"`.
/// Without `--profile`, the config file's `[mcp.servers]` picks the profile
/// by the server's URL, else the default profile is used.
#[derive(Debug, clap::Args)]
#[command(mut_arg("profile", |arg| arg.help("The profile [default: by the server's URL in [mcp.servers], else the agent's default profile]")))]
pub struct McpHeadersArgs {
    #[command(flatten)]
    pub socket: SocketArg,
    #[command(flatten)]
    pub target: ProfileArg,
    /// The MCP server's URL, to pick the profile by
    #[arg(long, env = SERVER_URL_VAR, value_name = "URL")]
    pub server_url: Option<String>,
    /// Give up after this many seconds, before the MCP client stops
    /// waiting (Claude Code gives its hook 10); a login under way goes on
    /// in the agent
    #[arg(long, value_name = "SECS", default_value_t = 8.0)]
    pub wait: f64,
    /// Fail if no agent is running instead of starting one
    #[arg(long)]
    pub no_autostart: bool,
    #[command(flatten)]
    pub config: ConfigArg,
}

pub fn run(args: McpHeadersArgs) -> ExitCode {
    match headers(&args) {
        Ok(json) => {
            let mut stdout = std::io::stdout().lock();
            match stdout.write_all(&json).and_then(|()| stdout.flush()) {
                Ok(()) => ExitCode::SUCCESS,
                Err(error) => fail(format!("cannot write the headers to stdout: {error}")),
            }
        }
        Err(error) => error.fail(),
    }
}

fn headers(args: &McpHeadersArgs) -> Result<Zeroizing<Vec<u8>>, FetchError> {
    let started = Instant::now();
    let wait = Duration::try_from_secs_f64(args.wait)
        .ok()
        .filter(|d| !d.is_zero())
        .ok_or_else(|| {
            format!(
                "--wait must be a positive number of seconds, not {}",
                args.wait
            )
        })?;
    let profile = match &args.target.profile {
        Some(profile) => Some(profile.clone()),
        None => profile_by_url(args)?,
    };
    let named = profile.as_deref().map_or_else(
        || "the default profile".to_owned(),
        |p| format!("profile `{p}`"),
    );
    let run_by_hand = match &profile {
        Some(p) => format!("authplug token --profile {}", shell_words::quote(p)),
        None => "authplug token".to_owned(),
    };
    let socket = args.socket.path()?;
    let mut client =
        Client::connect_maybe_starting(&socket, !args.no_autostart, args.config.config.as_deref())?;
    let mut ask = TokenAsk::new(profile);
    ask.keep_running = true;
    // The plugin's lines (a login's address) go to stderr, which the MCP
    // client may show or log.
    let answer = client.token(
        ask,
        |line| {
            say_on_stderr!("{line}");
        },
        Some(started + wait),
    );
    let token = answer.map_err(|error| {
        let message = match &error {
        ClientError::OutOfTime => format!(
            "no token for {named} within {} s, the time an MCP client gives this command. If a login is under way \
             (a browser opened, or its address is above), finish it: it goes on without this command, \
             then reconnect the server (Claude Code: /mcp). Or log in first in a terminal: {run_by_hand}",
            args.wait
        ),
        other => format!("no token for {named}: {other}"),
        };
        FetchError::new(error.kind(), message)
    })?
    .token;
    let mut json = Zeroizing::new(Vec::with_capacity(token.expose_secret().len() + 32));
    json.extend_from_slice(b"{\"Authorization\":");
    let bearer = Zeroizing::new(format!("Bearer {}", token.expose_secret()));
    serde_json::to_writer(&mut *json, bearer.as_str())
        .map_err(|error| format!("cannot write the headers: {error}"))?;
    json.extend_from_slice(b"}\n");
    Ok(json)
}

/// The profile `[mcp.servers]` gives the server's URL, if any.
fn profile_by_url(args: &McpHeadersArgs) -> Result<Option<String>, String> {
    let Some(url) = &args.server_url else {
        return Ok(None);
    };
    let (path, config) = args.config.load()?;
    let servers = &config.mcp;
    if let Some(bad) = servers.unusable_key() {
        return Err(format!(
            "[mcp.servers] in {}: {bad:?} is not an http(s) URL",
            path.display()
        ));
    }
    match servers.profile_for(url) {
        Some(profile) => Ok(Some(profile.to_owned())),
        // Nothing mapped: one login for every server, the default profile.
        None if servers.servers.is_empty() => Ok(None),
        // Mapped, but not this server: its token goes to the servers
        // listed only, never to an unknown one that could replay it.
        None => Err(format!(
            "the MCP server {url} is under no entry of [mcp.servers] in {}: add it there, or give --profile",
            path.display()
        )),
    }
}
