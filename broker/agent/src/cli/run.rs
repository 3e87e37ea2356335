//! `authplug run`: run a plugin once, by hand or from a script.

use std::ffi::OsString;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use authplug_agent::secret_file::{self, SecretFileError};
use authplug_protocol::host::{PluginCommand, RunError, RunOptions, RunOutput};
use authplug_protocol::{Reason, State, STATE_LIMIT};
use zeroize::Zeroizing;

use super::fail;
use super::interrupt::{self, Interruptions, RunOutcome};
use super::shared_args::TimeoutArg;

const EXAMPLES: &str = "\
Examples:
  # print a token; the state is thrown away
  EXAMPLE_TOKEN=hello authplug run -- plugins/examples/shell/env-token.sh

  # keep the state between runs in a file (debugging only: it is a secret)
  EXAMPLE_TOKEN=hello authplug run --state-in st --state-out st -- plugins/examples/shell/env-token.sh";

/// Run a plugin once and print its token on stdout
///
/// The plugin's stderr is shown as it arrives; then, on stderr too, when
/// the token expires as a host sees it (what the plugin reported on fd 4,
/// PROTOCOL.md rule 10, or a JWT's `exp`) and any problem with what the
/// plugin reported. The exit code is 0 only if the plugin succeeded under
/// the protocol (protocol/PROTOCOL.md).
#[derive(Debug, clap::Args)]
#[command(after_help = EXAMPLES)]
pub struct RunArgs {
    #[command(flatten)]
    pub timeout: TimeoutArg,
    /// AUTHPLUG_REASON for the plugin: initial, refresh, rejected, expiring
    /// or logout [default: initial without state, refresh with]
    #[arg(long, value_name = "R")]
    pub reason: Option<String>,
    /// Pass --reason on even if it is none of the protocol's (to see that a
    /// plugin treats a newer host's reason like `refresh`, rule 1)
    #[arg(long, requires = "reason")]
    pub any_reason: bool,
    /// Tell the plugin it must not open a browser or prompt (AUTHPLUG_INTERACTIVE=0)
    #[arg(long)]
    pub non_interactive: bool,
    /// Read the previous state from FILE; a missing file is empty state (for
    /// debugging and scripts)
    #[arg(long, value_name = "FILE")]
    pub state_in: Option<PathBuf>,
    /// Write the new state to FILE, mode 0600, replaced atomically, on
    /// success, or on a failure whose plugin asked for its new state to be
    /// kept (protocol rule 4; for debugging and scripts)
    #[arg(long, value_name = "FILE")]
    pub state_out: Option<PathBuf>,
    /// The plugin program and its arguments (run directly, not via a shell)
    #[arg(required = true, last = true, value_name = "PLUGIN [ARGS...]")]
    pub plugin: Vec<OsString>,
}

/// One of the protocol's reasons, or with `any` whatever is given: a typo
/// would otherwise reach the plugin as an unknown reason, which it treats
/// like `refresh` (rule 1).
fn reason(value: &str, any: bool) -> Result<Reason, String> {
    match value.parse::<Reason>() {
        Ok(Reason::Unknown(_)) | Err(_) if !any => Err(format!(
            "`{value}` is not a reason: one of initial, refresh, rejected, expiring, logout (or pass it with --any-reason)"
        )),
        Ok(reason) => Ok(reason),
        Err(_) => Ok(Reason::Unknown(value.to_owned())),
    }
}

pub fn run(args: RunArgs) -> ExitCode {
    match run_once(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(code) => code,
    }
}

/// Errors are reported on stderr on the way out; the `Err` is the exit code.
fn run_once(args: RunArgs) -> Result<(), ExitCode> {
    let command = PluginCommand::from_argv(args.plugin).map_err(fail)?;
    let reason = (args.reason.as_deref())
        .map(|value| reason(value, args.any_reason))
        .transpose()
        .map_err(|message| {
            say_on_stderr!("authplug: {message}");
            ExitCode::from(super::exit::USAGE)
        })?;
    let timeout = args.timeout.duration().map_err(fail)?;
    let runtime = super::runtime().map_err(fail)?;
    let state = match &args.state_in {
        Some(path) => read_state(path).map_err(fail)?,
        None => State::default(),
    };
    let mut options = RunOptions::default();
    options.reason = reason;
    options.interactive = !args.non_interactive;
    options.timeout = timeout;
    let output = match at_terminal(&runtime, &command, &state, options) {
        Ok(output) => output,
        Err(Failed::Interrupted(code)) => return Err(code),
        Err(Failed::Run(mut error)) => {
            // Rule 4's exception: a failed run whose new state must not be
            // lost (a rotated refresh token).
            if let (Some(path), Some(state)) = (&args.state_out, error.take_new_state()) {
                save_state(path, &state)?;
                fail(format!(
                    "{error}\n(the new state was written to {})",
                    path.display()
                ));
            } else {
                fail(&error);
            }
            return Err(interrupt::failure_code(&error));
        }
    };

    if let Some(path) = &args.state_out {
        save_state(path, &output.state)?;
    }
    // What a host makes of the token's lifetime (PROTOCOL.md rule 10), on
    // stderr: stdout is the token alone.
    if let Some(problem) = &output.info_problem {
        say_on_stderr!("authplug: warning: {problem}");
    }
    say_on_stderr!(
        "authplug: {}",
        super::expiry::summary(&output, std::time::SystemTime::now())
    );
    let mut line = Zeroizing::new(Vec::with_capacity(output.token.len() + 1));
    line.extend_from_slice(output.token.as_bytes());
    line.push(b'\n');
    let mut stdout = io::stdout().lock();
    stdout
        .write_all(&line)
        .and_then(|()| stdout.flush())
        .map_err(|e| fail(format!("cannot write the token to stdout: {e}")))
}

/// Why [`at_terminal`] has no output.
pub(super) enum Failed {
    /// Ctrl-C or a signal stopped the run (reported already); exit so.
    Interrupted(ExitCode),
    /// The run failed (not reported yet).
    Run(RunError),
}

/// Runs a plugin once as for a user at a terminal: the terminal lent to it
/// when this process has it (rule 7), its stderr shown live, and a Ctrl-C
/// or signal stopping it before this process exits.
pub(super) fn at_terminal(
    runtime: &tokio::runtime::Runtime,
    command: &PluginCommand,
    state: &State,
    mut options: RunOptions,
) -> Result<RunOutput, Failed> {
    let mut interruptions =
        Interruptions::catch(runtime).map_err(|e| Failed::Interrupted(fail(e)))?;
    options.foreground_terminal = interrupt::lend_terminal();
    // The lines reach the terminal live, so the error need not repeat them.
    options.stderr_tail_lines = 0;
    options.stderr_sink = Some(Arc::new(|line: &str| {
        say_on_stderr!("{line}");
    }));
    match interruptions.run(runtime, command, state, &options) {
        RunOutcome::Interrupted(interrupted) => Err(Failed::Interrupted(interrupted.exit())),
        RunOutcome::Ran(Err(error)) => Err(Failed::Run(error)),
        RunOutcome::Ran(Ok(output)) => Ok(output),
    }
}

fn save_state(path: &Path, state: &State) -> Result<(), ExitCode> {
    write_private_atomically(path, state.as_bytes()).map_err(|e| {
        fail(format!(
            "cannot write the new state to {}: {e}",
            path.display()
        ))
    })
}

/// A missing file is empty state (first run); anything over the protocol's
/// limit is refused before a plugin sees it. Read by [`secret_file::read`],
/// so no unwiped copy is left behind.
fn read_state(path: &Path) -> Result<State, String> {
    let mut file = match File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(State::default()),
        Err(e) => {
            return Err(format!(
                "cannot read the state from {}: {e}",
                path.display()
            ))
        }
    };
    match secret_file::read(&mut file, STATE_LIMIT) {
        Ok(bytes) => Ok(State::new(bytes.to_vec())),
        Err(SecretFileError::TooLarge { .. }) => Err(format!(
            "{} is larger than the protocol's state limit of {STATE_LIMIT} bytes",
            path.display()
        )),
        Err(error) => Err(format!(
            "cannot read the state from {}: {error}",
            path.display()
        )),
    }
}

/// Writes a sibling temporary file created with mode 0600, syncs it and
/// renames it over `path`, so a reader sees the old state or the new one,
/// never a mix, and nobody else ever can read it.
pub(super) fn write_private_atomically(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::other("the path names no file"))?;
    let mut temp_name = OsString::from(".");
    temp_name.push(name);
    temp_name.push(format!(".{}.tmp", std::process::id()));
    let temp = dir.join(temp_name);
    let result = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&temp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        fs::rename(&temp, path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&temp);
    }
    result
}
