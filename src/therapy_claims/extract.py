"""Reading the nightly extracts (../shared/spec/extract-format.md) and typing their rows.

A file that cannot be read, or lacks a required column, is rejected whole (FILE_REJECTED).
A row that cannot be parsed or typed is quarantined (ROW_INVALID, naming file, row, column
and value), and its encounter's other lines are held (ENCOUNTER_INCOMPLETE). A line_id seen
twice keeps its first occurrence (held, DUPLICATE_LINE) and quarantines the others. Nothing is
dropped without a finding. Typing is vectorised per column.

``source_row`` is the record's number in its file counting the header as row 1 (the row a
spreadsheet shows when no value holds a line break); for JSON Lines, the line number.
"""

from __future__ import annotations

import hashlib
import io
import json
from dataclasses import asdict, dataclass

import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from therapy_claims import findings, storage, timing
from therapy_claims.layout import COLUMN_NAMES, COLUMNS, REQUIRED_COLUMNS

EXTENSIONS = (".csv", ".parquet", ".jsonl", ".ndjson", ".json")
LIST_COLUMNS = tuple(c.name for c in COLUMNS if c.kind == "list")


@dataclass
class InputFile:
    path: str
    sha256: str
    rows: int
    accepted: bool
    message: str = ""


@dataclass
class Ingested:
    raw: pd.DataFrame  # accepted, typed rows + lineage
    quarantined: pd.DataFrame  # line_id, encounter_id, source_file, source_row of quarantined rows
    findings: pd.DataFrame
    inputs: list[InputFile]

    @property
    def rows_in(self) -> int:
        return len(self.raw) + len(self.quarantined)

    def inputs_dicts(self) -> list[dict]:
        return [asdict(i) for i in self.inputs]


class FileRejected(Exception):
    def __init__(self, message: str, rows: int = 0):
        super().__init__(message)
        self.rows = rows


def discover(paths: list[str]) -> list[str]:
    """Expand folders into the extract files they hold (by extension), sorted; files stay as given."""
    out: list[str] = []
    for p in paths:
        if storage.is_dir(p):
            out += [f for f in storage.list_files(p) if f.lower().endswith(EXTENSIONS)]
        elif storage.exists(p):
            out.append(str(p))
        else:
            raise FileNotFoundError(f"input {p} does not exist")
    return sorted(dict.fromkeys(out))


# --------------------------------------------------------------------------- reading


def _read_csv(data: bytes, label: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """All values as strings; returns (rows, bad_records) where bad_records has source_row and text."""
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    try:
        text_head = data[:65536].decode("utf-8", errors="strict")
    except UnicodeDecodeError as exc:
        if exc.start < 65536 - 4:
            raise FileRejected(
                f"not UTF-8 text (byte {exc.start}: {data[exc.start : exc.start + 1]!r})"
            ) from exc
        text_head = data[:65532].decode("utf-8", errors="ignore")
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise FileRejected(f"not UTF-8 text (byte offset {exc.start})") from exc
    import csv

    first_line = text_head.splitlines()[0] if text_head.strip() else ""
    if not first_line.strip():
        raise FileRejected("no header row (the file is empty or starts with a blank line)")
    header = next(csv.reader([first_line]))
    header = [h.strip() for h in header]
    if len(set(header)) != len(header):
        dupes = sorted({h for h in header if header.count(h) > 1})
        raise FileRejected(f"header repeats column(s) {', '.join(dupes)}")
    missing = [c for c in REQUIRED_COLUMNS if c not in header]
    if missing:
        shown = ", ".join(missing[:8]) + (
            f" and {len(missing) - 8} more" if len(missing) > 8 else ""
        )
        raise FileRejected(f"missing required column(s): {shown}")
    bad: list[tuple[int | None, str, int, int]] = []

    def on_invalid(row: pacsv.InvalidRow) -> str:
        bad.append((row.number, row.text, row.expected_columns, row.actual_columns))
        return "skip"

    try:
        table = pacsv.read_csv(
            io.BytesIO(data),
            read_options=pacsv.ReadOptions(
                use_threads=False, column_names=header, skip_rows=1, block_size=64 << 20
            ),
            parse_options=pacsv.ParseOptions(
                newlines_in_values=True, invalid_row_handler=on_invalid
            ),
            convert_options=pacsv.ConvertOptions(
                column_types={h: pa.string() for h in header},
                strings_can_be_null=False,
                quoted_strings_can_be_null=False,
            ),
        )
    except (pa.ArrowInvalid, pa.ArrowException) as exc:
        raise FileRejected(f"cannot be parsed as CSV: {exc}") from exc
    df = table.to_pandas(types_mapper={pa.string(): pd.StringDtype()}.get)
    n_total = len(df) + len(bad)
    bad_numbers = {b[0] for b in bad if b[0] is not None}
    # record numbers: header is 1; pyarrow reports the record number of each skipped row
    numbers = [n for n in range(2, n_total + 2) if n not in bad_numbers] if bad else None
    df["source_row"] = pd.array(
        numbers if numbers is not None else range(2, len(df) + 2), dtype="Int64"
    )
    bad_df = pd.DataFrame(
        {
            "source_row": pd.array([b[0] for b in bad], dtype="Int64"),
            "text": [b[1] for b in bad],
            "problem": [f"has {b[3]} fields where the header has {b[2]}" for b in bad],
        }
    )
    return df, bad_df


def _stringify(df: pd.DataFrame) -> pd.DataFrame:
    out = pd.DataFrame(index=df.index)
    for c in df.columns:
        s = df[c]
        if pd.api.types.is_datetime64_any_dtype(s):
            out[c] = s.dt.strftime("%Y-%m-%d")
        elif pd.api.types.is_float_dtype(s):
            # 15.0 -> "15", 87.5 -> "87.5"
            out[c] = s.map(
                lambda v: (
                    "" if pd.isna(v) else (str(int(v)) if float(v).is_integer() else repr(float(v)))
                )
            )
        elif s.dtype == object:
            out[c] = s.map(
                lambda v: "" if v is None or (isinstance(v, float) and pd.isna(v)) else str(v)
            )
        else:
            out[c] = s.astype("string")
        out[c] = out[c].astype("string").fillna("")
    return out


def _read_parquet(data: bytes) -> tuple[pd.DataFrame, pd.DataFrame]:
    try:
        table = pq.read_table(pa.BufferReader(data))
    except (pa.ArrowInvalid, OSError) as exc:
        raise FileRejected(f"cannot be read as Parquet: {exc}") from exc
    missing = [c for c in REQUIRED_COLUMNS if c not in table.column_names]
    if missing:
        raise FileRejected(f"missing required column(s): {', '.join(missing)}", rows=table.num_rows)
    df = _stringify(table.to_pandas())
    df["source_row"] = pd.array(range(1, len(df) + 1), dtype="Int64")
    return df, pd.DataFrame({"source_row": pd.array([], dtype="Int64"), "text": [], "problem": []})


def _read_jsonl(data: bytes) -> tuple[pd.DataFrame, pd.DataFrame]:
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise FileRejected(f"not UTF-8 text (byte offset {exc.start})") from exc
    records, numbers, bad = [], [], []
    for i, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
            if not isinstance(obj, dict):
                raise ValueError("not a JSON object")
        except ValueError as exc:
            bad.append((i, line[:200], f"is not a JSON object ({exc})"))
            continue
        records.append(obj)
        numbers.append(i)
    if not records and not bad:
        raise FileRejected("the file is empty")
    df = pd.DataFrame.from_records(records) if records else pd.DataFrame()
    missing = [c for c in REQUIRED_COLUMNS if c not in df.columns]
    if records and missing:
        raise FileRejected(
            f"missing required column(s): {', '.join(missing)}", rows=len(records) + len(bad)
        )
    df = _stringify(df)
    df["source_row"] = pd.array(numbers, dtype="Int64")
    bad_df = pd.DataFrame(
        {
            "source_row": pd.array([b[0] for b in bad], dtype="Int64"),
            "text": [b[1] for b in bad],
            "problem": [b[2] for b in bad],
        }
    )
    return df, bad_df


def read_file(path: str) -> tuple[pd.DataFrame, pd.DataFrame, InputFile]:
    """Read one extract: (rows as strings + source_file/source_row, bad records, file info).
    Raises nothing for bad content: a rejected file comes back with accepted=False."""
    data = storage.read_bytes(path)
    sha = hashlib.sha256(data).hexdigest()
    label = storage.name(path)
    low = path.lower()
    try:
        if not data.strip(b"\xef\xbb\xbf \r\n\t"):
            raise FileRejected("the file is empty")
        if low.endswith(".parquet"):
            df, bad = _read_parquet(data)
        elif low.endswith((".jsonl", ".ndjson", ".json")):
            df, bad = _read_jsonl(data)
        else:
            df, bad = _read_csv(data, label)
    except FileRejected as exc:
        return pd.DataFrame(), pd.DataFrame(), InputFile(path, sha, exc.rows, False, str(exc))
    for c in COLUMN_NAMES:
        if c not in df.columns:
            df[c] = pd.array([""] * len(df), dtype="string")
    df["source_file"] = path
    bad["source_file"] = path
    return df, bad, InputFile(path, sha, len(df) + len(bad), True, "")


# --------------------------------------------------------------------------- typing

_TIME = r"([01]?\d|2[0-3]):[0-5]\d"


def _problem(mask: pd.Series, col: str, text: str, out: list) -> None:
    """Record a problem; ``{value}`` in ``text`` stands for the offending value."""
    if mask.any():
        out.append((mask, col, text))


def type_rows(df: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame, pd.Series]:
    """Type the string rows. Returns (typed frame, ROW_INVALID findings, bad-row mask)."""

    def stripped(name: str) -> pd.Series:
        return df[name].astype("string").fillna("").str.strip()

    # one column at a time (a million-row night has ~50 string columns: no second copy of all)
    ids = {c: stripped(c) for c in ("line_id", "encounter_id")}
    typed = pd.DataFrame(index=df.index)
    problems: list[tuple[pd.Series, str, str]] = []
    for col in COLUMNS:
        s = ids[col.name] if col.name in ids else stripped(col.name)
        empty = s == ""
        if col.required:
            _problem(empty, col.name, "required value is missing", problems)
        if col.kind == "date":
            val = pd.to_datetime(s, format="%Y-%m-%d", errors="coerce")
            _problem(~empty & val.isna(), col.name, "{value} is not a date (YYYY-MM-DD)", problems)
            typed[col.name] = val
        elif col.kind == "int":
            num = pd.to_numeric(s.where(~empty), errors="coerce")
            bad = ~empty & (num.isna() | (num != num.round()))
            _problem(bad, col.name, "{value} is not a whole number", problems)
            if col.minimum is not None:
                low = ~bad & ~empty & (num < col.minimum)
                _problem(low, col.name, f"{{value}} is below the minimum {col.minimum}", problems)
            typed[col.name] = num.where(~bad).round().astype("Int64")
        elif col.kind == "decimal":
            num = pd.to_numeric(
                s.where(~empty).str.replace(r"^\$", "", regex=True), errors="coerce"
            )
            bad = ~empty & num.isna()
            _problem(bad, col.name, "{value} is not an amount", problems)
            _problem(~bad & ~empty & (num < 0), col.name, "{value} is negative", problems)
            typed[col.name] = num.round(2).astype("float64")
        elif col.kind == "time":
            ok = s.str.fullmatch(_TIME).fillna(False).astype(bool)
            _problem(~empty & ~ok, col.name, "{value} is not a time (HH:MM, 24 h)", problems)
            hhmm = s.where(ok, "").str.zfill(5)  # H:MM -> 0H:MM; invalid -> "00000"
            minute = pd.to_numeric(hhmm.str.slice(0, 2), errors="coerce") * 60 + pd.to_numeric(
                hhmm.str.slice(3, 5), errors="coerce"
            )
            minute = minute.where(ok).astype("Int64")
            typed[col.name] = (
                (minute // 60).astype("string").str.zfill(2)
                + ":"
                + (minute % 60).astype("string").str.zfill(2)
            ).astype("string")
            typed[col.name.replace("_time", "_minute")] = minute
        elif col.kind == "enum":
            norm = s.str.lower() if col.name == "subscriber_relationship" else s.str.upper()
            _problem(
                ~empty & ~norm.isin(col.allowed),
                col.name,
                "{value} is not one of " + "/".join(col.allowed),
                problems,
            )
            typed[col.name] = norm.where(~empty).astype("string")
        elif col.kind == "list":
            parts = s.str.replace(" ", "", regex=False)
            if col.name in ("modifiers", "diagnosis_codes"):
                parts = parts.str.upper()
            elif col.name in ("body_region", "technique"):
                parts = parts.str.lower()
            parts = parts.str.replace(r";{2,}", ";", regex=True).str.strip(";")
            if col.name == "diagnosis_pointers":
                ok = parts.str.fullmatch(r"\d+(;\d+)*").fillna(False).astype(bool)
                _problem(
                    ~empty & ~ok,
                    col.name,
                    "{value} is not a ;-separated list of numbers",
                    problems,
                )
            typed[col.name] = parts.where(parts != "").astype("string")
        else:  # str
            if col.max_len:
                _problem(
                    s.str.len() > col.max_len,
                    col.name,
                    f"{{value}} is longer than {col.max_len} characters",
                    problems,
                )
            if col.pattern:
                ok = s.str.fullmatch(col.pattern).fillna(False).astype(bool)
                _problem(~empty & ~ok, col.name, "{value} has the wrong format", problems)
            norm = s.str.upper() if col.name in ("cpt_code", "patient_state") else s
            typed[col.name] = norm.where(~empty).astype("string")
    # keep unknown extra columns (raw layer), as strings
    for c in df.columns:
        if c not in typed.columns and c not in ("source_file", "source_row"):
            typed[c] = df[c].astype("string")
    typed["source_file"] = df["source_file"].astype("string")
    typed["source_row"] = df["source_row"].astype("Int64")

    bad_mask = pd.Series(False, index=df.index)
    frames = []
    where = (
        df["source_file"].map(storage.name).astype("string")
        + " row "
        + df["source_row"].astype("string")
    )
    for mask, col, text in problems:
        bad_mask |= mask
        rows = typed.loc[mask, ["line_id", "encounter_id", "source_file", "source_row"]]
        rows = rows.assign(
            line_id=ids["line_id"][mask].replace("", pd.NA),
            encounter_id=ids["encounter_id"][mask].replace("", pd.NA),
        )
        if "{value}" in text:  # the offending value, quoted, built only for the failing rows
            head, tail = text.split("{value}", 1)
            value = df.loc[mask, col].astype("string").fillna("").str.strip()
            text = head + "'" + value.str.slice(0, 60) + "'" + tail
        msg = where[mask] + f", column {col}: " + text
        frames.append(
            findings.make("ROW_INVALID", rows, msg, evidence=f"extract contract: column {col}")
        )
    return typed, findings.concat(frames), bad_mask


@dataclass
class FilePart:
    """One input file read and typed on its own: the per-file half of ingest. A night's
    ingest is ``combine`` over the parts of all its files, whether they were read in one
    process (the CLI) or in mapped Airflow tasks (one per file or clinic partition)."""

    info: InputFile
    # every record that parsed, typed; plus _bad (failed typing), _line_id_raw, _encounter_id_raw
    typed: pd.DataFrame
    bad_records: pd.DataFrame  # source_file, source_row of records that did not parse
    findings: pd.DataFrame  # FILE_REJECTED / ROW_INVALID, with _stage: 0 file, 1 record, 2 row


PART_COLUMNS = ("_bad", "_line_id_raw", "_encounter_id_raw")


def _empty_typed() -> pd.DataFrame:
    strings = pd.DataFrame({c: pd.array([], dtype="string") for c in COLUMN_NAMES})
    strings["source_file"] = pd.array([], dtype="string")
    strings["source_row"] = pd.array([], dtype="Int64")
    typed, _found, bad_mask = type_rows(strings)
    typed["_bad"] = bad_mask.astype(bool)
    typed["_line_id_raw"] = strings["line_id"]
    typed["_encounter_id_raw"] = strings["encounter_id"]
    return typed


def read_typed(path: str) -> FilePart:
    """Read and type one file; nothing here depends on the night's other files."""
    with timing.record("read"):
        df, bad, info = read_file(path)
    if not info.accepted:
        rows = pd.DataFrame({"source_file": [info.path]})
        found = findings.make(
            "FILE_REJECTED",
            rows,
            f"{storage.name(info.path)}: {info.message}; nothing in it was billed",
            evidence="extract contract (extract-format.md)",
        ).assign(_stage=0)
        return FilePart(info, _empty_typed().iloc[0:0], _bad_records(None), found)
    frames = []
    if not bad.empty:
        rows = bad.assign(line_id=pd.NA, encounter_id=pd.NA)
        msg = (
            bad["source_file"].map(storage.name)
            + " row "
            + bad["source_row"].astype("string").fillna("?")
            + ": record "
            + bad["problem"]
            + ": '"
            + bad["text"].str.slice(0, 80)
            + "'"
        )
        frames.append(
            findings.make("ROW_INVALID", rows, msg, evidence="RFC 4180 CSV / JSON Lines").assign(
                _stage=1
            )
        )
    with timing.record("typing"):
        typed, row_findings, bad_mask = type_rows(df)
    frames.append(row_findings.assign(_stage=2))
    typed["_bad"] = bad_mask.astype(bool)
    typed["_line_id_raw"] = df["line_id"].astype("string")
    typed["_encounter_id_raw"] = df["encounter_id"].astype("string")
    found = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
    return FilePart(info, typed, _bad_records(bad), found.reset_index(drop=True))


def _bad_records(bad: pd.DataFrame | None) -> pd.DataFrame:
    if bad is None or bad.empty:
        return pd.DataFrame(
            {
                "source_file": pd.array([], dtype="string"),
                "source_row": pd.array([], dtype="Int64"),
            }
        )
    return pd.DataFrame(
        {
            "source_file": bad["source_file"].astype("string"),
            "source_row": bad["source_row"].astype("Int64"),
        }
    )


def combine(parts: list[FilePart], ingested_at: str) -> Ingested:
    """The cross-file half of ingest: put the night's file parts together (in the order given),
    quarantine repeated line_ids and hold the visits of quarantined rows."""
    infos = [p.info for p in parts]
    found_parts = [p.findings for p in parts if not p.findings.empty]
    earlier = (
        pd.concat(found_parts, ignore_index=True)
        .sort_values("_stage", kind="mergesort")
        .drop(columns="_stage")
        if found_parts
        else findings.empty()
    )
    typed_parts = [p.typed for p in parts if p.info.accepted and len(p.typed)]
    if typed_parts:
        typed = pd.concat(typed_parts, ignore_index=True)
        for c in typed.columns:  # extra columns a file lacks come back as object
            if typed[c].dtype == object:
                typed[c] = typed[c].astype("string")
    else:
        typed = _empty_typed()
    bad_mask = typed["_bad"].astype(bool)
    line_raw, enc_raw = typed["_line_id_raw"], typed["_encounter_id_raw"]
    typed = typed.drop(columns=list(PART_COLUMNS))

    # duplicate line ids among rows that typed cleanly: first occurrence kept (and held)
    ok = typed[~bad_mask]
    dup_later = ok["line_id"].duplicated(keep="first")
    dup_any = ok["line_id"].duplicated(keep=False)
    first_of_dup = dup_any & ~dup_later
    counts = ok["line_id"].map(ok["line_id"].value_counts())
    where = (
        ok["source_file"].map(storage.name).astype("string")
        + " row "
        + ok["source_row"].astype("string")
    )
    firsts = ok[first_of_dup]
    dup_findings = [
        findings.make(
            "DUPLICATE_LINE",
            firsts,
            "line_id "
            + firsts["line_id"]
            + " appears "
            + counts[first_of_dup].astype("string")
            + " times tonight; this first occurrence ("
            + where[first_of_dup]
            + ") is held, the others are quarantined",
        ),
        findings.make(
            "DUPLICATE_LINE",
            ok[dup_later],
            "line_id "
            + ok.loc[dup_later, "line_id"]
            + " was already seen tonight; this copy ("
            + where[dup_later]
            + ") is quarantined",
        ),
    ]
    quarantine_mask = bad_mask.copy()
    quarantine_mask.loc[ok.index[dup_later.to_numpy()]] = True

    accepted = typed[~quarantine_mask].copy()
    quarantined = typed.loc[
        quarantine_mask, ["line_id", "encounter_id", "source_file", "source_row"]
    ]
    quarantined = quarantined.assign(
        line_id=line_raw[quarantine_mask].astype("string"),
        encounter_id=enc_raw[quarantine_mask].astype("string"),
    )
    # records that did not even parse count as quarantined rows too
    for p in parts:
        if not p.bad_records.empty:
            quarantined = pd.concat(
                [
                    quarantined,
                    p.bad_records[["source_file", "source_row"]].assign(
                        line_id=pd.NA, encounter_id=pd.NA
                    ),
                ],
                ignore_index=True,
            )

    # siblings of quarantined rows (same encounter) are held
    q_enc = set(enc_raw[bad_mask].astype("string").fillna("").str.strip()) - {""}
    sib = accepted["encounter_id"].isin(q_enc)
    sib_rows = accepted[sib]
    enc_findings = findings.make(
        "ENCOUNTER_INCOMPLETE",
        sib_rows,
        "encounter "
        + sib_rows["encounter_id"]
        + " has a line that could not be read; the whole visit is held",
    )
    accepted["ingested_at"] = ingested_at
    accepted = accepted.reset_index(drop=True)
    all_findings = findings.concat([earlier, *dup_findings, enc_findings])
    return Ingested(accepted, quarantined.reset_index(drop=True), all_findings, infos)


def ingest(paths: list[str], ingested_at: str) -> Ingested:
    """A night's ingest in one process: ``read_typed`` each file, then ``combine``."""
    return combine([read_typed(p) for p in discover(paths)], ingested_at)
