//! The agent's profiles as its config file says now, so that an edit needs
//! no restart. The file is looked at (one `stat`) at a request, at most
//! every [`RECHECK`], so that a busy agent does no I/O per request; and at
//! once when a request names a profile the agent does not have (the user
//! who just added it). It is read again when it changed. Profiles left as
//! they were keep their broker (token, state, runs), whatever happened to
//! the tools' own settings (`ToolSettings`); one whose login was edited
//! (`LoginConfig`) starts afresh, a removed one is forgotten. A file that
//! does not parse leaves the profiles as they were (and says why in the
//! log) until it is fixed.
//!
//! What it is not: it does not watch with inotify (a request is the only
//! moment the profiles matter), and a config that is not a regular file (a
//! pipe, `--config <(gpg -d ...)`, `/dev/null`) is read once.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, RwLock, TryLockError};
use std::time::{Duration, Instant, SystemTime};

use crate::config::{ConfigFile, Profiles};

/// How long a look at the config file holds for requests that find what
/// they ask for.
pub const RECHECK: Duration = Duration::from_millis(250);

/// The profiles of the moment, and where they come from.
pub struct LiveProfiles {
    /// As last read.
    profiles: RwLock<Arc<Profiles>>,
    source: Option<Source>,
}

struct Source {
    path: PathBuf,
    flags: Vec<String>,
    seen: Mutex<Seen>,
}

/// The last look at the file.
struct Seen {
    /// The file as last read (`None`: it did not exist).
    stamp: Option<Stamp>,
    at: Instant,
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

impl From<Profiles> for LiveProfiles {
    fn from(profiles: Profiles) -> LiveProfiles {
        LiveProfiles::fixed(profiles)
    }
}

impl LiveProfiles {
    /// Profiles that never change.
    pub fn fixed(profiles: Profiles) -> LiveProfiles {
        LiveProfiles {
            profiles: RwLock::new(Arc::new(profiles)),
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
            profiles: RwLock::new(Arc::new(profiles)),
            source: regular.then(|| Source {
                path: path.to_owned(),
                flags: flags.to_vec(),
                seen: Mutex::new(Seen {
                    stamp: stamp(path),
                    at: Instant::now(),
                }),
            }),
        }
    }

    /// The profiles as the file said at most [`RECHECK`] ago, or now if
    /// they lack `profile` (the default one for `None`).
    pub fn for_profile(&self, profile: Option<&str>) -> Arc<Profiles> {
        let profiles = self.current();
        if profiles.get(profile).is_ok() {
            return profiles;
        }
        self.look(true);
        self.loaded()
    }

    /// The profiles as the file said at most [`RECHECK`] ago.
    pub fn current(&self) -> Arc<Profiles> {
        self.look(false);
        self.loaded()
    }

    fn loaded(&self) -> Arc<Profiles> {
        Arc::clone(&self.profiles.read().unwrap_or_else(|e| e.into_inner()))
    }

    /// Reads the file again if it changed since the last look, and that
    /// look is older than [`RECHECK`] or `now`. A look under way on
    /// another connection serves for this one, unless `now`.
    fn look(&self, now: bool) {
        let Some(source) = &self.source else {
            return;
        };
        let seen = if now {
            source.seen.lock().unwrap_or_else(|e| e.into_inner())
        } else {
            let seen = match source.seen.try_lock() {
                Ok(seen) => seen,
                Err(TryLockError::Poisoned(poisoned)) => poisoned.into_inner(),
                Err(TryLockError::WouldBlock) => return,
            };
            if seen.at.elapsed() < RECHECK {
                return;
            }
            seen
        };
        self.reload_if_changed(source, seen);
    }

    fn reload_if_changed(&self, source: &Source, mut seen: MutexGuard<'_, Seen>) {
        let now = stamp(&source.path);
        seen.at = Instant::now();
        if seen.stamp == now {
            return;
        }
        seen.stamp = now;
        let previous = self.loaded();
        let rebuilt = ConfigFile::load(&source.path, false)
            .and_then(|file| Profiles::rebuild(&file, &source.flags, Some(&previous)));
        match rebuilt {
            Ok(profiles) => {
                tracing::info!(config = %source.path.display(), profiles = profiles.len(), "config file changed; profiles reloaded");
                *self.profiles.write().unwrap_or_else(|e| e.into_inner()) =
                    Arc::new(profiles.from_file(&source.path));
            }
            Err(error) => {
                tracing::warn!(%error, "config file changed but cannot be used; the profiles stay as they were until it is fixed");
            }
        }
    }
}
