//! `--store kube`: every command of the one-machine flow against the real API server, with the
//! controller answering `check`; and the controller's watches surviving a restart of
//! kube-apiserver.

use std::path::PathBuf;
use std::process::Command;

use crate::harness::{
    audit_now, cluster, controller_user, s3, s3_repo, text, Controller, ADMISSION_PROBE,
};

fn ok(o: std::process::Output, what: &str) -> String {
    assert!(o.status.success(), "{what}: {}", text(&o));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn every_store_kube_command_on_the_real_api_server() {
    let Some(c) = cluster("every_store_kube_command_on_the_real_api_server") else {
        return;
    };
    let _ctl = Controller::start(&c, "store-0", &[]);
    c.kubectl(
        &[
            "delete",
            "backuprepo",
            "kube-1",
            "kube-2",
            "--ignore-not-found",
            "--timeout=60s",
        ],
        None,
    );
    let (endpoint, bucket, key, secret) = s3();

    // create, as kbcli: the credential goes to a Secret in the install namespace; the secret
    // itself comes from standard input (a value starting with `-` must not be read as a flag).
    let out = ok(
        c.backuprepo(
            &[
                "create",
                "kube-1",
                "--provider",
                "minio",
                "--endpoint",
                &endpoint,
                "--bucket",
                &bucket,
                "--force-path-style",
                "--path-prefix",
                "kube-1",
                "--access-key-id",
                &key,
                "--secret-access-key",
                "-",
            ],
            Some(&secret),
        ),
        "create",
    );
    assert!(out.contains("kube-1"), "{out}");
    c.wait_phase("kube-1", "Ready", 60);
    let repo = c.get(&["backuprepo", "kube-1"]).unwrap();
    let cred = repo["spec"]["credential"]["name"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(repo["spec"]["credential"]["namespace"], "backuprepo-system");
    assert!(c
        .get(&["secret", &cred, "-n", "backuprepo-system"])
        .is_some());

    // list and get show it Ready with kbcli's and kubectl's columns; describe has its status.
    let list = ok(c.backuprepo(&["list"], None), "list");
    let row = list
        .lines()
        .find(|l| l.starts_with("kube-1"))
        .unwrap_or_else(|| panic!("{list}"));
    assert!(row.contains("Ready") && row.contains("minio"), "{list}");
    let get = ok(c.backuprepo(&["get", "backuprepo", "kube-1"], None), "get");
    assert!(get.contains("Ready"), "{get}");
    let describe = ok(c.backuprepo(&["describe", "kube-1"], None), "describe");
    assert!(
        describe.contains("kube-1") && describe.contains("Ready"),
        "{describe}"
    );
    assert!(!describe.contains(&secret), "describe shows no secret");

    // update: the default annotation (and it shows in kubectl).
    ok(
        c.backuprepo(&["update", "kube-1", "--default"], None),
        "update --default",
    );
    let ann = c.kubectl_ok(
        &[
            "get",
            "backuprepo",
            "kube-1",
            "-o",
            "jsonpath={.metadata.annotations.dataprotection\\.kubeblocks\\.io/is-default-repo}",
        ],
        None,
    );
    assert_eq!(ann, "true");

    // apply: a manifest, server-side; annotate; the admission policy's refusal comes back.
    s3_repo(&c, "kube-2-seed", "kube-2-seed", &[]);
    c.kubectl_ok(
        &["delete", "backuprepo", "kube-2-seed", "--timeout=60s"],
        None,
    );
    let manifest = format!(
        "apiVersion: dataprotection.kubeblocks.io/v1alpha1\nkind: BackupRepo\nmetadata:\n  name: kube-2\nspec:\n  storageProviderRef: minio\n  accessMethod: Tool\n  pvReclaimPolicy: Retain\n  pathPrefix: kube-2\n  config:\n    bucket: {bucket}\n    endpoint: {endpoint}\n    forcePathStyle: \"true\"\n  credential:\n    name: kube-2-seed-cred\n    namespace: kb-system\n"
    );
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("kube-2.yaml");
    std::fs::write(&file, manifest).unwrap();
    ok(
        c.backuprepo(&["apply", "-f", file.to_str().unwrap()], None),
        "apply",
    );
    c.wait_phase("kube-2", "Ready", 60);
    let o = c.backuprepo(
        &[
            "annotate",
            "backuprepo",
            "kube-2",
            "dataprotection.kubeblocks.io/is-default-repo=true",
            "--overwrite",
        ],
        None,
    );
    assert!(!o.status.success(), "a second default: {}", text(&o));
    // Refused before it reaches the API server (whose admission policy would refuse it too).
    assert!(
        String::from_utf8_lossy(&o.stderr)
            .contains("already a default backup repository \"kube-1\""),
        "{}",
        text(&o)
    );
    ok(
        c.backuprepo(
            &[
                "annotate",
                "backuprepo",
                "kube-2",
                "note=hello",
                "--overwrite",
            ],
            None,
        ),
        "annotate",
    );

    // kubectl's habits on the real API server: -o name and jsonpath, KIND/NAME, the
    // Secrets with their users and never their values, a used Secret kept.
    let names = ok(
        c.backuprepo(
            &[
                "get",
                "backuprepo/kube-1",
                "backuprepo/kube-2",
                "-o",
                "name",
            ],
            None,
        ),
        "get -o name",
    );
    assert_eq!(
        names,
        "backuprepo.dataprotection.kubeblocks.io/kube-1\nbackuprepo.dataprotection.kubeblocks.io/kube-2\n"
    );
    let phases = ok(
        c.backuprepo(
            &[
                "get",
                "backuprepo",
                "-o",
                r#"jsonpath={range .items[*]}{.metadata.name}={.status.phase} {end}"#,
            ],
            None,
        ),
        "get -o jsonpath",
    );
    assert!(phases.contains("kube-1=Ready kube-2=Ready"), "{phases}");
    ok(
        c.backuprepo(&["annotate", "backuprepo/kube-2", "team=db"], None),
        "annotate KIND/NAME",
    );
    assert_eq!(
        c.get(&["backuprepo", "kube-2"]).unwrap()["metadata"]["annotations"]["team"],
        "db"
    );
    let secrets = ok(
        c.backuprepo(&["get", "secrets", "-n", "kb-system"], None),
        "get secrets",
    );
    let row = secrets
        .lines()
        .find(|l| l.contains("kube-2-seed-cred"))
        .unwrap_or_else(|| panic!("{secrets}"));
    assert!(row.trim_end().ends_with("kube-2"), "USED-BY: {secrets}");
    let yaml = ok(
        c.backuprepo(
            &[
                "get",
                "secret",
                "kube-2-seed-cred",
                "-n",
                "kb-system",
                "-o",
                "yaml",
            ],
            None,
        ),
        "get secret -o yaml",
    );
    assert!(
        yaml.contains("<redacted: ") && !yaml.contains(&secret),
        "{yaml}"
    );
    let o = c.backuprepo(
        &["delete", "secret", "kube-2-seed-cred", "-n", "kb-system"],
        None,
    );
    assert!(
        !o.status.success() && text(&o).contains("is the credential of backuprepo kube-2"),
        "{}",
        text(&o)
    );
    assert!(c
        .get(&["secret", "kube-2-seed-cred", "-n", "kb-system"])
        .is_some());
    ok(
        c.backuprepo(&["get", "backuprepo", "nope", "--ignore-not-found"], None),
        "get --ignore-not-found",
    );

    // check: asks the controller and waits for its answer.
    let out = ok(c.backuprepo(&["check", "kube-2"], None), "check");
    assert!(out.contains("kube-2"), "{out}");
    let repo = c.get(&["backuprepo", "kube-2"]).unwrap();
    assert!(repo["metadata"]["annotations"]["backuprepo.io/check-requested"].is_null());

    // rotate-keys: with no scoped keys there is nothing to rotate, and it says how to get them
    // (the scoped-key test on this cluster rotates real ones).
    let o = c.backuprepo(&["rotate-keys", "kube-2"], None);
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("has no scoped keys to rotate"),
        "{}",
        text(&o)
    );

    // delete: both go, with the Secret create made.
    ok(
        c.backuprepo(
            &[
                "delete",
                "backuprepo",
                "kube-1",
                "kube-2",
                "nope",
                "--yes",
                "--ignore-not-found",
            ],
            None,
        ),
        "delete A B",
    );
    c.wait(60, "both repositories are gone", || {
        (c.get(&["backuprepo", "kube-1"]).is_none() && c.get(&["backuprepo", "kube-2"]).is_none())
            .then_some(())
    });
    c.wait(60, "the Secret of create is collected", || {
        c.get(&["secret", &cred, "-n", "backuprepo-system"])
            .is_none()
            .then_some(())
    });
}

fn kube_script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../scripts/kube.sh")
}

#[test]
fn the_controller_rides_out_an_api_server_restart() {
    let Some(c) = cluster("the_controller_rides_out_an_api_server_restart") else {
        return;
    };
    let mut ctl = Controller::start(&c, "restart-0", &[]);
    c.kubectl(
        &[
            "delete",
            "backuprepo",
            "restart-1",
            "restart-2",
            "--ignore-not-found",
            "--timeout=60s",
        ],
        None,
    );
    s3_repo(&c, "restart-1", "restart-1", &[]);
    c.wait_phase("restart-1", "Ready", 60);

    let from = c.audit().len();
    let restart_began = audit_now();
    let o = Command::new("bash")
        .arg(kube_script())
        .args(["restart-apiserver", c.dir.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(o.status.success(), "restart: {}", text(&o));
    // A restarted API server answers before its RBAC caches are filled: for a moment it refuses
    // what the install's RBAC allows. Those refusals are the only ones allowed.
    std::thread::sleep(std::time::Duration::from_secs(5));
    let settled = audit_now();

    // For its first seconds the new API server refuses BackupRepo writes: the admission
    // policy's parameter kind (a CRD) is not resolved yet, and the policy fails closed. Measure
    // how long, as a user who retries would see it.
    let restarted = std::time::Instant::now();
    c.wait(120, "the admission policy is configured again", || {
        c.kubectl(
            &["apply", "--dry-run=server", "-f", "-"],
            Some(ADMISSION_PROBE),
        )
        .status
        .success()
        .then_some(())
    });
    println!(
        "BackupRepo writes refused by the unconfigured admission policy for {:.1} s after the restart",
        restarted.elapsed().as_secs_f64()
    );
    // What changes after the restart reaches the controller through its re-established watches.
    s3_repo(&c, "restart-2", "restart-2", &[]);
    c.kubectl_ok(
        &["delete", "secret", "restart-1-cred", "-n", "kb-system"],
        None,
    );
    c.wait_phase("restart-2", "Ready", 90);
    c.wait_phase("restart-1", "Failed", 90);
    assert!(
        ctl.exited().is_none(),
        "the controller kept running:\n{}",
        ctl.log_text()
    );

    s3_repo(&c, "restart-1", "restart-1", &[]);
    c.wait_phase("restart-1", "Ready", 60);
    c.kubectl_ok(
        &[
            "delete",
            "backuprepo",
            "restart-1",
            "restart-2",
            "--timeout=60s",
        ],
        None,
    );
    let refused: Vec<String> = c
        .audit()
        .iter()
        .skip(from)
        .filter(|e| {
            e["user"]["username"] == controller_user() && e["responseStatus"]["code"] == 403
        })
        .filter(|e| {
            let t = e["requestReceivedTimestamp"].as_str().unwrap_or("");
            t < restart_began.as_str() || t > settled.as_str()
        })
        .map(|e| {
            format!(
                "{} {} {}",
                e["requestReceivedTimestamp"], e["verb"], e["requestURI"]
            )
        })
        .collect();
    assert!(
        refused.is_empty(),
        "refused by RBAC outside the restart: {refused:?}"
    );
}
