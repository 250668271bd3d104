"""Claim files end to end: 837P and 837I from one night, claims over 50 lines split, file size
limit, control numbers across nights, byte-identical reruns, the claim ledger, ALREADY_BILLED
and ``therapy-claims show``. Every claim file written is checked with pyx12 and the
independent checks."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest
from factories import OTHER_NPI, row, write_csv
from x12_validate import independent_checks, pyx12_validate

from therapy_claims import cli, ledger, nights, pipeline

RD1 = date(2026, 11, 28)
RD2 = date(2026, 11, 29)
_SLOTS: dict[str, int] = {}


def visit(
    enc: str,
    n: int = 1,
    *,
    clinic="CLN01",
    payer="MCR01",
    patient="P1",
    first=date(2026, 6, 1),
    **kw,
):
    """``n`` clean 97110 lines (15 min, 1 unit each) of one encounter, on successive days from
    ``first`` (within the payer's timely filing of the run dates here: one year for Medicare)."""
    # one clinician treats everyone: give each encounter its own time slot (no overlap)
    slot = _SLOTS.setdefault(enc, len(_SLOTS))
    start = 7 * 60 + 20 * slot
    times = {
        "start_time": f"{start // 60:02d}:{start % 60:02d}",
        "end_time": f"{(start + 15) // 60:02d}:{(start + 15) % 60:02d}",
    }
    if clinic == "CLN03":  # an 837I to Medicare carries the therapy dates (occurrence codes)
        kw = {"plan_of_care_start": "2026-05-01", "plan_of_care_end": "2027-06-30", **kw}
    out = []
    for i in range(n):
        out.append(
            row(
                line_id=f"{enc}-L{i}",
                encounter_id=enc,
                patient_id=patient,
                clinic_id=clinic,
                payer_id=payer,
                date_of_service=(first + timedelta(days=i)).isoformat(),
                minutes="15",
                units_charted="1",
                charge_amount="30.00",
                **{**times, **kw},
            )
        )
    return out


def run(tmp_path: Path, rows: list[dict], rd: date, name="night", **cfg_kw) -> tuple:
    inp = write_csv(tmp_path / f"landing-{rd}-{name}" / "extract.csv", rows)
    cfg = pipeline.RunConfig(inputs=[str(inp)], out=str(tmp_path / "out"), run_date=rd, **cfg_kw)
    return cfg, pipeline.run(cfg)


def claim_files(cfg) -> dict[str, bytes]:
    return {f.name: f.read_bytes() for f in sorted(Path(cfg.final("claims")).glob("*.x12"))}


def scored(cfg) -> pd.DataFrame:
    return pd.read_parquet(Path(cfg.final("scored")) / "scored.parquet")


def segments(data: bytes) -> list[list[str]]:
    return [s.strip().split("*") for s in data.decode("ascii").split("~") if s.strip()]


def assert_files_valid(cfg, m) -> None:
    files = claim_files(cfg)
    assert sorted(files) == sorted(Path(f["path"]).name for f in m["claim_files"])
    for name, data in files.items():
        ok, report = pyx12_validate(str(Path(cfg.final("claims")) / name))
        assert ok, (name, report)
        assert "IK5*A" in report
        assert independent_checks(data.decode("ascii")) == [], name


def clm01s(cfg) -> dict[str, str]:
    """CLM01 -> file name, over the night's claim files."""
    out = {}
    for name, data in claim_files(cfg).items():
        for seg in segments(data):
            if seg[0] == "CLM":
                assert seg[1] not in out, "CLM01 repeated"
                out[seg[1]] = name
    return out


@pytest.fixture
def mixed(tmp_path):
    rows = (
        visit("E1", 2)
        # COM01 takes claims for 90 days after the date of service (payers.csv timely_filing)
        + visit("E2", 1, payer="COM01", patient="P2", first=date(2026, 11, 2))
        + visit("H1", 2, clinic="CLN03", patient="P3")
        + visit(
            "H2",
            1,
            clinic="CLN03",
            patient="P4",
            discipline="OT",
            modifiers="GO",
            subscriber_relationship="spouse",
            subscriber_last_name="MÜLLER",
            subscriber_first_name="ZOË",
            subscriber_dob="1950-01-01",
            patient_last_name="O*BRIEN~",
            patient_address="12 MAIN ST:APT^4",
        )
    )
    return run(tmp_path, rows, RD1)


# ---- 837P + 837I in one night --------------------------------------------------------------


def test_professional_and_institutional_files(mixed):
    cfg, m = mixed
    assert m["balanced"]
    s = scored(cfg)
    assert set(s["status"]) == {"billed"}, s[["line_id", "status", "exception_codes"]]
    assert_files_valid(cfg, m)
    kinds = sorted((f["receiver_id"], f["claim_type"]) for f in m["claim_files"])
    assert kinds == [("CLEARHOUSE1", "837P"), ("MCRJ15", "837I"), ("MCRJ15", "837P")]
    names = claim_files(cfg)
    inst = [n for n in names if "_837I_" in n]
    assert len(inst) == 1
    text = names[inst[0]].decode("ascii")
    assert "*005010X223A2~" in text and "SV2*0420*HC:97110:GP*30*UN*1~" in text
    assert "SV2*0430*HC:97110:GO*30*UN*1~" in text
    assert "NM1*QC*1*O BRIEN*" in text and "NM1*IL*1*MULLER*ZOE" in text
    assert "N3*12 MAIN ST APT 4~" in text
    # each file has one sender: the clinic's submitter id
    for name, data in names.items():
        isa06 = segments(data)[0][6].strip()
        assert isa06 == ("LAKEVIEWHOSP03" if "_837I_" in name else "RIVERSIDEPT01")
    # every billed line's claim_id is the CLM01 it was sent under, in a file of its claim type
    sent = clm01s(cfg)
    for r in s.to_dict("records"):
        assert r["claim_id"] in sent
        assert ("_837I_" in sent[r["claim_id"]]) == (r["clinic_id"] == "CLN03")


def test_ledger_records_every_billed_claim(mixed):
    cfg, m = mixed
    path = Path(cfg.final("ledger")) / "ledger.parquet"
    led = pd.read_parquet(path)
    # the night is the partition (run_date=D), named in the file's metadata, not a column
    assert "run_date" not in led.columns
    assert pq.read_schema(path).metadata[b"therapy_claims.run_date"].decode() == cfg.rd
    assert len(led) == m["claims_billed"] == 4
    assert set(led["claim_id"]) == set(clm01s(cfg))
    assert set(led["claim_type"]) == {"837P", "837I"}
    s = scored(cfg)
    for r in led.to_dict("records"):
        lines = s[s["claim_id"] == r["claim_id"]]
        assert r["lines"] == len(lines)
        assert float(r["charge"]) == pytest.approx(lines["charge_amount"].sum())
        assert Path(r["file"]).exists()
        isa = segments(Path(r["file"]).read_bytes())[0]
        assert r["interchange_control_number"] == isa[13]
        assert r["transaction_set_control_number"] == "0001"
        assert r["claim_key"] == r["claim_id"]
    # no names or addresses in the ledger
    assert not {"patient_last_name", "patient_address", "member_id"} & set(led.columns)


def test_rerun_gives_identical_bytes(mixed, tmp_path):
    cfg, _ = mixed
    before = claim_files(cfg)
    led_before = pd.read_parquet(Path(cfg.final("ledger")))
    m2 = pipeline.run(cfg)
    assert claim_files(cfg) == before
    assert m2["exceptions_by_code"].get("ALREADY_BILLED") is None  # same night: no duplicate
    assert m2["exceptions_by_code"].get("CLAIM_NOT_RESENT") is None  # every claim sent again
    led_after = pd.read_parquet(Path(cfg.final("ledger")))
    # the same claims, files and control numbers; the files are in the new run's folder
    for led in (led_before, led_after):
        led["file"] = led["file"].map(lambda f: Path(f).name)
    pd.testing.assert_frame_equal(led_before, led_after)


# ---- across nights ----------------------------------------------------------------------------


def test_two_run_dates_distinct_control_numbers_and_already_billed(tmp_path):
    cfg1, m1 = run(tmp_path, visit("E1", 2) + visit("H1", 1, clinic="CLN03", patient="P3"), RD1)
    night1 = claim_files(cfg1)
    assert m1["claims_billed"] == 2
    # night 2: E1 and H1 are presented again (re-sent extract), E9 is new
    rows2 = visit("E1", 2) + visit("H1", 1, clinic="CLN03", patient="P3") + visit("E9", 1)
    cfg2, m2 = run(tmp_path, rows2, RD2)
    assert_files_valid(cfg2, m2)
    assert m2["claims_billed"] == 1 and m2["claims_held"] == 2
    assert m2["exceptions_by_code"]["ALREADY_BILLED"] == 3  # every line of E1 and H1
    s2 = scored(cfg2)
    held = s2[s2["status"] == "held"]
    assert set(held["encounter_id"]) == {"E1", "H1"}
    assert all("ALREADY_BILLED" in list(c) for c in held["exception_codes"])
    e2 = pd.read_parquet(Path(cfg2.final("exceptions")) / "exceptions.parquet")
    msgs = e2.loc[e2["code"] == "ALREADY_BILLED", "message"].tolist()
    assert all("already billed on 2026-11-28" in x for x in msgs)
    assert any(name in x for x in msgs for name in night1)  # points at the earlier file
    # control numbers never reused across the two nights
    isa1 = {segments(d)[0][13] for d in night1.values()}
    isa2 = {segments(d)[0][13] for d in claim_files(cfg2).values()}
    assert isa1 and isa2 and not isa1 & isa2
    gs1 = {segments(d)[1][6] for d in night1.values()}
    gs2 = {segments(d)[1][6] for d in claim_files(cfg2).values()}
    assert not gs1 & gs2
    # the duplicate reached no claim file
    assert set(clm01s(cfg2)) == set(s2.loc[s2["encounter_id"] == "E9", "claim_id"])
    # re-running night 1 after night 2 is still identical (night 2 billed none of its claims)
    pipeline.run(cfg1)
    assert claim_files(cfg1) == night1


def test_ledger_history_is_read_across_partitions(tmp_path):
    cfg1, _ = run(tmp_path, visit("E1", 1), RD1)
    cfg2, _ = run(tmp_path, visit("E2", 1), RD2)
    led = ledger.read(cfg1.out)
    assert sorted(led["run_date"]) == ["2026-11-28", "2026-11-29"]
    assert len(ledger.read(cfg1.out, exclude_run_date="2026-11-29")) == 1


# ---- limits -----------------------------------------------------------------------------------


def test_claim_over_50_lines_is_split(tmp_path):
    # a long Medicare episode passes the KX threshold: its lines carry KX (else KX_REQUIRED holds)
    cfg, m = run(tmp_path, visit("BIG", 120, modifiers="GP;KX") + visit("E2", 2, patient="P2"), RD1)
    assert_files_valid(cfg, m)
    s = scored(cfg)
    big = s[s["encounter_id"] == "BIG"]
    assert set(big["status"]) == {"billed"}
    assert big["claim_id"].value_counts().sort_index().tolist() == [50, 50, 20]
    base = big["claim_id"].iloc[0].rsplit("-", 1)[0]
    assert sorted(big["claim_id"].unique()) == [f"{base}-1", f"{base}-2", f"{base}-3"]
    assert all(len(c) <= 20 for c in big["claim_id"])
    # parts follow date order: the first 50 dates are part 1
    first = big.sort_values("date_of_service").head(50)
    assert set(first["claim_id"]) == {f"{base}-1"}
    sent = clm01s(cfg)
    assert set(s["claim_id"]) == set(sent)
    assert m["claims_billed"] == 4
    # the ledger knows the parts belong to one claim; show finds all parts by the base id
    led = ledger.read(cfg.out)
    assert (led["claim_key"] == base).sum() == 3
    text = ledger.show(cfg.out, base)
    assert text.count("Claim " + base + "-") == 3


def test_unwritable_part_holds_every_part(tmp_path):
    rows = visit("BIG", 60, modifiers="GP;KX")  # past the KX threshold: KX on its lines
    # a line rendered by another clinician whose name X12 cannot carry: its part is unwritable
    rows[55].update(rendering_npi=OTHER_NPI, rendering_last_name="🙂", rendering_first_name="🙂")
    cfg, m = run(tmp_path, rows + visit("E2", 1, patient="P2"), RD1)
    assert m["balanced"]
    s = scored(cfg)
    big = s[s["encounter_id"] == "BIG"]
    assert set(big["status"]) == {"held"}, big["exception_codes"].tolist()
    assert all("CLAIM_DATA_INVALID" in list(c) for c in big["exception_codes"])
    assert m["claims_billed"] == 1
    assert_files_valid(cfg, m)
    assert not any(c.startswith(big["claim_id"].iloc[0][:17]) for c in clm01s(cfg))
    led = ledger.read(cfg.out)
    assert len(led) == 1


def test_file_size_limit_splits_files(tmp_path):
    rows = [r for i in range(12) for r in visit(f"E{i}", 1, patient=f"P{i}")]
    cfg, m = run(tmp_path, rows, RD1, max_file_bytes=3000)
    assert_files_valid(cfg, m)
    files = claim_files(cfg)
    assert len(files) > 1
    assert all(len(d) <= 3000 for d in files.values())
    assert sum(f["claims"] for f in m["claim_files"]) == m["claims_billed"] == 12
    icns = [segments(d)[0][13] for d in files.values()]
    assert len(set(icns)) == len(icns)
    # the same limit cuts the same way on a rerun
    pipeline.run(cfg)
    assert claim_files(cfg) == files


def test_usage_indicator_is_configurable(tmp_path):
    cfg, _ = run(tmp_path, visit("E1", 1), RD1)
    assert all(segments(d)[0][15] == "T" for d in claim_files(cfg).values())
    cfg_p, _ = run(tmp_path, visit("E1", 1), RD1, usage="P")
    assert all(segments(d)[0][15] == "P" for d in claim_files(cfg_p).values())


# ---- show --------------------------------------------------------------------------------------


def test_show_prints_a_billed_claim(mixed, capsys):
    cfg, _ = mixed
    s = scored(cfg)
    cid = s.loc[s["encounter_id"] == "E1", "claim_id"].iloc[0]
    assert cli.main(["show", cid, "--out", cfg.out]) == 0
    out = capsys.readouterr().out
    assert f"Claim {cid}" in out and "CMS-1500" in out
    for expected in (
        "DOE, JOHN",
        "MEDICARE PART B JURISDICTION SAMPLE",
        "RIVERSIDE PHYSICAL THERAPY",
        "NPI 1500123454",
        "M5450",
        "97110",
        "GP",
        "30",
        "MCRJ15",
        "_837P_",
        "ISA13",
    ):
        assert expected in out, (expected, out)
    assert "06/01/2026" in out and "06/02/2026" in out


def test_show_prints_an_institutional_claim(mixed, capsys):
    cfg, _ = mixed
    s = scored(cfg)
    cid = s.loc[s["encounter_id"] == "H2", "claim_id"].iloc[0]
    assert cli.main(["show", cid, "--out", cfg.out]) == 0
    out = capsys.readouterr().out
    for expected in (
        "UB-04",
        "Type of bill   0131",
        "0430",
        "GO",
        "Attending",
        "O BRIEN",
        "_837I_",
    ):
        assert expected in out, (expected, out)
    assert "relationship spouse" in out and "MULLER, ZOE" in out


def test_show_held_and_unknown_claims(tmp_path, capsys):
    rows = visit("E1", 1) + visit("E2", 1, patient="P2", payer="NOPE")
    cfg, _ = run(tmp_path, rows, RD1)
    s = scored(cfg)
    held = s.loc[s["encounter_id"] == "E2", "claim_id"].iloc[0]
    assert cli.main(["show", held, "--out", cfg.out]) == 0
    out = capsys.readouterr().out
    assert "not billed" in out and "held" in out and "UNKNOWN_PAYER" in out
    assert cli.main(["show", "TCNOSUCHCLAIM0000", "--out", cfg.out]) == 1
    assert "not in the ledger" in capsys.readouterr().err


def test_failed_rerun_keeps_previous_claims_and_ledger(mixed, monkeypatch):
    cfg, _ = mixed
    before = claim_files(cfg)
    led_path = Path(cfg.final("ledger")) / "ledger.parquet"
    led_before = led_path.read_bytes()
    from therapy_claims import x12

    def boom(*a, **k):
        raise RuntimeError("disk full")

    monkeypatch.setattr(x12, "build_837i", boom)
    published = cfg.run_id
    with pytest.raises(RuntimeError):
        pipeline.run(cfg)
    assert nights.committed(cfg.out, cfg.rd)["run_id"] == published  # the old night stands
    cfg.run_id = published
    assert claim_files(cfg) == before
    assert led_path.read_bytes() == led_before
    assert set(ledger.read(cfg.out)["claim_id"]) == set(clm01s(cfg))


def test_file_cuts_never_separate_the_parts_of_a_split_claim(tmp_path):
    # a 120-line claim (3 parts) among small ones, with files far smaller than the big claim:
    # its parts share one file (the only way to keep it whole), the others are cut around it
    rows = (
        visit("A", 1, patient="PA")
        + visit("BIG", 120, modifiers="GP;KX")  # past the KX threshold: KX on its lines
        + [r for i in range(6) for r in visit(f"E{i}", 1, patient=f"P{i}")]
    )
    cfg, m = run(tmp_path, rows, RD1, max_file_bytes=4000)
    assert_files_valid(cfg, m)
    where = clm01s(cfg)
    big = {f for c, f in where.items() if c.count("-")}
    assert len(big) == 1, where  # all three parts in the same file
    assert sum(1 for c in where if c.count("-")) == 3
    others = [f for f in claim_files(cfg) if f not in big]
    assert others and all(len(claim_files(cfg)[f]) <= 4000 for f in others)
    assert m["claims_billed"] == len(where)
