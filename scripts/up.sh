# Sourced by test.sh and bench-kube.sh: install and start the storage servers and the
# Kubernetes control plane in temporary directories, export their variables, and stop them all
# when the calling script exits. With KUBE_REQUIRED=1 (or BR_REQUIRE_KUBE=1) a machine without
# Go is an error; otherwise the cluster is left out and its tests print `skipped:` lines.
# shellcheck shell=bash
bash scripts/test-servers.sh install
up_servers=$(mktemp -d)
up_cluster=$(mktemp -d)
up_cleanup() {
    bash scripts/kube.sh stop "$up_cluster" >/dev/null 2>&1 || true
    bash scripts/test-servers.sh stop "$up_servers" >/dev/null 2>&1 || true
    rm -rf "$up_servers" "$up_cluster"
}
trap up_cleanup EXIT INT TERM
bash scripts/test-servers.sh start "$up_servers"
# shellcheck disable=SC1091
source "$up_servers/env"
# The control plane is built from Go modules into a cache: tens of minutes the first time,
# seconds after.
if command -v go >/dev/null 2>&1; then
    bash scripts/kube.sh build >/dev/null
    # helm and promtool (the chart and the alert rules are tested with them), cached the same way.
    BR_HELM=$(bash scripts/kube.sh build-extra)/helm
    BR_PROMTOOL=$(dirname "$BR_HELM")/promtool
    export BR_HELM BR_PROMTOOL
    bash scripts/kube.sh start "$up_cluster"
    # shellcheck disable=SC1091
    source "$up_cluster/env"
elif [[ ${KUBE_REQUIRED:-${BR_REQUIRE_KUBE:-}} == 1 ]]; then
    echo "up.sh: Go is not installed, so the Kubernetes test cluster cannot be built" >&2
    exit 1
fi
