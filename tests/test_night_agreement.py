"""A generated mixed night: the exception report, scored lines, claim files and manifest all
agree with each other (every line accounted for once; held exactly when an error exists)."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pandas as pd
import pytest
from x12_validate import independent_checks, pyx12_validate

from therapy_claims import generate, pipeline

RD = date(2026, 11, 28)


@pytest.fixture(scope="module")
def night(tmp_path_factory):
    root = tmp_path_factory.mktemp("night")
    df = generate.generate(250, seed=11, run_date=RD, problem_rate=0.3)
    generate.write(df, str(root / "landing" / "night.csv"))
    cfg = pipeline.RunConfig(inputs=[str(root / "landing")], out=str(root / "out"), run_date=RD)
    m = pipeline.run(cfg)
    scored = pd.read_parquet(Path(cfg.final("scored")) / "scored.parquet")
    exc = pd.read_parquet(Path(cfg.final("exceptions")) / "exceptions.parquet")
    return df, cfg, m, scored, exc


def test_every_input_line_accounted_for_once(night):
    df, cfg, m, scored, exc = night
    assert m["rows_in"] == len(df) and m["balanced"]
    assert scored["line_id"].is_unique
    quarantined = m["rows_quarantined"]
    assert len(scored) + quarantined == len(df)
    # every input line_id is scored, or has a finding explaining why it is not
    explained = set(scored["line_id"]) | set(
        exc.loc[exc["code"].isin(["ROW_INVALID", "DUPLICATE_LINE", "DUPLICATE_CHARGE"]), "line_id"]
    )
    assert set(df["line_id"]) <= explained


def test_held_exactly_when_claim_has_an_error(night):
    _, _, _, scored, exc = night
    errors = exc[(exc["severity"] == "error") & exc["line_id"].notna()]
    claims_with_error = set(scored.loc[scored["line_id"].isin(errors["line_id"]), "claim_id"])
    held_claims = set(scored.loc[scored["status"] == "held", "claim_id"])
    assert held_claims == claims_with_error
    billed = scored[scored["status"] == "billed"]
    assert not set(billed["claim_id"]) & claims_with_error
    assert (billed["units"] > 0).all()
    # a line is not billed for having no units, or for a payer that does not cover it (it keeps
    # its units; the rest of its claim goes out)
    not_billed = scored[scored["status"] == "not_billed"]
    left_off = not_billed["exception_codes"].map(
        lambda codes: bool({"CODE_NOT_COVERED", "DC_SERVICE_NOT_COVERED"} & set(codes))
    )
    assert ((not_billed["units"] == 0) | left_off).all()
    assert left_off.any()  # the generated night has such lines


def test_exception_codes_on_lines_match_the_report(night):
    _, _, _, scored, exc = night
    from_report = exc[exc["line_id"].notna()].groupby("line_id")["code"].agg(sorted).to_dict()
    for line_id, codes in zip(scored["line_id"], scored["exception_codes"], strict=True):
        assert sorted(codes) == from_report.get(line_id, []), line_id


def test_claim_files_carry_exactly_the_billed_claims(night):
    _, cfg, m, scored, _ = night
    billed = scored[scored["status"] == "billed"]
    sent, total = set(), 0.0
    for f in sorted(Path(cfg.final("claims")).glob("*.x12")):
        ok, report = pyx12_validate(str(f))
        assert ok, report
        text = f.read_text(encoding="ascii")
        assert independent_checks(text) == []
        for seg in text.replace("\n", "").split("~"):
            el = seg.split("*")
            if el[0] == "CLM":
                sent.add(el[1])
                total += float(el[2])
    assert sent == set(billed["claim_id"])
    # the layer's money is decimal(12, 2): exact cents
    assert round(total, 2) == float(billed["charge_amount"].sum())
    assert m["lines_billed"] == len(billed) and m["claims_billed"] == billed["claim_id"].nunique()


def test_manifest_counts_match_layers(night):
    _, _, m, scored, exc = night
    counts = scored["status"].value_counts().to_dict()
    assert (m["lines_billed"], m["lines_held"], m["lines_not_billed"]) == (
        counts.get("billed", 0),
        counts.get("held", 0),
        counts.get("not_billed", 0),
    )
    assert m["exceptions_by_code"] == exc["code"].value_counts().to_dict()
    assert sum(m["exceptions_by_code"].values()) == len(exc)
    # a problem-rich night exercises many rules
    assert len(m["exceptions_by_code"]) >= 10
