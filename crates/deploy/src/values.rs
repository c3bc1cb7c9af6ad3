//! The KubeBlocks chart's `backupRepo:` values block (spec §3.4; the seed's "Automatic
//! BackupRepo configuration"), turned into the Secret and BackupRepo the chart renders.

use std::collections::BTreeMap;

use backuprepo_api::constants::IS_DEFAULT_REPO_ANNOTATION;
use backuprepo_api::{
    check_dns1123_subdomain, parse_quantity, AccessMethod, BackupRepo, BackupRepoSpec,
    PvReclaimPolicy,
};
use k8s_openapi::api::core::v1::{Secret, SecretReference};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use serde_yaml_ng::Value as Yaml;

use crate::install::labels;
use crate::DeployError;

/// Name of the Secret made from `backupRepo.secrets` (the chart's
/// `<fullname>-backuprepo-secret` for release `kubeblocks`).
pub const VALUES_SECRET_NAME: &str = "kubeblocks-backuprepo-secret";
/// Name of the BackupRepo made from the `backupRepo:` block (the chart's
/// `<fullname>-backuprepo`).
pub const VALUES_REPO_NAME: &str = "kubeblocks-backuprepo";

/// The volume capacity the chart uses when `backupRepo.volumeCapacity` is empty.
const DEFAULT_VOLUME_CAPACITY: &str = "100Gi";

/// Parses a Helm values file and returns the Secret (in `namespace`, `stringData` =
/// `backupRepo.secrets`) and the BackupRepo (`kubeblocks-backuprepo`, credential → that
/// Secret, default-repo annotation when `backupRepo.default`) that KubeBlocks' chart creates.
///
/// Returns `None` when the file has no `backupRepo:` block, `backupRepo.create` is false (its
/// default) or `backupRepo.storageProvider` is empty, as the chart renders nothing then.
/// Value defaults follow the chart: `default: true`, `accessMethod: Tool`,
/// `pvReclaimPolicy: Retain`, `volumeCapacity: 100Gi` when empty. Errors name the field;
/// values of `secrets` are never quoted.
pub fn backup_repo_from_values(
    text: &str,
    namespace: &str,
) -> Result<Option<(Secret, BackupRepo)>, DeployError> {
    let doc: Yaml =
        serde_yaml_ng::from_str(text).map_err(|e| DeployError::ValuesYaml(e.to_string()))?;
    let block = match &doc {
        Yaml::Null => return Ok(None),
        Yaml::Mapping(m) => match m.get("backupRepo") {
            None | Some(Yaml::Null) => return Ok(None),
            Some(Yaml::Mapping(b)) => b,
            Some(other) => {
                return Err(DeployError::values(
                    "backupRepo",
                    format!("must be a mapping, not {}", kind_of(other)),
                ))
            }
        },
        other => {
            return Err(DeployError::values(
                "(top level)",
                format!(
                    "a values file is a mapping (e.g. `backupRepo:` ...), not {}",
                    kind_of(other)
                ),
            ))
        }
    };
    for key in block.keys() {
        match key.as_str() {
            Some(
                "create" | "default" | "accessMethod" | "storageProvider" | "pvReclaimPolicy"
                | "volumeCapacity" | "config" | "secrets",
            ) => {}
            Some(k) => {
                return Err(DeployError::values(
                    format!("backupRepo.{k}"),
                    "is not a field of the chart's backupRepo block (create, default, \
                     accessMethod, storageProvider, pvReclaimPolicy, volumeCapacity, config, \
                     secrets)",
                ))
            }
            None => {
                return Err(DeployError::values(
                    "backupRepo",
                    "has a key that is not a string",
                ))
            }
        }
    }

    let create = boolean(block, "create", false)?;
    let is_default = boolean(block, "default", true)?;
    let provider = string(block, "storageProvider")?;
    let access = string(block, "accessMethod")?;
    let policy = string(block, "pvReclaimPolicy")?;
    let capacity = string(block, "volumeCapacity")?;
    let config = string_map(block, "config", false)?;
    let secrets = string_map(block, "secrets", true)?;
    if !create || provider.is_empty() {
        return Ok(None);
    }

    if let Err(why) = check_dns1123_subdomain(&provider) {
        return Err(DeployError::values(
            "backupRepo.storageProvider",
            format!(
                "{provider:?} is not a StorageProvider name ({why}); e.g. s3, oss, cos, \
                 gcs-s3comp, obs, minio, s3-compatible, ftp, nfs, pvc, azureblob"
            ),
        ));
    }
    let access = match access.as_str() {
        "" | "Tool" => AccessMethod::Tool,
        "Mount" => AccessMethod::Mount,
        other => {
            return Err(DeployError::values(
                "backupRepo.accessMethod",
                format!("{other:?} is not an access method: use Tool or Mount"),
            ))
        }
    };
    let policy = match policy.as_str() {
        "" | "Retain" => PvReclaimPolicy::Retain,
        "Delete" => PvReclaimPolicy::Delete,
        other => {
            return Err(DeployError::values(
                "backupRepo.pvReclaimPolicy",
                format!("{other:?} is not a reclaim policy: use Retain or Delete"),
            ))
        }
    };
    let capacity = if capacity.is_empty() {
        DEFAULT_VOLUME_CAPACITY.to_owned()
    } else {
        match parse_quantity(&capacity) {
            Some(v) if v > 0.0 => capacity,
            _ => {
                return Err(DeployError::values(
                    "backupRepo.volumeCapacity",
                    format!(
                        "{capacity:?} is not a positive Kubernetes quantity (e.g. \"100Gi\"; \
                         empty means 100Gi)"
                    ),
                ))
            }
        }
    };

    let mut secret = Secret::default();
    secret.metadata.name = Some(VALUES_SECRET_NAME.into());
    secret.metadata.namespace = Some(namespace.into());
    secret.metadata.labels = Some(labels(None));
    secret.string_data = Some(secrets);

    let mut repo = BackupRepo::new(
        VALUES_REPO_NAME,
        BackupRepoSpec {
            storage_provider_ref: provider,
            access_method: Some(access),
            volume_capacity: Some(Quantity(capacity)),
            pv_reclaim_policy: policy,
            config,
            credential: Some(SecretReference {
                name: Some(VALUES_SECRET_NAME.into()),
                namespace: Some(namespace.into()),
            }),
            path_prefix: None,
            allowed_namespaces: None,
        },
    );
    repo.metadata.labels = Some(labels(None));
    if is_default {
        repo.metadata.annotations = Some(BTreeMap::from([(
            IS_DEFAULT_REPO_ANNOTATION.to_owned(),
            "true".to_owned(),
        )]));
    }
    if let Err(errs) = repo.validate() {
        let text: Vec<String> = errs.iter().map(ToString::to_string).collect();
        return Err(DeployError::values("backupRepo", text.join("; ")));
    }
    Ok(Some((secret, repo)))
}

fn kind_of(v: &Yaml) -> &'static str {
    match v {
        Yaml::Null => "null",
        Yaml::Bool(_) => "a boolean",
        Yaml::Number(_) => "a number",
        Yaml::String(_) => "a string",
        Yaml::Sequence(_) => "a list",
        Yaml::Mapping(_) => "a mapping",
        Yaml::Tagged(_) => "a tagged value",
    }
}

fn boolean(block: &serde_yaml_ng::Mapping, key: &str, default: bool) -> Result<bool, DeployError> {
    match block.get(key) {
        None | Some(Yaml::Null) => Ok(default),
        Some(Yaml::Bool(b)) => Ok(*b),
        Some(other) => Err(DeployError::values(
            format!("backupRepo.{key}"),
            format!(
                "must be true or false, not {} (default {default})",
                kind_of(other)
            ),
        )),
    }
}

/// A string field; null or absent is "".
fn string(block: &serde_yaml_ng::Mapping, key: &str) -> Result<String, DeployError> {
    match block.get(key) {
        None | Some(Yaml::Null) => Ok(String::new()),
        Some(Yaml::String(s)) => Ok(s.trim().to_owned()),
        Some(other) => Err(DeployError::values(
            format!("backupRepo.{key}"),
            format!("must be a string, not {}", kind_of(other)),
        )),
    }
}

/// A `map[string]string`: scalars are kept as their text, null becomes "" (as Helm renders
/// them); lists and mappings are refused. With `secret`, no value is ever quoted.
fn string_map(
    block: &serde_yaml_ng::Mapping,
    key: &str,
    secret: bool,
) -> Result<BTreeMap<String, String>, DeployError> {
    let map = match block.get(key) {
        None | Some(Yaml::Null) => return Ok(BTreeMap::new()),
        Some(Yaml::Mapping(m)) => m,
        Some(other) => {
            return Err(DeployError::values(
                format!("backupRepo.{key}"),
                format!(
                    "must be a mapping of names to values, not {}",
                    kind_of(other)
                ),
            ))
        }
    };
    let mut out = BTreeMap::new();
    for (k, v) in map {
        let name = match k {
            Yaml::String(s) => s.clone(),
            Yaml::Bool(_) | Yaml::Number(_) if !secret => scalar_text(k).unwrap_or_default(),
            _ => {
                return Err(DeployError::values(
                    format!("backupRepo.{key}"),
                    "has a key that is not a string",
                ))
            }
        };
        let text = scalar_text(v).ok_or_else(|| {
            DeployError::values(
                format!("backupRepo.{key}.{name}"),
                format!(
                    "must be a string (or a number or boolean), not {}{}",
                    kind_of(v),
                    if secret {
                        ""
                    } else {
                        "; quote it if it is meant as text"
                    }
                ),
            )
        })?;
        out.insert(name, text);
    }
    Ok(out)
}

fn scalar_text(v: &Yaml) -> Option<String> {
    match v {
        Yaml::Null => Some(String::new()),
        Yaml::Bool(b) => Some(b.to_string()),
        Yaml::Number(n) => Some(n.to_string()),
        Yaml::String(s) => Some(s.clone()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    const SEED: &str = "backupRepo:
  create: true
  storageProvider: s3
  config:
    region: cn-northwest-1
    bucket: test-kb-backup
  secrets:
    accessKeyId: <ACCESS KEY>
    secretAccessKey: <SECRET KEY>
";

    #[test]
    fn chart_defaults() {
        let (secret, repo) = backup_repo_from_values(SEED, "ns1").unwrap().unwrap();
        assert_eq!(secret.metadata.name.as_deref(), Some(VALUES_SECRET_NAME));
        assert_eq!(secret.metadata.namespace.as_deref(), Some("ns1"));
        let data = secret.string_data.unwrap();
        assert_eq!(data["accessKeyId"], "<ACCESS KEY>");
        assert_eq!(data["secretAccessKey"], "<SECRET KEY>");
        assert_eq!(repo.name(), VALUES_REPO_NAME);
        assert!(repo.is_default());
        assert_eq!(repo.spec.storage_provider_ref, "s3");
        assert_eq!(repo.spec.access_method, Some(AccessMethod::Tool));
        assert_eq!(repo.spec.pv_reclaim_policy, PvReclaimPolicy::Retain);
        assert_eq!(repo.spec.volume_capacity, Some(Quantity("100Gi".into())));
        assert_eq!(repo.spec.config["region"], "cn-northwest-1");
        assert_eq!(repo.spec.config["bucket"], "test-kb-backup");
        let cred = repo.spec.credential.unwrap();
        assert_eq!(cred.name.as_deref(), Some(VALUES_SECRET_NAME));
        assert_eq!(cred.namespace.as_deref(), Some("ns1"));
    }

    #[test]
    fn explicit_values() {
        let text = "backupRepo:
  create: true
  default: false
  accessMethod: Mount
  storageProvider: minio
  pvReclaimPolicy: Delete
  volumeCapacity: 20Gi
  config: {port: 9000, insecure: true, empty: null}
  secrets: {}
";
        let (secret, repo) = backup_repo_from_values(text, "kb-system").unwrap().unwrap();
        assert!(!repo.is_default());
        assert!(repo.metadata.annotations.is_none());
        assert_eq!(repo.spec.access_method, Some(AccessMethod::Mount));
        assert_eq!(repo.spec.pv_reclaim_policy, PvReclaimPolicy::Delete);
        assert_eq!(repo.spec.volume_capacity, Some(Quantity("20Gi".into())));
        assert_eq!(repo.spec.config["port"], "9000");
        assert_eq!(repo.spec.config["insecure"], "true");
        assert_eq!(repo.spec.config["empty"], "");
        assert_eq!(secret.string_data, Some(BTreeMap::new()));
    }

    #[test]
    fn nothing_when_not_created() {
        for text in [
            "",
            "image: {tag: x}\n",
            "backupRepo:\n",
            "backupRepo:\n  storageProvider: s3\n",
            "backupRepo:\n  create: false\n  storageProvider: s3\n",
            "backupRepo:\n  create: true\n  storageProvider: \"\"\n",
            "backupRepo:\n  create: true\n",
        ] {
            assert!(
                backup_repo_from_values(text, "ns").unwrap().is_none(),
                "{text:?}"
            );
        }
    }

    #[test]
    fn errors_name_the_field() {
        let cases = [
            ("backupRepo: [1]\n", "backupRepo"),
            ("- a\n", "(top level)"),
            ("backupRepo:\n  create: \"yes\"\n", "backupRepo.create"),
            (
                "backupRepo:\n  create: true\n  default: 1\n  storageProvider: s3\n",
                "backupRepo.default",
            ),
            (
                "backupRepo:\n  create: true\n  storageProvider: s3\n  accessMethod: Both\n",
                "backupRepo.accessMethod",
            ),
            (
                "backupRepo:\n  create: true\n  storageProvider: s3\n  pvReclaimPolicy: Keep\n",
                "backupRepo.pvReclaimPolicy",
            ),
            (
                "backupRepo:\n  create: true\n  storageProvider: s3\n  volumeCapacity: lots\n",
                "backupRepo.volumeCapacity",
            ),
            (
                "backupRepo:\n  create: true\n  storageProvider: S3_X\n",
                "backupRepo.storageProvider",
            ),
            (
                "backupRepo:\n  create: true\n  storageProvider: s3\n  config: [a]\n",
                "backupRepo.config",
            ),
            (
                "backupRepo:\n  create: true\n  storageProvider: s3\n  config: {bucket: [a]}\n",
                "backupRepo.config.bucket",
            ),
            (
                "backupRepo:\n  create: true\n  storageProvider: s3\n  bucket: x\n",
                "backupRepo.bucket",
            ),
        ];
        for (text, field) in cases {
            match backup_repo_from_values(text, "ns") {
                Err(DeployError::Values { field: f, message }) => {
                    assert_eq!(f, field, "{text:?}: {message}");
                    assert!(!message.is_empty());
                }
                other => panic!("{text:?}: expected an error on {field}, got {other:?}"),
            }
        }
        assert!(matches!(
            backup_repo_from_values("backupRepo: {create: true\n", "ns"),
            Err(DeployError::ValuesYaml(_))
        ));
    }

    #[test]
    fn secret_values_never_quoted() {
        let text = "backupRepo:\n  create: true\n  storageProvider: s3\n  secrets:\n    secretAccessKey: [\"TOPSECRET-1\"]\n";
        let err = backup_repo_from_values(text, "ns").unwrap_err().to_string();
        assert!(err.contains("backupRepo.secrets.secretAccessKey"), "{err}");
        assert!(!err.contains("TOPSECRET"), "{err}");
    }
}
