"""The fast column-wise 837 writer (``therapy_claims.x12``) against the plain claim-by-claim
oracle (``tests/oracle_837.py``): same bytes, same ``rejected`` and ``placed`` dicts.

Why: the fast writer is to be restructured; these tests pin what it must keep producing. The
input is what publish hands the writer (generated nights through the pipeline's ingest, score
and publish stages, the writer's calls recorded), and that input made harder: several clinics
and transaction sets, line renderers, dirty text, other column types, data the 837 cannot
carry (rejected claims), claims over the line limits and split claims.
"""

from __future__ import annotations

import ast
import datetime as dt
import difflib
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from types import ModuleType

import numpy as np
import oracle_837
import pandas as pd
import pytest
from nights import writer_lines
from x12_validate import independent_checks, pyx12_validate

from therapy_claims import generate, npi, pipeline, reference, x12

RD = dt.date(2026, 11, 27)
CREATED = dt.datetime(2026, 11, 27)
ENCOUNTERS = 120
NIGHTS = {  # name: (seed, problem_rate)
    "seed1": (1, 0.08),
    "seed2": (2, 0.02),
    "many_problems": (3, 0.6),
}


@pytest.fixture(scope="module")
def ref() -> reference.Reference:
    return reference.load()


@dataclass
class WriterCall:
    """One call publish made to the 837 writer: its lines and keyword arguments (without the
    ``rejected`` / ``placed`` dicts, which each build here gets fresh)."""

    institutional: bool
    lines: pd.DataFrame
    args: dict
    text: str = ""  # what publish's build gave (from the columns score checked the lines with)


PT_SUPERVISOR = npi.make_valid("171234567")
OT_SUPERVISOR = npi.make_valid("171234568")
REFERRER = npi.make_valid("181234567")


def with_providers(extract: pd.DataFrame) -> pd.DataFrame:
    """The generated night with the provider columns filled (the generator leaves them
    empty): a supervising therapist on every assistant's line (PTA: a PT, OTA: an OT), so
    Medicare assistants' lines go out under the supervisor, and a referring provider on every
    line (the sample MCD01 requires one), so the writers' substitution and NM1*DN paths are
    compared on every night."""
    out = extract.copy()
    credential = out["rendering_credential"]
    supervisors = (
        ("PTA", PT_SUPERVISOR, "Superv", "Paula"),
        ("OTA", OT_SUPERVISOR, "Overseer", "Olga"),
    )
    for assistant, supervisor, last, first in supervisors:
        at = credential == assistant
        out.loc[at, "supervising_npi"] = supervisor
        out.loc[at, "supervising_last_name"] = last
        out.loc[at, "supervising_first_name"] = first
    out["referring_npi"] = REFERRER
    out["referring_last_name"] = "Referrer"
    out["referring_first_name"] = "Rita"
    return out


@pytest.fixture(scope="module")
def nights(tmp_path_factory):
    """A loader of the generated nights as publish hands them to the writer (each night run
    once per module): ``(writer calls, share of the generated lines billed)``.

    The night goes through the pipeline's public stages (ingest, score, publish; validate's
    GX suites are left out, they would only hold more claims) with the writer wrapped to
    record each call, so the input is exactly publish's, however publish works it out."""
    cache: dict[str, tuple[list[WriterCall], float]] = {}

    def load(name: str) -> tuple[list[WriterCall], float]:
        if name not in cache:
            seed, rate = NIGHTS[name]
            folder = tmp_path_factory.mktemp(name)
            extract = generate.generate(ENCOUNTERS, seed=seed, run_date=RD, problem_rate=rate)
            extract = with_providers(extract)
            landing = folder / "landing" / "night.csv"
            generate.write(extract, str(landing))
            cfg = pipeline.RunConfig(
                inputs=[str(landing.parent)], out=str(folder / "out"), run_date=RD
            )
            pipeline.ingest(cfg)
            pipeline.score(cfg)
            calls: list[WriterCall] = []
            with pytest.MonkeyPatch.context() as patch:
                for institutional, name_ in ((False, "build_837p"), (True, "build_837i")):
                    patch.setattr(x12, name_, _recording(getattr(x12, name_), institutional, calls))
                pipeline.publish(cfg)
            assert calls, "publish no longer calls x12.build_837p / x12.build_837i"
            # publish names the lines (it builds from score's checked columns): the lines
            # themselves, as the writer takes them, from the run's layers
            calls = [replace(c, lines=writer_lines(cfg, c.lines)) for c in calls]
            billed = sum(len(c.lines) for c in calls)
            cache[name] = calls, billed / len(extract)
        return cache[name]

    return load


def _recording(
    build: Callable[..., str], institutional: bool, calls: list[WriterCall]
) -> Callable[..., str]:
    """``build``, recording a copy of each call's input in ``calls``."""

    def recorded(lines: pd.DataFrame, **kw) -> str:
        args = {k: v for k, v in kw.items() if k not in ("rejected", "placed", "checked")}
        text = build(lines, **kw)
        calls.append(WriterCall(institutional, lines.copy(), args, text))
        return text

    return recorded


def writer_args(ref: reference.Reference, **kw) -> dict:
    """Keyword arguments of a build outside publish (``kw`` replaces or adds some)."""
    args = {
        "clinics": ref.clinics,
        "payers": ref.payers,
        "receiver_id": "CLEARHOUSE1",
        "receiver_name": "Sample Clearinghouse",
        "interchange_control_number": 263310001,
        "created": CREATED,
        "usage": "T",
    }
    return args | kw


def first_difference(fast: str, oracle: str) -> str:
    """A short unified diff of two interchanges (for the assertion message)."""
    diff = difflib.unified_diff(
        fast.splitlines(), oracle.splitlines(), "fast", "oracle", n=2, lineterm=""
    )
    return "\n".join(list(diff)[:40])


def both(
    lines: pd.DataFrame, institutional: bool, **args
) -> tuple[str, dict[str, str], dict[str, str]]:
    """Build with the fast writer and the oracle; assert the same bytes, the same rejected and
    placed dicts (in the same order) and an untouched input; return the oracle's."""
    before = lines.copy()
    out = []
    for writer in (x12, oracle_837):
        build = writer.build_837i if institutional else writer.build_837p
        rejected: dict[str, str] = {}
        placed: dict[str, str] = {}
        text = build(lines, rejected=rejected, placed=placed, **args)
        out.append((text, rejected, placed))
    (fast, fast_rejected, fast_placed), (oracle, rejected, placed) = out
    assert fast.encode("ascii") == oracle.encode("ascii"), first_difference(fast, oracle)
    assert list(fast_rejected.items()) == list(rejected.items())
    assert list(fast_placed.items()) == list(placed.items())
    pd.testing.assert_frame_equal(lines, before)
    return oracle, rejected, placed


def segments(text: str) -> list[str]:
    """The segments of an interchange, without their terminators."""
    return [s for s in text.split("~\n") if s]


def all_lines(calls: list[WriterCall], institutional: bool) -> pd.DataFrame:
    """Every billed line of one claim type in one frame, in claim order (so the clinics, and
    for 837P the payers, alternate from claim to claim)."""
    frames = [c.lines for c in calls if c.institutional == institutional]
    lines = pd.concat(frames, ignore_index=True)
    lines = lines.sort_values(["claim_id", "date_of_service", "line_id"], kind="mergesort")
    return lines.reset_index(drop=True)


def first_call(calls: list[WriterCall], institutional: bool) -> WriterCall:
    """The first interchange of one claim type."""
    return next(c for c in calls if c.institutional == institutional)


def claim_rows(lines: pd.DataFrame) -> dict[str, np.ndarray]:
    """Row positions of each claim, claims in order of first appearance."""
    codes, ids = pd.factorize(lines["claim_id"])
    return {cid: np.flatnonzero(codes == k) for k, cid in enumerate(ids)}


def set_values(lines: pd.DataFrame, rows: np.ndarray, **values: object) -> None:
    """Set columns at row positions (lists go into object columns cell by cell)."""
    for column, value in values.items():
        at = lines.columns.get_loc(column)
        if isinstance(value, list):
            cells = lines[column].tolist()
            for r in rows:
                cells[r] = list(value)
            lines[column] = pd.Series(cells, index=lines.index, dtype=object)
        else:
            lines.iloc[rows, at] = value


# ---- generated nights, as publish hands them to the writer ---------------------------------


@pytest.mark.parametrize("name", list(NIGHTS))
def test_generated_nights_agree(nights, name):
    calls, billed_share = nights(name)
    assert {c.institutional for c in calls} == {False, True}  # 837P and 837I clinics
    assert billed_share < 0.7 if name == "many_problems" else billed_share > 0.8
    everything = ""
    for call in calls:
        text, rejected, placed = both(call.lines, call.institutional, **call.args)
        assert call.text == text  # publish's build, from the checked columns: the same bytes
        everything += text
        # score held every claim with a problem: all the others go out
        lines = call.lines
        assert rejected == {}
        assert set(placed) == set(lines["claim_id"])
        assert sum(s.startswith("CLM*") for s in segments(text)) == lines["claim_id"].nunique()
    # assistants' lines went out under their supervisors, and every claim names its referrer
    assert f"XX*{PT_SUPERVISOR}~" in everything and f"XX*{OT_SUPERVISOR}~" in everything
    assert everything.count(f"NM1*DN*1*REFERRER*RITA****XX*{REFERRER}~") == everything.count("CLM*")


def varied(lines: pd.DataFrame, ref: reference.Reference, institutional: bool) -> pd.DataFrame:
    """The lines made harder: another clinician on some lines (2420A / 2420C), the billing NPI
    or no NPI as a claim's renderer (837P: no 2310B), another place of service on a line,
    and text to clean (lower case, accents, delimiters, runs of spaces)."""
    lines = lines.reset_index(drop=True).copy()
    rows = list(claim_rows(lines).values())
    other = lines.iloc[rows[1][0]]  # a clinician of another claim (a valid NPI)
    for k, at in enumerate(rows):
        if k % 3 == 0 and len(at) > 1:
            set_values(
                lines,
                at[-1:],
                rendering_npi="  " + other["rendering_npi"],
                rendering_last_name="o'Brien-Núñez",
                rendering_first_name="José*Luis",
            )
        if k % 5 == 1:
            set_values(lines, at, patient_last_name="van der  Berg~", patient_city="Sainte-Élise")
            set_values(lines, at, patient_address="12 Elm St #4 *Apt:3^", patient_first_name="zoë")
        if k % 7 == 2 and not institutional:
            clinic = lines.iloc[at[0]]["clinic_id"]
            set_values(lines, at[:1], rendering_npi=ref.clinics.loc[clinic, "billing_npi"])
        if k % 7 == 3 and not institutional:
            set_values(lines, at[:1], rendering_npi=pd.NA)
        if k % 4 == 1 and len(at) > 1 and not institutional:
            set_values(lines, at[1:2], place_of_service="22")
    return lines


def institutional_clinics(ref: reference.Reference) -> pd.DataFrame:
    """The reference clinics plus a second institutional clinic (the reference has one)."""
    extra = ref.clinics.loc[["CLN03"]].rename(index={"CLN03": "CLN99"})
    extra["clinic_id"] = "CLN99"
    extra["billing_npi"] = npi.make_valid("170089013")
    extra["billing_name"] = "Lakeview North Outpatient Rehab"
    return pd.concat([ref.clinics, extra])


@pytest.mark.parametrize("institutional", [False, True])
def test_several_clinics_sets_and_renderers_agree(nights, ref, monkeypatch, institutional):
    calls, _ = nights("seed1")
    lines = varied(all_lines(calls, institutional), ref, institutional)
    args = writer_args(ref)
    if institutional:  # every other claim at the second institutional clinic
        args["clinics"] = institutional_clinics(ref)
        for k, at in enumerate(claim_rows(lines).values()):
            if k % 2:
                set_values(lines, at, clinic_id="CLN99")
    monkeypatch.setattr(x12, "MAX_CLAIMS_PER_ST", 7)  # the oracle reads it too
    text, rejected, placed = both(lines, institutional, **args)
    segs = segments(text)
    n_claims = lines["claim_id"].nunique()
    assert rejected == {} and len(placed) == n_claims
    n_sets = -(-n_claims // 7)
    assert sorted(set(placed.values())) == [f"{n:04d}" for n in range(1, n_sets + 1)]
    headers = sum(s.startswith("HL*") and s.endswith("*20*1") for s in segs)
    assert headers > n_sets  # the clinic changes within sets
    assert sum(s.startswith("NM1*82") for s in segs) > (0 if institutional else n_claims // 2)
    assert any("NM1*82*1*O'BRIEN-NUNEZ*JOSE LUIS" in s for s in segs)
    assert "N3*12 ELM ST 4 APT 3" in segs
    if not institutional:
        assert any(s.startswith("SV1*") and s.split("*")[5] == "22" for s in segs)


def retyped(lines: pd.DataFrame) -> pd.DataFrame:
    """The same values in other column types a caller may hand over: modifiers as an Arrow
    ``list<string>`` column, diagnoses as lists, pointers as NumPy arrays, dates of service as
    text, a zoned date of birth (same local date), claim ids, charges and units as objects."""
    import pyarrow as pa

    out = lines.copy()
    mods = [None if m is None else [str(v) for v in m] for m in out["modifiers"]]
    out["modifiers"] = pd.Series(
        pd.arrays.ArrowExtensionArray(pa.array(mods, pa.list_(pa.string()))), index=out.index
    )
    codes = out["diagnosis_codes"].str.split(";")
    out["diagnosis_codes"] = pd.Series(codes.tolist(), index=out.index, dtype=object)
    pointers = [np.array([int(p) for p in v.split(";")]) for v in out["diagnosis_pointers"]]
    out["diagnosis_pointers"] = pd.Series(pointers, index=out.index, dtype=object)
    out["date_of_service"] = out["date_of_service"].dt.strftime("%Y-%m-%d").astype(object)
    out["patient_dob"] = out["patient_dob"].dt.tz_localize("America/Chicago")
    out["claim_id"] = out["claim_id"].astype(object)
    out["charge_amount"] = out["charge_amount"].map(repr).astype(object)
    out["units"] = out["units"].astype(float)
    return out


@pytest.mark.parametrize("institutional", [False, True])
def test_other_column_types_agree_and_change_nothing(nights, institutional):
    call = first_call(nights("seed1")[0], institutional)
    text, rejected, placed = both(retyped(call.lines), institutional, **call.args)
    assert rejected == {} and placed
    assert text == both(call.lines, institutional, **call.args)[0]


# ---- claims the 837 cannot carry -----------------------------------------------------------

# (column, value, the line it goes on: "claim" for all its lines, else a line number, and the
# start of the rejection after "claim <id>: ")
SHARED_DEFECTS = [
    ("patient_last_name", "~*:^", "claim", "patient_last_name is empty after removing"),
    ("patient_first_name", "  ", "claim", "patient_first_name is empty after removing"),
    ("rendering_npi", "1234567890", 1, "rendering_npi is not a valid NPI"),
    ("rendering_npi", "1234567890", 2, "rendering_npi is not a valid NPI"),
    ("rendering_first_name", "^^", 1, "rendering_first_name is empty after removing"),
    ("member_id", "AB*123", "claim", "member_id contains characters X12 cannot carry"),
    ("patient_zip", "6270", "claim", "patient_zip is not 5 or 9 digits"),
    ("patient_state", "Illinois", "claim", "patient_state is not a 2-letter state code"),
    ("patient_sex", "X", "claim", "patient_sex is not M, F or U"),
    ("subscriber_relationship", "cousin", "claim", "subscriber_relationship is not"),
    ("diagnosis_codes", ";.;", "claim", "diagnosis_codes is empty"),
    ("charge_amount", -5.0, 2, "charge_amount is missing or negative"),
    ("units", 0, 1, "units is not a positive whole number"),
    ("cpt_code", "9711", 2, "cpt_code/modifiers must be"),
    ("date_of_service", pd.NaT, 2, "date_of_service is missing"),
    ("payer_id", "NOPE", "claim", "payer_id is not in payers.csv"),
    ("clinic_id", "NOPE", "claim", "clinic_id is not in clinics.csv"),
    ("prior_auth_number", "PA-1/2*3", "claim", "prior_auth_number contains characters"),
    # REF*6R carries the line_id as is: lower case, too long, missing or repeated is held
    ("line_id", "l-2", 2, "line_id must be 1-50 characters"),
    ("line_id", "L" * 51, 1, "line_id must be 1-50 characters"),
    ("line_id", pd.NA, 2, "line_id must be 1-50 characters"),
    ("line_id", "SAME-ID", "claim", "line_id repeats another line's of the claim"),
]
PROFESSIONAL_DEFECTS = [
    ("diagnosis_pointers", "9", 2, "diagnosis_pointers must be 1-4 positions"),
    ("place_of_service", "1", 2, "place_of_service is not 2 digits"),
    ("clinic_id", "CLN03", "claim", "(clinic CLN03): clinic claim_type is not professional"),
]
INSTITUTIONAL_DEFECTS = [
    ("discipline", "XX", 2, "discipline has no outpatient therapy revenue code"),
    ("modifiers", [], 1, "modifiers lack G"),
    ("modifiers", ["GP", "GO"], 2, "modifiers carry a therapy modifier other than"),
    ("rendering_npi", pd.NA, 1, "rendering_npi is missing (needed for the attending provider)"),
    ("clinic_id", "CLN01", "claim", "(clinic CLN01): clinic claim_type is not institutional"),
]


def with_defects(lines: pd.DataFrame, defects: list[tuple]) -> tuple[pd.DataFrame, dict[str, str]]:
    """One defect per claim (claims with 2+ lines): the lines and the start of each expected
    rejection by claim id."""
    lines = lines.reset_index(drop=True).copy()
    lines["claim_id"] = lines["claim_id"].astype(object)  # may take a CLM01 X12 cannot carry
    candidates = [(cid, at) for cid, at in claim_rows(lines).items() if len(at) > 1]
    # claims without assistants' lines first: an assistant's line may go out under its
    # supervisor, and then a defect in its rendering columns is not written at all
    assistant = lines["rendering_credential"].isin(["PTA", "OTA"]).to_numpy()
    candidates.sort(key=lambda c: bool(assistant[c[1]].any()))
    assert len(candidates) > len(defects) + 2
    expected: dict[str, str] = {}
    for (cid, at), (column, value, where, message) in zip(candidates, defects, strict=False):
        set_values(lines, at if where == "claim" else at[where - 1 : where], **{column: value})
        # a problem in a reference row names the row: "claim X (clinic C): ..."
        expected[cid] = f"claim {cid}{' ' if message.startswith('(') else ': '}{message}"
    # a claim with two defects reports the first one a reader meets (the name before the ZIP)
    cid, at = candidates[len(defects)]
    set_values(lines, at, patient_zip="1", patient_last_name="*")
    expected[cid] = f"claim {cid}: patient_last_name is empty"
    # a CLM01 that X12 cannot carry is refused, not cleaned
    cid, at = candidates[len(defects) + 1]
    bad_id = cid.lower() + "*"
    set_values(lines, at, claim_id=bad_id)
    expected[bad_id] = f"claim {bad_id}: claim_id must be 1-20 characters"
    return lines, expected


@pytest.mark.parametrize("institutional", [False, True])
def test_rejected_claims_agree(nights, ref, institutional):
    calls, _ = nights("seed2")
    defects = SHARED_DEFECTS + (INSTITUTIONAL_DEFECTS if institutional else PROFESSIONAL_DEFECTS)
    lines, expected = with_defects(all_lines(calls, institutional), defects)
    text, rejected, placed = both(lines, institutional, **writer_args(ref))
    assert set(rejected) == set(expected)
    for cid, start in expected.items():
        assert rejected[cid].startswith(start), (rejected[cid], start)
    assert set(placed) == set(lines["claim_id"]) - set(expected)
    clm01 = {s.split("*")[1] for s in segments(text) if s.startswith("CLM*")}
    assert clm01 == set(placed)


def test_bad_reference_rows_reject_their_claims(nights, ref):
    """A clinic or payer row the 837 cannot carry rejects each of its claims, naming the row."""
    calls, _ = nights("seed2")
    lines = all_lines(calls, False)
    clinics, payers = ref.clinics.copy(), ref.payers.copy()
    clinics.loc["CLN02", "billing_npi"] = "1500123455"  # a wrong check digit
    payers.loc["COM01", "claim_filing_indicator"] = "C*"
    args = writer_args(ref, clinics=clinics, payers=payers)
    _, rejected, placed = both(lines, False, **args)
    firsts = lines.drop_duplicates("claim_id")
    at_cln02 = set(firsts.loc[firsts["clinic_id"] == "CLN02", "claim_id"])
    at_com01 = set(firsts.loc[firsts["payer_id"] == "COM01", "claim_id"]) - at_cln02
    assert at_cln02 and at_com01 and placed
    assert set(rejected) == at_cln02 | at_com01
    assert all("(clinic CLN02): clinic billing_npi" in rejected[c] for c in at_cln02)
    assert all("(payer COM01): payer claim_filing_indicator" in rejected[c] for c in at_com01)


def test_rejections_inside_small_transaction_sets_agree(nights, ref, monkeypatch):
    """Rejected claims keep their place in the sets (a set may end up with none written, and
    is then left out); HL numbers and 2000A headers go on from the last written claim."""
    calls, _ = nights("seed1")
    lines, expected = with_defects(all_lines(calls, False), SHARED_DEFECTS)
    monkeypatch.setattr(x12, "MAX_CLAIMS_PER_ST", 2)
    text, rejected, placed = both(lines, False, **writer_args(ref))
    assert set(rejected) == set(expected)
    n_sets = sum(s.startswith("ST*") for s in segments(text))
    assert n_sets == len(set(placed.values())) < -(-lines["claim_id"].nunique() // 2)


def test_without_rejected_both_raise_the_same_error(nights, ref):
    calls, _ = nights("seed2")
    lines, expected = with_defects(all_lines(calls, False), SHARED_DEFECTS)
    messages = []
    for writer in (x12, oracle_837):
        with pytest.raises(ValueError) as err:
            writer.build_837p(lines, **writer_args(ref))
        messages.append(str(err.value))
    assert messages[0] == messages[1]
    assert any(messages[0].startswith(m) for m in expected.values()), messages[0]


@pytest.mark.parametrize(
    "change",
    [
        {"receiver_id": "clear house"},
        {"receiver_name": "~~"},
        {"usage": "X"},
        {"interchange_control_number": 0},
    ],
)
def test_envelope_errors_agree(nights, ref, change):
    calls, _ = nights("seed1")
    lines = first_call(calls, True).lines
    messages = []
    for writer in (x12, oracle_837):
        with pytest.raises(ValueError) as err:
            writer.build_837i(lines, **writer_args(ref, **change))
        messages.append(str(err.value))
    assert messages[0] == messages[1]
    for writer in (x12, oracle_837):
        with pytest.raises(ValueError, match="no service lines"):
            writer.build_837p(lines.iloc[0:0], **writer_args(ref))


def outcome(writer: ModuleType, lines: pd.DataFrame, institutional: bool, args: dict) -> tuple:
    """What one build gives: ``("built", text, rejected, placed)`` (the dicts as item lists,
    so their order counts) or ``("raised", exception type, message)``."""
    build = writer.build_837i if institutional else writer.build_837p
    rejected: dict[str, str] = {}
    placed: dict[str, str] = {}
    try:
        text = build(lines, rejected=rejected, placed=placed, **args)
    except Exception as exc:  # noqa: BLE001 - the oracle must fail as the writer does
        return ("raised", type(exc).__name__, str(exc))
    return ("built", text, list(rejected.items()), list(placed.items()))


def _on_claim(lines: pd.DataFrame, k: int, column: str, value: object) -> pd.DataFrame:
    """``lines`` with ``column`` as an object column holding ``value`` on every line of the
    ``k``-th claim (``-1``: the last)."""
    cells = lines[column].astype(object).tolist()
    for r in list(claim_rows(lines).values())[k]:
        cells[r] = value
    return lines.assign(**{column: pd.Series(cells, index=lines.index, dtype=object)})


ODD_INPUTS = {
    # a missing clinic id in an object column, after a claim of a known clinic
    "na_clinic_after_a_clinic": lambda df: _on_claim(df, -1, "clinic_id", pd.NA),
    "none_clinic_first": lambda df: _on_claim(df, 0, "clinic_id", None),
    "no_claim_id": lambda df: _on_claim(df, 1, "claim_id", None),
    "integer_claim_ids": lambda df: df.assign(
        claim_id=pd.Series(pd.factorize(df["claim_id"])[0] + 100, index=df.index, dtype=object)
    ),
    "unencodable_claim_id": lambda df: _on_claim(df, 0, "claim_id", "TC\ud800"),
    "integer_line_ids": lambda df: df.assign(
        line_id=pd.Series(np.arange(len(df)) + 7, index=df.index, dtype=object)
    ),
    "unencodable_line_id": lambda df: _on_claim(df, 1, "line_id", "L\ud800"),
    "non_ascii_zip_digits": lambda df: _on_claim(
        df, 2, "patient_zip", "\u0666\u0662\u0667\u0660\u0661"
    ),
    "text_units_and_charges": lambda df: df.assign(
        units=df["units"].astype(str).astype(object),
        charge_amount=["$1", *df["charge_amount"].map(str)[1:]],
    ),
}
RAISING = {"na_clinic_after_a_clinic", "no_claim_id", "non_ascii_zip_digits"}


@pytest.mark.parametrize("case", list(ODD_INPUTS))
def test_odd_inputs_give_the_same_outcome(nights, case):
    """Inputs publish does not send but a caller could: both writers build the same file or
    fail with the same exception. Pinned as they are, not as they should be: the TypeError of
    a missing clinic id and the UnicodeEncodeError of a ZIP of non-ASCII digits (instead of a
    rejected claim) look like bugs of the writer, kept here until it is fixed on purpose."""
    call = first_call(nights("seed1")[0], False)
    lines = call.lines[call.lines["claim_id"].isin(call.lines["claim_id"].unique()[:6])]
    lines = ODD_INPUTS[case](lines.reset_index(drop=True))
    fast = outcome(x12, lines, False, call.args)
    assert fast == outcome(oracle_837, lines, False, call.args)
    assert fast[0] == ("raised" if case in RAISING else "built"), fast[:3]
    if fast[0] == "built":
        assert fast[3], "no claim was written"


# ---- line limits: claims split into parts, and claims over the limit -----------------------


def grown(lines: pd.DataFrame, rows: np.ndarray, n: int, claim_id: str) -> pd.DataFrame:
    """A claim ``claim_id`` of ``n`` lines made from the lines at ``rows`` (its dates of
    service spread over ``n // 10`` days)."""
    big = lines.iloc[[rows[i % len(rows)] for i in range(n)]].reset_index(drop=True)
    big["claim_id"] = claim_id
    big["line_id"] = [f"{claim_id}-L{i:04d}" for i in range(n)]
    first_day = big["date_of_service"].iloc[0]
    big["date_of_service"] = first_day - pd.to_timedelta(np.arange(n) // 10, unit="D")
    return big


def split(big: pd.DataFrame, limit: int) -> pd.DataFrame:
    """A claim over the line limit as score sends it: its lines by date of service and line_id
    in parts of ``limit`` lines, ``<claim_id>-1``, ``-2``, ..."""
    big = big.sort_values(["date_of_service", "line_id"], kind="mergesort")
    part = np.arange(len(big)) // limit + 1
    return big.assign(claim_id=[f"{c}-{p}" for c, p in zip(big["claim_id"], part, strict=True)])


@pytest.mark.parametrize("institutional", [False, True])
def test_split_claims_and_claims_over_the_line_limit_agree(nights, ref, institutional):
    calls, _ = nights("seed2")
    lines = first_call(calls, institutional).lines.reset_index(drop=True)
    limit = x12.LINE_LIMITS["institutional" if institutional else "professional"]
    rows = list(claim_rows(lines).values())
    split_id, unsplit_id = "TCSPLIT0000000001", "TCUNSPLIT00000001"
    big = split(grown(lines, rows[0], limit + 20, split_id), limit)
    unsplit = grown(lines, rows[1], limit + 1, unsplit_id)  # (score would have split it)
    lines = pd.concat([lines.drop(index=np.r_[rows[0], rows[1]]), big, unsplit])
    lines = lines.sort_values(["claim_id", "date_of_service", "line_id"], kind="mergesort")
    text, rejected, placed = both(lines.reset_index(drop=True), institutional, **writer_args(ref))
    assert rejected == {unsplit_id: f"claim {unsplit_id}: service lines exceed {limit} per claim"}
    assert {f"{split_id}-1", f"{split_id}-2"} <= set(placed)
    clm = [s for s in segments(text) if s.startswith(f"CLM*{split_id}")]
    assert [s.split("*")[1] for s in clm] == [f"{split_id}-1", f"{split_id}-2"]
    lx = [s for s in segments(text) if s.startswith("LX*")]
    assert f"LX*{limit}" in lx and f"LX*{limit + 1}" not in lx


# ---- the oracle on its own ------------------------------------------------------------------


@pytest.mark.parametrize("institutional", [False, True])
def test_oracle_output_passes_pyx12(nights, ref, institutional):
    calls, _ = nights("seed1")
    lines = first_call(calls, institutional).lines
    lines = varied(
        lines[lines["claim_id"].isin(lines["claim_id"].unique()[:15])], ref, institutional
    )
    lines, expected = with_defects(lines, SHARED_DEFECTS[:3])
    rejected: dict[str, str] = {}
    build = oracle_837.build_837i if institutional else oracle_837.build_837p
    text = build(lines, rejected=rejected, **writer_args(ref))
    assert set(rejected) == set(expected)
    ok, report = pyx12_validate(text)
    assert ok, report
    assert "IK5*A" in report
    assert independent_checks(text) == []


def test_a_changed_oracle_is_noticed(nights, ref, monkeypatch):
    """The comparison is not vacuous: an oracle writing amounts with cents fails it."""
    call = nights("seed1")[0][0]
    monkeypatch.setattr(oracle_837, "money", lambda cents: f"{cents / 100:.2f}")
    with pytest.raises(AssertionError, match="fast"):
        both(call.lines, call.institutional, **call.args)


def test_oracle_uses_no_private_part_of_the_fast_writer():
    """The oracle may read x12's public constants, nothing with a leading underscore."""
    tree = ast.parse(Path(oracle_837.__file__).read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module == "therapy_claims.x12":
            assert all(not a.name.startswith("_") and a.name.isupper() for a in node.names)
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            if node.value.id == "x12":
                assert node.attr.isupper(), node.attr
