//! The control plane's commands (kbcli `backuprepo` and the kubectl flows of the seed),
//! each written once over the repository store ([`RepoStore`]): the local store or
//! Kubernetes. Each command is a module; this one holds what they share: opening the local
//! store, and output helpers.

pub mod create;
pub mod data;
pub mod grants;
pub mod kubectl;
pub mod manifests;
pub mod output;
pub mod replicate;
pub mod repos;

#[cfg(test)]
mod kube_manifest_tests;
#[cfg(test)]
mod kube_tests;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{anyhow, Context as _, Result};
use backuprepo_api::{BackupRepo, BackupRepoPhase};
use backuprepo_local::{Engine, LocalStore, Store};

/// The local store's home: `--home`, else `BACKUPREPO_HOME`, else the user's data directory.
pub fn home(flag: Option<PathBuf>) -> Result<PathBuf> {
    if let Some(h) = flag {
        return Ok(h);
    }
    if let Some(d) = std::env::var_os("XDG_DATA_HOME").filter(|v| !v.is_empty()) {
        return Ok(PathBuf::from(d).join("backuprepo"));
    }
    let home = std::env::var_os("HOME")
        .filter(|v| !v.is_empty())
        .ok_or_else(|| {
            anyhow!("cannot find a home for the local store: set --home or BACKUPREPO_HOME")
        })?;
    Ok(PathBuf::from(home).join(".local/share/backuprepo"))
}

/// The local store under `home`, with the reconcile settings of the environment (the same
/// variables, read the same way, as the operator's).
pub fn open_local(home_flag: Option<PathBuf>) -> Result<LocalStore> {
    let home = home(home_flag)?;
    let store = Store::open(&home)
        .with_context(|| format!("cannot open the local store at {}", home.display()))?;
    let mut engine = Engine::new(store);
    let get = |k: &str| std::env::var(k).ok();
    engine
        .settings
        .override_from(&get)
        .map_err(|e| anyhow!(e))?;
    if let Some(d) =
        backuprepo_core::env::seconds(&get, "BACKUPREPO_PROBE_TIMEOUT").map_err(|e| anyhow!(e))?
    {
        engine.probe_timeout = d.max(Duration::from_secs(1));
    }
    // Seconds added to the clock the checks read (check times, when a re-check is due): lets
    // tests and trials see re-check intervals pass without waiting.
    if let Some(offset) = backuprepo_core::env::seconds(&get, "BACKUPREPO_TIME_OFFSET")
        .map_err(|e| anyhow!(e))?
        .filter(|d| !d.is_zero())
    {
        let offset = offset.as_secs() as i64;
        engine = engine.with_clock(std::sync::Arc::new(move || {
            let now = backuprepo_local::now();
            backuprepo_api::k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                backuprepo_api::k8s_openapi::jiff::Timestamp::from_second(
                    now.0.as_second().saturating_add(offset),
                )
                .unwrap_or(now.0),
            )
        }));
    }
    Ok(LocalStore::new(engine))
}

pub fn provider_phase(p: &backuprepo_api::StorageProvider) -> String {
    p.status
        .as_ref()
        .and_then(|s| s.phase)
        .map(|ph| ph.as_str().to_string())
        .unwrap_or_default()
}

pub fn phase_str(r: &BackupRepo) -> &'static str {
    r.phase().map(BackupRepoPhase::as_str).unwrap_or("")
}

/// kubectl-style table: columns separated by 3 spaces, padded to the widest cell.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            if i < widths.len() {
                widths[i] = widths[i].max(c.chars().count());
            }
        }
    }
    let mut out = String::new();
    let line = |cells: Vec<&str>, out: &mut String| {
        let n = cells.len();
        for (i, c) in cells.into_iter().enumerate() {
            out.push_str(c);
            if i + 1 < n {
                out.push_str(&" ".repeat(widths[i] - c.chars().count() + 3));
            }
        }
        out.push('\n');
    };
    line(header.to_vec(), &mut out);
    for r in rows {
        line(r.iter().map(String::as_str).collect(), &mut out);
    }
    out
}

/// Print objects as YAML or JSON: the object alone when one was asked for by name, else a
/// kubectl `List`.
/// Print `objs` in `format` unless it is a table format (`table`, `wide`): then `false`, and
/// the caller prints its table. `resource` is what `-o name` prints before each name.
pub fn print_objects<T: serde::Serialize>(
    objs: &[T],
    format: &str,
    resource: &str,
    single: bool,
) -> Result<bool> {
    let format = output::Format::parse(format)?;
    if format.is_table() {
        return Ok(false);
    }
    output::print(objs, &format, resource, single)?;
    Ok(true)
}

/// `-o name` prefixes.
pub const REPO_RESOURCE: &str = "backuprepo.dataprotection.kubeblocks.io";
pub const PROVIDER_RESOURCE: &str = "storageprovider.dataprotection.kubeblocks.io";

/// Ask on a terminal; refuse (with the flag to pass) when stdin is not one.
pub fn confirm_name(name: &str, yes: bool) -> Result<()> {
    use std::io::{BufRead, IsTerminal, Write};
    if yes {
        return Ok(());
    }
    if !std::io::stdin().is_terminal() {
        return Err(anyhow!(
            "refusing to delete without confirmation: stdin is not a terminal; pass --yes"
        ));
    }
    eprint!("Type the name of the backup repository to confirm: ");
    std::io::stderr().flush().ok();
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    let typed = line.trim();
    if typed != name {
        return Err(anyhow!("typed {typed:?} does not match {name:?}"));
    }
    Ok(())
}

/// `k=v` pairs to a map (for `--from-literal`).
pub fn literal_pairs(pairs: &[String]) -> Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for p in pairs {
        let (k, v) = p
            .split_once('=')
            .ok_or_else(|| anyhow!("invalid --from-literal {p:?}: expected KEY=VALUE"))?;
        if k.is_empty() {
            return Err(anyhow!("invalid --from-literal: the key is empty"));
        }
        out.insert(k.to_string(), v.to_string());
    }
    Ok(out)
}

/// Warn, on stderr, about each of `repos` whose storage location contains, or is contained
/// in, that of another repository (of `existing`, or of `repos` itself): the rule is
/// [`backuprepo_core::location::overlapping`]. `create` and `apply` call it before they
/// write; it refuses nothing (a repository inside another can be meant).
pub(crate) fn warn_overlaps(repos: &[BackupRepo], existing: &[BackupRepo]) {
    let mut said = std::collections::BTreeSet::new();
    for (i, r) in repos.iter().enumerate() {
        // Each pair once: the earlier documents of this apply, and what is stored (unless
        // this apply replaces it).
        let others = repos[..i].iter().chain(
            existing
                .iter()
                .filter(|e| !repos.iter().any(|n| n.name() == e.name())),
        );
        for w in backuprepo_core::location::overlapping(r, others) {
            if said.insert(w.clone()) {
                eprintln!("Warning: {w}");
            }
        }
    }
}
