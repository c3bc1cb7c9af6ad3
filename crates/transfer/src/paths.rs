//! datasafed's path rules: every remote path is cleaned and joined under the base path, and
//! nothing may climb out of it with `..`. Paths handed to OpenDAL are relative to its root:
//! files as `a/b`, directories as `a/b/`, the root itself as `/`.

use crate::{Error, Result};

/// Go's `path.Clean`.
pub fn clean(p: &str) -> String {
    let rooted = p.starts_with('/');
    let mut out: Vec<&str> = Vec::new();
    for part in p.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if out.last().is_some_and(|l| *l != "..") {
                    out.pop();
                } else if !rooted {
                    out.push("..");
                }
            }
            x => out.push(x),
        }
    }
    let joined = out.join("/");
    match (rooted, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".to_string(),
        (false, false) => joined,
    }
}

fn strip_leading(p: &str) -> &str {
    let mut p = p;
    loop {
        if let Some(r) = p.strip_prefix("./") {
            p = r;
        } else if let Some(r) = p.strip_prefix('/') {
            p = r;
        } else {
            return p;
        }
    }
}

/// The base path (`DATASAFED_BACKEND_BASE_PATH`): `""` or `"a/b/"`.
pub fn base_path(raw: &str) -> Result<String> {
    let raw = raw.trim();
    if raw.is_empty() {
        return Ok(String::new());
    }
    let c = clean(raw);
    if c == ".." || c.starts_with("../") {
        return Err(Error::InvalidPath(format!(
            "base path {raw:?} is prefixed with '..'"
        )));
    }
    let c = strip_leading(&c);
    if c.is_empty() || c == "." {
        return Ok(String::new());
    }
    Ok(format!("{c}/"))
}

/// A remote path resolved under the base path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Remote {
    /// Path relative to the storage root, without a trailing slash (`""` = the base itself).
    pub key: String,
    /// The caller wrote a trailing `/` (or `.`/`/`): they mean a directory.
    pub dir: bool,
}

impl Remote {
    /// The path as an OpenDAL directory (`a/b/`, or `/` for the root).
    pub fn as_dir(&self) -> String {
        if self.key.is_empty() {
            "/".to_string()
        } else {
            format!("{}/", self.key)
        }
    }
}

/// Resolve `rpath` under `base` (from [`base_path`]).
pub fn resolve(base: &str, rpath: &str) -> Result<Remote> {
    let dir = rpath.ends_with('/') || rpath.is_empty();
    let c = clean(rpath);
    let c = strip_leading(&c);
    if c == ".." || c.starts_with("../") {
        return Err(Error::InvalidPath(format!(
            "{rpath:?} is prefixed with '..'"
        )));
    }
    let rel = if c == "." { "" } else { c };
    let key = format!("{base}{rel}").trim_end_matches('/').to_string();
    Ok(Remote {
        key,
        dir: dir || rel.is_empty(),
    })
}

/// Resolve a path that must name a file (push/pull): no trailing `/`, not the base itself.
pub fn resolve_file(base: &str, rpath: &str) -> Result<Remote> {
    if rpath.ends_with('/') {
        return Err(Error::InvalidPath(format!(
            "{rpath:?} ends with '/', a file path is required"
        )));
    }
    let r = resolve(base, rpath)?;
    if r.key.is_empty() || r.key == base.trim_end_matches('/') {
        return Err(Error::InvalidPath(format!(
            "{rpath:?} does not name a file"
        )));
    }
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_clean() {
        for (i, o) in [
            ("", "."),
            ("a/../..", ".."),
            ("/../x", "/x"),
            ("a//b/./c/", "a/b/c"),
            ("../a", "../a"),
            ("/", "/"),
        ] {
            assert_eq!(clean(i), o, "clean({i:?})");
        }
    }

    #[test]
    fn nothing_escapes_the_base() {
        let b = base_path("/ns/backup-1/").unwrap();
        assert_eq!(b, "ns/backup-1/");
        assert!(resolve(&b, "../other").is_err());
        assert!(resolve(&b, "a/../../x").is_err());
        assert_eq!(resolve(&b, "/../x").unwrap().key, "ns/backup-1/x");
        assert_eq!(resolve(&b, "./d/f").unwrap().key, "ns/backup-1/d/f");
        assert!(resolve(&b, "d/").unwrap().dir);
        assert!(resolve(&b, ".").unwrap().dir);
        assert_eq!(resolve("", "/").unwrap().as_dir(), "/");
        assert!(base_path("../up").is_err());
        assert_eq!(base_path("./").unwrap(), "");
    }

    #[test]
    fn file_paths() {
        assert!(resolve_file("", "dir/").is_err());
        assert!(resolve_file("", ".").is_err());
        assert!(resolve_file("b/", "/").is_err());
        assert_eq!(resolve_file("b/", "f.tar").unwrap().key, "b/f.tar");
    }
}
