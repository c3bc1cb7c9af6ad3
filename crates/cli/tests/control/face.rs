//! The `backuprepo` face as kubectl and rclone users expect it: errors that name the path,
//! `push --no-clobber`, one way to name a repository in every data verb, a warning for a
//! credential written on the command line, and help that shows only what applies.

use super::home::*;

#[test]
fn data_verbs_name_the_path_and_no_clobber_refuses() {
    let h = Home::new();
    let data = h.local_repo("r");
    let src = h.dir.path().join("f.sql");
    std::fs::write(&src, "select 1;").unwrap();
    let src = src.to_str().unwrap();
    h.ok(&["push", "--repo", "r", src, "d/f.sql"], None);

    let err = h.fails(&["stat", "--repo", "r", "d/nope.sql"], None);
    assert!(
        err.contains(r#"stat "d/nope.sql": directory not found: there is no file or directory "d/nope.sql" in this repository"#),
        "{err}"
    );
    let err = h.fails(&["list", "--repo", "r", "d/f.sql/"], None);
    assert!(
        err.contains(r#""d/f.sql" is a file, not a directory"#),
        "{err}"
    );
    let out = h.dir.path().join("out");
    std::fs::create_dir(&out).unwrap();
    let err = h.fails(
        &["pull", "--repo", "r", "d/f.sql", out.to_str().unwrap()],
        None,
    );
    assert!(
        err.contains(&format!(
            "invalid local path {:?}: it names a directory; give the file to write, e.g. {:?}",
            out.to_str().unwrap(),
            out.join("f.sql").to_str().unwrap()
        )),
        "{err}"
    );

    // --no-clobber: refused, the stored object unchanged; a plain push replaces.
    let other = h.dir.path().join("g.sql");
    std::fs::write(&other, "select 2;").unwrap();
    let other = other.to_str().unwrap();
    let o = h.run(
        &["push", "--repo", "r", "--no-clobber", other, "d/f.sql"],
        None,
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr)
        .contains("exists already and --no-clobber was given; nothing was written"));
    assert_eq!(
        std::fs::read_to_string(data.join("d/f.sql")).unwrap(),
        "select 1;"
    );
    h.ok(&["push", "--repo", "r", other, "d/f.sql"], None);
    assert_eq!(
        std::fs::read_to_string(data.join("d/f.sql")).unwrap(),
        "select 2;"
    );
    let help = h.ok(&["push", "--help"], None);
    assert!(help.contains("is replaced, unless --no-clobber"), "{help}");
}

#[test]
fn every_data_verb_takes_the_repository_as_repo() {
    let h = Home::new();
    h.local_repo("r");
    h.local_repo("other");
    for args in [
        ["gc", "--repo", "r", "--dry-run"].as_slice(),
        ["gc", "r", "--dry-run"].as_slice(),
    ] {
        let out = h.ok(args, None);
        assert!(out.contains("backuprepo/r:"), "{args:?}: {out}");
    }
    let err = h.fails(&["gc", "other", "--repo", "r"], None);
    assert!(err.contains("the repository is named twice"), "{err}");
    let err = h.fails(&["bench", "other", "--repo", "r"], None);
    assert!(err.contains("the repository is named twice"), "{err}");
    // A parse error exits 2, every other failure 1.
    assert_eq!(h.run(&["gc", "--bogus"], None).status.code(), Some(2));
    assert_eq!(
        h.run(&["stat", "--repo", "missing"], None).status.code(),
        Some(1)
    );
}

#[test]
fn a_literal_credential_is_accepted_with_one_warning() {
    let Some((endpoint, bucket, key, secret)) = s3() else {
        return;
    };
    let h = Home::new();
    let key_file = h.dir.path().join("key.txt");
    std::fs::write(&key_file, format!("{key}\n")).unwrap();
    let key_arg = format!("@{}", key_file.display());
    let create = |name: &str, key: &str, secret: &str, stdin: Option<&str>| {
        h.run(
            &[
                "create",
                name,
                "--provider",
                "minio",
                "--bucket",
                &bucket,
                "--endpoint",
                &endpoint,
                "--access-key-id",
                key,
                "--secret-access-key",
                secret,
                "--path-prefix",
                name,
            ],
            stdin,
        )
    };
    // Both on the command line: one warning naming both flags, the repository still created.
    let o = create("lit", &key, &secret, None);
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(o.status.success(), "{err}");
    assert_eq!(err.matches("Warning:").count(), 1, "{err}");
    assert!(
        err.contains("Warning: --access-key-id, --secret-access-key given on the command line: other users can read it in the process list"),
        "{err}"
    );
    assert!(!err.contains(&secret));
    // From a file and standard input: no warning.
    let o = create("files", &key_arg, "-", Some(&secret));
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(o.status.success(), "{err}");
    assert!(!err.contains("Warning"), "{err}");
    // The help and its example show the safe forms.
    let help = h.ok(&["create", "--provider", "minio", "--help"], None);
    assert!(
        help.contains("--secret-access-key <@FILE|-|VALUE>"),
        "{help}"
    );
    assert!(
        help.contains("--secret-access-key @secret-access-key.txt"),
        "{help}"
    );
}

#[test]
fn create_help_shows_what_applies() {
    let h = Home::new();
    // local has no Mount: no PV flags.
    let help = h.ok(&["create", "--provider", "local", "--help"], None);
    assert!(!help.contains("--volume-capacity"), "{help}");
    assert!(!help.contains("--pv-reclaim-policy"), "{help}");
    assert!(help.contains("--path <STRING>"), "{help}");
    // s3 has both: Mount's flags are shown, unless Tool is asked for.
    let both = h.ok(&["create", "--provider", "s3", "--help"], None);
    let tool = h.ok(
        &[
            "create",
            "--provider",
            "s3",
            "--access-method",
            "Tool",
            "--help",
        ],
        None,
    );
    for flag in [
        "--geesefs-memory-limit",
        "--mount-options",
        "--volume-capacity",
    ] {
        assert!(both.contains(flag), "{flag}: {both}");
        assert!(!tool.contains(flag), "{flag}: {tool}");
    }
    assert!(tool.contains("--bucket"), "{tool}");
    // Every description is a sentence.
    for line in both.lines().map(str::trim) {
        if line.starts_with("--")
            || line.is_empty()
            || line.starts_with('[')
            || line == "Print help"
        {
            continue;
        }
        // Without clap's own trailers ([default: ..], [env: ..], [possible values: ..]).
        let mut text = line;
        while let Some(i) = ["[default: ", "[env: ", "[possible values: "]
            .iter()
            .filter_map(|t| text.rfind(t))
            .max()
        {
            text = text[..i].trim_end();
        }
        if both.contains(&format!("\n          {line}")) {
            assert!(text.ends_with('.'), "no full stop: {line:?}");
        }
    }
    // Hidden flags are still accepted, as kbcli accepts them.
    let data = h.dir.path().join("d");
    std::fs::create_dir(&data).unwrap();
    h.ok(
        &[
            "create",
            "x",
            "--provider",
            "local",
            "--path",
            data.to_str().unwrap(),
            "--volume-capacity",
            "1Gi",
        ],
        None,
    );
}

#[test]
fn apply_explains_the_default_access_method_and_unknown_config_keys() {
    let h = Home::new();
    let data = h.dir.path().join("d");
    std::fs::create_dir(&data).unwrap();
    let manifest = format!(
        "apiVersion: dataprotection.kubeblocks.io/v1alpha1\nkind: BackupRepo\nmetadata:\n  name: nomethod\nspec:\n  storageProviderRef: local\n  pvReclaimPolicy: Retain\n  config:\n    path: {}\n    pth: typo\n    zzz: x\n",
        data.display()
    );
    let o = h.run(&["apply", "-f", "-"], Some(&manifest));
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(
        err.contains(r#"spec.config.pth is not a parameter of storage provider "local", and is ignored; did you mean "path"?"#),
        "{err}"
    );
    assert!(err.contains("spec.config.zzz is not a parameter of storage provider \"local\", and is ignored; its parameters are: path"), "{err}");
    let (status, reason, message) = h.condition("nomethod", "StorageProviderReady");
    assert_eq!(
        (status.as_str(), reason.as_str()),
        ("False", "InvalidStorageProvider")
    );
    assert_eq!(
        message,
        r#"both StorageClassTemplate and PersistentVolumeClaimTemplate are empty: spec.accessMethod is not set, so it is Mount (as in KubeBlocks), and provider "local" supports only Tool; set spec.accessMethod: Tool"#
    );
    assert!(err.contains(&message), "apply says it too: {err}");
    // Following the advice makes it Ready.
    let fixed = manifest.replace(
        "  pvReclaimPolicy: Retain\n",
        "  accessMethod: Tool\n  pvReclaimPolicy: Retain\n",
    );
    h.ok(&["apply", "-f", "-"], Some(&fixed));
    assert_eq!(h.phase("nomethod"), "Ready");
}

#[test]
fn usage_stays_current_after_our_writes_and_overlaps_are_warned() {
    let h = Home::new();
    let data = h.local_repo("a");
    let src = h.dir.path().join("f.sql");
    std::fs::write(&src, vec![b'x'; 3000]).unwrap();
    let src = src.to_str().unwrap();
    let row = |name: &str| -> Vec<String> {
        let out = h.ok(&["list"], None);
        assert!(
            out.starts_with(
                "NAME   STATUS   STORAGE-PROVIDER   ACCESS-METHOD   DEFAULT   FILES   TOTAL-SIZE"
            ),
            "{out}"
        );
        out.lines()
            .find(|l| l.starts_with(&format!("{name} ")))
            .unwrap()
            .split_whitespace()
            .map(str::to_string)
            .collect()
    };
    assert_eq!(row("a")[5..], ["0", "0", "B"]);
    h.ok(&["push", "--repo", "a", src, "ns1/x/f.sql"], None);
    h.ok(&["push", "--repo", "a", src, "ns1/x/g.sql"], None);
    assert_eq!(row("a")[5..], ["2", "6.0", "kB"]);
    // Replacing an object changes bytes, not the count.
    std::fs::write(h.dir.path().join("small"), b"s").unwrap();
    h.ok(
        &[
            "push",
            "--repo",
            "a",
            h.dir.path().join("small").to_str().unwrap(),
            "ns1/x/g.sql",
        ],
        None,
    );
    assert_eq!(row("a")[5..], ["2", "3.0", "kB"]);
    h.ok(&["rm", "--repo", "a", "-r", "ns1/x"], None);
    assert_eq!(row("a")[5..], ["0", "0", "B"]);
    let u = &h.repo("a")["status"]["usage"];
    assert_eq!(
        (u["objectCount"].as_u64(), u["totalBytes"].as_u64()),
        (Some(0), Some(0))
    );
    // The figures agree with a fresh measurement.
    h.ok(&["push", "--repo", "a", src, "ns2/f.sql"], None);
    h.ok(&["check", "a"], None);
    assert_eq!(row("a")[5..], ["1", "3.0", "kB"]);
    let wide = h.ok(&["list", "-o", "wide"], None);
    let header: Vec<&str> = wide.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(
        header[7..],
        ["LOCATION", "LAST-CHECK", "MEASURED", "MESSAGE"],
        "{wide}"
    );
    assert!(wide.contains(data.to_str().unwrap()), "{wide}");
    let desc = h.ok(&["describe", "a"], None);
    assert!(desc.contains("Files:              1\n"), "{desc}");
    assert!(desc.contains(" (measured "), "{desc}");
    // A Tool repository has no PV or PVC to show, and no empty Message lines.
    for absent in [
        "VolumeCapacity",
        "BackupPVCName",
        "PvReclaimPolicy",
        "Message:            \n",
    ] {
        assert!(!desc.contains(absent), "{absent}: {desc}");
    }

    // A second repository inside the first one's directory: warned at create and at apply.
    let inner = data.join("inner");
    std::fs::create_dir(&inner).unwrap();
    let o = h.run(
        &[
            "create",
            "b",
            "--provider",
            "local",
            "--path",
            inner.to_str().unwrap(),
        ],
        None,
    );
    assert!(o.status.success());
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(
        err.contains(&format!(
            "Warning: backuprepo b ({}) has a location inside that of backuprepo a ({})",
            inner.display(),
            data.display()
        )),
        "{err}"
    );
    let manifest = format!(
        "apiVersion: dataprotection.kubeblocks.io/v1alpha1\nkind: BackupRepo\nmetadata:\n  name: c\nspec:\n  storageProviderRef: local\n  accessMethod: Tool\n  pvReclaimPolicy: Retain\n  config:\n    path: {}\n",
        data.display()
    );
    let o = h.run(&["apply", "-f", "-"], Some(&manifest));
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(err.contains("backuprepo c ("), "{err}");
    assert!(
        err.contains("has the same location as backuprepo a"),
        "{err}"
    );
    assert!(
        err.contains("has a location that contains that of backuprepo b"),
        "{err}"
    );
    // A sibling directory is not inside.
    let beside = h.dir.path().join("store-a2");
    std::fs::create_dir(&beside).unwrap();
    let o = h.run(
        &[
            "create",
            "d",
            "--provider",
            "local",
            "--path",
            beside.to_str().unwrap(),
        ],
        None,
    );
    assert!(!String::from_utf8_lossy(&o.stderr).contains("Warning"));
}
