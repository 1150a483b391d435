//! [`ScriptCache`]: scripts by path, reloaded when their file changes. Each load is a new
//! `Arc<Script>`: calls already running keep the version they started with, new calls get the
//! new one, and a broken edit leaves the last good version in service.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::SystemTime;

use sha2::{Digest, Sha256};
use tracing::{info, warn};

use super::diag::ScriptErrors;
use super::load::LoadOptions;
use super::model::Script;

/// What `stat` says about a file; a change in either means "read it again".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    modified: Option<SystemTime>,
    len: u64,
}

#[derive(Debug)]
struct Entry {
    script: Arc<Script>,
    stamp: Stamp,
    hash: [u8; 32],
    /// The stamp and errors of a newer file that failed to load, so that `get` does not parse
    /// the same broken file on every call.
    failed: Option<(Stamp, ScriptErrors)>,
}

/// Loaded scripts by path. Cheap to call per new call: a `stat`, and a read and parse only when
/// the file's modification time or size changed (and its bytes really did).
#[derive(Debug, Default)]
pub struct ScriptCache {
    options: LoadOptions,
    entries: Mutex<HashMap<PathBuf, Entry>>,
}

impl ScriptCache {
    pub fn new(options: LoadOptions) -> ScriptCache {
        ScriptCache {
            options,
            entries: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<PathBuf, Entry>> {
        // A panic elsewhere while holding the lock leaves the map consistent (each update is a
        // single insert), so a poisoned lock is still usable.
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The current version of the script at `path`, loading or reloading it if the file
    /// changed. If a changed file does not load, the last good version is returned (and the
    /// errors are kept for [`ScriptCache::last_error`]); `Err` only when there is no good
    /// version at all.
    pub fn get(&self, path: impl AsRef<Path>) -> Result<Arc<Script>, ScriptErrors> {
        let path = path.as_ref();
        let stamp = stamp(path);
        {
            let entries = self.lock();
            if let Some(e) = entries.get(path) {
                let known_bad = e.failed.as_ref().is_some_and(|(s, _)| Some(*s) == stamp);
                // A file that vanished keeps its last version in service.
                if stamp.is_none() || Some(e.stamp) == stamp || known_bad {
                    return Ok(Arc::clone(&e.script));
                }
            }
        }
        match self.reload(path) {
            Ok(s) => Ok(s),
            Err(errors) => match self.current(path) {
                Some(old) => Ok(old),
                None => Err(errors),
            },
        }
    }

    /// Read the file now, whatever its stamp says. On success the new version (or the current
    /// one, if the bytes did not change) is returned and served from then on; on failure the
    /// errors are returned and the previous version, if any, stays in service.
    pub fn reload(&self, path: impl AsRef<Path>) -> Result<Arc<Script>, ScriptErrors> {
        let path = path.as_ref();
        let before = stamp(path);
        let bytes = match std::fs::read(path) {
            Ok(b) => b,
            Err(e) => {
                let errors = ScriptErrors::io(path, format!("cannot read the script: {e}"));
                self.remember_failure(path, before, &errors);
                return Err(errors);
            }
        };
        let stamp = before.unwrap_or(Stamp {
            modified: None,
            len: bytes.len() as u64,
        });
        let hash: [u8; 32] = Sha256::digest(&bytes).into();
        {
            let mut entries = self.lock();
            if let Some(e) = entries.get_mut(path)
                && e.hash == hash
            {
                e.stamp = stamp;
                e.failed = None;
                return Ok(Arc::clone(&e.script));
            }
        }
        match Script::from_bytes(&bytes, path, &self.options) {
            Ok(script) => {
                let script = Arc::new(script);
                info!(
                    file = %path.display(),
                    version = script.version_id(),
                    warnings = script.warnings().len(),
                    "script loaded"
                );
                self.lock().insert(
                    path.to_path_buf(),
                    Entry {
                        script: Arc::clone(&script),
                        stamp,
                        hash,
                        failed: None,
                    },
                );
                Ok(script)
            }
            Err(errors) => {
                self.remember_failure(path, Some(stamp), &errors);
                Err(errors)
            }
        }
    }

    fn remember_failure(&self, path: &Path, stamp: Option<Stamp>, errors: &ScriptErrors) {
        let mut entries = self.lock();
        if let Some(e) = entries.get_mut(path) {
            warn!(
                file = %path.display(),
                errors = errors.errors.len(),
                first = %errors.errors.first().map(ToString::to_string).unwrap_or_default(),
                keeping = e.script.version_id(),
                "script reload failed; keeping the previous version"
            );
            if let Some(stamp) = stamp {
                e.failed = Some((stamp, errors.clone()));
            }
        }
    }

    /// The version in service for `path`, without looking at the file.
    pub fn current(&self, path: impl AsRef<Path>) -> Option<Arc<Script>> {
        self.lock()
            .get(path.as_ref())
            .map(|e| Arc::clone(&e.script))
    }

    /// The errors of the last failed reload of `path`, while its broken file is unchanged.
    pub fn last_error(&self, path: impl AsRef<Path>) -> Option<ScriptErrors> {
        self.lock()
            .get(path.as_ref())
            .and_then(|e| e.failed.as_ref().map(|(_, errors)| errors.clone()))
    }
}

fn stamp(path: &Path) -> Option<Stamp> {
    let m = std::fs::metadata(path).ok()?;
    Some(Stamp {
        modified: m.modified().ok(),
        len: m.len(),
    })
}
