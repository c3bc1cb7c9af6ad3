//! `backuprepo copy SRC DST [PREFIX]` on real servers: a local directory into SeaweedFS, and
//! SeaweedFS into vsftpd. Objects move as stored (an encrypted, compressed object reads from
//! the copy with the source's settings), a second run skips everything, an interrupted run
//! leaves no partial object and the next run finishes it, and nothing is deleted at the
//! destination.

use std::process::{Command, Stdio};

use super::home::*;

const ENC: [(&str, &str); 2] = [
    ("DATASAFED_ENCRYPTION_ALGORITHM", "AES-256-GCM-STREAM"),
    ("DATASAFED_ENCRYPTION_PASS_PHRASE", "copy-pass"),
];

fn copied_line(out: &str) -> (u64, u64) {
    let line = out
        .lines()
        .find(|l| l.starts_with("copied "))
        .unwrap_or_else(|| panic!("{out}"));
    let n = |after: &str| -> u64 {
        line.split(after)
            .nth(1)
            .unwrap()
            .split_whitespace()
            .next()
            .unwrap()
            .parse()
            .unwrap()
    };
    (n("copied "), n("skipped "))
}

#[test]
fn copy_local_to_s3_to_ftp_incremental_and_verified() {
    let Some(_) = s3() else {
        return;
    };
    let h = Home::new();
    h.local_repo("src");
    let prefix = format!("copy-{}", std::process::id());
    h.s3_repo("mid", &var("BR_S3_BUCKET").unwrap(), &prefix);
    let data: Vec<u8> = (0..12_000_000u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    let big = h.dir.path().join("big.bin");
    std::fs::write(&big, &data).unwrap();
    let sql = h.dir.path().join("dump.sql");
    std::fs::write(&sql, "select 1;\n".repeat(1000)).unwrap();
    h.ok(
        &["push", "--repo", "src", big.to_str().unwrap(), "db/big.bin"],
        None,
    );
    let push_enc = Command::new(env!("CARGO_BIN_EXE_backuprepo"))
        .args([
            "push",
            "--repo",
            "src",
            "-z",
            "zstd",
            sql.to_str().unwrap(),
            "db/dump.sql",
        ])
        .env("BACKUPREPO_HOME", h.path())
        .envs(ENC)
        .output()
        .unwrap();
    assert!(push_enc.status.success());

    // local → S3, then again: everything skipped.
    let out = h.ok(&["copy", "src", "mid"], None);
    assert_eq!(copied_line(&out), (2, 0), "{out}");
    let out = h.ok(&["copy", "src", "mid"], None);
    assert_eq!(copied_line(&out), (0, 2), "{out}");
    // The copy reads with the source's settings.
    let back = h.dir.path().join("back.bin");
    h.ok(
        &[
            "pull",
            "--repo",
            "mid",
            "db/big.bin",
            back.to_str().unwrap(),
        ],
        None,
    );
    assert_eq!(std::fs::read(&back).unwrap(), data);
    let dump = Command::new(env!("CARGO_BIN_EXE_backuprepo"))
        .args(["pull", "--repo", "mid", "-d", "zstd", "db/dump.sql", "-"])
        .env("BACKUPREPO_HOME", h.path())
        .envs(ENC)
        .output()
        .unwrap();
    assert_eq!(dump.stdout, std::fs::read(&sql).unwrap());

    // A destination object removed: only it is copied again; an extra one is left alone.
    h.ok(&["rm", "--repo", "mid", "db/big.bin"], None);
    h.ok(
        &[
            "push",
            "--repo",
            "mid",
            sql.to_str().unwrap(),
            "only-here.sql",
        ],
        None,
    );
    let out = h.ok(&["copy", "src", "mid"], None);
    assert_eq!(copied_line(&out), (1, 1), "{out}");
    h.ok(&["stat", "--repo", "mid", "only-here.sql"], None);

    // S3 → FTP, interrupted half-way: nothing partial, and the next run completes it.
    let (Some(host), Some(port), Some(user), Some(pass)) = (
        var("BR_FTP_HOST"),
        var("BR_FTP_PORT"),
        var("BR_FTP_USER"),
        var("BR_FTP_PASS"),
    ) else {
        return;
    };
    h.ok(
        &[
            "create",
            "far",
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
            "--path-prefix",
            &prefix,
        ],
        None,
    );
    let mut child = Command::new(env!("CARGO_BIN_EXE_backuprepo"))
        .args(["copy", "mid", "far", "db/"])
        .env("BACKUPREPO_HOME", h.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(150));
    let _ = child.kill();
    let _ = child.wait();
    // Whatever is at the destination is whole.
    let listed = h.ok(&["list", "--repo", "far", "-r", "-o", "json"], None);
    let entries: serde_json::Value = serde_json::from_str(listed.trim()).unwrap_or_default();
    for e in entries.as_array().cloned().unwrap_or_default() {
        if e["path"] == "db/big.bin" {
            assert_eq!(
                e["size"],
                data.len() as u64,
                "a partial object is visible: {listed}"
            );
        }
    }
    let out = h.ok(&["copy", "mid", "far", "db/"], None);
    let (copied, skipped) = copied_line(&out);
    assert_eq!(copied + skipped, 2, "{out}");
    h.ok(
        &[
            "pull",
            "--repo",
            "far",
            "db/big.bin",
            back.to_str().unwrap(),
        ],
        None,
    );
    assert_eq!(std::fs::read(&back).unwrap(), data);
    // Refusals: the same repository twice, a missing one.
    assert!(h
        .fails(&["copy", "mid", "mid"], None)
        .contains("are the same repository"));
    assert!(h
        .fails(&["copy", "mid", "nope"], None)
        .contains("\"nope\" is not found"));
}
