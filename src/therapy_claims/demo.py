"""``therapy-claims demo``: two synthetic nights with the payer's answers in between, so a
newcomer sees the whole loop a revenue-cycle team lives in.

1. **Night 1** (the day before the run date): a generated night of extracts, run through the
   nightly DAG (``airflow dags test``) or in-process with ``--no-airflow``.
2. **The payer answers** it (``payer_sim``: a 999, a 277CA and an 835 per claim file, with
   rejections and denials), and the responses are recorded (``acks``, through the responses
   DAG with Airflow): every sent claim gets its status in the lifecycle layer.
3. **The team corrects** what came back: a denied claim's visit has one line removed (the
   line the payer denied, as a biller would after a bundling denial) and is charted again,
   and a claim the payer rejected is sent again as it was.
4. **Night 2** (the run date): a new generated night plus those corrected visits. Score sends
   the denied claim as a replacement (CLM05-3 = 7, REF*F8 = the payer's claim control number)
   and the rejected one as a new original; the worklist holds the rejections and denials not
   worked yet, with the rule codes that would have prevented them.

Everything is synthetic (``generate``): no real patient, payer or provider. What is printed
is ids, codes, counts and amounts, never names.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import pandas as pd

from therapy_claims import acks, generate, lifecycle, payer_sim, pipeline, storage
from therapy_claims.config import RunConfig, RunError

Progress = Callable[[str], None]

# the two visits the team corrects between the nights (at most one of each)
REPLACE_FROM = ("denied", "partially_paid")  # adjudicated, with a control number
RESEND_FROM = ("rejected_by_payer", "rejected_by_clearinghouse")


@dataclass
class Demo:
    """Where the demo wrote, and what it corrected between the nights (CLM01s)."""

    root: Path
    out: str
    nights: tuple[date, date]
    replaced: str | None = None  # night 1's CLM01 of the claim night 2 replaces
    resent: str | None = None  # night 1's CLM01 of the rejected claim night 2 sends again


def run(
    root: Path,
    rd: date,
    *,
    encounters: int,
    seed: int,
    problem_rate: float,
    phi_out: str | None,
    airflow: bool,
    progress: Progress,
) -> Demo:
    """Both nights and the answers between them (see the module's note)."""
    first, second = rd - timedelta(days=1), rd
    landing, out = root / "landing", root / "out"
    df1 = generate.generate(encounters, seed=seed, run_date=first, problem_rate=problem_rate)
    df2 = generate.generate(encounters, seed=seed + 1, run_date=second, problem_rate=problem_rate)
    # the sample reference plus a roster of both nights' clinicians, two of them left out so
    # that their lines show PROVIDER_UNKNOWN
    ref_dir = root / "reference"
    left_out = generate.write_reference(pd.concat([df1, df2]), str(ref_dir), leave_out=2)
    progress(f"demo reference in {ref_dir}: providers.csv without {len(left_out)} clinician(s)")
    demo = Demo(root=root, out=str(out), nights=(first, second))

    cfg1 = _night(root, landing, out, ref_dir, first, df1, phi_out, airflow, progress)
    # the committed run's claim files (the DAG's run is not this process's RunConfig)
    claims = storage.read_json(cfg1.manifest_path)["outputs"]["claims"]
    answers = root / "responses" / f"sent_{first.isoformat()}"
    record = payer_sim.run(claims, str(answers), seed=seed, on=second)
    outcomes = pd.Series([c["outcome"] for c in record["claims"]]).value_counts()
    progress(
        f"the payer answered night {first}: "
        + ", ".join(f"{n} {k}" for k, n in sorted(outcomes.items()))
        + f" ({answers})"
    )
    _responses(answers, out, second, airflow, root, progress)

    corrected, demo.replaced, demo.resent = corrections(df1, str(out))
    if demo.replaced:
        progress(f"corrected between the nights: claim {demo.replaced} (a line removed)")
    if demo.resent:
        progress(f"sent again as it was: claim {demo.resent} (rejected)")
    night2 = pd.concat([df2, corrected], ignore_index=True)
    _night(root, landing, out, ref_dir, second, night2, phi_out, airflow, progress)
    # night 2's claims into the statuses (as ``therapy-claims lifecycle``): sent, awaiting
    # their answers, so the balance counts every claim of both nights
    acks.locked(
        str(out),
        lifecycle.refresh,
        holder_id=f"lifecycle-demo-{second.isoformat()}",
        command="therapy-claims demo",
    )
    return demo


def corrections(df1: pd.DataFrame, out: str) -> tuple[pd.DataFrame, str | None, str | None]:
    """Night 1's lines the team sends again on night 2: the visit of one claim the payer
    adjudicated without paying it all (denied, else partially paid) with one line removed,
    and the visit of one claim the payer rejected, unchanged. Picks are the first by CLM01
    among the claims sent whole (a claim sent in parts is not corrected automatically) whose
    visit has lines enough; (lines, replaced CLM01, resent CLM01)."""
    current = lifecycle.read_current(out).to_pandas()
    whole = ~current["claim_id"].str.contains("-", regex=False)
    current = current[whole].sort_values("claim_id", kind="mergesort")
    keys = ["clinic_id", "encounter_id", "payer_id"]
    per_visit = df1.groupby(keys, sort=False).size()
    parts, replaced, resent = [], None, None

    def visit(row) -> pd.DataFrame:
        at = (df1[keys] == pd.Series({k: row[k] for k in keys})).all(axis=1)
        return df1[at]

    for status in REPLACE_FROM:
        rows = current[
            (current["status"] == status) & current["payer_claim_control_number"].notna()
        ]
        for _, row in rows.iterrows():
            if per_visit.get(tuple(row[k] for k in keys), 0) >= 2:
                lines = visit(row).sort_values("line_id")
                parts.append(lines.iloc[:-1])  # the last line removed
                replaced = row["claim_id"]
                break
        if replaced:
            break
    for _, row in current[current["status"].isin(RESEND_FROM)].iterrows():
        lines = visit(row)
        if len(lines):
            parts.append(lines)
            resent = row["claim_id"]
            break
    frame = pd.concat(parts, ignore_index=True) if parts else df1.iloc[:0]
    return frame, replaced, resent


def _night(
    root: Path,
    landing: Path,
    out: Path,
    ref_dir: Path,
    rd: date,
    df: pd.DataFrame,
    phi_out: str | None,
    airflow: bool,
    progress: Progress,
) -> RunConfig:
    """One night: its extracts in the landing zone (two clinics' files, as practice-management
    systems drop them), run through the nightly DAG or in-process."""
    landing.mkdir(parents=True, exist_ok=True)
    for old in landing.glob("*"):
        old.unlink()
    known = df["clinic_id"].where(df["clinic_id"].isin(["CLN01", "CLN02"]), "misc")
    for name, part in df.groupby(known, sort=True):
        generate.write(part, str(landing / f"encounters_{name}_{rd.isoformat()}.csv"))
    written = sum(1 for _ in landing.glob("*.csv"))
    progress(f"demo night {rd}: {len(df)} service lines in {written} file(s) in {landing}")
    cfg = RunConfig(
        inputs=[str(landing)], out=str(out), run_date=rd, reference=str(ref_dir), phi_out=phi_out
    )
    if not airflow:
        pipeline.run(cfg, progress=progress)
        return cfg
    conf = {
        "input": str(landing),
        "out": str(out),
        "run_date": rd.isoformat(),
        "reference": str(ref_dir),
        **({"phi_out": phi_out} if phi_out else {}),
    }
    _airflow(root, "therapy_claims_nightly", rd, conf, f"airflow-dags-test-{rd}.log", progress)
    if not storage.exists(cfg.manifest_path):
        raise RunError(f"the DAG run of night {rd} committed no manifest ({cfg.manifest_path})")
    return cfg


def _responses(
    answers: Path, out: Path, on: date, airflow: bool, root: Path, progress: Progress
) -> None:
    """Record the payer's files and recompute the statuses: the responses DAG with Airflow
    (``events.apply_responses``: ``acks.apply`` then ``lifecycle.refresh``), else the same
    calls in-process."""
    if airflow:
        conf = {"input": str(answers), "out": str(out), "received_on": on.isoformat()}
        env = {"THERAPY_CLAIMS_RESPONSES_LANDING": str(answers)}
        _airflow(root, "therapy_claims_responses", on, conf, "airflow-responses.log", progress, env)
        state = lifecycle.read(str(out))
        if state.current.num_rows == 0:
            raise RunError("the responses DAG run recorded no claim statuses")
        for line in lifecycle.summary_lines(state):
            progress(line)
        return
    computed: list[lifecycle.Lifecycle] = []
    result = acks.apply(
        [str(answers)],
        str(out),
        received_on=on,
        after=lambda o: computed.append(lifecycle.refresh(o)),
    )
    for line in acks.summary_lines(result) + lifecycle.summary_lines(computed[0]):
        progress(line)


def _airflow(
    root: Path,
    dag_id: str,
    day: date,
    conf: dict,
    log_name: str,
    progress: Progress,
    env: dict[str, str] | None = None,
) -> None:
    """``airflow dags test DAG DAY -c CONF``: the real DAG, its tasks in this process tree,
    Airflow on the demo's SQLite home. The log goes to a file beside the demo's outputs."""
    airflow = Path(sys.executable).with_name("airflow")
    cmd = [str(airflow), "dags", "test", dag_id, day.isoformat(), "-c", json.dumps(conf)]
    progress(f"running the Airflow DAG: airflow dags test {dag_id} {day.isoformat()}")
    proc = subprocess.run(
        cmd, env={**os.environ, **(env or {})}, capture_output=True, text=True, check=False
    )
    log_path = root / log_name
    log_path.write_text(proc.stdout + proc.stderr)
    if proc.returncode != 0:
        raise RunError(f"the DAG run {dag_id} failed (exit {proc.returncode}); log: {log_path}")
    states = [ln for ln in (proc.stdout + proc.stderr).splitlines() if "state=" in ln.lower()]
    progress(
        f"DAG run finished; log in {log_path}"
        + (f" ({states[-1].strip()[:120]})" if states else "")
    )


def sent_again(out: str, rd: date) -> list[str]:
    """What night ``rd`` sent again of claims sent before, from its ledger layer: one line
    per replacement, void or resubmission (CLM01s, frequency, the control number it
    corrects)."""
    from therapy_claims import ledger

    rows = ledger.read(out)
    rows = rows[(rows["run_date"].astype(str) == rd.isoformat())]
    rows = rows[rows["original_claim_id"].notna()]
    meaning = {"1": "sent again as a new claim", "7": "replacement", "8": "void"}
    lines = []
    for _, r in rows.sort_values("claim_id").iterrows():
        kind = meaning.get(str(r["frequency_code"]), f"frequency {r['frequency_code']}")
        ref = r["original_reference"]
        lines.append(
            f"  {r['claim_id']}: {kind} (CLM05-3 {r['frequency_code']}) of {r['original_claim_id']}"
            + (f", REF*F8 {ref}" if isinstance(ref, str) and ref else "")
        )
    return lines
