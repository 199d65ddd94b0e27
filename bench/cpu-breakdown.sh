#!/usr/bin/env bash
# cpu-breakdown.sh - where each proxy's CPU per request goes: the kernel, the RS512 check,
# the token's decoding, the allocator and memory copies, and the rest of user space.
#
# Runs side-by-side.sh's HTTP/1.1 load (wrk, 64 connections, one client thread) against, in
# turn: nginx as a plain proxy (worker_processes auto, upstream keepalive 128), portcullis
# with one token and its verified-token cache, portcullis with the cache off and one token,
# and portcullis with the cache off and a different token on every request (TOKENS, minted
# by refresh grants). During each measurement `perf record -e cpu-clock` samples the proxy's
# processes; the CPU per request comes from /proc (utime + stime over the whole measurement)
# and bench/cpu-breakdown.py splits it by the samples' shares. Rounds are interleaved.
#
# Figures are µs of CPU per request, split by where perf's timer samples land. On a VM the
# timer fires only when interrupts are enabled, so time with them disabled (the scheduler,
# wake-ups) shows up at the next point that re-enables them, still in the kernel.
#
# Usage: bench/cpu-breakdown.sh
#   ROUNDS=2 DURATION=8 (s per measurement) TOKENS=1000 CONNS=64
#   PORTCULLIS_BIN=path   a build with symbols (default: built into target/symbols with
#                         strip = false and debug = 1)
# Needs nginx, wrk, perf and python3. Listens on 127.0.0.1 only.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
: "${ROUNDS:=2}" "${DURATION:=8}" "${TOKENS:=1000}" "${CONNS:=64}"
for tool in nginx wrk perf python3 curl; do
  command -v "$tool" >/dev/null || { echo "cpu-breakdown.sh needs $tool" >&2; exit 1; }
done
((DURATION >= 4)) || { echo "DURATION must be at least 4 s" >&2; exit 1; }
SYMBOLS=1
# shellcheck source=bench/lib.sh
source "$REPO/bench/lib.sh"

P_UP=19580
P_NGINX=19582
P_GW=19584 # cached; admin +1
P_NC=19586 # cache off; admin +1
start_upstream "$P_UP"
gateway_files

gateway_conf cached "$P_GW" 'kind = "memory"' "" "verified_cache = 10000"
gateway_conf nocache "$P_NC" 'kind = "memory"' "" "verified_cache = 0"
start_gateway cached "$P_GW"
PID_CACHED=${PIDS[-1]}
start_gateway nocache "$P_NC"
PID_NOCACHE=${PIDS[-1]}

cat >"$WORK/nginx.conf" <<EOF
worker_processes auto;
daemon off;
pid $WORK/nginx.pid;
error_log $WORK/nginx-error.log warn;
events { worker_connections 8192; }
http {
$(nginx_common)
  upstream up { server 127.0.0.1:$P_UP; keepalive 128; keepalive_requests 1000000; }
  server {
    listen 127.0.0.1:$P_NGINX;
    location / { proxy_pass http://up; proxy_http_version 1.1; proxy_set_header Connection ""; }
  }
}
EOF
nginx -p "$WORK" -e "$WORK/nginx-start.log" -c "$WORK/nginx.conf" &
PID_NGINX=$!
PIDS+=("$PID_NGINX")
wait_port "$P_NGINX"
sleep 0.5
NGINX_WORKERS=$(pgrep -P "$PID_NGINX" | paste -sd, -)

BENCH_PASSWORD=$PASSWORD python3 "$REPO/bench/mint-tokens.py" "http://127.0.0.1:$P_NC" "$TOKENS" \
  "$WORK/tokens.txt"
TOKEN=$(head -1 "$WORK/tokens.txt")

cpu_ticks() { # comma-separated pids: their utime + stime, in clock ticks
  local p total=0
  for p in ${1//,/ }; do total=$((total + $(awk '{print $14 + $15}' "/proc/$p/stat"))); done
  echo "$total"
}

TICK=$(getconf CLK_TCK)
RESULTS=$WORK/results.txt
for round in $(seq 1 "$ROUNDS"); do
  for config in nginx portcullis portcullis-cache-off portcullis-distinct-tokens; do
    load=(-H "authorization: Bearer $TOKEN")
    script=()
    case $config in
      nginx) pids=$NGINX_WORKERS port=$P_NGINX load=() ;;
      portcullis) pids=$PID_CACHED port=$P_GW ;;
      portcullis-cache-off) pids=$PID_NOCACHE port=$P_NC ;;
      portcullis-distinct-tokens)
        pids=$PID_NOCACHE port=$P_NC load=(-s "$REPO/bench/tokens.lua") script=(-- "$WORK/tokens.txt") ;;
    esac
    before=$(cpu_ticks "$pids")
    wrk -t1 -c"$CONNS" -d"${DURATION}s" "${load[@]}" "http://127.0.0.1:$port/" "${script[@]}" \
      >"$WORK/wrk.out" &
    wrk_pid=$!
    sleep 1
    perf record -q -e cpu-clock -F 1999 -p "$pids" -o "$WORK/$config.$round.data" \
      -- sleep $((DURATION - 2)) >/dev/null 2>&1
    wait "$wrk_pid"
    after=$(cpu_ticks "$pids")
    if grep -q "Non-2xx" "$WORK/wrk.out"; then
      echo "$config: non-2xx answers" >&2
      cat "$WORK/wrk.out" >&2
      exit 1
    fi
    requests=$(awk '/requests in/ {print $1}' "$WORK/wrk.out")
    rps=$(awk '/Requests\/sec/ {print $2}' "$WORK/wrk.out")
    us=$(awk -v t=$((after - before)) -v r="$requests" -v hz="$TICK" \
      'BEGIN {printf "%.1f", t / hz * 1e6 / r}')
    echo "$round $config $rps $us" | tee -a "$RESULTS" >&2
  done
done

printf '\n%s, %s rounds of %s s, wrk -t1 -c%s, HTTP/1.1:\n\n' "$(date -u '+%F %H:%M UTC')" \
  "$ROUNDS" "$DURATION" "$CONNS"
python3 "$REPO/bench/cpu-breakdown.py" "$RESULTS" "$WORK"
