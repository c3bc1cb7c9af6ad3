//! The in-process reconcile of the local store: read the repository, its provider and its
//! credential Secret; call the pure core; run the probe it asks for (without holding the lock:
//! a probe can take seconds); write the result back under the lock, retrying on a concurrent
//! change; keep the rendered tool config of a Ready Tool repository in a 0600 file.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use backuprepo_api::constants::NEED_UPDATE_TOOL_CONFIG_ANNOTATION;
use backuprepo_api::k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use backuprepo_api::{random_suffix, secret_data, AccessMethod, BackupRepo, BackupRepoPhase};
use backuprepo_core::{
    reconcile_with_probe, Input, ProbeRequest, ProbeResult, SecretState, Settings,
};
use backuprepo_transfer::probe::ProbeOptions;
use backuprepo_transfer::storage::check_tool;

use crate::store::is_valid_name;
use crate::{now, Error, Result, Store};

/// How often a write is retried when another invocation changed the repository meanwhile.
const MAX_ATTEMPTS: usize = 5;

#[derive(Clone)]
pub struct Engine {
    pub store: Store,
    pub settings: Settings,
    /// Upper bound of one probe.
    pub probe_timeout: Duration,
    /// Where the engine reads the time (check times, metadata stamps); the wall clock unless a
    /// test sets another ([`Engine::with_clock`]).
    clock: Clock,
}

/// A source of the current time.
pub type Clock = Arc<dyn Fn() -> Time + Send + Sync>;

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("store", &self.store)
            .field("settings", &self.settings)
            .field("probe_timeout", &self.probe_timeout)
            .finish_non_exhaustive()
    }
}

impl Engine {
    pub fn new(store: Store) -> Engine {
        Engine {
            store,
            settings: Settings::default(),
            probe_timeout: Duration::from_secs(60),
            clock: Arc::new(now),
        }
    }

    /// Read the time from `clock` instead of the wall clock (tests make time pass with it).
    pub fn with_clock(mut self, clock: Clock) -> Engine {
        self.clock = clock;
        self
    }

    /// Reconcile one repository (probing the storage when the core asks) and store the result.
    pub async fn reconcile(&self, name: &str, force_check: bool) -> Result<BackupRepo> {
        let mut last_conflict = None;
        for _ in 0..MAX_ATTEMPTS {
            let repo = self.store.repo(name)?.ok_or_else(|| {
                Error::NotFound(format!("backup repository {name:?} is not found"))
            })?;
            match self.once(repo, force_check).await {
                Err(Error::Conflict(e)) => last_conflict = Some(e),
                other => return other,
            }
        }
        Err(Error::Conflict(last_conflict.unwrap_or_default()))
    }

    /// Reconcile every repository (what `list` and `describe` show is then current).
    pub async fn reconcile_all(&self) -> Result<Vec<BackupRepo>> {
        let mut out = Vec::new();
        for r in self.store.repos()? {
            out.push(self.reconcile(r.name(), false).await?);
        }
        Ok(out)
    }

    /// The core's verdict, with the probe it asked for already run.
    async fn evaluate(
        &self,
        repo: &BackupRepo,
        provider: Option<&backuprepo_api::StorageProvider>,
        secret: SecretState,
        force_check: bool,
    ) -> backuprepo_core::Output {
        evaluate(
            &self.settings,
            self.probe_timeout,
            &*self.clock,
            repo,
            provider,
            secret,
            force_check,
        )
        .await
    }

    async fn once(&self, repo: BackupRepo, force_check: bool) -> Result<BackupRepo> {
        let provider = self.provider(&repo)?;
        let secret = self.secret_state(&repo)?;
        let out = self
            .evaluate(&repo, provider.as_ref(), secret, force_check)
            .await;

        let lock = self.store.lock()?;
        let mut updated = repo.clone();
        if !out.annotations.is_empty() {
            updated
                .metadata
                .annotations
                .get_or_insert_with(BTreeMap::new)
                .extend(out.annotations.clone());
        }
        let ready_tool = out.status.phase == Some(BackupRepoPhase::Ready)
            && repo.access_method() == AccessMethod::Tool;
        updated.status = Some(out.status);
        // The tool config file is rewritten below in the same locked section: the repository
        // no longer needs a tool-config update (KubeBlocks resets the annotation the same way).
        if ready_tool && out.tool_config.is_some() {
            updated
                .metadata
                .annotations
                .get_or_insert_with(BTreeMap::new)
                .insert(NEED_UPDATE_TOOL_CONFIG_ANNOTATION.into(), "false".into());
        }
        let stored = if updated != repo {
            self.store.put_repo(&lock, updated, &(self.clock)())?
        } else {
            repo
        };
        if ready_tool {
            if let Some(cfg) = &out.tool_config {
                self.store
                    .write_tool_config(&lock, stored.name(), cfg.text())?;
            }
        }
        Ok(stored)
    }

    /// The repository's provider. A reference no stored object can match (e.g. `S3`) is not
    /// found, as in Kubernetes, rather than an error that stops the reconcile.
    fn provider(&self, repo: &BackupRepo) -> Result<Option<backuprepo_api::StorageProvider>> {
        let name = &repo.spec.storage_provider_ref;
        if !is_valid_name(name) {
            return Ok(None);
        }
        self.store.provider(name)
    }

    fn secret_state(&self, repo: &BackupRepo) -> Result<SecretState> {
        let (namespace, name) = match SecretState::to_read(repo) {
            Ok(key) => key,
            Err(state) => return Ok(state),
        };
        let name = name.as_str();
        // A name no stored Secret can have is not found (not an error), as in Kubernetes.
        if !is_valid_name(&namespace) || !is_valid_name(name) {
            return Ok(SecretState::NotFound {
                namespace,
                name: name.to_string(),
            });
        }
        match self.store.secret(&namespace, name)? {
            None => Ok(SecretState::NotFound {
                namespace,
                name: name.to_string(),
            }),
            Some(s) => match secret_data(&s) {
                Ok(data) => Ok(SecretState::Found(data)),
                Err(e) => Ok(SecretState::Error(e.to_string())),
            },
        }
    }
}

/// Check a repository that is stored nowhere (`create --dry-run` against a cluster): the core's
/// verdict with the probe run from this machine. `secret` is the credential data it would
/// reference.
pub async fn check_unstored(
    settings: &Settings,
    probe_timeout: Duration,
    mut repo: BackupRepo,
    provider: Option<&backuprepo_api::StorageProvider>,
    secret: BTreeMap<String, String>,
) -> BackupRepo {
    let out = evaluate(
        settings,
        probe_timeout,
        &now,
        &repo,
        provider,
        SecretState::Found(secret),
        true,
    )
    .await;
    repo.status = Some(out.status);
    repo
}

/// The core's verdict, with the probe it asked for already run.
async fn evaluate(
    settings: &Settings,
    probe_timeout: Duration,
    clock: &(dyn Fn() -> Time + Send + Sync),
    repo: &BackupRepo,
    provider: Option<&backuprepo_api::StorageProvider>,
    secret: SecretState,
    force_check: bool,
) -> backuprepo_core::Output {
    let suffix = random_suffix();
    let input = Input {
        repo,
        provider,
        secret,
        probe: None,
        force_check,
        now: clock(),
        name_suffix: &suffix,
        settings,
    };
    // The local store probes in-process; Mount never reaches a probe (the core refuses it).
    let checked = reconcile_with_probe(input, |first| async move {
        let result = match &first.probe {
            Some(ProbeRequest::Tool {
                digest,
                config,
                path_prefix,
            }) => {
                let previous = repo.status.as_ref().and_then(|s| s.usage.as_ref());
                let after = (previous, settings.usage_pages);
                Some(probe(probe_timeout, digest, config, path_prefix, after, clock).await)
            }
            _ => None,
        };
        Ok::<_, std::convert::Infallible>((first, result))
    })
    .await;
    let out = match checked {
        Ok((out, _)) => out,
        Err(never) => match never {},
    };
    // The events of the local store (what `kubectl get events` shows on Kubernetes) are
    // logged at info: every command that checks says the outcome itself, once
    // (`--log-level info` shows them too).
    for e in &out.events {
        let kind = if e.warning { "Warning" } else { "Normal" };
        tracing::info!(repo = repo.name(), reason = %e.reason, kind, "{}", e.message);
    }
    out
}

async fn probe(
    timeout: Duration,
    digest: &str,
    config: &backuprepo_catalog::render::RenderedToolConfig,
    path_prefix: &str,
    (previous, pages): (Option<&backuprepo_api::RepoUsage>, u64),
    clock: &(dyn Fn() -> Time + Send + Sync),
) -> ProbeResult {
    let opts = ProbeOptions {
        path_prefix: path_prefix.to_string(),
        timeout,
        ..ProbeOptions::default()
    };
    let c = check_tool(&config.config, &opts, previous, pages, clock).await;
    tracing::debug!(elapsed = ?c.duration, passed = c.passed, "probe finished");
    ProbeResult {
        digest: digest.to_string(),
        passed: c.passed,
        message: c.message,
        checks: c.checks,
        finished_at: clock(),
        usage: c.after.usage,
        capabilities: c.after.capabilities,
    }
}
