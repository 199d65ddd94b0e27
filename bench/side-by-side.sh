#!/usr/bin/env bash
# side-by-side.sh - portcullis next to nginx and HAProxy, in one interleaved run on this machine.
#
# Columns (every one proxies to, or is, the same nginx upstream answering 200 "ok\n"):
#   direct                      the upstream itself (the ceiling)
#   nginx                       nginx as a plain reverse proxy (no authentication)
#   haproxy-jwt                 HAProxy validating an RS512 JWT on every request with jwt_verify
#                               (alg pinned, signature, aud, exp, nbf; token from gen-jwt.py)
#   portcullis                  the gateway (release build), one access token it issued
#   portcullis-distinct-tokens  the gateway with its verified-token cache off
#                               (tokens.verified_cache = 0), each request with the next of TOKENS
#                               tokens it issued: every request pays the RS512 signature check
#                               (a wrk Lua script; HTTP/1.1 only: h2load cannot vary headers)
#   portcullis-lifecycle        the gateway with 2-second access tokens (leeway 0), driven by
#                               `portcullis bench`: CONNS virtual users log in, then call as fast
#                               as answered, refreshing on each 401 (plain HTTP: h1 and h2c)
#   portcullis-baseline         only with BASELINE_BIN: that other portcullis binary (e.g. a build
#                               of the code before a change) with the same configurations as
#                               `portcullis` on its own ports, one access token it issued
# Protocols: HTTP/1.1 (wrk) and HTTP/2 (h2load), each over plain TCP (h2c: prior knowledge) and
# TLS (one self-signed certificate, from `portcullis init`, for nginx, HAProxy and portcullis).
#
# Rounds are interleaved (every config and protocol once per round, then the next round), so
# drift on a shared machine hits every column alike. Results: median req/s and p99 over the
# rounds, as a Markdown table, an SVG chart, and the section of BENCHMARKS.md between
# <!-- side-by-side:start --> and <!-- side-by-side:end -->.
#
# Installs what is missing: nginx haproxy wrk nghttp2-client (apt), pyjwt cryptography (pip).
# Everything listens on 127.0.0.1; everything it starts is stopped by PID at exit; a watchdog
# ends the whole script after MAX_TOTAL_S.
#
# Parameters (environment variables):
#   QUICK=1          smoke run: ROUNDS=1 DURATION=2 WARMUP=1 TOKENS=200; does not touch
#                    BENCHMARKS.md or bench/side-by-side.svg unless UPDATE_DOCS=1
#   ROUNDS=3         interleaved rounds           DURATION=10  seconds per measurement
#   CONNS=64         connections (wrk -c, h2load -c)   THREADS=1  client threads (-t)
#   H2_STREAMS=1     h2load -m (concurrent streams per connection)
#   WARMUP=2         seconds of discarded load per config and protocol before round 1
#   TOKENS=1000      distinct tokens for portcullis-distinct-tokens (0: skip that column)
#   CONFIGS          default "direct nginx haproxy-jwt portcullis portcullis-distinct-tokens
#                    portcullis-lifecycle", with BASELINE_BIN "... portcullis portcullis-baseline
#                    portcullis-distinct-tokens portcullis-lifecycle"
#   PROTOS           default "h1 h2c h1-tls h2-tls"
#   NGINX_WORKERS=auto  HAPROXY_THREADS=$(nproc)  UPSTREAM_WORKERS=1
#   BASE_PORT=19080  ports BASE_PORT .. BASE_PORT+39 must be free (+43 with portcullis-baseline)
#   UPDATE_DOCS=1    write the table into BENCHMARKS.md and the chart to bench/side-by-side.svg
#   BUILD=1          cargo build --release first (0: use the existing target/release/portcullis;
#                    both honour CARGO_TARGET_DIR)
#   ALLOCATIONS=1    heap allocations per proxied request in the report, from `cargo bench
#                    --bench allocations` run before the measurements (exact counts of this
#                    tree's gateway, not of BASELINE_BIN); 0 skips it (QUICK's default)
#   BASELINE_BIN     a portcullis binary to measure as the portcullis-baseline column, interleaved
#                    with the others (unset: no such column); not built by this script
#   BASELINE_LABEL   what the report calls it, e.g. "before issue 11 (044ff5d)" (default: its path)
#   MAX_TOTAL_S      hard deadline for everything, build included (default 3600; QUICK 900)
#   BENCH_WORK       scratch folder (default ${TMPDIR:-/tmp}/portcullis-side-by-side)
#
# Usage, from anywhere:  bench/side-by-side.sh          QUICK=1 bench/side-by-side.sh
#   against an older build: BASELINE_BIN=/path/to/old/portcullis BASELINE_LABEL=old bench/side-by-side.sh
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH_DIR=$REPO/bench
# shellcheck source=bench/haproxy-jwt.sh
source "$BENCH_DIR/haproxy-jwt.sh"

: "${QUICK:=0}"
if [[ $QUICK == 1 ]]; then
  : "${ROUNDS:=1}" "${DURATION:=2}" "${WARMUP:=1}" "${TOKENS:=200}" "${UPDATE_DOCS:=0}" "${MAX_TOTAL_S:=900}"
  : "${ALLOCATIONS:=0}"
fi
: "${ROUNDS:=3}" "${DURATION:=10}" "${WARMUP:=2}" "${TOKENS:=1000}" "${UPDATE_DOCS:=1}" "${MAX_TOTAL_S:=3600}"
: "${ALLOCATIONS:=1}"
: "${CONNS:=64}" "${THREADS:=1}" "${H2_STREAMS:=1}"
: "${BASELINE_BIN:=}"
if [[ -n $BASELINE_BIN ]]; then
  : "${CONFIGS:=direct nginx haproxy-jwt portcullis portcullis-baseline portcullis-distinct-tokens portcullis-lifecycle}"
fi
: "${CONFIGS:=direct nginx haproxy-jwt portcullis portcullis-distinct-tokens portcullis-lifecycle}"
: "${PROTOS:=h1 h2c h1-tls h2-tls}"
: "${NGINX_WORKERS:=auto}" "${HAPROXY_THREADS:=$(nproc)}" "${UPSTREAM_WORKERS:=1}"
: "${BASE_PORT:=19080}" "${BUILD:=1}"
: "${BENCH_WORK:=${TMPDIR:-/tmp}/portcullis-side-by-side}"

START_TS=$(date +%s)
STAMP=$(date -u +%Y%m%d-%H%M%S)
OUT_DIR=$BENCH_WORK/results/$STAMP
CONF_DIR=$BENCH_WORK/conf
RUN_DIR=$BENCH_WORK/run
KEY_DIR=$BENCH_WORK/keys
GW_DIR=$BENCH_WORK/portcullis
TSV=$OUT_DIR/results.tsv
LOG=$OUT_DIR/run.log
mkdir -p "$OUT_DIR/raw" "$CONF_DIR" "$RUN_DIR/tmp" "$KEY_DIR"

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" | tee -a "$LOG" >&2; }
die() { log "FATAL: $*"; exit 1; }
elapsed() { echo $(($(date +%s) - START_TS)); }
time_left_for() { (($(elapsed) + $1 < MAX_TOTAL_S)); }

# ---------------------------------------------------------------- stop everything we start
STARTED=()
cleanup() {
  local p _
  trap - EXIT INT TERM
  # the watchdog's sleep first (by its parent's PID), so that it does not linger
  [[ -z ${WATCHDOG:-} ]] || pkill -TERM -P "$WATCHDOG" 2>/dev/null || true
  WATCHDOG=
  for p in "${STARTED[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${STARTED[@]}"; do
    for _ in $(seq 1 50); do
      kill -0 "$p" 2>/dev/null || break
      sleep 0.1
    done
    if kill -0 "$p" 2>/dev/null; then
      log "pid $p did not stop, SIGKILL"
      kill -KILL "$p" 2>/dev/null || true
    fi
    wait "$p" 2>/dev/null || true
  done
  STARTED=()
}
# The watchdog: the whole script ends by MAX_TOTAL_S (long commands also run under `timeout`,
# since bash acts on the signal only once the command in the foreground has returned).
(sleep "$MAX_TOTAL_S" && kill -TERM $$ 2>/dev/null) &
WATCHDOG=$!
STARTED+=("$WATCHDOG")
trap cleanup EXIT
trap 'log "interrupted or out of time"; exit 130' INT TERM
left() { echo $((MAX_TOTAL_S - $(elapsed) > 1 ? MAX_TOTAL_S - $(elapsed) : 1)); }

# ---------------------------------------------------------------- tools
need_apt=()
for pair in nginx:nginx haproxy:haproxy wrk:wrk h2load:nghttp2-client curl:curl; do
  command -v "${pair%%:*}" >/dev/null || need_apt+=("${pair#*:}")
done
if ((${#need_apt[@]})); then
  log "installing with apt: ${need_apt[*]}"
  SUDO=()
  [[ $(id -u) == 0 ]] || SUDO=(sudo)
  timeout "$(left)" "${SUDO[@]}" apt-get update -qq >>"$LOG" 2>&1 || true
  DEBIAN_FRONTEND=noninteractive timeout "$(left)" "${SUDO[@]}" apt-get install -y -qq \
    --no-install-recommends "${need_apt[@]}" >>"$LOG" 2>&1 ||
    die "apt-get install ${need_apt[*]} failed (see $LOG)"
fi
command -v python3 >/dev/null || die "python3 is missing"
if ! python3 -c 'import jwt, cryptography' 2>/dev/null; then
  log "installing with pip: pyjwt cryptography"
  timeout "$(left)" python3 -m pip install -q pyjwt cryptography >>"$LOG" 2>&1 ||
    timeout "$(left)" python3 -m pip install -q --break-system-packages pyjwt cryptography >>"$LOG" 2>&1 ||
    die "pip install pyjwt cryptography failed (see $LOG)"
fi
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

# ---------------------------------------------------------------- portcullis build
# cargo reads a relative CARGO_TARGET_DIR from its working directory; the build below runs in $REPO
if [[ -n ${CARGO_TARGET_DIR:-} && $CARGO_TARGET_DIR != /* ]]; then
  CARGO_TARGET_DIR=$PWD/$CARGO_TARGET_DIR
  export CARGO_TARGET_DIR
fi
BIN=${CARGO_TARGET_DIR:-$REPO/target}/release/portcullis
if [[ $BUILD == 1 ]]; then
  log "cargo build --release"
  (cd "$REPO" && timeout "$(left)" cargo build --release --locked --quiet) >>"$LOG" 2>&1 ||
    die "cargo build --release failed (see $LOG)"
fi
[[ -x $BIN ]] || die "no $BIN (run with BUILD=1)"
if [[ $ALLOCATIONS == 1 ]]; then
  # Exact counts under dhat's allocator, independent of load: run before the measurements so
  # that its build and run share the cores with nothing measured.
  log "cargo bench --bench allocations"
  (cd "$REPO" && timeout "$(left)" cargo bench --bench allocations --locked --quiet) \
    2>>"$LOG" | grep '^|' >"$OUT_DIR/allocations.md" ||
    die "cargo bench --bench allocations failed (see $LOG)"
fi
BASELINE=0
if [[ " $CONFIGS " == *" portcullis-baseline "* ]]; then
  [[ -n $BASELINE_BIN ]] || die "CONFIGS has portcullis-baseline but BASELINE_BIN is not set"
  [[ -x $BASELINE_BIN && ! -d $BASELINE_BIN ]] || die "BASELINE_BIN=$BASELINE_BIN is not an executable file"
  [[ $BASELINE_BIN == /* ]] || BASELINE_BIN=$PWD/$BASELINE_BIN
  : "${BASELINE_LABEL:=$BASELINE_BIN}"
  [[ ! $BASELINE_BIN -ef $BIN ]] || log "WARNING: BASELINE_BIN is $BIN itself"
  BASELINE=1
  log "portcullis: $BIN; portcullis-baseline ($BASELINE_LABEL): $BASELINE_BIN"
fi

# ---------------------------------------------------------------- ports
P_UP=$BASE_PORT                        # upstream: h1, h2c, TLS (h1 + h2 by ALPN)
P_UP_STATUS=$((BASE_PORT + 5))         # the upstream's stub_status
P_NGINX=$((BASE_PORT + 10))            # nginx proxy: same three
P_HAPROXY=$((BASE_PORT + 20))          # HAProxy + JWT: same three
P_GW=$((BASE_PORT + 30))               # portcullis plain (h1 + h2c), its admin +1
P_GW_TLS=$((BASE_PORT + 32))           # portcullis TLS (h1 + h2 by ALPN), its admin +1
P_GW_NC=$((BASE_PORT + 34))            # the same two with the verified-token cache off
P_GW_NC_TLS=$((BASE_PORT + 36))
P_GW_LC=$((BASE_PORT + 38))            # 2-second access tokens (h1 + h2c), its admin +1
P_GW_BL=$((BASE_PORT + 40))            # BASELINE_BIN, plain and TLS, admins +1
P_GW_BL_TLS=$((BASE_PORT + 42))
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
wait_port() {
  local _
  for _ in $(seq 1 100); do
    port_open "$1" && return 0
    sleep 0.1
  done
  return 1
}
for p in $(seq "$BASE_PORT" $((BASE_PORT + (BASELINE ? 43 : 39)))); do
  if port_open "$p"; then die "port $p is in use (set BASE_PORT)"; fi
done

# ---------------------------------------------------------------- keys, certificate, tokens
rm -rf "$GW_DIR"
# (init prints the password of the `admin` user it creates; that user is replaced below)
"$BIN" init --dir "$GW_DIR" --hosts localhost,127.0.0.1 >/dev/null 2>>"$LOG" || die "portcullis init failed"
CERT=$GW_DIR/certs/gateway.crt
KEY=$GW_DIR/certs/gateway.key
cat "$CERT" "$KEY" >"$CONF_DIR/haproxy.pem"
chmod 600 "$CONF_DIR/haproxy.pem"
python3 "$BENCH_DIR/gen-jwt.py" "$KEY_DIR" >>"$LOG" || die "gen-jwt.py failed"
HAPROXY_TOKEN=$(tr -d '\n' <"$KEY_DIR/token.jwt")

# The benchmark user: a random password, hashed by portcullis itself, never on a command line.
BENCH_PASSWORD=$(python3 -c 'import secrets; print(secrets.token_urlsafe(18))')
HASH=$(printf '%s' "$BENCH_PASSWORD" | "$BIN" hash-password)
printf '[[users]]\nname = "bench"\npassword_hash = "%s"\nroles = ["user"]\n' "$HASH" >"$GW_DIR/config/users.toml"
chmod 600 "$GW_DIR/config/users.toml"

# ---------------------------------------------------------------- configurations
write_gateway_conf() { # $1 file, $2 port, $3 tls (true|false), $4 verified_cache, $5 [tokens] lines
  local ttl=${5:-}
  [[ -n $ttl ]] || ttl='access_ttl = "12h"              # no expiry during the run'
  cat >"$1" <<EOF
# generated by side-by-side.sh
[server]
listen = "127.0.0.1:$2"
tls = $3
tls_cert = "../certs/gateway.crt"
tls_key = "../certs/gateway.key"
http2 = true

[admin]
listen = "127.0.0.1:$(($2 + 1))"

[tokens]
signing_key = "../certs/signing.pem"
$ttl
verified_cache = $4

[store]
kind = "memory"

[login]
users_file = "users.toml"

[log]
format = "json"
access_log = false              # like nginx and HAProxy below

[[routes]]
name = "upstream"
path_prefix = "/"
upstreams = ["http://127.0.0.1:$P_UP"]
auth = "required"
EOF
}
write_gateway_conf "$GW_DIR/config/plain.toml" "$P_GW" false 10000
write_gateway_conf "$GW_DIR/config/tls.toml" "$P_GW_TLS" true 10000
write_gateway_conf "$GW_DIR/config/plain-nocache.toml" "$P_GW_NC" false 0
write_gateway_conf "$GW_DIR/config/tls-nocache.toml" "$P_GW_NC_TLS" true 0
write_gateway_conf "$GW_DIR/config/plain-lifecycle.toml" "$P_GW_LC" false 10000 \
  "$(printf 'access_ttl = "2s"\nleeway = "0s"')"
if ((BASELINE)); then
  write_gateway_conf "$GW_DIR/config/baseline-plain.toml" "$P_GW_BL" false 10000
  write_gateway_conf "$GW_DIR/config/baseline-tls.toml" "$P_GW_BL_TLS" true 10000
fi

nginx_head() { # $1 name, $2 worker_processes
  cat <<EOF
# generated by side-by-side.sh
worker_processes $2;
daemon off;
master_process on;
pid $RUN_DIR/$1.pid;
error_log $RUN_DIR/$1-error.log warn;
worker_rlimit_nofile 16384;
events { worker_connections 8192; }
http {
  access_log off;
  keepalive_timeout 65;
  keepalive_requests 1000000;
  client_body_temp_path $RUN_DIR/tmp/$1-body;
  proxy_temp_path $RUN_DIR/tmp/$1-proxy;
  fastcgi_temp_path $RUN_DIR/tmp/$1-fastcgi;
  uwsgi_temp_path $RUN_DIR/tmp/$1-uwsgi;
  scgi_temp_path $RUN_DIR/tmp/$1-scgi;
  ssl_certificate $CERT;
  ssl_certificate_key $KEY;
EOF
}
nginx_listens() { # $1 base port: h1, h2c, TLS
  cat <<EOF
    listen 127.0.0.1:$1;
    listen 127.0.0.1:$(($1 + 1)) http2;
    listen 127.0.0.1:$(($1 + 2)) ssl http2;
EOF
}
{
  nginx_head upstream "$UPSTREAM_WORKERS"
  echo "  server {"
  nginx_listens "$P_UP"
  printf '%s\n' '    location / { default_type text/plain; return 200 "ok\n"; }'
  echo "  }"
  # Its connection and request counts, read before and after each measurement: how many
  # upstream connections each proxy opened for how many requests (keep-alive reuse).
  echo "  server { listen 127.0.0.1:$P_UP_STATUS; location / { stub_status; } }"
  echo "}"
} >"$CONF_DIR/upstream.conf"
{
  nginx_head nginx "$NGINX_WORKERS"
  cat <<EOF
  upstream up {
    server 127.0.0.1:$P_UP;
    keepalive 128;
    keepalive_requests 1000000;
  }
  server {
EOF
  nginx_listens "$P_NGINX"
  cat <<EOF
    location / {
      proxy_pass http://up;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
  }
}
EOF
} >"$CONF_DIR/nginx.conf"
haproxy_jwt_cfg "$HAPROXY_THREADS" "$P_HAPROXY" "$CONF_DIR/haproxy.pem" "$KEY_DIR/public.pem" \
  "$P_UP" >"$CONF_DIR/haproxy.cfg"
cp "$BENCH_DIR/tokens.lua" "$CONF_DIR/tokens.lua"
cp "$CONF_DIR"/*.conf "$CONF_DIR"/*.cfg "$CONF_DIR"/*.lua "$GW_DIR"/config/plain.toml "$GW_DIR"/config/tls.toml "$OUT_DIR/raw/"
((BASELINE == 0)) || cp "$GW_DIR"/config/baseline-plain.toml "$GW_DIR"/config/baseline-tls.toml "$OUT_DIR/raw/"

# ---------------------------------------------------------------- start
declare -A PIDS=()   # name -> pids whose CPU is that server's
start() { # $1 name, $2 port to wait for, $3... command
  local name=$1 port=$2
  shift 2
  "$@" >>"$RUN_DIR/$name.out" 2>&1 &
  local pid=$!
  STARTED+=("$pid")
  wait_port "$port" || die "$name did not listen on $port (see $RUN_DIR/$name.out)"
  sleep 0.2
  PIDS[$name]="$pid $(pgrep -P "$pid" | tr '\n' ' ' || true)"
}
nginx -t -q -p "$RUN_DIR" -e "$RUN_DIR/nginx-t.log" -c "$CONF_DIR/upstream.conf" || die "nginx -t upstream"
nginx -t -q -p "$RUN_DIR" -e "$RUN_DIR/nginx-t.log" -c "$CONF_DIR/nginx.conf" || die "nginx -t nginx"
haproxy -c -q -f "$CONF_DIR/haproxy.cfg" || die "haproxy -c"
"$BIN" check -c "$GW_DIR/config/plain.toml" >>"$LOG" 2>&1 || die "portcullis check plain.toml (see $LOG)"
"$BIN" check -c "$GW_DIR/config/tls.toml" >>"$LOG" 2>&1 || die "portcullis check tls.toml (see $LOG)"
if ((BASELINE)); then
  for f in baseline-plain baseline-tls; do
    "$BASELINE_BIN" check -c "$GW_DIR/config/$f.toml" >>"$LOG" 2>&1 ||
      die "BASELINE_BIN check $f.toml: the baseline refuses the generated config (see $LOG)"
  done
fi

# pre-flight: how busy is the machine before we add load? (2 s sample; warns, does not wait)
cpu_sample() { awk '/^cpu /{print $2+$3+$4+$7+$8, $5+$6, $9}' /proc/stat; }
read -r b0 i0 st0 < <(cpu_sample)
sleep 2
read -r b1 i1 st1 < <(cpu_sample)
PRE_BUSY=$((100 * $(nproc) * (b1 - b0) / (b1 - b0 + i1 - i0 + st1 - st0 + 1)))
log "pre-flight: machine busy ${PRE_BUSY}% of $(($(nproc) * 100))% before starting"
((PRE_BUSY < 20)) || log "WARNING: something else is using the CPU; results will be noisy"

start upstream $((P_UP + 2)) nginx -p "$RUN_DIR" -e "$RUN_DIR/upstream-startup.log" -c "$CONF_DIR/upstream.conf"
start nginx $((P_NGINX + 2)) nginx -p "$RUN_DIR" -e "$RUN_DIR/nginx-startup.log" -c "$CONF_DIR/nginx.conf"
start haproxy $((P_HAPROXY + 2)) haproxy -db -f "$CONF_DIR/haproxy.cfg"
start portcullis "$P_GW" "$BIN" serve -c "$GW_DIR/config/plain.toml"
start portcullis-tls "$P_GW_TLS" "$BIN" serve -c "$GW_DIR/config/tls.toml"
if ((BASELINE)); then
  start portcullis-baseline "$P_GW_BL" "$BASELINE_BIN" serve -c "$GW_DIR/config/baseline-plain.toml"
  start portcullis-baseline-tls "$P_GW_BL_TLS" "$BASELINE_BIN" serve -c "$GW_DIR/config/baseline-tls.toml"
fi
if [[ " $CONFIGS " == *" portcullis-lifecycle "* ]]; then
  start portcullis-lc "$P_GW_LC" "$BIN" serve -c "$GW_DIR/config/plain-lifecycle.toml"
fi
if [[ " $CONFIGS " == *" portcullis-distinct-tokens "* ]]; then
  start portcullis-nc "$P_GW_NC" "$BIN" serve -c "$GW_DIR/config/plain-nocache.toml"
  start portcullis-nc-tls "$P_GW_NC_TLS" "$BIN" serve -c "$GW_DIR/config/tls-nocache.toml"
fi
log "pids: $(for n in "${!PIDS[@]}"; do printf '%s=[%s] ' "$n" "${PIDS[$n]% }"; done)"

# ---------------------------------------------------------------- portcullis tokens
# One login per instance with curl (the form on stdin, so the password is on no command line).
login() { # $1 base URL; prints the access token
  printf 'grant_type=password&username=bench&password=%s' "$BENCH_PASSWORD" |
    curl -sS --max-time 10 --cacert "$CERT" --data-binary @- \
      -H 'content-type: application/x-www-form-urlencoded' "$1/api/oauth2/token" |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["access_token"])'
}
GW_TOKEN=$(login "http://127.0.0.1:$P_GW") || die "login at the plain portcullis failed"
GW_TLS_TOKEN=$(login "https://127.0.0.1:$P_GW_TLS") || die "login at the TLS portcullis failed"
if ((BASELINE)); then
  BL_TOKEN=$(login "http://127.0.0.1:$P_GW_BL") || die "login at the plain portcullis-baseline failed"
  BL_TLS_TOKEN=$(login "https://127.0.0.1:$P_GW_BL_TLS") || die "login at the TLS portcullis-baseline failed"
fi
# Distinct tokens: one login, then refreshes on one keep-alive connection; every refresh brings
# a new access token (new jti and signature) for the same session.
mint() { # $1 base URL, $2 count, $3 output file
  BENCH_PASSWORD=$BENCH_PASSWORD python3 "$BENCH_DIR/mint-tokens.py" "$1" "$2" "$3" "$CERT"
}
if [[ " $CONFIGS " == *" portcullis-distinct-tokens "* ]]; then
  if ((TOKENS > 0)); then
    log "minting $TOKENS distinct tokens per portcullis instance"
    mint "http://127.0.0.1:$P_GW" "$TOKENS" "$KEY_DIR/tokens-plain.txt" || die "minting tokens failed"
    mint "https://127.0.0.1:$P_GW_TLS" "$TOKENS" "$KEY_DIR/tokens-tls.txt" || die "minting tokens failed"
  else
    CONFIGS=${CONFIGS//portcullis-distinct-tokens/}
  fi
fi

# ---------------------------------------------------------------- what each cell sends where
url_of() { # $1 config, $2 proto
  local base
  case $1 in
    direct) base=$P_UP ;;
    nginx) base=$P_NGINX ;;
    haproxy-jwt) base=$P_HAPROXY ;;
    portcullis)
      case $2 in
        h1 | h2c) echo "http://127.0.0.1:$P_GW/" ;;
        *) echo "https://127.0.0.1:$P_GW_TLS/" ;;
      esac
      return ;;
    portcullis-baseline)
      case $2 in
        h1 | h2c) echo "http://127.0.0.1:$P_GW_BL/" ;;
        *) echo "https://127.0.0.1:$P_GW_BL_TLS/" ;;
      esac
      return ;;
    portcullis-distinct-tokens)
      case $2 in
        h1 | h2c) echo "http://127.0.0.1:$P_GW_NC/" ;;
        *) echo "https://127.0.0.1:$P_GW_NC_TLS/" ;;
      esac
      return ;;
    portcullis-lifecycle) echo "http://127.0.0.1:$P_GW_LC/"; return ;;
  esac
  case $2 in
    h1) echo "http://127.0.0.1:$base/" ;;
    h2c) echo "http://127.0.0.1:$((base + 1))/" ;;
    *) echo "https://127.0.0.1:$((base + 2))/" ;;
  esac
}
token_of() { # $1 config, $2 proto; empty for no token
  case $1 in
    direct | nginx) echo "" ;;
    haproxy-jwt) echo "$HAPROXY_TOKEN" ;;
    portcullis-lifecycle) echo "" ;; # it logs in by itself
    portcullis | portcullis-distinct-tokens)
      case $2 in
        h1 | h2c) echo "$GW_TOKEN" ;;
        *) echo "$GW_TLS_TOKEN" ;;
      esac ;;
    portcullis-baseline)
      case $2 in
        h1 | h2c) echo "$BL_TOKEN" ;;
        *) echo "$BL_TLS_TOKEN" ;;
      esac ;;
  esac
}
cpu_pids_of() { # $1 config, $2 proto
  case $1 in
    direct) echo "" ;;
    nginx) echo "${PIDS[nginx]}" ;;
    haproxy-jwt) echo "${PIDS[haproxy]}" ;;
    portcullis)
      case $2 in
        h1 | h2c) echo "${PIDS[portcullis]}" ;;
        *) echo "${PIDS[portcullis-tls]}" ;;
      esac ;;
    portcullis-baseline)
      case $2 in
        h1 | h2c) echo "${PIDS[portcullis-baseline]}" ;;
        *) echo "${PIDS[portcullis-baseline-tls]}" ;;
      esac ;;
    portcullis-distinct-tokens)
      case $2 in
        h1 | h2c) echo "${PIDS[portcullis-nc]}" ;;
        *) echo "${PIDS[portcullis-nc-tls]}" ;;
      esac ;;
    portcullis-lifecycle) echo "${PIDS[portcullis-lc]}" ;;
  esac
}
tokens_file() { # $1 proto
  if [[ $1 == h1 ]]; then echo "$KEY_DIR/tokens-plain.txt"; else echo "$KEY_DIR/tokens-tls.txt"; fi
}
runs_on() { # $1 config, $2 proto: whether that cell exists
  case $1 in
    portcullis-distinct-tokens) [[ $2 == h1 || $2 == h1-tls ]] ;;
    portcullis-lifecycle) [[ $2 == h1 || $2 == h2c ]] ;;
    *) true ;;
  esac
}
curl_proto() { # $1 proto
  case $1 in
    h1) echo --http1.1 ;;
    h2c) echo --http2-prior-knowledge ;;
    h1-tls) echo --http1.1 ;;
    h2-tls) echo --http2 ;;
  esac
}

# ---------------------------------------------------------------- correctness checks
code() { curl -s -o /dev/null -w '%{http_code}' --max-time 3 --cacert "$CERT" "$@" || true; }
log "correctness checks"
for proto in $PROTOS; do
  for c in $CONFIGS; do
    runs_on "$c" "$proto" || continue
    url=$(url_of "$c" "$proto")
    token=$(token_of "$c" "$proto")
    if [[ $c == portcullis-distinct-tokens ]]; then
      token=$(tail -n 1 "$(tokens_file "$proto")")
    elif [[ $c == portcullis-lifecycle ]]; then
      token=$(login "http://127.0.0.1:$P_GW_LC") || die "login at portcullis-lifecycle failed"
    fi
    auth=()
    [[ -z $token ]] || auth=(-H "Authorization: Bearer $token")
    got=$(code "$(curl_proto "$proto")" "${auth[@]}" "$url")
    [[ $got == 200 ]] || die "$c $proto: $url answered $got, not 200"
    if [[ -n $token ]]; then
      got=$(code "$(curl_proto "$proto")" "$url")
      [[ $got == 401 ]] || die "$c $proto: no token answered $got, not 401"
      got=$(code "$(curl_proto "$proto")" -H "Authorization: Bearer $(tr -d '\n' <"$KEY_DIR/bad-sig.jwt")" "$url")
      [[ $got == 401 ]] || die "$c $proto: a token with a bad signature answered $got, not 401"
    fi
  done
done
for t in tampered wrong-aud expired not-yet-valid hs512; do
  got=$(code -H "Authorization: Bearer $(tr -d '\n' <"$KEY_DIR/$t.jwt")" "$(url_of haproxy-jwt h1)")
  [[ $got == 401 ]] || die "haproxy-jwt accepted the $t token ($got)"
done
log "  every target answers 200 with its token and 401 without it or with a bad signature"

# ---------------------------------------------------------------- measurement
HZ=$(getconf CLK_TCK)
ticks_of() { # summed utime+stime of the pids
  local t=0 p s
  for p in "$@"; do
    s=$(sed 's/^.*) //' "/proc/$p/stat" 2>/dev/null) || continue
    # fields after the command: state=1 … utime=12 stime=13
    t=$((t + $(echo "$s" | awk '{print $12 + $13}')))
  done
  echo "$t"
}
lat_ms() { # "0.86ms" / "850.00us" / "1.2s" -> ms
  awk -v v="$1" 'BEGIN{ if (v ~ /us$/) {sub(/us$/,"",v); print v/1000} else if (v ~ /ms$/) {sub(/ms$/,"",v); print v+0} else if (v ~ /s$/) {sub(/s$/,"",v); print v*1000} else print "NaN" }'
}
log_percentiles() { # h2load --log-file → "p50_ms p99_ms" (nearest rank)
  python3 - "$1" <<'EOF'
import math, sys
with open(sys.argv[1]) as f:
    v = sorted(int(line.split("\t")[2]) for line in f if line.count("\t") >= 2)
rank = lambda q: v[max(0, math.ceil(q * len(v)) - 1)] / 1000
print(f"{rank(0.5):.3f} {rank(0.99):.3f}" if v else "NaN NaN")
EOF
}
printf 'config\tproto\tround\trps\tp50_ms\tp99_ms\trequests\tnon2xx\terrors\tproxy_cpu_pct\tclient_cpu_pct\tupstream_cpu_pct\tmachine_busy_pct\tupstream_conns\tupstream_reqs\n' >"$TSV"

# "accepts requests" of the upstream's stub_status (each read counts itself once in both).
upstream_counts() {
  curl -s --max-time 5 "http://127.0.0.1:$P_UP_STATUS/" | awk 'NR==3{print $1, $3}'
}

measure() { # $1 config, $2 proto, $3 round (0 = warm-up), $4 seconds
  local c=$1 proto=$2 r=$3 d=$4
  local url token raw=$OUT_DIR/raw/$1-$2-r$3.txt tf=$OUT_DIR/raw/.time hlog=$RUN_DIR/h2load.log
  url=$(url_of "$c" "$proto")
  token=$(token_of "$c" "$proto")
  local -a cmd hdr=()
  [[ -z $token ]] || hdr=(-H "Authorization: Bearer $token")
  case $c:$proto in
    portcullis-lifecycle:*)
      # `portcullis bench` logs every virtual user in before its window starts; the password
      # goes through the environment.
      cmd=(env PORTCULLIS_BENCH_PASSWORD="$BENCH_PASSWORD" "$BIN" bench --url "$url" --user bench
        --connections "$CONNS" --duration "${d}s" --json)
      [[ $proto == h1 ]] || cmd+=(--http2) ;;
    *:h1 | *:h1-tls)
      cmd=(wrk -t"$THREADS" -c"$CONNS" -d"${d}s" --latency)
      if [[ $c == portcullis-distinct-tokens ]]; then
        cmd+=(-s "$CONF_DIR/tokens.lua" "$url" -- "$(tokens_file "$proto")")
      else
        cmd+=("${hdr[@]}" "$url")
      fi ;;
    *)
      rm -f "$hlog"
      cmd=(h2load -t"$THREADS" -c"$CONNS" -m"$H2_STREAMS" -D "$d" --log-file="$hlog" "${hdr[@]}" "$url") ;;
  esac
  local pids p0 u0 s0 p1 u1 s1
  pids=$(cpu_pids_of "$c" "$proto")
  # shellcheck disable=SC2086 # pid lists split on purpose
  p0=$(ticks_of $pids)
  # shellcheck disable=SC2086
  u0=$(ticks_of ${PIDS[upstream]})
  s0=$(cpu_sample)
  local c0 c1
  c0=$(upstream_counts)
  local TIMEFORMAT='%R %U %S'
  { time timeout $((d + 30)) "${cmd[@]}" >"$raw" 2>&1 || true; } 2>"$tf"
  # shellcheck disable=SC2086
  p1=$(ticks_of $pids)
  # shellcheck disable=SC2086
  u1=$(ticks_of ${PIDS[upstream]})
  s1=$(cpu_sample)
  c1=$(upstream_counts)
  if [[ $r == 0 ]]; then
    rm -f "$hlog" "$raw"
    return 0
  fi
  local wall wu ws rps p50 p99 reqs non2xx errs
  read -r wall wu ws <"$tf"
  case $c:$proto in
    portcullis-lifecycle:*)
      # The 401s that send a virtual user to refresh are the lifecycle, not failures.
      read -r rps p50 p99 reqs non2xx errs < <(python3 "$BENCH_DIR/lifecycle-result.py" "$raw" 2>>"$LOG") ;;
    *:h1 | *:h1-tls)
      rps=$(awk '/^Requests\/sec:/{print $2}' "$raw")
      p50=$(lat_ms "$(awk '$1=="50%"{print $2}' "$raw")")
      p99=$(lat_ms "$(awk '$1=="99%"{print $2}' "$raw")")
      reqs=$(awk '/requests in/{print $1}' "$raw")
      non2xx=$(awk -F: '/Non-2xx or 3xx/{gsub(/ /,"",$2); print $2}' "$raw")
      errs=$(awk '/Socket errors/{gsub(/,/,""); print $4+$6+$8+$10}' "$raw") ;;
    *)
      rps=$(awk '/^finished in/{gsub(/,/,""); print $4}' "$raw")
      read -r p50 p99 < <(log_percentiles "$hlog")
      rm -f "$hlog"
      reqs=$(awk '/^requests:/{print $2}' "$raw")
      non2xx=$(awk '/^status codes:/{gsub(/,/,""); print $5+$7+$9}' "$raw")
      errs=$(awk '/^requests:/{gsub(/,/,""); print $10+$12+$14}' "$raw") ;;
  esac
  [[ -n $rps ]] || { log "WARN: no result for $c $proto round $r (see $raw)"; rps=NaN; }
  local cpu
  cpu=$(awk -v hz="$HZ" -v wall="$wall" -v wu="$wu" -v ws="$ws" -v p0="$p0" -v p1="$p1" \
    -v u0="$u0" -v u1="$u1" -v s0="$s0" -v s1="$s1" -v cpus="$(nproc)" 'BEGIN{
      split(s0, a, " "); split(s1, b, " "); tot = (b[1]-a[1]) + (b[2]-a[2]) + (b[3]-a[3]);
      busy = tot > 0 ? 100 * cpus * (b[1]-a[1]) / tot : 0;
      printf "%.0f\t%.0f\t%.0f\t%.0f", 100*(p1-p0)/hz/wall, 100*(wu+ws)/wall, 100*(u1-u0)/hz/wall, busy }')
  local conns
  # New upstream connections and upstream requests during the run, without the second read.
  conns=$(awk -v a="$c0" -v b="$c1" 'BEGIN{split(a, x, " "); split(b, y, " ");
    if (x[1] == "" || y[1] == "") { print "NaN\tNaN"; exit }
    printf "%d\t%d", y[1] - x[1] - 1, y[2] - x[2] - 1 }')
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$c" "$proto" "$r" "$rps" "$p50" "$p99" \
    "${reqs:-0}" "${non2xx:-0}" "${errs:-0}" "$cpu" "$conns" >>"$TSV"
  log "  $c $proto r$r: rps=$rps p50=${p50}ms p99=${p99}ms non2xx=${non2xx:-0} errors=${errs:-0} cpu(proxy/client/upstream/machine %)=$(echo "$cpu" | tr '\t' '/')"
}

if ((WARMUP > 0)); then
  log "warm-up: ${WARMUP}s per config and protocol"
  for proto in $PROTOS; do
    for c in $CONFIGS; do
      runs_on "$c" "$proto" && measure "$c" "$proto" 0 "$WARMUP"
    done
  done
fi
INCOMPLETE=0
for r in $(seq 1 "$ROUNDS"); do
  log "round $r/$ROUNDS"
  for proto in $PROTOS; do
    for c in $CONFIGS; do
      runs_on "$c" "$proto" || continue
      if ! time_left_for $((DURATION + 60)); then
        INCOMPLETE=1
        log "deadline MAX_TOTAL_S=$MAX_TOTAL_S reached: stopping early"
        break 3
      fi
      measure "$c" "$proto" "$r" "$DURATION"
    done
  done
done
log "stopping servers"
cleanup
trap cleanup EXIT

# ---------------------------------------------------------------- report
CPU_MODEL=$(awk -F: '/^model name/{sub(/^ +/, "", $2); print $2; exit}' /proc/cpuinfo)
[[ -n $CPU_MODEL ]] || CPU_MODEL=$(lscpu 2>/dev/null | awk -F: '/Model name/{sub(/^ +/, "", $2); print $2; exit}')
COMMAND=""
for v in ROUNDS DURATION CONNS THREADS H2_STREAMS WARMUP TOKENS; do
  COMMAND+="$v=${!v} "
done
((BASELINE == 0)) || COMMAND+="BASELINE_BIN=${BASELINE_BIN@Q} BASELINE_LABEL=${BASELINE_LABEL@Q} "
COMMAND+="bench/side-by-side.sh"
{
  printf 'date\t%s\n' "$(date -u '+%Y-%m-%d %H:%M UTC')"
  printf 'command\t%s\n' "$COMMAND"
  printf 'nproc\t%s\n' "$(nproc)"
  printf 'cpu\t%s\n' "${CPU_MODEL:-unknown}"
  printf 'memory\t%s\n' "$(awk '/^MemTotal/{printf "%.0f GiB", $2/1048576}' /proc/meminfo)"
  printf 'os\t%s\n' "$(awk -F= '/^PRETTY_NAME=/{gsub(/"/, "", $2); print $2}' /etc/os-release 2>/dev/null || uname -sr)"
  printf 'commit\t%s\n' "$(git -C "$REPO" describe --always --dirty 2>/dev/null || echo unknown)"
  printf 'versions\t%s\n' "$(nginx -v 2>&1 | sed 's/.*version: //'), $(haproxy -v | head -1 | cut -d' ' -f1-3), $(wrk -v 2>&1 | head -1 | cut -d' ' -f1-2), h2load $(h2load --version | awk '{print $NF; exit}')"
  printf 'pre_busy\t%s\n' "$PRE_BUSY"
  printf 'conns\t%s\n' "$CONNS"
  printf 'threads\t%s\n' "$THREADS"
  printf 'streams\t%s\n' "$H2_STREAMS"
  printf 'rounds\t%s\n' "$ROUNDS"
  printf 'duration\t%s\n' "$DURATION"
  printf 'tokens\t%s\n' "$TOKENS"
  printf 'workers\tnginx worker_processes %s, HAProxy nbthread %s, upstream nginx worker_processes %s, portcullis: server.workers = one single-threaded runtime per core\n' "$NGINX_WORKERS" "$HAPROXY_THREADS" "$UPSTREAM_WORKERS"
  printf 'incomplete\t%s\n' "$INCOMPLETE"
  if ((BASELINE)); then
    printf 'baseline\t%s\n' "$BASELINE_LABEL"
    printf 'baseline_bin\t%s\n' "$BASELINE_BIN"
  fi
} >"$OUT_DIR/meta.tsv"
REPORT_ARGS=("$OUT_DIR" --svg "$OUT_DIR/side-by-side.svg")
if [[ $UPDATE_DOCS == 1 ]]; then
  REPORT_ARGS+=(--benchmarks "$REPO/BENCHMARKS.md" --svg-copy "$REPO/bench/side-by-side.svg")
fi
python3 "$BENCH_DIR/side-by-side-report.py" "${REPORT_ARGS[@]}" >"$OUT_DIR/summary.md" ||
  die "side-by-side-report.py failed"
cat "$OUT_DIR/summary.md"
log "results: $OUT_DIR (results.tsv, summary.md, side-by-side.svg, raw/); elapsed $(elapsed)s"
[[ $UPDATE_DOCS == 1 ]] && log "updated BENCHMARKS.md and bench/side-by-side.svg"
exit 0
