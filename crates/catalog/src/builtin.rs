//! The built-in catalogue: one StorageProvider file per provider under `providers/`, compiled
//! into the binary. The eleven KubeBlocks providers render what KubeBlocks' own objects render
//! for the same parameters (checked by `tests/kubeblocks_compat.rs`); `local` is ours.

use backuprepo_api::StorageProvider;

/// `(name, YAML)` of every built-in provider, in the order `list-storage-provider` shows them.
pub const FILES: &[(&str, &str)] = &[
    ("azureblob", include_str!("../providers/azureblob.yaml")),
    ("cos", include_str!("../providers/cos.yaml")),
    ("ftp", include_str!("../providers/ftp.yaml")),
    ("gcs-s3comp", include_str!("../providers/gcs-s3comp.yaml")),
    ("local", include_str!("../providers/local.yaml")),
    ("minio", include_str!("../providers/minio.yaml")),
    ("nfs", include_str!("../providers/nfs.yaml")),
    ("obs", include_str!("../providers/obs.yaml")),
    ("oss", include_str!("../providers/oss.yaml")),
    ("pvc", include_str!("../providers/pvc.yaml")),
    ("s3", include_str!("../providers/s3.yaml")),
    (
        "s3-compatible",
        include_str!("../providers/s3-compatible.yaml"),
    ),
];

/// Every built-in provider. The files are part of the binary and tested, so a parse failure
/// is a build defect; it is still reported rather than panicking.
pub fn all() -> Result<Vec<StorageProvider>, String> {
    FILES.iter().map(|(name, _)| get(name)).collect()
}

/// One built-in provider by name.
pub fn get(name: &str) -> Result<StorageProvider, String> {
    let (_, text) = FILES
        .iter()
        .find(|(n, _)| *n == name)
        .ok_or_else(|| format!("no built-in storage provider named {name:?}"))?;
    serde_yaml_ng::from_str(text)
        .map_err(|e| format!("built-in storage provider {name:?} is malformed: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_builtin_parses_under_its_own_name() {
        let all = all().unwrap();
        assert_eq!(all.len(), 12);
        for p in &all {
            let name = p.metadata.name.as_deref().unwrap();
            assert!(FILES.iter().any(|(n, _)| *n == name), "{name}");
        }
        assert!(get("hdfs")
            .unwrap_err()
            .contains("no built-in storage provider"));
    }
}
