"""PHI separation (issue 16): with a PHI root (``run --phi-out``, DAG param ``phi_out``) the
raw extracts and the claim files go under that root, owner-only, in the same versioned layout,
and the analysts' root holds no names, addresses, member ids or dates of birth.

The night is a generated demo night (``therapy_claims.generate``: its patients' names,
addresses, member ids and dates of birth) plus a few rows that put such values in front of
the checks that quote what they find (a date of birth that is not a date, a ZIP in the wrong
format, a visit before the patient's birth). Every file under the analysts' root is scanned
for every one of the night's values, decoded as a reader would see it (Parquet cell by cell,
JSON strings, HTML text, the ledger database's rows). The same night runs again, crashes
once, and runs a last time, on local folders and on S3, to show that the folders of a
replaced run and of a crashed run go from both roots."""

from __future__ import annotations

import html
import io
import json
import os
import re
import sqlite3
import stat
import tempfile
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pytest

from therapy_claims import cli, config, generate, nights, pipeline, storage

RD = date(2026, 11, 27)
# the extract's columns whose values the analysts' root must never hold: names, address
# lines, member ids, and the other ids and names of the insurance (layout.PHI_COLUMNS has
# more: patient_id is the analysts' key to a patient, by the output contract; a city, a ZIP,
# an accident date or a free-text response are values an analysts' layer may hold by chance)
PHI_TEXT = (
    "patient_last_name",
    "patient_first_name",
    "subscriber_last_name",
    "subscriber_first_name",
    "patient_address",
    "member_id",
    "group_number",
    "prior_auth_number",
    "pc_claim_number",
    "employer_name",
)
PHI_DATES = ("patient_dob", "subscriber_dob")
# the crafted rows' values (each also a PHI value of the night)
BAD_DOB = "03/04/1951"  # not YYYY-MM-DD: ROW_INVALID on patient_dob
BAD_ZIP = "62X01"  # the wrong format: ROW_INVALID on patient_zip
LATE_DOB = "2029-07-19"  # after the date of service (a date no other column holds): DATE_INVALID


# --------------------------------------------------------------------------- the night


def write_night(landing: str, reference: Path) -> None:
    """The demo's night (``cli.cmd_demo``: two clinics' files and the rest, a roster without
    two clinicians) under ``landing`` (local or s3://), plus ``late_<D>.csv``: three rows of
    one generated patient, each its own visit, with a bad date of birth, a bad ZIP and a date
    of birth after the date of service, and a record of that patient cut short."""
    df = generate.generate(80, seed=16, run_date=RD, problem_rate=0.1)
    generate.write_reference(df, str(reference), leave_out=2)
    known = df["clinic_id"].where(df["clinic_id"].isin(["CLN01", "CLN02"]), "misc")
    for name, part in df.groupby(known, sort=True):
        generate.write(part, storage.join(landing, f"encounters_{name}_{RD}.csv"))
    base = df[df["clinic_id"] == "CLN01"].iloc[0]
    crafted = pd.DataFrame([base] * 3).reset_index(drop=True)
    crafted["line_id"] = ["PHI-L1", "PHI-L2", "PHI-L3"]
    crafted["encounter_id"] = ["PHI-E1", "PHI-E2", "PHI-E3"]
    crafted["patient_id"] = ["PHI-P1", "PHI-P2", "PHI-P3"]  # not copies of the patient's charge
    crafted["date_of_service"] = "2026-11-21"
    crafted.loc[0, "patient_dob"] = BAD_DOB
    crafted.loc[1, "patient_zip"] = BAD_ZIP
    crafted.loc[2, "patient_dob"] = LATE_DOB
    late = storage.join(landing, f"late_{RD}.csv")
    generate.write(crafted, late)
    # and a record cut short (8 fields where the header has them all): it cannot be parsed
    cut = ",".join(["PHI-L4", "PHI-E4", "CLN01", "2026-11-21", "PHI-P4"])
    cut += f",{base['patient_last_name']},{base['patient_first_name']},{base['patient_dob']}\n"
    storage.write_bytes(late, storage.read_bytes(late) + cut.encode("utf-8"))


def phi_values(landing: str, raw_layer: str) -> set[str]:
    """The night's PHI values of 4 characters or more: every distinct name, address line and
    member id, and every date of birth as the extract wrote it and as YYYY-MM-DD, from the
    extract files and from the raw layer (where the dates are typed), and the crafted ZIP."""
    frames = [
        pd.read_csv(io.BytesIO(storage.read_bytes(p)), dtype=str, keep_default_na=False)
        for p in storage.list_files(landing)
    ]
    extract = pd.concat(frames, ignore_index=True)
    raw = storage.read_parquet(raw_layer)
    values: set[str] = {BAD_ZIP}
    for c in PHI_TEXT:
        values.update(extract[c])
        values.update(raw[c].dropna())
    for c in PHI_DATES:
        values.update(extract[c])
        values.update(pd.to_datetime(raw[c]).dropna().dt.strftime("%Y-%m-%d"))
    return {v.strip() for v in values if len(v.strip()) >= 4}


# --------------------------------------------------------------------------- the scan


class Matcher:
    """Finds any of ``values`` in a text, as a whole value: not inside a longer word or number
    (a name ``MARK`` is not found in ``REMARKS``). Case as written: the extract's names are
    upper case, and upper case is how a copied value shows (CSS's ``green`` is not the name
    ``GREEN``). Linear in the text: each value is looked up by its first word."""

    WORD = re.compile(r"[^\W_]+")

    def __init__(self, values: set[str]) -> None:
        self.by_word: dict[str, list[tuple[int, str]]] = {}
        for v in values:
            first = self.WORD.search(v)
            assert first, v  # every value has a letter or digit
            self.by_word.setdefault(first.group(), []).append((first.start(), v))

    def find(self, text: str) -> set[str]:
        found = set()
        for word in self.WORD.finditer(text):
            for lead, v in self.by_word.get(word.group(), ()):
                start = word.start() - lead
                end = start + len(v)
                if start < 0 or text[start:end] != v:
                    continue
                if v[0].isalnum() and start > 0 and text[start - 1].isalnum():
                    continue
                if v[-1].isalnum() and end < len(text) and text[end].isalnum():
                    continue
                found.add(v)
        return found


def _table_text(table: pa.Table) -> str:
    """Every cell of every column (each distinct value once), as text."""
    out = []
    for name in table.column_names:
        cells = {str(x) for x in table.column(name).to_pylist()}
        out.append(f"[{name}]\n" + "\n".join(sorted(cells)))
    return "\n".join(out)


def _json_text(doc) -> str:
    """Every key, string and number of a JSON document, decoded (``\\u00dc`` is ``Ü``)."""
    out: list[str] = []

    def walk(x) -> None:
        if isinstance(x, dict):
            for k, v in x.items():
                out.append(str(k))
                walk(v)
        elif isinstance(x, list):
            for v in x:
                walk(v)
        elif x is not None:
            out.append(str(x))

    walk(doc)
    return "\n".join(out)


def _sqlite_text(data: bytes) -> str:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp, "db.sqlite")
        path.write_bytes(data)
        con = sqlite3.connect(path)
        try:
            tables = [
                r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")
            ]
            rows = [
                str(cell)
                for t in tables
                for row in con.execute(f'SELECT * FROM "{t}"')
                for cell in row
            ]
        finally:
            con.close()
    return "\n".join(rows)


def decoded(path: str) -> str:
    """A file's content as its reader sees it."""
    data = storage.read_bytes(path)
    name = storage.name(path).lower()
    if name.endswith(".parquet"):
        import pyarrow.parquet as pq

        return _table_text(pq.read_table(pa.BufferReader(data)))
    if name.endswith(".arrow"):
        return _table_text(pa.ipc.open_file(pa.BufferReader(data)).read_all())
    if name.endswith(".json"):
        return _json_text(json.loads(data))
    if name.endswith(".sqlite"):
        return _sqlite_text(data)
    text = data.decode("utf-8", errors="replace")
    return html.unescape(text) if name.endswith((".html", ".htm")) else text


def scan(root: str, matcher: Matcher) -> tuple[int, dict[str, set[str]]]:
    """(files scanned, PHI values found per file) for every file under ``root``, hidden
    ones (the ledger database, the staging area) included."""
    files = storage.list_files(root, hidden=True)
    hits = {}
    for f in files:
        if found := matcher.find(decoded(f)):
            hits[f] = found
    return len(files), hits


# --------------------------------------------------------------------------- helpers


@dataclass
class Roots:
    landing: str
    out: str
    phi: str
    reference: Path
    local: bool


def _runs(folder: str) -> set[str]:
    """The run ids of the ``run=`` folders right under ``folder``."""
    if not storage.is_dir(folder):
        return set()
    base = folder.rstrip("/")
    names = {p[len(base) + 1 :].split("/", 1)[0] for p in storage.list_files(folder, hidden=True)}
    return {n[len("run=") :] for n in names if n.startswith("run=")}


def _night(root: str, kind: str) -> str:
    return storage.join(root, kind, f"run_date={RD}")


def _mode(p: Path) -> int:
    return stat.S_IMODE(os.stat(p).st_mode)


def _cfg(r: Roots, run_id: str = "") -> pipeline.RunConfig:
    return pipeline.RunConfig(
        inputs=[r.landing],
        out=r.out,
        run_date=RD,
        reference=str(r.reference),
        phi_out=r.phi,
        run_id=run_id,
    )


def _crash(r: Roots, run_id: str) -> None:
    """A DAG run that got through publish and never committed (its manifest task did not
    run); its last task let go of the output's lock, as the DAG's does. Built from the DAG's
    params (``config_from``: ``phi_out``)."""
    params = {
        "input": r.landing,
        "out": r.out,
        "run_date": RD.isoformat(),
        "reference": str(r.reference),
        "phi_out": r.phi,
        "run_id": run_id,
    }
    cfg = pipeline.config_from(params)
    assert cfg.phi_out == r.phi
    for part in pipeline.plan_partitions(cfg, by="file"):
        pipeline.ingest_partition(cfg, part)
    pipeline.ingest_combine(cfg)
    pipeline.validate(cfg)
    pipeline.score(cfg)
    pipeline.publish(cfg)
    pipeline.release(cfg)


# --------------------------------------------------------------------------- the flow


def _first_night(r: Roots, capsys) -> dict:
    """``run --phi-out``: where every layer went, what the analysts' root holds, ``show``."""
    args = ["run", "--input", r.landing, "--out", r.out, "--phi-out", r.phi]
    args += ["--run-date", RD.isoformat(), "--reference", str(r.reference), "-q"]
    assert cli.main(args) in (0, 1)
    m = nights.committed(r.out, RD.isoformat())
    run = m["run_id"]
    for kind in config.PUBLISHED_DIRS:
        root = r.phi if kind in ("raw", "claims") else r.out
        assert m["outputs"][kind] == storage.join(root, kind, f"run_date={RD}", f"run={run}")
    assert m["claim_files"] and all(f["path"].startswith(r.phi + "/") for f in m["claim_files"])
    # the PHI layers are only under the PHI root, which holds nothing else
    assert not storage.exists(storage.join(r.out, "raw"))
    assert not storage.exists(storage.join(r.out, "claims"))
    assert not [f for f in storage.list_files(r.out, hidden=True) if f.endswith(".x12")]
    tops = {f[len(r.phi) + 1 :].split("/", 1)[0] for f in storage.list_files(r.phi, hidden=True)}
    assert tops == {"raw", "claims"}  # its staging area is gone with the run
    # the crafted rows reached the checks that quote values
    exc = storage.read_parquet(storage.join(m["outputs"]["exceptions"], "exceptions.parquet"))
    bad = exc[exc["line_id"].isin(["PHI-L1", "PHI-L2", "PHI-L3"])]
    codes = set(zip(bad["line_id"], bad["code"], strict=True))
    assert {
        ("PHI-L1", "ROW_INVALID"),
        ("PHI-L2", "ROW_INVALID"),
        ("PHI-L3", "DATE_INVALID"),
    } <= codes
    cut = exc[exc["message"].str.contains(f"late_{RD}.csv row 5: record has 8 fields")]
    assert len(cut) == 1 and cut["code"].iloc[0] == "ROW_INVALID"
    assert bad["message"].str.contains("not shown: PHI").sum() >= 3
    # show: the claim file (PHI root) read back through the ledger layer and the manifest
    ledger = storage.read_parquet(storage.join(m["outputs"]["ledger"], "ledger.parquet"))
    claim = ledger.iloc[0]
    raw = storage.read_parquet(storage.join(m["outputs"]["raw"], "raw.parquet"))
    patient = raw[raw["encounter_id"] == claim["encounter_id"]].iloc[0]
    capsys.readouterr()
    assert cli.main(["show", claim["claim_id"], "--out", r.out]) == 0
    shown = capsys.readouterr().out
    assert f"Claim {claim['claim_id']}" in shown and patient["patient_last_name"] in shown
    assert "Charted by" in shown  # from the raw layer, under the PHI root
    assert str(claim["file"]).startswith(r.phi + "/")
    return m


def _assert_no_phi(r: Roots, matcher: Matcher, raw_layer: str, claims: list[str]) -> None:
    """The analysts' root holds none of the night's PHI values; the scan does find them
    where they are (the raw layer, a claim file), so it is not blind."""
    scanned, hits = scan(r.out, matcher)
    assert scanned >= 10
    assert hits == {}
    assert len(matcher.find(decoded(raw_layer))) >= 50
    assert matcher.find(decoded(claims[0]))


def _owner_only(r: Roots) -> None:
    phi = Path(r.phi)
    for kind in ("raw", "claims"):
        night = phi / kind / f"run_date={RD}"
        files = [p for p in night.rglob("*") if p.is_file()]
        assert files, kind
        assert {_mode(p) for p in files} == {0o600}, kind
        assert {_mode(d) for d in [night, *(p for p in night.rglob("*") if p.is_dir())]} == {
            0o700
        }, kind
    assert _mode(phi / ".staging") == 0o700  # where the night's raw rows were staged


def run_the_nights(r: Roots, capsys) -> None:
    first = _first_night(r, capsys)
    a = first["run_id"]
    values = phi_values(r.landing, storage.join(first["outputs"]["raw"], "raw.parquet"))
    assert {BAD_DOB, BAD_ZIP, LATE_DOB} <= values and len(values) >= 200
    matcher = Matcher(values)
    claims = [f["path"] for f in first["claim_files"]]
    _assert_no_phi(r, matcher, storage.join(first["outputs"]["raw"], "raw.parquet"), claims)
    if r.local:
        _owner_only(r)

    b = pipeline.run(_cfg(r))["run_id"]  # a rerun: a is replaced, kept for its readers
    for kind in ("raw", "claims"):
        assert _runs(_night(r.phi, kind)) == {a, b}, kind
    assert _runs(_night(r.out, "scored")) == {a, b}
    _crash(r, "crashed-run")
    # the crashed run left folders in both roots, its staged work files included, and what
    # it staged in the analysts' root holds no PHI either
    for kind in ("raw", "claims", ".staging"):
        assert "crashed-run" in _runs(_night(r.phi, kind)), kind
    for kind in ("scored", "exceptions", "ledger", "reports", ".staging"):
        assert "crashed-run" in _runs(_night(r.out, kind)), kind
    assert scan(r.out, matcher)[1] == {}
    # a run of another output root sharing the PHI root: not this output's to remove
    foreign = storage.join(_night(r.phi, "raw"), "run=other-output", "raw.parquet")
    storage.write_bytes(foreign, b"another output's night")

    d = pipeline.run(_cfg(r))["run_id"]  # a and crashed-run go as d starts; b stays one run
    for kind in ("raw", "claims"):
        assert _runs(_night(r.phi, kind)) == {b, d} | ({"other-output"} if kind == "raw" else set())
    for kind in ("scored", "exceptions", "ledger", "validation", "reports"):
        assert _runs(_night(r.out, kind)) == {b, d}, kind
    assert _runs(_night(r.phi, ".staging")) == set() == _runs(_night(r.out, ".staging"))
    assert storage.exists(foreign)
    assert scan(r.out, matcher)[1] == {}
    if r.local:
        _owner_only(r)


def test_phi_separation_on_local_folders(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("THERAPY_CLAIMS_PHI_MODE", raising=False)  # owner-only: 0600 / 0700
    r = Roots(
        landing=str(tmp_path / "landing"),
        out=str(tmp_path / "out"),
        phi=str(tmp_path / "phi"),
        reference=tmp_path / "reference",
        local=True,
    )
    old = os.umask(0o022)
    try:
        write_night(r.landing, r.reference)
        run_the_nights(r, capsys)
    finally:
        os.umask(old)


def test_phi_separation_on_s3(bucket, tmp_path, capsys):
    """Both roots on S3, the PHI root in a bucket of its own (its own access, in S3's terms)."""
    import boto3

    phi_bucket = f"{bucket}-phi"
    boto3.client("s3").create_bucket(Bucket=phi_bucket)
    r = Roots(
        landing=f"s3://{bucket}/landing",
        out=f"s3://{bucket}/out",
        phi=f"s3://{phi_bucket}/phi",
        reference=tmp_path / "reference",
        local=False,
    )
    write_night(r.landing, r.reference)
    run_the_nights(r, capsys)


# --------------------------------------------------------------------------- the settings


def test_phi_root_settings(tmp_path):
    out = str(tmp_path / "out")
    cfg = pipeline.RunConfig(inputs=[], out=out, run_date=RD)
    # without a PHI root nothing moves: every folder under the output root, as before
    assert cfg.phi_out is None and cfg.phi_staging == cfg.staging
    assert cfg.staging_areas() == [cfg.staging]
    assert cfg.final("raw") == storage.join(out, "raw", f"run_date={RD}", f"run={cfg.run_id}")
    # the output root itself is no PHI root; blank is none
    for same in (out, out + "/", str(tmp_path / "x" / ".." / "out"), "", "  "):
        assert pipeline.RunConfig(inputs=[], out=out, run_date=RD, phi_out=same).phi_out is None
    for nested in (str(tmp_path / "out" / "phi"), str(tmp_path)):
        with pytest.raises(pipeline.RunError, match="overlap"):
            pipeline.RunConfig(inputs=[], out=out, run_date=RD, phi_out=nested)
    with pytest.raises(pipeline.RunError, match="overlap"):
        pipeline.RunConfig(inputs=[], out="s3://b/out", run_date=RD, phi_out="s3://b/out/phi")
    phi = str(tmp_path / "phi")
    cfg = pipeline.config_from({"out": out, "run_date": RD.isoformat(), "phi_out": phi})
    assert cfg.phi_out == phi and cfg.phi_staging.startswith(phi + "/.staging/")
    assert cfg.final("claims").startswith(phi + "/claims/")
    assert cfg.final("ledger").startswith(out + "/ledger/")
    # the PHI root's files are owner-only by their place, as under the output root
    assert storage.is_private(cfg.phi_staged("work", "raw.arrow"))
    assert storage.is_private(storage.join(cfg.final("raw"), "raw.parquet"))


def test_inputs_inside_the_phi_root_are_refused(tmp_path, capsys):
    landing = tmp_path / "phi" / "landing"
    landing.mkdir(parents=True)
    (landing / "a.csv").write_text("x\n")
    args = ["run", "--input", str(landing), "--out", str(tmp_path / "out")]
    args += ["--phi-out", str(tmp_path / "phi"), "--run-date", RD.isoformat(), "-q"]
    assert cli.main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "overlap" in err[0] and str(tmp_path / "phi") in err[0]


def test_cli_and_dags_take_a_phi_root(tmp_path, monkeypatch):
    """``run`` and ``demo`` take ``--phi-out``; the nightly and the event DAGs a ``phi_out``
    param (empty by default: everything under ``out``)."""
    from airflow.dag_processing.dagbag import DagBag

    parser = cli.build_parser()
    for command in (["run", "--input", "i", "--out", "o", "--run-date", "2026-11-27"], ["demo"]):
        assert parser.parse_args([*command, "--phi-out", "s3://phi/x"]).phi_out == "s3://phi/x"
        assert parser.parse_args(command).phi_out is None
    # the S3 event DAG exists with a queue to watch (as in test_dags: dag_settings reads the
    # environment on import, so it is read again here and once more after)
    import importlib

    from therapy_claims import dag_settings

    try:
        with monkeypatch.context() as env:
            env.setenv("THERAPY_CLAIMS_SQS_QUEUE", "http://127.0.0.1:1/123456789012/landing")
            env.setenv("THERAPY_CLAIMS_LANDING", str(tmp_path))
            env.delenv("THERAPY_CLAIMS_PHI_OUT", raising=False)
            importlib.reload(dag_settings)
            dags = DagBag(dag_folder=str(Path(__file__).resolve().parents[1] / "dags"))
            assert dags.import_errors == {}
            for dag_id in (
                "therapy_claims_nightly",
                "therapy_claims_s3_events",
                "therapy_claims_landing_events",
            ):
                assert dags.dags[dag_id].params["phi_out"] == "", dag_id
    finally:
        importlib.reload(dag_settings)
