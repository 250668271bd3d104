"""Who rendered and who referred, as the 837 names them (issue 15).

* **The effective renderer of a line.** A PTA/OTA line to a payer that does not let assistants
  render (payers.csv ``assistants_may_render``) goes out under its supervising therapist:
  ``supervising_npi`` and ``supervising_last/first_name`` (where those lack a name, the name
  providers.csv gives the NPI). Other lines: the rendering clinician, as before.
* **Its taxonomy** (837P ``PRV*PE``, 837I ``PRV*AT``): the line's ``rendering_taxonomy``, else
  providers.csv's for the NPI, else by credential (``CREDENTIAL_TAXONOMY``; MD, DO and others
  the clinic's). A supervisor's: providers.csv's, else ``SUPERVISOR_TAXONOMY`` (a PT for a PTA,
  an OT for an OTA): never the assistant's own.
* **The referring provider** of a claim (its first line's ``referring_npi``, the name as for a
  supervisor): written when the NPI is valid and there is a name; a payer with
  ``requires_referring`` cannot be billed without one.

Everything is worked once per distinct value (NPI, name, credential, payer, clinic) and
spread onto the lines with NumPy; the texts stay codes into few distinct texts, equal codes
for equal texts, so the writer can compare renderers by code.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from therapy_claims.x12.columns import Values, cleaned, text_codes
from therapy_claims.x12.constants import CREDENTIAL_TAXONOMY, SUPERVISOR_TAXONOMY
from therapy_claims.x12.fields import (
    BAD_NPI,
    EMPTY,
    Invalid,
    PerRow,
    problem_array,
    required,
    valid_npi,
)
from therapy_claims.x12.joiner import objects
from therapy_claims.x12.text import clean_text, is_na

TAXONOMY = re.compile(r"[0-9A-Z]{9}X")
ASSISTANTS = tuple(SUPERVISOR_TAXONOMY)  # PTA, OTA
RENDERING = ("rendering_npi", "rendering_last_name", "rendering_first_name")
SUPERVISING = ("supervising_npi", "supervising_last_name", "supervising_first_name")
REFERRING = ("referring_npi", "referring_last_name", "referring_first_name")
SUPERVISOR_MISSING = Invalid(
    "supervising_npi",
    "is missing (an assistant (PTA/OTA) cannot be the rendering provider for this payer: "
    "payers.csv assistants_may_render is false)",
)
REFERRER_MISSING = Invalid(
    "referring_npi", "is missing (the payer requires a referring provider: requires_referring)"
)


def column(df: pd.DataFrame, name: str) -> Values:
    """A column of the writer's frame; a frame without it is all missing values."""
    return df[name] if name in df else np.full(len(df), None, dtype=object)


def no_problems(n: int) -> PerRow:
    return PerRow(np.zeros(n, dtype=np.int64), problem_array(1))


def pick_texts(
    mask: np.ndarray, a: tuple[np.ndarray, np.ndarray], b: tuple[np.ndarray, np.ndarray]
) -> tuple[np.ndarray, np.ndarray]:
    """(codes, texts) of ``b`` where ``mask`` holds, else of ``a``: equal codes, equal texts."""
    texts = np.concatenate([a[1], b[1]])
    same, distinct = pd.factorize(texts)
    codes = np.where(mask, len(a[1]) + b[0], a[0])
    return same[codes], np.asarray(distinct, dtype=object)


def pick_problems(mask: np.ndarray, a: PerRow, b: PerRow) -> PerRow:
    """``b``'s problem where ``mask`` holds, else ``a``'s."""
    problems = np.concatenate([a.problems, b.problems])
    return PerRow(np.where(mask, len(a.problems) + b.codes, a.codes), problems)


def payer_flag(payers: pd.DataFrame, pid: object, setting: str) -> bool:
    """payers.csv ``assistants_may_render`` / ``requires_referring`` of a payer. A frame
    without the column (built by hand) has the loader's default: assistants may render
    except for Medicare and Medicare Advantage; no referrer required. An unknown payer
    (held for that already): the defaults."""
    known = not is_na(pid) and pid in payers.index
    if known and setting in payers.columns:
        value = payers.loc[pid, setting]
        if isinstance(value, str):
            return value.strip().lower() in ("true", "1", "yes")
        return False if is_na(value) else bool(value)
    if setting == "assistants_may_render":
        payer_class = payers.loc[pid, "payer_class"] if known and "payer_class" in payers else ""
        return payer_class not in ("medicare", "medicare_advantage")
    return False


def listing(directory: pd.DataFrame | None, npis: np.ndarray) -> tuple[np.ndarray, dict]:
    """Per distinct NPI text: listed in providers.csv, and its cleaned last_name, first_name
    and taxonomy ('' where not listed)."""
    n = len(npis)
    out = {k: np.full(n, "", dtype=object) for k in ("last_name", "first_name", "taxonomy")}
    if directory is None or len(directory) == 0:
        return np.zeros(n, dtype=bool), out
    at = pd.Index(directory.index).get_indexer(npis)
    listed = (at >= 0) & (npis != "")
    for key, size in (("last_name", 60), ("first_name", 35), ("taxonomy", None)):
        values = directory[key].to_numpy(dtype=object)
        for i in np.flatnonzero(listed):
            out[key][i] = clean_text(values[at[i]], size)
    return listed, out


class Person:
    """A provider per row (NPI and name from three columns): codes into distinct texts and
    the problems of each, the name from the columns or, where they lack one (either part
    empty after cleaning) and providers.csv lists the NPI, from providers.csv."""

    def __init__(
        self,
        values: tuple[Values, Values, Values],
        fields: tuple[str, str, str],
        directory: pd.DataFrame | None,
    ):
        n = len(values[0])
        self.fields = fields
        self.npi_code, self.npi_texts = text_codes(cleaned(values[0]))
        ok = np.fromiter(map(valid_npi, self.npi_texts), bool, len(self.npi_texts))
        self.npi_ok, self.npi_empty = ok[self.npi_code], (self.npi_texts == "")[self.npi_code]
        self.listed, self.directory = listing(directory, self.npi_texts)
        names = []
        self.cleaned = []  # the name columns as cleaned (by row), with what was cut
        for value, field, size in ((values[1], fields[1], 60), (values[2], fields[2], 35)):
            texts, problem = required(value, field, size)
            self.cleaned.append(texts)
            names.append((*text_codes(texts), problem or no_problems(n)))
        (l_code, l_texts, l_problem), (f_code, f_texts, f_problem) = names
        nameless = (l_texts == "")[l_code] | (f_texts == "")[f_code]
        use = nameless & self.listed[self.npi_code]
        self.from_directory = use  # per row: the name is providers.csv's, not the columns'
        self.last, self.first = (l_code, l_texts), (f_code, f_texts)
        self.last_problem, self.first_problem = l_problem, f_problem
        if use.any():  # the names providers.csv gives the NPI
            for name, field, key in (
                ("last", fields[1], "last_name"),
                ("first", fields[2], "first_name"),
            ):
                texts = self.directory[key]
                problems = problem_array(len(texts), texts == "", Invalid(field, EMPTY))
                own = getattr(self, name)
                setattr(self, name, pick_texts(use, own, (self.npi_code, texts)))
                by_npi = PerRow(self.npi_code, problems)
                setattr(
                    self,
                    f"{name}_problem",
                    pick_problems(use, getattr(self, f"{name}_problem"), by_npi),
                )

    @property
    def usable(self) -> np.ndarray:
        """Per row: a valid NPI and a name (what a 2310/2420 provider loop needs)."""
        return self.npi_ok & ~self.last_problem.mask() & ~self.first_problem.mask()


def taxonomy_choice(
    choices: list[tuple[np.ndarray, np.ndarray, np.ndarray]],
) -> tuple[np.ndarray, np.ndarray]:
    """(codes, texts) per row: the first of ``choices`` (per row: usable, codes, texts by
    code) usable on the row; the last choice is taken where none is."""
    offsets = np.cumsum([0, *(len(t) for _, _, t in choices)])
    texts = np.concatenate([t for _, _, t in choices])
    code = offsets[-2] + choices[-1][1]
    for k in range(len(choices) - 2, -1, -1):
        use, codes, _ = choices[k]
        code = np.where(use, offsets[k] + codes, code)
    same, distinct = pd.factorize(texts)
    return same[code], np.asarray(distinct, dtype=object)


def effective_renderers(
    df: pd.DataFrame, lines, claims, payers: pd.DataFrame, directory: pd.DataFrame | None
) -> None:
    """Put each line's effective renderer on ``lines`` (a ``LineColumns``, whose rendering
    provider columns it replaces where an assistant goes out under the supervisor), with its
    taxonomy (``tax_code``/``tax_texts``), ``subst`` (the lines billed under the supervisor)
    and the problems the checks give a renderer's NPI (``npi_problem``: invalid,
    ``missing_problem``: missing where one is needed). ``claims``: the ``ClaimColumns`` being
    built (its payers and clinics known)."""
    order, n = lines.order, len(lines.order)
    cred_code, cred_texts = text_codes(cleaned(column(df, "rendering_credential")))
    cred = cred_code[order]
    seen = claims.payer_seen
    allows = np.fromiter(
        (payer_flag(payers, p, "assistants_may_render") for p in seen), bool, len(seen)
    )
    subst = np.isin(cred_texts, ASSISTANTS)[cred] & ~allows[claims.payer_code][lines.line_claim]
    lines.subst = subst
    sup = Person(tuple(column(df, c) for c in SUPERVISING), SUPERVISING, directory)
    lines.supervisor = sup  # by input row (TEXT_TRUNCATED reads its cut names)
    s_npi = sup.npi_code[order]
    # the taxonomy, first choice first
    _, r_dir = listing(directory, lines.npi_texts)
    rt_code, rt_texts = text_codes(cleaned(column(df, "rendering_taxonomy")))
    rt_ok = np.fromiter((TAXONOMY.fullmatch(t) is not None for t in rt_texts), bool, len(rt_texts))
    rt = rt_code[order]
    by_credential = objects((CREDENTIAL_TAXONOMY.get(c, "") for c in cred_texts), len(cred_texts))
    of_supervisor = objects((SUPERVISOR_TAXONOMY.get(c, "") for c in cred_texts), len(cred_texts))
    s_listed = sup.directory["taxonomy"]
    lines.tax_code, lines.tax_texts = taxonomy_choice([
        (subst & (s_listed != "")[s_npi], s_npi, s_listed),
        (subst, cred, of_supervisor),
        (rt_ok[rt], rt, rt_texts),
        ((r_dir["taxonomy"] != "")[lines.npi_code], lines.npi_code, r_dir["taxonomy"]),
        ((by_credential != "")[cred], cred, by_credential),
        (
            np.ones(n, dtype=bool),
            claims.clinic_rank[lines.line_claim],
            claims.entry_values(claims.clinic_entries, "taxonomy"),
        ),
    ])  # fmt: skip
    kinds = subst.astype(np.int64)
    lines.npi_problem = PerRow(
        kinds, objects([Invalid(RENDERING[0], BAD_NPI), Invalid(SUPERVISING[0], BAD_NPI)], 2)
    )
    attending = Invalid(RENDERING[0], "is missing (needed for the attending provider)")
    lines.missing_problem = PerRow(kinds, objects([attending, SUPERVISOR_MISSING], 2))
    if lines.r_last_problem is None:
        lines.r_last_problem = no_problems(n)
    if lines.r_first_problem is None:
        lines.r_first_problem = no_problems(n)
    if not subst.any():
        return
    lines.npi_code, lines.npi_texts = pick_texts(
        subst, (lines.npi_code, lines.npi_texts), (s_npi, sup.npi_texts)
    )
    lines.npi_ok = np.where(subst, sup.npi_ok[order], lines.npi_ok)
    lines.npi_empty = np.where(subst, sup.npi_empty[order], lines.npi_empty)
    lines.r_last_code, lines.r_last_texts = pick_texts(
        subst, (lines.r_last_code, lines.r_last_texts), (sup.last[0][order], sup.last[1])
    )
    lines.r_first_code, lines.r_first_texts = pick_texts(
        subst, (lines.r_first_code, lines.r_first_texts), (sup.first[0][order], sup.first[1])
    )
    lines.r_last_problem = pick_problems(subst, lines.r_last_problem, sup.last_problem[order])
    lines.r_first_problem = pick_problems(subst, lines.r_first_problem, sup.first_problem[order])
    claim_npi = lines.npi_code[lines.starts][lines.line_claim]
    lines.line_renderer = ~lines.npi_empty & (lines.npi_code != claim_npi)


def referrers(values, payers: pd.DataFrame, claims, directory: pd.DataFrame | None) -> None:
    """Put each claim's referring provider on ``claims`` (its first line's: ``referrer``, a
    :class:`Person`) and whether its payer requires one (``referrer_required``); ``values``:
    a column's value on each claim's first line."""
    seen = claims.payer_seen
    needs = np.fromiter(
        (payer_flag(payers, p, "requires_referring") for p in seen), bool, len(seen)
    )
    claims.referrer_required = needs[claims.payer_code]
    claims.referrer = Person(tuple(values(c) for c in REFERRING), REFERRING, directory)
