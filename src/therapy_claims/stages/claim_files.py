"""The 837 claim files of a night: which billed lines go into which interchange and file,
and building a batch of interchanges' files.

``plan`` works out, from the sort keys alone, where every billed line goes; ``build_batch``
builds the files of some interchanges from the staged tables. The runtime decides where a
batch is built (this process or a second one): the files are the same bytes either way,
because each is built under the provisional control number (``x12.envelope.PROVISIONAL``) and
publish numbers them afterwards (``x12.renumber``) with the numbers the ledger database gives
their content (``content_digest``, taken here, where the file is built).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from datetime import datetime

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from therapy_claims import corrections, ledger, reference, storage, timing, x12
from therapy_claims.config import RunConfig, RunError
from therapy_claims.handover import Handover, mapped_table
from therapy_claims.stages import checked
from therapy_claims.stages.ingest import RAW, mapped_raw
from therapy_claims.x12 import prepared, reader, voids
from therapy_claims.x12.constants import VOID
from therapy_claims.x12.envelope import PROVISIONAL, content_digest

log = logging.getLogger("therapy_claims")

BYTES_PER_LINE_GUESS = 300  # an 837 line with its claim's share of the header, generously

# the scored columns and the raw layer's fields the 837 writer takes
PUBLISH_SCORED = [
    "line_id",
    "claim_id",
    "encounter_id",
    "patient_id",
    "discipline",
    "cpt_code",
    "modifiers",
    "units",
    "charge_amount",
    "receiver_id",
    "claim_type",
]
CLAIM_FIELDS = [
    "line_id",
    "clinic_id",
    "payer_id",
    "date_of_service",
    "patient_last_name",
    "patient_first_name",
    "patient_dob",
    "patient_sex",
    "patient_address",
    "patient_city",
    "patient_state",
    "patient_zip",
    "member_id",
    "subscriber_relationship",
    "subscriber_last_name",
    "subscriber_first_name",
    "subscriber_dob",
    "group_number",
    "prior_auth_number",
    "rendering_npi",
    "rendering_last_name",
    "rendering_first_name",
    "diagnosis_codes",
    "diagnosis_pointers",
    "place_of_service",
    "injury_date",
    # issue 15: providers and claim content by payer
    "rendering_credential",
    "rendering_taxonomy",
    "supervising_npi",
    "supervising_last_name",
    "supervising_first_name",
    "referring_npi",
    "referring_last_name",
    "referring_first_name",
    "initial_treatment_date",
    "plan_of_care_start",
    "related_cause",
    "accident_date",
    "accident_state",
    "pc_claim_number",
    "employer_name",
]

# what publish builds claim files from, besides the checked columns: the scored columns it
# plans with and the claim ledger reads, and the raw layer's fields they read
BUILD_SCORED = [
    "line_id",
    "claim_id",
    "encounter_id",
    "patient_id",
    "charge_amount",
    "receiver_id",
    "claim_type",
]
BUILD_RAW = ["clinic_id", "payer_id", "date_of_service"]
# a corrected claim's (issue 17): in the writer's frame when score decided any
CORRECTION_FIELDS = ["claim_frequency", "original_reference"]

# one interchange per receiver, claim type and submitter; within it, claims in claim_id order
# and a claim's lines by date of service and line_id
INTERCHANGE_KEYS = ["receiver_id", "claim_type", "submitter_id"]
CLAIM_FILE_ORDER = [*INTERCHANGE_KEYS, "claim_id", "date_of_service", "line_id"]

# (interchange key, at_scored, at_raw, at_checked): its lines' rows in the scored columns, the
# raw layer and the checked columns score staged (``checked.Night``)
ClaimJob = tuple[tuple, np.ndarray, np.ndarray, np.ndarray]
Interchange = tuple[tuple, int, int]  # (interchange key, start, stop) in the planned order


def raw_claim_fields(cfg: RunConfig, handover: Handover) -> pa.Table:
    """The staged raw layer's ``CLAIM_FIELDS``: mapped from the uncompressed Arrow file when
    the run left one (only the rows taken are read), else from Parquet."""
    mapped = mapped_raw(cfg)
    if mapped is not None:
        return mapped_table(mapped).select(CLAIM_FIELDS)
    return handover.read_table(cfg.staged(*RAW), CLAIM_FIELDS)


def plan(
    scored: pa.Table, raw: pa.Table, keep: np.ndarray, submitters: pd.Series
) -> tuple[np.ndarray, np.ndarray, list[Interchange]]:
    """Where the kept scored lines go: ``(at_scored, at_raw, interchanges)``.

    ``scored`` and ``raw`` are Arrow tables of the scored lines and the raw layer.
    ``at_scored`` and ``at_raw`` are the row positions of the kept lines in each, in
    ``CLAIM_FILE_ORDER`` (Arrow's stable sort, missing values last); ``interchanges`` are
    ``((receiver, claim type, submitter), start, stop)``, each a slice of those positions.
    Score keeps the raw layer's row order, so the rows usually line up one to one; otherwise a
    line's raw row is found by its line_id. Only the sort keys are read here: the other columns
    are taken once, in this order, by whichever process builds an interchange's files."""
    pos = np.flatnonzero(keep)
    raw_pos = _raw_positions(scored, raw, pos)
    at_s, at_r = pa.array(pos), pa.array(raw_pos)
    clinic = raw.column("clinic_id").take(at_r)
    clinics = pc.unique(clinic).drop_null()
    submitter = pc.take(
        pa.array(submitters.reindex(clinics.to_pylist()), type=pa.string(), from_pandas=True),
        pc.index_in(clinic, value_set=clinics),
    )
    keys = pa.table(
        {
            "receiver_id": scored.column("receiver_id").take(at_s),
            "claim_type": scored.column("claim_type").take(at_s),
            "submitter_id": pc.fill_null(submitter, ""),
            "claim_id": scored.column("claim_id").take(at_s),
            "date_of_service": raw.column("date_of_service").take(at_r),
            "line_id": scored.column("line_id").take(at_s),
        }
    )
    order = _sort_order(keys)
    # a line without a receiver or claim type has no interchange (its payer or clinic is unknown,
    # an error that holds its claim: it is never billed)
    complete = pc.and_(pc.is_valid(keys["receiver_id"]), pc.is_valid(keys["claim_type"]))
    if not pc.all(complete).as_py():
        log.warning(
            "publish: %s billed line(s) have no receiver or claim type",
            pc.sum(pc.invert(complete)).as_py(),
        )
        order = order.filter(complete.take(order))
    order = order.to_numpy().astype(np.int64)
    ordered = keys.select(INTERCHANGE_KEYS).take(pa.array(order))
    change = np.zeros(len(order), dtype=bool)
    change[:1] = True
    for k in INTERCHANGE_KEYS:
        col = ordered.column(k)
        change[1:] |= pc.not_equal(col[1:], col[:-1]).to_numpy(zero_copy_only=False)
    starts = np.flatnonzero(change)
    interchanges = [
        (tuple(ordered.column(k)[int(a)].as_py() for k in INTERCHANGE_KEYS), int(a), int(b))
        for a, b in zip(starts, [*starts[1:], len(order)], strict=True)
    ]
    return pos[order], raw_pos[order], interchanges


def _sort_order(keys: pa.Table) -> pa.Array:
    """The rows of ``keys`` in ``CLAIM_FILE_ORDER``, as Arrow's stable sort on those columns
    (missing values last) gives them. Every key but the last (line_id, unique) is replaced by
    its value's rank among the column's distinct values, and the ranks are packed into one
    integer: Arrow then compares one integer and, only on ties, the line ids, instead of five
    texts per comparison (1.5 s against 0.8 s at a million lines)."""
    packed = np.zeros(keys.num_rows, dtype=np.int64)
    span = 1
    for k in CLAIM_FILE_ORDER[:-1]:
        rank, width = _dense_rank(keys.column(k))
        span *= width
        if span >= 2**62:  # too many distinct values to pack: the plain sort
            return pc.sort_indices(
                keys, sort_keys=[(c, "ascending", "at_end") for c in CLAIM_FILE_ORDER]
            )
        packed = packed * width + rank
    last = CLAIM_FILE_ORDER[-1]
    return pc.sort_indices(
        pa.table({"packed": packed, last: keys.column(last)}),
        sort_keys=[("packed", "ascending"), (last, "ascending", "at_end")],
    )


def _dense_rank(column: pa.ChunkedArray | pa.Array) -> tuple[np.ndarray, int]:
    """Per row, its value's rank in ascending order among the column's distinct values
    (missing: after all of them), and the number of ranks."""
    encoded = pc.dictionary_encode(column)
    if isinstance(encoded, pa.ChunkedArray):
        encoded = encoded.unify_dictionaries().combine_chunks()
    values = encoded.dictionary
    rank_of = np.empty(len(values) + 1, dtype=np.int64)
    rank_of[pc.sort_indices(values).to_numpy()] = np.arange(len(values))
    rank_of[-1] = len(values)
    return rank_of[pc.fill_null(encoded.indices, len(values)).to_numpy()], len(values) + 1


def _raw_positions(scored: pa.Table, raw: pa.Table, pos: np.ndarray) -> np.ndarray:
    """The raw rows of the scored lines at ``pos``: the same positions when the tables line
    up, else found by line_id."""
    aligned = (
        len(scored) == len(raw)
        and pc.all(
            pc.fill_null(pc.equal(scored.column("line_id"), raw.column("line_id")), False)
        ).as_py()
    )
    if aligned:
        return pos
    ids = pd.Index(raw.column("line_id").to_pandas())
    if not ids.is_unique:
        raise RunError("the staged raw layer repeats line_ids: run the 'ingest' stage again")
    raw_pos = ids.get_indexer(scored.column("line_id").take(pa.array(pos)).to_pandas())
    if (raw_pos < 0).any():
        missing = scored.column("line_id").take(pa.array(pos[raw_pos < 0]))
        raise RunError(
            f"{len(missing)} billed line(s) are not in the staged raw layer (e.g. line_id "
            f"{missing[0]}): run the 'ingest' and 'score' stages again"
        )
    return raw_pos


def lines_at(
    scored: pa.Table, raw: pa.Table, at_scored: np.ndarray, at_raw: np.ndarray, submitters
) -> pd.DataFrame:
    """The lines at those positions as the 837 writer takes them (``writer_frame``)."""
    return writer_frame(
        scored.select(PUBLISH_SCORED).take(pa.array(at_scored)),
        raw.select(CLAIM_FIELDS).take(pa.array(at_raw)),
        submitters,
    )


def writer_frame(scored: pa.Table, raw: pa.Table, submitters: pd.Series) -> pd.DataFrame:
    """Lines as the 837 writer takes them, from the same rows of the scored columns and the
    raw layer's claim fields: those columns and ``submitter_id``."""
    lines = pd.concat(
        [
            storage.to_frame(scored.select(PUBLISH_SCORED)),
            storage.to_frame(raw.select(CLAIM_FIELDS[1:])),
        ],
        axis=1,
    )
    # the modifier lists stay Arrow lists (as pandas makes one array object per row otherwise,
    # about 0.4 us a line): the writer encodes them by content
    lines["modifiers"] = pd.Series(
        pd.arrays.ArrowExtensionArray(scored.column("modifiers")), index=lines.index
    )
    for c in CORRECTION_FIELDS:  # a corrected claim's frequency and REF*F8, when given
        if c in scored.column_names:
            lines[c] = storage.to_frame(scored.select([c]))[c].to_numpy()
    lines["submitter_id"] = _submitter_ids(raw.column("clinic_id"), submitters)
    # list fields stay as the extract's ";"-joined text: the writer splits them per claim
    lines["diagnosis_pointers"] = lines["diagnosis_pointers"].fillna("1")
    return lines


def _submitter_ids(clinic_ids: pa.ChunkedArray, submitters: pd.Series) -> pd.Series:
    """Each line's clinic's submitter id ('' for a clinic not in ``submitters``), looked up in
    Arrow: a pandas ``map`` over a million lines costs about 0.1 s per 100,000."""
    keys = pa.array(submitters.index.tolist(), type=pa.string())
    values = pa.array(submitters.tolist(), type=pa.string())
    found = pc.take(values, pc.index_in(clinic_ids, value_set=keys))
    return pd.Series(pd.array(pc.fill_null(found, ""), dtype="str"))


# --------------------------------------------------------------------------- checking


def unwritable(
    scored: pa.Table, raw: pa.Table, institutional: bool, ref: reference.Reference
) -> dict[str, str]:
    """``claim_checks(...)[0]``: the claims of these lines the writer would leave out."""
    return claim_checks(scored, raw, institutional, ref)[0]


def claim_checks(
    scored: pa.Table, raw: pa.Table, institutional: bool, ref: reference.Reference
) -> tuple[dict[str, str], pd.DataFrame]:
    """``{CLM01: reason}`` of the claims of these lines (the same rows of the scored columns
    and the raw layer's claim fields, all of one claim type, every line of each claim) that
    the 837 writer would leave out, with the reason it would give; and the values the others
    are written with cut to their element's size (``x12.text_truncations``, ``row``: the
    position among these lines).

    Whether a claim can be written does not depend on the order of its lines, only which of
    its problems is named first: the lines are checked in the order given, then the few
    claims that fail again in the order publish hands them to the writer (claim, date of
    service, line)."""
    return check_batch(scored, raw, institutional, ref)[:2]


def check_batch(
    scored: pa.Table,
    raw: pa.Table,
    institutional: bool,
    ref: reference.Reference,
    *,
    export: bool = False,
) -> tuple[dict[str, str], pd.DataFrame, prepared.Exported | None]:
    """``claim_checks(...)`` and, with ``export``, the checked columns the 837 writer builds
    these lines' claims from (``prepared.export``: per line, in the order given), so
    publish builds them without checking them again."""
    submitters = ref.clinics["submitter_id"]
    checks = {
        "institutional": institutional,
        "clinics": ref.clinics,
        "payers": ref.payers,
        "providers": ref.providers,
    }
    frame = writer_frame(scored, raw, submitters)
    bad, cut, batch = x12.truncation.checked_batch(frame, **checks)
    exported = _export(frame, batch, checks) if export and batch is not None else None
    del batch
    if not bad:
        return {}, cut, exported
    some = pa.array(np.flatnonzero(frame["claim_id"].isin(list(bad)).to_numpy()))
    scored, raw = scored.take(some), raw.take(some)
    at_s, at_r, _ = plan(scored, raw, np.ones(len(some), bool), submitters)
    verdicts = x12.unwritable_claims(lines_at(scored, raw, at_s, at_r, submitters), **checks)
    return verdicts, cut, exported


def _export(frame: pd.DataFrame, batch: x12.checks.Batch, checks: dict) -> prepared.Exported:
    """``prepared.export(batch)``; the few claims whose first line in ``frame`` is not the
    one written first are checked again in the written order and exported from there (as
    claims after the batch's own)."""
    out = prepared.export(batch)
    moved = prepared.moved_first_lines(frame, batch.lines)
    if not len(moved):
        return out
    claim_of_row = np.empty(len(frame), dtype=np.int64)
    claim_of_row[batch.lines.order] = batch.lines.line_claim
    rows = np.flatnonzero(np.isin(claim_of_row, moved))
    some = frame.iloc[rows].reset_index(drop=True)
    order = some.sort_values(
        ["claim_id", "date_of_service", "line_id"], kind="mergesort", na_position="last"
    ).index.to_numpy()
    again = prepared.export(x12.checks.Batch(some.iloc[order].reset_index(drop=True), **checks))
    for field, texts in again.pools.items():  # their codes after the batch's own texts
        shift = len(out.pools[field])
        for part in (again.lines, again.claims):
            if field in part:
                part[field] = part[field] + np.int32(shift)
        out.pools[field] = pa.concat_arrays([out.pools[field], texts])
    again.lines["claim"] = again.lines["claim"] + np.int32(len(out.claims["bad"]))
    for field, values in again.lines.items():
        out.lines[field][rows[order]] = values
    for field, values in again.claims.items():
        out.claims[field] = np.concatenate([out.claims[field], values])
    return out


# --------------------------------------------------------------------------- building


def build_batch(
    cfg: RunConfig, jobs: list[ClaimJob], scored, raw=None, ref=None
) -> tuple[list[list[dict]], dict]:
    """Build the claim files of some interchanges. Per job, its files in order, each built
    under the provisional control number with its content digest; publish numbers them and
    renumbers the text. ``scored`` is the scored columns' (``BUILD_SCORED``) Arrow table, or
    the path of an Arrow file of them to map (a second process); without ``raw`` the raw
    layer's fields are read from the staging area. The claims are built from the columns
    score checked them with (``checked.Night``), not cleaned and checked again. Returns the
    files with the timings recorded here."""
    if not jobs:
        return [], {}
    if ref is None:
        ref = reference.load(cfg.reference)
    if isinstance(scored, str):
        scored = mapped_table(scored)
    if raw is None:
        raw = raw_claim_fields(cfg, Handover())
    night = checked.Night(cfg)
    staged = corrections.read_staged(cfg)
    # one interchange's lines at a time: only its frame is held while its files are built
    built = [
        interchange_files(cfg, ref, key, build_lines(scored, raw, job), night, staged)
        for key, *job in jobs
    ]
    return built, timing.take()


def build_lines(scored: pa.Table, raw: pa.Table, job: list) -> pd.DataFrame:
    """The lines of one job (``[at_scored, at_raw, at_checked]``) in claim-file order: their
    ``BUILD_SCORED`` columns, ``BUILD_RAW`` fields and ``checked_row`` (their row in the
    checked columns)."""
    at_s, at_r, at_c = job
    lines = pd.concat(
        [
            storage.to_frame(scored.select(BUILD_SCORED).take(pa.array(at_s))),
            storage.to_frame(raw.select(BUILD_RAW).take(pa.array(at_r))),
        ],
        axis=1,
    )
    lines["checked_row"] = np.asarray(at_c, dtype=np.int64)
    return lines


def interchange_files(
    cfg: RunConfig,
    ref: reference.Reference,
    key: tuple,
    group: pd.DataFrame,
    night: checked.Night,
    staged: pd.DataFrame | None = None,
) -> list[dict]:
    """The claim files of one interchange (``group``: its lines in claim-file order, see
    ``build_lines``), under the provisional control number, each with its ``submitter_id``
    and ``content_sha256`` (what publish numbers it by). Every claim reaching here was checked
    by score: a claim the checks found unwritable is a bug, and fails publish rather than
    going unbilled unseen. ``staged``: score's decision per claim (``corrections.STAGED``):
    a corrected claim's frequency and REF*F8 for the 837, how each was sent for the ledger."""
    if staged is None:
        staged = corrections.read_staged(cfg)
    extra = corrections.writer_columns(group["claim_id"], staged)
    if extra is not None:
        group = group.join(extra)
    receiver, claim_type, submitter = key
    kind = "837I" if claim_type == "institutional" else "837P"
    args = {
        "receiver_id": receiver,
        "receiver_name": str(ref.payers.loc[group["payer_id"].iloc[0], "receiver_name"]),
        # ISA09/10 and BHT carry the run date (at 00:00), so a rerun gives identical bytes
        "created": datetime.combine(cfg.run_date, datetime.min.time()),
        "usage": cfg.usage,
    }

    def build(part: pd.DataFrame, **kw) -> str:
        """One file's interchange, from its lines' checked columns."""
        refs = ["claim_id", "clinic_id", "payer_id"]
        lines = prepared.Checked(
            part[refs + [c for c in CORRECTION_FIELDS if c in part]],
            night.take(part["checked_row"].to_numpy()),
            night.pools,
            institutional=kind == "837I",
            clinics=ref.clinics,
            payers=ref.payers,
        )
        writer = x12.build_837i if kind == "837I" else x12.build_837p
        # (the reference frames the checked columns were made with: what a build of the lines
        # themselves would take)
        refs = {"clinics": ref.clinics, "payers": ref.payers, "providers": ref.providers}
        return writer(part, checked=lines, **refs, **kw)

    out = []
    for chunk, text, placed, _seq in cut_files(build, group, args, cfg):
        data = text.encode("ascii")
        out.append(
            {
                "data": data,
                "content_sha256": content_digest(data),
                "submitter_id": submitter,
                "receiver_id": receiver,
                "claim_type": kind,
                "claims": int(chunk["claim_id"].nunique()),
                "lines": len(chunk),
                "charges": round(float(chunk["charge_amount"].sum()), 2),
                "ledger": corrections.ledger_columns(
                    ledger.entries(
                        chunk,
                        run_date=cfg.rd,
                        file="",
                        claim_type=kind,
                        receiver_id=receiver,
                        icn=PROVISIONAL,
                        placed=placed,
                    ),
                    staged,
                ),
            }
        )
    return out


def cut_files(
    build: Callable[..., str], group: pd.DataFrame, args: dict, cfg: RunConfig
) -> Iterator[tuple[pd.DataFrame, str, dict[str, str], int]]:
    """Split one interchange's lines into claim files within ``cfg.max_file_bytes``, building
    each file once, under the provisional control number (nine digits, as long as any final
    number: renumbering never makes a file longer); yields ``(lines, text, placed, seq)`` per
    file, ``seq`` its place in the interchange from 1.

    A group is cut between claims (never between the parts of a split claim), in claim order,
    sized by its lines from the bytes per line of what was built so far, so a rerun cuts it
    the same way. ``placed`` is claim_id -> ST02 of the file's transaction set."""
    limit = cfg.max_file_bytes
    ids = group["claim_id"].drop_duplicates()
    base = ledger.claim_key(ids).to_numpy()
    lines_per_claim = (
        group.groupby("claim_id", sort=False).size().reindex(ids.to_numpy()).to_numpy()
    )
    # units that may not be cut: all parts of one split claim
    unit_of_claim = pd.factorize(base)[0]
    unit_lines = np.bincount(unit_of_claim, weights=lines_per_claim).astype(int)
    # the group is sorted by claim_id, so a unit's lines are usually one run of rows: a chunk
    # of units is then a slice (else the rows of its claims are picked out)
    row_unit = unit_of_claim[pd.factorize(group["claim_id"])[0]]
    contiguous = bool((np.diff(row_unit) >= 0).all())
    unit_claims = []
    if not contiguous:
        by_unit = ids.to_numpy()[np.argsort(unit_of_claim, kind="stable")]
        unit_claims = np.split(by_unit, np.cumsum(np.bincount(unit_of_claim))[:-1])
    lines_before = np.concatenate([[0], np.cumsum(unit_lines)])  # lines of the units before u
    bytes_per_line = float(BYTES_PER_LINE_GUESS)
    seq, u = 0, 0
    while u < len(unit_lines):
        # take whole units while their estimated size fits the budget (at least one unit)
        budget = 0.9 * limit / bytes_per_line
        fits = np.searchsorted(lines_before, lines_before[u] + budget, side="right") - 1 - u
        take = max(1, int(fits))
        if contiguous:
            part = group.iloc[np.searchsorted(row_unit, u) : np.searchsorted(row_unit, u + take)]
        else:
            part = group[group["claim_id"].isin(np.concatenate(unit_claims[u : u + take]))]
        dropped: dict[str, str] = {}
        placed: dict[str, str] = {}
        with timing.record("x12"):  # the 837 writer alone (part of "claims")
            text = build(
                part,
                interchange_control_number=PROVISIONAL,
                rejected=dropped,
                placed=placed,
                **args,
            )
        if dropped:
            first = next(iter(dropped.items()))
            raise RunError(
                f"the 837 writer left out {len(dropped)} claim(s) that score found writable "
                f"(e.g. {first[0]}: {first[1]}): a bug; nothing was published"
            )
        if len(text) > limit and take > 1:  # the estimate was short: fewer units, learn the size
            bytes_per_line = max(bytes_per_line, len(text) / max(1, len(part))) * 1.1
            continue
        seq += 1
        yield part, text, placed, seq
        bytes_per_line = max(len(text) / len(part), 1.0)
        u += take


# --------------------------------------------------------------------------- voids


def build_voids(cfg: RunConfig, staged: pd.DataFrame) -> list[dict]:
    """The void files of the claims score voided with no line tonight (``staged`` rows with
    an ``original_run_date``, ``corrections._absent_voids``): each claim copied from the 837
    file its sending was in (its ledger row's ``file``, under the PHI root when there is one)
    as ``x12.voids`` does, one file per (receiver, claim type, submitter), under the
    provisional control number like every claim file. Each file's ``ledger`` rows are the
    sendings' rows as the void carries them; ``claims``, ``lines`` and ``charges`` are 0 (none
    of tonight's billed lines: the night's balance is untouched), ``voids`` the claims voided.
    A sending that cannot be found or read is ``RunError``: nothing is published."""
    asked = staged[staged["original_run_date"].notna()] if len(staged) else staged
    if asked.empty:
        return []
    wanted = pd.DataFrame(
        {
            "claim_key": asked["claim_key"].astype(str).to_numpy(),
            "run_date": asked["original_run_date"].astype(str).to_numpy(),
        }
    )
    rows = ledger._layer_rows(cfg.out, wanted)
    rows = rows.set_index(rows["claim_id"].astype(str), drop=False) if len(rows) else rows
    texts: dict[str, str] = {}
    groups: dict[tuple, list[tuple[voids.VoidClaim, dict]]] = {}
    for a in asked.sort_values("claim_id", kind="stable").itertuples(index=False):
        original = str(a.original_claim_id)
        if not len(rows) or original not in rows.index:
            raise RunError(
                f"publish: the sending {original} a void copies has no ledger row on "
                f"{a.original_run_date}: nothing was published"
            )
        row = rows.loc[original].to_dict()
        path = str(row["file"])
        try:
            if path not in texts:
                texts[path] = storage.read_bytes(path).decode("ascii")
            view = reader.find_claim(texts[path], original)
        except (OSError, ValueError, UnicodeDecodeError) as exc:
            raise RunError(
                f"publish: the 837 file of {original} (a void copies it) cannot be read: "
                f"{type(exc).__name__}: nothing was published"
            ) from None
        if view is None:
            raise RunError(
                f"publish: {original} is not in its 837 file {path}: nothing was published"
            )
        submitter = next((s[9] for s in view.header if s[0] == "NM1" and s[1] == "41"), "")
        key = (str(row["receiver_id"]), str(row["claim_type"]), submitter)
        void = voids.VoidClaim(view, str(a.claim_id), str(a.original_reference))
        entry = {
            **row,
            "claim_id": str(a.claim_id),
            "run_date": cfg.rd,
            "frequency_code": VOID,
            "original_claim_id": original,
            "original_reference": str(a.original_reference),
        }
        groups.setdefault(key, []).append((void, entry))
    created = datetime.combine(cfg.run_date, datetime.min.time())
    out = []
    for (receiver, kind, submitter), claims in sorted(groups.items()):
        try:
            text, placed = voids.build_void_file(
                [c for c, _ in claims], created=created, usage=cfg.usage
            )
        except ValueError as exc:
            raise RunError(f"publish: a void cannot be copied from its sending: {exc}") from None
        entries = pd.DataFrame([e for _, e in claims])
        entries["transaction_set_control_number"] = placed
        data = text.encode("ascii")
        out.append(
            {
                "data": data,
                "content_sha256": content_digest(data),
                "submitter_id": submitter,
                "receiver_id": receiver,
                "claim_type": kind,
                "claims": 0,
                "lines": 0,
                "charges": 0.0,
                "voids": len(claims),
                "ledger": ledger.stamp(ledger.normalise(entries), file="", icn=PROVISIONAL),
            }
        )
    return out
