//! Object-lock retention (ours): the annotation `backuprepo.io/retention: "<duration>[,MODE]"`
//! on a repository, rendered into its tool config as `object_lock_retention` and
//! `object_lock_mode`; every object our datasafed face then writes carries that retention.
//! One parser for the annotation, the config keys and `push --retain-until`.

use std::fmt;
use std::time::Duration;

/// The two S3 object-lock modes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LockMode {
    /// Users with `s3:BypassGovernanceRetention` may still remove the object.
    #[default]
    Governance,
    /// Nobody can remove the object, or shorten its retention, before it ends.
    Compliance,
}

impl LockMode {
    /// As S3 writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            LockMode::Governance => "GOVERNANCE",
            LockMode::Compliance => "COMPLIANCE",
        }
    }

    pub fn parse(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_uppercase().as_str() {
            "GOVERNANCE" => Ok(LockMode::Governance),
            "COMPLIANCE" => Ok(LockMode::Compliance),
            other => Err(format!(
                "unknown object-lock mode {other:?}; use GOVERNANCE or COMPLIANCE"
            )),
        }
    }
}

impl fmt::Display for LockMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How long each written object stays locked, and in which mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    pub period: Duration,
    pub mode: LockMode,
}

/// The longest retention we accept (100 years): a typo such as `30000d` is an error rather
/// than objects nobody can remove for a lifetime.
const LONGEST: u64 = 100 * 365 * 86_400;

/// A duration such as `30d`, `720h`, `1d12h`, `90m` or `2w` (units s, m, h, d, w; no unit is
/// an error, so `30` is never read as seconds when days were meant).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let bad = || {
        format!("invalid duration {text:?}; write a number and a unit: 30d, 720h, 1d12h, 2w (units s, m, h, d, w)")
    };
    if t.is_empty() {
        return Err(bad());
    }
    let (mut total, mut number) = (0u64, String::new());
    for c in t.chars() {
        if c.is_ascii_digit() {
            number.push(c);
            continue;
        }
        let unit = match c {
            's' => 1,
            'm' => 60,
            'h' => 3_600,
            'd' => 86_400,
            'w' => 7 * 86_400,
            _ => return Err(bad()),
        };
        let n: u64 = number.parse().map_err(|_| bad())?;
        number.clear();
        total = n
            .checked_mul(unit)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(bad)?;
    }
    if !number.is_empty() || total == 0 {
        return Err(bad());
    }
    if total > LONGEST {
        return Err(format!(
            "retention {text:?} is longer than 100 years; check the number and the unit"
        ));
    }
    Ok(Duration::from_secs(total))
}

/// `<duration>[,GOVERNANCE|COMPLIANCE]` (default GOVERNANCE).
pub fn parse(text: &str) -> Result<Retention, String> {
    let (period, mode) = match text.split_once(',') {
        Some((p, m)) => (p, LockMode::parse(m)?),
        None => (text, LockMode::default()),
    };
    Ok(Retention {
        period: parse_duration(period)?,
        mode,
    })
}

/// A duration as [`parse_duration`] reads it back: the largest units that divide it.
pub fn format_duration(d: Duration) -> String {
    let mut secs = d.as_secs();
    let mut out = String::new();
    for (unit, name) in [(86_400, 'd'), (3_600, 'h'), (60, 'm'), (1, 's')] {
        if secs >= unit {
            out.push_str(&format!("{}{name}", secs / unit));
            secs %= unit;
        }
    }
    if out.is_empty() {
        out.push_str("0s");
    }
    out
}

impl fmt::Display for Retention {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{},{}", format_duration(self.period), self.mode)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn annotations_parse_with_the_default_mode() {
        let r = parse("30d").unwrap();
        assert_eq!(r.period, Duration::from_secs(30 * 86_400));
        assert_eq!(r.mode, LockMode::Governance);
        let r = parse("1d12h, compliance").unwrap();
        assert_eq!(r.period, Duration::from_secs(36 * 3_600));
        assert_eq!(r.mode, LockMode::Compliance);
        assert_eq!(r.to_string(), "1d12h,COMPLIANCE");
        assert_eq!(parse(&r.to_string()).unwrap(), r);
    }

    #[test]
    fn bad_values_name_the_fix() {
        for bad in ["", "30", "d", "30x", "0d", "-1d", "30d,FOREVER", "40000d"] {
            let e = parse(bad).unwrap_err();
            assert!(
                e.contains("30d") || e.contains("GOVERNANCE") || e.contains("100 years"),
                "{bad}: {e}"
            );
        }
    }
}
