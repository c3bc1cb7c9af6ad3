//! The Kubernetes side of [`backuprepo_core::key_mode`]: which key the consumer namespaces of
//! a repository get. Under `auto` the storage's IAM API is asked (one `ListUsers` with the
//! repository's key) once the repository is Ready; the answer is kept per repository (for its
//! current config), and a refusal is asked again after [`ASK_AGAIN`].

use std::time::Duration;

use backuprepo_api::{AccessMethod, BackupRepo, StorageProvider};
use backuprepo_catalog::render::RenderedToolConfig;
use backuprepo_core::key_mode::{self, KeyMode, Request};

use crate::context::Context;

/// How long a refusal of the IAM API stands before it is asked again.
pub const ASK_AGAIN: Duration = Duration::from_secs(10 * 60);

/// The decision for `repo` this pass. `config`, `digest`, `ready`: the repository's own
/// config as it passed its check; the IAM is asked only once it did.
pub async fn decide(
    ctx: &Context,
    repo: &BackupRepo,
    provider: Option<&StorageProvider>,
    config: Option<&RenderedToolConfig>,
    digest: Option<&str>,
    ready: bool,
) -> KeyMode {
    if repo.access_method() != AccessMethod::Tool {
        return KeyMode::Off;
    }
    let annotation = repo.scoped_credentials_annotation();
    match key_mode::request(annotation, ctx.config.scoping.by_default) {
        Request::Off => KeyMode::Off,
        Request::Required { note } => KeyMode::Scoped { note },
        Request::Auto => {
            let has_keys = repo
                .status
                .as_ref()
                .is_some_and(|s| !s.scoped_credentials.is_empty());
            let capability = match provider {
                None => Err("the storage provider is gone".to_string()),
                Some(p) => p.key_scoping().map(|_| ()),
            };
            let iam = match (&capability, config, digest, ready, has_keys) {
                (Ok(()), Some(cfg), Some(d), true, false) => {
                    Some(ask_iam(ctx, repo, provider, cfg, d).await)
                }
                _ => None,
            };
            key_mode::auto(has_keys, capability, iam)
        }
    }
}

/// The IAM's answer for this repository's config: kept, or asked now.
async fn ask_iam(
    ctx: &Context,
    repo: &BackupRepo,
    provider: Option<&StorageProvider>,
    config: &RenderedToolConfig,
    digest: &str,
) -> Result<(), String> {
    let uid = repo.metadata.uid.clone().unwrap_or_default();
    let now = ctx.now();
    if let Ok(answers) = ctx.iam_answers.lock() {
        if let Some((d, at, answer)) = answers.get(&uid) {
            let age = now.0.as_second() - at.0.as_second();
            if d == digest && (answer.is_ok() || age < ASK_AGAIN.as_secs() as i64) {
                return answer.clone();
            }
        }
    }
    // The storage and IAM endpoint the scoped keys themselves would use.
    let answer = match crate::scoped::storage(provider, Some(config)) {
        Ok((s, iam)) => s.can_scope(iam.as_deref()).await.map_err(|e| e.to_string()),
        Err(why) => Err(why),
    };
    if let Err(why) = &answer {
        tracing::info!(repo = repo.metadata.name.as_deref().unwrap_or_default(), %why,
            "keys cannot be scoped on this storage; consumer namespaces get the repository's key");
    }
    if let Ok(mut answers) = ctx.iam_answers.lock() {
        answers.insert(uid, (digest.to_string(), now, answer.clone()));
    }
    answer
}
