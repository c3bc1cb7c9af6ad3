//! The engine with credential Secrets: a real S3 server (SeaweedFS from
//! `scripts/test-servers.sh`; skipped when not configured, a failure with BR_REQUIRE_SERVERS=1)
//! follows Secret changes through the digest without leaking them into the stored repository;
//! missing Secrets and unknown providers are reported with KubeBlocks' reasons.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use backuprepo_api::constants::{condition_type as ct, reason, BACKUP_REPO_DIGEST_ANNOTATION};
use backuprepo_api::{secret_data, BackupRepo, BackupRepoPhase};
use backuprepo_local::{now, Engine, Store};
use common::*;

fn put(store: &Store, r: BackupRepo) -> BackupRepo {
    let lock = store.lock().unwrap();
    store.put_repo(&lock, r, &now()).unwrap()
}

fn set_secret_key(store: &Store, value: &str) {
    let mut s = store.secret("default", "s3-cred").unwrap().unwrap();
    s.string_data = Some(BTreeMap::from([(
        "secretAccessKey".to_string(),
        value.to_string(),
    )]));
    let lock = store.lock().unwrap();
    store.put_secret(&lock, s, &now()).unwrap();
    drop(lock);
    let stored = store.secret("default", "s3-cred").unwrap().unwrap();
    assert_eq!(secret_data(&stored).unwrap()["secretAccessKey"], value);
}

fn digest(r: &BackupRepo) -> String {
    annotation(r, BACKUP_REPO_DIGEST_ANNOTATION)
        .expect("digest annotation")
        .to_string()
}

fn unique() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{}-{nanos}", std::process::id())
}

#[tokio::test]
async fn s3_repo_follows_its_secret_without_leaking_it() {
    let Some(env) = s3_env() else {
        return;
    };
    let tmp = TempDir::new("engine-s3");
    let store = Store::open(tmp.path().join("home")).unwrap();
    let mut engine = Engine::new(store.clone());
    engine.probe_timeout = Duration::from_secs(60);

    let lock = store.lock().unwrap();
    store
        .put_secret(
            &lock,
            secret(
                Some("default"),
                "s3-cred",
                &[
                    ("accessKeyId", &env.access_key),
                    ("secretAccessKey", &env.secret_key),
                ],
            ),
            &now(),
        )
        .unwrap();
    drop(lock);
    let mut r = with_credential(
        repo(
            "s3repo",
            "s3-compatible",
            &[
                ("bucket", &env.bucket),
                ("endpoint", &env.endpoint),
                ("forcePathStyle", "true"),
            ],
        ),
        "default",
        "s3-cred",
    );
    r.spec.path_prefix = Some(format!("local-engine-test-{}", unique()));
    put(&store, r);
    let repo_path = store.home().join("backuprepos/s3repo.yaml");

    // Good credentials: Ready, every operation including a real multipart upload passed.
    let r = engine.reconcile("s3repo", false).await.unwrap();
    assert_eq!(r.phase(), Some(BackupRepoPhase::Ready), "{:#?}", r.status);
    let checks = &r.status.as_ref().unwrap().checks;
    assert_eq!(checks.len(), 6, "{checks:?}");
    assert!(checks.iter().all(|c| c.result == "Passed"), "{checks:?}");
    let good_digest = digest(&r);
    let conf = store.tool_config_path("s3repo").unwrap();
    let conf_text = std::fs::read_to_string(&conf).unwrap();
    assert!(
        conf_text.contains(&env.secret_key),
        "the tool config carries the key"
    );
    #[cfg(unix)]
    assert_eq!(mode(&conf), 0o600);
    let text = std::fs::read_to_string(&repo_path).unwrap();
    assert!(
        !text.contains(&env.secret_key),
        "secret in the stored repo:\n{text}"
    );

    // A wrong secret key: the digest changes, a new probe runs and fails on the credentials.
    let wrong = format!("wrong-secret-{}", unique());
    set_secret_key(&store, &wrong);
    let r = engine.reconcile("s3repo", false).await.unwrap();
    assert_ne!(digest(&r), good_digest, "the Secret is part of the digest");
    assert_eq!(r.phase(), Some(BackupRepoPhase::Failed), "{:#?}", r.status);
    let c = condition(&r, ct::PRE_CHECK_PASSED);
    assert_eq!(c.status, "False");
    assert_eq!(c.reason, reason::PRE_CHECK_FAILED);
    assert!(
        c.message.to_lowercase().contains("credentials"),
        "{}",
        c.message
    );
    let checks = &r.status.as_ref().unwrap().checks;
    assert!(checks.iter().any(|c| c.result == "Failed"), "{checks:?}");
    let stored = store.repo("s3repo").unwrap().unwrap();
    assert_eq!(stored.phase(), Some(BackupRepoPhase::Failed));
    assert_eq!(digest(&stored), digest(&r));
    let text = std::fs::read_to_string(&repo_path).unwrap();
    for s in [&wrong, &env.secret_key] {
        assert!(
            !text.contains(s.as_str()),
            "secret in the stored repo:\n{text}"
        );
    }
    let shown = serde_yaml_ng::to_string(&r).unwrap();
    assert!(!shown.contains(&wrong), "{shown}");
    // Nothing outside the Secret's own file holds the wrong key, except possibly the
    // (private) tool config; no repository file does.
    for f in files_under(store.home()) {
        if f.starts_with("secrets/") || f.starts_with("toolconfigs/") {
            continue;
        }
        let body = std::fs::read(store.home().join(&f)).unwrap();
        assert!(
            !String::from_utf8_lossy(&body).contains(&wrong),
            "{f} holds the secret"
        );
    }

    // Fixed again: back to the same digest, Ready.
    set_secret_key(&store, &env.secret_key);
    let r = engine.reconcile("s3repo", false).await.unwrap();
    assert_eq!(digest(&r), good_digest);
    assert_eq!(r.phase(), Some(BackupRepoPhase::Ready), "{:#?}", r.status);
    assert_eq!(
        condition(&r, ct::PRE_CHECK_PASSED).reason,
        reason::PRE_CHECK_PASSED
    );
    assert_eq!(std::fs::read_to_string(&conf).unwrap(), conf_text);
}

#[tokio::test]
async fn missing_secret_is_credential_secret_not_found_until_created() {
    let tmp = TempDir::new("engine-nosecret");
    let store = Store::open(tmp.path().join("home")).unwrap();
    let mut engine = Engine::new(store.clone());
    engine.probe_timeout = Duration::from_secs(20);
    put(
        &store,
        with_credential(
            repo(
                "r",
                "s3-compatible",
                &[
                    ("bucket", "b"),
                    // Nothing listens on the discard port: a quick connection refusal.
                    ("endpoint", "http://127.0.0.1:9"),
                    ("forcePathStyle", "true"),
                ],
            ),
            "team-a",
            "nope",
        ),
    );
    let r = engine.reconcile("r", false).await.unwrap();
    assert_eq!(r.phase(), Some(BackupRepoPhase::Failed));
    let c = condition(&r, ct::PARAMETERS_CHECKED);
    assert_eq!(c.status, "False");
    assert_eq!(c.reason, reason::CREDENTIAL_SECRET_NOT_FOUND);
    assert!(c.message.contains("team-a/nope"), "{}", c.message);
    assert!(r.status.as_ref().unwrap().checks.is_empty(), "no probe");
    assert_eq!(
        store.repo("r").unwrap().unwrap().phase(),
        Some(BackupRepoPhase::Failed),
        "the status is stored"
    );

    // Creating the Secret is picked up by the next reconcile: the parameters pass, the probe
    // runs (and fails on the unreachable endpoint).
    let lock = store.lock().unwrap();
    store
        .put_secret(
            &lock,
            secret(
                Some("team-a"),
                "nope",
                &[("accessKeyId", "AK"), ("secretAccessKey", "SK")],
            ),
            &now(),
        )
        .unwrap();
    drop(lock);
    let r = engine.reconcile("r", false).await.unwrap();
    assert_eq!(condition(&r, ct::PARAMETERS_CHECKED).status, "True");
    assert_eq!(r.phase(), Some(BackupRepoPhase::Failed));
    assert_eq!(
        condition(&r, ct::PRE_CHECK_PASSED).reason,
        reason::PRE_CHECK_FAILED
    );
    assert!(!r.status.as_ref().unwrap().checks.is_empty(), "probed");

    // A credential name that no Secret can have is simply not found.
    put(
        &store,
        with_credential(
            repo("bad-ref", "s3-compatible", &[]),
            "default",
            "My_Secret",
        ),
    );
    let r = engine.reconcile("bad-ref", false).await.unwrap();
    let c = condition(&r, ct::PARAMETERS_CHECKED);
    assert_eq!(
        c.reason,
        reason::CREDENTIAL_SECRET_NOT_FOUND,
        "{}",
        c.message
    );
}

#[tokio::test]
async fn unknown_provider_is_storage_provider_not_found_until_applied() {
    let tmp = TempDir::new("engine-noprovider");
    let data = tmp.path().join("data");
    std::fs::create_dir(&data).unwrap();
    let store = Store::open(tmp.path().join("home")).unwrap();
    let engine = Engine::new(store.clone());
    put(
        &store,
        repo("r", "my-provider", &[("path", &data.display().to_string())]),
    );
    // A reference no provider name can match (uppercase) is reported the same way rather than
    // failing the reconcile.
    put(&store, repo("typo", "Local", &[("path", "/x")]));

    for name in ["r", "typo"] {
        let r = engine.reconcile(name, false).await.unwrap();
        assert_eq!(r.phase(), Some(BackupRepoPhase::Failed), "{name}");
        let c = condition(&r, ct::STORAGE_PROVIDER_READY);
        assert_eq!(c.status, "False", "{name}");
        assert_eq!(c.reason, reason::STORAGE_PROVIDER_NOT_FOUND, "{name}");
        assert!(
            c.message.contains(&r.spec.storage_provider_ref),
            "{name}: {}",
            c.message
        );
        assert_eq!(
            store.repo(name).unwrap().unwrap().phase(),
            Some(BackupRepoPhase::Failed)
        );
    }
    // One bad repository does not stop the others from being reconciled.
    assert_eq!(engine.reconcile_all().await.unwrap().len(), 2);

    // Applying the provider (a copy of the built-in `local`) makes the repository work.
    let mut p = store.provider("local").unwrap().unwrap();
    p.metadata = Default::default();
    p.metadata.name = Some("my-provider".into());
    p.status = None;
    let lock = store.lock().unwrap();
    store.put_provider(&lock, p, &now()).unwrap();
    drop(lock);
    let r = engine.reconcile("r", false).await.unwrap();
    assert_eq!(r.phase(), Some(BackupRepoPhase::Ready), "{:#?}", r.status);
    assert_eq!(condition(&r, ct::STORAGE_PROVIDER_READY).status, "True");
}
