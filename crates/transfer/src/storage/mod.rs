//! [`Storage`]: a backend plus datasafed's base path, path sanitising and optional encryption,
//! offering the verbs backup jobs call.

use std::collections::{BTreeSet, VecDeque};
use std::future::Future;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use futures::TryStreamExt;
use opendal::{EntryMode, Operator};

use crate::compress::Codec;
use crate::config::{Backend, ToolConfig};
use crate::crypto::{Encryption, SUFFIX};
use crate::list::{self, Entry, ListOptions, StatResult};
use crate::paths::{self, Remote};
use crate::pipeline::{self, Filters, Shape};
use crate::service::local::{self as localfs, Source};
use crate::service::{self, Site, TMP_DIR};
use crate::{Error, Result};

mod bench;
mod copy;
mod explain;
mod gc;
mod grant;
mod lock;
mod remove;
mod usage;
mod verify;

pub use crate::service::s3::iam::Scope;
pub use bench::{BenchOptions, BenchReport, Trial};
pub use copy::{replicate, Copied, CopyOptions, CopyPlan, CopySummary};
pub use gc::GcOptions;
pub use grant::Granted;
pub use lock::{LockRequest, RetainUntil};
pub use usage::{account, after_check, check_tool, AfterCheck, Checked};
pub use verify::{sniff, Outcome, Summary, VerifyOptions};

/// `chunk_size` when the config has none: KubeBlocks' providers render 50Mi, so a config
/// without it gets the same largest object (10,000 × 50 MiB).
pub const DEFAULT_CHUNK_SIZE: u64 = 50 << 20;
/// Parts in flight while parts are small (rclone's `upload_concurrency` default); the memory
/// bound ([`pipeline::PART_MEMORY`]) holds whatever this is.
pub const DEFAULT_CONCURRENCY: usize = 4;

pub struct Storage {
    op: Operator,
    backend: Backend,
    base: String,
    encryption: Option<Encryption>,
    shape: Shape,
    site: Site,
    /// The local backend's absolute root: push and pull go straight to `std::fs` there.
    local_root: Option<PathBuf>,
    /// TLS options and timeouts, for the calls made beside OpenDAL.
    tuning: crate::config::Tuning,
    /// Our signed S3 requests (uploads, gc, capabilities, lock checks), built on first use:
    /// pull and list never need them.
    s3_api: std::sync::OnceLock<Arc<service::s3::Api>>,
    /// What pushes lock their objects with (S3 object lock), if anything.
    lock: Option<LockRequest>,
}

/// Where pulled data goes.
pub enum Output {
    Stdout,
    File(PathBuf),
    /// Any writer (a copy's pipe into another storage).
    Writer(Box<dyn Write + Send>),
}

/// Where pushed data comes from.
pub enum Input {
    /// Standard input, with the size it is expected to have when the caller knows
    /// (`--expected-size`, `DATASAFED_EXPECTED_SIZE`): parts are sized so that it fits.
    Stdin { expected_size: Option<u64> },
    /// A file: its size is the expected size.
    File(PathBuf),
    /// Any reader, with its size when known (a copy's pipe from another storage).
    Reader(Box<dyn std::io::Read + Send>, Option<u64>),
}

impl Storage {
    /// Open a storage from a parsed config, a base path (`DATASAFED_BACKEND_BASE_PATH`) and an
    /// optional encryption setting.
    pub fn open(cfg: &ToolConfig, base_path: &str, encryption: Option<Encryption>) -> Result<Self> {
        let op = service::build(cfg)?;
        let base = paths::base_path(base_path)?;
        let object_store = !cfg.backend.has_directories();
        // FTP and local directories take one stream: 1 MiB pieces, one at a time.
        let shape = Shape {
            chunk_size: match cfg.tuning.chunk_size {
                Some(c) if object_store => c.clamp(pipeline::MIN_PART, pipeline::MAX_PART),
                None if object_store => DEFAULT_CHUNK_SIZE,
                _ => 1 << 20,
            },
            concurrency: cfg.tuning.concurrency.unwrap_or(if object_store {
                DEFAULT_CONCURRENCY
            } else {
                1
            }),
            expected_size: None,
            max_parts: service::of(&cfg.backend).part_limit(),
        };
        let local_root = match &cfg.backend {
            Backend::Local(c) => Some(
                std::path::absolute(&c.root)
                    .map_err(|e| Error::io(format!("resolve {}", c.root.display()), e))?,
            ),
            _ => None,
        };
        Ok(Storage {
            op,
            backend: cfg.backend.clone(),
            base,
            encryption,
            shape,
            site: Site::of(&cfg.backend),
            local_root,
            tuning: cfg.tuning.clone(),
            s3_api: std::sync::OnceLock::new(),
            lock: Self::configured_lock(&cfg.tuning),
        })
    }

    /// The S3 config and our signed requests to it; `None` for other services.
    fn s3(&self) -> Result<Option<(&crate::config::S3Config, &Arc<service::s3::Api>)>> {
        let Backend::S3(c) = &self.backend else {
            return Ok(None);
        };
        if let Some(api) = self.s3_api.get() {
            return Ok(Some((c, api)));
        }
        let api = Arc::new(service::s3::Api::new(c, &self.tuning)?);
        Ok(Some((c, self.s3_api.get_or_init(|| api))))
    }

    /// Abort the incomplete S3 multipart uploads under `dir` (a path under the root) begun
    /// before `cutoff` (unix seconds; `None`: all), or with `dry_run` only report them; `each`
    /// is told every one. Nothing on other services. Returns how many there were.
    async fn abort_uploads(
        &self,
        dir: &str,
        cutoff: Option<i64>,
        dry_run: bool,
        each: &mut (dyn FnMut(&str) + Send),
    ) -> Result<u64> {
        let Some((_, api)) = self.s3()? else {
            return Ok(0);
        };
        let prefix = api.key(dir);
        let uploads = api
            .incomplete_uploads(&prefix)
            .await
            .map_err(|e| self.err(e))?;
        let mut n = 0;
        for u in uploads {
            if !gc::abortable(&prefix, cutoff, &u.key, u.initiated) {
                continue;
            }
            if !dry_run {
                api.abort(&u.key, &u.upload_id)
                    .await
                    .map_err(|e| self.err(e))?;
            }
            n += 1;
            each(&format!(
                "incomplete multipart upload of {} ({})",
                u.key, u.upload_id
            ));
        }
        Ok(n)
    }

    /// The size of the object `key` and, where the service keeps one for the whole object,
    /// its CRC32C to check a read against: one HEAD with `x-amz-checksum-mode` (S3 with our
    /// own signing), else OpenDAL's stat. A multipart object's composite checksum (`...-N`)
    /// needs the part boundaries, so it is not used. A missing object is told apart from a
    /// missing bucket.
    async fn head_for_read(&self, key: &str) -> Result<(u64, Option<u32>)> {
        use base64::Engine as _;
        let decode = |v: String| -> Option<u32> {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(v.as_bytes())
                .ok()?;
            Some(u32::from_be_bytes(bytes.try_into().ok()?))
        };
        let found = match self.s3()? {
            Some((c, api)) if service::s3::signs_itself(c) => api
                .head_checked(&api.key(key))
                .await
                .map(|(size, crc)| (size, crc.and_then(decode))),
            _ => match self.op.stat(key).await {
                Ok(m) if m.is_dir() => return Err(Error::NotFound),
                r => r.map(|m| (m.content_length(), None)),
            },
        };
        match found {
            Ok(v) => Ok(v),
            Err(e) if e.kind() == opendal::ErrorKind::NotFound => {
                // A HEAD says only "404": tell a missing bucket apart from a missing object.
                self.check_bucket().await?;
                Err(Error::NotFound)
            }
            Err(e) => Err(self.err(e)),
        }
    }

    fn stored_key(&self, key: &str) -> String {
        match &self.encryption {
            Some(_) => format!("{key}{SUFFIX}"),
            None => key.to_string(),
        }
    }

    fn err(&self, e: opendal::Error) -> Error {
        self.site.error(e)
    }

    /// Refuse `what` (a write) on a read-only repository, before any request.
    fn writable(&self, what: &str) -> Result<()> {
        if self.tuning.read_only {
            return Err(Error::ReadOnly(format!(
                "{what} is refused: the repository is read-only (annotation backuprepo.io/read-only: \"true\"; `read_only = true` in the tool config); pull, list, stat and verify still work; to write, remove the annotation"
            )));
        }
        Ok(())
    }

    /// `push lpath rpath`: overwrites; returns plaintext bytes read.
    pub async fn push(
        &self,
        input: Input,
        rpath: &str,
        codec: Option<Codec>,
        progress: Option<Arc<AtomicU64>>,
        cancel: impl Future<Output = ()>,
    ) -> Result<u64> {
        self.writable("push")?;
        let remote = paths::resolve_file(&self.base, rpath)?;
        let (source, expected_size) = match input {
            Input::Stdin { expected_size } => (Source::Stdin, expected_size),
            Input::Reader(r, size) => (Source::Reader(r), size),
            Input::File(p) => {
                if p.is_dir() {
                    return Err(Error::InvalidPath(format!(
                        "{} is a directory",
                        p.display()
                    )));
                }
                let file = std::fs::File::open(&p)
                    .map_err(|e| Error::io(format!("open {}", p.display()), e))?;
                let size = file.metadata().ok().map(|m| m.len());
                (Source::File(file), size)
            }
        };
        let shape = Shape {
            expected_size,
            ..self.shape
        };
        let filters = Filters {
            codec,
            encryption: self.encryption.clone(),
        };
        self.push_reader(source, &remote, filters, shape, progress, cancel)
            .await
    }

    async fn push_reader(
        &self,
        source: Source,
        remote: &Remote,
        filters: Filters,
        shape: Shape,
        progress: Option<Arc<AtomicU64>>,
        cancel: impl Future<Output = ()>,
    ) -> Result<u64> {
        let lock = self.lock_headers()?;
        if self.backend.has_directories() {
            if let Ok(m) = self.op.stat(&remote.as_dir()).await {
                if m.is_dir() {
                    return Err(Error::InvalidPath("the target is a directory".into()));
                }
            }
        }
        self.check_bucket().await?;
        let key = match &filters.encryption {
            Some(_) => format!("{}{SUFFIX}", remote.key),
            None => remote.key.clone(),
        };
        if let Some(root) = &self.local_root {
            return localfs::push(root, &key, source, filters, progress, cancel).await;
        }
        let writer = match self.s3()? {
            Some((c, api)) if service::s3::signs_itself(c) => {
                pipeline::Writer::S3(Box::new(service::s3::upload::Upload::new(
                    api.clone(),
                    &key,
                    &format!("{}{TMP_DIR}/", self.base),
                    shape.concurrency,
                    service::s3::upload::Limits::from_env()?,
                    lock,
                )))
            }
            _ => pipeline::Writer::OpenDal(
                self.op
                    .writer_with(&key)
                    .concurrent(shape.concurrency)
                    .await
                    .map_err(|e| self.err(e))?,
            ),
        };
        let filters_identity = filters.is_identity();
        let r = pipeline::push(
            writer,
            Box::new(source),
            filters,
            shape,
            progress,
            cancel,
            &self.site,
        )
        .await;
        if let Backend::Ftp(cfg) = &self.backend {
            match &r {
                // OpenDAL's ftp writer creates nothing for an empty stream.
                Ok(0) if filters_identity => service::ftp::put_empty(cfg, &key).await?,
                Err(_) => {
                    if let Err(e) = service::ftp::remove_temporaries(cfg, &key).await {
                        tracing::debug!(error = %e, "ftp cleanup after a failed push");
                    }
                }
                Ok(_) => {}
            }
        }
        r
    }

    /// Fail with "bucket does not exist" before writing, unless the config opted out
    /// (`no_check_bucket`/`no_check_container`). Some servers create a bucket on the first PUT;
    /// backuprepo never lets that happen by accident (KB#10007). The listing is of the base
    /// path, which a key scoped to it may list (a namespace's key may not list the bucket).
    async fn check_bucket(&self) -> Result<()> {
        if !service::of(&self.backend).checks_bucket_on_write() {
            return Ok(());
        }
        let dir = match self.base.as_str() {
            "" => "/",
            b => b,
        };
        let mut lister = self
            .op
            .lister_with(dir)
            .limit(1)
            .await
            .map_err(|e| self.err(e))?;
        match lister.try_next().await {
            Ok(_) => Ok(()),
            Err(e) if crate::diagnose::is_gone(&e) => Ok(()),
            Err(e) => Err(self.err(e)),
        }
    }

    /// `pull rpath lpath`. A file output is written to a temporary name beside it and renamed
    /// into place only when the whole object verified, so a failed pull never leaves a partial
    /// file under the requested name.
    pub async fn pull(
        &self,
        rpath: &str,
        output: Output,
        codec: Option<Codec>,
        progress: Option<Arc<AtomicU64>>,
        cancel: impl Future<Output = ()>,
    ) -> Result<u64> {
        let remote = paths::resolve_file(&self.base, rpath)?;
        let key = self.stored_key(&remote.key);
        let filters = Filters {
            codec,
            encryption: self.encryption.clone(),
        };
        let (out, partial): (Box<dyn Write + Send>, Option<(PathBuf, PathBuf)>) = match output {
            Output::Stdout => (Box::new(crate::stdout::stdout()), None),
            Output::Writer(w) => (w, None),
            Output::File(path) => {
                let tmp = partial_name(&path);
                if let Some(parent) = path.parent() {
                    create_dirs_0755(parent)?;
                }
                let file = std::fs::File::create(&tmp)
                    .map_err(|e| Error::io(format!("create {}", tmp.display()), e))?;
                (
                    Box::new(std::io::BufWriter::with_capacity(1 << 20, file)),
                    Some((tmp, path)),
                )
            }
        };
        let r = self.fetch(&key, out, filters, progress, cancel).await;
        match (r, partial) {
            (r, None) => r,
            (Ok(n), Some((tmp, path))) => {
                std::fs::rename(&tmp, &path)
                    .map_err(|e| Error::io(format!("rename into {}", path.display()), e))?;
                Ok(n)
            }
            (Err(e), Some((tmp, _))) => {
                let _ = std::fs::remove_file(&tmp);
                Err(e)
            }
        }
    }

    /// Stream the stored object `key` through `filters` into `out`.
    async fn fetch(
        &self,
        key: &str,
        out: Box<dyn Write + Send>,
        filters: Filters,
        progress: Option<Arc<AtomicU64>>,
        cancel: impl Future<Output = ()>,
    ) -> Result<u64> {
        if let Some(root) = &self.local_root {
            return localfs::pull(root, key, out, filters, progress, cancel).await;
        }
        let (size, crc32c) = self.head_for_read(key).await?;
        pipeline::pull(
            &self.op, key, size, crc32c, out, filters, progress, cancel, &self.site,
        )
        .await
    }

    /// Convert a backend entry (path relative to the storage root) into a listed entry, or
    /// `None` for things we hide: our temporary files and, with encryption, non-`.enc` objects.
    fn to_entry(&self, path: &str, size: u64, mtime: i64, is_dir: bool) -> Option<Entry> {
        if is_temporary(&self.backend, path) {
            return None;
        }
        let rel = path.strip_prefix(&self.base).unwrap_or(path);
        if is_dir {
            return Some(Entry::new(
                format!("{}/", rel.trim_end_matches('/')),
                0,
                mtime,
                true,
            ));
        }
        match &self.encryption {
            None => Some(Entry::new(rel.to_string(), size, mtime, false)),
            Some(enc) => {
                let plain = rel.strip_suffix(SUFFIX)?;
                Some(Entry::new(
                    plain.to_string(),
                    enc.algorithm.plain_size(size),
                    mtime,
                    false,
                ))
            }
        }
    }

    /// Probe `remote` as a single object (no trailing slash given).
    async fn probe_object(&self, remote: &Remote) -> Result<Option<Entry>> {
        if remote.dir || remote.key.is_empty() {
            return Ok(None);
        }
        let key = self.stored_key(&remote.key);
        match self.op.stat(&key).await {
            Ok(m) if !m.is_dir() => {
                Ok(self.to_entry(&key, m.content_length(), mtime_of(&m), false))
            }
            Ok(_) => Ok(None),
            Err(e) if crate::diagnose::is_gone(&e) => Ok(None),
            Err(e) => Err(self.err(e)),
        }
    }

    /// Walk `dir` (an OpenDAL dir path), calling `f` with every entry up to `max_depth`
    /// (1 = direct children). Directories are reported once each, also on object stores where
    /// they exist only as key prefixes. Returns whether anything at all was found.
    async fn walk<F: FnMut(Entry)>(
        &self,
        dir: &str,
        recursive: bool,
        max_depth: Option<u32>,
        f: &mut F,
    ) -> Result<bool> {
        let dir_prefix = if dir == "/" {
            String::new()
        } else {
            dir.to_string()
        };
        let depth_of = |p: &str| {
            p.strip_prefix(&dir_prefix)
                .unwrap_or(p)
                .trim_end_matches('/')
                .split('/')
                .count() as u32
        };
        let limit = if recursive { max_depth } else { Some(1) };
        let native = recursive && self.op.info().capability().list_with_recursive;
        let mut seen_dirs: BTreeSet<String> = BTreeSet::new();
        let mut found = false;
        let mut queue = VecDeque::from([dir.to_string()]);
        while let Some(d) = queue.pop_front() {
            let lister = match self.op.lister_with(&d).recursive(native).await {
                Ok(l) => l,
                Err(e) if crate::diagnose::is_gone(&e) => continue,
                Err(e) => return Err(self.err(e)),
            };
            let mut lister = lister;
            loop {
                let item = match lister.try_next().await {
                    Ok(Some(item)) => item,
                    Ok(None) => break,
                    Err(e) if crate::diagnose::is_gone(&e) => break,
                    Err(e) => return Err(self.err(e)),
                };
                let path = item.path().to_string();
                if path == d || path == dir_prefix || (d == "/" && path == "/") {
                    continue;
                }
                found = true;
                let meta = item.metadata();
                let is_dir = meta.mode() == EntryMode::DIR || path.ends_with('/');
                // Directories implied by this entry's key (object stores list only objects).
                let rel = path
                    .strip_prefix(&dir_prefix)
                    .unwrap_or(&path)
                    .trim_end_matches('/');
                let parts: Vec<&str> = rel.split('/').collect();
                for i in 1..parts.len() {
                    let sub = format!("{dir_prefix}{}/", parts[..i].join("/"));
                    if limit.is_some_and(|l| i as u32 > l) {
                        break;
                    }
                    if !is_temporary(&self.backend, &sub) && seen_dirs.insert(sub.clone()) {
                        if let Some(e) = self.to_entry(&sub, 0, 0, true) {
                            f(e);
                        }
                    }
                }
                if limit.is_some_and(|l| depth_of(&path) > l) {
                    continue;
                }
                if is_dir {
                    if is_temporary(&self.backend, &path) || !seen_dirs.insert(path.clone()) {
                        continue;
                    }
                    if recursive && !native {
                        queue.push_back(path.clone());
                    }
                    if let Some(e) = self.to_entry(&path, 0, mtime_of(meta), true) {
                        f(e);
                    }
                } else if let Some(e) =
                    self.to_entry(&path, meta.content_length(), mtime_of(meta), false)
                {
                    f(e);
                }
            }
        }
        Ok(found)
    }

    /// `list rpath`. Calls `f` with each entry: sorted when not recursive, streamed otherwise.
    pub async fn list(
        &self,
        rpath: &str,
        opts: &ListOptions,
        f: &mut dyn FnMut(&Entry),
    ) -> Result<()> {
        opts.validate()?;
        let remote = paths::resolve(&self.base, rpath)?;
        if let Some(e) = self.probe_object(&remote).await? {
            if opts.accepts(&e) {
                f(&e);
            }
            return Ok(());
        }
        let dir = remote.as_dir();
        let is_root = remote.key.is_empty() || remote.key == self.base.trim_end_matches('/');
        let mut collected = Vec::new();
        let found = if opts.recursive {
            self.walk(&dir, true, opts.max_depth, &mut |e| {
                if opts.accepts(&e) {
                    f(&e);
                }
            })
            .await?
        } else {
            self.walk(&dir, false, None, &mut |e| {
                if opts.accepts(&e) {
                    collected.push(e);
                }
            })
            .await?
        };
        if !found && !is_root && !self.dir_exists(&dir).await? {
            return Err(Error::DirNotFound);
        }
        list::sort(&mut collected, opts.sort.unwrap_or_default(), opts.reverse);
        for e in &collected {
            f(e);
        }
        Ok(())
    }

    /// An empty listing means "missing" on object stores; on ftp/local an empty directory exists.
    async fn dir_exists(&self, dir: &str) -> Result<bool> {
        if !self.backend.has_directories() {
            return Ok(false);
        }
        match self.op.stat(dir).await {
            Ok(m) => Ok(m.is_dir()),
            Err(e) if e.kind() == opendal::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(self.err(e)),
        }
    }

    /// `stat rpath`: recursive counts; a file is one entry.
    pub async fn stat(&self, rpath: &str) -> Result<StatResult> {
        let remote = paths::resolve(&self.base, rpath)?;
        if let Some(e) = self.probe_object(&remote).await? {
            return Ok(StatResult {
                total_size: e.size,
                entries: 1,
                dirs: 0,
                files: 1,
            });
        }
        let mut r = StatResult::default();
        let dir = remote.as_dir();
        let found = self
            .walk(&dir, true, None, &mut |e| {
                r.entries += 1;
                if e.is_dir {
                    r.dirs += 1;
                } else {
                    r.files += 1;
                    r.total_size += e.size;
                }
            })
            .await?;
        let is_root = remote.key.is_empty() || remote.key == self.base.trim_end_matches('/');
        if !found && !is_root && !self.dir_exists(&dir).await? {
            return Err(Error::DirNotFound);
        }
        Ok(r)
    }

    /// Versioning and object lock of the bucket (S3 family; `None` elsewhere, or when the
    /// service does not say).
    pub async fn capabilities(&self) -> Option<backuprepo_api::StorageCapabilities> {
        let (_, api) = self.s3().ok()??;
        let versioning = match api.versioning().await {
            Ok(v) => Some(v),
            Err(e) => {
                tracing::debug!(error = %e, "cannot read the bucket's versioning");
                None
            }
        };
        let object_lock = match api.object_lock().await {
            Ok(l) => l,
            Err(e) => {
                tracing::debug!(error = %e, "cannot read the bucket's object lock");
                None
            }
        };
        Some(backuprepo_api::StorageCapabilities {
            versioning,
            object_lock,
        })
    }
}

impl Drop for Storage {
    fn drop(&mut self) {
        if let Some(root) = &self.local_root {
            localfs::tidy(root);
        }
    }
}

fn mtime_of(m: &opendal::Metadata) -> i64 {
    m.last_modified()
        .map(|t| t.into_inner().as_second())
        .unwrap_or(0)
}

/// Our own in-flight files: the local backend's temporary directory, and OpenDAL's ftp
/// temporary names (`<name>.<8 random alphanumerics>`) left by a killed upload.
pub(crate) fn is_temporary(backend: &Backend, path: &str) -> bool {
    let p = path.trim_end_matches('/');
    if p.split('/')
        .any(|c| c == TMP_DIR || c == crate::probe::PROBE_DIR)
    {
        return true;
    }
    service::of(backend).is_temporary(p.rsplit('/').next().unwrap_or(p))
}

fn partial_name(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.partial-{}", std::process::id()))
}

fn create_dirs_0755(dir: &Path) -> Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    if dir.as_os_str().is_empty() || dir.is_dir() {
        return Ok(());
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o755)
        .create(dir)
        .map_err(|e| Error::io(format!("create {}", dir.display()), e))
}
