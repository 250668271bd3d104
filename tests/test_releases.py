"""Releases: a reviewed file of overrides read by the next run, applied in score, never silent.

Night 1 holds four visits on an NCCI pair (97530 with 97140, no distinct-service modifier) and
bills one clean visit. Night 2 presents them again with release files: by worklist key, by
claim and by line the held claims go out (and their 837 passes pyx12); what cannot be
released, what expired, what matches nothing and what is malformed each says so.
"""

from __future__ import annotations

import contextlib
import csv
import io
import logging
import shutil
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from factories import row, write_csv
from x12_validate import independent_checks, pyx12_validate

from therapy_claims import cli, findings, pipeline, releases, storage

RD1, RD2 = date(2026, 11, 28), date(2026, 11, 29)
HELD = ("EA", "EC", "ED", "EE")  # each held on night 1 by NCCI_MODIFIER_MISSING on <enc>-1
NCCI = "NCCI_MODIFIER_MISSING"
HEADER = "clinic_id,encounter_id,claim_id,line_id,code,reason,released_by,released_on,expires_on"


def ncci_visit(enc: str, slot: int) -> list[dict]:
    """97530 then 97140 (an NCCI pair, indicator 1: 97530 is column 2) for one Medicare
    patient, 15 minutes each, in the clinician's own time slot (no overlap across visits)."""
    start = 8 * 60 + 40 * slot
    t = [f"{m // 60:02d}:{m % 60:02d}" for m in (start, start + 15, start + 30)]
    common = {
        "encounter_id": enc,
        "patient_id": f"P{enc}",
        "minutes": "15",
        "units_charted": "1",
        "charge_amount": "45.00",
    }
    return [
        row(line_id=f"{enc}-1", cpt_code="97530", start_time=t[0], end_time=t[1], **common),
        row(
            line_id=f"{enc}-2",
            cpt_code="97140",
            start_time=t[1],
            end_time=t[2],
            body_region="lumbar",
            technique="joint_mobilization",
            goal_id="G1",
            patient_response="tolerated well",
            **common,
        ),
    ]


def night_rows() -> list[dict]:
    rows = [r for i, enc in enumerate(HELD) for r in ncci_visit(enc, i)]
    clean = row(line_id="EB-1", encounter_id="EB", patient_id="PEB", start_time="12:00")
    return rows + [{**clean, "end_time": "12:30"}]


def run_night(out: Path, rd: date, landing: Path, **kw) -> tuple[pipeline.RunConfig, dict]:
    inp = write_csv(landing / "extract.csv", night_rows())
    cfg = pipeline.RunConfig(inputs=[str(inp)], out=str(out), run_date=rd, **kw)
    return cfg, pipeline.run(cfg)


def read_layer(cfg: pipeline.RunConfig, kind: str) -> pd.DataFrame:
    return pd.read_parquet(Path(cfg.final(kind)) / f"{kind}.parquet")


def status_of(cfg: pipeline.RunConfig) -> dict[str, str]:
    """Per encounter, its claim's status (every line of a claim has the same one here)."""
    s = read_layer(cfg, "scored")
    per = s.groupby("encounter_id")["status"].agg(lambda x: "/".join(sorted(set(x))))
    return per.to_dict()


def release_csv(*rows: str, header: str = HEADER) -> str:
    return "\n".join([header, *rows]) + "\n"


@pytest.fixture(scope="module")
def night1(tmp_path_factory) -> dict:
    """Night 1 in an output without releases: EA, EC, ED, EE held (NCCI), EB billed."""
    root = tmp_path_factory.mktemp("night1")
    cfg, m = run_night(root / "out", RD1, root / "landing")
    assert status_of(cfg) == {**dict.fromkeys(HELD, "held"), "EB": "billed"}
    exc = read_layer(cfg, "exceptions")
    assert sorted(exc.loc[exc["code"] == NCCI, "line_id"]) == [f"{e}-1" for e in HELD]
    # no release file: nothing about releases but the zero counts
    assert (m["releases_applied"], m["releases_unused"], m["release_files"]) == (0, 0, [])
    claim_ids = read_layer(cfg, "scored").groupby("encounter_id")["claim_id"].first()
    return {"root": root, "out": root / "out", "claim_ids": claim_ids.to_dict()}


def copy_of_night1(night1: dict, tmp_path: Path) -> Path:
    """The output after night 1, for a night 2 of its own (the committed night's folders are
    read where its manifest names them, unchanged)."""
    out = tmp_path / "out"
    shutil.copytree(night1["out"], out)
    return out


# a reason as a hostile reviewer (or a pasted e-mail) writes it: a formula start, X12
# delimiters and a segment, CR/LF, NUL, a bidi override, and longer than 200 characters
HOSTILE_REASON = (
    '=HYPERLINK("http://evil.example/x","click")\r\nNM1*IL*1*EVILSEGMENT~\x00\u202eREVERSED '
    + "padding " * 40
)
HOSTILE_WHO = "@evil\nreviewer\t"


@pytest.fixture(scope="module")
def released(night1, tmp_path_factory) -> dict:
    """Night 2 through ``therapy-claims -v run --releases FILE``: EA released by worklist key
    (with a hostile reason), EC by claim_id, ED by line_id; EE is not released. Every log
    record and everything printed is kept."""
    tmp = tmp_path_factory.mktemp("released")
    out = copy_of_night1(night1, tmp)
    quoted = '"' + HOSTILE_REASON.replace('"', '""') + '"'
    text = release_csv(
        f'CLN01,EA,,,{NCCI},{quoted},"{HOSTILE_WHO}",2026-11-28,',
        f",,{night1['claim_ids']['EC']},,{NCCI},distinct blocks documented,J. Rivera,2026-11-29,"
        "2026-12-31",
        f",,,ED-1,{NCCI},separate session,A. Chen,2026-11-29,2026-11-29",  # expires tonight
    )
    path = tmp / "reviewed" / "releases.csv"
    path.parent.mkdir()
    path.write_bytes(text.encode("utf-8"))
    landing = write_csv(tmp / "landing" / "extract.csv", night_rows())
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    keep, root_logger = Keep(level=logging.DEBUG), logging.getLogger()
    old_level = root_logger.level
    root_logger.addHandler(keep)
    root_logger.setLevel(logging.DEBUG)
    stdout, stderr = io.StringIO(), io.StringIO()
    try:
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
            rc = cli.main(
                ["-v", "run", "--input", str(landing), "--out", str(out),
                 "--run-date", RD2.isoformat(), "--releases", str(path)]
            )  # fmt: skip
    finally:
        root_logger.removeHandler(keep)
        root_logger.setLevel(old_level)
    cfg = pipeline.RunConfig(inputs=[], out=str(out), run_date=RD2)
    m = storage.read_json(cfg.manifest_path)
    cfg.run_id = m["run_id"]
    logged = "\n".join(
        [r.getMessage() for r in records]
        + [str(r.args) for r in records]
        + [stdout.getvalue(), stderr.getvalue()]
    )
    return {
        "rc": rc,
        "cfg": cfg,
        "m": m,
        "logged": logged,
        "file": str(path),
        "claim_ids": night1["claim_ids"],
    }


def test_released_claims_are_billed_the_next_night_by_key_claim_and_line(released):
    cfg, m = released["cfg"], released["m"]
    assert released["rc"] == 0
    assert status_of(cfg) == {"EA": "billed", "EC": "billed", "ED": "billed", "EE": "held",
                              "EB": "held"}  # fmt: skip
    assert m["releases_applied"] == 3 and m["releases_unused"] == 0
    assert m["release_files"] == [
        {"path": released["file"], "sha256": storage.sha256(released["file"]), "rows": 3}
    ]
    assert m["exceptions_by_code"]["RELEASED"] == 3
    # EB, billed on night 1, is ALREADY_BILLED: no release names it, it stays held
    assert m["exceptions_by_code"]["ALREADY_BILLED"] == 1


def test_the_original_findings_stay_and_released_says_before_and_after(released):
    exc = read_layer(released["cfg"], "exceptions")
    # the NCCI findings are all still there, released or not, with their code and severity
    ncci = exc[exc["code"] == NCCI]
    assert sorted(ncci["line_id"]) == [f"{e}-1" for e in HELD]
    assert set(ncci["severity"]) == {"error"}
    rel = exc[exc["code"] == "RELEASED"].set_index("line_id")
    assert sorted(rel.index) == ["EA-1", "EC-1", "ED-1"]
    assert set(rel["severity"]) == {"info"}
    assert set(rel["before"]) == {f"{NCCI} error holds claim"}
    assert rel.loc["EC-1", "after"] == (
        "released by J. Rivera on 2026-11-29: distinct blocks documented"
    )
    assert rel.loc["ED-1", "after"] == "released by A. Chen on 2026-11-29: separate session"
    assert "worklist key CLN01|EA" in rel.loc["EA-1", "message"]
    assert f"claim {released['claim_ids']['EC']}" in rel.loc["EC-1", "message"]
    assert "line ED-1" in rel.loc["ED-1", "message"]
    # lineage: the release file and its row (the header is row 1)
    assert set(rel["source_file"]) == {released["file"]}
    assert rel["source_row"].to_dict() == {"EA-1": 2, "EC-1": 3, "ED-1": 4}
    assert (
        rel.loc["EC-1", "claim_id"]
        == read_layer(released["cfg"], "scored").set_index("line_id").loc["EC-1", "claim_id"]
    )
    # the line shows both: the error and its release
    s = read_layer(released["cfg"], "scored").set_index("line_id")
    assert list(s.loc["EA-1", "exception_codes"]) == [NCCI, "RELEASED"]
    assert list(s.loc["EE-1", "exception_codes"]) == [NCCI]


def test_the_released_claims_837_validates(released):
    cfg, m = released["cfg"], released["m"]
    files = sorted(Path(cfg.final("claims")).glob("*.x12"))
    assert len(files) == len(m["claim_files"]) == 1
    text = files[0].read_text(encoding="ascii")
    ok, report = pyx12_validate(str(files[0]))
    assert ok and "IK5*A" in report, report
    assert independent_checks(text) == []
    scored = read_layer(cfg, "scored")
    billed = set(scored.loc[scored["status"] == "billed", "claim_id"])
    sent = {seg.split("*")[1] for seg in text.split("~") if seg.strip().startswith("CLM*")}
    assert sent == billed and len(sent) == 3
    # 97530 goes out as charted: the release does not add a modifier
    assert "HC:97530:GP*" in text


def test_a_hostile_reason_is_defused_in_exceptions_and_never_logged(released):
    cfg = released["cfg"]
    exc = read_layer(cfg, "exceptions")
    after = exc.loc[(exc["code"] == "RELEASED") & (exc["line_id"] == "EA-1"), "after"].iloc[0]
    # control characters (CR, LF, tab, NUL, the bidi override) are gone, each run is a space;
    # the reason is cut to 200 characters
    reason = (
        '=HYPERLINK("http://evil.example/x","click") NM1*IL*1*EVILSEGMENT~ REVERSED '
        + "padding " * 40
    ).strip()[:200]
    assert after == f"released by @evil reviewer on 2026-11-28: {reason}"
    assert not any(ch in after for ch in "\r\n\t\x00\u202e")
    # exceptions.csv: one record per finding, no cell a spreadsheet would run as a formula
    raw = (Path(cfg.final("exceptions")) / "exceptions.csv").read_bytes().decode("utf-8-sig")
    table = list(csv.reader(io.StringIO(raw, newline="")))
    assert len(table) == len(exc) + 1
    assert not [c for r in table for c in r if c[:1] in ("=", "+", "-", "@", "\t", "\r")]
    assert raw.count("\r\n") == len(exc) + 1  # no line break inside a cell
    cell = next(r[table[0].index("after")] for r in table if "EVILSEGMENT" in "".join(r))
    assert cell == after
    # the reason and the reviewer are in no log record and nothing printed, and in no claim file
    for secret in ("HYPERLINK", "EVILSEGMENT", "evil.example", "REVERSED", "evil", "reviewer"):
        assert secret not in released["logged"], secret
    x12 = "".join(p.read_text() for p in Path(cfg.final("claims")).glob("*.x12"))
    assert "EVIL" not in x12 and "HYPERLINK" not in x12
    # the log says what the releases did, as counts
    assert "3 applied, 0 unused" in released["logged"]


# ---- what is refused, expired, unused or malformed ------------------------------------------


@pytest.fixture(scope="module")
def refused(night1, tmp_path_factory) -> dict:
    """Night 2 with the team's folder ``<out>/releases/`` holding nothing that can apply."""
    tmp = tmp_path_factory.mktemp("refused")
    out = copy_of_night1(night1, tmp)
    folder = out / "releases"
    folder.mkdir()
    (folder / "a.csv").write_text(
        release_csv(
            f",,{night1['claim_ids']['EB']},,ALREADY_BILLED,payer lost it,A. Chen,2026-11-29,",
            f"CLN01,EA,,,{NCCI},reviewed,A. Chen,2026-11-20,2026-11-28",  # expired yesterday
            ",,,ZZ-9,AUTH_MISSING,reviewed,A. Chen,2026-11-29,",  # no such line
            "CLN01,EC,,,TIME_OVERLAP_SAME_PATIENT,reviewed,A. Chen,2026-11-29,",  # a warning
            f",,,ED-1,{NCCI},reviewed,A. Chen,28/11/2026,",  # bad date
            ",,,ED-1,NOT_A_CODE,reviewed,A. Chen,2026-11-29,",  # unknown code
            f",,,ED-1,{NCCI},,A. Chen,2026-11-29,",  # no reason
            f",,{night1['claim_ids']['ED']},ED-1,{NCCI},reviewed,A. Chen,2026-11-29,",  # two ways
            f"CLN01,,,,{NCCI},reviewed,A. Chen,2026-11-29,",  # half a worklist key
        )
    )
    # a misspelt column keeps the whole file out (its row would have released ED)
    (folder / "b.csv").write_text(
        "line_id,code,reason,released_by,released_on,expire_on\n"
        f"ED-1,{NCCI},reviewed,A. Chen,2026-11-29,2026-12-01\n"
    )
    (folder / "notes.txt").write_text("not a release file")
    cfg, m = run_night(out, RD2, tmp / "landing")
    return {"cfg": cfg, "m": m, "exc": read_layer(cfg, "exceptions"), "folder": str(folder)}


def by_code(exc: pd.DataFrame, code: str) -> pd.DataFrame:
    return exc[exc["code"] == code].reset_index(drop=True)


def test_nothing_refused_is_billed(refused):
    m = refused["m"]
    assert status_of(refused["cfg"]) == dict.fromkeys([*HELD, "EB"], "held")
    assert m["claim_files"] == [] and m["claims_billed"] == 0
    assert "RELEASED" not in m["exceptions_by_code"]
    assert m["releases_applied"] == 0 and m["releases_unused"] == 2
    # the files read are listed with their valid rows; the bad one and the text file too
    files = {Path(f["path"]).name: f["rows"] for f in m["release_files"]}
    assert files == {"a.csv": 4, "b.csv": 0}


def test_already_billed_cannot_be_released(refused):
    na = by_code(refused["exc"], "RELEASE_NOT_ALLOWED").set_index("encounter_id")
    eb = na.loc["EB"]
    assert eb["line_id"] == "EB-1" and eb["severity"] == "warning"
    assert "ALREADY_BILLED cannot be released" in eb["message"]
    assert eb["before"] == "ALREADY_BILLED error holds claim"
    assert eb["after"] == "not released: ALREADY_BILLED cannot be released"
    assert (eb["source_file"], eb["source_row"]) == (f"{refused['folder']}/a.csv", 2)
    # a warning holds nothing: there is nothing to release
    assert "is a warning: it holds no claim" in na.loc["EC", "message"]
    assert na.loc["EC", "source_row"] == 5


def test_expired_and_unmatched_releases_are_unused(refused):
    unused = by_code(refused["exc"], "RELEASE_UNUSED").set_index("source_row")
    assert sorted(unused.index) == [3, 4]
    assert "expired on 2026-11-28 (the run date is 2026-11-29)" in unused.loc[3, "message"]
    assert "worklist key CLN01|EA" in unused.loc[3, "message"]
    assert "line ZZ-9" in unused.loc[4, "message"]
    assert "matches no AUTH_MISSING error tonight" in unused.loc[4, "message"]
    assert unused["line_id"].isna().all()  # on no line: EA's release did nothing to it


def test_bad_rows_name_file_row_column_and_value(refused):
    bad = by_code(refused["exc"], "RELEASE_INVALID")
    a, b = f"{refused['folder']}/a.csv", f"{refused['folder']}/b.csv"
    expected = {
        (a, 6, "column released_on value '28/11/2026': not a date (YYYY-MM-DD)"),
        (a, 7, "column code value 'NOT_A_CODE': not a code of the rule catalogue"),
        (a, 8, "column reason value '': required value missing"),
        (a, 9, "column line_id value 'ED-1': give one of the worklist key, claim_id or line_id"),
        (a, 10, "column encounter_id value '': the worklist key needs both"),
        (b, 1, "column expire_on value 'expire_on': unknown column"),
        (f"{refused['folder']}/notes.txt", None, "not a .csv file"),
    }
    got = set()
    for r in bad.to_dict("records"):
        row_no = None if pd.isna(r["source_row"]) else int(r["source_row"])
        hit = [e for e in expected if e[0] == r["source_file"] and e[1] == row_no]
        assert len(hit) == 1, r["message"]
        assert hit[0][2] in r["message"], r["message"]
        where = f"release file {r['source_file']}" + (f" row {row_no}" if row_no else "")
        assert r["message"].startswith(where)
        got.add(hit[0])
    assert got == expected and len(bad) == len(expected)
    assert by_code(refused["exc"], "RELEASE_INVALID")["line_id"].isna().all()


# ---- s3 -----------------------------------------------------------------------------------


def test_release_file_on_s3_in_the_default_folder(bucket, tmp_path):
    out = f"s3://{bucket}/out"
    landing = f"s3://{bucket}/landing/extract.csv"
    from factories import to_csv

    storage.write_bytes(landing, to_csv(night_rows()).encode("utf-8"))
    storage.write_bytes(
        f"{out}/releases/2026-11-28.csv",
        release_csv(f"CLN01,EE,,,{NCCI},distinct,A. Chen,2026-11-28,").encode("utf-8"),
    )
    cfg = pipeline.RunConfig(inputs=[landing], out=out, run_date=RD1)
    m = pipeline.run(cfg)
    assert m["releases_applied"] == 1 and m["claims_billed"] == 2  # EE and EB
    assert [f["path"] for f in m["release_files"]] == [f"{out}/releases/2026-11-28.csv"]
    scored = storage.read_parquet(storage.join(cfg.final("scored"), "scored.parquet"))
    assert set(scored.loc[scored["status"] == "billed", "encounter_id"]) == {"EE", "EB"}
    exc = storage.read_parquet(storage.join(cfg.final("exceptions"), "exceptions.parquet"))
    assert exc.loc[exc["code"] == "RELEASED", "line_id"].tolist() == ["EE-1"]


# ---- the command line ------------------------------------------------------------------------


def test_a_releases_path_that_does_not_exist_exits_2_before_the_run(tmp_path, capsys):
    landing = write_csv(tmp_path / "landing" / "extract.csv", night_rows())
    missing = tmp_path / "no-such-releases"
    rc = cli.main(
        ["run", "--input", str(landing), "--out", str(tmp_path / "out"),
         "--run-date", RD1.isoformat(), "--releases", str(missing)]
    )  # fmt: skip
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2
    assert err == [
        f"therapy-claims: error: no releases at {missing}: the path given does not exist"
    ]
    assert not (tmp_path / "out" / "manifest").exists()


def test_config_from_reads_releases():
    cfg = pipeline.config_from({"out": "o", "run_date": "2026-11-28", "releases": "s3://b/r/"})
    assert cfg.releases == "s3://b/r/"
    assert pipeline.config_from({"out": "o", "run_date": "2026-11-28"}).releases is None


# ---- reading and matching, without a night ---------------------------------------------------


def read_text(tmp_path: Path, text: str | bytes, name: str = "r.csv") -> releases.Releases:
    p = tmp_path / name
    p.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8"))
    return releases.read(str(p))


def test_read_accepts_a_spreadsheets_csv(tmp_path):
    """A byte-order mark, upper-case column names, padded cells, a lower-case code, blank
    lines and empty trailing columns are what a spreadsheet writes: all fine."""
    text = (
        "\ufeffLINE_ID , Code,Reason,Released_By,Released_On,,\r\n"
        " L1 ,ncci_modifier_missing, ok ,Ann,2026-11-28,,\r\n"
        ",,,,,,\r\n\r\n"
    )
    rel = read_text(tmp_path, text)
    assert rel.invalid.empty
    assert rel.rows[["line_id", "code", "reason", "released_by"]].values.tolist() == [
        ["L1", NCCI, "ok", "Ann"]
    ]
    assert rel.rows["released_on"].tolist() == [date(2026, 11, 28)]
    assert rel.rows["expires_on"].tolist() == [None]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"line_id,code\xff\n", "not UTF-8 text"),
        (b"", "empty file: no header"),
        (
            b"line_id,code,reason,released_by\nL1,AUTH_MISSING,x,y\n",
            "row 1 column released_on value '': required column missing",
        ),
        (
            b"line_id,line_id,code,reason,released_by,released_on\n",
            "column line_id value 'line_id': the column is given more than once",
        ),
        (b"code,reason,released_by,released_on\n", "no column naming what is released"),
        (
            b"line_id,code,reason,released_by,released_on\nL1,AUTH_MISSING,x,y,2026-11-28,=1+1\n",
            "row 2 value '=1+1': more cells than the header has columns",
        ),
        (
            b"line_id,code,reason,released_by,released_on\nL1,AUTH_MISSING,x,y,2026-02-30\n",
            "column released_on value '2026-02-30': not a date",
        ),
    ],
)
def test_read_names_what_is_wrong(tmp_path, data, message):
    rel = read_text(tmp_path, data)
    assert rel.rows.empty
    assert len(rel.invalid) == 1 and set(rel.invalid["code"]) == {"RELEASE_INVALID"}
    assert message in rel.invalid["message"].iloc[0]
    assert rel.invalid["message"].iloc[0].startswith(f"release file {tmp_path / 'r.csv'}")


def test_clean_removes_control_characters_and_cuts():
    assert releases.clean("a\r\n\tb\x00c\u202ed\u200be", 200) == "a b c d e"
    assert releases.clean("  \n=x\n ", 200) == "=x"
    assert releases.clean("y" * 300, 200) == "y" * 200


def small_night():
    """Lines of two claims (one split in two parts) and findings on them, as score has them."""
    lines = pd.DataFrame(
        {
            "line_id": ["L1", "L2", "L3", "L4"],
            "encounter_id": ["E1", "E1", "E2", "E2"],
            "clinic_id": ["CLN01"] * 4,
            "claim_id": ["TCAAA", "TCAAA", "TCBBB", "TCBBB"],
        }
    ).astype("string")
    found = findings.concat(
        [
            findings.make(NCCI, lines.iloc[[0]], "pair"),
            findings.make("AUTH_MISSING", lines.iloc[[0, 1, 2, 3]], "no auth"),
            findings.make("FILE_REJECTED", pd.DataFrame({"source_file": ["f.csv"]}), "bad"),
        ]
    )
    at = np.array([0, 0, 1, 2, 3, -1])
    return lines, found, at


def test_apply_waives_exactly_the_named_findings(tmp_path):
    lines, found, at = small_night()
    rel = read_text(
        tmp_path,
        release_csv(
            ",,TCBBB-2,,AUTH_MISSING,r,a,2026-11-28,",  # a part names the whole claim
            ",,,L1,AUTH_MISSING,r,a,2026-11-28,",
            ",,,L1,AUTH_MISSING,again,b,2026-11-28,",  # the same finding again
        ),
    )
    done = releases.apply(rel, found, at, lines, RD1)
    # AUTH_MISSING on L1 (row 2), L3 and L4 (row 1); not NCCI on L1, not L2, not the file
    assert done.waived.tolist() == [False, True, False, True, True, False]
    assert (done.applied, done.unused) == (3, 0)
    out = done.found.set_index("line_id")
    assert sorted(out.index) == ["L1", "L3", "L4"]
    assert out.loc["L1", "after"] == "released by a on 2026-11-28: r"  # the first row names it


def test_apply_without_release_rows_changes_nothing(tmp_path):
    lines, found, at = small_night()
    rel = read_text(tmp_path, HEADER + "\n")
    done = releases.apply(rel, found, at, lines, RD1)
    assert not done.waived.any() and done.found.empty and (done.applied, done.unused) == (0, 0)
