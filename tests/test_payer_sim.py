"""The payer simulator (``therapy-claims simulate-payer``): from a synthetic night's 837 files
(made by the real pipeline) it writes 999, 277CA and 835 files. Every file passes pyx12; each
claim gets one 277CA status; the 835 holds the accepted claims only and balances; the shares
hold; the same seed gives the same bytes. The checks read the responses with a plain split of
their own (not the simulator's reader), and recompute every sum."""

from __future__ import annotations

import json
import shutil
from collections import Counter
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest
from x12_validate import pyx12_validate

from therapy_claims import cli, generate, payer_sim, pipeline

RD = date(2026, 11, 27)
ON = date(2026, 11, 30)
REJECT_CATEGORIES = {"A3", "A6", "A7", "A8"}


def segments(text: str) -> list[list[str]]:
    return [s.strip().split("*") for s in text.split("~") if s.strip()]


@pytest.fixture(scope="module")
def night(tmp_path_factory) -> Path:
    """The claim files of a synthetic night of 150 encounters (over 100 claims)."""
    root = tmp_path_factory.mktemp("night")
    df = generate.generate(150, seed=3, run_date=RD, problem_rate=0.05)
    generate.write(df, str(root / "landing" / "extract.csv"))
    cfg = pipeline.RunConfig(
        inputs=[str(root / "landing" / "extract.csv")], out=str(root / "out"), run_date=RD
    )
    pipeline.run(cfg)
    claims = Path(cfg.final("claims"))
    assert len(list(claims.glob("*.x12"))) >= 3
    return claims


def sent_claims(folder: Path) -> dict[str, str]:
    """CLM01 -> the stem of the 837 that carries it, read from the 837 text."""
    out = {}
    for path in sorted(folder.glob("*.x12")):
        for seg in segments(path.read_text()):
            if seg[0] == "CLM":
                assert seg[1] not in out
                out[seg[1]] = path.stem
    return out


def simulate_dir(night: Path, out: Path, **kw) -> dict:
    kw = {"seed": 1, "reject_share": 0.2, "deny_share": 0.2, "on": ON, **kw}
    payer_sim.run(str(night), str(out), **kw)
    return json.loads((out / "simulation.json").read_text())


def statuses_277(out: Path) -> list[tuple[str, str, str, str | None]]:
    """Every 2200D claim status: (TRN02, STC01, STC03, REF*1K or None)."""
    found = []
    for path in sorted(out.glob("*.277ca.x12")):
        segs = segments(path.read_text())
        for i, seg in enumerate(segs):
            if seg[0] == "HL" and seg[3] == "PT":
                trn, stc = segs[i + 2], segs[i + 3]
                assert trn[:2] == ["TRN", "2"] and stc[0] == "STC"
                ref = segs[i + 4] if segs[i + 4][:2] == ["REF", "1K"] else None
                found.append((trn[2], stc[1], stc[3], ref[2] if ref else None))
    return found


def rejected_sets(out: Path) -> set[str]:
    """Stems of the 837s whose (single) transaction set the 999 rejected."""
    stems = set()
    for path in out.glob("*.999.x12"):
        ik5 = [s for s in segments(path.read_text()) if s[0] == "IK5"]
        assert len(ik5) == 1
        if ik5[0][1] == "R":
            stems.add(path.name.removesuffix(".999.x12"))
    return stems


@pytest.fixture(scope="module")
def answered(night, tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("responses")
    return out, simulate_dir(night, out, set_reject_share=0.3)


# ---- validity and the envelope ---------------------------------------------------------------


def test_every_file_passes_pyx12_and_is_named_for_its_837(night, answered):
    out, record = answered
    written = sorted(p.name for p in out.glob("*.x12"))
    kinds = Counter(name.rsplit(".", 2)[1] for name in written)
    stems = {p.stem for p in night.glob("*.x12")}
    assert kinds["999"] == len(stems)  # one 999 per 837
    assert kinds["277ca"] >= 1 and kinds["835"] >= 1
    assert {n.rsplit(".", 2)[0] for n in written} == stems
    for name in written:
        ok, report = pyx12_validate(str(out / name))
        assert ok, (name, report[:2000])
    assert {f["claim_file"] for f in record["files"]} == {f"{s}.x12" for s in stems}


def test_envelopes_answer_the_837(night, answered):
    out, _ = answered
    for path in sorted(night.glob("*.x12")):
        sent = segments(path.read_text())
        isa, gs = sent[0], sent[1]
        st = next(s for s in sent if s[0] == "ST")
        for kind, gs01, gs08 in (
            ("999", "FA", "005010X231A1"),
            ("277ca", "HN", "005010X214"),
            ("835", "HP", "005010X221A1"),
        ):
            reply = out / f"{path.stem}.{kind}.x12"
            if not reply.exists():
                continue
            segs = segments(reply.read_text())
            r_isa, r_gs = segs[0], segs[1]
            assert (r_isa[5], r_isa[6], r_isa[7], r_isa[8]) == (isa[7], isa[8], isa[5], isa[6])
            assert (r_gs[1], r_gs[2], r_gs[3], r_gs[8]) == (gs01, gs[3], gs[2], gs08)
            assert r_isa[13] != isa[13] and segs[-1] == ["IEA", "1", r_isa[13]]
            if kind == "999":
                ak1 = next(s for s in segs if s[0] == "AK1")
                ak2 = next(s for s in segs if s[0] == "AK2")
                assert ak1 == ["AK1", "HC", gs[6], gs[8]]
                assert ak2 == ["AK2", "837", st[2], st[3]]


def test_a_rejected_transaction_set_names_the_error(night, answered):
    out, record = answered
    rejected = rejected_sets(out)
    assert rejected, "set_reject_share=0.3 over 9 files rejected none"
    sent = sent_claims(night)
    for stem in rejected:
        segs = segments((out / f"{stem}.999.x12").read_text())
        ids = [s[0] for s in segs]
        assert ids[ids.index("AK2") :][:4] == ["AK2", "IK3", "IK4", "IK5"]
        assert next(s for s in segs if s[0] == "AK9")[1:] == ["R", "1", "1", "0"]
        # nothing of that set reached the payer
        assert not (out / f"{stem}.277ca.x12").exists()
        assert not (out / f"{stem}.835.x12").exists()
    outcome = {c["claim_id"]: c["outcome"] for c in record["claims"]}
    for clm01, stem in sent.items():
        assert (outcome[clm01] == "rejected_999") == (stem in rejected)


# ---- the 277CA and the 835 against the claims sent -------------------------------------------


def test_every_claim_gets_exactly_one_277ca_status(night, answered):
    out, _ = answered
    sent = sent_claims(night)
    reached = {c for c, stem in sent.items() if stem not in rejected_sets(out)}
    statuses = statuses_277(out)
    assert Counter(s[0] for s in statuses) == Counter(reached)
    for _, stc01, action, pccn in statuses:
        category = stc01.split(":")[0]
        if category in REJECT_CATEGORIES:
            assert action == "U" and pccn is None and len(stc01.split(":")) == 3, stc01
        else:
            assert category in ("A1", "A2") and action == "WQ" and pccn, stc01


def test_the_835_holds_the_accepted_claims_only(answered):
    out, _ = answered
    accepted = {c: pccn for c, stc, _, pccn in statuses_277(out) if stc.startswith(("A1", "A2"))}
    clps = [s for p in out.glob("*.835.x12") for s in segments(p.read_text()) if s[0] == "CLP"]
    assert sorted(c[1] for c in clps) == sorted(accepted)
    for clp in clps:
        assert clp[7] == accepted[clp[1]]  # CLP07 = the 277CA's REF*1K


def claims_835(text: str) -> list[dict]:
    """Each CLP with its claim-level CAS and its lines (SVC, CAS, REF*6R, LQ)."""
    claims: list[dict] = []
    for seg in segments(text):
        if seg[0] == "CLP":
            claims.append({"clp": seg, "cas": [], "lines": []})
        elif seg[0] == "SVC":
            claims[-1]["lines"].append({"svc": seg, "cas": [], "ref6r": None, "lq": []})
        elif seg[0] == "CAS":
            (claims[-1]["lines"][-1] if claims[-1]["lines"] else claims[-1])["cas"].append(seg)
        elif seg[:2] == ["REF", "6R"]:
            claims[-1]["lines"][-1]["ref6r"] = seg[2]
        elif seg[0] == "LQ":
            claims[-1]["lines"][-1]["lq"].append(seg)
    return claims


def cas_amounts(cas: list[list[str]], group: str | None = None) -> Decimal:
    """Sum of CAS03/06/09/... (every reason's amount), of one group or all."""
    total = Decimal(0)
    for seg in cas:
        if group is None or seg[1] == group:
            total += sum((Decimal(seg[i]) for i in range(3, len(seg), 3) if seg[i]), Decimal(0))
    return total


def lines_837(path: Path) -> dict[str, list[tuple[str, Decimal]]]:
    """CLM01 -> its lines' (procedure composite, charge), read from the 837 text."""
    out: dict[str, list] = {}
    current = None
    for seg in segments(path.read_text()):
        if seg[0] == "CLM":
            current = out.setdefault(seg[1], [])
        elif seg[0] == "SV1":
            current.append((seg[1], Decimal(seg[2])))
        elif seg[0] == "SV2":
            current.append((seg[2], Decimal(seg[3])))
    return out


def test_the_835_balances_and_echoes_the_lines(night, answered):
    out, record = answered
    outcome = {c["claim_id"]: c for c in record["claims"]}
    seen = Counter()
    for path in sorted(out.glob("*.835.x12")):
        text = path.read_text()
        sent = lines_837(night / path.name.replace(".835.x12", ".x12"))
        claims = claims_835(text)
        bpr = next(s for s in segments(text) if s[0] == "BPR")
        assert Decimal(bpr[2]) == sum(Decimal(c["clp"][4]) for c in claims)
        for c in claims:
            clp = c["clp"]
            charge, paid = Decimal(clp[3]), Decimal(clp[4])
            all_cas = c["cas"] + [s for ln in c["lines"] for s in ln["cas"]]
            assert charge - cas_amounts(all_cas) == paid, clp
            assert Decimal(clp[5] or 0) == cas_amounts(all_cas, "PR"), clp
            assert [(ln["svc"][1], Decimal(ln["svc"][2])) for ln in c["lines"]] == sent[clp[1]]
            assert sum(Decimal(ln["svc"][2]) for ln in c["lines"]) == charge
            for ln in c["lines"]:
                assert Decimal(ln["svc"][2]) - cas_amounts(ln["cas"]) == Decimal(ln["svc"][3])
            kind = outcome[clp[1]]["outcome"]
            seen[kind] += 1
            assert Decimal(outcome[clp[1]]["paid"]) == paid
            if kind == "denied":
                assert clp[2] == "4" and paid == 0
                groups = {(s[1], s[2]) for s in all_cas}
                assert len(groups) == 1 and groups <= {
                    ("CO", "97"),
                    ("CO", "18"),
                    ("CO", "29"),
                    ("CO", "16"),
                }
                assert all(ln["lq"] and ln["lq"][0][1] == "HE" for ln in c["lines"])
            elif kind == "paid":
                assert clp[2] == "1" and paid == charge and not all_cas
            else:
                assert kind == "partially_paid" and clp[2] == "1" and 0 < paid < charge
                assert {s[1] for s in all_cas} == {"CO", "PR"}
                assert {s[2] for s in all_cas if s[1] == "CO"} == {"45"}
                assert {s[2] for s in all_cas if s[1] == "PR"} <= {"1", "2"}
    assert set(seen) == {"paid", "partially_paid", "denied"}, seen


def test_each_835_line_echoes_its_line_item_control_number(night):
    # our 837s carry each line's id as REF*6R (one per service line)
    path = sorted(night.glob("*_837P_*.x12"))[0]
    text = path.read_text()
    files = payer_sim.simulate(text, seed=5, reject_share=0, deny_share=0.3, on=ON)
    sent = [s[2] for s in segments(text) if s[:2] == ["REF", "6R"]]
    assert len(sent) == sum(s[0] == "SV1" for s in segments(text))
    ok, report = pyx12_validate(files["835"])
    assert ok, report[:2000]
    echoed = [ln["ref6r"] for c in claims_835(files["835"]) for ln in c["lines"]]
    assert echoed == sent and len(sent) > 5


# ---- shares, determinism -----------------------------------------------------------------------


def test_shares_are_respected(night, tmp_path):
    n = len(sent_claims(night))
    assert n >= 100
    rec = simulate_dir(night, tmp_path / "a", reject_share=0.3, deny_share=0.0)
    outcomes = Counter(c["outcome"] for c in rec["claims"])
    assert 0.15 * n <= outcomes["rejected_277ca"] <= 0.45 * n, outcomes
    assert outcomes["denied"] == 0 and outcomes["rejected_999"] == 0
    rec = simulate_dir(night, tmp_path / "b", reject_share=0.0, deny_share=0.3)
    outcomes = Counter(c["outcome"] for c in rec["claims"])
    assert outcomes["rejected_277ca"] == 0
    assert 0.15 * n <= outcomes["denied"] <= 0.45 * n, outcomes
    rec = simulate_dir(night, tmp_path / "c", reject_share=1.0, deny_share=0.0)
    assert Counter(c["outcome"] for c in rec["claims"]) == {"rejected_277ca": n}
    assert not list((tmp_path / "c").glob("*.835.x12"))
    rec = simulate_dir(night, tmp_path / "d", reject_share=0.0, deny_share=1.0)
    assert Counter(c["outcome"] for c in rec["claims"]) == {"denied": n}
    for p in (tmp_path / "d").glob("*.835.x12"):  # nothing paid: notification only
        bpr = next(s for s in segments(p.read_text()) if s[0] == "BPR")
        assert bpr[1:5] == ["H", "0", "C", "NON"]
        ok, report = pyx12_validate(str(p))
        assert ok, report[:2000]


def test_same_seed_same_bytes_and_outcome_by_claim_not_file_order(night, tmp_path):
    def files(out: Path) -> dict[str, bytes]:
        return {p.name: p.read_bytes() for p in sorted(out.iterdir())}

    simulate_dir(night, tmp_path / "a", seed=11)
    simulate_dir(night, tmp_path / "b", seed=11)
    simulate_dir(night, tmp_path / "c", seed=12)
    assert files(tmp_path / "a") == files(tmp_path / "b")
    other = files(tmp_path / "c")
    assert other.keys() == files(tmp_path / "a").keys()
    assert all(other[k] != v for k, v in files(tmp_path / "a").items())
    # the same 837s under other names (so read in another order): the same claim outcomes
    shuffled = tmp_path / "shuffled"
    shuffled.mkdir()
    for i, p in enumerate(sorted(night.glob("*.x12"), reverse=True)):
        shutil.copy(p, shuffled / f"{i:02d}_{p.name}")
    by_claim = {c["claim_id"]: c["outcome"] for c in simulate_dir(night, tmp_path / "x")["claims"]}
    again = simulate_dir(shuffled, tmp_path / "y")["claims"]
    assert {c["claim_id"]: c["outcome"] for c in again} == by_claim


def test_simulation_record_holds_no_phi(night, answered):
    out, record = answered
    text = (out / "simulation.json").read_text()
    for path in night.glob("*.x12"):
        for seg in segments(path.read_text()):
            if seg[0] == "NM1" and seg[1] in ("IL", "QC"):
                for value in (seg[3], seg[4] if len(seg) > 4 else "", seg[-1]):
                    if len(value) > 3:
                        assert value not in text, "a name or member id in simulation.json"
            if seg[0] == "DMG":
                assert seg[2] not in text  # date of birth
    assert set(record["claims"][0]) == {
        "claim_id",
        "claim_file",
        "outcome",
        "charge",
        "status_277ca",
        "payer_claim_control_number",
        "clp02",
        "paid",
        "patient_responsibility",
        "carc",
    }
    assert len(record["claims"]) == len(sent_claims(night))
    mode = (next(out.glob("*.835.x12"))).stat().st_mode & 0o777
    assert mode == 0o600  # the responses name patients: owner-only


# ---- the command line ----------------------------------------------------------------------------


def test_cli_simulate_payer(night, tmp_path, capsys):
    out = tmp_path / "responses"
    argv = ["simulate-payer", "--claims", str(night), "--out", str(out), "--seed", "3"]
    assert cli.main([*argv, "--reject-share", "0.2", "--date", "2026-11-30"]) == 0
    record = json.loads((out / "simulation.json").read_text())
    assert record["seed"] == 3 and record["date"] == "2026-11-30"
    assert len(list(out.glob("*.999.x12"))) == len(list(night.glob("*.x12")))
    capsys.readouterr()

    missing = tmp_path / "not-there"
    argv = ["simulate-payer", "--claims", str(missing), "--out", str(tmp_path / "o2")]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(missing) in err[0] and err[0].startswith("therapy-claims:")
    assert not (tmp_path / "o2").exists()
