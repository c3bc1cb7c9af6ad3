//! Deletion (KubeBlocks §2.9): the repository goes to `Deleting` so nothing new uses it; it is
//! removed only when no backup refers to it and its derived objects are gone.

use backuprepo_api::constants::{condition_type as ct, message, reason};
use backuprepo_api::{BackupRepo, BackupRepoPhase, BackupRepoStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use crate::conditions::{self, FALSE, TRUE};

/// What the store observed about the repository's users and leftovers.
#[derive(Debug, Clone, Copy, Default)]
pub struct Observed {
    /// Backups that still refer to the repository (failed ones excluded).
    pub backups: usize,
    /// Derived PVCs that still exist after their deletion was requested.
    pub residual_pvcs: usize,
}

#[derive(Debug)]
pub struct Decision {
    pub status: BackupRepoStatus,
    /// The store may delete the derived objects (and then the repository).
    pub proceed: bool,
}

pub fn decide(repo: &BackupRepo, observed: Observed, now: &Time) -> Decision {
    let mut status = repo.status.clone().unwrap_or_default();
    status.phase = Some(BackupRepoPhase::Deleting);
    let generation = repo.metadata.generation;
    let (ok, why, msg) = if observed.backups > 0 {
        (
            false,
            reason::HAVE_ASSOCIATED_BACKUPS,
            format!(
                "{} ({} backup(s))",
                message::SOME_BACKUPS_STILL_REFER,
                observed.backups
            ),
        )
    } else if observed.residual_pvcs > 0 {
        (
            false,
            reason::HAVE_RESIDUAL_PVCS,
            message::DERIVED_PVCS_STILL_IN_USE.to_string(),
        )
    } else {
        (true, reason::DERIVED_OBJECTS_DELETED, String::new())
    };
    conditions::set(
        &mut status.conditions,
        ct::DERIVED_OBJECTS_DELETED,
        if ok { TRUE } else { FALSE },
        why,
        msg,
        generation,
        now,
    );
    Decision {
        status,
        proceed: ok,
    }
}
