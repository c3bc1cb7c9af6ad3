//! Server-side apply for `apply -f` and `install`: every object as the user declares it
//! (server-owned fields dropped), kubectl's created/configured/unchanged lines.

use std::time::Instant;

use anyhow::{bail, Result};
use backuprepo_api::Document;
use backuprepo_core::manifests::{self, verb};
use backuprepo_core::store::{Applied, InstallRequest, RepoStore};
use kube::api::{ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams};
use kube::Api;
use serde_json::{json, Value};

use super::{api_err, KubeStore, FIELD_MANAGER};

/// The API resource of a kind we write, and whether it is namespaced.
pub fn resource_for(api_version: &str, kind: &str) -> Result<(ApiResource, bool)> {
    let (plural, namespaced) = match kind {
        "Namespace" => ("namespaces", false),
        "CustomResourceDefinition" => ("customresourcedefinitions", false),
        "StorageProvider" => ("storageproviders", false),
        "BackupRepo" => ("backuprepos", false),
        "ClusterRole" => ("clusterroles", false),
        "ClusterRoleBinding" => ("clusterrolebindings", false),
        "ValidatingAdmissionPolicy" => ("validatingadmissionpolicies", false),
        "ValidatingAdmissionPolicyBinding" => ("validatingadmissionpolicybindings", false),
        "ServiceAccount" => ("serviceaccounts", true),
        "Role" => ("roles", true),
        "RoleBinding" => ("rolebindings", true),
        "Deployment" => ("deployments", true),
        "NetworkPolicy" => ("networkpolicies", true),
        "Service" => ("services", true),
        "Secret" => ("secrets", true),
        "ConfigMap" => ("configmaps", true),
        other => bail!("cannot apply a {other}: not a kind backuprepo installs"),
    };
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    let gvk = GroupVersionKind::gvk(group, version, kind);
    Ok((ApiResource::from_gvk_with_plural(&gvk, plural), namespaced))
}

/// One object to server-side apply: what the user declares, without server-owned fields.
struct Object {
    value: Value,
    api: Api<DynamicObject>,
    label: String,
    name: String,
}

fn object(store: &KubeStore, mut value: Value) -> Result<Object> {
    let api_version = value["apiVersion"].as_str().unwrap_or_default().to_string();
    let kind = value["kind"].as_str().unwrap_or_default().to_string();
    let (ar, namespaced) = resource_for(&api_version, &kind)?;
    if let Some(obj) = value.as_object_mut() {
        obj.remove("status");
    }
    if let Some(meta) = value["metadata"].as_object_mut() {
        for k in [
            "resourceVersion",
            "uid",
            "creationTimestamp",
            "managedFields",
            "generation",
        ] {
            meta.remove(k);
        }
    }
    let name = value["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    if name.is_empty() {
        bail!("a {kind} has no metadata.name");
    }
    let api = if namespaced {
        let ns = match value["metadata"]["namespace"].as_str() {
            Some(ns) => ns.to_string(),
            None => {
                let ns = store.client.default_namespace().to_string();
                value["metadata"]["namespace"] = json!(ns);
                ns
            }
        };
        Api::namespaced_with(store.client.clone(), &ns, &ar)
    } else {
        Api::all_with(store.client.clone(), &ar)
    };
    let label = if ar.group.is_empty() {
        format!("{}/{name}", kind.to_ascii_lowercase())
    } else {
        format!("{}.{}/{name}", kind.to_ascii_lowercase(), ar.group)
    };
    Ok(Object {
        value,
        api,
        label,
        name,
    })
}

/// Server-side apply every object, and with `dry_run_first`, all of them as a dry run before
/// (a refusal of any leaves the cluster as it was). Adds kubectl's lines to `out`.
async fn apply_all(objects: &[Object], dry_run_first: bool, out: &mut Applied) -> Result<()> {
    let mut before = Vec::new();
    for o in objects {
        let old = o
            .api
            .get_opt(&o.name)
            .await
            .map_err(api_err(format!("get {}", o.label)))?;
        before.push(old.and_then(|o| o.metadata.resource_version));
    }
    let dry = PatchParams::apply(FIELD_MANAGER).force().dry_run();
    for o in objects.iter().filter(|_| dry_run_first) {
        o.api
            .patch(&o.name, &dry, &Patch::Apply(&o.value))
            .await
            .map_err(api_err(format!(
                "apply {} (dry run; nothing was changed)",
                o.label
            )))?;
    }
    let params = PatchParams::apply(FIELD_MANAGER).force();
    for (o, old) in objects.iter().zip(before) {
        let new = o
            .api
            .patch(&o.name, &params, &Patch::Apply(&o.value))
            .await
            .map_err(api_err(format!("apply {}", o.label)))?;
        let same = old.is_some() && old == new.metadata.resource_version;
        out.lines
            .push(format!("{} {}", o.label, verb(old.is_some(), same)));
    }
    Ok(())
}

/// `apply -f`: the checks against the cluster's repositories, then a server-side apply of
/// Secrets, providers and repositories in that order.
pub(super) async fn documents(store: &KubeStore, docs: Vec<Document>) -> Result<Applied> {
    let existing = store.repos().await?;
    manifests::check_against(&existing, &docs)?;
    let mut objects = Vec::new();
    for rank in 0..3 {
        for d in &docs {
            let v = match (rank, d) {
                (0, Document::Secret(s)) => serde_json::to_value(s)?,
                (1, Document::StorageProvider(p)) => serde_json::to_value(p)?,
                (2, Document::BackupRepo(r)) => serde_json::to_value(r)?,
                _ => continue,
            };
            objects.push(object(store, v)?);
        }
    }
    let mut out = Applied::default();
    apply_all(&objects, true, &mut out).await?;
    Ok(out)
}

/// `install` on a cluster: the CRDs, then (once they are Established) everything else of
/// `install --print`, by server-side apply.
pub(super) async fn install(store: &KubeStore, request: InstallRequest) -> Result<Applied> {
    let opts = install_options(&store.namespace, request);
    let values = backuprepo_deploy::install_manifests(&opts)?;
    let (crds, rest): (Vec<Value>, Vec<Value>) = values
        .into_iter()
        .partition(|v| v["kind"] == "CustomResourceDefinition");
    let crds: Vec<Object> = crds
        .into_iter()
        .map(|v| object(store, v))
        .collect::<Result<_>>()?;
    let rest: Vec<Object> = rest
        .into_iter()
        .map(|v| object(store, v))
        .collect::<Result<_>>()?;
    let mut out = Applied::default();
    // The namespace is created by this apply: a dry run of what goes in it would fail.
    apply_all(&crds, false, &mut out).await?;
    let deadline = Instant::now() + store.wait;
    for crd in &crds {
        loop {
            let obj = crd
                .api
                .get(&crd.name)
                .await
                .map_err(api_err(format!("get {}", crd.label)))?;
            let established = obj.data["status"]["conditions"]
                .as_array()
                .is_some_and(|cs| {
                    cs.iter()
                        .any(|c| c["type"] == "Established" && c["status"] == "True")
                });
            if established {
                break;
            }
            if Instant::now() >= deadline {
                bail!(
                    "{} is not Established after {}s; see `kubectl describe crd {}`",
                    crd.label,
                    store.wait.as_secs(),
                    crd.name
                );
            }
            tokio::time::sleep(store.poll).await;
        }
    }
    // A new admission policy (and one of a restarted API server) refuses every BackupRepo until
    // the API server has resolved its parameter kind: wait for that before the values file's
    // repository, and before handing the cluster to the user.
    let (repos, others): (Vec<Object>, Vec<Object>) = rest
        .into_iter()
        .partition(|o| o.value["kind"] == "BackupRepo");
    apply_all(&others, false, &mut out).await?;
    wait_admission_ready(store, deadline).await?;
    apply_all(&repos, false, &mut out).await?;
    Ok(out)
}

/// Whether an API server's refusal is its admission policy not being configured yet (seen on
/// a real kube-apiserver for up to half a minute after the policy is created or the API server
/// restarts), rather than the policy's verdict.
pub fn admission_not_ready(message: &str) -> bool {
    message.contains("not yet synced to use for admission")
        || message.contains("failed to configure policy")
        || message.contains("failed to configure binding")
}

/// Wait until the API server admits a BackupRepo (a server-side dry run of a probe object).
async fn wait_admission_ready(store: &KubeStore, deadline: Instant) -> Result<()> {
    let probe = object(
        store,
        json!({
            "apiVersion": "dataprotection.kubeblocks.io/v1alpha1",
            "kind": "BackupRepo",
            "metadata": {"name": "backuprepo-install-admission-probe"},
            "spec": {"storageProviderRef": "s3", "pvReclaimPolicy": "Retain", "accessMethod": "Tool"}
        }),
    )?;
    let dry = PatchParams::apply(FIELD_MANAGER).force().dry_run();
    loop {
        match probe
            .api
            .patch(&probe.name, &dry, &Patch::Apply(&probe.value))
            .await
        {
            Ok(_) => return Ok(()),
            Err(kube::Error::Api(e)) if admission_not_ready(&e.message) => {
                if Instant::now() >= deadline {
                    bail!(
                        "the admission policy backuprepo-single-default is not ready after {}s ({}); see `kubectl get validatingadmissionpolicy backuprepo-single-default -o yaml`",
                        store.wait.as_secs(),
                        e.message
                    );
                }
                tokio::time::sleep(store.poll).await;
            }
            Err(e) => {
                return Err(api_err(
                    "check that BackupRepos are admitted (dry run)".to_string(),
                )(e))
            }
        }
    }
}

/// The options of an install: the request over the defaults, the store's namespace when the
/// request names none.
pub fn install_options(
    namespace: &str,
    request: InstallRequest,
) -> backuprepo_deploy::InstallOptions {
    let mut opts = backuprepo_deploy::InstallOptions {
        namespace: namespace.to_string(),
        ..Default::default()
    };
    if let Some(ns) = request.namespace {
        opts.namespace = ns;
    }
    opts.image = request.image;
    opts.values = request.values;
    opts.allowed_namespaces = request.allowed_namespaces;
    opts.monitoring = request.monitoring;
    opts
}
