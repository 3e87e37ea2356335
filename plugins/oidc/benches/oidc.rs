//! Whole-process benchmarks of `authplug-oidc` against the dev IdP
//! (`scripts/dev-idp`, npm oidc-provider started with
//! `{"rotateRefreshToken":false}` so every contender trades the same refresh
//! token), each side by side with its baseline in one run:
//!
//! 1. `valid_token`: the plugin with a valid ID token in its state (no
//!    network: the IdP is stopped first) versus `/bin/true`.
//! 2. `refresh`: the plugin refreshing (`AUTHPLUG_REASON=rejected`, so it
//!    trades its refresh token and verifies the new ID token) versus a raw
//!    `curl` refresh and the Python example plugin doing the same refresh.
//! 3. The binary's size and the peak RSS of both paths, printed at the end.
//!
//! Every contender is spawned the way a host spawns a plugin, with no shell:
//! `std::process::Command`, stdin = the state file, fd 3 = /dev/null (set in
//! a `pre_exec` hook, like the protocol crate's host), stdout and stderr =
//! /dev/null, and waited for.
//!
//! Run: `cargo bench -p authplug-oidc --bench oidc` (what
//! `plugins/oidc/benches/run.sh` does). `AUTHPLUG_OIDC_BENCH_BEFORE=PATH`
//! adds another build of the plugin as a contender, for before/after
//! figures from one run.

use std::ffi::OsString;
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::os::fd::{AsRawFd, BorrowedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::Duration;

use criterion::{Criterion, SamplingMode};
use nix::fcntl::{fcntl, FcntlArg, FdFlag};

const PLUGIN: &str = env!("CARGO_BIN_EXE_authplug-oidc");
const STATE_FD: RawFd = 3;

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("the repository root")
}

/// The dev IdP; killed on drop (it also exits when its stdin closes).
struct DevIdp {
    child: Child,
    _stdin: ChildStdin,
    issuer: String,
}

impl DevIdp {
    fn start(root: &Path, work: &Path) -> DevIdp {
        let setup = Command::new(root.join("scripts/setup"))
            .env("AUTHPLUG_SETUP_NPM_ONLY", "1")
            .status()
            .expect("scripts/setup runs");
        assert!(setup.success(), "scripts/setup (npm part) failed");
        let stderr = File::create(work.join("idp.err")).expect("idp.err");
        let mut child = Command::new("node")
            .arg(root.join("scripts/dev-idp/idp.mjs"))
            .arg(r#"{"rotateRefreshToken":false}"#)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("node runs");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("piped"))
            .read_line(&mut line)
            .expect("the IdP's stdout");
        let Some(issuer) = line.trim().strip_prefix("ISSUER ") else {
            let _ = child.kill();
            let err = std::fs::read_to_string(work.join("idp.err")).unwrap_or_default();
            panic!("the dev IdP did not start: {err}");
        };
        DevIdp {
            issuer: issuer.to_owned(),
            _stdin: child.stdin.take().expect("piped"),
            child,
        }
    }
}

impl Drop for DevIdp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A program and how a host would start it.
struct Contender {
    name: String,
    program: OsString,
    args: Vec<OsString>,
    env: Vec<(&'static str, &'static str)>,
    stdin: PathBuf,
}

impl Contender {
    fn new(name: &str, program: impl Into<OsString>, stdin: &Path) -> Contender {
        Contender {
            name: name.to_owned(),
            program: program.into(),
            args: Vec::new(),
            env: Vec::new(),
            stdin: stdin.to_owned(),
        }
    }

    fn args<I: IntoIterator<Item = S>, S: Into<OsString>>(mut self, args: I) -> Contender {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    fn env(mut self, name: &'static str, value: &'static str) -> Contender {
        self.env.push((name, value));
        self
    }

    /// The command, `wrapper` (e.g. `/usr/bin/time`) in front if given:
    /// stdin = the state file, fd 3 = `fd3`, stdout = `stdout`.
    fn command(&self, wrapper: &[&str], fd3: RawFd, stdout: Stdio) -> Command {
        let mut command = match wrapper.split_first() {
            Some((first, rest)) => {
                let mut command = Command::new(first);
                command.args(rest).arg(&self.program);
                command
            }
            None => Command::new(&self.program),
        };
        command
            .args(&self.args)
            .env_remove("AUTHPLUG_REASON")
            .envs(self.env.iter().copied())
            .stdin(File::open(&self.stdin).expect("the state file"))
            .stdout(stdout)
            .stderr(Stdio::null());
        // SAFETY: dup2 and fcntl are async-signal-safe and touch no memory;
        // `fd3` stays open in the parent for the whole spawn.
        unsafe {
            command.pre_exec(move || {
                let source = BorrowedFd::borrow_raw(fd3);
                if fd3 == STATE_FD {
                    // dup2 onto itself would keep close-on-exec set.
                    fcntl(source, FcntlArg::F_SETFD(FdFlag::empty()))?;
                } else {
                    let fd = nix::unistd::dup2_raw(source, STATE_FD)?;
                    std::mem::forget(fd); // fd 3 is the child's now
                }
                Ok(())
            });
        }
        command
    }

    fn run(&self, fd3: RawFd) {
        let status = self
            .command(&[], fd3, Stdio::null())
            .status()
            .unwrap_or_else(|e| panic!("{}: {e}", self.name));
        assert!(status.success(), "{} failed: {status}", self.name);
    }

    /// Runs once with stdout and fd 3 captured; panics with its stderr if it
    /// fails.
    fn output(&self, _work: &Path) -> (String, Vec<u8>) {
        // fd 3 is a pipe, as a host's is: the SDK writes state to nothing
        // else (PROTOCOL.md rule 4).
        let (reader, writer) =
            nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).expect("a pipe for fd 3");
        let mut command = self.command(&[], writer.as_raw_fd(), Stdio::piped());
        let child = command
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("{}: {e}", self.name));
        drop(writer);
        let mut state = Vec::new();
        std::io::Read::read_to_end(&mut File::from(reader), &mut state).expect("fd 3");
        let output = child
            .wait_with_output()
            .unwrap_or_else(|e| panic!("{}: {e}", self.name));
        assert!(
            output.status.success(),
            "{} failed ({}): {}",
            self.name,
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
        (
            String::from_utf8(output.stdout).expect("UTF-8 token"),
            state,
        )
    }

    /// Peak RSS in KiB, from GNU time.
    fn peak_rss_kib(&self, work: &Path, fd3: RawFd) -> u64 {
        let out = work.join("time.out");
        let out_arg = out.to_str().expect("UTF-8 temp path");
        let status = self
            .command(
                &["/usr/bin/time", "-f", "%M", "-o", out_arg],
                fd3,
                Stdio::null(),
            )
            .status()
            .expect("/usr/bin/time runs");
        assert!(status.success(), "{} under /usr/bin/time failed", self.name);
        let text = std::fs::read_to_string(&out).expect("time.out");
        text.trim()
            .parse()
            .unwrap_or_else(|_| panic!("{}: /usr/bin/time said {text:?}", self.name))
    }
}

fn bench_group(c: &mut Criterion, group: &str, contenders: &[Contender], fd3: RawFd, slow: bool) {
    let mut group = c.benchmark_group(group);
    if slow {
        group
            .sampling_mode(SamplingMode::Flat)
            .sample_size(20)
            .measurement_time(Duration::from_secs(10));
    }
    for contender in contenders {
        group.bench_function(&contender.name, |b| b.iter(|| contender.run(fd3)));
    }
    group.finish();
}

fn json_str<'a>(value: &'a serde_json::Value, pointer: &str) -> &'a str {
    value
        .pointer(pointer)
        .and_then(serde_json::Value::as_str)
        .unwrap_or_else(|| panic!("no {pointer} in the plugin's state"))
}

fn main() {
    let mut criterion = Criterion::default().configure_from_args();
    let root = repo_root();
    let work = std::env::temp_dir().join(format!("authplug-oidc-bench-{}", std::process::id()));
    std::fs::create_dir_all(&work).expect("a work directory");
    let dev_null = File::options()
        .write(true)
        .open("/dev/null")
        .expect("/dev/null");
    let fd3 = dev_null.as_raw_fd();
    let empty = work.join("empty");
    std::fs::write(&empty, b"").expect("empty state file");

    let idp = DevIdp::start(&root, &work);
    let issuer = idp.issuer.clone();
    let plugin_args = ["--issuer", &issuer, "--client-id", "demo"];
    let browser = format!(
        "node {}",
        root.join("scripts/dev-idp/login-http.mjs").display()
    );
    let plugins: Vec<(String, OsString)> = std::iter::once(("authplug-oidc".into(), PLUGIN.into()))
        .chain(
            std::env::var_os("AUTHPLUG_OIDC_BENCH_BEFORE")
                .map(|before| ("authplug-oidc (before)".into(), before)),
        )
        .collect();

    // One login through the HTTP login driver gives the state.
    let login = Contender::new("login", PLUGIN, &empty)
        .args(plugin_args)
        .args(["--browser-command", &browser, "--login-timeout", "20"]);
    let (_, state) = login.output(&work);
    let state_path = work.join("state");
    std::fs::write(&state_path, &state).expect("state file");
    let parsed: serde_json::Value = serde_json::from_slice(&state).expect("JSON state");
    let refresh_token = json_str(&parsed, "/refresh_token").to_owned();
    let id_token = json_str(&parsed, "/id_token/value").to_owned();
    let access_token = json_str(&parsed, "/access_token/value").to_owned();
    let token_endpoint = json_str(&parsed, "/provider/discovery/token_endpoint").to_owned();
    let py_state = work.join("py-state");
    std::fs::write(
        &py_state,
        serde_json::json!({ "refresh_token": refresh_token }).to_string(),
    )
    .expect("py-state");
    let form = work.join("form");
    std::fs::write(
        &form,
        format!("grant_type=refresh_token&client_id=demo&refresh_token={refresh_token}"),
    )
    .expect("form");

    // The refresh path, while the IdP runs.
    let mut refresh = vec![Contender::new("curl refresh", "curl", &empty).args([
        "-sSf".into(),
        "-o".into(),
        "/dev/null".into(),
        "--data-binary".into(),
        OsString::from(format!("@{}", form.display())),
        token_endpoint.clone().into(),
    ])];
    for (name, program) in &plugins {
        refresh.push(
            Contender::new(&format!("{name} refresh"), program, &state_path)
                .args(plugin_args)
                .env("AUTHPLUG_REASON", "rejected")
                .env("AUTHPLUG_INTERACTIVE", "0"),
        );
    }
    refresh.push(
        Contender::new("python example refresh", "python3", &py_state).args([
            root.join("plugins/examples/python/refresh_token.py").into(),
            OsString::from("--token-endpoint"),
            token_endpoint.clone().into(),
            OsString::from("--client-id"),
            OsString::from("demo"),
        ]),
    );
    // Each contender really refreshes: a new access token (random, unlike an
    // ID token signed in the same second) in the new state on fd 3.
    refresh[0].run(fd3);
    for contender in &refresh[1..] {
        let (token, new_state) = contender.output(&work);
        let new_state: serde_json::Value = serde_json::from_slice(&new_state).expect("JSON");
        // The Python example keeps only the refresh token; it prints the
        // access token.
        let token = token.trim_end();
        let new_access = new_state
            .pointer("/access_token/value")
            .and_then(serde_json::Value::as_str)
            .unwrap_or(token);
        assert!(
            !token.is_empty() && !new_access.is_empty() && new_access != access_token,
            "{} did not refresh",
            contender.name
        );
    }
    let refresh_rss = refresh[1].peak_rss_kib(&work, fd3);
    bench_group(&mut criterion, "refresh", &refresh, fd3, true);

    // The valid-token path, with the IdP gone: it must not need it.
    drop(idp);
    let mut valid = vec![Contender::new("/bin/true", "/bin/true", &state_path)
        .env("AUTHPLUG_REASON", "refresh")
        .env("AUTHPLUG_INTERACTIVE", "0")];
    for (name, program) in &plugins {
        // As a host runs it: a host that gives no reason (epithet) gets a
        // fresh token instead (PROTOCOL.md rule 1), which this path is not.
        let contender = Contender::new(&format!("{name} valid token"), program, &state_path)
            .args(plugin_args)
            .env("AUTHPLUG_REASON", "refresh")
            .env("AUTHPLUG_INTERACTIVE", "0");
        let (token, new_state) = contender.output(&work);
        // No values in these messages: they are tokens.
        assert!(token.trim_end() == id_token, "{name} printed another token");
        assert!(new_state == state, "{name} changed the state");
        valid.push(contender);
    }
    let valid_rss = valid[1].peak_rss_kib(&work, fd3);
    let true_rss = valid[0].peak_rss_kib(&work, fd3);
    bench_group(&mut criterion, "valid_token", &valid, fd3, false);

    criterion.final_summary();
    let bytes = std::fs::metadata(PLUGIN).expect("the plugin binary").len();
    println!();
    println!("binary {PLUGIN}: {bytes} bytes");
    println!(
        "peak RSS (/usr/bin/time -f %M): valid-token path {valid_rss} KiB, refresh path \
         {refresh_rss} KiB, /bin/true {true_rss} KiB"
    );
    let _ = std::fs::remove_dir_all(&work);
}
