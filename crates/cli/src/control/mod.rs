//! The control plane's commands (kbcli `backuprepo` and the kubectl flows of the seed) on the
//! local store. Each command is a module; this one holds what they share: the store, the
//! runtime, and output helpers.

pub mod cluster;
pub mod create;
pub mod data;
pub mod manifests;
pub mod repos;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{anyhow, Context as _, Result};
use backuprepo_api::{BackupRepo, BackupRepoPhase};
use backuprepo_local::{Engine, Store};

/// Namespace of credential Secrets created by `create` (kbcli uses the KubeBlocks namespace).
pub const SECRET_NAMESPACE: &str = "kb-system";

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

/// A number of seconds from the environment (unset or empty: `None`).
fn env_seconds(name: &str) -> Result<Option<u64>> {
    match std::env::var(name).ok().filter(|v| !v.is_empty()) {
        None => Ok(None),
        Some(v) => v
            .parse()
            .map(Some)
            .map_err(|_| anyhow!("{name} must be a number of seconds, got {v:?}")),
    }
}

pub struct Ctx {
    pub engine: Engine,
    pub rt: tokio::runtime::Runtime,
}

impl Ctx {
    pub fn open(home_flag: Option<PathBuf>) -> Result<Ctx> {
        let home = home(home_flag)?;
        let store = Store::open(&home)
            .with_context(|| format!("cannot open the local store at {}", home.display()))?;
        let mut engine = Engine::new(store);
        if let Some(secs) = env_seconds("BACKUPREPO_RECHECK_INTERVAL")? {
            engine.settings.recheck_interval = (secs > 0).then(|| Duration::from_secs(secs));
        }
        if let Some(secs) = env_seconds("BACKUPREPO_RETRY_INTERVAL")? {
            engine.settings.retry_failed_interval = (secs > 0).then(|| Duration::from_secs(secs));
        }
        if let Some(secs) = env_seconds("BACKUPREPO_PROBE_TIMEOUT")? {
            engine.probe_timeout = Duration::from_secs(secs.max(1));
        }
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .context("cannot start the runtime")?;
        Ok(Ctx { engine, rt })
    }

    pub fn store(&self) -> &Store {
        &self.engine.store
    }

    pub fn reconcile(&self, name: &str, force: bool) -> Result<BackupRepo> {
        Ok(self.rt.block_on(self.engine.reconcile(name, force))?)
    }

    /// Every repository, reconciled first so what is shown is current (periodic re-checks
    /// that are due run here).
    pub fn repos(&self) -> Result<Vec<BackupRepo>> {
        Ok(self.rt.block_on(self.engine.reconcile_all())?)
    }
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

/// Print objects as YAML (a list when several) or JSON.
pub fn print_objects<T: serde::Serialize>(objs: &[T], format: &str, single: bool) -> Result<()> {
    match format {
        "json" => {
            let s = if single && objs.len() == 1 {
                serde_json::to_string_pretty(&objs[0])?
            } else {
                serde_json::to_string_pretty(&serde_json::json!({
                    "apiVersion": "v1", "kind": "List", "items": objs
                }))?
            };
            println!("{s}");
        }
        "yaml" => {
            let s = if single && objs.len() == 1 {
                serde_yaml_ng::to_string(&objs[0])?
            } else {
                serde_yaml_ng::to_string(&serde_json::json!({
                    "apiVersion": "v1", "kind": "List", "items": objs
                }))?
            };
            print!("{s}");
        }
        other => return Err(anyhow!("unknown output format {other:?}: use json or yaml")),
    }
    Ok(())
}

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
