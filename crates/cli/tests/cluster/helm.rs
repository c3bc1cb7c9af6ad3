//! `helm install`, `helm upgrade` and `helm uninstall` of the chart on the real API server,
//! with a values file in the seed's form (its `backupRepo:` block on the SeaweedFS test
//! server): the repository it asks for becomes Ready under a controller run as the release's
//! Deployment says (its ServiceAccount and RBAC); an upgrade that changes the re-check
//! interval reaches the controller; uninstall leaves only what Helm's conventions keep.
//! The `backuprepo install` objects this cluster's other tests use are taken down first and
//! put back at the end, whatever happens.

use std::process::Command;

use crate::harness::{cluster, s3, text, Cluster, Controller, NS};

/// Puts the `backuprepo install` objects back when dropped (also when the test fails).
struct Reinstall<'a>(&'a Cluster);

impl Drop for Reinstall<'_> {
    fn drop(&mut self) {
        let c = self.0;
        // Best effort: the release may be gone already.
        let _ = run_helm(c, &UNINSTALL);
        c.kubectl(
            &[
                "delete",
                "backuprepo",
                "kubeblocks-backuprepo",
                "--ignore-not-found",
                "--timeout=60s",
            ],
            None,
        );
        c.kubectl(
            &[
                "delete",
                "secret",
                "kubeblocks-backuprepo-secret",
                "-n",
                NS,
                "--ignore-not-found",
            ],
            None,
        );
        c.apply_install();
    }
}

fn helm_bin() -> std::path::PathBuf {
    std::env::var_os("BR_HELM")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| "helm".into())
}

const UNINSTALL: [&str; 7] = [
    "uninstall",
    "backuprepo",
    "-n",
    NS,
    "--wait",
    "--timeout",
    "60s",
];

fn run_helm(c: &Cluster, args: &[&str]) -> std::process::Output {
    Command::new(helm_bin())
        .args(args)
        .env("KUBECONFIG", &c.kubeconfig)
        .output()
        .expect("run helm")
}

fn helm(c: &Cluster, args: &[&str]) -> String {
    let out = run_helm(c, args);
    assert!(out.status.success(), "helm {args:?}: {}", text(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn helm_install_upgrade_uninstall_on_the_real_api_server() {
    let Some(c) = cluster("helm_install_upgrade_uninstall_on_the_real_api_server") else {
        return;
    };
    if std::env::var_os("BR_HELM").is_none() {
        assert!(
            std::env::var("BR_REQUIRE_KUBE").as_deref() != Ok("1"),
            "BR_HELM is not set (scripts/up.sh builds helm)"
        );
        println!("skipped: BR_HELM is not set (bash scripts/kube.sh build-extra)");
        return;
    }
    // Take the install down (Helm adopts nothing it did not make); the CRDs stay, as Helm
    // leaves existing ones alone.
    let _back = Reinstall(&c);
    let printed = Command::new(crate::harness::backuprepo_bin())
        .args(["install", "--print"])
        .output()
        .expect("install --print");
    let mut objects = String::new();
    for doc in serde_yaml_ng::Deserializer::from_str(&String::from_utf8_lossy(&printed.stdout)) {
        let v: serde_json::Value = serde::Deserialize::deserialize(doc).unwrap();
        if !matches!(
            v["kind"].as_str(),
            Some("Namespace" | "CustomResourceDefinition")
        ) {
            objects.push_str("---\n");
            objects.push_str(&serde_yaml_ng::to_string(&v).unwrap());
        }
    }
    c.kubectl_ok(
        &["delete", "--ignore-not-found", "--wait=true", "-f", "-"],
        Some(&objects),
    );

    let (endpoint, bucket, key, secret) = s3();
    let dir = tempfile::tempdir().unwrap();
    let values = dir.path().join("backuprepo.yaml");
    // The seed's values form, on the test server; the controller re-checks hourly.
    let write_values = |recheck: u64| {
        std::fs::write(
            &values,
            format!(
                "controller:\n  recheckInterval: {recheck}\nbackupRepo:\n  create: true\n  default: false\n  storageProvider: minio\n  config:\n    bucket: {bucket}\n    endpoint: {endpoint}\n    forcePathStyle: \"true\"\n  secrets:\n    accessKeyId: {key}\n    secretAccessKey: \"{secret}\"\n"
            ),
        )
        .unwrap();
    };
    write_values(3600);
    let chart = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(backuprepo_deploy::CHART_DIR);
    let chart = chart.to_str().unwrap();
    let values_arg = values.to_str().unwrap();
    let out = helm(
        &c,
        &[
            "install",
            "backuprepo",
            chart,
            "-n",
            NS,
            "-f",
            values_arg,
            "--wait=false",
        ],
    );
    assert!(out.contains("STATUS: deployed"), "{out}");

    // The credential went into a Secret (and Helm's release Secret), never a ConfigMap.
    let cms = c.kubectl_ok(&["get", "configmaps", "-A", "-o", "json"], None);
    assert!(!cms.contains(&secret), "a ConfigMap holds the credential");
    let s = c
        .get(&["secret", "kubeblocks-backuprepo-secret", "-n", NS])
        .expect("the values' Secret");
    assert_eq!(
        s["metadata"]["annotations"]["helm.sh/resource-policy"],
        "keep"
    );
    let d = c
        .get(&["deployment", "backuprepo-controller", "-n", NS])
        .expect("the Deployment");
    assert_eq!(
        d["metadata"]["labels"]["app.kubernetes.io/name"],
        "backuprepo"
    );

    // The controller as the release runs it makes the values' repository Ready.
    let ctl = Controller::start_as(&c, "helm-0", &d);
    let repo = c.wait_phase("kubeblocks-backuprepo", "Ready", 90);
    let first_check = repo["status"]["lastCheckTime"]
        .as_str()
        .unwrap()
        .to_string();
    ctl.assert_no_forbidden();
    drop(ctl);

    // helm upgrade with a re-check every 2 s: the new Deployment carries it, and the
    // controller run from it re-checks by itself.
    write_values(2);
    helm(
        &c,
        &[
            "upgrade",
            "backuprepo",
            chart,
            "-n",
            NS,
            "-f",
            values_arg,
            "--wait=false",
        ],
    );
    let d = c
        .get(&["deployment", "backuprepo-controller", "-n", NS])
        .unwrap();
    let env = d["spec"]["template"]["spec"]["containers"][0]["env"].to_string();
    assert!(
        env.contains(r#""name":"BACKUPREPO_RECHECK_INTERVAL","value":"2""#),
        "{env}"
    );
    let ctl = Controller::start_as(&c, "helm-1", &d);
    c.wait(60, "a re-check by the upgraded controller", || {
        let r = c.get(&["backuprepo", "kubeblocks-backuprepo"])?;
        let t = r["status"]["lastCheckTime"].as_str()?.to_string();
        (t != first_check && r["status"]["phase"] == "Ready").then_some(())
    });
    ctl.assert_no_forbidden();
    drop(ctl);

    // helm uninstall: ours are gone but for what Helm keeps: the CRDs, and the values'
    // repository and Secret (resource-policy keep), which backups rely on.
    helm(&c, &UNINSTALL);
    for gone in [
        vec!["deployment", "backuprepo-controller", "-n", NS],
        vec!["serviceaccount", "backuprepo-controller", "-n", NS],
        vec!["clusterrole", "backuprepo-controller"],
        vec!["clusterrolebinding", "backuprepo-controller"],
        vec!["networkpolicy", "backuprepo-controller", "-n", NS],
        vec!["validatingadmissionpolicy", "backuprepo-single-default"],
        vec!["storageprovider", "minio"],
    ] {
        assert!(c.get(&gone).is_none(), "{gone:?} is left after uninstall");
    }
    assert!(c
        .get(&["crd", "backuprepos.dataprotection.kubeblocks.io"])
        .is_some());
    assert!(c.get(&["backuprepo", "kubeblocks-backuprepo"]).is_some());
    assert!(c
        .get(&["secret", "kubeblocks-backuprepo-secret", "-n", NS])
        .is_some());
}
