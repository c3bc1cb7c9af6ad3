//! The Helm chart (`deploy/chart/backuprepo`, generated from the Rust builders) renders what
//! `backuprepo install --print` renders for the same values file: a real `helm template`
//! (helm built from Go modules by `scripts/kube.sh build-extra`) against the binary, object by
//! object, for the defaults, a values file that sets every controller key, the seed's values
//! file and a `backupRepo:` block with every field. `helm lint --strict` is clean and the
//! rendered objects pass `kubernetes-validate --strict`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// helm from the shared cache; `None` (skip) unless the cluster tests are required.
pub fn helm() -> Option<PathBuf> {
    let from_env = std::env::var_os("BR_HELM").map(PathBuf::from);
    let from_cache = || {
        let out = Command::new("bash")
            .arg(root().join("scripts/kube.sh"))
            .arg("extra-bin")
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()).join("helm"))
    };
    match from_env.or_else(from_cache).filter(|p| p.exists()) {
        Some(p) => Some(p),
        None if std::env::var("BR_REQUIRE_KUBE").as_deref() == Ok("1") => {
            panic!("helm is not built: bash scripts/kube.sh build-extra")
        }
        None => {
            eprintln!("skipped: helm is not built (bash scripts/kube.sh build-extra)");
            None
        }
    }
}

/// The objects of a YAML stream by `Kind/name`, without Helm's own annotations.
fn objects(text: &str) -> BTreeMap<String, Value> {
    let mut out = BTreeMap::new();
    for doc in serde_yaml_ng::Deserializer::from_str(text) {
        let v: Value = serde::Deserialize::deserialize(doc).unwrap();
        if v.is_null() {
            continue;
        }
        let mut v = v;
        let meta = v
            .get_mut("metadata")
            .and_then(Value::as_object_mut)
            .unwrap();
        if let Some(a) = meta.get_mut("annotations").and_then(Value::as_object_mut) {
            a.remove("helm.sh/resource-policy");
            if a.is_empty() {
                meta.remove("annotations");
            }
        }
        let key = format!(
            "{}/{}",
            v["kind"].as_str().unwrap(),
            v["metadata"]["name"].as_str().unwrap()
        );
        assert!(out.insert(key.clone(), v).is_none(), "{key} twice");
    }
    out
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// `helm template` and `install --print` of one values file in one namespace: the same
/// objects, field for field.
fn same(helm: &PathBuf, values: &str, namespace: &str) -> BTreeMap<String, Value> {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("values.yaml");
    std::fs::write(&file, values).unwrap();
    let chart = root().join(backuprepo_deploy::CHART_DIR);
    let rendered = run(Command::new(helm)
        .args(["template", "backuprepo"])
        .arg(&chart)
        .args([
            "--namespace",
            namespace,
            "--include-crds",
            "--set",
            "createNamespace=true",
            "-f",
        ])
        .arg(&file));
    let printed = run(Command::new(env!("CARGO_BIN_EXE_backuprepo"))
        .args(["install", "--print", "--namespace", namespace, "-f"])
        .arg(&file)
        .env("BACKUPREPO_HOME", dir.path().join("home")));
    let (h, p) = (objects(&rendered), objects(&printed));
    assert_eq!(
        h.keys().collect::<Vec<_>>(),
        p.keys().collect::<Vec<_>>(),
        "the same objects"
    );
    for (k, v) in &h {
        assert_eq!(
            v, &p[k],
            "{k} differs between the chart and install --print"
        );
    }
    h
}

const EVERY_CONTROLLER_KEY: &str = r#"
controller:
  image: registry.example/backuprepo:9.9.9
  replicas: 3
  resources:
    requests: {cpu: 100m, memory: 128Mi}
  allowedNamespaces: "team-a, team-b"
  scopedKeys: "false"
  recheckInterval: 600
  retryInterval: 0
  networkPolicy: false
  podDisruptionBudget: {enabled: true, minAvailable: 2}
  nodeSelector: {disktype: ssd}
  tolerations:
  - {key: dedicated, operator: Equal, value: backup, effect: NoSchedule}
  affinity:
    nodeAffinity:
      requiredDuringSchedulingIgnoredDuringExecution:
        nodeSelectorTerms:
        - matchExpressions:
          - {key: kubernetes.io/arch, operator: In, values: [amd64]}
"#;

const EVERY_BACKUP_REPO_FIELD: &str = r#"
backupRepo:
  create: true
  accessMethod: Mount
  storageProvider: minio
  pvReclaimPolicy: Delete
  volumeCapacity: 20Gi
  config:
    bucket: b
    endpoint: http://127.0.0.1:9000
    forcePathStyle: true
  secrets:
    accessKeyId: AKIA-test
    secretAccessKey: "-begins-with-a-dash"
"#;

#[test]
fn the_chart_renders_what_install_prints() {
    let Some(helm) = helm() else {
        return;
    };
    let lint = Command::new(&helm)
        .args(["lint", "--strict"])
        .arg(root().join(backuprepo_deploy::CHART_DIR))
        .output()
        .unwrap();
    assert!(
        lint.status.success(),
        "{}",
        String::from_utf8_lossy(&lint.stdout)
    );

    let defaults = same(&helm, "", "backuprepo-system");
    assert!(defaults.contains_key("NetworkPolicy/backuprepo-controller"));
    assert!(!defaults.contains_key("PodDisruptionBudget/backuprepo-controller"));

    let all = same(&helm, EVERY_CONTROLLER_KEY, "kb-system");
    let d = &all["Deployment/backuprepo-controller"];
    assert_eq!(d["spec"]["replicas"], 3);
    let pod = &d["spec"]["template"]["spec"];
    assert_eq!(pod["nodeSelector"]["disktype"], "ssd");
    assert_eq!(pod["tolerations"][0]["key"], "dedicated");
    let env: BTreeMap<&str, &Value> = pod["containers"][0]["env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["name"].as_str().unwrap(), &e["value"]))
        .collect();
    assert_eq!(env["BACKUPREPO_ALLOWED_NAMESPACES"], "team-a, team-b");
    assert_eq!(env["BACKUPREPO_RECHECK_INTERVAL"], "600");
    assert_eq!(env["BACKUPREPO_RETRY_INTERVAL"], "0");
    assert_eq!(env["BACKUPREPO_SCOPED_CREDENTIALS"], "false");
    assert!(!all.contains_key("NetworkPolicy/backuprepo-controller"));
    assert_eq!(
        all["PodDisruptionBudget/backuprepo-controller"]["spec"]["minAvailable"],
        2
    );

    let repo = same(&helm, EVERY_BACKUP_REPO_FIELD, "kb-system");
    assert_eq!(
        repo["BackupRepo/kubeblocks-backuprepo"]["spec"]["config"]["forcePathStyle"],
        "true"
    );
    let no_default =
        EVERY_BACKUP_REPO_FIELD.replace("create: true", "create: true\n  default: false");
    let repo = same(&helm, &no_default, "kb-system");
    assert!(repo["BackupRepo/kubeblocks-backuprepo"]["metadata"]
        .get("annotations")
        .is_none());
    if let Some(seed) = backuprepo_fixtures::seed_values() {
        let seeded = same(&helm, &seed, "backuprepo-system");
        assert!(seeded.contains_key("BackupRepo/kubeblocks-backuprepo"));
    }

    // What helm renders passes the Kubernetes schemas.
    let text = run(Command::new(&helm)
        .args(["template", "backuprepo"])
        .arg(root().join(backuprepo_deploy::CHART_DIR))
        .args(["--namespace", "kb-system"]));
    if let Some(out) = backuprepo_kube_mock::kubernetes_validate(&text) {
        assert!(
            out.contains("passed for resource deployment/backuprepo-controller"),
            "{out}"
        );
    }
}

/// promtool from the same cache as helm.
fn promtool() -> Option<PathBuf> {
    let p = std::env::var_os("BR_PROMTOOL")
        .map(PathBuf::from)
        .or_else(|| helm().map(|h| h.with_file_name("promtool")))?;
    p.exists().then_some(p)
}

#[test]
fn alerts_pass_promtool_and_fire_and_monitoring_renders_the_same() {
    let (Some(helm), Some(promtool)) = (helm(), promtool()) else {
        return;
    };
    let rules = root().join("deploy/monitoring/rules.yaml");
    let check = run(Command::new(&promtool).args(["check", "rules"]).arg(&rules));
    assert!(check.contains("SUCCESS: 5 rules found"), "{check}");
    // Each alert fires on its sample series (and only there): deploy/monitoring/rules-test.yaml.
    let test = run(Command::new(&promtool)
        .args(["test", "rules"])
        .arg(root().join("deploy/monitoring/rules-test.yaml")));
    assert!(test.contains("SUCCESS"), "{test}");
    let tests = std::fs::read_to_string(root().join("deploy/monitoring/rules-test.yaml")).unwrap();
    for alert in [
        "BackupRepoNotReady",
        "BackupRepoScopedKeysFailing",
        "BackupRepoUsageHigh",
        "BackupRepoReplicationFailing",
        "BackupRepoNoLeader",
    ] {
        assert!(
            tests.contains(&format!(
                "alertname: {alert}\n        exp_alerts:\n          - exp_labels"
            )),
            "{alert} has no firing test"
        );
    }

    // The chart with monitoring.enabled renders what `install --print` renders with it, and
    // `--monitoring` is the same as the value.
    let on = same(&helm, "monitoring:\n  enabled: true\n", "backuprepo-system");
    let rule = &on["PrometheusRule/backuprepo-controller"];
    let groups: Value = serde_yaml_ng::from_str(&std::fs::read_to_string(&rules).unwrap()).unwrap();
    assert_eq!(rule["spec"]["groups"], groups["groups"]);
    let cm = &on["ConfigMap/backuprepo-controller-dashboard"];
    assert_eq!(cm["metadata"]["labels"]["grafana_dashboard"], "1");
    let dashboard: Value =
        serde_json::from_str(cm["data"]["backuprepo.json"].as_str().unwrap()).unwrap();
    let committed: Value = serde_json::from_str(
        &std::fs::read_to_string(root().join("deploy/monitoring/dashboard.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(dashboard, committed);
    let flag = run(Command::new(env!("CARGO_BIN_EXE_backuprepo")).args([
        "install",
        "--print",
        "--monitoring",
    ]));
    assert_eq!(
        objects(&flag).keys().collect::<Vec<_>>(),
        on.keys().collect::<Vec<_>>()
    );
    let off = same(&helm, "", "backuprepo-system");
    assert!(!off.keys().any(|k| k.starts_with("PrometheusRule/")));
}
