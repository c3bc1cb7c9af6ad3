//! The controller's Tool check runs in `backuprepo probe-worker`: a child with an empty
//! environment that enters a Landlock sandbox before any connection. Against the SeaweedFS test
//! server: the check passes inside the sandbox, and a file outside the system directories (here
//! a `ca_cert` in a temporary directory; in a pod, the service-account token) cannot be read
//! from it, while the same config outside the sandbox works.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::process::{Command, Stdio};

use serde_json::{json, Value};

fn var(n: &str) -> Option<String> {
    std::env::var(n).ok().filter(|v| !v.is_empty())
}

fn s3_config(extra: &str) -> Option<String> {
    let (endpoint, bucket, key, secret) = match (
        var("BR_S3_ENDPOINT"),
        var("BR_S3_BUCKET"),
        var("BR_S3_ACCESS_KEY"),
        var("BR_S3_SECRET_KEY"),
    ) {
        (Some(e), Some(b), Some(k), Some(s)) => (e, b, k, s),
        _ if var("BR_REQUIRE_SERVERS").is_some() => panic!("the S3 test server is not configured"),
        _ => return None,
    };
    Some(format!(
        "[storage]\ntype = s3\nprovider = Minio\naccess_key_id = {key}\nsecret_access_key = {secret}\nendpoint = {endpoint}\nroot = {bucket}\nforce_path_style = true\n{extra}"
    ))
}

fn worker(config: &str) -> Value {
    let req = json!({"Check": {
        "config": config,
        "path_prefix": format!("worker-{}", std::process::id()),
        "timeout_secs": 30,
        "previous": null,
        "pages": 1,
        "refused_hosts": [],
    }});
    let mut child = Command::new(env!("CARGO_BIN_EXE_backuprepo"))
        .arg("probe-worker")
        .env_clear()
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(req.to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn the_check_runs_sandboxed_and_cannot_read_files_outside_the_system_directories() {
    let Some(config) = s3_config("") else {
        eprintln!("skipped: no S3 test server (run scripts/test.sh)");
        return;
    };
    let answer = worker(&config);
    assert_eq!(answer["sandbox"], "enforced", "{answer:#}");
    assert_eq!(answer["checked"]["passed"], true, "{answer:#}");

    // A file outside the sandbox: unreadable from the worker...
    let dir = tempfile::tempdir().unwrap();
    let planted = dir.path().join("token");
    std::fs::write(&planted, "not a PEM bundle").unwrap();
    let config = s3_config(&format!("ca_cert = {}\n", planted.display())).unwrap();
    let answer = worker(&config);
    let text = answer.to_string();
    assert_eq!(answer["checked"]["passed"], false, "{answer:#}");
    assert!(text.contains("Permission denied"), "{answer:#}");
    // ...though readable outside it: the same config works in the datasafed face, which reads
    // the file (it holds no certificate, and the endpoint is plain http).
    let conf = dir.path().join("datasafed.conf");
    std::fs::write(&conf, &config).unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_backuprepo"))
        .args(["datasafed", "-c", conf.to_str().unwrap(), "list", "/"])
        .env_remove("DATASAFED_BACKEND_BASE_PATH")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

/// FTP in the worker: its host resolved once, checked by the guard and pinned to the address
/// (vsftpd answers on it), and the check passes inside the sandbox.
#[test]
fn an_ftp_check_passes_in_the_worker_with_its_host_pinned() {
    let (Some(host), Some(port), Some(user), Some(pass)) = (
        var("BR_FTP_HOST"),
        var("BR_FTP_PORT"),
        var("BR_FTP_USER"),
        var("BR_FTP_PASS"),
    ) else {
        assert!(
            var("BR_REQUIRE_SERVERS").is_none(),
            "the FTP test server is not configured"
        );
        eprintln!("skipped: no FTP test server (run scripts/test.sh)");
        return;
    };
    let config = format!(
        "[storage]\ntype = ftp\nhost = {host}\nport = {port}\nuser = {user}\npass.need_obscure = {pass}\n"
    );
    let answer = worker(&config);
    assert_eq!(answer["sandbox"], "enforced", "{answer:#}");
    assert_eq!(answer["checked"]["passed"], true, "{answer:#}");
}
