//! The store-wide lock: read-modify-write cycles of many threads and many processes on one
//! repository lose no update, and the lock excludes other open file descriptions (threads of
//! one process, and other processes) until it is dropped.
//!
//! The cross-process tests run this test binary again as a child (`child_*` tests are no-ops
//! unless the child environment variables are set).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use backuprepo_api::BackupRepoPhase;
use backuprepo_local::{now, Engine, Error, Store};
use common::*;

const THREADS: usize = 8;
const PROCESSES: usize = 4;
const CYCLES: usize = 25;
const REPO: &str = "shared";

const CHILD_HOME: &str = "BR_LOCAL_TEST_CHILD_HOME";
const CHILD_ID: &str = "BR_LOCAL_TEST_CHILD_ID";
const CHILD_MARKER: &str = "BR_LOCAL_TEST_CHILD_MARKER";

fn create_shared(store: &Store) {
    let lock = store.lock().unwrap();
    store
        .put_repo(&lock, repo(REPO, "local", &[("path", "/x")]), &now())
        .unwrap();
}

/// One read-modify-write cycle adding `key`, under the lock. The pause between read and write
/// gives a writer that is not excluded every chance to interleave.
fn add_annotation(store: &Store, key: &str) {
    let lock = store.lock().unwrap();
    let mut r = store.repo(REPO).unwrap().expect("shared repo exists");
    r.metadata
        .annotations
        .get_or_insert_with(Default::default)
        .insert(key.to_string(), "1".into());
    std::thread::sleep(Duration::from_millis(1));
    store.put_repo(&lock, r, &now()).unwrap();
    drop(lock);
}

fn check_all_present(store: &Store, keys: &[String]) {
    let r = store.repo(REPO).unwrap().unwrap();
    let ann = r.metadata.annotations.clone().unwrap_or_default();
    let missing: Vec<&String> = keys.iter().filter(|k| !ann.contains_key(*k)).collect();
    assert!(
        missing.is_empty(),
        "{} of {} updates lost, e.g. {:?}",
        missing.len(),
        keys.len(),
        &missing[..missing.len().min(5)]
    );
    assert_eq!(ann.len(), keys.len());
    assert_eq!(rv(&r), keys.len() as u64 + 1, "one write per cycle");
    assert_eq!(r.metadata.generation, Some(1), "annotations are not spec");
}

#[test]
fn threads_read_modify_write_under_the_lock_lose_no_update() {
    let tmp = TempDir::new("rmw-threads");
    let store = Store::open(tmp.path()).unwrap();
    create_shared(&store);

    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            // Each thread has its own Store; every lock() opens its own file description.
            let store = Store::open(tmp.path()).unwrap();
            std::thread::spawn(move || {
                for i in 0..CYCLES {
                    add_annotation(&store, &format!("test.example.com/t{t}-{i}"));
                }
            })
        })
        .collect();
    for h in handles {
        h.join().expect("a writer thread failed");
    }
    let keys: Vec<String> = (0..THREADS)
        .flat_map(|t| (0..CYCLES).map(move |i| format!("test.example.com/t{t}-{i}")))
        .collect();
    assert_eq!(keys.len(), 200);
    check_all_present(&store, &keys);
}

/// Child side of [`processes_read_modify_write_under_the_lock_lose_no_update`].
#[test]
fn child_read_modify_write() {
    let (Ok(home), Ok(id)) = (std::env::var(CHILD_HOME), std::env::var(CHILD_ID)) else {
        return;
    };
    let store = Store::open(&home).unwrap();
    for i in 0..CYCLES {
        add_annotation(&store, &format!("test.example.com/p{id}-{i}"));
    }
}

fn child(test: &str, home: &Path, env: &[(&str, String)]) -> Command {
    let mut c = Command::new(std::env::current_exe().unwrap());
    c.args([test, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_HOME, home)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        c.env(k, v);
    }
    c
}

#[test]
fn processes_read_modify_write_under_the_lock_lose_no_update() {
    let tmp = TempDir::new("rmw-procs");
    let store = Store::open(tmp.path()).unwrap();
    create_shared(&store);

    let children: Vec<_> = (0..PROCESSES)
        .map(|p| {
            child(
                "child_read_modify_write",
                tmp.path(),
                &[(CHILD_ID, p.to_string())],
            )
            .spawn()
            .unwrap()
        })
        .collect();
    // This process writes too, at the same time.
    for i in 0..CYCLES {
        add_annotation(&store, &format!("test.example.com/parent-{i}"));
    }
    for c in children {
        let out = c.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "child failed: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        // The child really ran the test (and not zero tests).
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("1 passed"),
            "{}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
    let mut keys: Vec<String> = (0..PROCESSES)
        .flat_map(|p| (0..CYCLES).map(move |i| format!("test.example.com/p{p}-{i}")))
        .collect();
    keys.extend((0..CYCLES).map(|i| format!("test.example.com/parent-{i}")));
    check_all_present(&store, &keys);
}

#[test]
fn lock_excludes_another_thread_until_dropped() {
    let tmp = TempDir::new("lock-thread");
    let store = Store::open(tmp.path()).unwrap();
    let held = store.lock().unwrap();

    let (tx, rx) = mpsc::channel();
    let other = store.clone();
    let h = std::thread::spawn(move || {
        let l = other.lock().unwrap();
        tx.send(Instant::now()).unwrap();
        drop(l);
    });
    assert!(
        rx.recv_timeout(Duration::from_millis(500)).is_err(),
        "a second lock() succeeded while the first was held"
    );
    let released = Instant::now();
    drop(held);
    let acquired = rx
        .recv_timeout(Duration::from_secs(10))
        .expect("the waiting lock() was not granted after the release");
    assert!(acquired >= released);
    h.join().unwrap();

    // And it is reusable afterwards.
    drop(store.lock().unwrap());
}

/// Child side of [`lock_excludes_another_process_until_dropped`]: take the lock, then create
/// the marker file.
#[test]
fn child_take_lock() {
    let (Ok(home), Ok(marker)) = (std::env::var(CHILD_HOME), std::env::var(CHILD_MARKER)) else {
        return;
    };
    let store = Store::open(&home).unwrap();
    let lock = store.lock().unwrap();
    std::fs::write(&marker, "locked").unwrap();
    drop(lock);
}

#[test]
fn lock_excludes_another_process_until_dropped() {
    let tmp = TempDir::new("lock-proc");
    let home = tmp.path().join("home");
    let marker = tmp.path().join("marker");
    let store = Store::open(&home).unwrap();
    let held = store.lock().unwrap();

    let c = child(
        "child_take_lock",
        &home,
        &[(CHILD_MARKER, marker.display().to_string())],
    )
    .spawn()
    .unwrap();
    // Give the child ample time to start and reach lock().
    let deadline = Instant::now() + Duration::from_millis(1500);
    while Instant::now() < deadline {
        assert!(
            !marker.exists(),
            "the child process took the lock while this process held it"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    drop(held);
    let out = c.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("1 passed"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(marker.exists(), "the child never got the lock");
}

#[test]
fn engine_writes_and_other_writers_keep_each_others_updates() {
    let tmp = TempDir::new("engine-rmw");
    let data = tmp.path().join("data");
    std::fs::create_dir(&data).unwrap();
    let store = Store::open(tmp.path().join("home")).unwrap();
    let lock = store.lock().unwrap();
    store
        .put_repo(&lock, local_repo(REPO, &data), &now())
        .unwrap();
    drop(lock);

    // Forced checks (a probe and a status write each) in three threads, while a fourth adds
    // annotations; the engine writes with the resourceVersion it read, so it either wins or
    // retries on fresh data, and never drops an annotation.
    let engines: Vec<_> = (0..3)
        .map(|_| {
            let engine = Engine::new(Store::open(tmp.path().join("home")).unwrap());
            std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                let mut ok = 0;
                for _ in 0..5 {
                    match rt.block_on(engine.reconcile(REPO, true)) {
                        Ok(r) => {
                            assert_eq!(r.phase(), Some(BackupRepoPhase::Ready), "{:#?}", r.status);
                            ok += 1;
                        }
                        // Too many concurrent changes in a row: allowed, reported as such.
                        Err(Error::Conflict(_)) => {}
                        Err(e) => panic!("reconcile: {e:?}"),
                    }
                }
                ok
            })
        })
        .collect();
    let writer = {
        let store = Store::open(tmp.path().join("home")).unwrap();
        std::thread::spawn(move || {
            for i in 0..20 {
                add_annotation(&store, &format!("test.example.com/w-{i}"));
                std::thread::sleep(Duration::from_millis(5));
            }
        })
    };
    writer.join().expect("the annotation writer failed");
    let ok: usize = engines
        .into_iter()
        .map(|h| h.join().expect("an engine thread failed"))
        .sum();
    assert!(ok > 0, "no reconcile got through");

    let r = store.repo(REPO).unwrap().unwrap();
    assert_eq!(r.phase(), Some(BackupRepoPhase::Ready));
    let ann = r.metadata.annotations.clone().unwrap_or_default();
    let missing: Vec<String> = (0..20)
        .map(|i| format!("test.example.com/w-{i}"))
        .filter(|k| !ann.contains_key(k))
        .collect();
    assert!(missing.is_empty(), "lost annotations {missing:?}");
    assert!(
        ann.contains_key(backuprepo_api::constants::BACKUP_REPO_DIGEST_ANNOTATION),
        "{ann:?}"
    );
}
