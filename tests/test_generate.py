"""The synthetic extract generator (therapy_claims.generate)."""

from __future__ import annotations

import datetime as dt
import hashlib
import json

import numpy as np
import pandas as pd
import pytest

from therapy_claims import generate as gen
from therapy_claims import layout, npi, reference

RUN = dt.date(2026, 5, 12)
TIMED = {"97110", "97112", "97140", "97530", "97116", "97535"}


@pytest.fixture(scope="module")
def ref():
    return reference.load()


@pytest.fixture(scope="module")
def clean():
    return gen.generate(600, seed=7, run_date=RUN, problem_rate=0)


@pytest.fixture(scope="module")
def dirty():
    return gen.generate_labelled(1500, seed=11, run_date=RUN, problem_rate=0.2)


def _minutes_of_day(s: pd.Series) -> pd.Series:
    hm = s.str.split(":", expand=True).astype(int)
    return hm[0] * 60 + hm[1]


def test_all_layout_columns_as_strings(clean):
    assert list(clean.columns) == list(layout.COLUMN_NAMES)
    for c in clean.columns:
        assert clean[c].map(type).eq(str).all(), c
    for c in layout.REQUIRED_COLUMNS:
        assert (clean[c] != "").all(), c


def test_values_follow_the_layout(clean):
    for c in layout.COLUMNS:
        v = clean[c.name]
        present = v != ""
        if c.pattern:
            assert v[present].str.fullmatch(c.pattern).all(), c.name
        if c.allowed:
            assert v[present].isin(c.allowed).all(), c.name
        if c.max_len:
            assert v.str.len().max() <= c.max_len, c.name
        if c.kind == "date":
            assert pd.to_datetime(v[present], format="%Y-%m-%d", errors="coerce").notna().all()
        if c.kind == "int":
            assert v[present].str.fullmatch(r"\d+").all(), c.name
    assert clean["charge_amount"].str.fullmatch(r"\d+\.\d\d").all()
    regions = clean["body_region"][clean["body_region"] != ""].str.split(";").explode()
    assert regions.isin(layout.BODY_REGIONS).all()
    techniques = clean["technique"][clean["technique"] != ""].str.split(";").explode()
    assert techniques.isin(layout.MANUAL_TECHNIQUES).all()


def test_deterministic_for_a_seed():
    a = gen.generate(200, seed=3, run_date=RUN)
    b = gen.generate(200, seed=3, run_date=RUN)
    c = gen.generate(200, seed=4, run_date=RUN)
    pd.testing.assert_frame_equal(a, b)
    assert a.to_csv(index=False).encode() == b.to_csv(index=False).encode()
    assert not a.equals(c)


def test_line_ids_unique_when_clean(clean):
    assert clean["line_id"].is_unique
    assert clean.groupby("encounter_id").size().between(1, 5).all()


def test_encounter_lines_share_patient_date_payer(clean):
    shared = [
        "patient_id",
        "date_of_service",
        "payer_id",
        "clinic_id",
        "rendering_npi",
        "diagnosis_codes",
        "visit_number",
    ]
    assert (clean.groupby("encounter_id")[shared].nunique() == 1).all().all()
    # a patient is seen at most once a day, and patient attributes are stable
    assert (clean.groupby(["patient_id", "date_of_service"])["encounter_id"].nunique() == 1).all()
    assert (
        (clean.groupby("patient_id")[["patient_dob", "patient_last_name"]].nunique() == 1)
        .all()
        .all()
    )


def test_reference_keys_dates_and_weights(clean, ref):
    assert clean["payer_id"].isin(ref.payers.index).all()
    assert clean["clinic_id"].isin(ref.clinics.index).all()
    dos = pd.to_datetime(clean["date_of_service"]).dt.date
    assert dos.min() >= RUN - dt.timedelta(days=7) and dos.max() < RUN
    assert (pd.to_datetime(clean["patient_dob"]).dt.date < dos).all()
    share = clean.drop_duplicates("encounter_id")["payer_id"].map(ref.payers["payer_class"])
    share = share.value_counts(normalize=True)
    assert 0.25 < share["medicare"] < 0.45 and 0.25 < share["commercial"] < 0.45


def test_rendering_npis_valid_and_discipline_follows_credential(clean):
    assert clean["rendering_npi"].map(npi.is_valid).all()
    expected = {"PT": "PT", "PTA": "PT", "OT": "OT", "OTA": "OT", "SLP": "SLP", "DC": "CHIRO"}
    assert (clean["rendering_credential"].map(expected) == clean["discipline"]).all()
    assert (clean.groupby("rendering_npi")["rendering_credential"].nunique() == 1).all()


def test_timed_lines_have_minutes_and_fit_their_interval(clean):
    timed = clean[clean["cpt_code"].isin(TIMED)]
    assert len(timed) > 100
    assert (timed["minutes"] != "").all()
    m = timed["minutes"].astype(int)
    assert (m >= 8).all()
    span = _minutes_of_day(timed["end_time"]) - _minutes_of_day(timed["start_time"])
    assert (span >= m).all()
    untimed = clean[~clean["cpt_code"].isin(TIMED)]
    assert (untimed["minutes"] == "").all()


def test_no_clinician_overlap_across_patients(clean):
    t = clean[clean["cpt_code"].isin(TIMED)].copy()
    t["s"] = _minutes_of_day(t["start_time"])
    t["e"] = _minutes_of_day(t["end_time"])
    t = t.sort_values(["rendering_npi", "date_of_service", "s"])
    same = (t["rendering_npi"] == t["rendering_npi"].shift()) & (
        t["date_of_service"] == t["date_of_service"].shift()
    )
    overlap = same & (t["s"] < t["e"].shift()) & (t["patient_id"] != t["patient_id"].shift())
    assert not overlap.any()


def test_units_charted_match_payer_method(clean, ref):
    """Clean data: charted units are what the CMS / per-code rule gives, never 0."""
    d = clean.copy()
    d["unit_method"] = d["payer_id"].map(ref.payers["unit_method"])
    d["m"] = pd.to_numeric(d["minutes"].replace("", "0"))
    d["timed"] = d["cpt_code"].isin(TIMED)
    d["u"] = d["units_charted"].astype(int)
    assert (d.loc[~d["timed"], "u"] == 1).all()
    t = d[d["timed"]]
    per_code = t["m"] // 15 + (t["m"] % 15 >= 8)
    pc = t["unit_method"] == "per_code"
    assert (per_code[pc] == t.loc[pc, "u"]).all()
    cms = t[~pc]
    total = cms.groupby("encounter_id")["m"].sum()
    pooled = total // 15 + (total % 15 >= 8)
    assert (cms.groupby("encounter_id")["u"].sum() == pooled).all()
    assert (t["u"] >= 1).all()
    cap = d["payer_id"].map(ref.payers["max_timed_units_per_day"]).fillna(99).astype(int)
    assert (
        t.groupby("encounter_id")["u"].sum() <= cap[t.index].groupby(t["encounter_id"]).first()
    ).all()


def test_modifiers_and_clinic_flavours(clean, ref):
    mods = clean["modifiers"].str.split(";")
    assert mods.map(len).max() <= 4
    chiro = clean[clean["discipline"] == "CHIRO"]
    assert (chiro["rendering_credential"] == "DC").all()
    assert set(chiro["clinic_id"]) == {"CLN02"}
    cmt = chiro[chiro["cpt_code"].isin(["98940", "98941", "98942"])]
    n_regions = cmt["body_region"].str.count(";") + 1
    want = cmt["cpt_code"].map({"98940": (1, 2), "98941": (3, 4), "98942": (5, 5)})
    assert all(lo <= n <= hi for n, (lo, hi) in zip(n_regions, want, strict=True))
    # 97140 with CMT: another region, and a distinct-service modifier
    m140 = chiro[chiro["cpt_code"] == "97140"].merge(
        cmt[["encounter_id", "body_region"]], on="encounter_id", suffixes=("", "_cmt")
    )
    assert len(m140) > 0
    for a, b in zip(m140["body_region"], m140["body_region_cmt"], strict=True):
        assert not set(a.split(";")) & set(b.split(";"))
    assert m140["modifiers"].str.contains(r"(?:^|;)(?:59|XS)(?:;|$)").all()
    pt = clean[clean["discipline"] == "PT"]
    assert pt["modifiers"].str.contains("GP").mean() > 0.9
    assert set(clean["rendering_credential"][clean["clinic_id"] == "CLN01"]) == {
        "PT",
        "PTA",
        "OT",
        "OTA",
    }
    m97140 = clean[clean["cpt_code"] == "97140"]
    assert (m97140[["body_region", "technique", "goal_id", "patient_response"]] != "").all().all()
    # every indicator-1 NCCI pair in an encounter carries 59/X on its column-2 line
    codes = clean.groupby("encounter_id")["cpt_code"].agg(set)
    for c1, c2 in ref.ncci[["column1", "column2"]].itertuples(index=False):
        encs = codes[codes.map(lambda s, a=c1, b=c2: a in s and b in s)].index
        lines = clean[clean["encounter_id"].isin(encs) & (clean["cpt_code"] == c2)]
        assert lines["modifiers"].str.contains(r"(?:^|;)(?:59|XS|XU|XE|XP)(?:;|$)").all()


def test_dependents_auth_and_plan_of_care(clean, ref):
    patients = clean.drop_duplicates("patient_id")
    dep = patients["subscriber_relationship"].isin(["child", "spouse"])
    assert 0.03 < dep.mean() < 0.2
    assert (patients.loc[dep, ["subscriber_last_name", "subscriber_dob"]] != "").all().all()
    assert patients["subscriber_relationship"].isin(["self", "", "child", "spouse"]).all()
    needs = clean["payer_id"].map(ref.payers["requires_prior_auth"]).astype(bool)
    assert (clean.loc[needs, "prior_auth_number"] != "").all()
    auth = clean["authorized_visits"] != ""
    assert (
        clean.loc[auth, "visit_number"].astype(int)
        <= clean.loc[auth, "authorized_visits"].astype(int)
    ).all()
    poc = clean["plan_of_care_start"] != ""
    dos = clean.loc[poc, "date_of_service"]
    assert (
        (clean.loc[poc, "plan_of_care_start"] <= dos) & (dos <= clean.loc[poc, "plan_of_care_end"])
    ).all()


def test_hostile_and_unicode_text_appears():
    df = gen.generate(3000, seed=2, run_date=RUN, problem_rate=0)
    text = pd.concat([df["patient_last_name"], df["patient_first_name"], df["patient_address"]])
    assert text.str.contains(r"[^\x00-\x7f]").any()
    assert text.str.contains(r"[*~:^]").any()
    assert df["patient_response"].str.match(r"[=+@-]").any()


def test_problem_rate_produces_many_kinds(dirty, ref):
    df, problems = dirty
    assert problems["kind"].nunique() >= 10
    assert set(problems["kind"]) <= set(gen.PROBLEM_KINDS)
    # one problem per affected encounter, and about problem_rate of the encounters
    assert problems["encounter_id"].is_unique
    assert 0.15 < len(problems) / df["encounter_id"].nunique() < 0.25
    # visible in the data itself
    timed = df["cpt_code"].isin(TIMED)
    assert (~df["payer_id"].isin(ref.payers.index)).any()
    assert (~df["clinic_id"].isin(ref.clinics.index)).any()
    assert (timed & (df["minutes"] == "")).any()
    assert df["minutes"].str.startswith("-").any()
    assert df["line_id"].duplicated().any()
    assert pd.to_datetime(df["date_of_service"], format="%Y-%m-%d", errors="coerce").isna().any()
    assert (~df["charge_amount"].str.fullmatch(r"\d+\.\d\d")).any()
    t = df[timed & (df["start_time"] != "")]
    assert (t["end_time"] < t["start_time"]).any()
    assert ((df["cpt_code"] == "97140") & (df["technique"] == "")).any()
    assert (df["patient_last_name"] == "").any() or (df["member_id"] == "").any()
    # problems name real lines of the frame
    assert problems["line_id"].isin(df["line_id"]).all()


def test_generate_matches_generate_labelled(dirty):
    df = gen.generate(1500, seed=11, run_date=RUN, problem_rate=0.2)
    pd.testing.assert_frame_equal(df, dirty[0])


def test_zero_encounters_and_bad_arguments():
    df = gen.generate(0, run_date=RUN)
    assert list(df.columns) == list(layout.COLUMN_NAMES) and len(df) == 0
    with pytest.raises(ValueError):
        gen.generate(10, problem_rate=1.5)


@pytest.mark.parametrize("suffix", [".csv", ".parquet", ".jsonl"])
def test_write_round_trips(tmp_path, suffix):
    df, _ = gen.generate_labelled(300, seed=5, run_date=RUN, problem_rate=0.3)
    path = tmp_path / f"extract{suffix}"
    gen.write(df, str(path))
    if suffix == ".csv":
        back = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8")
        assert path.read_bytes().startswith(b"line_id,encounter_id,")
    elif suffix == ".parquet":
        back = pd.read_parquet(path)
    else:
        lines = path.read_text(encoding="utf-8").splitlines()
        assert len(lines) == len(df)
        back = pd.DataFrame([json.loads(x) for x in lines])
    assert list(back.columns) == list(df.columns)
    assert np.array_equal(back.to_numpy(dtype=object), df.to_numpy(dtype=object))


def test_write_rejects_unknown_suffix(tmp_path):
    with pytest.raises(ValueError):
        gen.write(gen.generate(5, run_date=RUN), str(tmp_path / "x.xlsx"))


# Digests of the CSV text of nights generated before generate.py was split into parts: the
# generator must keep drawing the same random numbers in the same order for a given seed.
FROZEN_NIGHTS = [
    (
        300,
        5,
        dt.date(2026, 5, 12),
        0.08,
        "921eb6cba8e0d8adbd1e782e5b6ed29813541fcfcee422d53e3c01afe2098fff",
        "c6916c445c9838dbd19eddcab287ff3da2235bfbff55d29d7d6924f343509846",
    ),
    (
        3000,
        3,
        dt.date(2026, 11, 27),
        0.5,
        "aae8b61c86b5458f5efbef21859d60e5709d12e1e3e855ba029c6c57c1ac92b7",
        "c6b3cd3346928caaf1c4bd9d97f23d6b45b8bf42317b5757fcffb6d9e50e8cbe",
    ),
]


def _csv_digest(df: pd.DataFrame) -> str:
    return hashlib.sha256(df.to_csv(index=False, lineterminator="\n").encode()).hexdigest()


@pytest.mark.parametrize("encounters,seed,run_date,rate,extract_sha,problems_sha", FROZEN_NIGHTS)
def test_output_for_a_seed_is_frozen(encounters, seed, run_date, rate, extract_sha, problems_sha):
    df, problems = gen.generate_labelled(
        encounters, seed=seed, run_date=run_date, problem_rate=rate
    )
    assert _csv_digest(df) == extract_sha
    assert _csv_digest(problems) == problems_sha
