"""Synthetic nightly encounter extracts (docs/extract-format.md) for demos, tests and
benchmarks. Nothing here describes a real person: names, addresses, member ids and NPIs are
drawn at random (NPIs pass the check digit but are picked at random).

Everything is built column-wise with numpy (no Python loop per row or per encounter):

1. Teams: each clinic of the reference folder gets a PT and an OT team, or one chiropractic
   team when the clinic is chiropractic (taxonomy 111N..., or "CHIRO" in its name).
2. Encounters are spread over the 7 days before ``run_date`` (fewer at weekends). Within a
   team and day, encounter ``r`` goes to clinician ``r mod n`` as that clinician's slot
   ``r div n``, and to patient ``(r + offset[day]) mod P``, so a patient is seen at most once
   a day and a clinician sees at most 7 patients a day. Each clinician's encounters are then
   scheduled one after the other from 07:00-08:00, so one clinician's one-on-one intervals
   never overlap.
3. Each encounter has up to 6 line slots (evaluation or CMT, three timed codes, a modality,
   group therapy); present slots become the encounter's lines (1-5). Minutes are drawn so that
   every timed line earns >= 1 unit under the payer's unit method, there are no leftover-minute
   ties, and timed units stay within min(4, the payer's daily cap); ``units_charted`` is then
   exactly what the pipeline will compute.
4. Modifiers: GP/GO per discipline on always-therapy lines (missing on ~3% to exercise the
   automatic add), CQ/CO on assistants' lines, 59 or XS on the column-2 code of every active
   indicator-1 NCCI pair of ``ncci_ptp.csv`` present in the encounter (XS when the column-1
   code is a CMT and the payer prefers X modifiers), AT on CMT for Medicare/MA.
5. ``problem_rate`` of the encounters then get exactly one problem each (``PROBLEM_KINDS``);
   ``generate_labelled`` returns which encounter/line got which.
6. The issue-15 columns (supervisors, taxonomies, referring providers, initial treatment and
   accident details) come from a random stream of their own, so the columns above are the
   same with or without them; on nights with problems a few ``CONTENT_KINDS`` cases follow
   (``CONTENT_FINDINGS``: the finding each must raise). ``providers_roster`` and
   ``write_reference`` make the providers.csv of a night's clinicians (the demo's reference).
"""

from __future__ import annotations

import datetime as dt
import gc
import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from therapy_claims import layout, npi, reference, storage
from therapy_claims.x12.constants import CREDENTIAL_TAXONOMY

PROBLEM_KINDS: tuple[str, ...] = (
    "missing_minutes",  # a timed line with minutes ""
    "units_off",  # units_charted one off the computed units (charge follows the charted units)
    "missing_therapy_modifier",  # GP/GO removed from a line of a payer requiring them
    "unknown_payer",  # payer_id not in payers.csv (all lines of the encounter)
    "unknown_clinic",  # clinic_id not in clinics.csv (all lines of the encounter)
    "bad_date",  # date_of_service not a date, e.g. 2026-13-45 (all lines of the encounter)
    "negative_minutes",  # a timed line with minutes "-N"
    "duplicate_line_id",  # a line copied verbatim (same line_id) right after itself
    "lone_timed_under_8",  # the encounter's only timed line has 3-7 minutes, charted 1 unit
    "non_numeric_charge",  # charge_amount like "$45.00", "45,00", "N/A", "TBD"
    "end_before_start",  # start_time and end_time swapped on a timed line
    "manual_without_technique",  # a 97140 line with technique ""
    "missing_required_field",  # a required column emptied on one line
)

# ----------------------------------------------------------------------------- code tables

# code -> (timed, charge per unit (timed) or per service (untimed), USD)
CODES: dict[str, tuple[bool, float]] = {
    "97161": (False, 120.00),
    "97162": (False, 135.00),
    "97163": (False, 150.00),
    "97165": (False, 125.00),
    "97166": (False, 140.00),
    "97167": (False, 155.00),
    "98940": (False, 55.00),
    "98941": (False, 70.00),
    "98942": (False, 85.00),
    "97110": (True, 42.00),
    "97112": (True, 44.00),
    "97140": (True, 45.00),
    "97530": (True, 48.00),
    "97116": (True, 40.00),
    "97535": (True, 46.00),
    "97010": (False, 18.00),
    "97012": (False, 28.00),
    "97014": (False, 20.00),
    "G0283": (False, 20.00),
    "97018": (False, 22.00),
    "97150": (False, 30.00),
}
_CODE_LIST = list(CODES)
_CI = {c: i for i, c in enumerate(_CODE_LIST)}
_CODE_ARR = np.array(_CODE_LIST, dtype=object)
_TIMED = np.array([CODES[c][0] for c in _CODE_LIST])
_FEE_CENTS = np.array([round(CODES[c][1] * 100) for c in _CODE_LIST], dtype=np.int64)
_CMT = np.array([c in ("98940", "98941", "98942") for c in _CODE_LIST])
_CMT_BY_REGIONS = {1: "98940", 2: "98940", 3: "98941", 4: "98941", 5: "98942"}

# candidate timed codes and their weights per discipline (index 0 = PT, 1 = OT)
_TIMED_CAND = np.array(
    [
        [_CI["97110"], _CI["97112"], _CI["97140"], _CI["97530"], _CI["97116"]],
        [_CI["97110"], _CI["97530"], _CI["97535"], _CI["97112"], _CI["97140"]],
    ]
)
_TIMED_W = np.array([[0.32, 0.18, 0.25, 0.17, 0.08], [0.25, 0.30, 0.20, 0.10, 0.15]])

_SPINAL = ("cervical", "thoracic", "lumbar", "sacral", "pelvic")
_M99_REGION = {
    "M99.00": "head",
    "M99.01": "cervical",
    "M99.02": "thoracic",
    "M99.03": "lumbar",
    "M99.04": "sacral",
    "M99.05": "pelvic",
    "M99.08": "rib_cage",
}

# Case profiles: (discipline, weight, diagnosis codes, 97140 region(s), 97140 technique
# override, traction allowed, CMT spinal regions, 97140 diagnosis pointer at the chiro clinic)
_PROFILES: tuple[tuple, ...] = (
    ("PT", 10, "M54.50;M62.81", "lumbar", "", True, "", ""),
    ("PT", 6, "S33.5XXA;M54.50;M62.830", "lumbar;pelvic", "", True, "", ""),
    ("PT", 7, "M54.2;M62.81", "cervical", "", True, "", ""),
    ("PT", 4, "S13.4XXA;M54.2;G89.29", "cervical;thoracic", "", True, "", ""),
    ("PT", 6, "M25.511;M62.81", "upper_extremity", "", False, "", ""),
    ("PT", 5, "M75.101;M25.511;M62.81", "upper_extremity", "", False, "", ""),
    ("PT", 6, "M25.561;M62.81;R26.89", "lower_extremity", "", False, "", ""),
    ("PT", 5, "Z47.1;Z96.651;M25.561;R26.89", "lower_extremity", "", False, "", ""),
    ("PT", 4, "M17.11;M25.561", "lower_extremity", "", False, "", ""),
    ("PT", 4, "M79.604;G89.29", "lower_extremity", "", False, "", ""),
    ("PT", 3, "M54.6;G89.29", "thoracic;rib_cage", "", False, "", ""),
    ("PT", 3, "M25.551;M62.81;R26.89", "lower_extremity;pelvic", "", False, "", ""),
    ("PT", 2, "I89.0;M79.89", "upper_extremity", "manual_lymphatic_drainage", False, "", ""),
    ("OT", 6, "S52.501D;M25.631;M62.81", "upper_extremity", "", False, "", ""),
    ("OT", 5, "G56.01;M79.641", "upper_extremity", "", False, "", ""),
    ("OT", 5, "I69.351;M62.81;R27.8", "upper_extremity", "", False, "", ""),
    ("OT", 5, "M25.511;M75.101", "upper_extremity", "", False, "", ""),
    ("OT", 4, "M19.041;M25.641", "upper_extremity", "", False, "", ""),
    ("OT", 3, "M62.81;R26.89;Z91.81", "upper_extremity", "", False, "", ""),
    ("OT", 2, "I89.0", "upper_extremity", "manual_lymphatic_drainage", False, "", ""),
    ("CHIRO", 14, "M99.03;M54.50;M79.604", "lower_extremity", "", True, "lumbar", "3"),
    ("CHIRO", 12, "M99.01;M54.2;M25.511", "upper_extremity", "", True, "cervical", "3"),
    (
        "CHIRO",
        10,
        "M99.01;M99.02;M54.2;M25.512",
        "upper_extremity",
        "",
        True,
        "cervical;thoracic",
        "4",
    ),
    (
        "CHIRO",
        10,
        "M99.03;M99.04;S33.5XXA;M25.551",
        "lower_extremity",
        "",
        True,
        "lumbar;sacral",
        "4",
    ),
    ("CHIRO", 8, "M99.02;M99.03;M54.6;M99.08", "rib_cage", "", True, "thoracic;lumbar", "4"),
    ("CHIRO", 6, "M99.01;M54.2;M99.00;G44.209", "head", "", True, "cervical", "3;4"),
    (
        "CHIRO",
        9,
        "M99.01;M99.02;M99.03;M25.561",
        "lower_extremity",
        "",
        True,
        "cervical;thoracic;lumbar",
        "4",
    ),
    (
        "CHIRO",
        7,
        "M99.03;M99.04;M99.05;M25.551",
        "lower_extremity",
        "",
        True,
        "lumbar;sacral;pelvic",
        "4",
    ),
    (
        "CHIRO",
        6,
        "M99.01;M99.02;M99.03;M99.04",
        "",
        "",
        True,
        "cervical;thoracic;lumbar;sacral",
        "",
    ),
    ("CHIRO", 4, "M99.01;M99.02;M99.03;M99.05", "", "", True, ";".join(_SPINAL), ""),
)
_PR_DISC = np.array([p[0] for p in _PROFILES], dtype=object)
_PR_W = np.array([p[1] for p in _PROFILES], dtype=float)
_PR_DX = np.array([p[2] for p in _PROFILES], dtype=object)
_PR_NDX = np.array([p[2].count(";") + 1 for p in _PROFILES])
_PR_REGION = np.array([p[3] for p in _PROFILES], dtype=object)
_PR_TECH = np.array([p[4] for p in _PROFILES], dtype=object)
_PR_TRACTION = np.array([p[5] for p in _PROFILES])
_PR_CMT_REG = np.array([p[6] for p in _PROFILES], dtype=object)
_PR_CMT_CODE = np.array(
    [_CI[_CMT_BY_REGIONS[p[6].count(";") + 1]] if p[6] else -1 for p in _PROFILES]
)
_PR_CMT_PTR = np.array(
    [
        ";".join(
            str(i + 1)
            for i, d in enumerate(p[2].split(";"))
            if _M99_REGION.get(d) in p[6].split(";")
        )[:7]
        or "1"
        for p in _PROFILES
    ],
    dtype=object,
)
_PR_140_PTR = np.array([p[7] for p in _PROFILES], dtype=object)
_PR_ALLOW140 = np.array([bool(p[3]) for p in _PROFILES])

_TECH_PT = np.array(
    [
        "soft_tissue_mobilization",
        "joint_mobilization",
        "myofascial_release",
        "soft_tissue_mobilization;joint_mobilization",
        "myofascial_release;soft_tissue_mobilization",
        "manual_traction",
        "joint_mobilization;manual_traction",
        "manipulation",
    ],
    dtype=object,
)
_TECH_PT_W = np.array([0.28, 0.22, 0.16, 0.14, 0.08, 0.05, 0.04, 0.03])
_TECH_CHIRO = np.array(
    ["soft_tissue_mobilization", "myofascial_release", "joint_mobilization"], dtype=object
)

# ----------------------------------------------------------------------------- people

_LAST = np.array(
    "SMITH JOHNSON WILLIAMS BROWN JONES GARCIA MILLER DAVIS RODRIGUEZ MARTINEZ HERNANDEZ LOPEZ "
    "GONZALEZ WILSON ANDERSON THOMAS TAYLOR MOORE JACKSON MARTIN LEE PEREZ THOMPSON WHITE HARRIS "
    "SANCHEZ CLARK RAMIREZ LEWIS ROBINSON WALKER YOUNG ALLEN KING WRIGHT SCOTT TORRES NGUYEN HILL "
    "FLORES GREEN ADAMS NELSON BAKER HALL RIVERA CAMPBELL MITCHELL CARTER ROBERTS KOWALSKI NOWAK "
    "SCHMIDT PATEL SHAH KIM PARK CHEN WANG O'BRIEN MCDONALD SMITH-JONES".split()
    + ["VAN DER BERG", "DE LA CRUZ"],
    dtype=object,
)
_LAST_SPECIAL = np.array(
    [
        "MÜLLER",
        "NGUYỄN",
        "GARCÍA",
        "PEÑA",
        "BJÖRK",
        "O*BRIEN~",
        "ŁUKASZEWICZ",
        "SØRENSEN",
        "D'ANGELO",
        "JOHNSON:SMITH",
    ],
    dtype=object,
)
_FIRST = np.array(
    "JAMES MARY ROBERT PATRICIA JOHN JENNIFER MICHAEL LINDA DAVID ELIZABETH WILLIAM BARBARA "
    "RICHARD SUSAN JOSEPH JESSICA THOMAS SARAH CHARLES KAREN CHRISTOPHER LISA DANIEL NANCY "
    "MATTHEW BETTY ANTHONY MARGARET MARK SANDRA DONALD ASHLEY STEVEN KIMBERLY PAUL EMILY ANDREW "
    "DONNA JOSHUA MICHELLE KENNETH CAROL KEVIN AMANDA BRIAN MELISSA GEORGE DEBORAH MARIA LUIS "
    "MEI PRIYA".split(),
    dtype=object,
)
_FIRST_SPECIAL = np.array(
    [
        "JOSÉ",
        "ZOË",
        "FRANÇOIS",
        "RENÉE",
        "JÜRGEN",
        "NGỌC",
        "SIÂN",
        "ÅSA",
        "ANN^MARIE",
        'MARY "MAE"',
    ],
    dtype=object,
)
_STREETS = np.array(
    [
        "MAIN ST",
        "OAK AVE",
        "MAPLE DR",
        "ELM ST",
        "WASHINGTON BLVD",
        "LINCOLN AVE",
        "CEDAR LN",
        "PARK RD",
        "LAKE SHORE DR",
        "JEFFERSON ST",
        "2ND ST",
        "MONROE ST",
        "WALNUT ST",
        "HICKORY CT",
        "PRAIRIE VIEW RD",
        "CALLE SAN JOSÉ",
    ],
    dtype=object,
)
_ADDR_SPECIAL = np.array(
    [
        "12 MAIN ST:APT^4",
        "400 ELM ST*UNIT~2",
        "77 OAK AVE, APT 3B",
        '9 "THE OAKS" LN',
        "1600 N LAKE ST; REAR",
        "=1+2 CEDAR LN",
    ],
    dtype=object,
)
_CITIES = (
    ("SPRINGFIELD", "IL", "62701"),
    ("SPRINGFIELD", "IL", "62704"),
    ("CHATHAM", "IL", "62629"),
    ("ROCHESTER", "IL", "62563"),
    ("PEORIA", "IL", "61602"),
    ("PEORIA", "IL", "61614"),
    ("EAST PEORIA", "IL", "61611"),
    ("PEKIN", "IL", "61554"),
    ("BLOOMINGTON", "IL", "61701"),
    ("NORMAL", "IL", "61761"),
    ("DECATUR", "IL", "62521"),
    ("CHAMPAIGN", "IL", "61820"),
    ("JACKSONVILLE", "IL", "62650"),
    ("LINCOLN", "IL", "62656"),
    ("WASHINGTON", "IL", "61571"),
    ("CANTON", "IL", "61520"),
    ("ST. LOUIS", "MO", "63101"),
    ("DAVENPORT", "IA", "52801"),
)
_RESPONSES = np.array(
    [
        "Tolerated well",
        "Decreased pain 6/10 to 3/10",
        "Improved ROM, flexion 120° → 140°",
        "Pt reports less stiffness",
        "Mild soreness, resolved by end of session",
        "Good response; HEP updated",
        "Increased standing tolerance to 15 min",
        "Reduced guarding, improved mobility",
        "No adverse reaction",
        "Pain unchanged, will reassess",
    ],
    dtype=object,
)
_RESPONSES_SPECIAL = np.array(
    [
        '=HYPERLINK("http://example.invalid","notes")',
        "+1 level improvement in gait",
        "@SUM(A1:A2) tolerated",
        "-2 points on pain scale",
        'Pt said "much better", continue POC',
        "Ça va mieux — moins de douleur",
        "tolerated*no adverse~reaction^noted:ok",
    ],
    dtype=object,
)
_GOALS = np.array(["STG1", "STG2", "STG3", "LTG1", "LTG2"], dtype=object)

_CLASS_WEIGHT = {
    "medicare": 0.35,
    "commercial": 0.35,
    "medicare_advantage": 0.10,
    "medicaid": 0.08,
    "workers_comp": 0.07,
    "auto": 0.05,
}
_MEDICARE_LIKE = ("medicare", "medicare_advantage")
_K = 3  # timed-code slots per encounter
_PROBLEM_COLUMNS = ["encounter_id", "line_id", "kind", "column", "value"]

_DIGITS = b"0123456789"
_MBI_ALPHA = b"ACDEFGHJKMNPQRTUVWXY"
_UPPER = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ"
_TIMES = np.array([f"{h:02d}:{m:02d}" for h in range(24) for m in range(60)], dtype=object)
_SMALL_INTS = np.array([str(i) for i in range(400)], dtype=object)


# ----------------------------------------------------------------------------- helpers


def _to_str(buf: np.ndarray) -> np.ndarray:
    """(n, w) uint8 ASCII matrix -> object array of n str."""
    n, w = buf.shape
    if n == 0:
        return np.empty(0, dtype=object)
    return np.ascontiguousarray(buf).view(f"S{w}").ravel().astype(f"U{w}").astype(object)


def _fixed(prefix: str, values: np.ndarray, width: int) -> np.ndarray:
    """prefix + zero-padded decimal of each value (values >= 0)."""
    v = np.asarray(values, dtype=np.int64)
    p = np.frombuffer(prefix.encode("ascii"), dtype=np.uint8)
    buf = np.empty((len(v), len(p) + width), dtype=np.uint8)
    buf[:, : len(p)] = p
    pw = 10 ** np.arange(width - 1, -1, -1, dtype=np.int64)
    buf[:, len(p) :] = (v[:, None] // pw) % 10 + 48
    return _to_str(buf)


def _pattern(rng: np.random.Generator, n: int, alphabets: list[bytes]) -> np.ndarray:
    """Random strings, position i drawn from alphabets[i]."""
    buf = np.empty((n, len(alphabets)), dtype=np.uint8)
    for i, a in enumerate(alphabets):
        arr = np.frombuffer(a, dtype=np.uint8)
        buf[:, i] = arr[rng.integers(0, len(arr), n)]
    return _to_str(buf)


def _join(parts: list[np.ndarray]) -> np.ndarray:
    """Join object arrays of str with ';', skipping empty strings."""
    out = parts[0].copy()
    for p in parts[1:]:
        has = p != ""
        empty = out == ""
        both = has & ~empty
        out[both] = out[both] + ";" + p[both]
        only = has & empty
        out[only] = p[only]
    return out


def _ints(values: np.ndarray) -> np.ndarray:
    v = np.asarray(values, dtype=np.int64)
    if len(v) and (v.min() < 0 or v.max() >= len(_SMALL_INTS)):
        return v.astype(str).astype(object)
    return _SMALL_INTS[v]


def _date_strings(days: np.ndarray) -> np.ndarray:
    """Days since 1970-01-01 -> YYYY-MM-DD."""
    d = np.asarray(days, dtype=np.int64)
    if len(d) == 0:
        return np.empty(0, dtype=object)
    lo = d.min()
    uniq = np.datetime_as_string(np.arange(lo, d.max() + 1).astype("datetime64[D]"), unit="D")
    return uniq.astype(object)[d - lo]


def _money(cents: np.ndarray) -> np.ndarray:
    c = np.asarray(cents, dtype=np.int64)
    if len(c) == 0:
        return np.empty(0, dtype=object)
    uniq, inv = np.unique(c, return_inverse=True)
    txt = np.array([f"{u // 100}.{u % 100:02d}" for u in uniq], dtype=object)
    return txt[inv]


def _epoch_day(d: dt.date) -> int:
    return (d - dt.date(1970, 1, 1)).days


def _group_first(keys: np.ndarray) -> np.ndarray:
    """For an array sorted by keys: index of the first element of each element's group."""
    n = len(keys)
    first = np.ones(n, dtype=bool)
    first[1:] = keys[1:] != keys[:-1]
    return np.maximum.accumulate(np.where(first, np.arange(n), 0))


def _units(m: np.ndarray, mask: np.ndarray, cms: np.ndarray) -> np.ndarray:
    """Units per timed slot (E x K) under the CMS total-time rule (cms) or per code."""
    m = np.where(mask, m, 0)
    per_code = np.where(mask, m // 15 + (m % 15 >= 8), 0)
    total = m.sum(axis=1)
    pool = total // 15 + (total % 15 >= 8)
    full = np.where(mask, m // 15, 0)
    rem = np.where(mask, m % 15, -1)
    remaining = pool - full.sum(axis=1)
    order = np.argsort(-rem, axis=1, kind="stable")
    rank = np.empty_like(order)
    np.put_along_axis(rank, order, np.arange(m.shape[1])[None, :].repeat(len(m), 0), axis=1)
    alloc = full + ((rank < remaining[:, None]) & mask)
    return np.where(cms[:, None], alloc, per_code)


def _timed_minutes(rng, mask, cms, cap, hi):
    """Minutes (E x K) such that every present slot gets >= 1 unit, units <= cap, no
    leftover-minute ties (CMS) and at most 70 timed minutes. Rows that keep failing fall back
    to a single slot of 12 minutes."""
    e, k = mask.shape
    m = np.zeros((e, k), dtype=np.int64)
    todo = np.arange(e)
    for _ in range(60):
        if len(todo) == 0:
            break
        mk = mask[todo]
        h = hi[todo][:, None]
        m[todo] = np.where(mk, 8 + np.floor(rng.random((len(todo), k)) * (h - 7)).astype(int), 0)
        u = _units(m[todo], mk, cms[todo])
        ok = ((u >= 1) | ~mk).all(axis=1) & (u.sum(axis=1) <= cap[todo])
        ok &= m[todo].sum(axis=1) <= 70
        rem = np.where(mk, m[todo] % 15, -1)
        tie = np.zeros(len(todo), dtype=bool)
        for a in range(k):
            for b in range(a + 1, k):
                tie |= mk[:, a] & mk[:, b] & (rem[:, a] == rem[:, b])
        ok &= ~(tie & cms[todo])
        todo = todo[~ok]
    if len(todo):
        first = np.argmax(mask[todo], axis=1)
        mask[todo] = False
        mask[todo, first] = True
        m[todo] = 0
        m[todo, first] = 12
    return m, _units(m, mask, cms)


def _choose_profiles(rng, disc: np.ndarray) -> np.ndarray:
    out = np.zeros(len(disc), dtype=np.int64)
    for d in ("PT", "OT", "CHIRO"):
        sel = disc == d
        idx = np.flatnonzero(_PR_DISC == d)
        out[sel] = rng.choice(idx, sel.sum(), p=_PR_W[idx] / _PR_W[idx].sum())
    return out


def _names(rng, n, regular, special, p_special):
    out = regular[rng.integers(0, len(regular), n)]
    sp = rng.random(n) < p_special
    out[sp] = special[rng.integers(0, len(special), sp.sum())]
    return out


# ----------------------------------------------------------------------------- generate


def generate(
    encounters: int,
    *,
    seed: int = 0,
    run_date: dt.date | None = None,
    problem_rate: float = 0.08,
    reference_dir: str | None = None,
) -> pd.DataFrame:
    """A synthetic extract: every column of ``layout.COLUMN_NAMES`` as str ("" = missing), one
    row per service line. Deterministic for (encounters, seed, run_date, problem_rate,
    reference data)."""
    return generate_labelled(
        encounters,
        seed=seed,
        run_date=run_date,
        problem_rate=problem_rate,
        reference_dir=reference_dir,
    )[0]


def generate_labelled(
    encounters: int,
    *,
    seed: int = 0,
    run_date: dt.date | None = None,
    problem_rate: float = 0.08,
    reference_dir: str | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Like ``generate``, plus a frame of the injected problems: encounter_id, line_id, kind,
    column, value (one row per problem; line_id is the line changed, or the first line for
    encounter-wide problems)."""
    # millions of small str objects: the cyclic GC only costs time here (nothing is cyclic)
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        return _generate(encounters, seed, run_date, problem_rate, reference_dir)
    finally:
        if was_enabled:
            gc.enable()


def _generate(
    encounters: int,
    seed: int,
    run_date: dt.date | None,
    problem_rate: float,
    reference_dir: str | None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The steps of the module notes, in order. Each step draws from the one ``rng`` in a fixed
    order: moving a draw from one step to another changes every night generated after it."""
    encounters = int(encounters)
    if encounters < 0:
        raise ValueError("encounters must be >= 0")
    if not 0.0 <= problem_rate <= 1.0:
        raise ValueError("problem_rate must be between 0 and 1")
    run_date = run_date or dt.date.today()
    ref = reference.load(reference_dir)
    rng = np.random.default_rng(seed)
    if encounters == 0:
        empty = pd.DataFrame({c: pd.Series([], dtype=object) for c in layout.COLUMN_NAMES})
        return empty, pd.DataFrame(columns=_PROBLEM_COLUMNS)

    teams = _teams(ref.clinics)
    enc = _encounters(rng, teams, encounters, run_date)
    staff = _clinicians(rng, teams, enc)
    pats = _patients(rng, ref.payers, teams, enc, run_date)
    visits = _visits(rng, pats, enc)
    services = _services(rng, ref.payers, pats, enc, staff, visits)
    times = _schedule(rng, enc, services, len(staff.cred))
    lines = _lines(enc, pats, services)
    col, enc_ids = _identity_columns(
        seed, run_date, ref.payers, teams, enc, staff, pats, visits, services, lines
    )
    mods = _modifiers(rng, ref, enc, services, lines)
    fee, charge_cents = _clinical_columns(rng, col, teams, enc, pats, visits, times, lines)
    _provider_and_episode_columns(seed, col, ref.payers, teams, enc, staff, pats, visits, lines)
    night = _ProblemNight(
        rng, run_date, ref, col, enc_ids, enc, services, times, lines, mods, fee, charge_cents
    )
    _overlapping_same_patient_time(night, problem_rate)
    rows, dup_lines = _inject_problems(night, problem_rate)
    col["modifiers"] = _join([mods.therapy, mods.assistant, mods.distinct, mods.at])
    # a night without problems stays clean: these cases are problems of their own
    added = _coverage_and_reported_edit_cases(night) if problem_rate > 0 else None
    df, problems = _frames(col, rows, dup_lines, added)
    df = _duplicate_charges_and_unknown_codes(df, problems, seed, problem_rate, ref)
    df = _same_code_twice_a_day_and_modalities(df, night, problem_rate)
    return _claim_content_cases(df, problems, night, problem_rate)


# ----------------------------------------------------------------------------- teams, people


@dataclass
class _Teams:
    """One row per team: a clinic's PT or OT team, or a chiropractic clinic's one team."""

    clinic: np.ndarray
    disc: np.ndarray
    weight: np.ndarray  # share of the night's encounters
    mult: np.ndarray  # the clinic's fee multiplier


def _teams(clinics: pd.DataFrame) -> _Teams:
    clinics = clinics.reset_index(drop=True)
    t_clinic, t_disc, t_w, t_mult = [], [], [], []
    for i, row in clinics.iterrows():
        chiro = row["taxonomy"].startswith("111N") or "CHIRO" in row["billing_name"].upper()
        mult = (1.0, 1.12, 0.95, 1.05)[i % 4]
        if chiro:
            t_clinic.append(row["clinic_id"])
            t_disc.append("CHIRO")
            t_w.append(0.8)
            t_mult.append(mult)
        else:
            for d, w in (("PT", 1.1), ("OT", 0.4)):
                t_clinic.append(row["clinic_id"])
                t_disc.append(d)
                t_w.append(w)
                t_mult.append(mult)
    return _Teams(
        clinic=np.array(t_clinic, dtype=object),
        disc=np.array(t_disc, dtype=object),
        weight=np.array(t_w) / sum(t_w),
        mult=np.array(t_mult),
    )


@dataclass
class _Encounters:
    """Per encounter (sorted by team, then day): who sees whom, when. Per team: clinician and
    patient counts and where each team's clinicians and patients start."""

    first_day: int  # epoch day of the first of the 7 days
    day_dates: list[dt.date]
    team: np.ndarray
    day: np.ndarray
    clin: np.ndarray
    slot: np.ndarray  # the clinician's n-th encounter of the day
    pat: np.ndarray
    disc: np.ndarray
    is_chiro: np.ndarray
    disc_i: np.ndarray  # 1 for OT, else 0 (row of the timed-code tables)
    n_clin: np.ndarray
    clin_off: np.ndarray
    n_pat: np.ndarray


def _encounters(rng, teams: _Teams, n: int, run_date: dt.date) -> _Encounters:
    """Step 2 of the module notes: team, day, clinician, slot and patient of each encounter."""
    n_teams = len(teams.clinic)
    first_day = _epoch_day(run_date) - 7
    day_dates = [run_date - dt.timedelta(days=7 - d) for d in range(7)]
    day_w = np.array([{5: 0.3, 6: 0.05}.get(d.weekday(), 1.0) for d in day_dates])
    team = np.repeat(np.arange(n_teams), rng.multinomial(n, teams.weight))
    day = rng.choice(7, n, p=day_w / day_w.sum())
    o = np.lexsort((day, team))
    team, day = team[o], day[o]
    td = team * 7 + day
    td_count = np.bincount(td, minlength=n_teams * 7).reshape(n_teams, 7)
    rank = np.arange(n) - _group_first(td)
    max_day = td_count.max(axis=1)
    n_clin = np.maximum(np.ceil(max_day / 7).astype(int), 3)
    clin_off = np.concatenate([[0], np.cumsum(n_clin)[:-1]])
    n_pat = np.maximum(np.ceil(max_day * 2.6).astype(int), 4)
    pat_off = np.concatenate([[0], np.cumsum(n_pat)[:-1]])
    day_shift = rng.integers(0, n_pat[:, None], (n_teams, 7))
    disc = teams.disc[team]
    return _Encounters(
        first_day=first_day,
        day_dates=day_dates,
        team=team,
        day=day,
        clin=clin_off[team] + rank % n_clin[team],
        slot=rank // n_clin[team],
        pat=pat_off[team] + (rank + day_shift[team, day]) % n_pat[team],
        disc=disc,
        is_chiro=disc == "CHIRO",
        disc_i=np.where(disc == "OT", 1, 0),
        n_clin=n_clin,
        clin_off=clin_off,
        n_pat=n_pat,
    )


@dataclass
class _Clinicians:
    cred: np.ndarray
    npi: np.ndarray
    last: np.ndarray
    first: np.ndarray


def _clinicians(rng, teams: _Teams, enc: _Encounters) -> _Clinicians:
    """Each team's clinicians; the first of a team is never an assistant."""
    n = int(enc.n_clin.sum())
    c_team = np.repeat(np.arange(len(teams.clinic)), enc.n_clin)
    c_first_of_team = np.zeros(n, dtype=bool)
    c_first_of_team[enc.clin_off] = True
    assistant = (rng.random(n) < 0.4) & ~c_first_of_team
    c_disc = teams.disc[c_team]
    cred = np.where(
        c_disc == "CHIRO",
        "DC",
        np.where(
            c_disc == "OT", np.where(assistant, "OTA", "OT"), np.where(assistant, "PTA", "PT")
        ),
    ).astype(object)
    body = rng.choice(10**8, n, replace=False) + 10**8  # 9 digits starting with 1
    last = _LAST[rng.integers(0, len(_LAST), n)]
    first = _FIRST[rng.integers(0, len(_FIRST), n)]
    return _Clinicians(
        cred=cred,
        npi=np.array([npi.make_valid(str(b)) for b in body], dtype=object),
        last=last,
        first=first,
    )


@dataclass
class _Patients:
    """One row per patient (each belongs to one team)."""

    team: np.ndarray
    payer: np.ndarray  # row of the payers table
    cls: np.ndarray  # payer class
    dependent: np.ndarray
    rel: np.ndarray
    dob: np.ndarray
    sex: np.ndarray
    last: np.ndarray
    first: np.ndarray
    addr: np.ndarray
    city: np.ndarray
    state: np.ndarray
    zip: np.ndarray
    member: np.ndarray
    group: np.ndarray
    sub_last: np.ndarray
    sub_first: np.ndarray
    sub_dob: np.ndarray
    profile: np.ndarray  # row of _PROFILES
    base: np.ndarray  # visits before this week
    has_auth: np.ndarray
    auth: np.ndarray
    has_poc: np.ndarray
    injury: np.ndarray


def _patients(rng, payers: pd.DataFrame, teams: _Teams, enc: _Encounters, run_date) -> _Patients:
    n = int(enc.n_pat.sum())
    p_team = np.repeat(np.arange(len(teams.clinic)), enc.n_pat)
    payers = payers.reset_index(drop=True)
    pay_class = payers["payer_class"].to_numpy(dtype=object)
    class_n = pd.Series(pay_class).value_counts()
    pay_w = np.array([_CLASS_WEIGHT.get(c, 0.05) / class_n[c] for c in pay_class])
    p_payer = rng.choice(len(payers), n, p=pay_w / pay_w.sum())
    p_class = pay_class[p_payer]
    today = _epoch_day(run_date)
    people = _people(rng, p_class, today)
    address = _addresses(rng, n)
    member = _member_ids(rng, p_class)
    subscriber = _subscribers(rng, p_class, people, today)
    p_profile = _choose_profiles(rng, teams.disc[p_team])
    p_base = np.where(rng.random(n) < 0.2, 0, rng.integers(1, 16, n))
    req_auth = payers["requires_prior_auth"].to_numpy(dtype=bool)[p_payer]
    p_has_auth = req_auth | (rng.random(n) < 0.15)
    p_auth = np.where(p_has_auth, _fixed("PA", rng.integers(0, 10**8, n), 8), "").astype(object)
    p_has_poc = (teams.disc[p_team] != "CHIRO") | (rng.random(n) < 0.4)
    return _Patients(
        team=p_team,
        payer=p_payer,
        cls=p_class,
        dependent=people["dependent"],
        rel=people["rel"],
        dob=people["dob"],
        sex=people["sex"],
        last=people["last"],
        first=people["first"],
        **address,
        member=member,
        group=subscriber["group"],
        sub_last=subscriber["sub_last"],
        sub_first=subscriber["sub_first"],
        sub_dob=subscriber["sub_dob"],
        profile=p_profile,
        base=p_base,
        has_auth=p_has_auth,
        auth=p_auth,
        has_poc=p_has_poc,
        injury=np.isin(p_class, ("workers_comp", "auto")),
    )


def _people(rng, p_class: np.ndarray, today: int) -> dict[str, np.ndarray]:
    """Relationship to the subscriber, age, birth date, sex and name of each patient."""
    n = len(p_class)
    p_medicare = np.isin(p_class, _MEDICARE_LIKE)
    dependent = (p_class == "commercial") & (rng.random(n) < 0.3)
    child = dependent & (rng.random(n) < 0.6)
    p_rel = np.where(rng.random(n) < 0.75, "self", "").astype(object)
    p_rel[dependent] = np.where(child[dependent], "child", "spouse")
    age = rng.integers(18, 65, n)
    old = p_medicare & (rng.random(n) < 0.95)
    age[old] = rng.integers(65, 93, old.sum())
    age[child] = rng.integers(6, 26, child.sum())
    p_dob = today - age * 365 - rng.integers(0, 365, n) - 8
    p_sex = rng.choice(np.array(["F", "M", "U"], dtype=object), n, p=[0.5, 0.48, 0.02])
    last = _names(rng, n, _LAST, _LAST_SPECIAL, 0.04)
    first = _names(rng, n, _FIRST, _FIRST_SPECIAL, 0.04)
    return {
        "dependent": dependent,
        "child": child,
        "rel": p_rel,
        "age": age,
        "dob": p_dob,
        "sex": p_sex,
        "last": last,
        "first": first,
    }


def _addresses(rng, n: int) -> dict[str, np.ndarray]:
    """Street (some with an apartment, a few unusual), city, state and ZIP (some ZIP+4)."""
    apt = rng.random(n) < 0.1
    addr = _SMALL_INTS[rng.integers(1, 400, n)] + " " + _STREETS[rng.integers(0, len(_STREETS), n)]
    addr[apt] = addr[apt] + " APT " + _SMALL_INTS[rng.integers(1, 40, apt.sum())]
    sp = rng.random(n) < 0.01
    addr[sp] = _ADDR_SPECIAL[rng.integers(0, len(_ADDR_SPECIAL), sp.sum())]
    city_i = rng.integers(0, len(_CITIES), n)
    zip5 = np.array([c[2] for c in _CITIES], dtype=object)[city_i]
    z = rng.random(n)
    plus4 = _fixed("", rng.integers(1, 10000, n), 4)
    return {
        "addr": addr,
        "city": np.array([c[0] for c in _CITIES], dtype=object)[city_i],
        "state": np.array([c[1] for c in _CITIES], dtype=object)[city_i],
        "zip": np.where(z < 0.25, zip5 + plus4, np.where(z < 0.3, zip5 + "-" + plus4, zip5)),
    }


def _member_ids(rng, p_class: np.ndarray) -> np.ndarray:
    """A member id in the shape each payer class uses (an MBI for Medicare)."""
    member = np.empty(len(p_class), dtype=object)
    d9 = [_DIGITS] * 9
    member_patterns = {
        "medicare": [
            b"123456789",
            _MBI_ALPHA,
            _MBI_ALPHA + _DIGITS,
            _DIGITS,
            _MBI_ALPHA,
            _MBI_ALPHA + _DIGITS,
            _DIGITS,
            _MBI_ALPHA,
            _MBI_ALPHA,
            _DIGITS,
            _DIGITS,
        ],
        "medicare_advantage": [_UPPER, _UPPER, *d9],
        "medicaid": [b"123456789", *d9],
        "commercial": [_UPPER, _UPPER, _UPPER, *d9],
        "workers_comp": [b"W", b"C", *d9[:8]],
        "auto": [b"P", b"I", b"P", *d9[:8]],
    }
    for cls in sorted(set(p_class)):
        sel = p_class == cls
        member[sel] = _pattern(rng, int(sel.sum()), member_patterns.get(cls, [_UPPER, *d9]))
    return member


def _subscribers(rng, p_class: np.ndarray, people: dict[str, np.ndarray], today: int):
    """Group number (commercial plans) and, for dependents, the subscriber's name and birth
    date (per patient; the columns leave them empty for patients who are the subscriber)."""
    n = len(p_class)
    dependent, child = people["dependent"], people["child"]
    group = np.where(
        p_class == "commercial", _fixed("GRP", rng.integers(0, 10**6, n), 6), ""
    ).astype(object)
    sub_last = np.where(dependent, people["last"], "").astype(object)
    other_last = dependent & (rng.random(n) < 0.1)
    sub_last[other_last] = _LAST[rng.integers(0, len(_LAST), other_last.sum())]
    sub_first = np.where(dependent, _FIRST[rng.integers(0, len(_FIRST), n)], "").astype(object)
    sub_age = np.where(child, rng.integers(30, 61, n), people["age"] + rng.integers(-5, 6, n))
    sub_age = np.maximum(sub_age, 18)
    sub_dob = today - sub_age * 365 - rng.integers(0, 365, n) - 8
    return {"group": group, "sub_last": sub_last, "sub_first": sub_first, "sub_dob": sub_dob}


@dataclass
class _Visits:
    visit: np.ndarray  # per encounter: the patient's visit number
    authorized: np.ndarray  # per patient from here on
    poc_start: np.ndarray
    poc_end: np.ndarray
    injury_day: np.ndarray


def _visits(rng, pats: _Patients, enc: _Encounters) -> _Visits:
    """Visit numbers (a patient is seen at most once a day), authorized visits, plan of care
    and injury dates consistent with them."""
    n_enc, n_pat = len(enc.pat), len(pats.payer)
    pat, day = enc.pat, enc.day
    o = np.lexsort((day, pat))
    ordinal = np.empty(n_enc, dtype=np.int64)
    ordinal[o] = np.arange(n_enc) - _group_first(pat[o])
    p_count = np.bincount(pat, minlength=n_pat)
    p_firstday = np.full(n_pat, 7, dtype=np.int64)
    np.minimum.at(p_firstday, pat, day)
    base = pats.base
    authorized = np.maximum(
        rng.choice(np.array([12, 16, 20, 24, 30]), n_pat),
        base + p_count + rng.integers(0, 6, n_pat),
    )
    poc_start = (
        enc.first_day + p_firstday - base * 3 - np.where(base > 0, rng.integers(0, 3, n_pat), 0)
    )
    injury_day = poc_start - rng.integers(3, 60, n_pat)
    return _Visits(
        visit=base[pat] + ordinal + 1,
        authorized=authorized,
        poc_start=poc_start,
        poc_end=poc_start + 89,
        injury_day=injury_day,
    )


# ----------------------------------------------------------------------------- services


@dataclass
class _Services:
    """Per encounter: its payer's settings and its line slots (0: evaluation or CMT, 1-3: timed
    codes, 4: modality, 5: group therapy) with the timed slots' minutes and units."""

    payer: np.ndarray
    cls: np.ndarray
    cms: np.ndarray  # the payer counts units by the CMS total-time rule
    profile: np.ndarray
    is_assist: np.ndarray
    evaluate: np.ndarray
    slots: np.ndarray  # E x 6 code index, -1 = no line
    present: np.ndarray
    tmask: np.ndarray  # E x K timed slot present
    minutes: np.ndarray  # E x K
    units: np.ndarray  # E x K


def _services(rng, payers, pats: _Patients, enc: _Encounters, staff, visits) -> _Services:
    """Step 3 of the module notes: the codes of each encounter and its timed minutes."""
    n = len(enc.pat)
    payers = payers.reset_index(drop=True)
    is_chiro, disc, disc_i = enc.is_chiro, enc.disc, enc.disc_i
    e_payer = pats.payer[enc.pat]
    e_class = pats.cls[enc.pat]
    e_medicare = np.isin(e_class, _MEDICARE_LIKE)
    e_ffs = e_class == "medicare"
    e_cms = payers["unit_method"].to_numpy(dtype=object)[e_payer] == "cms"
    cap_col = payers["max_timed_units_per_day"]
    pay_cap = np.where(cap_col.isna(), 4, cap_col.fillna(4).astype(int).clip(1, 4))
    e_cap = pay_cap[e_payer]
    e_prof = pats.profile[enc.pat]
    cred = staff.cred[enc.clin]

    # slot 0: evaluation (PT/OT, first visit, by a PT/OT) or CMT (chiro)
    evaluate = (
        (~is_chiro) & (visits.visit == 1) & np.isin(cred, ("PT", "OT")) & (rng.random(n) < 0.9)
    )
    ev_lvl = rng.choice(3, n, p=[0.35, 0.45, 0.2])
    s0 = np.full(n, -1)
    s0[evaluate] = np.where(disc_i[evaluate] == 1, _CI["97165"], _CI["97161"]) + ev_lvl[evaluate]
    s0[is_chiro] = _PR_CMT_CODE[e_prof[is_chiro]]

    # slots 1-3: timed codes
    tc = np.full((n, _K), -1)
    tmask = np.zeros((n, _K), dtype=bool)
    ptot = ~is_chiro
    k_plain = rng.choice(np.arange(1, 4), n, p=[0.1, 0.4, 0.5])
    k_eval = rng.choice(np.arange(0, 3), n, p=[0.2, 0.5, 0.3])
    k = np.where(evaluate, k_eval, k_plain)
    w = _TIMED_W[disc_i]
    keys = rng.random((n, 5)) ** (1.0 / w)
    pos = np.argsort(-keys, axis=1, kind="stable")[:, :_K]
    cand = _TIMED_CAND[disc_i[:, None], pos]
    tmask[ptot] = np.arange(_K)[None, :] < k[ptot, None]
    tc[ptot] = cand[ptot]
    # chiro: 97140 on another region (not for Medicare FFS), some 97110
    ch_ok = is_chiro & ~e_ffs
    want140 = ch_ok & _PR_ALLOW140[e_prof] & (rng.random(n) < 0.6)
    want110 = ch_ok & (rng.random(n) < 0.45)
    tc[want140, 0] = _CI["97140"]
    tmask[want140, 0] = True
    tc[want110, 1] = _CI["97110"]
    tmask[want110, 1] = True
    hi = np.select([is_chiro, k >= 3, k == 2], [22, 24, 30], 38)
    minutes, units = _timed_minutes(rng, tmask, e_cms, e_cap, hi)
    tc[~tmask] = -1

    # slot 4: modality; slot 5: group therapy (PT)
    s4 = np.full(n, -1)
    has_mod = np.where(is_chiro, ch_ok & (rng.random(n) < 0.55), rng.random(n) < 0.55)
    kind = rng.choice(3, n, p=[0.35, 0.4, 0.25])  # hot pack, e-stim, traction
    traction_ok = _PR_TRACTION[e_prof] & (disc != "OT")
    kind = np.where((kind == 2) & ~traction_ok, 1, kind)
    kind = np.where((kind == 0) & e_medicare, 1, kind)  # 97010 is bundled (status B) at Medicare
    estim = np.where(e_medicare, _CI["G0283"], _CI["97014"])
    hot = np.where((disc == "OT") & (rng.random(n) < 0.5), _CI["97018"], _CI["97010"])
    s4[has_mod] = np.choose(kind, [hot, estim, np.full(n, _CI["97012"])])[has_mod]
    s5 = np.where((disc == "PT") & (rng.random(n) < 0.06), _CI["97150"], -1)

    slots = np.column_stack([s0, tc, s4, s5])
    present = slots >= 0
    n_lines = present.sum(axis=1)
    if n_lines.min() == 0:  # cannot happen by construction; keep every encounter billable
        empty = n_lines == 0
        slots[empty, 1] = _CI["97110"]
        present[empty, 1] = True
        tmask[empty, 0] = True
        minutes[empty, 0] = 23
        units = _units(minutes, tmask, e_cms)
    return _Services(
        payer=e_payer,
        cls=e_class,
        cms=e_cms,
        profile=e_prof,
        is_assist=np.isin(cred, ("PTA", "OTA")),
        evaluate=evaluate,
        slots=slots,
        present=present,
        tmask=tmask,
        minutes=minutes,
        units=units,
    )


@dataclass
class _Times:
    slack: np.ndarray  # E x K minutes documented beyond the charted minutes
    start: np.ndarray  # E x K minute of the day each timed slot starts
    end: np.ndarray


def _schedule(rng, enc: _Encounters, services: _Services, n_clinicians: int) -> _Times:
    """Each clinician's encounters one after the other from 07:00-08:00: one clinician's
    one-on-one intervals never overlap."""
    n = len(enc.pat)
    tmask, minutes, evaluate = services.tmask, services.minutes, services.evaluate
    clin, day = enc.clin, enc.day
    slack = np.where(tmask, rng.choice(np.array([0, 0, 0, 1, 2]), (n, _K)), 0)
    tdur = np.where(tmask, minutes + slack, 0)
    pre = np.where(
        evaluate, rng.integers(30, 46, n), np.where(enc.is_chiro, rng.integers(8, 16, n), 0)
    )
    dur = pre + tdur.sum(axis=1)
    gap = rng.integers(0, 11, n)
    tot = dur + gap
    day_start = (rng.integers(420, 481, (n_clinicians, 7)) // 5) * 5
    o = np.lexsort((enc.slot, day, clin))
    cs = np.cumsum(tot[o])
    excl = cs - tot[o]
    excl = excl - excl[_group_first(clin[o] * 7 + day[o])]
    e_start = np.empty(n, dtype=np.int64)
    e_start[o] = day_start[clin[o], day[o]] + excl + gap[o]
    if (e_start + dur).max() > 23 * 60 + 59:  # cannot happen: <= 7 visits of <= 131 min
        raise RuntimeError("schedule overflowed the day")
    start = e_start[:, None] + pre[:, None] + np.cumsum(tdur, axis=1) - tdur
    return _Times(slack=slack, start=start, end=start + tdur)


def _overlapping_same_patient_time(night: _ProblemNight, problem_rate: float) -> None:
    """A few visits (1 in 2,000 of the PT/OT visits with two timed codes, at least 2) whose
    second timed code starts before the first one ends: one clinician's overlapping time
    with one patient (TIME_OVERLAP_SAME_PATIENT; the overlap counts once, so the second line
    usually bills fewer units than charted: UNITS_CORRECTED). Its interval keeps its length and
    stays inside the visit, so no other patient's time is touched. Only on nights with
    problems; picked evenly, without a random draw (every other column stays as it was), and
    not listed in the problems frame (``PROBLEM_KINDS`` is the one-problem-per-encounter
    injection, drawn afterwards)."""
    if problem_rate == 0:
        return
    services, times, lines, col = night.services, night.times, night.lines, night.col
    both = np.flatnonzero(services.tmask[:, 0] & services.tmask[:, 1] & ~night.enc.is_chiro)
    k = min(len(both), max(2, len(both) // 2000))
    if k == 0:
        return
    e = both[np.linspace(0, len(both) - 1, k).round().astype(np.int64)]
    # slot 0 runs [s0, e0), slot 1 [e0, e1): slot 1 now starts half the shorter one's length
    # before e0 (a partial overlap, as 09:00-09:30 with 09:15-09:45)
    length = times.end[e, 1] - times.start[e, 1]
    shorter = np.minimum(times.end[e, 0] - times.start[e, 0], length)
    times.start[e, 1] = times.end[e, 0] - shorter // 2
    times.end[e, 1] = times.start[e, 1] + length
    li = np.flatnonzero(lines.timed & (lines.tcol == 1) & np.isin(lines.enc, e))
    col["start_time"][li] = _TIMES[times.start[lines.enc[li], 1]]
    col["end_time"][li] = _TIMES[times.end[lines.enc[li], 1]]


# ----------------------------------------------------------------------------- lines


@dataclass
class _Lines:
    """One row per service line, in encounter then slot order."""

    enc: np.ndarray  # encounter of the line
    slot: np.ndarray
    code: np.ndarray  # index into _CODE_LIST
    tcol: np.ndarray  # timed slot column (0..K-1) of the line's slot
    timed: np.ndarray
    units: np.ndarray
    minutes: np.ndarray
    pat: np.ndarray
    profile: np.ndarray
    cls: np.ndarray
    is140: np.ndarray
    is_cmt: np.ndarray
    chiro: np.ndarray

    def __len__(self) -> int:
        return len(self.enc)


def _lines(enc: _Encounters, pats: _Patients, services: _Services) -> _Lines:
    le, ls = np.nonzero(services.present)
    code_i = services.slots[le, ls]
    timed_slot = (ls >= 1) & (ls <= _K)
    tcol = np.clip(ls - 1, 0, _K - 1)
    l_timed = timed_slot & services.tmask[le, tcol]
    return _Lines(
        enc=le,
        slot=ls,
        code=code_i,
        tcol=tcol,
        timed=l_timed,
        units=np.where(l_timed, services.units[le, tcol], 1),
        minutes=services.minutes[le, tcol],
        pat=enc.pat[le],
        profile=services.profile[le],
        cls=services.cls[le],
        is140=code_i == _CI["97140"],
        is_cmt=_CMT[code_i],
        chiro=enc.is_chiro[le],
    )


def _identity_columns(
    seed, run_date, payers, teams, enc, staff, pats, visits, services, lines
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """The columns naming the encounter, patient, coverage, clinician and code of each line
    (no random draws); also the encounter ids."""
    le, lp, lc = lines.enc, lines.pat, enc.clin[lines.enc]
    n_enc = len(enc.pat)
    col: dict[str, np.ndarray] = {}
    col["line_id"] = _fixed(f"L{run_date:%y%m%d}-{seed % 10**8}-", np.arange(1, len(le) + 1), 9)
    enc_ids = _fixed(
        f"E{run_date:%y%m%d}-{seed % 10**8}-", np.arange(1, n_enc + 1), max(7, len(str(n_enc)))
    )
    col["encounter_id"] = enc_ids[le]
    col["clinic_id"] = teams.clinic[enc.team[le]]
    col["date_of_service"] = _date_strings(enc.first_day + enc.day)[le]
    col["patient_id"] = (teams.clinic[pats.team] + "-" + _fixed("P", np.arange(len(pats.team)), 7))[
        lp
    ]
    col["patient_last_name"] = pats.last[lp]
    col["patient_first_name"] = pats.first[lp]
    col["patient_dob"] = _date_strings(pats.dob)[lp]
    col["patient_sex"] = pats.sex[lp]
    col["patient_address"] = pats.addr[lp]
    col["patient_city"] = pats.city[lp]
    col["patient_state"] = pats.state[lp]
    col["patient_zip"] = pats.zip[lp]
    payer_ids = payers.reset_index(drop=True)["payer_id"].to_numpy(dtype=object)
    col["payer_id"] = payer_ids[services.payer][le]
    col["member_id"] = pats.member[lp]
    col["subscriber_relationship"] = pats.rel[lp]
    col["subscriber_last_name"] = pats.sub_last[lp]
    col["subscriber_first_name"] = pats.sub_first[lp]
    dependent = pats.dependent
    col["subscriber_dob"] = np.where(dependent, _date_strings(pats.sub_dob), "").astype(object)[lp]
    col["group_number"] = pats.group[lp]
    col["prior_auth_number"] = pats.auth[lp]
    authorized = np.where(pats.has_auth, _ints(visits.authorized), "").astype(object)
    col["authorized_visits"] = authorized[lp]
    col["visit_number"] = _ints(visits.visit)[le]
    poc_start = np.where(pats.has_poc, _date_strings(visits.poc_start), "").astype(object)
    col["plan_of_care_start"] = poc_start[lp]
    poc_end = np.where(pats.has_poc, _date_strings(visits.poc_end), "").astype(object)
    col["plan_of_care_end"] = poc_end[lp]
    col["rendering_npi"] = staff.npi[lc]
    col["rendering_last_name"] = staff.last[lc]
    col["rendering_first_name"] = staff.first[lc]
    col["rendering_credential"] = staff.cred[lc]
    col["discipline"] = enc.disc[le]
    col["cpt_code"] = _CODE_ARR[lines.code]
    return col, enc_ids


@dataclass
class _Modifiers:
    """Per line, each modifier family ("" = none); joined with ';' into ``modifiers``."""

    therapy: np.ndarray
    assistant: np.ndarray
    distinct: np.ndarray
    at: np.ndarray


def _modifiers(rng, ref, enc: _Encounters, services: _Services, lines: _Lines) -> _Modifiers:
    """Step 4 of the module notes: therapy, assistant, distinct-service and AT modifiers."""
    le, code_i, n = lines.enc, lines.code, len(lines)
    payers = ref.payers.reset_index(drop=True)
    always = ref.cpt["always_therapy"].reindex(_CODE_LIST).fillna(False).to_numpy(dtype=bool)
    l_always = always[code_i] & ~lines.chiro
    ther = np.where(enc.disc[le] == "OT", "GO", "GP").astype(object)
    m_ther = np.where(l_always & (rng.random(n) < 0.97), ther, "").astype(object)
    l_assist = services.is_assist[le] & l_always
    p_cq = np.where(np.isin(lines.cls, _MEDICARE_LIKE), 0.9, 0.4)
    m_asst = np.where(
        l_assist & (rng.random(n) < p_cq), np.where(enc.disc[le] == "OT", "CO", "CQ"), ""
    ).astype(object)
    has = np.zeros((len(enc.pat), len(_CODE_LIST)), dtype=bool)
    has[le, code_i] = True
    distinct = np.zeros(n, dtype=bool)
    xs = np.zeros(n, dtype=bool)
    x_payer = payers["distinct_modifier"].to_numpy(dtype=object)[services.payer] == "x"
    for _, pr in ref.ncci.iterrows():
        c1, c2 = pr["column1"], pr["column2"]
        if pr["modifier_indicator"] != "1" or c1 not in _CI or c2 not in _CI:
            continue
        eff, dele = pr["effective_date"], pr["deletion_date"]
        active = np.array(
            [eff <= d and (pd.isna(dele) or d < dele) for d in enc.day_dates], dtype=bool
        )
        enc_hit = has[:, _CI[c1]] & has[:, _CI[c2]] & active[enc.day]
        hit = enc_hit[le] & (code_i == _CI[c2])
        distinct |= hit
        if c1 in ("98940", "98941", "98942"):
            xs |= hit & x_payer[le]
    return _Modifiers(
        therapy=m_ther,
        assistant=m_asst,
        distinct=np.where(distinct, np.where(xs, "XS", "59"), "").astype(object),
        at=np.where(lines.is_cmt & np.isin(lines.cls, _MEDICARE_LIKE), "AT", "").astype(object),
    )


def _clinical_columns(
    rng, col: dict[str, np.ndarray], teams, enc, pats, visits, times: _Times, lines: _Lines
) -> tuple[np.ndarray, np.ndarray]:
    """Times, units, diagnoses, regions, techniques, goals and the other clinical columns,
    added to ``col``. Returns each line's fee per unit and its charge, in cents (the charge
    column is written after the problems, which may change units)."""
    le, tcol, lprof, n = lines.enc, lines.tcol, lines.profile, len(lines)
    l_timed, is140, is_cmt = lines.timed, lines.is140, lines.is_cmt
    col["minutes"] = np.where(l_timed, _ints(lines.minutes), "").astype(object)
    col["start_time"] = np.where(l_timed, _TIMES[np.clip(times.start[le, tcol], 0, 1439)], "")
    col["end_time"] = np.where(l_timed, _TIMES[np.clip(times.end[le, tcol], 0, 1439)], "")
    col["units_charted"] = _ints(lines.units)
    fee = np.round(_FEE_CENTS[lines.code] * teams.mult[enc.team[le]]).astype(np.int64)
    charge_cents = fee * lines.units
    col["diagnosis_codes"] = _PR_DX[lprof]
    two = (_PR_NDX[lprof] >= 2) & (rng.random(n) < 0.5)
    ptr = np.where(two, "1;2", "1").astype(object)
    ptr[is_cmt] = _PR_CMT_PTR[lprof[is_cmt]]
    chiro140 = is140 & lines.chiro
    ptr[chiro140] = _PR_140_PTR[lprof[chiro140]]
    col["diagnosis_pointers"] = ptr
    region = np.full(n, "", dtype=object)
    region[is140] = _PR_REGION[lprof[is140]]
    region[is_cmt] = _PR_CMT_REG[lprof[is_cmt]]
    col["body_region"] = region
    tech = np.full(n, "", dtype=object)
    pt140 = is140 & ~lines.chiro
    tech[pt140] = rng.choice(_TECH_PT, int(pt140.sum()), p=_TECH_PT_W)
    override = pt140 & (_PR_TECH[lprof] != "")
    tech[override] = _PR_TECH[lprof[override]]
    tech[chiro140] = rng.choice(_TECH_CHIRO, int(chiro140.sum()))
    col["technique"] = tech
    goal = l_timed & (is140 | (rng.random(n) < 0.6))
    col["goal_id"] = np.where(goal, _GOALS[rng.integers(0, len(_GOALS), n)], "").astype(object)
    respond = l_timed & (is140 | (rng.random(n) < 0.35))
    resp = _names(rng, n, _RESPONSES, _RESPONSES_SPECIAL, 0.03)
    col["patient_response"] = np.where(respond, resp, "").astype(object)
    col["group_size"] = np.where(lines.code == _CI["97150"], "3", "1").astype(object)
    pos12 = (~enc.is_chiro) & (rng.random(len(enc.pat)) < 0.04)
    col["place_of_service"] = np.where(pos12, "12", "11").astype(object)[le]
    injury = np.where(pats.injury, _date_strings(visits.injury_day), "").astype(object)
    col["injury_date"] = injury[lines.pat]
    return fee, charge_cents


# ----------------------------------------------------------------------------- problems


@dataclass
class _ProblemNight:
    """The night's columns and what the problem injectors need to change them consistently
    (a changed unit count changes the charge; a removed modifier is removed before joining)."""

    rng: np.random.Generator
    run_date: dt.date
    ref: reference.Reference
    col: dict[str, np.ndarray]
    enc_ids: np.ndarray
    enc: _Encounters
    services: _Services
    times: _Times
    lines: _Lines
    mods: _Modifiers
    fee: np.ndarray
    charge_cents: np.ndarray
    rows: list[dict[str, np.ndarray]] = field(default_factory=list)
    dup_lines: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    bad_charge_lines: np.ndarray | None = None
    # encounters an issue-14 case changed (the issue-15 cases keep off them)
    cased: list[np.ndarray] = field(default_factory=list)

    def log(self, encounters, kind: str, lines, column, value) -> None:
        """One row of the problems frame per encounter in ``encounters``."""
        n = len(encounters)
        self.rows.append(
            {
                "encounter_id": self.enc_ids[encounters],
                "line_id": self.col["line_id"][lines],
                "kind": np.full(n, kind, dtype=object),
                "column": np.broadcast_to(np.asarray(column, dtype=object), (n,)).copy(),
                "value": np.asarray(value, dtype=object),
            }
        )


@dataclass
class _Targets:
    """Per problem encounter (sorted): lines a problem may land on (-1 = none there)."""

    pe: np.ndarray  # the problem encounters
    first_line: np.ndarray
    f_timed: np.ndarray  # first timed line
    f_140: np.ndarray  # first 97140 line
    f_ther: np.ndarray  # first line with a therapy modifier the payer requires
    r_line: np.ndarray  # first timed line, else the first line
    r_val: np.ndarray  # a uniform draw per problem encounter


def _inject_problems(night: _ProblemNight, problem_rate: float):
    """Step 5 of the module notes. Returns the problem rows and the lines to duplicate; writes
    ``charge_amount`` (after any unit change)."""
    n_enc = len(night.enc.pat)
    n_prob = int(round(problem_rate * n_enc))
    if n_prob:
        targets, pick = _problem_targets(night, n_prob)
        for i, kind in enumerate(PROBLEM_KINDS):
            sel = pick == i
            if sel.any():
                _INJECTORS[kind](night, targets, sel, kind)
        _charge_and_filing_cases(night, targets)
    night.col["charge_amount"] = _money(night.charge_cents)
    if night.bad_charge_lines is not None:
        _spoil_charges(night)
    return night.rows, night.dup_lines


def _problem_targets(night: _ProblemNight, n_prob: int) -> tuple[_Targets, np.ndarray]:
    """The problem encounters, their candidate lines, and which kind each one gets (one a
    kind it can show: a timed-line problem needs a timed line)."""
    rng, le, n_enc = night.rng, night.lines.enc, len(night.enc.pat)
    pe = np.sort(rng.choice(n_enc, n_prob, replace=False))
    first_line = np.searchsorted(le, np.arange(n_enc))[pe]

    def first_where(mask: np.ndarray) -> np.ndarray:
        """First line of each problem encounter where mask holds (-1 if none)."""
        out = np.full(n_enc, -1)
        idx = np.flatnonzero(mask)
        enc, first = np.unique(le[idx], return_index=True)
        out[enc] = idx[first]
        return out[pe]

    f_timed = first_where(night.lines.timed)
    f_140 = first_where(night.lines.is140)
    payers = night.ref.payers.reset_index(drop=True)
    req_mod = payers["requires_therapy_modifiers"].to_numpy(dtype=bool)[night.services.payer]
    f_ther = first_where((night.mods.therapy != "") & req_mod[le])
    n_timed = night.services.tmask.sum(axis=1)[pe]
    elig = np.ones((n_prob, len(PROBLEM_KINDS)), dtype=bool)
    ki = {k: i for i, k in enumerate(PROBLEM_KINDS)}
    for name in ("missing_minutes", "negative_minutes", "end_before_start"):
        elig[:, ki[name]] = f_timed >= 0
    elig[:, ki["missing_therapy_modifier"]] = f_ther >= 0
    elig[:, ki["lone_timed_under_8"]] = n_timed == 1
    elig[:, ki["manual_without_technique"]] = f_140 >= 0
    pick = np.argmax(rng.random(elig.shape) * elig, axis=1)
    targets = _Targets(
        pe=pe,
        first_line=first_line,
        f_timed=f_timed,
        f_140=f_140,
        f_ther=f_ther,
        r_line=np.where(f_timed >= 0, f_timed, first_line),
        r_val=rng.random(n_prob),
    )
    return targets, pick


def _missing_minutes(night: _ProblemNight, t: _Targets, sel: np.ndarray, kind: str) -> None:
    li = t.f_timed[sel]
    night.col["minutes"][li] = ""
    night.log(t.pe[sel], kind, li, "minutes", night.col["minutes"][li])


def _negative_minutes(night: _ProblemNight, t: _Targets, sel: np.ndarray, kind: str) -> None:
    li = t.f_timed[sel]
    night.col["minutes"][li] = "-" + night.col["minutes"][li]
    night.log(t.pe[sel], kind, li, "minutes", night.col["minutes"][li])


def _end_before_start(night: _ProblemNight, t: _Targets, sel: np.ndarray, kind: str) -> None:
    li = t.f_timed[sel]
    col = night.col
    s, e = col["start_time"][li].copy(), col["end_time"][li].copy()
    col["start_time"][li], col["end_time"][li] = e, s
    night.log(t.pe[sel], kind, li, "start_time", col["start_time"][li])


def _units_off(night: _ProblemNight, t: _Targets, sel: np.ndarray, kind: str) -> None:
    li = t.r_line[sel]
    units = night.lines.units[li]
    up = (units <= 1) | (t.r_val[sel] < 0.5)
    new_u = np.where(up, units + 1, units - 1)
    night.col["units_charted"][li] = _ints(new_u)
    night.charge_cents[li] = night.fee[li] * new_u
    night.log(t.pe[sel], kind, li, "units_charted", night.col["units_charted"][li])


def _lone_timed_under_8(night: _ProblemNight, t: _Targets, sel: np.ndarray, kind: str) -> None:
    li = t.f_timed[sel]
    col, le, tcol = night.col, night.lines.enc, night.lines.tcol
    short = night.rng.integers(3, 8, int(sel.sum()))
    col["minutes"][li] = _ints(short)
    start_min = night.times.start[le[li], tcol[li]]
    col["end_time"][li] = _TIMES[start_min + short + night.times.slack[le[li], tcol[li]]]
    col["units_charted"][li] = "1"
    night.charge_cents[li] = night.fee[li]
    night.log(t.pe[sel], kind, li, "minutes", col["minutes"][li])


def _missing_therapy_modifier(night: _ProblemNight, t: _Targets, sel, kind: str) -> None:
    li = t.f_ther[sel]
    night.mods.therapy[li] = ""
    night.log(t.pe[sel], kind, li, "modifiers", np.full(int(sel.sum()), "", dtype=object))


def _manual_without_technique(night: _ProblemNight, t: _Targets, sel, kind: str) -> None:
    li = t.f_140[sel]
    night.col["technique"][li] = ""
    night.log(t.pe[sel], kind, li, "technique", night.col["technique"][li])


def _unknown_value(night: _ProblemNight, t: _Targets, sel: np.ndarray, kind: str) -> None:
    """unknown_payer, unknown_clinic, bad_date: one value on every line of the encounter."""
    year = night.run_date.year
    column, pool = {
        "unknown_payer": ("payer_id", ["HUM77", "UHC99", "AETNA5", "XPAY01"]),
        "unknown_clinic": ("clinic_id", ["CLN99", "CLN7", "CLNX1"]),
        "bad_date": (
            "date_of_service",
            [f"{year}-13-45", f"{year}-02-30", f"{year}-00-10", f"{year}-1-32"],
        ),
    }[kind]
    known = set(night.ref.payers.index) | set(night.ref.clinics.index)
    pool = np.array([v for v in pool if v not in known], dtype=object)
    vals = pool[night.rng.integers(0, len(pool), int(sel.sum()))]
    le = night.lines.enc
    per_enc = np.full(len(night.enc.pat), "", dtype=object)
    per_enc[t.pe[sel]] = vals
    li = np.flatnonzero(np.isin(le, t.pe[sel]))
    night.col[column][li] = per_enc[le[li]]
    night.log(t.pe[sel], kind, t.first_line[sel], column, vals)


def _duplicate_line_id(night: _ProblemNight, t: _Targets, sel: np.ndarray, kind: str) -> None:
    li = t.first_line[sel]
    night.dup_lines = li  # copied when the frame is built
    night.log(t.pe[sel], kind, li, "line_id", night.col["line_id"][li])


def _non_numeric_charge(night: _ProblemNight, t: _Targets, sel: np.ndarray, kind: str) -> None:
    li = t.r_line[sel]
    night.bad_charge_lines = li  # spoiled once the charges are written (_spoil_charges)
    night.log(t.pe[sel], kind, li, "charge_amount", np.full(int(sel.sum()), "", dtype=object))


def _missing_required_field(night: _ProblemNight, t: _Targets, sel, kind: str) -> None:
    li = t.first_line[sel]
    fields = np.array(
        [
            "patient_last_name",
            "patient_last_name",
            "patient_first_name",
            "member_id",
            "diagnosis_codes",
            "place_of_service",
        ],
        dtype=object,
    )
    which = fields[night.rng.integers(0, len(fields), int(sel.sum()))]
    for f in sorted(set(which)):
        night.col[f][li[which == f]] = ""
    night.log(t.pe[sel], kind, li, which, np.full(int(sel.sum()), "", dtype=object))


def _spoil_charges(night: _ProblemNight) -> None:
    """The non_numeric_charge lines: "$45.00", "45,00", "N/A" or "TBD"; the problem rows
    record the value written."""
    li = night.bad_charge_lines
    good = night.col["charge_amount"][li]
    style = night.rng.integers(0, 4, len(li))
    bad = np.select(
        [style == 0, style == 1, style == 2],
        ["$" + good, np.array([g.replace(".", ",") for g in good], dtype=object), "N/A"],
        "TBD",
    ).astype(object)
    night.col["charge_amount"][li] = bad
    for row in night.rows:
        if row["kind"][0] == "non_numeric_charge":
            row["value"] = bad


def _pick_evenly(mask: np.ndarray, free: np.ndarray, k: int) -> np.ndarray:
    """Up to ``k`` of the encounters where ``mask`` and ``free`` hold, evenly spread over them
    (no random draw: the rest of the night is drawn as before); they are then not free."""
    idx = np.flatnonzero(mask & free)
    if len(idx) > k:
        idx = idx[np.linspace(0, len(idx) - 1, k).round().astype(np.int64)]
    free[idx] = False
    return idx


def _charge_and_filing_cases(night: _ProblemNight, t: _Targets) -> None:
    """A few encounters (1 in 5,000, at least one) of each charge and time-limit case of issue
    14, among those without another problem, picked evenly (no random draw: every other column
    stays as it was): a claim whose lines all charge $0.00 (CHARGE_INVALID); a line at 4x its
    fee_schedule.csv unit_charge (CHARGE_ABOVE_SCHEDULE); a timed line of a schedule row
    charted one unit over, its charge following the charted units (UNITS_CORRECTED, then the
    charge follows the schedule: CHARGE_CORRECTED); a claim of a payer whose timely filing is in
    days, dated that many days and 10 more before its date (DATE_INVALID). Not listed in the
    problems frame (``PROBLEM_KINDS`` is the one-problem-per-encounter injection)."""
    enc, lines, col, ref = night.enc, night.lines, night.col, night.ref
    n_enc, le = len(enc.pat), lines.enc
    k = max(1, n_enc // 5000)
    free = np.ones(n_enc, dtype=bool)
    free[t.pe] = False

    def pick(mask: np.ndarray) -> np.ndarray:
        return _pick_evenly(mask, free, k)

    known, line_key, unit_cents = _scheduled_lines(night, free)
    # a claim of $0.00
    zero = pick(np.ones(n_enc, dtype=bool))
    night.charge_cents[np.isin(le, zero)] = 0
    # a line at 4x the schedule's unit charge
    li = _first_line_where(le, known, pick(np.bincount(le[known], minlength=n_enc) > 0))
    night.charge_cents[li] = 4 * unit_cents.loc[line_key[li]].to_numpy() * lines.units[li]
    # a timed line charted one unit over, charged for the charted units
    timed = known & lines.timed
    li = _first_line_where(le, timed, pick(np.bincount(le[timed], minlength=n_enc) > 0))
    col["units_charted"][li] = _ints(lines.units[li] + 1)
    night.charge_cents[li] = night.fee[li] * (lines.units[li] + 1)
    # past a payer's timely filing in days (dated before the night: no injury date to pass)
    payers = ref.payers.reset_index(drop=True)
    days = np.where(
        payers["timely_filing_unit"].to_numpy(dtype=object) == "days",
        payers["timely_filing_count"].to_numpy(dtype=np.int64),
        -1,
    )[night.services.payer]
    no_injury = np.bincount(le, weights=col["injury_date"] != "", minlength=n_enc) == 0
    late = pick((days > 0) & no_injury)
    on = np.isin(le, late)
    night.cased.append(np.flatnonzero(~free))
    col["date_of_service"][on] = _date_strings(enc.first_day + enc.day[le[on]] - days[le[on]] - 10)
    for c in ("plan_of_care_start", "plan_of_care_end", "initial_treatment_date", "accident_date"):
        given = on & (col[c] != "")
        shift = (days[le[given]] + 10).astype(int)
        col[c][given] = _date_strings(
            col[c][given].astype("datetime64[D]").astype(np.int64) - shift
        )


def _scheduled_lines(night: _ProblemNight, free: np.ndarray):
    """For ``_charge_and_filing_cases``: per line whether a fee_schedule.csv row with a unit charge
    in effect over the whole night (the latest of its key) covers its clinic, payer class and
    code, the line's key as an integer, and the unit charge in cents by key (clinics are read
    from ``free`` encounters: a problem encounter may carry an unknown clinic)."""
    enc, lines, col, ref = night.enc, night.lines, night.col, night.ref
    n_enc, le = len(enc.pat), lines.enc
    fees = ref.fee_schedule.sort_values("effective_date", kind="stable", na_position="first")
    eff = fees["effective_date"].to_numpy(dtype="datetime64[D]")
    fees = fees[fees["unit_charge"].notna().to_numpy() & ~(eff > np.datetime64(enc.day_dates[0]))]
    clinics, codes = pd.Index(ref.clinics.index), pd.Index(_CODE_LIST)
    classes = pd.Index(ref.payers["payer_class"].unique())
    first = np.searchsorted(le, np.arange(n_enc))  # each encounter's first line
    team_clinic = np.full(int(enc.team.max()) + 1, -1)
    seen = np.flatnonzero(free)
    team_clinic[enc.team[seen]] = clinics.get_indexer(col["clinic_id"][first[seen]])
    payer_class = classes.get_indexer(ref.payers["payer_class"].to_numpy(dtype=object))
    l_clinic = team_clinic[enc.team[le]]
    l_class = payer_class[night.services.payer[le]]
    line_key = (l_clinic * len(classes) + l_class) * len(codes) + lines.code
    parts = [
        clinics.get_indexer(fees["clinic_id"]),
        classes.get_indexer(fees["payer_class"]),
        codes.get_indexer(fees["code"]),
    ]
    usable = np.logical_and.reduce([p >= 0 for p in parts])
    row_key = ((parts[0] * len(classes) + parts[1]) * len(codes) + parts[2])[usable]
    unit_cents = pd.Series(
        np.round(fees["unit_charge"].to_numpy()[usable] * 100).astype(np.int64), index=row_key
    )
    unit_cents = unit_cents[~unit_cents.index.duplicated(keep="last")]
    return (l_clinic >= 0) & np.isin(line_key, row_key), line_key, unit_cents


def _first_line_where(le: np.ndarray, mask: np.ndarray, encounters: np.ndarray) -> np.ndarray:
    """The first line of each of ``encounters`` (sorted) where ``mask`` holds."""
    idx = np.flatnonzero(mask & np.isin(le, encounters))
    _, first = np.unique(le[idx], return_index=True)
    return idx[first]


_INJECTORS = {
    "missing_minutes": _missing_minutes,
    "units_off": _units_off,
    "missing_therapy_modifier": _missing_therapy_modifier,
    "unknown_payer": _unknown_value,
    "unknown_clinic": _unknown_value,
    "bad_date": _unknown_value,
    "negative_minutes": _negative_minutes,
    "duplicate_line_id": _duplicate_line_id,
    "lone_timed_under_8": _lone_timed_under_8,
    "non_numeric_charge": _non_numeric_charge,
    "end_before_start": _end_before_start,
    "manual_without_technique": _manual_without_technique,
    "missing_required_field": _missing_required_field,
}
assert set(_INJECTORS) == set(PROBLEM_KINDS)


def _every(mask: np.ndarray, share: int, least: int) -> np.ndarray:
    """About one in ``share`` of the positions where ``mask`` holds (at least ``least``, as
    many as there are), spread evenly over the night: picked without a random draw, so the
    rest of the night is the night it was."""
    idx = np.flatnonzero(mask)
    k = min(len(idx), max(least, len(idx) // share))
    return idx[np.linspace(0, len(idx) - 1, k).round().astype(np.int64)] if k else idx


def _coverage_and_reported_edit_cases(
    night: _ProblemNight,
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """A few lines of each class of the "edits apply to what is reported" rules, on
    encounters without a problem (a tiny share of the night; no random draw):

    - a chiropractor's 97140 to Medicare (8 minutes in the encounter's own CMT window, so 1
      unit): a new line after a CMT-only visit; every other one carries XS and GY. Not
      covered (DC_SERVICE_NOT_COVERED): not billed, or billed with GY; the CMT goes out.
    - 97010 with GY to Medicare in place of a G0283 (CODE_NOT_COVERED): billed with GY.
    - a chiropractor's lone timed 97140 beside CMT cut to 5 minutes, charted 1 unit and
      without its 59/XS: 0 units, so not reported, and no NCCI pair or region edit fires.

    Changes ``night.col`` in place; returns the new lines as the lines they copy (each goes
    right after its source, see ``_frames``) and the columns that differ from the copy."""
    col, lines, services, times = night.col, night.lines, night.services, night.times
    le = lines.enc
    problem = np.zeros(len(night.enc.pat), dtype=bool)
    if night.rows:
        done = np.concatenate([r["encounter_id"] for r in night.rows])
        # a hashed lookup (np.isin on text compares every pair)
        problem[pd.Index(night.enc_ids, dtype=object).get_indexer(done)] = True
    n_lines = np.bincount(le, minlength=len(problem))
    ok = ~problem[le]
    medicare = lines.cls == "medicare"

    # 97010 with GY to Medicare, where a G0283 was
    d = _every(ok & medicare & (lines.code == _CI["G0283"]), 50, 2)
    col["cpt_code"][d] = "97010"
    col["modifiers"][d] = np.where(col["modifiers"][d] == "", "GY", col["modifiers"][d] + ";GY")
    col["charge_amount"][d] = _money(
        night.fee[d] * _FEE_CENTS[_CI["97010"]] // _FEE_CENTS[_CI["G0283"]]
    )

    # a lone timed 97140 of 5 minutes beside CMT (not Medicare: there a DC's 97140 is excluded)
    n_timed = services.tmask.sum(axis=1)
    z = _every(ok & lines.chiro & lines.is140 & ~medicare & (n_timed[le] == 1), 50, 2)
    col["minutes"][z] = "5"
    col["end_time"][z] = _TIMES[times.start[le[z], lines.tcol[z]] + 5]
    col["units_charted"][z] = "1"
    col["modifiers"][z] = ""
    col["charge_amount"][z] = _money(night.fee[z])

    # a DC's 97140 to Medicare: a copy of the CMT line of a CMT-only visit, made a 97140
    src = _every(
        ok & lines.is_cmt & medicare & (n_lines[le] == 1) & _PR_ALLOW140[lines.profile], 50, 4
    )
    k = len(src)
    new: dict[str, np.ndarray] = {}
    window_end = times.start[le[src], 0]  # CMT-only: the end of the visit's 8-15 minutes
    new["line_id"] = col["line_id"][src] + "M"
    new["cpt_code"] = np.full(k, "97140", dtype=object)
    new["minutes"] = np.full(k, "8", dtype=object)
    new["start_time"] = _TIMES[window_end - 8]
    new["end_time"] = _TIMES[window_end]
    new["units_charted"] = np.full(k, "1", dtype=object)
    fee = night.fee[src] * _FEE_CENTS[_CI["97140"]] // _FEE_CENTS[lines.code[src]]
    new["charge_amount"] = _money(fee)
    new["body_region"] = _PR_REGION[lines.profile[src]]
    new["diagnosis_pointers"] = _PR_140_PTR[lines.profile[src]]
    new["technique"] = np.full(k, _TECH_CHIRO[0], dtype=object)
    new["goal_id"] = np.full(k, _GOALS[0], dtype=object)
    new["patient_response"] = np.full(k, _RESPONSES[0], dtype=object)
    # billed for the denial, it is still reported: XS (another region than the CMT's) too
    new["modifiers"] = np.where(np.arange(k) % 2 == 1, "XS;GY", "").astype(object)
    night.cased.append(le[np.concatenate([d, z, src])])
    return src, new


def _frames(
    col: dict[str, np.ndarray],
    rows: list[dict[str, np.ndarray]],
    dup_lines,
    added: tuple[np.ndarray, dict[str, np.ndarray]] | None = None,
):
    """The extract (a duplicated line right after its original; an ``added`` line, a copy of
    a line with some columns changed, likewise) and the problems frame."""
    src, new = added if added is not None else (np.zeros(0, dtype=np.int64), {})
    if len(dup_lines) or len(src):
        n_lines = len(col["line_id"])
        copies = np.concatenate([np.arange(n_lines), dup_lines, src])
        order = np.sort(copies, kind="stable")  # one reorder of the night's columns
        col = {c: v[order] for c, v in col.items()}
        at = np.searchsorted(order, src, side="right") - 1  # the copy: the last of its line
        for c, values in new.items():
            col[c][at] = values
    n_rows = len(col["line_id"])
    empty = np.full(n_rows, "", dtype=object)
    df = pd.DataFrame({c: col[c] if c in col else empty for c in layout.COLUMN_NAMES})
    if rows:
        problems = pd.DataFrame({c: np.concatenate([r[c] for r in rows]) for c in _PROBLEM_COLUMNS})
        problems = problems.sort_values(["encounter_id", "kind"], kind="stable").reset_index(
            drop=True
        )
    else:
        problems = pd.DataFrame(columns=_PROBLEM_COLUMNS)
    return df, problems


# ----------------------------------------------------------------------------- issue 14

# codes a clinic may bill that the code table lacks: unlisted PM&R and therapeutic procedures,
# and a timed HCPCS code of the UHC list (billing-rules.md 2.1) not in cpt_codes.csv
_UNKNOWN_CODES = ("97799", "97139", "S8948")
_THERAPY_MODIFIER_OF = {"PT": "GP", "OT": "GO", "SLP": "GN"}


def _duplicate_charges_and_unknown_codes(
    df: pd.DataFrame, problems: pd.DataFrame, seed: int, problem_rate: float, ref
) -> pd.DataFrame:
    """A few lines of two classes of issue 14, each in an encounter of its own that has no
    other problem, about half as often as one problem kind (none when ``problem_rate`` is 0):

    - a charge charted twice: a line copied under a new line_id (``-C``) right after it,
      every other copy with the patient id in lower case between blanks (DUPLICATE_CHARGE
      quarantines the copy; the visit is billed as before);
    - a procedure code the code table lacks: an untimed 1-unit line added to the encounter
      (``-U``; CODE_UNKNOWN holds its claim).

    Drawn from a random stream of its own, so the rest of the night is drawn as before; the
    problems frame does not list these (its kinds are ``PROBLEM_KINDS``)."""
    enc_codes, enc_ids = pd.factorize(df["encounter_id"])
    clean = np.flatnonzero(~np.asarray(enc_ids.isin(problems["encounter_id"]), dtype=bool))
    n_each = min(int(round(problem_rate * len(enc_ids) / len(PROBLEM_KINDS) / 2)), len(clean) // 2)
    codes = np.array([c for c in _UNKNOWN_CODES if c not in ref.cpt.index], dtype=object)
    if n_each == 0 or len(codes) == 0:
        return df
    rng = np.random.default_rng([seed, 14])
    pick = rng.choice(clean, 2 * n_each, replace=False)
    first = np.unique(enc_codes, return_index=True)[1]  # an encounter's lines are together
    count = np.bincount(enc_codes)
    dup_enc, unk_enc = pick[:n_each], pick[n_each:]
    at = first[dup_enc] + (rng.random(n_each) * count[dup_enc]).astype(np.int64)
    copies = df.iloc[at].copy()
    copies["line_id"] = copies["line_id"] + "-C"
    other = np.arange(n_each) % 2 == 1
    copies.loc[copies.index[other], "patient_id"] = (
        " " + copies["patient_id"][other].str.lower() + " "
    )
    unknown = df.iloc[first[unk_enc]].copy()
    unknown["line_id"] = unknown["line_id"] + "-U"
    unknown["cpt_code"] = codes[rng.integers(0, len(codes), n_each)]
    unknown["modifiers"] = unknown["discipline"].map(_THERAPY_MODIFIER_OF).fillna("")
    blank = ["minutes", "start_time", "end_time", "body_region", "technique", "goal_id"]
    unknown[blank] = ""
    unknown[["units_charted", "group_size", "charge_amount"]] = ["1", "1", "35.00"]
    # each added line right after the line it was made from
    key = np.concatenate([np.arange(len(df)) * 2, at * 2 + 1, first[unk_enc] * 2 + 1])
    out = pd.concat([df, copies, unknown], ignore_index=True)
    return out.iloc[np.argsort(key, kind="stable")].reset_index(drop=True)


# constant-attendance modalities (one-on-one, timed) and their charge per unit, in cents
_ATTENDED_FEE_CENTS = {"97035": 3200, "97033": 3800}


def _same_code_twice_a_day_and_modalities(
    df: pd.DataFrame, night: _ProblemNight, problem_rate: float
) -> pd.DataFrame:
    """Two classes of the units rules (docs/rules.md "Units"), each on about one in 2,000
    visits (at least 2), picked evenly among the PT/OT visits that are the last of their
    clinician's day and that no other case touched (none when ``problem_rate`` is 0):

    - a second visit that day: a new encounter (``-2``) of the same patient, clinician, clinic
      and payer, an hour after the clinician's last visit, with one 10-minute 97110 line
      charted 1 unit. The day's 97110 minutes pool per clinic, so one of the two lines bills
      fewer units than charted (UNITS_ZERO or UNITS_CORRECTED);
    - a constant-attendance modality (97035 or 97033 in turn, one-on-one and timed) of 15
      minutes added to a PT visit (``-A``) right after its last timed code: exactly one more
      unit, within the payer's daily cap, so no other line's units change.

    Both come after the clinician's last time of the day, so no one's time overlaps. Works on
    the finished extract with no random draw, so every other line stays as it was; the
    problems frame does not list these (its kinds are ``PROBLEM_KINDS``)."""
    if problem_rate == 0 or len(df) == 0:
        return df
    enc, services, times, lines = night.enc, night.services, night.times, night.lines
    n_enc, le = len(enc.pat), lines.enc
    ids = pd.Index(night.enc_ids, dtype=object)
    touched = np.zeros(n_enc, dtype=bool)
    if night.rows:
        touched[ids.get_indexer(np.concatenate([r["encounter_id"] for r in night.rows]))] = True
    copied = df["line_id"].str.endswith(("-C", "-U")).to_numpy()
    hit = ids.get_indexer(df["encounter_id"].to_numpy()[copied])
    touched[hit[hit >= 0]] = True
    touched |= services.tmask[:, 0] & services.tmask[:, 1] & (times.start[:, 1] < times.end[:, 0])
    end = times.end[:, -1]  # the visit's end: its timed codes come last
    day_key = enc.clin.astype(np.int64) * 7 + enc.day
    day_end = np.full(int(day_key.max()) + 1, -1, dtype=np.int64)
    np.maximum.at(day_end, day_key, end)
    free = (end == day_end[day_key]) & ~touched & ~enc.is_chiro & (end + 75 <= 23 * 60 + 59)
    k = max(2, n_enc // 2000)

    def pick(mask: np.ndarray) -> np.ndarray:
        return _pick_evenly(mask, free, k)

    l110 = lines.timed & (lines.code == _CI["97110"])
    a = pick(np.bincount(le[l110], minlength=n_enc) > 0)
    payers = night.ref.payers.reset_index(drop=True)
    caps = payers["max_timed_units_per_day"]
    cap = np.where(caps.isna(), 4, caps.fillna(4).astype(int).clip(1, 4))[services.payer]
    room = (np.where(services.tmask, services.units, 0).sum(axis=1) < cap) & services.tmask[:, 0]
    b = pick(room & (enc.disc == "PT"))
    la = _first_line_where(le, l110, a)
    lb = _first_line_where(le, lines.timed, b)

    # the untouched visits' lines are in the night's order, together: found by a small isin
    def rows_of(line_ids: np.ndarray) -> np.ndarray:
        return np.flatnonzero(df["line_id"].isin(line_ids).to_numpy())

    def last_rows(encounters: np.ndarray) -> np.ndarray:
        at = np.flatnonzero(df["encounter_id"].isin(night.enc_ids[encounters]).to_numpy())
        eid = df["encounter_id"].to_numpy()[at]
        return at[np.append(eid[1:] != eid[:-1], True)] if len(at) else at

    second = df.iloc[rows_of(night.col["line_id"][la])].copy()
    second["line_id"] = second["line_id"] + "-2"
    second["encounter_id"] = second["encounter_id"] + "-2"
    start = (end[a] + 60 + 4) // 5 * 5
    second["start_time"], second["end_time"] = _TIMES[start], _TIMES[start + 10]
    second[["minutes", "units_charted"]] = ["10", "1"]
    second["charge_amount"] = _money(night.fee[la])

    codes = np.array(list(_ATTENDED_FEE_CENTS), dtype=object)[np.arange(len(b)) % 2]
    attended = df.iloc[rows_of(night.col["line_id"][lb])].copy()
    attended["line_id"] = attended["line_id"] + "-A"
    attended["cpt_code"] = codes
    attended["modifiers"] = _join([night.mods.therapy[lb], night.mods.assistant[lb]])
    attended["start_time"], attended["end_time"] = _TIMES[end[b]], _TIMES[end[b] + 15]
    attended[["minutes", "units_charted", "body_region", "technique"]] = ["15", "1", "", ""]
    fee = np.array([_ATTENDED_FEE_CENTS[c] for c in codes], dtype=np.int64)
    attended["charge_amount"] = _money(night.fee[lb] * fee // _FEE_CENTS[lines.code[lb]])

    # each new visit and line right after the last line of the visit it comes from
    after = [last_rows(e) * 2 + 1 for e in (a, b)]
    key = np.concatenate([np.arange(len(df)) * 2, *after])
    out = pd.concat([df, second, attended], ignore_index=True)
    return out.iloc[np.argsort(key, kind="stable")].reset_index(drop=True)


# ----------------------------------------------------------------------------- issue 15

# the NUCC taxonomy of each credential (docs/extract-format.md, providers.csv): the table the
# 837 writer falls back on, so the roster and the claims agree
TAXONOMY_OF: dict[str, str] = CREDENTIAL_TAXONOMY
# the referring/ordering physicians of the clinics' patients: (last, first, credential,
# taxonomy); their NPIs are drawn once (type-2 range, so never a clinician's: those start 1)
_REFERRERS_NAMED = (
    ("OKAFOR", "ADAEZE", "MD", "207Q00000X"),  # family medicine
    ("LINDQVIST", "PER", "MD", "207X00000X"),  # orthopaedic surgery
    ("BHATTACHARYA", "ANIL", "MD", "208100000X"),  # physical medicine and rehabilitation
    ("MORALES", "ELENA", "DO", "207R00000X"),  # internal medicine
    ("FITZGERALD", "SEAN", "MD", "2084N0400X"),  # neurology
    ("TANAKA", "HIRO", "DO", "207Q00000X"),
    ("NOVAK", "IRENA", "MD", "207X00000X"),
    ("WASHINGTON", "DENISE", "MD", "207R00000X"),
)


def _referrer_table() -> pd.DataFrame:
    bodies = np.random.default_rng(1515).choice(10**8, len(_REFERRERS_NAMED), replace=False)
    return pd.DataFrame(
        {
            "npi": [npi.make_valid(str(2 * 10**8 + b)) for b in bodies],
            "last_name": [r[0] for r in _REFERRERS_NAMED],
            "first_name": [r[1] for r in _REFERRERS_NAMED],
            "credential": [r[2] for r in _REFERRERS_NAMED],
            "taxonomy": [r[3] for r in _REFERRERS_NAMED],
        }
    ).astype(object)


REFERRERS = _referrer_table()
_EMPLOYERS = np.array(
    [
        "PRAIRIE STATE LOGISTICS LLC",
        "ILLINI GRAIN COOPERATIVE",
        "RIVER CITY CONSTRUCTION INC",
        "SPRINGFIELD SCHOOL DISTRICT 186",
        "LAKESIDE WAREHOUSE SERVICES",
        "PEORIA MACHINE WORKS",
        "CORN BELT TRUCKING CO",
        "SANGAMON COUNTY HIGHWAY DEPT",
        "HEARTLAND POULTRY PROCESSING",
        "MIDWEST HOME HEALTH AIDES",
    ],
    dtype=object,
)
_OTHER_STATES = np.array(["IN", "WI", "MO", "IA", "KY"], dtype=object)


def _provider_and_episode_columns(seed, col, payers, teams, enc, staff, pats, visits, lines):
    """The issue-15 columns (docs/extract-format.md), added to ``col``: the supervising
    therapist of every assistant's line (the team's first clinician, a PT or OT: never an
    assistant), half the clinicians' own taxonomy, a referring physician on every line of a
    payer requiring one and on a third of the other patients, the initial treatment date of
    chiropractic and Medicare episodes (the episode's start: on or before every visit; left to
    its plan-of-care fallback for some Medicare therapy patients), and the accident details
    of workers' comp and auto patients (related cause, accident date and state, P&C claim
    number, employer; some left to their documented fallbacks), plus a few other-accident
    patients. Drawn from a random stream of its own: every other column is as it was."""
    rng = np.random.default_rng([seed, 15])
    lc, lp = enc.clin[lines.enc], lines.pat
    n_c, n_p = len(staff.cred), len(pats.payer)
    payers = payers.reset_index(drop=True)

    # supervisors and taxonomies, per clinician
    c_team = np.repeat(np.arange(len(teams.clinic)), enc.n_clin)
    sup = enc.clin_off[c_team]
    assistant = np.isin(staff.cred, ("PTA", "OTA"))
    for c, values in (("npi", staff.npi), ("last_name", staff.last), ("first_name", staff.first)):
        col[f"supervising_{c}"] = np.where(assistant, values[sup], "").astype(object)[lc]
    tax = np.array([TAXONOMY_OF.get(c, "") for c in staff.cred], dtype=object)
    col["rendering_taxonomy"] = np.where(rng.random(n_c) < 0.5, tax, "").astype(object)[lc]

    # referring physician, per patient
    required = payers["requires_referring"].to_numpy(dtype=bool)[pats.payer]
    has_ref = required | (rng.random(n_p) < 0.35)
    who = rng.integers(0, len(REFERRERS), n_p)
    for c in ("npi", "last_name", "first_name"):
        values = REFERRERS[c].to_numpy(dtype=object)[who]
        col[f"referring_{c}"] = np.where(has_ref, values, "").astype(object)[lp]

    # the episode's first treatment: chiropractic and Medicare episodes, some others
    chiro = teams.disc[pats.team] == "CHIRO"
    medicare = np.isin(pats.cls, _MEDICARE_LIKE)
    given = chiro | medicare | (rng.random(n_p) < 0.2)
    given &= chiro | ~pats.has_poc | (rng.random(n_p) < 0.7)  # else plan_of_care_start
    col["initial_treatment_date"] = np.where(given, _date_strings(visits.poc_start), "").astype(
        object
    )[lp]

    # accidents and work injuries
    wc, auto = pats.cls == "workers_comp", pats.cls == "auto"
    other = np.isin(pats.cls, ("commercial", "medicaid")) & (rng.random(n_p) < 0.02)
    explicit = rng.random(n_p) < 0.75
    cause = np.select(
        [wc & explicit, auto & explicit, other],
        ["employment", "auto_accident", "other_accident"],
        "",
    ).astype(object)
    col["related_cause"] = cause[lp]
    other_day = visits.poc_start - rng.integers(2, 30, n_p)
    accident = np.where(other, other_day, visits.injury_day)
    dated = other | ((wc | auto) & (rng.random(n_p) < 0.6))  # else injury_date
    col["accident_date"] = np.where(dated, _date_strings(accident), "").astype(object)[lp]
    away = rng.random(n_p) < 0.15
    state = np.where(away, _OTHER_STATES[rng.integers(0, len(_OTHER_STATES), n_p)], pats.state)
    col["accident_state"] = np.where(auto, state, "").astype(object)[lp]
    year = pd.Series(_date_strings(visits.injury_day)).str[2:4].to_numpy(dtype=object)
    digits = _fixed("", rng.integers(0, 10**7, n_p), 7)
    pc = np.select([wc, auto], ["WC" + year + "-" + digits, "PIP" + year + digits], "")
    col["pc_claim_number"] = pc.astype(object)[lp]
    employer = _EMPLOYERS[rng.integers(0, len(_EMPLOYERS), n_p)]
    col["employer_name"] = np.where(wc, employer, "").astype(object)[lp]


# the claim-content cases of issue 15 and the finding each one must raise ("" = none: the
# delimiter in a name becomes a space in the 837, two words, no finding)
CONTENT_FINDINGS: dict[str, str] = {
    "assistant_without_supervisor": "ASSISTANT_SUPERVISOR_MISSING",
    "referring_missing": "REFERRING_MISSING",
    "cmt_without_initial_date": "INITIAL_TREATMENT_DATE_MISSING",
    "employer_missing": "EMPLOYER_MISSING",
    "accident_state_missing": "ACCIDENT_STATE_MISSING",
    "pc_claim_number_missing": "PC_CLAIM_NUMBER_MISSING",
    "long_street": "TEXT_TRUNCATED",
    "long_name": "TEXT_TRUNCATED",
    "delimiter_in_name": "",
}
CONTENT_KINDS: tuple[str, ...] = tuple(CONTENT_FINDINGS)
_LONG_STREET = "4821 NORTH PRAIRIE VIEW MEMORIAL HIGHWAY FRONTAGE ROAD BUILDING 7"
_LONG_NAME = "VANDERSCHOOT-MONTGOMERY-FITZWILLIAM-ABERCROMBIE-WOLFESCHLEGEL"
_DELIMITER_NAME = "O'BRIEN*SMITH"
assert len(_LONG_STREET) > 60 and len(_LONG_NAME) > 60


def _claim_content_cases(
    df: pd.DataFrame, problems: pd.DataFrame, night: _ProblemNight, problem_rate: float
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A few encounters (1 in 2,000, at least 2) of each ``CONTENT_KINDS`` case, on
    encounters no other problem or case touched, picked evenly (no random draw): a Medicare
    assistant's visit without its supervisor, a visit of a payer requiring a referring
    provider without one, a Medicare CMT visit without its initial treatment date and
    without a plan of care, a workers' comp visit without the employer, an auto
    visit without the accident state, a workers' comp or auto visit without the P&C claim
    number, a patient street and a last name of more than 60 characters (cut in the 837), a
    last name with ``*`` inside. Listed in the problems frame (``CONTENT_FINDINGS`` gives the
    finding each must raise); none when ``problem_rate`` is 0."""
    if problem_rate == 0 or len(df) == 0:
        return df, problems
    services, lines = night.services, night.lines
    ids = pd.Index(night.enc_ids, dtype=object)
    free = np.ones(len(ids), dtype=bool)
    done = ids.get_indexer(problems["encounter_id"].to_numpy(dtype=object))
    free[done[done >= 0]] = False
    for cased in night.cased:
        free[cased] = False
    free &= ~(
        services.tmask[:, 0]
        & services.tmask[:, 1]
        & (night.times.start[:, 1] < night.times.end[:, 0])
    )
    added = df["line_id"].str.fullmatch(r".*(?:-C|-U|-2|-A|M)").to_numpy()
    # a second visit's encounter is its source's id with "-2"
    source = df["encounter_id"][added].str.replace(r"-2$", "", regex=True)
    hit = ids.get_indexer(source.to_numpy(dtype=object))
    free[hit[hit >= 0]] = False
    k = max(2, len(ids) // 2000)
    payers = night.ref.payers.reset_index(drop=True)
    cls = services.cls
    required = payers["requires_referring"].to_numpy(dtype=bool)[services.payer]
    cmt = np.bincount(lines.enc[lines.is_cmt], minlength=len(ids)) > 0
    everyone = np.ones(len(ids), dtype=bool)
    # CLM11-4 (the accident state) is on the 837P only: the case needs a professional clinic
    claim_type = df["clinic_id"].map(night.ref.clinics["claim_type"])
    professional = ids.isin(df.loc[claim_type.eq("professional").to_numpy(), "encounter_id"])
    cases = (
        (
            "assistant_without_supervisor",
            (cls == "medicare") & services.is_assist,
            {"supervising_npi": "", "supervising_last_name": "", "supervising_first_name": ""},
        ),
        (
            "referring_missing",
            required,
            {"referring_npi": "", "referring_last_name": "", "referring_first_name": ""},
        ),
        (
            "cmt_without_initial_date",
            (cls == "medicare") & cmt,
            {"initial_treatment_date": "", "plan_of_care_start": "", "plan_of_care_end": ""},
        ),
        ("employer_missing", cls == "workers_comp", {"employer_name": ""}),
        ("accident_state_missing", (cls == "auto") & professional, {"accident_state": ""}),
        (
            "pc_claim_number_missing",
            np.isin(cls, ("workers_comp", "auto")),
            {"pc_claim_number": ""},
        ),
        ("long_street", everyone, {"patient_address": _LONG_STREET}),
        ("long_name", everyone, {"patient_last_name": _LONG_NAME}),
        ("delimiter_in_name", everyone, {"patient_last_name": _DELIMITER_NAME}),
    )
    assert tuple(c[0] for c in cases) == CONTENT_KINDS
    eid = df["encounter_id"].to_numpy(dtype=object)
    rows = []
    for kind, mask, values in cases:
        picked = night.enc_ids[_pick_evenly(mask, free, k)]
        if len(picked) == 0:
            continue
        on = np.flatnonzero(pd.Index(picked).get_indexer(eid) >= 0)
        for c, v in values.items():
            df.iloc[on, df.columns.get_loc(c)] = v
        first = on[np.unique(eid[on], return_index=True)[1]]
        column, value = next(iter(values.items()))
        rows.append(
            pd.DataFrame(
                {
                    "encounter_id": eid[first],
                    "line_id": df["line_id"].to_numpy(dtype=object)[first],
                    "kind": kind,
                    "column": column,
                    "value": value,
                }
            )
        )
    if not rows:
        return df, problems
    problems = pd.concat([problems, *rows], ignore_index=True)
    problems = problems.sort_values(["encounter_id", "kind"], kind="stable").reset_index(drop=True)
    return df, problems


def providers_roster(df: pd.DataFrame) -> pd.DataFrame:
    """A providers.csv (docs/extract-format.md) for a generated night: each rendering and
    supervising clinician once (taxonomy by credential: what NPPES would list) and the
    referring physicians the night names. Sorted by NPI; ``source`` says where it came from."""
    rend = df[
        ["rendering_npi", "rendering_last_name", "rendering_first_name", "rendering_credential"]
    ]
    rend.columns = ["npi", "last_name", "first_name", "credential"]
    sup = df.loc[
        df["supervising_npi"] != "",
        ["supervising_npi", "supervising_last_name", "supervising_first_name", "discipline"],
    ]
    sup.columns = ["npi", "last_name", "first_name", "credential"]
    sup = sup.assign(credential=sup["credential"].map({"PT": "PT", "OT": "OT"}))
    people = pd.concat([rend, sup], ignore_index=True).dropna()
    people = people[
        people["npi"].map(npi.is_valid) & (people["last_name"] != "") & (people["first_name"] != "")
    ]
    people = people.drop_duplicates("npi").assign(
        taxonomy=lambda p: p["credential"].map(TAXONOMY_OF)
    )
    named = REFERRERS[REFERRERS["npi"].isin(df["referring_npi"])]
    out = pd.concat([people.dropna(), named], ignore_index=True).drop_duplicates("npi")
    out = out.assign(source="synthetic roster (therapy_claims.generate)")
    return out.sort_values("npi", kind="stable").reset_index(drop=True)[
        ["npi", "last_name", "first_name", "credential", "taxonomy", "source"]
    ]


def write_reference(df: pd.DataFrame, directory: str, *, leave_out: int = 2) -> list[str]:
    """A reference folder for a generated night: the shipped sample files plus
    ``providers_roster(df)`` without ``leave_out`` of its clinicians (the last assistants by
    NPI, never a supervisor), so that their lines show PROVIDER_UNKNOWN. Returns the NPIs left
    out."""
    target = Path(directory)
    target.mkdir(parents=True, exist_ok=True)
    for src in sorted(Path(reference.DEFAULT_DIR).glob("*.csv")):
        if src.name != "providers.csv":
            shutil.copyfile(src, target / src.name)
    roster = providers_roster(df)
    supervisors = set(df["supervising_npi"])
    candidates = roster[
        roster["credential"].isin(("PTA", "OTA")) & ~roster["npi"].isin(supervisors)
    ]
    gone = candidates["npi"].tail(leave_out).tolist() if leave_out > 0 else []
    write(roster[~roster["npi"].isin(gone)].reset_index(drop=True), str(target / "providers.csv"))
    return gone


# ----------------------------------------------------------------------------- write


def _write_local(path: str, writer) -> None:
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    os.close(fd)
    try:
        writer(tmp)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _json_value(v) -> str:
    if v is None or (isinstance(v, float) and np.isnan(v)) or v is pd.NA or v is pd.NaT:
        return "null"
    if isinstance(v, np.generic):
        v = v.item()
    return json.dumps(v, ensure_ascii=False, default=str)


def _jsonl_bytes(df: pd.DataFrame) -> bytes:
    """One JSON object per row, keys in column order. Each distinct value of a column is
    encoded once and the rows only reference it, so 1M lines take seconds, not minutes."""
    if len(df) == 0:
        return b""
    pieces = []
    last = len(df.columns) - 1
    for i, c in enumerate(df.columns):
        codes, uniques = pd.factorize(df[c], use_na_sentinel=True)
        prefix = ("{" if i == 0 else ",") + json.dumps(str(c), ensure_ascii=False) + ":"
        suffix = "}\n" if i == last else ""
        enc = [prefix + _json_value(u) + suffix for u in uniques]
        enc.append(prefix + "null" + suffix)  # code -1 = missing
        pieces.append(np.array(enc, dtype=object)[codes])
    return "".join(np.stack(pieces, axis=1).ravel().tolist()).encode("utf-8")


def write(df: pd.DataFrame, path: str) -> None:
    """Write an extract by suffix: .csv (UTF-8, header, RFC 4180 quoting, no index),
    .parquet, .jsonl (one JSON object per line). Local paths are written atomically;
    ``s3://`` paths go through ``storage``."""
    path = str(path)
    low = path.lower()
    if low.endswith(".csv"):

        def to_csv(target):
            df.to_csv(target, index=False, encoding="utf-8", lineterminator="\n")

        if storage.is_s3(path):
            storage.write_bytes(path, df.to_csv(index=False, lineterminator="\n").encode("utf-8"))
        else:
            _write_local(path, to_csv)
    elif low.endswith(".parquet"):
        storage.write_parquet(df, path)
    elif low.endswith(".jsonl"):
        storage.write_bytes(path, _jsonl_bytes(df))
    else:
        raise ValueError(f"unsupported extract suffix: {path} (use .csv, .parquet or .jsonl)")
