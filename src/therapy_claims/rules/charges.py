"""Charge rules: the billed charge follows the billed units (the charge fixer), a claim whose
billed lines total $0, a unit charge far above the fee schedule; and the ``fee_schedule.csv``
lookup, which the KX rule also counts allowed amounts with.

A payer pays the lesser of the line's charge and its fee schedule, so a charge that does not
follow corrected units underpays (or overstates) the line, and a claim totalling $0 is rejected
by front ends (payer-edits.md, "Edits": charges). Amounts are worked in whole cents (int64),
so the line charges the 837 writer sends (SV102/SV203) and their sum (CLM02) agree to the cent.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from therapy_claims import findings
from therapy_claims.reference import Reference
from therapy_claims.rules.engine import (
    Night,
    code_on_date,
    isin,
    iso_date,
    message,
    rule,
    spread,
    take,
)

# CHARGE_ABOVE_SCHEDULE: a unit charge more than this many times fee_schedule.csv's unit_charge
# (a keying error such as an extra digit, more than any charge master's mark-up)
CHARGE_ABOVE_SCHEDULE_FACTOR = 3

# the line columns matched, in order, to fee_schedule.csv's clinic_id, payer_class and code
LINE_KEYS = ("clinic_id", "payer_class", "cpt_code")
SCHEDULE_KEYS = ("clinic_id", "payer_class", "code")
_EVIDENCE = "payer-edits.md, Edits: charges (payment is the lesser of charge and fee schedule)"

# effective dates as days since 1970 fit in [_LOW_DAY, _LOW_DAY + _SPAN): 1790 to 2507
_LOW_DAY, _SPAN = -(2**16), 2**18


# --------------------------------------------------------------------------- amounts


def cents(dollars) -> np.ndarray:
    """Dollars (float, NaN where missing) as whole cents, float64 (NaN kept): the extract and
    fee_schedule.csv hold whole cents, so this is exact."""
    return np.round(np.asarray(dollars, dtype="float64") * 100.0)


def half_up(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """``numerator / denominator`` rounded half up, in integers (both >= 0, denominator > 0):
    the charted charge in cents x billed units / charted units, to the cent."""
    n = np.asarray(numerator, dtype="int64")
    d = np.asarray(denominator, dtype="int64")
    return (2 * n + d) // (2 * d)


def money(amount_cents) -> pd.Series:
    """Whole cents as ``123.45`` text (the few reported lines only)."""
    c = pd.Series(np.asarray(amount_cents, dtype="int64"))
    return (c // 100).astype("string") + "." + (c % 100).astype("string").str.zfill(2)


# --------------------------------------------------------------------------- the fee schedule


def schedule_rows(
    schedule: pd.DataFrame,
    keys: list[tuple[np.ndarray, pd.Series]],
    dos: pd.Series | np.ndarray,
) -> np.ndarray:
    """Per line, the position in ``schedule`` (``Reference.fee_schedule``) of its row: the same
    clinic, payer class and code, the latest effective on or before the date of service (a row
    without an effective date is in effect from the start); -1 where none. ``keys``: per key
    column (``LINE_KEYS`` order) the lines' factorised codes (-1: missing) and the distinct
    values. Vectorised: one sorted search of the lines' (key, day) among the rows'."""
    n = len(dos)
    if schedule.empty or n == 0:
        return np.full(n, -1, dtype="int64")
    line_key = np.zeros(n, dtype="int64")
    row_key = np.zeros(len(schedule), dtype="int64")
    ok_line = np.ones(n, dtype=bool)
    ok_row = np.ones(len(schedule), dtype=bool)
    for (codes, uniques), column in zip(keys, SCHEDULE_KEYS, strict=True):
        at = pd.Index(uniques.to_numpy(dtype=object)).get_indexer(
            schedule[column].to_numpy(dtype=object)
        )
        size = len(uniques) + 1
        ok_line &= codes >= 0
        ok_row &= at >= 0
        line_key = line_key * size + codes
        row_key = row_key * size + at
    days = np.asarray(dos, dtype="datetime64[D]")
    ok_line &= ~np.isnat(days)
    line_day = np.clip(days.astype("int64"), _LOW_DAY, _LOW_DAY + _SPAN - 1) - _LOW_DAY
    eff = schedule["effective_date"].to_numpy(dtype="datetime64[D]")
    row_day = np.where(
        np.isnat(eff), 0, np.clip(eff.astype("int64"), _LOW_DAY, _LOW_DAY + _SPAN - 1) - _LOW_DAY
    )
    rows = np.flatnonzero(ok_row)
    if not len(rows):
        return np.full(n, -1, dtype="int64")
    row_at = row_key[rows] * _SPAN + row_day[rows]
    order = np.argsort(row_at, kind="stable")
    rows, row_at = rows[order], row_at[order]
    line_at = np.where(ok_line, line_key, 0) * _SPAN + line_day
    i = np.searchsorted(row_at, line_at, side="right") - 1
    hit = ok_line & (i >= 0)
    hit[hit] = row_key[rows[i[hit]]] == line_key[hit]
    return np.where(hit, rows[np.maximum(i, 0)], -1)


def fee_rows(night: Night, pos: np.ndarray) -> np.ndarray:
    """``schedule_rows`` for the lines at ``pos`` of the night (its cached factorisations)."""
    schedule = night.ref.fee_schedule
    out = np.full(len(pos), -1, dtype="int64")
    if schedule.empty or len(pos) == 0:
        return out
    # only lines of a code and clinic the schedule names are looked up (checked per value)
    cand = isin(night, "cpt_code", schedule["code"]) & isin(
        night, "clinic_id", schedule["clinic_id"]
    )
    at = np.flatnonzero(cand[pos])
    keys = []
    for column in LINE_KEYS:
        codes, uniques = night.distinct(column)
        keys.append((codes[pos[at]], uniques))
    dos = night.lines["date_of_service"].to_numpy()[pos[at]]
    out[at] = schedule_rows(schedule, keys, dos)
    return out


def schedule_amount(ref: Reference, rows: np.ndarray, column: str) -> np.ndarray:
    """``column`` (unit_charge or allowed_amount) of fee_schedule rows ``rows`` in cents (float),
    NaN where there is no row or the row leaves the amount empty."""
    values = np.append(cents(ref.fee_schedule[column].to_numpy(dtype="float64")), np.nan)
    return values[np.where(rows >= 0, rows, len(values) - 1)]


def kx_amounts(
    ref: Reference, rows: np.ndarray, units: np.ndarray, charge: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """What the KX running total counts per line, in dollars: the payer's allowed amount a unit
    (``fee_schedule.csv``, ``rows`` as ``schedule_rows`` gives them) x units where the schedule
    has one, else the charge (the documented fallback); and which lines used the schedule."""
    allowed = schedule_amount(ref, rows, "allowed_amount")
    known = ~np.isnan(allowed)
    return np.where(known, allowed * units / 100.0, charge), known


def schedule_text(ref: Reference, rows: np.ndarray) -> np.ndarray:
    """``fee_schedule.csv@<sha>: CLN01/medicare/97110`` (``effective <date>`` where given) per
    row position (-1: no row, ''), for a finding's evidence (the few reported lines only)."""
    s = ref.fee_schedule
    eff = pd.Series(s["effective_date"].to_numpy()).dt.strftime(" effective %Y-%m-%d")
    text = (
        ref.version("fee_schedule.csv")
        + ": "
        + s["clinic_id"].astype(str).to_numpy()
        + "/"
        + s["payer_class"].astype(str).to_numpy()
        + "/"
        + s["code"].astype(str).to_numpy()
        + eff.fillna("").to_numpy(dtype=object)
    )
    return np.append(np.asarray(text, dtype=object), "")[rows]  # -1 (no row): ""


# --------------------------------------------------------------------------- rules


@rule("CHARGE_CORRECTED", changes=("charge_amount",), reads=("units",))
def charge_follows_units(night: Night) -> pd.DataFrame:
    """Where the units fixer billed other units than charted, the charge follows: the unit
    charge (fee_schedule.csv's unit_charge for the clinic, payer class and code where given,
    else the charted charge / charted units) x billed units, rounded half up to the cent. A
    line that bills 0 units is not sent and keeps its charge; one charted with 0 units and
    no schedule row has no unit charge to follow and keeps it too."""
    lines = night.lines
    units = lines["units"].to_numpy(dtype="float64", na_value=np.nan)
    charted = lines["units_charted"].to_numpy(dtype="float64", na_value=np.nan)
    charge = lines["charge_amount"].to_numpy(dtype="float64", na_value=np.nan)
    # NaN compares unequal and not above 0: a missing number selects nothing. A code the
    # reference does not know has no meaningful units (CODE_UNKNOWN holds its claim): its
    # charge is left as charted
    known = isin(night, "cpt_code", night.ref.cpt.index)
    sel = known & (units > 0) & (charted != units) & ~np.isnan(charted) & ~np.isnan(charge)
    if not sel.any():
        return findings.empty()
    pos = np.flatnonzero(sel)
    billed = units[pos].astype("int64")
    was = charted[pos].astype("int64")
    old = cents(charge[pos]).astype("int64")
    row = fee_rows(night, pos)
    unit = schedule_amount(night.ref, row, "unit_charge")
    scheduled = ~np.isnan(unit)
    by_ratio = half_up(old * billed, np.maximum(was, 1))
    new = np.where(scheduled, np.nan_to_num(unit).astype("int64") * billed, by_ratio)
    changed = (scheduled | (was > 0)) & (new != old)
    if not changed.any():
        return findings.empty()
    pos, billed, was, old, new, row = (a[changed] for a in (pos, billed, was, old, new, row))
    scheduled, unit = scheduled[changed], unit[changed]
    r = take(lines, pos, "cpt_code", "date_of_service", "clinic_id", "payer_class")
    before, after = money(old), money(new)
    how = np.where(
        scheduled,
        message(r, billed, " x $", money(np.nan_to_num(unit)), ", the fee schedule's unit charge"),
        message(r, "$", before, " x ", billed, "/", was, ", rounded half up to the cent"),
    )
    out = findings.make(
        "CHARGE_CORRECTED",
        r,
        message(
            r,
            r["cpt_code"],
            ": charge ",
            before,
            " -> ",
            after,
            " to follow the units (",
            was,
            " charted, ",
            billed,
            " billed): ",
            how,
            " (",
            code_on_date(r),
            ")",
        ),
        evidence=np.where(
            scheduled, message(r, schedule_text(night.ref, row), " unit_charge"), _EVIDENCE
        ),
        before=before,
        after=after,
    )
    mask = np.zeros(len(lines), dtype=bool)
    mask[pos] = True
    night.record_change(mask, message(r, "charge ", before, "->", after))
    night.update("charge_amount", mask, pd.Series(new / 100.0, index=r.index))
    return out


@rule("CHARGE_INVALID", "CHARGE_ABOVE_SCHEDULE", reads=("units", "charge_amount", "excluded"))
def charge_checks(night: Night) -> pd.DataFrame:
    """Over the billed lines (``Night.reported``: units > 0, not left off), after every fixer: a claim whose billed lines total
    $0.00 (reported on its first billed line by line_id; a claim with a missing charge is the
    837 checks' to hold), and a line whose unit charge is more than
    ``CHARGE_ABOVE_SCHEDULE_FACTOR`` times its fee_schedule.csv unit_charge."""
    lines = night.lines
    billed = night.reported()
    charge = lines["charge_amount"].to_numpy(dtype="float64", na_value=np.nan)
    pos = np.flatnonzero(billed)
    amount = cents(charge[pos])
    out = [_zero_claims(night, pos, amount)]
    units = lines["units"].to_numpy(dtype="int64")[pos]
    # only a line above the factor times its code's lowest unit charge in the schedule can be
    # above its own row's: the rows of those few lines are looked up, not every line's
    at = np.flatnonzero(amount > CHARGE_ABOVE_SCHEDULE_FACTOR * _lowest_unit(night)[pos] * units)
    row = fee_rows(night, pos[at])
    unit = schedule_amount(night.ref, row, "unit_charge")
    over = ~np.isnan(unit) & (amount[at] > CHARGE_ABOVE_SCHEDULE_FACTOR * unit * units[at])
    at = at[over]
    out.append(_above_schedule(night, pos[at], amount[at], unit[over], row[over]))
    return findings.concat(out)


def _lowest_unit(night: Night) -> np.ndarray:
    """Per line, the lowest fee_schedule.csv unit charge (cents) of its code, whatever the
    clinic, payer class or date; infinite where the schedule has none (checked per code)."""
    codes, uniques = night.distinct("cpt_code")
    s = night.ref.fee_schedule
    lowest = pd.Series(cents(s["unit_charge"].to_numpy(dtype="float64")), index=s["code"])
    per_code = uniques.map(lowest.dropna().groupby(level=0).min()).astype("float64")
    return spread(codes, per_code.fillna(np.inf).to_numpy(), np.inf)


def _zero_claims(night: Night, billed: np.ndarray, amount: np.ndarray) -> pd.DataFrame:
    """CHARGE_INVALID on the first billed line (by line_id) of each claim whose ``billed``
    lines (positions; ``amount``: their charges in cents) total $0.00. Ingest rejects negative
    charges, so only a claim with a $0.00 line can total $0.00: the night's claims are not
    grouped, only the lines of those few claims are (one pass over the claim ids, and none
    on a night without a $0.00 line)."""
    if not (amount == 0).any():
        return findings.empty()
    lines = night.lines
    claim = lines["claim_id"]
    suspects = pd.unique(claim.array.take(billed[amount == 0]).dropna())
    mine = claim.isin(list(suspects)).to_numpy(dtype=bool, na_value=False)[billed]
    ids = pd.Series(lines["claim_id"].array.take(billed[mine]))
    total = pd.Series(np.nan_to_num(amount[mine])).groupby(ids).sum()
    missing = pd.Series(np.isnan(amount[mine])).groupby(ids).any()
    zero = total.index[(total == 0).to_numpy() & ~missing.reindex(total.index).to_numpy()]
    pos = billed[mine][ids.isin(zero).to_numpy()]
    if not len(pos):
        return findings.empty()
    r = take(night.lines, pos, "claim_id", "date_of_service", "payer_id")
    n = r.groupby("claim_id", sort=False)["line_id"].transform("size")
    r = r.assign(n=n.to_numpy()).sort_values("line_id", kind="mergesort")
    r = r.drop_duplicates("claim_id", keep="first")
    return findings.make(
        "CHARGE_INVALID",
        r,
        message(
            r,
            "the claim's ",
            r["n"],
            " billed line(s) total $0.00 (payer ",
            r["payer_id"],
            ", ",
            iso_date(r["date_of_service"]),
            "): nothing to bill",
        ),
        evidence="payer-edits.md, Edits: charges (a claim totalling $0 is rejected)",
    )


def _above_schedule(
    night: Night, pos: np.ndarray, amount: np.ndarray, unit: np.ndarray, row: np.ndarray
) -> pd.DataFrame:
    """CHARGE_ABOVE_SCHEDULE on the lines at ``pos`` (their charges and schedule unit charges
    in cents, their schedule rows)."""
    if not len(pos):
        return findings.empty()
    r = take(night.lines, pos, "cpt_code", "date_of_service", "units")
    units = r["units"].to_numpy(dtype="int64")
    per_unit = half_up(amount.astype("int64"), units)
    return findings.make(
        "CHARGE_ABOVE_SCHEDULE",
        r,
        message(
            r,
            r["cpt_code"],
            ": $",
            money(amount),
            " for ",
            units,
            " unit(s) is $",
            money(per_unit),
            " a unit, more than ",
            f"{CHARGE_ABOVE_SCHEDULE_FACTOR}x the fee schedule's $",
            money(unit),
            " (",
            code_on_date(r),
            ")",
        ),
        evidence=message(r, schedule_text(night.ref, row), " unit_charge"),
    )
