//! `git-credential-authplug`: the name git runs for
//! `credential.helper = "authplug --profile NAME"` (git puts
//! `git-credential-` before the first word). A shim: it becomes
//! `authplug git-credential ARGS` (`src/cli/git_credential/`), found
//! beside it or on `PATH`, so that there is one helper, not two copies.

use std::os::unix::process::CommandExt;
use std::process::ExitCode;

fn say(message: &str) {
    use std::io::Write as _;
    let _ = writeln!(std::io::stderr(), "git-credential-authplug: {message}");
}

fn main() -> ExitCode {
    let args: Vec<_> = std::env::args_os().skip(1).collect();
    if args.len() == 1 && (args[0] == "--version" || args[0] == "-V") {
        use std::io::Write as _;
        let _ = writeln!(
            std::io::stdout(),
            "git-credential-authplug {}",
            env!("CARGO_PKG_VERSION")
        );
        return ExitCode::SUCCESS;
    }
    let program = match authplug_agent::paths::authplug_program() {
        Ok(program) => program,
        Err(error) => {
            say(&error.to_string());
            // A `get` git is not to answer by prompting: no password
            // would do. Read what git wrote first, or it may see a broken
            // pipe.
            if args.last().is_some_and(|op| op == "get") {
                let _ = std::io::copy(
                    &mut std::io::Read::take(std::io::stdin().lock(), 64 * 1024),
                    &mut std::io::sink(),
                );
                use std::io::Write as _;
                let _ =
                    // git's "do not ask anyone else" (gitcredentials(7)).
                    std::io::stdout().write_all(b"quit=1\n");
            }
            return ExitCode::FAILURE;
        }
    };
    let error = std::process::Command::new(&program)
        .arg("git-credential")
        .args(args)
        .exec();
    say(&format!("cannot run {}: {error}", program.display()));
    ExitCode::FAILURE
}
