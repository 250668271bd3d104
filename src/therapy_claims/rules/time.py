"""Time rules: charted minutes, the billable minutes (one clinician's overlapping time with one
patient counted once) and the units billed from them (the units fixer), one-on-one codes billed
for a group, and one clinician's one-on-one time with two patients at once."""

from __future__ import annotations

import numpy as np
import pandas as pd

from therapy_claims import findings, units
from therapy_claims.rules.engine import (
    Night,
    as_mask,
    code_on_date,
    isin,
    iso_date,
    message,
    rule,
    select,
    take,
)


@rule("TIME_MISSING")
def time_missing(night: Night) -> pd.DataFrame:
    lines = night.lines
    bad = lines["timed"] & lines["minutes"].isna()
    rows = select(lines, bad, "cpt_code", "date_of_service")
    return findings.make(
        "TIME_MISSING",
        rows,
        message(
            rows,
            rows["cpt_code"],
            " is a timed 15-minute code but no minutes were charted (",
            code_on_date(rows),
            ")",
        ),
        evidence=night.ref.version("cpt_codes.csv") + ": timed=true",
    )


UNIT_COLUMNS = ["line_id", "cpt_code", "timed", "unit_method"]
# one clinician's one-on-one time with one patient: their lines' intervals are swept together
SAME_TIME_KEYS = ("clinic_id", "date_of_service", "rendering_npi", "patient_id")


def _unit_inputs(night: Night, minutes: pd.Series, at: np.ndarray | None = None) -> pd.DataFrame:
    """What ``units.compute`` reads, for the lines at ``at`` (all lines if None), with
    ``minutes`` (aligned with the night's lines) as the minutes: the pool keys as their codes
    (cached on the night, they group alike) and a missing unit method as ``cms``."""
    lines = night.lines
    keys = {k: night.distinct(k)[0] for k in units.POOL_KEYS}
    if at is None:
        inputs = lines[UNIT_COLUMNS].assign(minutes=minutes, **keys)
    else:  # a few lines: taken column by column, never the whole frame
        inputs = take(lines, at, *UNIT_COLUMNS).assign(
            minutes=minutes.array.take(at), **{k: c[at] for k, c in keys.items()}
        )
    return inputs.assign(unit_method=inputs["unit_method"].fillna("cms"))


def _earlier_overlap(
    start: np.ndarray,
    end: np.ndarray,
    groups: list[np.ndarray],
    line_id: pd.Series,
    at: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Per interval [start, end): the minutes of it that intervals of its group (equal in every
    array of ``groups``: small non-negative codes) coming before it already cover, and which of
    them reaches furthest (its index; -1 where none overlaps).

    "Before" is the order (start, end, line id). Every earlier interval starts at or before
    this one's start, so together they cover exactly [start, latest earlier end) of it: the
    overlap is min(end, latest earlier end) - start, or 0. Touching intervals do not overlap."""
    span = 1
    for g in groups:
        span *= int(g.max()) + 1
    if span * 1440 * 1440 >= 2**62:  # too wide for one packed sort: the groups numbered first
        groups = [units.group_ids(groups)]
    keys = (end, start, *reversed(groups))  # the first group key is the primary one
    order = units.lexsort_by_line_id(keys, line_id, at)
    s, e = start[order], end[order]
    run = _runs(*(g[order] for g in groups))
    latest = _running_max(e, run)
    # the interval holding the running maximum (the last of its run reaching that far)
    holder = np.maximum.accumulate(np.where(e == latest, np.arange(len(e)), 0))
    later = np.r_[False, run[1:] == run[:-1]]
    prev_latest, prev_holder = np.r_[0, latest[:-1]], np.r_[0, holder[:-1]]
    covered = np.where(later, np.minimum(e, prev_latest) - s, 0).clip(min=0)
    overlap = np.empty_like(covered)
    other = np.full(len(order), -1, dtype="int64")
    overlap[order] = covered
    other[order] = np.where(covered > 0, order[prev_holder], -1)
    return overlap, other


@rule("TIME_OVERLAP_SAME_PATIENT", changes=("billable_minutes",), timing="units")
def time_overlap_same_patient(night: Night) -> pd.DataFrame:
    """The billable minutes of every line (``billable_minutes``, what the units rule counts):
    the charted minutes, less any time the same clinician already charted for the same patient
    (MBPM ch. 15 section 220.3: one-on-one minutes are clock time, counted once).

    Per clinic, date, clinician and patient the timed lines with a start-end interval are taken
    in (start, end, line id) order; a line loses the minutes of its interval that the earlier
    lines' intervals cover (never below 0), so the overlapping minutes stay with the line that
    started first. Each such line is reported with both intervals and its units before (from
    the charted minutes) and after (from the billable minutes)."""
    lines = night.lines
    billable = lines["minutes"].copy()
    lines["billable_minutes"] = billable
    sel = (
        lines["timed"].to_numpy(dtype=bool, na_value=False)
        & lines["minutes"].notna().to_numpy()
        & lines["start_minute"].notna().to_numpy()
        & lines["end_minute"].notna().to_numpy()
        & as_mask(lines["end_minute"] > lines["start_minute"])
    )
    codes = [night.distinct(k)[0] for k in SAME_TIME_KEYS]
    for c in codes:  # a line missing one of the keys is not known to be the same time
        sel &= c >= 0
    pos = np.flatnonzero(sel)
    if len(pos) < 2:
        return findings.empty()
    start = lines["start_minute"].iloc[pos].to_numpy(dtype="int64")
    end = lines["end_minute"].iloc[pos].to_numpy(dtype="int64")
    overlap, other = _earlier_overlap(start, end, [c[pos] for c in codes], lines["line_id"], pos)
    minutes = lines["minutes"].iloc[pos].to_numpy(dtype="int64")
    cut = np.flatnonzero((overlap > 0) & (minutes > 0))
    if not len(cut):
        return findings.empty()
    after_min = np.maximum(minutes[cut] - overlap[cut], 0)
    at = pos[cut]
    billable.iloc[at] = after_min
    lines["billable_minutes"] = billable
    return _overlap_same_patient_findings(night, at, pos[other[cut]], after_min)


def _overlap_same_patient_findings(
    night: Night, at: np.ndarray, earlier: np.ndarray, after_min: np.ndarray
) -> pd.DataFrame:
    """TIME_OVERLAP_SAME_PATIENT on the lines at ``at`` (each overlapping the earlier line at
    ``earlier``; ``after_min`` their billable minutes), with units before -> after: both
    computed over the whole pools of these lines' patients (a pool never spans patients)."""
    lines = night.lines
    patient = night.distinct("patient_id")[0]
    mine = np.zeros(len(night.distinct("patient_id")[1]), dtype=bool)
    mine[patient[at]] = True
    pool = np.flatnonzero(mine[np.maximum(patient, 0)] & (patient >= 0))
    before = units.compute(_unit_inputs(night, lines["minutes"], pool))
    after = units.compute(_unit_inputs(night, lines["billable_minutes"], pool))
    slot = np.searchsorted(pool, at)
    before = before.iloc[slot].astype("string")
    after = after.iloc[slot].astype("string")
    rows = take(
        lines,
        at,
        "cpt_code",
        "start_time",
        "end_time",
        "minutes",
        "rendering_npi",
        "date_of_service",
    )
    other = take(lines, earlier, "cpt_code", "start_time", "end_time")
    after_min = pd.Series(after_min, index=rows.index)
    intervals = message(
        rows,
        rows["cpt_code"],
        " ",
        rows["start_time"],
        "-",
        rows["end_time"],
        " overlaps ",
        other["cpt_code"],
        " ",
        other["start_time"],
        "-",
        other["end_time"],
        " (line ",
        other["line_id"],
        ")",
    )
    change = message(rows, "minutes ", rows["minutes"], "->", after_min)
    msg = message(
        rows,
        intervals,
        ", same patient and clinician NPI ",
        rows["rendering_npi"],
        " on ",
        iso_date(rows["date_of_service"]),
        ": the overlapping time counts once, so ",
        change,
        " and units ",
        before,
        "->",
        after,
    )
    evidence = message(
        rows, intervals, "; one-on-one minutes are clock time (MBPM ch. 15 220.3, MCPM ch. 5 20.2)"
    )
    mask = np.zeros(len(lines), dtype=bool)
    mask[at] = True
    night.record_change(
        mask,
        message(rows, change, " (time overlap), units ", before, "->", after),
    )
    return findings.make(
        "TIME_OVERLAP_SAME_PATIENT", rows, msg, evidence=evidence, before=before, after=after
    )


@rule(
    "UNITS_ZERO",
    "UNITS_CORRECTED",
    changes=("units",),
    reads=("billable_minutes",),
    timing="units",
)
def compute_units(night: Night) -> pd.DataFrame:
    lines = night.lines
    minutes = lines["billable_minutes"]
    # a payer and a code the reference knows (an unknown code's units mean nothing:
    # CODE_UNKNOWN holds its claim, no UNITS_CORRECTED on top)
    known = lines["unit_method"].notna().to_numpy() & isin(night, "cpt_code", night.ref.cpt.index)
    # the pool keys only group lines: their codes (cached on the night) group them alike
    keys = {k: night.distinct(k)[0] for k in units.POOL_KEYS}
    computed = units.compute(_unit_inputs(night, minutes))
    lines["units"] = computed
    timed = lines["timed"].to_numpy()
    has_min = minutes.notna().to_numpy()
    timed_min = timed & has_min & known
    charted = lines["units_charted"]
    zero = timed_min & (computed.to_numpy() == 0)
    diff = known & as_mask(charted.notna() & (charted != computed)) & ~(timed & ~has_min)
    # the wording (pooled minutes, payer, method) only for the lines reported
    report = zero | diff
    sub = select(
        lines,
        report,
        "cpt_code",
        "date_of_service",
        "billable_minutes",
        "unit_method",
        "discipline",
        "payer_id",
        "units_charted",
    )
    # the pooled minutes of the reported lines' pools: only their patients' lines are pooled
    patient = keys["patient_id"] + 1  # 0: missing
    reported = np.zeros(len(night.distinct("patient_id")[1]) + 1, dtype=bool)
    reported[patient[report]] = True
    pool = np.flatnonzero((timed_min | report) & reported[patient])
    pool_ids = units.group_ids([keys[k][pool] for k in units.POOL_KEYS])
    pool_min = np.bincount(
        pool_ids,
        weights=minutes.iloc[pool].fillna(0).to_numpy(dtype="int64") * timed_min[pool],
    ).astype("int64")[pool_ids]
    in_sub = report[pool]
    pool_min = pd.Series(pool_min[in_sub], index=sub.index)
    method_txt = np.where(
        sub["unit_method"] == "cms", "CMS 8-minute rule, pooled", "AMA per-code rule"
    )
    pooled = message(
        sub, " timed minutes for ", sub["discipline"].fillna(""), " that day = ", pool_min
    )
    basis = message(
        sub,
        sub["billable_minutes"],
        " min; ",
        method_txt,
        np.where(sub["unit_method"] == "cms", pooled, ""),
    )
    evidence = message(
        sub,
        "payers.csv ",
        sub["payer_id"],
        " unit_method=",
        sub["unit_method"].fillna(""),
        " (" + night.ref.version("payers.csv") + ")",
    )
    sub_computed = computed[report]
    sub_zero, sub_diff = zero[report], diff[report]
    z = sub[sub_zero]
    out = [
        findings.make(
            "UNITS_ZERO",
            z,
            message(
                z, z["cpt_code"], " gets 0 units: ", basis[sub_zero], " (", code_on_date(z), ")"
            ),
            evidence=evidence[sub_zero],
        )
    ]
    d = sub[sub_diff]
    before = d["units_charted"].astype("string")
    after = sub_computed[sub_diff].astype("string")
    out.append(
        findings.make(
            "UNITS_CORRECTED",
            d,
            message(
                d,
                d["cpt_code"],
                ": charted ",
                before,
                " unit(s), computed ",
                after,
                " from ",
                basis[sub_diff],
                " (",
                code_on_date(d),
                ")",
            ),
            evidence=evidence[sub_diff],
            before=before,
            after=after,
        )
    )
    night.record_change(diff, message(d, "units ", before, "->", after))
    return findings.concat(out)


@rule("NOT_ONE_ON_ONE")
def not_one_on_one(night: Night) -> pd.DataFrame:
    lines = night.lines
    bad = lines["one_on_one"] & (lines["group_size"].fillna(1) > 1)
    r = select(lines, bad, "cpt_code", "group_size", "date_of_service")
    return findings.make(
        "NOT_ONE_ON_ONE",
        r,
        message(
            r,
            r["cpt_code"],
            " is a one-on-one timed code but group_size is ",
            r["group_size"],
            " (",
            code_on_date(r),
            "); group treatment is 97150",
        ),
        evidence=night.ref.version("cpt_codes.csv") + ": one_on_one=true",
    )


def _runs(*keys: np.ndarray) -> np.ndarray:
    """Run ids (0, 1, ...) of consecutive equal key tuples in sorted arrays."""
    change = np.zeros(len(keys[0]), dtype=bool)
    change[0] = True
    for k in keys:
        change[1:] |= k[1:] != k[:-1]
    return np.cumsum(change) - 1


def _running_max(values: np.ndarray, runs: np.ndarray) -> np.ndarray:
    """The running maximum of int ``values`` restarting with each run (``runs``: ascending run
    ids, as ``_runs`` gives): each run is lifted above all earlier ones so that one
    ``maximum.accumulate`` over the whole array never carries a maximum into the next run."""
    if len(values) == 0:
        return values
    low = int(values.min())
    lift = int(values.max()) - low + 1
    if lift * (int(runs[-1]) + 1) >= 2**62:  # too wide to lift: per run with pandas
        return pd.Series(values).groupby(runs).cummax().to_numpy()
    lifted = (values - low) + runs * lift
    return np.maximum.accumulate(lifted) - runs * lift + low


@rule("PROVIDER_OVERLAP")
def provider_overlap(night: Night) -> pd.DataFrame:
    """One clinician's one-on-one intervals for different patients overlapping on a date.

    Each patient's intervals are first merged into blocks (touching intervals do not overlap);
    blocks are then swept in start order per clinician and date: a block starting before the
    latest end seen so far overlaps that earlier block, which is another patient's."""
    lines = night.lines
    sel = (
        lines["one_on_one"].to_numpy()
        & lines["start_minute"].notna().to_numpy()
        & lines["end_minute"].notna().to_numpy()
        & as_mask(lines["end_minute"] > lines["start_minute"])
    )
    if not sel.any():
        return findings.empty()
    pos = np.flatnonzero(sel)
    clin = night.sort_codes("rendering_npi")[pos]
    day = night.sort_codes("date_of_service")[pos]
    pat = night.sort_codes("patient_id")[pos]
    start = lines["start_minute"].iloc[pos].to_numpy(dtype="int64")
    end = lines["end_minute"].iloc[pos].to_numpy(dtype="int64")
    # a missing key leaves a line out of the groupings (groupby drops missing keys)
    missing = {k: night.distinct(k)[0][pos] < 0 for k in ("rendering_npi", "date_of_service")}
    no_clin_day = missing["rendering_npi"] | missing["date_of_service"]
    no_key = no_clin_day | (night.distinct("patient_id")[0][pos] < 0)
    order = units.lexsort((end, start, pat, day, clin))  # stable: the mergesort of these keys
    pos, clin, day, pat, start, end, no_clin_day, no_key = (
        a[order] for a in (pos, clin, day, pat, start, end, no_clin_day, no_key)
    )

    # blocks: a patient's intervals merged while each starts before the latest end so far
    patient_run = _runs(clin, day, pat)
    latest = _running_max(end, patient_run)
    first_of_run = np.r_[True, patient_run[1:] != patient_run[:-1]]
    new_block = first_of_run | no_key | (start >= np.r_[0, latest[:-1]])
    block = np.cumsum(new_block)  # 1, 2, ...
    heads = np.flatnonzero(new_block)
    b_clin, b_day, b_start = clin[heads], day[heads], np.minimum.reduceat(start, heads)
    b_end = np.maximum.reduceat(end, heads)
    b_label = np.arange(1, len(heads) + 1)
    b_swept = ~no_clin_day[heads]

    # sweep the blocks per clinician and date in (start, end) order
    border = units.lexsort((b_end, b_start, b_day, b_clin))
    s_clin, s_day, s_start, s_end = b_clin[border], b_day[border], b_start[border], b_end[border]
    s_label = b_label[border]
    ckey = _runs(s_clin, s_day)
    run_max = _running_max(s_end, ckey)
    # the block holding the running maximum: the last one (of the run) whose end is that max;
    # a run's first block always is, so a running max of positions stays within the run
    holder = s_label[np.maximum.accumulate(np.where(s_end == run_max, np.arange(len(s_end)), 0))]
    # compared with the blocks before it in its run (the first of a run has none)
    later = np.r_[False, ckey[1:] == ckey[:-1]]
    prev_max, prev_holder = np.r_[0, run_max[:-1]], np.r_[0, holder[:-1]]
    hit = later & (s_start < prev_max) & b_swept[border]
    if not hit.any():
        return findings.empty()
    pairs = pd.DataFrame({"block": s_label[hit], "other": prev_holder[hit]})
    both = pd.concat(
        [pairs, pairs.rename(columns={"block": "other", "other": "block"})], ignore_index=True
    )
    o = both["other"].to_numpy() - 1  # block label -> block position
    both["o_head"], both["o_start"], both["o_end"] = pos[heads[o]], b_start[o], b_end[o]
    t2 = pd.DataFrame({"pos": pos, "block": block, "start": start, "end": end}).merge(
        both, on="block"
    )
    t2 = t2[(t2["start"] < t2["o_end"]) & (t2["o_start"] < t2["end"])]
    return _overlap_findings(lines, t2.drop_duplicates("pos"))


def _hhmm(m: pd.Series) -> pd.Series:
    """Minutes after midnight as ``HH:MM``."""
    m = m.astype("int64")
    return (m // 60).astype("string").str.zfill(2) + ":" + (m % 60).astype("string").str.zfill(2)


def _overlap_findings(lines: pd.DataFrame, t2: pd.DataFrame) -> pd.DataFrame:
    """PROVIDER_OVERLAP for the overlapping lines (``pos``), each with the other patient's block
    it overlaps (its first line ``o_head``, ``o_start``, ``o_end``)."""
    rows = take(
        lines,
        t2["pos"].to_numpy(),
        "cpt_code",
        "start_time",
        "end_time",
        "patient_id",
        "rendering_npi",
        "date_of_service",
    )
    other_patient = lines["patient_id"].iloc[t2["o_head"].to_numpy()]

    msg = message(
        rows,
        rows["cpt_code"],
        " ",
        rows["start_time"],
        "-",
        rows["end_time"],
        " for patient ",
        rows["patient_id"],
        " overlaps ",
        _hhmm(t2["o_start"]),
        "-",
        _hhmm(t2["o_end"]),
        " for patient ",
        other_patient,
        ": clinician NPI ",
        rows["rendering_npi"],
        " on ",
        iso_date(rows["date_of_service"]),
    )
    return findings.make(
        "PROVIDER_OVERLAP", rows, msg, evidence="one-on-one time (MBPM ch. 15 220.3)"
    )
