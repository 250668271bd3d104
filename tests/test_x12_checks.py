"""``x12.unwritable_claims`` decides exactly the holds a build of the same lines decides: the
same claims, the same messages, in the same order, on generated nights and on crafted bad
claims."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from nights import RD, write_night, writer_lines
from test_x12 import CREATED, frame, line

from therapy_claims import pipeline, reference, x12


@pytest.fixture(scope="module")
def ref():
    return reference.load()


def build_rejected(lines: pd.DataFrame, institutional: bool, clinics, payers) -> dict[str, str]:
    rejected: dict[str, str] = {}
    build = x12.build_837i if institutional else x12.build_837p
    build(
        lines,
        clinics=clinics,
        payers=payers,
        receiver_id="CLEARHOUSE1",
        receiver_name="Sample Clearinghouse",
        interchange_control_number=17,
        created=CREATED,
        rejected=rejected,
    )
    return rejected


def assert_same(lines: pd.DataFrame, institutional: bool, clinics, payers) -> dict[str, str]:
    expected = build_rejected(lines, institutional, clinics, payers)
    got = x12.unwritable_claims(lines, institutional=institutional, clinics=clinics, payers=payers)
    assert got == expected
    assert list(got) == list(expected)  # the same order, too
    return got


@pytest.fixture(scope="module")
def night_frames(tmp_path_factory) -> list[tuple[pd.DataFrame, bool, dict]]:
    """The writer's inputs (and keyword arguments) of a generated night, as publish built it
    (publish builds from the columns score checked: the lines as the writer takes them are
    those of the run's layers, ``writer_lines``)."""
    root = tmp_path_factory.mktemp("night")
    write_night(str(root / "landing"))
    cfg = pipeline.RunConfig(inputs=[str(root / "landing")], out=str(root / "out"), run_date=RD)
    seen: list = []
    originals = (x12.build_837p, x12.build_837i)

    def capture(build, institutional):
        def wrapped(lines, **kw):
            seen.append((lines.copy(), institutional, kw["clinics"], kw["payers"]))
            return build(lines, **kw)

        return wrapped

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(x12, "build_837p", capture(originals[0], False))
        mp.setattr(x12, "build_837i", capture(originals[1], True))
        pipeline.run(cfg, parallel=False)
    assert {i for _, i, _, _ in seen} == {False, True}, "the night built no 837P or no 837I"
    return [(writer_lines(cfg, lines), *rest) for lines, *rest in seen]


def test_generated_night_as_built(night_frames):
    for lines, institutional, clinics, payers in night_frames:
        assert_same(lines, institutional, clinics, payers)


def spoil(lines: pd.DataFrame, seed: int) -> pd.DataFrame:
    """The lines with a bad value put into random lines, one kind of problem per line."""
    rng = np.random.default_rng(seed)
    out = lines.copy()
    for c in out.columns:
        if isinstance(out[c].dtype, pd.StringDtype) or c in ("units", "charge_amount"):
            out[c] = out[c].astype(object)
    problems = [
        ("rendering_npi", "1234567890"),
        ("rendering_npi", None),
        ("patient_last_name", "***"),
        ("rendering_first_name", "~~"),
        ("patient_zip", "1234"),
        ("member_id", "M~1"),
        ("group_number", "G" * 51),
        ("patient_state", "Illinois"),
        ("patient_sex", "X"),
        ("subscriber_relationship", "cousin"),
        ("clinic_id", "NOPE"),
        ("payer_id", "NOPE"),
        ("diagnosis_codes", ";".join(f"M{i:02d}.1" for i in range(13))),
        ("diagnosis_codes", ""),
        ("diagnosis_pointers", "9"),
        ("place_of_service", "1"),
        ("cpt_code", "9711"),
        ("modifiers", "GP;GO"),
        ("units", 0),
        ("charge_amount", -5.0),
        ("date_of_service", pd.NaT),
        ("patient_dob", pd.NaT),
        ("prior_auth_number", "A*B"),
        ("claim_id", "X" * 21),
    ]
    rows = rng.choice(len(out), size=min(len(out), 3 * len(problems)), replace=False)
    for i, r in enumerate(rows):
        column, value = problems[i % len(problems)]
        if column in out:
            out.at[out.index[r], column] = value
    return out


@pytest.mark.parametrize("seed", [1, 2])
def test_generated_night_with_bad_values(night_frames, seed):
    held = 0
    for lines, institutional, clinics, payers in night_frames:
        held += len(assert_same(spoil(lines, seed), institutional, clinics, payers))
    assert held > 20


def bad_claims() -> pd.DataFrame:
    """One claim per problem the checks know, next to good claims."""
    rows = [
        line(claim_id="OK1"),
        line(claim_id="NPI", rendering_npi="1234567890"),
        line(claim_id="NAME", patient_last_name="***"),
        line(claim_id="FIRST", patient_first_name="~"),
        line(claim_id="CLINIC", clinic_id="NOPE"),
        line(claim_id="CLINICROW", clinic_id="CLN02"),
        line(claim_id="PAYER", payer_id="NOPE"),
        line(claim_id="DX", diagnosis_codes=[f"M{i:02d}.1" for i in range(13)]),
        line(claim_id="NODX", diagnosis_codes=[]),
        line(claim_id="PTR", diagnosis_pointers=[3]),
        line(claim_id="ZIP", patient_zip="1234"),
        line(claim_id="DEP", subscriber_relationship="child", subscriber_last_name="!!"),
        line(claim_id="LINE2", line_id="L1"),
        line(claim_id="LINE2", line_id="L2", units=0),
        line(claim_id="RENDER2", line_id="L1"),
        line(claim_id="RENDER2", line_id="L2", rendering_npi="1558598797", rendering_last_name="#"),
        line(claim_id="OK2"),
    ]
    rows += [line(claim_id="LONG", line_id=f"L{i}") for i in range(51)]
    return frame(*rows)


def test_crafted_bad_claims(ref):
    clinics = ref.clinics.copy()
    clinics.loc["CLN02", "billing_npi"] = "1234567890"  # a bad clinic reference row
    got = assert_same(bad_claims(), False, clinics, ref.payers)
    assert set(got) == {
        "NPI", "NAME", "FIRST", "CLINIC", "CLINICROW", "PAYER", "DX", "NODX", "PTR", "ZIP",
        "DEP", "LINE2", "RENDER2", "LONG",
    }  # fmt: skip
    assert got["CLINICROW"] == (
        "claim CLINICROW (clinic CLN02): clinic billing_npi is not a valid NPI "
        "(10 digits with a correct check digit)"
    )
    assert got["LONG"] == "claim LONG: service lines exceed 50 per claim"
    assert got["DX"] == "claim DX: diagnosis_codes has more than 12 codes"
    assert got["NAME"] == (
        "claim NAME: patient_last_name is empty after removing characters X12 cannot carry"
    )


def test_crafted_bad_institutional_claims(ref):
    rows = [
        line(claim_id="OK1", clinic_id="CLN03", discipline="PT"),
        line(claim_id="MOD", clinic_id="CLN03", discipline="PT", modifiers=["GO"]),
        line(claim_id="DISC", clinic_id="CLN03", discipline="XX"),
        line(claim_id="NONPI", clinic_id="CLN03", discipline="PT", rendering_npi=pd.NA),
        line(claim_id="PROF", clinic_id="CLN01", discipline="PT"),
    ]
    got = assert_same(frame(*rows), True, ref.clinics, ref.payers)
    assert set(got) == {"MOD", "DISC", "NONPI", "PROF"}


def test_nothing_to_check():
    assert (
        x12.unwritable_claims(
            pd.DataFrame(), institutional=False, clinics=pd.DataFrame(), payers=pd.DataFrame()
        )
        == {}
    )
