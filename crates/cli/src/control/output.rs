//! kubectl's `-o` formats for the objects `get`, `list` and `list-storage-provider` print:
//! `json`, `yaml`, `name`, `jsonpath=TEMPLATE` (and `jsonpath-as-json=`), `custom-columns=SPEC`;
//! `table` and `wide` are each command's own. JSONPath expressions are evaluated with
//! `serde_json_path` (RFC 9535); kubectl's template around them (`{...}` expressions, literal
//! text, `{range ...}...{end}`) is read here, since no maintained crate reads kubectl's
//! templates.

use anyhow::{anyhow, bail, Result};
use serde_json::Value as Json;
use serde_json_path::JsonPath;

/// One `-o` value, parsed.
#[derive(Debug)]
pub enum Format {
    /// The command's table (`table`, or kubectl's default with no `-o`).
    Table,
    /// The table with more columns.
    Wide,
    Json,
    Yaml,
    /// `KIND.GROUP/NAME`, one per line.
    Name,
    /// A kubectl JSONPath template; `as_json`: print the matched values as one JSON array.
    JsonPath {
        template: Vec<Piece>,
        as_json: bool,
    },
    /// `HEADER:EXPR,...`.
    CustomColumns(Vec<(String, JsonPath)>),
}

/// A piece of a kubectl JSONPath template.
#[derive(Debug)]
pub enum Piece {
    Text(String),
    Expr(JsonPath),
    Range(JsonPath, Vec<Piece>),
}

const FORMATS: &str = "table, wide, json, yaml, name, jsonpath=TEMPLATE, jsonpath-as-json=TEMPLATE, custom-columns=HEADER:PATH,...";

impl Format {
    pub fn parse(s: &str) -> Result<Format> {
        Ok(match s {
            "" | "table" => Format::Table,
            "wide" => Format::Wide,
            "json" => Format::Json,
            "yaml" => Format::Yaml,
            "name" => Format::Name,
            _ => {
                if let Some(t) = s.strip_prefix("jsonpath=") {
                    Format::JsonPath {
                        template: template(t)?,
                        as_json: false,
                    }
                } else if let Some(t) = s.strip_prefix("jsonpath-as-json=") {
                    Format::JsonPath {
                        template: template(t)?,
                        as_json: true,
                    }
                } else if let Some(spec) = s.strip_prefix("custom-columns=") {
                    Format::CustomColumns(columns(spec)?)
                } else {
                    bail!("unknown output format {s:?}: use {FORMATS}")
                }
            }
        })
    }

    /// Whether the command prints its own table for this format.
    pub fn is_table(&self) -> bool {
        matches!(self, Format::Table | Format::Wide)
    }
}

/// kubectl's path (`.metadata.name`, `{.items[*].spec}`, `@`) as an RFC 9535 query.
fn path(expr: &str) -> Result<JsonPath> {
    let e = expr.trim();
    let q = match e {
        "" | "@" | "$" => "$".to_string(),
        _ if e.starts_with('$') => e.to_string(),
        _ if e.starts_with('@') => format!("${}", &e[1..]),
        _ if e.starts_with('.') || e.starts_with('[') => format!("${e}"),
        _ => format!("$.{e}"),
    };
    JsonPath::parse(&q).map_err(|err| anyhow!("invalid JSONPath {expr:?}: {err}"))
}

/// Read a template: literal text, `{EXPR}`, `{"literal"}`, `{range EXPR}...{end}`.
fn template(t: &str) -> Result<Vec<Piece>> {
    let mut stack: Vec<(Option<JsonPath>, Vec<Piece>)> = vec![(None, Vec::new())];
    let mut rest = t;
    while !rest.is_empty() {
        let Some(open) = rest.find('{') else {
            push(&mut stack, Piece::Text(rest.to_string()));
            break;
        };
        if open > 0 {
            push(&mut stack, Piece::Text(rest[..open].to_string()));
        }
        let Some(close) = rest[open..].find('}') else {
            bail!("invalid JSONPath template {t:?}: a {{ is not closed");
        };
        let inner = rest[open + 1..open + close].trim();
        rest = &rest[open + close + 1..];
        if let Some(q) = inner.strip_prefix('"').and_then(|q| q.strip_suffix('"')) {
            let text = q.replace("\\n", "\n").replace("\\t", "\t");
            push(&mut stack, Piece::Text(text));
        } else if let Some(e) = inner.strip_prefix("range ") {
            stack.push((Some(path(e)?), Vec::new()));
        } else if inner == "end" {
            let (Some(p), body) = stack.pop().unwrap_or((None, Vec::new())) else {
                bail!("invalid JSONPath template {t:?}: {{end}} without {{range}}");
            };
            push(&mut stack, Piece::Range(p, body));
        } else {
            push(&mut stack, Piece::Expr(path(inner)?));
        }
    }
    match stack.pop() {
        Some((None, pieces)) if stack.is_empty() => Ok(pieces),
        _ => bail!("invalid JSONPath template {t:?}: a {{range}} has no {{end}}"),
    }
}

fn push(stack: &mut [(Option<JsonPath>, Vec<Piece>)], p: Piece) {
    if let Some((_, pieces)) = stack.last_mut() {
        pieces.push(p);
    }
}

fn columns(spec: &str) -> Result<Vec<(String, JsonPath)>> {
    spec.split(',')
        .map(|c| match c.split_once(':') {
            Some((h, e)) if !h.is_empty() => Ok((h.to_string(), path(e)?)),
            _ => bail!("custom-columns: {c:?} is not HEADER:PATH (e.g. NAME:.metadata.name)"),
        })
        .collect()
}

/// A value as kubectl prints it in text: strings bare, everything else as JSON.
fn text(v: &Json) -> String {
    match v {
        Json::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn render(pieces: &[Piece], v: &Json, out: &mut String, values: &mut Vec<Json>) {
    for p in pieces {
        match p {
            Piece::Text(t) => out.push_str(t),
            Piece::Expr(q) => {
                let found = q.query(v).all();
                values.extend(found.iter().map(|x| (*x).clone()));
                let shown: Vec<String> = found.into_iter().map(text).collect();
                out.push_str(&shown.join(" "));
            }
            Piece::Range(q, body) => {
                for item in q.query(v).all() {
                    render(body, item, out, values);
                }
            }
        }
    }
}

/// Print `objs` in a non-table format. `resource`: the `-o name` prefix (`backuprepo.
/// dataprotection.kubeblocks.io`); `single`: one object was asked for by name (JSON, YAML and
/// JSONPath then see the object, not a List).
pub fn print<T: serde::Serialize>(
    objs: &[T],
    format: &Format,
    resource: &str,
    single: bool,
) -> Result<()> {
    let items: Vec<Json> = objs
        .iter()
        .map(serde_json::to_value)
        .collect::<Result<_, _>>()?;
    let whole = match items.as_slice() {
        [one] if single => one.clone(),
        _ => {
            serde_json::json!({"apiVersion": "v1", "kind": "List", "items": items, "metadata": {"resourceVersion": ""}})
        }
    };
    match format {
        Format::Table | Format::Wide => bail!("internal: the table is the command's own"),
        Format::Json => println!("{}", serde_json::to_string_pretty(&whole)?),
        Format::Yaml => print!("{}", serde_yaml_ng::to_string(&whole)?),
        Format::Name => {
            for i in &items {
                println!("{resource}/{}", text(&i["metadata"]["name"]));
            }
        }
        Format::JsonPath { template, as_json } => {
            let (mut out, mut values) = (String::new(), Vec::new());
            render(template, &whole, &mut out, &mut values);
            match as_json {
                true => println!("{}", serde_json::to_string_pretty(&values)?),
                false => print!("{out}"),
            }
        }
        Format::CustomColumns(cols) => {
            let header: Vec<&str> = cols.iter().map(|(h, _)| h.as_str()).collect();
            let rows: Vec<Vec<String>> = items
                .iter()
                .map(|i| {
                    cols.iter()
                        .map(|(_, q)| {
                            let found: Vec<String> =
                                q.query(i).all().into_iter().map(text).collect();
                            match found.is_empty() {
                                true => "<none>".to_string(),
                                false => found.join(","),
                            }
                        })
                        .collect()
                })
                .collect();
            print!("{}", super::table(&header, &rows));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(t: &str, v: &Json) -> String {
        let Format::JsonPath { template, .. } = Format::parse(&format!("jsonpath={t}")).unwrap()
        else {
            panic!()
        };
        let (mut out, mut values) = (String::new(), Vec::new());
        render(&template, v, &mut out, &mut values);
        out
    }

    #[test]
    fn kubectl_templates() {
        let v = serde_json::json!({"items": [
            {"metadata": {"name": "a"}, "status": {"phase": "Ready"}},
            {"metadata": {"name": "b"}, "status": {"phase": "Failed"}}]});
        assert_eq!(run("{.items[*].metadata.name}", &v), "a b");
        assert_eq!(
            run(
                r#"{range .items[*]}{.metadata.name}={.status.phase}{"\n"}{end}"#,
                &v
            ),
            "a=Ready\nb=Failed\n"
        );
        assert_eq!(
            run(r#"{.items[?(@.status.phase=="Failed")].metadata.name}"#, &v),
            "b"
        );
        assert_eq!(run("n: {.items[0].metadata.name}", &v), "n: a");
        for bad in ["{.items[", "{range .items[*]}x", "{end}", "{.a"] {
            assert!(Format::parse(&format!("jsonpath={bad}")).is_err(), "{bad}");
        }
        assert!(Format::parse("custom-columns=NAME").is_err());
        assert!(Format::parse("xml")
            .unwrap_err()
            .to_string()
            .contains("jsonpath=TEMPLATE"));
    }
}
