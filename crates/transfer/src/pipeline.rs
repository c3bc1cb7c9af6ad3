//! Streaming push and pull with bounded memory.
//!
//! Push: a blocking thread reads the input, compresses and encrypts it, and cuts the result into
//! parts; an async task hands parts to OpenDAL's writer, which uploads up to `concurrency` of
//! them at once (multipart on S3, blocks on Azure; straight to a temporary file on ftp/local,
//! renamed into place on close). At most `concurrency + 2` parts exist at any time, whatever
//! the input size. A failure or a signal aborts the upload, so the target key keeps its old
//! object (or stays absent).
//!
//! Pull: OpenDAL reads ranges concurrently into a bounded channel; a blocking thread decrypts,
//! decompresses and writes to the output. A stream shorter than the object's size is an error.

use std::future::Future;
use std::io::{self, Read, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};

use bytes::Bytes;
use futures::StreamExt;
use opendal::Operator;
use tokio::sync::mpsc;

use crate::compress::{self, Codec, Sink};
use crate::crypto::Encryption;
use crate::service::Site;
use crate::{Error, Result};

/// S3's limit on the parts of one upload.
pub const MAX_PARTS: u64 = 10_000;
/// S3's largest part.
pub const MAX_PART: u64 = 5 << 30;
/// S3's smallest part (but the last).
pub const MIN_PART: u64 = 5 << 20;
/// The largest part a push holds in memory while the stream's size is unknown.
pub const SMALL_PART: u64 = 8 << 20;
/// The memory all part buffers of one push may hold together.
pub const PART_MEMORY: u64 = 40 << 20;

/// How a push is cut and uploaded: parts of `min(chunk_size, 8 MiB)`, up to `concurrency` of
/// them uploading, so that memory stays within [`PART_MEMORY`] whatever the stream's size.
///
/// How a large stream of unknown size still fits depends on the service:
/// - S3 (`max_parts: None`): our uploader ([`crate::service::s3::upload`]) composes parts
///   beyond the first 9,000 in the service, so parts never grow: a push holds at most
///   `concurrency + 2` small parts (48 MiB at the defaults, at any chunk_size);
/// - a service with a part limit (`max_parts: Some(m)`, Azure's 50,000 blocks): the first
///   four fifths of the parts are small; then every part is the size that lets the remaining
///   parts reach `m × chunk_size` (rclone's largest object for a stream of unknown size), as
///   many in memory as fit in [`PART_MEMORY`] and at least two (see [`Shape::buffers_at`]);
/// - services that take one stream (FTP, local) never grow them.
///
/// An expected size (a file's, or the hint) raises part sizes so that the stream fits in 95% of
/// the parts, whatever that costs in memory: the user said it is that big (and on S3 it spares
/// the service the copies of the segments).
#[derive(Debug, Clone, Copy)]
pub struct Shape {
    /// `chunk_size` of the tool config (5 MiB to 5 GiB).
    pub chunk_size: u64,
    /// Parts uploaded at once.
    pub concurrency: usize,
    /// The stream's expected size, when known.
    pub expected_size: Option<u64>,
    /// The service's limit on parts, when parts must grow to reach `max_parts × chunk_size`.
    pub max_parts: Option<u64>,
}

impl Shape {
    fn small_part(&self) -> u64 {
        self.chunk_size.min(SMALL_PART)
    }

    /// The size of part `index` (0-based).
    pub fn part_size_at(&self, index: u64) -> usize {
        let small = self.small_part();
        let scheduled = match self.max_parts {
            Some(max) if index >= max / 5 * 4 && small < self.chunk_size => {
                // What the remaining parts must carry for max × chunk_size in all.
                let first = max / 5 * 4;
                let rest = max * self.chunk_size - first * small;
                round_up_mib(rest.div_ceil(max - first))
            }
            _ => small,
        };
        let parts = self.max_parts.unwrap_or(MAX_PARTS);
        let hinted = self
            .expected_size
            .map(|n| round_up_mib(n.div_ceil(parts * 95 / 100)))
            .unwrap_or(0);
        // Services without multipart (one stream) take small pieces below S3's minimum.
        scheduled
            .max(hinted)
            .clamp(MIN_PART.min(self.chunk_size), MAX_PART) as usize
    }

    /// How many part buffers may exist at once while part `index` is filled: those uploading,
    /// one waiting for a slot and the one being filled, within [`PART_MEMORY`]. At least two:
    /// the multipart writers (OpenDAL's and ours) keep the last part they were given until the
    /// next one (or close) arrives, so they can send a small stream as one PUT; with one
    /// buffer the reader would wait for it forever.
    pub fn buffers_at(&self, index: u64) -> usize {
        let part = self.part_size_at(index) as u64;
        ((PART_MEMORY / part) as usize).clamp(2, self.concurrency.max(1) + 2)
    }
}

fn round_up_mib(n: u64) -> u64 {
    n.div_ceil(1 << 20) << 20
}

/// Transformations applied on the way in (and undone on the way out).
#[derive(Clone, Default)]
pub struct Filters {
    pub codec: Option<Codec>,
    pub encryption: Option<Encryption>,
}

impl Filters {
    pub fn is_identity(&self) -> bool {
        self.codec.is_none() && self.encryption.is_none()
    }
}

/// Part buffers are recycled and counted. A part handed to OpenDAL is a `Bytes` that owns a
/// pooled `Vec`; when OpenDAL drops the last reference (the part is uploaded), the `Vec` returns
/// to the pool. At most [`Shape::buffers_at`] buffers exist at once, and the reader blocks for a
/// free one, so a push's memory is bounded by [`PART_MEMORY`] whatever the input size. Reusing the buffers also keeps the allocator
/// from holding on to freed parts (fresh 8 MiB allocations freed on other threads kept ~20 MiB
/// more resident with glibc).
#[derive(Clone)]
struct Pool(Arc<(Mutex<PoolState>, Condvar)>);

struct PoolState {
    idle: Vec<Vec<u8>>,
    alive: usize,
}

impl Pool {
    fn new() -> Self {
        Pool(Arc::new((
            Mutex::new(PoolState {
                idle: Vec::new(),
                alive: 0,
            }),
            Condvar::new(),
        )))
    }

    /// A buffer with at least `capacity` bytes of room; waits while `limit` are in use. Idle
    /// buffers beyond what the limit allows, or too small to grow into, are freed first, so
    /// memory follows the limit down when parts grow.
    fn get(&self, capacity: usize, limit: usize) -> io::Result<Vec<u8>> {
        let poisoned = |_| io::Error::other("part buffer pool poisoned");
        let (lock, freed) = &*self.0;
        let mut st = lock.lock().map_err(poisoned)?;
        while st.alive >= limit.max(1) {
            st = freed.wait(st).map_err(poisoned)?;
        }
        st.alive += 1;
        let keep = limit.saturating_sub(st.alive);
        st.idle.retain(|b| b.capacity() >= capacity);
        let mut b = st.idle.pop().unwrap_or_default();
        st.idle.truncate(keep);
        drop(st);
        b.clear();
        b.reserve_exact(capacity);
        Ok(b)
    }

    fn put(&self, buf: Vec<u8>) {
        let (lock, freed) = &*self.0;
        if let Ok(mut st) = lock.lock() {
            st.alive = st.alive.saturating_sub(1);
            st.idle.push(buf);
        }
        freed.notify_one();
    }
}

struct Pooled {
    buf: Vec<u8>,
    pool: Pool,
}

impl AsRef<[u8]> for Pooled {
    fn as_ref(&self) -> &[u8] {
        &self.buf
    }
}

impl Drop for Pooled {
    fn drop(&mut self) {
        self.pool.put(std::mem::take(&mut self.buf));
    }
}

/// Cuts the byte stream into parts of the scheduled size and sends each to the uploader.
struct PartSink {
    tx: mpsc::Sender<Bytes>,
    shape: Shape,
    index: u64,
    buf: Vec<u8>,
    pool: Pool,
}

impl PartSink {
    fn new(tx: mpsc::Sender<Bytes>, shape: Shape) -> Self {
        PartSink {
            tx,
            shape,
            index: 0,
            buf: Vec::new(),
            pool: Pool::new(),
        }
    }

    fn target(&self) -> usize {
        self.shape.part_size_at(self.index)
    }

    /// Start a new part buffer (from the pool) if there is none.
    fn ensure_buffer(&mut self) -> io::Result<()> {
        if self.buf.capacity() == 0 {
            let limit = self.shape.buffers_at(self.index);
            self.buf = self.pool.get(self.target(), limit)?;
        }
        Ok(())
    }

    fn send(&mut self) -> io::Result<()> {
        let buf = std::mem::take(&mut self.buf);
        let part = Bytes::from_owner(Pooled {
            buf,
            pool: self.pool.clone(),
        });
        self.index += 1;
        self.tx
            .blocking_send(part)
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "upload stopped"))
    }
}

impl Write for PartSink {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let target = self.target();
        self.ensure_buffer()?;
        let n = data.len().min(target - self.buf.len());
        self.buf.extend_from_slice(&data[..n]);
        if self.buf.len() == target {
            self.send()?;
        }
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Sink for PartSink {
    fn finish(mut self: Box<Self>) -> io::Result<()> {
        if !self.buf.is_empty() {
            self.send()?;
        }
        Ok(())
    }
}

/// Read the input, transform it, and feed parts to `tx`. Returns plaintext bytes read.
fn produce(
    mut input: Box<dyn Read + Send>,
    filters: Filters,
    shape: Shape,
    tx: mpsc::Sender<Bytes>,
    progress: Option<Arc<AtomicU64>>,
) -> Result<u64> {
    if filters.is_identity() {
        let mut total = 0u64;
        // Fast path: read straight into the part buffer, no intermediate copy.
        let mut sink = PartSink::new(tx, shape);
        loop {
            let target = sink.target();
            sink.ensure_buffer().map_err(|e| Error::io("upload", e))?;
            // `take` + `read_to_end` fills the buffer's spare capacity up to one part (or EOF)
            // without zeroing it first.
            let n = (&mut input)
                .take(target as u64)
                .read_to_end(&mut sink.buf)
                .map_err(|e| Error::io("read input", e))?;
            total += n as u64;
            if let Some(p) = &progress {
                p.fetch_add(n as u64, Ordering::Relaxed);
            }
            if n == 0 && sink.index > 0 {
                break;
            }
            // An empty input still sends one (empty) part, so every backend creates the
            // object: some (ftp) create nothing when their writer never saw a write.
            sink.send().map_err(|e| Error::io("upload", e))?;
            if n < target {
                break;
            }
        }
        return Ok(total);
    }
    let chain = encoder_chain(&filters, Box::new(PartSink::new(tx, shape)))?;
    encode_into(input, chain, progress.as_deref())
}

/// `sink` wrapped so that what is written is compressed, then encrypted (datasafed's order).
pub(crate) fn encoder_chain(filters: &Filters, sink: Box<dyn Sink>) -> Result<Box<dyn Sink>> {
    let mut chain = sink;
    if let Some(enc) = &filters.encryption {
        chain = enc.encryptor(chain);
    }
    if let Some(codec) = filters.codec {
        chain = compress::encoder(codec, chain).map_err(|e| Error::io("start compression", e))?;
    }
    Ok(chain)
}

/// Copy `input` through an encoder chain and finish it. Returns plaintext bytes read.
pub(crate) fn encode_into(
    mut input: Box<dyn Read + Send>,
    mut chain: Box<dyn Sink>,
    progress: Option<&AtomicU64>,
) -> Result<u64> {
    let mut total = 0u64;
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = match input.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(Error::io("read input", e)),
        };
        chain
            .write_all(&buf[..n])
            .map_err(|e| Error::io("upload", e))?;
        total += n as u64;
        if let Some(p) = progress {
            p.fetch_add(n as u64, Ordering::Relaxed);
        }
    }
    chain.finish().map_err(|e| Error::io("upload", e))?;
    Ok(total)
}

/// Undo the filters on `src` (decrypt, then decompress) and copy it into `out`.
/// Returns plaintext bytes written.
pub(crate) fn decode_into(
    src: Box<dyn Read + Send>,
    filters: &Filters,
    out: Box<dyn Write + Send>,
    progress: Option<Arc<AtomicU64>>,
) -> Result<u64> {
    let mut src = src;
    if let Some(enc) = &filters.encryption {
        src = enc.decryptor(src);
    }
    if let Some(codec) = filters.codec {
        src = compress::decoder(codec, src).map_err(|e| Error::io("start decompression", e))?;
    }
    let mut out = Counted {
        inner: out,
        progress,
        total: 0,
    };
    if filters.is_identity() {
        // std's copy uses copy_file_range/sendfile/splice between files and pipes.
        io::copy(&mut src, &mut out).map_err(|e| Error::io("copy object", e))?;
    } else {
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = match src.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(Error::io("read object", e)),
            };
            out.write_all(&buf[..n])
                .map_err(|e| Error::io("write output", e))?;
        }
    }
    out.flush().map_err(|e| Error::io("write output", e))?;
    Ok(out.total)
}

/// Where a push's parts go: OpenDAL's writer, or our S3 upload.
pub enum Writer {
    OpenDal(opendal::Writer),
    S3(Box<crate::service::s3::upload::Upload>),
}

impl Writer {
    async fn write(&mut self, part: Bytes) -> opendal::Result<()> {
        match self {
            Writer::OpenDal(w) => w.write(part).await,
            Writer::S3(u) => u.write(part).await,
        }
    }

    async fn close(&mut self) -> opendal::Result<()> {
        match self {
            Writer::OpenDal(w) => w.close().await.map(|_| ()),
            Writer::S3(u) => u.close().await,
        }
    }

    async fn abort(&mut self) -> opendal::Result<()> {
        match self {
            Writer::OpenDal(w) => w.abort().await,
            Writer::S3(u) => u.abort().await,
        }
    }
}

/// Stream `input` into `writer`. On any failure or when `cancel` completes first, the upload is
/// aborted and the target keeps whatever it held before.
pub async fn push(
    mut writer: Writer,
    input: Box<dyn Read + Send>,
    filters: Filters,
    shape: Shape,
    progress: Option<Arc<AtomicU64>>,
    cancel: impl Future<Output = ()>,
    site: &Site,
) -> Result<u64> {
    let (tx, mut rx) = mpsc::channel::<Bytes>(1);
    let producer =
        tokio::task::spawn_blocking(move || produce(input, filters, shape, tx, progress));

    let upload = async {
        while let Some(part) = rx.recv().await {
            writer.write(part).await.map_err(|e| site.error(e))?;
        }
        Ok::<(), Error>(())
    };
    tokio::pin!(cancel);
    let uploaded = tokio::select! {
        r = upload => r,
        _ = &mut cancel => Err(Error::Interrupted("stopped by a signal; the upload was aborted".into())),
    };
    drop(rx); // a producer still running sees "upload stopped" at its next part
    let produced = match &uploaded {
        // The channel closed, so the producer has finished: collect its result.
        Ok(()) => producer
            .await
            .map_err(|e| Error::Storage(format!("the reader thread failed: {e}")))?,
        // Do not wait for it: it may be blocked reading an input that never ends.
        Err(_) => Ok(0),
    };
    let result = match (uploaded, produced) {
        (Ok(()), Ok(n)) => writer.close().await.map(|()| n).map_err(|e| site.error(e)),
        (Err(e), _) | (Ok(()), Err(e)) => Err(e),
    };
    if result.is_err() {
        if let Err(abort) = writer.abort().await {
            tracing::debug!(error = %abort, "abort after a failed push");
        }
    }
    result
}

/// Reads the downloaded byte stream from the channel, counting what arrives.
struct ChannelReader {
    rx: mpsc::Receiver<Result<Bytes>>,
    cur: Bytes,
    received: Arc<AtomicU64>,
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.cur.is_empty() {
            match self.rx.blocking_recv() {
                None => return Ok(0),
                Some(Ok(b)) => {
                    self.received.fetch_add(b.len() as u64, Ordering::Relaxed);
                    self.cur = b;
                }
                Some(Err(e)) => return Err(e.into_io()),
            }
        }
        let n = buf.len().min(self.cur.len());
        buf[..n].copy_from_slice(&self.cur[..n]);
        bytes::Buf::advance(&mut self.cur, n);
        Ok(n)
    }
}

/// Counts bytes written, for the progress bar.
struct Counted<W> {
    inner: W,
    progress: Option<Arc<AtomicU64>>,
    total: u64,
}

impl<W: Write> Write for Counted<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.total += n as u64;
        if let Some(p) = &self.progress {
            p.fetch_add(n as u64, Ordering::Relaxed);
        }
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Stream `key` (of `size` stored bytes) into `output`. Returns plaintext bytes written.
/// `crc32c`: the checksum the service keeps for the whole object, when it keeps one: the
/// stored bytes are checked against it as they arrive, and a mismatch fails the pull (a file
/// output is then never put in place).
#[allow(clippy::too_many_arguments)]
pub async fn pull(
    op: &Operator,
    key: &str,
    size: u64,
    crc32c: Option<u32>,
    output: Box<dyn Write + Send>,
    filters: Filters,
    progress: Option<Arc<AtomicU64>>,
    cancel: impl Future<Output = ()>,
    site: &Site,
) -> Result<u64> {
    // One streaming GET: measured against SeaweedFS it was as fast as 4 concurrent 4 MiB ranged
    // reads (which OpenDAL buffers whole) at a quarter of the memory (14 vs 53 MiB for 1 GiB).
    let reader = op.reader(key).await.map_err(|e| site.error(e))?;
    let mut stream = reader
        .into_bytes_stream(0..size)
        .await
        .map_err(|e| site.error(e))?;
    let (tx, rx) = mpsc::channel::<Result<Bytes>>(1);
    let received = Arc::new(AtomicU64::new(0));
    let consumer = {
        let received = received.clone();
        tokio::task::spawn_blocking(move || -> Result<u64> {
            let mut out = Counted {
                inner: output,
                progress,
                total: 0,
            };
            if filters.is_identity() {
                // Fast path: write each downloaded chunk as it is, no intermediate copy.
                let mut rx = rx;
                while let Some(chunk) = rx.blocking_recv() {
                    let chunk = chunk?;
                    received.fetch_add(chunk.len() as u64, Ordering::Relaxed);
                    out.write_all(&chunk)
                        .map_err(|e| Error::io("write output", e))?;
                }
                out.flush().map_err(|e| Error::io("write output", e))?;
                return Ok(out.total);
            }
            let src: Box<dyn Read + Send> = Box::new(ChannelReader {
                rx,
                cur: Bytes::new(),
                received,
            });
            decode_into(src, &filters, out.inner, out.progress)
        })
    };
    let mut digest = crc32c.map(|_| crc_fast::Digest::new(crc_fast::CrcAlgorithm::Crc32Iscsi));
    let download = async {
        while let Some(item) = stream.next().await {
            let item =
                item.map_err(|e| Error::Storage(format!("download from {site} failed: {e}")));
            if let (Ok(chunk), Some(d)) = (&item, digest.as_mut()) {
                d.update(chunk);
            }
            let stop = item.is_err();
            if tx.send(item).await.is_err() || stop {
                break;
            }
        }
        drop(tx);
    };
    tokio::pin!(cancel);
    tokio::select! {
        _ = download => {},
        _ = &mut cancel => return Err(Error::Interrupted("stopped by a signal".into())),
    }
    let written = consumer
        .await
        .map_err(|e| Error::Storage(format!("the writer thread failed: {e}")))??;
    let got = received.load(Ordering::Relaxed);
    if got != size {
        return Err(Error::Corrupt(format!(
            "object is truncated: received {got} of {size} bytes"
        )));
    }
    if let (Some(want), Some(d)) = (crc32c, digest) {
        let read = d.finalize() as u32;
        if read != want {
            return Err(Error::Corrupt(format!(
                "{key}: the bytes read do not match the CRC32C the storage keeps for the object ({read:08x} read, {want:08x} stored): it was changed or damaged after it was written"
            )));
        }
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// A read is checked against the checksum the storage keeps: the right one passes, any
    /// other fails as damage that names the object (here the storage is a directory read
    /// through OpenDAL, the checksum given as S3's HEAD would give it).
    #[tokio::test]
    async fn reads_are_checked_against_the_stored_crc32c() {
        let dir = tempfile::tempdir().unwrap();
        let data: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
        std::fs::write(dir.path().join("obj"), &data).unwrap();
        let cfg = crate::config::ToolConfig::local_backend(dir.path().to_str().unwrap()).unwrap();
        let op = crate::service::build(&cfg).unwrap();
        let site = Site::of(&cfg.backend);
        let filters = || Filters {
            codec: None,
            encryption: None,
        };
        let right = crc_fast::crc32_iscsi(&data);
        let sink = crate::compress::MemorySink::default();
        let n = pull(
            &op,
            "obj",
            data.len() as u64,
            Some(right),
            Box::new(sink.clone()),
            filters(),
            None,
            std::future::pending(),
            &site,
        )
        .await
        .unwrap();
        assert_eq!(n, data.len() as u64);
        let err = pull(
            &op,
            "obj",
            data.len() as u64,
            Some(right ^ 1),
            Box::new(std::io::sink()),
            filters(),
            None,
            std::future::pending(),
            &site,
        )
        .await
        .unwrap_err();
        assert!(
            matches!(&err, Error::Corrupt(m) if m.starts_with("obj: the bytes read do not match the CRC32C")),
            "{err}"
        );
    }

    const MIB: u64 = 1 << 20;

    #[test]
    fn s3_parts_stay_small_whatever_chunk_size() {
        for chunk in [5 * MIB, 8 * MIB, 16 * MIB, 50 * MIB, 64 * MIB] {
            let s = Shape {
                chunk_size: chunk,
                concurrency: 4,
                expected_size: None,
                max_parts: None,
            };
            for i in [0, 999, 1000, 5000, 9999, 100_000] {
                assert_eq!(s.part_size_at(i) as u64, chunk.min(8 * MIB), "{chunk}");
                let held = s.buffers_at(i) as u64 * s.part_size_at(i) as u64;
                assert!(held <= PART_MEMORY, "chunk {chunk}, part {i}: {held}");
            }
        }
        // KubeBlocks' 50Mi: 4 parts of 8 MiB in flight, one waiting (5 buffers, 40 MiB).
        let s = Shape {
            chunk_size: 50 * MIB,
            concurrency: 4,
            expected_size: None,
            max_parts: None,
        };
        assert_eq!(s.buffers_at(0), 5);
        assert_eq!(s.buffers_at(1_000_000), 5);
    }

    #[test]
    fn with_a_part_limit_parts_grow_to_reach_rclones_largest_object() {
        let max = 50_000;
        let total = |s: &Shape| (0..max).map(|i| s.part_size_at(i) as u64).sum::<u64>();
        for chunk in [5 * MIB, 8 * MIB, 50 * MIB, 64 * MIB] {
            let s = Shape {
                chunk_size: chunk,
                concurrency: 4,
                expected_size: None,
                max_parts: Some(max),
            };
            assert_eq!(s.part_size_at(0) as u64, chunk.min(8 * MIB));
            assert_eq!(s.part_size_at(39_999) as u64, chunk.min(8 * MIB));
            for i in [0, 39_999, 40_000, 49_999] {
                let part = s.part_size_at(i) as u64;
                assert!(s.buffers_at(i) as u64 * part <= PART_MEMORY || s.buffers_at(i) == 2);
                assert!((MIN_PART..=MAX_PART).contains(&part));
            }
            // rclone's largest object for a stream of unknown size: max × chunk_size.
            assert!(total(&s) >= max * chunk, "chunk {chunk}: {}", total(&s));
        }
    }

    #[test]
    fn an_expected_size_sizes_the_parts_so_it_fits() {
        let tib = 1u64 << 40;
        let s = Shape {
            chunk_size: 50 * MIB,
            concurrency: 4,
            expected_size: Some(2 * tib),
            max_parts: None,
        };
        assert!(s.part_size_at(0) as u64 * 9_500 >= 2 * tib);
        assert!(
            (0..MAX_PARTS)
                .map(|i| s.part_size_at(i) as u64)
                .sum::<u64>()
                >= 2 * tib
        );
        // A small expected size changes nothing.
        let small = Shape {
            expected_size: Some(tib / 1024),
            ..s
        };
        assert_eq!(small.part_size_at(0) as u64, 8 * MIB);
        assert_eq!(small.buffers_at(0), 5);
    }

    #[test]
    fn one_stream_services_take_small_pieces() {
        let s = Shape {
            chunk_size: MIB,
            concurrency: 1,
            expected_size: Some(10 << 30),
            max_parts: None,
        };
        assert_eq!(s.part_size_at(0) as u64, 2 * MIB);
        assert_eq!(s.part_size_at(5000) as u64, 2 * MIB);
        assert_eq!(s.buffers_at(0), 3);
    }

    #[test]
    fn pool_bounds_live_buffers_and_reuses_them() {
        let pool = Pool::new();
        let a = pool.get(1024, 2).unwrap();
        let b = pool.get(1024, 2).unwrap();
        let a_ptr = a.as_ptr();
        let part = Bytes::from_owner(Pooled {
            buf: a,
            pool: pool.clone(),
        });
        let (tx, rx) = std::sync::mpsc::channel();
        let p = pool.clone();
        let waiter = std::thread::spawn(move || {
            let c = p.get(1024, 2).unwrap();
            tx.send(c.as_ptr() as usize).unwrap();
        });
        // The third buffer must wait while two are alive.
        assert!(rx.recv_timeout(Duration::from_millis(200)).is_err());
        drop(part); // the "upload" finished: its buffer returns to the pool
        let got = rx
            .recv_timeout(Duration::from_secs(5))
            .expect("woken when a buffer returns");
        assert_eq!(
            got, a_ptr as usize,
            "the returned buffer is reused, not reallocated"
        );
        waiter.join().unwrap();
        drop(b);
    }
}
