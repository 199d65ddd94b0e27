#!/usr/bin/env bash
# stores.sh - proxied-request throughput with the embedded store beside the Redis store.
#
# The per-request check never waits on the store (a local deny list), so both should match
# within noise. Starts an nginx upstream (200 "ok"), a redis-server, and two portcullis
# instances (release build, plain HTTP, access log off) that differ only in [store]; logs in
# once on each; then runs interleaved wrk rounds (ROUNDS=3, DURATION=10, CONNS=64) and prints
# the median req/s and p99 of each. Everything listens on 127.0.0.1 and is stopped by PID.
# Needs: nginx, redis-server, wrk, curl, python3, target/release/portcullis.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BIN=$REPO/target/release/portcullis
: "${ROUNDS:=3}" "${DURATION:=10}" "${CONNS:=64}" "${BASE_PORT:=19180}"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/portcullis-stores.XXXXXX")
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT
[[ -x $BIN ]] || { echo "no $BIN: cargo build --release" >&2; exit 1; }

P_UP=$BASE_PORT P_REDIS=$((BASE_PORT + 1)) P_EMB=$((BASE_PORT + 2)) P_RED=$((BASE_PORT + 4))
wait_port() {
  local _
  for _ in $(seq 1 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.1
  done
  echo "nothing listens on $1" >&2
  exit 1
}

mkdir -p "$WORK/tmp"
cat >"$WORK/upstream.conf" <<EOF
worker_processes 1;
daemon off;
pid $WORK/upstream.pid;
error_log $WORK/upstream-error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 1000000;
  client_body_temp_path $WORK/tmp; proxy_temp_path $WORK/tmp; fastcgi_temp_path $WORK/tmp;
  uwsgi_temp_path $WORK/tmp; scgi_temp_path $WORK/tmp;
  server { listen 127.0.0.1:$P_UP; location / { return 200 "ok\n"; } }
}
EOF
nginx -p "$WORK" -e "$WORK/upstream-start.log" -c "$WORK/upstream.conf" &
PIDS+=($!)
redis-server --bind 127.0.0.1 --port "$P_REDIS" --save "" --appendonly yes --dir "$WORK" \
  >"$WORK/redis.log" 2>&1 &
PIDS+=($!)
wait_port "$P_UP"
wait_port "$P_REDIS"

"$BIN" init --dir "$WORK/gw" >/dev/null
PASSWORD=bench-$RANDOM-$RANDOM
HASH=$(printf '%s' "$PASSWORD" | "$BIN" hash-password)
printf '[[users]]\nname = "bench"\npassword_hash = "%s"\n' "$HASH" >"$WORK/gw/config/users.toml"
chmod 600 "$WORK/gw/config/users.toml"
conf() { # $1 name, $2 port, $3 store lines
  cat >"$WORK/gw/config/$1.toml" <<EOF
[server]
listen = "127.0.0.1:$2"
tls = false
[admin]
listen = "127.0.0.1:$(($2 + 1))"
[tokens]
signing_key = "../certs/signing.pem"
access_ttl = "12h"
[store]
$3
[login]
users_file = "users.toml"
[log]
format = "json"
access_log = false
[[routes]]
name = "upstream"
path_prefix = "/"
upstreams = ["http://127.0.0.1:$P_UP"]
EOF
}
conf embedded "$P_EMB" "kind = \"embedded\"
path = \"../data/sessions.db\""
conf redis "$P_RED" "kind = \"redis\"
url = \"redis://127.0.0.1:$P_REDIS/0\""
for name in embedded redis; do
  "$BIN" serve -c "$WORK/gw/config/$name.toml" 2>>"$WORK/$name.log" &
  PIDS+=($!)
done
wait_port "$P_EMB"
wait_port "$P_RED"
for _ in $(seq 1 100); do
  curl -fs "http://127.0.0.1:$((P_RED + 1))/readyz" >/dev/null && break
  sleep 0.1
done

login() {
  printf 'grant_type=password&username=bench&password=%s' "$PASSWORD" |
    curl -fsS --data-binary @- -H 'content-type: application/x-www-form-urlencoded' \
      "http://127.0.0.1:$1/api/oauth2/token" |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["access_token"])'
}
declare -A TOKEN PORT=([embedded]=$P_EMB [redis]=$P_RED)
for name in embedded redis; do TOKEN[$name]=$(login "${PORT[$name]}"); done

echo "| round | store | req/s | p99 |"
echo "| --- | --- | --- | --- |"
declare -A RPS P99
for round in $(seq 1 "$ROUNDS"); do
  for name in embedded redis; do
    out=$(wrk -t1 -c"$CONNS" -d"${DURATION}s" --latency \
      -H "Authorization: Bearer ${TOKEN[$name]}" "http://127.0.0.1:${PORT[$name]}/")
    rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
    p99=$(awk '$1 == "99%" {print $2}' <<<"$out")
    grep -q "Non-2xx" <<<"$out" && { echo "$name: non-2xx answers" >&2; exit 1; }
    echo "| $round | $name | $rps | $p99 |"
    RPS[$name]+="$rps "
    P99[$name]+="$p99 "
  done
done
median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
echo
echo "| store | median req/s | p99 per round |"
echo "| --- | --- | --- |"
for name in embedded redis; do
  echo "| $name | $(median <<<"${RPS[$name]}") | $(tr ' ' '\n' <<<"${P99[$name]}" | grep -v '^$' | paste -sd' ') |"
done
