//! The controller's ports and who may reach them: `/metrics` on [`METRICS_PORT`], the health
//! probes on [`HEALTH_PORT`] (a listener of their own, so metrics clients cannot starve them),
//! and the NetworkPolicy that admits to the metrics port only the namespaces labelled
//! [`METRICS_ACCESS_LABEL`]`=allow` (where Prometheus runs), and the health port to anyone (the
//! kubelet's probes come from the node). Egress stays open: storage endpoints are wherever the
//! repositories say.

use std::collections::BTreeMap;

use k8s_openapi::api::networking::v1::{
    NetworkPolicy, NetworkPolicyIngressRule, NetworkPolicyPeer, NetworkPolicyPort,
    NetworkPolicySpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use crate::install::{labels, CONTROLLER_NAME};

/// Where `/metrics` listens (`BACKUPREPO_METRICS_ADDR`).
pub const METRICS_PORT: i32 = 8080;
/// Where `/healthz` and `/readyz` listen (`BACKUPREPO_HEALTH_ADDR`).
pub const HEALTH_PORT: i32 = 8081;
/// The namespace label (value `allow`) that admits a namespace's pods to the metrics port.
pub const METRICS_ACCESS_LABEL: &str = "backuprepo.io/metrics";

fn port(p: i32) -> Option<Vec<NetworkPolicyPort>> {
    Some(vec![NetworkPolicyPort {
        port: Some(IntOrString::Int(p)),
        protocol: Some("TCP".to_owned()),
        ..NetworkPolicyPort::default()
    }])
}

/// The controller's NetworkPolicy (see the module doc).
pub fn network_policy(namespace: &str) -> NetworkPolicy {
    NetworkPolicy {
        metadata: ObjectMeta {
            name: Some(CONTROLLER_NAME.to_owned()),
            namespace: Some(namespace.to_owned()),
            labels: Some(labels(Some("controller"))),
            ..ObjectMeta::default()
        },
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(LabelSelector {
                match_labels: Some(labels(Some("controller"))),
                ..LabelSelector::default()
            }),
            policy_types: Some(vec!["Ingress".to_owned()]),
            ingress: Some(vec![
                NetworkPolicyIngressRule {
                    ports: port(HEALTH_PORT),
                    from: None,
                },
                NetworkPolicyIngressRule {
                    ports: port(METRICS_PORT),
                    from: Some(vec![NetworkPolicyPeer {
                        namespace_selector: Some(LabelSelector {
                            match_labels: Some(BTreeMap::from([(
                                METRICS_ACCESS_LABEL.to_owned(),
                                "allow".to_owned(),
                            )])),
                            ..LabelSelector::default()
                        }),
                        ..NetworkPolicyPeer::default()
                    }]),
                },
            ]),
            ..NetworkPolicySpec::default()
        }),
    }
}
