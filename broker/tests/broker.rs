//! The broker library against real plugin processes (small sh scripts that
//! count their own runs in a file).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use authplug_broker::{Broker, BrokerError, Failure, LogoutOutcome, TokenRequest, WithTokenError};

mod support;
use support::{options, text, wait_until, Plugin};

/// A plugin whose token is `tok-N`, N its state plus one; it keeps N as its
/// state.
const COUNTING: &str = r#"
state=$(cat)
[ -n "$state" ] || state=0
next=$((state + 1))
printf '%s' "$next" >&3
echo "tok-$next"
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_concurrent_callers_share_one_run() {
    let plugin = Plugin::new("sleep 0.5\necho tok-shared");
    let broker = plugin.broker(options());
    let mut callers = tokio::task::JoinSet::new();
    for _ in 0..1000 {
        let broker = broker.clone();
        callers.spawn(async move { broker.token().await });
    }
    let mut tokens = 0;
    while let Some(result) = callers.join_next().await {
        let token = result.expect("caller task").expect("token");
        assert_eq!(text(&token), "tok-shared");
        tokens += 1;
    }
    assert_eq!(tokens, 1000);
    assert_eq!(plugin.runs(), ["initial 1"]);
    // Cached from now on.
    broker.token().await.expect("cached token");
    assert_eq!(plugin.runs().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_401_storm_on_the_same_token_causes_one_rerun() {
    let plugin = Plugin::new(&format!("sleep 0.2\n{COUNTING}"));
    let broker = plugin.broker(options());
    let stale = broker.token().await.expect("first token");
    assert_eq!(text(&stale), "tok-1");

    let cleared = Arc::new(AtomicUsize::new(0));
    let mut callers = tokio::task::JoinSet::new();
    for _ in 0..1000 {
        let (broker, stale, cleared) = (broker.clone(), stale.clone(), cleared.clone());
        callers.spawn(async move {
            if broker.reject(&stale) {
                cleared.fetch_add(1, Ordering::SeqCst);
            }
            broker.token().await
        });
    }
    while let Some(result) = callers.join_next().await {
        let token = result.expect("caller task").expect("token");
        assert_eq!(text(&token), "tok-2");
    }
    assert_eq!(cleared.load(Ordering::SeqCst), 1);
    assert_eq!(plugin.runs(), ["initial 1", "rejected 1"]);

    // The "compare": now that tok-2 is cached, the stale tok-1 clears nothing.
    assert!(!broker.reject(&stale));
    let status = broker.status();
    assert!(status.has_token && !status.rejected, "{status:?}");
    // Nor do late rejecters of tok-1 arriving after the re-run ended, however
    // many, while some callers keep asking for the token.
    let mut late = tokio::task::JoinSet::new();
    for _ in 0..1000 {
        let (broker, stale) = (broker.clone(), stale.clone());
        late.spawn(async move { (broker.reject(&stale), broker.token().await) });
    }
    while let Some(result) = late.join_next().await {
        let (cleared, token) = result.expect("caller task");
        assert!(!cleared, "a stale token cleared the fresh one");
        assert_eq!(text(&token.expect("token")), "tok-2");
    }
    assert_eq!(text(&broker.token().await.expect("cached")), "tok-2");
    assert_eq!(
        plugin.runs(),
        ["initial 1", "rejected 1"],
        "no run for a stale token"
    );
}

#[tokio::test]
async fn the_same_token_after_a_reject_is_an_error_not_a_loop() {
    // Its state moves on (a rotated refresh token), its token does not.
    let plugin = Plugin::new(
        r#"state=$(cat)
echo "stdin=$state" >> "$DIR/stdin"
printf '%s' $(( ${state:-0} + 1 )) >&3
echo always-the-same"#,
    );
    let broker = plugin.broker(options());
    let token = broker.token().await.expect("first token");
    assert!(broker.reject(&token));
    let error = broker.token().await.expect_err("same token again");
    assert!(
        matches!(error, BrokerError::SameTokenAfterReject),
        "{error}"
    );
    assert!(error.to_string().contains("rejected"), "{error}");
    assert_eq!(plugin.runs(), ["initial 1", "rejected 1"]);
    let status = broker.status();
    assert!(!status.has_token && status.rejected && status.last_error.is_some());

    // The failed-looking run still wrote the state the next run gets.
    broker
        .token_with(TokenRequest::new().interactive(false))
        .await
        .expect_err("same token yet again");
    let stdin = std::fs::read_to_string(plugin.path("stdin")).expect("stdin log");
    assert_eq!(stdin, "stdin=\nstdin=1\nstdin=2\n");
    assert_eq!(plugin.runs(), ["initial 1", "rejected 1", "rejected 0"]);
}

#[tokio::test]
async fn each_run_gets_the_state_the_previous_run_wrote() {
    let plugin = Plugin::new(&format!(
        "{COUNTING}\necho \"stdin=$state\" >> \"$DIR/stdin\""
    ));
    let broker = plugin.broker(options());
    let first = broker.token().await.expect("token 1");
    assert_eq!(text(&first), "tok-1");
    broker.reject(&first);
    assert_eq!(text(&broker.token().await.expect("token 2")), "tok-2");
    broker.invalidate();
    assert_eq!(text(&broker.token().await.expect("token 3")), "tok-3");
    let stdin = std::fs::read_to_string(plugin.path("stdin")).expect("stdin log");
    assert_eq!(stdin, "stdin=0\nstdin=1\nstdin=2\n");
    assert_eq!(plugin.runs(), ["initial 1", "rejected 1", "refresh 1"]);
}

/// `count` non-interactive callers at once, each of which must fail: their
/// messages.
async fn failures_of_quiet_callers(broker: &Broker, count: usize) -> Vec<String> {
    let mut callers = tokio::task::JoinSet::new();
    for _ in 0..count {
        let broker = broker.clone();
        callers.spawn(async move {
            broker
                .token_with(TokenRequest::new().interactive(false))
                .await
        });
    }
    let mut messages = Vec::new();
    while let Some(result) = callers.join_next().await {
        let error = result.expect("caller task").expect_err("a failed run");
        messages.push(error.to_string());
    }
    messages
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_run_keeps_the_state_and_reaches_every_waiter() {
    let plugin = Plugin::new(&format!(
        r#"if [ -e "$DIR/fail" ]; then
  cat >/dev/null
  printf 'garbage' >&3
  echo "the identity provider is down (503)" >&2
  sleep 0.3
  exit 3
fi
{COUNTING}"#
    ));
    let broker = plugin.broker(options());
    assert_eq!(text(&broker.token().await.expect("token 1")), "tok-1");

    std::fs::write(plugin.path("fail"), "").expect("fail flag");
    broker.invalidate();
    for message in failures_of_quiet_callers(&broker, 10).await {
        assert!(message.contains("exit code 3"), "{message}");
        assert!(
            message.contains("the identity provider is down (503)"),
            "{message}"
        );
    }
    assert_eq!(plugin.runs().len(), 2, "one failed run for ten callers");
    assert!(broker.status().has_state);

    std::fs::remove_file(plugin.path("fail")).expect("clear flag");
    // The state is still 1 (not "garbage"), so the token is tok-2.
    assert_eq!(text(&broker.token().await.expect("token 2")), "tok-2");
    assert_eq!(broker.status().last_error, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_run_that_asks_keeps_its_new_state_for_the_next_run() {
    // Fails once, after rotating its state, and asks the host to keep it
    // (rule 4's exception); every waiter still sees a failure.
    let plugin = Plugin::new(&format!(
        r#"if [ -e "$DIR/fail" ]; then
  rm "$DIR/fail"
  cat >/dev/null
  printf '41' >&3
  echo "refreshed, but a login is needed" >&2
  sleep 0.2
  exit "$AUTHPLUG_KEEP_STATE_EXIT"
fi
{COUNTING}"#
    ));
    let broker = plugin.broker(options());
    assert_eq!(text(&broker.token().await.expect("token 1")), "tok-1");
    std::fs::write(plugin.path("fail"), "").expect("fail flag");
    broker.invalidate();
    for message in failures_of_quiet_callers(&broker, 5).await {
        assert!(message.contains("updated state"), "{message}");
        assert!(message.contains("a login is needed"), "{message}");
        assert!(
            !message.contains("41"),
            "no state in the message: {message}"
        );
    }
    assert_eq!(plugin.runs().len(), 2, "one failed run for five callers");
    // The next run starts from the kept state, 41, not the old 1.
    assert_eq!(text(&broker.token().await.expect("token 2")), "tok-42");
}

use authplug_testkit::is_running;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_every_caller_goes_away_the_run_and_its_group_are_killed() {
    let plugin = Plugin::new(
        r#"if [ -e "$DIR/quick" ]; then echo tok-quick; exit 0; fi
echo $$ > "$DIR/pids"
sleep 30 &
echo $! >> "$DIR/pids"
wait"#,
    );
    let broker = plugin.broker(options());
    let caller = tokio::spawn({
        let broker = broker.clone();
        async move { broker.token().await }
    });
    // Wait until the plugin and its child run, then the only caller leaves.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let pids: Vec<i32> = loop {
        let pids: Vec<i32> = std::fs::read_to_string(plugin.path("pids"))
            .unwrap_or_default()
            .split_whitespace()
            .filter_map(|pid| pid.parse().ok())
            .collect();
        if pids.len() == 2 {
            break pids;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the plugin never started"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    caller.abort();
    assert!(caller.await.is_err_and(|e| e.is_cancelled()));
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while pids.iter().any(|&pid| is_running(pid)) {
        assert!(
            std::time::Instant::now() < deadline,
            "plugin group still running: {pids:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    wait_until(|| !broker.status().running).await;

    // A later call starts a fresh run.
    std::fs::write(plugin.path("quick"), "").expect("quick flag");
    assert_eq!(text(&broker.token().await.expect("fresh run")), "tok-quick");
    assert_eq!(plugin.runs().len(), 2);
}

/// A plugin that takes its time to die: on TERM it goes on for 0.4 s (as one
/// might that has just sent a refresh token to its IdP). `$DIR/running` is
/// held while a run lives, so a second run at the same time is noticed.
/// The host signals the group and the plugin itself, so sh may see TERM
/// twice: the trap ignores the second.
const LINGERING: &str = r#"
if ! mkdir "$DIR/running" 2>/dev/null; then echo "overlap" >> "$DIR/overlaps"; fi
if [ -e "$DIR/quick" ]; then
  echo fresh >> "$DIR/events"
  rmdir "$DIR/running"
  echo tok-fresh
  exit 0
fi
trap 'trap "" TERM; echo term >> "$DIR/events"; sleep 0.4; echo gone >> "$DIR/events"; rmdir "$DIR/running"; exit 1' TERM
echo started >> "$DIR/events"
sleep 30 &
wait
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caller_after_a_cancel_waits_until_the_dying_run_is_gone() {
    let plugin = Plugin::new(LINGERING);
    let mut options = options();
    options.run.kill_grace = Duration::from_secs(1);
    let broker = plugin.broker(options);
    let events = || -> Vec<String> {
        std::fs::read_to_string(plugin.path("events"))
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect()
    };
    let caller = tokio::spawn({
        let broker = broker.clone();
        async move { broker.token().await }
    });
    wait_until(|| events() == ["started"]).await;
    caller.abort();
    assert!(caller.await.is_err_and(|e| e.is_cancelled()));

    // At once a new caller asks; the dying run still has its state.
    std::fs::write(plugin.path("quick"), "").expect("quick flag");
    let token = broker.token().await.expect("fresh run");
    assert_eq!(text(&token), "tok-fresh");
    assert!(
        !plugin.path("overlaps").exists(),
        "two plugin runs at once: {:?}",
        events()
    );
    assert_eq!(events(), ["started", "term", "gone", "fresh"]);
    assert_eq!(plugin.runs().len(), 2);
    assert!(!broker.status().running);
}

/// A plugin that dies at once on TERM (sh's default), its child with it.
const DIES_ON_TERM: &str = r#"
if ! mkdir "$DIR/running" 2>/dev/null; then echo "overlap" >> "$DIR/overlaps"; fi
if [ -e "$DIR/quick" ]; then
  rmdir "$DIR/running"
  echo tok-fresh
  exit 0
fi
trap 'rmdir "$DIR/running"; exit 1' TERM
echo started >> "$DIR/events"
sleep 30 &
wait
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caller_after_a_cancel_waits_only_as_long_as_the_plugin_takes_to_die() {
    let plugin = Plugin::new(DIES_ON_TERM);
    let mut options = options();
    let grace = Duration::from_secs(5);
    options.run.kill_grace = grace;
    let broker = plugin.broker(options);
    let caller = tokio::spawn({
        let broker = broker.clone();
        async move { broker.token().await }
    });
    wait_until(|| plugin.path("events").exists()).await;
    caller.abort();
    assert!(caller.await.is_err_and(|e| e.is_cancelled()));

    // At once a new caller asks: it waits for the dying run, which is over
    // as soon as the plugin has exited on TERM, not after the grace.
    std::fs::write(plugin.path("quick"), "").expect("quick flag");
    let asked = std::time::Instant::now();
    let token = broker.token().await.expect("fresh run");
    let waited = asked.elapsed();
    assert_eq!(text(&token), "tok-fresh");
    assert!(
        waited < grace / 3,
        "the fresh run waited {waited:?}, as if out the {grace:?} grace"
    );
    assert!(!plugin.path("overlaps").exists(), "two plugin runs at once");
    assert_eq!(plugin.runs().len(), 2);
    // A cancelled run is no finished run: no record, no error, no cool-down.
    let status = broker.status();
    assert_eq!(status.runs, 1);
    assert!(status.last_error.is_none() && status.cooldown_until.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_goes_on_while_any_caller_still_waits() {
    let plugin = Plugin::new("while [ ! -e \"$DIR/go\" ]; do sleep 0.02; done\necho tok-patient");
    let broker = plugin.broker(options());
    let patient = tokio::spawn({
        let broker = broker.clone();
        async move { broker.token().await }
    });
    wait_until(|| broker.status().waiters == 1).await;
    let impatient = tokio::time::timeout(Duration::from_millis(100), broker.token()).await;
    assert!(impatient.is_err());
    assert_eq!(broker.status().waiters, 1);
    std::fs::write(plugin.path("go"), "").expect("go");
    let token = patient.await.expect("task").expect("token");
    assert_eq!(text(&token), "tok-patient");
    assert_eq!(plugin.runs().len(), 1);
}

/// A JWT (unsigned: the broker never checks signatures) whose `exp` is
/// `$DIR/lifetime` seconds from now; its state stands for a refresh token.
const JWT_PLUGIN: &str = r#"
exp=$(( $(date +%s) + $(cat "$DIR/lifetime") ))
payload=$(printf '{"sub":"me","exp":%d,"n":"%s"}' "$exp" "$(wc -l < "$DIR/runs")" | base64 | tr '+/' '-_' | tr -d '=\n')
printf 'refresh-token' >&3
echo "eyJhbGciOiJSUzI1NiJ9.$payload.c2lnbmF0dXJl"
"#;

#[tokio::test]
async fn a_jwt_is_refreshed_skew_seconds_before_exp() {
    let plugin = Plugin::new(JWT_PLUGIN);
    std::fs::write(plugin.path("lifetime"), "62").expect("lifetime");
    let mut options = options();
    options.skew = Duration::from_secs(60);
    // The refresh a caller waits for, as without refresh ahead (which
    // refresh_ahead.rs tests).
    options.refresh_ahead = false;
    let broker = plugin.broker(options);

    let first = broker.token().await.expect("first");
    let status = broker.status();
    let (expires_at, refresh_at) = (
        status.expires_at.expect("exp"),
        status.refresh_at.expect("refresh"),
    );
    assert_eq!(
        expires_at.duration_since(refresh_at).ok(),
        Some(Duration::from_secs(60))
    );
    assert_eq!(broker.token().await.expect("cached"), first);
    assert_eq!(plugin.runs(), ["initial 1"]);

    let wait = refresh_at
        .duration_since(SystemTime::now())
        .unwrap_or_default();
    tokio::time::sleep(wait + Duration::from_millis(100)).await;
    let second = broker.token().await.expect("refreshed");
    assert_ne!(second, first);
    assert_eq!(plugin.runs(), ["initial 1", "refresh 1"]);
    assert!(SystemTime::now() < expires_at);
}

#[tokio::test]
async fn a_token_issued_inside_the_skew_window_is_still_cached_for_a_while() {
    let plugin = Plugin::new(JWT_PLUGIN);
    std::fs::write(plugin.path("lifetime"), "20").expect("lifetime");
    let broker = plugin.broker(options());
    let first = broker.token().await.expect("first");
    assert_eq!(broker.token().await.expect("cached"), first);
    assert_eq!(plugin.runs().len(), 1);
}

#[tokio::test]
async fn an_opaque_token_is_kept_until_rejected() {
    let plugin = Plugin::new(COUNTING);
    let mut options = options();
    options.skew = Duration::from_secs(1_000_000_000);
    let broker = plugin.broker(options);
    let first = broker.token().await.expect("first");
    assert_eq!(broker.status().expires_at, None);
    assert_eq!(broker.token().await.expect("cached"), first);
    broker.reject(&first);
    assert_eq!(text(&broker.token().await.expect("second")), "tok-2");
    assert_eq!(plugin.runs(), ["initial 1", "rejected 1"]);
}

/// A plugin that needs the user: there is no refresh path.
const NEEDS_LOGIN: &str = r#"if [ "$AUTHPLUG_INTERACTIVE" = 1 ]; then
  echo "login cancelled in the browser" >&2
  exit 1
fi
echo "a login is needed, but this run may not open a browser" >&2
exit 2"#;

#[tokio::test]
async fn during_the_cooldown_interactive_callers_get_a_quiet_run_unless_forced() {
    let plugin = Plugin::new(NEEDS_LOGIN);
    let broker = plugin.broker(options());
    let first = broker.token().await.expect_err("cancelled login");
    assert!(matches!(first, BrokerError::Run(_)), "{first}");
    let cooldown_until = broker.status().cooldown_until.expect("cool-down");

    // An interactive caller in the cool-down: the plugin runs, but may not
    // open a browser, and the error says why and how to force one.
    let refused = broker.token().await.expect_err("no login possible");
    match &refused {
        BrokerError::CoolingDown { remaining, error } => {
            assert!(*remaining > Duration::from_secs(50), "{remaining:?}");
            assert!(matches!(**error, BrokerError::Run(_)), "{error}");
        }
        other => panic!("expected a cool-down, got {other}"),
    }
    let message = refused.to_string();
    for expected in [
        "may not open a browser",
        "interactive login was not tried",
        "rest of the cool-down (",
        "TokenRequest::force",
    ] {
        assert!(message.contains(expected), "{expected:?} in {message}");
    }
    assert_eq!(plugin.runs(), ["initial 1", "initial 0"]);
    // A failed quiet run does not prolong the cool-down.
    assert_eq!(broker.status().cooldown_until, Some(cooldown_until));

    // A non-interactive caller gets the plain error...
    let quiet = broker
        .token_with(TokenRequest::new().interactive(false))
        .await
        .expect_err("non-interactive");
    assert!(matches!(quiet, BrokerError::Run(_)), "{quiet}");
    assert!(
        quiet.to_string().contains("may not open a browser"),
        "{quiet}"
    );
    // ...and a forced interactive run is allowed.
    broker
        .token_with(TokenRequest::new().force(true))
        .await
        .expect_err("forced run fails again");
    assert_eq!(
        plugin.runs(),
        ["initial 1", "initial 0", "initial 0", "initial 1"]
    );
}

#[tokio::test]
async fn an_endless_cooldown_is_no_overflow() {
    let plugin = Plugin::new(NEEDS_LOGIN);
    let mut options = options();
    options.interactive_cooldown = Duration::MAX;
    let broker = plugin.broker(options);
    let error = broker.token().await.expect_err("cancelled login");
    assert!(matches!(error, BrokerError::Run(_)), "{error}");
    let until = broker.status().cooldown_until.expect("cool-down");
    assert!(until > SystemTime::now() + Duration::from_secs(50 * 365 * 24 * 3600));
    let quiet = broker.token().await.expect_err("quiet run");
    assert!(matches!(quiet, BrokerError::CoolingDown { .. }), "{quiet}");
}

#[tokio::test]
async fn after_a_network_blip_a_silent_refresh_still_works_in_the_cooldown() {
    let plugin = Plugin::new(&format!(
        r#"if [ -e "$DIR/offline" ]; then
  echo "cannot reach the identity provider: network unreachable" >&2
  exit 1
fi
{COUNTING}"#
    ));
    let broker = plugin.broker(options());
    assert_eq!(text(&broker.token().await.expect("login")), "tok-1");

    // The refresh fails on a network error; as the run was interactive, the
    // cool-down starts.
    broker.invalidate();
    std::fs::write(plugin.path("offline"), "").expect("offline");
    broker.token().await.expect_err("offline");
    assert!(broker.status().cooldown_until.is_some());

    // Back online: an interactive caller in the cool-down gets a quiet run,
    // which refreshes silently.
    std::fs::remove_file(plugin.path("offline")).expect("online");
    broker.invalidate();
    assert_eq!(text(&broker.token().await.expect("refreshed")), "tok-2");
    assert_eq!(broker.status().cooldown_until, None, "a success ends it");
    broker.invalidate();
    assert_eq!(text(&broker.token().await.expect("refreshed")), "tok-3");
    assert_eq!(
        plugin.runs(),
        ["initial 1", "refresh 1", "refresh 0", "refresh 1"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiters_see_the_plugins_stderr_live_including_lines_printed_before_they_joined() {
    let plugin = Plugin::new(
        "echo 'open https://login.example/device?code=XYZ' >&2\nwhile [ ! -e \"$DIR/go\" ]; do sleep 0.02; done\necho 'still waiting' >&2\necho tok-after-login",
    );
    let broker = plugin.broker(options());
    let mut everything = broker.stderr_lines();
    let early_lines = Arc::new(Mutex::new(Vec::<String>::new()));
    let late_lines = Arc::new(Mutex::new(Vec::<String>::new()));
    let early = tokio::spawn({
        let (broker, lines) = (broker.clone(), early_lines.clone());
        async move {
            let request = TokenRequest::new().on_stderr(move |line| {
                lines.lock().expect("lines").push(line.to_owned());
            });
            broker.token_with(request).await
        }
    });
    wait_until(|| !early_lines.lock().expect("lines").is_empty()).await;
    let request = TokenRequest::new().on_stderr({
        let lines = late_lines.clone();
        move |line| lines.lock().expect("lines").push(line.to_owned())
    });
    let late = tokio::spawn({
        let broker = broker.clone();
        async move { broker.token_with(request).await }
    });
    wait_until(|| broker.status().waiters == 2).await;
    std::fs::write(plugin.path("go"), "").expect("go");
    let token = late.await.expect("task").expect("late waiter");
    assert_eq!(text(&token), "tok-after-login");
    early.await.expect("task").expect("early waiter");
    let expected = [
        "open https://login.example/device?code=XYZ",
        "still waiting",
    ];
    assert_eq!(*early_lines.lock().expect("lines"), expected);
    assert_eq!(*late_lines.lock().expect("lines"), expected);
    assert_eq!(everything.recv().await.expect("broadcast"), expected[0]);
    assert_eq!(plugin.runs().len(), 1);
}

#[tokio::test]
async fn with_token_rejects_and_retries_on_unauthorized_as_configured() {
    let plugin = Plugin::new(COUNTING);
    let broker = plugin.broker(options());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let result = broker
        .with_token(|token| {
            let seen = seen.clone();
            async move {
                let token = text(&token);
                seen.lock().expect("seen").push(token.clone());
                if token == "tok-1" {
                    Err(Failure::Unauthorized("401"))
                } else {
                    Ok(token)
                }
            }
        })
        .await
        .expect("retried with a new token");
    assert_eq!(result, "tok-2");
    assert_eq!(*seen.lock().expect("seen"), ["tok-1", "tok-2"]);

    let mut no_retries = options();
    no_retries.unauthorized_retries = 0;
    let strict = Plugin::new(COUNTING);
    let broker = strict.broker(no_retries);
    let error = broker
        .with_token(|_token| async { Err::<(), _>(Failure::Unauthorized("401")) })
        .await
        .expect_err("no retries");
    assert!(matches!(error, WithTokenError::Unauthorized("401")));
    assert_eq!(strict.runs().len(), 1);
    assert!(
        broker.status().rejected,
        "the refused token was still rejected"
    );
}

#[tokio::test]
async fn with_token_with_gets_every_token_as_the_caller_asks() {
    let plugin = Plugin::new(COUNTING);
    let broker = plugin.broker(options());
    let quiet = TokenRequest::new().interactive(false);
    let result = broker
        .with_token_with(quiet, |token| async move {
            match text(&token).as_str() {
                "tok-1" => Err(Failure::Unauthorized("401")),
                other => Ok(other.to_owned()),
            }
        })
        .await
        .expect("retried with a new token");
    assert_eq!(result, "tok-2");
    assert_eq!(plugin.runs(), ["initial 0", "rejected 0"]);
}

#[tokio::test]
async fn logout_lets_the_plugin_clean_up_then_forgets_token_and_state() {
    // COUNTING knows nothing of `logout`: it treats it like `refresh` and
    // prints tok-3 with state 3, all of which the broker must discard.
    let plugin = Plugin::new(&format!(
        "[ \"$AUTHPLUG_REASON\" = logout ] && echo \"cleaning up\" >&2\n{COUNTING}"
    ));
    let broker = plugin.broker(options());
    assert_eq!(text(&broker.token().await.expect("a token")), "tok-1");
    broker.invalidate();
    assert_eq!(text(&broker.token().await.expect("a token")), "tok-2");

    let lines = Arc::new(Mutex::new(Vec::new()));
    let sink = {
        let lines = lines.clone();
        Arc::new(move |line: &str| lines.lock().unwrap().push(line.to_owned()))
    };
    let outcome = broker.logout(Some(sink)).await;
    assert!(matches!(outcome, LogoutOutcome::CleanedUp), "{outcome:?}");
    assert_eq!(*lines.lock().unwrap(), ["cleaning up"]);
    let status = broker.status();
    assert!(!status.has_token && !status.has_state, "{status:?}");

    // From nothing: a first login, not the discarded tok-3.
    assert_eq!(text(&broker.token().await.expect("a token")), "tok-1");
    assert_eq!(
        plugin.runs(),
        ["initial 1", "refresh 1", "logout 0", "initial 1"]
    );
    assert!(matches!(
        broker.logout(None).await,
        LogoutOutcome::CleanedUp
    ));
    // Nothing held, nothing to run.
    assert!(matches!(
        broker.logout(None).await,
        LogoutOutcome::NothingHeld
    ));
    assert_eq!(plugin.runs().len(), 5);
}

#[tokio::test]
async fn a_failed_cleanup_still_logs_out() {
    let plugin = Plugin::new(&format!(
        "if [ \"$AUTHPLUG_REASON\" = logout ]; then echo 'provider unreachable' >&2; exit 3; fi\n{COUNTING}"
    ));
    let broker = plugin.broker(options());
    broker.token().await.expect("a token");
    match broker.logout(None).await {
        LogoutOutcome::CleanupFailed(error) => {
            assert!(
                error.to_string().contains("provider unreachable"),
                "{error}"
            )
        }
        other => panic!("expected a failed cleanup, got {other:?}"),
    }
    assert!(!broker.status().has_state);
    assert_eq!(text(&broker.token().await.expect("a token")), "tok-1");
}

#[tokio::test]
async fn a_run_under_way_at_logout_keeps_nothing() {
    let plugin = Plugin::new(&format!("sleep 1\n{COUNTING}"));
    let broker = plugin.broker(options());
    let pending = tokio::spawn({
        let broker = broker.clone();
        async move { broker.token().await }
    });
    wait_until(|| broker.status().running).await;
    // Nothing held yet: no cleanup run, but the login under way is void.
    assert!(matches!(
        broker.logout(None).await,
        LogoutOutcome::NothingHeld
    ));
    let error = pending.await.expect("joined").expect_err("logged out");
    assert!(matches!(error, BrokerError::LoggedOut), "{error}");
    assert!(error.to_string().contains("ask again to log in"), "{error}");
    let status = broker.status();
    assert!(!status.has_token && !status.has_state, "{status:?}");
    assert_eq!(plugin.runs(), ["initial 1"]);
}

#[tokio::test]
async fn reject_current_clears_whatever_token_is_cached() {
    let plugin = Plugin::new(COUNTING);
    let broker = plugin.broker(options());
    assert!(!broker.reject_current(), "nothing cached yet");
    broker.token().await.expect("a token");
    assert!(broker.reject_current());
    assert!(!broker.reject_current(), "cleared already");
    assert_eq!(text(&broker.token().await.expect("a token")), "tok-2");
    assert_eq!(plugin.runs(), ["initial 1", "rejected 1"]);
}
