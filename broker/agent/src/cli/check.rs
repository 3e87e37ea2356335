//! `authplug check`: a conformance checker for plugin authors.
//!
//! It runs the plugin twice through the real host (so every limit and rule
//! of protocol/PROTOCOL.md is enforced exactly as in production): first with
//! empty state, then with the state the first run returned (and, when there
//! is a state, once more without it, non-interactively, to see whether the
//! plugin uses it, and a `logout` run), and prints what it verified in
//! words a person can read.

use std::ffi::OsString;
use std::fmt::Write as _;
use std::process::ExitCode;
use std::sync::Arc;

use authplug_protocol::host::{self, PluginCommand, RunOptions, RunOutput};
use authplug_protocol::{
    Reason, State, ENV_INFO_FD, INFO_FD, KEEP_STATE_EXIT_CODE, STATE_LIMIT, TOKEN_LIMIT,
};

use super::fail;
use super::interrupt::{self, Interruptions, RunOutcome};

const EXAMPLES: &str = "\
Examples:
  EXAMPLE_TOKEN=hello authplug check -- plugins/examples/shell/env-token.sh
  EXAMPLE_TOKEN=hello authplug check --non-interactive --timeout 10 -- plugins/examples/shell/env-token.sh";

/// Check that a plugin follows the protocol: two runs, a readable report
///
/// Run 1 gets empty state (AUTHPLUG_REASON=initial), run 2 gets the state
/// run 1 returned (AUTHPLUG_REASON=refresh); if there is a state, a control
/// run without it (never interactive) shows whether the plugin uses it, and
/// a last run with AUTHPLUG_REASON=logout shows what it does on logout.
/// Exits 0 only if runs 1 and 2 conform; 1 if the plugin breaks the
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
    /// Stop the plugin after this many seconds in each run
    #[arg(
        long,
        value_name = "SECS",
        env = "AUTHPLUG_TIMEOUT",
        default_value_t = 300.0
    )]
    pub timeout: f64,
    /// The plugin program and its arguments (run directly, not via a shell)
    #[arg(required = true, last = true, value_name = "PLUGIN [ARGS...]")]
    pub plugin: Vec<OsString>,
}

pub fn run(args: CheckArgs) -> ExitCode {
    let command = match PluginCommand::from_argv(args.plugin) {
        Ok(command) => command,
        Err(error) => return fail(error),
    };
    let timeout = match super::run::seconds(args.timeout) {
        Ok(timeout) => timeout,
        Err(message) => return fail(message),
    };
    let runtime = match super::runtime() {
        Ok(runtime) => runtime,
        Err(message) => return fail(message),
    };
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
         a state to keep by exiting with that code; and {ENV_INFO_FD}={INFO_FD}: the plugin may say \
         there when its token expires)"
    );

    let mut options = RunOptions::default();
    options.interactive = !args.non_interactive;
    options.timeout = timeout;
    options.foreground_terminal = interrupt::lend_terminal();
    options.stderr_tail_lines = 0;
    options.stderr_sink = Some(Arc::new(|line: &str| say!("  | {line}")));

    say!("\nRun 1: empty state on stdin, AUTHPLUG_REASON=initial");
    options.reason = Some(Reason::Initial);
    let first = match run(&State::default(), &options) {
        RunOutcome::Ran(first) => first,
        RunOutcome::Interrupted(interrupted) => return interrupted.exit(),
    };
    let Some(first) = report.judge_run(first) else {
        return report.finish();
    };
    let given = first.state;

    say!(
        "\nRun 2: the {} of state from run 1 on stdin, AUTHPLUG_REASON=refresh",
        bytes(given.len())
    );
    options.reason = Some(Reason::Refresh);
    let second = match run(&given, &options) {
        RunOutcome::Ran(second) => second,
        RunOutcome::Interrupted(interrupted) => return interrupted.exit(),
    };
    let Some(second) = report.judge_run(second) else {
        return report.finish();
    };
    report.second_run_state(&first.token, &second.token, &given, &second.state);
    if !given.is_empty() {
        // Did run 2 use its state? Run once more without it and compare.
        // Never interactive: a control run must not open a browser.
        say!(
            "\nControl: run 2 again without the state (empty stdin, AUTHPLUG_REASON=initial, \
             non-interactive), to see whether the state made a difference"
        );
        options.reason = Some(Reason::Initial);
        options.interactive = false;
        let control = match run(&State::default(), &options) {
            RunOutcome::Ran(control) => control,
            RunOutcome::Interrupted(interrupted) => return interrupted.exit(),
        };
        report.control_run(control, &second);
    }
    if !second.state.is_empty() {
        // What `authplug logout` does: the last state, reason `logout`,
        // never interactive; whatever it returns is discarded. It also
        // cleans up after the check (revokes what the runs obtained).
        say!(
            "\nLogout: the state from run 2 on stdin, AUTHPLUG_REASON=logout, non-interactive \
             (a host then forgets the login, whatever the run returns)"
        );
        options.reason = Some(Reason::Logout);
        options.interactive = false;
        options.keep_state_on_failure = false;
        let logout = match run(&second.state, &options) {
            RunOutcome::Ran(logout) => logout,
            RunOutcome::Interrupted(interrupted) => return interrupted.exit(),
        };
        report.logout_run(logout);
    }
    report.finish()
}

fn bytes(count: usize) -> String {
    if count == 1 {
        "1 byte".to_owned()
    } else {
        format!("{count} bytes")
    }
}

/// The token and state of a run, kept for comparing runs 1 and 2.
struct Outcome {
    token: authplug_protocol::Token,
    state: State,
}

#[derive(Default)]
struct Report {
    /// Protocol violations.
    failures: usize,
    /// Runs that failed for a reason of the plugin's own, so that the
    /// protocol could not be checked.
    blocked: usize,
}

/// The exit code when the plugin failed for a reason of its own.
const EXIT_COULD_NOT_CHECK: u8 = 3;

/// Whether a failed run is the plugin's own failure (allowed by the
/// protocol: rule 6), as opposed to a run that broke a rule.
fn failed_on_its_own(error: &host::RunError) -> bool {
    use host::RunError;
    matches!(
        error,
        RunError::Spawn { .. }
            | RunError::Exited { .. }
            | RunError::Signaled { .. }
            | RunError::TimedOut { .. }
            | RunError::FailedWithNewState { .. }
    )
}

impl Report {
    fn pass(&mut self, what: impl AsRef<str>) {
        say!("  ok    {}", what.as_ref());
    }

    fn note(&mut self, what: impl AsRef<str>) {
        say!("  note  {}", what.as_ref());
    }

    fn fail(&mut self, what: impl AsRef<str>) {
        self.failures += 1;
        say!("  FAIL  {}", what.as_ref());
    }

    fn judge_run(&mut self, result: Result<RunOutput, host::RunError>) -> Option<Outcome> {
        let output = match result {
            Ok(output) => output,
            Err(error) => {
                if error.has_new_state() {
                    self.note(format!(
                        "the run failed with exit code {KEEP_STATE_EXIT_CODE} after writing a state, \
                         asking the host to keep it (AUTHPLUG_KEEP_STATE_EXIT, rule 4): a host \
                         stores that state and still reports the failure"
                    ));
                }
                if failed_on_its_own(&error) {
                    self.blocked += 1;
                    say!("  ERROR {error}");
                    say!(
                        "        (the plugin failed on its own: a plugin may fail (rule 6), so \
                         this is no protocol violation, but nothing more can be checked; fix \
                         what it says above and check again)"
                    );
                } else {
                    self.fail(format!("{error} (PROTOCOL.md: rules 3 and 4)"));
                }
                return None;
            }
        };
        self.pass(format!(
            "exit code 0 after {:.2}s",
            output.elapsed.as_secs_f64()
        ));
        self.pass(format!(
            "token on stdout: {}, not empty, under the {TOKEN_LIMIT}-byte limit{}",
            bytes(output.token.len()),
            if output.token.to_str().is_ok() {
                ""
            } else {
                " (not UTF-8: fine for the protocol, but most hosts expect text)"
            }
        ));
        if output
            .token
            .as_bytes()
            .iter()
            .any(|b| b.is_ascii_whitespace())
        {
            self.note(
                "the token contains whitespace or a second line; HTTP headers will not accept it",
            );
        }
        if output.state.is_empty() {
            self.pass("fd 3 not used: no state kept (a host clears what it held)");
        } else {
            self.pass(format!(
                "state on fd 3: {}, under the {STATE_LIMIT}-byte limit",
                bytes(output.state.len())
            ));
        }
        self.expiry(&output);
        Some(Outcome {
            token: output.token,
            state: output.state,
        })
    }

    /// Rule 10: whether the plugin says when its token expires, and whether
    /// what it says is sane.
    fn expiry(&mut self, output: &RunOutput) {
        use super::expiry::{source, when, Source};
        let now = std::time::SystemTime::now();
        if let Some(problem) = &output.info_problem {
            self.fail(format!("{problem} (PROTOCOL.md rule 10)"));
            return;
        }
        match (source(output), output.expires_at) {
            (Source::Reported, Some(at)) => self.pass(format!(
                "token info on fd 4: the token expires {}",
                when(at, now)
            )),
            (Source::JwtExp, Some(at)) if output.reported_expiry.is_some() => self.note(format!(
                "the plugin reported a later expiry on fd 4 than its JWT's `exp`, {}: a host goes \
                 by the earlier",
                when(at, now)
            )),
            (Source::JwtExp, Some(at)) => self.pass(format!(
                "fd 4 not used, but the token is a JWT: a host refreshes it by its `exp`, {}",
                when(at, now)
            )),
            _ => self.note(
                "fd 4 not used and the token is not a JWT: a host cannot tell when it expires \
                 and hands it out until a server refuses it; say when it expires \
                 (AUTHPLUG_INFO_FD, PROTOCOL.md rule 10)",
            ),
        }
    }

    fn second_run_state(
        &mut self,
        first_token: &authplug_protocol::Token,
        second_token: &authplug_protocol::Token,
        given: &State,
        returned: &State,
    ) {
        let mut line = String::new();
        if given.is_empty() {
            line.push_str("the plugin keeps no state, so run 2 had nothing to use");
        } else {
            let _ = write!(
                line,
                "run 2 was given {} of state and succeeded with it; it ",
                bytes(given.len())
            );
            line.push_str(if returned.is_empty() {
                "returned no state (the host will clear what it held)"
            } else if returned == given {
                "returned the same state"
            } else {
                "returned a new state"
            });
        }
        self.pass(line);
        self.note(if first_token == second_token {
            "run 2 printed the same token as run 1"
        } else {
            "run 2 printed a different token from run 1"
        });
    }

    fn control_run(&mut self, control: Result<RunOutput, host::RunError>, second: &Outcome) {
        match control {
            Err(error) => self.pass(format!(
                "run 2 used its state: without it the plugin failed ({})",
                error.to_string().lines().next().unwrap_or_default()
            )),
            Ok(control) if control.token != second.token || control.state != second.state => self
                .pass(format!(
                    "run 2 used its state: without it the plugin returned a different {}",
                    if control.token != second.token {
                        "token"
                    } else {
                        "state"
                    }
                )),
            Ok(_) => self.note(
                "without the state the plugin returned the same token and state: it seems \
                 not to use its state (fine on purpose, but then it need not write one)",
            ),
        }
    }

    fn logout_run(&mut self, logout: Result<RunOutput, host::RunError>) {
        match logout {
            Ok(output) if output.token.as_bytes().is_empty() => {
                self.pass("logout: exit code 0 and nothing printed, as PROTOCOL.md rule 1 asks")
            }
            Ok(_) => self.note(
                "on logout the plugin printed a token: it treats `logout` like `refresh`, which \
                 PROTOCOL.md allows (the host discards it), but it cleans nothing up",
            ),
            Err(error) => self.note(format!(
                "logout failed ({}): a host forgets the login anyway, but what the plugin holds \
                 at its provider stays valid",
                error.to_string().lines().next().unwrap_or_default()
            )),
        }
    }

    fn finish(self) -> ExitCode {
        if self.failures == 0 && self.blocked > 0 {
            say!(
                "\nCould not check the plugin: it failed for a reason of its own (above), which \
                 says nothing about whether it follows the protocol."
            );
            ExitCode::from(EXIT_COULD_NOT_CHECK)
        } else if self.failures == 0 {
            say!("\nThe plugin conforms to the authplug protocol.");
            ExitCode::SUCCESS
        } else {
            say!(
                "\nThe plugin does NOT conform: {} problem(s) above. See protocol/PROTOCOL.md.",
                self.failures
            );
            ExitCode::FAILURE
        }
    }
}
