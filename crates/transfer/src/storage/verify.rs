//! `verify`: read every object under a path end to end and check it, writing nothing. What is
//! checked is what a restore would meet: every AEAD chunk tag, the header and the final-chunk
//! flag (AES-256-GCM-STREAM), the compression framing (given, or recognised by its magic
//! number), and that the object reads to its end at its stored size. Objects in datasafed's
//! AES-CFB format carry no authentication: they are reported as such, never as good.

use std::io;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};

use super::explain::Head;
use super::Storage;
use crate::compress::Codec;
use crate::crypto::Algorithm;
use crate::list::{Entry, ListOptions};
use crate::paths;
use crate::pipeline::Filters;
use crate::{Error, Result};

/// What `verify` found for one object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Good,
    Damaged(String),
    /// Stored in a format without authentication (datasafed's AES-CFB).
    Unauthenticated,
}

/// How to verify.
#[derive(Debug, Clone, Copy, Default)]
pub struct VerifyOptions {
    /// The compression used on push; `None`: recognised by its magic number.
    pub codec: Option<Codec>,
    /// Check only this share of the objects (0 < percent ≤ 100), picked at random.
    pub sample_percent: Option<f64>,
}

/// The counts of a run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Summary {
    pub verified: u64,
    pub damaged: u64,
    pub unauthenticated: u64,
}

/// The compression whose magic number `head` starts with.
pub fn sniff(head: &[u8]) -> Option<Codec> {
    match head {
        [0x28, 0xb5, 0x2f, 0xfd, ..] => Some(Codec::Zstd(3)),
        [0x1f, 0x8b, ..] => Some(Codec::Gzip(6)),
        [0x04, 0x22, 0x4d, 0x18, ..] => Some(Codec::Lz4),
        _ => None,
    }
}

impl Storage {
    /// Check every object under `rpath` (a file or a directory); `each` is told the outcome of
    /// every object checked. Storage failures that are not about one object (unreachable,
    /// denied) end the run with an error.
    pub async fn verify(
        &self,
        rpath: &str,
        opts: &VerifyOptions,
        progress: Option<Arc<AtomicU64>>,
        each: &mut dyn FnMut(&Entry, &Outcome),
    ) -> Result<Summary> {
        let mut entries = Vec::new();
        let list = ListOptions {
            files_only: true,
            recursive: true,
            ..ListOptions::default()
        };
        self.list(rpath, &list, &mut |e| entries.push(e.clone()))
            .await?;
        if let Some(p) = opts.sample_percent {
            use rand::Rng;
            let mut rng = rand::thread_rng();
            entries.retain(|_| rng.gen_bool((p / 100.0).clamp(0.0, 1.0)));
        }
        let mut summary = Summary::default();
        for e in &entries {
            let outcome = self.verify_one(e, opts, progress.clone()).await?;
            match &outcome {
                Outcome::Good => summary.verified += 1,
                Outcome::Damaged(_) => {
                    summary.verified += 1;
                    summary.damaged += 1;
                }
                Outcome::Unauthenticated => summary.unauthenticated += 1,
            }
            each(e, &outcome);
        }
        Ok(summary)
    }

    async fn verify_one(
        &self,
        entry: &Entry,
        opts: &VerifyOptions,
        progress: Option<Arc<AtomicU64>>,
    ) -> Result<Outcome> {
        if let Some(enc) = &self.encryption {
            if matches!(enc.algorithm, Algorithm::Cfb(_)) {
                return Ok(Outcome::Unauthenticated);
            }
        }
        let key = self.stored_key(&paths::resolve_file(&self.base, &entry.path)?.key);
        let codec = match opts.codec {
            Some(c) => Some(c),
            // Unencrypted: the stored bytes are the plaintext, and their first 8 bytes tell the
            // compression, so the pass below is the only full read. A head that cannot be
            // read leaves the verdict to that pass.
            None if self.encryption.is_none() => {
                let head = self.op.read_with(&key).range(0..8).await;
                sniff(&head.map(|b| b.to_vec()).unwrap_or_default())
            }
            None => {
                // The plaintext's first bytes: a whole authenticated pass.
                let head = Arc::new(Mutex::new(Vec::new()));
                let filters = Filters {
                    codec: None,
                    encryption: self.encryption.clone(),
                };
                let out = Box::new(Head::new(head.clone(), 8, false));
                if let Err(e) = self
                    .fetch(&key, out, filters, None, std::future::pending())
                    .await
                {
                    return damaged_or_fail(e);
                }
                let head = head.lock().map(|h| h.clone()).unwrap_or_default();
                match sniff(&head) {
                    Some(c) => Some(c),
                    // Not compressed: the pass above read it to its end and authenticated it.
                    None => return Ok(Outcome::Good),
                }
            }
        };
        self.read_through(&key, codec, progress).await
    }

    /// Read `key` to its end through the storage's encryption and `codec`, writing nothing.
    async fn read_through(
        &self,
        key: &str,
        codec: Option<Codec>,
        progress: Option<Arc<AtomicU64>>,
    ) -> Result<Outcome> {
        let filters = Filters {
            codec,
            encryption: self.encryption.clone(),
        };
        match self
            .fetch(
                key,
                Box::new(io::sink()),
                filters,
                progress,
                std::future::pending(),
            )
            .await
        {
            Ok(_) => Ok(Outcome::Good),
            Err(e) => damaged_or_fail(e),
        }
    }
}

/// A failure that says the object is bad is a verdict; one that says the storage cannot be
/// read (unreachable, denied, missing bucket) ends the run.
fn damaged_or_fail(e: Error) -> Result<Outcome> {
    match e {
        Error::Service { .. } | Error::Interrupted(_) => Err(e),
        other => Ok(Outcome::Damaged(other.to_string())),
    }
}
