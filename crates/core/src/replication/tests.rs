use super::*;

fn at(secs: i64) -> Time {
    Time(backuprepo_api::k8s_openapi::jiff::Timestamp::from_second(secs).unwrap())
}

fn repo(name: &str, phase: &str, annotations: &[(&str, &str)]) -> BackupRepo {
    let a: serde_json::Map<String, serde_json::Value> = annotations
        .iter()
        .map(|(k, v)| (k.to_string(), serde_json::Value::from(*v)))
        .collect();
    serde_json::from_value(serde_json::json!({
        "apiVersion": "dataprotection.kubeblocks.io/v1alpha1",
        "kind": "BackupRepo",
        "metadata": {"name": name, "annotations": a},
        "spec": {"storageProviderRef": "s3", "pvReclaimPolicy": "Retain"},
        "status": {"phase": phase},
    }))
    .unwrap()
}

#[test]
fn the_annotation_parses_with_a_default_interval() {
    assert_eq!(
        parse("offsite").unwrap(),
        ReplicateTo {
            to: "offsite".into(),
            every: DEFAULT_EVERY
        }
    );
    assert_eq!(
        parse("offsite, every=6h").unwrap().every.as_secs(),
        6 * 3600
    );
    for bad in ["", ",every=1h", "offsite,every=6", "offsite,often=1h"] {
        assert!(parse(bad).unwrap_err().contains("every="), "{bad}");
    }
}

#[test]
fn runs_are_due_every_interval_and_refused_where_they_cannot_write() {
    let now = at(1_000_000);
    let dst = repo("far", "Ready", &[]);
    let src = repo(
        "near",
        "Ready",
        &[(REPLICATE_TO_ANNOTATION, "far,every=1h")],
    );
    assert_eq!(decide(&repo("x", "Ready", &[]), Some(&dst), &now), None);
    assert!(matches!(decide(&src, Some(&dst), &now), Some(Decision::Due(w)) if w.to == "far"));

    // A run 10 minutes ago: the next in 50; after a failed one, a minute after it.
    let mut ran = src.clone();
    let done = |error: Option<&str>| {
        record(
            None,
            "far",
            at(1_000_000 - 600),
            &ReplicationRun {
                planned_objects: 3,
                planned_bytes: 30,
                copied_objects: 1,
                copied_bytes: 10,
                error: error.map(str::to_string),
            },
        )
    };
    ran.status.as_mut().unwrap().replication = Some(done(None));
    assert_eq!(
        decide(&ran, Some(&dst), &now),
        Some(Decision::Wait(Duration::from_secs(3000)))
    );
    ran.status.as_mut().unwrap().replication = Some(done(Some("boom")));
    assert!(matches!(
        decide(&ran, Some(&dst), &now),
        Some(Decision::Due(_))
    ));

    // A suspended or read-only source still replicates.
    let ro_src = repo(
        "near",
        "Ready",
        &[
            (REPLICATE_TO_ANNOTATION, "far"),
            ("backuprepo.io/read-only", "true"),
            ("backuprepo.io/suspend", "true"),
        ],
    );
    assert!(matches!(
        decide(&ro_src, Some(&dst), &now),
        Some(Decision::Due(_))
    ));

    let why = |d: Option<Decision>| match d {
        Some(Decision::Refused { why, .. }) => why,
        other => panic!("{other:?}"),
    };
    assert!(why(decide(&src, None, &now)).contains("not found"));
    assert_eq!(destination(&src).as_deref(), Some("far"));
    assert!(matches!(
        decide(&src, None, &now),
        Some(Decision::Refused { retry: Some(r), .. }) if r == RETRY
    ));
    let ro = repo("far", "Ready", &[("backuprepo.io/read-only", "true")]);
    assert!(why(decide(&src, Some(&ro), &now)).contains("read-only"));
    assert!(why(decide(&src, Some(&repo("far", "Failed", &[])), &now)).contains("not Ready"));
    let own = repo("near", "Ready", &[(REPLICATE_TO_ANNOTATION, "near")]);
    assert!(why(decide(&own, Some(&own), &now)).contains("itself"));
}

#[test]
fn the_status_keeps_the_last_complete_copy() {
    let ok = record(
        None,
        "far",
        at(100),
        &ReplicationRun {
            planned_objects: 2,
            planned_bytes: 20,
            copied_objects: 2,
            copied_bytes: 20,
            error: None,
        },
    );
    assert_eq!((ok.objects_behind, ok.bytes_behind), (0, 0));
    assert_eq!(ok.last_success_time, Some(at(100)));
    let failed = record(
        Some(&ok),
        "far",
        at(200),
        &ReplicationRun {
            planned_objects: 5,
            planned_bytes: 50,
            copied_objects: 1,
            copied_bytes: 10,
            error: Some("the destination is unreachable".into()),
        },
    );
    assert_eq!((failed.objects_behind, failed.bytes_behind), (4, 40));
    assert_eq!(failed.last_success_time, Some(at(100)));
    let r = refused(Some(&failed), "far", "not Ready");
    assert_eq!((r.objects_behind, r.last_run_time), (4, Some(at(200))));
}
