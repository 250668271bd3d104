"""``make bench``: the whole night end to end through the CLI, measured against a floor.

For each size (default 100k, 300k and 1M service lines) it generates a realistic night with
``therapy-claims generate``, measures the floor (the median of 3 runs of pyarrow reading the same CSV and writing it once
as Parquet), then runs ``therapy-claims run`` in a child process and reports wall time, lines
per second, peak resident memory, the ratio to the floor and the time per sub-stage (from the
run's manifest). It checks the run is correct (the manifest balances; the smallest claim files
pass pyx12), prints how time and memory grow with size and the targets of the performance
issue, and writes everything to ``<dir>/bench-<UTC time>.json`` (and ``bench-latest.json``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

LINES_PER_ENCOUNTER = 2.65  # the generator's average at the default mix
RUN_DATE = date(2026, 11, 28)
STAGE_ORDER = (
    "read",
    "typing",
    "combine",
    "gx",
    "gx_wait",
    "units",
    "rules",
    "write",
    "claims",
    "x12",
    "reserve",
    "reports",
    "manifest",
)
WRAPPER = (
    "import resource, sys; from therapy_claims.cli import main; rc = main(sys.argv[1:]); "
    "print('MAXRSS_KIB', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, "
    "resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr); "
    "sys.exit(rc)"
)


def floor_seconds(csv: Path, out: Path, runs: int = 3) -> float:
    """The median of ``runs`` timings of pyarrow reading the CSV and writing it as Parquet
    (one run varies by a third on this kind of machine)."""
    import statistics

    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        table = pacsv.read_csv(csv)
        pq.write_table(table, out)
        times.append(time.perf_counter() - t0)
        del table
    return statistics.median(times)


def pyx12_ok(path: Path) -> bool:
    import io

    import pyx12.params
    import pyx12.x12n_document

    with open(path, encoding="ascii") as fh:
        return bool(
            pyx12.x12n_document.x12n_document(
                param=pyx12.params.params(),
                src_file=fh,
                fd_997=io.StringIO(),
                fd_html=None,
                fd_json=None,
            )
        )


def _rss_kib(pid: int) -> int:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    return next(
        (int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS")), 0
    )


def _children(pid: int) -> list[int]:
    out: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*/children"):
        try:
            out += [int(c) for c in task.read_text().split()]
        except OSError:
            pass
    return out


def _sample_rss(proc: subprocess.Popen, every: float = 0.1) -> tuple[int, int]:
    """The largest resident size (KiB) of ``proc`` plus its child processes while it runs, and
    of its child processes alone. (A spawned process's own ``getrusage`` peak would start
    from the size of the process it was forked from.)"""
    import threading

    peak = children_peak = 0
    done = threading.Event()

    def sample() -> None:
        nonlocal peak, children_peak
        while not done.is_set():
            children = sum(map(_rss_kib, _children(proc.pid)))
            peak = max(peak, _rss_kib(proc.pid) + children)
            children_peak = max(children_peak, children)
            done.wait(every)

    t = threading.Thread(target=sample, daemon=True)
    t.start()
    while proc.poll() is None:
        time.sleep(every)
    done.set()
    t.join()
    return peak, children_peak


def one_size(lines: int, root: Path, seed: int, check_files: int) -> dict:
    exe = [sys.executable, "-m", "therapy_claims"]
    csv = root / f"night-{lines}.csv"
    t0 = time.perf_counter()
    subprocess.run(
        [
            *exe,
            "generate",
            "--encounters",
            str(max(1, int(lines / LINES_PER_ENCOUNTER))),
            "--out",
            str(csv),
            "--seed",
            str(seed),
            "--run-date",
            RUN_DATE.isoformat(),
        ],
        check=True,
    )
    gen = time.perf_counter() - t0
    floor = floor_seconds(csv, root / f"floor-{lines}.parquet")
    out = root / f"out-{lines}"
    # a night of its own, as the nightly job writes it (a rerun of the same night into its
    # earlier outputs would also tidy those away), so that runs compare
    shutil.rmtree(out, ignore_errors=True)
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            WRAPPER,
            "run",
            "--input",
            str(csv),
            "--out",
            str(out),
            "--run-date",
            RUN_DATE.isoformat(),
            "-q",
        ],
        stdout=subprocess.DEVNULL,
        stderr=(log := open(root / f"run-{lines}.log", "w+")),  # noqa: SIM115 (closed below)
    )
    sampled_kib, child_kib = _sample_rss(proc)
    proc.wait()
    log.seek(0)
    stderr = log.read()
    log.close()
    wall = time.perf_counter() - t0
    if proc.returncode not in (0, 1):
        raise SystemExit(f"the run failed (exit {proc.returncode}):\n{stderr[-3000:]}")
    # the run's own peak (getrusage), its second processes' largest (validate, then publish's;
    # sampled) and the largest sum of all sampled every 0.1 s: the most the run held at once
    main_kib = int(stderr.rsplit("MAXRSS_KIB", 1)[1].split()[0])
    peak_kib = max(sampled_kib, main_kib)
    m = json.loads((out / "manifest" / f"run_date={RUN_DATE.isoformat()}.json").read_text())
    files = sorted((Path(f["path"]) for f in m["claim_files"]), key=lambda p: p.stat().st_size)
    checked = files[:check_files]
    t0 = time.perf_counter()
    verdicts = {p.name: pyx12_ok(p) for p in checked}
    pyx12_s = time.perf_counter() - t0
    return {
        "lines": m["rows_in"],
        "csv_bytes": csv.stat().st_size,
        "generate_seconds": round(gen, 2),
        "floor_seconds": round(floor, 3),
        "wall_seconds": round(wall, 2),
        "ratio_to_floor": round(wall / floor, 1),
        "lines_per_second": round(m["rows_in"] / wall, 1),
        "peak_rss_mib": round(peak_kib / 1024, 1),
        "peak_rss_main_mib": round(main_kib / 1024, 1),
        "peak_rss_child_mib": round(child_kib / 1024, 1),
        "timings": m.get("timings", {}),
        "stage_seconds": m.get("stage_seconds", {}),
        "balanced": m["balanced"],
        "claim_files": len(m["claim_files"]),
        "claim_bytes": sum(f.get("bytes", 0) for f in m["claim_files"]),
        "lines_billed": m["lines_billed"],
        "pyx12": verdicts,
        "pyx12_seconds": round(pyx12_s, 1),
    }


def report(results: list[dict]) -> list[str]:
    out = []
    for r in results:
        out.append(f"\n== {r['lines']:,} lines ({r['csv_bytes'] / 2**20:,.0f} MiB CSV) ==")
        out.append(
            f"wall time        {r['wall_seconds']:,.1f} s   floor {r['floor_seconds']:.2f} s   "
            f"ratio {r['ratio_to_floor']:.1f}x"
        )
        out.append(f"lines per second {r['lines_per_second']:,.0f}")
        out.append(
            f"peak memory      {r['peak_rss_mib']:,.0f} MiB (resident, the run's processes at "
            f"once; alone: the run {r['peak_rss_main_mib']:,.0f}, "
            f"its second processes {r['peak_rss_child_mib']:,.0f})"
        )
        t = r["timings"]
        # with gx_wait, validate (gx) ran in a second process alongside units and rules: only
        # the wait adds to the wall time
        parallel = "gx_wait" in t
        # x12 (the 837 writer) is part of claims; gx ran alongside when gx_wait is there
        known = sum(v for k, v in t.items() if k != "x12" and not (parallel and k == "gx"))
        out.append("time per stage   (seconds, share of wall)")
        for name in [*STAGE_ORDER, *sorted(set(t) - set(STAGE_ORDER))]:
            if name in t:
                note = {
                    "gx": "  (second process, alongside units and rules)" if parallel else "",
                    "claims": "  (publish: order, claim files in two processes, ledger)",
                    "x12": "  (part of claims: the 837 writer, summed over both processes)",
                }.get(name, "")
                out.append(
                    f"  {name:<10} {t[name]:>8.2f}  {100 * t[name] / r['wall_seconds']:5.1f}%{note}"
                )
        out.append(
            f"  {'other':<10} {r['wall_seconds'] - known:>8.2f}  "
            f"{100 * (r['wall_seconds'] - known) / r['wall_seconds']:5.1f}%  (start-up, imports, I/O between stages)"
        )
        per_line = 1e6 * t.get("x12", 0) / max(1, r["lines_billed"])
        out.append(
            f"837 writing      {t.get('x12', 0):.2f} s for {r['lines_billed']:,} billed lines "
            f"({per_line:.1f} us/line), {r['claim_files']} files, {r['claim_bytes'] / 2**20:,.1f} MiB"
        )
        ok = all(r["pyx12"].values()) and r["pyx12"]
        out.append(
            f"correct          balanced={r['balanced']}  pyx12 on {len(r['pyx12'])} smallest file(s): "
            f"{'OK' if ok else 'FAILED ' + str(r['pyx12'])}"
        )
    if len(results) > 1:
        base = results[0]
        out.append("\n== growth with size ==")
        for r in results:
            out.append(
                f"  {r['lines']:>10,} lines  {r['wall_seconds']:>8.1f} s  x{r['wall_seconds'] / base['wall_seconds']:.1f} time"
                f"  {r['peak_rss_mib']:>7,.0f} MiB  x{r['peak_rss_mib'] / base['peak_rss_mib']:.1f} memory"
                f"  ({r['lines'] / base['lines']:.1f}x lines)"
            )
    big = results[-1]
    gx_share = big["timings"].get("gx", 0) / big["wall_seconds"]
    out.append(f"\n== targets at {big['lines']:,} lines ==")
    out.append(
        f"  within 8x floor          {big['ratio_to_floor']:.1f}x  {'PASS' if big['ratio_to_floor'] <= 8 else 'FAIL'}"
    )
    out.append(
        f"  peak memory < 3 GiB      {big['peak_rss_mib']:,.0f} MiB  {'PASS' if big['peak_rss_mib'] < 3072 else 'FAIL'}"
    )
    if len(results) > 1:
        growth = big["wall_seconds"] / results[0]["wall_seconds"]
        lines_growth = big["lines"] / results[0]["lines"]
        limit = 11 * lines_growth / 10
        out.append(
            f"  time growth <= {limit:.1f}x     {growth:.1f}x  {'PASS' if growth <= limit else 'FAIL'}"
        )
    out.append(
        f"  GX < 25% of total        {100 * gx_share:.0f}%  {'PASS' if gx_share < 0.25 else 'FAIL'}"
    )
    out.append(
        f"  correctness              {'PASS' if big['balanced'] and all(big['pyx12'].values()) else 'FAIL'}"
    )
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="therapy-claims-bench", description=__doc__.splitlines()[0])
    p.add_argument(
        "--lines", type=int, default=1_000_000, help="the largest size (default 1,000,000)"
    )
    p.add_argument(
        "--scaling",
        default="100000,300000",
        help="smaller sizes run first to show growth (comma-separated; empty for none)",
    )
    p.add_argument("--dir", default="bench-out")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--check-files", type=int, default=2, help="how many claim files pyx12 checks")
    args = p.parse_args(argv)

    root = Path(args.dir).resolve()
    root.mkdir(parents=True, exist_ok=True)
    sizes = sorted(
        {int(s) for s in args.scaling.split(",") if s.strip() and int(s) < args.lines}
        | {args.lines}
    )
    results = []
    for n in sizes:
        print(f"[{time.strftime('%H:%M:%S')}] {n:,} lines ...", file=sys.stderr, flush=True)
        results.append(one_size(n, root, args.seed, args.check_files))
    lines = report(results)
    print("\n".join(lines))
    load = os.getloadavg()
    doc = {
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "commit": subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True
        ).stdout.strip(),
        "machine": {
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "load_average_at_end": [round(x, 2) for x in load],
        },
        "results": results,
        "report": lines,
    }
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    for name in (f"bench-{stamp}.json", "bench-latest.json"):
        (root / name).write_text(json.dumps(doc, indent=2) + "\n")
    print(f"\nresults          {root / f'bench-{stamp}.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
