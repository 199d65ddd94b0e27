#!/usr/bin/env bash
# instructions.sh - user-space instructions per proxied request, counted by callgrind, for
# portcullis (one token and the cached check; then the cache off, so that every request pays
# the RS512 check) beside nginx as a plain proxy and HAProxy + jwt_verify (RS512, no cache).
#
# Unlike req/s on this shared 2-core machine (±5-20 % between runs), instruction counts are
# exact and repeat to within a fraction of a per cent, so they show small changes and where
# the work goes. They do not count the kernel (syscalls, loopback TCP), cache misses or
# stalls: a budget of the user-space work, not a timing.
#
# Each server runs alone under `valgrind --tool=callgrind` with one worker (nginx:
# worker_processes 1, master_process off; HAProxy: nbthread 1; portcullis: server.workers = 1)
# behind one h2load connection: WARMUP requests, the counters zeroed, REQUESTS requests, a
# dump. So start-up, the TLS handshake, the login and the first connections to the upstream
# fall outside what is counted. The upstream (nginx answering 200 "ok") runs natively.
#
# Prints, per server and protocol, the instructions per request and the largest components
# (the crate a function's source belongs to, or its object file; bench/callgrind-by-crate.py).
#
# Usage: bench/instructions.sh
#   REQUESTS=2000 WARMUP=200 PROTOS="h1 h2c h1-tls" TOP=12
#   PORTCULLIS_BIN=path   a build with symbols (default: built into target/symbols with
#                         strip = false and debug = 1)
#   CONFIGS="portcullis portcullis-cache-off nginx haproxy-jwt"
#   KEEP=dir              keep the dumps there (callgrind_annotate DIR/portcullis-h1.callgrind)
# Needs valgrind, h2load, nginx, haproxy (for haproxy-jwt) and python3 with PyJWT and
# cryptography (bench/gen-jwt.py, for HAProxy's token).
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
: "${REQUESTS:=2000}" "${WARMUP:=200}" "${PROTOS:=h1 h2c h1-tls}" "${TOP:=12}"
: "${CONFIGS:=portcullis portcullis-cache-off nginx haproxy-jwt}"
for tool in valgrind callgrind_control h2load nginx python3; do
  command -v "$tool" >/dev/null || { echo "instructions.sh needs $tool" >&2; exit 1; }
done
SYMBOLS=1
# shellcheck source=bench/lib.sh
source "$REPO/bench/lib.sh"
# shellcheck source=bench/haproxy-jwt.sh
source "$REPO/bench/haproxy-jwt.sh"

P_UP=19280
P_GW=19290      # plain (h1, h2c); admin +1
P_GW_TLS=19292  # TLS; admin +1
P_NGINX=19294   # h1 +0, h2c +1, TLS +2
P_HAPROXY=19297 # h1 +0, h2c +1, TLS +2
start_upstream "$P_UP"
gateway_files
CERT=$WORK/gw/certs/gateway.crt
TLS_KEY=$WORK/gw/certs/gateway.key

# Under valgrind, start-up takes seconds: wait up to 60 s for a port.
wait_slow() { wait_port "$1" 600; }

# $1 label, $2 pid, $3 URL, $4 protocol; the rest: h2load arguments. Prints the table.
count() {
  local label=$1 pid=$2 url=$3 proto=$4
  shift 4
  local args=(-c1 -m1 "$@")
  [[ $proto == h2c ]] || args+=(--h1)
  h2load -n "$WARMUP" "${args[@]}" "$url" >/dev/null
  callgrind_control -z "$pid" >/dev/null 2>&1
  local out
  out=$(h2load -n "$REQUESTS" "${args[@]}" "$url")
  if ! grep -q "status codes: $REQUESTS 2xx" <<<"$out"; then
    echo "$label $proto: not every request answered 2xx:" >&2
    grep -E "requests:|status codes:" <<<"$out" >&2
    exit 1
  fi
  # Only this dump left: the previous ones were taken, an earlier process's exit dump goes.
  rm -f "$WORK/cg.$label" "$WORK/cg.$label".*
  callgrind_control -d "$label-$proto" "$pid" >/dev/null 2>&1
  local dump
  dump=$(find "$WORK" -maxdepth 1 -name "cg.$label.*")
  printf '\n## %s, %s: instructions per request\n' "$label" "$proto"
  python3 "$REPO/bench/callgrind-by-crate.py" "$dump" "$REQUESTS" "$TOP" | column -t -s $'\t'
  if [[ -n ${KEEP:-} ]]; then
    mkdir -p "$KEEP" && mv "$dump" "$KEEP/$label-$proto.callgrind"
  else
    rm -f "$dump"
  fi
}

callgrind() { # $1 label; the rest: the command
  local label=$1
  shift
  valgrind --tool=callgrind --callgrind-out-file="$WORK/cg.$label" "$@" 2>>"$WORK/$label.valgrind.log" &
  PIDS+=($!)
  LAST=$!
}

stop() { # $1 pid
  kill "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
}

# $1 label, $2 pid, $3 port of HTTP/1.1 (h2c on +1, TLS on +2); the rest: h2load arguments.
# Counts each protocol of PROTOS.
count_each() {
  local label=$1 pid=$2 port=$3 proto url
  shift 3
  for proto in h1 h2c h1-tls; do
    has "$proto" || continue
    case $proto in
      h1) url=http://127.0.0.1:$port/ ;;
      h2c) url=http://127.0.0.1:$((port + 1))/ ;;
      h1-tls) url=https://127.0.0.1:$((port + 2))/ ;;
    esac
    count "$label" "$pid" "$url" "$proto" "$@"
  done
}

want() { [[ " $CONFIGS " == *" $1 "* ]]; }
has() { [[ " $PROTOS " == *" $1 "* ]]; }

portcullis_conf() { # $1 name, $2 port, $3 tls, $4 verified_cache
  gateway_conf "$1" "$2" 'kind = "memory"' "$(printf 'tls = %s\nhttp2 = true\nworkers = 1' "$3")" \
    "verified_cache = $4"
}

portcullis() { # $1 label, $2 verified_cache
  local label=$1 cache=$2 token
  if has h1 || has h2c; then
    portcullis_conf "$label" "$P_GW" false "$cache"
    callgrind "$label" "$BIN" serve -c "$WORK/gw/config/$label.toml"
    local pid=$LAST
    wait_slow $((P_GW + 1))
    token=$(login "$P_GW")
    for proto in h1 h2c; do
      has "$proto" || continue
      count "$label" "$pid" "http://127.0.0.1:$P_GW/" "$proto" -H "authorization: Bearer $token"
    done
    stop "$pid"
  fi
  if has h1-tls; then
    portcullis_conf "$label-tls" "$P_GW_TLS" true "$cache"
    callgrind "$label" "$BIN" serve -c "$WORK/gw/config/$label-tls.toml"
    local pid=$LAST
    wait_slow $((P_GW_TLS + 1))
    token=$(printf 'grant_type=password&username=bench&password=%s' "$PASSWORD" |
      curl -fsS --cacert "$CERT" --data-binary @- \
        -H 'content-type: application/x-www-form-urlencoded' \
        "https://127.0.0.1:$P_GW_TLS/api/oauth2/token" |
      python3 -c 'import json, sys; print(json.load(sys.stdin)["access_token"])')
    count "$label" "$pid" "https://127.0.0.1:$P_GW_TLS/" h1-tls -H "authorization: Bearer $token"
    stop "$pid"
  fi
}

if want portcullis; then portcullis portcullis 10000; fi
if want portcullis-cache-off; then portcullis portcullis-cache-off 0; fi

if want nginx; then
  cat >"$WORK/nginx.conf" <<EOF
worker_processes 1;
master_process off;
daemon off;
pid $WORK/nginx.pid;
error_log $WORK/nginx-error.log warn;
events { worker_connections 1024; }
http {
$(nginx_common)
  ssl_certificate $CERT;
  ssl_certificate_key $TLS_KEY;
  upstream up { server 127.0.0.1:$P_UP; keepalive 16; }
  server {
    listen 127.0.0.1:$P_NGINX;
    listen 127.0.0.1:$((P_NGINX + 1)) http2;
    listen 127.0.0.1:$((P_NGINX + 2)) ssl http2;
    location / { proxy_pass http://up; proxy_http_version 1.1; proxy_set_header Connection ""; }
  }
}
EOF
  callgrind nginx nginx -p "$WORK" -e "$WORK/nginx-start.log" -c "$WORK/nginx.conf"
  pid=$LAST
  wait_slow "$P_NGINX"
  count_each nginx "$pid" "$P_NGINX"
  stop "$pid"
fi

if want haproxy-jwt; then
  command -v haproxy >/dev/null || { echo "instructions.sh needs haproxy" >&2; exit 1; }
  mkdir -p "$WORK/keys"
  python3 "$REPO/bench/gen-jwt.py" "$WORK/keys" >/dev/null
  cat "$CERT" "$TLS_KEY" >"$WORK/haproxy.pem"
  # side-by-side.sh's HAProxy column, on one thread.
  haproxy_jwt_cfg 1 "$P_HAPROXY" "$WORK/haproxy.pem" "$WORK/keys/public.pem" "$P_UP" \
    >"$WORK/haproxy.cfg"
  token=$(tr -d '\n' <"$WORK/keys/token.jwt")
  callgrind haproxy-jwt haproxy -db -f "$WORK/haproxy.cfg"
  pid=$LAST
  wait_slow "$P_HAPROXY"
  count_each haproxy-jwt "$pid" "$P_HAPROXY" -H "authorization: Bearer $token"
  stop "$pid"
fi
