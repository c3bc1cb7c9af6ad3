//! What every reconcile shares: the client, settings, the event recorder, metrics, the clock
//! and the name-suffix source (both injectable so tests see deterministic requests), and the
//! per-object retry counters of the backoff policy.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::Client;

use crate::config::OperatorConfig;
use crate::metrics::Metrics;

pub type Clock = Arc<dyn Fn() -> Time + Send + Sync>;
pub type Suffixes = Arc<dyn Fn() -> String + Send + Sync>;

pub struct Context {
    pub client: Client,
    pub config: OperatorConfig,
    pub metrics: Arc<Metrics>,
    recorder: Recorder,
    clock: Clock,
    suffixes: Suffixes,
    failures: Mutex<HashMap<String, u32>>,
    /// Bounds the storage probes running at once (`max_concurrent_probes`).
    pub probes: tokio::sync::Semaphore,
    /// Bounds the replication runs at once (see [`crate::replicate`]).
    pub replications: tokio::sync::Semaphore,
    /// The storage IAM's last answer per repository UID (see [`crate::key_mode`]).
    pub(crate) iam_answers: Mutex<HashMap<String, IamAnswer>>,
}

impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// For which config digest the storage's IAM answered, when, and what (see
/// [`crate::key_mode`]).
pub(crate) type IamAnswer = (String, Time, Result<(), String>);

/// Backoff of transient errors: 5 s, doubling per consecutive failure, at most 5 min.
const BACKOFF_BASE: Duration = Duration::from_secs(5);
const BACKOFF_MAX: Duration = Duration::from_secs(300);

impl Context {
    pub fn new(client: Client, config: OperatorConfig) -> Context {
        let reporter = Reporter {
            controller: config.controller_name.clone(),
            instance: config.instance.clone(),
        };
        Context {
            probes: tokio::sync::Semaphore::new(config.max_concurrent_probes.max(1)),
            replications: tokio::sync::Semaphore::new(crate::replicate::MAX_RUNS),
            recorder: Recorder::new(client.clone(), reporter),
            client,
            config,
            metrics: Arc::new(Metrics::default()),
            clock: Arc::new(|| Time(k8s_openapi::jiff::Timestamp::now())),
            suffixes: Arc::new(backuprepo_api::random_suffix),
            failures: Mutex::new(HashMap::new()),
            iam_answers: Mutex::new(HashMap::new()),
        }
    }

    /// Replace the clock (tests).
    pub fn with_clock(mut self, clock: Clock) -> Context {
        self.clock = clock;
        self
    }

    /// Replace the source of random name suffixes (tests).
    pub fn with_suffixes(mut self, suffixes: Suffixes) -> Context {
        self.suffixes = suffixes;
        self
    }

    pub fn with_metrics(mut self, metrics: Arc<Metrics>) -> Context {
        self.metrics = metrics;
        self
    }

    pub fn now(&self) -> Time {
        (self.clock)()
    }

    pub fn suffix(&self) -> String {
        (self.suffixes)()
    }

    /// Publish an event; a failure is logged, never fails the reconcile (events are advisory).
    pub async fn event(
        &self,
        regarding: &k8s_openapi::api::core::v1::ObjectReference,
        warning: bool,
        reason: &str,
        action: &str,
        note: impl Into<String>,
    ) {
        let mut note: String = note.into();
        // The API limits notes to 1 kB.
        if note.len() > 1024 {
            let mut end = 1021;
            while !note.is_char_boundary(end) {
                end -= 1;
            }
            note.truncate(end);
            note.push_str("...");
        }
        let ev = Event {
            type_: if warning {
                EventType::Warning
            } else {
                EventType::Normal
            },
            reason: reason.to_string(),
            note: Some(note),
            action: action.to_string(),
            secondary: None,
        };
        if let Err(e) = self.recorder.publish(&ev, regarding).await {
            tracing::warn!(reason, error = %e, "could not publish event");
        }
    }

    /// The next backoff delay for `key` (and count the failure).
    pub fn backoff(&self, key: &str) -> Duration {
        let n = match self.failures.lock() {
            Ok(mut m) => {
                let n = m.entry(key.to_string()).or_insert(0);
                *n = n.saturating_add(1);
                *n
            }
            Err(_) => 1,
        };
        let factor = 1u32
            .checked_shl(n.saturating_sub(1).min(16))
            .unwrap_or(u32::MAX);
        BACKOFF_BASE.saturating_mul(factor).min(BACKOFF_MAX)
    }

    /// Forget the failures of `key` after a successful reconcile.
    pub fn succeeded(&self, key: &str) {
        if let Ok(mut m) = self.failures.lock() {
            m.remove(key);
        }
    }
}
