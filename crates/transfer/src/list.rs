//! Listing options, entries and datasafed's three output formats.

use serde::Serialize;

use crate::{Error, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SortBy {
    #[default]
    Path,
    Size,
    Mtime,
}

#[derive(Debug, Clone, Default)]
pub struct ListOptions {
    pub dirs_only: bool,
    pub files_only: bool,
    pub recursive: bool,
    /// `None` = unlimited. 1 = direct children only.
    pub max_depth: Option<u32>,
    pub sort: Option<SortBy>,
    pub reverse: bool,
    /// Exclusive lower bound on mtime (unix seconds).
    pub newer_than: Option<i64>,
    /// Exclusive upper bound on mtime (unix seconds).
    pub older_than: Option<i64>,
    /// Glob matched against the base name.
    pub name: Option<glob::Pattern>,
}

impl ListOptions {
    pub fn validate(&self) -> Result<()> {
        if self.dirs_only && self.files_only {
            return Err(Error::Config(
                "--dirs-only and --files-only are mutually exclusive".into(),
            ));
        }
        if self.recursive && self.sort.is_some() {
            return Err(Error::Config(
                "--sort cannot be used with --recursive (recursive results stream unsorted)".into(),
            ));
        }
        Ok(())
    }

    pub fn accepts(&self, e: &Entry) -> bool {
        if self.dirs_only && !e.is_dir || self.files_only && e.is_dir {
            return false;
        }
        if self.newer_than.is_some_and(|t| e.mtime <= t)
            || self.older_than.is_some_and(|t| e.mtime >= t)
        {
            return false;
        }
        if let Some(p) = &self.name {
            let base = e
                .path
                .trim_end_matches('/')
                .rsplit('/')
                .next()
                .unwrap_or_default();
            if !p.matches(base) {
                return false;
            }
        }
        true
    }
}

/// One listed entry. `path` is relative to the base path; directories end with `/`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Entry {
    pub path: String,
    pub size: u64,
    /// Unix seconds.
    pub mtime: i64,
    pub mtime_str: String,
    pub is_dir: bool,
}

impl Entry {
    pub fn new(path: String, size: u64, mtime: i64, is_dir: bool) -> Self {
        Entry {
            path,
            size,
            mtime,
            mtime_str: rfc3339(mtime),
            is_dir,
        }
    }
}

pub fn rfc3339(unix: i64) -> String {
    chrono::DateTime::from_timestamp(unix, 0)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_default()
}

pub fn sort(entries: &mut [Entry], by: SortBy, reverse: bool) {
    match by {
        SortBy::Path => entries.sort_by(|a, b| a.path.cmp(&b.path)),
        SortBy::Size => {
            entries.sort_by(|a, b| a.size.cmp(&b.size).then_with(|| a.path.cmp(&b.path)))
        }
        SortBy::Mtime => {
            entries.sort_by(|a, b| a.mtime.cmp(&b.mtime).then_with(|| a.path.cmp(&b.path)))
        }
    }
    if reverse {
        entries.reverse();
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Format {
    #[default]
    Short,
    Long,
    Json,
}

/// One line for the short and long formats.
pub fn line(e: &Entry, f: Format) -> String {
    match f {
        Format::Long => format!("{}\t{}\t{}", e.mtime_str, e.size, e.path),
        _ => e.path.clone(),
    }
}

/// Recursive counts of `stat`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct StatResult {
    pub total_size: u64,
    pub entries: u64,
    pub dirs: u64,
    pub files: u64,
}

impl StatResult {
    pub fn text(&self) -> String {
        format!(
            "TotalSize: {}\nEntries: {}\nDirs: {}\nFiles: {}\n",
            self.total_size, self.entries, self.dirs, self.files
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_are_exclusive_bounds_on_basename() {
        let e = Entry::new("a/b/dump.sql".into(), 5, 100, false);
        let mut o = ListOptions {
            name: glob::Pattern::new("*.sql").ok(),
            ..Default::default()
        };
        assert!(o.accepts(&e));
        o.newer_than = Some(100);
        assert!(!o.accepts(&e));
        o.newer_than = Some(99);
        o.older_than = Some(100);
        assert!(!o.accepts(&e));
        o.older_than = Some(101);
        assert!(o.accepts(&e));
        o.dirs_only = true;
        assert!(!o.accepts(&e));
        assert_eq!(
            line(&e, Format::Long),
            "1970-01-01T00:01:40Z\t5\ta/b/dump.sql"
        );
    }

    #[test]
    fn sorting_and_exclusive_flags() {
        let mut v = vec![
            Entry::new("b".into(), 1, 3, false),
            Entry::new("a".into(), 2, 2, false),
            Entry::new("c".into(), 2, 1, false),
        ];
        sort(&mut v, SortBy::Size, false);
        assert_eq!(
            v.iter().map(|e| e.path.as_str()).collect::<Vec<_>>(),
            ["b", "a", "c"]
        );
        sort(&mut v, SortBy::Mtime, true);
        assert_eq!(
            v.iter().map(|e| e.path.as_str()).collect::<Vec<_>>(),
            ["b", "a", "c"]
        );
        let o = ListOptions {
            dirs_only: true,
            files_only: true,
            ..Default::default()
        };
        assert!(o.validate().is_err());
    }
}
