//! One behaviour suite, run against every real backend: local directory, SeaweedFS S3, vsftpd,
//! Azurite. Each case is a function of a [`Ctx`]; the macro at the bottom makes one test per
//! backend and case.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[macro_use]
mod common;

use std::process::Stdio;
use std::time::Duration;

use common::{data, sql, Ctx};

const PART: usize = 8 << 20;

fn sizes_round_trip(c: &Ctx) {
    let sizes: &[usize] = match c.backend {
        "local" | "ftp" => &[0, 1, 1 << 20, 3 * (1 << 20) + 5],
        _ => &[0, 1, PART, 2 * PART + 12345],
    };
    for (i, &n) in sizes.iter().enumerate() {
        let d = data(n, i as u64 + 1);
        let name = format!("sizes/obj-{n}");
        c.push(&name, &d, &[], &[]);
        assert_eq!(c.pull(&name, &[], &[]), d, "[{}] {n} bytes", c.backend);
        let listed = c.ok(&["list", "-o", "long", &name]);
        assert!(
            listed.contains(&format!("\t{n}\t{name}")),
            "[{}] size in listing: {listed}",
            c.backend
        );
    }
    // Push from a file and pull into a file (parents created, temp name renamed into place).
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("in.bin");
    let d = data(300_000, 99);
    std::fs::write(&src, &d).unwrap();
    c.ok(&["push", src.to_str().unwrap(), "files/in.bin"]);
    let dst = dir.path().join("a/b/out.bin");
    c.ok(&["pull", "files/in.bin", dst.to_str().unwrap()]);
    assert_eq!(std::fs::read(&dst).unwrap(), d);
    let leftovers: Vec<_> = std::fs::read_dir(dst.parent().unwrap()).unwrap().collect();
    assert_eq!(leftovers.len(), 1, "only the pulled file remains");
    let err = c.fail(&["pull", "files/in.bin", ""]);
    assert!(err.contains("invalid local path"), "{err}");
}

/// A stream announced as huge (`DATASAFED_EXPECTED_SIZE`) is cut into parts big enough for it:
/// here 500 GiB gives parts of 54 MiB, so 120 MiB is three parts with two part buffers, the
/// fewest the writer needs (one kept by the writer, one being filled).
fn expected_size_hint_makes_big_parts(c: &Ctx) {
    let d = data(120 << 20, 7);
    c.push(
        "hint/big",
        &d,
        &[],
        &[("DATASAFED_EXPECTED_SIZE", "500GiB")],
    );
    assert!(
        c.pull("hint/big", &[], &[]) == d,
        "[{}] round trip",
        c.backend
    );
    // A bad size is a usage error (clap's exit code 2), before anything is read or written.
    let o = c.run_with(
        &["push", "--expected-size", "lots", "-", "hint/bad"],
        None,
        &[],
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("\"lots\" is not a size"));
}

/// `verify` names exactly the objects that were truncated, bit-flipped or encrypted under
/// another pass phrase, passes clean ones, and calls AES-CFB objects unverifiable.
fn verify_names_damaged_objects(c: &Ctx) {
    let gcm = [
        ("DATASAFED_ENCRYPTION_ALGORITHM", "AES-256-GCM-STREAM"),
        ("DATASAFED_ENCRYPTION_PASS_PHRASE", "verify-pass"),
    ];
    let verify = |path: &str, env: &[(&str, &str)]| {
        let o = c.run_with(&["verify", path], None, env);
        (
            o.status.code(),
            String::from_utf8_lossy(&o.stdout).into_owned(),
        )
    };
    let d = data(300_000, 11);
    // Plain and zstd objects, clean.
    c.push("v/plain/raw", &d, &[], &[]);
    c.push("v/plain/z", &d, &["-z", "zstd"], &[]);
    c.push("v/plain/z2", &d, &["-z", "zstd"], &[]);
    // Encrypted ones (one also compressed).
    for name in ["a", "b", "c", "other"] {
        c.push(&format!("v/enc/{name}"), &d, &[], &gcm);
    }
    c.push("v/enc/z", &d, &["-z", "zstd"], &gcm);
    let (code, out) = verify("v/plain/", &[]);
    assert_eq!(code, Some(0), "[{}] {out}", c.backend);
    assert!(out.contains("3 objects verified, 0 damaged"), "{out}");
    let (code, out) = verify("v/enc/", &gcm);
    assert_eq!(code, Some(0), "[{}] {out}", c.backend);
    assert!(out.contains("5 objects verified, 0 damaged"), "{out}");

    // Damage: a truncated zstd object, a flipped bit, a cut encrypted object, another phrase.
    let z = c.pull("v/plain/z", &[], &[]);
    c.push("v/plain/z", &z[..z.len() / 2], &[], &[]);
    let mut a = c.pull("v/enc/a.enc", &[], &[]);
    let mid = a.len() / 2;
    a[mid] ^= 0x01;
    c.push("v/enc/a.enc", &a, &[], &[]);
    let b = c.pull("v/enc/b.enc", &[], &[]);
    c.push("v/enc/b.enc", &b[..b.len() - 100], &[], &[]);
    let other = [
        ("DATASAFED_ENCRYPTION_ALGORITHM", "AES-256-GCM-STREAM"),
        ("DATASAFED_ENCRYPTION_PASS_PHRASE", "another-pass"),
    ];
    c.push("v/enc/other", &d, &[], &other);

    let (code, out) = verify("v/plain/", &[]);
    assert_eq!(code, Some(1), "[{}] {out}", c.backend);
    let damaged: Vec<&str> = out.lines().filter(|l| l.starts_with("damaged: ")).collect();
    assert_eq!(damaged.len(), 1, "{out}");
    assert!(damaged[0].starts_with("damaged: v/plain/z: "), "{out}");
    assert!(out.contains("3 objects verified, 1 damaged"), "{out}");
    let (code, out) = verify("v/enc/", &gcm);
    assert_eq!(code, Some(1), "[{}] {out}", c.backend);
    let mut names: Vec<&str> = out
        .lines()
        .filter_map(|l| l.strip_prefix("damaged: "))
        .map(|l| l.split(": ").next().unwrap_or_default())
        .collect();
    names.sort();
    assert_eq!(names, ["v/enc/a", "v/enc/b", "v/enc/other"], "{out}");
    assert!(out.contains("5 objects verified, 3 damaged"), "{out}");
    // A sample still names only damaged objects.
    let o = c.run_with(&["verify", "--sample", "50", "v/enc/"], None, &gcm);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.lines().filter(|l| l.starts_with("damaged: ")).all(|l| {
            ["v/enc/a:", "v/enc/b:", "v/enc/other:"]
                .iter()
                .any(|n| l.contains(n))
        }),
        "{out}"
    );

    // datasafed's AES-CFB: no authentication, so not "good".
    let cfb = [
        ("DATASAFED_ENCRYPTION_ALGORITHM", "AES-256-CFB"),
        ("DATASAFED_ENCRYPTION_PASS_PHRASE", "verify-pass"),
    ];
    c.push("v/cfb/x", &d, &[], &cfb);
    let (code, out) = verify("v/cfb/", &cfb);
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains("unverified: v/cfb/x: unauthenticated"),
        "{out}"
    );
    assert!(
        out.contains("0 objects verified, 0 damaged, 1 unauthenticated"),
        "{out}"
    );
}

/// After a push is killed half-way, `gc --older-than 0s` removes what it left (an incomplete
/// multipart upload on S3, a temporary file on local and FTP) and an old pre-check directory,
/// and touches no complete object.
fn gc_removes_leftovers_of_interrupted_work(c: &Ctx) {
    let keep = data(1 << 20, 5);
    c.push("gc/keep", &keep, &[], &[]);
    c.push(
        ".backuprepo-precheck/old/precheck.txt",
        b"pre-check",
        &[],
        &[],
    );
    let out = kill_push_midway(c, "gc/killed", "KILL");
    assert!(
        !out.status.success(),
        "[{}] killed push succeeded",
        c.backend
    );

    let found =
        String::from_utf8(c.ok_env(&["gc", "--dry-run", "--older-than", "0s"], None, &[])).unwrap();
    // vsftpd (like many FTP servers) does not list dot files, so the pre-check directory is
    // invisible over FTP; and a killed FTP upload left nothing behind here.
    if c.backend != "ftp" {
        assert!(
            found.contains(".backuprepo-precheck/old/precheck.txt"),
            "[{}] {found}",
            c.backend
        );
    }
    match c.backend {
        "s3" => assert!(found.contains("incomplete multipart upload of "), "{found}"),
        "local" => assert!(found.contains("temporary file "), "{found}"),
        _ => {}
    }
    assert!(!found.contains("gc/keep"), "[{}] {found}", c.backend);
    // The default age keeps what is younger than a day.
    let young = String::from_utf8(c.ok_env(&["gc", "--dry-run"], None, &[])).unwrap();
    assert_eq!(young.trim(), "nothing to remove", "[{}]", c.backend);
    if c.backend == "ftp" {
        return;
    }
    let removed = String::from_utf8(c.ok_env(&["gc", "--older-than", "0s"], None, &[])).unwrap();
    assert_eq!(
        removed
            .lines()
            .filter(|l| l.starts_with("removed: "))
            .count(),
        found
            .lines()
            .filter(|l| l.starts_with("would remove: "))
            .count(),
        "[{}] {removed}",
        c.backend
    );
    let after =
        String::from_utf8(c.ok_env(&["gc", "--dry-run", "--older-than", "0s"], None, &[])).unwrap();
    assert_eq!(after.trim(), "nothing to remove", "[{}]", c.backend);
    assert_eq!(c.pull("gc/keep", &[], &[]), keep);
    let o = c.run_with(&["gc", "--older-than", "soon"], None, &[]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("not a duration"));
}

fn names_and_deep_paths(c: &Ctx) {
    for name in [
        "with space/a file.txt",
        "ünïcödé/文件 ñ.sql",
        "a/b/c/d/e/f/g/deep.bin",
    ] {
        let d = data(1000, name.len() as u64);
        c.push(name, &d, &[], &[]);
        assert_eq!(c.pull(name, &[], &[]), d, "[{}] {name}", c.backend);
        let all = c.lines(&["list", "-r", "-f", "/"]);
        assert!(
            all.contains(&name.to_string()),
            "[{}] {name} not in {all:?}",
            c.backend
        );
    }
    let err = c.fail(&["push", "-", "../escape"]);
    assert!(err.contains("prefixed with '..'"), "{err}");
    let err = c.fail(&["pull", "a/../../x", "-"]);
    assert!(err.contains("prefixed with '..'"), "{err}");
    let err = c.fail(&["push", "-", "dir/"]);
    assert!(err.contains("push to \"dir/\""), "{err}");
}

fn overwrite_replaces(c: &Ctx) {
    c.push("ow/x", b"old contents", &[], &[]);
    c.push("ow/x", b"new", &[], &[]);
    assert_eq!(c.pull("ow/x", &[], &[]), b"new");
    assert_eq!(c.lines(&["list", "ow/"]), vec!["ow/x"]);
}

fn missing_things(c: &Ctx) {
    let err = c.fail(&["pull", "no/such", "-"]);
    assert!(err.contains("pull \"no/such\": object not found"), "{err}");
    c.ok(&["rm", "no/such"]);
    let err = c.fail(&["list", "no-dir/"]);
    assert!(err.contains("directory not found"), "{err}");
    assert_eq!(c.ok(&["list", "/"]), "", "missing base lists empty");
    c.ok(&["rmdir", "no-dir"]);
}

fn listing_flags(c: &Ctx) {
    c.push("l/a.txt", b"aaa", &[], &[]);
    c.push("l/b.sql", b"bbbbbbbbbb", &[], &[]);
    c.push("l/sub/c.sql", b"ccccc", &[], &[]);
    assert_eq!(
        c.ok(&["list", "l/"]),
        "l/a.txt\nl/b.sql\nl/sub/\n",
        "sorted by path"
    );
    assert_eq!(c.ok(&["list", "-f", "l/"]), "l/a.txt\nl/b.sql\n");
    assert_eq!(c.ok(&["list", "-d", "l/"]), "l/sub/\n");
    assert_eq!(c.ok(&["list", "--name", "*.sql", "l/"]), "l/b.sql\n");
    assert_eq!(
        c.ok(&["list", "-f", "-s", "size", "--reverse", "l/"]),
        "l/b.sql\nl/a.txt\n"
    );
    assert_eq!(
        c.ok(&["list", "-f", "-s", "size", "l/"]),
        "l/a.txt\nl/b.sql\n"
    );
    assert_eq!(
        c.ok(&["list", "l/a.txt"]),
        "l/a.txt\n",
        "a file path lists the file"
    );
    let rec = c.lines(&["list", "-r", "l/"]);
    assert_eq!(rec, vec!["l/a.txt", "l/b.sql", "l/sub/", "l/sub/c.sql"]);
    let shallow = c.lines(&["list", "-r", "--max-depth", "1", "l/"]);
    assert_eq!(shallow, vec!["l/a.txt", "l/b.sql", "l/sub/"]);
    let rec_sql = c.lines(&["list", "-r", "-f", "--name", "*.sql", "l/"]);
    assert_eq!(rec_sql, vec!["l/b.sql", "l/sub/c.sql"]);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let future = (now + 3600).to_string();
    let past = (now - 3600).to_string();
    assert_eq!(c.ok(&["list", "-f", "--newer-than", &future, "l/"]), "");
    assert_eq!(
        c.ok(&[
            "list",
            "-f",
            "--older-than",
            &future,
            "--newer-than",
            &past,
            "l/"
        ]),
        "l/a.txt\nl/b.sql\n"
    );
    let long = c.ok(&["list", "-f", "-o", "long", "l/"]);
    let first: Vec<&str> = long.lines().next().unwrap().split('\t').collect();
    assert_eq!(first.len(), 3);
    assert!(
        first[0].ends_with('Z') && first[0].contains('T'),
        "RFC3339: {}",
        first[0]
    );
    assert_eq!(&first[1..], ["3", "l/a.txt"]);
    let json: serde_json::Value =
        serde_json::from_str(&c.ok(&["list", "-o", "json", "l/"])).unwrap();
    let arr = json.as_array().unwrap();
    assert_eq!(arr.len(), 3);
    assert_eq!(arr[1]["path"], "l/b.sql");
    assert_eq!(arr[1]["size"], 10);
    assert_eq!(arr[1]["is_dir"], false);
    assert!(arr[1]["mtime"].as_i64().unwrap() > 1_600_000_000);
    assert!(arr[1]["mtime_str"].as_str().unwrap().ends_with('Z'));
    assert_eq!(arr[2]["is_dir"], true);
    // Exclusive and enum flags are refused with clear messages.
    let o = c.run_with(&["list", "-r", "-s", "size", "l/"], None, &[]);
    assert!(!o.status.success());
    let o = c.run_with(&["list", "-o", "yaml", "l/"], None, &[]);
    assert!(String::from_utf8_lossy(&o.stderr).contains("yaml is not included in short,long,json"));

    let stat = c.ok(&["stat", "l/"]);
    assert_eq!(stat, "TotalSize: 18\nEntries: 4\nDirs: 1\nFiles: 3\n");
    let j: serde_json::Value = serde_json::from_str(&c.ok(&["stat", "--json", "l/a.txt"])).unwrap();
    assert_eq!(
        j,
        serde_json::json!({"total_size": 3, "entries": 1, "dirs": 0, "files": 1})
    );

    c.ok(&["rm", "l/a.txt"]);
    assert_eq!(c.ok(&["list", "-f", "l/"]), "l/b.sql\n");
    c.ok(&["rm", "-r", "l"]);
    let err = c.fail(&["list", "l/"]);
    assert!(
        err.contains("directory not found"),
        "[{}] after rm -r: {err}",
        c.backend
    );
}

fn mkdir_rmdir(c: &Ctx) {
    c.ok(&["mkdir", "m/n"]);
    if c.has_dirs() {
        assert_eq!(c.ok(&["list", "m/"]), "m/n/\n");
        c.push("m/n/f", b"x", &[], &[]);
        let err = c.fail(&["rmdir", "m/n"]);
        assert!(err.contains("not empty"), "{err}");
        c.ok(&["rm", "m/n/f"]);
        c.ok(&["rmdir", "m/n"]);
        assert_eq!(c.ok(&["list", "m/"]), "");
    } else {
        let err = c.fail(&["list", "m/"]);
        assert!(
            err.contains("directory not found"),
            "mkdir is a no-op on object stores: {err}"
        );
        c.ok(&["rmdir", "m/n"]);
    }
}

fn compression(c: &Ctx) {
    let text = sql(400_000);
    for algo in [
        "gzip",
        "pgzip-best-speed",
        "deflate-default",
        "zstd",
        "zstd-fastest",
        "zstd-best-compression",
        "lz4",
    ] {
        let name = format!("z/{algo}");
        c.push(&name, &text, &["-z", algo], &[]);
        let stored = c.pull(&name, &[], &[]);
        assert!(
            stored.len() < text.len() / 3,
            "[{}] {algo} stored {} bytes",
            c.backend,
            stored.len()
        );
        assert_eq!(
            c.pull(&name, &["-d", algo], &[]),
            text,
            "[{}] {algo}",
            c.backend
        );
        // Truncated object: pull must fail, not return a short dump.
        let cut = format!("z/{algo}.cut");
        c.push(&cut, &stored[..stored.len() * 2 / 3], &[], &[]);
        let o = c.run_with(&["pull", "-d", algo, &cut, "-"], None, &[]);
        assert!(
            !o.status.success(),
            "[{}] truncated {algo} pulled silently",
            c.backend
        );
        assert!(o.stdout.len() < text.len());
    }
    let err = c.fail_env(&["push", "-z", "s2-default", "-", "z/s2"], Some(b"x"), &[]);
    assert!(err.contains("not supported"), "{err}");
    let o = c.run_with(&["push", "-z", "brotli", "-", "z/b"], Some(b"x"), &[]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("brotli is not included in"));
    // zstd's multithreaded mode (the default where more than two cores are available) writes
    // the same format.
    let d = data(3 << 20, 21);
    c.push(
        "zmt/obj",
        &d,
        &["-z", "zstd"],
        &[("BACKUPREPO_ZSTD_WORKERS", "2")],
    );
    assert_eq!(
        c.pull("zmt/obj", &["-d", "zstd"], &[]),
        d,
        "[{}] zstd workers",
        c.backend
    );
}

fn encryption_cfb(c: &Ctx) {
    let env = [
        ("DATASAFED_ENCRYPTION_ALGORITHM", "AES-256-CFB"),
        ("DATASAFED_ENCRYPTION_PASS_PHRASE", "pass-phrase-1"),
    ];
    let d = sql(100_000);
    c.push("e/dump.sql", &d, &["-z", "zstd"], &env);
    assert_eq!(c.pull("e/dump.sql", &["-d", "zstd"], &env), d);
    let plain_view =
        String::from_utf8(c.ok_env(&["list", "-o", "long", "e/"], None, &env)).unwrap();
    let raw_view = c.ok(&["list", "-o", "long", "e/"]);
    let size = |s: &str| s.trim().split('\t').nth(1).unwrap().parse::<u64>().unwrap();
    assert!(plain_view.trim().ends_with("\te/dump.sql"), "{plain_view}");
    assert!(raw_view.trim().ends_with("\te/dump.sql.enc"), "{raw_view}");
    assert_eq!(size(&raw_view), size(&plain_view) + 16);
    // Non-.enc objects are hidden from an encrypted listing.
    c.push("e/plain.txt", b"visible only raw", &[], &[]);
    let listed = String::from_utf8(c.ok_env(&["list", "e/"], None, &env)).unwrap();
    assert_eq!(listed, "e/dump.sql\n");
    c.ok_env(&["rm", "e/dump.sql"], None, &env);
    assert_eq!(c.ok(&["list", "e/"]), "e/plain.txt\n");
}

fn encryption_aead(c: &Ctx) {
    let env = [
        ("DATASAFED_ENCRYPTION_ALGORITHM", "AES-256-GCM-STREAM"),
        ("DATASAFED_ENCRYPTION_PASS_PHRASE", "pass-phrase-2"),
    ];
    let d = data(500_000, 7);
    c.push("g/obj", &d, &[], &env);
    assert_eq!(c.pull("g/obj", &[], &env), d);
    let listed = String::from_utf8(c.ok_env(&["list", "-o", "long", "g/"], None, &env)).unwrap();
    assert!(listed.contains("\t500000\tg/obj"), "{listed}");
    let raw = c.pull("g/obj.enc", &[], &[]);
    // Tampered: one flipped bit in the middle.
    let mut t = raw.clone();
    t[raw.len() / 2] ^= 0x10;
    c.push("g/tampered.enc", &t, &[], &[]);
    let o = c.run_with(&["pull", "g/tampered", "-"], None, &env);
    assert_eq!(
        o.status.code(),
        Some(1),
        "[{}] tampered object pulled",
        c.backend
    );
    assert!(String::from_utf8_lossy(&o.stderr).contains("failed authentication"));
    assert!(
        o.stdout.len() < d.len() / 2 + 70_000,
        "no unverified data past the bad chunk"
    );
    // Truncated at a chunk boundary and mid-chunk.
    for cut in [48 + 3 * (65536 + 16), raw.len() - 1] {
        c.push("g/cut.enc", &raw[..cut], &[], &[]);
        let o = c.run_with(&["pull", "g/cut", "-"], None, &env);
        assert_eq!(
            o.status.code(),
            Some(1),
            "[{}] truncated at {cut} pulled",
            c.backend
        );
    }
    // Wrong pass phrase.
    let wrong = [
        ("DATASAFED_ENCRYPTION_ALGORITHM", "AES-256-GCM-STREAM"),
        ("DATASAFED_ENCRYPTION_PASS_PHRASE", "nope"),
    ];
    let err = c.fail_env(&["pull", "g/obj", "-"], None, &wrong);
    assert!(err.contains("wrong encryption pass phrase"), "{err}");
    assert!(!err.contains("pass-phrase-2") && !err.contains("nope\n"));
    let err = c.fail_env(
        &["list", "g/"],
        None,
        &[("DATASAFED_ENCRYPTION_ALGORITHM", "AES-256-CFB")],
    );
    assert!(
        err.contains("encryption pass phrase should not be empty"),
        "{err}"
    );
}

/// Kill a push mid-stream: the target keeps its old object (or stays absent) and no temporary
/// object shows in listings. SIGKILL gives no chance to clean up; SIGTERM aborts the upload.
/// Push to `target` from a pipe: feed 20 MiB (several parts in flight), stall with the pipe
/// still open, then send `signal`. Returns the push's exit status and stderr.
fn kill_push_midway(c: &Ctx, target: &str, signal: &str) -> std::process::Output {
    kill_push_after(c, target, signal, 20, &[])
}

/// As [`kill_push_midway`], after `mib` MiB, with `env` set for the push.
fn kill_push_after(
    c: &Ctx,
    target: &str,
    signal: &str,
    mib: usize,
    env: &[(&str, &str)],
) -> std::process::Output {
    let mut cmd = c.command(&["push", "-", target]);
    cmd.envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let chunk = data(1 << 20, 3);
    for _ in 0..mib {
        use std::io::Write;
        stdin.write_all(&chunk).unwrap();
    }
    std::thread::sleep(Duration::from_millis(1500));
    let st = std::process::Command::new("kill")
        .args([&format!("-{signal}"), &child.id().to_string()])
        .status()
        .unwrap();
    assert!(st.success());
    let out = child.wait_with_output().unwrap();
    drop(stdin);
    out
}

fn interrupted_push_leaves_nothing(c: &Ctx) {
    c.push("int/existing", b"the old object", &[], &[]);
    for (signal, target) in [
        ("KILL", "int/existing"),
        ("TERM", "int/existing"),
        ("KILL", "int/new"),
        ("TERM", "int/new"),
    ] {
        let out = kill_push_midway(c, target, signal);
        assert!(
            !out.status.success(),
            "[{}] killed push succeeded",
            c.backend
        );
        if signal == "TERM" {
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(err.contains("interrupted"), "[{}] {err}", c.backend);
        }
        let listed = c.lines(&["list", "-r", "/"]);
        assert_eq!(
            listed,
            vec!["int/", "int/existing"],
            "[{}] after {signal} of {target}",
            c.backend
        );
        assert_eq!(c.pull("int/existing", &[], &[]), b"the old object");
    }
}

/// `bench` measures, recommends and leaves nothing, also when stopped by a signal half-way.
fn bench_leaves_nothing(c: &Ctx) {
    let out = c.ok(&["bench", "--size", "6MiB"]);
    assert!(out.contains("recommended: "), "[{}] {out}", c.backend);
    let trials = out.lines().filter(|l| l.ends_with(" MB/s")).count();
    let expected = if c.has_dirs() { 1 } else { 8 };
    assert_eq!(trials, expected, "[{}] {out}", c.backend);
    let nothing = |when: &str| {
        assert_eq!(
            c.lines(&["list", "-r", "/"]),
            Vec::<String>::new(),
            "[{}] {when}",
            c.backend
        );
        let left =
            String::from_utf8(c.ok_env(&["gc", "--dry-run", "--older-than", "0s"], None, &[]))
                .unwrap();
        assert_eq!(left.trim(), "nothing to remove", "[{}] {when}", c.backend);
    };
    nothing("after a run");
    let child = c
        .command(&["bench", "--size", "8GiB"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    let st = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(st.success());
    let out = child.wait_with_output().unwrap();
    assert!(
        !out.status.success(),
        "[{}] bench survived SIGTERM",
        c.backend
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("interrupted"), "[{}] {err}", c.backend);
    nothing("after SIGTERM");
}

fn getconf_and_version(c: &Ctx) {
    if c.backend != "local" {
        let root = c.ok(&["getconf", "storage.type"]);
        assert!(!root.trim().is_empty());
        let err = c.fail(&["getconf", "storage.nothing"]);
        assert!(err.contains("config item \"storage.nothing\" not found"));
    }
    assert_eq!(
        c.fail(&["getconf", "noDot"]).trim(),
        "Error: invalid config item name"
    );
    assert!(c.ok(&["version"]).starts_with("datasafed: "));
}

suite!(
    expected_size_hint_makes_big_parts,
    verify_names_damaged_objects,
    gc_removes_leftovers_of_interrupted_work,
    sizes_round_trip,
    names_and_deep_paths,
    overwrite_replaces,
    missing_things,
    listing_flags,
    mkdir_rmdir,
    compression,
    encryption_cfb,
    encryption_aead,
    interrupted_push_leaves_nothing,
    getconf_and_version,
    bench_leaves_nothing,
);

/// S3: a stream longer than the parts uploaded straight into the object continues into
/// segments (temporary objects copied into the object by UploadPartCopy, then deleted), so its
/// memory stays that of 8 MiB parts however long it runs. The limits are lowered here (2 direct
/// parts, 20 MiB segments) so that 70 MiB reach them: 2 direct parts, then 3 full segments of
/// 2 parts and a short last one.
#[test]
fn s3_long_streams_continue_into_segments() {
    let Some(c) = common::ctx("s3", "segments") else {
        return;
    };
    let limits = [
        ("BACKUPREPO_S3_DIRECT_PARTS", "2"),
        ("BACKUPREPO_S3_SEGMENT_SIZE", "20Mi"),
    ];
    let d = data((70 << 20) + 12345, 21);
    c.push("seg/plain", &d, &[], &limits);
    assert_eq!(c.pull("seg/plain", &[], &[]), d);
    let o = c.run_with(&["verify", "seg/"], None, &[]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(0), "{out}");
    assert!(out.contains("1 objects verified, 0 damaged"), "{out}");
    // Nothing is left: no segment, no incomplete upload.
    assert_eq!(c.lines(&["list", "-r", "/"]), vec!["seg/", "seg/plain"]);
    let left =
        String::from_utf8(c.ok_env(&["gc", "--dry-run", "--older-than", "0s"], None, &[])).unwrap();
    assert_eq!(left.trim(), "nothing to remove");

    // Killed while a segment is open: gc finds the object's upload and the segment's, and
    // removes both without touching the objects.
    let out = kill_push_after(&c, "seg/killed", "KILL", 30, &limits);
    assert!(!out.status.success());
    let found =
        String::from_utf8(c.ok_env(&["gc", "--dry-run", "--older-than", "0s"], None, &[])).unwrap();
    let uploads: Vec<_> = found
        .lines()
        .filter(|l| l.contains("incomplete multipart upload of "))
        .collect();
    assert_eq!(uploads.len(), 2, "{found}");
    assert!(
        uploads
            .iter()
            .any(|l| l.contains("/.backuprepo-tmp/segment-")),
        "{found}"
    );
    c.ok_env(&["gc", "--older-than", "0s"], None, &[]);
    let after =
        String::from_utf8(c.ok_env(&["gc", "--dry-run", "--older-than", "0s"], None, &[])).unwrap();
    assert_eq!(after.trim(), "nothing to remove");
    assert_eq!(c.pull("seg/plain", &[], &[]), d);
    assert_eq!(c.lines(&["list", "-r", "/"]), vec!["seg/", "seg/plain"]);
}

/// S3 with `env_auth = true` (credentials from AWS_* variables, instance roles, IRSA): only
/// OpenDAL finds them, so pushes go through its writer; a multi-part stream round-trips.
#[test]
fn s3_env_auth_pushes_through_opendal() {
    let Some(c) = common::ctx("s3", "envauth") else {
        return;
    };
    let text = std::fs::read_to_string(&c.conf).unwrap();
    let key = text
        .lines()
        .find_map(|l| l.strip_prefix("access_key_id = "))
        .unwrap()
        .to_string();
    let secret = text
        .lines()
        .find_map(|l| l.strip_prefix("secret_access_key = "))
        .unwrap()
        .to_string();
    let env_conf: String = text
        .lines()
        .filter(|l| !l.starts_with("access_key_id") && !l.starts_with("secret_access_key"))
        .map(|l| {
            if l.starts_with("env_auth") {
                "env_auth = true\n".to_string()
            } else {
                format!("{l}\n")
            }
        })
        .collect();
    std::fs::write(&c.conf, env_conf).unwrap();
    let env = [
        ("AWS_ACCESS_KEY_ID", key.as_str()),
        ("AWS_SECRET_ACCESS_KEY", secret.as_str()),
    ];
    let d = data((20 << 20) + 7, 31);
    c.push("env/big", &d, &[], &env);
    assert_eq!(c.pull("env/big", &[], &env), d);
}
