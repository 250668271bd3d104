"""A night's settings (``RunConfig``) and where its files live.

Every run of a night writes to its own versioned folders, ``<out>/<kind>/run_date=D/run=R/``
(R: the run id), and hands its work files over through ``<out>/.staging/run_date=D/run=R/``.
Nothing a reader trusts changes until the manifest, ``<out>/manifest/run_date=D.json``, is
written: it is the night's commit record and names the run whose folders are the night
(``therapy_claims.nights`` resolves them). So a reader sees the old night or the new one whole.

PHI separation: with ``phi_out`` the layers that hold protected health information (``raw``,
``claims``: ``PHI_DIRS``) and the work files that copy raw rows (``phi_staged``) go under that
root instead, in the same versioned layout, so that it can be a folder or S3 prefix with its
own access; ``out`` keeps the analysts' layers, the manifest, the lock and the ledger
database. The manifest names every folder wherever it is. Without ``phi_out`` every path is
what it always was.
"""

from __future__ import annotations

import os
import re
import secrets
from dataclasses import dataclass, field
from datetime import UTC, date, datetime

from therapy_claims import storage

# the night's published folders, each ``<out>/<kind>/run_date=YYYY-MM-DD/``
PUBLISHED_DIRS = (
    "raw",
    "scored",
    "exceptions",
    "claims",
    "ledger",
    "validation",
    "reports",
    "worklist",
)
# the published folders holding names, addresses, member ids and dates of birth: under the
# PHI root (``RunConfig.phi_out``) when the run has one
PHI_DIRS = ("raw", "claims")


class RunError(RuntimeError):
    """A run that cannot start or go on (bad arguments, bad reference data, missing stage)."""


@dataclass
class RunConfig:
    inputs: list[str]
    out: str
    run_date: date
    reference: str | None = None
    usage: str = "T"  # ISA15: T test, P production
    max_file_bytes: int = 25_000_000  # a claim file larger than this is split
    # another run holds the output's lock: wait for it (True) or exit 2 naming the holder
    wait: bool = False
    # the ledger database: a SQLite file path or a postgresql:// URL (default: SQLite under
    # <out>/.ledger/ for a local output; an s3:// output needs one, or THERAPY_CLAIMS_LEDGER)
    ledger: str | None = None
    # reopen a night older than the reopen window (events and late files)
    reopen: bool = False
    # this run's id: names its versioned folders (one is made up when not given)
    run_id: str = ""
    # reviewed releases (overrides of errors that hold claims, ``therapy_claims.releases``):
    # a CSV file or a folder of them, local or s3://; None: ``<out>/releases/`` if it exists
    # (decided when score runs: a night without releases costs one existence check)
    releases: str | None = None
    # the root of the layers holding PHI (``PHI_DIRS``) and of the work files copying raw
    # rows: a local folder or s3:// prefix apart from ``out`` (None: everything under ``out``)
    phi_out: str | None = None
    extra: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.run_id = safe_run_id(self.run_id) if self.run_id else new_run_id()
        self.phi_out = separate_phi_root(self.out, self.phi_out)

    @property
    def rd(self) -> str:
        return self.run_date.isoformat()

    @property
    def staging(self) -> str:
        """This run's work files (handed over between stages, never published)."""
        return storage.join(self.out, ".staging", f"run_date={self.rd}", f"run={self.run_id}")

    def staged(self, *parts: str) -> str:
        """Where a stage writes: a published kind's file goes straight into this run's
        versioned folder (it is published when the manifest names the run), anything else
        into the staging area."""
        if parts and parts[0] in PUBLISHED_DIRS:
            return storage.join(self.final(parts[0]), *parts[1:])
        return storage.join(self.staging, *parts)

    def final(self, kind: str) -> str:
        """This run's versioned folder of ``kind`` (a ``PHI_DIRS`` kind under the PHI root)."""
        return storage.join(self.root(kind), kind, f"run_date={self.rd}", f"run={self.run_id}")

    @property
    def phi_root(self) -> str:
        """Where the PHI layers and work files go: ``phi_out``, else ``out``."""
        return self.phi_out or self.out

    def root(self, kind: str) -> str:
        """The root that holds this night's folder of ``kind``."""
        return self.phi_root if kind in PHI_DIRS else self.out

    @property
    def phi_staging(self) -> str:
        """This run's work files that copy raw rows (PHI): the staging area under the PHI
        root (the same folder as ``staging`` without ``phi_out``)."""
        return storage.join(self.phi_root, ".staging", f"run_date={self.rd}", f"run={self.run_id}")

    def phi_staged(self, *parts: str) -> str:
        """Where a stage writes a work file holding raw rows (PHI): the PHI root's staging."""
        return storage.join(self.phi_staging, *parts)

    def staging_areas(self) -> list[str]:
        """This run's staging areas: the output root's, and the PHI root's when apart."""
        return [self.staging] + ([self.phi_staging] if self.phi_out else [])

    @property
    def manifest_path(self) -> str:
        return storage.join(self.out, "manifest", f"run_date={self.rd}.json")


def new_run_id() -> str:
    """A run id no other run has: the UTC time and 6 random hex digits."""
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ") + "-" + secrets.token_hex(3)


def safe_run_id(value: str) -> str:
    """A given run id (e.g. an Airflow run id) as a folder name: [A-Za-z0-9._-] only."""
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", str(value)).strip("._")
    if not safe:
        raise RunError(f"run id {value!r} has no usable characters")
    return safe[:120]


def parse_run_date(value: str) -> date:
    try:
        return date.fromisoformat(str(value))
    except ValueError as exc:
        raise RunError(f"run date {value!r} is not a date (YYYY-MM-DD)") from exc


def _norm_root(path: str) -> str:
    if storage.is_s3(path):
        return path.rstrip("/")
    return os.path.realpath(path)


def overlap(a: str, b: str) -> bool:
    """Whether two roots (local folders or s3:// prefixes) are the same or one holds the other."""
    x, y = _norm_root(a), _norm_root(b)
    return x == y or x.startswith(y + "/") or y.startswith(x + "/")


def separate_phi_root(out: str, phi_out: str | None) -> str | None:
    """``phi_out`` as a run uses it: None when not given or the output root itself (nothing
    apart); ``RunError`` when one root holds the other (a reader of the analysts' root would
    find the PHI layers inside it, or the PHI root's access would cover the analysts')."""
    if not phi_out or not str(phi_out).strip():
        return None
    phi_out = str(phi_out).strip()
    if _norm_root(phi_out) == _norm_root(out):
        return None
    if overlap(out, phi_out):
        raise RunError(
            f"PHI root {phi_out} and output root {out} overlap: put them in folders (or "
            "prefixes) apart"
        )
    return phi_out


def now() -> str:
    """The current UTC time as the manifest writes it."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def config_from(params: dict, *, default_run_date: date | None = None) -> RunConfig:
    """RunConfig from a dict (DAG params / run conf): input (str or list), out, run_date,
    reference, usage, wait, ledger, reopen, run_id, releases, phi_out (the PHI root; empty: none)."""
    inputs = params.get("input") or params.get("inputs") or []
    if isinstance(inputs, str):
        inputs = [inputs]
    if not params.get("out"):
        raise RunError("no output root given (out)")
    rd = params.get("run_date") or (default_run_date.isoformat() if default_run_date else None)
    if not rd:
        raise RunError("no run date given (run_date)")
    return RunConfig(
        inputs=list(inputs),
        out=str(params["out"]),
        run_date=parse_run_date(rd),
        reference=params.get("reference") or None,
        usage=params.get("usage", "T"),
        wait=bool(params.get("wait", False)),
        ledger=params.get("ledger") or None,
        reopen=bool(params.get("reopen", False)),
        run_id=str(params.get("run_id") or ""),
        releases=params.get("releases") or None,
        phi_out=params.get("phi_out") or None,
    )
