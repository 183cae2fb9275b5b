"""Export straight from a tracking database, inside one read-only snapshot.

``DatabaseSource`` is the ``TrackingSource`` for a SQL tracking URI (what MLflow's SQL store
accepts: sqlite, postgresql, mysql, mssql). It opens one connection of its own and holds one
read-only transaction on it for the whole export (PostgreSQL and MySQL: REPEATABLE READ READ
ONLY; SQLite: BEGIN and a first SELECT, which fixes the read snapshot, in WAL mode, and otherwise
a copy made first with SQLite's backup API, since there a reader holds off every writer; SQL Server: SNAPSHOT),
and gives its own copies of MLflow's tracking and registry stores sessions inside that
transaction (the stores MLflow caches for the process are left as they are, so other code of the
process writing to the same database is not affected). So every read, whether MLflow's store
methods (runs with params, tags and inputs, experiments, the registry, logged models, traces,
prompts, datasets: each the store's own bulk query) or this class's own bulk query (metric
histories, many runs per select, straight into Arrow), sees the database as it was at one
instant, and the rows are those the server would answer over REST from the same database.

One connection serves every worker thread, one read at a time (a lock): the database reads are
short next to artifact downloads, which run in parallel.
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import posixpath
import sqlite3
import tempfile
import threading
import time
from typing import Iterator
from urllib.parse import quote, urlparse

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import sqlalchemy as sa
from mlflow.entities import LoggedModelStatus
from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository
from mlflow.store.db.db_types import DATABASE_ENGINES
from mlflow.store.db.utils import _get_latest_schema_revision, _get_managed_session_maker, _get_schema_version
from mlflow.store.tracking.dbmodels.models import SqlExperiment, SqlLoggedModel, SqlRun, SqlTag, SqlTraceInfo
from mlflow.tracing.utils.artifact_utils import get_artifact_uri_for_trace
from mlflow.tracking._model_registry.client import ModelRegistryClient
from mlflow.tracking._tracking_service.client import TrackingServiceClient
from mlflow.utils.file_utils import local_file_uri_to_path
from mlflow.utils.mlflow_tags import MLFLOW_LOGGED_MODELS
from mlflow.utils.uri import append_to_uri_path, resolve_uri_if_local

from .coverage import DEFAULT_WORKSPACE, Uncarried, uncarried_in_database
from .database import placeholder
from .endpoints import (
    ISSUE_COLUMNS, LABEL_SCHEMA_COLUMNS, TrackingDestination, TrackingSource, _Retrying, by_experiment_then_time, issue_fields,
    issue_records, scorer_records, webhook_order,
)
from .errors import SourceError, one_line
from .streams import redact_uri

MLFLOW_ARTIFACTS = "mlflow-artifacts"
FETCH_ROWS = 100_000  # metric points per fetch from the driver
METRIC_COLUMNS = ("run_uuid", "key", "step", "timestamp", "value", "is_nan")
METRIC_SCHEMA = pa.schema(
    list(zip(METRIC_COLUMNS, (pa.string(), pa.string(), pa.int64(), pa.int64(), pa.float64(), pa.bool_())))
)
SELECT_POINTS = 2_000_000  # metric points per select at most (but one run's whole history): bounds memory
# How each database gives one read-only, point-in-time view (recorded in the header's source.snapshot).
ISOLATION = {
    "sqlite": "sqlite read transaction",
    "postgresql": "postgresql repeatable read read only",
    "mysql": "mysql repeatable read read only",
    "mssql": "mssql snapshot",
}
SQLITE_COPY = "sqlite backup copy"  # a SQLite file not in WAL mode: read from a copy made by SQLite's backup API
PROBED_EXPERIMENTS = 10  # experiment folders under --artifacts-destination looked into before the export
ONLINE_CONFIG_COLUMNS = ("online_scoring_config_id", "scorer_id", "experiment_id", "sample_rate", "filter_string")
PROBED_NAMES = 500  # names of one folder matched with the database's IDs (SQL Server takes 2100 parameters at most)


def is_database_uri(uri: str | None) -> bool:
    """Whether MLflow's SQL store would open ``uri`` (``postgresql+psycopg2://...`` included)."""
    return bool(uri) and urlparse(uri).scheme.split("+")[0] in DATABASE_ENGINES


def open_destination(tracking_uri: str | None, artifacts_destination: str | None = None) -> TrackingDestination:
    """The destination for ``tracking_uri``; a database of another MLflow's schema is refused before MLflow opens it."""
    from mlflow.tracking._tracking_service.utils import _resolve_tracking_uri

    uri = _resolve_tracking_uri(tracking_uri)
    if is_database_uri(uri):
        refuse_other_schema(uri)
    return TrackingDestination(tracking_uri, artifacts_destination)


def open_source(tracking_uri: str | None, artifacts_destination: str | None = None) -> TrackingSource:
    """The source for ``tracking_uri``: the database itself for a SQL URI, else MLflow's client."""
    from mlflow.tracking._tracking_service.utils import _resolve_tracking_uri

    uri = _resolve_tracking_uri(tracking_uri)
    if is_database_uri(uri):
        return DatabaseSource(uri, artifacts_destination)
    if artifacts_destination:
        raise SourceError(
            f"--artifacts-destination is for an export from a database (sqlite:///..., postgresql://...); "
            f"{redact_uri(uri)} resolves its artifact URIs itself, so leave the option out."
        )
    return TrackingSource(uri)


class DatabaseSource(TrackingSource):
    """Reads a tracking database inside one read-only transaction (see the module's docstring)."""

    def __init__(self, tracking_uri: str, artifacts_destination: str | None = None) -> None:
        url = sa.engine.make_url(tracking_uri)
        dialect, self._copy = url.get_backend_name(), None
        # MLflow's store would create a missing SQLite file and upgrade an older schema in place: the database
        # is checked first, and a SQLite file of an older MLflow is read from a copy upgraded by MLflow's migrations.
        self.source_revision = _exportable_revision(url, tracking_uri)
        _refuse_unchosen_workspaces(url, tracking_uri)
        upgraded = self.source_revision != _get_latest_schema_revision()
        try:
            if dialect == "sqlite" and (upgraded or _journal_mode(url.database) != "wal"):
                # In SQLite's rollback-journal mode (MLflow's default) a reader holds off every writer: a live
                # server's writes would wait for the whole export, then fail. Read a copy instead.
                self._copy = _backup_copy(url.database)
                copied_at = time.time()
                if upgraded:
                    _upgrade(self._copy)
            read_url = url.set(database=self._copy) if self._copy else url
            # MLflow's stores are opened on the copy when there is one: opening one writes when the database lacks
            # its Default experiment. Any other database is read only through the snapshot below.
            self._stores_on_copy = self._copy is not None
            super().__init__(read_url.render_as_string(hide_password=False) if self._stores_on_copy else tracking_uri)
            registry_store = self.registry.store  # made while the copy is still there to be opened
            self._engine = sa.create_engine(read_url, poolclass=sa.pool.NullPool)
            if dialect == "sqlite":
                sa.event.listen(self._engine, "connect", _sqlite_connect)
                sa.event.listen(self._engine, "begin", _sqlite_begin)
            self._conn = self._begin_snapshot(dialect)
            taken_at = copied_at if self._copy else time.time()
            # The open connection keeps reading an unlinked copy, so a killed export leaves no file behind.
            # Windows refuses to remove an open file: there the copy goes at close.
            self._remove_copy()
        except Exception as exc:
            self._remove_copy()
            if isinstance(exc, SourceError):
                raise
            raise SourceError(
                f"Cannot open a read-only snapshot of {redact_uri(tracking_uri)}: {one_line(getattr(exc, 'orig', None) or exc)}."
            ) from None
        if self._stores_on_copy:
            self.uri = tracking_uri
        if upgraded:
            self.notes.append(
                f"the database has the schema of an older MLflow (revision {self.source_revision}): a copy of it was "
                "upgraded and read; the database itself was left as it was"
            )
        self.artifacts_root = resolve_uri_if_local(str(artifacts_destination)) if artifacts_destination else None
        self._lock = threading.RLock()
        isolation = SQLITE_COPY if read_url is not url else ISOLATION[dialect]
        self.snapshot = {"isolation": isolation, "taken_at_ms": int(taken_at * 1000)}
        tracking_store = self._in_snapshot(self.store._target)
        self._stores = [tracking_store]
        if getattr(registry_store, "db_uri", None) == tracking_store.db_uri:  # else a registry elsewhere, read as it is
            registry_store = self._in_snapshot(registry_store)
            self._stores.append(registry_store)
        client = self.client._target
        client._tracking_client = _PinnedTrackingClient(self.uri, tracking_store)
        client._registry_client_lazy = _PinnedRegistryClient(client._registry_uri, self.uri, registry_store)
        self.store = _Retrying(tracking_store)

    def _begin_snapshot(self, dialect: str) -> sa.Connection:
        conn = self._engine.connect()
        if dialect in ("postgresql", "mysql"):
            conn = conn.execution_options(isolation_level="REPEATABLE READ")
        elif dialect == "mssql":
            conn = conn.execution_options(isolation_level="SNAPSHOT")
        conn.begin()
        if dialect in ("postgresql", "mysql"):
            conn.exec_driver_sql("SET TRANSACTION READ ONLY")  # before the first read, which begins it on the server
        # The first read fixes the snapshot (SQLite: takes the read lock; PostgreSQL, MySQL: takes the snapshot).
        conn.execute(sa.text("SELECT count(*) FROM experiments")).scalar()
        return conn

    def _in_snapshot(self, store):
        """A copy of MLflow's ``store`` whose sessions use the snapshot connection; each session is a savepoint
        inside it, so a failed read (a missing run, ...) rolls back only itself, never the snapshot."""
        sessions = sa.orm.sessionmaker(bind=self._conn, join_transaction_mode="create_savepoint")
        managed = _get_managed_session_maker(sessions, store.db_type)
        lock = self._lock

        @contextlib.contextmanager
        def in_snapshot(read_only: bool = True):
            with lock, managed(read_only=read_only) as session:
                yield session

        pinned = copy.copy(store)
        pinned.ManagedSessionMaker = in_snapshot
        return pinned

    def close(self) -> None:
        """End the snapshot."""
        with self._lock:
            self._conn.close()
        self._engine.dispose()
        if self._stores_on_copy:
            # MLflow keeps an engine per URI for the process: the copy's would hold its file open.
            for store in self._stores:
                store.engine.dispose()
        self._remove_copy()

    def _remove_copy(self) -> None:
        if self._copy:
            with contextlib.suppress(OSError):
                os.remove(self._copy)
                self._copy = None

    def describe(self) -> dict:
        described = {**super().describe(), "snapshot": self.snapshot}
        if len(self._stores) == 2:  # the registry is in this database: named as the database, not as a copy
            described["registry_uri"] = redact_uri(self.uri)
        return described

    def _lacks_table(self, table: str) -> str | None:
        with self._lock:
            return None if sa.inspect(self._conn).has_table(table) else f"the database has no {table} table"

    def webhooks_unsupported(self) -> str | None:
        return self._lacks_table("webhooks")

    def webhook_rows(self) -> list[dict]:
        """The webhooks of the exported workspace, read as stored: MLflow's ORM would decrypt each secret with this
        process's key (and fail on another), while the archive carries the stored, encrypted value."""
        webhooks, events = sa.table("webhooks"), sa.table("webhook_events")
        columns = ("webhook_id", "name", "description", "url", "status", "secret", "creation_timestamp", "last_updated_timestamp")
        query = sa.select(*(sa.column(c) for c in columns)).select_from(webhooks).where(sa.column("deleted_timestamp").is_(None))
        with self._lock:
            if "workspace" in {c["name"] for c in sa.inspect(self._conn).get_columns("webhooks")}:
                query = query.where(sa.column("workspace") == (os.environ.get("MLFLOW_WORKSPACE") or DEFAULT_WORKSPACE))
            rows = [dict(r._mapping) for r in self._conn.execute(query)]
            subscribed: dict[str, list[dict]] = {}
            for webhook_id, entity, action in self._conn.execute(
                sa.select(sa.column("webhook_id"), sa.column("entity"), sa.column("action")).select_from(events)
                .order_by(sa.column("webhook_id"), sa.column("entity"), sa.column("action"))
            ):
                subscribed.setdefault(webhook_id, []).append({"entity": entity, "action": action})
        for row in rows:
            secret = row.pop("secret")
            row.update(events=subscribed.get(row["webhook_id"], []), encrypted_secret=secret, has_secret=secret is not None)
            row["description"] = row["description"] or None
        return sorted(rows, key=webhook_order)

    reads_deleted_experiments_scorers = True

    def scorers_unsupported(self, experiment_id: str) -> str | None:
        return self._lacks_table("scorers")

    def scorers(self, experiment_ids: list[str]) -> list[dict]:
        """The scorers of these experiments, deleted ones' too, read as stored: MLflow's store would replace a gateway
        endpoint's ID in a judge by the endpoint's name, while the archive keeps the stored value."""
        numbers = [int(e) for e in experiment_ids]
        scorers = sa.table("scorers", sa.column("scorer_id"), sa.column("experiment_id"), sa.column("scorer_name"))
        versions = sa.table("scorer_versions", *(sa.column(c) for c in ("scorer_id", "scorer_version", "serialized_scorer", "creation_time")))
        configs = sa.table("online_scoring_configs", *(sa.column(c) for c in ONLINE_CONFIG_COLUMNS))
        with self._lock:
            scorer_rows = [
                {"scorer_id": scorer_id, "experiment_id": str(experiment_id), "name": name}
                for scorer_id, experiment_id, name in self._conn.execute(sa.select(scorers).where(scorers.c.experiment_id.in_(numbers)))
            ]
            owned = sa.select(scorers.c.scorer_id).where(scorers.c.experiment_id.in_(numbers))
            version_rows = [
                {"scorer_id": scorer_id, "version": version, "serialized_scorer": serialized, "creation_time": created}
                for scorer_id, version, serialized, created in self._conn.execute(sa.select(versions).where(versions.c.scorer_id.in_(owned)))
            ]
            config_rows = [
                {**dict(r._mapping), "experiment_id": str(r.experiment_id)}
                for r in self._conn.execute(sa.select(configs).where(configs.c.scorer_id.in_(owned)))
            ]
        return scorer_records(experiment_ids, scorer_rows, version_rows, config_rows)

    reads_every_label_schema = True

    def label_schemas_unsupported(self, experiment_id: str) -> str | None:
        return self._lacks_table("label_schemas")

    def label_schemas(self, experiment_ids: list[str]) -> list[dict]:
        """The label schemas of these experiments, deleted ones' too, read as stored (and none written)."""
        columns = {c: c for c in LABEL_SCHEMA_COLUMNS} | {"input_config_json": "input_config"}
        schemas = sa.table("label_schemas", *(sa.column(c) for c in columns.values()))
        query = sa.select(schemas).where(schemas.c.experiment_id.in_([int(e) for e in experiment_ids]))
        with self._lock:
            stored = [r._mapping for r in self._conn.execute(query)]
        rows = [{name: row[column] for name, column in columns.items()} for row in stored]
        for row in rows:
            row.update(experiment_id=str(row["experiment_id"]), enable_comment=bool(row["enable_comment"]),
                       is_default=bool(row["is_default"]))
        return by_experiment_then_time(experiment_ids, rows, "created_time", "schema_id")

    def issues_unsupported(self, experiment_id: str) -> str | None:
        return self._lacks_table("issues")

    def issues(self, experiment_ids: list[str]) -> list[dict]:
        """The issues of these experiments, deleted ones' too, read as stored: MLflow's store would give an issue
        never seen since its creation that time as last seen, while the archive keeps the stored null."""
        issues = sa.table("issues", *(sa.column(c) for c in ISSUE_COLUMNS))
        index = sa.table("issue_categories", *(sa.column(c) for c in ("issue_id", "category_hash", "category")))
        owned = sa.select(issues.c.issue_id).where(issues.c.experiment_id.in_([int(e) for e in experiment_ids]))
        with self._lock:
            rows = [dict(r._mapping) for r in self._conn.execute(sa.select(issues).where(issues.c.issue_id.in_(owned)))]
            categories = [dict(r._mapping) for r in self._conn.execute(sa.select(index).where(index.c.issue_id.in_(owned)))]
        parsed = [
            issue_fields({**row, **{c: json.loads(row[c]) if row[c] else None for c in ("root_causes", "categories", "metadata")}})
            for row in rows
        ]
        return issue_records(experiment_ids, parsed, categories)

    def uncarried(self, experiments, whole: bool) -> list[Uncarried]:
        with self._lock:
            return uncarried_in_database(self._conn, [e.experiment_id for e in experiments], whole)

    def _schema_revision(self) -> str | None:
        return self.source_revision

    # -- Metric histories: one select per chunk of runs, straight into Arrow

    def metric_histories(self, run_ids: list[str]) -> Iterator[tuple[str, str, pa.Table]]:
        """Every history of these runs as ``(run_id, key, value/timestamp/step table)``: runs in the order given,
        keys sorted, each history sorted by step, timestamp and value (the REST path's order: the server's
        history call sorts by timestamp, step and value, the archive then by step and timestamp, stably)."""
        for group in self._point_groups(run_ids):
            yield from self._histories(group)

    def _point_groups(self, run_ids: list[str]) -> Iterator[list[str]]:
        """Consecutive runs, in order, in groups of about SELECT_POINTS metric points."""
        query = sa.text(
            "SELECT run_uuid, count(*) FROM metrics WHERE run_uuid IN :runs GROUP BY run_uuid"
        ).bindparams(sa.bindparam("runs", expanding=True))
        with self._lock:
            counts = dict(self._conn.execute(query, {"runs": list(run_ids)}).all())
        group, points = [], 0
        for run_id in run_ids:
            if group and points + counts.get(run_id, 0) > SELECT_POINTS:
                yield group
                group, points = [], 0
            group.append(run_id)
            points += counts.get(run_id, 0)
        yield group

    def _histories(self, run_ids: list[str]) -> Iterator[tuple[str, str, pa.Table]]:
        table = self._metric_points(run_ids)
        if table.num_rows == 0:
            return
        table = table.take(pc.sort_indices(table, sort_keys=[
            ("run", "ascending"), ("key", "ascending"), ("step", "ascending"), ("timestamp", "ascending"),
            ("value", "ascending"), ("is_nan", "ascending"),
        ]))
        # MLflow keeps NaN as 0 with is_nan set (and ±infinity as ±1.7976931348623157e308, given as it is).
        # Through numpy, not pc.if_else: that adds a validity bitmap, whose bytes would move the archive's part
        # boundaries (a table sink flushes by bytes) away from where a REST export puts them.
        value = np.where(table["is_nan"].to_numpy(), np.nan, table["value"].to_numpy())
        histories = pa.table({"value": pa.array(value), "timestamp": table["timestamp"], "step": table["step"]})
        runs = table["run"].to_numpy()
        keys = pc.dictionary_encode(table["key"]).combine_chunks().indices.to_numpy()
        starts = np.flatnonzero(np.r_[True, (runs[1:] != runs[:-1]) | (keys[1:] != keys[:-1])])
        for start, end in zip(starts.tolist(), np.r_[starts[1:], len(runs)].tolist()):
            yield run_ids[runs[start]], table["key"][start].as_py(), histories.slice(start, end - start)

    def _metric_points(self, run_ids: list[str]) -> pa.Table:
        """The points of these runs, unordered, with ``run``: the run's index in ``run_ids``.

        Through the driver's own cursor, rows converted to columns by numpy and Arrow in bulk:
        SQLAlchemy's result rows and a Python loop per point would cost several times the database's work.
        """
        mark = placeholder(self._engine)
        sql = (f"SELECT run_uuid, key, step, timestamp, value, is_nan FROM metrics "
               f"WHERE run_uuid IN ({', '.join([mark] * len(run_ids))})")
        parts = []
        with self._lock:
            cursor = self._conn.connection.cursor()
            try:
                cursor.execute(sql, tuple(run_ids))
                while rows := cursor.fetchmany(FETCH_ROWS):
                    columns = np.array(rows, dtype=object).T
                    parts.append(pa.record_batch([
                        pa.array(columns[0], pa.string()), pa.array(columns[1], pa.string()),
                        pa.array(columns[2].astype(np.int64)), pa.array(columns[3].astype(np.int64)),
                        pa.array(columns[4].astype(np.float64)),
                        pa.array(columns[5].astype(bool)),  # 0/1 from SQLite and MySQL, a boolean from PostgreSQL
                    ], names=METRIC_COLUMNS))
            finally:
                cursor.close()
        table = pa.Table.from_batches(parts, schema=METRIC_SCHEMA)
        run = pc.index_in(table["run_uuid"], value_set=pa.array(run_ids, pa.string()))
        return table.drop_columns(["run_uuid"]).append_column("run", run)

    # -- Runs' logged-model inputs, which MLflow's run search leaves out

    def model_inputs(self, run_ids: list[str]) -> dict[str, list[str]]:
        found: dict[str, list[str]] = {run_id: [] for run_id in run_ids}
        query = sa.text(
            "SELECT source_id, destination_id FROM inputs WHERE source_type = 'RUN_INPUT' "
            "AND destination_type = 'MODEL_INPUT' AND source_id IN :run_ids"
        ).bindparams(sa.bindparam("run_ids", expanding=True))
        with self._lock:
            for run_id, model_id in self._conn.execute(query, {"run_ids": run_ids}):
                found[run_id].append(model_id)
        return found

    # -- Artifacts: mlflow-artifacts:/ URIs resolved against the server's --artifacts-destination

    def check_artifacts(self, experiments) -> None:
        """Stop before anything is written when an exported object's files need ``--artifacts-destination``, or
        when it is not where the database's files are: a wrong folder would otherwise give an archive without files."""
        if self.artifacts_root is not None:
            self._check_artifacts_root()
            return
        ids = [e.experiment_id for e in experiments]
        proxied = any((e.artifact_location or "").startswith(MLFLOW_ARTIFACTS + ":") for e in experiments)
        if not proxied and ids:
            query = sa.text(
                "SELECT 1 FROM runs WHERE artifact_uri LIKE 'mlflow-artifacts:%' AND experiment_id IN :ids"
            ).bindparams(sa.bindparam("ids", expanding=True))
            with self._lock:
                proxied = self._conn.execute(query, {"ids": [int(i) for i in ids]}).first() is not None
        if proxied:
            raise self._needs_artifacts_destination()

    def _check_artifacts_root(self) -> None:
        """The server's folder holds experiment folders named as the database's, and in a few of them a folder named
        by an ID the database holds (a run, a logged model, a trace). Other folders (a typo, a local `mlruns`, the
        parent folder) hold none; an empty one is right only for a database that records no files."""
        where, database = redact_uri(self.artifacts_root), redact_uri(self.uri)
        try:
            top = set(self._names(self.artifacts_root))
            if top and self._holds_database_ids(top):
                return
        except Exception:
            return  # unreadable, not wrong: each object whose files cannot be read then counts as failed
        server_value = "give the value the database's server was started with"
        if top:
            raise SourceError(
                f"--artifacts-destination {where} holds no folder of the database {database} (none of its experiment "
                f"folders there holds a run, logged model or trace of it); {server_value}."
            )
        if self._records_files():
            raise SourceError(
                f"--artifacts-destination {where} is empty or missing, but the database {database} records files "
                f"(ready logged models, runs that logged a model); {server_value}."
            )
        if urlparse(self.artifacts_root).scheme in ("", "file") and not os.path.isdir(local_file_uri_to_path(self.artifacts_root)):
            raise SourceError(
                f"--artifacts-destination {where} does not exist; {server_value} (an empty folder if that server "
                "never stored a file)."
            )
        self.notes.append(f"--artifacts-destination {where} is empty: the archive holds no files")

    def _names(self, uri: str) -> list[str]:
        """The names of the entries right under an artifact location (none when it is missing)."""
        repository = get_artifact_repository(self.resolve_artifact_uri(uri), tracking_uri=self.uri)
        return [posixpath.basename(entry.path) for entry in repository.list_artifacts()]

    def _holds_database_ids(self, top: set[str]) -> bool:
        with self._lock:
            locations = self._conn.execute(
                sa.select(SqlExperiment.artifact_location).where(SqlExperiment.artifact_location.like(f"{MLFLOW_ARTIFACTS}:%"))
            ).scalars().all()
        present = [uri for uri in locations if urlparse(uri).path.strip("/").split("/")[0] in top][:PROBED_EXPERIMENTS]
        for location in present:
            names = self._names(location)[:PROBED_NAMES]
            for folder in {"models", "traces"} & set(names):  # logged models and traces are one level further down
                names += self._names(append_to_uri_path(location, folder))[:PROBED_NAMES]
            with self._lock:
                if any(self._conn.execute(sa.select(column).where(column.in_(names)).limit(1)).first()
                       for column in (SqlRun.run_uuid, SqlLoggedModel.model_id, SqlTraceInfo.request_id)):
                    return True
        return False

    def _records_files(self) -> bool:
        """Whether the database says files exist: a ready logged model, or a run that logged a model."""
        proxied = f"{MLFLOW_ARTIFACTS}:%"
        ready = sa.select(SqlLoggedModel.model_id).where(
            SqlLoggedModel.artifact_location.like(proxied), SqlLoggedModel.status == LoggedModelStatus.READY.to_int()
        )
        logged = sa.select(SqlRun.run_uuid).join(SqlTag, SqlTag.run_uuid == SqlRun.run_uuid).where(
            SqlTag.key == MLFLOW_LOGGED_MODELS, SqlRun.artifact_uri.like(proxied)
        )
        with self._lock:
            return any(self._conn.execute(query.limit(1)).first() for query in (ready, logged))

    def _needs_artifacts_destination(self) -> SourceError:
        return SourceError(
            f"The database {redact_uri(self.uri)} keeps artifacts as mlflow-artifacts:/ URIs, which only its server can "
            "resolve; add --artifacts-destination with the value the server was started with (a folder or an object-store URI)."
        )

    def resolve_artifact_uri(self, uri: str) -> str:
        """Where the files of a ``mlflow-artifacts:/<path>`` URI are: ``<artifacts destination>/<path>``."""
        parsed = urlparse(uri)
        if parsed.scheme != MLFLOW_ARTIFACTS:
            return uri
        if self.artifacts_root is None:
            raise self._needs_artifacts_destination()
        return append_to_uri_path(self.artifacts_root, parsed.path.lstrip("/"))

    def download_uri(self, artifact_uri: str, destination):
        return super().download_uri(self.resolve_artifact_uri(artifact_uri), destination)

    def trace_artifact_data(self, trace_info):
        from mlflow.entities import TraceData

        uri = self.resolve_artifact_uri(get_artifact_uri_for_trace(trace_info))
        repository = _Retrying(get_artifact_repository(uri, tracking_uri=self.uri))
        return TraceData.from_dict(repository.download_trace_data())


class _PinnedTrackingClient(TrackingServiceClient):
    """MLflow's tracking client over one given store (its own looks the store up in the process-wide cache)."""

    def __init__(self, tracking_uri: str, store) -> None:
        self._store = store
        super().__init__(tracking_uri)

    @property
    def store(self):
        return self._store


class _PinnedRegistryClient(ModelRegistryClient):
    """MLflow's registry client over one given store."""

    def __init__(self, registry_uri: str, tracking_uri: str, store) -> None:
        self._store = store
        super().__init__(registry_uri, tracking_uri)

    @property
    def store(self):
        return self._store


def refuse_other_schema(uri: str) -> None:
    """A SourceError for a destination database of another MLflow's schema. MLflow's store would upgrade one of an
    older MLflow in place when opened, and that MLflow's server could no longer use it. A missing or empty
    database is MLflow's to create."""
    url = sa.engine.make_url(uri)
    if _no_sqlite_file(url):
        return
    where = redact_uri(uri)
    try:
        revision = _stored_revision(url)
    except Exception:
        return  # opening the store says what is wrong
    if revision is not None and _older_schema(revision, where, "import into"):
        import mlflow

        raise SourceError(
            f"The database {where} has the schema of an older MLflow (revision {revision}); MLflow {mlflow.__version__} would "
            "upgrade it in place, and that MLflow's server could no longer use it. Import through its server "
            "(--tracking-uri http://...), or take a backup and run `mlflow db upgrade` first."
        )


def _older_schema(revision: str, where: str, doing: str) -> bool:
    """Whether ``revision`` is an older MLflow's (False: the installed MLflow's); a SourceError for one it does not know."""
    from alembic.script import ScriptDirectory
    from mlflow.store.db.utils import _get_alembic_config

    if revision == _get_latest_schema_revision():
        return False
    try:
        ScriptDirectory.from_config(_get_alembic_config(db_url="")).get_revision(revision)
    except Exception:
        import mlflow

        raise SourceError(
            f"The database {where} has schema revision {revision}, which MLflow {mlflow.__version__} does not know: a newer "
            f"MLflow made it; install that MLflow (or newer) to {doing} it."
        ) from None
    return True


def _exportable_revision(url: sa.engine.URL, uri: str) -> str:
    """The MLflow schema revision of the database, read without creating or changing anything; a SourceError
    when there is no MLflow database there, when a newer MLflow made it, or when it is of an older MLflow and
    not SQLite (only a SQLite file can be copied and the copy upgraded)."""
    where = redact_uri(uri)
    if _no_sqlite_file(url):
        raise SourceError(f"There is no database file at {where}; check --tracking-uri (MLflow's default is sqlite:///mlflow.db, in the current folder).")
    try:
        revision = _stored_revision(url)
    except Exception as exc:
        raise SourceError(f"Cannot read the database {where}: {one_line(getattr(exc, 'orig', None) or exc)}.") from None
    if revision is None:
        raise SourceError(f"{where} holds no MLflow tracking data (it has no alembic_version table); check --tracking-uri.")
    if _older_schema(revision, where, "export") and url.get_backend_name() != "sqlite":
        raise SourceError(
            f"The database {where} has the schema of an older MLflow (revision {revision}), which this export would have to "
            "upgrade in place; export through a server of the MLflow that uses it (--tracking-uri http://...), or take a "
            "backup and run `mlflow db upgrade` first."
        )
    return revision


def _refuse_unchosen_workspaces(url: sa.engine.URL, uri: str) -> None:
    """A database with workspaces besides ``default`` is exported one workspace at a time, the one MLflow's own
    settings choose: the archive does not carry workspaces yet, and MLflow's store refuses to open such a database
    otherwise (in words about its own settings)."""
    # Read as MLflow reads them (3.10+; the package supports older MLflow 3 releases, which lack these names).
    if os.environ.get("MLFLOW_ENABLE_WORKSPACES", "").lower() in ("true", "1") and os.environ.get("MLFLOW_WORKSPACE"):
        return
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            if not sa.inspect(conn).has_table("workspaces"):
                return
            names = conn.execute(
                sa.text("SELECT name FROM workspaces WHERE name <> :default ORDER BY name"), {"default": DEFAULT_WORKSPACE}
            ).scalars().all()
    finally:
        engine.dispose()
    if names:
        shown = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
        raise SourceError(
            f"{redact_uri(uri)} holds workspaces besides {DEFAULT_WORKSPACE} ({shown}), which the archive does not carry "
            "yet: export one workspace per archive with MLFLOW_ENABLE_WORKSPACES=true and MLFLOW_WORKSPACE=<name> set "
            "(an import puts it into the destination's current workspace)."
        )


def _no_sqlite_file(url: sa.engine.URL) -> bool:
    """A SQLite URI naming no existing file (which MLflow's store would create)."""
    return url.get_backend_name() == "sqlite" and not (url.database and os.path.isfile(url.database))


def _stored_revision(url: sa.engine.URL) -> str | None:
    """The database's MLflow schema revision, None without an alembic_version table (MLflow's own reading)."""
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        return _get_schema_version(engine)
    finally:
        engine.dispose()


def _upgrade(path: str) -> None:
    """Upgrade the SQLite file at ``path`` (a copy) to the installed MLflow's schema with MLflow's own migrations."""
    import logging

    from mlflow.store.db.utils import _upgrade_db

    alembic_log = logging.getLogger("alembic")
    level = alembic_log.level
    alembic_log.setLevel(logging.WARNING)  # one line per migration otherwise
    engine = sa.create_engine(f"sqlite:///{path}", poolclass=sa.pool.NullPool)
    try:
        _upgrade_db(engine)
    finally:
        engine.dispose()
        alembic_log.setLevel(level)


def _journal_mode(path: str) -> str:
    with contextlib.closing(sqlite3.connect(f"file:{quote(path)}?mode=ro", uri=True, timeout=20)) as conn:
        return conn.execute("PRAGMA journal_mode").fetchone()[0].lower()


def _backup_copy(path: str) -> str:
    """A consistent copy of the SQLite file at ``path`` in the temporary folder, made by SQLite's online backup in
    one step: the source is read-locked only while its pages are copied (0.9 s for 513 MB here)."""
    handle, copy_path = tempfile.mkstemp(prefix="mlflow-archive-snapshot-", suffix=".db")
    os.close(handle)
    try:
        with contextlib.closing(sqlite3.connect(f"file:{quote(path)}?mode=ro", uri=True, timeout=20)) as source, \
                contextlib.closing(sqlite3.connect(copy_path)) as copy:
            source.backup(copy)
    except BaseException:
        os.remove(copy_path)
        raise
    return copy_path


def _sqlite_connect(dbapi_connection, _record) -> None:
    # pysqlite would send BEGIN only before a write: a read "transaction" would see every commit.
    dbapi_connection.isolation_level = None
    # A server committing at the moment of the first read: wait for it as MLflow's own sessions do.
    dbapi_connection.execute("PRAGMA busy_timeout = 20000")


def _sqlite_begin(conn) -> None:
    conn.exec_driver_sql("BEGIN")
