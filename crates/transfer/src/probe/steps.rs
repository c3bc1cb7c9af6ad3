//! The probe's operations, one function each (bucket, put, get, list, multipart, delete), and
//! the small helpers they share. Each returns what it saw or the failure to report.

use super::*;

pub(super) async fn bucket_check(ctx: &Ctx<'_>) -> StepResult {
    let what = match service::of(&ctx.cfg.backend).bucket_check() {
        Ok(what) => what,
        Err(skipped) => skipped.to_string(),
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
        Err(e) if crate::diagnose::is_gone(&e) => Ok(Some(format!("{what} (empty so far)"))),
        Err(e) => Err(ctx.classify(Operation::Bucket, e)),
    }
}

/// Read-only check, in place of get: read the start of the first object stored under `base`
/// (nothing stored yet passes: there is nothing to read).
pub(super) async fn get_existing(ctx: &Ctx<'_>, base: &str) -> StepResult {
    let dir = if base.is_empty() { "/" } else { base };
    let mut lister = match ctx.op.lister_with(dir).recursive(true).await {
        Ok(l) => l,
        Err(e) if crate::diagnose::is_gone(&e) => return Ok(Some("nothing stored yet".into())),
        Err(e) => return Err(ctx.classify(Operation::Get, e)),
    };
    loop {
        let entry = match lister.try_next().await {
            Ok(Some(e)) => e,
            Ok(None) => return Ok(Some("nothing stored yet: nothing to read".into())),
            Err(e) if crate::diagnose::is_gone(&e) => return Ok(Some("nothing stored yet".into())),
            Err(e) => return Err(ctx.classify(Operation::Get, e)),
        };
        let path = entry.path().to_string();
        if entry.metadata().is_dir() || crate::storage::is_temporary(&ctx.cfg.backend, &path) {
            continue;
        }
        let size = ctx
            .op
            .stat(&path)
            .await
            .map_err(|e| ctx.classify(Operation::Get, e))?
            .content_length();
        let got = ctx
            .op
            .read_with(&path)
            .range(0..size.min(4096))
            .await
            .map_err(|e| ctx.classify(Operation::Get, e))?;
        return Ok(Some(format!(
            "read {} bytes of {path} (read-only: an existing object)",
            got.len()
        )));
    }
}

/// Read-only check, in place of list: list `base`.
pub(super) async fn list_base(ctx: &Ctx<'_>, base: &str) -> StepResult {
    let dir = if base.is_empty() { "/" } else { base };
    match ctx.op.list(dir).await {
        Ok(entries) => Ok(Some(format!(
            "listed {dir}: {} entries (read-only)",
            entries.iter().filter(|e| e.path() != dir).count()
        ))),
        Err(e) if crate::diagnose::is_gone(&e) => Ok(Some(format!("listed {dir}: empty so far"))),
        Err(e) => Err(ctx.classify(Operation::List, e)),
    }
}

pub(super) async fn put(ctx: &Ctx<'_>, key: &str, content: &Bytes) -> StepResult {
    ctx.op
        .write(key, content.clone())
        .await
        .map_err(|e| ctx.classify(Operation::Put, e))?;
    Ok(Some(format!("wrote {} bytes to {key}", content.len())))
}

pub(super) async fn get(ctx: &Ctx<'_>, key: &str, content: &Bytes) -> StepResult {
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

pub(super) async fn list(ctx: &Ctx<'_>, dir: &str, key: &str) -> StepResult {
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
pub(super) struct Upload {
    pub(super) handle: JoinHandle<opendal::Result<Metadata>>,
    /// Set by cleanup: a late success deletes its own object.
    pub(super) abandoned: Arc<AtomicBool>,
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
pub(super) async fn upload_in_parts(
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

pub(super) async fn multipart(
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
    let how = service::of(&ctx.cfg.backend).multipart_how();
    Ok(Some(format!(
        "uploaded {} as {how} (part size {}, one part at a time), read the part boundary back and deleted it{confirmed}",
        fmt_size(total),
        fmt_size(part_size)
    )))
}

pub(super) async fn delete(ctx: &Ctx<'_>, key: &str) -> StepResult {
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
pub(super) fn ancestors_of(base: &str) -> Vec<String> {
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
pub(super) fn probe_id() -> String {
    let mut r = [0u8; 8];
    rand::thread_rng().fill_bytes(&mut r);
    let hex: String = r.iter().map(|b| format!("{b:02x}")).collect();
    format!("{}-{hex}", chrono::Utc::now().format("%Y%m%dT%H%M%SZ"))
}

/// Incompressible bytes (xorshift seeded from `seed`), so no layer can shortcut the upload.
pub(super) fn pattern(len: usize, seed: &str) -> Vec<u8> {
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
pub(super) fn etag_parts(etag: &str) -> Option<u32> {
    let (_, n) = etag.trim_matches('"').rsplit_once('-')?;
    n.parse().ok()
}

pub(super) fn fmt_duration(d: Duration) -> String {
    if d.subsec_millis() == 0 && d.as_secs() > 0 {
        format!("{}s", d.as_secs())
    } else if d < Duration::from_secs(1) {
        format!("{}ms", d.as_millis())
    } else {
        format!("{:.1}s", d.as_secs_f64())
    }
}

pub(super) fn fmt_size(n: usize) -> String {
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
