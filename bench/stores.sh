#!/usr/bin/env bash
# stores.sh - proxied-request throughput with the embedded store beside the Redis store.
#
# The per-request check never waits on the store (a local deny list), so both should match
# within noise. Starts an nginx upstream (200 "ok"), a redis-server, and two portcullis
# instances (release build, plain HTTP, access log off) that differ only in [store]; logs in
# once on each; then runs interleaved wrk rounds (ROUNDS=3, DURATION=10, CONNS=64) and prints
# req/s and p99 per round and the medians. Needs nginx, redis-server, wrk, curl, python3 and
# target/release/portcullis.
set -euo pipefail
# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
: "${ROUNDS:=3}" "${DURATION:=10}" "${CONNS:=64}" "${BASE_PORT:=19180}"
P_UP=$BASE_PORT P_REDIS=$((BASE_PORT + 1)) P_EMB=$((BASE_PORT + 2)) P_RED=$((BASE_PORT + 4))

start_upstream "$P_UP"
redis-server --bind 127.0.0.1 --port "$P_REDIS" --save "" --appendonly yes --dir "$WORK" \
  >"$WORK/redis.log" 2>&1 &
PIDS+=($!)
wait_port "$P_REDIS"
gateway_files
gateway_conf embedded "$P_EMB" 'kind = "embedded"
path = "../data/sessions.db"'
gateway_conf redis "$P_RED" "kind = \"redis\"
url = \"redis://127.0.0.1:$P_REDIS/0\""
start_gateway embedded "$P_EMB"
start_gateway redis "$P_RED"
declare -A TOKEN PORT=([embedded]=$P_EMB [redis]=$P_RED) RPS P99
for name in embedded redis; do TOKEN[$name]=$(login "${PORT[$name]}"); done

echo "| round | store | req/s | p99 |"
echo "| --- | --- | --- | --- |"
for round in $(seq 1 "$ROUNDS"); do
  for name in embedded redis; do
    read -r rps p99 < <(wrk_run -t1 -c"$CONNS" -d"${DURATION}s" \
      -H "Authorization: Bearer ${TOKEN[$name]}" "http://127.0.0.1:${PORT[$name]}/")
    echo "| $round | $name | $rps | $p99 |"
    RPS[$name]+="$rps "
    P99[$name]+="$p99 "
  done
done
echo
echo "| store | median req/s | p99 per round |"
echo "| --- | --- | --- |"
for name in embedded redis; do
  echo "| $name | $(median <<<"${RPS[$name]}") | ${P99[$name]% } |"
done
