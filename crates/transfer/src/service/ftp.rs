//! FTP (and explicit FTPS). Besides the operator, the two things OpenDAL's ftp service cannot
//! do for us, done with the same FTP client it uses (suppaftp): create an empty file (its
//! writer creates nothing when it never saw a write), and remove the temporary file a failed
//! upload leaves (its writer cannot abort).

use opendal::{services, Operator};
use suppaftp::tokio::AsyncFtpStream;

use super::{build_error, Service};
use crate::config::FtpConfig;
use crate::error::Problem;
use crate::{Error, Result};

impl Service for FtpConfig {
    fn operator(&self) -> Result<Operator> {
        let scheme = if self.explicit_tls { "ftps" } else { "ftp" };
        let host = crate::endpoint::pinned_host(&self.host, self.port, !self.explicit_tls)
            .map_err(Error::Config)?;
        let mut b = services::Ftp::default()
            .endpoint(&format!("{scheme}://{host}:{}", self.port))
            .user(&self.user)
            .root(&format!("/{}", self.root.trim_matches('/')));
        if !self.pass.is_empty() {
            b = b.password(self.pass.expose());
        }
        Operator::new(b).map_err(build_error)
    }

    fn endpoint(&self) -> String {
        format!("ftp://{}:{}", self.host, self.port)
    }

    fn host_port(&self) -> Option<(String, u16)> {
        Some((self.host.trim_matches(['[', ']']).to_string(), self.port))
    }

    fn secrets(&self) -> Vec<&str> {
        vec![self.pass.expose()]
    }

    fn bucket_check(&self) -> Result<String, &'static str> {
        Ok("logged in; the root directory is readable".to_string())
    }

    fn multipart_skip(&self) -> Option<&'static str> {
        Some("not applicable: FTP has no multipart API; an upload is one stream with no part limit")
    }

    /// OpenDAL's temporary names: `<name>.<8 random alphanumerics>`, left by a killed upload.
    fn is_temporary(&self, name: &str) -> bool {
        let Some((stem, suffix)) = name.rsplit_once('.') else {
            return false;
        };
        !stem.is_empty()
            && suffix.len() == 8
            && suffix.bytes().all(|b| b.is_ascii_alphanumeric())
            && suffix.bytes().any(|b| b.is_ascii_uppercase())
            && suffix
                .bytes()
                .any(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    }

    fn rejected_credentials(
        &self,
        text: &str,
    ) -> Option<(&'static str, &'static str, &'static str)> {
        let lower = text.to_lowercase();
        (text.contains("[530]")
            || lower.contains("login incorrect")
            || lower.contains("not logged in")
            || lower.contains("authentication failed"))
        .then_some((
            "530",
            "the user or password was not accepted",
            "check the ftp user and password in the BackupRepo's credential secret",
        ))
    }
}

async fn connect(cfg: &FtpConfig) -> Result<AsyncFtpStream> {
    if cfg.explicit_tls {
        return Err(Error::Unsupported(
            "empty objects over FTPS are not supported yet".into(),
        ));
    }
    let target = cfg.endpoint();
    let mut s = AsyncFtpStream::connect(format!("{}:{}", cfg.host, cfg.port))
        .await
        .map_err(|e| {
            Error::service(
                Problem::Unreachable,
                format!("cannot reach the storage at {target}: {e}; check host and port"),
                true,
                Some(Box::new(e)),
            )
        })?;
    s.login(cfg.user.as_str(), cfg.pass.expose())
        .await
        .map_err(|e| {
            Error::service(
                Problem::Credentials,
                format!(
                    "the storage at {target} rejected the credentials; check user and password"
                ),
                false,
                Some(Box::new(e)),
            )
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
