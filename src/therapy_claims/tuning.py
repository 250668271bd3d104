"""Process and thread tuning, in one place: what the night's entry points (the CLI, a DAG
task, an event task) apply the same way, and nothing at import time.

These change how fast a night runs, never what it writes.
"""

from __future__ import annotations

import os
import sys
import threading

HUGE_PAGES_SETTING = "THERAPY_CLAIMS_HUGE_PAGES"


def tune_process() -> None:
    """Tune this process (and the processes it starts) for a night's run.

    Transparent huge pages are turned off (Linux ``prctl(PR_SET_THP_DISABLE)``, kept across
    fork and exec). Arrow's allocator (mimalloc) asks for huge pages on its arena and NumPy on
    every large array; the allocator then gives freed memory back 64 KiB at a time, which
    splits a huge page, and the next use faults in and zeroes a whole 2 MiB page again: ingest
    spent most of its time in the kernel (docs/performance.md). ``THERAPY_CLAIMS_HUGE_PAGES=1``
    keeps the system's setting. Calling it again does nothing more."""
    if sys.platform != "linux" or os.environ.get(HUGE_PAGES_SETTING) == "1":
        return
    import ctypes

    pr_set_thp_disable = 41
    try:
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_thp_disable, 1, 0, 0, 0)
    except (OSError, AttributeError):  # no such call here: the system's setting stays
        pass


def background_thread() -> None:
    """Lowest CPU priority for the calling thread (Linux: a thread has its own nice value), so
    work it does in the background uses what the stages leave of the cores rather than
    slowing them. Best effort: where it is not allowed, the thread keeps its priority."""
    if sys.platform == "linux":
        try:
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)
        except OSError:
            pass


def release_memory() -> None:
    """Give Arrow's freed memory back to the system (its allocator keeps it for a while): at
    a million lines hundreds of MiB between stages, while another process fills up."""
    import pyarrow as pa

    pa.default_memory_pool().release_unused()
