"""Reading the nightly extracts (docs/extract-format.md) and typing their rows.

A file that cannot be read, lacks a required column, or has a shape no extract has (a header
of more than MAX_COLUMNS columns, a JSON line nested deeper than MAX_JSON_DEPTH: checked on
the bytes before parsing, so such a file costs a scan, not minutes, GBs or a crash) is
rejected whole (FILE_REJECTED). A file with column names and no rows is named (FILE_EMPTY).
A row that cannot be parsed or typed is quarantined (ROW_INVALID, naming file, row, column
and value), and its encounter's other lines are held (ENCOUNTER_INCOMPLETE). A line_id seen
twice keeps its first occurrence (held, DUPLICATE_LINE) and quarantines the others. One charge
charted twice under two line_ids (same patient, clinic, date, code, clinician and times) keeps
its first line in file order and quarantines the copies (DUPLICATE_CHARGE); nothing is held for
it. Nothing is dropped without a finding. Typing is vectorised per column: plain text columns in
Arrow, the others once per distinct value (a night has few dates, amounts or codes) and spread
back to the rows; messages are built only for the rows that fail.

``source_row`` is the record's number in its file counting the header as row 1 (the row a
spreadsheet shows when no value holds a line break); for JSON Lines, the line number.

Arrow's and NumPy's kernels release the GIL: typing and ``combine``'s copy of the accepted
rows run them a column per task on a small thread pool (as many threads as Arrow's own CPU
pool). pandas itself runs on the calling thread only: its warning filters are process-wide.
"""

from __future__ import annotations

import csv
import hashlib
import json
import re
from collections import Counter
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from therapy_claims import findings, storage, timing, units
from therapy_claims.layout import COLUMN_NAMES, COLUMNS, REQUIRED_COLUMNS, Column

_CONTENT = re.compile(rb"[^\xef\xbb\xbf \r\n\t]")  # a byte other than BOM or blank
EXTENSIONS = (".csv", ".parquet", ".jsonl", ".ndjson", ".json")
LIST_COLUMNS = tuple(c.name for c in COLUMNS if c.kind == "list")
LOWER_ENUMS = ("subscriber_relationship", "related_cause")  # the other enums are upper-case
UPPER_TEXTS = ("cpt_code", "patient_state", "accident_state", "rendering_taxonomy")
_THREADS = pa.cpu_count()  # typing and combine's row selection: one column per task
# Arrow's CSV reader, see _read_csv: the quick read's blocks, and the blocks of the read that
# also takes records longer than that
_QUICK_BLOCK = 1 << 20
_BLOCK = 64 << 20
# Limits on a file's shape (docs/extract-format.md), checked before a file is parsed: the
# extract has 59 columns, and a PM system's extra ones are kept, but a header of a million
# columns would take minutes and GBs to read and type for nothing. A JSON value nested deeper
# than Python's recursion limit would crash its parser; column values are flat.
MAX_COLUMNS = 1_000
MAX_HEADER_BYTES = 1 << 16
MAX_JSON_DEPTH = 64


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


def _is_utf8(data: bytes) -> bool:
    """Whether ``data`` is valid UTF-8 (Arrow's validator: no decoded copy of the file)."""
    offsets = pa.py_buffer(np.array([0, len(data)], dtype=np.int64))
    text = pa.Array.from_buffers(pa.large_string(), 1, [None, offsets, pa.py_buffer(data)])
    try:
        text.validate(full=True)
    except pa.ArrowInvalid:
        return False
    return True


def _parse_csv(
    data: bytes,
    header: list[str],
    use_threads: bool,
    columns: list[str] | None = None,
    block_size: int = _BLOCK,
) -> tuple[pa.Table, list[tuple[int | None, str, int, int]]]:
    """The ``columns`` (default all), every value a string (the file is known to be UTF-8);
    records that do not parse are skipped and returned as (record number or None when reading
    with threads, text, expected fields, actual fields)."""
    bad: list[tuple[int | None, str, int, int]] = []

    def on_invalid(row: pacsv.InvalidRow) -> str:
        bad.append((row.number, row.text, row.expected_columns, row.actual_columns))
        return "skip"

    table = pacsv.read_csv(
        pa.BufferReader(data),
        read_options=pacsv.ReadOptions(
            use_threads=use_threads, column_names=header, skip_rows=1, block_size=block_size
        ),
        parse_options=pacsv.ParseOptions(newlines_in_values=True, invalid_row_handler=on_invalid),
        convert_options=pacsv.ConvertOptions(
            column_types={h: pa.large_string() for h in header},
            include_columns=columns,
            strings_can_be_null=False,
            quoted_strings_can_be_null=False,
            check_utf8=False,
        ),
    )
    return table, bad


def _parse_csv_in_big_blocks(
    data: bytes, header: list[str]
) -> tuple[pa.Table, list[tuple[int | None, str, int, int]]]:
    """The threaded reader, whose skipped records a serial pass that converts one column only
    numbers (only when it skipped some). A file that fails as a whole, or whose passes
    disagree, is read serially in full, and fails as that reader says."""
    try:
        table, bad = _parse_csv(data, header, use_threads=True)
        if bad:
            _, numbered = _parse_csv(data, header, use_threads=False, columns=header[:1])
            table, bad = (table, numbered) if len(numbered) == len(bad) else (None, [])
    except pa.ArrowException:
        table, bad = None, []
    if table is None:
        try:
            table, bad = _parse_csv(data, header, use_threads=False)
        except (pa.ArrowInvalid, pa.ArrowException) as exc:
            raise FileRejected(f"cannot be parsed as CSV: {exc}") from exc
    return table, bad


def _header_end(data: bytes) -> int:
    """The byte offset where the first line ends (its line break, or the end of the file).
    Found by byte search, so a header of any length costs a scan, not a parse."""
    end = data.find(b"\n")
    end = len(data) if end < 0 else end
    cr = data.find(b"\r", 0, end)
    return end if cr < 0 else cr


def _csv_header(data: bytes) -> list[str]:
    """The header row's column names (stripped), or FileRejected naming what is wrong with
    it. Its size is checked on the bytes before anything is decoded or split: a header of a
    million columns is rejected for that, in the time it takes to count its commas."""
    end = _header_end(data)
    if end > MAX_HEADER_BYTES:
        fields = data.count(b",", 0, end) + 1
        if fields > MAX_COLUMNS:
            about = "up to " if data.find(b'"', 0, end) >= 0 else ""  # quoted commas
            raise FileRejected(
                f"the header row has {about}{fields:,} columns; at most {MAX_COLUMNS:,} are read"
            )
        raise FileRejected(
            f"the header row is {end:,} bytes long; at most {MAX_HEADER_BYTES:,} are read"
        )
    lines = data[:end].decode("utf-8").splitlines()
    first_line = lines[0] if lines else ""
    if not first_line.strip():
        raise FileRejected("no header row (the file is empty or starts with a blank line)")
    header = [h.strip() for h in next(csv.reader([first_line]))]
    if len(header) > MAX_COLUMNS:
        raise FileRejected(
            f"the header row has {len(header):,} columns; at most {MAX_COLUMNS:,} are read"
        )
    if len(set(header)) != len(header):
        dupes = sorted(h for h, n in Counter(header).items() if n > 1)
        raise FileRejected(f"header repeats column(s) {', '.join(dupes)}")
    return header


def _read_csv(data: bytes, label: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """All values as strings; returns (rows, bad_records) where bad_records has source_row and text."""
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    try:  # a bad byte near the start is named with its value
        data[:65536].decode("utf-8", errors="strict")
    except UnicodeDecodeError as exc:
        if exc.start < 65536 - 4:  # not a character cut at the end of the head
            raise FileRejected(
                f"not UTF-8 text (byte {exc.start}: {data[exc.start : exc.start + 1]!r})"
            ) from exc
    if not _is_utf8(data):
        try:
            data.decode("utf-8")
        except UnicodeDecodeError as exc:  # for the offset of the first bad byte
            raise FileRejected(f"not UTF-8 text (byte offset {exc.start})") from exc

    header = _csv_header(data)
    missing = [c for c in REQUIRED_COLUMNS if c not in header]
    if missing:
        shown = ", ".join(missing[:8]) + (
            f" and {len(missing) - 8} more" if len(missing) > 8 else ""
        )
        raise FileRejected(f"missing required column(s): {shown}")
    # The quick read: Arrow's serial reader in 1 MiB blocks (they stay in the CPU caches). It
    # numbers the records it skips, and takes a third of the CPU time of the threaded reader in
    # 64 MiB blocks, without taking longer on two cores (docs/performance.md). A record longer
    # than a block fails it ("straddling object ..."): such a file, or one that fails as a
    # whole, is read as before, in 64 MiB blocks.
    try:
        table, bad = _parse_csv(data, header, use_threads=False, block_size=_QUICK_BLOCK)
    except pa.ArrowException:
        table, bad = _parse_csv_in_big_blocks(data, header)
    df = table.to_pandas(types_mapper={pa.large_string(): pd.StringDtype()}.get)
    # record numbers: header is 1; pyarrow reports the record number of each skipped row
    numbers = np.arange(2, len(df) + len(bad) + 2)
    if bad:
        numbers = np.setdiff1d(numbers, [b[0] for b in bad if b[0] is not None])
    df["source_row"] = pd.array(numbers, dtype="Int64")
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
        # the footer first: a file of more columns than the extract could ever need is
        # rejected before they are read
        shape = pq.ParquetFile(pa.BufferReader(data))
        if len(shape.schema_arrow) > MAX_COLUMNS:
            raise FileRejected(
                f"has {len(shape.schema_arrow):,} columns; at most {MAX_COLUMNS:,} are read",
                rows=shape.metadata.num_rows,
            )
        table = pq.read_table(pa.BufferReader(data))
    except (pa.ArrowInvalid, OSError) as exc:
        raise FileRejected(f"cannot be read as Parquet: {exc}") from exc
    missing = [c for c in REQUIRED_COLUMNS if c not in table.column_names]
    if missing:
        raise FileRejected(f"missing required column(s): {', '.join(missing)}", rows=table.num_rows)
    df = _stringify(table.to_pandas())
    df["source_row"] = pd.array(range(1, len(df) + 1), dtype="Int64")
    return df, pd.DataFrame({"source_row": pd.array([], dtype="Int64"), "text": [], "problem": []})


# +1 for a byte that opens an array or object, -1 for one that closes it
_NESTING = np.zeros(256, dtype=np.int8)
_NESTING[[ord("["), ord("{")]], _NESTING[[ord("]"), ord("}")]] = 1, -1
_DEPTH_CHUNK = 1 << 20  # bytes of a line counted at a time (bounded memory for any line)


def _json_depth(line: str) -> int:
    """How deeply the arrays and objects of one JSON line nest (the line's object is 1),
    counted on its brackets outside strings, without parsing it: Python's parser recurses
    once per level and fails (RecursionError) about a thousand levels down. Escapes are
    dropped first (an escaped backslash, then an escaped quote), so every quote left opens or
    closes a string; the rest is NumPy over the bytes, a chunk at a time."""
    text = line.replace("\\\\", "").replace('\\"', "").encode("utf-8")
    codes = np.frombuffer(text, dtype=np.uint8)
    depth = deepest = inside = 0
    for at in range(0, len(codes), _DEPTH_CHUNK):
        part = codes[at : at + _DEPTH_CHUNK]
        in_string = np.bitwise_xor.accumulate((part == ord('"')).view(np.uint8)) ^ inside
        run = np.cumsum(np.where(in_string, 0, _NESTING[part]), dtype=np.int64) + depth
        deepest, depth, inside = max(deepest, int(run.max())), int(run[-1]), int(in_string[-1])
    return deepest


def _json_rejected(reason: str, lines: list[str]) -> FileRejected:
    """The whole file rejected for one line; its rows are the non-blank lines."""
    return FileRejected(reason, rows=sum(1 for line in lines if line.strip()))


def _check_json_shape(line: str, number: int, lines: list[str]) -> None:
    """Reject the file if line ``number`` nests deeper than ``MAX_JSON_DEPTH``. Only a line
    with more brackets than that is counted (the count is a C-speed scan; a line of flat
    values has one)."""
    if line.count("[") + line.count("{") <= MAX_JSON_DEPTH:
        return
    depth = _json_depth(line)
    if depth > MAX_JSON_DEPTH:
        raise _json_rejected(
            f"line {number} nests arrays/objects {depth:,} levels deep; "
            f"at most {MAX_JSON_DEPTH} are read",
            lines,
        )


def _read_jsonl(data: bytes) -> tuple[pd.DataFrame, pd.DataFrame]:
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise FileRejected(f"not UTF-8 text (byte offset {exc.start})") from exc
    records, numbers, bad = [], [], []
    lines = text.splitlines()
    for i, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        _check_json_shape(line, i, lines)
        try:
            obj = json.loads(line)
            if not isinstance(obj, dict):
                raise ValueError("not a JSON object")
        except RecursionError as exc:  # only if the depth check above let it through
            raise _json_rejected(f"line {i} is nested too deeply to be read", lines) from exc
        except ValueError as exc:
            bad.append((i, line[:200], f"is not a JSON object ({exc})"))
            continue
        if len(obj) > MAX_COLUMNS:
            raise _json_rejected(
                f"line {i} has {len(obj):,} fields; at most {MAX_COLUMNS:,} are read", lines
            )
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
    label = storage.name(path)
    low = path.lower()
    # hashing releases the GIL: the checksum is computed on another core while Arrow parses
    with ThreadPoolExecutor(1) as pool:
        digest = pool.submit(lambda: hashlib.sha256(data).hexdigest())
        try:
            if not _CONTENT.search(data):
                raise FileRejected("the file is empty")
            if low.endswith(".parquet"):
                df, bad = _read_parquet(data)
            elif low.endswith((".jsonl", ".ndjson", ".json")):
                df, bad = _read_jsonl(data)
            else:
                df, bad = _read_csv(data, label)
        except FileRejected as exc:
            info = InputFile(path, digest.result(), exc.rows, False, str(exc))
            return pd.DataFrame(), pd.DataFrame(), info
        sha = digest.result()
    for c in COLUMN_NAMES:
        if c not in df.columns:
            df[c] = pd.array([""] * len(df), dtype="string")
    df["source_file"] = path
    bad["source_file"] = path
    return df, bad, InputFile(path, sha, len(df) + len(bad), True, "")


# --------------------------------------------------------------------------- typing

_TIME = r"([01]?\d|2[0-3]):[0-5]\d"
MAX_AMOUNT = 10_000_000_000  # dollars: decimal(12, 2) holds less (schemas.SQL_MONEY)

Problems = list[tuple[pd.Series, str]]  # (rows with the problem, message text)


def _type_values(col: Column, s: pd.Series) -> tuple[dict[str, pd.Series], Problems]:
    """The contract's typing of one column's stripped strings: its typed column(s) and its
    problems (``{value}`` in a text stands for the offending value). Strictly value by value,
    so ``type_rows`` runs it once per distinct value of the column."""
    empty = s == ""
    typed: dict[str, pd.Series] = {}
    problems: Problems = []
    if col.required:
        problems.append((empty, "required value is missing"))
    if col.kind == "date":
        # pandas reads 'today' and 'now' as the wall clock's date, even with a format: a
        # date is written with digits, so the night's outputs never depend on when it ran
        digits = s.str.contains("[0-9]", regex=True).fillna(False).astype(bool)
        val = pd.to_datetime(s.where(digits, ""), format="%Y-%m-%d", errors="coerce")
        problems.append((~empty & val.isna(), "{value} is not a date (YYYY-MM-DD)"))
        typed[col.name] = val
    elif col.kind == "int":
        num = pd.to_numeric(s.where(~empty), errors="coerce")
        bad = ~empty & (num.isna() | (num.abs() == np.inf) | (num != num.round()))
        problems.append((bad, "{value} is not a whole number"))
        # beyond Int64 ('1e30'): the cast would wrap it round to a negative number
        big = ~bad & ~empty & (num.abs() >= 2**63)
        problems.append((big, "{value} is out of range"))
        if col.minimum is not None:
            low = ~bad & ~big & ~empty & (num < col.minimum)
            problems.append((low, f"{{value}} is below the minimum {col.minimum}"))
        typed[col.name] = num.where(~bad & ~big).round().astype("Int64")
    elif col.kind == "decimal":
        num = pd.to_numeric(s.where(~empty).str.replace(r"^\$", "", regex=True), errors="coerce")
        with np.errstate(over="ignore"):  # '1e308' in cents overflows: not an amount
            cents = num.round(2)
        bad = ~empty & (num.isna() | (cents.abs() == np.inf))  # 'inf', '1e308' (x 100)
        problems.append((bad, "{value} is not an amount"))
        problems.append((~bad & ~empty & (num < 0), "{value} is negative"))
        # the published layers hold amounts as decimal(12, 2): a larger one could not be kept
        problems.append((~bad & ~empty & (cents >= MAX_AMOUNT), "{value} is out of range"))
        typed[col.name] = cents.astype("float64")
    elif col.kind == "time":
        ok = s.str.fullmatch(_TIME).fillna(False).astype(bool)
        problems.append((~empty & ~ok, "{value} is not a time (HH:MM, 24 h)"))
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
        norm = s.str.lower() if col.name in LOWER_ENUMS else s.str.upper()
        problems.append(
            (~empty & ~norm.isin(col.allowed), "{value} is not one of " + "/".join(col.allowed))
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
            problems.append((~empty & ~ok, "{value} is not a ;-separated list of numbers"))
        typed[col.name] = parts.where(parts != "").astype("string")
    else:  # str
        if col.max_len:
            problems.append(
                (s.str.len() > col.max_len, f"{{value}} is longer than {col.max_len} characters")
            )
        if col.pattern:
            ok = s.str.fullmatch(col.pattern).fillna(False).astype(bool)
            problems.append((~empty & ~ok, "{value} has the wrong format"))
        norm = s.str.upper() if col.name in UPPER_TEXTS else s
        typed[col.name] = norm.where(~empty).astype("string")
    return typed, problems


Masks = list[tuple[np.ndarray, str]]  # (rows with the problem as a bool array, message text)


def _type_plain(col: Column, raw: pa.ChunkedArray) -> tuple[pa.Array, Masks]:
    """``_type_values`` for a str column without a pattern (names, ids, free text: often one
    value per row), in Arrow: the kernels pandas' string methods call, giving what becomes
    the same dtype. The result is one chunk (the quick CSV read gives many small ones, which
    make pandas' row lookups slower later)."""
    s = pc.utf8_trim_whitespace(raw.combine_chunks())
    empty = pc.equal(s, "")
    any_empty = pc.any(empty).as_py()
    problems: Masks = []
    if col.required and any_empty:
        problems.append((empty.to_numpy(zero_copy_only=False), "required value is missing"))
    # a text is never longer in characters than in bytes: count characters only if needed
    if col.max_len and (pc.max(pc.binary_length(s)).as_py() or 0) > col.max_len:
        too_long = pc.greater(pc.utf8_length(s), col.max_len).to_numpy(zero_copy_only=False)
        if too_long.any():
            problems.append((too_long, f"{{value}} is longer than {col.max_len} characters"))
    return (pc.if_else(empty, pa.scalar(None, s.type), s) if any_empty else s), problems


@dataclass
class _Distinct:
    """A column's distinct values (white space trimmed), and per row its value's position."""

    values: pa.Array
    rows: np.ndarray


def _arrow_part(col: Column, raw: pa.ChunkedArray) -> tuple[pa.Array, Masks] | _Distinct:
    """The Arrow part of typing a column (run on the thread pool, so nothing of pandas): a
    str column without a pattern is typed whole; any other is reduced to its distinct
    values."""
    if col.kind == "str" and not col.pattern:
        return _type_plain(col, raw)
    # the chunks share one dictionary: combining them only concatenates the indices
    encoded = pc.dictionary_encode(raw).combine_chunks()
    return _Distinct(
        pc.utf8_trim_whitespace(encoded.dictionary),
        encoded.indices.to_numpy(zero_copy_only=False),
    )


def _one_chunk(s: pd.Series) -> pd.Series:
    """A text column kept from the read, as one Arrow chunk (pandas' ``string``): the quick
    CSV read's small blocks of all columns share memory pages, and a column kept in them
    would keep the whole parsed file in memory."""
    arr = s.astype("string").array.__arrow_array__().combine_chunks()
    return pd.Series(pd.arrays.ArrowStringArray(arr), index=s.index)


def _where(rows: pd.DataFrame) -> pd.Series:
    """'file.csv row 12' for each of ``rows`` (only ever the few rows a finding names)."""
    return (
        rows["source_file"].map(storage.name).astype("string")
        + " row "
        + rows["source_row"].astype("string")
    )


def type_rows(df: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame, pd.Series]:
    """Type the string rows. Returns (typed frame, ROW_INVALID findings, bad-row mask).

    Each column's Arrow part runs on the thread pool while this thread runs ``_type_values``
    over the distinct values of the columns done so far (a night has few dates, amounts,
    codes...); the pool then spreads the typed values back to the rows (Arrow's and NumPy's
    take). A column's result is the whole column's: what pandas decides per column
    (to_numeric's integer or float result, Python's or RE2's regex engine for non-ASCII
    text) depends on which values occur, not on how often. Problems are row masks, kept
    only when some row has them; messages are built only for the rows that fail."""
    raw = [df[col.name].astype("string").fillna("").array.__arrow_array__() for col in COLUMNS]
    typed: dict[str, pd.Series | Future] = {}  # a Future: the typed values being spread
    problems: list[tuple[np.ndarray, str, str]] = []
    with ThreadPoolExecutor(_THREADS) as pool:
        for col, part in zip(COLUMNS, pool.map(_arrow_part, COLUMNS, raw), strict=True):
            if isinstance(part, _Distinct):
                values, found = _type_values(
                    col, pd.Series(pd.arrays.ArrowStringArray(part.values))
                )
                for name, v in values.items():
                    typed[name] = pool.submit(v.array.take, part.rows)
                masks = [(m.to_numpy(dtype=bool)[part.rows], t) for m, t in found if m.any()]
            else:
                value, masks = part
                typed[col.name] = pd.Series(pd.arrays.ArrowStringArray(value), index=df.index)
            problems += [(mask, col.name, text) for mask, text in masks]
        for name, v in typed.items():
            if isinstance(v, Future):
                typed[name] = pd.Series(v.result(), index=df.index)
    # keep unknown extra columns (raw layer), as strings
    for c in df.columns:
        if c not in typed and c not in ("source_file", "source_row"):
            typed[c] = _one_chunk(df[c])
    typed["source_file"] = df["source_file"].astype("string")
    typed["source_row"] = df["source_row"].astype("Int64")
    out = pd.DataFrame(typed, index=df.index, copy=False)  # the columns are new: no copy

    bad_mask = np.zeros(len(df), dtype=bool)
    frames = []
    lineage = out[["line_id", "encounter_id", "source_file", "source_row"]]
    for mask, col, text in problems:
        bad_mask |= mask
        at = np.flatnonzero(mask)
        if "{value}" in text:  # the offending value, quoted, built only for the failing rows
            head, tail = text.split("{value}", 1)
            value = df[col].iloc[at].astype("string").fillna("").str.strip()
            text = head + "'" + value.str.slice(0, 60) + "'" + tail
        msg = _where(df[["source_file", "source_row"]].iloc[at]) + f", column {col}: " + text
        frames.append(
            findings.make(
                "ROW_INVALID", lineage.iloc[at], msg, evidence=f"extract contract: column {col}"
            )
        )
    return out, findings.concat(frames), pd.Series(bad_mask, index=df.index)


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
    if info.rows == 0:  # a clinic that sent nothing is news: a finding on no line
        frames.append(_file_empty(info.path))
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
    typed["_line_id_raw"] = _one_chunk(df["line_id"])
    typed["_encounter_id_raw"] = _one_chunk(df["encounter_id"])
    found = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
    return FilePart(info, typed, _bad_records(bad), found.reset_index(drop=True))


def _file_empty(path: str) -> pd.DataFrame:
    """FILE_EMPTY for a file read whole that holds no rows: it bills nothing and holds
    nothing, so without this finding the exception report would not show that it came."""
    return findings.make(
        "FILE_EMPTY",
        pd.DataFrame({"source_file": [path]}),
        f"{storage.name(path)}: the file has its column names but no rows; "
        "nothing came from it tonight",
        evidence="extract contract (extract-format.md)",
    ).assign(_stage=0)


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
    bad_mask = typed["_bad"].astype(bool).to_numpy()
    line_raw, enc_raw = typed["_line_id_raw"], typed["_encounter_id_raw"]
    typed = typed.drop(columns=list(PART_COLUMNS))
    lineage = ["line_id", "encounter_id", "source_file", "source_row"]

    # duplicate line ids among rows that typed cleanly: first occurrence kept (and held)
    ok_at = np.flatnonzero(~bad_mask)
    # codes of all rows, then the clean rows' (rather than a copy of the clean rows' ids)
    codes = pd.factorize(typed["line_id"], use_na_sentinel=False)[0][ok_at]
    counts = np.bincount(codes)[codes]
    first = np.zeros(len(codes), dtype=bool)
    first[np.unique(codes, return_index=True)[1]] = True
    firsts = typed[lineage].iloc[ok_at[first & (counts > 1)]]
    later = typed[lineage].iloc[ok_at[~first]]
    dup_findings = [
        findings.make(
            "DUPLICATE_LINE",
            firsts,
            "line_id "
            + firsts["line_id"]
            + " appears "
            + pd.Series(counts[first & (counts > 1)], index=firsts.index).astype("string")
            + " times tonight; this first occurrence ("
            + _where(firsts)
            + ") is held, the others are quarantined",
        ),
        findings.make(
            "DUPLICATE_LINE",
            later,
            "line_id "
            + later["line_id"]
            + " was already seen tonight; this copy ("
            + _where(later)
            + ") is quarantined",
        ),
    ]
    quarantine_mask = bad_mask.copy()
    quarantine_mask[ok_at[~first]] = True
    # the same charge charted twice under different line_ids: the first kept, the copies
    # quarantined (not bad rows: the kept line's visit is complete, nothing is held)
    copies, kept = duplicate_charges(typed, ok_at[first])
    quarantine_mask[copies] = True
    dup_findings.append(_duplicate_charge_findings(typed[lineage], copies, kept))

    accepted = _take_rows(typed, np.flatnonzero(~quarantine_mask))
    quarantined = typed.loc[quarantine_mask, lineage]
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
    sib_rows = accepted.loc[accepted["encounter_id"].isin(q_enc), lineage]
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


# what makes two lines one charge: the same service by the same clinician at the same time
CHARGE_KEYS = (
    "patient_id",
    "clinic_id",
    "date_of_service",
    "cpt_code",
    "rendering_npi",
    "start_minute",
    "end_minute",
)
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)  # 2**64 / golden ratio: a multiplier that mixes bits


def _mix(h: np.ndarray, values: np.ndarray) -> np.ndarray:
    """``h`` combined with int64 ``values``: equal inputs give equal outputs; unequal ones
    collide rarely (a collision only costs the exact check a few more rows)."""
    with np.errstate(over="ignore"):
        h = (h ^ values.view(np.uint64)) * _GOLDEN
    return h ^ (h >> np.uint64(29))


def _numbers(column: pd.Series) -> np.ndarray:
    """A column of digits (an NPI) as int64 per row (-1: missing); equal texts, equal numbers
    (the NPIs of clean rows are exactly 10 digits). Parsing is one Arrow cast, cheaper than
    hashing the texts; a night with a value that is not digits (a row that failed typing)
    gets the texts' codes instead."""
    arr = column.array.__arrow_array__()
    try:
        return pc.fill_null(pc.cast(arr, pa.int64()), -1).to_numpy(zero_copy_only=False)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return pd.factorize(column)[0].astype("int64")


def _id_codes(column: pd.Series, at: np.ndarray) -> np.ndarray:
    """int64 codes of an id column at positions ``at``, equal for ids equal but for case and
    blanks ('P 001' and 'p001'): only the distinct ids are upper-cased and stripped."""
    codes, uniques = pd.factorize(column.array.take(at))
    if len(uniques) == 0:
        return codes.astype("int64")
    norm = pc.utf8_upper(pa.array(uniques, type=pa.large_string()))
    if pc.any(pc.match_substring_regex(norm, r"[\s\p{Z}]")).as_py():
        norm = pc.replace_substring_regex(norm, r"[\s\p{Z}]+", "")
    same = pc.dictionary_encode(norm).indices.to_numpy(zero_copy_only=False).astype("int64")
    return np.append(same, -1)[codes]  # -1: missing


def _repeated(h: np.ndarray) -> np.ndarray:
    """Positions of the hashes that occur more than once, and perhaps a few others: a sort
    finds the repeated values, a table of 2**20 buckets marks the rows that may hold one
    (cheaper than counting a million values in a hash table)."""
    s = np.sort(h)
    twice = s[1:][s[1:] == s[:-1]]
    if not len(twice):
        return np.zeros(0, dtype=np.intp)
    table = np.zeros(1 << 20, dtype=bool)
    table[(twice >> np.uint64(44)).astype(np.intp)] = True
    return np.flatnonzero(table[(h >> np.uint64(44)).astype(np.intp)])


def duplicate_charges(typed: pd.DataFrame, at: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Charges charted twice among the rows at positions ``at``: lines with the same
    ``CHARGE_KEYS`` (ids without case or blanks; a missing start or end time equals only a
    missing one). Returns the positions of the copies and, for each, the position of the
    line kept: the first of its group in file order (source_file, then source_row).

    Why by content: a practice-management system that charts a service twice gives the
    copy its own line_id, so DUPLICATE_LINE never sees it, and the payer would be billed
    twice for one service (billing-rules.md 9, rule 3: one line per code per date).

    A night has a million rows and almost no copies, so the check narrows down in three
    passes, none of which can lose a copy: a hash of the cheap keys (date, times, NPI, code)
    over every row; the same plus the patient and clinic ids over the rows whose hash may
    repeat; the exact keys over the few rows left."""
    none = np.zeros(0, dtype=np.intp)
    if len(at) < 2:
        return none, none
    cheap = [
        typed["date_of_service"].to_numpy().view("int64"),
        typed["start_minute"].to_numpy(dtype="int64", na_value=-1),
        typed["end_minute"].to_numpy(dtype="int64", na_value=-1),
        _numbers(typed["rendering_npi"]),
        pd.factorize(typed["cpt_code"])[0].astype("int64", copy=False),
    ]
    h = np.zeros(len(typed), dtype=np.uint64)
    for k in cheap:
        h = _mix(h, k)
    h = h[at]
    again = _repeated(h)
    ids = [_id_codes(typed[c], at[again]) for c in ("patient_id", "clinic_id")]
    left = _repeated(_mix(_mix(h[again], ids[0]), ids[1]))
    if not len(left):
        return none, none
    rows = at[again[left]]
    group = units.group_ids([k[rows] for k in cheap] + [i[left] for i in ids])
    dup = np.bincount(group)[group] > 1
    rows, group = rows[dup], group[dup]
    if not len(rows):
        return none, none
    files = pd.factorize(typed["source_file"].array.take(rows), sort=True)[0]
    line_no = typed["source_row"].array.take(rows).to_numpy(dtype="int64", na_value=-1)
    order = np.lexsort((line_no, files, group))
    rows, group, files, line_no = rows[order], group[order], files[order], line_no[order]
    head = np.r_[True, group[1:] != group[:-1]]  # the first of each group in file order
    kept = rows[np.flatnonzero(head)[np.cumsum(head) - 1]]
    copy = np.flatnonzero(~head)[np.lexsort((line_no[~head], files[~head]))]  # in file order
    return rows[copy], kept[copy]


def _duplicate_charge_findings(
    lineage: pd.DataFrame, copies: np.ndarray, kept: np.ndarray
) -> pd.DataFrame:
    """DUPLICATE_CHARGE on each quarantined copy, naming the line kept."""
    rows = lineage.iloc[copies]
    first = lineage.iloc[kept]
    msg = (
        "same patient, clinic, date, code, clinician and times as line_id "
        + pd.Series(first["line_id"].array, index=rows.index)
        + " ("
        + pd.Series(_where(first).array, index=rows.index)
        + "), which is kept; this copy ("
        + _where(rows)
        + ") is quarantined"
    )
    return findings.make(
        "DUPLICATE_CHARGE",
        rows,
        msg,
        evidence="one charge per service: billing-rules.md 9 rule 3 (one line per code per date)",
    )


def _take_rows(frame: pd.DataFrame, positions: np.ndarray) -> pd.DataFrame:
    """``frame.iloc[positions]``, a column per task on the thread pool: copying the accepted
    rows of every column is most of ``combine``'s work. An array's ``take`` is Arrow's or
    NumPy's (it releases the GIL, and touches nothing of pandas' process-wide state)."""
    arrays = [frame.iloc[:, i].array for i in range(frame.shape[1])]
    with ThreadPoolExecutor(_THREADS) as pool:
        taken = list(pool.map(lambda a: a.take(positions), arrays))
    out = pd.DataFrame(dict(enumerate(taken)), index=frame.index[positions], copy=False)
    return out.set_axis(frame.columns, axis=1)


def ingest(paths: list[str], ingested_at: str) -> Ingested:
    """A night's ingest in one process: ``read_typed`` each file, then ``combine``."""
    return combine([read_typed(p) for p in discover(paths)], ingested_at)
