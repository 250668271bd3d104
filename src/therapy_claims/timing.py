"""Where a run's time goes: named sub-stage timers for the benchmark and the manifest.

``with timing.record("typing"): ...`` adds the block's wall time to a per-process total;
each pipeline stage ``take()``s the totals into its stage summary (a DAG task is a process of
its own; the CLI runs the stages one after another), and the manifest sums them.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

_totals: dict[str, float] = {}


@contextmanager
def record(name: str) -> Iterator[None]:
    t0 = time.perf_counter()
    try:
        yield
    finally:
        _totals[name] = _totals.get(name, 0.0) + time.perf_counter() - t0


def take() -> dict[str, float]:
    """The totals so far (rounded), and start afresh."""
    out = {k: round(v, 3) for k, v in _totals.items()}
    _totals.clear()
    return out


def merge(*parts: dict[str, float] | None) -> dict[str, float]:
    out: dict[str, float] = {}
    for part in parts:
        for k, v in (part or {}).items():
            out[k] = round(out.get(k, 0.0) + v, 3)
    return out


def merge_into(part: dict[str, float]) -> None:
    """Add ``part`` (e.g. the totals another process took) to this process's totals."""
    for k, v in part.items():
        _totals[k] = _totals.get(k, 0.0) + v
