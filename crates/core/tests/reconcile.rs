//! The pure core, case by case: every condition and reason it sets, the phase rule, the digest
//! rule, periodic re-checks and recovery, the default-repository and deletion rules. Secrets
//! never reach the status.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::time::Duration;

use backuprepo_api::constants::{
    condition_type as ct, reason, BACKUP_REPO_DIGEST_ANNOTATION, IS_DEFAULT_REPO_ANNOTATION,
    NEED_UPDATE_TOOL_CONFIG_ANNOTATION, READ_ONLY_ANNOTATION, SUSPEND_ANNOTATION,
};
use backuprepo_api::k8s_openapi::api::core::v1::SecretReference;
use backuprepo_api::k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use backuprepo_api::k8s_openapi::jiff::Timestamp;
use backuprepo_api::{
    AccessMethod, BackupRepo, BackupRepoPhase, BackupRepoSpec, ProbeCheck, PvReclaimPolicy,
    RepoUsage, StorageProvider, StorageProviderStatus,
};
use backuprepo_catalog::builtin;
use backuprepo_core::conditions::{FALSE, TRUE, UNKNOWN};
use backuprepo_core::reconcile::extra_reason;
use backuprepo_core::{
    defaults, deletion, reconcile, Input, Output, ProbeRequest, ProbeResult, SecretState, Settings,
};

const SECRET: &str = "s3cr3t-Value-never-shown";

fn t(secs: i64) -> Time {
    Time(Timestamp::from_second(1_800_000_000 + secs).unwrap())
}

fn repo(name: &str, provider: &str, method: AccessMethod, config: &[(&str, &str)]) -> BackupRepo {
    let mut r = BackupRepo::new(
        name,
        BackupRepoSpec {
            storage_provider_ref: provider.into(),
            access_method: Some(method),
            volume_capacity: None,
            pv_reclaim_policy: PvReclaimPolicy::Retain,
            config: config
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            credential: None,
            path_prefix: None,
            allowed_namespaces: None,
        },
    );
    r.metadata.generation = Some(1);
    r
}

fn local_repo() -> BackupRepo {
    repo(
        "my-repo",
        "local",
        AccessMethod::Tool,
        &[("path", "/srv/backups")],
    )
}

fn s3_repo() -> BackupRepo {
    let mut r = repo(
        "s3-repo",
        "s3",
        AccessMethod::Tool,
        &[("bucket", "b"), ("region", "eu-west-1")],
    );
    r.spec.credential = Some(SecretReference {
        name: Some("cred".into()),
        namespace: Some("kb-system".into()),
    });
    r
}

fn s3_secret() -> SecretState {
    SecretState::Found(
        [("accessKeyId", "AKIA"), ("secretAccessKey", SECRET)]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    )
}

fn provider(name: &str) -> StorageProvider {
    builtin::get(name).unwrap()
}

fn local_settings() -> Settings {
    Settings {
        recheck_interval: Some(Duration::from_secs(600)),
        retry_failed_interval: Some(Duration::from_secs(60)),
        mount_supported: false,
        namespace: "kb-system".into(),
        usage_interval: None,
        usage_pages: 100,
    }
}

fn run(
    repo: &BackupRepo,
    provider: Option<&StorageProvider>,
    secret: SecretState,
    probe: Option<ProbeResult>,
    now: i64,
    settings: &Settings,
) -> Output {
    reconcile(Input {
        repo,
        provider,
        secret,
        probe,
        force_check: false,
        now: t(now),
        name_suffix: "x2b4z",
        settings,
    })
}

fn cond<'a>(o: &'a Output, type_: &str) -> &'a Condition {
    o.status
        .conditions
        .iter()
        .find(|c| c.type_ == type_)
        .unwrap_or_else(|| panic!("no {type_} in {:?}", o.status.conditions))
}

fn assert_cond(o: &Output, type_: &str, status: &str, reason: &str) {
    let c = cond(o, type_);
    assert_eq!(
        (c.status.as_str(), c.reason.as_str()),
        (status, reason),
        "{type_}: {}",
        c.message
    );
}

/// Apply an output to the repository as a store would.
fn apply(repo: &BackupRepo, o: &Output) -> BackupRepo {
    let mut r = repo.clone();
    r.metadata
        .annotations
        .get_or_insert_with(BTreeMap::new)
        .extend(o.annotations.clone());
    r.status = Some(o.status.clone());
    r
}

fn result_for(o: &Output, passed: bool, at: i64) -> ProbeResult {
    result_with_usage(o, passed, at, None)
}

fn result_with_usage(o: &Output, passed: bool, at: i64, usage: Option<RepoUsage>) -> ProbeResult {
    let digest = match o.probe.as_ref().expect("a probe was requested") {
        ProbeRequest::Tool { digest, .. } | ProbeRequest::Mount { digest } => digest.clone(),
    };
    ProbeResult {
        digest,
        passed,
        message: if passed {
            String::new()
        } else {
            "Put failed: access denied; the key needs write permission".into()
        },
        checks: vec![ProbeCheck {
            operation: "put".into(),
            result: if passed { "Passed" } else { "Failed" }.into(),
            message: None,
            duration_ms: Some(3),
        }],
        finished_at: t(at),
        usage,
        capabilities: None,
    }
}

fn no_secret_in(o: &Output) {
    let json = serde_json::to_string(&o.status).unwrap();
    assert!(!json.contains(SECRET), "secret leaked into status: {json}");
    for e in &o.events {
        assert!(!e.message.contains(SECRET), "secret leaked into event");
    }
    assert!(
        !format!("{o:?}").contains(SECRET),
        "secret leaked into Debug"
    );
}

#[test]
fn missing_provider_fails_without_probe() {
    let s = local_settings();
    let o = run(&local_repo(), None, SecretState::NotReferenced, None, 0, &s);
    assert_cond(
        &o,
        ct::STORAGE_PROVIDER_READY,
        FALSE,
        reason::STORAGE_PROVIDER_NOT_FOUND,
    );
    assert!(cond(&o, ct::STORAGE_PROVIDER_READY)
        .message
        .contains("list-storage-provider"));
    assert_eq!(o.status.phase, Some(BackupRepoPhase::Failed));
    assert!(o.probe.is_none());
}

#[test]
fn provider_must_support_the_access_method() {
    let s = local_settings();
    let nfs = provider("nfs");
    let r = repo("r", "nfs", AccessMethod::Tool, &[("nfsServer", "10.0.0.1")]);
    let o = run(&r, Some(&nfs), SecretState::NotReferenced, None, 0, &s);
    assert_cond(
        &o,
        ct::STORAGE_PROVIDER_READY,
        FALSE,
        reason::INVALID_STORAGE_PROVIDER,
    );
    // KubeBlocks' message first (what scripts match), then the reason and the fix.
    assert_eq!(
        cond(&o, ct::STORAGE_PROVIDER_READY).message,
        "DatasafedConfigTemplate is empty: spec.accessMethod is Tool, and provider \"nfs\" supports only Mount; set spec.accessMethod: Mount"
    );

    let ftp = provider("ftp");
    let r = repo("r", "ftp", AccessMethod::Mount, &[]);
    let o = run(&r, Some(&ftp), SecretState::NotReferenced, None, 0, &s);
    assert_cond(
        &o,
        ct::STORAGE_PROVIDER_READY,
        FALSE,
        reason::INVALID_STORAGE_PROVIDER,
    );
    assert_eq!(
        cond(&o, ct::STORAGE_PROVIDER_READY).message,
        "both StorageClassTemplate and PersistentVolumeClaimTemplate are empty: spec.accessMethod is Mount, and provider \"ftp\" supports only Tool; set spec.accessMethod: Tool"
    );
}

#[test]
fn mount_needs_the_csi_driver_on_kubernetes() {
    let s = Settings {
        mount_supported: true,
        ..local_settings()
    };
    let mut p = provider("s3");
    let mut r = s3_repo();
    r.spec.access_method = Some(AccessMethod::Mount);
    let o = run(&r, Some(&p), s3_secret(), None, 0, &s);
    assert_cond(
        &o,
        ct::STORAGE_PROVIDER_READY,
        FALSE,
        reason::STORAGE_PROVIDER_NOT_READY,
    );
    assert_eq!(
        cond(&o, ct::STORAGE_PROVIDER_READY).message,
        "CSI driver is not installed"
    );
    // Tool access does not need it.
    r.spec.access_method = Some(AccessMethod::Tool);
    let o = run(&r, Some(&p), s3_secret(), None, 0, &s);
    assert_cond(
        &o,
        ct::STORAGE_PROVIDER_READY,
        TRUE,
        reason::STORAGE_PROVIDER_READY,
    );
    // ...nor a CSI secret (one more copy of the credentials) or a StorageClass.
    assert!(o.csi_secret.is_none() && o.storage_class.is_none());
    assert!(o.status.generated_csi_driver_secret.is_none());
    assert_cond(&o, ct::STORAGE_CLASS_CREATED, TRUE, reason::SKIPPED);

    // With the driver installed: CSI secret, StorageClass and a Mount pre-check.
    p.status = Some(StorageProviderStatus {
        phase: None,
        conditions: vec![Condition {
            type_: ct::CSI_DRIVER_INSTALLED.into(),
            status: TRUE.into(),
            reason: reason::CSI_DRIVER_OBJECT_FOUND.into(),
            message: String::new(),
            observed_generation: None,
            last_transition_time: t(0),
        }],
    });
    r.spec.access_method = Some(AccessMethod::Mount);
    r.spec.pv_reclaim_policy = PvReclaimPolicy::Delete;
    let o = run(&r, Some(&p), s3_secret(), None, 0, &s);
    assert_cond(
        &o,
        ct::STORAGE_CLASS_CREATED,
        TRUE,
        reason::STORAGE_CLASS_CREATED,
    );
    assert_cond(&o, ct::PVC_TEMPLATE_CHECKED, TRUE, reason::SKIPPED);
    let (secret_ref, data) = o.csi_secret.as_ref().unwrap();
    assert_eq!(secret_ref.name.as_deref(), Some("secret-s3-repo-x2b4z"));
    assert_eq!(secret_ref.namespace.as_deref(), Some("kb-system"));
    assert_eq!(data["endpoint"], "https://s3.eu-west-1.amazonaws.com");
    let sc = o.storage_class.as_ref().unwrap();
    assert_eq!(sc.metadata.name.as_deref(), Some("sc-s3-repo-x2b4z"));
    assert_eq!(sc.reclaim_policy.as_deref(), Some("Delete"));
    assert_eq!(sc.volume_binding_mode.as_deref(), Some("Immediate"));
    assert_eq!(
        sc.parameters.as_ref().unwrap()["csi.storage.k8s.io/node-publish-secret-name"],
        "secret-s3-repo-x2b4z"
    );
    assert!(matches!(o.probe, Some(ProbeRequest::Mount { .. })));
    assert_eq!(
        o.status.generated_storage_class_name.as_deref(),
        Some("sc-s3-repo-x2b4z")
    );
    // Names once allocated are kept (a new suffix does not rename anything).
    let again = reconcile(Input {
        repo: &apply(&r, &o),
        provider: Some(&p),
        secret: s3_secret(),
        probe: None,
        force_check: false,
        now: t(1),
        name_suffix: "zzzzz",
        settings: &s,
    });
    assert_eq!(
        again.status.generated_storage_class_name,
        o.status.generated_storage_class_name
    );
    assert_eq!(
        again.status.tool_config_secret_name,
        o.status.tool_config_secret_name
    );
    no_secret_in(&o);
}

#[test]
fn pvc_template_is_checked_for_mount() {
    let s = Settings {
        mount_supported: true,
        ..local_settings()
    };
    let mut p = provider("pvc");
    let r = repo(
        "pvc-repo",
        "pvc",
        AccessMethod::Mount,
        &[("storageClassName", "fast")],
    );
    let o = run(&r, Some(&p), SecretState::NotReferenced, None, 0, &s);
    assert_cond(
        &o,
        ct::PVC_TEMPLATE_CHECKED,
        TRUE,
        reason::PVC_TEMPLATE_CHECKED,
    );
    let pvc = o.pvc.as_ref().unwrap().spec.as_ref().unwrap();
    assert_eq!(pvc.storage_class_name.as_deref(), Some("fast"));
    p.spec.persistent_volume_claim_template = Some("spec: [unclosed".into());
    let o = run(&r, Some(&p), SecretState::NotReferenced, None, 0, &s);
    assert_cond(
        &o,
        ct::PVC_TEMPLATE_CHECKED,
        FALSE,
        reason::BAD_PVC_TEMPLATE,
    );
    assert_eq!(o.status.phase, Some(BackupRepoPhase::Failed));
}

#[test]
fn mount_is_refused_by_the_local_store() {
    let s = local_settings();
    let p = provider("pvc");
    let r = repo("pvc-repo", "pvc", AccessMethod::Mount, &[]);
    let o = run(&r, Some(&p), SecretState::NotReferenced, None, 0, &s);
    assert_cond(&o, ct::STORAGE_CLASS_CREATED, TRUE, reason::SKIPPED);
    assert_cond(
        &o,
        ct::PRE_CHECK_PASSED,
        FALSE,
        extra_reason::ACCESS_METHOD_NOT_SUPPORTED,
    );
    assert!(cond(&o, ct::PRE_CHECK_PASSED).message.contains("Tool"));
    assert_eq!(o.status.phase, Some(BackupRepoPhase::Failed));
    assert!(o.probe.is_none());
}

#[test]
fn credential_secret_problems() {
    let s = local_settings();
    let p = provider("s3");
    let o = run(
        &s3_repo(),
        Some(&p),
        SecretState::NotFound {
            namespace: "kb-system".into(),
            name: "cred".into(),
        },
        None,
        0,
        &s,
    );
    assert_cond(
        &o,
        ct::PARAMETERS_CHECKED,
        FALSE,
        reason::CREDENTIAL_SECRET_NOT_FOUND,
    );
    assert!(cond(&o, ct::PARAMETERS_CHECKED)
        .message
        .contains("kb-system/cred"));
    assert_eq!(o.status.phase, Some(BackupRepoPhase::Failed));

    let o = run(
        &s3_repo(),
        Some(&p),
        SecretState::Error("data is not UTF-8".into()),
        None,
        0,
        &s,
    );
    assert_cond(&o, ct::PARAMETERS_CHECKED, FALSE, reason::UNKNOWN_ERROR);
}

#[test]
fn invalid_parameters_name_the_parameter_not_the_secret() {
    let s = local_settings();
    let p = provider("s3");
    let mut r = s3_repo();
    r.spec.config.remove("bucket");
    r.spec
        .config
        .insert("geesefsMemoryLimit".into(), "lots".into());
    let o = run(&r, Some(&p), s3_secret(), None, 0, &s);
    assert_cond(
        &o,
        ct::PARAMETERS_CHECKED,
        FALSE,
        extra_reason::INVALID_PARAMETERS,
    );
    let m = &cond(&o, ct::PARAMETERS_CHECKED).message;
    assert!(
        m.contains("bucket") && m.contains("geesefsMemoryLimit"),
        "{m}"
    );
    no_secret_in(&o);

    // A credential value that would corrupt the INI is refused without being shown.
    let mut secret = match s3_secret() {
        SecretState::Found(m) => m,
        _ => unreachable!(),
    };
    secret.insert("secretAccessKey".into(), format!("{SECRET}\n[evil]"));
    let o = run(
        &s3_repo(),
        Some(&p),
        SecretState::Found(secret),
        None,
        0,
        &s,
    );
    assert_cond(
        &o,
        ct::PARAMETERS_CHECKED,
        FALSE,
        extra_reason::INVALID_PARAMETERS,
    );
    no_secret_in(&o);
}

#[test]
fn first_check_then_ready_then_stable() {
    let s = local_settings();
    let p = provider("local");
    let r = local_repo();
    let o = run(&r, Some(&p), SecretState::NotReferenced, None, 0, &s);
    for (t_, st, rs) in [
        (
            ct::STORAGE_PROVIDER_READY,
            TRUE,
            reason::STORAGE_PROVIDER_READY,
        ),
        (ct::PARAMETERS_CHECKED, TRUE, reason::PARAMETERS_CHECKED),
        (ct::STORAGE_CLASS_CREATED, TRUE, reason::SKIPPED),
        (ct::PVC_TEMPLATE_CHECKED, TRUE, reason::SKIPPED),
        (ct::PRE_CHECK_PASSED, UNKNOWN, reason::DIGEST_CHANGED),
    ] {
        assert_cond(&o, t_, st, rs);
    }
    assert_eq!(o.status.phase, Some(BackupRepoPhase::PreChecking));
    assert_eq!(o.annotations[NEED_UPDATE_TOOL_CONFIG_ANNOTATION], "true");
    assert_eq!(o.annotations[BACKUP_REPO_DIGEST_ANNOTATION].len(), 32);
    assert_eq!(
        o.status.backup_pvc_name.as_deref(),
        Some("pvc-my-repo-x2b4z")
    );
    assert_eq!(
        o.status.tool_config_secret_name.as_deref(),
        Some("tool-config-my-repo-x2b4z")
    );
    assert_eq!(o.status.observed_generation, Some(1));
    match &o.probe {
        Some(ProbeRequest::Tool {
            config,
            path_prefix,
            ..
        }) => {
            assert_eq!(config.config.backend.type_name(), "local");
            assert_eq!(path_prefix, "");
        }
        other => panic!("expected a Tool probe, got {other:?}"),
    }

    // The store ran the probe: Ready, with per-operation results and the check time.
    let res = result_for(&o, true, 2);
    let o2 = run(&r, Some(&p), SecretState::NotReferenced, Some(res), 2, &s);
    assert_cond(&o2, ct::PRE_CHECK_PASSED, TRUE, reason::PRE_CHECK_PASSED);
    assert_eq!(o2.status.phase, Some(BackupRepoPhase::Ready));
    assert_eq!(o2.status.checks.len(), 1);
    assert_eq!(o2.status.last_check_time, Some(t(2)));
    assert!(o2
        .events
        .iter()
        .any(|e| !e.warning && e.reason == reason::PRE_CHECK_PASSED));
    assert!(o2.tool_config.is_some());

    // Stored, reconciled again a minute later: nothing to do, nothing changes.
    let stored = apply(&r, &o2);
    let o3 = run(&stored, Some(&p), SecretState::NotReferenced, None, 60, &s);
    assert!(o3.probe.is_none());
    assert!(o3.annotations.is_empty());
    assert!(!o3.status_changed(&stored), "status must be stable");
    assert!(o3.events.is_empty());
    assert_eq!(o3.requeue_after, Some(Duration::from_secs(600 - 58)));
}

#[test]
fn failed_check_reports_and_recovers_by_itself() {
    let s = local_settings();
    let p = provider("local");
    let r = local_repo();
    let o = run(&r, Some(&p), SecretState::NotReferenced, None, 0, &s);
    let o = run(
        &r,
        Some(&p),
        SecretState::NotReferenced,
        Some(result_for(&o, false, 1)),
        1,
        &s,
    );
    assert_cond(&o, ct::PRE_CHECK_PASSED, FALSE, reason::PRE_CHECK_FAILED);
    assert!(cond(&o, ct::PRE_CHECK_PASSED)
        .message
        .contains("write permission"));
    assert_eq!(o.status.phase, Some(BackupRepoPhase::Failed));
    assert!(o
        .events
        .iter()
        .any(|e| e.warning && e.reason == reason::PRE_CHECK_FAILED));
    let failed = apply(&r, &o);

    // Before the retry interval: nothing; after it: a new probe, and a pass makes it Ready.
    let early = run(&failed, Some(&p), SecretState::NotReferenced, None, 30, &s);
    assert!(early.probe.is_none());
    assert_eq!(early.requeue_after, Some(Duration::from_secs(31)));
    let due = run(&failed, Some(&p), SecretState::NotReferenced, None, 61, &s);
    assert!(due.probe.is_some(), "failed repositories are retried");
    assert_eq!(
        due.status.phase,
        Some(BackupRepoPhase::Failed),
        "still Failed while checking"
    );
    let healed = run(
        &failed,
        Some(&p),
        SecretState::NotReferenced,
        Some(result_for(&due, true, 62)),
        62,
        &s,
    );
    assert_eq!(healed.status.phase, Some(BackupRepoPhase::Ready));

    // KubeBlocks' behaviour (no periodic checks) stays available.
    let kb = Settings {
        recheck_interval: None,
        retry_failed_interval: None,
        ..local_settings()
    };
    let o = run(
        &failed,
        Some(&p),
        SecretState::NotReferenced,
        None,
        10_000,
        &kb,
    );
    assert!(o.probe.is_none());
    assert_eq!(o.requeue_after, None);
}

#[test]
fn ready_repositories_are_rechecked_periodically_and_on_demand() {
    let s = local_settings();
    let p = provider("local");
    let r = local_repo();
    let o = run(&r, Some(&p), SecretState::NotReferenced, None, 0, &s);
    let ready = apply(
        &r,
        &run(
            &r,
            Some(&p),
            SecretState::NotReferenced,
            Some(result_for(&o, true, 0)),
            0,
            &s,
        ),
    );
    let o = run(&ready, Some(&p), SecretState::NotReferenced, None, 601, &s);
    assert!(o.probe.is_some());
    assert_eq!(
        o.status.phase,
        Some(BackupRepoPhase::Ready),
        "stays Ready while re-checking"
    );
    let forced = reconcile(Input {
        repo: &ready,
        provider: Some(&p),
        secret: SecretState::NotReferenced,
        probe: None,
        force_check: true,
        now: t(5),
        name_suffix: "x",
        settings: &s,
    });
    assert!(forced.probe.is_some());
}

#[test]
fn digest_changes_with_config_secret_and_provider() {
    let s = local_settings();
    let p = provider("s3");
    let r = s3_repo();
    let o = run(&r, Some(&p), s3_secret(), None, 0, &s);
    let ready = apply(
        &r,
        &run(
            &r,
            Some(&p),
            s3_secret(),
            Some(result_for(&o, true, 0)),
            0,
            &s,
        ),
    );
    assert_eq!(
        ready.status.as_ref().unwrap().phase,
        Some(BackupRepoPhase::Ready)
    );
    let digest = |o: &Output| o.annotations.get(BACKUP_REPO_DIGEST_ANNOTATION).cloned();

    // Same inputs: same digest, no check.
    let same = run(&ready, Some(&p), s3_secret(), None, 1, &s);
    assert_eq!(digest(&same), None);

    // A new credential.
    let mut new_secret = match s3_secret() {
        SecretState::Found(m) => m,
        _ => unreachable!(),
    };
    new_secret.insert("secretAccessKey".into(), "rotated".into());
    let o = run(
        &ready,
        Some(&p),
        SecretState::Found(new_secret),
        None,
        1,
        &s,
    );
    assert!(digest(&o).is_some());
    assert_cond(&o, ct::PRE_CHECK_PASSED, UNKNOWN, reason::DIGEST_CHANGED);
    assert_eq!(o.status.phase, Some(BackupRepoPhase::PreChecking));
    assert!(o.status.checks.is_empty(), "old results are dropped");
    assert!(o.probe.is_some());

    // A config change.
    let mut changed = ready.clone();
    changed
        .spec
        .config
        .insert("region".into(), "us-east-2".into());
    assert!(digest(&run(&changed, Some(&p), s3_secret(), None, 1, &s)).is_some());

    // A provider template change.
    let mut p2 = p.clone();
    p2.spec.datasafed_config_template = Some(format!(
        "{}\n",
        p.spec.datasafed_config_template.clone().unwrap()
    ));
    assert!(digest(&run(&ready, Some(&p2), s3_secret(), None, 1, &s)).is_some());

    // A probe result for an older digest is ignored.
    let stale = ProbeResult {
        digest: "0".repeat(32),
        ..result_for(&o, false, 1)
    };
    let o2 = run(
        &ready,
        Some(&p),
        SecretState::Found(
            [("accessKeyId", "AKIA"), ("secretAccessKey", "rotated")]
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        ),
        Some(stale),
        1,
        &s,
    );
    assert_cond(&o2, ct::PRE_CHECK_PASSED, UNKNOWN, reason::DIGEST_CHANGED);
    no_secret_in(&o2);
}

#[test]
fn tool_config_render_failure_is_a_failed_check() {
    let s = local_settings();
    let mut p = provider("local");
    p.spec.datasafed_config_template = Some("[storage]\ntype = tape\n".into());
    let o = run(
        &local_repo(),
        Some(&p),
        SecretState::NotReferenced,
        None,
        0,
        &s,
    );
    assert_cond(&o, ct::PRE_CHECK_PASSED, FALSE, reason::PRE_CHECK_FAILED);
    assert!(cond(&o, ct::PRE_CHECK_PASSED)
        .message
        .starts_with("failed to render tool config template"));
    assert!(o.probe.is_none());
}

#[test]
fn deleting_is_never_left_and_default_is_mirrored() {
    let s = local_settings();
    let p = provider("local");
    let mut r = local_repo();
    r.metadata
        .annotations
        .get_or_insert_with(BTreeMap::new)
        .insert(IS_DEFAULT_REPO_ANNOTATION.into(), "true".into());
    let o = run(&r, Some(&p), SecretState::NotReferenced, None, 0, &s);
    assert_eq!(o.status.is_default, Some(true));
    let mut deleting = apply(&r, &o);
    deleting.status.as_mut().unwrap().phase = Some(BackupRepoPhase::Deleting);
    let o = run(&deleting, Some(&p), SecretState::NotReferenced, None, 1, &s);
    assert_eq!(o.status.phase, Some(BackupRepoPhase::Deleting));
    assert_eq!(o.requeue_after, None);
}

#[test]
fn transition_time_moves_only_when_status_changes() {
    let s = local_settings();
    let p = provider("local");
    let r = local_repo();
    let o = run(&r, Some(&p), SecretState::NotReferenced, None, 0, &s);
    let first = cond(&o, ct::STORAGE_PROVIDER_READY)
        .last_transition_time
        .clone();
    let r2 = apply(&r, &o);
    let o2 = run(
        &r2,
        Some(&p),
        SecretState::NotReferenced,
        Some(result_for(&o, true, 50)),
        50,
        &s,
    );
    assert_eq!(
        cond(&o2, ct::STORAGE_PROVIDER_READY).last_transition_time,
        first
    );
    assert_eq!(cond(&o2, ct::PRE_CHECK_PASSED).last_transition_time, t(50));
}

fn with_phase(name: &str, default: bool, phase: BackupRepoPhase) -> BackupRepo {
    let mut r = local_repo();
    r.metadata.name = Some(name.into());
    if default {
        r.metadata
            .annotations
            .get_or_insert_with(BTreeMap::new)
            .insert(IS_DEFAULT_REPO_ANNOTATION.into(), "true".into());
    }
    r.status = Some(backuprepo_api::BackupRepoStatus {
        phase: Some(phase),
        ..Default::default()
    });
    r
}

#[test]
fn default_repository_rules() {
    let a = with_phase("a", true, BackupRepoPhase::Ready);
    let b = with_phase("b", false, BackupRepoPhase::Ready);
    let c = with_phase("c", true, BackupRepoPhase::Ready);
    let f = with_phase("f", true, BackupRepoPhase::Failed);

    assert!(
        defaults::check_single_default([&a, &b], "a").is_ok(),
        "re-marking itself"
    );
    let e = defaults::check_single_default([&a, &b], "b").unwrap_err();
    assert!(e.contains("\"a\"") && e.contains("--default=false"), "{e}");

    assert_eq!(defaults::default_repo([&a, &b]).unwrap().name(), "a");
    assert_eq!(
        defaults::default_repo([&a, &c]).unwrap_err(),
        "multiple default BackupRepo found, both a and c are default"
    );
    assert!(defaults::default_repo([&b])
        .unwrap_err()
        .starts_with("no default BackupRepo found"));
    let e = defaults::default_repo([&f, &b]).unwrap_err();
    assert!(e.contains("f is not Ready"), "{e}");
}

#[test]
fn deletion_rules() {
    let r = with_phase("r", false, BackupRepoPhase::Ready);
    let d = deletion::decide(
        &r,
        deletion::Observed {
            backups: 3,
            residual_pvcs: 0,
        },
        &t(0),
    );
    assert!(!d.proceed);
    assert_eq!(d.status.phase, Some(BackupRepoPhase::Deleting));
    let c = d
        .status
        .conditions
        .iter()
        .find(|c| c.type_ == ct::DERIVED_OBJECTS_DELETED)
        .unwrap();
    assert_eq!(
        (c.status.as_str(), c.reason.as_str()),
        (FALSE, reason::HAVE_ASSOCIATED_BACKUPS)
    );
    assert!(c.message.contains("3 backup(s)"));

    let d = deletion::decide(
        &r,
        deletion::Observed {
            backups: 0,
            residual_pvcs: 1,
        },
        &t(0),
    );
    assert!(!d.proceed);
    assert!(d
        .status
        .conditions
        .iter()
        .any(|c| c.reason == reason::HAVE_RESIDUAL_PVCS));

    let d = deletion::decide(&r, deletion::Observed::default(), &t(0));
    assert!(d.proceed);
    assert!(d
        .status
        .conditions
        .iter()
        .any(|c| c.status == TRUE && c.reason == reason::DERIVED_OBJECTS_DELETED));
}

fn annotated(r: &BackupRepo, key: &str) -> BackupRepo {
    let mut r = r.clone();
    r.metadata
        .annotations
        .get_or_insert_with(BTreeMap::new)
        .insert(key.into(), "true".into());
    r
}

/// Ready, then annotated: what one reconcile at `now` gives.
fn ready_then(r: &BackupRepo, key: &str, now: i64) -> (BackupRepo, Output) {
    let s = local_settings();
    let p = provider("local");
    let o = run(r, Some(&p), SecretState::NotReferenced, None, 0, &s);
    let ready = apply(
        r,
        &run(
            r,
            Some(&p),
            SecretState::NotReferenced,
            Some(result_for(&o, true, 0)),
            0,
            &s,
        ),
    );
    let marked = annotated(&ready, key);
    let out = run(&marked, Some(&p), SecretState::NotReferenced, None, now, &s);
    (marked, out)
}

#[test]
fn suspended_repositories_are_not_checked_periodically() {
    let s = local_settings();
    let p = provider("local");
    let (marked, o) = ready_then(&local_repo(), SUSPEND_ANNOTATION, 601);
    assert!(o.probe.is_none(), "due, but suspended");
    assert_eq!(o.requeue_after, None, "no periodic wake-up");
    assert_eq!(o.status.phase, Some(BackupRepoPhase::Ready));
    assert_cond(&o, "Suspended", TRUE, "Suspended");
    // On demand it checks.
    let forced = reconcile(Input {
        repo: &marked,
        provider: Some(&p),
        secret: SecretState::NotReferenced,
        probe: None,
        force_check: true,
        now: t(601),
        name_suffix: "x",
        settings: &s,
    });
    assert!(forced.probe.is_some());
    // The annotation removed: the condition goes, the due check runs.
    let mut resumed = apply(&marked, &o);
    resumed
        .metadata
        .annotations
        .as_mut()
        .unwrap()
        .remove(SUSPEND_ANNOTATION);
    let o = run(
        &resumed,
        Some(&p),
        SecretState::NotReferenced,
        None,
        601,
        &s,
    );
    assert!(o.probe.is_some());
    assert!(!o.status.conditions.iter().any(|c| c.type_ == "Suspended"));
}

#[test]
fn read_only_repositories_are_rechecked_and_hand_out_read_only_configs() {
    let (_, o) = ready_then(&local_repo(), READ_ONLY_ANNOTATION, 5);
    // Turning read-only on changes the digest: a (read-only) check runs at once, and every
    // copy of the tool config is rendered again, read-only.
    assert!(o.probe.is_some(), "re-checked when read-only is turned on");
    assert_eq!(
        o.annotations
            .get(NEED_UPDATE_TOOL_CONFIG_ANNOTATION)
            .map(String::as_str),
        Some("true")
    );
    let cfg = o.tool_config.as_ref().expect("tool config");
    assert!(cfg.config.tuning.read_only);
    assert!(cfg.text().contains("read_only = true"));
    match o.probe.as_ref() {
        Some(ProbeRequest::Tool { config, .. }) => assert!(config.config.tuning.read_only),
        other => panic!("{other:?}"),
    }
    assert_cond(&o, "ReadOnly", TRUE, "ReadOnly");
    assert_ne!(o.status.phase, Some(BackupRepoPhase::Failed));
}

#[test]
fn a_read_only_repository_is_never_the_default() {
    let r = annotated(
        &annotated(&local_repo(), READ_ONLY_ANNOTATION),
        IS_DEFAULT_REPO_ANNOTATION,
    );
    let e = defaults::check_read_only_default(&r).unwrap_err();
    assert!(
        e.contains("cannot be both the default and read-only"),
        "{e}"
    );
    let ro = annotated(&local_repo(), READ_ONLY_ANNOTATION);
    let e = defaults::check_single_default([&ro], ro.name()).unwrap_err();
    assert!(e.contains(READ_ONLY_ANNOTATION), "{e}");
    assert!(defaults::check_read_only_default(&local_repo()).is_ok());
}

fn usage_at(at: i64, partial: bool) -> RepoUsage {
    RepoUsage {
        total_bytes: 10,
        object_count: 2,
        measured_at: t(at),
        by_prefix: BTreeMap::new(),
        partial,
        resume_after: partial.then(|| "ns/obj-1".to_string()),
    }
}

/// The usage a passing check measured lands in status; it is measured again (by a check) when
/// it is `usage_interval` old, a minute after a partial run, and never while suspended.
#[test]
fn usage_is_recorded_and_measured_again_when_old() {
    let s = Settings {
        recheck_interval: None,
        usage_interval: Some(Duration::from_secs(3600)),
        ..local_settings()
    };
    let p = provider("local");
    let r = local_repo();
    let o = run(&r, Some(&p), SecretState::NotReferenced, None, 0, &s);
    let passed = run(
        &r,
        Some(&p),
        SecretState::NotReferenced,
        Some(result_with_usage(&o, true, 0, Some(usage_at(0, false)))),
        0,
        &s,
    );
    assert_eq!(passed.status.usage, Some(usage_at(0, false)));
    assert_eq!(passed.requeue_after, Some(Duration::from_secs(3600)));
    let ready = apply(&r, &passed);
    assert!(
        run(&ready, Some(&p), SecretState::NotReferenced, None, 3599, &s)
            .probe
            .is_none()
    );
    let old = run(&ready, Some(&p), SecretState::NotReferenced, None, 3600, &s);
    assert!(old.probe.is_some(), "an hour-old figure is measured again");
    assert_eq!(
        old.status.usage,
        Some(usage_at(0, false)),
        "kept until then"
    );
    // A failed check keeps the old figure.
    let failed = run(
        &ready,
        Some(&p),
        SecretState::NotReferenced,
        Some(result_with_usage(&old, false, 3600, None)),
        3600,
        &s,
    );
    assert_eq!(failed.status.usage, Some(usage_at(0, false)));

    // Partial: the next run a minute later.
    let mut partial = ready.clone();
    partial.status.as_mut().unwrap().usage = Some(usage_at(100, true));
    let o = run(
        &partial,
        Some(&p),
        SecretState::NotReferenced,
        None,
        130,
        &s,
    );
    assert!(o.probe.is_none());
    assert_eq!(o.requeue_after, Some(Duration::from_secs(30)));
    assert!(run(
        &partial,
        Some(&p),
        SecretState::NotReferenced,
        None,
        160,
        &s
    )
    .probe
    .is_some());
    // Suspended: nothing, however old.
    let suspended = annotated(&partial, SUSPEND_ANNOTATION);
    let o = run(
        &suspended,
        Some(&p),
        SecretState::NotReferenced,
        None,
        99_999,
        &s,
    );
    assert!(o.probe.is_none());
    assert_eq!(o.requeue_after, None);
}

/// Versioning and object lock read by a passing check land in status.capabilities, with
/// conditions that explain them; a later check without them clears the conditions.
#[test]
fn capabilities_are_recorded_and_explained() {
    use backuprepo_api::{ObjectLock, StorageCapabilities};
    let s = local_settings();
    let p = provider("local");
    let r = local_repo();
    let o = run(&r, Some(&p), SecretState::NotReferenced, None, 0, &s);
    let caps = StorageCapabilities {
        versioning: Some("Enabled".into()),
        object_lock: Some(ObjectLock {
            mode: Some("GOVERNANCE".into()),
            days: Some(1),
            years: None,
        }),
    };
    let result = ProbeResult {
        capabilities: Some(caps.clone()),
        ..result_for(&o, true, 0)
    };
    let checked = run(
        &r,
        Some(&p),
        SecretState::NotReferenced,
        Some(result),
        0,
        &s,
    );
    assert_eq!(checked.status.capabilities, Some(caps));
    assert_cond(&checked, "Versioned", TRUE, "BucketVersioningEnabled");
    assert_cond(&checked, "ObjectLocked", TRUE, "ObjectLockEnabled");
    assert!(cond(&checked, "ObjectLocked")
        .message
        .contains("GOVERNANCE mode for 1 days"));
    assert_eq!(checked.status.phase, Some(BackupRepoPhase::Ready));
    // Versioning suspended, lock gone.
    let ready = apply(&r, &checked);
    let o = run(
        &ready,
        Some(&p),
        SecretState::NotReferenced,
        None,
        601,
        &Settings {
            recheck_interval: Some(Duration::from_secs(600)),
            ..s.clone()
        },
    );
    let result = ProbeResult {
        capabilities: Some(StorageCapabilities {
            versioning: Some("Suspended".into()),
            object_lock: None,
        }),
        ..result_for(&o, true, 601)
    };
    let later = run(
        &ready,
        Some(&p),
        SecretState::NotReferenced,
        Some(result),
        601,
        &s,
    );
    assert!(!later
        .status
        .conditions
        .iter()
        .any(|c| c.type_ == "Versioned" || c.type_ == "ObjectLocked"));
}
