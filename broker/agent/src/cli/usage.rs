//! Hints added to clap's usage errors, for the mistakes people make.

/// Subcommands whose trailing command must come after `--`.
const AFTER_DASHES: [(&str, &str); 3] = [
    ("run", "the plugin's command"),
    ("check", "the plugin's command"),
    ("exec", "the command"),
];

/// For `authplug run PLUGIN` (no `--`), the corrected command line.
/// `args`: the process's arguments, the program's name first.
pub fn hint(error: &clap::Error, args: &[String]) -> Option<String> {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    if error.kind() != ErrorKind::UnknownArgument {
        return None;
    }
    let Some(ContextValue::String(unexpected)) = error.get(ContextKind::InvalidArg) else {
        return None;
    };
    if unexpected.starts_with('-') {
        return None;
    }
    let subcommand = args.iter().skip(1).find(|a| !a.starts_with('-'))?;
    let (_, what) = AFTER_DASHES.iter().find(|(name, _)| name == subcommand)?;
    let at = args.iter().rposition(|a| a == unexpected)?;
    let mut fixed: Vec<&str> = args[..at].iter().map(String::as_str).collect();
    fixed[0] = "authplug";
    fixed.push("--");
    fixed.extend(args[at..].iter().map(String::as_str));
    Some(format!(
        "{what} goes after `--`, so that its own options are not taken for authplug's: {}",
        shell_words::join(fixed)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{Parser, Subcommand};

    #[derive(Parser)]
    struct Cli {
        #[command(subcommand)]
        command: Command,
    }

    #[derive(Subcommand)]
    enum Command {
        Run {
            #[arg(long)]
            timeout: Option<u32>,
            #[arg(last = true, required = true)]
            plugin: Vec<String>,
        },
        Status,
    }

    fn hint_for(line: &str) -> Option<String> {
        let args: Vec<String> = line.split(' ').map(str::to_owned).collect();
        let error = Cli::try_parse_from(&args).err()?;
        hint(&error, &args)
    }

    #[test]
    fn a_plugin_without_dashes_gets_the_corrected_line() {
        assert_eq!(
            hint_for("/usr/bin/authplug run --timeout 3 ./plugin.sh --flag x").as_deref(),
            Some("the plugin's command goes after `--`, so that its own options are not taken for authplug's: authplug run --timeout 3 -- ./plugin.sh --flag x")
        );
        assert_eq!(hint_for("authplug run --nope -- p"), None);
        assert_eq!(hint_for("authplug status extra"), None);
    }
}
