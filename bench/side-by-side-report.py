#!/usr/bin/env python3
"""Summarise one side-by-side.sh run: a Markdown section on stdout, an SVG chart, and optionally
that section written into BENCHMARKS.md between its markers.

Usage: side-by-side-report.py OUT_DIR --svg FILE [--benchmarks BENCHMARKS.md --svg-copy FILE]

OUT_DIR holds results.tsv (one row per measurement) and meta.tsv (key<TAB>value). Medians are
over the rounds of one config and protocol; "proxy CPU us/req" is the proxy's CPU time divided
by the requests it served (per run, then the median), which other load on the machine disturbs
less than req/s. With a portcullis-baseline column (meta keys baseline, baseline_bin), the
section also gives portcullis / baseline per protocol: the median over the rounds of the ratio
within each round (the two are measured back to back). The chart is drawn by hand (no plotting
library).
"""
import argparse
import csv
import math
import os
import statistics
import sys
from xml.sax.saxutils import escape

START = "<!-- side-by-side:start -->"
END = "<!-- side-by-side:end -->"

CONFIGS = {
    "direct": ("direct", "the nginx upstream itself, no proxy (the ceiling)", "#9e9e9e"),
    "nginx": ("nginx", "nginx as a plain reverse proxy, no authentication", "#43a047"),
    "haproxy-jwt": ("HAProxy + jwt_verify", "HAProxy checking an RS512 JWT on every request", "#1e88e5"),
    "portcullis": ("portcullis", "the gateway, one access token it issued", "#e65100"),
    # label and description completed from meta.tsv by label() and description()
    "portcullis-baseline": (
        "portcullis (baseline)",
        "another portcullis binary with the same configurations as `portcullis`, one access token it issued",
        "#795548",
    ),
    "portcullis-distinct-tokens": (
        "portcullis, distinct tokens, cache off",
        "the gateway with its verified-token cache off, each request with the next of many tokens it issued (HTTP/1.1 only)",
        "#ffb74d",
    ),
    "portcullis-lifecycle": (
        "portcullis, token lifecycle",
        "the gateway with 2-second access tokens, driven by `portcullis bench`: every virtual user "
        "logs in, calls as fast as answered and refreshes on each 401 (plain HTTP only; no CPU "
        "figure, as the run includes the logins before the measured window)",
        "#6d4c41",
    ),
}
BASELINE = "portcullis-baseline"
PROTOS = {
    "h1": "HTTP/1.1",
    "h2c": "h2c",
    "h1-tls": "HTTP/1.1 + TLS",
    "h2-tls": "HTTP/2 + TLS",
}


def num(value):
    try:
        f = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(f) else f


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def label(config, meta):
    """The config's name in the chart legend."""
    if config == BASELINE:
        return f"portcullis (baseline: {meta.get('baseline') or meta.get('baseline_bin') or '?'})"
    return CONFIGS[config][0]


def row_name(config, meta):
    """The config's name in the tables."""
    return label(config, meta) if config == BASELINE else config


def description(config, meta):
    if config == BASELINE:
        return f"{label(config, meta)}, `{meta.get('baseline_bin', '?')}`: {CONFIGS[config][1]}"
    return CONFIGS[config][1]


def fmt(value, digits=0):
    return "-" if value is None else f"{value:,.{digits}f}"


def load(out_dir):
    with open(os.path.join(out_dir, "results.tsv")) as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    meta = {}
    with open(os.path.join(out_dir, "meta.tsv")) as f:
        for line in f:
            key, _, value = line.rstrip("\n").partition("\t")
            meta[key] = value
    allocations = os.path.join(out_dir, "allocations.md")
    if os.path.exists(allocations):
        with open(allocations) as f:
            meta["allocations"] = f.read().strip()
    return rows, meta


def summarise(rows):
    """{(config, proto): {rps, p50, p99, cpu_us, runs, bad}} over the rounds."""
    cells = {}
    for (config, proto) in dict.fromkeys((r["config"], r["proto"]) for r in rows):
        runs = [r for r in rows if r["config"] == config and r["proto"] == proto]

        def us_per_req(r):
            # The lifecycle's run includes its logins before the measured window: its CPU time
            # per windowed request would mean nothing.
            if r["config"] == "portcullis-lifecycle":
                return None
            rps, cpu = num(r["rps"]), num(r["proxy_cpu_pct"])
            return cpu / 100 / rps * 1e6 if rps and cpu else None

        cells[(config, proto)] = {
            "rps": median(num(r["rps"]) for r in runs),
            "p50": median(num(r["p50_ms"]) for r in runs),
            "p99": median(num(r["p99_ms"]) for r in runs),
            "cpu_us": median(us_per_req(r) for r in runs),
            "runs": len(runs),
            "bad": sum(int(num(r["non2xx"]) or 0) + int(num(r["errors"]) or 0) for r in runs),
            "requests": sum(int(num(r["requests"]) or 0) for r in runs),
            "upstream_conns": sum(int(num(r.get("upstream_conns")) or 0) for r in runs),
            "upstream_reqs": sum(int(num(r.get("upstream_reqs")) or 0) for r in runs),
        }
    return cells


def paired_ratios(rows, a, b):
    """{proto: (req/s ratio, CPU us/req ratio)}: config a over config b, the median over the
    rounds of the ratio within each round."""
    def by_round(config, proto):
        out = {}
        for r in rows:
            if r["config"] == config and r["proto"] == proto:
                rps, cpu = num(r["rps"]), num(r["proxy_cpu_pct"])
                out[r["round"]] = (rps, cpu / 100 / rps * 1e6 if rps and cpu else None)
        return out

    ratios = {}
    for proto in PROTOS:
        mine, theirs = by_round(a, proto), by_round(b, proto)
        rounds = [k for k in mine if k in theirs]
        if not rounds:
            continue
        rps = median(mine[k][0] / theirs[k][0] if mine[k][0] and theirs[k][0] else None for k in rounds)
        cpu = median(mine[k][1] / theirs[k][1] if mine[k][1] and theirs[k][1] else None for k in rounds)
        ratios[proto] = (rps, cpu)
    return ratios


def plural(count, noun):
    return f"{count} {noun}" + ("" if count == "1" else "s")


def markdown(cells, meta, svg_link, rows):
    configs = [c for c in CONFIGS if any(k[0] == c for k in cells)]
    protos = [p for p in PROTOS if any(k[1] == p for k in cells)]
    out = []
    out.append(
        f"Run: {meta.get('date', '?')}, `{meta.get('command', '?')}` "
        f"(commit {meta.get('commit', '?')})."
    )
    out.append("")
    out.append(
        f"Machine: `nproc` = {meta.get('nproc', '?')}, {meta.get('cpu', '?')}, "
        f"{meta.get('memory', '?')}, {meta.get('os', '?')}; the machine was "
        f"{meta.get('pre_busy', '?')} % busy (of {int(meta.get('nproc', '1')) * 100} %) before the run. "
        f"Software: {meta.get('versions', '?')}; {meta.get('workers', '')}."
    )
    out.append("")
    out.append(
        f"Load: wrk (HTTP/1.1) and h2load (HTTP/2, {plural(meta.get('streams', '1'), 'stream')} per connection), "
        f"{meta.get('conns', '?')} connections, {plural(meta.get('threads', '?'), 'client thread')}, "
        f"{plural(meta.get('rounds', '?'), 'interleaved round')} of {meta.get('duration', '?')} s "
        "on 127.0.0.1; every figure is the median over the rounds. All proxies speak HTTP/1.1 to "
        "the upstream."
    )
    if meta.get("incomplete") == "1":
        out.append("")
        out.append("**Incomplete: the deadline (MAX_TOTAL_S) cut the rounds short.**")
    out.append("")
    for c in configs:
        out.append(f"- `{c}`: {description(c, meta)}")
    out.append("")
    head = "| config |" + "".join(f" {PROTOS[p]} req/s | p50 / p99 ms |" for p in protos)
    out.append(head)
    out.append("|---|" + "---:|---:|" * len(protos))
    for c in configs:
        line = f"| {row_name(c, meta)} |"
        for p in protos:
            cell = cells.get((c, p))
            if cell is None:
                line += " - | - |"
            else:
                flag = " ⚠" if cell["bad"] else ""
                line += f" {fmt(cell['rps'])}{flag} | {fmt(cell['p50'], 2)} / {fmt(cell['p99'], 2)} |"
        out.append(line)
    out.append("")
    out.append("Proxy CPU time per request, µs (median):")
    out.append("")
    out.append("| config |" + "".join(f" {PROTOS[p]} |" for p in protos))
    out.append("|---|" + "---:|" * len(protos))
    for c in configs:
        if c == "direct":
            continue
        line = f"| {row_name(c, meta)} |"
        for p in protos:
            cell = cells.get((c, p))
            line += f" {fmt(cell['cpu_us'], 1) if cell else '-'} |"
        out.append(line)
    out.append("")
    if "portcullis" in configs and BASELINE in configs:
        ratios = paired_ratios(rows, "portcullis", BASELINE)
        if ratios:
            out.append(
                f"`portcullis` / {label(BASELINE, meta)}, the median over the rounds of the ratio "
                "within each round (measured back to back):"
            )
            out.append("")
            out.append("| ratio |" + "".join(f" {PROTOS[p]} |" for p in protos))
            out.append("|---|" + "---:|" * len(protos))
            for i, what in enumerate(["req/s (higher: portcullis faster)", "CPU µs/req (lower: portcullis cheaper)"]):
                line = f"| {what} |"
                for p in protos:
                    value = ratios.get(p, (None, None))[i]
                    line += f" {'-' if value is None else f'{value:.2f}×'} |"
                out.append(line)
            out.append("")
    reuse = [(c, p) for c in configs for p in protos
             if c != "direct" and cells.get((c, p), {}).get("upstream_reqs")]
    if reuse:
        out.append(
            "Keep-alive reuse towards the upstream: requests per upstream connection opened, "
            "over all rounds (from the upstream's `stub_status`; every proxy keeps its upstream "
            "connections between measurements, so a high figure means almost no new ones):"
        )
        out.append("")
        out.append("| config |" + "".join(f" {PROTOS[p]} |" for p in protos))
        out.append("|---|" + "---:|" * len(protos))
        for c in configs:
            if c == "direct":
                continue
            line = f"| {row_name(c, meta)} |"
            for p in protos:
                cell = cells.get((c, p))
                if not cell or not cell["upstream_reqs"]:
                    line += " - |"
                elif cell["upstream_conns"] <= 0:
                    line += " ∞ (none opened) |"
                else:
                    line += f" {fmt(cell['upstream_reqs'] / cell['upstream_conns'])} |"
            out.append(line)
        out.append("")
    if meta.get("allocations"):
        out.append(
            "Heap allocations per proxied request in the gateway, this tree's build (`cargo bench "
            "--bench allocations`: dhat's counting allocator, 2,000 sequential HTTP/1.1 requests "
            "on one keep-alive connection; exact counts, not timed):"
        )
        out.append("")
        out.append(meta["allocations"])
        out.append("")
    bad = {k: v for k, v in cells.items() if v["bad"]}
    total = sum(v["requests"] for v in cells.values())
    if bad:
        listed = ", ".join(f"{row_name(c, meta)} {PROTOS[p]}: {v['bad']}" for (c, p), v in bad.items())
        out.append(f"⚠ non-2xx answers or socket errors: {listed} (of {total:,} requests).")
    else:
        out.append(f"All {total:,} measured requests answered 2xx, with no socket errors.")
    out.append("")
    out.append(f"![median req/s per config and protocol]({svg_link})")
    return "\n".join(out) + "\n"


def nice_step(top, ticks=5):
    raw = top / ticks
    power = 10 ** math.floor(math.log10(raw))
    for m in (1, 2, 2.5, 5, 10):
        if m * power >= raw:
            return m * power
    return 10 * power


def short(value):
    if value >= 1000:
        return f"{value / 1000:.0f}k" if value % 1000 == 0 else f"{value / 1000:.1f}k"
    return f"{value:.0f}"


def svg(cells, meta):
    configs = [c for c in CONFIGS if any(k[0] == c for k in cells)]
    protos = [p for p in PROTOS if any(k[1] == p for k in cells)]
    width, height = 960, 440
    left, right, top, bottom = 80, 20, 64, 80
    plot_w, plot_h = width - left - right, height - top - bottom
    # the legend first: a long label goes to the next line, and the chart grows to hold it
    legend, lx, ly = [], left, top + plot_h + 48
    for c in configs:
        w = 30 + 6.8 * len(label(c, meta))
        if lx > left and lx + w > width - right:
            lx, ly = left, ly + 22
        legend.append((c, lx, ly))
        lx += w
    height = max(height, ly + 10)
    values = [v["rps"] for v in cells.values() if v["rps"]]
    peak = max(values) if values else 1
    step = nice_step(peak)
    y_max = step * math.ceil(peak / step)
    y = lambda v: top + plot_h - plot_h * v / y_max
    group_w = plot_w / max(1, len(protos))
    bar_w = group_w * 0.8 / max(1, len(configs))
    font = 'font-family="DejaVu Sans, Helvetica, Arial, sans-serif"'
    s = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" {font} font-size="12">',
        f'<rect width="{width}" height="{height}" fill="#ffffff"/>',
        f'<text x="{width / 2}" y="24" text-anchor="middle" font-size="16" font-weight="bold">'
        "portcullis side by side: median requests per second (higher is better)</text>",
        f'<text x="{width / 2}" y="44" text-anchor="middle" fill="#555">'
        + escape(
            f"{meta.get('conns', '?')} connections, {meta.get('rounds', '?')} × "
            f"{meta.get('duration', '?')} s, 127.0.0.1; nproc {meta.get('nproc', '?')}, "
            f"{meta.get('cpu', '?')}; {meta.get('date', '')}"
        )
        + "</text>",
    ]
    tick = 0.0
    while tick <= y_max + 1e-9:
        ty = y(tick)
        s.append(f'<line x1="{left}" y1="{ty:.1f}" x2="{width - right}" y2="{ty:.1f}" stroke="#e0e0e0"/>')
        s.append(f'<text x="{left - 8}" y="{ty + 4:.1f}" text-anchor="end" fill="#555">{short(tick)}</text>')
        tick += step
    s.append(
        f'<text x="18" y="{top + plot_h / 2}" text-anchor="middle" fill="#555" '
        f'transform="rotate(-90 18 {top + plot_h / 2})">req/s</text>'
    )
    for gi, p in enumerate(protos):
        gx = left + gi * group_w + group_w * 0.1
        for ci, c in enumerate(configs):
            cell = cells.get((c, p))
            if not cell or not cell["rps"]:
                continue
            x, by = gx + ci * bar_w, y(cell["rps"])
            s.append(
                f'<rect x="{x:.1f}" y="{by:.1f}" width="{bar_w - 3:.1f}" '
                f'height="{top + plot_h - by:.1f}" fill="{CONFIGS[c][2]}">'
                f"<title>{escape(row_name(c, meta))} {escape(PROTOS[p])}: {cell['rps']:,.0f} req/s, "
                f"p99 {fmt(cell['p99'], 2)} ms</title></rect>"
            )
            s.append(
                f'<text x="{x + (bar_w - 3) / 2:.1f}" y="{by - 4:.1f}" text-anchor="middle" '
                f'font-size="10">{short(cell["rps"])}</text>'
            )
        s.append(
            f'<text x="{left + gi * group_w + group_w / 2:.1f}" y="{top + plot_h + 20}" '
            f'text-anchor="middle" font-weight="bold">{escape(PROTOS[p])}</text>'
        )
    s.append(f'<line x1="{left}" y1="{top + plot_h}" x2="{width - right}" y2="{top + plot_h}" stroke="#333"/>')
    for c, lx, ly in legend:
        s.append(f'<rect x="{lx:g}" y="{ly - 10}" width="12" height="12" fill="{CONFIGS[c][2]}"/>')
        s.append(f'<text x="{lx + 18:g}" y="{ly}">{escape(label(c, meta))}</text>')
    s.append("</svg>")
    return "\n".join(s) + "\n"


def replace_section(path, section):
    with open(path) as f:
        text = f.read()
    start, end = text.find(START), text.find(END)
    if start < 0 or end < start:
        sys.exit(f"{path}: the markers {START} and {END} are missing")
    text = text[: start + len(START)] + "\n" + section + text[end:]
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir")
    parser.add_argument("--svg", required=True, help="where to write the chart")
    parser.add_argument("--benchmarks", help="BENCHMARKS.md whose marked section to replace")
    parser.add_argument("--svg-copy", help="a second copy of the chart (the one BENCHMARKS.md links)")
    args = parser.parse_args()
    rows, meta = load(args.out_dir)
    if not rows:
        sys.exit(f"{args.out_dir}/results.tsv has no measurements")
    cells = summarise(rows)
    chart = svg(cells, meta)
    for path in filter(None, [args.svg, args.svg_copy]):
        with open(path, "w") as f:
            f.write(chart)
    if args.benchmarks:
        link = os.path.relpath(args.svg_copy or args.svg, os.path.dirname(os.path.abspath(args.benchmarks)))
    else:
        link = os.path.basename(args.svg)
    section = markdown(cells, meta, link, rows)
    if args.benchmarks:
        replace_section(args.benchmarks, section)
    sys.stdout.write(section)


if __name__ == "__main__":
    main()
