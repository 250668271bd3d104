"""Coverage rules: codes a payer class does not pay (``code_edits.csv``) and a chiropractor's
non-CMT services to Medicare, line by line (not billed, or billed with GY/GA/GZ for the
denial); Medicare CMT without AT; and the Medicare therapy threshold (KX) over the patient's
amounts of the year (allowed amounts from ``fee_schedule.csv`` where it has them, else
charges), for which ``kx_history`` reads the amounts of earlier nights from the scored layer.
Whether a missing AT or KX holds the claim or only warns is the payer's ``cmt_at_action`` /
``kx_action``: one finding code each way (the catalogue keeps one severity per code)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from therapy_claims import findings, nights, schemas, storage, units
from therapy_claims.reference import Reference
from therapy_claims.rules import charges
from therapy_claims.rules.engine import (
    CMT_CODES,
    Night,
    as_mask,
    code_on_date,
    has_modifier,
    isin,
    iso_date,
    joined,
    message,
    modifier_counts,
    rule,
    sort_order,
    spread,
    take,
)

# what ``kx_history`` gives and ``Night.kx_history`` holds: one row per patient, year and
# bucket; ``charges`` is the amount the KX rule counts (allowed where fee_schedule.csv has it)
KX_HISTORY_COLUMNS = ["patient_id", "year", "bucket", "charges"]
_SCORED_COLUMNS = [
    "patient_id",
    "payer_id",
    "clinic_id",
    "date_of_service",
    "discipline",
    "cpt_code",
    "units",
    "charge_amount",
    "status",
]


# modifiers that bill a line for its denial: GY statutorily excluded, GA expected denial with an
# ABN on file, GZ without one (payer-edits.md "Edits"); payers.csv noncovered_modifier names one
LIABILITY_MODIFIERS = ("GY", "GA", "GZ")


@rule(
    "CODE_NOT_COVERED",
    "DC_SERVICE_NOT_COVERED",
    changes=("excluded", "modifiers"),
    reads=("units",),
)
def code_not_covered(night: Night) -> pd.DataFrame:
    """Lines a payer does not cover, decided line by line (the rest of the claim goes out):
    a row of ``code_edits.csv`` for the line's payer class and code, or a chiropractor's
    service other than spinal CMT billed to Medicare (MBPM ch. 15 240.1.1). Such a line is
    billed for its denial when it already carries GY/GA/GZ, or gets the payer's
    ``noncovered_modifier`` added (room permitting); otherwise it is left off the claim
    (``Night.exclude``). Only lines with units are looked at: a 0-unit line is not billed
    anyway. Runs after the therapy-modifier fixer (it reads the modifiers that one leaves; a
    fixer of a column does not declare reading it) and before the assistant-modifier fixer,
    which then counts an added GY among the line's four, and before the edits that look at
    reported lines only (NCCI, MUE, region)."""
    lines = night.lines
    live = as_mask(lines["units"] > 0)
    edit_row = _code_edit_rows(night, live)
    by_table = edit_row >= 0
    by_dc = (
        live
        & ~by_table
        & isin(night, "payer_class", ["medicare"])
        & isin(night, "rendering_credential", ["DC"])
        & ~isin(night, "cpt_code", CMT_CODES)
    )
    hit = by_table | by_dc
    pos = np.flatnonzero(hit)  # few lines: the decision is worked on them alone
    r = take(lines, pos, "cpt_code", "date_of_service", "payer_id", "modifiers")
    want = pd.Series(
        lines["noncovered_modifier"].array.take(pos), index=r.index, dtype="string"
    ).fillna("")
    carries = has_modifier(night, "|".join(LIABILITY_MODIFIERS))[pos]
    wants = ~carries & (want != "").to_numpy(dtype=bool)
    added = wants & (modifier_counts(night)[pos] < 4)
    left_off = np.zeros(len(lines), dtype=bool)
    left_off[pos[~carries & ~added]] = True
    night.exclude(left_off)
    if len(pos) == 0:
        return findings.empty()
    mods = r["modifiers"].fillna("")
    after = mods.where(mods == "", mods + ";") + want
    before = mods.replace("", "(none)")
    out = []
    for code, sel in (("CODE_NOT_COVERED", by_table[pos]), ("DC_SERVICE_NOT_COVERED", by_dc[pos])):
        q = r[sel]
        if code == "CODE_NOT_COVERED":
            edit = night.ref.code_edits.iloc[edit_row[pos][sel]].reset_index(drop=True)
            what = edit["problem"]
            evidence = message(
                q,
                night.ref.version("code_edits.csv") + ": ",
                edit["payer_class"],
                "/",
                edit["code"],
                " (",
                edit.get("source", pd.Series("", index=edit.index)),
                ")",
            )
            fix = edit["fix"].to_numpy()
        else:
            what = message(
                q,
                q["cpt_code"],
                " by a chiropractor (DC) is not covered by Medicare: only spinal manipulation"
                " 98940-98942 is",
            )
            evidence = message(
                q,
                "MBPM ch. 15 240.1.1 (chiropractic coverage is limited to manual manipulation"
                " of the spine); payer-edits.md Edits",
            )
            fix = None
        outcome, setting = _outcome(night, q, pos[sel], want[sel], carries[sel], added[sel])
        out.append(
            findings.make(
                code,
                q,
                message(
                    q, what, " (payer ", q["payer_id"], ", ", iso_date(q["date_of_service"]), ")"
                )
                + outcome,
                evidence=evidence + setting,
                suggested_fix=fix,
                before=before.where(added)[sel],
                after=after.where(added)[sel],
            )
        )
    if added.any():
        add = np.zeros(len(lines), dtype=bool)
        add[pos[added]] = True
        night.record_change(add, message(r[added], "modifiers +", want[added]))
        night.update("modifiers", add, after[added])
    return findings.concat(out)


def _outcome(
    night: Night,
    q: pd.DataFrame,
    positions: np.ndarray,
    want: pd.Series,
    carries: np.ndarray,
    added: np.ndarray,
) -> tuple[pd.Series, pd.Series]:
    """For the non-covered lines ``q`` (at ``positions``): the end of each message (what
    became of the line) and of its evidence (the payer setting that decided it)."""
    codes, present = joined(night, "modifiers", lambda v: v.isin(LIABILITY_MODIFIERS))
    outcome = np.select(
        [carries, added, (want != "").to_numpy(dtype=bool)],
        [
            message(
                q,
                "; billed with ",
                spread(codes[positions], present, None),
                " already on the line (for the denial), not held",
            ),
            message(q, "; billed with ", want, " added for the denial (payer setting)"),
            message(
                q,
                "; not billed: no room to add ",
                want,
                " (4 modifiers); the rest of the claim goes out",
            ),
        ],
        "; not billed, the rest of the claim goes out",
    )
    setting = message(
        q,
        "; payers.csv ",
        q["payer_id"],
        " noncovered_modifier=",
        want.replace("", "(empty)"),
        " (" + night.ref.version("payers.csv") + ")",
    )
    return pd.Series(outcome, index=q.index, dtype="string"), setting


def _code_edit_rows(night: Night, live: np.ndarray) -> np.ndarray:
    """Per line: the position of the ``code_edits.csv`` row for its payer class and code
    among the live lines (-1: none; the first row where the table repeats a pair)."""
    lines, edits = night.lines, night.ref.code_edits
    at = np.full(len(lines), -1, dtype="int64")
    if edits.empty:
        return at
    cand = np.flatnonzero(
        live
        & isin(night, "cpt_code", edits["code"])
        & isin(night, "payer_class", edits["payer_class"])
    )
    if len(cand) == 0:
        return at
    keys = pd.DataFrame(
        {
            "payer_class": np.asarray(lines["payer_class"].array.take(cand), dtype=object),
            "code": np.asarray(lines["cpt_code"].array.take(cand), dtype=object),
        }
    )
    table = pd.DataFrame(
        {
            "payer_class": edits["payer_class"].to_numpy(dtype=object),
            "code": edits["code"].to_numpy(dtype=object),
            "row": np.arange(len(edits)),
        }
    ).drop_duplicates(["payer_class", "code"])
    row = keys.merge(table, on=["payer_class", "code"], how="left")["row"].to_numpy()
    found = ~np.isnan(row)
    at[cand[found]] = row[found].astype("int64")
    return at


def _by_action(night: Night, column: str, pos: np.ndarray) -> np.ndarray:
    """Per line at ``pos``: the payer's ``column`` (kx_action, cmt_at_action) is ``warn``
    (else ``hold``: the default for Medicare, whose lines are denied otherwise)."""
    values = pd.Series(night.lines[column].array.take(pos))
    return values.eq("warn").to_numpy(dtype=bool, na_value=False)


def _action_evidence(night: Night, column: str, pos: np.ndarray) -> np.ndarray:
    """``payers.csv <payer> <column>=hold|warn (payers.csv@<sha>)`` for the lines at ``pos``
    (worded once per distinct payer)."""
    if not len(pos):
        return np.empty(0, dtype=object)
    codes, uniques = night.distinct("payer_id")
    action = uniques.map(night.ref.payers[column]).astype("string").fillna("?")
    text = "payers.csv " + uniques.astype("string") + f" {column}=" + action
    text = text + " (" + night.ref.version("payers.csv") + ")"
    return spread(codes[pos], text.to_numpy(dtype=object, na_value="?"), "payers.csv ?")


@rule("CMT_AT_MISSING", "CMT_AT_MISSING_WARN", reads=("modifiers",))
def cmt_at_missing(night: Night) -> pd.DataFrame:
    """Medicare CMT without AT: CMT_AT_MISSING (an error: holds the claim) where the payer's
    cmt_at_action is hold, CMT_AT_MISSING_WARN (billed) where it is warn."""
    lines = night.lines
    bad = (
        isin(night, "payer_class", ["medicare"])
        & isin(night, "cpt_code", CMT_CODES)
        & ~has_modifier(night, "AT|GA")
    )
    if not bad.any():
        return findings.empty()
    pos = np.flatnonzero(bad)
    warn = _by_action(night, "cmt_at_action", pos)
    out = []
    for code, which in (("CMT_AT_MISSING", ~warn), ("CMT_AT_MISSING_WARN", warn)):
        r = take(lines, pos[which], "cpt_code", "date_of_service", "payer_id")
        out.append(
            findings.make(
                code,
                r,
                message(
                    r,
                    r["cpt_code"],
                    " to Medicare without AT (",
                    code_on_date(r),
                    ") is processed as maintenance care and denied",
                    " (the claim is held)" if code == "CMT_AT_MISSING" else " (billed: warn only)",
                ),
                evidence=message(
                    r,
                    "billing-rules.md 5.5 (Palmetto; Noridian); ",
                    _action_evidence(night, "cmt_at_action", pos[which]),
                ),
            )
        )
    return findings.concat(out)


@rule(
    "KX_REQUIRED",
    "KX_REQUIRED_WARN",
    "KX_ADDED",
    changes=("modifiers",),  # and reads them, as every modifier fixer does
    reads=("units", "charge_amount", "excluded"),
)
def kx_required(night: Night) -> pd.DataFrame:
    """Medicare Part B therapy: once a patient's therapy amounts this calendar year (earlier
    nights plus tonight, in date order) pass the year's threshold, each further line needs KX.
    PT and SLP share one threshold, OT has its own. The amounts are the payer's allowed amounts
    (fee_schedule.csv allowed_amount x units) where the schedule has them, else the charges.
    A line past it without KX gets KX (KX_ADDED) when its plan of care is current and it names
    a goal; otherwise the payer's kx_action decides: hold (KX_REQUIRED) or warn
    (KX_REQUIRED_WARN)."""
    lines, kx = night.lines, night.ref.kx
    charge_amount = lines["charge_amount"]
    sel = (
        isin(night, "payer_class", ["medicare"])
        & lines["always_therapy"].to_numpy()
        & night.reported()  # a line left off the claim is not paid: it adds nothing
        & isin(night, "discipline", ["PT", "SLP", "OT"])
    )
    if not sel.any() or kx.empty:
        return findings.empty()
    pos = np.flatnonzero(sel)
    over, running, threshold, amount, allowed = _kx_over(night, pos, charge_amount)
    if not len(over):
        return findings.empty()
    return _kx_findings(night, pos, over, running, threshold, amount, allowed)


def _kx_over(night: Night, pos: np.ndarray, charge_amount: pd.Series):
    """The Medicare therapy lines at ``pos`` past their year's threshold without KX: their
    indices into ``pos``, the running amounts and thresholds there, and per line of ``pos``
    the amount counted and whether it is an allowed amount."""
    lines, kx = night.lines, night.ref.kx
    none = np.zeros(0, dtype="int64")
    year = lines["date_of_service"].iloc[pos].dt.year.reset_index(drop=True)
    ot = isin(night, "discipline", ["OT"])[pos]
    bucket = np.where(ot, "OT", "PT/SLP")
    # the running amounts are per patient, year and bucket (a line without a patient or a year
    # is in no group, as groupby leaves it out: it is never over)
    patient = night.distinct("patient_id")[0][pos]
    known = (patient >= 0) & year.notna().to_numpy()
    group = units.group_ids([patient, year, ot])
    first = np.unique(group, return_index=True)[1]  # a line of each group
    threshold = np.where(
        ot[first], year.iloc[first].map(kx["ot"]), year.iloc[first].map(kx["pt_slp"])
    )
    prior = night.kx_history
    if prior is not None and not prior.empty:
        t = pd.DataFrame(
            {
                "patient_id": lines["patient_id"].iloc[pos[first]].reset_index(drop=True),
                "year": year.iloc[first].reset_index(drop=True),
                "bucket": bucket[first],
            }
        )
        earlier = t.merge(prior, on=["patient_id", "year", "bucket"], how="left")["charges"]
        if len(earlier) != len(t):
            raise ValueError("kx_history repeats a (patient_id, year, bucket)")
        earlier = earlier.fillna(0).to_numpy()
    else:
        earlier = np.zeros(len(first))
    # allowed amounts where the fee schedule has them, else charges
    line_units = lines["units"].to_numpy(dtype="float64", na_value=np.nan)[pos]
    charge = charge_amount.to_numpy(dtype="float64", na_value=np.nan)[pos]
    amount, allowed = charges.kx_amounts(
        night.ref, charges.fee_rows(night, pos), line_units, charge
    )
    # only groups whose earlier amounts plus all of tonight's positive amounts could pass the
    # threshold need the running sum (in date order, the costly part); the slack covers the
    # rounding of float sums taken in another order
    most = earlier + np.bincount(group, weights=np.where(amount > 0, amount, 0.0))
    scale = np.abs(earlier) + np.bincount(group, weights=np.abs(np.nan_to_num(amount)))
    could = known[first] & (most + 1e-6 * (scale + 1) > threshold)
    rows = np.flatnonzero(could[group])
    if len(rows) == 0:
        return none, None, None, amount, allowed
    # those lines in date order (then claim, then line id): the order the amounts add up in
    rows = rows[sort_order(lines, pos[rows], ["date_of_service", "claim_id", "line_id"])]
    g = group[rows]
    running = pd.Series(amount[rows]).groupby(g, sort=False).cumsum().to_numpy() + earlier[g]
    need = (running > threshold[g]) & ~has_modifier(night, "KX")[pos[rows]]
    need &= ~pd.isna(threshold[g])
    return rows[need], running[need], threshold[g][need], amount, allowed


def _modifier_count(night: Night, pos: np.ndarray) -> np.ndarray:
    """How many modifiers the lines at ``pos`` carry (counted per distinct list)."""
    codes, uniques = night.distinct("modifiers")
    count = np.where(uniques.fillna("") == "", 0, uniques.fillna("").str.count(";") + 1)
    return np.append(count.astype("int64"), 0)[codes[pos]]


def _kx_findings(night, pos, over, running, threshold, amount, allowed) -> pd.DataFrame:
    """KX_ADDED (KX added: plan of care current, a goal named, room for a modifier), else
    KX_REQUIRED or KX_REQUIRED_WARN by the payer's kx_action, on the lines ``pos[over]``."""
    lines = night.lines
    at = pos[over]
    r = take(
        lines,
        at,
        "date_of_service",
        "patient_id",
        "cpt_code",
        "payer_id",
        "modifiers",
        "goal_id",
        "plan_of_care_start",
        "plan_of_care_end",
    )
    dos, start, end = r["date_of_service"], r["plan_of_care_start"], r["plan_of_care_end"]
    current = as_mask(start.notna() & end.notna() & (start <= dos) & (dos <= end))
    goal = as_mask(r["goal_id"].fillna("").str.strip() != "")
    room = _modifier_count(night, at) < 4
    auto = current & goal & room
    warn = _by_action(night, "kx_action", at)
    ot = isin(night, "discipline", ["OT"])[at]
    base = message(
        r,
        "Medicare ",
        np.where(ot, "OT", "PT/SLP"),
        " therapy amounts for patient ",
        r["patient_id"],
        " in ",
        dos.dt.year,
        " reach $",
        pd.Series(running).round(2),
        ", above the $",
        pd.Series(threshold).round(0).astype(int),
        " KX threshold (this line counts ",
        np.where(allowed[over], "the allowed amount $", "its charge $"),
        pd.Series(amount[over]).round(2),
        "); ",
        code_on_date(r),
        " lacks KX",
    )
    why_not = np.where(
        ~current,
        "no plan of care covers the date",
        np.where(~goal, "no goal_id", "the line has 4 modifiers already"),
    )
    evidence = message(
        r,
        night.ref.version("kx_thresholds.csv") + ": ",
        dos.dt.year,
        " ",
        np.where(ot, "OT", "PT/SLP"),
        " threshold (allowed amounts from fee_schedule.csv, else charges; earlier nights from "
        "scored/); ",
        _action_evidence(night, "kx_action", at),
    )
    mods = r["modifiers"].fillna("")
    after = pd.Series(np.where(mods == "", "KX", mods + ";KX"), index=r.index, dtype="string")
    out = []
    for code, which, tail in (
        ("KX_ADDED", auto, None),
        ("KX_REQUIRED", ~auto & ~warn, "; the claim is held"),
        ("KX_REQUIRED_WARN", ~auto & warn, "; billed without KX (warn only)"),
    ):
        w = r[which]
        if tail is None:
            text = message(
                w,
                base[which],
                "; KX added: the plan of care ",
                iso_date(w["plan_of_care_start"]),
                " to ",
                iso_date(w["plan_of_care_end"]),
                " is current and the line names goal ",
                w["goal_id"],
            )
        else:
            text = message(w, base[which], "; not added automatically (", why_not[which], ")", tail)
        out.append(
            findings.make(
                code,
                w,
                text,
                evidence=evidence[which],
                before=mods[which].replace("", "(none)") if tail is None else None,
                after=after[which] if tail is None else None,
            )
        )
    mask = np.zeros(len(lines), dtype=bool)
    mask[at[auto]] = True
    night.record_change(mask, "modifiers +KX")
    # the lines are in date order here; ``update`` takes them in line order
    night.update("modifiers", mask, after[auto].iloc[np.argsort(at[auto], kind="stable")])
    return findings.concat(out)


def kx_history(out: str, run_date: str, ref: Reference, lines: pd.DataFrame) -> pd.DataFrame:
    """Billed Medicare therapy amounts of run dates before ``run_date`` (ISO text), per patient,
    year and KX bucket (PT/SLP, OT): the scored layer of each published night (as its manifest
    names it) read for the calendar years tonight's ``lines`` fall in; ``KX_HISTORY_COLUMNS``, for
    ``Night.kx_history``. An amount is the allowed amount of tonight's ``fee_schedule.csv``
    (allowed_amount x units, by the line's clinic, payer class, code and date) where it has one,
    else the line's charge. Empty when nothing was billed to Medicare for those years before."""
    medicare = set(ref.payers.index[ref.payers["payer_class"] == "medicare"])
    if lines.empty or not medicare:
        return pd.DataFrame(columns=KX_HISTORY_COLUMNS)
    years = set(lines["date_of_service"].dt.year.dropna().astype(int))
    parts = []
    for rd, path in nights.layer_files(out, "scored", "scored.parquet"):
        if rd >= run_date or int(rd[:4]) < min(years):
            continue
        df = storage.to_frame(schemas.read(path, "scored", _SCORED_COLUMNS))
        df = df[
            (df["status"] == "billed")
            & df["payer_id"].isin(medicare)
            & df["discipline"].isin(["PT", "SLP", "OT"])
        ]
        df = df[df["cpt_code"].map(ref.cpt["always_therapy"]).fillna(False).astype(bool)]
        parts.append(df)
    if not parts:
        return pd.DataFrame(columns=KX_HISTORY_COLUMNS)
    h = pd.concat(parts, ignore_index=True)
    h["year"] = h["date_of_service"].dt.year
    h["bucket"] = np.where(h["discipline"] == "OT", "OT", "PT/SLP")
    h = h[h["year"].isin(years)].reset_index(drop=True)
    h["payer_class"] = h["payer_id"].map(ref.payers["payer_class"])
    keys = [pd.factorize(h[c]) for c in charges.LINE_KEYS]
    keys = [(codes, pd.Series(uniques)) for codes, uniques in keys]
    rows = charges.schedule_rows(ref.fee_schedule, keys, h["date_of_service"].to_numpy())
    h["charges"] = charges.kx_amounts(
        ref,
        rows,
        h["units"].to_numpy(dtype="float64", na_value=np.nan),
        h["charge_amount"].to_numpy(dtype="float64", na_value=np.nan),
    )[0]
    return h.groupby(["patient_id", "year", "bucket"], as_index=False)["charges"].sum()
