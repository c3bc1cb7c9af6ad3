//! The CustomResourceDefinitions, generated from the API types.

use backuprepo_api::{BackupRepo, StorageProvider};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;

use crate::yaml::{describe, to_sorted_value, to_yaml_documents};

/// The CRDs of `dataprotection.kubeblocks.io/v1alpha1`: `backuprepos`, then
/// `storageproviders` (both cluster-scoped, category `kubeblocks`, with the `status`
/// subresource, printer columns, enums, defaults and CEL rules of the API types).
pub fn crds() -> Vec<CustomResourceDefinition> {
    vec![BackupRepo::crd(), StorageProvider::crd()]
}

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
