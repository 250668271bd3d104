"""What people read: the spreadsheet-safe exception CSV, the HTML run report and the biller
summary printed at the end of a run (and by ``therapy-claims summary``).

The report and the summary rank what a morning needs first (``morning``): the dollars held and
the codes holding them (errors that hold claims above warnings that need no action), the open
worklist split by clinic and payer, the oldest open claims, and trends over the last nights.
Counts, codes, clinic and payer ids and dollars only: no patient data."""

from __future__ import annotations

import html
import io
import posixpath
from dataclasses import dataclass

import pandas as pd

from therapy_claims import nights, schemas, storage
from therapy_claims.catalogue import CATALOGUE, ERROR, INFO, WARNING
from therapy_claims.config import RunError
from therapy_claims.worklist import payer_message

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
# the same test as a pattern on a cell's first character
_FORMULA_PATTERN = "^[=+\\-@\t\r]"
# what makes the csv module quote a field (QUOTE_MINIMAL, with "\r\n" line ends)
_NEEDS_QUOTES = '[,"\r\n]'


def _defuse(s: pd.Series) -> pd.Series:
    """Prefix a quote to text a spreadsheet would run as a formula (OWASP CSV injection)."""
    s = s.astype("string")
    risky = s.str.startswith(FORMULA_START).fillna(False).astype(bool)
    return s.where(~risky, "'" + s)


def _pandas_csv(df: pd.DataFrame, money: tuple[str, ...] = ()) -> bytes:
    """The CSV as ``DataFrame.to_csv`` writes it, text defused, dates as YYYY-MM-DD and the
    ``money`` columns with two decimals."""
    out = df.copy()
    for c in out.columns:
        if c in money:
            out[c] = pd.array(_money_text(out[c]), dtype=object)
        elif out[c].dtype == "string" or out[c].dtype == object:
            out[c] = _defuse(out[c].astype("string"))
        elif pd.api.types.is_datetime64_any_dtype(out[c]):
            out[c] = out[c].dt.strftime("%Y-%m-%d")
    buf = io.StringIO()
    out.to_csv(buf, index=False, lineterminator="\r\n")
    return buf.getvalue().encode("utf-8")


def _large(value: str):
    """An Arrow ``large_string`` scalar (joins do not mix it with ``string``)."""
    import pyarrow as pa

    return pa.scalar(value, type=pa.large_string())


def _quoted(text):
    """CSV fields from Arrow ``large_string`` text: quoted (inner quotes doubled) where the
    csv module would quote them."""
    import pyarrow.compute as pc

    needs = pc.fill_null(pc.match_substring_regex(text, _NEEDS_QUOTES), False)
    if not pc.any(needs).as_py():
        return text
    quote = _large('"')
    inner = pc.replace_substring(text.filter(needs), '"', '""')
    return pc.replace_with_mask(
        text, needs, pc.binary_join_element_wise(quote, inner, quote, _large(""))
    )


def _defused(text):
    """Arrow ``large_string`` text with a quote before what a spreadsheet would run as a
    formula (``_defuse``)."""
    import pyarrow.compute as pc

    risky = pc.fill_null(pc.match_substring_regex(text, _FORMULA_PATTERN), False)
    if not pc.any(risky).as_py():
        return text
    return pc.replace_with_mask(
        text, risky, pc.binary_join_element_wise(_large("'"), text.filter(risky), _large(""))
    )


def _kind(s: pd.Series) -> str | None:
    """How ``_pandas_csv`` writes a column: as defused text, as a date, as an integer, as a
    flag (``True``/``False``), or (None) in a way of pandas' own (floats, categories, ...)."""
    if s.dtype == "string" or s.dtype == object:
        return "text"
    if pd.api.types.is_datetime64_any_dtype(s):
        return "date"
    if pd.api.types.is_bool_dtype(s):
        return "flag"
    if pd.api.types.is_signed_integer_dtype(s):
        return "integer"
    return None


def _money_text(values):
    """Dollars (a float column, NaN or null missing) as text with two decimals (``1234.50``,
    ``-3.00``; missing: null), as Arrow ``large_string``: a spreadsheet reads it as the
    number, and it is not a float's repr (``1234.5``, ``0.30000000000000004``). Each distinct
    amount is formatted once (a claim's charges repeat on each of its findings)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    if isinstance(values, pd.Series):
        values = values.to_numpy(dtype=float, na_value=np.nan)
    else:  # an Arrow array (nulls as NaN)
        values = pc.fill_null(values.cast(pa.float64()), np.nan).to_numpy(zero_copy_only=False)
    at, distinct = pd.factorize(np.where(np.isfinite(values), values, np.nan))  # NaN: -1
    return _cents_text(np.asarray(distinct, dtype=float)).take(pa.array(at, mask=at < 0))


def _cents_text(values):
    """``_money_text`` of distinct finite amounts, on integer cents."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    cents = np.round(values * 100)
    whole = np.abs(cents).astype(np.int64)
    digits = pc.cast(pa.array(whole // 100), pa.large_string())
    frac = pc.utf8_lpad(pc.cast(pa.array(whole % 100), pa.large_string()), 2, "0")
    sign = pa.array(np.where(cents < 0, "-", ""), type=pa.large_string())
    text = pc.binary_join_element_wise(sign, digits, _large(""))
    return pc.binary_join_element_wise(text, frac, _large("."))


def _arrow_column(s: pd.Series, kind: str):
    """A frame's column as the Arrow array ``_fields`` formats (``kind``: ``_kind``'s)."""
    import pyarrow as pa

    if kind == "integer":
        return pa.array(s.array, type=pa.int64())
    if kind == "flag":
        return pa.array(s.array, type=pa.bool_())
    if kind == "text":
        return pa.array(s.astype("string").array, type=pa.large_string())
    if kind == "date":
        return pa.array(s.array)
    return s  # money: ``_money_text`` takes the Series


def _arrow_kind(t) -> str | None:
    """``_kind`` of an Arrow column's type."""
    import pyarrow as pa

    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return "text"
    if pa.types.is_timestamp(t) or pa.types.is_date(t):
        return "date"
    if pa.types.is_boolean(t):
        return "flag"
    if pa.types.is_signed_integer(t):
        return "integer"
    return None


def _fields(values, kind: str):
    """One column's CSV fields (Arrow ``large_string``) as ``_pandas_csv`` writes them, from
    its Arrow array (money: also a Series). Text and dates are formatted per distinct value:
    most columns repeat a few values."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    if kind == "integer":  # digits and '-': never quoted
        text = pc.cast(values.cast(pa.int64()), pa.large_string())
        return pc.fill_null(text, _large(""))
    if kind == "money":  # digits, '-' and '.': never quoted
        return pc.fill_null(_money_text(values), _large(""))
    if kind == "flag":  # as to_csv writes a bool: True / False (missing: empty)
        text = pc.if_else(values, _large("True"), _large("False"))
        return pc.fill_null(text, _large(""))
    encoded = pc.dictionary_encode(values)
    if kind == "text":
        distinct = _quoted(_defused(encoded.dictionary.cast(pa.large_string())))
    else:  # dates (never quoted)
        distinct = pc.strftime(encoded.dictionary, format="%Y-%m-%d").cast(pa.large_string())
    return pc.fill_null(distinct.take(encoded.indices), _large(""))


def _csv_lines(fields: list):
    """Rows of equally long field arrays (one per column) joined with ',' and ending in CRLF,
    as one buffer: the rows' text, straight from Arrow's memory."""
    import numpy as np
    import pyarrow.compute as pc

    last = pc.binary_join_element_wise(fields[-1], _large("\r\n"), _large(""))
    rows = pc.binary_join_element_wise(*fields[:-1], last, _large(","))
    if len(rows) == 0:
        return b""
    offsets = np.frombuffer(rows.buffers()[1], dtype=np.int64)[rows.offset :]
    start, end = int(offsets[0]), int(offsets[len(rows)])
    return rows.buffers()[2].slice(start, end - start)


def spreadsheet_safe_csv(data, *, money: tuple[str, ...] = ()) -> bytes:
    """The exception report (or the worklist) as CSV for spreadsheets: UTF-8 with a BOM, CRLF
    line ends, text a spreadsheet would run as a formula prefixed with a quote, dates as
    YYYY-MM-DD, the ``money`` columns (dollars) with two decimals.

    ``data``: a DataFrame, or an Arrow table (what the layer's Parquet file holds: the
    exception report is sorted and written as one, ~300k rows on a million-line night, with
    no DataFrame in between). The fields are formatted and joined by Arrow, column by column
    (``to_csv`` formats them one by one in Python), byte for byte as ``to_csv`` writes them
    (money aside). A frame with a column of another dtype, with repeated names or with one
    column (the csv module quotes a row's only field when it is empty) goes to ``to_csv``."""
    import pyarrow as pa

    # BOM so that spreadsheet programs read the file as UTF-8
    bom = b"\xef\xbb\xbf"
    if isinstance(data, pa.Table):
        names = data.column_names
        kinds = [
            "money" if c in money else _arrow_kind(t)
            for c, t in zip(names, data.schema.types, strict=True)
        ]
        if len(kinds) < 2 or None in kinds or len(set(names)) < len(names):
            nullable = {pa.int64(): pd.Int64Dtype(), pa.bool_(): pd.BooleanDtype()}.get
            return spreadsheet_safe_csv(data.to_pandas(types_mapper=nullable), money=money)
        columns = data.columns
    else:
        names = list(data.columns)
        flat = data.columns.is_unique and not isinstance(data.columns, pd.MultiIndex)
        kinds = (
            ["money" if c in money else _kind(data.iloc[:, i]) for i, c in enumerate(names)]
            if flat
            else []
        )
        if len(kinds) < 2 or None in kinds:
            return bom + _pandas_csv(data, money)
        columns = [_arrow_column(data.iloc[:, i], k) for i, k in enumerate(kinds)]
    header = [_quoted(pa.array([str(c)], type=pa.large_string())) for c in names]
    fields = [_fields(column, kind) for column, kind in zip(columns, kinds, strict=True)]
    return b"".join([bom, _csv_lines(header), _csv_lines(fields)])


# --------------------------------------------------------------------------- the morning


SEVERITY_ORDER = {ERROR: 0, WARNING: 1, INFO: 2}
TREND_NIGHTS = 14  # nights of the trend charts, the night itself included
OLDEST_OPEN = 10  # rows of the oldest open worklist claims
_COLOURS = {ERROR: "#c0392b", WARNING: "#d68910", INFO: "#2e86c1"}


def _money(values) -> pd.Series:
    """Dollars as float64: the internal layers carry floats, the published ones decimals."""
    s = pd.Series(values)
    if pd.api.types.is_numeric_dtype(s.dtype):
        return s.astype("float64")
    return pd.to_numeric(s.astype(object).map(lambda v: None if pd.isna(v) else float(v)))


def _day(values) -> pd.Series:
    """Dates (timestamps, ``datetime.date`` or ISO text) as ``YYYY-MM-DD`` text, null as ''."""
    return pd.to_datetime(pd.Series(values, dtype=object)).dt.strftime("%Y-%m-%d").fillna("")


def _first(values) -> str:
    """The first item of a list cell ('' for an empty or null one)."""
    if values is None or (not hasattr(values, "__len__")) or len(values) == 0:
        return ""
    return str(values[0])


def rank_codes(exc: pd.DataFrame | None, exceptions_by_code: dict[str, int]) -> pd.DataFrame:
    """The night's codes, what matters first: codes holding claims by the held dollars of the
    claims they hold, then by severity (error > warning > info), then by count.

    Columns ``code, severity, findings, claims_held, held_dollars, owner, fix``. Dollars and
    claims come from the exceptions' ``holds_claim`` and ``claim_charge``; a night written
    before those columns (or without its exceptions) has them null and ranks by severity and
    count. A claim held by two codes counts under each (the column does not add up)."""
    if exc is not None and "code" in exc.columns and len(exc):
        counts = exc["code"].astype("string").value_counts()
        findings = {str(k): int(v) for k, v in counts.items()}
    else:
        findings = {str(k): int(v) for k, v in (exceptions_by_code or {}).items()}
    claims: dict[str, int] = {}
    dollars: dict[str, float] = {}
    known = exc is not None and {"holds_claim", "claim_charge", "claim_id"} <= set(exc.columns)
    if known:
        holds = exc[pd.Series(exc["holds_claim"], dtype="boolean").fillna(False).to_numpy(bool)]
        held = pd.DataFrame(
            {
                "code": holds["code"].astype("string").to_numpy(),
                "claim_id": holds["claim_id"].astype("string").to_numpy(),
                "charge": _money(holds["claim_charge"]).to_numpy(),
            }
        ).drop_duplicates(["code", "claim_id"])
        by_code = held.groupby("code", sort=False).agg(n=("claim_id", "size"), d=("charge", "sum"))
        claims = {str(k): int(v) for k, v in by_code["n"].items()}
        dollars = {str(k): round(float(v), 2) for k, v in by_code["d"].items()}
    rows = []
    for code, count in findings.items():
        spec = CATALOGUE.get(code)
        rows.append(
            {
                "code": code,
                "severity": spec.severity if spec else "?",
                "findings": count,
                "claims_held": claims.get(code, 0) if known else None,
                "held_dollars": dollars.get(code, 0.0) if known else None,
                "owner": spec.owner if spec else "",
                "fix": spec.suggested_fix if spec else "",
            }
        )
    rows.sort(
        key=lambda r: (
            0 if (r["claims_held"] or 0) > 0 else 1,
            -(r["held_dollars"] or 0.0),
            SEVERITY_ORDER.get(r["severity"], 3),
            -r["findings"],
            r["code"],
        )
    )
    columns = ["code", "severity", "findings", "claims_held", "held_dollars", "owner", "fix"]
    return pd.DataFrame(rows, columns=columns)


def held_tonight_dollars(exc: pd.DataFrame | None) -> float | None:
    """Charges of the claims held tonight (each held claim once), from the exceptions; None
    for a night whose exceptions predate ``holds_claim`` / ``claim_charge``."""
    if exc is None or not {"holds_claim", "claim_charge", "claim_id"} <= set(exc.columns):
        return None
    holds = exc[pd.Series(exc["holds_claim"], dtype="boolean").fillna(False).to_numpy(bool)]
    per_claim = pd.DataFrame(
        {
            "claim_id": holds["claim_id"].astype("string").to_numpy(),
            "c": _money(holds["claim_charge"]).to_numpy(),
        }
    ).drop_duplicates("claim_id")
    return round(float(per_claim["c"].sum()), 2)


def open_rows(worklist: pd.DataFrame | None) -> pd.DataFrame | None:
    """The worklist's open rows (the queue this morning), or None without a worklist."""
    if worklist is None:
        return None
    return worklist[worklist["status"].astype("string").eq("open").fillna(False).to_numpy(bool)]


def worklist_counts(worklist: pd.DataFrame, run_date: str) -> dict:
    """The worklist's figures as the manifest's ``worklist`` key holds them."""
    opened = open_rows(worklist)
    resolved = worklist[
        worklist["status"].astype("string").eq("resolved").fillna(False).to_numpy(bool)
    ]
    return {
        "open": len(opened),
        "opened_tonight": int((_day(opened["first_held"]) == run_date).sum()),
        "resolved_tonight": int((_day(resolved["resolved_on"]) == run_date).sum()),
        "held_dollars_open": round(float(_money(opened["held_dollars"]).sum()), 2),
        "oldest_open_days": int(pd.Series(opened["age_days"], dtype="Int64").max())
        if len(opened)
        else 0,
    }


def split_open(worklist: pd.DataFrame | None, by: str) -> pd.DataFrame | None:
    """The open worklist by ``by`` (``clinic_id`` or ``payer_id``): held dollars, held claims
    (claim ids) and held lines, most dollars first."""
    rows = open_rows(worklist)
    if rows is None:
        return None
    frame = pd.DataFrame(
        {
            by: rows[by].astype("string").fillna("").to_numpy(),
            "held_dollars": _money(rows["held_dollars"]).fillna(0.0).to_numpy(),
            "held_claims": [
                len(v) if v is not None and hasattr(v, "__len__") else 0 for v in rows["claim_ids"]
            ],
            "lines": pd.Series(rows["lines"], dtype="Int64").fillna(0).to_numpy("int64"),
        }
    )
    out = frame.groupby(by, sort=False, as_index=False).sum()
    out["held_dollars"] = out["held_dollars"].round(2)
    return out.sort_values(
        ["held_dollars", "held_claims", by], ascending=[False, False, True], ignore_index=True
    )


def oldest_open(worklist: pd.DataFrame | None, n: int = OLDEST_OPEN) -> pd.DataFrame | None:
    """The ``n`` oldest open worklist claims (oldest first, then most dollars): key, clinic,
    payer, held dollars, age, who acts and the first code holding it."""
    rows = open_rows(worklist)
    if rows is None:
        return None
    frame = pd.DataFrame(
        {
            "worklist_key": rows["worklist_key"].astype("string").to_numpy(),
            "clinic_id": rows["clinic_id"].astype("string").fillna("").to_numpy(),
            "payer_id": rows["payer_id"].astype("string").fillna("").to_numpy(),
            "held_dollars": _money(rows["held_dollars"]).fillna(0.0).round(2).to_numpy(),
            "age_days": pd.Series(rows["age_days"], dtype="Int64").fillna(0).to_numpy("int64"),
            "owner": rows["owner"].astype("string").fillna("").to_numpy(),
            "first_code": [_first(v) for v in rows["blocking_codes"]],
        }
    )
    return frame.sort_values(
        ["age_days", "held_dollars", "worklist_key"],
        ascending=[False, False, True],
        ignore_index=True,
    ).head(n)


PAYER_SOURCES = ("payer", "both")  # worklist rows a payer's answer opened (issue 17)


def payer_open(worklist: pd.DataFrame | None, n: int = OLDEST_OPEN) -> pd.DataFrame | None:
    """The open worklist rows the clearinghouse or a payer opened (rejected or denied
    claims), oldest first then most dollars, at most ``n``; None when there is none (a night
    without the payers' answers shows nothing more). Ids, codes, dates and dollars only."""
    rows = open_rows(worklist)
    if rows is None or "source" not in rows.columns:
        return None
    rows = rows[rows["source"].astype("string").isin(PAYER_SOURCES).fillna(False).to_numpy(bool)]
    if rows.empty:
        return None
    records = rows.to_dict("records")
    frame = pd.DataFrame(
        {
            "worklist_key": rows["worklist_key"].astype("string").to_numpy(),
            "payer_id": rows["payer_id"].astype("string").fillna("").to_numpy(),
            "held_dollars": _money(rows["held_dollars"]).fillna(0.0).round(2).to_numpy(),
            "age_days": pd.Series(rows["age_days"], dtype="Int64").fillna(0).to_numpy("int64"),
            "owner": rows["owner"].astype("string").fillna("").to_numpy(),
            "message": [payer_message(r) for r in records],
        }
    )
    return frame.sort_values(
        ["age_days", "held_dollars", "worklist_key"],
        ascending=[False, False, True],
        ignore_index=True,
    ).head(n)


def night_point(m: dict) -> dict:
    """One night of the trends from its manifest: the clean-claim rate (claims billed / claims
    billed + held; None when it scored no claim), the worklist's open held dollars (None for a
    night before the worklist) and the lines read."""
    billed, held = int(m.get("claims_billed") or 0), int(m.get("claims_held") or 0)
    backlog = m.get("worklist") or {}
    dollars = backlog.get("held_dollars_open")
    return {
        "run_date": m["run_date"],
        "clean_claim_rate": billed / (billed + held) if billed + held else None,
        "held_dollars": None if dollars is None else float(dollars),
        "lines_read": int(m.get("rows_in") or 0),
    }


def trend_points(tonight: dict, history=(), n: int = TREND_NIGHTS) -> list[dict]:
    """The last ``n`` nights up to ``tonight`` (manifest-like), in date order: ``history``'s
    manifests before tonight, then tonight (which replaces a manifest of the same night)."""
    rd = tonight["run_date"]
    earlier = {m["run_date"]: m for m in history if m.get("run_date", "") < rd}
    nights_ = [*(earlier[k] for k in sorted(earlier)), tonight][-n:]
    return [night_point(m) for m in nights_]


def relative_link(target: str, folder: str) -> str:
    """``target`` as a link relative to ``folder`` (both under one output root, local or
    s3://), with '/' separators, so the report's links work wherever the root is copied."""
    a = str(target).replace("\\", "/")
    b = str(folder).replace("\\", "/")
    return posixpath.relpath(a, b)


def file_links(
    outputs: dict[str, str], files: list[dict], *, worklist: bool
) -> list[tuple[str, str]]:
    """``(label, relative href)`` of the night's Data Docs, exceptions CSV, worklist CSV (when
    the night has one) and each claim file, from the report's folder (``outputs['reports']``)."""
    here = outputs["reports"]
    links = []
    if "validation" in outputs:
        docs = posixpath.join(
            str(outputs["validation"]).replace("\\", "/"), "data_docs", "index.html"
        )
        links.append(("Data Docs (Great Expectations validation)", relative_link(docs, here)))
    if "exceptions" in outputs:
        csv = posixpath.join(str(outputs["exceptions"]).replace("\\", "/"), "exceptions.csv")
        links.append(("exceptions.csv (every finding)", relative_link(csv, here)))
    if worklist and "worklist" in outputs:
        csv = posixpath.join(str(outputs["worklist"]).replace("\\", "/"), "worklist.csv")
        links.append(("worklist.csv (the held claims to work)", relative_link(csv, here)))
    for f in files:
        links.append((f"claim file {storage.name(f['path'])}", relative_link(f["path"], here)))
    return links


@dataclass
class Morning:
    """What the summary and the report show, ranked: computed once, printed or drawn."""

    run_date: str
    codes: pd.DataFrame
    claims_held: int
    held_dollars: float | None  # tonight's held claims' charges (None: unknown for the night)
    backlog: dict | None  # the manifest's ``worklist`` figures (None: no worklist)
    by_clinic: pd.DataFrame | None
    by_payer: pd.DataFrame | None
    oldest: pd.DataFrame | None
    trend: list[dict]
    payer: pd.DataFrame | None = None  # open rows rejected or denied by a payer (None: none)


def morning(tonight: dict, exc=None, worklist=None, history=()) -> Morning:
    """The ranking of a night: ``tonight`` is its manifest (or the same keys: run_date,
    rows_in, claims_billed, claims_held, exceptions_by_code), ``exc`` its exceptions,
    ``worklist`` its worklist frame, ``history`` manifests of earlier nights (trends)."""
    rd = tonight["run_date"]
    backlog = worklist_counts(worklist, rd) if worklist is not None else tonight.get("worklist")
    point = {**tonight, "worklist": backlog}
    return Morning(
        run_date=rd,
        codes=rank_codes(exc, tonight.get("exceptions_by_code") or {}),
        claims_held=int(tonight.get("claims_held") or 0),
        held_dollars=held_tonight_dollars(exc),
        backlog=backlog,
        by_clinic=split_open(worklist, "clinic_id"),
        by_payer=split_open(worklist, "payer_id"),
        oldest=oldest_open(worklist),
        trend=trend_points(point, history),
        payer=payer_open(worklist),
    )


def _usd(value) -> str:
    return "-" if value is None or pd.isna(value) else f"${value:,.2f}"


def _rate(value) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def _text_sections(mo: Morning, top: int = 15) -> list[str]:
    """The ranked part of the summary, as text lines."""
    dollars = "" if mo.held_dollars is None else f", {_usd(mo.held_dollars)}"
    out = [f"Held tonight: {mo.claims_held} claim(s){dollars}"]
    b = mo.backlog
    if b:
        out.append(
            f"Worklist: {b['open']} open, {_usd(b['held_dollars_open'])} held; "
            f"{b['opened_tonight']} opened tonight, {b['resolved_tonight']} resolved tonight; "
            f"oldest open {b['oldest_open_days']} day(s)"
        )
    else:
        out.append("Worklist: none for this night")
    if len(mo.codes):
        out.append("What holds claims (most held dollars first, then severity, then count):")
        out.append(
            f"  {'code':<26} {'severity':<8} {'findings':>8} {'claims':>7} {'held $':>13}  owner"
        )
        for r in mo.codes.head(top).itertuples():
            claims = "-" if r.claims_held is None or pd.isna(r.claims_held) else int(r.claims_held)
            out.append(
                f"  {r.code:<26} {r.severity:<8} {r.findings:>8} {claims:>7} "
                f"{_usd(r.held_dollars):>13}  {r.owner}"
            )
        if len(mo.codes) > top:
            out.append(f"  ... and {len(mo.codes) - top} more code(s) (exceptions.csv)")
    for title, frame, col in (
        ("clinic", mo.by_clinic, "clinic_id"),
        ("payer", mo.by_payer, "payer_id"),
    ):
        if frame is None or not len(frame):
            continue
        out.append(f"Open worklist by {title}:")
        out.append(f"  {col:<14} {'held $':>13} {'claims':>7} {'lines':>7}")
        for r in frame.itertuples():
            out.append(
                f"  {getattr(r, col):<14} {_usd(r.held_dollars):>13} {r.held_claims:>7} {r.lines:>7}"
            )
    if mo.oldest is not None and len(mo.oldest):
        out.append(f"Oldest open claims (top {OLDEST_OPEN}):")
        out.append(
            f"  {'worklist_key':<28} {'clinic':<8} {'payer':<8} {'held $':>11} {'age':>4}  "
            f"{'owner':<17} first code"
        )
        for r in mo.oldest.itertuples():
            out.append(
                f"  {r.worklist_key:<28} {r.clinic_id:<8} {r.payer_id:<8} "
                f"{_usd(r.held_dollars):>11} {r.age_days:>4}  {r.owner:<17} {r.first_code}"
            )
    if mo.payer is not None:
        out.append(f"Rejected and denied by the payers (top {OLDEST_OPEN}):")
        for r in mo.payer.itertuples():
            out.append(
                f"  {r.worklist_key:<28} {r.payer_id:<8} {_usd(r.held_dollars):>11} "
                f"{r.age_days:>4}  {r.message}"
            )
    out.append(f"Trends (last {len(mo.trend)} night(s)):")
    out.append(f"  {'night':<10} {'clean-claim rate':>16} {'held $ open':>14} {'lines read':>11}")
    for p in mo.trend:
        out.append(
            f"  {p['run_date']:<10} {_rate(p['clean_claim_rate']):>16} "
            f"{_usd(p['held_dollars']):>14} {p['lines_read']:>11}"
        )
    return out


# --------------------------------------------------------------------------- after sending

AFTER_TOP = 10  # rows of the denial reasons and rule codes shown


@dataclass
class AfterSending:
    """The claims after sending, from the lifecycle (``analytics.MEASURE_VIEWS``'s rows):
    ``overall`` and ``by_payer`` from ``claim_measures``, the overall rows of
    ``denials_by_carc`` and ``denials_by_rule``. Ids, codes, counts and rates only."""

    overall: dict
    by_payer: list[dict]
    carcs: list[dict]
    rules: list[dict]


def after_sending(out: str, reference: str | None = None) -> AfterSending | None:
    """The measures of the claims sent so far, or None while there is no lifecycle (no
    responses recorded yet)."""
    from therapy_claims import analytics

    rows = analytics.lifecycle_measures(out, reference)
    if rows is None:
        return None
    measures = rows["claim_measures"]
    overall = next((r for r in measures if r["level"] == "overall"), None)
    if overall is None:  # a lifecycle of no claims
        return None
    return AfterSending(
        overall=overall,
        by_payer=[r for r in measures if r["level"] == "payer"],
        carcs=[r for r in rows["denials_by_carc"] if r["level"] == "overall"],
        rules=[r for r in rows["denials_by_rule"] if r["level"] == "overall"],
    )


NO_RESPONSES = "Claims after sending: no responses yet (no lifecycle computed for this output)"


def _days(value) -> str:
    return "-" if value is None else f"{value:.1f}"


def _of(part: int, whole: int, rate) -> str:
    return f"{_rate(rate)} ({part} of {whole})"


def _after_text(after: AfterSending | None) -> list[str]:
    """The "claims after sending" lines of the summary."""
    if after is None:
        return [NO_RESPONSES]
    o = after.overall
    out = [
        f"Claims after sending: {o['claims_sent']} sent, {o['claims_with_response']} with a "
        "response",
        f"  first-pass acceptance {_of(o['first_pass_accepted'], o['first_pass_known'], o['first_pass_acceptance_rate'])}; "
        f"denial rate {_of(o['claims_denied'], o['claims_adjudicated'], o['denial_rate'])}",
        f"  days to payment: mean {_days(o['days_to_payment_mean'])}, median "
        f"{_days(o['days_to_payment_median'])}, p90 {_days(o['days_to_payment_p90'])} "
        f"({o['claims_paid']} paid)",
        f"  {'payer':<10} {'sent':>6} {'responded':>9} {'first-pass':>10} {'denied':>8} "
        f"{'days mean':>9} {'median':>7} {'p90':>6}",
    ]
    for r in after.by_payer:
        out.append(
            f"  {r['payer_id'] or '':<10} {r['claims_sent']:>6} {r['claims_with_response']:>9} "
            f"{_rate(r['first_pass_acceptance_rate']):>10} {_rate(r['denial_rate']):>8} "
            f"{_days(r['days_to_payment_mean']):>9} {_days(r['days_to_payment_median']):>7} "
            f"{_days(r['days_to_payment_p90']):>6}"
        )
    for title, rows, key in (
        ("Denials by payer reason", after.carcs, "reason_code"),
        ("Denials by the rule of ours that would have caught them", after.rules, "rule_code"),
    ):
        if rows:
            shown = ", ".join(
                f"{r[key]} {r['claims_denied']} ({_rate(r['denial_rate'])})"
                for r in rows[:AFTER_TOP]
            )
            out.append(f"  {title}: {shown}")
    return out


def _after_html(after: AfterSending | None) -> str:
    if after is None:
        return f"<p>{_esc(NO_RESPONSES.split(': ', 1)[1].capitalize())}.</p>"
    o = after.overall
    intro = (
        f"<p>{o['claims_sent']} claims sent, {o['claims_with_response']} with a response. "
        f"First-pass acceptance "
        f"{_esc(_of(o['first_pass_accepted'], o['first_pass_known'], o['first_pass_acceptance_rate']))}; "
        f"denial rate {_esc(_of(o['claims_denied'], o['claims_adjudicated'], o['denial_rate']))}; "
        f"days to payment mean {_days(o['days_to_payment_mean'])}, median "
        f"{_days(o['days_to_payment_median'])}, p90 {_days(o['days_to_payment_p90'])} "
        f"({o['claims_paid']} paid).</p>"
    )
    payers = _table(
        ["payer", "sent", "responded", "first-pass", "adjudicated", "denial rate", "days mean",
         "median", "p90"],
        [
            [r["payer_id"] or "", r["claims_sent"], r["claims_with_response"],
             _rate(r["first_pass_acceptance_rate"]), r["claims_adjudicated"],
             _rate(r["denial_rate"]), _days(r["days_to_payment_mean"]),
             _days(r["days_to_payment_median"]), _days(r["days_to_payment_p90"])]
            for r in after.by_payer
        ],
        {1, 2, 3, 4, 5, 6, 7, 8},
    )  # fmt: skip
    parts = [intro, payers]
    for title, rows, key, head in (
        ("Denials by payer reason", after.carcs, "reason_code", "reason (CARC)"),
        ("Denials by our rule code", after.rules, "rule_code", "rule code"),
    ):
        parts.append(f"<h3>{title}</h3>")
        if not rows:
            parts.append("<p>No denials.</p>")
            continue
        parts.append(
            _table(
                [head, "claims denied", "claims adjudicated", "denial rate"],
                [
                    [r[key], r["claims_denied"], r["claims_adjudicated"], _rate(r["denial_rate"])]
                    for r in rows[:AFTER_TOP]
                ],
                {1, 2, 3},
            )
        )
    return "".join(parts)


def summary_text(
    manifest: dict, *, exc=None, worklist=None, history=(), after: AfterSending | None = None
) -> str:
    """The biller's summary of a night: counts, then what matters ranked (``morning``), then
    the claims after sending (``after``: None says there are no responses yet), then where
    the files are. ``exc``, ``worklist`` and ``history`` are optional: without them the
    summary says less (a night before the worklist), never fails."""
    m = manifest
    lines = [
        f"Night {m['run_date']}: {m['rows_in']} service lines read from {len(m['inputs'])} file(s)",
        f"  billed      {m['lines_billed']:>8}   in {m['claims_billed']} claim(s), "
        f"{len(m['claim_files'])} claim file(s)",
        f"  held        {m['lines_held']:>8}   in {m['claims_held']} claim(s) waiting for a fix",
        f"  not billed  {m['lines_not_billed']:>8}   (no billable units)",
        f"  quarantined {m['rows_quarantined']:>8}   "
        "(not scored: ROW_INVALID, DUPLICATE_LINE, DUPLICATE_CHARGE)",
    ]
    for i in m["inputs"]:
        if not i["accepted"]:
            lines.append(f"  REJECTED FILE {i['path']}: {i['message']}")
    lines.append(f"  balanced: {'yes' if m['balanced'] else 'NO'}")
    lines += _text_sections(morning(m, exc, worklist, history))
    lines += _after_text(after)
    lines.append("Outputs:")
    for kind, path in m["outputs"].items():
        lines.append(f"  {kind:<11} {path}")
    for f in m["claim_files"]:
        lines.append(
            f"  claim file  {f['path']}  ({f['claims']} claims, {f['lines']} lines, ${f['charges']:,.2f})"
        )
    return "\n".join(lines)


def _read_layer(
    path: str, layer: str, columns: tuple[str, ...] | None = None
) -> pd.DataFrame | None:
    """A published layer's file in the internal types (``schemas.read``), only the
    ``columns`` it has if given (a night from before issue 16 lacks some), or None when
    absent."""
    if not storage.exists(path):
        return None
    table = schemas.read(path, layer)
    if columns is not None:
        table = table.select([c for c in columns if c in table.column_names])
    return storage.to_frame(table)


EXCEPTION_COLUMNS = ("code", "severity", "claim_id", "holds_claim", "claim_charge")


def night_summary(out: str, run_date: str) -> str:
    """``summary_text`` of a committed night, read through ``nights``: its manifest, its
    exceptions, its worklist (nights before the worklist have none) and the trends' nights."""
    m = nights.committed(out, run_date)
    if m is None:
        raise RunError(f"no manifest at {nights.manifest_path(out, run_date)}: has this night run?")
    exc = _read_layer(
        storage.join(nights.layer(m, "exceptions", run_date, out), "exceptions.parquet"),
        "exceptions",
        EXCEPTION_COLUMNS,
    )
    worklist = None
    if (m.get("outputs") or {}).get("worklist"):
        worklist = _read_layer(
            storage.join(m["outputs"]["worklist"], "worklist.parquet"), "worklist"
        )
    history = nights.recent(out, run_date, TREND_NIGHTS - 1, including=False)
    after = after_sending(out)
    return summary_text(m, exc=exc, worklist=worklist, history=history, after=after)


# --------------------------------------------------------------------------- the HTML report
# Charts are inline SVG drawn here: the page loads nothing (no script, font or image from
# anywhere), so it opens from a file, an S3 download or an e-mail attachment alike. Every
# chart is one <svg class="chart" data-chart=ID>, its data marks are class "bar" or "point"
# (tests/test_report_browser.py counts them against the data).

_W = 640  # chart width in px


def _esc(value) -> str:
    return html.escape(str(value), quote=True)


def _svg(chart: str, height: int, body: str, label: str) -> str:
    return (
        f"<svg class='chart' data-chart='{chart}' role='img' aria-label='{_esc(label)}' "
        f"width='{_W}' height='{height}' viewBox='0 0 {_W} {height}' "
        f"xmlns='http://www.w3.org/2000/svg'>{body}</svg>"
    )


def _no_data(chart: str, label: str, why: str) -> str:
    body = f"<text x='8' y='22' fill='#777' font-size='13'>{_esc(why)}</text>"
    return _svg(chart, 34, body, label)


def _status_chart(status: list[tuple[str, int]]) -> str:
    """Tonight's lines by outcome, one stacked bar (a segment per outcome, even if empty)."""
    colours = {
        "billed": "#27ae60",
        "held": "#c0392b",
        "not billed": "#95a5a6",
        "quarantined": "#8e44ad",
    }
    total = max(1, sum(v for _, v in status))
    x, segs = 0.0, []
    for name, v in status:
        w = _W * v / total
        segs.append(
            f"<rect class='bar' x='{x:.1f}' width='{w:.1f}' height='24' fill='{colours[name]}'>"
            f"<title>{name}: {v}</title></rect>"
        )
        x += w
    legend = " &nbsp; ".join(
        f"<span style='color:{colours[n]}'>&#9632;</span> {n} {v}" for n, v in status
    )
    return _svg("status", 24, "".join(segs), "lines by outcome") + f"<p>{legend}</p>"


def _bar_chart(chart: str, label: str, items: list[tuple[str, float, str]]) -> str:
    """Horizontal bars: ``(name, value, value as text)``, longest for the largest value."""
    if not items:
        return _no_data(chart, label, "nothing to show")
    top = max(v for _, v, _ in items) or 1.0
    row, left, room = 22, 150, _W - 150 - 110
    parts = []
    for i, (name, value, shown) in enumerate(items):
        y = i * row
        w = max(1.0, room * value / top) if value > 0 else 0.0
        parts.append(
            f"<text x='{left - 6}' y='{y + 15}' text-anchor='end' font-size='12'>{_esc(name)}</text>"
            f"<rect class='bar' x='{left}' y='{y + 3}' width='{w:.1f}' height='16' fill='#c0392b'>"
            f"<title>{_esc(name)}: {_esc(shown)}</title></rect>"
            f"<text x='{left + w + 6:.1f}' y='{y + 15}' font-size='12'>{_esc(shown)}</text>"
        )
    return _svg(chart, row * len(items) + 4, "".join(parts), label)


def _line_chart(chart: str, label: str, points: list[tuple[str, float | None]], fmt) -> str:
    """Values over nights: a point per night that has a value (a gap where it has none),
    joined by a line; the axis runs from 0 to the largest value."""
    known = [(i, v) for i, (_, v) in enumerate(points) if v is not None]
    if not known:
        return _no_data(chart, label, "no night with this figure yet")
    h, top_pad, bottom, left, right = 170, 16, 34, 70, 20
    plot_h = h - top_pad - bottom
    top = max(v for _, v in known) or 1.0
    step = (_W - left - right) / max(1, len(points) - 1)

    def xy(i: int, v: float) -> tuple[float, float]:
        x = left + (step * i if len(points) > 1 else (_W - left - right) / 2)
        return x, top_pad + plot_h * (1 - v / top)

    axis = (
        f"<line x1='{left}' y1='{top_pad + plot_h}' x2='{_W - right}' y2='{top_pad + plot_h}' stroke='#999'/>"
        f"<line x1='{left}' y1='{top_pad}' x2='{left}' y2='{top_pad + plot_h}' stroke='#999'/>"
        f"<text x='{left - 6}' y='{top_pad + 4}' text-anchor='end' font-size='11'>{_esc(fmt(top))}</text>"
        f"<text x='{left - 6}' y='{top_pad + plot_h}' text-anchor='end' font-size='11'>{_esc(fmt(0))}</text>"
    )
    ticks = "".join(
        f"<text x='{xy(i, 0)[0]:.1f}' y='{h - 12}' text-anchor='middle' font-size='10'>{_esc(rd[5:])}</text>"
        for i, (rd, _) in enumerate(points)
    )
    coords = [xy(i, v) for i, v in known]
    # consecutive nights are joined; a night without a value breaks the line
    runs: list[list[tuple[float, float]]] = []
    for k, ((i, _), c) in enumerate(zip(known, coords, strict=True)):
        if k and i == known[k - 1][0] + 1:
            runs[-1].append(c)
        else:
            runs.append([c])
    line = "".join(
        "<polyline fill='none' stroke='#2e86c1' stroke-width='2' points='{}'/>".format(
            " ".join(f"{x:.1f},{y:.1f}" for x, y in run)
        )
        for run in runs
        if len(run) > 1
    )
    dots = "".join(
        f"<circle class='point' cx='{x:.1f}' cy='{y:.1f}' r='4' fill='#2e86c1'>"
        f"<title>{_esc(points[i][0])}: {_esc(fmt(v))}</title></circle>"
        for (x, y), (i, v) in zip(coords, known, strict=True)
    )
    return _svg(chart, h, axis + ticks + line + dots, label)


def _table(header: list[str], rows: list[list], numeric: set[int] = frozenset()) -> str:
    """An HTML table of escaped cells (columns in ``numeric`` right-aligned)."""

    def cell(tag: str, i: int, v) -> str:
        style = " class='num'" if i in numeric else ""
        return f"<{tag}{style}>{_esc(v)}</{tag}>"

    head = "".join(cell("th", i, h) for i, h in enumerate(header))
    body = "".join(
        "<tr>" + "".join(cell("td", i, v) for i, v in enumerate(r)) + "</tr>" for r in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _codes_html(codes: pd.DataFrame, top: int = 40) -> str:
    if not len(codes):
        return "<p>No exceptions tonight.</p>"
    rows = [
        [
            r.code,
            r.severity,
            r.findings,
            "-" if r.claims_held is None or pd.isna(r.claims_held) else int(r.claims_held),
            _usd(r.held_dollars),
            r.owner,
            r.fix,
        ]
        for r in codes.head(top).itertuples()
    ]
    more = (
        f"<p>... and {len(codes) - top} more code(s): see exceptions.csv.</p>"
        if len(codes) > top
        else ""
    )
    header = ["code", "severity", "findings", "claims held", "held dollars", "owner", "what to do"]
    return _table(header, rows, {2, 3, 4}) + more


def _split_html(frame: pd.DataFrame | None, col: str, chart: str) -> str:
    label = f"open worklist held dollars by {col}"
    if frame is None:
        return _no_data(chart, label, "no worklist for this night")
    bars = _bar_chart(
        chart,
        label,
        [
            (str(v), float(d), _usd(d))
            for v, d in zip(frame[col], frame["held_dollars"], strict=True)
        ],
    )
    rows = [
        [getattr(r, col), _usd(r.held_dollars), r.held_claims, r.lines] for r in frame.itertuples()
    ]
    return bars + _table([col, "held dollars", "held claims", "lines"], rows, {1, 2, 3})


def _oldest_html(oldest: pd.DataFrame | None) -> str:
    if oldest is None:
        return "<p>No worklist for this night.</p>"
    if not len(oldest):
        return "<p>No open claims on the worklist.</p>"
    rows = [
        [
            r.worklist_key,
            r.clinic_id,
            r.payer_id,
            _usd(r.held_dollars),
            r.age_days,
            r.owner,
            r.first_code,
        ]
        for r in oldest.itertuples()
    ]
    header = [
        "worklist key",
        "clinic",
        "payer",
        "held dollars",
        "age (days)",
        "owner",
        "first blocking code",
    ]
    return _table(header, rows, {3, 4})


def _payer_html(payer: pd.DataFrame | None) -> str:
    """The open rows the payers opened, under the oldest claims (nothing when none)."""
    if payer is None:
        return ""
    rows = [
        [r.worklist_key, r.payer_id, _usd(r.held_dollars), r.age_days, r.owner, r.message]
        for r in payer.itertuples()
    ]
    header = ["worklist key", "payer", "held dollars", "age (days)", "owner", "what the payer said"]
    return "<h3>Rejected and denied by the payers</h3>" + _table(header, rows, {2, 3})


def _trend_html(trend: list[dict]) -> str:
    def series(key: str) -> list[tuple[str, float | None]]:
        return [(p["run_date"], p[key]) for p in trend]

    return (
        "<h3>Clean-claim rate</h3>"
        + _line_chart(
            "trend-clean-claim-rate", "clean-claim rate by night", series("clean_claim_rate"), _rate
        )
        + "<h3>Held dollars open (worklist)</h3>"
        + _line_chart(
            "trend-held-dollars", "open held dollars by night", series("held_dollars"), _usd
        )
        + "<h3>Lines read</h3>"
        + _line_chart(
            "trend-lines-read", "lines read by night", series("lines_read"), lambda v: f"{v:,.0f}"
        )
    )


_STYLE = (
    "body{font-family:sans-serif;margin:2em;max-width:70em} td,th{padding:2px 8px;text-align:left;"
    "vertical-align:top} .num{text-align:right} table{border-collapse:collapse;margin:.5em 0}"
    " tbody tr:nth-child(odd){background:#f4f6f7} svg.chart{display:block;margin:.5em 0}"
)


def html_report(
    run_date: str,
    ingest: dict,
    score: dict,
    files: list[dict],
    exc: pd.DataFrame,
    *,
    worklist: pd.DataFrame | None = None,
    history=(),
    links: dict[str, str] | None = None,
    after: AfterSending | None = None,
) -> str:
    """The night's report: one self-contained HTML page (no script, nothing loaded from
    anywhere; counts, codes, clinic and payer ids and dollars only, no patient data).

    ``worklist``: the night's worklist frame (None: the split and the oldest claims say there
    is none); ``history``: manifests of earlier nights for the trends (tonight's point comes
    from ``ingest``, ``score`` and ``worklist``); ``links``: the night's layer folders (as the
    manifest's ``outputs``), to link the Data Docs, the CSVs and the claim files relative to
    ``links['reports']``; ``after``: the claims after sending (None: no responses yet)."""
    tonight = {
        "run_date": run_date,
        "rows_in": ingest["rows_in"],
        "claims_billed": score["claims_billed"],
        "claims_held": score["claims_held"],
        "exceptions_by_code": score["exceptions_by_code"],
    }
    mo = morning(tonight, exc, worklist, history)
    status = [
        ("billed", score["lines_billed"]),
        ("held", score["lines_held"]),
        ("not billed", score["lines_not_billed"]),
        ("quarantined", ingest["rows_quarantined"]),
    ]
    b = mo.backlog
    backlog = (
        f"Worklist: {b['open']} open claim(s), {_usd(b['held_dollars_open'])} held; "
        f"{b['opened_tonight']} opened tonight, {b['resolved_tonight']} resolved tonight; "
        f"oldest open {b['oldest_open_days']} day(s)."
        if b
        else "No worklist for this night."
    )
    held = "" if mo.held_dollars is None else f" ({_usd(mo.held_dollars)})"
    file_rows = [
        [storage.name(f["path"]), f["receiver_id"], f["claims"], f["lines"], _usd(f["charges"])]
        for f in files
    ]
    link_items = "".join(
        f"<li><a href='{_esc(href)}'>{_esc(text)}</a></li>"
        for text, href in (file_links(links, files, worklist=worklist is not None) if links else [])
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>therapy-claims night {_esc(run_date)}</title>
<style>{_STYLE}</style></head>
<body><h1>Night {_esc(run_date)}</h1>
<p>{ingest["rows_in"]} service lines from {ingest["files"]} file(s)
({ingest["files_rejected"]} rejected). {score["claims_billed"]} claims billed,
{score["claims_held"]} held{held}. {backlog}</p>
{_status_chart(status)}
<h2>What holds claims</h2>
<p>Codes holding claims first, by the held dollars of the claims they hold; then by severity
(error, warning, info) and count.</p>
{_codes_html(mo.codes)}
<h2>Held by clinic</h2>{_split_html(mo.by_clinic, "clinic_id", "held-by-clinic")}
<h2>Held by payer</h2>{_split_html(mo.by_payer, "payer_id", "held-by-payer")}
<h2>Oldest open claims</h2>{_oldest_html(mo.oldest)}
{_payer_html(mo.payer)}
<h2>Trends (last {len(mo.trend)} night(s))</h2>{_trend_html(mo.trend)}
<h2>Claims after sending</h2>{_after_html(after)}
<h2>Files</h2><ul>{link_items}</ul>
{_table(["claim file", "receiver", "claims", "lines", "charges"], file_rows, {2, 3, 4})}
</body></html>
"""
