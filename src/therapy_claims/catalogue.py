"""The rule catalogue: per finding code its severity, when it fires, what to do about it and who
does it. This is the data; the rules that emit the codes live in the ``rules`` package (and the
ingest, GX and 837 checks). docs/rules.md lists every code here (tests/test_docs.py checks it)."""

from __future__ import annotations

from dataclasses import dataclass

ERROR, WARNING, INFO = "error", "warning", "info"

# who works an exception: the desk that registers patients, coverage and authorisations; the
# treating clinician (times, documentation); the biller (claims, modifiers the payer needs); the
# coder (codes, code pairs and their modifiers); whoever keeps the reference tables and extracts
FRONT_DESK, CLINICIAN, BILLER, CODER, REFERENCE_DATA = (
    "front desk",
    "clinician",
    "biller",
    "coder",
    "IT/reference data",
)
OWNERS = (FRONT_DESK, CLINICIAN, BILLER, CODER, REFERENCE_DATA)


@dataclass(frozen=True)
class RuleSpec:
    code: str
    severity: str
    fires_when: str
    suggested_fix: str
    # one of OWNERS: who acts on a finding of this code (the exceptions' and the worklist's
    # ``owner``)
    owner: str
    # whether a reviewed release (``therapy_claims.releases``) may waive the code. Not for
    # what no review can make billable: the data could not be read or typed, a copy of a line
    # or charge, an encounter missing a line, a claim billed before, what the 837 cannot carry
    releasable: bool = True


_SPECS = (
    RuleSpec(
        "FILE_REJECTED",
        ERROR,
        "an input file cannot be read or lacks a required column",
        "Fix or re-export the file from the practice-management system and drop it in again.",
        REFERENCE_DATA,
        releasable=False,
    ),
    RuleSpec(
        "FILE_EMPTY",
        WARNING,
        "an input file is read but holds no rows (a header and nothing else)",
        "Check that the clinic really charted nothing that day; if not, re-run its extract "
        "and drop the file in again.",
        REFERENCE_DATA,
        releasable=False,
    ),
    RuleSpec(
        "ROW_INVALID",
        ERROR,
        "a row fails parsing or typing",
        "Correct the named column in the source system and re-send the line.",
        REFERENCE_DATA,
        releasable=False,
    ),
    RuleSpec(
        "DUPLICATE_LINE",
        ERROR,
        "a line_id appears more than once in the night",
        "Keep one charge line per line_id in the source system; void the duplicate.",
        BILLER,
        releasable=False,
    ),
    RuleSpec(
        "DUPLICATE_CHARGE",
        ERROR,
        "two lines under different line_ids are one charge: same patient, clinic, date of "
        "service, code, rendering clinician and start/end times (ids without case or blanks); "
        "the copy is quarantined, the first line in file order is kept",
        "Void the duplicate charge in the practice-management system; the kept line is billed "
        "once. If the service really was given twice, chart the second with its own times.",
        BILLER,
        releasable=False,
    ),
    RuleSpec(
        "ENCOUNTER_INCOMPLETE",
        ERROR,
        "a sibling line of the encounter was quarantined",
        "Fix the quarantined line of this encounter; the whole visit is billed together.",
        BILLER,
        releasable=False,
    ),
    RuleSpec(
        "UNKNOWN_PAYER",
        ERROR,
        "payer_id is not in payers.csv",
        "Correct the payer on the patient's coverage, or add the payer to payers.csv.",
        FRONT_DESK,
    ),
    RuleSpec(
        "UNKNOWN_CLINIC",
        ERROR,
        "clinic_id is not in clinics.csv",
        "Correct the clinic on the encounter, or add the clinic to clinics.csv.",
        REFERENCE_DATA,
    ),
    RuleSpec(
        "CODE_UNKNOWN",
        ERROR,
        "cpt_code is not in cpt_codes.csv",
        "Correct the procedure code on the line, or add the code (with its timed, one-on-one "
        "and always-therapy flags and their source) to cpt_codes.csv.",
        CODER,
    ),
    RuleSpec(
        "NPI_INVALID",
        ERROR,
        "rendering or billing NPI fails the check digit",
        "Correct the NPI (check NPPES) on the provider or clinic record.",
        REFERENCE_DATA,
    ),
    RuleSpec(
        "DIAGNOSIS_INVALID",
        ERROR,
        "malformed ICD-10-CM code, a pointer outside the list, or more diagnoses than the "
        "claim holds (837P 12, 837I 25)",
        "Correct the diagnosis codes or pointers in the chart.",
        CODER,
    ),
    RuleSpec(
        "DATE_INVALID",
        ERROR,
        "date of service in the future, before birth or past the payer's timely filing limit",
        "Correct the date of service or the date of birth.",
        FRONT_DESK,
    ),
    RuleSpec(
        "TIME_MISSING",
        ERROR,
        "timed code without minutes",
        "Document the one-on-one minutes for this timed code.",
        CLINICIAN,
    ),
    RuleSpec(
        "TIME_INCONSISTENT",
        ERROR,
        "end <= start, or minutes exceed end - start",
        "Correct the start/end times or the minutes in the treatment note.",
        CLINICIAN,
    ),
    RuleSpec(
        "PROVIDER_OVERLAP",
        ERROR,
        "one clinician's one-on-one intervals overlap across patients",
        "Correct the times; one-on-one time cannot be with two patients at once.",
        CLINICIAN,
    ),
    RuleSpec(
        "TIME_OVERLAP_SAME_PATIENT",
        WARNING,
        "two timed lines of one patient and one clinician overlap in time; the overlap counts once",
        "Correct the start/end times or minutes in the treatment note; the overlapping minutes "
        "were billed once, on the line that started first.",
        CLINICIAN,
    ),
    RuleSpec(
        "UNITS_ZERO",
        INFO,
        "a timed code gets 0 units",
        "Nothing to bill for this line; no action unless the minutes are wrong.",
        BILLER,
    ),
    RuleSpec(
        "UNITS_CORRECTED",
        WARNING,
        "units_charted differs from the computed units",
        "Review the charted units; the computed units were billed.",
        BILLER,
    ),
    RuleSpec(
        "NOT_ONE_ON_ONE",
        ERROR,
        "one-on-one timed code with group_size > 1",
        "Bill group treatment as 97150, or correct the group size.",
        CODER,
    ),
    RuleSpec(
        "REGION_MISSING",
        ERROR,
        "97140 or CMT without a body region",
        "Document the body region treated.",
        CLINICIAN,
    ),
    RuleSpec(
        "REGION_INVALID",
        ERROR,
        "97140 or CMT with an unknown body region",
        "Use one of the documented body regions.",
        CLINICIAN,
    ),
    RuleSpec(
        "TECHNIQUE_MISSING",
        ERROR,
        "97140 without a manual technique",
        "Document the manual technique (e.g. joint mobilization).",
        CLINICIAN,
    ),
    RuleSpec(
        "TECHNIQUE_INVALID",
        ERROR,
        "97140 with a non-manual technique",
        "Bill the modality under its own code; 97140 is manual techniques only.",
        CODER,
    ),
    RuleSpec(
        "DOCUMENTATION_INCOMPLETE",
        WARNING,
        "97140 without goal_id or patient_response",
        "Link the line to a plan-of-care goal and document the patient's response.",
        CLINICIAN,
    ),
    RuleSpec(
        "CMT_REGION_COUNT",
        ERROR,
        "CMT code does not match the number of spinal regions",
        "Use 98940 for 1-2, 98941 for 3-4, 98942 for 5 spinal regions.",
        CODER,
    ),
    RuleSpec(
        "CMT_SAME_REGION",
        ERROR,
        "97140 on a region also manipulated that day",
        "Remove 97140 for the manipulated region, or document a different region.",
        CODER,
    ),
    RuleSpec(
        "NCCI_MODIFIER_MISSING",
        ERROR,
        "NCCI pair (indicator 1) of reported lines without 59/XE/XS/XP/XU where the payer "
        "takes it (payers.csv distinct_modifier_on: the column-2 code, or either code)",
        "If the services were distinct, add the distinct-service modifier to the column-2 code "
        "(XS or 59 on 97140 with CMT); else drop the column-2 code.",
        CODER,
    ),
    RuleSpec(
        "NCCI_NOT_BYPASSABLE",
        ERROR,
        "NCCI pair with indicator 0",
        "Bill only the column-1 code; no modifier can bypass this pair.",
        CODER,
    ),
    RuleSpec(
        "XS_SAME_REGION",
        ERROR,
        "XS claimed but both lines treat the same region",
        "Remove XS or correct the regions.",
        CODER,
    ),
    RuleSpec(
        "MODIFIER_59_WITH_X",
        ERROR,
        "59 and an X modifier on the same line",
        "Keep the X modifier and remove 59.",
        CODER,
    ),
    RuleSpec(
        "MODIFIER_INVALID",
        ERROR,
        "malformed or unknown modifier, or more than 4",
        "Correct the modifiers (at most four, two characters each).",
        CODER,
    ),
    RuleSpec(
        "THERAPY_MODIFIER_ADDED",
        WARNING,
        "GP/GO/GN was missing and was added from the discipline",
        "No action needed; add the therapy modifier at charge entry to avoid this.",
        BILLER,
    ),
    RuleSpec(
        "THERAPY_MODIFIER_MISMATCH",
        ERROR,
        "GP/GO/GN disagrees with the discipline",
        "Correct the therapy modifier or the discipline of the line.",
        BILLER,
    ),
    RuleSpec(
        "ASSISTANT_MODIFIER_ADDED",
        WARNING,
        "PTA/OTA line lacked CQ/CO and it was added",
        "No action needed; add CQ/CO at charge entry for assistant services.",
        BILLER,
    ),
    RuleSpec(
        "MUE_EXCEEDED",
        ERROR,
        "units per code per date exceed the MUE",
        "Reduce the units to the MUE, or document and split per the MAI.",
        CODER,
    ),
    RuleSpec(
        "DAILY_UNIT_CAP_EXCEEDED",
        ERROR,
        "payer's max timed units per day exceeded",
        "Reduce timed units to the payer's daily cap or obtain an exception.",
        BILLER,
    ),
    RuleSpec(
        "AUTH_MISSING",
        ERROR,
        "payer requires prior authorization and none is given",
        "Obtain the authorization number and add it to the visit.",
        FRONT_DESK,
    ),
    RuleSpec(
        "VISIT_LIMIT_EXCEEDED",
        ERROR,
        "visit_number > authorized_visits",
        "Request more authorized visits before billing this visit.",
        FRONT_DESK,
    ),
    RuleSpec(
        "ALREADY_BILLED",
        ERROR,
        "the claim (encounter, payer, clinic) was already sent by another night and its "
        "latest sending calls for no resubmission or replacement: still in flight (sent, "
        "accepted by the clearinghouse), lines unchanged, no payer claim control number, no "
        "lifecycle status or line digest for it, sent in parts, or voided (the message says "
        "which)",
        "Do not resend: wait for the payer's answer to the earlier claim (the next night "
        "decides again); if its lines changed and the payer adjudicated it without a control "
        "number known, or it went out in parts, send a corrected (frequency 7) or void (8) "
        "claim by hand.",
        BILLER,
        releasable=False,
    ),
    RuleSpec(
        "CLAIM_RESUBMITTED",
        INFO,
        "the claim's earlier sending was rejected by the clearinghouse or the payer (never "
        "adjudicated): it goes out again as a new original (frequency 1) under a new CLM01; "
        "the message names the earlier CLM01, its status and date",
        "No action; check the reason of the earlier rejection was fixed (the lifecycle layer's "
        "reason codes) before the payer answers again.",
        BILLER,
        releasable=False,
    ),
    RuleSpec(
        "CLAIM_REPLACEMENT",
        INFO,
        "the payer adjudicated the claim's earlier sending (accepted, paid, partially paid or "
        "denied, with a claim control number) and tonight's billed lines differ from those "
        "sent: a replacement (frequency 7, REF*F8 the payer's claim control number) goes out "
        "under a new CLM01",
        "No action; the payer replaces its claim with this one. Follow its answer in the "
        "lifecycle layer.",
        BILLER,
        releasable=False,
    ),
    RuleSpec(
        "CLAIM_VOID",
        INFO,
        "a reviewed release row (code VOID, claim_id) asks for a void of a claim another night "
        "sent and the payer adjudicated with a claim control number: the claim goes out as a "
        "void (frequency 8, REF*F8 the payer's claim control number) under a new CLM01, of "
        "tonight's billed lines, or, with no line of it tonight, of the claim as it was sent "
        "(copied from its 837 file into a void file)",
        "Remove the VOID release row once the night is sent; follow the payer's answer in the "
        "lifecycle layer.",
        BILLER,
        releasable=False,
    ),
    RuleSpec(
        "CLAIM_NOT_RESENT",
        WARNING,
        "an earlier run of this night sent the claim and this run does not bill it",
        "The payer has the claim from the earlier run: if it should not have been sent, send a "
        "void (frequency 8); if its lines changed, a corrected claim (frequency 7).",
        BILLER,
    ),
    RuleSpec(
        "CLAIM_DATA_INVALID",
        ERROR,
        "the claim cannot be written as a valid 837",
        "Correct the named field in the practice-management system (names, addresses and ids "
        "must keep letters or digits after X12 cleaning) and re-send the visit.",
        FRONT_DESK,
        releasable=False,
    ),
    RuleSpec(
        "KX_REQUIRED",
        ERROR,
        "Medicare therapy amounts this year pass the KX threshold, the line lacks KX and the "
        "payer's kx_action is hold",
        "If the record documents medical necessity, add KX; otherwise review before billing.",
        BILLER,
    ),
    RuleSpec(
        "CODE_NOT_COVERED",
        WARNING,
        "the code is not payable by this payer class (code_edits.csv): the line is not billed "
        "(the rest of the claim goes out), or billed with GY/GA/GZ when the line carries one "
        "or payers.csv noncovered_modifier names one",
        "Follow the fix named in the message (e.g. bill G0283 instead of 97014); bill the "
        "line with GY/GA/GZ only where the patient or a secondary payer needs the denial.",
        CODER,
    ),
    RuleSpec(
        "DC_SERVICE_NOT_COVERED",
        WARNING,
        "a chiropractor (credential DC) bills Medicare a code other than spinal CMT "
        "98940-98942: not billed, or billed with GY/GA/GZ as for CODE_NOT_COVERED",
        "Bill Medicare only the spinal manipulation; collect from the patient for the rest, "
        "or bill it with GY where a secondary payer needs Medicare's denial.",
        CODER,
    ),
    RuleSpec(
        "CMT_AT_MISSING",
        ERROR,
        "Medicare CMT (98940-98942) without AT (denied as maintenance); the payer's "
        "cmt_at_action is hold",
        "Add AT for active/corrective treatment, or GA with an ABN for maintenance care.",
        CODER,
    ),
    RuleSpec(
        "POC_EXPIRED",
        ERROR,
        "date of service outside the plan-of-care period",
        "Obtain a recertified plan of care covering the date of service.",
        CLINICIAN,
    ),
    RuleSpec(
        "CHARGE_CORRECTED",
        WARNING,
        "units were corrected, so the charge was recomputed: unit charge (fee_schedule.csv, "
        "else charted charge / charted units) x billed units",
        "No action needed; charge the units the minutes support at charge entry.",
        BILLER,
    ),
    RuleSpec(
        "CHARGE_INVALID",
        ERROR,
        "the billed lines of a claim total $0.00",
        "Enter the charges of the billed lines (or fee_schedule.csv unit charges) and re-send.",
        BILLER,
    ),
    RuleSpec(
        "CHARGE_ABOVE_SCHEDULE",
        WARNING,
        "a line's unit charge is more than 3x the fee_schedule.csv unit_charge",
        "Check the charge for a keying error (an extra digit) before the claim goes out.",
        BILLER,
    ),
    RuleSpec(
        "KX_REQUIRED_WARN",
        WARNING,
        "as KX_REQUIRED, for a payer whose kx_action is warn: the line is billed without KX",
        "If the record documents medical necessity, add KX; otherwise review before billing.",
        BILLER,
    ),
    RuleSpec(
        "KX_ADDED",
        WARNING,
        "KX was missing past the threshold and was added: the plan of care is current and the "
        "line names a goal",
        "No action needed if the record documents medical necessity; otherwise remove KX.",
        BILLER,
    ),
    RuleSpec(
        "CMT_AT_MISSING_WARN",
        WARNING,
        "as CMT_AT_MISSING, for a payer whose cmt_at_action is warn: the line is billed",
        "Add AT for active/corrective treatment, or GA with an ABN for maintenance care.",
        CODER,
    ),
    # issue 15: claims a payer accepts (providers, claim content by payer, text)
    RuleSpec(
        "ASSISTANT_SUPERVISOR_MISSING",
        ERROR,
        "a PTA/OTA line for a payer that does not let assistants render (Medicare; payers.csv "
        "assistants_may_render false) has no supervising therapist: supervising_npi missing, "
        "invalid, or without a name (supervising_last_name/first_name or providers.csv)",
        "Record the supervising PT/OT (NPI and name) on the visit and re-send it.",
        CLINICIAN,
    ),
    RuleSpec(
        "PROVIDER_UNKNOWN",
        WARNING,
        "a rendering, supervising or referring NPI is not in providers.csv (when the folder "
        "lists providers): its taxonomy and name come from the extract or the credential",
        "Add the clinician to providers.csv (NPI, name, credential, NPPES taxonomy), or correct "
        "the NPI.",
        REFERENCE_DATA,
    ),
    RuleSpec(
        "REFERRING_MISSING",
        ERROR,
        "the payer requires a referring/ordering provider (payers.csv requires_referring) and "
        "the visit has no valid referring_npi with a name",
        "Enter the referring physician (NPI and name) from the referral or the plan-of-care "
        "certification, and re-send the visit.",
        FRONT_DESK,
    ),
    RuleSpec(
        "INITIAL_TREATMENT_DATE_MISSING",
        ERROR,
        "a Medicare chiropractic (CMT) claim, or a Medicare institutional therapy claim, has no "
        "initial_treatment_date and no plan_of_care_start to fall back on",
        "Enter the date the episode's treatment started (initial_treatment_date) and re-send.",
        CLINICIAN,
    ),
    RuleSpec(
        "ACCIDENT_DATE_MISSING",
        ERROR,
        "a workers' comp or auto claim (or one with related_cause) has no accident_date and "
        "no injury_date to fall back on",
        "Enter the date of the accident or work injury and re-send the visit.",
        FRONT_DESK,
    ),
    RuleSpec(
        "ACCIDENT_STATE_MISSING",
        ERROR,
        "an auto accident claim has no accident_state (837P CLM11-4)",
        "Enter the state where the auto accident happened and re-send the visit.",
        FRONT_DESK,
    ),
    RuleSpec(
        "PC_CLAIM_NUMBER_MISSING",
        WARNING,
        "a workers' comp or auto claim has no property-and-casualty claim number (REF*Y4)",
        "Enter the carrier's claim number for the injury; most carriers deny without it.",
        FRONT_DESK,
    ),
    RuleSpec(
        "EMPLOYER_MISSING",
        ERROR,
        "a workers' comp claim has no employer_name (the employer is the insured)",
        "Enter the patient's employer at the time of the injury and re-send the visit.",
        FRONT_DESK,
    ),
    RuleSpec(
        "POC_DATE_MISSING",
        ERROR,
        "a Medicare institutional (837I) therapy claim has no plan_of_care_start, so occurrence "
        "code 29/17/30 (the date the plan of care was established) cannot be sent",
        "Enter the date the plan of care was established (plan_of_care_start) and re-send.",
        CLINICIAN,
    ),
    RuleSpec(
        "TEXT_TRUNCATED",
        WARNING,
        "a name or address (patient, subscriber, provider, clinic, payer) is longer after "
        "cleaning than its 837 element and was sent cut (before -> after: lengths only for "
        "PHI); on the claim's billed lines",
        "Check the claim against the patient's record; shorten the value in the source system "
        "(e.g. abbreviate the street) so that eligibility matching sees what is on file.",
        FRONT_DESK,
        releasable=False,
    ),
    # issue 16: reviewed releases (therapy_claims.releases); none of them can be released
    RuleSpec(
        "RELEASED",
        INFO,
        "a reviewed release (releases/*.csv) waived an error on the line: it no longer holds "
        "the claim; the error's own finding stays (before -> after: who, when, why)",
        "No action; the claim is billed unless another error holds it. Remove the release row "
        "once the claim is billed.",
        BILLER,
        releasable=False,
    ),
    RuleSpec(
        "RELEASE_UNUSED",
        WARNING,
        "a release waived nothing tonight: past its expires_on, or no error of its code on the "
        "lines it names",
        "Remove the release row (the claim was fixed or billed), or correct the ids or code it "
        "names; give releases an expires_on.",
        BILLER,
        releasable=False,
    ),
    RuleSpec(
        "RELEASE_INVALID",
        WARNING,
        "a release file or row cannot be read: not CSV, an unknown or missing column, a bad "
        "date, an unknown code, no or two ways of naming the lines (file, row, column, value)",
        "Correct the named cell of the release file; the row (a bad header: the file) is not "
        "applied until then.",
        BILLER,
        releasable=False,
    ),
    RuleSpec(
        "RELEASE_NOT_ALLOWED",
        WARNING,
        'a release names a code that cannot be released (docs/outputs.md "Releases"), or a '
        "warning or info code, which holds nothing",
        "Fix the cause the code names instead (e.g. void the duplicate, correct the data); "
        "remove the release row.",
        BILLER,
        releasable=False,
    ),
    # issue 17: what the clearinghouse and the payers answered (``therapy_claims.lifecycle``):
    # the morning worklist's rows for claims sent and then rejected or denied. Not findings of a
    # night's lines, so nothing to release: the claim was sent; it is fixed and sent again
    RuleSpec(
        "CLEARINGHOUSE_REJECTED",
        ERROR,
        "the clearinghouse's 999 rejected the transaction set (or the group) that carried the "
        "claim: it never reached the payer (claim id, status date, the 999's IK5/IK3/IK4 codes)",
        "Fix what the 999's codes name in the 837 data (the writer, or the reference data the "
        "claim was built from) and re-send the claim; the clearinghouse has nothing to correct.",
        REFERENCE_DATA,
        releasable=False,
    ),
    RuleSpec(
        "PAYER_REJECTED",
        ERROR,
        "the payer's 277CA rejected the claim before adjudication (STC category A3, A6, A7 or "
        "A8: claim id, status date, the STC01 category:status:entity codes)",
        "Correct what the status and entity codes name (prevented_by: our edit for it) in the "
        "practice-management system and re-send the claim as new; a rejection is not appealed.",
        BILLER,
        releasable=False,
    ),
    RuleSpec(
        "PAYER_DENIED",
        ERROR,
        "the payer's 835 denied the claim (CLP02 4, or nothing paid), or paid part of it and "
        "denied a line for a reason one of our edits covers (claim id, status date, the CAS "
        "group-reason codes)",
        "Read the payer's reasons: fix what our edit for it names (prevented_by) and send a "
        "corrected claim (frequency 7), or appeal with the documentation if the denial is wrong.",
        BILLER,
        releasable=False,
    ),
)

_SPECS += (
    # issue 17: the claims' lifecycle from the 999, 277CA and 835 responses
    # (therapy_claims.lifecycle); findings of the lifecycle layer, on no line: not releasable
    RuleSpec(
        "RESPONSE_UNKNOWN_CLAIM",
        WARNING,
        "a 277CA or 835 names a claim id no published night sent, or a 999 answers a set (or "
        "group) no claim sent was in (submitter, GS06, ST02); nothing is applied",
        "Check with the clearinghouse whose claim it is (another submitter's, or a file of a "
        "night that was re-run and replaced); if it is ours, find the night that sent it.",
        BILLER,
        releasable=False,
    ),
    RuleSpec(
        "RESPONSE_DUPLICATE",
        WARNING,
        "a response row for a claim came again in another file: same kind, claim, control "
        "number or trace and content; the step is counted once",
        "No action on the claim; if the clearinghouse resends whole files, ask it to stop or "
        "drop the copies before the acks run.",
        REFERENCE_DATA,
        releasable=False,
    ),
    RuleSpec(
        "RESPONSE_CLAIM_SENT_TWICE",
        WARNING,
        "a 277CA or 835 names a claim id that two ledger rows carry (sent by two nights); it "
        "is applied to the latest sending",
        "Check with the payer which submission it answered; void the copy the payer should "
        "not adjudicate (frequency 8) and check that the claim was not paid twice.",
        BILLER,
        releasable=False,
    ),
)

CATALOGUE: dict[str, RuleSpec] = {s.code: s for s in _SPECS}


def severity(code: str) -> str:
    return CATALOGUE[code].severity
