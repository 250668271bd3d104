"""The payer-reason mapping: reference data, checked at load, read per reason."""

from __future__ import annotations

import pytest

from therapy_claims import payer_reasons
from therapy_claims.catalogue import CATALOGUE
from therapy_claims.config import RunError


def test_the_issue_s_examples_map_to_our_codes():
    mapping = payer_reasons.load()
    assert set(mapping.rule_codes("835", ["CO-97"])) >= {
        "NCCI_MODIFIER_MISSING",
        "NCCI_NOT_BYPASSABLE",
    }
    assert set(mapping.rule_codes("835", ["CO-236"])) == {
        "NCCI_MODIFIER_MISSING",
        "NCCI_NOT_BYPASSABLE",
    }
    assert mapping.rule_codes("835", ["CO-18"]) == ["ALREADY_BILLED"]
    assert mapping.rule_codes("835", ["CO-29"]) == ["DATE_INVALID"]


def test_reasons_without_an_edit_map_to_nothing_and_codes_are_distinct():
    mapping = payer_reasons.load()
    assert mapping.rule_codes("835", ["PR-1", "PR-2", "CO-45"]) == []
    assert mapping.rule_codes("835", ["CO-236", "CO-97"])[:2] == [
        "NCCI_MODIFIER_MISSING",
        "NCCI_NOT_BYPASSABLE",
    ]
    assert len(mapping.rule_codes("835", ["CO-97", "CO-97"])) == len(
        set(mapping.rule_codes("835", ["CO-97"]))
    )
    assert mapping.rule_codes("277CA", ["CO-97"]) == []  # kinds do not mix


def test_every_shipped_rule_code_is_a_catalogue_code():
    mapping = payer_reasons.load()
    codes = {c for rules in mapping.rules.values() for c in rules}
    assert codes and codes <= set(CATALOGUE)


def test_a_deployment_folder_replaces_the_default_and_a_typo_fails_naming_row_and_column(tmp_path):
    (tmp_path / payer_reasons.FILE_NAME).write_text(
        "kind,group,code,rule_code,meaning,source\n835,CO,97,AUTH_MISSING,x,y\n"
    )
    assert payer_reasons.load(str(tmp_path)).rule_codes("835", ["CO-97"]) == ["AUTH_MISSING"]
    (tmp_path / payer_reasons.FILE_NAME).write_text(
        "kind,group,code,rule_code,meaning,source\n835,CO,97,NCCI_TYPO,x,y\n"
    )
    with pytest.raises(RunError, match=r"row 2: column rule_code: 'NCCI_TYPO'"):
        payer_reasons.load(str(tmp_path))


def test_a_folder_without_the_file_uses_the_default(tmp_path):
    assert payer_reasons.load(str(tmp_path)).rule_codes("835", ["CO-18"]) == ["ALREADY_BILLED"]
