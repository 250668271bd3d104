"""Units per code for the day, per billing provider, and one clinician's overlapping time with
one patient counted once (TIME_OVERLAP_SAME_PATIENT), through the rules on hand-built nights.

Expected values are worked by hand from MCPM ch. 5 section 20.2 (the total-time rule and its
examples, billing-rules.md 1.1-1.2) and MBPM ch. 15 section 220.3 (timed minutes are the
clinician's one-on-one clock time; payer-edits.md "Units and time")."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from factories import OTHER_NPI, RENDERING_NPI, row
from test_rules import night
from test_units import oracle_units

from therapy_claims import catalogue, rules, units


def visit(line_id: str, start: str, end: str, minutes: int | str, code="97110", **kw) -> dict:
    """One timed line of patient P1 with clinician RENDERING_NPI at clinic CLN01, no charted
    units (so UNITS_CORRECTED stays out of the way unless a test charts them)."""
    extra = {"technique": "joint_mobilization", "body_region": "lumbar"} if code == "97140" else {}
    fields = {
        "line_id": line_id,
        "cpt_code": code,
        "start_time": start,
        "end_time": end,
        "minutes": str(minutes),
        "units_charted": "",
        **extra,
    }
    return row(**{**fields, **kw})


def run(rows: list[dict]) -> tuple[rules.Night, pd.DataFrame]:
    n = night(rows)
    return n, rules.run_all(n)


def units_of(n: rules.Night) -> dict[str, int]:
    return dict(zip(n.lines["line_id"], n.lines["units"].tolist(), strict=True))


def codes(found: pd.DataFrame, code: str) -> pd.DataFrame:
    return found[found["code"] == code]


# --------------------------------------------------------------------------- per code for the day


def test_manual_example_3_33_plus_7_minutes_is_3_units():
    # 97110 33 min + 97140 7 min = 40 min -> 3 units: 97110 x2, 97140 x1 (MCPM 20.2, ex. 3)
    n, _ = run(
        [
            visit("A", "09:00", "09:33", 33),
            visit("B", "09:40", "09:47", 7, code="97140"),
        ]
    )
    assert units_of(n) == {"A": 2, "B": 1}


def test_two_visits_of_97110_10_and_10_minutes_are_one_unit_on_the_lower_line_id():
    # one code of 20 min that day -> 1 unit (8-22); equal leftover and minutes: lower line id
    n, found = run(
        [
            visit("V2", "14:00", "14:10", 10, encounter_id="E2"),
            visit("V1", "09:00", "09:10", 10),
        ]
    )
    assert units_of(n) == {"V2": 0, "V1": 1}
    assert codes(found, "UNITS_ZERO")["line_id"].tolist() == ["V2"]
    assert (
        "pooled timed minutes for PT that day = 20" in codes(found, "UNITS_ZERO")["message"].iloc[0]
    )


def test_97110_8_plus_8_at_two_clinics_is_one_unit_at_each():
    rows = [
        visit("A", "09:00", "09:08", 8),
        visit("B", "14:00", "14:08", 8, clinic_id="CLN03", encounter_id="E2"),
    ]
    n, found = run(rows)
    assert units_of(n) == {"A": 1, "B": 1}  # two billing providers: two pools of 8 min
    assert codes(found, "UNITS_ZERO").empty
    rows[1]["clinic_id"] = "CLN01"  # one clinic: 16 min of one code -> 1 unit
    assert units_of(run(rows)[0]) == {"A": 1, "B": 0}


@pytest.mark.parametrize(
    ("first", "second", "expected"),
    [
        (4, 3, {"A": 0, "B": 0}),  # 7 min: 0
        (4, 4, {"A": 1, "B": 0}),  # 8 min: 1, tie -> lower line id
        (11, 11, {"A": 1, "B": 0}),  # 22 min: 1
        (11, 12, {"A": 1, "B": 1}),  # 23 min: 2, one per line (each has a leftover)
    ],
)
def test_boundaries_of_one_code_over_two_visits(first, second, expected):
    n, _ = run([visit("A", "09:00", "09:20", first), visit("B", "13:00", "13:20", second)])
    assert units_of(n) == expected


def test_a_code_of_16_minutes_gets_its_unit_before_the_other_codes_leftovers():
    # 97110 8 + 8 = 16 (1 full unit), 97140 9, 97112 9: 34 min -> 2 units: 97110 1 (line A),
    # then the larger leftover (9 = 9, same minutes: the lower code 97112)
    n, _ = run(
        [
            visit("A", "09:00", "09:08", 8),
            visit("B", "09:10", "09:18", 8),
            visit("C", "09:20", "09:29", 9, code="97140"),
            visit("D", "09:30", "09:39", 9, code="97112"),
        ]
    )
    assert units_of(n) == {"A": 1, "B": 0, "C": 0, "D": 1}


# --------------------------------------------------------------------------- overlapping time


def test_overlap_of_exercise_and_manual_therapy_is_45_minutes_3_units():
    # 97110 09:00-09:30 and 97140 09:15-09:45, 30 min each: the clock shows 45 min, not 60.
    # The overlap (09:15-09:30) stays with 97110, which started first: 30 + 15 = 45 -> 3 units:
    # 97110 2 full, 97140 15 min 1 full. From the charted 60 min it was 4 (2 + 2).
    n, found = run(
        [
            visit("A", "09:00", "09:30", 30, units_charted="2"),
            visit("B", "09:15", "09:45", 30, code="97140", units_charted="2"),
        ]
    )
    assert units_of(n) == {"A": 2, "B": 1}
    assert n.lines["billable_minutes"].tolist() == [30, 15]
    assert n.lines["minutes"].tolist() == [30, 30]  # the charted minutes stay as charted
    f = codes(found, "TIME_OVERLAP_SAME_PATIENT")
    assert f["line_id"].tolist() == ["B"]
    assert f[["severity", "before", "after"]].iloc[0].tolist() == ["warning", "2", "1"]
    msg = f["message"].iloc[0]
    assert "97140 09:15-09:45 overlaps 97110 09:00-09:30 (line A)" in msg
    assert "minutes 30->15" in msg and "units 2->1" in msg and RENDERING_NPI in msg
    assert "09:15-09:45" in f["evidence"].iloc[0] and "09:00-09:30" in f["evidence"].iloc[0]
    assert "220.3" in f["evidence"].iloc[0]
    # the change is on the line, then the units corrected against the chart (2 -> 1) and the
    # charge following the units (the charted $90.00 for 2 units: $45.00 for 1)
    assert n.change_lists().tolist() == [
        [],
        ["minutes 30->15 (time overlap), units 2->1", "units 2->1", "charge 90.00->45.00"],
    ]
    assert codes(found, "UNITS_CORRECTED")["line_id"].tolist() == ["B"]
    assert codes(found, "PROVIDER_OVERLAP").empty  # one patient: not that rule


def test_touching_intervals_do_not_overlap():
    n, found = run(
        [visit("A", "09:00", "09:30", 30), visit("B", "09:30", "10:00", 30, code="97140")]
    )
    assert codes(found, "TIME_OVERLAP_SAME_PATIENT").empty
    assert units_of(n) == {"A": 2, "B": 2}  # 60 min -> 4


def test_same_times_with_another_clinician_is_not_this_rule():
    # two clinicians may each spend 09:00-09:30 with the patient: 60 min of care, 4 units
    n, found = run(
        [
            visit("A", "09:00", "09:30", 30),
            visit("B", "09:00", "09:30", 30, code="97140", rendering_npi=OTHER_NPI),
        ]
    )
    assert codes(found, "TIME_OVERLAP_SAME_PATIENT").empty
    assert units_of(n) == {"A": 2, "B": 2}


def test_another_clinic_or_date_is_not_the_same_time():
    for other in ({"clinic_id": "CLN03"}, {"date_of_service": "2026-11-19"}):
        n, found = run(
            [
                visit("A", "09:00", "09:30", 30),
                visit("B", "09:15", "09:45", 30, code="97140", encounter_id="E2", **other),
            ]
        )
        assert codes(found, "TIME_OVERLAP_SAME_PATIENT").empty
        assert units_of(n) == {"A": 2, "B": 2}


def test_identical_intervals_keep_the_minutes_on_the_lower_line_id():
    # same start and end: the order is (start, end, line id), so "A" keeps its 30 min and "B"
    # has none left -> 0 units (it would have been 2 from 60 charted minutes)
    n, found = run(
        [visit("B", "09:00", "09:30", 30, code="97140"), visit("A", "09:00", "09:30", 30)]
    )
    assert units_of(n) == {"B": 0, "A": 2}
    f = codes(found, "TIME_OVERLAP_SAME_PATIENT")
    assert f["line_id"].tolist() == ["B"] and f[["before", "after"]].iloc[0].tolist() == ["2", "0"]
    assert codes(found, "UNITS_ZERO")["line_id"].tolist() == ["B"]


def test_a_line_loses_its_overlap_with_the_union_of_the_earlier_lines():
    # A 09:00-09:20 (20), B 09:10-09:40 (30), C 09:15-09:30 (15): B shares 09:10-09:20 with A
    # -> 20; C lies inside A and B together -> 0. Billable 20 + 20 + 0 = 40 = the clock's
    # 09:00-09:40 -> 3 units (charted 65 min: 4). Codes 97110, 97112, 97116: A 1 full + B 1
    # full, the third unit to the largest leftover (5 = 5, same minutes: the lower code 97110)
    n, found = run(
        [
            visit("A", "09:00", "09:20", 20),
            visit("B", "09:10", "09:40", 30, code="97112"),
            visit("C", "09:15", "09:30", 15, code="97116"),
        ]
    )
    assert n.lines["billable_minutes"].tolist() == [20, 20, 0]
    assert units_of(n) == {"A": 2, "B": 1, "C": 0}
    f = codes(found, "TIME_OVERLAP_SAME_PATIENT").set_index("line_id")
    assert f.index.tolist() == ["B", "C"]
    # before: 65 min -> 4 units: A 1, B 2, C 1; after: A 2, B 1, C 0
    assert f.loc["B", ["before", "after"]].tolist() == ["2", "1"]
    assert f.loc["C", ["before", "after"]].tolist() == ["1", "0"]
    assert "overlaps 97112 09:10-09:40 (line B)" in f.loc["C", "message"]  # reaches furthest


def test_a_line_inside_a_longer_one_keeps_nothing():
    # 97110 09:00-10:00 (60) and 97140 09:10-09:20 (10): 60 min on the clock -> 4 units, all
    # 97110; from the charted 70 min it was 5 (97140 1)
    n, found = run(
        [visit("A", "09:00", "10:00", 60), visit("B", "09:10", "09:20", 10, code="97140")]
    )
    assert units_of(n) == {"A": 4, "B": 0}
    f = codes(found, "TIME_OVERLAP_SAME_PATIENT")
    assert f[["line_id", "before", "after"]].values.tolist() == [["B", "1", "0"]]


def test_charted_minutes_below_the_window_lose_the_whole_overlap():
    # A 09:00-09:30 charted 20 min, B 09:15-09:45 charted 30: B's overlap with A's window is
    # 15 min, taken off B's charted minutes -> 15 (docs/rules.md: charted minus overlap)
    n, _ = run([visit("A", "09:00", "09:30", 20), visit("B", "09:15", "09:45", 30, code="97140")])
    assert n.lines["billable_minutes"].tolist() == [20, 15]
    assert units_of(n) == {"A": 1, "B": 1}  # 35 min -> 2: leftovers 5 and 0; B 1 full


def test_overlap_applies_to_a_per_code_payer_too():
    # COM01 bills per code (AMA): 97110 30 -> 2; 97140 30 charted, 15 billable -> 1
    n, found = run(
        [
            visit("A", "09:00", "09:30", 30, payer_id="COM01"),
            visit("B", "09:15", "09:45", 30, code="97140", payer_id="COM01"),
        ]
    )
    assert units_of(n) == {"A": 2, "B": 1}
    assert codes(found, "TIME_OVERLAP_SAME_PATIENT")[["before", "after"]].values.tolist() == [
        ["2", "1"]
    ]


def test_lines_without_times_or_untimed_are_left_alone():
    n, found = run(
        [
            visit("A", "09:00", "09:30", 30),
            visit("B", "", "", 30, code="97140"),  # no interval: its minutes stand
            row(line_id="C", cpt_code="97161", minutes="", units_charted="1"),  # untimed
        ]
    )
    assert codes(found, "TIME_OVERLAP_SAME_PATIENT").empty
    assert units_of(n) == {"A": 2, "B": 2, "C": 1}


def test_the_finding_is_a_warning_in_the_catalogue_after_provider_overlap():
    specs = list(catalogue.CATALOGUE)
    assert specs.index("TIME_OVERLAP_SAME_PATIENT") == specs.index("PROVIDER_OVERLAP") + 1
    assert catalogue.severity("TIME_OVERLAP_SAME_PATIENT") == "warning"


# --------------------------------------------------------------------------- the oracle

SAME_TIME = ("clinic_id", "date_of_service", "rendering_npi", "patient_id")


def _oracle_billable(lines: pd.DataFrame) -> list:
    """Billable minutes minute by minute: per clinic, date, clinician and patient, the timed
    lines with an interval in (start, end, line id) order; each loses the minutes of its
    interval already covered by the earlier ones."""
    cols = ["timed", "minutes", "start_minute", "end_minute", "line_id", *SAME_TIME]
    recs = lines[cols].astype(object).where(lines[cols].notna(), None).to_dict("records")
    out = [r["minutes"] for r in recs]
    groups: dict[tuple, list[dict]] = {}
    for i, r in enumerate(recs):
        times = r["start_minute"] is not None and r["end_minute"] is not None
        if (
            r["timed"]
            and r["minutes"] is not None
            and times
            and r["end_minute"] > r["start_minute"]
        ):
            groups.setdefault(tuple(r[k] for k in SAME_TIME), []).append({**r, "i": i})
    for members in groups.values():
        covered: set[int] = set()
        for r in sorted(members, key=lambda r: (r["start_minute"], r["end_minute"], r["line_id"])):
            span = set(range(r["start_minute"], r["end_minute"]))
            out[r["i"]] = max(0, r["minutes"] - len(span & covered))
            covered |= span
    return out


def _random_rows(seed: int, n: int = 120) -> list[dict]:
    rng = np.random.default_rng(seed)
    rows = []
    for k, i in enumerate(rng.permutation(n)):
        start = 9 * 60 + 10 * int(rng.integers(0, 12))
        # few distinct lengths: identical intervals (ties by line id) come up too
        length = int(rng.choice([8, 10, 15, 20, 30, 40]))
        code = str(rng.choice(["97110", "97112", "97140", "97530", "97161"]))
        timed = code != "97161"
        no_times = rng.random() < 0.1
        rows.append(
            visit(
                f"L{i:03d}",
                "" if no_times or not timed else f"{start // 60:02d}:{start % 60:02d}",
                ""
                if no_times or not timed
                else f"{(start + length) // 60:02d}:{(start + length) % 60:02d}",
                # now and then more minutes than the window (TIME_INCONSISTENT's case)
                max(0, length + int(rng.integers(-5, 3))) if timed else "",
                code=code,
                encounter_id=f"E{k % 7}",
                patient_id=str(rng.choice(["P1", "P2"])),
                clinic_id=str(rng.choice(["CLN01", "CLN03"])),
                rendering_npi=str(rng.choice([RENDERING_NPI, OTHER_NPI])),
                date_of_service=str(rng.choice(["2026-11-19", "2026-11-20"])),
                payer_id=str(rng.choice(["MCR01", "COM01"])),
            )
        )
    return rows


@pytest.mark.parametrize("seed", range(6))
def test_rules_equal_the_oracle_on_random_nights(seed):
    n, found = run(_random_rows(seed))
    lines = n.lines
    billable = _oracle_billable(lines)
    assert [None if pd.isna(v) else int(v) for v in lines["billable_minutes"]] == [
        None if pd.isna(v) else int(v) for v in billable
    ]
    frame = lines[["line_id", *units.POOL_KEYS, "cpt_code", "timed", "unit_method"]].assign(
        minutes=pd.array(billable, dtype="Int64")
    )
    assert lines["units"].tolist() == oracle_units(frame)
    # one finding on each line that lost minutes, and only there
    lost = [
        lid
        for lid, m, b in zip(lines["line_id"], lines["minutes"], billable, strict=True)
        if not pd.isna(m) and b < m
    ]
    assert sorted(codes(found, "TIME_OVERLAP_SAME_PATIENT")["line_id"]) == sorted(lost)
    assert lost  # the random night does overlap
