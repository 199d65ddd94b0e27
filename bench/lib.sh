# shellcheck shell=bash
# lib.sh - shared set-up of bench/stores.sh, login-storm.sh, instructions.sh and
# cpu-breakdown.sh (sourced, not run).
#
# Provides: BIN (PORTCULLIS_BIN, else the release build; SYMBOLS=1 builds one with symbols),
# WORK (a scratch folder removed at exit), PIDS (stopped at exit), wait_port PORT [TENTHS],
# nginx_common (the http lines every nginx here shares), start_upstream PORT (nginx answering
# 200 "ok"), gateway_files (init + user "bench" with a random PASSWORD), gateway_conf NAME PORT
# STORE_LINES [SERVER_LINES [TOKENS_LINES]], start_gateway NAME PORT, login PORT,
# wrk_run ARGS… (prints "req/s p99").
# Everything listens on 127.0.0.1.

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# SYMBOLS=1, set by the sourcing script (perf, callgrind): without PORTCULLIS_BIN, first build
# a release binary that keeps its symbols, into target/symbols.
if [[ -z ${PORTCULLIS_BIN:-} && ${SYMBOLS:-0} == 1 ]]; then
  echo "building portcullis with symbols into target/symbols" >&2
  (cd "$REPO" && CARGO_PROFILE_RELEASE_STRIP=false CARGO_PROFILE_RELEASE_DEBUG=1 \
    CARGO_TARGET_DIR="$REPO/target/symbols" cargo build --release --quiet)
  PORTCULLIS_BIN=$REPO/target/symbols/release/portcullis
fi
BIN=${PORTCULLIS_BIN:-$REPO/target/release/portcullis}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/portcullis-bench.XXXXXX")
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT
[[ -x $BIN ]] || { echo "no $BIN: cargo build --release" >&2; exit 1; }

wait_port() { # $1 port, $2 tenths of a second to wait (default 100)
  local _
  for _ in $(seq 1 "${2:-100}"); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.1
  done
  echo "nothing listens on $1" >&2
  exit 1
}

nginx_common() { # the http {} lines every nginx these scripts start shares
  cat <<EOF
  access_log off;
  keepalive_requests 1000000;
  client_body_temp_path $WORK/tmp; proxy_temp_path $WORK/tmp; fastcgi_temp_path $WORK/tmp;
  uwsgi_temp_path $WORK/tmp; scgi_temp_path $WORK/tmp;
EOF
}

start_upstream() { # $1 port
  mkdir -p "$WORK/tmp"
  cat >"$WORK/upstream.conf" <<EOF
worker_processes 1;
daemon off;
pid $WORK/upstream.pid;
error_log $WORK/upstream-error.log warn;
events { worker_connections 4096; }
http {
$(nginx_common)
  server { listen 127.0.0.1:$1; location / { return 200 "ok\n"; } }
}
EOF
  nginx -p "$WORK" -e "$WORK/upstream-start.log" -c "$WORK/upstream.conf" &
  PIDS+=($!)
  wait_port "$1"
}

gateway_files() {
  "$BIN" init --dir "$WORK/gw" >/dev/null
  PASSWORD=bench-$RANDOM-$RANDOM
  local hash
  hash=$(printf '%s' "$PASSWORD" | "$BIN" hash-password)
  printf '[[users]]\nname = "bench"\npassword_hash = "%s"\n' "$hash" >"$WORK/gw/config/users.toml"
  chmod 600 "$WORK/gw/config/users.toml"
}

# $1 name, $2 port, $3 [store] lines; optional: $4 [server] lines (default `tls = false`),
# $5 more [tokens] lines. Routes everything to $P_UP, token required.
gateway_conf() {
  cat >"$WORK/gw/config/$1.toml" <<EOF
[server]
listen = "127.0.0.1:$2"
${4:-tls = false}
tls_cert = "../certs/gateway.crt"
tls_key = "../certs/gateway.key"
[admin]
listen = "127.0.0.1:$(($2 + 1))"
[tokens]
signing_key = "../certs/signing.pem"
access_ttl = "12h"
${5:-}
[store]
$3
[login]
users_file = "users.toml"
max_failures = 1000000
[log]
format = "json"
access_log = false
[[routes]]
name = "upstream"
path_prefix = "/"
upstreams = ["http://127.0.0.1:$P_UP"]
auth = "required"
EOF
}

start_gateway() { # $1 name, $2 port; waits for /readyz
  "$BIN" serve -c "$WORK/gw/config/$1.toml" 2>>"$WORK/$1.log" &
  PIDS+=($!)
  wait_port "$2"
  local _
  for _ in $(seq 1 100); do
    curl -fs "http://127.0.0.1:$(($2 + 1))/readyz" >/dev/null && return 0
    sleep 0.1
  done
  echo "$1 never became ready" >&2
  exit 1
}

login() { # $1 port; prints an access token (the password goes on stdin, not a command line)
  printf 'grant_type=password&username=bench&password=%s' "$PASSWORD" |
    curl -fsS --data-binary @- -H 'content-type: application/x-www-form-urlencoded' \
      "http://127.0.0.1:$1/api/oauth2/token" |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["access_token"])'
}

wrk_run() { # wrk arguments; prints "req/s p99"; fails on non-2xx answers
  local out
  out=$(wrk --latency "$@")
  if grep -q "Non-2xx" <<<"$out"; then
    echo "non-2xx answers: $out" >&2
    exit 1
  fi
  printf '%s %s\n' "$(awk '/Requests\/sec/ {print $2}' <<<"$out")" "$(awk '$1 == "99%" {print $2}' <<<"$out")"
}

median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
