"""Custom Great Expectations (GX Core 1.x) expectations used by the suites in ``expectations/``.

GX registers an expectation class when the class is *defined*, so this module must be imported
before a suite JSON that names one of these types is loaded; otherwise GX logs an error and
returns the suite without that expectation (it then passes vacuously). ``gx_checks.load_suite``
imports this module first and refuses a suite that lost expectations.

Everything here is vectorised pandas: no per-row Python.
"""

from __future__ import annotations

import os
from typing import ClassVar, Literal

os.environ["GX_ANALYTICS_ENABLED"] = "false"  # before GX is imported

import pandas as pd  # noqa: E402
from great_expectations.execution_engine import PandasExecutionEngine  # noqa: E402
from great_expectations.expectations.expectation import MulticolumnMapExpectation  # noqa: E402
from great_expectations.expectations.metrics.map_metric_provider import (  # noqa: E402
    MulticolumnMapMetricProvider,
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
