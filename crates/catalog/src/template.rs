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

use std::collections::BTreeMap;
use std::fmt::Write as _;

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

// ---------------------------------------------------------------------------------------------
// Syntax

#[derive(Debug, Clone, PartialEq)]
enum Operand {
    /// `.A.B` (empty path = `.`).
    Field(Vec<String>),
    /// `$x.A.B` (`$` alone has the name "").
    Var(String, Vec<String>),
    Lit(Value),
    Func(String),
    Paren(Pipeline),
}

type Command = Vec<Operand>;

#[derive(Debug, Clone, PartialEq)]
struct Pipeline {
    /// `$x :=` (true) or `$x =` (false).
    decl: Option<(String, bool)>,
    cmds: Vec<Command>,
}

#[derive(Debug, Clone, PartialEq)]
enum Node {
    Text(String),
    Action(Pipeline),
    If {
        branches: Vec<(Pipeline, Vec<Node>)>,
        otherwise: Vec<Node>,
    },
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    LParen,
    RParen,
    Pipe,
    Declare,
    Assign,
    Lit(Value),
    Field(Vec<String>),
    Var(String, Vec<String>),
    Ident(String),
}

/// One `{{ … }}` or a run of text.
enum Piece {
    Text(String),
    Action { line: usize, body: String },
}

fn split_pieces(src: &str) -> Result<Vec<Piece>> {
    let mut out = Vec::new();
    let mut rest = src;
    let mut line = 1;
    let mut trim_next = false;
    while !rest.is_empty() {
        let Some(open) = rest.find("{{") else {
            let t = if trim_next { rest.trim_start() } else { rest };
            out.push(Piece::Text(t.to_string()));
            break;
        };
        let mut text = &rest[..open];
        if trim_next {
            text = text.trim_start();
        }
        let after = &rest[open + 2..];
        let trim_left =
            after.starts_with("- ") || after.starts_with("-\t") || after.starts_with("-\n");
        if trim_left {
            text = text.trim_end();
        }
        line += rest[..open].matches('\n').count();
        out.push(Piece::Text(text.to_string()));
        let body_start = if trim_left { 1 } else { 0 };
        let close = find_close(after).ok_or(Error::Parse {
            line,
            msg: "unclosed action".into(),
        })?;
        let mut body = &after[body_start..close];
        trim_next = false;
        if body.ends_with(" -") || body.ends_with("\t-") || body.ends_with("\n-") {
            body = &body[..body.len() - 1];
            trim_next = true;
        }
        out.push(Piece::Action {
            line,
            body: body.trim().to_string(),
        });
        line += after[..close].matches('\n').count();
        rest = &after[close + 2..];
    }
    Ok(out)
}

/// Position of the `}}` closing an action, skipping quoted strings.
fn find_close(s: &str) -> Option<usize> {
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'"' => {
                i += 1;
                while i < b.len() && b[i] != b'"' {
                    if b[i] == b'\\' {
                        i += 1;
                    }
                    i += 1;
                }
            }
            b'`' => {
                i += 1;
                while i < b.len() && b[i] != b'`' {
                    i += 1;
                }
            }
            b'}' if b.get(i + 1) == Some(&b'}') => return Some(i),
            _ => {}
        }
        i += 1;
    }
    None
}

fn is_ident(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

fn lex(body: &str, line: usize) -> Result<Vec<Tok>> {
    let err = |msg: String| Error::Parse { line, msg };
    let chars: Vec<char> = body.chars().collect();
    let mut toks = Vec::new();
    let mut i = 0;
    let fields = |i: &mut usize| -> Vec<String> {
        let mut path = Vec::new();
        while *i < chars.len() && chars[*i] == '.' {
            *i += 1;
            let start = *i;
            while *i < chars.len() && is_ident(chars[*i]) {
                *i += 1;
            }
            if *i > start {
                path.push(chars[start..*i].iter().collect());
            }
        }
        path
    };
    while i < chars.len() {
        let c = chars[i];
        match c {
            ' ' | '\t' | '\n' | '\r' => i += 1,
            '(' => {
                toks.push(Tok::LParen);
                i += 1
            }
            ')' => {
                toks.push(Tok::RParen);
                i += 1
            }
            '|' => {
                toks.push(Tok::Pipe);
                i += 1
            }
            ':' if chars.get(i + 1) == Some(&'=') => {
                toks.push(Tok::Declare);
                i += 2
            }
            '=' => {
                toks.push(Tok::Assign);
                i += 1
            }
            '"' => {
                let mut s = String::new();
                i += 1;
                loop {
                    let Some(&c) = chars.get(i) else {
                        return Err(err("unterminated quoted string".into()));
                    };
                    i += 1;
                    match c {
                        '"' => break,
                        '\\' => {
                            let e = chars
                                .get(i)
                                .copied()
                                .ok_or_else(|| err("unterminated quoted string".into()))?;
                            i += 1;
                            s.push(match e {
                                'n' => '\n',
                                't' => '\t',
                                'r' => '\r',
                                '\\' => '\\',
                                '"' => '"',
                                other => {
                                    return Err(err(format!("unknown escape sequence \\{other}")))
                                }
                            });
                        }
                        c => s.push(c),
                    }
                }
                toks.push(Tok::Lit(Value::Str(s)));
            }
            '`' => {
                let start = i + 1;
                let end = chars[start..]
                    .iter()
                    .position(|&c| c == '`')
                    .ok_or_else(|| err("unterminated raw quoted string".into()))?;
                toks.push(Tok::Lit(Value::Str(
                    chars[start..start + end].iter().collect(),
                )));
                i = start + end + 1;
            }
            '.' => {
                let path = fields(&mut i);
                toks.push(Tok::Field(path));
            }
            '$' => {
                i += 1;
                let start = i;
                while i < chars.len() && is_ident(chars[i]) {
                    i += 1;
                }
                let name: String = chars[start..i].iter().collect();
                let path = fields(&mut i);
                toks.push(Tok::Var(name, path));
            }
            c if c.is_ascii_digit()
                || (c == '-' && chars.get(i + 1).is_some_and(|d| d.is_ascii_digit())) =>
            {
                let start = i;
                i += 1;
                while i < chars.len() && (chars[i].is_ascii_digit() || chars[i] == '.') {
                    i += 1;
                }
                let s: String = chars[start..i].iter().collect();
                let v = if let Ok(n) = s.parse::<i64>() {
                    Value::Int(n)
                } else {
                    Value::Float(
                        s.parse::<f64>()
                            .map_err(|_| err(format!("bad number syntax: {s:?}")))?,
                    )
                };
                toks.push(Tok::Lit(v));
            }
            c if is_ident(c) => {
                let start = i;
                while i < chars.len() && is_ident(chars[i]) {
                    i += 1;
                }
                let word: String = chars[start..i].iter().collect();
                toks.push(match word.as_str() {
                    "true" => Tok::Lit(Value::Bool(true)),
                    "false" => Tok::Lit(Value::Bool(false)),
                    "nil" => Tok::Lit(Value::Nil),
                    _ => Tok::Ident(word),
                });
            }
            other => return Err(err(format!("unexpected {other:?} in action"))),
        }
    }
    Ok(toks)
}

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

struct PipeParser<'a> {
    toks: &'a [Tok],
    pos: usize,
    line: usize,
    depth: usize,
}

impl PipeParser<'_> {
    fn err(&self, msg: impl Into<String>) -> Error {
        Error::Parse {
            line: self.line,
            msg: msg.into(),
        }
    }

    fn pipeline(&mut self, allow_decl: bool) -> Result<Pipeline> {
        let mut decl = None;
        if allow_decl {
            if let (Some(Tok::Var(name, path)), Some(t @ (Tok::Declare | Tok::Assign))) =
                (self.toks.get(self.pos), self.toks.get(self.pos + 1))
            {
                if !path.is_empty() {
                    return Err(self.err("cannot assign to a field"));
                }
                decl = Some((name.clone(), *t == Tok::Declare));
                self.pos += 2;
            }
        }
        let mut cmds = Vec::new();
        loop {
            let mut cmd = Vec::new();
            while let Some(t) = self.toks.get(self.pos) {
                match t {
                    Tok::Pipe | Tok::RParen => break,
                    Tok::LParen => {
                        self.pos += 1;
                        self.depth += 1;
                        if self.depth > MAX_DEPTH {
                            return Err(self.err("parentheses nested too deeply"));
                        }
                        let inner = self.pipeline(false)?;
                        self.depth -= 1;
                        if self.toks.get(self.pos) != Some(&Tok::RParen) {
                            return Err(self.err("unclosed left paren"));
                        }
                        self.pos += 1;
                        cmd.push(Operand::Paren(inner));
                        continue;
                    }
                    Tok::Lit(v) => cmd.push(Operand::Lit(v.clone())),
                    Tok::Field(p) => cmd.push(Operand::Field(p.clone())),
                    Tok::Var(n, p) => cmd.push(Operand::Var(n.clone(), p.clone())),
                    Tok::Ident(f) => cmd.push(Operand::Func(f.clone())),
                    Tok::Declare | Tok::Assign => {
                        return Err(self.err("unexpected := or = in command"))
                    }
                }
                self.pos += 1;
            }
            if cmd.is_empty() {
                return Err(self.err("missing value for command"));
            }
            cmds.push(cmd);
            if self.toks.get(self.pos) == Some(&Tok::Pipe) {
                self.pos += 1;
            } else {
                break;
            }
        }
        Ok(Pipeline { decl, cmds })
    }
}

fn parse_pipeline(toks: &[Tok], line: usize, allow_decl: bool) -> Result<Pipeline> {
    let mut p = PipeParser {
        toks,
        pos: 0,
        line,
        depth: 0,
    };
    let pipe = p.pipeline(allow_decl)?;
    if p.pos != toks.len() {
        return Err(Error::Parse {
            line,
            msg: "unexpected tokens after the pipeline (unbalanced parenthesis?)".into(),
        });
    }
    Ok(pipe)
}

/// What ended a list of nodes.
enum Stop {
    Eof,
    End,
    Else(Option<Pipeline>),
}

struct Parser {
    pieces: std::vec::IntoIter<Piece>,
    depth: usize,
}

impl Parser {
    fn list(&mut self, in_block: bool) -> Result<(Vec<Node>, Stop, usize)> {
        let mut nodes = Vec::new();
        while let Some(piece) = self.pieces.next() {
            let (line, body) = match piece {
                Piece::Text(t) => {
                    if !t.is_empty() {
                        nodes.push(Node::Text(t));
                    }
                    continue;
                }
                Piece::Action { line, body } => (line, body),
            };
            if body.starts_with("/*") {
                if !body.ends_with("*/") {
                    return Err(Error::Parse {
                        line,
                        msg: "unclosed comment".into(),
                    });
                }
                continue;
            }
            let toks = lex(&body, line)?;
            let keyword = match toks.first() {
                Some(Tok::Ident(k)) => k.as_str(),
                _ => "",
            };
            match keyword {
                "if" => nodes.push(self.if_node(&toks[1..], line)?),
                "else" if in_block => {
                    let cond = match toks.get(1) {
                        None => None,
                        Some(Tok::Ident(k)) if k == "if" => Some(parse_pipeline(&toks[2..], line, true)?),
                        Some(_) => return Err(Error::Parse { line, msg: "unexpected tokens after else".into() }),
                    };
                    return Ok((nodes, Stop::Else(cond), line));
                }
                "end" if in_block => return Ok((nodes, Stop::End, line)),
                "else" | "end" => return Err(Error::Parse { line, msg: format!("unexpected {{{{{keyword}}}}}") }),
                "range" | "with" | "define" | "template" | "block" | "break" | "continue" => {
                    return Err(Error::Parse {
                        line,
                        msg: format!("{{{{{keyword}}}}} is not supported by backuprepo's template engine (StorageProvider templates do not need it)"),
                    })
                }
                _ => nodes.push(Node::Action(parse_pipeline(&toks, line, true)?)),
            }
        }
        Ok((nodes, Stop::Eof, 0))
    }

    fn if_node(&mut self, cond: &[Tok], line: usize) -> Result<Node> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(Error::Parse {
                line,
                msg: "{{if}} blocks nested too deeply".into(),
            });
        }
        let node = self.if_branches(cond, line);
        self.depth -= 1;
        node
    }

    fn if_branches(&mut self, cond: &[Tok], line: usize) -> Result<Node> {
        let mut branches = Vec::new();
        let mut pipe = parse_pipeline(cond, line, true)?;
        loop {
            let (body, end, _) = self.list(true)?;
            branches.push((pipe, body));
            match end {
                Stop::End => {
                    return Ok(Node::If {
                        branches,
                        otherwise: Vec::new(),
                    })
                }
                Stop::Else(Some(next)) => pipe = next,
                Stop::Else(None) => {
                    let (otherwise, end, l) = self.list(true)?;
                    return match end {
                        Stop::End => Ok(Node::If {
                            branches,
                            otherwise,
                        }),
                        _ => Err(Error::Parse {
                            line: l.max(line),
                            msg: "expected {{end}} after {{else}}".into(),
                        }),
                    };
                }
                Stop::Eof => {
                    return Err(Error::Parse {
                        line,
                        msg: "unexpected EOF: {{if}} without {{end}}".into(),
                    })
                }
            }
        }
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

/// Functions that would make a render depend on the environment or the clock.
const REFUSED: &[&str] = &[
    "env",
    "expandenv",
    "now",
    "date",
    "dateInZone",
    "date_in_zone",
    "unixEpoch",
    "randAlpha",
    "randAlphaNum",
    "randNumeric",
    "randAscii",
    "randBytes",
    "randInt",
    "uuidv4",
    "genPrivateKey",
    "genCA",
    "genSelfSignedCert",
    "genSignedCert",
    "getHostByName",
];

const FUNCS: &[&str] = &[
    "printf",
    "print",
    "println",
    "eq",
    "ne",
    "lt",
    "le",
    "gt",
    "ge",
    "not",
    "and",
    "or",
    "len",
    "index",
    "default",
    "hasPrefix",
    "hasSuffix",
    "splitList",
    "toJson",
    "trim",
    "upper",
    "lower",
    "quote",
    "replace",
    "contains",
    "join",
];

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
                    Operand::Func(f) if !FUNCS.contains(&f.as_str()) => {
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

fn want(f: &str, args: &[Value], n: usize) -> Result<()> {
    if args.len() != n {
        return Err(Error::Exec(format!(
            "wrong number of args for {f}: want {n} got {}",
            args.len()
        )));
    }
    Ok(())
}

fn compare(a: &Value, b: &Value) -> Result<std::cmp::Ordering> {
    use Value::*;
    let bad = || {
        Error::Exec(format!(
            "incompatible types for comparison: {} and {}",
            type_name(a),
            type_name(b)
        ))
    };
    match (a, b) {
        (Str(x), Str(y)) => Ok(x.cmp(y)),
        (Int(x), Int(y)) => Ok(x.cmp(y)),
        (Int(x), Float(y)) => (*x as f64).partial_cmp(y).ok_or_else(bad),
        (Float(x), Int(y)) => x.partial_cmp(&(*y as f64)).ok_or_else(bad),
        (Float(x), Float(y)) => x.partial_cmp(y).ok_or_else(bad),
        (Bool(x), Bool(y)) => Ok(x.cmp(y)),
        _ => Err(bad()),
    }
}

fn call(f: &str, mut args: Vec<Value>) -> Result<Value> {
    use std::cmp::Ordering::*;
    let s = |v: &Value| v.as_string();
    Ok(match f {
        "printf" => {
            if args.is_empty() {
                return Err(Error::Exec("wrong number of args for printf".into()));
            }
            let format = s(&args[0]);
            Value::Str(sprintf(&format, &args[1..]))
        }
        "print" => Value::Str(args.iter().map(Value::print).collect::<Vec<_>>().join("")),
        "println" => Value::Str(format!(
            "{}\n",
            args.iter().map(Value::print).collect::<Vec<_>>().join(" ")
        )),
        "eq" => {
            if args.len() < 2 {
                return Err(Error::Exec(
                    "wrong number of args for eq: want at least 2".into(),
                ));
            }
            let mut any = false;
            for b in &args[1..] {
                any |= compare(&args[0], b)? == Equal;
            }
            Value::Bool(any)
        }
        "ne" | "lt" | "le" | "gt" | "ge" => {
            want(f, &args, 2)?;
            let o = compare(&args[0], &args[1])?;
            Value::Bool(match f {
                "ne" => o != Equal,
                "lt" => o == Less,
                "le" => o != Greater,
                "gt" => o == Greater,
                _ => o != Less,
            })
        }
        "not" => {
            want(f, &args, 1)?;
            Value::Bool(!args[0].truthy())
        }
        "and" | "or" => {
            if args.is_empty() {
                return Err(Error::Exec(format!("wrong number of args for {f}")));
            }
            let stop_on = f == "or";
            let last = args.len() - 1;
            let i = args
                .iter()
                .position(|a| a.truthy() == stop_on)
                .unwrap_or(last);
            args.swap_remove(i)
        }
        "len" => {
            want(f, &args, 1)?;
            Value::Int(match &args[0] {
                Value::Str(x) => x.len() as i64,
                Value::List(l) => l.len() as i64,
                Value::Map(m) => m.len() as i64,
                other => return Err(Error::Exec(format!("len of type {}", type_name(other)))),
            })
        }
        "index" => {
            if args.is_empty() {
                return Err(Error::Exec("wrong number of args for index".into()));
            }
            let mut v = args.remove(0);
            for k in args {
                v = match (v, k) {
                    // KubeBlocks' parameters are map[string]string: a missing key is "".
                    (Value::Map(mut m), Value::Str(key)) => {
                        m.remove(&key).unwrap_or(Value::Str(String::new()))
                    }
                    (Value::List(l), Value::Int(i)) => usize::try_from(i)
                        .ok()
                        .and_then(|i| l.get(i).cloned())
                        .ok_or_else(|| {
                            Error::Exec(format!("error calling index: index out of range: {i}"))
                        })?,
                    (Value::Missing | Value::Nil, _) => {
                        return Err(Error::Exec(
                            "error calling index: index of untyped nil".into(),
                        ))
                    }
                    (c, k) => {
                        return Err(Error::Exec(format!(
                            "error calling index: cannot index {} with {}",
                            type_name(&c),
                            type_name(&k)
                        )))
                    }
                };
            }
            v
        }
        "default" => {
            // sprig: default DEFAULT GIVEN — GIVEN unless it is empty.
            match args.len() {
                1 => args.swap_remove(0),
                2 => {
                    let given = args.pop().unwrap_or(Value::Nil);
                    if given.truthy() {
                        given
                    } else {
                        args.swap_remove(0)
                    }
                }
                n => {
                    return Err(Error::Exec(format!(
                        "wrong number of args for default: want 2 got {n}"
                    )))
                }
            }
        }
        "hasPrefix" => {
            want(f, &args, 2)?;
            Value::Bool(s(&args[1]).starts_with(&s(&args[0])))
        }
        "hasSuffix" => {
            want(f, &args, 2)?;
            Value::Bool(s(&args[1]).ends_with(&s(&args[0])))
        }
        "contains" => {
            want(f, &args, 2)?;
            Value::Bool(s(&args[1]).contains(&s(&args[0])))
        }
        "splitList" => {
            want(f, &args, 2)?;
            Value::List(s(&args[1]).split(&s(&args[0])).map(Value::str).collect())
        }
        "join" => {
            want(f, &args, 2)?;
            let items = match &args[1] {
                Value::List(l) => l.iter().map(Value::as_string).collect::<Vec<_>>(),
                other => vec![other.as_string()],
            };
            let sep = s(&args[0]);
            let total = items.iter().map(String::len).sum::<usize>()
                + items.len().saturating_mul(sep.len());
            if total > MAX_VALUE {
                return Err(too_large());
            }
            Value::Str(items.join(&sep))
        }
        "replace" => {
            want(f, &args, 3)?;
            let (old, new, text) = (s(&args[0]), s(&args[1]), s(&args[2]));
            let hits = if old.is_empty() {
                text.chars().count() + 1
            } else {
                text.matches(old.as_str()).count()
            };
            if text.len() + hits.saturating_mul(new.len()) > MAX_VALUE {
                return Err(too_large());
            }
            Value::Str(text.replace(&old, &new))
        }
        "trim" => {
            want(f, &args, 1)?;
            Value::Str(s(&args[0]).trim().to_string())
        }
        "upper" => {
            want(f, &args, 1)?;
            Value::Str(s(&args[0]).to_uppercase())
        }
        "lower" => {
            want(f, &args, 1)?;
            Value::Str(s(&args[0]).to_lowercase())
        }
        "quote" => Value::Str(
            args.iter()
                .filter(|a| !matches!(a, Value::Missing | Value::Nil))
                .map(|a| go_quote(&a.print()))
                .collect::<Vec<_>>()
                .join(" "),
        ),
        "toJson" => {
            want(f, &args, 1)?;
            Value::Str(serde_json::to_string(&args[0].to_json()).unwrap_or_default())
        }
        other => return Err(Error::Exec(format!("function {other:?} not defined"))),
    })
}

/// Go's `strconv.Quote` for the characters templates meet.
fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Go's `fmt.Sprintf` for the verbs templates use: %s %v %d %q %t %%, with Go's error forms
/// for missing and nil arguments.
fn sprintf(format: &str, args: &[Value]) -> String {
    let mut out = String::new();
    let mut it = format.chars().peekable();
    let mut next = 0;
    while let Some(c) = it.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let Some(verb) = it.next() else {
            out.push_str("%!(NOVERB)");
            break;
        };
        if verb == '%' {
            out.push('%');
            continue;
        }
        let Some(arg) = args.get(next) else {
            let _ = write!(out, "%!{verb}(MISSING)");
            continue;
        };
        next += 1;
        match (verb, arg) {
            (_, Value::Missing | Value::Nil) if verb != 'v' => {
                let _ = write!(out, "%!{verb}(<nil>)");
            }
            ('v', Value::Missing | Value::Nil) => out.push_str("<nil>"),
            ('s' | 'v', a) => out.push_str(&a.print()),
            ('d', Value::Int(i)) => {
                let _ = write!(out, "{i}");
            }
            ('t', Value::Bool(b)) => {
                let _ = write!(out, "{b}");
            }
            ('q', Value::Str(x)) => out.push_str(&go_quote(x)),
            (verb, a) => {
                let _ = write!(out, "%!{verb}({}={})", type_name(a), a.print());
            }
        }
    }
    if next < args.len() {
        let extra: Vec<String> = args[next..]
            .iter()
            .map(|a| format!("{}={}", type_name(a), a.print()))
            .collect();
        let _ = write!(out, "%!(EXTRA {})", extra.join(", "));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(kv: &[(&str, &str)]) -> Value {
        let p: BTreeMap<String, Value> = kv
            .iter()
            .map(|(k, v)| (k.to_string(), Value::str(*v)))
            .collect();
        let mut root = BTreeMap::new();
        root.insert("Parameters".to_string(), Value::Map(p));
        let mut r = BTreeMap::new();
        r.insert("Name".to_string(), Value::str("csi-secret"));
        r.insert("Namespace".to_string(), Value::str("kb-system"));
        root.insert("CSIDriverSecretRef".to_string(), Value::Map(r));
        Value::Map(root)
    }

    fn render(src: &str, kv: &[(&str, &str)]) -> String {
        Template::parse(src).unwrap().render(&params(kv)).unwrap()
    }

    #[test]
    fn text_fields_index_and_missing_keys() {
        assert_eq!(
            render(
                "a={{ .Parameters.a }} b={{ index .Parameters \"b\" }}",
                &[("a", "1"), ("b", "2")]
            ),
            "a=1 b=2"
        );
        assert_eq!(render("[{{ .Parameters.x }}]", &[]), "[<no value>]");
        assert_eq!(render("[{{ index .Parameters \"x\" }}]", &[]), "[]");
        assert_eq!(
            render("{{ .CSIDriverSecretRef.Namespace }}", &[]),
            "kb-system"
        );
        assert_eq!(render("{{/* a comment */}}x", &[]), "x");
    }

    #[test]
    fn trim_markers() {
        assert_eq!(render("a  \n  {{- \"b\" -}}  \n  c", &[]), "abc");
        assert_eq!(render("a {{ \"b\" }} c", &[]), "a b c");
        assert_eq!(
            render(
                "x\n    {{- $r := index .Parameters \"region\" }}\ny",
                &[("region", "r")]
            ),
            "x\ny"
        );
    }

    #[test]
    fn variables_if_else_if_else_and_scope() {
        let t = r#"{{- $region := index .Parameters "region" }}
{{- $endpoint := index .Parameters "endpoint" }}
{{- if not $endpoint }}
  {{- if hasPrefix "cn-" $region }}
    {{- $endpoint = (printf "https://s3.%s.amazonaws.com.cn" $region) }}
  {{- else }}
    {{- $endpoint = (printf "https://s3.%s.amazonaws.com" $region) }}
  {{- end }}
{{- end }}
endpoint: {{ $endpoint }}"#;
        assert_eq!(
            render(t, &[("region", "cn-north-1")]),
            "\nendpoint: https://s3.cn-north-1.amazonaws.com.cn"
        );
        assert_eq!(
            render(t, &[("region", "us-west-2")]),
            "\nendpoint: https://s3.us-west-2.amazonaws.com"
        );
        assert_eq!(
            render(t, &[("region", "x"), ("endpoint", "http://e")]),
            "\nendpoint: http://e"
        );
        let t = "{{ if eq .Parameters.a \"1\" }}one{{ else if eq .Parameters.a \"2\" }}two{{ else }}many{{ end }}";
        assert_eq!(render(t, &[("a", "1")]), "one");
        assert_eq!(render(t, &[("a", "2")]), "two");
        assert_eq!(render(t, &[("a", "3")]), "many");
        // A variable declared inside a block is gone after it.
        let err = Template::parse("{{ if true }}{{ $x := 1 }}{{ end }}{{ $x }}")
            .unwrap()
            .render(&params(&[]))
            .unwrap_err();
        assert!(err.to_string().contains("undefined variable: $x"), "{err}");
    }

    #[test]
    fn pipelines_and_functions() {
        assert_eq!(
            render("{{ .Parameters.tls | default false }}", &[]),
            "false"
        );
        assert_eq!(
            render("{{ .Parameters.tls | default false }}", &[("tls", "true")]),
            "true"
        );
        assert_eq!(
            render(
                "{{ if ne .Parameters.port \"0\" }}{{ .Parameters.port }}{{ else }}21{{ end }}",
                &[("port", "0")]
            ),
            "21"
        );
        assert_eq!(
            render("{{ \"a,b,c\" | splitList \",\" | join \"-\" }}", &[]),
            "a-b-c"
        );
        assert_eq!(
            render(
                "{{ upper \"ab\" }}{{ lower \"CD\" }}{{ trim \"  e \" }}",
                &[]
            ),
            "ABcde"
        );
        assert_eq!(
            render(
                "{{ quote \"a\\\"b\" }} {{ replace \"-\" \"_\" \"a-b-c\" }}",
                &[]
            ),
            "\"a\\\"b\" a_b_c"
        );
        assert_eq!(
            render(
                "{{ contains \"ell\" \"hello\" }} {{ hasSuffix \"lo\" \"hello\" }}",
                &[]
            ),
            "true true"
        );
        assert_eq!(
            render("{{ toJson (splitList \",\" \"x,y\") }}", &[]),
            "[\"x\",\"y\"]"
        );
        assert_eq!(
            render(
                "{{ len \"abc\" }} {{ and 1 0 2 }} {{ or 0 \"\" 3 }} {{ not 0 }}",
                &[]
            ),
            "3 0 3 true"
        );
        assert_eq!(render("{{ eq 1 2 3 1 }}", &[]), "true");
    }

    #[test]
    fn printf_like_go() {
        assert_eq!(
            render("{{ printf \"--memory-limit %s --x %s %s\" .Parameters.m .Parameters.y .Parameters.missing }}", &[("m", "512"), ("y", "20480")]),
            "--memory-limit 512 --x 20480 %!s(<nil>)"
        );
        assert_eq!(
            render("{{ printf \"%d%% %q %t %v\" 5 \"s\" true 1.5 }}", &[]),
            "5% \"s\" true 1.5"
        );
        assert_eq!(
            render("{{ printf \"%s %s\" \"a\" }}", &[]),
            "a %!s(MISSING)"
        );
        assert_eq!(
            render("{{ printf \"%s\" \"a\" \"b\" }}", &[]),
            "a%!(EXTRA string=b)"
        );
    }

    /// Found by cargo-fuzz: each `quote` doubles the backslashes, so 60 of them would need
    /// 2^60 bytes. Growth is capped and reported instead.
    #[test]
    fn runaway_growth_is_refused() {
        let data = Value::Map(BTreeMap::new());
        let chain = format!("{{{{ \"\\\"\" {} }}}}", "| quote ".repeat(60));
        let started = std::time::Instant::now();
        let e = Template::parse(&chain).unwrap().render(&data).unwrap_err();
        assert!(
            e.to_string()
                .contains("templates must render small configs"),
            "{e}"
        );
        assert!(started.elapsed() < std::time::Duration::from_secs(2));
        // $a: 10^6 bytes, just under the cap; each line below would multiply it.
        let big = r#"{{ $a := "0000000000" }}{{ $a = replace "0" "0000000000" $a }}{{ $a = replace "0" "0000000000" $a }}{{ $a = replace "0" "0000000000" $a }}{{ $a = replace "0" "0000000000" $a }}{{ $a = replace "0" "0000000000" $a }}"#;
        for tail in [
            r#"{{ replace "" $a $a }}"#,
            r#"{{ join $a (splitList "0" $a) }}"#,
            r#"{{ printf "%s%s%s%s%s" $a $a $a $a $a }}"#,
            r#"{{ $a }}{{ $a }}{{ $a }}{{ $a }}{{ $a }}"#,
        ] {
            let src = format!("{big}{tail}");
            let t = Template::parse(&src).unwrap();
            let e = t.render(&data).unwrap_err();
            assert!(e.to_string().contains("small configs"), "{tail}: {e}");
        }
    }

    #[test]
    fn errors_are_clear() {
        let e = Template::parse("{{ env \"HOME\" }}")
            .unwrap_err()
            .to_string();
        assert!(e.contains("refused") && e.contains("env"), "{e}");
        let e = Template::parse("{{ now }}").unwrap_err().to_string();
        assert!(e.contains("refused"), "{e}");
        let e = Template::parse("{{ frobnicate 1 }}")
            .unwrap_err()
            .to_string();
        assert!(e.contains("function \"frobnicate\" not defined"), "{e}");
        let e = Template::parse("a\n{{ if true }}x")
            .unwrap_err()
            .to_string();
        assert!(e.contains("line 2") && e.contains("without {{end}}"), "{e}");
        assert!(Template::parse("{{ end }}").is_err());
        assert!(Template::parse("{{ (printf \"x\" }}").is_err());
        assert!(Template::parse("{{ \"unterminated }}").is_err());
        assert!(Template::parse("{{ range .Parameters }}{{ end }}")
            .unwrap_err()
            .to_string()
            .contains("not supported"));
        let e = Template::parse("{{ eq .Parameters.missing \"0\" }}")
            .unwrap()
            .render(&params(&[]))
            .unwrap_err();
        assert!(
            e.to_string().contains("incompatible types for comparison"),
            "{e}"
        );
    }
}
