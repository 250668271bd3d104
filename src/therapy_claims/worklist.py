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

Issue 17: a claim sent on an earlier night that the clearinghouse (999) or the payer (277CA,
835) rejected or denied is work too. ``payer_claims`` reads what the lifecycle layer
(``<out>/lifecycle/current.parquet``) says of each claim's latest send before D, and every key
with such a claim open (not sent again, not paid) is an ``open`` row of source ``payer``: open
since the payer's status date, blocked by ``CLEARINGHOUSE_REJECTED`` / ``PAYER_REJECTED`` /
``PAYER_DENIED`` and by the rule codes the payer's reasons map to (``payer_reasons``). A key
both held tonight (or carried held) and open with the payer is one row, source ``both``. A
carried payer row resolves ``resent`` (its claim key sent again), ``paid`` or
``payer_changed``. Without a lifecycle layer a night is built exactly as before it existed.

Rows resolved on an earlier night are not carried. The functions here are pure (frames in,
frames out) except the two readers at the end; publish writes the layer
(``worklist/run_date=D/run=R/``) and the manifest its ``counts``. Everything is column-wise:
a million-line night holds some ten thousand keys, over lines and findings ten to a hundred
times as many.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import date

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from therapy_claims import nights, schemas, storage
from therapy_claims.catalogue import CATALOGUE
from therapy_claims.config import RunError
from therapy_claims.ledger import PART_SUFFIX
from therapy_claims.payer_reasons import Mapping

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
LIST_COLUMNS = (
    "claim_ids",
    "blocking_codes",
    "fixes",
    "owners",
    "payer_reason_codes",
    "prevented_by",
)

# where a row comes from: lines held by our edits, a claim the payer answered, or both
SCRUBBER, PAYER, BOTH = "scrubber", "payer", "both"
RESENT, PAID, PAYER_CHANGED = "resent", "paid", "payer_changed"
# the lifecycle layer (``therapy_claims.lifecycle``, docs/outputs.md) and what is read of it
LIFECYCLE_FILE = ("lifecycle", "current.parquet")
LIFECYCLE_COLUMNS = [
    "claim_id",
    "claim_key",
    "run_date",
    "payer_id",
    "clinic_id",
    "encounter_id",
    "charge",
    "status",
    "status_on",
    "status_kind",
    "reason_codes",
]
# a claim's lifecycle status -> the code of its worklist row (partially paid: only with a
# reason one of our edits covers; the rest is contractual adjustment and patient share)
PAYER_CODES = {
    "rejected_by_clearinghouse": "CLEARINGHOUSE_REJECTED",
    "rejected_by_payer": "PAYER_REJECTED",
    "denied": "PAYER_DENIED",
    "partially_paid": "PAYER_DENIED",
}
PAID_STATUSES = ("paid", "partially_paid")
_MAX_REASON = 40  # characters kept of a payer's code: response files are hostile text
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")  # no line breaks or escapes into a report line

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
    *,
    claims: pd.DataFrame | None = None,
    sent_keys: Iterable[str] = (),
) -> pd.DataFrame:
    """Night ``run_date``'s worklist (``schemas.WORKLIST`` columns, in its row order: open
    first, then held dollars, age, key) from the night's scored lines (``LINE_COLUMNS``; all
    of them or ``relevant_lines``), its exceptions (``EXCEPTION_COLUMNS``) and ``previous``,
    the worklist of the latest committed night before it (None: there is none).

    ``claims``: what the payers answered (``payer_claims``; None: no lifecycle layer, so no
    payer row opens and none resolves by a payer's answer); ``sent_keys``: the claim keys the
    night sends (a payer row of one of them resolves ``resent``)."""
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
    tonight["source"] = SCRUBBER
    if claims is not None:  # a visit billed tonight is sent again, whatever its payer now
        billed = lines.loc[lines["status"].eq("billed").fillna(False), "worklist_key"]
        claims = claims.assign(open=claims["open"] & ~_isin(claims["worklist_key"], billed))
    payer = _payer_rows(claims, night)
    if len(payer):
        tonight = _with_payer_rows(tonight, payer, carried, lines, night)
    carried = carried[~_isin(carried["worklist_key"], tonight["worklist_key"])].copy()
    resolution = _resolutions(lines, exceptions, carried["worklist_key"])
    answered = _payer_resolutions(carried, claims, sent_keys)
    resolution = answered.where(answered.notna(), resolution)
    gone = resolution.notna().to_numpy(bool)
    carried["status"] = np.where(gone, RESOLVED, OPEN)
    carried["resolved_on"] = pd.Series(night, index=carried.index).where(gone)
    carried["resolution"] = resolution.to_numpy(dtype=object)
    rows = pd.concat([_empty(), _typed(tonight), _typed(carried)], ignore_index=True)
    rows["age_days"] = (night - rows["first_held"]).dt.days.astype("Int64")
    return _defaults(_typed(rows.take(_order(rows))).reset_index(drop=True))


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


# --------------------------------------------------------------------------- the payers' answers


def read_lifecycle(out: str) -> pa.Table | None:
    """The lifecycle layer's ``current`` table (``LIFECYCLE_COLUMNS``), or None when ``out``
    has none (no responses were ever read: the night is built as before issue 17)."""
    path = storage.join(out, *LIFECYCLE_FILE)
    if not storage.exists(path):
        return None
    table = storage.read_table(path)
    missing = [c for c in LIFECYCLE_COLUMNS if c not in table.column_names]
    if missing:
        raise RunError(f"{path}: not a lifecycle layer: no column(s) {', '.join(missing)}")
    return table.select(LIFECYCLE_COLUMNS)


def payer_claims(
    lifecycle: pa.Table | None,
    run_date: date,
    mapping: Mapping,
    *,
    previous: pd.DataFrame | None = None,
    sent_keys: Iterable[str] = (),
) -> pd.DataFrame | None:
    """What the payers last answered of each claim, as night ``run_date`` sees it: per claim
    key the rows of its latest send before that night (a claim sent in parts is one key),
    those whose status may open a worklist row (``PAYER_CODES``) and those of the claim keys
    of ``previous``'s open payer rows (whatever their status: it says how they resolved).
    None without a lifecycle layer.

    Per row: ``code`` (``PAYER_CODES``), ``prevented_by`` (our rule codes for its reasons),
    ``resent`` (its key is in ``sent_keys``, the night's own claims) and ``open`` (it makes a
    worklist row tonight: a code, not resent, and a partially paid claim only with a reason
    our edits cover)."""
    if lifecycle is None:
        return None
    t = lifecycle.select(LIFECYCLE_COLUMNS)
    text = {c: _string(t.column(c)) for c in LIFECYCLE_COLUMNS if c not in _NOT_TEXT}
    sent_on = pc.cast(t.column("run_date"), pa.date32())
    key = pc.coalesce(text["claim_key"], text["claim_id"])
    before = pc.fill_null(pc.less(sent_on, pa.scalar(run_date, pa.date32())), False)
    sends = pa.table({"k": key, "d": sent_on}).filter(before)
    latest = sends.group_by("k").aggregate([("d", "max")])
    keep = pc.fill_null(
        pc.is_in(_tagged(key, sent_on), value_set=_tagged(latest["k"], latest["d_max"])), False
    )
    wanted = pc.is_in(text["status"], value_set=pa.array(list(PAYER_CODES), pa.string()))
    wanted = pc.or_(pc.fill_null(wanted, False), _isin_array(key, _payer_claim_keys(previous)))
    at = pc.and_(pc.and_(before, keep), wanted)
    frame = pd.DataFrame(
        {
            **{c: pd.array(v.filter(at).to_pylist(), dtype="string") for c, v in text.items()},
            "claim_key": pd.array(key.filter(at).to_pylist(), dtype="string"),
            "run_date": pd.to_datetime(pd.Series(sent_on.filter(at).to_pylist(), dtype=object)),
            "charge": pc.cast(t.column("charge").filter(at), pa.float64()).to_numpy(),
            "status_on": pd.to_datetime(
                pd.Series(pc.cast(t.column("status_on"), pa.date32()).filter(at).to_pylist())
            ),
            "reason_codes": [
                _distinct(
                    _CONTROL.sub(" ", str(r))[:_MAX_REASON] for r in (v or ()) if r is not None
                )
                for v in t.column("reason_codes").filter(at).to_pylist()
            ],
        }
    )
    frame["worklist_key"] = _keys(frame)
    frame["code"] = frame["status"].map(PAYER_CODES).astype("string")
    frame["prevented_by"] = [
        prevented_by(mapping, k, r)
        for k, r in zip(frame["status_kind"], frame["reason_codes"], strict=True)
    ]
    frame["resent"] = _isin(frame["claim_key"], pd.Series(list(sent_keys), dtype="string"))
    covered = frame["prevented_by"].map(len).to_numpy() > 0
    partly = frame["status"].eq("partially_paid").fillna(False).to_numpy(bool)
    frame["open"] = frame["code"].notna().to_numpy(bool) & ~frame["resent"] & (~partly | covered)
    return frame.sort_values(["worklist_key", "claim_id"], kind="mergesort", ignore_index=True)


_NOT_TEXT = ("run_date", "charge", "status_on", "reason_codes")


def prevented_by(mapping: Mapping, kind, reasons: list[str]) -> list[str]:
    """Our rule codes for a response's reasons (``payer_reasons``): an 835's CAS
    group-reason codes as they are (``CO-97``); a 277CA's STC01 composite
    (``A7:562:85``) whole, as category-status (``A7-562``) and as its status code alone
    (``562``), so a mapping row can name any of the three; a 999's codes map to nothing."""
    if kind == "835":
        return mapping.rule_codes("835", list(reasons))
    if kind != "277CA":
        return []
    asked: list[str] = []
    for reason in reasons:
        parts = str(reason).split(":")
        asked.append(str(reason))
        if len(parts) >= 2 and parts[1]:
            asked += [f"{parts[0]}-{parts[1]}", parts[1]]
    return mapping.rule_codes("277CA", asked)


def payer_message(row: dict) -> str:
    """What the payer said of a row (source ``payer`` or ``both``) in one line: its payer
    code(s), claim ids, the status date (``first_held``), the payer's codes and the rule
    codes they map to. Ids, codes and dates only."""
    codes = [c for c in _as_list(row.get("blocking_codes")) if c in _PAYER_WORDS]
    since = pd.Timestamp(row["first_held"]).date().isoformat()
    said = " / ".join(f"{c} ({_PAYER_WORDS[c]})" for c in codes) or "answered by the payer"
    reasons = ", ".join(_as_list(row.get("payer_reason_codes"))) or "none given"
    ours = ", ".join(_as_list(row.get("prevented_by"))) or "none of ours"
    ids = ", ".join(_as_list(row.get("claim_ids")))
    return f"{said}: claim {ids} since {since}; the payer's codes {reasons}; prevented by {ours}"


_PAYER_WORDS = {
    "CLEARINGHOUSE_REJECTED": "999 rejected",
    "PAYER_REJECTED": "277CA rejected",
    "PAYER_DENIED": "835 denied",
}


def _payer_rows(claims: pd.DataFrame | None, night: pd.Timestamp) -> pd.DataFrame:
    """One open row per key with an open payer claim (``payer_claims``'s ``open``): who
    (the claim of the largest charge), its claims and their charges, open since the
    earliest status date, its codes (the payer codes and the rule codes the reasons map
    to, in rule order) and the payer's own codes."""
    if claims is None or not claims["open"].any():
        return _empty()
    rows = []
    for key, g in claims[claims["open"].to_numpy(bool)].groupby("worklist_key", sort=True):
        main = g.sort_values(["charge", "claim_id"], ascending=[False, True], kind="mergesort")
        main = main.iloc[0]
        ours = _distinct(c for v in g["prevented_by"] for c in v)
        codes = _ranked([*g["code"], *ours])
        since = g["status_on"].min()
        rows.append(
            {
                "worklist_key": key,
                "clinic_id": main["clinic_id"],
                "encounter_id": main["encounter_id"],
                "payer_id": main["payer_id"],
                "claim_ids": sorted(set(g["claim_id"].dropna())),
                "held_dollars": round(float(np.nansum(g["charge"].to_numpy(float))), 2),
                **_code_lists(codes),
                "first_held": night if pd.isna(since) else since,
                "last_held": night,
                "status": OPEN,
                "source": PAYER,
                "payer_reason_codes": _distinct(r for v in g["reason_codes"] for r in v),
                "prevented_by": ours,
            }
        )
    return pd.DataFrame(rows)


def _with_payer_rows(
    tonight: pd.DataFrame,
    payer: pd.DataFrame,
    carried: pd.DataFrame,
    lines: pd.DataFrame,
    night: pd.Timestamp,
) -> pd.DataFrame:
    """Tonight's held rows and payer rows as one row per key. A payer row keeps the first
    night of the key's open row before (if earlier). A key held tonight, or open and held
    before with no line tonight (carried as it was), that also has a payer row is one row of
    source ``both``: the held row's columns, the payer's claim ids and codes added."""
    before = carried.set_index("worklist_key")["first_held"]
    before = before.reindex(pd.Index(payer["worklist_key"])).to_numpy()
    since = pd.to_datetime(payer["first_held"])
    payer["first_held"] = since.where(~(pd.Series(before, index=payer.index) < since), before)
    held_before = carried[
        carried["source"].isin([SCRUBBER, BOTH]).fillna(True).to_numpy(bool)
        & ~_isin(carried["worklist_key"], lines["worklist_key"])
        & _isin(carried["worklist_key"], payer["worklist_key"])
    ]
    held = pd.concat([_typed(tonight), _typed(held_before)], ignore_index=True)
    payer = _typed(payer)
    shared = _isin(held["worklist_key"], payer["worklist_key"])
    theirs = payer.set_index("worklist_key")
    merged = []
    for row in held[shared].to_dict("records"):
        p = theirs.loc[row["worklist_key"]]
        codes = _ranked([*_as_list(row["blocking_codes"]), *_as_list(p["blocking_codes"])])
        merged.append(
            {
                **row,
                "claim_ids": sorted({*_as_list(row["claim_ids"]), *_as_list(p["claim_ids"])}),
                **_code_lists(codes),
                "first_held": min(row["first_held"], p["first_held"]),
                "last_held": night,
                "status": OPEN,
                "resolved_on": None,
                "resolution": None,
                "source": BOTH,
                "payer_reason_codes": _as_list(p["payer_reason_codes"]),
                "prevented_by": _as_list(p["prevented_by"]),
            }
        )
    rest = payer[~_isin(payer["worklist_key"], held["worklist_key"])]
    parts = [held[~shared & ~_isin(held["worklist_key"], held_before["worklist_key"])], rest]
    return pd.concat(
        [_typed(p) for p in parts] + ([_typed(pd.DataFrame(merged))] if merged else []),
        ignore_index=True,
    )


def _payer_resolutions(
    carried: pd.DataFrame, claims: pd.DataFrame | None, sent_keys: Iterable[str]
) -> pd.Series:
    """For each carried open row of source ``payer`` or ``both`` (its key has no payer claim
    open tonight): ``resent`` (a claim key of it is sent tonight, or was sent after it
    opened), ``paid`` (paid or partially paid), ``payer_changed`` (another status, e.g.
    accepted after a reversal) or missing (nothing known: it stays open)."""
    how = pd.Series(pd.array([None] * len(carried), dtype="string"), index=carried.index)
    mine = carried["source"].isin([PAYER, BOTH]).fillna(False).to_numpy(bool)
    if not mine.any():
        return how
    sent = set(sent_keys)
    latest: dict[str, list[tuple[pd.Timestamp, str]]] = {}
    if claims is not None:
        for k, d, st in zip(claims["claim_key"], claims["run_date"], claims["status"], strict=True):
            latest.setdefault(str(k), []).append((d, str(st)))
    for i, row in carried[mine].iterrows():
        keys = {_claim_key(c) for c in _as_list(row["claim_ids"])}
        found = [x for k in keys for x in latest.get(k, [])]
        if keys & sent or any(d > row["first_held"] for d, _ in found):
            how[i] = RESENT
        elif any(st in PAID_STATUSES for _, st in found):
            how[i] = PAID
        elif found:
            how[i] = PAYER_CHANGED
    return how


def _payer_claim_keys(previous: pd.DataFrame | None) -> pa.Array:
    """The claim keys of ``previous``'s open rows of source ``payer`` or ``both``."""
    rows = _open(previous)
    rows = rows[rows["source"].isin([PAYER, BOTH]).fillna(False).to_numpy(bool)]
    keys = {_claim_key(c) for v in rows["claim_ids"] for c in _as_list(v)}
    return pa.array(sorted(keys), type=pa.string())


def _claim_key(claim_id) -> str:
    """The claim a (possibly split) CLM01 belongs to (``ledger.claim_key``)."""
    return re.sub(PART_SUFFIX, "", str(claim_id))


def _isin_array(values: pa.Array, among: pa.Array) -> pa.Array:
    return pc.fill_null(pc.is_in(values, value_set=among), False)


def _tagged(keys, days) -> pa.Array:
    """``<key>|<date>`` of each (key, date) pair, to find rows by both in one ``is_in``."""
    return pc.binary_join_element_wise(_string(keys), _string(days), "|")


def _string(column) -> pa.Array:
    """An Arrow column (chunked or not, any text or date type) as one ``string`` array."""
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    return pc.cast(column, pa.string())


def _ranked(codes) -> list[str]:
    """``codes`` distinct, in rule order (an unknown code last)."""
    return sorted(_distinct(codes), key=lambda c: _RANK.get(c, len(_RANK)))


def _code_lists(codes: list[str]) -> dict:
    """``blocking_codes`` and, per code, its fix and owner; ``owner``: the first code's."""
    owners = [CATALOGUE[c].owner if c in CATALOGUE else None for c in codes]
    return {
        "blocking_codes": codes,
        "fixes": [CATALOGUE[c].suggested_fix if c in CATALOGUE else None for c in codes],
        "owners": owners,
        "owner": owners[0] if owners else None,
    }


def _distinct(values) -> list[str]:
    return list(dict.fromkeys(v for v in values if v is not None and v == v))


def _as_list(value) -> list:
    """A list cell as a Python list (missing: empty)."""
    if value is None or value is pd.NA or isinstance(value, float):
        return []
    return list(value)


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
    """A published worklist file in the internal types (``schemas.read``). A file from before
    issue 17 lacks ``source``, ``payer_reason_codes`` and ``prevented_by``: its rows are the
    scrubber's."""
    table = schemas.read(path, LAYER)
    for f in schemas.WORKLIST:
        if f.name not in table.column_names:
            table = table.append_column(f, pa.nulls(len(table), f.type))
    table = schemas.conform(table.select(schemas.WORKLIST.names), schemas.WORKLIST)
    return _defaults(_frame(table))


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


def _defaults(rows: pd.DataFrame) -> pd.DataFrame:
    """``rows`` with a missing ``source`` as ``scrubber`` and missing payer lists empty."""
    rows = rows.copy()
    rows["source"] = rows["source"].fillna(SCRUBBER)
    for name in ("payer_reason_codes", "prevented_by"):
        col = pa.array(rows[name].array, type=schemas.TEXT_LIST)
        col = pc.if_else(pc.is_null(col), pa.scalar([], type=schemas.TEXT_LIST), col)
        rows[name] = pd.arrays.ArrowExtensionArray(col)
    return rows


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
