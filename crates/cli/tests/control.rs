//! The control plane end to end, through the real binary and the local store: every kubectl and
//! kbcli tab of the seed document (read at run time from ../shared/seed, with the endpoint
//! pointed at the SeaweedFS test server), the "Automatic BackupRepo configuration" values file,
//! FTP, Azure Blob and local repositories, the default-repository rules, and a table of bad
//! inputs — each a clear error or condition, nothing stored half-way, no secret printed.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::process::{Command, Stdio};

use serde_json::Value as Json;
#[path = "control/home.rs"]
mod home;

#[path = "control/grants.rs"]
mod grants;

#[path = "control/face.rs"]
mod face;

#[path = "control/kubectl.rs"]
mod kubectl;

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
    if let (Some(host), Some(port), Some(user), Some(pass)) = (
        var("BR_FTP_HOST"),
        var("BR_FTP_PORT"),
        var("BR_FTP_USER"),
        var("BR_FTP_PASS"),
    ) {
        h.ok(
            &[
                "create",
                "ftp-repo",
                "--provider",
                "ftp",
                "--ftp-host",
                &host,
                "--ftp-port",
                &port,
                "--ftp-user",
                &user,
                "--ftp-password",
                &pass,
            ],
            None,
        );
        assert_eq!(h.phase("ftp-repo"), "Ready");
    } else {
        assert!(
            var("BR_REQUIRE_SERVERS").is_none(),
            "FTP server variables missing"
        );
    }
    if let (Some(ep), Some(acct), Some(k), Some(c)) = (
        var("BR_AZ_ENDPOINT"),
        var("BR_AZ_ACCOUNT"),
        var("BR_AZ_KEY"),
        var("BR_AZ_CONTAINER"),
    ) {
        h.ok(
            &[
                "create",
                "az-repo",
                "--provider",
                "azureblob",
                "--container",
                &c,
                "--account-name",
                &acct,
                "--account-key",
                &k,
                "--endpoint",
                &ep,
            ],
            None,
        );
        assert_eq!(h.phase("az-repo"), "Ready");
        let d = h.ok(&["describe", "az-repo"], None);
        assert!(
            d.contains("multipart upload") && d.contains("Passed"),
            "{d}"
        );
    } else {
        assert!(
            var("BR_REQUIRE_SERVERS").is_none(),
            "Azurite variables missing"
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

#[test]
fn bad_inputs_are_clear_and_store_nothing() {
    let h = Home::new();
    let data = h.dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    let data = data.display().to_string();

    // Malformed YAML: the location, nothing stored.
    let e = h.fails(
        &["apply", "-f", "-"],
        Some("apiVersion: v1\nkind: Secret\nmetadata: [oops\n"),
    );
    assert!(e.contains("line"), "{e}");
    // Unknown kind.
    let e = h.fails(
        &["apply", "-f", "-"],
        Some("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n"),
    );
    assert!(e.contains("ConfigMap"), "{e}");
    // A bad document among good ones: nothing of the manifest is stored.
    let mixed = format!(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: s\n  namespace: kb-system\nstringData:\n  accessKeyId: AKIA\n---\napiVersion: dataprotection.kubeblocks.io/v1alpha1\nkind: BackupRepo\nmetadata:\n  name: good\nspec:\n  storageProviderRef: local\n  pvReclaimPolicy: Retain\n  config:\n    path: {data}\n---\napiVersion: dataprotection.kubeblocks.io/v1alpha1\nkind: BackupRepo\nmetadata:\n  name: bad\nspec:\n  storageProviderRef: local\n  pvReclaimPolicy: Sometimes\n"
    );
    let e = h.fails(&["apply", "-f", "-"], Some(&mixed));
    assert!(
        e.contains("Sometimes") || e.contains("pvReclaimPolicy"),
        "{e}"
    );
    assert!(h.repo_names().is_empty());
    // Unknown fields are reported, not silently dropped.
    let typo = format!(
        "apiVersion: dataprotection.kubeblocks.io/v1alpha1\nkind: BackupRepo\nmetadata:\n  name: typo\nspec:\n  storageProviderRef: local\n  accessMethod: Tool\n  pvReclaimPolicy: Retain\n  pathPrefx: x\n  config:\n    path: {data}\n"
    );
    let out = h.run(&["apply", "-f", "-"], Some(&typo));
    assert!(String::from_utf8_lossy(&out.stderr).contains("pathPrefx"));
    h.ok(&["delete", "typo", "--yes"], None);

    // Unknown provider, missing and mistyped flags, unsupported access method.
    let e = h.fails(&["create", "x", "--provider", "nope"], None);
    assert!(e.contains("storage provider \"nope\" is not found"), "{e}");
    let e = h.fails(&["create", "x"], None);
    assert!(e.contains("please specify the --provider flag"), "{e}");
    let e = h.fails(
        &[
            "create",
            "x",
            "--provider",
            "s3",
            "--region",
            "r",
            "--access-key-id",
            "k",
            "--secret-access-key",
            SECRET,
        ],
        None,
    );
    assert!(e.contains("--bucket"), "{e}");
    let e = h.fails(
        &[
            "create",
            "x",
            "--provider",
            "s3",
            "--region",
            "r",
            "--bucket",
            "b",
            "--access-key-id",
            "k",
            "--secret-access-key",
            SECRET,
            "--geesefs-memory-limit",
            "lots",
        ],
        None,
    );
    assert!(e.contains("geesefs-memory-limit"), "{e}");
    let e = h.fails(
        &[
            "create",
            "x",
            "--provider",
            "ftp",
            "--access-method",
            "Mount",
            "--ftp-host",
            "h",
            "--ftp-user",
            "u",
            "--ftp-password",
            SECRET,
        ],
        None,
    );
    assert!(e.contains("doesn't support \"Mount\" access method"), "{e}");
    let e = h.fails(
        &[
            "create",
            "x",
            "--provider",
            "local",
            "--path",
            "relative/dir",
        ],
        None,
    );
    assert!(e.contains("path"), "{e}");
    assert!(
        h.repo_names().is_empty(),
        "nothing stored by failed creates"
    );

    // Missing Secret: a condition that names it.
    let missing = "apiVersion: dataprotection.kubeblocks.io/v1alpha1\nkind: BackupRepo\nmetadata:\n  name: nosecret\nspec:\n  storageProviderRef: s3-compatible\n  accessMethod: Tool\n  pvReclaimPolicy: Retain\n  config:\n    bucket: b\n    endpoint: http://127.0.0.1:9\n  credential:\n    name: absent\n    namespace: kb-system\n".to_string();
    h.ok(&["apply", "-f", "-"], Some(&missing));
    let (st, reason, msg) = h.condition("nosecret", "ParametersChecked");
    assert_eq!(
        (st.as_str(), reason.as_str()),
        ("False", "CredentialSecretNotFound")
    );
    assert!(msg.contains("kb-system/absent"), "{msg}");
    assert_eq!(h.phase("nosecret"), "Failed");
    // Using a repository that is not Ready is refused.
    let e = h.fails(&["push", "--repo", "nosecret", "/etc/hostname", "x"], None);
    assert!(e.contains("is not ready"), "{e}");
    // Its provider cannot be changed.
    let e = h.fails(
        &["apply", "-f", "-"],
        Some(&missing.replace("s3-compatible", "minio")),
    );
    assert!(e.contains("StorageProviderRef is immutable"), "{e}");
    h.ok(&["delete", "nosecret", "--yes"], None);

    // Unreachable endpoint: Failed, with the endpoint in the message; dry run stores nothing.
    let e = h.fails(
        &[
            "create",
            "x",
            "--provider",
            "minio",
            "--bucket",
            "b",
            "--endpoint",
            "http://127.0.0.1:9",
            "--access-key-id",
            "k",
            "--secret-access-key",
            SECRET,
            "--dry-run",
        ],
        None,
    );
    assert!(e.contains("nothing was stored"), "{e}");
    assert!(h.repo_names().is_empty());

    if let Some((endpoint, bucket, key, _)) = s3() {
        // Wrong secret key: a credentials message, the secret never shown.
        let out = h.run(
            &[
                "create",
                "wrong",
                "--provider",
                "minio",
                "--bucket",
                &bucket,
                "--endpoint",
                &endpoint,
                "--access-key-id",
                &key,
                "--secret-access-key",
                SECRET,
            ],
            None,
        );
        assert!(!out.status.success());
        let e = String::from_utf8_lossy(&out.stderr);
        assert!(
            e.contains("credentials") || e.contains("signature") || e.contains("access"),
            "{e}"
        );
        assert_eq!(h.phase("wrong"), "Failed");
        h.ok(&["describe", "wrong"], None);
        h.ok(&["list", "-o", "yaml"], None);
        h.ok(&["delete", "wrong", "--yes"], None);
        // Missing bucket: named, and not created.
        let out = h.run(
            &[
                "create",
                "nobucket",
                "--provider",
                "minio",
                "--bucket",
                "no-such-bucket-br",
                "--endpoint",
                &endpoint,
                "--access-key-id",
                &key,
                "--secret-access-key",
                &var("BR_S3_SECRET_KEY").unwrap(),
            ],
            None,
        );
        assert!(!out.status.success());
        let e = String::from_utf8_lossy(&out.stderr);
        assert!(
            e.contains("does not exist") && e.contains("never creates"),
            "{e}"
        );
    }
    h.secret_only_in_private_files();
}

#[test]
fn recheck_and_recovery() {
    let h = Home::new();
    let data = h.dir.path().join("later");
    let path = data.display().to_string();
    let out = h.run(
        &["create", "r", "--provider", "local", "--path", &path],
        None,
    );
    assert!(!out.status.success(), "the directory does not exist yet");
    assert_eq!(h.phase("r"), "Failed");
    std::fs::create_dir(&data).unwrap();
    // `check` re-runs the probe now; the repository recovers by itself.
    h.ok(&["check", "r"], None);
    assert_eq!(h.phase("r"), "Ready");
    let before = h.repo("r")["status"]["lastCheckTime"].clone();
    // Time passes by the clock setting, not by sleeping.
    let later = |offset: &str, args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_backuprepo"))
            .args(args)
            .env("BACKUPREPO_HOME", h.path())
            .env("BACKUPREPO_TIME_OFFSET", offset)
            .env("BACKUPREPO_RECHECK_INTERVAL", "1")
            .output()
            .unwrap()
    };
    assert!(later("2", &["check", "r"]).status.success());
    assert_ne!(h.repo("r")["status"]["lastCheckTime"], before);
    // Storage gone: the periodic re-check (interval 1 s here) notices once it is due.
    std::fs::remove_dir_all(&data).unwrap();
    let out = later("4", &["get", "backuprepo", "r", "-o", "json"]);
    let v: Json = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["status"]["phase"], "Failed");
}

/// `check --all --watch`: a long-running re-check loop; a Failed repository turns Ready by
/// itself once its storage appears, and the loop reports the change.
#[test]
fn watch_reports_recovery() {
    use std::io::{BufRead, BufReader};
    let h = Home::new();
    let data = h.dir.path().join("late");
    let out = h.run(
        &[
            "create",
            "w",
            "--provider",
            "local",
            "--path",
            data.to_str().unwrap(),
        ],
        None,
    );
    assert!(!out.status.success());
    let mut child = Command::new(env!("CARGO_BIN_EXE_backuprepo"))
        .args(["check", "--all", "--watch", "1"])
        .env("BACKUPREPO_HOME", h.path())
        .env("BACKUPREPO_RETRY_INTERVAL", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    assert!(first.contains("backuprepo/w Failed"), "{first}");
    std::fs::create_dir(&data).unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let mut recovered = false;
    while std::time::Instant::now() < deadline {
        let Some(Ok(line)) = lines.next() else { break };
        if line.contains("backuprepo/w Ready") {
            recovered = true;
            break;
        }
    }
    child.kill().ok();
    child.wait().ok();
    assert!(recovered, "the watch loop did not report the recovery");
}

/// `crds` and `install --print` print what the deploy crate generates (and what is committed
/// under deploy/), plus the values file's repository.
#[test]
fn kubernetes_manifests_are_printed() {
    let h = Home::new();
    let crds = h.ok(&["crds"], None);
    // Read at run time: a compiled-in path could name another checkout sharing the build dir.
    let root = format!(
        "{}/../../deploy",
        std::env::var("CARGO_MANIFEST_DIR").expect("run by cargo test")
    );
    for f in ["crds/backuprepos.yaml", "crds/storageproviders.yaml"] {
        let committed = std::fs::read_to_string(format!("{root}/{f}")).unwrap();
        let body: String = committed
            .lines()
            .filter(|l| !l.starts_with('#'))
            .collect::<Vec<_>>()
            .join("\n");
        assert!(
            crds.contains(body.trim().trim_start_matches("---").trim()),
            "{f} differs from `backuprepo crds`"
        );
    }
    let values = h.dir.path().join("values.yaml");
    std::fs::write(
        &values,
        "backupRepo:\n  create: true\n  storageProvider: s3\n  config:\n    region: cn-northwest-1\n    bucket: test-kb-backup\n  secrets:\n    accessKeyId: AKIA\n    secretAccessKey: Sup3r-Secret-Value-9f8e\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_backuprepo"))
        .args([
            "install",
            "--print",
            "-f",
            values.to_str().unwrap(),
            "--namespace",
            "ops",
        ])
        .env("BACKUPREPO_HOME", h.path())
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let kinds: Vec<String> = serde_yaml_ng::Deserializer::from_str(&text)
        .map(|d| {
            let v = <serde_yaml_ng::Value as serde::Deserialize>::deserialize(d).unwrap();
            v["kind"].as_str().unwrap_or_default().to_string()
        })
        .filter(|k| !k.is_empty())
        .collect();
    for k in [
        "Namespace",
        "CustomResourceDefinition",
        "StorageProvider",
        "ServiceAccount",
        "ClusterRole",
        "ClusterRoleBinding",
        "Deployment",
        "ValidatingAdmissionPolicy",
        "ValidatingAdmissionPolicyBinding",
        "Secret",
        "BackupRepo",
    ] {
        assert!(kinds.iter().any(|x| x == k), "{k} missing from {kinds:?}");
    }
    assert!(text.contains("namespace: ops"));
    // Nothing was installed in the local store: there is not even one.
    assert!(!h.path().exists());
}

/// Credentials off the command line: `-` (standard input), `@FILE`, or the flag's environment
/// variable. Each repository is Ready only if the secret arrived intact.
#[test]
fn credentials_from_stdin_file_and_environment() {
    let Some((endpoint, bucket, key, secret)) = s3() else {
        return;
    };
    let h = Home::new();
    let base = |name: &str| -> Vec<String> {
        [
            "create",
            name,
            "--provider",
            "minio",
            "--bucket",
            &bucket,
            "--endpoint",
            &endpoint,
            "--access-key-id",
            &key,
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    };
    // Standard input (with the newline `echo` adds).
    let mut args = base("from-stdin");
    args.extend(["--secret-access-key".into(), "-".into()]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    h.ok(&args, Some(&format!("{secret}\n")));
    assert_eq!(h.phase("from-stdin"), "Ready");
    // A file.
    let file = h.dir.path().join("secret.txt");
    std::fs::write(&file, format!("{secret}\n")).unwrap();
    let mut args = base("from-file");
    args.extend(["--secret-access-key".into(), format!("@{}", file.display())]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    h.ok(&args, None);
    assert_eq!(h.phase("from-file"), "Ready");
    // The environment.
    let args = base("from-env");
    let out = Command::new(env!("CARGO_BIN_EXE_backuprepo"))
        .args(&args)
        .env("BACKUPREPO_HOME", h.path())
        .env("BACKUPREPO_SECRET_ACCESS_KEY", &secret)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(h.phase("from-env"), "Ready");
    // A file that is not there, and an empty value: refused, nothing created.
    let mut args = base("bad");
    args.extend(["--secret-access-key".into(), "@/nonexistent/secret".into()]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let e = h.fails(&args, None);
    // The value is not echoed: a secret that begins with @ would be printed.
    assert!(
        e.contains("--secret-access-key @FILE: cannot read the file") && !e.contains("nonexistent"),
        "{e}"
    );
    let mut args = base("bad");
    args.extend(["--secret-access-key".into(), "-".into()]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let e = h.fails(&args, Some("\n"));
    assert!(e.contains("--secret-access-key is empty"), "{e}");
    assert!(!h.repo_names().contains(&"bad".to_string()));
    // `update` takes the same forms (and never reads the environment by itself).
    h.ok(
        &[
            "update",
            "from-file",
            "--secret-access-key",
            &format!("@{}", file.display()),
        ],
        None,
    );
    assert_eq!(h.phase("from-file"), "Ready");
    h.secret_only_in_private_files();
}

/// A passing check also clears what interrupted work left, older than a day; younger files
/// (a push in flight) stay.
#[test]
fn check_clears_old_leftovers() {
    let h = Home::new();
    let data = h.local_repo("r");
    let tmp = data.join(".backuprepo-tmp");
    std::fs::create_dir_all(&tmp).unwrap();
    let old = tmp.join("push-old");
    let young = tmp.join("push-young");
    std::fs::write(&old, b"left by a killed push").unwrap();
    std::fs::write(&young, b"a push in flight").unwrap();
    let two_days = std::time::Duration::from_secs(2 * 86400);
    std::fs::File::options()
        .write(true)
        .open(&old)
        .unwrap()
        .set_modified(std::time::SystemTime::now() - two_days)
        .unwrap();
    h.ok(&["check", "r"], None);
    assert!(!old.exists(), "the day-old temporary file was removed");
    assert!(young.exists(), "the young one stays");
}

/// `backuprepo bench NAME` measures the repository's own storage, prints the table and a
/// recommendation, and leaves nothing in it; a memory limit below every setting is an error
/// that says how to fix it.
#[test]
fn bench_measures_a_repository_and_leaves_nothing() {
    let h = Home::new();
    let data = h.local_repo("r");
    let out = h.ok(&["bench", "r", "--size", "4MiB"], None);
    assert!(out.contains("CHUNK_SIZE"), "{out}");
    assert!(out.contains("recommended: "), "{out}");
    assert!(out.contains("pull: "), "{out}");
    let left: Vec<_> = walkdir(&data);
    assert!(left.is_empty(), "bench left {left:?}");
    let err = h.fails(&["bench", "r", "--max-memory", "1MiB"], None);
    assert!(err.contains("raise it"), "{err}");
}

fn walkdir(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walkdir(&p));
        }
        out.push(p);
    }
    out
}

/// `backuprepo.io/read-only: "true"` on an S3 repository (SeaweedFS): push, rm, gc and bench
/// are refused naming the annotation, pull, list, stat and verify keep working, the check
/// writes nothing and the repository stays Ready with a ReadOnly condition; it cannot be the
/// default. Removing the annotation allows writes again.
#[test]
fn read_only_repository_refuses_writes_and_serves_reads() {
    let Some((_, bucket, _, _)) = s3() else {
        return;
    };
    let h = Home::new();
    let prefix = format!("ro-{}", std::process::id());
    h.s3_repo("ro", &bucket, &prefix);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("dump.sql");
    std::fs::write(&file, b"-- a backup taken before the migration\n").unwrap();
    h.ok(
        &[
            "push",
            "--repo",
            "ro",
            file.to_str().unwrap(),
            "db/dump.sql",
        ],
        None,
    );

    h.ok(
        &[
            "annotate",
            "backuprepo",
            "ro",
            "backuprepo.io/read-only=true",
        ],
        None,
    );
    let r = h.repo("ro");
    assert_eq!(r["status"]["phase"], "Ready", "{r}");
    let conds = r["status"]["conditions"].as_array().unwrap();
    assert!(
        conds
            .iter()
            .any(|c| c["type"] == "ReadOnly" && c["status"] == "True"),
        "{conds:?}"
    );
    // The check wrote nothing: put, multipart and delete were not run; get read the backup.
    let checks = r["status"]["checks"].as_array().unwrap();
    let result = |op: &str| {
        checks
            .iter()
            .find(|c| c["operation"] == op)
            .map(|c| c["result"].as_str().unwrap().to_string())
    };
    assert_eq!(result("put").as_deref(), Some("Skipped"), "{checks:?}");
    assert_eq!(result("delete").as_deref(), Some("Skipped"), "{checks:?}");
    assert_eq!(result("get").as_deref(), Some("Passed"), "{checks:?}");
    assert_eq!(result("list").as_deref(), Some("Passed"), "{checks:?}");

    for args in [
        vec![
            "push",
            "--repo",
            "ro",
            file.to_str().unwrap(),
            "db/other.sql",
        ],
        vec!["rm", "--repo", "ro", "db/dump.sql"],
        vec!["gc", "ro"],
        vec!["bench", "ro"],
    ] {
        let err = h.fails(&args, None);
        assert!(err.contains("backuprepo.io/read-only"), "{args:?}: {err}");
    }
    let out = dir.path().join("restored.sql");
    h.ok(
        &["pull", "--repo", "ro", "db/dump.sql", out.to_str().unwrap()],
        None,
    );
    assert_eq!(std::fs::read(&out).unwrap(), std::fs::read(&file).unwrap());
    assert!(h
        .ok(&["list", "--repo", "ro", "db/"], None)
        .contains("dump.sql"));
    assert!(h
        .ok(&["verify", "--repo", "ro"], None)
        .contains("1 objects verified, 0 damaged"));
    // The check says so.
    let checked = h.ok(&["check", "ro"], None);
    assert!(
        checked.contains("ReadOnly: the repository is read-only"),
        "{checked}"
    );
    // Never the default, whichever comes first.
    let err = h.fails(&["update", "ro", "--default"], None);
    assert!(
        err.contains("cannot be both the default and read-only"),
        "{err}"
    );
    h.ok(
        &["annotate", "backuprepo", "ro", "backuprepo.io/read-only-"],
        None,
    );
    h.ok(&["update", "ro", "--default"], None);
    let err = h.fails(
        &[
            "annotate",
            "backuprepo",
            "ro",
            "backuprepo.io/read-only=true",
        ],
        None,
    );
    assert!(
        err.contains("cannot be both the default and read-only"),
        "{err}"
    );
    // Writable again: the object the test wrote is removed.
    h.ok(&["rm", "--repo", "ro", "db/dump.sql"], None);
    let r = h.repo("ro");
    let conds = r["status"]["conditions"].as_array().unwrap();
    assert!(!conds.iter().any(|c| c["type"] == "ReadOnly"), "{conds:?}");
}

/// `backuprepo.io/suspend: "true"`: periodic re-checks stop (time passes by the clock
/// setting), `check NAME` still checks and says the repository is suspended, and the
/// condition is not a failure. Without the annotation the same time passing re-checks.
#[test]
fn suspended_repository_skips_periodic_checks() {
    let h = Home::new();
    let data = h.local_repo("s");
    let later = |offset: &str, args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_backuprepo"))
            .args(args)
            .env("BACKUPREPO_HOME", h.path())
            .env("BACKUPREPO_TIME_OFFSET", offset)
            .env("BACKUPREPO_RECHECK_INTERVAL", "1")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let checked_at = |offset: &str| {
        let v: Json =
            serde_json::from_str(&later(offset, &["get", "backuprepo", "s", "-o", "json"]))
                .unwrap();
        v["status"]["lastCheckTime"].clone()
    };
    h.ok(
        &["annotate", "backuprepo", "s", "backuprepo.io/suspend=true"],
        None,
    );
    let before = h.repo("s")["status"]["lastCheckTime"].clone();
    // The storage goes away; a suspended repository is not polled, so it does not notice.
    std::fs::remove_dir_all(&data).unwrap();
    assert_eq!(checked_at("5"), before);
    let r = h.repo("s");
    assert_eq!(r["status"]["phase"], "Ready");
    let conds = r["status"]["conditions"].as_array().unwrap();
    assert!(
        conds
            .iter()
            .any(|c| c["type"] == "Suspended" && c["status"] == "True"),
        "{conds:?}"
    );
    // On demand it checks, and says it is suspended.
    let out = h.run(&["check", "s"], None);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success());
    assert!(
        text.contains("Suspended: periodic checks are suspended"),
        "{text}"
    );
    std::fs::create_dir(&data).unwrap();
    h.ok(&["check", "s"], None);
    let before = h.repo("s")["status"]["lastCheckTime"].clone();
    // Resumed: the same time passing re-checks.
    h.ok(
        &["annotate", "backuprepo", "s", "backuprepo.io/suspend-"],
        None,
    );
    assert_ne!(checked_at("5"), before);
    let conds = h.repo("s")["status"]["conditions"].clone();
    assert!(!conds
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c["type"] == "Suspended"));
}

/// `status.usage`: measured after a check (totals and per top-level directory), shown by
/// `list` and `describe` without scanning the storage (an object added behind the store's back
/// shows only after the next check), with its age.
#[test]
fn usage_is_measured_after_checks_and_listed_without_a_scan() {
    let h = Home::new();
    let data = h.local_repo("u");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("dump.sql");
    std::fs::write(&file, vec![b'x'; 1000]).unwrap();
    for target in ["ns-a/b1/dump.sql", "ns-a/b2/dump.sql", "ns-b/b3/dump.sql"] {
        h.ok(
            &["push", "--repo", "u", file.to_str().unwrap(), target],
            None,
        );
    }
    h.ok(&["check", "u"], None);
    let usage = h.repo("u")["status"]["usage"].clone();
    assert_eq!(usage["objectCount"], 3, "{usage}");
    assert_eq!(usage["totalBytes"], 3000, "{usage}");
    assert_eq!(usage["byPrefix"]["ns-a"]["objectCount"], 2, "{usage}");
    assert_eq!(usage["byPrefix"]["ns-b"]["totalBytes"], 1000, "{usage}");
    let row = |out: &str| {
        out.lines()
            .find(|l| l.starts_with("u "))
            .unwrap_or_default()
            .to_string()
    };
    let listed = h.ok(&["list"], None);
    assert!(row(&listed).contains(" 3 "), "{listed}");
    assert!(row(&listed).contains("3.0 kB"), "{listed}");
    // Written behind the store's back: list does not scan, so it still says 3.
    std::fs::create_dir_all(data.join("ns-c")).unwrap();
    std::fs::write(data.join("ns-c/extra"), b"12345").unwrap();
    assert!(row(&h.ok(&["list"], None)).contains(" 3 "));
    let described = h.ok(&["describe", "u"], None);
    assert!(described.contains("Usage:"), "{described}");
    assert!(described.contains("Measured:"), "{described}");
    assert!(described.contains("ago, at "), "{described}");
    assert!(described.contains("ns-a/"), "{described}");
    // The next check measures again.
    h.ok(&["check", "u"], None);
    assert!(row(&h.ok(&["list"], None)).contains(" 4 "));
}

/// Versioning and object lock (SeaweedFS bucket created with object lock, default retention
/// GOVERNANCE for a day): the check records them in status.capabilities and explains them in
/// conditions and describe; `rm` of a backup under retention is refused before anything is
/// deleted. The plain bucket shows versioning off and no lock.
#[test]
fn object_lock_is_recorded_and_locked_backups_are_not_removed() {
    let Some((_, bucket, _, _)) = s3() else {
        return;
    };
    let locked = var("BR_S3_LOCKED_BUCKET").expect("scripts/test-servers.sh exports it");
    let h = Home::new();
    let prefix = format!("lock-{}", std::process::id());
    for (name, b) in [("locked", locked.as_str()), ("plain", bucket.as_str())] {
        h.s3_repo(name, b, &prefix);
    }
    let r = h.repo("locked");
    let caps = &r["status"]["capabilities"];
    assert_eq!(caps["versioning"], "Enabled", "{r}");
    assert_eq!(caps["objectLock"]["mode"], "GOVERNANCE", "{r}");
    assert_eq!(caps["objectLock"]["days"], 1, "{r}");
    assert_eq!(r["status"]["phase"], "Ready");
    let described = h.ok(&["describe", "locked"], None);
    assert!(described.contains("ObjectLocked"), "{described}");
    assert!(
        described.contains("GOVERNANCE mode for 1 days"),
        "{described}"
    );
    assert!(described.contains("Versioned"), "{described}");
    assert!(
        described.contains("Object Lock:        on (GOVERNANCE, 1 days)"),
        "{described}"
    );
    let plain = h.repo("plain");
    assert_eq!(
        plain["status"]["capabilities"]["versioning"], "Off",
        "{plain}"
    );
    assert!(
        plain["status"]["capabilities"].get("objectLock").is_none(),
        "{plain}"
    );

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("dump.sql");
    std::fs::write(&file, b"-- locked for a day\n").unwrap();
    h.ok(
        &[
            "push",
            "--repo",
            "locked",
            file.to_str().unwrap(),
            "ns/b1/dump.sql",
        ],
        None,
    );
    for args in [
        vec!["rm", "--repo", "locked", "ns/b1/dump.sql"],
        vec!["rm", "--repo", "locked", "-r", "ns/"],
    ] {
        let err = h.fails(&args, None);
        assert!(err.contains("nothing was deleted"), "{args:?}: {err}");
        assert!(
            err.contains("GOVERNANCE retention until"),
            "{args:?}: {err}"
        );
    }
    assert!(h
        .ok(&["list", "--repo", "locked", "-r", "/"], None)
        .contains("ns/b1/dump.sql"));
    // On the plain bucket the same rm works.
    h.ok(
        &[
            "push",
            "--repo",
            "plain",
            file.to_str().unwrap(),
            "ns/b1/dump.sql",
        ],
        None,
    );
    h.ok(&["rm", "--repo", "plain", "-r", "ns/"], None);
}

/// On a terminal, a required credential that is not given is asked for without echo (here a
/// pseudo-terminal from util-linux `script`): the repository is created with the typed value
/// (Ready: the storage accepted it), and the value never shows on the terminal.
#[test]
fn a_missing_credential_is_prompted_for_without_echo() {
    let Some((endpoint, bucket, key, secret)) = s3() else {
        return;
    };
    if std::process::Command::new("script")
        .arg("--version")
        .output()
        .is_err()
    {
        panic!("util-linux `script` is needed to give the test a terminal");
    }
    let h = Home::new();
    let cmd = format!(
        "{} create typed --provider minio --bucket {bucket} --endpoint {endpoint} --access-key-id {key} --path-prefix prompt-{}",
        env!("CARGO_BIN_EXE_backuprepo"),
        std::process::id()
    );
    let mut child = Command::new("script")
        .args(["-qec", &cmd, "/dev/null"])
        .env("BACKUPREPO_HOME", h.path())
        .env_remove("BACKUPREPO_SECRET_ACCESS_KEY")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Read the terminal as it comes; type the secret once the prompt is up (input typed
    // before the terminal's echo is off would show).
    let mut stdout = child.stdout.take().unwrap();
    let screen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let reader = {
        let screen = screen.clone();
        std::thread::spawn(move || {
            use std::io::Read;
            let mut buf = [0u8; 1024];
            while let Ok(n) = stdout.read(&mut buf) {
                if n == 0 {
                    break;
                }
                screen.lock().unwrap().extend_from_slice(&buf[..n]);
            }
        })
    };
    let prompted = (0..600).any(|_| {
        std::thread::sleep(std::time::Duration::from_millis(50));
        String::from_utf8_lossy(&screen.lock().unwrap()).contains("(input is not shown): ")
    });
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(format!("{secret}\n").as_bytes()).unwrap();
    let status = child.wait().unwrap();
    drop(stdin);
    reader.join().unwrap();
    let shown = String::from_utf8_lossy(&screen.lock().unwrap()).into_owned();
    assert!(prompted, "no prompt: {shown}");
    assert!(status.success(), "{shown}");
    assert!(
        shown.contains("secret-access-key (input is not shown): "),
        "{shown}"
    );
    assert!(!shown.contains(&secret), "the secret was echoed: {shown}");
    assert_eq!(h.phase("typed"), "Ready", "{shown}");
}
