//! The seed's kubectl flows, verbatim, on the real API server with the controller running as
//! the install runs it: the Secret and BackupRepo of its MinIO and S3-compatible tabs pointed
//! at SeaweedFS, `kubectl get backuprepo` Ready, the default-repository annotation and the
//! admission policy refusing a second default, a changed credential re-checked, a deleted
//! Secret failing the repository and its return making it Ready again.

use crate::harness::{cluster, controller_user, forbidden_since, s3, text, Controller};

/// The seed's kubectl block of a provider tab (the one that creates `secret`), dedented as the
/// rendered page shows it.
fn seed_block(secret: &str) -> Option<String> {
    let text = backuprepo_fixtures::read_shared("seed/configure-backuprepo.md")?;
    let mut block: Option<Vec<&str>> = None;
    for line in text.lines() {
        if line.trim().starts_with("```") {
            match block.take() {
                Some(b) => {
                    let joined = b.join("\n");
                    if joined.contains(&format!("kubectl create secret generic {secret}")) {
                        return Some(joined);
                    }
                }
                None => block = Some(Vec::new()),
            }
            continue;
        }
        if let Some(b) = block.as_mut() {
            b.push(line.strip_prefix("   ").unwrap_or(line));
        }
    }
    None
}

fn patch_default(c: &crate::harness::Cluster, repo: &str, value: &str) -> std::process::Output {
    c.kubectl(
        &[
            "annotate",
            "backuprepo",
            repo,
            "--overwrite=true",
            &format!("dataprotection.kubeblocks.io/is-default-repo={value}"),
        ],
        None,
    )
}

#[test]
fn the_seeds_kubectl_flow_on_a_real_api_server() {
    let Some(c) = cluster("the_seeds_kubectl_flow_on_a_real_api_server") else {
        return;
    };
    let (endpoint, bucket, key, secret) = s3();
    let audit_from = c.audit().len();
    let ctl = Controller::start(&c, "seed-controller-0", &[]);
    // What an earlier run on this cluster may have left.
    c.sh_ok(
        "kubectl delete backuprepo my-repo my-repo-2 --ignore-not-found --timeout=60s
         kubectl delete secret -n kb-system s3-comp-credential-for-backuprepo minio-credential-for-backuprepo --ignore-not-found",
    );

    // The seed's S3-compatible tab, verbatim, is refused: its `forcePathStyle: true` is a YAML
    // boolean, and `spec.config` is map[string]string in KubeBlocks' CRD as in ours.
    let fill = |block: String| {
        block
            .replace("<ACCESS KEY>", &key)
            .replace("<SECRET KEY>", &secret)
            .replace("<endpoint>", &endpoint)
            .replace("<ip:port>", &endpoint)
            .replace("test-kb-backup", &bucket)
    };
    let s3comp = fill(
        seed_block("s3-comp-credential-for-backuprepo")
            .expect("the seed's S3-compatible kubectl block (../shared/seed)"),
    );
    let o = c.sh(&s3comp);
    assert!(!o.status.success(), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr)
            .contains("spec.config.forcePathStyle in body must be of type string"),
        "{}",
        text(&o)
    );
    assert!(c.get(&["backuprepo", "my-repo"]).is_none());
    // Quoted, as a user fixes it, it is accepted and checked.
    c.kubectl_ok(
        &[
            "delete",
            "secret",
            "s3-comp-credential-for-backuprepo",
            "-n",
            "kb-system",
        ],
        None,
    );
    c.sh_ok(&s3comp.replace("forcePathStyle: true", "forcePathStyle: \"true\""));
    c.wait_phase("my-repo", "Ready", 60);
    c.kubectl_ok(&["delete", "backuprepo", "my-repo", "--timeout=60s"], None);

    // The seed's MinIO tab, verbatim but for its placeholders.
    let minio = fill(
        seed_block("minio-credential-for-backuprepo")
            .expect("the seed's MinIO kubectl block (../shared/seed)"),
    );
    c.sh_ok(&minio);
    c.wait_phase("my-repo", "Ready", 60);
    let table = c.kubectl_ok(&["get", "backuprepo"], None);
    let row = table
        .lines()
        .find(|l| l.starts_with("my-repo "))
        .unwrap_or_else(|| panic!("{table}"));
    let cols: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(&cols[1..5], ["Ready", "minio", "Tool", "true"], "{table}");

    // A second default is refused by the API server's own admission.
    let second = format!(
        "apiVersion: dataprotection.kubeblocks.io/v1alpha1\nkind: BackupRepo\nmetadata:\n  name: my-repo-2\n  annotations:\n    dataprotection.kubeblocks.io/is-default-repo: \"true\"\nspec:\n  storageProviderRef: minio\n  accessMethod: Tool\n  pvReclaimPolicy: Retain\n  config:\n    bucket: {bucket}\n    endpoint: {endpoint}\n    forcePathStyle: \"true\"\n  pathPrefix: seed-second\n  credential:\n    name: minio-credential-for-backuprepo\n    namespace: kb-system\n"
    );
    let o = c.kubectl(&["apply", "-f", "-"], Some(&second));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "{}", text(&o));
    assert!(
        err.contains("ValidatingAdmissionPolicy 'backuprepo-single-default'")
            && err.contains("BackupRepo my-repo is already the default"),
        "{err}"
    );
    // As a non-default it is accepted; then the seed's annotate flow moves the default.
    let plain = second.replace("\"true\"\nspec", "\"false\"\nspec");
    c.kubectl_ok(&["apply", "-f", "-"], Some(&plain));
    let o = patch_default(&c, "my-repo-2", "true");
    assert!(
        !o.status.success(),
        "second default by annotate: {}",
        text(&o)
    );
    assert!(patch_default(&c, "my-repo", "false").status.success());
    let o = patch_default(&c, "my-repo-2", "true");
    assert!(o.status.success(), "{}", text(&o));
    c.wait_phase("my-repo-2", "Ready", 60);

    // A changed credential is checked again: a wrong secret fails the repository, naming the
    // key problem; the right one makes it Ready again.
    let set_secret = |value: &str| {
        c.sh_ok(&format!(
            "kubectl create secret generic minio-credential-for-backuprepo -n kb-system \
               --from-literal=accessKeyId={key} --from-literal=secretAccessKey='{value}' \
               --dry-run=client -o yaml | kubectl apply -f - >/dev/null"
        ));
    };
    set_secret("not-the-secret");
    let failed = c.wait_phase("my-repo", "Failed", 60);
    let status = failed["status"].to_string();
    assert!(
        !status.contains("not-the-secret"),
        "a secret in status: {status}"
    );
    assert!(!status.contains(&secret), "a secret in status: {status}");
    set_secret(&secret);
    c.wait_phase("my-repo", "Ready", 60);

    // A deleted Secret fails the repository; restoring it makes it Ready again.
    c.kubectl_ok(
        &[
            "delete",
            "secret",
            "minio-credential-for-backuprepo",
            "-n",
            "kb-system",
        ],
        None,
    );
    let failed = c.wait_phase("my-repo", "Failed", 60);
    let status = failed["status"].to_string();
    assert!(
        status.contains("minio-credential-for-backuprepo"),
        "the condition names the missing Secret: {status}"
    );
    set_secret(&secret);
    c.wait_phase("my-repo", "Ready", 60);

    // Deleting them lets the controller's finalizer go.
    c.kubectl_ok(
        &[
            "delete",
            "backuprepo",
            "my-repo",
            "my-repo-2",
            "--timeout=60s",
        ],
        None,
    );
    assert!(c.get(&["backuprepo", "my-repo"]).is_none());

    ctl.assert_no_forbidden();
    let refused = forbidden_since(&c, audit_from, &controller_user());
    assert!(refused.is_empty(), "refused by RBAC: {refused:?}");
    let log = ctl.log_text();
    assert!(!log.contains(&secret), "the secret in the controller's log");
}
