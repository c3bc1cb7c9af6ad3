//! Scoped keys on the real API server, with SeaweedFS's IAM: each consumer namespace's
//! tool-config Secret holds a key of its own that works under `<pathPrefix>/<namespace>/` only;
//! `rotate-keys` replaces them; a namespace whose last Backup goes loses its key; deleting the
//! repository revokes the rest. The repository's own key never reaches a namespace.

use crate::consumers::{backup, config_text, datasafed, tool_config};
use crate::harness::{cluster, s3, s3_repo, text, unique_prefix, Cluster, Controller};

fn key_id(conf: &str) -> String {
    conf.lines()
        .find_map(|l| l.trim().strip_prefix("access_key_id = "))
        .unwrap_or_default()
        .to_string()
}

fn records(c: &Cluster) -> Vec<serde_json::Value> {
    c.get(&["backuprepo", "scoped-repo"])
        .and_then(|r| r["status"]["scopedCredentials"].as_array().cloned())
        .unwrap_or_default()
}

#[test]
fn scoped_keys_per_namespace_on_the_real_api_server() {
    let Some(c) = cluster("scoped_keys_per_namespace_on_the_real_api_server") else {
        return;
    };
    let ctl = Controller::start(&c, "scoped-0", &[]);
    // What an earlier run on this cluster may have left.
    c.sh(
        "kubectl delete backup -n sc-a b1 --ignore-not-found; kubectl delete backup -n sc-b b2 --ignore-not-found
         kubectl delete backuprepo scoped-repo --ignore-not-found --timeout=60s",
    );
    let (_, _, admin_key, admin_secret) = s3();
    let pp = unique_prefix("scoped");
    s3_repo(
        &c,
        "scoped-repo",
        &pp,
        &[("backuprepo.io/scoped-credentials", "true")],
    );
    c.wait_phase("scoped-repo", "Ready", 60);
    backup(&c, "sc-a", "b1", "scoped-repo");
    backup(&c, "sc-b", "b2", "scoped-repo");
    let conf_a = config_text(&tool_config(&c, "sc-a", "scoped-repo"));
    let conf_b = config_text(&tool_config(&c, "sc-b", "scoped-repo"));
    for conf in [&conf_a, &conf_b] {
        assert!(
            !conf.contains(&admin_secret),
            "the repository's secret in a namespace"
        );
        assert_ne!(
            key_id(conf),
            admin_key,
            "the repository's key in a namespace"
        );
    }
    assert_ne!(key_id(&conf_a), key_id(&conf_b));
    let recs = records(&c);
    assert_eq!(recs.len(), 2, "{recs:?}");
    let status = c.get(&["backuprepo", "scoped-repo"]).unwrap()["status"].to_string();
    assert!(!status.contains(&admin_secret), "a secret in status");

    // Each key under its own prefix only.
    let dir = tempfile::tempdir().unwrap();
    let (a_dir, b_dir) = (dir.path().join("a"), dir.path().join("b"));
    std::fs::create_dir_all(&a_dir).unwrap();
    std::fs::create_dir_all(&b_dir).unwrap();
    let base_a = format!("{pp}/sc-a");
    let base_b = format!("{pp}/sc-b");
    let o = datasafed(
        &a_dir,
        &conf_a,
        &base_a,
        &["push", "-", "b1/data"],
        "backup of a",
    );
    assert!(o.status.success(), "a in a: {}", text(&o));
    let o = datasafed(
        &b_dir,
        &conf_b,
        &base_b,
        &["push", "-", "b2/data"],
        "backup of b",
    );
    assert!(o.status.success(), "b in b: {}", text(&o));
    let o = datasafed(&a_dir, &conf_a, &base_b, &["pull", "b2/data", "-"], "");
    assert!(!o.status.success(), "a read b's backup: {}", text(&o));
    let o = datasafed(&a_dir, &conf_a, &base_b, &["push", "-", "planted"], "x");
    assert!(!o.status.success(), "a wrote into b: {}", text(&o));

    // rotate-keys: every key is replaced; the new ones work.
    let o = c.backuprepo(&["rotate-keys", "scoped-repo"], None);
    assert!(o.status.success(), "rotate-keys: {}", text(&o));
    let rotated = c.wait(90, "sc-a's key is replaced", || {
        let conf = config_text(&tool_config(&c, "sc-a", "scoped-repo"));
        (key_id(&conf) != key_id(&conf_a)).then_some(conf)
    });
    let o = datasafed(&a_dir, &rotated, &base_a, &["pull", "b1/data", "-"], "");
    assert!(o.status.success(), "the new key: {}", text(&o));
    assert_eq!(o.stdout, b"backup of a");

    // sc-b's last Backup goes: the controller sees the deletion and revokes its key at once
    // (not at the next periodic pass).
    c.kubectl_ok(&["delete", "backup", "b2", "-n", "sc-b"], None);
    c.wait(20, "sc-b's key is revoked", || {
        (records(&c).len() == 1).then_some(())
    });
    c.wait(60, "sc-b's old key stops working", || {
        let o = datasafed(&b_dir, &conf_b, &base_b, &["pull", "b2/data", "-"], "");
        (!o.status.success()).then_some(())
    });

    // Deleting the repository (after its last Backup) revokes the rest.
    c.kubectl_ok(&["delete", "backup", "b1", "-n", "sc-a"], None);
    c.kubectl_ok(
        &["delete", "backuprepo", "scoped-repo", "--timeout=90s"],
        None,
    );
    c.wait(60, "sc-a's key stops working", || {
        let o = datasafed(&a_dir, &rotated, &base_a, &["pull", "b1/data", "-"], "");
        (!o.status.success()).then_some(())
    });
    assert!(!ctl.log_text().contains(&admin_secret));
    ctl.assert_no_forbidden();
}
