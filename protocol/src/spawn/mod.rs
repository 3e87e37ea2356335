//! The plugin process from start to reaping: started with `posix_spawn` in
//! its own process group with the pipes on 0 to 3 and nothing else (rules
//! 1, 7 and 9), its exit watched without reaping it, the TERM, grace and
//! KILL that stop it, and the reaping (rule 7).
//!
//! Why not `tokio::process`: mapping fd 3 and closing the rest needs a
//! `pre_exec` hook there, and any hook makes the standard library `fork()`
//! the whole host instead of using `posix_spawn` (a vfork), which costs a
//! third of a plugin run for a small plugin (see BENCHMARKS.md).
//!
//! Why the exit is observed with `WNOWAIT` and the leader reaped only after
//! the last signal: an unreaped leader keeps its pid, and with it the
//! process group id, from being reused, so a `killpg` sent after the
//! plugin exited (the drain window's KILL, rule 8; the KILL after the
//! grace) can only reach the plugin's own group, never a stranger that got
//! the same number.

mod pipes;
mod posix;
mod process;
mod terminal;

pub(crate) use pipes::{receiver, sender, set_nonblocking};
pub(crate) use posix::{spawn, HostPipes, Spawn};
pub(crate) use process::PluginProcess;
pub(crate) use terminal::Terminal;
