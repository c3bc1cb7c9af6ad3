#![allow(clippy::unwrap_used)]

use super::*;

fn t(s: i64) -> Time {
    Time(k8s_openapi::jiff::Timestamp::from_second(s).unwrap())
}

fn set(v: &[&str]) -> BTreeSet<String> {
    v.iter().map(|s| s.to_string()).collect()
}

fn rec(ns: &str, created: i64) -> ScopedCredential {
    ScopedCredential {
        namespace: ns.into(),
        user: format!("u-{ns}"),
        access_key_id: format!("K-{ns}"),
        created_at: t(created),
        retiring: vec![],
        read_paths: vec![],
    }
}

fn on() -> Observed {
    Observed {
        enabled: true,
        ready: true,
        ..Observed::default()
    }
}

#[test]
fn waiting_namespaces_get_keys_and_legacy_secrets_are_replaced_or_withdrawn() {
    let seen = Observed {
        waiting: set(&["a"]),
        present: set(&["a", "b"]),
        holding: set(&["b", "c"]),
        ..on()
    };
    let steps = plan(&[], &seen, &t(0), &Policy::default());
    assert_eq!(
        steps,
        [
            Step::Issue {
                namespace: "a".into(),
                read: vec![]
            },
            // b holds the repository's own key from before and has consumers: replaced.
            Step::Issue {
                namespace: "b".into(),
                read: vec![]
            },
            // c holds it and nothing uses it: withdrawn.
            Step::Withdraw {
                namespace: "c".into()
            },
        ]
    );
    // Off: nothing is made, legacy Secrets are the normal case.
    let off = Observed {
        enabled: false,
        ..seen.clone()
    };
    assert!(plan(&[], &off, &t(0), &Policy::default()).is_empty());
    // Not Ready: no key is made, but the copies of the repository's key go at once.
    let failing = Observed {
        ready: false,
        ..seen
    };
    assert_eq!(
        plan(&[], &failing, &t(0), &Policy::default()),
        [
            Step::Strip {
                namespace: "b".into()
            },
            Step::Withdraw {
                namespace: "c".into()
            },
        ]
    );
}

#[test]
fn a_rotation_request_covers_the_keys_made_before_it() {
    let records = [rec("a", 10), rec("b", 20)];
    let seen = Observed {
        present: set(&["a", "b"]),
        holding: set(&["a", "b"]),
        rotate_before: Some(t(15)),
        ..on()
    };
    let steps = plan(&records, &seen, &t(30), &Policy::default());
    assert_eq!(
        steps,
        [Step::Rotate {
            namespace: "a".into(),
            why: WHY_REQUESTED
        }]
    );
    assert!(!rotated_since(&records, &t(15)));
    assert!(rotated_since(&records[1..], &t(15)));
    // Not Ready: nothing is replaced, and scoping turned off waits to give the
    // repository's config back; a refused namespace still loses its key.
    let failing = Observed {
        ready: false,
        refused: set(&["b"]),
        ..seen
    };
    assert_eq!(
        plan(&records, &failing, &t(30), &Policy::default()),
        [Step::Revoke {
            namespace: "b".into(),
            why: WHY_NOT_ALLOWED,
            restore_config: false
        }]
    );
    let off = Observed {
        enabled: false,
        refused: set(&[]),
        ..failing
    };
    assert!(plan(&records, &off, &t(30), &Policy::default()).is_empty());
}

#[test]
fn keys_are_revoked_when_the_namespace_is_refused_empty_or_scoping_is_off() {
    let records = [rec("a", 0), rec("b", 0), rec("c", 0)];
    let seen = Observed {
        present: set(&["a", "b"]),
        holding: set(&["a", "b", "c"]),
        refused: set(&["b"]),
        ..on()
    };
    let steps = plan(&records, &seen, &t(10), &Policy::default());
    assert_eq!(
        steps,
        [
            Step::Revoke {
                namespace: "b".into(),
                why: WHY_NOT_ALLOWED,
                restore_config: false
            },
            Step::Revoke {
                namespace: "c".into(),
                why: WHY_NO_CONSUMER,
                restore_config: false
            },
        ]
    );
    let off = Observed {
        enabled: false,
        ..seen
    };
    let steps = plan(&records, &off, &t(10), &Policy::default());
    assert_eq!(steps.len(), 3);
    assert!(steps
        .iter()
        .all(|s| matches!(s, Step::Revoke { why: WHY_OFF, .. })));
    // Off: the allowed namespaces get the repository's config back, the refused one not.
    let restored: Vec<&str> = steps
        .iter()
        .filter(|s| {
            matches!(
                s,
                Step::Revoke {
                    restore_config: true,
                    ..
                }
            )
        })
        .map(Step::namespace)
        .collect();
    assert_eq!(restored, ["a", "c"]);
}

#[test]
fn rotation_by_age_request_config_and_lost_secret_then_retirement() {
    let p = Policy {
        rotate_every: Duration::from_secs(100),
        grace: Duration::from_secs(30),
        ..Policy::default()
    };
    let mut records = vec![rec("a", 0)];
    let seen = Observed {
        present: set(&["a"]),
        holding: set(&["a"]),
        ..on()
    };
    assert!(plan(&records, &seen, &t(99), &p).is_empty());
    assert_eq!(wake(&records, &t(99), &p), Some(Duration::from_secs(1)));
    let rotate = |why| {
        vec![Step::Rotate {
            namespace: "a".into(),
            why,
        }]
    };
    assert_eq!(plan(&records, &seen, &t(100), &p), rotate(WHY_AGE));
    for (change, why) in [
        (
            Observed {
                rotate_before: Some(t(6)),
                ..seen.clone()
            },
            WHY_REQUESTED,
        ),
        (
            Observed {
                stale: set(&["a"]),
                ..seen.clone()
            },
            WHY_NEW_CONFIG,
        ),
        (
            Observed {
                holding: set(&[]),
                ..seen.clone()
            },
            WHY_SECRET_GONE,
        ),
    ] {
        assert_eq!(plan(&records, &change, &t(5), &p), rotate(why));
    }
    rotated(&mut records, "a", "K2", &t(100), p.grace);
    assert_eq!(records[0].access_key_id, "K2");
    assert_eq!(records[0].retiring[0].access_key_id, "K-a");
    assert_eq!(records[0].retiring[0].until, t(130));
    assert!(plan(&records, &seen, &t(129), &p).is_empty());
    assert_eq!(wake(&records, &t(110), &p), Some(Duration::from_secs(20)));
    let retire = plan(&records, &seen, &t(130), &p);
    assert_eq!(
        retire,
        [Step::Retire {
            namespace: "a".into(),
            access_key_id: "K-a".into()
        }]
    );
    retired(&mut records, "a", "K-a");
    assert!(records[0].retiring.is_empty());
}

#[test]
fn restores_of_other_namespaces_widen_and_narrow_the_scope() {
    let mut records = vec![rec("a", 0)];
    let mut seen = Observed {
        present: set(&["a"]),
        holding: set(&["a"]),
        ..on()
    };
    seen.reads
        .insert("a".into(), set(&["pp/b/c1/full/backup-1"]));
    let widen = plan(&records, &seen, &t(1), &Policy::default());
    assert_eq!(
        widen,
        [Step::Rescope {
            namespace: "a".into(),
            read: vec!["pp/b/c1/full/backup-1".into()]
        }]
    );
    rescoped(&mut records, "a", vec!["pp/b/c1/full/backup-1".into()]);
    assert!(plan(&records, &seen, &t(1), &Policy::default()).is_empty());
    seen.reads.clear();
    assert_eq!(
        plan(&records, &seen, &t(1), &Policy::default()),
        [Step::Rescope {
            namespace: "a".into(),
            read: vec![]
        }]
    );
    // A namespace whose first consumer is a Restore gets the read path with its key.
    seen.reads.insert("n".into(), set(&["pp/b/x"]));
    seen.waiting = set(&["n"]);
    assert!(
        plan(&[], &seen, &t(1), &Policy::default()).contains(&Step::Issue {
            namespace: "n".into(),
            read: vec!["pp/b/x".into()]
        })
    );
}

#[test]
fn read_paths_stay_inside_the_backups_namespace() {
    assert_eq!(
        read_path("/pp", "b", "/pp/b/c1-uid/mysql/backup-1").as_deref(),
        Some("pp/b/c1-uid/mysql/backup-1")
    );
    assert_eq!(read_path("", "b", "/b/x").as_deref(), Some("b/x"));
    for bad in [
        "/pp/b",
        "/pp/b/",
        "/pp/c/x",
        "/pp/b/../c/x",
        "/pp/bb/x",
        "/x",
        "",
    ] {
        assert_eq!(read_path("pp", "b", bad), None, "{bad}");
    }
    assert_eq!(own_path("/pp/", "ns"), "pp/ns");
    assert_eq!(own_path("", "ns"), "ns");
}

#[test]
fn user_names_are_stable_unique_and_short() {
    let a = user_name("repo", "uid-1", "ns");
    assert_eq!(a, user_name("repo", "uid-1", "ns"));
    assert_ne!(a, user_name("repo", "uid-2", "ns"));
    assert_ne!(a, user_name("repo", "uid-1", "ns2"));
    assert!(a.starts_with("br-repo-ns-"), "{a}");
    let long = user_name(&"r".repeat(253), "u", &"n".repeat(63));
    assert!(long.len() <= 64, "{long}");
}

#[test]
fn the_condition_says_who_waits() {
    assert_eq!(condition(false, &[], &[]), None);
    let (status, reason, msg) =
        condition(true, &[rec("a", 0)], &[("b".into(), "IAM refused".into())]).unwrap();
    assert_eq!((status, reason), ("False", "ScopingFailed"));
    assert!(
        msg.contains("namespace b") && msg.contains("IAM refused"),
        "{msg}"
    );
    let (status, _, msg) = condition(true, &[rec("a", 0)], &[]).unwrap();
    assert_eq!(status, "True");
    assert!(msg.contains(": a"), "{msg}");
}

#[test]
fn a_rotation_stamp_from_the_future_is_clamped_to_now() {
    let now = Time("2023-11-14T22:13:20Z".parse().unwrap());
    let past = rotation_stamp("2023-11-14T22:00:00Z", &now);
    assert_eq!(past.unwrap().0.to_string(), "2023-11-14T22:00:00Z");
    assert_eq!(
        rotation_stamp("2023-11-15T22:00:00Z", &now),
        Err(now.clone())
    );
    assert_eq!(rotation_stamp("yesterday", &now), Err(now.clone()));
}
