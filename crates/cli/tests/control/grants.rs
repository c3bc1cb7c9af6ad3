//! Grants (`grant`, `grants`, `revoke`) on the SeaweedFS test server: keys limited to a prefix,
//! revoked one by one and with the repository; only users whose names our code derives are
//! ever deleted.

use std::io::Write;
use std::process::{Command, Stdio};

use crate::home::{s3, Home};

/// Grants on SeaweedFS (IAM API writable): a grant's config pushes and pulls under its prefix
/// and is refused elsewhere; a read-only grant cannot write; `revoke` and deleting the
/// repository make the keys stop working; a storage without the capability changes nothing;
/// no secret in `grants` or in the repository.
#[test]
fn grants_scope_keys_to_a_prefix_and_are_revoked() {
    let Some((_, bucket, _, _)) = s3() else {
        return;
    };
    let h = Home::new();
    let prefix = format!("grants-{}", std::process::id());
    h.s3_repo("g", &bucket, &prefix);
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("team-a.conf");
    let out = h.ok(
        &[
            "grant",
            "g",
            "--prefix",
            "team-a",
            "--name",
            "team-a",
            "-o",
            conf.to_str().unwrap(),
        ],
        None,
    );
    assert!(out.contains("grant team-a created"), "{out}");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&conf).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let text = std::fs::read_to_string(&conf).unwrap();
    let secret = text
        .lines()
        .find_map(|l| l.strip_prefix("secret_access_key = "))
        .unwrap()
        .to_string();
    let datasafed = |conf: &std::path::Path, args: &[&str], stdin: Option<&[u8]>| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_backuprepo"));
        c.arg("datasafed").arg("-c").arg(conf).args(args);
        c.env_remove("DATASAFED_BACKEND_BASE_PATH")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = c.spawn().unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(stdin.unwrap_or_default())
            .unwrap();
        child.wait_with_output().unwrap()
    };
    // Works under its prefix.
    let o = datasafed(
        &conf,
        &["push", "-", "db1/dump.sql"],
        Some(b"team a's backup"),
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = datasafed(&conf, &["pull", "db1/dump.sql", "-"], None);
    assert_eq!(o.stdout, b"team a's backup");
    // The repository sees it where KubeBlocks' layout puts team-a's backups.
    assert!(h
        .ok(&["list", "--repo", "g", "-r", "team-a/"], None)
        .contains("team-a/db1/dump.sql"));
    // Refused elsewhere: the same key pointed at team-b.
    let elsewhere = dir.path().join("elsewhere.conf");
    std::fs::write(&elsewhere, text.replace("/team-a\n", "/team-b\n")).unwrap();
    let o = datasafed(&elsewhere, &["push", "-", "x"], Some(b"intruder"));
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("access denied"), "{err}");

    // Read-only: refused by the config, and by the storage without it.
    let ro = dir.path().join("ro.conf");
    h.ok(
        &[
            "grant",
            "g",
            "--prefix",
            "team-a",
            "--name",
            "reader",
            "--read-only",
            "-o",
            ro.to_str().unwrap(),
        ],
        None,
    );
    let o = datasafed(&ro, &["pull", "db1/dump.sql", "-"], None);
    assert_eq!(o.stdout, b"team a's backup");
    let o = datasafed(&ro, &["push", "-", "db1/other"], Some(b"x"));
    assert!(String::from_utf8_lossy(&o.stderr).contains("read-only"));
    let unlocked = dir.path().join("unlocked.conf");
    std::fs::write(
        &unlocked,
        std::fs::read_to_string(&ro)
            .unwrap()
            .replace("read_only = true\n", ""),
    )
    .unwrap();
    let o = datasafed(&unlocked, &["push", "-", "db1/other"], Some(b"x"));
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("access denied"));

    // Listed without secrets.
    let listed = h.ok(&["grants", "g"], None);
    assert!(
        listed.contains("team-a") && listed.contains("read-only"),
        "{listed}"
    );
    assert!(!listed.contains(&secret));
    assert!(!h.repo("g").to_string().contains(&secret));

    // A record edited to name another user (here the reader's) does not steer `revoke`: it
    // deletes the user derived for team-a, and the reader's key keeps working.
    let repo = h.repo("g");
    let mut records: serde_json::Value = serde_json::from_str(
        repo["metadata"]["annotations"]["backuprepo.io/grants"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    let reader_user = records
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["name"] == "reader")
        .unwrap()["user"]
        .clone();
    for g in records.as_array_mut().unwrap() {
        if g["name"] == "team-a" {
            g["user"] = reader_user.clone();
        }
    }
    h.ok(
        &[
            "annotate",
            "backuprepo",
            "g",
            &format!("backuprepo.io/grants={records}"),
            "--overwrite",
        ],
        None,
    );

    // Revoked: the key stops working (a listing gets the service's code; a HEAD has no body).
    h.ok(&["revoke", "g", "team-a"], None);
    let o = datasafed(&conf, &["list", "/"], None);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("rejected the credentials"), "{err}");
    let o = datasafed(&ro, &["pull", "db1/dump.sql", "-"], None);
    assert_eq!(
        o.stdout, b"team a's backup",
        "the forged record's user was deleted"
    );

    // Deleting the repository revokes the rest.
    h.ok(&["rm", "--repo", "g", "-r", "/"], None);
    let out = h.ok(&["delete", "g", "--yes"], None);
    assert!(out.contains("revoked 1 grant"), "{out}");
    let o = datasafed(&ro, &["list", "/"], None);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("rejected the credentials"), "{err}");

    // A storage that cannot scope keys: refused, nothing recorded.
    h.local_repo("plain");
    let err = h.fails(
        &[
            "grant",
            "plain",
            "--prefix",
            "x",
            "-o",
            dir.path().join("p.conf").to_str().unwrap(),
        ],
        None,
    );
    assert!(err.contains("nothing was created"), "{err}");
    assert!(!dir.path().join("p.conf").exists());
    assert!(h.repo("plain")["metadata"]["annotations"]
        .get("backuprepo.io/grants")
        .is_none());
}
