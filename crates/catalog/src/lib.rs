//! The StorageProvider catalogue. This first part is the template engine: KubeBlocks'
//! StorageProvider objects carry Go `text/template` templates (with a few sprig functions) that
//! turn a repository's parameters into a tool config, a CSI secret, a StorageClass or a PVC.

pub mod params;
pub mod template;
