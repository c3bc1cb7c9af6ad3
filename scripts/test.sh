#!/usr/bin/env bash
# The whole test suite: installs and starts the real storage servers (SeaweedFS S3, vsftpd,
# Azurite) and the Kubernetes control plane (scripts/kube.sh) on 127.0.0.1 with ephemeral ports
# in temporary directories, runs fmt/clippy and every test against them, and stops them all
# whatever happens. Under CI (BR_REQUIRE_KUBE=1) the cluster is required.
set -euo pipefail
cd "$(dirname "$0")/.."

# shellcheck source=scripts/up.sh
source scripts/up.sh # SeaweedFS, vsftpd, Azurite and the Kubernetes control plane, stopped on exit
export BR_REQUIRE_SERVERS=1 # a backend whose server is missing fails instead of skipping

cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
cargo test --workspace
