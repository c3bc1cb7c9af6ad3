//! What a push locks its object with (S3 object lock): the repository's retention (the tool
//! config's `object_lock_retention`, from the annotation `backuprepo.io/retention`), or a
//! push's own `--retain-until` and `--legal-hold`. The headers go on the object's PutObject or
//! CreateMultipartUpload only (never on the temporary segments of a long stream, which are
//! removed once copied).

use std::time::Duration;

use backuprepo_toolconfig::retention::LockMode;
use chrono::{DateTime, Utc};

use super::Storage;
use crate::{Error, Result};

/// Until when a pushed object stays locked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetainUntil {
    /// This long after the push.
    After(Duration),
    /// A date.
    At(DateTime<Utc>),
}

impl RetainUntil {
    /// A date (`2027-01-31`, or RFC 3339 such as `2027-01-31T12:00:00Z`) or a duration (`30d`).
    pub fn parse(text: &str) -> std::result::Result<Self, String> {
        let t = text.trim();
        if let Ok(d) = DateTime::parse_from_rfc3339(t) {
            return Ok(RetainUntil::At(d.with_timezone(&Utc)));
        }
        if let Ok(d) = chrono::NaiveDate::parse_from_str(t, "%Y-%m-%d") {
            let midnight = d.and_hms_opt(0, 0, 0).map(|t| t.and_utc());
            return midnight
                .map(RetainUntil::At)
                .ok_or_else(|| format!("invalid date {t:?}"));
        }
        backuprepo_toolconfig::retention::parse_duration(t)
            .map(RetainUntil::After)
            .map_err(|_| format!("invalid --retain-until {t:?}; give a date (2027-01-31, or 2027-01-31T12:00:00Z) or a duration (30d, 720h)"))
    }

    fn date(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        match self {
            RetainUntil::After(d) => now + chrono::Duration::seconds(d.as_secs() as i64),
            RetainUntil::At(t) => *t,
        }
    }
}

/// The lock a push puts on its object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LockRequest {
    pub mode: LockMode,
    pub until: Option<RetainUntil>,
    pub legal_hold: bool,
}

impl LockRequest {
    /// The object-lock headers of a write made at `now`.
    pub fn headers(&self, now: DateTime<Utc>) -> Vec<(&'static str, String)> {
        let mut h = Vec::new();
        if let Some(until) = &self.until {
            h.push(("x-amz-object-lock-mode", self.mode.as_str().to_string()));
            h.push((
                "x-amz-object-lock-retain-until-date",
                until
                    .date(now)
                    .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            ));
        }
        if self.legal_hold {
            h.push(("x-amz-object-lock-legal-hold", "ON".to_string()));
        }
        h
    }
}

impl Storage {
    /// The lock of the repository's config (its retention), if any.
    pub(super) fn configured_lock(tuning: &crate::config::Tuning) -> Option<LockRequest> {
        tuning.retention.map(|r| LockRequest {
            mode: r.mode,
            until: Some(RetainUntil::After(r.period)),
            legal_hold: false,
        })
    }

    /// One push's own lock: `--retain-until` replaces the repository's retention (in its mode
    /// unless `mode` is given), `--legal-hold` adds a legal hold. A date in the past is refused.
    pub fn set_lock(
        &mut self,
        until: Option<RetainUntil>,
        mode: Option<LockMode>,
        legal_hold: bool,
    ) -> Result<()> {
        if let Some(RetainUntil::At(t)) = until {
            if t <= Utc::now() {
                return Err(Error::Unsupported(format!(
                    "--retain-until {} is in the past; give a later date or a duration (30d)",
                    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                )));
            }
        }
        let mut lock = self.lock.unwrap_or_default();
        if until.is_some() {
            lock.until = until;
        }
        if let Some(m) = mode {
            lock.mode = m;
        }
        lock.legal_hold |= legal_hold;
        self.lock = (lock != LockRequest::default()).then_some(lock);
        Ok(())
    }

    /// The headers of a push's object, or an error before any request where the storage
    /// cannot lock objects.
    pub(super) fn lock_headers(&self) -> Result<Vec<(&'static str, String)>> {
        let Some(lock) = &self.lock else {
            return Ok(Vec::new());
        };
        match self.s3()? {
            Some((c, _)) if crate::service::s3::signs_itself(c) => Ok(lock.headers(Utc::now())),
            Some(_) => Err(Error::Unsupported(
                "object-lock retention is written by our own S3 requests, which need an access key; with env_auth (IAM roles) use the bucket's default retention instead".into(),
            )),
            None => Err(Error::Unsupported(format!(
                "the {} storage has no object lock; retention and legal holds need an S3 bucket with object lock",
                self.backend.type_name()
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_name_the_mode_and_the_date() {
        let now = DateTime::parse_from_rfc3339("2026-12-06T10:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let lock = LockRequest {
            mode: LockMode::Compliance,
            until: Some(RetainUntil::parse("1d12h").unwrap()),
            legal_hold: true,
        };
        assert_eq!(
            lock.headers(now),
            vec![
                ("x-amz-object-lock-mode", "COMPLIANCE".to_string()),
                (
                    "x-amz-object-lock-retain-until-date",
                    "2026-12-07T22:00:00Z".to_string()
                ),
                ("x-amz-object-lock-legal-hold", "ON".to_string()),
            ]
        );
        assert_eq!(
            RetainUntil::parse("2027-01-31")
                .unwrap()
                .date(now)
                .to_rfc3339(),
            "2027-01-31T00:00:00+00:00"
        );
        assert!(RetainUntil::parse("tomorrow")
            .unwrap_err()
            .contains("2027-01-31"));
    }
}
