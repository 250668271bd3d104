"""Modifier rules: the therapy (GP/GO/GN) and assistant (CQ/CO) modifiers a payer needs, added
where missing (the modifier fixers), and modifiers that are unknown, misplaced or mispaired."""

from __future__ import annotations

import numpy as np
import pandas as pd

from therapy_claims import findings
from therapy_claims.rules.engine import (
    CMT_CODES,
    THERAPY_MODIFIER,
    Night,
    as_mask,
    code_on_date,
    has_modifier,
    isin,
    joined,
    message,
    modifier_counts,
    rule,
    select,
    spread,
)
from therapy_claims.rules.providers import billed_under_supervisor


@rule("THERAPY_MODIFIER_ADDED", changes=("modifiers",))
def therapy_modifier_added(night: Night) -> pd.DataFrame:
    lines = night.lines
    codes, uniques = night.distinct("discipline")
    has_wanted = spread(codes, uniques.map(THERAPY_MODIFIER).notna().to_numpy(), False)
    # 837I: every 042x/043x/044x line needs its GP/GO/GN whatever the payer
    institutional = as_mask(lines["claim_type"] == "institutional")
    # GP/GO/GN say "under a therapy plan of care": never a chiropractor's service (whose
    # therapy codes Medicare does not cover at all: DC_SERVICE_NOT_COVERED)
    need = (
        (as_mask(lines["requires_therapy_modifiers"]) | institutional)
        & lines["always_therapy"].to_numpy()
        & has_wanted
        & ~has_modifier(night, "GP|GO|GN")
        & ~isin(night, "rendering_credential", ["DC"])
    )
    count = modifier_counts(night)
    room = need & (count < 4)
    r = select(
        lines,
        room,
        "cpt_code",
        "date_of_service",
        "discipline",
        "clinic_id",
        "payer_id",
        "modifiers",
    )
    wanted = r["discipline"].map(THERAPY_MODIFIER)
    mods = r["modifiers"].fillna("")
    after = pd.Series(
        np.where(mods == "", wanted, mods + ";" + wanted), index=r.index, dtype="string"
    )
    out = findings.make(
        "THERAPY_MODIFIER_ADDED",
        r,
        message(
            r,
            r["cpt_code"],
            " had no therapy modifier; added ",
            wanted,
            " from discipline ",
            r["discipline"],
            " (",
            code_on_date(r),
            ")",
        ),
        evidence=message(
            r,
            np.where(
                institutional[room],
                message(
                    r,
                    "837I: revenue codes 042x/043x/044x need GP/GO/GN (clinic ",
                    r["clinic_id"],
                    ")",
                ),
                message(
                    r,
                    "payers.csv ",
                    r["payer_id"],
                    " requires_therapy_modifiers=true (" + night.ref.version("payers.csv") + ")",
                ),
            ),
        ),
        before=mods.replace("", "(none)"),
        after=after,
    )
    night.record_change(room, message(r, "modifiers +", wanted))
    night.update("modifiers", room, after)
    f = select(lines, need & ~room, "cpt_code", "discipline", "modifiers")
    out2 = findings.make(
        "MODIFIER_INVALID",
        f,
        message(
            f,
            f["cpt_code"],
            " needs therapy modifier ",
            f["discipline"].map(THERAPY_MODIFIER),
            " but already carries 4 modifiers (",
            f["modifiers"],
            ")",
        ),
        evidence="X12 837 SV101: at most 4 modifiers",
    )
    return findings.concat([out, out2])


@rule("ASSISTANT_MODIFIER_ADDED", changes=("modifiers",), reads=("modifiers",))
def assistant_modifier_added(night: Night) -> pd.DataFrame:
    """CQ (PTA) / CO (OTA) on assistants' therapy lines to Medicare and Medicare Advantage,
    and on every assistant's line that goes out under the supervising therapist (a payer
    that does not let assistants render, payers.csv ``assistants_may_render``): the
    supervisor's NPI on the claim must still show that an assistant furnished the service."""
    lines = night.lines
    medicare = isin(night, "payer_class", ["medicare", "medicare_advantage"])
    credential, discipline = lines["rendering_credential"], lines["discipline"]
    cq = as_mask((credential == "PTA") & (discipline == "PT"))
    co = as_mask((credential == "OTA") & (discipline == "OT"))
    ota = as_mask(credential == "OTA")
    under = billed_under_supervisor(night)
    need = ((medicare & lines["always_therapy"].to_numpy() & (cq | co)) | under) & ~has_modifier(
        night, "CQ|CO"
    )
    room = need & (modifier_counts(night) < 4)
    r = select(
        lines,
        room,
        "cpt_code",
        "date_of_service",
        "rendering_credential",
        "payer_id",
        "payer_class",
        "modifiers",
    )
    want = pd.Series(np.where(ota[room], "CO", "CQ"), index=r.index, dtype="string")
    mods = r["modifiers"].fillna("")
    after = pd.Series(np.where(mods == "", want, mods + ";" + want), index=r.index, dtype="string")
    out = findings.make(
        "ASSISTANT_MODIFIER_ADDED",
        r,
        message(
            r,
            r["cpt_code"],
            " was furnished by a ",
            r["rendering_credential"],
            "; added ",
            want,
            " (",
            code_on_date(r),
            ")",
        ),
        evidence=message(
            r,
            "payers.csv ",
            r["payer_id"],
            np.where(
                under[room] & ~medicare[room],
                " assistants_may_render=false: billed under the supervising therapist's NPI, "
                "the modifier shows the assistant",
                message(
                    r,
                    " payer_class=",
                    r["payer_class"],
                    "; CQ/CO required from 2020 (billing-rules.md 5.3)",
                ),
            ),
        ),
        before=mods.replace("", "(none)"),
        after=after,
    )
    night.record_change(room, message(r, "modifiers +", want))
    night.update("modifiers", room, after)
    full = need & ~room
    f = select(lines, full, "cpt_code")
    return findings.concat(
        [
            out,
            findings.make(
                "MODIFIER_INVALID",
                f,
                message(
                    f,
                    f["cpt_code"],
                    " needs assistant modifier ",
                    np.where(ota[full], "CO", "CQ"),
                    " but already carries 4 modifiers",
                ),
                evidence="X12 837 SV101: at most 4 modifiers",
            ),
        ]
    )


@rule("MODIFIER_INVALID", reads=("modifiers",))
def modifier_unknown(night: Night) -> pd.DataFrame:
    """Well-formed modifiers that are not in modifiers.csv, and AT off a CMT code (format and
    count are checked by the modifier_consistency GX suite)."""
    lines = night.lines
    known = night.ref.modifiers.index
    codes, unknown = joined(
        night,
        "modifiers",
        lambda v: v.str.fullmatch(r"[A-Z0-9]{2}").fillna(False).astype(bool) & ~v.isin(known),
    )
    bad = spread(codes, pd.notna(unknown), False)
    r = select(lines, bad, "cpt_code", "date_of_service")
    out = [
        findings.make(
            "MODIFIER_INVALID",
            r,
            message(
                r,
                r["cpt_code"],
                ": modifier(s) ",
                spread(codes[bad], unknown, None),
                " not in modifiers.csv (",
                code_on_date(r),
                ")",
            ),
            evidence=night.ref.version("modifiers.csv"),
            suggested_fix="Correct the modifier; if it is valid for this payer, add it to modifiers.csv.",
        )
    ]
    has_at = has_modifier(night, "AT")
    a = select(lines, has_at & ~isin(night, "cpt_code", CMT_CODES), "cpt_code")
    out.append(
        findings.make(
            "MODIFIER_INVALID",
            a,
            message(a, a["cpt_code"], " carries AT, which is only for CMT 98940-98942"),
            evidence="billing-rules.md 5.5 (Palmetto; Noridian)",
        )
    )
    b = select(lines, has_at & has_modifier(night, "GA|GX|GY|GZ"), "cpt_code", "modifiers")
    out.append(
        findings.make(
            "MODIFIER_INVALID",
            b,
            message(
                b, b["cpt_code"], ": AT cannot be combined with GA/GX/GY/GZ (", b["modifiers"], ")"
            ),
            evidence="billing-rules.md 5.5 (DOS >= 2015-11-01)",
        )
    )
    return findings.concat(out)


@rule("THERAPY_MODIFIER_MISMATCH", reads=("modifiers",))
def assistant_pairing(night: Night) -> pd.DataFrame:
    """CQ only with GP, CO only with GO (after automatic additions)."""
    lines = night.lines
    # only where the payer uses therapy modifiers (Medicare, MA, or payers.csv says so)
    uses = as_mask(lines["requires_therapy_modifiers"]) | isin(
        night, "payer_class", ["medicare", "medicare_advantage"]
    )
    bad = uses & (
        (has_modifier(night, "CQ") & ~has_modifier(night, "GP"))
        | (has_modifier(night, "CO") & ~has_modifier(night, "GO"))
    )
    r = select(lines, bad, "cpt_code", "modifiers", "date_of_service")
    return findings.make(
        "THERAPY_MODIFIER_MISMATCH",
        r,
        message(
            r,
            r["cpt_code"],
            ": modifiers ",
            r["modifiers"].fillna(""),
            " pair an assistant modifier with the wrong plan (CQ goes with GP, CO with GO) (",
            code_on_date(r),
            ")",
        ),
        evidence="billing-rules.md 5.3",
    )
