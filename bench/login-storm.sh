#!/usr/bin/env bash
# login-storm.sh - proxied-request latency while a login storm saturates password hashing.
#
# One portcullis instance (release build, plain HTTP, memory store, access log off) in front of
# an nginx upstream. Quiet: wrk with a valid token on the proxied route (CONNS=64, DURATION=10).
# Storm: the same, while a second wrk POSTs correct logins as fast as STORM_CONNS=16 connections
# can (argon2id, m=19456 KiB, t=2: the hashing pool is busy all the time). They all come from one
# address, which may have 16 logins in flight: more connections would only add logins refused at
# once with 429 (as a full hashing queue answers 503; both are counted as refused). Interleaved
# for ROUNDS=3; prints the proxied p99 of each, and the login rate. Ends with the gateway's
# resident memory after all the logins (VmRSS, and the peak VmHWM) beside the issue 13 bound of
# 64 MiB + hashing threads × m_cost (19 MiB each; the pool has one thread per two cores).
# Needs nginx, wrk, curl, python3 and target/release/portcullis.
set -euo pipefail
# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
: "${ROUNDS:=3}" "${DURATION:=10}" "${CONNS:=64}" "${STORM_CONNS:=16}" "${BASE_PORT:=19190}"
P_UP=$BASE_PORT P_GW=$((BASE_PORT + 2))

start_upstream "$P_UP"
gateway_files
gateway_conf gw "$P_GW" 'kind = "memory"'
start_gateway gw "$P_GW"
GW_PID=${PIDS[-1]}
TOKEN=$(login "$P_GW")
cat >"$WORK/login.lua" <<LUA
wrk.method = "POST"
wrk.body = "grant_type=password&username=bench&password=$PASSWORD"
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
done = function(summary, latency, requests)
  io.write(string.format("logins %d non2xx %d\n", summary.requests, summary.errors.status))
end
LUA

proxied() { wrk_run -t1 -c"$CONNS" -d"${DURATION}s" -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$P_GW/"; }
total=0
echo "| round | load | proxied req/s | proxied p99 | logins/s (refused: 429 or 503) |"
echo "| --- | --- | --- | --- | --- |"
for round in $(seq 1 "$ROUNDS"); do
  read -r rps p99 < <(proxied)
  echo "| $round | quiet | $rps | $p99 | - |"
  wrk -t1 -c"$STORM_CONNS" -d"$((DURATION + 2))s" -s "$WORK/login.lua" \
    "http://127.0.0.1:$P_GW/api/oauth2/token" >"$WORK/storm.out" &
  storm=$!
  sleep 1
  read -r rps p99 < <(proxied)
  wait "$storm"
  read -r _ logins _ rejected < <(grep '^logins' "$WORK/storm.out")
  echo "| $round | login storm | $rps | $p99 | $((logins / (DURATION + 2))) ($rejected) |"
  total=$((total + logins - rejected))
done
kib() { awk -v k="$1" '$1 == k":" { print $2 }' "/proc/$GW_PID/status"; }
threads=$(( $(nproc) / 2 > 0 ? $(nproc) / 2 : 1 ))
echo
echo "After $total logins: VmRSS $(( $(kib VmRSS) / 1024 )) MiB, peak (VmHWM) $(( $(kib VmHWM) / 1024 )) MiB;" \
  "bound 64 MiB + $threads × 19 MiB = $((64 + threads * 19)) MiB"
