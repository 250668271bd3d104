"""The claims of one interchange as columns: every value an 837 carries, checked.

:class:`LineColumns` groups the service lines by claim ("claim order": claims by first
appearance, lines in input order) and works out each line's values; :class:`ClaimColumns`
the values of each claim (its first line's) and of its clinic and payer rows. Each value is
computed once per distinct value and kept as codes into few texts (:class:`Texts`); the problems
found on the way are kept beside them, per field, for :mod:`therapy_claims.x12.checks` to put
in order. Nothing here makes segment text.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa

from therapy_claims.x12.columns import (
    Values,
    arrow_strings,
    cents_of,
    cleaned,
    d8_texts,
    distinct,
    encode,
    first_seen,
    is_clean,
    text_codes,
    units_of,
)
from therapy_claims.x12.constants import (
    CAUSE_BY_PAYER_CLASS,
    CMT_CODES,
    EMPLOYEE_PAT01,
    MAX_LINE_ID,
    MAX_ORIGINAL_REFERENCE,
    OCCURRENCE_CODES,
    ORIGINAL,
    RELATED_CAUSES,
    RELATIONSHIP_PAT01,
    REVENUE_CODES,
)
from therapy_claims.x12.fields import (
    PerRow,
    by_row,
    checked,
    checked_values,
    clinic_entry,
    diagnoses,
    frequency_code,
    identifiers,
    line_item_refs,
    payer_entry,
    place_of_service,
    pointer_composite,
    related_cause,
    relationship,
    required,
    sex_code,
    split_results,
    state_code,
    sv101,
    valid_npi,
    zips,
)
from therapy_claims.x12.joiner import Texts, blank, groups, objects
from therapy_claims.x12.providers import effective_renderers, referrers
from therapy_claims.x12.text import clean_text


class LineColumns:
    """The service lines of one interchange, grouped by claim, each value once per distinct
    value. Claim k's lines are ``starts[k]`` .. ``starts[k] + sizes[k]`` (claim order)."""

    def __init__(self, df: pd.DataFrame, institutional: bool):
        self.institutional = institutional
        order = self._group(df)
        self.dates = d8_texts(df["date_of_service"])
        self.dos, self.dos_str = self.dates.codes[order], self.dates.texts
        self.cents = cents_of(df["charge_amount"])[order]
        self.units = units_of(df["units"])[order]
        self._services(df, order)
        if institutional:
            self._disciplines(df, order)
        else:
            self._pointers_and_places(df, order)
        self._renderers(df, order)
        self._line_refs(df, order)

    def _group(self, df: pd.DataFrame) -> np.ndarray:
        """Number the claims by first appearance; returns the rows in claim order."""
        n = len(df)
        claim_col = df["claim_id"]
        raw_ids = id_strings = None
        if isinstance(claim_col.dtype, pd.StringDtype):
            codes, keys, id_strings = encode(claim_col)
            raw_ids = keys[:-1]  # by first appearance: claim k's id (a str) is the k-th
            codes = np.where(codes == len(raw_ids), -1, codes)
        else:
            claim_col = claim_col.astype(object)
            codes, _ = pd.factorize(claim_col, sort=False)
        if (codes < 0).any():
            raise ValueError("a service line has no claim_id")
        order = np.argsort(codes, kind="stable")
        self.sizes = np.bincount(codes)
        self.starts = np.cumsum(self.sizes) - self.sizes  # claim k: lines starts[k]..+sizes[k]
        self.order = order  # the input row of each line (claim order)
        self.first = order[self.starts]  # each claim's first row
        self.line_claim = codes[order]
        self.lx = np.arange(n) - np.repeat(self.starts, self.sizes) + 1
        if raw_ids is None:
            raw_ids = claim_col.to_numpy()[self.first]
        self.raw_ids, self.id_strings = raw_ids, id_strings
        # CLM01 and the messages' ids (ids from pyarrow are str already)
        self.ids = raw_ids if id_strings is not None else objects(map(str, raw_ids), len(raw_ids))
        return order

    def _services(self, df: pd.DataFrame, order: np.ndarray) -> None:
        """SV101 / SV202 (``HC:code:modifiers``) per distinct code and modifiers."""
        n = len(df)
        mods = df["modifiers"] if "modifiers" in df else np.full(n, None, dtype=object)
        cpt_codes, cpt_keys = distinct(df["cpt_code"])
        mod_codes, mod_keys = distinct(mods, listish=True)
        svc, rep = groups(cpt_codes, mod_codes)
        svc_values = objects(
            (sv101(cpt_keys[cpt_codes[r]], mod_keys[mod_codes[r]]) for r in rep), len(rep)
        )
        self.svc = svc[order]
        self.svc_values = svc_values  # None where the code or a modifier is malformed
        self.svc_text = Texts(self.svc, objects((v or "" for v in svc_values), len(rep)))
        cmt = np.fromiter((clean_text(c) in CMT_CODES for c in cpt_keys), bool, len(cpt_keys))
        self.cmt = cmt[cpt_codes][order]  # a chiropractic manipulation (CMT) line

    def _line_refs(self, df: pd.DataFrame, order: np.ndarray) -> None:
        """REF*6R per line (``ref_text``): its line_id as is; ``ref_ok`` where it can go out
        so, ``ref_repeated`` where it repeats an earlier line's of the same claim (an 835
        line could not be told apart)."""
        ids = df["line_id"] if "line_id" in df else np.full(len(df), None, dtype=object)
        self.ref_text, self.ref_ok, same = line_item_refs(ids, MAX_LINE_ID, order)
        key, _ = groups(self.line_claim, same)
        self.ref_repeated = self.ref_ok & pd.Series(key).duplicated().to_numpy()

    def _disciplines(self, df: pd.DataFrame, order: np.ndarray) -> None:
        """837I: each line's discipline and so its revenue code."""
        codes, texts = text_codes(cleaned(df["discipline"]))
        self.disc_code = codes[order]
        self.disc_texts = texts
        self.discipline = texts[self.disc_code]
        revenue = objects((REVENUE_CODES.get(d, ("",))[0] for d in texts), len(texts))
        self.revenue_text = Texts(self.disc_code, revenue)

    def _pointers_and_places(self, df: pd.DataFrame, order: np.ndarray) -> None:
        """837P: each line's diagnosis pointers and place of service."""
        codes, keys = distinct(df["diagnosis_pointers"], listish=True)
        self.ptr, self.ptr_values = codes[order], objects(map(pointer_composite, keys), len(keys))
        ptr_texts = objects((v[0] if v else "" for v in self.ptr_values), len(keys))
        self.ptr_text = Texts(self.ptr, ptr_texts)
        codes, keys = distinct(df["place_of_service"])
        self.place, self.place_values = (
            codes[order],
            objects(map(place_of_service, keys), len(keys)),
        )
        # places by value (keys " 11" and "11" are one place)
        self.place_code = pd.factorize(self.place_values, use_na_sentinel=False)[0]
        self.place_texts = objects((v or "" for v in self.place_values), len(keys))

    def _renderers(self, df: pd.DataFrame, order: np.ndarray) -> None:
        """Rendering providers: codes per line (equal codes, equal texts) and texts by code;
        ``line_renderer``: the lines whose renderer differs from their claim's (2420A/C)."""
        codes, self.npi_texts = text_codes(cleaned(df["rendering_npi"]))
        self.npi_code = codes[order]
        npi_ok = np.fromiter(map(valid_npi, self.npi_texts), bool, len(self.npi_texts))
        self.npi_ok = npi_ok[self.npi_code]
        self.npi_empty = (self.npi_texts == "")[self.npi_code]
        texts, problem = required(df["rendering_last_name"], "rendering_last_name", 60)
        self.r_last = texts  # by input row, with what was cut (TEXT_TRUNCATED)
        self.r_last_problem = None if problem is None else problem[order]
        codes, self.r_last_texts = text_codes(texts)
        self.r_last_code = codes[order]
        texts, problem = required(df["rendering_first_name"], "rendering_first_name", 35)
        self.r_first = texts
        self.r_first_problem = None if problem is None else problem[order]
        codes, self.r_first_texts = text_codes(texts)
        self.r_first_code = codes[order]
        claim_npi = self.npi_code[self.starts][self.line_claim]
        self.line_renderer = ~self.npi_empty & (self.npi_code != claim_npi)


class ClaimColumns:
    """Per claim: the values of its first line and of its clinic and payer rows, and the
    problems found in each field (``problems[field]``, a :class:`PerRow` or None)."""

    def __init__(
        self,
        df: pd.DataFrame,
        lines: LineColumns,
        clinics: pd.DataFrame,
        payers: pd.DataFrame,
        providers: pd.DataFrame | None = None,
    ):
        self._df, self._first = df, lines.first
        self.institutional = lines.institutional
        self.problems: dict[str, PerRow | None] = {}
        self.dob = d8_texts(df["patient_dob"], lines.first)
        self._references(clinics, payers)
        self._claim_ids(lines)
        self._patient()
        self._subscriber()
        self._diagnoses()
        self._frequency()
        self._content(lines)
        effective_renderers(df, lines, self, payers, providers)
        referrers(self._values, payers, self, providers)
        self._renderer(lines)
        del self._df, self._first  # the frame is not needed (nor kept alive) after this

    def _values(self, name: str) -> Values:
        """The column's value on each claim's first line."""
        df, first = self._df, self._first
        if name not in df:
            return np.full(len(first), None, dtype=object)
        strings = arrow_strings(df[name])
        return df[name].iloc[first] if strings is None else strings.take(first)

    def _reference_ids(self, name: str) -> tuple[np.ndarray, list, np.ndarray]:
        """(index among the distinct ids, the distinct ids, the id) per claim, the ids in
        order of first appearance; NAs as pandas gives them (they fail the walk in
        ``Verdict.failing``)."""
        strings = self._values(name)
        if isinstance(strings, pa.Array) and strings.null_count == 0:
            codes, keys = distinct(strings)
            return codes, keys[:-1].tolist(), keys[codes]
        df = self._df
        ids = np.asarray(df[name].iloc[self._first] if name in df else strings, dtype=object)
        return *first_seen(ids), ids

    def _references(self, clinics: pd.DataFrame, payers: pd.DataFrame) -> None:
        """Clinic and payer rows, in order of first appearance (claims are written clinic by
        clinic): each checked once, as a dict of values or the ``Invalid`` it gave."""
        self.clinic_rank, seen, clinic_ids = self._reference_ids("clinic_id")
        inst = self.institutional
        self.clinic_entries = [checked(clinic_entry, clinics, c, inst) for c in seen]
        self.claim_order = np.argsort(self.clinic_rank, kind="stable")
        self.payer_code, seen, payer_ids = self._reference_ids("payer_id")
        self.payer_seen = seen
        self.payer_entries = [checked(payer_entry, payers, p) for p in seen]
        self.scope_ids = {"clinic": clinic_ids, "payer": payer_ids}
        clinic_problem = split_results(objects(self.clinic_entries, len(self.clinic_entries)))[1]
        payer_problem = split_results(objects(self.payer_entries, len(self.payer_entries)))[1]
        self.problems["clinic"] = by_row(self.clinic_rank, clinic_problem)
        self.problems["payer"] = by_row(self.payer_code, payer_problem)

    def entry_values(self, entries: list, key: str) -> np.ndarray:
        """``entry[key]`` of each clinic or payer entry ('' for a row that failed its check)."""
        return objects((e[key] if isinstance(e, dict) else "" for e in entries), len(entries))

    def _claim_ids(self, lines: LineColumns) -> None:
        """CLM01 is the id as is: a clean one passes, any other only if cleaning leaves it so."""
        raw_ids, ids, id_strings = lines.raw_ids, lines.ids, lines.id_strings
        k = len(ids)
        clm01_ok = np.zeros(k, dtype=bool)
        if id_strings is not None:  # the ids by first appearance, as pyarrow strings
            clm01_ok = is_clean(raw_ids, 20, id_strings)[:k]
        elif pd.api.types.infer_dtype(raw_ids, skipna=False) == "string":
            clm01_ok = is_clean(raw_ids, 20)
        for i in np.flatnonzero(~clm01_ok):
            text = clean_text(raw_ids[i], 20)
            clm01_ok[i] = text != "" and text == ids[i]
        self.clm01_ok = clm01_ok
        # CLM01 texts: pyarrow's strings, or the ids that can be sent (others are never written,
        # and may not even convert: a lone surrogate in an object column)
        written_ids = ids if id_strings is not None else np.where(clm01_ok, ids, "")
        self.id_texts = Texts(np.arange(k), written_ids, id_strings)

    def _patient(self) -> None:
        """The patient's relationship to the subscriber, name, member id, address, sex."""
        values, found = self._values, self.problems
        codes, keys = distinct(values("subscriber_relationship"))
        relation, problem = split_results(
            objects((checked(relationship, v) for v in keys), len(keys))
        )
        found["subscriber_relationship"] = by_row(codes, problem)
        self.dependent = (relation != "self")[codes]
        pat01 = objects((RELATIONSHIP_PAT01.get(r, "") for r in relation), len(keys))
        self.pat01 = Texts(codes, pat01)
        self.pat_last, found["patient_last_name"] = required(
            values("patient_last_name"), "patient_last_name", 60
        )
        self.pat_first, found["patient_first_name"] = required(
            values("patient_first_name"), "patient_first_name", 35
        )
        self.member, found["member_id"] = identifiers(values("member_id"), "member_id", 80, 2)
        self.address, found["patient_address"] = required(
            values("patient_address"), "patient_address", 55
        )
        self.city, found["patient_city"] = required(values("patient_city"), "patient_city", 30, 2)
        self.state, found["patient_state"] = checked_values(
            lambda v: state_code(v, "patient_state"),
            values("patient_state"),
            unchanged="^[A-Z]{2}$",
        )
        self.zip, found["patient_zip"] = zips(values("patient_zip"), "patient_zip")
        self.sex, found["patient_sex"] = checked_values(
            sex_code, values("patient_sex"), unchanged="^[MFU]$"
        )

    def _subscriber(self) -> None:
        """The subscriber's group and (for a dependant) name."""
        values, found = self._values, self.problems
        self.group, found["group_number"] = identifiers(values("group_number"), "group_number", 50)
        self.sub_last, found["subscriber_last_name"] = required(
            values("subscriber_last_name"), "subscriber_last_name", 60
        )
        self.sub_first, found["subscriber_first_name"] = required(
            values("subscriber_first_name"), "subscriber_first_name", 35
        )

    def _diagnoses(self) -> None:
        """The diagnosis list (HI) and the prior authorisation (REF*G1)."""
        values, found = self._values, self.problems
        dx_codes, dx_keys = distinct(values("diagnosis_codes"), listish=True)
        inst = self.institutional
        dx = objects((checked(diagnoses, d, inst) for d in dx_keys), len(dx_keys))
        dx, problem = split_results(dx)
        found["diagnosis_codes"] = by_row(dx_codes, problem)
        self.n_dx = np.fromiter((d[0] if d else 0 for d in dx), np.int64, len(dx))[dx_codes]
        self.hi = Texts(dx_codes, objects((d[1] if d else "" for d in dx), len(dx)))
        self.auth, found["prior_auth_number"] = identifiers(
            values("prior_auth_number"), "prior_auth_number", 50
        )

    def _frequency(self) -> None:
        """CLM05-3 (``frequency``: ``claim_frequency``, 1 when not given) and the payer's
        claim control number of the claim a replacement or void corrects (``f8``:
        ``original_reference``, sent as REF*F8 as is: an identifier cleaning would change is a
        problem). A frame without those columns writes originals, byte for byte as before."""
        values, found = self._values, self.problems
        codes, keys = distinct(values("claim_frequency"))
        given, problem = split_results(
            objects((checked(frequency_code, v) for v in keys), len(keys))
        )
        found["claim_frequency"] = by_row(codes, problem)
        given = np.where(np.equal(given, ""), ORIGINAL, given).astype(object)
        self.frequency = Texts(codes, given)
        self.correcting = np.not_equal(given, ORIGINAL)[codes]
        self.f8, found["original_reference"] = identifiers(
            values("original_reference"), "original_reference", MAX_ORIGINAL_REFERENCE
        )
        self.has_f8 = np.not_equal(self.f8.texts, "")[self.f8.codes]

    def _dates(self, name: str) -> Texts:
        """CCYYMMDD of a date column on each claim's first line ('' when missing, and for
        every claim when the frame has no such column)."""
        if name not in self._df:
            return blank(len(self._first))
        return d8_texts(self._df[name], self._first)

    def _content(self, lines: LineColumns) -> None:
        """Claim content by payer class and claim type: the related cause (the column, else
        employment for workers' comp and auto accident for auto payers; ``cause`` 0 for none,
        else 1 + its place in ``RELATED_CAUSES``) with its accident date (``accident_date``,
        else ``injury_date``), the auto accident's state, the property-and-casualty claim
        number (REF*Y4), the employer as the insured (workers' comp) and the date treatment
        started (``initial_treatment_date``, else ``plan_of_care_start``) that Medicare CMT
        claims (837P DTP*454) and Medicare 837I claims (occurrence codes) carry."""
        values, found = self._values, self.problems
        k = len(self._first)
        payer_class = self.entry_values(self.payer_entries, "class")[self.payer_code]
        codes, keys = distinct(values("related_cause"))
        given, problem = split_results(
            objects((checked(related_cause, v) for v in keys), len(keys))
        )
        found["related_cause"] = by_row(codes, problem)
        names = list(RELATED_CAUSES)
        given = np.fromiter((names.index(c) + 1 if c else 0 for c in given), np.int64, len(keys))
        self.cause = given[codes]
        for payer_class_, cause in CAUSE_BY_PAYER_CLASS.items():
            by_class = (self.cause == 0) & (payer_class == payer_class_)
            self.cause[by_class] = names.index(cause) + 1
        self.onset = self._dates("injury_date")
        self.accident = fallback(self._dates("accident_date"), self.onset)
        self.plan_of_care = self._dates("plan_of_care_start")
        self.started = fallback(self._dates("initial_treatment_date"), self.plan_of_care)
        self.accident_state, found["accident_state"] = checked_values(
            lambda v: state_code(v, "accident_state"),
            values("accident_state"),
            unchanged="^[A-Z]{2}$",
        )
        self.pc_number, found["pc_claim_number"] = identifiers(
            values("pc_claim_number"), "pc_claim_number", 50
        )
        has_pc = np.not_equal(self.pc_number.texts, "")[self.pc_number.codes]
        self.has_y4 = (self.cause > 0) & has_pc
        self.employer_name = cleaned(values("employer_name"), 60)
        has_employer = np.not_equal(self.employer_name.texts, "")[self.employer_name.codes]
        self.employer = (payer_class == "workers_comp") & has_employer
        # the subscriber is a person other than the patient, or (workers' comp) the employer:
        # either way the patient gets a 2000C loop (the employer's employee: PAT01 20)
        self.insured_person = self.dependent & ~self.employer
        self.dependent = self.dependent | self.employer
        pat01 = self.pat01
        self.pat01 = Texts(
            np.where(self.employer, pat01.n_texts, pat01.codes),
            np.append(pat01.texts, EMPLOYEE_PAT01).astype(object),
        )
        medicare = payer_class == "medicare"
        if self.institutional:
            self.disciplines = {
                d: np.bincount(
                    lines.line_claim, weights=(lines.disc_texts == d)[lines.disc_code], minlength=k
                )
                > 0
                for d in OCCURRENCE_CODES
            }
            self.needs_start = medicare
        else:
            has_cmt = np.bincount(lines.line_claim, weights=lines.cmt, minlength=k) > 0
            self.needs_start = medicare & has_cmt

    def _renderer(self, lines: LineColumns) -> None:
        """The claim's renderer is its first line's: ``renderer2310`` says which claims carry
        it (837I: every claim, as the attending provider; 837P: a 2310B only when it differs
        from the billing provider)."""
        starts = lines.starts
        self.npi0 = lines.npi_texts[lines.npi_code[starts]]
        self.has_npi0 = ~lines.npi_empty[starts]
        if self.institutional:
            self.renderer2310 = np.ones(len(starts), dtype=bool)
        else:
            billing_npi = self.entry_values(self.clinic_entries, "npi")[self.clinic_rank]
            self.renderer2310 = self.has_npi0 & (self.npi0 != billing_npi)


def fallback(a: Texts, b: Texts) -> Texts:
    """Per row ``a``'s text, else (where it is '') ``b``'s: once per distinct pair."""
    key, rep = groups(a.codes, b.codes)
    first, second = a.texts[a.codes[rep]], b.texts[b.codes[rep]]
    return Texts(key, np.where(np.not_equal(first, ""), first, second).astype(object))
