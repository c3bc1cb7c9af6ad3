//! `backuprepo.io/retention` on the real API server: on SeaweedFS's object-lock bucket the
//! controller applies it once its check has shown object lock, the tool-config Secret a backup
//! namespace receives carries it, and what a backup job's datasafed pushes with that Secret is
//! locked (its `rm` refuses and names the date). On a bucket without object lock the
//! repository is Failed and says why.

use crate::consumers::{backup, config_text, datasafed, tool_config};
use crate::harness::{cluster, s3_repo_in, text, unique_prefix, Cluster, Controller};

fn condition(c: &Cluster, repo: &str) -> Option<(String, String, String)> {
    let r = c.get(&["backuprepo", repo])?;
    let k = r["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|k| k["type"] == "Retention")?
        .clone();
    Some((
        k["status"].as_str()?.to_string(),
        k["reason"].as_str()?.to_string(),
        k["message"].as_str().unwrap_or_default().to_string(),
    ))
}

/// Remove what this test makes (the Backup first: it holds the repository's deletion).
fn clean(c: &Cluster) {
    c.kubectl(
        &[
            "delete",
            "backup",
            "b1",
            "-n",
            "team-r",
            "--ignore-not-found",
        ],
        None,
    );
    c.kubectl(
        &[
            "delete",
            "backuprepo",
            "vault",
            "plain",
            "--ignore-not-found",
            "--timeout=60s",
        ],
        None,
    );
}

#[test]
fn retention_reaches_backup_jobs_and_is_refused_without_object_lock() {
    let Some(c) = cluster("retention_reaches_backup_jobs_and_is_refused_without_object_lock")
    else {
        return;
    };
    let Ok(locked) = std::env::var("BR_S3_LOCKED_BUCKET") else {
        panic!("BR_S3_LOCKED_BUCKET is not set (scripts/test-servers.sh makes it)");
    };
    let _ctl = Controller::start(&c, "retention-0", &[]);
    // What an earlier run left.
    clean(&c);
    let prefix = unique_prefix("vault");
    let ann = [("backuprepo.io/retention", "2d")];
    s3_repo_in(&c, "minio", "vault", &locked, &prefix, &ann);
    c.wait_phase("vault", "Ready", 90);
    let (st, reason, message) = c.wait(60, "condition Retention", || condition(&c, "vault"));
    assert_eq!(
        (st.as_str(), reason.as_str()),
        ("True", "RetentionApplied"),
        "{message}"
    );

    // The namespace's config carries it, and what a job pushes with it is locked.
    backup(&c, "team-r", "b1", "vault");
    let conf = config_text(&tool_config(&c, "team-r", "vault"));
    assert!(
        conf.contains("object_lock_retention = 2d")
            && conf.contains("object_lock_mode = GOVERNANCE"),
        "the namespace's config has no retention"
    );
    let dir = tempfile::tempdir().unwrap();
    let base = format!("{prefix}/team-r/b1");
    let o = datasafed(
        dir.path(),
        &conf,
        &base,
        &["push", "-", "dump.sql"],
        "select 1;\n",
    );
    assert!(o.status.success(), "push: {}", text(&o));
    let o = datasafed(dir.path(), &conf, &base, &["rm", "dump.sql"], "");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && err.contains("GOVERNANCE retention until"),
        "{err}"
    );

    // A bucket without object lock: refused, Failed.
    s3_repo_in(
        &c,
        "minio",
        "plain",
        &crate::harness::s3().1,
        &unique_prefix("plain"),
        &ann,
    );
    let (st, reason, message) = c.wait(90, "the refusal", || {
        condition(&c, "plain").filter(|(s, _, _)| s == "False")
    });
    assert_eq!(
        (st.as_str(), reason.as_str()),
        ("False", "ObjectLockNotEnabled"),
        "{message}"
    );
    c.wait_phase("plain", "Failed", 30);
    clean(&c);
}
