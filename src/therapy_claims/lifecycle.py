"""Where each claim we sent stands: its lifecycle status from the 999, 277CA and 835 answers.

The ``lifecycle`` layer is recomputed whole, every time, from two records that are never
changed once written: the claims the published nights sent (the ledger layers, one row per
CLM01 per night) and every committed ``acks`` run (the ``responses`` layer). Nothing is
updated in place, so refreshing is idempotent and safe at any time: the same records give
the same three tables, and a refresh that crashes leaves the previous ones. They are written
to a hidden folder beside ``<out>/lifecycle/`` and swapped in whole (``storage.replace_tree``).

* ``current.parquet``: one row per claim sent, in exactly one of :data:`STATUSES` (the
  statuses balance: their counts add up to the ledger's rows).
* ``history.parquet``: one row per step per claim (step 1: sent).
* ``findings.parquet``: what in the responses could not be applied as it is
  (:data:`FINDING_CODES`); never an exception.

How a response reaches a claim:

* **999**: by the set we sent. Our GS06 counts per submitter, so a set is (our 837's ISA06 =
  the 999's ISA08, GS06 = AK102, ST02 = AK202); a group rejected whole (no AK2) answers every
  set of the group. The submitter of a sent claim is read off its claim file's name
  (``<receiver>_<837P|837I>_<submitter>_<ISA13>.x12``, checked against the ledger row's
  receiver, claim type and ISA13), else off the file's ISA06 (:func:`sent_claims`).
* **277CA** and **835**: by the CLM01 (2200D TRN02, CLP01). A CLM01 two ledger rows carry
  is applied to the latest sending (``RESPONSE_CLAIM_SENT_TWICE``).

Precedence: a step of a later kind wins (837 < 999 < 277CA < 835); within a kind the response
received later wins (``received_on``, acks run id, the file's position in its run, the row's
position in its file). 835s add up: ``paid`` is the net of every CLP04 of the claim
(a reversal, CLP02 22, subtracts what it reverses); the status follows the latest payment
still standing (CLP02 4 or a net of 0: denied; the charge paid in full: paid; less: partially
paid), and a reversal that leaves no payment standing puts the claim back to
accepted_by_payer.

Money is exact cents (integers inside, ``decimal(12, 2)`` out). The tables carry ids, codes,
amounts, dates and file names, never a name or member id; ids read from a response file are
put in a message only when they look like ids.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from therapy_claims import acks, responses, schemas, storage
from therapy_claims import ledger as ledger_layer
from therapy_claims.catalogue import CATALOGUE
from therapy_claims.x12 import reader

LAYER = "lifecycle"
INCOMING = ".lifecycle.incoming"  # hidden: beside the layer, swapped in whole
TABLE_KEY = b"therapy_claims.table"

STATUSES = (
    "sent",
    "accepted_by_clearinghouse",
    "rejected_by_clearinghouse",
    "accepted_by_payer",
    "rejected_by_payer",
    "paid",
    "partially_paid",
    "denied",
)
KINDS = ("837", "999", "277CA", "835")  # precedence: a later kind's step wins
_RANK = {k: i for i, k in enumerate(KINDS)}
UNKNOWN_CLAIM = "RESPONSE_UNKNOWN_CLAIM"
DUPLICATE = "RESPONSE_DUPLICATE"
SENT_TWICE = "RESPONSE_CLAIM_SENT_TWICE"
FINDING_CODES = (UNKNOWN_CLAIM, DUPLICATE, SENT_TWICE)

MONEY = pa.decimal128(12, 2)
TEXT = pa.string()
TEXT_LIST = pa.list_(pa.string())
DATE = pa.date32()

CURRENT = pa.schema(
    [
        ("claim_id", TEXT),
        ("claim_key", TEXT),
        ("run_date", DATE),
        ("payer_id", TEXT),
        ("clinic_id", TEXT),
        ("encounter_id", TEXT),
        ("claim_type", TEXT),
        ("file", TEXT),
        ("charge", MONEY),
        ("status", TEXT),
        ("status_on", DATE),
        ("status_kind", TEXT),
        ("status_file", TEXT),
        ("reason_codes", TEXT_LIST),
        ("remark_codes", TEXT_LIST),
        ("payer_claim_control_number", TEXT),
        ("paid", MONEY),
        ("patient_responsibility", MONEY),
        ("paid_on", DATE),
        ("days_to_payment", pa.int32()),
        ("first_pass_accepted", pa.bool_()),
        ("steps", pa.int32()),
    ]
)
HISTORY = pa.schema(
    [
        ("claim_id", TEXT),
        ("step", pa.int32()),
        ("status", TEXT),
        ("status_on", DATE),
        ("kind", TEXT),
        ("source_file", TEXT),
        ("received_on", DATE),
        ("acks_run_id", TEXT),
        ("reason_codes", TEXT_LIST),
        ("payer_claim_control_number", TEXT),
        ("paid", MONEY),
    ]
)
FINDINGS = pa.schema(
    [
        ("code", TEXT),
        ("severity", TEXT),
        ("claim_id", TEXT),
        ("kind", TEXT),
        ("source_file", TEXT),
        ("message", TEXT),
    ]
)
SCHEMAS: dict[str, pa.Schema] = {"current": CURRENT, "history": HISTORY, "findings": FINDINGS}

# the claims sent, as :func:`statuses` takes them (``sent_claims`` reads them from the ledger)
SENT = pa.schema(
    [
        ("claim_id", TEXT),
        ("claim_key", TEXT),
        ("run_date", DATE),
        ("payer_id", TEXT),
        ("clinic_id", TEXT),
        ("encounter_id", TEXT),
        ("claim_type", TEXT),
        ("file", TEXT),  # the claim file's path, as the ledger names it
        ("charge", MONEY),
        ("submitter_id", TEXT),  # the claim file's ISA06 (null when it cannot be known)
        ("group_control_number", TEXT),  # GS06
        ("transaction_set_control_number", TEXT),  # ST02
    ]
)
# what :func:`received` adds to each response table: where the row stands in receiving order
ORDER = [
    ("received_on", DATE),
    ("acks_run_id", TEXT),
    ("file_position", pa.int32()),  # the file's position in its acks run (files.parquet)
    ("row_position", pa.int64()),  # the row's position in its run's table
]

_SAFE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,49}")
_UNSAFE_NAME = re.compile(r"[^A-Za-z0-9._ -]")
_NAME_CAP = 120
# <receiver>_<claim type>_<submitter>_<ISA13>.x12 (``publish.claim_file_name``)
_CLAIM_FILE = re.compile(
    r"(?P<receiver>[A-Z0-9]{2,15})_(?P<claim_type>[A-Z0-9]{3,4})_(?P<submitter>[A-Z0-9]{2,15})"
    r"_(?P<icn>\d{9})\.x12"
)
_PROCESSED_DENIED = "4"
_REVERSAL = "22"


@dataclass(frozen=True)
class Lifecycle:
    """The three tables of the layer (``SCHEMAS``)."""

    current: pa.Table
    history: pa.Table
    findings: pa.Table

    def counts(self) -> dict[str, int]:
        """Claims per status (every status, 0 when none): they add up to the claims sent."""
        found = self.current.column("status").to_pylist()
        return {s: found.count(s) for s in STATUSES}


# --------------------------------------------------------------------------- reading


def sent_claims(out: str, ledger: str | None = None) -> pa.Table:
    """Every claim the published nights of ``out`` sent (``ledger.read``), as ``SENT``.

    The ledger layer has no submitter column, and the 999 needs it (our GS06 counts per
    submitter). The claim file's name carries it (``publish.claim_file_name``); it is taken
    from there when the name is exactly what the ledger row's receiver, claim type and ISA13
    give, which costs no read. A file named otherwise (nights published before names carried
    the submitter) is read once for its ISA06; a file that is gone leaves it null (that
    file's 999s then match no claim and say so)."""
    rows = ledger_layer.read(out, ledger=ledger)
    if rows.empty:
        return SENT.empty_table()
    files = rows["file"].astype("string")
    submitter = pd.Series(pd.NA, index=rows.index, dtype="string")
    for (path, receiver, claim_type, icn), at in rows.groupby(
        [files, rows["receiver_id"], rows["claim_type"], rows["interchange_control_number"]],
        dropna=False,
        sort=False,
    ).groups.items():
        submitter[at] = _submitter_of(path, receiver, claim_type, icn)
    charge = _cents_of_dollars(rows["charge"])
    return pa.table(
        {
            "claim_id": _text(rows["claim_id"]),
            "claim_key": _text(rows["claim_key"]),
            "run_date": pa.array(pd.to_datetime(rows["run_date"]).dt.date, DATE),
            "payer_id": _text(rows["payer_id"]),
            "clinic_id": _text(rows["clinic_id"]),
            "encounter_id": _text(rows["encounter_id"]),
            "claim_type": _text(rows["claim_type"]),
            "file": _text(files),
            "charge": _money(charge),
            "submitter_id": _text(submitter),
            "group_control_number": _text(rows["group_control_number"]),
            "transaction_set_control_number": _text(rows["transaction_set_control_number"]),
        },
        schema=SENT,
    )


def _submitter_of(path, receiver, claim_type, icn) -> str | None:
    if pd.isna(path):
        return None
    m = _CLAIM_FILE.fullmatch(storage.name(str(path)))
    if m and (m["receiver"], m["claim_type"], m["icn"]) == (receiver, claim_type, icn):
        return m["submitter"]
    try:
        data = storage.read_bytes(str(path))
    except storage.StorageNotFound:
        return None
    try:
        isa = next(reader.tokenize(data[:4096]))
    except (ValueError, StopIteration, UnicodeError):
        return None
    value = reader.element(isa, 6).strip()
    return value if isa[0] == "ISA" and _SAFE_ID.fullmatch(value) else None


def received(out: str) -> dict[str, pa.Table]:
    """Every committed acks run's rows (``acks.committed_runs``), per response table, each
    with the ``ORDER`` columns. A table written before a column existed (the 999's
    ``sender_id``/``receiver_id``) gets it null."""
    parts: dict[str, list[pa.Table]] = {name: [] for name in responses.SCHEMAS}
    for day, run_id, folder in acks.committed_runs(out):
        paths = storage.read_table(storage.join(folder, f"{acks.FILES}.parquet"), ["path"])
        position = {p: i for i, p in enumerate(paths.column("path").to_pylist())}
        for name, schema in responses.SCHEMAS.items():
            table = storage.read_table(storage.join(folder, f"{name}.parquet"))
            parts[name].append(_stamped(_conformed(table, schema), day, run_id, position))
    return {
        name: pa.concat_tables(tables) if tables else _empty_received(name)
        for name, tables in parts.items()
    }


def received_tables(
    runs: Iterable[tuple[date, str, Sequence[responses.Responses]]],
) -> dict[str, pa.Table]:
    """What :func:`received` gives, for files read in memory (``responses.read``): per acks
    run its ``received_on``, id and files in the order the run took them."""
    parts: dict[str, list[pa.Table]] = {name: [] for name in responses.SCHEMAS}
    for day, run_id, files in runs:
        position = {f.source_file: i for i, f in enumerate(files)}
        for name in responses.SCHEMAS:
            tables = [getattr(f, name) for f in files]
            table = pa.concat_tables(tables) if tables else responses.SCHEMAS[name].empty_table()
            parts[name].append(_stamped(table, day, run_id, position))
    return {
        name: pa.concat_tables(tables) if tables else _empty_received(name)
        for name, tables in parts.items()
    }


def _conformed(table: pa.Table, schema: pa.Schema) -> pa.Table:
    columns = [
        table.column(f.name).cast(f.type)
        if f.name in table.column_names
        else pa.nulls(table.num_rows, f.type)
        for f in schema
    ]
    return pa.Table.from_arrays(columns, schema=schema)


def _stamped(table: pa.Table, day: date, run_id: str, position: dict[str, int]) -> pa.Table:
    n = table.num_rows
    files = table.column("source_file").to_pylist()
    table = table.replace_schema_metadata(None)
    for (name, kind), values in zip(
        ORDER,
        (
            pa.repeat(pa.scalar(day, DATE), n),
            pa.repeat(pa.scalar(run_id, TEXT), n),
            pa.array([position.get(f, len(position)) for f in files], pa.int32()),
            pa.array(np.arange(n, dtype=np.int64)),
        ),
        strict=True,
    ):
        table = table.append_column(pa.field(name, kind), values)
    return table


def _empty_received(name: str) -> pa.Table:
    schema = responses.SCHEMAS[name]
    return pa.schema([*schema, *(pa.field(n, t) for n, t in ORDER)]).empty_table()


# --------------------------------------------------------------------------- computing


class _Codes:
    """The code lists of every step (``reason_codes``, ``remark_codes``), kept as Arrow list
    arrays per kind and taken once at the end: a step carries an index into them (``rix``,
    ``mix``; 0 is the empty list every other step points to)."""

    def __init__(self) -> None:
        self.reasons: list[pa.Array] = [pa.array([[]], TEXT_LIST)]
        self.remarks: list[pa.Array] = [pa.array([[]], TEXT_LIST)]

    def add(self, reasons: pa.Array, remarks: pa.Array | None = None) -> tuple[int, int]:
        """Where ``reasons`` (and ``remarks``) start in the concatenated arrays."""
        base_r = sum(len(a) for a in self.reasons)
        base_m = sum(len(a) for a in self.remarks) if remarks is not None else -1
        self.reasons.append(reasons.cast(TEXT_LIST))
        if remarks is not None:
            self.remarks.append(remarks.cast(TEXT_LIST))
        return base_r, base_m

    def take(self, rix: np.ndarray, mix: np.ndarray) -> tuple[pa.Array, pa.Array]:
        reasons = pa.concat_arrays(self.reasons).take(pa.array(rix, pa.int64()))
        remarks = pa.concat_arrays(self.remarks).take(pa.array(mix, pa.int64()))
        return reasons, remarks


def statuses(sent: pa.Table, received: Mapping[str, pa.Table]) -> Lifecycle:
    """The layer's tables from the claims sent (``SENT``) and the responses received
    (per ``responses.SCHEMAS`` table, with the ``ORDER`` columns: :func:`received`).

    Pure: reads nothing, writes nothing. Work is per column (pandas, Arrow); only the 835
    rows of claims with a reversal are walked one by one (a reversal must find the payment
    it cancels), and the 999's sets (a few per file) are read one by one."""
    s = _sent_frame(sent)
    tables = {name: received.get(name, _empty_received(name)) for name in responses.SCHEMAS}
    seq = _sequence(tables)
    findings: list[pd.DataFrame] = []
    codes = _Codes()
    steps = [
        _acknowledged(s, tables["acknowledgments"], seq["999"], findings, codes),
        _claim_statuses(s, tables["claim_statuses"], seq["277CA"], findings, codes),
        _payments(s, tables["payments"], tables["payment_lines"], seq["835"], findings, codes),
    ]
    h = _history(s, steps)
    reasons, remarks = codes.take(h["rix"].to_numpy(), h["mix"].to_numpy())
    lc = Lifecycle(
        current=_current(s, h, reasons, remarks),
        history=_history_table(s, h, reasons),
        findings=_findings_table(findings),
    )
    if lc.current.num_rows != sent.num_rows or sum(lc.counts().values()) != sent.num_rows:
        raise RuntimeError("lifecycle: the statuses do not balance with the claims sent")
    return lc


def _sent_frame(sent: pa.Table) -> pd.DataFrame:
    s = storage.to_frame(sent.select(SENT.names))
    s["charge_cents"] = _cents(sent.column("charge"))
    s["file_name"] = _names(s["file"])
    s["i"] = np.arange(len(s), dtype=np.int64)
    # per CLM01: how many rows carry it, and the latest sending (run date, then file, then
    # the row's position)
    order = s.sort_values(
        ["claim_id", "run_date", "file", "i"], kind="mergesort", na_position="first"
    )
    s["times_sent"] = s.groupby("claim_id", dropna=False)["i"].transform("size").astype(int)
    s["is_latest"] = False
    s.loc[order.drop_duplicates("claim_id", keep="last")["i"].to_numpy(), "is_latest"] = True
    s["group_key"] = _group_number(s["group_control_number"])
    return s


def _sequence(tables: Mapping[str, pa.Table]) -> dict[str, np.ndarray]:
    """Per kind, each row's position in receiving order over all kinds (``ORDER``; within
    one acks run, kind by kind)."""
    frames = []
    for kind, name in (
        ("999", "acknowledgments"),
        ("277CA", "claim_statuses"),
        ("835", "payments"),
    ):
        f = storage.to_frame(tables[name], [n for n, _ in ORDER])
        f["kind"] = kind
        f["row"] = np.arange(len(f))
        frames.append(f)
    every = pd.concat(frames, ignore_index=True)
    # within one acks run the kinds in the order they happen (999, 277CA, 835), whatever order
    # the files were listed in: a run that takes all three for a claim lists its steps so
    every["rank"] = every["kind"].map(_RANK)
    every = every.sort_values(
        ["received_on", "acks_run_id", "rank", "file_position", "row_position"], kind="mergesort"
    )
    every["seq"] = np.arange(len(every), dtype=np.int64)
    return {
        kind: every[every["kind"] == kind].sort_values("row")["seq"].to_numpy()
        for kind in ("999", "277CA", "835")
    }


def _responses_frame(
    table: pa.Table, columns: list[str], seq: np.ndarray, *, money: Sequence[str] = ()
) -> pd.DataFrame:
    """The rows of one response table as a frame in receiving order: ``columns``, ``money``
    (as integer cents, ``<name>_cents``), the ``ORDER`` columns, ``row`` (the row in
    ``table``), ``seq`` (:func:`_sequence`) and the source file (``file_key``: its identity,
    day, run and path; ``file_name``)."""
    fixed = ["source_file", "response_date", *(n for n, _ in ORDER)]
    f = storage.to_frame(table, list(dict.fromkeys([*columns, *fixed])))
    for name in money:
        f[f"{name}_cents"] = _cents(table.column(name))
    f["row"] = np.arange(len(f), dtype=np.int64)
    f["seq"] = seq
    f["file_key"] = (
        f["received_on"].astype(str)
        + "\x1f"
        + f["acks_run_id"].astype(str)
        + "\x1f"
        + f["source_file"].astype(str)
    )
    f["file_name"] = _names(f["source_file"])
    return f.sort_values("seq", kind="mergesort").reset_index(drop=True)


def _without_duplicates(
    f: pd.DataFrame, content: list[str], kind: str, findings: list[pd.DataFrame], what
) -> pd.DataFrame:
    """``f`` without the rows an earlier file already said (same ``content``, another file):
    each such row is a ``RESPONSE_DUPLICATE`` finding, its step counted once. Rows repeated
    within one file are kept (an 835 may pay a claim twice, or reverse and pay it again)."""
    if f.empty:
        return f
    first = f.groupby(content, dropna=False, sort=False)
    dup = f["file_key"].ne(first["file_key"].transform("first"))
    if dup.any():
        d = f[dup]
        earlier = first["file_name"].transform("first")[dup].map(_message_name)
        day = first["received_on"].transform("first")[dup].astype(str)
        run = first["acks_run_id"].transform("first")[dup].map(_safe)
        message = (
            kind
            + " "
            + d["file_name"].map(_message_name)
            + ": "
            + what(d)
            + " already came in "
            + earlier
            + " (received on "
            + day
            + ", acks run "
            + run
            + "): counted once"
        )
        claim = d["claim_id"].map(_safe_or_none) if "claim_id" in d else None
        findings.append(_finding(DUPLICATE, kind, d, message, claim))
    return f[~dup]


def _acknowledged(
    s: pd.DataFrame,
    table: pa.Table,
    seq: np.ndarray,
    findings: list[pd.DataFrame],
    codes: _Codes,
) -> pd.DataFrame:
    """The 999's steps: each set's verdict on every claim of the set (a group's verdict on
    every claim of the group when it has no AK2)."""
    cols = [
        "receiver_id",
        "sent_group_control_number",
        "sent_set_control_number",
        "set_status",
        "accepted",
        "error_segments",
        "error_elements",
    ]
    a = _responses_frame(table, cols, seq)
    if a.empty:
        return _no_steps()
    a["whole_group"] = a["sent_set_control_number"].isna()
    # a set or a group: a few per file, so its codes are put together one row at a time
    error_codes = table.column("set_error_codes").to_pylist()
    reasons = pa.array(
        [
            _reasons_999(error_codes[r], segs, elems, whole)
            for r, segs, elems, whole in zip(
                a["row"], a["error_segments"], a["error_elements"], a["whole_group"], strict=True
            )
        ],
        TEXT_LIST,
    )
    a["reasons_key"] = pc.binary_join(reasons, "|").to_numpy(zero_copy_only=False)
    a["rix"] = codes.add(reasons)[0] + np.arange(len(a))
    a["group_key"] = _group_number(a["sent_group_control_number"])
    # a row without its receiver (an acks run from before the column) is no copy of another
    # file's: who it was for is not known
    a["party"] = a["receiver_id"].astype(object).where(a["receiver_id"].notna(), a["file_key"])
    a = _without_duplicates(
        a,
        ["party", "group_key", "sent_set_control_number", "set_status", "reasons_key"],
        "999",
        findings,
        _what_999,
    )
    hit = _match_999(s, a.assign(a=np.arange(len(a))))
    missing = hit[hit["i"].isna()].drop_duplicates("a")
    if not missing.empty:
        why = np.where(
            missing["ambiguous"],
            " (no receiver_id: read before the 999's parties were kept) matches the claims "
            "of several claim files",
            " matches no claim sent",
        )
        message = "999 " + missing["file_name"].map(_message_name) + ": " + _what_999(missing)
        findings.append(_finding(UNKNOWN_CLAIM, "999", missing, message + why, None))
    hit = hit[hit["i"].notna()].copy()
    hit["i"] = hit["i"].astype(np.int64)
    accepted = hit["accepted"].fillna(False).astype(bool).to_numpy()
    return _steps(
        hit,
        kind="999",
        status=np.where(accepted, "accepted_by_clearinghouse", "rejected_by_clearinghouse"),
        accepted=accepted,
    )


def _match_999(s: pd.DataFrame, a: pd.DataFrame) -> pd.DataFrame:
    """Each 999 row (``a`` numbers them) with the sent claims it answers (``i``; NaN when
    none): its set, by (submitter, GS06, ST02), or its whole group, by (submitter, GS06). A
    row without its receiver matches on the control numbers alone, when they name the
    claims of one claim file only (``ambiguous`` otherwise: nothing applied)."""
    sent = s[s["group_key"].notna()]
    found = []
    for known in (True, False):
        rows = a[a["receiver_id"].notna() == known]
        pool = sent[sent["submitter_id"].notna()] if known else sent
        for whole in (False, True):
            part = rows[rows["whole_group"] == whole]
            if part.empty:
                continue
            left = (["receiver_id"] if known else []) + ["group_key"]
            right = (["submitter_id"] if known else []) + ["group_key"]
            if not whole:
                left.append("sent_set_control_number")
                right.append("transaction_set_control_number")
            m = part.merge(
                pool[pool[right[-1]].notna()][["i", "file", *right]],
                left_on=left,
                right_on=right,
                how="left",
                suffixes=("", "_sent"),
            )
            m["ambiguous"] = (m.groupby("a")["file"].transform("nunique") > 1) & (not known)
            m.loc[m["ambiguous"], "i"] = np.nan
            found.append(m)
    return pd.concat(found, ignore_index=True)


def _reasons_999(codes, segments, elements, whole: bool) -> list[str]:
    label = "AK9" if whole else "IK5"  # AK905..AK909 are the group's codes, IK502.. the set's
    out = [f"{label}:{c}" for c in (codes or [])]
    for prefix, joined in (("IK3", segments), ("IK4", elements)):
        if isinstance(joined, str) and joined:
            out += [f"{prefix}:{p}" for p in joined.split("; ")]
    return list(dict.fromkeys(out))


def _what_999(rows: pd.DataFrame) -> pd.Series:
    submitter = rows["receiver_id"].map(lambda v: "unknown" if _missing(v) else _safe(v))
    group = rows["sent_group_control_number"].map(_safe)
    st = rows["sent_set_control_number"]
    where = np.where(st.isna(), " (the whole group)", " set " + st.map(_safe).astype(str))
    return "submitter " + submitter + " group " + group + where


def _claim_statuses(
    s: pd.DataFrame,
    table: pa.Table,
    seq: np.ndarray,
    findings: list[pd.DataFrame],
    codes: _Codes,
) -> pd.DataFrame:
    """The 277CA's steps: accepted or rejected by the payer, per claim."""
    cols = [
        "claim_id",
        "status_date",
        "action_code",
        "charge",
        "accepted",
        "payer_claim_control_number",
        "clearinghouse_trace",
    ]
    c = _responses_frame(table, cols, seq)
    if c.empty:
        return _no_steps()
    # the deciding STC01 ("A7:562:85"), then the claim's others, each once
    deciding = pc.binary_join_element_wise(
        *(table.column(n) for n in ("category", "status", "entity")), ":", null_handling="skip"
    )
    others = table.column("other_statuses").combine_chunks()
    parent = pc.list_parent_indices(others).to_numpy()
    items = pd.DataFrame(
        {
            "p": np.concatenate([np.arange(table.num_rows), parent]),
            "pos": np.concatenate([np.zeros(table.num_rows), 1 + np.arange(len(parent))]),
            "code": pa.concat_arrays([deciding.combine_chunks(), pc.list_flatten(others)]).to_numpy(
                zero_copy_only=False
            ),
        }
    )
    reasons = _list_array(items, table.num_rows, ["p", "pos"])
    c["reasons_key"] = _joined(reasons, c["row"])
    c["rix"] = codes.add(reasons)[0] + c["row"]
    c = _without_duplicates(
        c,
        [
            "claim_id",
            "payer_claim_control_number",
            "clearinghouse_trace",
            "reasons_key",
            "status_date",
            "action_code",
            "charge",
            "accepted",
        ],
        "277CA",
        findings,
        _what_claim,
    )
    hit = _to_claims(s, c, "277CA", findings)
    accepted = hit["accepted"].fillna(False).astype(bool).to_numpy()
    return _steps(
        hit,
        kind="277CA",
        status=np.where(accepted, "accepted_by_payer", "rejected_by_payer"),
        accepted=accepted,
        pccn=hit["payer_claim_control_number"],
    )


def _what_claim(rows: pd.DataFrame) -> pd.Series:
    return "claim " + rows["claim_id"].map(_safe)


def _to_claims(
    s: pd.DataFrame, rows: pd.DataFrame, kind: str, findings: list[pd.DataFrame]
) -> pd.DataFrame:
    """Each row with the sent claim its CLM01 names (``i``): the latest sending of it. A
    CLM01 that no claim sent carries is ``RESPONSE_UNKNOWN_CLAIM``, one that two carry
    ``RESPONSE_CLAIM_SENT_TWICE``."""
    latest = s[s["is_latest"]][["claim_id", "i", "times_sent", "run_date", "file_name"]]
    hit = rows.merge(latest, on="claim_id", how="left", suffixes=("", "_sent"))
    missing = hit[hit["i"].isna()]
    if not missing.empty:
        message = (
            kind
            + " "
            + missing["file_name"].map(_message_name)
            + ": "
            + _what_claim(missing)
            + " matches no claim sent"
        )
        claim = missing["claim_id"].map(_safe_or_none)
        findings.append(_finding(UNKNOWN_CLAIM, kind, missing, message, claim))
    hit = hit[hit["i"].notna()].copy()
    hit["i"] = hit["i"].astype(np.int64)
    twice = hit[hit["times_sent"] > 1]
    if not twice.empty:
        sendings = _sendings(s, set(twice["claim_id"]))
        message = (
            kind
            + " "
            + twice["file_name"].map(_message_name)
            + ": "
            + _what_claim(twice)
            + " was sent "
            + twice["times_sent"].astype(str)
            + " times ("
            + twice["claim_id"].map(sendings)
            + "): applied to the latest, sent on "
            + twice["run_date"].astype(str)
            + " in "
            + twice["file_name_sent"].map(_message_name)
        )
        findings.append(_finding(SENT_TWICE, kind, twice, message, twice["claim_id"]))
    return hit


def _sendings(s: pd.DataFrame, ids: set[str]) -> dict[str, str]:
    rows = s[s["claim_id"].isin(ids)].sort_values(["claim_id", "run_date", "file", "i"])
    out: dict[str, list[str]] = {}
    for cid, day, name in zip(rows["claim_id"], rows["run_date"], rows["file_name"], strict=True):
        out.setdefault(cid, []).append(f"{day} in {_message_name(name)}")
    return {k: ", ".join(v) for k, v in out.items()}


def _payments(
    s: pd.DataFrame,
    table: pa.Table,
    lines: pa.Table,
    seq: np.ndarray,
    findings: list[pd.DataFrame],
    codes: _Codes,
) -> pd.DataFrame:
    """The 835's steps, one per CLP, each with the claim's status once it is applied (net
    paid so far): see the module's note on precedence."""
    cols = [
        "claim_id",
        "payment_trace",
        "payment_date",
        "claim_status_code",
        "payer_claim_control_number",
        "filing_indicator",
        "line_count",
    ]
    p = _responses_frame(table, cols, seq, money=["charge", "paid", "patient_responsibility"])
    if p.empty:
        return _no_steps()
    reasons, remarks = _codes_835(table, lines)
    p["reasons_key"] = _joined(reasons, p["row"])
    p["remarks_key"] = _joined(remarks, p["row"])
    base_r, base_m = codes.add(reasons, remarks)
    p["rix"] = base_r + p["row"]
    p["mix"] = base_m + p["row"]
    p = _without_duplicates(
        p,
        [
            "claim_id",
            "payment_trace",
            "payment_date",
            "claim_status_code",
            "payer_claim_control_number",
            "charge_cents",
            "paid_cents",
            "patient_responsibility_cents",
            "filing_indicator",
            "line_count",
            "reasons_key",
            "remarks_key",
        ],
        "835",
        findings,
        _what_claim,
    )
    hit = _to_claims(s, p, "835", findings)
    if hit.empty:
        return _no_steps()
    hit = hit.sort_values(["i", "seq"], kind="mergesort").reset_index(drop=True)
    charge = s["charge_cents"].to_numpy()[hit["i"].to_numpy()]
    paid = hit["paid_cents"].fillna(0).astype(np.int64).to_numpy()
    net = pd.Series(paid).groupby(hit["i"].to_numpy()).cumsum().to_numpy()
    code = hit["claim_status_code"].fillna("").to_numpy(dtype=object)
    status = _paid_status(code, net, charge)
    standing = paid > 0  # the payments still standing (a reversal cancels one)
    with_reversal = hit[hit["i"].isin(hit["i"][code == _REVERSAL].unique())]
    pccn = hit["payer_claim_control_number"].to_numpy(dtype=object)
    for rows in with_reversal.groupby("i", sort=False).indices.values():
        at = with_reversal.index[rows].to_numpy()
        _walk_reversals(at, pccn, paid, code, net, charge, status, standing)
    return _steps(
        hit,
        kind="835",
        status=status,
        pccn=hit["payer_claim_control_number"],
        paid=paid,
        extra={
            "patient_cents": hit["patient_responsibility_cents"].fillna(0).to_numpy(),
            "paid_standing": standing,
            "payment_date": hit["payment_date"].to_numpy(dtype=object),
        },
    )


def _paid_status(code: np.ndarray, net: np.ndarray, charge: np.ndarray) -> np.ndarray:
    return np.where(
        (code == _PROCESSED_DENIED) | (net <= 0),
        "denied",
        np.where(net >= charge, "paid", "partially_paid"),
    ).astype(object)


def _walk_reversals(
    rows: np.ndarray,
    pccn: np.ndarray,
    paid: np.ndarray,
    code: np.ndarray,
    net: np.ndarray,
    charge: np.ndarray,
    status: np.ndarray,
    standing: np.ndarray,
) -> None:
    """One claim's 835 rows (``rows``, in receiving order) with a reversal among them: a
    reversal cancels the payment it names (same CLP07 and the opposite amount; else the
    opposite amount; else the latest one standing); the status follows the latest payment
    still standing, or goes back to accepted_by_payer when none is."""
    active: list[int] = []
    for r in rows:
        if code[r] != _REVERSAL:
            active.append(r)
            continue
        standing[r] = False
        match = [a for a in active if paid[a] == -paid[r] and pccn[a] == pccn[r]]
        match = match or [a for a in active if paid[a] == -paid[r]] or active[-1:]
        if match:
            active.remove(match[-1])
            standing[match[-1]] = False
        if active:
            last = active[-1]
            status[r] = _paid_status(code[last : last + 1], net[r : r + 1], charge[r : r + 1])[0]
        else:
            status[r] = "accepted_by_payer"


def _codes_835(payments: pa.Table, lines: pa.Table) -> tuple[pa.Array, pa.Array]:
    """Per ``payments`` row: its CAS codes (``CO-97``; the claim's, then its lines' in order,
    each once) and its lines' RARCs (each once). A line belongs to the CLP of its file (day,
    acks run, path) with its ``claim_sequence``."""
    n = payments.num_rows
    cas = [_flat(payments, "adjustments", np.arange(n, dtype=float), level=0)]
    remarks = pd.DataFrame({"p": [], "level": [], "line": [], "pos": [], "code": []})
    if lines.num_rows:
        key = ["received_on", "acks_run_id", "source_file", "claim_sequence"]
        left = storage.to_frame(payments, key).drop_duplicates(key)
        left["p"] = left.index.to_numpy(dtype=float)
        right = storage.to_frame(lines, key)
        owner = right.merge(left, on=key, how="left")["p"].to_numpy(dtype=float)
        number = lines.column("line_number").to_numpy().astype(float)
        cas.append(_flat(lines, "adjustments", owner, level=1, line=number))
        remarks = _flat(lines, "remark_codes", owner, level=1, line=number)
    order = ["p", "level", "line", "pos"]
    return (
        _list_array(pd.concat(cas, ignore_index=True), n, order),
        _list_array(remarks, n, order),
    )


def _flat(
    table: pa.Table,
    column: str,
    owner: np.ndarray,
    *,
    level: int,
    line: np.ndarray | None = None,
) -> pd.DataFrame:
    """One row per item of a list column (``adjustments``: ``group-reason``; else the text),
    with its owner (the ``payments`` row), level (0 claim, 1 line), line number and place."""
    lists = table.column(column).combine_chunks()
    parent = pc.list_parent_indices(lists).to_numpy()
    flat = pc.list_flatten(lists)
    if pa.types.is_struct(flat.type):
        group = pc.fill_null(flat.field("group"), "?")
        reason = pc.fill_null(flat.field("reason"), "?")
        flat = pc.binary_join_element_wise(group, reason, "-")
    return pd.DataFrame(
        {
            "p": owner[parent],
            "level": level,
            "line": line[parent] if line is not None else 0.0,
            "pos": np.arange(len(parent)),
            "code": flat.to_numpy(zero_copy_only=False),
        }
    )


def _list_array(items: pd.DataFrame, n: int, order: list[str]) -> pa.Array:
    """``n`` lists from ``items`` (owner ``p``, ``code``): each owner's codes in ``order``,
    each once, missing and empty codes left out."""
    items = items[items["p"].notna() & items["code"].notna()]
    items = items[items["code"].astype(str) != ""]
    items = items.sort_values(order, kind="mergesort").drop_duplicates(["p", "code"])
    owners = items["p"].to_numpy(dtype=np.int64)
    offsets = np.searchsorted(owners, np.arange(n + 1), side="left").astype(np.int32)
    values = pa.array(items["code"].to_numpy(dtype=object), TEXT)
    return pa.ListArray.from_arrays(pa.array(offsets, pa.int32()), values)


def _joined(lists: pa.Array, rows: pd.Series) -> np.ndarray:
    """Each row's list as one text (a content key)."""
    joined = pc.binary_join(lists.take(pa.array(rows.to_numpy())), "|")
    return joined.to_numpy(zero_copy_only=False)


def _no_steps() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "i": pd.Series(dtype=np.int64),
            "kind": pd.Series(dtype=object),
            "seq": pd.Series(dtype=np.int64),
        }
    )


def _steps(
    hit: pd.DataFrame,
    *,
    kind: str,
    status: np.ndarray,
    accepted: np.ndarray | None = None,
    pccn: pd.Series | None = None,
    paid: np.ndarray | None = None,
    extra: dict | None = None,
) -> pd.DataFrame:
    steps = pd.DataFrame(
        {
            "i": hit["i"].to_numpy(dtype=np.int64),
            "kind": kind,
            "seq": hit["seq"].to_numpy(dtype=np.int64),
            "status": np.asarray(status, dtype=object),
            "status_on": hit["response_date"].to_numpy(dtype=object),
            "source_file": hit["file_name"].to_numpy(dtype=object),
            "received_on": hit["received_on"].to_numpy(dtype=object),
            "acks_run_id": hit["acks_run_id"].to_numpy(dtype=object),
            "rix": hit["rix"].to_numpy(dtype=np.int64),
            "mix": hit["mix"].to_numpy(dtype=np.int64) if "mix" in hit else 0,
            "pccn": pccn.to_numpy(dtype=object) if pccn is not None else None,
            "paid_cents": paid.astype(float) if paid is not None else np.nan,
            "accepted": accepted.astype(object) if accepted is not None else None,
        }
    )
    for name, values in (extra or {}).items():
        steps[name] = values
    return steps


def _history(s: pd.DataFrame, steps: list[pd.DataFrame]) -> pd.DataFrame:
    """Every step of every claim, in receiving order (step 1: sent)."""
    sent = pd.DataFrame(
        {
            "i": s["i"].to_numpy(),
            "kind": "837",
            "seq": -1,
            "status": "sent",
            "status_on": s["run_date"].to_numpy(dtype=object),
            "source_file": s["file_name"].to_numpy(dtype=object),
            "received_on": None,
            "acks_run_id": None,
            "rix": 0,
            "mix": 0,
            "pccn": None,
            "paid_cents": np.nan,
            "accepted": None,
        }
    )
    h = pd.concat([sent, *[x for x in steps if not x.empty]], ignore_index=True)
    h["rank"] = h["kind"].map(_RANK).astype(int)
    h = h.sort_values(["i", "seq", "rank"], kind="mergesort").reset_index(drop=True)
    h["step"] = h.groupby("i").cumcount().astype(np.int32) + 1
    for name, default in (("patient_cents", np.nan), ("paid_standing", False)):
        if name not in h:
            h[name] = default
    if "payment_date" not in h:
        h["payment_date"] = None
    return h


def _current(s: pd.DataFrame, h: pd.DataFrame, reasons: pa.Array, remarks: pa.Array) -> pa.Table:
    n = len(s)
    everyone = pd.RangeIndex(n)
    by_precedence = h.sort_values(["i", "rank", "seq"], kind="mergesort")
    deciding = by_precedence.drop_duplicates("i", keep="last")  # one per claim: every i
    last = h.loc[deciding.index].set_index("i").reindex(everyone)
    at = deciding.sort_values("i").index.to_numpy()  # each claim's deciding row in ``h``
    known = by_precedence[by_precedence["pccn"].notna()].drop_duplicates("i", keep="last")
    pccn = known.set_index("i")["pccn"].reindex(everyone)
    pay = h[h["kind"] == "835"]
    paid = pay.groupby("i")["paid_cents"].sum().reindex(everyone).fillna(0)
    patient = pay.groupby("i")["patient_cents"].sum().reindex(everyone).fillna(0)
    standing = pay[pay["paid_standing"].astype(bool)].drop_duplicates("i", keep="last")
    paid_on = standing.set_index("i")["payment_date"].reindex(everyone)
    paid_on = paid_on.where(paid.to_numpy() > 0)
    days = (pd.to_datetime(paid_on) - pd.to_datetime(s["run_date"])).dt.days
    return pa.table(
        {
            "claim_id": _text(s["claim_id"]),
            "claim_key": _text(s["claim_key"]),
            "run_date": _arr(s["run_date"], DATE, few=True),
            "payer_id": _text(s["payer_id"]),
            "clinic_id": _text(s["clinic_id"]),
            "encounter_id": _text(s["encounter_id"]),
            "claim_type": _text(s["claim_type"]),
            "file": _text(s["file"]),
            "charge": _money(s["charge_cents"]),
            "status": _arr(last["status"], TEXT, few=True),
            "status_on": _arr(last["status_on"], DATE, few=True),
            "status_kind": _arr(last["kind"], TEXT, few=True),
            "status_file": _arr(last["source_file"], TEXT, few=True),
            "reason_codes": reasons.take(pa.array(at)),
            "remark_codes": remarks.take(pa.array(at)),
            "payer_claim_control_number": _arr(pccn, TEXT),
            "paid": _money(paid),
            "patient_responsibility": _money(patient),
            "paid_on": _arr(paid_on, DATE, few=True),
            "days_to_payment": pa.array(
                days.to_numpy(dtype=float), pa.float64(), from_pandas=True
            ).cast(pa.int32()),
            "first_pass_accepted": _first_pass(h, everyone),
            "steps": pa.array(h.groupby("i").size().reindex(everyone).to_numpy(), pa.int32()),
        },
        schema=CURRENT,
    )


def _first_pass(h: pd.DataFrame, everyone: pd.RangeIndex) -> pa.Array:
    """Whether the claim got through on its first pass: false as soon as its first 999 or its
    first 277CA rejected it (a claim its 999 rejected never gets a 277CA: left null, it would
    drop out of the rate's denominator and flatter it), true when both accepted it, null
    while it waits for either."""
    firsts = []
    for kind in ("999", "277CA"):
        rows = h[h["kind"] == kind].drop_duplicates("i")  # ``h`` is in receiving order
        firsts.append(rows.set_index("i")["accepted"].reindex(everyone))
    rejected = firsts[0].eq(False) | firsts[1].eq(False)
    accepted = firsts[0].eq(True) & firsts[1].eq(True)
    decided = (rejected | accepted).to_numpy()
    return pa.array(accepted.to_numpy(), pa.bool_(), mask=~decided)


def _history_table(s: pd.DataFrame, h: pd.DataFrame, reasons: pa.Array) -> pa.Table:
    claim = pa.array(s["claim_id"].to_numpy(dtype=object), TEXT, from_pandas=True)
    return pa.table(
        {
            "claim_id": claim.take(pa.array(h["i"].to_numpy())),
            "step": pa.array(h["step"].to_numpy(), pa.int32()),
            "status": _arr(h["status"], TEXT, few=True),
            "status_on": _arr(h["status_on"], DATE, few=True),
            "kind": _arr(h["kind"], TEXT, few=True),
            "source_file": _arr(h["source_file"], TEXT, few=True),
            "received_on": _arr(h["received_on"], DATE, few=True),
            "acks_run_id": _arr(h["acks_run_id"], TEXT, few=True),
            "reason_codes": reasons,
            "payer_claim_control_number": _arr(h["pccn"], TEXT),
            "paid": _money(h["paid_cents"].where(h["kind"] == "835")),
        },
        schema=HISTORY,
    )


def _finding(code: str, kind: str, rows: pd.DataFrame, message: pd.Series, claim) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "code": code,
            "severity": CATALOGUE[code].severity,
            "claim_id": claim.to_numpy(dtype=object) if claim is not None else None,
            "kind": kind,
            "source_file": rows["file_name"].to_numpy(dtype=object),
            "message": np.asarray(message, dtype=object),
            "seq": rows["seq"].to_numpy(),
        }
    )


def _findings_table(found: list[pd.DataFrame]) -> pa.Table:
    found = [f for f in found if not f.empty]
    if not found:
        return FINDINGS.empty_table()
    f = pd.concat(found, ignore_index=True)
    f["rank"] = f["code"].map({c: i for i, c in enumerate(FINDING_CODES)})
    f = f.sort_values(["seq", "rank", "claim_id", "message"], kind="mergesort")
    return pa.table({name: _arr(f[name], TEXT) for name in FINDINGS.names}, schema=FINDINGS)


# --------------------------------------------------------------------------- writing


def refresh(out: str, ledger: str | None = None) -> Lifecycle:
    """Recompute the layer from the ledger layers and every committed acks run, write it to
    ``<out>/lifecycle/`` and return it.

    Safe to call at any time, as often as wanted: it changes no record it reads, gives the
    same tables for the same records (twice in a row: the same files), and replaces the
    three files together (written to a hidden folder beside the layer, then swapped in), so
    a reader or a crash sees the old tables or the new ones. Storage failures raise
    ``storage.StorageError``. (``ledger``: the ledger database, as ``ledger.read`` names it.)"""
    result = statuses(sent_claims(out, ledger=ledger), received(out))
    write(out, result)
    return result


def summary_lines(result: Lifecycle) -> list[str]:
    """The balance in a few lines: the claims sent, how many are in each status (they add up
    to the claims sent), and the findings per code. Counts and codes only."""
    counts = result.counts()
    total = result.current.num_rows
    lines = [
        f"lifecycle: {total} claim(s) sent: "
        + ", ".join(f"{counts[s]} {s}" for s in STATUSES)
        + (" (balanced)" if sum(counts.values()) == total else " (NOT balanced)")
    ]
    codes = result.findings.column("code").to_pylist()
    if codes:
        lines.append(
            "lifecycle findings: " + ", ".join(f"{codes.count(c)} {c}" for c in FINDING_CODES)
        )
    return lines


def write(out: str, result: Lifecycle) -> None:
    """Write the three tables into ``<out>/lifecycle/`` together (see :func:`refresh`)."""
    incoming = storage.join(out, INCOMING, uuid.uuid4().hex)
    for name in SCHEMAS:
        table = getattr(result, name).replace_schema_metadata(
            {
                schemas.VERSION_KEY: schemas.SCHEMA_VERSION.encode(),
                schemas.LAYER_KEY: LAYER.encode(),
                TABLE_KEY: name.encode(),
            }
        )
        storage.write_table(table, storage.join(incoming, f"{name}.parquet"))
    storage.replace_tree(incoming, storage.join(out, LAYER))


def read_current(out: str) -> pa.Table:
    """``<out>/lifecycle/current.parquet`` (an empty table with ``CURRENT`` before the first
    refresh)."""
    path = storage.join(out, LAYER, "current.parquet")
    if not storage.exists(path):
        return CURRENT.empty_table()
    return storage.read_table(path).replace_schema_metadata(None).cast(CURRENT)


def read(out: str) -> Lifecycle:
    """The layer as the last refresh wrote it (empty tables before the first): what a reader
    that did not compute it (the demo after the responses DAG, ``show``) summarises."""
    tables = {}
    for name, schema in SCHEMAS.items():
        path = storage.join(out, LAYER, f"{name}.parquet")
        tables[name] = (
            storage.read_table(path).replace_schema_metadata(None).cast(schema)
            if storage.exists(path)
            else schema.empty_table()
        )
    return Lifecycle(**tables)


# --------------------------------------------------------------------------- helpers


def _arr(values, kind: pa.DataType, *, few: bool = False) -> pa.Array:
    """A column of objects as an Arrow array; None, NaN, NA and NaT are nulls. ``few``: the
    column holds few distinct values (statuses, dates, file names), each converted once."""
    values = np.asarray(values, dtype=object)
    if not few:
        return pa.array(values, kind, from_pandas=True)
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    distinct = pa.array(np.asarray(uniques, dtype=object), kind, from_pandas=True)
    return distinct.take(pa.array(codes, pa.int64(), mask=codes < 0))


def _missing(value) -> bool:
    return (
        value is None
        or value is pd.NA
        or value is pd.NaT
        or (isinstance(value, float) and np.isnan(value))
    )


def _text(values: pd.Series) -> pa.Array:
    return _arr(values, TEXT)


def _cents(amounts: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """Decimal amounts as whole cents (a float array: NaN where missing)."""
    arr = amounts.combine_chunks() if isinstance(amounts, pa.ChunkedArray) else amounts
    whole = arr.cast(MONEY).view(pa.decimal128(12, 0)).cast(pa.int64())
    return whole.to_numpy(zero_copy_only=False).astype(float)


def _cents_of_dollars(dollars: pd.Series) -> np.ndarray:
    """The ledger's charges (dollars, ``double``: whole cents computed) as whole cents."""
    return np.round(pd.to_numeric(dollars).to_numpy(dtype=float) * 100)


def _money(cents) -> pa.Array:
    """Whole cents (NaN: null) as ``decimal(12, 2)``."""
    values = np.asarray(cents, dtype=float)
    missing = np.isnan(values)
    whole = pa.array(np.where(missing, 0, values).astype(np.int64), mask=missing)
    return whole.cast(pa.decimal128(19, 0)).view(MONEY)


def _group_number(values: pd.Series) -> pd.Series:
    """GS06/AK102 as compared: a number without leading zeros (GS06 is numeric)."""
    text = values.astype("string").str.strip()
    digits = text.str.fullmatch(r"\d{1,9}").fillna(False)
    return text.where(~digits, text.str.lstrip("0").replace("", "0"))


def _names(paths: pd.Series) -> pd.Series:
    """Each path's file name (computed once per distinct path)."""
    distinct = {p: storage.name(p) for p in paths.dropna().unique()}
    return paths.map(distinct).astype(object)


def _safe(value) -> str:
    """An id read from a file, for a message: as it is when it looks like an id, else "?"."""
    return value if isinstance(value, str) and _SAFE_ID.fullmatch(value) else "?"


def _safe_or_none(value) -> str | None:
    return value if isinstance(value, str) and _SAFE_ID.fullmatch(value) else None


def _message_name(name) -> str:
    """A file name for a message: characters other than letters, digits, ``._ -`` as ``?``."""
    return "?" if _missing(name) else _UNSAFE_NAME.sub("?", str(name))[:_NAME_CAP]
