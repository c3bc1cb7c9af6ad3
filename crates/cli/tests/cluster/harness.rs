//! The real Kubernetes control plane of `scripts/kube.sh start` (etcd, kube-apiserver,
//! kube-controller-manager, kube-scheduler, kwok), found through the `BR_KUBE_*` variables it
//! writes. Tests take one lock, so one test at a time owns the cluster's controller.
//! When `BR_REQUIRE_KUBE=1` (CI), a missing cluster is a failure, not a skip.

#![allow(dead_code)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use serde_json::Value;

/// The controller's namespace, as `install --print` makes it.
pub const NS: &str = "backuprepo-system";
/// The install's ServiceAccount, whose token the controller runs with.
pub const SA: &str = "backuprepo-controller";

static LOCK: Mutex<()> = Mutex::new(());

/// A BackupRepo that the admission policy admits, for server-side dry runs.
pub const ADMISSION_PROBE: &str = "apiVersion: dataprotection.kubeblocks.io/v1alpha1\nkind: BackupRepo\nmetadata:\n  name: admission-probe\nspec:\n  storageProviderRef: minio\n  pvReclaimPolicy: Retain\n";

pub struct Cluster {
    pub kubeconfig: PathBuf,
    pub bin: PathBuf,
    pub dir: PathBuf,
    pub audit: PathBuf,
    pub server: String,
    _lock: MutexGuard<'static, ()>,
}

fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// The cluster, with the installation applied (`None`, after a `skipped:` line, when no
/// cluster runs and none is required).
pub fn cluster(test: &str) -> Option<Cluster> {
    let lock = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let Some(dir) = var("BR_KUBE_DIR") else {
        assert!(
            var("BR_REQUIRE_KUBE").as_deref() != Some("1"),
            "{test}: BR_REQUIRE_KUBE=1 but no test cluster runs (scripts/kube.sh start)"
        );
        println!(
            "skipped: {test}: no test cluster (bash scripts/kube.sh build && start; needs Go)"
        );
        return None;
    };
    // KubeBlocks' Backup and Restore CRDs come from ../shared (it panics when that is required
    // and missing).
    if backuprepo_fixtures::shared_dir().is_none() {
        println!("skipped: {test}: no ../shared (KubeBlocks' Backup and Restore CRDs)");
        return None;
    }
    let dir = PathBuf::from(dir);
    let c = Cluster {
        kubeconfig: dir.join("kubeconfig"),
        bin: PathBuf::from(var("BR_KUBE_BIN").expect("BR_KUBE_BIN")),
        audit: dir.join("audit.log"),
        server: var("BR_KUBE_SERVER").expect("BR_KUBE_SERVER"),
        dir,
        _lock: lock,
    };
    c.ensure_installed();
    Some(c)
}

/// The S3 storage of `scripts/test-servers.sh` (SeaweedFS): endpoint, bucket, key, secret.
pub fn s3() -> (String, String, String, String) {
    let get = |n: &str| {
        var(n).unwrap_or_else(|| panic!("{n} is not set: run the tests with scripts/test.sh"))
    };
    (
        get("BR_S3_ENDPOINT"),
        get("BR_S3_BUCKET"),
        get("BR_S3_ACCESS_KEY"),
        get("BR_S3_SECRET_KEY"),
    )
}

pub fn backuprepo_bin() -> &'static str {
    env!("CARGO_BIN_EXE_backuprepo")
}

fn run(mut cmd: Command, stdin: Option<&str>) -> Output {
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn");
    let mut pipe = child.stdin.take().expect("stdin");
    let input = stdin.unwrap_or("").to_string();
    let writer = std::thread::spawn(move || {
        let _ = pipe.write_all(input.as_bytes());
    });
    let out = child.wait_with_output().expect("wait");
    let _ = writer.join();
    out
}

pub fn text(o: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

impl Cluster {
    fn path_env(&self) -> String {
        format!(
            "{}:{}",
            self.bin.display(),
            std::env::var("PATH").unwrap_or_default()
        )
    }

    /// kubectl as the admin of the test cluster.
    pub fn kubectl(&self, args: &[&str], stdin: Option<&str>) -> Output {
        let mut cmd = Command::new(self.bin.join("kubectl"));
        cmd.env("KUBECONFIG", &self.kubeconfig).args(args);
        run(cmd, stdin)
    }

    /// kubectl that must succeed; its stdout.
    pub fn kubectl_ok(&self, args: &[&str], stdin: Option<&str>) -> String {
        let o = self.kubectl(args, stdin);
        assert!(o.status.success(), "kubectl {args:?}: {}", text(&o));
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    /// A bash script with kubectl (and `backuprepo`) on PATH, as the admin.
    pub fn sh(&self, script: &str) -> Output {
        let mut cmd = Command::new("bash");
        cmd.arg("-euo")
            .arg("pipefail")
            .arg("-c")
            .arg(script)
            .env("KUBECONFIG", &self.kubeconfig)
            .env("PATH", self.path_env())
            .env("BACKUPREPO", backuprepo_bin());
        run(cmd, None)
    }

    pub fn sh_ok(&self, script: &str) -> String {
        let o = self.sh(script);
        assert!(o.status.success(), "{script}\n{}", text(&o));
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    /// The backuprepo binary on this cluster (`--store kube`), as the admin.
    pub fn backuprepo(&self, args: &[&str], stdin: Option<&str>) -> Output {
        let mut cmd = Command::new(backuprepo_bin());
        cmd.env("KUBECONFIG", &self.kubeconfig)
            .env("BACKUPREPO_STORE", "kube")
            .env("BACKUPREPO_WAIT_TIMEOUT", "60")
            .args(args);
        run(cmd, stdin)
    }

    /// An object as JSON (`None` when it does not exist).
    pub fn get(&self, what: &[&str]) -> Option<Value> {
        let mut args = vec!["get"];
        args.extend_from_slice(what);
        args.extend_from_slice(&["-o", "json", "--ignore-not-found"]);
        let out = self.kubectl_ok(&args, None);
        if out.trim().is_empty() {
            return None;
        }
        Some(serde_json::from_str(&out).expect("json"))
    }

    /// Wait until `f` gives `Some`, or fail after `secs` with `what` and the last value seen.
    pub fn wait<T>(&self, secs: u64, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
        let until = Instant::now() + Duration::from_secs(secs);
        loop {
            if let Some(v) = f() {
                return v;
            }
            assert!(Instant::now() < until, "timed out after {secs}s: {what}");
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    /// A BackupRepo's phase (empty while it has none).
    pub fn phase(&self, repo: &str) -> String {
        self.get(&["backuprepo", repo])
            .and_then(|r| r["status"]["phase"].as_str().map(str::to_string))
            .unwrap_or_default()
    }

    /// Wait for a repository's phase; on timeout, fail with its status.
    pub fn wait_phase(&self, repo: &str, phase: &str, secs: u64) -> Value {
        let until = Instant::now() + Duration::from_secs(secs);
        loop {
            let r = self.get(&["backuprepo", repo]);
            if let Some(r) = &r {
                if r["status"]["phase"] == phase {
                    return r.clone();
                }
            }
            assert!(
                Instant::now() < until,
                "{repo} is not {phase} after {secs}s: {}",
                r.map(|r| serde_json::to_string_pretty(&r["status"]).unwrap_or_default())
                    .unwrap_or_else(|| "gone".into())
            );
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    /// Create a namespace unless it exists.
    pub fn namespace(&self, ns: &str) {
        let o = self.kubectl(&["create", "namespace", ns], None);
        assert!(
            o.status.success() || String::from_utf8_lossy(&o.stderr).contains("AlreadyExists"),
            "{}",
            text(&o)
        );
    }

    /// The CRDs, then the whole install, then KubeBlocks' Backup and Restore CRDs (which the
    /// controller watches): once per test process.
    fn ensure_installed(&self) {
        static DONE: OnceLock<()> = OnceLock::new();
        DONE.get_or_init(|| {
            self.apply_install();
            for crd in ["backups", "restores"] {
                let path = backuprepo_fixtures::shared_path(&format!(
                    "compat/kubeblocks/crds/dataprotection.kubeblocks.io_{crd}.yaml"
                ))
                .expect("../shared/compat/kubeblocks/crds (KubeBlocks' Backup and Restore CRDs)");
                let p = path.display().to_string();
                self.kubectl_ok(&["apply", "--server-side", "-f", &p], None);
            }
            self.kubectl_ok(
                &[
                    "wait",
                    "--for=condition=Established",
                    "--timeout=60s",
                    "crd/backups.dataprotection.kubeblocks.io",
                    "crd/restores.dataprotection.kubeblocks.io",
                ],
                None,
            );
            self.namespace("kb-system");
        });
    }

    /// `backuprepo install --print`, applied as the README says (again after a test that
    /// replaced it, such as the Helm test), and the admission policy ready.
    pub fn apply_install(&self) {
        self.sh_ok(
            "$BACKUPREPO crds | kubectl apply --server-side -f - >/dev/null
             kubectl wait --for=condition=Established --timeout=60s \
               crd/backuprepos.dataprotection.kubeblocks.io crd/storageproviders.dataprotection.kubeblocks.io >/dev/null
             $BACKUPREPO install --print | kubectl apply --server-side --force-conflicts -f - >/dev/null",
        );
        // A new admission policy refuses every BackupRepo until the API server has synced
        // its parameter kind (`not yet synced to use for admission`): wait, as a user would
        // retry (`--store kube install` waits the same way).
        self.wait(120, "the admission policy admits BackupRepos", || {
            self.kubectl(
                &["apply", "--dry-run=server", "-f", "-"],
                Some(ADMISSION_PROBE),
            )
            .status
            .success()
            .then_some(())
        });
    }

    /// A token of the install's ServiceAccount (TokenRequest API).
    pub fn sa_token(&self) -> String {
        self.kubectl_ok(&["create", "token", SA, "-n", NS, "--duration=7200s"], None)
            .trim()
            .to_string()
    }

    /// A kubeconfig for `token` in `dir`.
    pub fn kubeconfig_for(&self, dir: &Path, token: &str) -> PathBuf {
        let path = dir.join("kubeconfig");
        let ca = self.dir.join("certs/apiserver.crt");
        std::fs::write(
            &path,
            format!(
                "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: {}\n    certificate-authority: {}\nusers:\n- name: u\n  user:\n    token: {token}\ncontexts:\n- name: c\n  context: {{cluster: c, user: u}}\ncurrent-context: c\n",
                self.server,
                ca.display()
            ),
        )
        .expect("write kubeconfig");
        path
    }

    /// The audit log's completed requests (one JSON object each).
    pub fn audit(&self) -> Vec<Value> {
        let text = std::fs::read_to_string(&self.audit).unwrap_or_default();
        text.lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|e| e["stage"] == "ResponseComplete")
            .collect()
    }

    /// The container env and args of the install's Deployment, with the downward-API fields
    /// resolved as the kubelet would for a pod named `pod`.
    pub fn deployment_env(&self, pod: &str) -> (Vec<(String, String)>, Vec<String>) {
        let out = Command::new(backuprepo_bin())
            .args(["install", "--print"])
            .output()
            .expect("install --print");
        let text = String::from_utf8(out.stdout).expect("utf8");
        for doc in serde_yaml_ng::Deserializer::from_str(&text) {
            let v: Value = serde::Deserialize::deserialize(doc).expect("yaml");
            if v["kind"] == "Deployment" {
                return env_of(&v, pod);
            }
        }
        panic!("install --print has no Deployment");
    }
}

/// The container env and args of a controller Deployment, with the downward-API fields
/// resolved as the kubelet would for a pod named `pod`.
pub fn env_of(deployment: &Value, pod: &str) -> (Vec<(String, String)>, Vec<String>) {
    let c = &deployment["spec"]["template"]["spec"]["containers"][0];
    let mut env = Vec::new();
    for e in c["env"].as_array().cloned().unwrap_or_default() {
        let name = e["name"].as_str().expect("name").to_string();
        let value = match (
            &e["value"],
            e["valueFrom"]["fieldRef"]["fieldPath"].as_str(),
        ) {
            (Value::String(v), _) => v.clone(),
            (_, Some("metadata.namespace")) => NS.to_string(),
            (_, Some("metadata.name")) => pod.to_string(),
            other => panic!("the Deployment sets {name} from {other:?}"),
        };
        env.push((name, value));
    }
    let args = c["args"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|a| a.as_str().expect("arg").to_string())
        .collect();
    (env, args)
}

/// `backuprepo controller` in its own process, as the install runs it: the Deployment's args
/// and env, authenticated with a token of the install's ServiceAccount, so the real RBAC
/// decides every request. Killed when dropped.
pub struct Controller {
    child: Option<Child>,
    pub identity: String,
    pub log: PathBuf,
    kubectl: PathBuf,
    admin: PathBuf,
    audit: PathBuf,
    audit_from: usize,
    _dir: tempfile::TempDir,
}

impl Controller {
    pub fn start(c: &Cluster, identity: &str, extra_env: &[(&str, &str)]) -> Controller {
        Self::start_with(c, identity, c.deployment_env(identity), extra_env)
    }

    /// As a pod of `deployment` (an object read from the cluster) would run.
    pub fn start_as(c: &Cluster, identity: &str, deployment: &Value) -> Controller {
        Self::start_with(c, identity, env_of(deployment, identity), &[])
    }

    fn start_with(
        c: &Cluster,
        identity: &str,
        (env, args): (Vec<(String, String)>, Vec<String>),
        extra_env: &[(&str, &str)],
    ) -> Controller {
        let dir = tempfile::tempdir().expect("tempdir");
        // Raw lines of the audit log so far (its own reader below counts the same way).
        let audit_from = std::fs::read_to_string(&c.audit)
            .map(|t| t.lines().count())
            .unwrap_or(0);
        let kubeconfig = c.kubeconfig_for(dir.path(), &c.sa_token());
        let log = dir.path().join("controller.log");
        let file = std::fs::File::create(&log).expect("log");
        let mut cmd = Command::new(backuprepo_bin());
        cmd.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", dir.path())
            .envs(env)
            .env("KUBECONFIG", &kubeconfig)
            .env("BACKUPREPO_METRICS_ADDR", "127.0.0.1:0")
            .env("BACKUPREPO_HEALTH_ADDR", "127.0.0.1:0")
            .envs(
                extra_env
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string())),
            )
            .args(&args)
            .args(["--log-level", "info"])
            .stdin(Stdio::null())
            .stdout(file.try_clone().expect("log"))
            .stderr(file);
        let child = cmd.spawn().expect("spawn controller");
        Controller {
            child: Some(child),
            identity: identity.to_string(),
            log,
            kubectl: c.bin.join("kubectl"),
            admin: c.kubeconfig.clone(),
            audit: c.audit.clone(),
            audit_from,
            _dir: dir,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(Child::id).unwrap_or(0)
    }

    /// Send a signal (`STOP`, `CONT`, `KILL`, `TERM`).
    pub fn signal(&self, sig: &str) {
        let o = Command::new("kill")
            .args([format!("-{sig}"), self.pid().to_string()])
            .output()
            .expect("kill");
        assert!(o.status.success(), "kill -{sig}: {}", text(&o));
    }

    /// Whether the process has exited (and its status).
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten())
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Nothing this controller asked was refused: no 403 for its user agent in the API server's
    /// audit log since it started, and no `Forbidden` in its log.
    pub fn assert_no_forbidden(&self) {
        let text = std::fs::read_to_string(&self.audit).unwrap_or_default();
        let agent = format!("({})", self.identity);
        let refused: Vec<String> = text
            .lines()
            .skip(self.audit_from)
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|e| e["stage"] == "ResponseComplete" && e["responseStatus"]["code"] == 403)
            .filter(|e| e["userAgent"].as_str().is_some_and(|a| a.ends_with(&agent)))
            .map(|e| format!("{} {}", e["verb"], e["requestURI"]))
            .collect();
        assert!(refused.is_empty(), "refused by the API server: {refused:?}");
        let log = self.log_text();
        // (Not "403": resource versions and UIDs contain it. The audit log's codes are checked
        // by `forbidden_since`.)
        for needle in ["Forbidden", "forbidden"] {
            assert!(
                !log.contains(needle),
                "the controller was refused by the API server ({needle}):\n{log}"
            );
        }
    }
}

impl Drop for Controller {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let log = self.log_text();
            let tail: Vec<&str> = log.lines().rev().take(60).collect();
            eprintln!(
                "--- the end of controller {}'s log ---\n{}",
                self.identity,
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            );
        }
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-CONT", &child.id().to_string()])
                .output();
            let _ = child.kill();
            let _ = child.wait();
            // The next test's controller need not wait out this one's lease (if it holds it).
            let holder = Command::new(&self.kubectl)
                .env("KUBECONFIG", &self.admin)
                .args([
                    "get",
                    "lease",
                    "backuprepo-controller",
                    "-n",
                    NS,
                    "--ignore-not-found",
                ])
                .args(["-o", "jsonpath={.spec.holderIdentity}"])
                .output()
                .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
                .unwrap_or_default();
            if holder == self.identity {
                let _ = Command::new(&self.kubectl)
                    .env("KUBECONFIG", &self.admin)
                    .args(["delete", "lease", "backuprepo-controller", "-n", NS])
                    .output();
            }
        }
    }
}

/// The service-account user name of the install's controller, as the audit log records it.
pub fn controller_user() -> String {
    format!("system:serviceaccount:{NS}:{SA}")
}

/// Requests of `user` the API server refused with 403 since `from` (index into the audit log).
pub fn forbidden_since(c: &Cluster, from: usize, user: &str) -> Vec<String> {
    c.audit()
        .iter()
        .skip(from)
        .filter(|e| e["user"]["username"] == user && e["responseStatus"]["code"] == 403)
        .map(|e| format!("{} {}", e["verb"], e["requestURI"]))
        .collect()
}

/// A Tool BackupRepo on SeaweedFS (provider `minio`) under `prefix`, with its credential
/// Secret `<name>-cred` in kb-system, applied by the admin.
pub fn s3_repo(c: &Cluster, name: &str, prefix: &str, annotations: &[(&str, &str)]) {
    s3_repo_of(c, "minio", name, prefix, annotations)
}

/// As [`s3_repo`], with the StorageProvider `provider` (a minio-like one).
pub fn s3_repo_of(
    c: &Cluster,
    provider: &str,
    name: &str,
    prefix: &str,
    annotations: &[(&str, &str)],
) {
    s3_repo_in(c, provider, name, &s3().1, prefix, annotations)
}

/// As [`s3_repo_of`], in `bucket` of the test server.
pub fn s3_repo_in(
    c: &Cluster,
    provider: &str,
    name: &str,
    bucket: &str,
    prefix: &str,
    annotations: &[(&str, &str)],
) {
    let (endpoint, _, key, secret) = s3();
    let ann: String = annotations
        .iter()
        .map(|(k, v)| format!("    {k}: \"{v}\"\n"))
        .collect();
    let ann = if ann.is_empty() {
        String::new()
    } else {
        format!("  annotations:\n{ann}")
    };
    c.kubectl_ok(
        &["apply", "-f", "-"],
        Some(&format!(
            "apiVersion: v1\nkind: Secret\nmetadata:\n  name: {name}-cred\n  namespace: kb-system\nstringData:\n  accessKeyId: \"{key}\"\n  secretAccessKey: \"{secret}\"\n---\napiVersion: dataprotection.kubeblocks.io/v1alpha1\nkind: BackupRepo\nmetadata:\n  name: {name}\n{ann}spec:\n  storageProviderRef: {provider}\n  accessMethod: Tool\n  pvReclaimPolicy: Retain\n  pathPrefix: {prefix}\n  config:\n    bucket: {bucket}\n    endpoint: {endpoint}\n    forcePathStyle: \"true\"\n  credential:\n    name: {name}-cred\n    namespace: kb-system\n"
        )),
    );
}

/// The holder of the controllers' Lease (empty when none).
pub fn lease_holder(c: &Cluster) -> String {
    c.get(&["lease", "backuprepo-controller", "-n", NS])
        .and_then(|l| l["spec"]["holderIdentity"].as_str().map(str::to_string))
        .unwrap_or_default()
}

/// The time now as the audit log writes it (UTC, microseconds).
pub fn audit_now() -> String {
    let o = Command::new("date")
        .args(["-u", "+%Y-%m-%dT%H:%M:%S.%6NZ"])
        .output()
        .expect("date");
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

/// A storage path prefix no other run uses: `TAG-<pid>-<nanoseconds>`.
pub fn unique_prefix(tag: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("{tag}-{}-{nanos}", std::process::id())
}
