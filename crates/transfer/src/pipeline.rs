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
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use opendal::Operator;
use tokio::sync::mpsc;

use crate::compress::{self, Codec, Sink};
use crate::crypto::Encryption;
use crate::{Error, Result};

/// S3 allows 10,000 parts; we double the part size every this many parts, so an unknown-size
/// stream never runs out of parts (8 MiB parts: 8 GiB at 1,000 parts, ~8 TiB at 10,000).
pub const PARTS_PER_TIER: u64 = 1000;
/// Ranged reads on pull: `concurrency` of these in flight.
pub const READ_CHUNK: usize = 4 << 20;
pub const READ_CONCURRENCY: usize = 4;
/// S3's largest part.
pub const MAX_PART: u64 = 5 << 30;

/// How a push is cut and uploaded.
#[derive(Debug, Clone, Copy)]
pub struct Shape {
    /// First part size; doubles every [`PARTS_PER_TIER`] parts, up to [`MAX_PART`].
    pub part_size: usize,
    /// Parts uploaded at once.
    pub concurrency: usize,
}

impl Shape {
    pub fn part_size_at(&self, index: u64) -> usize {
        let tier = (index / PARTS_PER_TIER).min(20) as u32;
        ((self.part_size as u64) << tier).min(MAX_PART.max(self.part_size as u64)) as usize
    }
}

/// Transformations applied on the way in (and undone on the way out).
#[derive(Clone, Default)]
pub struct Filters {
    pub codec: Option<Codec>,
    pub encryption: Option<Encryption>,
}

impl Filters {
    fn is_identity(&self) -> bool {
        self.codec.is_none() && self.encryption.is_none()
    }
}

/// Cuts the byte stream into parts of the scheduled size and sends each to the uploader.
struct PartSink {
    tx: mpsc::Sender<Bytes>,
    shape: Shape,
    index: u64,
    buf: BytesMut,
}

impl PartSink {
    fn new(tx: mpsc::Sender<Bytes>, shape: Shape) -> Self {
        PartSink {
            tx,
            shape,
            index: 0,
            buf: BytesMut::new(),
        }
    }

    fn target(&self) -> usize {
        self.shape.part_size_at(self.index)
    }

    fn send(&mut self) -> io::Result<()> {
        let part = std::mem::take(&mut self.buf).freeze();
        self.index += 1;
        self.tx
            .blocking_send(part)
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "upload stopped"))
    }
}

impl Write for PartSink {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let target = self.target();
        if self.buf.capacity() == 0 {
            self.buf.reserve(target);
        }
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
    let count = |n: usize| {
        if let Some(p) = &progress {
            p.fetch_add(n as u64, Ordering::Relaxed);
        }
    };
    let read_err = |e: io::Error| Error::io("read input", e);
    let mut total = 0u64;
    if filters.is_identity() {
        // Fast path: read straight into the part buffer, no intermediate copy.
        let mut sink = PartSink::new(tx, shape);
        loop {
            let target = sink.target();
            let mut buf = BytesMut::zeroed(target);
            let n = crate::crypto::read_full(&mut input, &mut buf).map_err(read_err)?;
            buf.truncate(n);
            total += n as u64;
            count(n);
            if n == 0 && sink.index > 0 {
                break;
            }
            // An empty input still sends one (empty) part, so every backend creates the
            // object: some (ftp) create nothing when their writer never saw a write.
            sink.buf = buf;
            sink.send().map_err(|e| Error::io("upload", e))?;
            if n < target {
                break;
            }
        }
        return Ok(total);
    }
    let mut chain: Box<dyn Sink> = Box::new(PartSink::new(tx, shape));
    if let Some(enc) = &filters.encryption {
        chain = enc.encryptor(chain);
    }
    if let Some(codec) = filters.codec {
        chain = compress::encoder(codec, chain).map_err(|e| Error::io("start compression", e))?;
    }
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = match input.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(read_err(e)),
        };
        chain
            .write_all(&buf[..n])
            .map_err(|e| Error::io("upload", e))?;
        total += n as u64;
        count(n);
    }
    chain.finish().map_err(|e| Error::io("upload", e))?;
    Ok(total)
}

/// Stream `input` into `key`. On any failure or when `cancel` completes first, the upload is
/// aborted and the target keeps whatever it held before.
#[allow(clippy::too_many_arguments)]
pub async fn push(
    op: &Operator,
    key: &str,
    input: Box<dyn Read + Send>,
    filters: Filters,
    shape: Shape,
    progress: Option<Arc<AtomicU64>>,
    cancel: impl Future<Output = ()>,
    target: &str,
) -> Result<u64> {
    let mut writer = op
        .writer_with(key)
        .concurrent(shape.concurrency)
        .await
        .map_err(|e| Error::from_opendal(e, target))?;
    let (tx, mut rx) = mpsc::channel::<Bytes>(1);
    let producer =
        tokio::task::spawn_blocking(move || produce(input, filters, shape, tx, progress));

    let upload = async {
        while let Some(part) = rx.recv().await {
            writer
                .write(part)
                .await
                .map_err(|e| Error::from_opendal(e, target))?;
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
    match (uploaded, produced) {
        (Ok(()), Ok(n)) => match writer.close().await {
            Ok(_) => Ok(n),
            Err(e) => {
                let _ = writer.abort().await;
                Err(Error::from_opendal(e, target))
            }
        },
        (Err(e), _) | (Ok(()), Err(e)) => {
            if let Err(abort) = writer.abort().await {
                tracing::debug!(error = %abort, "abort after a failed push");
            }
            Err(e)
        }
    }
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
#[allow(clippy::too_many_arguments)]
pub async fn pull(
    op: &Operator,
    key: &str,
    size: u64,
    output: Box<dyn Write + Send>,
    filters: Filters,
    progress: Option<Arc<AtomicU64>>,
    cancel: impl Future<Output = ()>,
    target: &str,
) -> Result<u64> {
    let reader = op
        .reader_with(key)
        .concurrent(READ_CONCURRENCY)
        .chunk(READ_CHUNK)
        .await
        .map_err(|e| Error::from_opendal(e, target))?;
    let mut stream = reader
        .into_bytes_stream(0..size)
        .await
        .map_err(|e| Error::from_opendal(e, target))?;
    let (tx, rx) = mpsc::channel::<Result<Bytes>>(1);
    let received = Arc::new(AtomicU64::new(0));
    let consumer = {
        let received = received.clone();
        tokio::task::spawn_blocking(move || -> Result<u64> {
            let mut src: Box<dyn Read + Send> = Box::new(ChannelReader {
                rx,
                cur: Bytes::new(),
                received,
            });
            if let Some(enc) = &filters.encryption {
                src = enc.decryptor(src);
            }
            if let Some(codec) = filters.codec {
                src = compress::decoder(codec, src)
                    .map_err(|e| Error::io("start decompression", e))?;
            }
            let mut out = Counted {
                inner: output,
                progress,
                total: 0,
            };
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
            out.flush().map_err(|e| Error::io("write output", e))?;
            Ok(out.total)
        })
    };
    let download = async {
        while let Some(item) = stream.next().await {
            let item =
                item.map_err(|e| Error::Storage(format!("download from {target} failed: {e}")));
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
    Ok(written)
}
