//! datasafed's tool config: the rclone-style `[storage]` INI that KubeBlocks' StorageProviders
//! render and backup jobs read, parsed into typed settings ([`config::ToolConfig`]).
//!
//! Pure: no I/O crate, no clock, nothing random. The catalogue uses it to check what it renders
//! (on the reconcile path), the data plane to connect with it, so both read a config the same
//! way.

pub mod config;
pub mod obscure;
pub mod retention;
pub mod rewrite;
pub mod size;

/// A malformed config, or one naming something we do not support. The message names the key
/// and the fix, never the value of a credential.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Config(String),
    /// A setting datasafed has and we do not support (the message says what to use instead).
    #[error("{0}")]
    Unsupported(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
