"""837P (ASC X12 005010X222A1) and 837I (005010X223A2) writer.

``build_837p`` / ``build_837i`` turn billable service lines into one interchange (ISA..IEA) as
an ASCII string, one segment per line. Layout, element sizes and code values follow the pyx12
maps ``837.5010.X222.A1.xml`` / ``837Q3.I.5010.X223.A1.xml`` and
../shared/reference/x12-837.md (samples p_self.x12, p_dep.x12, i_therapy.x12).

Design notes
* Delimiters: ``*`` element, ``:`` component, ``^`` repetition, ``~`` segment (+ newline).
* Every free-text element goes through :func:`clean_text` (upper-case, ASCII, X12 *basic*
  character set without the delimiters) cut to the element's maximum length.
* Money is handled in integer cents, so CLM02 is exactly the sum of the SV102 values.
* Hierarchy: per transaction set (ST, up to ``MAX_CLAIMS_PER_ST`` claims), one 2000A billing
  provider HL per clinic, one 2000B subscriber HL per claim, and a 2000C patient HL when the
  patient is not the subscriber. Claims are grouped by clinic (clinics in order of first
  appearance, claims in order of first appearance within a clinic); lines keep their order.
* Problems in the input that would make an invalid or misleading claim (a required name or
  address that is empty after cleaning, a bad ZIP, too many diagnoses, a pointer outside the
  diagnosis list, ...) raise ``ValueError`` naming the claim and the field, never the value
  (the values are PHI). The caller turns that into a finding and holds the claim.
"""

from __future__ import annotations

import re
import unicodedata
from datetime import datetime
from functools import lru_cache

import numpy as np
import pandas as pd

from therapy_claims import npi as npi_check

VERSION = "005010X222A1"  # 837P
VERSION_I = "005010X223A2"  # 837I
MAX_CLAIMS_PER_ST = 5000  # TR3 recommendation
MAX_LINES_PER_CLAIM = 50  # 837P 2400 loop repeat
MAX_LINES_PER_CLAIM_I = 999  # 837I 2400 loop repeat
MAX_DIAGNOSES = 12  # HI01..HI12
LINE_LIMITS = {"professional": MAX_LINES_PER_CLAIM, "institutional": MAX_LINES_PER_CLAIM_I}

# 837I outpatient therapy: revenue code and the therapy modifier every such line carries
REVENUE_CODES = {"PT": ("0420", "GP"), "OT": ("0430", "GO"), "SLP": ("0440", "GN")}
THERAPY_MODIFIERS = ("GP", "GO", "GN")

RELATIONSHIP_PAT01 = {"spouse": "01", "child": "19", "other": "G8"}

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
_SPACES = re.compile(r"\s+")
_MULTI_SPACE = re.compile(r" {2,}")
_CPT = re.compile(r"[A-Z0-9]{5}")
_MOD = re.compile(r"[A-Z0-9]{2}")
_POS = re.compile(r"\d{2}")


def _is_na(value: object) -> bool:
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


@lru_cache(maxsize=1 << 16)
def _clean_str(text: str) -> str:
    if not text.isascii():
        text = unicodedata.normalize("NFKD", text.translate(_TRANSLIT))
        text = "".join(ch for ch in text if not unicodedata.combining(ch))
        text = text.translate(_TRANSLIT)  # NFKD may expose more (e.g. compatibility forms)
    text = _SPACES.sub(" ", text.upper())  # tabs, newlines, unicode spaces -> one space
    text = _NOT_BASIC.sub("", text)
    return _MULTI_SPACE.sub(" ", text).strip()


@lru_cache(maxsize=1 << 14)
def _npi_ok(value: str) -> bool:
    return npi_check.is_valid(value)


_NOT_CODE = re.compile(r"[^A-Z0-9]")


@lru_cache(maxsize=1 << 16)
def _dx_codes(codes: tuple) -> list[str]:
    """ICD-10-CM codes as HI carries them: cleaned, without the dot, empties dropped."""
    out = [_NOT_CODE.sub("", clean_text(d)) for d in codes]
    return [d for d in out if d]


def clean_text(value: object, max_len: int | None = None) -> str:
    """Make ``value`` safe for an X12 element.

    Upper-cases, transliterates to ASCII (``JOSÉ`` -> ``JOSE``, ``ß`` -> ``SS``, ``Ø`` -> ``O``),
    keeps only the X12 basic character set ``A-Z 0-9`` space and ``! " & ' ( ) + , - . / ; ? =``
    (so the delimiters ``* : ~ ^`` and everything else are dropped; whitespace becomes a
    space), collapses runs of spaces, strips, and cuts to ``max_len``. None/NA -> ``""``.
    """
    if isinstance(value, str):
        return _clean_cut(value, max_len)
    if _is_na(value):
        return ""
    return _clean_cut(str(value), max_len)


@lru_cache(maxsize=1 << 18)
def _clean_cut(text: str, max_len: int | None) -> str:
    text = _clean_str(text)
    if max_len is not None and len(text) > max_len:
        text = text[:max_len].rstrip()
    return text


def _digits(value: object) -> str:
    return "" if _is_na(value) else re.sub(r"\D", "", str(value))


def _money(cents: int) -> str:
    """X12 R-type amount from integer cents: 150, 87.5, 87.25 (no trailing zeros)."""
    sign = "-" if cents < 0 else ""
    whole, frac = divmod(abs(cents), 100)
    if frac == 0:
        return f"{sign}{whole}"
    return f"{sign}{whole}.{frac:02d}".rstrip("0")


def _listish(value: object) -> list:
    """A list from a list/array, or from the extract's ``;``-joined text (``"GP;59"``)."""
    if value is None:
        return []
    if isinstance(value, str):
        return [v for v in value.split(";") if v]
    if isinstance(value, list | tuple | np.ndarray | pd.Series):
        return list(value)
    return [] if _is_na(value) else [value]


def _segments_to_text(segments: list[str]) -> str:
    return "~\n".join(segments) + "~\n"


class _Claim:
    """Required-field helpers bound to one claim (for error messages)."""

    __slots__ = ("claim_id",)

    def __init__(self, claim_id: str):
        self.claim_id = claim_id

    def fail(self, field: str, problem: str) -> ValueError:
        return ValueError(f"claim {self.claim_id}: {field} {problem}")

    def req(self, value: object, field: str, max_len: int, min_len: int = 1) -> str:
        text = clean_text(value, max_len)
        if not text:
            raise self.fail(field, "is empty after removing characters X12 cannot carry")
        if len(text) < min_len:
            raise self.fail(field, f"is shorter than {min_len} characters after cleaning")
        return text

    def exact(self, value: object, field: str, pattern: str, what: str) -> str:
        """An identifier that must already be clean: it is sent as is or not at all."""
        text = "" if _is_na(value) else str(value).strip()
        if not re.fullmatch(pattern, text) or clean_text(text) != text:
            raise self.fail(field, f"must be {what}")
        return text

    def ident(self, value: object, field: str, max_len: int, min_len: int = 0) -> str:
        """An identifier from the extract (member, group, authorisation number).

        Upper-casing and space collapsing are fine; dropping characters or cutting would send a
        different identifier, so that raises instead.
        """
        text = clean_text(value)
        original = "" if _is_na(value) else " ".join(str(value).upper().split())
        if text != original:
            raise self.fail(field, "contains characters X12 cannot carry")
        if not min_len <= len(text) <= max_len:
            raise self.fail(field, f"must be {min_len or 1}-{max_len} characters")
        return text

    def zip(self, value: object, field: str, nine: bool = False) -> str:
        z = _digits(value)
        if len(z) not in ((9,) if nine else (5, 9)):
            raise self.fail(field, "is not a 9-digit ZIP+4" if nine else "is not 5 or 9 digits")
        return z

    def state(self, value: object, field: str) -> str:
        s = clean_text(value)
        if not re.fullmatch(r"[A-Z]{2}", s):
            raise self.fail(field, "is not a 2-letter state code")
        return s

    def npi(self, value: object, field: str) -> str:
        s = clean_text(value)
        if not _npi_ok(s):
            raise self.fail(field, "is not a valid NPI (10 digits with a correct check digit)")
        return s


def _d8(series: pd.Series) -> list[str]:
    """CCYYMMDD strings ('' for NaT), computed once per column."""
    s = pd.to_datetime(series, errors="coerce")
    return s.dt.strftime("%Y%m%d").fillna("").tolist()


def _cents(series: pd.Series) -> list[int]:
    """Integer cents per line; -1 where the amount is missing or negative."""
    amounts = pd.to_numeric(series, errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    cents = np.round(amounts * 100.0)
    bad = ~np.isfinite(cents) | (cents < 0)
    return np.where(bad, -1, cents).astype(np.int64).tolist()


def _units(series: pd.Series) -> list[int]:
    """Units per line; 0 where missing, not whole or not positive."""
    u = pd.to_numeric(series, errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    bad = ~np.isfinite(u) | (u <= 0) | (u != np.floor(u))
    return np.where(bad, 0, u).astype(np.int64).tolist()


@lru_cache(maxsize=4096)
def _sv101(cpt: object, modifiers: tuple) -> str | None:
    """``HC:code[:mod...]`` or None when the code or a modifier is malformed."""
    code = clean_text(cpt)
    mods = [clean_text(m) for m in modifiers]
    if not _CPT.fullmatch(code) or len(mods) > 4 or not all(_MOD.fullmatch(m) for m in mods):
        return None
    return ":".join(["HC", code, *mods])


@lru_cache(maxsize=4096)
def _pointers(pointers: tuple) -> tuple[str, int] | None:
    """(``1:2`` composite, highest pointer) or None when not 1-4 whole numbers 1..12."""
    try:
        values = [int(p) for p in pointers]
    except (TypeError, ValueError):
        return None
    if not 1 <= len(values) <= 4 or any(not 1 <= v <= MAX_DIAGNOSES for v in values):
        return None
    if any(float(p) != v for p, v in zip(pointers, values, strict=True)):
        return None
    return ":".join(map(str, values)), max(values)


@lru_cache(maxsize=256)
def _place(value: object) -> str | None:
    text = clean_text(value)
    return text if _POS.fullmatch(text) else None


def build_837p(lines: pd.DataFrame, **kw) -> str:
    """Build one 837P interchange (005010X222A1); see :func:`_build` for the arguments."""
    return _build(lines, institutional=False, **kw)


def build_837i(lines: pd.DataFrame, **kw) -> str:
    """Build one 837I interchange (005010X223A2) for outpatient institutional therapy.

    Same arguments as :func:`build_837p`; ``lines`` also needs ``discipline`` (PT/OT/SLP, which
    picks the revenue code 0420/0430/0440; the line must carry the matching GP/GO/GN).
    ``diagnosis_pointers`` and ``place_of_service`` are not used (837I has none). Per claim:
    ``CLM05`` from the clinic's ``type_of_bill`` (``131`` -> ``13:A:1``), ``DTP*434`` statement
    period (first to last line date), ``CL1*3**01``, ``REF*G1`` prior authorisation,
    ``HI*ABK`` then ``HI*ABF`` (other diagnoses), the attending provider (``NM1*71``, the
    first line's clinician), then ``LX``/``SV2``/``DTP*472`` per line, with a 2420C rendering
    provider when a line's clinician differs from the attending one.
    """
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
) -> str:
    """Build one 837P (or, with ``institutional``, 837I) interchange (ISA..IEA) for ``lines``; returns ASCII text, ``~\\n`` per segment.

    ``lines`` holds one row per service line (columns: see the module's callers / x12 tests);
    rows sharing a ``claim_id`` form one claim and must share clinic, payer, patient,
    subscriber and diagnosis list (the first row's values are used). ``clinics`` and
    ``payers`` are the frames of ``therapy_claims.reference.load()``, indexed by id.

    The submitter (ISA06, GS02, 1000A) is the clinic of the first claim.

    Raises ``ValueError`` naming the claim and field (never the value) when the input cannot
    make a valid claim, e.g. a required name/address empty after :func:`clean_text`, a ZIP
    that is not 5/9 digits (9 for the billing provider), an NPI failing its check digit, a
    CLM01 / member / group / authorisation number that cleaning would alter (only
    upper-casing is allowed for those), no or more than 12 diagnoses, a pointer outside the
    diagnosis list, more than 50 lines or 4 modifiers, non-positive units, a negative or
    missing charge, or an unknown clinic/payer. Envelope problems (bad control number,
    usage, receiver) raise too.

    With ``rejected`` (a dict), a claim that cannot be written is left out of the file and its
    problem is recorded as ``rejected[claim_id] = message`` instead of raising; the rest of the
    file is still valid. If no claim is left the result is ``""``.

    With ``placed`` (a dict), each written claim is recorded as ``placed[claim_id] = ST02`` of
    the transaction set that carries it (for the claim ledger).

    Free text (names, addresses, cities) is cleaned and cut to the element's length
    (NM103 60, NM104 35, N301 55, N401 30) rather than rejected.
    A line without a rendering NPI is taken as rendered by the claim's renderer; a claim
    whose first line has none, or whose renderer is the billing NPI, gets no 2310B.
    """
    if lines is None or len(lines) == 0:
        raise ValueError("no service lines to bill")
    version = VERSION_I if institutional else VERSION
    claim_type = "institutional" if institutional else "professional"
    max_lines = MAX_LINES_PER_CLAIM_I if institutional else MAX_LINES_PER_CLAIM
    if usage not in ("T", "P"):
        raise ValueError(f"usage must be 'T' or 'P', not {usage!r}")
    icn = int(interchange_control_number)
    if not 1 <= icn <= 999_999_999:
        raise ValueError("interchange_control_number must be 1..999999999")
    env = _Claim("(envelope)")
    rcv_id = env.exact(receiver_id, "receiver_id", r"[A-Z0-9]{2,15}", "2-15 of A-Z 0-9")
    rcv_name = env.req(receiver_name, "receiver_name", 60)

    df = lines.reset_index(drop=True)
    n = len(df)

    # ---- per-line columns, computed once --------------------------------------------------
    claim_ids = df["claim_id"].astype(object).tolist()
    codes, _ = pd.factorize(df["claim_id"].astype(object), sort=False)
    if (codes < 0).any():
        raise ValueError("a service line has no claim_id")
    dos = _d8(df["date_of_service"])
    cents = _cents(df["charge_amount"])  # -1 = missing/negative
    units = _units(df["units"])  # 0 = missing/not a positive whole number
    mods = df["modifiers"].tolist() if "modifiers" in df else [None] * n
    services = [
        _sv101(code, tuple(_listish(m)))
        for code, m in zip(df["cpt_code"].tolist(), mods, strict=True)
    ]
    if institutional:
        pointers: list = [None] * n
        places: list = [None] * n
        disciplines = [clean_text(d) for d in df["discipline"].tolist()]
    else:
        pointers = [_pointers(tuple(_listish(p))) for p in df["diagnosis_pointers"].tolist()]
        places = [_place(p) for p in df["place_of_service"].tolist()]
        disciplines = [""] * n
    npis = [clean_text(v) for v in df["rendering_npi"].tolist()]
    rlast = df["rendering_last_name"].tolist()
    rfirst = df["rendering_first_name"].tolist()
    patient_dob = _d8(df["patient_dob"])
    injury = _d8(df["injury_date"]) if "injury_date" in df else [""] * n
    cols = df.columns

    def col(name: str) -> list:
        return df[name].tolist() if name in cols else [None] * n

    clinic_col, payer_col = col("clinic_id"), col("payer_id")
    p_last, p_first = col("patient_last_name"), col("patient_first_name")
    p_sex, p_addr, p_city = col("patient_sex"), col("patient_address"), col("patient_city")
    p_state, p_zip, member = col("patient_state"), col("patient_zip"), col("member_id")
    rel, s_last, s_first = (
        col("subscriber_relationship"),
        col("subscriber_last_name"),
        col("subscriber_first_name"),
    )
    group_no, auth, dx = col("group_number"), col("prior_auth_number"), col("diagnosis_codes")

    # ---- claim order: rows grouped by claim (stable), claims grouped by clinic -------------
    order = np.argsort(codes, kind="stable")
    bounds = np.flatnonzero(np.diff(codes[order])) + 1
    claim_rows = np.split(order, bounds)  # claim k (first-appearance order) -> its row indices
    first_rows = [int(r[0]) for r in claim_rows]
    clinic_rank: dict[object, int] = {}
    for r in first_rows:
        clinic_rank.setdefault(clinic_col[r], len(clinic_rank))
    claim_order = sorted(
        range(len(claim_rows)), key=lambda k: clinic_rank[clinic_col[first_rows[k]]]
    )

    # ---- reference lookups (cached per id) ---------------------------------------------------
    clinic_cache: dict[object, dict] = {}
    payer_cache: dict[object, dict] = {}

    def clinic(cid: object, c: _Claim) -> dict:
        if cid not in clinic_cache:
            if _is_na(cid) or cid not in clinics.index:
                raise c.fail("clinic_id", "is not in clinics.csv")
            row = clinics.loc[cid]
            cc = _Claim(f"{c.claim_id} (clinic {cid})")
            if str(row.get("claim_type", "professional")).strip() != claim_type:
                raise cc.fail(
                    "clinic claim_type",
                    f"is not {claim_type} ({'837I' if institutional else '837P'})",
                )
            tob = ""
            if institutional:
                tob = _digits(row.get("type_of_bill", ""))
                if len(tob) == 4 and tob[0] == "0":
                    tob = tob[1:]
                if not re.fullmatch(r"[1-9]\d[0-9A-Z]", tob):
                    raise cc.fail("clinic type_of_bill", "must be 3 digits, e.g. 131")
            sub_id = cc.exact(
                row["submitter_id"], "clinic submitter_id", r"[A-Z0-9]{2,15}", "2-15 of A-Z 0-9"
            )
            clinic_cache[cid] = {
                "name": cc.req(row["billing_name"], "clinic billing_name", 60),
                "npi": cc.npi(row["billing_npi"], "clinic billing_npi"),
                "tax_id": cc.exact(_digits(row["tax_id"]), "clinic tax_id", r"\d{9}", "9 digits"),
                "taxonomy": cc.exact(
                    row["taxonomy"], "clinic taxonomy", r"[0-9A-Z]{9}X", "a 10-character taxonomy"
                ),
                "address": cc.req(row["address"], "clinic address", 55),
                "city": cc.req(row["city"], "clinic city", 30, 2),
                "state": cc.state(row["state"], "clinic state"),
                "zip": cc.zip(row["zip"], "clinic zip", nine=True),
                "submitter_id": sub_id,
                "submitter_name": cc.req(row["submitter_name"], "clinic submitter_name", 60),
                "phone": cc.req(_digits(row["contact_phone"]), "clinic contact_phone", 256),
                "type_of_bill": tob,
            }
        return clinic_cache[cid]

    def payer(pid: object, c: _Claim) -> dict:
        if pid not in payer_cache:
            if _is_na(pid) or pid not in payers.index:
                raise c.fail("payer_id", "is not in payers.csv")
            row = payers.loc[pid]
            pc = _Claim(f"{c.claim_id} (payer {pid})")
            payer_cache[pid] = {
                "name": pc.req(row["payer_name"], "payer_name", 60),
                "id": pc.exact(
                    row["payer_id"], "payer_id", r"[A-Z0-9 .\-]{2,80}", "2-80 of A-Z 0-9"
                ),
                "sbr09": pc.exact(
                    row["claim_filing_indicator"],
                    "payer claim_filing_indicator",
                    r"[A-Z0-9]{2}",
                    "a 2-character SBR09 code",
                ),
            }
        return payer_cache[pid]

    # ---- claim bodies -----------------------------------------------------------------------
    def line_amount(c: _Claim, r: int) -> int:
        """Checks shared by 837P and 837I service lines; returns the charge in cents."""
        amount = cents[r]
        if amount < 0:
            raise c.fail("charge_amount", "is missing or negative")
        if units[r] <= 0:
            raise c.fail("units", "is not a positive whole number")
        if services[r] is None:
            raise c.fail(
                "cpt_code/modifiers",
                "must be a 5-character code and 0-4 two-character modifiers",
            )
        if not dos[r]:
            raise c.fail("date_of_service", "is missing")
        return amount

    def institutional_claim(
        c: _Claim, rows: np.ndarray, r0: int, bp: dict, clm01: str, dx_codes: list, auth: str
    ) -> list[str]:
        """2300..2400 of an 837I claim (after the subscriber/patient loops)."""

        def provider(entity: str, r: int, field: str) -> str:
            return (
                f"NM1*{entity}*1*{c.req(rlast[r], 'rendering_last_name', 60)}*"
                f"{c.req(rfirst[r], 'rendering_first_name', 35)}****XX*"
                f"{c.npi(npis[r], field)}"
            )

        if not npis[r0]:
            raise c.fail("rendering_npi", "is missing (needed for the attending provider)")
        attending = c.npi(npis[r0], "rendering_npi")
        body: list[str] = []
        total = 0
        for lx, r in enumerate(rows.tolist(), start=1):
            amount = line_amount(c, r)
            total += amount
            rev = REVENUE_CODES.get(disciplines[r])
            if rev is None:
                raise c.fail("discipline", "has no outpatient therapy revenue code (PT, OT, SLP)")
            revenue_code, modifier = rev
            line_mods = services[r].split(":")[2:]
            if modifier not in line_mods:
                raise c.fail(
                    "modifiers", f"lack {modifier}, required with revenue code {revenue_code}"
                )
            if any(m in THERAPY_MODIFIERS and m != modifier for m in line_mods):
                raise c.fail("modifiers", f"carry a therapy modifier other than {modifier}")
            body += [
                f"LX*{lx}",
                f"SV2*{revenue_code}*{services[r]}*{_money(amount)}*UN*{units[r]}",
                f"DTP*472*D8*{dos[r]}",
            ]
            if npis[r] and npis[r] != attending:  # 2420C: line clinician differs
                body.append(provider("82", r, "rendering_npi"))
        dates = [dos[r] for r in rows.tolist()]
        tob = bp["type_of_bill"]
        seg = [
            f"CLM*{clm01}*{_money(total)}***{tob[:2]}:A:{tob[2]}**A*Y*Y",
            f"DTP*434*RD8*{min(dates)}-{max(dates)}",
            "CL1*3**01",
        ]
        if auth:
            seg.append(f"REF*G1*{auth}")
        seg.append(f"HI*ABK:{dx_codes[0]}")
        if len(dx_codes) > 1:
            seg.append("HI*" + "*".join("ABF:" + d for d in dx_codes[1:]))
        seg.append(provider("71", r0, "rendering_npi"))
        return seg + body

    def subscriber_and_claim(k: int, hl_parent: int, hl_next: int) -> tuple[list[str], int]:
        """Segments from 2000B HL through the last 2400 of claim k; returns (segs, next HL)."""
        rows = claim_rows[k]
        r0 = int(rows[0])
        raw_id = claim_ids[r0]
        c = _Claim(str(raw_id))
        clm01 = clean_text(raw_id, 20)
        if not clm01 or clm01 != str(raw_id):
            raise c.fail("claim_id", "must be 1-20 characters of A-Z 0-9 and X12 basic punctuation")
        if len(rows) > max_lines:
            raise c.fail("service lines", f"exceed {max_lines} per claim")
        bp = clinic(clinic_col[r0], c)
        py = payer(payer_col[r0], c)

        # patient and subscriber
        relation = "self" if _is_na(rel[r0]) else str(rel[r0]).strip().lower() or "self"
        if relation != "self" and relation not in RELATIONSHIP_PAT01:
            raise c.fail("subscriber_relationship", "is not self/spouse/child/other")
        pat_last = c.req(p_last[r0], "patient_last_name", 60)
        pat_first = c.req(p_first[r0], "patient_first_name", 35)
        member_id = c.ident(member[r0], "member_id", 80, 2)
        pat_n3 = "N3*" + c.req(p_addr[r0], "patient_address", 55)
        pat_n4 = (
            f"N4*{c.req(p_city[r0], 'patient_city', 30, 2)}*"
            f"{c.state(p_state[r0], 'patient_state')}*{c.zip(p_zip[r0], 'patient_zip')}"
        )
        if not patient_dob[r0]:
            raise c.fail("patient_dob", "is missing")
        sex = clean_text(p_sex[r0]) or "U"
        if sex not in ("M", "F", "U"):
            raise c.fail("patient_sex", "is not M, F or U")
        pat_dmg = f"DMG*D8*{patient_dob[r0]}*{sex}"
        group = c.ident(group_no[r0], "group_number", 50)

        seg: list[str] = []
        hl_sub = hl_next
        if relation == "self":
            seg += [
                f"HL*{hl_sub}*{hl_parent}*22*0",
                f"SBR*P*18*{group}******{py['sbr09']}",
                f"NM1*IL*1*{pat_last}*{pat_first}****MI*{member_id}",
                pat_n3,
                pat_n4,
                pat_dmg,
                f"NM1*PR*2*{py['name']}*****PI*{py['id']}",
            ]
            hl_next += 1
        else:
            sub_last = c.req(s_last[r0], "subscriber_last_name", 60)
            sub_first = c.req(s_first[r0], "subscriber_first_name", 35)
            hl_pat = hl_sub + 1
            seg += [
                f"HL*{hl_sub}*{hl_parent}*22*1",
                f"SBR*P**{group}******{py['sbr09']}",
                f"NM1*IL*1*{sub_last}*{sub_first}****MI*{member_id}",
                f"NM1*PR*2*{py['name']}*****PI*{py['id']}",
                f"HL*{hl_pat}*{hl_sub}*23*0",
                f"PAT*{RELATIONSHIP_PAT01[relation]}",
                f"NM1*QC*1*{pat_last}*{pat_first}",
                pat_n3,
                pat_n4,
                pat_dmg,
            ]
            hl_next += 2

        # diagnoses
        dx_codes = _dx_codes(tuple(_listish(dx[r0])))
        if not dx_codes:
            raise c.fail("diagnosis_codes", "is empty")
        if len(dx_codes) > MAX_DIAGNOSES:
            raise c.fail("diagnosis_codes", f"has more than {MAX_DIAGNOSES} codes")
        prior_auth = c.ident(auth[r0], "prior_auth_number", 50)
        if institutional:
            return seg + institutional_claim(c, rows, r0, bp, clm01, dx_codes, prior_auth), hl_next
        hi = "HI*ABK:" + dx_codes[0] + "".join("*ABF:" + d for d in dx_codes[1:])

        # claim-level rendering provider = the first line's
        claim_pos = places[r0]
        claim_npi = npis[r0] and c.npi(npis[r0], "rendering_npi")

        def rendering(r: int) -> list[str]:
            return [
                f"NM1*82*1*{c.req(rlast[r], 'rendering_last_name', 60)}*"
                f"{c.req(rfirst[r], 'rendering_first_name', 35)}****XX*"
                f"{c.npi(npis[r], 'rendering_npi')}",
                f"PRV*PE*PXC*{bp['taxonomy']}",
            ]

        # service lines (per-line values were prepared once, before the claim loop)
        body: list[str] = []
        total = 0
        n_dx = len(dx_codes)
        for lx, r in enumerate(rows.tolist(), start=1):
            amount = line_amount(c, r)
            total += amount
            sv101 = services[r]
            ptr = pointers[r]
            if ptr is None or ptr[1] > n_dx:
                raise c.fail("diagnosis_pointers", "must be 1-4 positions in diagnosis_codes")
            line_pos = places[r]
            if line_pos is None:
                raise c.fail("place_of_service", "is not 2 digits")
            body += [
                f"LX*{lx}",
                f"SV1*{sv101}*{_money(amount)}*UN*{units[r]}*"
                f"{line_pos if line_pos != claim_pos else ''}**{ptr[0]}",
                f"DTP*472*D8*{dos[r]}",
            ]
            if npis[r] and npis[r] != claim_npi:  # 2420A: line renderer differs from 2310B
                body += rendering(r)

        seg.append(f"CLM*{clm01}*{_money(total)}***{claim_pos}:B:1*Y*A*Y*Y")
        if injury[r0]:
            seg.append(f"DTP*431*D8*{injury[r0]}")
        if prior_auth:
            seg.append(f"REF*G1*{prior_auth}")
        seg.append(hi)
        if claim_npi and claim_npi != bp["npi"]:  # 2310B only when it differs from 2010AA
            seg += rendering(r0)
        seg += body
        return seg, hl_next

    # ---- envelope and transaction sets --------------------------------------------------------
    def claim_block(k: int, current: object, billing_hl: int, hl: int):
        """Segments for claim k (with a 2000A header when the clinic changes), or None."""
        cid = clinic_col[first_rows[k]]
        header: list[str] = []
        b_hl = billing_hl
        if cid != current:
            bp = clinic(cid, _Claim(str(claim_ids[first_rows[k]])))
            b_hl = hl
            header = [
                f"HL*{hl}**20*1",
                f"PRV*BI*PXC*{bp['taxonomy']}",
                f"NM1*85*2*{bp['name']}*****XX*{bp['npi']}",
                f"N3*{bp['address']}",
                f"N4*{bp['city']}*{bp['state']}*{bp['zip']}",
                f"REF*EI*{bp['tax_id']}",
            ]
            hl += 1
        segs, hl = subscriber_and_claim(k, b_hl, hl)
        return header + segs, cid, b_hl, hl

    # claims that can be written, in order, each with its segments; HL numbers are assigned per
    # transaction set below, so build each set in one pass and skip what fails
    d6, d8, hm = created.strftime("%y%m%d"), created.strftime("%Y%m%d"), created.strftime("%H%M")
    sets: list[list[str]] = []
    set_claims: list[list[str]] = []
    submitter: dict | None = None
    for start in range(0, len(claim_order), MAX_CLAIMS_PER_ST):
        body: list[str] = []
        written: list[str] = []
        hl, current, billing_hl, n_claims = 1, object(), 0, 0
        for k in claim_order[start : start + MAX_CLAIMS_PER_ST]:
            try:
                segs, current, billing_hl, hl = claim_block(k, current, billing_hl, hl)
            except ValueError as exc:
                if rejected is None:
                    raise
                rejected[str(claim_ids[first_rows[k]])] = str(exc)
                continue
            if submitter is None:
                submitter = clinic(clinic_col[first_rows[k]], _Claim(str(claim_ids[first_rows[k]])))
            body += segs
            written.append(str(claim_ids[first_rows[k]]))
            n_claims += 1
        if n_claims:
            sets.append(body)
            set_claims.append(written)
    if submitter is None:
        return ""
    sender = submitter["submitter_id"]
    out = [
        f"ISA*00*{'':10}*00*{'':10}*ZZ*{sender:<15}*ZZ*{rcv_id:<15}*{d6}*{hm}*^*00501*"
        f"{icn:09d}*0*{usage}*:",
        f"GS*HC*{sender}*{rcv_id}*{d8}*{hm}*{icn}*X*{version}",
    ]
    for n_set, body in enumerate(sets, start=1):
        st02 = f"{n_set:04d}"
        if placed is not None:
            placed.update(dict.fromkeys(set_claims[n_set - 1], st02))
        ts = [
            f"ST*837*{st02}*{version}",
            f"BHT*0019*00*{icn}{st02}*{d8}*{hm}*CH",
            f"NM1*41*2*{submitter['submitter_name']}*****46*{sender}",
            f"PER*IC*{submitter['submitter_name']}*TE*{submitter['phone']}",
            f"NM1*40*2*{rcv_name}*****46*{rcv_id}",
            *body,
        ]
        ts.append(f"SE*{len(ts) + 1}*{st02}")
        out += ts
    out += [f"GE*{len(sets)}*{icn}", f"IEA*1*{icn:09d}"]
    text = _segments_to_text(out)
    text.encode("ascii")  # guaranteed by clean_text; fail loudly if a path slipped through
    return text
