"""Custom Great Expectations (GX Core 1.x) expectations used by the suites in ``expectations/``.

GX registers an expectation class when the class is *defined*, so this module must be imported
before a suite JSON that names one of these types is loaded; otherwise GX logs an error and
returns the suite without that expectation (it then passes vacuously). ``gx_checks.load_suite``
imports this module first and refuses a suite that lost expectations.

Everything here is vectorised pandas: no per-row Python. GX is handed text columns as pandas
Categoricals (see ``gx_checks``); text work is done once per distinct value (``per_value``).

Importing this module imports GX; ``gx_checks`` calls ``gx_compat.start`` (pinned release,
usage statistics off) before it does.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar, Literal

import numpy as np
import pandas as pd

from therapy_claims import gx_compat

# the classes below subclass GX's metric providers from their internal modules: refuse any GX
# release other than the pinned one before touching them
gx_compat.check_version()

from great_expectations.execution_engine import PandasExecutionEngine  # noqa: E402
from great_expectations.expectations.core import (  # noqa: E402
    ExpectColumnValuesToMatchRegex,
    ExpectColumnValuesToNotMatchRegex,
)
from great_expectations.expectations.expectation import (  # noqa: E402
    ColumnPairMapExpectation,
    MulticolumnMapExpectation,
)
from great_expectations.expectations.metrics.map_metric_provider import (  # noqa: E402
    ColumnMapMetricProvider,
    ColumnPairMapMetricProvider,
    MulticolumnMapMetricProvider,
)
from great_expectations.expectations.metrics.map_metric_provider.column_condition_partial import (  # noqa: E402
    column_condition_partial,
)
from great_expectations.expectations.metrics.map_metric_provider.column_pair_condition_partial import (  # noqa: E402
    column_pair_condition_partial,
)
from great_expectations.expectations.metrics.map_metric_provider.multicolumn_condition_partial import (  # noqa: E402
    multicolumn_condition_partial,
)

_DOMAIN_KEYS = (
    "batch_id",
    "table",
    "column_list",
    "row_condition",
    "condition_parser",
    "ignore_row_if",
)


class MulticolumnFirstAtMostSpan(MulticolumnMapMetricProvider):
    """Row-wise ``value <= end - start`` for ``column_list = [value, start, end]``."""

    condition_metric_name = "multicolumn_values.first_at_most_span"
    condition_domain_keys = _DOMAIN_KEYS

    @multicolumn_condition_partial(engine=PandasExecutionEngine)
    def _pandas(cls, column_list: pd.DataFrame, **kwargs) -> pd.Series:
        value = pd.to_numeric(column_list.iloc[:, 0])
        start = pd.to_numeric(column_list.iloc[:, 1])
        end = pd.to_numeric(column_list.iloc[:, 2])
        # a window that is empty or backwards (end <= start) is a different finding, reported by
        # the end-after-start expectation; it is not counted twice here
        ok = (value <= (end - start)) | (end <= start)
        # Rows with a missing value are dropped by ignore_row_if before this runs; should one
        # slip through, missing is "not checkable", never a failure.
        return ok.fillna(True).astype(bool)


class ExpectMulticolumnValueToBeAtMostSpan(MulticolumnMapExpectation):
    """Expect ``column_list[0] <= column_list[2] - column_list[1]`` on every row whose window is
    not backwards (``end > start``; backwards windows are another expectation's finding).

    Used as ``column_list = ["minutes", "start_minute", "end_minute"]``: the charted minutes
    fit within the documented start/end window. Rows missing any of the three are skipped
    (``ignore_row_if="any_value_is_missing"``).
    """

    map_metric = "multicolumn_values.first_at_most_span"
    domain_keys: ClassVar[tuple[str, ...]] = _DOMAIN_KEYS
    success_keys = ("mostly",)
    ignore_row_if: Literal["all_values_are_missing", "any_value_is_missing", "never"] = (
        "any_value_is_missing"
    )
    description: str = "The first column is at most the third column minus the second"


CUSTOM_EXPECTATION_TYPES: tuple[str, ...] = ("expect_multicolumn_value_to_be_at_most_span",)


# --------------------------------------------------------------------------- CMT region count

SPINAL_REGIONS = ("cervical", "thoracic", "lumbar", "sacral", "pelvic")
# CMT code -> allowed number of spinal regions (CPT descriptors of 98940-98942)
CMT_REGION_RANGE = {"98940": (1, 2), "98941": (3, 4), "98942": (5, 5)}


def per_value(values: pd.Series, fn: Callable[[pd.Series], pd.Series]) -> pd.Series:
    """``fn(values)`` for an element-wise, vectorised ``fn``, evaluated once per distinct value
    when ``values`` is a Categorical and spread back to the rows through its codes: a 1M-row
    column with a few dozen distinct region lists costs a few dozen evaluations, and the text is
    never materialised per row. Other inputs are passed to ``fn`` as they are."""
    if not isinstance(values.dtype, pd.CategoricalDtype):
        return fn(values)
    codes = values.cat.codes.to_numpy()
    missing = codes < 0
    # one entry per category, then (if a row is missing) one for the missing value
    distinct = [*values.cat.categories, *([pd.NA] if missing.any() else [])]
    per_distinct = fn(pd.Series(distinct, dtype=object)).to_numpy()
    rows = np.where(missing, len(distinct) - 1, codes)
    return pd.Series(per_distinct[rows], index=values.index)


def spinal_region_count(regions: pd.Series) -> pd.Series:
    """Distinct spinal regions in a ``;``-joined region list (vectorised)."""
    s = regions.astype("string").fillna("")
    counts = pd.Series(0, index=s.index, dtype="int64")
    for region in SPINAL_REGIONS:
        counts += (
            s.str.contains(rf"(?:^|;){region}(?:;|$)", regex=True).fillna(False).astype("int64")
        )
    return counts


def _is_code(code: str) -> Callable[[pd.Series], pd.Series]:
    def fn(values: pd.Series) -> pd.Series:
        return (values.astype("string").fillna("") == code).fillna(False).astype(bool)

    return fn


class ColumnPairCmtRegionCount(ColumnPairMapMetricProvider):
    """``column_A`` a CPT code, ``column_B`` its body regions: a spinal CMT code names the
    number of spinal regions its descriptor says; other codes always pass."""

    condition_metric_name = "column_pair_values.cmt_region_count"
    condition_domain_keys = (
        "batch_id",
        "table",
        "column_A",
        "column_B",
        "row_condition",
        "condition_parser",
        "ignore_row_if",
    )

    @column_pair_condition_partial(engine=PandasExecutionEngine)
    def _pandas(cls, column_A: pd.Series, column_B: pd.Series, **kwargs) -> pd.Series:
        n = per_value(column_B, spinal_region_count)
        ok = pd.Series(True, index=column_A.index)
        for cmt, (low, high) in CMT_REGION_RANGE.items():
            is_code = per_value(column_A, _is_code(cmt))
            ok &= ~is_code | ((n >= low) & (n <= high))
        return ok.astype(bool)


class ExpectColumnPairCmtRegionCount(ColumnPairMapExpectation):
    """Expect 98940 to name 1-2, 98941 3-4 and 98942 5 spinal regions (CPT descriptors).

    Used as ``column_A="cpt_code", column_B="body_region"``. Lines without a region are left to
    the REGION_MISSING expectation (``ignore_row_if="either_value_is_missing"``)."""

    map_metric = "column_pair_values.cmt_region_count"
    domain_keys: ClassVar[tuple[str, ...]] = ColumnPairCmtRegionCount.condition_domain_keys
    success_keys = ("mostly",)
    ignore_row_if: Literal["both_values_are_missing", "either_value_is_missing", "neither"] = (
        "either_value_is_missing"
    )
    description: str = "A CMT code names the number of spinal regions its descriptor says"


CUSTOM_EXPECTATION_TYPES = (*CUSTOM_EXPECTATION_TYPES, "expect_column_pair_cmt_region_count")


# --------------------------------------------------------------------------- regex per value

PER_VALUE_SUFFIX = "_per_value"


def _contains(regex: str) -> Callable[[pd.Series], pd.Series]:
    # what GX's own column_values.match_regex does with each value
    def fn(values: pd.Series) -> pd.Series:
        return values.astype(str).str.contains(regex)

    return fn


class ColumnValuesMatchRegexPerValue(ColumnMapMetricProvider):
    """GX's ``column_values.match_regex`` (``column.astype(str).str.contains(regex)``), run once
    per distinct value (``per_value``). On the Categoricals GX is handed, the built-in first
    copies every row into a new string array (``astype(str)``), then runs the regex on every row,
    for columns of a few dozen distinct values (docs/performance.md)."""

    condition_metric_name = "column_values.match_regex_per_value"
    condition_value_keys = ("regex",)

    @column_condition_partial(engine=PandasExecutionEngine)
    def _pandas(cls, column: pd.Series, regex: str, **kwargs) -> pd.Series:
        return per_value(column, _contains(regex)).astype(bool)


class ColumnValuesNotMatchRegexPerValue(ColumnMapMetricProvider):
    """GX's ``column_values.not_match_regex``, run once per distinct value (see above)."""

    condition_metric_name = "column_values.not_match_regex_per_value"
    condition_value_keys = ("regex",)

    @column_condition_partial(engine=PandasExecutionEngine)
    def _pandas(cls, column: pd.Series, regex: str, **kwargs) -> pd.Series:
        return ~per_value(column, _contains(regex)).astype(bool)


class ExpectColumnValuesToMatchRegexPerValue(ExpectColumnValuesToMatchRegex):
    """``expect_column_values_to_match_regex`` (same kwargs, results and rendering), with the
    regex run once per distinct value of the column instead of once per row."""

    map_metric = "column_values.match_regex_per_value"


class ExpectColumnValuesToNotMatchRegexPerValue(ExpectColumnValuesToNotMatchRegex):
    """``expect_column_values_to_not_match_regex``, with the regex run once per distinct value."""

    map_metric = "column_values.not_match_regex_per_value"


CUSTOM_EXPECTATION_TYPES = (
    *CUSTOM_EXPECTATION_TYPES,
    "expect_column_values_to_match_regex_per_value",
    "expect_column_values_to_not_match_regex_per_value",
)
