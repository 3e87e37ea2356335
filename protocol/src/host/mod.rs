//! The host side: run a plugin once and get its token and new state.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use authplug_protocol::host::{run, PluginCommand, RunOptions};
//! use authplug_protocol::State;
//!
//! let command = PluginCommand::parse("authplug-oidc --issuer https://id.example.com --client-id cli")?;
//! let output = run(&command, &State::default(), &RunOptions::default()).await?;
//! let next_state = output.state; // hand this back on the next run
//! # let _ = (output.token, next_state);
//! # Ok(()) }
//! ```

mod command;
mod error;
mod exchange;
mod info;
mod options;
mod run;
mod stderr;

pub use command::{CommandLineError, PluginCommand};
pub use error::{RunError, RunOutput};
pub use options::{RunOptions, StderrSink};
pub use run::{run, run_until};
