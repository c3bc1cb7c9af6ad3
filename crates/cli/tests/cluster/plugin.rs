//! `kubectl backuprepo ...` through the real kubectl of the test cluster: the binary linked as
//! `kubectl-backuprepo` on PATH is found by kubectl, works on kubectl's current context (no
//! `--store`), takes `--context`, `--kubeconfig` and a leading `-n` (the namespace of the
//! credential Secret), and a controller run as the install runs it makes the repository Ready.

use crate::harness::{backuprepo_bin, cluster, s3, text, Controller};

#[test]
fn kubectl_backuprepo_is_a_plugin_of_the_real_kubectl() {
    let Some(c) = cluster("kubectl_backuprepo_is_a_plugin_of_the_real_kubectl") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(backuprepo_bin(), dir.path().join("kubectl-backuprepo")).unwrap();
    let path = format!("{}:{}", dir.path().display(), c.bin.display());
    let kubectl = |args: &[&str], stdin: Option<&str>| {
        let mut cmd = std::process::Command::new(c.bin.join("kubectl"));
        cmd.args(args)
            .env("PATH", &path)
            .env("KUBECONFIG", &c.kubeconfig)
            .env_remove("BACKUPREPO_STORE")
            .env("BACKUPREPO_WAIT_TIMEOUT", "60")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let mut child = cmd.spawn().unwrap();
        if let Some(s) = stdin {
            use std::io::Write;
            child.stdin.take().unwrap().write_all(s.as_bytes()).unwrap();
        }
        drop(child.stdin.take());
        child.wait_with_output().unwrap()
    };
    let ok = |args: &[&str], stdin: Option<&str>| {
        let o = kubectl(args, stdin);
        assert!(o.status.success(), "kubectl {args:?}: {}", text(&o));
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    let plugins = ok(&["plugin", "list"], None);
    assert!(plugins.contains("kubectl-backuprepo"), "{plugins}");

    // kubectl's current context, no --store: the cluster's providers (no `local` there).
    let sps = ok(&["backuprepo", "list-storage-provider", "-o", "name"], None);
    assert!(
        sps.contains("storageprovider.dataprotection.kubeblocks.io/minio"),
        "{sps}"
    );
    assert!(
        !sps.contains("/local\n"),
        "the cluster store, not the local one: {sps}"
    );
    let o = ok(
        &[
            "backuprepo",
            "--context",
            "kube-test",
            "get",
            "storageprovider",
            "s3",
            "-o",
            "name",
        ],
        None,
    );
    assert_eq!(o, "storageprovider.dataprotection.kubeblocks.io/s3\n");
    let kc = c.kubeconfig.to_str().unwrap();
    ok(
        &[
            "backuprepo",
            "--kubeconfig",
            kc,
            "get",
            "storageprovider",
            "s3",
            "-o",
            "name",
        ],
        None,
    );
    let bad = kubectl(&["backuprepo", "--context", "nope", "list"], None);
    assert!(!bad.status.success());
    assert!(text(&bad).contains("context \"nope\""), "{}", text(&bad));

    // create with a leading -n: the credential Secret goes to that namespace; the controller
    // (as the install runs it) checks the repository.
    let _ctl = Controller::start(&c, "plugin-0", &[]);
    c.kubectl(
        &[
            "delete",
            "backuprepo",
            "plug-1",
            "--ignore-not-found",
            "--timeout=60s",
        ],
        None,
    );
    let (endpoint, bucket, key, secret) = s3();
    ok(
        &[
            "backuprepo",
            "-n",
            "kb-system",
            "create",
            "plug-1",
            "--provider",
            "minio",
            "--endpoint",
            &endpoint,
            "--bucket",
            &bucket,
            "--force-path-style",
            "--path-prefix",
            "plug-1",
            "--access-key-id",
            &key,
            "--secret-access-key",
            "-",
        ],
        Some(&secret),
    );
    let repo = c.wait_phase("plug-1", "Ready", 60);
    assert_eq!(repo["spec"]["credential"]["namespace"], "kb-system");
    let listed = ok(&["backuprepo", "list"], None);
    assert!(
        listed
            .lines()
            .any(|l| l.starts_with("plug-1") && l.contains("Ready")),
        "{listed}"
    );
    ok(&["backuprepo", "delete", "plug-1", "--yes"], None);
    c.wait(60, "plug-1 is gone", || {
        c.get(&["backuprepo", "plug-1"]).is_none().then_some(())
    });
}
