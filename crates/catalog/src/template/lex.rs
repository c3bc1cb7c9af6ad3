//! Template text into pieces (text and actions, trim markers applied) and actions into tokens.

use super::*;

#[derive(Debug, Clone, PartialEq)]
pub(super) enum Tok {
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
pub(super) enum Piece {
    Text(String),
    Action { line: usize, body: String },
}

pub(super) fn split_pieces(src: &str) -> Result<Vec<Piece>> {
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
pub(super) fn find_close(s: &str) -> Option<usize> {
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

pub(super) fn is_ident(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

pub(super) fn lex(body: &str, line: usize) -> Result<Vec<Tok>> {
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
