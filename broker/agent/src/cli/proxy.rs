//! `authplug proxy`: serve one upstream on this machine, each request
//! given the token of a profile (`cli/proxy_server/`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use super::proxy_server::{Listener, Proxy};
use authplug_agent::paths;
use authplug_broker::{Broker, BrokerOptions, PluginCommand, TokenRequest};

use super::fail;
use super::run::write_private_atomically;
use super::shared_args::{ConfigArg, ProfileArg, SocketArg};

const EXAMPLES: &str = "\
Examples:
  # an MCP server for any MCP client, with the agent's profile `work`
  authplug proxy --profile work --upstream https://mcp.example.com/mcp
  # prints http://127.0.0.1:PORT/SECRET: give that URL to the MCP client

  # on a unix socket (curl --unix-socket, clients that take one)
  authplug proxy --profile work --upstream https://api.example.com --unix-socket ~/.authplug/api.sock";

/// Serve an upstream on this machine, adding the token to each request
///
/// Each request to the printed URL goes to the upstream with
/// `Authorization: Bearer` and the profile's token; on a 401 the token is
/// rejected and the request sent once more with a fresh one (bodies up to
/// 1 MiB). Answers are streamed (server-sent events pass as they come).
/// On TCP the URL holds a random secret (other local users cannot use the
/// proxy without it) and the Host must be loopback; a unix socket is for
/// its owner only. SIGTERM or Ctrl-C stop it once the requests under way
/// end (at most 10 s).
#[derive(Debug, clap::Args)]
#[command(after_help = EXAMPLES)]
pub struct ProxyArgs {
    /// The upstream's base URL (https; http only on loopback)
    #[arg(long, value_name = "URL")]
    pub upstream: url::Url,
    #[command(flatten)]
    pub target: ProfileArg,
    /// Run this plugin command line in the proxy itself instead of using
    /// the agent (a login of the proxy's own)
    #[arg(long, value_name = "COMMANDLINE", conflicts_with = "profile")]
    pub plugin: Option<String>,
    /// Listen on this loopback address (port 0: a free one)
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:0")]
    pub listen: SocketAddr,
    /// Listen on this unix socket (mode 0600) instead of TCP
    #[arg(long, value_name = "PATH")]
    pub unix_socket: Option<PathBuf>,
    /// Write the proxy's URL (with its secret) to FILE, mode 0600, instead
    /// of stdout
    #[arg(long, value_name = "FILE")]
    pub url_file: Option<PathBuf>,
    /// Never start a login; a request that needs one fails (502)
    #[arg(long)]
    pub non_interactive: bool,
    #[command(flatten)]
    pub socket: SocketArg,
    #[command(flatten)]
    pub config: ConfigArg,
}

pub fn run(args: ProxyArgs) -> ExitCode {
    match serve(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => fail(message),
    }
}

fn serve(args: ProxyArgs) -> Result<(), String> {
    check_upstream(&args.upstream)?;
    let command = plugin_command(&args)?;
    // One thread: a loopback hop is latency-bound, and one thread wakes
    // no other (a worker pool measured slower, BENCHMARKS.md).
    let runtime = super::runtime()?;
    runtime.block_on(async {
        let listener = match &args.unix_socket {
            Some(path) => Listener::unix(path)
                .map_err(|e| format!("cannot listen on {}: {e}", path.display()))?,
            None => Listener::tcp(args.listen)
                .await
                .map_err(|e| format!("cannot listen on {}: {e}", args.listen))?,
        };
        let url = listener.client_url();
        match &args.url_file {
            Some(file) => write_private_atomically(file, format!("{url}\n").as_bytes())
                .map_err(|e| format!("cannot write {}: {e}", file.display()))?,
            None => say!("{url}"),
        }
        let broker = Broker::new(command, BrokerOptions::default());
        let token_request = TokenRequest::new()
            .interactive(!args.non_interactive)
            // A client that hangs up does not throw away a login under way.
            .keep_running(true);
        // The plugin's lines (a login's address) once each, whoever waits.
        let mut lines = broker.stderr_lines();
        tokio::spawn(async move {
            use tokio::sync::broadcast::error::RecvError;
            loop {
                match lines.recv().await {
                    Ok(line) => say_on_stderr!("{line}"),
                    Err(RecvError::Lagged(missed)) => {
                        say_on_stderr!("authplug proxy: ({missed} lines of the plugin not shown)")
                    }
                    Err(RecvError::Closed) => break,
                }
            }
        });
        say_on_stderr!(
            "authplug proxy: serving {} on {}; stop with Ctrl-C",
            args.upstream,
            match &args.unix_socket {
                Some(path) => path.display().to_string(),
                None => "the URL above (keep it to yourself: it holds the proxy's secret)".into(),
            }
        );
        let proxy = Proxy {
            upstream: args.upstream.clone(),
            broker,
            token_request,
            client: upstream_client(&args.upstream)?,
        };
        proxy
            .serve(listener, stopped())
            .await
            .map_err(|e| format!("the proxy failed: {e}"))
    })
}

/// The broker's plugin: `authplug token` for the agent's profile (the
/// login shared with every other client), or the given command line.
fn plugin_command(args: &ProxyArgs) -> Result<PluginCommand, String> {
    if let Some(command_line) = &args.plugin {
        return PluginCommand::parse(command_line)
            .map_err(|e| format!("--plugin {command_line:?}: {e}"));
    }
    let program = paths::authplug_program().map_err(|e| e.to_string())?;
    let mut argv = vec![
        program.into_os_string(),
        "token".into(),
        "--socket".into(),
        args.socket.path()?.into_os_string(),
    ];
    if let Some(profile) = &args.target.profile {
        argv.extend(["--profile".into(), profile.into()]);
    }
    if let Some(config) = &args.config.config {
        argv.extend(["--config".into(), config.clone().into_os_string()]);
    }
    PluginCommand::from_argv(argv).map_err(|e| e.to_string())
}

/// The client for the upstream: redirects go back to the client as they
/// are; an http upstream (on this machine) is reached directly, never
/// through an `HTTP_PROXY` that would see the token in the clear (https
/// goes through a configured proxy inside its TLS tunnel).
fn upstream_client(upstream: &url::Url) -> Result<reqwest::Client, String> {
    let mut builder = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none());
    if upstream.scheme() == "http" {
        builder = builder.no_proxy();
    }
    builder
        .build()
        .map_err(|e| format!("cannot make the HTTP client: {e}"))
}

fn is_loopback(upstream: &url::Url) -> bool {
    match upstream.host() {
        Some(url::Host::Domain(name)) => name == "localhost",
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

/// https, or http to this machine: the token must not cross a network in
/// the clear.
fn check_upstream(upstream: &url::Url) -> Result<(), String> {
    let loopback = is_loopback(upstream);
    match upstream.scheme() {
        "https" => Ok(()),
        "http" if loopback => Ok(()),
        _ => Err(format!(
            "--upstream {upstream}: the token would cross the network in the clear; use https (http only to this machine)"
        )),
    }
}

/// SIGTERM or SIGINT.
async fn stopped() {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    say_on_stderr!("authplug proxy: stopping once the requests under way end");
}
