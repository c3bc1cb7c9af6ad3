//! Mount access (spec §2.5 step 6, §2.7): the CSI driver Secret (updated in place when the
//! digest changes), the StorageClass (create-only), and the pre-check: a PVC and a Job in the
//! controller's namespace that write, read and delete a file on the mounted volume. A failed
//! Job's diagnosis goes into the condition message: the Job's failure, its pod's log, and the
//! events of the pod, the PVC and the Job.

use std::collections::BTreeMap;

use backuprepo_api::constants::{message, BACKUP_REPO_DIGEST_ANNOTATION};
use backuprepo_api::{pre_check_resource_name, BackupRepo};
use backuprepo_core::ProbeResult;
use backuprepo_deploy::security::{
    container_security_context, field_env, pod_security_context, resources, NONROOT_ID,
};
use k8s_openapi::api::batch::v1::{Job, JobSpec};
use k8s_openapi::api::core::v1::{
    Container, Event as CoreEvent, PersistentVolumeClaim, PersistentVolumeClaimVolumeSource, Pod,
    PodSpec, PodTemplateSpec, Secret, SecretReference, Volume, VolumeMount,
};
use k8s_openapi::api::storage::v1::StorageClass;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::ByteString;
use kube::api::{DeleteParams, ListParams, LogParams, Patch, PatchParams, PostParams};
use kube::Api;
use serde_json::{Map, Value};

use crate::context::Context;
use crate::error::{is_conflict, is_not_found, Error, Result};
use crate::namespaces::repo_pvc;
use crate::repo::derived_labels;
use crate::resources::{owned_by, owner_ref};

/// Container name of the pre-check Job (KubeBlocks').
pub const PRE_CHECK_CONTAINER: &str = "pre-check";
const LOG_LIMIT: i64 = 4 * 1024;
/// Bound of one object's events table, and of the whole message (KubeBlocks').
const EVENTS_LIMIT: usize = 4 * 1024;
const MESSAGE_LIMIT: usize = 32 * 1024;

fn digest_of(meta: &ObjectMeta) -> Option<&str> {
    meta.annotations
        .as_ref()
        .and_then(|a| a.get(BACKUP_REPO_DIGEST_ANNOTATION))
        .map(String::as_str)
}

fn derived_meta(repo: &BackupRepo, name: &str, ns: Option<&str>, digest: &str) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.to_string()),
        namespace: ns.map(str::to_string),
        labels: Some(derived_labels(repo)),
        annotations: Some(BTreeMap::from([(
            BACKUP_REPO_DIGEST_ANNOTATION.to_string(),
            digest.to_string(),
        )])),
        owner_references: Some(vec![owner_ref(repo)]),
        ..ObjectMeta::default()
    }
}

/// Create the CSI secret, or replace its data when its digest differs.
pub async fn apply_csi_secret(
    ctx: &Context,
    repo: &BackupRepo,
    sref: &SecretReference,
    data: &BTreeMap<String, String>,
    digest: &str,
) -> Result<()> {
    let (Some(name), Some(ns)) = (&sref.name, &sref.namespace) else {
        return Ok(());
    };
    let api: Api<Secret> = Api::namespaced(ctx.client.clone(), ns);
    let bytes: BTreeMap<String, ByteString> = data
        .iter()
        .map(|(k, v)| (k.clone(), ByteString(v.as_bytes().to_vec())))
        .collect();
    match api
        .get_opt(name)
        .await
        .map_err(Error::kube(format!("get CSI secret {ns}/{name}")))?
    {
        None => {
            let secret = Secret {
                metadata: derived_meta(repo, name, Some(ns), digest),
                data: Some(bytes),
                ..Secret::default()
            };
            match api.create(&PostParams::default(), &secret).await {
                Ok(_) => Ok(()),
                Err(e) if is_conflict(&e) => Ok(()),
                Err(e) => Err(Error::kube(format!("create CSI secret {ns}/{name}"))(e)),
            }
        }
        // A Secret of that name that the repository does not own is never written.
        Some(existing) if !owned_by(existing.metadata.owner_references.as_ref(), repo) => Err(
            Error::Invalid(crate::namespaces::not_owned(repo, "CSI Secret", ns, name)),
        ),
        Some(existing) if digest_of(&existing.metadata) == Some(digest) => Ok(()),
        Some(existing) => {
            // Replace the data: keys the template no longer renders are removed.
            let mut d: Map<String, Value> = existing
                .data
                .iter()
                .flatten()
                .map(|(k, _)| (k.clone(), Value::Null))
                .collect();
            for (k, v) in &bytes {
                d.insert(k.clone(), serde_json::to_value(v).unwrap_or(Value::Null));
            }
            let patch = serde_json::json!({
                "metadata": { "annotations": { BACKUP_REPO_DIGEST_ANNOTATION: digest } },
                "data": d,
            });
            api.patch(name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
                .map_err(Error::kube(format!("update CSI secret {ns}/{name}")))?;
            Ok(())
        }
    }
}

/// Create the StorageClass if absent; never updated afterwards (KubeBlocks).
pub async fn apply_storage_class(
    ctx: &Context,
    repo: &BackupRepo,
    sc: &StorageClass,
) -> Result<()> {
    let Some(name) = sc.metadata.name.clone() else {
        return Ok(());
    };
    let api: Api<StorageClass> = Api::all(ctx.client.clone());
    if api
        .get_opt(&name)
        .await
        .map_err(Error::kube(format!("get StorageClass {name}")))?
        .is_some()
    {
        return Ok(());
    }
    let mut sc = sc.clone();
    sc.metadata.labels = Some(derived_labels(repo));
    sc.metadata.owner_references = Some(vec![owner_ref(repo)]);
    match api.create(&PostParams::default(), &sc).await {
        Ok(_) => Ok(()),
        Err(e) if is_conflict(&e) => Ok(()),
        Err(e) => Err(Error::kube(format!("create StorageClass {name}"))(e)),
    }
}

fn pre_check_name(repo: &BackupRepo) -> String {
    pre_check_resource_name(
        repo.metadata.uid.as_deref().unwrap_or_default(),
        repo.name(),
    )
}

/// The pre-check writes, reads and removes a file under a directory of its own (named after
/// its pod), so it never meets backup data or another pre-check on a shared volume.
const PRE_CHECK_SCRIPT: &str = r#"set -ex
dir="/backup/.backuprepo-precheck/${POD_NAME}"
mkdir -p "$dir"
echo "pre-check" > "$dir/precheck.txt"
sync
cat "$dir/precheck.txt"
rm "$dir/precheck.txt"
rmdir "$dir"
rmdir /backup/.backuprepo-precheck 2>/dev/null || true
sync
"#;

/// A finished pre-check Job is removed by the TTL controller after this long if the
/// controller has not removed it (its failure message is already in the status).
const PRE_CHECK_TTL_SECONDS: i32 = 600;

/// The pre-check Job: the Pod Security "restricted" profile (non-root with a fixed uid, no
/// capabilities, RuntimeDefault seccomp, read-only root filesystem), no service-account token,
/// bounded resources and run time, and a volume whose ownership is changed only when its root
/// does not match (existing backup data is not re-chowned).
fn pre_check_job(ctx: &Context, repo: &BackupRepo, name: &str, digest: &str) -> Job {
    let ns = &ctx.config.namespace;
    let deadline = i64::try_from(ctx.config.pre_check_timeout.as_secs()).unwrap_or(i64::MAX);
    Job {
        metadata: derived_meta(repo, name, Some(ns), digest),
        spec: Some(JobSpec {
            backoff_limit: Some(2),
            active_deadline_seconds: Some(deadline.max(1)),
            ttl_seconds_after_finished: Some(PRE_CHECK_TTL_SECONDS),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(derived_labels(repo)),
                    ..ObjectMeta::default()
                }),
                spec: Some(PodSpec {
                    restart_policy: Some("Never".into()),
                    tolerations: ctx.config.tolerations.clone(),
                    affinity: ctx.config.affinity.clone(),
                    node_selector: ctx.config.node_selector.clone(),
                    service_account_name: ctx.config.worker_service_account.clone(),
                    automount_service_account_token: Some(false),
                    security_context: Some(pod_security_context(Some(NONROOT_ID))),
                    containers: vec![Container {
                        name: PRE_CHECK_CONTAINER.into(),
                        image: Some(ctx.config.tools_image.clone()),
                        image_pull_policy: ctx.config.image_pull_policy.clone(),
                        command: Some(vec!["sh".into(), "-c".into()]),
                        args: Some(vec![PRE_CHECK_SCRIPT.into()]),
                        env: Some(vec![field_env("POD_NAME", "metadata.name")]),
                        resources: Some(resources(("10m", "16Mi"), ("100m", "64Mi"))),
                        security_context: Some(container_security_context()),
                        volume_mounts: Some(vec![VolumeMount {
                            name: "backup-pvc".into(),
                            mount_path: "/backup".into(),
                            ..VolumeMount::default()
                        }]),
                        ..Container::default()
                    }],
                    volumes: Some(vec![Volume {
                        name: "backup-pvc".into(),
                        persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                            claim_name: name.into(),
                            read_only: None,
                        }),
                        ..Volume::default()
                    }]),
                    ..PodSpec::default()
                }),
            },
            ..JobSpec::default()
        }),
        ..Job::default()
    }
}

/// `Some((failed, text))` once the Job has finished.
fn job_finished(job: &Job) -> Option<(bool, String)> {
    let conds = job.status.as_ref()?.conditions.as_ref()?;
    for c in conds {
        if c.status != "True" {
            continue;
        }
        match c.type_.as_str() {
            "Complete" => return Some((false, String::new())),
            "Failed" => {
                return Some((
                    true,
                    format!(
                        "{}:{}",
                        c.reason.as_deref().unwrap_or_default(),
                        c.message.as_deref().unwrap_or_default()
                    ),
                ))
            }
            _ => {}
        }
    }
    None
}

/// Run (or follow) the Mount pre-check for `digest`. `None` while the Job runs.
pub async fn pre_check(
    ctx: &Context,
    repo: &BackupRepo,
    digest: &str,
    template: Option<&PersistentVolumeClaim>,
    storage_class: &str,
) -> Result<Option<ProbeResult>> {
    let ns = ctx.config.namespace.clone();
    let name = pre_check_name(repo);
    let jobs: Api<Job> = Api::namespaced(ctx.client.clone(), &ns);
    let pvcs: Api<PersistentVolumeClaim> = Api::namespaced(ctx.client.clone(), &ns);
    let job = jobs
        .get_opt(&name)
        .await
        .map_err(Error::kube(format!("get pre-check job {ns}/{name}")))?;
    let Some(job) = job else {
        if pvcs
            .get_opt(&name)
            .await
            .map_err(Error::kube(format!("get pre-check PVC {ns}/{name}")))?
            .is_none()
        {
            let pvc = repo_pvc(repo, template, &name, &ns, storage_class, digest);
            match pvcs.create(&PostParams::default(), &pvc).await {
                Ok(_) => {}
                Err(e) if is_conflict(&e) => {}
                Err(e) => return Err(Error::kube(format!("create pre-check PVC {ns}/{name}"))(e)),
            }
        }
        match jobs
            .create(
                &PostParams::default(),
                &pre_check_job(ctx, repo, &name, digest),
            )
            .await
        {
            Ok(_) => {}
            Err(e) if is_conflict(&e) => {}
            Err(e) => return Err(Error::kube(format!("create pre-check job {ns}/{name}"))(e)),
        }
        return Ok(None);
    };
    if digest_of(&job.metadata) != Some(digest) {
        delete_pre_check(ctx, repo).await?;
        return Err(Error::Pending(
            message::PRE_CHECK_PVC_DIGEST_MISMATCH.to_string(),
        ));
    }
    let finished = match job_finished(&job) {
        Some(f) => Some(f),
        None => {
            let created = job
                .metadata
                .creation_timestamp
                .as_ref()
                .map(|t| t.0.as_second());
            let now = ctx.now().0.as_second();
            let limit = ctx.config.pre_check_timeout.as_secs() as i64;
            created
                .filter(|c| now - c > limit)
                .map(|_| (true, "timeout".to_string()))
        }
    };
    let Some((failed, text)) = finished else {
        return Ok(None);
    };
    let message = if failed {
        failure_message(ctx, &ns, &job, &text).await
    } else {
        String::new()
    };
    Ok(Some(ProbeResult {
        digest: digest.to_string(),
        passed: !failed,
        message,
        checks: Vec::new(),
        finished_at: ctx.now(),
        usage: None,
        capabilities: None,
    }))
}

/// KubeBlocks' diagnosis: header, the Job's failure, the log of the newest failed pod, then
/// the events of the newest pod, the PVC and the Job; at most 32 KiB.
async fn failure_message(ctx: &Context, ns: &str, job: &Job, text: &str) -> String {
    let job_name = job.metadata.name.clone().unwrap_or_default();
    let mut msg = format!(
        "{}\n\nJob failure message: {text}\n\n",
        message::PRE_CHECK_FAILED_HEADER
    );
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), ns);
    let mut logs = None;
    let mut newest = None;
    if let Ok(list) = pods
        .list(&ListParams::default().labels(&format!("job-name={job_name}")))
        .await
    {
        let mut items = list.items;
        items.sort_by(|a, b| {
            b.metadata
                .creation_timestamp
                .as_ref()
                .map(|t| t.0)
                .cmp(&a.metadata.creation_timestamp.as_ref().map(|t| t.0))
        });
        let failed = items
            .iter()
            .find(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Failed"));
        if let Some(pod) = failed.and_then(|p| p.metadata.name.as_deref()) {
            let lp = LogParams {
                container: Some(PRE_CHECK_CONTAINER.into()),
                limit_bytes: Some(LOG_LIMIT),
                ..LogParams::default()
            };
            logs = pods.logs(pod, &lp).await.ok().filter(|l| !l.is_empty());
        }
        newest = items.into_iter().next().map(|p| p.metadata);
    }
    match logs {
        Some(l) => {
            msg.push_str("Logs from the pre-check job:\n");
            for line in l.lines() {
                msg.push_str("  ");
                msg.push_str(line);
                msg.push('\n');
            }
        }
        None => msg.push_str("No logs are available.\n"),
    }
    let pvcs: Api<PersistentVolumeClaim> = Api::namespaced(ctx.client.clone(), ns);
    let pvc = pvcs
        .get_opt(&job_name)
        .await
        .ok()
        .flatten()
        .map(|p| p.metadata);
    let mut objects = Vec::new();
    if let Some(pod) = newest {
        objects.push(("Pod", pod));
    }
    if let Some(pvc) = pvc {
        objects.push(("PersistentVolumeClaim", pvc));
    }
    objects.push(("Job", job.metadata.clone()));
    for (kind, meta) in objects {
        msg.push('\n');
        msg.push_str(&events_block(ctx, ns, kind, &meta).await);
    }
    truncate(&mut msg, MESSAGE_LIMIT);
    msg
}

/// `Events from <Kind>/<ns>/<name>:` and a kubectl-describe style table, or a line saying
/// there are none (also when they cannot be read: the diagnosis is best effort).
async fn events_block(ctx: &Context, ns: &str, kind: &str, meta: &ObjectMeta) -> String {
    let what = format!("{kind}/{ns}/{}", meta.name.as_deref().unwrap_or_default());
    let none = format!("No events are available for {what}.\n");
    let Some(uid) = meta.uid.as_deref() else {
        return none;
    };
    let api: Api<CoreEvent> = Api::namespaced(ctx.client.clone(), ns);
    let lp = ListParams::default().fields(&format!("involvedObject.uid={uid}"));
    let Ok(list) = api.list(&lp).await else {
        return none;
    };
    if list.items.is_empty() {
        return none;
    }
    let mut table = events_table(&list.items, ctx.now().0.as_second());
    truncate(&mut table, EVENTS_LIMIT);
    format!("Events from {what}:\n{table}")
}

/// The events as `kubectl describe` prints them (Type, Reason, Age, From, Message), oldest first.
pub fn events_table(events: &[CoreEvent], now: i64) -> String {
    let when = |e: &CoreEvent| {
        e.last_timestamp
            .as_ref()
            .map(|t| t.0.as_second())
            .or_else(|| e.event_time.as_ref().map(|t| t.0.as_second()))
            .or_else(|| {
                e.metadata
                    .creation_timestamp
                    .as_ref()
                    .map(|t| t.0.as_second())
            })
    };
    let mut sorted: Vec<&CoreEvent> = events.iter().collect();
    sorted.sort_by_key(|e| when(e));
    let mut rows = vec![
        ["Type", "Reason", "Age", "From", "Message"].map(String::from),
        ["----", "------", "----", "----", "-------"].map(String::from),
    ];
    for e in sorted {
        let age = when(e)
            .map(|t| short_duration(now - t))
            .unwrap_or_else(|| "<unknown>".into());
        let from = e
            .source
            .as_ref()
            .and_then(|s| s.component.clone())
            .or_else(|| e.reporting_component.clone())
            .unwrap_or_default();
        rows.push([
            e.type_.clone().unwrap_or_default(),
            e.reason.clone().unwrap_or_default(),
            age,
            from,
            e.message.clone().unwrap_or_default().trim().to_string(),
        ]);
    }
    let mut widths = [0usize; 5];
    for r in &rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut out = String::new();
    for r in &rows {
        let mut line = String::from(" ");
        for (i, c) in r.iter().enumerate() {
            line.push(' ');
            line.push_str(c);
            if i + 1 < r.len() {
                line.push_str(&" ".repeat(widths[i] - c.chars().count() + 1));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

fn short_duration(secs: i64) -> String {
    match secs.max(0) {
        s if s < 120 => format!("{s}s"),
        s if s < 7200 => format!("{}m", s / 60),
        s if s < 172_800 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86400),
    }
}

/// Cut to at most `limit` bytes at a character boundary, marking the cut.
fn truncate(s: &mut String, limit: usize) {
    const MARK: &str = "[truncated]\n";
    if s.len() <= limit {
        return;
    }
    let mut cut = limit.saturating_sub(MARK.len());
    while !s.is_char_boundary(cut) {
        cut -= 1;
    }
    s.truncate(cut);
    s.push_str(MARK);
}

/// Delete the pre-check Job and PVC (background propagation; NotFound is done).
pub async fn delete_pre_check(ctx: &Context, repo: &BackupRepo) -> Result<()> {
    let ns = ctx.config.namespace.clone();
    let name = pre_check_name(repo);
    let dp = DeleteParams::background();
    let jobs: Api<Job> = Api::namespaced(ctx.client.clone(), &ns);
    match jobs.delete(&name, &dp).await {
        Ok(_) => {}
        Err(e) if is_not_found(&e) => {}
        Err(e) => return Err(Error::kube(format!("delete pre-check job {ns}/{name}"))(e)),
    }
    let pvcs: Api<PersistentVolumeClaim> = Api::namespaced(ctx.client.clone(), &ns);
    match pvcs.delete(&name, &dp).await {
        Ok(_) => Ok(()),
        Err(e) if is_not_found(&e) => Ok(()),
        Err(e) => Err(Error::kube(format!("delete pre-check PVC {ns}/{name}"))(e)),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn events_table_is_kubectl_describe_style() {
        let ev = |reason: &str, t: &str, msg: &str| -> CoreEvent {
            serde_json::from_value(json!({
                "metadata": {"name": reason, "namespace": "kb-system"},
                "involvedObject": {"kind": "Pod", "name": "p"},
                "type": "Warning", "reason": reason, "message": msg,
                "lastTimestamp": t, "source": {"component": "kubelet"}
            }))
            .unwrap()
        };
        let now = 1_700_000_000; // 2023-11-14T22:13:20Z
        let t = table_of(
            &[
                ev(
                    "FailedMount",
                    "2023-11-14T22:12:20Z",
                    "MountVolume.SetUp failed\n",
                ),
                ev("Scheduled", "2023-11-14T20:13:20Z", "assigned"),
            ],
            now,
        );
        assert_eq!(
            t,
            "  Type     Reason       Age   From     Message\n  \
             ----     ------       ----  ----     -------\n  \
             Warning  Scheduled    2h    kubelet  assigned\n  \
             Warning  FailedMount  60s   kubelet  MountVolume.SetUp failed\n"
        );
    }

    fn table_of(events: &[CoreEvent], now: i64) -> String {
        events_table(events, now)
    }

    #[test]
    fn truncation_keeps_char_boundaries_and_says_so() {
        let err = crate::OperatorConfig::from_lookup(|k| {
            (k == "CM_TOLERATIONS").then(|| "{not json".to_string())
        })
        .unwrap_err();
        assert!(
            err.starts_with("CM_TOLERATIONS: expected a list of tolerations as JSON"),
            "{err}"
        );

        let mut s = "é".repeat(100);
        truncate(&mut s, 50);
        assert!(s.len() <= 50 && s.ends_with("[truncated]\n"), "{s}");
        let mut short = "ok".to_string();
        truncate(&mut short, 50);
        assert_eq!(short, "ok");
    }

    #[tokio::test]
    async fn pre_check_pods_follow_the_placement_settings() {
        let cfg = crate::OperatorConfig::from_lookup(|k| match k {
            "CM_TOLERATIONS" => Some(r#"[{"key":"dedicated","operator":"Equal","value":"backup","effect":"NoSchedule"}]"#.into()),
            "CM_NODE_SELECTOR" => Some(r#"{"role":"backup"}"#.into()),
            "CM_AFFINITY" => Some(r#"{"nodeAffinity":{"requiredDuringSchedulingIgnoredDuringExecution":{"nodeSelectorTerms":[{"matchExpressions":[{"key":"zone","operator":"In","values":["a"]}]}]}}}"#.into()),
            _ => None,
        })
        .unwrap();
        let (svc, _handle) = tower_test::mock::pair::<
            http::Request<kube::client::Body>,
            http::Response<kube::client::Body>,
        >();
        let ctx = Context::new(kube::Client::new(svc, "default"), cfg);
        let repo: BackupRepo = serde_json::from_value(json!({
            "apiVersion": "dataprotection.kubeblocks.io/v1alpha1", "kind": "BackupRepo",
            "metadata": {"name": "r1", "uid": "u1"},
            "spec": {"storageProviderRef": "nfs", "pvReclaimPolicy": "Retain"}
        }))
        .unwrap();
        let job = pre_check_job(&ctx, &repo, "pre", "d");
        let pod = serde_json::to_value(job.spec.unwrap().template.spec.unwrap()).unwrap();
        assert_eq!(pod["tolerations"][0]["key"], "dedicated");
        assert_eq!(pod["nodeSelector"], json!({"role": "backup"}));
        assert_eq!(
            pod["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
                ["nodeSelectorTerms"][0]["matchExpressions"][0]["key"],
            "zone"
        );
    }
}
