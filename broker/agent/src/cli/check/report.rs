//! What `authplug check` concludes from each run, and how it says it.

use std::fmt::Write as _;
use std::process::ExitCode;

use authplug_protocol::host::{self, RunOutput};
use authplug_protocol::{State, KEEP_STATE_EXIT_CODE, STATE_LIMIT, TOKEN_LIMIT};

use super::browser_trap::BrowserTrap;
use super::bytes;
use super::terminal_trap::TerminalTrap;

/// The token and state of a run, kept for comparing runs.
#[derive(Clone)]
pub struct Outcome {
    pub token: authplug_protocol::Token,
    pub state: State,
}

#[derive(Default)]
pub struct Report {
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
            | RunError::LoginNeeded { .. }
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

    pub fn judge_run(&mut self, result: Result<RunOutput, host::RunError>) -> Option<Outcome> {
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
        use crate::cli::expiry::{source, when, Source};
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

    pub fn second_run_state(
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

    pub fn control_run(&mut self, control: Result<RunOutput, host::RunError>, second: &Outcome) {
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

    pub fn logout_run(&mut self, logout: Result<RunOutput, host::RunError>) {
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

    /// A run that may not interact opened a browser: a rule 1 violation.
    pub fn browser(&mut self, trap: &BrowserTrap, run: &str) {
        if let Some(opened) = trap.opened() {
            self.fail(format!(
                "{run} opened a browser ({}) although AUTHPLUG_INTERACTIVE=0: a run that may not \
                 interact must fail instead, saying what to do (PROTOCOL.md rule 1)",
                if opened.is_empty() {
                    "no address"
                } else {
                    opened.lines().next().unwrap_or_default()
                }
            ));
        }
    }

    /// A run that may not interact wrote to its terminal (a prompt): a
    /// rule 1 violation.
    pub fn terminal(&mut self, trap: &mut TerminalTrap, run: &str) {
        if let Some(written) = trap.written() {
            let shown: String = (written.chars())
                .filter(|c| !c.is_control())
                .take(60)
                .collect();
            let shown = if shown.is_empty() {
                format!("{}, control characters only", bytes(written.len()))
            } else {
                format!("{shown:?}")
            };
            self.fail(format!(
                "{run} wrote to its terminal ({shown}) although AUTHPLUG_INTERACTIVE=0: a run that \
                 may not interact must not prompt, but fail instead, saying what to do (PROTOCOL.md \
                 rule 1)"
            ));
        }
    }

    /// Rule 1: an unknown reason is `refresh`; the same input succeeded as
    /// run 2, so it must succeed now. What the next run starts from.
    pub fn unknown_reason_run(
        &mut self,
        result: Result<RunOutput, host::RunError>,
        second: Outcome,
    ) -> Outcome {
        match result {
            Ok(output) => {
                self.pass("an unknown reason was taken like refresh: exit code 0 and a token");
                Outcome {
                    token: output.token,
                    // A plugin that rotates its state goes on with the new one.
                    state: if output.state.is_empty() {
                        second.state
                    } else {
                        output.state
                    },
                }
            }
            Err(error) => {
                self.fail(format!(
                    "with an unknown AUTHPLUG_REASON the plugin failed ({}), where with `refresh` \
                     and the same state it succeeded: a plugin MUST treat a reason it does not \
                     know like `refresh` (PROTOCOL.md rule 1)",
                    error.to_string().lines().next().unwrap_or_default()
                ));
                second
            }
        }
    }

    /// Rule 1: after `rejected`, not the refused token. `mints`: the plugin
    /// gave different tokens in runs 1 and 2, so it can give a new one.
    pub fn rejected_run(
        &mut self,
        result: Result<RunOutput, host::RunError>,
        latest: &mut Outcome,
        mints: bool,
    ) {
        match result {
            Ok(output) if output.token == latest.token && mints => self.fail(
                "after `rejected` the plugin handed out the very token the server refused, \
                 though it can get new ones (it did in runs 1 and 2): get a fresh one \
                 (PROTOCOL.md rule 1)",
            ),
            Ok(output) if output.token == latest.token => self.note(
                "after `rejected` the plugin handed out the same token again: it seems to have \
                 only the one, so a host can only report that retrying cannot help",
            ),
            Ok(output) => {
                self.pass("after `rejected` the plugin handed out a new token");
                latest.token = output.token;
                if !output.state.is_empty() {
                    latest.state = output.state;
                }
            }
            Err(host::RunError::LoginNeeded { .. }) => self.pass(
                "after `rejected` the plugin said a login is needed, by the exit code the host \
                 offered (PROTOCOL.md rule 6)",
            ),
            Err(error) => self.note(format!(
                "after `rejected` the plugin failed ({}): a plugin may, when only a login would \
                 get a new token",
                error.to_string().lines().next().unwrap_or_default()
            )),
        }
    }

    pub fn finish(self) -> ExitCode {
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
