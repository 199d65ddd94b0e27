#!/usr/bin/env python3
"""Sum a callgrind dump's self cost (instructions) by component, per request.

Usage: callgrind-by-crate.py DUMP REQUESTS [TOP [FUNCTIONS]]

A component is the crate a function's source file belongs to (from the Cargo registry path),
`std` for the Rust standard library, `portcullis::<module>` for this crate, or else the
object file (`libc`, `nginx`, the kernel's vDSO, ...). Prints the total instructions per
request, then each component's share, largest first (TOP of them, default 14, the rest
summed), as tab-separated `component  instructions-per-request  percent`; then, if
FUNCTIONS is given, that many functions with the most self cost, the same way. With
CALLERS=name in the environment, also who calls the functions whose names contain `name`,
and how many instructions (inclusive) per request those calls cost.
"""
import os
import re
import sys
from collections import defaultdict

REGISTRY = re.compile(r"/registry/src/[^/]+/([A-Za-z0-9_.-]+?)-\d+\.\d+\.\d+[^/]*/")
OURS = re.compile(r"/src/([a-z_]+)(?:/|\.rs)")
STD = re.compile(r"/rustc/[0-9a-f]+/library/([a-z_]+)/")
NAMED = re.compile(r"^(ob|fl|fi|fe|fn|cob|cfi|cfl|cfn)=(?:\((\d+)\))?\s*(.*)$")


def component(obj, src):
    if m := REGISTRY.search(src):
        return m.group(1)
    if m := STD.search(src):
        return "std"
    if "/portcullis" in obj or obj.endswith("/portcullis"):
        if src.startswith(("/", "src/")) and (m := OURS.search(src)) and "registry" not in src:
            return f"portcullis::{m.group(1)}"
    name = obj.rsplit("/", 1)[-1]
    if ".so" not in name and name:
        # The program itself, in code with no source lines: C and assembly linked in
        # (aws-lc's crypto in portcullis).
        return "portcullis (C, asm)" if "portcullis" in name else name
    name = re.sub(r"[-.]so.*$", "", name)
    return name or "???"


def main():
    dump, requests = sys.argv[1], int(sys.argv[2])
    top = int(sys.argv[3]) if len(sys.argv) > 3 else 14
    functions = int(sys.argv[4]) if len(sys.argv) > 4 else 0
    names = {}  # (kind, id) -> name
    obj = src = fn = ""
    skip_next = False  # the cost line after `calls=` is inclusive: not self cost
    callee = ""
    calls = defaultdict(int)  # (caller, callee) -> inclusive cost
    costs = defaultdict(int)
    by_fn = defaultdict(int)
    events = None
    with open(dump, encoding="utf-8", errors="replace") as f:
        for line in f:
            line = line.rstrip("\n")
            if line.startswith("events:"):
                events = line.split()[1:]
                continue
            m = NAMED.match(line)
            if m:
                kind, ident, name = m.groups()
                base = {"cob": "ob", "cfi": "fl", "cfl": "fl", "cfn": "fn", "fi": "fl", "fe": "fl"}.get(kind, kind)
                if ident is not None:
                    if name:
                        names[(base, ident)] = name
                    name = names.get((base, ident), name)
                # A function's cost goes to the file it is defined in (`fl`), inlined code
                # (`fi`, `fe`) included: `Vec::push` inlined into hyper counts as hyper.
                if kind == "ob":
                    obj = name
                elif kind == "fl":
                    src = name
                elif kind == "fn":
                    fn = name
                elif kind == "cfn":
                    callee = name
                continue
            if line.startswith("calls="):
                skip_next = True
                continue
            if line and (line[0].isdigit() or line[0] in "+-*"):
                if skip_next:
                    skip_next = False
                    parts = line.split()
                    if len(parts) >= 2:
                        calls[(fn, callee)] += int(parts[1])
                    continue
                parts = line.split()
                if len(parts) >= 2:
                    costs[component(obj, src)] += int(parts[1])
                    by_fn[fn] += int(parts[1])
    if events and events[0] != "Ir":
        sys.exit(f"{dump}: first event is {events[0]}, not Ir")
    total = sum(costs.values())
    print(f"total\t{total / requests:.0f}\t100.0")
    ranked = sorted(costs.items(), key=lambda kv: -kv[1])
    for name, ir in ranked[:top]:
        print(f"{name}\t{ir / requests:.0f}\t{100 * ir / total:.1f}")
    rest = sum(ir for _, ir in ranked[top:])
    if rest:
        print(f"(the rest)\t{rest / requests:.0f}\t{100 * rest / total:.1f}")
    for name, ir in sorted(by_fn.items(), key=lambda kv: -kv[1])[:functions]:
        print(f"  {name[:110]}\t{ir / requests:.0f}\t{100 * ir / total:.1f}")
    if wanted := os.environ.get("CALLERS"):
        found = [(k, ir) for k, ir in calls.items() if wanted in k[1] and k[0] != k[1]]
        for (caller, called), ir in sorted(found, key=lambda kv: -kv[1])[:20]:
            print(f"  {called[:50]} <- {caller[:90]}\t{ir / requests:.0f}\t{100 * ir / total:.1f}")


if __name__ == "__main__":
    main()
