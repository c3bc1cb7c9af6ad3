//! What a repository holds (`status.usage`): bytes and objects under its path, in all and per
//! top-level directory (the namespaces of KubeBlocks' layout), measured by listing.
//!
//! The cost of one run is bounded where the listing can resume after a key (S3, through
//! OpenDAL's `start_after`): at most `pages × 1,000` entries are read, and the next run resumes
//! after the last key read; until the end is reached the figures are `partial`, a lower bound.
//! Other services are listed whole each run: FTP and local directories bill nothing, and
//! OpenDAL's Azure service cannot resume a listing (left for later).

use std::collections::BTreeMap;

use backuprepo_api::k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use backuprepo_api::{RepoUsage, UsageFigures};
use futures::TryStreamExt;

use super::{is_temporary, Storage};
use crate::Result;

/// Entries in one listing page (S3's and Azure's maximum).
pub const PAGE: u64 = 1000;

/// Count `objects` more (or fewer, when negative) objects of `bytes` in all under `rel` (a
/// path relative to the repository's path): in the totals and in its top-level directory's
/// figures. The one rule of the measurement and of the writes that keep it current
/// (`backuprepo push` and `rm`); figures never go below zero.
pub fn account(usage: &mut RepoUsage, rel: &str, objects: i64, bytes: i64) {
    let rel = rel.trim_start_matches('/');
    let top = match rel.split_once('/') {
        Some((top, _)) => top.to_string(),
        None => String::new(),
    };
    let apply = |v: &mut u64, d: i64| *v = v.saturating_add_signed(d);
    apply(&mut usage.total_bytes, bytes);
    apply(&mut usage.object_count, objects);
    let f = usage.by_prefix.entry(top.clone()).or_insert(UsageFigures {
        total_bytes: 0,
        object_count: 0,
    });
    apply(&mut f.total_bytes, bytes);
    apply(&mut f.object_count, objects);
    if f.object_count == 0 {
        usage.by_prefix.remove(&top);
    }
}

impl Storage {
    /// One run of the measurement, reading at most `budget` listing entries where the listing
    /// can resume, and continuing `previous` when it is partial. `now` is recorded as
    /// `measuredAt`.
    pub async fn measure_usage(
        &self,
        previous: Option<&RepoUsage>,
        budget: u64,
        now: Time,
    ) -> Result<RepoUsage> {
        // Listing paths start with the base path; figures are by the part after it.
        let dir = if self.base.is_empty() {
            "/".to_string()
        } else {
            self.base.clone()
        };
        let caps = self.op.info().capability();
        let resumable = caps.list_with_recursive && caps.list_with_start_after;
        let mut usage = match previous {
            Some(p) if p.partial && resumable && p.resume_after.is_some() => p.clone(),
            _ => RepoUsage {
                total_bytes: 0,
                object_count: 0,
                measured_at: now.clone(),
                by_prefix: BTreeMap::new(),
                partial: false,
                resume_after: None,
                locked: None,
            },
        };
        // On a bucket with object lock, each object counted is looked at (after the listing).
        let lock_api = match self.s3()? {
            Some((_, api)) if matches!(api.object_lock().await, Ok(Some(_))) => Some(api.clone()),
            _ => None,
        };
        let mut counted = Vec::new();
        usage.measured_at = now;
        if !resumable {
            self.walk(&dir, true, None, &mut |e| {
                if !e.is_dir {
                    account(&mut usage, &e.path, 1, e.size as i64);
                }
            })
            .await?;
            return Ok(usage);
        }
        let mut lister = self.op.lister_with(&dir).recursive(true);
        if let Some(after) = usage.resume_after.clone() {
            lister = lister.start_after(&after);
        }
        let mut lister = match lister.await {
            Ok(l) => l,
            Err(e) if crate::diagnose::is_gone(&e) => {
                usage.partial = false;
                usage.resume_after = None;
                return Ok(usage);
            }
            Err(e) => return Err(self.err(e)),
        };
        let budget = budget.max(1);
        let mut read = 0u64;
        let mut last = None;
        loop {
            if read >= budget {
                usage.partial = true;
                usage.resume_after = last;
                if let Some(api) = lock_api {
                    count_locked(&api, &counted, &mut usage).await?;
                }
                return Ok(usage);
            }
            let entry = match lister.try_next().await {
                Ok(Some(e)) => e,
                Ok(None) => break,
                Err(e) if crate::diagnose::is_gone(&e) => break,
                Err(e) => return Err(self.err(e)),
            };
            read += 1;
            let path = entry.path().to_string();
            let meta = entry.metadata();
            if !meta.is_dir() && !path.ends_with('/') && !is_temporary(&self.backend, &path) {
                // The figures are by the path relative to the base path.
                let rel = path.strip_prefix(&self.base).unwrap_or(&path);
                account(&mut usage, rel, 1, meta.content_length() as i64);
                if lock_api.is_some() {
                    counted.push(path.clone());
                }
            }
            last = Some(path);
        }
        usage.partial = false;
        usage.resume_after = None;
        if let Some(api) = lock_api {
            count_locked(&api, &counted, &mut usage).await?;
        }
        Ok(usage)
    }
}

/// Add the locked ones among `keys` (paths under the storage root) to the figures: one HEAD
/// each, 16 at once.
async fn count_locked(
    api: &std::sync::Arc<crate::service::s3::Api>,
    keys: &[String],
    usage: &mut RepoUsage,
) -> Result<()> {
    use futures::StreamExt;
    let now = chrono::Utc::now().timestamp();
    let held: Vec<_> = futures::stream::iter(keys.to_vec())
        .map(|k| {
            let api = api.clone();
            async move { api.lock_of(&api.key(&k), now).await }
        })
        .buffer_unordered(16)
        .collect()
        .await;
    let f = usage.locked.get_or_insert_with(Default::default);
    for h in held {
        let Some(h) =
            h.map_err(|e| crate::Error::Storage(format!("read an object's lock: {e}")))?
        else {
            continue;
        };
        f.object_count += 1;
        f.legal_holds += u64::from(h.legal_hold);
        if let Some(u) = h.until {
            // RFC 3339 dates in UTC, as S3 writes them, order as text.
            if f.first_until.as_ref().is_none_or(|x| &u < x) {
                f.first_until = Some(u.clone());
            }
            if f.last_until.as_ref().is_none_or(|x| &u > x) {
                f.last_until = Some(u);
            }
        }
    }
    if f.object_count == 0 {
        usage.locked = None;
    }
    Ok(())
}

/// What is learnt after a passing check.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct AfterCheck {
    pub usage: Option<RepoUsage>,
    pub capabilities: Option<backuprepo_api::StorageCapabilities>,
}

/// After a passing check (both stores call this): remove old leftovers ([`super::gc`]),
/// measure the usage, and read versioning and object lock. A failure is logged and leaves that
/// part `None` (the status keeps its old figure).
pub async fn after_check(
    cfg: &crate::config::ToolConfig,
    path_prefix: &str,
    previous: Option<&RepoUsage>,
    pages: u64,
    now: Time,
) -> AfterCheck {
    let storage = match Storage::open(cfg, path_prefix, None) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "after the check: cannot open the storage");
            return AfterCheck::default();
        }
    };
    storage.gc_after_check().await;
    let usage = match storage
        .measure_usage(previous, pages.saturating_mul(PAGE), now)
        .await
    {
        Ok(u) => Some(u),
        Err(e) => {
            tracing::warn!(error = %e, "usage after the check failed");
            None
        }
    };
    AfterCheck {
        usage,
        capabilities: storage.capabilities().await,
    }
}

/// A Tool check as both stores run it: the probe, and when it passed, what follows it
/// ([`after_check`]); `now` stamps the usage.
pub async fn check_tool(
    cfg: &crate::config::ToolConfig,
    opts: &crate::probe::ProbeOptions,
    previous: Option<&RepoUsage>,
    pages: u64,
    now: impl Fn() -> Time,
) -> Checked {
    let report = crate::probe::run(cfg, opts).await;
    let after = match report.passed() {
        true => after_check(cfg, &opts.path_prefix, previous, pages, now()).await,
        false => AfterCheck::default(),
    };
    Checked {
        passed: report.passed(),
        message: report.failure().unwrap_or_default(),
        checks: report.status_checks(),
        duration: report.duration,
        after,
    }
}

/// The outcome of [`check_tool`].
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct Checked {
    pub passed: bool,
    /// Why it failed ("" when it passed).
    pub message: String,
    /// One entry per operation, as `status.checks` records them.
    pub checks: Vec<backuprepo_api::ProbeCheck>,
    pub duration: std::time::Duration,
    pub after: AfterCheck,
}
