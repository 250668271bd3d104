"""Issue 14, units classes 4-6: duplicate charges found by content (DUPLICATE_CHARGE), the
constant-attendance modalities 97032-97039 as one-on-one codes, and unknown procedure codes
(CODE_UNKNOWN). Every expected result is worked out by hand from the rule it cites."""

from __future__ import annotations

import csv
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from factories import OTHER_NPI, RENDERING_NPI, row, write_csv
from test_rules import REF, TEST_REFERENCE, fired, night

from therapy_claims import extract, pipeline, reference, rules, storage
from therapy_claims.layout import COLUMN_NAMES

RD = date(2026, 11, 28)


def ingest(*paths):
    return extract.ingest([str(p) for p in paths], ingested_at="2026-11-28T02:00:00Z")


def codes(got) -> list[str]:
    return sorted(got.findings["code"].tolist())


def balanced(got) -> bool:
    return got.rows_in == len(got.raw) + len(got.quarantined)


# --------------------------------------------------------------------------- DUPLICATE_CHARGE
# billing-rules.md 9 rule 3: one line per code per date of service; a service charted twice
# under two line_ids is one charge (payer-edits.md "Units": a code charted twice is one code).


def test_exact_copy_under_another_line_id_is_quarantined_naming_the_kept_line(tmp_path):
    p = write_csv(tmp_path / "d.csv", [row(), row(line_id="L2")])
    got = ingest(p)
    assert codes(got) == ["DUPLICATE_CHARGE"]
    f = got.findings.iloc[0]
    assert f["line_id"] == "L2" and f["severity"] == "error" and f["source_row"] == 3
    assert "as line_id L1 (d.csv row 2), which is kept" in f["message"]
    assert "this copy (d.csv row 3) is quarantined" in f["message"]
    assert got.raw["line_id"].tolist() == ["L1"]
    assert got.quarantined["line_id"].tolist() == ["L2"] and balanced(got)


def test_ids_differing_only_in_case_and_blanks_are_one_charge(tmp_path):
    # ' p 1 ' is P1, 'cln01' is CLN01, an NPI with blanks around it is the same NPI
    copy = row(
        line_id="L2", patient_id=" p 1 ", clinic_id="cln01", rendering_npi=f" {RENDERING_NPI} "
    )
    got = ingest(write_csv(tmp_path / "d.csv", [row(), copy]))
    assert codes(got) == ["DUPLICATE_CHARGE"] and got.raw["line_id"].tolist() == ["L1"]


@pytest.mark.parametrize(
    ("column", "value"),
    [
        ("end_time", "09:31"),  # one minute later: another interval, not a copy
        ("start_time", "09:01"),
        ("patient_id", "P2"),
        ("clinic_id", "CLN02"),
        ("date_of_service", "2026-11-21"),
        ("cpt_code", "97112"),
        ("rendering_npi", OTHER_NPI),
    ],
)
def test_a_line_differing_in_one_key_is_not_a_duplicate(tmp_path, column, value):
    got = ingest(write_csv(tmp_path / "d.csv", [row(), row(line_id="L2", **{column: value})]))
    assert "DUPLICATE_CHARGE" not in codes(got)
    assert got.raw["line_id"].tolist() == ["L1", "L2"] and got.quarantined.empty


@pytest.mark.parametrize(
    ("kept", "copy"),
    [("JOSÉ1", "josé1"), ("P1", "p\u00a01"), ("P-1", "p - 1")],  # accents, NBSP, inner blanks
)
def test_unicode_case_and_blanks_in_ids(tmp_path, kept, copy):
    rows = [row(patient_id=kept), row(line_id="L2", patient_id=copy)]
    assert codes(ingest(write_csv(tmp_path / "d.csv", rows))) == ["DUPLICATE_CHARGE"]


def _oracle(typed: pd.DataFrame) -> dict[int, int]:
    """Copy position -> kept position, the plain way: normalised keys, pandas groupby."""
    keys = pd.DataFrame(
        {
            c: typed[c].str.upper().str.replace(r"[\s\xa0]+", "", regex=True)
            for c in ("patient_id", "clinic_id", "rendering_npi", "cpt_code")
        }
    )
    keys["date"] = typed["date_of_service"]
    for c in ("start_minute", "end_minute"):
        keys[c] = typed[c].fillna(-1)
    order = typed.sort_values(["source_file", "source_row"], kind="stable").index
    keys = keys.loc[order]
    group = keys.groupby(list(keys.columns), sort=False, dropna=False).ngroup()
    first = group.reset_index().groupby(0)["index"].transform("first").to_numpy()
    pos = group.index.to_numpy()
    return {int(p): int(f) for p, f in zip(pos, first, strict=True) if p != f}


def test_the_fast_passes_find_what_a_plain_groupby_finds():
    # many lines share the cheap keys (untimed codes of one clinician and day, no times) and
    # differ only in patient: the hashed passes must neither lose nor invent a copy
    rng = np.random.default_rng(14)
    n = 4000
    rows = []
    for i in range(n):
        timed = rng.random() < 0.5
        start = int(rng.integers(420, 440))
        pid = f"P{int(rng.integers(0, 60))}"
        if rng.random() < 0.2:  # the same patient written otherwise
            pid = " " + pid[0].lower() + " " + pid[1:]
        rows.append(
            row(
                line_id=f"L{i}",
                patient_id=pid,
                clinic_id=["CLN01", "cln01", "CLN02"][int(rng.integers(0, 3))],
                date_of_service=["2026-11-20", "2026-11-21"][int(rng.integers(0, 2))],
                cpt_code=["97110", "97010", "g0283"][int(rng.integers(0, 3))],
                rendering_npi=[RENDERING_NPI, OTHER_NPI][int(rng.integers(0, 2))],
                start_time=f"{start // 60:02d}:{start % 60:02d}" if timed else "",
                end_time=f"{(start + 15) // 60:02d}:{(start + 15) % 60:02d}" if timed else "",
            )
        )
    strings = pd.DataFrame([{c: r.get(c, "") for c in COLUMN_NAMES} for r in rows])
    strings = strings.astype("string")
    strings["source_file"] = np.where(np.arange(n) % 3 == 0, "b.csv", "a.csv")
    strings["source_row"] = pd.array(np.arange(n) + 2, dtype="Int64")
    typed, _, bad = extract.type_rows(strings)
    assert not bad.any()
    copies, kept = extract.duplicate_charges(typed, np.arange(n))
    expected = _oracle(typed)
    assert len(expected) > 1000  # most lines are copies here: the check is not vacuous
    assert dict(zip(copies.tolist(), kept.tolist(), strict=True)) == expected


def test_payer_minutes_and_units_are_not_compared(tmp_path):
    # one service at one time by one clinician, charted again with other figures: one charge
    copy = row(line_id="L2", payer_id="COM01", minutes="25", units_charted="1", charge_amount="9")
    got = ingest(write_csv(tmp_path / "d.csv", [row(), copy]))
    assert codes(got) == ["DUPLICATE_CHARGE"]


def test_missing_times_equal_only_missing_times(tmp_path):
    untimed = {"cpt_code": "97161", "minutes": "", "start_time": "", "end_time": ""}
    rows = [
        row(line_id="E1", **untimed),
        row(line_id="E2", **untimed),  # both without times: one charge
        row(line_id="E3", cpt_code="97161", minutes=""),  # with times 09:00-09:30: another
        row(line_id="E4", cpt_code="97161", minutes="", end_time=""),  # start only: another
    ]
    got = ingest(write_csv(tmp_path / "d.csv", rows))
    dup = got.findings[got.findings["code"] == "DUPLICATE_CHARGE"]
    assert dup["line_id"].tolist() == ["E2"] and "line_id E1" in dup["message"].iloc[0]
    assert got.raw["line_id"].tolist() == ["E1", "E3", "E4"]


def test_the_first_in_file_order_is_kept_whatever_order_the_parts_come_in(tmp_path):
    a = write_csv(tmp_path / "a.csv", [row(line_id="LA")])
    b = write_csv(tmp_path / "b.csv", [row(line_id="LB0", patient_id="P9"), row(line_id="LB")])
    for order in ([a, b], [b, a]):
        got = extract.combine([extract.read_typed(str(p)) for p in order], "2026-11-28T02:00:00Z")
        dup = got.findings[got.findings["code"] == "DUPLICATE_CHARGE"]
        assert dup["line_id"].tolist() == ["LB"]
        assert "as line_id LA (a.csv row 2)" in dup["message"].iloc[0]
        assert "(b.csv row 3) is quarantined" in dup["message"].iloc[0]
        assert sorted(got.raw["line_id"]) == ["LA", "LB0"]


def test_three_copies_keep_one_and_name_it_on_each_copy(tmp_path):
    rows = [row(line_id="K"), row(line_id="C1"), row(line_id="C2", encounter_id="E2")]
    got = ingest(write_csv(tmp_path / "d.csv", rows))
    dup = got.findings[got.findings["code"] == "DUPLICATE_CHARGE"]
    assert dup["line_id"].tolist() == ["C1", "C2"]
    assert all("as line_id K (d.csv row 2)" in m for m in dup["message"])
    assert len(got.quarantined) == 2 and balanced(got)


def test_a_repeated_line_id_is_reported_once_not_also_as_a_duplicate_charge(tmp_path):
    # the same line_id twice: DUPLICATE_LINE (first held, copy quarantined), nothing more
    got = ingest(write_csv(tmp_path / "d.csv", [row(), row(encounter_id="E2")]))
    assert codes(got) == ["DUPLICATE_LINE", "DUPLICATE_LINE"]


def test_a_row_that_failed_typing_is_no_ones_duplicate(tmp_path):
    # L1 is quarantined (bad minutes): its visit is held, and L2 is the charge kept
    rows = [row(minutes="-1"), row(line_id="L2"), row(line_id="L3", encounter_id="E2")]
    got = ingest(write_csv(tmp_path / "d.csv", rows))
    dup = got.findings[got.findings["code"] == "DUPLICATE_CHARGE"]
    assert dup["line_id"].tolist() == ["L3"] and "line_id L2" in dup["message"].iloc[0]
    assert codes(got) == ["DUPLICATE_CHARGE", "ENCOUNTER_INCOMPLETE", "ROW_INVALID"]


def test_no_encounter_is_put_on_hold_for_a_copy(tmp_path):
    # L1 and L3 form visit E1; L2 (same visit) copies L1: quarantined, E1 stays complete
    rows = [
        row(),
        row(line_id="L2"),
        row(
            line_id="L3",
            cpt_code="97140",
            start_time="09:30",
            end_time="09:45",
            minutes="15",
            body_region="lumbar",
            technique="joint_mobilization",
        ),
    ]
    got = ingest(write_csv(tmp_path / "d.csv", rows))
    assert codes(got) == ["DUPLICATE_CHARGE"]
    assert got.raw["line_id"].tolist() == ["L1", "L3"]


# --------------------------------------------------------------------------- one-on-one codes
# payer-edits.md "Units": the constant-attendance modalities 97032-97039 require direct
# one-on-one contact by CPT definition; supervised modalities (97010-97028, G0283) do not.

SHIPPED = reference.load()
ATTENDED = ["97032", "97033", "97034", "97035", "97036", "97039"]


@pytest.mark.parametrize("ref", [SHIPPED, REF], ids=["shipped", "tests"])
def test_97035_for_a_group_of_two_is_not_one_on_one(ref):
    line = {"cpt_code": "97035", "minutes": "15", "end_time": "09:15", "units_charted": "1"}
    f = fired(night([row(group_size="2", **line)], ref), "NOT_ONE_ON_ONE")
    assert f["line_id"].tolist() == ["L1"] and "group_size is 2" in f["message"].iloc[0]
    assert fired(night([row(group_size="1", **line)], ref), "NOT_ONE_ON_ONE").empty


@pytest.mark.parametrize("ref", [SHIPPED, REF], ids=["shipped", "tests"])
def test_one_clinicians_97033_with_two_patients_at_once_overlaps(ref):
    # 09:00-09:20 with P1 and 09:10-09:30 with P2: 10 minutes with both -> both lines
    a = row(cpt_code="97033", minutes="20", start_time="09:00", end_time="09:20")
    b = row(
        line_id="L2",
        encounter_id="E2",
        patient_id="P2",
        cpt_code="97033",
        minutes="20",
        start_time="09:10",
        end_time="09:30",
    )
    f = fired(night([a, b], ref), "PROVIDER_OVERLAP")
    assert sorted(f["line_id"]) == ["L1", "L2"]
    assert "09:10-09:30 for patient P2" in f.set_index("line_id").loc["L1", "message"]


def test_touching_97033_intervals_do_not_overlap():
    # 09:00-09:20 then 09:20-09:40: the clinician goes from one patient to the next
    a = row(cpt_code="97033", minutes="20", start_time="09:00", end_time="09:20")
    b = row(
        line_id="L2",
        encounter_id="E2",
        patient_id="P2",
        cpt_code="97033",
        minutes="20",
        start_time="09:20",
        end_time="09:40",
    )
    assert fired(night([a, b], SHIPPED), "PROVIDER_OVERLAP").empty


def test_supervised_modalities_stay_outside_one_on_one():
    # 97010 hot packs for two patients at once is how supervised modalities are given
    a = row(cpt_code="97010", minutes="", start_time="09:00", end_time="09:20", group_size="2")
    b = row(
        line_id="L2",
        encounter_id="E2",
        patient_id="P2",
        cpt_code="97010",
        minutes="",
        start_time="09:10",
        end_time="09:30",
    )
    n = night([a, b], SHIPPED)
    assert fired(n, "PROVIDER_OVERLAP").empty and fired(n, "NOT_ONE_ON_ONE").empty


def _shipped_rows() -> list[dict[str, str]]:
    path = Path(reference.DEFAULT_DIR) / "cpt_codes.csv"
    with path.open(encoding="utf-8") as f:
        return list(csv.DictReader(f))


def test_every_shipped_code_cites_the_source_of_its_flags():
    for r in _shipped_rows():
        assert r["source"].strip(), r["code"]
        # timed 15-minute codes cite billing-rules.md 2.1; untimed ones 2.2 or say why not
        if r["timed"] == "true":
            assert "billing-rules.md 2.1" in r["source"], r["code"]
        else:
            assert "2.2" in r["source"] or "UNCONFIRMED" in r["source"], r["code"]


def test_shipped_flags_follow_the_cpt_definitions():
    by_code = {r["code"]: r for r in _shipped_rows()}
    # every timed code is one-on-one time (billing-rules.md 1.1), 97032-97039 included
    for code in ATTENDED:
        assert by_code[code]["timed"] == by_code[code]["one_on_one"] == "true", code
    assert all(r["one_on_one"] == "true" for r in by_code.values() if r["timed"] == "true")
    # untimed: evaluations, supervised modalities (with G0283), 97150, CMT (billing-rules 2.2)
    untimed = [*map(str, range(97161, 97169)), "97010", "97012", "97014", "97016", "97018"]
    untimed += ["97022", "97024", "97026", "97028", "G0283", "97150", "98940", "98941"]
    untimed += ["98942", "98943"]
    for code in untimed:
        assert by_code[code]["timed"] == by_code[code]["one_on_one"] == "false", code
    # GP/GO/GN do not apply to a chiropractor's CMT (payer-edits.md "Edits")
    assert all(by_code[c]["always_therapy"] == "false" for c in ("98940", "98941", "98942"))


def test_a_code_table_without_source_loads_with_the_same_flags():
    # the rule tests' copy has no source column (a folder from before this issue)
    assert "source" not in pd.read_csv(TEST_REFERENCE / "cpt_codes.csv", nrows=0).columns
    assert "source" in SHIPPED.cpt.columns
    flags = ["timed", "one_on_one", "always_therapy", "category"]
    assert REF.cpt[flags].sort_index().equals(SHIPPED.cpt[flags].sort_index())


# --------------------------------------------------------------------------- CODE_UNKNOWN
# an unknown code would bill as an untimed 1-unit code without a word: its claim is held.


def test_unknown_code_is_reported_naming_code_and_line():
    n = night([row(), row(line_id="L2", cpt_code="99999", minutes="30", units_charted="2")])
    f = fired(n, "CODE_UNKNOWN")
    assert f["line_id"].tolist() == ["L2"] and f["severity"].iloc[0] == "error"
    assert "procedure code '99999' of line L2 is not in cpt_codes.csv" in f["message"].iloc[0]
    assert f["evidence"].iloc[0].startswith("cpt_codes.csv@")


def test_unknown_code_gets_no_units_finding_on_top():
    # units_charted 2 vs the 1 an untimed code would get: no UNITS_CORRECTED, which would
    # pretend to know the code's units
    n = night([row(cpt_code="99999", minutes="30", units_charted="2")])
    found = rules.run_all(n)
    assert found["code"].tolist() == ["CODE_UNKNOWN"]


def test_every_shipped_code_is_known():
    rows = [row(line_id=f"L{i}", cpt_code=c) for i, c in enumerate(SHIPPED.cpt.index)]
    assert fired(night(rows, SHIPPED), "CODE_UNKNOWN").empty


def test_code_unknown_runs_right_after_unknown_clinic():
    names = [r.name for r in rules.ORDER]
    assert names.index("input.code_unknown") == names.index("input.unknown_clinic") + 1


# --------------------------------------------------------------------------- a whole night


def test_a_night_bills_the_kept_line_once_and_holds_the_unknown_code(tmp_path):
    rows = [
        row(),  # E1: kept, billed (2 units from 30 minutes)
        row(line_id="L2", patient_id=" p1 "),  # copy of L1: quarantined, E1 not held
        row(line_id="L3", encounter_id="E3", patient_id="P3", cpt_code="99999"),  # held
        row(
            line_id="L4", encounter_id="E3", patient_id="P3", start_time="10:00", end_time="10:30"
        ),  # same claim as L3: held with it
    ]
    inp = write_csv(tmp_path / "landing" / "c.csv", rows)
    cfg = pipeline.RunConfig(inputs=[str(inp.parent)], out=str(tmp_path / "out"), run_date=RD)
    m = pipeline.run(cfg)
    assert (m["rows_in"], m["rows_quarantined"], m["rows_scored"]) == (4, 1, 3)
    assert (m["lines_billed"], m["lines_held"], m["lines_not_billed"]) == (1, 2, 0)
    assert m["balanced"] is True
    s = storage.read_parquet(storage.join(cfg.final("scored"), "scored.parquet"))
    s = s.set_index("line_id")
    assert "L2" not in s.index
    assert s.loc["L1", "status"] == "billed" and s.loc["L1", "units"] == 2
    assert list(s.loc["L1", "exception_codes"]) == []
    assert s.loc["L3", "status"] == s.loc["L4", "status"] == "held"
    assert list(s.loc["L3", "exception_codes"]) == ["CODE_UNKNOWN"]
    assert m["exceptions_by_code"].get("DUPLICATE_CHARGE") == 1
    assert "ENCOUNTER_INCOMPLETE" not in m["exceptions_by_code"]
