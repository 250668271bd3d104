"""Command line: ``therapy-claims run | generate | demo | summary | show | unlock | query | ddl |
simulate-payer | acks``.

Exit codes of ``run`` (and ``acks``, for its response files): 0 every input file accepted; 1
the run completed but an input file was rejected as a whole; 2 usage error, a run that could not start or could not go on: bad
arguments or reference data, storage that failed (disk full, read-only, S3 unreachable, a
missing bucket), or an internal error. Exit 2 always comes with one line on stderr saying
what and where (``-v`` adds the traceback before it).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
import traceback
from datetime import date
from pathlib import Path

from therapy_claims import pipeline, storage

EXIT_OK, EXIT_REJECTED, EXIT_USAGE = 0, 1, 2


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # usage errors exit 2 with one line
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"therapy-claims: error: {message}\n")


def _progress(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


LEDGER_ENV = "THERAPY_CLAIMS_LEDGER"
PHI_OUT_ENV = "THERAPY_CLAIMS_PHI_OUT"


def run_config(args) -> pipeline.RunConfig:
    """The night's RunConfig from ``run``'s arguments (``--ledger`` defaults to
    ``THERAPY_CLAIMS_LEDGER``, ``--phi-out`` to ``THERAPY_CLAIMS_PHI_OUT``)."""
    return pipeline.RunConfig(
        inputs=args.input,
        out=args.out,
        run_date=pipeline.parse_run_date(args.run_date),
        reference=args.reference,
        usage=args.usage,
        wait=args.wait,
        ledger=args.ledger or os.environ.get(LEDGER_ENV) or None,
        reopen=args.reopen,
        releases=args.releases,
        phi_out=args.phi_out or os.environ.get(PHI_OUT_ENV) or None,
    )


def cmd_run(args) -> int:
    cfg = run_config(args)
    if cfg.releases:  # a path that is not there fails before the night's work, not in score
        from therapy_claims import releases

        try:
            releases.source(cfg.releases, cfg.out)
        except releases.ReleaseError as exc:
            raise pipeline.RunError(str(exc)) from exc
    manifest = pipeline.run(cfg, progress=None if args.quiet else _progress)
    if not args.quiet:
        from therapy_claims.reports import night_summary

        print(night_summary(cfg.out, cfg.rd))
    return EXIT_REJECTED if any(not i["accepted"] for i in manifest["inputs"]) else EXIT_OK


def cmd_generate(args) -> int:
    from therapy_claims import generate

    rd = pipeline.parse_run_date(args.run_date) if args.run_date else date.today()
    t0 = time.perf_counter()
    df = generate.generate(
        args.encounters,
        seed=args.seed,
        run_date=rd,
        problem_rate=args.problem_rate,
        reference_dir=args.reference,
    )
    generate.write(df, args.out)
    _progress(
        f"wrote {len(df)} service lines ({args.encounters} encounters) to {args.out} "
        f"in {time.perf_counter() - t0:.1f}s"
    )
    return EXIT_OK


def cmd_show(args) -> int:
    """Print a billed claim as a biller reads a CMS-1500 / UB-04 (from the claim ledger)."""
    from therapy_claims import ledger

    try:
        print(ledger.show(args.out, args.claim_id), end="")
    except LookupError as exc:
        print(f"therapy-claims: {exc}", file=sys.stderr)
        return EXIT_REJECTED
    return EXIT_OK


def cmd_unlock(args) -> int:
    """Remove the output's lock by hand (a holder that crashed on a host that is gone, or a
    DAG run that will not come back). Its reservations and folders are settled by the next
    run, which checks them against the manifests."""
    from therapy_claims import lock

    gone = lock.break_lock(args.out)
    if gone is None:
        print(f"{args.out} is not locked")
    else:
        print(f"removed the lock of run {gone.get('run_id')} (night {gone.get('run_date')})")
    return EXIT_OK


def cmd_summary(args) -> int:
    """Print a committed night's summary, ranked (``reports.night_summary``): its manifest,
    exceptions and worklist, and the trends of the nights before it."""
    cfg = pipeline.RunConfig(
        inputs=[], out=args.out, run_date=pipeline.parse_run_date(args.run_date)
    )
    if not storage.exists(cfg.manifest_path):
        raise pipeline.RunError(f"no manifest at {cfg.manifest_path}: has this night run?")
    from therapy_claims.reports import night_summary

    print(night_summary(cfg.out, cfg.rd))
    return EXIT_OK


def cmd_query(args) -> int:
    """Analyst SQL (DuckDB) over every committed night's layers; ``--measure`` runs a
    standard measure, ``--list`` names the views and measures (docs/analytics.md)."""
    from therapy_claims import analytics

    if args.list:
        print(analytics.listing(), end="")
        return EXIT_OK
    if (args.sql is None) == (args.measure is None):
        raise pipeline.RunError("query needs SQL or --measure NAME (one of them)")
    if not args.out:
        raise pipeline.RunError("query needs --out PATH (the output root)")
    sql = args.sql if args.measure is None else analytics.MEASURES[args.measure].sql
    analytics.query(args.out, sql, args.format, sys.stdout, reference=args.reference)
    return EXIT_OK


def cmd_ddl(args) -> int:
    """Print the Athena / Trino statements for the query layers on S3 (docs/analytics.md)."""
    from therapy_claims import analytics

    for stmt in analytics.ddl(args.out, args.engine, args.schema):
        print(stmt + ";\n")
    return EXIT_OK


def cmd_demo(args) -> int:
    """Two demo nights through the real Airflow DAGs (``airflow dags test``), the simulated
    payer's answers recorded in between (``therapy_claims.demo``): the second night sends a
    corrected claim as a replacement. Prints the second night's summary, its worklist and what
    it sent again."""
    from therapy_claims import demo, lifecycle
    from therapy_claims.reports import night_summary

    root = Path(args.dir).resolve()
    # the raw layer and the claim files apart (a folder or s3://); the DAG's tasks may run
    # elsewhere than here, so a folder is named absolutely
    phi_out = args.phi_out or None
    if phi_out and not storage.is_s3(phi_out):
        phi_out = str(Path(phi_out).resolve())
    rd = pipeline.parse_run_date(args.run_date) if args.run_date else date.today()
    done = demo.run(
        root,
        rd,
        encounters=args.encounters,
        seed=args.seed,
        problem_rate=args.problem_rate,
        phi_out=phi_out,
        airflow=not args.no_airflow,
        progress=_progress,
    )
    cfg = pipeline.RunConfig(inputs=[], out=done.out, run_date=rd)
    print(night_summary(cfg.out, cfg.rd))
    print("\n".join(worklist_summary(storage.read_json(cfg.manifest_path), rd)))
    again = demo.sent_again(cfg.out, rd)
    print(f"Sent again on {rd} ({len(again)}):" if again else f"Sent again on {rd}: none")
    print("\n".join(again))
    print("\n".join(lifecycle.summary_lines(lifecycle.read(cfg.out))))
    print(
        "Next: therapy-claims show CLAIM_ID --out "
        + done.out
        + " (a claim's lines and its history); therapy-claims query --out "
        + done.out
        + ' "SELECT * FROM claim_measures"'
    )
    return EXIT_OK


def cmd_simulate_payer(args) -> int:
    """Answer a night's 837 files as a clearinghouse and payer would (999, 277CA, 835), for
    the demo and tests; outcomes per claim in ``simulation.json`` (ids and amounts only)."""
    from collections import Counter

    from therapy_claims import payer_sim

    on = pipeline.parse_run_date(args.date) if args.date else date.today()
    try:
        record = payer_sim.run(
            args.claims,
            args.out,
            seed=args.seed,
            reject_share=args.reject_share,
            deny_share=args.deny_share,
            set_reject_share=args.set_reject_share,
            on=on,
        )
    except ValueError as exc:  # an 837 the simulator cannot read
        raise pipeline.RunError(f"simulate-payer: {exc}") from exc
    outcomes = Counter(c["outcome"] for c in record["claims"])
    _progress(
        f"answered {len(record['files'])} claim file(s), {len(record['claims'])} claims "
        f"({', '.join(f'{k} {v}' for k, v in sorted(outcomes.items())) or 'none'}) in {args.out}"
    )
    return EXIT_OK


def cmd_acks(args) -> int:
    """Record the 999, 277CA and 835 files under ``--input`` in the ``responses`` layer
    (``therapy_claims.acks``) under the output's lock, then recompute every sent claim's
    status (``therapy_claims.lifecycle``) under the same lock; exit 1 when a file was
    rejected, as ``run`` does for an input file it rejects, and 2 (one line) when another run
    holds the output."""
    from therapy_claims import acks, lifecycle

    on = acks.parse_received_on(args.received_on) if args.received_on else None
    computed = []
    result = acks.apply(
        args.input,
        args.out,
        received_on=on,
        after=lambda out: computed.append(lifecycle.refresh(out, ledger=args.ledger)),
    )
    print("\n".join(acks.summary_lines(result)))
    for state in computed:
        print("\n".join(lifecycle.summary_lines(state)))
    return EXIT_REJECTED if result.rejected else EXIT_OK


def cmd_lifecycle(args) -> int:
    """Recompute every sent claim's status from the ledger and the responses recorded, under
    the output's lock (as an acks run does after recording): after a night sent claims, its
    claims show as ``sent`` without waiting for the next responses."""
    from therapy_claims import acks, lifecycle
    from therapy_claims.config import new_run_id

    computed = []
    acks.locked(
        args.out,
        lambda out: computed.append(lifecycle.refresh(out, ledger=args.ledger)),
        holder_id=f"lifecycle-{new_run_id()}",
        command="therapy-claims lifecycle",
    )
    print("\n".join(lifecycle.summary_lines(computed[0])))
    return EXIT_OK


def _share(text: str) -> float:
    """A share between 0 and 1 (argparse type)."""
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a share between 0 and 1")
    return value


def worklist_summary(manifest: dict, rd) -> list[str]:
    """The morning's queue in short (what is held, for how much, who acts first, the oldest),
    or why there is none: a night committed before the worklist existed is still a night
    (e.g. a demo folder kept from an older version, whose night the DAG does not run again)."""
    from therapy_claims import worklist

    folder = (manifest.get("outputs") or {}).get("worklist")
    if not folder:
        return [
            f"Worklist: night {manifest.get('run_date', rd)} was published before the worklist "
            "existed; run it again (for the demo: remove the demo folder) to see one"
        ]
    return worklist.summary_lines(worklist.read(storage.join(folder, worklist.FILE_NAME)), rd)


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="therapy-claims", description=__doc__.splitlines()[0])
    p.add_argument("-v", "--verbose", action="store_true", help="log each stage's details")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    r = sub.add_parser("run", help="run one night: extracts -> scored lines, exceptions, 837 files")
    r.add_argument(
        "--input",
        action="append",
        required=True,
        metavar="PATH",
        help="extract file or folder (CSV, Parquet, JSON Lines); local or s3://; repeatable",
    )
    r.add_argument(
        "--out",
        required=True,
        metavar="PATH",
        help="output root (local folder or s3://bucket/prefix)",
    )
    r.add_argument("--run-date", required=True, metavar="YYYY-MM-DD")
    r.add_argument(
        "--reference", metavar="DIR", help="reference data folder (default: the shipped samples)"
    )
    r.add_argument(
        "--usage", choices=("T", "P"), default="T", help="ISA15: T test (default) or P production"
    )
    r.add_argument(
        "--wait",
        action="store_true",
        help="wait for another run's lock on the output instead of exiting 2",
    )
    r.add_argument(
        "--ledger",
        metavar="URL",
        help=f"the ledger database: a SQLite file path or a postgresql:// URL "
        f"(default: ${LEDGER_ENV}, else SQLite under <out>/.ledger/)",
    )
    r.add_argument(
        "--reopen", action="store_true", help="allow reopening a night older than the window"
    )
    r.add_argument(
        "--releases",
        metavar="PATH",
        help="reviewed releases: a CSV file or a folder of them, local or s3:// "
        '(default: <out>/releases/ if it exists; docs/outputs.md "Releases")',
    )
    r.add_argument(
        "--phi-out",
        metavar="PATH",
        help="root for the layers holding PHI (raw extracts, claim files): a local folder or "
        "s3://bucket/prefix with its own access, apart from --out, which then holds no names, "
        f"addresses, member ids or dates of birth (default: ${PHI_OUT_ENV}, else under --out)",
    )
    r.add_argument("-q", "--quiet", action="store_true", help="no progress and no summary")
    r.set_defaults(fn=cmd_run)

    g = sub.add_parser("generate", help="write a synthetic night of extracts (no real patients)")
    g.add_argument("--encounters", type=int, required=True, metavar="N")
    g.add_argument("--out", required=True, metavar="FILE", help=".csv, .parquet or .jsonl")
    g.add_argument("--seed", type=int, default=0)
    g.add_argument(
        "--problem-rate", type=float, default=0.08, help="share of encounters with a problem"
    )
    g.add_argument(
        "--run-date", metavar="YYYY-MM-DD", help="dates of service fall in the week before"
    )
    g.add_argument("--reference", metavar="DIR")
    g.set_defaults(fn=cmd_generate)

    d = sub.add_parser(
        "demo",
        help="two synthetic nights through the Airflow DAGs, the simulated payer's answers "
        "recorded in between (the second night sends a corrected claim)",
    )
    d.add_argument("--dir", default="demo-data", help="where the demo landing zone and outputs go")
    d.add_argument("--encounters", type=int, default=300)
    d.add_argument("--seed", type=int, default=7)
    d.add_argument("--problem-rate", type=float, default=0.1)
    d.add_argument("--run-date", metavar="YYYY-MM-DD")
    d.add_argument(
        "--no-airflow", action="store_true", help="run the same stages in-process instead"
    )
    d.add_argument(
        "--phi-out",
        metavar="PATH",
        help="put the raw layer and the claim files under this root instead of <dir>/out",
    )
    d.set_defaults(fn=cmd_demo)

    s = sub.add_parser(
        "summary",
        help="print a night's summary: held dollars and codes ranked, split by clinic and "
        "payer, the oldest open claims, trends",
    )
    s.add_argument("--out", required=True, metavar="PATH", help="output root")
    s.add_argument("--date", "--run-date", dest="run_date", required=True, metavar="YYYY-MM-DD")
    s.set_defaults(fn=cmd_summary)

    sh = sub.add_parser(
        "show", help="print one claim (CMS-1500 / UB-04 view) and where it was sent"
    )
    sh.add_argument("claim_id", metavar="CLAIM_ID", help="CLM01, e.g. TC0123456789ABCDE or ...-2")
    sh.add_argument("--out", required=True, metavar="PATH", help="output root")
    sh.set_defaults(fn=cmd_show)

    u = sub.add_parser(
        "unlock", help="remove the output's lock left by a run that crashed (names the holder)"
    )
    u.add_argument("--out", required=True, metavar="PATH", help="output root")
    u.set_defaults(fn=cmd_unlock)

    sp = sub.add_parser(
        "simulate-payer",
        help="answer a night's 837 files with simulated 999, 277CA and 835 files (demo, tests)",
    )
    sp.add_argument(
        "--claims", required=True, metavar="DIR", help="folder of the 837 files (*.x12) sent"
    )
    sp.add_argument("--out", required=True, metavar="DIR", help="where the responses go")
    sp.add_argument("--seed", type=int, default=0, help="same files and seed: same responses")
    sp.add_argument(
        "--reject-share",
        type=_share,
        default=0.1,
        metavar="F",
        help="share of claims the 277CA rejects (default 0.1)",
    )
    sp.add_argument(
        "--deny-share",
        type=_share,
        default=0.1,
        metavar="F",
        help="share of the accepted claims the 835 denies (default 0.1)",
    )
    sp.add_argument(
        "--set-reject-share",
        type=_share,
        default=0.0,
        metavar="F",
        help="share of transaction sets the 999 rejects (default 0)",
    )
    sp.add_argument("--date", metavar="YYYY-MM-DD", help="the responses' date (default today)")
    sp.set_defaults(fn=cmd_simulate_payer)

    a = sub.add_parser(
        "acks",
        help="record returned 999, 277CA and 835 files in the responses layer "
        "(told apart by content; each validated whole)",
    )
    a.add_argument(
        "--input",
        action="append",
        required=True,
        metavar="PATH",
        help="response file or folder, local or s3://; repeatable (837s and other files are "
        "skipped and reported)",
    )
    a.add_argument(
        "--out", required=True, metavar="PATH", help="output root (local folder or s3://)"
    )
    a.add_argument(
        "--received-on",
        metavar="YYYY-MM-DD",
        help="the date the files were received (the layer's partition; default today, UTC)",
    )
    a.add_argument(
        "--ledger",
        metavar="URL",
        help="the ledger database the claims' statuses are computed against (as run's; "
        "needed for an s3:// output)",
    )
    a.set_defaults(fn=cmd_acks)

    lc = sub.add_parser(
        "lifecycle",
        help="recompute every sent claim's status (sent ... paid, denied) from the ledger and "
        "the responses recorded; prints the balance",
    )
    lc.add_argument(
        "--out", required=True, metavar="PATH", help="output root (local folder or s3://)"
    )
    lc.add_argument("--ledger", metavar="URL", help="the ledger database (as run's)")
    lc.set_defaults(fn=cmd_lifecycle)

    from therapy_claims.analytics import MEASURES

    q = sub.add_parser(
        "query",
        help="SQL over every committed night and the responses after (DuckDB views lines, "
        "exceptions, claims, worklist, nights, claim_lifecycle, ...: query --list)",
    )
    q.add_argument("sql", nargs="?", metavar="SQL", help="the query (or --measure / --list)")
    q.add_argument("--out", metavar="PATH", help="output root (local folder or s3://bucket/prefix)")
    q.add_argument("--format", choices=("table", "csv", "json"), default="table")
    q.add_argument("--measure", choices=tuple(MEASURES), help="run a standard measure")
    q.add_argument("--list", action="store_true", help="list the views and the measures")
    q.add_argument(
        "--reference",
        metavar="DIR",
        help="reference folder whose payer_reasons.csv the payer_reason_rules view reads "
        "(default: the shipped one)",
    )
    q.set_defaults(fn=cmd_query)

    dd = sub.add_parser(
        "ddl", help="print Athena / Trino CREATE TABLE statements and partitions for the layers"
    )
    dd.add_argument("--engine", choices=("athena", "trino"), required=True)
    dd.add_argument("--out", required=True, metavar="s3://BUCKET/PREFIX", help="output root")
    dd.add_argument("--schema", default="therapy_claims", help="database / schema name")
    dd.set_defaults(fn=cmd_ddl)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    # -v is for the night's stages: GX's INFO records are about its own internals (hundreds of
    # them while it is imported). Some GX modules set their own logger to INFO when imported,
    # so the handlers drop them too.
    logging.getLogger("great_expectations").setLevel(logging.WARNING)
    for handler in logging.getLogger().handlers:
        handler.addFilter(_no_gx_info)
    try:
        return args.fn(args)
    except (pipeline.RunError, storage.StorageError) as exc:
        return _fail(args, str(exc), exc)
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # noqa: BLE001 - a bug or an unforeseen failure: one line, exit 2
        lines = str(exc).strip().splitlines()
        what = f"{type(exc).__name__}: {lines[0].strip()}" if lines else type(exc).__name__
        return _fail(args, f"internal error in {args.command}: {what}", exc)


def _no_gx_info(record: logging.LogRecord) -> bool:
    return record.levelno >= logging.WARNING or not record.name.startswith("great_expectations")


def _fail(args, message: str, exc: BaseException) -> int:
    """Exit 2 with ``message`` as the one line on stderr; with ``-v`` the traceback first
    (for an error from the second process, it includes that process's traceback)."""
    if args.verbose:
        traceback.print_exception(exc, file=sys.stderr)
    line = " ".join(message.splitlines()).strip()
    print(f"therapy-claims: error: {line}", file=sys.stderr, flush=True)
    return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
