"""Units against the CMS manual's worked examples (MCPM ch. 5 section 20.2, billing-rules.md 1.2)
and the AMA per-code comparison table (billing-rules.md 1.3). Expected values are the published
ones, written out by hand."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from therapy_claims import units


def compute(pairs, method="cms", discipline="PT"):
    df = pd.DataFrame(
        {
            "line_id": [f"L{i}" for i in range(len(pairs))],
            "payer_id": "P",
            "clinic_id": "C",
            "patient_id": "X",
            "date_of_service": pd.Timestamp("2026-11-20"),
            "discipline": discipline,
            "cpt_code": [c for c, _ in pairs],
            "minutes": pd.array([m for _, m in pairs], dtype="Int64"),
            "timed": [m is not None for _, m in pairs],
            "unit_method": method,
        }
    )
    return dict(zip(df["cpt_code"], units.compute(df).tolist(), strict=True))


@pytest.mark.parametrize(
    ("minutes", "expected"),
    [
        (0, 0),
        (7, 0),
        (8, 1),
        (22, 1),
        (23, 2),
        (37, 2),
        (38, 3),
        (52, 3),
        (53, 4),
        (67, 4),
        (68, 5),
        (82, 5),
        (83, 6),
        (97, 6),
        (98, 7),
        (112, 7),
        (113, 8),
        (127, 8),
    ],
)
def test_cms_table(minutes, expected):
    assert units.units_for_minutes([minutes])[0] == expected


def test_cms_example_1_more_units_to_more_time():
    assert compute([("97112", 24), ("97110", 23)]) == {"97112": 2, "97110": 1}


def test_cms_example_2_equal_time_never_three_of_one_code():
    got = compute([("97112", 20), ("97110", 20)])
    assert sorted(got.values()) == [1, 2] and sum(got.values()) == 3
    # the spec's tie-break: equal leftover and equal minutes -> the lower code
    assert got == {"97110": 2, "97112": 1}


def test_cms_example_3_seven_minutes_of_97140_billed():
    assert compute([("97110", 33), ("97140", 7)]) == {"97110": 2, "97140": 1}


def test_cms_example_4_four_codes_49_minutes():
    assert compute([("97110", 18), ("97140", 13), ("97116", 10), ("97035", 8)]) == {
        "97110": 1,
        "97140": 1,
        "97116": 1,
        "97035": 0,
    }


def test_lone_code_under_8_minutes_is_zero():
    assert compute([("97140", 7)]) == {"97140": 0}


def test_two_short_codes_pool_to_one_unit_for_the_larger():
    assert compute([("97112", 5), ("97140", 7)]) == {"97112": 0, "97140": 1}


@pytest.mark.parametrize(
    ("pairs", "cms_total", "ama"),
    [
        ([("97110", 33), ("97140", 7)], 3, {"97110": 2, "97140": 0}),
        ([("97110", 8), ("97140", 8)], 1, {"97110": 1, "97140": 1}),
        ([("97112", 20), ("97110", 20)], 3, {"97112": 1, "97110": 1}),
        ([("97112", 24), ("97110", 23)], 3, {"97112": 2, "97110": 2}),
        ([("97140", 7)], 0, {"97140": 0}),
    ],
)
def test_ama_comparison_table(pairs, cms_total, ama):
    assert sum(compute(pairs, "cms").values()) == cms_total
    assert compute(pairs, "per_code") == ama


def test_untimed_codes_bill_one_unit_and_add_no_minutes():
    got = compute([("97161", None), ("97140", 7)])
    assert got == {"97161": 1, "97140": 0}


def test_pools_are_per_discipline_patient_and_date():
    df = pd.DataFrame(
        {
            "line_id": ["a", "b", "c"],
            "payer_id": "P",
            "clinic_id": "C",
            "patient_id": ["X", "X", "Y"],
            "date_of_service": pd.Timestamp("2026-11-20"),
            "discipline": ["PT", "OT", "PT"],
            "cpt_code": ["97110", "97530", "97110"],
            "minutes": pd.array([7, 7, 7], dtype="Int64"),
            "timed": True,
            "unit_method": "cms",
        }
    )
    # 7 + 7 minutes in different disciplines or patients do not pool into a unit
    assert units.compute(df).tolist() == [0, 0, 0]


def test_largest_remainder_never_exceeds_pool():
    # leftovers 14, 14, 0 over 58 min total -> 4 units: 1 full for 97110 plus two remainders
    assert compute([("97110", 29), ("97112", 14), ("97116", 15)]) == {
        "97110": 2,
        "97112": 1,
        "97116": 1,
    }


def test_tie_on_leftover_minutes_and_code_goes_to_the_lower_line_id():
    # 97110 twice with 8 minutes: 16 pooled minutes -> 1 unit, to line "a" though it comes second
    df = pd.DataFrame(
        {
            "line_id": ["b", "a"],
            "payer_id": "P",
            "clinic_id": "C",
            "patient_id": "X",
            "date_of_service": pd.Timestamp("2026-11-20"),
            "discipline": "PT",
            "cpt_code": ["97110", "97110"],
            "minutes": pd.array([8, 8], dtype="Int64"),
            "timed": True,
            "unit_method": "cms",
        }
    )
    assert units.compute(df).tolist() == [0, 1]


def _pools_frame(rows):
    return pd.DataFrame(
        {
            "line_id": [r[0] for r in rows],
            "payer_id": [r[1] for r in rows],
            "clinic_id": "C",
            "patient_id": "X",
            "date_of_service": pd.Timestamp("2026-11-20"),
            "discipline": "PT",
            "cpt_code": [r[2] for r in rows],
            "minutes": pd.array([r[3] for r in rows], dtype="Int64"),
            "timed": True,
            "unit_method": [r[4] for r in rows],
        }
    )


def test_cms_and_per_code_pools_never_mix():
    # payer P (CMS): 8 + 8 pooled minutes -> 1 unit, to the lower code; payer Q (per code):
    # each code alone, 8 minutes -> 1 unit, 7 minutes -> 0
    df = _pools_frame(
        [
            ("a", "P", "97140", 8, "cms"),
            ("b", "P", "97110", 8, "cms"),
            ("c", "Q", "97110", 8, "per_code"),
            ("d", "Q", "97112", 7, "per_code"),
        ]
    )
    assert units.compute(df).tolist() == [0, 1, 1, 0]


def test_ties_go_to_the_lower_line_id_whatever_the_row_order():
    # 3 x 8 min of 97110 and 10 min of 97112: 34 pooled minutes -> 2 units; the larger
    # leftover (97112) takes one, then of the equal 97110 lines the lowest line id ("a")
    df = _pools_frame(
        [
            ("c", "P", "97110", 8, "cms"),
            ("a", "P", "97110", 8, "cms"),
            ("z", "P", "97112", 10, "cms"),
            ("b", "P", "97110", 8, "cms"),
        ]
    )
    assert units.compute(df).tolist() == [0, 1, 1, 0]


def test_group_ids_group_like_groupby_with_missing_values():
    rng = np.random.default_rng(3)
    n = 500
    text = pd.Series(rng.choice(["a", "b", "c", None], n), dtype="string")
    codes = rng.integers(-1, 3, n)  # factorised codes: -1 is a missing value
    wide = rng.choice([0, 10**12, -(10**12)], n)  # far apart: factorised, not shifted
    stamp = pd.Series(pd.to_datetime(rng.choice(["2026-01-01", "2026-02-01", None], n)))
    ids = units.group_ids([text, codes, wide, stamp])
    expected = (
        pd.DataFrame({"t": text, "c": codes, "w": wide, "s": stamp})
        .groupby(["t", "c", "w", "s"], dropna=False, sort=False)
        .ngroup()
        .to_numpy()
    )
    # the same partition, numbered 0..groups-1
    assert sorted(set(ids)) == list(range(len(set(expected))))
    assert len(set(zip(ids, expected, strict=True))) == len(set(expected))


@pytest.mark.parametrize("high", [1, 2, 5, 1000])
def test_lexsort_is_numpys(high):
    rng = np.random.default_rng(high)
    keys = (rng.integers(-high, high, 300), rng.random(300) < 0.5, rng.integers(0, high, 300))
    assert (units.lexsort(keys) == np.lexsort(keys)).all()
    wide = (rng.integers(0, 2**40, 50), rng.integers(0, 2**40, 50))  # too wide to pack
    assert (units.lexsort(wide) == np.lexsort(wide)).all()
    assert len(units.lexsort((np.zeros(0, dtype=int),))) == 0
