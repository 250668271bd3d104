"""A plain, claim-by-claim 837P / 837I writer kept as a test oracle for ``therapy_claims.x12``.

Why this exists: ``x12.build_837p`` / ``x12.build_837i`` are a fast column-wise writer (codes
into distinct texts joined by Arrow, checks over whole columns). Restructuring it is only safe
if something independent says what the bytes must be. This module is that something: the
writer as it was before commit 765967a (one loop over claims, one over each claim's lines),
kept in step with the fast writer since, so both give byte-identical text, the same
``rejected`` / ``placed`` dicts and the same exceptions (tests/test_oracle_837.py).

Rules it keeps to:
* It calls nothing of the fast writer: the per-value helpers (text cleaning, the NPI check
  digit, money, list parsing) are plain copies. Only public constants are read from
  ``therapy_claims.x12``, and ``x12.MAX_CLAIMS_PER_ST`` at call time, so a test that
  monkeypatches it shrinks the transaction sets of both writers alike.
* Simple over quick: a night of a few thousand lines takes well under a second; nothing is
  cached or vectorised beyond the column-wise parsing of dates and numbers, which stays
  column-wise on purpose (pandas infers one date format per column of text dates, and the
  writer has always parsed them that way).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import datetime

import numpy as np
import pandas as pd

from therapy_claims import x12
from therapy_claims.x12 import (
    CREDENTIAL_TAXONOMY,
    MAX_DIAGNOSES,
    MAX_DIAGNOSES_I,
    MAX_LINES_PER_CLAIM,
    MAX_LINES_PER_CLAIM_I,
    RELATIONSHIP_PAT01,
    REVENUE_CODES,
    SUPERVISOR_TAXONOMY,
    THERAPY_MODIFIERS,
    VERSION,
    VERSION_I,
)

# ---- per-value helpers: plain copies, so a change in the writer's cannot hide itself -------

# Characters NFKD does not decompose into ASCII.
_TRANSLIT = str.maketrans(
    {
        "ß": "SS",
        "ẞ": "SS",
        "Æ": "AE",
        "æ": "AE",
        "Ø": "O",
        "ø": "O",
        "Œ": "OE",
        "œ": "OE",
        "Ł": "L",
        "ł": "L",
        "Đ": "D",
        "đ": "D",
        "Ð": "D",
        "ð": "D",
        "Þ": "TH",
        "þ": "TH",
        "ı": "I",
        "Ħ": "H",
        "ħ": "H",
        "Ŧ": "T",
        "ŧ": "T",
        "‘": "'",
        "’": "'",
        "‚": "'",
        "“": '"',
        "”": '"',
        "„": '"',
        "–": "-",
        "—": "-",
        "‐": "-",
        "‑": "-",
        "−": "-",
    }
)
_NOT_BASIC = re.compile(r"[^A-Z0-9 !\"&'()+,\-./;?=]")
_NOT_CODE = re.compile(r"[^A-Z0-9]")
# REF02 of the 2400 REF*6R (line item control number): AN 1-50 in both guides (X222A1, X223A2)
LINE_ITEM_CONTROL_MAX = 50


def is_na(value: object) -> bool:
    """None, pd.NA, NaT and NaN all count as missing (list-likes never do)."""
    if value is None or value is pd.NA or value is pd.NaT:
        return True
    if isinstance(value, str):
        return False
    if isinstance(value, float):
        return value != value
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):  # list-likes
        return False


def _is_break(ch: str) -> bool:
    """A character that separates words: whitespace, an X12 delimiter, a control character."""
    return ch.isspace() or ch in "*:^~|" or ord(ch) < 0x20 or 0x7F <= ord(ch) <= 0x9F


def clean_text(value: object, max_len: int | None = None) -> str:
    """What an X12 element may carry: upper-case ASCII of the basic character set; each
    whitespace character, X12 delimiter (``* : ^ ~ |``) and control character (C0, DEL, C1)
    a space and any other character outside the set dropped; space runs as one space,
    stripped, cut to ``max_len``."""
    if is_na(value):
        return ""
    text = str(value)
    if not text.isascii():
        text = unicodedata.normalize("NFKD", text.translate(_TRANSLIT))
        text = "".join(ch for ch in text if not unicodedata.combining(ch))
        text = text.translate(_TRANSLIT)  # NFKD may expose more (compatibility forms)
    text = "".join(" " if _is_break(ch) else ch for ch in text.upper())
    text = _NOT_BASIC.sub("", text)
    text = re.sub(r" {2,}", " ", text).strip()
    if max_len is not None and len(text) > max_len:
        text = text[:max_len].rstrip()
    return text


def digits(value: object) -> str:
    """The digits of a value (any Unicode digit, as Python's ``\\D`` sees them)."""
    return "" if is_na(value) else re.sub(r"\D", "", str(value))


def money(cents: int) -> str:
    """An X12 R amount from integer cents: 150, 87.5, 87.25 (no trailing zeros)."""
    sign = "-" if cents < 0 else ""
    whole, frac = divmod(abs(cents), 100)
    if frac == 0:
        return f"{sign}{whole}"
    return f"{sign}{whole}.{frac:02d}".rstrip("0")


def listish(value: object) -> list:
    """A list from a list/array cell, or from the extract's ``;``-joined text."""
    if value is None:
        return []
    if isinstance(value, str):
        return [v for v in value.split(";") if v]
    if isinstance(value, list | tuple | np.ndarray | pd.Series):
        return list(value)
    return [] if is_na(value) else [value]


def npi_ok(text: str) -> bool:
    """NPI check digit: Luhn over ``80840`` + the first nine digits."""
    if not re.fullmatch(r"[12][0-9]{9}", text):
        return False
    total = 24  # the 80840 prefix
    for i, ch in enumerate(reversed(text[:9])):
        d = int(ch) * (2 if i % 2 == 0 else 1)
        total += d - 9 if d > 9 else d
    return (10 - total % 10) % 10 == int(text[9])


def service_code(cpt: object, modifiers: list) -> str | None:
    """SV101 / SV202 ``HC:code[:mod...]``, or None when the code or a modifier is malformed."""
    code = clean_text(cpt)
    mods = [clean_text(m) for m in modifiers]
    if not re.fullmatch(r"[A-Z0-9]{5}", code) or len(mods) > 4:
        return None
    if not all(re.fullmatch(r"[A-Z0-9]{2}", m) for m in mods):
        return None
    return ":".join(["HC", code, *mods])


def pointers(values: list) -> tuple[str, int] | None:
    """(``1:2`` composite, highest pointer), or None unless 1-4 whole numbers 1..12."""
    try:
        numbers = [int(p) for p in values]
    except (TypeError, ValueError):
        return None
    if not 1 <= len(numbers) <= 4 or any(not 1 <= v <= MAX_DIAGNOSES for v in numbers):
        return None
    if any(float(p) != v for p, v in zip(values, numbers, strict=True)):
        return None
    return ":".join(map(str, numbers)), max(numbers)


def place_code(value: object) -> str | None:
    """A 2-digit place of service, or None."""
    text = clean_text(value)
    return text if re.fullmatch(r"\d{2}", text) else None


def diagnosis_codes(value: object) -> list[str]:
    """ICD-10-CM codes as HI carries them: cleaned, without the dot, empties dropped."""
    codes = [_NOT_CODE.sub("", clean_text(d)) for d in listish(value)]
    return [d for d in codes if d]


# ---- claim content by payer class and claim type -------------------------------------------

# related cause: (837P CLM11-1, 837I occurrence code); the payer class gives one when the
# extract's related_cause is empty
CAUSES = {"employment": ("EM", "04"), "auto_accident": ("AA", "01"), "other_accident": ("OA", "05")}
CAUSE_OF_PAYER_CLASS = {"workers_comp": "employment", "auto": "auto_accident"}
CMT = ("98940", "98941", "98942")  # Medicare CMT claims carry DTP*454
# 837I to Medicare: (date treatment started, plan of care established) per discipline
OCCURRENCE = {"PT": ("35", "29"), "OT": ("44", "17"), "SLP": ("45", "30")}
EMPLOYEE = "20"  # PAT01 of a workers' comp patient under the employer as the insured

# ---- checks: a value a claim cannot carry raises Unwritable --------------------------------

EMPTY = "is empty after removing characters X12 cannot carry"
BAD_NPI = "is not a valid NPI (10 digits with a correct check digit)"


class Unwritable(Exception):
    """``field problem`` of a value the 837 cannot carry (never the value: it is PHI).

    ``scope`` ("clinic" / "payer") says the problem is in that reference row, which the
    rejection message then names: ``claim X (clinic C): ...``.
    """

    def __init__(self, field: str, problem: str, scope: str = ""):
        super().__init__(f"{field} {problem}")
        self.scope = scope


def required(value: object, field: str, max_len: int, min_len: int = 1) -> str:
    """Free text that must not be empty after cleaning (it is cut, not refused, when long)."""
    text = clean_text(value, max_len)
    if not text:
        raise Unwritable(field, EMPTY)
    if len(text) < min_len:
        raise Unwritable(field, f"is shorter than {min_len} characters after cleaning")
    return text


def exact(value: object, field: str, pattern: str, what: str) -> str:
    """An identifier that must already be clean: it is sent as is or not at all."""
    text = "" if is_na(value) else str(value).strip()
    if not re.fullmatch(pattern, text) or clean_text(text) != text:
        raise Unwritable(field, f"must be {what}")
    return text


def identifier(value: object, field: str, max_len: int, min_len: int = 0) -> str:
    """Member, group or authorisation number: upper-casing and space collapsing are fine, but
    dropping characters or cutting would send another identifier, so those are refused."""
    text = clean_text(value)
    original = "" if is_na(value) else " ".join(str(value).upper().split())
    if text != original:
        raise Unwritable(field, "contains characters X12 cannot carry")
    if not min_len <= len(text) <= max_len:
        raise Unwritable(field, f"must be {min_len or 1}-{max_len} characters")
    return text


def claim_frequency(first: dict) -> tuple[str, str]:
    """(CLM05-3, REF*F8's control number or '') of a claim: ``claim_frequency`` 1 (also when
    not given), 7 or 8, then ``original_reference`` as an identifier of at most 50; a
    replacement or void needs one, an original takes none."""
    raw = first.get("claim_frequency")
    frequency = "" if is_na(raw) else str(raw).strip()
    frequency = frequency or "1"
    if frequency not in ("1", "7", "8"):
        raise Unwritable("claim_frequency", "is not 1 (original), 7 (replacement) or 8 (void)")
    reference = identifier(first.get("original_reference"), "original_reference", 50)
    if frequency != "1" and not reference:
        raise Unwritable(
            "original_reference",
            "is missing (a replacement or void names the payer's claim control number)",
        )
    if frequency == "1" and reference:
        raise Unwritable("original_reference", "is given for an original claim (frequency 1)")
    return frequency, reference


def zip_code(value: object, field: str, nine: bool = False) -> str:
    """A ZIP of 5 or 9 digits (the billing provider's must have 9)."""
    z = digits(value)
    if len(z) not in ((9,) if nine else (5, 9)):
        raise Unwritable(field, "is not a 9-digit ZIP+4" if nine else "is not 5 or 9 digits")
    return z


def state_code(value: object, field: str) -> str:
    """A 2-letter state code after cleaning."""
    s = clean_text(value)
    if not re.fullmatch(r"[A-Z]{2}", s):
        raise Unwritable(field, "is not a 2-letter state code")
    return s


def npi(value: object, field: str) -> str:
    """An NPI that passes its check digit."""
    s = clean_text(value)
    if not npi_ok(s):
        raise Unwritable(field, BAD_NPI)
    return s


def clinic_entry(clinics: pd.DataFrame, cid: object, institutional: bool) -> dict[str, str]:
    """The clinic's checked billing provider and submitter values."""
    if is_na(cid) or cid not in clinics.index:
        raise Unwritable("clinic_id", "is not in clinics.csv")
    row = clinics.loc[cid]
    claim_type = "institutional" if institutional else "professional"
    try:
        if str(row.get("claim_type", "professional")).strip() != claim_type:
            kind = "837I" if institutional else "837P"
            raise Unwritable("clinic claim_type", f"is not {claim_type} ({kind})")
        tob = ""
        if institutional:
            tob = digits(row.get("type_of_bill", ""))
            if len(tob) == 4 and tob[0] == "0":
                tob = tob[1:]
            if not re.fullmatch(r"[1-9]\d[0-9A-Z]", tob):
                raise Unwritable("clinic type_of_bill", "must be 3 digits, e.g. 131")
        submitter_id = exact(
            row["submitter_id"], "clinic submitter_id", r"[A-Z0-9]{2,15}", "2-15 of A-Z 0-9"
        )
        return {
            "name": required(row["billing_name"], "clinic billing_name", 60),
            "npi": npi(row["billing_npi"], "clinic billing_npi"),
            "tax_id": exact(digits(row["tax_id"]), "clinic tax_id", r"\d{9}", "9 digits"),
            "taxonomy": exact(
                row["taxonomy"], "clinic taxonomy", r"[0-9A-Z]{9}X", "a 10-character taxonomy"
            ),
            "address": required(row["address"], "clinic address", 55),
            "city": required(row["city"], "clinic city", 30, 2),
            "state": state_code(row["state"], "clinic state"),
            "zip": zip_code(row["zip"], "clinic zip", nine=True),
            "submitter_id": submitter_id,
            "submitter_name": required(row["submitter_name"], "clinic submitter_name", 60),
            "phone": required(digits(row["contact_phone"]), "clinic contact_phone", 256),
            "type_of_bill": tob,
            "point_of_origin": point_of_origin(row) if institutional else "",
        }
    except Unwritable as exc:
        exc.scope = "clinic"
        raise


def point_of_origin(row: pd.Series) -> str:
    """837I CL102 of a clinic: its point_of_origin, "1" when empty."""
    value = row.get("point_of_origin", "")
    text = "" if is_na(value) else str(value).strip()
    return exact(text or "1", "clinic point_of_origin", r"[0-9A-Z]", "a 1-character code")


def payer_entry(payers: pd.DataFrame, pid: object) -> dict[str, str]:
    """The payer's checked 2010BB / SBR09 values and its class: NM109 is the clearinghouse
    payer ID; the 837I's SBR09 is claim_filing_indicator_institutional (empty: MA where the
    837P's is MB, else the 837P's)."""
    if is_na(pid) or pid not in payers.index:
        raise Unwritable("payer_id", "is not in payers.csv")
    row = payers.loc[pid]
    try:
        name = required(row["payer_name"], "payer_name", 60)
        routing_id = exact(
            row.get("clearinghouse_payer_id"),
            "payer clearinghouse_payer_id",
            r"[A-Z0-9 .\-]{2,80}",
            "2-80 of A-Z 0-9",
        )
        sbr09 = exact(
            row["claim_filing_indicator"],
            "payer claim_filing_indicator",
            r"[A-Z0-9]{2}",
            "a 2-character SBR09 code",
        )
        institutional = row.get("claim_filing_indicator_institutional", "")
        institutional = "" if is_na(institutional) else str(institutional).strip()
        if not institutional:
            institutional = "MA" if sbr09 == "MB" else sbr09
        sbr09_i = exact(
            institutional,
            "payer claim_filing_indicator_institutional",
            r"[A-Z0-9]{2}",
            "a 2-character SBR09 code",
        )
        payer_class = row.get("payer_class")
        return {
            "name": name,
            "id": routing_id,
            "sbr09": sbr09,
            "sbr09_i": sbr09_i,
            "class": "" if is_na(payer_class) else str(payer_class),
        }
    except Unwritable as exc:
        exc.scope = "payer"
        raise


def payer_flag(payers: pd.DataFrame, pid: object, setting: str) -> bool:
    """payers.csv ``assistants_may_render`` / ``requires_referring``; without the column the
    loader's default (assistants render except for Medicare and Medicare Advantage; no
    referrer required), and the defaults for an unknown payer."""
    known = not is_na(pid) and pid in payers.index
    if known and setting in payers.columns:
        value = payers.loc[pid, setting]
        if isinstance(value, str):
            return value.strip().lower() in ("true", "1", "yes")
        return False if is_na(value) else bool(value)
    if setting == "assistants_may_render":
        payer_class = payers.loc[pid, "payer_class"] if known and "payer_class" in payers else ""
        return payer_class not in ("medicare", "medicare_advantage")
    return False


# ---- providers: the effective renderer, its taxonomy, the referrer ---------------------------

RENDERING = ("rendering_npi", "rendering_last_name", "rendering_first_name")
SUPERVISING = ("supervising_npi", "supervising_last_name", "supervising_first_name")
REFERRING = ("referring_npi", "referring_last_name", "referring_first_name")
SUPERVISOR_MISSING = (
    "is missing (an assistant (PTA/OTA) cannot be the rendering provider for this payer: "
    "payers.csv assistants_may_render is false)"
)


def listed(providers: pd.DataFrame | None, npi_text: str) -> dict | None:
    """providers.csv's row of an NPI (cleaned text), or None."""
    if providers is None or len(providers) == 0 or not npi_text:
        return None
    if npi_text not in providers.index:
        return None
    return providers.loc[npi_text].to_dict()


@dataclass
class Renderer:
    """A line's rendering provider as the 837 names it: the raw NPI and name values, the
    fields they come from (for messages), its taxonomy, and whether it is an assistant's
    supervisor (``subst``)."""

    npi: object
    last: object
    first: object
    fields: tuple[str, str, str]
    taxonomy: str
    subst: bool


def renderer(
    row: dict, assistants_render: bool, clinic: dict[str, str], providers: pd.DataFrame | None
) -> Renderer:
    """The line's renderer: an assistant's supervisor where the payer does not let assistants
    render (the name from the columns, else providers.csv's), else the rendering clinician."""
    credential = clean_text(row.get("rendering_credential"))
    if credential in SUPERVISOR_TAXONOMY and not assistants_render:
        npi_text = clean_text(row.get("supervising_npi"))
        entry = listed(providers, npi_text)
        last, first = row.get("supervising_last_name"), row.get("supervising_first_name")
        if (not clean_text(last, 60) or not clean_text(first, 35)) and entry is not None:
            last, first = entry["last_name"], entry["first_name"]
        taxonomy = clean_text(entry["taxonomy"]) if entry is not None else ""
        taxonomy = taxonomy or SUPERVISOR_TAXONOMY[credential]
        return Renderer(row.get("supervising_npi"), last, first, SUPERVISING, taxonomy, True)
    own = clean_text(row.get("rendering_taxonomy"))
    entry = listed(providers, clean_text(row.get("rendering_npi")))
    if re.fullmatch(r"[0-9A-Z]{9}X", own):
        taxonomy = own
    elif entry is not None and clean_text(entry["taxonomy"]):
        taxonomy = clean_text(entry["taxonomy"])
    else:
        taxonomy = CREDENTIAL_TAXONOMY.get(credential, clinic["taxonomy"])
    return Renderer(
        row.get("rendering_npi"),
        row.get("rendering_last_name"),
        row.get("rendering_first_name"),
        RENDERING,
        taxonomy,
        False,
    )


def referrer(row: dict, providers: pd.DataFrame | None) -> str:
    """``NM1*DN`` of the claim's referring provider (its first line's), the name from the
    columns, else providers.csv's; raises ``Unwritable`` when there is none to write."""
    npi_text = clean_text(row.get("referring_npi"))
    if not npi_text:
        raise Unwritable(
            "referring_npi",
            "is missing (the payer requires a referring provider: requires_referring)",
        )
    npi(npi_text, "referring_npi")
    last, first = row.get("referring_last_name"), row.get("referring_first_name")
    entry = listed(providers, npi_text)
    if (not clean_text(last, 60) or not clean_text(first, 35)) and entry is not None:
        last, first = entry["last_name"], entry["first_name"]
    last = required(last, "referring_last_name", 60)
    first = required(first, "referring_first_name", 35)
    return f"NM1*DN*1*{last}*{first}****XX*{npi_text}"


# ---- the input, claim by claim ---------------------------------------------------------------


@dataclass
class Claim:
    """One claim's rows (dicts, input order) and its first row, whose claim-level values
    (clinic, payer, patient, subscriber, diagnoses) stand for the whole claim."""

    raw_id: object
    rows: list[dict]

    @property
    def id(self) -> str:
        """The claim id as messages, ``rejected`` and ``placed`` show it."""
        return str(self.raw_id)

    @property
    def first(self) -> dict:
        """The claim's first line."""
        return self.rows[0]


def _d8_column(series: pd.Series) -> list[str]:
    """CCYYMMDD per value ('' when missing or not a date), parsed as one column."""
    parsed = pd.to_datetime(series, errors="coerce")
    return parsed.dt.strftime("%Y%m%d").fillna("").tolist()


def _number_column(series: pd.Series) -> np.ndarray:
    """The values as floats (NaN when not a number), converted as one column."""
    return pd.to_numeric(series, errors="coerce").to_numpy(dtype=float, na_value=np.nan)


# claim dates the 837 carries (as ``_<name>`` on each row): onset, accident, the date treatment
# started and the plan of care's
DATE_FIELDS = ("injury_date", "accident_date", "initial_treatment_date", "plan_of_care_start")


def read_claims(lines: pd.DataFrame) -> list[Claim]:
    """The claims of ``lines`` in file order: clinic by clinic (clinics by first appearance),
    claims by first appearance within a clinic, each claim's lines in input order.

    Each row dict gets the writer's derived values: ``_dos``, ``_dob`` and ``_<name>`` of
    ``DATE_FIELDS`` (CCYYMMDD or ''), ``_cents`` (-1 when missing or negative) and ``_units`` (0 unless a
    positive whole number).
    """
    df = lines.reset_index(drop=True)
    # values as ``Series.tolist`` gives them (``to_dict`` would turn pd.NA into None, and a
    # pd.NA clinic id compares differently from None)
    columns = {name: df[name].tolist() for name in df.columns}
    rows = [
        dict(zip(columns, values, strict=True)) for values in zip(*columns.values(), strict=True)
    ]
    cents = np.round(_number_column(df["charge_amount"]) * 100.0)
    cents = np.where(~np.isfinite(cents) | (cents < 0), -1, cents).astype(np.int64).tolist()
    units = _number_column(df["units"])
    bad_units = ~np.isfinite(units) | (units <= 0) | (units != np.floor(units))
    units = np.where(bad_units, 0, units).astype(np.int64).tolist()
    derived = {
        "_dos": _d8_column(df["date_of_service"]),
        "_dob": _d8_column(df["patient_dob"]),
        **{
            f"_{name}": _d8_column(df[name]) if name in df else [""] * len(df)
            for name in DATE_FIELDS
        },
        "_cents": cents,
        "_units": units,
    }
    claims: dict[object, Claim] = {}
    for i, row in enumerate(rows):
        for name, values in derived.items():
            row[name] = values[i]
        raw_id = row["claim_id"]
        if is_na(raw_id):
            raise ValueError("a service line has no claim_id")
        claims.setdefault(raw_id, Claim(raw_id, [])).rows.append(row)
    clinic_rank: dict[object, int] = {}
    for claim in claims.values():
        clinic_rank.setdefault(claim.first.get("clinic_id"), len(clinic_rank))
    return sorted(claims.values(), key=lambda c: clinic_rank[c.first.get("clinic_id")])


# ---- one claim's segments --------------------------------------------------------------------


class ClaimWriter:
    """Writes claims one at a time for one interchange: the checks run in the order a reader
    of the claim meets its values (clinic, CLM01, line count, payer, patient, subscriber,
    diagnoses, authorisation, the claim's renderer, its lines in order, then the names of the
    2310B / attending provider), so a claim's rejection names its first problem."""

    def __init__(
        self,
        institutional: bool,
        clinics: pd.DataFrame,
        payers: pd.DataFrame,
        providers: pd.DataFrame | None = None,
    ):
        self.institutional = institutional
        self.clinics, self.payers, self.providers = clinics, payers, providers
        self.max_lines = MAX_LINES_PER_CLAIM_I if institutional else MAX_LINES_PER_CLAIM

    def clinic(self, claim: Claim) -> dict[str, str]:
        """The claim's billing provider (2000A) values."""
        return clinic_entry(self.clinics, claim.first.get("clinic_id"), self.institutional)

    def claim_segments(self, claim: Claim, hl_parent: int, hl_next: int) -> list[str]:
        """Segments from the 2000B subscriber HL to the claim's last 2400 loop."""
        first = claim.first
        clinic = self.clinic(claim)
        clm01 = clean_text(claim.raw_id, 20)
        if not clm01 or clm01 != claim.id:
            raise Unwritable(
                "claim_id", "must be 1-20 characters of A-Z 0-9 and X12 basic punctuation"
            )
        if len(claim.rows) > self.max_lines:
            raise Unwritable("service lines", f"exceed {self.max_lines} per claim")
        payer = payer_entry(self.payers, first.get("payer_id"))
        segments, content = self.subscriber_segments(claim, payer, hl_parent, hl_next)
        dx = diagnosis_codes(first.get("diagnosis_codes"))
        if not dx:
            raise Unwritable("diagnosis_codes", "is empty")
        limit = MAX_DIAGNOSES_I if self.institutional else MAX_DIAGNOSES
        if len(dx) > limit:
            raise Unwritable("diagnosis_codes", f"has more than {limit} codes")
        auth = identifier(first.get("prior_auth_number"), "prior_auth_number", 50)
        content["frequency"], content["f8"] = claim_frequency(first)
        render = payer_flag(self.payers, first.get("payer_id"), "assistants_may_render")
        providers = [renderer(row, render, clinic, self.providers) for row in claim.rows]
        if self.institutional:
            return segments + self.institutional_claim(
                claim, clinic, clm01, dx, auth, content, providers
            )
        return segments + self.professional_claim(
            claim, clinic, clm01, dx, auth, content, providers
        )

    def referring(self, first: dict) -> list[str]:
        """The claim's NM1*DN, if it names a referrer the 837 can carry; a payer requiring
        one rejects the claim without."""
        try:
            return [referrer(first, self.providers)]
        except Unwritable:
            if payer_flag(self.payers, first.get("payer_id"), "requires_referring"):
                raise
            return []

    @staticmethod
    def supervisor_check(r: Renderer) -> None:
        """An assistant's line billed under a supervisor needs one."""
        if r.subst and not clean_text(r.npi):
            raise Unwritable("supervising_npi", SUPERVISOR_MISSING)

    def subscriber_segments(
        self, claim: Claim, payer: dict[str, str], hl_parent: int, hl_sub: int
    ) -> tuple[list[str], dict]:
        """2000B (and 2000C when the patient is not the subscriber) with the payer's NM1*PR,
        and the claim's content (``content``). A workers' comp claim with an employer has the
        employer as the insured (NM1*IL*2) and the patient as its employee (PAT*20)."""
        first = claim.first
        relation = first.get("subscriber_relationship")
        relation = "self" if is_na(relation) else str(relation).strip().lower() or "self"
        if relation != "self" and relation not in RELATIONSHIP_PAT01:
            raise Unwritable("subscriber_relationship", "is not self/spouse/child/other")
        last = required(first.get("patient_last_name"), "patient_last_name", 60)
        first_name = required(first.get("patient_first_name"), "patient_first_name", 35)
        member = identifier(first.get("member_id"), "member_id", 80, 2)
        address = required(first.get("patient_address"), "patient_address", 55)
        city = required(first.get("patient_city"), "patient_city", 30, 2)
        state = state_code(first.get("patient_state"), "patient_state")
        zip5 = zip_code(first.get("patient_zip"), "patient_zip")
        if not first["_dob"]:
            raise Unwritable("patient_dob", "is missing")
        sex = clean_text(first.get("patient_sex")) or "U"
        if sex not in ("M", "F", "U"):
            raise Unwritable("patient_sex", "is not M, F or U")
        group = identifier(first.get("group_number"), "group_number", 50)
        employer = ""
        if payer["class"] == "workers_comp":
            employer = clean_text(first.get("employer_name"), 60)
        insured = ""
        if relation != "self" and not employer:
            sub_last = required(first.get("subscriber_last_name"), "subscriber_last_name", 60)
            sub_first = required(first.get("subscriber_first_name"), "subscriber_first_name", 35)
            insured = f"NM1*IL*1*{sub_last}*{sub_first}****MI*{member}"
        content = self.content(claim, payer)
        where = [f"N3*{address}", f"N4*{city}*{state}*{zip5}", f"DMG*D8*{first['_dob']}*{sex}"]
        y4 = [f"REF*Y4*{content['pc_claim_number']}"] if content["pc_claim_number"] else []
        payer_nm1 = f"NM1*PR*2*{payer['name']}*****PI*{payer['id']}"
        sbr09 = payer["sbr09_i" if self.institutional else "sbr09"]
        if relation == "self" and not employer:
            return [
                f"HL*{hl_sub}*{hl_parent}*22*0",
                f"SBR*P*18*{group}******{sbr09}",
                f"NM1*IL*1*{last}*{first_name}****MI*{member}",
                *where,
                *y4,
                payer_nm1,
            ], content
        if employer:
            insured = f"NM1*IL*2*{employer}*****MI*{member}"
        pat01 = EMPLOYEE if employer else RELATIONSHIP_PAT01[relation]
        return [
            f"HL*{hl_sub}*{hl_parent}*22*1",
            f"SBR*P**{group}******{sbr09}",
            insured,
            *y4,
            payer_nm1,
            f"HL*{hl_sub + 1}*{hl_sub}*23*0",
            f"PAT*{pat01}",
            f"NM1*QC*1*{last}*{first_name}",
            *where,
        ], content

    def content(self, claim: Claim, payer: dict[str, str]) -> dict:
        """The claim's content by payer class and claim type, checked in this order: the
        related cause (the column, else by payer class), its accident date (accident_date,
        else injury_date), an 837P auto accident's state, the P&C claim number (with a related
        cause), the date treatment started (initial_treatment_date, else plan_of_care_start)
        where Medicare needs it (837P claims with a CMT line; every 837I claim)."""
        first = claim.first
        cause = first.get("related_cause")
        cause = "" if is_na(cause) else str(cause).strip().lower()
        if cause and cause not in CAUSES:
            raise Unwritable("related_cause", "is not employment, auto_accident or other_accident")
        cause = cause or CAUSE_OF_PAYER_CLASS.get(payer["class"], "")
        accident = first["_accident_date"] or first["_injury_date"]
        if cause and not accident:
            raise Unwritable(
                "accident_date", "is missing and so is injury_date (the related cause's date)"
            )
        state = ""
        if cause == "auto_accident" and not self.institutional:
            state = state_code(first.get("accident_state"), "accident_state")
        pc_claim_number = ""
        if cause:
            pc_claim_number = identifier(first.get("pc_claim_number"), "pc_claim_number", 50)
        medicare = payer["class"] == "medicare"
        if self.institutional:
            needs_start = medicare
        else:
            needs_start = medicare and any(clean_text(r["cpt_code"]) in CMT for r in claim.rows)
        started = first["_initial_treatment_date"] or first["_plan_of_care_start"]
        if needs_start and not started:
            raise Unwritable(
                "initial_treatment_date",
                "is missing and so is plan_of_care_start (Medicare: the date treatment started)",
            )
        return {
            "cause": cause,
            "accident": accident,
            "state": state,
            "pc_claim_number": pc_claim_number,
            "needs_start": needs_start,
            "started": started,
            "plan_of_care": first["_plan_of_care_start"],
        }

    @staticmethod
    def line_checks(row: dict, service: str | None) -> int:
        """Checks every service line gets (837P and 837I); returns its charge in cents."""
        if row["_cents"] < 0:
            raise Unwritable("charge_amount", "is missing or negative")
        if row["_units"] <= 0:
            raise Unwritable("units", "is not a positive whole number")
        if service is None:
            raise Unwritable(
                "cpt_code/modifiers", "must be a 5-character code and 0-4 two-character modifiers"
            )
        if not row["_dos"]:
            raise Unwritable("date_of_service", "is missing")
        return row["_cents"]

    @staticmethod
    def line_item_control(row: dict, seen: set[str]) -> str:
        """REF02 of the line's REF*6R: its line_id exactly as the extract has it (an 835
        returns it to name the line), so an id cleaning would change, one too long, or one an
        earlier line of the claim has, makes the claim unwritable."""
        raw = row.get("line_id")
        text = "" if is_na(raw) else str(raw)
        if not text or clean_text(text, LINE_ITEM_CONTROL_MAX) != text:
            raise Unwritable(
                "line_id",
                f"must be 1-{LINE_ITEM_CONTROL_MAX} characters of A-Z 0-9 and X12 basic "
                "punctuation (REF*6R carries it as is)",
            )
        if text in seen:
            raise Unwritable(
                "line_id", "repeats another line's of the claim (REF*6R must be unique)"
            )
        seen.add(text)
        return text

    @staticmethod
    def provider(entity: str, r: Renderer) -> str:
        """NM1 of a line's renderer as rendering (82) or attending (71) provider."""
        last = required(r.last, r.fields[1], 60)
        first = required(r.first, r.fields[2], 35)
        return f"NM1*{entity}*1*{last}*{first}****XX*{npi(r.npi, r.fields[0])}"

    def professional_claim(
        self,
        claim: Claim,
        clinic: dict[str, str],
        clm01: str,
        dx: list[str],
        auth: str,
        content: dict,
        providers: list[Renderer],
    ) -> list[str]:
        """837P 2300 (CLM with CLM05-3 and CLM11, DTP*431, DTP*454, DTP*439, REF*G1, REF*F8, HI,
        2310A, 2310B) and the 2400 lines."""
        first = claim.first
        claim_place = place_code(first["place_of_service"])
        claim_npi = clean_text(providers[0].npi)
        if claim_npi:
            claim_npi = npi(providers[0].npi, providers[0].fields[0])
        referring = self.referring(first)

        def rendering(r: Renderer) -> list[str]:
            return [self.provider("82", r), f"PRV*PE*PXC*{r.taxonomy}"]

        lines: list[str] = []
        total = 0
        seen: set[str] = set()
        for lx, (row, r) in enumerate(zip(claim.rows, providers, strict=True), start=1):
            service = service_code(row["cpt_code"], listish(row.get("modifiers")))
            amount = self.line_checks(row, service)
            total += amount
            ptr = pointers(listish(row["diagnosis_pointers"]))
            if ptr is None or ptr[1] > len(dx):
                raise Unwritable("diagnosis_pointers", "must be 1-4 positions in diagnosis_codes")
            line_place = place_code(row["place_of_service"])
            if line_place is None:
                raise Unwritable("place_of_service", "is not 2 digits")
            shown_place = line_place if line_place != claim_place else ""
            control = self.line_item_control(row, seen)
            lines += [
                f"LX*{lx}",
                f"SV1*{service}*{money(amount)}*UN*{row['_units']}*{shown_place}**{ptr[0]}",
                f"DTP*472*D8*{row['_dos']}",
                f"REF*6R*{control}",
            ]
            self.supervisor_check(r)
            line_npi = clean_text(r.npi)
            if line_npi and line_npi != claim_npi:  # 2420A: the line's renderer differs
                lines += rendering(r)

        clm = f"CLM*{clm01}*{money(total)}***{claim_place}:B:{content['frequency']}*Y*A*Y*Y"
        cause = content["cause"]
        if cause:
            code = CAUSES[cause][0]
            clm += f"**AA:::{content['state']}" if code == "AA" else f"**{code}"
        segments = [clm]
        if first["_injury_date"]:
            segments.append(f"DTP*431*D8*{first['_injury_date']}")
        if content["needs_start"]:
            segments.append(f"DTP*454*D8*{content['started']}")
        if cause:
            segments.append(f"DTP*439*D8*{content['accident']}")
        if auth:
            segments.append(f"REF*G1*{auth}")
        if content["f8"]:
            segments.append(f"REF*F8*{content['f8']}")
        segments.append("HI*ABK:" + dx[0] + "".join("*ABF:" + d for d in dx[1:]))
        segments += referring
        if claim_npi and claim_npi != clinic["npi"]:  # 2310B only when it is not the billing NPI
            segments += rendering(providers[0])
        return segments + lines

    def institutional_claim(
        self,
        claim: Claim,
        clinic: dict[str, str],
        clm01: str,
        dx: list[str],
        auth: str,
        content: dict,
        providers: list[Renderer],
    ) -> list[str]:
        """837I 2300 (CLM, DTP*434, CL1, REF*G1, REF*F8, HI: diagnoses then occurrence codes,
        attending NM1*71 + PRV*AT, referring NM1*DN) and the 2400 lines."""
        first, claim_renderer = claim.first, providers[0]
        if not clean_text(claim_renderer.npi):
            if claim_renderer.subst:
                raise Unwritable("supervising_npi", SUPERVISOR_MISSING)
            raise Unwritable("rendering_npi", "is missing (needed for the attending provider)")
        attending = npi(claim_renderer.npi, claim_renderer.fields[0])
        referring = self.referring(first)
        lines: list[str] = []
        total = 0
        seen: set[str] = set()
        for lx, (row, r) in enumerate(zip(claim.rows, providers, strict=True), start=1):
            service = service_code(row["cpt_code"], listish(row.get("modifiers")))
            amount = self.line_checks(row, service)
            total += amount
            revenue = REVENUE_CODES.get(clean_text(row["discipline"]))
            if revenue is None:
                raise Unwritable(
                    "discipline", "has no outpatient therapy revenue code (PT, OT, SLP)"
                )
            revenue_code, modifier = revenue
            line_modifiers = service.split(":")[2:]
            if modifier not in line_modifiers:
                raise Unwritable(
                    "modifiers", f"lack {modifier}, required with revenue code {revenue_code}"
                )
            if any(m in THERAPY_MODIFIERS and m != modifier for m in line_modifiers):
                raise Unwritable("modifiers", f"carry a therapy modifier other than {modifier}")
            control = self.line_item_control(row, seen)
            lines += [
                f"LX*{lx}",
                f"SV2*{revenue_code}*{service}*{money(amount)}*UN*{row['_units']}",
                f"DTP*472*D8*{row['_dos']}",
                f"REF*6R*{control}",
            ]
            self.supervisor_check(r)
            line_npi = clean_text(r.npi)
            if line_npi and line_npi != attending:  # 2420C: the line's clinician differs
                lines.append(self.provider("82", r))
        dates = [row["_dos"] for row in claim.rows]
        tob = clinic["type_of_bill"]
        frequency = tob[2:] if content["frequency"] == "1" else content["frequency"]
        segments = [
            f"CLM*{clm01}*{money(total)}***{tob[:2]}:A:{frequency}**A*Y*Y",
            f"DTP*434*RD8*{min(dates)}-{max(dates)}",
            f"CL1*3*{clinic['point_of_origin']}*01",
        ]
        if auth:
            segments.append(f"REF*G1*{auth}")
        if content["f8"]:
            segments.append(f"REF*F8*{content['f8']}")
        segments.append(f"HI*ABK:{dx[0]}")
        for at in range(1, len(dx), 12):  # the other diagnoses, 12 per HI
            segments.append("HI*" + "*".join("ABF:" + d for d in dx[at : at + 12]))
        occurrences = []
        if content["needs_start"]:  # to Medicare: per discipline on the claim
            on_claim = {clean_text(row["discipline"]) for row in claim.rows}
            for k in (0, 1):  # the date treatment started, then the plan of care's
                date = content["started"] if k == 0 else content["plan_of_care"]
                occurrences += [
                    f"BH:{codes[k]}:D8:{date}"
                    for discipline, codes in OCCURRENCE.items()
                    if discipline in on_claim and date
                ]
        if content["cause"]:
            occurrences.append(f"BH:{CAUSES[content['cause']][1]}:D8:{content['accident']}")
        if occurrences:
            segments.append("HI*" + "*".join(occurrences))
        segments.append(self.provider("71", claim_renderer))
        segments.append(f"PRV*AT*PXC*{claim_renderer.taxonomy}")
        return segments + referring + lines


def billing_provider(hl: int, clinic: dict[str, str]) -> list[str]:
    """The 2000A loop of a clinic."""
    return [
        f"HL*{hl}**20*1",
        f"PRV*BI*PXC*{clinic['taxonomy']}",
        f"NM1*85*2*{clinic['name']}*****XX*{clinic['npi']}",
        f"N3*{clinic['address']}",
        f"N4*{clinic['city']}*{clinic['state']}*{clinic['zip']}",
        f"REF*EI*{clinic['tax_id']}",
    ]


def rejection(claim: Claim, problem: Unwritable) -> str:
    """The message of a claim that cannot be written: its id, the reference row at fault (if
    any), the field and the problem, never the value."""
    scope = ""
    if problem.scope:
        scope_id = claim.first.get("clinic_id" if problem.scope == "clinic" else "payer_id")
        scope = f" ({problem.scope} {scope_id})"
    return f"claim {claim.id}{scope}: {problem}"


# ---- the interchange -------------------------------------------------------------------------


@dataclass
class TransactionSet:
    """The claims written into one ST..SE (ids in order) and their segments (2000A on)."""

    claim_ids: list[str]
    body: list[str]


def transaction_set(
    writer: ClaimWriter,
    claims: list[Claim],
    rejected: dict[str, str] | None,
) -> tuple[TransactionSet, dict[str, str] | None]:
    """One set's claims written in turn: HL numbers from 1, a 2000A whenever the clinic
    differs from the last written claim's; a claim that fails leaves no trace but its
    rejection (or raises ``ValueError`` without ``rejected``). Returns the set and the
    clinic entry of its first written claim (None if none was written)."""
    out = TransactionSet([], [])
    hl, current, billing_hl = 1, object(), 0
    first_clinic = None
    for claim in claims:
        clinic_id = claim.first.get("clinic_id")
        try:
            header: list[str] = []
            parent, hl_sub = billing_hl, hl
            if clinic_id != current:  # (an NA clinic id raises TypeError here, as it always did)
                header = billing_provider(hl, writer.clinic(claim))
                parent, hl_sub = hl, hl + 1
            segments = writer.claim_segments(claim, parent, hl_sub)
        except Unwritable as problem:
            if rejected is None:
                raise ValueError(rejection(claim, problem)) from None
            rejected[claim.id] = rejection(claim, problem)
            continue
        if header:
            current, billing_hl = clinic_id, parent
        hl = hl_sub + sum(s.startswith("HL*") for s in segments)  # 2000B, and 2000C if any
        if first_clinic is None:
            first_clinic = writer.clinic(claim)
        out.claim_ids.append(claim.id)
        out.body += header + segments
    return out, first_clinic


def build_837p(lines: pd.DataFrame, **kw) -> str:
    """The oracle's 837P interchange; same arguments as ``x12.build_837p``."""
    return _build(lines, institutional=False, **kw)


def build_837i(lines: pd.DataFrame, **kw) -> str:
    """The oracle's 837I interchange; same arguments as ``x12.build_837i``."""
    return _build(lines, institutional=True, **kw)


def _build(
    lines: pd.DataFrame,
    *,
    institutional: bool,
    clinics: pd.DataFrame,
    payers: pd.DataFrame,
    receiver_id: str,
    receiver_name: str,
    interchange_control_number: int,
    created: datetime,
    usage: str = "T",
    rejected: dict[str, str] | None = None,
    placed: dict[str, str] | None = None,
    providers: pd.DataFrame | None = None,
) -> str:
    """One interchange (ISA..IEA), ``~\\n`` after each segment; ``""`` if no claim can be
    written. Claims that cannot be written go to ``rejected`` (claim id -> message) or, without
    it, raise ``ValueError``; ``placed`` gets claim id -> ST02 of each written claim."""
    if lines is None or len(lines) == 0:
        raise ValueError("no service lines to bill")
    version = VERSION_I if institutional else VERSION
    if usage not in ("T", "P"):
        raise ValueError(f"usage must be 'T' or 'P', not {usage!r}")
    icn = int(interchange_control_number)
    if not 1 <= icn <= 999_999_999:
        raise ValueError("interchange_control_number must be 1..999999999")
    try:
        rcv_id = exact(receiver_id, "receiver_id", r"[A-Z0-9]{2,15}", "2-15 of A-Z 0-9")
        rcv_name = required(receiver_name, "receiver_name", 60)
    except Unwritable as exc:
        raise ValueError(f"claim (envelope): {exc}") from None

    claims = read_claims(lines)
    writer = ClaimWriter(institutional, clinics, payers, providers)
    per_set = x12.MAX_CLAIMS_PER_ST  # read now: tests may shrink it for both writers
    sets: list[TransactionSet] = []
    submitter = None
    for start in range(0, len(claims), per_set):
        written, first_clinic = transaction_set(writer, claims[start : start + per_set], rejected)
        if written.claim_ids:
            sets.append(written)
            submitter = submitter or first_clinic
    if submitter is None:
        return ""

    sender = submitter["submitter_id"]
    d6, d8, hm = created.strftime("%y%m%d"), created.strftime("%Y%m%d"), created.strftime("%H%M")
    out = [
        f"ISA*00*{'':10}*00*{'':10}*ZZ*{sender:<15}*ZZ*{rcv_id:<15}*{d6}*{hm}*^*00501*"
        f"{icn:09d}*0*{usage}*:",
        f"GS*HC*{sender}*{rcv_id}*{d8}*{hm}*{icn}*X*{version}",
    ]
    for n_set, written in enumerate(sets, start=1):
        st02 = f"{n_set:04d}"
        if placed is not None:
            placed.update(dict.fromkeys(written.claim_ids, st02))
        segments = [
            f"ST*837*{st02}*{version}",
            f"BHT*0019*00*{icn}{st02}*{d8}*{hm}*CH",
            f"NM1*41*2*{submitter['submitter_name']}*****46*{sender}",
            f"PER*IC*{submitter['submitter_name']}*TE*{submitter['phone']}",
            f"NM1*40*2*{rcv_name}*****46*{rcv_id}",
            *written.body,
        ]
        out += [*segments, f"SE*{len(segments) + 1}*{st02}"]
    out += [f"GE*{len(sets)}*{icn}", f"IEA*1*{icn:09d}"]
    text = "".join(segment + "~\n" for segment in out)
    text.encode("ascii")  # clean_text guarantees it; fail loudly if a path slipped through
    return text
