//! The exit codes of `authplug`: one table for every subcommand that asks
//! the agent, chosen by the kind of failure ([`ErrorKind`]), never by its
//! words. README.md's "Exit codes" shows [`TABLE`], and a test keeps the
//! two equal.

use std::process::ExitCode;

use authplug_agent::wire::ErrorKind;

/// Any failure without a code of its own.
pub const FAILURE: u8 = 1;
/// The command line is wrong (clap's code).
pub const USAGE: u8 = 2;
/// No agent could be reached or started.
pub const AGENT_UNREACHABLE: u8 = 3;
/// A login is needed, and this command was not allowed to start one.
pub const LOGIN_NEEDED: u8 = 4;
/// An interactive login was refused during the cool-down after a failed one.
pub const COOLING_DOWN: u8 = 5;
/// The profile does not exist.
pub const UNKNOWN_PROFILE: u8 = 6;
/// The plugin could not be started or broke the protocol: its
/// configuration needs fixing.
pub const PLUGIN_BROKEN: u8 = 7;

/// Every code, and when it is used, as README.md shows them.
pub const TABLE: &[(u8, &str)] = &[
    (0, "success"),
    (FAILURE, "any other failure: the plugin failed (its message is above), a token was refused again, ..."),
    (USAGE, "the command line is wrong"),
    (AGENT_UNREACHABLE, "no agent could be reached or started (`--no-autostart`, a broken install)"),
    (LOGIN_NEEDED, "a login is needed and this command may not start one (`--non-interactive`, a tool with no terminal): run `authplug token` in a terminal"),
    (COOLING_DOWN, "an interactive login was refused because one failed less than the cool-down ago: `--force` starts one"),
    (UNKNOWN_PROFILE, "no such profile (or none named and no default)"),
    (PLUGIN_BROKEN, "the plugin could not be started, or broke the protocol: fix its command line"),
];

/// The code for a failure of this kind.
pub fn code(kind: ErrorKind) -> u8 {
    match kind {
        ErrorKind::AgentUnreachable => AGENT_UNREACHABLE,
        ErrorKind::LoginNeeded => LOGIN_NEEDED,
        ErrorKind::CoolingDown => COOLING_DOWN,
        ErrorKind::UnknownProfile => UNKNOWN_PROFILE,
        ErrorKind::PluginNotStarted | ErrorKind::PluginBrokeProtocol => PLUGIN_BROKEN,
        _ => FAILURE,
    }
}

/// Prints `authplug: message` on stderr and exits with the kind's code.
pub fn fail(kind: ErrorKind, message: impl std::fmt::Display) -> ExitCode {
    say_on_stderr!("authplug: {message}");
    ExitCode::from(code(kind))
}

/// The table for `--help` and the manual page.
pub fn help() -> String {
    let mut text = String::from("Exit codes (of the commands that ask the agent):\n");
    for (code, meaning) in TABLE {
        text.push_str(&format!("  {code}  {meaning}\n"));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_readme_shows_this_table() {
        let readme = include_str!("../../../../README.md");
        for (code, meaning) in TABLE {
            let row = format!("| {code} | {meaning} |");
            assert!(readme.contains(&row), "README.md lacks the row {row}");
        }
    }

    #[test]
    fn every_kind_has_a_code_and_clap_uses_ours_for_usage() {
        assert_eq!(code(ErrorKind::LoginNeeded), LOGIN_NEEDED);
        assert_eq!(code(ErrorKind::Unknown), FAILURE);
        let error = clap::Command::new("x")
            .try_get_matches_from(["x", "--nope"])
            .unwrap_err();
        assert_eq!(error.exit_code(), i32::from(USAGE));
    }
}
