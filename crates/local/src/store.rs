//! Resources as files under one home directory.
//!
//! ```text
//! <home>/.lock                         exclusive lock held while writing
//! <home>/storageproviders/<name>.yaml  user-applied providers (built-ins come from the binary)
//! <home>/backuprepos/<name>.yaml
//! <home>/secrets/<namespace>/<name>.yaml   mode 0600
//! <home>/toolconfigs/<repo>.conf           rendered tool config of a Ready Tool repo, 0600
//! ```
//!
//! Every write goes to a temporary file that is synced and renamed over the old one, so a crash
//! leaves either the old or the new file, never a torn one. Writers take an exclusive lock on
//! `.lock` and compare `metadata.resourceVersion`, so two concurrent invocations never lose
//! each other's update: the second gets a conflict and retries on fresh data.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use backuprepo_api::k8s_openapi::api::core::v1::Secret;
use backuprepo_api::k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use backuprepo_api::k8s_openapi::ByteString;
use backuprepo_api::{BackupRepo, StorageProvider};
use backuprepo_catalog::builtin;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::{Error, Result};

const REPOS: &str = "backuprepos";
const PROVIDERS: &str = "storageproviders";
const SECRETS: &str = "secrets";
const TOOL_CONFIGS: &str = "toolconfigs";

/// The local store rooted at one home directory.
#[derive(Debug, Clone)]
pub struct Store {
    home: PathBuf,
}

/// Held while writing; released on drop.
pub struct Lock {
    _file: File,
}

impl Store {
    /// Open (creating if needed) the store at `home`. Directories are private to the user; a
    /// home created here is too (0700), an existing one keeps its mode.
    pub fn open(home: impl Into<PathBuf>) -> Result<Store> {
        let home = home.into();
        if !home.exists() {
            create_private_dir(&home)?;
        }
        for d in [REPOS, PROVIDERS, SECRETS, TOOL_CONFIGS] {
            create_private_dir(&home.join(d))?;
        }
        Ok(Store { home })
    }

    /// The names of the repositories and of the applied providers stored under `home`, read
    /// without opening (so without creating) a store there: for shell completion, which must
    /// stay quick and change nothing. Empty where there is no store.
    pub fn names_at(home: &Path) -> (Vec<String>, Vec<String>) {
        let names = |dir: &str| -> Vec<String> {
            let mut v: Vec<String> = fs::read_dir(home.join(dir))
                .map(|entries| {
                    entries
                        .filter_map(|e| e.ok())
                        .filter_map(|e| {
                            e.file_name()
                                .to_string_lossy()
                                .strip_suffix(".yaml")
                                .map(str::to_string)
                        })
                        .collect()
                })
                .unwrap_or_default();
            v.sort();
            v
        };
        (names(REPOS), names(PROVIDERS))
    }

    pub fn home(&self) -> &Path {
        &self.home
    }

    /// The store-wide write lock (blocks until other writers are done).
    pub fn lock(&self) -> Result<Lock> {
        let path = self.home.join(".lock");
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| Error::io(&path, e))?;
        file.lock().map_err(|e| Error::io(&path, e))?;
        Ok(Lock { _file: file })
    }

    // --- BackupRepos ----------------------------------------------------------------------

    pub fn repo(&self, name: &str) -> Result<Option<BackupRepo>> {
        read_yaml(&self.object_path(REPOS, name)?)
    }

    pub fn repos(&self) -> Result<Vec<BackupRepo>> {
        list_yaml(&self.home.join(REPOS))
    }

    /// Create or replace a repository. The caller holds the lock. When the object carries a
    /// resourceVersion it must match the stored one (optimistic concurrency); the stored
    /// object gets a new resourceVersion, its uid and creation time on creation, and a new
    /// generation when the spec changed.
    pub fn put_repo(&self, _lock: &Lock, mut repo: BackupRepo, now: &Time) -> Result<BackupRepo> {
        let path = self.object_path(REPOS, repo.name())?;
        let old: Option<BackupRepo> = read_yaml(&path)?;
        let spec_changed = old.as_ref().is_none_or(|o| o.spec != repo.spec);
        stamp(
            &mut repo.metadata,
            old.as_ref().map(|o| &o.metadata),
            spec_changed,
            now,
            "BackupRepo",
        )?;
        write_yaml(&path, &repo, false)?;
        Ok(repo)
    }

    pub fn delete_repo(&self, _lock: &Lock, name: &str) -> Result<bool> {
        let removed = remove(&self.object_path(REPOS, name)?)?;
        remove(&self.tool_config_path(name)?)?;
        Ok(removed)
    }

    // --- StorageProviders -----------------------------------------------------------------

    /// A provider: an applied file overrides the built-in of the same name.
    pub fn provider(&self, name: &str) -> Result<Option<StorageProvider>> {
        if let Some(p) = read_yaml(&self.object_path(PROVIDERS, name)?)? {
            return Ok(Some(p));
        }
        Ok(builtin::get(name).ok().map(ready))
    }

    /// Built-ins plus applied providers, sorted by name.
    pub fn providers(&self) -> Result<Vec<StorageProvider>> {
        let mut by_name: BTreeMap<String, StorageProvider> = BTreeMap::new();
        for p in builtin::all().map_err(Error::Invalid)? {
            by_name.insert(p.name().to_string(), ready(p));
        }
        for p in list_yaml::<StorageProvider>(&self.home.join(PROVIDERS))? {
            by_name.insert(p.name().to_string(), p);
        }
        Ok(by_name.into_values().collect())
    }

    pub fn put_provider(
        &self,
        _lock: &Lock,
        mut p: StorageProvider,
        now: &Time,
    ) -> Result<StorageProvider> {
        let path = self.object_path(PROVIDERS, p.name())?;
        let old: Option<StorageProvider> = read_yaml(&path)?;
        let changed = old.as_ref().is_none_or(|o| o.spec != p.spec);
        stamp(
            &mut p.metadata,
            old.as_ref().map(|o| &o.metadata),
            changed,
            now,
            "StorageProvider",
        )?;
        // No CSI drivers on this machine: a provider is usable for Tool access as soon as it
        // exists, which is all the local store offers.
        let p = ready(p);
        write_yaml(&path, &p, false)?;
        Ok(p)
    }

    // --- Secrets --------------------------------------------------------------------------

    pub fn secret(&self, namespace: &str, name: &str) -> Result<Option<Secret>> {
        read_yaml(&self.secret_path(namespace, name)?)
    }

    pub fn put_secret(&self, _lock: &Lock, mut s: Secret, now: &Time) -> Result<Secret> {
        let ns = s
            .metadata
            .namespace
            .clone()
            .unwrap_or_else(|| "default".into());
        let name = s.metadata.name.clone().unwrap_or_default();
        let path = self.secret_path(&ns, &name)?;
        create_private_dir(path.parent().unwrap_or(&self.home))?;
        let old: Option<Secret> = read_yaml(&path)?;
        // stringData is write-only in Kubernetes: fold it into data.
        if let Some(sd) = s.string_data.take() {
            let data = s.data.get_or_insert_with(BTreeMap::new);
            for (k, v) in sd {
                data.insert(k, ByteString(v.into_bytes()));
            }
        }
        s.metadata.namespace = Some(ns);
        let changed = old.as_ref().is_none_or(|o| o.data != s.data);
        stamp(
            &mut s.metadata,
            old.as_ref().map(|o| &o.metadata),
            changed,
            now,
            "Secret",
        )?;
        write_yaml(&path, &s, true)?;
        Ok(s)
    }

    /// Every Secret of `namespace` (all namespaces when `None`), sorted by namespace and name.
    pub fn secrets(&self, namespace: Option<&str>) -> Result<Vec<Secret>> {
        let root = self.home.join(SECRETS);
        let namespaces: Vec<String> = match namespace {
            Some(ns) => {
                check_name(ns)?;
                vec![ns.to_string()]
            }
            None => match fs::read_dir(&root) {
                Ok(entries) => {
                    let mut v: Vec<String> = entries
                        .filter_map(|e| e.ok())
                        .filter(|e| e.path().is_dir())
                        .map(|e| e.file_name().to_string_lossy().into_owned())
                        .collect();
                    v.sort();
                    v
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
                Err(e) => return Err(Error::io(&root, e)),
            },
        };
        let mut out = Vec::new();
        for ns in namespaces {
            out.extend(list_yaml::<Secret>(&root.join(ns))?);
        }
        Ok(out)
    }

    pub fn delete_secret(&self, _lock: &Lock, namespace: &str, name: &str) -> Result<bool> {
        remove(&self.secret_path(namespace, name)?)
    }

    // --- Tool configs ---------------------------------------------------------------------

    /// Where the rendered tool config of `repo` lives (0600).
    pub fn tool_config_path(&self, repo: &str) -> Result<PathBuf> {
        check_name(repo)?;
        Ok(self.home.join(TOOL_CONFIGS).join(format!("{repo}.conf")))
    }

    pub fn write_tool_config(&self, _lock: &Lock, repo: &str, text: &str) -> Result<()> {
        let path = self.tool_config_path(repo)?;
        if fs::read_to_string(&path).ok().as_deref() == Some(text) {
            return Ok(());
        }
        write_atomic(&path, text.as_bytes(), true)
    }

    fn object_path(&self, dir: &str, name: &str) -> Result<PathBuf> {
        check_name(name)?;
        Ok(self.home.join(dir).join(format!("{name}.yaml")))
    }

    fn secret_path(&self, namespace: &str, name: &str) -> Result<PathBuf> {
        check_name(namespace)?;
        check_name(name)?;
        Ok(self
            .home
            .join(SECRETS)
            .join(namespace)
            .join(format!("{name}.yaml")))
    }
}

fn ready(mut p: StorageProvider) -> StorageProvider {
    use backuprepo_api::{StorageProviderPhase, StorageProviderStatus};
    let status = p.status.get_or_insert_with(StorageProviderStatus::default);
    status.phase = Some(StorageProviderPhase::Ready);
    p
}

/// Whether `name` can name a stored object (see [`check_name`]).
pub(crate) fn is_valid_name(name: &str) -> bool {
    check_name(name).is_ok()
}

/// Names become file names: only DNS-1123 characters, so no path tricks.
fn check_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 253
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
        && !name.starts_with(['-', '.'])
        && !name.ends_with(['-', '.']);
    if ok {
        Ok(())
    } else {
        Err(Error::Invalid(format!(
            "invalid name {name:?}: use lowercase letters, digits, '-' and '.', starting and ending with a letter or digit"
        )))
    }
}

fn stamp(
    meta: &mut backuprepo_api::k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
    old: Option<&backuprepo_api::k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta>,
    spec_changed: bool,
    now: &Time,
    kind: &str,
) -> Result<()> {
    let name = meta.name.clone().unwrap_or_default();
    match old {
        None => {
            if meta
                .resource_version
                .as_deref()
                .is_some_and(|v| !v.is_empty())
            {
                return Err(Error::Conflict(format!(
                    "{kind} {name:?} was deleted meanwhile; run the command again"
                )));
            }
            meta.uid = Some(new_uid());
            meta.creation_timestamp = Some(now.clone());
            meta.generation = Some(1);
            meta.resource_version = Some("1".into());
        }
        Some(o) => {
            if let Some(v) = meta.resource_version.as_deref().filter(|v| !v.is_empty()) {
                if Some(v) != o.resource_version.as_deref() {
                    return Err(Error::Conflict(format!(
                        "{kind} {name:?} was changed by someone else meanwhile; run the command again"
                    )));
                }
            }
            meta.uid = o.uid.clone();
            meta.creation_timestamp = o.creation_timestamp.clone();
            let gen = o.generation.unwrap_or(1);
            meta.generation = Some(if spec_changed { gen + 1 } else { gen });
            let rv: u64 = o
                .resource_version
                .as_deref()
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            meta.resource_version = Some((rv + 1).to_string());
        }
    }
    Ok(())
}

fn new_uid() -> String {
    let h = hex_of(&rand_bytes());
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

fn rand_bytes() -> [u8; 16] {
    rand::random()
}

fn create_private_dir(path: &Path) -> Result<()> {
    fs::create_dir_all(path).map_err(|e| Error::io(path, e))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(path, fs::Permissions::from_mode(0o700))
            .map_err(|e| Error::io(path, e))?;
    }
    Ok(())
}

fn read_yaml<T: DeserializeOwned>(path: &Path) -> Result<Option<T>> {
    // Bytes, not a string: a file torn inside a multi-byte character is not valid UTF-8 and
    // must be reported as an invalid object like any other torn file.
    let bytes = match fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io(path, e)),
    };
    serde_yaml_ng::from_slice(&bytes)
        .map(Some)
        .map_err(|e| Error::Invalid(format!("{} is not a valid object: {e}", path.display())))
}

fn list_yaml<T: DeserializeOwned>(dir: &Path) -> Result<Vec<T>> {
    let mut names: Vec<PathBuf> = match fs::read_dir(dir) {
        Ok(rd) => rd
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
            .collect(),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(Error::io(dir, e)),
    };
    names.sort();
    let mut out = Vec::with_capacity(names.len());
    for p in names {
        if let Some(v) = read_yaml(&p)? {
            out.push(v);
        }
    }
    Ok(out)
}

fn write_yaml<T: Serialize>(path: &Path, v: &T, private: bool) -> Result<()> {
    let text = serde_yaml_ng::to_string(v)
        .map_err(|e| Error::Invalid(format!("cannot serialise {}: {e}", path.display())))?;
    write_atomic(path, text.as_bytes(), private)
}

/// Write to a temporary file beside `path`, sync it, rename it over `path`, sync the directory.
///
/// The temporary file has a random name and is created exclusively (`O_EXCL`), without
/// following a symlink (`O_NOFOLLOW`), readable by the owner only: another local user cannot
/// predict it, plant a link there, or read a secret while it is being written. A public object
/// is made world-readable (0644) only once complete.
fn write_atomic(path: &Path, data: &[u8], private: bool) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = dir.join(format!(
        ".{}.tmp-{}",
        path.file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("object"),
        hex_of(&rand_bytes())
    ));
    write_via(&tmp, dir, path, data, private)
}

/// [`write_atomic`] through the temporary file `tmp` (in `dir`), which must not exist yet.
fn write_via(tmp: &Path, dir: &Path, path: &Path, data: &[u8], private: bool) -> Result<()> {
    let result = (|| -> io::Result<()> {
        let mut opts = OpenOptions::new();
        opts.create_new(true).write(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600).custom_flags(libc::O_NOFOLLOW);
        }
        let mut f = opts.open(tmp)?;
        f.write_all(data)?;
        #[cfg(unix)]
        if !private {
            use std::os::unix::fs::PermissionsExt;
            f.set_permissions(fs::Permissions::from_mode(0o644))?;
        }
        f.sync_all()?;
        fs::rename(tmp, path)?;
        if let Ok(d) = File::open(dir) {
            d.sync_all().ok();
        }
        Ok(())
    })();
    // Remove only a file this call created: a name that existed before is not ours.
    if let Err(e) = &result {
        if e.kind() != io::ErrorKind::AlreadyExists {
            fs::remove_file(tmp).ok();
        }
    }
    result.map_err(|e| Error::io(path, e))
}

fn hex_of(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn remove(path: &Path) -> Result<bool> {
    match fs::remove_file(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(Error::io(path, e)),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// Something planted at the temporary name itself (a file, or a link to a victim) is never
    /// written through or replaced: the write fails and both stay as they were. Dropping
    /// `O_EXCL` (create_new) fails this test.
    #[test]
    fn a_planted_temporary_name_is_refused() {
        let dir = std::env::temp_dir().join(format!("br-plant-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let target = dir.join("obj.yaml");
        let tmp = dir.join(".obj.yaml.tmp-0123");
        fs::write(&tmp, "planted").unwrap();
        assert!(write_via(&tmp, &dir, &target, b"secret", true).is_err());
        assert_eq!(fs::read_to_string(&tmp).unwrap(), "planted");
        assert!(!target.exists());
        #[cfg(unix)]
        {
            let victim = dir.join("victim");
            fs::write(&victim, "untouched").unwrap();
            fs::remove_file(&tmp).unwrap();
            std::os::unix::fs::symlink(&victim, &tmp).unwrap();
            assert!(write_via(&tmp, &dir, &target, b"secret", true).is_err());
            assert_eq!(fs::read_to_string(&victim).unwrap(), "untouched");
        }
        fs::remove_dir_all(&dir).ok();
    }
}
