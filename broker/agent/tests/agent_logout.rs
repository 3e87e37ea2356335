//! `authplug logout` and `authplug reject --current` against a real agent:
//! the plugin's `logout` run and its words on the user's terminal, the
//! login forgotten, every profile with `--all`, a refused token healed
//! without having it at hand.

mod support;
use support::*;

fn cli(socket: &std::path::Path, args: &[&str]) -> std::process::Output {
    authplug()
        .args(args)
        .arg("--socket")
        .arg(socket)
        .output()
        .expect("authplug runs")
}

fn stderr(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// COUNTING, saying what it revokes on logout (and failing to, for the
/// profile named `flaky`).
const REVOKING: &str = r#"if [ "$AUTHPLUG_REASON" = logout ]; then
  held=$(cat)
  [ "$(basename "$0")" = flaky ] && { echo "provider unreachable" >&2; exit 1; }
  echo "revoked login $held" >&2
  exit 0
fi
"#;

#[test]
fn logout_runs_the_plugin_then_forgets_the_login() {
    let scratch = Scratch::new();
    let plugin = scratch.plugin("main", &format!("{REVOKING}{COUNTING}"));
    let agent = Agent::start(&scratch.socket(), &[("main", &plugin)]);
    assert_eq!(stdout(&token_cli(&agent.socket, &[])), "tok-1\n");

    let out = cli(&agent.socket, &["logout", "--profile", "main"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        stderr(&out),
        "revoked login 1\nauthplug: main: logged out\n",
        "the plugin's words, then the verdict"
    );
    assert!(out.stdout.is_empty());
    // From nothing again: a first run, state empty.
    assert_eq!(stdout(&token_cli(&agent.socket, &[])), "tok-1\n");
    assert_eq!(scratch.runs("main"), ["initial", "logout", "initial"]);

    let again = cli(&agent.socket, &["logout"]);
    assert!(again.status.success());
    assert_eq!(
        stderr(&again),
        "revoked login 1\nauthplug: the default profile: logged out\n"
    );
    let nothing = cli(&agent.socket, &["logout"]);
    assert_eq!(
        stderr(&nothing),
        "authplug: the default profile: not logged in\n"
    );
    assert_eq!(scratch.runs("main").len(), 4, "no run with nothing held");
}

#[test]
fn logout_all_logs_out_every_profile_and_reports_a_failed_cleanup() {
    let scratch = Scratch::new();
    let body = format!("{REVOKING}{COUNTING}");
    let work = scratch.plugin("work", &body);
    let flaky = scratch.plugin("flaky", &body);
    let agent = Agent::start(&scratch.socket(), &[("work", &work), ("flaky", &flaky)]);
    for profile in ["work", "flaky"] {
        assert_eq!(
            stdout(&token_cli(&agent.socket, &["--profile", profile])),
            "tok-1\n"
        );
    }
    let out = cli(&agent.socket, &["logout", "--all"]);
    let said = stderr(&out);
    assert!(out.status.success(), "{said}");
    assert!(
        said.contains("revoked login 1\nauthplug: work: logged out\n"),
        "{said}"
    );
    assert!(
        said.contains("authplug: flaky: logged out here, but the plugin could not clean up at the provider (plugin failed with exit code 1); what it held there stays valid until it expires"),
        "{said}"
    );
    // Both forgotten, the flaky one too.
    for profile in ["work", "flaky"] {
        assert_eq!(
            stdout(&token_cli(&agent.socket, &["--profile", profile])),
            "tok-1\n"
        );
        assert_eq!(scratch.runs(profile), ["initial", "logout", "initial"]);
    }
    let refused = cli(&agent.socket, &["logout", "--all", "--profile", "work"]);
    assert!(!refused.status.success());
    assert!(
        stderr(&refused).contains("cannot be used with"),
        "{}",
        stderr(&refused)
    );
}

#[test]
fn reject_current_heals_a_refused_token_without_having_it() {
    let scratch = Scratch::new();
    let plugin = scratch.plugin("main", COUNTING);
    let agent = Agent::start(&scratch.socket(), &[("main", &plugin)]);
    assert_eq!(stdout(&token_cli(&agent.socket, &[])), "tok-1\n");
    let out = cli(&agent.socket, &["reject", "--current", "--profile", "main"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&token_cli(&agent.socket, &[])), "tok-2\n");
    assert_eq!(scratch.runs("main"), ["initial", "rejected"]);
    // Nothing to clear is no failure; an unknown profile is.
    let out = cli(&agent.socket, &["reject", "--current"]);
    assert!(out.status.success());
    let out = cli(&agent.socket, &["reject", "--current", "--profile", "nope"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("nope"), "{}", stderr(&out));
}
