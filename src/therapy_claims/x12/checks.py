"""The ordered claim checks: which claims of a batch cannot be written as 837, and why.

A claim is held for its first problem, in the order a claim-by-claim writer meets them:
clinic, CLM01, line count, payer, the patient (relationship, name, member id, address, DOB,
sex), group, the subscriber (dependants), the claim content by payer (related cause,
accident date and state, P&C claim number, the date treatment started), diagnoses, authorisation,
the claim frequency and the payer claim control number it corrects, the claim's renderer, its
lines in order (charge, units, code and modifiers, date, 837I therapy modifier / 837P
pointers and place, the line_id REF*6R carries as is and unique within the claim, a
supervisor where one is needed, a line renderer's name and NPI), then the 2310B / attending names. Every
check runs over whole columns (:mod:`therapy_claims.x12.batch`); the message names the claim,
the field and the problem, never the value.

:func:`unwritable_claims` gives exactly the ``rejected`` a build of the same lines would
fill, without making any segment text, so score can decide every hold before publish.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pandas as pd

from therapy_claims.x12 import constants
from therapy_claims.x12.batch import ClaimColumns, LineColumns
from therapy_claims.x12.constants import (
    MAX_DIAGNOSES,
    MAX_LINE_ID,
    MAX_LINES_PER_CLAIM,
    MAX_LINES_PER_CLAIM_I,
    RELATED_CAUSES,
)
from therapy_claims.x12.fields import (
    BAD_NPI,
    Invalid,
    PerRow,
    by_row,
    modifier_problem,
    problem_array,
)
from therapy_claims.x12.joiner import groups, objects
from therapy_claims.x12.providers import REFERRER_MISSING, SUPERVISOR_MISSING


class FirstProblem:
    """The first problem noted per item (claim or line), in the order the checks run."""

    def __init__(self, n: int):
        self.problem = np.full(n, None, dtype=object)
        self.bad = np.zeros(n, dtype=bool)

    def note(self, problems: np.ndarray | PerRow | None, where: np.ndarray | None = None) -> None:
        """Note ``problems`` (None entries: none), only ``where`` given."""
        if problems is None:
            return
        per_row = isinstance(problems, PerRow)
        new = (problems.mask() if per_row else np.not_equal(problems, None)) & ~self.bad
        if where is not None:
            new &= where
        if new.any():
            self.problem[new] = problems.at(new) if per_row else problems[new]
            self.bad |= new

    def note_mask(self, mask: np.ndarray, problem: Invalid) -> None:
        new = mask & ~self.bad
        if new.any():
            self.problem[new] = problem
            self.bad |= new


CLAIM_ID = Invalid("claim_id", "must be 1-20 characters of A-Z 0-9 and X12 basic punctuation")
LINE_ID = Invalid(
    "line_id",
    f"must be 1-{MAX_LINE_ID} characters of A-Z 0-9 and X12 basic punctuation "
    "(REF*6R carries it as is)",
)
LINE_ID_REPEATED = Invalid("line_id", "repeats another line's of the claim (REF*6R must be unique)")
PATIENT = (
    "patient_last_name",
    "patient_first_name",
    "member_id",
    "patient_address",
    "patient_city",
    "patient_state",
    "patient_zip",
)
SUBSCRIBER = ("subscriber_last_name", "subscriber_first_name")
ACCIDENT_DATE = Invalid(
    "accident_date", "is missing and so is injury_date (the related cause's date)"
)
START_DATE = Invalid(
    "initial_treatment_date",
    "is missing and so is plan_of_care_start (Medicare: the date treatment started)",
)


def claim_problems(lines: LineColumns, claims: ClaimColumns) -> FirstProblem:
    """Each claim's first problem (claims numbered as in ``lines``), in the module's order."""
    starts, found = lines.starts, claims.problems
    p = FirstProblem(len(starts))
    p.note(found["clinic"])
    p.note_mask(~claims.clm01_ok, CLAIM_ID)
    max_lines = MAX_LINES_PER_CLAIM_I if lines.institutional else MAX_LINES_PER_CLAIM
    p.note_mask(lines.sizes > max_lines, Invalid("service lines", f"exceed {max_lines} per claim"))
    p.note(found["payer"])
    p.note(found["subscriber_relationship"])
    for field in PATIENT:
        p.note(found[field])
    dob = claims.dob
    p.note_mask((dob.texts == "")[dob.codes], Invalid("patient_dob", "is missing"))
    p.note(found["patient_sex"])
    p.note(found["group_number"])
    for field in SUBSCRIBER:
        p.note(found[field], where=claims.insured_person)
    content_problems(p, claims)
    p.note(found["diagnosis_codes"])
    p.note(found["prior_auth_number"])
    correction_problems(p, claims)
    # the claim's renderer (its first line's; an assistant's supervisor where the payer does
    # not let assistants render), its referrer, its lines, then the 2310B / attending names
    if lines.institutional:
        p.note(lines.missing_problem[starts], where=~claims.has_npi0)
    p.note(lines.npi_problem[starts], where=claims.has_npi0 & ~lines.npi_ok[starts])
    referrer_problems(p, claims)
    p.note(line_problems(lines, claims.n_dx))
    for problem in (lines.r_last_problem, lines.r_first_problem):
        p.note(problem[starts], where=claims.renderer2310)
    return p


def referrer_problems(p: FirstProblem, claims: ClaimColumns) -> None:
    """A claim whose payer requires a referring provider and whose first line names no
    usable one: NPI missing, NPI invalid, then the name (columns, else providers.csv)."""
    need, r = claims.referrer_required, claims.referrer
    p.note_mask(need & r.npi_empty, REFERRER_MISSING)
    p.note_mask(need & ~r.npi_ok, Invalid("referring_npi", BAD_NPI))
    p.note(r.last_problem, where=need)
    p.note(r.first_problem, where=need)


def content_problems(p: FirstProblem, claims: ClaimColumns) -> None:
    """Claim content by payer and claim type, in this order: the related cause, its accident
    date, an 837P auto accident's state, the P&C claim number (with a related cause), the
    date treatment started (Medicare CMT 837P / Medicare 837I). Score's claim content rules
    hold these claims first; here they are a safety net."""
    found, related = claims.problems, claims.cause > 0
    p.note(found["related_cause"])
    accident = claims.accident
    p.note_mask(related & (accident.texts == "")[accident.codes], ACCIDENT_DATE)
    if not claims.institutional:
        auto = claims.cause == 1 + list(RELATED_CAUSES).index("auto_accident")
        p.note(found["accident_state"], where=auto)
    p.note(found["pc_claim_number"], where=related)
    started = claims.started
    p.note_mask(claims.needs_start & (started.texts == "")[started.codes], START_DATE)


F8_MISSING = Invalid(
    "original_reference",
    "is missing (a replacement or void names the payer's claim control number)",
)
F8_UNEXPECTED = Invalid("original_reference", "is given for an original claim (frequency 1)")


def correction_problems(p: FirstProblem, claims: ClaimColumns) -> None:
    """The claim frequency (CLM05-3), then the payer's claim control number it corrects
    (REF*F8): a replacement or void needs one, an original carries none."""
    found = claims.problems
    p.note(found["claim_frequency"])
    p.note(found["original_reference"])
    p.note_mask(claims.correcting & ~claims.has_f8, F8_MISSING)
    p.note_mask(~claims.correcting & claims.has_f8, F8_UNEXPECTED)


def line_problems(lines: LineColumns, n_dx: np.ndarray) -> np.ndarray:
    """Each claim's first problem on a service line (lines in order), or None; ``n_dx``: the
    number of diagnoses per claim."""
    p = FirstProblem(len(lines.line_claim))
    p.note_mask(lines.cents < 0, Invalid("charge_amount", "is missing or negative"))
    p.note_mask(lines.units <= 0, Invalid("units", "is not a positive whole number"))
    p.note_mask(
        np.equal(lines.svc_values, None)[lines.svc],
        Invalid("cpt_code/modifiers", "must be a 5-character code and 0-4 two-character modifiers"),
    )
    p.note_mask((lines.dos_str == "")[lines.dos], Invalid("date_of_service", "is missing"))
    if lines.institutional:
        group, rep = groups(lines.svc, lines.disc_code)
        problem = objects(
            (modifier_problem(lines.svc_values[lines.svc[r]], lines.discipline[r]) for r in rep),
            len(rep),
        )
        p.note(by_row(group, problem))
    else:
        ptr_max = np.fromiter(
            (v[1] if v else MAX_DIAGNOSES + 1 for v in lines.ptr_values),
            np.int64,
            len(lines.ptr_values),
        )
        p.note_mask(
            ptr_max[lines.ptr] > n_dx[lines.line_claim],
            Invalid("diagnosis_pointers", "must be 1-4 positions in diagnosis_codes"),
        )
        p.note_mask(
            np.equal(lines.place_values, None)[lines.place],
            Invalid("place_of_service", "is not 2 digits"),
        )
    # REF*6R: the line_id as is, unique within the claim (an 835 names the line by it)
    p.note_mask(~lines.ref_ok, LINE_ID)
    p.note_mask(lines.ref_repeated, LINE_ID_REPEATED)
    # an assistant's line billed under a supervisor that is not there
    p.note_mask(lines.subst & lines.npi_empty, SUPERVISOR_MISSING)
    # a line renderer that differs from the claim's: 2420A (837P) / 2420C (837I)
    p.note(lines.r_last_problem, where=lines.line_renderer)
    p.note(lines.r_first_problem, where=lines.line_renderer)
    p.note(lines.npi_problem, where=lines.line_renderer & ~lines.npi_ok)
    bad = np.flatnonzero(p.bad)
    claims, at = np.unique(lines.line_claim[bad], return_index=True)
    out = problem_array(len(lines.starts))
    out[claims] = p.problem[bad[at]]
    return out


class Verdict:
    """Which claims of a batch cannot be written, in the order a build meets them, and why."""

    def __init__(self, lines: LineColumns, claims: ClaimColumns):
        self.ids = lines.ids
        self.claim_order = claims.claim_order
        self.scope_ids = claims.scope_ids
        self.problems = claim_problems(lines, claims)

    @property
    def bad(self) -> np.ndarray:
        """Per claim: it cannot be written."""
        return self.problems.bad

    def failing(self) -> Iterator[int]:
        """The claims that cannot be written, in claim order.

        Each set's claims are walked as a claim loop would: a claim's clinic id is compared
        (``!=``) with the last written claim's, which raises ``TypeError`` for an id such as
        ``pd.NA``. All-string ids cannot raise, so they skip the walk.
        """
        order, bad = self.claim_order, self.problems.bad
        clinic_ids = self.scope_ids["clinic"]
        if pd.api.types.infer_dtype(clinic_ids, skipna=False) == "string":
            yield from order[bad[order]].tolist()
            return
        order = order.tolist()
        per_set = constants.claims_per_set()
        current: object = None
        for at, k in enumerate(order):
            if at % per_set == 0:
                current = object()  # a new transaction set
            changed = bool(clinic_ids[k] != current)
            if bad[k]:
                yield k
            elif changed:
                current = clinic_ids[k]

    def message(self, k: int) -> str:
        """The ``ValueError`` text for claim k's first problem."""
        problem = self.problems.problem[k]
        scope = f" ({problem.scope} {self.scope_ids[problem.scope][k]})" if problem.scope else ""
        return f"claim {self.ids[k]}{scope}: {problem}"


class Batch:
    """The claims of one interchange as checked columns, and the verdict on each claim."""

    def __init__(
        self,
        df: pd.DataFrame,
        institutional: bool,
        clinics: pd.DataFrame,
        payers: pd.DataFrame,
        providers: pd.DataFrame | None = None,
    ):
        self.lines = LineColumns(df, institutional)
        self.claims = ClaimColumns(df, self.lines, clinics, payers, providers)
        self.verdict = Verdict(self.lines, self.claims)


def unwritable_claims(
    lines: pd.DataFrame,
    *,
    institutional: bool,
    clinics: pd.DataFrame,
    payers: pd.DataFrame,
    providers: pd.DataFrame | None = None,
) -> dict[str, str]:
    """``{claim_id: message}`` of the claims of ``lines`` that cannot be written as 837I
    (``institutional``) or 837P: exactly what ``build_837i`` / ``build_837p`` of the same
    ``lines``, ``clinics``, ``payers`` and ``providers`` (providers.csv, indexed by NPI)
    put into ``rejected`` (in the same order), without making the file. ``lines`` is the
    frame the writer takes; no lines, no claims.

    Raises ``ValueError`` as the build does when a line has no ``claim_id``.
    """
    if lines is None or len(lines) == 0:
        return {}
    verdict = Batch(lines.reset_index(drop=True), institutional, clinics, payers, providers).verdict
    return {verdict.ids[k]: verdict.message(k) for k in verdict.failing()}
