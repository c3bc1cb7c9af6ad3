//! Which key a consumer namespace of a Tool repository gets: a key scoped to its own path, or
//! the repository's own key (KubeBlocks' behaviour). One decision, made here for every caller.
//!
//! The controller's default (`BACKUPREPO_SCOPED_CREDENTIALS`) is `auto`: keys are scoped
//! wherever they can work (the provider declares `scopedCredentials` and the storage's IAM
//! accepts the repository's key), and namespaces get the repository's key, with a condition
//! and a warning event naming why, where they cannot. The annotation
//! `backuprepo.io/scoped-credentials` overrides it per repository: `"true"` requires scoped
//! keys (consumers wait when none can be made), `"false"` turns them off.

use std::fmt;
use std::str::FromStr;

/// The controller's default for repositories without the annotation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Setting {
    /// Scoped where the storage allows it, else the repository's key with a warning.
    #[default]
    Auto,
    /// Always scoped: consumers wait when no scoped key can be made.
    Required,
    /// Never scoped: every namespace gets the repository's key (KubeBlocks).
    Off,
}

impl FromStr for Setting {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "auto" => Ok(Setting::Auto),
            "true" | "1" | "yes" | "required" => Ok(Setting::Required),
            "false" | "0" | "no" | "off" => Ok(Setting::Off),
            other => Err(format!("expected auto, true or false, got {other:?}")),
        }
    }
}

impl fmt::Display for Setting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Setting::Auto => "auto",
            Setting::Required => "true",
            Setting::Off => "false",
        })
    }
}

/// The decision for one repository.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyMode {
    /// Consumer namespaces get keys scoped to their path, or wait. `note`: why, when the
    /// annotation's value was not understood.
    Scoped { note: Option<String> },
    /// The default could not scope: namespaces get the repository's key; `why` says what
    /// stopped it.
    Shared { why: String },
    /// Scoping is off (annotation `"false"`, or the controller's default): the repository's
    /// key, as in KubeBlocks.
    Off,
}

impl KeyMode {
    pub fn is_scoped(&self) -> bool {
        matches!(self, KeyMode::Scoped { .. })
    }
}

/// What was asked for, before the storage is consulted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    Off,
    Auto,
    Required { note: Option<String> },
}

/// The request of a repository: its annotation (`Err`: a value that is neither true nor
/// false, which is read as `"true"`, the safe side), else the controller's default.
pub fn request(annotation: Result<Option<bool>, String>, default: Setting) -> Request {
    match annotation {
        Ok(Some(true)) => Request::Required { note: None },
        Ok(Some(false)) => Request::Off,
        Err(note) => Request::Required { note: Some(note) },
        Ok(None) => match default {
            Setting::Auto => Request::Auto,
            Setting::Required => Request::Required { note: None },
            Setting::Off => Request::Off,
        },
    }
}

/// The decision for `auto`: `has_keys` (the repository holds scoped keys already: it stays
/// scoped, so a storage that stops answering never turns scoped keys into the admin key),
/// the provider's capability, and the answer of the storage's IAM (`None`: not asked yet,
/// e.g. before the repository's config renders; nothing is handed out then).
pub fn auto(
    has_keys: bool,
    capability: Result<(), String>,
    iam: Option<Result<(), String>>,
) -> KeyMode {
    if has_keys {
        return KeyMode::Scoped { note: None };
    }
    match (capability, iam) {
        (Err(why), _) => KeyMode::Shared { why },
        (Ok(()), None | Some(Ok(()))) => KeyMode::Scoped { note: None },
        (Ok(()), Some(Err(why))) => KeyMode::Shared {
            why: format!("the storage's IAM API did not accept the repository's key: {why}"),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_annotation_overrides_the_default_and_odd_values_are_the_safe_side() {
        assert_eq!(request(Ok(None), Setting::Auto), Request::Auto);
        assert_eq!(request(Ok(None), Setting::Off), Request::Off);
        assert_eq!(request(Ok(Some(false)), Setting::Required), Request::Off);
        assert_eq!(
            request(Ok(Some(true)), Setting::Off),
            Request::Required { note: None }
        );
        let odd = request(Err("annotation is \"True\"".into()), Setting::Off);
        assert!(
            matches!(odd, Request::Required { note: Some(_) }),
            "{odd:?}"
        );
        assert_eq!("AUTO".parse::<Setting>(), Ok(Setting::Auto));
        assert_eq!("true".parse::<Setting>(), Ok(Setting::Required));
        assert!("maybe"
            .parse::<Setting>()
            .unwrap_err()
            .contains("auto, true or false"));
        assert_eq!(Setting::default(), Setting::Auto);
    }

    #[test]
    fn auto_scopes_where_the_storage_allows_it_and_stays_scoped() {
        let no = || Err("provider s3 cannot scope keys".to_string());
        assert_eq!(
            auto(false, Ok(()), Some(Ok(()))),
            KeyMode::Scoped { note: None }
        );
        assert_eq!(auto(false, Ok(()), None), KeyMode::Scoped { note: None });
        let KeyMode::Shared { why } = auto(false, no(), None) else {
            panic!("no capability must share")
        };
        assert!(why.contains("cannot scope"), "{why}");
        let KeyMode::Shared { why } = auto(false, Ok(()), Some(Err("403".into()))) else {
            panic!("IAM refused must share")
        };
        assert!(why.contains("IAM") && why.contains("403"), "{why}");
        // Keys already made: never back to the repository's key.
        assert!(auto(true, Ok(()), Some(Err("down".into()))).is_scoped());
        assert!(auto(true, no(), None).is_scoped());
    }
}
