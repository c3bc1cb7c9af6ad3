//! Shell completion through a real bash: the script `completion bash` prints, sourced, asks
//! the binary for candidates, which include the local store's repository names and the
//! providers; and man pages from the same definitions.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

fn backuprepo(home: &std::path::Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_backuprepo"))
        .args(args)
        .env("BACKUPREPO_HOME", home)
        .output()
        .unwrap()
}

/// What bash completes for `words` (the last one being completed).
fn complete(home: &std::path::Path, words: &[&str]) -> Vec<String> {
    let script = backuprepo(home, &["completion", "bash"]);
    assert!(script.status.success());
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("completion.bash");
    std::fs::write(&file, &script.stdout).unwrap();
    let quoted: Vec<String> = words.iter().map(|w| format!("'{w}'")).collect();
    let program = format!(
        "source {}\nCOMP_WORDS=({})\nCOMP_CWORD={}\nCOMP_TYPE=9\n_clap_complete_backuprepo backuprepo '{}' '{}'\nprintf '%s\\n' \"${{COMPREPLY[@]}}\"\n",
        file.display(),
        quoted.join(" "),
        words.len() - 1,
        words[words.len() - 1],
        words[words.len() - 2],
    );
    let out = Command::new("bash")
        .arg("-c")
        .arg(program)
        .env("BACKUPREPO_HOME", home)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.trim().to_string())
        .filter(|l| !l.is_empty())
        .collect()
}

#[test]
fn bash_completes_commands_flags_repositories_and_providers() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    for name in ["orders", "users"] {
        let data = dir.path().join(name);
        std::fs::create_dir(&data).unwrap();
        let o = backuprepo(
            &home,
            &[
                "create",
                name,
                "--provider",
                "local",
                "--path",
                data.to_str().unwrap(),
            ],
        );
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    let subcommands = complete(&home, &["backuprepo", "desc"]);
    assert_eq!(subcommands, ["describe"]);
    assert_eq!(
        complete(&home, &["backuprepo", "describe", ""])[..2],
        ["orders", "users"]
    );
    assert_eq!(
        complete(&home, &["backuprepo", "push", "--repo", "u"]),
        ["users"]
    );
    assert_eq!(complete(&home, &["backuprepo", "gc", "o"]), ["orders"]);
    let providers = complete(&home, &["backuprepo", "create", "--provider=s3"]);
    assert_eq!(providers, ["--provider=s3", "--provider=s3-compatible"]);
    let flags = complete(&home, &["backuprepo", "push", "--no-c"]);
    assert_eq!(flags, ["--no-clobber"]);
    // Completion reads the store; it never makes one.
    let nowhere = dir.path().join("nowhere");
    assert!(complete(&nowhere, &["backuprepo", "describe", ""])
        .iter()
        .all(|c| c.starts_with('-')));
    assert!(!nowhere.exists());
    // Every shell's script; an unknown shell is refused.
    for shell in ["bash", "zsh", "fish", "powershell", "elvish"] {
        let o = backuprepo(&home, &["completion", shell]);
        assert!(o.status.success() && o.stdout.len() > 100, "{shell}");
    }
    let o = backuprepo(&home, &["completion", "tcsh"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("unknown shell \"tcsh\": use bash"));
}

#[test]
fn man_pages_come_from_the_same_definitions() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    let page = backuprepo(&home, &["man"]);
    assert!(page.status.success());
    let text = String::from_utf8_lossy(&page.stdout);
    assert!(text.contains(".TH backuprepo 1"), "{text}");
    let out = dir.path().join("man");
    let o = backuprepo(&home, &["man", "--out", out.to_str().unwrap()]);
    assert!(o.status.success());
    let push = std::fs::read_to_string(out.join("backuprepo-push.1")).unwrap();
    assert!(push.contains(".TH backuprepo-push 1"));
    assert!(push.contains("no\\-clobber"), "{push}");
    // Hidden commands have no page.
    assert!(!out.join("backuprepo-probe-worker.1").exists());
    assert!(out.join("backuprepo-completion.1").exists());
}
