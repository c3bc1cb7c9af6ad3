//! The CustomResourceDefinitions, generated from the API types.

use backuprepo_api::{BackupRepo, StorageProvider};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    CustomResourceDefinition, ValidationRule,
};
use kube::CustomResourceExt;

use crate::yaml::{describe, to_sorted_value, to_yaml_documents};

/// The CRDs of `dataprotection.kubeblocks.io/v1alpha1`: `backuprepos`, then
/// `storageproviders` (both cluster-scoped, category `kubeblocks`, with the `status`
/// subresource, printer columns, enums, defaults and CEL rules of the API types).
pub fn crds() -> Vec<CustomResourceDefinition> {
    let mut repo = BackupRepo::crd();
    for version in &mut repo.spec.versions {
        if let Some(schema) = version
            .schema
            .as_mut()
            .and_then(|s| s.open_api_v3_schema.as_mut())
        {
            schema
                .x_kubernetes_validations
                .get_or_insert_with(Vec::new)
                .push(name_length_rule());
        }
    }
    vec![repo, StorageProvider::crd()]
}

/// Objects derived from a BackupRepo carry its name as a label value, which Kubernetes limits
/// to 63 characters; the API server refuses a longer name at once instead of the controller
/// failing later. (At the root of a CRD schema, CEL sees `metadata.name`.)
fn name_length_rule() -> ValidationRule {
    ValidationRule {
        rule: format!("size(self.metadata.name) <= {MAX_NAME_LENGTH}"),
        message: Some(format!(
            "metadata.name must be at most {MAX_NAME_LENGTH} characters: objects derived from \
             a BackupRepo carry its name as a label value"
        )),
        ..ValidationRule::default()
    }
}

/// The longest BackupRepo name (a label value's limit).
pub const MAX_NAME_LENGTH: usize = 63;

/// [`crds`] as a multi-document YAML stream (what `backuprepo crds` prints).
pub fn crds_yaml() -> String {
    // Serialising a k8s-openapi CRD into JSON cannot fail (string keys, no non-finite
    // floats); should it ever, the stream says so instead of panicking.
    let mut values = Vec::new();
    for crd in crds() {
        match to_sorted_value(&crd, "CustomResourceDefinition") {
            Ok(v) => values.push(v),
            Err(e) => return format!("# error: {e}\n"),
        }
    }
    match to_yaml_documents(&values) {
        Ok(text) => text,
        Err(e) => format!(
            "# error: {e} ({})\n",
            values.iter().map(describe).collect::<Vec<_>>().join(", ")
        ),
    }
}
