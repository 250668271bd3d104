"""What comes back after our 837s leave: 999, 277CA and 835 files, read into Arrow tables.

* :func:`kind_of` tells a 999, 277CA, 835 (or one of our 837s) from anything else by its
  envelope, never by its name.
* :func:`validate` runs pyx12 on the file in-process; a file that fails is rejected whole,
  with a one-line reason that names positions and codes, never values (the files carry PHI).
* :func:`read` turns a response file into :class:`Responses`: per 999 transaction set, per
  277CA claim, per 835 claim and service line, each row with its lineage. It raises
  :class:`ResponseError` before returning anything when the file fails pyx12 or our own checks
  (capped lengths, amounts, dates, 835 balancing), so a caller never applies half a file.

This package only reads; applying the rows to the ledger is the caller's business.
"""

from __future__ import annotations

import pyarrow as pa

from therapy_claims.responses.acks import read_277ca, read_999
from therapy_claims.responses.check import MAX_BYTES, as_text, validate
from therapy_claims.responses.era import read_835
from therapy_claims.responses.fields import ResponseError
from therapy_claims.responses.kinds import RESPONSE_KINDS, kind_of
from therapy_claims.responses.tables import SCHEMAS, Responses, empty

__all__ = [
    "MAX_BYTES",
    "RESPONSE_KINDS",
    "SCHEMAS",
    "ResponseError",
    "Responses",
    "kind_of",
    "read",
    "validate",
]


def read(data: bytes | str, source: str, *, validated: bool = False) -> Responses:
    """The rows of one 999, 277CA or 835 file; ``source`` names it in the lineage columns.

    Runs :func:`validate` first unless the caller already did (``validated=True``). Raises
    ``ResponseError`` (message without file values) for a file that is not a response, fails
    pyx12 or our checks; nothing is returned for such a file."""
    try:
        text = as_text(data)
    except ValueError as exc:
        raise ResponseError(str(exc)) from None
    kind = kind_of(text)
    if kind not in RESPONSE_KINDS:
        raise ResponseError("not a 999, 277CA or 835 interchange")
    if not validated:
        ok, reason = validate(text)
        if not ok:
            raise ResponseError(reason)
    tables = {name: empty(name) for name in SCHEMAS}
    if kind == "999":
        tables["acknowledgments"] = _table("acknowledgments", read_999(text, source))
    elif kind == "277CA":
        tables["claim_statuses"] = _table("claim_statuses", read_277ca(text, source))
    else:
        claims, lines = read_835(text, source)
        tables["payments"] = _table("payments", claims)
        tables["payment_lines"] = _table("payment_lines", lines)
    return Responses(kind=kind, source_file=source, **tables)


def _table(name: str, rows: list[dict]) -> pa.Table:
    schema = SCHEMAS[name]
    return pa.Table.from_pylist([{f: r.get(f) for f in schema.names} for r in rows], schema)
