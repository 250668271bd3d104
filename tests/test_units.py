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


# --------------------------------------------------------------------------- per code for the day
# MCPM ch. 5 section 20.2 (billing-rules.md 1.1, payer-edits.md "Units and time"): the day's
# timed minutes give the units; lines of one code that day are one code; a code performed 15
# minutes or more gets its full units before any remainder is handed out.


def _frame(rows, method="cms"):
    """(line_id, clinic_id, cpt_code, minutes) rows of patient X on one date and discipline."""
    return pd.DataFrame(
        {
            "line_id": [r[0] for r in rows],
            "payer_id": "P",
            "clinic_id": [r[1] for r in rows],
            "patient_id": "X",
            "date_of_service": pd.Timestamp("2026-11-20"),
            "discipline": "PT",
            "cpt_code": [r[2] for r in rows],
            "minutes": pd.array([r[3] for r in rows], dtype="Int64"),
            "timed": True,
            "unit_method": method,
        }
    )


def by_line(rows, method="cms"):
    df = _frame(rows, method)
    return dict(zip(df["line_id"], units.compute(df).tolist(), strict=True))


def test_a_code_charted_twice_is_one_code_of_20_minutes():
    # 97110 10 + 10 min: one code of 20 min -> 1 unit (8-22), not 1 + 1; equal leftover and
    # minutes, so the lower line id gets it
    assert by_line([("b", "C", "97110", 10), ("a", "C", "97110", 10)]) == {"b": 0, "a": 1}


def test_a_code_of_15_minutes_in_the_day_gets_its_unit_before_remainders():
    # 97110 8 + 8 = 16 min (1 full unit, 1 left over), 97140 9, 97112 9: 34 min -> 2 units.
    # 97110 first gets its full unit; the one left goes to the larger leftover (9 and 9: equal
    # minutes, so the lower code 97112). Line by line, 97110 (leftovers 8, 8) got nothing.
    got = by_line(
        [
            ("t1", "C", "97110", 8),
            ("m", "C", "97140", 9),
            ("n", "C", "97112", 9),
            ("t2", "C", "97110", 8),
        ]
    )
    assert got == {"t1": 1, "m": 0, "n": 1, "t2": 0}


def test_example_3_with_97110_split_over_two_visits():
    # the manual's example 3 (97110 33 + 97140 7 = 40 min -> 3: 97110 x2, 97140 x1) with 97110
    # charted at two visits, 20 + 13: 97110 is one code of 33 min (2 full units, leftover 3)
    got = by_line([("v1", "C", "97110", 20), ("v2", "C", "97110", 13), ("m", "C", "97140", 7)])
    assert got == {"v1": 1, "v2": 1, "m": 1}


def test_a_codes_units_go_to_its_lines_with_the_larger_leftover_then_more_minutes():
    # 97110 23 + 8 = 31 min -> 2 units; lines: floors 1 and 0, leftovers 8 and 8: the tie goes
    # to the line with more minutes (docs/rules.md "Units", step 4)
    assert by_line([("a", "C", "97110", 8), ("b", "C", "97110", 23)]) == {"a": 0, "b": 2}
    # 97110 14 + 9 = 23 min -> 2 units: each line has a leftover and gets one
    assert by_line([("a", "C", "97110", 14), ("b", "C", "97110", 9)]) == {"a": 1, "b": 1}


@pytest.mark.parametrize(
    ("first", "second", "expected"),
    [
        (4, 3, {"a": 0, "b": 0}),  # 7 min of the code: 0 units
        (4, 4, {"a": 1, "b": 0}),  # 8 min: 1 unit, tie -> lower line id
        (11, 11, {"a": 1, "b": 0}),  # 22 min: still 1 unit
        (11, 12, {"a": 1, "b": 1}),  # 23 min: 2 units
    ],
)
def test_boundaries_of_one_code_over_two_lines(first, second, expected):
    rows = [("a", "C", "97110", first), ("b", "C", "97110", second)]
    assert by_line(rows) == expected
    assert by_line(rows, "per_code") == expected  # AMA: the code on its own, the same here


def test_two_clinics_do_not_pool_one_patients_minutes():
    # 97110 8 min at clinic A and 8 at clinic B: two pools of 8 min, 1 unit each; at one clinic
    # the same lines are 16 min of one code, 1 unit
    assert by_line([("a", "A", "97110", 8), ("b", "B", "97110", 8)]) == {"a": 1, "b": 1}
    assert by_line([("a", "A", "97110", 8), ("b", "A", "97110", 8)]) == {"a": 1, "b": 0}
    assert by_line([("a", "A", "97110", 7), ("b", "B", "97140", 7)]) == {"a": 0, "b": 0}


def test_per_code_pools_each_code_of_the_day_on_its_own():
    # AMA: 97110 4 + 4 = 8 min -> 1 unit; 97140 7 alone -> 0; 97112 10 -> 1 (no pooling across)
    got = by_line(
        [
            ("a", "C", "97110", 4),
            ("b", "C", "97110", 4),
            ("c", "C", "97140", 7),
            ("d", "C", "97112", 10),
        ],
        "per_code",
    )
    assert got == {"a": 1, "b": 0, "c": 0, "d": 1}


# --------------------------------------------------------------------------- the oracle


def _table(total: int) -> int:
    """The CMS table, row by row (billing-rules.md 1.1): 0-7 -> 0, 8-22 -> 1, 23-37 -> 2, ..."""
    if total < 8:
        return 0
    return 1 + (total - 8) // 15


def _hand_out(members: dict, units_total: int) -> dict:
    """``members``: key -> (minutes, code, line id). Each floor(minutes/15), then the units left
    one at a time by (leftover desc, minutes desc, code, line id)."""
    got = {k: m // 15 for k, (m, _, _) in members.items()}
    left = units_total - sum(got.values())
    ranked = sorted(members, key=lambda k: (-(members[k][0] % 15), -members[k][0], *members[k][1:]))
    assert 0 <= left <= len([k for k in ranked if members[k][0] % 15])  # never more than one each
    for k in ranked[:left]:
        got[k] += 1
    return got


def oracle_units(df: pd.DataFrame) -> list[int]:
    """Units per line by the documented rule, one pool at a time in plain Python."""
    out = [0] * len(df)
    pools: dict[tuple, list[int]] = {}
    for i, r in enumerate(df.itertuples(index=False)):
        if not r.timed:
            out[i] = 1
            continue
        if pd.isna(r.minutes) or r.unit_method not in ("cms", "per_code"):
            continue
        key = tuple(getattr(r, k) for k in units.POOL_KEYS) + (r.unit_method,)
        if r.unit_method == "per_code":
            key += (r.cpt_code,)
        pools.setdefault(key, []).append(i)
    for members in pools.values():
        rows = df.iloc[members]
        code_min: dict[str, int] = {}
        for r in rows.itertuples(index=False):
            code_min[r.cpt_code] = code_min.get(r.cpt_code, 0) + int(r.minutes)
        first_id = {c: min(rows.loc[rows["cpt_code"] == c, "line_id"]) for c in code_min}
        code_units = _hand_out(
            {c: (m, c, first_id[c]) for c, m in code_min.items()}, _table(sum(code_min.values()))
        )
        for c, u in code_units.items():
            lines = [i for i in members if df["cpt_code"].iloc[i] == c]
            got = _hand_out(
                {i: (int(df["minutes"].iloc[i]), c, df["line_id"].iloc[i]) for i in lines}, u
            )
            assert sum(got.values()) == u
            for i, v in got.items():
                out[i] = v
    return out


def random_lines(seed: int, n: int = 400) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    timed = rng.random(n) < 0.9
    minutes = pd.array(rng.integers(0, 45, n), dtype="Int64")
    minutes[rng.random(n) < 0.05] = pd.NA
    return pd.DataFrame(
        {
            "line_id": [f"L{i:04d}" for i in rng.permutation(n)],
            "payer_id": rng.choice(["P", "Q"], n),
            "clinic_id": rng.choice(["A", "B"], n),
            "patient_id": rng.choice(["X", "Y", "Z"], n),
            "date_of_service": pd.to_datetime(rng.choice(["2026-11-19", "2026-11-20"], n)),
            "discipline": rng.choice(["PT", "OT"], n),
            "cpt_code": np.where(
                timed, rng.choice(["97110", "97112", "97140", "97530"], n), "97161"
            ),
            "minutes": minutes,
            "timed": timed,
            "unit_method": rng.choice(["cms", "per_code", None], n, p=[0.6, 0.35, 0.05]),
        }
    )


@pytest.mark.parametrize("seed", range(12))
def test_fast_path_equals_the_oracle_on_random_nights(seed):
    df = random_lines(seed)
    assert units.compute(df).tolist() == oracle_units(df)


def test_the_oracle_is_the_manuals_examples():
    # the oracle itself against the published results (MCPM ch. 5 section 20.2, examples 1-4)
    for pairs, expected in [
        ([("97112", 24), ("97110", 23)], [2, 1]),
        ([("97110", 33), ("97140", 7)], [2, 1]),
        ([("97110", 18), ("97140", 13), ("97116", 10), ("97035", 8)], [1, 1, 1, 0]),
    ]:
        df = _frame([(f"L{i}", "C", c, m) for i, (c, m) in enumerate(pairs)])
        assert oracle_units(df) == expected == units.compute(df).tolist()


def test_more_than_64_codes_take_the_two_steps_everywhere():
    # 70 distinct codes (more than the bits of the repeat check): the same rule, the oracle's
    rng = np.random.default_rng(64)
    df = random_lines(5, n=600)
    df["cpt_code"] = np.where(df["timed"], [f"C{c:02d}" for c in rng.integers(0, 70, 600)], "U")
    assert df.loc[df["timed"], "cpt_code"].nunique() > 64
    assert units.compute(df).tolist() == oracle_units(df)


@pytest.mark.parametrize("codes", [3, 64])
def test_pools_repeating_a_code_are_the_duplicated_pairs(codes):
    rng = np.random.default_rng(codes)
    pool = rng.integers(0, 300, 2000)
    code = rng.integers(0, codes, 2000) * 7  # sparse code numbers: bits only for those present
    got = units._pools_repeating_a_code(pool, code)
    pairs = pd.DataFrame({"p": pool, "c": code})
    expected = np.zeros(300, dtype=bool)
    expected[pairs.loc[pairs.duplicated(), "p"].unique()] = True
    assert (got == expected).all() and got.any() and not got.all()
    assert units._pools_repeating_a_code(np.arange(65), np.arange(65)) is None


@pytest.mark.parametrize("wide", [False, True])
def test_lexsort_by_line_id_breaks_ties_by_line_id(wide):
    rng = np.random.default_rng(7)
    n = 400
    k1 = rng.integers(0, 2**40 if wide else 3, n)  # wide: too wide to pack, np.lexsort path
    k2 = rng.integers(0, 2**40 if wide else 4, n)
    k1[: n // 2], k2[: n // 2] = k1[0], k2[0]  # half the rows tie on both keys
    ids = pd.Series([f"id{v:05d}" for v in rng.permutation(n)], dtype="string")
    frame = pd.concat([pd.Series(["x"] * 10, dtype="string"), ids], ignore_index=True)
    at = np.arange(n) + 10  # the rows' positions in a larger column
    got = units.lexsort_by_line_id((k1, k2), frame, at)
    expected = sorted(range(n), key=lambda i: (k2[i], k1[i], ids[i]))
    assert got.tolist() == expected
