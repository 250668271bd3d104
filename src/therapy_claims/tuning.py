"""Process and thread tuning, in one place: what the night's entry points (the CLI, a DAG
task, an event task) apply the same way, and nothing at import time.

These change how fast a night runs, never what it writes.
"""

from __future__ import annotations

import os
import sys
import threading

HUGE_PAGES_SETTING = "THERAPY_CLAIMS_HUGE_PAGES"
# glibc's malloc: an allocation at least this large gets pages of its own, given back when it
# is freed (``mallopt``'s M_MMAP_THRESHOLD; a fixed value stops glibc raising it). A column of
# a million lines is 1-8 MiB; smaller blocks stay on the heap, which is given back when its
# free top passes TRIM_THRESHOLD (and between stages)
MMAP_THRESHOLD = 4 * 2**20
TRIM_THRESHOLD = 64 * 2**20
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3


def tune_process() -> None:
    """Tune this process (and the processes it starts) for a night's run.

    Transparent huge pages are turned off (Linux ``prctl(PR_SET_THP_DISABLE)``, kept across
    fork and exec). Arrow's allocator (mimalloc) asks for huge pages on its arena and NumPy on
    every large array; the allocator then gives freed memory back 64 KiB at a time, which
    splits a huge page, and the next use faults in and zeroes a whole 2 MiB page again: ingest
    spent most of its time in the kernel (docs/performance.md). ``THERAPY_CLAIMS_HUGE_PAGES=1``
    keeps the system's setting.

    glibc's malloc (NumPy's and pandas' arrays) gets a fixed mmap threshold (see
    ``_malloc_gives_back``). Calling it again does nothing more."""
    if sys.platform != "linux":
        return
    _malloc_gives_back()
    if os.environ.get(HUGE_PAGES_SETTING) == "1":
        return
    import ctypes

    pr_set_thp_disable = 41
    try:
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_thp_disable, 1, 0, 0, 0)
    except (OSError, AttributeError):  # no such call here: the system's setting stays
        pass


def _malloc_gives_back() -> None:
    """A freed array's memory goes back to the system at once. glibc raises its mmap
    threshold to the size of the largest block freed (up to 32 MiB), so after the first
    million-line column is freed every later one comes from the heap, where a few small
    blocks still in use between them keep the freed ones resident: at a million lines the
    run held 700-900 MiB of freed memory during score and publish, while the second
    process filled up (docs/performance.md). A fixed threshold keeps every large array in
    pages of its own; smaller ones (at 128 KiB the page faults of every small array cost
    validate and the rules a second or two) stay on the heap. Where ``GLIBC_TUNABLES`` sets
    malloc's parameters, they are kept."""
    if "glibc.malloc." in os.environ.get("GLIBC_TUNABLES", ""):
        return
    libc = _glibc()
    if libc is not None:
        libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)
        libc.mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD)


def _glibc():
    """The C library, when it is glibc (``mallopt``, ``malloc_trim``); else None."""
    import ctypes

    try:
        libc = ctypes.CDLL(None)
        libc.gnu_get_libc_version  # noqa: B018 - glibc's own: not musl's stubs
        return libc
    except (OSError, AttributeError):
        return None


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
    """Give Arrow's freed memory back to the system (its allocator keeps it for a while), and
    glibc's free heap pages: at a million lines hundreds of MiB between stages, while another
    process fills up."""
    import pyarrow as pa

    pa.default_memory_pool().release_unused()
    libc = _glibc() if sys.platform == "linux" else None
    if libc is not None:
        libc.malloc_trim(0)
