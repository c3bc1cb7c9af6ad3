//! Tool access on the real API server: a KubeBlocks Backup in a consumer namespace gets its
//! tool-config Secret, whose config pushes and pulls with the `datasafed` face; the finalizer
//! holds while the Backup references the repository; and once it is gone, the real garbage
//! collector removes what the repository owned.

use std::path::Path;
use std::process::Command;

use serde_json::Value;

use crate::harness::{backuprepo_bin, cluster, s3_repo, text, Cluster, Controller};

/// A KubeBlocks Backup in `ns` that waits for repository `repo`'s preparation.
pub fn backup(c: &Cluster, ns: &str, name: &str, repo: &str) {
    c.namespace(ns);
    c.kubectl_ok(
        &["apply", "-f", "-"],
        Some(&format!(
            "apiVersion: dataprotection.kubeblocks.io/v1alpha1\nkind: Backup\nmetadata:\n  name: {name}\n  namespace: {ns}\n  labels:\n    dataprotection.kubeblocks.io/backup-repo-name: {repo}\n    dataprotection.kubeblocks.io/wait-repo-preparation: \"true\"\nspec:\n  backupPolicyName: p\n  backupMethod: m\n"
        )),
    );
}

/// The tool-config Secret of `repo` in `ns`, once the controller wrote it.
pub fn tool_config(c: &Cluster, ns: &str, repo: &str) -> Value {
    c.wait(60, &format!("the tool-config Secret of {repo} in {ns}"), || {
        let list = c.get(&[
            "secret",
            "-n",
            ns,
            "-l",
            &format!("dataprotection.kubeblocks.io/backup-repo-name={repo},dataprotection.kubeblocks.io/is-tool-config=true"),
        ])?;
        let items = list["items"].as_array()?.clone();
        items
            .into_iter()
            .find(|s| s["data"]["datasafed.conf"].is_string())
    })
}

/// The datasafed config a Secret carries.
pub fn config_text(secret: &Value) -> String {
    let b64 = secret["data"]["datasafed.conf"]
        .as_str()
        .expect("datasafed.conf");
    let out = Command::new("base64")
        .arg("-d")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write;
            child
                .stdin
                .take()
                .expect("stdin")
                .write_all(b64.as_bytes())?;
            child.wait_with_output()
        })
        .expect("base64");
    String::from_utf8(out.stdout).expect("utf8")
}

/// `datasafed VERB ARGS` (the same binary under datasafed's name) with `config`, under `base`.
pub fn datasafed(
    dir: &Path,
    config: &str,
    base: &str,
    args: &[&str],
    stdin: &str,
) -> std::process::Output {
    let link = dir.join("datasafed");
    if !link.exists() {
        std::os::unix::fs::symlink(backuprepo_bin(), &link).expect("symlink");
    }
    let conf = dir.join("datasafed.conf");
    std::fs::write(&conf, config).expect("config");
    let mut cmd = Command::new(&link);
    cmd.arg("-c")
        .arg(&conf)
        .args(args)
        .env("DATASAFED_BACKEND_BASE_PATH", base)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = cmd.spawn().expect("datasafed");
    {
        use std::io::Write;
        let _ = child
            .stdin
            .take()
            .expect("stdin")
            .write_all(stdin.as_bytes());
    }
    child.wait_with_output().expect("datasafed")
}

#[test]
fn a_consumer_namespace_gets_its_tool_config_and_deletion_waits_then_collects() {
    let Some(c) =
        cluster("a_consumer_namespace_gets_its_tool_config_and_deletion_waits_then_collects")
    else {
        return;
    };
    let ctl = Controller::start(&c, "consumers-0", &[]);
    c.wait(20, "the controller's start-up log", || {
        ctl.log_text().contains("serving").then_some(())
    });
    let log = ctl.log_text();
    assert!(
        log.contains("Tool checks run in a sandboxed worker")
            && !log.contains("without a full sandbox"),
        "{log}"
    );
    s3_repo(&c, "consumer-repo", "consumer-repo", &[]);
    let repo = c.wait_phase("consumer-repo", "Ready", 60);
    let uid = repo["metadata"]["uid"].as_str().unwrap().to_string();

    backup(&c, "team-a", "b1", "consumer-repo");
    let secret = tool_config(&c, "team-a", "consumer-repo");
    let owners = secret["metadata"]["ownerReferences"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(
        owners
            .iter()
            .any(|o| o["uid"] == uid.as_str() && o["kind"] == "BackupRepo"),
        "owned by the repository: {owners:?}"
    );
    // The Backup no longer waits.
    c.wait(
        60,
        "the Backup's wait-repo-preparation label is removed",
        || {
            let b = c.get(&["backup", "b1", "-n", "team-a"])?;
            b["metadata"]["labels"]["dataprotection.kubeblocks.io/wait-repo-preparation"]
                .is_null()
                .then_some(())
        },
    );

    // What a backup job does with it: push, then pull the same bytes.
    let dir = tempfile::tempdir().unwrap();
    let conf = config_text(&secret);
    // KubeBlocks' layout, `<pathPrefix>/<namespace>/...`: under the default install the
    // namespace's key is scoped to it.
    let base = "consumer-repo/team-a/b1";
    let o = datasafed(
        dir.path(),
        &conf,
        base,
        &["push", "-", "dump.sql"],
        "select 1;\n",
    );
    assert!(o.status.success(), "push: {}", text(&o));
    let o = datasafed(dir.path(), &conf, base, &["pull", "dump.sql", "-"], "");
    assert!(o.status.success(), "pull: {}", text(&o));
    assert_eq!(o.stdout, b"select 1;\n");

    // Deletion waits while a Backup references the repository, and says why.
    c.kubectl_ok(
        &["delete", "backuprepo", "consumer-repo", "--wait=false"],
        None,
    );
    let held = c.wait(30, "the repository is Deleting, held by the Backup", || {
        let r = c.get(&["backuprepo", "consumer-repo"])?;
        (r["status"]["phase"] == "Deleting"
            && r["status"]
                .to_string()
                .contains("some backups still refer to this repo (1 backup(s))"))
        .then_some(r)
    });
    assert!(held["metadata"]["deletionTimestamp"].is_string());
    std::thread::sleep(std::time::Duration::from_secs(3));
    assert!(
        c.get(&["backuprepo", "consumer-repo"]).is_some(),
        "still held"
    );

    // When the Backup goes, so does the repository, and the garbage collector of the real
    // controller-manager removes the Secret it owned.
    c.kubectl_ok(&["delete", "backup", "b1", "-n", "team-a"], None);
    c.wait(60, "the repository is deleted", || {
        c.get(&["backuprepo", "consumer-repo"])
            .is_none()
            .then_some(())
    });
    let name = secret["metadata"]["name"].as_str().unwrap().to_string();
    c.wait(
        60,
        "the garbage collector removes the tool-config Secret",
        || {
            c.get(&["secret", &name, "-n", "team-a"])
                .is_none()
                .then_some(())
        },
    );
    // The repository's check ran in the worker, inside its sandbox.
    assert!(!ctl.log_text().contains("without a full sandbox"));
    ctl.assert_no_forbidden();
}
