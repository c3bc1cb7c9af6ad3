//! The function table: what templates may call (Go builtins and the sprig subset), what is
//! refused as non-hermetic, and each function's behaviour, with Go's quoting and printf.

use super::*;

/// Functions that would make a render depend on the environment or the clock.
pub(super) const REFUSED: &[&str] = &[
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

/// A template function: its name (for messages) and its arguments.
type Func = fn(&str, Vec<Value>) -> Result<Value>;

/// The functions templates may call: the one table both the parser (an unknown name is a parse
/// error, as in Go) and the executor read.
const FUNCS: &[(&str, Func)] = &[
    ("printf", printf),
    ("print", print),
    ("println", println),
    ("eq", eq),
    ("ne", ordering),
    ("lt", ordering),
    ("le", ordering),
    ("gt", ordering),
    ("ge", ordering),
    ("not", not),
    ("and", and_or),
    ("or", and_or),
    ("len", len),
    ("index", index),
    ("default", default),
    ("hasPrefix", has_prefix),
    ("hasSuffix", has_suffix),
    ("contains", contains),
    ("splitList", split_list),
    ("join", join),
    ("replace", replace),
    ("trim", trim),
    ("upper", upper),
    ("lower", lower),
    ("quote", quote),
    ("toJson", to_json),
];

/// Whether templates may call `name`.
pub(super) fn is_defined(name: &str) -> bool {
    FUNCS.iter().any(|(n, _)| *n == name)
}

pub(super) fn call(f: &str, args: Vec<Value>) -> Result<Value> {
    match FUNCS.iter().find(|(n, _)| *n == f) {
        Some((_, func)) => func(f, args),
        None => Err(Error::Exec(format!("function {f:?} not defined"))),
    }
}

pub(super) fn want(f: &str, args: &[Value], n: usize) -> Result<()> {
    if args.len() != n {
        return Err(Error::Exec(format!(
            "wrong number of args for {f}: want {n} got {}",
            args.len()
        )));
    }
    Ok(())
}

pub(super) fn compare(a: &Value, b: &Value) -> Result<std::cmp::Ordering> {
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

fn s(v: &Value) -> String {
    v.as_string()
}

fn printf(f: &str, args: Vec<Value>) -> Result<Value> {
    if args.is_empty() {
        return Err(Error::Exec(format!("wrong number of args for {f}")));
    }
    Ok(Value::Str(sprintf(&s(&args[0]), &args[1..])))
}

fn print(_: &str, args: Vec<Value>) -> Result<Value> {
    Ok(Value::Str(
        args.iter().map(Value::print).collect::<Vec<_>>().join(""),
    ))
}

fn println(_: &str, args: Vec<Value>) -> Result<Value> {
    Ok(Value::Str(format!(
        "{}\n",
        args.iter().map(Value::print).collect::<Vec<_>>().join(" ")
    )))
}

/// Go's `eq`: the first argument equals any of the others.
fn eq(_: &str, args: Vec<Value>) -> Result<Value> {
    if args.len() < 2 {
        return Err(Error::Exec(
            "wrong number of args for eq: want at least 2".into(),
        ));
    }
    let mut any = false;
    for b in &args[1..] {
        any |= compare(&args[0], b)? == std::cmp::Ordering::Equal;
    }
    Ok(Value::Bool(any))
}

/// `ne`, `lt`, `le`, `gt`, `ge`.
fn ordering(f: &str, args: Vec<Value>) -> Result<Value> {
    use std::cmp::Ordering::*;
    want(f, &args, 2)?;
    let o = compare(&args[0], &args[1])?;
    Ok(Value::Bool(match f {
        "ne" => o != Equal,
        "lt" => o == Less,
        "le" => o != Greater,
        "gt" => o == Greater,
        _ => o != Less,
    }))
}

fn not(f: &str, args: Vec<Value>) -> Result<Value> {
    want(f, &args, 1)?;
    Ok(Value::Bool(!args[0].truthy()))
}

/// Go's `and` / `or`: the first argument that decides, else the last.
fn and_or(f: &str, mut args: Vec<Value>) -> Result<Value> {
    if args.is_empty() {
        return Err(Error::Exec(format!("wrong number of args for {f}")));
    }
    let stop_on = f == "or";
    let last = args.len() - 1;
    let i = args
        .iter()
        .position(|a| a.truthy() == stop_on)
        .unwrap_or(last);
    Ok(args.swap_remove(i))
}

fn len(f: &str, args: Vec<Value>) -> Result<Value> {
    want(f, &args, 1)?;
    Ok(Value::Int(match &args[0] {
        Value::Str(x) => x.len() as i64,
        Value::List(l) => l.len() as i64,
        Value::Map(m) => m.len() as i64,
        other => return Err(Error::Exec(format!("len of type {}", type_name(other)))),
    }))
}

fn index(f: &str, mut args: Vec<Value>) -> Result<Value> {
    if args.is_empty() {
        return Err(Error::Exec(format!("wrong number of args for {f}")));
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
    Ok(v)
}

/// sprig: `default DEFAULT GIVEN` is GIVEN unless it is empty.
fn default(_: &str, mut args: Vec<Value>) -> Result<Value> {
    match args.len() {
        1 => Ok(args.swap_remove(0)),
        2 => {
            let given = args.pop().unwrap_or(Value::Nil);
            Ok(if given.truthy() {
                given
            } else {
                args.swap_remove(0)
            })
        }
        n => Err(Error::Exec(format!(
            "wrong number of args for default: want 2 got {n}"
        ))),
    }
}

/// A sprig string predicate `f NEEDLE HAYSTACK`.
fn string_test(f: &str, args: &[Value], test: fn(&str, &str) -> bool) -> Result<Value> {
    want(f, args, 2)?;
    Ok(Value::Bool(test(&s(&args[1]), &s(&args[0]))))
}

fn has_prefix(f: &str, args: Vec<Value>) -> Result<Value> {
    string_test(f, &args, |text, p| text.starts_with(p))
}

fn has_suffix(f: &str, args: Vec<Value>) -> Result<Value> {
    string_test(f, &args, |text, p| text.ends_with(p))
}

fn contains(f: &str, args: Vec<Value>) -> Result<Value> {
    string_test(f, &args, |text, p| text.contains(p))
}

fn split_list(f: &str, args: Vec<Value>) -> Result<Value> {
    want(f, &args, 2)?;
    Ok(Value::List(
        s(&args[1]).split(&s(&args[0])).map(Value::str).collect(),
    ))
}

fn join(f: &str, args: Vec<Value>) -> Result<Value> {
    want(f, &args, 2)?;
    let items = match &args[1] {
        Value::List(l) => l.iter().map(Value::as_string).collect::<Vec<_>>(),
        other => vec![other.as_string()],
    };
    let sep = s(&args[0]);
    let total =
        items.iter().map(String::len).sum::<usize>() + items.len().saturating_mul(sep.len());
    if total > MAX_VALUE {
        return Err(too_large());
    }
    Ok(Value::Str(items.join(&sep)))
}

fn replace(f: &str, args: Vec<Value>) -> Result<Value> {
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
    Ok(Value::Str(text.replace(&old, &new)))
}

/// A one-argument string function.
fn string_map(f: &str, args: &[Value], map: fn(&str) -> String) -> Result<Value> {
    want(f, args, 1)?;
    Ok(Value::Str(map(&s(&args[0]))))
}

fn trim(f: &str, args: Vec<Value>) -> Result<Value> {
    string_map(f, &args, |x| x.trim().to_string())
}

fn upper(f: &str, args: Vec<Value>) -> Result<Value> {
    string_map(f, &args, str::to_uppercase)
}

fn lower(f: &str, args: Vec<Value>) -> Result<Value> {
    string_map(f, &args, str::to_lowercase)
}

fn quote(_: &str, args: Vec<Value>) -> Result<Value> {
    Ok(Value::Str(
        args.iter()
            .filter(|a| !matches!(a, Value::Missing | Value::Nil))
            .map(|a| go_quote(&a.print()))
            .collect::<Vec<_>>()
            .join(" "),
    ))
}

fn to_json(f: &str, args: Vec<Value>) -> Result<Value> {
    want(f, &args, 1)?;
    Ok(Value::Str(
        serde_json::to_string(&args[0].to_json()).unwrap_or_default(),
    ))
}

/// Go's `strconv.Quote` for the characters templates meet.
pub(super) fn go_quote(s: &str) -> String {
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
pub(super) fn sprintf(format: &str, args: &[Value]) -> String {
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
