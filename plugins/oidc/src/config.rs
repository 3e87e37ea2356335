//! Command-line flags; each also reads an `AUTHPLUG_OIDC_*` variable, which
//! is the better place for a client secret (argv is visible to every user).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, ValueEnum};

/// Which token goes to stdout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TokenKind {
    Id,
    Access,
}

/// How to log in when no token or refresh token will do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Flow {
    /// A browser when one can be opened here, else the device flow.
    Auto,
    Browser,
    Device,
    ClientCredentials,
}

/// An authplug plugin for OpenID Connect: logs in once in a browser (or with
/// the device flow), then hands out fresh tokens from its refresh token.
#[derive(Debug, Clone, Parser)]
#[command(name = "authplug-oidc", version)]
pub struct Config {
    /// The provider's issuer URL, exactly as its discovery document says it
    /// (https; http only on loopback addresses).
    #[arg(long, env = "AUTHPLUG_OIDC_ISSUER")]
    pub issuer: String,

    #[arg(long, env = "AUTHPLUG_OIDC_CLIENT_ID")]
    pub client_id: String,

    /// Prefer the environment variable: argv is visible to other users.
    #[arg(long, env = "AUTHPLUG_OIDC_CLIENT_SECRET", hide_env_values = true)]
    pub client_secret: Option<String>,

    /// `openid` is always added, and `offline_access` when the provider lists it.
    #[arg(
        long,
        env = "AUTHPLUG_OIDC_SCOPES",
        value_delimiter = ',',
        default_value = "openid,profile,email"
    )]
    pub scopes: Vec<String>,

    #[arg(long, env = "AUTHPLUG_OIDC_TOKEN", value_enum, default_value = "id")]
    pub token: TokenKind,

    /// RFC 8707 resource indicator: the API the access token is for.
    #[arg(long, alias = "audience", env = "AUTHPLUG_OIDC_RESOURCE")]
    pub resource: Option<String>,

    #[arg(long, env = "AUTHPLUG_OIDC_FLOW", value_enum, default_value = "auto")]
    pub flow: Flow,

    /// Where the loopback listener for the browser's redirect binds.
    #[arg(long, env = "AUTHPLUG_OIDC_LISTEN", default_value = "127.0.0.1:0")]
    pub listen: SocketAddr,

    #[arg(long, env = "AUTHPLUG_OIDC_REDIRECT_PATH", default_value = "/callback")]
    pub redirect_path: String,

    /// The login URL is appended as the last argument. Default: $BROWSER,
    /// else the system's opener.
    #[arg(long, env = "AUTHPLUG_OIDC_BROWSER_COMMAND")]
    pub browser_command: Option<String>,

    /// Print the login URL only; open nothing.
    #[arg(long, env = "AUTHPLUG_OIDC_NO_BROWSER")]
    pub no_browser: bool,

    /// Seconds to wait for a login (browser or device flow).
    #[arg(long, env = "AUTHPLUG_OIDC_LOGIN_TIMEOUT", default_value_t = 300)]
    pub login_timeout: u64,

    /// Extra trust roots (PEM), added to the built-in ones.
    #[arg(long, env = "AUTHPLUG_OIDC_CA_FILE")]
    pub ca_file: Option<PathBuf>,

    /// Seconds before expiry at which a token counts as expired, and the
    /// tolerance for an ID token's `iat` in the future.
    #[arg(long, env = "AUTHPLUG_OIDC_SKEW", default_value_t = 60)]
    pub skew: u64,

    /// Seconds for each HTTP request to the provider.
    #[arg(long, env = "AUTHPLUG_OIDC_HTTP_TIMEOUT", default_value_t = 30)]
    pub http_timeout: u64,
}

impl Config {
    /// Local development: an http issuer on a loopback address. Only then
    /// may the provider's endpoints be plain http (and only on loopback).
    pub fn issuer_is_loopback_http(&self) -> bool {
        url::Url::parse(&self.issuer).is_ok_and(|u| u.scheme() == "http" && is_loopback(&u))
    }

    pub fn login_timeout(&self) -> Duration {
        Duration::from_secs(self.login_timeout)
    }

    pub fn http_timeout(&self) -> Duration {
        Duration::from_secs(self.http_timeout)
    }

    /// Checks what clap cannot: the issuer's scheme, the listener's address
    /// and the redirect path.
    pub fn validate(&self) -> Result<(), String> {
        let issuer = url::Url::parse(&self.issuer)
            .map_err(|e| format!("--issuer {:?} is not a URL: {e}", self.issuer))?;
        match issuer.scheme() {
            "https" => {}
            "http" if is_loopback(&issuer) => {}
            "http" => {
                return Err(format!(
                    "--issuer {} uses http; only https is allowed, except on loopback addresses for local development",
                    self.issuer
                ))
            }
            other => return Err(format!("--issuer uses the scheme {other:?}; use https")),
        }
        // These feed time arithmetic (chrono panics on overflow) and
        // timers: keep them to what makes sense.
        check_range("--skew", self.skew, 0, MAX_SKEW)?;
        check_range("--login-timeout", self.login_timeout, 1, MAX_LOGIN_TIMEOUT)?;
        check_range("--http-timeout", self.http_timeout, 1, MAX_HTTP_TIMEOUT)?;
        if !self.listen.ip().is_loopback() {
            return Err(format!(
                "--listen {} is not a loopback address: the login redirect listener must not be \
                 reachable from other machines; use 127.0.0.1 (or [::1]) with any port",
                self.listen
            ));
        }
        if !self.redirect_path.starts_with('/') {
            return Err(format!(
                "--redirect-path {:?} must start with '/'",
                self.redirect_path
            ));
        }
        if self.flow == Flow::ClientCredentials && self.client_secret.is_none() {
            return Err(
                "--flow client-credentials needs a client secret: set AUTHPLUG_OIDC_CLIENT_SECRET"
                    .into(),
            );
        }
        Ok(())
    }
}

/// A day: a token this close to expiry counts as expired; more would
/// refresh on every run.
const MAX_SKEW: u64 = 24 * 60 * 60;
/// A day to log in.
const MAX_LOGIN_TIMEOUT: u64 = 24 * 60 * 60;
/// An hour for one request.
const MAX_HTTP_TIMEOUT: u64 = 60 * 60;

fn check_range(flag: &str, value: u64, min: u64, max: u64) -> Result<(), String> {
    if (min..=max).contains(&value) {
        Ok(())
    } else {
        Err(format!(
            "{flag} {value} is out of range: give between {min} and {max} seconds"
        ))
    }
}

/// Whether `url` names this machine: `localhost` or a loopback address.
pub fn is_loopback(url: &url::Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(name)) => name == "localhost",
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}
