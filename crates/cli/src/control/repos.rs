//! `list`, `describe`, `delete`, `check` and `list-storage-provider`, over the store.

use std::collections::BTreeMap;

use anyhow::{anyhow, bail, Result};
use backuprepo_api::constants::condition_type as ct;
use backuprepo_api::{BackupRepo, BackupRepoPhase, StorageProvider};
use backuprepo_core::deletion;
use backuprepo_core::store::{Deletion, NotFound, RepoStore};
use backuprepo_local::now;

use super::{confirm_name, phase_str, print_objects, table};

/// Bytes the way kbcli prints them (SI units).
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 7] = ["B", "kB", "MB", "GB", "TB", "PB", "EB"];
    if n < 10 {
        return format!("{n} B");
    }
    let mut v = n as f64;
    let mut i = 0;
    while v >= 1000.0 && i + 1 < UNITS.len() {
        v /= 1000.0;
        i += 1;
    }
    if v < 10.0 && i > 0 {
        format!("{v:.1} {}", UNITS[i])
    } else {
        format!("{:.0} {}", v, UNITS[i])
    }
}

/// kbcli's `backuprepo list`: every repository as it is now, with what it holds.
pub async fn list<S: RepoStore>(store: &S, output: &str) -> Result<()> {
    let repos = store.current_all().await?;
    let usage = if super::output::Format::parse(output)?.is_table() {
        store.usage(&repos, false).await?
    } else {
        BTreeMap::new()
    };
    print_list(repos, output, &usage, S::USERS_COLUMN)
}

/// kbcli's `backuprepo list` output; `usage` gives repositories' (backups, bytes).
/// `users_column`: what the count is (`BACKUPS` or `FILES`, [`RepoStore::USERS_COLUMN`]).
fn print_list(
    mut repos: Vec<BackupRepo>,
    output: &str,
    usage: &BTreeMap<String, (u64, u64)>,
    users_column: &str,
) -> Result<()> {
    if print_objects(&repos, output, super::REPO_RESOURCE, false)? {
        return Ok(());
    }
    if repos.is_empty() {
        println!("No backup repository found");
        return Ok(());
    }
    // Default first, then phase, then name (kbcli's order).
    repos.sort_by(|a, b| {
        b.is_default()
            .cmp(&a.is_default())
            .then(phase_str(a).cmp(phase_str(b)))
            .then(a.name().cmp(b.name()))
    });
    let wide = output == "wide";
    let mut header = vec![
        "NAME",
        "STATUS",
        "STORAGE-PROVIDER",
        "ACCESS-METHOD",
        "DEFAULT",
        users_column,
        "TOTAL-SIZE",
    ];
    if wide {
        header.extend(WIDE_COLUMNS);
    }
    let rows: Vec<Vec<String>> = repos
        .iter()
        .map(|r| {
            let (files, bytes) = usage_cells(usage.get(r.name()).copied());
            let mut row = vec![
                r.name().to_string(),
                phase_str(r).to_string(),
                r.spec.storage_provider_ref.clone(),
                r.access_method().as_str().to_string(),
                r.is_default().to_string(),
                files,
                bytes,
            ];
            if wide {
                row.extend(wide_cells(r));
            }
            row
        })
        .collect();
    print!("{}", table(&header, &rows));
    Ok(())
}

/// The columns `-o wide` adds, in `list` and in `get backuprepo`.
pub(crate) const WIDE_COLUMNS: [&str; 4] = ["LOCATION", "LAST-CHECK", "MEASURED", "MESSAGE"];

/// The cells of [`WIDE_COLUMNS`]: where the data is, when the last check ran, how old the
/// recorded usage is (a full measurement; our own writes since are counted in), and why the
/// repository is not Ready.
pub(crate) fn wide_cells(r: &BackupRepo) -> Vec<String> {
    let status = r.status.clone().unwrap_or_default();
    let ago = |t: Option<&backuprepo_api::k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>| {
        t.map(|t| format!("{} ago", super::manifests::age(Some(t))))
            .unwrap_or_else(|| "-".into())
    };
    vec![
        location(r),
        ago(status.last_check_time.as_ref()),
        ago(status.usage.as_ref().map(|u| &u.measured_at)),
        failure_message(r).lines().next().unwrap_or("").to_string(),
    ]
}

fn usage_cells(u: Option<(u64, u64)>) -> (String, String) {
    u.map(|(f, b)| (f.to_string(), human_bytes(b)))
        .unwrap_or_else(|| ("-".into(), "-".into()))
}

/// The message of the first condition that is not True, if any.
pub fn failure_message(r: &BackupRepo) -> String {
    r.status
        .as_ref()
        .and_then(|s| s.conditions.iter().find(|c| c.status != "True"))
        .map(|c| c.message.clone())
        .unwrap_or_default()
}

fn pair(out: &mut String, indent: usize, name: &str, value: &str) {
    out.push_str(&format!("{}{:<20}{}\n", " ".repeat(indent), name, value));
}

pub async fn describe<S: RepoStore>(store: &S, names: &[String]) -> Result<()> {
    if names.is_empty() {
        bail!("must specify a backuprepo name");
    }
    for name in names {
        let r = store.current(name).await?;
        let usage = store.usage(std::slice::from_ref(&r), false).await?;
        // `BACKUPS` → `Backups`.
        let col = S::USERS_COLUMN;
        let label = format!("{}{}", &col[..1], col[1..].to_lowercase());
        print!("{}", describe_text(&r, usage.get(name).copied(), &label));
        if names.len() > 1 {
            println!();
        }
    }
    Ok(())
}

/// Where a repository's data is ([`backuprepo_core::location`]); empty where the spec does
/// not say (a PVC).
pub(crate) fn location(r: &BackupRepo) -> String {
    backuprepo_core::location::of(r)
        .map(|l| l.to_string())
        .unwrap_or_default()
}

/// kbcli's `backuprepo describe` of one repository, with our checks table. `users_label`:
/// what the count is (`Backups` on Kubernetes, `Files` on the local store).
pub(crate) fn describe_text(
    r: &BackupRepo,
    usage: Option<(u64, u64)>,
    users_label: &str,
) -> String {
    let mut out = String::new();
    let (files, mut bytes) = usage_cells(usage);
    let status = r.status.clone().unwrap_or_default();
    if let (Some(u), true) = (&status.usage, usage.is_some()) {
        bytes.push_str(&format!(
            " (measured {} ago)",
            super::manifests::age(Some(&u.measured_at))
        ));
    }
    out.push_str("Summary:\n");
    pair(&mut out, 2, "Name:", r.name());
    pair(&mut out, 2, "Provider:", &r.spec.storage_provider_ref);
    pair(&mut out, 2, "Location:", &location(r));
    pair(&mut out, 2, &format!("{users_label}:"), &files);
    pair(&mut out, 2, "Total Data Size:", &bytes);
    out.push_str("\nSpec:\n");
    pair(&mut out, 2, "AccessMethod:", r.access_method().as_str());
    // What only a Mount repository uses (a PV, a PVC) is shown only for Mount.
    let mount = r.access_method() == backuprepo_api::AccessMethod::Mount;
    if mount {
        pair(
            &mut out,
            2,
            "PvReclaimPolicy:",
            r.spec.pv_reclaim_policy.as_str(),
        );
    }
    pair(
        &mut out,
        2,
        "StorageProviderRef:",
        &r.spec.storage_provider_ref,
    );
    if mount {
        pair(
            &mut out,
            2,
            "VolumeCapacity:",
            &r.spec
                .volume_capacity
                .as_ref()
                .map(|q| q.0.clone())
                .unwrap_or_default(),
        );
    }
    if let Some(p) = &r.spec.path_prefix {
        pair(&mut out, 2, "PathPrefix:", p);
    }
    out.push_str("  Config:\n");
    for (k, v) in &r.spec.config {
        pair(&mut out, 4, &format!("{k}:"), v);
    }
    out.push_str("\nStatus:\n");
    pair(&mut out, 2, "Phase:", phase_str(r));
    pair(&mut out, 2, "Default:", &r.is_default().to_string());
    if mount {
        pair(
            &mut out,
            2,
            "BackupPVCName:",
            status.backup_pvc_name.as_deref().unwrap_or_default(),
        );
    }
    pair(
        &mut out,
        2,
        "ObservedGeneration:",
        &status.observed_generation.unwrap_or_default().to_string(),
    );
    if let Some(t) = &status.last_check_time {
        pair(&mut out, 2, "LastCheckTime:", &t.0.to_string());
    }
    out.push_str("  Conditions:\n");
    for c in &status.conditions {
        out.push_str(&format!("    {}:\n", c.type_));
        pair(&mut out, 6, "Status:", &c.status);
        pair(&mut out, 6, "Reason:", &c.reason);
        if c.message.contains('\n') {
            out.push_str("      Message:\n");
            for l in c.message.lines() {
                out.push_str(&format!("        {l}\n"));
            }
        } else if !c.message.is_empty() {
            pair(&mut out, 6, "Message:", &c.message);
        }
    }
    if !status.checks.is_empty() {
        out.push_str("  Checks:\n");
        out.push_str(&indent(&checks_table(r), 4));
    }
    if let Some(u) = &status.usage {
        out.push_str(&usage_text(u));
    }
    if let Some(c) = &status.capabilities {
        out.push_str("  Capabilities:\n");
        pair(
            &mut out,
            4,
            "Versioning:",
            c.versioning.as_deref().unwrap_or("unknown"),
        );
        let lock = match &c.object_lock {
            None => "off".to_string(),
            Some(l) => {
                let period = l.period().map(|p| format!(", {p}")).unwrap_or_default();
                format!(
                    "on ({}{period})",
                    l.mode.as_deref().unwrap_or("no default retention")
                )
            }
        };
        pair(&mut out, 4, "Object Lock:", &lock);
        pair(&mut out, 4, "Retention:", &retention_text(r, c));
    }
    if let Some(l) = status.usage.as_ref().and_then(|u| u.locked.as_ref()) {
        let mut text = l.object_count.to_string();
        match (&l.first_until, &l.last_until) {
            (Some(a), Some(b)) if a != b => {
                text.push_str(&format!(" (the first can go from {a}, all from {b})"))
            }
            (Some(a), _) => text.push_str(&format!(" (until {a})")),
            _ => {}
        }
        if l.legal_holds > 0 {
            text.push_str(&format!("; {} under a legal hold", l.legal_holds));
        }
        pair(&mut out, 4, "Locked Objects:", &text);
    }
    if let Some(rep) = &status.replication {
        out.push_str(&replication_text(rep));
    }
    if !status.scoped_credentials.is_empty() {
        out.push_str("  Scoped Keys:\n");
        out.push_str(&indent(&scoped_keys_table(&status.scoped_credentials), 4));
        out.push_str(SCOPED_LISTING_NOTE);
    }
    out
}

/// `status.replication`: the last run, the lag since the copy was last complete, what is
/// behind, and the last error.
fn replication_text(rep: &backuprepo_api::ReplicationStatus) -> String {
    let mut out = String::from("  Replication:\n");
    pair(&mut out, 4, "Destination:", &rep.destination);
    if let Some(t) = &rep.last_run_time {
        pair(&mut out, 4, "Last Run:", &t.0.to_string());
    }
    let lag = match &rep.last_success_time {
        Some(t) => format!("{} ago ({})", super::manifests::age(Some(t)), t.0),
        None => "not complete yet".into(),
    };
    pair(&mut out, 4, "Complete As Of:", &lag);
    pair(
        &mut out,
        4,
        "Behind:",
        &format!(
            "{} object(s), {} bytes",
            rep.objects_behind, rep.bytes_behind
        ),
    );
    pair(
        &mut out,
        4,
        "Last Copied:",
        &format!(
            "{} object(s), {} bytes",
            rep.copied_objects, rep.copied_bytes
        ),
    );
    if let Some(e) = &rep.last_error {
        pair(&mut out, 4, "Last Error:", e);
    }
    out
}

/// Which retention protects what is written: ours (the annotation, once applied) for what our
/// datasafed face writes, and the bucket's default for every writer (KubeBlocks' own datasafed
/// sends none).
fn retention_text(r: &BackupRepo, c: &backuprepo_api::StorageCapabilities) -> String {
    use backuprepo_api::constants::{condition_type as ct, RETENTION_ANNOTATION};
    let default = c.object_lock.as_ref().and_then(|l| l.default_retention());
    let theirs = match &default {
        Some(d) => {
            format!("the bucket's default ({d}) for every writer, KubeBlocks' datasafed included")
        }
        None => "none for KubeBlocks' datasafed (the bucket has no default retention)".into(),
    };
    let Some(asked) = r.annotation(RETENTION_ANNOTATION) else {
        return theirs;
    };
    let state = r
        .status
        .as_ref()
        .and_then(|s| backuprepo_core::conditions::get(&s.conditions, ct::RETENTION))
        .map(|c| c.reason.clone())
        .unwrap_or_else(|| "not checked yet".into());
    format!("{asked} on every object backuprepo writes ({state}); {theirs}")
}

/// What a scoped key's listing may show, on the storages we know.
const SCOPED_LISTING_NOTE: &str = "    Each key reads and writes only its namespace's path. Listing is limited by the policy's\n    s3:prefix condition, which some storages (SeaweedFS, at times) do not enforce: there a key\n    can list, never read, the names of other namespaces' objects.\n";

/// The scoped keys by namespace: the storage user, the key ID and its age, replaced keys
/// still working, and what else each may read. Never a secret (status holds none).
fn scoped_keys_table(keys: &[backuprepo_api::ScopedCredential]) -> String {
    let rows: Vec<Vec<String>> = keys
        .iter()
        .map(|k| {
            vec![
                k.namespace.clone(),
                k.user.clone(),
                k.access_key_id.clone(),
                super::manifests::age(Some(&k.created_at)),
                k.retiring.len().to_string(),
                match k.read_paths.is_empty() {
                    true => "-".into(),
                    false => k.read_paths.join(","),
                },
            ]
        })
        .collect();
    table(
        &[
            "NAMESPACE",
            "USER",
            "KEY ID",
            "AGE",
            "RETIRING",
            "ALSO READS",
        ],
        &rows,
    )
}

/// `status.usage` as describe shows it: totals, how old, and per top-level directory.
fn usage_text(u: &backuprepo_api::RepoUsage) -> String {
    let mut out = String::from("  Usage:\n");
    let age = (now().0.as_second() - u.measured_at.0.as_second()).max(0) as u64;
    let lower = if u.partial { "at least " } else { "" };
    pair(
        &mut out,
        4,
        "Objects:",
        &format!("{lower}{}", u.object_count),
    );
    pair(
        &mut out,
        4,
        "Total Size:",
        &format!("{lower}{}", human_bytes(u.total_bytes)),
    );
    let state = if u.partial {
        " (partial: the measurement continues at the next check)"
    } else {
        ""
    };
    pair(
        &mut out,
        4,
        "Measured:",
        &format!("{} ago, at {}{state}", human_age(age), u.measured_at.0),
    );
    if !u.by_prefix.is_empty() {
        let rows: Vec<Vec<String>> = u
            .by_prefix
            .iter()
            .map(|(p, f)| {
                vec![
                    if p.is_empty() {
                        "(top level)".to_string()
                    } else {
                        format!("{p}/")
                    },
                    f.object_count.to_string(),
                    human_bytes(f.total_bytes),
                ]
            })
            .collect();
        out.push_str(&indent(&table(&["PREFIX", "OBJECTS", "SIZE"], &rows), 4));
    }
    out
}

/// An age the way kubectl prints one: 45s, 12m, 3h, 2d.
fn human_age(secs: u64) -> String {
    match secs {
        s if s < 120 => format!("{s}s"),
        s if s < 2 * 3600 => format!("{}m", s / 60),
        s if s < 2 * 86400 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86400),
    }
}

fn indent(s: &str, n: usize) -> String {
    s.lines()
        .map(|l| format!("{}{l}\n", " ".repeat(n)))
        .collect()
}

fn checks_table(r: &BackupRepo) -> String {
    let rows: Vec<Vec<String>> = r
        .status
        .as_ref()
        .map(|s| {
            s.checks
                .iter()
                .map(|c| {
                    vec![
                        c.operation.clone(),
                        c.result.clone(),
                        c.duration_ms.map(|d| format!("{d}ms")).unwrap_or_default(),
                        c.message.clone().unwrap_or_default(),
                    ]
                })
                .collect()
        })
        .unwrap_or_default();
    table(&["OPERATION", "RESULT", "TIME", "MESSAGE"], &rows)
}

/// The diagnosis of `create --dry-run` and `check`.
pub fn print_check(r: &BackupRepo) {
    println!(
        "Backup repository {:?} (provider {}): {}",
        r.name(),
        r.spec.storage_provider_ref,
        phase_str(r)
    );
    let mut table = String::new();
    if r.status.as_ref().is_some_and(|s| !s.checks.is_empty()) {
        table = checks_table(r);
        print!("{table}");
    }
    // The failure, unless the table already said it (a failed check's row).
    let msg = failure_message(r);
    let said = msg
        .split_once(" failed: ")
        .is_some_and(|(_, why)| table.contains(why));
    if !msg.is_empty() && !said {
        println!("{msg}");
    }
    // Our modes (Suspended, ReadOnly): what they change, in their own words.
    for t in [ct::SUSPENDED, ct::READ_ONLY] {
        let cond = r.status.as_ref().and_then(|s| {
            s.conditions
                .iter()
                .find(|c| c.type_ == t && c.status == "True")
        });
        if let Some(c) = cond {
            println!("{t}: {}", c.message);
        }
    }
}

/// The verdict of `create --dry-run`: the diagnosis, and an error unless the check passed.
pub fn dry_run_verdict(checked: &BackupRepo) -> Result<()> {
    print_check(checked);
    match checked.phase() {
        Some(BackupRepoPhase::Ready) => Ok(()),
        _ => Err(anyhow!(
            "the storage check did not pass; nothing was stored"
        )),
    }
}

/// One line on the repository's state; an error (non-zero exit) unless it is Ready.
pub fn report_phase(r: &BackupRepo) -> Result<()> {
    match r.phase() {
        Some(BackupRepoPhase::Ready) => {
            println!("Backup repository {:?} is Ready.", r.name());
            Ok(())
        }
        _ => Err(anyhow!(
            "backup repository {:?} is {}: {}\nFix the parameters with `backuprepo update` (credentials), re-apply it, or delete it; `backuprepo describe {}` shows every check",
            r.name(),
            phase_str(r),
            failure_message(r),
            r.name()
        )),
    }
}

/// `check NAME`: check now and print the diagnosis; an error unless it passed.
pub async fn check<S: RepoStore>(store: &S, name: &str) -> Result<()> {
    let r = store.check(name).await?;
    print_check(&r);
    match r.phase() {
        Some(BackupRepoPhase::Ready) => Ok(()),
        _ => Err(anyhow!("backup repository {name:?} did not pass its check")),
    }
}

/// `check --all`: check every repository now; fails when any is not Ready.
/// Where this process keeps the copies (`backuprepo.io/replicate-to`, local store), the runs
/// that are due follow.
pub async fn check_all<S: RepoStore>(store: &S) -> Result<()> {
    let checked = store.check_all().await?;
    match super::replicate::due(store, &checked).await? {
        true => report_checks(&store.repos().await?),
        false => report_checks(&checked),
    }
}

/// Print each repository's check; an error naming those that are not Ready.
pub fn report_checks(checked: &[BackupRepo]) -> Result<()> {
    let mut bad = Vec::new();
    for r in checked {
        print_check(r);
        if r.phase() != Some(BackupRepoPhase::Ready) {
            bad.push(r.name().to_string());
        }
    }
    if bad.is_empty() {
        Ok(())
    } else {
        Err(anyhow!("not Ready: {}", bad.join(", ")))
    }
}

/// `check --all --watch SECS`: every `secs` seconds, every repository as it is now (the local
/// store reconciles them: due re-checks run); a line per phase change, until Ctrl-C.
pub async fn watch<S: RepoStore>(store: &S, secs: u64) -> Result<()> {
    let mut last: BTreeMap<String, String> = BTreeMap::new();
    let every = std::time::Duration::from_secs(secs.max(1));
    eprintln!(
        "Checking every repository every {secs}s; a line for each change of phase; Ctrl-C stops."
    );
    let mut first = true;
    loop {
        let all = store.current_all().await?;
        super::replicate::due(store, &all).await?;
        if first && all.is_empty() {
            eprintln!("No backup repositories yet; new ones are picked up as they are created.");
        }
        first = false;
        for r in all {
            let phase = phase_str(&r).to_string();
            if last.get(r.name()) != Some(&phase) {
                let why = failure_message(&r);
                println!(
                    "{} backuprepo/{} {}{}",
                    now().0.strftime("%Y-%m-%dT%H:%M:%SZ"),
                    r.name(),
                    phase,
                    if why.is_empty() {
                        String::new()
                    } else {
                        format!(": {why}")
                    }
                );
                last.insert(r.name().to_string(), phase);
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = tokio::signal::ctrl_c() => return Ok(()),
        }
    }
}

/// `delete NAME...` (kubectl: several at once; kbcli takes one): each in turn, as
/// [`delete`] does it. A missing name is an error before anything is deleted, unless
/// `ignore_not_found`.
pub async fn delete_each<S: RepoStore>(
    store: &S,
    names: &[String],
    force: bool,
    yes: bool,
    ignore_not_found: bool,
) -> Result<()> {
    if names.is_empty() {
        bail!("missing backup repository name");
    }
    let mut found = Vec::new();
    for n in names {
        match store.repo(n).await {
            Ok(_) => found.push(n.clone()),
            Err(e) if ignore_not_found && e.downcast_ref::<NotFound>().is_some() => {}
            Err(e) => return Err(e),
        }
    }
    for n in found {
        delete(store, std::slice::from_ref(&n), force, yes).await?;
    }
    Ok(())
}

/// `delete NAME`: refused while the repository holds backups (kbcli), unless `--force`.
pub async fn delete<S: RepoStore>(
    store: &S,
    names: &[String],
    force: bool,
    yes: bool,
) -> Result<()> {
    let name = match names {
        [] => bail!("missing backup repository name"),
        [one] => one,
        _ => bail!("can't delete multiple backup repositories at once"),
    };
    let repo = store.repo(name).await?;
    let usage = store.usage(std::slice::from_ref(&repo), true).await?;
    let users = usage.get(name).map(|u| u.0).unwrap_or(0);
    let decision = deletion::decide(
        &repo,
        deletion::Observed {
            backups: users as usize,
            residual_pvcs: 0,
        },
        &now(),
    );
    if !decision.proceed && !force {
        return Err(still_in_use(users, S::USERS));
    }
    confirm_name(name, yes)?;
    // Its grants go with it: their keys are deleted on the storage first.
    let revoked = super::grants::revoke_all(store, &repo).await?;
    if revoked > 0 {
        println!("revoked {revoked} grant(s) of {name}");
    }
    match store.delete(&repo, users).await? {
        Deletion::Deleted => println!("BackupRepo {name} deleted"),
        Deletion::Pending => println!(
            "BackupRepo {name} is being deleted: the controller keeps it (phase Deleting) until its {users} {} are deleted",
            S::USERS
        ),
    }
    Ok(())
}

/// kbcli's refusal to delete a repository that still holds backups.
fn still_in_use(n: u64, what: &str) -> anyhow::Error {
    anyhow!(
        "this backup repository cannot be deleted because it is still containing {n} {what}; remove them first, or pass --force to delete the repository and keep the data in the storage"
    )
}

/// kbcli's `list-storage-provider`.
pub async fn list_providers<S: RepoStore>(store: &S, output: &str) -> Result<()> {
    print_providers(store.providers().await?, output)
}

fn print_providers(providers: Vec<StorageProvider>, output: &str) -> Result<()> {
    if print_objects(&providers, output, super::PROVIDER_RESOURCE, false)? {
        return Ok(());
    }
    let rows: Vec<Vec<String>> = providers
        .iter()
        .map(|p| {
            let methods = p.spec.access_method_names();
            vec![
                p.name().to_string(),
                super::provider_phase(p),
                p.spec.csi_driver_name.clone().unwrap_or_default(),
                methods.join(","),
                p.metadata
                    .creation_timestamp
                    .as_ref()
                    .map(|t| t.0.strftime("%b %d,%Y %H:%M UTC%z").to_string())
                    .unwrap_or_else(|| "built-in".into()),
            ]
        })
        .collect();
    const COLUMNS: &[&str] = &[
        "NAME",
        "STATUS",
        "CSI-DRIVER",
        "ACCESS-METHODS",
        "CREATED-TIME",
    ];
    print!("{}", table(COLUMNS, &rows));
    Ok(())
}
