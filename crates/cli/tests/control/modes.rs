//! A repository over time: re-checks and recovery, the watch, leftovers, bench, read-only and
//! suspended repositories, usage, and object lock.

use std::process::{Command, Stdio};

use serde_json::Value as Json;

use super::home::*;

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
