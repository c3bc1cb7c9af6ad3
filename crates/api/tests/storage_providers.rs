#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The 11 StorageProviders KubeBlocks ships parse unchanged, with the right access methods.

mod common;

use backuprepo_api::{parse_documents, AccessMethod, Document, StorageProvider};

/// KubeBlocks' provider `name`, when `../shared` is there.
fn load(name: &str) -> Option<StorageProvider> {
    let text = common::read_shared(&format!("compat/kubeblocks/storageproviders/{name}.yaml"))?;
    let mut parsed = parse_documents(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
    assert_eq!(parsed.len(), 1, "{name}");
    let p = parsed.remove(0);
    assert!(p.warnings.is_empty(), "{name}: {:?}", p.warnings);
    match p.doc {
        Document::StorageProvider(sp) => Some(sp),
        other => panic!("{name}: parsed as {}", other.kind()),
    }
}

#[test]
fn all_shipped_providers_parse() {
    let Some(dir) = common::shared_path("compat/kubeblocks/storageproviders") else {
        return;
    };
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".yaml"))
        .map(|n| n.trim_end_matches(".yaml").to_owned())
        .collect();
    names.sort();
    assert_eq!(names.len(), 11, "{names:?}");

    use AccessMethod::{Mount, Tool};
    for name in &names {
        let sp = load(name).unwrap();
        assert_eq!(sp.name(), name.as_str());
        let expected: &[AccessMethod] = match name.as_str() {
            "ftp" | "azureblob" => &[Tool],
            "nfs" | "pvc" => &[Mount],
            "s3" | "oss" | "cos" | "obs" | "minio" | "gcs-s3comp" | "s3-compatible" => {
                &[Mount, Tool]
            }
            other => panic!("unexpected provider {other}"),
        };
        assert_eq!(sp.access_methods(), expected, "{name}");
        assert_eq!(sp.supports_tool(), expected.contains(&Tool), "{name}");
        assert_eq!(sp.supports_mount(), expected.contains(&Mount), "{name}");
        let schema = sp.spec.open_api_v3_schema();
        assert!(
            schema.is_some(),
            "{name}: no parametersSchema.openAPIV3Schema"
        );
    }
}

#[test]
fn ftp_details() {
    let Some(sp) = load("ftp") else {
        return;
    };
    assert_eq!(sp.spec.credential_fields(), ["ftpUser", "ftpPassword"]);
    let schema = sp.spec.open_api_v3_schema().unwrap();
    assert_eq!(schema["properties"]["ftpPort"]["default"], 21);
    assert_eq!(schema["properties"]["ftpTls"]["default"], false);
    assert!(sp.spec.csi_driver_name.is_none());
    assert!(sp
        .spec
        .datasafed_config_template
        .as_deref()
        .unwrap()
        .contains("type = ftp"));
}

#[test]
fn s3_has_csi_driver() {
    let Some(sp) = load("s3") else {
        return;
    };
    assert!(sp
        .spec
        .csi_driver_name
        .as_deref()
        .is_some_and(|d| !d.is_empty()));
    assert!(sp.spec.storage_class_template.is_some());
    assert!(sp.spec.csi_driver_secret_template.is_some());
}

#[test]
fn providers_round_trip_through_json() {
    for name in ["s3", "nfs", "azureblob"] {
        let Some(sp) = load(name) else {
            return;
        };
        let json = serde_json::to_value(&sp).unwrap();
        assert_eq!(json["apiVersion"], "dataprotection.kubeblocks.io/v1alpha1");
        assert_eq!(json["kind"], "StorageProvider");
        assert!(json.get("status").is_none());
        let back: StorageProvider = serde_json::from_value(json).unwrap();
        assert_eq!(back, sp);
    }
}
