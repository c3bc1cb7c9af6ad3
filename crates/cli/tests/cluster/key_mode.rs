//! The default install on the real API server: its Deployment says
//! `BACKUPREPO_SCOPED_CREDENTIALS=auto`, so a repository without the annotation scopes keys on
//! a storage whose IAM accepts the repository's key (SeaweedFS), and where it cannot (a
//! provider without `scopedCredentials`, or an IAM endpoint that does not answer) the
//! namespace gets the repository's key as in KubeBlocks, with a condition naming why, a
//! warning event for the namespace, and `describe` saying which namespaces hold it.

use serde_json::{json, Value};

use crate::consumers::{backup, config_text, datasafed, tool_config};
use crate::harness::{cluster, s3, s3_repo_of, text, unique_prefix, Cluster, Controller};

fn key_id(conf: &str) -> String {
    conf.lines()
        .find_map(|l| l.trim().strip_prefix("access_key_id = "))
        .unwrap_or_default()
        .to_string()
}

/// The repository's `ScopedCredentials` condition (reason, message), once it is `status`
/// and its message holds `needle`.
fn condition(c: &Cluster, repo: &str, status: &str, needle: &str) -> (String, String) {
    c.wait(
        90,
        &format!("{repo}'s ScopedCredentials condition ({needle})"),
        || {
            let r = c.get(&["backuprepo", repo])?;
            let cond = r["status"]["conditions"]
                .as_array()?
                .iter()
                .find(|k| k["type"] == "ScopedCredentials")?
                .clone();
            let message = cond["message"].as_str()?.to_string();
            (cond["status"] == status && message.contains(needle)).then(|| {
                (
                    cond["reason"].as_str().unwrap_or_default().to_string(),
                    message,
                )
            })
        },
    )
}

/// A copy of the built-in `minio` provider named `name`, its `scopedCredentials` replaced.
fn minio_like(c: &Cluster, name: &str, scoped: Value) {
    let minio = c
        .get(&["storageprovider", "minio"])
        .expect("the minio provider");
    let mut spec = minio["spec"].clone();
    match scoped {
        Value::Null => {
            spec.as_object_mut().unwrap().remove("scopedCredentials");
        }
        v => spec["scopedCredentials"] = v,
    }
    let p = json!({
        "apiVersion": "dataprotection.kubeblocks.io/v1alpha1",
        "kind": "StorageProvider",
        "metadata": {"name": name},
        "spec": spec,
    });
    c.kubectl_ok(&["apply", "-f", "-"], Some(&p.to_string()));
}

#[test]
fn the_default_install_scopes_keys_where_iam_works_and_shares_them_with_a_warning_where_not() {
    let Some(c) = cluster(
        "the_default_install_scopes_keys_where_iam_works_and_shares_them_with_a_warning_where_not",
    ) else {
        return;
    };
    let ctl = Controller::start(&c, "keymode-0", &[]);
    c.sh(
        "for ns in km-a km-b km-c km-d; do kubectl delete backup -n $ns b1 --ignore-not-found; done
         kubectl delete backuprepo km-iam km-noiam km-deadiam km-ro --ignore-not-found --timeout=60s",
    );
    // An IAM endpoint where nothing listens: a port just released.
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead_iam = format!("http://{}", dead.local_addr().unwrap());
    drop(dead);
    minio_like(&c, "minio-noiam", Value::Null);
    minio_like(
        &c,
        "minio-deadiam",
        json!({"api": "aws-iam", "iamEndpoint": dead_iam, "insecure": true}),
    );
    let (_, _, admin_key, admin_secret) = s3();
    let pp = unique_prefix("km");
    for (provider, repo) in [
        ("minio", "km-iam"),
        ("minio-noiam", "km-noiam"),
        ("minio-deadiam", "km-deadiam"),
    ] {
        s3_repo_of(&c, provider, repo, &format!("{pp}-{repo}"), &[]);
    }
    s3_repo_of(
        &c,
        "minio",
        "km-ro",
        &format!("{pp}-km-ro"),
        &[("backuprepo.io/read-only", "true")],
    );
    for repo in ["km-iam", "km-noiam", "km-deadiam", "km-ro"] {
        c.wait_phase(repo, "Ready", 90);
    }
    backup(&c, "km-d", "b1", "km-ro");
    backup(&c, "km-a", "b1", "km-iam");
    backup(&c, "km-b", "b1", "km-noiam");
    backup(&c, "km-c", "b1", "km-deadiam");

    // IAM accepts the repository's key: a key of the namespace's own, recorded in status.
    let conf = config_text(&tool_config(&c, "km-a", "km-iam"));
    assert_ne!(key_id(&conf), admin_key, "the repository's key in km-a");
    assert!(
        !conf.contains(&admin_secret),
        "the repository's secret in km-a"
    );
    let (reason, message) = condition(&c, "km-iam", "True", "km-a");
    assert_eq!(reason, "KeysScoped", "{message}");

    // No capability, or no IAM answering: the repository's key, and a condition saying why
    // and where it went.
    for (ns, repo, why) in [
        ("km-b", "km-noiam", "cannot scope keys"),
        (
            "km-c",
            "km-deadiam",
            "IAM API did not accept the repository's key",
        ),
    ] {
        let conf = config_text(&tool_config(&c, ns, repo));
        assert_eq!(
            key_id(&conf),
            admin_key,
            "{repo}: {ns} gets the repository's key"
        );
        let (reason, message) = condition(&c, repo, "False", ns);
        assert_eq!(reason, "RepositoryKeyShared", "{message}");
        assert!(message.contains(why), "{repo}: {message}");
        assert!(
            !message.contains(&admin_secret),
            "a secret in the condition"
        );
        // The namespace's first hand-out is a warning event on the repository.
        c.wait(30, &format!("the warning event for {ns}"), || {
            let list = c.get(&[
                "events",
                "-A",
                "--field-selector",
                "reason=RepositoryKeyShared",
            ])?;
            list["items"]
                .as_array()?
                .iter()
                .find(|e| {
                    e["type"] == "Warning"
                        && e["involvedObject"]["name"] == repo
                        && e["message"]
                            .as_str()
                            .is_some_and(|n| n.contains(&format!("namespace {ns} now holds")))
                })
                .cloned()
        });
        let o = c.backuprepo(&["describe", repo], None);
        assert!(o.status.success(), "describe: {}", text(&o));
        let out = String::from_utf8_lossy(&o.stdout);
        assert!(
            out.contains("RepositoryKeyShared") && out.contains(ns),
            "{out}"
        );
    }
    // A read-only repository's scoped key has the read-only policy: with `read_only = true`
    // taken out of its config, the storage itself refuses the write.
    let ro_dir = tempfile::tempdir().unwrap();
    let ro = config_text(&tool_config(&c, "km-d", "km-ro"));
    assert_ne!(
        key_id(&ro),
        admin_key,
        "km-ro: the repository's key in km-d"
    );
    assert!(ro.contains("read_only = true"), "{ro}");
    let writable: String = ro
        .lines()
        .filter(|l| !l.starts_with("read_only"))
        .map(|l| format!("{l}\n"))
        .collect();
    let o = datasafed(
        ro_dir.path(),
        &writable,
        &format!("{pp}-km-ro/km-d"),
        &["push", "-", "x"],
        "x",
    );
    assert!(
        !o.status.success(),
        "a read-only repository's key wrote: {}",
        text(&o)
    );

    let iam = c.backuprepo(&["describe", "km-iam"], None);
    let out = String::from_utf8_lossy(&iam.stdout);
    assert!(
        out.contains("Scoped Keys:") && out.contains("km-a"),
        "{out}"
    );

    // Switched to Mount, the repository stops handing out keys: km-a's is revoked on the
    // storage and its Secret withdrawn (the repository's config does not go back to it).
    let dir = tempfile::tempdir().unwrap();
    let base = format!("{pp}-km-iam/km-a");
    let o = datasafed(dir.path(), &conf, &base, &["push", "-", "b1/x"], "x");
    assert!(o.status.success(), "km-a's key works first: {}", text(&o));
    c.kubectl_ok(
        &[
            "patch",
            "backuprepo",
            "km-iam",
            "--type=merge",
            "-p",
            r#"{"spec":{"accessMethod":"Mount"}}"#,
        ],
        None,
    );
    c.wait(
        60,
        "km-a's key is revoked after the switch to Mount",
        || {
            let r = c.get(&["backuprepo", "km-iam"])?;
            let none = r["status"]["scopedCredentials"]
                .as_array()
                .is_none_or(|a| a.is_empty());
            none.then_some(())
        },
    );
    c.wait(60, "km-a's old key stops working", || {
        let o = datasafed(dir.path(), &conf, &base, &["pull", "b1/x", "-"], "");
        (!o.status.success()).then_some(())
    });
    // Withdrawn: gone (the garbage collector) or emptied, never refilled.
    let secret = c.get(&[
        "secret",
        "-n",
        "km-a",
        "-l",
        "dataprotection.kubeblocks.io/backup-repo-name=km-iam",
    ]);
    assert!(
        secret.is_none_or(|s| !s.to_string().contains("datasafed.conf")),
        "the repository's key went to km-a after the switch"
    );

    c.sh(
        "for ns in km-a km-b km-c km-d; do kubectl delete backup -n $ns b1 --ignore-not-found; done
         kubectl delete backuprepo km-iam km-noiam km-deadiam km-ro --ignore-not-found --timeout=90s
         kubectl delete storageprovider minio-noiam minio-deadiam --ignore-not-found",
    );
    ctl.assert_no_forbidden();
}
