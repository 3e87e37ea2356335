//! What the tests of every authplug crate share about processes, in one
//! place: whether a pid still runs, and its state letter. A dev-dependency
//! only; nothing here is published, and it depends on no authplug crate, so
//! any of them (the protocol crate included) can use it.

/// The state letter of `pid` in /proc (`R`, `S`, `Z` for a zombie...), or
/// `None` once it has left the process table.
pub fn process_state(pid: i32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The state letter follows the parenthesised command name, which may
    // itself hold parentheses: the last `)` ends it.
    stat.rsplit(')')
        .next()
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|state| state.chars().next())
}

/// Whether `pid` still runs. A zombie (`Z`) or a dying process (`X`)
/// counts as gone: it runs nothing and holds nothing, and whether it is
/// reaped depends on who its parent is.
pub fn is_running(pid: i32) -> bool {
    !matches!(process_state(pid), None | Some('Z') | Some('X'))
}

/// Whether `pid` has left the process table altogether (reaped).
pub fn is_reaped(pid: i32) -> bool {
    !std::path::Path::new(&format!("/proc/{pid}")).exists()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_runs_and_a_reaped_child_does_not() {
        assert!(is_running(std::process::id() as i32));
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id() as i32;
        child.wait().unwrap();
        assert!(!is_running(pid) && is_reaped(pid));
    }
}
