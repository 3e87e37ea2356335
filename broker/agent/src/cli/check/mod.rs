//! `authplug check`: a conformance checker for plugin authors.
//!
//! It runs the plugin through the real host (so every limit and rule of
//! protocol/PROTOCOL.md is enforced exactly as in production): first with
//! empty state, then with the state the first run returned; when there is
//! a state, once more without it, non-interactively, to see whether the
//! plugin uses it; then with a reason it cannot know (rule 1: like
//! `refresh`), with `rejected` (not the refused token again), and a
//! `logout` run; and prints what it verified in words a person can read.
//! Runs that may not interact find a browser and a terminal that only
//! tell on them (`browser_trap.rs`, `terminal_trap.rs`); the judgments are
//! `report.rs`'s.

use std::ffi::OsString;
use std::process::ExitCode;
use std::sync::Arc;

use authplug_protocol::host::{PluginCommand, RunOptions};
use authplug_protocol::{
    Reason, State, ENV_INFO_FD, ENV_LOGIN_NEEDED_EXIT, INFO_FD, KEEP_STATE_EXIT_CODE,
    LOGIN_NEEDED_EXIT_CODE,
};

use super::fail;
use super::interrupt::{self, Interruptions, RunOutcome};
use super::shared_args::TimeoutArg;

mod browser_trap;
mod report;
mod terminal_trap;

use browser_trap::BrowserTrap;
use report::Report;
use terminal_trap::TerminalTrap;

const EXAMPLES: &str = "\
Examples:
  EXAMPLE_TOKEN=hello authplug check -- plugins/examples/shell/env-token.sh
  EXAMPLE_TOKEN=hello authplug check --non-interactive --timeout 10 -- plugins/examples/shell/env-token.sh";

/// Check that a plugin follows the protocol: its runs, a readable report
///
/// Run 1 gets empty state (AUTHPLUG_REASON=initial), run 2 gets the state
/// run 1 returned (AUTHPLUG_REASON=refresh). Then, from the state run 2
/// returned: a reason no host sends yet (which a plugin must treat like
/// refresh) and `rejected` (which must not hand back the refused token);
/// if there is a state, a control run without it (never interactive) shows
/// whether the plugin uses it; last, AUTHPLUG_REASON=logout. Runs that may
/// not interact must not open a browser or prompt: they find a browser and
/// a terminal that tell on them.
/// Exits 0 only if every run conforms; 1 if the plugin breaks the
/// protocol; 3 if it failed for a reason of its own (not found, a non-zero
/// exit with its message, a signal, the timeout), so that nothing could be
/// checked: fix what it says (its environment, its configuration) and check
/// again.
#[derive(Debug, clap::Args)]
#[command(after_help = EXAMPLES)]
pub struct CheckArgs {
    /// Tell the plugin it must not open a browser or prompt (AUTHPLUG_INTERACTIVE=0)
    #[arg(long)]
    pub non_interactive: bool,
    #[command(flatten)]
    pub timeout: TimeoutArg,
    /// The plugin program and its arguments (run directly, not via a shell)
    #[arg(required = true, last = true, value_name = "PLUGIN [ARGS...]")]
    pub plugin: Vec<OsString>,
}

pub fn run(args: CheckArgs) -> ExitCode {
    let command = match PluginCommand::from_argv(args.plugin) {
        Ok(command) => command,
        Err(error) => return fail(error),
    };
    let timeout = match args.timeout.duration() {
        Ok(timeout) => timeout,
        Err(message) => return fail(message),
    };
    let runtime = match super::runtime() {
        Ok(runtime) => runtime,
        Err(message) => return fail(message),
    };
    let trap = match BrowserTrap::set() {
        Ok(trap) => trap,
        Err(error) => return fail(format!("cannot set up the browser trap: {error}")),
    };
    // Without pseudo-terminals (a container without devpts) the check goes
    // on, and says that it cannot see prompts.
    let mut terminal = TerminalTrap::set();
    let terminal_path = terminal.as_ref().ok().map(TerminalTrap::path);
    // From here on Ctrl-C stops the plugin before authplug exits.
    let mut interruptions = match Interruptions::catch(&runtime) {
        Ok(interruptions) => interruptions,
        Err(message) => return fail(message),
    };
    let mut run =
        |state: &State, options: &RunOptions| interruptions.run(&runtime, &command, state, options);
    let mut report = Report::default();
    say!("Checking plugin: {command}");
    say!(
        "(interactive: {}, timeout: {:.0}s per run)",
        if args.non_interactive { "no" } else { "yes" },
        timeout.as_secs_f64()
    );
    say!(
        "(each run gets AUTHPLUG_KEEP_STATE_EXIT={KEEP_STATE_EXIT_CODE}: a failed run may hand back \
         a state to keep by exiting with that code; {ENV_INFO_FD}={INFO_FD}: the plugin may say \
         there when its token expires; and {ENV_LOGIN_NEEDED_EXIT}={LOGIN_NEEDED_EXIT_CODE}: the \
         exit code for \"a login is needed\"; a run that may not interact finds a browser and a \
         terminal that only tell on it)"
    );
    if let Err(error) = &terminal {
        say!(
            "(no pseudo-terminal for the terminal's trap ({error}): a prompt in a run that may not \
             interact goes unseen)"
        );
    }

    let mut options = RunOptions::default();
    options.interactive = !args.non_interactive;
    options.timeout = timeout;
    options.foreground_terminal = interrupt::lend_terminal();
    options.stderr_tail_lines = 0;
    options.stderr_sink = Some(Arc::new(|line: &str| say!("  | {line}")));
    let interactive = options.interactive;
    if !interactive {
        // Every run of a check that may not interact finds the traps.
        options.env.extend(trap.env());
        options.session_terminal = terminal_path.clone();
    }
    // A run that may not interact gets the traps for its browser and its
    // terminal.
    let quiet = |options: &RunOptions| {
        let mut quiet = options.clone();
        quiet.interactive = false;
        if interactive {
            quiet.env.extend(trap.env());
            quiet.session_terminal = terminal_path.clone();
        }
        quiet
    };
    let mut caught = |report: &mut Report, run: &str| {
        report.browser(&trap, run);
        if let Ok(terminal) = &mut terminal {
            report.terminal(terminal, run);
        }
    };

    say!("\nRun 1: empty state on stdin, AUTHPLUG_REASON=initial");
    options.reason = Some(Reason::Initial);
    let first = match run(&State::default(), &options) {
        RunOutcome::Ran(first) => first,
        RunOutcome::Interrupted(interrupted) => return interrupted.exit(),
    };
    if !interactive {
        caught(&mut report, "run 1");
    }
    let Some(first) = report.judge_run(first) else {
        return report.finish();
    };
    let given = first.state.clone();

    say!(
        "\nRun 2: the {} of state from run 1 on stdin, AUTHPLUG_REASON=refresh",
        bytes(given.len())
    );
    options.reason = Some(Reason::Refresh);
    let second = match run(&given, &options) {
        RunOutcome::Ran(second) => second,
        RunOutcome::Interrupted(interrupted) => return interrupted.exit(),
    };
    if !interactive {
        caught(&mut report, "run 2");
    }
    let Some(second) = report.judge_run(second) else {
        return report.finish();
    };
    report.second_run_state(&first.token, &second.token, &given, &second.state);
    let mints = first.token != second.token;
    // Rule 1: a reason the plugin does not know is `refresh` to it.
    say!(
        "\nUnknown reason: the state from run 2 on stdin, AUTHPLUG_REASON={UNKNOWN_REASON} (a \
         newer host's), which a plugin MUST treat like refresh (rule 1)"
    );
    options.reason = Some(Reason::Unknown(UNKNOWN_REASON.to_owned()));
    let unknown = match run(&second.state, &options) {
        RunOutcome::Ran(unknown) => unknown,
        RunOutcome::Interrupted(interrupted) => return interrupted.exit(),
    };
    if !interactive {
        caught(&mut report, "the unknown-reason run");
    }
    let mut latest = report.unknown_reason_run(unknown, second.clone());

    // Rule 1: after a refusal, not the refused token again.
    say!(
        "\nRejected: the last state on stdin, AUTHPLUG_REASON=rejected{}: a server refused the \
         last token, which the plugin must not hand out again (rule 1)",
        if interactive { "" } else { ", non-interactive" }
    );
    let mut rejected_options = if interactive {
        options.clone()
    } else {
        quiet(&options)
    };
    rejected_options.reason = Some(Reason::Rejected);
    let rejected = match run(&latest.state, &rejected_options) {
        RunOutcome::Ran(rejected) => rejected,
        RunOutcome::Interrupted(interrupted) => return interrupted.exit(),
    };
    if !interactive {
        caught(&mut report, "the rejected run");
    }
    report.rejected_run(rejected, &mut latest, mints);

    if !given.is_empty() {
        // Did run 2 use its state? Run once more without it and compare.
        // Never interactive: a control run must not open a browser. After
        // the runs that go on from run 2's state: this one may replay what
        // run 1 started from, spent since (a rotated refresh token), which
        // a provider may answer by revoking the whole login.
        say!(
            "\nControl: run 2 again without the state (empty stdin, AUTHPLUG_REASON=initial, \
             non-interactive), to see whether the state made a difference"
        );
        let mut control_options = quiet(&options);
        control_options.reason = Some(Reason::Initial);
        let control = match run(&State::default(), &control_options) {
            RunOutcome::Ran(control) => control,
            RunOutcome::Interrupted(interrupted) => return interrupted.exit(),
        };
        caught(&mut report, "the control run");
        report.control_run(control, &second);
    }

    if !latest.state.is_empty() {
        // What `authplug logout` does: the last state, reason `logout`,
        // never interactive; whatever it returns is discarded. It also
        // cleans up after the check (revokes what the runs obtained).
        say!(
            "\nLogout: the last state on stdin, AUTHPLUG_REASON=logout, non-interactive (a host \
             then forgets the login, whatever the run returns)"
        );
        let mut logout_options = quiet(&options);
        logout_options.reason = Some(Reason::Logout);
        logout_options.keep_state_on_failure = false;
        let logout = match run(&latest.state, &logout_options) {
            RunOutcome::Ran(logout) => logout,
            RunOutcome::Interrupted(interrupted) => return interrupted.exit(),
        };
        caught(&mut report, "the logout run");
        report.logout_run(logout);
    }
    report.finish()
}

/// The reason a newer host might give, for the unknown-reason run.
const UNKNOWN_REASON: &str = "authplug-check-unknown";

pub(super) fn bytes(count: usize) -> String {
    if count == 1 {
        "1 byte".to_owned()
    } else {
        format!("{count} bytes")
    }
}
