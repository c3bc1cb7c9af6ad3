//! Test harness: runs the real binary against a real backend. Backends come from the
//! environment written by `scripts/test-servers.sh start` (BR_* variables); `local` always works.
//! When BR_REQUIRE_SERVERS=1 (CI), a missing server is a failure, not a skip.

#![allow(dead_code, unused_macros, clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

pub struct Ctx {
    pub backend: &'static str,
    pub conf: PathBuf,
    pub env: Vec<(String, String)>,
    pub base: String,
    pub _dir: tempfile::TempDir,
}

fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_backuprepo")
}

/// A fresh context with a unique base path, or `None` when the backend is not configured.
pub fn ctx(backend: &'static str, test: &str) -> Option<Ctx> {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("datasafed.conf");
    let mut env = vec![];
    let text = match backend {
        "local" => {
            let root = dir.path().join("repo");
            std::fs::create_dir(&root).unwrap();
            env.push((
                "DATASAFED_LOCAL_BACKEND_PATH".to_string(),
                root.display().to_string(),
            ));
            String::new()
        }
        "s3" => {
            let Some(ep) = var("BR_S3_ENDPOINT") else {
                return missing(backend);
            };
            s3_conf(
                &ep,
                &var("BR_S3_ACCESS_KEY")?,
                &var("BR_S3_SECRET_KEY")?,
                &var("BR_S3_BUCKET")?,
            )
        }
        "ftp" => {
            let Some(host) = var("BR_FTP_HOST") else {
                return missing(backend);
            };
            format!(
                "[storage]\ntype = ftp\nhost = {host}\nport = {}\nuser = {}\npass.need_obscure = {}\ntls = false\n",
                var("BR_FTP_PORT")?,
                var("BR_FTP_USER")?,
                var("BR_FTP_PASS")?
            )
        }
        "azure" => {
            let Some(ep) = var("BR_AZ_ENDPOINT") else {
                return missing(backend);
            };
            az_conf(
                &ep,
                &var("BR_AZ_ACCOUNT")?,
                &var("BR_AZ_KEY")?,
                &var("BR_AZ_CONTAINER")?,
            )
        }
        other => panic!("unknown backend {other}"),
    };
    std::fs::write(&conf, text).unwrap();
    let base = format!("t-{test}-{}", std::process::id());
    env.push(("DATASAFED_BACKEND_BASE_PATH".to_string(), base.clone()));
    Some(Ctx {
        backend,
        conf,
        env,
        base,
        _dir: dir,
    })
}

pub fn s3_conf(endpoint: &str, key: &str, secret: &str, bucket: &str) -> String {
    format!(
        "[storage]\ntype = s3\nprovider = Minio\nenv_auth = false\naccess_key_id = {key}\nsecret_access_key = {secret}\nregion = \nendpoint = {endpoint}\nroot = {bucket}\nno_check_certificate = false\nno_check_bucket = \nforce_path_style = true\nchunk_size = 50Mi\n"
    )
}

pub fn az_conf(endpoint: &str, account: &str, key: &str, container: &str) -> String {
    format!(
        "[storage]\ntype = azureblob\naccount = {account}\nkey = {key}\nendpoint = {endpoint}\nroot = {container}\nno_check_container = false\nchunk_size = 50Mi\n"
    )
}

fn missing(backend: &str) -> Option<Ctx> {
    if var("BR_REQUIRE_SERVERS").is_some() {
        panic!("backend {backend} is required (BR_REQUIRE_SERVERS) but its server variables are not set; run scripts/test-servers.sh start");
    }
    eprintln!("skipping {backend}: start the servers with scripts/test-servers.sh and source their env file");
    None
}

impl Ctx {
    pub fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(bin());
        c.arg("datasafed").arg("-c").arg(&self.conf).args(args);
        for k in [
            "DATASAFED_LOCAL_BACKEND_PATH",
            "DATASAFED_BACKEND_BASE_PATH",
            "DATASAFED_ENCRYPTION_ALGORITHM",
            "DATASAFED_ENCRYPTION_PASS_PHRASE",
        ] {
            c.env_remove(k);
        }
        for (k, v) in &self.env {
            c.env(k, v);
        }
        c
    }

    pub fn run_with(
        &self,
        args: &[&str],
        stdin: Option<&[u8]>,
        extra_env: &[(&str, &str)],
    ) -> Output {
        let mut c = self.command(args);
        for (k, v) in extra_env {
            c.env(k, v);
        }
        c.stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
        let mut child = c.spawn().unwrap();
        if let Some(data) = stdin {
            let mut s = child.stdin.take().unwrap();
            let data = data.to_vec();
            std::thread::spawn(move || {
                let _ = s.write_all(&data);
            });
        }
        child.wait_with_output().unwrap()
    }

    /// Run and require success; returns stdout.
    pub fn ok_env(&self, args: &[&str], stdin: Option<&[u8]>, env: &[(&str, &str)]) -> Vec<u8> {
        let o = self.run_with(args, stdin, env);
        assert!(
            o.status.success(),
            "[{}] {:?} failed: {}",
            self.backend,
            args,
            String::from_utf8_lossy(&o.stderr)
        );
        o.stdout
    }

    pub fn ok(&self, args: &[&str]) -> String {
        String::from_utf8(self.ok_env(args, None, &[])).unwrap()
    }

    /// Run and require exit code 1 with an `Error: ` line; returns stderr.
    pub fn fail_env(&self, args: &[&str], stdin: Option<&[u8]>, env: &[(&str, &str)]) -> String {
        let o = self.run_with(args, stdin, env);
        let err = String::from_utf8_lossy(&o.stderr).into_owned();
        assert_eq!(
            o.status.code(),
            Some(1),
            "[{}] {:?} should fail with exit 1; stderr: {err}",
            self.backend,
            args
        );
        assert!(
            err.contains("Error: "),
            "[{}] no Error: prefix in {err:?}",
            self.backend
        );
        err
    }

    pub fn fail(&self, args: &[&str]) -> String {
        self.fail_env(args, None, &[])
    }

    pub fn push(&self, rpath: &str, data: &[u8], flags: &[&str], env: &[(&str, &str)]) {
        let mut args = vec!["push"];
        args.extend_from_slice(flags);
        args.extend_from_slice(&["-", rpath]);
        self.ok_env(&args, Some(data), env);
    }

    pub fn pull(&self, rpath: &str, flags: &[&str], env: &[(&str, &str)]) -> Vec<u8> {
        let mut args = vec!["pull"];
        args.extend_from_slice(flags);
        args.extend_from_slice(&[rpath, "-"]);
        self.ok_env(&args, None, env)
    }

    pub fn lines(&self, args: &[&str]) -> Vec<String> {
        let mut v: Vec<String> = self.ok(args).lines().map(str::to_string).collect();
        v.sort();
        v
    }

    pub fn has_dirs(&self) -> bool {
        matches!(self.backend, "local" | "ftp")
    }
}

/// Deterministic pseudo-random bytes (xorshift), incompressible enough for size checks.
pub fn data(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// Compressible text, like a SQL dump.
pub fn sql(len: usize) -> Vec<u8> {
    let mut v = Vec::with_capacity(len + 64);
    let mut i = 0u64;
    while v.len() < len {
        v.extend_from_slice(
            format!(
                "INSERT INTO t VALUES ({i}, 'name {i}', {});\n",
                i * 7 % 1000
            )
            .as_bytes(),
        );
        i += 1;
    }
    v.truncate(len);
    v
}

/// One test function per backend: `mod local`, `mod s3`, `mod ftp`, `mod azure`, each running
/// every case with a fresh [`Ctx`] (skipped when the backend's server is not configured).
macro_rules! suite {
    ($($case:ident),* $(,)?) => {
        mod local { $( #[test] fn $case() { if let Some(c) = crate::common::ctx("local", stringify!($case)) { super::$case(&c) } } )* }
        mod s3 { $( #[test] fn $case() { if let Some(c) = crate::common::ctx("s3", stringify!($case)) { super::$case(&c) } } )* }
        mod ftp { $( #[test] fn $case() { if let Some(c) = crate::common::ctx("ftp", stringify!($case)) { super::$case(&c) } } )* }
        mod azure { $( #[test] fn $case() { if let Some(c) = crate::common::ctx("azure", stringify!($case)) { super::$case(&c) } } )* }
    };
}
