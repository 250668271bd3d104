"""The morning worklist (the holding tank): one row per held claim, carried across nights.

The people who work the exceptions need a queue, not a list of findings: which claims are held,
for how many dollars, since when, what blocks each and who acts first. A row's key is the
clinic and the encounter (``<clinic_id>|<encounter_id>``), not the claim id: a claim id
includes the payer, and fixing the payer is one of the ways a held claim gets billed.

The worklist of night D is

- every key with a held line tonight: ``open`` (its first night held carried from the
  previous worklist when it was open there);
- every ``open`` row of the previous worklist (the latest committed night before D) whose key
  has no line tonight: still ``open``, as it was, a night older;
- every ``open`` row of the previous worklist whose key has lines tonight and none held:
  ``resolved`` on D, ``billed`` (a line of it billed), ``released`` (billed, with a release
  waiving a code on it: a ``RELEASED`` finding) or ``not_billed`` (no billable line left).

Rows resolved on an earlier night are not carried. The functions here are pure (frames in,
frames out) except the two readers at the end; publish writes the layer
(``worklist/run_date=D/run=R/``) and the manifest its ``counts``. Everything is column-wise:
a million-line night holds some ten thousand keys, over lines and findings ten to a hundred
times as many.
"""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from therapy_claims import nights, schemas, storage
from therapy_claims.catalogue import CATALOGUE

LAYER = "worklist"
FILE_NAME = "worklist.parquet"
CSV_NAME = "worklist.csv"
KEY_SEPARATOR = "|"
OPEN, RESOLVED = "open", "resolved"
BILLED, RELEASED, NOT_BILLED = "billed", "released", "not_billed"
RELEASE_CODE = "RELEASED"  # the finding a release leaves on each line it waived a code of

# what the worklist reads of the scored lines and of the exceptions
LINE_COLUMNS = [
    "clinic_id",
    "encounter_id",
    "patient_id",
    "payer_id",
    "claim_id",
    "date_of_service",
    "charge_amount",
    "status",
]
EXCEPTION_COLUMNS = ["clinic_id", "encounter_id", "code", "holds_claim"]
LIST_COLUMNS = ("claim_ids", "blocking_codes", "fixes", "owners")

# "rule order": the catalogue's (docs/rules.md lists the codes in it)
_RANK = {code: i for i, code in enumerate(CATALOGUE)}


# --------------------------------------------------------------------------- building


def relevant_lines(lines: pa.Table | pd.DataFrame, previous: pd.DataFrame | None) -> pa.Table:
    """The lines the worklist reads (``LINE_COLUMNS``): the held ones, and every line of an
    encounter that is open in ``previous`` (whether it is billed decides the row). Filtered in
    Arrow, so publish keeps this much of a million-line night and no more."""
    table = lines if isinstance(lines, pa.Table) else storage.to_table(lines[LINE_COLUMNS])
    table = table.select(LINE_COLUMNS)
    keep = pc.fill_null(pc.equal(table.column("status"), "held"), False)
    carried = _open(previous)
    if len(carried):
        encounters = pa.array(carried["encounter_id"].dropna().unique(), type=pa.string())
        enc = table.column("encounter_id").cast(pa.string())
        keep = pc.or_(keep, pc.fill_null(pc.is_in(enc, value_set=encounters), False))
    return table.filter(keep)


def build(
    lines: pa.Table | pd.DataFrame,
    exceptions: pd.DataFrame,
    previous: pd.DataFrame | None,
    run_date: date,
) -> pd.DataFrame:
    """Night ``run_date``'s worklist (``schemas.WORKLIST`` columns, in its row order: open
    first, then held dollars, age, key) from the night's scored lines (``LINE_COLUMNS``; all
    of them or ``relevant_lines``), its exceptions (``EXCEPTION_COLUMNS``) and ``previous``,
    the worklist of the latest committed night before it (None: there is none)."""
    night = pd.Timestamp(run_date)
    lines = _frame(relevant_lines(lines, previous))
    lines["worklist_key"] = _keys(lines)
    held = lines[lines["status"].eq("held").fillna(False).to_numpy(bool)]
    blocking = exceptions[exceptions["holds_claim"].fillna(False).to_numpy(bool)]
    tonight = _held_tonight(held, blocking)
    carried = _open(previous)
    # a key held again keeps the night it was first held (an open row only)
    first = carried.set_index("worklist_key")["first_held"]
    before = first.reindex(pd.Index(tonight["worklist_key"])).to_numpy()
    tonight["first_held"] = pd.Series(before, index=tonight.index).fillna(night)
    tonight["last_held"] = night
    tonight["status"] = OPEN
    carried = carried[~_isin(carried["worklist_key"], tonight["worklist_key"])].copy()
    resolution = _resolutions(lines, exceptions, carried["worklist_key"])
    gone = resolution.notna().to_numpy(bool)
    carried["status"] = np.where(gone, RESOLVED, OPEN)
    carried["resolved_on"] = pd.Series(night, index=carried.index).where(gone)
    carried["resolution"] = resolution.to_numpy(dtype=object)
    rows = pd.concat([_empty(), _typed(tonight), _typed(carried)], ignore_index=True)
    rows["age_days"] = (night - rows["first_held"]).dt.days.astype("Int64")
    return _typed(rows.take(_order(rows))).reset_index(drop=True)


def _held_tonight(held: pd.DataFrame, blocking: pd.DataFrame) -> pd.DataFrame:
    """One row per key with a held line: who and what (from the claim with the most held
    dollars), the held claims, dates, lines and dollars, and the codes holding it."""
    if held.empty:
        return _empty()
    held = held.assign(dollars=held["charge_amount"].astype(float).fillna(0.0))
    per_key = held.groupby("worklist_key", sort=True).agg(
        clinic_id=("clinic_id", "first"),
        encounter_id=("encounter_id", "first"),
        first_date_of_service=("date_of_service", "min"),
        last_date_of_service=("date_of_service", "max"),
        lines=("claim_id", "size"),
        held_dollars=("dollars", "sum"),
    )
    per_claim = (
        held.groupby(["worklist_key", "claim_id"], sort=True)
        .agg(
            payer_id=("payer_id", "first"),
            patient_id=("patient_id", "first"),
            dollars=("dollars", "sum"),
        )
        .reset_index()
    )
    main = per_claim.sort_values(
        ["worklist_key", "dollars", "claim_id"], ascending=[True, False, True], kind="mergesort"
    ).drop_duplicates("worklist_key")
    main = main.set_index("worklist_key").reindex(per_key.index)
    rows = per_key.reset_index()
    rows["held_dollars"] = rows["held_dollars"].round(2)
    rows["payer_id"] = main["payer_id"].to_numpy(dtype=object)
    rows["patient_id"] = main["patient_id"].to_numpy(dtype=object)
    n_claims = per_claim.groupby("worklist_key", sort=True).size().reindex(per_key.index)
    rows["claim_ids"] = _lists(n_claims.to_numpy(), per_claim["claim_id"])
    codes = _blocking_codes(blocking, per_key.index)
    n_codes = codes.groupby("worklist_key", sort=True).size().reindex(per_key.index, fill_value=0)
    counts = n_codes.to_numpy()
    fixes = _per_code(codes["code"], lambda c: CATALOGUE[c].suggested_fix)
    owners = _per_code(codes["code"], lambda c: CATALOGUE[c].owner)
    rows["blocking_codes"] = _lists(counts, codes["code"])
    rows["fixes"] = _lists(counts, fixes)
    rows["owners"] = _lists(counts, owners)
    # who acts first: the owner of each key's first code
    owner = np.full(len(counts), None, dtype=object)
    has = counts > 0
    owner[has] = owners.to_numpy(dtype=object)[(np.cumsum(counts) - counts)[has]]
    rows["owner"] = owner
    return rows


def _blocking_codes(blocking: pd.DataFrame, keys: pd.Index) -> pd.DataFrame:
    """The distinct ``(worklist_key, code)`` of the findings that hold a claim of ``keys``,
    sorted by key and then in rule order."""
    codes = pd.DataFrame(
        {"worklist_key": _keys(blocking), "code": blocking["code"].astype("string")}
    )
    codes = codes[_isin(codes["worklist_key"], keys) & codes["code"].notna().to_numpy(bool)]
    codes = codes.drop_duplicates()
    rank = _per_code(codes["code"], lambda c: _RANK[c], missing=len(_RANK))
    codes = codes.assign(rank=rank.to_numpy(dtype=np.int64))
    return codes.sort_values(["worklist_key", "rank", "code"], kind="mergesort")


def _resolutions(lines: pd.DataFrame, exceptions: pd.DataFrame, keys: pd.Series) -> pd.Series:
    """For each carried open key (none held tonight): how it resolved tonight (``billed``,
    ``released``, ``not_billed``), or missing while it has no line tonight."""
    present = _isin(keys, lines["worklist_key"])
    billed_keys = lines.loc[lines["status"].eq("billed").fillna(False), "worklist_key"]
    billed = _isin(keys, billed_keys)
    releases = exceptions[exceptions["code"].eq(RELEASE_CODE).fillna(False).to_numpy(bool)]
    released = _isin(keys, _keys(releases))
    how = np.select(
        [billed & released, billed, present], [RELEASED, BILLED, NOT_BILLED], default=None
    )
    return pd.Series(pd.array(how, dtype="string"), index=keys.index)


def _order(rows: pd.DataFrame) -> np.ndarray:
    """Open first, then the most held dollars, the oldest, and the key."""
    keys = [
        pd.factorize(rows["worklist_key"], sort=True)[0],
        -rows["age_days"].to_numpy(dtype=float, na_value=0.0),
        -rows["held_dollars"].to_numpy(dtype=float, na_value=0.0),
        rows["status"].ne(OPEN).to_numpy(dtype=bool),
    ]
    return np.lexsort(keys)


# --------------------------------------------------------------------------- reading out


def counts(worklist: pd.DataFrame, run_date: date) -> dict:
    """The manifest's ``worklist``: open rows, those opened (first held) and resolved
    tonight, the open rows' held dollars and the oldest open row's age."""
    night = pd.Timestamp(run_date)
    is_open = worklist["status"].eq(OPEN).fillna(False).to_numpy(bool)
    opened = is_open & worklist["first_held"].eq(night).fillna(False).to_numpy(bool)
    resolved = worklist["resolved_on"].eq(night).fillna(False).to_numpy(bool)
    ages = worklist["age_days"].to_numpy(dtype=float, na_value=0.0)[is_open]
    dollars = worklist["held_dollars"].to_numpy(dtype=float, na_value=0.0)[is_open]
    return {
        "open": int(is_open.sum()),
        "opened_tonight": int(opened.sum()),
        "resolved_tonight": int(resolved.sum()),
        "held_dollars_open": round(float(dollars.sum()), 2),
        "oldest_open_days": int(ages.max()) if len(ages) else 0,
    }


def summary_lines(worklist: pd.DataFrame, run_date: date, *, top: int = 5) -> list[str]:
    """The worklist in a few lines for the CLI and the demo: open claims and held dollars,
    opened and resolved tonight, the owners with the most held dollars, the oldest open
    claims. Ids, codes and dollars only (no names)."""
    c = counts(worklist, run_date)
    out = [
        f"Worklist {pd.Timestamp(run_date).date()}: {c['open']} open claim(s), "
        f"${c['held_dollars_open']:,.2f} held; {c['opened_tonight']} opened tonight, "
        f"{c['resolved_tonight']} resolved tonight"
    ]
    rows = worklist[worklist["status"].eq(OPEN).fillna(False).to_numpy(bool)]
    if rows.empty:
        return out
    owner = rows["owner"].astype("string").fillna("(none)")
    by_owner = (
        rows.assign(owner=owner)
        .groupby("owner", sort=True)
        .agg(dollars=("held_dollars", "sum"), claims=("worklist_key", "size"))
        .reset_index()
        .sort_values(["dollars", "owner"], ascending=[False, True], kind="mergesort")
        .head(top)
    )
    out.append("  Top owners by held dollars:")
    for r in by_owner.itertuples(index=False):
        out.append(f"    {r.owner:<18} {r.claims:>6} claim(s)  ${r.dollars:>12,.2f}")
    oldest = rows.sort_values(
        ["age_days", "held_dollars", "worklist_key"],
        ascending=[False, False, True],
        kind="mergesort",
    ).head(top)
    out.append(f"  Oldest open ({len(oldest)}):")
    for r in oldest.itertuples(index=False):
        codes = ", ".join(_cell(c) for c in list(r.blocking_codes or [])[:3])
        out.append(
            f"    {r.worklist_key:<24} {r.age_days:>4} day(s)  ${r.held_dollars:>10,.2f}  "
            f"{_cell(r.payer_id):<8} {codes} ({_cell(r.owner) or 'no owner'})"
        )
    return out


def _cell(value) -> str:
    """A cell as text (missing: empty)."""
    return "" if value is None or value is pd.NA or value != value else str(value)


def to_table(worklist: pd.DataFrame) -> pa.Table:
    """The worklist as the layer's Parquet table (``schemas.WORKLIST``)."""
    return schemas.conform(storage.to_table(worklist[schemas.WORKLIST.names]), schemas.WORKLIST)


def csv_frame(worklist: pd.DataFrame) -> pd.DataFrame:
    """The worklist as ``worklist.csv`` shows it: lists joined with ``"; "``."""
    table = to_table(worklist)
    for name in LIST_COLUMNS:
        i = table.schema.get_field_index(name)
        table = table.set_column(i, name, pc.binary_join(table.column(name), "; "))
    return storage.to_frame(table)


# --------------------------------------------------------------------------- reading


def read(path: str) -> pd.DataFrame:
    """A published worklist file in the internal types (``schemas.read``)."""
    table = schemas.read(path, LAYER)
    return _frame(schemas.conform(table.select(schemas.WORKLIST.names), schemas.WORKLIST))


def previous(out: str, run_date: date) -> pd.DataFrame | None:
    """The worklist of the latest committed night before ``run_date`` (None: no such night,
    or it was published before the worklist existed)."""
    found = nights.latest_before(out, run_date.isoformat())
    if found is None:
        return None
    rd, manifest = found
    path = storage.join(nights.layer(manifest, "worklist", rd, out), FILE_NAME)
    return read(path) if storage.exists(path) else None


# --------------------------------------------------------------------------- helpers


def _keys(rows: pd.DataFrame) -> pd.Series:
    """``<clinic_id>|<encounter_id>`` of each row (a missing part as empty text)."""
    clinic = rows["clinic_id"].astype("string").fillna("")
    encounter = rows["encounter_id"].astype("string").fillna("")
    return (clinic + KEY_SEPARATOR + encounter).astype("string")


def _open(previous: pd.DataFrame | None) -> pd.DataFrame:
    """The open rows of the previous worklist (none: an empty worklist)."""
    if previous is None or previous.empty:
        return _empty()
    return _typed(previous[previous["status"].eq(OPEN).fillna(False).to_numpy(bool)]).copy()


def _isin(values: pd.Series, among) -> np.ndarray:
    """Whether each of ``values`` (text) is one of ``among``, in Arrow (pandas' ``isin`` on
    Arrow text walks ``among`` in Python)."""
    found = pc.is_in(_text(values), value_set=pc.unique(_text(among)))
    return pc.fill_null(found, False).to_numpy(zero_copy_only=False)


def _text(values) -> pa.Array:
    """A text column (Series or Index) as one Arrow ``string`` array."""
    arr = pa.array(values.array if hasattr(values, "array") else values, type=pa.string())
    return arr.combine_chunks() if isinstance(arr, pa.ChunkedArray) else arr


def _per_code(codes: pd.Series, value, missing=None) -> pd.Series:
    """``value(code)`` for each code, worked once per distinct code (``missing`` for a code
    the catalogue does not have)."""
    at, distinct = pd.factorize(codes)
    table = [value(c) if c in CATALOGUE else missing for c in distinct]
    return pd.Series(np.array([*table, missing], dtype=object)[at], index=codes.index)


def _lists(lengths: np.ndarray, values: pd.Series) -> pd.arrays.ArrowExtensionArray:
    """A list-of-text column: row i holds the next ``lengths[i]`` of ``values``."""
    offsets = np.zeros(len(lengths) + 1, dtype=np.int32)
    np.cumsum(lengths, out=offsets[1:])
    flat = _text(values)
    return pd.arrays.ArrowExtensionArray(pa.ListArray.from_arrays(pa.array(offsets), flat))


_MAPPING = {
    pa.string(): pd.StringDtype(),
    pa.large_string(): pd.StringDtype(),
    pa.int64(): pd.Int64Dtype(),
    schemas.TEXT_LIST: pd.ArrowDtype(schemas.TEXT_LIST),
}


def _frame(table: pa.Table) -> pd.DataFrame:
    """An Arrow table as a frame: text as ``string``, counts as ``Int64``, lists as Arrow
    lists (so that tonight's rows and the previous night's concatenate as they are)."""
    return table.to_pandas(types_mapper=_MAPPING.get, ignore_metadata=True)


def _empty() -> pd.DataFrame:
    return _frame(schemas.WORKLIST.empty_table())


def _typed(rows: pd.DataFrame) -> pd.DataFrame:
    """``rows`` with exactly the worklist's columns, in its types (missing ones null)."""
    columns = [
        pa.array(rows[f.name], type=f.type, from_pandas=True)
        if f.name in rows.columns
        else pa.nulls(len(rows), f.type)
        for f in schemas.WORKLIST
    ]
    return _frame(pa.Table.from_arrays(columns, schema=schemas.WORKLIST))
