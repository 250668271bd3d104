"""``make bench``: generate a night, run it end to end through the CLI, report throughput.

Prints lines per second, wall time, peak resident memory of the run and the time per stage;
writes the numbers as JSON (``bench-out/bench-<lines>.json``) so runs can be compared.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

LINES_PER_ENCOUNTER = 2.65  # the generator's average at the default mix


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="therapy-claims-bench", description=__doc__.splitlines()[0])
    p.add_argument("--lines", type=int, default=100_000)
    p.add_argument("--dir", default="bench-out")
    p.add_argument("--seed", type=int, default=1)
    args = p.parse_args(argv)

    root = Path(args.dir).resolve()
    root.mkdir(parents=True, exist_ok=True)
    rd = date(2026, 11, 28)
    extract = root / f"night-{args.lines}.csv"
    exe = [sys.executable, "-m", "therapy_claims"]
    t0 = time.perf_counter()
    subprocess.run(
        [
            *exe,
            "generate",
            "--encounters",
            str(int(args.lines / LINES_PER_ENCOUNTER)),
            "--out",
            str(extract),
            "--seed",
            str(args.seed),
            "--run-date",
            rd.isoformat(),
        ],
        check=True,
    )
    gen_s = time.perf_counter() - t0

    out = root / "out"
    t0 = time.perf_counter()
    # the CLI's own entry point, reporting its peak resident memory on exit
    wrapper = (
        "import resource, sys; from therapy_claims.cli import main; rc = main(sys.argv[1:]); "
        "print('MAXRSS_KIB', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr); "
        "sys.exit(rc)"
    )
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            wrapper,
            "run",
            "--input",
            str(extract),
            "--out",
            str(out),
            "--run-date",
            rd.isoformat(),
            "-q",
        ],
        capture_output=True,
        text=True,
    )
    wall = time.perf_counter() - t0
    if proc.returncode not in (0, 1):
        print(proc.stderr, file=sys.stderr)
        return proc.returncode
    peak_kib = int(proc.stderr.rsplit("MAXRSS_KIB", 1)[1].split()[0])
    manifest = json.loads((out / "manifest" / f"run_date={rd.isoformat()}.json").read_text())
    stages = {}
    work_logs = manifest.get("stage_seconds") or {}
    stages.update(work_logs)
    lines = manifest["rows_in"]
    result = {
        "lines": lines,
        "wall_seconds": round(wall, 2),
        "lines_per_second": round(lines / wall, 1),
        "peak_rss_mib": round(peak_kib / 1024, 1),
        "stage_seconds": stages,
        "generate_seconds": round(gen_s, 2),
        "balanced": manifest["balanced"],
        "machine": {
            "python": platform.python_version(),
            "cpus": __import__("os").cpu_count(),
            "platform": platform.platform(),
        },
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    (root / f"bench-{args.lines}.json").write_text(json.dumps(result, indent=2) + "\n")
    print(f"lines            {lines:,}")
    print(f"wall time        {wall:,.1f} s  (generation {gen_s:,.1f} s, not counted)")
    print(f"lines per second {lines / wall:,.0f}")
    print(f"peak memory      {peak_kib / 1024:,.0f} MiB (resident, the run's process)")
    for name, secs in stages.items():
        print(f"  {name:<10} {secs:>8.2f} s")
    print(f"balanced         {manifest['balanced']}")
    print(f"results          {root / f'bench-{args.lines}.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
