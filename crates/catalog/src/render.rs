//! Rendering a provider's templates for one repository into typed results: the tool config
//! (datasafed INI, checked by the transfer crate's loader), the CSI driver Secret's data, a
//! StorageClass and a PersistentVolumeClaim.
//!
//! The template context is KubeBlocks': `.Parameters` (strings), `.CSIDriverSecretRef.Name` /
//! `.Namespace` (empty strings when the provider has no CSI secret template) and
//! `.GeneratedStorageClassName` (only while rendering the PVC template).
//!
//! Error messages name the template and the problem, never a rendered value: parameters may be
//! credentials.

use std::collections::BTreeMap;
use std::fmt;

use backuprepo_api::StorageProviderSpec;
use backuprepo_toolconfig::config::{Backend, ToolConfig};
use backuprepo_toolconfig::rewrite::rewrite_storage;
use k8s_openapi::api::core::v1::PersistentVolumeClaim;
use k8s_openapi::api::storage::v1::StorageClass;
use serde_json::Value as Json;

use crate::template::{Template, Value};

/// Which of a provider's templates failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Which {
    ToolConfig,
    CsiSecret,
    StorageClass,
    Pvc,
}

impl Which {
    /// The StorageProvider field that holds the template.
    pub fn field(self) -> &'static str {
        match self {
            Which::ToolConfig => "datasafedConfigTemplate",
            Which::CsiSecret => "csiDriverSecretTemplate",
            Which::StorageClass => "storageClassTemplate",
            Which::Pvc => "persistentVolumeClaimTemplate",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("failed to render the {} of the storage provider: {message}", which.field())]
pub struct RenderError {
    pub which: Which,
    pub message: String,
}

fn err(which: Which, message: impl Into<String>) -> RenderError {
    RenderError {
        which,
        message: message.into(),
    }
}

/// The rendered tool config: the INI text that goes into the tool-config Secret or file, and
/// the typed config it loads as. `Debug` never shows the text (it holds credentials).
#[derive(Clone)]
pub struct RenderedToolConfig {
    text: String,
    pub config: ToolConfig,
}

impl RenderedToolConfig {
    /// The INI text. Contains credentials: write it only to 0600 files or Secrets.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The same config, read-only (`read_only = true` in its `[storage]` section): what a
    /// read-only repository hands to every user of its config. A `read_only` the template set
    /// itself is replaced, in whatever form it was written.
    pub fn read_only(self) -> Result<Self, RenderError> {
        let out = self.edit_storage("read-only", &[], &[("read_only", "true")])?;
        if !out.config.tuning.read_only {
            return Err(err(
                Which::ToolConfig,
                "the read-only config does not read as read-only",
            ));
        }
        Ok(out)
    }

    /// The same config with every written object locked (`object_lock_retention` and
    /// `object_lock_mode` in `[storage]`, replacing any the template set): what a repository
    /// annotated `backuprepo.io/retention` hands out once its bucket has object lock.
    pub fn with_retention(
        self,
        r: &backuprepo_toolconfig::retention::Retention,
    ) -> Result<Self, RenderError> {
        let period = backuprepo_toolconfig::retention::format_duration(r.period);
        let out = self.edit_storage(
            "retention",
            &[],
            &[
                ("object_lock_retention", &period),
                ("object_lock_mode", r.mode.as_str()),
            ],
        )?;
        if out.config.tuning.retention.as_ref() != Some(r) {
            return Err(err(
                Which::ToolConfig,
                "the config with retention does not read back with it",
            ));
        }
        Ok(out)
    }

    /// The same config with another S3 key (a key scoped to one namespace's path): the
    /// `access_key_id` and `secret_access_key` of `[storage]` are replaced, and a
    /// `session_token` of the repository's key is dropped. The result is checked: its parsed
    /// key is the scoped one, and its text holds none of the repository's credential values.
    pub fn with_key(
        self,
        access_key_id: &str,
        secret_access_key: &str,
    ) -> Result<Self, RenderError> {
        const KEYS: [&str; 3] = ["access_key_id", "secret_access_key", "session_token"];
        let admin: Vec<String> = match &self.config.backend {
            Backend::S3(c) => [&c.access_key_id, &c.secret_access_key, &c.session_token]
                .into_iter()
                .map(|s| s.expose().to_string())
                .filter(|v| !v.is_empty() && v != access_key_id && v != secret_access_key)
                .collect(),
            other => {
                return Err(err(
                    Which::ToolConfig,
                    format!("a scoped key needs an s3 config, not {}", other.type_name()),
                ))
            }
        };
        let out = self.edit_storage(
            "scoped",
            &KEYS,
            &[
                ("access_key_id", access_key_id),
                ("secret_access_key", secret_access_key),
            ],
        )?;
        let holds_scoped = matches!(&out.config.backend, Backend::S3(c)
            if c.access_key_id.expose() == access_key_id
                && c.secret_access_key.expose() == secret_access_key
                && c.session_token.is_empty());
        if !holds_scoped || admin.iter().any(|v| out.text.contains(v.as_str())) {
            return Err(err(
                Which::ToolConfig,
                "the scoped config still holds the repository's key (a value of it appears outside access_key_id and secret_access_key); remove it from the template",
            ));
        }
        Ok(out)
    }

    /// The config rebuilt from its parsed form with the `[storage]` keys `drop` removed and
    /// `set` written (see [`rewrite_storage`]), and parsed again.
    fn edit_storage(
        self,
        what: &str,
        drop: &[&str],
        set: &[(&str, &str)],
    ) -> Result<Self, RenderError> {
        let bad = |e: backuprepo_toolconfig::Error| {
            err(
                Which::ToolConfig,
                format!("the {what} config is not a valid tool config: {e}"),
            )
        };
        let text = rewrite_storage(&self.text, drop, set).map_err(bad)?;
        let config = ToolConfig::parse(&text).map_err(bad)?;
        Ok(RenderedToolConfig { text, config })
    }
}

impl fmt::Debug for RenderedToolConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RenderedToolConfig")
            .field("text", &"<redacted>")
            .field("config", &self.config)
            .finish()
    }
}

/// Inputs shared by every template of one repository.
#[derive(Debug, Clone)]
pub struct Context<'a> {
    pub parameters: &'a BTreeMap<String, String>,
    /// `(name, namespace)` of the generated CSI driver Secret.
    pub csi_secret: Option<(&'a str, &'a str)>,
}

impl Context<'_> {
    fn value(&self, storage_class: Option<&str>) -> Value {
        let params = self
            .parameters
            .iter()
            .map(|(k, v)| (k.clone(), Value::str(v.clone())))
            .collect();
        let (name, ns) = self.csi_secret.unwrap_or(("", ""));
        let mut secret = BTreeMap::new();
        secret.insert("Name".to_string(), Value::str(name));
        secret.insert("Namespace".to_string(), Value::str(ns));
        let mut root = BTreeMap::new();
        root.insert("Parameters".to_string(), Value::Map(params));
        root.insert("CSIDriverSecretRef".to_string(), Value::Map(secret));
        if let Some(sc) = storage_class {
            root.insert("GeneratedStorageClassName".to_string(), Value::str(sc));
        }
        Value::Map(root)
    }
}

fn template(src: &Option<String>) -> Option<&str> {
    src.as_deref().filter(|s| !s.trim().is_empty())
}

fn run(which: Which, src: &str, data: &Value) -> Result<String, RenderError> {
    let t = Template::parse(src).map_err(|e| err(which, e.to_string()))?;
    t.render(data).map_err(|e| err(which, e.to_string()))
}

/// The tool config, or `None` when the provider does not support Tool access.
pub fn tool_config(
    spec: &StorageProviderSpec,
    ctx: &Context<'_>,
) -> Result<Option<RenderedToolConfig>, RenderError> {
    let Some(src) = template(&spec.datasafed_config_template) else {
        return Ok(None);
    };
    let text = run(Which::ToolConfig, src, &ctx.value(None))?;
    let config = ToolConfig::parse(&text).map_err(|e| {
        err(
            Which::ToolConfig,
            format!("the rendered config is not a valid tool config: {e}"),
        )
    })?;
    Ok(Some(RenderedToolConfig { text, config }))
}

/// The CSI driver Secret's data, or `None` when the provider has no CSI secret template.
pub fn csi_secret(
    spec: &StorageProviderSpec,
    ctx: &Context<'_>,
) -> Result<Option<BTreeMap<String, String>>, RenderError> {
    let Some(src) = template(&spec.csi_driver_secret_template) else {
        return Ok(None);
    };
    let which = Which::CsiSecret;
    let text = run(which, src, &ctx.value(None))?;
    let doc = yaml(which, &text)?;
    let map = match doc {
        Json::Null => serde_json::Map::new(),
        Json::Object(m) => m,
        other => {
            return Err(err(
                which,
                format!(
                    "the rendered text is a YAML {}, not a map of strings",
                    kind(&other)
                ),
            ))
        }
    };
    let mut out = BTreeMap::new();
    for (k, v) in map {
        let s = match v {
            Json::String(s) => s,
            Json::Null => String::new(),
            other => {
                return Err(err(
                    which,
                    format!(
                        "key {k:?} renders to a YAML {}, not a string; quote it in the template (e.g. {{{{ ... | quote }}}})",
                        kind(&other)
                    ),
                ))
            }
        };
        out.insert(k, s);
    }
    Ok(Some(out))
}

/// The StorageClass, or `None` when the provider has no StorageClass template.
pub fn storage_class(
    spec: &StorageProviderSpec,
    ctx: &Context<'_>,
) -> Result<Option<StorageClass>, RenderError> {
    let Some(src) = template(&spec.storage_class_template) else {
        return Ok(None);
    };
    let which = Which::StorageClass;
    let text = run(which, src, &ctx.value(None))?;
    let mut doc = object(which, yaml(which, &text)?)?;
    // The template gives the fields; the object's identity is ours.
    doc.entry("apiVersion")
        .or_insert("storage.k8s.io/v1".into());
    doc.entry("kind").or_insert("StorageClass".into());
    doc.entry("metadata")
        .or_insert_with(|| Json::Object(Default::default()));
    if !doc.contains_key("provisioner") {
        return Err(err(which, "the rendered StorageClass has no provisioner"));
    }
    typed(which, Json::Object(doc), "StorageClass").map(Some)
}

/// The PersistentVolumeClaim, or `None` when the provider has no PVC template.
pub fn pvc(
    spec: &StorageProviderSpec,
    ctx: &Context<'_>,
    storage_class: &str,
) -> Result<Option<PersistentVolumeClaim>, RenderError> {
    let Some(src) = template(&spec.persistent_volume_claim_template) else {
        return Ok(None);
    };
    let which = Which::Pvc;
    let text = run(which, src, &ctx.value(Some(storage_class)))?;
    let mut doc = object(which, yaml(which, &text)?)?;
    doc.entry("apiVersion").or_insert("v1".into());
    doc.entry("kind").or_insert("PersistentVolumeClaim".into());
    doc.entry("metadata")
        .or_insert_with(|| Json::Object(Default::default()));
    typed(which, Json::Object(doc), "PersistentVolumeClaim").map(Some)
}

fn yaml(which: Which, text: &str) -> Result<Json, RenderError> {
    serde_yaml_ng::from_str::<Json>(text).map_err(|e| {
        let at = e
            .location()
            .map(|l| format!(" at line {}, column {}", l.line(), l.column()))
            .unwrap_or_default();
        err(
            which,
            format!("the rendered text is not valid YAML{at}; check the template's indentation and quoting"),
        )
    })
}

fn object(which: Which, doc: Json) -> Result<serde_json::Map<String, Json>, RenderError> {
    match doc {
        Json::Object(m) => Ok(m),
        Json::Null => Ok(Default::default()),
        other => Err(err(
            which,
            format!(
                "the rendered text is a YAML {}, not an object",
                kind(&other)
            ),
        )),
    }
}

fn typed<T: serde::de::DeserializeOwned>(
    which: Which,
    doc: Json,
    kind_name: &str,
) -> Result<T, RenderError> {
    serde_json::from_value(doc).map_err(|e| {
        err(
            which,
            format!(
                "the rendered text is not a valid {kind_name}: {}",
                redact_quoted(&e.to_string())
            ),
        )
    })
}

fn kind(v: &Json) -> &'static str {
    match v {
        Json::Null => "null",
        Json::Bool(_) => "boolean",
        Json::Number(_) => "number",
        Json::String(_) => "string",
        Json::Array(_) => "list",
        Json::Object(_) => "map",
    }
}

/// serde's messages quote the offending value (`invalid type: string "x"`); values may be
/// credentials, so quoted parts become `…`.
fn redact_quoted(msg: &str) -> String {
    let mut out = String::with_capacity(msg.len());
    let mut inside = false;
    for c in msg.chars() {
        if c == '"' {
            if !inside {
                out.push('…');
            }
            inside = !inside;
            continue;
        }
        if !inside {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(field: Which, src: &str) -> StorageProviderSpec {
        let mut s = StorageProviderSpec::default();
        let v = Some(src.to_string());
        match field {
            Which::ToolConfig => s.datasafed_config_template = v,
            Which::CsiSecret => s.csi_driver_secret_template = v,
            Which::StorageClass => s.storage_class_template = v,
            Which::Pvc => s.persistent_volume_claim_template = v,
        }
        s
    }

    fn params(kv: &[(&str, &str)]) -> BTreeMap<String, String> {
        kv.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn csi_secret_must_be_a_map_of_strings() {
        let p = params(&[("key", "12345")]);
        let ctx = Context {
            parameters: &p,
            csi_secret: None,
        };
        let ok = csi_secret(
            &spec(Which::CsiSecret, "a: {{ .Parameters.key | quote }}\nb:\n"),
            &ctx,
        )
        .unwrap()
        .unwrap();
        assert_eq!(ok["a"], "12345");
        assert_eq!(ok["b"], "");
        let e = csi_secret(&spec(Which::CsiSecret, "a: {{ .Parameters.key }}"), &ctx).unwrap_err();
        assert!(e.message.contains("\"a\" renders to a YAML number"), "{e}");
        assert!(!e.to_string().contains("12345"), "value leaked: {e}");
        let e = csi_secret(&spec(Which::CsiSecret, "just text"), &ctx).unwrap_err();
        assert!(e.message.contains("not a map of strings"), "{e}");
        let e = csi_secret(&spec(Which::CsiSecret, "a: [b\n"), &ctx).unwrap_err();
        assert!(e.message.contains("not valid YAML at line"), "{e}");
    }

    #[test]
    fn storage_class_and_pvc_are_typed() {
        let p = params(&[("server", "10.0.0.1")]);
        let ctx = Context {
            parameters: &p,
            csi_secret: Some(("sec", "ns")),
        };
        let sc = storage_class(
            &spec(
                Which::StorageClass,
                "provisioner: x\nparameters:\n  server: {{ .Parameters.server }}\n  ref: {{ .CSIDriverSecretRef.Name }}/{{ .CSIDriverSecretRef.Namespace }}\n",
            ),
            &ctx,
        )
        .unwrap()
        .unwrap();
        assert_eq!(sc.provisioner, "x");
        let params = sc.parameters.unwrap();
        assert_eq!(params["server"], "10.0.0.1");
        assert_eq!(params["ref"], "sec/ns");
        let e = storage_class(&spec(Which::StorageClass, "parameters: {}"), &ctx).unwrap_err();
        assert!(e.message.contains("no provisioner"), "{e}");
        let e = storage_class(&spec(Which::StorageClass, "- a"), &ctx).unwrap_err();
        assert!(e.message.contains("YAML list, not an object"), "{e}");
        let e = storage_class(
            &spec(
                Which::StorageClass,
                "provisioner: x\nparameters: secret-value",
            ),
            &ctx,
        )
        .unwrap_err();
        assert!(!e.to_string().contains("secret-value"), "{e}");

        let claim = pvc(
            &spec(
                Which::Pvc,
                "spec:\n  storageClassName: {{ .GeneratedStorageClassName }}\n",
            ),
            &ctx,
            "sc-generated",
        )
        .unwrap()
        .unwrap();
        assert_eq!(
            claim.spec.unwrap().storage_class_name.as_deref(),
            Some("sc-generated")
        );
        // Only the PVC template sees the generated StorageClass name.
        let e = csi_secret(
            &spec(Which::CsiSecret, "a: {{ .GeneratedStorageClassName }}"),
            &ctx,
        )
        .unwrap()
        .unwrap();
        assert_eq!(e["a"], "<no value>");
    }

    #[test]
    fn tool_config_is_loaded_and_hidden_from_debug() {
        let p = params(&[("path", "/srv/backups"), ("key", "TOPSECRET")]);
        let ctx = Context {
            parameters: &p,
            csi_secret: None,
        };
        let t = tool_config(
            &spec(
                Which::ToolConfig,
                "[storage]\ntype = local\nroot = {{ .Parameters.path }}\n# {{ .Parameters.key }}\n",
            ),
            &ctx,
        )
        .unwrap()
        .unwrap();
        assert_eq!(t.config.backend.type_name(), "local");
        assert!(t.text().contains("TOPSECRET"));
        assert!(!format!("{t:?}").contains("TOPSECRET"));
        let e =
            tool_config(&spec(Which::ToolConfig, "[storage]\ntype = tape\n"), &ctx).unwrap_err();
        assert!(e.message.contains("not a valid tool config"), "{e}");
        assert!(e.to_string().contains("datasafedConfigTemplate"), "{e}");
        // No template: Tool access is not supported, which is not an error.
        assert!(tool_config(&StorageProviderSpec::default(), &ctx)
            .unwrap()
            .is_none());
        let e = tool_config(&spec(Which::ToolConfig, "{{ env \"HOME\" }}"), &ctx).unwrap_err();
        assert!(e.message.contains("env"), "{e}");
    }

    /// Custom templates in each form the parser reads: a scoped config keeps no admin value
    /// and a read-only config is read-only, whatever the template wrote.
    #[test]
    fn scoped_and_read_only_configs_hold_in_every_template_form() {
        let p = params(&[]);
        let ctx = Context {
            parameters: &p,
            csi_secret: None,
        };
        let tail = "type = s3\nprovider = Minio\nendpoint = http://127.0.0.1:9\nroot = b/p\n";
        for head in [
            "[ storage ]\naccess_key_id = ADMINID\nsecret_access_key = ADMINSECRET\nread_only = false\n",
            "[storage]\naccess_key_id: ADMINID\nsecret_access_key: ADMINSECRET\nread_only: false\n",
            "[storage]\naccess_key_id = ADMINID\nsecret_access_key.need_obscure = ADMINSECRET\nread_only = false\n",
        ] {
            let template = format!("{head}{tail}");
            let admin = || {
                tool_config(&spec(Which::ToolConfig, &template), &ctx)
                    .unwrap()
                    .unwrap()
            };
            let scoped = admin().with_key("SCOPED", "scoped-secret").unwrap();
            assert!(!scoped.text().contains("ADMIN"), "{head:?}: {}", scoped.text());
            let Backend::S3(c) = &scoped.config.backend else {
                panic!("not s3")
            };
            assert_eq!(c.access_key_id.expose(), "SCOPED", "{head:?}");
            let ro = admin().read_only().unwrap();
            assert!(ro.config.tuning.read_only, "{head:?}: {}", ro.text());
        }
        // A template that repeats the admin secret elsewhere is refused, not handed out.
        let template = format!("[storage]\naccess_key_id = ADMINID\nsecret_access_key = ADMINSECRET\n{tail}[copy]\nk = ADMINSECRET\n");
        let e = tool_config(&spec(Which::ToolConfig, &template), &ctx)
            .unwrap()
            .unwrap()
            .with_key("SCOPED", "scoped-secret")
            .unwrap_err();
        assert!(
            e.message.contains("still holds the repository's key"),
            "{e}"
        );
        assert!(!e.to_string().contains("ADMINSECRET"), "{e}");
    }

    #[test]
    fn redaction_removes_quoted_values() {
        assert_eq!(
            redact_quoted("invalid type: string \"hunter2\", expected a map"),
            "invalid type: string …, expected a map"
        );
    }
}
