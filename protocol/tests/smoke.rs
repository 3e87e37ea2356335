use authplug_protocol::host::{run, PluginCommand, RunOptions};
use authplug_protocol::State;

#[tokio::test]
async fn smoke() {
    let cmd = PluginCommand::new("sh").arg("-c").arg("s=$(cat); printf 'next-%s' \"$s\" >&3; echo tok-$AUTHPLUG_REASON; echo hi >&2");
    let out = run(&cmd, &State::from("abc"), &RunOptions::default()).await.unwrap();
    assert_eq!(out.token.as_bytes(), b"tok-refresh");
    assert_eq!(out.state.as_bytes(), b"next-abc");
    assert_eq!(out.stderr_tail, "hi");
}
