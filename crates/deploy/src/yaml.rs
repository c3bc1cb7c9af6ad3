//! Deterministic JSON values and multi-document YAML.
//!
//! Keys are sorted at every level, so the text does not depend on whether some crate in the
//! build turns on serde_json's `preserve_order` (the committed files must match in every build).

use serde::Serialize;
use serde_json::{Map, Value};

use crate::DeployError;

/// `value` with the keys of every object in sorted order.
pub(crate) fn sorted(value: Value) -> Value {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<(String, Value)> = map.into_iter().collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            let mut out = Map::new();
            for (k, v) in entries {
                out.insert(k, sorted(v));
            }
            Value::Object(out)
        }
        Value::Array(items) => Value::Array(items.into_iter().map(sorted).collect()),
        other => other,
    }
}

/// Serialises `object` into a JSON value with sorted keys; `what` names it in errors.
pub(crate) fn to_sorted_value<T: Serialize>(object: &T, what: &str) -> Result<Value, DeployError> {
    serde_json::to_value(object)
        .map(sorted)
        .map_err(|e| DeployError::Serialize {
            what: what.to_owned(),
            message: e.to_string(),
        })
}

/// The values as one YAML stream: every document starts with `---`.
pub fn to_yaml_documents(values: &[Value]) -> Result<String, DeployError> {
    let mut out = String::new();
    for v in values {
        let v = sorted(v.clone());
        let text = serde_yaml_ng::to_string(&v).map_err(|e| DeployError::Serialize {
            what: describe(&v),
            message: e.to_string(),
        })?;
        out.push_str("---\n");
        out.push_str(&text);
        if !text.ends_with('\n') {
            out.push('\n');
        }
    }
    Ok(out)
}

/// `Kind/name` of a manifest, for messages.
pub(crate) fn describe(v: &Value) -> String {
    format!(
        "{}/{}",
        v["kind"].as_str().unwrap_or("object"),
        v["metadata"]["name"].as_str().unwrap_or_default()
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    #[test]
    fn keys_are_sorted_at_every_level() {
        let v = sorted(json!({"b": {"z": 1, "a": [{"y": 1, "x": 2}]}, "a": 0}));
        let keys: Vec<_> = v.as_object().unwrap().keys().cloned().collect();
        assert_eq!(keys, ["a", "b"]);
        let inner: Vec<_> = v["b"]["a"][0]
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect();
        assert_eq!(inner, ["x", "y"]);
        let text = to_yaml_documents(&[v.clone(), json!({"kind": "X"})]).unwrap();
        assert!(text.starts_with("---\na: 0\n"), "{text}");
        assert_eq!(text.matches("---\n").count(), 2);
    }
}
