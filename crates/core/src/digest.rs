//! The repository digest (KubeBlocks' rule): lowercase hex MD5 over the parameters — schema
//! defaults, config and the credential Secret's data — serialised as `k=v;` in key order, then
//! the provider's four templates. A changed credential, config or provider template changes the
//! digest, which triggers a new check.

use std::collections::BTreeMap;

use backuprepo_api::StorageProviderSpec;
use md5::{Digest, Md5};

pub fn digest(parameters: &BTreeMap<String, String>, spec: &StorageProviderSpec) -> String {
    let mut h = Md5::new();
    for (k, v) in parameters {
        h.update(k.as_bytes());
        h.update(b"=");
        h.update(v.as_bytes());
        h.update(b";");
    }
    for t in [
        &spec.storage_class_template,
        &spec.persistent_volume_claim_template,
        &spec.csi_driver_secret_template,
        &spec.datasafed_config_template,
    ] {
        h.update(t.as_deref().unwrap_or_default().as_bytes());
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_kubeblocks_serialisation() {
        let mut p = BTreeMap::new();
        p.insert("b".to_string(), "2".to_string());
        p.insert("a".to_string(), "1".to_string());
        let spec = StorageProviderSpec {
            datasafed_config_template: Some("T".into()),
            ..Default::default()
        };
        assert_eq!(digest(&p, &spec), "1092db5326affd0f1890fbf2f27c9d1d"); // md5("a=1;b=2;T")
        let mut q = p.clone();
        q.insert("a".into(), "changed".into());
        assert_ne!(digest(&p, &spec), digest(&q, &spec));
    }
}
