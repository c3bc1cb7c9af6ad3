#![allow(clippy::unwrap_used, clippy::expect_used)]
//! What `backuprepo install` prints: every object deserialises into its typed Kubernetes struct
//! with nothing lost, in apply order, with least-privilege RBAC, a hardened Deployment and the
//! single-default admission policy.

use std::collections::BTreeMap;

use backuprepo_api::constants::IS_DEFAULT_REPO_ANNOTATION;
use backuprepo_api::{AccessMethod, BackupRepo, PvReclaimPolicy, StorageProvider};
use backuprepo_deploy::{
    crds, crds_yaml, install_manifests, install_yaml, DeployError, InstallOptions,
    ADMISSION_POLICY_NAME, CONTROLLER_NAME, SINGLE_DEFAULT_EXPRESSION, VALUES_REPO_NAME,
    VALUES_SECRET_NAME,
};
use k8s_openapi::api::admissionregistration::v1::{
    ValidatingAdmissionPolicy, ValidatingAdmissionPolicyBinding,
};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, Secret, ServiceAccount};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// The seed's values file (`None` when `../shared` is absent).
fn seed_values() -> Option<String> {
    backuprepo_fixtures::seed_values()
}

fn with_seed() -> Option<InstallOptions> {
    Some(InstallOptions {
        values: Some(seed_values()?),
        ..InstallOptions::default()
    })
}

/// Deserialises `v` into `T` and checks that serialising it again gives `v` back: no unknown
/// field was dropped, no value changed.
fn roundtrip<T: DeserializeOwned + Serialize>(v: &Value) -> T {
    let typed: T = serde_json::from_value(v.clone()).unwrap_or_else(|e| {
        panic!(
            "{} does not deserialise into {}: {e}",
            name(v),
            std::any::type_name::<T>()
        )
    });
    let again = serde_json::to_value(&typed).unwrap();
    assert_eq!(
        again,
        *v,
        "{} changes through {}",
        name(v),
        std::any::type_name::<T>()
    );
    typed
}

fn name(v: &Value) -> String {
    format!(
        "{}/{}",
        v["kind"].as_str().unwrap_or("?"),
        v["metadata"]["name"].as_str().unwrap_or("?")
    )
}

/// Checks each object against its typed struct; returns the kinds in order.
fn check_typed(objects: &[Value]) -> Vec<String> {
    let mut kinds = Vec::new();
    for v in objects {
        let kind = v["kind"].as_str().unwrap().to_owned();
        let api = v["apiVersion"].as_str().unwrap();
        match (api, kind.as_str()) {
            ("v1", "Namespace") => drop(roundtrip::<Namespace>(v)),
            ("apiextensions.k8s.io/v1", "CustomResourceDefinition") => {
                drop(roundtrip::<CustomResourceDefinition>(v))
            }
            ("dataprotection.kubeblocks.io/v1alpha1", "StorageProvider") => {
                drop(roundtrip::<StorageProvider>(v))
            }
            ("v1", "ServiceAccount") => drop(roundtrip::<ServiceAccount>(v)),
            ("rbac.authorization.k8s.io/v1", "ClusterRole") => drop(roundtrip::<ClusterRole>(v)),
            ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding") => {
                drop(roundtrip::<ClusterRoleBinding>(v))
            }
            ("rbac.authorization.k8s.io/v1", "Role") => drop(roundtrip::<Role>(v)),
            ("rbac.authorization.k8s.io/v1", "RoleBinding") => drop(roundtrip::<RoleBinding>(v)),
            ("apps/v1", "Deployment") => drop(roundtrip::<Deployment>(v)),
            ("networking.k8s.io/v1", "NetworkPolicy") => {
                drop(roundtrip::<k8s_openapi::api::networking::v1::NetworkPolicy>(v))
            }
            ("admissionregistration.k8s.io/v1", "ValidatingAdmissionPolicy") => {
                drop(roundtrip::<ValidatingAdmissionPolicy>(v))
            }
            ("admissionregistration.k8s.io/v1", "ValidatingAdmissionPolicyBinding") => {
                drop(roundtrip::<ValidatingAdmissionPolicyBinding>(v))
            }
            ("v1", "Secret") => drop(roundtrip::<Secret>(v)),
            ("dataprotection.kubeblocks.io/v1alpha1", "BackupRepo") => {
                drop(roundtrip::<BackupRepo>(v))
            }
            other => panic!("unexpected object {other:?} ({})", name(v)),
        }
        kinds.push(kind);
    }
    kinds
}

/// The documents of a YAML stream as JSON values.
fn parse_stream(text: &str) -> Vec<Value> {
    serde_yaml_ng::Deserializer::from_str(text)
        .map(|d| Value::deserialize(d).unwrap())
        .collect()
}

fn find<'a>(objects: &'a [Value], kind: &str, name: &str) -> &'a Value {
    objects
        .iter()
        .find(|v| v["kind"] == kind && v["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind}/{name}"))
}

const BASE_ORDER: &[&str] = &[
    "Namespace",
    "CustomResourceDefinition",
    "CustomResourceDefinition",
    "StorageProvider",
    "StorageProvider",
    "StorageProvider",
    "StorageProvider",
    "StorageProvider",
    "StorageProvider",
    "StorageProvider",
    "StorageProvider",
    "StorageProvider",
    "StorageProvider",
    "StorageProvider",
    "ServiceAccount",
    "ClusterRole",
    "ClusterRoleBinding",
    "Role",
    "RoleBinding",
    "Deployment",
    "NetworkPolicy",
    "ValidatingAdmissionPolicy",
    "ValidatingAdmissionPolicyBinding",
];

#[test]
fn every_object_deserialises_into_its_typed_struct() {
    let objects = install_manifests(&InstallOptions::default()).unwrap();
    assert_eq!(check_typed(&objects), BASE_ORDER);

    let Some(seed) = with_seed() else {
        return;
    };
    let seeded = install_manifests(&seed).unwrap();
    let mut order: Vec<&str> = BASE_ORDER.to_vec();
    order.extend(["Secret", "BackupRepo"]);
    assert_eq!(check_typed(&seeded), order);
    assert_eq!(seeded[..objects.len()], objects[..]);
}

#[test]
fn printed_yaml_parses_back_to_the_same_objects() {
    for opts in [Some(InstallOptions::default()), with_seed()]
        .into_iter()
        .flatten()
    {
        let text = install_yaml(&opts).unwrap();
        let parsed = parse_stream(&text);
        assert_eq!(parsed, install_manifests(&opts).unwrap());
        check_typed(&parsed);
    }
    let parsed = parse_stream(&crds_yaml());
    assert_eq!(parsed.len(), 2);
    for (p, crd) in parsed.iter().zip(crds()) {
        assert_eq!(*p, serde_json::to_value(crd).unwrap());
        check_typed(std::slice::from_ref(p));
    }
}

#[test]
fn crds_follow_spec_section_1() {
    let crds: Vec<Value> = crds()
        .into_iter()
        .map(|c| serde_json::to_value(c).unwrap())
        .collect();
    assert_eq!(crds.len(), 2);
    for crd in &crds {
        assert_eq!(crd["spec"]["group"], "dataprotection.kubeblocks.io");
        assert_eq!(crd["spec"]["scope"], "Cluster");
        assert_eq!(crd["spec"]["names"]["categories"], json!(["kubeblocks"]));
        let versions = crd["spec"]["versions"].as_array().unwrap();
        assert_eq!(versions.len(), 1);
        assert_eq!(versions[0]["name"], "v1alpha1");
        assert_eq!(versions[0]["served"], true);
        assert_eq!(versions[0]["storage"], true);
        assert_eq!(versions[0]["subresources"]["status"], json!({}));
    }

    let repo = &crds[0];
    assert_eq!(
        repo["metadata"]["name"],
        "backuprepos.dataprotection.kubeblocks.io"
    );
    assert_eq!(repo["spec"]["names"]["kind"], "BackupRepo");
    assert_eq!(repo["spec"]["names"]["plural"], "backuprepos");
    assert_eq!(repo["spec"]["names"]["singular"], "backuprepo");
    let v = &repo["spec"]["versions"][0];
    let columns: Vec<(&str, &str, &str)> = v["additionalPrinterColumns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["name"].as_str().unwrap(),
                c["type"].as_str().unwrap(),
                c["jsonPath"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        columns,
        [
            ("STATUS", "string", ".status.phase"),
            ("STORAGEPROVIDER", "string", ".spec.storageProviderRef"),
            ("ACCESSMETHOD", "string", ".spec.accessMethod"),
            ("DEFAULT", "boolean", ".status.isDefault"),
            ("AGE", "date", ".metadata.creationTimestamp"),
        ]
    );
    let spec = &v["schema"]["openAPIV3Schema"]["properties"]["spec"];
    let mut required: Vec<&str> = spec["required"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_str().unwrap())
        .collect();
    required.sort_unstable();
    assert_eq!(required, ["pvReclaimPolicy", "storageProviderRef"]);
    let props = &spec["properties"];
    assert_eq!(
        props["storageProviderRef"]["x-kubernetes-validations"],
        json!([{"rule": "self == oldSelf", "message": "StorageProviderRef is immutable"}])
    );
    assert_eq!(props["accessMethod"]["enum"], json!(["Mount", "Tool"]));
    assert_eq!(props["accessMethod"]["default"], "Mount");
    assert_eq!(
        props["pvReclaimPolicy"]["enum"],
        json!(["Delete", "Retain"])
    );
    assert_eq!(props["volumeCapacity"]["x-kubernetes-int-or-string"], true);
    assert_eq!(props["pathPrefix"]["pattern"], "^([a-zA-Z0-9-_]+/?)*$");
    assert_eq!(props["credential"]["x-kubernetes-map-type"], "atomic");
    let status = &v["schema"]["openAPIV3Schema"]["properties"]["status"]["properties"];
    assert_eq!(
        status["phase"]["enum"],
        json!(["PreChecking", "Failed", "Ready", "Deleting"])
    );

    let sp = &crds[1];
    assert_eq!(
        sp["metadata"]["name"],
        "storageproviders.dataprotection.kubeblocks.io"
    );
    assert_eq!(sp["spec"]["names"]["kind"], "StorageProvider");
    let v = &sp["spec"]["versions"][0];
    let names: Vec<&str> = v["additionalPrinterColumns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["STATUS", "CSIDRIVER", "AGE"]);
    let props = &v["schema"]["openAPIV3Schema"]["properties"];
    assert_eq!(
        props["status"]["properties"]["phase"]["enum"],
        json!(["NotReady", "Ready"])
    );
    assert_eq!(
        props["spec"]["properties"]["parametersSchema"]["properties"]["openAPIV3Schema"]
            ["x-kubernetes-preserve-unknown-fields"],
        true
    );
}

#[test]
fn built_in_storage_providers_without_local_or_status() {
    let objects = install_manifests(&InstallOptions::default()).unwrap();
    let providers: Vec<&Value> = objects
        .iter()
        .filter(|v| v["kind"] == "StorageProvider")
        .collect();
    let names: Vec<&str> = providers
        .iter()
        .map(|p| p["metadata"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "azureblob",
            "cos",
            "ftp",
            "gcs-s3comp",
            "minio",
            "nfs",
            "obs",
            "oss",
            "pvc",
            "s3",
            "s3-compatible"
        ]
    );
    for p in providers {
        assert!(p.get("status").is_none(), "{}", name(p));
        let typed: StorageProvider = serde_json::from_value(p.clone()).unwrap();
        assert_eq!(
            typed.spec,
            backuprepo_catalog::builtin::get(typed.name()).unwrap().spec
        );
    }
}

#[test]
fn rbac_is_least_privilege() {
    let objects = install_manifests(&InstallOptions::default()).unwrap();
    let role: ClusterRole =
        serde_json::from_value(find(&objects, "ClusterRole", CONTROLLER_NAME).clone()).unwrap();
    let mut granted: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
    for rule in role.rules.as_deref().unwrap() {
        assert!(rule.non_resource_urls.is_none() && rule.resource_names.is_none());
        for list in [
            rule.api_groups.as_deref().unwrap(),
            rule.resources.as_deref().unwrap(),
            &rule.verbs,
        ] {
            assert!(
                list.iter().all(|s| !s.contains('*')),
                "wildcard in {rule:?}"
            );
        }
        for g in rule.api_groups.as_deref().unwrap() {
            for r in rule.resources.as_deref().unwrap() {
                let e = granted.entry((g.clone(), r.clone())).or_default();
                e.extend(rule.verbs.iter().cloned());
                e.sort();
            }
        }
    }
    let dp = "dataprotection.kubeblocks.io";
    // Exactly what the controller calls across the cluster (crates/operator/tests/rbac.rs
    // checks it against the requests): no batch, no delete on Secrets or StorageClasses, no
    // Pods or Events reads.
    let want: &[(&str, &str, &[&str])] = &[
        (dp, "backuprepos", &["get", "list", "patch", "watch"]),
        (dp, "storageproviders", &["get", "list", "patch", "watch"]),
        (dp, "backuprepos/status", &["patch"]),
        (dp, "storageproviders/status", &["patch"]),
        (dp, "backuprepos/finalizers", &["update"]),
        (dp, "backups", &["list", "patch", "watch"]),
        (dp, "restores", &["list", "patch", "watch"]),
        ("", "secrets", &["create", "get", "list", "patch", "watch"]),
        (
            "",
            "persistentvolumeclaims",
            &["create", "delete", "get", "list", "watch"],
        ),
        ("events.k8s.io", "events", &["create", "patch"]),
        (
            "storage.k8s.io",
            "storageclasses",
            &["create", "get", "list", "watch"],
        ),
        ("storage.k8s.io", "csidrivers", &["get", "list", "watch"]),
    ];
    let want: BTreeMap<(String, String), Vec<String>> = want
        .iter()
        .map(|(g, r, v)| {
            (
                ((*g).to_owned(), (*r).to_owned()),
                v.iter().map(|s| (*s).to_owned()).collect(),
            )
        })
        .collect();
    assert_eq!(granted, want);

    let binding: ClusterRoleBinding =
        serde_json::from_value(find(&objects, "ClusterRoleBinding", CONTROLLER_NAME).clone())
            .unwrap();
    assert_eq!(binding.role_ref.kind, "ClusterRole");
    assert_eq!(binding.role_ref.name, CONTROLLER_NAME);
    let subjects = binding.subjects.unwrap();
    assert_eq!(subjects.len(), 1);
    assert_eq!(subjects[0].kind, "ServiceAccount");
    assert_eq!(subjects[0].name, CONTROLLER_NAME);
    assert_eq!(subjects[0].namespace.as_deref(), Some("backuprepo-system"));
    find(&objects, "ServiceAccount", CONTROLLER_NAME);

    // The namespaced part: a Role in the controller's namespace, bound to its account.
    let role: Role =
        serde_json::from_value(find(&objects, "Role", CONTROLLER_NAME).clone()).unwrap();
    assert_eq!(
        role.metadata.namespace.as_deref(),
        Some("backuprepo-system")
    );
    let rules: Vec<(Vec<String>, Vec<String>, Vec<String>)> = role
        .rules
        .unwrap()
        .into_iter()
        .map(|r| (r.api_groups.unwrap(), r.resources.unwrap(), r.verbs))
        .collect();
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    assert_eq!(
        rules,
        vec![
            (
                s(&["batch"]),
                s(&["jobs"]),
                s(&["get", "list", "watch", "create", "delete"])
            ),
            (s(&[""]), s(&["pods"]), s(&["list"])),
            (s(&[""]), s(&["pods/log"]), s(&["get"])),
            (s(&[""]), s(&["events"]), s(&["list"])),
            // The elector's requests (lease.rs tests): GET, POST (create), PUT (update).
            (
                s(&["coordination.k8s.io"]),
                s(&["leases"]),
                s(&["get", "create", "update"])
            ),
        ]
    );
    let binding: RoleBinding =
        serde_json::from_value(find(&objects, "RoleBinding", CONTROLLER_NAME).clone()).unwrap();
    assert_eq!(
        binding.metadata.namespace.as_deref(),
        Some("backuprepo-system")
    );
    assert_eq!(
        (
            binding.role_ref.kind.as_str(),
            binding.role_ref.name.as_str()
        ),
        ("Role", CONTROLLER_NAME)
    );
    let subjects = binding.subjects.unwrap();
    assert_eq!(subjects[0].name, CONTROLLER_NAME);
    assert_eq!(subjects[0].namespace.as_deref(), Some("backuprepo-system"));
}

#[test]
fn deployment_runs_the_controller_as_non_root() {
    let objects = install_manifests(&InstallOptions::default()).unwrap();
    let d: Deployment =
        serde_json::from_value(find(&objects, "Deployment", CONTROLLER_NAME).clone()).unwrap();
    assert_eq!(d.metadata.namespace.as_deref(), Some("backuprepo-system"));
    let spec = d.spec.unwrap();
    // Two replicas electing a leader through a Lease; each knows its name for the Lease.
    assert_eq!(spec.replicas, Some(2));
    let template_labels = spec.template.metadata.unwrap().labels.unwrap();
    for (k, v) in spec.selector.match_labels.unwrap() {
        assert_eq!(template_labels.get(&k), Some(&v), "selector {k}");
    }
    let pod = spec.template.spec.unwrap();
    assert_eq!(pod.service_account_name.as_deref(), Some(CONTROLLER_NAME));
    let psc = pod.security_context.unwrap();
    assert_eq!(psc.run_as_non_root, Some(true));
    assert!(psc.run_as_user.unwrap() > 0);
    assert_eq!(psc.seccomp_profile.unwrap().type_, "RuntimeDefault");
    assert_eq!(pod.containers.len(), 1);
    let c = &pod.containers[0];
    assert_eq!(
        c.image.as_deref(),
        Some(format!("backuprepo:{}", env!("CARGO_PKG_VERSION")).as_str())
    );
    assert_eq!(c.args.as_deref(), Some(&["controller".to_owned()][..]));
    assert!(c.command.is_none(), "the image's entrypoint is the binary");
    let env = c.env.as_deref().unwrap();
    let pod_ns = env.iter().find(|e| e.name == "POD_NAMESPACE").unwrap();
    assert_eq!(
        pod_ns
            .value_from
            .as_ref()
            .unwrap()
            .field_ref
            .as_ref()
            .unwrap()
            .field_path,
        "metadata.namespace"
    );
    let ports: Vec<_> = c
        .ports
        .as_deref()
        .unwrap()
        .iter()
        .map(|p| (p.name.as_deref(), p.container_port))
        .collect();
    assert_eq!(ports, [(Some("metrics"), 8080), (Some("health"), 8081)]);
    // The probes have a listener of their own: metrics clients cannot starve them.
    for probe in [&c.liveness_probe, &c.readiness_probe] {
        let get = probe.as_ref().unwrap().http_get.as_ref().unwrap();
        assert_eq!(get.path.as_deref(), Some("/healthz"));
        assert_eq!(
            serde_json::to_value(&get.port).unwrap(),
            json!(8081),
            "probe port"
        );
    }
    let sc = c.security_context.as_ref().unwrap();
    assert_eq!(sc.run_as_non_root, Some(true));
    assert_eq!(sc.read_only_root_filesystem, Some(true));
    assert_eq!(sc.allow_privilege_escalation, Some(false));
    assert_eq!(
        sc.capabilities.as_ref().unwrap().drop.as_deref(),
        Some(&["ALL".to_owned()][..])
    );
    assert!(sc.capabilities.as_ref().unwrap().add.is_none());
    assert_eq!(sc.privileged, None);
    let res = c.resources.as_ref().unwrap();
    for key in ["cpu", "memory"] {
        assert!(res.requests.as_ref().unwrap().contains_key(key));
        assert!(res.limits.as_ref().unwrap().contains_key(key));
    }
}

#[test]
fn admission_policy_uses_every_backup_repo_as_a_parameter() {
    let objects = install_manifests(&InstallOptions::default()).unwrap();
    let policy: ValidatingAdmissionPolicy = serde_json::from_value(
        find(&objects, "ValidatingAdmissionPolicy", ADMISSION_POLICY_NAME).clone(),
    )
    .unwrap();
    let spec = policy.spec.unwrap();
    let pk = spec.param_kind.unwrap();
    assert_eq!(
        pk.api_version.as_deref(),
        Some("dataprotection.kubeblocks.io/v1alpha1")
    );
    assert_eq!(pk.kind.as_deref(), Some("BackupRepo"));
    let rules = spec.match_constraints.unwrap().resource_rules.unwrap();
    assert_eq!(rules.len(), 1);
    assert_eq!(
        rules[0].api_groups.as_deref(),
        Some(&["dataprotection.kubeblocks.io".to_owned()][..])
    );
    assert_eq!(
        rules[0].resources.as_deref(),
        Some(&["backuprepos".to_owned()][..])
    );
    assert_eq!(
        rules[0].operations.as_deref(),
        Some(&["CREATE".to_owned(), "UPDATE".to_owned()][..])
    );
    let validations = spec.validations.unwrap();
    // The single default, and no read-only default (cel.rs evaluates both).
    assert_eq!(validations.len(), 2);
    assert_eq!(validations[0].expression, SINGLE_DEFAULT_EXPRESSION);
    assert!(validations[1]
        .message
        .as_deref()
        .unwrap()
        .contains("backuprepo.io/read-only"));
    let message = validations[0].message.as_deref().unwrap();
    assert!(message.contains(IS_DEFAULT_REPO_ANNOTATION), "{message}");
    assert!(
        message.contains("unset the other default first"),
        "{message}"
    );
    assert!(SINGLE_DEFAULT_EXPRESSION.contains(IS_DEFAULT_REPO_ANNOTATION));

    let binding: ValidatingAdmissionPolicyBinding = serde_json::from_value(
        find(
            &objects,
            "ValidatingAdmissionPolicyBinding",
            ADMISSION_POLICY_NAME,
        )
        .clone(),
    )
    .unwrap();
    let b = binding.spec.unwrap();
    assert_eq!(b.policy_name.as_deref(), Some(ADMISSION_POLICY_NAME));
    assert_eq!(
        b.validation_actions.as_deref(),
        Some(&["Deny".to_owned()][..])
    );
    let param_ref = b.param_ref.unwrap();
    assert_eq!(
        param_ref.parameter_not_found_action.as_deref(),
        Some("Allow")
    );
    assert!(param_ref.name.is_none() && param_ref.namespace.is_none());
    assert_eq!(
        serde_json::to_value(param_ref.selector.unwrap()).unwrap(),
        json!({})
    );
}

#[test]
fn seed_values_add_the_charts_secret_and_default_repo() {
    let (Some(values), Some(seed)) = (seed_values(), with_seed()) else {
        return;
    };
    let objects = install_manifests(&seed).unwrap();
    let secret: Secret =
        serde_json::from_value(find(&objects, "Secret", VALUES_SECRET_NAME).clone()).unwrap();
    assert_eq!(
        secret.metadata.namespace.as_deref(),
        Some("backuprepo-system")
    );
    let data = secret.string_data.unwrap();
    assert_eq!(
        data.keys().collect::<Vec<_>>(),
        ["accessKeyId", "secretAccessKey"]
    );
    let repo: BackupRepo =
        serde_json::from_value(find(&objects, "BackupRepo", VALUES_REPO_NAME).clone()).unwrap();
    assert!(repo.is_default());
    assert_eq!(repo.spec.storage_provider_ref, "s3");
    assert_eq!(repo.spec.access_method, Some(AccessMethod::Tool));
    assert_eq!(repo.spec.pv_reclaim_policy, PvReclaimPolicy::Retain);
    assert_eq!(repo.spec.volume_capacity.as_ref().unwrap().0, "100Gi");
    assert_eq!(repo.spec.config["region"], "cn-northwest-1");
    assert_eq!(repo.spec.config["bucket"], "test-kb-backup");
    let cred = repo.spec.credential.as_ref().unwrap();
    assert_eq!(cred.name.as_deref(), Some(VALUES_SECRET_NAME));
    assert_eq!(cred.namespace.as_deref(), Some("backuprepo-system"));
    assert!(repo.status.is_none());

    // create: false adds nothing.
    let off = InstallOptions {
        values: Some(values.replace("create: true", "create: false")),
        ..InstallOptions::default()
    };
    assert_eq!(
        install_manifests(&off).unwrap(),
        install_manifests(&InstallOptions::default()).unwrap()
    );
}

#[test]
fn options_reach_every_object() {
    let opts = InstallOptions {
        namespace: "kb-system".into(),
        image: Some("registry.example/backuprepo:9.9.9".into()),
        values: seed_values(),
        allowed_namespaces: Some("team-a, team-b".into()),
        monitoring: false,
    };
    let objects = install_manifests(&opts).unwrap();
    assert_eq!(objects[0]["metadata"]["name"], "kb-system");
    for v in &objects {
        if let Some(ns) = v["metadata"].get("namespace") {
            assert_eq!(ns, "kb-system", "{}", name(v));
        }
    }
    let d = find(&objects, "Deployment", CONTROLLER_NAME);
    assert_eq!(
        d["spec"]["template"]["spec"]["containers"][0]["image"],
        "registry.example/backuprepo:9.9.9"
    );
    let env = &d["spec"]["template"]["spec"]["containers"][0]["env"];
    let value = |name: &str| {
        env.as_array()
            .unwrap()
            .iter()
            .find(|e| e["name"] == name)
            .map(|e| e["value"].clone())
    };
    assert_eq!(
        value("BACKUPREPO_ALLOWED_NAMESPACES").unwrap(),
        "team-a, team-b"
    );
    // Scoped keys wherever the storage allows them, by default.
    assert_eq!(value("BACKUPREPO_SCOPED_CREDENTIALS").unwrap(), "auto");
    assert_eq!(
        find(&objects, "ClusterRoleBinding", CONTROLLER_NAME)["subjects"][0]["namespace"],
        "kb-system"
    );
    if opts.values.is_some() {
        assert_eq!(
            find(&objects, "BackupRepo", VALUES_REPO_NAME)["spec"]["credential"]["namespace"],
            "kb-system"
        );
    }
}

#[test]
fn bad_options_and_values_are_refused_with_the_field_named() {
    let bad_ns = InstallOptions {
        namespace: "Kb_System".into(),
        ..InstallOptions::default()
    };
    assert!(matches!(
        install_manifests(&bad_ns),
        Err(DeployError::Option {
            field: "namespace",
            ..
        })
    ));
    for list in ["", "Team_A", "a,*", "a,,b"] {
        let bad = InstallOptions {
            allowed_namespaces: Some(list.into()),
            ..InstallOptions::default()
        };
        let e = install_manifests(&bad).unwrap_err();
        assert!(
            matches!(
                &e,
                DeployError::Option {
                    field: "allowed-namespaces",
                    ..
                }
            ),
            "{list:?}: {e}"
        );
    }
    let bad_image = InstallOptions {
        image: Some(" ".into()),
        ..InstallOptions::default()
    };
    assert!(matches!(
        install_yaml(&bad_image),
        Err(DeployError::Option { field: "image", .. })
    ));
    let Some(values) = seed_values() else {
        return;
    };
    let bad_values = InstallOptions {
        values: Some(values.replace(
            "storageProvider: s3",
            "storageProvider: s3\n  accessMethod: Both",
        )),
        ..InstallOptions::default()
    };
    let err = install_manifests(&bad_values).unwrap_err().to_string();
    assert!(err.contains("backupRepo.accessMethod"), "{err}");
    assert!(err.contains("Tool or Mount"), "{err}");
}

/// `backuprepo install --print` against the Kubernetes 1.33 schemas, strictly: every built-in
/// kind passes (our own kinds have no schema there; their CRDs are tested above).
#[test]
fn install_manifests_pass_kubernetes_validate_strict() {
    let opts = with_seed().unwrap_or_default();
    let seeded = opts.values.is_some();
    let text = backuprepo_deploy::install_yaml(&opts).unwrap();
    let Some(out) = backuprepo_kube_mock::kubernetes_validate(&text) else {
        return;
    };
    for object in [
        "namespace/backuprepo-system",
        "serviceaccount/backuprepo-controller",
        "clusterrole/backuprepo-controller",
        "clusterrolebinding/backuprepo-controller",
        "role/backuprepo-controller",
        "rolebinding/backuprepo-controller",
        "deployment/backuprepo-controller",
        "validatingadmissionpolicy/backuprepo-single-default",
        if seeded { "secret/" } else { "namespace/" },
    ] {
        assert!(
            out.contains(&format!("passed for resource {object}")),
            "{object} not validated:\n{out}"
        );
    }
}

/// The metrics port admits only namespaces labelled for it; the health port admits the
/// kubelet's probes from anywhere; the policy selects the controller's pods (and only them).
#[test]
fn the_network_policy_admits_only_labelled_namespaces_to_the_metrics_port() {
    let objects = install_manifests(&InstallOptions::default()).unwrap();
    let np = find(&objects, "NetworkPolicy", CONTROLLER_NAME);
    let d = find(&objects, "Deployment", CONTROLLER_NAME);
    assert_eq!(
        np["spec"]["podSelector"]["matchLabels"], d["spec"]["selector"]["matchLabels"],
        "selects the controller's pods"
    );
    assert_eq!(np["spec"]["policyTypes"], json!(["Ingress"]));
    let rules = np["spec"]["ingress"].as_array().unwrap();
    let rule = |port: i64| {
        rules
            .iter()
            .find(|r| r["ports"][0]["port"] == port)
            .unwrap_or_else(|| panic!("no rule for {port}: {np}"))
    };
    assert!(rule(8081).get("from").is_none(), "health from anywhere");
    assert_eq!(
        rule(8080)["from"],
        json!([{"namespaceSelector": {"matchLabels": {"backuprepo.io/metrics": "allow"}}}])
    );
    assert_eq!(rules.len(), 2, "nothing else admitted: {np}");
}
