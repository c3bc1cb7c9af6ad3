//! Settings from the environment, read the same way by both stores (the `backuprepo` binary on
//! the local store and the operator): a malformed value is an error naming the variable.

use std::time::Duration;

use crate::Settings;

/// A numeric setting; a malformed value is an error naming the variable and `what` it holds.
/// Unset or empty: `None`.
pub fn number<T: std::str::FromStr>(
    get: &impl Fn(&str) -> Option<String>,
    key: &str,
    what: &str,
) -> Result<Option<T>, String> {
    match get(key).filter(|v| !v.trim().is_empty()) {
        None => Ok(None),
        Some(v) => match v.trim().parse::<T>() {
            Ok(n) => Ok(Some(n)),
            Err(_) => Err(format!("{key}: expected {what}, got {v:?}")),
        },
    }
}

/// A number of seconds.
pub fn seconds(
    get: &impl Fn(&str) -> Option<String>,
    key: &str,
) -> Result<Option<Duration>, String> {
    Ok(number::<u64>(get, key, "a number of seconds")?.map(Duration::from_secs))
}

impl Settings {
    /// `BACKUPREPO_RECHECK_INTERVAL`, `BACKUPREPO_RETRY_INTERVAL` and
    /// `BACKUPREPO_USAGE_INTERVAL` (seconds; 0 turns the periodic check or measurement off) and
    /// `BACKUPREPO_USAGE_PAGES` over the current values.
    pub fn override_from(&mut self, get: &impl Fn(&str) -> Option<String>) -> Result<(), String> {
        if let Some(d) = seconds(get, "BACKUPREPO_RECHECK_INTERVAL")? {
            self.recheck_interval = (!d.is_zero()).then_some(d);
        }
        if let Some(d) = seconds(get, "BACKUPREPO_RETRY_INTERVAL")? {
            self.retry_failed_interval = (!d.is_zero()).then_some(d);
        }
        if let Some(d) = seconds(get, "BACKUPREPO_USAGE_INTERVAL")? {
            self.usage_interval = (!d.is_zero()).then_some(d);
        }
        if let Some(n) = number::<u64>(
            get,
            "BACKUPREPO_USAGE_PAGES",
            "a number of pages (1 or more)",
        )? {
            if n == 0 {
                return Err(
                    "BACKUPREPO_USAGE_PAGES: expected a number of pages (1 or more), got \"0\""
                        .into(),
                );
            }
            self.usage_pages = n;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals_parse_zero_turns_off_and_garbage_is_named() {
        let get = |k: &str| match k {
            "BACKUPREPO_RECHECK_INTERVAL" => Some("0".to_string()),
            "BACKUPREPO_RETRY_INTERVAL" => Some(" 7 ".to_string()),
            _ => None,
        };
        let mut s = Settings::default();
        s.override_from(&get).unwrap();
        assert_eq!(s.recheck_interval, None);
        assert_eq!(s.retry_failed_interval, Some(Duration::from_secs(7)));
        let bad = |_: &str| Some("soon".to_string());
        let err = s.override_from(&bad).unwrap_err();
        assert!(err.contains("BACKUPREPO_RECHECK_INTERVAL"), "{err}");
        assert_eq!(seconds(&|_: &str| Some(String::new()), "X"), Ok(None));
    }
}
