//! The engine end to end on a real local directory: Ready with the probe's checks and a
//! private tool config, no write when nothing changed, forced re-checks, a missing directory
//! that fails and then recovers by itself, and `dry_run` storing nothing.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use backuprepo_api::constants::{condition_type as ct, reason, BACKUP_REPO_DIGEST_ANNOTATION};
use backuprepo_api::{BackupRepo, BackupRepoPhase};
use backuprepo_core::store::{NewRepo, RepoStore};
use backuprepo_local::{check_unstored, now, Engine, Error, LocalStore, Store};
use common::*;

const OPERATIONS: [&str; 6] = [
    "bucket check",
    "put",
    "get",
    "list",
    "multipart upload",
    "delete",
];

fn put(store: &Store, r: BackupRepo) -> BackupRepo {
    let lock = store.lock().unwrap();
    store.put_repo(&lock, r, &now()).unwrap()
}

fn repo_file(store: &Store, name: &str) -> String {
    std::fs::read_to_string(
        store
            .home()
            .join("backuprepos")
            .join(format!("{name}.yaml")),
    )
    .unwrap()
}

fn assert_ready_status(r: &BackupRepo) {
    assert_eq!(r.phase(), Some(BackupRepoPhase::Ready), "{:#?}", r.status);
    let s = r.status.as_ref().unwrap();
    let ops: Vec<&str> = s.checks.iter().map(|c| c.operation.as_str()).collect();
    assert_eq!(ops, OPERATIONS);
    for c in &s.checks {
        let want = if c.operation == "multipart upload" {
            "Skipped"
        } else {
            "Passed"
        };
        assert_eq!(c.result, want, "{c:?}");
        assert!(c.duration_ms.is_some(), "{c:?}");
    }
    assert!(s.last_check_time.is_some());
    for t in [
        ct::STORAGE_PROVIDER_READY,
        ct::PARAMETERS_CHECKED,
        ct::STORAGE_CLASS_CREATED,
        ct::PVC_TEMPLATE_CHECKED,
        ct::PRE_CHECK_PASSED,
    ] {
        assert_eq!(condition(r, t).status, "True", "{t}: {:?}", condition(r, t));
    }
    assert_eq!(
        condition(r, ct::PRE_CHECK_PASSED).reason,
        reason::PRE_CHECK_PASSED
    );
}

/// Ready, and the stored kind of object: the digest of what was checked is annotated.
fn assert_ready_local(r: &BackupRepo) {
    assert_ready_status(r);
    assert!(annotation(r, BACKUP_REPO_DIGEST_ANNOTATION).is_some_and(|d| !d.is_empty()));
}

#[tokio::test]
async fn local_repo_becomes_ready_and_is_not_rewritten_when_nothing_changed() {
    let tmp = TempDir::new("engine-ready");
    let data = tmp.path().join("data");
    std::fs::create_dir(&data).unwrap();
    let store = Store::open(tmp.path().join("home")).unwrap();
    put(&store, local_repo("r", &data));
    // A clock the test moves: time passes without sleeping.
    let seconds = Arc::new(AtomicI64::new(now().0.as_second()));
    let engine = Engine::new(store.clone()).with_clock({
        let seconds = seconds.clone();
        Arc::new(move || {
            backuprepo_api::k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                backuprepo_api::k8s_openapi::jiff::Timestamp::from_second(
                    seconds.load(Ordering::SeqCst),
                )
                .unwrap(),
            )
        })
    });

    let r = engine.reconcile("r", false).await.unwrap();
    assert_ready_local(&r);
    let stored = store.repo("r").unwrap().unwrap();
    assert_ready_local(&stored);
    assert_eq!(rv(&stored), rv(&r), "the returned object is the stored one");
    assert_eq!(rv(&stored), 2, "created, then one status write");
    assert_eq!(stored.metadata.generation, Some(1));
    let status = stored.status.clone().unwrap();
    assert_eq!(status.observed_generation, Some(1));
    let first_check = status.last_check_time.clone().unwrap();

    // The rendered tool config of the Ready repository, private.
    let conf = store.tool_config_path("r").unwrap();
    assert!(
        conf.starts_with(store.home().join("toolconfigs")),
        "{}",
        conf.display()
    );
    let text = std::fs::read_to_string(&conf)
        .unwrap_or_else(|e| panic!("tool config {}: {e}", conf.display()));
    assert!(text.contains("type = local"), "{text}");
    assert!(
        text.contains(&format!("root = {}", data.display())),
        "{text}"
    );
    #[cfg(unix)]
    assert_eq!(mode(&conf), 0o600);
    // The probe cleaned up after itself.
    assert_eq!(files_under(&data), Vec::<String>::new());
    // (Local writes stage their temporary files in `.backuprepo-tmp`, which may stay, empty.)
    let left: Vec<_> = std::fs::read_dir(&data)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n != ".backuprepo-tmp")
        .collect();
    assert!(left.is_empty(), "probe left {left:?}");

    // Again at once: nothing changed, nothing written.
    let file_before = repo_file(&store, "r");
    let again = engine.reconcile("r", false).await.unwrap();
    assert_eq!(rv(&again), rv(&stored));
    assert_eq!(repo_file(&store, "r"), file_before);
    assert_eq!(
        again.status.as_ref().unwrap().last_check_time.as_ref(),
        Some(&first_check),
        "no probe ran"
    );
    assert_eq!(std::fs::read_to_string(&conf).unwrap(), text);
    let all = engine.reconcile_all().await.unwrap();
    assert_eq!(all.len(), 1);
    assert_eq!(rv(&all[0]), rv(&stored));

    // A forced check probes again (timestamps have one-second resolution), two seconds later.
    seconds.fetch_add(2, Ordering::SeqCst);
    let forced = engine.reconcile("r", true).await.unwrap();
    assert_ready_local(&forced);
    let second_check = forced
        .status
        .as_ref()
        .unwrap()
        .last_check_time
        .clone()
        .unwrap();
    assert!(
        second_check.0 > first_check.0,
        "{second_check:?} vs {first_check:?}"
    );
    assert_eq!(rv(&forced), rv(&stored) + 1);
    // (Stored timestamps have one-second resolution.)
    let stored_check = store
        .repo("r")
        .unwrap()
        .unwrap()
        .status
        .unwrap()
        .last_check_time;
    assert_eq!(
        stored_check.map(|t| t.0.as_second()),
        Some(second_check.0.as_second())
    );
    assert_eq!(
        forced.metadata.generation,
        Some(1),
        "a check is not a spec change"
    );

    // Deleting the repository removes its tool config.
    let lock = store.lock().unwrap();
    assert!(store.delete_repo(&lock, "r").unwrap());
    drop(lock);
    assert!(!conf.exists(), "tool config {} left behind", conf.display());
    let err = engine.reconcile("r", false).await.unwrap_err();
    assert!(matches!(err, Error::NotFound(_)), "{err:?}");
}

#[tokio::test]
async fn missing_directory_fails_then_recovers_by_itself() {
    let tmp = TempDir::new("engine-recover");
    let data = tmp.path().join("not-yet");
    let store = Store::open(tmp.path().join("home")).unwrap();
    put(&store, local_repo("r", &data));
    let engine = Engine::new(store.clone());

    let r = engine.reconcile("r", false).await.unwrap();
    assert_eq!(r.phase(), Some(BackupRepoPhase::Failed), "{:#?}", r.status);
    let c = condition(&r, ct::PRE_CHECK_PASSED);
    assert_eq!(c.status, "False");
    assert_eq!(c.reason, reason::PRE_CHECK_FAILED);
    assert!(c.message.contains("does not exist"), "{}", c.message);
    assert!(
        c.message.contains(&data.display().to_string()),
        "the message names the directory: {}",
        c.message
    );
    // The basic checks passed; only the probe failed.
    assert_eq!(condition(&r, ct::PARAMETERS_CHECKED).status, "True");
    let s = r.status.as_ref().unwrap();
    assert_eq!(s.checks.len(), 6);
    assert_eq!(s.checks[0].operation, "bucket check");
    assert_eq!(s.checks[0].result, "Failed");
    assert!(
        s.checks[1..].iter().all(|c| c.result == "Skipped"),
        "{:?}",
        s.checks
    );
    assert!(s.last_check_time.is_some());
    let conf = store.tool_config_path("r").unwrap();
    assert!(
        !conf.exists(),
        "no tool config for a repository that is not Ready"
    );
    let stored = store.repo("r").unwrap().unwrap();
    assert_eq!(stored.phase(), Some(BackupRepoPhase::Failed));

    std::fs::create_dir(&data).unwrap();

    // With the default retry interval (60 s) a failed check is not repeated at once.
    let still = engine.reconcile("r", false).await.unwrap();
    assert_eq!(still.phase(), Some(BackupRepoPhase::Failed));
    assert_eq!(rv(&still), rv(&stored), "nothing written");

    // Once the retry interval has passed, the plain reconcile re-checks and recovers.
    let mut eager = Engine::new(store.clone());
    eager.settings.retry_failed_interval = Some(Duration::from_secs(0));
    let r = eager.reconcile("r", false).await.unwrap();
    assert_ready_local(&r);
    assert_eq!(rv(&r), rv(&stored) + 1);
    assert!(conf.is_file(), "tool config written once Ready");
    assert_eq!(
        store.repo("r").unwrap().unwrap().phase(),
        Some(BackupRepoPhase::Ready)
    );

    // No retry at all without an interval, even when the storage goes away again.
    std::fs::remove_dir_all(&data).unwrap();
    let mut never = Engine::new(store.clone());
    never.settings.recheck_interval = None;
    let r = never.reconcile("r", false).await.unwrap();
    assert_eq!(
        r.phase(),
        Some(BackupRepoPhase::Ready),
        "no re-check was due"
    );
    // ...but a forced check sees it.
    let r = never.reconcile("r", true).await.unwrap();
    assert_eq!(r.phase(), Some(BackupRepoPhase::Failed));
}

#[tokio::test]
async fn invalid_parameters_fail_without_probing() {
    let tmp = TempDir::new("engine-params");
    let store = Store::open(tmp.path().join("home")).unwrap();
    put(&store, repo("rel", "local", &[("path", "relative/dir")]));
    put(&store, repo("nopath", "local", &[]));
    let engine = Engine::new(store.clone());
    for name in ["rel", "nopath"] {
        let r = engine.reconcile(name, false).await.unwrap();
        assert_eq!(r.phase(), Some(BackupRepoPhase::Failed), "{name}");
        let c = condition(&r, ct::PARAMETERS_CHECKED);
        assert_eq!(c.status, "False", "{name}");
        assert_eq!(c.reason, "InvalidParameters", "{name}");
        assert!(c.message.contains("path"), "{name}: {}", c.message);
        assert!(
            r.status.as_ref().unwrap().checks.is_empty(),
            "{name}: no probe"
        );
        assert!(!store.tool_config_path(name).unwrap().exists());
    }
    assert!(!tmp.path().join("home").join("relative").exists());
}

/// `create --dry-run` on the local store: the store's admission, then the check of a
/// repository stored nowhere (what the command runs).
async fn dry_run(local: &LocalStore, repo: BackupRepo) -> anyhow::Result<BackupRepo> {
    let new = NewRepo {
        repo,
        secret: Default::default(),
        make_default: false,
    };
    let name = local.admit(&new).await?;
    let mut repo = new.repo;
    repo.metadata.name = Some(name);
    let provider = local.provider(&repo.spec.storage_provider_ref).await?;
    let (settings, timeout) = local.check_settings();
    Ok(check_unstored(
        &settings,
        timeout,
        repo,
        Some(&provider),
        Default::default(),
    )
    .await)
}

#[tokio::test]
async fn dry_run_stores_nothing_and_returns_a_status() {
    let tmp = TempDir::new("engine-dry");
    let data = tmp.path().join("data");
    std::fs::create_dir(&data).unwrap();
    let home = tmp.path().join("home");
    let store = Store::open(&home).unwrap();
    let local = LocalStore::new(Engine::new(store.clone()));
    // What the store holds (the lock file is not an object).
    let stored_files = |h: &std::path::Path| -> Vec<String> {
        files_under(h)
            .into_iter()
            .filter(|f| f != ".lock")
            .collect()
    };

    let r = dry_run(&local, local_repo("dry", &data)).await.unwrap();
    assert_ready_status(&r);
    assert_eq!(stored_files(&home), Vec::<String>::new(), "nothing stored");
    assert!(store.repo("dry").unwrap().is_none());
    assert!(store.repos().unwrap().is_empty());
    assert!(!store.tool_config_path("dry").unwrap().exists());
    assert_eq!(files_under(&data), Vec::<String>::new());

    let r = dry_run(&local, local_repo("dry", &tmp.path().join("missing")))
        .await
        .unwrap();
    assert_eq!(r.phase(), Some(BackupRepoPhase::Failed));
    assert!(condition(&r, ct::PRE_CHECK_PASSED)
        .message
        .contains("does not exist"));
    assert_eq!(stored_files(&home), Vec::<String>::new(), "nothing stored");

    // A dry run of a stored repository's name is refused, as `create` would be, and leaves
    // the stored one alone.
    let stored = put(&store, local_repo("dry", &data));
    let before = repo_file(&store, "dry");
    let err = dry_run(&local, local_repo("dry", &tmp.path().join("missing")))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("already exists"), "{err}");
    assert_eq!(repo_file(&store, "dry"), before);
    assert_eq!(rv(&store.repo("dry").unwrap().unwrap()), rv(&stored));
    assert!(!store.tool_config_path("dry").unwrap().exists());
}
