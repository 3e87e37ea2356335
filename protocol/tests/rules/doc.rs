//! PROTOCOL.md and the code agree: its sh plugin works under the host, and
//! its table of defaults is what `RunOptions::default()` says.

use std::os::unix::fs::PermissionsExt;

use authplug_protocol::host::{run, PluginCommand, RunOptions};
use authplug_protocol::{State, STATE_LIMIT, TOKEN_LIMIT};

use crate::support::{quick, Scratch};

fn protocol_md() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/PROTOCOL.md")).unwrap()
}

fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[tokio::test]
async fn the_minimal_sh_plugin_in_the_document_works() {
    let doc = protocol_md();
    let section = doc.find("## A minimal plugin in sh").expect("the section");
    let start = section + doc[section..].find("```sh\n").expect("an sh block") + "```sh\n".len();
    let script = &doc[start..start + doc[start..].find("```").unwrap()];
    let scratch = Scratch::new();
    let path = scratch.path("plugin.sh");
    std::fs::write(&path, script).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();

    let mut options = quick();
    options.env.push(("MY_TOKEN".into(), "abc".into()));
    let command = PluginCommand::new(&path);
    let first = run(&command, &State::default(), &options).await.unwrap();
    assert_eq!(
        (first.token.as_bytes(), first.state.as_bytes()),
        (&b"abc"[..], &b"1"[..])
    );
    let second = run(&command, &first.state, &options).await.unwrap();
    assert_eq!(second.state.as_bytes(), b"2");

    let error = run(&command, &second.state, &quick()).await.unwrap_err();
    assert!(error.to_string().contains("set MY_TOKEN"), "{error}");
}

#[test]
fn the_table_of_defaults_matches_the_code() {
    let doc = protocol_md();
    let defaults = RunOptions::default();
    for row in [
        format!(
            "| timeout for the whole run | {} s |",
            defaults.timeout.as_secs()
        ),
        format!(
            "| grace between SIGTERM and SIGKILL | {} s |",
            defaults.kill_grace.as_secs()
        ),
        format!(
            "| drain window after the plugin exits | {} s |",
            defaults.drain_window.as_secs()
        ),
        format!(
            "| stderr lines kept for the error | {} |",
            defaults.stderr_tail_lines
        ),
        format!("| state limit (fixed) | {} bytes |", thousands(STATE_LIMIT)),
        format!("| token limit (fixed) | {} bytes |", thousands(TOKEN_LIMIT)),
    ] {
        assert!(doc.contains(&row), "PROTOCOL.md lacks the row {row:?}");
    }
    assert!(defaults.interactive && defaults.reason.is_none());
    assert!(doc.contains("| interactive | yes (`AUTHPLUG_INTERACTIVE=1`) |"));
    assert!(defaults.keep_state_on_failure);
    assert!(doc.contains(&format!(
        "| keep the state of a failed run that asks (`AUTHPLUG_KEEP_STATE_EXIT={}`) | yes |",
        authplug_protocol::KEEP_STATE_EXIT_CODE
    )));
    assert!(defaults.offer_info);
    assert!(doc.contains(&format!(
        "| offer the info channel (`{}={}`) | yes | `offer_info` |",
        authplug_protocol::ENV_INFO_FD,
        authplug_protocol::INFO_FD
    )));
    assert!(doc.contains(&format!(
        "| info limit (fixed) | {} bytes | `INFO_LIMIT` |",
        thousands(authplug_protocol::INFO_LIMIT)
    )));
    assert!(defaults.offer_login_needed);
    assert!(doc.contains(&format!(
        "| tell a needed login by its exit code (`{}={}`) | yes | `offer_login_needed` |",
        authplug_protocol::ENV_LOGIN_NEEDED_EXIT,
        authplug_protocol::LOGIN_NEEDED_EXIT_CODE
    )));
    assert!(!defaults.foreground_terminal);
    assert!(doc.contains("| lend the terminal to the plugin's group | no |"));
    assert!(defaults.session_terminal.is_none());
    assert!(doc.contains("| a session of its own with a given terminal (Linux with glibc) | no |"));
}

#[tokio::test]
async fn rule_10s_sh_snippet_reports_the_expiry() {
    let doc = protocol_md();
    let section = doc.find("### 10. Info").expect("rule 10");
    let start = section + doc[section..].find("```sh\n").expect("an sh block") + "```sh\n".len();
    let snippet = &doc[start..start + doc[start..].find("```").unwrap()];
    let script = format!("expires_in=600\n{snippet}\necho tok\n");
    let before = std::time::SystemTime::now();
    let output = run(&crate::support::sh(&script), &State::default(), &quick())
        .await
        .unwrap();
    let expires_at = output.expires_at.expect("the snippet's expiry");
    let lifetime = expires_at.duration_since(before).unwrap_or_default();
    assert!(
        (598..=601).contains(&lifetime.as_secs()),
        "{lifetime:?}: {snippet}"
    );
    assert_eq!(output.info_problem, None);
}
