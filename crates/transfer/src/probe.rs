//! The storage pre-check: a probe that looks like the traffic of a real backup.
//!
//! KubeBlocks' pre-check pushes `pre-check` to `<pathPrefix>/precheck.txt`, pulls it and removes
//! it. That misses what breaks first backups in practice: a key that may write small objects but
//! not multipart uploads (KB#8462), a region mismatch (KB#9947), virtual-host-style addressing
//! that DNS cannot resolve (KB#8867). This probe runs, against the same [`Operator`] backups use
//! ([`backend::build`]), one check per operation and reports each:
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

use crate::backend;
use crate::config::{Backend, ToolConfig};
use crate::paths;
use crate::Error;

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
    let op = match backend::build(cfg) {
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

    // 1. bucket
    let mut stop: Option<&'static str> = None;
    match bucket_skip_reason(cfg) {
        Some(reason) => rec.skip(Operation::Bucket, reason),
        None => {
            if !ctx
                .step(&mut rec, Operation::Bucket, bucket_check(&ctx))
                .await
            {
                stop = Some(if rec.timed_out {
                    "not run: the probe timed out"
                } else {
                    "not run: the bucket check failed"
                });
            }
        }
    }

    // Which of the probe directory's ancestors exist already: cleanup removes only the ones
    // the probe created (real directories on ftp/local, folder markers on some S3 servers).
    let ancestors = ancestors_of(&base);
    let mut existed = Vec::with_capacity(ancestors.len());
    if stop.is_none() {
        for a in &ancestors {
            existed.push(ctx.exists_before(a).await);
        }
    }

    // 2. put
    let mut wrote = false;
    let put_ok = match stop {
        Some(reason) => {
            rec.skip(Operation::Put, reason);
            false
        }
        None => {
            wrote = true;
            ctx.step(&mut rec, Operation::Put, put(&ctx, &small_key, &content))
                .await
        }
    };
    if rec.timed_out {
        stop = Some("not run: the probe timed out");
    }
    let needs_put = |stop: Option<&'static str>| match stop {
        Some(reason) => Some(reason),
        None if !put_ok => Some("not run: put failed"),
        None => None,
    };

    // 3. get
    match needs_put(stop) {
        Some(reason) => rec.skip(Operation::Get, reason),
        None => {
            ctx.step(&mut rec, Operation::Get, get(&ctx, &small_key, &content))
                .await;
        }
    }
    if rec.timed_out {
        stop = Some("not run: the probe timed out");
    }

    // 4. list
    match needs_put(stop) {
        Some(reason) => rec.skip(Operation::List, reason),
        None => {
            ctx.step(&mut rec, Operation::List, list(&ctx, &dir, &small_key))
                .await;
        }
    }
    if rec.timed_out {
        stop = Some("not run: the probe timed out");
    }

    // 5. multipart (independent of put: a key may be allowed one and not the other)
    let mut pending: Option<Upload> = None;
    match (stop, multipart_skip_reason(cfg)) {
        (Some(reason), _) => rec.skip(Operation::Multipart, reason),
        (None, Some(reason)) => rec.skip(Operation::Multipart, reason),
        (None, None) => {
            wrote = true;
            ctx.step(
                &mut rec,
                Operation::Multipart,
                multipart(&ctx, &multipart_key, part_size, &mut pending),
            )
            .await;
        }
    }
    if rec.timed_out {
        stop = Some("not run: the probe timed out");
    }

    // 6. delete
    match needs_put(stop) {
        Some(reason) => rec.skip(Operation::Delete, reason),
        None => {
            ctx.step(&mut rec, Operation::Delete, delete(&ctx, &small_key))
                .await;
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
            secrets: secrets_of(cfg),
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
            endpoint_of(self.cfg),
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

fn bucket_skip_reason(cfg: &ToolConfig) -> Option<&'static str> {
    match &cfg.backend {
        Backend::S3(c) if !c.check_bucket => Some(
            "not run: no_check_bucket is set, so backups write without checking the bucket either",
        ),
        Backend::Azblob(c) if !c.check_bucket => Some(
            "not run: no_check_container is set, so backups write without checking the container either",
        ),
        _ => None,
    }
}

fn multipart_skip_reason(cfg: &ToolConfig) -> Option<&'static str> {
    match &cfg.backend {
        Backend::Ftp(_) => Some(
            "not applicable: FTP has no multipart API; an upload is one stream with no part limit",
        ),
        Backend::Local(_) => {
            Some("not applicable: local writes go straight to a file with no part limit")
        }
        Backend::S3(_) | Backend::Azblob(_) => None,
    }
}

async fn bucket_check(ctx: &Ctx<'_>) -> StepResult {
    let what = match &ctx.cfg.backend {
        Backend::S3(c) => format!("bucket {:?} exists", c.bucket),
        Backend::Azblob(c) => format!("container {:?} exists", c.container),
        Backend::Ftp(_) => "logged in; the root directory is readable".to_string(),
        Backend::Local(c) => format!("the root directory {} exists", c.root.display()),
    };
    let mut lister = ctx
        .op
        .lister_with("/")
        .limit(1)
        .await
        .map_err(|e| ctx.classify(Operation::Bucket, e))?;
    match lister.try_next().await {
        Ok(_) => Ok(Some(what)),
        // Nothing under the prefix/root yet: fine, it is created by the first write.
        Err(e) if e.kind() == ErrorKind::NotFound && !is_missing_bucket(&full_text(&e)) => {
            Ok(Some(format!("{what} (empty so far)")))
        }
        Err(e) => Err(ctx.classify(Operation::Bucket, e)),
    }
}

async fn put(ctx: &Ctx<'_>, key: &str, content: &Bytes) -> StepResult {
    ctx.op
        .write(key, content.clone())
        .await
        .map_err(|e| ctx.classify(Operation::Put, e))?;
    Ok(Some(format!("wrote {} bytes to {key}", content.len())))
}

async fn get(ctx: &Ctx<'_>, key: &str, content: &Bytes) -> StepResult {
    let got = ctx
        .op
        .read(key)
        .await
        .map_err(|e| ctx.classify(Operation::Get, e))?
        .to_bytes();
    if got != *content {
        return Err(format!(
            "read back {} bytes from {key} that differ from the {} bytes written: the storage (or a caching proxy or gateway in front of it) returns other data than it was given",
            got.len(),
            content.len()
        ));
    }
    Ok(Some(format!("read {} bytes back; they match", got.len())))
}

async fn list(ctx: &Ctx<'_>, dir: &str, key: &str) -> StepResult {
    let entries = ctx
        .op
        .list(dir)
        .await
        .map_err(|e| ctx.classify(Operation::List, e))?;
    let n = entries.iter().filter(|e| e.path() != dir).count();
    if entries.iter().any(|e| e.path() == key) {
        Ok(Some(format!("listed {dir}: the object is there")))
    } else {
        Err(format!(
            "the object {key} written by put is missing from a listing of {dir} ({n} entries): the storage does not list what it stores (an eventually consistent listing, or a gateway that hides objects); backup cleanup and restore browsing depend on listings"
        ))
    }
}

/// A multipart upload running in its own task. OpenDAL's writer cannot be used again once a
/// future of it was dropped (its retry layer is left in a bad state, so not even `abort` works),
/// so the probe's timeout never cancels the upload itself: it stops waiting, and cleanup waits
/// for the task (bounded), which aborts the upload when it fails.
struct Upload {
    handle: JoinHandle<opendal::Result<Metadata>>,
    /// Set by cleanup: a late success deletes its own object.
    abandoned: Arc<AtomicBool>,
}

impl Upload {
    fn start(op: Operator, key: String, data: Bytes, part_size: usize) -> Self {
        let abandoned = Arc::new(AtomicBool::new(false));
        let flag = abandoned.clone();
        let handle = tokio::spawn(async move {
            let r = upload_in_parts(&op, &key, data, part_size).await;
            if r.is_ok() && flag.load(Ordering::SeqCst) {
                if let Err(e) = op.delete(&key).await {
                    tracing::debug!(error = %e, "pre-check: removing a late multipart object");
                }
            }
            r
        });
        Upload { handle, abandoned }
    }
}

/// Write `data` through a writer that cuts `part_size` chunks with one part in flight: S3's
/// CreateMultipartUpload, UploadPart × 2, CompleteMultipartUpload (Azure: PutBlock × 2 and
/// PutBlockList). On failure the upload is aborted, so no orphaned parts stay behind.
async fn upload_in_parts(
    op: &Operator,
    key: &str,
    data: Bytes,
    part_size: usize,
) -> opendal::Result<Metadata> {
    let mut w = op.writer_with(key).chunk(part_size).concurrent(1).await?;
    let split = part_size.min(data.len());
    let r = async {
        w.write(data.slice(..split)).await?;
        w.write(data.slice(split..)).await?;
        w.close().await
    }
    .await;
    if r.is_err() {
        if let Err(e) = w.abort().await {
            tracing::debug!(error = %e, "pre-check: aborting the multipart upload");
        }
    }
    r
}

async fn multipart(
    ctx: &Ctx<'_>,
    key: &str,
    part_size: usize,
    pending: &mut Option<Upload>,
) -> StepResult {
    let cls = |e| ctx.classify(Operation::Multipart, e);
    let total = part_size + TAIL;
    let data = Bytes::from(pattern(total, key));
    let up = pending.insert(Upload::start(
        ctx.op.clone(),
        key.to_string(),
        data.clone(),
        part_size,
    ));
    let uploaded = (&mut up.handle).await;
    *pending = None;
    uploaded
        .map_err(|e| format!("the upload task failed: {e}"))?
        .map_err(cls)?;

    let meta = ctx.op.stat(key).await.map_err(cls)?;
    if meta.content_length() != total as u64 {
        return Err(format!(
            "the object assembled from 2 parts has {} bytes, {total} were uploaded: the storage dropped or duplicated a part",
            meta.content_length()
        ));
    }
    // A range across the part boundary: the parts were joined in order.
    let lo = part_size.saturating_sub(512);
    let hi = (part_size + 512).min(total);
    let got = ctx
        .op
        .read_with(key)
        .range(lo as u64..hi as u64)
        .await
        .map_err(cls)?
        .to_bytes();
    if got[..] != data[lo..hi] {
        return Err(format!(
            "the bytes around the part boundary (offsets {lo}..{hi}) read back wrong: the storage joined the parts incorrectly"
        ));
    }
    ctx.op.delete(key).await.map_err(|e| {
        format!(
            "uploaded, but removing it failed: {}",
            ctx.classify(Operation::Delete, e)
        )
    })?;
    let confirmed = meta
        .etag()
        .and_then(etag_parts)
        .map(|n| format!("; the server's ETag confirms {n} parts"))
        .unwrap_or_default();
    let how = match &ctx.cfg.backend {
        Backend::Azblob(_) => "2 blocks committed with a block list",
        _ => "a 2-part multipart upload",
    };
    Ok(Some(format!(
        "uploaded {} as {how} (part size {}, one part at a time), read the part boundary back and deleted it{confirmed}",
        fmt_size(total),
        fmt_size(part_size)
    )))
}

async fn delete(ctx: &Ctx<'_>, key: &str) -> StepResult {
    ctx.op
        .delete(key)
        .await
        .map_err(|e| ctx.classify(Operation::Delete, e))?;
    match ctx.op.stat(key).await {
        Err(e) if e.kind() == ErrorKind::NotFound => {
            Ok(Some("deleted; a stat confirms it is gone".to_string()))
        }
        Ok(_) => Err(format!(
            "the storage accepted the delete of {key} but the object is still there: backups could never be removed (object lock, versioning with a retention rule, or a gateway that ignores deletes)"
        )),
        Err(e) => Err(ctx.classify(Operation::Delete, e)),
    }
}

/// `a/b/` → [`a/`, `a/b/`, `a/b/.backuprepo-precheck/`].
fn ancestors_of(base: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    for part in base.split('/').filter(|p| !p.is_empty()) {
        cur.push_str(part);
        cur.push('/');
        out.push(cur.clone());
    }
    out.push(format!("{cur}{PROBE_DIR}/"));
    out
}

/// `<UTC time>-<16 hex digits>`: sortable, and unique enough for concurrent probes.
fn probe_id() -> String {
    let mut r = [0u8; 8];
    rand::thread_rng().fill_bytes(&mut r);
    let hex: String = r.iter().map(|b| format!("{b:02x}")).collect();
    format!("{}-{hex}", chrono::Utc::now().format("%Y%m%dT%H%M%SZ"))
}

/// Incompressible bytes (xorshift seeded from `seed`), so no layer can shortcut the upload.
fn pattern(len: usize, seed: &str) -> Vec<u8> {
    let mut x = seed.bytes().fold(0x9E37_79B9_7F4A_7C15u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01B3)
    }) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// The part count of an S3 multipart ETag (`"<md5>-<n>"`).
fn etag_parts(etag: &str) -> Option<u32> {
    let (_, n) = etag.trim_matches('"').rsplit_once('-')?;
    n.parse().ok()
}

fn fmt_duration(d: Duration) -> String {
    if d.subsec_millis() == 0 && d.as_secs() > 0 {
        format!("{}s", d.as_secs())
    } else if d < Duration::from_secs(1) {
        format!("{}ms", d.as_millis())
    } else {
        format!("{:.1}s", d.as_secs_f64())
    }
}

fn fmt_size(n: usize) -> String {
    const MIB: usize = 1 << 20;
    const KIB: usize = 1 << 10;
    let (m, rest) = (n / MIB, n % MIB);
    match (m, rest) {
        (0, r) if r % KIB == 0 => format!("{} KiB", r / KIB),
        (0, r) => format!("{r} B"),
        (m, 0) => format!("{m} MiB"),
        (m, r) if r % KIB == 0 => format!("{m} MiB + {} KiB", r / KIB),
        (m, r) => format!("{m} MiB + {r} B"),
    }
}

/// Credential values of the config, to be scrubbed from every message.
fn secrets_of(cfg: &ToolConfig) -> Vec<String> {
    let v: Vec<&str> = match &cfg.backend {
        Backend::S3(c) => vec![c.secret_access_key.expose(), c.session_token.expose()],
        Backend::Ftp(c) => vec![c.pass.expose()],
        Backend::Azblob(c) => vec![c.key.expose()],
        Backend::Local(_) => vec![],
    };
    v.into_iter()
        .filter(|s| s.len() >= 4)
        .map(str::to_string)
        .collect()
}

/// Where we talk to, for messages: the endpoint URL (or host:port, or root directory).
fn endpoint_of(cfg: &ToolConfig) -> String {
    match &cfg.backend {
        Backend::S3(c) => backend::s3_endpoint(c).unwrap_or_else(|_| c.endpoint.clone()),
        Backend::Azblob(c) if c.endpoint.is_empty() => {
            format!("https://{}.blob.core.windows.net", c.account)
        }
        Backend::Azblob(c) => c.endpoint.clone(),
        Backend::Ftp(c) => format!("ftp://{}:{}", c.host, c.port),
        Backend::Local(c) => c.root.display().to_string(),
    }
}

/// The error and every source below it, as one line: the interesting part (a DNS or TLS
/// failure) is often only in the innermost source.
fn full_text(err: &opendal::Error) -> String {
    let mut text = err.to_string();
    let mut cur: Option<&dyn std::error::Error> = std::error::Error::source(err);
    while let Some(e) = cur {
        let s = e.to_string();
        if !text.contains(&s) {
            text.push_str(": ");
            text.push_str(&s);
        }
        cur = e.source();
    }
    text
}

/// The causes below the error (for network failures: reqwest → hyper → io), lowercase and
/// without URLs, so a bucket or host name can never look like a symptom. Errors without a
/// source (answers of the service) use their own text.
fn network_text(err: &opendal::Error) -> String {
    let mut parts = Vec::new();
    let mut cur: Option<&dyn std::error::Error> = std::error::Error::source(err);
    while let Some(e) = cur {
        parts.push(e.to_string());
        cur = e.source();
    }
    if parts.is_empty() {
        parts.push(err.to_string());
    }
    strip_urls(&parts.join(": ")).to_lowercase()
}

/// Drop `http://…`/`https://…`/`ftp://…` up to the next space, `)` or `,`.
fn strip_urls(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = ["http://", "https://", "ftp://"]
        .iter()
        .filter_map(|p| rest.find(p))
        .min()
    {
        out.push_str(&rest[..i]);
        let tail = &rest[i..];
        let end = tail
            .find(|c: char| c.is_whitespace() || c == ')' || c == ',')
            .unwrap_or(tail.len());
        out.push_str("<url>");
        rest = &tail[end..];
    }
    out.push_str(rest);
    out
}

/// The innermost cause, short: `Connection refused (os error 111)`,
/// `invalid peer certificate: UnknownIssuer`, ...
fn root_cause(err: &opendal::Error) -> String {
    let mut last: Option<String> = None;
    let mut cur: Option<&dyn std::error::Error> = std::error::Error::source(err);
    while let Some(e) = cur {
        last = Some(e.to_string());
        cur = e.source();
    }
    let s = last.unwrap_or_else(|| err.to_string());
    let s = s.lines().next().unwrap_or_default().to_string();
    if s.chars().count() > 200 {
        format!("{}…", s.chars().take(200).collect::<String>())
    } else {
        s
    }
}

fn is_missing_bucket(text: &str) -> bool {
    text.contains("NoSuchBucket") || text.contains("ContainerNotFound")
}

fn find_code<'a>(text: &str, codes: &[&'a str]) -> Option<&'a str> {
    codes.iter().find(|c| text.contains(*c)).copied()
}

/// Text between `start` and the next `end` after it.
fn between<'a>(text: &'a str, start: &str, end: char) -> Option<&'a str> {
    let i = text.find(start)? + start.len();
    let rest = &text[i..];
    let j = rest.find(end)?;
    Some(&rest[..j]).filter(|s| !s.is_empty() && s.len() < 64)
}

/// Turn an OpenDAL error into one message naming the problem and the fix. Extends
/// [`Error::from_opendal`] with what a pre-check can tell apart: which operation was denied,
/// credentials vs. permissions, the bucket's region, virtual-host DNS failures, TLS.
fn classify(cfg: &ToolConfig, operation: Operation, err: opendal::Error) -> String {
    let text = full_text(&err);
    let lower = text.to_lowercase();
    let target = cfg.backend.target();
    let endpoint = endpoint_of(cfg);
    let has = |needle: &str| lower.contains(needle);
    let net_text = network_text(&err);
    let net = |needle: &str| net_text.contains(needle);

    // Missing bucket / container.
    if is_missing_bucket(&text) {
        return match &cfg.backend {
            Backend::Azblob(c) => format!(
                "the container {:?} does not exist in storage account {:?} at {endpoint}; backuprepo never creates containers: create it, or correct `container` in the BackupRepo's config",
                c.container, c.account
            ),
            Backend::S3(c) => format!(
                "the bucket {:?} does not exist at {endpoint}; backuprepo never creates buckets: create it, or correct `bucket` in the BackupRepo's config",
                c.bucket
            ),
            _ => Error::from_opendal(err, &target).to_string(),
        };
    }

    // Credentials the storage does not accept at all.
    let cred = match &cfg.backend {
        Backend::S3(_) => find_code(
            &text,
            &[
                "InvalidAccessKeyId",
                "SignatureDoesNotMatch",
                "InvalidToken",
                "ExpiredToken",
                "InvalidSecurity",
            ],
        )
        .map(|code| {
            let what = match code {
                "InvalidAccessKeyId" => "the access key ID is unknown to the storage",
                "SignatureDoesNotMatch" => {
                    "the secret access key does not match the access key ID"
                }
                _ => "the session token is invalid or expired",
            };
            (code, what, "check accessKeyId and secretAccessKey in the BackupRepo's credential secret")
        }),
        // Azure answers a bad signature with AuthenticationFailed (Azurite: AuthorizationFailure,
        // which Azure itself uses for missing permissions); both say "failed to authenticate".
        Backend::Azblob(_) => find_code(&text, &["AuthenticationFailed", "InvalidAuthenticationInfo"])
            .or_else(|| {
                has("failed to authenticate")
                    .then(|| find_code(&text, &["AuthorizationFailure"]).unwrap_or("403"))
            })
            .map(|code| {
                (
                    code,
                    "the account key was not accepted",
                    "check the storage account name and accountKey in the BackupRepo's credential secret",
                )
            }),
        Backend::Ftp(_) => (text.contains("[530]")
            || has("login incorrect")
            || has("not logged in")
            || has("authentication failed"))
        .then_some((
            "530",
            "the user or password was not accepted",
            "check the ftp user and password in the BackupRepo's credential secret",
        )),
        Backend::Local(_) => None,
    };
    if let Some((code, what, fix)) = cred {
        return format!("the storage at {target} rejected the credentials ({code}): {what}; {fix}");
    }

    // Region mismatch (S3).
    if let Backend::S3(c) = &cfg.backend {
        let code = find_code(
            &text,
            &[
                "AuthorizationHeaderMalformed",
                "IllegalLocationConstraint",
                "PermanentRedirect",
                "IncorrectEndpoint",
                "InvalidRegion",
            ],
        );
        let header_region = between(&lower, "\"x-amz-bucket-region\": \"", '"');
        let redirect = text.contains("status: 301");
        if code.is_some() || (redirect && header_region.is_some()) {
            let expected = between(&text, "expecting '", '\'')
                .or(header_region)
                .map(str::to_string);
            let configured = if c.region.is_empty() {
                "us-east-1 (the default: `region` is empty)".to_string()
            } else {
                c.region.clone()
            };
            let code = code.map(|c| format!(" ({c})")).unwrap_or_default();
            return match expected {
                Some(r) => format!(
                    "region mismatch at {target}{code}: the bucket is in region {r} but requests are signed for {configured}; set `region: {r}` (the bucket's region) in the BackupRepo's config, or use that region's endpoint"
                ),
                None => format!(
                    "region mismatch at {target}{code}: requests are signed for {configured}, which is not the bucket's region; set `region` to the bucket's region in the BackupRepo's config, or use that region's endpoint"
                ),
            };
        }
    }

    // Denied for this operation only: the credentials are valid, the permission is missing.
    let denied_code = find_code(
        &text,
        &[
            "AccessDenied",
            "AuthorizationPermissionMismatch",
            "AuthorizationFailure",
            "AllAccessDisabled",
        ],
    );
    if err.kind() == ErrorKind::PermissionDenied || denied_code.is_some() {
        let s3 = matches!(cfg.backend, Backend::S3(_));
        let need = match operation {
            Operation::Put if s3 => "write permission (s3:PutObject)",
            Operation::Multipart if s3 => {
                "write permission for multipart uploads (s3:PutObject, s3:AbortMultipartUpload)"
            }
            Operation::Get if s3 => "read permission (s3:GetObject)",
            Operation::List | Operation::Bucket if s3 => "list permission (s3:ListBucket)",
            Operation::Delete if s3 => "delete permission (s3:DeleteObject)",
            Operation::Put | Operation::Multipart => "write permission",
            Operation::Get => "read permission",
            Operation::List | Operation::Bucket => "list permission",
            Operation::Delete => "delete permission",
        };
        let code = denied_code.map(|c| format!(" ({c})")).unwrap_or_default();
        return format!(
            "access denied by {target}{code} for the {operation}: the key needs {need}; grant it in the bucket policy or the key's role (a read-only key cannot hold backups)"
        );
    }

    // TLS: before the connection checks, since a failed handshake is also a failed request.
    if net("certificate")
        || net("handshake")
        || net("rustls")
        || net("invalidcontenttype")
        || net("corrupt message")
        || net("unknownissuer")
        || net("tls")
    {
        return format!(
            "TLS failed with {endpoint}: {}; if the server's certificate comes from a private CA, set `caCert` (ca_cert) to that CA's PEM bundle; `insecure: true` (no_check_certificate = true) skips verification (testing only); if the server speaks plain HTTP, use an http:// endpoint",
            root_cause(&err)
        );
    }

    // DNS.
    if net("dns error")
        || net("failed to lookup address")
        || net("name or service not known")
        || net("no address associated")
        || net("nodename nor servname")
        || net("name resolution")
    {
        if let Backend::S3(c) = &cfg.backend {
            let path_style = c
                .force_path_style
                .unwrap_or(!c.provider.virtual_host_by_default());
            if !path_style {
                let host = endpoint
                    .split_once("://")
                    .map(|(_, h)| h)
                    .unwrap_or(&endpoint)
                    .trim_end_matches('/');
                return format!(
                    "cannot resolve {}.{host}: with virtual-host-style addressing the bucket name is part of the host name, and DNS has no entry for it; set `forcePathStyle: true` (force_path_style = true) so requests go to {endpoint}/{}, or correct the endpoint ({})",
                    c.bucket,
                    c.bucket,
                    root_cause(&err)
                );
            }
        }
        return format!(
            "cannot resolve the host name of {endpoint}: {}; check the endpoint (host) spelling and the cluster's DNS",
            root_cause(&err)
        );
    }

    // Unreachable.
    if net("connection refused")
        || net("tcp connect")
        || net("connect error")
        || net("error sending request")
        || net("connection reset")
        || net("network is unreachable")
        || net("no route to host")
        || net("timed out")
        || net("connection closed")
    {
        return format!(
            "cannot reach {endpoint}: {}; check the endpoint host and port, that the server is running, and that network policies or firewalls allow the connection",
            root_cause(&err)
        );
    }

    if err.kind() == ErrorKind::NotFound && operation == Operation::Get {
        return "the object just written is not there when read back: the storage lacks read-after-write consistency, or a gateway lost the write".to_string();
    }
    Error::from_opendal(err, &target).to_string()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn s3(extra: &str) -> ToolConfig {
        ToolConfig::parse(&format!(
            "[storage]\ntype = s3\nprovider = Minio\naccess_key_id = AK\nsecret_access_key = TOPSECRETVALUE\nendpoint = http://s3.example:9000\nroot = bkt/pre\n{extra}"
        ))
        .unwrap()
    }

    fn e(kind: ErrorKind, msg: &str) -> opendal::Error {
        opendal::Error::new(kind, msg)
    }

    #[test]
    fn region_mismatch_names_the_region() {
        let cfg = s3("region = us-east-1\n");
        let m = classify(
            &cfg,
            Operation::Bucket,
            e(
                ErrorKind::Unexpected,
                "S3Error { code: \"AuthorizationHeaderMalformed\", message: \"The authorization header is malformed; the region 'us-east-1' is wrong; expecting 'eu-west-1'\" }",
            ),
        );
        assert!(m.contains("region mismatch"), "{m}");
        assert!(m.contains("region: eu-west-1"), "{m}");
        assert!(m.contains("us-east-1"), "{m}");

        // A HEAD answered 301 with only the header.
        let m = classify(
            &cfg,
            Operation::Bucket,
            e(
                ErrorKind::Unexpected,
                "response: Parts { status: 301, headers: {\"x-amz-bucket-region\": \"ap-south-1\"} }",
            ),
        );
        assert!(m.contains("region: ap-south-1"), "{m}");

        let m = classify(
            &s3(""),
            Operation::Put,
            e(
                ErrorKind::Unexpected,
                "S3Error { code: \"PermanentRedirect\" }",
            ),
        );
        assert!(m.contains("set `region` to the bucket's region"), "{m}");
        assert!(m.contains("the default"), "{m}");
    }

    #[test]
    fn credentials_and_permissions_are_told_apart() {
        let cfg = s3("");
        let m = classify(
            &cfg,
            Operation::Bucket,
            e(
                ErrorKind::PermissionDenied,
                "S3Error { code: \"SignatureDoesNotMatch\" }",
            ),
        );
        assert!(m.contains("rejected the credentials"), "{m}");
        let m = classify(
            &cfg,
            Operation::Put,
            e(
                ErrorKind::PermissionDenied,
                "S3Error { code: \"AccessDenied\" }",
            ),
        );
        assert!(m.contains("access denied"), "{m}");
        assert!(m.contains("needs write permission"), "{m}");
        let m = classify(
            &cfg,
            Operation::Delete,
            e(ErrorKind::PermissionDenied, "forbidden"),
        );
        assert!(m.contains("delete permission"), "{m}");
    }

    #[test]
    fn azure_bad_key_vs_missing_permission() {
        let cfg = ToolConfig::parse(
            "[storage]\ntype = azureblob\naccount = acct\nkey = S0VZS0VZS0VZ\nendpoint = http://az.example\nroot = c\n",
        )
        .unwrap();
        let m = classify(
            &cfg,
            Operation::Bucket,
            e(
                ErrorKind::PermissionDenied,
                "AuthorizationFailure: Server failed to authenticate the request.",
            ),
        );
        assert!(
            m.contains("rejected the credentials (AuthorizationFailure)"),
            "{m}"
        );
        let m = classify(
            &cfg,
            Operation::Put,
            e(
                ErrorKind::PermissionDenied,
                "AuthorizationPermissionMismatch: This request is not authorized to perform this operation using this permission.",
            ),
        );
        assert!(m.contains("needs write permission"), "{m}");
    }

    #[test]
    fn dns_failure_with_virtual_host_suggests_path_style() {
        let cfg = s3("force_path_style = false\n");
        let m = classify(
            &cfg,
            Operation::Bucket,
            e(
                ErrorKind::Unexpected,
                "send http request: error sending request: client error (Connect): dns error: failed to lookup address information",
            ),
        );
        assert!(m.contains("bkt.s3.example:9000"), "{m}");
        assert!(m.contains("forcePathStyle: true"), "{m}");
        assert!(m.contains("force_path_style = true"), "{m}");
        let m = classify(
            &s3("force_path_style = true\n"),
            Operation::Bucket,
            e(ErrorKind::Unexpected, "dns error: failed to lookup address"),
        );
        assert!(!m.contains("forcePathStyle"), "{m}");
        assert!(m.contains("cannot resolve the host name"), "{m}");
    }

    #[test]
    fn missing_bucket_and_tls() {
        let cfg = s3("");
        let m = classify(
            &cfg,
            Operation::Bucket,
            e(
                ErrorKind::ConfigInvalid,
                "S3Error { code: \"NoSuchBucket\" }",
            ),
        );
        assert!(m.contains("\"bkt\" does not exist"), "{m}");
        assert!(m.contains("never creates buckets"), "{m}");
        let m = classify(
            &cfg,
            Operation::Bucket,
            e(
                ErrorKind::Unexpected,
                "error sending request: invalid peer certificate: UnknownIssuer",
            ),
        );
        assert!(m.contains("caCert"), "{m}");
        assert!(m.contains("insecure"), "{m}");
    }

    #[test]
    fn names_in_urls_never_look_like_symptoms() {
        let cfg = s3("");
        let err = e(ErrorKind::Unexpected, "send http request")
            .with_context("uri", "https://tls-handshake-certificate.example/bkt")
            .set_source(std::io::Error::other(
                "error sending request for url (https://tls-certificate.example/bkt): Connection refused (os error 111)",
            ));
        let m = classify(&cfg, Operation::Bucket, err);
        assert!(m.starts_with("cannot reach http://s3.example:9000"), "{m}");
        assert_eq!(
            strip_urls("a (https://x.y/z) b http://q,c"),
            "a (<url>) b <url>,c"
        );
    }

    #[test]
    fn helpers() {
        assert_eq!(etag_parts("\"0123abcd-2\""), Some(2));
        assert_eq!(etag_parts("\"0123abcd\""), None);
        assert_eq!(fmt_size(5 << 20), "5 MiB");
        assert_eq!(fmt_size((5 << 20) + 1024), "5 MiB + 1 KiB");
        assert_eq!(fmt_duration(Duration::from_secs(2)), "2s");
        assert_eq!(fmt_duration(Duration::from_millis(1500)), "1.5s");
        assert_eq!(fmt_duration(Duration::from_millis(15)), "15ms");
        assert_eq!(
            ancestors_of("a/b/"),
            vec!["a/", "a/b/", "a/b/.backuprepo-precheck/"]
        );
        assert_eq!(ancestors_of(""), vec![".backuprepo-precheck/"]);
        let a = pattern(100, "x");
        assert_eq!(a, pattern(100, "x"));
        assert_ne!(a, pattern(100, "y"));
        let id = probe_id();
        assert_eq!(id.len(), 16 + 1 + 16, "{id}");
        assert_ne!(id, probe_id());
    }

    #[test]
    fn secrets_are_redacted() {
        let cfg = s3("");
        let rec = Recorder::new(&cfg);
        assert_eq!(
            rec.redact("x TOPSECRETVALUE y".to_string()),
            "x <redacted> y"
        );
    }

    #[tokio::test]
    async fn invalid_prefix_and_missing_local_root_report_every_operation() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = ToolConfig::local_backend(&dir.path().display().to_string()).unwrap();
        let r = run(
            &cfg,
            &ProbeOptions {
                path_prefix: "../up".into(),
                ..Default::default()
            },
        )
        .await;
        assert!(!r.passed());
        assert_eq!(r.checks.len(), 6);
        assert!(r
            .failure()
            .unwrap()
            .starts_with("bucket check failed: invalid pathPrefix"));

        let gone = dir.path().join("gone");
        std::fs::create_dir(&gone).unwrap();
        let cfg = ToolConfig::local_backend(&gone.display().to_string()).unwrap();
        std::fs::remove_dir(&gone).unwrap();
        let r = run(&cfg, &ProbeOptions::default()).await;
        assert!(!r.passed());
        assert_eq!(r.checks.len(), 6);
        assert!(r.failure().unwrap().contains("does not exist"), "{r}");
        assert!(r.checks[1..].iter().all(|c| c.outcome == Outcome::Skipped));
    }
}
