//! Leader election over a `coordination.k8s.io/v1` Lease, so the controller can run as two
//! replicas: one reconciles, the other waits and serves `/healthz` and `/metrics`, and takes
//! over once the leader has not renewed the lease for its duration.
//!
//! The rules are client-go's: the holder renews `renewTime` every `renew_every`; anyone may
//! take a lease whose `renewTime + leaseDurationSeconds` has passed (or that has no holder),
//! bumping `leaseTransitions`; every write carries the `resourceVersion` it read, so of two
//! candidates racing for a lease the API server lets one win (409 for the other). A leader
//! that cannot renew within the lease duration stops leading: `run` then exits, and the pod
//! restarts as a follower, so two leaders never act for longer than one lease duration.
//!
//! Written here rather than taken from a crate: the maintained ones (kube-lease-manager 0.12,
//! kube-leader-election) are built on kube 4 and older k8s-openapi; this operator is on kube 5.

use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, PostParams};
use kube::Client;

/// The Lease the controller replicas share (in the controller's namespace).
pub const LEASE_NAME: &str = "backuprepo-controller";

/// How a replica takes part in the election.
#[derive(Debug, Clone)]
pub struct LeaseSettings {
    pub namespace: String,
    pub name: String,
    /// This replica's name in `holderIdentity` (the pod name).
    pub identity: String,
    /// `leaseDurationSeconds`: how long a lease not renewed stays taken.
    pub duration: Duration,
    /// How often the holder renews, and a follower tries.
    pub renew_every: Duration,
}

impl LeaseSettings {
    /// The controller's settings: 15 s leases renewed every 5 s (client-go's defaults are
    /// 15 s / 10 s / 2 s).
    pub fn new(namespace: &str, identity: &str) -> Self {
        LeaseSettings {
            namespace: namespace.to_string(),
            name: LEASE_NAME.to_string(),
            identity: identity.to_string(),
            duration: Duration::from_secs(15),
            renew_every: Duration::from_secs(5),
        }
    }
}

/// One replica's view of the Lease.
pub struct Elector {
    api: Api<Lease>,
    s: LeaseSettings,
}

fn now() -> MicroTime {
    MicroTime(Timestamp::now())
}

impl Elector {
    pub fn new(client: Client, s: LeaseSettings) -> Self {
        Elector {
            api: Api::namespaced(client, &s.namespace),
            s,
        }
    }

    /// One round: take the lease if it is free or expired, renew it if it is ours. Returns
    /// whether this replica holds it afterwards. A write that lost a race (409) is `false`.
    pub async fn try_acquire_or_renew(&self) -> kube::Result<bool> {
        let now = now();
        let secs = i32::try_from(self.s.duration.as_secs()).unwrap_or(i32::MAX);
        let Some(mut lease) = self.api.get_opt(&self.s.name).await? else {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(self.s.name.clone()),
                    namespace: Some(self.s.namespace.clone()),
                    ..ObjectMeta::default()
                },
                spec: Some(LeaseSpec {
                    holder_identity: Some(self.s.identity.clone()),
                    lease_duration_seconds: Some(secs),
                    acquire_time: Some(now.clone()),
                    renew_time: Some(now),
                    lease_transitions: Some(0),
                    ..LeaseSpec::default()
                }),
            };
            return won(self.api.create(&PostParams::default(), &lease).await);
        };
        let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
        let holder = spec.holder_identity.clone().unwrap_or_default();
        if holder == self.s.identity {
            spec.renew_time = Some(now);
            spec.lease_duration_seconds = Some(secs);
        } else {
            let held_for = spec
                .lease_duration_seconds
                .map(|s| Duration::from_secs(u64::try_from(s).unwrap_or(0)))
                .unwrap_or(self.s.duration);
            let expired = match &spec.renew_time {
                Some(t) => {
                    let age = now.0.as_millisecond() - t.0.as_millisecond();
                    age < 0 || Duration::from_millis(age.unsigned_abs()) > held_for
                }
                None => true,
            };
            if !holder.is_empty() && !expired {
                return Ok(false);
            }
            spec.holder_identity = Some(self.s.identity.clone());
            spec.lease_duration_seconds = Some(secs);
            spec.acquire_time = Some(now.clone());
            spec.renew_time = Some(now);
            spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
            tracing::info!(previous = %holder, "taking over the controller lease");
        }
        // `replace` sends the resourceVersion read above: a concurrent write makes it 409.
        won(self
            .api
            .replace(&self.s.name, &PostParams::default(), &lease)
            .await)
    }

    /// Wait until this replica leads (errors are retried: the API server may be away).
    pub async fn acquire(&self) {
        loop {
            match self.try_acquire_or_renew().await {
                Ok(true) => {
                    tracing::info!(identity = %self.s.identity, "leading");
                    return;
                }
                Ok(false) => {}
                Err(e) => tracing::warn!(error = %e, "leader election"),
            }
            tokio::time::sleep(self.s.renew_every).await;
        }
    }

    /// Keep the lease while leading; returns when leadership is lost: another holder took it,
    /// or it could not be renewed for a lease duration.
    pub async fn hold(&self) -> String {
        let mut renewed = Instant::now();
        loop {
            tokio::time::sleep(self.s.renew_every).await;
            match self.try_acquire_or_renew().await {
                Ok(true) => renewed = Instant::now(),
                Ok(false) => return "another replica holds the lease".to_string(),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot renew the controller lease");
                    if renewed.elapsed() >= self.s.duration {
                        return format!(
                            "the lease could not be renewed for {:?}: {e}",
                            self.s.duration
                        );
                    }
                }
            }
        }
    }
}

/// A write that lost the race is not an error: someone else holds the lease.
fn won(r: kube::Result<Lease>) -> kube::Result<bool> {
    match r {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;
    use backuprepo_kube_mock::{by_rule, not_found, Seen};
    use serde_json::{json, Value};

    const PATH: &str = "/apis/coordination.k8s.io/v1/namespaces/kb-system/leases";

    /// The Lease API of one API server, shared by every client: create (409 when it exists),
    /// get, and replace guarded by resourceVersion (409 when stale).
    fn lease_server(state: Arc<Mutex<Option<Value>>>) -> impl Fn(&Seen) -> (u16, Value) {
        move |seen: &Seen| {
            let mut lease = state.lock().unwrap();
            let conflict = json!({"kind":"Status","apiVersion":"v1","status":"Failure","reason":"Conflict","code":409,"message":"the object has been modified"});
            let rv = |l: &Value| {
                l["metadata"]["resourceVersion"]
                    .as_str()
                    .unwrap_or("0")
                    .parse::<u64>()
                    .unwrap()
            };
            match (seen.method.as_str(), seen.path.as_str()) {
                ("GET", p) if p == format!("{PATH}/{LEASE_NAME}") => match &*lease {
                    Some(l) => (200, l.clone()),
                    None => (404, not_found("leases \"backuprepo-controller\"")),
                },
                ("POST", p) if p == PATH => {
                    if lease.is_some() {
                        return (409, conflict);
                    }
                    let mut l = seen.body.clone();
                    l["metadata"]["resourceVersion"] = json!("1");
                    *lease = Some(l.clone());
                    (201, l)
                }
                ("PUT", p) if p == format!("{PATH}/{LEASE_NAME}") => {
                    let current = lease.as_ref().map(rv).unwrap_or(0);
                    if rv(&seen.body) != current {
                        return (409, conflict);
                    }
                    let mut l = seen.body.clone();
                    l["metadata"]["resourceVersion"] = json!((current + 1).to_string());
                    *lease = Some(l.clone());
                    (200, l)
                }
                other => panic!("unexpected request {other:?}"),
            }
        }
    }

    fn settings(identity: &str) -> LeaseSettings {
        LeaseSettings {
            // Whole seconds: leaseDurationSeconds is an integer.
            duration: Duration::from_secs(1),
            renew_every: Duration::from_millis(100),
            ..LeaseSettings::new("kb-system", identity)
        }
    }

    /// Two controllers, one lease: one leads, the other waits; when the leader stops renewing,
    /// the other takes over within the lease duration, and the old leader, trying again, finds
    /// the lease taken.
    #[tokio::test]
    async fn one_leader_and_failover_within_the_lease_duration() {
        let state = Arc::new(Mutex::new(None));
        let (ca, _, _ta) = by_rule(lease_server(state.clone()));
        let (cb, _, _tb) = by_rule(lease_server(state.clone()));
        let a = Elector::new(ca, settings("pod-a"));
        let b = Elector::new(cb, settings("pod-b"));
        assert!(a.try_acquire_or_renew().await.unwrap());
        assert!(!b.try_acquire_or_renew().await.unwrap(), "held by a");
        assert!(a.try_acquire_or_renew().await.unwrap(), "a renews");
        assert!(!b.try_acquire_or_renew().await.unwrap());

        // a stops renewing (its process hangs or its node is gone).
        let stopped = Instant::now();
        b.acquire().await;
        let took = stopped.elapsed();
        assert!(
            took >= Duration::from_millis(800),
            "not before the lease expired: {took:?}"
        );
        assert!(
            took < Duration::from_millis(900) + Duration::from_millis(400),
            "{took:?}"
        );
        let lease = state.lock().unwrap().clone().unwrap();
        assert_eq!(lease["spec"]["holderIdentity"], "pod-b");
        assert_eq!(lease["spec"]["leaseTransitions"], 1);
        // a comes back: it does not lead any more, and hold() would return at once.
        assert!(!a.try_acquire_or_renew().await.unwrap());
        let why = tokio::time::timeout(Duration::from_secs(2), a.hold())
            .await
            .unwrap();
        assert!(why.contains("another replica"), "{why}");
    }

    /// Racing for a free lease: exactly one of two candidates wins.
    #[tokio::test]
    async fn a_race_for_a_free_lease_has_one_winner() {
        let state = Arc::new(Mutex::new(None));
        let (ca, _, _ta) = by_rule(lease_server(state.clone()));
        let (cb, _, _tb) = by_rule(lease_server(state.clone()));
        let a = Elector::new(ca, settings("pod-a"));
        let b = Elector::new(cb, settings("pod-b"));
        let (ra, rb) = tokio::join!(a.try_acquire_or_renew(), b.try_acquire_or_renew());
        assert!(ra.unwrap() ^ rb.unwrap(), "exactly one leads");
    }
}
