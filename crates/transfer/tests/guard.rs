//! The connection guard of a shared service (`endpoint::guard_process`), in a process of its
//! own (the guard is process-wide): a storage host that resolves to a refused address is never
//! connected to, whatever name reaches it, a literal refused address is refused when the client
//! is built, and a redirect is not followed.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use backuprepo_transfer::config::ToolConfig;
use backuprepo_transfer::{endpoint, Storage};

/// A listener on `ip` (a loopback address) that counts connections and answers each with
/// `response`.
fn server(ip: &str, response: &'static str) -> (u16, Arc<AtomicUsize>) {
    let l = TcpListener::bind((ip, 0)).unwrap();
    let port = l.local_addr().unwrap().port();
    let seen = Arc::new(AtomicUsize::new(0));
    let count = seen.clone();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { continue };
            count.fetch_add(1, Ordering::SeqCst);
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf);
            let _ = s.write_all(response.as_bytes());
        }
    });
    (port, seen)
}

fn s3(endpoint: &str) -> ToolConfig {
    ToolConfig::parse(&format!(
        "[storage]\ntype = s3\nprovider = Minio\naccess_key_id = a\nsecret_access_key = b\nendpoint = {endpoint}\nroot = bucket\nforce_path_style = true\n"
    ))
    .unwrap()
}

async fn pull(cfg: &ToolConfig) -> String {
    let storage = match Storage::open(cfg, "", None) {
        Ok(s) => s,
        Err(e) => return e.to_string(),
    };
    match storage.stat("x").await {
        Ok(_) => "read succeeded".into(),
        Err(e) => format!("{e:#}"),
    }
}

#[tokio::test]
async fn guarded_connections_never_reach_a_refused_address_nor_follow_redirects() {
    // `localhost` stands for the API server: it resolves to 127.0.0.1 here.
    let (refused_port, refused_seen) =
        server("127.0.0.1", "HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n");
    let (target_port, target_seen) =
        server("127.0.0.3", "HTTP/1.1 200 OK\r\ncontent-length: 1\r\n\r\nx");
    let redirect: &'static str = Box::leak(
        format!("HTTP/1.1 307 Temporary Redirect\r\nlocation: http://127.0.0.3:{target_port}/bucket/x\r\ncontent-length: 0\r\n\r\n")
            .into_boxed_str(),
    );
    let (redirect_port, redirect_seen) = server("127.0.0.2", redirect);
    endpoint::guard_process(&["localhost".to_string()]).await;

    // By name: refused at the connection, which never happens.
    let e = pull(&s3(&format!("http://localhost:{refused_port}"))).await;
    assert!(e.contains("API server"), "{e}");
    assert_eq!(
        refused_seen.load(Ordering::SeqCst),
        0,
        "connected to a refused address"
    );

    // FTP, through its own client: the name is resolved once, checked, and never connected to.
    let ftp = ToolConfig::parse(&format!(
        "[storage]\ntype = ftp\nhost = localhost\nport = {refused_port}\nuser = u\npass.need_obscure = p\n"
    ))
    .unwrap();
    let e = pull(&ftp).await;
    assert!(e.contains("API server"), "{e}");
    assert_eq!(
        refused_seen.load(Ordering::SeqCst),
        0,
        "FTP connected to a refused address"
    );

    // A literal refused address: refused before any request.
    let e = pull(&s3("http://169.254.169.254")).await;
    assert!(e.contains("metadata service"), "{e}");

    // A redirect is an answer, not a hop: the target (an allowed address) is never contacted.
    let e = pull(&s3(&format!("http://127.0.0.2:{redirect_port}"))).await;
    assert!(
        redirect_seen.load(Ordering::SeqCst) > 0,
        "the server was not reached: {e}"
    );
    assert_eq!(
        target_seen.load(Ordering::SeqCst),
        0,
        "the redirect was followed: {e}"
    );
    assert!(!e.contains("read succeeded"), "{e}");
}
