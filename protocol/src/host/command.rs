//! A plugin's argv (rule 1): never run through a shell; a configured
//! command line is split by shell-word rules.

use std::ffi::{OsStr, OsString};
use std::fmt;

/// A plugin's argv: the program and its arguments. Never run through a shell
/// (rule 1).
#[derive(Clone, PartialEq, Eq)]
pub struct PluginCommand {
    pub(super) program: OsString,
    pub(super) args: Vec<OsString>,
}

/// A configured command line that cannot become an argv.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CommandLineError {
    #[error("the plugin command line is empty: give the plugin program and its arguments")]
    /// No words at all.
    Empty,
    #[error("the plugin command line cannot be split into words ({0}): check its quotes")]
    /// Unbalanced quotes or a trailing backslash.
    Syntax(#[from] shell_words::ParseError),
}

impl PluginCommand {
    /// The program (looked up on `PATH` without a `/`), without arguments.
    pub fn new(program: impl Into<OsString>) -> Self {
        PluginCommand {
            program: program.into(),
            args: Vec::new(),
        }
    }

    /// One more argument.
    pub fn arg(mut self, arg: impl Into<OsString>) -> Self {
        self.args.push(arg.into());
        self
    }

    /// More arguments.
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// An argv whose first element is the program.
    pub fn from_argv<I, S>(argv: I) -> Result<Self, CommandLineError>
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        let mut argv = argv.into_iter().map(Into::into);
        let program = argv.next().ok_or(CommandLineError::Empty)?;
        if program.is_empty() {
            return Err(CommandLineError::Empty);
        }
        Ok(PluginCommand {
            program,
            args: argv.collect(),
        })
    }

    /// Splits a configured command line by POSIX shell-word rules (quotes
    /// and backslashes, no expansion of any kind).
    pub fn parse(command_line: &str) -> Result<Self, CommandLineError> {
        Self::from_argv(shell_words::split(command_line)?)
    }

    /// The program.
    pub fn program(&self) -> &OsStr {
        &self.program
    }

    /// The arguments, without the program.
    pub fn arguments(&self) -> &[OsString] {
        &self.args
    }
}

impl fmt::Display for PluginCommand {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let words: Vec<String> = std::iter::once(&self.program)
            .chain(&self.args)
            .map(|word| word.to_string_lossy().into_owned())
            .collect();
        f.write_str(&shell_words::join(words))
    }
}

/// The program and how many arguments: an argument may be a secret (a
/// `--client-secret`, say), and Debug output ends up in logs. `Display`
/// shows the whole command line, for a person who typed it.
impl fmt::Debug for PluginCommand {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PluginCommand")
            .field("program", &self.program)
            .field(
                "arguments",
                &format_args!("{} (not shown)", self.args.len()),
            )
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_shows_the_program_but_no_argument() {
        let command = PluginCommand::parse("plugin --client-secret s3cr3t").unwrap();
        let shown = format!("{command:?}");
        assert!(
            shown.contains("plugin") && shown.contains("2 (not shown)"),
            "{shown}"
        );
        assert!(!shown.contains("s3cr3t"), "{shown}");
    }
}
