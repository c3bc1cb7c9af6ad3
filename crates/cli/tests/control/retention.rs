//! Immutable backups on SeaweedFS's object-lock bucket: the annotation
//! `backuprepo.io/retention` applies once the check has shown object lock, every push then
//! carries it, `push --retain-until`/`--legal-hold` set one push's own, `rm` names when each
//! object can go, `describe` counts what is locked. On a bucket without object lock, on a local
//! directory, and with a malformed value, the annotation is refused and nothing is written
//! with it.

use super::home::*;

fn push(h: &Home, repo: &str, path: &str, extra: &[&str]) -> std::process::Output {
    let f = h.dir.path().join("obj.bin");
    std::fs::write(&f, format!("object {path}")).unwrap();
    let mut args = vec!["push", "--repo", repo];
    args.extend_from_slice(extra);
    args.extend([f.to_str().unwrap(), path]);
    h.run(&args, None)
}

/// The date `rm` names for `path` (refusing to remove it), and the whole message.
fn refusal(h: &Home, repo: &str, path: &str) -> String {
    h.fails(&["rm", "--repo", repo, path], None)
}

fn days_from_now(date: &str) -> f64 {
    let t = chrono::DateTime::parse_from_rfc3339(date).unwrap();
    (t.timestamp() - chrono::Utc::now().timestamp()) as f64 / 86_400.0
}

fn until_in(msg: &str) -> String {
    let at = msg.find("until ").unwrap_or_else(|| panic!("{msg}")) + 6;
    msg[at..at + 20].to_string()
}

#[test]
fn retention_locks_every_push_and_is_refused_without_object_lock() {
    let Some(_) = s3() else {
        return;
    };
    let h = Home::new();
    let prefix = format!("retention-{}", std::process::id());
    h.s3_repo("vault", &var("BR_S3_LOCKED_BUCKET").unwrap(), &prefix);
    assert_eq!(h.phase("vault"), "Ready");

    // Without our annotation, the bucket's default (GOVERNANCE, 1 day) is what locks.
    assert!(push(&h, "vault", "default.bin", &[]).status.success());
    let msg = refusal(&h, "vault", "default.bin");
    let d = days_from_now(&until_in(&msg));
    assert!((0.9..1.1).contains(&d), "{msg}");

    // The annotation: applied (the check showed object lock), every push carries it.
    h.ok(
        &[
            "annotate",
            "backuprepo",
            "vault",
            "backuprepo.io/retention=3d",
        ],
        None,
    );
    let (st, reason, message) = h.condition("vault", "Retention");
    assert_eq!(
        (st.as_str(), reason.as_str()),
        ("True", "RetentionApplied"),
        "{message}"
    );
    assert!(
        message.contains("GOVERNANCE mode for 3d") && message.contains("1 days"),
        "{message}"
    );
    assert_eq!(h.phase("vault"), "Ready");
    assert!(push(&h, "vault", "db/full.bin", &[]).status.success());
    let msg = refusal(&h, "vault", "db/full.bin");
    assert!(msg.contains("GOVERNANCE retention until"), "{msg}");
    let d = days_from_now(&until_in(&msg));
    assert!((2.9..3.1).contains(&d), "{msg}");
    // A multipart push (20 MB at 8 MiB parts) carries it too.
    let big = h.dir.path().join("big.bin");
    std::fs::write(&big, vec![7u8; 20_000_000]).unwrap();
    h.ok(
        &[
            "push",
            "--repo",
            "vault",
            big.to_str().unwrap(),
            "db/big.bin",
        ],
        None,
    );
    let d = days_from_now(&until_in(&refusal(&h, "vault", "db/big.bin")));
    assert!((2.9..3.1).contains(&d));

    // One push's own: a date in COMPLIANCE mode, a legal hold.
    let out = push(
        &h,
        "vault",
        "db/kept.bin",
        &["--retain-until", "7d", "--lock-mode", "compliance"],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let msg = refusal(&h, "vault", "db/kept.bin");
    assert!(msg.contains("COMPLIANCE retention until"), "{msg}");
    assert!(
        (6.9..7.1).contains(&days_from_now(&until_in(&msg))),
        "{msg}"
    );
    assert!(push(&h, "vault", "db/held.bin", &["--legal-hold"])
        .status
        .success());
    let msg = refusal(&h, "vault", "db/held.bin");
    assert!(msg.contains("under a legal hold"), "{msg}");
    // A recursive rm names the first and the last date, and deletes nothing.
    let msg = h.fails(&["rm", "-r", "--repo", "vault", "db/"], None);
    assert!(
        msg.contains("4 of 4 objects")
            && msg.contains("the first can be removed from")
            && msg.contains("1 under a legal hold"),
        "{msg}"
    );
    let past = push(&h, "vault", "db/x.bin", &["--retain-until", "2020-01-01"]);
    assert!(String::from_utf8_lossy(&past.stderr).contains("is in the past"));

    // describe: the retention that applies, and what the usage scan found locked.
    h.ok(&["check", "vault"], None);
    let d = h.ok(&["describe", "vault"], None);
    assert!(
        d.contains("3d on every object backuprepo writes (RetentionApplied)"),
        "{d}"
    );
    assert!(
        d.contains("Locked Objects:") && d.contains("5 (the first can go from"),
        "{d}"
    );
    assert!(d.contains("1 under a legal hold"), "{d}");

    // A bucket without object lock: refused, Failed, nothing written with it.
    h.s3_repo("plain", &var("BR_S3_BUCKET").unwrap(), &prefix);
    h.ok(
        &[
            "annotate",
            "backuprepo",
            "plain",
            "backuprepo.io/retention=3d,COMPLIANCE",
        ],
        None,
    );
    let (st, reason, message) = h.condition("plain", "Retention");
    assert_eq!(
        (st.as_str(), reason.as_str()),
        ("False", "ObjectLockNotEnabled"),
        "{message}"
    );
    assert!(message.contains("remove the annotation"), "{message}");
    assert_eq!(h.phase("plain"), "Failed");
    assert!(!push(&h, "plain", "a.bin", &[]).status.success());
    // Its objects are not locked: with the annotation gone it is Ready and rm works.
    h.ok(
        &[
            "annotate",
            "backuprepo",
            "plain",
            "backuprepo.io/retention-",
        ],
        None,
    );
    assert_eq!(h.phase("plain"), "Ready");
    assert!(push(&h, "plain", "a.bin", &[]).status.success());
    h.ok(&["rm", "--repo", "plain", "a.bin"], None);
    // --retain-until where there is no object lock is refused before any write.
    let out = push(&h, "plain", "b.bin", &["--retain-until", "1d"]);
    assert!(!out.status.success());
    assert!(h
        .fails(&["stat", "--repo", "plain", "b.bin"], None)
        .contains("not found"));

    // A local directory, and a malformed value.
    h.local_repo("here");
    h.ok(
        &[
            "annotate",
            "backuprepo",
            "here",
            "backuprepo.io/retention=30d",
        ],
        None,
    );
    let (st, reason, message) = h.condition("here", "Retention");
    assert_eq!(
        (st.as_str(), reason.as_str()),
        ("False", "RetentionNotSupported"),
        "{message}"
    );
    h.ok(
        &[
            "annotate",
            "--overwrite",
            "backuprepo",
            "here",
            "backuprepo.io/retention=30",
        ],
        None,
    );
    let (_, reason, message) = h.condition("here", "Retention");
    assert_eq!(reason, "InvalidRetention");
    assert!(message.contains("30d, 720h"), "{message}");
    let out = push(&h, "here", "c.bin", &["--legal-hold"]);
    assert!(!out.status.success());
}
