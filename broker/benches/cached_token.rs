//! In-process cached `Broker::token()`, against cloning a token of the same
//! size (the least any cached read must do), side by side.
//!
//! `cargo bench -p authplug-broker --bench cached_token`

use std::future::Future;
use std::os::unix::fs::PermissionsExt;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

use authplug_broker::{Broker, BrokerOptions, PluginCommand, Token};
use criterion::{criterion_group, criterion_main, Criterion};

/// A JWT-shaped token of typical size, with an `exp` far ahead so the cached
/// path includes the expiry check.
const TOKEN: &str = "eyJhbGciOiJSUzI1NiIsImtpZCI6IjEifQ.eyJzdWIiOiJiZW5jaCIsImV4cCI6NDEwMjQ0NDgwMCwiYXVkIjoiYXBpIiwiaXNzIjoiaHR0cHM6Ly9pZC5leGFtcGxlLmNvbSJ9.c2lnbmF0dXJlLXNpZ25hdHVyZS1zaWduYXR1cmUtc2lnbmF0dXJlLXNpZ25hdHVyZS1zaWduYXR1cmU";

/// The cached path completes on its first poll, so nothing ever wakes it.
struct NoWake;

impl Wake for NoWake {
    fn wake(self: Arc<Self>) {}
}

fn cached_token(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temp dir");
    let plugin = dir.path().join("plugin.sh");
    std::fs::write(&plugin, format!("#!/bin/sh\necho {TOKEN}\n")).expect("plugin");
    std::fs::set_permissions(&plugin, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let broker = Broker::new(PluginCommand::new(&plugin), BrokerOptions::default());
    let first = runtime.block_on(broker.token()).expect("first run");
    assert_eq!(first.as_bytes(), TOKEN.as_bytes());

    let mut group = c.benchmark_group("cached_token");
    group.bench_function("broker.token() cached", |b| {
        b.iter(|| runtime.block_on(broker.token()).expect("cached"))
    });
    // The same call without a runtime: the cached path never awaits, so one
    // poll completes it.
    let waker = Waker::from(Arc::new(NoWake));
    group.bench_function("broker.token() cached, polled once", |b| {
        b.iter(|| {
            let mut call = std::pin::pin!(broker.token());
            let mut context = Context::from_waker(&waker);
            match call.as_mut().poll(&mut context) {
                Poll::Ready(token) => token.expect("cached"),
                Poll::Pending => panic!("the cached path awaited"),
            }
        })
    });
    let baseline = Token::from(TOKEN);
    group.bench_function("baseline: Token::clone", |b| b.iter(|| baseline.clone()));
    group.finish();
}

criterion_group!(benches, cached_token);
criterion_main!(benches);
