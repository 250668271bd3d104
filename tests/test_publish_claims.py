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


def test_claim_keys_are_the_billed_claims_without_part_suffixes():
    scored = pa.table({"claim_id": ["TCA-1", "TCA-2", "TCB", "TCC", None, "TCD-10"]})
    billed = np.array([True, True, True, False, True, True])
    assert sorted(publish._claim_keys(scored, billed)["claim_key"]) == ["TCA", "TCB", "TCD"]


def test_the_same_claims_pass_in_any_order_and_with_parts():
    publish._same_claims(_keys("TCA", "TCB"), _keys("TCB", "TCA", "TCA"))


def test_a_night_that_bills_nothing_passes():
    publish._same_claims(_keys(), _keys())


@pytest.mark.parametrize(
    "reserved,sent",
    [(("TCA", "TCB"), ("TCA",)), (("TCA",), ("TCA", "TCB")), (("TCA", "TCB"), ("TCA", "TCC"))],
)
def test_other_claims_in_the_files_stop_the_publish(reserved, sent):
    with pytest.raises(RunError, match="reserved but"):
        publish._same_claims(_keys(*reserved), _keys(*sent))
