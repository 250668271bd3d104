"""Score: units and billing rules over the night's accepted lines, then every hold.

A claim is held here, and only here, when any stage found an error on one of its lines or
the 837 writer could not carry it (``CLAIM_DATA_INVALID``): publish writes what score billed.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from therapy_claims import (
    corrections,
    findings,
    layout,
    ledger,
    reference,
    releases,
    reports,
    rules,
    schemas,
    storage,
    timing,
    tuning,
    x12,
)
from therapy_claims.catalogue import ERROR
from therapy_claims.config import RunConfig, RunError
from therapy_claims.handover import Handover
from therapy_claims.stages import checked, claim_files
from therapy_claims.stages.ingest import INGEST_FINDINGS, RAW
from therapy_claims.stages.validate import GX_FINDINGS

log = logging.getLogger("therapy_claims")

SCORED = ("scored", "scored.parquet")
EXCEPTIONS = ("exceptions", "exceptions.parquet")
SCORED_COLUMNS = schemas.SCORED.names  # the scored layer's columns, in order

# what the rules do not read: names and addresses, for the 837 checks and writer only
NOT_SCORED = (
    "patient_last_name",
    "patient_first_name",
    "patient_address",
    "patient_city",
    "patient_state",
    "patient_zip",
    "subscriber_last_name",
    "subscriber_first_name",
    "subscriber_dob",
    "group_number",
    "rendering_first_name",
    "ingested_at",
)

# a line's status as a small integer until it is written
_NOT_BILLED, _BILLED, _HELD = 0, 1, 2
_STATUS_TEXT = pa.array(["not_billed", "billed", "held"])


def score(
    cfg: RunConfig, handover: Handover, *, validated: Callable[[], object] | None = None
) -> dict:
    """Units and billing rules over the night's accepted lines, then hold every claim with an
    error from any stage, then every claim the 837 cannot carry. ``validated``, if given, is
    called (and must return) before the validate stage's findings are read: the runtime may
    run validate in a second process meanwhile."""
    handover.require(cfg.staged(*RAW), "ingest")
    t0 = time.perf_counter()
    try:
        ref = reference.load(cfg.reference)
    except reference.ReferenceError as exc:
        raise RunError(str(exc)) from exc
    rel = _read_releases(cfg)
    lines, claim_fields = _read_raw(cfg, handover)
    lines = reference.enrich(lines, ref)
    lines["claim_id"] = ledger.claim_ids(lines)
    night = rules.Night(
        lines=lines,
        ref=ref,
        run_date=cfg.run_date,
        kx_history=rules.kx_history(cfg.out, cfg.rd, ref, lines),
    )
    found = rules.run_all(night)
    lines["changes"] = night.change_lists()
    # a line is billed when it has units and no rule left it off the claim (units > 0 and not
    # excluded: Night.reported); a non-covered line is not_billed and its claim still goes out
    status_of = np.where(night.reported(), _BILLED, _NOT_BILLED).astype(np.int8)
    # a claim another night sent (claim ledger): held ALREADY_BILLED, never sent twice, unless
    # the payer's answer to it calls for a resubmission or a replacement, or a reviewed
    # release asks for a void (each under a new CLM01)
    voids = None if rel is None else rel.voids  # reviewed release rows asking for a void
    # each line's claim as a number (a later version's CLM01 is one claim as its key was)
    claim_of_line, claims = pd.factorize(lines["claim_id"], use_na_sentinel=False)
    with timing.record("corrections"):  # the line digests, the ledger, the lifecycle
        decision = corrections.decide(
            cfg, lines, status_of == _BILLED, voids, (claim_of_line, claims)
        )
    # the rules are done: what they alone read (the reference data's columns, times,
    # providers, ...) goes, about 500 MiB at a million lines, while validate's process is at
    # its largest. What follows reads only the scored layer's columns.
    del night
    lines = lines[[c for c in lines.columns if c in _KEPT_AFTER_RULES]]

    found = findings.concat([found, decision.findings])
    lines["claim_id"] = decision.claim_ids
    earlier = handover.read_frame(cfg.staged(*INGEST_FINDINGS), last=True)
    # what does not depend on the validate stage's findings comes before waiting for them:
    # each finding's line as a row number, and each line's claim as a number
    lines["modifiers"] = _split_list(lines["modifiers"])
    ids = pd.Index(lines["line_id"])
    if not ids.is_unique:  # ingest quarantines every repeat of a line_id
        raise RunError("the accepted lines repeat a line_id; re-run ingest for this night")
    at_earlier, at_found = ids.get_indexer(earlier["line_id"]), ids.get_indexer(found["line_id"])
    # which claims the 837 cannot carry, over every line billed unless its claim is held (by
    # what is known before validate's findings): a claim that stays billed is checked on
    # exactly the lines it is sent with
    tuning.release_memory()  # the rules' intermediates, while validate runs
    with timing.record("claim_checks"):
        known = findings.concat([earlier, found])
        at_known = np.concatenate([at_earlier, at_found])
        waived = (
            None
            if rel is None
            else releases.apply(rel, known, at_known, lines, cfg.run_date).waived
        )
        held = _claims_with_an_error(known, at_known, claim_of_line, len(claims), waived)
        billed = (status_of == _BILLED) & ~held[claim_of_line]
        verdicts, cuts = _claim_verdicts(
            cfg, lines, claim_fields, billed, claim_of_line, ref, decision
        )
    del claim_fields
    if validated is not None:
        tuning.release_memory()  # what the checks let go of, while GX runs
        with timing.record("gx_wait"):  # what validate in the second process adds to the wall
            validated()
    gx_path = cfg.staged(*GX_FINDINGS)
    gx = storage.read_parquet(gx_path) if storage.exists(gx_path) else findings.empty()
    all_found = findings.concat([earlier, gx, found])
    at = np.concatenate([at_earlier, ids.get_indexer(gx["line_id"]), at_found])

    # hold every claim with an error on any of its lines, but for the errors released
    applied = None if rel is None else releases.apply(rel, all_found, at, lines, cfg.run_date)
    waived = None if applied is None else applied.waived
    held_claim = _claims_with_an_error(all_found, at, claim_of_line, len(claims), waived)
    status_of[held_claim[claim_of_line]] = _HELD
    lines["status"] = _status_column(status_of, lines.index)
    if applied is not None and len(applied.found):  # what each release did, never silent
        all_found = findings.concat([all_found, applied.found])
        at = np.concatenate([at, ids.get_indexer(applied.found["line_id"])])
    on_line = at >= 0
    # CLM01 as sent: a claim over the 837 line limit goes out in parts (<claim_id>-1, -2, ...)
    lines["claim_id"] = ledger.split_claims(lines, x12.LINE_LIMITS, claims=claim_of_line)
    # then hold every claim the 837 cannot carry
    unwritable = _unwritable(lines, verdicts)
    n_unwritable = len(unwritable) and lines["claim_id"].take(unwritable["at"]).nunique()
    if len(unwritable):
        status_of[unwritable["at"].to_numpy()] = _HELD
        lines["status"] = _status_column(status_of, lines.index)
        all_found = findings.concat([all_found, unwritable.drop(columns="at")])
        at = np.concatenate([at, unwritable["at"].to_numpy()])
        on_line = at >= 0
    # values the 837 carries cut to their element's size, on the lines of the billed claims
    truncated = _text_truncated(lines, cuts)
    if len(truncated):
        all_found = findings.concat([all_found, truncated.drop(columns="at")])
        at = np.concatenate([at, truncated["at"].to_numpy()])
        on_line = at >= 0
    # a claim an earlier run of this night sent and this run does not bill is flagged
    voided = decision.claims["claim_key"][decision.claims["original_run_date"].notna()]
    resent = ledger.not_sent_again(cfg.out, cfg.rd, lines, cfg.ledger, set(voided.astype(str)))
    if len(resent):
        all_found = findings.concat([all_found, resent])
        at = np.concatenate([at, np.full(len(resent), -1)])
        on_line = at >= 0
    # per line, the codes of its findings in the order of all_found
    pos, codes = at[on_line], all_found["code"].to_numpy(dtype=object)[on_line]
    order = np.argsort(pos, kind="stable")
    lines["exception_codes"] = rules.list_column(
        np.bincount(pos, minlength=len(lines)), codes[order], lines.index
    )

    corrections.stage(cfg, decision.claims)
    exc = _exceptions(cfg, all_found, lines, at, status_of, claim_of_line, waived)
    summary = _finish(
        cfg,
        handover,
        lines.reindex(columns=SCORED_COLUMNS),
        exc,
        ref,
        t0,
        _release_info(rel, applied),
    )
    if n_unwritable:
        log.warning(
            "score: %s claim(s) cannot be written as 837 and are held (CLAIM_DATA_INVALID)",
            n_unwritable,
        )
    return summary


# of the finding's line, if it has one
_LINE_COLUMNS = ("claim_id", "cpt_code", "date_of_service", "clinic_id", "payer_id")
# the columns of the lines score reads after the rules: the scored layer's (the 837 checks,
# holds, findings and exceptions read a subset of them)
_KEPT_AFTER_RULES = frozenset(SCORED_COLUMNS)


def _exceptions(
    cfg: RunConfig,
    found: pd.DataFrame,
    lines: pd.DataFrame,
    at: np.ndarray,
    status_of: np.ndarray,
    claim_of_line: np.ndarray,
    waived: np.ndarray | None,
) -> pd.DataFrame:
    """The exception report's rows: the findings (their lines at the row positions ``at``,
    -1 for none) with their line's claim, code, date, clinic and payer, who acts on them
    (``owner``), whether they hold a claim tonight (an error on a line of a held claim that
    no release ``waived``: a mask over the first findings, those the releases were applied
    to) and what is at stake (``claim_charge``: the charges of all lines of the finding's
    claim, a claim sent in parts counting whole, as it is held whole). Column-wise: a
    million-line night has ~300k findings."""
    exc = found.copy()
    exc.insert(0, "run_date", cfg.rd)
    for c in _LINE_COLUMNS:
        exc[c] = pd.Series(lines[c].array.take(at, allow_fill=True), index=exc.index)
    exc["owner"] = findings.owners(exc["code"])
    on_line = at >= 0
    held = np.zeros(len(exc), dtype=bool)
    held[on_line] = status_of[at[on_line]] == _HELD
    if waived is not None:  # (the findings after them, e.g. RELEASED, waive nothing)
        held[: len(waived)] &= ~waived
    exc["holds_claim"] = held & exc["severity"].eq(ERROR).to_numpy(dtype=bool, na_value=False)
    charge = lines["charge_amount"].to_numpy(dtype=float, na_value=np.nan)
    totals = np.bincount(
        claim_of_line,
        weights=np.nan_to_num(charge),
        minlength=int(claim_of_line.max(initial=-1)) + 1,
    ).round(2)
    claim_charge = np.full(len(exc), np.nan)
    claim_charge[on_line] = totals[claim_of_line[at[on_line]]]
    exc["claim_charge"] = claim_charge
    return exc


def _finish(
    cfg: RunConfig,
    handover: Handover,
    scored: pd.DataFrame,
    exc: pd.DataFrame,
    ref: reference.Reference,
    t0: float,
    release_info: dict,
) -> dict:
    """Write the night's scored lines and exceptions and the summary the manifest reads."""
    with timing.record("write"):
        summary = _write_scored(cfg, handover, scored, exc)
    summary |= release_info
    summary["reference_files"] = [
        {k: f.get(k) for k in ("path", "sha256", "rows", "effective_quarter")} for f in ref.files
    ]
    summary["timings"] = timing.take()
    summary["seconds"] = round(time.perf_counter() - t0, 3)
    storage.write_json(cfg.staged("work", "score.json"), summary)
    log.info(
        "score: %(rows_scored)s lines: %(lines_billed)s billed, %(lines_held)s held, "
        "%(lines_not_billed)s not billed; %(findings)s finding(s)",
        summary,
    )
    return {k: v for k, v in summary.items() if k != "reference_files"}


def _read_releases(cfg: RunConfig) -> releases.Releases | None:
    """The night's reviewed releases, or None without any (the usual night: one check for
    ``<out>/releases/``). A ``--releases`` path that is not there stops the run: the team
    expects those releases applied."""
    try:
        where = releases.source(cfg.releases, cfg.out)
    except releases.ReleaseError as exc:
        raise RunError(str(exc)) from exc
    return None if where is None else releases.read(where)


def _release_info(rel: releases.Releases | None, applied: releases.Applied | None) -> dict:
    """The summary's release counts (logged as counts only: a release's reason and who gave
    it are free text, written to the exception report's ``after`` and nowhere else)."""
    info = {
        "releases_applied": applied.applied if applied else 0,
        "releases_unused": applied.unused if applied else 0,
        "release_files": [] if rel is None else rel.files,
    }
    if rel is not None and applied is not None:
        refused = applied.found["code"].isin(["RELEASE_INVALID", "RELEASE_NOT_ALLOWED"]).sum()
        log.info(
            "score: releases from %s file(s): %s applied, %s unused, %s finding(s) of rows "
            "not applied (RELEASE_INVALID, RELEASE_NOT_ALLOWED)",
            len(rel.files),
            info["releases_applied"],
            info["releases_unused"],
            int(refused),
        )
    return info


def _read_raw(cfg: RunConfig, handover: Handover) -> tuple[pd.DataFrame, pa.Table]:
    """The staged raw layer: the columns the rules read, as a frame, and the claim fields the
    837 checks read. ``last``: holding the raw layer in memory through the rest of the run
    (for publish, which reads a few columns of the billed lines) costs more memory than
    publish's read. (Mapping the claim fields from the raw layer's Arrow file instead kept
    every page the checks read: 400 MiB more at a million lines.)"""
    table = handover.read_table(cfg.staged(*RAW), last=True)
    lines = storage.to_frame(table, [c for c in table.column_names if c not in NOT_SCORED])
    return lines, table.select(claim_files.CLAIM_FIELDS)


def _unwritable(lines: pd.DataFrame, verdicts: dict[str, str]) -> pd.DataFrame:
    """``CLAIM_DATA_INVALID`` findings for every line of each billed claim the 837 writer
    cannot carry (``verdicts``: CLM01 -> reason), with each line's position in ``at``. A claim
    sent in parts goes whole or not at all: the other parts of a claim with an unwritable part
    are held too."""
    billed = np.flatnonzero((lines["status"] == "billed").to_numpy())
    billed_ids = lines["claim_id"].take(billed)
    checked = billed_ids.isin(list(verdicts))  # a line of a billed claim that failed
    if not checked.any():
        return pd.DataFrame()
    failed = set(billed_ids[checked].unique())  # few: no walk over every billed claim
    rejected = {c: m for c, m in verdicts.items() if c in failed}
    bad_keys = set(ledger.claim_key(pd.Series(list(rejected), dtype="string")))
    siblings = billed_ids[ledger.claim_key(billed_ids).isin(bad_keys) & ~checked]
    for cid in siblings.unique().tolist():
        b = str(ledger.claim_key(pd.Series([cid])).iloc[0])
        rejected[cid] = f"claim {cid}: another part of claim {b} cannot be written"
    hit = lines["claim_id"].isin(list(rejected)).to_numpy()
    rows = lines[hit]
    new = findings.make(
        "CLAIM_DATA_INVALID",
        rows,
        rows["claim_id"].map(rejected).astype("string"),
        evidence=rows["claim_type"]
        .map({"institutional": "X12 837I 005010X223A2 element rules"})
        .fillna("X12 837P 005010X222A1 element rules"),
    )
    new["at"] = np.flatnonzero(hit)
    return new


def _text_truncated(lines: pd.DataFrame, cuts: pd.DataFrame) -> pd.DataFrame:
    """``TEXT_TRUNCATED`` findings, with each line's position in ``at``: a value of a claim
    (``row`` -1) on every billed line of the claim, a line's own (a 2420A/C renderer) on that
    line. Names and addresses are PHI (``layout.PHI_COLUMNS``): for those, the message and
    before/after give the lengths only (the whole value is in the raw layer, the cut one in
    the claim file); other values (providers', clinics', payers') are given as they are."""
    if cuts.empty:
        return pd.DataFrame()
    billed = np.flatnonzero((lines["status"] == "billed").to_numpy())
    on_claim = pd.DataFrame(
        {"claim_id": lines["claim_id"].to_numpy(dtype=object)[billed], "at": billed}
    )
    whole = cuts[cuts["row"] < 0].merge(on_claim, on="claim_id", sort=False)
    own = cuts[cuts["row"] >= 0]
    own = own.assign(at=own["row"].to_numpy(np.int64))
    own = own[np.isin(own["at"].to_numpy(), billed)]
    hits = pd.concat([f for f in (whole, own) if len(f)] or [whole], ignore_index=True)
    if hits.empty:
        return pd.DataFrame()
    phi = hits["field"].isin(layout.PHI_COLUMNS)
    size = hits["before"].str.len().astype(str) + " characters"
    cut = hits["after"].str.len().astype(str) + " characters"
    before = hits["before"].where(~phi, size)
    after = hits["after"].where(~phi, cut)
    shown = np.where(
        phi,
        " (not shown: PHI; the raw layer's row has the value, the claim file the cut one)",
        ": '" + before + "' -> '" + after + "'",
    )
    message = (
        "claim " + hits["claim_id"] + ": " + hits["field"] + " is " + size
        + " after cleaning; " + hits["element"] + " holds " + hits["max_len"].astype(str)
        + ", so it was sent cut to " + cut + shown
    )  # fmt: skip
    at = hits["at"].to_numpy(np.int64)
    rows = lines.iloc[at].reset_index(drop=True)
    claim_type = rows["claim_type"].to_numpy(dtype=object)
    spec = np.where(claim_type == "institutional", "837I 005010X223A2", "837P 005010X222A1")
    evidence = "X12 " + pd.Series(spec) + " " + hits["element"].str.split(" ").str[0]
    new = findings.make(
        "TEXT_TRUNCATED",
        rows,
        message,
        evidence=evidence + " maximum length " + hits["max_len"].astype(str),
        before=before,
        after=after,
    )
    new["at"] = at
    return new


# the 837 checks take the lines of this many claims at a time: their intermediates are held
# while the validate process is at its largest
CHECK_CLAIMS = 50_000


def _claims_with_an_error(
    found: pd.DataFrame,
    at: np.ndarray,
    claim_of_line: np.ndarray,
    n_claims: int,
    waived: np.ndarray | None = None,
) -> np.ndarray:
    """Per claim, whether any of its lines has an error among ``found`` (whose lines are at
    the row positions ``at``; -1 for a finding on no line) that no release ``waived``."""
    is_error = (at >= 0) & found["severity"].eq(ERROR).to_numpy(bool)
    if waived is not None:
        is_error &= ~waived
    errors = at[is_error]
    held = np.zeros(n_claims, dtype=bool)
    held[claim_of_line[errors]] = True
    return held


def _claim_verdicts(
    cfg: RunConfig,
    lines: pd.DataFrame,
    raw: pa.Table,
    billed: np.ndarray,
    claim_of_line: np.ndarray,
    ref: reference.Reference,
    decision: corrections.Decision,
) -> tuple[dict[str, str], pd.DataFrame]:
    """``{CLM01: reason}`` of the claims the 837 writer would leave out, over the ``billed``
    lines under the CLM01s they would be sent with (a claim over the line limit in parts),
    checked a claim type and a share of the claims at a time; and the values the others are
    written with cut (``x12.text_truncations``, ``row`` as the position in ``lines``). The
    checked columns are staged for publish as each share is done (``checked.Writer``):
    publish builds the claim files from them instead of checking every claim again. A claim
    ``decision`` corrects is checked with its frequency and REF*F8 too."""
    # a line without a receiver or claim type goes into no file (its payer or clinic is
    # unknown: an error that holds its claim)
    billed = (
        billed & lines["receiver_id"].notna().to_numpy() & lines["claim_type"].notna().to_numpy()
    )
    cuts = [pd.DataFrame(columns=x12.truncation.COLUMNS)]
    staged = checked.Writer(cfg)
    if not billed.any():
        staged.close()
        return {}, cuts[0]
    status = _status_column(np.where(billed, _BILLED, _NOT_BILLED), lines.index)
    probe = lines[["claim_id", "claim_type", "date_of_service", "line_id"]].assign(status=status)
    claim_ids = ledger.split_claims(probe, x12.LINE_LIMITS, claims=claim_of_line)
    columns = [c for c in claim_files.PUBLISH_SCORED if c != "claim_id"]
    probe = lines[columns].assign(claim_id=claim_ids)
    if decision.corrects:  # a replacement's frequency and REF*F8, checked with the claim
        probe = probe.join(corrections.writer_columns(claim_ids, decision.claims))
    scored = storage.to_table(probe)
    institutional = lines["claim_type"].eq("institutional").fillna(False).to_numpy(bool)
    n_claims = int(claim_of_line.max(initial=0)) + 1
    shares = max(1, -(-n_claims // CHECK_CLAIMS))
    # all lines of a claim in one share; claims are numbered in row order, so a share is
    # mostly one run of rows
    share = claim_of_line * shares // n_claims
    verdicts: dict[str, str] = {}
    for inst in (False, True):
        for k in range(shares):
            at = np.flatnonzero(billed & (institutional == inst) & (share == k))
            if len(at):
                rows = pa.array(at)
                bad, cut, exported = claim_files.check_batch(
                    scored.take(rows), raw.take(rows), inst, ref, export=True
                )
                staged.add(exported, at)
                del exported
                verdicts |= bad
                if len(cut):
                    line_row = cut["row"].to_numpy(np.int64)
                    cuts.append(cut.assign(row=np.where(line_row >= 0, at[line_row], -1)))
                tuning.release_memory()  # the share's intermediates, while validate runs
    staged.close()
    return verdicts, cuts[0] if len(cuts) == 1 else pd.concat(cuts[1:], ignore_index=True)


def _split_list(s: pd.Series) -> pd.Series:
    """A ``;``-joined text column as lists (an empty or missing cell is an empty list)."""
    text = pc.fill_null(storage.text_array(s), "")
    parts = pc.split_pattern(text, ";")
    empty = pc.equal(text, "").to_numpy(zero_copy_only=False)
    split_lengths = pc.list_value_length(parts).to_numpy(zero_copy_only=False)
    values = pc.list_flatten(parts).filter(pa.array(np.repeat(~empty, split_lengths)))
    return rules.list_column(np.where(empty, 0, split_lengths), values, s.index)


def _status_column(status_of: np.ndarray, index: pd.Index) -> pd.Series:
    """The ``status`` text column from the integer statuses (built in Arrow, not per row)."""
    text = pa.DictionaryArray.from_arrays(pa.array(status_of), _STATUS_TEXT).cast(pa.string())
    return pd.Series(pd.array(text, dtype="str"), index=index)


_SEVERITY_RANK = {"error": 0, "warning": 1, "info": 2}


def _exception_order(exc: pd.DataFrame) -> np.ndarray:
    """The exception report's row order, as positions: what to work first first. Findings
    that hold a claim, then by severity (error, warning, info), the claim's charges (most
    first; none last), then clinic, claim, line and code (missing first), ties in finding
    order. Sorted on integer codes (``np.lexsort``, stable), not on the text."""
    sev, distinct = pd.factorize(exc["severity"])
    sev_rank = np.array([_SEVERITY_RANK.get(v, 3) for v in distinct] + [3])[sev]
    charge = -exc["claim_charge"].to_numpy(dtype=float, na_value=np.nan)
    keys = [pd.factorize(exc[c], sort=True)[0] for c in ("code", "line_id", "claim_id")]
    keys += [
        pd.factorize(exc["clinic_id"], sort=True)[0],
        np.where(np.isnan(charge), np.inf, charge),
        sev_rank,
        ~exc["holds_claim"].to_numpy(dtype=bool),
    ]
    return np.lexsort(keys)  # the last key is the first one sorted by


def _write_scored(
    cfg: RunConfig, handover: Handover, scored: pd.DataFrame, exc: pd.DataFrame
) -> dict:
    """Write the staged scored lines and exception report, check the night balances and
    return the counts the manifest reports."""
    handover.write_table(
        schemas.conform(storage.to_table(scored), schemas.SCORED), cfg.staged(*SCORED)
    )
    # sorted as the Arrow table the layer is (a take in Arrow, not of a frame's ~20 columns)
    table = schemas.conform(storage.to_table(exc), schemas.EXCEPTIONS)
    table = table.take(pa.array(_exception_order(exc)))
    handover.write_table(table, cfg.staged(*EXCEPTIONS))
    storage.write_bytes(
        cfg.staged("exceptions", "exceptions.csv"),
        reports.spreadsheet_safe_csv(table, money=("claim_charge",)),
    )
    ingest_info = storage.read_json(cfg.staged("work", "ingest.json"))
    counts = scored["status"].value_counts()
    # a claim is held if any line is held, else billed if any line is billed (vectorised)
    status = scored["status"].to_numpy(dtype=object)
    rank = np.select([status == "held", status == "billed"], [2, 1], 0).astype(np.int8)
    claim_of_line = pd.factorize(scored["claim_id"], use_na_sentinel=False)[0]
    claim_rank = np.zeros(claim_of_line.max() + 1 if len(rank) else 0, dtype=np.int8)
    np.maximum.at(claim_rank, claim_of_line, rank)
    claim_status = pd.Series(claim_rank).map({0: "not_billed", 1: "billed", 2: "held"})
    summary = {
        "rows_scored": len(scored),
        "lines_billed": int(counts.get("billed", 0)),
        "lines_held": int(counts.get("held", 0)),
        "lines_not_billed": int(counts.get("not_billed", 0)),
        "claims_billed": int((claim_status == "billed").sum()),
        "claims_held": int((claim_status == "held").sum()),
        "findings": len(exc),
        "exceptions_by_code": {
            k: int(v) for k, v in exc["code"].value_counts().sort_index().items()
        },
    }
    rows_in, quarantined = ingest_info["rows_in"], ingest_info["rows_quarantined"]
    if rows_in != quarantined + summary["rows_scored"] or summary["rows_scored"] != (
        summary["lines_billed"] + summary["lines_held"] + summary["lines_not_billed"]
    ):
        raise RunError(
            f"the night does not balance: rows_in={rows_in}, quarantined={quarantined}, "
            f"scored={summary['rows_scored']}, status counts={dict(counts)}"
        )
    return summary
