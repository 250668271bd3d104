"""The X12 reader: separators from the ISA header, segments of any transaction, and the claim
view of an 837 (checked against what the writer put in)."""

from __future__ import annotations

from datetime import date

import pytest
from test_x12 import CREATED, build, frame, line

from therapy_claims import reference, x12
from therapy_claims.x12 import reader

ISA = (
    "ISA*00*          *00*          *ZZ*SENDER         *ZZ*RECEIVER       *240115*1230*^*00501*"
    "000000017*0*T*:~"
)
ACK = ISA + "\nGS*FA*RECEIVER*SENDER*20240115*1230*17*X*005010X231A1~\nST*999*0001~\nAK1*HC*17~\n"


@pytest.fixture(scope="module")
def ref():
    return reference.load()


def test_default_separators_and_segments():
    assert reader.separators(ACK) == reader.Separators("*", ":", "^", "~")
    segs = list(reader.tokenize(ACK))
    assert [s[0] for s in segs] == ["ISA", "GS", "ST", "AK1"]
    assert segs[3] == ["AK1", "HC", "17"]
    assert len(segs[0]) == 17 and segs[0][13] == "000000017"


def test_other_separators_no_line_breaks_and_bytes():
    isa = ISA.replace("*", "|").replace(":~", ">!").replace("|^|", "|}|")
    text = isa + "GS|FA|R|S|20240115|1230|17|X|005010X231A1!ST|999|0001!IK3|CLM|7||8>1!"
    seps = reader.separators(text)
    assert seps == reader.Separators("|", ">", "}", "!")
    segs = list(reader.tokenize(text.encode("ascii")))
    assert segs[-1] == ["IK3", "CLM", "7", "", "8>1"]
    assert reader.components(segs[-1][4], seps) == ["8", "1"]
    assert reader.element(segs[-1], 9) == ""


def test_segment_terminator_newline_and_no_repetition_before_00402():
    text = ISA.replace("*^*00501*", "*U*00401*").replace(":~", ":\n") + "GS*HC*A*B\r\nST*837*1\n"
    assert reader.separators(text) == reader.Separators("*", ":", "", "\n")
    assert [s[0] for s in reader.tokenize(text)] == ["ISA", "GS", "ST"]


def test_not_an_interchange():
    with pytest.raises(ValueError, match="ISA"):
        list(reader.tokenize("GS*HC~ST*837*0001~"))


def test_claim_view_of_837p(ref):
    rows = [
        line(claim_id="A1"),
        line(claim_id="A1", line_id="L2", cpt_code="97112", charge_amount=50.0),
        line(claim_id="B2", subscriber_relationship="child", subscriber_last_name="Doe",
             subscriber_first_name="Jane"),
        line(claim_id="C3", clinic_id="CLN02"),
    ]  # fmt: skip
    text = build(ref, frame(*rows))
    views = list(reader.claims(text))
    assert [(v.id, v.charge, len(v.lines)) for v in views] == [
        ("A1", "150", 2),
        ("B2", "100", 1),
        ("C3", "100", 1),
    ]
    a1, b2, c3 = views
    assert not a1.institutional and a1.version == x12.VERSION
    assert [s[0] for s in a1.header] == ["ST", "BHT", "NM1", "PER", "NM1"]
    assert a1.billing[0][:4] == ["HL", "1", "", "20"] and a1.billing == b2.billing
    assert c3.billing[0][:4] == ["HL", "5", "", "20"]  # a new 2000A for the other clinic
    assert [s[0] for s in b2.subscriber] == ["HL", "SBR", "NM1", "NM1", "HL", "PAT", "NM1"] + [
        "N3",
        "N4",
        "DMG",
    ]
    assert a1.claim[0][:3] == ["CLM", "A1", "150"]
    assert [ln[0][:2] for ln in a1.lines] == [["LX", "1"], ["LX", "2"]]
    assert a1.lines[1][1][1] == "HC:97112:GP"
    # each line carries its line_id (REF*6R) after its DTP*472
    assert [[s[:3] for s in ln[2:4]] for ln in a1.lines] == [
        [["DTP", "472", "D8"], ["REF", "6R", "L1"]],
        [["DTP", "472", "D8"], ["REF", "6R", "L2"]],
    ]
    assert reader.find_claim(text, "C3") == c3
    assert reader.find_claim(text, "ZZ") is None


def test_claim_view_of_837i(ref):
    rows = [line(claim_id="I1", clinic_id="CLN03", discipline="PT")]
    text = x12.build_837i(
        frame(*rows),
        clinics=ref.clinics,
        payers=ref.payers,
        receiver_id="CLEARHOUSE1",
        receiver_name="Sample Clearinghouse",
        interchange_control_number=17,
        created=CREATED,
    )
    (view,) = reader.claims(text)
    assert view.institutional and view.id == "I1"
    assert [s[0] for s in view.lines[0]] == ["LX", "SV2", "DTP", "REF"]
    assert view.lines[0][3] == ["REF", "6R", "L1"]  # the line item control number: line_id


def test_control_number():
    assert x12.control_number(date(2026, 11, 28), 1) == 263320001
    assert x12.control_number(date(2026, 1, 1), 9999) == 260019999
    for sequence in (0, 10_000):
        with pytest.raises(ValueError, match="too many claim files"):
            x12.control_number(date(2026, 11, 28), sequence)
