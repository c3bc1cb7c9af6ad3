//! The Kubernetes shell of backuprepo: BackupRepo and StorageProvider controllers on kube-rs
//! around the pure core (`backuprepo_core`), which decides every condition, reason, phase and
//! digest. This crate only reads inputs from the API server, runs the probe the core asks for
//! (Tool: in-process with the transfer crate; Mount: a pre-check Job), and writes back what
//! changed.
//!
//! | module | role |
//! |---|---|
//! | [`repo`] | one BackupRepo reconcile: dereference → core → probe → status/annotations; deletion |
//! | [`namespaces`] | per-namespace tool-config Secrets / PVCs for waiting consumers, allow-list |
//! | [`scoped`] | keys limited to each consumer namespace's path: issue, rotate, revoke |
//! | [`mount`] | CSI secret, StorageClass, pre-check PVC + Job, failure logs |
//! | [`provider`] | the StorageProvider controller (CSIDriver lookup) |
//! | [`controller`] | watches, re-check triggers, error policy, [`run`] |
//! | [`lease`] | leader election over a Lease (two replicas, one reconciling) |
//! | [`metrics`], [`server`] | Prometheus metrics, `/metrics` and `/healthz` |
//! | [`store`] | the cluster as the commands' repository store (`--store kube`) |

pub mod config;
pub mod context;
pub mod controller;
pub mod error;
pub mod key_mode;
pub mod lease;
pub mod metrics;
pub mod mount;
pub mod namespaces;
pub mod probe;
pub mod probe_worker;
pub mod provider;
pub mod replicate;
pub mod repo;
pub mod resources;
pub mod scoped;
pub mod server;
pub mod store;

pub use config::OperatorConfig;
pub use context::Context;
pub use controller::run;
pub use error::{Error, ErrorClass};
pub use kube::runtime::controller::Action;
pub use provider::reconcile_provider;
pub use repo::reconcile_repo;
pub use store::KubeStore;
