#!/usr/bin/env bash
# Scale benchmark of the controller on the real control plane: N BackupRepos (default 500) on
# one SeaweedFS bucket. Starts SeaweedFS and the cluster (scripts/kube.sh) in temporary
# directories, builds the release binary, runs scripts/bench_kube.py, and stops everything.
#   bash scripts/bench-kube.sh [N] [--steady SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/var/tmp/backuprepo-target}
bash scripts/test-servers.sh install >/dev/null
bash scripts/kube.sh build >/dev/null
cargo build --release -q -p backuprepo-cli
servers=$(mktemp -d)
cluster=$(mktemp -d)
cleanup() {
    bash scripts/kube.sh stop "$cluster" >/dev/null 2>&1 || true
    bash scripts/test-servers.sh stop "$servers" >/dev/null 2>&1 || true
    rm -rf "$servers" "$cluster"
}
trap cleanup EXIT INT TERM
bash scripts/test-servers.sh start "$servers" >/dev/null
bash scripts/kube.sh start "$cluster"
# shellcheck disable=SC1091
source "$servers/env"
# shellcheck disable=SC1091
source "$cluster/env"
python3 scripts/bench_kube.py "$@"
