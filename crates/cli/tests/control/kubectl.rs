//! kubectl habits on the local store: `-o name|jsonpath|custom-columns|wide`, several names
//! and `KIND/NAME`, `--ignore-not-found`, `apply -f DIR` and several documents, and the
//! Secrets `apply` and `secret create` make (`get`, `list`, `describe`, `delete`), whose
//! values are never printed.

use super::home::*;

#[test]
fn output_formats_names_and_ignore_not_found() {
    let h = Home::new();
    let a = h.local_repo("a");
    h.local_repo("b");
    let out = h.ok(&["get", "backuprepo", "-o", "name"], None);
    assert_eq!(
        out,
        "backuprepo.dataprotection.kubeblocks.io/a\nbackuprepo.dataprotection.kubeblocks.io/b\n"
    );
    assert_eq!(h.ok(&["list", "-o", "name"], None), out);
    let out = h.ok(
        &[
            "get",
            "backuprepo/a",
            "backuprepo/b",
            "-o",
            r#"jsonpath={range .items[*]}{.metadata.name}={.status.phase}{"\n"}{end}"#,
        ],
        None,
    );
    assert_eq!(out, "a=Ready\nb=Ready\n");
    let out = h.ok(
        &[
            "get",
            "backuprepo",
            "a",
            "-o",
            "jsonpath={.spec.config.path}",
        ],
        None,
    );
    assert_eq!(out, a.to_str().unwrap());
    let out = h.ok(
        &["list", "-o", "custom-columns=NAME:.metadata.name,PROVIDER:.spec.storageProviderRef,NOPE:.spec.nothing"],
        None,
    );
    let lines: Vec<Vec<&str>> = out
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(
        lines,
        vec![
            vec!["NAME", "PROVIDER", "NOPE"],
            vec!["a", "local", "<none>"],
            vec!["b", "local", "<none>"]
        ]
    );
    let wide = h.ok(&["get", "backuprepo", "a", "-o", "wide"], None);
    assert!(
        wide.contains("LOCATION") && wide.contains(a.to_str().unwrap()),
        "{wide}"
    );
    let err = h.fails(&["get", "backuprepo", "-o", "xml"], None);
    assert!(
        err.contains(
            "unknown output format \"xml\": use table, wide, json, yaml, name, jsonpath=TEMPLATE"
        ),
        "{err}"
    );
    let err = h.fails(
        &["get", "backuprepo", "-o", "jsonpath={range .items[*]}"],
        None,
    );
    assert!(err.contains("a {range} has no {end}"), "{err}");

    // Missing names: kubectl's error, or nothing at all with --ignore-not-found.
    let err = h.fails(&["get", "backuprepo", "a", "zz"], None);
    assert!(
        err.contains(r#"backuprepos.dataprotection.kubeblocks.io "zz" not found"#),
        "{err}"
    );
    let o = h.run(&["get", "backuprepo", "zz", "--ignore-not-found"], None);
    assert!(o.status.success() && o.stdout.is_empty() && o.stderr.is_empty());
    assert_eq!(
        h.ok(
            &[
                "get",
                "backuprepo",
                "a",
                "zz",
                "--ignore-not-found",
                "-o",
                "name"
            ],
            None
        ),
        "backuprepo.dataprotection.kubeblocks.io/a\n"
    );

    // annotate KIND/NAME.
    h.ok(&["annotate", "backuprepo/a", "team=db"], None);
    assert_eq!(h.repo("a")["metadata"]["annotations"]["team"], "db");
    h.ok(&["annotate", "backuprepo", "a", "team-"], None);
    assert!(h.repo("a")["metadata"]["annotations"].get("team").is_none());

    // delete A B; a missing one is refused before anything is deleted.
    let err = h.fails(&["delete", "a", "zz", "--yes"], None);
    assert!(err.contains("zz"), "{err}");
    assert_eq!(h.repo_names(), ["a", "b"]);
    h.ok(
        &[
            "delete",
            "backuprepo/a",
            "backuprepo/b",
            "backuprepo/zz",
            "--yes",
            "--ignore-not-found",
        ],
        None,
    );
    assert!(h.repo_names().is_empty());
}

#[test]
fn apply_takes_a_directory_and_several_documents() {
    let h = Home::new();
    let dir = h.dir.path().join("manifests");
    std::fs::create_dir(&dir).unwrap();
    let repo = |name: &str| {
        let data = h.dir.path().join(format!("data-{name}"));
        std::fs::create_dir(&data).unwrap();
        format!(
            "apiVersion: dataprotection.kubeblocks.io/v1alpha1\nkind: BackupRepo\nmetadata:\n  name: {name}\nspec:\n  storageProviderRef: local\n  accessMethod: Tool\n  pvReclaimPolicy: Retain\n  config:\n    path: {}\n",
            data.display()
        )
    };
    std::fs::write(dir.join("1-a.yaml"), repo("a")).unwrap();
    std::fs::write(
        dir.join("2-bc.yml"),
        format!("{}---\n{}", repo("b"), repo("c")),
    )
    .unwrap();
    std::fs::write(dir.join("notes.txt"), "not a manifest").unwrap();
    let out = h.ok(&["apply", "-f", dir.to_str().unwrap()], None);
    assert_eq!(out.lines().count(), 3, "{out}");
    assert_eq!(h.repo_names(), ["a", "b", "c"]);
    // Several -f, one from stdin with two documents; a bad file anywhere changes nothing.
    let bad = dir.join("3-bad.yaml");
    std::fs::write(&bad, "kind: BackupRepo\nmetadata: {name: d}\nspec: {}\n").unwrap();
    let err = h.fails(
        &["apply", "-f", dir.to_str().unwrap(), "-f", "-"],
        Some(&format!("{}---\n{}", repo("e"), repo("f"))),
    );
    assert!(err.contains("3-bad.yaml"), "{err}");
    assert_eq!(h.repo_names(), ["a", "b", "c"]);
    std::fs::remove_file(&bad).unwrap();
    h.ok(
        &["apply", "-f", dir.to_str().unwrap(), "-f", "-"],
        Some(&format!("{}---\n{}", repo("g"), repo("h"))),
    );
    assert_eq!(h.repo_names(), ["a", "b", "c", "g", "h"]);
    let empty = h.dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let err = h.fails(&["apply", "-f", empty.to_str().unwrap()], None);
    assert!(err.contains("no .yaml, .yml or .json files"), "{err}");
}

#[test]
fn secrets_are_listed_described_and_deleted_never_shown() {
    let Some((endpoint, bucket, key, _)) = s3() else {
        return;
    };
    let h = Home::new();
    h.ok(
        &[
            "secret",
            "create",
            "creds",
            "-n",
            "kb-system",
            "--from-literal",
            &format!("accessKeyId={key}"),
            "--from-literal",
            &format!("secretAccessKey={SECRET}"),
        ],
        None,
    );
    let list = h.ok(&["get", "secrets"], None);
    let row: Vec<&str> = list.lines().nth(1).unwrap().split_whitespace().collect();
    assert_eq!(row[..4], ["kb-system", "creds", "Opaque", "2"], "{list}");
    assert_eq!(h.ok(&["list", "secrets"], None), list);
    for format in ["yaml", "json"] {
        let out = h.ok(
            &["get", "secret", "creds", "-n", "kb-system", "-o", format],
            None,
        );
        assert!(
            out.contains(&format!("<redacted: {} bytes>", SECRET.len())),
            "{out}"
        );
        assert!(!out.contains(&key), "the key ID is a credential too: {out}");
    }
    let desc = h.ok(&["describe", "secret", "creds"], None);
    assert!(
        desc.contains(&format!("secretAccessKey:  {} bytes", SECRET.len())),
        "{desc}"
    );

    // A repository on the Secret: the Secret says so, and cannot go without --force.
    let manifest = format!(
        "apiVersion: dataprotection.kubeblocks.io/v1alpha1\nkind: BackupRepo\nmetadata:\n  name: r\nspec:\n  storageProviderRef: minio\n  accessMethod: Tool\n  pvReclaimPolicy: Retain\n  pathPrefix: kubectl-secrets\n  config: {{bucket: {bucket}, endpoint: {endpoint}}}\n  credential: {{name: creds, namespace: kb-system}}\n"
    );
    h.run(&["apply", "-f", "-"], Some(&manifest));
    let list = h.ok(&["get", "secrets"], None);
    let used_by = list.lines().nth(1).unwrap().split_whitespace().last();
    assert_eq!(used_by, Some("r"), "{list}");
    assert!(h
        .ok(&["describe", "secret", "creds"], None)
        .contains("Used by:      backuprepo/r"));
    let err = h.fails(&["delete", "secret", "creds"], None);
    assert!(
        err.contains(
            "secret kb-system/creds is the credential of backuprepo r; nothing was deleted"
        ),
        "{err}"
    );
    h.ok(&["delete", "secret", "creds", "--force"], None);
    let err = h.fails(&["delete", "secret", "creds"], None);
    assert!(
        err.contains(r#"secrets "creds" not found in namespace "kb-system""#),
        "{err}"
    );
    h.ok(&["delete", "secret", "creds", "--ignore-not-found"], None);
    h.secret_only_in_private_files();
}

#[test]
fn small_things_a_newcomer_meets() {
    let h = Home::new();
    let data = h.local_repo("r");
    h.ok(
        &[
            "annotate",
            "backuprepo",
            "r",
            "dataprotection.kubeblocks.io/is-default-repo=true",
        ],
        None,
    );
    let src = h.dir.path().join("f");
    std::fs::write(&src, "x").unwrap();
    for p in ["b/2", "a/1", "c", "b/1"] {
        h.ok(&["push", "--repo", "r", src.to_str().unwrap(), p], None);
    }
    // -r is sorted, and without --repo lists the default repository's files.
    assert_eq!(h.ok(&["list", "-r"], None), "a/\na/1\nb/\nb/1\nb/2\nc\n");
    assert_eq!(
        h.ok(&["list", "-r", "--repo", "r"], None),
        "a/\na/1\nb/\nb/1\nb/2\nc\n"
    );
    // Nothing of ours is left in the directory after pushes and checks.
    h.ok(&["check", "r"], None);
    let mut names: Vec<String> = std::fs::read_dir(&data)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["a", "b", "c"]);
    // A mistyped --home: read as an empty store, said so, and no store made there; the
    // built-in providers still list (the first command of a new user).
    let typo = h.dir.path().join("hmoe");
    let run_at = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_backuprepo"))
            .arg("--home")
            .arg(&typo)
            .args(args)
            .output()
            .unwrap()
    };
    let o = run_at(&["list"]);
    assert_eq!(o.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&o.stderr).contains(&format!(
        "there is no local store at {} (--home or BACKUPREPO_HOME) yet; nothing was created there",
        typo.display()
    )));
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        "No backup repository found\n"
    );
    let o = run_at(&["list-sp", "-o", "name"]);
    assert!(String::from_utf8_lossy(&o.stdout)
        .contains("storageprovider.dataprotection.kubeblocks.io/local"));
    let o = run_at(&["describe", "r"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(!typo.exists());
    // --watch 0 is a usage error.
    assert_eq!(
        h.run(&["check", "--all", "--watch", "0"], None)
            .status
            .code(),
        Some(2)
    );
}
