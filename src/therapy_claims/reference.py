"""Reference data: clinics, payers, CPT code properties, NCCI PTP pairs and MUEs.

Loaded from a folder (``--reference``), defaulting to the sample folder shipped in the package.
Every file is recorded with its sha256 and row count for the manifest. Unknown setting values,
numbers out of their range (``NUMBER_RANGES``) and dates that are not written with digits are a
start-up error naming file, row, column and value, never a silent default.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd

from therapy_claims import storage

DEFAULT_DIR = str(resources.files("therapy_claims") / "reference_data")

CLINIC_COLUMNS = (
    "clinic_id",
    "billing_name",
    "billing_npi",
    "tax_id",
    "taxonomy",
    "address",
    "city",
    "state",
    "zip",
    "claim_type",
    "type_of_bill",
    "submitter_id",
    "submitter_name",
    "contact_phone",
)
PAYER_COLUMNS = (
    "payer_id",
    "payer_name",
    "payer_class",
    "claim_filing_indicator",
    "receiver_id",
    "unit_method",
    "distinct_modifier",
    "max_timed_units_per_day",
    "requires_prior_auth",
    "requires_therapy_modifiers",
    # the payer's ID at the clearinghouse (NM109 of 2010BB, what claims are routed by), apart
    # from payer_id, the key the extracts use
    "clearinghouse_payer_id",
)
# cpt_codes.csv may also carry `source` (where each row's flags come from): documentation,
# optional and never read, so a folder without it loads as before
CPT_COLUMNS = ("code", "timed", "one_on_one", "always_therapy", "category")
NCCI_COLUMNS = ("column1", "column2", "effective_date", "deletion_date", "modifier_indicator")
MUE_COLUMNS = ("code", "mue_value", "mai", "effective_date")
MODIFIER_COLUMNS = ("code", "category")
CODE_EDIT_COLUMNS = ("payer_class", "code", "problem", "fix")
KX_COLUMNS = ("year", "pt_slp", "ot")
FILES = (
    "clinics.csv",
    "payers.csv",
    "cpt_codes.csv",
    "ncci_ptp.csv",
    "mue.csv",
    "modifiers.csv",
    "code_edits.csv",
    "kx_thresholds.csv",
    "fee_schedule.csv",  # optional: a folder without it has an empty fee schedule
    "providers.csv",  # optional: a folder without it has no provider directory
)

PAYER_CLASSES = ("medicare", "medicare_advantage", "medicaid", "commercial", "workers_comp", "auto")
UNIT_METHODS = ("cms", "per_code")
DISTINCT_MODIFIERS = ("x", "59")
# payer settings that may be left out of payers.csv (a folder from an earlier version): the
# column's default, or per payer class where the default depends on it
DISTINCT_MODIFIER_ON = ("column2", "either")
NONCOVERED_MODIFIERS = ("", "GY", "GA", "GZ")
EDIT_ACTIONS = ("hold", "warn")
OPTIONAL_PAYER_SETTINGS: dict[str, str] = {
    "distinct_modifier_on": "column2",
    "noncovered_modifier": "",
    "kx_action": "",  # empty: hold for Medicare, warn for other payer classes
    "cmt_at_action": "",  # as kx_action
    "timely_filing": "1 year",
    "assistants_may_render": "",  # empty: false for medicare and medicare_advantage, else true
    "requires_referring": "false",
    "claim_filing_indicator_institutional": "",  # empty: MA where the 837P's is MB, else it
}
# clinics.csv may carry point_of_origin (837I CL102, UB-04 FL15), default "1" (non-health-care
# facility point of origin: the patient comes from home or work)
POINTS_OF_ORIGIN = ("1", "2", "4", "5", "6", "8", "9", "D", "E", "F", "G")
DEFAULT_POINT_OF_ORIGIN = "1"
# providers.csv (optional): the clinicians the clinics bill under, by NPI
PROVIDER_COLUMNS = ("npi", "last_name", "first_name", "credential", "taxonomy")
TAXONOMY_RE = r"[0-9A-Z]{9}X"
PAYER_ID_RE = r"[A-Z0-9]{2,80}"
# payer columns no rule reads per line (the 837 writer and publish read them from the payers
# frame): not copied onto every line by ``enrich``
PAYER_NOT_PER_LINE = (
    "claim_filing_indicator",
    "claim_filing_indicator_institutional",
    "clearinghouse_payer_id",
    "receiver_name",
    "timely_filing",
)
TIMELY_FILING_UNITS = ("days", "months", "years")
CLAIM_TYPES = ("professional", "institutional")
BOOLEANS = {"true": True, "false": False, "1": True, "0": False, "yes": True, "no": False}

# The numbers of the reference files: (file, column) -> (lowest, highest, whole). A value out
# of its range is a start-up error, never a silent default: an MUE of 1e308 would never be
# exceeded, a negative one always, a KX threshold of 'inf' or 'nan' never reached.
# docs/extract-format.md gives each range and why.
NUMBER_RANGES: dict[tuple[str, str], tuple[int, int, bool]] = {
    # 96 = the 15-minute units in 24 hours
    ("payers.csv", "max_timed_units_per_day"): (1, 96, True),
    # CMS MUE values run from 0 to a few thousand (drugs and supplies)
    ("mue.csv", "mue_value"): (0, 99_999, True),
    # the therapy cap, the KX threshold's forerunner, began in 1999
    ("kx_thresholds.csv", "year"): (1999, 2100, True),
    # dollars; CMS's thresholds are a few thousand (2026: about 2,480)
    ("kx_thresholds.csv", "pt_slp"): (1, 100_000, False),
    ("kx_thresholds.csv", "ot"): (1, 100_000, False),
    # dollars per unit, in whole cents; a therapy unit is charged tens to a few hundred
    # dollars, so 10,000 a unit is a keying error (and 0 charges nothing: CHARGE_INVALID)
    ("fee_schedule.csv", "unit_charge"): (1, 10_000, False),
    # dollars per unit, in whole cents; 0 is a payer allowing nothing for the code
    ("fee_schedule.csv", "allowed_amount"): (0, 10_000, False),
}
# fee_schedule.csv: the key columns every row has (unit_charge, allowed_amount, effective_date
# and source are optional columns; a row gives unit_charge, allowed_amount or both)
FEE_SCHEDULE_COLUMNS = ("clinic_id", "payer_class", "code")


class ReferenceError(ValueError):
    """A reference file is missing, malformed or holds an unknown setting value."""


@dataclass
class Reference:
    directory: str
    clinics: pd.DataFrame
    payers: pd.DataFrame
    cpt: pd.DataFrame
    ncci: pd.DataFrame
    mue: pd.DataFrame
    modifiers: pd.DataFrame
    code_edits: pd.DataFrame
    kx: pd.DataFrame
    files: list[dict] = field(default_factory=list)  # path, sha256, rows (for the manifest)
    # per clinic, payer class and code: unit_charge, allowed_amount (dollars, NaN where not
    # given) and effective_date (NaT: always); empty when the folder has no fee_schedule.csv
    fee_schedule: pd.DataFrame = field(default_factory=lambda: _empty_fee_schedule())
    # providers.csv by npi (npi, last_name, first_name, credential, taxonomy, source); empty
    # when the folder has none
    providers: pd.DataFrame = field(default_factory=lambda: _empty_providers())

    def version(self, name: str) -> str:
        """Short version tag of one reference file, for a finding's evidence."""
        for f in self.files:
            if f["name"] == name:
                return f"{name}@{f['sha256'][:12]}"
        return name


# Header names of the CMS quarterly files (practitioner PTP and MUE tables), lower-cased, mapped
# to the documented CSV columns; matched by prefix because CMS headers carry explanations
# ("Deletion Date *=no data", "Modifier 0=not allowed 1=allowed 9=not applicable").
CMS_HEADER_ALIASES = {
    "ncci_ptp.csv": (
        ("column 1", "column1"),
        ("column 2", "column2"),
        ("effective date", "effective_date"),
        ("deletion date", "deletion_date"),
        ("modifier", "modifier_indicator"),
    ),
    "mue.csv": (
        ("hcpcs/cpt code", "code"),
        ("hcpcs", "code"),
        ("practitioner services mue", "mue_value"),
        ("outpatient hospital services mue", "mue_value"),
        ("dme supplier services mue", "mue_value"),
        ("mue adjudication indicator", "mai"),
        ("effective date", "effective_date"),
    ),
}


def _cms_columns(name: str, columns: list[str]) -> list[str]:
    aliases = CMS_HEADER_ALIASES.get(name, ())
    out = []
    for c in columns:
        low = c.strip().lower()
        out.append(next((canon for prefix, canon in aliases if low.startswith(prefix)), c.strip()))
    return out


def _read(directory: str, name: str, required: tuple[str, ...], files: list[dict]) -> pd.DataFrame:
    """One reference CSV. The NCCI/MUE tables may also be CMS's quarterly layout: a preamble of
    notice lines before the header is skipped, its headers are mapped to the documented names,
    and extra columns are ignored."""
    path = storage.join(directory, name)
    try:
        data = storage.read_bytes(path)
    except FileNotFoundError as exc:
        raise ReferenceError(f"reference file {path} not found") from exc
    from io import BytesIO

    skip = 0
    if name in CMS_HEADER_ALIASES:
        head = data.decode("utf-8-sig", errors="replace").splitlines()[:50]
        first_alias = {"ncci_ptp.csv": ("column1", "column 1"), "mue.csv": ("code", "hcpcs")}[name]
        for i, line in enumerate(head):
            if line.strip().lower().startswith(first_alias) or line.strip().lower().startswith(
                tuple('"' + a for a in first_alias)
            ):
                skip = i
                break
    df = pd.read_csv(
        BytesIO(data), dtype=str, keep_default_na=False, encoding="utf-8-sig", skiprows=skip
    )
    df.columns = _cms_columns(name, [str(c) for c in df.columns])
    if name == "mue.csv" and "mai" in df.columns:
        df["mai"] = df["mai"].str.strip().str[:1]  # CMS: "3 Date of Service Edit: Clinical"
    if name == "mue.csv" and "effective_date" not in df.columns and "code" in df.columns:
        raise ReferenceError(
            f"{path}: no effective_date column; CMS MUE files carry none, so add one holding the "
            "first day of the quarter the file belongs to (YYYYMMDD or YYYY-MM-DD)"
        )
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise ReferenceError(f"{path}: missing column(s) {', '.join(missing)}")
    for c in df.columns:
        df[c] = df[c].astype(str).str.strip()
    df.attrs["first_row"] = skip + 2  # the file's row number of the first record (header: 1)
    files.append(
        {"name": name, "path": path, "sha256": hashlib.sha256(data).hexdigest(), "rows": len(df)}
    )
    return df


def _first_bad(df: pd.DataFrame, bad: pd.Series) -> tuple[int, int]:
    """The position of the first ``bad`` row and its row number in the file (the header is
    row 1; a CMS file's notice lines before the header count too)."""
    i = int(bad.to_numpy().nonzero()[0][0])
    return i, i + df.attrs.get("first_row", 2)


def _check_values(df: pd.DataFrame, path: str, column: str, allowed, *, allow_empty=False):
    vals = df[column]
    bad = ~vals.isin(list(allowed))
    if allow_empty:
        bad &= vals != ""
    if bad.any():
        i, row = _first_bad(df, bad)
        raise ReferenceError(
            f"{path} row {row} column {column}: unknown value {vals.iloc[i]!r} "
            f"(allowed: {', '.join(map(str, allowed))})"
        )


def _bool(df: pd.DataFrame, path: str, column: str) -> pd.Series:
    low = df[column].str.lower()
    _check_values(df.assign(**{column: low}), path, column, BOOLEANS)
    return low.map(BOOLEANS).astype(bool)


def _dates(df: pd.DataFrame, path: str, column: str, *, allow_empty: bool) -> pd.Series:
    raw = df[column].replace({"*": ""})
    # pandas reads 'today' and 'now' as the wall clock's date: a date is written with digits
    raw = raw.where(raw.str.contains("[0-9]") | (raw == ""), "not a date")
    # documented CSV layout is YYYY-MM-DD; CMS quarterly files use YYYYMMDD
    iso = pd.to_datetime(raw, format="%Y-%m-%d", errors="coerce")
    compact = pd.to_datetime(raw, format="%Y%m%d", errors="coerce")
    out = iso.fillna(compact)
    bad = out.isna() & (raw != "") if allow_empty else out.isna()
    if bad.any():
        i, row = _first_bad(df, bad)
        value = df[column].iloc[i]
        raise ReferenceError(f"{path} row {row} column {column}: not a date: {value!r}")
    return out.dt.date


def _figure(n: int) -> str:
    return f"{n:,}" if n >= 10_000 else str(n)  # 99,999 but 2100 (a year)


def _numbers(df: pd.DataFrame, path: str, name: str, column: str, *, allow_empty=False):
    """The column's values as float64 (NaN where empty and ``allow_empty``), each checked
    against its ``NUMBER_RANGES`` entry: a finite number within the range, whole if it must
    be. The first value that is not stops the run, naming file, row, column and value."""
    low, high, whole = NUMBER_RANGES[(name, column)]
    raw = df[column]
    num = pd.to_numeric(raw.where(raw != ""), errors="coerce").astype("float64")
    ok = np.isfinite(num) & (num >= low) & (num <= high)
    if whole:
        ok &= num == num.round()
    if allow_empty:
        ok |= raw == ""
    if not ok.all():
        i, row = _first_bad(df, ~ok)
        kind = "a whole number" if whole else "an amount"
        raise ReferenceError(
            f"{path} row {row} column {column}: {raw.iloc[i]!r} is not {kind} "
            f"from {_figure(low)} to {_figure(high)}"
        )
    return num


def _payer_settings(payers: pd.DataFrame, path: str) -> None:
    """The optional payer settings (``OPTIONAL_PAYER_SETTINGS``), checked, with their defaults
    where a column or a cell is empty. ``timely_filing`` becomes ``timely_filing_count`` and
    ``timely_filing_unit`` (days, months or years: calendar arithmetic)."""
    for column, default in OPTIONAL_PAYER_SETTINGS.items():
        if column not in payers.columns:
            payers[column] = default
        payers[column] = payers[column].replace("", default)
    payers["noncovered_modifier"] = payers["noncovered_modifier"].str.upper()
    _check_values(payers, path, "distinct_modifier_on", DISTINCT_MODIFIER_ON)
    _check_values(payers, path, "noncovered_modifier", NONCOVERED_MODIFIERS)
    medicare = payers["payer_class"].eq("medicare").map({True: "hold", False: "warn"})
    for column in ("kx_action", "cmt_at_action"):
        payers[column] = payers[column].str.lower().where(payers[column] != "", medicare)
        _check_values(payers, path, column, EDIT_ACTIONS)
    parts = payers["timely_filing"].str.lower().str.extract(r"^\s*(\d{1,4})\s+([a-z]+?)s?\s*$")
    unit = parts[1].fillna("") + "s"
    bad = parts[0].isna() | ~unit.isin(TIMELY_FILING_UNITS) | (pd.to_numeric(parts[0]) == 0)
    if bad.any():
        i, row = _first_bad(payers, bad)
        raise ReferenceError(
            f"{path} row {row} column timely_filing: {payers['timely_filing'].iloc[i]!r} is not "
            "a whole number of days, months or years (e.g. '90 days', '1 year')"
        )
    payers["timely_filing_count"] = pd.to_numeric(parts[0]).astype(int)
    payers["timely_filing_unit"] = unit
    medicare = payers["payer_class"].isin(["medicare", "medicare_advantage"])
    render = payers["assistants_may_render"].str.lower()
    payers["assistants_may_render"] = render.where(
        render != "", np.where(medicare, "false", "true")
    )
    payers["assistants_may_render"] = _bool(payers, path, "assistants_may_render")
    payers["requires_referring"] = payers["requires_referring"].str.lower()
    payers["requires_referring"] = _bool(payers, path, "requires_referring")
    inst = payers["claim_filing_indicator_institutional"].str.upper()
    own = payers["claim_filing_indicator"].str.upper()
    payers["claim_filing_indicator_institutional"] = inst.where(
        inst != "", own.where(own != "MB", "MA")
    )
    sbr09 = ~payers["claim_filing_indicator_institutional"].str.fullmatch(r"[A-Z0-9]{2}")
    if sbr09.any():
        i, row = _first_bad(payers, sbr09)
        raise ReferenceError(
            f"{path} row {row} column claim_filing_indicator_institutional: "
            f"{payers['claim_filing_indicator_institutional'].iloc[i]!r} is not a 2-character "
            "SBR09 code (e.g. MA)"
        )
    ids = payers["clearinghouse_payer_id"].str.upper()
    bad = ~ids.str.fullmatch(PAYER_ID_RE)
    if bad.any():
        i, row = _first_bad(payers, bad)
        raise ReferenceError(
            f"{path} row {row} column clearinghouse_payer_id: payer "
            f"{payers['payer_id'].iloc[i]!r} has "
            + (
                "no clearinghouse payer ID (the ID the clearinghouse routes its claims by, "
                "NM109 of the payer loop)"
                if ids.iloc[i] == ""
                else f"{payers['clearinghouse_payer_id'].iloc[i]!r}, not 2-80 of A-Z 0-9"
            )
        )
    payers["clearinghouse_payer_id"] = ids


def load(directory: str | None = None) -> Reference:
    directory = str(directory or DEFAULT_DIR)
    files: list[dict] = []
    clinics = _read(directory, "clinics.csv", CLINIC_COLUMNS, files)
    payers = _read(directory, "payers.csv", PAYER_COLUMNS, files)
    cpt = _read(directory, "cpt_codes.csv", CPT_COLUMNS, files)
    ncci = _read(directory, "ncci_ptp.csv", NCCI_COLUMNS, files)
    mue = _read(directory, "mue.csv", MUE_COLUMNS, files)
    modifiers = _read(directory, "modifiers.csv", MODIFIER_COLUMNS, files)
    code_edits = _read(directory, "code_edits.csv", CODE_EDIT_COLUMNS, files)
    kx = _read(directory, "kx_thresholds.csv", KX_COLUMNS, files)

    p = storage.join(directory, "clinics.csv")
    _check_values(clinics, p, "claim_type", CLAIM_TYPES)
    if "point_of_origin" not in clinics.columns:
        clinics["point_of_origin"] = ""
    origin = clinics["point_of_origin"].str.upper()
    clinics["point_of_origin"] = origin.where(origin != "", DEFAULT_POINT_OF_ORIGIN)
    _check_values(clinics, p, "point_of_origin", POINTS_OF_ORIGIN)
    if clinics["clinic_id"].duplicated().any():
        raise ReferenceError(
            f"{p}: duplicate clinic_id {clinics['clinic_id'][clinics['clinic_id'].duplicated()].iloc[0]!r}"
        )

    p = storage.join(directory, "payers.csv")
    _check_values(payers, p, "payer_class", PAYER_CLASSES)
    _check_values(payers, p, "unit_method", UNIT_METHODS)
    _check_values(payers, p, "distinct_modifier", DISTINCT_MODIFIERS)
    payers["requires_prior_auth"] = _bool(payers, p, "requires_prior_auth")
    payers["requires_therapy_modifiers"] = _bool(payers, p, "requires_therapy_modifiers")
    _numbers(payers, p, "payers.csv", "max_timed_units_per_day", allow_empty=True)
    cap = pd.to_numeric(payers["max_timed_units_per_day"].replace("", None), errors="coerce")
    payers["max_timed_units_per_day"] = cap.astype("Int64")
    if "receiver_name" not in payers.columns:
        payers["receiver_name"] = payers["receiver_id"]
    _payer_settings(payers, p)
    if payers["payer_id"].duplicated().any():
        raise ReferenceError(f"{p}: duplicate payer_id")

    p = storage.join(directory, "cpt_codes.csv")
    for c in ("timed", "one_on_one", "always_therapy"):
        cpt[c] = _bool(cpt, p, c)

    p = storage.join(directory, "ncci_ptp.csv")
    ncci["effective_date"] = _dates(ncci, p, "effective_date", allow_empty=False)
    ncci["deletion_date"] = _dates(ncci, p, "deletion_date", allow_empty=True)
    _check_values(ncci, p, "modifier_indicator", ("0", "1", "9"))

    p = storage.join(directory, "mue.csv")
    mue["effective_date"] = _dates(mue, p, "effective_date", allow_empty=False)
    for f in files:  # the quarter a CMS edit file belongs to: its latest effective date
        table = {"ncci_ptp.csv": ncci, "mue.csv": mue}.get(f["name"])
        if table is not None and len(table):
            latest = max(table["effective_date"])
            f["effective_quarter"] = f"{latest.year}Q{(latest.month - 1) // 3 + 1}"
    _check_values(mue, p, "mai", ("1", "2", "3"))
    _numbers(mue, p, "mue.csv", "mue_value")
    mue["mue_value"] = pd.to_numeric(mue["mue_value"], errors="raise").astype(int)

    p = storage.join(directory, "code_edits.csv")
    _check_values(code_edits, p, "payer_class", PAYER_CLASSES)
    p = storage.join(directory, "kx_thresholds.csv")
    kx = _kx(kx, p)
    fees = _fee_schedule(directory, files, set(clinics["clinic_id"]))
    providers = _providers(directory, files)

    for table in (clinics, payers, cpt, ncci, mue, modifiers, code_edits, kx, fees, providers):
        table.attrs.clear()  # the row numbers were for the messages above only
    return Reference(
        directory=directory,
        clinics=clinics.set_index("clinic_id", drop=False),
        payers=payers.set_index("payer_id", drop=False),
        cpt=cpt.set_index("code", drop=False),
        ncci=ncci,
        mue=mue,
        modifiers=modifiers.set_index("code", drop=False),
        code_edits=code_edits,
        kx=kx,
        files=files,
        fee_schedule=fees,
        providers=providers.set_index("npi", drop=False),
    )


def _kx(kx: pd.DataFrame, path: str) -> pd.DataFrame:
    """The KX thresholds by year: each number in its range, each year once (the rule looks
    a year's threshold up by year)."""
    year = _numbers(kx, path, "kx_thresholds.csv", "year").astype(int)
    for c in ("pt_slp", "ot"):
        _numbers(kx, path, "kx_thresholds.csv", c)
    again = year.duplicated()
    if again.any():
        _, row = _first_bad(kx, again)
        raise ReferenceError(
            f"{path} row {row} column year: {kx['year'][again].iloc[0]!r} is listed twice"
        )
    return kx.assign(
        year=year, pt_slp=kx["pt_slp"].astype(float), ot=kx["ot"].astype(float)
    ).set_index("year", drop=False)


def _empty_fee_schedule() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "clinic_id": pd.Series(dtype=object),
            "payer_class": pd.Series(dtype=object),
            "code": pd.Series(dtype=object),
            "unit_charge": pd.Series(dtype="float64"),
            "allowed_amount": pd.Series(dtype="float64"),
            "effective_date": pd.Series(dtype="datetime64[s]"),
            "source": pd.Series(dtype=object),
        }
    )


def _empty_providers() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype=object) for c in (*PROVIDER_COLUMNS, "source")})


def _providers(directory: str, files: list[dict]) -> pd.DataFrame:
    """``providers.csv`` if the folder has one (else empty): each NPI once, with a valid check
    digit, a known credential, a 10-character NUCC taxonomy and a name."""
    from therapy_claims import npi as npi_check
    from therapy_claims.layout import CREDENTIALS

    name = "providers.csv"
    path = storage.join(directory, name)
    if not storage.exists(path):
        return _empty_providers()
    df = _read(directory, name, PROVIDER_COLUMNS, files)
    if "source" not in df.columns:
        df["source"] = ""
    df["credential"] = df["credential"].str.upper()
    df["taxonomy"] = df["taxonomy"].str.upper()
    checks = (
        ("npi", ~df["npi"].map(npi_check.is_valid).astype(bool), "is not a valid NPI"),
        ("npi", df["npi"].duplicated(), "is listed twice"),
        ("last_name", df["last_name"] == "", "is empty"),
        ("first_name", df["first_name"] == "", "is empty"),
        (
            "credential",
            ~df["credential"].isin(CREDENTIALS),
            f"is not one of {', '.join(CREDENTIALS)}",
        ),
        (
            "taxonomy",
            ~df["taxonomy"].str.fullmatch(TAXONOMY_RE),
            "is not a 10-character NUCC taxonomy",
        ),
    )
    for column, bad, problem in checks:
        if bad.any():
            i, row = _first_bad(df, bad)
            raise ReferenceError(
                f"{path} row {row} column {column}: {df[column].iloc[i]!r} {problem}"
            )
    return df[[*PROVIDER_COLUMNS, "source"]].astype(object)


def _fee_schedule(directory: str, files: list[dict], clinics: set[str]) -> pd.DataFrame:
    """``fee_schedule.csv`` if the folder has one (else empty): per clinic, payer class and code
    the unit charge (what the charge of a line whose units were corrected follows) and the
    payer's allowed amount a unit (what the KX running total counts). Amounts are whole cents
    within ``NUMBER_RANGES``; a clinic must be in clinics.csv, a payer class known, each key
    listed once per effective date, and a row must give at least one amount."""
    name = "fee_schedule.csv"
    path = storage.join(directory, name)
    if not storage.exists(path):
        return _empty_fee_schedule()
    df = _read(directory, name, FEE_SCHEDULE_COLUMNS, files)
    for c in ("unit_charge", "allowed_amount", "effective_date", "source"):
        if c not in df.columns:
            df[c] = ""
    _check_values(df, path, "payer_class", PAYER_CLASSES)
    _check_values(df, path, "clinic_id", sorted(clinics))
    amounts = {}
    for c in ("unit_charge", "allowed_amount"):
        num = _numbers(df, path, name, c, allow_empty=True)
        fraction = (num * 100 - (num * 100).round()).abs() > 1e-6
        if fraction.any():
            i, row = _first_bad(df, fraction)
            raise ReferenceError(
                f"{path} row {row} column {c}: {df[c].iloc[i]!r} is not whole cents"
            )
        amounts[c] = (num * 100).round() / 100
    neither = amounts["unit_charge"].isna() & amounts["allowed_amount"].isna()
    if neither.any():
        _, row = _first_bad(df, neither)
        raise ReferenceError(f"{path} row {row}: neither unit_charge nor allowed_amount is given")
    effective = pd.to_datetime(_dates(df, path, "effective_date", allow_empty=True))
    again = df[list(FEE_SCHEDULE_COLUMNS)].assign(e=effective).duplicated()
    if again.any():
        _, row = _first_bad(df, again)
        raise ReferenceError(
            f"{path} row {row}: clinic_id, payer_class and code are listed twice for one "
            "effective_date"
        )
    out = df[list(FEE_SCHEDULE_COLUMNS)].astype(object)
    return out.assign(
        unit_charge=amounts["unit_charge"].to_numpy(),
        allowed_amount=amounts["allowed_amount"].to_numpy(),
        effective_date=effective.astype("datetime64[s]").to_numpy(),
        source=df["source"].astype(object).to_numpy(),
    )


def copy_default(dest: str | Path) -> None:
    """Write the shipped sample reference folder to ``dest`` (for users to edit)."""
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    for name in (*FILES, "README.md"):
        (dest / name).write_bytes((Path(DEFAULT_DIR) / name).read_bytes())


# --------------------------------------------------------------------------- lines


def enrich(lines: pd.DataFrame, ref: Reference) -> pd.DataFrame:
    """Add the payer, clinic and code properties each line needs (in place; returns
    ``lines``), column by column (a join would copy the whole night's frame once per table),
    each looked up once per distinct key."""
    payer, clinic, cpt = (_Lookup(lines[c]) for c in ("payer_id", "clinic_id", "cpt_code"))
    for c in ref.payers.columns.drop(["payer_id", *PAYER_NOT_PER_LINE]):
        col = ref.payers[c]
        # unknown payers map to NA: keep a nullable dtype the rules can fillna on
        lines[c] = payer(col, lambda s: s.astype("boolean")) if col.dtype == bool else payer(col)
    for c in ("billing_npi", "claim_type"):
        lines[c] = clinic(ref.clinics[c])
    lines["category"] = cpt(ref.cpt["category"])
    for c in ("timed", "one_on_one", "always_therapy"):  # an unknown code is none of these
        lines[c] = cpt(ref.cpt[c], lambda s: s.astype("boolean").fillna(False).astype(bool))
    return lines


class _Lookup:
    """``keys.map(table)`` for several tables: the keys are factorised once and each table is
    looked up once per distinct key (the same values and dtype as ``map``)."""

    def __init__(self, keys: pd.Series):
        codes, uniques = pd.factorize(keys, use_na_sentinel=True)
        distinct = pd.Series(uniques, dtype=keys.dtype)
        if (codes < 0).any():  # a missing key maps to NA, as map does
            distinct = pd.concat([distinct, pd.Series([pd.NA], dtype=keys.dtype)])
            codes = np.where(codes < 0, len(distinct) - 1, codes)
        self.codes, self.distinct, self.keys = codes, distinct.reset_index(drop=True), keys

    def __call__(self, table: pd.Series, then: Callable | None = None) -> pd.Series:
        """The looked-up values, with ``then`` (an elementwise conversion) applied."""
        values = self.distinct.map(table)
        if then is not None:
            values = then(values)
        return values.take(self.codes).set_axis(self.keys.index).rename(self.keys.name)
