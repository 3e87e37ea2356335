//! Ctrl-C (and SIGTERM, SIGHUP) during `authplug run` and `authplug check`.
//!
//! The plugin runs in its own process group (rule 7), so the terminal's
//! SIGINT reaches authplug but not the plugin. Dying at once would leave the
//! plugin running, orphaned; instead authplug stops it (TERM, grace, KILL,
//! reaped) and only then exits, with the code a shell expects (128 + the
//! signal's number).

use std::process::ExitCode;

use authplug_protocol::host::{self, PluginCommand, RunError, RunOptions, RunOutput};
use authplug_protocol::State;
use tokio::runtime::Runtime;
use tokio::signal::unix::{signal, Signal, SignalKind};

/// The signals that end a run early: (kind, name, number).
const CAUGHT: [(SignalKind, &str, i32); 3] = [
    (SignalKind::interrupt(), "SIGINT", libc::SIGINT),
    (SignalKind::terminate(), "SIGTERM", libc::SIGTERM),
    (SignalKind::hangup(), "SIGHUP", libc::SIGHUP),
];

/// A signal that ended the run; the plugin is gone by then.
#[derive(Debug, Clone, Copy)]
pub struct Interrupted {
    name: &'static str,
    number: i32,
}

impl Interrupted {
    /// Says so on stderr and gives the exit code for it (130 for SIGINT).
    pub fn exit(self) -> ExitCode {
        say_on_stderr!(
            "authplug: interrupted by {}; the plugin was stopped",
            self.name
        );
        ExitCode::from(128 + self.number as u8)
    }
}

/// The caught signals, from creation on: a signal that arrives between two
/// runs, or before the first, stops the next one at once.
pub struct Interruptions {
    streams: Vec<(Signal, &'static str, i32)>,
}

impl Interruptions {
    pub fn catch(runtime: &Runtime) -> Result<Interruptions, String> {
        let _entered = runtime.enter();
        let streams = CAUGHT
            .iter()
            .map(|&(kind, name, number)| Ok((signal(kind)?, name, number)))
            .collect::<std::io::Result<_>>()
            .map_err(|error| format!("cannot catch signals: {error}"))?;
        Ok(Interruptions { streams })
    }

    async fn next(&mut self) -> Interrupted {
        std::future::poll_fn(|cx| {
            for (stream, name, number) in &mut self.streams {
                if stream.poll_recv(cx).is_ready() {
                    return std::task::Poll::Ready(Interrupted {
                        name,
                        number: *number,
                    });
                }
            }
            std::task::Poll::Pending
        })
        .await
    }

    /// Runs the plugin once, or stops it if a signal comes first.
    pub fn run(
        &mut self,
        runtime: &Runtime,
        command: &PluginCommand,
        state: &State,
        options: &RunOptions,
    ) -> RunOutcome {
        let mut caught = None;
        let result = runtime.block_on(host::run_until(command, state, options, async {
            caught = Some(self.next().await);
        }));
        match caught {
            Some(interrupted) => RunOutcome::Interrupted(interrupted),
            None => RunOutcome::Ran(result),
        }
    }
}

/// How [`Interruptions::run`] ended: the run's own outcome, or a signal
/// that stopped it (the plugin is gone by then).
pub enum RunOutcome {
    Ran(Result<RunOutput, RunError>),
    Interrupted(Interrupted),
}

/// Whether the plugin gets the terminal for its run
/// (`RunOptions::foreground_terminal`): when authplug's stdin is the
/// terminal. The host lends it only if authplug is in the terminal's
/// foreground group, so a background `authplug run &` takes nothing.
pub fn lend_terminal() -> bool {
    std::io::IsTerminal::is_terminal(&std::io::stdin())
}

/// The exit code for a failed run: 130 if the plugin died of the SIGINT
/// that the user's Ctrl-C sent it on a lent terminal, as a shell would say.
pub fn failure_code(error: &RunError) -> ExitCode {
    match error {
        RunError::Signaled { signal, .. } if *signal == libc::SIGINT => ExitCode::from(130),
        _ => ExitCode::FAILURE,
    }
}
