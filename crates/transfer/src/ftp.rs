//! The two things OpenDAL's ftp service cannot do for us, done with the same FTP client it uses
//! (suppaftp): create an empty file (its writer creates nothing when it never saw a write), and
//! remove the temporary file a failed upload leaves (its writer cannot abort).

use suppaftp::tokio::AsyncFtpStream;

use crate::config::FtpConfig;
use crate::{Error, Result};

async fn connect(cfg: &FtpConfig) -> Result<AsyncFtpStream> {
    if cfg.explicit_tls {
        return Err(Error::Unsupported(
            "empty objects over FTPS are not supported yet".into(),
        ));
    }
    let target = format!("ftp://{}:{}", cfg.host, cfg.port);
    let mut s = AsyncFtpStream::connect(format!("{}:{}", cfg.host, cfg.port))
        .await
        .map_err(|e| {
            Error::Unreachable(format!(
                "cannot reach the storage at {target}: {e}; check host and port"
            ))
        })?;
    s.login(cfg.user.as_str(), cfg.pass.expose())
        .await
        .map_err(|_| {
            Error::Denied(format!(
                "the storage at {target} rejected the credentials; check user and password"
            ))
        })?;
    Ok(s)
}

fn full(cfg: &FtpConfig, key: &str) -> String {
    let root = cfg.root.trim_matches('/');
    if root.is_empty() {
        format!("/{key}")
    } else {
        format!("/{root}/{key}")
    }
}

/// Create (or truncate to) an empty file at `key`, creating parent directories.
pub async fn put_empty(cfg: &FtpConfig, key: &str) -> Result<()> {
    let mut s = connect(cfg).await?;
    let path = full(cfg, key);
    let mut cur = String::new();
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    for dir in &parts[..parts.len().saturating_sub(1)] {
        cur.push('/');
        cur.push_str(dir);
        let _ = s.mkdir(&cur).await; // exists already: fine
    }
    s.put_file(&path, &mut tokio::io::empty())
        .await
        .map_err(|e| Error::Storage(format!("ftp: cannot create {key:?}: {e}")))?;
    let _ = s.quit().await;
    Ok(())
}

/// Remove `<name>.<8 alphanumerics>` siblings of `key`: the temporary file of a failed upload.
pub async fn remove_temporaries(cfg: &FtpConfig, key: &str) -> Result<()> {
    let mut s = connect(cfg).await?;
    let path = full(cfg, key);
    let (dir, name) = path.rsplit_once('/').unwrap_or(("", &path));
    let dir = if dir.is_empty() { "/" } else { dir };
    let names = s.nlst(Some(dir)).await.unwrap_or_default();
    for n in names {
        let base = n.rsplit('/').next().unwrap_or(&n);
        if let Some(suffix) = base.strip_prefix(name).and_then(|r| r.strip_prefix('.')) {
            if suffix.len() == 8 && suffix.bytes().all(|b| b.is_ascii_alphanumeric()) {
                let _ = s.rm(format!("{}/{base}", dir.trim_end_matches('/'))).await;
            }
        }
    }
    let _ = s.quit().await;
    Ok(())
}
