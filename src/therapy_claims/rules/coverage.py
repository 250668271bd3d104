"""Coverage rules: codes a payer class does not pay (``code_edits.csv``) and a chiropractor's
non-CMT services to Medicare, line by line (not billed, or billed with GY/GA/GZ for the
denial), Medicare CMT without
AT, and the Medicare therapy threshold (KX) over the patient's charges of the year, for which
``kx_history`` reads the charges of earlier nights from the scored layer."""

from __future__ import annotations

import numpy as np
import pandas as pd

from therapy_claims import findings, nights, storage, units
from therapy_claims.reference import Reference
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
    select,
    sort_order,
    spread,
    take,
)

# what ``kx_history`` gives and ``Night.kx_history`` holds: one row per patient, year and bucket
KX_HISTORY_COLUMNS = ["patient_id", "year", "bucket", "charges"]
_SCORED_COLUMNS = [
    "patient_id",
    "payer_id",
    "date_of_service",
    "discipline",
    "cpt_code",
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


@rule("CMT_AT_MISSING", reads=("modifiers",))
def cmt_at_missing(night: Night) -> pd.DataFrame:
    lines = night.lines
    bad = (
        isin(night, "payer_class", ["medicare"])
        & isin(night, "cpt_code", CMT_CODES)
        & ~has_modifier(night, "AT|GA")
    )
    r = select(lines, bad, "cpt_code", "date_of_service")
    return findings.make(
        "CMT_AT_MISSING",
        r,
        message(
            r,
            r["cpt_code"],
            " to Medicare without AT (",
            code_on_date(r),
            ") is processed as maintenance care and denied",
        ),
        evidence="billing-rules.md 5.5 (Palmetto; Noridian)",
    )


@rule("KX_REQUIRED", reads=("units", "modifiers"))
def kx_required(night: Night) -> pd.DataFrame:
    """Medicare Part B therapy: once a patient's billed therapy charges this calendar year (earlier
    nights plus tonight, in date order) pass the year's threshold, each further line needs KX.
    PT and SLP share one threshold, OT has its own. Charges stand in for allowed amounts."""
    lines, kx = night.lines, night.ref.kx
    sel = (
        isin(night, "payer_class", ["medicare"])
        & lines["always_therapy"].to_numpy()
        & (lines["units"] > 0).to_numpy()
        & isin(night, "discipline", ["PT", "SLP", "OT"])
    )
    if not sel.any() or kx.empty:
        return findings.empty()
    pos = np.flatnonzero(sel)
    year = lines["date_of_service"].iloc[pos].dt.year.reset_index(drop=True)
    ot = isin(night, "discipline", ["OT"])[pos]
    bucket = np.where(ot, "OT", "PT/SLP")
    # the running charges are per patient, year and bucket (a line without a patient or a year
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
    # only groups whose earlier charges plus all of tonight's positive charges could pass the
    # threshold need the running sum (in date order, the costly part); the slack covers the
    # rounding of float sums taken in another order
    charge = lines["charge_amount"].to_numpy()[pos]
    most = earlier + np.bincount(group, weights=np.where(charge > 0, charge, 0.0))
    scale = np.abs(earlier) + np.bincount(group, weights=np.abs(np.nan_to_num(charge)))
    could = known[first] & (most + 1e-6 * (scale + 1) > threshold)
    rows = np.flatnonzero(could[group])
    if len(rows) == 0:
        return findings.empty()
    # those lines in date order (then claim, then line id): the order the charges add up in
    rows = rows[sort_order(lines, pos[rows], ["date_of_service", "claim_id", "line_id"])]
    g = group[rows]
    running = pd.Series(charge[rows]).groupby(g, sort=False).cumsum().to_numpy() + earlier[g]
    need = (running > threshold[g]) & ~has_modifier(night, "KX")[pos[rows]]
    need &= ~pd.isna(threshold[g])
    if not need.any():
        return findings.empty()
    over = rows[need]
    r = take(lines, pos[over], "date_of_service", "patient_id", "cpt_code")
    r = r.assign(year=year.to_numpy()[over], bucket=bucket[over])
    running, threshold = running[need], threshold[g][need]
    return findings.make(
        "KX_REQUIRED",
        r,
        message(
            r,
            "Medicare ",
            r["bucket"],
            " therapy charges for patient ",
            r["patient_id"],
            " in ",
            r["year"],
            " reach $",
            pd.Series(running).round(2),
            ", above the $",
            pd.Series(threshold).round(0).astype(int),
            " KX threshold; ",
            r["cpt_code"],
            " on ",
            iso_date(r["date_of_service"]),
            " lacks KX",
        ),
        evidence=message(
            r,
            night.ref.version("kx_thresholds.csv") + ": ",
            r["year"],
            " ",
            r["bucket"],
            " threshold (charges of earlier nights from scored/)",
        ),
    )


def kx_history(out: str, run_date: str, ref: Reference, lines: pd.DataFrame) -> pd.DataFrame:
    """Billed Medicare therapy charges of run dates before ``run_date`` (ISO text), per patient,
    year and KX bucket (PT/SLP, OT): the scored layer of each published night (as its manifest
    names it) read for the calendar years tonight's ``lines`` fall in; ``KX_HISTORY_COLUMNS``, for
    ``Night.kx_history``. Empty when nothing was billed to Medicare for those years before."""
    medicare = set(ref.payers.index[ref.payers["payer_class"] == "medicare"])
    if lines.empty or not medicare:
        return pd.DataFrame(columns=KX_HISTORY_COLUMNS)
    years = set(lines["date_of_service"].dt.year.dropna().astype(int))
    parts = []
    for rd, path in nights.layer_files(out, "scored", "scored.parquet"):
        if rd >= run_date or int(rd[:4]) < min(years):
            continue
        df = storage.read_parquet(path, columns=_SCORED_COLUMNS)
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
    h = h[h["year"].isin(years)]
    return (
        h.groupby(["patient_id", "year", "bucket"], as_index=False)["charge_amount"]
        .sum()
        .rename(columns={"charge_amount": "charges"})
    )
