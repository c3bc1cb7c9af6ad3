#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The generated CRDs keep KubeBlocks' shape: group, scope, names, printer columns, and every
//! property of KubeBlocks' schemas with the same type, and no constraint KubeBlocks lacks
//! (enum, pattern, required), so that every object KubeBlocks' CRDs accept is accepted.

mod common;

use backuprepo_api::kube::CustomResourceExt;
use backuprepo_api::{BackupRepo, StorageProvider};
use serde_json::Value;

/// KubeBlocks' CRD, when `../shared` is there.
fn kubeblocks_crd(file: &str) -> Option<Value> {
    let text = common::read_shared(&format!("compat/kubeblocks/crds/{file}"))?;
    Some(serde_yaml_ng::from_str(&text).unwrap())
}

/// The enum values a schema admits (KubeBlocks writes `phase` as `allOf: [{enum}, {enum}]`).
fn enum_of(schema: &Value) -> Option<&Value> {
    schema.get("enum").or_else(|| {
        schema
            .get("allOf")
            .and_then(|a| a.as_array())
            .and_then(|a| a.iter().find_map(|s| s.get("enum")))
    })
}

fn compare(path: &str, theirs: &Value, ours: &Value, problems: &mut Vec<String>) {
    if let Some(t) = theirs.get("type") {
        if ours.get("type") != Some(t) {
            problems.push(format!("{path}: type {t} vs {:?}", ours.get("type")));
        }
    }
    if theirs.get("x-kubernetes-int-or-string") == Some(&Value::Bool(true))
        && ours.get("x-kubernetes-int-or-string") != Some(&Value::Bool(true))
    {
        problems.push(format!("{path}: not int-or-string"));
    }
    if theirs.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(true))
        && ours.get("x-kubernetes-preserve-unknown-fields") != Some(&Value::Bool(true))
    {
        problems.push(format!("{path}: does not preserve unknown fields"));
    }
    // Our schema may be looser (no enum or pattern), never stricter or different.
    if let Some(o) = enum_of(ours) {
        if enum_of(theirs) != Some(o) {
            problems.push(format!("{path}: enum {o} vs {:?}", enum_of(theirs)));
        }
    }
    if let Some(d) = theirs.get("default") {
        if ours.get("default") != Some(d) {
            problems.push(format!("{path}: default {d} vs {:?}", ours.get("default")));
        }
    }
    if let Some(p) = ours.get("pattern") {
        if theirs.get("pattern") != Some(p) {
            problems.push(format!(
                "{path}: pattern {p} vs {:?}",
                theirs.get("pattern")
            ));
        }
    }
    if let Some(props) = theirs.get("properties").and_then(Value::as_object) {
        for (name, t) in props {
            if ["apiVersion", "kind", "metadata"].contains(&name.as_str()) && path.is_empty() {
                continue;
            }
            match ours.get("properties").and_then(|p| p.get(name)) {
                Some(o) => compare(&format!("{path}.{name}"), t, o, problems),
                None => problems.push(format!("{path}.{name}: missing")),
            }
        }
    }
    if let Some(t) = theirs.get("items") {
        match ours.get("items") {
            Some(o) => compare(&format!("{path}[]"), t, o, problems),
            None => problems.push(format!("{path}: no items")),
        }
    }
    if let Some(t) = theirs.get("additionalProperties") {
        match ours.get("additionalProperties") {
            Some(o) => compare(&format!("{path}{{}}"), t, o, problems),
            None => problems.push(format!("{path}: no additionalProperties")),
        }
    }
    // We may require fewer fields, never more (the root `spec` aside).
    if let Some(req) = ours.get("required").and_then(Value::as_array) {
        for r in req {
            let theirs_req = theirs
                .get("required")
                .and_then(Value::as_array)
                .is_some_and(|t| t.contains(r));
            let root_spec = path.is_empty() && r == "spec";
            if !(theirs_req || root_spec) {
                problems.push(format!("{path}: requires {r}"));
            }
        }
    }
}

fn check(file: &str, ours: Value) {
    let Some(theirs) = kubeblocks_crd(file) else {
        return;
    };
    for key in ["group", "scope", "names"] {
        let (t, o) = (&theirs["spec"][key], &ours["spec"][key]);
        if key == "names" {
            for n in ["kind", "plural", "singular", "categories"] {
                assert_eq!(o[n], t[n], "{file}: names.{n}");
            }
        } else {
            assert_eq!(o, t, "{file}: {key}");
        }
    }
    let (tv, ov) = (&theirs["spec"]["versions"][0], &ours["spec"]["versions"][0]);
    assert_eq!(ov["name"], tv["name"]);
    assert_eq!(
        ov["additionalPrinterColumns"],
        tv["additionalPrinterColumns"]
    );
    assert_eq!(ov["subresources"], tv["subresources"]);
    let mut problems = Vec::new();
    compare(
        "",
        &tv["schema"]["openAPIV3Schema"],
        &ov["schema"]["openAPIV3Schema"],
        &mut problems,
    );
    assert!(problems.is_empty(), "{file}: {problems:#?}");
}

#[test]
fn backup_repo_crd_matches_kubeblocks() {
    check(
        "dataprotection.kubeblocks.io_backuprepos.yaml",
        serde_json::to_value(BackupRepo::crd()).unwrap(),
    );
}

#[test]
fn storage_provider_crd_matches_kubeblocks() {
    check(
        "dataprotection.kubeblocks.io_storageproviders.yaml",
        serde_json::to_value(StorageProvider::crd()).unwrap(),
    );
}
