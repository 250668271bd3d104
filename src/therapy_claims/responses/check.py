"""pyx12, in-process, on a response file's text: the gate every 999, 277CA and 835 passes.

A file pyx12 rejects is rejected whole (nothing of it is applied), with a one-line reason.
The reason is built from pyx12's JSON error report (segment id, line, element position and
error codes; the report's messages and values are never read) or, failing that, from the line
numbers of its log records; never from its messages, which quote the offending values (names,
member ids: PHI). pyx12 cannot write a 999 for every transaction set (its 835 map has no
ST03, and the 999 writer needs one), which is why the JSON report is used. pyx12 logs through
the ``pyx12`` logger tree; while it runs, that tree is cut off from the application's handlers
and its records are only counted and mined for line numbers. A lock serialises the calls:
the logger tree is process-wide state.
"""

from __future__ import annotations

import io
import json
import logging
import re
import threading

from therapy_claims.x12.reader import separators

MAX_BYTES = 64 * 1024 * 1024  # a response file larger than this is refused before parsing

_LOCK = threading.Lock()
_LINE = re.compile(r"\bLine:(\d{1,9})\b")
_SEG_ID = re.compile(r"[A-Z][A-Z0-9]{1,2}")
_CODE = re.compile(r"[A-Z0-9]{1,3}")
_CONTROL = re.compile(r"[A-Za-z0-9]{1,9}")


class _Collector(logging.Handler):
    """Keeps pyx12's records to itself: how many, and at which source line."""

    def __init__(self) -> None:
        super().__init__(level=logging.WARNING)
        self.count = 0
        self.lines: list[int] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.count += 1
        try:
            match = _LINE.search(str(record.msg))
        except Exception:  # a record whose message cannot be rendered: just count it
            match = None
        if match:
            self.lines.append(int(match.group(1)))


def as_text(data: bytes | str) -> str:
    """The file as ASCII text; raises ``ValueError`` (no value quoted) when it is not."""
    if len(data) > MAX_BYTES:
        raise ValueError(f"file is larger than {MAX_BYTES // (1024 * 1024)} MiB")
    try:
        if isinstance(data, bytes | bytearray | memoryview):
            return bytes(data).decode("ascii")
        data.encode("ascii")
    except UnicodeError as exc:
        raise ValueError(f"file is not ASCII (byte offset {exc.start})") from None
    return data


def _run_pyx12(text: str) -> tuple[bool, str, _Collector]:
    import pyx12.params
    import pyx12.x12n_document

    logger = logging.getLogger("pyx12")
    collector = _Collector()
    report = io.StringIO()
    with _LOCK:
        saved = (logger.level, logger.propagate, logger.handlers[:])
        logger.handlers = [collector]
        logger.propagate = False
        logger.setLevel(logging.WARNING)
        try:
            ok = bool(
                pyx12.x12n_document.x12n_document(
                    param=pyx12.params.params(),
                    src_file=io.StringIO(text),
                    fd_997=io.StringIO(),  # pyx12 cannot write a 999 for every set (835)
                    fd_html=None,
                    fd_json=report,
                )
            )
        except Exception as exc:  # pyx12 raises on what it cannot parse at all
            ok = False
            collector.count += 1
            collector.lines.append(-1)
            report = io.StringIO(f"EXCEPTION {type(exc).__name__}")
        finally:
            logger.setLevel(saved[0])
            logger.propagate = saved[1]
            logger.handlers = saved[2]
    return ok, report.getvalue(), collector


def _first_error(report: str) -> str | None:
    """The first error of pyx12's JSON error report, as places and codes only.

    The report's ``err_str``/``err_val`` quote the file (values, whole segments) and are never
    read; segment ids from the file are kept only when they look like one."""
    try:
        doc = json.loads(report)
    except ValueError:
        return None
    for isa in doc.get("interchanges", []):
        if isa.get("errors"):
            return f"interchange envelope error {_code(isa['errors'][0])}"
        for gs in isa.get("groups", []):
            if gs.get("errors"):
                return f"functional group error {_code(gs['errors'][0])}"
            for st in gs.get("transactions", []):
                found = _set_error(st)
                if found:
                    control = str(st.get("trn_set_control_num") or "")
                    control = control if _CONTROL.fullmatch(control) else "?"
                    return f"transaction set {control}: {found}"
    return None


def _set_error(st: dict) -> str | None:
    if st.get("errors"):
        return f"transaction set error {_code(st['errors'][0])}"
    for seg in st.get("segments", []):
        sid = str(seg.get("seg_id") or "")
        place = f"segment {_int(seg, 'cur_line')} ({sid if _SEG_ID.fullmatch(sid) else '?'})"
        if seg.get("errors"):
            return f"{place} (error {_code(seg['errors'][0])})"
        for ele in seg.get("elements", []):
            if ele.get("errors"):
                pos = f"{_int(ele, 'ele_pos')}"
                if ele.get("subele_pos"):
                    pos += f"-{_int(ele, 'subele_pos')}"
                return f"{place}, element {pos} (error {_code(ele['errors'][0])})"
    return None


def _code(error: dict) -> str:
    code = str(error.get("err_cde") or "")
    return code if _CODE.fullmatch(code) else "?"


def _int(node: dict, key: str) -> str:
    value = node.get(key)
    return str(value) if isinstance(value, int) else "?"


def validate(data: bytes | str) -> tuple[bool, str]:
    """Run pyx12 4.0.0 on the file; ``(True, "")`` or ``(False, one-line reason)``.

    Never raises on bad input: non-ASCII, too large, not X12 and pyx12's own crashes all give
    ``False`` with a reason that names positions and codes, never the file's values."""
    try:
        text = as_text(data)
        separators(text)
    except ValueError as exc:
        return False, str(exc)
    ok, report, collector = _run_pyx12(text)
    if ok:
        return True, ""
    if report.startswith("EXCEPTION "):
        return False, f"pyx12 could not parse the file ({report.split(' ', 1)[1][:60]})"
    reason = _first_error(report)
    if reason is not None:
        return False, f"pyx12 rejected the file: {reason}"
    if reason is None:
        lines = sorted({n for n in collector.lines if n > 0})
        at = f", first at segment {lines[0]}" if lines else ""
        reason = f"pyx12 rejected the file ({collector.count} error(s){at})"
    return False, reason
