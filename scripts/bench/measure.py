#!/usr/bin/env python3
"""Pipeline benchmark: runs wif-sign | wif-azure | wif-sts | wif-impersonate against an emulator
(or double) on loopback RUNS times, one tool at a time with the previous tool's output as its
stdin, and records each tool's wall time, own CPU time (user+sys) and peak RSS from wait4(2).
Then the comparisons: a JVM start (the seed's generator is Java), and Python's google-auth
doing the STS exchange + impersonation against the same endpoints. Writes one JSON file.

usage: measure.py --bin DIR --pki DIR --base URL --tenant T --client-id ID --audience AUD
                  --service-account SA --runs N --work DIR --out FILE [--java-dir DIR]
"""
import argparse
import json
import os
import statistics
import subprocess
import sys


RUSAGE = None


def run(cmd, stdin_bytes=b"", env=None, work="."):
    """Runs cmd under wif-rusage; returns (stdout, stderr, returncode, wall_s, cpu_s, maxrss_kib).

    wif-rusage (a small Rust program) starts the command, so the peak RSS is the command's own
    and not this Python process's, which a forked child would inherit until it execs."""
    inp, usage = os.path.join(work, "stdin.tmp"), os.path.join(work, "rusage.json")
    with open(inp, "wb") as f:
        f.write(stdin_bytes)
    p = subprocess.run([RUSAGE, "--in", inp, "--out", usage, "--"] + cmd, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, env=env)
    try:
        with open(usage) as f:
            u = json.load(f)
        os.unlink(usage)
    except (OSError, ValueError):
        sys.exit(f"measure.py: wif-rusage failed for {cmd[0]}: {p.stderr.decode(errors='replace')}")
    return p.stdout, p.stderr, u["exit"], u["wall_s"], u["user_s"] + u["sys_s"], u["maxrss_kib"], u


def summarize(samples):
    def med(key):
        return statistics.median(s[key] for s in samples)

    return {
        "runs": len(samples),
        "wall_ms": round(med("wall") * 1000, 2),
        "wall_ms_min": round(min(s["wall"] for s in samples) * 1000, 2),
        "cpu_ms": round(med("cpu") * 1000, 2),
        "cpu_ms_max": round(max(s["cpu"] for s in samples) * 1000, 2),
        "user_ms": round(med("user") * 1000, 2),
        "sys_ms": round(med("sys") * 1000, 2),
        "peak_rss_kib": max(s["rss"] for s in samples),
        "peak_rss_kib_median": int(med("rss")),
    }


def main():
    ap = argparse.ArgumentParser()
    for a in ("--bin", "--pki", "--base", "--tenant", "--client-id", "--audience", "--service-account", "--work",
              "--out"):
        ap.add_argument(a, required=True)
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--rusage", required=True, help="the wif-rusage binary")
    ap.add_argument("--java-dir")
    ap.add_argument("--backend", default="double")
    ap.add_argument("--scope", default="api://wif-gcp/.default")
    ap.add_argument("--variant", action="append", default=[],
                    help="LABEL=DIR: also measure the tools built in DIR (e.g. with another build setting)")
    args = ap.parse_args()
    global RUSAGE
    RUSAGE = args.rusage
    env = {k: v for k, v in os.environ.items() if not k.startswith("WIF_")}
    token_out = os.path.join(args.work, "wif_token.txt")
    azure_token_file = os.path.join(args.work, "azure_token.txt")

    def pipeline(bindir, suffix):
        b = lambda name: os.path.join(bindir, name)  # noqa: E731
        steps = [
            ("wif-sign", [b("wif-sign"), "--client-id", args.client_id, "--tenant-id", args.tenant, "--authority",
                          args.base, "--key", os.path.join(args.pki, "app-rsa.key"), "--cert",
                          os.path.join(args.pki, "app-rsa.crt")]),
            ("wif-azure", [b("wif-azure"), "--scope", args.scope]),
            ("wif-sts", [b("wif-sts"), "--audience", args.audience, "--token-url", args.base + "/v1/token"]),
            ("wif-impersonate", [b("wif-impersonate"), "--service-account", args.service_account, "--endpoint",
                                 args.base, "--token-out", token_out]),
        ]
        samples = {name + suffix: [] for name, _ in steps}
        samples["pipeline (4 tools)" + suffix] = []
        for i in range(args.runs):
            doc = b""
            total = {"wall": 0.0, "cpu": 0.0, "rss": 0, "user": 0.0, "sys": 0.0}
            for name, cmd in steps:
                out, err, rc, wall, cpu, rss, u = run(cmd, doc, env, args.work)
                if rc != 0:
                    sys.exit(f"measure.py: {name} failed (exit {rc}): {err.decode(errors='replace')}")
                samples[name + suffix].append({"wall": wall, "cpu": cpu, "rss": rss, "user": u["user_s"],
                                               "sys": u["sys_s"]})
                total["wall"] += wall
                total["cpu"] += cpu
                total["rss"] = max(total["rss"], rss)
                total["user"] += u["user_s"]
                total["sys"] += u["sys_s"]
                doc = out
                if name == "wif-azure" and i == 0 and not suffix:
                    with open(azure_token_file, "w") as f:
                        f.write(json.loads(out)["azure"]["token"])
            samples["pipeline (4 tools)" + suffix].append(total)
        return samples

    samples = pipeline(args.bin, "")
    for v in args.variant:
        label, _, bindir = v.rpartition("=")
        samples.update(pipeline(bindir, f" [{label}]"))

    result = {"backend": args.backend, "tools": {k: summarize(v) for k, v in samples.items()}, "compare": {}}

    comparisons = [
        ("python3 -c pass (interpreter start)", [sys.executable, "-c", "pass"]),
        ("python3 google-auth STS + impersonation", [sys.executable, os.path.join(os.path.dirname(__file__),
                                                     "gauth_exchange.py"), azure_token_file, args.base,
                                                     args.audience, args.service_account]),
        ("java -version (JVM start)", ["java", "-version"]),
    ]
    if args.java_dir:
        comparisons.append(("java Hello (trivial class)", ["java", "-cp", args.java_dir, "Hello"]))
    for name, cmd in comparisons:
        s = []
        for _ in range(max(3, args.runs // 2)):
            out, err, rc, wall, cpu, rss, u = run(cmd, b"", env, args.work)
            if rc != 0:
                result["compare"][name] = {"error": err.decode(errors="replace")[-300:]}
                break
            s.append({"wall": wall, "cpu": cpu, "rss": rss, "user": u["user_s"], "sys": u["sys_s"]})
        else:
            result["compare"][name] = summarize(s)
    with open(args.out, "w") as f:
        json.dump(result, f, indent=1)


if __name__ == "__main__":
    main()
