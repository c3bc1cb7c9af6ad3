//! `/metrics` (OpenMetrics text) and `/healthz` on plain HTTP/1 listeners: the health probes on
//! a listener of their own (`BACKUPREPO_HEALTH_ADDR`, port 8081), so that clients of the
//! metrics port can never starve the kubelet's probes and get both replicas restarted. Each
//! takes the listener and a shutdown future, so tests run it on an ephemeral port.
//!
//! Both ports are reachable by pods of the cluster (the install's NetworkPolicy narrows the
//! metrics port), so their cost is bounded ([`Limits`]): at most 32 connections are served at
//! once, a connection beyond that is closed at once rather than queued, and a client has 5 s to
//! send its request headers.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;

use crate::metrics::Metrics;

/// What one client may cost the server.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Connections served at once.
    pub max_connections: usize,
    /// Time a client has to send the request headers.
    pub header_read_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: 32,
            header_read_timeout: Duration::from_secs(5),
        }
    }
}

const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// What a listener answers: `/metrics`, or `/healthz` and `/readyz`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Routes {
    Metrics,
    Health,
}

fn respond(routes: Routes, metrics: &Metrics, req: &Request<Incoming>) -> Response<Full<Bytes>> {
    let (status, ctype, body) = match (routes, req.uri().path()) {
        (Routes::Metrics, "/metrics") => (StatusCode::OK, OPENMETRICS, metrics.render()),
        (Routes::Health, "/healthz" | "/readyz") => {
            (StatusCode::OK, "text/plain", "ok\n".to_string())
        }
        _ => (
            StatusCode::NOT_FOUND,
            "text/plain",
            "not found\n".to_string(),
        ),
    };
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = status;
    if let Ok(v) = hyper::header::HeaderValue::from_str(ctype) {
        resp.headers_mut().insert(hyper::header::CONTENT_TYPE, v);
    }
    resp
}

/// Serve `routes` until `shutdown` completes.
pub async fn serve(
    listener: TcpListener,
    routes: Routes,
    metrics: Arc<Metrics>,
    limits: Limits,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    tokio::pin!(shutdown);
    let slots = Arc::new(tokio::sync::Semaphore::new(limits.max_connections.max(1)));
    loop {
        let (stream, _) = tokio::select! {
            accepted = listener.accept() => accepted?,
            () = &mut shutdown => return Ok(()),
        };
        // Over the limit: closed now (the client retries), never queued behind slow ones.
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            drop(stream);
            continue;
        };
        let metrics = metrics.clone();
        tokio::spawn(async move {
            let _slot = slot;
            let svc = service_fn(move |req| {
                let resp = respond(routes, &metrics, &req);
                async move { Ok::<_, Infallible>(resp) }
            });
            if let Err(e) = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(limits.header_read_timeout)
                .serve_connection(TokioIo::new(stream), svc)
                .await
            {
                tracing::debug!(error = %e, "metrics connection ended");
            }
        });
    }
}
