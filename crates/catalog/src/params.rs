//! A repository's parameters: schema defaults, overridden by the repository's `config`,
//! overridden by the credential Secret's data, then checked against the provider's OpenAPI
//! schema (types, required, enum, bounds) with the `jsonschema` crate.
//!
//! Parameters stay strings (KubeBlocks passes `map[string]string` to templates); each is parsed
//! by its schema type only to validate it. Every error names the parameter, the problem and the
//! fix, and never shows the value of a credential field.

use std::collections::BTreeMap;

use serde_json::Value as Json;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParamError {
    #[error("parameter {name:?} is required by the storage provider; set it in the BackupRepo's config (or its credential Secret)")]
    Missing { name: String },
    #[error("parameter {name:?} {problem}; {fix}")]
    Invalid {
        name: String,
        problem: String,
        fix: String,
    },
    #[error("the storage provider's parameter schema is invalid: {0}")]
    Schema(String),
}

/// The keys of `config` that `schema` (a provider's `parametersSchema.openAPIV3Schema`) does not
/// declare, each with the declared parameter it most likely meant, if one is close. Nothing
/// when the schema declares no properties (then every key may be read by a template).
pub fn unknown_keys<'a>(
    schema: &'a Json,
    config: impl IntoIterator<Item = &'a String>,
) -> Vec<(String, Option<&'a str>)> {
    let Some(props) = schema.get("properties").and_then(Json::as_object) else {
        return Vec::new();
    };
    config
        .into_iter()
        .filter(|k| !props.contains_key(k.as_str()))
        .map(|k| {
            let near = props
                .keys()
                .map(|p| (strsim::levenshtein(&k.to_lowercase(), &p.to_lowercase()), p))
                .filter(|(d, p)| *d <= 2.max(p.len() / 4))
                .min_by_key(|(d, _)| *d)
                .map(|(_, p)| p.as_str());
            (k.clone(), near)
        })
        .collect()
}

/// Merge and validate. `schema` is the provider's `parametersSchema.openAPIV3Schema`.
pub fn resolve(
    schema: &Json,
    credential_fields: &[String],
    config: &BTreeMap<String, String>,
    secret: &BTreeMap<String, String>,
) -> Result<BTreeMap<String, String>, Vec<ParamError>> {
    let props = schema.get("properties").and_then(Json::as_object);
    let mut merged = BTreeMap::new();
    if let Some(props) = props {
        for (name, prop) in props {
            if let Some(d) = prop.get("default") {
                let v = match d {
                    Json::String(s) => s.clone(),
                    other => other.to_string(),
                };
                merged.insert(name.clone(), v);
            }
        }
    }
    merged.extend(config.iter().map(|(k, v)| (k.clone(), v.clone())));
    merged.extend(secret.iter().map(|(k, v)| (k.clone(), v.clone())));

    let secret_field = |name: &str| credential_fields.iter().any(|c| c == name);
    let shown = |name: &str, v: &str| {
        if secret_field(name) {
            "(a credential, not shown)".to_string()
        } else {
            format!("{v:?}")
        }
    };
    let mut errors = Vec::new();
    let mut instance = serde_json::Map::new();
    for (name, value) in &merged {
        if let Some(c) = value.chars().find(|c| matches!(c, '\n' | '\r' | '#' | ';')) {
            errors.push(ParamError::Invalid {
                name: name.clone(),
                problem: format!(
                    "contains {c:?}, which would corrupt the rendered tool config (INI)"
                ),
                fix: "remove that character from the value".into(),
            });
            continue;
        }
        let ty = props
            .and_then(|p| p.get(name))
            .and_then(|p| p.get("type"))
            .and_then(Json::as_str);
        let typed = match ty {
            Some("integer") => value
                .trim()
                .parse::<i64>()
                .map(Json::from)
                .map_err(|_| "an integer"),
            Some("number") => value
                .trim()
                .parse::<f64>()
                .ok()
                .and_then(serde_json::Number::from_f64)
                .map(Json::Number)
                .ok_or("a number"),
            Some("boolean") => match value.trim() {
                "1" | "t" | "T" | "TRUE" | "true" | "True" => Ok(Json::Bool(true)),
                "0" | "f" | "F" | "FALSE" | "false" | "False" => Ok(Json::Bool(false)),
                _ => Err("true or false"),
            },
            _ => Ok(Json::String(value.clone())),
        };
        match typed {
            Ok(v) => {
                instance.insert(name.clone(), v);
            }
            Err(want) => errors.push(ParamError::Invalid {
                name: name.clone(),
                problem: format!("is {}, not {want}", shown(name, value)),
                fix: format!("set it to {want}"),
            }),
        }
    }

    let validator = jsonschema::validator_for(schema)
        .map_err(|e| vec![ParamError::Schema(e.masked().to_string())])?;
    for e in validator.iter_errors(&Json::Object(instance)) {
        let path = e.instance_path().to_string();
        let name = path
            .trim_start_matches('/')
            .split('/')
            .next()
            .unwrap_or_default()
            .to_string();
        if let jsonschema::error::ValidationErrorKind::Required { property } = e.kind() {
            let missing = property
                .as_str()
                .map(str::to_string)
                .unwrap_or_else(|| property.to_string());
            errors.push(ParamError::Missing { name: missing });
            continue;
        }
        // A path the schema wants absolute (`local`'s `path`, pattern `^/`): say so plainly.
        if let jsonschema::error::ValidationErrorKind::Pattern { pattern } = e.kind() {
            if pattern.as_str() == "^/" {
                errors.push(ParamError::Invalid {
                    name: name.clone(),
                    problem: "must be an absolute path (starting with /)".into(),
                    fix: "give the full path, e.g. /var/backups".into(),
                });
                continue;
            }
        }
        // `masked` leaves the offending value out of the message, so credentials never leak.
        errors.push(ParamError::Invalid {
            name: name.clone(),
            problem: format!("does not match the provider's schema: {}", e.masked()),
            fix: "see `list-storage-provider` for the allowed values".into(),
        });
    }
    if errors.is_empty() {
        Ok(merged)
    } else {
        Err(errors)
    }
}

#[cfg(test)]
mod unknown_tests {
    use super::unknown_keys;

    #[test]
    fn unknown_keys_come_with_the_nearest_declared_one() {
        let schema = serde_json::json!({"properties": {"bucket": {}, "endpoint": {}, "path": {}}});
        let config = [
            "bucket".to_string(),
            "endpiont".to_string(),
            "zzz".to_string(),
        ];
        assert_eq!(
            unknown_keys(&schema, &config),
            vec![
                ("endpiont".to_string(), Some("endpoint")),
                ("zzz".to_string(), None)
            ]
        );
        assert!(unknown_keys(&serde_json::json!({}), &config).is_empty());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema() -> Json {
        serde_json::json!({
            "type": "object",
            "properties": {
                "region": {"type": "string"},
                "bucket": {"type": "string"},
                "tier": {"type": "string", "enum": ["hot", "cold"]},
                "memoryLimit": {"type": "integer", "default": 512, "minimum": 64},
                "insecure": {"type": "boolean", "default": false},
                "secretAccessKey": {"type": "string", "minLength": 8}
            },
            "required": ["bucket", "secretAccessKey"]
        })
    }

    fn map(kv: &[(&str, &str)]) -> BTreeMap<String, String> {
        kv.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn creds() -> Vec<String> {
        vec!["secretAccessKey".into()]
    }

    #[test]
    fn defaults_then_config_then_secret() {
        let p = resolve(
            &schema(),
            &creds(),
            &map(&[
                ("bucket", "b"),
                ("memoryLimit", "1024"),
                ("secretAccessKey", "from-config"),
            ]),
            &map(&[("secretAccessKey", "from-secret-123")]),
        )
        .unwrap();
        assert_eq!(p["memoryLimit"], "1024");
        assert_eq!(p["insecure"], "false");
        assert_eq!(p["secretAccessKey"], "from-secret-123");
    }

    #[test]
    fn each_problem_is_named_and_credentials_are_not_shown() {
        let errs = resolve(
            &schema(),
            &creds(),
            &map(&[
                ("memoryLimit", "lots"),
                ("insecure", "maybe"),
                ("tier", "warm"),
                ("region", "us#1"),
            ]),
            &map(&[("secretAccessKey", "zq9x")]),
        )
        .unwrap_err();
        let text: Vec<String> = errs.iter().map(ToString::to_string).collect();
        let all = text.join("\n");
        assert!(all.contains("parameter \"bucket\" is required"), "{all}");
        assert!(
            all.contains("parameter \"memoryLimit\" is \"lots\", not an integer"),
            "{all}"
        );
        assert!(
            all.contains("parameter \"insecure\" is \"maybe\", not true or false"),
            "{all}"
        );
        assert!(all.contains("parameter \"tier\" does not match"), "{all}");
        assert!(all.contains("parameter \"region\" contains '#'"), "{all}");
        assert!(
            all.contains("parameter \"secretAccessKey\" does not match"),
            "{all}"
        );
        assert!(!all.contains("zq9x"), "a credential value leaked: {all}");
        let errs = resolve(
            &schema(),
            &creds(),
            &map(&[("bucket", "b")]),
            &map(&[("secretAccessKey", "abc\ndefghij")]),
        )
        .unwrap_err();
        let all = errs
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("\n");
        assert!(
            all.contains("corrupt the rendered tool config") && !all.contains("abc"),
            "{all}"
        );
        let errs = resolve(
            &schema(),
            &creds(),
            &map(&[("bucket", "b"), ("memoryLimit", "1")]),
            &map(&[("secretAccessKey", "longenough")]),
        )
        .unwrap_err();
        assert!(errs[0].to_string().contains("memoryLimit"), "{errs:?}");
    }
}
