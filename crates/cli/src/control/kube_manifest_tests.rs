//! The manifest commands over `KubeStore` against the scripted API server: apply (a dry run of
//! everything first), annotate, secret create, install, rotate-keys.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use backuprepo_api::constants::IS_DEFAULT_REPO_ANNOTATION;
use backuprepo_kube_mock::{list, not_found, step, Seen, Step};
use backuprepo_operator::store::resource_for;
use serde_json::{json, Value};

use super::kube_tests::*;
use super::{manifests, repos};

#[test]
fn apply_dry_runs_everything_then_applies() {
    let docs = backuprepo_api::parse_documents(
        r#"
apiVersion: v1
kind: Secret
metadata: {name: s3-credential-for-backuprepo, namespace: kb-system}
stringData: {accessKeyId: AK, secretAccessKey: SK}
---
apiVersion: dataprotection.kubeblocks.io/v1alpha1
kind: BackupRepo
metadata:
  name: my-repo
  annotations: {dataprotection.kubeblocks.io/is-default-repo: "true"}
spec:
  storageProviderRef: s3
  accessMethod: Tool
  pvReclaimPolicy: Retain
  volumeCapacity: 100Gi
  config: {bucket: test-kb-backup, region: cn-northwest-1}
  credential: {name: s3-credential-for-backuprepo, namespace: kb-system}
"#,
    )
    .unwrap()
    .into_iter()
    .map(|p| p.doc)
    .collect::<Vec<_>>();
    let secret_path = format!("{KB_SECRETS}/s3-credential-for-backuprepo");
    let with_rv = |rv: &str| json!({"metadata": {"name": "x", "resourceVersion": rv}});
    let (cl, task) = cluster(vec![
        // The provider (unknown config keys), the repositories (overlaps), then the apply.
        step("GET", format!("{SPS}/s3"), 200, provider("s3")),
        step("GET", REPOS, 200, list("BackupRepoList", vec![])),
        step("GET", REPOS, 200, list("BackupRepoList", vec![])),
        step("GET", &secret_path, 200, with_rv("5")),
        step("GET", format!("{REPOS}/my-repo"), 404, not_found("my-repo")),
        step("PATCH", &secret_path, 200, with_rv("5")).query("dryRun=All"),
        step("PATCH", format!("{REPOS}/my-repo"), 200, with_rv("1")).query("dryRun=All"),
        step("PATCH", &secret_path, 200, with_rv("5")).query("fieldManager=backuprepo"),
        step("PATCH", format!("{REPOS}/my-repo"), 201, with_rv("1")).query("force=true"),
    ]);
    apply(&cl, docs.clone()).unwrap();
    let seen = finish(cl, task);
    for s in &seen[5..] {
        assert_eq!(s.content_type, "application/apply-patch+yaml");
        assert!(s.query.contains("fieldManager=backuprepo"), "{}", s.query);
    }
    assert!(!seen[7].query.contains("dryRun"));
    assert_eq!(seen[7].body["stringData"]["accessKeyId"], "AK");
    assert_eq!(seen[8].body["spec"]["storageProviderRef"], "s3");

    // The server refuses the repository in the dry run: nothing is written for real.
    let refusal = json!({"kind": "Status", "status": "Failure", "reason": "Invalid", "code": 422,
        "message": "spec.accessMethod: Unsupported value"});
    let (cl, task) = cluster(vec![
        // The provider (unknown config keys), the repositories (overlaps), then the apply.
        step("GET", format!("{SPS}/s3"), 200, provider("s3")),
        step("GET", REPOS, 200, list("BackupRepoList", vec![])),
        step("GET", REPOS, 200, list("BackupRepoList", vec![])),
        step("GET", &secret_path, 404, not_found("s")),
        step("GET", format!("{REPOS}/my-repo"), 404, not_found("my-repo")),
        step("PATCH", &secret_path, 200, with_rv("1")).query("dryRun=All"),
        step("PATCH", format!("{REPOS}/my-repo"), 422, refusal).query("dryRun=All"),
    ]);
    let err = apply(&cl, docs.clone()).unwrap_err().to_string();
    finish(cl, task);
    assert!(
        err.contains("nothing was changed") && err.contains("Unsupported value"),
        "{err}"
    );

    // A second default is refused before anything is sent.
    let existing = || {
        list(
            "BackupRepoList",
            vec![repo(
                "old",
                "s3",
                "Ready",
                json!({IS_DEFAULT_REPO_ANNOTATION: "true"}),
            )],
        )
    };
    let (cl, task) = cluster(vec![
        step("GET", format!("{SPS}/s3"), 200, provider("s3")),
        step("GET", REPOS, 200, existing()),
        step("GET", REPOS, 200, existing()),
    ]);
    let err = apply(&cl, docs).unwrap_err().to_string();
    finish(cl, task);
    assert!(
        err.contains("only one backup repository can be the default"),
        "{err}"
    );
}

#[test]
fn annotate_patches_with_the_resource_version() {
    let (cl, task) = cluster(vec![
        step(
            "GET",
            format!("{REPOS}/r1"),
            200,
            repo("r1", "s3", "Ready", json!({"a": "1"})),
        ),
        step("GET", REPOS, 200, list("BackupRepoList", vec![])),
        step(
            "PATCH",
            format!("{REPOS}/r1"),
            200,
            repo("r1", "s3", "Ready", json!({})),
        ),
    ]);
    annotate(
        &cl,
        "backuprepo",
        "r1",
        &args(&format!("{IS_DEFAULT_REPO_ANNOTATION}=true a-")),
        false,
    )
    .unwrap();
    let seen = finish(cl, task);
    assert_eq!(
        seen[2].body,
        json!({"metadata": {"annotations": {IS_DEFAULT_REPO_ANNOTATION: "true", "a": null},
                            "resourceVersion": "7"}})
    );
}

#[test]
fn secret_create_reports_a_conflict() {
    let conflict = json!({"kind": "Status", "status": "Failure", "reason": "AlreadyExists",
        "code": 409, "message": "secrets \"s\" already exists"});
    let (cl, task) = cluster(vec![
        step(
            "POST",
            "/api/v1/namespaces/default/secrets",
            201,
            Value::Null,
        ),
        step("POST", "/api/v1/namespaces/default/secrets", 409, conflict),
    ]);
    create_secret(&cl, "s", "default", &args("k=v")).unwrap();
    let err = create_secret(&cl, "s", "default", &args("k=v"))
        .unwrap_err()
        .to_string();
    let seen = finish(cl, task);
    assert_eq!(seen[0].body["stringData"], json!({"k": "v"}));
    assert!(err.contains("already exists in namespace default"), "{err}");
}

#[test]
fn install_applies_crds_waits_for_them_then_the_rest() {
    let opts = backuprepo_deploy::InstallOptions::default();
    let objects = backuprepo_deploy::install_manifests(&opts).unwrap();
    let crd_path =
        |name: &str| format!("/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{name}");
    let path_of = |v: &Value| -> String {
        let av = v["apiVersion"].as_str().unwrap();
        let kind = v["kind"].as_str().unwrap();
        let (ar, namespaced) = resource_for(av, kind).unwrap();
        let base = if ar.group.is_empty() {
            format!("/api/{}", ar.version)
        } else {
            format!("/apis/{}/{}", ar.group, ar.version)
        };
        let name = v["metadata"]["name"].as_str().unwrap();
        if namespaced {
            let ns = v["metadata"]["namespace"].as_str().unwrap();
            format!("{base}/namespaces/{ns}/{}/{name}", ar.plural)
        } else {
            format!("{base}/{}/{name}", ar.plural)
        }
    };
    let (crds, rest): (Vec<Value>, Vec<Value>) = objects
        .iter()
        .cloned()
        .partition(|v| v["kind"] == "CustomResourceDefinition");
    assert_eq!(crds.len(), 2);
    let rv = json!({"metadata": {"name": "x", "resourceVersion": "1"}});
    let mut script = Vec::new();
    let apply_steps = |objs: &[Value], script: &mut Vec<Step>| {
        for o in objs {
            script.push(step("GET", path_of(o), 404, not_found("x")));
        }
        for o in objs {
            script
                .push(step("PATCH", path_of(o), 201, rv.clone()).query("fieldManager=backuprepo"));
        }
    };
    apply_steps(&crds, &mut script);
    let established = json!({"metadata": {"name": "x"},
        "status": {"conditions": [{"type": "Established", "status": "True"}]}});
    let name0 = crds[0]["metadata"]["name"].as_str().unwrap();
    let name1 = crds[1]["metadata"]["name"].as_str().unwrap();
    script.push(step(
        "GET",
        crd_path(name0),
        200,
        json!({"metadata": {"name": "x"}}),
    ));
    script.push(step("GET", crd_path(name0), 200, established.clone()));
    script.push(step("GET", crd_path(name1), 200, established));
    apply_steps(&rest, &mut script);
    // The admission policy is not configured yet on the first try (as a real API server right
    // after the policy is created), then admits the probe.
    let probe =
        "/apis/dataprotection.kubeblocks.io/v1alpha1/backuprepos/backuprepo-install-admission-probe";
    script.push(
        step("PATCH", probe, 422, json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
            "reason": "Invalid", "code": 422,
            "message": "ValidatingAdmissionPolicy 'backuprepo-single-default' with binding 'backuprepo-single-default' denied request: failed to configure binding: paramKind kind `BackupRepo` not yet synced to use for admission"}))
        .query("dryRun=All"),
    );
    script.push(step("PATCH", probe, 200, rv.clone()).query("dryRun=All"));
    let expected = script.len();
    let (cl, task) = cluster(script);
    let request = backuprepo_core::store::InstallRequest {
        namespace: Some(opts.namespace.clone()),
        ..Default::default()
    };
    cl.block(manifests::install(&cl.store, None, request))
        .unwrap();
    let seen = finish(cl, task);
    assert_eq!(seen.len(), expected);
    // Every object went out whole, by server-side apply, in the order install --print has.
    let applied: Vec<&Seen> = seen
        .iter()
        .filter(|s| s.method == "PATCH" && !s.query.contains("dryRun"))
        .collect();
    assert_eq!(applied.len(), objects.len());
    let kinds: Vec<&str> = applied
        .iter()
        .map(|s| s.body["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds[..3],
        [
            "CustomResourceDefinition",
            "CustomResourceDefinition",
            "Namespace"
        ]
    );
    assert!(kinds.contains(&"ValidatingAdmissionPolicy") && kinds.contains(&"Deployment"));
    for s in applied {
        assert_eq!(s.content_type, "application/apply-patch+yaml");
    }
}

#[test]
fn rotate_keys_asks_the_controller_and_describe_lists_the_keys() {
    let mut r = repo("r1", "minio", "Ready", json!({}));
    r["status"]["scopedCredentials"] = json!([{
        "namespace": "ns-a", "user": "br-r1-ns-a-0123456789", "accessKeyId": "AKIANEW",
        "createdAt": "2023-11-14T22:13:20Z",
        "retiring": [{"accessKeyId": "AKIAOLD", "until": "2023-11-15T22:13:20Z"}],
        "readPaths": ["pp/ns-b/b1"]
    }]);
    let (cl, task) = cluster(vec![
        step("GET", format!("{REPOS}/r1"), 200, r.clone()),
        step("GET", format!("{REPOS}/r1"), 200, r.clone()),
        step("PATCH", format!("{REPOS}/r1"), 200, r.clone()),
    ]);
    cl.block(super::grants::rotate_keys(&cl.store, "r1"))
        .unwrap();
    let seen = finish(cl, task);
    let stamp = &seen[2].body["metadata"]["annotations"]["backuprepo.io/rotate-keys"];
    assert!(stamp.as_str().unwrap().ends_with('Z'), "{stamp}");
    assert_eq!(seen[2].body["metadata"]["resourceVersion"], "7");

    let parsed: backuprepo_api::BackupRepo = serde_json::from_value(r).unwrap();
    let text = repos::describe_text(&parsed, None, "Backups");
    let line = text
        .lines()
        .find(|l| l.contains("ns-a"))
        .unwrap_or_else(|| panic!("{text}"));
    for cell in ["br-r1-ns-a-0123456789", "AKIANEW", "pp/ns-b/b1"] {
        assert!(line.contains(cell), "{line}");
    }
    assert!(text.contains("Scoped Keys:"), "{text}");

    // Nothing to rotate: refused, and nothing written.
    let (cl, task) = cluster(vec![step(
        "GET",
        format!("{REPOS}/r1"),
        200,
        repo("r1", "minio", "Ready", json!({})),
    )]);
    let err = cl
        .block(super::grants::rotate_keys(&cl.store, "r1"))
        .unwrap_err()
        .to_string();
    finish(cl, task);
    assert!(
        err.contains("no scoped keys") && err.contains("backuprepo.io/scoped-credentials=true"),
        "{err}"
    );
}
