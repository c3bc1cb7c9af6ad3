//! The pure core, case by case: every condition and reason it sets, the phase rule, the digest
//! rule, periodic re-checks and recovery, the default-repository and deletion rules. Secrets
//! never reach the status.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use support::*;

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
