//! The trivial compiled plugin the benchmarks run (benches/host.rs).
//!
//! `bench_plugin token`: prints a token and exits, nothing else.
//! `bench_plugin copy`: copies stdin (the state) to fd 3, then prints a token.
//! Deliberately without the SDK's buffering, so the figures measure the host.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::FromRawFd;

fn main() -> io::Result<()> {
    match std::env::args().nth(1).as_deref() {
        Some("token") => {}
        Some("copy") => {
            // SAFETY: under a host fd 3 is open and nothing else owns it.
            let mut state_out = unsafe { File::from_raw_fd(3) };
            // A plain read/write loop, as `cat` does (io::copy would splice).
            let mut stdin = io::stdin().lock();
            let mut buf = vec![0u8; 128 * 1024];
            loop {
                let n = stdin.read(&mut buf)?;
                if n == 0 {
                    break;
                }
                state_out.write_all(&buf[..n])?;
            }
        }
        _ => {
            eprintln!("usage: bench_plugin token|copy");
            std::process::exit(2);
        }
    }
    io::stdout().write_all(b"bench-token\n")
}
