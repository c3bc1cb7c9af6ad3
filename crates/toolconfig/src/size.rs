//! rclone-style size values (`50Mi`, `8M`, `512k`, `1G`): binary multiples, no suffix = KiB,
//! as rclone's `SizeSuffix` reads them, so KubeBlocks' rendered `chunk_size = 50Mi` means 50 MiB.

use crate::{Error, Result};

pub fn parse_size(key: &str, value: &str) -> Result<u64> {
    let v = value.trim();
    let bad = || {
        Error::Config(format!(
            "invalid size {v:?} for {key}: expected a number with an optional suffix b, k/Ki, M/Mi, G/Gi, T/Ti (e.g. 50Mi)"
        ))
    };
    let split = v
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(v.len());
    let (num, suffix) = v.split_at(split);
    let num: f64 = num.parse().map_err(|_| bad())?;
    let suffix = suffix.trim_end_matches(['i', 'B']).trim();
    let mult: f64 = match suffix {
        "" if v.ends_with('B') || v.ends_with('b') => 1.0,
        "" => 1024.0,
        "b" => 1.0,
        "k" | "K" => 1024.0,
        "M" | "m" => 1024.0 * 1024.0,
        "G" | "g" => 1024.0 * 1024.0 * 1024.0,
        "T" | "t" => 1024.0_f64.powi(4),
        _ => return Err(bad()),
    };
    let bytes = num * mult;
    if !bytes.is_finite() || bytes < 0.0 || bytes > u64::MAX as f64 {
        return Err(bad());
    }
    Ok(bytes as u64)
}

#[cfg(test)]
mod tests {
    use super::parse_size;

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
}
