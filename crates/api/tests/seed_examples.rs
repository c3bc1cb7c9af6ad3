#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Every BackupRepo / StorageProvider / Secret example of the seed documentation parses
//! cleanly and validates.

mod common;

use backuprepo_api::{parse_documents, AccessMethod, Document, PvReclaimPolicy};

#[test]
fn scanner_finds_heredocs_and_yaml_fences() {
    let md = "text\n   ```bash\n   kubectl apply -f - <<-'EOF'\n   a: 1\n   EOF\n   ```\n\n```yaml\nb: 2\n```\n";
    let s = common::yaml_snippets(md);
    assert_eq!(s.len(), 2);
    assert_eq!(s[0].text, "a: 1");
    assert_eq!(s[0].line, 4);
    assert_eq!(s[1].text, "b: 2");
}

#[test]
fn seed_examples_parse_without_warnings() {
    let Some(md) = common::read_shared("seed/configure-backuprepo.md") else {
        return;
    };
    let snippets = common::yaml_snippets(&md);
    assert!(!snippets.is_empty(), "no YAML found in the seed");
    let mut repos = Vec::new();
    let mut skipped = 0;
    for s in &snippets {
        if !common::declares_supported_kind(&s.text) {
            // e.g. the Helm values file `backupRepo: {create: true, ...}`
            skipped += 1;
            continue;
        }
        let parsed = parse_documents(&s.text)
            .unwrap_or_else(|e| panic!("seed snippet at line {}: {e}", s.line));
        assert!(
            !parsed.is_empty(),
            "seed snippet at line {} is empty",
            s.line
        );
        for p in parsed {
            assert!(
                p.warnings.is_empty(),
                "seed snippet at line {}: {:?}",
                s.line,
                p.warnings
            );
            if let Document::BackupRepo(r) = p.doc {
                r.validate()
                    .unwrap_or_else(|e| panic!("seed snippet at line {}: {e:?}", s.line));
                repos.push(r);
            }
        }
    }
    assert!(
        skipped >= 1,
        "the Helm values block should have been skipped"
    );
    assert_eq!(repos.len(), 7, "one BackupRepo per provider tab");
    let providers: Vec<&str> = repos
        .iter()
        .map(|r| r.spec.storage_provider_ref.as_str())
        .collect();
    assert_eq!(
        providers,
        [
            "s3",
            "oss",
            "obs",
            "cos",
            "gcs-s3comp",
            "minio",
            "s3-compatible"
        ]
    );
    for r in &repos {
        assert_eq!(r.name(), "my-repo");
        assert!(r.is_default());
        assert!(r.uses_credential());
        assert_eq!(r.access_method(), AccessMethod::Tool);
        assert_eq!(r.spec.pv_reclaim_policy, PvReclaimPolicy::Retain);
        assert_eq!(r.spec.volume_capacity.as_ref().unwrap().0, "100Gi");
        assert_eq!(
            r.spec.credential.as_ref().unwrap().namespace.as_deref(),
            Some("kb-system")
        );
        assert!(r.spec.config.contains_key("bucket"));
    }
    // `forcePathStyle: true` is a YAML boolean in the seed; config keeps it as text.
    let s3c = repos.last().unwrap();
    assert_eq!(s3c.spec.config["forcePathStyle"], "true");
    assert_eq!(s3c.spec.config["endpoint"], "<endpoint>");
    // `endpoint: ""` stays an empty string.
    assert_eq!(repos[0].spec.config["endpoint"], "");
    assert_eq!(
        repos[0].spec.config["mountOptions"],
        "--memory-limit 1000 --dir-mode 0777 --file-mode 0666"
    );
}
