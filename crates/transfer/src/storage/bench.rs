//! `bench`: push and pull generated data on the storage itself, over the settings a user can
//! change (`chunk_size`, `upload_concurrency`) within a memory limit, and recommend the fastest.
//!
//! Everything is written under the temporary directory (`.backuprepo-tmp/bench-<random>/`),
//! which listings hide and `gc` clears, and removed when the run ends, fails or is interrupted
//! (with the uploads it left incomplete). Data is not encrypted or compressed: the storage is
//! what is measured.

use std::future::Future;
use std::io::{self, Read};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::{BoxFuture, FutureExt, Shared};

use super::Storage;
use crate::paths;
use crate::pipeline::{Filters, Shape, PART_MEMORY, SMALL_PART};
use crate::service::local::Source;
use crate::service::TMP_DIR;
use crate::Result;

/// A process's resident memory besides part buffers (measured: 15–17 MiB for push and pull).
pub const BASE_MEMORY: u64 = 16 << 20;

#[derive(Debug, Clone, Copy)]
pub struct BenchOptions {
    /// Bytes pushed per trial.
    pub size: u64,
    /// Trials whose estimated peak memory is above this are skipped.
    pub max_memory: u64,
    /// Trials that would start after this much time are skipped.
    pub budget: Duration,
}

impl Default for BenchOptions {
    fn default() -> Self {
        BenchOptions {
            size: 64 << 20,
            max_memory: 64 << 20,
            budget: Duration::from_secs(45),
        }
    }
}

/// One setting measured.
#[derive(Debug, Clone, PartialEq)]
pub struct Trial {
    pub chunk_size: u64,
    pub concurrency: usize,
    /// Estimated peak memory of a push with these settings.
    pub memory: u64,
    /// Push throughput, bytes per second; `None` when skipped.
    pub push: Option<f64>,
    /// Why it was skipped.
    pub skipped: Option<&'static str>,
}

/// What a run found.
#[derive(Debug, Clone)]
pub struct BenchReport {
    pub trials: Vec<Trial>,
    /// Pull throughput (one streaming GET: the settings do not change it).
    pub pull: Option<f64>,
    /// Whether the settings apply (services with parts); FTP and local take one stream.
    pub tunable: bool,
}

impl BenchReport {
    /// The fastest push, preferring less memory among those within 5% of it.
    pub fn best(&self) -> Option<&Trial> {
        let top = self
            .trials
            .iter()
            .filter_map(|t| t.push)
            .fold(None, |m: Option<f64>, v| Some(m.map_or(v, |m| m.max(v))))?;
        self.trials
            .iter()
            .filter(|t| t.push.is_some_and(|v| v >= top * 0.95))
            .min_by_key(|t| (t.memory, t.concurrency))
    }
}

/// Endless pseudo-random bytes (one random block repeated), `left` of them.
struct Generated {
    block: Arc<Vec<u8>>,
    pos: usize,
    left: u64,
}

impl Read for Generated {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = buf
            .len()
            .min(self.block.len() - self.pos)
            .min(usize::try_from(self.left).unwrap_or(usize::MAX));
        buf[..n].copy_from_slice(&self.block[self.pos..self.pos + n]);
        self.pos = (self.pos + n) % self.block.len();
        self.left -= n as u64;
        Ok(n)
    }
}

/// The settings worth trying on this storage, with the memory each needs.
fn grid(storage: &Storage) -> Vec<(u64, usize, u64)> {
    let settings: Vec<(u64, usize)> = if storage.backend.has_directories() {
        // One stream: nothing to tune.
        vec![(storage.shape.chunk_size, 1)]
    } else {
        let mut v = Vec::new();
        for chunk in [5 << 20, SMALL_PART] {
            for concurrency in [1, 2, 4, 8] {
                v.push((chunk, concurrency));
            }
        }
        v
    };
    settings
        .into_iter()
        .map(|(chunk, concurrency)| {
            let shape = Shape {
                chunk_size: chunk,
                concurrency,
                expected_size: None,
                max_parts: storage.shape.max_parts,
            };
            let buffers = shape.buffers_at(0) as u64;
            let memory = BASE_MEMORY + (buffers * shape.part_size_at(0) as u64).min(PART_MEMORY);
            (chunk, concurrency, memory)
        })
        .collect()
}

impl Storage {
    /// Run the trials; `each` is told every one as it ends. `cancel` stops the run (what was
    /// written is removed first).
    pub async fn bench(
        &self,
        opts: &BenchOptions,
        cancel: impl Future<Output = ()> + Send + 'static,
        each: &mut (dyn FnMut(&Trial) + Send),
    ) -> Result<BenchReport> {
        self.writable("bench (it writes)")?;
        let dir = format!("{TMP_DIR}/bench-{:016x}/", rand::random::<u64>());
        // Every transfer watches the same signal, so each cleans up after itself as a push
        // or pull interrupted by a signal does.
        let cancel = cancel.boxed().shared();
        let result = self.trials(&dir, opts, cancel, each).await;
        let cleaned = self.remove_bench_dir(&dir).await;
        let report = result?;
        cleaned?;
        Ok(report)
    }

    async fn trials(
        &self,
        dir: &str,
        opts: &BenchOptions,
        cancel: Shared<BoxFuture<'static, ()>>,
        each: &mut (dyn FnMut(&Trial) + Send),
    ) -> Result<BenchReport> {
        let block = Arc::new({
            let mut b = vec![0u8; 4 << 20];
            rand::Rng::fill(&mut rand::thread_rng(), &mut b[..]);
            b
        });
        let started = Instant::now();
        let mut trials = Vec::new();
        let mut last_key = None;
        for (i, (chunk_size, concurrency, memory)) in grid(self).into_iter().enumerate() {
            let mut trial = Trial {
                chunk_size,
                concurrency,
                memory,
                push: None,
                skipped: None,
            };
            if memory > opts.max_memory {
                trial.skipped = Some("above --max-memory");
            } else if started.elapsed() > opts.budget {
                trial.skipped = Some("out of time");
            } else {
                let remote = paths::resolve_file(&self.base, &format!("{dir}t{i}"))?;
                let shape = Shape {
                    chunk_size,
                    concurrency,
                    expected_size: None,
                    max_parts: self.shape.max_parts,
                };
                let input = Generated {
                    block: block.clone(),
                    pos: 0,
                    left: opts.size,
                };
                let t = Instant::now();
                self.push_reader(
                    Source::Reader(Box::new(input)),
                    &remote,
                    Filters::default(),
                    shape,
                    None,
                    cancel.clone(),
                )
                .await?;
                trial.push = Some(opts.size as f64 / t.elapsed().as_secs_f64());
                // Keep one object for the pull; remove the one before.
                if let Some(old) = last_key.replace(remote.key) {
                    self.op.delete(&old).await.map_err(|e| self.err(e))?;
                }
            }
            each(&trial);
            trials.push(trial);
        }
        let mut pull = None;
        if let Some(key) = &last_key {
            let t = Instant::now();
            let n = self
                .fetch(
                    key,
                    Box::new(io::sink()),
                    Filters::default(),
                    None,
                    cancel.clone(),
                )
                .await?;
            pull = Some(n as f64 / t.elapsed().as_secs_f64());
        }
        Ok(BenchReport {
            trials,
            pull,
            tunable: !self.backend.has_directories(),
        })
    }

    /// Remove the run's directory and, on S3, the uploads it left incomplete.
    async fn remove_bench_dir(&self, dir: &str) -> Result<()> {
        let remote = paths::resolve(&self.base, dir)?;
        let path = remote.as_dir();
        self.abort_uploads(&path, None, false, &mut |_| {}).await?;
        match self.op.delete_with(&path).recursive(true).await {
            Ok(()) => {}
            Err(e) if e.kind() == opendal::ErrorKind::NotFound => {}
            Err(e) => return Err(self.err(e)),
        }
        if !self.backend.has_directories() {
            return Ok(());
        }
        // Directory services keep the emptied directory; remove it (and the temporary
        // directory, when the run made it and it is now empty).
        for d in [path.clone(), format!("{}{TMP_DIR}/", self.base)] {
            match self.op.delete(&d).await {
                Ok(()) => {}
                Err(e) => tracing::debug!(error = %e, dir = d, "bench: directory kept"),
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_best_is_the_fastest_or_a_cheaper_one_as_fast() {
        let t = |chunk: u64, c: usize, memory: u64, push: Option<f64>| Trial {
            chunk_size: chunk,
            concurrency: c,
            memory,
            push,
            skipped: None,
        };
        let r = BenchReport {
            trials: vec![
                t(5, 1, 20, Some(50.0)),
                t(8, 4, 56, Some(100.0)),
                t(5, 4, 46, Some(97.0)),
                t(8, 8, 56, None),
            ],
            pull: None,
            tunable: true,
        };
        assert_eq!(
            r.best().map(|b| (b.chunk_size, b.concurrency)),
            Some((5, 4))
        );
        let none = BenchReport {
            trials: vec![t(8, 8, 56, None)],
            pull: None,
            tunable: true,
        };
        assert!(none.best().is_none());
    }

    #[test]
    fn generated_data_has_the_asked_length() {
        let mut g = Generated {
            block: Arc::new(vec![7u8; 1000]),
            pos: 0,
            left: 2500,
        };
        let mut out = Vec::new();
        g.read_to_end(&mut out).unwrap();
        assert_eq!(out.len(), 2500);
    }
}
