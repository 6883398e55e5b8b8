"""Where the ledger's rows are kept: a SQLite file, or a PostgreSQL database. The schema is
created and migrated by the gateway; rows are written once per call id, whoever writes them
how many times. The calls block: the shipper makes them in a thread."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Literal, Protocol

from extproc.spend.rows import COLUMNS, SpendRow, Values

Grouping = Literal["team", "key", "model", "provider", "alias", "day"]

_COLUMN_TYPES = {
    "call_id": "TEXT PRIMARY KEY",
    "time": "DOUBLE PRECISION NOT NULL",
    "stream": "BOOLEAN NOT NULL",
    "charged": "BOOLEAN NOT NULL",
    **dict.fromkeys(
        (
            "input_tokens",
            "output_tokens",
            "cached_input_tokens",
            "cache_write_tokens",
            "reasoning_tokens",
        ),
        "BIGINT NOT NULL",
    ),
    "cost_micro_usd": "BIGINT",
    "status": "INTEGER",
    "attempts": "INTEGER",
}
MIGRATIONS = (
    "CREATE TABLE spend_calls ("
    + ", ".join(f"{name} {_COLUMN_TYPES.get(name, 'TEXT')}" for name in COLUMNS)
    + ")",
    "CREATE INDEX spend_calls_time ON spend_calls (time)",
)
"""The schema's versions, in order: a store at version n runs the statements after the nth."""
_GROUPS = {"team": "team", "key": "key_id", "model": "model", "provider": "provider"}
_GROUPS |= {"alias": "alias"}


class LedgerStore(Protocol):
    def migrate(self) -> None:
        """Bring the schema to the newest version (several processes may race: one wins)."""

    def insert(self, rows: Sequence[Values]) -> None:
        """Add the rows whose call ids it does not have yet."""

    def delete_before(self, time: float) -> int:
        """Delete rows older than `time`; how many went."""

    def report(self, by: Grouping, since: float, until: float) -> list[tuple[Any, ...]]:
        """Per group: the group, calls, calls charged, each token kind, cost (micro-USD)."""

    def rows(self, since: float, until: float) -> Iterator[SpendRow]:
        """The rows of calls reserved in [since, until)."""

    def close(self) -> None: ...


class SqlLedger:
    """The statements both databases run; each subclass gives its connection and dialect."""

    placeholder = "?"
    day_expression = "strftime('%Y-%m-%d', time, 'unixepoch')"

    def __init__(self, connection: Any) -> None:
        self._connection = connection

    def migrate(self) -> None:
        with self._transaction() as cursor:
            self._lock(cursor)
            cursor.execute("CREATE TABLE IF NOT EXISTS spend_schema (version INTEGER NOT NULL)")
            cursor.execute("SELECT version FROM spend_schema")
            found = cursor.fetchone()
            version = found[0] if found else 0
            for statement in MIGRATIONS[version:]:
                cursor.execute(statement)
            if found is None:
                cursor.execute(self._sql("INSERT INTO spend_schema VALUES (?)"), (0,))
            cursor.execute(self._sql("UPDATE spend_schema SET version = ?"), (len(MIGRATIONS),))

    def insert(self, rows: Sequence[Values]) -> None:
        statement = self._sql(
            f"INSERT INTO spend_calls ({', '.join(COLUMNS)}) "  # noqa: S608 - constant names
            f"VALUES ({', '.join('?' * len(COLUMNS))}) ON CONFLICT (call_id) DO NOTHING"
        )
        with self._transaction() as cursor:
            cursor.executemany(statement, rows)

    def delete_before(self, time: float) -> int:
        with self._transaction() as cursor:
            cursor.execute(self._sql("DELETE FROM spend_calls WHERE time < ?"), (time,))
            return int(cursor.rowcount)

    def report(self, by: Grouping, since: float, until: float) -> list[tuple[Any, ...]]:
        group = self.day_expression if by == "day" else _GROUPS[by]
        statement = self._sql(
            f"SELECT {group} AS grp, COUNT(*), "  # noqa: S608 - a constant expression
            "SUM(CASE WHEN charged THEN 1 ELSE 0 END), "
            "SUM(input_tokens), SUM(output_tokens), SUM(cached_input_tokens), "
            "SUM(cache_write_tokens), SUM(reasoning_tokens), SUM(cost_micro_usd) "
            "FROM spend_calls WHERE time >= ? AND time < ? "
            "GROUP BY grp ORDER BY SUM(cost_micro_usd) DESC, grp"
        )
        with self._transaction() as cursor:
            cursor.execute(statement, (since, until))
            return [tuple(row) for row in cursor.fetchall()]

    def rows(self, since: float, until: float) -> Iterator[SpendRow]:
        statement = self._sql(
            f"SELECT {', '.join(COLUMNS)} FROM spend_calls "  # noqa: S608 - constant names
            "WHERE time >= ? AND time < ?"
        )
        with self._transaction() as cursor:
            cursor.execute(statement, (since, until))
            found = cursor.fetchall()
        for values in found:
            yield SpendRow.of(list(values))

    def close(self) -> None:
        self._connection.close()

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[Any]:
        cursor = self._connection.cursor()
        try:
            yield cursor
        except BaseException:
            self._connection.rollback()
            raise
        else:
            self._connection.commit()
        finally:
            cursor.close()

    def _lock(self, cursor: Any) -> None:
        """Hold off other processes migrating at the same time."""

    def _sql(self, statement: str) -> str:
        """`statement` with the driver's placeholders for its `?`."""
        return statement.replace("?", self.placeholder)


class SqliteLedger(SqlLedger):
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        # Autocommit off, one transaction at a time; the busy timeout waits for other
        # processes writing the same file.
        connection = sqlite3.connect(
            path, timeout=30, check_same_thread=False, isolation_level="IMMEDIATE"
        )
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("PRAGMA synchronous=NORMAL")
        super().__init__(connection)


class PostgresLedger(SqlLedger):
    placeholder = "%s"
    day_expression = "to_char(to_timestamp(time) AT TIME ZONE 'UTC', 'YYYY-MM-DD')"

    def __init__(self, url: str, *, connect_timeout: float = 10.0) -> None:
        import psycopg  # noqa: PLC0415 - only deployments with PostgreSQL load it

        super().__init__(psycopg.connect(url, connect_timeout=max(1, round(connect_timeout))))

    def _lock(self, cursor: Any) -> None:
        cursor.execute("SELECT pg_advisory_xact_lock(hashtext('extproc spend_schema'))")


def open_ledger_store(store: str) -> LedgerStore:
    """`sqlite:<path>` or a PostgreSQL URL."""
    if store.startswith("sqlite:"):
        return SqliteLedger(Path(store.removeprefix("sqlite:")))
    return PostgresLedger(store)
