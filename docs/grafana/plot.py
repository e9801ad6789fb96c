#!/usr/bin/env python3
"""Draws the panels of docs/grafana/keygate.json from /metrics scrapes, without Grafana.

    python3 docs/grafana/plot.py SCRAPE_DIR OUT.png [TITLE]

SCRAPE_DIR holds one file per scrape, named by its Unix time (`1765100000.123.prom`), as
`SCRAPE_DIR=… benches/load/run.sh` writes them. Counters become per-second rates over
5 scrapes and latency quantiles are interpolated within histogram buckets, as
Prometheus's rate() and histogram_quantile() do. Needs matplotlib (PyPI).
"""

import math
import os
import re
import sys
from collections import defaultdict

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

# Rates and quantiles are taken over this many scrapes (5 s at one scrape a second), as
# rate(...[5s]) would.
WINDOW = 5

LINE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$')
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def parse(path):
    series = {}
    for line in open(path, encoding="utf-8"):
        if line.startswith("#") or not line.strip():
            continue
        m = LINE.match(line.strip())
        if not m:
            continue
        labels = tuple(sorted(LABEL.findall(m.group(2) or "")))
        series[(m.group(1), labels)] = float(m.group(3))
    return series


def load(directory):
    scrapes = []
    for name in os.listdir(directory):
        if name.endswith(".prom"):
            scrapes.append((float(name[: -len(".prom")]), parse(os.path.join(directory, name))))
    scrapes.sort()
    t0 = scrapes[0][0]
    return [(t - t0, s) for t, s in scrapes]


def rates(scrapes, metric, by):
    """{label value: ([t], [per-second rate])}, summed over the other labels."""
    out = defaultdict(lambda: ([], []))
    for (t1, a), (t2, b) in zip(scrapes, scrapes[WINDOW:]):
        sums = defaultdict(float)
        for (name, labels), value in b.items():
            if name != metric:
                continue
            key = dict(labels).get(by, "") if by else metric
            sums[key] += max(0.0, value - a.get((name, labels), 0.0))
        for key, delta in sums.items():
            out[key][0].append((t1 + t2) / 2)
            out[key][1].append(delta / (t2 - t1))
    return out


def quantiles(scrapes, metric, q, min_rate=1.0):
    """{route: ([t], [seconds])} of quantile q between consecutive scrapes."""
    out = defaultdict(lambda: ([], []))
    for (t1, a), (t2, b) in zip(scrapes, scrapes[WINDOW:]):
        buckets = defaultdict(dict)
        for (name, labels), value in b.items():
            if name != metric + "_bucket":
                continue
            d = dict(labels)
            le = math.inf if d["le"] == "+Inf" else float(d["le"])
            buckets[d["route"]][le] = value - a.get((name, labels), 0.0)
        for route, counts in buckets.items():
            bounds = sorted(counts)
            total = counts[math.inf]
            if total / (t2 - t1) < min_rate:
                continue
            rank, prev_bound, prev_count = q * total, 0.0, 0.0
            for bound in bounds:
                if counts[bound] >= rank:
                    if bound == math.inf:
                        value = prev_bound
                    else:
                        within = counts[bound] - prev_count
                        frac = (rank - prev_count) / within if within else 1.0
                        value = prev_bound + (bound - prev_bound) * frac
                    out[route][0].append((t1 + t2) / 2)
                    out[route][1].append(value)
                    break
                prev_bound, prev_count = bound, counts[bound]
    return out


def gauge(scrapes, metric):
    ts, vs = [], []
    for t, s in scrapes:
        for (name, _), value in s.items():
            if name == metric:
                ts.append(t)
                vs.append(value)
    return {"entries": (ts, vs)} if ts else {}


def draw(ax, title, lines, ylabel, empty="none during this run", top=None):
    ax.set_title(title, fontsize=10)
    ax.set_ylabel(ylabel, fontsize=8)
    ax.tick_params(labelsize=7)
    ax.grid(alpha=0.3)
    items = sorted(lines.items(), key=lambda kv: -max(kv[1][1] or [0]))
    if top:
        items = items[:top]
    shown = False
    for label, (ts, vs) in items:
        if vs and max(vs) > 0:
            ax.plot(ts, vs, label=label, linewidth=1.2)
            shown = True
    if shown:
        ax.legend(fontsize=6, loc="upper right")
    else:
        ax.text(0.5, 0.5, empty, ha="center", va="center", transform=ax.transAxes, color="grey")
    ax.set_xlabel("seconds", fontsize=7)


def main():
    directory, out = sys.argv[1], sys.argv[2]
    title = sys.argv[3] if len(sys.argv) > 3 else "keygate: /metrics during benches/load/run.sh"
    scrapes = load(directory)
    fig, axes = plt.subplots(3, 2, figsize=(12, 10))
    draw(axes[0][0], "Request rate by route", rates(scrapes, "keygate_http_requests_total", "route"), "req/s", top=6)
    p99 = quantiles(scrapes, "keygate_http_request_duration_seconds", 0.99)
    p50 = quantiles(scrapes, "keygate_http_request_duration_seconds", 0.5)
    latency = {f"p99 {k}": (ts, [v * 1000 for v in vs]) for k, (ts, vs) in p99.items()}
    latency.update({f"p50 {k}": (ts, [v * 1000 for v in vs]) for k, (ts, vs) in p50.items()})
    draw(axes[0][1], "Latency by route (p50, p99)", latency, "ms", top=8)
    draw(axes[1][0], "Sign-in outcomes", rates(scrapes, "keygate_signins_total", "outcome"), "per s")
    draw(axes[1][1], "DPoP rejections by reason", rates(scrapes, "keygate_dpop_rejections_total", "reason"), "per s")
    draw(axes[2][0], "Rate-limited requests by limit", rates(scrapes, "keygate_rate_limited_total", "limit"), "per s",
         empty="no 429 during this run")
    draw(axes[2][1], "DPoP replay cache size", gauge(scrapes, "keygate_replay_cache_entries"), "entries")
    fig.suptitle(title, fontsize=12)
    fig.tight_layout()
    fig.savefig(out, dpi=72)


if __name__ == "__main__":
    main()
