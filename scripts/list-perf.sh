#!/bin/bash
# Issue 13's figure: 5 local repositories of 20,000 objects each; `backuprepo list` (from
# status.usage, no scan) against one `stat` of a repository (a scan). Run: bash scripts/list-perf.sh
set -euo pipefail
B=${BIN:-/var/tmp/backuprepo-target/release/backuprepo}
D=$(mktemp -d)
export BACKUPREPO_HOME=$D/home
for r in 1 2 3 4 5; do
  mkdir -p $D/data$r
  python3 - "$D/data$r" <<'PY'
import os, sys
root = sys.argv[1]
for ns in range(10):
    d = os.path.join(root, f"ns-{ns}", "backup")
    os.makedirs(d)
    for i in range(2000):
        with open(os.path.join(d, f"obj-{i}"), "wb") as f:
            f.write(b"x" * 100)
PY
  $B create r$r --provider local --path $D/data$r >/dev/null
done
$B check --all >/dev/null
t() { local s=$EPOCHREALTIME; "$@" >/dev/null; awk "BEGIN{printf \"%.3f s\\n\", $EPOCHREALTIME - $s}"; }
echo "list (5 repos x 20,000 objects), 5 runs:"; for i in 1 2 3 4 5; do t $B list; done
echo "stat of one repository (20,000 objects), 3 runs:"; for i in 1 2 3; do t $B stat --repo r1 /; done
$B list
rm -rf $D
