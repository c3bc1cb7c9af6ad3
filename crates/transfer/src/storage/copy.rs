//! `copy`: a repository's objects into another storage, as stored (encrypted and compressed
//! objects stay byte for byte what they are, so no pass phrase is needed and the copy reads
//! with the source's settings).
//!
//! - Incremental: both sides are listed once; an object already at the destination with the
//!   same size, and the same stored checksum where both services keep one, is skipped, so a
//!   run after an interruption resumes where it stopped.
//! - Streaming and concurrent within a memory budget: each object goes through a pipe (the
//!   memory of one pull and one push); objects run `transfers` at once, and each takes a share
//!   of [`MEMORY_BUDGET`] as large as it can hold in memory, so a large object runs with few
//!   others and small ones run many at once.
//! - Verified before it counts: the CRC32C of the bytes that left the source (which the pull
//!   has checked against the source's stored checksum, where it keeps one) is compared with
//!   what the destination holds: its stored checksum when the service keeps a whole-object
//!   CRC32C, the service's own check of each part's CRC32C for multipart objects on S3 (it
//!   refuses a part whose bytes differ), and otherwise the bytes read back.
//! - Nothing is deleted at the destination unless `delete_extra` says so, only after every
//!   copy succeeded, and never an object under retention or a legal hold.

use std::collections::HashMap;
use std::io::{self, Write};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};

use futures::StreamExt;
use tokio::sync::Semaphore;

use super::{Input, Output, Storage};
use crate::list::ListOptions;
use crate::{Error, Result};

/// The memory a copy may hold for objects in flight (MiB), whatever their number and size: a
/// large object takes all of it ([`PUSH_MEMORY`] of parts, and its pipe and pull), small ones
/// their size each.
pub const MEMORY_BUDGET: u32 = 56;

/// The parts a copy's push may hold: with the pipe, the pull and the process, a copy of any
/// object stays under 64 MiB.
pub const PUSH_MEMORY: u64 = 32 << 20;

/// What happens, or happened, to one object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Copied {
    /// Copied and verified: its size.
    Copied(u64),
    /// Already at the destination with the same size (and checksum).
    Skipped(u64),
    /// Only at the destination, and removed (`delete_extra`).
    Deleted(u64),
    /// Only at the destination, and kept: under retention or a legal hold.
    Kept(String),
}

/// How a copy runs.
#[derive(Debug, Clone)]
pub struct CopyOptions {
    /// Only this path of the source ("" for everything).
    pub prefix: String,
    /// Objects in flight at once.
    pub transfers: usize,
    /// Remove what is at the destination under `prefix` and not at the source.
    pub delete_extra: bool,
}

impl Default for CopyOptions {
    fn default() -> Self {
        CopyOptions {
            prefix: String::new(),
            transfers: 8,
            delete_extra: false,
        }
    }
}

/// What a copy will do, from one listing of each side.
#[derive(Debug, Default)]
pub struct CopyPlan {
    /// Objects to copy (path, size), in path order.
    pub copy: Vec<(String, u64)>,
    /// Objects already at the destination.
    pub skip: Vec<(String, u64)>,
    /// Objects only at the destination.
    pub extra: Vec<(String, u64)>,
    /// Objects to copy that the destination holds already, differently: their size there.
    pub replaced: Vec<(String, u64)>,
}

impl CopyPlan {
    /// Bytes to copy.
    pub fn bytes(&self) -> u64 {
        self.copy.iter().map(|(_, s)| s).sum()
    }
}

/// The counts of a run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CopySummary {
    pub copied: u64,
    pub skipped: u64,
    pub deleted: u64,
    pub kept: u64,
    pub bytes: u64,
}

/// A writer that keeps the CRC32C of what passes through it.
struct Crc<W> {
    inner: W,
    digest: Arc<Mutex<crc_fast::Digest>>,
}

impl<W: Write> Write for Crc<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        if let Ok(mut d) = self.digest.lock() {
            d.update(&buf[..n]);
        }
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// A reader that fails instead of ending early: a source that stops short (its read failed)
/// makes the push fail too, so nothing truncated is put in place at the destination.
struct Exact<R> {
    inner: R,
    left: u64,
}

impl<R: io::Read> io::Read for Exact<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n == 0 && self.left > 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("the source ended {} bytes short", self.left),
            ));
        }
        self.left = self.left.saturating_sub(n as u64);
        Ok(n)
    }
}

fn digest() -> Arc<Mutex<crc_fast::Digest>> {
    Arc::new(Mutex::new(crc_fast::Digest::new(
        crc_fast::CrcAlgorithm::Crc32Iscsi,
    )))
}

fn value(d: &Arc<Mutex<crc_fast::Digest>>) -> Option<u32> {
    d.lock().ok().map(|d| d.finalize() as u32)
}

/// Two stored checksums say something about each other only when they are of one kind: both
/// whole-object, or both composite over the same number of parts.
fn comparable(a: &str, b: &str) -> bool {
    let parts = |s: &str| s.split_once('-').map(|(_, n)| n.to_string());
    parts(a) == parts(b)
}

/// The share of the budget one object takes: what its pipe and push hold, in MiB.
fn weight(size: u64) -> u32 {
    (size.div_ceil(1 << 20) as u32 + 1).min(MEMORY_BUDGET)
}

impl Storage {
    /// Every object of this storage under `prefix` (path, size).
    async fn objects(&self, prefix: &str) -> Result<HashMap<String, u64>> {
        let mut objects = HashMap::new();
        let opts = ListOptions {
            files_only: true,
            recursive: true,
            ..ListOptions::default()
        };
        match self
            .list(prefix, &opts, &mut |e| {
                objects.insert(e.path.clone(), e.size);
            })
            .await
        {
            Ok(()) | Err(Error::DirNotFound) | Err(Error::NotFound) => Ok(objects),
            Err(e) => Err(e),
        }
    }

    /// The checksum the service keeps for `path` (S3 with our signing), as it gives it.
    async fn checksum_of(&self, path: &str) -> Option<String> {
        let (c, api) = self.s3().ok()??;
        if !crate::service::s3::signs_itself(c) {
            return None;
        }
        let key = crate::paths::resolve_file(&self.base, path).ok()?.key;
        let (_, crc) = api
            .head_checked(&api.key(&self.stored_key(&key)))
            .await
            .ok()?;
        crc
    }

    /// What a copy of `prefix` into `dst` will do: one listing of each side, and for objects
    /// of the same size, their stored checksums where both services keep one.
    pub async fn plan_copy(&self, dst: &Storage, opts: &CopyOptions) -> Result<CopyPlan> {
        let (source, mut there) = (
            self.objects(&opts.prefix).await?,
            dst.objects(&opts.prefix).await?,
        );
        let mut plan = CopyPlan::default();
        let mut same_size = Vec::new();
        for (path, size) in source {
            match there.remove(&path) {
                Some(s) if s == size => same_size.push((path, size)),
                Some(s) => {
                    plan.replaced.push((path.clone(), s));
                    plan.copy.push((path, size));
                }
                None => plan.copy.push((path, size)),
            }
        }
        plan.extra = there.into_iter().collect();
        let checks = futures::stream::iter(same_size)
            .map(|(path, size)| async move {
                let (a, b) = tokio::join!(self.checksum_of(&path), dst.checksum_of(&path));
                let differs = matches!((a, b), (Some(a), Some(b)) if comparable(&a, &b) && a != b);
                (path, size, differs)
            })
            .buffer_unordered(opts.transfers.max(1) * 2)
            .collect::<Vec<_>>()
            .await;
        for (path, size, differs) in checks {
            match differs {
                true => {
                    plan.replaced.push((path.clone(), size));
                    plan.copy.push((path, size));
                }
                false => plan.skip.push((path, size)),
            }
        }
        plan.copy.sort();
        plan.skip.sort();
        plan.extra.sort();
        Ok(plan)
    }

    /// This storage as a copy's destination: its pushes hold at most [`PUSH_MEMORY`] of parts
    /// (fewer parts in flight; their size, and so the composite checksums that let a later
    /// run skip an object, stay what a push makes).
    pub fn for_copy(mut self) -> Self {
        let part = self.shape.part_size_at(0).max(1) as u64;
        let fits = (PUSH_MEMORY / part).saturating_sub(2).max(1) as usize;
        self.shape.concurrency = self.shape.concurrency.min(fits);
        self
    }

    /// Carry out `plan` into `dst`; `each` is told every object's outcome as it happens. A
    /// failed object does not stop the others: the error names the ones that failed, and the
    /// next run copies them.
    pub async fn run_copy(
        &self,
        dst: &Storage,
        plan: &CopyPlan,
        opts: &CopyOptions,
        progress: Option<Arc<AtomicU64>>,
        each: &mut dyn FnMut(&str, &Copied),
    ) -> Result<CopySummary> {
        dst.writable("copy")?;
        let mut summary = CopySummary::default();
        for (path, size) in &plan.skip {
            summary.skipped += 1;
            each(path, &Copied::Skipped(*size));
        }
        let budget = Semaphore::new(MEMORY_BUDGET as usize);
        let mut results = futures::stream::iter(&plan.copy)
            .map(|(path, size)| {
                let (budget, progress) = (&budget, progress.clone());
                async move {
                    let _held = budget.acquire_many(weight(*size)).await;
                    let r = self.copy_one(dst, path, *size, progress).await;
                    (path, *size, r)
                }
            })
            .buffer_unordered(opts.transfers.max(1));
        let mut failed = Vec::new();
        while let Some((path, size, r)) = results.next().await {
            match r {
                Ok(()) => {
                    summary.copied += 1;
                    summary.bytes += size;
                    each(path, &Copied::Copied(size));
                }
                Err(e) => failed.push(e.to_string()),
            }
        }
        if !failed.is_empty() {
            let shown: Vec<&str> = failed.iter().take(3).map(String::as_str).collect();
            return Err(Error::Storage(format!(
                "{} of {} object(s) not copied ({} copied; run the copy again to finish): {}",
                failed.len(),
                plan.copy.len(),
                summary.copied,
                shown.join("; ")
            )));
        }
        if opts.delete_extra {
            for (path, size) in &plan.extra {
                match dst.remove(path, false).await {
                    Ok(()) => {
                        summary.deleted += 1;
                        each(path, &Copied::Deleted(*size));
                    }
                    Err(Error::Locked(why)) => {
                        summary.kept += 1;
                        each(path, &Copied::Kept(why));
                    }
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(summary)
    }

    /// One object: streamed through a pipe, then checked at the destination.
    async fn copy_one(
        &self,
        dst: &Storage,
        path: &str,
        size: u64,
        progress: Option<Arc<AtomicU64>>,
    ) -> Result<()> {
        let (reader, writer) = io::pipe().map_err(|e| Error::io("make a pipe", e))?;
        let sent = digest();
        let out = Crc {
            inner: writer,
            digest: sent.clone(),
        };
        let pull = self.pull(
            path,
            Output::Writer(Box::new(out)),
            None,
            progress,
            std::future::pending(),
        );
        let push = dst.push(
            Input::Reader(
                Box::new(Exact {
                    inner: reader,
                    left: size,
                }),
                Some(size),
            ),
            path,
            None,
            None,
            std::future::pending(),
        );
        let (pulled, pushed) = tokio::join!(pull, push);
        // The pull's error says why the push saw its input end early.
        pulled.map_err(|e| Error::Storage(format!("copy {path:?}: read from the source: {e}")))?;
        pushed
            .map_err(|e| Error::Storage(format!("copy {path:?}: write to the destination: {e}")))?;
        let sent = value(&sent);
        match dst.checksum_of(path).await {
            Some(stored) if !stored.contains('-') => {
                if Some(stored.as_str()) == sent.map(crate::service::s3::crc32c_text).as_deref() {
                    return Ok(());
                }
                return Err(mismatch(path));
            }
            // Composite: each part was sent with its CRC32C, which the service checked.
            Some(_) => return Ok(()),
            None => {}
        }
        let back = digest();
        let check = Crc {
            inner: io::sink(),
            digest: back.clone(),
        };
        dst.pull(
            path,
            Output::Writer(Box::new(check)),
            None,
            None,
            std::future::pending(),
        )
        .await
        .map_err(|e| {
            Error::Storage(format!(
                "copy {path:?}: read back from the destination: {e}"
            ))
        })?;
        if sent != value(&back) {
            return Err(mismatch(path));
        }
        Ok(())
    }
}

fn mismatch(path: &str) -> Error {
    Error::Corrupt(format!(
        "copy {path:?}: the destination does not hold the bytes sent (CRC32C differs); run the copy again"
    ))
}

/// One replication run (`backuprepo.io/replicate-to`), as both stores run it: copy what `src`
/// (under `src_prefix`) holds and `dst` (under `dst_prefix`) lacks, both opened without
/// encryption; never deletes at the destination.
pub async fn replicate(
    src: &crate::config::ToolConfig,
    src_prefix: &str,
    dst: &crate::config::ToolConfig,
    dst_prefix: &str,
) -> backuprepo_api::ReplicationRun {
    let mut out = backuprepo_api::ReplicationRun::default();
    let opened = Storage::open(src, src_prefix, None)
        .and_then(|s| Ok((s, Storage::open(dst, dst_prefix, None)?.for_copy())));
    let (source, dest) = match opened {
        Ok(pair) => pair,
        Err(e) => {
            out.error = Some(e.to_string());
            return out;
        }
    };
    let opts = CopyOptions::default();
    let plan = match source.plan_copy(&dest, &opts).await {
        Ok(p) => p,
        Err(e) => {
            out.error = Some(e.to_string());
            return out;
        }
    };
    out.planned_objects = plan.copy.len() as u64;
    out.planned_bytes = plan.bytes();
    let (mut objects, mut bytes) = (0, 0);
    let mut each = |_: &str, what: &Copied| {
        if let Copied::Copied(n) = what {
            objects += 1;
            bytes += n;
        }
    };
    let ran = source.run_copy(&dest, &plan, &opts, None, &mut each).await;
    out.copied_objects = objects;
    out.copied_bytes = bytes;
    out.error = ran.err().map(|e| e.to_string());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksums_compare_only_within_one_kind() {
        assert!(comparable("yZRlqg==", "AAAAAA=="));
        assert!(comparable("yZRlqg==-3", "AAAAAA==-3"));
        assert!(!comparable("yZRlqg==-3", "AAAAAA==-2"));
        assert!(!comparable("yZRlqg==", "AAAAAA==-2"));
        assert_eq!(crate::service::s3::crc32c_text(0xc99465aa), "yZRlqg==");
    }

    #[test]
    fn weights_fit_the_budget() {
        assert_eq!(weight(0), 1);
        assert_eq!(weight(1 << 20), 2);
        assert_eq!(weight(10 << 30), MEMORY_BUDGET);
    }
}
