//! `gc`: remove what interrupted work left under the storage's base path, and nothing else:
//! incomplete S3 multipart uploads (ListMultipartUploads, then AbortMultipartUpload), the
//! temporary files of local and FTP writes, and pre-check directories, each only when older
//! than the given age (a push or probe in flight is younger).

use std::time::Duration;

use super::{is_temporary, Storage};
use crate::probe::PROBE_DIR;
use crate::service::TMP_DIR;
use crate::Result;

/// What to remove.
#[derive(Debug, Clone, Copy)]
pub struct GcOptions {
    /// Only what is at least this old.
    pub older_than: Duration,
    /// Report what would be removed; remove nothing.
    pub dry_run: bool,
    /// Walk the whole path (FTP's temporary files lie next to the objects). Without it only
    /// the pre-check and temporary directories are read: what a re-check can afford every time.
    pub full_walk: bool,
}

impl Default for GcOptions {
    fn default() -> Self {
        GcOptions {
            older_than: Duration::from_secs(24 * 3600),
            dry_run: false,
            full_walk: true,
        }
    }
}

impl Storage {
    /// Remove (or with `dry_run`, list) leftovers older than `older_than`; `each` is told every
    /// one. Returns how many there were.
    pub async fn gc(&self, opts: &GcOptions, each: &mut (dyn FnMut(&str) + Send)) -> Result<u64> {
        self.writable("gc")?;
        let now = chrono::Utc::now().timestamp();
        let cutoff = now.saturating_sub(opts.older_than.as_secs() as i64);
        // The automatic clean-up of a repository at the bucket's root leaves uploads alone:
        // the bucket may hold others' (an explicit `gc` treats the root as the repository's).
        let mut n = match opts.full_walk || !self.base.is_empty() {
            true => {
                self.abort_uploads(&self.base, Some(cutoff), opts.dry_run, each)
                    .await?
            }
            false => 0,
        };
        // Temporary files and pre-check directories: a raw listing (the verbs hide them).
        // A walk one directory at a time: not every service lists recursively (FTP).
        let mut dirs = if opts.full_walk {
            vec![if self.base.is_empty() {
                "/".to_string()
            } else {
                self.base.clone()
            }]
        } else {
            // The pre-check's directory, and the temporary one (segments of S3 uploads).
            vec![
                format!("{}{PROBE_DIR}/", self.base),
                format!("{}{TMP_DIR}/", self.base),
            ]
        };
        if self.local_root.is_some() {
            // Local writes stage in the root's temporary directory, whatever the base path.
            dirs.push(format!("{TMP_DIR}/"));
        }
        let mut leftovers = std::collections::BTreeSet::new();
        while let Some(dir) = dirs.pop() {
            let entries = match self.op.list(&dir).await {
                Ok(e) => e,
                Err(e) if e.kind() == opendal::ErrorKind::NotFound => continue,
                Err(e) => return Err(self.err(e)),
            };
            for entry in entries {
                let path = entry.path().to_string();
                if path == dir || path.trim_start_matches('/') == dir.trim_start_matches('/') {
                    continue;
                }
                if entry.metadata().is_dir() {
                    dirs.push(path);
                    continue;
                }
                // The same rule that hides them from listings.
                let rel = path.strip_prefix(&self.base).unwrap_or(&path);
                if is_temporary(&self.backend, rel) {
                    leftovers.insert(path);
                }
            }
        }
        for path in leftovers {
            let mtime = match self.op.stat(&path).await {
                Ok(m) => m.last_modified().map(|t| t.into_inner().as_second()),
                Err(_) => continue, // gone meanwhile
            };
            // Unknown age: left alone.
            if mtime.is_none_or(|t| t > cutoff) {
                continue;
            }
            if !opts.dry_run {
                self.op.delete(&path).await.map_err(|e| self.err(e))?;
            }
            n += 1;
            each(&format!("temporary file {path}"));
        }
        Ok(n)
    }

    /// The re-check's clean-up: after a passing check of a repository, remove what interrupted
    /// work left under its path that is older than the default age (24h). Failures are logged,
    /// never reported as the check's: the repository works whether or not its leftovers are
    /// gone. A read-only repository is left alone.
    pub(super) async fn gc_after_check(&self) -> u64 {
        if self.tuning.read_only {
            return 0;
        }
        let mut report = |what: &str| tracing::info!("gc after the check removed {what}");
        let opts = GcOptions {
            full_walk: false,
            ..GcOptions::default()
        };
        match self.gc(&opts, &mut report).await {
            Ok(n) => n,
            Err(e) => {
                tracing::warn!(error = %e, "gc after the check failed");
                0
            }
        }
    }
}

/// Whether an incomplete upload the storage listed may be aborted: its key is under `prefix`
/// (a storage may ignore the listing's prefix), and with a `cutoff`, it began at or before it
/// (an upload whose start is unknown is left alone: its age is unknown).
pub(super) fn abortable(
    prefix: &str,
    cutoff: Option<i64>,
    key: &str,
    initiated: Option<i64>,
) -> bool {
    key.starts_with(prefix)
        && match cutoff {
            None => true,
            Some(c) => initiated.is_some_and(|t| t <= c),
        }
}

#[cfg(test)]
mod tests {
    use super::abortable;

    #[test]
    fn only_uploads_under_the_base_and_of_known_age_are_aborted() {
        let p = "repo/";
        assert!(abortable(p, Some(100), "repo/a", Some(50)));
        assert!(!abortable(p, Some(100), "repo/a", Some(150)), "too new");
        assert!(!abortable(p, Some(100), "repo/a", None), "age unknown");
        assert!(
            !abortable(p, Some(100), "other/a", Some(50)),
            "outside the base"
        );
        assert!(!abortable(p, None, "other/a", None), "outside the base");
        assert!(
            abortable(p, None, "repo/a", None),
            "no cutoff: all of the base"
        );
    }
}
