//! What `authplug proxy` costs: requests through it ÷ the same requests
//! sent straight to the same local upstream with the header added by the
//! client, side by side (interleaved rounds). Prints a report; numbers go
//! to BENCHMARKS.md.
//!
//! `cargo bench -p authplug-agent --bench proxy`
//!
//! Two upstreams. A real MCP server (scripts/mcp/server.py, the MCP Python
//! SDK's FastMCP, accepting one static token), called by the real MCP
//! client (`tools/list` in one session), direct with the header and
//! through the proxy: what an MCP user sees. Then, to show the hop's own
//! cost, an upstream that costs nothing:
//! The upstream is a small HTTP/1 server in this process that checks the
//! bearer token and answers `GET /small` with two bytes and `GET /big` with
//! 10 MiB in 64 KiB chunks. The proxy is the real `authplug proxy`
//! process, its broker running the shell example plugin (its token is
//! cached after the first request). Goals: ≤ 1.2× on small requests (the
//! median of per-round medians), throughput within 10% on the 10 MiB body.
//! (Against an upstream that answers in microseconds from the client's own
//! thread, a second hop cannot come near 1.2×: that part reports what the
//! hop adds.)

use std::convert::Infallible;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::Frame;
use hyper_util::rt::TokioIo;

const AUTHPLUG: &str = env!("CARGO_BIN_EXE_authplug");
const TOKEN: &str = "bench-token";
const BIG: usize = 10 * 1024 * 1024;
const CHUNK: usize = 64 * 1024;
const ROUNDS: usize = 15;
const SMALL_PER_ROUND: usize = 200;
const BIG_ROUNDS: usize = 8;

type Body = http_body_util::combinators::BoxBody<Bytes, Infallible>;

async fn upstream(
    request: hyper::Request<hyper::body::Incoming>,
) -> Result<hyper::Response<Body>, Infallible> {
    let authorized = request
        .headers()
        .get(hyper::header::AUTHORIZATION)
        .is_some_and(|v| v.as_bytes() == format!("Bearer {TOKEN}").as_bytes());
    let mut response = if !authorized {
        let mut r = hyper::Response::new(Full::new(Bytes::from_static(b"no")).boxed());
        *r.status_mut() = hyper::StatusCode::UNAUTHORIZED;
        r
    } else if request.uri().path() == "/big" {
        let chunk = Bytes::from(vec![b'x'; CHUNK]);
        let chunks = futures_util::stream::iter(
            (0..BIG / CHUNK).map(move |_| Ok::<_, Infallible>(Frame::data(chunk.clone()))),
        );
        hyper::Response::new(BodyExt::boxed(StreamBody::new(chunks)))
    } else {
        hyper::Response::new(Full::new(Bytes::from_static(b"ok")).boxed())
    };
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("text/plain"),
    );
    Ok(response)
}

async fn serve_upstream() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let _ = stream.set_nodelay(true);
            tokio::spawn(
                hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), hyper::service::service_fn(upstream)),
            );
        }
    });
    format!("http://{address}")
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

async fn small_round(client: &reqwest::Client, url: &str, bearer: bool) -> f64 {
    let started = Instant::now();
    for _ in 0..SMALL_PER_ROUND {
        let mut request = client.get(url);
        if bearer {
            request = request.bearer_auth(TOKEN);
        }
        let response = request.send().await.unwrap();
        assert!(response.status().is_success(), "{}", response.status());
        response.bytes().await.unwrap();
    }
    started.elapsed().as_secs_f64() / SMALL_PER_ROUND as f64
}

async fn big_round(client: &reqwest::Client, url: &str, bearer: bool) -> f64 {
    let started = Instant::now();
    let mut request = client.get(url);
    if bearer {
        request = request.bearer_auth(TOKEN);
    }
    let mut response = request.send().await.unwrap();
    assert!(response.status().is_success());
    let mut received = 0;
    while let Some(chunk) = response.chunk().await.unwrap() {
        received += chunk.len();
    }
    assert_eq!(received, BIG);
    BIG as f64 / started.elapsed().as_secs_f64() / (1024.0 * 1024.0)
}

/// The proxy process for `upstream`, once it has written its URL.
// The child goes back to the caller, which kills and waits for it.
#[allow(clippy::zombie_processes)]
fn start_proxy(upstream: &str, dir: &std::path::Path, name: &str) -> (std::process::Child, String) {
    let url_file = dir.join(name);
    let plugin = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../plugins/examples/shell/env-token.sh");
    let mut proxy = Command::new(AUTHPLUG)
        .args(["proxy", "--upstream", upstream, "--plugin"])
        .arg(plugin)
        .arg("--url-file")
        .arg(&url_file)
        .env("EXAMPLE_TOKEN", TOKEN)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(url) = std::fs::read_to_string(&url_file) {
            return (proxy, url.trim().to_owned());
        }
        if Instant::now() > deadline {
            let _ = proxy.kill();
            let _ = proxy.wait();
            panic!("the proxy wrote no URL");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The real MCP server and client, if `scripts/setup` installed them.
fn mcp_server_and_client(dir: &std::path::Path) {
    let scripts = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/mcp");
    let python = scripts.join(".venv/bin/python");
    if !python.exists() {
        println!(
            "MCP server: skipped ({} is missing: run scripts/setup)",
            python.display()
        );
        return;
    }
    let mut server = Command::new(&python)
        .arg(scripts.join("server.py"))
        .args([&format!("static:{TOKEN}"), "https://bench.example"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(server.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    let url = line.trim().strip_prefix("URL ").unwrap().to_owned();
    let (mut proxy, proxied) = start_proxy(&url, dir, "mcp.url");
    let calls = "time-list:100";
    let time = |target: &str, header: bool| -> f64 {
        let mut command = Command::new(&python);
        command.arg(scripts.join("client.py")).arg(target);
        if header {
            command.args(["--header", &format!("Authorization: Bearer {TOKEN}")]);
        }
        let output = command.arg(calls).output().unwrap();
        let text = String::from_utf8_lossy(&output.stdout);
        let value: f64 = text
            .split("\"median\": ")
            .nth(1)
            .and_then(|rest| rest.trim_end().trim_end_matches('}').parse().ok())
            .unwrap_or_else(|| panic!("no timing from the MCP client: {text}"));
        value
    };
    let (mut direct, mut through, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..7 {
        let d = time(&url, true);
        let p = time(&proxied, false);
        direct.push(d);
        through.push(p);
        ratios.push(p / d);
    }
    println!(
        "MCP tools/list: direct {:.0} µs, through the proxy {:.0} µs, ratio {:.2}× (median of 7 sessions of 100 calls; goal ≤ 1.2×)",
        median(direct) * 1e6,
        median(through) * 1e6,
        median(ratios)
    );
    let _ = proxy.kill();
    let _ = proxy.wait();
    let _ = server.kill();
    let _ = server.wait();
}

fn main() {
    let dir = tempfile::tempdir().unwrap();
    mcp_server_and_client(dir.path());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let upstream = serve_upstream().await;
        let (mut proxy, proxied) = start_proxy(&upstream, dir.path(), "url");
        let client = reqwest::Client::new();
        // Warm up both paths (connections, the proxy's first token).
        small_round(&client, &format!("{upstream}/small"), true).await;
        small_round(&client, &format!("{proxied}/small"), false).await;

        let mut direct = Vec::new();
        let mut through = Vec::new();
        let mut ratios = Vec::new();
        for _ in 0..ROUNDS {
            let d = small_round(&client, &format!("{upstream}/small"), true).await;
            let p = small_round(&client, &format!("{proxied}/small"), false).await;
            direct.push(d);
            through.push(p);
            ratios.push(p / d);
        }
        println!(
            "small requests: direct {:.0} µs, through the proxy {:.0} µs, ratio {:.2}× (median of {ROUNDS} rounds of {SMALL_PER_ROUND}; goal ≤ 1.2×)",
            median(direct) * 1e6,
            median(through) * 1e6,
            median(ratios)
        );

        let mut direct = Vec::new();
        let mut through = Vec::new();
        for _ in 0..BIG_ROUNDS {
            direct.push(big_round(&client, &format!("{upstream}/big"), true).await);
            through.push(big_round(&client, &format!("{proxied}/big"), false).await);
        }
        let (d, p) = (median(direct), median(through));
        println!(
            "10 MiB streamed: direct {d:.0} MiB/s, through the proxy {p:.0} MiB/s, {:.0}% of direct (median of {BIG_ROUNDS}; goal ≥ 90%)",
            p / d * 100.0
        );
        let _ = proxy.kill();
        let _ = proxy.wait();
    });
}
