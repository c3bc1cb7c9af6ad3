//! `backuprepo copy SRC DST [PREFIX]` on real servers: a local directory into SeaweedFS, and
//! SeaweedFS into vsftpd. Objects move as stored (an encrypted, compressed object reads from
//! the copy with the source's settings), a second run skips everything, an interrupted run
//! leaves no partial object and the next run finishes it, and nothing is deleted at the
//! destination unless `--delete-extra` says so. SeaweedFS into a second SeaweedFS bucket
//! (with object lock): a same-size change is found by its checksum, and `--delete-extra`
//! keeps what is under retention. A local directory into Azurite.

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
    // --delete-extra removes it (a dry run first only says so).
    let out = h.ok(&["copy", "src", "mid", "--delete-extra", "--dry-run"], None);
    assert!(out.contains("would remove only-here.sql"), "{out}");
    h.ok(&["stat", "--repo", "mid", "only-here.sql"], None);
    let out = h.ok(&["copy", "src", "mid", "--delete-extra"], None);
    assert!(out.contains("removed only-here.sql"), "{out}");
    assert!(h
        .fails(&["stat", "--repo", "mid", "only-here.sql"], None)
        .contains("not found"));

    // S3 → FTP, interrupted half-way: nothing partial, and the next run completes it.
    if !h.ftp_repo("far", &prefix) {
        return;
    }
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

fn push_bytes(h: &Home, repo: &str, path: &str, bytes: &[u8]) {
    let f = h.dir.path().join("one.bin");
    std::fs::write(&f, bytes).unwrap();
    h.ok(&["push", "--repo", repo, f.to_str().unwrap(), path], None);
}

#[test]
fn copy_s3_to_locked_s3_by_checksum_and_local_to_azure() {
    let Some(_) = s3() else {
        return;
    };
    let h = Home::new();
    let prefix = format!("copy2-{}", std::process::id());
    h.s3_repo("a", &var("BR_S3_BUCKET").unwrap(), &prefix);
    h.s3_repo("b", &var("BR_S3_LOCKED_BUCKET").unwrap(), &prefix);
    for i in 0..24 {
        push_bytes(
            &h,
            "a",
            &format!("small/{i:02}"),
            format!("object {i}").as_bytes(),
        );
    }
    // Multipart at the 8 MiB parts: a composite checksum on both sides.
    let big: Vec<u8> = (0..20_000_000u32).map(|i| (i % 251) as u8).collect();
    push_bytes(&h, "a", "big/one.bin", &big);
    let out = h.ok(&["copy", "a", "b", "--transfers", "4"], None);
    assert_eq!(copied_line(&out), (25, 0), "{out}");
    let out = h.ok(&["copy", "a", "b"], None);
    assert_eq!(copied_line(&out), (0, 25), "{out}");

    // Changed behind our back, same size: the checksums differ, so it is copied again.
    push_bytes(&h, "b", "small/07", b"OBJECT 7");
    let mut changed = big.clone();
    changed[12_345_678] ^= 0xff;
    push_bytes(&h, "b", "big/one.bin", &changed);
    let out = h.ok(&["copy", "a", "b"], None);
    assert_eq!(copied_line(&out), (2, 23), "{out}");
    let back = h.dir.path().join("back.bin");
    h.ok(
        &["pull", "--repo", "b", "big/one.bin", back.to_str().unwrap()],
        None,
    );
    assert!(std::fs::read(&back).unwrap() == big);

    // The destination's extra object is under the bucket's default retention: kept, named.
    push_bytes(&h, "b", "extra.bin", b"only at b");
    let out = h.ok(&["copy", "a", "b", "--delete-extra"], None);
    assert!(
        out.contains("kept extra.bin") && out.contains("kept 1 under retention"),
        "{out}"
    );
    h.ok(&["stat", "--repo", "b", "extra.bin"], None);

    // A read-only destination is refused before anything is read.
    h.ok(
        &[
            "annotate",
            "backuprepo",
            "b",
            "backuprepo.io/read-only=true",
        ],
        None,
    );
    let err = h.fails(&["copy", "a", "b"], None);
    assert!(err.contains("read-only"), "{err}");

    // A local directory into Azurite, and back out of it.
    if !h.az_repo("az", &prefix) {
        return;
    }
    h.local_repo("here");
    push_bytes(&h, "here", "db/big.bin", &big);
    push_bytes(&h, "here", "db/small", b"small");
    let out = h.ok(&["copy", "here", "az"], None);
    assert_eq!(copied_line(&out), (2, 0), "{out}");
    let out = h.ok(&["copy", "here", "az"], None);
    assert_eq!(copied_line(&out), (0, 2), "{out}");
    h.ok(
        &["pull", "--repo", "az", "db/big.bin", back.to_str().unwrap()],
        None,
    );
    assert!(std::fs::read(&back).unwrap() == big);
}
