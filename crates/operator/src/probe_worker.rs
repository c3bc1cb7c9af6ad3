//! The Tool check's network work, in a child process that holds no Kubernetes credential.
//!
//! The controller talks to endpoints that users choose, and holds the service-account token
//! and every credential Secret it read. A bug in the storage, TLS or XML code that a hostile
//! endpoint could exploit should reach neither. So the check runs in `backuprepo probe-worker`:
//! a child started with an empty environment, given only the repository's own config on stdin,
//! that restricts itself with Landlock before it starts a thread or opens a connection: it may
//! read the system directories it needs (`/etc` for DNS and CA bundles, `/usr`, `/lib*`) and,
//! for a `local` backend, its root; nothing else, so the token under
//! `/var/run/secrets/kubernetes.io/serviceaccount` and any other file are out of its reach.
//! Landlock needs no privilege; where the kernel lacks it, the child says so and the controller
//! logs a warning (the check still runs).

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{ExitCode, Stdio};
use std::time::Duration;

use backuprepo_api::RepoUsage;
use backuprepo_transfer::config::{Backend, ToolConfig};
use backuprepo_transfer::probe::ProbeOptions;
use backuprepo_transfer::storage::{check_tool, Checked};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// What the controller asks of a worker (on its stdin, JSON): a check, or a replication run.
#[derive(Debug, Serialize, Deserialize)]
pub enum Job {
    Check(Request),
    Replicate(ReplicateRequest),
}

/// A replication run (`backuprepo.io/replicate-to`): both repositories' configs.
/// `Debug` shows the prefixes, never the configs (they hold the keys).
#[derive(Serialize, Deserialize)]
pub struct ReplicateRequest {
    pub source: String,
    pub source_prefix: String,
    pub destination: String,
    pub destination_prefix: String,
    pub refused_hosts: Option<Vec<String>>,
}

/// A check.
/// `Debug` shows everything but the config (it holds the key).
#[derive(Serialize, Deserialize)]
pub struct Request {
    /// The repository's rendered tool config (it holds the repository's key).
    pub config: String,
    pub path_prefix: String,
    pub timeout_secs: u64,
    pub previous: Option<RepoUsage>,
    pub pages: u64,
    /// The endpoint guard's refused hosts; `None`: internal endpoints allowed.
    pub refused_hosts: Option<Vec<String>>,
}

impl std::fmt::Debug for ReplicateRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReplicateRequest")
            .field("source", &"<redacted>")
            .field("source_prefix", &self.source_prefix)
            .field("destination", &"<redacted>")
            .field("destination_prefix", &self.destination_prefix)
            .field("refused_hosts", &self.refused_hosts)
            .finish()
    }
}

impl std::fmt::Debug for Request {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Request")
            .field("config", &"<redacted>")
            .field("path_prefix", &self.path_prefix)
            .field("timeout_secs", &self.timeout_secs)
            .field("pages", &self.pages)
            .field("refused_hosts", &self.refused_hosts)
            .finish_non_exhaustive()
    }
}

/// What a worker answers (on its stdout, JSON).
#[derive(Debug, Serialize, Deserialize)]
pub struct Response {
    pub checked: Option<Checked>,
    /// A replication run's figures.
    #[serde(default)]
    pub replicated: Option<backuprepo_api::ReplicationRun>,
    pub error: Option<String>,
    /// How the sandbox was applied: `enforced`, `partially enforced` or `not enforced`.
    pub sandbox: String,
}

/// The directories a worker may read.
const SYSTEM_DIRS: &[&str] = &[
    "/etc",
    "/usr",
    "/lib",
    "/lib64",
    "/sys/fs/cgroup",
    "/proc/self",
];

/// Restrict this process (and the threads it starts later) to reading [`SYSTEM_DIRS`] and, for
/// local backends, using their roots.
fn sandbox(cfgs: &[ToolConfig]) -> Result<&'static str, String> {
    use landlock::{
        path_beneath_rules, Access, AccessFs, Ruleset, RulesetAttr, RulesetCreatedAttr,
        RulesetStatus, ABI,
    };
    let abi = ABI::V5;
    let dirs: Vec<&str> = SYSTEM_DIRS
        .iter()
        .copied()
        .filter(|d| Path::new(d).exists())
        .collect();
    let mut ruleset = Ruleset::default()
        .handle_access(AccessFs::from_all(abi))
        .and_then(|r| r.create())
        .and_then(|r| r.add_rules(path_beneath_rules(&dirs, AccessFs::from_read(abi))))
        .map_err(|e| format!("cannot build the sandbox: {e}"))?;
    for cfg in cfgs {
        if let Backend::Local(l) = &cfg.backend {
            let root: &Path = l.root.as_ref();
            ruleset = ruleset
                .add_rules(path_beneath_rules([root], AccessFs::from_all(abi)))
                .map_err(|e| format!("cannot open the local root to the sandbox: {e}"))?;
        }
    }
    let status = ruleset
        .restrict_self()
        .map_err(|e| format!("cannot enter the sandbox: {e}"))?;
    Ok(match status.ruleset {
        RulesetStatus::FullyEnforced => "enforced",
        RulesetStatus::PartiallyEnforced => "partially enforced",
        RulesetStatus::NotEnforced => "not enforced (the kernel has no Landlock)",
    })
}

/// `backuprepo probe-worker`: read a [`Job`] on stdin, enter the sandbox, run it, write a
/// [`Response`] on stdout.
pub fn worker_main() -> ExitCode {
    let answer = |r: Response| {
        let mut out = std::io::stdout();
        let written = serde_json::to_writer(&mut out, &r).is_ok() && out.flush().is_ok();
        match written {
            true => ExitCode::SUCCESS,
            false => ExitCode::FAILURE,
        }
    };
    let fail = |error: String, sandbox: &str| {
        answer(Response {
            checked: None,
            replicated: None,
            error: Some(error),
            sandbox: sandbox.to_string(),
        })
    };
    let mut input = String::new();
    if let Err(e) = std::io::stdin().read_to_string(&mut input) {
        return fail(format!("cannot read the request: {e}"), "not entered");
    }
    let job: Job = match serde_json::from_str(&input) {
        Ok(r) => r,
        Err(e) => return fail(format!("malformed request: {e}"), "not entered"),
    };
    let texts: Vec<&str> = match &job {
        Job::Check(r) => vec![&r.config],
        Job::Replicate(r) => vec![&r.source, &r.destination],
    };
    let cfgs = match texts
        .into_iter()
        .map(ToolConfig::parse)
        .collect::<Result<Vec<_>, _>>()
    {
        Ok(c) => c,
        Err(e) => return fail(format!("the config does not parse: {e}"), "not entered"),
    };
    // Before any thread or connection exists: every thread started later inherits it.
    let sandbox = match sandbox(&cfgs) {
        Ok(s) => s,
        Err(e) => return fail(e, "failed"),
    };
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return fail(format!("cannot start the runtime: {e}"), sandbox),
    };
    let refused = match &job {
        Job::Check(r) => r.refused_hosts.clone(),
        Job::Replicate(r) => r.refused_hosts.clone(),
    };
    let mut response = Response {
        checked: None,
        replicated: None,
        error: None,
        sandbox: sandbox.to_string(),
    };
    rt.block_on(async {
        backuprepo_transfer::service::install_crypto_provider();
        if let Some(hosts) = &refused {
            backuprepo_transfer::endpoint::guard_process(hosts).await;
        }
        match &job {
            Job::Check(req) => {
                let opts = ProbeOptions {
                    path_prefix: req.path_prefix.clone(),
                    timeout: Duration::from_secs(req.timeout_secs),
                    ..ProbeOptions::default()
                };
                let now = || {
                    backuprepo_api::k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                        backuprepo_api::k8s_openapi::jiff::Timestamp::now(),
                    )
                };
                response.checked =
                    Some(check_tool(&cfgs[0], &opts, req.previous.as_ref(), req.pages, now).await);
            }
            Job::Replicate(req) => {
                response.replicated = Some(
                    backuprepo_transfer::storage::replicate(
                        &cfgs[0],
                        &req.source_prefix,
                        &cfgs[1],
                        &req.destination_prefix,
                    )
                    .await,
                );
            }
        }
    });
    answer(response)
}

/// Run `req` in a worker started from `exe`, with an empty environment; killed after
/// `limit`.
pub async fn run(exe: &PathBuf, req: &Job, limit: Duration) -> Result<Response, String> {
    let body = serde_json::to_vec(req).map_err(|e| format!("cannot encode the request: {e}"))?;
    let mut child = tokio::process::Command::new(exe)
        .arg("probe-worker")
        .env_clear()
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("cannot start the check's worker {}: {e}", exe.display()))?;
    let mut stdin = child.stdin.take().ok_or("the worker has no stdin")?;
    let mut stdout = child.stdout.take().ok_or("the worker has no stdout")?;
    let talk = async {
        stdin
            .write_all(&body)
            .await
            .map_err(|e| format!("cannot send the request to the worker: {e}"))?;
        drop(stdin);
        let mut out = Vec::new();
        stdout
            .read_to_end(&mut out)
            .await
            .map_err(|e| format!("cannot read the worker's answer: {e}"))?;
        let _ = child.wait().await;
        serde_json::from_slice::<Response>(&out)
            .map_err(|e| format!("the worker ended without an answer ({e})"))
    };
    match tokio::time::timeout(limit, talk).await {
        Ok(r) => r,
        Err(_) => Err(format!(
            "the worker did not answer within {}s and was stopped",
            limit.as_secs()
        )),
    }
}

/// `None` in a process that is not the `backuprepo` binary (tests run checks in-process).
pub fn default_worker() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    (exe.file_name()? == "backuprepo").then_some(exe)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_never_show_their_configs() {
        let config = "[storage]\ntype = s3\nsecret_access_key = TOPSECRET\n".to_string();
        let jobs = [
            Job::Check(Request {
                config: config.clone(),
                path_prefix: "p".into(),
                timeout_secs: 1,
                previous: None,
                pages: 1,
                refused_hosts: None,
            }),
            Job::Replicate(ReplicateRequest {
                source: config.clone(),
                source_prefix: "a".into(),
                destination: config,
                destination_prefix: "b".into(),
                refused_hosts: None,
            }),
        ];
        for job in jobs {
            let shown = format!("{job:?}");
            assert!(
                !shown.contains("TOPSECRET") && shown.contains("<redacted>"),
                "{shown}"
            );
        }
    }
}
