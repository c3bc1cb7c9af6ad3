//! The verbs that remove: `rm` (with the object-lock check that comes before any delete),
//! `rmdir` and `mkdir`.

use std::collections::VecDeque;

use futures::TryStreamExt;

use super::Storage;
use crate::paths::{self, Remote};
use crate::{Error, Result};

impl Storage {
    /// `rm [-r] rpath`. Removing a missing object succeeds.
    pub async fn remove(&self, rpath: &str, recursive: bool) -> Result<()> {
        self.writable("rm")?;
        let remote = paths::resolve(&self.base, rpath)?;
        self.refuse_locked(&remote, recursive).await?;
        if !remote.key.is_empty() && !remote.dir {
            let key = self.stored_key(&remote.key);
            match self.op.stat(&key).await {
                Ok(m) if !m.is_dir() => self.op.delete(&key).await.map_err(|e| self.err(e))?,
                Ok(_) | Err(_) => {}
            }
        }
        if recursive {
            let dir = remote.as_dir();
            match self.op.delete_with(&dir).recursive(true).await {
                Ok(()) => {}
                Err(e) if e.kind() == opendal::ErrorKind::NotFound => {}
                Err(e) => return Err(self.err(e)),
            }
            if !self.backend.has_directories() {
                self.remove_empty_prefixes(&dir).await?;
            }
        }
        Ok(())
    }

    /// On a bucket with object lock, refuse an `rm` that would touch an object still under
    /// retention or a legal hold, before deleting anything: on a versioned bucket the delete
    /// would only hide it behind a delete marker while it keeps its storage, and removing its
    /// versions fails half-way. One HEAD per object, only on such buckets (or where the bucket's
    /// configuration cannot be read).
    async fn refuse_locked(&self, remote: &Remote, recursive: bool) -> Result<()> {
        let Some((_, api)) = self.s3()? else {
            return Ok(());
        };
        // A key that may not read the bucket's configuration (a scoped key) looks at each
        // object: a delete it is not refused would only hide a locked object.
        if matches!(api.object_lock().await, Ok(None)) {
            return Ok(());
        }
        let mut keys = Vec::new();
        if !remote.key.is_empty() && !remote.dir {
            let key = self.stored_key(&remote.key);
            if matches!(self.op.stat(&key).await, Ok(m) if !m.is_dir()) {
                keys.push(key);
            }
        }
        if recursive {
            let dir = remote.as_dir();
            if let Ok(mut lister) = self.op.lister_with(&dir).recursive(true).await {
                while let Ok(Some(e)) = lister.try_next().await {
                    if !e.metadata().is_dir() {
                        keys.push(e.path().to_string());
                    }
                }
            }
        }
        let now = chrono::Utc::now().timestamp();
        let mut locked = Vec::new();
        for key in &keys {
            match api.lock_of(&api.key(key), now).await {
                Ok(Some(held)) => locked.push((key.as_str(), held)),
                Ok(None) => {}
                Err(e) => return Err(self.err(e)),
            }
        }
        if locked.is_empty() {
            return Ok(());
        }
        Err(Error::Locked(format!(
            "rm refused, nothing was deleted: {} of {} objects are under object lock: {}; the bucket keeps them until their retention ends (a delete would only hide them behind a delete marker while they keep costing storage); wait until then, or remove what is not locked by name",
            locked.len(),
            keys.len(),
            when_they_go(&locked)
        )))
    }

    /// Some S3 servers (SeaweedFS's filer among them) keep empty "folders" that still show as
    /// common prefixes after their objects are gone; delete those markers, deepest first.
    async fn remove_empty_prefixes(&self, dir: &str) -> Result<()> {
        let mut dirs = Vec::new();
        let mut queue = VecDeque::from([dir.to_string()]);
        while let Some(d) = queue.pop_front() {
            let entries: Vec<opendal::Entry> = match self.op.list(&d).await {
                Ok(v) => v,
                Err(_) => continue,
            };
            for e in entries {
                if e.path() != d && e.metadata().is_dir() {
                    queue.push_back(e.path().to_string());
                }
            }
            dirs.push(d);
        }
        for d in dirs.iter().rev() {
            if let Err(e) = self.op.delete(d).await {
                tracing::debug!(dir = %d, error = %e, "removing an empty prefix");
            }
        }
        Ok(())
    }

    /// `rmdir rpath`: removes an empty directory; a missing one is success; no-op on object stores.
    pub async fn rmdir(&self, rpath: &str) -> Result<()> {
        self.writable("rmdir")?;
        let remote = paths::resolve(&self.base, rpath)?;
        if !self.backend.has_directories() || remote.key.is_empty() {
            return Ok(());
        }
        let dir = remote.as_dir();
        if !self.dir_exists(&dir).await? {
            return Ok(());
        }
        let mut any = false;
        self.walk(&dir, false, None, &mut |_| any = true).await?;
        if any {
            return Err(Error::Storage(format!("directory {rpath:?} is not empty")));
        }
        match self.op.delete(&dir).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == opendal::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(self.err(e)),
        }
    }

    /// `mkdir rpath`: creates a directory (with parents); no-op on object stores.
    pub async fn mkdir(&self, rpath: &str) -> Result<()> {
        self.writable("mkdir")?;
        let remote = paths::resolve(&self.base, rpath)?;
        if !self.backend.has_directories() || remote.key.is_empty() {
            return Ok(());
        }
        self.op
            .create_dir(&remote.as_dir())
            .await
            .map_err(|e| self.err(e))
    }
}

/// The first few locked objects with what holds each and until when, then when the first and
/// the last of them can go.
pub(super) fn when_they_go(locked: &[(&str, crate::service::s3::Held)]) -> String {
    let shown: Vec<String> = locked
        .iter()
        .take(5)
        .map(|(k, h)| format!("{k} ({h})"))
        .collect();
    let more = if locked.len() > shown.len() {
        ", ..."
    } else {
        ""
    };
    let held = locked.iter().filter(|(_, h)| h.legal_hold).count();
    let dates = || {
        locked
            .iter()
            .filter(|(_, h)| !h.legal_hold)
            .filter_map(|(_, h)| Some((h.until_unix?, h.until.as_deref()?)))
    };
    let mut tail = match (dates().min(), dates().max()) {
        (Some((_, first)), Some((_, last))) if first != last => {
            format!("; the first can be removed from {first}, all of them from {last}")
        }
        (Some((_, first)), _) => format!("; they can be removed from {first}"),
        _ => String::new(),
    };
    if held > 0 {
        tail.push_str(&format!(
            "; {held} under a legal hold stay until the hold is lifted"
        ));
    }
    format!("{}{more}{tail}", shown.join(", "))
}
