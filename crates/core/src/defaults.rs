//! The default repository. KubeBlocks only mirrors the annotation and leaves uniqueness to
//! kbcli; here the rule is a function every store calls before it writes, so a second default
//! is refused wherever it comes from (create, update, apply, annotate).

use backuprepo_api::constants::READ_ONLY_ANNOTATION;
use backuprepo_api::{BackupRepo, BackupRepoPhase};

/// Refuse making `name` the default while another repository is the default, or while it is
/// read-only.
pub fn check_single_default<'a>(
    repos: impl IntoIterator<Item = &'a BackupRepo>,
    name: &str,
) -> Result<(), String> {
    let repos: Vec<&BackupRepo> = repos.into_iter().collect();
    if let Some(r) = repos.iter().find(|r| r.name() == name) {
        if r.is_read_only() {
            return Err(read_only_default(name));
        }
    }
    let others: Vec<&str> = repos
        .iter()
        .filter(|r| r.is_default() && r.name() != name)
        .map(|r| r.name())
        .collect();
    match others.first() {
        None => Ok(()),
        Some(other) => Err(format!(
            "there is already a default backup repository \"{other}\"; make it non-default first (`backuprepo update {other} --default=false`), or do not ask for --default"
        )),
    }
}

/// Refuse a repository that is both the default and read-only (backups would go to it, and
/// every one would fail).
pub fn check_read_only_default(repo: &BackupRepo) -> Result<(), String> {
    if repo.is_default() && repo.is_read_only() {
        return Err(read_only_default(repo.name()));
    }
    Ok(())
}

fn read_only_default(name: &str) -> String {
    format!(
        "backup repository \"{name}\" cannot be both the default and read-only ({READ_ONLY_ANNOTATION}: \"true\"): new backups go to the default; make another repository the default first, or remove the read-only annotation"
    )
}

/// The repository backups go to when none is named: the one marked default, if it is Ready.
/// Messages are KubeBlocks'.
pub fn default_repo<'a>(
    repos: impl IntoIterator<Item = &'a BackupRepo>,
) -> Result<&'a BackupRepo, String> {
    let mut found: Option<&BackupRepo> = None;
    let mut marked_not_ready: Option<&BackupRepo> = None;
    for r in repos {
        if !r.is_default() {
            continue;
        }
        if r.phase() != Some(BackupRepoPhase::Ready) {
            marked_not_ready = Some(r);
            continue;
        }
        if let Some(first) = found {
            return Err(format!(
                "multiple default BackupRepo found, both {} and {} are default",
                first.name(),
                r.name()
            ));
        }
        found = Some(r);
    }
    found.ok_or_else(|| match marked_not_ready {
        Some(r) => format!(
            "no default BackupRepo found: the default repository {} is not Ready (phase {}); see `backuprepo describe {}`",
            r.name(),
            r.phase().map(|p| p.as_str()).unwrap_or("unknown"),
            r.name()
        ),
        None => "no default BackupRepo found; create one with `backuprepo create --default ...` or mark one with `backuprepo update NAME --default`".to_string(),
    })
}
