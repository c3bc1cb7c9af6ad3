//! Client-side validation of BackupRepos (what the CRD schema and the controller need).

use std::fmt;

use crate::backup_repo::BackupRepo;
use crate::constants::BACKUP_REPO_NAME_LABEL;

/// The `pathPrefix` rule of the CRD.
pub const PATH_PREFIX_PATTERN: &str = r"^([a-zA-Z0-9-_]+/?)*$";

/// One validation failure.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldError {
    /// Path of the field, e.g. `spec.pathPrefix`, `spec.allowedNamespaces[1]`.
    pub field: String,
    /// What is wrong and how to fix it.
    pub message: String,
}

impl FieldError {
    fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        FieldError {
            field: field.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

impl std::error::Error for FieldError {}

impl BackupRepo {
    /// Checks what the API server (CRD schema) and the controller would reject: the name,
    /// `storageProviderRef`, `pathPrefix`, `volumeCapacity`, `credential` and
    /// `allowedNamespaces`. Returns every failure.
    pub fn validate(&self) -> Result<(), Vec<FieldError>> {
        let mut errs = Vec::new();

        let name = self.metadata.name.as_deref().unwrap_or_default();
        if name.is_empty() {
            errs.push(FieldError::new("metadata.name", "must not be empty"));
        } else {
            if let Err(why) = check_dns1123_subdomain(name) {
                errs.push(FieldError::new(
                    "metadata.name",
                    format!(
                        "{name:?} is not a valid name: {why}; a name is a DNS-1123 subdomain: \
                         lowercase letters, digits, '-' and '.', starting and ending with a \
                         letter or digit (e.g. {:?})",
                        suggest_dns1123(name)
                    ),
                ));
            }
            if name.len() > 63 {
                errs.push(FieldError::new(
                    "metadata.name",
                    format!(
                        "is {} characters long; at most 63 are allowed because the name is \
                         used as the value of the label {BACKUP_REPO_NAME_LABEL}",
                        name.len()
                    ),
                ));
            }
        }

        if self.spec.storage_provider_ref.trim().is_empty() {
            errs.push(FieldError::new(
                "spec.storageProviderRef",
                "must not be empty: name the StorageProvider to use (e.g. \"s3\")",
            ));
        }

        if let Some(prefix) = &self.spec.path_prefix {
            if !is_valid_path_prefix(prefix) {
                errs.push(FieldError::new(
                    "spec.pathPrefix",
                    format!(
                        "{prefix:?} does not match {PATH_PREFIX_PATTERN}: segments of letters, \
                         digits, '-' and '_' separated by single '/', with no leading '/' \
                         (e.g. {:?})",
                        suggest_path_prefix(prefix)
                    ),
                ));
            }
        }

        if let Some(q) = &self.spec.volume_capacity {
            match parse_quantity(&q.0) {
                None => errs.push(FieldError::new(
                    "spec.volumeCapacity",
                    format!(
                        "{:?} is not a valid Kubernetes quantity: a number with an optional \
                         suffix Ki, Mi, Gi, Ti, Pi, Ei, n, u, m, k, M, G, T, P, E or an \
                         exponent such as e3 (e.g. \"100Gi\")",
                        q.0
                    ),
                )),
                Some(v) if v <= 0.0 => errs.push(FieldError::new(
                    "spec.volumeCapacity",
                    format!(
                        "{:?} must be greater than zero (it is the storage request of the \
                         backup PVCs, e.g. \"100Gi\")",
                        q.0
                    ),
                )),
                Some(_) => {}
            }
        }

        if let Some(cred) = &self.spec.credential {
            if cred.name.as_deref().unwrap_or_default().is_empty() {
                errs.push(FieldError::new(
                    "spec.credential.name",
                    "must be set when spec.credential is given (the name of the Secret \
                     holding the credentials)",
                ));
            }
            if cred.namespace.as_deref().unwrap_or_default().is_empty() {
                errs.push(FieldError::new(
                    "spec.credential.namespace",
                    crate::backup_repo::CREDENTIAL_NAMESPACE_MISSING,
                ));
            }
        }

        if let Some(list) = &self.spec.allowed_namespaces {
            for (i, ns) in list.iter().enumerate() {
                if let Err(why) = check_dns1123_label(ns) {
                    errs.push(FieldError::new(
                        format!("spec.allowedNamespaces[{i}]"),
                        format!(
                            "{ns:?} is not a valid namespace name: {why}; a namespace is a \
                             DNS-1123 label: at most 63 lowercase letters, digits and '-', \
                             starting and ending with a letter or digit"
                        ),
                    ));
                }
            }
        }

        if errs.is_empty() {
            Ok(())
        } else {
            Err(errs)
        }
    }
}

/// Whether `s` matches `^([a-zA-Z0-9-_]+/?)*$`: segments of `[a-zA-Z0-9_-]` separated by
/// single slashes, no leading slash, an optional trailing slash; "" is valid.
pub fn is_valid_path_prefix(s: &str) -> bool {
    let mut prev_slash = true; // forbids a leading '/'
    for c in s.chars() {
        if c == '/' {
            if prev_slash {
                return false;
            }
            prev_slash = true;
        } else if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
            prev_slash = false;
        } else {
            return false;
        }
    }
    true
}

/// A valid path prefix close to `s`: other characters become '-', runs of '/' collapse and
/// leading '/' are dropped.
fn suggest_path_prefix(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        if c == '/' || c == '\\' {
            if !out.is_empty() && !out.ends_with('/') {
                out.push('/');
            }
        } else if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
            out.push(c);
        } else {
            out.push('-');
        }
    }
    if out.is_empty() {
        "backups/my-repo".to_owned()
    } else {
        out
    }
}

/// Checks a DNS-1123 label (`[a-z0-9]([-a-z0-9]*[a-z0-9])?`, at most 63 characters).
pub fn check_dns1123_label(s: &str) -> Result<(), String> {
    if s.is_empty() {
        return Err("it is empty".to_owned());
    }
    if s.len() > 63 {
        return Err(format!("it is {} characters long (at most 63)", s.len()));
    }
    check_label_chars(s)
}

/// Checks a DNS-1123 subdomain (labels joined by '.', at most 253 characters).
pub fn check_dns1123_subdomain(s: &str) -> Result<(), String> {
    if s.is_empty() {
        return Err("it is empty".to_owned());
    }
    if s.len() > 253 {
        return Err(format!("it is {} characters long (at most 253)", s.len()));
    }
    for label in s.split('.') {
        if label.is_empty() {
            return Err("it has an empty part between dots".to_owned());
        }
        check_label_chars(label)?;
    }
    Ok(())
}

fn check_label_chars(s: &str) -> Result<(), String> {
    if let Some(c) = s
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-'))
    {
        return Err(format!("it contains {c:?}"));
    }
    if s.starts_with('-') || s.ends_with('-') {
        return Err("it starts or ends with '-'".to_owned());
    }
    Ok(())
}

fn suggest_dns1123(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        let c = c.to_ascii_lowercase();
        let separator_ok = !out.is_empty() && !out.ends_with(['-', '.']);
        if c.is_ascii_lowercase() || c.is_ascii_digit() || ((c == '.' || c == '-') && separator_ok)
        {
            out.push(c);
        } else if separator_ok {
            out.push('-');
        }
    }
    let out: String = out.trim_end_matches(['-', '.']).chars().take(63).collect();
    let out = out.trim_end_matches(['-', '.']).to_owned();
    if out.is_empty() {
        "my-repo".to_owned()
    } else {
        out
    }
}

/// Parses a Kubernetes quantity (`<sign>?<number><suffix>?`, suffix one of Ki Mi Gi Ti Pi Ei,
/// n u m k M G T P E, or an exponent `e`/`E` followed by a signed number) and returns its
/// approximate value in base units; `None` when it does not match the grammar.
///
/// Our own, not a size crate: the grammar is Kubernetes' (case-sensitive, `m` is milli and `M`
/// mega, exponents, signs), which byte-size parsers do not follow; k8s-openapi's `Quantity` is
/// a string without a parser. Byte sizes of tool configs and Backups are read by
/// `backuprepo_toolconfig::size`.
pub fn parse_quantity(s: &str) -> Option<f64> {
    let (mantissa, rest) = split_signed_number(s)?;
    let factor = match rest {
        "" => 1.0,
        "Ki" => 1024f64,
        "Mi" => 1024f64.powi(2),
        "Gi" => 1024f64.powi(3),
        "Ti" => 1024f64.powi(4),
        "Pi" => 1024f64.powi(5),
        "Ei" => 1024f64.powi(6),
        "n" => 1e-9,
        "u" => 1e-6,
        "m" => 1e-3,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "E" => 1e18,
        _ => {
            let exp = rest.strip_prefix(['e', 'E'])?;
            let (e, tail) = split_signed_number(exp)?;
            if !tail.is_empty() {
                return None;
            }
            10f64.powf(e)
        }
    };
    Some(mantissa * factor)
}

/// Splits `<sign>?(<digits>(.<digits>*)?|.<digits>)` off the front of `s`.
fn split_signed_number(s: &str) -> Option<(f64, &str)> {
    let b = s.as_bytes();
    let mut i = 0;
    if i < b.len() && (b[i] == b'+' || b[i] == b'-') {
        i += 1;
    }
    let int_start = i;
    while i < b.len() && b[i].is_ascii_digit() {
        i += 1;
    }
    let int_digits = i - int_start;
    let mut frac_digits = 0;
    if i < b.len() && b[i] == b'.' {
        i += 1;
        let frac_start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        frac_digits = i - frac_start;
    }
    if int_digits == 0 && frac_digits == 0 {
        return None;
    }
    let num = &s[..i];
    // "1." is valid in the grammar but not for f64 parsing.
    let value: f64 = num.trim_end_matches('.').parse().ok()?;
    Some((value, &s[i..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities() {
        for ok in [
            "100Gi", "1", "0.5", ".5", "1.", "+1k", "-1", "1e3", "1E3", "1.5E-2", "1E", "5Ei",
            "10m", "2n", "3u", "7M", "1e+3",
        ] {
            assert!(parse_quantity(ok).is_some(), "{ok} should be valid");
        }
        for bad in [
            "", "Gi", "10GB", "1 Gi", "1e", "1Ki3", "1.2.3", "abc", "1i", "--1", "1e3Gi", ".", "1g",
        ] {
            assert!(parse_quantity(bad).is_none(), "{bad} should be invalid");
        }
        assert_eq!(parse_quantity("1Gi"), Some(1024.0 * 1024.0 * 1024.0));
        assert_eq!(parse_quantity("2k"), Some(2000.0));
        assert_eq!(parse_quantity("1E3"), Some(1000.0));
        assert_eq!(parse_quantity("1E"), Some(1e18));
    }

    #[test]
    fn path_prefixes() {
        for ok in ["", "a", "a/", "a/b", "a/b/", "my-repo_1/x", "A-_9"] {
            assert!(is_valid_path_prefix(ok), "{ok} should be valid");
        }
        for bad in ["/", "/a", "a//b", "a b", "a.b", "a/b\\c", "ü"] {
            assert!(!is_valid_path_prefix(bad), "{bad} should be invalid");
        }
        assert_eq!(
            suggest_path_prefix("/backups//my repo/"),
            "backups/my-repo/"
        );
        assert!(is_valid_path_prefix(&suggest_path_prefix("//x..y//")));
    }

    #[test]
    fn dns_names() {
        assert!(check_dns1123_label("kb-system").is_ok());
        assert!(check_dns1123_label("a").is_ok());
        assert!(check_dns1123_label("Kb").is_err());
        assert!(check_dns1123_label("-a").is_err());
        assert!(check_dns1123_label("a.b").is_err());
        assert!(check_dns1123_label(&"a".repeat(64)).is_err());
        assert!(check_dns1123_subdomain("my-repo.example").is_ok());
        assert!(check_dns1123_subdomain("my..repo").is_err());
        assert!(check_dns1123_subdomain("My_Repo").is_err());
        assert_eq!(suggest_dns1123("My_Repo"), "my-repo");
        assert_eq!(suggest_dns1123("__"), "my-repo");
    }
}
