//! Command-line flags; each also reads an `AUTHPLUG_OIDC_*` variable, which
//! is the better place for a client secret (argv is visible to every user).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, ValueEnum};

/// A client secret, as openidconnect keeps one: redacted in `Debug`.
pub type ClientSecret = openidconnect::ClientSecret;

fn secret(value: &str) -> Result<ClientSecret, std::convert::Infallible> {
    Ok(ClientSecret::new(value.to_owned()))
}

/// Which token goes to stdout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TokenKind {
    /// The ID token (a JWT about the user).
    Id,
    /// The access token (for an API).
    Access,
}

/// How a protected resource is named in the requests (`--resource-param`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ResourceParam {
    /// RFC 8707's `resource`, as the MCP authorization spec asks.
    Resource,
    /// Auth0's (and Okta custom servers', Hydra's) `audience`.
    Audience,
    /// Neither: the provider picks the audience itself.
    None,
}

/// How to log in when no token or refresh token will do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Flow {
    /// A browser when one can be opened here, else the device flow, else
    /// `paste`.
    Auto,
    /// Authorization code with PKCE through the browser.
    Browser,
    /// The browser flow without opening a browser here: prints the login
    /// address, to open in a browser on any machine, and takes the address
    /// that browser is sent to at the end, pasted on the terminal (for a
    /// session over SSH when the provider has no device flow).
    Paste,
    /// The device flow (RFC 8628): a URL and a code to enter elsewhere.
    Device,
    /// Client credentials: a machine's own token (needs a secret).
    ClientCredentials,
}

/// An authplug plugin for OpenID Connect: logs in once in a browser (or with
/// the device flow), then hands out fresh tokens from its refresh token.
#[derive(Debug, Clone, Parser)]
#[command(name = "authplug-oidc", version)]
pub struct Config {
    /// The provider's issuer URL, exactly as its discovery document says it
    /// (https; http only on loopback addresses). With --resource-url: one of
    /// the resource's authorization servers [default: the first it lists]
    #[arg(
        long,
        env = "AUTHPLUG_OIDC_ISSUER",
        default_value = "",
        hide_default_value = true
    )]
    pub issuer: String,

    #[arg(
        long,
        env = "AUTHPLUG_OIDC_CLIENT_ID",
        default_value = "",
        hide_default_value = true
    )]
    /// The client id registered with the provider (an https URL: a client
    /// ID metadata document). With --resource-url and none given: one
    /// registered at the server (RFC 7591), kept in the state
    pub client_id: String,

    /// Log in for this protected resource (an MCP server's URL): its
    /// metadata (RFC 9728) names the issuer and the resource; the access
    /// token is printed
    #[arg(long, env = "AUTHPLUG_OIDC_RESOURCE_URL", value_name = "URL")]
    pub resource_url: Option<url::Url>,

    /// How the resource of --resource-url is asked for: RFC 8707's
    /// `resource` (MCP), Auth0's and Okta's `audience`, or not at all (Entra
    /// refuses `resource` for its v2 endpoints)
    #[arg(
        long,
        env = "AUTHPLUG_OIDC_RESOURCE_PARAM",
        value_enum,
        default_value = "resource"
    )]
    pub resource_param: ResourceParam,

    /// The resource `--resource-url`'s metadata names, once resolved.
    #[arg(skip)]
    pub resolved_resource: Option<String>,

    /// The scopes that metadata lists (`scopes_supported`).
    #[arg(skip)]
    pub resolved_scopes: Vec<String>,

    /// Prefer the environment variable: argv is visible to other users.
    #[arg(long, env = "AUTHPLUG_OIDC_CLIENT_SECRET", hide_env_values = true)]
    #[arg(value_parser = secret)]
    pub client_secret: Option<ClientSecret>,

    /// For a login: `openid` is always added, and `offline_access` when the
    /// provider lists it [default: openid,profile,email]. With
    /// client-credentials: exactly these, and none by default.
    #[arg(long, env = "AUTHPLUG_OIDC_SCOPES", value_delimiter = ',')]
    pub scopes: Option<Vec<String>>,

    #[arg(long, env = "AUTHPLUG_OIDC_TOKEN", value_enum, default_value = "id")]
    /// Which token goes to stdout.
    pub token: TokenKind,

    /// RFC 8707 resource indicator: the API the access token is for (sent
    /// with the login and every token request).
    #[arg(long, env = "AUTHPLUG_OIDC_RESOURCE")]
    pub resource: Option<String>,

    /// Auth0's `audience` parameter (not RFC 8707's `resource`): the API
    /// whose JWT access token the login and client credentials ask for.
    #[arg(long, env = "AUTHPLUG_OIDC_AUDIENCE")]
    pub audience: Option<String>,

    /// An extra authorization-request parameter, KEY=VALUE; repeatable
    /// (Google: `access_type=offline` and `prompt=consent` for a refresh token).
    #[arg(
        long = "auth-param",
        value_name = "KEY=VALUE",
        env = "AUTHPLUG_OIDC_AUTH_PARAMS",
        value_delimiter = ','
    )]
    pub auth_params: Vec<String>,

    #[arg(long, env = "AUTHPLUG_OIDC_FLOW", value_enum, default_value = "auto")]
    /// How to log in when no token or refresh token will do.
    pub flow: Flow,

    /// Where the loopback listener for the browser's redirect binds.
    #[arg(long, env = "AUTHPLUG_OIDC_LISTEN", default_value = "127.0.0.1:0")]
    pub listen: SocketAddr,

    #[arg(long, env = "AUTHPLUG_OIDC_REDIRECT_PATH", default_value = "/callback")]
    /// The path of the loopback redirect URI.
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

    /// The provider's RFC 7009 revocation endpoint (for logout), when it
    /// lists one in neither its discovery document nor its RFC 8414
    /// metadata; https, as the issuer.
    #[arg(long, env = "AUTHPLUG_OIDC_REVOCATION_ENDPOINT", value_name = "URL")]
    pub revocation_endpoint: Option<url::Url>,

    /// The provider's RFC 8628 device authorization endpoint, when it lists
    /// one in neither its discovery document nor its RFC 8414 metadata;
    /// https, as the issuer.
    #[arg(long, env = "AUTHPLUG_OIDC_DEVICE_ENDPOINT", value_name = "URL")]
    pub device_endpoint: Option<url::Url>,

    /// Extra trust roots (PEM), added to the system's trust store
    /// (SSL_CERT_FILE/SSL_CERT_DIR name another) and the built-in web PKI
    /// roots. Proxies: HTTPS_PROXY, HTTP_PROXY, NO_PROXY.
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

    /// `--login-timeout` as a duration.
    pub fn login_timeout(&self) -> Duration {
        Duration::from_secs(self.login_timeout)
    }

    /// `--http-timeout` as a duration.
    pub fn http_timeout(&self) -> Duration {
        Duration::from_secs(self.http_timeout)
    }

    /// Checks what clap cannot: the issuer's scheme, the listener's address
    /// and the redirect path.
    pub fn validate(&self) -> Result<(), FlagError> {
        if let Some(resource_url) = &self.resource_url {
            let loopback_http = resource_url.scheme() == "http" && is_loopback(resource_url);
            if resource_url.scheme() != "https" && !loopback_http {
                return Err(FlagError::ResourceUrlScheme {
                    url: resource_url.to_string(),
                });
            }
            if self.issuer.is_empty() {
                // Found in the resource's metadata, and checked then.
                return self.validate_rest();
            }
        } else if self.issuer.is_empty() || self.client_id.is_empty() {
            return Err(FlagError::Missing);
        }
        let issuer = url::Url::parse(&self.issuer).map_err(|error| FlagError::IssuerNotUrl {
            issuer: self.issuer.clone(),
            error,
        })?;
        // OIDC Discovery §2: an issuer has no query and no fragment; one
        // typed with them would name another issuer or none.
        if issuer.query().is_some() || issuer.fragment().is_some() {
            return Err(FlagError::IssuerQueryOrFragment {
                issuer: self.issuer.clone(),
            });
        }
        match issuer.scheme() {
            "https" => {}
            "http" if is_loopback(&issuer) => {}
            "http" => {
                return Err(FlagError::IssuerPlainHttp {
                    issuer: self.issuer.clone(),
                })
            }
            other => {
                return Err(FlagError::IssuerScheme {
                    scheme: other.to_owned(),
                })
            }
        }
        self.validate_rest()
    }

    /// Everything but the issuer.
    fn validate_rest(&self) -> Result<(), FlagError> {
        // These feed time arithmetic (chrono panics on overflow) and
        // timers: keep them to what makes sense.
        check_range("--skew", self.skew, 0, MAX_SKEW)?;
        check_range("--login-timeout", self.login_timeout, 1, MAX_LOGIN_TIMEOUT)?;
        check_range("--http-timeout", self.http_timeout, 1, MAX_HTTP_TIMEOUT)?;
        if !self.listen.ip().is_loopback() {
            return Err(FlagError::ListenNotLoopback {
                listen: self.listen,
            });
        }
        if !self.redirect_path.starts_with('/') {
            return Err(FlagError::RedirectPath {
                path: self.redirect_path.clone(),
            });
        }
        self.auth_param_pairs()?;
        if self.flow == Flow::ClientCredentials && self.client_secret.is_none() {
            return Err(FlagError::NoClientSecret);
        }
        Ok(())
    }
}

/// A flag that cannot be used, said before any request goes out (the
/// binary exits 2).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FlagError {
    /// Neither `--issuer` and `--client-id`, nor `--resource-url`.
    #[error("--issuer and --client-id are needed (or --resource-url, to find them from a protected resource such as an MCP server)")]
    Missing,
    /// `--resource-url` is neither https nor loopback http.
    #[error("--resource-url {url} must be https (http only on loopback addresses)")]
    ResourceUrlScheme {
        /// As given.
        url: String,
    },
    /// `--issuer` does not parse.
    #[error("--issuer {issuer:?} is not a URL: {error}")]
    IssuerNotUrl {
        /// As given.
        issuer: String,
        /// Why not.
        error: url::ParseError,
    },
    /// An issuer never has a query or a fragment (OIDC Discovery §2).
    #[error("--issuer {issuer} has a query or a fragment, which an issuer never has: give it exactly as the provider's discovery document names it")]
    IssuerQueryOrFragment {
        /// As given.
        issuer: String,
    },
    /// Plain http, not on loopback.
    #[error("--issuer {issuer} uses http; only https is allowed, except on loopback addresses for local development")]
    IssuerPlainHttp {
        /// As given.
        issuer: String,
    },
    /// Neither https nor http.
    #[error("--issuer uses the scheme {scheme:?}; use https")]
    IssuerScheme {
        /// The scheme given.
        scheme: String,
    },
    /// A number of seconds out of its range.
    #[error("{flag} {value} is out of range: give between {min} and {max} seconds")]
    OutOfRange {
        /// The flag.
        flag: &'static str,
        /// As given.
        value: u64,
        /// The least allowed.
        min: u64,
        /// The most allowed.
        max: u64,
    },
    /// The redirect listener must not be reachable from other machines.
    #[error("--listen {listen} is not a loopback address: the login redirect listener must not be reachable from other machines; use 127.0.0.1 (or [::1]) with any port")]
    ListenNotLoopback {
        /// As given.
        listen: SocketAddr,
    },
    /// `--redirect-path` must be a path.
    #[error("--redirect-path {path:?} must start with '/'")]
    RedirectPath {
        /// As given.
        path: String,
    },
    /// A wrong `--auth-param`.
    #[error("--auth-param {param} {problem}")]
    AuthParam {
        /// As given (or its key).
        param: String,
        /// What is wrong.
        problem: String,
    },
    /// Client credentials need a secret.
    #[error("--flow client-credentials needs a client secret: set AUTHPLUG_OIDC_CLIENT_SECRET")]
    NoClientSecret,
}

/// The scopes of a login when none are given.
const DEFAULT_LOGIN_SCOPES: &[&str] = &["openid", "profile", "email"];

/// Parameters the plugin sets itself, for security (`state`, `nonce`, PKCE)
/// or by the flow: `--auth-param` may not replace them.
const RESERVED_PARAMS: &[&str] = &[
    "client_id",
    "redirect_uri",
    "response_type",
    "response_mode",
    "scope",
    "state",
    "nonce",
    "code_challenge",
    "code_challenge_method",
    "resource",
    "audience",
];

impl Config {
    /// The scopes a login asks for (before `openid` and `offline_access`
    /// are added).
    pub fn login_scopes(&self) -> Vec<String> {
        match &self.scopes {
            Some(scopes) => scopes.clone(),
            None => DEFAULT_LOGIN_SCOPES.iter().map(|s| s.to_string()).collect(),
        }
    }

    /// Exactly the scopes the user gave, without empty ones.
    pub fn given_scopes(&self) -> Vec<&str> {
        (self.scopes.iter().flatten())
            .map(|s| s.trim())
            .filter(|s| !s.is_empty())
            .collect()
    }

    /// The scopes this flow asks for, for messages.
    pub fn requested_scopes(&self) -> Vec<String> {
        if self.flow == Flow::ClientCredentials {
            self.given_scopes().into_iter().map(str::to_owned).collect()
        } else {
            self.login_scopes()
        }
    }

    /// `--auth-param` as pairs; an error names the one that is wrong.
    pub fn auth_param_pairs(&self) -> Result<Vec<(String, String)>, FlagError> {
        let mut pairs = Vec::new();
        for param in &self.auth_params {
            let wrong = |problem: &str| FlagError::AuthParam {
                param: param.clone(),
                problem: problem.to_owned(),
            };
            let Some((key, value)) = param.split_once('=') else {
                return Err(wrong("is not KEY=VALUE"));
            };
            let key = key.trim();
            if key.is_empty() {
                return Err(wrong("has an empty key"));
            }
            if RESERVED_PARAMS.contains(&key) {
                return Err(FlagError::AuthParam {
                    param: format!("{key}=..."),
                    problem: format!(
                        "would replace a parameter authplug-oidc sets itself{}",
                        match key {
                            "scope" => "; use --scopes",
                            "resource" => "; use --resource",
                            "audience" => "; use --audience",
                            _ => "",
                        }
                    ),
                });
            }
            pairs.push((key.to_owned(), value.to_owned()));
        }
        Ok(pairs)
    }

    /// What the access token is for, as kept with it in the state: a token
    /// for another API is never reused.
    pub fn access_token_target(&self) -> Option<String> {
        match (&self.resource, &self.audience) {
            (Some(resource), None) => Some(resource.clone()),
            (resource, Some(audience)) => Some(format!(
                "{} audience={audience}",
                resource.as_deref().unwrap_or("")
            )),
            (None, None) => None,
        }
    }

    /// Extra parameters of a login request (authorization or device
    /// authorization): `resource`, `audience` and every `--auth-param`.
    pub fn login_params(&self) -> Vec<(String, String)> {
        let mut params = self.token_params();
        if let Some(audience) = &self.audience {
            params.push(("audience".into(), audience.clone()));
        }
        params.extend(self.auth_param_pairs().unwrap_or_default());
        params
    }

    /// Extra parameters of a token request: RFC 8707's `resource` (and,
    /// for client credentials, which has no login, Auth0's `audience`).
    pub fn token_params(&self) -> Vec<(String, String)> {
        let mut params = Vec::new();
        if let Some(resource) = &self.resource {
            params.push(("resource".into(), resource.clone()));
        }
        if self.flow == Flow::ClientCredentials {
            if let Some(audience) = &self.audience {
                params.push(("audience".into(), audience.clone()));
            }
        }
        params
    }
}

/// A day: a token this close to expiry counts as expired; more would
/// refresh on every run.
const MAX_SKEW: u64 = 24 * 60 * 60;
/// A day to log in.
const MAX_LOGIN_TIMEOUT: u64 = 24 * 60 * 60;
/// An hour for one request.
const MAX_HTTP_TIMEOUT: u64 = 60 * 60;

fn check_range(flag: &'static str, value: u64, min: u64, max: u64) -> Result<(), FlagError> {
    if (min..=max).contains(&value) {
        Ok(())
    } else {
        Err(FlagError::OutOfRange {
            flag,
            value,
            min,
            max,
        })
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
