"""Billing rules, vectorised over the night's lines.

Each rule is a function registered with ``@rule(code, ...)``: it receives the ``Night`` (the
enriched line frame, the reference data and the run date) and returns findings built with
``findings.make``. Rules that fix something automatically (units, therapy modifiers) change
``night.lines`` and record the change as before -> after, on the finding and in the line's
``changes``; nothing changes silently. Rules run in registration order.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date

import numpy as np
import pandas as pd

from therapy_claims import findings, npi, timing, units
from therapy_claims.reference import Reference

THERAPY_MODIFIER = {"PT": "GP", "OT": "GO", "SLP": "GN"}
ICD10_SHAPE = r"[A-TV-Z][0-9][0-9A-Z](\.?[0-9A-Z]{1,4})?"


@dataclass
class Night:
    lines: pd.DataFrame
    ref: Reference
    run_date: date
    kx_history: pd.DataFrame | None = None  # patient_id, year, bucket, charges (earlier nights)
    changes: list[pd.Series] = field(default_factory=list)

    def record_change(self, mask: pd.Series, text: pd.Series | str) -> None:
        s = pd.Series(pd.NA, index=self.lines.index, dtype="string")
        s[mask] = text[mask] if isinstance(text, pd.Series) else text
        self.changes.append(s)

    def change_lists(self) -> pd.Series:
        """One list of change strings per line, in the order the rules made them."""
        by_pos: dict[int, list[str]] = {}
        for s in self.changes:  # changes are sparse: touch only the changed lines
            arr = s.to_numpy(dtype=object, na_value=None)
            for pos in np.flatnonzero(s.notna().to_numpy()):
                by_pos.setdefault(int(pos), []).append(arr[pos])
        return pd.Series(
            [by_pos.get(i, []) for i in range(len(self.lines))], index=self.lines.index
        )


RuleFn = Callable[[Night], pd.DataFrame]
REGISTRY: list[tuple[tuple[str, ...], RuleFn]] = []


def rule(*codes: str) -> Callable[[RuleFn], RuleFn]:
    def register(fn: RuleFn) -> RuleFn:
        REGISTRY.append((codes, fn))
        return fn

    return register


def run_all(night: Night) -> pd.DataFrame:
    out = []
    for _, fn in REGISTRY:
        with timing.record("units" if fn is compute_units else "rules"):
            out.append(fn(night))
    return findings.concat(out)


def _has_mod(mods: pd.Series, pattern: str) -> pd.Series:
    return mods.fillna("").str.contains(rf"(?:^|;)(?:{pattern})(?:;|$)", regex=True)


def _where(lines: pd.DataFrame) -> pd.Series:
    return lines["cpt_code"].fillna("?") + " on " + lines["date_of_service"].dt.strftime("%Y-%m-%d")


# --------------------------------------------------------------------------- reference lookups


@rule("UNKNOWN_PAYER")
def unknown_payer(night: Night) -> pd.DataFrame:
    bad = night.lines["payer_name"].isna()
    rows = night.lines[bad]
    return findings.make(
        "UNKNOWN_PAYER",
        rows,
        "payer_id '" + rows["payer_id"] + "' is not in payers.csv (" + _where(rows) + ")",
        evidence=night.ref.version("payers.csv"),
    )


@rule("UNKNOWN_CLINIC")
def unknown_clinic(night: Night) -> pd.DataFrame:
    bad = night.lines["billing_npi"].isna()
    rows = night.lines[bad]
    return findings.make(
        "UNKNOWN_CLINIC",
        rows,
        "clinic_id '" + rows["clinic_id"] + "' is not in clinics.csv",
        evidence=night.ref.version("clinics.csv"),
    )


@rule("NPI_INVALID")
def npi_invalid(night: Night) -> pd.DataFrame:
    lines = night.lines
    bad_r = ~npi.valid_mask(lines["rendering_npi"])
    known_clinic = lines["billing_npi"].notna()
    bad_b = known_clinic & ~npi.valid_mask(lines["billing_npi"].fillna(""))
    r, b = lines[bad_r], lines[bad_b]
    return findings.concat(
        [
            findings.make(
                "NPI_INVALID",
                r,
                "rendering NPI "
                + r["rendering_npi"]
                + " of "
                + r["rendering_last_name"].fillna("")
                + " fails the NPI check digit (Luhn with prefix 80840)",
                evidence="CMS NPI check-digit algorithm",
            ),
            findings.make(
                "NPI_INVALID",
                b,
                "billing NPI "
                + b["billing_npi"]
                + " of clinic "
                + b["clinic_id"]
                + " fails the NPI check digit (Luhn with prefix 80840)",
                evidence=night.ref.version("clinics.csv"),
            ),
        ]
    )


@rule("DIAGNOSIS_INVALID")
def diagnosis_invalid(night: Night) -> pd.DataFrame:
    lines = night.lines
    # checked once per distinct (codes, pointers) pair: a night repeats the same few lists
    pair = pd.MultiIndex.from_arrays(
        [lines["diagnosis_codes"].fillna(""), lines["diagnosis_pointers"].fillna("1")]
    )
    pos, uniq = pd.factorize(pair)
    u_dx = pd.Series(uniq.get_level_values(0), dtype="string")
    u_pt = pd.Series(uniq.get_level_values(1), dtype="string")
    codes = u_dx.str.split(";")
    u_n = codes.str.len()
    exploded = codes.explode()
    bad_code = ~exploded.str.fullmatch(ICD10_SHAPE).fillna(False).astype(bool)
    u_first_bad = exploded[bad_code].groupby(level=0).first().reindex(u_dx.index)
    ptrs = u_pt.str.split(";").explode()
    ptr_num = pd.to_numeric(ptrs, errors="coerce")
    u_ptr_bad = (
        (ptr_num.isna() | (ptr_num < 1) | (ptr_num > u_n.reindex(ptr_num.index)))
        .groupby(level=0)
        .any()
        .reindex(u_dx.index)
        .fillna(False)
        .astype(bool)
    ) | (u_pt.str.count(";") + 1 > 4)
    n = pd.Series(u_n.to_numpy()[pos], index=lines.index)
    first_bad = pd.Series(u_first_bad.to_numpy()[pos], index=lines.index, dtype="string")
    shape_bad = first_bad.notna().to_numpy()
    too_many = (n > 12).to_numpy()
    ptr_bad = u_ptr_bad.to_numpy()[pos]
    a = lines[shape_bad]
    b = lines[too_many & ~shape_bad]
    c = lines[ptr_bad & ~shape_bad & ~too_many]
    return findings.concat(
        [
            findings.make(
                "DIAGNOSIS_INVALID",
                a,
                "diagnosis code '"
                + first_bad.reindex(a.index).astype("string")
                + "' is not an ICD-10-CM code ("
                + _where(a)
                + ")",
                evidence="ICD-10-CM code shape",
            ),
            findings.make(
                "DIAGNOSIS_INVALID",
                b,
                n[too_many & ~shape_bad].astype("string")
                + " diagnosis codes; a claim holds at most 12",
                evidence="X12 837 HI segment: 12 codes",
            ),
            findings.make(
                "DIAGNOSIS_INVALID",
                c,
                "diagnosis pointers '"
                + c["diagnosis_pointers"].fillna("1")
                + "' point outside the "
                + n[c.index].astype("string")
                + " diagnosis code(s) or are more than 4",
                evidence="X12 837 SV107: 1-4 pointers into HI",
            ),
        ]
    )


# --------------------------------------------------------------------------- time and units


@rule("TIME_MISSING")
def time_missing(night: Night) -> pd.DataFrame:
    lines = night.lines
    bad = lines["timed"] & lines["minutes"].isna()
    rows = lines[bad]
    return findings.make(
        "TIME_MISSING",
        rows,
        rows["cpt_code"]
        + " is a timed 15-minute code but no minutes were charted ("
        + _where(rows)
        + ")",
        evidence=night.ref.version("cpt_codes.csv") + ": timed=true",
    )


@rule("UNITS_ZERO", "UNITS_CORRECTED")
def compute_units(night: Night) -> pd.DataFrame:
    lines = night.lines
    known = lines["unit_method"].notna()
    computed = units.compute(lines.assign(unit_method=lines["unit_method"].fillna("cms")))
    lines["units"] = computed
    timed_min = lines["timed"] & lines["minutes"].notna() & known
    keys = [lines[k] for k in units.POOL_KEYS]
    pool_min = (
        lines["minutes"].where(timed_min, 0).fillna(0).groupby(keys, dropna=False).transform("sum")
    )
    method_txt = np.where(
        lines["unit_method"] == "cms", "CMS 8-minute rule, pooled", "AMA per-code rule"
    )
    basis = (
        lines["minutes"].astype("string")
        + " min; "
        + method_txt
        + np.where(
            lines["unit_method"] == "cms",
            " timed minutes for "
            + lines["discipline"].fillna("")
            + " that day = "
            + pool_min.astype("Int64").astype("string"),
            "",
        )
    )
    evidence = (
        "payers.csv "
        + lines["payer_id"]
        + " unit_method="
        + lines["unit_method"].fillna("")
        + " ("
        + night.ref.version("payers.csv")
        + ")"
    )

    zero = timed_min & (computed == 0)
    z = lines[zero]
    out = [
        findings.make(
            "UNITS_ZERO",
            z,
            z["cpt_code"] + " gets 0 units: " + basis[zero] + " (" + _where(z) + ")",
            evidence=evidence[zero],
        )
    ]
    charted = lines["units_charted"]
    diff = (
        known
        & charted.notna()
        & (charted != computed)
        & ~(lines["timed"] & lines["minutes"].isna())
    )
    d = lines[diff]
    before = charted[diff].astype("string")
    after = computed[diff].astype("string")
    out.append(
        findings.make(
            "UNITS_CORRECTED",
            d,
            d["cpt_code"]
            + ": charted "
            + before
            + " unit(s), computed "
            + after
            + " from "
            + basis[diff]
            + " ("
            + _where(d)
            + ")",
            evidence=evidence[diff],
            before=before,
            after=after,
        )
    )
    night.record_change(
        diff, "units " + charted.astype("string") + "->" + computed.astype("string")
    )
    return findings.concat(out)


# --------------------------------------------------------------------------- modifiers


@rule("THERAPY_MODIFIER_ADDED")
def therapy_modifier_added(night: Night) -> pd.DataFrame:
    lines = night.lines
    mods = lines["modifiers"].fillna("")
    wanted = lines["discipline"].map(THERAPY_MODIFIER)
    # 837I: every 042x/043x/044x line needs its GP/GO/GN whatever the payer
    institutional = (lines["claim_type"] == "institutional").fillna(False).astype(bool)
    need = (
        (lines["requires_therapy_modifiers"].fillna(False).astype(bool) | institutional)
        & lines["always_therapy"]
        & wanted.notna()
        & ~_has_mod(mods, "GP|GO|GN")
    )
    count = np.where(mods == "", 0, mods.str.count(";") + 1)
    room = need & (count < 4)
    new = np.where(mods == "", wanted, mods + ";" + wanted)
    after = pd.Series(new, index=lines.index, dtype="string")
    r = lines[room]
    before = mods[room].replace("", "(none)")
    out = findings.make(
        "THERAPY_MODIFIER_ADDED",
        r,
        r["cpt_code"]
        + " had no therapy modifier; added "
        + wanted[room]
        + " from discipline "
        + r["discipline"]
        + " ("
        + _where(r)
        + ")",
        evidence=pd.Series(
            np.where(
                institutional[room],
                "837I: revenue codes 042x/043x/044x need GP/GO/GN (clinic " + r["clinic_id"] + ")",
                "payers.csv "
                + r["payer_id"]
                + " requires_therapy_modifiers=true ("
                + night.ref.version("payers.csv")
                + ")",
            ),
            index=r.index,
        ),
        before=before,
        after=after[room],
    )
    night.record_change(room, "modifiers +" + wanted.astype("string"))
    lines.loc[room, "modifiers"] = after[room]
    full = need & ~room
    f = lines[full]
    out2 = findings.make(
        "MODIFIER_INVALID",
        f,
        f["cpt_code"]
        + " needs therapy modifier "
        + wanted[full]
        + " but already carries 4 modifiers ("
        + f["modifiers"]
        + ")",
        evidence="X12 837 SV101: at most 4 modifiers",
    )
    return findings.concat([out, out2])


# --------------------------------------------------------------------------- shared helpers

DISTINCT = "59|XE|XS|XP|XU"
CMT_CODES = ("98940", "98941", "98942")
MANUAL_THERAPY = "97140"


def _first_per_claim(rows: pd.DataFrame) -> pd.DataFrame:
    """One row per claim (the lowest line_id): for visit-level findings."""
    if rows.empty:
        return rows
    return rows.sort_values("line_id", kind="mergesort").drop_duplicates("claim_id", keep="first")


def _explode_list(lines: pd.DataFrame, column: str, mask: pd.Series) -> pd.DataFrame:
    """(index, value) pairs of a ``;``-joined list column for the selected lines."""
    s = lines.loc[mask, column].dropna().str.split(";").explode()
    return pd.DataFrame({"idx": s.index, "value": s.to_numpy()}).dropna()


def _d(s: pd.Series) -> pd.Series:
    return s.dt.strftime("%Y-%m-%d").astype("string").fillna("?")


# --------------------------------------------------------------------------- identity and dates


@rule("DATE_INVALID")
def date_invalid(night: Night) -> pd.DataFrame:
    lines = night.lines
    dos = lines["date_of_service"]
    run = pd.Timestamp(night.run_date)
    future = dos > run
    before_birth = dos < lines["patient_dob"]
    too_old = dos < run - pd.Timedelta(days=365)
    out = []
    for mask, text in (
        (future, " is after the run date " + night.run_date.isoformat()),
        (
            before_birth & ~future,
            " is before the patient's date of birth " + _d(lines["patient_dob"]),
        ),
        (
            too_old & ~future & ~before_birth,
            " is more than 365 days before the run date (timely filing limit)",
        ),
    ):
        rows = lines[mask]
        msg = (
            "date of service "
            + _d(rows["date_of_service"])
            + (text[mask] if isinstance(text, pd.Series) else text)
        )
        out.append(
            findings.make(
                "DATE_INVALID", rows, msg, evidence="timely filing: 365 days (42 CFR 424.44)"
            )
        )
    return findings.concat(out)


# --------------------------------------------------------------------------- time


@rule("NOT_ONE_ON_ONE")
def not_one_on_one(night: Night) -> pd.DataFrame:
    lines = night.lines
    bad = lines["one_on_one"] & (lines["group_size"].fillna(1) > 1)
    r = lines[bad]
    return findings.make(
        "NOT_ONE_ON_ONE",
        r,
        r["cpt_code"]
        + " is a one-on-one timed code but group_size is "
        + r["group_size"].astype("string")
        + " ("
        + _where(r)
        + "); group treatment is 97150",
        evidence=night.ref.version("cpt_codes.csv") + ": one_on_one=true",
    )


@rule("PROVIDER_OVERLAP")
def provider_overlap(night: Night) -> pd.DataFrame:
    """One clinician's one-on-one intervals for different patients overlapping on a date.

    Each patient's intervals are first merged into blocks (touching intervals do not overlap);
    blocks are then swept in start order per clinician and date: a block starting before the
    latest end seen so far overlaps that earlier block, which is another patient's."""
    lines = night.lines
    sel = (
        lines["one_on_one"]
        & lines["start_minute"].notna()
        & lines["end_minute"].notna()
        & (lines["end_minute"] > lines["start_minute"])
    )
    if not sel.any():
        return findings.empty()
    t = lines.loc[
        sel, ["rendering_npi", "date_of_service", "patient_id", "start_minute", "end_minute"]
    ].copy()
    t["start"] = t["start_minute"].astype("int64")
    t["end"] = t["end_minute"].astype("int64")
    t = t.sort_values(
        ["rendering_npi", "date_of_service", "patient_id", "start", "end"], kind="mergesort"
    )
    pkeys = ["rendering_npi", "date_of_service", "patient_id"]
    prev_end = (
        t.groupby(pkeys, sort=False)["end"]
        .cummax()
        .groupby([t[k] for k in pkeys], sort=False)
        .shift()
    )
    new_block = prev_end.isna() | (t["start"] >= prev_end)
    t["block"] = new_block.cumsum()
    blocks = t.groupby("block").agg(
        rendering_npi=("rendering_npi", "first"),
        date_of_service=("date_of_service", "first"),
        patient_id=("patient_id", "first"),
        start=("start", "min"),
        end=("end", "max"),
    )
    blocks = blocks.sort_values(
        ["rendering_npi", "date_of_service", "start", "end"], kind="mergesort"
    )
    ckeys = [blocks["rendering_npi"], blocks["date_of_service"]]
    run_max = blocks.groupby(ckeys, sort=False)["end"].cummax()
    holder = pd.Series(np.where(blocks["end"] == run_max, blocks.index, np.nan), index=blocks.index)
    holder = holder.groupby(ckeys, sort=False).ffill()
    prev_max = run_max.groupby(ckeys, sort=False).shift()
    prev_holder = holder.groupby(ckeys, sort=False).shift()
    hit = prev_max.notna() & (blocks["start"] < prev_max)
    if not hit.any():
        return findings.empty()
    pairs = pd.DataFrame(
        {"block": blocks.index[hit], "other": prev_holder[hit].astype("int64").to_numpy()}
    )
    both = pd.concat(
        [pairs, pairs.rename(columns={"block": "other", "other": "block"})], ignore_index=True
    )
    span = blocks[["patient_id", "start", "end"]]
    both = both.join(span.rename(columns=lambda c: "o_" + c), on="other")
    t2 = t.reset_index(names="idx").merge(both, on="block")
    t2 = t2[(t2["start"] < t2["o_end"]) & (t2["o_start"] < t2["end"])]
    t2 = t2.drop_duplicates("idx")
    rows = lines.loc[t2["idx"].to_numpy()]

    def hhmm(m: pd.Series) -> pd.Series:
        m = m.astype("int64")
        return (
            (m // 60).astype("string").str.zfill(2) + ":" + (m % 60).astype("string").str.zfill(2)
        )

    msg = (
        rows["cpt_code"]
        + " "
        + rows["start_time"]
        + "-"
        + rows["end_time"]
        + " for patient "
        + rows["patient_id"]
        + " overlaps "
        + hhmm(t2["o_start"]).to_numpy()
        + "-"
        + hhmm(t2["o_end"]).to_numpy()
        + " for patient "
        + t2["o_patient_id"].astype("string").to_numpy()
        + ": clinician NPI "
        + rows["rendering_npi"]
        + " on "
        + _d(rows["date_of_service"])
    )
    return findings.make(
        "PROVIDER_OVERLAP", rows, msg, evidence="one-on-one time (MBPM ch. 15 220.3)"
    )


# --------------------------------------------------------------------------- modifiers after the fixes


@rule("ASSISTANT_MODIFIER_ADDED")
def assistant_modifier_added(night: Night) -> pd.DataFrame:
    lines = night.lines
    mods = lines["modifiers"].fillna("")
    medicare = lines["payer_class"].isin(["medicare", "medicare_advantage"])
    want = pd.Series(pd.NA, index=lines.index, dtype="string")
    want[(lines["rendering_credential"] == "PTA") & (lines["discipline"] == "PT")] = "CQ"
    want[(lines["rendering_credential"] == "OTA") & (lines["discipline"] == "OT")] = "CO"
    need = medicare & lines["always_therapy"] & want.notna() & ~_has_mod(mods, "CQ|CO")
    count = np.where(mods == "", 0, mods.str.count(";") + 1)
    room = need & (count < 4)
    after = pd.Series(
        np.where(mods == "", want, mods + ";" + want), index=lines.index, dtype="string"
    )
    r = lines[room]
    out = findings.make(
        "ASSISTANT_MODIFIER_ADDED",
        r,
        r["cpt_code"]
        + " was furnished by a "
        + r["rendering_credential"]
        + "; added "
        + want[room]
        + " ("
        + _where(r)
        + ")",
        evidence="payers.csv "
        + r["payer_id"]
        + " payer_class="
        + r["payer_class"]
        + "; CQ/CO required from 2020 (billing-rules.md 5.3)",
        before=mods[room].replace("", "(none)"),
        after=after[room],
    )
    night.record_change(room, "modifiers +" + want.astype("string"))
    lines.loc[room, "modifiers"] = after[room]
    full = need & ~room
    f = lines[full]
    return findings.concat(
        [
            out,
            findings.make(
                "MODIFIER_INVALID",
                f,
                f["cpt_code"]
                + " needs assistant modifier "
                + want[full]
                + " but already carries 4 modifiers",
                evidence="X12 837 SV101: at most 4 modifiers",
            ),
        ]
    )


@rule("MODIFIER_INVALID")
def modifier_unknown(night: Night) -> pd.DataFrame:
    """Well-formed modifiers that are not in modifiers.csv, and AT off a CMT code (format and
    count are checked by the modifier_consistency GX suite)."""
    lines = night.lines
    tokens = _explode_list(lines, "modifiers", lines["modifiers"].notna())
    wellformed = tokens["value"].str.fullmatch(r"[A-Z0-9]{2}").fillna(False).astype(bool)
    unknown = tokens[wellformed & ~tokens["value"].isin(night.ref.modifiers.index)]
    first = unknown.groupby("idx")["value"].agg(lambda v: ", ".join(v))
    r = lines.loc[first.index]
    out = [
        findings.make(
            "MODIFIER_INVALID",
            r,
            r["cpt_code"]
            + ": modifier(s) "
            + first.astype("string")
            + " not in modifiers.csv ("
            + _where(r)
            + ")",
            evidence=night.ref.version("modifiers.csv"),
            suggested_fix="Correct the modifier; if it is valid for this payer, add it to modifiers.csv.",
        )
    ]
    at = _has_mod(lines["modifiers"], "AT") & ~lines["cpt_code"].isin(CMT_CODES)
    a = lines[at]
    out.append(
        findings.make(
            "MODIFIER_INVALID",
            a,
            a["cpt_code"] + " carries AT, which is only for CMT 98940-98942",
            evidence="billing-rules.md 5.5 (Palmetto; Noridian)",
        )
    )
    at_liab = _has_mod(lines["modifiers"], "AT") & _has_mod(lines["modifiers"], "GA|GX|GY|GZ")
    b = lines[at_liab]
    out.append(
        findings.make(
            "MODIFIER_INVALID",
            b,
            b["cpt_code"] + ": AT cannot be combined with GA/GX/GY/GZ (" + b["modifiers"] + ")",
            evidence="billing-rules.md 5.5 (DOS >= 2015-11-01)",
        )
    )
    return findings.concat(out)


@rule("THERAPY_MODIFIER_MISMATCH")
def assistant_pairing(night: Night) -> pd.DataFrame:
    """CQ only with GP, CO only with GO (after automatic additions)."""
    lines = night.lines
    mods = lines["modifiers"]
    # only where the payer uses therapy modifiers (Medicare, MA, or payers.csv says so)
    uses = lines["requires_therapy_modifiers"].fillna(False).astype(bool) | lines[
        "payer_class"
    ].isin(["medicare", "medicare_advantage"])
    bad = uses & (
        (_has_mod(mods, "CQ") & ~_has_mod(mods, "GP"))
        | (_has_mod(mods, "CO") & ~_has_mod(mods, "GO"))
    )
    r = lines[bad]
    return findings.make(
        "THERAPY_MODIFIER_MISMATCH",
        r,
        r["cpt_code"]
        + ": modifiers "
        + r["modifiers"].fillna("")
        + " pair an assistant modifier with the wrong "
        "plan (CQ goes with GP, CO with GO) (" + _where(r) + ")",
        evidence="billing-rules.md 5.3",
    )


# --------------------------------------------------------------------------- documentation


@rule("TECHNIQUE_MISSING", "TECHNIQUE_INVALID", "DOCUMENTATION_INCOMPLETE")
def manual_therapy_documentation(night: Night) -> pd.DataFrame:
    from therapy_claims.layout import MANUAL_TECHNIQUES

    lines = night.lines
    mt = lines["cpt_code"] == MANUAL_THERAPY
    missing = mt & lines["technique"].isna()
    tokens = _explode_list(lines, "technique", mt)
    bad = (
        tokens[~tokens["value"].isin(MANUAL_TECHNIQUES)]
        .groupby("idx")["value"]
        .agg(lambda v: ", ".join(v))
    )
    m, b = lines[missing], lines.loc[bad.index]
    no_goal, no_resp = lines["goal_id"].isna(), lines["patient_response"].isna()
    doc = mt & (no_goal | no_resp)
    d = lines[doc]
    what = pd.Series(
        np.where(
            no_goal[doc] & no_resp[doc],
            "goal_id and patient_response",
            np.where(no_goal[doc], "goal_id", "patient_response"),
        ),
        index=d.index,
    )
    return findings.concat(
        [
            findings.make(
                "TECHNIQUE_MISSING",
                m,
                "97140 without a documented manual technique (" + _where(m) + ")",
                evidence="Palmetto GBA Manual Therapy (billing-rules.md 8.2)",
            ),
            findings.make(
                "TECHNIQUE_INVALID",
                b,
                "97140 technique '"
                + bad.astype("string")
                + "' is not manual therapy ("
                + _where(b)
                + "); manual techniques: "
                + ", ".join(MANUAL_TECHNIQUES),
                evidence="CPT 97140 descriptor (billing-rules.md 2.1, 8.2)",
            ),
            findings.make(
                "DOCUMENTATION_INCOMPLETE",
                d,
                "97140 without " + what.astype("string") + " (" + _where(d) + ")",
                evidence="MBPM ch. 15 220.3; billing-rules.md 8.2",
            ),
        ]
    )


# --------------------------------------------------------------------------- region and NCCI


@rule("CMT_SAME_REGION")
def cmt_same_region(night: Night) -> pd.DataFrame:
    lines = night.lines
    mt = _explode_list(lines, "body_region", lines["cpt_code"] == MANUAL_THERAPY)
    cmt = _explode_list(lines, "body_region", lines["cpt_code"].isin(CMT_CODES))
    if mt.empty or cmt.empty:
        return findings.empty()
    keys = ["patient_id", "date_of_service"]
    mt = mt.join(lines[keys], on="idx")
    cmt = cmt.join(lines[[*keys, "cpt_code"]], on="idx")
    hit = mt.merge(cmt, on=[*keys, "value"], suffixes=("", "_cmt")).drop_duplicates("idx")
    r = lines.loc[hit["idx"].to_numpy()]
    return findings.make(
        "CMT_SAME_REGION",
        r,
        "97140 on "
        + hit["value"].astype("string").to_numpy()
        + ", same region as "
        + hit["cpt_code"].astype("string").to_numpy()
        + " on "
        + hit["value"].astype("string").to_numpy()
        + ", "
        + _d(r["date_of_service"]),
        evidence="NCCI: manual therapy to a manipulated region is included in CMT (billing-rules.md 3.1)",
    )


@rule("NCCI_MODIFIER_MISSING", "NCCI_NOT_BYPASSABLE", "XS_SAME_REGION")
def ncci_pairs(night: Night) -> pd.DataFrame:
    """NCCI PTP pairs per patient, rendering provider and date of service; the PTP row must be
    in effect on the date (effective <= DOS, and DOS before the deletion date)."""
    lines, ncci = night.lines, night.ref.ncci
    if ncci.empty:
        return findings.empty()
    codes = set(ncci["column1"]) | set(ncci["column2"])
    keys = ["patient_id", "rendering_npi", "date_of_service"]
    cand = lines.loc[
        lines["cpt_code"].isin(codes),
        [*keys, "cpt_code", "modifiers", "body_region", "distinct_modifier"],
    ]
    cand = cand.reset_index(names="idx")
    pairs = cand.merge(cand, on=keys, suffixes=("_1", "_2"))
    pairs = pairs[pairs["idx_1"] != pairs["idx_2"]]
    pairs = pairs.merge(ncci, left_on=["cpt_code_1", "cpt_code_2"], right_on=["column1", "column2"])
    dos = pairs["date_of_service"].dt.date
    active = (pairs["effective_date"] <= dos) & (
        pairs["deletion_date"].isna() | (dos < pairs["deletion_date"])
    )
    pairs = pairs[active & (pairs["modifier_indicator"] != "9")]
    if pairs.empty:
        return findings.empty()
    version = night.ref.version("ncci_ptp.csv")
    evidence = (
        version
        + ": "
        + pairs["column1"]
        + "/"
        + pairs["column2"]
        + " modifier_indicator="
        + pairs["modifier_indicator"]
        + " effective "
        + pairs["effective_date"].astype("string")
        + " deletion "
        + pairs["deletion_date"].astype("string").fillna("none")
        + np.where(
            pairs.get("sample", pd.Series("", index=pairs.index)).astype("string") == "true",
            " (sample row)",
            "",
        )
    )
    where = pairs["column2"] + " with " + pairs["column1"] + " on " + _d(pairs["date_of_service"])
    col2 = lines.loc[pairs["idx_2"].to_numpy()]
    bypassed = _has_mod(pairs["modifiers_1"], DISTINCT) | _has_mod(pairs["modifiers_2"], DISTINCT)
    zero = (pairs["modifier_indicator"] == "0").to_numpy()
    one = ~zero
    prefer_x = (pairs["distinct_modifier_2"] == "x").to_numpy()
    cmt_pair = pairs["column1"].isin(CMT_CODES).to_numpy()
    fix_mod = np.where(
        cmt_pair, np.where(prefer_x, "XS", "59"), np.where(prefer_x, "XU or XE", "59")
    )
    fix = (
        "If "
        + pairs["column2"]
        + " was distinct from "
        + pairs["column1"]
        + " (different region or time block, documented), append "
        + fix_mod
        + " to "
        + pairs["column2"]
        + "; otherwise remove "
        + pairs["column2"]
        + "."
    )
    out = [
        findings.make(
            "NCCI_NOT_BYPASSABLE",
            col2[zero],
            (where + ": NCCI pair with modifier indicator 0; no modifier allows both").to_numpy()[
                zero
            ],
            evidence=evidence.to_numpy()[zero],
        ),
    ]
    miss = one & ~bypassed.to_numpy()
    out.append(
        findings.make(
            "NCCI_MODIFIER_MISSING",
            col2[miss],
            (where + ": NCCI pair (indicator 1) without 59/XE/XS/XP/XU on either line").to_numpy()[
                miss
            ],
            evidence=evidence.to_numpy()[miss],
            suggested_fix=fix.to_numpy()[miss],
        )
    )
    xs = (
        one
        & (_has_mod(pairs["modifiers_1"], "XS") | _has_mod(pairs["modifiers_2"], "XS")).to_numpy()
    )
    if xs.any():
        p = pairs[xs]
        r1 = p["body_region_1"].fillna("").str.split(";")
        r2 = p["body_region_2"].fillna("").str.split(";")
        common = [sorted((set(a) & set(b)) - {""}) for a, b in zip(r1, r2, strict=True)]
        same = np.array([bool(c) for c in common])
        q = p[same]
        shared = pd.Series([", ".join(c) for c in common], index=p.index)[same]
        out.append(
            findings.make(
                "XS_SAME_REGION",
                lines.loc[q["idx_2"].to_numpy()],
                (
                    q["column2"]
                    + " and "
                    + q["column1"]
                    + " claim XS (separate structure) but both treat "
                    + shared
                    + " on "
                    + _d(q["date_of_service"])
                ).to_numpy(),
                evidence=evidence[xs][same].to_numpy(),
            )
        )
    return findings.concat(out)


# --------------------------------------------------------------------------- limits


@rule("MUE_EXCEEDED")
def mue_exceeded(night: Night) -> pd.DataFrame:
    """MUE by the row in effect on the date of service: MAI 1 per line, MAI 2/3 summed over the
    patient's lines of the code on that date at the clinic."""
    lines, mue = night.lines, night.ref.mue
    billable = lines[(lines["units"] > 0) & lines["cpt_code"].isin(mue["code"])]
    if billable.empty:
        return findings.empty()
    left = billable[
        ["cpt_code", "date_of_service", "units", "patient_id", "clinic_id"]
    ].reset_index(names="idx")
    left = left.sort_values("date_of_service", kind="mergesort")
    right = mue.assign(effective=pd.to_datetime(mue["effective_date"])).sort_values("effective")
    left["date_of_service"] = left["date_of_service"].astype("datetime64[ns]")
    right["effective"] = right["effective"].astype("datetime64[ns]")
    left["cpt_code"] = left["cpt_code"].astype(object)
    right["code"] = right["code"].astype(object)
    m = pd.merge_asof(
        left,
        right,
        left_on="date_of_service",
        right_on="effective",
        left_by="cpt_code",
        right_by="code",
        direction="backward",
    ).dropna(subset=["mue_value"])
    if m.empty:
        return findings.empty()
    day_units = m.groupby(["patient_id", "date_of_service", "cpt_code", "clinic_id"])[
        "units"
    ].transform("sum")
    per_line = m["mai"] == "1"
    counted = np.where(per_line, m["units"], day_units)
    over = counted > m["mue_value"]
    m = m[over]
    counted = counted[over.to_numpy()]
    mai_text = np.where(
        m["mai"] == "1",
        "per line (MAI 1)",
        np.where(m["mai"] == "2", "per day, policy (MAI 2)", "per day, clinical (MAI 3)"),
    )
    rows = lines.loc[m["idx"].to_numpy()]
    msg = (
        m["cpt_code"]
        + ": "
        + pd.Series(counted, index=m.index).astype("string")
        + " units "
        + mai_text
        + " exceed the MUE of "
        + m["mue_value"].astype(int).astype("string")
        + " on "
        + _d(m["date_of_service"])
    )
    evidence = (
        night.ref.version("mue.csv")
        + ": "
        + m["code"]
        + " mue_value="
        + m["mue_value"].astype(int).astype("string")
        + " mai="
        + m["mai"]
        + " effective "
        + m["effective_date"].astype("string")
        + np.where(
            m.get("sample", pd.Series("", index=m.index)).astype("string") == "true",
            " (sample row)",
            "",
        )
    )
    return findings.make("MUE_EXCEEDED", rows, msg.to_numpy(), evidence=evidence.to_numpy())


@rule("DAILY_UNIT_CAP_EXCEEDED")
def daily_unit_cap(night: Night) -> pd.DataFrame:
    lines = night.lines
    cap = lines["max_timed_units_per_day"]
    timed = lines["timed"] & (lines["units"] > 0) & cap.notna()
    if not timed.any():
        return findings.empty()
    t = lines[timed]
    total = t.groupby(["payer_id", "patient_id", "date_of_service", "discipline"])[
        "units"
    ].transform("sum")
    over = total > t["max_timed_units_per_day"]
    r = t[over]
    return findings.make(
        "DAILY_UNIT_CAP_EXCEEDED",
        r,
        total[over].astype("string")
        + " timed units for "
        + r["discipline"]
        + " on "
        + _d(r["date_of_service"])
        + " exceed "
        + r["payer_id"]
        + "'s daily cap of "
        + r["max_timed_units_per_day"].astype("string"),
        evidence="payers.csv "
        + r["payer_id"]
        + " max_timed_units_per_day="
        + r["max_timed_units_per_day"].astype("string")
        + " ("
        + night.ref.version("payers.csv")
        + ")",
    )


@rule("AUTH_MISSING", "VISIT_LIMIT_EXCEEDED", "POC_EXPIRED")
def authorization_and_plan(night: Night) -> pd.DataFrame:
    lines = night.lines
    no_auth = (
        lines["requires_prior_auth"].fillna(False).astype(bool) & lines["prior_auth_number"].isna()
    )
    a = _first_per_claim(lines[no_auth])
    over = (
        lines["visit_number"].notna()
        & lines["authorized_visits"].notna()
        & (lines["visit_number"] > lines["authorized_visits"])
    )
    v = _first_per_claim(lines[over])
    dos = lines["date_of_service"]
    early = lines["plan_of_care_start"].notna() & (dos < lines["plan_of_care_start"])
    late = lines["plan_of_care_end"].notna() & (dos > lines["plan_of_care_end"])
    p = _first_per_claim(lines[early | late])
    return findings.concat(
        [
            findings.make(
                "AUTH_MISSING",
                a,
                a["payer_id"]
                + " requires prior authorization; the visit on "
                + _d(a["date_of_service"])
                + " has no prior_auth_number",
                evidence="payers.csv "
                + a["payer_id"]
                + " requires_prior_auth=true ("
                + night.ref.version("payers.csv")
                + ")",
            ),
            findings.make(
                "VISIT_LIMIT_EXCEEDED",
                v,
                "visit "
                + v["visit_number"].astype("string")
                + " of "
                + v["authorized_visits"].astype("string")
                + " authorized ("
                + _d(v["date_of_service"])
                + ")",
                evidence="extract: authorized_visits, visit_number",
            ),
            findings.make(
                "POC_EXPIRED",
                p,
                "date of service "
                + _d(p["date_of_service"])
                + " is outside the plan of care "
                + _d(p["plan_of_care_start"])
                + " to "
                + _d(p["plan_of_care_end"]),
                evidence="MBPM ch. 15 220.1 (certified plan of care)",
            ),
        ]
    )


# --------------------------------------------------------------------------- payer-class edits


@rule("CODE_NOT_COVERED")
def code_not_covered(night: Night) -> pd.DataFrame:
    lines, edits = night.lines, night.ref.code_edits
    if edits.empty:
        return findings.empty()
    m = (
        lines[["payer_class", "cpt_code"]]
        .reset_index(names="idx")
        .merge(edits, left_on=["payer_class", "cpt_code"], right_on=["payer_class", "code"])
    )
    r = lines.loc[m["idx"].to_numpy()]
    return findings.make(
        "CODE_NOT_COVERED",
        r,
        (
            m["problem"]
            + " (payer "
            + r["payer_id"].to_numpy()
            + ", "
            + _d(r["date_of_service"]).to_numpy()
            + ")"
        ).to_numpy(),
        evidence=(
            night.ref.version("code_edits.csv")
            + ": "
            + m["payer_class"]
            + "/"
            + m["code"]
            + " ("
            + m.get("source", pd.Series("", index=m.index)).astype("string")
            + ")"
        ).to_numpy(),
        suggested_fix=m["fix"].to_numpy(),
    )


@rule("CMT_AT_MISSING")
def cmt_at_missing(night: Night) -> pd.DataFrame:
    lines = night.lines
    bad = (
        (lines["payer_class"] == "medicare")
        & lines["cpt_code"].isin(CMT_CODES)
        & ~_has_mod(lines["modifiers"], "AT|GA")
    )
    r = lines[bad]
    return findings.make(
        "CMT_AT_MISSING",
        r,
        r["cpt_code"]
        + " to Medicare without AT ("
        + _where(r)
        + ") is processed as maintenance care and denied",
        evidence="billing-rules.md 5.5 (Palmetto; Noridian)",
    )


@rule("KX_REQUIRED")
def kx_required(night: Night) -> pd.DataFrame:
    """Medicare Part B therapy: once a patient's billed therapy charges this calendar year (earlier
    nights plus tonight, in date order) pass the year's threshold, each further line needs KX.
    PT and SLP share one threshold, OT has its own. Charges stand in for allowed amounts."""
    lines, kx = night.lines, night.ref.kx
    t = lines[
        (lines["payer_class"] == "medicare")
        & lines["always_therapy"]
        & (lines["units"] > 0)
        & lines["discipline"].isin(["PT", "SLP", "OT"])
    ]
    if t.empty or kx.empty:
        return findings.empty()
    t = t.assign(
        year=t["date_of_service"].dt.year, bucket=np.where(t["discipline"] == "OT", "OT", "PT/SLP")
    )
    t = t.sort_values(["date_of_service", "claim_id", "line_id"], kind="mergesort")
    keys = ["patient_id", "year", "bucket"]
    tonight = t.groupby(keys, sort=False)["charge_amount"].cumsum()
    prior = night.kx_history
    if prior is not None and not prior.empty:
        earlier = t[keys].merge(prior, on=keys, how="left")["charges"].fillna(0).to_numpy()
    else:
        earlier = np.zeros(len(t))
    running = tonight.to_numpy() + earlier
    threshold = np.where(t["bucket"] == "OT", t["year"].map(kx["ot"]), t["year"].map(kx["pt_slp"]))
    need = (running > threshold) & ~_has_mod(t["modifiers"], "KX").to_numpy()
    need &= ~pd.isna(threshold)
    r = t[need]
    if r.empty:
        return findings.empty()
    return findings.make(
        "KX_REQUIRED",
        r,
        "Medicare "
        + r["bucket"]
        + " therapy charges for patient "
        + r["patient_id"]
        + " in "
        + r["year"].astype("string")
        + " reach $"
        + pd.Series(running[need], index=r.index).round(2).astype("string")
        + ", above the $"
        + pd.Series(threshold[need], index=r.index).round(0).astype(int).astype("string")
        + " KX threshold; "
        + r["cpt_code"]
        + " on "
        + _d(r["date_of_service"])
        + " lacks KX",
        evidence=night.ref.version("kx_thresholds.csv")
        + ": "
        + r["year"].astype("string")
        + " "
        + r["bucket"]
        + " threshold (charges of earlier nights from scored/)",
    )
