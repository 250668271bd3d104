"""The Arrow tables a response file becomes, and the ``Responses`` that carries them.

Every row carries its lineage (``source_file``, the response's own ISA13 as
``interchange_control_number`` and ST02 as ``transaction_set_control_number``) so a status
applied to a claim can always be traced back to the file and set that said so. Money is
``decimal(12, 2)`` (exact cents, as the published layers), dates ``date32``. Every table
exists for every file (empty when the file is of another kind), so a folder of mixed files
concatenates per table without special cases.
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

MONEY = pa.decimal128(12, 2)
QUANTITY = pa.decimal128(12, 2)  # units: 835 SVC05 may in principle be fractional
TEXT = pa.string()
TEXT_LIST = pa.list_(pa.string())
ADJUSTMENT = pa.struct([("group", TEXT), ("reason", TEXT), ("amount", MONEY)])
ADJUSTMENTS = pa.list_(ADJUSTMENT)

_LINEAGE = [
    ("source_file", TEXT),
    ("interchange_control_number", TEXT),
    ("transaction_set_control_number", TEXT),
    ("response_date", pa.date32()),  # GS04: when the sender created the group
]

# 999: one row per AK2 (per 837 transaction set we sent); a group answered without any AK2
# (rejected whole at AK9) is one row with the sent_set_* columns null. Our GS06 counts per
# submitter (two clinics' files can both be group 1), so the interchange's parties are kept:
# the sent set is (receiver_id, sent_group_control_number, sent_set_control_number).
ACKNOWLEDGMENTS = pa.schema(
    _LINEAGE
    + [
        ("sender_id", TEXT),  # ISA06 without its padding: the clearinghouse that answers
        ("receiver_id", TEXT),  # ISA08 without its padding: our submitter (our 837's ISA06)
        ("sent_group_control_number", TEXT),  # AK102 = our GS06
        ("sent_version", TEXT),  # AK103 = our GS08 (005010X222A1 / 005010X223A2)
        ("sent_set_type", TEXT),  # AK201 (837)
        ("sent_set_control_number", TEXT),  # AK202 = our ST02
        ("set_status", TEXT),  # IK501: A, E, M, R, W, X (AK901 when there is no AK2)
        ("accepted", pa.bool_()),  # A or E: forwarded to the payer
        ("set_error_codes", TEXT_LIST),  # IK502..IK506 (AK905..AK909 without an AK2)
        ("error_segments", TEXT),  # "CLM@22:8" (IK301@IK302:IK304), "; "-joined
        ("error_elements", TEXT),  # "CLM02:1", "SV101-2:7" (IK3 id + IK401 : IK403)
        ("group_status", TEXT),  # AK901
    ]
)

# 277CA: one row per 2200D claim.
CLAIM_STATUSES = pa.schema(
    _LINEAGE
    + [
        ("batch_reference", TEXT),  # 2200B TRN02: our 837's BHT03
        ("claim_id", TEXT),  # 2200D TRN02 = our CLM01
        ("category", TEXT),  # STC01-1 of the deciding STC (the first rejecting one, else the first)
        ("status", TEXT),  # STC01-2
        ("entity", TEXT),  # STC01-3
        ("status_date", pa.date32()),  # STC02
        ("action_code", TEXT),  # STC03: WQ accepted, U rejected
        ("charge", MONEY),  # STC04: the claim's total charge as the payer read it
        ("accepted", pa.bool_()),  # every STC category of the claim is A1 or A2
        ("other_statuses", TEXT_LIST),  # the claim's further STC01s, "A7:128:82"
        ("payer_claim_control_number", TEXT),  # REF*1K (835 CLP07)
        ("clearinghouse_trace", TEXT),  # REF*D9
        ("service_date", pa.date32()),  # DTP*472 (the first date of a range)
    ]
)

_PAYMENT = [
    ("payment_trace", TEXT),  # TRN02: check or EFT trace number
    ("payment_date", pa.date32()),  # BPR16
    ("claim_sequence", pa.int32()),  # position of the CLP in the file (CLP01 may repeat)
    ("claim_id", TEXT),  # CLP01 = our CLM01
    ("claim_status_code", TEXT),  # CLP02: 1/2/3 processed, 4 denied, 22 reversal, ...
    ("payer_claim_control_number", TEXT),  # CLP07
]

# 835: one row per CLP ...
PAYMENTS = pa.schema(
    _LINEAGE
    + _PAYMENT
    + [
        ("charge", MONEY),  # CLP03
        ("paid", MONEY),  # CLP04
        ("patient_responsibility", MONEY),  # CLP05 (null when absent)
        ("filing_indicator", TEXT),  # CLP06
        ("adjustments", ADJUSTMENTS),  # claim-level CAS
        ("line_count", pa.int32()),
    ]
)

# ... and one row per SVC.
PAYMENT_LINES = pa.schema(
    _LINEAGE
    + _PAYMENT
    + [
        ("line_number", pa.int32()),  # position of the SVC in its claim, from 1
        ("line_id", TEXT),  # REF*6R = the line id our 837 sent
        ("procedure_qualifier", TEXT),  # SVC01-1 (HC)
        ("procedure_code", TEXT),  # SVC01-2
        ("modifiers", TEXT_LIST),  # SVC01-3..6
        ("charge", MONEY),  # SVC02
        ("paid", MONEY),  # SVC03
        ("units", QUANTITY),  # SVC05 (1 when absent, per the guide)
        ("allowed", MONEY),  # AMT*B6 (null when absent)
        ("adjustments", ADJUSTMENTS),  # line-level CAS
        ("remark_codes", TEXT_LIST),  # LQ*HE (RARC)
        ("service_date", pa.date32()),  # DTM*472, else DTM*150 (period start)
    ]
)

SCHEMAS: dict[str, pa.Schema] = {
    "acknowledgments": ACKNOWLEDGMENTS,
    "claim_statuses": CLAIM_STATUSES,
    "payments": PAYMENTS,
    "payment_lines": PAYMENT_LINES,
}


def empty(name: str) -> pa.Table:
    return SCHEMAS[name].empty_table()


@dataclass(frozen=True)
class Responses:
    """What one response file says. ``kind`` is "999", "277CA" or "835"; the tables of the
    other kinds are empty (with their schemas)."""

    kind: str
    source_file: str
    acknowledgments: pa.Table  # 999
    claim_statuses: pa.Table  # 277CA
    payments: pa.Table  # 835 claims
    payment_lines: pa.Table  # 835 service lines
