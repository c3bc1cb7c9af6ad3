//! The Tool pre-check, run in-process: the transfer crate's probe against the rendered tool
//! config (real traffic: put/get/list/multipart/delete), timed per operation into the metrics.

use backuprepo_api::constants::probe_result;
use backuprepo_api::ProbeCheck;
use backuprepo_catalog::render::RenderedToolConfig;
use backuprepo_core::ProbeResult;
use backuprepo_transfer::probe::{self, Outcome, ProbeOptions};

use crate::context::Context;

pub async fn run_tool(
    ctx: &Context,
    digest: &str,
    config: &RenderedToolConfig,
    path_prefix: &str,
) -> ProbeResult {
    let opts = ProbeOptions {
        path_prefix: path_prefix.to_string(),
        timeout: ctx.config.probe_timeout,
        ..ProbeOptions::default()
    };
    let report = probe::run(&config.config, &opts).await;
    let checks: Vec<ProbeCheck> = report
        .checks
        .iter()
        .map(|c| {
            let result = match c.outcome {
                Outcome::Passed => probe_result::PASSED,
                Outcome::Failed => probe_result::FAILED,
                Outcome::Skipped => probe_result::SKIPPED,
            };
            ctx.metrics
                .observe_probe(c.operation.as_str(), result, c.duration.as_secs_f64());
            ProbeCheck {
                operation: c.operation.to_string(),
                result: result.to_string(),
                message: c.message.clone(),
                duration_ms: Some(c.duration.as_millis() as u64),
            }
        })
        .collect();
    tracing::debug!(elapsed = ?report.duration, passed = report.passed(), "tool probe finished");
    ProbeResult {
        digest: digest.to_string(),
        passed: report.passed(),
        message: report.failure().unwrap_or_default(),
        checks,
        finished_at: ctx.now(),
    }
}
