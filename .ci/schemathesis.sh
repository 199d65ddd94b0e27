#!/usr/bin/env bash
# Contract and format checks against a live gateway, started from the debug binary that
# `cargo test` built (PORTCULLIS_BIN names another one):
#
#  1. schemathesis runs the token, logout and revoke operations of docs/openapi.json (examples,
#     coverage, fuzzing, and stateful chains along the document's links: refresh, revoke); a 5xx,
#     an undocumented status, content type or header, or a body that does not match the document
#     fails the run;
#  2. a scripted login, refresh, proxied call (to an upstream that is not there: 502), call
#     without a token, and logout with curl;
#  3. the admin /metrics scrape is checked with `promtool check metrics` when promtool is
#     installed, parsed with the Python prometheus_client parser in any case, and must hold every
#     family of SPEC §4.4 with its type and labels.
#
# Everything listens on, and talks to, 127.0.0.1 only. The gateway is stopped by its PID on
# exit. Secrets stay in the temporary folder and out of the output.
set -euo pipefail
cd "$(dirname "$0")/.."

BIN=${PORTCULLIS_BIN:-target/debug/portcullis}
DOC=docs/openapi.json
EXAMPLES=${SCHEMATHESIS_MAX_EXAMPLES:-50}
# Every response is checked against the document: no 5xx; status, content type, headers and body
# as documented; 405 with `Allow` for other methods; logout refuses missing or bad credentials.
# (Not `positive_data_acceptance`: a well-formed login with a wrong password is rightly a 400.
# Not `negative_data_rejection`: JSON bodies are read leniently, e.g. a known key holding an array
# counts as absent, which the document describes in words rather than in the schema.)
CHECKS=not_a_server_error,status_code_conformance,content_type_conformance
CHECKS+=,response_headers_conformance,response_schema_conformance,missing_required_header
CHECKS+=,unsupported_method,allow_header_conformance,ignored_auth

pip_install() {
    pip install -q "$@" || pip install -q --break-system-packages "$@"
}

# schemathesis 4 (its CLI differs from version 3's).
if ! python3 -c 'import sys, schemathesis; sys.exit(int(schemathesis.__version__.split(".")[0]) < 4)' \
    >/dev/null 2>&1 || ! command -v st >/dev/null 2>&1; then
    pip_install 'schemathesis>=4,<5'
fi
if ! python3 -c 'import prometheus_client' >/dev/null 2>&1; then
    pip_install prometheus-client
fi
if [[ -z ${PORTCULLIS_BIN:-} ]]; then
    # A no-op after `cargo test`; rebuilds a stale binary when the script runs on its own.
    cargo build --locked --quiet --bin portcullis
fi

tmp=$(mktemp -d)
gateway_pid=
cleanup() {
    if [[ -n $gateway_pid ]]; then
        kill "$gateway_pid" 2>/dev/null || true
        wait "$gateway_pid" 2>/dev/null || true
    fi
    rm -rf "$tmp"
}
trap cleanup EXIT

fail() {
    echo "schemathesis.sh: $*" >&2
    if [[ -f $tmp/gateway.log ]]; then
        echo "--- gateway log (last 20 lines)" >&2
        tail -n 20 "$tmp/gateway.log" >&2
    fi
    exit 1
}

# A certificate, a signing key and a users file from `init`; the user of the document's
# password-grant example joins the users `init` wrote, so that the example logs in for real.
"$BIN" init --dir "$tmp" >/dev/null
read -r user password < <(python3 - "$DOC" <<'EOF'
import json, sys
doc = json.load(open(sys.argv[1]))
body = doc["paths"]["/api/oauth2/token"]["post"]["requestBody"]["content"]
value = body["application/x-www-form-urlencoded"]["examples"]["password_seed"]["value"]
print(value["userName"], value["password"])
EOF
)
hash=$(printf '%s' "$password" | "$BIN" hash-password)
printf '\n[[users]]\nname = "%s"\npassword_hash = "%s"\nroles = ["user"]\n' "$user" "$hash" \
    >>"$tmp/config/users.toml"

# The starter configuration, adapted: ephemeral loopback ports, sessions in memory, JSON logs, a
# short lockout (schemathesis fails logins on purpose), and one route to a port where nothing
# listens, so that proxied calls exercise the authentication and upstream-error metrics.
cat >"$tmp/config/ci.toml" <<'EOF'
[server]
listen = "127.0.0.1:0"
tls_cert = "../certs/gateway.crt"
tls_key = "../certs/gateway.key"

[admin]
listen = "127.0.0.1:0"

[tokens]
signing_key = "../certs/signing.pem"

[store]
kind = "memory"

[login]
users_file = "users.toml"
max_failures = 8
window = "1m"
lockout = "1s"

[log]
format = "json"

[[routes]]
name = "api"
path_prefix = "/"
upstreams = ["http://127.0.0.1:1"]
auth = "required"
connect_timeout = "2s"
EOF
"$BIN" check -c "$tmp/config/ci.toml" >/dev/null || fail "the adapted configuration is refused"

"$BIN" serve -c "$tmp/config/ci.toml" >"$tmp/gateway.log" 2>&1 &
gateway_pid=$!

# The addresses the gateway bound, from its "portcullis ready" line.
gw= admin=
for _ in $(seq 100); do
    kill -0 "$gateway_pid" 2>/dev/null || fail "the gateway exited"
    if read -r gw admin < <(python3 - "$tmp/gateway.log" <<'EOF'
import json, sys
for line in open(sys.argv[1]):
    try:
        event = json.loads(line)
    except ValueError:
        continue
    if event.get("message") == "portcullis ready":
        print(event["listen"], event["admin"])
        break
else:
    sys.exit(1)
EOF
    ); then
        break
    fi
    sleep 0.1
done
[[ -n $gw ]] || fail "the gateway did not report its addresses"
for _ in $(seq 50); do
    [[ $(curl -s -o /dev/null -w '%{http_code}' "http://$admin/readyz") == 200 ]] && break
    sleep 0.1
done
[[ $(curl -s -o /dev/null -w '%{http_code}' "http://$admin/readyz") == 200 ]] \
    || fail "admin /readyz is not 200"
echo "== gateway ready on $gw (admin http://$admin)"

CA=$tmp/certs/gateway.crt
# POST a form to a gateway endpoint; prints the status, leaves the body in $tmp/body.
post() {
    local path=$1
    shift
    curl -sS --cacert "$CA" -o "$tmp/body" -D "$tmp/headers" -w '%{http_code}' "$gw$path" "$@"
}
json_field() {
    python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$tmp/body" "$1"
}
# Logs in, waiting out a lockout (429 + Retry-After) at most three times.
login() {
    local status
    for _ in 1 2 3; do
        status=$(post /api/oauth2/token -d grantType=Password --data-urlencode "userName=$user" \
            --data-urlencode "password=$password")
        if [[ $status == 429 ]]; then
            sleep "$(sed -n 's/^retry-after: *\([0-9]*\).*/\1/ip' "$tmp/headers")"
            continue
        fi
        [[ $status == 200 ]] || fail "login: $status $(cat "$tmp/body")"
        return 0
    done
    fail "login: still locked out"
}

# A session for schemathesis' logout calls: the first one succeeds, the later ones get 401.
login
access=$(json_field access_token)

echo "== schemathesis $(st --version 2>/dev/null | awk '{print $NF}') against $DOC"
timeout 600 st run "$DOC" \
    --url "$gw" \
    --tls-verify "$CA" \
    --include-path-regex '^/api/oauth2/(token|logout|revoke)$' \
    --checks "$CHECKS" \
    --max-examples "$EXAMPLES" \
    --workers 1 \
    --request-timeout 10 \
    --generation-database none \
    --header "Authorization: Bearer $access" \
    --output-sanitize true \
    --no-color ${SCHEMATHESIS_SEED:+--seed "$SCHEMATHESIS_SEED"} \
    || fail "schemathesis found responses that do not match $DOC"

echo "== scripted login, refresh, proxied calls, logout"
login
refresh=$(json_field refresh_token)
status=$(post /api/oauth2/token -d grant_type=refresh_token --data-urlencode "refresh_token=$refresh")
[[ $status == 200 ]] || fail "refresh: $status $(cat "$tmp/body")"
access=$(json_field access_token)
status=$(curl -sS --cacert "$CA" -o /dev/null -w '%{http_code}' "$gw/hello")
[[ $status == 401 ]] || fail "a call without a token: $status"
status=$(curl -sS --cacert "$CA" -o /dev/null -w '%{http_code}' \
    -H "Authorization: Bearer $access" "$gw/hello")
[[ $status == 502 ]] || fail "a call to the missing upstream: $status"
status=$(post /api/oauth2/logout -X POST -H "Authorization: Bearer $access")
[[ $status == 200 ]] || fail "logout: $status"
status=$(curl -sS --cacert "$CA" -o /dev/null -w '%{http_code}' \
    -H "Authorization: Bearer $access" "$gw/hello")
[[ $status == 401 ]] || fail "a call after logout: $status"

echo "== metrics format"
curl -sS -o "$tmp/metrics.txt" "http://$admin/metrics"
if command -v promtool >/dev/null 2>&1; then
    promtool check metrics <"$tmp/metrics.txt" || fail "promtool check metrics"
fi
python3 - "$tmp/metrics.txt" <<'EOF' || fail "the metrics scrape"
import sys

from prometheus_client.parser import text_string_to_metric_families

# SPEC §4.4: name, type, label names.
WANT = {
    "portcullis_requests_total": ("counter", {"route", "status"}),
    "portcullis_request_duration_seconds": ("histogram", {"route"}),
    "portcullis_auth_failures_total": ("counter", {"reason"}),
    "portcullis_tokens_issued_total": ("counter", {"grant"}),
    "portcullis_token_errors_total": ("counter", {"error"}),
    "portcullis_upstream_errors_total": ("counter", {"route", "kind"}),
    "portcullis_open_connections": ("gauge", set()),
    "portcullis_active_sessions": ("gauge", set()),
}

parsed = {}
for family in text_string_to_metric_families(open(sys.argv[1]).read()):
    # The parser names counter families without their `_total`.
    name = family.name + "_total" if family.type == "counter" else family.name
    parsed[name] = family

problems = []
for name, (kind, labels) in WANT.items():
    family = parsed.get(name)
    if family is None or not family.samples:
        problems.append(f"{name}: missing")
        continue
    if family.type != kind:
        problems.append(f"{name}: type {family.type}, want {kind}")
    for sample in family.samples:
        names = set(sample.labels) - {"le"}
        if names != labels:
            problems.append(f"{sample.name}: labels {sorted(names)}, want {sorted(labels)}")
            break
issued = parsed.get("portcullis_tokens_issued_total")
grants = {s.labels.get("grant") for s in issued.samples} if issued else set()
if not {"password", "refresh_token"} <= grants:
    problems.append(f"portcullis_tokens_issued_total: grants {sorted(grants, key=str)}")
for problem in problems:
    print(problem, file=sys.stderr)
sys.exit(1 if problems else 0)
EOF
echo "metrics: every SPEC §4.4 family present and well-formed"
echo "schemathesis.sh: ok"
