//! Mount access on the real API server: the CSI Secret, StorageClass and PVC are accepted; the
//! pre-check Job is scheduled onto the kwok node (kwok plays its kubelet) and completes, and
//! the repository is Ready; a pre-check whose pod fails (a kwok stage fails the pods of the
//! repository `mount-fails`) gives Failed with the reason. The test plays the CSI provisioner:
//! it makes a PersistentVolume for each PVC of the StorageClass.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use serde_json::Value;

use crate::harness::{s3, Cluster, Controller, NS};

const DRIVER: &str = "ru.yandex.s3.csi";

fn mount_repo(c: &Cluster, name: &str) {
    mount_repo_at(c, name, &s3().0)
}

fn mount_repo_at(c: &Cluster, name: &str, endpoint: &str) {
    let (_, bucket, key, secret) = s3();
    c.kubectl_ok(
        &["apply", "-f", "-"],
        Some(&format!(
            "apiVersion: v1\nkind: Secret\nmetadata:\n  name: {name}-cred\n  namespace: kb-system\nstringData:\n  accessKeyId: \"{key}\"\n  secretAccessKey: \"{secret}\"\n---\napiVersion: dataprotection.kubeblocks.io/v1alpha1\nkind: BackupRepo\nmetadata:\n  name: {name}\nspec:\n  storageProviderRef: minio\n  accessMethod: Mount\n  pvReclaimPolicy: Delete\n  volumeCapacity: 1Gi\n  pathPrefix: {name}\n  config:\n    bucket: {bucket}\n    endpoint: {endpoint}\n  credential:\n    name: {name}-cred\n    namespace: kb-system\n"
        )),
    );
}

/// One pass of the test's CSI provisioner: a pre-bound PV for every pending PVC of `DRIVER`'s
/// StorageClasses that has none.
fn provision(c: &Cluster) {
    let Some(pvcs) = c.get(&["pvc", "-A"]) else {
        return;
    };
    for pvc in pvcs["items"].as_array().cloned().unwrap_or_default() {
        if pvc["status"]["phase"] != "Pending" {
            continue;
        }
        let sc = pvc["spec"]["storageClassName"].as_str().unwrap_or_default();
        let Some(class) = c.get(&["storageclass", sc]) else {
            continue;
        };
        if class["provisioner"] != DRIVER {
            continue;
        }
        let name = pvc["metadata"]["name"].as_str().unwrap_or_default();
        let ns = pvc["metadata"]["namespace"].as_str().unwrap_or_default();
        let pv = format!("pv-{}", pvc["metadata"]["uid"].as_str().unwrap_or_default());
        if c.get(&["pv", &pv]).is_some() {
            continue;
        }
        let modes: Vec<String> = pvc["spec"]["accessModes"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .map(Value::to_string)
            .collect();
        let manifest = format!(
            "apiVersion: v1\nkind: PersistentVolume\nmetadata:\n  name: {pv}\nspec:\n  capacity: {{storage: {}}}\n  accessModes: [{}]\n  storageClassName: {sc}\n  persistentVolumeReclaimPolicy: Delete\n  claimRef: {{namespace: {ns}, name: {name}, uid: {}}}\n  csi: {{driver: {DRIVER}, volumeHandle: {pv}}}\n",
            pvc["spec"]["resources"]["requests"]["storage"].as_str().unwrap_or("1Gi"),
            modes.join(", "),
            pvc["metadata"]["uid"].as_str().unwrap_or_default(),
        );
        let _ = c.kubectl(&["apply", "-f", "-"], Some(&manifest));
    }
}

fn condition(repo: &Value, type_: &str) -> Value {
    repo["status"]["conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == type_).cloned())
        .unwrap_or(Value::Null)
}

#[test]
fn mount_repositories_run_their_pre_check_job_on_the_kwok_node() {
    let Some(c) =
        crate::harness::cluster("mount_repositories_run_their_pre_check_job_on_the_kwok_node")
    else {
        return;
    };
    let ctl = Controller::start(&c, "mount-0", &[]);
    c.kubectl(
        &[
            "delete",
            "backuprepo",
            "mount-ok",
            "mount-fails",
            "--ignore-not-found",
            "--timeout=60s",
        ],
        None,
    );
    // The CSI driver's object (the driver itself is simulated: the test provisions volumes).
    c.kubectl_ok(
        &["apply", "-f", "-"],
        Some(&format!(
            "apiVersion: storage.k8s.io/v1\nkind: CSIDriver\nmetadata:\n  name: {DRIVER}\nspec:\n  attachRequired: false\n  podInfoOnMount: false\n"
        )),
    );
    c.wait(
        60,
        "the minio provider is Ready once its CSIDriver exists",
        || {
            let p = c.get(&["storageprovider", "minio"])?;
            (p["status"]["phase"] == "Ready").then_some(())
        },
    );

    let stop = Arc::new(AtomicBool::new(false));
    std::thread::scope(|scope| {
        let s = stop.clone();
        let cl = &c;
        scope.spawn(move || {
            while !s.load(Ordering::Relaxed) {
                provision(cl);
                std::thread::sleep(std::time::Duration::from_millis(300));
            }
        });
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            mount_repo(&c, "mount-ok");
            let repo = c.wait_phase("mount-ok", "Ready", 120);
            assert_eq!(
                condition(&repo, "PreCheckPassed")["status"],
                "True",
                "{repo}"
            );
            // What the repository made, accepted by the real API server.
            let uid = repo["metadata"]["uid"].as_str().unwrap();
            let sc_name = repo["status"]["generatedStorageClassName"]
                .as_str()
                .unwrap();
            let sc = c.get(&["storageclass", sc_name]).expect("the StorageClass");
            assert_eq!(sc["provisioner"], DRIVER);
            let csi = repo["status"]["generatedCSIDriverSecret"]["name"]
                .as_str()
                .unwrap();
            let secret = c.get(&["secret", csi, "-n", NS]).expect("the CSI Secret");
            assert!(secret["metadata"]["ownerReferences"]
                .to_string()
                .contains(uid));
            let jobs = c.kubectl_ok(
                &[
                    "get",
                    "jobs",
                    "-n",
                    NS,
                    "-l",
                    "dataprotection.kubeblocks.io/backup-repo-name=mount-ok",
                    "-o",
                    "json",
                ],
                None,
            );
            let jobs: Value = serde_json::from_str(&jobs).unwrap();
            let pods = c.kubectl_ok(
                &[
                    "get",
                    "pods",
                    "-n",
                    NS,
                    "-l",
                    "dataprotection.kubeblocks.io/backup-repo-name=mount-ok",
                    "-o",
                    "jsonpath={.items[*].spec.nodeName}",
                ],
                None,
            );
            assert!(
                pods.contains("kwok-node-0") || jobs["items"].as_array().is_some_and(Vec::is_empty),
                "the pre-check pod ran on the kwok node (or its Job was already cleaned up): {pods}"
            );

            // A hostile status: the CSI Secret's reference pointed at someone else's Secret.
            // The controller derives the reference again and never writes that Secret.
            c.namespace("victim");
            let _ = c.kubectl(
                &[
                    "create",
                    "secret",
                    "generic",
                    "planted",
                    "-n",
                    "victim",
                    "--from-literal=token=keep-me",
                ],
                None,
            );
            c.kubectl_ok(
                &["patch", "backuprepo", "mount-ok", "--subresource=status", "--type=merge", "-p",
                  r#"{"status":{"generatedCSIDriverSecret":{"name":"planted","namespace":"victim"}}}"#],
                None,
            );
            // A config change makes the controller render the CSI Secret again.
            c.kubectl_ok(
                &[
                    "patch",
                    "backuprepo",
                    "mount-ok",
                    "--type=merge",
                    "-p",
                    r#"{"spec":{"config":{"mountOptions":"--debug"}}}"#,
                ],
                None,
            );
            c.wait(60, "the CSI Secret's reference is derived again", || {
                let r = c.get(&["backuprepo", "mount-ok"])?;
                let sref = &r["status"]["generatedCSIDriverSecret"];
                (sref["namespace"] == NS && sref["name"] != "planted").then_some(())
            });
            c.wait_phase("mount-ok", "Ready", 120);
            let planted = c.get(&["secret", "planted", "-n", "victim"]).unwrap();
            assert_eq!(
                planted["data"],
                serde_json::json!({"token": "a2VlcC1tZQ=="}),
                "{planted}"
            );
            assert!(
                planted["metadata"]["ownerReferences"].is_null(),
                "{planted}"
            );

            mount_repo(&c, "mount-fails");
            let repo = c.wait_phase("mount-fails", "Failed", 180);
            let cond = condition(&repo, "PreCheckPassed");
            assert_eq!(cond["status"], "False", "{repo}");
            assert_eq!(cond["reason"], "PreCheckFailed", "{repo}");
            let msg = cond["message"].as_str().unwrap_or_default();
            assert!(!msg.is_empty(), "{repo}");

            // The endpoint a CSI driver would be given is checked like a Tool endpoint: the
            // metadata service fails the check, and no pre-check Job is made to reach it.
            mount_repo_at(&c, "mount-meta", "http://169.254.169.254/latest");
            let repo = c.wait_phase("mount-meta", "Failed", 60);
            let msg = condition(&repo, "PreCheckPassed")["message"].to_string();
            assert!(msg.contains("metadata service"), "{repo}");
            let jobs = c.get(&[
                "jobs",
                "-n",
                NS,
                "-l",
                "dataprotection.kubeblocks.io/backup-repo-name=mount-meta",
            ]);
            assert!(
                jobs.as_ref()
                    .is_none_or(|j| j["items"].as_array().is_none_or(|i| i.is_empty())),
                "a pre-check Job for a refused endpoint: {jobs:?}"
            );

            c.kubectl_ok(
                &[
                    "delete",
                    "backuprepo",
                    "mount-ok",
                    "mount-fails",
                    "mount-meta",
                    "--timeout=90s",
                ],
                None,
            );
            // Garbage collection removes the StorageClass's companions the repository owned.
            c.wait(60, "the CSI Secret is collected", || {
                c.get(&["secret", csi, "-n", NS]).is_none().then_some(())
            });
        }));
        stop.store(true, Ordering::Relaxed);
        if let Err(e) = result {
            eprintln!("controller log:\n{}", ctl.log_text());
            std::panic::resume_unwind(e);
        }
    });
    ctl.assert_no_forbidden();
}
