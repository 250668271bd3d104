"""Great Expectations (GX Core 1.x, pandas) checks on the night's raw rows.

The suites live in the GX file project ``expectations/`` (``gx_project``: its expectations
store, ``expectations/expectations/<suite>.json``, one validation definition per suite and the
nightly checkpoint); the build copies the project into the package. Every expectation carries
``meta.rule_code``, the catalogue code a failing row becomes. ``run_suites`` runs each suite's
validation definition on the frame, writes one results JSON per suite and the night's Data Docs
into the night's validation folder, adds the results to the project's validation results store
and Data Docs site (``<out>/gx/``), and returns findings + a small summary.

How it runs (and why):

- GX is imported inside functions only: Airflow parses DAG files that import this package, and
  ``import great_expectations`` takes seconds. ``gx_compat.start`` runs first: it checks the
  pinned GX release and turns GX's usage statistics off.
- The project's file context per run, its validation results store and Data Docs site under
  the ``gx_store`` folder given (``<out>/gx``). The checkpoint's validation definitions are run
  one by one, each on its own columns (below), not through ``checkpoint.run`` (one frame for
  all); Data Docs are rendered once per run, for tonight's results only, and the night's copy
  is made from those pages (``gx_project.build_docs``).
- Every expectation first runs with ``SUMMARY``. A failing expectation whose failing rows all
  fit in SUMMARY's ``partial_unexpected_index_list`` (20) is done; the others are run again
  with ``COMPLETE`` (and ``exclude_unexpected_values``) to get every failing row. The re-run
  validates a Batch directly (``Batch.validate``), not through a ValidationDefinition: a
  ValidationDefinition stores its result, and GX serialises a COMPLETE result (every failing
  row) element by element in Python. So the store holds the SUMMARY results; the failing
  line_ids are in the night's ``<suite>.json``. Failing rows are GX's index labels of a fresh RangeIndex,
  i.e. row positions, so a duplicated or missing line_id never smears a finding onto its twin
  (GX's ``unexpected_index_column_names`` would also look every failing row up one by one in
  Python).
- GX is given, per run, only the columns its expectations evaluate (their column kwargs and
  row_condition columns): GX's pandas engine filters the whole frame (every column) two or
  three times per expectation, so every column handed over costs per expectation. Columns
  that only a ``meta.message`` shows stay out; messages are built from the original typed
  rows. The COMPLETE re-run is given only
  the failing expectations' columns.
- Nullable integer columns (``Int64``) are handed to GX as float64: GX 1.24's
  ``column_values.between`` is vectorised only for numpy int/float and otherwise calls a Python
  function per row. Text columns are handed over as pandas Categoricals: taking rows of a text
  column copies every string, taking rows of a Categorical copies only its integer codes
  (docs/performance.md has the measurements). Values and NA-ness are unchanged. The SUMMARY pass skips
  GX's ``unexpected_index_query``.
- Regex checks use ``expect_column_values_to_(not_)match_regex_per_value``
  (``gx_expectations``): GX's own regex expectations, evaluated once per distinct value of the
  Categorical instead of once per row (the built-ins first copy every row of a Categorical
  into a new string array). The regexes are written without lookaround, so that pandas runs
  them with pyarrow's RE2 rather than Python ``re`` value by value; the modifier patterns are
  spelled out in full for that (tests/test_gx_rules.py shows how they are built and proves
  them equal to the lookaround forms they replaced).
- Messages are built from the original typed rows, vectorised, never per row in Python.
- GX does not fingerprint the batch frames (``gx_compat.no_batch_fingerprint``): hashing them
  took as long as several suites. The manifest records each input file's SHA-256, which
  identifies the night's data.
"""

from __future__ import annotations

import importlib
import json
import re
import tempfile
from collections.abc import Callable
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from therapy_claims import findings, gx_compat, gx_project, storage
from therapy_claims.catalogue import CATALOGUE
from therapy_claims.layout import PHI_COLUMNS

SUITES: tuple[str, ...] = (
    "extract_schema",
    "time_consistency",
    "region_consistency",
    "modifier_consistency",
)

ENV_EXPECTATIONS = gx_project.ENV_PROJECT
CUSTOM_EXPECTATIONS_MODULE = "therapy_claims.gx_expectations"
ID_COLUMN = "line_id"
DOCS_DIR = gx_project.DOCS_DIR

# the nightly checkpoint's result format (expectations/checkpoints/nightly.json)
SUMMARY_FORMAT = {
    "result_format": "SUMMARY",
    "exclude_unexpected_values": True,
    "return_unexpected_index_query": False,
}

PER_VALUE_SUFFIX = "_per_value"  # gx_expectations.PER_VALUE_SUFFIX (no GX import here)

_COLUMN_KWARGS = ("column", "column_A", "column_B")
_LIST_KWARGS = ("column_list",)


class SuiteError(RuntimeError):
    """A suite cannot be loaded as written (missing file, unknown expectation type, bad meta)."""


# --------------------------------------------------------------------------- loading suites


def expectations_dir() -> Path:
    """The GX project folder (``expectations/``, holding ``great_expectations.yml``; the suites
    are in its ``expectations/`` store): ``gx_project.project_dir``, its errors as
    ``SuiteError``."""
    try:
        return gx_project.project_dir()
    except gx_project.ProjectError as exc:
        raise SuiteError(str(exc)) from exc


def _import_custom_expectations() -> None:
    # GX registers a custom expectation class when it is defined; a suite naming an
    # unregistered type loads with that expectation silently dropped.
    try:
        importlib.import_module(CUSTOM_EXPECTATIONS_MODULE)
    except Exception as exc:  # ImportError, or an error while defining the classes
        raise SuiteError(
            f"cannot import the custom GX expectations ({CUSTOM_EXPECTATIONS_MODULE}): {exc!r}; "
            "suites naming them would load empty and pass vacuously"
        ) from exc


def load_suite(name: str):
    """Load ``expectations/<name>.json`` as a GX ``ExpectationSuite``.

    Imports the custom expectations first. Raises ``SuiteError`` if the file is missing, if GX
    kept fewer expectations than the JSON lists (unknown type or bad kwargs: GX only logs
    those), if the suite is empty, or if an expectation lacks a known ``meta.rule_code``."""
    gx_compat.start()
    _import_custom_expectations()
    import great_expectations as gx

    path = expectations_dir() / gx_project.SUITES_DIR / f"{name}.json"
    if not path.is_file():
        raise SuiteError(f"GX suite {name!r}: {path} not found")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise SuiteError(f"GX suite {name!r}: {path} is not valid JSON: {exc}") from exc
    if data.get("name") != name:
        raise SuiteError(f"GX suite {name!r}: {path} names the suite {data.get('name')!r}")
    listed = list(data.get("expectations") or [])
    suite = gx.ExpectationSuite(**data)
    loaded = len(suite.expectations)
    if loaded == 0 or loaded < len(listed):
        kept = [e.expectation_type for e in suite.expectations]
        lost = [e.get("type") for e in listed]
        for t in kept:
            if t in lost:
                lost.remove(t)
        raise SuiteError(
            f"GX suite {name!r} ({path}): {len(listed)} expectations listed, {loaded} loaded; "
            f"not loaded: {lost or 'none listed'} (unknown expectation type or invalid kwargs; "
            f"is {CUSTOM_EXPECTATIONS_MODULE} defining it?)"
        )
    for exp in suite.expectations:
        code = (exp.meta or {}).get("rule_code")
        if code not in CATALOGUE:
            raise SuiteError(
                f"GX suite {name!r}: {exp.expectation_type} {_kwargs(exp)} has meta.rule_code "
                f"{code!r}, not a catalogue code"
            )
    return suite


def needed_columns(suites: tuple[str, ...] | list[str] = SUITES) -> list[str]:
    """The columns ``run_suites`` reads: the suites' columns, the columns their findings show
    (``start_time`` for ``start_minute``) and the columns a finding carries."""
    cols = [ID_COLUMN, *findings.FINDING_SOURCE_COLUMNS]
    for name in suites:
        for c in _suite_columns(load_suite(name)):
            cols.append(c)
            if c.endswith("_minute"):
                cols.append(c[: -len("_minute")] + "_time")
    return list(dict.fromkeys(cols))


# --------------------------------------------------------------------------- running


def run_suites(
    df: pd.DataFrame,
    validation_dir: str,
    run_date: str,
    suites: tuple[str, ...] | list[str] = SUITES,
    *,
    after_converting: Callable[[], object] | None = None,
    gx_store: str | None = None,
    run_name: str | None = None,
) -> tuple[pd.DataFrame, dict]:
    """Validate ``df`` (the night's typed raw rows) with every suite, through the GX project's
    validation definitions (``gx_project``).

    ``after_converting`` is called once every column GX reads has been converted (see the
    module notes): from then on ``df`` is read only for the rows of findings.

    Writes ``<validation_dir>/<suite>.json`` (SUMMARY-level results plus the failing line_ids of
    each failing expectation) and the night's Data Docs, ``<validation_dir>/data_docs/``.
    ``gx_store`` (a local folder, ``<out>/gx`` for a night) is where the project's validation
    results store and Data Docs site are: tonight's results are added to them under the GX run
    name ``run_name`` (default ``run_date=<run_date>``); without it they go to a temporary
    folder that is removed. Returns ``(findings, summary)``: one finding per (failing row,
    expectation) with the expectation's ``meta.rule_code``, and
    ``{suite: {success, evaluated, failed_expectations, failing_rows}}``.
    """
    gx_compat.start()
    loaded = {name: load_suite(name) for name in suites}  # fail before any work

    out_dir = storage.local_path(validation_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    frame = df.reset_index(drop=True)
    if ID_COLUMN not in frame.columns:
        raise ValueError(f"GX checks need a {ID_COLUMN} column")

    with ExitStack() as stack:
        store = gx_store or stack.enter_context(tempfile.TemporaryDirectory(prefix="tc-gx-store-"))
        ctx = gx_project.context(store)
        definitions = {name: _definition(ctx, name, suite) for name, suite in loaded.items()}
        converted: dict[str, pd.Series] = {}
        columns = {
            name: _gx_columns(frame, suite, name, converted) for name, suite in loaded.items()
        }
        if after_converting is not None:
            after_converting()
        run_id = _run_id(run_name or f"run_date={run_date}")
        with _writing(store):  # GX stores each result as it validates
            found, summary, results, errors = _validate_all(
                definitions, frame, columns, converted, run_id
            )
        for name, (result, failing) in results.items():
            _write_results(out_dir / f"{name}.json", name, run_date, result, failing, frame)
        with _writing(store):  # the site's pages, then the night's copy of them
            keys = _stored_keys(ctx, results, run_id)
            gx_project.build_docs(ctx, store, keys, out_dir / DOCS_DIR)
    if errors:  # a check that could not run must not pass as "no findings"
        raise SuiteError("GX could not evaluate: " + "; ".join(errors) + f" (results in {out_dir})")
    return findings.concat(found), summary


@contextmanager
def _writing(folder: str):
    """GX writes its stores and Data Docs with its own file code: a disk that is full or
    read-only there is an infrastructure failure like any other write (one line naming the
    file, else the folder), not an internal error."""
    try:
        yield
    except storage.StorageError:
        raise
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise storage.StorageError("write", str(exc.filename or folder), reason) from exc


def _definition(ctx, name: str, suite):
    """The project's validation definition ``name``, checked to run the suite ``load_suite``
    checked (same expectations: the store's copy is the same file)."""
    try:
        vd = ctx.validation_definitions.get(name)
    except Exception as exc:  # GX raises its own DataContextError kinds
        raise SuiteError(f"GX project has no validation definition {name!r}: {exc}") from exc
    if len(vd.suite.expectations) != len(suite.expectations):
        raise SuiteError(
            f"GX validation definition {name!r} runs {len(vd.suite.expectations)} expectations, "
            f"the suite file lists {len(suite.expectations)}"
        )
    return vd


def _run_id(run_name: str):
    from datetime import UTC, datetime

    from great_expectations.core.run_identifier import RunIdentifier

    return RunIdentifier(run_name=run_name, run_time=datetime.now(UTC))


def _validate_all(definitions: dict, frame, columns, converted, run_id):
    """Run each validation definition on its own columns (SUMMARY, stored in the project's
    validation results store), then re-run what failed beyond SUMMARY's list (COMPLETE, not
    stored). Returns (findings frames, summary, {suite: (result, failing)}, errors)."""
    all_findings: list[pd.DataFrame] = []
    summary: dict[str, dict[str, Any]] = {}
    results: dict[str, tuple[Any, list]] = {}
    errors: list[str] = []
    with gx_compat.no_batch_fingerprint():
        for name, vd in definitions.items():
            # counts only: the results JSON and Data Docs must not carry patients' values (PHI);
            # the failing rows are named by line_id in the exception report instead
            result = vd.run(
                batch_parameters={"dataframe": _frame_of(columns[name], frame.index, converted)},
                result_format=SUMMARY_FORMAT,
                run_id=run_id,
            )
            raised = {
                r.expectation_config.id: msg
                for r in result.results
                if (msg := _exception_message(r))
            }
            errors += [
                f"{name}: {r.expectation_config.type} {_kwargs(r.expectation_config)}: {raised[i]}"
                for r in result.results
                if (i := r.expectation_config.id) in raised
            ]
            failing = _failing_rows(
                vd.batch_definition, name, result, frame.index, converted, set(raised)
            )
            all_findings += [
                _findings(name, exp_result, frame, rows) for exp_result, rows in failing
            ]
            positions = [rows for _, rows in failing]
            failing_positions = np.unique(np.concatenate(positions)) if positions else []
            stats = result.statistics
            summary[name] = {
                "success": bool(result.success),
                "evaluated": int(stats.get("evaluated_expectations", 0)),
                "failed_expectations": int(stats.get("unsuccessful_expectations", 0)),
                "failing_rows": len(failing_positions),
            }
            results[name] = (result, failing)
    return all_findings, summary, results, errors


def _stored_keys(ctx, results: dict[str, tuple[Any, list]], run_id) -> dict:
    """``{ValidationResultIdentifier: result}`` of tonight's ``results``: the keys the
    validation definitions stored them under (suite, run name, run time, batch id), read back
    from the store's folder of this run (not the whole store, which grows every night)."""
    from great_expectations.data_context.types.resource_identifiers import (
        ValidationResultIdentifier,
    )

    backend = ctx.validation_results_store.store_backend
    run = run_id.to_tuple()
    out = {}
    for name, (result, _) in results.items():
        for t in backend.list_keys(prefix=(*name.split("."), run[0])):
            key = ValidationResultIdentifier.from_tuple(t)
            if key.run_id.to_tuple() == run:
                out[key] = result
    return out


def _exception_message(exp_result) -> str | None:
    """GX's exception_info is either one dict or a dict of them keyed by metric id."""
    info = exp_result.exception_info or {}
    entries = [info] if "raised_exception" in info else list(info.values())
    for entry in entries:
        if isinstance(entry, dict) and entry.get("raised_exception"):
            return str(entry.get("exception_message") or "exception")
    return None


def _condition_columns(node: Any) -> list[str]:
    """Column names a serialised row_condition refers to (``{"column": {"name": ...}}``)."""
    out: list[str] = []
    if isinstance(node, dict):
        col = node.get("column")
        if isinstance(col, dict) and isinstance(col.get("name"), str):
            out.append(col["name"])
        for v in node.values():
            out += _condition_columns(v)
    elif isinstance(node, list):
        for v in node:
            out += _condition_columns(v)
    return out


def _template_columns(template: str | None) -> list[str]:
    return re.findall(r"\{(\w+)\}", template or "")


def _checked_columns(configs) -> list[str]:
    """The columns GX evaluates for the expectation configurations ``configs``: their column
    kwargs and the columns of their row_conditions."""
    cols: list[str] = []
    for config in configs:
        kw = config.kwargs
        cols.extend(kw[k] for k in _COLUMN_KWARGS if kw.get(k))
        for k in _LIST_KWARGS:
            cols.extend(kw.get(k) or [])
        condition = config.to_json_dict().get("kwargs", {}).get("row_condition")
        cols.extend(_condition_columns(condition))
    return list(dict.fromkeys(cols))


def _suite_columns(suite) -> list[str]:
    """Every column a suite names: the checked columns and those its messages show."""
    configs = [exp.configuration for exp in suite.expectations]
    cols = _checked_columns(configs)
    for config in configs:
        cols.extend(_template_columns((config.meta or {}).get("message")))
    return list(dict.fromkeys(cols))


def _gx_columns(
    frame: pd.DataFrame, suite, suite_name: str, converted: dict[str, pd.Series]
) -> list[str]:
    """The columns GX is given for ``suite`` (those its expectations evaluate), converted into
    ``converted`` (see the module notes) unless an earlier suite did. Raises if the frame lacks
    a column the suite names, messages included."""
    missing = [c for c in _suite_columns(suite) if c not in frame.columns]
    if missing:
        raise ValueError(f"GX suite {suite_name!r} names columns not in the frame: {missing}")
    columns = _checked_columns([exp.configuration for exp in suite.expectations])
    for c in columns:
        if c not in converted:
            converted[c] = _gx_column(frame[c])
    return columns


def _frame_of(columns: list[str], index: pd.Index, converted: dict[str, pd.Series]) -> pd.DataFrame:
    """A batch frame for GX: the converted ``columns`` on the frame's fresh RangeIndex."""
    return pd.DataFrame({c: converted[c] for c in columns}, index=index)


def _gx_column(s: pd.Series) -> pd.Series:
    if pd.api.types.is_integer_dtype(s.dtype) and isinstance(
        s.dtype, pd.api.extensions.ExtensionDtype
    ):
        return s.astype("float64")  # NA -> NaN; exact for |x| < 2**53
    if pd.api.types.is_string_dtype(s.dtype) and not isinstance(s.dtype, pd.CategoricalDtype):
        return _categorical(s)
    return s


def _categorical(s: pd.Series) -> pd.Series:
    """The same text values as a pandas Categorical, dictionary-encoded by pyarrow.

    GX's pandas engine filters the whole batch frame (every column of the suite) once or twice
    per expectation; taking rows of a text column copies every string, taking rows of a
    Categorical copies only its integer codes. Values and NA-ness are unchanged."""
    import pyarrow.compute as pc

    text = storage.text_array(s)
    if s.name == ID_COLUMN and text.null_count == 0:
        # line_ids are distinct (ingest quarantines repeats): each value its own category,
        # in row order as Arrow's encoding would give, without hashing them into a dictionary
        # first (checking they are distinct hashes them once, not twice)
        cats = pd.Index(text.to_numpy(zero_copy_only=False), dtype=object, copy=False)
        if cats.is_unique:
            values = pd.Categorical.from_codes(
                np.arange(len(cats)), dtype=pd.CategoricalDtype(cats), validate=False
            )
            return pd.Series(values, index=s.index, name=s.name)
    enc = pc.dictionary_encode(text)
    codes = enc.indices.fill_null(-1).to_numpy(zero_copy_only=False)
    cats = pd.Index(enc.dictionary.to_numpy(zero_copy_only=False), dtype=object, copy=False)
    # Arrow's codes index its dictionary by construction: no second pass to check them
    values = pd.Categorical.from_codes(codes, dtype=pd.CategoricalDtype(cats), validate=False)
    return pd.Series(values, index=s.index, name=s.name)


def _failing_rows(
    batch_definition, name, result, index: pd.Index, converted: dict[str, pd.Series], skip: set
) -> list[tuple[Any, np.ndarray]]:
    """For each failing expectation, in suite order: (its SUMMARY result, numpy array of the
    failing row positions).

    An expectation with no more failing rows than SUMMARY lists (its
    ``partial_unexpected_index_list``, up to 20) needs nothing more. The others are re-run,
    with COMPLETE. Expectations that read the same columns share a batch of only those columns
    (``converted``, with the frame's fresh RangeIndex ``index``): GX filters the whole batch
    frame two or three times per expectation, so a narrow batch is cheap however many rows
    fail. Each batch is validated straight on the Batch, so GX does not store (serialise) the
    COMPLETE result. GX names the failing rows by index label, i.e. by position."""
    import great_expectations as gx

    failed = [r for r in result.results if not r.success and r.expectation_config.id not in skip]
    positions: dict[int, np.ndarray] = {}
    by_columns: dict[tuple[str, ...], list[int]] = {}
    for i, r in enumerate(failed):
        partial = r.result.get("partial_unexpected_index_list")
        if partial is not None and len(partial) == r.result.get("unexpected_count"):
            positions[i] = _positions(partial)  # SUMMARY already listed every failing row
            continue
        cols = tuple(_checked_columns([r.expectation_config]))
        by_columns.setdefault(cols, []).append(i)
    for cols, members in by_columns.items():
        sub_suite = gx.ExpectationSuite(
            name=f"{name}__failing",
            expectations=[_config_without_batch_id(failed[i].expectation_config) for i in members],
        )
        batch = batch_definition.get_batch(
            batch_parameters={"dataframe": _frame_of(list(cols), index, converted)}
        )
        complete = batch.validate(
            sub_suite,
            result_format={
                "result_format": "COMPLETE",
                "return_unexpected_index_query": False,
                "exclude_unexpected_values": True,
            },
        )
        for i, complete_result in zip(members, complete.results, strict=True):
            if msg := _exception_message(complete_result):
                raise SuiteError(
                    f"GX suite {name!r}: {complete_result.expectation_config.type} failed to "
                    f"evaluate with COMPLETE: {msg}"
                )
            positions[i] = _positions(complete_result.result.get("unexpected_index_list"))
    return [(r, positions[i]) for i, r in enumerate(failed)]


def _config_without_batch_id(config) -> dict:
    d = config.to_json_dict()
    d.get("kwargs", {}).pop("batch_id", None)
    d.pop("id", None)
    return d


def _positions(index_list) -> np.ndarray:
    """Sorted unique row positions from GX's ``unexpected_index_list`` of a COMPLETE result
    without index columns: the failing rows' index labels (a RangeIndex: positions)."""
    if not index_list:
        return np.array([], dtype="int64")
    return np.unique(np.asarray(index_list, dtype="int64"))


# --------------------------------------------------------------------------- findings


def _kwargs(exp) -> dict:
    kw = dict(exp.configuration.kwargs if hasattr(exp, "configuration") else exp.kwargs)
    kw.pop("batch_id", None)
    return kw


def _text(rows: pd.DataFrame, col: str) -> pd.Series:
    """A column's values as a finding's message shows them; a PHI column's (``layout.
    PHI_COLUMNS``: a ZIP, a date of birth...) as its length only, since the findings go to
    the analysts' exceptions layer (the raw layer's row has the value)."""
    s = rows[col]
    if col in PHI_COLUMNS:
        length = s.astype("string").str.len().astype("string")
        return ("a value of " + length + " characters (not shown: PHI)").fillna("<missing>")
    if pd.api.types.is_datetime64_any_dtype(s.dtype):
        s = s.dt.strftime("%Y-%m-%d")
    return s.astype("string").fillna("<missing>")


def _display(rows: pd.DataFrame, col: str) -> tuple[str, pd.Series]:
    """``start_minute`` is shown as ``start_time`` (HH:MM) when the frame has it."""
    if col.endswith("_minute") and (alt := col[: -len("_minute")] + "_time") in rows.columns:
        return alt, _text(rows, alt)
    return col, _text(rows, col)


def _fmt(v: Any) -> str:
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v)


def _message(etype: str, kw: dict, rows: pd.DataFrame) -> pd.Series | str:
    # a *_per_value expectation (gx_expectations) is its built-in namesake, evaluated once per
    # distinct value: same check, same message
    etype = etype.removesuffix(PER_VALUE_SUFFIX)
    col = kw.get("column")
    if etype == "expect_column_values_to_not_be_null":
        return f"required column {col} is empty"
    if etype == "expect_column_values_to_be_in_set":
        allowed = ", ".join(map(str, kw.get("value_set") or []))
        return f"{col} '" + _text(rows, col) + f"' is not one of {allowed}"
    if etype == "expect_column_values_to_match_regex":
        return f"{col} '" + _text(rows, col) + f"' does not match {kw.get('regex')}"
    if etype == "expect_column_value_lengths_to_be_between":
        lengths = rows[col].astype("string").str.len().astype("string").fillna("?")
        lo, hi = kw.get("min_value"), kw.get("max_value")
        return (
            f"{col} '"
            + _text(rows, col)
            + "' has length "
            + lengths
            + f", allowed {_fmt(lo) if lo is not None else 0}-{_fmt(hi) if hi is not None else 'any'}"
        )
    if etype == "expect_column_values_to_be_unique":
        return f"{col} '" + _text(rows, col) + "' occurs more than once in the night"
    if etype == "expect_column_values_to_be_between":
        lo, hi = kw.get("min_value"), kw.get("max_value")
        values = pd.to_numeric(rows[col], errors="coerce")
        below = (values < lo).fillna(False) if lo is not None else False
        bound = pd.Series(
            f"above the maximum {_fmt(hi)}" if hi is not None else "out of range", index=rows.index
        )
        if lo is not None:
            bound = bound.mask(below, f"below the minimum {_fmt(lo)}")
        return f"{col} " + _text(rows, col) + " is " + bound
    if etype == "expect_column_pair_values_a_to_be_greater_than_b":
        (a, av), (b, bv) = _display(rows, kw["column_A"]), _display(rows, kw["column_B"])
        verb = "before" if kw.get("or_equal") else "after"
        return f"{a} " + av + f" is not {verb} {b} " + bv
    if etype == "expect_multicolumn_value_to_be_at_most_span":
        v, s, e = kw["column_list"][:3]
        span = (pd.to_numeric(rows[e]) - pd.to_numeric(rows[s])).astype("string").fillna("?")
        (sn, sv), (en, ev) = _display(rows, s), _display(rows, e)
        return (
            f"{v} " + _text(rows, v) + f" exceed {en} - {sn} = " + span + " (" + sv + "-" + ev + ")"
        )
    cols = [c for k in _COLUMN_KWARGS if (c := kw.get(k))] + list(kw.get("column_list") or [])
    msg = pd.Series(f"{etype} failed:", index=rows.index, dtype="string")
    for c in cols:
        msg = msg + f" {c}=" + _text(rows, c)
    return msg


def _findings(suite_name: str, exp_result, frame: pd.DataFrame, positions) -> pd.DataFrame:
    config = exp_result.expectation_config
    etype = config.type
    kw = _kwargs(config)
    code = (config.meta or {}).get("rule_code")
    if len(positions) == 0:
        return findings.empty()
    rows = frame[_finding_columns(config, frame)].iloc[positions]
    evidence = f"GX suite {suite_name}: {etype} {json.dumps(kw, sort_keys=True, default=str)}"
    template = (config.meta or {}).get("message")
    message = _templated(template, rows) if template else _message(etype, kw, rows)
    return findings.make(code, rows, message, evidence=evidence)


def _finding_columns(config, frame: pd.DataFrame) -> list[str]:
    """The columns a finding of ``config`` reads (only those are taken for the failing rows):
    what every finding carries, the checked columns, the columns its message shows and their
    HH:MM twins (``start_minute`` is shown as ``start_time``)."""
    cols = [
        *findings.FINDING_SOURCE_COLUMNS,
        *_checked_columns([config]),
        *_template_columns((config.meta or {}).get("message")),
    ]
    cols += [c[: -len("_minute")] + "_time" for c in cols if c.endswith("_minute")]
    return [c for c in dict.fromkeys(cols) if c in frame.columns]


def _templated(template: str, rows: pd.DataFrame) -> pd.Series:
    """``meta.message`` of an expectation, with ``{column}`` replaced by each row's value."""
    parts = re.split(r"\{(\w+)\}", template)
    out = pd.Series("", index=rows.index, dtype="string")
    for i, part in enumerate(parts):
        out = out + (part if i % 2 == 0 else _text(rows, part))
    return out


# --------------------------------------------------------------------------- results JSON


def _write_results(path: Path, name, run_date, result, failing, frame) -> None:
    doc = result.to_json_dict()
    doc.setdefault("meta", {})
    doc["meta"]["run_date"] = run_date
    ids_by_id = {
        exp_result.expectation_config.id: frame[ID_COLUMN].iloc[rows].astype("string").tolist()
        for exp_result, rows in failing
    }
    for entry in doc.get("results", []):
        cfg = entry.get("expectation_config") or {}
        if cfg.get("id") in ids_by_id:
            entry["failing_line_ids"] = ids_by_id[cfg["id"]]
            entry["rule_code"] = (cfg.get("meta") or {}).get("rule_code")
    data = json.dumps(doc, indent=2, sort_keys=True, default=str).encode("utf-8")
    storage.write_bytes(str(path), data)
