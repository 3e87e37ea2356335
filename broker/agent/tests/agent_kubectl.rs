//! `authplug kubectl` as client-go runs it, against a real agent: the
//! `ExecCredential` in the version asked, `expirationTimestamp` from the
//! JWT's `exp` or the expiry the plugin reported, no login when kubectl has no terminal, and a second ask
//! from the same kubectl process taken as "my token was refused". (With
//! the real kubectl and an HTTPS API: tests/tests/kubectl.rs.)

mod support;
use support::*;

/// A plugin whose tokens are unsigned JWTs (the broker reads `exp`
/// without checking signatures): `<header>.<{"exp":EXP,"n":N}>.sig`, with
/// EXP far ahead and N counting runs; it logs `AUTHPLUG_INTERACTIVE`.
const JWT_PLUGIN: &str = r#"echo "$AUTHPLUG_INTERACTIVE" >> "$DIR/interactive"
state=$(cat)
next=$(( ${state:-0} + 1 ))
printf '%s' "$next" >&3
b64() { printf '%s' "$1" | base64 | tr -d '=\n' | tr '/+' '_-'; }
echo "$(b64 '{"alg":"none"}').$(b64 "{\"exp\":4102444800,\"n\":$next}").sig""#;

fn kubectl_plugin(socket: &std::path::Path, exec_info: Option<&str>) -> std::process::Output {
    let mut command = authplug();
    command.args(["kubectl", "--socket"]).arg(socket);
    if let Some(info) = exec_info {
        command.env("KUBERNETES_EXEC_INFO", info);
    }
    command.output().expect("authplug kubectl runs")
}

fn info(version: &str, interactive: bool) -> String {
    format!(
        r#"{{"kind":"ExecCredential","apiVersion":"client.authentication.k8s.io/{version}","spec":{{"interactive":{interactive}}}}}"#
    )
}

fn credential(output: &std::process::Output) -> serde_json::Value {
    serde_json::from_str(&stdout(output)).expect("an ExecCredential on stdout")
}

#[test]
fn answers_in_the_version_asked_with_the_jwt_expiry() {
    let scratch = Scratch::new();
    let plugin = scratch.plugin("kube", JWT_PLUGIN);
    let agent = Agent::start(&scratch.socket(), &[("kube", &plugin)]);
    for version in ["v1", "v1beta1"] {
        // From a shell each time: another "kubectl" process.
        let credential = credential(&authplug_via_sh(&agent.socket, &info(version, true)));
        assert_eq!(
            credential["apiVersion"],
            format!("client.authentication.k8s.io/{version}")
        );
        assert_eq!(credential["kind"], "ExecCredential");
        assert!(credential["status"]["token"]
            .as_str()
            .is_some_and(|t| t.ends_with(".sig")));
        // 4102444800 is 2100-01-01T00:00:00Z.
        assert_eq!(
            credential["status"]["expirationTimestamp"],
            "2100-01-01T00:00:00Z"
        );
    }
    assert_eq!(
        std::fs::read_to_string(scratch.path("interactive")).unwrap(),
        "1\n"
    );
}

#[test]
fn no_login_when_kubectl_has_no_terminal() {
    let scratch = Scratch::new();
    let plugin = scratch.plugin("kube", JWT_PLUGIN);
    let agent = Agent::start(&scratch.socket(), &[("kube", &plugin)]);
    credential(&kubectl_plugin(&agent.socket, Some(&info("v1", false))));
    assert_eq!(
        std::fs::read_to_string(scratch.path("interactive")).unwrap(),
        "0\n"
    );
}

#[test]
fn the_same_kubectl_asking_again_gets_a_new_token_and_others_the_cached_one() {
    let scratch = Scratch::new();
    let plugin = scratch.plugin("kube", JWT_PLUGIN);
    let agent = Agent::start(&scratch.socket(), &[("kube", &plugin)]);
    let token = |output: &std::process::Output| {
        credential(output)["status"]["token"]
            .as_str()
            .expect("a token")
            .to_owned()
    };
    // This test process plays one kubectl: its second ask is client-go's
    // after a 401.
    let first = token(&kubectl_plugin(&agent.socket, Some(&info("v1", false))));
    let second = token(&kubectl_plugin(&agent.socket, Some(&info("v1", false))));
    assert_ne!(first, second, "the refused token again");
    assert_eq!(scratch.runs("kube"), ["initial", "rejected"]);
    // Another process (its parent is `sh`) gets the cached one.
    let other = authplug_via_sh(&agent.socket, &info("v1", false));
    assert_eq!(token(&other), second);
    assert_eq!(scratch.runs("kube").len(), 2);
}

fn authplug_via_sh(socket: &std::path::Path, exec_info: &str) -> std::process::Output {
    std::process::Command::new("sh")
        .args(["-c", r#""$0" kubectl --socket "$1"; :"#])
        .arg(authplug_binary())
        .arg(socket)
        .env("KUBERNETES_EXEC_INFO", exec_info)
        .output()
        .expect("sh runs")
}

#[test]
fn tells_what_is_wrong_with_its_input() {
    let scratch = Scratch::new();
    let plugin = scratch.plugin("kube", JWT_PLUGIN);
    let agent = Agent::start(&scratch.socket(), &[("kube", &plugin)]);
    for (input, expected) in [
        (None, "KUBERNETES_EXEC_INFO is not set: `authplug kubectl` is for kubectl to run"),
        (Some("{"), "KUBERNETES_EXEC_INFO is not the ExecCredential kubectl passes"),
        (
            Some(r#"{"apiVersion":"client.authentication.k8s.io/v1alpha1"}"#),
            "authplug answers client.authentication.k8s.io/v1 or client.authentication.k8s.io/v1beta1",
        ),
    ] {
        let output = kubectl_plugin(&agent.socket, input);
        assert!(!output.status.success());
        assert!(output.stdout.is_empty());
        let message = String::from_utf8_lossy(&output.stderr);
        assert!(message.contains(expected), "{expected:?} in {message}");
    }
    assert!(scratch.runs("kube").is_empty(), "no token was asked for");
}

/// An opaque token (not a JWT) whose plugin reports on fd 4 (PROTOCOL.md
/// rule 10) that it expires at 2030-01-01T00:00:00Z (a report may reach
/// ten years ahead at most).
const OPAQUE_REPORTING: &str = r#"cat > /dev/null
printf '{"expires_at":1893456000}' >&4
echo opaque-token"#;

#[test]
fn an_opaque_tokens_reported_expiry_reaches_kubectl() {
    let scratch = Scratch::new();
    let plugin = scratch.plugin("kube", OPAQUE_REPORTING);
    let agent = Agent::start(&scratch.socket(), &[("kube", &plugin)]);
    let credential = credential(&authplug_via_sh(&agent.socket, &info("v1", true)));
    assert_eq!(credential["status"]["token"], "opaque-token");
    // 1893456000 is 2030-01-01T00:00:00Z.
    assert_eq!(
        credential["status"]["expirationTimestamp"],
        "2030-01-01T00:00:00Z"
    );
}
