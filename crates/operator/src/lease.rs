//! Leader election over a `coordination.k8s.io/v1` Lease, so the controller can run as two
//! replicas: one reconciles, the other waits and serves `/healthz` and `/metrics`, and takes
//! over once the leader has not renewed the lease for its duration.
//!
//! The rules are client-go's:
//! - the holder renews `renewTime` every `renew_every`; every write carries the
//!   `resourceVersion` it read, so of two candidates racing for a lease the API server lets one
//!   win (409 for the other);
//! - a candidate measures expiry on its own monotonic clock, from the moment it last saw the
//!   lease change (holder, renew time or resourceVersion): never by comparing `renewTime` with
//!   its wall clock, which belongs to another machine;
//! - the leader leads until its [`Deadline`]: `renew_deadline` after the start of its last
//!   successful renew, shorter than the lease duration a follower waits. Every renew has that
//!   timeout, so one stuck on a dead connection cannot keep it leading. Past the deadline the
//!   controller's writes are refused before they leave the process ([`WriteGuard`]) and `hold`
//!   returns, so a leader that was frozen (SIGSTOP, a paused VM) and resumes after another
//!   replica took over steps down without writing.
//!
//! Written here rather than taken from a crate: the maintained ones (kube-lease-manager 0.12,
//! kube-leader-election) are built on kube 4 and older k8s-openapi; this operator is on kube 5.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::task::{Context as TaskContext, Poll};
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
    /// `leaseDurationSeconds`: how long a follower waits after the last change it saw.
    pub duration: Duration,
    /// How long the leader leads after the start of its last successful renew; also the
    /// timeout of every renew. Shorter than `duration`.
    pub renew_deadline: Duration,
    /// How often the holder renews, and a follower tries.
    pub renew_every: Duration,
}

impl LeaseSettings {
    /// The controller's settings: client-go's defaults (15 s leases, a 10 s renew deadline,
    /// tries every 2 s).
    pub fn new(namespace: &str, identity: &str) -> Self {
        LeaseSettings {
            namespace: namespace.to_string(),
            name: LEASE_NAME.to_string(),
            identity: identity.to_string(),
            duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            renew_every: Duration::from_secs(2),
        }
    }
}

/// Until when this replica may act as the leader, on the monotonic clock. Shared by the
/// elector (which moves it) and the [`WriteGuard`] of the controller's client (which reads it).
#[derive(Clone, Debug, Default)]
pub struct Deadline(Arc<Mutex<Option<Instant>>>);

impl Deadline {
    /// A deadline that never passes (no leader election: a single replica).
    pub fn unlimited() -> Self {
        let d = Deadline::default();
        d.set(Instant::now() + Duration::from_secs(100 * 365 * 24 * 3600));
        d
    }

    fn set(&self, until: Instant) {
        if let Ok(mut g) = self.0.lock() {
            *g = Some(until);
        }
    }

    fn clear(&self) {
        if let Ok(mut g) = self.0.lock() {
            *g = None;
        }
    }

    /// Whether this replica still leads now.
    pub fn holds(&self) -> bool {
        self.0
            .lock()
            .ok()
            .and_then(|g| *g)
            .is_some_and(|until| Instant::now() < until)
    }
}

/// One replica's view of the Lease.
pub struct Elector {
    api: Api<Lease>,
    s: LeaseSettings,
    deadline: Deadline,
    /// The last lease record seen (holder, renew time, resourceVersion) and when it was first
    /// seen, on this process's monotonic clock.
    observed: Mutex<Option<(String, Instant)>>,
    /// Whether this replica leads (between a won round and a lost one).
    leading: std::sync::atomic::AtomicBool,
}

fn now() -> MicroTime {
    MicroTime(Timestamp::now())
}

/// What changes whenever the holder renews: a candidate restarts its wait when it changes.
fn record(lease: &Lease) -> String {
    let spec = lease.spec.clone().unwrap_or_default();
    format!(
        "{}|{:?}|{}",
        spec.holder_identity.unwrap_or_default(),
        spec.renew_time.map(|t| t.0.as_millisecond()),
        lease.metadata.resource_version.clone().unwrap_or_default()
    )
}

impl Elector {
    pub fn new(client: Client, s: LeaseSettings) -> Self {
        Self::with_deadline(client, s, Deadline::default())
    }

    /// As [`Elector::new`], moving `deadline` as it wins, renews and loses the lease.
    pub fn with_deadline(client: Client, s: LeaseSettings, deadline: Deadline) -> Self {
        Elector {
            api: Api::namespaced(client, &s.namespace),
            s,
            deadline,
            observed: Mutex::new(None),
            leading: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// When this replica last saw `lease` change, updated from this read.
    fn first_seen(&self, lease: &Lease) -> Instant {
        let rec = record(lease);
        let Ok(mut seen) = self.observed.lock() else {
            return Instant::now();
        };
        match &*seen {
            Some((r, at)) if *r == rec => *at,
            _ => {
                let at = Instant::now();
                *seen = Some((rec, at));
                at
            }
        }
    }

    /// One round: take the lease if it is free or expired, renew it if it is ours. Returns
    /// whether this replica holds it afterwards. A write that lost a race (409) is `false`, and
    /// so is a round that took longer than the renew deadline. On `true` the [`Deadline`] moves
    /// to `renew_deadline` after the start of the round.
    pub async fn try_acquire_or_renew(&self) -> kube::Result<bool> {
        let started = Instant::now();
        match tokio::time::timeout(self.s.renew_deadline, self.round(started)).await {
            Ok(Ok(true)) => {
                self.deadline.set(started + self.s.renew_deadline);
                self.leading.store(true, Ordering::SeqCst);
                Ok(true)
            }
            Ok(Ok(false)) => {
                self.deadline.clear();
                self.leading.store(false, Ordering::SeqCst);
                Ok(false)
            }
            Ok(Err(e)) => Err(e),
            Err(_) => {
                tracing::warn!(timeout = ?self.s.renew_deadline, "the lease request did not finish");
                Ok(false)
            }
        }
    }

    async fn round(&self, started: Instant) -> kube::Result<bool> {
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
                    acquire_time: Some(now()),
                    renew_time: Some(now()),
                    lease_transitions: Some(0),
                    ..LeaseSpec::default()
                }),
            };
            return won(self.api.create(&PostParams::default(), &lease).await);
        };
        let seen_at = self.first_seen(&lease);
        let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
        let holder = spec.holder_identity.clone().unwrap_or_default();
        if holder == self.s.identity {
            // Ours. A leader renews only while inside the deadline of its last renew: one that
            // was frozen past it may have been replaced, and must not write. A replica that is
            // not leading (it stepped down, or restarted under the same name) takes its own
            // lease back: the record still names it, so no one else has led since, and the
            // write carries the resourceVersion it read.
            if self.leading.load(Ordering::SeqCst) && !self.deadline.holds() {
                tracing::warn!("the renew deadline passed before this renew; stepping down");
                return Ok(false);
            }
            spec.renew_time = Some(now());
            spec.lease_duration_seconds = Some(secs);
        } else {
            let held_for = spec
                .lease_duration_seconds
                .map(|s| Duration::from_secs(u64::try_from(s).unwrap_or(0)))
                .unwrap_or(self.s.duration);
            // Expired when nothing changed for the lease's duration, measured here.
            let expired = started.saturating_duration_since(seen_at) > held_for;
            if !holder.is_empty() && !expired {
                return Ok(false);
            }
            spec.holder_identity = Some(self.s.identity.clone());
            spec.lease_duration_seconds = Some(secs);
            spec.acquire_time = Some(now());
            spec.renew_time = Some(now());
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
    /// or the renew deadline passed without a successful renew.
    pub async fn hold(&self) -> String {
        loop {
            tokio::time::sleep(self.s.renew_every).await;
            if !self.deadline.holds() {
                self.leading.store(false, Ordering::SeqCst);
                return format!(
                    "the lease was not renewed within {:?}",
                    self.s.renew_deadline
                );
            }
            match self.try_acquire_or_renew().await {
                Ok(true) => {}
                Ok(false) => return "another replica holds the lease".to_string(),
                Err(e) => tracing::warn!(error = %e, "cannot renew the controller lease"),
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

/// A tower layer for the controller's client: a request that changes anything (every method
/// but GET, HEAD and OPTIONS) is refused in the process, without being sent, once this replica's
/// [`Deadline`] has passed.
#[derive(Clone, Debug)]
pub struct WriteGuard(pub Deadline);

impl<S> tower::Layer<S> for WriteGuard {
    type Service = WriteGuarded<S>;
    fn layer(&self, inner: S) -> WriteGuarded<S> {
        WriteGuarded {
            inner,
            deadline: self.0.clone(),
        }
    }
}

/// The service [`WriteGuard`] makes.
#[derive(Clone, Debug)]
pub struct WriteGuarded<S> {
    inner: S,
    deadline: Deadline,
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl<S, B> tower::Service<http::Request<B>> for WriteGuarded<S>
where
    S: tower::Service<http::Request<B>>,
    S::Error: Into<BoxError>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let read = matches!(
            *req.method(),
            http::Method::GET | http::Method::HEAD | http::Method::OPTIONS
        );
        if !read && !self.deadline.holds() {
            let what = format!("{} {}", req.method(), req.uri().path());
            return Box::pin(async move {
                Err(format!("not sent: this replica no longer leads ({what})").into())
            });
        }
        let fut = self.inner.call(req);
        Box::pin(async move { fut.await.map_err(Into::into) })
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
            renew_deadline: Duration::from_millis(700),
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
        assert!(why.contains("not renewed"), "{why}");
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

    /// A leader resumed after its renew deadline (frozen, or its renews stuck) does not renew:
    /// it steps down without a write, even while the lease still names it.
    #[tokio::test]
    async fn past_its_deadline_a_leader_steps_down_without_writing() {
        let state = Arc::new(Mutex::new(None));
        let writes = Arc::new(Mutex::new(0usize));
        let rule = lease_server(state.clone());
        let w = writes.clone();
        let (ca, _, _ta) = by_rule(move |seen: &Seen| {
            if seen.method != "GET" {
                *w.lock().unwrap() += 1;
            }
            rule(seen)
        });
        let a = Elector::new(ca, settings("pod-a"));
        assert!(a.try_acquire_or_renew().await.unwrap());
        assert!(a.deadline.holds());
        let before = *writes.lock().unwrap();
        tokio::time::sleep(Duration::from_millis(750)).await; // past the 700 ms deadline
        assert!(!a.deadline.holds());
        assert!(!a.try_acquire_or_renew().await.unwrap(), "stepped down");
        assert_eq!(
            *writes.lock().unwrap(),
            before,
            "no write after the deadline"
        );
        let why = tokio::time::timeout(Duration::from_secs(2), a.hold())
            .await
            .unwrap();
        assert!(why.contains("not renewed"), "{why}");
        // Following again: the lease still names it and no one else led, so it takes it back.
        assert!(a.try_acquire_or_renew().await.unwrap());
        assert_eq!(*writes.lock().unwrap(), before + 1);
    }

    /// The controller's client: past the deadline, writes are refused before they are sent;
    /// reads still go.
    #[tokio::test]
    async fn the_write_guard_refuses_writes_once_the_deadline_passed() {
        use tower::{Layer, Service, ServiceExt};
        let sent = Arc::new(Mutex::new(Vec::<String>::new()));
        let s = sent.clone();
        let inner = tower::service_fn(move |req: http::Request<()>| {
            s.lock().unwrap().push(req.method().to_string());
            async { Ok::<_, std::convert::Infallible>(()) }
        });
        let deadline = Deadline::default();
        let mut svc = WriteGuard(deadline.clone()).layer(inner);
        let req = |m: &str| {
            http::Request::builder()
                .method(m)
                .uri("/x")
                .body(())
                .unwrap()
        };
        svc.ready().await.unwrap().call(req("GET")).await.unwrap();
        let err = svc
            .ready()
            .await
            .unwrap()
            .call(req("PATCH"))
            .await
            .unwrap_err();
        assert!(err.to_string().contains("no longer leads"), "{err}");
        deadline.set(Instant::now() + Duration::from_secs(5));
        svc.ready().await.unwrap().call(req("PATCH")).await.unwrap();
        deadline.set(Instant::now() - Duration::from_millis(1));
        assert!(svc
            .ready()
            .await
            .unwrap()
            .call(req("DELETE"))
            .await
            .is_err());
        assert_eq!(*sent.lock().unwrap(), ["GET", "PATCH"]);
    }
}
