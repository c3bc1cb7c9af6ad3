//! KubeBlocks' own StorageProvider objects (read at run time from `../shared/compat`, not copied
//! into the project) render with our template engine: every template of all 11 providers, with
//! representative parameters, gives output without Go's error markers; YAML outputs parse as
//! YAML; every datasafed config is accepted by the transfer crate's config loader.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;

use backuprepo_catalog::template::{Template, Value};
use serde_yaml_ng::Value as Yaml;

/// KubeBlocks' StorageProviders (`../shared`), when they are there.
fn kubeblocks_dir() -> Option<std::path::PathBuf> {
    backuprepo_fixtures::shared_path("compat/kubeblocks/storageproviders")
}

/// The files of KubeBlocks' StorageProviders; none when `../shared` is absent.
fn kubeblocks_files() -> Vec<std::path::PathBuf> {
    let Some(dir) = kubeblocks_dir() else {
        return Vec::new();
    };
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    files
}

/// Parameters as the controller builds them (map[string]string): schema defaults, then a
/// representative value for every other property.
fn parameters(spec: &Yaml) -> BTreeMap<String, Value> {
    let mut out = BTreeMap::new();
    let props = &spec["parametersSchema"]["openAPIV3Schema"]["properties"];
    let Some(props) = props.as_mapping() else {
        return out;
    };
    for (name, schema) in props {
        let name = name.as_str().unwrap().to_string();
        let value = match (&schema["default"], schema["type"].as_str()) {
            (Yaml::Bool(b), _) => b.to_string(),
            (Yaml::Number(n), _) => n.to_string(),
            (Yaml::String(s), _) => s.clone(),
            (_, Some("boolean")) => "false".into(),
            (_, Some("integer")) => "0".into(),
            _ => match name.as_str() {
                "region" => "us-east-1".into(),
                "endpoint" => "http://127.0.0.1:9000".into(),
                "bucket" | "container" => "backups".into(),
                _ => format!("v-{name}"),
            },
        };
        out.insert(name, Value::Str(value));
    }
    out
}

fn data(params: BTreeMap<String, Value>) -> Value {
    let mut secret = BTreeMap::new();
    secret.insert("Name".to_string(), Value::str("repo-csi-secret"));
    secret.insert("Namespace".to_string(), Value::str("kb-system"));
    let mut root = BTreeMap::new();
    root.insert("Parameters".to_string(), Value::Map(params));
    root.insert("CSIDriverSecretRef".to_string(), Value::Map(secret));
    Value::Map(root)
}

#[test]
fn every_kubeblocks_provider_template_renders() {
    let files = kubeblocks_files();
    if files.is_empty() {
        return;
    }
    assert_eq!(files.len(), 11, "KubeBlocks ships 11 providers");
    let mut rendered = 0;
    let mut configs = 0;
    for path in &files {
        let doc: Yaml = serde_yaml_ng::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let name = doc["metadata"]["name"].as_str().unwrap().to_string();
        let spec = &doc["spec"];
        // The provider's own schema accepts these parameters (defaults, types, required).
        let schema: serde_json::Value =
            serde_json::to_value(&spec["parametersSchema"]["openAPIV3Schema"]).unwrap();
        let creds: Vec<String> = spec["parametersSchema"]["credentialFields"]
            .as_sequence()
            .map(|s| {
                s.iter()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        let config: BTreeMap<String, String> = parameters(spec)
            .into_iter()
            .map(|(k, v)| match v {
                Value::Str(s) => (k, s),
                other => panic!("{k}: {other:?}"),
            })
            .collect();
        let resolved =
            backuprepo_catalog::params::resolve(&schema, &creds, &config, &BTreeMap::new())
                .unwrap_or_else(|e| panic!("{name}: {e:?}"));
        let data = data(
            resolved
                .into_iter()
                .map(|(k, v)| (k, Value::Str(v)))
                .collect(),
        );
        for field in [
            "datasafedConfigTemplate",
            "csiDriverSecretTemplate",
            "storageClassTemplate",
            "persistentVolumeClaimTemplate",
        ] {
            let Some(src) = spec[field].as_str() else {
                continue;
            };
            let t = Template::parse(src).unwrap_or_else(|e| panic!("{name}.{field}: {e}"));
            let out = t
                .render(&data)
                .unwrap_or_else(|e| panic!("{name}.{field}: {e}"));
            assert!(
                !out.contains("<no value>") && !out.contains("%!"),
                "{name}.{field} rendered:\n{out}"
            );
            rendered += 1;
            if field == "datasafedConfigTemplate" {
                let cfg =
                    backuprepo_transfer::config::ToolConfig::parse(&out).unwrap_or_else(|e| {
                        panic!("{name}: the transfer config loader refused:\n{out}\n{e}")
                    });
                assert!(
                    !format!("{cfg:?}").contains("v-secretAccessKey"),
                    "secrets stay redacted"
                );
                configs += 1;
            } else {
                let y: Result<Yaml, _> = serde_yaml_ng::from_str(&out);
                assert!(y.is_ok(), "{name}.{field} is not YAML:\n{out}");
            }
        }
    }
    assert!(rendered >= 25, "rendered {rendered} templates");
    assert_eq!(
        configs, 9,
        "nfs and pvc have no datasafed config; the other 9 do"
    );
}

#[test]
fn s3_endpoint_derivation_matches_kubeblocks() {
    let Some(dir) = kubeblocks_dir() else {
        return;
    };
    let doc: Yaml =
        serde_yaml_ng::from_str(&std::fs::read_to_string(dir.join("s3.yaml")).unwrap()).unwrap();
    let t = Template::parse(doc["spec"]["csiDriverSecretTemplate"].as_str().unwrap()).unwrap();
    for (region, want) in [
        ("cn-north-1", "https://s3.cn-north-1.amazonaws.com.cn"),
        ("eu-west-1", "https://s3.eu-west-1.amazonaws.com"),
    ] {
        let mut p = parameters(&doc["spec"]);
        p.insert("region".into(), Value::str(region));
        p.remove("endpoint");
        let out = t.render(&data(p)).unwrap();
        let y: Yaml = serde_yaml_ng::from_str(&out).unwrap();
        assert_eq!(y["endpoint"].as_str(), Some(want), "{out}");
    }
}

/// No input makes the engine panic or hang: the real templates (KubeBlocks' and ours), cut,
/// spliced and with bytes
/// replaced by template punctuation, deterministically (xorshift), plus pathological nesting.
#[test]
fn mangled_templates_never_panic() {
    let mut corpus = Vec::new();
    for path in kubeblocks_files() {
        let doc: Yaml = serde_yaml_ng::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        for field in [
            "datasafedConfigTemplate",
            "csiDriverSecretTemplate",
            "storageClassTemplate",
            "persistentVolumeClaimTemplate",
        ] {
            if let Some(s) = doc["spec"][field].as_str() {
                corpus.push(s.to_string());
            }
        }
    }
    // Our own built-ins too, so the test has a corpus without `../shared`.
    for p in backuprepo_catalog::builtin::all().unwrap() {
        let spec = serde_json::to_value(&p.spec).unwrap();
        for field in [
            "datasafedConfigTemplate",
            "csiDriverSecretTemplate",
            "storageClassTemplate",
            "persistentVolumeClaimTemplate",
        ] {
            if let Some(s) = spec[field].as_str() {
                corpus.push(s.to_string());
            }
        }
    }
    let alphabet: Vec<char> = "{}()|$.\"`-=:\\ \n0aé/*".chars().collect();
    let data = data(BTreeMap::new());
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let mut parsed = 0;
    for round in 0..20_000 {
        let base: Vec<char> = corpus[round % corpus.len()].chars().collect();
        let mut s = base.clone();
        for _ in 0..(1 + next() % 6) {
            if s.is_empty() {
                break;
            }
            let i = (next() as usize) % s.len();
            match next() % 3 {
                0 => s[i] = alphabet[(next() as usize) % alphabet.len()],
                1 => {
                    s.remove(i);
                }
                _ => s.truncate(i),
            }
        }
        let text: String = s.into_iter().collect();
        if let Ok(t) = Template::parse(&text) {
            parsed += 1;
            let _ = t.render(&data);
        }
    }
    assert!(
        parsed > 1000,
        "the mutations should leave many templates valid ({parsed})"
    );
    let deep = format!("{{{{ {}1{} }}}}", "(".repeat(10_000), ")".repeat(10_000));
    assert!(Template::parse(&deep).is_err());
    let deep_if = format!(
        "{}{}",
        "{{ if true }}".repeat(10_000),
        "{{ end }}".repeat(10_000)
    );
    assert!(Template::parse(&deep_if).is_err());
}

fn string_params(spec: &Yaml) -> BTreeMap<String, String> {
    parameters(spec)
        .into_iter()
        .map(|(k, v)| match v {
            Value::Str(s) => (k, s),
            other => panic!("{k}: {other:?}"),
        })
        .collect()
}

/// Everything a provider renders for one set of parameters, as data: INI key by key, the CSI
/// secret map, the StorageClass and PVC as JSON.
fn rendered(
    spec: &backuprepo_api::StorageProviderSpec,
    config: &BTreeMap<String, String>,
) -> BTreeMap<&'static str, serde_json::Value> {
    use backuprepo_catalog::render;
    let schema = spec
        .parameters_schema
        .as_ref()
        .and_then(|p| p.open_api_v3_schema.clone())
        .unwrap_or_default();
    let creds = spec
        .parameters_schema
        .as_ref()
        .map(|p| p.credential_fields.clone())
        .unwrap_or_default();
    let params = backuprepo_catalog::params::resolve(&schema, &creds, config, &BTreeMap::new())
        .unwrap_or_else(|e| panic!("{e:?}"));
    let ctx = render::Context {
        parameters: &params,
        csi_secret: Some(("secret-repo-abcdef", "kb-system")),
    };
    let mut out = BTreeMap::new();
    if let Some(t) = render::tool_config(spec, &ctx).unwrap() {
        let ini = backuprepo_transfer::config::parse_ini(t.text()).unwrap();
        out.insert("tool config", serde_json::to_value(ini).unwrap());
    }
    if let Some(s) = render::csi_secret(spec, &ctx).unwrap() {
        out.insert("csi secret", serde_json::to_value(s).unwrap());
    }
    if let Some(sc) = render::storage_class(spec, &ctx).unwrap() {
        out.insert("storage class", serde_json::to_value(sc).unwrap());
    }
    if let Some(pvc) = render::pvc(spec, &ctx, "sc-repo-abcdef").unwrap() {
        out.insert("pvc", serde_json::to_value(pvc).unwrap());
    }
    out
}

/// Our built-in provider of each KubeBlocks name renders the same results (as data) for the
/// same parameters, and its schema keeps every KubeBlocks parameter with the same type,
/// default, requiredness and credential status (ours may only add parameters).
#[test]
fn builtins_render_what_kubeblocks_renders() {
    let files = kubeblocks_files();
    if files.is_empty() {
        return;
    }
    let mut compared = 0;
    for path in files {
        let text = std::fs::read_to_string(path).unwrap();
        let kb: backuprepo_api::StorageProvider = serde_yaml_ng::from_str(&text).unwrap();
        let name = kb.metadata.name.clone().unwrap();
        let ours = backuprepo_catalog::builtin::get(&name).unwrap();
        let raw: Yaml = serde_yaml_ng::from_str(&text).unwrap();
        let config = string_params(&raw["spec"]);

        let a = rendered(&kb.spec, &config);
        let b = rendered(&ours.spec, &config);
        assert_eq!(
            a.keys().collect::<Vec<_>>(),
            b.keys().collect::<Vec<_>>(),
            "{name}: same outputs"
        );
        for (what, kb_out) in &a {
            assert_eq!(kb_out, &b[what], "{name}: {what} differs");
            compared += 1;
        }

        let (ks, os) = (
            kb.spec.parameters_schema.clone().unwrap(),
            ours.spec.parameters_schema.clone().unwrap(),
        );
        assert_eq!(ks.credential_fields, os.credential_fields, "{name}");
        let (kj, oj) = (
            ks.open_api_v3_schema.unwrap(),
            os.open_api_v3_schema.unwrap(),
        );
        assert_eq!(kj["required"], oj["required"], "{name}: required");
        for (prop, k) in kj["properties"].as_object().unwrap() {
            let o = &oj["properties"][prop];
            assert_eq!(k["type"], o["type"], "{name}.{prop}: type");
            assert_eq!(k["default"], o["default"], "{name}.{prop}: default");
            assert_eq!(k["enum"], o["enum"], "{name}.{prop}: enum");
        }
        assert_eq!(kb.spec.csi_driver_name, ours.spec.csi_driver_name, "{name}");
        assert_eq!(
            kb.spec.access_methods(),
            ours.spec.access_methods(),
            "{name}"
        );
    }
    assert_eq!(
        compared, 25,
        "every KubeBlocks output compared (7 S3-family × 3, ftp, azureblob, nfs, pvc)"
    );
}
