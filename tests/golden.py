"""Golden nights: two seeded generated nights and a digest of everything a night publishes.

The digest is what must never change while the code is reorganised: the bytes of every 837
file, every output table's schema and content sorted by its key (not the Parquet bytes, which
depend on the writer's row groups), the exception CSV as the billers open it, and the
manifest's counts and inventories. Paths of the machine (the landing folder, the output root,
the installed reference data) are written relative to their roots, and times are left out.

``python tests/golden.py`` rewrites ``tests/golden/digests.json``: only for a change that is
meant to change outputs, in a commit that says which outputs and why.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import re
import sys
import tempfile
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq

from therapy_claims import generate, storage
from therapy_claims.layout import COLUMN_NAMES

HERE = Path(__file__).resolve().parent
DIGESTS = HERE / "golden" / "digests.json"
RD = dt.date(2026, 11, 27)

# each output table's key: its rows are sorted by these columns before hashing
TABLE_KEYS = {
    "raw/raw.parquet": ["line_id"],
    "scored/scored.parquet": ["line_id"],
    "ledger/ledger.parquet": ["claim_id"],
    "exceptions/exceptions.parquet": None,  # no key: every column, in order
    "worklist/worklist.parquet": ["worklist_key"],
}
VOLATILE_COLUMNS = {"ingested_at"}  # the wall-clock time the night started
PATH_COLUMNS = ("source_file", "file", "path")


# --------------------------------------------------------------------------- the nights


def small_night(landing: Path) -> list[str]:
    """A few hundred lines with every problem the generator injects, split over CSV, Parquet
    and JSON Lines files per clinic, plus hand-made lines for what the generator never makes:
    a line_id repeated across files, a row that cannot be typed, a file rejected whole, GX
    consistency failures, NCCI/MUE/overlap/region/modifier edits, a claim the 837 cannot carry,
    and a claim over the 837P line limit (split into parts)."""
    df, problems = generate.generate_labelled(400, seed=20261127, run_date=RD, problem_rate=0.6)
    missing = set(generate.PROBLEM_KINDS) - set(problems["kind"])
    assert not missing, f"the small golden night lacks problem kinds {sorted(missing)}"
    known = df["clinic_id"].where(df["clinic_id"].isin(["CLN01", "CLN02"]), "misc")
    suffix = {"CLN01": "csv", "CLN02": "parquet", "misc": "jsonl"}
    paths = []
    for name, part in df.groupby(known, sort=True):
        p = landing / name / f"encounters_{name}_{RD}.{suffix[name]}"
        generate.write(part.reset_index(drop=True), str(p))
        paths.append(p)
    extra = df[df["clinic_id"] == "CLN01"].head(3).copy()
    extra.iloc[1:, extra.columns.get_loc("line_id")] = ["LX-1", "LX-2"]
    extra.iloc[2, extra.columns.get_loc("date_of_service")] = "2026-02-30"
    p = landing / "CLN01" / f"late_{RD}.csv"
    generate.write(extra.reset_index(drop=True), str(p))
    paths.append(p)
    p = landing / "misc" / "notes.csv"
    p.write_bytes(b"hello,world\n1,2\n")
    paths.append(p)
    p = landing / "CLN01" / f"crafted_{RD}.csv"
    _write_rows(p, _crafted_rows())
    paths.append(p)
    return sorted(str(x) for x in paths)


def large_night(landing: Path) -> list[str]:
    """About 100,000 lines in one CSV, the generator's default problem rate."""
    df = generate.generate(38_000, seed=20261128, run_date=RD)
    p = landing / f"night_{RD}.csv"
    generate.write(df, str(p))
    return [str(p)]


NIGHTS = {"small": small_night, "large": large_night}


def _row(**overrides: str) -> dict[str, str]:
    base = {
        "line_id": "C1",
        "encounter_id": "CE1",
        "clinic_id": "CLN01",
        "date_of_service": "2026-11-20",
        "patient_id": "CP1",
        "patient_last_name": "DOE",
        "patient_first_name": "JOHN",
        "patient_dob": "1950-03-04",
        "patient_sex": "M",
        "patient_address": "1 ELM ST",
        "patient_city": "SPRINGFIELD",
        "patient_state": "IL",
        "patient_zip": "62701",
        "payer_id": "MCR01",
        "member_id": "1EG4TE5MK72",
        "subscriber_relationship": "self",
        "rendering_npi": "1700345675",
        "rendering_last_name": "SMITH",
        "rendering_first_name": "ANN",
        "rendering_credential": "PT",
        "discipline": "PT",
        "cpt_code": "97110",
        "modifiers": "GP",
        "minutes": "30",
        "start_time": "09:00",
        "end_time": "09:30",
        "units_charted": "2",
        "charge_amount": "90.00",
        "diagnosis_codes": "M54.50;M62.81",
        "diagnosis_pointers": "1",
        "place_of_service": "11",
        "group_size": "1",
    }
    base.update(overrides)
    return base


def _crafted_rows() -> list[dict[str, str]]:
    """Lines for the edits the generator does not make (each encounter its own claim)."""
    chiro = {
        "discipline": "CHIRO",
        "rendering_credential": "DC",
        "payer_id": "COM02",
        "prior_auth_number": "A1",
        "clinic_id": "CLN01",
    }
    mt = {"technique": "myofascial_release", "goal_id": "G", "patient_response": "ok"}
    untimed = {"minutes": "", "start_time": "", "end_time": ""}
    rows = [
        # NCCI pair without a distinct modifier; CMT and 97140 on the same region
        _row(
            line_id="C-NC1",
            encounter_id="CE-NC",
            patient_id="CP-NC",
            cpt_code="98940",
            modifiers="AT",
            body_region="lumbar;thoracic",
            **untimed,
            **chiro,
        ),
        _row(
            line_id="C-NC2",
            encounter_id="CE-NC",
            patient_id="CP-NC",
            cpt_code="97140",
            modifiers="",
            body_region="lumbar",
            **mt,
            **chiro,
        ),
        # XS on the same region
        _row(
            line_id="C-XS1",
            encounter_id="CE-XS",
            patient_id="CP-XS",
            cpt_code="98940",
            modifiers="AT",
            body_region="lumbar",
            **untimed,
            **chiro,
        ),
        _row(
            line_id="C-XS2",
            encounter_id="CE-XS",
            patient_id="CP-XS",
            cpt_code="97140",
            modifiers="XS",
            body_region="lumbar",
            **mt,
            **chiro,
        ),
        # 59 together with an X modifier; an unknown modifier; a bad modifier format
        _row(line_id="C-MD1", encounter_id="CE-MD1", patient_id="CP-MD1", modifiers="GP;59;XS"),
        _row(line_id="C-MD2", encounter_id="CE-MD2", patient_id="CP-MD2", modifiers="GP;ZZ"),
        _row(line_id="C-MD3", encounter_id="CE-MD3", patient_id="CP-MD3", modifiers="GP;g!"),
        # minutes that disagree with start and end; a region that is not a region
        _row(line_id="C-TI1", encounter_id="CE-TI1", patient_id="CP-TI1", minutes="45"),
        _row(
            line_id="C-RG1",
            encounter_id="CE-RG1",
            patient_id="CP-RG1",
            cpt_code="97140",
            body_region="elbowish",
            **mt,
        ),
        # one clinician, two patients, overlapping times
        _row(line_id="C-OV1", encounter_id="CE-OV1", patient_id="CP-OV1"),
        _row(
            line_id="C-OV2",
            encounter_id="CE-OV2",
            patient_id="CP-OV2",
            start_time="09:15",
            end_time="09:45",
        ),
        # group therapy charted as one-on-one; MUE over the limit; a code Medicare does not cover
        _row(
            line_id="C-GR1",
            encounter_id="CE-GR1",
            patient_id="CP-GR1",
            group_size="3",
            start_time="11:00",
            end_time="11:30",
        ),
        _row(
            line_id="C-MU1",
            encounter_id="CE-MU1",
            patient_id="CP-MU1",
            cpt_code="97140",
            minutes="120",
            start_time="12:00",
            end_time="14:00",
            units_charted="8",
            charge_amount="360.00",
            **mt,
        ),
        _row(
            line_id="C-NC9",
            encounter_id="CE-CV1",
            patient_id="CP-CV1",
            cpt_code="97014",
            modifiers="GP",
            **untimed,
        ),
        # a name that is empty once X12's delimiters are removed: the 837 cannot carry it
        _row(
            line_id="C-BAD",
            encounter_id="CE-BAD",
            patient_id="CP-BAD",
            patient_last_name="*~^:",
            start_time="16:00",
            end_time="16:30",
        ),
        # a future date of service; an NPI with a wrong check digit
        _row(
            line_id="C-DT1",
            encounter_id="CE-DT1",
            patient_id="CP-DT1",
            date_of_service="2026-11-30",
        ),
        _row(
            line_id="C-NP1", encounter_id="CE-NP1", patient_id="CP-NP1", rendering_npi="1700345676"
        ),
    ]
    # 60 lines of one visit on a professional claim: over the 837P limit of 50, sent in parts
    for i in range(60):
        minute = 8 * 60 + i
        rows.append(
            _row(
                line_id=f"C-LG{i:02d}",
                encounter_id="CE-LG",
                patient_id="CP-LG",
                payer_id="COM01",
                cpt_code="97010",
                modifiers="GP",
                minutes="",
                start_time=f"{minute // 60:02d}:{minute % 60:02d}",
                end_time="",
                units_charted="1",
                charge_amount="18.00",
                rendering_npi="1800456786",
                rendering_last_name="JONES",
            )
        )
    return rows


def _write_rows(path: Path, rows: list[dict[str, str]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    frame = pd.DataFrame([{c: r.get(c, "") for c in COLUMN_NAMES} for r in rows])
    frame.to_csv(path, index=False)


# --------------------------------------------------------------------------- the digest


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


_RUN_FOLDER = re.compile(r"[/\\]run=[A-Za-z0-9._-]+(?=[/\\]|$)")


def _relative(value: object, roots: list[str]) -> object:
    """A path under a root as ``<root>/...``, without the run's own folder (``run=<id>``:
    a run id is new each run, the night's content is not)."""
    if not isinstance(value, str):
        return value
    for root in roots:
        if value.startswith(root):
            return _RUN_FOLDER.sub("", "<root>" + value[len(root) :])
    return value


def table_digest(path: str, key: list[str] | None, roots: list[str]) -> dict:
    """Schema and content of one Parquet table, rows sorted by ``key``, paths relative."""
    table = pq.read_table(path)
    frame = table.to_pandas()
    frame = frame.drop(columns=[c for c in VOLATILE_COLUMNS if c in frame.columns])
    for c in PATH_COLUMNS:
        if c in frame.columns:
            frame[c] = frame[c].map(lambda v: _relative(v, roots))
    for c in frame.columns:  # lists and arrays as text, so they sort and hash
        if (
            frame[c].dtype == object
            and frame[c].map(lambda v: hasattr(v, "__len__") and not isinstance(v, str)).any()
        ):
            frame[c] = frame[c].map(
                lambda v: None if v is None else "|".join(str(x) for x in list(v))
            )
    by = key or list(frame.columns)
    frame = frame.sort_values(by=by, kind="mergesort", na_position="first").reset_index(drop=True)
    buf = io.StringIO()
    frame.to_csv(buf, index=False)
    schema = [f"{f.name}:{f.type}" for f in table.schema]
    return {
        "rows": len(frame),
        "schema": _sha("\n".join(schema).encode()),
        "content": _sha(buf.getvalue().encode()),
    }


def digest(out: str, landing: str, rd: dt.date = RD) -> dict:
    """Everything a night publishes under ``out`` (a local folder), as hashes."""
    night = f"run_date={rd.isoformat()}"
    base = Path(out)
    roots = [str(Path(landing)), str(base)]
    result: dict = {}
    m = json.loads((base / "manifest" / f"{night}.json").read_text())
    folder = {kind: Path(path) for kind, path in m["outputs"].items()}  # the committed run's
    result["claims"] = {p.name: _sha(p.read_bytes()) for p in sorted(folder["claims"].glob("*"))}
    for rel, key in TABLE_KEYS.items():
        kind, name = rel.split("/")
        p = folder[kind] / name
        result[rel] = table_digest(str(p), key, roots) if p.exists() else None
    csv = (folder["exceptions"] / "exceptions.csv").read_text(encoding="utf-8")
    for root in roots:
        csv = csv.replace(root, "<root>")
    result["exceptions/exceptions.csv"] = _sha(csv.encode("utf-8"))
    keep = [k for k in m if k.startswith(("rows_", "lines_", "claims_"))]
    result["manifest"] = {
        **{k: m[k] for k in keep},
        "balanced": m["balanced"],
        "worklist": m.get("worklist"),
        "exceptions_by_code": m["exceptions_by_code"],
        "validation": m["validation"],
        "inputs": [
            {k: _relative(v, roots) for k, v in i.items() if k != "seconds"} for i in m["inputs"]
        ],
        "claim_files": [{k: _relative(v, roots) for k, v in f.items()} for f in m["claim_files"]],
        "reference_files": [{**f, "path": storage.name(f["path"])} for f in m["reference_files"]],
        "outputs": {k: _relative(v, roots) for k, v in m["outputs"].items()},
    }
    return result


# --------------------------------------------------------------------------- the two ways in


def run_cli(landing: str, out: str, *extra: str) -> int:
    """The night through ``therapy-claims run`` (in this process)."""
    from therapy_claims.cli import main

    return main(
        ["run", "--input", landing, "--out", out, "--run-date", RD.isoformat(), "--quiet", *extra]
    )


def run_dag_stages(landing: str, out: str) -> None:
    """The night through the calls the DAG's tasks make, one after the other, each handing
    over through the staging area as separate task processes do."""
    from therapy_claims import pipeline

    cfg = pipeline.config_from({"input": landing, "out": out, "run_date": RD.isoformat()})
    for files in pipeline.plan_partitions(cfg, by="folder"):
        pipeline.ingest_partition(cfg, list(files))
    pipeline.ingest_combine(cfg)
    pipeline.validate(cfg)
    pipeline.score(cfg)
    pipeline.publish(cfg)
    pipeline.manifest(cfg)


def load() -> dict:
    return json.loads(DIGESTS.read_text())


def _regenerate() -> None:  # pragma: no cover - a developer's command, not a test
    digests = {}
    for name, make in NIGHTS.items():
        with tempfile.TemporaryDirectory() as tmp:
            landing = Path(tmp) / "landing"
            make(landing)
            cli_out, dag_out = str(Path(tmp) / "cli"), str(Path(tmp) / "dag")
            run_cli(str(landing), cli_out)
            run_dag_stages(str(landing), dag_out)
            a, b = digest(cli_out, str(landing)), digest(dag_out, str(landing))
            assert a == b, f"{name}: the CLI and the DAG's stages disagree"
            digests[name] = a
    DIGESTS.parent.mkdir(exist_ok=True)
    DIGESTS.write_text(json.dumps(digests, indent=1, sort_keys=True) + "\n")
    print(f"wrote {DIGESTS}")


if __name__ == "__main__":
    sys.path.insert(0, str(HERE))
    _regenerate()
