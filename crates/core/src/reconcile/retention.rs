//! The retention annotation (`backuprepo.io/retention`): applied to the tool config the
//! repository hands out only once its check has shown the bucket has object lock, so nothing is
//! ever half-applied (a config whose writes the service would refuse, or a repository Ready
//! with objects that are not locked as asked). Condition Retention says which: True (and
//! which retention protects the objects KubeBlocks' own datasafed writes), Unknown while the
//! check has not said, False (the repository is Failed) when it cannot apply.

use backuprepo_api::constants::RETENTION_ANNOTATION;
use backuprepo_toolconfig::config::Backend;
use backuprepo_toolconfig::retention;

use super::*;

/// Reasons of condition Retention.
pub mod retention_reason {
    pub const APPLIED: &str = "RetentionApplied";
    pub const INVALID: &str = "InvalidRetention";
    pub const WAITING: &str = "WaitingForCheck";
    pub const NO_OBJECT_LOCK: &str = "ObjectLockNotEnabled";
    pub const NOT_SUPPORTED: &str = "RetentionNotSupported";
}
use retention_reason as why;

pub(super) fn retention_step(repo: &BackupRepo, step: &mut Step<'_>, out: &mut Output) {
    let Some(text) = repo.annotation(RETENTION_ANNOTATION) else {
        conditions::remove(&mut step.status.conditions, ct::RETENTION);
        return;
    };
    let wanted = match retention::parse(text) {
        Ok(r) => r,
        Err(e) => {
            step.set(
                ct::RETENTION,
                FALSE,
                why::INVALID,
                format!("{RETENTION_ANNOTATION}: {e}"),
            );
            return;
        }
    };
    let refuse = |step: &mut Step<'_>, reason: &str, msg: String| {
        step.set(
            ct::RETENTION,
            FALSE,
            reason,
            format!(
                "{RETENTION_ANNOTATION} ({wanted}) cannot apply: {msg}; or remove the annotation"
            ),
        );
    };
    if repo.access_method() == AccessMethod::Mount {
        return refuse(step, why::NOT_SUPPORTED, "a Mount repository's objects are written through a file system, which sends no retention; use accessMethod Tool, or a default retention on the bucket".into());
    }
    let Some(cfg) = out.tool_config.take() else {
        // Not rendered: the conditions before say why.
        return;
    };
    if !matches!(cfg.config.backend, Backend::S3(_)) {
        let ty = cfg.config.backend.type_name();
        out.tool_config = Some(cfg);
        return refuse(step, why::NOT_SUPPORTED, format!("the storage ({ty}) has no object lock; retention needs an S3 bucket with object lock"));
    }
    let checked = conditions::is_true(&step.status.conditions, ct::PRE_CHECK_PASSED);
    let lock = step
        .status
        .capabilities
        .as_ref()
        .and_then(|c| c.object_lock.clone());
    match lock {
        Some(lock) => {
            match cfg.clone().with_retention(&wanted) {
                Ok(locked) => {
                    out.tool_config = Some(locked);
                    let theirs = match lock.default_retention() {
                        Some(d) => format!("the bucket's default retention ({d})"),
                        None => "no retention: the bucket has no default retention, so they are not locked".into(),
                    };
                    step.set(
                    ct::RETENTION,
                    TRUE,
                    why::APPLIED,
                    format!("every object backuprepo's datasafed writes is locked in {} mode for {}; objects written by KubeBlocks' own datasafed (which sends no retention) get {theirs}", wanted.mode, retention::format_duration(wanted.period)),
                );
                }
                Err(e) => {
                    out.tool_config = Some(cfg);
                    refuse(step, why::INVALID, e.to_string());
                }
            }
        }
        None if checked => {
            out.tool_config = Some(cfg);
            refuse(step, why::NO_OBJECT_LOCK, "the bucket has no object lock (its check read no object-lock configuration, or was not allowed to); point the repository at a bucket created with object lock enabled".into());
        }
        None => {
            out.tool_config = Some(cfg);
            step.set(
                ct::RETENTION,
                UNKNOWN,
                why::WAITING,
                format!("{RETENTION_ANNOTATION} ({wanted}) applies once the check shows the bucket has object lock"),
            );
        }
    }
}
