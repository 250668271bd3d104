"""Publish reserves the night's claims from score's billed lines before their files are built;
the claims the ledger layer then records must be exactly those (``publish._same_claims``)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from therapy_claims.config import RunError
from therapy_claims.stages import publish


def _keys(*keys: str) -> pd.DataFrame:
    return pd.DataFrame({"claim_key": pd.array(list(keys), dtype="string")})


def _sent(*keys: str, voids: tuple[str, ...] = ()) -> pd.DataFrame:
    """Ledger rows: the claims of tonight's files (frequency 1) and the voids (8)."""
    rows = _keys(*keys, *voids)
    rows["frequency_code"] = ["1"] * len(keys) + ["8"] * len(voids)
    return rows


NO_VOIDS = _keys()


def test_claim_keys_are_the_billed_claims_without_part_suffixes():
    scored = pa.table({"claim_id": ["TCA-1", "TCA-2", "TCB", "TCC", None, "TCD-10"]})
    billed = np.array([True, True, True, False, True, True])
    assert sorted(publish._claim_keys(scored, billed)["claim_key"]) == ["TCA", "TCB", "TCD"]


def test_the_same_claims_pass_in_any_order_and_with_parts():
    publish._same_claims(_keys("TCA", "TCB"), NO_VOIDS, _sent("TCB", "TCA", "TCA"), [])


def test_a_night_that_bills_nothing_passes():
    publish._same_claims(_keys(), NO_VOIDS, _sent(), [])


@pytest.mark.parametrize(
    "reserved,sent",
    [(("TCA", "TCB"), ("TCA",)), (("TCA",), ("TCA", "TCB")), (("TCA", "TCB"), ("TCA", "TCC"))],
)
def test_other_claims_in_the_files_stop_the_publish(reserved, sent):
    with pytest.raises(RunError, match="reserved but"):
        publish._same_claims(_keys(*reserved), NO_VOIDS, _sent(*sent), [])


def test_voids_of_claims_with_no_line_tonight_are_accounted_for_apart():
    """A void copied from an earlier file is no claim of tonight's lines: it must be in the
    ledger once with frequency 8 and counted in a void file, and no billed claim."""
    files = [{"voids": 0}, {"voids": 1}]
    publish._same_claims(_keys("TCA"), _keys("TCV"), _sent("TCA", voids=("TCV",)), files)
    wrong = [
        (_keys("TCA"), _sent("TCA"), files),  # the void is not in the ledger
        (_keys("TCA"), _sent("TCA", voids=("TCV",)), [{"voids": 0}]),  # nor in a void file
        (_keys("TCA", "TCV"), _sent("TCA", voids=("TCV",)), files),  # and billed tonight too
    ]
    for reserved, sent, in_files in wrong:
        with pytest.raises(RunError, match="void"):
            publish._same_claims(reserved, _keys("TCV"), sent, in_files)
    as_original = _sent("TCA", "TCV")  # in the ledger, but not as a void
    with pytest.raises(RunError, match="void"):
        publish._same_claims(_keys("TCA"), _keys("TCV"), as_original, files)
