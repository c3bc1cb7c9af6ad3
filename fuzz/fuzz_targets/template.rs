//! The template engine never panics, overflows its stack or hangs, whatever the template:
//! parse arbitrary text, render it against a context shaped like the controller's.
#![no_main]

use std::collections::BTreeMap;

// The engine is one self-contained module (std only); including it directly keeps the fuzz
// build small (the catalog crate would pull in the schema validator and the API types).
#[allow(dead_code)]
#[path = "../../crates/catalog/src/template/mod.rs"]
mod template;

use template::{Template, Value};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(src) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(t) = Template::parse(src) else {
        return;
    };
    let mut params = BTreeMap::new();
    for (k, v) in [("bucket", "b"), ("region", "cn-north-1"), ("port", "0"), ("n", "512")] {
        params.insert(k.to_string(), Value::str(v));
    }
    let mut secret = BTreeMap::new();
    secret.insert("Name".to_string(), Value::str("s"));
    secret.insert("Namespace".to_string(), Value::str("ns"));
    let mut root = BTreeMap::new();
    root.insert("Parameters".to_string(), Value::Map(params));
    root.insert("CSIDriverSecretRef".to_string(), Value::Map(secret));
    let _ = t.render(&Value::Map(root));
});
