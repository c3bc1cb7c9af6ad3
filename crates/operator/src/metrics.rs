//! Prometheus metrics: repository phase, probe duration and result by operation, reconcile
//! errors by class.

use prometheus_client::encoding::{text::encode, EncodeLabelSet};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use backuprepo_api::BackupRepoPhase;

use crate::error::ErrorClass;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PhaseLabels {
    pub repo: String,
    pub phase: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RepoLabels {
    pub repo: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OperationLabels {
    pub operation: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabels {
    pub operation: String,
    pub result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorLabels {
    pub controller: String,
    pub class: String,
}

const PHASES: [BackupRepoPhase; 4] = [
    BackupRepoPhase::PreChecking,
    BackupRepoPhase::Failed,
    BackupRepoPhase::Ready,
    BackupRepoPhase::Deleting,
];

#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    repo_phase: Family<PhaseLabels, Gauge>,
    probe_duration: Family<OperationLabels, Histogram>,
    probe_results: Family<ResultLabels, Counter>,
    reconcile_errors: Family<ErrorLabels, Counter>,
    reconciles: Family<OperationLabels, Counter>,
    usage_bytes: Family<RepoLabels, Gauge>,
    usage_objects: Family<RepoLabels, Gauge>,
    usage_partial: Family<RepoLabels, Gauge>,
    scoped_keys: Family<RepoLabels, Gauge>,
    scoped_failing: Family<RepoLabels, Gauge>,
    usage_alert: Family<RepoLabels, Gauge>,
    replication_success: Family<RepoLabels, Gauge>,
    replication_behind: Family<RepoLabels, Gauge>,
    replication_failing: Family<RepoLabels, Gauge>,
    leader: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("backuprepo");
        let repo_phase = Family::<PhaseLabels, Gauge>::default();
        registry.register(
            "repository_phase",
            "1 for the current phase of each backup repository, 0 for the others",
            repo_phase.clone(),
        );
        let probe_duration = Family::<OperationLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.005, 2.0, 14))
        });
        registry.register(
            "probe_duration_seconds",
            "Duration of each operation of the storage probe",
            probe_duration.clone(),
        );
        let probe_results = Family::<ResultLabels, Counter>::default();
        registry.register(
            "probe_results",
            "Storage probe operations by result (Passed, Failed, Skipped)",
            probe_results.clone(),
        );
        let reconcile_errors = Family::<ErrorLabels, Counter>::default();
        registry.register(
            "reconcile_errors",
            "Reconcile errors by controller and class (invalid: waits for a change; transient: retried with backoff)",
            reconcile_errors.clone(),
        );
        let reconciles = Family::<OperationLabels, Counter>::default();
        registry.register("reconciles", "Reconciles by controller", reconciles.clone());
        let usage_bytes = Family::<RepoLabels, Gauge>::default();
        registry.register(
            "repository_usage_bytes",
            "Bytes under each repository's path (status.usage.totalBytes)",
            usage_bytes.clone(),
        );
        let usage_objects = Family::<RepoLabels, Gauge>::default();
        registry.register(
            "repository_usage_objects",
            "Objects under each repository's path (status.usage.objectCount)",
            usage_objects.clone(),
        );
        let usage_partial = Family::<RepoLabels, Gauge>::default();
        registry.register(
            "repository_usage_partial",
            "1 while a repository's usage measurement is incomplete (the figures are a lower bound)",
            usage_partial.clone(),
        );
        let scoped_keys = Family::<RepoLabels, Gauge>::default();
        registry.register(
            "repository_scoped_keys",
            "Consumer namespaces holding a key scoped to their own path (status.scopedCredentials)",
            scoped_keys.clone(),
        );
        let scoped_failing = Family::<RepoLabels, Gauge>::default();
        registry.register(
            "repository_scoped_keys_failing",
            "Namespaces whose scoped key could not be made, replaced or revoked in the last pass (their consumers wait)",
            scoped_failing.clone(),
        );
        let usage_alert = Family::<RepoLabels, Gauge>::default();
        registry.register(
            "repository_usage_alert_bytes",
            "The usage above which the BackupRepoUsageHigh alert fires (annotation backuprepo.io/usage-alert)",
            usage_alert.clone(),
        );
        let replication_success = Family::<RepoLabels, Gauge>::default();
        registry.register(
            "repository_replication_last_success_timestamp_seconds",
            "When the last complete copy of backuprepo.io/replicate-to began (time() minus this is the lag)",
            replication_success.clone(),
        );
        let replication_behind = Family::<RepoLabels, Gauge>::default();
        registry.register(
            "repository_replication_objects_behind",
            "Objects the last replication run found missing at the destination and did not copy",
            replication_behind.clone(),
        );
        let replication_failing = Family::<RepoLabels, Gauge>::default();
        registry.register(
            "repository_replication_failing",
            "1 while the last replication run failed or was refused (status.replication.lastError)",
            replication_failing.clone(),
        );
        let leader = Gauge::default();
        registry.register(
            "leader",
            "1 while this replica holds the controller lease and reconciles, 0 while it waits",
            leader.clone(),
        );
        Metrics {
            registry,
            repo_phase,
            probe_duration,
            probe_results,
            reconcile_errors,
            reconciles,
            usage_bytes,
            usage_objects,
            usage_partial,
            scoped_keys,
            scoped_failing,
            usage_alert,
            replication_success,
            replication_behind,
            replication_failing,
            leader,
        }
    }
}

impl Metrics {
    pub fn set_phase(&self, repo: &str, phase: Option<BackupRepoPhase>) {
        for p in PHASES {
            let labels = PhaseLabels {
                repo: repo.to_string(),
                phase: p.as_str().to_string(),
            };
            self.repo_phase
                .get_or_create(&labels)
                .set(i64::from(Some(p) == phase));
        }
    }

    /// Whether this replica leads.
    pub fn set_leader(&self, leading: bool) {
        self.leader.set(i64::from(leading));
    }

    /// The usage figures of a repository's status.
    pub fn set_usage(&self, repo: &str, usage: &backuprepo_api::RepoUsage) {
        let labels = RepoLabels {
            repo: repo.to_string(),
        };
        let clamp = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        self.usage_bytes
            .get_or_create(&labels)
            .set(clamp(usage.total_bytes));
        self.usage_objects
            .get_or_create(&labels)
            .set(clamp(usage.object_count));
        self.usage_partial
            .get_or_create(&labels)
            .set(i64::from(usage.partial));
    }

    /// A repository's `status.replication`.
    pub fn set_replication(&self, repo: &str, r: &backuprepo_api::ReplicationStatus) {
        let labels = RepoLabels {
            repo: repo.to_string(),
        };
        let success = r
            .last_success_time
            .as_ref()
            .map(|t| t.0.as_second())
            .unwrap_or(0);
        self.replication_success.get_or_create(&labels).set(success);
        self.replication_behind
            .get_or_create(&labels)
            .set(i64::try_from(r.objects_behind).unwrap_or(i64::MAX));
        self.replication_failing
            .get_or_create(&labels)
            .set(i64::from(r.last_error.is_some()));
    }

    /// The scoped keys of a repository, and how many namespaces failed in the last pass.
    pub fn set_scoped(&self, repo: &str, keys: usize, failing: usize) {
        let labels = RepoLabels {
            repo: repo.to_string(),
        };
        let n = |v: usize| i64::try_from(v).unwrap_or(i64::MAX);
        self.scoped_keys.get_or_create(&labels).set(n(keys));
        self.scoped_failing.get_or_create(&labels).set(n(failing));
    }

    /// The usage alert threshold of a repository (its `backuprepo.io/usage-alert`), or none.
    pub fn set_usage_alert(&self, repo: &str, bytes: Option<u64>) {
        let labels = RepoLabels {
            repo: repo.to_string(),
        };
        match bytes {
            Some(b) => {
                self.usage_alert
                    .get_or_create(&labels)
                    .set(i64::try_from(b).unwrap_or(i64::MAX));
            }
            None => {
                self.usage_alert.remove(&labels);
            }
        }
    }

    /// Forget a repository that is gone.
    pub fn remove_repo(&self, repo: &str) {
        let labels = RepoLabels {
            repo: repo.to_string(),
        };
        self.usage_bytes.remove(&labels);
        self.usage_objects.remove(&labels);
        self.usage_partial.remove(&labels);
        self.scoped_keys.remove(&labels);
        self.scoped_failing.remove(&labels);
        self.usage_alert.remove(&labels);
        self.replication_success.remove(&labels);
        self.replication_behind.remove(&labels);
        self.replication_failing.remove(&labels);
        for p in PHASES {
            self.repo_phase.remove(&PhaseLabels {
                repo: repo.to_string(),
                phase: p.as_str().to_string(),
            });
        }
    }

    pub fn observe_probe(&self, operation: &str, result: &str, seconds: f64) {
        self.probe_duration
            .get_or_create(&OperationLabels {
                operation: operation.to_string(),
            })
            .observe(seconds);
        self.probe_results
            .get_or_create(&ResultLabels {
                operation: operation.to_string(),
                result: result.to_string(),
            })
            .inc();
    }

    pub fn reconcile_error(&self, controller: &str, class: ErrorClass) {
        self.reconcile_errors
            .get_or_create(&ErrorLabels {
                controller: controller.to_string(),
                class: class.as_str().to_string(),
            })
            .inc();
    }

    pub fn reconciled(&self, controller: &str) {
        self.reconciles
            .get_or_create(&OperationLabels {
                operation: controller.to_string(),
            })
            .inc();
    }

    /// The OpenMetrics text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every metric the alerts and the dashboard read is one the controller exports (a
    /// renamed metric would silently empty a panel and mute an alert).
    #[test]
    fn alerts_and_dashboard_read_exported_metrics() {
        let m = Metrics::default();
        m.set_phase("r", Some(BackupRepoPhase::Ready));
        m.set_usage(
            "r",
            &backuprepo_api::RepoUsage {
                total_bytes: 1,
                object_count: 1,
                measured_at: backuprepo_api::k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                    backuprepo_api::k8s_openapi::jiff::Timestamp::UNIX_EPOCH,
                ),
                by_prefix: Default::default(),
                partial: false,
                resume_after: None,
                locked: None,
            },
        );
        m.set_scoped("r", 1, 0);
        m.set_usage_alert("r", Some(10));
        m.set_replication("r", &backuprepo_api::ReplicationStatus::default());
        m.reconciled("repo");
        m.reconcile_error("repo", ErrorClass::Transient);
        m.observe_probe("put", "Passed", 0.1);
        let exported = m.render();
        let text = format!(
            "{}{}",
            backuprepo_deploy::monitoring::rule_groups(),
            backuprepo_deploy::monitoring::dashboard()
        );
        let mut used: Vec<&str> = text
            .match_indices("backuprepo_")
            .map(|(i, _)| {
                let rest = &text[i..];
                let end = rest
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .unwrap_or(rest.len());
                &rest[..end]
            })
            .collect();
        used.sort();
        used.dedup();
        assert!(used.len() >= 8, "{used:?}");
        for name in used {
            assert!(
                exported.lines().any(|l| l.starts_with(name)),
                "{name} is read by the alerts or the dashboard but not exported:\n{exported}"
            );
        }
    }
}
