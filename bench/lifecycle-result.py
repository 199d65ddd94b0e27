#!/usr/bin/env python3
"""The figures of one `portcullis bench --json` run, for side-by-side.sh's results table.

    python3 bench/lifecycle-result.py RAW_OUTPUT

Prints `rps p50_ms p99_ms requests bad errors` on one line, where `bad` counts answers other
than 200 and the 401s that send a virtual user to refresh; the logins and refreshes go to
stderr (the run's log).
"""

import json
import sys

text = open(sys.argv[1]).read()
try:
    start = text.index("{")
    r = json.loads(text[start:text.index("\n", start)])
except ValueError:
    print("NaN NaN NaN 0 0 1")
    sys.exit()
bad = sum(n for code, n in r["status"].items() if code not in ("200", "401"))
latency = r["latency_ms"]
print(r["throughput_rps"], latency["p50"], latency["p99"], r["requests"], bad, r["errors"])
print(f"portcullis bench: {r['logins']} logins, {r['refreshes']} refreshes, "
      f"status {r['status']}", file=sys.stderr)
