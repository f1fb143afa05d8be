"""Wall-clock time of `lazysi verify` and `lazysi verify --quick` (each in a fresh process).

Runs each command ``--repeat`` times, cold (empty cache directory: mpmath references and the
regeneration comparison recomputed) and warm (cache filled by the cold run), prints a table and
writes JSON. CPU seconds (user + sys, children included) are reported next to wall time because this machine's
2 cores are shared: wall time depends on the load, CPU time much less.

    python benchmarks/verify_timing.py --out results/verify_timing.json
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def run_once(args: list[str], cache_dir: str) -> dict:
    env = dict(os.environ, LAZYSI_CACHE_DIR=cache_dir)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    load = os.getloadavg()[0]
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "lazysi", "verify", "--json", *args], capture_output=True, text=True, env=env, check=False
    )
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    try:
        rows = json.loads(proc.stdout)
    except ValueError:
        rows = []
    return {
        "command": "lazysi verify " + " ".join(args),
        "exit": proc.returncode,
        "wall_s": round(wall, 2),
        "cpu_s": round(cpu, 2),  # user + sys of the process and its children (K0's background check)
        "load_before": round(load, 2),
        "claims_s": round(sum(r["seconds"] for r in rows), 2),
        "claims": len(rows),
        "passed": sum(bool(r["passed"]) for r in rows),
        "slowest": sorted(((r["id"], round(r["seconds"], 2)) for r in rows), key=lambda p: -p[1])[:3],
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="verify_timing.json", help="JSON file to write")
    p.add_argument("--repeat", type=int, default=1, help="warm runs per command (default 1)")
    a = p.parse_args(argv)
    rows = []
    cache = tempfile.mkdtemp(prefix="lazysi-verify-cache-")
    try:
        for label, args in (("quick", ["--quick"]), ("full", [])):
            # cold for quick fills only the quick grid; full's cold run fills the rest
            rows.append({"mode": label, "cache": "cold", **run_once(args, cache)})
            for _ in range(a.repeat):
                rows.append({"mode": label, "cache": "warm", **run_once(args, cache)})
    finally:
        shutil.rmtree(cache, ignore_errors=True)
    print(f"{'command':<28} {'cache':<5} {'exit':>4} {'wall s':>7} {'cpu s':>7} {'load':>5} {'claims s':>8} {'passed':>7}  slowest")
    for r in rows:
        print(f"{r['command']:<28} {r['cache']:<5} {r['exit']:>4} {r['wall_s']:>7.2f} {r['cpu_s']:>7.2f} {r['load_before']:>5.1f} {r['claims_s']:>8.2f} "
              f"{r['passed']:>3}/{r['claims']:<3}  {r['slowest']}")
    record = {
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "load_avg": os.getloadavg() if hasattr(os, "getloadavg") else None,
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "rows": rows,
    }
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(record, indent=2) + "\n")
    print(f"written {a.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
