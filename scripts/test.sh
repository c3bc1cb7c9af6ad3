#!/usr/bin/env bash
# The whole test suite: installs and starts the real storage servers (SeaweedFS S3, vsftpd,
# Azurite) on 127.0.0.1 with ephemeral ports in a temporary directory, runs fmt/clippy and every
# test against them, and stops the servers whatever happens.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/test-servers.sh install

servers=$(mktemp -d)
cleanup() { bash scripts/test-servers.sh stop "$servers" >/dev/null 2>&1 || true; rm -rf "$servers"; }
trap cleanup EXIT INT TERM

bash scripts/test-servers.sh start "$servers"
# shellcheck disable=SC1091
source "$servers/env"
export BR_REQUIRE_SERVERS=1 # a backend whose server is missing fails instead of skipping

cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
cargo test --workspace
