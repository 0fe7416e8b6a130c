"""The scaling and fleet sections of docs/BENCHMARKS.md, and their charts (used by report.py).

Each section function takes the results directory and the run's facts and returns Markdown
lines; each chart function draws its SVG and returns (file name, alt text, caption), or None
when the run has no results for it.
"""
import glob
import json
import os
import re

import charts

SCALING_SERVERS = {"wif-serve": ("wif", "wif-serve"), "nginx": ("nginx", "nginx (one worker per core)")}
FLEET_MODES = [("off", "without spreading (`--spread off`)"), ("auto", "with spreading (`--spread auto`)")]


def _load(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def scaling_runs(res):
    """{(server, cores): [run, ...]} from results/scaling/SERVER.CORES.RUN.json."""
    runs = {}
    for path in glob.glob(os.path.join(res, "scaling", "*.json")):
        server, cores, _run = os.path.basename(path)[:-5].split(".")
        r = _load(path)
        if r:
            runs.setdefault((server, int(cores)), []).append(r)
    return runs


def median_run(rs):
    """The run with the median handshakes/s, and the range over runs (lo, hi, n)."""
    if not rs:
        return None, None
    rs = sorted(rs, key=lambda r: r["handshakes_per_s"])
    return rs[(len(rs) - 1) // 2], (rs[0]["handshakes_per_s"], rs[-1]["handshakes_per_s"], len(rs))


def scaling_factor(runs, server):
    one, _ = median_run(runs.get((server, 1)))
    two, _ = median_run(runs.get((server, 2)))
    if one and two and one["handshakes_per_s"]:
        return two["handshakes_per_s"] / one["handshakes_per_s"]
    return None


def scaling_section(res, facts):
    runs = scaling_runs(res)
    if not runs:
        return []
    out = ["## One core and two", "",
           "New connections, TLS 1.3, P-256. *One core*: the server on CPU 0, the load generator on CPU 1. "
           "*Two cores*: wif-serve on CPUs 0 and 1 (its threads spread by the kernel), nginx with two workers "
           "bound one to each CPU (`worker_cpu_affinity auto`), at twice the concurrency. This machine has "
           f"{facts.get('cores', '?')} cores: on two, **the load generator shares them with the server**, so "
           "the two-core rate is a floor and the server CPU per handshake is the fairer comparison.", "",
           "| server | cores | handshakes/s (range) | p99 ms | server CPU ms/handshake | server CPU busy | "
           "handshakes per CPU-second | scaling (two cores ÷ one) |",
           "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for server, (_, name) in SCALING_SERVERS.items():
        factor = scaling_factor(runs, server)
        for cores in (1, 2):
            r, rng = median_run(runs.get((server, cores)))
            if not r:
                out.append(f"| {name} | {cores} | no result | | | | | |")
                continue
            per = r.get("server_cpu_ms_per_handshake")
            busy = r.get("server_cpu_s", 0) / r["duration_s"] / cores if r.get("duration_s") else None
            span = f" ({rng[0]:,.0f}–{rng[1]:,.0f}, {rng[2]} runs)" if rng[2] > 1 else ""
            scale = f"**{factor:.2f}×**" if cores == 2 and factor else ""
            out.append(f"| {name} | {cores} | {r['handshakes_per_s']:,.0f}{span} | {r['p99_ms']:.2f} | "
                       f"{per:.3f} | {busy * 100:.0f}% of {cores} | {1000 / per:,.0f} | {scale} |"
                       if per and busy is not None else
                       f"| {name} | {cores} | {r['handshakes_per_s']:,.0f}{span} | {r['p99_ms']:.2f} | – | – | – | {scale} |")
    out.append("")
    return out


def scaling_chart(res, chart_dir, name):
    runs = scaling_runs(res)
    if not runs:
        charts.remove_stale(os.path.join(chart_dir, name))
        return None
    groups = []
    for cores, label in ((1, "server on one core"), (2, "server on two cores")):
        bars = []
        for server, (style, sname) in SCALING_SERVERS.items():
            r, rng = median_run(runs.get((server, cores)))
            bar = {"style": style, "name": f"{sname}, {label}", "value": r["handshakes_per_s"] if r else None}
            if r and rng[2] > 1:
                bar["lo"], bar["hi"] = rng[0], rng[1]
            bars.append(bar)
        groups.append((label, bars))
    factors = {s: scaling_factor(runs, s) for s in SCALING_SERVERS}
    def value(b):
        return "no result" if b["value"] is None else f"{b['value']:,.0f}"

    desc = ("Grouped bar chart of full mTLS handshakes per second, TLS 1.3, P-256, higher is better. "
            + " ".join(f"{label}: " + ", ".join(f"{b['name'].split(',')[0]} {value(b)}" for b in bars) + "."
                       for label, bars in groups)
            + " Scaling factors (two cores ÷ one): "
            + ", ".join(f"{s} {f:.2f}" for s, f in factors.items() if f) + ".")
    legend = [("bar", style, sname) for style, sname in SCALING_SERVERS.values()]
    charts.scaling_chart(os.path.join(chart_dir, name), "Handshakes per second on one core and on two "
                         "(higher is better)", "new connection per request, TLS 1.3, P-256; on two cores the load "
                         "generator shares the server's cores", groups, legend, desc)
    ws = factors.get("wif-serve")
    caption = "Full mutual-TLS handshakes per second with the server on one core and on two"
    if ws:
        caption += f": wif-serve scales {ws:.2f}× from one core to two"
        if factors.get("nginx"):
            caption += f", nginx {factors['nginx']:.2f}×"
    return (name, "Bar chart of handshakes per second of wif-serve and nginx on one and two cores", caption + ".")


def fleet_runs(res):
    return {mode: r for mode, _ in FLEET_MODES for r in [_load(os.path.join(res, "fleet", f"{mode}.json"))] if r}


def metric(res, mode, name):
    """The sum of a Prometheus family's samples scraped after the fleet run, or None."""
    try:
        with open(os.path.join(res, "fleet", f"{mode}.metrics.txt")) as f:
            text = f.read()
    except OSError:
        return None
    vals = [float(v) for v in re.findall(rf"^{re.escape(name)}(?:{{[^}}]*}})? (\S+)$", text, re.M)]
    return sum(vals) if vals else None


def fleet_failed(r):
    return r["failed_fetches"] + r["stranded_clients"] + r["refused"]


def fleet_section(res, facts):
    runs = fleet_runs(res)
    if not runs:
        return []
    any_run = next(iter(runs.values()))
    speed = any_run["speed"]
    shedding = facts.get("fleet_shedding")
    out = ["## A fleet after a token rotation", "",
           f"`wif-fleet` (scripts/bench/loadgen) runs {any_run['clients']:,} simulated clients against wif-serve "
           "on CPU 0 over loopback, in compressed time: one real second is "
           f"{speed / 60:g} simulated minute{'s' if speed != 60 else ''}. Every client holds the token the "
           "server has just been given (all expire at the same second), plans its refresh with the metadata "
           "server's rule (`wif::core::spread::window`, a fresh random point per token; `--spread off`: at the "
           f"refresh margin, as before), with --min-ttl {any_run['min_ttl_s'] / 60:g}m, and fetches again over a "
           "new mutual-TLS connection (a full handshake, one shared test certificate). A 503 or a failed "
           "connection is retried as wif-get does (its backoff, honouring Retry-After, in real seconds). "
           f"Meanwhile wif-fleet rotates the server's token like the pipeline does: a token living "
           f"{any_run['token_life_s'] / 60:g} simulated minutes every {any_run['rotate_every_s'] / 60:g}, written "
           "by the pipeline's own writer; the run lasts "
           f"{any_run['sim_duration_s'] / 60:g} simulated minutes.", ""]
    if shedding == "no":
        out += ["**This wif-serve build has no `--max-handshake-queue`**: it does not shed load, so under the "
                "herd the handshakes wait in its queues (and at --max-connections, connections still in their "
                "handshake give way and are retried).", ""]
    elif shedding == "yes":
        out += ["wif-serve runs with its default `--max-handshake-queue` (64 per CPU it may use): a connection "
                "that arrives while that many handshakes wait for the CPU gets a cheap handshake and `503 "
                "overloaded` with `Retry-After` of 1 to 5 s, and comes back.", ""]
    cols = [m for m, _ in FLEET_MODES if m in runs]
    out.append("| | " + " | ".join(dict(FLEET_MODES)[m] for m in cols) + " |")
    out.append("|---|" + "---:|" * len(cols))

    def row(label, fn):
        out.append(f"| {label} | " + " | ".join(fn(runs[m], m) for m in cols) + " |")

    row("token refreshes (fetches)", lambda r, m: f"{r['fetches']:,}")
    row("peak arrivals per second (per 100 ms)", lambda r, m: f"**{r['peak_arrivals_per_s']:,}** "
        f"({r['peak_arrivals_per_100ms']:,})")
    row("latency, planned moment → token in hand: p50 / p90 / p99 / max ms",
        lambda r, m: " / ".join(f"{r['latency_ms'][k]:,.0f}" for k in ("p50", "p90", "p99", "max")))
    row("served at the first attempt", lambda r, m: f"{r['first_try']:,}")
    row("shed (503 overloaded + Retry-After), then retried", lambda r, m: f"{r['shed_503']:,}")
    row("other answers retried (5xx, 429)", lambda r, m: f"{r['other_retried']:,}")
    row("connections failed and retried", lambda r, m: f"{r['connection_errors']:,}")
    row("**failed requests** (retries exhausted, or refused)", lambda r, m: f"**{fleet_failed(r):,}**")
    row("clients that ever held an expired token", lambda r, m: f"**{r['expired_held']:,}**")
    for name, label in (("wif_serve_connections_shed_total", "server: connections shed"),
                        ("wif_serve_connections_evicted_total", "server: connections evicted at --max-connections"),
                        ("wif_serve_connections_refused_total", "server: connections refused at --max-connections")):
        if any(metric(res, m, name) is not None for m in cols):
            row(label, lambda r, m, n=name: "–" if metric(res, m, n) is None else f"{metric(res, m, n):,.0f}")
    row("server CPU (s) / peak RSS (MiB)", lambda r, m: f"{r.get('server_cpu_s', 0):.1f} / "
        f"{r.get('server_peak_rss_kib', 0) / 1024:.1f}")
    row("wif-fleet's own CPU (s), on CPU 1", lambda r, m: f"{r['client_cpu_s']:.1f}")
    out.append("")
    return out


def fleet_chart(res, chart_dir, name):
    runs = fleet_runs(res)
    if not runs:
        charts.remove_stale(os.path.join(chart_dir, name))
        return None
    any_run = next(iter(runs.values()))
    bin_s = any_run["bin_ms"] / 1000
    panels = []
    for mode, label in FLEET_MODES:
        r = runs.get(mode)
        if not r:
            continue
        panels.append((f"{label.replace('`', '')}: peak {r['peak_arrivals_per_s']:,} arrivals in a second, "
                       f"p99 {r['latency_ms']['p99']:,.0f} ms to the token",
                       [("wif", "connection attempts", r["arrivals"]), ("nginx", "of which shed (503)", r["shed"])]))
    sim_per_real = any_run["speed"] / 60
    desc = ("Arrivals of the fleet's connections at wif-serve per 100 ms over the run, one panel per mode. "
            + " ".join(f"{mode}: {r['attempts']:,} connection attempts, peak {r['peak_arrivals_per_100ms']:,} in "
                       f"100 ms and {r['peak_arrivals_per_s']:,} in a second, {r['shed_503']:,} shed."
                       for mode, r in runs.items()))
    charts.timeline_chart(os.path.join(chart_dir, name),
                          f"{any_run['clients']:,} clients after a token rotation: arrivals at wif-serve",
                          f"connections per 100 ms; one real second is {sim_per_real:g} simulated minute"
                          f"{'s' if sim_per_real != 1 else ''}", panels,
                          [("bar", "wif", "connection attempts (first and retries)"),
                           ("bar", "nginx", "answered 503 overloaded (shed)")], desc,
                          "real seconds since the rotation", bin_s)
    off, auto = runs.get("off"), runs.get("auto")
    caption = "Connections arriving at wif-serve over time, with and without spreading the refreshes"
    if off and auto:
        caption = (f"Without spreading, the {off['clients']:,} clients arrive together: up to "
                   f"{off['peak_arrivals_per_s']:,} in one second; spread over the window, at most "
                   f"{auto['peak_arrivals_per_s']:,}")
    return (name, "Timeline of connections arriving at wif-serve per 100 ms, with and without spreading",
            caption + ".")
