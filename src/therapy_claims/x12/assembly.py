"""Transaction-set assembly: which claims go in which set, the HL hierarchy, and the claims'
texts joined column by column into the sets' bodies.

Per transaction set (up to ``MAX_CLAIMS_PER_ST`` claims of the claim order, written or not),
one 2000A billing provider HL per clinic (whenever the clinic changes), one 2000B subscriber
HL per claim, and a 2000C patient HL when the patient is not the subscriber; HL numbers
restart in each set. The envelope around the bodies is :mod:`therapy_claims.x12.envelope`'s.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from therapy_claims.x12 import constants, i837, p837
from therapy_claims.x12.batch import ClaimColumns, LineColumns
from therapy_claims.x12.joiner import (
    Texts,
    join,
    join_columns,
    join_runs,
    large,
    objects,
    segment_counts,
)
from therapy_claims.x12.loops import billing_provider, subscriber_items, written, written_lines


class Sets:
    """The transaction sets to write, in order: each set's claims and segments (from its
    first 2000A HL to its last claim's end), and the claims' texts as pyarrow string columns
    (file order) that joined make the sets' bodies."""

    def __init__(self, claims: list[np.ndarray], segments: list[int], columns: list[pa.Array]):
        self.claims, self.segments, self.columns = claims, segments, columns

    def text(self, before: list[str], after: list[str]) -> str:
        """The sets, each between its ``before`` and ``after`` text, as one string (joined
        by pyarrow, which copies the text once, and once more into Python)."""
        sizes = np.array([len(c) for c in self.claims])
        ends = np.cumsum(sizes)
        head = np.zeros(int(ends[-1]), dtype=np.int64)
        head[ends - sizes] = np.arange(1, len(sizes) + 1)
        tail = np.zeros(int(ends[-1]), dtype=np.int64)
        tail[ends - 1] = np.arange(1, len(sizes) + 1)
        claims = join([
            large(["", *before]).take(head), *self.columns, large(["", *after]).take(tail)
        ])  # fmt: skip
        self.columns = []  # joined: let them go before the text is copied twice more
        return join_runs(claims, ends[-1:]).to_pylist()[0]


def transaction_sets(lines: LineColumns, claims: ClaimColumns, bad: np.ndarray) -> Sets | None:
    """The transaction sets that have a claim to write (None if none has): the claims that
    are not ``bad``, in claim order. A set's body runs from its first 2000A HL to its last
    claim's last segment."""
    ok = ~bad[claims.claim_order]
    w = claims.claim_order[ok]  # the claims written, in file order
    if not len(w):
        return None
    n_w, n_claims = len(w), len(lines.ids)
    at = np.arange(n_w)
    st = np.flatnonzero(ok) // constants.claims_per_set()
    new_set = np.r_[True, st[1:] != st[:-1]]
    rank = claims.clinic_rank[w]
    header = new_set | np.r_[True, rank[1:] != rank[:-1]]
    dep = claims.dependent[w]
    step = header.astype(np.int64) + 1 + dep
    before = np.cumsum(step) - step
    hl = 1 + before - before[np.maximum.accumulate(np.where(new_set, at, 0))]
    hl_sub = hl + header
    parent = hl[np.maximum.accumulate(np.where(header, at, 0))]
    n_num = int(hl_sub.max()) + 2
    num = Texts(np.zeros(1, dtype=np.int64), objects(map(str, range(n_num)), n_num))

    entries = claims.clinic_entries
    blocks = [billing_provider(e) if isinstance(e, dict) else "" for e in entries]
    heads = [f"HL*{hl[j]}**20*1~\n{blocks[rank[j]]}" for j in np.flatnonzero(header)]
    hdr_code = np.zeros(n_w, dtype=np.int64)
    hdr_code[header] = np.arange(1, len(heads) + 1)
    hdr = written(n_claims, w, hdr_code, np.array(["", *heads], dtype=object))
    common = [
        hdr, "HL*", written(n_claims, w, hl_sub, num), "*", written(n_claims, w, parent, num)
    ]  # fmt: skip
    dependant_hl = [
        "HL*", written(n_claims, w, hl_sub + 1, num), "*", written(n_claims, w, hl_sub, num)
    ]  # fmt: skip
    self_items, dep_items = subscriber_items(claims, common, dependant_hl)
    form = i837 if lines.institutional else p837
    rows = written_lines(lines, w)
    claim_items = form.claim_items(lines, claims, w, rows)
    self_items += claim_items
    dep_items += claim_items

    # each claim's text up to its first LX, for the self and the dependant ones apart
    at_self, at_dep = np.flatnonzero(~dep), np.flatnonzero(dep)
    position = np.empty(n_w, dtype=np.int64)
    position[np.r_[at_self, at_dep]] = at
    claim_heads = pa.concat_arrays([
        join_columns(self_items, w[at_self]), join_columns(dep_items, w[at_dep])
    ]).take(position)  # fmt: skip
    claim_lines = join_runs(form.line_texts(lines, claims, rows), lines.sizes[w])
    set_at = np.flatnonzero(new_set)
    set_end = np.r_[set_at[1:], n_w]
    segments = segment_counts(claim_heads, set_end - set_at)
    segments += segment_counts(claim_lines, set_end - set_at)
    sets = [w[a:b] for a, b in zip(set_at, set_end, strict=True)]
    return Sets(sets, segments.tolist(), [claim_heads, claim_lines])
