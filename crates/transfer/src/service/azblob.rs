//! Azure Blob Storage (and Azurite).

use opendal::{services, Operator};

use super::{build_error, with_scheme, Service};
use crate::config::AzblobConfig;
use crate::diagnose::find_code;
use crate::Result;

impl Service for AzblobConfig {
    /// A block blob has at most 50,000 blocks.
    fn part_limit(&self) -> Option<u64> {
        Some(50_000)
    }

    fn operator(&self) -> Result<Operator> {
        let mut b = services::Azblob::default()
            .container(&self.container)
            .root(&format!("/{}", self.prefix))
            .endpoint(&self.endpoint())
            .account_name(&self.account);
        if !self.key.is_empty() {
            b = b.account_key(self.key.expose());
        }
        Operator::new(b).map_err(build_error)
    }

    fn endpoint(&self) -> String {
        if self.endpoint.is_empty() {
            format!("https://{}.blob.core.windows.net", self.account)
        } else {
            with_scheme(&self.endpoint)
        }
    }

    fn host_port(&self) -> Option<(String, u16)> {
        crate::endpoint::parse(&self.endpoint)
    }

    fn secrets(&self) -> Vec<&str> {
        vec![self.key.expose()]
    }

    fn checks_bucket_on_write(&self) -> bool {
        self.check_bucket
    }

    fn bucket_check(&self) -> Result<String, &'static str> {
        super::bucket_exists(
            self.check_bucket,
            format!("container {:?} exists", self.container),
            "not run: no_check_container is set, so backups write without checking the container either",
        )
    }

    fn multipart_how(&self) -> &'static str {
        "2 blocks committed with a block list"
    }

    fn missing_bucket(&self, endpoint: &str) -> Option<String> {
        Some(format!(
            "the container {:?} does not exist in storage account {:?} at {endpoint}; backuprepo never creates containers: create it, or correct `container` in the BackupRepo's config",
            self.container, self.account
        ))
    }

    // Azure answers a bad signature with AuthenticationFailed (Azurite: AuthorizationFailure,
    // which Azure itself uses for missing permissions); both say "failed to authenticate".
    fn rejected_credentials(
        &self,
        text: &str,
    ) -> Option<(&'static str, &'static str, &'static str)> {
        let code = find_code(text, &["AuthenticationFailed", "InvalidAuthenticationInfo"])
            .or_else(|| {
                text.to_lowercase()
                    .contains("failed to authenticate")
                    .then(|| find_code(text, &["AuthorizationFailure"]).unwrap_or("403"))
            })?;
        Some((
            code,
            "the account key was not accepted",
            "check the storage account name and accountKey in the BackupRepo's credential secret",
        ))
    }
}
