"""A night's settings (``RunConfig``) and where its files live: the staging area the stages
hand over through, and the published folders the night is swapped into."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime

from therapy_claims import storage

# the night's published folders, each ``<out>/<kind>/run_date=YYYY-MM-DD/``
PUBLISHED_DIRS = ("raw", "scored", "exceptions", "claims", "ledger", "validation", "reports")


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
    extra: dict = field(default_factory=dict)

    @property
    def rd(self) -> str:
        return self.run_date.isoformat()

    @property
    def staging(self) -> str:
        return storage.join(self.out, ".staging", f"run_date={self.rd}")

    def staged(self, *parts: str) -> str:
        return storage.join(self.staging, *parts)

    def final(self, kind: str) -> str:
        return storage.join(self.out, kind, f"run_date={self.rd}")

    @property
    def manifest_path(self) -> str:
        return storage.join(self.out, "manifest", f"run_date={self.rd}.json")


def parse_run_date(value: str) -> date:
    try:
        return date.fromisoformat(str(value))
    except ValueError as exc:
        raise RunError(f"run date {value!r} is not a date (YYYY-MM-DD)") from exc


def now() -> str:
    """The current UTC time as the manifest writes it."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def config_from(params: dict, *, default_run_date: date | None = None) -> RunConfig:
    """RunConfig from a dict (DAG params / run conf): input (str or list), out, run_date, reference."""
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
    )
