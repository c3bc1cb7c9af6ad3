//! Our S3 multipart upload, used by every S3 push: memory stays that of the pipeline's small
//! parts whatever the stream's size, and a stream of unknown size can still reach S3's largest
//! object (5 TiB), where OpenDAL's writer (or rclone's) must guess a part size up front and
//! hold parts of that size in memory.
//!
//! - A stream of one part is one PutObject.
//! - The first [`Limits::direct_parts`] parts (9,000: 70 GiB at 8 MiB) go straight into the
//!   object's upload, up to `concurrency` at once.
//! - A longer stream continues into *segments*: temporary objects in the storage's temporary
//!   directory, each a multipart upload of the same small parts, up to
//!   [`Limits::segment_size`] (5 GiB, S3's largest part). Each finished segment becomes the
//!   object's next part by UploadPartCopy (the service copies it in place, while the next
//!   segment fills) and is then deleted. The remaining 1,000 part numbers × 5 GiB cover the rest of S3's 5 TiB.
//!
//! Abort removes everything the upload made: the object's upload, the open segment's upload,
//! and a segment not yet copied. What a killed process leaves is found by `gc` (incomplete
//! uploads, and segments as temporary files).

use std::sync::Arc;

use bytes::Bytes;
use opendal::ErrorKind;
use tokio::task::{JoinHandle, JoinSet};

use super::api::Part;
use super::Api;
use crate::pipeline::{MAX_PART, MAX_PARTS};
use crate::{Error, Result};

type Answer<T> = std::result::Result<T, opendal::Error>;

/// A part being uploaded or copied: the part when done.
type PartTask = JoinHandle<Answer<Part>>;

/// Where the upload switches to segments, and how large a segment grows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Parts uploaded straight into the object before segments take over.
    pub direct_parts: u32,
    /// The largest segment (at most S3's largest part, 5 GiB).
    pub segment_size: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            direct_parts: 9_000,
            segment_size: MAX_PART,
        }
    }
}

impl Limits {
    /// The defaults, or `BACKUPREPO_S3_DIRECT_PARTS` and `BACKUPREPO_S3_SEGMENT_SIZE` (a size
    /// such as `12Mi`) when set: tests and experiments use them to reach segments with a small
    /// stream.
    pub fn from_env() -> Result<Self> {
        let mut l = Limits::default();
        if let Ok(v) = std::env::var("BACKUPREPO_S3_DIRECT_PARTS") {
            l.direct_parts = v
                .trim()
                .parse()
                .ok()
                .filter(|n| (1..MAX_PARTS as u32).contains(n))
                .ok_or_else(|| {
                    Error::Config(format!(
                        "invalid BACKUPREPO_S3_DIRECT_PARTS {v:?}: use a number from 1 to 9999"
                    ))
                })?;
        }
        if let Ok(v) = std::env::var("BACKUPREPO_S3_SEGMENT_SIZE") {
            l.segment_size =
                backuprepo_toolconfig::size::parse_size("BACKUPREPO_S3_SEGMENT_SIZE", &v)
                    .ok()
                    .filter(|n| (5 << 20..=MAX_PART).contains(n))
                    .ok_or_else(|| {
                        Error::Config(format!(
                            "invalid BACKUPREPO_S3_SEGMENT_SIZE {v:?}: use a size from 5Mi to 5Gi"
                        ))
                    })?;
        }
        Ok(l)
    }
}

/// One multipart upload in progress: parts in flight and parts done.
struct Multipart {
    key: String,
    id: String,
    done: Vec<Part>,
    next: u32,
    bytes: u64,
    in_flight: JoinSet<Answer<Part>>,
}

impl Multipart {
    async fn begin(api: &Arc<Api>, key: String, lock: &[(&'static str, String)]) -> Answer<Self> {
        let id = api.create_upload(&key, lock).await?;
        Ok(Multipart {
            key,
            id,
            done: Vec::new(),
            next: 1,
            bytes: 0,
            in_flight: JoinSet::new(),
        })
    }

    /// Start uploading `body` as the next part, after waiting for a slot.
    async fn add(&mut self, api: &Arc<Api>, body: Bytes, concurrency: usize) -> Answer<()> {
        while self.in_flight.len() >= concurrency.max(1) {
            self.reap().await?;
        }
        let n = self.next;
        self.next += 1;
        self.bytes += body.len() as u64;
        let (api, key, id) = (api.clone(), self.key.clone(), self.id.clone());
        self.in_flight
            .spawn(async move { api.upload_part(&key, &id, n, body).await });
        Ok(())
    }

    /// Wait for one part in flight.
    async fn reap(&mut self) -> Answer<()> {
        match self.in_flight.join_next().await {
            Some(Ok(part)) => {
                self.done.push(part?);
                Ok(())
            }
            Some(Err(e)) => Err(opendal::Error::new(
                ErrorKind::Unexpected,
                format!("a part upload stopped: {e}"),
            )),
            None => Ok(()),
        }
    }

    async fn complete(&mut self, api: &Api) -> Answer<()> {
        while !self.in_flight.is_empty() {
            self.reap().await?;
        }
        self.done.sort_by_key(|p| p.n);
        api.complete(&self.key, &self.id, &self.done).await
    }

    async fn abort(mut self, api: &Api) {
        self.in_flight.abort_all();
        if let Err(e) = api.abort(&self.key, &self.id).await {
            tracing::debug!(error = %e, "abort of an S3 multipart upload failed");
        }
    }
}

/// An object being written: see the module documentation.
pub struct Upload {
    api: Arc<Api>,
    key: String,
    /// Segments are `<segment_prefix><n>`.
    segment_prefix: String,
    limits: Limits,
    concurrency: usize,
    /// The first part, held until a second one shows whether one PutObject will do.
    first: Option<Bytes>,
    object: Option<Multipart>,
    segment: Option<Multipart>,
    /// A segment complete and being copied into the object (then deleted): its key, and the
    /// copy giving the part's number and ETag. One copy runs while the next segment fills.
    copying: Option<(String, PartTask)>,
    /// A segment complete and waiting for the previous copy to finish.
    completed: Option<String>,
    segments: u32,
    /// The object-lock headers of the object (not of its segments).
    lock: Vec<(&'static str, String)>,
}

impl Upload {
    /// An upload of `path` (under the config's root); segments go in `tmp_dir` (a directory
    /// under the root, ending with `/`).
    pub fn new(
        api: Arc<Api>,
        path: &str,
        tmp_dir: &str,
        concurrency: usize,
        limits: Limits,
        lock: Vec<(&'static str, String)>,
    ) -> Self {
        let key = api.key(path);
        let segment_prefix = api.key(&format!("{tmp_dir}segment-{:016x}-", rand::random::<u64>()));
        Upload {
            api,
            key,
            segment_prefix,
            limits,
            concurrency,
            first: None,
            object: None,
            segment: None,
            copying: None,
            completed: None,
            segments: 0,
            lock,
        }
    }

    /// Add the next part (parts but the last are at least 5 MiB).
    pub async fn write(&mut self, part: Bytes) -> Answer<()> {
        let object = match &mut self.object {
            Some(o) => o,
            None => {
                let Some(first) = self.first.take() else {
                    self.first = Some(part);
                    return Ok(());
                };
                let o = self
                    .object
                    .insert(Multipart::begin(&self.api, self.key.clone(), &self.lock).await?);
                o.add(&self.api, first, self.concurrency).await?;
                o
            }
        };
        if object.next <= self.limits.direct_parts {
            return object.add(&self.api, part, self.concurrency).await;
        }
        if self
            .segment
            .as_ref()
            .is_some_and(|s| s.bytes + part.len() as u64 > self.limits.segment_size)
        {
            self.flush_segment().await?;
        }
        let segment = match &mut self.segment {
            Some(s) => s,
            None => {
                self.segments += 1;
                let key = format!("{}{:05}", self.segment_prefix, self.segments);
                self.segment
                    .insert(Multipart::begin(&self.api, key, &[]).await?)
            }
        };
        segment.add(&self.api, part, self.concurrency).await
    }

    /// Complete the open segment, and start copying it into the object as its next part
    /// (deleting it after) once the previous copy is done.
    async fn flush_segment(&mut self) -> Answer<()> {
        let Some(segment) = &mut self.segment else {
            return Ok(());
        };
        segment.complete(&self.api).await?;
        let source = segment.key.clone();
        self.segment = None;
        self.completed = Some(source.clone());
        self.finish_copy().await?;
        let Some(object) = &mut self.object else {
            return Err(opendal::Error::new(
                ErrorKind::Unexpected,
                "a segment without its object's upload",
            ));
        };
        if u64::from(object.next) > MAX_PARTS {
            return Err(opendal::Error::new(
                ErrorKind::Unexpected,
                "the stream is larger than S3's largest object (10,000 parts, 5 TiB); split the backup",
            ));
        }
        let n = object.next;
        object.next += 1;
        let (api, key, id, src) = (
            self.api.clone(),
            object.key.clone(),
            object.id.clone(),
            source.clone(),
        );
        let copy = tokio::spawn(async move {
            let part = api.copy_part(&key, &id, n, &src).await?;
            api.delete(&src).await?;
            Ok(part)
        });
        self.completed = None;
        self.copying = Some((source, copy));
        Ok(())
    }

    /// Wait for the copy in progress, if any, and record its part.
    async fn finish_copy(&mut self) -> Answer<()> {
        let Some((_, copy)) = &mut self.copying else {
            return Ok(());
        };
        let part = copy.await.map_err(|e| {
            opendal::Error::new(
                ErrorKind::Unexpected,
                format!("a segment copy stopped: {e}"),
            )
        })??;
        self.copying = None;
        if let Some(object) = &mut self.object {
            object.done.push(part);
        }
        Ok(())
    }

    /// Finish: the object appears whole, or not at all.
    pub async fn close(&mut self) -> Answer<()> {
        if self.object.is_none() {
            let body = self.first.take().unwrap_or_default();
            return self.api.put(&self.key, body, &self.lock).await;
        }
        self.flush_segment().await?;
        self.finish_copy().await?;
        match &mut self.object {
            Some(o) => o.complete(&self.api).await,
            None => Ok(()),
        }
    }

    /// Remove everything this upload made; the object keeps what it held before.
    pub async fn abort(&mut self) -> Answer<()> {
        self.first = None;
        if let Some(s) = self.segment.take() {
            let key = s.key.clone();
            s.abort(&self.api).await;
            // The segment may have completed just before the failure.
            let _ = self.api.delete(&key).await;
        }
        if let Some((key, copy)) = self.copying.take() {
            copy.abort();
            self.api.delete(&key).await?;
        }
        if let Some(key) = self.completed.take() {
            self.api.delete(&key).await?;
        }
        if let Some(o) = self.object.take() {
            o.abort(&self.api).await;
        }
        Ok(())
    }
}
