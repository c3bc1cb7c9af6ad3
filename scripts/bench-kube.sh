#!/usr/bin/env bash
# Scale benchmark of the controller on the real control plane: N BackupRepos (default 500) on
# one SeaweedFS bucket. Starts SeaweedFS and the cluster (scripts/kube.sh) in temporary
# directories, builds the release binary, runs scripts/bench_kube.py, and stops everything.
#   bash scripts/bench-kube.sh [N] [--steady SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/var/tmp/backuprepo-target}
cargo build --release -q -p backuprepo-cli
KUBE_REQUIRED=1
# shellcheck source=scripts/up.sh
source scripts/up.sh >/dev/null
python3 scripts/bench_kube.py "$@"
