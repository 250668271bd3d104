"""Claim files built from the columns score checked the claims with (``x12.prepared``, staged
by score: ``stages.checked``) are the bytes the 837 writer makes of the lines themselves.

Publish builds every claim file that way instead of cleaning and checking the same values a
second time. The nights here go through ingest and score (validate's suites are left out: they
would only hold more claims), checked a few claims at a time (several staged batches, so codes
and texts are numbered across batches), with supervisors, referrers and claims whose lines come
in another order than they are written in (with another clinician on the line written first,
so which line is first decides the claim's renderer)."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from test_oracle_837 import with_providers

from therapy_claims import generate, pipeline, reference, storage, x12
from therapy_claims.stages import checked, claim_files
from therapy_claims.stages import score as score_stage
from therapy_claims.stages.ingest import RAW
from therapy_claims.stages.score import SCORED
from therapy_claims.x12 import prepared

RD = dt.date(2026, 11, 27)
CREATED = dt.datetime(2026, 11, 27)


def reordered(extract: pd.DataFrame) -> pd.DataFrame:
    """Each encounter's lines in reverse order, and on every third encounter of several lines
    another clinician (another encounter's) on the line written first."""
    extract = extract.copy()
    enc = extract["encounter_id"]
    sizes = enc.map(enc.value_counts())
    firsts = extract.index[~enc.duplicated() & (sizes > 1)][::3]
    donor = extract.iloc[-1]
    for c in ("rendering_npi", "rendering_last_name", "rendering_first_name"):
        extract.loc[firsts, c] = donor[c]
    extract.loc[firsts, "rendering_credential"] = "PT"
    order = np.lexsort((-np.arange(len(extract)), pd.factorize(enc)[0]))
    return extract.iloc[order].reset_index(drop=True)


@pytest.fixture(scope="module", params=["as generated", "lines reordered"])
def night(request, tmp_path_factory):
    folder = tmp_path_factory.mktemp("prepared")
    extract = generate.generate(150, seed=11, run_date=RD, problem_rate=0.1)
    if request.param == "lines reordered":
        extract = reordered(extract)
    extract = with_providers(extract)
    landing = folder / "landing" / "night.csv"
    generate.write(extract, str(landing))
    cfg = pipeline.RunConfig(inputs=[str(landing.parent)], out=str(folder / "out"), run_date=RD)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(score_stage, "CHECK_CLAIMS", 25)  # several batches per claim type
        pipeline.ingest(cfg)
        pipeline.score(cfg)
    return request.param, cfg


def moved_claims(scored: pd.DataFrame) -> int:
    """Billed claims whose first line in the scored layer is not the one written first."""
    billed = scored[scored["status"] == "billed"].reset_index(drop=True)
    billed["at"] = np.arange(len(billed))
    first_row = billed.groupby("claim_id")["at"].min()
    written = billed.sort_values(["claim_id", "date_of_service", "line_id"], kind="mergesort")
    first_written = written.groupby("claim_id")["at"].first()
    return int((first_row != first_written.reindex(first_row.index)).sum())


def test_claim_files_from_the_checked_columns_are_the_bytes_of_the_lines(night):
    name, cfg = night
    ref = reference.load()
    scored = storage.read_table(cfg.staged(*SCORED))
    raw = storage.read_table(cfg.staged(*RAW))
    billed = storage.to_frame(scored, ["status"])["status"].eq("billed").to_numpy(bool)
    assert storage.read_json(cfg.staged(*checked.FOLDER, checked.INDEX))["batches"] >= 4
    moved = moved_claims(storage.to_frame(scored))
    assert (moved > 5) if name == "lines reordered" else moved == 0
    at_s, at_r, interchanges = claim_files.plan(scored, raw, billed, ref.clinics["submitter_id"])
    at_c = checked.rows_of(cfg, len(scored))[at_s]
    assert (at_c >= 0).all()  # every billed line was checked
    staged = checked.Night(cfg)
    built = set()
    for (receiver, claim_type, _), a, b in interchanges:
        institutional = claim_type == "institutional"
        lines = claim_files.lines_at(scored, raw, at_s[a:b], at_r[a:b], ref.clinics["submitter_id"])
        narrow = claim_files.build_lines(scored, raw, [at_s[a:b], at_r[a:b], at_c[a:b]])
        claim = pd.factorize(lines["claim_id"])[0]
        # the whole interchange, and files of a third of its claims each
        for claims in [np.unique(claim), *np.array_split(np.unique(claim), 3)]:
            rows = np.flatnonzero(np.isin(claim, claims))
            if not len(rows):
                continue
            got = build(narrow.iloc[rows], institutional, ref, staged)
            expected = build(lines.iloc[rows], institutional, ref)
            assert got[0] == expected[0], f"{receiver} {claim_type}: bytes differ"
            assert list(got[1].items()) == list(expected[1].items())  # placed, in order
            assert got[2] == expected[2] == {}  # score held every claim it cannot carry
            built.add(claim_type)
    assert built == {"professional", "institutional"}


def build(lines, institutional: bool, ref, staged=None) -> tuple[str, dict, dict]:
    placed: dict[str, str] = {}
    rejected: dict[str, str] = {}
    kw = {}
    if staged is not None:
        kw["checked"] = prepared.Checked(
            lines[["claim_id", "clinic_id", "payer_id"]],
            staged.take(lines["checked_row"].to_numpy()),
            staged.pools,
            institutional=institutional,
            clinics=ref.clinics,
            payers=ref.payers,
        )
    writer = x12.build_837i if institutional else x12.build_837p
    text = writer(
        lines,
        clinics=ref.clinics,
        payers=ref.payers,
        providers=ref.providers,
        receiver_id="CLEARHOUSE1",
        receiver_name="Sample Clearinghouse",
        interchange_control_number=PROVISIONAL,
        created=CREATED,
        rejected=rejected,
        placed=placed,
        **kw,
    )
    return text, placed, rejected


PROVISIONAL = 999_999_999


def test_a_claim_the_checks_found_unwritable_is_left_out_with_their_message():
    """A checked claim that cannot be written is left out (``rejected``) with the message its
    check gave, or the build raises it, as a build of the lines does."""
    from test_x12 import frame, line

    ref = reference.load()
    lines = frame(
        line(claim_id="PCN1", line_id="L1"),
        line(claim_id="PCN2", line_id="L2", patient_zip="1234"),
        line(claim_id="PCN3", line_id="L3"),
    )
    batch = x12.checks.Batch(lines, False, ref.clinics, ref.payers, ref.providers)
    exported = prepared.export(batch)
    part = prepared.Checked(
        lines[["claim_id", "clinic_id", "payer_id"]],
        prepared.Held(exported),
        prepared.Pools(exported.pools),
        institutional=False,
        clinics=ref.clinics,
        payers=ref.payers,
    )
    args = {
        "clinics": ref.clinics,
        "payers": ref.payers,
        "receiver_id": "CLEARHOUSE1",
        "receiver_name": "Sample Clearinghouse",
        "interchange_control_number": 17,
        "created": CREATED,
    }
    expected: dict[str, str] = {}
    text = x12.build_837p(lines, rejected=expected, **args)
    got: dict[str, str] = {}
    assert x12.build_837p(lines, checked=part, rejected=got, **args) == text
    assert got == expected and list(got) == ["PCN2"]
    with pytest.raises(ValueError, match="claim PCN2.*patient_zip"):
        x12.build_837p(lines, checked=part, **args)


def test_publish_without_the_checked_columns_stops(tmp_path):
    """A staging area without score's checked columns (score did not finish, or ran an older
    version) stops publish with one line naming the file, before anything is written."""
    from nights import write_night

    write_night(str(tmp_path / "landing"), encounters=20)
    cfg = pipeline.RunConfig(
        inputs=[str(tmp_path / "landing")], out=str(tmp_path / "out"), run_date=RD
    )
    pipeline.ingest(cfg)
    pipeline.score(cfg)
    storage.delete_tree(cfg.staged(*checked.FOLDER, checked.INDEX))
    with pytest.raises(pipeline.RunError, match="checked.json is missing: run the 'score' stage"):
        pipeline.publish(cfg)
    assert not list(tmp_path.rglob("*.x12"))


def test_lines_claims_and_texts_are_numbered_across_batches(tmp_path):
    """A batch's claims count after the claims of the batches before it, and its codes after
    their texts, per field; a line is found by its row in the scored lines."""
    cfg = pipeline.RunConfig(inputs=[], out=str(tmp_path), run_date=RD)
    writer = checked.Writer(cfg)
    for k, members in enumerate((["A", "B"], ["C"])):
        lines = {f: np.zeros(2, dtype=np.int32) for f in prepared.LINE_FIELDS}
        lines["claim"] = np.array([len(members) - 1, 0], dtype=np.int32)
        claims = {f: np.zeros(len(members), dtype=np.int32) for f in prepared.CLAIM_FIELDS}
        claims["member"] = np.arange(len(members), dtype=np.int32)
        pools = {f: pa.array([""], pa.large_string()) for f in prepared.TEXT_FIELDS}
        pools["member"] = pa.array(members, pa.large_string())
        writer.add(prepared.Exported(lines, claims, pools), np.array([2 * k + 1, 2 * k]))
    writer.close()
    night = checked.Night(cfg)
    rows = checked.rows_of(cfg, 5)
    assert rows.tolist() == [1, 0, 3, 2, -1]
    # scored lines 3, 0, 2, 1: rows 2, 1, 3, 0 (claims 2, 0, 2, 1)
    part = night.take(rows[[3, 0, 2, 1]])
    got = part.claims(("member",), np.arange(4))["member"]
    assert night.pools.objects("member")[got].tolist() == ["C", "A", "C", "B"]
