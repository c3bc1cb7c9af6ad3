#!/usr/bin/env python3
"""Replication benchmark: `backuprepo copy` against `rclone sync`, same data, same server.

Run (from the repository root, after `cargo build --release`):

    python3 scripts/bench_copy.py                       # starts its own test servers
    python3 scripts/bench_copy.py --servers-dir DIR     # servers from test-servers.sh start DIR
    python3 scripts/bench_copy.py --many 200 --size 256MiB --noop 2000   # a quick run

Two fresh buckets on the SeaweedFS S3 gateway: `copybench-src-N` holds the data, and each
tool copies it into its own prefix of `copybench-dst-N` (ours: repository `dst`, path prefix
`ours`, rendered by the `minio` provider with `chunk_size = 50Mi` as KubeBlocks' providers
render it; rclone: two remotes named differently, defined by RCLONE_CONFIG_* variables, so it
streams the bytes as we do instead of a server-side copy). Measured, each as one child
process with its wall time and peak RSS (GNU time's %M):

  many   SIZE in MANY objects, first copy
  one    SIZE in one object, first copy
  noop   NOOP small objects copied once (untimed), then a second run with nothing changed

After each copy the destination's object count and bytes are checked against the source
(`rclone size --json`), so a fast-but-wrong run fails. Ratio = rclone's time / ours (> 1:
we are faster). With `--repeat N` every tool runs N times, interleaved, and the table gives the
median time and the largest peak RSS. Defaults for both tools (ours: 8 transfers; rclone: 4 transfers, 8
checkers), and rclone again with `--transfers 8`.
"""
import argparse, json, os, shutil, signal, statistics, subprocess, sys, tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench import SERVERS_SH, TIME, default_bin, find_rclone, log, parse_size, read_env, run  # noqa: E402


class CopyBench:
    def __init__(self, a, tmp, s3):
        self.a, self.tmp, self.s3 = a, tmp, s3
        tag = os.getpid()
        self.src_bucket, self.dst_bucket = f"copybench-src-{tag}", f"copybench-dst-{tag}"
        base = {k: v for k, v in os.environ.items() if not k.startswith(("RCLONE_", "AWS_"))}
        self.rclone_env = dict(base)
        for name in ("SRC", "DST"):
            self.rclone_env.update({
                f"RCLONE_CONFIG_{name}_TYPE": "s3",
                f"RCLONE_CONFIG_{name}_PROVIDER": "Other",
                f"RCLONE_CONFIG_{name}_ENDPOINT": s3["BR_S3_ENDPOINT"],
                f"RCLONE_CONFIG_{name}_ACCESS_KEY_ID": s3["BR_S3_ACCESS_KEY"],
                f"RCLONE_CONFIG_{name}_SECRET_ACCESS_KEY": s3["BR_S3_SECRET_KEY"],
                f"RCLONE_CONFIG_{name}_FORCE_PATH_STYLE": "true",
            })
        self.rclone = [a.rclone, "--config", "/dev/null"]
        self.ours_env = dict(os.environ, BACKUPREPO_HOME=str(tmp / "home"))
        self.rows = []
        self.commands = []

    def rc(self, *args, check=True):
        return subprocess.run(self.rclone + list(args), env=self.rclone_env, capture_output=True,
                              text=True, check=check)

    def ours(self, *args):
        subprocess.run([self.a.bin, *args], env=self.ours_env, check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def setup(self):
        self.rc("mkdir", f"src:{self.src_bucket}")
        self.rc("mkdir", f"dst:{self.dst_bucket}")
        for name, bucket, prefix in (("src", self.src_bucket, ""), ("dst", self.dst_bucket, "ours")):
            args = ["create", name, "--provider", "minio", "--bucket", bucket,
                    "--endpoint", self.s3["BR_S3_ENDPOINT"], "--access-key-id",
                    self.s3["BR_S3_ACCESS_KEY"], "--secret-access-key", self.s3["BR_S3_SECRET_KEY"]]
            self.ours(*(args + (["--path-prefix", prefix] if prefix else [])))

    def fill(self, name, count, size):
        """count objects of size bytes (random) under src:<bucket>/<name>, uploaded by rclone."""
        d = self.tmp / "fill" / name
        d.mkdir(parents=True)
        block = os.urandom(min(size, 8 << 20))
        for i in range(count):
            with open(d / f"obj-{i:05d}", "wb") as f:
                left = size
                f.write(i.to_bytes(8, "big")[: min(8, left)])
                left -= min(8, left)
                while left:
                    n = min(left, len(block))
                    f.write(block[:n])
                    left -= n
        log(f"uploading {count} x {size} bytes to src:{self.src_bucket}/{name} ...")
        self.rc("copy", "--transfers", "16", str(d), f"src:{self.src_bucket}/{name}")
        shutil.rmtree(d)

    def size(self, path):
        out = self.rc("size", "--json", path)
        j = json.loads(out.stdout)
        return j["count"], j["bytes"]

    def measure(self, what, tool, argv, env, expect, dst):
        secret = self.s3["BR_S3_SECRET_KEY"]
        shown = f"{what} / {tool}: " + " ".join(argv).replace(secret, "SECRET")
        if shown not in self.commands:
            self.commands.append(shown)
        log(f"{what}: {tool} ...")
        wall, rss, cpu = run(argv, env, scratch=self.tmp)
        got = self.size(dst)
        if got != expect:
            raise RuntimeError(f"{what}/{tool}: the destination holds {got}, expected {expect}")
        log(f"    {wall:.2f} s, peak RSS {rss / 1024:.1f} MiB, {cpu:.2f} CPU s")
        return wall, rss

    def case(self, what, name, noop=False):
        expect = self.size(f"src:{self.src_bucket}/{name}")
        ours = [self.a.bin, "copy", "src", "dst", f"{name}/"]
        ours_dst = f"dst:{self.dst_bucket}/ours/{name}"
        rclone = self.rclone + ["sync", f"src:{self.src_bucket}/{name}"]
        tools = [("ours", ours, self.ours_env, ours_dst)]
        for label, extra in (("rclone", []), ("rclone --transfers 8", ["--transfers", "8"])):
            dst = f"dst:{self.dst_bucket}/{label.replace(' ', '').replace('-', '')}/{name}"
            tools.append((label, rclone + [dst] + extra, self.rclone_env, dst))
        if noop:
            for _, argv, env, _ in tools:  # the first copy, untimed
                subprocess.run(argv, env=env, check=True, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
        seen = {tool: ([], []) for tool, _, _, _ in tools}
        for i in range(self.a.repeat):  # interleaved: each round runs every tool once
            for tool, argv, env, dst in tools:
                if not noop:
                    self.rc("purge", dst, check=False)
                wall, rss = self.measure(what, tool, argv, env, expect, dst)
                seen[tool][0].append(wall)
                seen[tool][1].append(rss)
        for tool, (walls, rsss) in seen.items():
            self.rows.append((what, tool, statistics.median(walls), max(rsss), expect[1]))

    def report(self):
        print(f"\nbackuprepo copy vs rclone sync, SeaweedFS {self.s3['BR_S3_ENDPOINT']} "
              f"(bucket to bucket), ours with chunk_size = 50Mi, median of {self.a.repeat}\n")
        print(f"{'case':<34} {'tool':<22} {'seconds':>8} {'MB/s':>8} {'peak RSS MiB':>13} {'ratio':>6}")
        ours = {w: s for (w, t, s, _, _) in self.rows if t == "ours"}
        for what, tool, secs, rss, nbytes in self.rows:
            mbs = "-" if what.startswith("noop") else f"{nbytes / secs / 1e6:.1f}"
            ratio = f"{secs / ours[what]:.2f}" if tool != "ours" else ""
            print(f"{what:<34} {tool:<22} {secs:8.2f} {mbs:>8} {rss / 1024:13.1f} {ratio:>6}")
        print("\nratio = rclone's seconds / ours (> 1: ours is faster)\ncommands:")
        for c in self.commands:
            print("  " + c)

    def cleanup(self):
        for b in (f"src:{self.src_bucket}", f"dst:{self.dst_bucket}"):
            self.rc("purge", b, check=False)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bin", default=default_bin())
    ap.add_argument("--rclone", default=None)
    ap.add_argument("--size", type=parse_size, default=parse_size("1GiB"))
    ap.add_argument("--many", type=int, default=1000, help="objects in the 'many' case")
    ap.add_argument("--noop", type=int, default=10000, help="objects in the no-op case")
    ap.add_argument("--repeat", type=int, default=1,
                    help="rounds (interleaved); the table gives median seconds and the largest peak RSS")
    ap.add_argument("--servers-dir")
    a = ap.parse_args()
    a.rclone = a.rclone or find_rclone()
    if not TIME:
        log("warning: GNU /usr/bin/time not found; peak RSS has a floor of this script's own")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    tmp = Path(tempfile.mkdtemp(prefix="backuprepo-copybench."))
    servers_dir = bench = None
    try:
        if a.servers_dir:
            s3 = read_env(Path(a.servers_dir) / "env")
        else:
            servers_dir = tmp / "servers"
            servers_dir.mkdir()
            subprocess.run(["bash", str(SERVERS_SH), "start", str(servers_dir)],
                           stdout=sys.stderr, check=True)
            s3 = read_env(servers_dir / "env")
        s3.setdefault("BR_S3_SECRET_KEY", s3.get("BR_S3_SECRET", ""))
        bench = CopyBench(a, tmp, s3)
        bench.setup()
        bench.fill("many", a.many, a.size // a.many)
        bench.fill("one", 1, a.size)
        bench.fill("noop", a.noop, 1024)
        bench.case(f"many: {a.size >> 20} MiB in {a.many} objects", "many")
        bench.case(f"one: {a.size >> 20} MiB in 1 object", "one")
        bench.case(f"noop: {a.noop} objects unchanged", "noop", noop=True)
        bench.report()
    except (RuntimeError, OSError, subprocess.CalledProcessError) as e:
        log(f"error: {e}\n{getattr(e, 'stderr', None) or ''}".rstrip())
        return 1
    finally:
        if bench:
            bench.cleanup()
        if servers_dir:
            subprocess.run(["bash", str(SERVERS_SH), "stop", str(servers_dir)], stdout=sys.stderr)
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
