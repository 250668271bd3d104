"""The payer's reasons mapped to our rule codes: which of our edits would have prevented a
rejection or denial.

A denial says why in the payer's words (835 CAS group and CARC, ``CO-97``; a 277CA's STC
codes). The team's question is "which of our edits should have caught this?", so the mapping
is reference data (``payer_reasons.csv``, beside the other reference files, replaceable with a
deployment's own ``--reference`` folder) and not code: one row per (kind, group, code, rule
code), a reason may map to several rule codes and most map to none (a deductible is not an
edit's business). Every ``rule_code`` must be a catalogue code, so a typo fails loudly at load.
"""

from __future__ import annotations

import csv
import io
import os
from dataclasses import dataclass

from therapy_claims import storage
from therapy_claims.catalogue import CATALOGUE
from therapy_claims.config import RunError
from therapy_claims.reference import DEFAULT_DIR

FILE_NAME = "payer_reasons.csv"
COLUMNS = ("kind", "group", "code", "rule_code", "meaning", "source")
KINDS = ("835", "277CA")


@dataclass(frozen=True)
class Mapping:
    """``rules[(kind, "GROUP-CODE")]`` -> our rule codes, in file order."""

    rules: dict[tuple[str, str], tuple[str, ...]]
    meanings: dict[tuple[str, str], str]

    def rule_codes(self, kind: str, reasons: list[str] | tuple[str, ...]) -> list[str]:
        """Our rule codes for a response's reasons (``"CO-97"``), distinct, in reason order."""
        found: dict[str, None] = {}
        for reason in reasons or ():
            found.update(dict.fromkeys(self.rules.get((kind, str(reason)), ())))
        return list(found)


def load(directory: str | None = None) -> Mapping:
    """The mapping in ``directory`` (a reference folder), else the shipped default. A folder
    without the file uses the default: older deployments' folders keep working."""
    path = os.path.join(str(directory), FILE_NAME) if directory else ""
    if not path or not storage.exists(path):
        path = os.path.join(DEFAULT_DIR, FILE_NAME)
    text = storage.read_bytes(path).decode("utf-8-sig")
    reader = csv.DictReader(io.StringIO(text))
    missing = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
    if missing:
        raise RunError(f"{path}: missing column(s) {', '.join(missing)}")
    rules: dict[tuple[str, str], dict[str, None]] = {}
    meanings: dict[tuple[str, str], str] = {}
    for row_number, row in enumerate(reader, start=2):
        kind, group, code, rule = (str(row[c] or "").strip() for c in COLUMNS[:4])
        if kind not in KINDS:
            raise RunError(
                f"{path} row {row_number}: column kind: {kind[:20]!r} is not 835 or 277CA"
            )
        if not code:
            raise RunError(f"{path} row {row_number}: column code is empty")
        if rule not in CATALOGUE:
            raise RunError(
                f"{path} row {row_number}: column rule_code: {rule[:40]!r} is not a rule code"
            )
        key = (kind, f"{group}-{code}" if group else code)
        rules.setdefault(key, {})[rule] = None
        meanings.setdefault(key, str(row["meaning"] or "").strip()[:200])
    return Mapping({k: tuple(v) for k, v in rules.items()}, meanings)
