#!/usr/bin/env python3
"""cpu-breakdown.py - a proxy's CPU per request, split by component, from perf samples.

Usage: cpu-breakdown.py RESULTS DIR

RESULTS has one line per measurement: `round config req/s cpu-µs-per-request`; DIR holds
`CONFIG.ROUND.data`, a `perf record -e cpu-clock` of that server taken inside the same
measurement. Each sample's share of the profile times the measured CPU per request gives
µs per request; prints a Markdown table of the mean over the rounds.

The components: the kernel; aws-lc (the RS512 check: the RSA public-key operation and
SHA-512); the token's decoding around it (base64, JSON, our split); libc's allocator and
memory copies; everything else in user space (HTTP engine, runtime, the gateway's code).
"""

import collections
import re
import subprocess
import sys

COMPONENTS = [
    ("kernel", None),
    # aws-lc's exported symbols carry its prefix; its static helpers (bn_*, rsa_*) do not.
    ("aws-lc (RSA, SHA-512)", re.compile(r"^(aws_lc|bn_|BN_|rsa_|RSA_|sha512|SHA512|OPENSSL_)")),
    ("token decoding (base64, JSON, split)", re.compile(r"base64|serde_json|portcullis::jwt")),
    ("libc malloc/free, memcpy", re.compile(r"malloc|free|memmove|memcpy|memset|_int_|realloc")),
    ("rest of user space", re.compile(r"")),
]
SAMPLE = re.compile(r"\s+([\d.]+)%\s+\S+\s+\[(.)\]\s+(.*)")


def shares(path):
    """Percent of the samples per component."""
    report = subprocess.run(
        ["perf", "report", "-i", path, "--no-children", "--sort", "dso,sym", "--stdio",
         "--percent-limit", "0"],
        capture_output=True, text=True, check=True,
    ).stdout
    out = collections.Counter()
    for line in report.splitlines():
        m = SAMPLE.match(line)
        if not m:
            continue
        pct, kind, sym = float(m[1]), m[2], m[3]
        if kind == "k":
            out["kernel"] += pct
            continue
        for name, pattern in COMPONENTS[1:]:
            if pattern.search(sym):
                out[name] += pct
                break
    return out


def main():
    results, folder = sys.argv[1], sys.argv[2]
    cpu = collections.defaultdict(list)
    parts = collections.defaultdict(lambda: collections.defaultdict(list))
    order = []
    with open(results) as f:
        for line in f:
            rnd, config, _rps, us = line.split()[:4]
            if config not in order:
                order.append(config)
            us = float(us)
            cpu[config].append(us)
            split = shares(f"{folder}/{config}.{rnd}.data")
            total = sum(split.values()) or 100.0
            for name, _ in COMPONENTS:
                parts[config][name].append(split[name] / total * us)

    def mean(values):
        return sum(values) / len(values)

    print("| CPU µs per request | " + " | ".join(order) + " |")
    print("|---|" + "---:|" * len(order))
    for name, _ in COMPONENTS:
        print(f"| {name} | " + " | ".join(f"{mean(parts[c][name]):.1f}" for c in order) + " |")
    print("| **total** (from `/proc`) | " + " | ".join(f"**{mean(cpu[c]):.1f}**" for c in order) + " |")


if __name__ == "__main__":
    main()
