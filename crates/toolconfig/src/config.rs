//! The datasafed tool config: an INI file whose `[storage]` section names an rclone backend
//! (`type`) and its options, as KubeBlocks' StorageProvider templates render it.
//!
//! Parsing follows datasafed: a key ending in `.need_obscure` gives the clear value of the key
//! without the suffix (datasafed obscures it for rclone, which reveals it again; we take the
//! clear value as it is, so parsing draws no random IV); `DATASAFED_LOCAL_BACKEND_PATH`
//! replaces the whole file with a local backend. Unknown types and keys are errors that name them: a typo must fail
//! when the config is read, not halfway through a backup.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};

use crate::obscure;
use crate::size::parse_size;
use crate::{Error, Result};

/// The default config path, as datasafed and KubeBlocks' mounted Secret use it.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/datasafed/datasafed.conf";

/// A string that is never shown: `Debug` and `Display` print `<redacted>`.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// rclone's S3 `provider` values that KubeBlocks' catalogue renders.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum S3Provider {
    Aws,
    Alibaba,
    TencentCos,
    HuaweiObs,
    Gcs,
    Minio,
    Other,
}

impl S3Provider {
    const NAMES: &'static [&'static str] = &[
        "AWS",
        "Alibaba",
        "TencentCOS",
        "HuaweiOBS",
        "GCS",
        "Minio",
        "Other",
    ];

    const RCLONE_OTHERS: &'static [&'static str] = &[
        "ArvanCloud",
        "Ceph",
        "ChinaMobile",
        "Cloudflare",
        "DigitalOcean",
        "Dreamhost",
        "FlashBlade",
        "IBMCOS",
        "IDrive",
        "IONOS",
        "Leviia",
        "Liara",
        "Linode",
        "LyveCloud",
        "Magalu",
        "Netease",
        "Outscale",
        "Petabox",
        "Qiniu",
        "RackCorp",
        "Rclone",
        "Scaleway",
        "SeaweedFS",
        "Selectel",
        "StackPath",
        "Storj",
        "Synology",
        "Wasabi",
    ];

    fn parse(v: &str) -> Result<Self> {
        Ok(match v {
            "" | "AWS" => S3Provider::Aws,
            "Alibaba" => S3Provider::Alibaba,
            "TencentCOS" => S3Provider::TencentCos,
            "HuaweiOBS" => S3Provider::HuaweiObs,
            "GCS" => S3Provider::Gcs,
            "Minio" => S3Provider::Minio,
            "Other" => S3Provider::Other,
            // Other S3 services rclone knows (s3-compatible's `serviceProvider`): generic S3
            // with path-style addressing unless `force_path_style` says otherwise.
            _ if Self::RCLONE_OTHERS.contains(&v) => S3Provider::Other,
            _ => {
                return Err(Error::Config(format!(
                    "unknown s3 provider {v:?} in [storage]; use one of {}, {}",
                    Self::NAMES.join(", "),
                    Self::RCLONE_OTHERS.join(", ")
                )))
            }
        })
    }

    /// These services only serve virtual-host-style requests by default (rclone does the same).
    pub fn virtual_host_by_default(self) -> bool {
        matches!(
            self,
            S3Provider::Alibaba | S3Provider::TencentCos | S3Provider::HuaweiObs
        )
    }
}

#[derive(Debug, Clone)]
pub struct S3Config {
    pub provider: S3Provider,
    pub env_auth: bool,
    pub access_key_id: Secret,
    pub secret_access_key: Secret,
    pub session_token: Secret,
    pub region: String,
    pub endpoint: String,
    pub bucket: String,
    pub prefix: String,
    /// `None` = the provider's default addressing.
    pub force_path_style: Option<bool>,
    pub storage_class: Option<String>,
    pub acl: Option<String>,
    pub server_side_encryption: Option<String>,
    /// `no_check_bucket = false` (the default): confirm the bucket exists before writing, so a
    /// server that would create it implicitly never gets the chance.
    pub check_bucket: bool,
}

#[derive(Debug, Clone)]
pub struct FtpConfig {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub pass: Secret,
    pub explicit_tls: bool,
    pub root: String,
}

#[derive(Debug, Clone)]
pub struct AzblobConfig {
    pub account: String,
    pub key: Secret,
    pub endpoint: String,
    pub container: String,
    pub prefix: String,
    /// `no_check_container = false` (the default): confirm the container exists before writing.
    pub check_bucket: bool,
}

#[derive(Debug, Clone)]
pub struct LocalConfig {
    pub root: PathBuf,
}

#[derive(Debug, Clone)]
pub enum Backend {
    S3(S3Config),
    Ftp(FtpConfig),
    Azblob(AzblobConfig),
    Local(LocalConfig),
}

impl Backend {
    pub fn type_name(&self) -> &'static str {
        match self {
            Backend::S3(_) => "s3",
            Backend::Ftp(_) => "ftp",
            Backend::Azblob(_) => "azureblob",
            Backend::Local(_) => "local",
        }
    }

    /// Object stores have no real directories: mkdir/rmdir are no-ops there.
    pub fn has_directories(&self) -> bool {
        matches!(self, Backend::Ftp(_) | Backend::Local(_))
    }

    /// Where we talk to, for error messages: endpoint and bucket, never credentials.
    pub fn target(&self) -> String {
        match self {
            Backend::S3(c) => format!(
                "s3 bucket {:?} at {}",
                c.bucket,
                display_or(&c.endpoint, "the provider's default endpoint")
            ),
            Backend::Ftp(c) => format!("ftp://{}:{}", c.host, c.port),
            Backend::Azblob(c) => format!(
                "azureblob container {:?} at {}",
                c.container,
                display_or(&c.endpoint, "the account's default endpoint")
            ),
            Backend::Local(c) => format!("local directory {}", c.root.display()),
        }
    }
}

fn display_or<'a>(v: &'a str, alt: &'a str) -> &'a str {
    if v.is_empty() {
        alt
    } else {
        v
    }
}

/// Transfer tuning shared by every backend.
#[derive(Debug, Clone, Default)]
pub struct Tuning {
    /// Part size for multipart uploads (`chunk_size`); `None` = our default.
    pub chunk_size: Option<u64>,
    /// Parts in flight (`upload_concurrency`); `None` = our default.
    pub concurrency: Option<usize>,
    /// `no_check_certificate`: accept any TLS certificate.
    pub insecure: bool,
    /// `ca_cert`: extra PEM CA bundle to trust.
    pub ca_cert: Option<PathBuf>,
    /// `read_only` (ours): the repository is read-only (`backuprepo.io/read-only`); writes are
    /// refused before any request. Other readers of the config ignore the key.
    pub read_only: bool,
    /// `object_lock_retention` and `object_lock_mode` (ours, from the annotation
    /// `backuprepo.io/retention`): every object written is locked for this long (S3 only).
    pub retention: Option<crate::retention::Retention>,
}

/// A parsed tool config.
#[derive(Clone)]
pub struct ToolConfig {
    pub backend: Backend,
    pub tuning: Tuning,
    /// All sections after post-processing, for `getconf`.
    sections: BTreeMap<String, BTreeMap<String, String>>,
}

impl fmt::Debug for ToolConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ToolConfig")
            .field("backend", &self.backend)
            .field("tuning", &self.tuning)
            .finish_non_exhaustive()
    }
}

/// Keys whose values are credentials: `getconf` refuses to print them.
const SECRET_KEYS: &[&str] = &[
    "secret_access_key",
    "session_token",
    "pass",
    "key",
    "sas_url",
];

/// `object_lock_retention` (and `object_lock_mode`, default GOVERNANCE) of `[storage]`.
fn retention(s: &Section<'_>) -> Result<Option<crate::retention::Retention>> {
    let bad = |key: &str, e: String| Error::Config(format!("`{key}` in [storage]: {e}"));
    let mode = s
        .opt("object_lock_mode")
        .map(|m| crate::retention::LockMode::parse(&m).map_err(|e| bad("object_lock_mode", e)))
        .transpose()?;
    let Some(period) = s.opt("object_lock_retention") else {
        if mode.is_some() {
            return Err(Error::Config(
                "`object_lock_mode` in [storage] without `object_lock_retention`; set both (e.g. object_lock_retention = 30d)".into(),
            ));
        }
        return Ok(None);
    };
    let period =
        crate::retention::parse_duration(&period).map_err(|e| bad("object_lock_retention", e))?;
    Ok(Some(crate::retention::Retention {
        period,
        mode: mode.unwrap_or_default(),
    }))
}

/// The line that makes a rendered config read-only (appended to its `[storage]` section).
pub const READ_ONLY_LINE: &str = "read_only = true";

impl ToolConfig {
    /// Read a config file.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            Error::Config(format!(
                "cannot read the config file {}: {e}; pass the right file with -c/--conf or set DATASAFED_LOCAL_BACKEND_PATH",
                path.display()
            ))
        })?;
        Self::parse(&text).map_err(|e| match e {
            Error::Config(m) => Error::Config(format!("{}: {m}", path.display())),
            other => other,
        })
    }

    /// datasafed's `DATASAFED_LOCAL_BACKEND_PATH`: a local backend rooted at an existing directory.
    pub fn local_backend(path: &str) -> Result<Self> {
        let p = std::path::absolute(path)
            .map_err(|e| Error::Config(format!("cannot resolve the path {path:?}: {e}")))?;
        let meta = std::fs::metadata(&p).map_err(|_| {
            Error::Config(format!(
                "the path {:?} specified by DATASAFED_LOCAL_BACKEND_PATH does not exist",
                p.display().to_string()
            ))
        })?;
        if !meta.is_dir() {
            return Err(Error::Config(format!(
                "the path {:?} specified by DATASAFED_LOCAL_BACKEND_PATH is not a directory",
                p.display().to_string()
            )));
        }
        let root = p.display().to_string();
        let text = format!("[storage]\ntype = local\ncopy_links = true\nroot = {root}\n");
        Self::parse(&text)
    }

    /// Parse INI text.
    pub fn parse(text: &str) -> Result<Self> {
        let mut sections = parse_ini(text)?;
        // Keys of [storage] whose value came clear from `<key>.need_obscure`.
        let mut clear = BTreeSet::new();
        for (name, kv) in sections.iter_mut() {
            let given: Vec<String> = kv
                .keys()
                .filter(|k| k.ends_with(".need_obscure"))
                .cloned()
                .collect();
            for k in given {
                if let Some(v) = kv.remove(&k) {
                    let base = k.trim_end_matches(".need_obscure").to_string();
                    if name == "storage" {
                        clear.insert(base.clone());
                    }
                    kv.insert(base, v);
                }
            }
        }
        let storage = sections.get("storage").ok_or_else(|| {
            Error::Config("the config has no [storage] section; it must start with [storage] and a `type = ...` line".into())
        })?;
        let (backend, tuning) = build_backend(storage, &clear)?;
        Ok(ToolConfig {
            backend,
            tuning,
            sections,
        })
    }

    /// `getconf section.key`.
    pub fn get(&self, item: &str) -> Result<String> {
        let (section, key) = item
            .split_once('.')
            .filter(|(s, k)| !s.is_empty() && !k.is_empty())
            .ok_or_else(|| Error::Config("invalid config item name".into()))?;
        let v = self
            .sections
            .get(section)
            .and_then(|s| s.get(key))
            .ok_or_else(|| Error::Config(format!("config item {item:?} not found")))?;
        if SECRET_KEYS.contains(&key) {
            return Err(Error::Config(format!(
                "config item {item:?} holds a credential and is not printed"
            )));
        }
        Ok(v.clone())
    }
}

/// Parse INI the way gopkg.in/ini reads KubeBlocks' rendered configs: `[section]` headers,
/// `key = value` or `key: value`, `#`/`;` comment lines and inline comments after whitespace,
/// values trimmed and unquoted. Keys before any section go to `DEFAULT`.
pub fn parse_ini(text: &str) -> Result<BTreeMap<String, BTreeMap<String, String>>> {
    let mut out: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    let mut section = "DEFAULT".to_string();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(rest) = line.strip_prefix('[') {
            let name = rest.strip_suffix(']').ok_or_else(|| {
                Error::Config(format!(
                    "line {}: malformed section header {line:?}; expected [name]",
                    i + 1
                ))
            })?;
            section = name.trim().to_string();
            out.entry(section.clone()).or_default();
            continue;
        }
        let Some(pos) = line.find(['=', ':']) else {
            return Err(Error::Config(format!(
                "line {}: expected `key = value`, found a line without `=`",
                i + 1
            )));
        };
        let key = line[..pos].trim();
        if key.is_empty() {
            return Err(Error::Config(format!(
                "line {}: a value without a key",
                i + 1
            )));
        }
        let value = unquote(strip_inline_comment(line[pos + 1..].trim()));
        out.entry(section.clone())
            .or_default()
            .insert(key.to_string(), value.to_string());
    }
    Ok(out)
}

fn strip_inline_comment(v: &str) -> &str {
    if v.starts_with('"') || v.starts_with('`') {
        return v;
    }
    let bytes = v.as_bytes();
    for i in 1..bytes.len() {
        if (bytes[i] == b'#' || bytes[i] == b';') && bytes[i - 1].is_ascii_whitespace() {
            return v[..i].trim_end();
        }
    }
    v
}

fn unquote(v: &str) -> &str {
    for q in ["\"\"\"", "\"", "`"] {
        if v.len() >= 2 * q.len() && v.starts_with(q) && v.ends_with(q) {
            return &v[q.len()..v.len() - q.len()];
        }
    }
    v
}

/// Reads typed values out of one section and remembers which keys were used.
struct Section<'a> {
    kv: &'a BTreeMap<String, String>,
    ty: &'a str,
}

impl<'a> Section<'a> {
    fn str(&self, key: &str) -> String {
        self.kv
            .get(key)
            .map(|v| v.trim().to_string())
            .unwrap_or_default()
    }

    fn opt(&self, key: &str) -> Option<String> {
        Some(self.str(key)).filter(|v| !v.is_empty() && v != "<no value>")
    }

    /// Go's `strconv.ParseBool`; empty (a template rendered nothing) means the default.
    fn bool(&self, key: &str) -> Result<Option<bool>> {
        match self.opt(key).as_deref() {
            None => Ok(None),
            Some("1" | "t" | "T" | "TRUE" | "true" | "True") => Ok(Some(true)),
            Some("0" | "f" | "F" | "FALSE" | "false" | "False") => Ok(Some(false)),
            Some(other) => Err(Error::Config(format!(
                "invalid boolean {other:?} for `{key}` in [storage] (type {}); use true or false",
                self.ty
            ))),
        }
    }

    fn check_keys(&self, known: &[&str]) -> Result<()> {
        for k in self.kv.keys() {
            if k != "type" && !known.contains(&k.as_str()) && !COMMON_KEYS.contains(&k.as_str()) {
                let mut all: Vec<&str> = known.iter().chain(COMMON_KEYS).copied().collect();
                all.sort_unstable();
                return Err(Error::Config(format!(
                    "unknown key `{k}` in [storage] for type {}; known keys: {}",
                    self.ty,
                    all.join(", ")
                )));
            }
        }
        Ok(())
    }
}

const COMMON_KEYS: &[&str] = &[
    "chunk_size",
    "upload_concurrency",
    "no_check_certificate",
    "ca_cert",
    "read_only",
    "object_lock_retention",
    "object_lock_mode",
];
const S3_KEYS: &[&str] = &[
    "provider",
    "env_auth",
    "access_key_id",
    "secret_access_key",
    "session_token",
    "region",
    "endpoint",
    "root",
    "force_path_style",
    "no_check_bucket",
    "location_constraint",
    "storage_class",
    "acl",
    "server_side_encryption",
    "upload_cutoff",
    // Rendered by KubeBlocks' `oss` provider; only matters when creating buckets, which we never do.
    "use_already_exists",
];
const FTP_KEYS: &[&str] = &[
    "host",
    "port",
    "user",
    "pass",
    "tls",
    "explicit_tls",
    "root",
];
const AZ_KEYS: &[&str] = &[
    "account",
    "key",
    "endpoint",
    "root",
    "no_check_container",
    "access_tier",
];
const LOCAL_KEYS: &[&str] = &["root", "copy_links", "links"];

/// `root = bucket[/prefix]` → (bucket, prefix).
fn split_root(root: &str) -> (String, String) {
    let r = root.trim_matches('/');
    match r.split_once('/') {
        Some((b, p)) => (b.to_string(), p.trim_matches('/').to_string()),
        None => (r.to_string(), String::new()),
    }
}

/// `clear`: keys whose value is already clear (from `.need_obscure`), not to be revealed.
fn build_backend(
    kv: &BTreeMap<String, String>,
    clear: &BTreeSet<String>,
) -> Result<(Backend, Tuning)> {
    let ty = kv.get("type").map(|s| s.trim()).unwrap_or_default();
    let s = Section { kv, ty };
    let tuning = Tuning {
        chunk_size: s
            .opt("chunk_size")
            .map(|v| parse_size("chunk_size", &v))
            .transpose()?,
        concurrency: s
            .opt("upload_concurrency")
            .map(|v| {
                v.parse::<usize>()
                    .ok()
                    .filter(|n| (1..=64).contains(n))
                    .ok_or_else(|| {
                        Error::Config(format!(
                            "invalid upload_concurrency {v:?}; use a number from 1 to 64"
                        ))
                    })
            })
            .transpose()?,
        insecure: s.bool("no_check_certificate")?.unwrap_or(false),
        ca_cert: s.opt("ca_cert").map(PathBuf::from),
        read_only: s.bool("read_only")?.unwrap_or(false),
        retention: retention(&s)?,
    };
    let backend = match ty {
        "s3" => {
            s.check_keys(S3_KEYS)?;
            let (bucket, prefix) = split_root(&s.str("root"));
            if bucket.is_empty() {
                return Err(Error::Config(
                    "`root` is empty in [storage] (type s3); set root = <bucket>[/<prefix>]".into(),
                ));
            }
            let env_auth = s.bool("env_auth")?.unwrap_or(false);
            let c = S3Config {
                provider: S3Provider::parse(&s.str("provider"))?,
                env_auth,
                access_key_id: Secret::new(s.str("access_key_id")),
                secret_access_key: Secret::new(s.str("secret_access_key")),
                session_token: Secret::new(s.str("session_token")),
                region: s.opt("region").unwrap_or_default(),
                endpoint: s.opt("endpoint").unwrap_or_default(),
                bucket,
                prefix,
                force_path_style: s.bool("force_path_style")?,
                storage_class: s.opt("storage_class"),
                acl: s.opt("acl"),
                server_side_encryption: s.opt("server_side_encryption"),
                check_bucket: !s.bool("no_check_bucket")?.unwrap_or(false),
            };
            s.bool("use_already_exists")?;
            if !env_auth && (c.access_key_id.is_empty() || c.secret_access_key.is_empty()) {
                return Err(Error::Config(
                    "access_key_id and secret_access_key are required in [storage] (type s3) unless env_auth = true".into(),
                ));
            }
            Backend::S3(c)
        }
        "ftp" => {
            s.check_keys(FTP_KEYS)?;
            let host = s.opt("host").ok_or_else(|| {
                Error::Config("`host` is required in [storage] (type ftp)".into())
            })?;
            let port = match s.opt("port") {
                None => 21,
                Some(p) => p.parse::<u16>().ok().filter(|p| *p > 0).ok_or_else(|| {
                    Error::Config(format!(
                        "invalid port {p:?} in [storage] (type ftp); use 1-65535"
                    ))
                })?,
            };
            if s.bool("tls")?.unwrap_or(false) {
                return Err(Error::Unsupported(
                    "implicit FTPS (`tls = true`) is not supported; use `explicit_tls = true` (FTP with AUTH TLS) or plain FTP".into(),
                ));
            }
            let pass = match s.opt("pass") {
                Some(p) if clear.contains("pass") => Secret::new(p),
                Some(p) => Secret::new(obscure::reveal(&p)?),
                None => Secret::default(),
            };
            Backend::Ftp(FtpConfig {
                host,
                port,
                user: s.opt("user").unwrap_or_else(|| "anonymous".into()),
                pass,
                explicit_tls: s.bool("explicit_tls")?.unwrap_or(false),
                root: s.opt("root").unwrap_or_default(),
            })
        }
        "azureblob" => {
            s.check_keys(AZ_KEYS)?;
            let (container, prefix) = split_root(&s.str("root"));
            if container.is_empty() {
                return Err(Error::Config(
                    "`root` is empty in [storage] (type azureblob); set root = <container>[/<prefix>]".into(),
                ));
            }
            let account = s.opt("account").ok_or_else(|| {
                Error::Config("`account` is required in [storage] (type azureblob)".into())
            })?;
            Backend::Azblob(AzblobConfig {
                account,
                key: Secret::new(s.str("key")),
                endpoint: s.opt("endpoint").unwrap_or_default(),
                container,
                prefix,
                check_bucket: !s.bool("no_check_container")?.unwrap_or(false),
            })
        }
        "local" => {
            s.check_keys(LOCAL_KEYS)?;
            let root = s.opt("root").ok_or_else(|| {
                Error::Config(
                    "`root` is required in [storage] (type local): the directory to store into"
                        .into(),
                )
            })?;
            Backend::Local(LocalConfig {
                root: PathBuf::from(root),
            })
        }
        "" => {
            return Err(Error::Config(
                "[storage] has no `type`; set type = s3, ftp, azureblob or local".into(),
            ))
        }
        other => {
            return Err(Error::Config(format!(
                "unknown storage type {other:?} in [storage]; supported: s3, ftp, azureblob, local"
            )))
        }
    };
    Ok((backend, tuning))
}

#[cfg(test)]
mod tests {
    use super::*;

    const S3: &str = "[storage]\ntype = s3\nprovider = Minio\nenv_auth = false\naccess_key_id = AKID\nsecret_access_key = SUPERSECRET\nregion = \nendpoint = http://127.0.0.1:9000\nroot = bucket/some/prefix\nno_check_certificate = false\nno_check_bucket = \nchunk_size = 50Mi\n";

    #[test]
    fn parses_a_rendered_kubeblocks_s3_config() {
        let c = ToolConfig::parse(S3).unwrap();
        let Backend::S3(s3) = &c.backend else {
            panic!("not s3")
        };
        assert_eq!(s3.provider, S3Provider::Minio);
        assert_eq!(s3.bucket, "bucket");
        assert_eq!(s3.prefix, "some/prefix");
        assert_eq!(s3.endpoint, "http://127.0.0.1:9000");
        assert_eq!(c.tuning.chunk_size, Some(50 << 20));
        assert_eq!(c.get("storage.root").unwrap(), "bucket/some/prefix");
    }

    #[test]
    fn debug_never_shows_secrets() {
        let c = ToolConfig::parse(S3).unwrap();
        let dbg = format!("{c:?}");
        assert!(!dbg.contains("SUPERSECRET"), "{dbg}");
        let err = c.get("storage.secret_access_key").unwrap_err().to_string();
        assert!(!err.contains("SUPERSECRET"));
    }

    #[test]
    fn need_obscure_becomes_an_obscured_pass_that_reveals_to_the_clear_one() {
        let c = ToolConfig::parse("[storage]\ntype = ftp\nhost = h\nport = 2121\nuser = u\npass.need_obscure = p@ss w0rd\ntls = false\n").unwrap();
        let Backend::Ftp(f) = &c.backend else {
            panic!("not ftp")
        };
        assert_eq!(f.pass.expose(), "p@ss w0rd");
        assert_eq!(f.port, 2121);
    }

    #[test]
    fn unknown_type_key_and_bad_values_are_named() {
        let e = ToolConfig::parse("[storage]\ntype = s4\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("\"s4\"") && e.contains("supported"), "{e}");
        let e = ToolConfig::parse(&format!("{S3}bukket = x\n"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("`bukket`"), "{e}");
        let e = ToolConfig::parse(&S3.replace("env_auth = false", "env_auth = maybe"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("maybe") && e.contains("env_auth"), "{e}");
        let e = ToolConfig::parse(&S3.replace("provider = Minio", "provider = Tapeworm"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("Tapeworm"), "{e}");
        let e = ToolConfig::parse("type = s3\n").unwrap_err().to_string();
        assert!(e.contains("[storage]"), "{e}");
        let e = ToolConfig::parse("[storage]\ntype s3\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("line 2"), "{e}");
    }

    #[test]
    fn getconf_errors_match_datasafed() {
        let c = ToolConfig::parse(S3).unwrap();
        assert_eq!(
            c.get("nodot").unwrap_err().to_string(),
            "invalid config item name"
        );
        assert_eq!(
            c.get("storage.nope").unwrap_err().to_string(),
            "config item \"storage.nope\" not found"
        );
    }

    #[test]
    fn ini_comments_and_quotes() {
        let m =
            parse_ini("; c\n# c\n[a]\nk1 = \"quoted # not comment\"\nk2 = v # comment\nk3: x\n")
                .unwrap();
        assert_eq!(m["a"]["k1"], "quoted # not comment");
        assert_eq!(m["a"]["k2"], "v");
        assert_eq!(m["a"]["k3"], "x");
    }
}
