"""Limits and code values of the 837P (005010X222A1) and 837I (005010X223A2) this package
writes."""

from __future__ import annotations

VERSION = "005010X222A1"  # 837P
VERSION_I = "005010X223A2"  # 837I
MAX_CLAIMS_PER_ST = 5000  # TR3 recommendation
MAX_LINES_PER_CLAIM = 50  # 837P 2400 loop repeat
MAX_LINES_PER_CLAIM_I = 999  # 837I 2400 loop repeat
MAX_DIAGNOSES = 12  # 837P: HI01..HI12
MAX_LINE_ID = 50  # REF02 of 2400 REF*6R (line item control number): AN 1-50
# CLM05-3, the claim frequency: an original claim, a replacement of a sent one, a void of it
ORIGINAL, REPLACEMENT, VOID = "1", "7", "8"
FREQUENCY_CODES = (ORIGINAL, REPLACEMENT, VOID)
MAX_ORIGINAL_REFERENCE = 50  # REF02 of 2300 REF*F8 (payer claim control number): AN 1-50
MAX_DIAGNOSES_I = 25  # 837I: the principal (HI*ABK) and 24 others (two HI*ABF of 12)
LINE_LIMITS = {"professional": MAX_LINES_PER_CLAIM, "institutional": MAX_LINES_PER_CLAIM_I}

# 837I outpatient therapy: revenue code and the therapy modifier every such line carries
REVENUE_CODES = {"PT": ("0420", "GP"), "OT": ("0430", "GO"), "SLP": ("0440", "GN")}
THERAPY_MODIFIERS = ("GP", "GO", "GN")

RELATIONSHIP_PAT01 = {"spouse": "01", "child": "19", "other": "G8"}
EMPLOYEE_PAT01 = "20"  # workers' comp: the patient as the employer's employee (2000C)

# related causes (extract column ``related_cause``, else by payer class): 837P CLM11-1 and
# 837I occurrence code (with the accident date)
RELATED_CAUSES = {
    "employment": ("EM", "04"),
    "auto_accident": ("AA", "01"),
    "other_accident": ("OA", "05"),
}
CAUSE_BY_PAYER_CLASS = {"workers_comp": "employment", "auto": "auto_accident"}
# chiropractic manipulative treatment (spinal): Medicare claims with one carry DTP*454
CMT_CODES = ("98940", "98941", "98942")
# 837I to Medicare (payer class medicare), per discipline on the claim: occurrence codes for
# the date treatment started and the date the plan of care was established
OCCURRENCE_CODES = {"PT": ("35", "29"), "OT": ("44", "17"), "SLP": ("45", "30")}

# a renderer's NUCC taxonomy (837P PRV*PE, 837I PRV*AT) by credential, when neither the line's
# rendering_taxonomy nor providers.csv gives one (MD, DO and others: the clinic's taxonomy)
CREDENTIAL_TAXONOMY = {
    "PT": "225100000X",
    "PTA": "225200000X",
    "OT": "225X00000X",
    "OTA": "224Z00000X",
    "SLP": "235Z00000X",
    "DC": "111N00000X",
}
# assistants, and the taxonomy of the therapist an assistant's line goes out under where the
# payer does not let assistants render (payers.csv assistants_may_render), when providers.csv
# does not list the supervisor: a PT for a PTA, an OT for an OTA
SUPERVISOR_TAXONOMY = {"PTA": "225100000X", "OTA": "225X00000X"}


def claims_per_set() -> int:
    """``MAX_CLAIMS_PER_ST`` as the package shows it when asked: ``x12.MAX_CLAIMS_PER_ST`` is
    the setting callers see (tests lower it there, for this writer and their oracle alike)."""
    from therapy_claims import x12

    return x12.MAX_CLAIMS_PER_ST
