//! The `StorageProvider` custom resource (spec §1.2).

use std::fmt;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::backup_repo::AccessMethod;
use crate::schema;

/// Phase of a StorageProvider.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum StorageProviderPhase {
    /// The CSI driver could not be checked.
    NotReady,
    /// The CSI driver is installed, or none is needed.
    Ready,
}

impl StorageProviderPhase {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            StorageProviderPhase::NotReady => "NotReady",
            StorageProviderPhase::Ready => "Ready",
        }
    }
}

impl fmt::Display for StorageProviderPhase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// StorageProviderSpec defines the desired state of `StorageProvider`.
// The repeated `printcolumn(type_ = ...)` entries are distinct columns.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "dataprotection.kubeblocks.io",
    version = "v1alpha1",
    kind = "StorageProvider",
    singular = "storageprovider",
    plural = "storageproviders",
    status = "StorageProviderStatus",
    category = "kubeblocks",
    derive = "PartialEq",
    doc = "StorageProvider comprises specifications that provide guidance on accessing remote storage.",
    printcolumn(name = "STATUS", type_ = "string", json_path = ".status.phase"),
    printcolumn(
        name = "CSIDRIVER",
        type_ = "string",
        json_path = ".spec.csiDriverName"
    ),
    printcolumn(
        name = "AGE",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct StorageProviderSpec {
    /// Specifies the name of the CSI driver used to access remote storage; empty means the
    /// storage is not accessible via CSI.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub csi_driver_name: Option<String>,

    /// A Go template rendering the data (`map[string]string`) of the Secret for the CSI driver.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub csi_driver_secret_template: Option<String>,

    /// A Go template rendering a `storage.k8s.io/v1` StorageClass.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_class_template: Option<String>,

    /// A Go template rendering a `v1` PersistentVolumeClaim.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub persistent_volume_claim_template: Option<String>,

    /// A Go template rendering the `datasafed` configuration; empty means the storage is not
    /// accessible via the `datasafed` tool.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub datasafed_config_template: Option<String>,

    /// Describes the parameters required for storage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameters_schema: Option<ParametersSchema>,

    /// How the storage makes keys limited to a prefix, for `backuprepo grant` (extension over
    /// KubeBlocks; absent: it cannot).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scoped_credentials: Option<ScopedCredentials>,
}

/// A provider's way of making prefix-scoped keys.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ScopedCredentials {
    /// The API: `aws-iam` (AWS's IAM query protocol, as SeaweedFS, MinIO and Ceph RGW serve it).
    pub api: String,
    /// Where the IAM API answers; empty: the repository's S3 endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iam_endpoint: Option<String>,
    /// `true` allows a plain-http `iamEndpoint` (its answers carry the new keys' secrets).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub insecure: Option<bool>,
}

/// The parameters of a StorageProvider.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ParametersSchema {
    /// Defines the parameters in OpenAPI V3 (free-form).
    #[serde(
        default,
        rename = "openAPIV3Schema",
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(schema_with = "schema::preserve_unknown_object")]
    pub open_api_v3_schema: Option<serde_json::Value>,

    /// Parameters that are credentials, to be stored in a `Secret` instead of `config`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub credential_fields: Vec<String>,
}

/// StorageProviderStatus defines the observed state of `StorageProvider`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StorageProviderStatus {
    /// The phase of the `StorageProvider`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<StorageProviderPhase>,

    /// Describes the current state of the `StorageProvider`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}

fn non_empty(s: &Option<String>) -> bool {
    s.as_deref().is_some_and(|s| !s.is_empty())
}

impl StorageProviderSpec {
    /// Whether `Tool` access is possible (a non-empty `datasafedConfigTemplate`).
    pub fn supports_tool(&self) -> bool {
        non_empty(&self.datasafed_config_template)
    }

    /// Whether `Mount` access is possible (a non-empty StorageClass or PVC template).
    pub fn supports_mount(&self) -> bool {
        non_empty(&self.storage_class_template) || non_empty(&self.persistent_volume_claim_template)
    }

    /// The supported access methods, `Mount` first.
    pub fn access_methods(&self) -> Vec<AccessMethod> {
        let mut out = Vec::new();
        if self.supports_mount() {
            out.push(AccessMethod::Mount);
        }
        if self.supports_tool() {
            out.push(AccessMethod::Tool);
        }
        out
    }

    /// [`StorageProviderSpec::access_methods`] by name (`["Mount", "Tool"]`), for messages and
    /// tables.
    pub fn access_method_names(&self) -> Vec<&'static str> {
        self.access_methods().iter().map(|m| m.as_str()).collect()
    }

    /// Whether `method` is supported.
    pub fn supports(&self, method: AccessMethod) -> bool {
        match method {
            AccessMethod::Mount => self.supports_mount(),
            AccessMethod::Tool => self.supports_tool(),
        }
    }

    /// `parametersSchema.credentialFields`, empty when absent.
    pub fn credential_fields(&self) -> &[String] {
        self.parameters_schema
            .as_ref()
            .map(|p| p.credential_fields.as_slice())
            .unwrap_or_default()
    }

    /// `parametersSchema.openAPIV3Schema`, if any.
    pub fn open_api_v3_schema(&self) -> Option<&serde_json::Value> {
        self.parameters_schema
            .as_ref()
            .and_then(|p| p.open_api_v3_schema.as_ref())
    }
}

impl StorageProvider {
    /// Where to ask for keys scoped to a path (`spec.scopedCredentials`): the IAM endpoint, or
    /// `None` for the repository's S3 endpoint; or why this provider cannot scope keys.
    pub fn key_scoping(&self) -> Result<Option<&str>, String> {
        let name = self.metadata.name.as_deref().unwrap_or_default();
        match &self.spec.scoped_credentials {
            Some(s) if s.api == "aws-iam" => {
                match s.iam_endpoint.as_deref().map(str::trim).filter(|e| !e.is_empty()) {
                    Some(e)
                        if e.to_ascii_lowercase().starts_with("http://")
                            && s.insecure != Some(true) =>
                    {
                        Err(format!(
                            "storage provider {name}: scopedCredentials.iamEndpoint {e} is plain http, which would carry the secrets of the keys it makes in clear; use https, or set scopedCredentials.insecure: true"
                        ))
                    }
                    e => Ok(e),
                }
            }
            Some(s) => Err(format!(
                "storage provider {name} declares scopedCredentials.api {:?}, which backuprepo does not speak (it speaks aws-iam)",
                s.api
            )),
            None => Err(format!(
                "storage provider {name} cannot scope keys (its spec has no scopedCredentials; minio and s3-compatible have them, for storages with an IAM API)"
            )),
        }
    }

    /// The provider's name (`metadata.name`), "" when unset.
    pub fn name(&self) -> &str {
        self.metadata.name.as_deref().unwrap_or_default()
    }

    /// See [`StorageProviderSpec::supports_tool`].
    pub fn supports_tool(&self) -> bool {
        self.spec.supports_tool()
    }

    /// See [`StorageProviderSpec::supports_mount`].
    pub fn supports_mount(&self) -> bool {
        self.spec.supports_mount()
    }

    /// See [`StorageProviderSpec::access_methods`].
    pub fn access_methods(&self) -> Vec<AccessMethod> {
        self.spec.access_methods()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn provider(scoped: ScopedCredentials) -> StorageProvider {
        let mut p = StorageProvider::new("p", StorageProviderSpec::default());
        p.spec.scoped_credentials = Some(scoped);
        p
    }

    #[test]
    fn a_plain_http_iam_endpoint_needs_insecure() {
        let mut s = ScopedCredentials {
            api: "aws-iam".into(),
            iam_endpoint: Some("http://iam.example:8111".into()),
            insecure: None,
        };
        let e = provider(s.clone()).key_scoping().unwrap_err();
        assert!(
            e.contains("plain http") && e.contains("insecure: true"),
            "{e}"
        );
        s.insecure = Some(true);
        assert_eq!(
            provider(s.clone()).key_scoping().unwrap(),
            Some("http://iam.example:8111")
        );
        s.iam_endpoint = Some("https://iam.example".into());
        s.insecure = None;
        assert_eq!(
            provider(s.clone()).key_scoping().unwrap(),
            Some("https://iam.example")
        );
        // No endpoint of its own: the repository's S3 endpoint, whatever its scheme.
        s.iam_endpoint = None;
        assert_eq!(provider(s).key_scoping().unwrap(), None);
    }
}
