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

from therapy_claims import findings, npi, units
from therapy_claims.reference import Reference

THERAPY_MODIFIER = {"PT": "GP", "OT": "GO", "SLP": "GN"}
ICD10_SHAPE = r"[A-TV-Z][0-9][0-9A-Z](\.?[0-9A-Z]{1,4})?"


@dataclass
class Night:
    lines: pd.DataFrame
    ref: Reference
    run_date: date
    changes: list[pd.Series] = field(default_factory=list)

    def record_change(self, mask: pd.Series, text: pd.Series | str) -> None:
        s = pd.Series(pd.NA, index=self.lines.index, dtype="string")
        s[mask] = text[mask] if isinstance(text, pd.Series) else text
        self.changes.append(s)

    def change_lists(self) -> pd.Series:
        """One list of change strings per line, in the order the rules made them."""
        if not self.changes:
            return pd.Series([[] for _ in range(len(self.lines))], index=self.lines.index)
        stacked = pd.concat(self.changes, axis=1)
        return stacked.apply(lambda r: [v for v in r if not pd.isna(v)], axis=1)


RuleFn = Callable[[Night], pd.DataFrame]
REGISTRY: list[tuple[tuple[str, ...], RuleFn]] = []


def rule(*codes: str) -> Callable[[RuleFn], RuleFn]:
    def register(fn: RuleFn) -> RuleFn:
        REGISTRY.append((codes, fn))
        return fn

    return register


def run_all(night: Night) -> pd.DataFrame:
    return findings.concat([fn(night) for _, fn in REGISTRY])


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
    dx = lines["diagnosis_codes"].fillna("")
    codes = dx.str.split(";")
    n = codes.str.len()
    exploded = codes.explode()
    bad_code = ~exploded.str.fullmatch(ICD10_SHAPE).fillna(False).astype(bool)
    first_bad = exploded[bad_code].groupby(level=0).first()
    shape_bad = lines.index.isin(first_bad.index)
    too_many = n > 12
    ptrs = lines["diagnosis_pointers"].fillna("1").str.split(";").explode()
    ptr_num = pd.to_numeric(ptrs, errors="coerce")
    ptr_bad_row = (
        (ptr_num.isna() | (ptr_num < 1) | (ptr_num > n.reindex(ptr_num.index)))
        .groupby(level=0)
        .any()
    )
    ptr_count = lines["diagnosis_pointers"].fillna("1").str.count(";") + 1
    ptr_bad = ptr_bad_row.reindex(lines.index).fillna(False).astype(bool) | (ptr_count > 4)
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
    need = (
        lines["requires_therapy_modifiers"].fillna(False).astype(bool)
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
        evidence="payers.csv "
        + r["payer_id"]
        + " requires_therapy_modifiers=true ("
        + night.ref.version("payers.csv")
        + ")",
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
