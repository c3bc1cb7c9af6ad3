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
    let message = format!(
        "{why}; the controller does not contact metadata, link-local or API-server \
         addresses for a repository, nor has them contacted. Point the endpoint at the storage \
         service, or start the controller with BACKUPREPO_ALLOW_INTERNAL_ENDPOINTS=true"
    );
    ProbeResult {
        digest: digest.to_string(),
        passed: false,
        checks: vec![ProbeCheck {
            operation: ENDPOINT_CHECK.to_string(),
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
    let c = check_tool(&config.config, &opts, previous, pages, || ctx.now()).await;
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
