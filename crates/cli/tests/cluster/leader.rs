//! Leader election on the real API server: controller processes on one Lease, each with its
//! identity in its user agent. A killed leader is replaced within the lease duration; a frozen
//! leader (SIGSTOP) is replaced, and once resumed (SIGCONT) it steps down without a single
//! write, as the API server's audit log shows.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::harness::{cluster, lease_holder, s3_repo, Cluster, Controller};

const WRITES: [&str; 5] = ["create", "update", "patch", "delete", "deletecollection"];

/// Wait until `who` holds the Lease; how long that took.
fn wait_holder(c: &Cluster, who: &str, secs: u64) -> Duration {
    let start = Instant::now();
    c.wait(secs, &format!("{who} leads"), || {
        (lease_holder(c) == who).then_some(())
    });
    start.elapsed()
}

fn agent_of(e: &Value, identity: &str) -> bool {
    e["userAgent"]
        .as_str()
        .is_some_and(|a| a.ends_with(&format!("({identity})")))
}

#[test]
fn a_killed_or_frozen_leader_is_replaced_and_a_resumed_one_never_writes() {
    let Some(c) = cluster("a_killed_or_frozen_leader_is_replaced_and_a_resumed_one_never_writes")
    else {
        return;
    };
    let a = Controller::start(&c, "leader-a", &[]);
    wait_holder(&c, "leader-a", 30);
    // What an earlier run on this cluster may have left.
    c.kubectl(
        &[
            "delete",
            "backuprepo",
            "leader-1",
            "leader-2",
            "--ignore-not-found",
            "--timeout=60s",
        ],
        None,
    );
    let from = c.audit().len();
    let b = Controller::start(&c, "leader-b", &[]);
    s3_repo(&c, "leader-1", "leader-1", &[]);
    c.wait_phase("leader-1", "Ready", 60);
    let audit = c.audit();
    assert!(
        !audit.iter().skip(from).any(|e| agent_of(e, "leader-b")
            && e["objectRef"]["resource"] == "backuprepos"
            && WRITES.contains(&e["verb"].as_str().unwrap_or(""))),
        "the follower wrote a BackupRepo"
    );

    // SIGKILL: the follower leads within the lease duration (15 s) plus one try (2 s).
    a.signal("KILL");
    let took = wait_holder(&c, "leader-b", 40);
    println!(
        "takeover after SIGKILL of the leader: {:.1} s",
        took.as_secs_f64()
    );
    assert!(took < Duration::from_secs(18), "takeover took {took:?}");
    drop(a);

    // SIGSTOP the leader past its lease; a third replica takes over.
    let mut b = b;
    let c3 = Controller::start(&c, "leader-c", &[]);
    std::thread::sleep(Duration::from_secs(3)); // leader-c is a follower now
    b.signal("STOP");
    let frozen = Instant::now();
    let took = wait_holder(&c, "leader-c", 40);
    println!("takeover from a frozen leader: {:.1} s", took.as_secs_f64());
    // Something for the frozen leader to act on when it wakes: its watch delivers it then.
    s3_repo(&c, "leader-2", "leader-2", &[]);
    c.wait_phase("leader-2", "Ready", 60);
    let takeover = c
        .audit()
        .iter()
        .skip(from)
        .filter(|e| {
            agent_of(e, "leader-c")
                && e["objectRef"]["resource"] == "leases"
                && e["verb"] == "update"
                && e["responseStatus"]["code"] == 200
        })
        .filter_map(|e| e["requestReceivedTimestamp"].as_str().map(str::to_string))
        .next()
        .expect("leader-c's takeover in the audit log");
    // Resume the old leader well after the takeover: it must step down (exit) without writing.
    assert!(frozen.elapsed() > Duration::from_secs(15));
    b.signal("CONT");
    // It steps down (in-process: it follows again, it does not exit) and leader-c keeps leading.
    c.wait(30, "the resumed leader steps down", || {
        b.log_text().contains("stopped leading").then_some(())
    });
    std::thread::sleep(Duration::from_secs(5));
    assert!(
        b.exited().is_none(),
        "it follows, without a restart:\n{}",
        b.log_text()
    );
    assert_eq!(lease_holder(&c), "leader-c");
    let late_writes: Vec<String> = c
        .audit()
        .iter()
        .skip(from)
        .filter(|e| agent_of(e, "leader-b"))
        .filter(|e| e["requestReceivedTimestamp"].as_str().unwrap_or("") > takeover.as_str())
        .filter(|e| WRITES.contains(&e["verb"].as_str().unwrap_or("")))
        .map(|e| format!("{} {}", e["verb"], e["requestURI"]))
        .collect();
    assert!(
        late_writes.is_empty(),
        "the old leader wrote after the takeover at {takeover}: {late_writes:?}"
    );
    // The new leader carries on: it removes the finalizers when the repositories go.
    c.kubectl_ok(
        &[
            "delete",
            "backuprepo",
            "leader-1",
            "leader-2",
            "--timeout=60s",
        ],
        None,
    );
    c3.assert_no_forbidden();
}
