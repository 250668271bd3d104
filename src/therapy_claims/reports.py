"""What people read: the spreadsheet-safe exception CSV, the HTML run report and the biller
summary printed at the end of a run."""

from __future__ import annotations

import html
import io

import pandas as pd

from therapy_claims.catalogue import CATALOGUE

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


def top_codes(exceptions_by_code: dict[str, int], n: int = 10) -> list[tuple[str, str, int]]:
    items = sorted(exceptions_by_code.items(), key=lambda kv: (-kv[1], kv[0]))[:n]
    return [
        (code, CATALOGUE[code].severity if code in CATALOGUE else "?", count)
        for code, count in items
    ]


def summary_text(manifest: dict) -> str:
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
    rejected = [i for i in m["inputs"] if not i["accepted"]]
    for i in rejected:
        lines.append(f"  REJECTED FILE {i['path']}: {i['message']}")
    lines.append(f"  balanced: {'yes' if m['balanced'] else 'NO'}")
    if m["exceptions_by_code"]:
        lines.append("Top exception codes:")
        for code, sev, count in top_codes(m["exceptions_by_code"]):
            lines.append(
                f"  {code:<26} {sev:<8} {count:>7}   {CATALOGUE[code].suggested_fix if code in CATALOGUE else ''}"
            )
    lines.append("Outputs:")
    for kind, path in m["outputs"].items():
        lines.append(f"  {kind:<11} {path}")
    for f in m["claim_files"]:
        lines.append(
            f"  claim file  {f['path']}  ({f['claims']} claims, {f['lines']} lines, ${f['charges']:,.2f})"
        )
    return "\n".join(lines)


def _bar_rows(items: list[tuple[str, str, int]]) -> str:
    if not items:
        return "<p>No exceptions tonight.</p>"
    top = max(c for _, _, c in items)
    rows = []
    for code, sev, count in items:
        width = max(1, round(300 * count / top))
        colour = {"error": "#c0392b", "warning": "#d68910", "info": "#2e86c1"}.get(sev, "#777")
        rows.append(
            f"<tr><td>{html.escape(code)}</td><td>{sev}</td><td style='text-align:right'>{count}</td>"
            f"<td><svg width='{width}' height='14'><rect width='{width}' height='14' fill='{colour}'/></svg></td>"
            f"<td>{html.escape(CATALOGUE[code].suggested_fix if code in CATALOGUE else '')}</td></tr>"
        )
    return (
        "<table><tr><th>code</th><th>severity</th><th>count</th><th></th><th>what to do</th></tr>"
        + "".join(rows)
        + "</table>"
    )


def html_report(
    run_date: str, ingest: dict, score: dict, files: list[dict], exc: pd.DataFrame
) -> str:
    """A self-contained HTML page (no scripts, no PHI: counts and codes only)."""
    status = [
        ("billed", score["lines_billed"]),
        ("held", score["lines_held"]),
        ("not billed", score["lines_not_billed"]),
        ("quarantined", ingest["rows_quarantined"]),
    ]
    total = max(1, sum(v for _, v in status))
    colours = {
        "billed": "#27ae60",
        "held": "#c0392b",
        "not billed": "#95a5a6",
        "quarantined": "#8e44ad",
    }
    x, segs = 0.0, []
    for name, v in status:
        w = 600 * v / total
        segs.append(
            f"<rect x='{x:.1f}' width='{w:.1f}' height='24' fill='{colours[name]}'>"
            f"<title>{name}: {v}</title></rect>"
        )
        x += w
    legend = " &nbsp; ".join(
        f"<span style='color:{colours[n]}'>&#9632;</span> {n} {v}" for n, v in status
    )
    file_rows = "".join(
        f"<tr><td>{html.escape(f['path'].rsplit('/', 1)[-1])}</td><td>{f['receiver_id']}</td>"
        f"<td>{f['claims']}</td><td>{f['lines']}</td><td>${f['charges']:,.2f}</td></tr>"
        for f in files
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>therapy-claims night {run_date}</title>
<style>body{{font-family:sans-serif;margin:2em}} td,th{{padding:2px 8px;text-align:left}}</style></head>
<body><h1>Night {run_date}</h1>
<p>{ingest["rows_in"]} service lines from {ingest["files"]} file(s)
({ingest["files_rejected"]} rejected). {score["claims_billed"]} claims billed, {score["claims_held"]} held.</p>
<svg width="600" height="24">{"".join(segs)}</svg><p>{legend}</p>
<h2>Exceptions by code</h2>{_bar_rows(top_codes(score["exceptions_by_code"], 40))}
<h2>Claim files</h2><table><tr><th>file</th><th>receiver</th><th>claims</th><th>lines</th><th>charges</th></tr>
{file_rows}</table></body></html>
"""
