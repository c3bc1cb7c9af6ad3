#!/usr/bin/env python3
"""Throughput and memory benchmark: backuprepo's datasafed face vs rclone (and baselines).

Run (from the repository root, after `cargo build --release`):

    python3 scripts/bench.py --size 2GiB
    python3 scripts/bench.py --size 256MiB --data sql --repeat 3 --json bench.json
    python3 scripts/bench.py --servers-dir "$(cat /tmp/servers.dir)" --only s3

One input file (random bytes or SQL-like text, `--size` long) is created in a temp
dir and every tool moves that same file against the same server. Each measurement is
one child process; we record its wall time and its peak RSS (`ru_maxrss`, through GNU
/usr/bin/time when present so the child's RSS is not floored at ours; see run()).
Uploads read the file as stdin (a real file, not a pipe); downloads write to
/dev/null. With `--repeat N` every step runs N times (interleaved) and the medians are
reported. Measured:

  S3 (SeaweedFS from scripts/test-servers.sh, started here unless --servers-dir):
    push  curl      one SigV4-signed PUT of the whole file: the server's ceiling
    push  rclone    rclone rcat (flags-only config, no config file, no env auth)
    push  ours      backuprepo datasafed -c CONF push - bench/ours-push
    pull  rclone    rclone cat  > /dev/null
    pull  ours      backuprepo datasafed -c CONF pull bench/ours-push - > /dev/null
  local directory (DATASAFED_LOCAL_BACKEND_PATH for ours):
    push  cat       cat FILE > DIR/cat-copy: the page-cache ceiling
    push  rclone    rclone rcat /abs/DIR/rclone-local
    push  ours      backuprepo datasafed push - local-push
    pull  rclone / ours, to /dev/null

After every push the stored size is checked against the input size (S3: `rclone size
--json`, local: os.stat), so a fast-but-wrong run fails. os.sync() runs (untimed)
before each step so one tool's dirty pages are not flushed on another tool's clock.
MB/s = bytes / wall seconds / 1e6. The table goes to stdout, progress to stderr.
"""
import argparse, json, os, random, shlex, shutil, signal, statistics, subprocess, sys
import tempfile, time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SERVERS_SH = ROOT / "scripts" / "test-servers.sh"
BLOCK = 8 << 20


def parse_size(s):
    units = {"": 1, "K": 1e3, "M": 1e6, "G": 1e9, "T": 1e12,
             "KI": 1 << 10, "MI": 1 << 20, "GI": 1 << 30, "TI": 1 << 40}
    t = s.strip().upper().removesuffix("B")
    num = t.rstrip("KMGTI")
    try:
        return int(float(num) * units[t[len(num):]])
    except (KeyError, ValueError):
        raise argparse.ArgumentTypeError(f"bad size {s!r} (try 2GiB, 256MiB, 100MB)")


def default_bin():
    for p in (Path("/var/tmp/backuprepo-target/release/backuprepo"),
              ROOT / "target/release/backuprepo", ROOT / "target/debug/backuprepo"):
        if p.exists():
            return str(p)
    return str(ROOT / "target/release/backuprepo")


def find_rclone():
    """The real rclone binary: a pyenv shim would add a bash + pyenv exec per run."""
    path = shutil.which("rclone") or sys.exit("rclone not found (scripts/test-servers.sh install)")
    with open(path, "rb") as f:
        if f.read(2) == b"#!" and shutil.which("pyenv"):
            real = subprocess.run(["pyenv", "which", "rclone"], capture_output=True, text=True)
            if real.returncode == 0 and real.stdout.strip():
                return real.stdout.strip()
    return path


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def make_input(path, size, kind):
    log(f"writing {size} bytes of {kind} data to {path} ...")
    if kind == "sql":
        rnd = random.Random(42)
        lines, n = [], 0
        while n < BLOCK:
            i = len(lines)
            line = (f"INSERT INTO orders (id, customer_id, amount, status, created_at) VALUES "
                    f"({i}, {rnd.randrange(10**6)}, {rnd.randrange(10**7) / 100:.2f}, "
                    f"'{rnd.choice(['new', 'paid', 'shipped', 'refunded'])}', "
                    f"'2024-{rnd.randrange(1, 13):02d}-{rnd.randrange(1, 29):02d} "
                    f"{rnd.randrange(24):02d}:{rnd.randrange(60):02d}:00');\n").encode()
            lines.append(line)
            n += len(line)
        base = b"".join(lines)
    with open(path, "wb") as f:
        left, i = size, 0
        while left > 0:
            if kind == "random":
                block = os.urandom(min(BLOCK, left))
            else:  # same text, digits permuted per block: cheap, and blocks differ
                digits = list(b"0123456789")
                random.Random(i).shuffle(digits)
                block = base.translate(bytes.maketrans(b"0123456789", bytes(digits)))[:left]
            f.write(block)
            left -= len(block)
            i += 1


def gnu_time():
    """GNU time, if present (see run())."""
    try:
        out = subprocess.run(["/usr/bin/time", "--version"], capture_output=True, text=True)
        return "/usr/bin/time" if "GNU" in out.stdout + out.stderr else None
    except OSError:
        return None


def run(argv, env=None, stdin=None, stdout=None, scratch=None):
    """Runs argv; returns (wall seconds, peak RSS KiB, CPU seconds). Raises on a non-zero exit.

    Peak RSS comes from os.wait4's ru_maxrss. But a child exec'd straight from this
    process starts with ru_maxrss = *our* peak RSS (the kernel carries the pre-exec
    mm's high-water mark over exec, and subprocess uses vfork), which would hide any
    child smaller than this Python process. So when GNU time is available the child is
    forked by it (a ~1 MiB process) and its %M (ru_maxrss from its own wait4) is used.
    """
    os.sync()
    scratch = Path(scratch)
    errpath, rsspath = scratch / "stderr.txt", scratch / "rss.txt"
    prefix = [TIME, "-f", "%M", "-o", str(rsspath), "--"] if TIME else []
    with open(errpath, "wb") as err:
        t0 = time.perf_counter()
        p = subprocess.Popen(prefix + argv, env=env, stdin=stdin or subprocess.DEVNULL,
                             stdout=stdout or subprocess.DEVNULL, stderr=err,
                             start_new_session=True)
        try:
            _, status, ru = os.wait4(p.pid, 0)
        except BaseException:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()
            raise
        wall = time.perf_counter() - t0
    p.returncode = os.waitstatus_to_exitcode(status)
    if p.returncode != 0:
        tail = errpath.read_text(errors="replace")[-3000:]
        raise RuntimeError(f"exit {p.returncode}: {shlex.join(argv)}\n{tail}")
    rss = int(rsspath.read_text().split()[-1]) if TIME else ru.ru_maxrss
    # os.wait4's user + system time covers the child and what it waited for (GNU time's own
    # share is a few milliseconds).
    return wall, rss, ru.ru_utime + ru.ru_stime


TIME = gnu_time()


class Bench:
    def __init__(self, args, tmp, s3):
        self.a, self.tmp, self.s3 = args, tmp, s3
        self.input = tmp / "input"
        self.size = args.size
        self.local = tmp / "local"
        self.local.mkdir()
        self.results = {}  # (what, tool) -> {"seconds": [...], "rss_kib": [...]}
        self.commands = {}
        base = {k: v for k, v in os.environ.items()
                if not k.startswith(("RCLONE_", "AWS_", "DATASAFED_"))}
        self.rclone_env = dict(base)  # no RCLONE_CONFIG*, no AWS_CA_BUNDLE / AWS_* creds
        self.ours_env = dict(os.environ)
        self.ours_env.pop("DATASAFED_LOCAL_BACKEND_PATH", None)
        self.local_env = dict(self.ours_env, DATASAFED_LOCAL_BACKEND_PATH=str(self.local))
        self.rclone = [args.rclone, "--config", "/dev/null"]
        if s3:
            # Our tool config as the s3-compatible provider renders it, without chunk_size
            # (our default) and with KubeBlocks' `chunk_size = 50Mi` (what deployed repos use).
            self.confs = {}
            for chunk in args.chunks:
                conf = tmp / f"s3-{chunk or 'default'}.conf"
                conf.write_text(
                    "[storage]\ntype = s3\nprovider = Minio\nenv_auth = false\n"
                    f"access_key_id = {s3['BR_S3_ACCESS_KEY']}\n"
                    f"secret_access_key = {s3['BR_S3_SECRET_KEY']}\n"
                    f"region =\nendpoint = {s3['BR_S3_ENDPOINT']}\n"
                    f"root = {s3['BR_S3_BUCKET']}\nforce_path_style = true\n"
                    + (f"chunk_size = {chunk}\n" if chunk else ""))
                self.confs[chunk] = conf
            self.s3flags = ["--s3-provider", "Minio", "--s3-env-auth=false",
                            "--s3-endpoint", s3["BR_S3_ENDPOINT"], "--s3-region", "us-east-1",
                            "--s3-access-key-id", s3["BR_S3_ACCESS_KEY"],
                            "--s3-secret-access-key", s3["BR_S3_SECRET_KEY"],
                            "--s3-force-path-style=true"]

    def s3path(self, key):
        return f":s3:{self.s3['BR_S3_BUCKET']}/{key}"

    def measure(self, what, tool, argv, env, stdin=False, verify=None, out_path=None):
        """stdin: feed the input file as stdin. stdout goes to out_path or /dev/null."""
        r = self.results.setdefault((what, tool), {"seconds": [], "rss_kib": [], "cpu_s": []})
        secret = (self.s3 or {}).get("BR_S3_SECRET_KEY")
        shown = " ".join(shlex.quote(a.replace(secret, "SECRET") if secret else a) for a in argv)
        shown += (f" < {self.input}" if stdin else "") + f" > {out_path or os.devnull}"
        self.commands[f"{what} / {tool}"] = shown
        log(f"{what}: {'pushing' if 'push' in what else 'pulling'} with {tool} ...  $ {shown}")
        with open(self.input, "rb") as f, open(out_path or os.devnull, "wb") as out:
            wall, rss, cpu = run(argv, env, stdin=f if stdin else None, stdout=out, scratch=self.tmp)
        if verify:
            got = verify()
            if got != self.size:
                raise RuntimeError(f"{what}/{tool}: stored {got} bytes, expected {self.size}")
        r["seconds"].append(wall)
        r["rss_kib"].append(rss)
        r["cpu_s"].append(cpu)
        log(f"    {wall:.2f} s, {self.size / wall / 1e6:.1f} MB/s, peak RSS {rss / 1024:.1f} MiB, "
            f"{cpu:.2f} CPU s")

    def s3_size(self, key):
        out = subprocess.run(self.rclone + ["size", "--json"] + self.s3flags + [self.s3path(key)],
                             env=self.rclone_env, capture_output=True, text=True, check=True)
        return json.loads(out.stdout)["bytes"]

    def delete_s3_objects(self):
        """Leaves a shared server as we found it (best effort). SeaweedFS keeps an empty
        "bench/" directory after the objects are gone; a DELETE of that key removes it."""
        subprocess.run(self.rclone + ["purge"] + self.s3flags + [self.s3path("bench")],
                       env=self.rclone_env, capture_output=True)
        subprocess.run(self.curl() + ["-X", "DELETE", self.url("bench/")], capture_output=True)

    def curl(self):
        return ["curl", "-sS", "-f", "-o", "/dev/null", "--aws-sigv4", "aws:amz:us-east-1:s3",
                "--user", f"{self.s3['BR_S3_ACCESS_KEY']}:{self.s3['BR_S3_SECRET_KEY']}"]

    def url(self, key):
        return f"{self.s3['BR_S3_ENDPOINT'].rstrip('/')}/{self.s3['BR_S3_BUCKET']}/{key}"

    def s3_round(self):
        b = self.a.bin
        self.measure("S3 push", "curl PUT (ceiling)",
                     self.curl() + ["-T", str(self.input), self.url("bench/curl-put")],
                     self.rclone_env, verify=lambda: self.s3_size("bench/curl-put"))
        for chunk, conf in self.confs.items():
            tag = f" [chunk {chunk}]" if chunk else " [defaults]"
            rflags = self.s3flags + (["--s3-chunk-size", chunk] if chunk else [])
            conf = ["-c", str(conf)]
            self.measure("S3 push" + tag, "rclone",
                         self.rclone + ["rcat"] + rflags + [self.s3path("bench/rclone-push")],
                         self.rclone_env, stdin=True,
                         verify=lambda: self.s3_size("bench/rclone-push"))
            self.measure("S3 push" + tag, "ours",
                         [b, "datasafed", *conf, "push", "-", "bench/ours-push"],
                         self.ours_env, stdin=True, verify=lambda: self.s3_size("bench/ours-push"))
            self.measure("S3 pull" + tag, "rclone",
                         self.rclone + ["cat"] + rflags + [self.s3path("bench/rclone-push")],
                         self.rclone_env)
            self.measure("S3 pull" + tag, "ours",
                         [b, "datasafed", *conf, "pull", "bench/ours-push", "-"], self.ours_env)
            if self.a.zstd:
                self.compressed_round(tag, conf, rflags)

    def compressed_round(self, tag, conf, rflags):
        """`push -z zstd` against what a user would otherwise run: zstd -T0 -1 | rclone rcat."""
        b = self.a.bin
        self.measure("S3 push zstd" + tag, "zstd -T0 -1 | rclone rcat",
                     ["sh", "-c", 'zstd -q -T0 -1 -c | "$0" "$@"', *self.rclone, "rcat", *rflags,
                      self.s3path("bench/rclone-zstd")], self.rclone_env, stdin=True)
        self.measure("S3 push zstd" + tag, "ours -z zstd",
                     [b, "datasafed", *conf, "push", "-z", "zstd", "-", "bench/ours-zstd"],
                     self.ours_env, stdin=True)

    def local_round(self):
        b, d = self.a.bin, self.local
        size = lambda name: (d / name).stat().st_size if (d / name).exists() else None
        self.measure("local push", "cat (ceiling)", ["cat", str(self.input)], self.rclone_env,
                     verify=lambda: size("cat-copy"), out_path=d / "cat-copy")
        self.measure("local push", "rclone", self.rclone + ["rcat", str(d / "rclone-local")],
                     self.rclone_env, stdin=True, verify=lambda: size("rclone-local"))
        self.measure("local push", "ours", [b, "datasafed", "push", "-", "local-push"],
                     self.local_env, stdin=True, verify=lambda: size("local-push"))
        self.measure("local pull", "rclone", self.rclone + ["cat", str(d / "rclone-local")],
                     self.rclone_env)
        self.measure("local pull", "ours", [b, "datasafed", "pull", "local-push", "-"],
                     self.local_env)

    def report(self):
        rows, med = [], {}
        gib = self.size / (1 << 30)
        for (what, tool), r in self.results.items():
            secs = statistics.median(r["seconds"])
            rss = statistics.median(r["rss_kib"]) / 1024
            cpu = statistics.median(r["cpu_s"]) / gib
            med[(what, tool)] = (self.size / secs / 1e6, rss, cpu)
            rows.append(f"| {what} | {tool} | {med[(what, tool)][0]:.1f} | {rss:.1f} | {cpu:.2f} |")
        print(f"\n{self.size} bytes of {self.a.data} data, median of {self.a.repeat} run(s), "
              f"bin {self.a.bin}\n")
        print("| what | tool | MB/s | peak RSS MiB | CPU s/GiB |\n|---|---|---:|---:|---:|")
        print("\n".join(rows))
        pairs = []
        for tag in sorted({w.split(" [", 1)[1] for w, _ in med if " [" in w}):
            tag = f" [{tag}"
            pairs += [
                (f"ours/rclone push S3{tag}", (f"S3 push{tag}", "ours"), (f"S3 push{tag}", "rclone"), 0),
                (f"ours RSS / rclone RSS (S3 push){tag}", (f"S3 push{tag}", "ours"), (f"S3 push{tag}", "rclone"), 1),
                (f"ours/rclone pull S3{tag}", (f"S3 pull{tag}", "ours"), (f"S3 pull{tag}", "rclone"), 0),
                (f"ours RSS / rclone RSS (S3 pull){tag}", (f"S3 pull{tag}", "ours"), (f"S3 pull{tag}", "rclone"), 1),
                (f"ours/pipeline zstd push{tag}", (f"S3 push zstd{tag}", "ours -z zstd"),
                 (f"S3 push zstd{tag}", "zstd -T0 -1 | rclone rcat"), 0),
                (f"ours/pipeline zstd CPU{tag}", (f"S3 push zstd{tag}", "ours -z zstd"),
                 (f"S3 push zstd{tag}", "zstd -T0 -1 | rclone rcat"), 2)]
        pairs += [
            ("ours/cat local push", ("local push", "ours"), ("local push", "cat (ceiling)"), 0),
            ("ours/rclone local push", ("local push", "ours"), ("local push", "rclone"), 0),
            ("ours/rclone local pull", ("local pull", "ours"), ("local pull", "rclone"), 0)]
        ratios = {}
        for label, (w1, t1), (w2, t2), col in pairs:
            if (w1, t1) in med and (w2, t2) in med and med[(w2, t2)][col]:
                ratios[label] = med[(w1, t1)][col] / med[(w2, t2)][col]
        print()
        for label, v in ratios.items():
            print(f"{label}: {v:.2f}")
        if self.a.json:
            Path(self.a.json).write_text(json.dumps({
                "size": self.size, "data": self.a.data, "repeat": self.a.repeat,
                "bin": self.a.bin, "rclone": self.a.rclone, "ratios": ratios,
                "rss_via": "GNU time %M" if TIME else "os.wait4 ru_maxrss",
                "commands": self.commands,
                "results": [{"what": w, "tool": t, **r, "mb_per_s": med[(w, t)][0],
                             "peak_rss_mib": med[(w, t)][1], "cpu_s_per_gib": med[(w, t)][2]}
                            for (w, t), r in self.results.items()]}, indent=2) + "\n")


def read_env(path):
    env = {}
    for line in Path(path).read_text().splitlines():
        parts = shlex.split(line)
        if parts[:1] == ["export"] and len(parts) == 2 and "=" in parts[1]:
            k, v = parts[1].split("=", 1)
            env[k] = v
    return env


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bin", default=default_bin(), help="backuprepo binary (default: %(default)s)")
    ap.add_argument("--rclone", default=None, help="rclone binary (default: from PATH)")
    ap.add_argument("--size", type=parse_size, default=parse_size("2GiB"), help="e.g. 2GiB, 256MiB")
    ap.add_argument("--data", choices=["random", "sql"], default="random")
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--servers-dir", help="reuse servers started by test-servers.sh start DIR")
    ap.add_argument("--keep", action="store_true", help="keep the temp dir")
    ap.add_argument("--only", choices=["s3", "local"])
    ap.add_argument("--json", help="also write the raw numbers to this file")
    ap.add_argument("--chunk", dest="chunks", action="append",
                    help="S3 chunk_size configs to run (repeatable; '' = none). "
                         "Default: none (our default) and 50Mi (what KubeBlocks' providers render)")
    ap.add_argument("--zstd", action="store_true",
                    help="also compare push -z zstd with zstd -T0 -1 | rclone rcat (needs zstd)")
    a = ap.parse_args()
    a.chunks = a.chunks if a.chunks is not None else ["", "50Mi"]
    a.rclone = a.rclone or find_rclone()
    if not TIME:
        log("warning: GNU /usr/bin/time not found; peak RSS has a floor of this script's own")
    if not os.access(a.bin, os.X_OK):
        sys.exit(f"backuprepo binary not found: {a.bin} (build it or pass --bin)")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so the finally blocks run

    tmp = Path(tempfile.mkdtemp(prefix="backuprepo-bench."))
    servers_dir = bench = None
    try:
        s3 = None
        if a.only != "local":
            if a.servers_dir:
                s3 = read_env(Path(a.servers_dir) / "env")
            else:
                servers_dir = tmp / "servers"
                servers_dir.mkdir()
                log(f"starting test servers in {servers_dir} ...")
                subprocess.run(["bash", str(SERVERS_SH), "start", str(servers_dir)],
                               stdout=sys.stderr, check=True)
                s3 = read_env(servers_dir / "env")
        bench = Bench(a, tmp, s3)
        make_input(bench.input, a.size, a.data)
        for i in range(a.repeat):
            if a.repeat > 1:
                log(f"--- round {i + 1}/{a.repeat}")
            if a.only != "local":
                bench.s3_round()
            if a.only != "s3":
                bench.local_round()
        bench.report()
    except KeyboardInterrupt:
        log("interrupted")
        return 130
    except (RuntimeError, OSError, subprocess.CalledProcessError) as e:
        log(f"error: {e}\n{getattr(e, 'stderr', None) or ''}".rstrip())
        return 1
    finally:
        if a.servers_dir and bench and bench.s3:
            bench.delete_s3_objects()
        if servers_dir:
            log("stopping test servers ...")
            subprocess.run(["bash", str(SERVERS_SH), "stop", str(servers_dir)], stdout=sys.stderr)
        if a.keep:
            log(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
