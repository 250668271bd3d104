"""``therapy-claims show`` displays the issue-15 fields: providers and taxonomies, the
referring provider, the initial treatment date, accident details, the employer as insured,
the P&C claim number, occurrence codes and the payer's clearinghouse id."""

from __future__ import annotations

from factories import OTHER_NPI, RENDERING_NPI, row, write_csv

from therapy_claims import cli, ledger

# an 837P workers' comp claim in the brief's shapes (hand-written: not the writer's output)
WC_837P = "~\n".join(
    [
        "ISA*00*          *00*          *ZZ*SUBMITTER01    *ZZ*RECEIVER01     *240115*1200*^*00501*000000001*0*T*:",
        "GS*HC*SUBMITTER01*RECEIVER01*20240115*1200*1*X*005010X222A1",
        "ST*837*0001*005010X222A1",
        "BHT*0019*00*BATCH0001*20240115*1200*CH",
        "NM1*41*2*ACME BILLING SERVICE*****46*SUBMITTER01",
        "PER*IC*JANE DOE*TE*5555551234",
        "NM1*40*2*EXAMPLE CLEARINGHOUSE*****46*RECEIVER01",
        "HL*1**20*1",
        "NM1*85*2*ACME THERAPY CLINIC*****XX*1234567893",
        "N3*123 MAIN ST",
        "N4*SPRINGFIELD*IL*627011234",
        "REF*EI*123456789",
        "HL*2*1*22*1",
        "SBR*P********WC",
        "NM1*IL*2*PRAIRIE STATE LOGISTICS LLC*****MI*WC12345678",
        "REF*Y4*WC24-1234567",
        "NM1*PR*2*SAMPLE WORKERS COMP CARRIER*****PI*99WCC",
        "HL*3*2*23*0",
        "PAT*20",
        "NM1*QC*1*DOE*JOHN",
        "N3*456 OAK AVE",
        "N4*SPRINGFIELD*IL*62702",
        "DMG*D8*19800101*M",
        "CLM*TCWC0001*150***11:B:1*Y*A*Y*Y**EM",
        "DTP*431*D8*20240102",
        "DTP*454*D8*20240105",
        "DTP*439*D8*20240101",
        "HI*ABK:S335XXA",
        "NM1*DN*1*OKAFOR*ADAEZE****XX*1245319599",
        f"NM1*82*1*SMITH*ANN****XX*{RENDERING_NPI}",
        "PRV*PE*PXC*225100000X",
        "LX*1",
        "SV1*HC:97110:GP*150*UN*3***1",
        "DTP*472*D8*20240110",
        "SE*30*0001",
        "GE*1*1",
        "IEA*1*000000001~\n",
    ]
)

# an 837I Medicare therapy claim with occurrence codes
MCR_837I = "~\n".join(
    [
        "ISA*00*          *00*          *ZZ*SUBMITTER01    *ZZ*RECEIVER01     *240115*1200*^*00501*000000002*0*T*:",
        "GS*HC*SUBMITTER01*RECEIVER01*20240115*1200*2*X*005010X223A2",
        "ST*837*0001*005010X223A2",
        "BHT*0019*00*BATCH0002*20240115*1200*CH",
        "NM1*41*2*ACME HOSPITAL*****46*SUBMITTER01",
        "PER*IC*JANE DOE*TE*5555551234",
        "NM1*40*2*EXAMPLE CLEARINGHOUSE*****46*RECEIVER01",
        "HL*1**20*1",
        "NM1*85*2*ACME HOSPITAL*****XX*1234567893",
        "N3*1 HOSPITAL DR",
        "N4*SPRINGFIELD*IL*627011234",
        "REF*EI*123456789",
        "HL*2*1*22*0",
        "SBR*P*18*******MA",
        "NM1*IL*1*DOE*JOHN****MI*1EG4TE5MK72",
        "N3*456 OAK AVE",
        "N4*SPRINGFIELD*IL*62702",
        "DMG*D8*19400101*M",
        "NM1*PR*2*MEDICARE PART B JURISDICTION SAMPLE*****PI*99MCR",
        "CLM*TCMI0001*300***13:A:1**A*Y*Y",
        "DTP*434*RD8*20240110-20240117",
        "CL1*3*1*01",
        "HI*ABK:M5450",
        "HI*BH:35:D8:20240102*BH:29:D8:20240102",
        "NM1*71*1*JONES*MARY****XX*1245319599",
        "PRV*AT*PXC*225100000X",
        "LX*1",
        "SV2*0420*HC:97110:GP*200*UN*4",
        "DTP*472*D8*20240110",
        "SE*27*0001",
        "GE*1*2",
        "IEA*1*000000002~\n",
    ]
)


def test_show_a_workers_comp_claim_with_its_new_fields():
    parsed = ledger.parse_claim(WC_837P, "TCWC0001")
    text = ledger.format_claim(parsed, {"run_date": "2024-01-15", "payer_id": "WC01"})
    for expected in (
        "PRAIRIE STATE LOGISTICS LLC (employer)",
        "clearinghouse payer id 99WCC (payers.csv WC01)",
        f"Rendering      SMITH, ANN   NPI {RENDERING_NPI}   taxonomy 225100000X",
        "Referring      OKAFOR, ADAEZE   NPI 1245319599",
        "Initial treatment 01/05/2024",
        "Related cause  employment (EM)",
        "Accident date  01/01/2024",
        "Onset/injury   01/02/2024",
        "P&C claim #    WC24-1234567",
        "relationship employee",
    ):
        assert expected in text, (expected, text)
    assert "Occurrence" not in text


def test_show_an_auto_claim_names_the_accident_state():
    auto = WC_837P.replace("**EM~", "**AA:::IN~").replace("NM1*IL*2*PRAIRIE", "NM1*IL*1*PRAIRIE")
    text = ledger.format_claim(ledger.parse_claim(auto, "TCWC0001"), {})
    assert "Related cause  auto accident (AA)   state IN" in text
    assert "(employer)" not in text


def test_show_an_institutional_claims_occurrence_codes_and_attending_taxonomy():
    parsed = ledger.parse_claim(MCR_837I, "TCMI0001")
    text = ledger.format_claim(parsed, {"payer_id": "MCR01"})
    assert "UB-04" in text
    assert "Occurrence     35 01/02/2024 (PT started)   29 01/02/2024 (PT plan established)" in text
    assert "Attending      JONES, MARY   NPI 1245319599   taxonomy 225100000X" in text
    assert "clearinghouse payer id 99MCR (payers.csv MCR01)   filing indicator MA" in text
    for absent in ("Related cause", "Accident date", "P&C claim", "Referring", "Initial"):
        assert absent not in text


def test_show_names_the_assistant_and_the_supervising_therapist(tmp_path, capsys):
    """From the night's raw layer: the 837 may carry only the supervisor."""
    rows = [
        row(
            rendering_credential="PTA",
            rendering_last_name="LEE",
            rendering_first_name="KIM",
            modifiers="GP;CQ",
            supervising_npi=OTHER_NPI,
            supervising_last_name="SMITH",
            supervising_first_name="ANN",
        ),
        row(
            line_id="L2",
            encounter_id="E2",
            date_of_service="2026-11-21",
            start_time="10:00",
            end_time="10:30",
        ),
    ]
    inp = write_csv(tmp_path / "in" / "a.csv", rows)
    out = str(tmp_path / "out")
    assert (
        cli.main(["run", "--input", str(inp), "--out", out, "--run-date", "2026-11-28", "-q"]) == 0
    )
    led = ledger.read(out)
    by_enc = dict(zip(led["encounter_id"], led["claim_id"], strict=True))
    assert cli.main(["show", by_enc["E1"], "--out", out]) == 0
    text = capsys.readouterr().out
    assert (
        f"Charted by     PTA LEE, KIM   NPI {RENDERING_NPI}   supervised by SMITH, ANN   NPI {OTHER_NPI}"
        in text
    ), text
    assert "clearinghouse payer id" in text and "(payers.csv MCR01)" in text
    assert cli.main(["show", by_enc["E2"], "--out", out]) == 0
    text = capsys.readouterr().out
    assert f"Charted by     PT SMITH, ANN   NPI {RENDERING_NPI}\n" in text
    assert "supervised" not in text
    # no responses recorded for this output: the claim's history says so in one line
    assert text.endswith("\n  Lifecycle      none yet: no responses recorded for this output\n")
