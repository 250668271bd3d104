"""The claim ledger's system of record: a transactional database of every claim sent.

Why a database and not the Parquet partitions alone: a claim must never be sent twice, whatever
crashes or runs at once, and that needs a unique key checked and written in one transaction.
SQLite (Python's standard library) is the embedded default, a file under the output root's
``.ledger/`` for a local output; a deployment points ``--ledger`` / ``THERAPY_CLAIMS_LEDGER`` at
PostgreSQL (``postgresql://...``, the compose stack's server) or at a SQLite file on a local disk.
An ``s3://`` output needs one of them: SQLite cannot live on S3.

Tables:

- ``claim_keys``: one row per claim (clinic + encounter + payer) ever reserved, with the night
  that owns it and the run that first reserved it. The primary key makes two nights unable to
  own one claim. A claim is **sent** once that run is committed; a sent claim's row is never
  deleted, so a rerun of its night never forgets it.
- ``claim_versions``: every later sending of a claim (issue 17): version n >= 1 of a claim key
  (the original, version 0, is its ``claim_keys`` row), with the night that owns it, the run
  that first reserved it, its frequency (CLM05-3: 1 a resubmission of a claim the payer never
  adjudicated, 7 a replacement, 8 a void) and the CLM01 it corrects (version n-1's). The
  primary key (claim_key, version) makes each version sendable by one night only (two nights
  deciding the same replacement: the second to reserve fails), and a unique index (claim_key,
  run_date) gives a night at most one version of a claim, which a rerun of the night keeps.
  Reserved, marked sent and released with the run, exactly as ``claim_keys``.
- ``runs``: each run that reserved claims: ``reserved``, ``committed`` or ``abandoned``.
- ``control_numbers``: every interchange control number (ISA13/GS06) ever given to a file, per
  submitter (ISA06), with the receiver and the SHA-256 of the content it carried
  (``x12.envelope.content_digest``: the file with its control numbers normalised). The primary
  key (submitter, number) makes a number carry one content; a unique index (submitter,
  receiver, content) gives the same content its number again, so a rerun of unchanged content
  writes the same bytes. Rows are never deleted, not even for a run that crashed or failed: a
  number once given is spent.
- ``control_counters``: per submitter, the last number given; ``settings``
  ``control_number_floor``: where a submitter's counter starts (above every number a ledger
  of the old YYDDD scheme, or the ledger layers a new database took in, recorded).

What each run sent (CLM01s, files, control numbers, charges) is its ledger layer, which the
night's manifest names (``therapy_claims.ledger``): the database keeps only what the guarantee
needs, so a night's few hundred thousand claims go in with one statement (under a second).

The protocol (``therapy_claims.stages.publish`` and ``manifest``):

1. publish builds the night's files in the run's own folders, then **reserves** its claims in
   one transaction: it fails, changing nothing, if another night owns any of them;
2. the manifest is written (the commit: readers now see the new night);
3. the claims are **marked sent**.

A crash between 1 and 3 leaves reservations that ``reconcile`` (run at the start of every run,
under the output's lock) settles against the manifests: the run the night's manifest names was
committed, so its claims are marked sent; any other run's reservations are released.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime

import pandas as pd

from therapy_claims import nights, schemas, storage
from therapy_claims.config import RunConfig, RunError
from therapy_claims.x12 import envelope

log = logging.getLogger("therapy_claims")

ENV = "THERAPY_CLAIMS_LEDGER"
SQLITE_NAME = "ledger.sqlite"

SCHEMA = [
    """CREATE TABLE IF NOT EXISTS claim_keys (
        claim_key TEXT PRIMARY KEY,
        run_date TEXT NOT NULL,
        first_run_id TEXT NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS claim_keys_run ON claim_keys (first_run_id)",
    "CREATE INDEX IF NOT EXISTS claim_keys_night ON claim_keys (run_date)",
    """CREATE TABLE IF NOT EXISTS claim_versions (
        claim_key TEXT NOT NULL,
        version INTEGER NOT NULL,
        run_date TEXT NOT NULL,
        first_run_id TEXT NOT NULL,
        frequency_code TEXT NOT NULL,
        original_claim_id TEXT NOT NULL,
        PRIMARY KEY (claim_key, version)
    )""",
    "CREATE UNIQUE INDEX IF NOT EXISTS claim_versions_night ON claim_versions (claim_key, run_date)",
    "CREATE INDEX IF NOT EXISTS claim_versions_run ON claim_versions (first_run_id)",
    """CREATE TABLE IF NOT EXISTS runs (
        run_id TEXT PRIMARY KEY,
        run_date TEXT NOT NULL,
        state TEXT NOT NULL,
        reserved_at TEXT NOT NULL,
        settled_at TEXT
    )""",
    "CREATE INDEX IF NOT EXISTS runs_state ON runs (state, run_date)",
    """CREATE TABLE IF NOT EXISTS control_numbers (
        submitter_id TEXT NOT NULL,
        control_number BIGINT NOT NULL,
        receiver_id TEXT NOT NULL,
        content_sha256 TEXT NOT NULL,
        run_date TEXT NOT NULL,
        first_run_id TEXT NOT NULL,
        assigned_at TEXT NOT NULL,
        PRIMARY KEY (submitter_id, control_number)
    )""",
    "CREATE UNIQUE INDEX IF NOT EXISTS control_numbers_content "
    "ON control_numbers (submitter_id, receiver_id, content_sha256)",
    """CREATE TABLE IF NOT EXISTS control_counters (
        submitter_id TEXT PRIMARY KEY,
        last_number BIGINT NOT NULL
    )""",
    "CREATE TABLE IF NOT EXISTS settings (name TEXT PRIMARY KEY, value BIGINT NOT NULL)",
]
# The CLM01 of version n >= 1 of a claim: ``R`` + n in base 36 (1-9, A-Z: 35 versions) + the
# 15 hex digits of the claim's key (``TC`` + 15 hex, ``ledger.claim_ids``): 17 characters
# like the original's, so a split suffix (``-1`` .. ``-99``) still fits X12's 20, and the key
# is the CLM01 with ``R<n>`` read back as ``TC``.
VERSION_DIGITS = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
MAX_VERSION = len(VERSION_DIGITS) - 1
KEY_ID = re.compile(r"^TC(?P<hash>[0-9A-F]{15})$")
VERSION_ID = re.compile(r"^R(?P<version>[1-9A-Z])(?P<hash>[0-9A-F]{15})(?P<part>-\d{1,2})?$")
# as a pattern and replacement (pandas and Arrow alike): a version's CLM01 to its key's
VERSION_PATTERN = r"^R[1-9A-Z]([0-9A-F]{15}(?:-\d{1,2})?)$"
VERSION_TO_KEY = r"TC\1"


def versioned_id(claim_key: str, version: int) -> str | None:
    """CLM01 of ``version`` of a claim (its key for version 0); None when the key is not of
    the pipeline's form or the versions are spent."""
    if version == 0:
        return claim_key
    found = KEY_ID.match(claim_key)
    if not found or not 0 < version <= MAX_VERSION:
        return None
    return f"R{VERSION_DIGITS[version]}{found['hash']}"


def version_of(claim_id: str) -> int:
    """The version a CLM01 (possibly a split part) sends: 0 for an original."""
    found = VERSION_ID.match(claim_id or "")
    return VERSION_DIGITS.index(found["version"]) if found else 0


# settings: where a new submitter's counter starts (its first number is one more)
FLOOR = "control_number_floor"
# the claims a night owns and that are sent: their key's first run is committed
SENT_KEYS = "FROM claim_keys k JOIN runs r ON r.run_id = k.first_run_id WHERE r.state = 'committed'"


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def location(out: str, ledger: str | None = None) -> str:
    """The ledger database of an output root: the setting, else SQLite under ``.ledger/``."""
    url = ledger or os.environ.get(ENV) or ""
    if url:
        return url
    if storage.is_s3(out):
        raise RunError(
            f"output {out} is on S3: give the ledger database with --ledger (a SQLite file "
            f"on a local disk or a postgresql:// URL) or {ENV}"
        )
    return storage.join(out, ".ledger", SQLITE_NAME)


class Store:
    """One connection to the ledger database, SQLite or PostgreSQL, with the same SQL."""

    def __init__(self, url: str):
        self.url = url
        self.postgres = url.startswith(("postgresql://", "postgres://"))
        try:
            if self.postgres:
                import psycopg

                self.conn = psycopg.connect(url, autocommit=False)
            else:
                path = url.removeprefix("sqlite:///")
                folder = os.path.dirname(os.path.abspath(path))
                os.makedirs(folder, mode=0o700, exist_ok=True)
                # isolation_level=None: transactions are begun here explicitly, and IMMEDIATE,
                # so two writers queue on the write lock instead of failing mid-transaction
                self.conn = sqlite3.connect(path, timeout=60, isolation_level=None)
                # WAL: readers never wait for the writer; FULL: a commit is on disk when it
                # returns; a 64 MiB page cache holds a night's claim keys while they go in
                for pragma in ("journal_mode=WAL", "synchronous=FULL", "cache_size=-65536"):
                    self.conn.execute(f"PRAGMA {pragma}")
                os.chmod(path, 0o600)  # claims are PHI
        except (OSError, sqlite3.Error) as exc:
            raise RunError(f"open ledger database {_safe(url)}: {exc}") from None
        except ImportError:
            raise RunError(
                "a postgresql:// ledger needs the psycopg package (pip install 'psycopg[binary]')"
            ) from None
        except Exception as exc:  # psycopg.OperationalError and friends
            raise RunError(f"open ledger database {_safe(url)}: {_first_line(exc)}") from None
        with self.transaction():
            for statement in SCHEMA:
                self._exec(statement)
            if not self.query("SELECT value FROM settings WHERE name = ?", (FLOOR,)):
                self._start_counters()

    def _start_counters(self) -> None:
        """The first time this database numbers files: counters start above every number
        the old scheme (YYDDD of the run date + a sequence) could have given the nights it
        already records (none for a new database)."""
        run_dates = []
        for (rd,) in self.query("SELECT DISTINCT run_date FROM runs"):
            try:
                run_dates.append(date.fromisoformat(str(rd)))
            except ValueError:  # not a night's date: the old scheme numbered no file for it
                continue
        self._exec(
            "INSERT INTO settings (name, value) VALUES (?, ?) ON CONFLICT (name) DO NOTHING",
            (FLOOR, envelope.legacy_ceiling(run_dates)),
        )

    def close(self) -> None:
        self.conn.close()

    def _sql(self, statement: str) -> str:
        return statement.replace("?", "%s") if self.postgres else statement

    def _exec(self, statement: str, params: tuple | list = ()):
        return self.conn.execute(self._sql(statement), params)

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """One transaction: committed at the end, rolled back on any error."""
        try:
            if not self.postgres:
                self.conn.execute("BEGIN IMMEDIATE")
            yield
            self.conn.commit() if self.postgres else self.conn.execute("COMMIT")
        except BaseException:
            self.conn.rollback() if self.postgres else self._rollback_sqlite()
            raise

    def _rollback_sqlite(self) -> None:
        if self.conn.in_transaction:
            self.conn.execute("ROLLBACK")

    def query(self, statement: str, params: tuple | list = ()) -> list[tuple]:
        return list(self._exec(statement, params).fetchall())

    # ----------------------------------------------------------------------- the protocol

    def _values(self, array: str) -> str:
        """The rows of a JSON array of texts given as one parameter, as a table ``j(value)``:
        one statement takes a whole night's claims (row-by-row inserts from Python cost
        about 5 us a row here: seconds at a million lines)."""
        if self.postgres:
            return f"jsonb_array_elements_text({array}::jsonb) AS j(value)"
        return f"json_each({array}) AS j"

    def _bulk(self, statement: str, params: tuple) -> None:
        """One statement over the night's claims (``_values``); a crash test's hook."""
        self._exec(statement, params)

    def reserve(
        self, run_id: str, run_date: str, rows: pd.DataFrame, *, adopting: bool = False
    ) -> None:
        """Reserve a run's claims (``rows``: its ledger rows; their ``claim_key`` and, for a
        later sending of a claim, ``version`` > 0 with ``frequency_code`` and
        ``original_claim_id``) in one transaction, or change nothing and raise ``RunError``
        if another night owns any of them (``adopting`` history written before this
        database: the earlier night keeps the claim). A claim or version this night already
        owns (an earlier run of it) stays its own."""
        now = _now()
        versions = _versions(rows)
        originals = rows if versions.empty else rows[_version_column(rows) == 0]
        keys = json.dumps(sorted(originals["claim_key"].dropna().astype(str).unique().tolist()))
        with self.transaction():
            self._exec(
                "INSERT INTO runs (run_id, run_date, state, reserved_at) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (run_id) DO UPDATE SET state = 'reserved', reserved_at = ?",
                (run_id, run_date, "reserved", now, now),
            )
            taken = self.query(
                f"SELECT k.claim_key, k.run_date FROM {self._values('?')} "
                "JOIN claim_keys k ON k.claim_key = j.value WHERE k.run_date <> ? "
                "ORDER BY k.claim_key",
                (keys, run_date),
            )
            if taken and not adopting:
                key, night = taken[0]
                raise RunError(
                    f"{len(taken)} claim(s) of night {run_date} are already owned by another "
                    f"night in the ledger (e.g. claim {key}, night {night}): nothing was "
                    "published; run the night again (score holds them as ALREADY_BILLED)"
                )
            self._bulk(
                "INSERT INTO claim_keys (claim_key, run_date, first_run_id) "
                f"SELECT j.value, ?, ? FROM {self._values('?')} WHERE true "
                "ON CONFLICT (claim_key) DO NOTHING",
                (run_date, run_id, keys),
            )
            self._reserve_versions(run_id, run_date, versions, adopting)

    def _reserve_versions(
        self, run_id: str, run_date: str, versions: pd.DataFrame, adopting: bool
    ) -> None:
        """Within ``reserve``'s transaction: each version, unless another night owns it (or
        this night another version of the claim). Few rows a night: one statement each."""
        for key, version, frequency, original in versions.itertuples(index=False):
            owners = self.query(
                "SELECT version, run_date FROM claim_versions WHERE claim_key = ? "
                "AND ((version = ? AND run_date <> ?) OR (version <> ? AND run_date = ?))",
                (key, version, run_date, version, run_date),
            )
            if owners and adopting:
                continue
            if owners:
                other, night = owners[0]
                raise RunError(
                    f"version {version} of claim {key} (night {run_date}) conflicts with "
                    f"version {other} of night {night} in the ledger: nothing was published; "
                    "run the night again (score decides again what the claim needs)"
                )
            self._exec(
                "INSERT INTO claim_versions (claim_key, version, run_date, first_run_id, "
                "frequency_code, original_claim_id) VALUES (?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (claim_key, version) DO NOTHING",
                (key, version, run_date, run_id, frequency, original),
            )

    def versions(self, keys: list[str]) -> pd.DataFrame:
        """The later sendings of these claim keys, sent or still reserved: ``claim_key``,
        ``version``, ``run_date``, ``run_id`` (the run that first reserved it),
        ``frequency_code``, ``original_claim_id``, ``state`` (of that run)."""
        rows = self.query(
            "SELECT v.claim_key, v.version, v.run_date, v.first_run_id, v.frequency_code, "
            f"v.original_claim_id, r.state FROM {self._values('?')} "
            "JOIN claim_versions v ON v.claim_key = j.value "
            "JOIN runs r ON r.run_id = v.first_run_id ORDER BY v.claim_key, v.version",
            (json.dumps(keys),),
        )
        columns = [
            "claim_key", "version", "run_date", "run_id", "frequency_code",
            "original_claim_id", "state",
        ]  # fmt: skip
        out = pd.DataFrame(rows, columns=columns)
        out["version"] = out["version"].astype("int64")
        return out

    def owned_elsewhere(self, keys: list[str], run_date: str) -> pd.DataFrame:
        """Of these claim keys, those another night sent: ``claim_key``, ``run_date``,
        ``run_id`` (the run that first sent it)."""
        rows = self.query(
            "SELECT k.claim_key, k.run_date, k.first_run_id "
            f"FROM {self._values('?')} JOIN claim_keys k ON k.claim_key = j.value "
            "JOIN runs r ON r.run_id = k.first_run_id "
            "WHERE r.state = 'committed' AND k.run_date <> ? ORDER BY k.claim_key",
            (json.dumps(keys), run_date),
        )
        return pd.DataFrame(rows, columns=["claim_key", "run_date", "run_id"])

    def sent_keys(self, *, run_date: str | None = None) -> pd.DataFrame:
        """The sent claims (of one night): ``claim_key``, ``run_date``, ``run_id``; a claim
        the night sent a later version of counts as the night's too."""
        where, params = "", []
        if run_date:
            where, params = " AND k.run_date = ?", [run_date]
        rows = self.query(
            f"SELECT k.claim_key, k.run_date, k.first_run_id {SENT_KEYS}{where} "
            "UNION SELECT k.claim_key, k.run_date, k.first_run_id "
            f"{SENT_KEYS.replace('claim_keys', 'claim_versions')}{where} "
            "ORDER BY 2, 1",
            params * 2,
        )
        return pd.DataFrame(rows, columns=["claim_key", "run_date", "run_id"])

    def mark_sent(self, run_id: str) -> int:
        """The run's night was committed: the claims it reserved are sent (one row changes: a
        claim is sent when the run that first reserved it is committed). Returns how many."""
        with self.transaction():
            self._exec(
                "UPDATE runs SET state = 'committed', settled_at = ? WHERE run_id = ?",
                (_now(), run_id),
            )
            n = sum(
                int(
                    self.query(f"SELECT count(*) FROM {table} WHERE first_run_id = ?", (run_id,))[
                        0
                    ][0]
                )
                for table in ("claim_keys", "claim_versions")
            )
        return n

    def release(self, run_id: str) -> int:
        """The run was never committed: the claims it reserved are free again."""
        with self.transaction():
            n = self._exec("DELETE FROM claim_keys WHERE first_run_id = ?", (run_id,)).rowcount
            n += self._exec("DELETE FROM claim_versions WHERE first_run_id = ?", (run_id,)).rowcount
            self._exec(
                "UPDATE runs SET state = 'abandoned', settled_at = ? WHERE run_id = ?",
                (_now(), run_id),
            )
        return n

    def reconcile(self, committed_runs: dict[str, str]) -> dict[str, int]:
        """Settle every run left ``reserved`` (a crash between reserving and marking sent):
        ``committed_runs`` is run date -> the run id its manifest names."""
        settled = {"sent": 0, "released": 0}
        pending = self.query("SELECT run_id, run_date FROM runs WHERE state = 'reserved'")
        for run_id, run_date in pending:
            if committed_runs.get(run_date) == run_id:
                settled["sent"] += self.mark_sent(run_id)
                log.warning(
                    "ledger: run %s of %s was committed: claims marked sent", run_id, run_date
                )
            else:
                settled["released"] += self.release(run_id)
                log.warning("ledger: run %s of %s was never committed: released", run_id, run_date)
        return settled

    # ----------------------------------------------------------------------- control numbers

    def control_numbers(
        self, run_id: str, run_date: str, files: list[tuple[str, str, str]]
    ) -> list[int]:
        """The interchange control number of each file (``files``: its ``(submitter_id,
        receiver_id, content_sha256)``, in the night's file order), in one transaction: the
        number that content already carried for that submitter and receiver, else the next of
        the submitter's counter (new content numbered in file order). Committed before any
        file is written, and never given back: a crash after this leaves the numbers spent,
        bound to their content, so a rerun of the same content gets them again and other
        content never does. ``RunError`` (nothing changed) when a submitter would pass
        ISA13's 999,999,999."""
        try:
            return self._control_numbers(run_id, run_date, files)
        except self._errors() as exc:
            raise RunError(
                f"number claim files in ledger database {_safe(self.url)}: {_first_line(exc)}"
            ) from None

    def _errors(self) -> tuple[type[BaseException], ...]:
        """The database driver's errors (a failure of the database, not of this code)."""
        if self.postgres:
            import psycopg

            return (psycopg.Error,)
        return (sqlite3.Error,)

    def _control_numbers(
        self, run_id: str, run_date: str, files: list[tuple[str, str, str]]
    ) -> list[int]:
        wanted = list(dict.fromkeys(files))
        with self.transaction():
            numbers = {key: n for key in wanted if (n := self._number_of(key)) is not None}
            new = [key for key in wanted if key not in numbers]
            for submitter in dict.fromkeys(key[0] for key in new):
                mine = [key for key in new if key[0] == submitter]
                first = self._take_numbers(submitter, len(mine))
                for number, key in enumerate(mine, first):
                    # a run numbering the same content at this moment (another output on this
                    # database) may have given it a number first: it keeps that one, and
                    # this number stays unused
                    self._exec(
                        "INSERT INTO control_numbers (submitter_id, control_number, "
                        "receiver_id, content_sha256, run_date, first_run_id, assigned_at) "
                        "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT "
                        "(submitter_id, receiver_id, content_sha256) DO NOTHING",
                        (submitter, number, key[1], key[2], run_date, run_id, _now()),
                    )
                    numbers[key] = self._number_of(key)
        return [int(numbers[key]) for key in files]

    def _number_of(self, key: tuple[str, str, str]) -> int | None:
        rows = self.query(
            "SELECT control_number FROM control_numbers "
            "WHERE submitter_id = ? AND receiver_id = ? AND content_sha256 = ?",
            key,
        )
        return int(rows[0][0]) if rows else None

    def _take_numbers(self, submitter: str, n: int) -> int:
        """The first of ``n`` new numbers of the submitter's counter (within a transaction:
        the counter's row stays locked until it ends, so runs at once queue for it)."""
        self._exec(
            "INSERT INTO control_counters (submitter_id, last_number) "
            "SELECT ?, value FROM settings WHERE name = ? ON CONFLICT (submitter_id) DO NOTHING",
            (submitter, FLOOR),
        )
        self._exec(
            "UPDATE control_counters SET last_number = last_number + ? WHERE submitter_id = ?",
            (n, submitter),
        )
        ((last,),) = self.query(
            "SELECT last_number FROM control_counters WHERE submitter_id = ?", (submitter,)
        )
        if int(last) > envelope.MAX_CONTROL_NUMBER:
            raise RunError(
                f"submitter {submitter} has no interchange control numbers left (ISA13 stops "
                f"at {envelope.MAX_CONTROL_NUMBER:,}; {n} more needed): nothing was published; "
                "agree a new submitter id (ISA06) with the clearinghouse"
            )
        return int(last) - n + 1

    def raise_floor(self, number: int) -> None:
        """Counters (and those yet to start) continue above ``number``: a number the ledger
        recorded elsewhere (a ledger layer taken in) is never given again."""
        with self.transaction():
            self._exec(
                "UPDATE settings SET value = ? WHERE name = ? AND value < ?",
                (number, FLOOR, number),
            )
            self._exec(
                "UPDATE control_counters SET last_number = ? WHERE last_number < ?",
                (number, number),
            )

    # ----------------------------------------------------------------------- reading

    def import_rows(self, rows: pd.DataFrame, run_id: str) -> int:
        """Record ledger rows published before this database existed, as sent."""
        if rows.empty:
            return 0
        if "interchange_control_number" in rows:
            numbers = pd.to_numeric(rows["interchange_control_number"], errors="coerce")
            if numbers.notna().any():
                self.raise_floor(int(numbers.max()))
        for run_date, part in rows.groupby("run_date", sort=True):
            self.reserve(f"{run_id}-{run_date}", str(run_date), part, adopting=True)
            self.mark_sent(f"{run_id}-{run_date}")
        return len(rows)


def _version_column(rows: pd.DataFrame) -> pd.Series:
    """Each ledger row's version: its ``version`` column, else read from its CLM01."""
    if "version" in rows:
        return pd.to_numeric(rows["version"]).fillna(0).astype("int64")
    if "claim_id" in rows:
        return rows["claim_id"].astype(object).map(lambda c: version_of(str(c))).astype("int64")
    return pd.Series(0, index=rows.index, dtype="int64")


def _versions(rows: pd.DataFrame) -> pd.DataFrame:
    """The later sendings among a run's rows, one per (claim_key, version): ``claim_key``,
    ``version``, ``frequency_code`` and ``original_claim_id``."""
    columns = ["claim_key", "version", "frequency_code", "original_claim_id"]
    version = _version_column(rows)
    if not (version > 0).any():
        return pd.DataFrame(columns=columns)
    some = rows[version > 0].assign(version=version[version > 0])
    some = some.reindex(columns=columns).drop_duplicates(["claim_key", "version"])
    some["frequency_code"] = some["frequency_code"].fillna("1").astype(str)
    some["original_claim_id"] = some["original_claim_id"].fillna("").astype(str)
    some["claim_key"] = some["claim_key"].astype(str)
    some["version"] = some["version"].astype(int)
    return some.sort_values(["claim_key", "version"]).reset_index(drop=True)


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def _safe(url: str) -> str:
    """A URL without its password, for messages."""
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        return f"{scheme}://***@{rest.rsplit('@', 1)[1]}"
    return url


@contextmanager
def opened(cfg_or_out: RunConfig | str, ledger: str | None = None) -> Iterator[Store]:
    """The ledger database of a run (or an output root), opened and closed. A new database
    beside published nights (an output written before the database existed, or whose
    database was lost) first takes in their ledger layers, so their claims stay billed."""
    if isinstance(cfg_or_out, RunConfig):
        out, ledger = cfg_or_out.out, cfg_or_out.ledger
    else:
        out = cfg_or_out
    store = Store(location(out, ledger))
    try:
        if not store.query("SELECT run_id FROM runs LIMIT 1"):
            _adopt(store, out)
        yield store
    finally:
        store.close()


def _adopt(store: Store, out: str) -> None:
    found = nights.layer_files(out, "ledger", "ledger.parquet")
    for run_date, path in found:
        rows = storage.to_frame(schemas.read(path, "ledger"))
        n = store.import_rows(rows.assign(run_date=run_date), run_id="adopted")
        log.warning("ledger: took in %s claim(s) of night %s from %s", n, run_date, path)


def recover(cfg: RunConfig) -> None:
    """Before a run of a night (under the output's lock): settle what crashed runs left in the
    ledger database, and remove the folders of this night's runs no manifest names."""
    committed = nights.run_ids(cfg.out)
    if committed.get(cfg.rd) and committed[cfg.rd] == cfg.run_id:
        raise RunError(
            f"run {cfg.run_id} already published night {cfg.rd}: start a new run to run it again"
        )
    with opened(cfg) as store:
        store.reconcile(committed)
    nights.prune(cfg.out, cfg.rd, {committed.get(cfg.rd, ""), cfg.run_id}, phi_out=cfg.phi_out)


def abandon(cfg: RunConfig) -> None:
    """After a run failed (not crashed: a crash is settled by ``recover``): release what it
    reserved and remove its folders, unless its manifest was written (then it is the night,
    and the next run settles it). Best effort: the failure being reported matters more."""
    try:
        committed = (nights.committed(cfg.out, cfg.rd) or {}).get("run_id", "")
        if committed == cfg.run_id:
            return
        with opened(cfg) as store:
            store.release(cfg.run_id)
        nights.remove_run(cfg.out, cfg.rd, cfg.run_id, phi_out=cfg.phi_out)
    except Exception as exc:  # noqa: BLE001 - the run's own error is the one to report
        log.info("could not tidy up after the failed run %s: %s", cfg.run_id, exc)
