//! The one flow both stores run for a repository: reconcile, run the probe the core asks for,
//! reconcile again with its result. The stores differ only in how a probe runs (in-process, or
//! a Kubernetes Job that may still be running), which they pass in.
//!
//! Pure in the sense of this crate: no I/O of its own; the probe is the caller's future.

use std::future::Future;

use crate::reconcile::{reconcile, Input, Output, ProbeResult};

/// What became of the probe the core asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Probed {
    /// Nothing to check (the result is current, or an earlier step failed).
    NotAsked,
    /// The probe ran; the output records its result.
    Ran,
    /// The probe is still running (a Mount pre-check Job); look again later.
    Pending,
}

/// Reconcile `input`, hand the output to `run`, and reconcile again with the probe result it
/// returns. `run` sees every first output (the operator writes the CSI secret and StorageClass
/// from it before anything mounts them); it runs the probe the output asks for
/// ([`Output::probe`]) and returns the output with the result, `None` when no probe was asked
/// or it is still running.
pub async fn reconcile_with_probe<F, Fut, E>(
    input: Input<'_>,
    run: F,
) -> Result<(Output, Probed), E>
where
    F: FnOnce(Output) -> Fut,
    Fut: Future<Output = Result<(Output, Option<ProbeResult>), E>>,
{
    let first = reconcile(Input {
        probe: None,
        ..input.clone()
    });
    let asked = first.probe.is_some();
    let (first, result) = run(first).await?;
    Ok(match (asked, result) {
        (_, Some(result)) => (
            reconcile(Input {
                probe: Some(result),
                ..input
            }),
            Probed::Ran,
        ),
        (true, None) => (first, Probed::Pending),
        (false, None) => (first, Probed::NotAsked),
    })
}
