//! Every Kubernetes claim, on a real control plane: kube-apiserver, etcd,
//! kube-controller-manager, kube-scheduler and kwok built from their Go modules
//! (`scripts/kube.sh`), the controller in its own process with the install's ServiceAccount
//! token, the storage a real SeaweedFS. One test at a time (they share the controller's Lease).

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "cluster/harness.rs"]
mod harness;

#[path = "cluster/install.rs"]
mod install;

#[path = "cluster/seed.rs"]
mod seed;

#[path = "cluster/leader.rs"]
mod leader;

#[path = "cluster/consumers.rs"]
mod consumers;

#[path = "cluster/store.rs"]
mod store;

#[path = "cluster/mount.rs"]
mod mount;

#[path = "cluster/scoped.rs"]
mod scoped;

#[path = "cluster/key_mode.rs"]
mod key_mode;

#[path = "cluster/helm.rs"]
mod helm;

#[path = "cluster/plugin.rs"]
mod plugin;

#[path = "cluster/replicate.rs"]
mod replicate;

#[path = "cluster/retention.rs"]
mod retention;
