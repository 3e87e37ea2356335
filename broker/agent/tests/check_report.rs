//! `authplug check`'s report, pinned whole (insta snapshots in
//! `tests/snapshots/`): what a plugin author reads, word for word, for a
//! conforming plugin and for ones that break rule 1 (an unknown reason, a
//! refused token handed back, a browser opened or a prompt on logout). Only what
//! changes from run to run (times, paths) is masked.

mod support;

use support::{authplug, Scratch};

/// The report and the exit code of `authplug check` on `plugin`.
fn check(plugin: &std::path::Path, env: &[(&str, &str)]) -> (String, Option<i32>) {
    check_with(&[], plugin, env)
}

/// [`check`] with `flags` before the plugin.
fn check_with(
    flags: &[&str],
    plugin: &std::path::Path,
    env: &[(&str, &str)],
) -> (String, Option<i32>) {
    let output = authplug()
        .arg("check")
        .args(flags)
        .arg("--")
        .arg(plugin)
        .envs(env.iter().copied())
        .output()
        .expect("authplug check runs");
    let report = String::from_utf8(output.stdout).expect("UTF-8");
    (
        mask_times(&report).replace(&plugin.display().to_string(), "[PLUGIN]"),
        output.status.code(),
    )
}

fn settings() -> insta::Settings {
    let mut settings = insta::Settings::clone_current();
    settings.set_prepend_module_to_snapshot(false);
    settings
}

/// Every "after 0.03s" (a run's duration) as "after [TIME]s". By hand
/// rather than with insta's regex filters: their features would reach the
/// `authplug` that `cargo bench` builds, and make it larger than the one
/// users build.
fn mask_times(report: &str) -> String {
    let mut masked = String::with_capacity(report.len());
    let mut rest = report;
    while let Some(at) = rest.find("after ") {
        let (before, from) = rest.split_at(at + "after ".len());
        masked.push_str(before);
        let digits = from.find(|c: char| !(c.is_ascii_digit() || c == '.'));
        match digits {
            Some(end) if end > 0 && from[end..].starts_with('s') && from[..end].contains('.') => {
                masked.push_str("[TIME]");
                rest = &from[end..];
            }
            _ => rest = from,
        }
    }
    masked.push_str(rest);
    masked
}

#[test]
fn a_conforming_plugin() {
    let plugin = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../plugins/examples/shell/env-token.sh");
    let (report, code) = check(&plugin, &[("EXAMPLE_TOKEN", "hello")]);
    assert_eq!(code, Some(0), "{report}");
    settings().bind(|| insta::assert_snapshot!("conforming", report));
}

/// Fails on a reason it does not know, and opens a browser on logout.
const UNKNOWN_REASON_AND_BROWSER: &str = r#"case "$AUTHPLUG_REASON" in
  initial|refresh|rejected|logout) ;;
  *) echo "unknown reason $AUTHPLUG_REASON" >&2; exit 1 ;;
esac
if [ "$AUTHPLUG_REASON" = logout ]; then xdg-open https://id.example/logout; exit 0; fi
n=$(cat); n=$((${n:-0}+1)); printf %s "$n" >&3; echo "tok-$n"
"#;

/// Mints a new token each run, but hands back the last one after `rejected`.
const REFUSED_TOKEN_AGAIN: &str = r#"n=$(cat); n=${n:-0}
if [ "$AUTHPLUG_REASON" != rejected ]; then n=$((n+1)); fi
printf %s "$n" >&3; echo "tok-$n"
"#;

/// Asks on its terminal before it revokes, on logout: a host's logout is
/// never interactive (it may run with no one there).
const PROMPTS_ON_LOGOUT: &str = r#"if [ "$AUTHPLUG_REASON" = logout ]; then
  printf 'Revoke the refresh token? [y/N] ' > /dev/tty
  read -r answer < /dev/tty || echo "no answer" >&2
  exit 0
fi
n=$(cat); n=$((${n:-0}+1)); printf %s "$n" >&3; echo "tok-$n"
"#;

#[test]
fn plugins_that_break_rule_1() {
    let scratch = Scratch::new();
    for (name, body) in [
        ("unknown-reason-and-browser", UNKNOWN_REASON_AND_BROWSER),
        ("refused-token-again", REFUSED_TOKEN_AGAIN),
        ("prompts-on-logout", PROMPTS_ON_LOGOUT),
    ] {
        let plugin = scratch.plugin(name, body);
        let (report, code) = check(&plugin, &[]);
        assert_eq!(code, Some(1), "{report}");
        settings().bind(|| insta::assert_snapshot!(name, report));
    }
}

/// A plugin that needs a login it may not start fails on its own (rule 6):
/// nothing could be checked, and no rule was broken.
#[test]
fn a_login_needed_is_the_plugins_own_failure() {
    let scratch = Scratch::new();
    let plugin = scratch.plugin(
        "needs-login",
        r#"echo "a login is needed: run it in a terminal" >&2; exit "${AUTHPLUG_LOGIN_NEEDED_EXIT:-1}""#,
    );
    let (report, code) = check_with(&["--non-interactive"], &plugin, &[]);
    assert_eq!(code, Some(3), "{report}");
    assert!(report.contains("ERROR a login is needed"), "{report}");
    assert!(!report.contains("FAIL"), "{report}");
}

/// Under `--non-interactive` every run finds the traps: a plugin that
/// opens a browser, or prompts on its terminal (and finds the end of input
/// rather than waiting for an answer), in its first run fails the check.
#[test]
fn a_quiet_check_catches_a_browser_or_a_prompt_in_any_run() {
    let scratch = Scratch::new();
    for (name, body, caught) in [
        (
            "opens-anyway",
            "xdg-open https://id.example/login >/dev/null 2>&1\necho tok",
            "FAIL  run 1 opened a browser (https://id.example/login)",
        ),
        (
            "asks-anyway",
            "printf 'Password: ' > /dev/tty\nread -r password < /dev/tty || exit 1\necho \"tok-$password\"",
            "FAIL  run 1 wrote to its terminal (\"Password: \")",
        ),
    ] {
        let plugin = scratch.plugin(name, body);
        let (report, code) = check_with(&["--non-interactive"], &plugin, &[]);
        assert_eq!(code, Some(1), "{name}: {report}");
        assert!(report.contains(caught), "{name}: {report}");
    }
}
