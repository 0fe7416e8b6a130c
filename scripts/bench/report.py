#!/usr/bin/env python3
"""Turns the raw results of one scripts/bench/run.sh run into docs/BENCHMARKS.md and its charts.

usage: report.py RESULTS_DIR [--out FILE]
  --out FILE  write the report to FILE and its charts (SVG) to bench/ beside it, linked from the
              top of the report; without it the report goes to stdout, without charts
"""
import argparse
import glob
import json
import os
import re
import sys

import charts
import sections

ap = argparse.ArgumentParser(description="Render one scripts/bench/run.sh run as Markdown (and SVG charts).")
ap.add_argument("results", metavar="RESULTS_DIR")
ap.add_argument("--out", metavar="FILE", help="the report; its charts go to bench/ in the same directory")
ARGS = ap.parse_args()
RES = ARGS.results
if not os.path.isdir(RES):
    sys.exit(f"report.py: reading the results: {RES} is not a directory (run scripts/bench/run.sh, or give "
             "the directory it kept with --keep)")
HERE = os.path.dirname(os.path.abspath(__file__))
SERVERS = ["wif-serve", "nginx", "flask"]
SERVER_NAMES = {"wif-serve": "wif-serve (rustls)", "baseline": "wif-serve, baseline build (`--baseline-serve`)",
                "nginx": "nginx (1 worker)", "flask": "Flask + ssl (seed)"}
LIB = {"wif-serve": "aws-lc", "baseline": "aws-lc", "nginx": "openssl", "flask": "openssl"}
CASES = [
    ("ec", "new-tls13", "New connection per request, TLS 1.3, P-256 PKI (full handshake, no resumption)"),
    ("ec", "new-tls12", "New connection per request, TLS 1.2, P-256 PKI"),
    ("ec", "keepalive-tls13", "Keep-alive (100 requests per connection), TLS 1.3, P-256 PKI"),
    ("rsa", "new-tls13", "New connection per request, TLS 1.3, RSA-2048 PKI"),
]


def read(path, default=None):
    try:
        with open(os.path.join(RES, path)) as f:
            return f.read()
    except OSError:
        return default


facts = dict(line.split("=", 1) for line in (read("facts.txt", "") or "").splitlines() if "=" in line)
crypto = json.loads(read("cryptospeed.json", "{}") or "{}")


def openssl_speed():
    text = read("openssl-speed.txt", "") or ""
    o = {}
    m = re.search(r"rsa 2048 bits\s+\S+\s+\S+\s+([\d.]+)\s+([\d.]+)", text)
    if m:
        o["rsa_sign"], o["rsa_verify"] = float(m.group(1)), float(m.group(2))
    m = re.search(r"256 bits ecdsa \(nistp256\)\s+\S+\s+\S+\s+([\d.]+)\s+([\d.]+)", text)
    if m:
        o["p256_sign"], o["p256_verify"] = float(m.group(1)), float(m.group(2))
    m = re.search(r"ecdh \(X25519\)\s+\S+\s+([\d.]+)", text)
    if m:
        o["x25519_derive"] = float(m.group(1))
    return o


ossl = openssl_speed()
aws = {
    "x25519": crypto.get("x25519_keygen_derive_per_s"),
    "p256_sign": crypto.get("ecdsa_p256_sign_per_s"),
    "p256_verify": crypto.get("ecdsa_p256_verify_per_s"),
    "rsa_sign": crypto.get("rsa2048_pss_sign_per_s"),
    "rsa_verify": crypto.get("rsa2048_pss_verify_per_s"),
}


def limit(lib, pki):
    """Most handshakes/s one core can do: one key exchange, one signature, three verifications."""
    if lib == "aws-lc":
        kx, s, v = aws["x25519"], aws[f"{pki}_sign"], aws[f"{pki}_verify"]
        if not (kx and s and v):
            return None
        return 1 / (1 / kx + 1 / s + 3 / v)
    # openssl speed times only the X25519 derivation; the key generation costs about the same.
    kx, s, v = ossl.get("x25519_derive"), ossl.get(f"{pki}_sign"), ossl.get(f"{pki}_verify")
    if not (kx and s and v):
        return None
    return 1 / (2 / kx + 1 / s + 3 / v)


def load_runs():
    runs = {}
    for path in glob.glob(os.path.join(RES, "server", "*.json")):
        server, pki, case, _run = os.path.basename(path)[:-5].split(".")
        try:
            with open(path) as f:
                runs.setdefault((server, pki, case), []).append(json.load(f))
        except (OSError, ValueError):
            pass
    return runs


RUNS = load_runs()
if any(server == "baseline" for server, _, _ in RUNS):
    SERVERS.insert(1, "baseline")


def pick(server, pki, case):
    """The run with the median primary metric, and the primary metric's range over runs."""
    rs = RUNS.get((server, pki, case))
    if not rs:
        return None, None
    key = "requests_per_s" if case.startswith("keepalive") else "handshakes_per_s"
    rs = sorted(rs, key=lambda r: r[key])
    return rs[(len(rs) - 1) // 2], (rs[0][key], rs[-1][key], len(rs))


def peak_rss(server, pki):
    vals = [r.get("server_peak_rss_kib") or 0 for (s, p, _), rs in RUNS.items() if s == server and p == pki
            for r in rs]
    return max(vals) if vals else None


def f0(v):
    return "–" if v is None else f"{v:,.0f}"


def f1(v):
    return "–" if v is None else f"{v:,.1f}"


def f2(v):
    return "–" if v is None else f"{v:,.2f}"


def f3(v):
    return "–" if v is None else f"{v:.3f}"


def mib(kib):
    return "–" if not kib else f"{kib / 1024:.1f}"


pipe = json.loads(read("pipeline.json", "null") or "null")

# ---- charts (docs/bench/*.svg), drawn from the same results as the tables ----
CASE_LABELS = {("ec", "new-tls13"): "TLS 1.3, P-256", ("ec", "new-tls12"): "TLS 1.2, P-256",
               ("rsa", "new-tls13"): "TLS 1.3, RSA-2048"}
CHART_SERVERS = {"wif-serve": ("wif", "wif-serve (rustls + aws-lc)"), "baseline": ("baseline", "wif-serve, baseline build"),
                 "nginx": ("nginx", "nginx, 1 worker (OpenSSL)"),
                 "flask": ("seed", "Flask + ssl, the seed's server (OpenSSL)")}
SHORT = {"wif-serve": "wif-serve", "baseline": "baseline", "nginx": "nginx", "flask": "Flask"}
CHARTS = ["handshakes.svg", "cpu-per-handshake.svg", "pipeline-cpu.svg", "scaling.svg", "fleet.svg"]


def crypto_limit(server, pki):
    return limit(LIB[server], "p256" if pki == "ec" else "rsa")


def server_bars(pki, case, metric, ref):
    """One chart group: a bar per server, the primary metric's range over runs, a reference value."""
    bars = []
    for s in SERVERS:
        r, rng = pick(s, pki, case)
        style, name = CHART_SERVERS[s]
        bar = {"style": style, "name": f"{SHORT[s]}, {CASE_LABELS.get((pki, case), case)}",
               "value": r.get(metric) if r else None, "ref": ref(s, pki) if r else None}
        if r and metric in ("handshakes_per_s", "requests_per_s") and rng[2] > 1:
            bar["lo"], bar["hi"] = rng[0], rng[1]
        bars.append(bar)
    return bars


def describe(groups, unit, fmt):
    """The plotted numbers as sentences, for the chart's <desc>."""
    parts = []
    for label, bars in groups:
        vals = []
        for b in bars:
            name = b["name"].split(",")[0]
            if b["value"] is None:
                vals.append(f"{name} no result")
                continue
            extra = f" (range {fmt(b['lo'])}–{fmt(b['hi'])})" if "lo" in b else ""
            vals.append(f"{name} {fmt(b['value'])}{extra}")
        parts.append(f"{label}: " + ", ".join(vals) + ".")
    return f"{unit}. " + " ".join(parts)


def ratio_text(a, b):
    return f"{a / b:.1f}×"


def limits_text(fmt):
    """Each library's crypto limit, passed through fmt (handshakes/s, or CPU ms per handshake)."""
    return ", ".join(f"{lib} {fmt(limit(lib, p))} ({n})" for lib in ("aws-lc", "OpenSSL")
                     for p, n in (("p256", "P-256"), ("rsa", "RSA-2048")) if limit(lib.lower(), p))


def cpu_floor(server, pki):
    """The CPU ms per handshake of the public-key work alone: 1000 / the crypto limit."""
    lim = crypto_limit(server, pki)
    return 1000 / lim if lim else None


def server_charts(chart_dir, method, legend, ranges):
    """Charts (a) handshakes/s and (b) CPU per handshake; returns their (file, alt text, caption)."""
    new_cases = [(pki, case) for pki, case, _ in CASES if not case.startswith("keepalive")]
    have_limit = any(crypto_limit(s, "ec") for s in SERVERS)
    new = [(CASE_LABELS[c], server_bars(*c, "handshakes_per_s", crypto_limit)) for c in new_cases]
    keep = [("100 requests per connection",
             server_bars("ec", "keepalive-tls13", "requests_per_s", lambda server, pki: None))]
    limits = limits_text(f0)
    desc = ("Grouped bar chart. "
            + describe(new, "Full mTLS handshakes per second, new connection per request, " + method, f0)
            + (f" Crypto limit on one core (dashed marks): {limits}." if limits else "")
            + " " + describe(keep, "Keep-alive requests per second", f0))
    notes = []
    if pick("flask", "ec", "keepalive-tls13")[0]:
        notes.append("Flask's server (werkzeug) closes the connection after every response, so its "
                     "keep-alive bar is a new connection per request.")
    ref = [("ref", None, "crypto limit of the server's TLS library, one core")] if have_limit else []
    charts.handshakes_chart(os.path.join(chart_dir, CHARTS[0]),
                            "Handshakes and requests per second, by server (higher is better)", method,
                            new, keep, legend + ref + ranges, desc, notes)
    ws, ng, fl = (pick(s, "ec", "new-tls13")[0] for s in ("wif-serve", "nginx", "flask"))
    wk, nk = (pick(s, "ec", "keepalive-tls13")[0] for s in ("wif-serve", "nginx"))
    caption = "Full mutual-TLS handshakes per second by server and TLS case, and kept-alive requests per second"
    if ws and ng and fl:
        caption = (f"With TLS 1.3 and P-256, wif-serve completes "
                   f"{ratio_text(ws['handshakes_per_s'], ng['handshakes_per_s'])} nginx's and "
                   f"{ratio_text(ws['handshakes_per_s'], fl['handshakes_per_s'])} Flask's full mutual-TLS "
                   "handshakes per second")
        if wk and nk:
            caption += (f" and serves {ratio_text(wk['requests_per_s'], nk['requests_per_s'])} nginx's "
                        "kept-alive requests")
    if have_limit:
        caption += "; the dashed marks are each TLS library's crypto limit on one core"
    made = [(CHARTS[0], "Bar chart of handshakes per second of wif-serve, nginx and Flask for each TLS case, and "
             "of kept-alive requests per second", caption + ".")]

    cpu = [(CASE_LABELS[c], server_bars(*c, "server_cpu_ms_per_handshake", cpu_floor)) for c in new_cases]
    floors = limits_text(lambda v: f"{1000 / v:.2f} ms")
    desc = ("Grouped bar chart. "
            + describe(cpu, "Server CPU milliseconds per full mTLS handshake, lower is better, from the run with "
                       "the median handshakes per second", lambda v: f"{v:.3f}")
            + (f" Public-key work alone (dashed marks): {floors}." if floors else ""))
    ref = [("ref", None, "public-key work alone (1000 ÷ crypto limit)")] if have_limit else []
    charts.cpu_chart(os.path.join(chart_dir, CHARTS[1]), "Server CPU per handshake, by server (lower is better)",
                     "the server's own CPU time (user + system) over the measured time ÷ handshakes; the run with "
                     "the median handshakes/s", cpu, legend + ref, desc)
    caption = "Server CPU time per full mutual-TLS handshake by server and TLS case"
    if ws and ng and fl:
        caption = ("Server CPU time per full handshake, the steadiest comparison on a shared machine: with TLS 1.3 "
                   f"and P-256, wif-serve spends {ws['server_cpu_ms_per_handshake']:.2f} ms, nginx "
                   f"{ng['server_cpu_ms_per_handshake']:.2f} ms and Flask {fl['server_cpu_ms_per_handshake']:.2f} ms")
    if have_limit:
        caption += "; the dashed marks are the public-key work alone"
    made.append((CHARTS[1], "Bar chart of server CPU milliseconds per handshake of wif-serve, nginx and Flask for "
                 "each TLS case", caption + "."))
    return made


def pipeline_charts(chart_dir):
    """Chart (c) CPU per pipeline tool against the seed's runtimes; returns its (file, alt text, caption)."""
    rows = []
    for name, t in pipe["tools"].items():
        total = name.startswith("pipeline")
        label = name.replace("pipeline (4 tools)", "all four wif tools, one pipeline run")
        rows.append((label, "wif-total" if total else "wif", t["cpu_ms"], None))
    for name, t in pipe["compare"].items():
        rows.append((name, "seed", None if "error" in t else t["cpu_ms"], "failed" if "error" in t else None))
    n = pipe["tools"].get("wif-sign", {}).get("runs", facts.get("pipeline_runs", "?"))
    backend = "a canned-answer double" if pipe.get("backend") == "double" else "wif-emulate"
    desc = ("Horizontal bar chart of CPU milliseconds per run (user + system, median), lower is better. "
            + " ".join(f"{name}: {'failed' if v is None else f'{v:.2f} ms'}." for name, _, v, _ in rows)
            + " Dashed line: the target of less than 5 ms per tool.")
    charts.pipeline_chart(
        os.path.join(chart_dir, CHARTS[2]), "CPU per pipeline tool, against the seed's runtimes (lower is better)",
        f"each program a process of its own, started by wif-rusage (CPU from wait4(2)); the wif tools against "
        f"{backend} on loopback", rows,
        [("bar", "wif", "one wif tool"), ("bar", "wif-total", "the four wif tools together"),
         ("bar", "seed", "the seed's approach: Python, google-auth, Java"), ("ref", None, "target: < 5 ms per tool")],
        desc, f"CPU time per run (user + system), ms, median of {n} runs", 5)
    total = pipe["tools"].get("pipeline (4 tools)")
    against = [f"{t['cpu_ms']:.0f} ms for {what}" for key, what in (
        ("python3 -c pass (interpreter start)", "a Python interpreter that only starts"),
        ("python3 google-auth STS + impersonation", "google-auth's STS exchange and impersonation in Python"),
        ("java -version (JVM start)", "a JVM that only starts"))
        for t in [pipe["compare"].get(key, {})] if "cpu_ms" in t]
    caption = "CPU time of each pipeline tool per run against the seed's Python and Java"
    if total and against:
        caption = (f"CPU time per run: all four wif tools together take {total['cpu_ms']:.1f} ms, against "
                   + (", ".join(against[:-1]) + " and " if len(against) > 1 else "") + against[-1])
    return [(CHARTS[2], "Bar chart of CPU milliseconds per run of wif-sign, wif-azure, wif-sts and wif-impersonate, "
             "against Python and Java", caption + ".")]


def draw_charts(chart_dir):
    """Draws the charts that this run's results allow (and removes older ones it cannot redraw);
    returns (file name, alt text, caption) of each."""
    os.makedirs(chart_dir, exist_ok=True)
    runs = int(facts.get("runs", "1") or 1)
    method = (f"median of {runs} run{'s' if runs > 1 else ''} of {facts.get('duration', '?')} s, "
              f"{facts.get('concurrency', '?')} connections, server on one core"
              + ("; whiskers: range over the runs" if runs > 1 else ""))
    legend = [("bar", *CHART_SERVERS[s]) for s in SERVERS]
    ranges = [("range", None, f"range over {runs} runs")] if runs > 1 else []
    made = []
    if any(pick(s, pki, case)[0] for s in SERVERS for pki, case, _ in CASES):
        made += server_charts(chart_dir, method, legend, ranges)
    else:
        charts.remove_stale(os.path.join(chart_dir, CHARTS[0]))
        charts.remove_stale(os.path.join(chart_dir, CHARTS[1]))
    if pipe:
        made += pipeline_charts(chart_dir)
    else:
        charts.remove_stale(os.path.join(chart_dir, CHARTS[2]))
    made += [c for c in (sections.scaling_chart(RES, chart_dir, CHARTS[3]),
                         sections.fleet_chart(RES, chart_dir, CHARTS[4])) if c]
    return made


out = []
w = out.append
w("# Benchmarks")
w("")
w("Produced by `scripts/bench/run.sh` from one run on "
  f"{facts.get('date', '?')} ({facts.get('mode', '?')} mode: {facts.get('runs', '?')} run(s) of "
  f"{facts.get('duration', '?')} s per server and case after {facts.get('warmup', '?')} s of warm-up, "
  f"{facts.get('concurrency', '?')} connections; {facts.get('pipeline_runs', '?')} pipeline runs); do not edit "
  "by hand, rerun the script. The findings and suggestions at the end come from `scripts/bench/analysis.md`.")
w("")
if ARGS.out:
    for name, alt, caption in draw_charts(os.path.join(os.path.dirname(os.path.abspath(ARGS.out)), "bench")):
        w(f"![{alt}](bench/{name})")
        w("")
        w(f"*{caption}*")
        w("")
w("## Machine")
w("")
w("| fact | value |")
w("|---|---|")
for k, label in [("cpu", "CPU"), ("cores", "cores"), ("kernel", "kernel"), ("os", "OS"), ("rustc", "rustc"),
                 ("rustls", "rustls (wif-serve)"), ("nginx", "nginx"), ("openssl", "OpenSSL"),
                 ("python", "Python"), ("flask", "Flask"), ("google_auth", "google-auth"), ("java", "Java"),
                 ("wif", "wif commit"), ("sched", "scheduling of servers and load generator"),
                 ("order_file", "wif-serve's code order (bin/wif-serve.order)"),
                 ("loadavg_start", "load average at start"),
                 ("loadavg_end", "load average before the fleet part (the benchmark's own threads included)")]:
    w(f"| {label} | {facts.get(k, '?')} |")
w("")
try:
    load_start = float(facts.get("loadavg_start", "0").split()[0])
    load_end = float(facts.get("loadavg_end", "0").split()[0])
except ValueError:
    load_start = load_end = 0
# Only the load at the start says whether other work shared the machine: under load wif-serve
# keeps a thread per connection runnable, so the later reading is mostly the benchmark itself.
if load_start >= 0.5:
    w(f"**This machine was shared** with other work when the run began (load average {load_start:.1f} on "
      f"{facts.get('cores', '?')} cores): absolute numbers are noisier and lower than on a quiet machine; the "
      "server CPU per handshake (from the server's own CPU time) is the steadiest comparison.")
    w("")

w("## Method")
w("")
sched = facts.get("sched", "none")
sched_text = {"fifo": " Both run with real-time priority (`chrt -f 10`), so that other work on a shared machine "
              "cannot delay their wake-ups (without it, a single-threaded event loop such as nginx's waits behind "
              "other processes at every wake-up, while a many-threaded server keeps its core busy).",
              "nice": " Both run at `nice -n -15`."}.get(sched, "")
w("- The server under test runs on CPU 0 (`taskset -c 0`), the load generator "
  "(`scripts/bench/loadgen`, Rust, rustls 0.23 + aws-lc-rs) on CPU 1." + sched_text + " All three servers use the same "
  "test PKI (`scripts/gen-test-pki.sh`: root → intermediate → server/client, P-256 or `--rsa` RSA-2048) "
  "and serve the same 1,536-byte token file at `/get_wif_token`, requiring a client certificate "
  "(nginx: `ssl_verify_client on`; Flask: `ssl.CERT_REQUIRED`, as in the seed).")
w("- *New connection*: every request is a fresh TCP connection and a **full handshake with a client "
  "certificate, without session resumption** (`Resumption::disabled()`), key exchange X25519 (P-256 is "
  "also listed, without a key share, because TLS 1.2 servers need it for a P-256 certificate), rustls' "
  "default cipher suites (TLS_AES_256_GCM_SHA384 first), `Connection: close`. The client "
  "remembers the server chain it already verified (its own cost, not the server's); the server's "
  "signature is verified on every handshake.")
w("- *Keep-alive*: 100 requests per connection, then a new connection.")
w(f"- Concurrency {facts.get('concurrency', '?')} connections; each run has "
  "warm-up, then the measured time; the runs of the three servers are interleaved; the run with the "
  "median handshakes/s (keep-alive: requests/s) is shown, with the range over runs.")
w("- *Server CPU* is utime+stime from `/proc/PID/stat` over the measured time (nginx: master + worker) "
  "divided by handshakes (or requests); *server CPU busy* is that CPU time over the wall time (100% = the "
  "core was saturated, below = the load generator or the machine limited the rate); *per CPU-second* is "
  "the rate the server would reach on a full core (1000 / CPU ms per handshake). *Peak RSS* is VmHWM "
  "from `/proc/PID/status` after all runs (nginx: master + worker).")
w("- *Crypto limit*: the handshake rate one core could reach if the server did nothing but the public-key "
  "operations of a TLS 1.3 mTLS handshake: one X25519 key generation + derivation, one signature "
  "(CertificateVerify), three verifications (client certificate by the intermediate, intermediate by the "
  "root, the client's CertificateVerify). From `wif-cryptospeed` (aws-lc, under wif-serve) and "
  "`openssl speed` (OpenSSL, under nginx and Python).")
w("")

w("## The crypto limit (one core)")
w("")
w("| operation | aws-lc ops/s | OpenSSL ops/s |")
w("|---|---:|---:|")
w(f"| X25519 key generation + derivation (OpenSSL: derivation only) | {f0(aws['x25519'])} | "
  f"{f0(ossl.get('x25519_derive'))} |")
w(f"| ECDSA P-256 sign | {f0(aws['p256_sign'])} | {f0(ossl.get('p256_sign'))} |")
w(f"| ECDSA P-256 verify | {f0(aws['p256_verify'])} | {f0(ossl.get('p256_verify'))} |")
w(f"| RSA-2048 sign (aws-lc: PSS) | {f0(aws['rsa_sign'])} | {f0(ossl.get('rsa_sign'))} |")
w(f"| RSA-2048 verify | {f0(aws['rsa_verify'])} | {f0(ossl.get('rsa_verify'))} |")
w(f"| **max mTLS handshakes/s, P-256** | **{f0(limit('aws-lc', 'p256'))}** | "
  f"**{f0(limit('openssl', 'p256'))}** |")
w(f"| **max mTLS handshakes/s, RSA-2048** | **{f0(limit('aws-lc', 'rsa'))}** | "
  f"**{f0(limit('openssl', 'rsa'))}** |")
w("")

w("## Server")
w("")
for pki, case, title in CASES:
    w(f"### {title}")
    w("")
    keep = case.startswith("keepalive")
    if keep:
        w("| server | requests/s (range) | handshakes/s | p50 ms | p99 ms | server CPU ms/request | "
          "server CPU busy | requests per CPU-second | errors |")
        w("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    else:
        w("| server | handshakes/s (range) | requests/s | p50 ms | p99 ms | server CPU ms/handshake | "
          "server CPU busy | handshakes per CPU-second | of its library's crypto limit: measured (per CPU-second) | errors |")
        w("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for s in SERVERS:
        r, rng = pick(s, pki, case)
        if not r:
            w(f"| {SERVER_NAMES[s]} | no result |" + " |" * (7 if keep else 8))
            continue
        busy = r.get("server_cpu_s", 0) / r["duration_s"] if r.get("duration_s") else None
        span = f" ({f0(rng[0])}–{f0(rng[1])}, {rng[2]} runs)" if rng[2] > 1 else ""
        if keep:
            per = r.get("server_cpu_ms_per_request")
            w(f"| {SERVER_NAMES[s]} | {f0(r['requests_per_s'])}{span} | {f0(r['handshakes_per_s'])} | "
              f"{f2(r['p50_ms'])} | {f2(r['p99_ms'])} | {f3(per)} | {f0(busy * 100 if busy else None)}% | "
              f"{f0(1000 / per if per else None)} | {r['errors']} |")
        else:
            per = r.get("server_cpu_ms_per_handshake")
            lim = limit(LIB[s], "p256" if pki == "ec" else "rsa")
            frac = f"{100 * r['handshakes_per_s'] / lim:.0f}% ({100 * 1000 / per / lim:.0f}% per CPU-s)" \
                if lim and per else "–"
            w(f"| {SERVER_NAMES[s]} | {f0(r['handshakes_per_s'])}{span} | {f0(r['requests_per_s'])} | "
              f"{f2(r['p50_ms'])} | {f2(r['p99_ms'])} | {f3(per)} | {f0(busy * 100 if busy else None)}% | "
              f"{f0(1000 / per if per else None)} | {frac} | {r['errors']} |")
    if keep:
        w("")
        w("Flask's built-in server (werkzeug) answers HTTP/1.0-style and closes the connection after every "
          "response, so its keep-alive row is a new connection per request.")
    w("")

w("### Peak RSS of the server over all its runs")
w("")
w("| server | P-256 runs MiB | RSA-2048 runs MiB |")
w("|---|---:|---:|")
for s in SERVERS:
    w(f"| {SERVER_NAMES[s]} | {mib(peak_rss(s, 'ec'))} | {mib(peak_rss(s, 'rsa'))} |")
w("")
out.extend(sections.scaling_section(RES, facts))

if pipe:
    w("## Pipeline")
    w("")
    backend = pipe.get("backend")
    if backend == "double":
        w("Against `scripts/bench/double.py`, a tiny Python HTTP double answering the three endpoints with "
          "canned JSON on loopback (wif-emulate was not available to this run), so the numbers are the tools' "
          "own cost plus one loopback HTTP exchange each.")
    else:
        w("Against `wif-emulate` (its example configuration) on loopback, which verifies every request as "
          "the real services do (assertion signature, thumbprint, audience, replay, STS provider and "
          "condition, impersonation binding).")
    w("Each tool runs as its own process with the previous tool's output as stdin, started by "
      "`wif-rusage` (a small Rust program in the loadgen package, so the RSS is the tool's own and not "
      "inherited from a big parent); wall time, CPU (user+sys) and peak RSS come from `wait4(2)`; "
      "medians over the runs, max RSS.")
    w("")
    w("| tool | wall ms (median) | CPU ms (median) | user / sys ms | CPU ms (max) | peak RSS MiB | "
      "target < 5 ms CPU, < 10 MiB |")
    w("|---|---:|---:|---:|---:|---:|---|")
    for name, t in pipe["tools"].items():
        ok = "" if name.startswith("pipeline") or "[" in name else (
            "met" if t["cpu_ms"] < 5 and t["peak_rss_kib"] < 10 * 1024 else "**missed**")
        w(f"| {name} | {f1(t['wall_ms'])} | {f2(t['cpu_ms'])} | {f1(t.get('user_ms'))} / {f1(t.get('sys_ms'))} | "
          f"{f2(t['cpu_ms_max'])} | {mib(t['peak_rss_kib'])} | {ok} |")
    w("")
    w("The seed's approach for comparison (same measurement):")
    w("")
    w("| program | wall ms (median) | CPU ms (median) | user / sys ms | peak RSS MiB |")
    w("|---|---:|---:|---:|---:|")
    for name, t in pipe["compare"].items():
        if "error" in t:
            w(f"| {name} | failed: {t['error'].splitlines()[-1] if t['error'] else '?'} | | | |")
        else:
            w(f"| {name} | {f1(t['wall_ms'])} | {f2(t['cpu_ms'])} | {f1(t.get('user_ms'))} / "
              f"{f1(t.get('sys_ms'))} | {mib(t['peak_rss_kib'])} |")
    w("")

out.extend(sections.fleet_section(RES, facts))

# ---- targets ----
w("## Targets")
w("")
w("| target | measured | result |")
w("|---|---|---|")


def target(name, measured, ok):
    w(f"| {name} | {measured} | {'met' if ok else '**missed**' if ok is not None else 'reported'} |")


ws, _ = pick("wif-serve", "ec", "new-tls13")
ng, _ = pick("nginx", "ec", "new-tls13")
fl, _ = pick("flask", "ec", "new-tls13")
if ws and ng:
    ratio = ws["handshakes_per_s"] / ng["handshakes_per_s"]
    cpu_ratio = ng["server_cpu_ms_per_handshake"] / ws["server_cpu_ms_per_handshake"]
    target("new-connection handshakes/s ≥ 1.5× nginx (TLS 1.3, P-256)",
           f"{ratio:.2f}× ({f0(ws['handshakes_per_s'])} vs {f0(ng['handshakes_per_s'])}); "
           f"per server CPU-second {cpu_ratio:.2f}×", ratio >= 1.5)
if ws and fl:
    ratio = ws["handshakes_per_s"] / fl["handshakes_per_s"]
    cpu_ratio = fl["server_cpu_ms_per_handshake"] / ws["server_cpu_ms_per_handshake"]
    target("new-connection handshakes/s ≥ 3× the seed's Flask server",
           f"{ratio:.2f}× ({f0(ws['handshakes_per_s'])} vs {f0(fl['handshakes_per_s'])}); "
           f"per server CPU-second {cpu_ratio:.2f}×", ratio >= 3)
wk, _ = pick("wif-serve", "ec", "keepalive-tls13")
nk, _ = pick("nginx", "ec", "keepalive-tls13")
if ws and ws.get("server_cpu_ms_per_handshake") and limit("aws-lc", "p256"):
    share = 1000 / ws["server_cpu_ms_per_handshake"] / limit("aws-lc", "p256")
    target("≥ 60 % of the crypto limit per CPU-second on one core (TLS 1.3, P-256)",
           f"{100 * share:.0f}% ({f0(1000 / ws['server_cpu_ms_per_handshake'])} handshakes per CPU-second of "
           f"{f0(limit('aws-lc', 'p256'))})", share >= 0.6)
if wk and nk and wk.get("server_cpu_ms_per_request") and nk.get("server_cpu_ms_per_request"):
    ratio = nk["server_cpu_ms_per_request"] / wk["server_cpu_ms_per_request"]
    target("keep-alive ≥ 1.5× nginx (requests per server CPU-second)",
           f"{ratio:.2f}× ({f3(wk['server_cpu_ms_per_request'])} vs {f3(nk['server_cpu_ms_per_request'])} ms CPU "
           f"per request); requests/s {wk['requests_per_s'] / nk['requests_per_s']:.2f}× "
           f"({f0(wk['requests_per_s'])} vs {f0(nk['requests_per_s'])})", ratio >= 1.5)
rw, rn = peak_rss("wif-serve", "ec"), peak_rss("nginx", "ec")
if rw and rn:
    target("peak RSS ≤ half of nginx's under the same load", f"{mib(rw)} MiB vs {mib(rn)} MiB", rw * 2 <= rn)
factor = sections.scaling_factor(sections.scaling_runs(RES), "wif-serve")
if factor:
    target("two cores: handshakes/s reported with the scaling factor (no goal set)", f"wif-serve {factor:.2f}×", None)
fleet = sections.fleet_runs(RES)
if fleet:
    failed = {m: sections.fleet_failed(r) for m, r in fleet.items()}
    target("fleet: no failed request (with and without spreading)",
           ", ".join(f"--spread {m}: {n:,} failed, {fleet[m]['shed_503']:,} shed and served on retry"
                     for m, n in failed.items()), all(n == 0 for n in failed.values()))
    if "auto" in fleet:
        target("fleet with spreading: no client ever holds an expired token",
               f"{fleet['auto']['expired_held']:,} of {fleet['auto']['clients']:,}"
               + (f" (without spreading: {fleet['off']['expired_held']:,})" if "off" in fleet else ""),
               fleet["auto"]["expired_held"] == 0)
if pipe:
    tools = {k: v for k, v in pipe["tools"].items() if not k.startswith("pipeline") and "[" not in k}
    worst_cpu = max(tools.items(), key=lambda kv: kv[1]["cpu_ms"])
    worst_rss = max(tools.items(), key=lambda kv: kv[1]["peak_rss_kib"])
    target("each pipeline tool < 5 ms CPU per run (median)", f"highest: {worst_cpu[0]} {f2(worst_cpu[1]['cpu_ms'])} ms",
           worst_cpu[1]["cpu_ms"] < 5)
    target("each pipeline tool < 10 MiB peak RSS", f"highest: {worst_rss[0]} {mib(worst_rss[1]['peak_rss_kib'])} MiB",
           worst_rss[1]["peak_rss_kib"] < 10 * 1024)
w("")

def strace_calls(name):
    text = read(f"strace-{name}.txt")
    if not text:
        return None
    calls = {}
    for line in text.splitlines():
        m = re.match(r"\s*[\d.]+\s+[\d.]+\s+\d+\s+(\d+)\s+(?:\d+\s+)?([a-z_0-9]+)$", line)
        if m and m.group(2) != "total":
            calls[m.group(2)] = int(m.group(1))
    return calls


prof, prof_before = read("profile-serve.md"), read("profile-serve-baseline.md")
if prof:
    w("## Profile of wif-serve (new connections, TLS 1.3, P-256)")
    w("")
    w("`perf record -e cpu-clock -g` on CPU 0 while the load generator makes new connections "
      "(a software clock: this VM has no hardware counters; samples in the kernel are attributed to where "
      "interrupts are re-enabled, so the kernel split is approximate).")
    w("")
    for title, name, text in (("### Before: the baseline build (`--baseline-serve`)", "serve-baseline", prof_before),
                              ("### After: this build", "serve", prof)):
        if not text:
            continue
        if prof_before:
            w(title)
            w("")
        w(text.strip())
        w("")
        kern = read(f"profile-{name}-kernel.md")
        if kern:
            w(kern.strip())
            w("")
ws_calls, ng_calls = strace_calls("serve") or strace_calls("wif-serve"), strace_calls("nginx")
bl_calls = strace_calls("serve-baseline")
if ws_calls and ng_calls and ws_calls.get("accept4") and ng_calls.get("accept4"):
    w("System calls per connection (`strace -f -c`, new-connection load, divided by the accept4 count):")
    w("")
    before = bl_calls if bl_calls and bl_calls.get("accept4") else None
    w("| system call | wif-serve |" + (" baseline build |" if before else "") + " nginx worker |")
    w("|---|---:|" + ("---:|" if before else "") + "---:|")
    wa, na = ws_calls["accept4"], ng_calls["accept4"]
    ba = before["accept4"] if before else 1
    # Ties by name, so that a re-render gives the same table (set order changes between runs).
    names = sorted(set(ws_calls) | set(ng_calls) | set(before or {}),
                   key=lambda n: (-(ws_calls.get(n, 0) / wa + ng_calls.get(n, 0) / na), n))
    for n in names:
        a, b = ws_calls.get(n, 0) / wa, ng_calls.get(n, 0) / na
        c = (before or {}).get(n, 0) / ba
        if a >= 0.05 or b >= 0.05 or c >= 0.05:
            w(f"| {n} | {a:.1f} |" + (f" {c:.1f} |" if before else "") + f" {b:.1f} |")
    w(f"| **total** | **{sum(ws_calls.values()) / wa:.1f}** |"
      + (f" **{sum(before.values()) / ba:.1f}** |" if before else "") + f" **{sum(ng_calls.values()) / na:.1f}** |")
    w("")
ng_dso = read("profile-nginx-dso.txt")
if ng_dso:
    rows = re.findall(r"^\s+([\d.]+)%\s+(\S+)\s*$", ng_dso, re.M)
    sym = read("profile-nginx-sym.txt", "") or ""
    groups = {"malloc/free (libc)": r"malloc|free|_int_|unlink_chunk|malloc_consolidate|realloc|calloc",
              "locks (pthread_rwlock, libc)": r"pthread_rwlock|pthread_mutex",
              "name compares and hash-table walks (OpenSSL 3 provider/decoder look-ups)":
                  r"strcmp|strcasecmp|OPENSSL_LH_|OPENSSL_sk_|ossl_namemap|ossl_method|OBJ_"}
    shares = {k: 0.0 for k in groups}
    for pct, name in re.findall(r"^\s+([\d.]+)%\s+\[.\]\s+(\S+)", sym, re.M):
        for k, rx in groups.items():
            if re.search(rx, name):
                shares[k] += float(pct)
                break
    if rows:
        w("nginx's worker under the same new-connection load (`perf record -p`), by library, and the "
          "symbols that stand out (Debian's libcrypto is stripped, so its own functions show as addresses):")
        w("")
        w("| nginx worker CPU | share |")
        w("|---|---:|")
        for pct, name in rows:
            w(f"| {name} | {float(pct):.1f}% |")
        for k, v in shares.items():
            if v > 0:
                w(f"| of which {k} | {v:.1f}% |")
        w("")
sign = read("profile-sign.md")
if sign:
    w("## Profile of one wif-sign run")
    w("")
    w(sign.strip())
    w("")

analysis = None
try:
    with open(os.path.join(HERE, "analysis.md")) as f:
        analysis = f.read().strip()
except OSError:
    pass
if analysis:
    w(analysis)
    w("")

w("## Exact commands")
w("")
w("```sh")
w(f"{facts.get('invocation', 'scripts/bench/run.sh')}   # this report, which ran:")
for line in (read("commands.txt", "") or "").splitlines():
    w(re.sub(r"/tmp/wif-bench\.\w+", "$WORK", line))
w("```")
w("")
conf = read("nginx.conf")
if conf:
    w("nginx configuration (paths shortened):")
    w("")
    w("```nginx")
    w(re.sub(r"/tmp/wif-bench\.\w+", "$WORK", conf).rstrip())
    w("```")
text = "\n".join(out) + "\n"
if ARGS.out:
    with open(ARGS.out, "w", encoding="utf-8") as f:
        f.write(text)
else:
    sys.stdout.write(text)
