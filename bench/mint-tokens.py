#!/usr/bin/env python3
"""mint-tokens.py - distinct access tokens of one session, one per line.

Usage: BENCH_PASSWORD=... mint-tokens.py BASE_URL COUNT OUT [CA_FILE]

Logs in as user `bench` (the password comes from the environment, so that it is on no
command line), then refreshes COUNT - 1 times on one keep-alive connection: every refresh
brings a new access token (new jti and signature) for the same session. CA_FILE verifies an
https BASE_URL. Used by side-by-side.sh and cpu-breakdown.sh.
"""

import http.client
import json
import os
import ssl
import sys
import urllib.parse


def main():
    url, count, out = urllib.parse.urlsplit(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    if url.scheme == "https":
        ca = sys.argv[4] if len(sys.argv) > 4 else None
        conn = http.client.HTTPSConnection(
            url.hostname, url.port, timeout=10, context=ssl.create_default_context(cafile=ca)
        )
    else:
        conn = http.client.HTTPConnection(url.hostname, url.port, timeout=10)

    def token(form):
        conn.request("POST", "/api/oauth2/token", urllib.parse.urlencode(form),
                     {"content-type": "application/x-www-form-urlencoded"})
        reply = conn.getresponse()
        body = reply.read()
        if reply.status != 200:
            sys.exit(f"token endpoint answered {reply.status}")
        return json.loads(body)

    pair = token({"grant_type": "password", "username": "bench",
                  "password": os.environ["BENCH_PASSWORD"]})
    with open(out, "w") as f:
        for i in range(count):
            f.write(pair["access_token"] + "\n")
            if i + 1 < count:
                pair = token({"grant_type": "refresh_token",
                              "refresh_token": pair["refresh_token"]})


if __name__ == "__main__":
    main()
