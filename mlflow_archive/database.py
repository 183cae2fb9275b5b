"""A tracking database written directly, through the installed MLflow's own ORM tables.

``restore`` uses it to keep every ID and time, which the REST API cannot set. The schema is
MLflow's: an empty database gets it by instantiating MLflow's ``SqlAlchemyStore`` once (which
runs MLflow's migrations and creates the ``Default`` experiment); a database at another schema
revision is refused, since rows built for this MLflow would not fit it, unless it holds no data
(a schema creation cut off by a killed restore), which is created again.
"""

from __future__ import annotations

import io
from typing import Iterable

import pyarrow as pa
import pyarrow.csv as pa_csv
import sqlalchemy as sa

from .errors import ArchiveError, one_line
from .streams import redact_uri

# The server's own value for --artifacts-destination: experiments get `mlflow-artifacts:/<id>`.
ARTIFACTS_ROOT = "mlflow-artifacts:/"
# Rows MLflow's schema creation writes itself: the schema revision and the default workspace.
SCHEMA_ROWS_TABLES = {"alembic_version", "workspaces"}
INSERT_BATCH = 10_000  # rows per executemany or COPY call


class DatabaseDestination:
    def __init__(self, uri: str) -> None:
        from mlflow.store.db.utils import _make_parent_dirs_if_sqlite

        self.uri = redact_uri(uri)  # for messages
        self.store_uri = uri  # for MLflow's store, password included
        self.has_schema = False  # the installed MLflow's schema is there (check_schema found it, or prepare made it)
        try:
            _make_parent_dirs_if_sqlite(uri)
            self.engine = sa.create_engine(uri)  # SQLite's pragmas come with the first write (``prepare``)
        except Exception as exc:
            raise ArchiveError(f"Cannot open the database {self.uri}: {reason(exc)}.") from None

    def check_schema(self) -> bool:
        """Refuse a database at another schema revision that holds data, reading only; True when the database has
        the installed MLflow's schema (so rows to check the archive against), False when ``prepare`` makes it."""
        from mlflow.store.db.utils import _get_latest_schema_revision

        expected, found = _get_latest_schema_revision(), self._schema_revision()
        if found == expected:
            self.has_schema = True
            return True
        if found is not None and not self._holds_no_data(self._tables()):
            raise ArchiveError(
                f"The database {self.uri} has MLflow schema revision {found}, but the installed MLflow writes "
                f"revision {expected}; run `mlflow db upgrade {self.uri}` (or restore with the MLflow that made it) first."
            )
        return False

    def prepare(self) -> None:
        """Begin writing, once ``check_schema`` and the archive's check passed: SQLite's pragmas on every connection
        from now on, and MLflow's schema where ``check_schema`` found none."""
        from mlflow.store.db.utils import _get_latest_schema_revision
        from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

        if self.engine.dialect.name == "sqlite":
            self.engine.dispose()  # the checks' pooled connections, opened without the pragmas
            sa.event.listen(self.engine, "connect", _sqlite_pragmas)
        if self._schema_revision() != _get_latest_schema_revision():
            tables = self._tables()
            if self._holds_no_data(tables):
                tables.drop_all(self.engine)  # a schema creation that was cut off (a killed restore) is begun again
        SqlAlchemyStore(self.store_uri, ARTIFACTS_ROOT).engine.dispose()
        self.has_schema = True

    def _schema_revision(self) -> str | None:
        from mlflow.store.db.utils import _get_schema_version

        try:
            return _get_schema_version(self.engine)
        except Exception as exc:
            raise ArchiveError(f"Cannot open the database {self.uri}: {reason(exc)}.") from None

    def _tables(self) -> sa.MetaData:
        tables = sa.MetaData()
        tables.reflect(self.engine)
        return tables

    def _holds_no_data(self, tables: sa.MetaData) -> bool:
        """True when no table holds a row beyond what MLflow's schema creation itself writes."""
        with self.engine.connect() as conn:
            for table in tables.tables.values():
                name = table.name.removeprefix("_alembic_tmp_")  # a table copy an interrupted migration left
                if name in SCHEMA_ROWS_TABLES:
                    continue
                if name == "experiments":
                    if conn.execute(sa.select(table.c.experiment_id).where(table.c.experiment_id != 0).limit(1)).first():
                        return False
                elif conn.execute(sa.select(sa.literal(1)).select_from(table).limit(1)).first():
                    return False
        return True

    def fetch(self, table: sa.Table, key: str, values: Iterable) -> dict:
        """Rows of ``table`` whose ``key`` is one of ``values``, as ``{key value: row mapping}``; none before ``prepare``
        made MLflow's schema (the check pass of a database without it has nothing to collide with)."""
        if not self.has_schema:
            return {}
        values = list(values)
        found = {}
        with self.engine.connect() as conn:
            for start in range(0, len(values), 500):
                query = sa.select(table).where(table.c[key].in_(values[start : start + 500]))
                found.update({row[key]: row for row in conn.execute(query).mappings()})
        return found

    def begin(self):
        """One transaction: a chunk is written whole or not at all, so a killed restore resumes cleanly."""
        return self.engine.begin()

    @staticmethod
    def insert(conn, table: sa.Table, rows: list[dict]) -> None:
        for start in range(0, len(rows), INSERT_BATCH):
            conn.execute(table.insert(), rows[start : start + INSERT_BATCH])

    def insert_arrow(self, conn, table: sa.Table, rows: pa.Table) -> None:
        """Rows of an Arrow table whose columns are named as ``table``'s, a slice of ``INSERT_BATCH`` at a time.

        For the millions of metric points: SQLAlchemy's insert builds and checks a dict per row, which
        costs more than the database's own work. psycopg2 takes the rows as CSV through COPY (no Python
        object per row); other drivers take tuples through their own executemany.
        """
        cursor = conn.connection.dbapi_connection.cursor()  # the connection's own transaction
        quote = self.engine.dialect.identifier_preparer.quote
        names = ", ".join(quote(name) for name in rows.column_names)
        mark = placeholder(self.engine)
        insert = f"INSERT INTO {quote(table.name)} ({names}) VALUES ({', '.join([mark] * rows.num_columns)})"
        try:
            for batch in rows.to_batches(max_chunksize=INSERT_BATCH):
                if hasattr(cursor, "copy_expert"):
                    cursor.copy_expert(f"COPY {quote(table.name)} ({names}) FROM STDIN WITH (FORMAT csv)", _csv(batch))
                else:
                    cursor.executemany(insert, list(zip(*(column.to_pylist() for column in batch.columns))))
        finally:
            cursor.close()

    def advance_sequences(self) -> None:
        """Move PostgreSQL's experiment ID sequence past the restored IDs, so new experiments do not collide."""
        if self.engine.dialect.name != "postgresql":
            # SQLite takes max(id) + 1 itself. Untested: MySQL's AUTO_INCREMENT and SQL Server's IDENTITY (SQLAlchemy
            # turns on IDENTITY_INSERT for explicit IDs) move past inserted values by themselves.
            return
        with self.engine.begin() as conn:
            conn.execute(sa.text(
                "SELECT setval(pg_get_serial_sequence('experiments', 'experiment_id'), "
                "GREATEST((SELECT COALESCE(MAX(experiment_id), 0) FROM experiments), 1))"
            ))

    def close(self) -> None:
        self.engine.dispose()


def placeholder(engine: sa.Engine) -> str:
    """The parameter mark of the engine's driver, for SQL sent to the driver itself: the drivers of MLflow's SQL
    stores take `?` (qmark: sqlite3, pyodbc) or `%s` (format, pyformat: psycopg, pymysql, pymssql, mysqlclient)."""
    return "?" if engine.dialect.paramstyle == "qmark" else "%s"


def reason(exc: Exception) -> str:
    """The driver's own error (SQLAlchemy's wraps it with a statement dump and a background link), as one line."""
    return one_line(getattr(exc, "orig", None) or exc)


def _csv(batch: pa.RecordBatch) -> io.BytesIO:
    """The batch as PostgreSQL's CSV: Arrow quotes every string (an unquoted empty field would be NULL) and writes
    doubles in their shortest form that reads back exactly."""
    out = io.BytesIO()
    pa_csv.write_csv(batch, out, pa_csv.WriteOptions(include_header=False))
    out.seek(0)
    return out


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    # WAL: a server may read while we write. NORMAL sync: a killed process loses nothing committed.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()
