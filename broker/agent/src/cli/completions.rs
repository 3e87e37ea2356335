//! `authplug completions SHELL` and `authplug man DIR`: shell completions
//! and manual pages, generated from the same clap definitions that parse
//! the command line, so they cannot drift from it.

use std::path::PathBuf;
use std::process::ExitCode;

use super::fail;

/// Print shell completions for authplug (scripts/install puts them where
/// each shell looks)
///
/// Examples: `authplug completions bash > ~/.local/share/bash-completion/completions/authplug`,
/// `authplug completions zsh > ~/.zfunc/_authplug`,
/// `authplug completions fish > ~/.config/fish/completions/authplug.fish`.
#[derive(Debug, clap::Args)]
pub struct CompletionsArgs {
    /// The shell
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

/// Write authplug's manual pages (authplug.1, authplug-token.1, ...) into a
/// directory
#[derive(Debug, clap::Args)]
pub struct ManArgs {
    /// Where to write them (created if missing), e.g. ~/.local/share/man/man1
    pub dir: PathBuf,
}

/// `command`: the whole command line's definition, from `main`.
pub fn completions(args: CompletionsArgs, mut command: clap::Command) -> ExitCode {
    let name = command.get_name().to_owned();
    let mut out = Vec::new();
    clap_complete::generate(args.shell, &mut command, name, &mut out);
    use std::io::Write as _;
    match std::io::stdout().lock().write_all(&out) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => fail(format!("cannot write the completions: {error}")),
    }
}

pub fn man(args: ManArgs, command: clap::Command) -> ExitCode {
    if let Err(error) = std::fs::create_dir_all(&args.dir) {
        return fail(format!("cannot create {}: {error}", args.dir.display()));
    }
    match clap_mangen::generate_to(command, &args.dir) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => fail(format!(
            "cannot write the manual pages into {}: {error}",
            args.dir.display()
        )),
    }
}
