//! Commands as kubectl users expect them: `create` that says one thing, and `backuprepo rm` (a missing path is an error that names it,
//! `--ignore-not-found` makes it quiet, a directory needs `-r`), while the datasafed face keeps
//! datasafed's rule (removing a missing object succeeds: KubeBlocks' deletion scripts rely on
//! it).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::{Command, Output};

struct Home {
    dir: tempfile::TempDir,
}

impl Home {
    fn run(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_backuprepo"))
            .args(args)
            .env("BACKUPREPO_HOME", self.dir.path().join("home"))
            .env_remove("DATASAFED_BACKEND_BASE_PATH")
            .output()
            .unwrap()
    }
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn rm_names_a_missing_path_and_wants_r_for_a_directory() {
    let h = Home {
        dir: tempfile::tempdir().unwrap(),
    };
    let data = h.dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    let o = h.run(&[
        "create",
        "r",
        "--provider",
        "local",
        "--path",
        data.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let src = h.dir.path().join("f.sql");
    std::fs::write(&src, "select 1;").unwrap();
    let o = h.run(&["push", "--repo", "r", src.to_str().unwrap(), "d1/f.sql"]);
    assert!(o.status.success(), "{}", text(&o));
    let stored = data.join("d1/f.sql");
    assert!(stored.exists());

    // A directory without -r: refused, named, nothing removed.
    let o = h.run(&["rm", "--repo", "r", "d1"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        text(&o).contains("d1: is a directory; use -r"),
        "{}",
        text(&o)
    );
    assert!(stored.exists());

    // A missing file: an error naming it; quiet with --ignore-not-found.
    let o = h.run(&["rm", "--repo", "r", "d1/typo.sql"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("d1/typo.sql: not found"), "{}", text(&o));
    let o = h.run(&["rm", "--repo", "r", "--ignore-not-found", "d1/typo.sql"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(o.stdout.is_empty() && o.stderr.is_empty(), "{}", text(&o));

    // A file, then a directory with -r: removed, and said.
    std::fs::write(&src, "select 2;").unwrap();
    let o = h.run(&["push", "--repo", "r", src.to_str().unwrap(), "d1/g.sql"]);
    assert!(o.status.success(), "{}", text(&o));
    let o = h.run(&["rm", "--repo", "r", "d1/g.sql"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("removed d1/g.sql"), "{}", text(&o));
    assert!(!data.join("d1/g.sql").exists());
    let o = h.run(&["rm", "--repo", "r", "-r", "d1"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("removed d1/"), "{}", text(&o));
    assert!(!stored.exists());

    // The datasafed face: removing a missing object succeeds, as datasafed's does.
    let o = Command::new(env!("CARGO_BIN_EXE_backuprepo"))
        .args(["datasafed", "rm", "d1/typo.sql"])
        .env("DATASAFED_LOCAL_BACKEND_PATH", &data)
        .env_remove("DATASAFED_BACKEND_BASE_PATH")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
}

/// `create` on a storage that fails its check says one thing: the repository was created and
/// failed, with the next steps (it is kept, so a retry of `create` is not the way).
#[test]
fn create_that_fails_its_check_says_so_once_with_the_next_step() {
    let h = Home {
        dir: tempfile::tempdir().unwrap(),
    };
    let missing = h.dir.path().join("no-such-dir");
    let o = h.run(&[
        "create",
        "r",
        "--provider",
        "local",
        "--path",
        missing.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(!out.contains("Successfully"), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("was created, but it is Failed"), "{err}");
    assert!(
        err.contains("does not exist") && err.contains("backuprepo delete r"),
        "{err}"
    );
}

/// A relative `--path` for the `local` provider is refused before anything is stored, with a
/// message that says the path must be absolute.
#[test]
fn a_relative_local_path_is_refused_as_not_absolute() {
    let h = Home {
        dir: tempfile::tempdir().unwrap(),
    };
    let o = h.run(&["create", "r", "--provider", "local", "--path", "rel/dir"]);
    assert_ne!(o.status.code(), Some(0), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("must be an absolute path"), "{err}");
    let o = h.run(&["list"]);
    assert!(
        !String::from_utf8_lossy(&o.stdout).contains("\nr "),
        "{}",
        text(&o)
    );
}
