//! `authplug status`: every profile's state, without secrets.

use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use authplug_agent::client::Client;
use authplug_agent::wire::ProfileStatus;

use super::fail;
use super::shared_args::SocketArg;

/// Show every profile's state (no secrets)
#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub socket: SocketArg,
    /// Print JSON instead of text
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: StatusArgs) -> ExitCode {
    let socket = match args.socket.path() {
        Ok(socket) => socket,
        Err(message) => return fail(message),
    };
    let profiles = match Client::connect(&socket).and_then(|mut client| client.status()) {
        Ok(profiles) => profiles,
        Err(error) => return super::exit::fail(error.kind(), error),
    };
    if args.json {
        match serde_json::to_string_pretty(&profiles) {
            Ok(json) => say!("{json}"),
            Err(error) => return fail(error),
        }
    } else {
        say!("agent on {}", socket.display());
        if profiles.is_empty() {
            say!("  no profiles configured");
        }
        for profile in &profiles {
            say!("{}", describe(profile, now()).trim_end_matches('\n'));
        }
    }
    ExitCode::SUCCESS
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn relative(at: u64, now: u64) -> String {
    if at > now {
        format!("in {}s", at - now)
    } else {
        format!("{}s ago", now - at)
    }
}

fn describe(profile: &ProfileStatus, now: u64) -> String {
    let mut text = format!(
        "{}{}\n",
        profile.name,
        if profile.default { " (default)" } else { "" }
    );
    let token = match (profile.has_token, profile.expires_at) {
        (false, _) if profile.rejected => {
            "rejected, a new one is fetched on the next request".to_owned()
        }
        (false, _) => "none".to_owned(),
        (true, Some(exp)) => match profile.refresh_ahead_at {
            Some(ahead) if ahead > now => format!(
                "cached, expires {}, renewed in the background {}",
                relative(exp, now),
                relative(ahead, now)
            ),
            Some(_) => format!(
                "cached, expires {}, renewed in the background at the next request",
                relative(exp, now)
            ),
            None => format!("cached, expires {}", relative(exp, now)),
        },
        (true, None) => {
            "cached, lifetime unknown (neither reported by its plugin nor a JWT), kept until rejected"
                .to_owned()
        }
    };
    text += &format!("  token: {token}\n");
    text += &format!(
        "  plugin state: {}\n",
        if profile.has_state {
            "held in memory"
        } else {
            "none"
        }
    );
    if profile.running {
        text += &format!("  running now, {} waiting\n", profile.waiters);
    }
    if let Some(run) = &profile.last_run {
        text += &format!(
            "  last run: {} ({}{}{}), {}, {} ms; {} runs in all\n",
            relative(run.finished_at, now),
            run.reason,
            if run.interactive { ", interactive" } else { "" },
            if run.background {
                ", in the background"
            } else {
                ""
            },
            if run.ok { "ok" } else { "failed" },
            run.elapsed_ms,
            profile.runs
        );
    }
    if let Some(warning) = profile
        .last_run
        .as_ref()
        .and_then(|run| run.warning.as_ref())
    {
        text += &format!("  warning: {warning}\n");
    }
    if let Some(error) = &profile.last_error {
        text += &format!("  last error: {}\n", error.replace('\n', "\n    "));
    }
    if let Some(until) = profile.cooldown_until {
        text += &format!(
            "  interactive logins paused until {} (use `authplug token --force`)\n",
            relative(until, now)
        );
    }
    text
}
