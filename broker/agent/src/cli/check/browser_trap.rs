//! A browser that only tells on whoever opens it: `BROWSER` and the usual
//! openers (`xdg-open`, `open`, `sensible-browser`, ...) first on `PATH`,
//! each leaving a mark. A plugin run that may not interact
//! (`AUTHPLUG_INTERACTIVE=0`) must never open a browser (PROTOCOL.md rule
//! 1); `authplug check` gives such runs this one.

use std::ffi::OsString;
use std::io;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::PathBuf;

/// The openers a plugin (or its language's library) may call.
const OPENERS: &[&str] = &[
    "xdg-open",
    "wslview",
    "firefox",
    "chromium",
    "chromium-browser",
    "google-chrome",
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
    dir: PathBuf,
    mark: PathBuf,
}

impl Drop for BrowserTrap {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A new directory only this user may enter, under the system's temporary
/// one. (Made here rather than with the `tempfile` crate, which would
/// grow every `authplug` start by the code it brings.)
fn private_dir() -> io::Result<PathBuf> {
    let base = std::env::temp_dir();
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or_default();
    for attempt in 0..16u32 {
        let dir = base.join(format!(
            "authplug-check-browser-{}-{nanos}-{attempt}",
            std::process::id()
        ));
        match std::fs::DirBuilder::new().mode(0o700).create(&dir) {
            Ok(()) => return Ok(dir),
            Err(error) if error.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(error) => return Err(error),
        }
    }
    Err(io::Error::new(
        io::ErrorKind::AlreadyExists,
        "no free name for a temporary directory",
    ))
}

impl BrowserTrap {
    /// Writes the openers into a private temporary directory.
    pub fn set() -> io::Result<BrowserTrap> {
        let dir = private_dir()?;
        // Removed when dropped, also if a write below fails.
        let trap = BrowserTrap {
            mark: dir.join("opened"),
            dir,
        };
        let script = format!(
            "#!/bin/sh\nprintf '%s\\n' \"$*\" >> '{}'\nexit 0\n",
            trap.mark.display().to_string().replace('\'', "'\\''")
        );
        for name in OPENERS.iter().chain(["browser"].iter()) {
            let path = trap.dir.join(name);
            std::fs::write(&path, &script)?;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o700))?;
        }
        Ok(trap)
    }

    /// The environment of a run that may not interact: `BROWSER`, and the
    /// openers first on `PATH`.
    pub fn env(&self) -> Vec<(OsString, OsString)> {
        let mut path = OsString::from(&self.dir);
        path.push(":");
        path.push(std::env::var_os("PATH").unwrap_or_else(|| "/usr/bin:/bin".into()));
        vec![
            ("BROWSER".into(), self.dir.join("browser").into()),
            ("PATH".into(), path),
            // No display to open a window on, no session bus to ask.
            ("DISPLAY".into(), OsString::new()),
            ("WAYLAND_DISPLAY".into(), OsString::new()),
            ("DBUS_SESSION_BUS_ADDRESS".into(), OsString::new()),
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
