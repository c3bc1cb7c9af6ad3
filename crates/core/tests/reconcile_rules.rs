//! The pure core's rules over time: deleting, transition times, the default-repository and
//! deletion rules, suspended and read-only repositories, usage and capabilities.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use support::*;

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
        locked: None,
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
