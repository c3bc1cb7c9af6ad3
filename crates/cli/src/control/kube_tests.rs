//! `--store kube` commands against a scripted API server (tower-test): every request (verb,
//! path, query) is listed in order, every body written is asserted, and a request out of
//! script fails the test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use backuprepo_api::constants::{
    BACKUP_REPO_NAME_LABEL, CHECK_REQUESTED_ANNOTATION, IS_DEFAULT_REPO_ANNOTATION,
};
use backuprepo_catalog::builtin;
use backuprepo_kube_mock::{list, not_found, scripted, step, to_value, Seen, Step};
use serde_json::{json, Value};
use tokio::task::JoinHandle;

use super::{manifests, repos};
use backuprepo_operator::KubeStore;

pub(super) const REPOS: &str = "/apis/dataprotection.kubeblocks.io/v1alpha1/backuprepos";
pub(super) const SPS: &str = "/apis/dataprotection.kubeblocks.io/v1alpha1/storageproviders";
pub(super) const BACKUPS: &str = "/apis/dataprotection.kubeblocks.io/v1alpha1/backups";
pub(super) const KB_SECRETS: &str = "/api/v1/namespaces/kb-system/secrets";

/// The Kubernetes store on a scripted API server, and the runtime the commands run on.
pub(super) struct Cluster {
    pub(super) store: KubeStore,
    rt: tokio::runtime::Runtime,
}

impl Cluster {
    pub(super) fn block<F: std::future::Future>(&self, f: F) -> F::Output {
        self.rt.block_on(f)
    }
}

pub(super) fn cluster(script: Vec<Step>) -> (Cluster, JoinHandle<Vec<Seen>>) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (client, task) = {
        let _guard = rt.enter();
        scripted(script)
    };
    let store = KubeStore {
        client,
        namespace: "kb-system".into(),
        wait: Duration::from_millis(300),
        poll: Duration::from_millis(10),
        probe_timeout: Duration::from_secs(5),
    };
    (Cluster { store, rt }, task)
}

pub(super) fn finish(cl: Cluster, task: JoinHandle<Vec<Seen>>) -> Vec<Seen> {
    cl.rt.block_on(task).unwrap()
}

// The commands, run on the scripted cluster.
pub(super) fn create(cl: &Cluster, args: Vec<String>) -> anyhow::Result<()> {
    cl.block(super::create::create(&cl.store, args))
}
pub(super) fn update(cl: &Cluster, args: Vec<String>) -> anyhow::Result<()> {
    cl.block(super::create::update(&cl.store, args))
}
pub(super) fn list_repos(cl: &Cluster, output: &str) -> anyhow::Result<()> {
    cl.block(repos::list(&cl.store, output))
}
pub(super) fn describe(cl: &Cluster, names: &[String]) -> anyhow::Result<()> {
    cl.block(repos::describe(&cl.store, names))
}
pub(super) fn delete(cl: &Cluster, name: &str, force: bool, yes: bool) -> anyhow::Result<()> {
    cl.block(repos::delete(&cl.store, &[name.to_string()], force, yes))
}
pub(super) fn check(cl: &Cluster, name: &str) -> anyhow::Result<()> {
    cl.block(repos::check(&cl.store, name))
}
pub(super) fn check_all(cl: &Cluster) -> anyhow::Result<()> {
    cl.block(repos::check_all(&cl.store))
}
pub(super) fn apply(cl: &Cluster, docs: Vec<backuprepo_api::Document>) -> anyhow::Result<()> {
    cl.block(manifests::apply_documents(&cl.store, docs))
}
pub(super) fn annotate(
    cl: &Cluster,
    kind: &str,
    name: &str,
    changes: &[String],
    overwrite: bool,
) -> anyhow::Result<()> {
    let args: Vec<String> = [kind.to_string(), name.to_string()]
        .into_iter()
        .chain(changes.iter().cloned())
        .collect();
    cl.block(manifests::annotate(&cl.store, &args, overwrite))
}
pub(super) fn create_secret(
    cl: &Cluster,
    name: &str,
    ns: &str,
    literals: &[String],
) -> anyhow::Result<()> {
    cl.block(manifests::create_secret(&cl.store, name, ns, literals))
}

pub(super) fn args(s: &str) -> Vec<String> {
    s.split_whitespace().map(str::to_string).collect()
}

pub(super) fn provider(name: &str) -> Value {
    to_value(&builtin::get(name).unwrap())
}

/// A stored repository as the API server returns it.
pub(super) fn repo(name: &str, provider: &str, phase: &str, annotations: Value) -> Value {
    let mut r = json!({
        "apiVersion": "dataprotection.kubeblocks.io/v1alpha1", "kind": "BackupRepo",
        "metadata": {"name": name, "uid": format!("uid-{name}"), "resourceVersion": "7",
                     "annotations": annotations},
        "spec": {"storageProviderRef": provider, "accessMethod": "Tool",
                 "pvReclaimPolicy": "Retain", "volumeCapacity": "100Gi",
                 "config": {"bucket": "b", "region": "us-east-1"},
                 "credential": {"name": "kb-backuprepo-abcde", "namespace": "kb-system"}},
        "status": {"phase": phase, "conditions": [
            {"type": "PreCheckPassed", "status": if phase == "Ready" {"True"} else {"False"},
             "reason": "PreCheckFailed", "message": if phase == "Ready" {""} else {"bucket missing"},
             "lastTransitionTime": "2023-11-14T22:13:20Z"}]}
    });
    if phase.is_empty() {
        r.as_object_mut().unwrap().remove("status");
    }
    r
}

pub(super) fn b64(s: &str) -> String {
    serde_json::to_value(backuprepo_api::k8s_openapi::ByteString(
        s.as_bytes().to_vec(),
    ))
    .unwrap()
    .as_str()
    .unwrap()
    .to_string()
}

const S3_ARGS: &str =
    "my-repo --provider s3 --bucket b --region us-east-1 --access-key-id AK --secret-access-key SK";

#[test]
fn create_makes_the_secret_then_the_repo_then_owns_the_secret() {
    let created_secret = json!({"apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "kb-backuprepo-x7k2p", "namespace": "kb-system"}});
    let created_repo = repo("my-repo", "s3", "", json!({}));
    let (cl, task) = cluster(vec![
        step("GET", format!("{SPS}/s3"), 200, provider("s3")),
        // The repositories, for the overlap warning.
        step("GET", REPOS, 200, list("BackupRepoList", vec![])),
        step("GET", format!("{REPOS}/my-repo"), 404, not_found("my-repo")),
        step("GET", REPOS, 200, list("BackupRepoList", vec![])),
        step("POST", KB_SECRETS, 201, created_secret.clone()),
        step("POST", REPOS, 201, created_repo),
        step(
            "PATCH",
            format!("{KB_SECRETS}/kb-backuprepo-x7k2p"),
            200,
            created_secret,
        ),
    ]);
    create(&cl, args(&format!("{S3_ARGS} --default"))).unwrap();
    let seen = finish(cl, task);

    // The Secret: generated name, in the install namespace, credentials only.
    let secret = &seen[4].body;
    assert_eq!(secret["metadata"]["generateName"], "kb-backuprepo-");
    assert_eq!(secret["metadata"]["namespace"], "kb-system");
    assert_eq!(secret["type"], "Opaque");
    assert_eq!(
        secret["data"],
        json!({"accessKeyId": b64("AK"), "secretAccessKey": b64("SK")})
    );
    // The repository: kbcli's fields, the reference to the Secret, the default annotation.
    let r = &seen[5].body;
    assert_eq!(r["metadata"]["name"], "my-repo");
    assert_eq!(
        r["metadata"]["annotations"][IS_DEFAULT_REPO_ANNOTATION],
        "true"
    );
    assert_eq!(r["spec"]["storageProviderRef"], "s3");
    assert_eq!(r["spec"]["accessMethod"], "Tool");
    assert_eq!(r["spec"]["pvReclaimPolicy"], "Retain");
    assert_eq!(r["spec"]["volumeCapacity"], "100Gi");
    assert_eq!(r["spec"]["config"]["bucket"], "b");
    assert!(r["spec"]["config"].get("accessKeyId").is_none());
    assert_eq!(
        r["spec"]["credential"],
        json!({"name": "kb-backuprepo-x7k2p", "namespace": "kb-system"})
    );
    assert!(r.get("status").is_none_or(Value::is_null));
    // The Secret goes with the repository.
    assert_eq!(seen[6].content_type, "application/merge-patch+json");
    assert_eq!(
        seen[6].body["metadata"]["ownerReferences"],
        json!([{"apiVersion": "dataprotection.kubeblocks.io/v1alpha1", "kind": "BackupRepo",
                "name": "my-repo", "uid": "uid-my-repo"}])
    );
}

#[test]
fn create_refused_by_the_server_rolls_the_secret_back() {
    let refusal = json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
        "message": "ValidatingAdmissionPolicy 'backuprepo-single-default' denied request: only one default",
        "reason": "Invalid", "code": 422});
    let (cl, task) = cluster(vec![
        step("GET", format!("{SPS}/s3"), 200, provider("s3")),
        // The repositories, for the overlap warning.
        step("GET", REPOS, 200, list("BackupRepoList", vec![])),
        step("GET", format!("{REPOS}/my-repo"), 404, not_found("my-repo")),
        step(
            "POST",
            KB_SECRETS,
            201,
            json!({"metadata": {"name": "kb-backuprepo-x7k2p", "namespace": "kb-system"}}),
        ),
        step("POST", REPOS, 422, refusal),
        step(
            "DELETE",
            format!("{KB_SECRETS}/kb-backuprepo-x7k2p"),
            200,
            json!({}),
        ),
    ]);
    let err = create(&cl, args(S3_ARGS)).unwrap_err().to_string();
    finish(cl, task);
    assert!(err.contains("cannot create the backup repository"), "{err}");
    assert!(
        err.contains("only one default") && err.contains("422"),
        "{err}"
    );
}

#[test]
fn create_checks_before_writing_anything() {
    // An existing name, a second default, an unknown provider, a bad flag: nothing is posted.
    let (cl, task) = cluster(vec![
        step("GET", format!("{SPS}/s3"), 200, provider("s3")),
        // The repositories, for the overlap warning.
        step("GET", REPOS, 200, list("BackupRepoList", vec![])),
        step(
            "GET",
            format!("{REPOS}/my-repo"),
            200,
            repo("my-repo", "s3", "Ready", json!({})),
        ),
    ]);
    let err = create(&cl, args(S3_ARGS)).unwrap_err().to_string();
    finish(cl, task);
    assert_eq!(err, "BackupRepo \"my-repo\" is already exists");

    let (cl, task) = cluster(vec![
        step("GET", format!("{SPS}/s3"), 200, provider("s3")),
        // The repositories, for the overlap warning.
        step("GET", REPOS, 200, list("BackupRepoList", vec![])),
        step("GET", format!("{REPOS}/my-repo"), 404, not_found("my-repo")),
        step(
            "GET",
            REPOS,
            200,
            list(
                "BackupRepoList",
                vec![repo(
                    "old",
                    "s3",
                    "Ready",
                    json!({IS_DEFAULT_REPO_ANNOTATION: "true"}),
                )],
            ),
        ),
    ]);
    let err = create(&cl, args(&format!("{S3_ARGS} --default")))
        .unwrap_err()
        .to_string();
    finish(cl, task);
    assert!(err.contains("\"old\""), "{err}");

    let (cl, task) = cluster(vec![step(
        "GET",
        format!("{SPS}/nope"),
        404,
        not_found("nope"),
    )]);
    let err = create(&cl, args("r --provider nope"))
        .unwrap_err()
        .to_string();
    finish(cl, task);
    assert!(
        err.contains("storage provider \"nope\" is not found"),
        "{err}"
    );

    let (cl, task) = cluster(vec![step("GET", format!("{SPS}/s3"), 200, provider("s3"))]);
    let err = create(&cl, args("r --provider s3 --bucket b"))
        .unwrap_err()
        .to_string();
    finish(cl, task);
    assert!(err.contains("--access-key-id"), "{err}");
}

#[test]
fn create_dry_run_asks_the_server_and_probes_from_here() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_str().unwrap();
    let made = json!({"apiVersion": "dataprotection.kubeblocks.io/v1alpha1", "kind": "BackupRepo",
        "metadata": {"name": "backuprepo-q1w2e"},
        "spec": {"storageProviderRef": "local", "pvReclaimPolicy": "Retain", "config": {"path": path}}});
    let (cl, task) = cluster(vec![
        step("GET", format!("{SPS}/local"), 200, provider("local")),
        step("GET", REPOS, 200, list("BackupRepoList", vec![])),
        step("POST", REPOS, 201, made).query("dryRun=All"),
    ]);
    let before = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
    std::fs::File::open(dir.path())
        .unwrap()
        .set_modified(before)
        .unwrap();
    create(
        &cl,
        args(&format!("--provider local --path {path} --dry-run")),
    )
    .unwrap();
    let seen = finish(cl, task);
    assert_eq!(seen[2].body["metadata"]["generateName"], "backuprepo-");
    // The probe ran against the directory (its work directory is there) and removed its files.
    fn files(d: &std::path::Path) -> usize {
        std::fs::read_dir(d)
            .unwrap()
            .map(|e| e.unwrap().path())
            .map(|p| if p.is_dir() { files(&p) } else { 1 })
            .sum()
    }
    // It leaves nothing, not even its temporary directory: the directory's modification time
    // (set an hour back before the run) says that something was made and removed there.
    let modified = std::fs::metadata(dir.path()).unwrap().modified().unwrap();
    assert!(modified > before, "the probe did not run");
    assert_eq!(files(dir.path()), 0);
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);

    // A path that does not exist: the verdict is a failure, nothing was created.
    let (cl, task) = cluster(vec![
        step("GET", format!("{SPS}/local"), 200, provider("local")),
        step("GET", REPOS, 200, list("BackupRepoList", vec![])),
        step("POST", REPOS, 201, Value::Null).query("dryRun=All"),
    ]);
    let err = create(
        &cl,
        args(&format!("--provider local --path {path}/missing --dry-run")),
    )
    .unwrap_err()
    .to_string();
    finish(cl, task);
    assert!(err.contains("nothing was stored"), "{err}");
}

#[test]
fn update_merges_credentials_and_removes_the_default() {
    let stored = repo(
        "r1",
        "s3",
        "Ready",
        json!({IS_DEFAULT_REPO_ANNOTATION: "true"}),
    );
    let secret = json!({"apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "kb-backuprepo-abcde", "namespace": "kb-system"},
        "data": {"accessKeyId": b64("OLD"), "secretAccessKey": b64("SK")}});
    let (cl, task) = cluster(vec![
        step("GET", format!("{REPOS}/r1"), 200, stored.clone()),
        step("GET", format!("{SPS}/s3"), 200, provider("s3")),
        step(
            "GET",
            format!("{KB_SECRETS}/kb-backuprepo-abcde"),
            200,
            secret.clone(),
        ),
        step(
            "PATCH",
            format!("{KB_SECRETS}/kb-backuprepo-abcde"),
            200,
            secret,
        ),
        step("PATCH", format!("{REPOS}/r1"), 200, stored),
    ]);
    update(&cl, args("r1 --access-key-id NEW --default=false")).unwrap();
    let seen = finish(cl, task);
    assert_eq!(
        seen[3].body,
        json!({"data": {"accessKeyId": b64("NEW"), "secretAccessKey": b64("SK")}})
    );
    assert_eq!(
        seen[4].body,
        json!({"metadata": {"annotations": {IS_DEFAULT_REPO_ANNOTATION: null}}})
    );

    // Non-credential flags are not update flags (kbcli).
    let (cl, task) = cluster(vec![
        step(
            "GET",
            format!("{REPOS}/r1"),
            200,
            repo("r1", "s3", "Ready", json!({})),
        ),
        step("GET", format!("{SPS}/s3"), 200, provider("s3")),
    ]);
    let err = update(&cl, args("r1 --region eu-west-1"))
        .unwrap_err()
        .to_string();
    finish(cl, task);
    assert!(err.contains("--region"), "{err}");
}

fn backup(ns: &str, name: &str, repo: &str, phase: &str, size: &str) -> Value {
    json!({"apiVersion": "dataprotection.kubeblocks.io/v1alpha1", "kind": "Backup",
        "metadata": {"name": name, "namespace": ns, "labels": {BACKUP_REPO_NAME_LABEL: repo}},
        "status": {"phase": phase, "totalSize": size}})
}

#[test]
fn usage_counts_backups_like_kbcli() {
    let (cl, task) = cluster(vec![
        step(
            "GET",
            BACKUPS,
            200,
            list(
                "BackupList",
                vec![
                    backup("a", "b1", "r1", "Completed", "1.5 GB"),
                    backup("b", "b2", "r1", "Completed", "500000000"),
                    backup("b", "b3", "r1", "Running", "9 GB"),
                    backup("b", "b4", "r2", "Completed", "10Mi"),
                ],
            ),
        )
        .query(&format!("labelSelector={BACKUP_REPO_NAME_LABEL}")),
        step("GET", BACKUPS, 404, not_found("backups")),
    ]);
    let u = cl.block(cl.store.backups(None)).unwrap().unwrap();
    assert_eq!(u["r1"], (3, 2_000_000_000));
    assert_eq!(u["r2"], (1, 10 * 1024 * 1024));
    // No Backup resource in the cluster: unknown, not zero.
    assert_eq!(cl.block(cl.store.backups(Some("r1"))).unwrap(), None);
    finish(cl, task);
}

#[test]
fn list_and_describe_read_the_cluster() {
    let (cl, task) = cluster(vec![
        step(
            "GET",
            REPOS,
            200,
            list("BackupRepoList", vec![repo("r1", "s3", "Ready", json!({}))]),
        ),
        step(
            "GET",
            BACKUPS,
            200,
            list(
                "BackupList",
                vec![backup("a", "b1", "r1", "Completed", "1000")],
            ),
        ),
        step(
            "GET",
            format!("{REPOS}/r1"),
            200,
            repo("r1", "s3", "Failed", json!({})),
        ),
        step("GET", BACKUPS, 200, list("BackupList", vec![]))
            .query(&format!("labelSelector={BACKUP_REPO_NAME_LABEL}=r1")),
        step("GET", format!("{REPOS}/nope"), 404, not_found("nope")),
    ]);
    list_repos(&cl, "table").unwrap();
    describe(&cl, &["r1".to_string()]).unwrap();
    let err = describe(&cl, &["nope".to_string()])
        .unwrap_err()
        .to_string();
    finish(cl, task);
    assert_eq!(err, "backup repository \"nope\" is not found");
}

#[test]
fn delete_is_refused_while_backups_use_the_repository() {
    let (cl, task) = cluster(vec![
        step(
            "GET",
            format!("{REPOS}/r1"),
            200,
            repo("r1", "s3", "Ready", json!({})),
        ),
        step(
            "GET",
            BACKUPS,
            200,
            list(
                "BackupList",
                vec![backup("a", "b1", "r1", "Completed", "1000")],
            ),
        ),
    ]);
    let err = delete(&cl, "r1", false, true).unwrap_err().to_string();
    finish(cl, task);
    assert!(err.contains("still containing 1 backup(s)"), "{err}");

    let (cl, task) = cluster(vec![
        step(
            "GET",
            format!("{REPOS}/r1"),
            200,
            repo("r1", "s3", "Ready", json!({})),
        ),
        step("GET", BACKUPS, 200, list("BackupList", vec![])),
        step(
            "DELETE",
            format!("{REPOS}/r1"),
            200,
            repo("r1", "s3", "Deleting", json!({})),
        ),
    ]);
    delete(&cl, "r1", false, true).unwrap();
    finish(cl, task);
}

#[test]
fn check_asks_the_controller_and_waits_for_its_answer() {
    let pending = repo(
        "r1",
        "s3",
        "Ready",
        json!({CHECK_REQUESTED_ANNOTATION: "t"}),
    );
    let (cl, task) = cluster(vec![
        step(
            "GET",
            format!("{REPOS}/r1"),
            200,
            repo("r1", "s3", "Ready", json!({})),
        ),
        step("PATCH", format!("{REPOS}/r1"), 200, pending.clone()),
        step("GET", format!("{REPOS}/r1"), 200, pending.clone()),
        step(
            "GET",
            format!("{REPOS}/r1"),
            200,
            repo("r1", "s3", "Failed", json!({})),
        ),
    ]);
    let err = check(&cl, "r1").unwrap_err().to_string();
    let seen = finish(cl, task);
    assert_eq!(err, "backup repository \"r1\" did not pass its check");
    let stamp = seen[1].body["metadata"]["annotations"][CHECK_REQUESTED_ANNOTATION]
        .as_str()
        .unwrap();
    assert!(stamp.ends_with('Z') && stamp.len() >= 20, "{stamp}");

    // No controller: the wait ends with an error that says what to look at.
    let mut script = vec![
        step(
            "GET",
            format!("{REPOS}/r1"),
            200,
            repo("r1", "s3", "Ready", json!({})),
        ),
        step("PATCH", format!("{REPOS}/r1"), 200, pending.clone()),
    ];
    let (cl, task) = {
        // Enough pending answers for the whole wait (0.3 s at 10 ms).
        script.extend((0..200).map(|_| step("GET", format!("{REPOS}/r1"), 200, pending.clone())));
        cluster(script)
    };
    let err = check(&cl, "r1").unwrap_err().to_string();
    cl.rt.shutdown_background();
    drop(task);
    assert!(
        err.contains("did not answer") && err.contains("r1"),
        "{err}"
    );
}

#[test]
fn check_all_requests_every_check_then_reports_each() {
    let pending = |n: &str| repo(n, "s3", "Ready", json!({CHECK_REQUESTED_ANNOTATION: "t"}));
    let (cl, task) = cluster(vec![
        step(
            "GET",
            REPOS,
            200,
            list(
                "BackupRepoList",
                vec![
                    repo("a", "s3", "Ready", json!({})),
                    repo("b", "s3", "Ready", json!({})),
                ],
            ),
        ),
        step("PATCH", format!("{REPOS}/a"), 200, pending("a")),
        step("PATCH", format!("{REPOS}/b"), 200, pending("b")),
        // a answers at once, b on the second look.
        step(
            "GET",
            format!("{REPOS}/a"),
            200,
            repo("a", "s3", "Ready", json!({})),
        ),
        step("GET", format!("{REPOS}/b"), 200, pending("b")),
        step(
            "GET",
            format!("{REPOS}/b"),
            200,
            repo("b", "s3", "Failed", json!({})),
        ),
    ]);
    let err = check_all(&cl).unwrap_err().to_string();
    finish(cl, task);
    assert_eq!(err, "not Ready: b");
}
