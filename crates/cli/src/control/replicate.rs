//! `backuprepo.io/replicate-to` where this process keeps the copies (the local store, from
//! `check --all` and `check --all --watch`; on Kubernetes the controller does it): the runs
//! that are due, a line each, and their status in `status.replication`.

use anyhow::Result;
use backuprepo_api::BackupRepo;
use backuprepo_api::ReplicationRun;
use backuprepo_core::replication::{self, Decision};
use backuprepo_core::store::RepoStore;
use backuprepo_local::now;

use super::data::config;

/// Run the replications that are due among `repos` (as they are now); whether any status
/// was written.
pub async fn due<S: RepoStore>(store: &S, repos: &[BackupRepo]) -> Result<bool> {
    let mut wrote = false;
    if !store.replicates_here() {
        return Ok(wrote);
    }
    for src in repos {
        let target = replication::destination(src);
        let dst = repos.iter().find(|r| Some(r.name()) == target.as_deref());
        let prev = src.status.as_ref().and_then(|s| s.replication.as_ref());
        let stamp = || now().0.strftime("%Y-%m-%dT%H:%M:%SZ").to_string();
        match replication::decide(src, dst, &now()) {
            None | Some(Decision::Wait(_)) => {}
            Some(Decision::Refused { to, why, .. }) => {
                let status = replication::refused(prev, &to, &why);
                if prev != Some(&status) {
                    println!(
                        "{} backuprepo/{} not replicated to {to}: {why}",
                        stamp(),
                        src.name()
                    );
                    store.set_replication(src.name(), status).await?;
                    wrote = true;
                }
            }
            Some(Decision::Due(want)) => {
                let Some(dst) = dst else { continue };
                let started = now();
                let done = match (config(store, src).await, config(store, dst).await) {
                    (Ok(s), Ok(d)) => {
                        let prefix =
                            |r: &BackupRepo| r.spec.path_prefix.clone().unwrap_or_default();
                        backuprepo_transfer::storage::replicate(&s, &prefix(src), &d, &prefix(dst))
                            .await
                    }
                    (Err(e), _) | (_, Err(e)) => ReplicationRun {
                        error: Some(e.to_string()),
                        ..ReplicationRun::default()
                    },
                };
                let status = replication::record(prev, &want.to, started, &done);
                match &done.error {
                    None => println!(
                        "{} backuprepo/{} replicated to {}: copied {} object(s), {} bytes",
                        stamp(),
                        src.name(),
                        want.to,
                        done.copied_objects,
                        done.copied_bytes
                    ),
                    Some(e) => println!(
                        "{} backuprepo/{} replication to {} failed ({} object(s) behind): {e}",
                        stamp(),
                        src.name(),
                        want.to,
                        status.objects_behind
                    ),
                }
                store.set_replication(src.name(), status).await?;
                wrote = true;
            }
        }
    }
    Ok(wrote)
}
