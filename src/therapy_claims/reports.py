"""What people read: the spreadsheet-safe exception CSV, the HTML run report and the biller
summary printed at the end of a run."""

from __future__ import annotations

import html
import io

import pandas as pd

from therapy_claims.catalogue import CATALOGUE

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _defuse(s: pd.Series) -> pd.Series:
    """Prefix a quote to text a spreadsheet would run as a formula (OWASP CSV injection)."""
    s = s.astype("string")
    risky = s.str.startswith(FORMULA_START).fillna(False).astype(bool)
    return s.where(~risky, "'" + s)


def spreadsheet_safe_csv(df: pd.DataFrame) -> bytes:
    out = df.copy()
    for c in out.columns:
        if out[c].dtype == "string" or out[c].dtype == object:
            out[c] = _defuse(out[c].astype("string"))
        elif pd.api.types.is_datetime64_any_dtype(out[c]):
            out[c] = out[c].dt.strftime("%Y-%m-%d")
    buf = io.StringIO()
    out.to_csv(buf, index=False, lineterminator="\r\n")
    # BOM so that spreadsheet programs read the file as UTF-8
    return b"\xef\xbb\xbf" + buf.getvalue().encode("utf-8")


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
        f"  quarantined {m['rows_quarantined']:>8}   (could not be read; see ROW_INVALID)",
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
