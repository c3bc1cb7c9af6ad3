//! `backuprepo.io/replicate-to: "<repository>[,every=<duration>]"`: a verified second copy of
//! a repository's objects in another repository, brought up to date every `every`. The rules
//! both stores follow (the controller on Kubernetes, `check --all [--watch]` locally): when a
//! run is due, what refuses it, and what its status records. The copy itself is the data
//! plane's (`backuprepo copy`'s plan and run).

use std::time::Duration;

use backuprepo_api::constants::REPLICATE_TO_ANNOTATION;
use backuprepo_api::k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use backuprepo_api::{BackupRepo, BackupRepoPhase, ReplicationRun, ReplicationStatus};

/// How often the copy is brought up to date when the annotation does not say.
pub const DEFAULT_EVERY: Duration = Duration::from_secs(3600);

/// How soon a failed run is tried again (at most `every`).
pub const RETRY: Duration = Duration::from_secs(60);

/// The annotation, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicateTo {
    pub to: String,
    pub every: Duration,
}

/// `<repository>[,every=<duration>]`.
pub fn parse(text: &str) -> Result<ReplicateTo, String> {
    let mut parts = text.split(',').map(str::trim);
    let to = parts.next().unwrap_or_default().to_string();
    if to.is_empty() {
        return Err(format!(
            "{REPLICATE_TO_ANNOTATION} names no repository; write <repository>[,every=<duration>], e.g. offsite,every=6h"
        ));
    }
    let mut every = DEFAULT_EVERY;
    for p in parts {
        match p.split_once('=') {
            Some(("every", d)) => {
                every = backuprepo_toolconfig::retention::parse_duration(d)
                    .map_err(|e| format!("{REPLICATE_TO_ANNOTATION}: every={d}: {e}"))?;
            }
            _ => {
                return Err(format!(
                    "{REPLICATE_TO_ANNOTATION}: unknown setting {p:?}; write <repository>[,every=<duration>], e.g. offsite,every=6h"
                ))
            }
        }
    }
    Ok(ReplicateTo { to, every })
}

/// The repository `backuprepo.io/replicate-to` names (`None`: none, or a malformed value),
/// for the store to look up before [`decide`].
pub fn destination(src: &BackupRepo) -> Option<String> {
    parse(src.annotation(REPLICATE_TO_ANNOTATION)?)
        .ok()
        .map(|w| w.to)
}

/// What to do about a repository's replication now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// It cannot run: why, and the fix (recorded as the status' last error); asked again
    /// after `retry` (a destination may become Ready without the source changing), unless
    /// the annotation itself is malformed.
    Refused {
        to: String,
        why: String,
        retry: Option<Duration>,
    },
    /// The next run is this far off.
    Wait(Duration),
    /// Run now.
    Due(ReplicateTo),
}

/// `None` when the repository has no `replicate-to`. A suspended or read-only source still
/// replicates (reading is all it needs); a destination that is missing, not Ready, read-only
/// or the source itself refuses it.
pub fn decide(src: &BackupRepo, dst: Option<&BackupRepo>, now: &Time) -> Option<Decision> {
    let text = src.annotation(REPLICATE_TO_ANNOTATION)?;
    let want = match parse(text) {
        Ok(w) => w,
        Err(why) => {
            return Some(Decision::Refused {
                to: text.to_string(),
                why,
                retry: None,
            })
        }
    };
    let refuse = |why: String| {
        Some(Decision::Refused {
            to: want.to.clone(),
            why,
            retry: Some(want.every.min(RETRY)),
        })
    };
    if want.to == src.name() {
        return refuse(format!(
            "{REPLICATE_TO_ANNOTATION} names the repository itself; name another repository"
        ));
    }
    if src.phase() != Some(BackupRepoPhase::Ready) {
        return refuse(format!(
            "the source {} is not Ready; the copy resumes once it is",
            src.name()
        ));
    }
    let Some(dst) = dst else {
        return refuse(format!(
            "the destination {:?} is not found; create it, or correct {REPLICATE_TO_ANNOTATION}",
            want.to
        ));
    };
    if dst.is_read_only() {
        return refuse(format!(
            "the destination {} is read-only (backuprepo.io/read-only); a copy needs a writable destination",
            dst.name()
        ));
    }
    if dst.phase() != Some(BackupRepoPhase::Ready) {
        return refuse(format!(
            "the destination {} is not Ready; see `backuprepo describe {}`",
            dst.name(),
            dst.name()
        ));
    }
    let prev = src
        .status
        .as_ref()
        .and_then(|s| s.replication.as_ref())
        .filter(|r| r.destination == want.to);
    if let Some((p, last)) = prev.and_then(|p| Some((p, p.last_run_time.as_ref()?))) {
        // After a failed or refused run, again soon; after a good one, `every` later.
        let every = match p.last_error {
            Some(_) => want.every.min(RETRY),
            None => want.every,
        };
        let since = (now.0.as_second() - last.0.as_second()).max(0) as u64;
        if since < every.as_secs() {
            return Some(Decision::Wait(Duration::from_secs(every.as_secs() - since)));
        }
    }
    Some(Decision::Due(want))
}

/// The status after a run that began at `started`.
pub fn record(
    prev: Option<&ReplicationStatus>,
    to: &str,
    started: Time,
    run: &ReplicationRun,
) -> ReplicationStatus {
    let same = prev.filter(|p| p.destination == to);
    ReplicationStatus {
        destination: to.to_string(),
        last_run_time: Some(started.clone()),
        last_success_time: match run.error {
            None => Some(started),
            Some(_) => same.and_then(|p| p.last_success_time.clone()),
        },
        objects_behind: run.planned_objects.saturating_sub(run.copied_objects),
        bytes_behind: run.planned_bytes.saturating_sub(run.copied_bytes),
        copied_objects: run.copied_objects,
        copied_bytes: run.copied_bytes,
        last_error: run.error.clone(),
    }
}

/// The status when a run is refused (the figures of the last run are kept).
pub fn refused(prev: Option<&ReplicationStatus>, to: &str, why: &str) -> ReplicationStatus {
    let mut s = prev
        .filter(|p| p.destination == to)
        .cloned()
        .unwrap_or_default();
    s.destination = to.to_string();
    s.last_error = Some(why.to_string());
    s
}

#[cfg(test)]
mod tests;
