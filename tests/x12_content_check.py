"""A structural checker for the claim content rules of issue 15 (docs: the issue-15 brief's "837
shapes"): what a clearinghouse front end or a payer would reject or deny even though the file
passes pyx12.

Independent of the writer: it parses the X12 text itself and imports nothing of
``therapy_claims.x12``, so a bug in the writer cannot hide itself. ``check_837`` returns one
line per problem, each naming the claim (CLM01) and the rule; [] means the claims follow the
rules. ``duplicate_control_numbers`` checks ISA13 across files.

Not checkable from the text alone, so not checked: a double space or a word glued to its
neighbour where a delimiter was cleaned out of a name.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

CMT_CODES = ("98940", "98941", "98942")
# 837I revenue code family -> (occurrence code: date treatment started, plan of care code)
THERAPY_OCCURRENCES = {"042": ("35", "29"), "043": ("44", "17"), "044": ("45", "30")}
# related cause (837P CLM11-1) -> occurrence code on the 837I
CAUSE_OCCURRENCE = {"EM": "04", "AA": "01", "OA": "05"}
MAX_DIAGNOSES = {"P": 12, "I": 25}


def segments(text: str) -> tuple[list[list[str]], str]:
    """The interchange's segments (each a list of elements) and its component separator,
    read from the ISA's own delimiters (ISA is fixed width: 106 characters)."""
    body = text.lstrip("\r\n\t ")
    if not body.startswith("ISA") or len(body) < 106:
        raise ValueError("not an X12 interchange: no 106-character ISA")
    ele, comp, term = body[3], body[104], body[105]
    segs = [s.strip("\r\n").split(ele) for s in body.split(term)]
    return [s for s in segs if s and s != [""]], comp


def _el(seg: list[str], i: int) -> str:
    return seg[i] if len(seg) > i else ""


@dataclass
class Claim:
    """What the checks read of one 2300 loop (with its 2400 lines) and its subscriber."""

    kind: str  # "P" (005010X222) or "I" (005010X223)
    clm: list[str]
    comp: str = ":"  # the component separator (ISA16)
    sbr09: str = ""
    payer_id: str = ""  # NM1*PR NM109
    insured_entity: str = ""  # NM1*IL NM102: 1 person, 2 non-person (the employer)
    patient_rel: str = ""  # PAT01 of a 2000C patient loop ("" when the patient is insured)
    dtp: set[str] = field(default_factory=set)
    dx: int = 0
    occurrences: dict[str, str] = field(default_factory=dict)  # code -> date
    cl1: list[str] = field(default_factory=list)
    referring: bool = False
    providers: list[tuple[str, str, str]] = field(default_factory=list)  # (NM101, NPI, taxonomy)
    codes: list[str] = field(default_factory=list)  # SV1/SV2 procedure codes
    revenue: list[str] = field(default_factory=list)

    @property
    def id(self) -> str:
        return _el(self.clm, 1)


def claims(text: str) -> list[Claim]:
    """Every claim of the interchange with its subscriber's and payer's values."""
    segs, comp = segments(text)
    out: list[Claim] = []
    kind = "P"
    sub: dict[str, str] = {}
    claim: Claim | None = None
    for seg in segs:
        sid = seg[0]
        if sid == "GS":
            kind = "I" if "X223" in _el(seg, 8) else "P"
        elif sid == "HL":
            claim = None
            if _el(seg, 3) == "22":  # a new subscriber: forget the last one's values
                sub = {}
        elif sid == "SBR":
            sub["sbr09"] = _el(seg, 9)
        elif sid == "NM1" and claim is None:
            if _el(seg, 1) == "PR":
                sub["payer"] = _el(seg, 9)
            elif _el(seg, 1) == "IL":
                sub["insured"] = _el(seg, 2)
        elif sid == "PAT" and claim is None:
            sub["pat"] = _el(seg, 1)
        elif sid == "CLM":
            claim = Claim(
                kind=kind,
                clm=seg,
                comp=comp,
                sbr09=sub.get("sbr09", ""),
                payer_id=sub.get("payer", ""),
                insured_entity=sub.get("insured", ""),
                patient_rel=sub.get("pat", ""),
            )
            out.append(claim)
        elif claim is not None:
            _claim_segment(claim, seg, comp)
        if sid in ("SE", "GE", "IEA"):
            claim = None
    return out


def _claim_segment(claim: Claim, seg: list[str], comp: str) -> None:
    sid = seg[0]
    if sid == "DTP":
        claim.dtp.add(_el(seg, 1))
    elif sid == "HI":
        for part in seg[1:]:
            bits = part.split(comp)
            if bits[0] in ("ABK", "ABF", "BK", "BF"):
                claim.dx += 1
            elif bits[0] in ("BH", "BQ"):
                claim.occurrences[_el(bits, 1)] = _el(bits, 3)
    elif sid == "CL1":
        claim.cl1 = seg
    elif sid == "NM1" and _el(seg, 1) == "DN":
        claim.referring = True
    elif sid == "NM1" and _el(seg, 1) in ("82", "71"):
        claim.providers.append((_el(seg, 1), _el(seg, 9), ""))
    elif sid == "NM1":
        claim.providers.append((_el(seg, 1), "", ""))  # another party: its PRV is not ours
    elif sid == "PRV" and claim.providers and _el(seg, 1) in ("PE", "AT"):
        role, npi, _ = claim.providers[-1]
        claim.providers[-1] = (role, npi, _el(seg, 3))
    elif sid == "SV1":
        claim.codes.append(_el(_el(seg, 1).split(comp), 1))
    elif sid == "SV2":
        claim.revenue.append(_el(seg, 1))
        claim.codes.append(_el(_el(seg, 2).split(comp), 1))


def _payer_table(payers: pd.DataFrame) -> dict[str, dict]:
    """clearinghouse_payer_id -> the payer's settings (the first payer routed by that id)."""
    table: dict[str, dict] = {}
    for rec in payers.reset_index(drop="payer_id" in payers.columns).to_dict("records"):
        table.setdefault(str(rec["clearinghouse_payer_id"]).upper(), rec)
    return table


def check_837(
    text: str,
    *,
    payers: pd.DataFrame,
    assistants: set[str] | frozenset[str] = frozenset(),
    providers: pd.DataFrame | None = None,
) -> list[str]:
    """The content problems of an 837P/837I interchange, one line each: "<CLM01>: <rule>:
    <detail>". ``payers`` is payers.csv as ``reference.load`` reads it (payer_class,
    clearinghouse_payer_id, assistants_may_render, requires_referring); ``assistants`` the
    NPIs of PTAs/OTAs (never a rendering or attending provider where the payer does not let
    them render); ``providers`` providers.csv (npi, taxonomy) when there is one."""
    by_route = _payer_table(payers)
    taxonomy = {}
    if providers is not None and len(providers):
        taxonomy = dict(zip(providers["npi"].astype(str), providers["taxonomy"], strict=True))
    problems: list[str] = []
    for c in claims(text):
        payer = by_route.get(c.payer_id.upper())
        found = _check_claim(c, payer, assistants, taxonomy)
        problems += [f"{c.id}: {p}" for p in found]
    return problems


def _check_claim(c: Claim, payer: dict | None, assistants, taxonomy: dict) -> list[str]:
    out: list[str] = []
    if payer is None:
        out.append(f"payer id: NM1*PR NM109 {c.payer_id!r} is not a clearinghouse_payer_id")
    cls = payer["payer_class"] if payer else ""
    if c.dx > MAX_DIAGNOSES[c.kind]:
        out.append(f"diagnoses: {c.dx} on an 837{c.kind}, at most {MAX_DIAGNOSES[c.kind]}")
    for role, npi, tax in c.providers:
        if not npi:
            continue
        what = "rendering" if role == "82" else "attending"
        if npi in assistants and payer is not None and not payer["assistants_may_render"]:
            out.append(
                f"assistant renders: {what} NPI {npi} is an assistant and payer "
                f"{c.payer_id} does not let assistants render"
            )
        if npi in taxonomy and tax and tax != taxonomy[npi]:
            out.append(f"taxonomy: {what} NPI {npi} PRV {tax}, providers.csv {taxonomy[npi]}")
    if payer is not None and payer["requires_referring"] and not c.referring:
        out.append(f"referring: payer {c.payer_id} requires a referring provider, no NM1*DN")
    if c.sbr09 == "WC" and (c.insured_entity != "2" or c.patient_rel != "20"):
        out.append(
            "employer: workers' comp claim without the employer as insured "
            f"(NM1*IL*{c.insured_entity or '?'}, PAT*{c.patient_rel or '-'})"
        )
    if c.kind == "P":
        out += _check_professional(c)
    else:
        out += _check_institutional(c, cls)
    return out


def _related(c: Claim) -> list[str]:
    return _el(c.clm, 11).split(c.comp) if _el(c.clm, 11) else []


def _check_professional(c: Claim) -> list[str]:
    out: list[str] = []
    if c.sbr09 == "MB" and any(code in CMT_CODES for code in c.codes) and "454" not in c.dtp:
        out.append("initial treatment: Medicare CMT claim without DTP*454")
    cause = _related(c)
    if c.sbr09 == "WC":
        if "EM" not in cause[:3]:
            out.append(f"related cause: workers' comp claim without CLM11 EM ({_el(c.clm, 11)!r})")
        if "439" not in c.dtp:
            out.append("accident date: workers' comp claim without DTP*439")
    if c.sbr09 == "AM":
        if "AA" not in cause[:3] or len(_el(cause, 3)) != 2:
            out.append(
                f"related cause: auto claim without CLM11 AA and a state ({_el(c.clm, 11)!r})"
            )
        if "439" not in c.dtp:
            out.append("accident date: auto claim without DTP*439")
    if cause and "439" not in c.dtp and c.sbr09 not in ("WC", "AM"):
        out.append("accident date: a claim with a related cause without DTP*439")
    return out


def _check_institutional(c: Claim, cls: str) -> list[str]:
    out: list[str] = []
    if _el(c.clm, 11):
        out.append(f"related cause: CLM11 {_el(c.clm, 11)!r} on an 837I")
    if c.cl1 and not _el(c.cl1, 2):
        out.append("point of origin: CL1 without CL102")
    for sbr09, code, what in (("WC", "04", "workers' comp"), ("AM", "01", "auto")):
        if c.sbr09 == sbr09 and code not in c.occurrences:
            out.append(f"occurrence: {what} claim without occurrence code {code}")
    if cls != "medicare":
        return out
    if c.sbr09 != "MA":
        out.append(f"filing indicator: Medicare 837I with SBR09 {c.sbr09!r}, not MA")
    if not c.cl1 or not _el(c.cl1, 2):
        out.append("point of origin: Medicare 837I without CL102")
    families = sorted({rev[:3] for rev in c.revenue if rev[:3] in THERAPY_OCCURRENCES})
    for fam in families:
        started, plan = THERAPY_OCCURRENCES[fam]
        for code, what in ((started, "date treatment started"), (plan, "plan of care")):
            if code not in c.occurrences:
                out.append(f"occurrence: revenue {fam}x without occurrence code {code} ({what})")
    wanted = {code for fam in families for code in THERAPY_OCCURRENCES[fam]}
    therapy = {code for pair in THERAPY_OCCURRENCES.values() for code in pair}
    for code in sorted((set(c.occurrences) & therapy) - wanted):
        out.append(f"occurrence: code {code} without a line of its discipline")
    return out


def duplicate_control_numbers(texts: list[str]) -> list[str]:
    """ISA13 used by two different interchanges of one sender (ISA06) across ``texts``: a
    front end rejects the second as a duplicate. The same interchange twice (a byte-identical
    rerun of identical content) is one interchange, not a duplicate."""
    seen: dict[tuple[str, str], str] = {}
    problems: list[str] = []
    for i, text in enumerate(texts):
        segs, _ = segments(text)
        isa = segs[0]
        key = (_el(isa, 6).strip(), _el(isa, 13))
        body = text.strip()
        if key in seen and seen[key] != body:
            problems.append(f"file {i}: ISA13 {key[1]} of sender {key[0]} is used again")
        seen.setdefault(key, body)
    return problems
