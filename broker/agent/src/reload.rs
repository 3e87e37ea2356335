//! The agent's profiles as its config file says now: the file is looked at
//! (one `stat`) before each request, and read again when it changed, so an
//! edit needs no restart. Profiles left as they were keep their broker
//! (token, state, runs); an edited one starts afresh, a removed one is
//! forgotten. A file that does not parse leaves the profiles as they were
//! (and says why in the log) until it is fixed.
//!
//! What it is not: it does not watch with inotify (a request is the only
//! moment the profiles matter), and a config that is not a regular file (a
//! pipe, `--config <(gpg -d ...)`, `/dev/null`) is read once.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::SystemTime;

use crate::config::{ConfigFile, Profiles};

/// The profiles of the moment, and where they come from.
pub struct LiveProfiles {
    current: RwLock<Arc<Profiles>>,
    source: Option<Source>,
}

struct Source {
    path: PathBuf,
    flags: Vec<String>,
    /// The file as last read (`None`: it did not exist).
    seen: Mutex<Option<Stamp>>,
}

/// What tells one version of the file from the next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    modified: Option<SystemTime>,
    len: u64,
    inode: u64,
    device: u64,
}

fn stamp(path: &Path) -> Option<Stamp> {
    use std::os::unix::fs::MetadataExt;
    let metadata = std::fs::metadata(path).ok()?;
    Some(Stamp {
        modified: metadata.modified().ok(),
        len: metadata.len(),
        inode: metadata.ino(),
        device: metadata.dev(),
    })
}

impl LiveProfiles {
    /// Profiles that never change.
    pub fn fixed(profiles: Profiles) -> LiveProfiles {
        LiveProfiles {
            current: RwLock::new(Arc::new(profiles)),
            source: None,
        }
    }

    /// `profiles`, as just built from the file at `path` and `flags`, read
    /// again whenever the file changes (if it is a regular file, or does
    /// not exist yet).
    pub fn watching(profiles: Profiles, path: &Path, flags: &[String]) -> LiveProfiles {
        let regular = match std::fs::metadata(path) {
            Ok(metadata) => metadata.is_file(),
            Err(error) => error.kind() == std::io::ErrorKind::NotFound,
        };
        LiveProfiles {
            current: RwLock::new(Arc::new(profiles)),
            source: regular.then(|| Source {
                path: path.to_owned(),
                flags: flags.to_vec(),
                seen: Mutex::new(stamp(path)),
            }),
        }
    }

    /// The profiles as the file says now.
    pub fn current(&self) -> Arc<Profiles> {
        if let Some(source) = &self.source {
            self.reload_if_changed(source);
        }
        Arc::clone(&self.current.read().unwrap_or_else(|e| e.into_inner()))
    }

    fn reload_if_changed(&self, source: &Source) {
        let now = stamp(&source.path);
        let mut seen = source.seen.lock().unwrap_or_else(|e| e.into_inner());
        if *seen == now {
            return;
        }
        *seen = now;
        let previous = self
            .current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let rebuilt = ConfigFile::load(&source.path, false)
            .and_then(|file| Profiles::rebuild(&file, &source.flags, Some(&previous)));
        match rebuilt {
            Ok(profiles) => {
                tracing::info!(config = %source.path.display(), profiles = profiles.len(), "config file changed; profiles reloaded");
                *self.current.write().unwrap_or_else(|e| e.into_inner()) =
                    Arc::new(profiles.from_file(&source.path));
            }
            Err(error) => {
                tracing::warn!(%error, "config file changed but cannot be used; the profiles stay as they were until it is fixed");
            }
        }
    }
}
