//! One set of rules for both stores: the same BackupRepo (and Secret) given to the local
//! engine and to the operator (against a mocked API server) gets the same phase and the same
//! conditions (type, status, reason, message). Times differ by construction (each store's
//! clock) and are not compared.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;

use backuprepo_api::{BackupRepo, BackupRepoStatus};
use backuprepo_local::{now, Engine, Store};
use backuprepo_operator::reconcile_repo;
use common::*;
use serde_json::{json, Value};

/// (type, status, reason, message) of a condition.
type Cond = (String, String, String, String);
/// The phase and every condition.
type Verdict = (Option<String>, Vec<Cond>);

fn verdict(status: &BackupRepoStatus) -> Verdict {
    let mut conds: Vec<_> = status
        .conditions
        .iter()
        .map(|c| {
            (
                c.type_.clone(),
                c.status.clone(),
                c.reason.clone(),
                c.message.clone(),
            )
        })
        .collect();
    conds.sort();
    (status.phase.map(|p| p.as_str().to_string()), conds)
}

async fn by_local_engine(repo: &BackupRepo, secret: Option<&Value>) -> BackupRepoStatus {
    let home = tempfile::tempdir().unwrap();
    let store = Store::open(home.path()).unwrap();
    let lock = store.lock().unwrap();
    if let Some(s) = secret {
        store
            .put_secret(&lock, serde_json::from_value(s.clone()).unwrap(), &now())
            .unwrap();
    }
    let mut r = repo.clone();
    r.metadata.resource_version = None;
    r.metadata.finalizers = None;
    store.put_repo(&lock, r, &now()).unwrap();
    drop(lock);
    let engine = Engine::new(store);
    engine
        .reconcile(repo.name(), false)
        .await
        .unwrap()
        .status
        .unwrap()
}

async fn by_operator(repo: &BackupRepo, secret: Option<&Value>) -> BackupRepoStatus {
    let mut objects = vec![to_value(&local_provider()), to_value(repo)];
    objects.extend(secret.cloned());
    let (client, log, server) = by_rule(world(objects, ""));
    reconcile_repo(context(client), Arc::new(repo.clone()))
        .await
        .unwrap();
    server.abort();
    let seen = log.lock().unwrap().clone();
    let patch = seen
        .iter()
        .find(|r| r.method == "PATCH" && r.path.ends_with("/status"))
        .unwrap_or_else(|| panic!("no status written: {seen:#?}"));
    serde_json::from_value(patch.body["status"].clone()).unwrap()
}

async fn same_verdict(
    repo: BackupRepo,
    secret: Option<Value>,
) -> (Option<String>, Vec<(String, String, String, String)>) {
    let local = verdict(&by_local_engine(&repo, secret.as_ref()).await);
    let operator = verdict(&by_operator(&repo, secret.as_ref()).await);
    assert_eq!(local, operator, "the stores disagree on {}", repo.name());
    local
}

#[tokio::test]
async fn both_stores_reach_the_same_status() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_str().unwrap();

    // Ready after a real probe.
    let (phase, _) = same_verdict(tool_repo(path), None).await;
    assert_eq!(phase.as_deref(), Some("Ready"));

    // A missing directory: Failed, with the same diagnosis.
    let (phase, conds) = same_verdict(tool_repo(&format!("{path}/absent")), None).await;
    assert_eq!(phase.as_deref(), Some("Failed"));
    assert!(conds
        .iter()
        .any(|c| c.0 == "PreCheckPassed" && c.1 == "False"));

    // A credential reference: to a missing Secret, to one that is there, and without a
    // namespace (one rule for both: refused, naming the field).
    let with_cred = |ns: Option<&str>| {
        let mut r = tool_repo(path);
        let mut cred = json!({"name": "creds"});
        if let Some(ns) = ns {
            cred["namespace"] = json!(ns);
        }
        r.spec.credential = Some(serde_json::from_value(cred).unwrap());
        r
    };
    let (phase, conds) = same_verdict(with_cred(Some("kb-system")), None).await;
    assert_eq!(phase.as_deref(), Some("Failed"));
    assert!(
        conds.iter().any(|c| c.2 == "CredentialSecretNotFound"),
        "{conds:?}"
    );
    let secret = json!({"apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "creds", "namespace": "kb-system"}, "data": {}});
    let (phase, _) = same_verdict(with_cred(Some("kb-system")), Some(secret)).await;
    assert_eq!(phase.as_deref(), Some("Ready"));
    let (_, conds) = same_verdict(with_cred(None), None).await;
    let c = conds.iter().find(|c| c.0 == "ParametersChecked").unwrap();
    assert_eq!(c.1, "False");
    assert!(
        c.3.contains("spec.credential.namespace must be set"),
        "{c:?}"
    );
}
