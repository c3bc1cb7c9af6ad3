//! A read that cannot be done as asked says why, naming the path, on every backend: a path
//! stored encrypted while no encryption is set (and the other way round), a file asked for as a
//! directory (and the other way round), a missing path, an object that is not in the
//! compression asked for. And `push --no-clobber` refuses an existing target, writing nothing,
//! while a plain push replaces it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[macro_use]
mod common;

use common::Ctx;

const ENC: [(&str, &str); 2] = [
    ("DATASAFED_ENCRYPTION_ALGORITHM", "AES-256-GCM-STREAM"),
    ("DATASAFED_ENCRYPTION_PASS_PHRASE", "pass-phrase-1"),
];

fn reads_that_cannot_be_done_say_why(c: &Ctx) {
    let text: Vec<u8> = (1..500)
        .flat_map(|i| format!("{i}\n").into_bytes())
        .collect();
    c.push("d/plain.sql", &text, &[], &[]);
    c.push("d/secret.sql", &text, &[], &ENC);
    c.push("d/g.sql", &text, &["-z", "gzip"], &[]);

    let err = c.fail(&["pull", "d/secret.sql", "-"]);
    assert!(
        err.contains(r#"pull "d/secret.sql": object not found: "d/secret.sql" is stored encrypted (d/secret.sql.enc): set DATASAFED_ENCRYPTION_ALGORITHM and DATASAFED_ENCRYPTION_PASS_PHRASE"#),
        "[{}] {err}",
        c.backend
    );
    let err = c.fail_env(&["pull", "d/plain.sql", "-"], None, &ENC);
    assert!(
        err.contains(r#""d/plain.sql" is stored without encryption"#),
        "[{}] {err}",
        c.backend
    );
    // The wrong noun is never used: a file asked for as a directory, and the other way round.
    let err = c.fail(&["stat", "d/plain.sql/"]);
    assert!(
        err.contains(r#""d/plain.sql" is a file, not a directory: drop the trailing /"#),
        "[{}] {err}",
        c.backend
    );
    let err = c.fail(&["pull", "d", "-"]);
    assert!(
        err.contains(r#""d" is a directory, not a file"#),
        "[{}] {err}",
        c.backend
    );
    for verb in ["stat", "list", "verify"] {
        let err = c.fail(&[verb, "nope/x"]);
        assert!(
            err.contains(&format!(
                r#"{verb} "nope/x": directory not found: there is no file or directory "nope/x""#
            )),
            "[{}] {verb}: {err}",
            c.backend
        );
    }
    // The compression asked for is not the one stored: what the first bytes are instead.
    let err = c.fail(&["pull", "-d", "zstd", "d/plain.sql", "-"]);
    assert!(
        err.contains(
            r#"the object is not zstd data: its first bytes look like plain text: "1\n2\n3\n"#
        ),
        "[{}] {err}",
        c.backend
    );
    let err = c.fail(&["pull", "-d", "zstd", "d/g.sql", "-"]);
    assert!(
        err.contains("its first bytes are gzip's magic number (1f 8b)")
            && err.contains("(-d gzip)"),
        "[{}] {err}",
        c.backend
    );
    // Encrypted and compressed: the head is read after decryption.
    c.push("d/ge.sql", &text, &["-z", "gzip"], &ENC);
    let err = c.fail_env(&["pull", "-d", "lz4", "d/ge.sql", "-"], None, &ENC);
    assert!(err.contains("gzip's magic number"), "[{}] {err}", c.backend);
    // The right settings still read everything.
    let out = c.ok_env(&["pull", "-d", "gzip", "d/ge.sql", "-"], None, &ENC);
    assert_eq!(out, text);
}

fn no_clobber_refuses_and_a_plain_push_replaces(c: &Ctx) {
    c.push("n/f.sql", b"first", &[], &[]);
    let err = c.fail_env(
        &["push", "--no-clobber", "-", "n/f.sql"],
        Some(b"second"),
        &[],
    );
    assert!(
        err.contains(r#""n/f.sql" exists already and --no-clobber was given; nothing was written"#),
        "[{}] {err}",
        c.backend
    );
    assert_eq!(c.ok_env(&["pull", "n/f.sql", "-"], None, &[]), b"first");
    // A new path is written with -n; a plain push replaces.
    c.push("n/g.sql", b"new", &["-n"], &[]);
    assert_eq!(c.ok_env(&["pull", "n/g.sql", "-"], None, &[]), b"new");
    c.push("n/f.sql", b"second", &[], &[]);
    assert_eq!(c.ok_env(&["pull", "n/f.sql", "-"], None, &[]), b"second");
    // Encrypted objects are found under their stored name.
    c.push("n/e.sql", b"enc", &[], &ENC);
    c.fail_env(&["push", "-n", "-", "n/e.sql"], Some(b"x"), &ENC);
}

suite!(
    reads_that_cannot_be_done_say_why,
    no_clobber_refuses_and_a_plain_push_replaces
);
