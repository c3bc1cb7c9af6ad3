//! A scripted Kubernetes API server at the HTTP layer, for tests: each test lists the requests
//! the code under test must make, in order (method, path, query), with the response to give;
//! the mock checks each one and records its body. A request out of script fails the test with
//! both sides shown, and so does a request after the script ended.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use http::{Request, Response};
use kube::client::Body;
use kube::Client;
use serde_json::{json, Value};

/// One expected request and its response.
#[derive(Debug, Clone)]
pub struct Step {
    pub method: &'static str,
    pub path: String,
    /// Substrings the decoded query must contain.
    pub query: Vec<String>,
    pub status: u16,
    pub body: Value,
}

pub fn step(method: &'static str, path: impl Into<String>, status: u16, body: Value) -> Step {
    Step {
        method,
        path: path.into(),
        query: Vec::new(),
        status,
        body,
    }
}

impl Step {
    pub fn query(mut self, q: &str) -> Step {
        self.query.push(q.to_string());
        self
    }
}

/// A request as the mock received it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub path: String,
    pub query: String,
    pub content_type: String,
    pub body: Value,
}

pub fn not_found(what: &str) -> Value {
    json!({"kind":"Status","apiVersion":"v1","status":"Failure","message":format!("{what} not found"),"reason":"NotFound","code":404})
}

pub fn list(kind: &str, items: Vec<Value>) -> Value {
    json!({"apiVersion":"v1","kind":kind,"metadata":{"resourceVersion":"1"},"items":items})
}

fn decode(q: &str) -> String {
    let b = q.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            let h = u8::from_str_radix(std::str::from_utf8(&b[i + 1..i + 3]).unwrap(), 16).unwrap();
            out.push(h);
            i += 3;
        } else if b[i] == b'+' {
            out.push(b' ');
            i += 1;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).unwrap()
}

/// A client whose API server follows `script`; the join handle yields what it saw.
pub fn scripted(script: Vec<Step>) -> (Client, tokio::task::JoinHandle<Vec<Seen>>) {
    let (svc, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let task = tokio::spawn(async move {
        let mut seen = Vec::new();
        for (i, s) in script.into_iter().enumerate() {
            let next = tokio::time::timeout(Duration::from_secs(30), handle.next_request()).await;
            let Ok(Some((req, send))) = next else {
                panic!(
                    "step {i}: expected {} {} but no request came; seen so far: {seen:#?}",
                    s.method, s.path
                );
            };
            let got = read_request(req).await;
            assert!(
                got.method == s.method
                    && got.path == s.path
                    && s.query.iter().all(|q| got.query.contains(q.as_str())),
                "step {i}: expected {} {} ?{:?}, got {} {} ?{}\nbody: {:#}\nseen so far: {seen:#?}",
                s.method,
                s.path,
                s.query,
                got.method,
                got.path,
                got.query,
                got.body
            );
            // Events are echoed back as created.
            let resp_body = if s.body.is_null() {
                got.body.clone()
            } else {
                s.body.clone()
            };
            seen.push(got);
            let resp = response(s.status, &resp_body);
            send.send_response(resp);
        }
        // Nothing more may come.
        if let Ok(Some((req, _))) =
            tokio::time::timeout(Duration::from_millis(200), handle.next_request()).await
        {
            panic!(
                "unexpected extra request {} {}; seen: {seen:#?}",
                req.method(),
                req.uri()
            );
        }
        seen
    });
    (Client::new(svc, "default"), task)
}

async fn read_request(req: Request<Body>) -> Seen {
    let method = req.method().to_string();
    let path = req.uri().path().to_string();
    let query = decode(req.uri().query().unwrap_or_default());
    let content_type = req
        .headers()
        .get(http::header::CONTENT_TYPE)
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    let bytes = req.into_body().collect_bytes().await.unwrap();
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes).unwrap_or(Value::Null)
    };
    Seen {
        method,
        path,
        query,
        content_type,
        body,
    }
}

fn response(status: u16, body: &Value) -> Response<Body> {
    // A string body is sent as text (pod logs), anything else as JSON.
    let (ctype, bytes) = match body {
        Value::String(t) => ("text/plain", t.clone().into_bytes()),
        v => ("application/json", serde_json::to_vec(v).unwrap()),
    };
    Response::builder()
        .status(status)
        .header("content-type", ctype)
        .body(Body::from(bytes))
        .unwrap()
}

/// Every request a [`by_rule`] server received, in order.
pub type Log = std::sync::Arc<std::sync::Mutex<Vec<Seen>>>;

/// A client whose API server answers each request by rule, for code whose requests interleave
/// freely (controllers with watches): `answer` gives the status and body of each one. Watches
/// (`watch=true`) are held open and never answered. The log holds every request received.
pub fn by_rule(
    answer: impl Fn(&Seen) -> (u16, Value) + Send + 'static,
) -> (Client, Log, tokio::task::JoinHandle<()>) {
    let (svc, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let log: Log = Log::default();
    let task = {
        let log = log.clone();
        tokio::spawn(async move {
            let mut open_watches = Vec::new();
            while let Some((req, send)) = handle.next_request().await {
                let seen = read_request(req).await;
                log.lock().unwrap().push(seen.clone());
                if seen.query.contains("watch=true") {
                    open_watches.push(send);
                    continue;
                }
                let (status, body) = answer(&seen);
                // Events and other writes answered with `null` are echoed back.
                let body = if body.is_null() {
                    seen.body.clone()
                } else {
                    body
                };
                send.send_response(response(status, &body));
            }
        })
    };
    (Client::new(svc, "default"), log, task)
}

/// RFC 7386 merge.
pub fn merge(target: &mut Value, patch: &Value) {
    match patch {
        Value::Object(p) => {
            if !target.is_object() {
                *target = json!({});
            }
            let t = target.as_object_mut().unwrap();
            for (k, v) in p {
                if v.is_null() {
                    t.remove(k);
                } else {
                    merge(t.entry(k.clone()).or_insert(Value::Null), v);
                }
            }
        }
        _ => *target = patch.clone(),
    }
}

/// A value as JSON.
pub fn to_value<T: serde::Serialize>(t: &T) -> Value {
    serde_json::to_value(t).unwrap()
}

/// `kubernetes-validate --strict` against Kubernetes 1.33 on a YAML stream: panics with its
/// output when it refuses a document, returns its output otherwise. The tool is installed by
/// `scripts/test-servers.sh`; without it the check is skipped with a line, unless
/// `BR_REQUIRE_SERVERS=1` (CI), where its absence fails the test (`None` = skipped).
pub fn kubernetes_validate(yaml: &str) -> Option<String> {
    let found = std::process::Command::new("kubernetes-validate")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        assert!(
            std::env::var("BR_REQUIRE_SERVERS").as_deref() != Ok("1"),
            "kubernetes-validate is not installed (bash scripts/test-servers.sh install)"
        );
        eprintln!("skipped: kubernetes-validate is not installed");
        return None;
    }
    let dir = std::env::temp_dir().join(format!(
        "kubernetes-validate-{}-{:?}",
        std::process::id(),
        std::thread::current().id()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("objects.yaml");
    std::fs::write(&file, yaml).unwrap();
    let out = std::process::Command::new("kubernetes-validate")
        .args(["--strict", "--kubernetes-version", "1.33.0"])
        .arg(&file)
        .output()
        .unwrap();
    std::fs::remove_dir_all(&dir).ok();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "kubernetes-validate refused it:\n{text}"
    );
    Some(text)
}
