//! Parsing multi-document YAML into BackupRepos, StorageProviders and Secrets.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Secret;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_yaml_ng::Value;

use crate::backup_repo::BackupRepo;
use crate::constants::{API_VERSION, BACKUP_REPO_KIND, STORAGE_PROVIDER_KIND};
use crate::error::ApiError;
use crate::storage_provider::StorageProvider;

/// One object read from YAML.
#[derive(Clone, Debug, PartialEq)]
#[allow(clippy::large_enum_variant)]
pub enum Document {
    /// A `dataprotection.kubeblocks.io/v1alpha1` BackupRepo.
    BackupRepo(BackupRepo),
    /// A `dataprotection.kubeblocks.io/v1alpha1` StorageProvider.
    StorageProvider(StorageProvider),
    /// A `v1` Secret.
    Secret(Secret),
}

impl Document {
    /// The object's kind.
    pub fn kind(&self) -> &'static str {
        match self {
            Document::BackupRepo(_) => BACKUP_REPO_KIND,
            Document::StorageProvider(_) => STORAGE_PROVIDER_KIND,
            Document::Secret(_) => "Secret",
        }
    }

    /// The object's `metadata.name`, "" when unset.
    pub fn name(&self) -> &str {
        let meta = match self {
            Document::BackupRepo(o) => &o.metadata,
            Document::StorageProvider(o) => &o.metadata,
            Document::Secret(o) => &o.metadata,
        };
        meta.name.as_deref().unwrap_or_default()
    }
}

/// A parsed document and the warnings it raised.
#[derive(Clone, Debug, PartialEq)]
pub struct Parsed {
    /// 1-based position of the document in the YAML stream (empty documents count).
    pub index: usize,
    /// The object.
    pub doc: Document,
    /// Human-readable warnings, one per unknown (ignored) field, e.g.
    /// ``unknown field `spec.storageProvider` (did you mean `spec.storageProviderRef`?)``.
    pub warnings: Vec<String>,
}

#[derive(Clone, Copy)]
enum Kind {
    BackupRepo,
    StorageProvider,
    Secret,
}

/// Parses a stream of YAML documents separated by `---`. Empty documents are skipped.
///
/// Each document must be a BackupRepo or StorageProvider
/// (`dataprotection.kubeblocks.io/v1alpha1`) or a `v1` Secret. Fields the types do not know are
/// ignored and reported in [`Parsed::warnings`]. The first failing document ends parsing with
/// an error naming its 1-based index.
pub fn parse_documents(yaml: &str) -> Result<Vec<Parsed>, ApiError> {
    let mut out = Vec::new();
    for (i, de) in serde_yaml_ng::Deserializer::from_str(yaml).enumerate() {
        let document = i + 1;
        let value = Value::deserialize(de).map_err(|e| yaml_error(document, &e))?;
        if is_empty_document(&value) {
            continue;
        }
        let kind = document_kind(document, &value)?;
        let name = value
            .get("metadata")
            .and_then(|m| m.get("name"))
            .and_then(Value::as_str)
            .map(str::to_owned);
        // Deserialize again from the text (not from `value`) so errors carry their location.
        let (doc, ignored) = match kind {
            Kind::BackupRepo => {
                let (o, w) = typed::<BackupRepo>(yaml, i, document, "BackupRepo", &name)?;
                (Document::BackupRepo(o), w)
            }
            Kind::StorageProvider => {
                let (o, w) = typed::<StorageProvider>(yaml, i, document, "StorageProvider", &name)?;
                (Document::StorageProvider(o), w)
            }
            Kind::Secret => {
                let (o, w) = typed::<Secret>(yaml, i, document, "Secret", &name)?;
                (Document::Secret(o), w)
            }
        };
        let warnings = ignored
            .into_iter()
            .filter(|p| {
                !matches!(kind, Kind::BackupRepo | Kind::StorageProvider) || !is_type_meta(p)
            })
            .map(|p| unknown_field_warning(kind, &p))
            .collect();
        out.push(Parsed {
            index: document,
            doc,
            warnings,
        });
    }
    Ok(out)
}

fn is_empty_document(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Mapping(m) => m.is_empty(),
        _ => false,
    }
}

fn is_type_meta(path: &str) -> bool {
    path == "apiVersion" || path == "kind"
}

fn document_kind(document: usize, value: &Value) -> Result<Kind, ApiError> {
    if !value.is_mapping() {
        return Err(ApiError::MissingTypeMeta {
            document,
            message: "expected a mapping with `apiVersion` and `kind`".to_owned(),
        });
    }
    let field = |name: &str| -> Result<String, ApiError> {
        match value.get(name) {
            Some(Value::String(s)) if !s.is_empty() => Ok(s.clone()),
            Some(_) => Err(ApiError::MissingTypeMeta {
                document,
                message: format!("`{name}` must be a non-empty string"),
            }),
            None => Err(ApiError::MissingTypeMeta {
                document,
                message: format!("missing `{name}`"),
            }),
        }
    };
    let api_version = field("apiVersion")?;
    let kind = field("kind")?;
    match (api_version.as_str(), kind.as_str()) {
        (API_VERSION, BACKUP_REPO_KIND) => Ok(Kind::BackupRepo),
        (API_VERSION, STORAGE_PROVIDER_KIND) => Ok(Kind::StorageProvider),
        ("v1", "Secret") => Ok(Kind::Secret),
        _ => Err(ApiError::UnsupportedKind {
            document,
            api_version,
            kind,
        }),
    }
}

fn yaml_error(document: usize, e: &serde_yaml_ng::Error) -> ApiError {
    let loc = e.location();
    ApiError::Yaml {
        document,
        line: loc.as_ref().map(|l| l.line()),
        column: loc.as_ref().map(|l| l.column()),
        message: e.to_string(),
    }
}

fn typed<T: DeserializeOwned>(
    yaml: &str,
    i: usize,
    document: usize,
    kind: &str,
    name: &Option<String>,
) -> Result<(T, Vec<String>), ApiError> {
    let mut ignored = Vec::new();
    let invalid = |message: String, line, column| ApiError::InvalidObject {
        document,
        kind: kind.to_owned(),
        name: name.clone(),
        message,
        line,
        column,
    };
    let de = serde_yaml_ng::Deserializer::from_str(yaml)
        .nth(i)
        .ok_or_else(|| invalid("document vanished on second read".to_owned(), None, None))?;
    let obj = serde_ignored::deserialize(de, |p| ignored.push(path_string(&p))).map_err(
        |e: serde_yaml_ng::Error| {
            let loc = e.location();
            invalid(
                e.to_string(),
                loc.as_ref().map(|l| l.line()),
                loc.as_ref().map(|l| l.column()),
            )
        },
    )?;
    Ok((obj, ignored))
}

/// Renders a serde_ignored path as `spec.config.x`, `status.conditions[0].foo`.
fn path_string(path: &serde_ignored::Path<'_>) -> String {
    use serde_ignored::Path;
    match path {
        Path::Root => String::new(),
        Path::Seq { parent, index } => format!("{}[{index}]", path_string(parent)),
        Path::Map { parent, key } => {
            let p = path_string(parent);
            if p.is_empty() {
                key.clone()
            } else {
                format!("{p}.{key}")
            }
        }
        Path::Some { parent }
        | Path::NewtypeStruct { parent }
        | Path::NewtypeVariant { parent } => path_string(parent),
    }
}

const BACKUP_REPO_SPEC_FIELDS: &[&str] = &[
    "storageProviderRef",
    "accessMethod",
    "volumeCapacity",
    "pvReclaimPolicy",
    "config",
    "credential",
    "pathPrefix",
    "allowedNamespaces",
];

const STORAGE_PROVIDER_SPEC_FIELDS: &[&str] = &[
    "csiDriverName",
    "csiDriverSecretTemplate",
    "storageClassTemplate",
    "persistentVolumeClaimTemplate",
    "datasafedConfigTemplate",
    "parametersSchema",
];

fn unknown_field_warning(kind: Kind, path: &str) -> String {
    let known = match kind {
        Kind::BackupRepo => BACKUP_REPO_SPEC_FIELDS,
        Kind::StorageProvider => STORAGE_PROVIDER_SPEC_FIELDS,
        Kind::Secret => &[],
    };
    let suggestion = path
        .strip_prefix("spec.")
        .filter(|rest| !rest.contains('.') && !rest.contains('['))
        .and_then(|field| closest(field, known));
    match suggestion {
        Some(s) => format!("unknown field `{path}` (did you mean `spec.{s}`?)"),
        None => format!("unknown field `{path}`"),
    }
}

fn closest<'a>(field: &str, known: &[&'a str]) -> Option<&'a str> {
    let lower = field.to_ascii_lowercase();
    known
        .iter()
        .map(|k| {
            let kl = k.to_ascii_lowercase();
            let d = if lower.len() >= 4 && (kl.starts_with(&lower) || lower.starts_with(&kl)) {
                0
            } else {
                edit_distance(&lower, &kl)
            };
            (d, *k)
        })
        .filter(|(d, _)| *d <= 3)
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

/// The decoded contents of a Secret: `data` (bytes as UTF-8) merged with `stringData`
/// (`stringData` wins on a shared key), as the API server would store it.
pub fn secret_data(secret: &Secret) -> Result<BTreeMap<String, String>, ApiError> {
    let mut out = BTreeMap::new();
    if let Some(data) = &secret.data {
        for (k, v) in data {
            let text = String::from_utf8(v.0.clone()).map_err(|_| ApiError::SecretDataNotUtf8 {
                secret: format!(
                    "{}/{}",
                    secret.metadata.namespace.as_deref().unwrap_or_default(),
                    secret.metadata.name.as_deref().unwrap_or_default()
                ),
                key: k.clone(),
            })?;
            out.insert(k.clone(), text);
        }
    }
    if let Some(string_data) = &secret.string_data {
        for (k, v) in string_data {
            out.insert(k.clone(), v.clone());
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edit_distance_works() {
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("same", "same"), 0);
    }

    #[test]
    fn suggestion_for_near_miss() {
        assert_eq!(
            closest("storageProvider", BACKUP_REPO_SPEC_FIELDS),
            Some("storageProviderRef")
        );
        assert_eq!(
            closest("pathprefix", BACKUP_REPO_SPEC_FIELDS),
            Some("pathPrefix")
        );
        assert_eq!(closest("bucket", BACKUP_REPO_SPEC_FIELDS), None);
    }

    #[test]
    fn empty_documents_are_skipped() {
        let parsed = parse_documents("---\n---\n# just a comment\n---\n").unwrap();
        assert!(parsed.is_empty());
    }
}
