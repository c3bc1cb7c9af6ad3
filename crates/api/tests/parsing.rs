#![allow(clippy::unwrap_used, clippy::expect_used)]
//! parse_documents: dispatch, warnings, errors, secrets.

use backuprepo_api::{parse_documents, secret_data, ApiError, Document};

const REPO: &str = "\
apiVersion: dataprotection.kubeblocks.io/v1alpha1
kind: BackupRepo
metadata:
  name: my-repo
spec:
  storageProviderRef: s3
  pvReclaimPolicy: Retain
";

#[test]
fn multi_document_stream_dispatches_on_kind() {
    let yaml = format!(
        "---\n{REPO}---\n\n---\n# only a comment\n---\n\
apiVersion: dataprotection.kubeblocks.io/v1alpha1
kind: StorageProvider
metadata:
  name: nfs
spec:
  storageClassTemplate: x
---
apiVersion: v1
kind: Secret
metadata:
  name: cred
  namespace: kb-system
stringData:
  accessKeyId: AK
"
    );
    let docs = parse_documents(&yaml).unwrap();
    assert_eq!(docs.len(), 3);
    assert_eq!(docs.iter().map(|d| d.index).collect::<Vec<_>>(), [1, 4, 5]);
    assert_eq!(
        docs.iter().map(|d| d.doc.kind()).collect::<Vec<_>>(),
        ["BackupRepo", "StorageProvider", "Secret"]
    );
    assert_eq!(
        docs.iter().map(|d| d.doc.name()).collect::<Vec<_>>(),
        ["my-repo", "nfs", "cred"]
    );
    assert!(docs.iter().all(|d| d.warnings.is_empty()), "{docs:?}");
}

#[test]
fn empty_input_gives_no_documents() {
    assert!(parse_documents("").unwrap().is_empty());
    assert!(parse_documents("\n# nothing\n").unwrap().is_empty());
}

#[test]
fn unknown_fields_are_warned_about() {
    let yaml = "\
apiVersion: dataprotection.kubeblocks.io/v1alpha1
kind: BackupRepo
metadata:
  name: my-repo
  labelz: {}
spec:
  storageProvider: s3
  storageProviderRef: s3
  pvReclaimPolicy: Retain
  credential:
    name: c
    namespace: n
    key: x
extra: 1
";
    let docs = parse_documents(yaml).unwrap();
    let w = &docs[0].warnings;
    assert_eq!(w.len(), 4, "{w:?}");
    assert!(
        w.iter().any(|m| m.contains("`spec.storageProvider`")
            && m.contains("did you mean `spec.storageProviderRef`")),
        "{w:?}"
    );
    assert!(w.iter().any(|m| m.contains("`metadata.labelz`")), "{w:?}");
    assert!(
        w.iter().any(|m| m.contains("`spec.credential.key`")),
        "{w:?}"
    );
    assert!(w.iter().any(|m| m.contains("`extra`")), "{w:?}");
    // apiVersion and kind are never reported
    assert!(!w
        .iter()
        .any(|m| m.contains("apiVersion") || m.contains("`kind`")));
}

#[test]
fn unknown_fields_in_secrets_and_providers() {
    let yaml = "\
apiVersion: v1
kind: Secret
metadata: {name: s}
strinData: {a: b}
---
apiVersion: dataprotection.kubeblocks.io/v1alpha1
kind: StorageProvider
metadata: {name: p}
spec:
  datasafedConfigTemplat: x
  parametersSchema:
    credentialField: [a]
";
    let docs = parse_documents(yaml).unwrap();
    assert_eq!(docs[0].warnings, ["unknown field `strinData`"]);
    assert_eq!(
        docs[1].warnings,
        [
            "unknown field `spec.datasafedConfigTemplat` (did you mean `spec.datasafedConfigTemplate`?)",
            "unknown field `spec.parametersSchema.credentialField`"
        ]
    );
}

#[test]
fn unknown_kind_is_an_error_listing_supported_kinds() {
    let yaml = format!("{REPO}---\napiVersion: v1\nkind: ConfigMap\nmetadata: {{name: x}}\n");
    let err = parse_documents(&yaml).unwrap_err();
    assert!(matches!(
        &err,
        ApiError::UnsupportedKind { document: 2, kind, .. } if kind == "ConfigMap"
    ));
    let msg = err.to_string();
    assert!(msg.starts_with("document 2:"), "{msg}");
    assert!(msg.contains("ConfigMap"), "{msg}");
    assert!(msg.contains("BackupRepo"), "{msg}");
    assert!(msg.contains("StorageProvider"), "{msg}");
    assert!(msg.contains("v1 Secret"), "{msg}");
}

#[test]
fn legacy_api_group_is_an_error() {
    let yaml = "apiVersion: storage.kubeblocks.io/v1alpha1\nkind: StorageProvider\nmetadata: {name: x}\nspec: {}\n";
    let msg = parse_documents(yaml).unwrap_err().to_string();
    assert!(msg.contains("storage.kubeblocks.io/v1alpha1"), "{msg}");
}

#[test]
fn missing_kind_is_an_error() {
    let err = parse_documents("apiVersion: v1\nmetadata: {name: x}\n").unwrap_err();
    assert!(err.to_string().contains("missing `kind`"), "{err}");
    let err = parse_documents("- a\n- b\n").unwrap_err();
    assert!(err.to_string().contains("mapping"), "{err}");
}

#[test]
fn malformed_yaml_reports_line_and_column() {
    let yaml = format!("{REPO}---\napiVersion: v1\nkind: Secret\nmetadata:\n  name: [unclosed\n");
    let err = parse_documents(&yaml).unwrap_err();
    let ApiError::Yaml {
        document,
        line,
        column,
        ..
    } = &err
    else {
        panic!("expected a YAML error, got {err:?}");
    };
    assert_eq!(*document, 2);
    // the error is past the first document: the line counts from the start of the input
    assert!(line.unwrap() >= 11, "{err}");
    assert!(column.is_some());
    let msg = err.to_string();
    assert!(msg.contains("line"), "{msg}");
    assert!(msg.contains("column"), "{msg}");
}

#[test]
fn bad_indentation_is_a_yaml_error() {
    let err = parse_documents("a:\n  b: 1\n c: 2\n").unwrap_err();
    assert!(
        matches!(
            err,
            ApiError::Yaml {
                document: 1,
                line: Some(_),
                ..
            }
        ),
        "{err:?}"
    );
}

#[test]
fn type_errors_name_the_field_and_location() {
    let yaml = REPO.replace("Retain", "Keep");
    let err = parse_documents(&yaml).unwrap_err();
    let msg = err.to_string();
    assert!(
        matches!(
            err,
            ApiError::InvalidObject {
                document: 1,
                line: Some(7),
                ..
            }
        ),
        "{err:?}"
    );
    assert!(msg.contains("\"my-repo\""), "{msg}");
    assert!(msg.contains("spec.pvReclaimPolicy"), "{msg}");
    assert!(msg.contains("Keep"), "{msg}");
    assert!(msg.contains("Delete") && msg.contains("Retain"), "{msg}");

    let yaml = REPO.replace("  pvReclaimPolicy: Retain\n", "");
    let msg = parse_documents(&yaml).unwrap_err().to_string();
    assert!(msg.contains("pvReclaimPolicy"), "{msg}");

    let yaml = format!("{REPO}  accessMethod: Ftp\n");
    let msg = parse_documents(&yaml).unwrap_err().to_string();
    assert!(msg.contains("accessMethod") && msg.contains("Ftp"), "{msg}");
}

#[test]
fn config_accepts_scalars_as_text() {
    let yaml = format!("{REPO}  config:\n    forcePathStyle: true\n    port: 9000\n    ratio: 0.5\n    empty:\n    s: \"x\"\n");
    let docs = parse_documents(&yaml).unwrap();
    let Document::BackupRepo(r) = &docs[0].doc else {
        panic!()
    };
    let c = &r.spec.config;
    assert_eq!(c["forcePathStyle"], "true");
    assert_eq!(c["port"], "9000");
    assert_eq!(c["ratio"], "0.5");
    assert_eq!(c["empty"], "");
    assert_eq!(c["s"], "x");
    let yaml = format!("{REPO}  config:\n    nested: {{a: b}}\n");
    assert!(parse_documents(&yaml).is_err());
}

#[test]
fn volume_capacity_accepts_integers() {
    let yaml = format!("{REPO}  volumeCapacity: 1000\n");
    let docs = parse_documents(&yaml).unwrap();
    let Document::BackupRepo(r) = &docs[0].doc else {
        panic!()
    };
    assert_eq!(r.spec.volume_capacity.as_ref().unwrap().0, "1000");
}

#[test]
fn secret_string_data_wins_over_data() {
    let yaml = "\
apiVersion: v1
kind: Secret
metadata:
  name: cred
  namespace: kb-system
data:
  accessKeyId: QUtJRA==
  secretAccessKey: b2xk
stringData:
  secretAccessKey: new
  region: us-east-1
";
    let docs = parse_documents(yaml).unwrap();
    let Document::Secret(s) = &docs[0].doc else {
        panic!()
    };
    let data = secret_data(s).unwrap();
    assert_eq!(data.len(), 3);
    assert_eq!(data["accessKeyId"], "AKID");
    assert_eq!(data["secretAccessKey"], "new");
    assert_eq!(data["region"], "us-east-1");
}

#[test]
fn secret_data_must_be_utf8() {
    // 0xff 0xfe
    let yaml =
        "apiVersion: v1\nkind: Secret\nmetadata: {name: s, namespace: ns}\ndata:\n  k: //4=\n";
    let docs = parse_documents(yaml).unwrap();
    let Document::Secret(s) = &docs[0].doc else {
        panic!()
    };
    let err = secret_data(s).unwrap_err();
    assert_eq!(
        err,
        ApiError::SecretDataNotUtf8 {
            secret: "ns/s".into(),
            key: "k".into()
        }
    );
    assert!(err.to_string().contains("UTF-8"));
}

#[test]
fn secret_data_must_be_base64() {
    let yaml = "apiVersion: v1\nkind: Secret\nmetadata: {name: s}\ndata:\n  k: \"not base64!\"\n";
    let err = parse_documents(yaml).unwrap_err();
    assert!(
        matches!(err, ApiError::InvalidObject { document: 1, .. }),
        "{err:?}"
    );
}
