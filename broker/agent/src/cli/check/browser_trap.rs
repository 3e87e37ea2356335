//! A browser that only tells on whoever opens it: `BROWSER` and the usual
//! openers (`xdg-open`, `open`, `sensible-browser`, ...) first on `PATH`,
//! each leaving a mark. A plugin run that may not interact
//! (`AUTHPLUG_INTERACTIVE=0`) must never open a browser (PROTOCOL.md rule
//! 1); `authplug check` gives such runs this one.

use std::ffi::OsString;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

/// The openers a plugin (or its language's library) may call.
const OPENERS: &[&str] = &[
    "xdg-open",
    "open",
    "sensible-browser",
    "x-www-browser",
    "www-browser",
    "gnome-open",
    "kde-open",
    "gio",
];

/// The trap's directory (removed when dropped) and its mark.
pub struct BrowserTrap {
    dir: tempfile::TempDir,
    mark: PathBuf,
}

impl BrowserTrap {
    /// Writes the openers into a private temporary directory.
    pub fn set() -> io::Result<BrowserTrap> {
        let dir = tempfile::Builder::new()
            .prefix("authplug-check-browser")
            .tempdir()?;
        let mark = dir.path().join("opened");
        let script = format!(
            "#!/bin/sh\nprintf '%s\\n' \"$*\" >> '{}'\nexit 0\n",
            mark.display().to_string().replace('\'', "'\\''")
        );
        for name in OPENERS.iter().chain(["browser"].iter()) {
            let path = dir.path().join(name);
            std::fs::write(&path, &script)?;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o700))?;
        }
        Ok(BrowserTrap { dir, mark })
    }

    /// The environment of a run that may not interact: `BROWSER`, and the
    /// openers first on `PATH`.
    pub fn env(&self) -> Vec<(OsString, OsString)> {
        let mut path = OsString::from(self.dir.path());
        if let Some(rest) = std::env::var_os("PATH") {
            path.push(":");
            path.push(rest);
        }
        vec![
            ("BROWSER".into(), self.dir.path().join("browser").into()),
            ("PATH".into(), path),
        ]
    }

    /// What was opened since the last look (the addresses, one a line),
    /// if anything was; the mark is cleared.
    pub fn opened(&self) -> Option<String> {
        let opened = std::fs::read_to_string(&self.mark).ok()?;
        let _ = std::fs::remove_file(&self.mark);
        // Openers run detached may still be writing: what is there is enough.
        Some(opened.trim().to_owned())
    }
}
