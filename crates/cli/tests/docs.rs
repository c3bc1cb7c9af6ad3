//! The docs cannot rot: every fenced block marked `sh run` in the README and in `docs/*.md`
//! runs, page by page in order (one shell per page, `set -euo pipefail`), in a fresh directory
//! with its own local store, `backuprepo` on PATH (this build), and no cluster. And the README
//! stays a front door: two screens at most, linking every page.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The runnable blocks of a page, in order.
fn runnable(text: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut cur: Option<String> = None;
    for line in text.lines() {
        let t = line.trim_start();
        match cur.as_mut() {
            None if t.starts_with("```sh run") => cur = Some(String::new()),
            None => {}
            Some(b) if t.starts_with("```") => {
                blocks.push(std::mem::take(b));
                cur = None;
            }
            Some(b) => {
                b.push_str(line);
                b.push('\n');
            }
        }
    }
    assert!(cur.is_none(), "a `sh run` block is not closed");
    blocks
}

fn pages() -> Vec<PathBuf> {
    let mut pages = vec![root().join("README.md")];
    let mut docs: Vec<PathBuf> = std::fs::read_dir(root().join("docs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "md"))
        .collect();
    docs.sort();
    pages.extend(docs);
    pages
}

fn run_page(page: &Path, blocks: &[String]) {
    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_backuprepo"), bin.join("backuprepo")).unwrap();
    let work = dir.path().join("work");
    std::fs::create_dir(&work).unwrap();
    let script = format!("set -euo pipefail\n{}", blocks.join("\n"));
    let out = Command::new("bash")
        .arg("-c")
        .arg(&script)
        .current_dir(&work)
        .env_clear()
        .env(
            "PATH",
            format!("{}:/usr/local/bin:/usr/bin:/bin", bin.display()),
        )
        .env("HOME", dir.path())
        .env("BACKUPREPO_HOME", dir.path().join("store"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}: a runnable block failed:\n--- script\n{script}\n--- stdout\n{}\n--- stderr\n{}",
        page.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn every_runnable_block_of_the_docs_runs() {
    let mut ran = Vec::new();
    for page in pages() {
        let text = std::fs::read_to_string(&page).unwrap();
        let blocks = runnable(&text);
        if blocks.is_empty() {
            continue;
        }
        run_page(&page, &blocks);
        ran.push(page.file_name().unwrap().to_string_lossy().into_owned());
    }
    for page in [
        "README.md",
        "one-machine.md",
        "datasafed.md",
        "operations.md",
    ] {
        assert!(
            ran.iter().any(|r| r == page),
            "{page} has no runnable block: {ran:?}"
        );
    }
}

#[test]
fn the_readme_is_a_front_door() {
    let text = std::fs::read_to_string(root().join("README.md")).unwrap();
    let lines = text.lines().count();
    assert!(
        lines <= 110,
        "the README has {lines} lines; move detail into docs/"
    );
    // Its first block is the two commands.
    let first = text
        .split("```sh\n")
        .nth(1)
        .unwrap()
        .split("```")
        .next()
        .unwrap();
    assert!(first.contains("bash scripts/demo.sh") && first.contains("bash scripts/test.sh"));
    // Every page of docs/ is linked, and every local link resolves.
    for page in pages().iter().skip(1) {
        let name = page.file_name().unwrap().to_string_lossy();
        assert!(
            text.contains(&format!("(docs/{name})")),
            "docs/{name} is not linked from the README"
        );
    }
    for link in text.split("](").skip(1) {
        let target = link.split(')').next().unwrap();
        if !target.starts_with("http") {
            assert!(
                root().join(target).exists(),
                "the README links {target}, which does not exist"
            );
        }
    }
}
