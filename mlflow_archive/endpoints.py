"""The two sides of a transfer, behind small interfaces.

``TrackingSource`` is everything an exporter reads, ``TrackingDestination``
everything an importer writes. Both go through ``MlflowClient``, so they work
on REST servers and on local stores alike; a direct SQL implementation (faster,
able to keep IDs) would be one more class with the same methods.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

from mlflow import MlflowClient
from mlflow.entities import DatasetInput, Experiment, Metric, Param, Run, RunStatus, RunTag, ViewType
from mlflow.exceptions import MlflowException
from mlflow.store.tracking import GET_METRIC_HISTORY_MAX_RESULTS

from .errors import SourceError
from .streams import redact_uri

PAGE_SIZE = 1000
UNREACHABLE_MARKERS = ("Max retries exceeded", "Connection refused", "Failed to establish a new connection", "timed out")


def is_unreachable(exc: BaseException) -> bool:
    import requests

    if isinstance(exc, (requests.exceptions.ConnectionError, requests.exceptions.Timeout, ConnectionError)):
        return True
    return isinstance(exc, MlflowException) and any(m in str(exc) for m in UNREACHABLE_MARKERS)


def unreachable_error(uri: str, exc: BaseException) -> SourceError:
    return SourceError(
        f"The tracking server at {redact_uri(uri)} is not answering ({type(exc).__name__}); "
        "check that it is running, then run the same command again."
    )


def _paged(call, **kwargs) -> Iterator:
    token = None
    while True:
        page = call(page_token=token, **kwargs)
        yield from page
        token = page.token
        if not token:
            return


class _Endpoint:
    def __init__(self, tracking_uri: str | None) -> None:
        self.client = MlflowClient(tracking_uri=tracking_uri)
        self.uri = self.client._tracking_client.tracking_uri
        self.store = self.client._tracking_client.store

    def check_reachable(self) -> None:
        try:
            self.client.search_experiments(max_results=1)
        except Exception as exc:
            if is_unreachable(exc):
                raise unreachable_error(self.uri, exc) from None
            raise SourceError(f"Cannot use the tracking server at {redact_uri(self.uri)}: {_first_line(exc)}.") from None


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return (lines[0] if lines else type(exc).__name__).rstrip(".")[:300]


class TrackingSource(_Endpoint):
    """Reads a tracking server with paged calls only."""

    def describe(self) -> dict:
        import mlflow

        return {
            "tracking_uri": redact_uri(self.uri),
            "registry_uri": redact_uri(self.client._registry_uri),
            "mlflow_version": self._server_version() or mlflow.__version__,
            "schema_revision": self._schema_revision(),
        }

    def _server_version(self) -> str | None:
        if not self.uri.startswith(("http://", "https://")):
            return None
        from mlflow.utils.rest_utils import http_request

        try:
            response = http_request(self.store.get_host_creds(), "/version", "GET", max_retries=0, timeout=10)
            return response.text.strip() if response.ok else None
        except Exception:
            return None

    def _schema_revision(self) -> str | None:
        engine = getattr(self.store, "engine", None)
        if engine is None:
            return None
        import sqlalchemy

        with engine.connect() as conn:
            return conn.execute(sqlalchemy.text("SELECT version_num FROM alembic_version")).scalar()

    def experiments(self, include_deleted: bool) -> Iterator[Experiment]:
        view = ViewType.ALL if include_deleted else ViewType.ACTIVE_ONLY
        return _paged(self.client.search_experiments, view_type=view, max_results=PAGE_SIZE)

    def experiment(self, id_or_name: str) -> Experiment | None:
        found = self.client.get_experiment_by_name(id_or_name)
        if found is None and id_or_name.isdigit():
            try:
                found = self.client.get_experiment(id_or_name)
            except MlflowException:
                return None
        return found

    def runs(self, experiment_ids: list[str], filter_string: str, include_deleted: bool) -> Iterator[Run]:
        view = ViewType.ALL if include_deleted else ViewType.ACTIVE_ONLY
        return _paged(
            self.client.search_runs,
            experiment_ids=experiment_ids,
            filter_string=filter_string,
            run_view_type=view,
            max_results=PAGE_SIZE,
            order_by=["attributes.start_time ASC", "attributes.run_id ASC"],
        )

    def metric_history(self, run_id: str, key: str) -> Iterator[list[Metric]]:
        """Pages of one key's full history (the paged history call, never the sampled one)."""
        token = None
        while True:
            page = self.store.get_metric_history(
                run_id=run_id, metric_key=key, max_results=GET_METRIC_HISTORY_MAX_RESULTS, page_token=token
            )
            yield list(page)
            token = getattr(page, "token", None)
            if not token:
                return

    def download_artifacts(self, run_id: str, destination: Path) -> Path:
        return Path(self.client.download_artifacts(run_id, "", str(destination)))


class TrackingDestination(_Endpoint):
    """Writes to a tracking server with batch calls."""

    def experiment_by_name(self, name: str) -> Experiment | None:
        return self.client.get_experiment_by_name(name)

    def create_experiment(self, name: str, tags: dict[str, str]) -> str:
        return self.client.create_experiment(name, tags=tags)

    def set_experiment_tags(self, experiment_id: str, tags: dict[str, str]) -> None:
        for key, value in tags.items():
            self.client.set_experiment_tag(experiment_id, key, value)

    def restore_experiment(self, experiment_id: str) -> None:
        self.client.restore_experiment(experiment_id)

    def delete_experiment(self, experiment_id: str) -> None:
        self.client.delete_experiment(experiment_id)

    def runs_tagged(self, experiment_ids: list[str], tag_key: str) -> Iterator[Run]:
        """Every run (deleted ones too) that carries ``tag_key``, page by page."""
        return _paged(
            self.client.search_runs,
            experiment_ids=experiment_ids,
            filter_string=f"tags.`{tag_key}` LIKE '%'",
            run_view_type=ViewType.ALL,
            max_results=PAGE_SIZE,
        )

    def create_run(self, experiment_id: str, start_time: int | None, run_name: str | None, tags: dict[str, str]) -> str:
        return self.client.create_run(experiment_id, start_time=start_time, tags=tags, run_name=run_name).info.run_id

    def log_batch(
        self, run_id: str, metrics: list[Metric] = (), params: list[Param] = (), tags: list[RunTag] = ()
    ) -> None:
        self.client.log_batch(run_id, metrics=metrics, params=params, tags=tags)

    def log_inputs(self, run_id: str, datasets: list[DatasetInput]) -> None:
        self.client.log_inputs(run_id, datasets=datasets)

    def log_artifacts(self, run_id: str, local_dir: Path) -> None:
        self.client.log_artifacts(run_id, str(local_dir))

    def finish_run(self, run_id: str, status: str, end_time: int | None) -> None:
        if status == RunStatus.to_string(RunStatus.RUNNING):
            return
        # The store call, not ``set_terminated``: that one re-reads the run and prints its URL to stdout.
        self.store.update_run_info(run_id, RunStatus.from_string(status), end_time, None)

    def delete_run(self, run_id: str) -> None:
        self.client.delete_run(run_id)

    def set_run_tag(self, run_id: str, key: str, value: str) -> None:
        self.client.set_tag(run_id, key, value)
