#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The committed files under `deploy/` are the generated ones. `UPDATE_DEPLOY=1` rewrites them.

use std::path::PathBuf;

use backuprepo_deploy::{crds_yaml, generated_files, install_yaml, InstallOptions};

/// Read at run time (`cargo test` sets it): a compiled-in path could name another checkout
/// sharing the build directory.
fn repo_root() -> PathBuf {
    PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("run by cargo test")).join("../..")
}

fn update() -> bool {
    std::env::var("UPDATE_DEPLOY").is_ok_and(|v| v == "1")
}

/// Compares (or with `UPDATE_DEPLOY=1` rewrites) the committed files whose path starts with
/// `prefix`; returns the paths checked.
fn check_files(prefix: &str) -> Vec<String> {
    let mut checked = Vec::new();
    let mut drift = Vec::new();
    for (rel, generated) in generated_files().unwrap() {
        if !rel.starts_with(prefix) {
            continue;
        }
        checked.push(rel.clone());
        let path = repo_root().join(&rel);
        let committed = std::fs::read_to_string(&path).ok();
        if committed.as_deref() == Some(generated.as_str()) {
            continue;
        }
        if update() {
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, &generated).unwrap();
            eprintln!("rewrote {rel}");
            continue;
        }
        let detail = match committed {
            None => "it is missing".to_owned(),
            Some(c) => {
                let (n, (old, new)) = c
                    .lines()
                    .chain(std::iter::repeat("<end of file>"))
                    .zip(generated.lines().chain(std::iter::repeat("<end of file>")))
                    .enumerate()
                    .find(|(_, (a, b))| a != b)
                    .unwrap();
                format!(
                    "first difference at line {}:\n  committed: {old}\n  generated: {new}",
                    n + 1
                )
            }
        };
        drift.push(format!("{rel}: {detail}"));
    }
    assert!(
        drift.is_empty(),
        "the committed manifests drifted from the ones generated from the Rust types:\n{}\n\
         If the change is intended, regenerate them with\n  \
         UPDATE_DEPLOY=1 cargo test -p backuprepo-deploy --test files\nand commit the result.",
        drift.join("\n")
    );
    checked
}

#[test]
fn crd_files_match_generated() {
    let checked = check_files("deploy/crds/");
    assert_eq!(
        checked,
        [
            "deploy/crds/backuprepos.yaml",
            "deploy/crds/storageproviders.yaml"
        ]
    );
    // The two files hold exactly the documents `backuprepo crds` prints.
    let mut joined = String::new();
    for rel in checked {
        let text = std::fs::read_to_string(repo_root().join(&rel)).unwrap();
        joined.push_str(
            &text
                .lines()
                .filter(|l| !l.starts_with('#'))
                .map(|l| format!("{l}\n"))
                .collect::<String>(),
        );
    }
    assert_eq!(joined, crds_yaml());
}

#[test]
fn install_yaml_file_matches_generated() {
    let checked = check_files("deploy/install.yaml");
    assert_eq!(checked, ["deploy/install.yaml"]);
    let text = std::fs::read_to_string(repo_root().join("deploy/install.yaml")).unwrap();
    assert!(text.ends_with(&install_yaml(&InstallOptions::default()).unwrap()));
}

#[test]
fn chart_files_match_generated() {
    let checked = check_files(backuprepo_deploy::CHART_DIR);
    assert!(checked.iter().any(|p| p.ends_with("/Chart.yaml")));
    assert!(checked.iter().any(|p| p.ends_with("/values.yaml")));
    // No file of an older generation is left in the chart (a renamed template would be
    // installed twice).
    let mut stale = Vec::new();
    let mut dirs = vec![repo_root().join(backuprepo_deploy::CHART_DIR)];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                dirs.push(p);
                continue;
            }
            let rel = p
                .strip_prefix(repo_root())
                .unwrap()
                .to_string_lossy()
                .replace("../", "");
            let rel = rel.trim_start_matches('/').to_string();
            if !checked.iter().any(|c| rel.ends_with(c.as_str())) {
                if update() {
                    std::fs::remove_file(&p).unwrap();
                } else {
                    stale.push(rel);
                }
            }
        }
    }
    assert!(
        stale.is_empty(),
        "not generated (remove them, or UPDATE_DEPLOY=1): {stale:?}"
    );
}

#[test]
fn monitoring_files_match_generated() {
    let checked = check_files("deploy/monitoring/");
    assert_eq!(
        checked,
        [
            "deploy/monitoring/rules.yaml",
            "deploy/monitoring/dashboard.json"
        ]
    );
}
