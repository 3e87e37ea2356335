//! Keeping a process that holds tokens and states out of core dumps and
//! away from same-user debuggers.
//!
//! A crashed agent's core file held a token and a state. Both the agent and
//! a plugin such as authplug-oidc call [`forbid_core_dumps`] first thing:
//! `PR_SET_DUMPABLE` 0 (no core file, and other processes of the same user
//! can no longer `ptrace` it or read its `/proc/PID/mem`) and `RLIMIT_CORE`
//! 0 (for systems where a core handler ignores the dumpable flag). Programs
//! it starts are dumpable again after their `exec`, as the kernel does.

/// Makes this process non-dumpable and its core size limit 0. Returns what
/// could not be done (nothing, normally), for a log line; never fails the
/// program.
pub fn forbid_core_dumps() -> Result<(), String> {
    let mut failed = Vec::new();
    #[cfg(target_os = "linux")]
    if let Err(errno) = nix::sys::prctl::set_dumpable(false) {
        failed.push(format!("PR_SET_DUMPABLE: {errno}"));
    }
    if let Err(errno) =
        nix::sys::resource::setrlimit(nix::sys::resource::Resource::RLIMIT_CORE, 0, 0)
    {
        failed.push(format!("RLIMIT_CORE: {errno}"));
    }
    if failed.is_empty() {
        Ok(())
    } else {
        Err(failed.join(", "))
    }
}
