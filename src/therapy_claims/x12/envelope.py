"""The envelope: ISA/GS around the interchange, ST/BHT/1000A/1000B and SE around each
transaction set, GE/IEA at the end; control numbers and renumbering a built file.

The interchange control number is in ISA13, GS06, each BHT03 (``<number><ST02>``), GE02 and
IEA02 and nowhere else, so claim files are built under :data:`PROVISIONAL` and numbered
afterwards (:func:`renumber`), once the ledger database has given each file its number: the
same content keeps its number, other content gets a new one from the submitter's counter
(``ledger_store.Store.control_numbers``). :func:`content_digest` is what "the same content"
means: the file's bytes with its control numbers set to :data:`PROVISIONAL`.
"""

from __future__ import annotations

import hashlib
from datetime import date, datetime

from therapy_claims.x12.fields import Invalid, exact, req

# ISA13 is nine digits: the last number a submitter can ever use
MAX_CONTROL_NUMBER = 999_999_999
# the number files are built under before they have their own. Nine digits, the most a final
# number has, so no final file is longer than it was built (files are cut to a size limit)
PROVISIONAL = MAX_CONTROL_NUMBER


def control_number(run_date: date, sequence: int) -> int:
    """ISA13/GS06 of the scheme before issue 15: YYDDD of the run date then a 4-digit sequence.
    No longer given to files (two runs of one run date with different content reused them);
    kept to bound the numbers a ledger of that time recorded (:func:`legacy_ceiling`).

    Raises ``ValueError`` for a sequence outside 1..9999 (too many claim files for a night).
    """
    if not 1 <= sequence <= 9999:
        raise ValueError(f"too many claim files for one night ({sequence})")
    return int(run_date.strftime("%y%j")) * 10000 + sequence


def legacy_ceiling(run_dates: list[date]) -> int:
    """The largest number the old YYDDD scheme could have given a file of these run dates (0
    for none): a submitter's counter starts above it, so numbers a legacy ledger recorded are
    never given again. (The largest of them all, not the latest night's: the year wraps.)"""
    return max((control_number(d, 9999) for d in run_dates), default=0)


def content_digest(data: str | bytes) -> str:
    """SHA-256 (hex) of a built interchange with its control numbers normalised (set to
    :data:`PROVISIONAL`): two files with the same digest differ in their control numbers
    alone. A file as built (under :data:`PROVISIONAL`) is hashed as it is, without a copy."""
    normal = renumber(data, PROVISIONAL)
    return hashlib.sha256(normal.encode("ascii") if isinstance(normal, str) else normal).hexdigest()


def checked_number(interchange_control_number: int) -> int:
    """ISA13 as a number; ``ValueError`` outside 1..999999999."""
    icn = int(interchange_control_number)
    if not 1 <= icn <= 999_999_999:
        raise ValueError("interchange_control_number must be 1..999999999")
    return icn


def receiver(receiver_id: object, receiver_name: object) -> tuple[str, str]:
    """(ISA08/GS03/1000B id, 1000B name) as sent; ``ValueError`` if they cannot be."""
    try:
        rcv_id = exact(receiver_id, "receiver_id", r"[A-Z0-9]{2,15}", "2-15 of A-Z 0-9")
        rcv_name = req(receiver_name, "receiver_name", 60)
    except Invalid as exc:
        raise ValueError(f"claim (envelope): {exc}") from None
    return rcv_id, rcv_name


def transaction_set_number(n: int) -> str:
    """ST02/SE02 of the n-th transaction set (from 1)."""
    return f"{n:04d}"


def envelopes(
    segments: list[int],
    *,
    version: str,
    submitter: dict[str, str],
    receiver_id: str,
    receiver_name: str,
    icn: int,
    created: datetime,
    usage: str,
) -> tuple[list[str], list[str]]:
    """The text before and after each transaction set's body (``segments``: each body's
    segment count): ST, BHT, 1000A submitter, 1000B receiver / SE; the first also opens the
    interchange (ISA, GS), the last closes it (GE, IEA). ``submitter``: the checked clinic
    entry of the first claim (its ``submitter_id``, ``submitter_name``, ``phone``)."""
    sender = submitter["submitter_id"]
    d6, d8, hm = created.strftime("%y%m%d"), created.strftime("%Y%m%d"), created.strftime("%H%M")
    before, after = [], []
    for n_set, n_segments in enumerate(segments, 1):
        st02 = transaction_set_number(n_set)
        before.append(
            f"ST*837*{st02}*{version}~\n"
            f"BHT*0019*00*{icn}{st02}*{d8}*{hm}*CH~\n"
            f"NM1*41*2*{submitter['submitter_name']}*****46*{sender}~\n"
            f"PER*IC*{submitter['submitter_name']}*TE*{submitter['phone']}~\n"
            f"NM1*40*2*{receiver_name}*****46*{receiver_id}~\n"
        )
        after.append(f"SE*{n_segments + 6}*{st02}~\n")
    before[0] = (
        f"ISA*00*{'':10}*00*{'':10}*ZZ*{sender:<15}*ZZ*{receiver_id:<15}*{d6}*{hm}*^*00501*"
        f"{icn:09d}*0*{usage}*:~\n"
        f"GS*HC*{sender}*{receiver_id}*{d8}*{hm}*{icn}*X*{version}~\n"
    ) + before[0]
    after[-1] += f"GE*{len(segments)}*{icn}~\nIEA*1*{icn:09d}~\n"
    return before, after


def renumber(text: str | bytes, interchange_control_number: int) -> str | bytes:
    """The interchange ``text`` (as ``build_837p``/``build_837i`` give it, or those
    bytes) with another interchange control number: the same text (or bytes) as building it
    with that number. The number is in ISA13, GS06, each BHT03 (``<number><ST02>``), GE02 and
    IEA02; nothing else depends on it, so claim files can be built apart and numbered in order
    afterwards. The file is copied once, with the numbers patched in."""
    icn = checked_number(interchange_control_number)
    data = text.encode("ascii") if isinstance(text, str) else text
    isa_end = data.index(b"~\n") + 2
    gs_end = data.index(b"~\n", isa_end) + 2
    ge_start = data.rindex(b"\nGE*", 0, len(data) - 1) + 1

    def element(start: int, stop: int, n: int) -> tuple[int, int]:
        """Where element ``n`` of the segment in ``data[start:stop]`` starts and ends."""
        at = start - 1
        for _ in range(n):
            at = data.index(b"*", at + 1, stop)
        return at + 1, data.index(b"*", at + 1, stop)

    isa13 = element(0, isa_end, 13)
    old = int(data[isa13[0] : isa13[1]])
    if old == icn:
        return text
    new = str(icn).encode()
    edits = [(*isa13, b"%09d" % icn), (*element(isa_end, gs_end, 6), new)]
    bht = b"\nBHT*0019*00*" + str(old).encode()
    at = data.find(bht, gs_end, ge_start)
    while at >= 0:
        edits.append((at + len(bht) - len(str(old)), at + len(bht), new))
        at = data.find(bht, at + len(bht), ge_start)
    ge, iea = bytes(data[ge_start:]).splitlines()
    n_sets, n_groups = ge.split(b"*")[1], iea.split(b"*")[1]
    edits.append((ge_start, len(data), b"GE*%s*%d~\nIEA*%s*%09d~\n" % (n_sets, icn, n_groups, icn)))
    view, pieces, done = memoryview(data), [], 0
    for start, stop, value in edits:
        pieces += [view[done:start], value]
        done = stop
    out = b"".join(pieces)
    return out.decode("ascii") if isinstance(text, str) else out
