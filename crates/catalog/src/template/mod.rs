//! A small engine with Go `text/template` semantics for what StorageProvider templates use:
//! text and actions with trim markers (`{{-`, `-}}`), comments, field access (`.A.B`, `$x.A`),
//! variables (`$x := …`, `$x = …`, `$` = the data), `if` / `else if` / `else` / `end`,
//! pipelines (`a | f b` calls `f b a`) and parenthesised calls, Go's builtins `printf`, `eq`, `ne`,
//! `not`, `and`, `or`, `len`, `index`, and the sprig functions `default`, `hasPrefix`,
//! `hasSuffix`, `splitList`, `toJson`, `trim`, `upper`, `lower`, `quote`, `replace`, `contains`,
//! `join`.
//!
//! Why our own: `gtmpl` (the one Rust port) has no sprig functions and its last release is years
//! old; the subset needed here is small enough to own and test construct by construct.
//!
//! Missing keys behave as in Go with KubeBlocks' `map[string]string` parameters: `.Parameters.x`
//! for a missing `x` prints `<no value>` and is passed to functions as nil (an empty string to a
//! string parameter); `index .Parameters "x"` gives `""`. Non-hermetic functions (`env`, `now`,
//! random values) are refused, so a template renders the same output every time.

mod funcs;
mod lex;
mod parse;

use std::collections::BTreeMap;
use std::fmt::Write as _;

use funcs::*;
use lex::*;
use parse::*;

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// A missing map key (Go's invalid value): prints `<no value>`.
    Missing,
    Nil,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    List(Vec<Value>),
    Map(BTreeMap<String, Value>),
}

impl Value {
    pub fn str(s: impl Into<String>) -> Value {
        Value::Str(s.into())
    }

    /// Go's truth: false, 0, nil, and empty strings, lists and maps are false.
    pub fn truthy(&self) -> bool {
        match self {
            Value::Missing | Value::Nil => false,
            Value::Bool(b) => *b,
            Value::Int(i) => *i != 0,
            Value::Float(f) => *f != 0.0,
            Value::Str(s) => !s.is_empty(),
            Value::List(l) => !l.is_empty(),
            Value::Map(m) => !m.is_empty(),
        }
    }

    /// How `{{ . }}` prints a value.
    fn print(&self) -> String {
        match self {
            Value::Missing => "<no value>".into(),
            Value::Nil => "<nil>".into(),
            Value::Bool(b) => b.to_string(),
            Value::Int(i) => i.to_string(),
            Value::Float(f) => fmt_float(*f),
            Value::Str(s) => s.clone(),
            Value::List(l) => format!(
                "[{}]",
                l.iter().map(Value::print).collect::<Vec<_>>().join(" ")
            ),
            Value::Map(m) => format!(
                "map[{}]",
                m.iter()
                    .map(|(k, v)| format!("{k}:{}", v.print()))
                    .collect::<Vec<_>>()
                    .join(" ")
            ),
        }
    }

    /// The value as a function's string argument: nil and missing become "".
    fn as_string(&self) -> String {
        match self {
            Value::Missing | Value::Nil => String::new(),
            other => other.print(),
        }
    }

    fn to_json(&self) -> serde_json::Value {
        match self {
            Value::Missing | Value::Nil => serde_json::Value::Null,
            Value::Bool(b) => (*b).into(),
            Value::Int(i) => (*i).into(),
            Value::Float(f) => serde_json::Number::from_f64(*f)
                .map(serde_json::Value::Number)
                .unwrap_or_default(),
            Value::Str(s) => s.clone().into(),
            Value::List(l) => l.iter().map(Value::to_json).collect(),
            Value::Map(m) => m.iter().map(|(k, v)| (k.clone(), v.to_json())).collect(),
        }
    }
}

fn fmt_float(f: f64) -> String {
    if f.fract() == 0.0 && f.abs() < 1e21 {
        format!("{}", f as i64)
    } else {
        format!("{f}")
    }
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum Error {
    #[error("template: line {line}: {msg}")]
    Parse { line: usize, msg: String },
    #[error("template: {0}")]
    Exec(String),
}

type Result<T, E = Error> = std::result::Result<T, E>;

/// Deeper nesting (parentheses, `if` blocks) is refused rather than risking the stack.
const MAX_DEPTH: usize = 64;

/// Largest value one function may produce, and largest rendered text. Provider templates
/// render configs of a few hundred bytes; the caps stop pipelines such as
/// `x | quote | quote | ...` (each doubling the size) from exhausting memory.
const MAX_VALUE: usize = 1 << 20;
const MAX_OUTPUT: usize = 4 << 20;

fn too_large() -> Error {
    Error::Exec(format!(
        "a value grew beyond {} KiB; templates must render small configs",
        MAX_VALUE >> 10
    ))
}

/// Approximate size of a value in bytes.
fn size(v: &Value) -> usize {
    match v {
        Value::Str(s) => s.len(),
        Value::List(l) => l.iter().map(size).sum::<usize>() + l.len(),
        Value::Map(m) => m.iter().map(|(k, v)| k.len() + size(v)).sum(),
        _ => 8,
    }
}

// ---------------------------------------------------------------------------------------------
// Execution

/// A parsed template.
#[derive(Debug, Clone)]
pub struct Template {
    nodes: Vec<Node>,
}

struct Exec<'a> {
    root: &'a Value,
    vars: Vec<(String, Value)>,
    out: String,
}

impl Template {
    pub fn parse(src: &str) -> Result<Template> {
        let pieces = split_pieces(src)?;
        let mut p = Parser {
            pieces: pieces.into_iter(),
            depth: 0,
        };
        let (nodes, end, line) = p.list(false)?;
        if !matches!(end, Stop::Eof) {
            return Err(Error::Parse {
                line,
                msg: "unexpected {{end}} or {{else}}".into(),
            });
        }
        check_funcs(&nodes)?;
        Ok(Template { nodes })
    }

    /// Render with `data` as `.` and `$`.
    pub fn render(&self, data: &Value) -> Result<String> {
        let mut ex = Exec {
            root: data,
            vars: vec![(String::new(), data.clone())],
            out: String::new(),
        };
        ex.nodes(&self.nodes)?;
        Ok(ex.out)
    }
}

/// Go refuses unknown functions at parse time; so do we, and we name non-hermetic ones.
fn check_funcs(nodes: &[Node]) -> Result<()> {
    fn pipe(p: &Pipeline) -> Result<()> {
        for cmd in &p.cmds {
            for op in cmd {
                match op {
                    Operand::Func(f) if REFUSED.contains(&f.as_str()) => {
                        return Err(Error::Parse {
                            line: 0,
                            msg: format!("function {f:?} is refused: templates must render the same output every time (no environment, clock or randomness)"),
                        })
                    }
                    Operand::Func(f) if !is_defined(f) => {
                        return Err(Error::Parse { line: 0, msg: format!("function {f:?} not defined") })
                    }
                    Operand::Paren(p) => pipe(p)?,
                    _ => {}
                }
            }
        }
        Ok(())
    }
    for n in nodes {
        match n {
            Node::Text(_) => {}
            Node::Action(p) => pipe(p)?,
            Node::If {
                branches,
                otherwise,
            } => {
                for (p, body) in branches {
                    pipe(p)?;
                    check_funcs(body)?;
                }
                check_funcs(otherwise)?;
            }
        }
    }
    Ok(())
}

fn field(mut v: Value, path: &[String]) -> Result<Value> {
    for name in path {
        v = match v {
            Value::Map(mut m) => m.remove(name).unwrap_or(Value::Missing),
            Value::Missing | Value::Nil => Value::Missing,
            other => {
                return Err(Error::Exec(format!(
                    "can't evaluate field {name} in type {}",
                    type_name(&other)
                )))
            }
        };
    }
    Ok(v)
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Missing | Value::Nil => "nil",
        Value::Bool(_) => "bool",
        Value::Int(_) => "int",
        Value::Float(_) => "float64",
        Value::Str(_) => "string",
        Value::List(_) => "slice",
        Value::Map(_) => "map",
    }
}

impl Exec<'_> {
    fn nodes(&mut self, nodes: &[Node]) -> Result<()> {
        for n in nodes {
            if self.out.len() > MAX_OUTPUT {
                return Err(too_large());
            }
            match n {
                Node::Text(t) => self.out.push_str(t),
                Node::Action(p) => {
                    let v = self.pipeline(p)?;
                    if p.decl.is_none() {
                        self.out.push_str(&v.print());
                    }
                }
                Node::If {
                    branches,
                    otherwise,
                } => {
                    let scope = self.vars.len();
                    let mut taken = false;
                    for (cond, body) in branches {
                        if self.pipeline(cond)?.truthy() {
                            self.nodes(body)?;
                            taken = true;
                            break;
                        }
                    }
                    if !taken {
                        self.nodes(otherwise)?;
                    }
                    self.vars.truncate(scope);
                }
            }
        }
        Ok(())
    }

    fn var(&self, name: &str) -> Result<Value> {
        self.vars
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
            .ok_or_else(|| Error::Exec(format!("undefined variable: ${name}")))
    }

    fn pipeline(&mut self, p: &Pipeline) -> Result<Value> {
        let mut piped: Option<Value> = None;
        for cmd in &p.cmds {
            piped = Some(self.command(cmd, piped)?);
        }
        let v = piped.unwrap_or(Value::Nil);
        if let Some((name, declare)) = &p.decl {
            if *declare {
                self.vars.push((name.clone(), v.clone()));
            } else {
                let slot = self
                    .vars
                    .iter_mut()
                    .rev()
                    .find(|(n, _)| n == name)
                    .ok_or_else(|| Error::Exec(format!("undefined variable: ${name}")))?;
                slot.1 = v.clone();
            }
        }
        Ok(v)
    }

    fn operand(&mut self, op: &Operand) -> Result<Value> {
        match op {
            Operand::Field(path) => field(self.root.clone(), path),
            Operand::Var(name, path) => field(self.var(name)?, path),
            Operand::Lit(v) => Ok(v.clone()),
            Operand::Paren(p) => self.pipeline(p),
            Operand::Func(f) => call(f, Vec::new()),
        }
    }

    fn command(&mut self, cmd: &[Operand], piped: Option<Value>) -> Result<Value> {
        if let Some(Operand::Func(f)) = cmd.first() {
            let mut args = Vec::with_capacity(cmd.len());
            for op in &cmd[1..] {
                args.push(self.operand(op)?);
            }
            args.extend(piped);
            if args.iter().map(size).sum::<usize>() > 4 * MAX_VALUE {
                return Err(too_large());
            }
            let v = call(f, args)?;
            if size(&v) > MAX_VALUE {
                return Err(too_large());
            }
            return Ok(v);
        }
        if cmd.len() > 1 || piped.is_some() {
            return Err(Error::Exec("can't give argument to non-function".into()));
        }
        self.operand(&cmd[0])
    }
}

#[cfg(test)]
mod tests;
