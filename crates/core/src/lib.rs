//! The pure reconcile core of backuprepo.
//!
//! Everything here is a function from observed state to desired state: no I/O, no clock, no
//! randomness (the caller passes the time and the name suffix). Both stores — the local files
//! of `backuprepo` and the Kubernetes operator — call the same functions and only differ in how
//! they read inputs, run probes and write results.

pub mod check;
pub mod conditions;
pub mod defaults;
pub mod deletion;
pub mod digest;
pub mod env;
pub mod key_mode;
pub mod location;
pub mod manifests;
pub mod reconcile;
pub mod replication;
pub mod scoping;
pub mod store;

pub use check::{reconcile_with_probe, Probed};
pub use reconcile::{
    own_tool_config, reconcile, Input, Output, ProbeRequest, ProbeResult, SecretState, Settings,
};
