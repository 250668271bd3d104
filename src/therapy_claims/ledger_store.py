"""The claim ledger's system of record: a transactional database of every claim sent.

Why a database and not the Parquet partitions alone: a claim must never be sent twice, whatever
crashes or runs at once, and that needs a unique key checked and written in one transaction.
SQLite (Python's standard library) is the embedded default, a file under the output root's
``.ledger/`` for a local output; a deployment points ``--ledger`` / ``THERAPY_CLAIMS_LEDGER`` at
PostgreSQL (``postgresql://...``, the compose stack's server) or at a SQLite file on a local disk.
An ``s3://`` output needs one of them: SQLite cannot live on S3.

Tables:

- ``claim_keys``: one row per claim (clinic + encounter + payer) ever reserved, with the night
  that owns it. The primary key makes two nights unable to own one claim.
- ``claims``: one row per CLM01 per run that included it (``reserved``, then ``sent``), with its
  file and control numbers. Sent rows are never deleted or changed back: a rerun of a night
  adds rows, so a claim already sent is never forgotten.
- ``runs``: each run that reserved claims, and whether it was committed.

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

import logging
import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

import pandas as pd

from therapy_claims import storage
from therapy_claims.config import RunConfig, RunError

log = logging.getLogger("therapy_claims")

ENV = "THERAPY_CLAIMS_LEDGER"
SQLITE_NAME = "ledger.sqlite"

# the ledger layer's columns (ledger.COLUMNS) and what the database adds
CLAIM_COLUMNS = [
    "claim_id",
    "claim_key",
    "run_date",
    "payer_id",
    "clinic_id",
    "patient_id",
    "encounter_id",
    "first_date_of_service",
    "last_date_of_service",
    "lines",
    "charge",
    "claim_type",
    "receiver_id",
    "file",
    "interchange_control_number",
    "group_control_number",
    "transaction_set_control_number",
]

SCHEMA = [
    """CREATE TABLE IF NOT EXISTS claim_keys (
        claim_key TEXT PRIMARY KEY,
        run_date TEXT NOT NULL,
        first_run_id TEXT NOT NULL
    )""",
    f"""CREATE TABLE IF NOT EXISTS claims (
        {
        ", ".join(
            f"{c} {'INTEGER' if c == 'lines' else 'DOUBLE PRECISION' if c == 'charge' else 'TEXT'}"
            for c in CLAIM_COLUMNS
        )
    },
        run_id TEXT NOT NULL,
        state TEXT NOT NULL,
        reserved_at TEXT NOT NULL,
        sent_at TEXT,
        PRIMARY KEY (claim_id, run_id)
    )""",
    "CREATE INDEX IF NOT EXISTS claims_key ON claims (claim_key)",
    "CREATE INDEX IF NOT EXISTS claims_run ON claims (run_id, state)",
    """CREATE TABLE IF NOT EXISTS runs (
        run_id TEXT PRIMARY KEY,
        run_date TEXT NOT NULL,
        state TEXT NOT NULL,
        reserved_at TEXT NOT NULL,
        settled_at TEXT
    )""",
]


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

    def close(self) -> None:
        self.conn.close()

    def _sql(self, statement: str) -> str:
        return statement.replace("?", "%s") if self.postgres else statement

    def _exec(self, statement: str, params: tuple | list = ()):
        return self.conn.execute(self._sql(statement), params)

    def _many(self, statement: str, rows: list[tuple]) -> None:
        if not rows:
            return
        if self.postgres:
            with self.conn.cursor() as cur:
                cur.executemany(self._sql(statement), rows)
        else:
            self.conn.executemany(statement, rows)

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

    def reserve(
        self, run_id: str, run_date: str, rows: pd.DataFrame, *, adopting: bool = False
    ) -> None:
        """Reserve a run's claims (ledger rows) in one transaction, or change nothing and raise
        ``RunError`` if another night owns any of them (``adopting`` history written before
        this database: the earlier night keeps the claim, the rows are recorded all the same).

        The night's claim keys go into a temporary table and are checked against the owners
        with one join: a night has hundreds of thousands of claims."""
        now = _now()
        keys = rows["claim_key"].astype(str).unique().tolist() if len(rows) else []
        records = _records(rows, run_id, now)
        with self.transaction():
            self._exec(
                "INSERT INTO runs (run_id, run_date, state, reserved_at) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (run_id) DO UPDATE SET state = 'reserved', reserved_at = ?",
                (run_id, run_date, "reserved", now, now),
            )
            self._exec("DELETE FROM claims WHERE run_id = ? AND state = 'reserved'", (run_id,))
            self._exec("CREATE TEMP TABLE IF NOT EXISTS night_keys (claim_key TEXT PRIMARY KEY)")
            self._exec("DELETE FROM night_keys")
            self._many("INSERT INTO night_keys (claim_key) VALUES (?)", [(k,) for k in keys])
            taken = self.query(
                "SELECT n.claim_key, k.run_date FROM night_keys n "
                "JOIN claim_keys k ON k.claim_key = n.claim_key WHERE k.run_date <> ? "
                "ORDER BY n.claim_key",
                (run_date,),
            )
            if taken and not adopting:
                key, night = taken[0]
                raise RunError(
                    f"{len(taken)} claim(s) of night {run_date} are already owned by another "
                    f"night in the ledger (e.g. claim {key}, night {night}): nothing was "
                    "published; run the night again (score holds them as ALREADY_BILLED)"
                )
            self._exec(
                "INSERT INTO claim_keys (claim_key, run_date, first_run_id) "
                "SELECT claim_key, ?, ? FROM night_keys WHERE true "
                "ON CONFLICT (claim_key) DO NOTHING",
                (run_date, run_id),
            )
            self._many(
                f"INSERT INTO claims ({', '.join(CLAIM_COLUMNS)}, run_id, state, reserved_at) "
                f"VALUES ({', '.join('?' * (len(CLAIM_COLUMNS) + 3))})",
                records,
            )

    def sent_for(self, keys: list[str], *, exclude_run_date: str | None = None) -> pd.DataFrame:
        """The sent rows of these claim keys (not those of one run date): the history a night's
        claims are checked against, without reading all of it."""
        with self.transaction():
            self._exec("CREATE TEMP TABLE IF NOT EXISTS night_keys (claim_key TEXT PRIMARY KEY)")
            self._exec("DELETE FROM night_keys")
            self._many("INSERT INTO night_keys (claim_key) VALUES (?)", [(k,) for k in keys])
            rows = self.query(
                f"SELECT {', '.join('c.' + c for c in CLAIM_COLUMNS)}, c.run_id, c.sent_at "
                "FROM claims c JOIN night_keys n ON n.claim_key = c.claim_key "
                "WHERE c.state = 'sent' AND c.run_date <> ? ORDER BY c.run_date, c.claim_id",
                (exclude_run_date or "",),
            )
        return pd.DataFrame(rows, columns=[*CLAIM_COLUMNS, "run_id", "sent_at"])

    def mark_sent(self, run_id: str) -> int:
        """The run's night was committed: its reserved claims are sent."""
        now = _now()
        with self.transaction():
            n = self._exec(
                "UPDATE claims SET state = 'sent', sent_at = ? "
                "WHERE run_id = ? AND state = 'reserved'",
                (now, run_id),
            ).rowcount
            self._exec(
                "UPDATE runs SET state = 'committed', settled_at = ? WHERE run_id = ?",
                (now, run_id),
            )
        return n

    def release(self, run_id: str) -> int:
        """The run was never committed: its reservations go, and the claim keys only it held."""
        with self.transaction():
            n = self._exec(
                "DELETE FROM claims WHERE run_id = ? AND state = 'reserved'", (run_id,)
            ).rowcount
            self._exec(
                "DELETE FROM claim_keys WHERE first_run_id = ? AND NOT EXISTS "
                "(SELECT 1 FROM claims c WHERE c.claim_key = claim_keys.claim_key)",
                (run_id,),
            )
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

    # ----------------------------------------------------------------------- reading

    def sent(self, *, run_date: str | None = None, exclude_run_date: str | None = None):
        """Every sent claim row (a claim sent by several runs of its night: one row each)."""
        where, params = ["state = 'sent'"], []
        if run_date:
            where.append("run_date = ?")
            params.append(run_date)
        if exclude_run_date:
            where.append("run_date <> ?")
            params.append(exclude_run_date)
        rows = self.query(
            f"SELECT {', '.join(CLAIM_COLUMNS)}, run_id, sent_at FROM claims "
            f"WHERE {' AND '.join(where)} ORDER BY run_date, claim_id, sent_at",
            params,
        )
        return pd.DataFrame(rows, columns=[*CLAIM_COLUMNS, "run_id", "sent_at"])

    def import_rows(self, rows: pd.DataFrame, run_id: str) -> int:
        """Record ledger rows published before this database existed, as sent."""
        if rows.empty:
            return 0
        for run_date, part in rows.groupby("run_date", sort=True):
            self.reserve(f"{run_id}-{run_date}", str(run_date), part, adopting=True)
            self.mark_sent(f"{run_id}-{run_date}")
        return len(rows)


def _records(rows: pd.DataFrame, run_id: str, now: str) -> list[tuple]:
    """The ledger rows as database rows (Python values, NULL for missing), column by column."""
    columns = []
    for c in CLAIM_COLUMNS:
        col = rows[c].astype(object) if c in rows else pd.Series(None, index=rows.index)
        columns.append(col.where(col.notna(), None).tolist())
    n = len(rows)
    return list(zip(*columns, [run_id] * n, ["reserved"] * n, [now] * n, strict=True))


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
    from therapy_claims import nights

    found = nights.layer_files(out, "ledger", "ledger.parquet")
    for run_date, path in found:
        rows = storage.read_parquet(path)
        n = store.import_rows(rows.assign(run_date=run_date), run_id="adopted")
        log.warning("ledger: took in %s claim(s) of night %s from %s", n, run_date, path)


def recover(cfg: RunConfig) -> None:
    """Before a run of a night (under the output's lock): settle what crashed runs left in the
    ledger database, and remove the folders of this night's runs no manifest names."""
    from therapy_claims import nights

    committed = nights.run_ids(cfg.out)
    if committed.get(cfg.rd) and committed[cfg.rd] == cfg.run_id:
        raise RunError(
            f"run {cfg.run_id} already published night {cfg.rd}: start a new run to run it again"
        )
    with opened(cfg) as store:
        store.reconcile(committed)
    nights.prune(cfg.out, cfg.rd, {committed.get(cfg.rd, ""), cfg.run_id})


def abandon(cfg: RunConfig) -> None:
    """After a run failed (not crashed: a crash is settled by ``recover``): release what it
    reserved and remove its folders, unless its manifest was written (then it is the night,
    and the next run settles it). Best effort: the failure being reported matters more."""
    from therapy_claims import nights

    try:
        committed = (nights.committed(cfg.out, cfg.rd) or {}).get("run_id", "")
        if committed == cfg.run_id:
            return
        with opened(cfg) as store:
            store.release(cfg.run_id)
        nights.remove_run(cfg.out, cfg.rd, cfg.run_id)
    except Exception as exc:  # noqa: BLE001 - the run's own error is the one to report
        log.info("could not tidy up after the failed run %s: %s", cfg.run_id, exc)
