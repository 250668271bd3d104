"""The claim ledger: every claim billed, across nights, and what a biller sees of one claim.

The system of record is a database (``therapy_claims.ledger_store``): claims are reserved in
one transaction before their night is committed and marked sent after, under a unique claim key,
so no claim is ever owned by two nights. Each run also publishes its claims as a Parquet layer
for analysts, in its versioned folder::

    ledger/run_date=YYYY-MM-DD/run=RUN_ID/ledger.parquet

One row per claim written to a claim file: ``claim_id`` (the CLM01 sent), ``claim_key`` (the
claim before any split into parts of at most 50 lines and any later version: one encounter for
one payer at one clinic), payer, clinic, patient, encounter, first/last date of service, lines,
charge, the file and its control numbers (ISA13, GS06, ST02), and how it was sent (issue 17):
``frequency_code`` (CLM05-3), ``original_claim_id`` (the CLM01 it resubmits, replaces or
voids), ``original_reference`` (the REF*F8 sent) and ``lines_digest`` (the digest of its billed
lines, ``corrections.content_digests``). No names or addresses (those stay in ``raw``).

Score reads the database (``therapy_claims.corrections``): a claim sent on another night is
held with ``ALREADY_BILLED`` instead of reaching the payer twice, unless the payer's answer to
it calls for a resubmission or a replacement; a rerun of a night is not a duplicate.

``show`` prints one claim the way a biller reads a CMS-1500 / UB-04, parsed back from the
837 file it was sent in (so it shows exactly what the payer received).
"""

from __future__ import annotations

import hashlib
import re

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from therapy_claims import findings, ledger_store, nights, schemas, storage
from therapy_claims.x12 import reader

LEDGER = "ledger"
FILE_NAME = "ledger.parquet"
SPLIT = re.compile(r"^(?P<key>.+)-(?P<part>\d{1,2})$")

COLUMNS = [
    "claim_id",
    "claim_key",
    "run_date",
    "payer_id",
    "clinic_id",
    "patient_id",
    "encounter_id",
    "first_date_of_service",
    "last_date_of_service",
    "lines",
    "charge",
    "claim_type",
    "receiver_id",
    "file",
    "interchange_control_number",
    "group_control_number",
    "transaction_set_control_number",
    "frequency_code",
    "original_claim_id",
    "original_reference",
    "lines_digest",
]


# the suffix of a claim sent in parts (``split_claims``)
PART_SUFFIX = r"-\d{1,2}$"


def claim_key(claim_id: pd.Series) -> pd.Series:
    """The claim a (possibly split, possibly later version's) CLM01 belongs to: ``TC...-2``
    -> ``TC...``, ``R1...`` -> ``TC...`` (``ledger_store.versioned_id``)."""
    ids = storage.text_array(claim_id.astype("string"))
    return pd.Series(pd.array(claim_keys(ids), dtype="string"), index=claim_id.index)


def claim_keys(ids: pa.Array) -> pa.Array:
    """``claim_key`` of an Arrow array of CLM01s."""
    ids = pc.replace_substring_regex(
        ids, pattern=ledger_store.VERSION_PATTERN, replacement=ledger_store.VERSION_TO_KEY
    )
    return pc.replace_substring_regex(ids, pattern=PART_SUFFIX, replacement="")


# --------------------------------------------------------------------------- splitting


def split_claims(
    lines: pd.DataFrame, limits: dict[str, int], *, claims: np.ndarray | None = None
) -> pd.Series:
    """CLM01 per line once statuses are settled.

    A claim with more billed lines than its claim type allows (``limits``: 50 for
    professional, 999 for institutional) is sent as several claims: its billed lines, in the
    order they are written (date of service, line_id), get ``<claim_id>-1``, ``-2``, ... in
    chunks of the limit (within X12's 20 characters for the 17-character ids). Every other line
    keeps its claim_id. Returns the new claim_id column (same index). ``claims``, if given,
    numbers each line's claim (``pd.factorize`` codes) so the ids are not hashed again.
    """
    out = lines["claim_id"].astype("string").copy()
    cols = ["claim_id", "claim_type", "date_of_service", "line_id"]
    billed = np.flatnonzero((lines["status"] == "billed").to_numpy())
    if not len(billed):
        return out
    # per billed line: the billed lines of its claim, and its claim type's limit (counted on
    # factorised codes: a night has few claims over the limit, and only those are sorted)
    if claims is None:
        claim = pd.factorize(lines["claim_id"].take(billed))[0]
    else:
        claim = claims[billed]
    size = np.bincount(claim[claim >= 0], minlength=claim.max() + 1)[claim]
    kind, kinds = pd.factorize(lines["claim_type"].take(billed))
    shortest = min(limits.values())
    kind_limit = np.array([limits.get(k, shortest) for k in kinds] + [shortest], dtype=int)
    limit = kind_limit[kind]  # a missing claim type (code -1) gets the shortest
    over = (claim >= 0) & (size > limit)
    if not over.any():
        return out
    big = lines.iloc[billed[over]][cols]
    big = big.assign(_d=pd.to_datetime(big["date_of_service"]), _limit=limit[over])
    big = big.sort_values(["claim_id", "_d", "line_id"], kind="mergesort")
    rank = big.groupby("claim_id").cumcount()
    part = rank // big["_limit"] + 1
    if (part > 99).any():
        raise ValueError("a claim needs more than 99 parts")
    out.loc[big.index] = big["claim_id"].astype(str) + "-" + part.astype(str)
    return out


# --------------------------------------------------------------------------- identity


def claim_ids(lines: pd.DataFrame) -> pd.Series:
    """CLM01: a claim is one encounter for one payer at one clinic. Deterministic, 17 chars
    ('TC' + 15 hex of a SHA-256), leaving room for a split suffix within X12's 20."""
    parts = ["clinic_id", "encounter_id", "payer_id"]
    # one integer per (clinic, encounter, payer): factorise each part, then the combinations
    codes = np.zeros(len(lines), dtype=np.int64)
    for c in parts:
        part_codes, uniques = pd.factorize(lines[c])
        codes = pd.factorize(codes * (len(uniques) + 1) + (part_codes + 1))[0]
    first = np.unique(codes, return_index=True)[1]  # a row of each claim, in code order
    one = lines[parts].iloc[first].fillna("")
    keys = one["clinic_id"] + "|" + one["encounter_id"] + "|" + one["payer_id"]
    # one SHA-256 per claim (hashlib has no batch call); the text around it is done in Arrow
    sha256 = hashlib.sha256
    blobs = pc.cast(storage.text_array(keys), pa.binary()).to_pylist()
    digests = pa.array([sha256(b).hexdigest() for b in blobs], type=pa.string())
    ids = pc.binary_join_element_wise(
        "TC", pc.utf8_upper(pc.utf8_slice_codeunits(digests, 0, 15)), ""
    )
    return pd.Series(pd.array(ids.take(pa.array(codes)), dtype="string"), index=lines.index)


# --------------------------------------------------------------------------- reading


def read(out: str, *, exclude_run_date: str | None = None, ledger: str | None = None):
    """Every claim the published nights of ``out`` sent (optionally not those of one run
    date): the ledger layers their manifests name. (``ledger``: unused, kept so callers name
    the database the same way everywhere.)"""
    frames = [
        _read_layer(path)
        for rd, path in nights.layer_files(out, LEDGER, FILE_NAME)
        if rd != exclude_run_date
    ]
    frames = [f for f in frames if not f.empty]
    if not frames:
        return empty()
    rows = pd.concat(frames, ignore_index=True).reindex(columns=COLUMNS)
    return normalise(rows).sort_values(
        ["run_date", "claim_id"], kind="mergesort", ignore_index=True
    )


def _layer_rows(out: str, owned: pd.DataFrame) -> pd.DataFrame:
    """The ledger-layer rows of the claims in ``owned`` (claim_key, run_date), read from each
    of their nights' published layers (a claim a later run of its night dropped may be in none)."""
    frames = []
    for rd, keys in owned.groupby("run_date")["claim_key"]:
        m = nights.committed(out, str(rd))
        path = storage.join(nights.layer(m, LEDGER, str(rd), out), FILE_NAME) if m else None
        if path and storage.exists(path):
            rows = _read_layer(path)
            frames.append(rows[rows["claim_key"].isin(set(keys))])
    if not frames:
        return empty()
    return pd.concat(frames, ignore_index=True)


def _read_layer(path: str, kind: str = LEDGER) -> pd.DataFrame:
    """A published layer's file as a frame of its internal form (``schemas.read``): the
    same columns and types whether the night was published before issue 16 or after."""
    return storage.to_frame(schemas.read(path, kind))


def empty() -> pd.DataFrame:
    df = pd.DataFrame({c: pd.Series(dtype="string") for c in COLUMNS})
    df["lines"] = pd.Series(dtype="Int64")
    df["charge"] = pd.Series(dtype="float64")
    return df


# --------------------------------------------------------------------------- writing


def entries(
    sent: pd.DataFrame,
    *,
    run_date: str,
    file: str,
    claim_type: str,
    receiver_id: str,
    icn: int,
    placed: dict[str, str],
) -> pd.DataFrame:
    """Ledger rows for the claims of one claim file (``sent``: its billed lines)."""
    if sent.empty:
        return empty()
    # per claim (in claim_id order, as groupby): the first row's values, computed on positions
    codes, ids = pd.factorize(sent["claim_id"], sort=True)
    first = np.unique(codes, return_index=True)[1]

    def first_value(column: str) -> np.ndarray:
        values = sent[column].take(first)
        if values.isna().any():  # groupby's first() skips missing values
            return sent[column].groupby(codes).first().to_numpy()
        return values.to_numpy()

    days = pd.to_datetime(sent["date_of_service"]).to_numpy().astype("datetime64[ns]").view("i8")
    missing = days == np.iinfo(np.int64).min  # NaT
    lo = np.full(len(ids), np.iinfo(np.int64).max)
    np.minimum.at(lo, codes, np.where(missing, np.iinfo(np.int64).max, days))
    hi = np.full(len(ids), np.iinfo(np.int64).min)
    np.maximum.at(hi, codes, days)
    lo[lo == np.iinfo(np.int64).max] = np.iinfo(np.int64).min
    df = pd.DataFrame(
        {
            "claim_id": ids.astype(str),
            "payer_id": first_value("payer_id"),
            "clinic_id": first_value("clinic_id"),
            "patient_id": first_value("patient_id"),
            "encounter_id": first_value("encounter_id"),
            "first_date_of_service": _iso_dates(lo),
            "last_date_of_service": _iso_dates(hi),
            "lines": np.bincount(codes, minlength=len(ids)),
            "charge": sent["charge_amount"].groupby(codes).sum().round(2).to_numpy(),
        }
    )
    df["claim_key"] = claim_key(df["claim_id"])
    df["run_date"] = run_date
    df["claim_type"] = claim_type
    df["receiver_id"] = receiver_id
    df["transaction_set_control_number"] = df["claim_id"].map(placed)
    return stamp(normalise(df), file=file, icn=icn)


def _iso_dates(ns: np.ndarray) -> np.ndarray:
    """Nanosecond timestamps as YYYY-MM-DD (NaT as missing), formatted once per distinct day."""
    distinct, where = np.unique(ns, return_inverse=True)
    text = pd.DatetimeIndex(distinct.view("datetime64[ns]")).strftime("%Y-%m-%d")
    return np.asarray(text, dtype=object)[where]


def stamp(rows: pd.DataFrame, *, file: str, icn: int) -> pd.DataFrame:
    """``rows`` (of one claim file) with the file's path and control numbers: a file built
    under a provisional number gets its final one here."""
    return rows.assign(
        file=pd.Series(file, index=rows.index, dtype="string"),
        interchange_control_number=pd.Series(f"{icn:09d}", index=rows.index, dtype="string"),
        group_control_number=pd.Series(str(icn), index=rows.index, dtype="string"),
    )


def normalise(df: pd.DataFrame) -> pd.DataFrame:
    df = df.reindex(columns=COLUMNS)
    for c in COLUMNS:
        if c == "lines":
            df[c] = pd.to_numeric(df[c]).astype("Int64")
        elif c == "charge":
            df[c] = pd.to_numeric(df[c]).astype("float64")
        else:
            df[c] = df[c].astype("string")
    return df.sort_values(["claim_id"], kind="mergesort").reset_index(drop=True)


def write(out_path: str, rows: list[pd.DataFrame]) -> pd.DataFrame:
    """Write one run's ledger layer (``out_path``: its ledger.parquet); returns the rows."""
    rows = [r for r in rows if not r.empty]
    df = normalise(pd.concat(rows, ignore_index=True)) if rows else empty()
    storage.write_table(schemas.published(storage.to_table(df), LEDGER), out_path)
    return df


def not_sent_again(
    out: str,
    run_date: str,
    lines: pd.DataFrame,
    ledger: str | None = None,
    voided: set[str] | None = None,
) -> pd.DataFrame:
    """``CLAIM_NOT_RESENT`` findings: claims an earlier run of this night sent that this run
    does not bill (``lines``: the night's scored lines, statuses settled) nor void (``voided``:
    the keys of claims this run voids with no line tonight, sent again as they were). They
    stay sent in the ledger; the payer has them, so each may need a void or a corrected
    claim."""
    with ledger_store.opened(out, ledger) as store:
        owned = store.sent_keys(run_date=run_date)
    if owned.empty:
        return findings.empty()
    billed = lines["claim_id"][lines["status"] == "billed"]
    gone = owned[~owned["claim_key"].isin(claim_key(billed))]
    if voided:
        gone = gone[~gone["claim_key"].isin(voided)]
    if gone.empty:
        return findings.empty()
    # where the night's published run sent it, if that run still lists it
    sent = _layer_rows(out, gone).drop_duplicates("claim_key").set_index("claim_key")
    where = gone["claim_key"].map(sent["file"]) if len(sent) else pd.Series(pd.NA, gone.index)
    icn = (
        gone["claim_key"].map(sent["interchange_control_number"])
        if len(sent)
        else pd.Series(pd.NA, gone.index)
    )
    message = (
        "claim "
        + gone["claim_key"].astype(str)
        + " was sent by an earlier run of this night in "
        + where.fillna("a file no longer published").astype(str)
        + " (ISA13 "
        + icn.fillna("unknown").astype(str)
        + ") and is not billed by this run"
    )
    rows = pd.DataFrame({"line_id": pd.NA}, index=gone.index)
    return findings.make("CLAIM_NOT_RESENT", rows, message, evidence="claim ledger")


# --------------------------------------------------------------------------- show


def find(out: str, claim_id: str) -> pd.DataFrame:
    """Ledger rows for ``claim_id`` (a CLM01, or a claim key that matches all its parts)."""
    led = read(out)
    if led.empty:
        return led
    cid = claim_id.strip().upper()
    hit = led[(led["claim_id"] == cid) | (led["claim_key"] == cid)]
    return hit.sort_values(["run_date", "claim_id"], kind="mergesort")


def _el(seg: list[str], i: int) -> str:
    return seg[i] if len(seg) > i else ""


def parse_claim(text: str, claim_id: str) -> dict | None:
    """The parts of one claim (by CLM01) in an 837P/837I interchange, as plain values."""
    try:
        view = reader.find_claim(text, claim_id)
    except ValueError:  # not an X12 interchange
        return None
    if view is None:
        return None
    receiver = ""
    for seg in view.header:
        if seg[0] == "NM1" and _el(seg, 1) == "40":
            receiver = f"{_el(seg, 3)} ({_el(seg, 9)})"
    billing, subscriber, patient, payer = _parties([*view.billing, *view.subscriber])
    return {
        "version": view.version,
        "receiver": receiver,
        "billing": billing,
        "subscriber": subscriber,
        "patient": patient or dict(subscriber),
        "payer": payer,
        "claim": _claim(view),
    }


def _parties(segs: list[list[str]]) -> tuple[dict, dict, dict, dict]:
    """(billing provider, subscriber, patient, payer) from the 2000A and 2000B/C segments."""
    billing: dict = {}
    subscriber: dict = {}
    patient: dict = {}
    payer: dict = {}
    who = None  # which party the next N3/N4/DMG belong to
    for seg in segs:
        sid = seg[0]
        if sid == "NM1":
            ent = _el(seg, 1)
            name = ", ".join(p for p in (_el(seg, 3), _el(seg, 4)) if p)
            who = None
            if ent == "85":
                billing.update(name=name, npi=_el(seg, 9))
                who = billing
            elif ent == "IL":
                subscriber.update(name=name, member_id=_el(seg, 9))
                subscriber["employer"] = _el(seg, 2) == "2"  # workers' comp: the employer
                who = subscriber
            elif ent == "QC":
                patient.update(name=name)
                who = patient
            elif ent == "PR":
                payer.update(name=name, id=_el(seg, 9))
        elif sid == "N3" and who is not None:
            who["address"] = _el(seg, 1)
        elif sid == "N4" and who is not None:
            who["city"] = f"{_el(seg, 1)}, {_el(seg, 2)} {_el(seg, 3)}"
        elif sid == "DMG" and who is not None:
            who.update(dob=_el(seg, 2), sex=_el(seg, 3))
        elif sid == "REF" and _el(seg, 1) == "EI":
            billing["tax_id"] = _el(seg, 2)
        elif sid == "REF" and _el(seg, 1) == "Y4":
            subscriber["pc_claim"] = _el(seg, 2)
        elif sid == "SBR":
            subscriber["relationship"] = "self" if _el(seg, 2) == "18" else ""
            subscriber["group"] = _el(seg, 3)
            subscriber["filing"] = _el(seg, 9)
        elif sid == "PAT":
            patient["relationship"] = {
                "01": "spouse",
                "19": "child",
                "20": "employee",
                "G8": "other",
            }.get(_el(seg, 1), _el(seg, 1))
    return billing, subscriber, patient, payer


def _provider(seg: list[str]) -> dict:
    name = ", ".join(p for p in (_el(seg, 3), _el(seg, 4)) if p)
    return {"name": name, "npi": _el(seg, 9)}


def _claim(view: reader.ClaimView) -> dict:
    """The 2300 values (CLM, providers, diagnoses, dates) and each 2400 line's."""
    comp = view.separators.component
    clm = view.claim[0]
    claim: dict = {
        "id": _el(clm, 1),
        "total": _el(clm, 2),
        "facility": _el(clm, 5).split(comp),
        "related": _el(clm, 11).split(comp) if _el(clm, 11) else [],
        "dx": [],
        "occurrences": [],
        "lines": [],
    }
    last = None  # the provider a PRV (taxonomy) belongs to
    for seg in view.claim[1:]:
        sid = seg[0]
        if sid == "NM1" and _el(seg, 1) in ("82", "71", "DN"):
            role = {"71": "attending", "82": "rendering", "DN": "referring"}[_el(seg, 1)]
            claim[role] = last = _provider(seg)
        elif sid == "PRV" and last is not None:
            last["taxonomy"] = _el(seg, 3)
        elif sid == "HI":
            for part in seg[1:]:
                q, _, code = part.partition(comp)
                if q in ("ABK", "ABF", "BK", "BF"):
                    claim["dx"].append(code.split(comp)[0])
                elif q in ("BH", "BQ"):  # occurrence code: code, D8, date
                    bits = code.split(comp)
                    claim["occurrences"].append((_el(bits, 0), _el(bits, 2)))
        elif sid == "DTP" and _el(seg, 1) in ("454", "439"):
            claim["initial" if _el(seg, 1) == "454" else "accident"] = _el(seg, 3)
        elif sid == "REF" and _el(seg, 1) == "G1":
            claim["prior_auth"] = _el(seg, 2)
        elif sid == "REF" and _el(seg, 1) == "F8":
            claim["original_reference"] = _el(seg, 2)
        elif sid == "DTP" and _el(seg, 1) == "434":
            claim["statement"] = _el(seg, 3)
        elif sid == "DTP" and _el(seg, 1) == "431":
            claim["onset"] = _el(seg, 3)
    claim["lines"] = [_line(segs, comp) for segs in view.lines]
    return claim


def _line(segs: list[list[str]], comp: str) -> dict:
    """A 2400 loop's values: LX, SV1 (837P) or SV2 (837I), DTP*472, its rendering provider."""
    ln = {"lx": _el(segs[0], 1)}
    for seg in segs[1:]:
        sid = seg[0]
        if sid in ("SV1", "SV2"):
            if sid == "SV1":
                proc, charge, units, pos, ptr = (
                    seg[1],
                    _el(seg, 2),
                    _el(seg, 4),
                    _el(seg, 5),
                    _el(seg, 7),
                )
                ln.update(revenue="", pointers=ptr.replace(comp, ","), pos=pos)
            else:
                proc, charge, units = _el(seg, 2), _el(seg, 3), _el(seg, 5)
                ln.update(revenue=seg[1], pointers="", pos="")
            parts = proc.split(comp)
            ln.update(code=_el(parts, 1), modifiers=parts[2:], charge=charge, units=units)
        elif sid == "DTP" and _el(seg, 1) == "472":
            ln["date"] = _el(seg, 3)
        elif sid == "NM1" and _el(seg, 1) in ("82", "71"):
            ln["rendering"] = _provider(seg)
        elif sid == "PRV" and "rendering" in ln:
            ln["rendering"]["taxonomy"] = _el(seg, 3)
    return ln


def _date(d8: str) -> str:
    return f"{d8[4:6]}/{d8[6:8]}/{d8[:4]}" if re.fullmatch(r"\d{8}", d8 or "") else (d8 or "")


def format_claim(parsed: dict, entry: dict, charted: list[str] | None = None) -> str:
    """A CMS-1500 / UB-04 style text view of one parsed claim plus its ledger entry (and
    ``charted``: who charted its lines, from the raw layer, see ``_charted``)."""
    c = parsed["claim"]
    inst = parsed["version"].startswith("005010X223")
    form = "UB-04 (837I)" if inst else "CMS-1500 (837P)"
    pat, sub, bill, pay = (
        parsed["patient"],
        parsed["subscriber"],
        parsed["billing"],
        parsed["payer"],
    )
    rel = "self" if sub.get("relationship") == "self" else pat.get("relationship", "")
    out = [
        f"Claim {c['id']}  [{form}]  billed {entry.get('run_date', '')}",
        "",
        f"  Patient        {pat.get('name', '')}   DOB {_date(pat.get('dob', ''))}  "
        f"sex {pat.get('sex', '')}",
        f"                 {pat.get('address', '')}, {pat.get('city', '')}",
        f"  Insured        {sub.get('name', '')}"
        f"{' (employer)' if sub.get('employer') else ''}   member id {sub.get('member_id', '')}   "
        f"group {sub.get('group', '') or '-'}   relationship {rel}",
        f"  Payer          {pay.get('name', '')}   clearinghouse payer id {pay.get('id', '')}"
        f"{_payer_key(entry)}   filing indicator {sub.get('filing', '')}",
        f"  Billing        {bill.get('name', '')}   NPI {bill.get('npi', '')}   "
        f"TIN {bill.get('tax_id', '')}",
        f"                 {bill.get('address', '')}, {bill.get('city', '')}",
    ]
    for role in ("attending", "rendering", "referring"):
        if c.get(role):
            who = c[role]
            tax = f"   taxonomy {who['taxonomy']}" if who.get("taxonomy") else ""
            out.append(f"  {role.capitalize():<15}{who['name']}   NPI {who['npi']}{tax}")
    out += charted or []
    fac = c["facility"]
    if inst:
        tob = f"{_el(fac, 0)}{_el(fac, 2)}"
        stmt = c.get("statement", "")
        period = " - ".join(_date(x) for x in stmt.split("-")) if stmt else ""
        out.append(f"  Type of bill   0{tob}   statement period {period}")
    else:
        out.append(f"  Place of svc   {_el(fac, 0)}   frequency {_el(fac, 2)}")
    if c.get("onset"):
        out.append(f"  Onset/injury   {_date(c['onset'])}")
    out += _episode_and_accident(c, sub)
    if c.get("prior_auth"):
        out.append(f"  Prior auth     {c['prior_auth']}")
    if c.get("original_reference"):  # a replacement (7) or void (8): the claim it corrects
        out.append(f"  Corrects       payer claim # {c['original_reference']}")
    dx = "   ".join(f"{chr(65 + i)}. {d}" for i, d in enumerate(c["dx"]))
    out += [f"  Diagnoses      {dx}", ""]
    if inst:
        out.append("   #  Date        Rev   Code   Modifiers       Units      Charge  Rendering")
    else:
        out.append(
            "   #  Date        POS  Code   Modifiers       Ptr      Units      Charge  Rendering"
        )
    for ln in c["lines"]:
        mods = ":".join(ln.get("modifiers", [])) or "-"
        rend = ln.get("rendering", {}).get("npi", "")
        if inst:
            out.append(
                f"  {ln.get('lx', ''):>2}  {_date(ln.get('date', ''))}  {ln.get('revenue', ''):<4}  "
                f"{ln.get('code', ''):<5}  {mods:<14}  {ln.get('units', ''):>5}  "
                f"{ln.get('charge', ''):>10}  {rend}"
            )
        else:
            out.append(
                f"  {ln.get('lx', ''):>2}  {_date(ln.get('date', ''))}  {ln.get('pos', '') or '  ':<3}  "
                f"{ln.get('code', ''):<5}  {mods:<14}  {ln.get('pointers', ''):<7}  "
                f"{ln.get('units', ''):>5}  {ln.get('charge', ''):>10}  {rend}"
            )
    out += [
        f"  {'Total charge':>64}  {c['total']:>10}",
        "",
        f"  Sent to        {parsed['receiver']}   in {entry.get('file', '')}",
        f"                 ISA13 {entry.get('interchange_control_number', '')}   "
        f"GS06 {entry.get('group_control_number', '')}   "
        f"ST02 {entry.get('transaction_set_control_number', '')}",
    ]
    return "\n".join(out) + "\n"


# occurrence codes (UB-04 FL31-34) the 837I carries
OCCURRENCE_MEANING = {
    "01": "auto accident",
    "04": "employment accident",
    "05": "other accident",
    "11": "onset",
    "17": "OT plan established",
    "29": "PT plan established",
    "30": "SLP plan established",
    "35": "PT started",
    "44": "OT started",
    "45": "SLP started",
}
RELATED_CAUSE_MEANING = {"EM": "employment", "AA": "auto accident", "OA": "other accident"}


def _payer_key(entry: dict) -> str:
    key = entry.get("payer_id", "")
    return f" (payers.csv {key})" if key else ""


def _episode_and_accident(c: dict, sub: dict) -> list[str]:
    """The claim's initial treatment date, related cause (CLM11, with the auto accident's
    state), accident date, P&C claim number and occurrence codes: what a payer of workers'
    comp, auto or Medicare therapy and chiropractic claims reads first."""
    out = []
    if c.get("initial"):
        out.append(f"  Initial treatment {_date(c['initial'])}")
    causes = [RELATED_CAUSE_MEANING.get(x, x) + f" ({x})" for x in c["related"][:2] if x]
    if causes:
        state = _el(c["related"], 3)
        out.append(f"  Related cause  {', '.join(causes)}" + (f"   state {state}" if state else ""))
    if c.get("accident"):
        out.append(f"  Accident date  {_date(c['accident'])}")
    if sub.get("pc_claim"):
        out.append(f"  P&C claim #    {sub['pc_claim']}")
    if c["occurrences"]:
        occ = "   ".join(
            f"{code} {_date(d)} ({OCCURRENCE_MEANING.get(code, '?')})"
            for code, d in c["occurrences"]
        )
        out.append(f"  Occurrence     {occ}")
    return out


def _charted(out: str, entry: dict) -> list[str]:
    """Who charted the claim's lines, from the night's raw layer: each rendering clinician
    with credential and, for an assistant, the supervising therapist (a Medicare claim carries
    the supervisor as the rendering provider, so the 837 alone does not show the assistant).
    Empty when the raw layer is gone."""
    found = dict(nights.layer_files(out, "raw", "raw.parquet")).get(entry.get("run_date", ""))
    if not found or not entry.get("encounter_id"):
        return []
    raw = _read_layer(found, "raw")  # a night from before issue 15 lacks the supervisor
    raw = raw.reindex(columns=list(_CHARTED_COLUMNS))
    raw = raw[
        (raw["encounter_id"] == entry["encounter_id"]) & (raw["payer_id"] == entry["payer_id"])
    ]
    lines = []
    for r in raw.fillna("").drop_duplicates(["rendering_npi", "supervising_npi"]).itertuples():
        text = (
            f"  Charted by     {r.rendering_credential} {r.rendering_last_name}, "
            f"{r.rendering_first_name}   NPI {r.rendering_npi}"
        )
        if r.supervising_npi:
            name = ", ".join(x for x in (r.supervising_last_name, r.supervising_first_name) if x)
            text += f"   supervised by {name}   NPI {r.supervising_npi}"
        elif r.rendering_credential in ("PTA", "OTA"):
            text += "   no supervising therapist charted"
        lines.append(text)
    return lines


_CHARTED_COLUMNS = (
    "encounter_id",
    "payer_id",
    "rendering_npi",
    "rendering_last_name",
    "rendering_first_name",
    "rendering_credential",
    "supervising_npi",
    "supervising_last_name",
    "supervising_first_name",
)


def show(out: str, claim_id: str) -> str:
    """Text for ``therapy-claims show``: every billed part of the claim, or why it is not billed.

    Raises ``LookupError`` when the claim is in neither the ledger nor any scored night.
    """
    hits = find(out, claim_id)
    texts = []
    for entry in hits.to_dict("records"):
        entry = {k: ("" if pd.isna(v) else v) for k, v in entry.items()}
        try:
            text = storage.read_bytes(entry["file"]).decode("ascii")
        except FileNotFoundError:
            texts.append(
                f"Claim {entry['claim_id']}: billed {entry['run_date']} in {entry['file']}, "
                "but that file is no longer there.\n"
            )
            continue
        parsed = parse_claim(text, entry["claim_id"])
        if parsed is None:
            texts.append(f"Claim {entry['claim_id']}: not found in {entry['file']}.\n")
            continue
        texts.append(format_claim(parsed, entry, _charted(out, entry)) + lifecycle_text(out, entry))
    if texts:
        return "\n".join(texts)
    return _not_billed(out, claim_id)


def _not_billed(out: str, claim_id: str) -> str:
    cid = claim_id.strip().upper()
    rows = []
    for rd, path in nights.layer_files(out, "scored", "scored.parquet"):
        s = _read_layer(path, "scored")
        s = s[(s["claim_id"] == cid) | (claim_key(s["claim_id"]) == cid)]
        if not s.empty:
            rows.append(s.assign(run_date=rd))
    if not rows:
        raise LookupError(
            f"claim {claim_id} is not in the ledger or in any scored night under {out}"
        )
    s = pd.concat(rows, ignore_index=True)
    out_lines = [f"Claim {cid}: not billed (not in the claim ledger)"]
    for rd, part in s.groupby("run_date", sort=True):
        out_lines.append(f"  run {rd}: {len(part)} line(s)")
        for r in part.to_dict("records"):
            codes = (
                ", ".join(list(r["exception_codes"])) if r["exception_codes"] is not None else ""
            )
            out_lines.append(
                f"    {r['line_id']}  {pd.Timestamp(r['date_of_service']).strftime('%m/%d/%Y')}  "
                f"{r['cpt_code']}  {r['status']:<10}  {codes}"
            )
    return "\n".join(out_lines) + "\n"


# --------------------------------------------------------------------------- show: lifecycle

LIFECYCLE_DIR = "lifecycle"  # <out>/lifecycle/: current.parquet, history.parquet (lifecycle)


def lifecycle_text(out: str, entry: dict) -> str:
    """What became of the claim after it was sent, from the lifecycle files: each step
    (date, status, kind, file, paid, the payer's reasons with their meaning where
    ``payer_reasons`` has one), then the current status. One line when there is no
    lifecycle yet or it has no row of the claim. Ids, codes, amounts, dates and file names
    only (the steps carry nothing else)."""
    current_path = storage.join(out, LIFECYCLE_DIR, "current.parquet")
    history_path = storage.join(out, LIFECYCLE_DIR, "history.parquet")
    if not storage.exists(current_path):
        return "\n  Lifecycle      none yet: no responses recorded for this output\n"
    cid = str(entry.get("claim_id", ""))
    current = [
        r
        for r in storage.read_table(current_path).filter(pc.field("claim_id") == cid).to_pylist()
        if str(r.get("run_date") or "") in ("", str(entry.get("run_date", ""))[:10])
    ]
    if not current:
        return "\n  Lifecycle      no row of this claim yet (sent after the last refresh)\n"
    steps = []
    if storage.exists(history_path):
        table = storage.read_table(history_path).filter(pc.field("claim_id") == cid)
        steps = sorted(table.to_pylist(), key=lambda r: r.get("step") or 0)
    from therapy_claims import payer_reasons

    meanings = payer_reasons.load().meanings
    out_lines = [
        "",
        "  Lifecycle",
        "   #  Date        Status                     Kind   Paid        File",
    ]
    for r in steps:
        paid = "" if r.get("paid") is None else f"{r['paid']:.2f}"
        out_lines.append(
            f"  {r.get('step') or '':>2}  {_day(r.get('status_on'))}  "
            f"{r.get('status') or '':<25}  {r.get('kind') or '':<5}  {paid:>10}  "
            f"{r.get('source_file') or ''}"
        )
        out_lines += _reasons(r.get("kind") or "", r.get("reason_codes") or [], meanings)
    c = current[-1]
    paid = f"   paid {c['paid']:.2f}" if c.get("paid") else ""
    out_lines.append(
        f"  Current status {c.get('status') or ''}   since {_day(c.get('status_on'))}   "
        f"({c.get('status_kind') or ''} {c.get('status_file') or ''}){paid}"
    )
    out_lines += _reasons(c.get("status_kind") or "", c.get("reason_codes") or [], meanings)
    return "\n".join(out_lines) + "\n"


def _day(value) -> str:
    """A date as MM/DD/YYYY, as the claim above shows its dates ('' for none)."""
    return value.strftime("%m/%d/%Y") if value is not None else "          "


def _reasons(kind: str, codes: list[str], meanings: dict[tuple[str, str], str]) -> list[str]:
    """One line per reason code, with its meaning where the mapping has one."""
    lines = []
    for code in codes:
        meaning = meanings.get((kind, str(code)))
        lines.append(f"        reason {code}" + (f": {meaning}" if meaning else ""))
    return lines
