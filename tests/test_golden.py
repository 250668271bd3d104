"""The golden nights: every output a night publishes is the same as when the digests were
recorded, through the CLI and through the DAG's stage calls (see ``golden.py``)."""

from __future__ import annotations

import pytest
from golden import NIGHTS, digest, load, run_cli, run_dag_stages


@pytest.fixture(scope="module", params=sorted(NIGHTS))
def night(request, tmp_path_factory):
    root = tmp_path_factory.mktemp(f"golden-{request.param}")
    landing = root / "landing"
    NIGHTS[request.param](landing)
    return request.param, landing, root


def _differences(got: dict, want: dict) -> list[str]:
    out = []
    for k in sorted(set(got) | set(want)):
        if got.get(k) != want.get(k):
            out.append(f"{k}: got {str(got.get(k))[:300]} want {str(want.get(k))[:300]}")
    return out


def test_cli_night_is_golden(night):
    name, landing, root = night
    out = root / "cli"
    assert run_cli(str(landing), str(out)) in (0, 1)
    assert _differences(digest(str(out), str(landing)), load()[name]) == []


def test_dag_stage_calls_night_is_golden(night):
    name, landing, root = night
    out = root / "dag"
    run_dag_stages(str(landing), str(out))
    assert _differences(digest(str(out), str(landing)), load()[name]) == []


def test_golden_nights_cover_what_they_claim():
    """The small night holds every kind of problem it was made for; the large one is about
    100k lines; both bill claims in several files and hold some (a digest of nothing proves
    nothing)."""
    small, large = load()["small"], load()["large"]
    codes = set(small["manifest"]["exceptions_by_code"])
    for code in (
        "FILE_REJECTED",
        "ROW_INVALID",
        "DUPLICATE_LINE",
        "ENCOUNTER_INCOMPLETE",
        "UNKNOWN_PAYER",
        "UNKNOWN_CLINIC",
        "TIME_MISSING",
        "UNITS_CORRECTED",
        "THERAPY_MODIFIER_ADDED",
        "TECHNIQUE_MISSING",
        "CLAIM_DATA_INVALID",
        "NCCI_MODIFIER_MISSING",
        "PROVIDER_OVERLAP",
    ):
        assert code in codes, code
    assert any(f["claims"] for f in small["manifest"]["claim_files"])
    assert 90_000 <= large["manifest"]["rows_in"] <= 110_000
    for d in (small, large):
        assert d["manifest"]["balanced"]
        assert d["manifest"]["lines_billed"] > 0 and d["manifest"]["lines_held"] > 0
        assert len(d["claims"]) >= 2


def test_two_process_night_is_golden(night):
    """The small night with validate and half of publish in a second process (the CLI does
    this by itself only for large nights)."""
    from golden import RD

    from therapy_claims import pipeline

    name, landing, root = night
    out = root / "two"
    cfg = pipeline.RunConfig(inputs=[str(landing)], out=str(out), run_date=RD)
    pipeline.run(cfg, parallel=True)
    assert _differences(digest(str(out), str(landing)), load()[name]) == []
