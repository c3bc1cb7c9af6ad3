//! `backuprepo.io/replicate-to` on the real API server: the controller (the install's
//! ServiceAccount, its sandboxed worker) keeps a second repository current, records each run
//! in `status.replication`, refuses a read-only or missing destination, still replicates a
//! suspended, read-only source, and the copy reads back through datasafed as a restore job reads it.

use crate::consumers::datasafed;
use crate::harness::{cluster, s3, s3_repo, text, unique_prefix, Cluster, Controller};

fn replication(c: &Cluster, repo: &str) -> serde_json::Value {
    c.get(&["backuprepo", repo])
        .map(|r| r["status"]["replication"].clone())
        .unwrap_or_default()
}

/// The bucket of the test server, as a backup job's datasafed reaches it (base: a
/// repository's path prefix).
struct Bucket {
    dir: tempfile::TempDir,
    config: String,
}

impl Bucket {
    fn new() -> Bucket {
        let (endpoint, bucket, key, secret) = s3();
        Bucket {
            dir: tempfile::tempdir().unwrap(),
            config: format!("[storage]\ntype = s3\nprovider = Minio\nendpoint = {endpoint}\naccess_key_id = {key}\nsecret_access_key = {secret}\nroot = {bucket}\nforce_path_style = true\nchunk_size = 50Mi\n"),
        }
    }

    fn push(&self, base: &str, path: &str, body: &str) {
        let o = datasafed(
            self.dir.path(),
            &self.config,
            base,
            &["push", "-", path],
            body,
        );
        assert!(o.status.success(), "push {path}: {}", text(&o));
    }

    fn pull(&self, base: &str, path: &str) -> String {
        let o = datasafed(
            self.dir.path(),
            &self.config,
            base,
            &["pull", path, "-"],
            "",
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    }
}

/// Wait for `f`; on timeout, fail with the controller's log.
fn wait<T>(ctl: &Controller, secs: u64, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let until = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            std::time::Instant::now() < until,
            "timed out after {secs}s: {what}\n{}",
            ctl.log_text()
        );
        std::thread::sleep(std::time::Duration::from_millis(250));
    }
}

fn clean(c: &Cluster) {
    c.kubectl(
        &[
            "delete",
            "backuprepo",
            "rep-src",
            "rep-dst",
            "--ignore-not-found",
            "--timeout=60s",
        ],
        None,
    );
}

#[test]
fn the_controller_keeps_a_verified_copy_in_another_repository() {
    let Some(c) = cluster("the_controller_keeps_a_verified_copy_in_another_repository") else {
        return;
    };
    let ctl = Controller::start(&c, "replicate-0", &[]);
    clean(&c);
    let (src, dst) = (unique_prefix("rep-src"), unique_prefix("rep-dst"));
    s3_repo(&c, "rep-dst", &dst, &[]);
    s3_repo(&c, "rep-src", &src, &[]);
    let b = Bucket::new();
    c.wait_phase("rep-dst", "Ready", 90);
    c.wait_phase("rep-src", "Ready", 90);
    b.push(&src, "ns1/full.sql", "select 1;\n");
    b.push(&src, "ns1/incr.sql", "select 2;\n");
    c.kubectl_ok(
        &[
            "annotate",
            "backuprepo",
            "rep-src",
            "backuprepo.io/replicate-to=rep-dst,every=2s",
        ],
        None,
    );
    let r = wait(&ctl, 90, "the first replication run", || {
        let r = replication(&c, "rep-src");
        (r["copiedObjects"].as_u64()? >= 2 && r["lastError"].is_null()).then_some(r)
    });
    assert_eq!(r["destination"], "rep-dst");
    assert_eq!(r["objectsBehind"], 0, "{r}");
    assert!(r["lastSuccessTime"].is_string(), "{r}");
    assert_eq!(b.pull(&dst, "ns1/incr.sql"), "select 2;\n");

    // A read-only destination is refused; the status says so.
    c.kubectl_ok(
        &[
            "annotate",
            "backuprepo",
            "rep-dst",
            "backuprepo.io/read-only=true",
        ],
        None,
    );
    wait(
        &ctl,
        60,
        "a refusal naming the read-only destination",
        || {
            let r = replication(&c, "rep-src");
            r["lastError"].as_str()?.contains("read-only").then_some(())
        },
    );

    // A suspended, read-only source still replicates what is new.
    b.push(&src, "ns2/later.sql", "select 3;\n");
    c.kubectl_ok(
        &[
            "annotate",
            "backuprepo",
            "rep-src",
            "backuprepo.io/read-only=true",
            "backuprepo.io/suspend=true",
        ],
        None,
    );
    c.kubectl_ok(
        &[
            "annotate",
            "backuprepo",
            "rep-dst",
            "backuprepo.io/read-only-",
        ],
        None,
    );
    wait(&ctl, 90, "the run after the refusal", || {
        let r = replication(&c, "rep-src");
        (r["lastError"].is_null() && r["objectsBehind"] == 0).then_some(())
    });
    assert_eq!(b.pull(&dst, "ns2/later.sql"), "select 3;\n");

    // A destination that does not exist.
    c.kubectl_ok(
        &[
            "annotate",
            "--overwrite",
            "backuprepo",
            "rep-src",
            "backuprepo.io/replicate-to=nowhere",
        ],
        None,
    );
    wait(&ctl, 60, "a refusal naming the missing destination", || {
        let r = replication(&c, "rep-src");
        r["lastError"]
            .as_str()?
            .contains("\"nowhere\" is not found")
            .then_some(())
    });
    let d = c.backuprepo(&["describe", "rep-src"], None);
    assert!(
        String::from_utf8_lossy(&d.stdout).contains("Replication:"),
        "{}",
        text(&d)
    );
    ctl.assert_no_forbidden();
    clean(&c);
}
