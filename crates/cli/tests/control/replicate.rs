//! `backuprepo.io/replicate-to` on the local store: `check --all` (and `--watch`) bring the
//! copy up to date when a run is due, record it in `status.replication`, and refuse a missing
//! or read-only destination; a suspended, read-only source still replicates. SeaweedFS into
//! vsftpd.

use std::process::{Command, Stdio};

use super::home::*;

fn replication(h: &Home, name: &str) -> serde_json::Value {
    h.repo(name)["status"]["replication"].clone()
}

fn push(h: &Home, repo: &str, path: &str, body: &str) {
    let f = h.dir.path().join("r.bin");
    std::fs::write(&f, body).unwrap();
    h.ok(&["push", "--repo", repo, f.to_str().unwrap(), path], None);
}

#[test]
fn check_all_keeps_the_copy_current_and_records_it() {
    let Some(_) = s3() else {
        return;
    };
    let h = Home::new();
    let prefix = format!("replicate-{}", std::process::id());
    h.s3_repo("near", &var("BR_S3_BUCKET").unwrap(), &prefix);
    if !h.ftp_repo("far", &prefix) {
        return;
    }
    for i in 0..3 {
        push(&h, "near", &format!("ns/b{i}"), &format!("backup {i}"));
    }
    h.ok(
        &[
            "annotate",
            "backuprepo",
            "near",
            "backuprepo.io/replicate-to=far,every=1h",
        ],
        None,
    );
    let out = h.ok(&["check", "--all"], None);
    assert!(
        out.contains("backuprepo/near replicated to far: copied 3 object(s)"),
        "{out}"
    );
    let r = replication(&h, "near");
    assert_eq!(r["destination"], "far");
    assert_eq!(
        (r["copiedObjects"].as_u64(), r["objectsBehind"].as_u64()),
        (Some(3), Some(0)),
        "{r}"
    );
    assert!(
        r["lastSuccessTime"].is_string() && r["lastError"].is_null(),
        "{r}"
    );
    let back = h.ok(&["pull", "--repo", "far", "ns/b1", "-"], None);
    assert_eq!(back, "backup 1");
    let d = h.ok(&["describe", "near"], None);
    assert!(
        d.contains("Replication:") && d.contains("Behind:") && d.contains("0 object(s)"),
        "{d}"
    );

    // Not due again for an hour: nothing runs.
    push(&h, "near", "ns/b3", "backup 3");
    let out = h.ok(&["check", "--all"], None);
    assert!(!out.contains("replicated"), "{out}");

    // A read-only destination is refused (recorded, said once); the figures of the last
    // run stay.
    h.ok(
        &[
            "annotate",
            "backuprepo",
            "far",
            "backuprepo.io/read-only=true",
        ],
        None,
    );
    h.ok(
        &[
            "annotate",
            "--overwrite",
            "backuprepo",
            "near",
            "backuprepo.io/replicate-to=far,every=1s",
        ],
        None,
    );
    let out = h.ok(&["check", "--all"], None);
    assert!(
        out.contains("not replicated to far") && out.contains("read-only"),
        "{out}"
    );
    let r = replication(&h, "near");
    assert!(
        r["lastError"].as_str().unwrap().contains("read-only"),
        "{r}"
    );
    assert_eq!(r["copiedObjects"].as_u64(), Some(3));

    // A suspended, read-only source still replicates, from `check --all --watch`.
    h.ok(
        &["annotate", "backuprepo", "far", "backuprepo.io/read-only-"],
        None,
    );
    h.ok(
        &[
            "annotate",
            "backuprepo",
            "near",
            "backuprepo.io/read-only=true",
            "backuprepo.io/suspend=true",
        ],
        None,
    );
    let mut watch = Command::new(env!("CARGO_BIN_EXE_backuprepo"))
        .args(["check", "--all", "--watch", "1"])
        .env("BACKUPREPO_HOME", h.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while replication(&h, "near")["lastError"].is_string() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let _ = watch.kill();
    let out = watch.wait_with_output().unwrap();
    let out = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.contains("backuprepo/near replicated to far: copied 1 object(s)"),
        "{out}"
    );
    assert_eq!(
        h.ok(&["pull", "--repo", "far", "ns/b3", "-"], None),
        "backup 3"
    );

    // A destination that does not exist.
    h.ok(
        &[
            "annotate",
            "--overwrite",
            "backuprepo",
            "near",
            "backuprepo.io/replicate-to=nowhere",
        ],
        None,
    );
    h.ok(&["check", "--all"], None);
    let r = replication(&h, "near");
    assert!(
        r["lastError"]
            .as_str()
            .unwrap()
            .contains("\"nowhere\" is not found"),
        "{r}"
    );
}
