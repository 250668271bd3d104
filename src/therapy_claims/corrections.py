"""Corrected, resubmitted and voided claims (issue 17): what score does with a claim that
another night sent.

A claim (one encounter for one payer at one clinic: its ``claim_key``) is sent once as an
original. When tonight's extract bills it again, the earlier sending's lifecycle status
(``<out>/lifecycle/current.parquet``, the ``lifecycle`` module's layer: the latest sending of
the claim by another night) decides:

- rejected by the clearinghouse or the payer: the payer never adjudicated it, so it goes out
  again as a new original (frequency 1) under a new CLM01 (``CLAIM_RESUBMITTED``);
- accepted, paid, partially paid or denied by the payer, with the payer's claim control
  number known, and tonight's billed lines differ from those sent (``lines_digest``): a
  replacement (frequency 7, REF*F8 the control number) under a new CLM01
  (``CLAIM_REPLACEMENT``);
- anything else (still in flight, lines unchanged, no control number, no digest recorded for
  the earlier sending, sent in parts, voided, no lifecycle layer): held ``ALREADY_BILLED``, the
  message saying which.

A reviewed release row with the code ``VOID`` and a ``claim_id`` (``releases.VOID``) asks for
a void of the claim: when the payer adjudicated its latest sending and its control number is
known, the claim goes out as a void (frequency 8, REF*F8) under a new CLM01 (``CLAIM_VOID``):
of tonight's billed lines when the extract bills it again, else (a claim that should never
have gone out, whose lines do not come again) of the claim as it was sent, which publish
copies from the original's 837 file (``x12.voids``; staged with its ``original_run_date``).
Otherwise (never sent by another night, rejected, in flight, no control number, voided
already, sent in parts, expired) nothing is voided and the row gets ``RELEASE_UNUSED`` saying
why, and the claim (if billed tonight) is held as above.

A later sending is the claim's version n >= 1, its CLM01 ``ledger_store.versioned_id``
(``R<n>`` + the key's hash), recorded in the ledger database's ``claim_versions`` with the
night that owns it: a rerun of the night keeps its version (and CLM01), and two nights
deciding the same version cannot both send it (the second to reserve fails). Score stages
what it decided per claim (``STAGED``): publish writes the frequency and reference into the
837 and the ledger layer, and reserves the versions.

Everything read from the lifecycle layer came from payers' files: a control number is sent
only if the 837 can carry it unchanged, and no message repeats it.
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from therapy_claims import findings, ledger, ledger_store, releases, storage
from therapy_claims.config import RunConfig, RunError
from therapy_claims.x12.constants import MAX_ORIGINAL_REFERENCE, ORIGINAL, REPLACEMENT, VOID
from therapy_claims.x12.fields import Invalid, ident

log = logging.getLogger("therapy_claims")

LIFECYCLE = ("lifecycle", "current.parquet")
# what score decided per claim billed tonight (CLM01 before any split), for publish
STAGED = ("work", "corrections.parquet")
STAGED_SCHEMA = pa.schema(
    [
        ("claim_id", pa.string()),  # tonight's CLM01 (a version's, if one), before any split
        ("claim_key", pa.string()),
        ("version", pa.int32()),
        ("frequency_code", pa.string()),
        ("original_claim_id", pa.string()),
        ("original_reference", pa.string()),
        ("lines_digest", pa.string()),
        # a void of a claim with no lines tonight: the night of the sending it copies (the
        # ledger row and 837 file publish builds it from); null for every other claim
        ("original_run_date", pa.string()),
    ]
)
# the lifecycle layer's columns read here (lifecycle-contract: current.parquet)
LIFECYCLE_COLUMNS = ["claim_id", "run_date", "status", "status_on", "payer_claim_control_number"]
RESEND = ("rejected_by_clearinghouse", "rejected_by_payer")
ADJUDICATED = ("accepted_by_payer", "paid", "partially_paid", "denied")
STATUSES = ("sent", "accepted_by_clearinghouse", *RESEND, *ADJUDICATED)
EVIDENCE = "claim ledger; lifecycle current.parquet"
# what the content digest covers, per billed line: what the claim bills and how (the line ids
# are not part of it: an extract that re-keys the same services changes nothing the payer has)
DIGEST_COLUMNS = (
    "cpt_code",
    "modifiers",
    "units",
    "charge_amount",
    "date_of_service",
    "diagnosis_pointers",
    "diagnosis_codes",
)
# two 64-bit lanes mixed per line (odd multipliers: each step a bijection mod 2^64)
_LANES = (np.uint64(0x9E3779B97F4A7C15), np.uint64(0xC2B2AE3D27D4EB4F))


# --------------------------------------------------------------------------- content digest


def content_digests(
    lines: pd.DataFrame, billed: np.ndarray, claims: tuple[np.ndarray, pd.Index] | None = None
) -> pd.Series:
    """Per claim (``claim_id``, the key before any split) with a billed line: a 128-bit
    digest (32 hex digits) of its billed lines as a multiset, each line its code, modifiers,
    units, charge in cents, date of service, diagnosis pointers and codes. The same lines
    give the same digest on any night, in any order; a change to what the claim bills gives
    another. Each distinct value of a column is hashed once (BLAKE2b-128, keyed by the
    column), each line's values are mixed into two 64-bit lanes, and a claim's digest is the
    sum of its lines' lanes (mod 2^64) with its line count: NumPy over whole columns, no
    Python per line or claim. ``claims``: each line's claim as ``pd.factorize`` of
    ``claim_id`` gives it, when the caller has it (else it is worked out here)."""
    at = np.flatnonzero(billed & lines["claim_id"].notna().to_numpy())
    if not len(at):
        return pd.Series(dtype="string")
    taken = pa.array(at)
    if claims is None:
        claim, ids = _codes(storage.text_array(lines["claim_id"]).take(taken))
    else:
        claim, ids = claims[0][at].astype(np.int64), list(claims[1])
    lanes = [np.full(len(at), np.uint64(len(DIGEST_COLUMNS)), dtype=np.uint64) for _ in _LANES]
    with np.errstate(over="ignore"):
        for column in DIGEST_COLUMNS:
            codes, texts = _distinct_texts(lines, column, at, taken)
            hashed = _value_hashes(column, texts)
            for lane, (h, mult) in enumerate(zip(hashed, _LANES, strict=True)):
                mixed = (lanes[lane] ^ h[codes]) * mult
                lanes[lane] = mixed ^ (mixed >> np.uint64(29))
        order = np.argsort(claim, kind="stable")
        sizes = np.bincount(claim, minlength=len(ids))
        present = np.flatnonzero(sizes)  # the claims with a billed line, in code order
        starts = (np.cumsum(sizes) - sizes)[present]
        folded = [
            np.add.reduceat(lane[order], starts) ^ sizes[present].astype(np.uint64)
            for lane in lanes
        ]
    pairs = np.stack(folded, axis=1).astype(">u8").tobytes().hex()
    digests = [pairs[32 * k : 32 * k + 32] for k in range(len(present))]
    index = pd.Index(np.asarray(ids, dtype=object)[present], dtype="string")
    return pd.Series(digests, index=index, dtype="string")


def _codes(values: pa.Array) -> tuple[np.ndarray, list]:
    """Per row a code into the distinct values (a missing value: the last code, None)."""
    encoded = pc.dictionary_encode(values)
    if isinstance(encoded, pa.ChunkedArray):
        encoded = encoded.combine_chunks()
    n = len(encoded.dictionary)
    codes = pc.fill_null(encoded.indices, n).to_numpy(zero_copy_only=False).astype(np.int64)
    return codes, [*encoded.dictionary.to_pylist(), None]


def _distinct_texts(
    lines: pd.DataFrame, column: str, at: np.ndarray, taken: pa.Array
) -> tuple[np.ndarray, list[str]]:
    """A digest column's codes at the rows ``at`` and its distinct values as text."""
    if column not in lines:
        return np.zeros(len(at), dtype=np.int64), [""]
    values = lines[column]
    if column == "charge_amount":
        cents = np.round(pd.to_numeric(values).to_numpy(dtype=float, na_value=np.nan)[at] * 100)
        codes, uniques = pd.factorize(cents, use_na_sentinel=False)
    elif column == "date_of_service":
        days = pd.to_datetime(values).to_numpy().astype("datetime64[D]")[at]
        codes, uniques = pd.factorize(days, use_na_sentinel=False)
    elif column == "units":
        units = pd.to_numeric(values).to_numpy(dtype=float, na_value=np.nan)[at]
        codes, uniques = pd.factorize(units, use_na_sentinel=False)
    elif isinstance(values.dtype, pd.StringDtype) or values.dtype == object:
        try:
            codes, uniques = _codes(storage.text_array(values).take(taken))
        except (pa.ArrowException, TypeError):  # lists (after score splits them)
            codes, uniques = pd.factorize(values.iloc[at].map(_text_of_list), use_na_sentinel=False)
    else:
        codes, uniques = pd.factorize(values.iloc[at], use_na_sentinel=False)
    return np.asarray(codes, dtype=np.int64), [_text_of(column, v) for v in uniques]


def _text_of_list(value) -> object:
    return ";".join(map(str, value)) if isinstance(value, list | tuple) else value


def _text_of(column: str, value) -> str:
    if value is None or (not isinstance(value, list | tuple) and pd.isna(value)):
        return ""
    if column == "date_of_service":
        return str(np.datetime64(value, "D"))
    if column in ("charge_amount", "units"):
        return str(int(value))
    if isinstance(value, list | tuple):
        return ";".join(map(str, value))
    return str(value)


def _value_hashes(column: str, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Two 64-bit hashes of each text (BLAKE2b-128 keyed by the column's name)."""
    key = column.encode("ascii")
    raw = b"".join(
        hashlib.blake2b(t.encode("utf-8"), digest_size=16, key=key).digest() for t in texts
    )
    words = np.frombuffer(raw, dtype="<u8").reshape(-1, 2)
    return words[:, 0].copy(), words[:, 1].copy()


# --------------------------------------------------------------------------- the lifecycle


def read_lifecycle(out: str) -> pd.DataFrame:
    """The lifecycle layer's current statuses (``LIFECYCLE_COLUMNS``), or none when there is
    no layer yet. A layer without those columns is not the contract's: ``RunError``."""
    path = storage.join(out, *LIFECYCLE)
    if not storage.exists(path):
        return pd.DataFrame({c: pd.Series(dtype="string") for c in LIFECYCLE_COLUMNS})
    table = storage.read_table(path)
    missing = [c for c in LIFECYCLE_COLUMNS if c not in table.column_names]
    if missing:
        raise RunError(f"{path} lacks the lifecycle columns {missing}: refresh the lifecycle layer")
    frame = table.select(LIFECYCLE_COLUMNS).to_pandas()
    for c in LIFECYCLE_COLUMNS:
        frame[c] = frame[c].astype("string")
    return frame


# --------------------------------------------------------------------------- the decision


@dataclass
class Decision:
    """What score does with the night's claims that another night sent: ``findings`` (on
    their lines), the CLM01 each line goes out under (``claim_ids``, same index as the
    lines: a version's for a resubmission or replacement), and per claim billed tonight the
    row publish reads (``claims``, ``STAGED_SCHEMA``)."""

    findings: pd.DataFrame
    claim_ids: pd.Series
    claims: pd.DataFrame

    @property
    def corrects(self) -> bool:
        """Whether any claim goes out as other than a plain original."""
        return bool((self.claims["version"] > 0).any())


def decide(
    cfg: RunConfig,
    lines: pd.DataFrame,
    billed: np.ndarray,
    voids: pd.DataFrame | None = None,
    claims: tuple[np.ndarray, pd.Index] | None = None,
) -> Decision:
    """The decision for the night's ``lines`` (enriched, ``claim_id`` the key) whose
    ``billed`` lines would go out, and the release rows asking for voids (``voids``:
    ``releases.Releases.voids``): see the module's docstring. ``claims``: the lines' claims
    factorised, if at hand."""
    voids = voids if voids is not None and len(voids) else None
    digests = content_digests(lines, billed, claims)
    keys = lines["claim_id"].dropna().astype(str).unique().tolist()
    # the claims a VOID row names that have no line tonight: voided from their sent file
    absent = (
        [] if voids is None else sorted(set(voids["claim_id"].dropna().astype(str)) - set(keys))
    )
    with ledger_store.opened(cfg.out, cfg.ledger) as store:
        owned = store.owned_elsewhere(keys + absent, cfg.rd)
        versions = store.versions(owned["claim_key"].tolist()) if len(owned) else None
    claims = pd.DataFrame({"claim_key": pd.Series(digests.index, dtype="string")})
    claims["claim_id"] = claims["claim_key"]
    claims["version"] = 0
    claims["frequency_code"] = ORIGINAL
    claims["original_claim_id"] = pd.NA
    claims["original_reference"] = pd.NA
    claims["lines_digest"] = digests.to_numpy()
    claims["original_run_date"] = pd.NA
    verdicts = _verdicts(cfg, owned, versions, digests) if len(owned) else None
    unused = findings.empty()
    if voids is not None:
        verdicts, unused = _voids(cfg, voids, verdicts, set(keys), digests)
    if verdicts is not None and absent:
        verdicts, void_rows, void_found = _absent_voids(voids, verdicts, set(absent))
        if len(void_rows):
            claims = pd.concat([claims, void_rows], ignore_index=True)
            log.info("score: %s claim(s) voided as sent (no line tonight)", len(void_rows))
        unused = findings.concat([void_found, unused])
    if verdicts is None or verdicts.empty:
        return Decision(unused, lines["claim_id"], _staged(claims))
    decision = _apply(lines, claims, verdicts)
    decision.findings = findings.concat([decision.findings, unused])
    counts = verdicts["action"].value_counts()
    log.info(
        "score: %s claim(s) sent by another night: %s held, %s resubmitted, %s replaced, %s voided",
        len(verdicts),
        *(int(counts.get(a, 0)) for a in ("hold", "resubmit", "replace", "void")),
    )
    return decision


def _verdicts(
    cfg: RunConfig, owned: pd.DataFrame, versions: pd.DataFrame, digests: pd.Series
) -> pd.DataFrame:
    """One row per claim key another night sent: ``action`` (``hold``, ``resubmit``,
    ``replace``), ``version``, ``sent_id`` (tonight's CLM01), the earlier sending (``basis_id``,
    ``basis_night``, ``file``, ``icn``), ``status``, ``status_on``, ``reference``, ``why``,
    and whether a void could be made of it (``void_why``, ``ccn``)."""
    basis = _basis(owned, versions, cfg.rd)
    # how each basis was sent, from its night's ledger layer: per claim key, its rows (dicts)
    wanted = basis[["claim_key", "basis_night"]].rename(columns={"basis_night": "run_date"})
    rows = ledger._layer_rows(cfg.out, wanted)
    sent: dict[str, list[dict]] = {}
    ids: set[str] = set()
    if len(rows):
        rows = rows.reindex(columns=ledger.COLUMNS).sort_values("claim_id", kind="stable")
        rows["version"] = rows["claim_id"].astype(str).map(ledger_store.version_of)
        ids = set(rows["claim_id"].astype(str))
        for record in rows.to_dict("records"):
            sent.setdefault(str(record["claim_key"]), []).append(record)
    # the lifecycle's status of each CLM01 sent on a night (the latest row if one repeats)
    life = read_lifecycle(cfg.out)
    life = life[life["claim_id"].isin(ids)]
    status = {
        (c, d): (st, on, ccn)
        for c, d, st, on, ccn in zip(
            life["claim_id"], life["run_date"], life["status"], life["status_on"],
            life["payer_claim_control_number"], strict=True,
        )
    }  # fmt: skip
    out = [
        _verdict(b, sent.get(b.claim_key, []), status, digests.get(b.claim_key))
        for b in basis.itertuples(index=False)
    ]
    return pd.DataFrame(out)


def _basis(owned: pd.DataFrame, versions: pd.DataFrame, run_date: str) -> pd.DataFrame:
    """Per claim key another night sent: the version tonight sends if it corrects it
    (``version``: the one this night already owns, else one more than the latest sent) and
    the sending it is decided on (``basis_version``, ``basis_night``, ``basis_frequency``: the
    latest sent version below it, by another night). Plain tuples: a night billing many
    claims again walks each once."""
    by_key: dict[str, list[tuple]] = {}
    for key, version, night, state, frequency in zip(
        versions["claim_key"], versions["version"], versions["run_date"], versions["state"],
        versions["frequency_code"], strict=True,
    ):  # fmt: skip
        by_key.setdefault(str(key), []).append((int(version), str(night), str(state), frequency))
    rows = []
    for key, original_night in zip(owned["claim_key"], owned["run_date"], strict=True):
        known = by_key.get(str(key), [])
        mine = [k[0] for k in known if k[1] == run_date]
        sent = [k for k in known if k[1] != run_date and k[2] == "committed"]
        if mine:
            version = mine[0]
            sent = [k for k in sent if k[0] < version]
        else:
            version = max((k[0] for k in sent), default=0) + 1
        if sent:
            basis_version, night, _, frequency = max(sent)
        else:
            basis_version, night, frequency = 0, str(original_night), ORIGINAL
        rows.append((str(key), version, basis_version, night, str(frequency)))
    columns = ["claim_key", "version", "basis_version", "basis_night", "basis_frequency"]
    return pd.DataFrame(rows, columns=columns)


def _verdict(b, sent: list[dict], status: dict, digest) -> dict:
    """One claim's verdict (``_verdicts``), with whether a void could be made of it
    (``void_why``: '' when it could, ``ccn`` its REF*F8)."""
    basis_id = ledger_store.versioned_id(b.claim_key, b.basis_version) or b.claim_key
    v = {
        "claim_key": b.claim_key,
        "version": b.version,
        "sent_id": ledger_store.versioned_id(b.claim_key, b.version),
        "basis_id": basis_id,
        "basis_night": b.basis_night,
        "file": pd.NA,
        "icn": pd.NA,
        "status": pd.NA,
        "status_on": pd.NA,
        "reference": pd.NA,
        "ccn": pd.NA,
        "action": "hold",
        "why": "",
        "void_why": "",
        "basis_digest": pd.NA,
    }
    v["why"] = _why(v, b, sent, status, digest)
    v["void_why"] = v.pop("_void_why", v["why"])
    return v


def _why(v: dict, b, sent: list[dict], status: dict, digest) -> str:
    """Fills ``v`` (``_verdict``); returns why the claim is held ('' when it is not)."""
    rows = [r for r in sent if r["version"] == b.basis_version]
    if not rows:
        return "its earlier sending's ledger row is no longer published"
    first = rows[0]
    v["basis_id"], v["file"] = str(first["claim_id"]), first["file"]
    v["basis_digest"] = first.get("lines_digest")
    v["icn"] = first["interchange_control_number"]
    if b.basis_frequency == VOID:
        return f"it was voided (as {v['basis_id']} on {b.basis_night})"
    if len(rows) > 1:
        return "it was sent in parts (a corrected claim in parts is not made automatically)"
    now = status.get((v["basis_id"], b.basis_night))
    if now is None:
        return "no response to it is known yet (no lifecycle status)"
    state, on, reference = now
    if state not in STATUSES:  # the layer is a file: only its known codes are shown
        return "its lifecycle status is not one the lifecycle contract names"
    v["status"], v["status_on"] = str(state), on
    seen = f"its status is {v['status']} since {_text(on)}"
    if v["sent_id"] is None:
        return f"{seen}, but the claim has no CLM01 version left"
    if v["status"] in RESEND:
        v["action"] = "resubmit"
        v["_void_why"] = f"{seen}: the payer adjudicated nothing to void"
        return ""
    if v["status"] not in ADJUDICATED:
        return f"{seen}: still in flight"
    if pd.isna(reference) or not str(reference).strip():
        return f"{seen} and no payer claim control number is known for it"
    if not _sendable(str(reference)):
        return f"{seen} and its payer claim control number cannot be sent in REF*F8"
    v["ccn"] = str(reference)
    v["_void_why"] = ""
    recorded = first.get("lines_digest")
    if pd.isna(recorded):
        return f"{seen}; it was sent before line digests were recorded"
    if pd.isna(digest) or str(recorded) == str(digest):
        return f"{seen} and its lines are unchanged"
    v["action"], v["reference"] = "replace", str(reference)
    return ""


def _sendable(reference: str) -> bool:
    """The 837 carries the control number as it is (REF02: 1-50 of the basic characters)."""
    try:
        return ident(reference, "original_reference", MAX_ORIGINAL_REFERENCE, 1) == reference
    except Invalid:
        return False


def _text(value) -> str:
    """A lifecycle date as YYYY-MM-DD (anything else: unknown)."""
    text = "" if pd.isna(value) else str(value)[:10]
    return text if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text) else "an unknown date"


def _voids(
    cfg: RunConfig,
    voids: pd.DataFrame,
    verdicts: pd.DataFrame | None,
    tonight: set[str],
    digests: pd.Series,
) -> tuple[pd.DataFrame | None, pd.DataFrame]:
    """The verdicts with each claim a VOID release row names made a ``void`` where one can
    be made (else held, whatever else it would have been), and ``RELEASE_UNUSED`` for the
    rows that void nothing."""
    by_key = None if verdicts is None else verdicts.set_index("claim_key", drop=False)
    unused_rows, why = [], []
    done: set[str] = set()
    for k, r in voids.iterrows():
        key = "" if pd.isna(r["claim_id"]) else str(r["claim_id"])
        expires = r["expires_on"]
        reason = ""
        if expires is not None and not pd.isna(expires) and expires < cfg.run_date:
            reason = f"expired on {expires.isoformat()}"
        elif key in done:
            reason = "an earlier VOID row names the claim"
        elif by_key is None or key not in by_key.index:
            reason = "the claim was not sent by another night: nothing to void"
        elif key in tonight and pd.isna(digests.get(key)):
            reason = "no line of the claim is billed tonight"
        else:
            v = by_key.loc[key]
            if not v["void_why"] and key not in tonight and not _sent_file_there(v["file"]):
                # a void of a claim with no line tonight is copied from that file: without it
                # the void is held here rather than failing the whole night in publish
                v = v.copy()
                v["void_why"] = (
                    "the claim file it was sent in is no longer there (a void without lines "
                    "tonight is copied from it)"
                )
            if v["void_why"]:
                reason = str(v["void_why"])
                held = f"a VOID release names it, and {reason}"
                by_key.loc[key, ["action", "reference"]] = ["hold", pd.NA]
                by_key.loc[key, "why"] = v["why"] or held
            else:
                by_key.loc[key, ["action", "reference"]] = ["void", v["ccn"]]
                done.add(key)
                continue
        done.add(key)
        unused_rows.append(k)
        why.append(reason)
    unused = releases.void_unused(voids.loc[unused_rows], why)
    return (None if by_key is None else by_key.reset_index(drop=True)), unused


def _sent_file_there(path) -> bool:
    return isinstance(path, str) and bool(path) and storage.exists(path)


def _absent_voids(
    voids: pd.DataFrame, verdicts: pd.DataFrame, absent: set[str]
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """The voids of claims with no line tonight (``absent``), taken out of ``verdicts``:
    their staged rows (``STAGED_SCHEMA``, ``original_run_date`` the night whose file publish
    copies) and their ``CLAIM_VOID`` findings, on the release row (no line of tonight). Such
    a claim that is not voided was only looked up for its VOID row: it has no verdict."""
    mine = verdicts["claim_key"].isin(absent)
    rest = verdicts[~mine].reset_index(drop=True)
    going = verdicts[mine & (verdicts["action"] == "void")]
    if going.empty:
        return rest, pd.DataFrame(columns=STAGED_SCHEMA.names), findings.empty()
    rows = pd.DataFrame(
        {
            "claim_id": going["sent_id"].to_numpy(),
            "claim_key": going["claim_key"].to_numpy(),
            "version": going["version"].to_numpy(),
            "frequency_code": VOID,
            "original_claim_id": going["basis_id"].to_numpy(),
            "original_reference": going["ccn"].to_numpy(),
            "lines_digest": going["basis_digest"].to_numpy(),
            "original_run_date": going["basis_night"].to_numpy(),
        }
    )
    # the VOID row that asked (the first naming each claim: later ones are RELEASE_UNUSED)
    asked = voids.assign(claim_id=voids["claim_id"].astype("string"))
    asked = asked.drop_duplicates("claim_id").set_index("claim_id")
    g = going.set_index("claim_key")
    at = asked.loc[g.index]
    where = pd.DataFrame(
        {"source_file": at["file"].to_numpy(), "source_row": at["row"].to_numpy()},
        index=pd.RangeIndex(len(g)),
    )
    message = (
        "claim " + pd.Series(g.index, dtype="string") + ": its earlier sending "
        + pd.Series(g["basis_id"].to_numpy(), dtype="string") + " ("
        + pd.Series(g["basis_night"].to_numpy(), dtype="string") + ") is "
        + pd.Series(g["status"].astype(str).to_numpy(), dtype="string") + " since "
        + pd.Series(g["status_on"].map(_text).to_numpy(), dtype="string")
        + "; a reviewed VOID release names it and no line of it is billed tonight, so a void "
        "(frequency 8, REF*F8 the payer's claim control number) of the claim as that sending "
        "carried it goes out under CLM01 " + pd.Series(g["sent_id"].to_numpy(), dtype="string")
    )  # fmt: skip
    found = findings.make("CLAIM_VOID", where, message, evidence=EVIDENCE + "; releases")
    return rest, rows, found


def _apply(lines: pd.DataFrame, claims: pd.DataFrame, verdicts: pd.DataFrame) -> Decision:
    """The findings, CLM01s and staged rows of the verdicts."""
    held = verdicts[verdicts["action"] == "hold"].set_index("claim_key")
    going = verdicts[verdicts["action"] != "hold"].set_index("claim_key")
    ids = lines["claim_id"].astype("string")
    frames = []
    hit = lines[ids.isin(held.index)]
    if len(hit):
        v = held.loc[hit["claim_id"].astype(str)]
        message = (
            "claim " + hit["claim_id"].astype(str) + " (encounter "
            + hit["encounter_id"].astype(str) + ", payer " + hit["payer_id"].astype(str)
            + ") was already billed on " + v["basis_night"].to_numpy() + " as "
            + v["basis_id"].to_numpy() + " in "
            + v["file"].fillna("a file no longer published").astype(str).to_numpy()
            + " (ISA13 " + v["icn"].fillna("unknown").astype(str).to_numpy() + "): not sent "
            "again: " + v["why"].to_numpy()
        )  # fmt: skip
        frames.append(findings.make("ALREADY_BILLED", hit, message, evidence="claim ledger"))
    for action, code in (
        ("resubmit", "CLAIM_RESUBMITTED"),
        ("replace", "CLAIM_REPLACEMENT"),
        ("void", "CLAIM_VOID"),
    ):
        mine = going[going["action"] == action]
        hit = lines[ids.isin(mine.index)]
        if not len(hit):
            continue
        v = mine.loc[hit["claim_id"].astype(str)]
        what = {
            "resubmit": "; sent again as a new original (frequency 1) under CLM01 ",
            "replace": "; its lines changed since, so a replacement (frequency 7, REF*F8 the "
            "payer's claim control number) goes out under CLM01 ",
            "void": "; a reviewed VOID release names it, so a void (frequency 8, REF*F8 the "
            "payer's claim control number) of tonight's lines goes out under CLM01 ",
        }[action]
        message = (
            "claim " + hit["claim_id"].astype(str) + ": its earlier sending "
            + v["basis_id"].to_numpy() + " (" + v["basis_night"].to_numpy() + ") is "
            + v["status"].astype(str).to_numpy() + " since "
            + v["status_on"].map(_text).to_numpy() + what + v["sent_id"].astype(str).to_numpy()
        )  # fmt: skip
        frames.append(findings.make(code, hit, message, evidence=EVIDENCE))
    sent_ids = ids.copy()
    if len(going):
        renamed = ids.map(going["sent_id"])
        sent_ids = renamed.fillna(ids).astype("string")
        at = claims["claim_key"].isin(going.index)
        g = going.loc[claims.loc[at, "claim_key"].astype(str)]
        claims.loc[at, "claim_id"] = g["sent_id"].to_numpy()
        claims.loc[at, "version"] = g["version"].to_numpy()
        frequency = {"resubmit": ORIGINAL, "replace": REPLACEMENT, "void": VOID}
        claims.loc[at, "frequency_code"] = g["action"].map(frequency).to_numpy()
        claims.loc[at, "original_claim_id"] = g["basis_id"].to_numpy()
        claims.loc[at, "original_reference"] = g["reference"].to_numpy()
    return Decision(findings.concat(frames), sent_ids, _staged(claims))


def _staged(claims: pd.DataFrame) -> pd.DataFrame:
    out = claims.reindex(columns=STAGED_SCHEMA.names)
    for c in STAGED_SCHEMA.names:
        out[c] = out[c].astype("int32" if c == "version" else "string")
    return out.reset_index(drop=True)


# --------------------------------------------------------------------------- handing over


def stage(cfg: RunConfig, claims: pd.DataFrame) -> None:
    """Stage the decision's rows of the claims that stay billed (``claims``) for publish."""
    table = pa.Table.from_pandas(_staged(claims), schema=STAGED_SCHEMA, preserve_index=False)
    storage.write_table(table, cfg.staged(*STAGED))


def read_staged(cfg: RunConfig) -> pd.DataFrame:
    """What score decided (``stage``), indexed by claim key (``by_key``); a night staged
    before issue 17 (none): originals."""
    path = cfg.staged(*STAGED)
    if not storage.exists(path):
        return by_key(_staged(pd.DataFrame(columns=STAGED_SCHEMA.names)))
    return by_key(_staged(storage.read_table(path).to_pandas()))


def by_key(staged: pd.DataFrame) -> pd.DataFrame:
    """The staged rows indexed by claim key (once: each claim file's lookups reuse it)."""
    if staged.index.name == "claim_key":
        return staged
    return staged.drop_duplicates("claim_key").set_index("claim_key", drop=False)


def corrected(staged: pd.DataFrame) -> pd.DataFrame:
    """Of the staged rows, the claims sent as other than a plain original, by claim key."""
    indexed = by_key(staged)
    return indexed[indexed["version"] > 0]


def writer_columns(claim_ids: pd.Series, staged: pd.DataFrame) -> pd.DataFrame | None:
    """``claim_frequency`` and ``original_reference`` per line (``claim_ids``: the lines'
    CLM01s, split parts too) for the 837 writer; None when no claim is corrected (the
    writer's originals, byte for byte)."""
    fixed = corrected(staged)
    if fixed.empty:
        return None
    keys = ledger.claim_key(claim_ids)
    return pd.DataFrame(
        {
            "claim_frequency": keys.map(fixed["frequency_code"]).astype("string"),
            "original_reference": keys.map(fixed["original_reference"]).astype("string"),
        },
        index=claim_ids.index,
    )


def ledger_columns(rows: pd.DataFrame, staged: pd.DataFrame) -> pd.DataFrame:
    """Ledger rows with how each claim was sent (``frequency_code``, ``original_claim_id``,
    ``original_reference``, ``lines_digest``) from score's decision, by claim key."""
    if rows.empty:
        return rows
    indexed = by_key(staged)
    keys = rows["claim_key"].astype("string")
    out = rows.copy()
    for c in ("frequency_code", "original_claim_id", "original_reference", "lines_digest"):
        out[c] = keys.map(indexed[c]).astype("string")
    out["frequency_code"] = out["frequency_code"].fillna(ORIGINAL)
    return out
