//! `authplug kubectl`: a client-go exec credential plugin over the agent.
//!
//! kubectl (client-go) runs it with `KUBERNETES_EXEC_INFO`, an
//! `ExecCredential` whose `spec.interactive` says whether it may prompt,
//! and reads one `ExecCredential` on stdout with `status.token` and,
//! optionally, `status.expirationTimestamp`, until which the kubectl
//! process keeps the token. After a 401 client-go runs the plugin again
//! with the same input as the first time: it never says why. So the
//! request names the kubectl process as its *consumer*, and the agent
//! takes a second ask from the same process as "the token I got was
//! refused or has expired" (see `authplug_agent::consumers`).

use std::io::Write;
use std::process::ExitCode;

use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use authplug_agent::wire::ErrorKind;

use super::fail;
use super::token::TokenSource;

/// The variable client-go passes its `ExecCredential` in.
const EXEC_INFO: &str = "KUBERNETES_EXEC_INFO";

/// The `apiVersion`s this plugin answers (the same one it is asked in).
const API_VERSIONS: [&str; 2] = [
    "client.authentication.k8s.io/v1",
    "client.authentication.k8s.io/v1beta1",
];

/// Be kubectl's credential plugin (client-go exec), for a kubeconfig's
/// `users[].user.exec`
///
/// Example stanza: `exec: {apiVersion: client.authentication.k8s.io/v1,
/// command: authplug, args: [kubectl, --profile, work], interactiveMode:
/// IfAvailable}`. The token comes from the agent; when kubectl has no
/// terminal (`spec.interactive` false) no login is started.
#[derive(Debug, clap::Args)]
pub struct KubectlArgs {
    #[command(flatten)]
    pub source: TokenSource,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ExecInfo {
    api_version: String,
    #[serde(default)]
    spec: ExecSpec,
}

#[derive(Default, Deserialize)]
struct ExecSpec {
    #[serde(default)]
    interactive: bool,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ExecCredential<'a> {
    api_version: &'a str,
    kind: &'static str,
    status: ExecStatus<'a>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ExecStatus<'a> {
    token: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    expiration_timestamp: Option<String>,
}

pub fn run(mut args: KubectlArgs) -> ExitCode {
    let info = match exec_info() {
        Ok(info) => info,
        Err(message) => return fail(message),
    };
    // client-go says whether the user can answer a prompt; a browser login
    // is one, so it is not started either.
    args.source.non_interactive |= !info.spec.interactive;
    let fetched = match args.source.fetch_for(None, Some(consumer())) {
        Ok(fetched) => fetched,
        Err(error) if error.kind == ErrorKind::LoginNeeded && !info.spec.interactive => {
            let profile = (args.source.target.profile.as_deref())
                .map(|p| format!(" --profile {}", shell_words::quote(p)))
                .unwrap_or_default();
            return super::exit::fail(
                error.kind,
                format!(
                    "{error}\nkubectl gave this command no terminal to log in on (its exec stanza's interactiveMode, or no terminal on stdin): run `authplug token{profile}` in a terminal, then kubectl again"
                ),
            );
        }
        Err(error) if error.kind == ErrorKind::CoolingDown => {
            let profile = (args.source.target.profile.as_deref())
                .map(|p| format!(" --profile {}", shell_words::quote(p)))
                .unwrap_or_default();
            return super::exit::fail(
                error.kind,
                format!("{error}\nto log in now anyway: `authplug token{profile} --force` in a terminal, then kubectl again"),
            );
        }
        Err(error) => return error.fail(),
    };
    let token = fetched.token.expose_secret();
    let credential = ExecCredential {
        api_version: &info.api_version,
        kind: "ExecCredential",
        status: ExecStatus {
            token,
            // As the agent knows it: reported by the plugin, or a JWT's
            // `exp`. client-go asks again once it has passed.
            expiration_timestamp: fetched.expires_at.map(super::expiry::rfc3339),
        },
    };
    let mut json = match serde_json::to_string(&credential) {
        Ok(json) => Zeroizing::new(json),
        Err(error) => return fail(format!("cannot encode the ExecCredential: {error}")),
    };
    json.push('\n');
    match std::io::stdout().lock().write_all(json.as_bytes()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => fail(format!("cannot write the credential to stdout: {error}")),
    }
}

fn exec_info() -> Result<ExecInfo, String> {
    let Some(raw) = std::env::var_os(EXEC_INFO) else {
        return Err(format!(
            "{EXEC_INFO} is not set: `authplug kubectl` is for kubectl to run, from the `exec` stanza of a kubeconfig user (see docs/kubectl.md); for a token yourself, use `authplug token`"
        ));
    };
    let info: ExecInfo = serde_json::from_str(&raw.to_string_lossy()).map_err(|error| {
        format!("{EXEC_INFO} is not the ExecCredential kubectl passes ({error})")
    })?;
    if !API_VERSIONS.contains(&info.api_version.as_str()) {
        return Err(format!(
            "kubectl asks for an ExecCredential of apiVersion {:?}; authplug answers {}: set one of them as `apiVersion` in the kubeconfig's exec stanza",
            info.api_version,
            API_VERSIONS.join(" or ")
        ));
    }
    Ok(info)
}

/// The kubectl process that runs us, as the agent's consumer: its pid and,
/// where the system tells, its start time (a pid is reused; the pair is
/// not).
fn consumer() -> String {
    let parent = nix::unistd::getppid().as_raw();
    match process_start(parent) {
        Some(start) => format!("kubectl:{parent}:{start}"),
        None => format!("kubectl:{parent}"),
    }
}

/// Field 22 of `/proc/PID/stat`: when the process started, in clock ticks
/// since boot. Counted after the command name, which may hold spaces.
fn process_start(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after_name = &stat[stat.rfind(')')? + 1..];
    after_name.split_whitespace().nth(19)?.parse().ok()
}
