//! Bad input of every kind (a table of mistakes, each a clear error that stores nothing),
//! credentials from standard input, files and the environment, and the manifests printed for
//! Kubernetes.

use std::io::Write;
use std::process::{Command, Stdio};

use super::home::*;

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
