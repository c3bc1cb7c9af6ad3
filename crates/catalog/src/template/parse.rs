//! Tokens into the template tree: pipelines, commands, and the `if`/`else`/`end` structure.

use super::*;

// ---------------------------------------------------------------------------------------------
// Syntax

#[derive(Debug, Clone, PartialEq)]
pub(super) enum Operand {
    /// `.A.B` (empty path = `.`).
    Field(Vec<String>),
    /// `$x.A.B` (`$` alone has the name "").
    Var(String, Vec<String>),
    Lit(Value),
    Func(String),
    Paren(Pipeline),
}

pub(super) type Command = Vec<Operand>;

#[derive(Debug, Clone, PartialEq)]
pub(super) struct Pipeline {
    /// `$x :=` (true) or `$x =` (false).
    pub(super) decl: Option<(String, bool)>,
    pub(super) cmds: Vec<Command>,
}

#[derive(Debug, Clone, PartialEq)]
pub(super) enum Node {
    Text(String),
    Action(Pipeline),
    If {
        branches: Vec<(Pipeline, Vec<Node>)>,
        otherwise: Vec<Node>,
    },
}

pub(super) struct PipeParser<'a> {
    pub(super) toks: &'a [Tok],
    pub(super) pos: usize,
    pub(super) line: usize,
    pub(super) depth: usize,
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

pub(super) fn parse_pipeline(toks: &[Tok], line: usize, allow_decl: bool) -> Result<Pipeline> {
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
pub(super) enum Stop {
    Eof,
    End,
    Else(Option<Pipeline>),
}

pub(super) struct Parser {
    pub(super) pieces: std::vec::IntoIter<Piece>,
    pub(super) depth: usize,
}

impl Parser {
    pub(super) fn list(&mut self, in_block: bool) -> Result<(Vec<Node>, Stop, usize)> {
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
