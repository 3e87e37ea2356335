//! Rule 10: the info channel. A host offers fd 4 in `AUTHPLUG_INFO_FD`; a
//! plugin may say there when its token expires; what it says cannot make a
//! JWT live longer, cannot fail the run, and cannot hold the host up.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use authplug_protocol::expiry::{InfoProblem, INFO_LIMIT};
use authplug_protocol::host::run;
use authplug_protocol::{State, ENV_INFO_FD};

use crate::support::{quick, run_sh, sdk_probe, sh};

fn now_seconds() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn at(seconds: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(seconds)
}

/// A JWT (unsigned: the host never checks signatures) with this `exp`.
fn jwt_with_exp(exp: u64) -> String {
    use base64::Engine;
    let engine = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    format!(
        "{}.{}.c2ln",
        engine.encode(r#"{"alg":"none"}"#),
        engine.encode(format!(r#"{{"sub":"me","exp":{exp}}}"#))
    )
}

#[tokio::test]
async fn a_plugin_reports_its_opaque_tokens_expiry_on_the_descriptor_the_host_names() {
    let exp = now_seconds() + 600;
    let script = format!(
        r#"[ "${ENV_INFO_FD}" = 4 ] || exit 9
printf '{{"expires_at":{exp},"token_type":"Bearer"}}' >&"${ENV_INFO_FD}"
echo opaque"#
    );
    let output = run_sh(&script, &State::default()).await.unwrap();
    assert_eq!(output.token.as_bytes(), b"opaque");
    assert_eq!(output.expires_at, Some(at(exp)));
    assert_eq!(output.reported_expiry, Some(at(exp)));
    assert_eq!(output.info_problem, None);
}

#[tokio::test]
async fn a_plugin_that_says_nothing_has_a_tokens_own_exp_or_no_expiry() {
    let opaque = run_sh("echo opaque", &State::default()).await.unwrap();
    assert_eq!((opaque.expires_at, opaque.info_problem), (None, None));

    let exp = now_seconds() + 600;
    let jwt = run_sh(&format!("echo {}", jwt_with_exp(exp)), &State::default())
        .await
        .unwrap();
    assert_eq!(jwt.expires_at, Some(at(exp)));
    assert_eq!(jwt.reported_expiry, None);
}

#[tokio::test]
async fn a_plugin_cannot_make_a_jwt_live_longer_than_its_exp_but_can_shorten_it() {
    let exp = now_seconds() + 600;
    for (reported, expected) in [(exp + 3600, exp), (exp - 300, exp - 300)] {
        let script = format!(
            "printf '{{\"expires_at\":{reported}}}' >&4; echo {}",
            jwt_with_exp(exp)
        );
        let output = run_sh(&script, &State::default()).await.unwrap();
        assert_eq!(output.expires_at, Some(at(expected)), "reported {reported}");
        assert_eq!(output.reported_expiry, Some(at(reported)));
    }
}

#[tokio::test]
async fn bad_info_is_reported_and_the_run_still_succeeds_never_valid_forever() {
    let now = now_seconds();
    // The info, how its problem is recognised, and whether it makes the
    // token due at once (else of unknown lifetime).
    type Case = (String, fn(&InfoProblem) -> bool, bool);
    let cases: [Case; 6] = [
        (
            "not json".into(),
            |p| matches!(p, InfoProblem::NotAnObject(_)),
            false,
        ),
        (
            "[1,2]".into(),
            |p| matches!(p, InfoProblem::NotAnObject(_)),
            false,
        ),
        (
            r#"{"expires_at":"tomorrow"}"#.into(),
            |p| matches!(p, InfoProblem::NotATime(_)),
            false,
        ),
        (
            r#"{"expires_at":-5}"#.into(),
            |p| *p == InfoProblem::Negative,
            false,
        ),
        // Milliseconds for seconds: thousands of years ahead.
        (
            format!(r#"{{"expires_at":{}}}"#, now * 1000),
            |p| matches!(p, InfoProblem::TooFarAhead(_)),
            false,
        ),
        // A lifetime for a time: 1970, long past, so due at once.
        (
            r#"{"expires_at":3600}"#.into(),
            |p| matches!(p, InfoProblem::InThePast(_)),
            true,
        ),
    ];
    for (info, is_expected, due) in cases {
        let script = format!("printf '%s' '{info}' >&4; echo tok");
        let output = run_sh(&script, &State::default()).await.unwrap();
        assert_eq!(output.token.as_bytes(), b"tok", "{info}");
        let problem = output.info_problem.expect("a problem reported");
        assert!(is_expected(&problem), "{info}: {problem:?}");
        assert!(!problem.to_string().is_empty());
        if due {
            assert_eq!(output.expires_at, Some(at(3600)), "{info}: due at once");
        } else {
            assert_eq!(output.expires_at, None, "{info}: unknown lifetime");
        }
    }
}

#[tokio::test]
async fn oversized_info_is_read_to_the_end_reported_and_never_blocks_the_plugin() {
    // Four pipes' worth: a host that stopped reading would leave the plugin
    // blocked until the timeout.
    let script = format!(
        "head -c {} /dev/zero | tr '\\0' ' ' >&4; echo tok",
        4 * INFO_LIMIT
    );
    let output = run_sh(&script, &State::default()).await.unwrap();
    assert_eq!(output.token.as_bytes(), b"tok");
    assert_eq!(output.info_problem, Some(InfoProblem::TooLarge));
    assert_eq!(output.expires_at, None);
}

#[tokio::test]
async fn a_helper_holding_fd_4_holds_nothing_up() {
    // The helper keeps fd 4 open for a long time; stdout and fd 3 are its
    // own. The run ends with the plugin, at once, and the info written
    // before the plugin exited counts.
    let exp = now_seconds() + 600;
    let script = format!(
        "printf '{{\"expires_at\":{exp}}}' >&4; (sleep 30 >/dev/null 2>&1 3>&- 4>&4 &) ; echo tok"
    );
    let started = std::time::Instant::now();
    let output = run_sh(&script, &State::default()).await.unwrap();
    assert_eq!(output.expires_at, Some(at(exp)));
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "the run waited for the helper"
    );
}

#[tokio::test]
async fn a_host_that_does_not_offer_it_gives_no_fd_4_and_no_variable() {
    let mut options = quick();
    options.offer_info = false;
    // No pipeline: its own pipe would show in the shell's descriptors.
    let script = format!(r#"[ -z "${{{ENV_INFO_FD}+set}}" ] || exit 9; ls /proc/$$/fd"#);
    let output = run(&sh(&script), &State::default(), &options)
        .await
        .unwrap();
    let listed: Vec<&str> = output.token.to_str().unwrap().lines().collect();
    assert_eq!(listed, ["0", "1", "2", "3"]);
    assert_eq!(output.expires_at, None);
}

#[tokio::test]
async fn the_sdk_reports_the_expiry_and_keeps_fd_4_from_its_children() {
    let before = now_seconds();
    let output = run(
        &sdk_probe().arg("--expires-in").arg("900"),
        &State::from("s"),
        &quick(),
    )
    .await
    .unwrap();
    assert!(
        output.token.to_str().unwrap().ends_with("child-fd4=clean"),
        "{:?}",
        output.token.to_str()
    );
    let reported = output.expires_at.expect("an expiry");
    assert!(reported >= at(before + 900) && reported <= at(now_seconds() + 900));

    // To a host that does not offer the channel, the same plugin says
    // nothing and runs as before.
    let mut epithet = quick();
    epithet.offer_info = false;
    epithet.keep_state_on_failure = false;
    let output = run(
        &sdk_probe().arg("--expires-in").arg("900"),
        &State::from("s"),
        &epithet,
    )
    .await
    .unwrap();
    assert_eq!(output.expires_at, None);
    assert_eq!(output.state.as_bytes(), b"s+");
}
