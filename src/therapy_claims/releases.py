"""Releases: reviewed overrides of errors that hold claims, read by the next run.

The team works the held claims in the morning; where a reviewer decides a claim should go out
as it is (the services really were distinct, the medical necessity is documented, ...), they
drop a CSV file of releases under ``<out>/releases/`` (or the path ``--releases`` names). Each
row waives one code on some lines: a worklist key (``clinic_id`` + ``encounter_id``), a claim
(``claim_id``) or a line (``line_id``). Score reads the files and excludes the waived findings
from the hold decision; the findings themselves stay in the exception report, and every
release says what it did, as a finding:

- ``RELEASED`` (info): one per waived finding, ``before`` -> ``after``;
- ``RELEASE_UNUSED`` (warning): a release that waived nothing tonight (expired, or matching
  no error finding);
- ``RELEASE_INVALID`` (warning): a file or row that cannot be read as a release, naming the
  file, row, column and value;
- ``RELEASE_NOT_ALLOWED`` (warning): a release of a code that cannot be released (the
  catalogue's ``releasable``: duplicates, rows that failed typing, a claim billed before, the
  837 checks ...) or that holds nothing (a warning or info code).

A row whose ``code`` is ``VOID`` (with a ``claim_id``) waives nothing: it asks for a void of a
claim another night sent, which score decides with the claim's other sendings
(``therapy_claims.corrections``: ``CLAIM_VOID``, or ``RELEASE_UNUSED`` saying why not).

The files are written by people: every value is hostile text. ``reason`` and ``released_by``
are never logged and never put in a message; they are written only to ``after``, with control
characters removed and cut short. Logs get counts only.
"""

from __future__ import annotations

import csv
import hashlib
import io
import re
import unicodedata
from dataclasses import dataclass, field
from datetime import date

import numpy as np
import pandas as pd

from therapy_claims import findings, ledger, storage
from therapy_claims.catalogue import CATALOGUE, ERROR

# the folder under the output root the team drops reviewed release files into
FOLDER = "releases"
KEY_COLUMNS = ("clinic_id", "encounter_id")
SELECTORS = ("clinic_id", "encounter_id", "claim_id", "line_id")
REQUIRED = ("code", "reason", "released_by", "released_on")
OPTIONAL = ("expires_on",)
COLUMNS = (*SELECTORS, *REQUIRED, *OPTIONAL)
REASON_MAX = 200  # characters of the reason written to ``after``
WHO_MAX = 80  # characters of released_by
VALUE_MAX = 60  # characters of a bad value quoted in a RELEASE_INVALID message

# what a release row becomes once read: one row per valid release, in file and row order
ROW_COLUMNS = (
    "file",
    "row",
    "form",  # "key", "claim" or "line"
    "clinic_id",
    "encounter_id",
    "claim_id",
    "line_id",
    "code",
    "reason",
    "released_by",
    "released_on",
    "expires_on",
)
_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
# a row's action instead of a code to waive: void the claim it names (``corrections``)
VOID = "VOID"


class ReleaseError(RuntimeError):
    """The releases the run was told to read are not there (a path that does not exist)."""


@dataclass
class Releases:
    """The night's release files as read: the valid rows, the findings about the bad ones,
    and each file's path, SHA-256 and data rows (for the manifest)."""

    rows: pd.DataFrame
    invalid: pd.DataFrame = field(default_factory=findings.empty)
    files: list[dict] = field(default_factory=list)

    @property
    def voids(self) -> pd.DataFrame:
        """The rows asking for a void (``VOID``, each naming a claim key)."""
        return self.rows[self.rows["code"] == VOID].reset_index(drop=True)


@dataclass
class Applied:
    """What the releases did to a night's findings."""

    waived: np.ndarray  # per finding: released (it no longer holds its claim)
    found: pd.DataFrame  # RELEASED, RELEASE_UNUSED, RELEASE_INVALID, RELEASE_NOT_ALLOWED
    applied: int  # release rows that waived at least one finding
    unused: int  # release rows that waived nothing (RELEASE_UNUSED)


def source(releases: str | None, out: str) -> str | None:
    """Where the night's releases are: the path given, else ``<out>/releases/`` when that
    folder exists (one check: a night without releases costs nothing more), else None."""
    if releases:
        if not storage.exists(releases):
            raise ReleaseError(f"no releases at {releases}: the path given does not exist")
        return releases
    default = storage.join(out, FOLDER)
    return default if storage.exists(default) else None


def clean(value: str, limit: int) -> str:
    """Free text as it may be written to an output: every run of control, format and
    line/paragraph separator characters (newlines, tabs, NUL, bidi overrides, zero-width
    characters) becomes one space, then it is trimmed and cut to ``limit`` characters."""
    out, gap = [], False
    for ch in str(value):
        if unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp"):
            gap = True
            continue
        if gap and out:
            out.append(" ")
        gap = False
        out.append(ch)
    return "".join(out).strip()[:limit]


def read(path: str) -> Releases:
    """Every release file at ``path`` (a CSV file, or every ``*.csv`` below a folder, local or
    s3://), checked. A file in the folder that is not CSV, a file that cannot be read as CSV,
    a header with an unknown or missing column and a bad row are ``RELEASE_INVALID``
    findings; nothing of a file with a bad header is applied, and nothing of a bad row."""
    paths = storage.list_files(path)
    rows: list[dict] = []
    problems: list[dict] = []
    files = []
    single = len(paths) == 1 and paths[0] == path  # a file named: read it whatever its name
    for p in paths:
        if not single and not p.lower().endswith(".csv"):
            problems.append(_problem(p, None, "", "", "not a .csv file: not read"))
            continue
        data = storage.read_bytes(p)
        before = len(rows)
        _read_file(p, data, rows, problems)
        files.append(
            {"path": p, "sha256": hashlib.sha256(data).hexdigest(), "rows": len(rows) - before}
        )
    frame = pd.DataFrame(rows, columns=list(ROW_COLUMNS))
    for c in ROW_COLUMNS:
        if c not in ("row", "released_on", "expires_on"):
            frame[c] = frame[c].astype("string")
    return Releases(frame, _invalid(problems), files)


def _read_file(path: str, data: bytes, rows: list[dict], problems: list[dict]) -> None:
    """The valid rows of one release file into ``rows``, its problems into ``problems``."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        problems.append(_problem(path, None, "", "", f"not UTF-8 text (byte {exc.start})"))
        return
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        records = list(reader)
    except csv.Error as exc:
        why = f"not readable as CSV (line {reader.line_num}): {exc}"
        problems.append(_problem(path, None, "", "", why))
        return
    if not records:
        problems.append(_problem(path, None, "", "", "empty file: no header"))
        return
    header = [clean(h, VALUE_MAX).lower() for h in records[0]]
    while header and not header[-1]:  # a spreadsheet's empty trailing columns
        header.pop()
    bad_header = _header_problems(path, header)
    if bad_header:
        problems += bad_header
        return
    # the record number counting the header as row 1 (as source_row of the extracts)
    for number, record in enumerate(records[1:], start=2):
        if not any(cell.strip() for cell in record):
            continue  # a blank line (spreadsheets leave them at the end)
        extra = [c for c in record[len(header) :] if c.strip()]
        if extra:
            why = "more cells than the header has columns"
            problems.append(_problem(path, number, "", extra[0], why))
            continue
        cells = {h: (record[i].strip() if i < len(record) else "") for i, h in enumerate(header)}
        row, bad = _row(path, number, cells)
        if bad:
            problems += bad
        else:
            rows.append(row)


def _header_problems(path: str, header: list[str]) -> list[dict]:
    """What is wrong with a file's header: an unknown or repeated column (a misspelt
    ``expires_on`` would make a release last for ever), a required column missing, or no
    column to say which lines a row releases."""
    out = []
    for h in sorted(set(header)):
        if h not in COLUMNS:
            out.append(
                _problem(path, 1, h, h, "unknown column (columns: " + ", ".join(COLUMNS) + ")")
            )
        elif header.count(h) > 1:
            out.append(_problem(path, 1, h, h, "the column is given more than once"))
    for c in REQUIRED:
        if c not in header:
            out.append(_problem(path, 1, c, "", "required column missing"))
    has_key = all(c in header for c in KEY_COLUMNS)
    if not (has_key or "claim_id" in header or "line_id" in header):
        out.append(
            _problem(
                path, 1, "clinic_id+encounter_id|claim_id|line_id", "",
                "no column naming what is released: clinic_id and encounter_id (the worklist "
                "key), claim_id or line_id",
            )
        )  # fmt: skip
    return out


def _row(path: str, number: int, cells: dict[str, str]) -> tuple[dict, list[dict]]:
    """One data row as a release, or its problems (one per bad cell)."""
    bad: list[dict] = []

    def problem(column: str, why: str) -> None:
        bad.append(_problem(path, number, column, cells.get(column, ""), why))

    code = cells.get("code", "").upper()
    if not code:
        problem("code", "required value missing")
    elif code not in CATALOGUE and code != VOID:
        problem("code", "not a code of the rule catalogue")
    reason = clean(cells.get("reason", ""), REASON_MAX)
    if not reason:
        bad.append(_problem(path, number, "reason", "", "required value missing"))
    who = clean(cells.get("released_by", ""), WHO_MAX)
    if not who:
        problem("released_by", "required value missing")
    released_on = _date(cells.get("released_on", ""))
    if not cells.get("released_on"):
        problem("released_on", "required value missing")
    elif released_on is None:
        problem("released_on", "not a date (YYYY-MM-DD)")
    expires_on = _date(cells.get("expires_on", ""))
    if cells.get("expires_on") and expires_on is None:
        problem("expires_on", "not a date (YYYY-MM-DD)")
    elif expires_on is not None and released_on is not None and expires_on < released_on:
        problem("expires_on", f"before released_on {released_on.isoformat()}")
    form = _form(cells, problem)
    if code == VOID and form and form != "claim":
        problem("claim_id", "a VOID names the claim to void by its claim_id (and nothing else)")
    if bad:
        return {}, bad
    row = {
        "file": path,
        "row": number,
        "form": form,
        **{c: cells.get(c) or pd.NA for c in SELECTORS},
        "code": code,
        "reason": reason,
        "released_by": who,
        "released_on": released_on,
        "expires_on": expires_on,
    }
    if form == "claim":  # a part of a split claim (``TC...-2``) names the whole claim
        row["claim_id"] = str(ledger.claim_key(pd.Series([cells["claim_id"]])).iloc[0])
    return row, []


def _form(cells: dict[str, str], problem) -> str:
    """Which of the three forms a row uses: the worklist key, a claim or a line. Exactly one
    may be given: a row naming two is ambiguous (which did the reviewer mean?)."""
    given = [
        f
        for f, present in (
            ("key", bool(cells.get("clinic_id") or cells.get("encounter_id"))),
            ("claim", bool(cells.get("claim_id"))),
            ("line", bool(cells.get("line_id"))),
        )
        if present
    ]
    if not given:
        problem("line_id", "no clinic_id and encounter_id, claim_id or line_id: give one of them")
        return ""
    if len(given) > 1:
        columns = {"key": "clinic_id", "claim": "claim_id", "line": "line_id"}
        problem(
            columns[given[1]],
            f"give one of the worklist key, claim_id or line_id, not {' and '.join(given)}",
        )
        return ""
    if given == ["key"]:
        for c in KEY_COLUMNS:
            if not cells.get(c):
                problem(c, "the worklist key needs both clinic_id and encounter_id")
    return given[0]


def _date(text: str) -> date | None:
    if not _ISO_DATE.fullmatch(text or ""):
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        return None


def _problem(path: str, row: int | None, column: str, value: str, why: str) -> dict:
    """A RELEASE_INVALID finding's fields: the message names file, row, column and value (the
    value cleaned and cut short; never a reason: a missing reason is the only bad one). A
    problem of the file or its header (row None or 1) keeps the whole file out."""
    where = f"release file {path}" + (f" row {row}" if row is not None else "")
    if column:
        where += f" column {column}"
    shown = clean(value, VALUE_MAX)
    where += f" value '{shown}'" if column or shown else ""
    return {
        "source_file": path,
        "source_row": row,
        "message": f"{where}: {why}; the row is not applied"
        if row is not None and row > 1
        else f"{where}: {why}; nothing in the file is applied",
    }


def _invalid(problems: list[dict]) -> pd.DataFrame:
    if not problems:
        return findings.empty()
    p = pd.DataFrame(problems)
    return findings.make(
        "RELEASE_INVALID",
        p[["source_file", "source_row"]],
        p["message"],
        evidence="release file " + p["source_file"].astype(str),
    )


# ----------------------------------------------------------------------------- applying


def apply(
    rel: Releases, found: pd.DataFrame, at: np.ndarray, lines: pd.DataFrame, run_date: date
) -> Applied:
    """Match the releases to the night's findings (``found``, on the lines at row positions
    ``at`` of ``lines``, -1 for none), vectorised: a release waives every error finding of
    its code on the lines it names (the worklist key's lines, the claim's, or the line). It
    is not applied past ``expires_on`` or for a code that cannot be released."""
    n = len(found)
    waived = np.zeros(n, dtype=bool)
    r = rel.rows[rel.rows["code"] != VOID].reset_index(drop=True)  # voids waive nothing
    if r.empty:
        return Applied(waived, rel.invalid.copy(), 0, 0)
    specs = r["code"].map(CATALOGUE)
    allowed = specs.map(lambda s: s.releasable and s.severity == ERROR).to_numpy(bool)
    expired = r["expires_on"].map(lambda d: d is not None and d < run_date).to_numpy(bool)
    matches = _matches(r, found, at, lines)  # release row, finding
    by, to = matches["release"].to_numpy(), matches["finding"].to_numpy()
    on_error = found["severity"].to_numpy(dtype=object)[to] == ERROR
    used = matches[allowed[by] & ~expired[by] & on_error]
    waived[used["finding"].to_numpy()] = True
    # one RELEASED per waived finding, credited to the first release row (files by path,
    # rows in order) that names it
    first = used.sort_values(["release", "finding"], kind="stable").drop_duplicates("finding")
    refused = matches[~allowed[by]]
    is_used = np.zeros(len(r), dtype=bool)
    is_used[used["release"].to_numpy()] = True
    unused = np.flatnonzero(allowed & ~is_used)
    not_matched = np.flatnonzero(~allowed & ~np.isin(np.arange(len(r)), refused["release"]))
    refused = refused.drop_duplicates("finding")
    out = findings.concat(
        [
            rel.invalid,
            _released(r, found, first),
            _refused(r, found, refused, not_matched, specs),
            _unused(r, unused, expired, run_date),
        ]
    )
    return Applied(waived, out, int(is_used.sum()), len(unused))


def _matches(r: pd.DataFrame, found: pd.DataFrame, at: np.ndarray, lines: pd.DataFrame):
    """Every (release row, finding) pair where the finding is on a line the release names and
    has its code: three joins (worklist key, claim, line) over the findings on lines."""
    at = np.asarray(at)
    # only the findings on a line with a code some release names (few of a night's findings)
    code = found["code"].to_numpy(dtype=object)
    on = np.flatnonzero((at >= 0) & np.isin(code, r["code"].unique().astype(object)))
    pos = at[on]
    f = pd.DataFrame(
        {
            "finding": on,
            "code": code[on],
            "clinic_id": lines["clinic_id"].to_numpy(dtype=object)[pos],
            "encounter_id": lines["encounter_id"].to_numpy(dtype=object)[pos],
            "claim_id": ledger.claim_key(lines["claim_id"].take(pos)).to_numpy(dtype=object),
            "line_id": lines["line_id"].to_numpy(dtype=object)[pos],
        }
    )
    keyed = r.assign(release=np.arange(len(r)))
    parts = []
    for form, by in (("key", list(KEY_COLUMNS)), ("claim", ["claim_id"]), ("line", ["line_id"])):
        rows = keyed[keyed["form"] == form]
        if len(rows) and len(f):
            left = rows[["release", "code", *by]].astype({c: object for c in ["code", *by]})
            parts.append(
                left.merge(f[["finding", "code", *by]], on=["code", *by])[["release", "finding"]]
            )
    if not parts:
        return pd.DataFrame({"release": np.zeros(0, np.int64), "finding": np.zeros(0, np.int64)})
    return pd.concat(parts, ignore_index=True).astype(np.int64)


def _named(r: pd.DataFrame) -> pd.Series:
    """What each release row names, as text: ``worklist key CLN01|E1``, ``claim TC...``,
    ``line L1`` (ids cleaned and cut: they are typed by people too)."""

    def ids(column: str) -> np.ndarray:
        return r[column].fillna("").to_numpy(dtype=object)

    form = r["form"].to_numpy(dtype=object)
    named = np.where(
        form == "key",
        "worklist key " + ids("clinic_id") + "|" + ids("encounter_id"),
        np.where(form == "claim", "claim " + ids("claim_id"), "line " + ids("line_id")),
    )
    return pd.Series(named, index=r.index).map(lambda s: clean(s, VALUE_MAX))


def _cleaned(ids: pd.Series) -> pd.Series:
    """Ids as typed in a release file, cleaned for the exception report."""
    return ids.map(lambda v: clean(v, VALUE_MAX), na_action="ignore")


def _where(r: pd.DataFrame) -> pd.Series:
    return "release file " + r["file"] + " row " + r["row"].astype(str)


def _released(r: pd.DataFrame, found: pd.DataFrame, first: pd.DataFrame) -> pd.DataFrame:
    """One RELEASED finding per waived finding, on its line: before -> after."""
    if first.empty:
        return findings.empty()
    rel = r.iloc[first["release"].to_numpy()].reset_index(drop=True)
    f = found.iloc[first["finding"].to_numpy()].reset_index(drop=True)
    on = rel["released_on"].map(date.isoformat)
    rows = pd.DataFrame(
        {
            "line_id": f["line_id"],
            "encounter_id": f["encounter_id"],
            "source_file": rel["file"],
            "source_row": rel["row"],
        }
    )
    return findings.make(
        "RELEASED",
        rows,
        f["code"] + " on line " + f["line_id"].fillna("") + " released (" + _named(rel)
        + "): it no longer holds the claim",
        evidence=_where(rel),
        before=f["code"] + " error holds claim",
        after="released by " + rel["released_by"] + " on " + on + ": " + rel["reason"],
    )  # fmt: skip


def _refused(
    r: pd.DataFrame,
    found: pd.DataFrame,
    refused: pd.DataFrame,
    not_matched: np.ndarray,
    specs: pd.Series,
) -> pd.DataFrame:
    """RELEASE_NOT_ALLOWED: one per finding a refused release names (on its line, so that the
    claim shows it), or one for the release row if it names none tonight."""
    why = specs.map(
        lambda s: (
            f"{s.code} cannot be released"
            if not s.releasable
            else f"{s.code} is a {s.severity}: it holds no claim, there is nothing to release"
        )
    )
    frames = []
    if len(refused):
        rel = r.iloc[refused["release"].to_numpy()].reset_index(drop=True)
        f = found.iloc[refused["finding"].to_numpy()].reset_index(drop=True)
        w = why.iloc[refused["release"].to_numpy()].reset_index(drop=True)
        held = np.where(f["severity"].to_numpy(dtype=object) == ERROR, " holds claim", "")
        rows = pd.DataFrame(
            {
                "line_id": f["line_id"],
                "encounter_id": f["encounter_id"],
                "source_file": rel["file"],
                "source_row": rel["row"],
            }
        )
        frames.append(
            findings.make(
                "RELEASE_NOT_ALLOWED",
                rows,
                "release of " + rel["code"] + " (" + _named(rel) + ") not applied: " + w,
                evidence=_where(rel),
                before=f["code"] + " " + f["severity"] + held,
                after="not released: " + w,
            )
        )
    if len(not_matched):
        rel = r.iloc[not_matched].reset_index(drop=True)
        w = why.iloc[not_matched].reset_index(drop=True)
        rows = pd.DataFrame(
            {
                "encounter_id": _cleaned(rel["encounter_id"]),
                "source_file": rel["file"],
                "source_row": rel["row"],
            }
        )
        frames.append(
            findings.make(
                "RELEASE_NOT_ALLOWED",
                rows,
                "release of "
                + rel["code"]
                + " ("
                + _named(rel)
                + ") not applied: "
                + w
                + "; it names no finding tonight either",
                evidence=_where(rel),
            )  # fmt: skip
        )
    return findings.concat(frames)


def void_unused(voids: pd.DataFrame, why: list[str]) -> pd.DataFrame:
    """RELEASE_UNUSED for ``VOID`` rows (of ``Releases.voids``) that voided nothing tonight,
    each with why (``why``: ids and statuses only, never the row's reason)."""
    if voids.empty:
        return findings.empty()
    rel = voids.reset_index(drop=True)
    rows = pd.DataFrame(
        {
            "encounter_id": _cleaned(rel["encounter_id"]),
            "source_file": rel["file"],
            "source_row": rel["row"],
        }
    )
    return findings.make(
        "RELEASE_UNUSED",
        rows,
        "release VOID (" + _named(rel) + ") not applied: " + pd.Series(why, dtype="string"),
        evidence=_where(rel),
    )


def _unused(
    r: pd.DataFrame, unused: np.ndarray, expired: np.ndarray, run_date: date
) -> pd.DataFrame:
    """RELEASE_UNUSED: one per release row that waived nothing, saying why."""
    if not len(unused):
        return findings.empty()
    rel = r.iloc[unused].reset_index(drop=True)
    gone = expired[unused]
    until = rel["expires_on"].map(lambda d: d.isoformat() if d is not None else "")
    why = np.where(
        gone,
        "expired on " + until + " (the run date is " + run_date.isoformat() + "): not applied",
        "matches no " + rel["code"] + " error tonight (fixed, billed, or the ids changed): "
        "nothing released; remove the row or give it an expires_on",
    )  # fmt: skip
    rows = pd.DataFrame(
        {
            "encounter_id": _cleaned(rel["encounter_id"]),
            "source_file": rel["file"],
            "source_row": rel["row"],
        }
    )
    return findings.make(
        "RELEASE_UNUSED",
        rows,
        "release of " + rel["code"] + " (" + _named(rel) + ") " + pd.Series(why),
        evidence=_where(rel),
    )
