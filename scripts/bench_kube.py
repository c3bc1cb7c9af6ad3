#!/usr/bin/env python3
"""Scale benchmark of the controller on the real control plane (scripts/kube.sh).

Run from the repository root (it starts SeaweedFS and the cluster in temporary directories,
and stops them):

    bash scripts/bench-kube.sh            # 500 repositories
    bash scripts/bench-kube.sh 100        # fewer

What it does: installs (`backuprepo install --print | kubectl apply --server-side`), starts
`backuprepo controller` as the install runs it (the Deployment's env, a token of its
ServiceAccount), creates N Tool BackupRepos on one SeaweedFS bucket (path prefix each), and
prints:
  - the time until all N are Ready,
  - the controller's peak RSS (VmHWM),
  - its API requests per repository per hour at steady state, from the API server's audit log
    (every request it received from the controller's user agent in a window, watches included),
  - the same after the controller restarts (SIGTERM, a new process): the time until it has
    re-checked every repository (status.lastCheckTime after the restart), the requests of its
    first minute, its steady rate and its peak RSS.
"""

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time

NS = "backuprepo-system"


def sh(args, stdin=None, check=True):
    p = subprocess.run(args, input=stdin, capture_output=True, text=True)
    if check and p.returncode != 0:
        sys.exit(f"{' '.join(args[:4])}...: {p.stderr.strip()}")
    return p.stdout


def kubectl(*args, stdin=None, check=True):
    return sh([os.path.join(os.environ["BR_KUBE_BIN"], "kubectl"), *args], stdin, check)


def deployment_env(bin_, pod):
    out = sh([bin_, "install", "--print"])
    import re

    # The Deployment's env: literal values, and the two downward-API fields it uses.
    env = {}
    doc = next(d for d in out.split("\n---\n") if "\nkind: Deployment\n" in "\n" + d)
    for m in re.finditer(r"- name: (\w+)\n\s+(value: (.*)|valueFrom:\n\s+fieldRef:\n\s+fieldPath: (\S+))", doc):
        name, value, field = m.group(1), m.group(3), m.group(4)
        if value is not None:
            env[name] = value.strip('"')
        elif field == "metadata.namespace":
            env[name] = NS
        elif field == "metadata.name":
            env[name] = pod
    return env


class Controller:
    def __init__(self, bin_, identity, workdir, extra_env=None):
        token = kubectl("create", "token", "backuprepo-controller", "-n", NS, "--duration=7200s").strip()
        kc = os.path.join(workdir, f"{identity}.kubeconfig")
        with open(os.path.join(os.environ["BR_KUBE_DIR"], "kubeconfig")) as f:
            admin = f.read()
        lines = [f"    token: {token}" if l.strip().startswith("token:") else l for l in admin.splitlines()]
        with open(kc, "w") as f:
            f.write("\n".join(lines) + "\n")
        env = {"PATH": os.environ["PATH"], "HOME": workdir, "KUBECONFIG": kc,
               "BACKUPREPO_METRICS_ADDR": "127.0.0.1:0", "BACKUPREPO_HEALTH_ADDR": "127.0.0.1:0", **deployment_env(bin_, identity),
               **(extra_env or {})}
        self.identity = identity
        self.log = open(os.path.join(workdir, f"{identity}.log"), "w")
        self.proc = subprocess.Popen([bin_, "controller", "--log-level", "warn"], env=env,
                                     stdout=self.log, stderr=self.log)

    def peak_rss_mib(self):
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
        return 0.0

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def audit_requests(identity, since, until, leases=True):
    """Requests the API server received from `identity` in [since, until) (epoch seconds);
    without those on the Lease when `leases` is false."""
    ids = set()
    path = os.environ["BR_KUBE_AUDIT"]
    with open(path) as f:
        for line in f:
            if f"({identity})" not in line:
                continue
            e = json.loads(line)
            t = e.get("requestReceivedTimestamp", "")
            ts = time.mktime(time.strptime(t[:19], "%Y-%m-%dT%H:%M:%S")) - time.timezone + float("0." + t[20:26])
            if since <= ts < until and (leases or "/leases" not in e.get("requestURI", "")):
                ids.add(e["auditID"])
    return len(ids)


def repos():
    out = kubectl("get", "backuprepo", "-o", "json")
    return json.loads(out)["items"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("n", type=int, nargs="?", default=500)
    ap.add_argument("--bin", default=None)
    ap.add_argument("--steady", type=int, default=120, help="seconds of the steady-state window")
    ap.add_argument("--recheck", type=int, default=None,
                    help="BACKUPREPO_RECHECK_INTERVAL for the controller (default: the install's, 30 min)")
    a = ap.parse_args()
    bin_ = a.bin or os.path.join(os.environ.get("CARGO_TARGET_DIR", "target"), "release", "backuprepo")
    work = tempfile.mkdtemp(prefix="bench-kube-")

    sh(["bash", "-c", f"{bin_} crds | {os.environ['BR_KUBE_BIN']}/kubectl apply --server-side -f - >/dev/null"])
    kubectl("wait", "--for=condition=Established", "--timeout=60s",
            "crd/backuprepos.dataprotection.kubeblocks.io", "crd/storageproviders.dataprotection.kubeblocks.io")
    sh(["bash", "-c", f"{bin_} install --print | {os.environ['BR_KUBE_BIN']}/kubectl apply --server-side -f - >/dev/null"])
    kubectl("create", "namespace", "kb-system", check=False)
    kubectl("apply", "-f", "-", stdin=(
        "apiVersion: v1\nkind: Secret\nmetadata: {name: bench-cred, namespace: kb-system}\n"
        f"stringData: {{accessKeyId: \"{os.environ['BR_S3_ACCESS_KEY']}\", secretAccessKey: \"{os.environ['BR_S3_SECRET_KEY']}\"}}\n"))

    extra = {"BACKUPREPO_RECHECK_INTERVAL": str(a.recheck)} if a.recheck else {}
    ctl = Controller(bin_, "bench-0", work, extra)
    docs = []
    for i in range(a.n):
        docs.append(
            "apiVersion: dataprotection.kubeblocks.io/v1alpha1\nkind: BackupRepo\n"
            f"metadata: {{name: bench-{i:04d}}}\n"
            "spec:\n  storageProviderRef: minio\n  accessMethod: Tool\n  pvReclaimPolicy: Retain\n"
            f"  pathPrefix: bench/{i:04d}\n"
            f"  config: {{bucket: {os.environ['BR_S3_BUCKET']}, endpoint: \"{os.environ['BR_S3_ENDPOINT']}\", forcePathStyle: \"true\"}}\n"
            "  credential: {name: bench-cred, namespace: kb-system}\n")
    t0 = time.time()
    for k in range(0, a.n, 100):
        kubectl("apply", "-f", "-", stdin="---\n".join(docs[k:k + 100]))
    applied = time.time() - t0
    while True:
        items = repos()
        ready = sum(1 for r in items if r.get("status", {}).get("phase") == "Ready")
        failed = [r["metadata"]["name"] for r in items if r.get("status", {}).get("phase") == "Failed"]
        if failed:
            sys.exit(f"failed: {failed[:5]}")
        if ready >= a.n:
            break
        if time.time() - t0 > 1800:
            sys.exit(f"only {ready} of {a.n} Ready after 30 min")
        time.sleep(1)
    t_ready = time.time() - t0

    time.sleep(20)
    w0 = time.time()
    time.sleep(a.steady)
    w1 = time.time()
    steady, steady_secs = audit_requests("bench-0", w0, w1), w1 - w0
    steady_nolease = audit_requests("bench-0", w0, w1, leases=False)
    rss = ctl.peak_rss_mib()

    # Restart: a new process (the Lease is released by deleting it, as a rolling update's new
    # pod would wait out the old one's lease otherwise).
    ctl.stop()
    kubectl("delete", "lease", "backuprepo-controller", "-n", NS, "--ignore-not-found")
    r0 = time.time()
    ctl2 = Controller(bin_, "bench-1", work, extra)
    rechecked_at = None
    while time.time() - r0 < 1800:
        items = repos()
        stamps = [r.get("status", {}).get("lastCheckTime", "") for r in items]
        fresh = sum(1 for s in stamps if s and time.mktime(time.strptime(s[:19], "%Y-%m-%dT%H:%M:%S")) - time.timezone >= int(r0))
        if fresh >= a.n:
            rechecked_at = time.time() - r0
            break
        if time.time() - r0 > 90 and fresh == 0:
            break  # the restart does not re-check repositories checked recently
        time.sleep(1)
    time.sleep(max(0, 60 - (time.time() - r0)))
    first_minute = audit_requests("bench-1", r0, r0 + 60)
    w0 = time.time()
    time.sleep(a.steady)
    w1 = time.time()
    steady2, steady2_secs = audit_requests("bench-1", w0, w1), w1 - w0
    steady2_nolease = audit_requests("bench-1", w0, w1, leases=False)
    rss2 = ctl2.peak_rss_mib()
    ctl2.stop()

    per_hour = lambda count, secs: count / a.n / secs * 3600
    print(f"repositories                       {a.n} (Tool, minio provider, one SeaweedFS bucket, a path prefix each)")
    print(f"apply (kubectl, 100 per call)      {applied:.1f} s")
    print(f"all Ready after                    {t_ready:.1f} s ({a.n / t_ready:.1f} repositories/s)")
    print(f"controller peak RSS                {rss:.1f} MiB")
    print(f"steady requests/repository/hour    {per_hour(steady, steady_secs):.2f} ({steady} in {steady_secs:.0f} s; {steady_nolease} not on the Lease)")
    if a.recheck:
        per_check = steady_nolease / a.n / (steady_secs / a.recheck)
        print(f"requests per periodic re-check     {per_check:.2f} per repository (re-check every {a.recheck} s here;"
              f" {per_check * 2:.2f}/repository/hour at the default 30 min)")
    print("after a controller restart:")
    if rechecked_at is not None:
        print(f"  every repository re-checked in   {rechecked_at:.1f} s")
    else:
        print("  repositories re-checked          none within 90 s (a recent check is kept)")
    print(f"  requests in its first minute     {first_minute} ({first_minute / a.n:.2f} per repository)")
    print(f"  steady requests/repository/hour  {per_hour(steady2, steady2_secs):.2f} ({steady2} in {steady2_secs:.0f} s; {steady2_nolease} not on the Lease)")
    print(f"  peak RSS                         {rss2:.1f} MiB")


if __name__ == "__main__":
    main()
