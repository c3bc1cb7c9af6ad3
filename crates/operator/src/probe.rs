//! The Tool pre-check, run in-process: the transfer crate's probe against the rendered tool
//! config (real traffic: put/get/list/multipart/delete), timed per operation into the metrics.
//! The controller probes on behalf of whoever created the repository, so the endpoint is
//! checked first: metadata, link-local and API-server addresses are refused unless the
//! operator allows them (`BACKUPREPO_ALLOW_INTERNAL_ENDPOINTS`). At most
//! `max_concurrent_probes` run at once.

use backuprepo_api::constants::probe_result;
use backuprepo_api::ProbeCheck;
use backuprepo_catalog::render::RenderedToolConfig;
use backuprepo_core::ProbeResult;
use backuprepo_transfer::endpoint;
use backuprepo_transfer::probe::ProbeOptions;
use backuprepo_transfer::storage::check_tool;

use crate::context::Context;

/// The operation named in `status.checks` when the endpoint itself is refused.
pub const ENDPOINT_CHECK: &str = "endpoint";

/// The failed check of a repository whose endpoint is refused (Tool and Mount alike).
pub fn refused(ctx: &Context, digest: &str, why: &str) -> ProbeResult {
    failed(
        ctx,
        digest,
        ENDPOINT_CHECK,
        format!(
            "{why}; the controller does not contact metadata, link-local or API-server \
             addresses for a repository, nor has them contacted. Point the endpoint at the \
             storage service, or start the controller with BACKUPREPO_ALLOW_INTERNAL_ENDPOINTS=true"
        ),
    )
}

/// A check that failed before any storage operation: one entry, `operation`, with `message`.
fn failed(ctx: &Context, digest: &str, operation: &str, message: String) -> ProbeResult {
    ProbeResult {
        digest: digest.to_string(),
        passed: false,
        checks: vec![ProbeCheck {
            operation: operation.to_string(),
            result: probe_result::FAILED.to_string(),
            message: Some(message.clone()),
            duration_ms: Some(0),
        }],
        message,
        finished_at: ctx.now(),
        usage: None,
        capabilities: None,
    }
}

/// The check in a sandboxed child without Kubernetes credentials (see
/// [`crate::probe_worker`]).
async fn in_worker(
    ctx: &Context,
    exe: &std::path::PathBuf,
    config: &RenderedToolConfig,
    opts: &ProbeOptions,
    (previous, pages): (Option<&backuprepo_api::RepoUsage>, u64),
) -> Result<backuprepo_transfer::storage::Checked, String> {
    let req = crate::probe_worker::Job::Check(crate::probe_worker::Request {
        config: config.text().to_string(),
        path_prefix: opts.path_prefix.clone(),
        timeout_secs: opts.timeout.as_secs().max(1),
        previous: previous.cloned(),
        pages,
        refused_hosts: (!ctx.config.allow_internal_endpoints)
            .then(|| ctx.config.refused_hosts.clone()),
    });
    // The check's own limit, and time for what follows a passing one (usage, clean-up).
    let limit = opts.timeout + std::time::Duration::from_secs(120);
    let answer = crate::probe_worker::run(exe, &req, limit).await?;
    if answer.sandbox != "enforced" {
        tracing::warn!(sandbox = %answer.sandbox, "the check's worker runs without a full sandbox");
    }
    match (answer.checked, answer.error) {
        (Some(c), _) => Ok(c),
        (None, e) => Err(e.unwrap_or_else(|| "the worker gave no result".into())),
    }
}

/// Whether the endpoints a Mount repository's CSI driver would be given (values of the CSI
/// Secret and the StorageClass parameters whose key names an endpoint, server, host or URL)
/// are allowed; `Err(why)` for the first that is not.
pub async fn check_mount_endpoints(
    ctx: &Context,
    settings: Vec<(String, String)>,
) -> Result<(), String> {
    if ctx.config.allow_internal_endpoints {
        return Ok(());
    }
    for (k, v) in settings {
        let key = k.to_ascii_lowercase();
        let names_endpoint = ["endpoint", "server", "host", "url"]
            .iter()
            .any(|w| key.contains(w));
        if names_endpoint && !v.trim().is_empty() {
            endpoint::check_endpoint(&v, &ctx.config.refused_hosts)
                .await
                .map_err(|why| format!("{k}: {why}"))?;
        }
    }
    Ok(())
}

pub async fn run_tool(
    ctx: &Context,
    digest: &str,
    config: &RenderedToolConfig,
    path_prefix: &str,
    previous: Option<&backuprepo_api::RepoUsage>,
) -> ProbeResult {
    // The semaphore is never closed; a closed one would only lift the bound.
    let _permit = ctx.probes.acquire().await.ok();
    if !ctx.config.allow_internal_endpoints {
        if let Err(why) = endpoint::check(&config.config.backend, &ctx.config.refused_hosts).await {
            return refused(ctx, digest, &why);
        }
    }
    let opts = ProbeOptions {
        path_prefix: path_prefix.to_string(),
        timeout: ctx.config.probe_timeout,
        ..ProbeOptions::default()
    };
    let pages = ctx.config.settings.usage_pages;
    let c = match &ctx.config.probe_worker {
        None => check_tool(&config.config, &opts, previous, pages, || ctx.now()).await,
        Some(exe) => match in_worker(ctx, exe, config, &opts, (previous, pages)).await {
            Ok(c) => c,
            Err(why) => {
                return failed(
                    ctx,
                    digest,
                    "check",
                    format!("the check could not run: {why}"),
                )
            }
        },
    };
    for k in &c.checks {
        let seconds = k.duration_ms.unwrap_or_default() as f64 / 1000.0;
        ctx.metrics.observe_probe(&k.operation, &k.result, seconds);
    }
    tracing::debug!(elapsed = ?c.duration, passed = c.passed, "tool probe finished");
    ProbeResult {
        digest: digest.to_string(),
        passed: c.passed,
        message: c.message,
        checks: c.checks,
        finished_at: ctx.now(),
        usage: c.after.usage,
        capabilities: c.after.capabilities,
    }
}
