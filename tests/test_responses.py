"""The response reader (therapy_claims.responses) against hand-written 999, 277CA and 835 files.

The samples in tests/data/responses/ answer a small synthetic 837 of ours (claims C0000001,
C0000002-1, ...; lines L000001, ...). Every expected value below is read off the sample files
by hand, and the 835 balances are re-added here with a plain split of the text, independent
of the package.
"""

from __future__ import annotations

import logging
from datetime import date
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pytest
from x12_validate import pyx12_validate

from therapy_claims import responses
from therapy_claims.responses import ResponseError, kind_of, read, validate

DATA = Path(__file__).parent / "data" / "responses"
SAMPLES = sorted(DATA.glob("*.x12"))
EXPECTED_SAMPLES = {
    "999_accepted.x12": "999",
    "999_rejected.x12": "999",
    "277ca_accepted.x12": "277CA",
    "277ca_rejected.x12": "277CA",
    "835_paid.x12": "835",
    "835_partial.x12": "835",
    "835_denied.x12": "835",
    "835_reversal.x12": "835",
}
D = Decimal


def _text(name: str) -> str:
    return (DATA / name).read_text(encoding="ascii")


def _rows(table: pa.Table) -> list[dict]:
    return table.to_pylist()


def _recount(text: str) -> str:
    """The same interchange with each SE01 recounted (for samples edited in a test)."""
    out, count = [], 0
    for seg in [s.strip() for s in text.split("~") if s.strip()]:
        count = 1 if seg.startswith("ST*") else count + 1
        if seg.startswith("SE*"):
            seg = "SE*" + str(count) + "*" + seg.split("*")[2]
        out.append(seg)
    return "~\n".join(out) + "~\n"


# ---------------------------------------------------------------- the samples themselves


def test_the_folder_holds_every_named_sample():
    assert {p.name for p in SAMPLES} >= set(EXPECTED_SAMPLES)


@pytest.mark.parametrize("path", SAMPLES, ids=lambda p: p.name)
def test_every_sample_passes_pyx12(path):
    ok, report = pyx12_validate(path)
    assert ok, report
    assert validate(path.read_bytes()) == (True, "")


def _segments(text: str) -> list[list[str]]:
    return [s.strip().split("*") for s in text.split("~") if s.strip()]


def _amount(value: str) -> Decimal:
    return Decimal(value) if value else Decimal(0)


def _cas_total(seg: list[str]) -> Decimal:
    return sum((_amount(seg[i]) for i in range(3, len(seg), 3)), Decimal(0))


@pytest.mark.parametrize("name", [n for n in EXPECTED_SAMPLES if n.startswith("835")])
def test_835_samples_balance_by_an_independent_sum(name):
    """Per line SVC02 - CAS = SVC03; per claim CLP03 - all CAS = CLP04; BPR02 = sum CLP04."""
    bpr02, clp04_total = None, Decimal(0)
    claim = line = None
    claims: list[dict] = []
    for seg in _segments(_text(name)):
        if seg[0] == "BPR":
            bpr02 = Decimal(seg[2])
        elif seg[0] == "CLP":
            claim = {"charge": D(seg[3]), "paid": D(seg[4]), "cas": D(0), "lines": []}
            claims.append(claim)
            clp04_total += D(seg[4])
            line = None
        elif seg[0] == "SVC":
            line = {"charge": D(seg[2]), "paid": D(seg[3]), "cas": D(0)}
            claim["lines"].append(line)
        elif seg[0] == "CAS":
            (line if line is not None else claim)["cas"] += _cas_total(seg)
    assert bpr02 == clp04_total
    for c in claims:
        for ln in c["lines"]:
            assert ln["charge"] - ln["cas"] == ln["paid"]
        line_cas = sum((ln["cas"] for ln in c["lines"]), D(0))
        assert c["charge"] - c["cas"] - line_cas == c["paid"]


# ---------------------------------------------------------------- kind_of


@pytest.mark.parametrize("name,kind", sorted(EXPECTED_SAMPLES.items()))
def test_kind_of_each_sample_from_content(name, kind):
    text = _text(name)
    assert kind_of(text) == kind
    assert kind_of(text.encode("ascii")) == kind


def test_kind_of_does_not_look_at_names(tmp_path):
    """The same content under a misleading name is still what it is (kind_of never sees it)."""
    fake = tmp_path / "835_remittance.x12"
    fake.write_text(_text("999_accepted.x12"), encoding="ascii")
    assert kind_of(fake.read_bytes()) == "999"


def test_kind_of_our_own_837s():
    """Our 837P and 837I samples (the shared reference samples, copied into the repository)."""
    files = sorted((Path(__file__).parent / "data" / "x12_samples").glob("*.x12"))
    assert {p.name for p in files} >= {"p_self.x12", "p_dep.x12", "i_therapy.x12"}
    for path in files:
        assert kind_of(path.read_bytes()) == "837", path.name
        assert kind_of(path.read_text(encoding="ascii")) == "837", path.name


@pytest.mark.parametrize(
    "junk",
    [
        b"",
        "",
        b"hello world",
        b"claim_id,line_id,cpt\nC1,L1,97110\n",
        b"\x00\xff\xfe" * 200,
        "ISA*00*" + "\u00e9" * 200,
        "ISA*00*          *00*  ",  # truncated header
        "{" + '"ISA": 1' * 40 + "}",
    ],
    ids=["empty-bytes", "empty-str", "text", "csv", "binary", "non-ascii", "short-isa", "json"],
)
def test_kind_of_junk_is_none(junk):
    assert kind_of(junk) is None


def test_kind_of_needs_gs01_gs08_and_st01_to_agree():
    text = _text("277ca_accepted.x12")
    # a 277 claim status response (the answer to a 276) is not a 277CA
    assert kind_of(text.replace("005010X214", "005010X212")) is None
    # an 835 group code in front of a 999 set is neither
    assert kind_of(_text("999_accepted.x12").replace("GS*FA*", "GS*HP*")) is None


# ---------------------------------------------------------------- read: 999


def test_read_999_accepted():
    got = read(_text("999_accepted.x12"), "in/999_accepted.x12")
    assert got.kind == "999"
    assert got.claim_statuses.num_rows == got.payments.num_rows == 0
    rows = _rows(got.acknowledgments)
    assert [r["sent_set_control_number"] for r in rows] == ["0001", "0002"]
    for r in rows:
        assert r["source_file"] == "in/999_accepted.x12"
        assert r["interchange_control_number"] == "000000901"
        assert r["transaction_set_control_number"] == "0001"
        assert r["response_date"] == date(2026, 11, 20)
        # the envelope's parties, without ISA06/ISA08's padding to 15 characters
        assert (r["sender_id"], r["receiver_id"]) == ("RECEIVER01", "SUBMITTER01")
        assert r["sent_group_control_number"] == "101"
        assert r["sent_version"] == "005010X222A1"
        assert r["sent_set_type"] == "837"
        assert (r["set_status"], r["accepted"], r["group_status"]) == ("A", True, "A")
        assert r["error_segments"] is None and r["error_elements"] is None


def test_read_999_rejected_names_segment_and_element():
    rows = _rows(read(_text("999_rejected.x12"), "999_rejected.x12").acknowledgments)
    by_set = {r["sent_set_control_number"]: r for r in rows}
    assert set(by_set) == {"0001", "0002", "0003"}
    assert by_set["0001"]["accepted"] is True
    clm = by_set["0002"]
    assert (clm["set_status"], clm["accepted"], clm["set_error_codes"]) == ("R", False, ["5"])
    assert clm["error_segments"] == "CLM@22:8"
    assert clm["error_elements"] == "CLM02:1"  # CLM02 missing
    two = by_set["0003"]
    assert two["error_segments"] == "NM1@8:8; SV1@31:8"
    assert two["error_elements"] == "NM109:7; SV101-2:7"
    assert {r["group_status"] for r in rows} == {"P"}
    assert {r["sent_group_control_number"] for r in rows} == {"102"}
    assert {(r["sender_id"], r["receiver_id"]) for r in rows} == {("RECEIVER01", "SUBMITTER01")}


def test_read_999_group_rejected_without_ak2_is_one_row():
    text = _text("999_accepted.x12")
    body = "AK1*HC*101*005010X222A1~\nAK9*R*2*2*0*2~\n"
    start = text.index("AK1")
    end = text.index("SE*")
    text = _recount(text[:start] + body + text[end:])
    assert validate(text) == (True, "")
    rows = _rows(read(text, "x").acknowledgments)
    assert len(rows) == 1
    assert rows[0]["sent_set_control_number"] is None
    assert (rows[0]["set_status"], rows[0]["accepted"]) == ("R", False)
    assert rows[0]["set_error_codes"] == ["2"]
    assert rows[0]["receiver_id"] == "SUBMITTER01"


def test_read_999_each_set_names_the_parties_of_its_own_interchange():
    """Two interchanges in one file, to two submitters: each row names its own ISA08."""
    first = _text("999_accepted.x12")
    second = (
        _text("999_rejected.x12")
        .replace("*ZZ*SUBMITTER01    *", "*ZZ*OTHERSUB       *")
        .replace("GS*FA*RECEIVER01*SUBMITTER01*", "GS*FA*RECEIVER01*OTHERSUB*")
    )
    assert "OTHERSUB       *" in second
    rows = _rows(read(first + second, "two.x12").acknowledgments)
    by = [
        (r["receiver_id"], r["sent_group_control_number"], r["sent_set_control_number"])
        for r in rows
    ]
    assert by == [
        ("SUBMITTER01", "101", "0001"),
        ("SUBMITTER01", "101", "0002"),
        ("OTHERSUB", "102", "0001"),
        ("OTHERSUB", "102", "0002"),
        ("OTHERSUB", "102", "0003"),
    ]
    assert {r["sender_id"] for r in rows} == {"RECEIVER01"}


# ---------------------------------------------------------------- read: 277CA


def test_read_277ca_accepted():
    got = read(_text("277ca_accepted.x12"), "277ca_accepted.x12")
    assert got.kind == "277CA"
    rows = _rows(got.claim_statuses)
    assert [r["claim_id"] for r in rows] == ["C0000001", "C0000002-1", "C0000003"]
    assert [r["category"] for r in rows] == ["A2", "A2", "A1"]
    assert [r["status"] for r in rows] == ["20", "20", "19"]
    assert {r["entity"] for r in rows} == {"PR"}
    assert all(r["accepted"] for r in rows)
    assert [r["payer_claim_control_number"] for r in rows] == ["PCCN0001", "PCCN0002", "PCCN0003"]
    assert [r["charge"] for r in rows] == [D("250.00"), D("185.00"), D("120.00")]
    assert {r["status_date"] for r in rows} == {date(2026, 11, 21)}
    assert rows[0]["service_date"] == date(2026, 11, 10)
    assert {r["batch_reference"] for r in rows} == {"BATCH0101"}
    assert {r["interchange_control_number"] for r in rows} == {"000000911"}


def test_read_277ca_rejected_each_category():
    rows = _rows(read(_text("277ca_rejected.x12"), "r").claim_statuses)
    got = {r["claim_id"]: (r["category"], r["status"], r["entity"]) for r in rows}
    assert got == {
        "C0000004": ("A3", "21", "85"),
        "C0000005": ("A6", "164", "IL"),
        "C0000006": ("A7", "562", "85"),
        "C0000002-2": ("A8", "187", "QC"),
    }
    assert not any(r["accepted"] for r in rows)
    assert all(r["payer_claim_control_number"] is None for r in rows)
    assert {r["action_code"] for r in rows} == {"U"}
    by_id = {r["claim_id"]: r for r in rows}
    assert by_id["C0000006"]["other_statuses"] == ["A7:128:82"]
    assert by_id["C0000002-2"]["charge"] == D("100.00")


def test_a_rejecting_stc_decides_even_after_an_accepting_one():
    text = _text("277ca_accepted.x12").replace(
        "STC*A2:20:PR*20261121*WQ*185~",
        "STC*A2:20:PR*20261121*WQ*185~\nSTC*A7:454:PR*20261121*U*185~",
    )
    text = _recount(text)
    assert validate(text) == (True, "")
    row = _rows(read(text, "x").claim_statuses)[1]
    assert (row["claim_id"], row["category"], row["status"]) == ("C0000002-1", "A7", "454")
    assert row["accepted"] is False
    assert row["other_statuses"] == ["A2:20:PR"]


# ---------------------------------------------------------------- read: 835


def _cas(*triples) -> list[dict]:
    return [{"group": g, "reason": r, "amount": D(a)} for g, r, a in triples]


def test_read_835_paid():
    got = read(_text("835_paid.x12"), "835_paid.x12")
    assert got.kind == "835"
    claims = _rows(got.payments)
    assert [(c["claim_id"], c["claim_status_code"], c["paid"]) for c in claims] == [
        ("C0000001", "1", D("250.00")),
        ("C0000003", "1", D("120.00")),
    ]
    assert [c["payer_claim_control_number"] for c in claims] == ["PCCN0001", "PCCN0003"]
    assert {c["payment_trace"] for c in claims} == {"EFT0000921"}
    assert {c["payment_date"] for c in claims} == {date(2026, 11, 25)}
    assert [c["line_count"] for c in claims] == [2, 1]
    lines = _rows(got.payment_lines)
    assert [(ln["claim_id"], ln["line_id"], ln["procedure_code"]) for ln in lines] == [
        ("C0000001", "L000001", "97110"),
        ("C0000001", "L000002", "97140"),
        ("C0000003", "L000005", "97161"),
    ]
    assert [ln["units"] for ln in lines] == [D(4), D(2), D(1)]  # SVC05 absent: 1
    assert [ln["paid"] for ln in lines] == [D("160.00"), D("90.00"), D("120.00")]
    assert {ln["service_date"] for ln in lines[:2]} == {date(2026, 11, 10)}


def test_read_835_partial_payment():
    got = read(_text("835_partial.x12"), "835_partial.x12")
    (claim,) = _rows(got.payments)
    assert claim["claim_id"] == "C0000002-1"
    assert (claim["charge"], claim["paid"], claim["patient_responsibility"]) == (
        D("185.00"),
        D("105.00"),
        D("35.00"),
    )
    assert claim["adjustments"] == []
    one, two = _rows(got.payment_lines)
    assert (one["line_id"], one["procedure_code"], one["modifiers"]) == ("L000003", "97530", ["GP"])
    assert (one["charge"], one["paid"], one["allowed"]) == (D("135"), D("80"), D("100"))
    assert one["adjustments"] == _cas(("CO", "45", "35"), ("PR", "1", "5"), ("PR", "2", "15"))
    assert one["remark_codes"] == ["N130"]
    assert (two["line_id"], two["modifiers"], two["units"]) == ("L000004", ["GP", "KX"], D(1))
    assert two["adjustments"] == _cas(("CO", "45", "10"), ("PR", "3", "15"))
    assert two["remark_codes"] == ["N130", "N381"]
    assert two["service_date"] == date(2026, 11, 11)
    patient_share = sum(
        (a["amount"] for ln in (one, two) for a in ln["adjustments"] if a["group"] == "PR"), D(0)
    )
    assert patient_share == claim["patient_responsibility"]


def test_read_835_denied():
    got = read(_text("835_denied.x12"), "835_denied.x12")
    claims = {c["claim_id"]: c for c in _rows(got.payments)}
    assert {c["claim_status_code"] for c in claims.values()} == {"4"}
    assert {c["paid"] for c in claims.values()} == {D(0)}
    assert claims["C0000005"]["adjustments"] == _cas(("CO", "18", "120"))
    assert claims["C0000005"]["line_count"] == 0
    lines = {ln["claim_id"]: ln for ln in _rows(got.payment_lines)}
    assert set(lines) == {"C0000004", "C0000006"}
    assert lines["C0000004"]["adjustments"] == _cas(("CO", "97", "90"))
    assert lines["C0000004"]["remark_codes"] == ["M15"]
    assert lines["C0000004"]["modifiers"] == ["59"]
    assert lines["C0000006"]["adjustments"] == _cas(("CO", "29", "75"))
    assert {c["payment_trace"] for c in claims.values()} == {"NOPAY0000923"}


def test_read_835_reversal_and_correction():
    got = read(_text("835_reversal.x12"), "835_reversal.x12")
    claims = _rows(got.payments)
    assert [(c["claim_sequence"], c["claim_id"], c["claim_status_code"]) for c in claims] == [
        (1, "C0000001", "22"),
        (2, "C0000001", "1"),
        (3, "C0000007", "1"),
    ]
    reversal = claims[0]
    assert (reversal["charge"], reversal["paid"]) == (D("-250.00"), D("-250.00"))
    assert reversal["payer_claim_control_number"] == "PCCN0001"  # the payment it takes back
    assert claims[1]["paid"] == D("220.00")
    lines = _rows(got.payment_lines)
    reversed_lines = [ln for ln in lines if ln["claim_sequence"] == 1]
    assert [(ln["line_id"], ln["paid"], ln["units"]) for ln in reversed_lines] == [
        ("L000001", D("-160.00"), D(-4)),
        ("L000002", D("-90.00"), D(-2)),
    ]
    corrected = [ln for ln in lines if ln["claim_sequence"] == 2]
    assert corrected[0]["adjustments"] == _cas(("CO", "45", "30"))
    assert sum((c["paid"] for c in claims), D(0)) == D("70.00")  # BPR02


def test_tables_have_the_declared_schemas_and_exact_money():
    for name in EXPECTED_SAMPLES:
        got = read(_text(name), name)
        for table_name, schema in responses.SCHEMAS.items():
            assert getattr(got, table_name).schema == schema
    assert responses.SCHEMAS["payments"].field("paid").type == pa.decimal128(12, 2)
    paid = read(_text("835_partial.x12"), "x").payments.column("paid")[0].as_py()
    assert isinstance(paid, Decimal) and paid == D("105.00")


# ---------------------------------------------------------------- refusal, whole


PHI = ("ROE", "RICHARD", "MEMBER002")


def test_a_broken_segment_fails_validate_with_a_reason_and_read_raises():
    text = _text("835_partial.x12").replace("SVC*HC:97530:GP*135*80**3~", "SVC*HC:97530:GP**80**3~")
    ok, reason = validate(text)
    assert not ok
    assert "\n" not in reason
    assert "SVC" in reason and "element 2" in reason
    with pytest.raises(ResponseError, match="SVC"):
        read(text, "broken.x12")


def test_an_unknown_segment_fails_with_its_place_and_no_values():
    text = _text("835_partial.x12").replace("NM1*QC*1*ROE*RICHARD", "NMX*QC*1*ROE*RICHARD")
    ok, reason = validate(text)
    assert not ok and reason
    assert not any(v in reason for v in PHI)


def test_pyx12_messages_stay_out_of_the_logs(caplog):
    text = _text("835_partial.x12").replace("NM1*QC*1*ROE*RICHARD", "NM1*QC*1*ROE*" + "R" * 90)
    pyx12_logger = logging.getLogger("pyx12")
    before = (pyx12_logger.level, pyx12_logger.propagate, list(pyx12_logger.handlers))
    with caplog.at_level(logging.DEBUG):
        ok, reason = validate(text)
    assert not ok
    assert "R" * 20 not in reason
    assert not any("RRRRRRRRRR" in r.getMessage() for r in caplog.records)
    assert not any(r.name.startswith("pyx12") for r in caplog.records)
    assert (pyx12_logger.level, pyx12_logger.propagate, list(pyx12_logger.handlers)) == before


def test_an_unbalanced_835_is_refused_whole():
    """pyx12 does not add amounts; read does, and returns nothing for a file that is off."""
    text = _text("835_partial.x12").replace(
        "SVC*HC:97112:GP:KX*50*25**1", "SVC*HC:97112:GP:KX*50*26**1"
    )
    assert validate(text) == (True, "")
    with pytest.raises(ResponseError, match="service line 2 does not balance"):
        read(text, "x")
    total_off = _text("835_paid.x12").replace("BPR*I*370*", "BPR*I*371*")
    with pytest.raises(ResponseError, match="BPR02"):
        read(total_off, "x")


def test_provider_level_adjustments_enter_the_payment_total():
    """BPR02 = sum of CLP04 - PLB: a 10.00 overpayment recovery (WO) makes 370 a 360 payment."""
    plb = "PLB*1234567893*20261231*WO:PCCN0001*10~\nSE*"
    text = _recount(_text("835_paid.x12").replace("SE*", plb, 1))
    assert validate(text) == (True, "")  # BPR02 still 370: pyx12 does not add amounts
    assert validate(text.replace("BPR*I*370*", "BPR*I*360*")) == (True, "")
    got = read(text.replace("BPR*I*370*", "BPR*I*360*"), "x")
    assert sum((c["paid"] for c in _rows(got.payments)), D(0)) == D("370.00")
    with pytest.raises(ResponseError, match="BPR02"):
        read(text, "x")


def test_overlong_values_are_refused_without_quoting_them():
    long_id = "X" * 120
    text = _text("835_paid.x12").replace("CLP*C0000003*", f"CLP*{long_id}*")
    assert validate(text)[0] is False
    with pytest.raises(ResponseError) as err:
        read(text, "x", validated=True)  # even when the caller skips pyx12
    assert long_id not in str(err.value)
    assert "longer than" in str(err.value)


@pytest.mark.parametrize(
    "data",
    [b"", b"hello", "ISA*00*caf\u00e9" + " " * 120, b"\xff" * 300],
    ids=["empty", "text", "non-ascii", "binary"],
)
def test_junk_is_refused(data):
    ok, reason = validate(data)
    assert not ok and reason and "\n" not in reason
    with pytest.raises(ResponseError):
        read(data, "junk")


def test_an_837_is_not_read_as_a_response():
    text = (Path(__file__).parent / "data" / "x12_samples" / "p_self.x12").read_text()
    assert validate(text) == (True, "")
    with pytest.raises(ResponseError, match="not a 999, 277CA or 835"):
        read(text, "p_self.x12")


def test_a_file_over_the_size_cap_is_refused_before_parsing(monkeypatch):
    from therapy_claims.responses import check

    monkeypatch.setattr(check, "MAX_BYTES", 100)
    ok, reason = validate(_text("999_accepted.x12"))
    assert not ok and "larger than" in reason
    with pytest.raises(ResponseError, match="larger than"):
        read(_text("999_accepted.x12"), "x")


def test_a_mixed_interchange_is_refused():
    """A 999 group followed by an 835 group: the 999 reader must not apply half of it."""
    ack = _text("999_accepted.x12")
    era = _text("835_paid.x12")
    ack_groups = ack[ack.index("GS*") : ack.index("IEA*")]
    era_group = era[era.index("GS*") : era.index("IEA*")]
    text = ack[: ack.index("GS*")] + ack_groups + era_group + "IEA*2*000000901~\n"
    assert kind_of(text) == "999"
    with pytest.raises(ResponseError, match="mixed interchange"):
        read(text, "x", validated=True)
