//! Sizes, on the `parse-size` crate, in the two dialects backuprepo reads:
//! - rclone's (`chunk_size = 50Mi` in a tool config): binary multiples whatever the suffix
//!   (`M` = `Mi` = MiB), and a bare number is KiB, as rclone's `SizeSuffix` reads it; so
//!   KubeBlocks' rendered `chunk_size = 50Mi` means 50 MiB;
//! - go-humanize's `ParseBytes` (a Backup's `status.totalSize`, which kbcli sums): decimal `KB`,
//!   binary `KiB`, a bare number is bytes.
//!
//! Kubernetes quantities (`volumeCapacity`) are a third grammar (case-sensitive, `m` is milli,
//! exponents); `backuprepo_api::parse_quantity` reads those.

use parse_size::Config;

use crate::{Error, Result};

/// An rclone size setting of a tool config; the error names the key.
pub fn parse_size(key: &str, value: &str) -> Result<u64> {
    const RCLONE: Config = Config::new().with_binary().with_default_factor(1024);
    RCLONE.parse_size(value.trim()).map_err(|_| {
        Error::Config(format!(
            "invalid size {:?} for {key}: expected a number with an optional suffix b, k/Ki, M/Mi, G/Gi, T/Ti (e.g. 50Mi)",
            value.trim()
        ))
    })
}

/// A size as go-humanize's `ParseBytes` reads it (`1.5 GB`, `10MiB`, `1234`); `None` when it is
/// not one.
pub fn parse_bytes(value: &str) -> Option<u64> {
    parse_size::parse_size(value.trim()).ok()
}

#[cfg(test)]
mod tests {
    use super::{parse_bytes, parse_size};

    #[test]
    fn rclone_suffixes() {
        assert_eq!(parse_size("k", "50Mi").unwrap(), 50 << 20);
        assert_eq!(parse_size("k", "8M").unwrap(), 8 << 20);
        assert_eq!(parse_size("k", "10").unwrap(), 10 << 10);
        assert_eq!(parse_size("k", "100b").unwrap(), 100);
        assert_eq!(parse_size("k", "1Gi").unwrap(), 1 << 30);
        assert!(parse_size("k", "lots").is_err());
        assert!(parse_size("k", "5X").is_err());
    }

    #[test]
    fn humanize_units() {
        for (s, n) in [
            ("0", 0),
            ("1234", 1234),
            ("1.2 GB", 1_200_000_000),
            ("42 MB", 42_000_000),
            ("1kB", 1000),
            ("2KiB", 2048),
            ("10Mi", 10_485_760),
            ("1 GiB", 1_073_741_824),
        ] {
            assert_eq!(parse_bytes(s), Some(n), "{s}");
        }
        assert_eq!(parse_bytes("lots"), None);
        assert_eq!(parse_bytes("3 parsecs"), None);
    }
}
