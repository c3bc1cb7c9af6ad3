//! The security context every pod backuprepo runs (the controller, the Mount pre-check) is
//! given: the Pod Security "restricted" profile, as a non-root user with a fixed uid, no
//! capabilities, no privilege escalation, the runtime's default seccomp profile and a
//! read-only root filesystem. Also the other pieces both pod specs share.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Capabilities, EnvVar, EnvVarSource, ObjectFieldSelector, PodSecurityContext,
    ResourceRequirements, SeccompProfile, SecurityContext,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

/// UID/GID of the distroless `nonroot` user; the pre-check runs as the same user.
pub const NONROOT_ID: i64 = 65532;

fn runtime_default() -> Option<SeccompProfile> {
    Some(SeccompProfile {
        type_: "RuntimeDefault".to_owned(),
        ..SeccompProfile::default()
    })
}

/// The pod level: non-root with a fixed uid and gid, RuntimeDefault seccomp. With
/// `fs_group`, volumes are made group-writable for that gid, only when their root does not
/// already match (`OnRootMismatch`), so existing backup data is not re-chowned on every mount.
pub fn pod_security_context(fs_group: Option<i64>) -> PodSecurityContext {
    PodSecurityContext {
        run_as_non_root: Some(true),
        run_as_user: Some(NONROOT_ID),
        run_as_group: Some(NONROOT_ID),
        fs_group,
        fs_group_change_policy: fs_group.map(|_| "OnRootMismatch".to_owned()),
        seccomp_profile: runtime_default(),
        ..PodSecurityContext::default()
    }
}

/// The container level: no privilege escalation, every capability dropped, read-only root
/// filesystem, non-root, RuntimeDefault seccomp.
pub fn container_security_context() -> SecurityContext {
    SecurityContext {
        allow_privilege_escalation: Some(false),
        read_only_root_filesystem: Some(true),
        run_as_non_root: Some(true),
        capabilities: Some(Capabilities {
            drop: Some(vec!["ALL".to_owned()]),
            ..Capabilities::default()
        }),
        seccomp_profile: runtime_default(),
        ..SecurityContext::default()
    }
}

/// An environment variable set from the pod's own metadata by the downward API
/// (`metadata.name`, `metadata.namespace`).
/// An environment variable with a fixed value.
pub fn value_env(name: &str, value: &str) -> EnvVar {
    EnvVar {
        name: name.to_owned(),
        value: Some(value.to_owned()),
        ..EnvVar::default()
    }
}

pub fn field_env(name: &str, field_path: &str) -> EnvVar {
    EnvVar {
        name: name.to_owned(),
        value_from: Some(EnvVarSource {
            field_ref: Some(ObjectFieldSelector {
                field_path: field_path.to_owned(),
                ..ObjectFieldSelector::default()
            }),
            ..EnvVarSource::default()
        }),
        ..EnvVar::default()
    }
}

/// Requests (or limits) of `cpu` and `memory`.
fn quantities(cpu: &str, memory: &str) -> BTreeMap<String, Quantity> {
    BTreeMap::from([
        ("cpu".to_owned(), Quantity(cpu.to_owned())),
        ("memory".to_owned(), Quantity(memory.to_owned())),
    ])
}

/// Resource requests and limits, each as (cpu, memory).
pub fn resources(requests: (&str, &str), limits: (&str, &str)) -> ResourceRequirements {
    ResourceRequirements {
        requests: Some(quantities(requests.0, requests.1)),
        limits: Some(quantities(limits.0, limits.1)),
        ..ResourceRequirements::default()
    }
}
