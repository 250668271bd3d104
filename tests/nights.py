"""A synthetic multi-file night (several clinics, CSV + Parquet + JSON Lines, a line_id repeated
across files, a row that cannot be typed, a rejected file) and helpers to compare two runs."""

from __future__ import annotations

import datetime as dt
import io

import pandas as pd

from therapy_claims import generate, storage

RD = dt.date(2026, 11, 27)


def write_night(landing: str, *, encounters: int = 120, seed: int = 7) -> list[str]:
    """Write the night's files under ``landing`` (local folder or s3://); returns their paths."""
    df = generate.generate(encounters, seed=seed, run_date=RD, problem_rate=0.1)
    known = df["clinic_id"].where(df["clinic_id"].isin(["CLN01", "CLN02"]), "misc")
    paths = []
    suffix = {"CLN01": "csv", "CLN02": "parquet", "misc": "jsonl"}
    for name, part in df.groupby(known, sort=True):
        p = storage.join(landing, name, f"encounters_{name}_{RD}.{suffix[name]}")
        generate.write(part.reset_index(drop=True), p)
        paths.append(p)
    # a second file for CLN01 repeating a line_id from the first (DUPLICATE_LINE across files)
    # and carrying a row that cannot be typed (ROW_INVALID + ENCOUNTER_INCOMPLETE)
    extra = df[df["clinic_id"] == "CLN01"].head(3).copy()
    extra.iloc[1:, extra.columns.get_loc("line_id")] = ["LX-1", "LX-2"]
    extra.iloc[2, extra.columns.get_loc("date_of_service")] = "2026-02-30"
    p = storage.join(landing, "CLN01", f"late_{RD}.csv")
    generate.write(extra.reset_index(drop=True), p)
    paths.append(p)
    # a file rejected whole (no required columns)
    p = storage.join(landing, "misc", "notes.csv")
    storage.write_bytes(p, b"hello,world\n1,2\n")
    paths.append(p)
    return sorted(paths)


def outputs(out: str) -> dict:
    """What must be equal between two runs of the same night: claim file bytes, scored and
    exceptions content, and the manifest's counts."""
    rd = RD.isoformat()
    m = storage.read_json(storage.join(out, "manifest", f"run_date={rd}.json"))
    folder = m["outputs"]  # the committed run's folders
    claims = {storage.name(p): storage.read_bytes(p) for p in storage.list_files(folder["claims"])}
    scored = storage.read_parquet(storage.join(folder["scored"], "scored.parquet"))
    exc = storage.read_parquet(storage.join(folder["exceptions"], "exceptions.parquet"))
    keep = [k for k in m if k.startswith(("rows_", "lines_", "claims_"))] + ["exceptions_by_code"]
    return {
        "claims": claims,
        "scored": _canon(scored),
        "exceptions": _canon(exc),
        "counts": {k: m[k] for k in keep},
        "inputs": [
            (storage.name(i["path"]), i["sha256"], i["rows"], i["accepted"]) for i in m["inputs"]
        ],
    }


def _canon(df: pd.DataFrame) -> str:
    """Frame content as text, independent of the output root (source_file paths differ)."""
    df = df.copy()
    if "source_file" in df.columns:
        df["source_file"] = df["source_file"].map(lambda p: None if pd.isna(p) else storage.name(p))
    if "message" in df.columns:
        df["message"] = df["message"].astype("string")
    buf = io.StringIO()
    df.to_csv(buf, index=False)
    return buf.getvalue()


def writer_lines(cfg, lines: pd.DataFrame) -> pd.DataFrame:
    """The lines of a build publish asked for (its ``lines``: publish builds the claims from
    the columns score checked them with, and names the lines by ``line_id``) as the 837
    writer takes lines themselves: every claim field, from the run's scored and raw layers,
    in the same order."""
    from therapy_claims import reference
    from therapy_claims.handover import read_file
    from therapy_claims.stages import claim_files
    from therapy_claims.stages.ingest import RAW
    from therapy_claims.stages.score import SCORED

    # the layers in their internal form, as publish reads them
    scored = read_file(cfg.staged(*SCORED))
    raw = read_file(cfg.staged(*RAW))
    ids = lines["line_id"].to_numpy(dtype=object)
    at_s = pd.Index(scored.column("line_id").to_pandas()).get_indexer(ids)
    at_r = pd.Index(raw.column("line_id").to_pandas()).get_indexer(ids)
    assert (at_s >= 0).all() and (at_r >= 0).all()
    submitters = reference.load(cfg.reference).clinics["submitter_id"]
    return claim_files.lines_at(scored, raw, at_s, at_r, submitters)
