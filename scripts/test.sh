#!/usr/bin/env bash
# The whole test suite: installs and starts the real storage servers (SeaweedFS S3, vsftpd,
# Azurite) on 127.0.0.1 with ephemeral ports in a temporary directory, runs fmt/clippy and every
# test against them, and stops the servers whatever happens.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/test-servers.sh install

servers=$(mktemp -d)
cluster=$(mktemp -d)
cleanup() {
    bash scripts/kube.sh stop "$cluster" >/dev/null 2>&1 || true
    bash scripts/test-servers.sh stop "$servers" >/dev/null 2>&1 || true
    rm -rf "$servers" "$cluster"
}
trap cleanup EXIT INT TERM

bash scripts/test-servers.sh start "$servers"
# shellcheck disable=SC1091
source "$servers/env"
export BR_REQUIRE_SERVERS=1 # a backend whose server is missing fails instead of skipping

# The Kubernetes control plane (built from Go modules into a cache; tens of minutes the first
# time, seconds after). Required under CI (BR_REQUIRE_KUBE=1); without Go, the cluster tests
# print a `skipped:` line each.
if command -v go >/dev/null 2>&1; then
    bash scripts/kube.sh build >/dev/null
    bash scripts/kube.sh start "$cluster"
    # shellcheck disable=SC1091
    source "$cluster/env"
elif [[ ${BR_REQUIRE_KUBE:-} == 1 ]]; then
    echo "test.sh: BR_REQUIRE_KUBE=1 but Go is not installed: the test cluster cannot be built" >&2
    exit 1
fi

cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
cargo test --workspace
