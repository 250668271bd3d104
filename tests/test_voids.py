"""A void of a claim whose lines do not come again (issue 17): a reviewed VOID release row
names a claim another night sent and the payer paid; tonight's extract has none of its lines,
so the void is copied from the 837 file the claim was sent in (CLM05-3 8, REF*F8), sent once
whatever reruns, and never again once sent."""

from __future__ import annotations

from pathlib import Path

import factories
import pandas as pd
import pytest
from test_corrections import (
    CREATED,
    NIGHT1,
    RD1,
    RD2,
    RD3,
    args,
    config,
    exceptions,
    three_claims,
    versions_table,
    visit,
    write_lifecycle,
)
from x12_validate import independent_checks, pyx12_validate

from therapy_claims import ledger, ledger_store, nights, pipeline, reference, storage, x12
from therapy_claims.x12 import reader, voids

HEADER = "clinic_id,encounter_id,claim_id,line_id,code,reason,released_by,released_on,expires_on"
# night 2: EDEN (the claim voided) is gone from the extract; a new visit is billed
NIGHT2 = (
    visit("EREJ", 1, patient="P2") + visit("EFLY", 1, patient="P3") + visit("ENEW", 1, patient="P4")
)


def release(out: str, claim_id: str) -> None:
    folder = Path(out) / "releases"
    folder.mkdir(exist_ok=True)
    row = f",,{claim_id},,VOID,billed in error: never seen,A. Chen,2026-11-29,"
    (folder / "voids.csv").write_text(f"{HEADER}\n{row}\n")


def files_of(out: str, rd) -> dict[str, dict]:
    m = nights.committed(out, rd.isoformat())
    return {Path(f["path"]).name: f for f in m["claim_files"]}


def text_of(entry: dict) -> str:
    return storage.read_bytes(entry["path"]).decode("ascii")


def phi_config(tmp_path: Path, rows: list[dict], rd, name: str = "x", phi: bool = False):
    """A night's config, its PHI layers under their own root when ``phi``."""
    cfg = config(tmp_path, rows, rd, name)
    if not phi:
        return cfg
    return pipeline.RunConfig(
        inputs=cfg.inputs, out=cfg.out, run_date=rd, phi_out=str(tmp_path / "phi")
    )


@pytest.mark.parametrize("phi", [False, True], ids=["one_root", "phi_root"])
def test_a_void_of_a_claim_with_no_lines_tonight(tmp_path, phi):
    cfg1 = phi_config(tmp_path, NIGHT1, RD1, phi=phi)
    m1 = pipeline.run(cfg1)
    out = cfg1.out
    assert m1["claims_billed"] == 3
    led1 = ledger.read(out)
    original = led1[led1["encounter_id"] == "EDEN"].iloc[0]
    eden = str(original["claim_id"])
    void_id = f"R1{ledger_store.KEY_ID.match(eden)['hash']}"
    write_lifecycle(out, {"EDEN": ("paid", "PCN-5")})
    release(out, eden)

    m2 = pipeline.run(phi_config(tmp_path, NIGHT2, RD2, phi=phi))
    assert m2["balanced"] and m2["claims_billed"] == 1  # ENEW; EREJ, EFLY in flight: held
    files = files_of(out, RD2)
    void_files = {n: f for n, f in files.items() if f.get("voids")}
    assert len(void_files) == 1 and len(files) == 2
    ((name, entry),) = void_files.items()
    # a void carries no line of tonight: the night's claims and lines are the billed ones
    assert (entry["voids"], entry["claims"], entry["lines"], entry["charges"]) == (1, 0, 0, 0.0)
    assert sum(f["claims"] for f in m2["claim_files"]) == m2["claims_billed"]
    assert sum(f["lines"] for f in m2["claim_files"]) == m2["lines_billed"] == 1
    submitter = Path(str(original["file"])).name.split("_")[2]  # the sending's submitter
    icn = entry["interchange_control_number"]
    assert name == f"{original['receiver_id']}_837P_{submitter}_{icn}.x12"
    # the sending's file and the void file are where claim files go (the PHI root, if any)
    root = str(tmp_path / ("phi" if phi else "out"))
    assert str(original["file"]).startswith(root) and entry["path"].startswith(root)

    text = text_of(entry)
    ok, report = pyx12_validate(text)
    assert ok, report
    assert independent_checks(text) == []
    # the claim is the original's content: CLM01 the version's, CLM05-3 8, REF*F8 before HI
    sent = reader.find_claim(storage.read_bytes(str(original["file"])).decode("ascii"), eden)
    (void,) = list(reader.claims(text))
    assert void.id == void_id
    clm, clm_sent = void.claim[0], sent.claim[0]
    assert clm[5] == "11:B:8" and clm_sent[5] == "11:B:1"
    assert clm[:1] + clm[2:5] + clm[6:] == clm_sent[:1] + clm_sent[2:5] + clm_sent[6:]
    at = [s[0] for s in void.claim].index("HI")
    assert void.claim[at - 1] == ["REF", "F8", "PCN-5"]
    assert void.claim[1 : at - 1] + void.claim[at:] == sent.claim[1:]
    assert void.lines == sent.lines and len(void.lines) == 2
    assert void.billing == sent.billing  # the first claim of each file: HL 1
    assert [s for s in void.subscriber if s[0] != "HL"] == [
        s for s in sent.subscriber if s[0] != "HL"
    ]
    assert [s[1:] for s in void.subscriber if s[0] == "HL"] == [["2", "1", "22", "0"]]
    segments = list(reader.tokenize(text))
    st, se = [s[0] for s in segments].index("ST"), [s[0] for s in segments].index("SE")
    assert int(segments[se][1]) == se - st + 1
    assert segments[0][13] == entry["interchange_control_number"]

    # the ledger links it, with the original's claim as it was sent
    led = ledger.read(out)
    row = led[(led["run_date"] == RD2.isoformat()) & (led["claim_id"] == void_id)]
    assert len(row) == 1
    row = row.iloc[0]
    assert row["claim_key"] == eden and row["frequency_code"] == "8"
    assert (row["original_claim_id"], row["original_reference"]) == (eden, "PCN-5")
    for c in (
        "encounter_id", "patient_id", "payer_id", "clinic_id", "first_date_of_service",
        "last_date_of_service", "lines", "charge", "lines_digest", "receiver_id", "claim_type",
    ):  # fmt: skip
        assert row[c] == original[c], c
    assert (row["lines"], row["charge"]) == (2, 60.0)
    assert row["file"] == entry["path"]
    assert row["interchange_control_number"] == entry["interchange_control_number"]
    assert row["transaction_set_control_number"] == "0001"
    assert versions_table(out) == [(eden, 1, RD2.isoformat(), "8", eden, "committed")]

    exc = exceptions(out, RD2)
    found = exc[exc["code"] == "CLAIM_VOID"]
    assert len(found) == 1
    message = found["message"].iloc[0]
    assert f"claim {eden}: its earlier sending {eden} (2026-11-28) is paid since 2026-11-30" in (
        message
    )
    assert message.endswith(f"goes out under CLM01 {void_id}")
    assert not exc["message"].str.contains("PCN-5|never seen", regex=True).any()
    assert not exc["code"].isin(["RELEASE_UNUSED", "CLAIM_NOT_RESENT"]).any()
    assert found["source_file"].iloc[0].endswith("voids.csv")

    # a rerun of night 2: the same bytes, the same version, nothing flagged as not resent
    before = {n: text_of(f) for n, f in files.items()}
    m2b = pipeline.run(phi_config(tmp_path, NIGHT2, RD2, "again", phi))
    assert m2b["balanced"]
    assert {n: text_of(f) for n, f in files_of(out, RD2).items()} == before
    assert versions_table(out) == [(eden, 1, RD2.isoformat(), "8", eden, "committed")]
    exc = exceptions(out, RD2)
    assert (exc["code"] == "CLAIM_VOID").sum() == 1
    assert not exc["code"].isin(["RELEASE_UNUSED", "CLAIM_NOT_RESENT"]).any()

    # night 3, the release row still there: voided already, never again
    m3 = pipeline.run(phi_config(tmp_path, NIGHT2, RD3, phi=phi))
    assert m3["balanced"]
    assert not any(f.get("voids") for f in m3["claim_files"])
    exc3 = exceptions(out, RD3)
    unused = exc3[exc3["code"] == "RELEASE_UNUSED"]
    assert unused["message"].tolist() == [
        f"release VOID (claim {eden}) not applied: it was voided (as {void_id} on 2026-11-29)"
    ]
    assert not (exc3["code"] == "CLAIM_VOID").any()
    assert len(versions_table(out)) == 1


def test_a_void_is_not_made_of_a_claim_in_flight_or_without_a_control_number(tmp_path):
    """No lines tonight and the payer did not adjudicate (or gave no usable control number):
    nothing is voided, the row says why, nothing is reserved."""
    cfg1 = config(tmp_path, NIGHT1, RD1)
    pipeline.run(cfg1)
    out = cfg1.out
    first = ledger.read(out).set_index("encounter_id")["claim_id"]
    write_lifecycle(out, {"EDEN": ("paid", "PCN 5~*"), "EREJ": ("rejected_by_payer", None)})
    folder = Path(out) / "releases"
    folder.mkdir()
    rows = [
        f",,{first['EDEN']},,VOID,x,A. Chen,2026-11-29,",
        f",,{first['EFLY']},,VOID,x,A. Chen,2026-11-29,",
        f",,{first['EREJ']},,VOID,x,A. Chen,2026-11-29,",
    ]
    (folder / "voids.csv").write_text("\n".join([HEADER, *rows]) + "\n")
    night2 = [factories.row(line_id="N-1", encounter_id="ENEW", patient_id="P9")]
    m2 = pipeline.run(config(tmp_path, night2, RD2))
    assert m2["balanced"] and m2["claims_billed"] == 1
    assert not any(f.get("voids") for f in m2["claim_files"])
    exc = exceptions(out, RD2)
    unused = exc[exc["code"] == "RELEASE_UNUSED"].sort_values("source_row")
    assert unused["message"].tolist() == [
        f"release VOID (claim {first['EDEN']}) not applied: its status is paid since 2026-11-30 "
        "and its payer claim control number cannot be sent in REF*F8",
        f"release VOID (claim {first['EFLY']}) not applied: its status is sent since "
        "2026-11-28: still in flight",
        f"release VOID (claim {first['EREJ']}) not applied: its status is rejected_by_payer "
        "since 2026-11-30: the payer adjudicated nothing to void",
    ]
    assert not exc["code"].isin(["CLAIM_VOID", "ALREADY_BILLED"]).any()
    assert versions_table(out) == []
    assert pd.Series(exc["message"]).str.contains("~", regex=False).sum() == 0


def test_a_void_whose_sent_file_is_gone_is_held_not_a_failed_night(tmp_path):
    """The claim file a void would be copied from was removed (retention, by hand): the
    void is not made, the row says why, and the rest of the night goes out."""
    cfg1 = config(tmp_path, NIGHT1, RD1)
    pipeline.run(cfg1)
    out = cfg1.out
    sent = ledger.read(out).set_index("encounter_id")
    write_lifecycle(out, {"EDEN": ("paid", "PCN0001")})
    Path(sent.loc["EDEN", "file"]).unlink()
    folder = Path(out) / "releases"
    folder.mkdir()
    row = f",,{sent.loc['EDEN', 'claim_id']},,VOID,x,A. Chen,2026-11-29,"
    (folder / "voids.csv").write_text("\n".join([HEADER, row]) + "\n")
    night2 = [factories.row(line_id="N-1", encounter_id="ENEW", patient_id="P9")]
    m2 = pipeline.run(config(tmp_path, night2, RD2))
    assert m2["balanced"] and m2["claims_billed"] == 1
    assert not any(f.get("voids") for f in m2["claim_files"])
    exc = exceptions(out, RD2)
    unused = exc[exc["code"] == "RELEASE_UNUSED"]["message"].tolist()
    assert len(unused) == 1 and "the claim file it was sent in is no longer there" in unused[0]
    assert not exc["code"].isin(["CLAIM_VOID"]).any()
    assert versions_table(out) == []


# ---- the copy itself, 837P and 837I: what the writer would write for a void of those lines


@pytest.fixture(scope="module")
def ref() -> reference.Reference:
    return reference.load()


def _two_part(text: str) -> list[list[str]]:
    return [s.split("*") for s in text.split("~\n") if s]


@pytest.mark.parametrize("institutional", [False, True], ids=["837P", "837I"])
def test_a_copied_void_is_what_the_writer_writes_for_a_void(ref, institutional):
    """An original (REF*G1, no REF*F8) and a replacement (REF*F8 of the claim it replaced)
    copied as voids into one file: each claim's 2300 and 2400 are what the 837 writer itself
    writes for a void (frequency 8, the new REF*F8) of the same lines under the new CLM01,
    the HL numbers run 1..4 in the file, and the file passes pyx12."""
    lines = three_claims(institutional)
    sent = x12.build_837i if institutional else x12.build_837p
    text = sent(lines, **args(ref))
    views = {c.id: c for c in reader.claims(text)}
    wanted = [
        voids.VoidClaim(views["TC0001"], "R1ORIGINAL", "PCN-A1"),
        voids.VoidClaim(views["TC0002-R1"], "R2REPLACED", "PCN-B2"),
    ]
    made, placed = voids.build_void_file(wanted, created=CREATED, usage="T")
    assert placed == ["0001", "0001"]
    ok, report = pyx12_validate(made)
    assert ok, report
    assert independent_checks(made) == []
    # the writer's own void of the same lines (the other claim left out)
    expected_lines = lines[lines["claim_id"].isin(["TC0001", "TC0002-R1"])].copy()
    expected_lines["claim_id"] = expected_lines["claim_id"].map(
        {"TC0001": "R1ORIGINAL", "TC0002-R1": "R2REPLACED"}
    )
    expected_lines["claim_frequency"] = pd.array(["8", "8", "8"], "string")
    expected_lines["original_reference"] = pd.array(["PCN-A1", "PCN-B2", "PCN-B2"], "string")
    expected = {c.id: c for c in reader.claims(sent(expected_lines, **args(ref)))}
    got = {c.id: c for c in reader.claims(made)}
    assert list(got) == ["R1ORIGINAL", "R2REPLACED"]
    for cid, claim in got.items():
        assert claim.claim == expected[cid].claim and claim.lines == expected[cid].lines
        assert [s for s in claim.claim if s[:2] == ["REF", "F8"]] == [
            ["REF", "F8", {"R1ORIGINAL": "PCN-A1", "R2REPLACED": "PCN-B2"}[cid]]
        ]
        assert claim.claim[0][5].endswith(":8")
    segs = _two_part(made)
    hls = [s[1:] for s in segs if s[0] == "HL"]
    assert hls == [["1", "", "20", "1"], ["2", "1", "22", "0"], ["3", "", "20", "1"],
                   ["4", "3", "22", "0"]]  # fmt: skip
    assert [s[0] for s in segs][:2] == ["ISA", "GS"]
    st = [s[0] for s in segs].index("ST")
    se = [s[0] for s in segs].index("SE")
    assert segs[se] == ["SE", str(se - st + 1), "0001"]
    # numbered afterwards like every claim file: only the control numbers change
    renumbered = x12.renumber(made, 42)
    assert renumbered.count("000000042") == 2 and "*42*X*" in renumbered
