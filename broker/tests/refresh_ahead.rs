//! Tokens that never go stale: the broker knows every token's lifetime
//! (the plugin's report on fd 4, PROTOCOL.md rule 10, or a JWT's `exp`)
//! and refreshes a used one in the background before anyone has to wait.
//! Real plugin processes (sh scripts); assertions on run counts and on
//! which token each caller got, never on wall time.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use authplug_broker::{BrokerOptions, LogoutOutcome, TokenRequest};

mod support;
use support::{options, text, wait_until, Plugin};

/// `tok-N` (N its state plus one), reported to expire `$DIR/lifetime`
/// seconds from now (fractions allowed). Writes `working` on stderr.
/// Fails runs with reason `expiring` while `$DIR/fail-expiring` exists;
/// sleeps `$DIR/delay` seconds if that file exists; a run with reason
/// `expiring` waits for `$DIR/go` while `$DIR/hold` exists.
const REPORTING: &str = r#"
state=$(cat)
[ -n "$state" ] || state=0
next=$((state + 1))
echo working >&2
[ -f "$DIR/delay" ] && sleep "$(cat "$DIR/delay")"
if [ -f "$DIR/hold" ] && [ "$AUTHPLUG_REASON" = expiring ]; then
    while [ ! -f "$DIR/go" ]; do sleep 0.02; done
fi
if [ -f "$DIR/fail-expiring" ] && [ "$AUTHPLUG_REASON" = expiring ]; then
    echo "provider down" >&2
    exit 1
fi
printf '%s' "$next" >&3
if [ "${AUTHPLUG_INFO_FD:-}" = 4 ]; then
    awk -v l="$(cat "$DIR/lifetime")" -v n="$(date +%s.%N)" 'BEGIN { printf "{\"expires_at\":%.3f}", n + l }' >&4
fi
echo "tok-$next"
"#;

fn reporting(lifetime_seconds: f64) -> Plugin {
    let plugin = Plugin::new(REPORTING);
    std::fs::write(plugin.path("lifetime"), lifetime_seconds.to_string()).expect("lifetime");
    plugin
}

fn skewed(skew: Duration) -> BrokerOptions {
    let mut options = options();
    options.skew = skew;
    options
}

/// Waits (up to 10 s) until the plugin has run `count` times.
async fn runs_reach(plugin: &Plugin, count: usize) {
    wait_until(|| plugin.runs().len() >= count).await;
}

async fn sleep_until(at: SystemTime) {
    let wait = at.duration_since(SystemTime::now()).unwrap_or_default();
    tokio::time::sleep(wait).await;
}

#[tokio::test]
async fn an_opaque_tokens_reported_expiry_is_known_and_it_is_refreshed_before_it() {
    let plugin = reporting(4.0);
    let broker = plugin.broker(skewed(Duration::from_secs(1)));
    let first = broker.get(TokenRequest::new()).await.expect("first token");
    assert_eq!(text(&first.token), "tok-1");
    let expires_at = first.expires_at.expect("the reported expiry");
    let status = broker.status();
    assert_eq!(status.expires_at, Some(expires_at));
    assert!(status.refresh_at.is_some() && status.refresh_ahead_at.is_some());

    // Used once since it was obtained: worth refreshing.
    assert_eq!(text(&broker.token().await.expect("cached")), "tok-1");
    runs_reach(&plugin, 2).await;
    assert_eq!(plugin.runs(), ["initial 1", "expiring 0"]);
    wait_until(|| !broker.status().running).await;
    // Still before the first token's expiry: the caller gets the new one,
    // with no run of its own, and no reject was ever needed.
    let second = broker.get(TokenRequest::new()).await.expect("renewed");
    assert_eq!(text(&second.token), "tok-2");
    assert!(second.expires_at > Some(expires_at));
    assert!(SystemTime::now() < expires_at);
    assert_eq!(plugin.runs().len(), 2);
    let last = broker.status().last_run.expect("a run");
    assert!(last.background && last.ok && !last.interactive);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callers_asking_across_the_refresh_point_never_wait_for_the_plugin() {
    // The background run starts 3.75 s in and takes 0.3 s: more than a
    // second to spare before the refresh point, even on a loaded machine.
    let plugin = reporting(8.0);
    std::fs::write(plugin.path("delay"), "0.3").expect("delay");
    let broker = plugin.broker(skewed(Duration::from_secs(3)));
    broker.token().await.expect("the login");
    let refresh_at = broker.status().refresh_at.expect("a refresh point");

    // Four callers ask continuously until well past the first token's
    // refresh point. A caller that had to wait for a run would have joined
    // it and been replayed its stderr (`working`): none may be.
    let waited = Arc::new(AtomicUsize::new(0));
    let got = Arc::new(Mutex::new(Vec::new()));
    let mut callers = Vec::new();
    for _ in 0..4 {
        let (broker, waited, got) = (broker.clone(), waited.clone(), got.clone());
        callers.push(tokio::spawn(async move {
            let mut seen = Vec::new();
            while SystemTime::now() < refresh_at + Duration::from_secs(1) {
                let waited = waited.clone();
                let request = TokenRequest::new().on_stderr(move |_| {
                    waited.fetch_add(1, Ordering::SeqCst);
                });
                seen.push(text(&broker.token_with(request).await.expect("a token")));
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            got.lock().unwrap().push(seen);
        }));
    }
    for caller in callers {
        caller.await.expect("caller");
    }
    assert_eq!(
        waited.load(Ordering::SeqCst),
        0,
        "a caller waited for a run"
    );
    assert_eq!(
        plugin.runs(),
        ["initial 1", "expiring 0"],
        "one background run"
    );
    for seen in got.lock().unwrap().iter() {
        // The old token until the new one, then only the new one.
        let switch = seen.iter().position(|t| t == "tok-2").expect("got tok-2");
        assert!(seen[..switch].iter().all(|t| t == "tok-1"), "{seen:?}");
        assert!(seen[switch..].iter().all(|t| t == "tok-2"), "{seen:?}");
    }
}

#[tokio::test]
async fn an_idle_profile_is_refreshed_at_most_once_after_its_last_use() {
    let plugin = reporting(3.0);
    let broker = plugin.broker(skewed(Duration::from_secs(1)));
    broker.token().await.expect("the login");
    // The login's token is in use (its caller got it): renewed once. The
    // new one nobody asks for is left to expire.
    runs_reach(&plugin, 2).await;
    wait_until(|| !broker.status().running).await;
    let status = broker.status();
    assert_eq!(status.refresh_ahead_at, None, "no plan for an unused token");
    sleep_until(status.expires_at.expect("an expiry") + Duration::from_millis(300)).await;
    assert_eq!(plugin.runs(), ["initial 1", "expiring 0"]);
    // The next caller after expiry is served as without refresh ahead.
    assert_eq!(text(&broker.token().await.expect("refreshed")), "tok-3");
    assert_eq!(plugin.runs(), ["initial 1", "expiring 0", "refresh 1"]);
}

#[tokio::test]
async fn a_failed_background_run_leaves_the_valid_token_served_and_says_why_in_status() {
    let plugin = reporting(8.0);
    std::fs::write(plugin.path("fail-expiring"), "").expect("fail");
    let broker = plugin.broker(skewed(Duration::from_secs(2)));
    broker.token().await.expect("the login");
    broker.token().await.expect("asked again");
    runs_reach(&plugin, 2).await;
    wait_until(|| broker.status().last_error.is_some()).await;
    let status = broker.status();
    assert!(
        status
            .last_error
            .as_deref()
            .unwrap()
            .contains("provider down"),
        "{:?}",
        status.last_error
    );
    assert_eq!(
        status.cooldown_until, None,
        "a background run starts no cool-down"
    );
    assert!(status.has_token && status.has_state);
    // Still valid: served at once, no run.
    let runs = plugin.runs().len();
    assert_eq!(text(&broker.token().await.expect("still served")), "tok-1");
    // Retried before the refresh point, a few times at most.
    let refresh_at = status.refresh_at.expect("refresh point");
    sleep_until(refresh_at - Duration::from_millis(100)).await;
    let background: Vec<_> = plugin
        .runs()
        .into_iter()
        .filter(|run| run == "expiring 0")
        .collect();
    assert!(
        (2..=3).contains(&background.len()),
        "{:?} (after {runs} runs)",
        plugin.runs()
    );
    // Past the refresh point with no successful refresh: as without
    // refresh ahead, the caller's own run (here the provider is back).
    std::fs::remove_file(plugin.path("fail-expiring")).expect("recover");
    sleep_until(refresh_at).await;
    assert_eq!(text(&broker.token().await.expect("refreshed")), "tok-2");
    assert_eq!(plugin.runs().last().map(String::as_str), Some("refresh 1"));
}

#[tokio::test]
async fn an_embedder_can_turn_it_off() {
    let plugin = reporting(2.0);
    let mut options = skewed(Duration::from_millis(500));
    options.refresh_ahead = false;
    let broker = plugin.broker(options);
    broker.token().await.expect("the login");
    broker.token().await.expect("asked again");
    assert_eq!(broker.status().refresh_ahead_at, None);
    let refresh_at = broker.status().refresh_at.expect("refresh point");
    sleep_until(refresh_at + Duration::from_millis(200)).await;
    assert_eq!(plugin.runs(), ["initial 1"]);
}

/// Reports `$DIR/info` as its info, verbatim, and prints a JWT whose `exp`
/// is `$DIR/exp`, or `tok-N` without that file.
const REPORTS_WHAT_IT_IS_TOLD: &str = r#"
state=$(cat)
[ -n "$state" ] || state=0
next=$((state + 1))
printf '%s' "$next" >&3
cat "$DIR/info" >&4
if [ -f "$DIR/exp" ]; then
    payload=$(printf '{"exp":%s,"n":%s}' "$(cat "$DIR/exp")" "$next" | base64 | tr '+/' '-_' | tr -d '=\n')
    echo "eyJhbGciOiJub25lIn0.$payload.c2ln"
else
    echo "tok-$next"
fi
"#;

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

#[tokio::test]
async fn garbage_a_past_time_or_a_time_past_the_jwts_exp_never_make_a_token_live_longer() {
    let plugin = Plugin::new(REPORTS_WHAT_IT_IS_TOLD);
    let broker = plugin.broker(skewed(Duration::from_secs(1)));

    // Garbage: reported, and the token of unknown lifetime.
    std::fs::write(plugin.path("info"), "expires soon").expect("info");
    let issued = broker.get(TokenRequest::new()).await.expect("a token");
    assert_eq!(
        (text(&issued.token).as_str(), issued.expires_at),
        ("tok-1", None)
    );
    let warning = broker.status().last_run.and_then(|run| run.warning);
    assert!(
        warning
            .as_deref()
            .is_some_and(|w| w.contains("not a JSON object")),
        "{warning:?}"
    );

    // Past: due at once, so the next caller runs the plugin again.
    broker.invalidate();
    std::fs::write(plugin.path("info"), r#"{"expires_at":3600}"#).expect("info");
    let past = broker.get(TokenRequest::new()).await.expect("a token");
    assert!(past.expires_at.is_some_and(|at| at < SystemTime::now()));
    assert_eq!(text(&broker.token().await.expect("again")), "tok-3");

    // Past the JWT's own exp: the earlier one, the JWT's, wins.
    broker.invalidate();
    let exp = unix_now() + 600;
    std::fs::write(plugin.path("exp"), exp.to_string()).expect("exp");
    std::fs::write(
        plugin.path("info"),
        format!(r#"{{"expires_at":{}}}"#, exp + 86_400),
    )
    .expect("info");
    let jwt = broker.get(TokenRequest::new()).await.expect("a token");
    assert_eq!(
        jwt.expires_at,
        Some(SystemTime::UNIX_EPOCH + Duration::from_secs(exp))
    );
    assert_eq!(broker.status().last_run.and_then(|run| run.warning), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reject_during_a_background_run_is_handled_as_during_any_run() {
    let plugin = reporting(4.0);
    let broker = plugin.broker(skewed(Duration::from_secs(1)));
    let first = broker.token().await.expect("the login");
    std::fs::write(plugin.path("hold"), "").expect("hold");
    broker.token().await.expect("asked again");
    runs_reach(&plugin, 2).await; // the background run, held
    assert!(broker.reject(&first), "compare-and-clear");
    assert!(!broker.reject(&first), "only once");
    // The rejected token is never handed out again: this caller waits for
    // the run under way and gets its token.
    let waiter = tokio::spawn({
        let broker = broker.clone();
        async move { broker.token().await }
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    std::fs::write(plugin.path("go"), "").expect("go");
    let token = waiter.await.expect("task").expect("token");
    assert_eq!(text(&token), "tok-2");
    assert_eq!(plugin.runs(), ["initial 1", "expiring 0"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_logout_during_a_background_run_waits_for_it_and_keeps_nothing() {
    let plugin = reporting(4.0);
    let broker = plugin.broker(skewed(Duration::from_secs(1)));
    broker.token().await.expect("the login");
    std::fs::write(plugin.path("hold"), "").expect("hold");
    broker.token().await.expect("asked again");
    runs_reach(&plugin, 2).await;
    // The logout waits for the background run (it may rotate the refresh
    // token), then cleans up with the newest state.
    let logout = tokio::spawn({
        let broker = broker.clone();
        async move { broker.logout(None).await }
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        plugin.runs().len(),
        2,
        "no logout run before the background one ends"
    );
    std::fs::write(plugin.path("go"), "").expect("go");
    assert!(matches!(
        logout.await.expect("task"),
        LogoutOutcome::CleanedUp
    ));
    assert_eq!(plugin.runs(), ["initial 1", "expiring 0", "logout 0"]);
    let status = broker.status();
    assert!(!status.has_token && !status.has_state, "{status:?}");
    assert_eq!(status.refresh_ahead_at, None);
}

/// Hands back the token it holds in its state while it is not `rejected`,
/// as a plugin that does not know `expiring` may; a new one the first time
/// and after a rejection.
const KEEPS_ITS_TOKEN: &str = r#"
state=$(cat)
if [ -z "$state" ] || [ "$AUTHPLUG_REASON" = rejected ]; then
    state="tok-$(wc -l < "$DIR/runs")"
fi
printf '%s' "$state" >&3
awk -v n="$(date +%s.%N)" 'BEGIN { printf "{\"expires_at\":%.3f}", n + 4 }' >&4
echo "$state"
"#;

#[tokio::test]
async fn a_plugin_that_gives_the_same_token_back_is_tried_a_few_times_then_left_alone() {
    let plugin = Plugin::new(KEEPS_ITS_TOKEN);
    let broker = plugin.broker(skewed(Duration::from_secs(1)));
    let first = broker.token().await.expect("the login");
    assert_eq!(broker.token().await.expect("asked"), first);
    let refresh_at = broker.status().refresh_at.expect("refresh point");
    sleep_until(refresh_at - Duration::from_millis(50)).await;
    // The token stayed served all along; its background runs are bounded.
    let runs = plugin.runs();
    assert!((2..=4).contains(&runs.len()), "{runs:?}");
    assert!(runs[1..].iter().all(|run| run == "expiring 0"), "{runs:?}");
    assert_eq!(broker.status().last_error, None);
    assert_eq!(broker.status().refresh_ahead_at, None, "no more planned");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caller_that_joins_a_failing_background_run_past_the_refresh_point_logs_in_itself() {
    let plugin = reporting(3.0);
    let broker = plugin.broker(skewed(Duration::from_secs(1)));
    broker.token().await.expect("the login");
    std::fs::write(plugin.path("fail-expiring"), "").expect("fail");
    std::fs::write(plugin.path("hold"), "").expect("hold");
    broker.token().await.expect("asked again");
    runs_reach(&plugin, 2).await; // the background run, held
    let refresh_at = broker.status().refresh_at.expect("refresh point");
    sleep_until(refresh_at + Duration::from_millis(50)).await;
    // Past the refresh point: callers join the run under way.
    let quiet = tokio::spawn({
        let broker = broker.clone();
        async move {
            broker
                .token_with(TokenRequest::new().interactive(false))
                .await
        }
    });
    let interactive = tokio::spawn({
        let broker = broker.clone();
        async move { broker.token().await }
    });
    wait_until(|| broker.status().waiters == 2).await;
    std::fs::write(plugin.path("go"), "").expect("go");
    // The quiet caller gets the background run's error; the interactive
    // one a token from a run of its own, which may log in.
    let error = quiet
        .await
        .expect("task")
        .expect_err("the background error");
    assert!(error.to_string().contains("provider down"), "{error}");
    let token = interactive.await.expect("task").expect("its own run");
    assert_eq!(text(&token), "tok-2");
    assert_eq!(plugin.runs(), ["initial 1", "expiring 0", "refresh 1"]);
}
