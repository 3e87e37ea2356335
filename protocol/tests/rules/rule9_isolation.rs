//! Rule 9: fd 3 (and fd 4, when offered: rule 10) are the only extra
//! descriptors a plugin inherits, and the SDK keeps them from the plugin's
//! own children.

use std::os::fd::{AsRawFd, OwnedFd};
use std::process::Command;

use authplug_protocol::host::run;
use authplug_protocol::State;

use crate::support::{quick, run_sh, sdk_probe};

/// A descriptor without close-on-exec, as a careless embedding program
/// might hold.
fn inheritable_descriptor() -> OwnedFd {
    let file = std::fs::File::open("/dev/null").unwrap();
    let fd: OwnedFd = file.into();
    nix::fcntl::fcntl(
        &fd,
        nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::empty()),
    )
    .unwrap();
    fd
}

const LIST_OWN_FDS: &str = "ls /proc/$$/fd";

#[tokio::test]
async fn the_plugin_gets_only_descriptors_0_to_3_and_the_offered_4() {
    let extra = inheritable_descriptor();
    let extra_name = extra.as_raw_fd().to_string();
    // Control: an ordinary spawn does pass the descriptor on.
    let plain = Command::new("sh")
        .arg("-c")
        .arg(LIST_OWN_FDS)
        .output()
        .unwrap();
    let plain = String::from_utf8(plain.stdout).unwrap();
    assert!(
        plain.lines().any(|fd| fd == extra_name),
        "control failed: {plain}"
    );

    let output = run_sh(LIST_OWN_FDS, &State::default()).await.unwrap();
    let listed: Vec<&str> = output.token.to_str().unwrap().lines().collect();
    // 4 is the info channel (rule 10), offered by default; without it,
    // 0 to 3 alone (rule10_info.rs).
    assert_eq!(listed, ["0", "1", "2", "3", "4"]);
    drop(extra);
}

#[tokio::test]
async fn the_sdk_keeps_fd_3_from_the_plugins_children() {
    let output = run(&sdk_probe(), &State::from("abc"), &quick())
        .await
        .unwrap();
    assert_eq!(
        output.token.to_str().unwrap(),
        "child-fd3=clean reason=refresh interactive=1 state=3"
    );
    assert_eq!(output.state.as_bytes(), b"abc+");
}

#[tokio::test]
async fn main_with_protects_fd_3_before_it_builds_the_plugin() {
    // The probe starts its child while `plugin::main_with` builds it: as
    // with `--spawn-early` below, but after the SDK marked fd 3.
    let output = run(
        &sdk_probe().arg("--spawn-while-building"),
        &State::default(),
        &quick(),
    )
    .await
    .unwrap();
    assert!(
        output
            .token
            .to_str()
            .unwrap()
            .starts_with("child-fd3=clean "),
        "{:?}",
        output.token.to_str()
    );
}

#[tokio::test]
async fn without_the_sdk_a_child_would_inherit_fd_3() {
    // Control for the test above: the probe spawns its child before the SDK
    // protects fd 3.
    let output = run(
        &sdk_probe().arg("--spawn-early"),
        &State::default(),
        &quick(),
    )
    .await
    .unwrap();
    assert!(
        output
            .token
            .to_str()
            .unwrap()
            .starts_with("child-fd3=inherited "),
        "{:?}",
        output.token.to_str()
    );
}
