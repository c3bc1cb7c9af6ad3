//! What the reconcile tests share: repositories, providers, settings, one reconcile run and
//! the checks on its output.
#![allow(dead_code, unused_imports, clippy::unwrap_used, clippy::expect_used)]

pub use std::collections::BTreeMap;
pub use std::time::Duration;

pub use backuprepo_api::constants::{
    condition_type as ct, reason, BACKUP_REPO_DIGEST_ANNOTATION, IS_DEFAULT_REPO_ANNOTATION,
    NEED_UPDATE_TOOL_CONFIG_ANNOTATION, READ_ONLY_ANNOTATION, SUSPEND_ANNOTATION,
};
pub use backuprepo_api::k8s_openapi::api::core::v1::SecretReference;
pub use backuprepo_api::k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
pub use backuprepo_api::k8s_openapi::jiff::Timestamp;
pub use backuprepo_api::{
    AccessMethod, BackupRepo, BackupRepoPhase, BackupRepoSpec, ProbeCheck, PvReclaimPolicy,
    RepoUsage, StorageProvider, StorageProviderStatus,
};
pub use backuprepo_catalog::builtin;
pub use backuprepo_core::conditions::{FALSE, TRUE, UNKNOWN};
pub use backuprepo_core::reconcile::extra_reason;
pub use backuprepo_core::{
    defaults, deletion, reconcile, Input, Output, ProbeRequest, ProbeResult, SecretState, Settings,
};

pub const SECRET: &str = "s3cr3t-Value-never-shown";

pub fn t(secs: i64) -> Time {
    Time(Timestamp::from_second(1_800_000_000 + secs).unwrap())
}

pub fn repo(
    name: &str,
    provider: &str,
    method: AccessMethod,
    config: &[(&str, &str)],
) -> BackupRepo {
    let mut r = BackupRepo::new(
        name,
        BackupRepoSpec {
            storage_provider_ref: provider.into(),
            access_method: Some(method),
            volume_capacity: None,
            pv_reclaim_policy: PvReclaimPolicy::Retain,
            config: config
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            credential: None,
            path_prefix: None,
            allowed_namespaces: None,
        },
    );
    r.metadata.generation = Some(1);
    r
}

pub fn local_repo() -> BackupRepo {
    repo(
        "my-repo",
        "local",
        AccessMethod::Tool,
        &[("path", "/srv/backups")],
    )
}

pub fn s3_repo() -> BackupRepo {
    let mut r = repo(
        "s3-repo",
        "s3",
        AccessMethod::Tool,
        &[("bucket", "b"), ("region", "eu-west-1")],
    );
    r.spec.credential = Some(SecretReference {
        name: Some("cred".into()),
        namespace: Some("kb-system".into()),
    });
    r
}

pub fn s3_secret() -> SecretState {
    SecretState::Found(
        [("accessKeyId", "AKIA"), ("secretAccessKey", SECRET)]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    )
}

pub fn provider(name: &str) -> StorageProvider {
    builtin::get(name).unwrap()
}

pub fn local_settings() -> Settings {
    Settings {
        recheck_interval: Some(Duration::from_secs(600)),
        retry_failed_interval: Some(Duration::from_secs(60)),
        mount_supported: false,
        namespace: "kb-system".into(),
        usage_interval: None,
        usage_pages: 100,
    }
}

pub fn run(
    repo: &BackupRepo,
    provider: Option<&StorageProvider>,
    secret: SecretState,
    probe: Option<ProbeResult>,
    now: i64,
    settings: &Settings,
) -> Output {
    reconcile(Input {
        repo,
        provider,
        secret,
        probe,
        force_check: false,
        now: t(now),
        name_suffix: "x2b4z",
        settings,
    })
}

pub fn cond<'a>(o: &'a Output, type_: &str) -> &'a Condition {
    o.status
        .conditions
        .iter()
        .find(|c| c.type_ == type_)
        .unwrap_or_else(|| panic!("no {type_} in {:?}", o.status.conditions))
}

pub fn assert_cond(o: &Output, type_: &str, status: &str, reason: &str) {
    let c = cond(o, type_);
    assert_eq!(
        (c.status.as_str(), c.reason.as_str()),
        (status, reason),
        "{type_}: {}",
        c.message
    );
}

/// Apply an output to the repository as a store would.
pub fn apply(repo: &BackupRepo, o: &Output) -> BackupRepo {
    let mut r = repo.clone();
    r.metadata
        .annotations
        .get_or_insert_with(BTreeMap::new)
        .extend(o.annotations.clone());
    r.status = Some(o.status.clone());
    r
}

pub fn result_for(o: &Output, passed: bool, at: i64) -> ProbeResult {
    result_with_usage(o, passed, at, None)
}

pub fn result_with_usage(
    o: &Output,
    passed: bool,
    at: i64,
    usage: Option<RepoUsage>,
) -> ProbeResult {
    let digest = match o.probe.as_ref().expect("a probe was requested") {
        ProbeRequest::Tool { digest, .. } | ProbeRequest::Mount { digest } => digest.clone(),
    };
    ProbeResult {
        digest,
        passed,
        message: if passed {
            String::new()
        } else {
            "Put failed: access denied; the key needs write permission".into()
        },
        checks: vec![ProbeCheck {
            operation: "put".into(),
            result: if passed { "Passed" } else { "Failed" }.into(),
            message: None,
            duration_ms: Some(3),
        }],
        finished_at: t(at),
        usage,
        capabilities: None,
    }
}

pub fn no_secret_in(o: &Output) {
    let json = serde_json::to_string(&o.status).unwrap();
    assert!(!json.contains(SECRET), "secret leaked into status: {json}");
    for e in &o.events {
        assert!(!e.message.contains(SECRET), "secret leaked into event");
    }
    assert!(
        !format!("{o:?}").contains(SECRET),
        "secret leaked into Debug"
    );
}
