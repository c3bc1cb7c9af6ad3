//! The data plane of backuprepo.
//!
//! A datasafed-compatible tool config (`[storage]` INI) becomes an OpenDAL [`opendal::Operator`];
//! [`Storage`] adds datasafed's path rules and (optionally) stream encryption on top, and offers the
//! verbs backup jobs use: push, pull, list, stat, rm, rmdir, mkdir. Push and pull stream with
//! bounded memory whatever the input size; compression and encryption run on a blocking thread so
//! network I/O and CPU work overlap.

pub mod compress;
pub mod crypto;
pub mod diagnose;
pub mod endpoint;
mod error;
pub mod list;
pub mod obscure;
pub mod paths;
pub mod pipeline;
pub mod probe;
pub mod service;
mod signal;
pub mod stdout;
pub mod storage;

pub use backuprepo_toolconfig::{config, retention, size};
pub use error::{Error, Problem, Result};
pub use signal::stop_signal;
pub use storage::Storage;
