//! `copy`: a repository's objects into another storage, as stored (encrypted and compressed
//! objects stay byte for byte what they are, so no pass phrase is needed and the copy reads
//! with the source's settings). Incremental: an object already at the destination with the
//! same size is skipped, so a run after an interruption resumes where it stopped. Nothing is
//! ever deleted at the destination. Each object streams through a pipe (the memory of one
//! pull and one push, whatever its size), and is read back from the destination and checked
//! against the CRC32C of the bytes that left the source before it counts as copied.

use std::io::{self, Write};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};

use super::{Input, Output, Storage};
use crate::list::ListOptions;
use crate::{Error, Result};

/// What happened to one object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Copied {
    /// Copied and verified: its size.
    Copied(u64),
    /// Already at the destination with the same size.
    Skipped(u64),
}

/// The counts of a run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CopySummary {
    pub copied: u64,
    pub skipped: u64,
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

fn value(d: &Arc<Mutex<crc_fast::Digest>>) -> Option<u64> {
    d.lock().ok().map(|d| d.finalize())
}

impl Storage {
    /// Copy every object under `prefix` of this storage into `dst` (both opened without
    /// encryption, so objects move as stored); `each` is told every object's outcome.
    pub async fn copy_to(
        &self,
        dst: &Storage,
        prefix: &str,
        progress: Option<Arc<AtomicU64>>,
        each: &mut dyn FnMut(&str, &Copied),
    ) -> Result<CopySummary> {
        dst.writable("copy")?;
        let mut objects = Vec::new();
        let opts = ListOptions {
            files_only: true,
            recursive: true,
            ..ListOptions::default()
        };
        self.list(prefix, &opts, &mut |e| {
            objects.push((e.path.clone(), e.size))
        })
        .await?;
        objects.sort();
        let mut summary = CopySummary::default();
        for (path, size) in objects {
            if dst.stored_size(&path).await? == Some(size) {
                summary.skipped += 1;
                each(&path, &Copied::Skipped(size));
                continue;
            }
            self.copy_one(dst, &path, size, progress.clone()).await?;
            summary.copied += 1;
            summary.bytes += size;
            each(&path, &Copied::Copied(size));
        }
        Ok(summary)
    }

    /// One object: streamed through a pipe, then read back and checked.
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
        // Read back what the destination holds, and compare.
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
        if value(&sent) != value(&back) {
            return Err(Error::Corrupt(format!(
                "copy {path:?}: the destination does not hold the bytes sent (CRC32C differs); run the copy again"
            )));
        }
        Ok(())
    }
}
