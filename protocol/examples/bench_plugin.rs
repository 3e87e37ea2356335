//! The trivial compiled plugin the benchmarks run (benches/host.rs).
//!
//! `bench_plugin token`: prints a token and exits, nothing else.
//! `bench_plugin copy`: copies stdin (the state) to fd 3, then prints a token.
//! Deliberately without the SDK's buffering, so the figures measure the host.

use std::fs::File;
use std::io::{self, Write};
use std::os::fd::FromRawFd;

fn main() -> io::Result<()> {
    match std::env::args().nth(1).as_deref() {
        Some("token") => {}
        Some("copy") => {
            // SAFETY: under a host fd 3 is open and nothing else owns it.
            let mut state_out = unsafe { File::from_raw_fd(3) };
            io::copy(&mut io::stdin().lock(), &mut state_out)?;
        }
        _ => {
            eprintln!("usage: bench_plugin token|copy");
            std::process::exit(2);
        }
    }
    io::stdout().write_all(b"bench-token\n")
}
