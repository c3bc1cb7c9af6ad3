#!/usr/bin/env bash
# The main job on the embedded default: a local repository, no cluster, no credentials.
# Creates a `local` repository as the default in a fresh store, shows it go Ready (describe),
# pushes a generated 64 MiB SQL dump into it (zstd + authenticated encryption), lists it,
# pulls it back and verifies it byte for byte. Everything lives in a temporary directory.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --release -q -p backuprepo-cli
bin=${CARGO_TARGET_DIR:-target}/release/backuprepo
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

export BACKUPREPO_HOME="$work/home" # the local store: providers, repositories, secrets
mkdir -p "$BACKUPREPO_HOME"        # a new store (commands that only read never make one)
storage="$work/storage"             # where the backups go
mkdir -p "$storage"
python3 - "$work/dump.sql" <<'PY'
import sys
with open(sys.argv[1], "w") as f:
    i = 0
    while f.tell() < 64 << 20:
        f.write("".join(f"INSERT INTO orders VALUES ({j}, 'customer {j % 977}', {j * 13 % 10007});\n" for j in range(i, i + 10000)))
        i += 10000
PY

run() { echo; echo "\$ backuprepo $*"; "$bin" "$@"; }

run list-storage-provider
run create my-repo --provider local --path "$storage" --default
run describe my-repo
run list

export DATASAFED_ENCRYPTION_ALGORITHM=AES-256-GCM-STREAM
export DATASAFED_ENCRYPTION_PASS_PHRASE="demo pass phrase"
run push -z zstd "$work/dump.sql" mycluster/backup-1/dump.sql
run list --repo my-repo -o long -r /
run stat
run pull -d zstd mycluster/backup-1/dump.sql "$work/restored.sql"
cmp "$work/dump.sql" "$work/restored.sql"
echo
echo "OK: $(stat -c %s "$work/dump.sql") bytes round-tripped through the default repository;" \
    "stored as $(find "$storage" -name '*.enc' -printf '%P (%s bytes)\n')"
