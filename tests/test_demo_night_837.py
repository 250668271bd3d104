"""The demo night, end to end, for the claim content a payer checks (issue 15).

``therapy-claims demo`` generates 300 encounters (seed 7, problem rate 0.1) and runs them
with a reference folder holding the night's provider roster minus two assistants. Here the
same night runs through the pipeline (without Airflow) and every claim file must pass pyx12
and the structural checker (tests/x12_content_check.py, which reads the text without the
writer), while each point of the issue shows up in the files: assistants billed under their
supervisor, an OT's own taxonomy, Medicare chiropractic with DTP*454, workers' comp and auto
with CLM11 and DTP*439, an institutional Medicare claim with its occurrence codes and Part A
SBR09, referring providers; and each generated content problem is held or reported.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd
import pytest
from x12_content_check import check_837, duplicate_control_numbers
from x12_validate import pyx12_validate

from therapy_claims import generate, pipeline, reference, storage
from therapy_claims.x12 import reader

RUN_DATE = dt.date(2026, 11, 28)


def segments(text: str) -> list[str]:
    """The segments of a claim file as this writer puts them: one per line, ``~`` ended."""
    return [s.removesuffix("~") for s in text.splitlines() if s]


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    root = tmp_path_factory.mktemp("demo")
    df, problems = generate.generate_labelled(300, seed=7, run_date=RUN_DATE, problem_rate=0.1)
    left_out = generate.write_reference(df, str(root / "reference"), leave_out=2)
    landing = root / "landing"
    landing.mkdir()
    generate.write(df, str(landing / f"encounters_{RUN_DATE.isoformat()}.csv"))
    cfg = pipeline.RunConfig(
        inputs=[str(landing)], out=str(root / "out"), run_date=RUN_DATE,
        reference=str(root / "reference"),
    )  # fmt: skip
    manifest = pipeline.run(cfg)
    files = sorted(Path(cfg.final("claims")).glob("*.x12"))
    texts = {f.name: f.read_text(encoding="ascii") for f in files}
    exceptions = pd.read_parquet(Path(cfg.final("exceptions")) / "exceptions.parquet")
    scored = storage.read_parquet(storage.join(cfg.final("scored"), "scored.parquet"))
    ref = reference.load(str(root / "reference"))
    return df, problems, left_out, manifest, files, texts, exceptions, scored, ref


def test_the_night_balances_and_every_file_passes_pyx12(demo):
    _, _, _, manifest, files, _, _, _, _ = demo
    assert manifest["balanced"] is True and manifest["claims_billed"] > 0
    verdicts = [pyx12_validate(str(f)) for f in files]
    assert len(files) >= 2 and all(ok for ok, _ in verdicts), [r for ok, r in verdicts if not ok]
    assert duplicate_control_numbers(list(demo[5].values())) == []


def test_every_file_passes_the_structural_checker(demo):
    df, _, _, _, _, texts, _, _, ref = demo
    assistants = set(df.loc[df["rendering_credential"].isin(["PTA", "OTA"]), "rendering_npi"])
    for name, text in texts.items():
        assert (
            check_837(text, payers=ref.payers, assistants=assistants, providers=ref.providers) == []
        ), name


def test_each_point_of_the_issue_shows_in_the_files(demo):
    df, _, _, _, _, texts, _, scored, ref = demo
    segs = [s for t in texts.values() for s in segments(t)]
    text = "\n".join(segs)
    # assistants billed under a supervisor: the supervisor's NPI renders, with CQ/CO
    may_render = df["payer_id"].map(ref.payers["assistants_may_render"]).fillna(True)
    under = df[df["rendering_credential"].isin(["PTA", "OTA"]) & ~may_render.astype(bool)]
    billed = scored[(scored["status"] == "billed") & scored["line_id"].isin(under["line_id"])]
    assert len(billed)
    supervisors = set(under.loc[under["line_id"].isin(billed["line_id"]), "supervising_npi"])
    assert any(f"XX*{npi}" in text for npi in supervisors)
    # (that no assistant renders where the payer forbids it: the structural checker)
    assert any(":CQ" in s or ":CO" in s for s in segs if s.startswith(("SV1*", "SV2*")))
    # the renderers' own taxonomies: an OT, a chiropractor
    assert "PRV*PE*PXC*225X00000X" in segs and "PRV*PE*PXC*111N00000X" in segs
    # Medicare chiropractic: DTP*454; workers' comp and auto: CLM11 and DTP*439
    assert any(s.startswith("DTP*454*D8*") for s in segs)
    assert any(s.startswith("CLM*") and s.endswith("**EM") for s in segs)
    assert any(s.startswith("CLM*") and "**AA:::" in s for s in segs)
    assert any(s.startswith("DTP*439*D8*") for s in segs)
    assert any(s.startswith("NM1*IL*2*") for s in segs) and "PAT*20" in segs
    assert any(s.startswith("REF*Y4*") for s in segs)
    # an institutional Medicare claim: Part A SBR09, occurrence codes, point of origin
    assert any(s.startswith("SBR*") and s.endswith("*MA") for s in segs)
    assert any(s.startswith("HI*BH:35:D8:") for s in segs) and "CL1*3*1*01" in segs
    # the referring provider, and the payers by their clearinghouse ids
    assert any(s.startswith("NM1*DN*1*") for s in segs)
    ids = set(ref.payers["clearinghouse_payer_id"])
    assert {s.split("*")[-1] for s in segs if s.startswith("NM1*PR*")} <= ids


def test_each_generated_content_problem_is_found(demo):
    _, problems, left_out, _, _, _, exceptions, _, _ = demo
    content = problems[problems["kind"].isin(generate.CONTENT_KINDS)]
    assert set(content["kind"]) == set(generate.CONTENT_KINDS)
    for _, p in content.iterrows():
        code = generate.CONTENT_FINDINGS[p["kind"]]
        if code:
            got = exceptions[exceptions["encounter_id"] == p["encounter_id"]]["code"]
            assert code in set(got), (p["kind"], p["encounter_id"], sorted(set(got)))
    unknown = exceptions[exceptions["code"] == "PROVIDER_UNKNOWN"]
    assert len(unknown) and all(any(npi in m for npi in left_out) for m in unknown["message"])


def test_every_service_line_carries_its_own_line_id_as_ref_6r(demo):
    """Every 2400 loop of the night's 837P and 837I files has exactly one ``REF*6R``, and it is
    the line_id of the scored line that loop bills (same claim, code, charge, units and date
    of service), so an 835's SVC loop can be matched back to the line. (pyx12 passes these
    files: ``test_the_night_balances_and_every_file_passes_pyx12``.)"""
    _, _, _, _, _, texts, _, scored, _ = demo
    billed = scored[scored["status"] == "billed"]
    expected = {
        (c, lid): (cpt, float(charge), int(units), pd.Timestamp(dos).strftime("%Y%m%d"))
        for c, lid, cpt, charge, units, dos in zip(
            billed["claim_id"], billed["line_id"], billed["cpt_code"], billed["charge_amount"],
            billed["units"], billed["date_of_service"], strict=True,
        )
    }  # fmt: skip
    sent, kinds = [], set()
    for name, text in texts.items():
        for view in reader.claims(text):
            kinds.add("837I" if view.institutional else "837P")
            for loop in view.lines:
                refs = [s for s in loop if s[:2] == ["REF", "6R"]]
                assert len(refs) == 1, (name, view.id, loop[0])
                service = loop[
                    1
                ]  # SV1*HC:code:mods*charge*UN*units / SV2*rev*HC:...*charge*UN*units
                at = 2 if service[0] == "SV2" else 1
                dtp = next(s for s in loop if s[:2] == ["DTP", "472"])
                key = (view.id, refs[0][2])
                got = (
                    service[at].split(":")[1],
                    float(service[at + 1]),
                    int(service[at + 3]),
                    dtp[3],
                )
                assert expected.get(key) == got, (name, key)
                sent.append(key)
    assert kinds == {"837P", "837I"}
    assert len(sent) == len(set(sent)) == len(expected)
