#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The single-default admission policy's CEL, evaluated in Rust with `cel-interpreter` the
//! way the API server does: once per existing BackupRepo (`params`) for the object admitted.

use backuprepo_api::constants::IS_DEFAULT_REPO_ANNOTATION;
use backuprepo_deploy::{
    admission_policy, SINGLE_DEFAULT_EXPRESSION, SINGLE_DEFAULT_MESSAGE_EXPRESSION,
};
use cel_interpreter::{Context, Program, Value as Cel};
use serde_json::{json, Value};

fn repo(name: &str, annotations: Option<Value>) -> Value {
    let mut metadata = json!({"name": name});
    if let Some(a) = annotations {
        metadata["annotations"] = a;
    }
    json!({
        "apiVersion": "dataprotection.kubeblocks.io/v1alpha1",
        "kind": "BackupRepo",
        "metadata": metadata,
        "spec": {"storageProviderRef": "s3", "pvReclaimPolicy": "Retain"},
    })
}

fn default_repo(name: &str) -> Value {
    repo(name, Some(json!({IS_DEFAULT_REPO_ANNOTATION: "true"})))
}

fn eval(expr: &str, object: &Value, params: &Value) -> Cel {
    let program = Program::compile(expr).unwrap_or_else(|e| panic!("{expr}: {e:?}"));
    let mut ctx = Context::default();
    ctx.add_variable("object", object.clone()).unwrap();
    ctx.add_variable("params", params.clone()).unwrap();
    program
        .execute(&ctx)
        .unwrap_or_else(|e| panic!("{expr}: {e:?}"))
}

/// Admission as the API server decides it with `paramRef.selector: {}`: allowed when there is
/// no parameter (`parameterNotFoundAction: Allow`) or when every evaluation is true.
fn admitted(object: &Value, existing: &[Value]) -> bool {
    existing.iter().all(
        |params| match eval(SINGLE_DEFAULT_EXPRESSION, object, params) {
            Cel::Bool(b) => b,
            other => panic!("the expression returned {other:?}, not a bool"),
        },
    )
}

#[test]
fn the_policy_carries_the_expression() {
    let spec = admission_policy().spec.unwrap();
    let v = &spec.validations.unwrap()[0];
    assert_eq!(v.expression, SINGLE_DEFAULT_EXPRESSION);
    assert_eq!(
        v.message_expression.as_deref(),
        Some(SINGLE_DEFAULT_MESSAGE_EXPRESSION)
    );
}

#[test]
fn single_default_table() {
    let a_default = default_repo("a");
    let b_plain = repo("b", None);
    let c_false = repo("c", Some(json!({IS_DEFAULT_REPO_ANNOTATION: "false"})));
    let d_other = repo("d", Some(json!({"team": "db"})));

    let cases: &[(&str, Value, Vec<Value>, bool)] = &[
        (
            "first repo of the cluster, default",
            default_repo("x"),
            vec![],
            true,
        ),
        (
            "second default",
            default_repo("x"),
            vec![a_default.clone(), b_plain.clone()],
            false,
        ),
        (
            "same default object re-applied (update)",
            default_repo("a"),
            vec![a_default.clone(), b_plain.clone()],
            true,
        ),
        (
            "non-default next to a default",
            repo("x", Some(json!({IS_DEFAULT_REPO_ANNOTATION: "false"}))),
            vec![a_default.clone()],
            true,
        ),
        (
            "no annotations at all next to a default",
            repo("x", None),
            vec![a_default.clone(), c_false.clone()],
            true,
        ),
        (
            "other annotations only next to a default",
            repo("x", Some(json!({"team": "db"}))),
            vec![a_default.clone()],
            true,
        ),
        (
            "default when no other is default",
            default_repo("x"),
            vec![b_plain.clone(), c_false.clone(), d_other.clone()],
            true,
        ),
        (
            "turning a non-default into the default while another is default",
            default_repo("b"),
            vec![a_default.clone(), b_plain.clone()],
            false,
        ),
        (
            "value other than \"true\" is not default",
            repo("x", Some(json!({IS_DEFAULT_REPO_ANNOTATION: "True"}))),
            vec![a_default.clone()],
            true,
        ),
    ];
    for (what, object, existing, want) in cases {
        assert_eq!(admitted(object, existing), *want, "{what}");
    }
}

#[test]
fn the_refusal_names_the_existing_default_and_the_annotation() {
    let msg = eval(
        SINGLE_DEFAULT_MESSAGE_EXPRESSION,
        &default_repo("x"),
        &default_repo("old-default"),
    );
    let Cel::String(msg) = msg else {
        panic!("message is not a string: {msg:?}")
    };
    assert!(
        msg.starts_with("BackupRepo old-default is already the default"),
        "{msg}"
    );
    assert!(msg.contains(IS_DEFAULT_REPO_ANNOTATION), "{msg}");
    assert!(msg.contains("unset the other default first"), "{msg}");
    assert!(
        msg.contains("kubectl annotate backuprepo old-default"),
        "{msg}"
    );
}

/// The root rule of the BackupRepo CRD, as the API server evaluates it with `self` bound to
/// the object: names of up to 63 characters are accepted, longer ones refused.
#[test]
fn backup_repo_names_longer_than_a_label_value_are_refused() {
    let crd = backuprepo_deploy::crds()
        .into_iter()
        .find(|c| c.spec.names.kind == "BackupRepo")
        .unwrap();
    let schema = crd.spec.versions[0]
        .schema
        .as_ref()
        .unwrap()
        .open_api_v3_schema
        .as_ref()
        .unwrap();
    let rules = schema.x_kubernetes_validations.as_ref().unwrap();
    assert_eq!(rules.len(), 1);
    let rule = &rules[0];
    assert!(rule.message.as_deref().unwrap().contains("63"));
    let check = |name: &str| {
        let program = Program::compile(&rule.rule).unwrap();
        let mut ctx = Context::default();
        ctx.add_variable("self", repo(name, None)).unwrap();
        program.execute(&ctx).unwrap()
    };
    assert_eq!(check(&"a".repeat(63)), Cel::Bool(true));
    assert_eq!(check("r1"), Cel::Bool(true));
    assert_eq!(check(&"a".repeat(64)), Cel::Bool(false));
}

/// The second validation: a read-only repository is never the default, whichever annotation
/// comes second; either alone is fine.
#[test]
fn a_read_only_repository_is_never_the_default() {
    use backuprepo_api::constants::READ_ONLY_ANNOTATION;
    use backuprepo_deploy::READ_ONLY_DEFAULT_EXPRESSION;
    let spec = admission_policy().spec.unwrap();
    assert_eq!(
        spec.validations.unwrap()[1].expression,
        READ_ONLY_DEFAULT_EXPRESSION
    );
    let existing = repo("other", None);
    let cases = [
        (
            json!({IS_DEFAULT_REPO_ANNOTATION: "true", READ_ONLY_ANNOTATION: "true"}),
            false,
        ),
        (json!({IS_DEFAULT_REPO_ANNOTATION: "true"}), true),
        (json!({READ_ONLY_ANNOTATION: "true"}), true),
        (
            json!({IS_DEFAULT_REPO_ANNOTATION: "false", READ_ONLY_ANNOTATION: "true"}),
            true,
        ),
    ];
    for (annotations, allowed) in cases {
        let object = repo("x", Some(annotations.clone()));
        assert_eq!(
            eval(READ_ONLY_DEFAULT_EXPRESSION, &object, &existing),
            Cel::Bool(allowed),
            "{annotations}"
        );
    }
    assert_eq!(
        eval(READ_ONLY_DEFAULT_EXPRESSION, &repo("x", None), &existing),
        Cel::Bool(true)
    );
}
