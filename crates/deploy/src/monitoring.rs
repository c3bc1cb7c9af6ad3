//! Alerts and a dashboard over the metrics the controller exports (`backuprepo_*` on its
//! metrics port): a PrometheusRule (Prometheus Operator) and a Grafana dashboard in a
//! ConfigMap labelled for Grafana's dashboard sidecar. Off unless asked for: `install --print
//! --monitoring`, or `monitoring.enabled` in the values file (the chart's too). The rule
//! groups are also written to `deploy/monitoring/rules.yaml` for `promtool check rules` and
//! `promtool test rules` (`deploy/monitoring/rules-test.yaml` fires each alert).

use serde_json::{json, Value};

use crate::install::labels;
use crate::CONTROLLER_NAME;

/// The alerting rules, as Prometheus' rule file `groups:` list.
pub fn rule_groups() -> Value {
    json!([{
        "name": "backuprepo",
        "rules": [
            {
                "alert": "BackupRepoNotReady",
                "expr": "max by (repo) (backuprepo_repository_phase{phase=\"Ready\"}) == 0",
                "for": "10m",
                "labels": {"severity": "warning"},
                "annotations": {
                    "summary": "Backup repository {{ $labels.repo }} is not Ready",
                    "description": "BackupRepo {{ $labels.repo }} has not been Ready for 10 minutes: backups into it fail. `backuprepo describe {{ $labels.repo }}` shows the failing check and its fix."
                }
            },
            {
                "alert": "BackupRepoScopedKeysFailing",
                "expr": "max by (repo) (backuprepo_repository_scoped_keys_failing) > 0",
                "for": "10m",
                "labels": {"severity": "warning"},
                "annotations": {
                    "summary": "Scoped keys of {{ $labels.repo }} fail for {{ $value }} namespace(s)",
                    "description": "The controller could not make, replace or revoke the scoped storage keys of {{ $value }} consumer namespace(s) of BackupRepo {{ $labels.repo }} for 10 minutes; their backup jobs wait. See the repository's RepositoryKeyShared and events."
                }
            },
            {
                "alert": "BackupRepoUsageHigh",
                "expr": "max by (repo) (backuprepo_repository_usage_bytes) > on (repo) max by (repo) (backuprepo_repository_usage_alert_bytes)",
                "for": "15m",
                "labels": {"severity": "warning"},
                "annotations": {
                    "summary": "Backup repository {{ $labels.repo }} holds more than its threshold",
                    "description": "BackupRepo {{ $labels.repo }} holds {{ $value | humanize1024 }}B, above the threshold of its backuprepo.io/usage-alert annotation."
                }
            },
            {
                "alert": "BackupRepoReplicationFailing",
                "expr": "max by (repo) (backuprepo_repository_replication_failing) > 0",
                "for": "30m",
                "labels": {"severity": "warning"},
                "annotations": {
                    "summary": "The copy of {{ $labels.repo }} is not kept current",
                    "description": "The replication of BackupRepo {{ $labels.repo }} (backuprepo.io/replicate-to) has failed or been refused for 30 minutes: its second copy falls behind. `backuprepo describe {{ $labels.repo }}` shows the last error."
                }
            },
            {
                "alert": "BackupRepoNoLeader",
                "expr": "(max(backuprepo_leader) or vector(0)) == 0",
                "for": "1m",
                "labels": {"severity": "critical"},
                "annotations": {
                    "summary": "No backuprepo controller leads",
                    "description": "No replica of the backuprepo controller has held the lease for a minute (or none is scraped): repositories are not checked and consumers get no tool config."
                }
            }
        ]
    }])
}

/// The PrometheusRule of [`rule_groups`] in `namespace`.
pub fn prometheus_rule(namespace: &str) -> Value {
    json!({
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {
            "name": CONTROLLER_NAME,
            "namespace": namespace,
            "labels": labels(Some("controller")),
        },
        "spec": {"groups": rule_groups()},
    })
}

fn panel(
    id: u64,
    title: &str,
    kind: &str,
    unit: &str,
    exprs: &[(&str, &str)],
    y: u64,
    x: u64,
) -> Value {
    json!({
        "id": id,
        "title": title,
        "type": kind,
        "datasource": {"type": "prometheus", "uid": "${datasource}"},
        "gridPos": {"h": 8, "w": 12, "x": x, "y": y},
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "targets": exprs.iter().enumerate().map(|(i, (expr, legend))| json!({
            "refId": ((b'A' + i as u8) as char).to_string(),
            "expr": expr,
            "legendFormat": legend,
        })).collect::<Vec<_>>(),
    })
}

/// The Grafana dashboard (JSON model) over the exported metrics.
pub fn dashboard() -> Value {
    json!({
        "title": "backuprepo",
        "uid": "backuprepo",
        "schemaVersion": 39,
        "version": 1,
        "editable": true,
        "time": {"from": "now-6h", "to": "now"},
        "templating": {"list": [{
            "name": "datasource", "type": "datasource", "query": "prometheus", "label": "Data source"
        }]},
        "panels": [
            panel(1, "Repositories not Ready", "stat", "none",
                &[("count(max by (repo) (backuprepo_repository_phase{phase=\"Ready\"}) == 0) or vector(0)", "not Ready")], 0, 0),
            panel(2, "Phase by repository", "table", "none",
                &[("max by (repo, phase) (backuprepo_repository_phase) == 1", "{{repo}} {{phase}}")], 0, 12),
            panel(3, "Usage (bytes)", "timeseries", "bytes",
                &[("max by (repo) (backuprepo_repository_usage_bytes)", "{{repo}}"),
                  ("max by (repo) (backuprepo_repository_usage_alert_bytes)", "{{repo}} alert")], 8, 0),
            panel(4, "Objects", "timeseries", "short",
                &[("max by (repo) (backuprepo_repository_usage_objects)", "{{repo}}")], 8, 12),
            panel(5, "Storage check duration (p95)", "timeseries", "s",
                &[("histogram_quantile(0.95, sum by (operation, le) (rate(backuprepo_probe_duration_seconds_bucket[15m])))", "{{operation}}")], 16, 0),
            panel(6, "Storage check results", "timeseries", "ops",
                &[("sum by (result) (rate(backuprepo_probe_results_total[15m]))", "{{result}}")], 16, 12),
            panel(7, "Reconcile errors", "timeseries", "ops",
                &[("sum by (controller, class) (rate(backuprepo_reconcile_errors_total[15m]))", "{{controller}} {{class}}")], 24, 0),
            panel(8, "Leader and scoped keys", "timeseries", "short",
                &[("max(backuprepo_leader)", "leader"),
                  ("sum by (repo) (backuprepo_repository_scoped_keys)", "{{repo}} keys"),
                  ("sum by (repo) (backuprepo_repository_scoped_keys_failing)", "{{repo}} failing")], 24, 12),
            panel(9, "Replication lag", "timeseries", "s",
                &[("time() - max by (repo) (backuprepo_repository_replication_last_success_timestamp_seconds > 0)", "{{repo}}")], 32, 0),
            panel(10, "Replication: objects behind", "timeseries", "short",
                &[("max by (repo) (backuprepo_repository_replication_objects_behind)", "{{repo}}")], 32, 12),
        ],
    })
}

/// The dashboard in a ConfigMap that Grafana's sidecar loads (label `grafana_dashboard: "1"`).
pub fn dashboard_config_map(namespace: &str) -> Result<Value, serde_json::Error> {
    let mut l = labels(Some("controller"));
    l.insert("grafana_dashboard".into(), "1".into());
    Ok(json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": format!("{CONTROLLER_NAME}-dashboard"),
            "namespace": namespace,
            "labels": l,
        },
        "data": {"backuprepo.json": serde_json::to_string_pretty(&dashboard())?},
    }))
}
