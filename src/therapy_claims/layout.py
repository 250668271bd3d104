"""The nightly encounter extract layout (docs/extract-format.md), declared as data.

Every column the contract names is listed once here; extract reading, typing, the Great
Expectations schema suite and the synthetic generator all read this table instead of
repeating the contract in code.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Column:
    name: str
    kind: str  # str | date | int | decimal | time | enum | list
    required: bool = False
    max_len: int | None = None
    allowed: tuple[str, ...] = ()
    pattern: str | None = None  # full-match regex for str columns
    minimum: int | None = None


SEXES = ("M", "F", "U")
RELATIONSHIPS = ("self", "spouse", "child", "other")
CREDENTIALS = ("PT", "PTA", "OT", "OTA", "SLP", "DC", "MD", "DO")
DISCIPLINES = ("PT", "OT", "SLP", "CHIRO")
# what a claim is related to (837P CLM11: EM, AA, OA; 837I occurrence codes 04, 01, 05)
RELATED_CAUSES = ("employment", "auto_accident", "other_accident")
BODY_REGIONS = (
    "cervical",
    "thoracic",
    "lumbar",
    "sacral",
    "pelvic",
    "head",
    "rib_cage",
    "abdomen",
    "upper_extremity",
    "lower_extremity",
)
MANUAL_TECHNIQUES = (
    "soft_tissue_mobilization",
    "myofascial_release",
    "joint_mobilization",
    "manipulation",
    "manual_lymphatic_drainage",
    "manual_traction",
)

COLUMNS: tuple[Column, ...] = (
    Column("line_id", "str", required=True, max_len=40),
    Column("encounter_id", "str", required=True, max_len=30),
    Column("clinic_id", "str", required=True),
    Column("date_of_service", "date", required=True),
    Column("patient_id", "str", required=True),
    Column("patient_last_name", "str", required=True),
    Column("patient_first_name", "str", required=True),
    Column("patient_dob", "date", required=True),
    Column("patient_sex", "enum", required=True, allowed=SEXES),
    Column("patient_address", "str", required=True),
    Column("patient_city", "str", required=True),
    Column("patient_state", "str", required=True, pattern=r"[A-Za-z]{2}"),
    Column("patient_zip", "str", required=True, pattern=r"\d{5}(-?\d{4})?"),
    Column("payer_id", "str", required=True),
    Column("member_id", "str", required=True),
    Column("subscriber_relationship", "enum", allowed=RELATIONSHIPS),
    Column("subscriber_last_name", "str"),
    Column("subscriber_first_name", "str"),
    Column("subscriber_dob", "date"),
    Column("group_number", "str"),
    Column("prior_auth_number", "str"),
    Column("authorized_visits", "int", minimum=0),
    Column("visit_number", "int", minimum=1),
    Column("plan_of_care_start", "date"),
    Column("plan_of_care_end", "date"),
    Column("rendering_npi", "str", required=True, pattern=r"\d{10}"),
    Column("rendering_last_name", "str", required=True),
    Column("rendering_first_name", "str", required=True),
    Column("rendering_credential", "enum", required=True, allowed=CREDENTIALS),
    Column("discipline", "enum", required=True, allowed=DISCIPLINES),
    Column("cpt_code", "str", required=True, pattern=r"[A-Za-z0-9]{5}"),
    Column("modifiers", "list"),
    Column("minutes", "int", minimum=0),
    Column("start_time", "time"),
    Column("end_time", "time"),
    Column("units_charted", "int", minimum=0),
    Column("charge_amount", "decimal", required=True),
    Column("diagnosis_codes", "list", required=True),
    Column("diagnosis_pointers", "list"),
    Column("body_region", "list"),
    Column("technique", "list"),
    Column("goal_id", "str"),
    Column("patient_response", "str"),
    Column("group_size", "int", minimum=1),
    Column("place_of_service", "str", required=True, pattern=r"\d{2}"),
    Column("injury_date", "date"),
    # providers (issue 15): the therapist supervising an assistant (PTA/OTA), the rendering
    # clinician's own NUCC taxonomy (else providers.csv's), the referring/ordering provider
    Column("supervising_npi", "str", pattern=r"\d{10}"),
    Column("supervising_last_name", "str"),
    Column("supervising_first_name", "str"),
    Column("rendering_taxonomy", "str", pattern=r"[0-9A-Za-z]{9}[Xx]"),
    Column("referring_npi", "str", pattern=r"\d{10}"),
    Column("referring_last_name", "str"),
    Column("referring_first_name", "str"),
    # claim content by payer: the first treatment of the episode (Medicare CMT DTP*454,
    # 837I occurrence codes 35/44/45), the accident or employment the claim is related to
    Column("initial_treatment_date", "date"),
    Column("related_cause", "enum", allowed=RELATED_CAUSES),
    Column("accident_date", "date"),
    Column("accident_state", "str", pattern=r"[A-Za-z]{2}"),
    Column("pc_claim_number", "str", max_len=50),
    Column("employer_name", "str"),
)

COLUMN_NAMES: tuple[str, ...] = tuple(c.name for c in COLUMNS)
REQUIRED_COLUMNS: tuple[str, ...] = tuple(c.name for c in COLUMNS if c.required)
BY_NAME: dict[str, Column] = {c.name: c for c in COLUMNS}

# Lineage columns added to every accepted row in the raw layer.
LINEAGE_COLUMNS: tuple[str, ...] = ("source_file", "source_row", "ingested_at")

# Columns that carry protected health information; never logged, never in de-identified outputs.
PHI_COLUMNS: tuple[str, ...] = (
    "patient_id",
    "patient_last_name",
    "patient_first_name",
    "patient_dob",
    "patient_address",
    "patient_city",
    "patient_zip",
    "member_id",
    "subscriber_last_name",
    "subscriber_first_name",
    "subscriber_dob",
    "group_number",
    "prior_auth_number",
    "patient_response",
    "accident_date",
    "pc_claim_number",
    "employer_name",
)
