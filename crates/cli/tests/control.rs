//! The control plane end to end, through the real binary and the local store: every kubectl and
//! kbcli tab of the seed document (read at run time from ../shared/seed, with the endpoint
//! pointed at the SeaweedFS test server), the "Automatic BackupRepo configuration" values file,
//! FTP, Azure Blob and local repositories, the default-repository rules, and a table of bad
//! inputs — each a clear error or condition, nothing stored half-way, no secret printed.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "control/home.rs"]
mod home;

#[path = "control/grants.rs"]
mod grants;

#[path = "control/face.rs"]
mod face;

#[path = "control/kubectl.rs"]
mod kubectl;

#[path = "control/inputs.rs"]
mod inputs;

#[path = "control/modes.rs"]
mod modes;

#[path = "control/copy.rs"]
mod copy;

#[path = "control/retention.rs"]
mod retention;

#[path = "control/replicate.rs"]
mod replicate;

use home::*;

/// The seed's fenced blocks (`None` when `../shared` is absent).
fn seed_blocks() -> Option<Vec<String>> {
    let text = backuprepo_fixtures::read_shared("seed/configure-backuprepo.md")?;
    let mut blocks = Vec::new();
    let mut cur: Option<Vec<String>> = None;
    for line in text.lines() {
        let t = line.trim();
        if t.starts_with("```") {
            match cur.take() {
                Some(b) => blocks.push(b.join("\n")),
                None => cur = Some(Vec::new()),
            }
            continue;
        }
        if let Some(b) = cur.as_mut() {
            b.push(line.to_string());
        }
    }
    Some(blocks)
}

/// The BackupRepo manifests of the seed's kubectl tabs.
fn seed_manifests() -> Option<Vec<String>> {
    let mut out = Vec::new();
    for b in seed_blocks()? {
        if let Some(start) = b.find("<<-'EOF'") {
            let rest = &b[start + 8..];
            let end = rest.find("\n   EOF").or_else(|| rest.find("EOF")).unwrap();
            let yaml: String = rest[..end]
                .lines()
                .map(|l| l.strip_prefix("   ").unwrap_or(l))
                .collect::<Vec<_>>()
                .join("\n");
            out.push(yaml);
        }
    }
    Some(out)
}

/// The seed's `kbcli backuprepo create` commands as argument lists.
fn seed_kbcli_creates() -> Option<Vec<Vec<String>>> {
    let mut out = Vec::new();
    for b in seed_blocks()? {
        let joined = b
            .lines()
            .map(|l| l.trim_end())
            .collect::<Vec<_>>()
            .join("\n")
            .replace("\\\n", " ");
        for line in joined.lines() {
            let words: Vec<String> = line.split_whitespace().map(str::to_string).collect();
            if words.len() > 3
                && words[0] == "kbcli"
                && words[1] == "backuprepo"
                && words[2] == "create"
            {
                out.push(words[3..].to_vec());
            }
        }
    }
    Some(out)
}

/// Replace (or add) `--flag value` in an argument list.
fn set_flag(args: &mut Vec<String>, flag: &str, value: &str) {
    if let Some(i) = args.iter().position(|a| a == flag) {
        args[i + 1] = value.to_string();
    } else {
        args.push(flag.to_string());
        args.push(value.to_string());
    }
}

fn point_at_s3(
    yaml: &str,
    endpoint: &str,
    bucket: &str,
    secret_ns: &str,
) -> (String, String, String) {
    let mut doc: serde_yaml_ng::Value = serde_yaml_ng::from_str(yaml).unwrap();
    let name = doc["metadata"]["name"].as_str().unwrap().to_string();
    let provider = doc["spec"]["storageProviderRef"]
        .as_str()
        .unwrap()
        .to_string();
    let cfg = doc["spec"]["config"].as_mapping_mut().unwrap();
    cfg.insert("endpoint".into(), endpoint.into());
    cfg.insert("bucket".into(), bucket.into());
    // No wildcard DNS for <bucket>.127.0.0.1: path style (our addition on every S3 provider).
    cfg.insert("forcePathStyle".into(), "true".into());
    // Tests share the bucket: keep this one's data apart.
    doc["spec"]["pathPrefix"] = "seed-kubectl".into();
    assert_eq!(
        doc["spec"]["credential"]["namespace"].as_str(),
        Some(secret_ns)
    );
    (serde_yaml_ng::to_string(&doc).unwrap(), name, provider)
}

#[test]
fn seed_kubectl_tabs_on_seaweedfs() {
    let Some((endpoint, bucket, key, secret)) = s3() else {
        return;
    };
    let Some(manifests) = seed_manifests() else {
        return;
    };
    assert_eq!(
        manifests.len(),
        7,
        "S3, OSS, OBS, COS, GCS, MinIO, S3-compatible"
    );
    let h = Home::new();
    let mut providers = Vec::new();
    for yaml in manifests {
        let (yaml, name, provider) = point_at_s3(&yaml, &endpoint, &bucket, "kb-system");
        providers.push(provider.clone());
        let secret_name = serde_yaml_ng::from_str::<serde_yaml_ng::Value>(&yaml).unwrap()["spec"]
            ["credential"]["name"]
            .as_str()
            .unwrap()
            .to_string();
        // kubectl create secret generic ... -n kb-system --from-literal=...
        h.ok(
            &[
                "secret",
                "create",
                &secret_name,
                "-n",
                "kb-system",
                &format!("--from-literal=accessKeyId={key}"),
                &format!("--from-literal=secretAccessKey={secret}"),
            ],
            None,
        );
        let out = h.ok(&["apply", "-f", "-"], Some(&yaml));
        assert!(
            out.contains(&format!(
                "backuprepo.dataprotection.kubeblocks.io/{name} created"
            )),
            "{out}"
        );
        assert_eq!(
            h.phase(&name),
            "Ready",
            "{provider}: {:?}",
            h.condition(&name, "PreCheckPassed")
        );
        let table = h.ok(&["get", "backuprepo"], None);
        assert!(
            table.contains("Ready") && table.contains(&provider),
            "{table}"
        );
        // Back up into it by name and read it back.
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("dump");
        std::fs::write(&src, provider.repeat(1000)).unwrap();
        h.ok(
            &["push", "--repo", &name, src.to_str().unwrap(), "seed/dump"],
            None,
        );
        let dst = dir.path().join("back");
        h.ok(
            &["pull", "--repo", &name, "seed/dump", dst.to_str().unwrap()],
            None,
        );
        assert_eq!(std::fs::read(&src).unwrap(), std::fs::read(&dst).unwrap());
        // Deleting is refused while the data is there, then allowed.
        let e = h.fails(&["delete", "backuprepo", &name, "--yes"], None);
        assert!(e.contains("still containing 1 backup"), "{e}");
        h.ok(&["rm", "--repo", &name, "-r", "seed"], None);
        h.ok(&["delete", "backuprepo", &name, "--yes"], None);
        assert!(h.repo_names().is_empty());
    }
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
    h.secret_only_in_private_files();
}

#[test]
fn seed_kbcli_tabs_on_seaweedfs() {
    let Some((endpoint, bucket, key, secret)) = s3() else {
        return;
    };
    let Some(creates) = seed_kbcli_creates() else {
        return;
    };
    assert!(creates.len() >= 7, "{creates:?}");
    let h = Home::new();
    let mut seen = Vec::new();
    for mut args in creates {
        let provider = args[args.iter().position(|a| a == "--provider").unwrap() + 1].clone();
        if seen.contains(&provider) {
            continue; // the seed shows a second form for some providers
        }
        seen.push(provider.clone());
        for a in args.iter_mut() {
            if a == "<ACCESS" || a == "<SECRET" {
                *a = String::new();
            }
        }
        // `<ACCESS KEY>` is two words in the seed: rebuild the list without them.
        let mut clean: Vec<String> = Vec::new();
        let mut skip = false;
        for a in args {
            if skip {
                skip = false;
                continue;
            }
            if a.is_empty() {
                skip = true; // "KEY>"
                clean.push("PLACEHOLDER".into());
                continue;
            }
            clean.push(a);
        }
        set_flag(&mut clean, "--access-key-id", &key);
        set_flag(&mut clean, "--secret-access-key", &secret);
        set_flag(&mut clean, "--endpoint", &endpoint);
        set_flag(&mut clean, "--bucket", &bucket);
        clean.push("--force-path-style".into());
        set_flag(&mut clean, "--path-prefix", "seed-kbcli");
        let mut argv = vec!["create".to_string()];
        argv.extend(clean);
        let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
        let out = h.ok(&argv, None);
        assert!(
            out.contains("Successfully create backup repo \"my-repo\"."),
            "{out}"
        );
        assert!(out.contains("is Ready"), "{provider}: {out}");
        let list = h.ok(&["list"], None);
        assert!(list.contains("my-repo") && list.contains("true"), "{list}");
        let described = h.ok(&["describe", "my-repo"], None);
        assert!(
            described.contains("multipart upload") && described.contains("Passed"),
            "{described}"
        );
        h.ok(&["delete", "my-repo", "--yes"], None);
    }
    assert!(seen.len() >= 7, "{seen:?}");
    h.secret_only_in_private_files();
}

#[test]
fn automatic_configuration_from_values_file() {
    let Some((endpoint, bucket, key, secret)) = s3() else {
        return;
    };
    let Some(blocks) = seed_blocks() else {
        return;
    };
    let values = blocks
        .into_iter()
        .find(|b| b.contains("backupRepo:"))
        .expect("the seed's values file");
    let values: String = values
        .lines()
        .map(|l| l.strip_prefix("    ").unwrap_or(l))
        .collect::<Vec<_>>()
        .join("\n");
    let mut doc: serde_yaml_ng::Value = serde_yaml_ng::from_str(&values).unwrap();
    let b = &mut doc["backupRepo"];
    b["config"]["endpoint"] = endpoint.into();
    b["config"]["bucket"] = bucket.into();
    b["config"]["forcePathStyle"] = "true".into();
    b["secrets"]["accessKeyId"] = key.into();
    b["secrets"]["secretAccessKey"] = secret.into();
    let h = Home::new();
    let file = h.dir.path().join("backuprepo.yaml");
    std::fs::write(&file, serde_yaml_ng::to_string(&doc).unwrap()).unwrap();
    h.ok(&["install", "-f", file.to_str().unwrap()], None);
    let r = h.repo("kubeblocks-backuprepo");
    assert_eq!(r["status"]["phase"], "Ready");
    assert_eq!(r["status"]["isDefault"], true);
    assert_eq!(r["spec"]["accessMethod"], "Tool");
    assert_eq!(
        r["spec"]["credential"]["name"],
        "kubeblocks-backuprepo-secret"
    );
    // The default repository is used when --repo is omitted.
    let src = h.dir.path().join("x");
    std::fs::write(&src, b"hello").unwrap();
    h.ok(&["push", src.to_str().unwrap(), "auto/x"], None);
    assert!(h
        .ok(
            &["list", "--repo", "kubeblocks-backuprepo", "-r", "auto/"],
            None
        )
        .contains("auto/x"));
    h.ok(&["rm", "-r", "auto"], None);
    h.secret_only_in_private_files();
}

#[test]
fn ftp_azure_and_local_repositories() {
    let h = Home::new();
    let dir = h.dir.path().join("data");
    std::fs::create_dir(&dir).unwrap();
    h.ok(
        &[
            "create",
            "local-repo",
            "--provider",
            "local",
            "--path",
            dir.to_str().unwrap(),
        ],
        None,
    );
    assert_eq!(h.phase("local-repo"), "Ready");
    if h.ftp_repo("ftp-repo", "") {
        assert_eq!(h.phase("ftp-repo"), "Ready");
    }
    if h.az_repo("az-repo", "") {
        assert_eq!(h.phase("az-repo"), "Ready");
        let d = h.ok(&["describe", "az-repo"], None);
        assert!(
            d.contains("multipart upload") && d.contains("Passed"),
            "{d}"
        );
    }
}

#[test]
fn one_default_repository() {
    let h = Home::new();
    let dir = h.dir.path();
    for name in ["a", "b"] {
        std::fs::create_dir(dir.join(name)).unwrap();
    }
    let path = |n: &str| dir.join(n).display().to_string();
    h.ok(
        &[
            "create",
            "a",
            "--provider",
            "local",
            "--path",
            &path("a"),
            "--default",
        ],
        None,
    );
    let e = h.fails(
        &[
            "create",
            "b",
            "--provider",
            "local",
            "--path",
            &path("b"),
            "--default",
        ],
        None,
    );
    assert!(
        e.contains("already a default backup repository \"a\""),
        "{e}"
    );
    assert_eq!(h.repo_names(), ["a"], "nothing stored");
    h.ok(
        &["create", "b", "--provider", "local", "--path", &path("b")],
        None,
    );
    let e = h.fails(
        &[
            "annotate",
            "backuprepo",
            "b",
            "dataprotection.kubeblocks.io/is-default-repo=true",
        ],
        None,
    );
    assert!(e.contains("already a default"), "{e}");
    // `update` without --default keeps the default (KubeBlocks' kbcli silently removed it).
    h.ok(&["update", "a"], None);
    assert_eq!(h.repo("a")["status"]["isDefault"], true);
    h.ok(&["update", "a", "--default=false"], None);
    h.ok(&["update", "b", "--default"], None);
    assert_eq!(h.repo("b")["status"]["isDefault"], true);
    assert_eq!(h.repo("a")["status"]["isDefault"], false);
    // The seed's annotate flow.
    h.ok(
        &[
            "annotate",
            "backuprepo",
            "b",
            "--overwrite=true",
            "dataprotection.kubeblocks.io/is-default-repo=false",
        ],
        None,
    );
    h.ok(
        &[
            "annotate",
            "backuprepo",
            "a",
            "--overwrite=true",
            "dataprotection.kubeblocks.io/is-default-repo=true",
        ],
        None,
    );
    assert_eq!(h.repo("a")["status"]["isDefault"], true);
    // Two defaults in one manifest are refused as a whole.
    let two = format!(
        "apiVersion: dataprotection.kubeblocks.io/v1alpha1\nkind: BackupRepo\nmetadata:\n  name: c\n  annotations:\n    dataprotection.kubeblocks.io/is-default-repo: \"true\"\nspec:\n  storageProviderRef: local\n  accessMethod: Tool\n  pvReclaimPolicy: Retain\n  config:\n    path: {}\n",
        path("a")
    );
    let e = h.fails(&["apply", "-f", "-"], Some(&two));
    assert!(
        e.contains("only one backup repository can be the default"),
        "{e}"
    );
    assert_eq!(h.repo_names(), ["a", "b"]);
}
