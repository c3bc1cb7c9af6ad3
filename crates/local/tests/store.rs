//! The file store: layout and modes, objects of every kind, metadata stamping, optimistic
//! concurrency, atomic writes and torn files, and name checks.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;

use backuprepo_api::k8s_openapi::ByteString;
use backuprepo_api::{secret_data, BackupRepoPhase, BackupRepoStatus, StorageProviderPhase};
use backuprepo_local::{now, Error, Store};
use common::*;

const DIRS: [&str; 4] = ["backuprepos", "storageproviders", "secrets", "toolconfigs"];

#[test]
#[cfg(unix)]
fn open_creates_private_directories_and_fixes_their_modes() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = TempDir::new("open");
    let home = tmp.path().join("nested").join("home");
    let store = Store::open(&home).unwrap();
    assert_eq!(store.home(), home.as_path());
    for d in DIRS {
        let p = home.join(d);
        assert!(p.is_dir(), "{} not created", p.display());
        assert_eq!(mode(&p), 0o700, "{}", p.display());
    }
    assert_eq!(mode(&home), 0o700, "a home created by the store is private");
    // A home that already exists keeps its mode (it may be shared on purpose).
    let existing = tmp.path().join("existing");
    std::fs::create_dir(&existing).unwrap();
    std::fs::set_permissions(&existing, std::fs::Permissions::from_mode(0o755)).unwrap();
    Store::open(&existing).unwrap();
    assert_eq!(mode(&existing), 0o755);
    // Opening again repairs a directory someone opened up.
    std::fs::set_permissions(home.join("secrets"), std::fs::Permissions::from_mode(0o755)).unwrap();
    Store::open(&home).unwrap();
    assert_eq!(mode(&home.join("secrets")), 0o700);
}

#[test]
fn repos_put_get_list_delete() {
    let tmp = TempDir::new("repos");
    let store = Store::open(tmp.path()).unwrap();
    assert!(store.repos().unwrap().is_empty());
    assert!(store.repo("a").unwrap().is_none());

    let lock = store.lock().unwrap();
    let a = store
        .put_repo(&lock, repo("a", "local", &[("path", "/a")]), &now())
        .unwrap();
    let b = store
        .put_repo(&lock, repo("b", "local", &[("path", "/b")]), &now())
        .unwrap();
    drop(lock);

    assert!(tmp.path().join("backuprepos/a.yaml").is_file());
    let got = store.repo("a").unwrap().expect("stored");
    assert_eq!(got.spec, a.spec);
    assert_eq!(got.metadata.uid, a.metadata.uid);
    assert_eq!(got.spec.config["path"], "/a");
    let names: Vec<String> = store
        .repos()
        .unwrap()
        .iter()
        .map(|r| r.name().to_string())
        .collect();
    assert_eq!(names, ["a", "b"]);

    // A second store on the same home sees the same objects.
    let other = Store::open(tmp.path()).unwrap();
    assert_eq!(other.repo("b").unwrap().unwrap().spec, b.spec);

    let lock = store.lock().unwrap();
    assert!(store.delete_repo(&lock, "a").unwrap());
    assert!(!store.delete_repo(&lock, "a").unwrap(), "second delete");
    drop(lock);
    assert!(store.repo("a").unwrap().is_none());
    assert!(!tmp.path().join("backuprepos/a.yaml").exists());
    let names: Vec<String> = store
        .repos()
        .unwrap()
        .iter()
        .map(|r| r.name().to_string())
        .collect();
    assert_eq!(names, ["b"]);
}

#[test]
fn providers_are_builtins_overridden_by_applied_ones() {
    let tmp = TempDir::new("providers");
    let store = Store::open(tmp.path()).unwrap();
    let builtins = store.providers().unwrap();
    assert_eq!(builtins.len(), 12);
    let names: Vec<&str> = builtins
        .iter()
        .map(|p| p.metadata.name.as_deref().unwrap())
        .collect();
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted, "sorted by name");
    for n in ["local", "s3", "s3-compatible", "minio", "ftp", "azureblob"] {
        assert!(names.contains(&n), "{n} missing from {names:?}");
    }
    for p in &builtins {
        let phase = p.status.as_ref().and_then(|s| s.phase);
        assert_eq!(
            phase,
            Some(StorageProviderPhase::Ready),
            "{:?}",
            p.metadata.name
        );
    }
    let builtin_local = store.provider("local").unwrap().expect("built-in local");
    assert!(store.provider("no-such-provider").unwrap().is_none());

    // Override the built-in `local` with a different template, and add a new provider.
    let mut mine = builtin_local.clone();
    mine.status = None;
    mine.metadata = Default::default();
    mine.metadata.name = Some("local".into());
    mine.spec.datasafed_config_template =
        Some("[storage]\ntype = local\nroot = /override\n".into());
    let mut extra = mine.clone();
    extra.metadata.name = Some("my-provider".into());

    let lock = store.lock().unwrap();
    let stored = store.put_provider(&lock, mine.clone(), &now()).unwrap();
    store.put_provider(&lock, extra, &now()).unwrap();
    drop(lock);
    assert_eq!(stored.metadata.resource_version.as_deref(), Some("1"));
    assert_eq!(
        stored.status.as_ref().and_then(|s| s.phase),
        Some(StorageProviderPhase::Ready),
        "an applied provider is usable for Tool access at once"
    );

    let got = store.provider("local").unwrap().unwrap();
    assert_eq!(got.spec, mine.spec, "the applied provider wins");
    assert_ne!(got.spec, builtin_local.spec);
    let all = store.providers().unwrap();
    assert_eq!(all.len(), 13, "12 built-ins (one overridden) + my-provider");
    let local = all
        .iter()
        .find(|p| p.metadata.name.as_deref() == Some("local"))
        .unwrap();
    assert_eq!(local.spec, mine.spec);
    assert!(all
        .iter()
        .any(|p| p.metadata.name.as_deref() == Some("my-provider")));
    // Other built-ins are untouched.
    assert!(store.provider("s3").unwrap().is_some());
}

#[test]
fn secrets_are_private_and_string_data_is_folded_into_data() {
    let tmp = TempDir::new("secrets");
    let store = Store::open(tmp.path()).unwrap();
    let mut s = secret(
        Some("team-a"),
        "cred",
        &[("accessKeyId", "AKID"), ("secretAccessKey", "s3cr3t-value")],
    );
    s.data = Some(BTreeMap::from([(
        "extra".to_string(),
        ByteString(b"from-data".to_vec()),
    )]));

    let lock = store.lock().unwrap();
    let stored = store.put_secret(&lock, s, &now()).unwrap();
    drop(lock);
    assert!(stored.string_data.is_none());
    assert_eq!(stored.metadata.resource_version.as_deref(), Some("1"));

    let path = tmp.path().join("secrets/team-a/cred.yaml");
    assert!(path.is_file());
    #[cfg(unix)]
    {
        assert_eq!(mode(&path), 0o600);
        assert_eq!(mode(&tmp.path().join("secrets/team-a")), 0o700);
    }
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(!text.contains("stringData"), "{text}");

    let got = store.secret("team-a", "cred").unwrap().expect("stored");
    assert!(got.string_data.is_none());
    let data = got.data.as_ref().unwrap();
    assert_eq!(data["accessKeyId"].0, b"AKID");
    assert_eq!(data["extra"].0, b"from-data");
    let values = secret_data(&got).unwrap();
    assert_eq!(
        values,
        BTreeMap::from([
            ("accessKeyId".to_string(), "AKID".to_string()),
            ("extra".to_string(), "from-data".to_string()),
            ("secretAccessKey".to_string(), "s3cr3t-value".to_string()),
        ])
    );
    assert!(store.secret("other-ns", "cred").unwrap().is_none());

    // stringData overrides a data key of the same name.
    let mut upd = got.clone();
    upd.string_data = Some(BTreeMap::from([(
        "secretAccessKey".to_string(),
        "rotated".to_string(),
    )]));
    let lock = store.lock().unwrap();
    store.put_secret(&lock, upd, &now()).unwrap();
    drop(lock);
    let got = store.secret("team-a", "cred").unwrap().unwrap();
    assert_eq!(secret_data(&got).unwrap()["secretAccessKey"], "rotated");
    assert_eq!(got.metadata.resource_version.as_deref(), Some("2"));
    #[cfg(unix)]
    assert_eq!(mode(&path), 0o600, "still private after a rewrite");

    // No namespace means "default".
    let lock = store.lock().unwrap();
    let d = store
        .put_secret(&lock, secret(None, "plain", &[("k", "v")]), &now())
        .unwrap();
    assert_eq!(d.metadata.namespace.as_deref(), Some("default"));
    assert!(store.secret("default", "plain").unwrap().is_some());

    assert!(store.delete_secret(&lock, "team-a", "cred").unwrap());
    assert!(!store.delete_secret(&lock, "team-a", "cred").unwrap());
    drop(lock);
    assert!(store.secret("team-a", "cred").unwrap().is_none());
}

#[test]
fn metadata_is_stamped_on_create_and_kept_after() {
    let tmp = TempDir::new("stamp");
    let store = Store::open(tmp.path()).unwrap();
    let t0 = now();

    let lock = store.lock().unwrap();
    let created = store
        .put_repo(&lock, repo("r", "local", &[("path", "/x")]), &t0)
        .unwrap();
    drop(lock);
    let uid = created.metadata.uid.clone().expect("uid set on create");
    assert_eq!(uid.len(), 36, "{uid}");
    assert_eq!(uid.matches('-').count(), 4, "{uid}");
    assert_eq!(created.metadata.creation_timestamp.as_ref(), Some(&t0));
    assert_eq!(created.metadata.generation, Some(1));
    assert_eq!(rv(&created), 1);
    let on_disk = store.repo("r").unwrap().unwrap();
    let created_at = on_disk.metadata.creation_timestamp.clone().unwrap();
    assert_eq!(on_disk.metadata.uid.as_deref(), Some(uid.as_str()));

    // Status-only change: same generation, next resourceVersion, same uid and creation time,
    // even when the caller sends other values for them (five seconds later).
    let later = backuprepo_api::k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
        backuprepo_api::k8s_openapi::jiff::Timestamp::from_second(t0.0.as_second() + 5).unwrap(),
    );
    let mut r = on_disk.clone();
    r.status = Some(BackupRepoStatus {
        phase: Some(BackupRepoPhase::Failed),
        ..BackupRepoStatus::default()
    });
    r.metadata.uid = Some("forged-uid".into());
    r.metadata.creation_timestamp = Some(later.clone());
    r.metadata.generation = Some(42);
    let lock = store.lock().unwrap();
    let s1 = store.put_repo(&lock, r, &later).unwrap();
    drop(lock);
    assert_eq!(s1.metadata.generation, Some(1), "status-only change");
    assert_eq!(rv(&s1), 2);
    assert_eq!(s1.metadata.uid.as_deref(), Some(uid.as_str()));
    assert_eq!(s1.metadata.creation_timestamp.as_ref(), Some(&created_at));

    // Annotation-only change: same generation.
    let mut r = store.repo("r").unwrap().unwrap();
    r.metadata
        .annotations
        .get_or_insert_with(BTreeMap::new)
        .insert("example.com/note".into(), "x".into());
    let lock = store.lock().unwrap();
    let s2 = store.put_repo(&lock, r, &now()).unwrap();
    drop(lock);
    assert_eq!(s2.metadata.generation, Some(1));
    assert_eq!(rv(&s2), 3);

    // Spec change: generation + 1.
    let mut r = store.repo("r").unwrap().unwrap();
    r.spec.config.insert("path".into(), "/y".into());
    let lock = store.lock().unwrap();
    let s3 = store.put_repo(&lock, r, &now()).unwrap();
    drop(lock);
    assert_eq!(s3.metadata.generation, Some(2));
    assert_eq!(rv(&s3), 4);

    // Rewriting the same object again: nothing but the resourceVersion moves.
    let r = store.repo("r").unwrap().unwrap();
    let lock = store.lock().unwrap();
    let s4 = store.put_repo(&lock, r, &now()).unwrap();
    drop(lock);
    assert_eq!(s4.metadata.generation, Some(2));
    assert_eq!(rv(&s4), 5);

    let last = store.repo("r").unwrap().unwrap();
    assert_eq!(last.metadata.uid.as_deref(), Some(uid.as_str()));
    assert_eq!(last.metadata.creation_timestamp.as_ref(), Some(&created_at));
    assert_eq!(last.metadata.generation, Some(2));
    assert_eq!(rv(&last), 5);
    assert_eq!(
        last.status.and_then(|s| s.phase),
        Some(BackupRepoPhase::Failed)
    );

    // Deleting and re-creating gives a new object.
    let lock = store.lock().unwrap();
    store.delete_repo(&lock, "r").unwrap();
    let again = store
        .put_repo(&lock, repo("r", "local", &[("path", "/x")]), &now())
        .unwrap();
    drop(lock);
    assert_ne!(again.metadata.uid.as_deref(), Some(uid.as_str()));
    assert_eq!(again.metadata.generation, Some(1));
    assert_eq!(rv(&again), 1);
}

#[test]
fn stale_resource_version_is_a_conflict() {
    let tmp = TempDir::new("conflict");
    let store = Store::open(tmp.path()).unwrap();
    let lock = store.lock().unwrap();
    store
        .put_repo(&lock, repo("r", "local", &[("path", "/x")]), &now())
        .unwrap();
    drop(lock);

    let copy1 = store.repo("r").unwrap().unwrap();
    let mut copy2 = copy1.clone();

    let mut w1 = copy1.clone();
    w1.spec.config.insert("path".into(), "/first".into());
    let lock = store.lock().unwrap();
    store.put_repo(&lock, w1, &now()).unwrap();
    copy2.spec.config.insert("path".into(), "/second".into());
    let err = store.put_repo(&lock, copy2, &now()).unwrap_err();
    drop(lock);
    assert!(matches!(err, Error::Conflict(_)), "{err:?}");
    assert!(err.to_string().contains("\"r\""), "{err}");
    let cur = store.repo("r").unwrap().unwrap();
    assert_eq!(cur.spec.config["path"], "/first", "the loser wrote nothing");
    assert_eq!(rv(&cur), 2);

    // A blind write (no resourceVersion) is accepted.
    let mut blind = repo("r", "local", &[("path", "/blind")]);
    blind.metadata.resource_version = None;
    let lock = store.lock().unwrap();
    assert_eq!(rv(&store.put_repo(&lock, blind, &now()).unwrap()), 3);

    // The object was deleted meanwhile: writing the copy is a conflict, not a re-create.
    let copy = store.repo("r").unwrap().unwrap();
    assert!(store.delete_repo(&lock, "r").unwrap());
    let err = store.put_repo(&lock, copy, &now()).unwrap_err();
    assert!(matches!(err, Error::Conflict(_)), "{err:?}");
    assert!(store.repo("r").unwrap().is_none(), "not re-created");

    // Same rules for Secrets and providers.
    store
        .put_secret(&lock, secret(None, "s", &[("k", "v1")]), &now())
        .unwrap();
    let s_copy = store.secret("default", "s").unwrap().unwrap();
    store.put_secret(&lock, s_copy.clone(), &now()).unwrap();
    let err = store.put_secret(&lock, s_copy, &now()).unwrap_err();
    assert!(matches!(err, Error::Conflict(_)), "{err:?}");
    let deleted = store.secret("default", "s").unwrap().unwrap();
    store.delete_secret(&lock, "default", "s").unwrap();
    let err = store.put_secret(&lock, deleted, &now()).unwrap_err();
    assert!(matches!(err, Error::Conflict(_)), "{err:?}");
    assert!(store.secret("default", "s").unwrap().is_none());

    let mut p = store.provider("local").unwrap().unwrap();
    p.metadata.name = Some("mine".into());
    p.metadata.resource_version = None;
    store.put_provider(&lock, p, &now()).unwrap();
    let p_copy = store.provider("mine").unwrap().unwrap();
    store.put_provider(&lock, p_copy.clone(), &now()).unwrap();
    let err = store.put_provider(&lock, p_copy, &now()).unwrap_err();
    assert!(matches!(err, Error::Conflict(_)), "{err:?}");
    drop(lock);
}

/// Temporary files have unpredictable names and are created exclusively, without following
/// links: a link planted where the previous scheme (`.<file>.tmp-<pid>`) wrote is never
/// written through, and a secret is never world-readable, even while being written.
#[test]
#[cfg(unix)]
fn temporary_files_cannot_be_planted() {
    let tmp = TempDir::new("planted");
    let store = Store::open(tmp.path()).unwrap();
    let victim = tmp.path().join("victim");
    std::fs::write(&victim, "untouched").unwrap();
    let planted = tmp.path().join(format!(
        "backuprepos/.my-repo.yaml.tmp-{}",
        std::process::id()
    ));
    std::os::unix::fs::symlink(&victim, &planted).unwrap();
    let lock = store.lock().unwrap();
    store
        .put_repo(&lock, repo("my-repo", "local", &[("path", "/x")]), &now())
        .unwrap();
    drop(lock);
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "untouched");
    assert!(store.repo("my-repo").unwrap().is_some());
    assert_eq!(mode(&tmp.path().join("backuprepos/my-repo.yaml")), 0o644);
}

#[test]
fn leftover_temporary_files_are_not_objects() {
    let tmp = TempDir::new("tmpfile");
    let store = Store::open(tmp.path()).unwrap();
    let lock = store.lock().unwrap();
    store
        .put_repo(&lock, repo("my-repo", "local", &[("path", "/x")]), &now())
        .unwrap();
    drop(lock);
    let good = std::fs::read_to_string(tmp.path().join("backuprepos/my-repo.yaml")).unwrap();
    // A crash between write and rename leaves these behind: a complete one and a torn one.
    std::fs::write(tmp.path().join("backuprepos/.my-repo.yaml.tmp-123"), &good).unwrap();
    std::fs::write(
        tmp.path().join("backuprepos/.other.yaml.tmp-456"),
        &good[..good.len() / 2],
    )
    .unwrap();
    let all = store.repos().unwrap();
    assert_eq!(all.len(), 1, "{all:?}");
    assert_eq!(all[0].name(), "my-repo");
    assert!(store.repo("other").unwrap().is_none());

    // The next write of the object is unaffected by the leftover.
    let r = store.repo("my-repo").unwrap().unwrap();
    let lock = store.lock().unwrap();
    store.put_repo(&lock, r, &now()).unwrap();
    drop(lock);
    assert_eq!(rv(&store.repo("my-repo").unwrap().unwrap()), 2);
    let entries: Vec<String> = std::fs::read_dir(tmp.path().join("backuprepos"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".tmp-") && !n.ends_with("-123") && !n.ends_with("-456"))
        .collect();
    assert!(entries.is_empty(), "a write left {entries:?}");
}

#[test]
fn torn_files_are_reported_naming_the_file() {
    let tmp = TempDir::new("torn");
    let store = Store::open(tmp.path()).unwrap();
    let lock = store.lock().unwrap();
    let mut r = repo("torn", "local", &[("path", "/x")]);
    // Multi-byte characters, so that some cuts fall inside a character.
    r.metadata.annotations = Some(BTreeMap::from([(
        "example.com/owner".to_string(),
        "équipe données ☕".to_string(),
    )]));
    r.status = Some(BackupRepoStatus {
        phase: Some(BackupRepoPhase::Ready),
        ..BackupRepoStatus::default()
    });
    store.put_repo(&lock, r, &now()).unwrap();
    drop(lock);
    let path = tmp.path().join("backuprepos/torn.yaml");
    let good = std::fs::read_to_string(&path).unwrap();
    assert!(!good.is_ascii(), "{good}");

    let expect_invalid = |what: &str| {
        let err = store.repo("torn").unwrap_err();
        match &err {
            Error::Invalid(m) => assert!(
                m.contains(&path.display().to_string()),
                "{what}: message does not name the file: {m}"
            ),
            other => panic!("{what}: expected Error::Invalid, got {other:?}"),
        }
        let err = store.repos().unwrap_err();
        assert!(
            matches!(&err, Error::Invalid(m) if m.contains("torn.yaml")),
            "{what}: {err:?}"
        );
    };

    // Cut before a required field of the spec.
    let cut = good
        .find("pvReclaimPolicy")
        .expect("pvReclaimPolicy serialised");
    std::fs::write(&path, &good[..cut]).unwrap();
    expect_invalid("cut before pvReclaimPolicy");
    // Cut in the middle of a key.
    let cut = good.find("storageProviderRef").unwrap() + 7;
    std::fs::write(&path, &good[..cut]).unwrap();
    expect_invalid("cut inside a key");
    // Empty file (crash right after creating it, before any data).
    std::fs::write(&path, "").unwrap();
    expect_invalid("empty file");
    // Binary garbage.
    std::fs::write(&path, [0xffu8, 0xfe, 0x00, 0x01, b':', b'\n']).unwrap();
    expect_invalid("garbage");

    // Cut inside a multi-byte character.
    let cut = good.find('☕').unwrap() + 1;
    std::fs::write(&path, &good.as_bytes()[..cut]).unwrap();
    expect_invalid("cut inside a character");

    // Every possible truncation is either still a valid object or a clear Invalid, never
    // a panic or another kind of error.
    for n in 0..good.len() {
        std::fs::write(&path, &good.as_bytes()[..n]).unwrap();
        match store.repo("torn") {
            Ok(Some(r)) => assert_eq!(r.name(), "torn"),
            Ok(None) => panic!("cut at {n}: the file exists"),
            Err(Error::Invalid(m)) => assert!(m.contains("torn.yaml"), "cut at {n}: {m}"),
            Err(e) => panic!("cut at {n}: {e:?}"),
        }
    }

    // Restoring the file restores the object; a torn Secret is reported the same way.
    std::fs::write(&path, &good).unwrap();
    assert!(store.repo("torn").unwrap().is_some());
    let lock = store.lock().unwrap();
    store
        .put_secret(&lock, secret(None, "s", &[("k", "v")]), &now())
        .unwrap();
    drop(lock);
    let spath = tmp.path().join("secrets/default/s.yaml");
    let stext = std::fs::read_to_string(&spath).unwrap();
    std::fs::write(&spath, &stext[..stext.find("metadata").unwrap() + 4]).unwrap();
    let err = store.secret("default", "s").unwrap_err();
    assert!(
        matches!(&err, Error::Invalid(m) if m.contains("s.yaml")),
        "{err:?}"
    );
}

#[test]
fn invalid_names_are_refused_and_nothing_is_written() {
    let tmp = TempDir::new("names");
    let home = tmp.path().join("home");
    let store = Store::open(&home).unwrap();
    let before = files_under(tmp.path());
    let bad = [
        "../x", "A", "", "a/b", "..", ".", "-x", "x-", ".x", "a_b", "a b", "/abs",
    ];
    let long = "a".repeat(254);
    let lock = store.lock().unwrap();
    let before_with_lock = files_under(tmp.path());
    for name in bad.iter().copied().chain([long.as_str()]) {
        let invalid = |what: &str, r: Result<(), Error>| match r {
            Err(Error::Invalid(m)) => assert!(m.contains("invalid name"), "{what} {name:?}: {m}"),
            other => panic!("{what} {name:?}: expected Error::Invalid, got {other:?}"),
        };
        let mut r = repo("placeholder", "local", &[("path", "/x")]);
        r.metadata.name = (!name.is_empty()).then(|| name.to_string());
        invalid("put_repo", store.put_repo(&lock, r, &now()).map(drop));
        invalid("repo", store.repo(name).map(drop));
        invalid("delete_repo", store.delete_repo(&lock, name).map(drop));
        invalid("tool_config_path", store.tool_config_path(name).map(drop));
        invalid(
            "write_tool_config",
            store.write_tool_config(&lock, name, "[storage]\n"),
        );

        let mut p = store.provider("local").unwrap().unwrap();
        p.metadata.name = Some(name.to_string());
        invalid(
            "put_provider",
            store.put_provider(&lock, p, &now()).map(drop),
        );

        let s = secret(Some("default"), name, &[("k", "v")]);
        invalid(
            "put_secret name",
            store.put_secret(&lock, s, &now()).map(drop),
        );
        let s = secret(Some(name), "ok", &[("k", "v")]);
        invalid(
            "put_secret namespace",
            store.put_secret(&lock, s, &now()).map(drop),
        );
        invalid("secret", store.secret("default", name).map(drop));
        invalid("secret namespace", store.secret(name, "ok").map(drop));
        invalid(
            "delete_secret",
            store.delete_secret(&lock, name, "ok").map(drop),
        );
    }
    drop(lock);
    let after = files_under(tmp.path());
    assert_eq!(after, before_with_lock, "something was written");
    assert!(before.iter().all(|f| after.contains(f)));
    assert!(!tmp.path().join("x.yaml").exists());
    assert!(!home.join("x.yaml").exists());
    assert!(store.repos().unwrap().is_empty());
    // Every directory is still empty.
    for d in ["backuprepos", "storageproviders", "toolconfigs"] {
        assert_eq!(std::fs::read_dir(home.join(d)).unwrap().count(), 0, "{d}");
    }
    assert_eq!(
        std::fs::read_dir(home.join("secrets")).unwrap().count(),
        0,
        "no namespace directory was created"
    );
}
