//! Every `authplug-exchange` command line the documents show is one the
//! plugin accepts: README.md, docs/agent.md, plugins/exchange/README.md,
//! and the agent's config module.

use authplug_exchange::config::Config;
use clap::Parser;

fn documents() -> Vec<(&'static str, String)> {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");
    [
        "README.md",
        "docs/agent.md",
        "plugins/exchange/README.md",
        "broker/agent/src/config/mod.rs",
    ]
    .into_iter()
    .map(|name| {
        let text = std::fs::read_to_string(format!("{root}/{name}")).expect("the document");
        // Of a source file, its module documentation only.
        let text = if name.ends_with(".rs") {
            (text.lines())
                .filter(|line| line.starts_with("//!"))
                .collect::<Vec<_>>()
                .join("\n")
        } else {
            text
        };
        (name, text)
    })
    .collect()
}

/// The command lines in `command = "authplug-exchange ..."` lines and in
/// `authplug-exchange ...` shell lines (joined at trailing backslashes).
fn command_lines(text: &str) -> Vec<String> {
    let joined = text.replace("\\\n", " ");
    joined
        .lines()
        .filter_map(|line| {
            let at = line.find("authplug-exchange --")?;
            let rest = &line[at..];
            Some(rest.split('"').next().unwrap_or(rest).to_owned())
        })
        .collect()
}

#[test]
fn every_documented_command_line_is_accepted() {
    let mut seen = 0;
    for (name, text) in documents() {
        for line in command_lines(&text) {
            let mut words = shell_words::split(&line).expect("shell words");
            // The agent passes the subject (AUTHPLUG_SUBJECT_PROFILE).
            if !line.contains("--subject-") {
                words.extend(["--subject-profile".to_owned(), "work".to_owned()]);
            }
            let config =
                Config::try_parse_from(&words).unwrap_or_else(|e| panic!("{name}: `{line}`: {e}"));
            if let Err(error) = config.validate() {
                panic!("{name}: `{line}`: {error}");
            }
            seen += 1;
        }
    }
    assert!(seen >= 5, "found only {seen} command lines");
}
