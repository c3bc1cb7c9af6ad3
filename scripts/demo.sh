#!/usr/bin/env bash
# The main job on the embedded default: a local repository, no cluster, no credentials.
# Streams a 64 MiB SQL-like dump into a local directory through the datasafed face (zstd +
# authenticated encryption), lists it, pulls it back and verifies it byte for byte.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --release -q -p backuprepo-cli
bin=${CARGO_TARGET_DIR:-target}/release/backuprepo
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

repo="$work/repo"
mkdir -p "$repo"
python3 - "$work/dump.sql" <<'PY'
import sys
with open(sys.argv[1], "w") as f:
    i = 0
    while f.tell() < 64 << 20:
        f.write("".join(f"INSERT INTO orders VALUES ({j}, 'customer {j % 977}', {j * 13 % 10007});\n" for j in range(i, i + 10000)))
        i += 10000
PY

export DATASAFED_LOCAL_BACKEND_PATH="$repo"
export DATASAFED_BACKEND_BASE_PATH="demo-ns/mycluster/backup-1"
export DATASAFED_ENCRYPTION_ALGORITHM=AES-256-GCM-STREAM
export DATASAFED_ENCRYPTION_PASS_PHRASE="demo pass phrase"

echo "== push (zstd, AES-256-GCM-STREAM) into $repo"
"$bin" datasafed push -z zstd "$work/dump.sql" dump.sql
echo "== list"
"$bin" datasafed list -o long /
echo "== stat"
"$bin" datasafed stat /
echo "== pull and verify"
"$bin" datasafed pull -d zstd dump.sql "$work/restored.sql"
cmp "$work/dump.sql" "$work/restored.sql"
echo "OK: $(stat -c %s "$work/dump.sql") bytes round-tripped; stored as $(find "$repo" -name '*.enc' -printf '%P (%s bytes)\n')"
