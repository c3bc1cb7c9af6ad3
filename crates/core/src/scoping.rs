//! Scoped keys for consumer namespaces (`backuprepo.io/scoped-credentials`): which namespaces
//! get a key of their own, when a key is replaced, widened for a Restore of another
//! namespace's backup, retired and revoked.
//!
//! The controller observes (consumers, Secrets, the allow-list), calls [`plan`], carries the
//! steps out on the storage and in the namespaces, and records each outcome in
//! `status.scopedCredentials` with the functions here. A namespace's key may reach
//! `<pathPrefix>/<namespace>/` (KubeBlocks' layout for that namespace's backups) and read the
//! backup paths in [`ScopedCredential::read_paths`]; the repository's own key never leaves the
//! controller's namespace.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use backuprepo_api::{RetiringKey, ScopedCredential};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use sha2::{Digest, Sha256};

/// The controller's settings for scoped keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// What repositories without the annotation get (`BACKUPREPO_SCOPED_CREDENTIALS`).
    pub by_default: crate::key_mode::Setting,
    /// Replace a key when it is this old (`BACKUPREPO_KEY_ROTATION`).
    pub rotate_every: Duration,
    /// Keep a replaced key working this long, so jobs that started with it finish
    /// (`BACKUPREPO_KEY_GRACE`).
    pub grace: Duration,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            by_default: crate::key_mode::Setting::default(),
            rotate_every: Duration::from_secs(30 * 24 * 3600),
            grace: Duration::from_secs(24 * 3600),
        }
    }
}

/// What the controller saw.
#[derive(Debug, Clone, Default)]
pub struct Observed {
    /// The repository scopes keys (annotation or default; Tool access).
    pub enabled: bool,
    /// Allowed namespaces with a consumer waiting for its tool config.
    pub waiting: BTreeSet<String>,
    /// Namespaces holding any consumer of the repository: a Backup in any phase (its deletion
    /// job needs the key too) or a Restore.
    pub present: BTreeSet<String>,
    /// Namespaces holding a tool-config Secret this repository owns.
    pub holding: BTreeSet<String>,
    /// Namespaces the allow-list refuses, among those above and those with a key.
    pub refused: BTreeSet<String>,
    /// Paths (from [`read_path`]) each namespace's active Restores read in other namespaces.
    pub reads: BTreeMap<String, BTreeSet<String>>,
    /// Namespaces whose Secret holds an older config than the one that passed the check: they
    /// get the new one, with a new key (the controller never reads a key back).
    pub stale: BTreeSet<String>,
    /// `backuprepo.io/rotate-keys` asks for keys made before this time to be replaced.
    pub rotate_before: Option<Time>,
    /// The repository passed its check: keys may be made and replaced. Otherwise only keys are
    /// taken away (revoked, withdrawn, stripped), never handed out.
    pub ready: bool,
    /// The repository has Mount access now (it had Tool): revoked namespaces lose their
    /// Secret's data; the repository's config never goes back to them.
    pub mount: bool,
}

/// One thing to do. Each names its namespace; the controller records the outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Make the namespace's user (replacing one of that name) with a key that reaches its own
    /// path and `read`, and write the key into its Secret.
    Issue {
        namespace: String,
        read: Vec<String>,
    },
    /// A new key for the namespace's user, written into its Secret; the old key retires.
    Rotate {
        namespace: String,
        why: &'static str,
    },
    /// Change which other namespaces' backup paths the user may read.
    Rescope {
        namespace: String,
        read: Vec<String>,
    },
    /// Delete a key a rotation replaced, once its grace ended.
    Retire {
        namespace: String,
        access_key_id: String,
    },
    /// Delete the namespace's user and every key it has. With `restore_config`, scoping was
    /// turned off: the namespace's Secret gets the repository's config again; else the Secret
    /// is withdrawn.
    Revoke {
        namespace: String,
        why: &'static str,
        restore_config: bool,
    },
    /// The namespace holds a Secret with the repository's own key and nothing uses it:
    /// withdraw it.
    Withdraw { namespace: String },
    /// The namespace holds a Secret with the repository's own key while no scoped key can be
    /// made (the repository is not Ready): remove its data now, keep the Secret for the key.
    Strip { namespace: String },
}

impl Step {
    pub fn namespace(&self) -> &str {
        match self {
            Step::Issue { namespace, .. }
            | Step::Rotate { namespace, .. }
            | Step::Rescope { namespace, .. }
            | Step::Retire { namespace, .. }
            | Step::Revoke { namespace, .. }
            | Step::Withdraw { namespace }
            | Step::Strip { namespace } => namespace,
        }
    }
}

pub const WHY_OFF: &str = "scoped credentials were turned off";
pub const WHY_NOT_ALLOWED: &str = "the namespace is no longer in spec.allowedNamespaces";
pub const WHY_NO_CONSUMER: &str = "no Backup or Restore of the repository is left in the namespace";
pub const WHY_REQUESTED: &str = "rotation was requested";
pub const WHY_NEW_CONFIG: &str = "the repository's config changed";
pub const WHY_AGE: &str = "the key reached the rotation age";
pub const WHY_SECRET_GONE: &str = "the namespace's tool-config Secret is gone";

fn age(now: &Time, t: &Time) -> Duration {
    Duration::from_secs((now.0.as_second() - t.0.as_second()).max(0) as u64)
}

/// What to do, in order: revocations first, then new keys, rotations, scope changes and
/// retirements. While the repository is not Ready, only what takes keys away.
pub fn plan(
    records: &[ScopedCredential],
    seen: &Observed,
    now: &Time,
    policy: &Policy,
) -> Vec<Step> {
    let mut steps = full_plan(records, seen, now, policy);
    if !seen.ready {
        steps = steps
            .into_iter()
            .filter_map(|s| match s {
                Step::Revoke {
                    restore_config: false,
                    ..
                }
                | Step::Withdraw { .. } => Some(s),
                // The repository's own config goes back only once it passed its check.
                Step::Revoke {
                    restore_config: true,
                    ..
                } => None,
                Step::Issue { namespace, .. } if seen.holding.contains(&namespace) => {
                    Some(Step::Strip { namespace })
                }
                _ => None,
            })
            .collect();
    }
    steps
}

fn full_plan(
    records: &[ScopedCredential],
    seen: &Observed,
    now: &Time,
    policy: &Policy,
) -> Vec<Step> {
    let mut steps = Vec::new();
    let reads = |ns: &str| -> Vec<String> {
        seen.reads
            .get(ns)
            .map(|r| r.iter().cloned().collect())
            .unwrap_or_default()
    };
    let mut kept = Vec::new();
    for r in records {
        let ns = &r.namespace;
        let why = if !seen.enabled {
            Some(WHY_OFF)
        } else if seen.refused.contains(ns) {
            Some(WHY_NOT_ALLOWED)
        } else if !seen.present.contains(ns) && !seen.waiting.contains(ns) {
            Some(WHY_NO_CONSUMER)
        } else {
            None
        };
        match why {
            Some(why) => steps.push(Step::Revoke {
                namespace: ns.clone(),
                why,
                restore_config: !seen.enabled
                    && !seen.mount
                    && seen.holding.contains(ns)
                    && !seen.refused.contains(ns),
            }),
            None => kept.push(r),
        }
    }
    if seen.enabled {
        let recorded: BTreeSet<&str> = records.iter().map(|r| r.namespace.as_str()).collect();
        let needs_key = seen
            .waiting
            .iter()
            .chain(seen.holding.intersection(&seen.present));
        let mut issued = BTreeSet::new();
        for ns in needs_key {
            if !recorded.contains(ns.as_str()) && !seen.refused.contains(ns) && issued.insert(ns) {
                steps.push(Step::Issue {
                    namespace: ns.clone(),
                    read: reads(ns),
                });
            }
        }
        for ns in &seen.holding {
            if !recorded.contains(ns.as_str())
                && !seen.present.contains(ns)
                && !seen.waiting.contains(ns)
                && !seen.refused.contains(ns)
            {
                steps.push(Step::Withdraw {
                    namespace: ns.clone(),
                });
            }
        }
    }
    for r in kept {
        let ns = &r.namespace;
        let why = if !seen.holding.contains(ns) {
            Some(WHY_SECRET_GONE)
        } else if seen
            .rotate_before
            .as_ref()
            .is_some_and(|t| r.created_at.0 < t.0)
        {
            Some(WHY_REQUESTED)
        } else if seen.stale.contains(ns) {
            Some(WHY_NEW_CONFIG)
        } else if age(now, &r.created_at) >= policy.rotate_every {
            Some(WHY_AGE)
        } else {
            None
        };
        if let Some(why) = why {
            steps.push(Step::Rotate {
                namespace: ns.clone(),
                why,
            });
        }
        let read = reads(ns);
        if read != r.read_paths {
            steps.push(Step::Rescope {
                namespace: ns.clone(),
                read,
            });
        }
        for k in &r.retiring {
            if k.until.0 <= now.0 {
                steps.push(Step::Retire {
                    namespace: ns.clone(),
                    access_key_id: k.access_key_id.clone(),
                });
            }
        }
    }
    steps
}

/// Whether every key was made at or after `before` (a rotation asked for then is done).
pub fn rotated_since(records: &[ScopedCredential], before: &Time) -> bool {
    records.iter().all(|r| r.created_at.0 >= before.0)
}

/// The `rotate-keys` request stamp as the controller reads it: `Ok` when it parses and is not
/// ahead of `now`; else `Err(now)`, the stamp to write back, so a client whose clock runs ahead
/// (or a malformed value) asks for one rotation, not one on every pass.
pub fn rotation_stamp(value: &str, now: &Time) -> Result<Time, Time> {
    match value.parse() {
        Ok(t) if t <= now.0 => Ok(Time(t)),
        _ => Err(now.clone()),
    }
}

/// How soon something falls due without any change: a rotation or a retirement.
pub fn wake(records: &[ScopedCredential], now: &Time, policy: &Policy) -> Option<Duration> {
    records
        .iter()
        .flat_map(|r| {
            let rotate = policy.rotate_every.saturating_sub(age(now, &r.created_at));
            let retire = r.retiring.iter().map(|k| {
                Duration::from_secs((k.until.0.as_second() - now.0.as_second()).max(0) as u64)
            });
            std::iter::once(rotate).chain(retire)
        })
        .min()
        .map(|d| d.max(Duration::from_secs(1)))
}

/// The storage user of `namespace`'s key: readable, unique to the repository (by UID) and the
/// namespace, at most 64 characters (IAM's limit), and the same on every attempt, so a
/// key made before a crash is found and replaced rather than left behind.
pub fn user_name(repo: &str, repo_uid: &str, namespace: &str) -> String {
    let hash = hex::encode(Sha256::digest(format!("{repo_uid}/{namespace}")));
    let cut = |s: &str, n: usize| s.chars().take(n).collect::<String>();
    format!(
        "br-{}-{}-{}",
        cut(repo, 20),
        cut(namespace, 24),
        &hash[..10]
    )
}

/// The storage user of the grant `grant` of a repository (`backuprepo grant`): derived like
/// [`user_name`] from the repository's UID, so `revoke` and `delete` delete only users that
/// this code named, whatever a record says.
pub fn grant_user_name(repo: &str, repo_uid: &str, grant: &str) -> String {
    let hash = hex::encode(Sha256::digest(format!("{repo_uid}/grant/{grant}")));
    let cut = |s: &str, n: usize| s.chars().take(n).collect::<String>();
    format!("br-{}-g-{}-{}", cut(repo, 20), cut(grant, 20), &hash[..10])
}

/// The path (under the storage's root) of `namespace`'s backups: `<pathPrefix>/<namespace>`.
pub fn own_path(path_prefix: &str, namespace: &str) -> String {
    join(path_prefix, namespace)
}

fn join(prefix: &str, rest: &str) -> String {
    match prefix.trim_matches('/') {
        "" => rest.to_string(),
        p => format!("{p}/{rest}"),
    }
}

/// The path a Restore may read for a backup of `backup_namespace`, from the Backup's
/// `status.path` (or `status.kopiaRepoPath`): only a path strictly inside
/// `<pathPrefix>/<backup_namespace>/`, so an edited Backup status cannot open up another
/// namespace or the whole repository.
pub fn read_path(path_prefix: &str, backup_namespace: &str, status_path: &str) -> Option<String> {
    let parts: Vec<&str> = status_path.split('/').filter(|c| !c.is_empty()).collect();
    if parts.iter().any(|c| *c == "." || *c == "..") {
        return None;
    }
    let path = parts.join("/");
    let base = format!("{}/", own_path(path_prefix, backup_namespace));
    (path.len() > base.len() && path.starts_with(&base)).then_some(path)
}

/// Record a new user and key.
pub fn issued(
    records: &mut Vec<ScopedCredential>,
    namespace: &str,
    user: &str,
    access_key_id: &str,
    read: Vec<String>,
    now: &Time,
) {
    records.retain(|r| r.namespace != namespace);
    records.push(ScopedCredential {
        namespace: namespace.to_string(),
        user: user.to_string(),
        access_key_id: access_key_id.to_string(),
        created_at: now.clone(),
        retiring: Vec::new(),
        read_paths: read,
    });
    records.sort_by(|a, b| a.namespace.cmp(&b.namespace));
}

fn record<'a>(records: &'a mut [ScopedCredential], ns: &str) -> Option<&'a mut ScopedCredential> {
    records.iter_mut().find(|r| r.namespace == ns)
}

/// Record a rotation: the new key is current, the old one works until `now + grace`.
pub fn rotated(
    records: &mut [ScopedCredential],
    namespace: &str,
    access_key_id: &str,
    now: &Time,
    grace: Duration,
) {
    if let Some(r) = record(records, namespace) {
        let until = now.0.checked_add(jiff_seconds(grace)).unwrap_or(now.0);
        let old = std::mem::replace(&mut r.access_key_id, access_key_id.to_string());
        r.retiring.push(RetiringKey {
            access_key_id: old,
            until: Time(until),
        });
        r.created_at = now.clone();
    }
}

fn jiff_seconds(d: Duration) -> k8s_openapi::jiff::SignedDuration {
    k8s_openapi::jiff::SignedDuration::from_secs(d.as_secs().min(i64::MAX as u64) as i64)
}

pub fn rescoped(records: &mut [ScopedCredential], namespace: &str, read: Vec<String>) {
    if let Some(r) = record(records, namespace) {
        r.read_paths = read;
    }
}

pub fn retired(records: &mut [ScopedCredential], namespace: &str, access_key_id: &str) {
    if let Some(r) = record(records, namespace) {
        r.retiring.retain(|k| k.access_key_id != access_key_id);
    }
}

pub fn revoked(records: &mut Vec<ScopedCredential>, namespace: &str) {
    records.retain(|r| r.namespace != namespace);
}

/// The `ScopedCredentials` condition: `None` when scoping is off and no key is left;
/// False while some namespace could not get its key (`failed`: namespace and why).
pub fn condition(
    enabled: bool,
    records: &[ScopedCredential],
    failed: &[(String, String)],
) -> Option<(&'static str, &'static str, String)> {
    if !enabled && records.is_empty() {
        return None;
    }
    if let Some((ns, why)) = failed.first() {
        let more = match failed.len() {
            1 => String::new(),
            n => format!(" (and {} more namespaces)", n - 1),
        };
        return Some((
            "False",
            "ScopingFailed",
            format!(
                "namespace {ns} could not get a scoped key{more}: {why}; its Backups and Restores wait (they never get the repository's own key)"
            ),
        ));
    }
    if !enabled {
        return Some((
            "False",
            "Revoking",
            "scoped credentials are off; the remaining scoped keys are being revoked".into(),
        ));
    }
    let names: Vec<&str> = records.iter().map(|r| r.namespace.as_str()).collect();
    Some((
        "True",
        "KeysScoped",
        match names.len() {
            0 => "consumer namespaces get keys limited to their own path; none has one yet".into(),
            _ => format!(
                "{} namespace(s) hold keys limited to their own path: {}",
                names.len(),
                names.join(", ")
            ),
        },
    ))
}

#[cfg(test)]
mod tests;
