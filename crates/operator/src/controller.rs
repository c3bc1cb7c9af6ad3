//! Wiring: the two controllers, their watches and re-check triggers (spec §2.2), the error
//! policy, and the metrics server.
//!
//! Each watched kind is read through `DeserializeGuard`, so one malformed object is reported
//! (a Warning event, an `invalid` error) instead of failing the watch for every other one.
//! Reconciles of different objects run concurrently, so one slow probe never delays the rest,
//! up to a bound (`BACKUPREPO_MAX_CONCURRENT_RECONCILES`); probes have their own bound.

use std::sync::Arc;

use backuprepo_api::constants::{BACKUP_REPO_NAME_LABEL, GROUP, IS_TOOL_CONFIG_LABEL};
use backuprepo_api::{BackupRepo, StorageProvider};
use futures::{Stream, StreamExt};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ObjectReference, PersistentVolumeClaim, Secret};
use k8s_openapi::api::storage::v1::{CSIDriver, StorageClass};
use kube::api::{DynamicObject, ListParams, PartialObjectMeta};
use kube::core::DeserializeGuard;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Api, Client, Resource, ResourceExt};

use crate::config::OperatorConfig;
use crate::context::Context;
use crate::error::{Error, ErrorClass, Result};
use crate::provider::reconcile_provider;
use crate::repo::reconcile_repo;
use crate::resources::{
    backup_resource, is_active_consumer, restore_resource, waits_for_preparation,
};

type Guarded<K> = DeserializeGuard<K>;

fn invalid_ref<K: Resource<DynamicType = ()>>(meta: &kube::api::ObjectMeta) -> ObjectReference {
    ObjectReference {
        api_version: Some(K::api_version(&()).to_string()),
        kind: Some(K::kind(&()).to_string()),
        name: meta.name.clone(),
        namespace: meta.namespace.clone(),
        uid: meta.uid.clone(),
        ..ObjectReference::default()
    }
}

async fn reconcile_repo_guarded(
    obj: Arc<Guarded<BackupRepo>>,
    ctx: Arc<Context>,
) -> Result<Action> {
    match &obj.0 {
        Ok(repo) => reconcile_repo(ctx, Arc::new(repo.clone())).await,
        Err(invalid) => {
            ctx.event(
                &invalid_ref::<BackupRepo>(&invalid.metadata),
                true,
                "InvalidObject",
                "Reconcile",
                format!(
                    "the object does not match the BackupRepo schema: {}",
                    invalid.error
                ),
            )
            .await;
            Err(Error::Invalid(invalid.error.clone()))
        }
    }
}

async fn reconcile_provider_guarded(
    obj: Arc<Guarded<StorageProvider>>,
    ctx: Arc<Context>,
) -> Result<Action> {
    match &obj.0 {
        Ok(p) => reconcile_provider(ctx, Arc::new(p.clone())).await,
        Err(invalid) => {
            ctx.event(
                &invalid_ref::<StorageProvider>(&invalid.metadata),
                true,
                "InvalidObject",
                "Reconcile",
                format!(
                    "the object does not match the StorageProvider schema: {}",
                    invalid.error
                ),
            )
            .await;
            Err(Error::Invalid(invalid.error.clone()))
        }
    }
}

/// Invalid: wait for the object to change. Transient: exponential backoff per object.
fn policy(controller: &str, name: &str, err: &Error, ctx: &Context) -> Action {
    let class = err.class();
    ctx.metrics.reconcile_error(controller, class);
    tracing::warn!(controller, name, class = class.as_str(), error = %err, "reconcile failed");
    match class {
        ErrorClass::Invalid => Action::await_change(),
        ErrorClass::Transient => Action::requeue(ctx.backoff(&format!("{controller}/{name}"))),
    }
}

/// Repositories whose provider is `provider`.
pub fn repos_for_provider(
    store: &Store<Guarded<BackupRepo>>,
    provider: &str,
) -> Vec<ObjectRef<Guarded<BackupRepo>>> {
    store
        .state()
        .iter()
        .filter_map(|g| g.0.as_ref().ok())
        .filter(|r| r.spec.storage_provider_ref == provider)
        .map(|r| ObjectRef::new(r.name()))
        .collect()
}

/// Repositories a Secret matters to: its controller owner (a tool-config or CSI secret), and
/// every repository using it as its credential.
pub fn repos_for_secret(
    store: &Store<Guarded<BackupRepo>>,
    secret: &kube::api::ObjectMeta,
) -> Vec<ObjectRef<Guarded<BackupRepo>>> {
    let mut out: Vec<ObjectRef<Guarded<BackupRepo>>> = secret
        .owner_references
        .iter()
        .flatten()
        .filter(|o| {
            o.controller == Some(true)
                && o.kind == "BackupRepo"
                && o.api_version.split('/').next() == Some(GROUP)
        })
        .map(|o| ObjectRef::new(&o.name))
        .collect();
    let ns = secret.namespace.as_deref().unwrap_or_default();
    let name = secret.name.as_deref().unwrap_or_default();
    for r in store.state().iter().filter_map(|g| g.0.as_ref().ok()) {
        if r.credential_key()
            .ok()
            .flatten()
            .is_some_and(|(cns, cname)| cname == name && cns == ns)
        {
            out.push(ObjectRef::new(r.name()));
        }
    }
    out
}

/// The repository a Backup/Restore event concerns, when it can change something: the consumer
/// waits for preparation, or (Backups) it is being deleted, which may unblock a deletion.
pub fn repo_for_consumer(
    o: &DynamicObject,
    backup: bool,
) -> Option<ObjectRef<Guarded<BackupRepo>>> {
    let repo = o.labels().get(BACKUP_REPO_NAME_LABEL)?;
    let deleting = backup && o.metadata.deletion_timestamp.is_some();
    (is_active_consumer(o) && (waits_for_preparation(o) || deleting)).then(|| ObjectRef::new(repo))
}

/// The repository a consumer's watch event asks to reconcile: the preparation it waits for or
/// its deletion (as [`repo_for_consumer`]), a consumer gone (its namespace may lose its scoped
/// key now, not at the next periodic pass), and a Restore that ended (the read access it
/// widened is narrowed).
pub fn repo_for_consumer_event(
    event: watcher::Result<watcher::Event<DynamicObject>>,
    backup: bool,
) -> Option<ObjectRef<Guarded<BackupRepo>>> {
    match event {
        Ok(watcher::Event::Apply(o) | watcher::Event::InitApply(o)) => {
            let ended = !backup
                && matches!(
                    o.data["status"]["phase"].as_str(),
                    Some("Completed" | "Failed")
                );
            match repo_for_consumer(&o, backup) {
                Some(r) => Some(r),
                None if ended => o
                    .labels()
                    .get(BACKUP_REPO_NAME_LABEL)
                    .map(|r| ObjectRef::new(r)),
                None => None,
            }
        }
        Ok(watcher::Event::Delete(o)) => o
            .labels()
            .get(BACKUP_REPO_NAME_LABEL)
            .map(|r| ObjectRef::new(r)),
        _ => None,
    }
}

/// At most `max_concurrent_reconciles` objects of one kind are reconciled at once, so a
/// restart with hundreds of repositories queues them instead of holding every one in flight.
fn bounded(ctx: &Context) -> kube::runtime::controller::Config {
    kube::runtime::controller::Config::default().concurrency(ctx.config.max_concurrent_reconciles)
}

async fn crd_installed(client: &Client, ar: &kube::api::ApiResource) -> bool {
    let api: Api<DynamicObject> = Api::all_with(client.clone(), ar);
    api.list(&ListParams::default().limit(1)).await.is_ok()
}

/// The BackupRepo controller stream.
pub async fn repo_controller(ctx: Arc<Context>) -> impl Stream<Item = ()> {
    let client = ctx.client.clone();
    let wc = watcher::Config::default();
    let derived = watcher::Config::default().labels(BACKUP_REPO_NAME_LABEL);
    let ctrl = Controller::new(Api::<Guarded<BackupRepo>>::all(client.clone()), wc.clone())
        .with_config(bounded(&ctx));
    let store = ctrl.store();
    let s = store.clone();
    let mut ctrl = ctrl.watches(
        Api::<Guarded<StorageProvider>>::all(client.clone()),
        wc.clone(),
        move |p| repos_for_provider(&s, p.meta().name.as_deref().unwrap_or_default()),
    );
    // Secrets are watched (metadata only) where they matter, not cluster-wide: credential
    // Secrets in the credential namespaces (every namespace when the operator allows any), and
    // the tool-config Secrets the repositories hand out, by their label.
    let mut secret_watches: Vec<(Api<PartialObjectMeta<Secret>>, watcher::Config)> =
        match &ctx.config.credential_namespaces {
            Some(list) => list
                .iter()
                .map(|ns| (Api::namespaced(client.clone(), ns), wc.clone()))
                .collect(),
            None => vec![(Api::all(client.clone()), wc.clone())],
        };
    if ctx.config.credential_namespaces.is_some() {
        let tool_configs =
            watcher::Config::default().labels(&format!("{IS_TOOL_CONFIG_LABEL}=true"));
        secret_watches.push((Api::all(client.clone()), tool_configs));
    }
    for (api, config) in secret_watches {
        let s = store.clone();
        ctrl = ctrl.watches(api, config, move |secret| {
            repos_for_secret(&s, &secret.metadata)
        });
    }
    let mut ctrl = ctrl
        .owns(Api::<StorageClass>::all(client.clone()), derived.clone())
        .owns(
            Api::<PersistentVolumeClaim>::all(client.clone()),
            derived.clone(),
        )
        // Pre-check Jobs live only in the controller's namespace.
        .owns(
            Api::<Job>::namespaced(client.clone(), &ctx.config.namespace),
            derived.clone(),
        );
    // KubeBlocks' consumers are watched only when their CRDs are installed (a watch on a
    // missing kind would fail forever).
    for (ar, backup) in [(backup_resource(), true), (restore_resource(), false)] {
        if crd_installed(&client, &ar).await {
            // A raw watch rather than `watches_with`: its mapper cannot tell a deletion from an
            // update, and a deleted consumer matters (scoped keys are revoked at once).
            let events = watcher(
                Api::<DynamicObject>::all_with(client.clone(), &ar),
                derived.clone(),
            )
            .default_backoff()
            .filter_map(move |ev| futures::future::ready(repo_for_consumer_event(ev, backup)));
            ctrl = ctrl.reconcile_on(events);
        } else {
            tracing::info!(kind = %ar.kind, "CRD not installed; not watching it");
        }
    }
    ctrl.shutdown_on_signal()
        .run(
            reconcile_repo_guarded,
            |obj, err, ctx| {
                policy(
                    "backuprepo",
                    obj.meta().name.as_deref().unwrap_or_default(),
                    err,
                    &ctx,
                )
            },
            ctx,
        )
        .map(|res| match res {
            Ok((o, _)) => tracing::debug!(repo = %o.name, "reconciled"),
            Err(e) => tracing::debug!(error = %e, "backuprepo controller"),
        })
}

/// The StorageProvider controller stream (re-checked when a CSIDriver appears or goes).
pub fn provider_controller(ctx: Arc<Context>) -> impl Stream<Item = ()> {
    let client = ctx.client.clone();
    let wc = watcher::Config::default();
    let ctrl = Controller::new(
        Api::<Guarded<StorageProvider>>::all(client.clone()),
        wc.clone(),
    )
    .with_config(bounded(&ctx));
    let store = ctrl.store();
    ctrl.watches(
        Api::<PartialObjectMeta<CSIDriver>>::all(client),
        wc,
        move |d| {
            let driver = d.metadata.name.clone().unwrap_or_default();
            store
                .state()
                .iter()
                .filter_map(|g| g.0.as_ref().ok())
                .filter(|p| p.spec.csi_driver_name.as_deref() == Some(driver.as_str()))
                .map(|p| ObjectRef::new(p.name()))
                .collect::<Vec<_>>()
        },
    )
    .shutdown_on_signal()
    .run(
        reconcile_provider_guarded,
        |obj, err, ctx| {
            policy(
                "storageprovider",
                obj.meta().name.as_deref().unwrap_or_default(),
                err,
                &ctx,
            )
        },
        ctx,
    )
    .map(|res| match res {
        Ok((o, _)) => tracing::debug!(provider = %o.name, "reconciled"),
        Err(e) => tracing::debug!(error = %e, "storageprovider controller"),
    })
}

/// This replica's identity in the Lease and in its user agent: `POD_NAME` (the install sets it)
/// or a random one.
pub fn identity(cfg: &OperatorConfig) -> String {
    cfg.instance
        .clone()
        .unwrap_or_else(|| format!("backuprepo-{}", backuprepo_api::random_suffix()))
}

/// The user agent of every request this replica makes, so that the API server's audit log
/// tells the replicas apart.
pub fn user_agent(identity: &str) -> String {
    format!(
        "backuprepo-controller/{} ({identity})",
        env!("CARGO_PKG_VERSION")
    )
}

/// Run the operator from a client configuration (what `backuprepo controller` does): the
/// Lease is kept with its own client; the controllers' client refuses writes once this replica
/// stops leading ([`crate::lease::WriteGuard`]). Both carry the replica's identity in their
/// user agent.
pub async fn run_from_config(
    mut config: kube::Config,
    mut cfg: OperatorConfig,
) -> anyhow::Result<()> {
    let identity = identity(&cfg);
    cfg.instance = Some(identity.clone());
    let agent = http::HeaderValue::from_str(&user_agent(&identity))?;
    config.headers.push((http::header::USER_AGENT, agent));
    let lease_client = Client::try_from(config.clone())?;
    let deadline = if cfg.leader_election {
        crate::lease::Deadline::default()
    } else {
        crate::lease::Deadline::unlimited()
    };
    let client = kube::client::ClientBuilder::try_from(config)?
        .with_layer(&crate::lease::WriteGuard(deadline.clone()))
        .build();
    serve(lease_client, client, deadline, cfg).await
}

/// Run both controllers and the metrics server until SIGINT/SIGTERM. With leader election
/// (the default), the controllers start once this replica leads, while `/healthz` and
/// `/metrics` answer from the start; on losing the lease they stop, and the replica follows
/// until it leads again. One client for everything (the tests' mocked API servers).
pub async fn run(client: Client, cfg: OperatorConfig) -> anyhow::Result<()> {
    serve(
        client.clone(),
        client,
        crate::lease::Deadline::default(),
        cfg,
    )
    .await
}

async fn serve(
    lease_client: Client,
    client: Client,
    deadline: crate::lease::Deadline,
    cfg: OperatorConfig,
) -> anyhow::Result<()> {
    // Every storage connection of this process goes through the endpoint guard, unless the
    // operator allows internal endpoints.
    if !cfg.allow_internal_endpoints {
        backuprepo_transfer::endpoint::guard_process(&cfg.refused_hosts).await;
    }
    match &cfg.probe_worker {
        Some(w) => {
            tracing::info!(worker = %w.display(), "Tool checks run in a sandboxed worker without Kubernetes credentials")
        }
        None => tracing::warn!(
            "Tool checks run in the controller's process (BACKUPREPO_PROBE_WORKER=off)"
        ),
    }
    let addr = cfg.metrics_addr;
    let health_addr = cfg.health_addr;
    let elector = cfg.leader_election.then(|| {
        crate::lease::Elector::with_deadline(
            lease_client,
            crate::lease::LeaseSettings::new(&cfg.namespace, &identity(&cfg)),
            deadline,
        )
    });
    let ctx = Arc::new(Context::new(client, cfg));
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut servers = Vec::new();
    for (addr, routes) in [
        (addr, crate::server::Routes::Metrics),
        (health_addr, crate::server::Routes::Health),
    ] {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        tracing::info!(addr = %listener.local_addr()?, ?routes, "serving");
        let mut stop = stop_rx.clone();
        servers.push(tokio::spawn(crate::server::serve(
            listener,
            routes,
            ctx.metrics.clone(),
            crate::server::Limits::default(),
            async move {
                let _ = stop.wait_for(|s| *s).await;
            },
        )));
    }
    let outcome: anyhow::Result<()> = match &elector {
        None => {
            controllers(ctx).await;
            Ok(())
        }
        // Lead until the lease is lost, then follow again in this process (the controllers'
        // caches are rebuilt when it leads again); a signal ends either phase.
        Some(e) => loop {
            ctx.metrics.set_leader(false);
            tokio::select! {
                () = e.acquire() => {}
                () = backuprepo_transfer::stop_signal() => break Ok(()),
            }
            ctx.metrics.set_leader(true);
            tokio::select! {
                () = controllers(ctx.clone()) => break Ok(()),
                why = e.hold() => {
                    ctx.metrics.set_leader(false);
                    tracing::warn!("stopped leading ({why}); following again");
                }
            }
        },
    };
    let _ = stop_tx.send(true);
    for server in servers {
        server.await??;
    }
    outcome
}

/// Both controllers, until they stop (on SIGINT/SIGTERM).
async fn controllers(ctx: Arc<Context>) {
    let repos = repo_controller(ctx.clone()).await;
    let providers = provider_controller(ctx);
    futures::future::join(
        repos.for_each(|()| async {}),
        providers.for_each(|()| async {}),
    )
    .await;
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use kube::runtime::reflector;
    use serde_json::json;

    fn store(repos: Vec<serde_json::Value>) -> Store<Guarded<BackupRepo>> {
        let (reader, mut writer) = reflector::store::<Guarded<BackupRepo>>();
        for r in repos {
            let g: Guarded<BackupRepo> = serde_json::from_value(r).unwrap();
            writer.apply_watcher_event(&watcher::Event::Apply(g));
        }
        reader
    }

    fn repo(name: &str, provider: &str, cred: Option<(&str, &str)>) -> serde_json::Value {
        let mut v = json!({
            "apiVersion": "dataprotection.kubeblocks.io/v1alpha1", "kind": "BackupRepo",
            "metadata": {"name": name},
            "spec": {"storageProviderRef": provider, "pvReclaimPolicy": "Retain"}
        });
        if let Some((ns, n)) = cred {
            v["spec"]["credential"] = json!({"namespace": ns, "name": n});
        }
        v
    }

    fn names(v: Vec<ObjectRef<Guarded<BackupRepo>>>) -> Vec<String> {
        let mut n: Vec<String> = v.into_iter().map(|r| r.name).collect();
        n.sort();
        n
    }

    #[test]
    fn provider_and_secret_changes_map_to_their_repositories() {
        let s = store(vec![
            repo("a", "s3", Some(("kb-system", "creds"))),
            repo("b", "s3", None),
            repo("c", "local", Some(("kb-system", "other"))),
            // A malformed repository is skipped, not fatal.
            json!({"apiVersion": "dataprotection.kubeblocks.io/v1alpha1", "kind": "BackupRepo",
                   "metadata": {"name": "bad"}, "spec": {"storageProviderRef": 5}}),
        ]);
        assert_eq!(names(repos_for_provider(&s, "s3")), ["a", "b"]);
        let meta: kube::api::ObjectMeta = serde_json::from_value(json!({
            "name": "creds", "namespace": "kb-system"
        }))
        .unwrap();
        assert_eq!(names(repos_for_secret(&s, &meta)), ["a"]);
        let owned: kube::api::ObjectMeta = serde_json::from_value(json!({
            "name": "tool-config-x", "namespace": "ns1",
            "ownerReferences": [{"apiVersion": "dataprotection.kubeblocks.io/v1alpha1",
                "kind": "BackupRepo", "name": "c", "uid": "u", "controller": true}]
        }))
        .unwrap();
        assert_eq!(names(repos_for_secret(&s, &owned)), ["c"]);
    }

    #[test]
    fn consumer_events_that_matter() {
        let obj = |labels: serde_json::Value, phase: &str, deleting: bool| {
            let mut v = json!({"apiVersion": "dataprotection.kubeblocks.io/v1alpha1", "kind": "Backup",
                "metadata": {"name": "b", "namespace": "ns", "labels": labels}, "status": {"phase": phase}});
            if deleting {
                v["metadata"]["deletionTimestamp"] = json!("2023-01-01T00:00:00Z");
            }
            serde_json::from_value::<DynamicObject>(v).unwrap()
        };
        let named = json!({"dataprotection.kubeblocks.io/backup-repo-name": "r1"});
        let waiting = json!({"dataprotection.kubeblocks.io/backup-repo-name": "r1",
                             "dataprotection.kubeblocks.io/wait-repo-preparation": "true"});
        assert_eq!(
            repo_for_consumer(&obj(waiting.clone(), "New", false), true)
                .unwrap()
                .name,
            "r1"
        );
        assert!(repo_for_consumer(&obj(named.clone(), "Completed", false), true).is_none());
        assert_eq!(
            repo_for_consumer(&obj(named.clone(), "Completed", true), true)
                .unwrap()
                .name,
            "r1"
        );
        // Restores never block deletion; failed backups need nothing.
        assert!(repo_for_consumer(&obj(named.clone(), "Completed", true), false).is_none());
        assert!(repo_for_consumer(&obj(waiting, "Failed", false), true).is_none());
        assert!(repo_for_consumer(&obj(json!({}), "New", false), true).is_none());

        // Watch events: a deleted consumer, and a Restore that ended, reach the repository.
        let ev = |e: watcher::Event<DynamicObject>, backup| {
            repo_for_consumer_event(Ok(e), backup).map(|r| r.name)
        };
        let done = obj(named.clone(), "Completed", false);
        assert_eq!(
            ev(watcher::Event::Delete(done.clone()), true).as_deref(),
            Some("r1")
        );
        assert_eq!(ev(watcher::Event::Apply(done.clone()), true), None);
        assert_eq!(
            ev(watcher::Event::Apply(done.clone()), false).as_deref(),
            Some("r1")
        );
        let running = obj(named, "Running", false);
        assert_eq!(ev(watcher::Event::Apply(running), false), None);
        assert_eq!(
            ev(watcher::Event::Delete(obj(json!({}), "New", false)), true),
            None
        );
        assert_eq!(ev(watcher::Event::Init, true), None);
    }
}
