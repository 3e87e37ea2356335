//! Rule 5: stderr streamed line by line as it arrives, with a bounded tail
//! in the error.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use authplug_protocol::host::{run, RunError};
use authplug_protocol::State;

use crate::support::{quick, Scratch};

#[tokio::test]
async fn lines_reach_the_sink_while_the_plugin_still_runs() {
    let scratch = Scratch::new();
    let go = scratch.path("go");
    // The plugin waits for a file that only the sink creates, after seeing
    // the plugin's first line: a host that buffered stderr would time out.
    let command = scratch.sh(
        "echo 'waiting for go' >&2; \
         i=0; while [ ! -e \"$D/go\" ]; do sleep 0.01; i=$((i+1)); [ $i -gt 1000 ] && exit 9; done; \
         echo 'got go' >&2; echo tok",
    );
    let seen = Arc::new(Mutex::new(Vec::<String>::new()));
    let mut options = quick();
    let sink_seen = seen.clone();
    options.stderr_sink = Some(Arc::new(move |line: &str| {
        sink_seen.lock().unwrap().push(line.to_owned());
        if line == "waiting for go" {
            std::fs::write(&go, b"").unwrap();
        }
    }));
    let output = run(&command, &State::default(), &options).await.unwrap();
    assert_eq!(output.token.as_bytes(), b"tok");
    assert_eq!(*seen.lock().unwrap(), ["waiting for go", "got go"]);
    assert_eq!(output.stderr_tail, "waiting for go\ngot go");
}

#[tokio::test]
async fn a_stderr_flood_is_streamed_whole_and_the_tail_stays_bounded() {
    let lines = 200_000;
    let count = Arc::new(Mutex::new((0usize, String::new())));
    let mut options = quick();
    options.stderr_tail_lines = 5;
    let sink_count = count.clone();
    options.stderr_sink = Some(Arc::new(move |line: &str| {
        let mut count = sink_count.lock().unwrap();
        count.0 += 1;
        count.1 = line.to_owned();
    }));
    let script = format!("seq 1 {lines} >&2; exit 3");
    let error = run(&crate::support::sh(&script), &State::default(), &options)
        .await
        .unwrap_err();
    let RunError::Exited {
        code: 3,
        stderr_tail,
    } = &error
    else {
        panic!("{error:?}");
    };
    assert_eq!(stderr_tail, "199996\n199997\n199998\n199999\n200000");
    assert_eq!(*count.lock().unwrap(), (lines, "200000".to_owned()));
    let message = error.to_string();
    assert!(
        message.contains("exit code 3") && message.contains("  200000"),
        "{message}"
    );
}

#[tokio::test]
async fn an_endless_line_is_cut_and_does_not_grow_memory() {
    let mut options = quick();
    options.timeout = Duration::from_secs(30);
    // 50 MiB on one line, then a normal one.
    let script = "head -c 52428800 /dev/zero | tr '\\0' x >&2; echo >&2; echo after >&2; exit 1";
    let error = run(&crate::support::sh(script), &State::default(), &options)
        .await
        .unwrap_err();
    let tail = error.stderr_tail().unwrap();
    let mut lines = tail.lines();
    let long = lines.next().unwrap();
    assert!(
        long.len() < 10_000 && long.ends_with("[...]"),
        "{} bytes",
        long.len()
    );
    assert_eq!(lines.next(), Some("after"));
}

#[tokio::test]
async fn crlf_and_a_last_line_without_newline_are_handled() {
    let output = run(
        &crate::support::sh("printf 'one\\r\\ntwo' >&2; echo tok"),
        &State::default(),
        &quick(),
    )
    .await
    .unwrap();
    assert_eq!(output.stderr_tail, "one\ntwo");
}
