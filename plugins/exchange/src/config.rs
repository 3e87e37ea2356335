//! The plugin's flags: where to trade, what to trade, and how.

use std::path::PathBuf;
use std::time::Duration;

use authplug_protocol::Secret;
use clap::{Parser, ValueEnum};

/// The variable the agent sets for a profile with `subject_profile`.
pub const ENV_SUBJECT_PROFILE: &str = "AUTHPLUG_SUBJECT_PROFILE";

/// The flags of `authplug-exchange`.
#[derive(Parser, Debug, Clone)]
#[command(
    name = "authplug-exchange",
    version,
    about = "An authplug plugin that trades another login's token for a service's own (RFC 8693 token exchange, or the service's JSON exchange)",
    after_help = "The subject token comes from another profile of the agent (`subject_profile = \"work\"` in the agent's config; outside the agent, --subject-profile), or from --subject-command. See plugins/exchange/README.md."
)]
pub struct Config {
    /// The exchange endpoint (https, or http on loopback).
    #[arg(long, env = "AUTHPLUG_EXCHANGE_ENDPOINT", value_name = "URL")]
    pub endpoint: String,

    /// How the endpoint trades: `rfc8693` (an OAuth token exchange, form
    /// encoded), or `json` (a JSON body holding the subject token, a JSON
    /// answer holding the new one).
    #[arg(long, value_enum, default_value_t = Format::Rfc8693)]
    pub format: Format,

    /// The agent's profile whose token is traded. The agent sets it for a
    /// profile with `subject_profile`.
    #[arg(long, env = ENV_SUBJECT_PROFILE, value_name = "NAME")]
    pub subject_profile: Option<String>,

    /// A command line (shell words, no shell) that prints the subject
    /// token on stdout, instead of --subject-profile.
    #[arg(long, value_name = "COMMANDLINE", conflicts_with = "subject_profile")]
    pub subject_command: Option<String>,

    /// The `authplug` program that asks the agent for the subject token
    /// [default: the one beside this program, else on PATH].
    #[arg(long, value_name = "PATH")]
    pub authplug: Option<PathBuf>,

    /// What the subject token is (RFC 8693 `subject_token_type`):
    /// `id_token`, `access_token`, `jwt`, or a token type URI.
    #[arg(long, default_value = "id_token", value_name = "TYPE")]
    pub subject_token_type: String,

    /// RFC 8693: `audience` of the new token (repeatable).
    #[arg(long, value_name = "NAME")]
    pub audience: Vec<String>,

    /// RFC 8693: `resource` the new token is for (an absolute URI; repeatable).
    #[arg(long, value_name = "URI")]
    pub resource: Vec<String>,

    /// RFC 8693: scopes of the new token, separated by commas or spaces.
    #[arg(long, value_name = "SCOPES")]
    pub scope: Option<String>,

    /// RFC 8693: `requested_token_type`: `access_token`, `id_token`, `jwt`,
    /// or a token type URI.
    #[arg(long, value_name = "TYPE")]
    pub requested_token_type: Option<String>,

    /// RFC 8693: the client that asks, when the endpoint authenticates
    /// clients. Its secret is only ever read from
    /// AUTHPLUG_EXCHANGE_CLIENT_SECRET (never a flag: argv is public).
    #[arg(long, env = "AUTHPLUG_EXCHANGE_CLIENT_ID", value_name = "ID")]
    pub client_id: Option<String>,

    /// The client secret; from the environment only.
    #[arg(skip = client_secret_from_env())]
    pub client_secret: Option<Secret<String>>,

    /// RFC 8693: how the client authenticates: HTTP Basic, or in the form.
    #[arg(long, value_enum, default_value_t = ClientAuth::Basic)]
    pub client_auth: ClientAuth,

    /// JSON: the field of the request that carries the subject token.
    #[arg(long, value_name = "NAME")]
    pub json_field: Option<String>,

    /// JSON: more fields of the request, as strings (repeatable).
    #[arg(long = "field", value_name = "NAME=VALUE", value_parser = name_value)]
    pub fields: Vec<(String, String)>,

    /// JSON: where the answer holds the new token; `a.b` for a nested field.
    #[arg(long, default_value = "token", value_name = "PATH")]
    pub token_field: String,

    /// JSON: where the answer says when the token ends: a Unix time, an
    /// RFC 3339 time, or a number of seconds below 10^9 taken as a lifetime
    /// [default: `expires_at`, else `expires_in`, else the token's own JWT
    /// `exp`].
    #[arg(long, value_name = "PATH")]
    pub expires_field: Option<String>,

    /// Seconds for each HTTP request.
    #[arg(long, default_value_t = 30, value_name = "SECONDS")]
    pub http_timeout: u64,

    /// PEM bundle of more certificate authorities to trust (a corporate
    /// TLS-inspecting proxy, a private CA), beside the system's.
    #[arg(long, env = "AUTHPLUG_EXCHANGE_CA_FILE", value_name = "FILE")]
    pub ca_file: Option<PathBuf>,
}

/// How the endpoint trades.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// RFC 8693 OAuth 2.0 Token Exchange.
    Rfc8693,
    /// The service's own JSON exchange.
    Json,
}

/// RFC 6749 §2.3.1: how a client with a secret authenticates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ClientAuth {
    /// `Authorization: Basic`.
    Basic,
    /// `client_id` and `client_secret` in the form.
    Post,
}

fn client_secret_from_env() -> Option<Secret<String>> {
    std::env::var("AUTHPLUG_EXCHANGE_CLIENT_SECRET")
        .ok()
        .filter(|secret| !secret.is_empty())
        .map(Secret::new)
}

fn name_value(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((name, value)) if !name.is_empty() => Ok((name.to_owned(), value.to_owned())),
        _ => Err(format!("`{text}` is not NAME=VALUE")),
    }
}

/// A flag that cannot be used, or a pair that does not go together.
#[derive(Debug)]
pub struct FlagError(pub String);

impl std::fmt::Display for FlagError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for FlagError {}

/// The RFC 8693 §3 URI of a token type given by its short name.
pub fn token_type_uri(name: &str) -> String {
    match name {
        "id_token" | "access_token" | "refresh_token" | "jwt" | "saml1" | "saml2" => {
            format!("urn:ietf:params:oauth:token-type:{name}")
        }
        other => other.to_owned(),
    }
}

impl Config {
    /// Whether the flags go together; the error names the one to fix.
    pub fn validate(&self) -> Result<(), FlagError> {
        let fail = |message: String| Err(FlagError(message));
        let url = url::Url::parse(&self.endpoint)
            .map_err(|e| FlagError(format!("--endpoint {} is not a URL: {e}", self.endpoint)))?;
        if url.scheme() != "https" && !self.endpoint_is_loopback_http() {
            return fail(format!(
                "--endpoint {} must be https (or http on 127.0.0.1, ::1 or localhost): the subject token travels in the request",
                self.endpoint
            ));
        }
        if self.subject_profile.is_none() && self.subject_command.is_none() {
            return fail(
                "no subject token: give --subject-profile NAME (in the agent's config: `subject_profile = \"NAME\"`) or --subject-command".into(),
            );
        }
        if self.http_timeout == 0 {
            return fail("--http-timeout must be above 0".into());
        }
        match self.format {
            Format::Json => {
                if self.json_field.is_none() {
                    return fail("--format json needs --json-field, the request's field for the subject token".into());
                }
                let rfc_only = [
                    ("--audience", !self.audience.is_empty()),
                    ("--resource", !self.resource.is_empty()),
                    ("--scope", self.scope.is_some()),
                    (
                        "--requested-token-type",
                        self.requested_token_type.is_some(),
                    ),
                    ("--client-id", self.client_id.is_some()),
                ];
                if let Some((flag, _)) = rfc_only.iter().find(|(_, given)| *given) {
                    return fail(format!("{flag} is for --format rfc8693; a JSON exchange takes its fields with --field NAME=VALUE"));
                }
            }
            Format::Rfc8693 => {
                let json_only = [
                    ("--json-field", self.json_field.is_some()),
                    ("--field", !self.fields.is_empty()),
                    ("--expires-field", self.expires_field.is_some()),
                    ("--token-field", self.token_field != "token"),
                ];
                if let Some((flag, _)) = json_only.iter().find(|(_, given)| *given) {
                    return fail(format!("{flag} is for --format json"));
                }
                if self.client_secret.is_some() && self.client_id.is_none() {
                    return fail(
                        "AUTHPLUG_EXCHANGE_CLIENT_SECRET is set but --client-id is not".into(),
                    );
                }
                for resource in &self.resource {
                    if url::Url::parse(resource).is_err() {
                        return fail(format!(
                            "--resource {resource} is not an absolute URI (RFC 8693 §2.1)"
                        ));
                    }
                }
            }
        }
        Ok(())
    }

    /// http on loopback: a test, or a local service.
    pub fn endpoint_is_loopback_http(&self) -> bool {
        url::Url::parse(&self.endpoint).is_ok_and(|url| {
            url.scheme() == "http"
                && matches!(
                    url.host(),
                    Some(url::Host::Ipv4(ip)) if ip.is_loopback()
                ) | matches!(url.host(), Some(url::Host::Ipv6(ip)) if ip.is_loopback())
                    | (url.host_str() == Some("localhost"))
        })
    }

    /// For each HTTP request.
    pub fn http_timeout(&self) -> Duration {
        Duration::from_secs(self.http_timeout)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn validated(args: &[&str]) -> Result<(), String> {
        let mut argv = vec!["authplug-exchange"];
        argv.extend(args);
        Config::try_parse_from(argv)
            .map_err(|e| e.to_string())?
            .validate()
            .map_err(|e| e.to_string())
    }

    #[test]
    fn flags_that_do_not_go_together_name_the_one_to_fix() {
        let subject = ["--subject-profile", "work"];
        let ok = |args: &[&str]| validated(&[args, &subject].concat());
        assert_eq!(ok(&["--endpoint", "https://sts.example/token"]), Ok(()));
        assert_eq!(ok(&["--endpoint", "http://127.0.0.1:8080/token"]), Ok(()));
        for (args, said) in [
            (
                vec!["--endpoint", "http://sts.example/token"],
                "must be https",
            ),
            (vec!["--endpoint", "not a url"], "not a URL"),
            (
                vec!["--endpoint", "https://x", "--format", "json"],
                "--json-field",
            ),
            (
                vec![
                    "--endpoint",
                    "https://x",
                    "--format",
                    "json",
                    "--json-field",
                    "t",
                    "--audience",
                    "a",
                ],
                "--audience is for --format rfc8693",
            ),
            (
                vec!["--endpoint", "https://x", "--json-field", "t"],
                "--json-field is for --format json",
            ),
            (
                vec!["--endpoint", "https://x", "--resource", "relative"],
                "absolute URI",
            ),
            (
                vec!["--endpoint", "https://x", "--http-timeout", "0"],
                "above 0",
            ),
        ] {
            let error = ok(&args).expect_err(&format!("{args:?}"));
            assert!(error.contains(said), "{args:?}: {error}");
        }
        let none = validated(&["--endpoint", "https://x"]).unwrap_err();
        assert!(none.contains("subject_profile"), "{none}");
        let both = validated(&[
            "--endpoint",
            "https://x",
            "--subject-profile",
            "a",
            "--subject-command",
            "b",
        ]);
        assert!(both.is_err());
    }
}
