//! The StorageProvider catalogue: the built-in providers, the Go `text/template` engine their
//! templates are written in, parameter resolution (defaults < config < credential Secret,
//! validated against the provider's schema), and rendering into typed results.

pub mod builtin;
pub mod params;
pub mod render;
pub mod template;
