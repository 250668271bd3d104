"""The claim-file order's fast path (ranks packed into one integer) against its oracle: Arrow's
stable sort on the order's columns, missing values last."""

from __future__ import annotations

import random

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from therapy_claims.stages import claim_files


def _keys(rng: random.Random, n: int) -> pa.Table:
    def text(values):
        return pa.array([rng.choice(values) for _ in range(n)], pa.string())

    days = pa.array([rng.choice([None, 20000, 20001, 19999]) for _ in range(n)], pa.int32())
    return pa.table(
        {
            "receiver_id": text(["MCR01", "BCBS02", None]),
            "claim_type": text(["professional", "institutional", None]),
            "submitter_id": text(["S1", "S2", ""]),
            "claim_id": text(["TC1", "TC2", "TC10", "TC3-1", "TC3-2", None]),
            "date_of_service": days.cast(pa.date32()),
            # repeated and missing line ids: ties keep their input order
            "line_id": text(["a", "b", "L10", "L2", None]),
        }
    )


@pytest.mark.parametrize("seed", range(20))
def test_sort_order_is_arrows_stable_sort(seed):
    rng = random.Random(seed)
    keys = _keys(rng, rng.randint(0, 400))
    oracle = pc.sort_indices(
        keys, sort_keys=[(k, "ascending", "at_end") for k in claim_files.CLAIM_FILE_ORDER]
    )
    assert claim_files._sort_order(keys).equals(oracle)


def test_sort_order_of_chunked_columns():
    keys = _keys(random.Random(7), 300)
    chunked = pa.concat_tables([keys.slice(0, 100), keys.slice(100)])
    assert chunked.column("claim_id").num_chunks == 2
    assert claim_files._sort_order(chunked).equals(claim_files._sort_order(keys))
