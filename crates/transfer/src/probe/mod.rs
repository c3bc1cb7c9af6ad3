//! The storage pre-check: a probe that looks like the traffic of a real backup.
//!
//! KubeBlocks' pre-check pushes `pre-check` to `<pathPrefix>/precheck.txt`, pulls it and removes
//! it. That misses what breaks first backups in practice: a key that may write small objects but
//! not multipart uploads (KB#8462), a region mismatch (KB#9947), virtual-host-style addressing
//! that DNS cannot resolve (KB#8867). This probe runs, against the same [`Operator`] backups use
//! ([`service::build`]), one check per operation and reports each:
//!
//! 1. **bucket**: the bucket/container exists (a one-key listing; never created), or for
//!    ftp/local that the server/root is reachable;
//! 2. **put** a small object holding the probe's id;
//! 3. **get** it back and compare the bytes;
//! 4. **list** the probe directory and find it;
//! 5. **multipart**: upload `part_size + 1 KiB` through a writer cut into `part_size` chunks with
//!    one part in flight, so S3 really runs CreateMultipartUpload/UploadPart×2/Complete and Azure
//!    PutBlock×2/PutBlockList; then stat the size, read a range across the part boundary, delete
//!    it (skipped on ftp and local, which have no multipart API);
//! 6. **delete** the small object and confirm it is gone.
//!
//! Everything lives under `<pathPrefix>/.backuprepo-precheck/<id>/` (a fresh random id per run,
//! so concurrent probes never collide) and is removed at the end even when a step failed,
//! including directories and folder markers the probe created (best effort, bounded in time).
//! Failures carry the fix; no message ever contains a credential.

use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::TryStreamExt;
use opendal::{ErrorKind, Metadata, Operator};
use rand::RngCore;
use tokio::task::JoinHandle;
use tokio::time::Instant;

mod steps;

use steps::*;

use crate::config::ToolConfig;
use crate::diagnose::diagnose;
use crate::paths;
use crate::service::{self, Site};

/// The directory (under the repo's path prefix) the probe writes into.
pub const PROBE_DIR: &str = ".backuprepo-precheck";
/// Default limit for the whole probe.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);
/// Default multipart part size: S3's minimum for every part but the last.
pub const DEFAULT_PART_SIZE: usize = 5 << 20;
/// What the multipart upload writes beyond one part, so there are two parts.
const TAIL: usize = 1024;
/// Cleanup gets at least this long (capped by the probe's timeout) even when the steps used up
/// the whole limit, so a probe that timed out mid-upload still removes what it wrote.
const CLEANUP_GRACE: Duration = Duration::from_secs(5);

/// How to probe.
#[derive(Debug, Clone)]
pub struct ProbeOptions {
    /// The repo's `pathPrefix` (datasafed's base path); may be empty.
    pub path_prefix: String,
    /// Limit for all the checks together. Cleanup after a timeout gets a short grace on top
    /// (at most 5 s, and never more than `timeout`).
    pub timeout: Duration,
    /// Part size of the multipart check; 0 means [`DEFAULT_PART_SIZE`]. Below 5 MiB, AWS S3
    /// rejects the upload (EntityTooSmall), so keep the default there.
    pub multipart_part_size: usize,
}

impl Default for ProbeOptions {
    fn default() -> Self {
        ProbeOptions {
            path_prefix: String::new(),
            timeout: DEFAULT_TIMEOUT,
            multipart_part_size: DEFAULT_PART_SIZE,
        }
    }
}

/// One checked operation, in the order the probe runs them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Operation {
    /// The bucket/container exists (ftp/local: the server or root is reachable).
    Bucket,
    Put,
    Get,
    List,
    Multipart,
    Delete,
}

impl Operation {
    pub const ALL: [Operation; 6] = [
        Operation::Bucket,
        Operation::Put,
        Operation::Get,
        Operation::List,
        Operation::Multipart,
        Operation::Delete,
    ];

    /// A short lowercase name for messages and status fields.
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Bucket => "bucket check",
            Operation::Put => "put",
            Operation::Get => "get",
            Operation::List => "list",
            Operation::Multipart => "multipart upload",
            Operation::Delete => "delete",
        }
    }
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    Passed,
    Failed,
    /// Not run: an earlier step it depends on failed, or the backend has no such operation.
    Skipped,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Passed => "passed",
            Outcome::Failed => "failed",
            Outcome::Skipped => "skipped",
        }
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The result of one operation.
#[derive(Debug, Clone)]
pub struct Check {
    pub operation: Operation,
    pub outcome: Outcome,
    /// What was seen (passed), what went wrong and the fix (failed), or why not run (skipped).
    /// Never holds a credential.
    pub message: Option<String>,
    /// Time spent on this operation (zero when skipped).
    pub duration: Duration,
}

/// The results of a probe: one [`Check`] per [`Operation`], in [`Operation::ALL`] order.
#[derive(Debug, Clone)]
pub struct ProbeReport {
    pub checks: Vec<Check>,
    /// The directory the probe used, relative to the storage root (bucket/prefix or root dir),
    /// e.g. `backups/.backuprepo-precheck/20250101T000000Z-0123456789abcdef/`.
    pub location: String,
    /// Set when cleanup could not remove everything: what is left where, and why.
    pub cleanup: Option<String>,
    /// Wall time of the whole probe, cleanup included.
    pub duration: Duration,
}

impl ProbeReport {
    /// The checks as a BackupRepo's `status.checks` records them (both stores write these).
    pub fn status_checks(&self) -> Vec<backuprepo_api::ProbeCheck> {
        use backuprepo_api::constants::probe_result;
        self.checks
            .iter()
            .map(|c| backuprepo_api::ProbeCheck {
                operation: c.operation.to_string(),
                result: match c.outcome {
                    Outcome::Passed => probe_result::PASSED,
                    Outcome::Failed => probe_result::FAILED,
                    Outcome::Skipped => probe_result::SKIPPED,
                }
                .to_string(),
                message: c.message.clone(),
                duration_ms: Some(u64::try_from(c.duration.as_millis()).unwrap_or(u64::MAX)),
            })
            .collect()
    }

    /// No check failed (skipped checks do not count as failures).
    pub fn passed(&self) -> bool {
        self.checks.iter().all(|c| c.outcome != Outcome::Failed)
    }

    /// One human summary of the first failure: `"<operation> failed: <message with the fix>"`.
    pub fn failure(&self) -> Option<String> {
        self.checks
            .iter()
            .find(|c| c.outcome == Outcome::Failed)
            .map(|c| {
                format!(
                    "{} failed: {}",
                    c.operation,
                    c.message.as_deref().unwrap_or("no details")
                )
            })
    }

    /// The check of one operation.
    pub fn check(&self, operation: Operation) -> Option<&Check> {
        self.checks.iter().find(|c| c.operation == operation)
    }
}

impl fmt::Display for ProbeReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for c in &self.checks {
            write!(
                f,
                "{:<16} {:<7} {:>8}",
                c.operation.as_str(),
                c.outcome.as_str(),
                fmt_duration(c.duration)
            )?;
            if let Some(m) = &c.message {
                write!(f, "  {m}")?;
            }
            writeln!(f)?;
        }
        if let Some(c) = &self.cleanup {
            writeln!(f, "cleanup: {c}")?;
        }
        Ok(())
    }
}

/// Run the probe. Never panics and never returns early without a report: every operation gets
/// a check, and whatever the probe wrote is removed before it returns.
pub async fn run(cfg: &ToolConfig, opts: &ProbeOptions) -> ProbeReport {
    let started = Instant::now();
    let mut rec = Recorder::new(cfg);
    let id = probe_id();
    let base = match paths::base_path(&opts.path_prefix) {
        Ok(b) => b,
        Err(e) => {
            rec.fail(
                Operation::Bucket,
                format!("invalid pathPrefix {:?}: {e}", opts.path_prefix),
            );
            return rec.finish(String::new(), None, started);
        }
    };
    let dir = format!("{base}{PROBE_DIR}/{id}/");
    let op = match service::build(cfg) {
        Ok(op) => op,
        Err(e) => {
            rec.fail(Operation::Bucket, e.to_string());
            return rec.finish(dir, None, started);
        }
    };
    let ctx = Ctx {
        op,
        cfg,
        deadline: started + opts.timeout,
        timeout: opts.timeout,
    };
    let part_size = if opts.multipart_part_size == 0 {
        DEFAULT_PART_SIZE
    } else {
        opts.multipart_part_size
    };
    let small_key = format!("{dir}precheck.txt");
    let multipart_key = format!("{dir}multipart.bin");
    let content = Bytes::from(format!("backuprepo pre-check {id}\n"));

    // The operations in order, one at a time. A failed bucket check or a timeout stops the
    // rest; get, list and delete need the object put wrote; multipart is independent of put
    // (a key may be allowed one and not the other).
    let service = service::of(&cfg.backend);
    let mut stop: Option<&'static str> = None;
    let mut put_ok = false;
    let mut wrote = false;
    let mut pending: Option<Upload> = None;
    // Which of the probe directory's ancestors exist already: cleanup removes only the ones
    // the probe created (real directories on ftp/local, folder markers on some S3 servers).
    let ancestors = ancestors_of(&base);
    let mut existed = Vec::with_capacity(ancestors.len());
    // A read-only repository is checked without writing: bucket, list, and a read of an
    // existing object.
    let read_only = cfg.tuning.read_only;
    for operation in Operation::ALL {
        let skip = stop.or(match operation {
            Operation::Put | Operation::Multipart | Operation::Delete if read_only => {
                Some("not run: the repository is read-only")
            }
            Operation::Bucket => service.bucket_check().err(),
            Operation::Multipart => service.multipart_skip(),
            Operation::Get | Operation::List | Operation::Delete if !put_ok && !read_only => {
                Some("not run: put failed")
            }
            _ => None,
        });
        if let Some(reason) = skip {
            rec.skip(operation, reason);
            continue;
        }
        if operation == Operation::Put {
            for a in &ancestors {
                existed.push(ctx.exists_before(a).await);
            }
        }
        wrote |= matches!(operation, Operation::Put | Operation::Multipart);
        let passed = match operation {
            Operation::Bucket => ctx.step(&mut rec, operation, bucket_check(&ctx)).await,
            Operation::Get if read_only => {
                ctx.step(&mut rec, operation, get_existing(&ctx, &base))
                    .await
            }
            Operation::List if read_only => {
                ctx.step(&mut rec, operation, list_base(&ctx, &base)).await
            }
            Operation::Put => {
                ctx.step(&mut rec, operation, put(&ctx, &small_key, &content))
                    .await
            }
            Operation::Get => {
                ctx.step(&mut rec, operation, get(&ctx, &small_key, &content))
                    .await
            }
            Operation::List => {
                ctx.step(&mut rec, operation, list(&ctx, &dir, &small_key))
                    .await
            }
            Operation::Multipart => {
                let upload = multipart(&ctx, &multipart_key, part_size, &mut pending);
                ctx.step(&mut rec, operation, upload).await
            }
            Operation::Delete => {
                ctx.step(&mut rec, operation, delete(&ctx, &small_key))
                    .await
            }
        };
        put_ok |= operation == Operation::Put && passed;
        if rec.timed_out {
            stop = Some("not run: the probe timed out");
        } else if operation == Operation::Bucket && !passed {
            stop = Some("not run: the bucket check failed");
        }
    }

    // Cleanup: always, when anything may have been written.
    let cleanup = if wrote {
        let budget = ctx
            .deadline
            .saturating_duration_since(Instant::now())
            .max(CLEANUP_GRACE.min(opts.timeout));
        let undo = Undo {
            dir: &dir,
            ancestors: &ancestors,
            existed: &existed,
        };
        match tokio::time::timeout(budget, ctx.cleanup(&undo, &mut pending)).await {
            Ok(Ok(())) => None,
            Ok(Err(m)) => Some(m),
            Err(_) => Some(format!(
                "cleanup timed out after {}; objects may be left under {dir}: remove them by hand",
                fmt_duration(budget)
            )),
        }
    } else {
        None
    };
    if let crate::config::Backend::Local(c) = &cfg.backend {
        if let Ok(root) = std::path::absolute(&c.root) {
            crate::service::local::tidy(&root);
        }
    }
    rec.finish(dir, cleanup, started)
}

/// Collects checks and scrubs credentials out of every message.
struct Recorder {
    checks: Vec<Check>,
    secrets: Vec<String>,
    timed_out: bool,
}

impl Recorder {
    fn new(cfg: &ToolConfig) -> Self {
        Recorder {
            checks: Vec::with_capacity(Operation::ALL.len()),
            // Credential values of 4 characters or more (shorter ones would redact at random).
            secrets: service::of(&cfg.backend)
                .secrets()
                .into_iter()
                .filter(|s| s.len() >= 4)
                .map(str::to_string)
                .collect(),
            timed_out: false,
        }
    }

    fn redact(&self, msg: String) -> String {
        self.secrets
            .iter()
            .fold(msg, |m, s| m.replace(s.as_str(), "<redacted>"))
    }

    fn record(
        &mut self,
        operation: Operation,
        outcome: Outcome,
        message: Option<String>,
        duration: Duration,
    ) {
        let message = message.map(|m| self.redact(m));
        self.checks.push(Check {
            operation,
            outcome,
            message,
            duration,
        });
    }

    fn fail(&mut self, operation: Operation, message: String) {
        self.record(operation, Outcome::Failed, Some(message), Duration::ZERO);
    }

    fn skip(&mut self, operation: Operation, reason: &str) {
        self.record(
            operation,
            Outcome::Skipped,
            Some(reason.to_string()),
            Duration::ZERO,
        );
    }

    /// Fill in the operations that never got a check (an early return), then build the report.
    fn finish(
        mut self,
        location: String,
        cleanup: Option<String>,
        started: Instant,
    ) -> ProbeReport {
        let reason = if self.checks.iter().any(|c| c.outcome == Outcome::Failed) {
            "not run: the probe could not start"
        } else {
            "not run"
        };
        for op in Operation::ALL {
            if !self.checks.iter().any(|c| c.operation == op) {
                self.skip(op, reason);
            }
        }
        self.checks.sort_by_key(|c| c.operation);
        let cleanup = cleanup.map(|m| self.redact(m));
        ProbeReport {
            checks: self.checks,
            location,
            cleanup,
            duration: started.elapsed(),
        }
    }
}

/// The operator and what the messages need.
struct Ctx<'a> {
    op: Operator,
    cfg: &'a ToolConfig,
    deadline: Instant,
    timeout: Duration,
}

/// What cleanup removes: the probe directory, and the ancestors that did not exist before.
struct Undo<'a> {
    dir: &'a str,
    /// Deepest last: `a/`, `a/b/`, `a/b/.backuprepo-precheck/`.
    ancestors: &'a [String],
    /// Parallel to `ancestors`; empty when the probe never got that far.
    existed: &'a [bool],
}

type StepResult = Result<Option<String>, String>;

impl Ctx<'_> {
    /// Run one step within the probe's deadline and record it. Returns whether it passed.
    async fn step(
        &self,
        rec: &mut Recorder,
        operation: Operation,
        fut: impl Future<Output = StepResult>,
    ) -> bool {
        let start = Instant::now();
        let (outcome, message) = match tokio::time::timeout_at(self.deadline, fut).await {
            Ok(Ok(m)) => (Outcome::Passed, m),
            Ok(Err(m)) => (Outcome::Failed, Some(m)),
            Err(_) => {
                rec.timed_out = true;
                (Outcome::Failed, Some(self.timeout_message(operation)))
            }
        };
        rec.record(operation, outcome, message, start.elapsed());
        outcome == Outcome::Passed
    }

    fn timeout_message(&self, operation: Operation) -> String {
        format!(
            "timed out after {} (the probe's limit) during the {operation}: no complete answer from {} in time; check that the endpoint is reachable and is the storage service itself (not a proxy or firewall that swallows traffic), and that the storage is not overloaded",
            fmt_duration(self.timeout),
            service::of(&self.cfg.backend).endpoint(),
        )
    }

    fn classify(&self, operation: Operation, err: opendal::Error) -> String {
        classify(self.cfg, operation, err)
    }

    /// Whether a directory exists before the probe writes (an error counts as "exists", so
    /// cleanup never removes something it is unsure about).
    async fn exists_before(&self, dir: &str) -> bool {
        if Instant::now() >= self.deadline {
            return true;
        }
        match tokio::time::timeout_at(self.deadline, self.op.stat(dir)).await {
            Ok(Ok(_)) => true,
            Ok(Err(e)) => e.kind() != ErrorKind::NotFound,
            Err(_) => true,
        }
    }

    /// A directory holds nothing but itself. `None` when it is gone or unknown.
    async fn is_empty(&self, dir: &str) -> Option<bool> {
        match self.op.list(dir).await {
            Ok(entries) => Some(entries.iter().all(|e| e.path() == dir)),
            Err(_) => None,
        }
    }

    /// Remove what the probe wrote: wait for an interrupted multipart upload, delete the probe
    /// directory recursively, then remove the (now empty) directories or folder markers the
    /// probe created, deepest first.
    async fn cleanup(&self, undo: &Undo<'_>, pending: &mut Option<Upload>) -> Result<(), String> {
        if let Some(up) = pending.take() {
            // Interrupted by the timeout: let the upload finish (it aborts itself on failure).
            // Should this wait be cut short too, the task deletes its object when it succeeds.
            up.abandoned.store(true, Ordering::SeqCst);
            if let Err(e) = up.handle.await {
                tracing::debug!(error = %e, "pre-check: the multipart upload task failed");
            }
        }
        let dir = undo.dir;
        match self.op.delete_with(dir).recursive(true).await {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => {
                return Err(format!(
                    "could not remove the probe's objects under {dir}: {}; remove them by hand",
                    self.classify(Operation::Delete, e)
                ))
            }
        }
        let mut dirs = vec![dir.to_string()];
        for (a, existed) in undo.ancestors.iter().zip(undo.existed).rev() {
            if *existed {
                break;
            }
            dirs.push(a.clone());
        }
        for d in &dirs {
            match self.is_empty(d).await {
                Some(true) => {
                    if let Err(e) = self.op.delete(d).await {
                        tracing::debug!(dir = %d, error = %e, "pre-check: removing an empty directory");
                    }
                }
                Some(false) => break,
                None => {}
            }
        }
        match self.op.list_with(dir).recursive(true).await {
            Ok(left) if left.iter().any(|e| e.path() != dir) => Err(format!(
                "{} objects are left under {dir} after cleanup; remove them by hand",
                left.iter().filter(|e| e.path() != dir).count()
            )),
            _ => Ok(()),
        }
    }
}

/// The message of a failed step: the one classifier's diagnosis for this operation.
pub(crate) fn classify(cfg: &ToolConfig, operation: Operation, err: opendal::Error) -> String {
    diagnose(&Site::of(&cfg.backend), Some(operation), &err).1
}

#[cfg(test)]
mod tests;
