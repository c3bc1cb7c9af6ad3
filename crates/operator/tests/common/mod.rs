//! What the operator's tests share: the scripted API server of `backuprepo-kube-mock`, a fixed
//! clock and name suffix, and the objects the scenarios start from.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use backuprepo_api::constants::FINALIZER;
use backuprepo_api::{BackupRepo, StorageProvider};
pub use backuprepo_kube_mock::*;
use backuprepo_operator::{Context, OperatorConfig};
use k8s_openapi::api::rbac::v1::PolicyRule;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::Client;
use serde_json::{json, Value};

pub const NOW: i64 = 1_700_000_000;
pub const SUFFIX: &str = "abcdef";
pub const REPO_PATH: &str = "/apis/dataprotection.kubeblocks.io/v1alpha1/backuprepos";
pub const SP_PATH: &str = "/apis/dataprotection.kubeblocks.io/v1alpha1/storageproviders";
pub const EVENTS_DEFAULT: &str = "/apis/events.k8s.io/v1/namespaces/default/events";

pub fn now() -> Time {
    Time(Timestamp::from_second(NOW).unwrap())
}

pub fn at(secs: i64) -> Time {
    Time(Timestamp::from_second(secs).unwrap())
}

/// The defaults: namespace `kb-system`, re-checks every 30 min (Ready) and 1 min (Failed);
/// credentials may come from any namespace (the scenarios keep them in `ns0`; `hardening.rs`
/// tests the default restriction).
/// The settings of KubeBlocks' behaviour, which these request-by-request tests pin: keys
/// are not scoped unless a repository asks (`auto`, the default, is proven on the real API
/// server by the cluster tests).
pub fn config() -> OperatorConfig {
    let mut c = OperatorConfig {
        credential_namespaces: None,
        ..OperatorConfig::default()
    };
    c.scoping.by_default = backuprepo_core::key_mode::Setting::Off;
    c
}

pub fn context(client: Client) -> Arc<Context> {
    context_with(client, config())
}

/// As [`context`], with the given settings.
pub fn context_with(client: Client, config: OperatorConfig) -> Arc<Context> {
    Arc::new(
        Context::new(client, config)
            .with_clock(Arc::new(now))
            .with_suffixes(Arc::new(|| SUFFIX.to_string())),
    )
}

/// The operator's settings as the install's Deployment (`backuprepo install --print`) gives
/// them in `namespace`: its env, with the downward-API fields resolved as the kubelet would,
/// plus `extra`.
pub fn install_config(namespace: &str, extra: &[(&str, &str)]) -> OperatorConfig {
    let deployment = backuprepo_deploy::deployment(
        namespace,
        &backuprepo_deploy::ControllerValues {
            image: "backuprepo:test".into(),
            ..Default::default()
        },
    )
    .expect("the default controller values make a Deployment");
    let pod = deployment.spec.unwrap().template.spec.unwrap();
    let mut env: Vec<(String, String)> = Vec::new();
    for e in pod.containers[0].env.clone().unwrap_or_default() {
        let value = match (e.value, e.value_from) {
            (Some(v), _) => v,
            (None, Some(from)) => match from.field_ref.map(|f| f.field_path).as_deref() {
                Some("metadata.namespace") => namespace.to_string(),
                Some("metadata.name") => "backuprepo-controller-0".to_string(),
                other => panic!("the Deployment sets {} from {other:?}", e.name),
            },
            (None, None) => String::new(),
        };
        env.push((e.name, value));
    }
    env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    OperatorConfig::from_lookup(move |k| {
        env.iter()
            .rev()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.clone())
    })
    .unwrap()
}

/// A built-in provider of the catalogue.
pub fn builtin_provider(name: &str) -> StorageProvider {
    backuprepo_catalog::builtin::get(name).unwrap()
}

pub fn local_provider() -> StorageProvider {
    serde_yaml_ng::from_str(include_str!("../../../catalog/providers/local.yaml")).unwrap()
}

pub fn tool_repo(path: &str) -> BackupRepo {
    serde_json::from_value(json!({
        "apiVersion": "dataprotection.kubeblocks.io/v1alpha1",
        "kind": "BackupRepo",
        "metadata": {
            "name": "r1", "uid": "0123456789-uid-r1", "resourceVersion": "1", "generation": 1,
            "finalizers": [FINALIZER]
        },
        "spec": {
            "storageProviderRef": "local", "accessMethod": "Tool", "pvReclaimPolicy": "Retain",
            "config": {"path": path}
        }
    }))
    .unwrap()
}

/// Apply what the reconcile wrote to the repository (status and metadata merge patches).
pub fn apply_writes(repo: &BackupRepo, seen: &[Seen]) -> BackupRepo {
    let mut v = to_value(repo);
    for s in seen {
        if s.method == "PATCH" && s.path.starts_with(&format!("{REPO_PATH}/r1")) {
            let mut body = s.body.clone();
            if let Some(m) = body.get_mut("metadata").and_then(Value::as_object_mut) {
                m.remove("resourceVersion");
            }
            merge(&mut v, &body);
        }
    }
    serde_json::from_value(v).unwrap()
}

pub fn condition<'a>(status: &'a Value, type_: &str) -> &'a Value {
    status["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == type_)
        .unwrap_or_else(|| panic!("no condition {type_} in {status:#}"))
}

pub type Shared<T> = Arc<Mutex<T>>;

/// The plural and scope of the kinds the controller reads and writes.
fn plural(kind: &str) -> (&'static str, bool) {
    match kind {
        "Secret" => ("secrets", true),
        "PersistentVolumeClaim" => ("persistentvolumeclaims", true),
        "Job" => ("jobs", true),
        "Pod" => ("pods", true),
        "Event" => ("events", true),
        "Backup" => ("backups", true),
        "Restore" => ("restores", true),
        "BackupRepo" => ("backuprepos", false),
        "StorageProvider" => ("storageproviders", false),
        "CSIDriver" => ("csidrivers", false),
        "StorageClass" => ("storageclasses", false),
        "Lease" => ("leases", true),
        other => panic!("the world holds no {other}"),
    }
}

/// `(collection in its namespace, collection across namespaces, object path)` of an object.
fn paths_of(o: &Value) -> (String, String, String) {
    let api = o["apiVersion"].as_str().unwrap();
    let base = if api.contains('/') {
        format!("/apis/{api}")
    } else {
        format!("/api/{api}")
    };
    let (plural, namespaced) = plural(o["kind"].as_str().unwrap());
    let name = o["metadata"]["name"].as_str().unwrap();
    let all = format!("{base}/{plural}");
    let own = match o["metadata"]["namespace"].as_str() {
        Some(ns) if namespaced => format!("{base}/namespaces/{ns}/{plural}"),
        _ => all.clone(),
    };
    let path = format!("{own}/{name}");
    (own, all, path)
}

/// Whether the object's labels match an equality selector (`k=v,k2`).
fn selected(o: &Value, query: &str) -> bool {
    let Some(sel) = query
        .split('&')
        .find_map(|kv| kv.strip_prefix("labelSelector="))
    else {
        return true;
    };
    let labels = &o["metadata"]["labels"];
    sel.split(',')
        .filter(|t| !t.is_empty())
        .all(|term| match term.split_once('=') {
            Some((k, v)) => labels[k].as_str() == Some(v),
            None => !labels[term].is_null(),
        })
}

/// An API server holding `objects` (each with apiVersion, kind, metadata), answering by rule
/// (for [`by_rule`]): a GET of an object gives it or 404; a GET of a collection lists the
/// objects in it matching the label selector; a POST is created as sent; a PATCH of an
/// existing object (or its status) answers with it; a DELETE succeeds; pod logs are
/// `logs`. The world does not change: each answer is from the objects given.
pub fn world(objects: Vec<Value>, logs: &str) -> impl Fn(&Seen) -> (u16, Value) + Send + 'static {
    let logs = logs.to_string();
    move |r: &Seen| {
        let p = r.path.as_str();
        let object = |path: &str| objects.iter().find(|o| paths_of(o).2 == path).cloned();
        match r.method.as_str() {
            "GET" if p.ends_with("/log") => (200, Value::String(logs.clone())),
            "GET" => {
                if let Some(o) = object(p) {
                    return (200, o);
                }
                let items: Vec<Value> = objects
                    .iter()
                    .filter(|o| {
                        let (own, all, _) = paths_of(o);
                        (own == p || all == p) && selected(o, &r.query)
                    })
                    .cloned()
                    .collect();
                let last = p.rsplit('/').next().unwrap_or_default();
                let is_collection = [
                    "secrets",
                    "persistentvolumeclaims",
                    "jobs",
                    "pods",
                    "events",
                    "backups",
                    "restores",
                    "backuprepos",
                    "storageproviders",
                    "csidrivers",
                    "storageclasses",
                ]
                .contains(&last);
                if is_collection {
                    (200, list("List", items))
                } else {
                    (404, not_found(p))
                }
            }
            "POST" => (201, r.body.clone()),
            "PUT" => match object(p) {
                Some(_) => (200, r.body.clone()),
                None => (404, not_found(p)),
            },
            "PATCH" => {
                let target = p.strip_suffix("/status").unwrap_or(p);
                match object(target) {
                    Some(o) => (200, o),
                    None => (404, not_found(p)),
                }
            }
            "DELETE" => (
                200,
                json!({"kind": "Status", "apiVersion": "v1", "status": "Success"}),
            ),
            _ => (404, not_found(p)),
        }
    }
}

/// A cluster whose objects change with what the controller writes, for scenarios of several
/// reconciles: each pass answers from the objects by [`world`], then [`Cluster::apply`] takes
/// in the creations and merge patches it logged.
pub struct Cluster {
    pub objects: Vec<Value>,
}

impl Cluster {
    pub fn get(&self, path: &str) -> Option<&Value> {
        self.objects.iter().find(|o| paths_of(o).2 == path)
    }

    pub fn get_mut(&mut self, path: &str) -> Option<&mut Value> {
        self.objects.iter_mut().find(|o| paths_of(o).2 == path)
    }

    /// Put `o` in, replacing the object at its path.
    pub fn put(&mut self, o: Value) {
        let path = paths_of(&o).2;
        self.objects.retain(|x| paths_of(x).2 != path);
        self.objects.push(o);
    }

    pub fn remove(&mut self, path: &str) {
        self.objects.retain(|x| paths_of(x).2 != path);
    }

    /// Take in what a pass wrote: created objects (events aside) and merge patches.
    pub fn apply(&mut self, seen: &[Seen]) {
        for s in seen {
            match s.method.as_str() {
                "POST" if s.body["kind"] != "Event" && s.body["metadata"]["name"].is_string() => {
                    self.put(s.body.clone());
                }
                "PATCH" => {
                    let target = s
                        .path
                        .strip_suffix("/status")
                        .unwrap_or(&s.path)
                        .to_string();
                    let mut body = s.body.clone();
                    if let Some(m) = body.get_mut("metadata").and_then(Value::as_object_mut) {
                        m.remove("resourceVersion");
                    }
                    if let Some(o) = self.get_mut(&target) {
                        merge(o, &body);
                    }
                }
                _ => {}
            }
        }
    }
}

/// One request as RBAC sees it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Access {
    pub group: String,
    pub resource: String,
    pub verb: String,
    /// `None`: cluster-scoped, or across all namespaces.
    pub namespace: Option<String>,
}

pub fn access(r: &Seen) -> Access {
    let segs: Vec<&str> = r.path.trim_start_matches('/').split('/').collect();
    let (group, rest) = match segs[0] {
        "api" => (String::new(), &segs[2..]),
        "apis" => (segs[1].to_string(), &segs[3..]),
        other => panic!("not an API path: {other}"),
    };
    let (namespace, rest) = if rest.first() == Some(&"namespaces") && rest.len() > 2 {
        (Some(rest[1].to_string()), &rest[2..])
    } else {
        (None, rest)
    };
    let resource = match rest {
        [res, _name, sub] => format!("{res}/{sub}"),
        [res, ..] => res.to_string(),
        [] => panic!("no resource in {}", r.path),
    };
    let named = rest.len() >= 2;
    let verb = match (r.method.as_str(), named) {
        ("GET", true) => "get",
        ("GET", false) if r.query.contains("watch=true") => "watch",
        ("GET", false) => "list",
        ("POST", _) => "create",
        ("PATCH", _) => "patch",
        ("PUT", _) => "update",
        ("DELETE", true) => "delete",
        ("DELETE", false) => "deletecollection",
        (m, _) => panic!("unexpected method {m}"),
    };
    Access {
        group,
        resource,
        verb: verb.to_string(),
        namespace,
    }
}

pub fn expand(rules: &[PolicyRule]) -> BTreeSet<(String, String, String)> {
    let mut out = BTreeSet::new();
    for r in rules {
        assert!(r.resource_names.is_none() && r.non_resource_urls.is_none());
        for g in r.api_groups.iter().flatten() {
            for res in r.resources.iter().flatten() {
                for v in &r.verbs {
                    assert!(g != "*" && res != "*" && v != "*", "wildcard in {r:?}");
                    out.insert((g.clone(), res.clone(), v.clone()));
                }
            }
        }
    }
    out
}

/// The requests in `seen` that the install's RBAC (`install --print`: the ClusterRole, and the
/// Role in `namespace`) does not grant.
pub fn refused_by_rbac(seen: &[Seen], namespace: &str) -> Vec<Access> {
    let (cluster, role) = install_rbac(namespace);
    seen.iter()
        .map(access)
        .filter(|a| {
            let key = (a.group.clone(), a.resource.clone(), a.verb.clone());
            !(cluster.contains(&key)
                || a.namespace.as_deref() == Some(namespace) && role.contains(&key))
        })
        .collect()
}

/// The rules of the install's ClusterRole and of its Role in `namespace`, as
/// `(group, resource, verb)`.
pub type Rules = BTreeSet<(String, String, String)>;

pub fn install_rbac(namespace: &str) -> (Rules, Rules) {
    let cluster = expand(
        backuprepo_deploy::cluster_role()
            .rules
            .as_deref()
            .unwrap_or_default(),
    );
    let role = expand(
        backuprepo_deploy::controller_role(namespace)
            .rules
            .as_deref()
            .unwrap_or_default(),
    );
    (cluster, role)
}
