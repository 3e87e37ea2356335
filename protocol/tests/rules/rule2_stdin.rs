//! Rule 2: the previous state on stdin, then EOF; EPIPE is not an error.

use authplug_protocol::{State, STATE_LIMIT};

use crate::support::run_sh;

#[tokio::test]
async fn the_state_arrives_byte_for_byte_then_eof() {
    let state: Vec<u8> = (0..=255u8).cycle().take(200_000).collect();
    // `od` would be slow; `cksum` proves content and length, `cat` proves EOF came.
    let expected = {
        let output = std::process::Command::new("sh")
            .arg("-c")
            .arg("cksum")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .and_then(|mut child| {
                use std::io::Write;
                child.stdin.take().unwrap().write_all(&state)?;
                child.wait_with_output()
            })
            .unwrap();
        String::from_utf8(output.stdout).unwrap()
    };
    let output = run_sh("cksum", &State::new(state)).await.unwrap();
    assert_eq!(output.token.as_bytes(), expected.trim_end().as_bytes());
}

#[tokio::test]
async fn empty_state_is_an_immediate_eof() {
    let output = run_sh("n=$(wc -c); echo \"bytes=$n\"", &State::default())
        .await
        .unwrap();
    assert_eq!(output.token.as_bytes(), b"bytes=0");
}

#[tokio::test]
async fn a_plugin_that_ignores_a_10_mib_stdin_succeeds() {
    let state = State::new(vec![b'x'; STATE_LIMIT]);
    let output = run_sh("echo fine", &state).await.unwrap();
    assert_eq!(output.token.as_bytes(), b"fine");
}

#[tokio::test]
async fn a_plugin_that_closes_stdin_early_succeeds() {
    let state = State::new(vec![b'x'; 4 * 1024 * 1024]);
    let output = run_sh("exec 0<&-; echo fine", &state).await.unwrap();
    assert_eq!(output.token.as_bytes(), b"fine");
}
