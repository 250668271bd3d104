"""Hand-built synthetic extract rows for tests (no real people; NPIs pass the check digit)."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from therapy_claims.layout import COLUMN_NAMES

RENDERING_NPI = "1700345675"  # valid check digit
OTHER_NPI = "1800456786"


def row(**overrides) -> dict[str, str]:
    """One clean 97110 line for a Medicare self-subscriber patient at clinic CLN01."""
    base = {
        "line_id": "L1",
        "encounter_id": "E1",
        "clinic_id": "CLN01",
        "date_of_service": "2026-11-20",
        "patient_id": "P1",
        "patient_last_name": "DOE",
        "patient_first_name": "JOHN",
        "patient_dob": "1950-03-04",
        "patient_sex": "M",
        "patient_address": "1 ELM ST",
        "patient_city": "SPRINGFIELD",
        "patient_state": "IL",
        "patient_zip": "62701",
        "payer_id": "MCR01",
        "member_id": "1EG4TE5MK72",
        "subscriber_relationship": "self",
        "rendering_npi": RENDERING_NPI,
        "rendering_last_name": "SMITH",
        "rendering_first_name": "ANN",
        "rendering_credential": "PT",
        "discipline": "PT",
        "cpt_code": "97110",
        "modifiers": "GP",
        "minutes": "30",
        "start_time": "09:00",
        "end_time": "09:30",
        "units_charted": "2",
        "charge_amount": "90.00",
        "diagnosis_codes": "M54.50;M62.81",
        "diagnosis_pointers": "1",
        "place_of_service": "11",
        "group_size": "1",
    }
    base.update(overrides)
    return base


def to_csv(rows: list[dict[str, str]], columns: list[str] | None = None) -> str:
    cols = columns or list(COLUMN_NAMES)
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=cols, extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({c: r.get(c, "") for c in cols})
    return buf.getvalue()


def write_csv(path: Path, rows: list[dict[str, str]], columns: list[str] | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(to_csv(rows, columns), encoding="utf-8")
    return path
