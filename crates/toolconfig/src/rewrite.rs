//! Rewriting a config's `[storage]` section from its parsed form, not its text.
//!
//! The parser accepts `[ storage ]`, `key: value`, `key.need_obscure = …` and inline comments;
//! an edit made on the text would have to recognise every one of those forms, and a form it
//! missed would keep a value it meant to drop (an admin key in a namespace's config). Here
//! the text is parsed once and written again in one canonical form, so a dropped key is gone
//! whatever form it came in.

use std::collections::BTreeMap;

use crate::config::parse_ini;
use crate::{Error, Result};

/// The text of `text` with the `[storage]` keys named in `drop` removed (in any form,
/// `<key>.need_obscure` included) and the `set` pairs written in their place. Comments are
/// dropped; every section is written back, `[storage]` first. A value that cannot be written
/// so that it reads back the same is an error.
pub fn rewrite_storage(text: &str, drop: &[&str], set: &[(&str, &str)]) -> Result<String> {
    let mut sections = parse_ini(text)?;
    let storage = sections.get_mut("storage").ok_or_else(|| {
        Error::Config("the config has no [storage] section; it must start with [storage] and a `type = ...` line".into())
    })?;
    let dropped = |k: &str| {
        let base = k.strip_suffix(".need_obscure").unwrap_or(k);
        drop.contains(&base) || set.iter().any(|(s, _)| *s == base)
    };
    storage.retain(|k, _| !dropped(k));
    for (k, v) in set {
        storage.insert((*k).to_string(), (*v).to_string());
    }

    let mut out = String::with_capacity(text.len() + 64);
    if let Some(defaults) = sections.get("DEFAULT") {
        write_pairs(&mut out, defaults)?;
    }
    let order = std::iter::once("storage").chain(
        sections
            .keys()
            .map(String::as_str)
            .filter(|n| *n != "storage" && *n != "DEFAULT"),
    );
    for name in order {
        if let Some(kv) = sections.get(name) {
            out.push_str(&format!("[{name}]\n"));
            write_pairs(&mut out, kv)?;
        }
    }
    Ok(out)
}

fn write_pairs(out: &mut String, kv: &BTreeMap<String, String>) -> Result<()> {
    for (k, v) in kv {
        out.push_str(&format!("{k} = {}\n", quoted(k, v)?));
    }
    Ok(())
}

/// `v` as it must be written to read back as `v`: bare when it does, else in backticks or
/// triple quotes (the parser strips one pair of either).
fn quoted(key: &str, v: &str) -> Result<String> {
    let candidates = [v.to_string(), format!("`{v}`"), format!("\"\"\"{v}\"\"\"")];
    for c in candidates {
        let back = parse_ini(&format!("[s]\nk = {c}\n"))?;
        if back.get("s").and_then(|s| s.get("k")).map(String::as_str) == Some(v) {
            return Ok(c);
        }
    }
    Err(Error::Config(format!(
        "the value of `{key}` cannot be written back into a config (it mixes quotes and comment marks); simplify it"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ToolConfig;

    #[test]
    fn drops_a_key_in_every_form_the_parser_reads() {
        for (form, admin) in [
            ("[storage]\naccess_key_id = ADMINID\nsecret_access_key = ADMINSECRET\n", "ADMINSECRET"),
            ("[ storage ]\naccess_key_id=ADMINID\nsecret_access_key=ADMINSECRET\n", "ADMINSECRET"),
            ("[storage]\naccess_key_id: ADMINID\nsecret_access_key: ADMINSECRET\n", "ADMINSECRET"),
            ("[storage]\naccess_key_id = ADMINID\nsecret_access_key.need_obscure = ADMINSECRET\n", "ADMINSECRET"),
        ] {
            let text = format!("{form}type = s3\nprovider = Minio\nendpoint = http://127.0.0.1:9\nroot = b/p # the bucket\n");
            let out = rewrite_storage(
                &text,
                &["session_token"],
                &[("access_key_id", "SCOPED"), ("secret_access_key", "scoped-secret")],
            )
            .unwrap();
            assert!(!out.contains(admin), "{form:?} kept the admin secret:\n{out}");
            assert!(!out.contains("ADMINID"), "{out}");
            let parsed = ToolConfig::parse(&out).unwrap();
            assert_eq!(parsed.get("storage.access_key_id").unwrap(), "SCOPED");
            assert_eq!(parsed.get("storage.root").unwrap(), "b/p");
        }
    }

    #[test]
    fn values_read_back_the_same() {
        let text = "[storage]\ntype = local\nroot = `/a #b`\nx = \"quoted\"\n[other]\nk = v\n";
        let out = rewrite_storage(text, &[], &[]).unwrap();
        let before = parse_ini(text).unwrap();
        assert_eq!(parse_ini(&out).unwrap(), before, "{out}");
        assert!(out.starts_with("[storage]\n"), "{out}");
    }

    #[test]
    fn a_missing_storage_section_is_named() {
        let e = rewrite_storage("[other]\nk = v\n", &[], &[]).unwrap_err();
        assert!(e.to_string().contains("[storage]"), "{e}");
    }
}
