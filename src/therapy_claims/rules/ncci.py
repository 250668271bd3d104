"""NCCI procedure-to-procedure edits: pairs of codes billed for one patient by one clinician on
one date, with the row of ``ncci_ptp.csv`` in effect that day, and XS claimed for lines that
treat the same region."""

from __future__ import annotations

import numpy as np
import pandas as pd

from therapy_claims import findings, units
from therapy_claims.rules.engine import (
    CMT_CODES,
    DISTINCT,
    Night,
    has_modifier,
    isin,
    iso_date,
    message,
    rule,
    take,
)


@rule(
    "NCCI_MODIFIER_MISSING",
    "NCCI_NOT_BYPASSABLE",
    "XS_SAME_REGION",
    reads=("modifiers", "units", "excluded"),
)
def ncci_pairs(night: Night) -> pd.DataFrame:
    """NCCI PTP pairs per patient, rendering provider and date of service, among the lines
    that will be reported (units > 0, not excluded: NCCI edits codes reported on a claim); the
    PTP row must be in effect on the date (effective <= DOS, and DOS before the deletion
    date). Where 59/X{EPSU} must sit to bypass an indicator-1 pair is the payer's
    ``distinct_modifier_on`` (of the column-2 line): ``column2`` on the column-2 code only,
    ``either`` on either code."""
    pairs = _pairs_tonight(night, night.reported())
    if pairs is None:
        return findings.empty()
    pos_1, pos_2, k = pairs
    distinct = has_modifier(night, DISTINCT)
    either = isin(night, "distinct_modifier_on", ["either"])[pos_2]
    zero = (night.ref.ncci["modifier_indicator"] == "0").to_numpy()[k]
    one = ~zero
    miss = one & ~(distinct[pos_2] | (either & distinct[pos_1]))
    has_xs = has_modifier(night, "XS")
    xs = np.flatnonzero(one & (has_xs[pos_2] | (either & has_xs[pos_1])))
    xs_same = np.zeros(len(k), dtype=bool)
    shared = np.zeros(0, dtype=object)
    if len(xs):
        shared = _shared_regions(night, pos_1[xs], pos_2[xs])
        xs_same[xs[shared != ""]] = True
        shared = shared[shared != ""]
    # the wording only for the pairs reported: most pairs carry a distinct-service modifier
    report = np.flatnonzero(zero | miss | xs_same)
    return _report(
        night,
        pos_1[report],
        pos_2[report],
        k[report],
        zero[report],
        miss[report],
        xs_same[report],
        shared,
    )


def _pairs_tonight(
    night: Night, reported: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """The pairs of ``reported`` lines of tonight's visits that a PTP row in effect on the
    date matches (not indicator 9): the first line's position, the second's and the PTP row's,
    in the order of a self-join of the night merged with the table; None when there are none."""
    lines, ncci = night.lines, night.ref.ncci
    if ncci.empty:
        return None
    cand = np.flatnonzero(
        reported & isin(night, "cpt_code", list(set(ncci["column1"]) | set(ncci["column2"])))
    )
    keys = ["patient_id", "rendering_npi", "date_of_service"]
    visit = units.group_ids([night.distinct(k)[0][cand] for k in keys])
    cpt_codes, cpt_values = night.distinct("cpt_code")
    code = cpt_codes[cand]
    code_of = dict(zip(cpt_values, range(len(cpt_values)), strict=True))
    dos = lines["date_of_service"].to_numpy()[cand]
    found = []
    # a loop over the PTP table's rows whose two codes are billed tonight (a CMS file has
    # hundreds of thousands of rows), each joined vectorised over the night
    table = ncci[["column1", "column2", "effective_date", "deletion_date", "modifier_indicator"]]
    tonight = table["column1"].isin(list(code_of)) & table["column2"].isin(list(code_of))
    for k, (col1, col2, effective, deletion, indicator) in zip(
        np.flatnonzero(tonight), table[tonight].itertuples(index=False), strict=True
    ):
        if indicator == "9":
            continue
        active = dos >= pd.Timestamp(effective).to_datetime64()
        if not pd.isna(deletion):
            active &= dos < pd.Timestamp(deletion).to_datetime64()
        first = np.flatnonzero((code == code_of.get(col1, -2)) & active)
        second = np.flatnonzero(code == code_of.get(col2, -2))
        pair = pd.DataFrame({"visit": visit[first], "i1": first}).merge(
            pd.DataFrame({"visit": visit[second], "i2": second}), on="visit"
        )
        found.append(pair.assign(k=k)[pair["i1"] != pair["i2"]])
    if not found:
        return None
    found_all = pd.concat(found, ignore_index=True)
    if found_all.empty:
        return None
    # the order of a self-join of the night merged with the table: first line, second, PTP row
    i1, i2, k = (found_all[c].to_numpy() for c in ("i1", "i2", "k"))
    order = units.lexsort((k, i2, i1))
    return cand[i1[order]], cand[i2[order]], k[order]


def _report(
    night: Night,
    pos_1: np.ndarray,
    pos_2: np.ndarray,
    k: np.ndarray,
    zero: np.ndarray,
    miss: np.ndarray,
    xs_same: np.ndarray,
    shared: np.ndarray,
) -> pd.DataFrame:
    """The findings of the reported pairs (first line, second line, PTP row): indicator 0
    (``zero``), no distinct-service modifier (``miss``), XS on lines sharing the regions
    ``shared`` (one per ``xs_same`` pair)."""
    lines, ncci = night.lines, night.ref.ncci

    def side(positions: np.ndarray, names: list[str]) -> pd.DataFrame:
        return lines.iloc[positions, lines.columns.get_indexer(names)].reset_index(drop=True)

    pairs = pd.concat(
        [
            side(pos_1, ["date_of_service"]),
            ncci.iloc[k].reset_index(drop=True),
            side(pos_2, ["distinct_modifier", "distinct_modifier_on", "payer_id"]).add_suffix("_2"),
        ],
        axis=1,
    )
    version = night.ref.version("ncci_ptp.csv")
    evidence = message(
        pairs,
        version + ": ",
        pairs["column1"],
        "/",
        pairs["column2"],
        " modifier_indicator=",
        pairs["modifier_indicator"],
        " effective ",
        pairs["effective_date"],
        " deletion ",
        pairs["deletion_date"].astype("string").fillna("none"),
        np.where(
            pairs.get("sample", pd.Series("", index=pairs.index)).astype("string") == "true",
            " (sample row)",
            "",
        ),
    ).to_numpy()
    where = message(
        pairs,
        pairs["column2"],
        " with ",
        pairs["column1"],
        " on ",
        iso_date(pairs["date_of_service"]),
    )
    prefer_x = (pairs["distinct_modifier_2"] == "x").to_numpy()
    cmt_pair = pairs["column1"].isin(CMT_CODES).to_numpy()
    fix_mod = np.where(
        cmt_pair, np.where(prefer_x, "XS", "59"), np.where(prefer_x, "XU or XE", "59")
    )
    fix = message(
        pairs,
        "If ",
        pairs["column2"],
        " was distinct from ",
        pairs["column1"],
        " (different region or time block, documented), append ",
        fix_mod,
        " to ",
        pairs["column2"],
        "; otherwise remove ",
        pairs["column2"],
        ".",
    )
    # where the distinct-service modifier must sit (payers.csv distinct_modifier_on, of the
    # column-2 line's payer): a modifier on the column-1 code alone does not count for column2
    on = pairs["distinct_modifier_on_2"].astype("string").fillna("column2")
    on_col1 = has_modifier(night, DISTINCT)[pos_1]
    missing = message(
        pairs,
        where,
        ": NCCI pair (indicator 1) without 59/XE/XS/XP/XU on ",
        np.where(on == "either", "either line", message(pairs, pairs["column2"], " (column 2)")),
        np.where(
            on_col1 & (on != "either"),
            message(
                pairs,
                "; the modifier on ",
                pairs["column1"],
                " (column 1) does not bypass the pair for ",
                pairs["payer_id_2"],
            ),
            "",
        ),
        "; add ",
        np.where(cmt_pair, "XS/59", "59/XE/XS/XP/XU"),
        " to ",
        pairs["column2"],
        " if it was distinct",
    )
    setting = message(
        pairs,
        "; payers.csv ",
        pairs["payer_id_2"],
        " distinct_modifier_on=",
        on,
        " (" + night.ref.version("payers.csv") + ")",
    )
    out = [
        findings.make(
            "NCCI_NOT_BYPASSABLE",
            take(lines, pos_2[zero]),
            message(
                pairs, where, ": NCCI pair with modifier indicator 0; no modifier allows both"
            ).to_numpy()[zero],
            evidence=evidence[zero],
        ),
        findings.make(
            "NCCI_MODIFIER_MISSING",
            take(lines, pos_2[miss]),
            missing.to_numpy()[miss],
            evidence=(evidence + setting.to_numpy())[miss],
            suggested_fix=fix.to_numpy()[miss],
        ),
    ]
    q = pairs[xs_same]
    out.append(
        findings.make(
            "XS_SAME_REGION",
            take(lines, pos_2[xs_same]),
            message(
                q,
                q["column2"],
                " and ",
                q["column1"],
                " claim XS (separate structure) but both treat ",
                shared,
                " on ",
                iso_date(q["date_of_service"]),
            ).to_numpy(),
            evidence=evidence[xs_same],
        )
    )
    return findings.concat(out)


def _shared_regions(night: Night, first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """Per pair of lines: the body regions both treat, sorted and joined with ', ' ('' when
    none); worked out once per distinct pair of region lists."""
    codes, regions = night.distinct("body_region")
    sets = [set(v.split(";")) - {""} for v in regions] + [set()]  # [-1]: no regions
    width = len(regions) + 1
    pair_pos, pairs = pd.factorize((codes[first] + 1) * width + codes[second] + 1)
    shared = [
        ", ".join(sorted(sets[a] & sets[b]))
        for a, b in zip(pairs // width - 1, pairs % width - 1, strict=True)
    ]
    return np.asarray(shared, dtype=object)[pair_pos]


# --------------------------------------------------------------------------- limits
