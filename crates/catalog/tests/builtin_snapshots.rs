//! Snapshots of everything each built-in provider renders, and the guarantees that hold for
//! every built-in: parameters given only as required (plus schema defaults) render cleanly —
//! no Go `<no value>` or `%!s(<nil>)` markers, unlike KubeBlocks' templates — and each
//! tool config loads.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;

use backuprepo_api::StorageProviderSpec;
use backuprepo_catalog::{builtin, params, render};

fn schema(spec: &StorageProviderSpec) -> (serde_json::Value, Vec<String>) {
    let ps = spec.parameters_schema.clone().unwrap();
    (ps.open_api_v3_schema.unwrap(), ps.credential_fields)
}

/// A value for every property (`all`) or for the required ones only.
fn config(spec: &StorageProviderSpec, all: bool) -> BTreeMap<String, String> {
    let (schema, _) = schema(spec);
    let required: Vec<&str> = schema["required"]
        .as_array()
        .map(|r| r.iter().filter_map(|v| v.as_str()).collect())
        .unwrap_or_default();
    let mut out = BTreeMap::new();
    for (name, prop) in schema["properties"].as_object().unwrap() {
        if !all && !required.contains(&name.as_str()) {
            continue;
        }
        let v = match (name.as_str(), prop["type"].as_str().unwrap()) {
            ("ftpTls", _) => "false".to_string(), // implicit FTPS is refused by the loader
            (_, "boolean") => "true".to_string(),
            (_, "integer") => "7".to_string(),
            ("region", _) => "eu-west-1".into(),
            ("endpoint", _) => "https://storage.example.com".into(),
            ("path", _) => "/var/backups".into(),
            ("caCert", _) => "/etc/ssl/extra-ca.pem".into(),
            ("accessMode", _) => "ReadWriteMany".into(),
            ("serviceProvider", _) => "Ceph".into(),
            ("volumeMode", _) => "Block".into(),
            (n, _) => format!("{n}-value"),
        };
        out.insert(name.clone(), v);
    }
    out
}

fn render_all(spec: &StorageProviderSpec, config: &BTreeMap<String, String>) -> String {
    let (schema, creds) = schema(spec);
    let params = params::resolve(&schema, &creds, config, &BTreeMap::new()).unwrap();
    let ctx = render::Context {
        parameters: &params,
        csi_secret: Some(("secret-repo-abcdef", "backuprepo-system")),
    };
    let mut out = String::new();
    if let Some(t) = render::tool_config(spec, &ctx).unwrap() {
        out += &format!("# tool config\n{}\n", t.text().trim_end());
    }
    if let Some(s) = render::csi_secret(spec, &ctx).unwrap() {
        out += &format!("# CSI secret\n{}", serde_yaml_ng::to_string(&s).unwrap());
    }
    if let Some(sc) = render::storage_class(spec, &ctx).unwrap() {
        out += &format!("# StorageClass\n{}", serde_yaml_ng::to_string(&sc).unwrap());
    }
    if let Some(p) = render::pvc(spec, &ctx, "sc-repo-abcdef").unwrap() {
        out += &format!("# PVC\n{}", serde_yaml_ng::to_string(&p).unwrap());
    }
    out
}

#[test]
fn snapshots_of_every_builtin() {
    for p in builtin::all().unwrap() {
        let name = p.metadata.name.clone().unwrap();
        let full = render_all(&p.spec, &config(&p.spec, true));
        insta::assert_snapshot!(format!("{name}-all-parameters"), full);
        let minimal = render_all(&p.spec, &config(&p.spec, false));
        insta::assert_snapshot!(format!("{name}-required-only"), minimal);
    }
}

#[test]
fn required_only_renders_clean_and_loads() {
    for p in builtin::all().unwrap() {
        let name = p.metadata.name.clone().unwrap();
        let out = render_all(&p.spec, &config(&p.spec, false));
        assert!(!out.is_empty(), "{name} renders something");
        for marker in ["<no value>", "%!", "<nil>"] {
            assert!(!out.contains(marker), "{name}: {marker} in\n{out}");
        }
    }
}

/// The region alone gives the provider's regional endpoint, in the CSI secret (with scheme)
/// and in the tool config (as KubeBlocks renders it).
#[test]
fn region_derives_the_endpoint() {
    for (name, region, csi, tool) in [
        (
            "s3",
            "cn-north-1",
            "https://s3.cn-north-1.amazonaws.com.cn",
            "",
        ),
        ("s3", "eu-west-1", "https://s3.eu-west-1.amazonaws.com", ""),
        (
            "oss",
            "cn-hangzhou",
            "https://oss-cn-hangzhou.aliyuncs.com",
            "oss-cn-hangzhou.aliyuncs.com",
        ),
        (
            "cos",
            "ap-guangzhou",
            "https://cos.ap-guangzhou.myqcloud.com",
            "cos.ap-guangzhou.myqcloud.com",
        ),
        (
            "obs",
            "cn-north-4",
            "https://obs.cn-north-4.myhuaweicloud.com",
            "obs.cn-north-4.myhuaweicloud.com",
        ),
        (
            "gcs-s3comp",
            "us-central1",
            "https://storage.googleapis.com",
            "https://storage.googleapis.com",
        ),
    ] {
        let p = builtin::get(name).unwrap();
        let mut cfg = config(&p.spec, false);
        cfg.insert("region".into(), region.into());
        let (schema, creds) = schema(&p.spec);
        let params = params::resolve(&schema, &creds, &cfg, &BTreeMap::new()).unwrap();
        let ctx = render::Context {
            parameters: &params,
            csi_secret: None,
        };
        let secret = render::csi_secret(&p.spec, &ctx).unwrap().unwrap();
        assert_eq!(secret["endpoint"], csi, "{name} {region}");
        let t = render::tool_config(&p.spec, &ctx).unwrap().unwrap();
        let ini = backuprepo_transfer::config::parse_ini(t.text()).unwrap();
        assert_eq!(ini["storage"]["endpoint"], tool, "{name} {region}");
    }
}

/// The additions reach the tool config only when set, so KubeBlocks' output is unchanged
/// otherwise.
#[test]
fn path_style_and_ca_are_rendered_only_when_set() {
    for name in ["s3", "oss", "cos", "gcs-s3comp", "obs", "minio"] {
        let p = builtin::get(name).unwrap();
        let (schema, creds) = schema(&p.spec);
        let mut cfg = config(&p.spec, false);
        let get = |cfg: &BTreeMap<String, String>| {
            let params = params::resolve(&schema, &creds, cfg, &BTreeMap::new()).unwrap();
            let ctx = render::Context {
                parameters: &params,
                csi_secret: None,
            };
            let t = render::tool_config(&p.spec, &ctx).unwrap().unwrap();
            backuprepo_transfer::config::parse_ini(t.text()).unwrap()["storage"].clone()
        };
        let plain = get(&cfg);
        assert!(!plain.contains_key("force_path_style"), "{name}");
        assert!(!plain.contains_key("ca_cert"), "{name}");
        cfg.insert("forcePathStyle".into(), "true".into());
        cfg.insert("caCert".into(), "/etc/ca.pem".into());
        let set = get(&cfg);
        assert_eq!(set["force_path_style"], "true", "{name}");
        assert_eq!(set["ca_cert"], "/etc/ca.pem", "{name}");
    }
}

#[test]
fn a_scoped_key_replaces_the_repository_key_and_nothing_else() {
    for name in ["minio", "s3-compatible"] {
        let p = builtin::get(name).unwrap();
        let (schema, creds) = schema(&p.spec);
        let cfg = config(&p.spec, true);
        let params = params::resolve(&schema, &creds, &cfg, &BTreeMap::new()).unwrap();
        let ctx = render::Context {
            parameters: &params,
            csi_secret: None,
        };
        let admin = render::tool_config(&p.spec, &ctx).unwrap().unwrap();
        let before =
            backuprepo_transfer::config::parse_ini(admin.text()).unwrap()["storage"].clone();
        let scoped = admin.with_key("SCOPEDID", "scoped-secret").unwrap();
        let after =
            backuprepo_transfer::config::parse_ini(scoped.text()).unwrap()["storage"].clone();
        assert!(!scoped.text().contains("accessKeyId-value"), "{name}");
        assert!(!scoped.text().contains("secretAccessKey-value"), "{name}");
        assert_eq!(after["access_key_id"], "SCOPEDID", "{name}");
        assert_eq!(after["secret_access_key"], "scoped-secret", "{name}");
        let rest = |m: &BTreeMap<String, String>| {
            m.iter()
                .filter(|(k, _)| !k.ends_with("access_key_id") && !k.ends_with("secret_access_key"))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect::<Vec<_>>()
        };
        assert_eq!(rest(&before), rest(&after), "{name}");
        // And stays read-only when the repository is.
        let ro = render::tool_config(&p.spec, &ctx)
            .unwrap()
            .unwrap()
            .read_only()
            .unwrap()
            .with_key("SCOPEDID", "scoped-secret")
            .unwrap();
        assert!(ro.config.tuning.read_only, "{name}");
    }
}
