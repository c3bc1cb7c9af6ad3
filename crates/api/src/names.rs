//! Names of derived objects (spec §2.5).

use rand::Rng;

/// Alphabet of Kubernetes' `rand.String` (no vowels, no confusable characters).
pub const RANDOM_ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

/// Six random characters from [`RANDOM_ALPHABET`].
pub fn random_suffix() -> String {
    let mut rng = rand::thread_rng();
    (0..6)
        .map(|_| char::from(RANDOM_ALPHABET[rng.gen_range(0..RANDOM_ALPHABET.len())]))
        .collect()
}

/// `<prefix>-<repo_name>` cut to 56 characters, then `-<random6>`
/// (e.g. `derived_name("sc", "my-repo", "x7k2q")`).
pub fn derived_name(prefix: &str, repo_name: &str, random6: &str) -> String {
    let base: String = format!("{prefix}-{repo_name}").chars().take(56).collect();
    format!("{base}-{random6}")
}

/// Whether `name` has the form [`derived_name`] gives for `prefix` and `repo_name` (a suffix of
/// one to eight lowercase letters or digits): a name read back from status is used only then.
pub fn is_derived_name(prefix: &str, repo_name: &str, name: &str) -> bool {
    let base = derived_name(prefix, repo_name, "");
    name.strip_prefix(base.as_str()).is_some_and(|suffix| {
        (1..=8).contains(&suffix.len())
            && suffix
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    })
}

/// Name of the pre-check Job, PVC and Secret: `pre-check-<first 8 chars of uid>-<name>` cut
/// to 63 characters, trailing '-' trimmed.
pub fn pre_check_resource_name(uid: &str, name: &str) -> String {
    let uid8: String = uid.chars().take(8).collect();
    let full: String = format!("pre-check-{uid8}-{name}")
        .chars()
        .take(63)
        .collect();
    full.trim_end_matches('-').to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suffix_uses_alphabet() {
        for _ in 0..50 {
            let s = random_suffix();
            assert_eq!(s.len(), 6);
            assert!(s.bytes().all(|b| RANDOM_ALPHABET.contains(&b)), "{s}");
        }
    }

    #[test]
    fn derived_names() {
        assert_eq!(derived_name("sc", "my-repo", "abcdef"), "sc-my-repo-abcdef");
        assert_eq!(
            derived_name("tool-config", "my-repo", "bcdfgh"),
            "tool-config-my-repo-bcdfgh"
        );
        let long = "r".repeat(100);
        let n = derived_name("pvc", &long, "bcdfgh");
        assert_eq!(n.len(), 63);
        assert!(n.starts_with("pvc-rrr"));
        assert!(n.ends_with("r-bcdfgh"));
    }

    #[test]
    fn pre_check_names() {
        assert_eq!(
            pre_check_resource_name("0123456789abcdef", "my-repo"),
            "pre-check-01234567-my-repo"
        );
        // 10 + 8 + 1 = 19 chars before the name; cut at 63 lands on a '-' here.
        let name = format!("{}-{}", "a".repeat(43), "b".repeat(10));
        let n = pre_check_resource_name("0123456789abcdef", &name);
        assert_eq!(n, format!("pre-check-01234567-{}", "a".repeat(43)));
        assert!(n.len() <= 63);
    }

    #[test]
    fn derived_names_are_recognised() {
        let name = derived_name("secret", "my-repo", "x7k2q4");
        assert!(is_derived_name("secret", "my-repo", &name));
        assert!(!is_derived_name("secret", "my-repo", "planted"));
        assert!(!is_derived_name("secret", "other", &name));
        assert!(!is_derived_name(
            "secret",
            "my-repo",
            "secret-my-repo-UPPER1"
        ));
        assert!(!is_derived_name("secret", "my-repo", "secret-my-repo-"));
    }
}
