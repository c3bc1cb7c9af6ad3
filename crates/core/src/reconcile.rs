//! One reconcile of a BackupRepo: the ordered checks of KubeBlocks (provider, parameters,
//! StorageClass/CSI secret, PVC template, pre-check), their conditions and reasons, the phase
//! rule, the digest, and what the store should materialise or probe next.
//!
//! A store calls [`reconcile`] with what it observed. When the output asks for a probe
//! ([`Output::probe`]), the store runs it and calls [`reconcile`] again with the result in
//! [`Input::probe`]. The function never does I/O and is deterministic: the same input gives the
//! same output, and a status that is already right is returned unchanged.

use std::collections::BTreeMap;
use std::time::Duration;

use backuprepo_api::constants::{
    condition_type as ct, message, name_prefix, reason, BACKUP_REPO_DIGEST_ANNOTATION,
    NEED_UPDATE_TOOL_CONFIG_ANNOTATION, READ_ONLY_ANNOTATION, SUSPEND_ANNOTATION,
};
use backuprepo_api::{
    derived_name, AccessMethod, BackupRepo, BackupRepoPhase, BackupRepoStatus, ProbeCheck,
    RepoUsage, StorageCapabilities, StorageProvider,
};
use backuprepo_catalog::params::{self, ParamError};
use backuprepo_catalog::render::{self, RenderedToolConfig};
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, SecretReference};
use k8s_openapi::api::storage::v1::StorageClass;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use crate::conditions::{self, FALSE, TRUE, UNKNOWN};
use crate::digest::digest;

mod mount;
mod retention;
use mount::{csi_driver_installed, pvc_step, storage_class_step, Render};
pub use retention::retention_reason;

/// Reasons this implementation adds to KubeBlocks' set.
pub mod extra_reason {
    /// Parameters fail the provider's schema (KubeBlocks does not validate them).
    pub const INVALID_PARAMETERS: &str = "InvalidParameters";
    /// The store cannot provide the access method (the local store has no CSI or PVCs).
    pub const ACCESS_METHOD_NOT_SUPPORTED: &str = "AccessMethodNotSupported";
    /// The credential Secret is in a namespace the controller does not read credentials from.
    pub const CREDENTIAL_NAMESPACE_NOT_ALLOWED: &str = "CredentialNamespaceNotAllowed";
}

/// Store-wide settings.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Re-check a `Ready` repository this often (`None`: only on changes, as KubeBlocks).
    pub recheck_interval: Option<Duration>,
    /// Re-check a repository whose check failed this often, so it becomes `Ready` by itself
    /// when the storage comes back (`None`: only on changes, as KubeBlocks).
    pub retry_failed_interval: Option<Duration>,
    /// Whether the store can provide Mount access (StorageClass, PVC, pre-check Job).
    pub mount_supported: bool,
    /// Namespace of generated CSI driver Secrets.
    pub namespace: String,
    /// Measure a Ready repository's usage again when the figure is this old (`None`: only
    /// after checks).
    pub usage_interval: Option<Duration>,
    /// Listing pages (of 1,000 entries) one usage measurement may read; a larger repository
    /// is measured over several runs.
    pub usage_pages: u64,
}

/// How soon a partial usage measurement resumes.
pub const USAGE_RESUME: Duration = Duration::from_secs(60);

impl Default for Settings {
    fn default() -> Self {
        Settings {
            recheck_interval: Some(Duration::from_secs(30 * 60)),
            retry_failed_interval: Some(Duration::from_secs(60)),
            mount_supported: false,
            namespace: "default".into(),
            usage_interval: Some(Duration::from_secs(3600)),
            usage_pages: 100,
        }
    }
}

/// What the store found for the repository's credential Secret.
#[derive(Clone, PartialEq)]
pub enum SecretState {
    /// `spec.credential` is not set.
    NotReferenced,
    Found(BTreeMap<String, String>),
    NotFound {
        namespace: String,
        name: String,
    },
    /// The store refuses to read it: its namespace is not one credentials may come from.
    NotAllowed {
        namespace: String,
        name: String,
        /// What to do about it (which namespaces are allowed, which setting widens them).
        fix: String,
    },
    /// Reading it failed for another reason (message without secret data).
    Error(String),
}

impl SecretState {
    /// The credential Secret a store must read for `repo`, as `(namespace, name)`; or, when
    /// there is none to read, the state to report (not referenced, or a reference without a
    /// namespace: the one rule of [`BackupRepo::credential_key`]).
    pub fn to_read(repo: &BackupRepo) -> Result<(String, String), SecretState> {
        match repo.credential_key() {
            Ok(Some(key)) => Ok(key),
            Ok(None) => Err(SecretState::NotReferenced),
            Err(why) => Err(SecretState::Error(format!(
                "spec.credential.namespace {why}"
            ))),
        }
    }
}

impl std::fmt::Debug for SecretState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SecretState::NotReferenced => f.write_str("NotReferenced"),
            SecretState::Found(m) => write!(f, "Found({:?})", m.keys().collect::<Vec<_>>()),
            SecretState::NotFound { namespace, name } => write!(f, "NotFound({namespace}/{name})"),
            SecretState::NotAllowed {
                namespace, name, ..
            } => {
                write!(f, "NotAllowed({namespace}/{name})")
            }
            SecretState::Error(e) => write!(f, "Error({e})"),
        }
    }
}

/// The result of a probe the store ran for `digest`.
#[derive(Debug, Clone, PartialEq)]
pub struct ProbeResult {
    pub digest: String,
    pub passed: bool,
    /// Summary of the failure (with the fix), empty when passed.
    pub message: String,
    pub checks: Vec<ProbeCheck>,
    pub finished_at: Time,
    /// What the repository holds, measured after a passing check (`None`: not measured).
    pub usage: Option<RepoUsage>,
    /// Versioning and object lock, read after a passing check (`None`: not read).
    pub capabilities: Option<StorageCapabilities>,
}

/// Everything one reconcile looks at.
#[derive(Debug, Clone)]
pub struct Input<'a> {
    pub repo: &'a BackupRepo,
    pub provider: Option<&'a StorageProvider>,
    pub secret: SecretState,
    /// A probe result to record (only used when its digest is the current one).
    pub probe: Option<ProbeResult>,
    /// `backuprepo check NAME`: probe now even if nothing changed.
    pub force_check: bool,
    pub now: Time,
    /// Random suffix for names allocated in this reconcile (`rand6` of KubeBlocks).
    pub name_suffix: &'a str,
    pub settings: &'a Settings,
}

/// A probe the store should run, then reconcile again with its result.
#[derive(Debug, Clone)]
pub enum ProbeRequest {
    /// Run the transfer probe with this tool config under the repository's path prefix.
    Tool {
        digest: String,
        config: Box<RenderedToolConfig>,
        path_prefix: String,
    },
    /// Run the Mount pre-check (a Job mounting the backup PVC); Kubernetes only.
    Mount { digest: String },
}

/// An event to report (Kubernetes event, or a line in the local store's log).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub warning: bool,
    pub reason: String,
    pub message: String,
}

/// The desired state after one reconcile. `Debug` shows the CSI secret's keys, not its data.
#[derive(Default)]
pub struct Output {
    pub status: BackupRepoStatus,
    /// Annotations the repository must carry (merged over its existing ones).
    pub annotations: BTreeMap<String, String>,
    pub tool_config: Option<RenderedToolConfig>,
    pub csi_secret: Option<(SecretReference, BTreeMap<String, String>)>,
    pub storage_class: Option<StorageClass>,
    /// The per-namespace backup PVC (name and namespace set by the store).
    pub pvc: Option<PersistentVolumeClaim>,
    pub probe: Option<ProbeRequest>,
    /// Reconcile again after this long (the next periodic check).
    pub requeue_after: Option<Duration>,
    pub events: Vec<Event>,
}

impl std::fmt::Debug for Output {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Output")
            .field("status", &self.status)
            .field("annotations", &self.annotations)
            .field("tool_config", &self.tool_config)
            .field(
                "csi_secret",
                &self
                    .csi_secret
                    .as_ref()
                    .map(|(r, d)| (r, d.keys().collect::<Vec<_>>())),
            )
            .field("storage_class", &self.storage_class)
            .field("pvc", &self.pvc)
            .field("probe", &self.probe)
            .field("requeue_after", &self.requeue_after)
            .field("events", &self.events)
            .finish()
    }
}

impl Output {
    /// Whether the status differs from the repository's current one (write only then).
    pub fn status_changed(&self, repo: &BackupRepo) -> bool {
        repo.status.as_ref() != Some(&self.status)
    }
}

struct Step<'a> {
    status: BackupRepoStatus,
    generation: Option<i64>,
    now: &'a Time,
}

impl Step<'_> {
    fn set(&mut self, type_: &str, status: &str, reason: &str, msg: impl Into<String>) {
        conditions::set(
            &mut self.status.conditions,
            type_,
            status,
            reason,
            conditions::truncate_message(msg.into()),
            self.generation,
            self.now,
        );
    }
}

pub fn reconcile(input: Input<'_>) -> Output {
    let repo = input.repo;
    let name = repo.name();
    let mut out = Output::default();
    let mut step = Step {
        status: repo.status.clone().unwrap_or_default(),
        generation: repo.metadata.generation,
        now: &input.now,
    };
    let before_precheck =
        conditions::get(&step.status.conditions, ct::PRE_CHECK_PASSED).map(|c| c.status.clone());

    if let Some(work) = checks(&input, &mut step, &mut out) {
        precheck(&input, &mut step, &mut out, work);
    }

    modes(repo, &mut step);
    retention::retention_step(repo, &mut step, &mut out);

    // Status fields that do not depend on the checks.
    let s = &mut step.status;
    s.is_default = Some(repo.is_default());
    s.observed_generation = repo.metadata.generation;
    if s.backup_pvc_name.is_none() {
        s.backup_pvc_name = Some(derived_name(
            name_prefix::BACKUP_PVC,
            name,
            input.name_suffix,
        ));
    }
    if s.tool_config_secret_name.is_none() {
        s.tool_config_secret_name = Some(derived_name(
            name_prefix::TOOL_CONFIG_SECRET,
            name,
            input.name_suffix,
        ));
    }
    s.phase = Some(phase(s));

    let after = conditions::get(&s.conditions, ct::PRE_CHECK_PASSED).map(|c| c.status.clone());
    if after != before_precheck {
        if let Some(c) = conditions::get(&s.conditions, ct::PRE_CHECK_PASSED) {
            match c.status.as_str() {
                TRUE => out.events.push(Event {
                    warning: false,
                    reason: reason::PRE_CHECK_PASSED.into(),
                    message: format!("backup repository {name:?} passed its check and is Ready"),
                }),
                FALSE => out.events.push(Event {
                    warning: true,
                    reason: c.reason.clone(),
                    message: c.message.clone(),
                }),
                _ => {}
            }
        }
    }
    out.requeue_after = next_check(&input, s);
    out.status = step.status;
    out
}

/// The conditions of our annotations: Suspended and ReadOnly are there (True) while the
/// annotation is, and gone otherwise. Neither is a failure: the phase rule ignores them.
fn modes(repo: &BackupRepo, step: &mut Step<'_>) {
    let name = repo.name();
    if repo.is_suspended() {
        step.set(
            ct::SUSPENDED,
            TRUE,
            ct::SUSPENDED,
            format!("periodic checks are suspended ({SUSPEND_ANNOTATION}: \"true\"); `backuprepo check {name}` still checks on demand; remove the annotation to resume"),
        );
    } else {
        conditions::remove(&mut step.status.conditions, ct::SUSPENDED);
    }
    if repo.is_read_only() {
        step.set(
            ct::READ_ONLY,
            TRUE,
            ct::READ_ONLY,
            format!("the repository is read-only ({READ_ONLY_ANNOTATION}: \"true\"): backups can be restored, none can be written; its check writes nothing; remove the annotation to allow writes"),
        );
    } else {
        conditions::remove(&mut step.status.conditions, ct::READ_ONLY);
    }
}

/// The conditions that explain what versioning and object lock change (not failures).
fn capability_conditions(step: &mut Step<'_>) {
    let caps = step.status.capabilities.clone().unwrap_or_default();
    if caps.versioning.as_deref() == Some("Enabled") {
        step.set(
            ct::VERSIONED,
            TRUE,
            "BucketVersioningEnabled",
            "the bucket keeps old versions: a deleted backup leaves its versions (and a delete marker) behind, and they still cost storage; expire them with a lifecycle rule for noncurrent versions",
        );
    } else {
        conditions::remove(&mut step.status.conditions, ct::VERSIONED);
    }
    match &caps.object_lock {
        Some(lock) => {
            let retention = match (lock.mode.as_deref(), lock.period()) {
                (Some(mode), Some(p)) => format!("new objects are locked in {mode} mode for {p}"),
                _ => {
                    "objects are locked only when written with a retention of their own".to_string()
                }
            };
            step.set(
                ct::OBJECT_LOCKED,
                TRUE,
                "ObjectLockEnabled",
                format!("the bucket has object lock: {retention}; an object under retention cannot be removed before it ends, so `rm` refuses to touch it rather than fail half-way"),
            );
        }
        None => conditions::remove(&mut step.status.conditions, ct::OBJECT_LOCKED),
    }
}

/// The repository's own tool config, whatever its access method and however far its
/// reconcile gets (a Mount repository whose CSI driver is missing, one being deleted): scoped
/// keys left from Tool access are revoked with it. It goes to no namespace. `None` when the
/// provider is missing or has no tool template, or the parameters do not resolve.
pub fn own_tool_config(input: &Input<'_>) -> Option<RenderedToolConfig> {
    let provider = input.provider?;
    let mut step = Step {
        status: BackupRepoStatus::default(),
        generation: None,
        now: &input.now,
    };
    let parameters = parameters_step(input, &mut step, provider)?;
    let ctx = render::Context {
        parameters: &parameters,
        csi_secret: None,
    };
    render::tool_config(&provider.spec, &ctx).ok().flatten()
}

/// What the checks before the pre-check hand over to it.
struct Work<'a> {
    provider: &'a StorageProvider,
    parameters: BTreeMap<String, String>,
    digest: String,
}

/// Steps 1–4, one function each. Returns `None` when a step failed (its condition says why;
/// later conditions keep their previous values, as in KubeBlocks).
fn checks<'a>(input: &Input<'a>, step: &mut Step<'_>, out: &mut Output) -> Option<Work<'a>> {
    let provider = provider_step(input, step)?;
    let parameters = parameters_step(input, step, provider)?;
    let render = Render {
        input,
        provider,
        parameters: &parameters,
    };
    storage_class_step(&render, step, out)?;
    pvc_step(&render, step, out)?;
    let digest = if input.repo.is_read_only() {
        // Turning read-only on or off re-checks the storage (the check differs) and re-renders
        // every copy of the tool config. Parameter names never contain '/'.
        let mut marked = parameters.clone();
        marked.insert(READ_ONLY_ANNOTATION.into(), "true".into());
        digest(&marked, &provider.spec)
    } else {
        digest(&parameters, &provider.spec)
    };
    Some(Work {
        provider,
        parameters,
        digest,
    })
}

/// Step 1: the storage provider exists and offers the access method
/// (condition StorageProviderReady).
fn provider_step<'a>(input: &Input<'a>, step: &mut Step<'_>) -> Option<&'a StorageProvider> {
    let repo = input.repo;
    let provider_name = &repo.spec.storage_provider_ref;
    let Some(provider) = input.provider else {
        step.set(
            ct::STORAGE_PROVIDER_READY,
            FALSE,
            reason::STORAGE_PROVIDER_NOT_FOUND,
            format!("storage provider {provider_name:?} not found; see the available ones with `backuprepo list-storage-provider`"),
        );
        return None;
    };
    let spec = &provider.spec;
    match repo.access_method() {
        AccessMethod::Tool if !spec.supports_tool() => {
            step.set(
                ct::STORAGE_PROVIDER_READY,
                FALSE,
                reason::INVALID_STORAGE_PROVIDER,
                method_unsupported(repo, provider, message::DATASAFED_CONFIG_TEMPLATE_EMPTY),
            );
            return None;
        }
        AccessMethod::Mount if !spec.supports_mount() => {
            step.set(
                ct::STORAGE_PROVIDER_READY,
                FALSE,
                reason::INVALID_STORAGE_PROVIDER,
                method_unsupported(repo, provider, message::BOTH_SC_AND_PVC_TEMPLATES_EMPTY),
            );
            return None;
        }
        AccessMethod::Mount
            if input.settings.mount_supported && !csi_driver_installed(provider) =>
        {
            step.set(
                ct::STORAGE_PROVIDER_READY,
                FALSE,
                reason::STORAGE_PROVIDER_NOT_READY,
                message::CSI_DRIVER_NOT_INSTALLED,
            );
            return None;
        }
        _ => {}
    }
    step.set(
        ct::STORAGE_PROVIDER_READY,
        TRUE,
        reason::STORAGE_PROVIDER_READY,
        "",
    );
    Some(provider)
}

/// KubeBlocks' message for an access method the provider has no templates for, then what it
/// means and the fix: the methods the provider offers, and that a repository without
/// `spec.accessMethod` is Mount.
fn method_unsupported(repo: &BackupRepo, provider: &StorageProvider, kb_message: &str) -> String {
    let offered = provider.spec.access_method_names();
    let method = repo.access_method();
    let why = match repo.spec.access_method {
        None => format!(
            "spec.accessMethod is not set, so it is {} (as in KubeBlocks)",
            method.as_str()
        ),
        Some(_) => format!("spec.accessMethod is {}", method.as_str()),
    };
    match offered.first() {
        Some(first) => format!(
            "{kb_message}: {why}, and provider {:?} supports only {}; set spec.accessMethod: {first}",
            provider.name(),
            offered.join(", ")
        ),
        None => format!(
            "{kb_message}: provider {:?} has neither a datasafed config template nor Mount templates",
            provider.name()
        ),
    }
}

/// Step 2: parameters: defaults < config < credential Secret, validated against the schema
/// (condition ParametersChecked).
fn parameters_step(
    input: &Input<'_>,
    step: &mut Step<'_>,
    provider: &StorageProvider,
) -> Option<BTreeMap<String, String>> {
    let spec = &provider.spec;
    let secret = match &input.secret {
        SecretState::NotReferenced => BTreeMap::new(),
        SecretState::Found(data) => data.clone(),
        SecretState::NotFound { namespace, name } => {
            step.set(
                ct::PARAMETERS_CHECKED,
                FALSE,
                reason::CREDENTIAL_SECRET_NOT_FOUND,
                format!("failed to get secret: secret \"{namespace}/{name}\" not found; create it or correct spec.credential"),
            );
            return None;
        }
        SecretState::NotAllowed {
            namespace,
            name,
            fix,
        } => {
            step.set(
                ct::PARAMETERS_CHECKED,
                FALSE,
                extra_reason::CREDENTIAL_NAMESPACE_NOT_ALLOWED,
                format!("credential secret \"{namespace}/{name}\" was not read: credentials are not read from namespace {namespace:?}; {fix}"),
            );
            return None;
        }
        SecretState::Error(e) => {
            step.set(
                ct::PARAMETERS_CHECKED,
                FALSE,
                reason::UNKNOWN_ERROR,
                format!("failed to get secret: {e}"),
            );
            return None;
        }
    };
    let schema = spec.open_api_v3_schema().cloned().unwrap_or_default();
    let parameters = match params::resolve(
        &schema,
        spec.credential_fields(),
        &input.repo.spec.config,
        &secret,
    ) {
        Ok(p) => p,
        Err(errors) => {
            step.set(
                ct::PARAMETERS_CHECKED,
                FALSE,
                extra_reason::INVALID_PARAMETERS,
                param_errors(&errors),
            );
            return None;
        }
    };
    step.set(ct::PARAMETERS_CHECKED, TRUE, reason::PARAMETERS_CHECKED, "");
    Some(parameters)
}

/// Step 5: the pre-check, with the digest rule and periodic re-checks.
fn precheck(input: &Input<'_>, step: &mut Step<'_>, out: &mut Output, work: Work<'_>) {
    let repo = input.repo;
    let spec = &work.provider.spec;
    let old_digest = repo
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(BACKUP_REPO_DIGEST_ANNOTATION))
        .cloned();
    let changed = old_digest.as_deref() != Some(work.digest.as_str());
    if changed {
        out.annotations
            .insert(BACKUP_REPO_DIGEST_ANNOTATION.into(), work.digest.clone());
        out.annotations
            .insert(NEED_UPDATE_TOOL_CONFIG_ANNOTATION.into(), "true".into());
        step.set(
            ct::PRE_CHECK_PASSED,
            UNKNOWN,
            reason::DIGEST_CHANGED,
            "the repository's parameters or provider changed; checking the storage",
        );
        step.status.checks.clear();
    }

    let request = match repo.access_method() {
        AccessMethod::Mount if !input.settings.mount_supported => {
            step.set(
                ct::PRE_CHECK_PASSED,
                FALSE,
                extra_reason::ACCESS_METHOD_NOT_SUPPORTED,
                "Mount access needs Kubernetes (a StorageClass, PVCs and a pre-check Job); the local store supports Tool access only: use accessMethod Tool, or for a mounted file system the `local` provider with its path",
            );
            return;
        }
        AccessMethod::Mount => ProbeRequest::Mount {
            digest: work.digest.clone(),
        },
        AccessMethod::Tool => {
            let ctx = render::Context {
                parameters: &work.parameters,
                csi_secret: None,
            };
            let rendered = render::tool_config(spec, &ctx).and_then(|c| match c {
                Some(c) if repo.is_read_only() => c.read_only().map(Some),
                c => Ok(c),
            });
            match rendered {
                Ok(Some(cfg)) => {
                    out.tool_config = Some(cfg.clone());
                    ProbeRequest::Tool {
                        digest: work.digest.clone(),
                        config: Box::new(cfg),
                        path_prefix: repo.spec.path_prefix.clone().unwrap_or_default(),
                    }
                }
                Ok(None) => {
                    step.set(
                        ct::PRE_CHECK_PASSED,
                        FALSE,
                        reason::PRE_CHECK_FAILED,
                        message::DATASAFED_CONFIG_TEMPLATE_EMPTY,
                    );
                    return;
                }
                Err(e) => {
                    step.set(
                        ct::PRE_CHECK_PASSED,
                        FALSE,
                        reason::PRE_CHECK_FAILED,
                        format!("failed to render tool config template: {e}"),
                    );
                    return;
                }
            }
        }
    };

    if let Some(p) = input.probe.as_ref().filter(|p| p.digest == work.digest) {
        if p.passed {
            step.set(ct::PRE_CHECK_PASSED, TRUE, reason::PRE_CHECK_PASSED, "");
        } else {
            step.set(
                ct::PRE_CHECK_PASSED,
                FALSE,
                reason::PRE_CHECK_FAILED,
                p.message.clone(),
            );
        }
        step.status.checks = p.checks.clone();
        step.status.last_check_time = Some(p.finished_at.clone());
        if p.passed && p.usage.is_some() {
            step.status.usage = p.usage.clone();
        }
        if p.passed && p.capabilities.is_some() {
            step.status.capabilities = p.capabilities.clone();
            capability_conditions(step);
        }
        return;
    }

    let current = conditions::get(&step.status.conditions, ct::PRE_CHECK_PASSED);
    let undecided = current.is_none_or(|c| c.status == UNKNOWN);
    // Suspended: no periodic checks or usage scans (a change or `check NAME` still checks).
    let periodic = !repo.is_suspended()
        && (due(input, &step.status)
            || usage_wait(input, &step.status).is_some_and(|w| w.is_zero()));
    if changed || undecided || input.force_check || periodic {
        if current.is_none() {
            step.set(
                ct::PRE_CHECK_PASSED,
                UNKNOWN,
                reason::DIGEST_CHANGED,
                "checking the storage",
            );
        }
        out.probe = Some(request);
    }
}

fn param_errors(errors: &[ParamError]) -> String {
    let lines: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
    format!("invalid parameters: {}", lines.join("; "))
}

/// KubeBlocks' phase rule: Ready when all five checks pass; PreChecking while the pre-check is
/// pending; Failed otherwise. Deleting is never left.
pub fn phase(s: &BackupRepoStatus) -> BackupRepoPhase {
    if s.phase == Some(BackupRepoPhase::Deleting) {
        return BackupRepoPhase::Deleting;
    }
    let basic = [
        ct::STORAGE_PROVIDER_READY,
        ct::PARAMETERS_CHECKED,
        ct::STORAGE_CLASS_CREATED,
        ct::PVC_TEMPLATE_CHECKED,
    ]
    .iter()
    .all(|t| conditions::is_true(&s.conditions, t));
    // Retention refused: Failed; waiting for the check to show object lock: not Ready yet.
    let retention = conditions::get(&s.conditions, ct::RETENTION).map(|c| c.status.as_str());
    if retention == Some(FALSE) {
        return BackupRepoPhase::Failed;
    }
    match conditions::get(&s.conditions, ct::PRE_CHECK_PASSED).map(|c| c.status.as_str()) {
        Some(TRUE) if basic && retention == Some(UNKNOWN) => BackupRepoPhase::PreChecking,
        Some(TRUE) if basic => BackupRepoPhase::Ready,
        Some(UNKNOWN) if basic => BackupRepoPhase::PreChecking,
        _ => BackupRepoPhase::Failed,
    }
}

/// The interval that applies to the repository's current check result.
fn interval(settings: &Settings, s: &BackupRepoStatus) -> Option<Duration> {
    match conditions::get(&s.conditions, ct::PRE_CHECK_PASSED).map(|c| c.status.as_str()) {
        Some(TRUE) => settings.recheck_interval,
        Some(FALSE) => settings.retry_failed_interval,
        _ => None,
    }
}

fn elapsed(input: &Input<'_>, s: &BackupRepoStatus) -> Option<Duration> {
    let last = s.last_check_time.as_ref()?;
    let secs = input.now.0.as_second() - last.0.as_second();
    Some(Duration::from_secs(secs.max(0) as u64))
}

/// Whether the periodic re-check is due.
fn due(input: &Input<'_>, s: &BackupRepoStatus) -> bool {
    let Some(every) = interval(input.settings, s) else {
        return false;
    };
    elapsed(input, s).is_none_or(|e| e >= every)
}

/// When to reconcile again for the next periodic check.
fn next_check(input: &Input<'_>, s: &BackupRepoStatus) -> Option<Duration> {
    if s.phase == Some(BackupRepoPhase::Deleting) || input.repo.is_suspended() {
        return None;
    }
    let check = interval(input.settings, s).map(|every| {
        let done = elapsed(input, s).unwrap_or(every);
        every.saturating_sub(done)
    });
    let next = match (check, usage_wait(input, s)) {
        (Some(a), Some(b)) => a.min(b),
        (a, b) => a.or(b)?,
    };
    Some(next.max(Duration::from_secs(1)))
}

/// How long until the usage figure of a Ready repository is due to be measured again (zero:
/// now); `None` when it is not measured (not Ready, Mount access, or no usage interval).
/// Not measured yet, or partial: [`USAGE_RESUME`] after the last run. Complete: when it is
/// `usage_interval` old.
fn usage_wait(input: &Input<'_>, s: &BackupRepoStatus) -> Option<Duration> {
    if input.repo.access_method() != AccessMethod::Tool
        || !conditions::is_true(&s.conditions, ct::PRE_CHECK_PASSED)
    {
        return None;
    }
    let every = input.settings.usage_interval?;
    let age_of =
        |t: &Time| Duration::from_secs((input.now.0.as_second() - t.0.as_second()).max(0) as u64);
    let (every, since) = match &s.usage {
        Some(u) if u.partial => (USAGE_RESUME.min(every), age_of(&u.measured_at)),
        Some(u) => (every, age_of(&u.measured_at)),
        // Not measured yet (or the measurement after the last check failed): a minute after
        // that check, so a failing measurement is not retried in a loop.
        None => (
            USAGE_RESUME.min(every),
            s.last_check_time
                .as_ref()
                .map(age_of)
                .unwrap_or(Duration::MAX),
        ),
    };
    Some(every.saturating_sub(since))
}
