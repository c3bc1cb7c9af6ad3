//! A reader that goes away ends a command quietly with status 141 (128 + SIGPIPE), as `head`
//! users expect: no panic, no stack trace, no error message; both faces, both kinds of output
//! (printed text, and object data pulled to stdout).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::{Command, Stdio};

/// Run `cmd` with its stdout's reader closed at once; its status code and stderr.
fn with_closed_reader(mut cmd: Command) -> (Option<i32>, String) {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn printed_output_to_a_closed_pipe_ends_quietly() {
    // 70 kB of manifests: more than a pipe holds, so a write meets the closed reader.
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_backuprepo"));
    cmd.args(["install", "--print"]);
    let (code, stderr) = with_closed_reader(cmd);
    assert_eq!(code, Some(141), "{stderr}");
    assert!(stderr.is_empty(), "{stderr}");
}

#[test]
fn pulled_data_to_a_closed_pipe_ends_quietly() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("repo");
    std::fs::create_dir(&root).unwrap();
    std::fs::write(root.join("big"), vec![7u8; 1 << 20]).unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_backuprepo"));
    cmd.args(["datasafed", "pull", "big", "-"])
        .env("DATASAFED_LOCAL_BACKEND_PATH", &root)
        .env_remove("DATASAFED_BACKEND_BASE_PATH");
    let (code, stderr) = with_closed_reader(cmd);
    assert_eq!(code, Some(141), "{stderr}");
    assert!(stderr.is_empty(), "{stderr}");
}

/// An unknown `--log-level` is a usage error (status 2) naming the accepted values, on both
/// faces; it used to mean "errors only", silently.
#[test]
fn an_unknown_log_level_is_refused() {
    for args in [
        &["--log-level", "loud", "list"][..],
        &["datasafed", "--log-level", "loud", "version"][..],
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_backuprepo"))
            .args(args)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(
            err.contains("loud") && err.contains("debug"),
            "{args:?}: {err}"
        );
    }
}
