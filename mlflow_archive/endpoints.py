"""The two sides of a transfer, behind small interfaces.

``TrackingSource`` is everything an exporter reads, ``TrackingDestination``
everything an importer writes. Both go through ``MlflowClient``, so they work
on REST servers and on local stores alike; a direct SQL implementation (faster,
able to keep IDs) would be one more class with the same methods.

Both learn at the start what the server can hold (``has(section)``, by archive section),
and try again, with back-off, a call the server answered with a 5xx or dropped.
"""

from __future__ import annotations

import contextlib
import functools
import json
import re
import time
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Iterator
from urllib.parse import quote

from mlflow import MlflowClient
from mlflow.entities import (
    DatasetInput,
    DatasetRecord,
    EvaluationDataset,
    Experiment,
    LifecycleStage,
    LoggedModel,
    LoggedModelInput,
    LoggedModelOutput,
    LoggedModelStatus,
    Metric,
    Param,
    Run,
    RunStatus,
    RunTag,
    Assessment,
    Span,
    Trace,
    TraceData,
    TraceInfo,
    ViewType,
)
from mlflow.entities.model_registry import ModelVersion, PromptVersion, RegisteredModel
from mlflow.entities.trace_info_v2 import TraceInfoV2
from mlflow.exceptions import MlflowException
from mlflow.prompt.constants import _CLIENT_PROMPT_SOURCE_PLACEHOLDER, IS_PROMPT_TAG_KEY
from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository
from mlflow.store.tracking import GET_METRIC_HISTORY_MAX_RESULTS
from mlflow.tracking._tracking_service.utils import _use_tracking_uri
from mlflow.tracing.utils.artifact_utils import get_artifact_uri_for_trace
from mlflow.tracing.utils import TraceJSONEncoder
from mlflow.utils.proto_json_utils import message_to_json

from .archive import SECTIONS
from .coverage import Uncarried, uncarried_over_rest
from .database import reason
from .errors import SourceError, one_line
from .streams import redact_uri

if TYPE_CHECKING:
    import pyarrow as pa
    from mlflow.entities.issue import Issue
    from mlflow.entities.scorer import ScorerVersion
    from mlflow.entities.webhook import Webhook
    from mlflow.genai.scorers.online.entities import OnlineScoringConfig

PAGE_SIZE = 1000
EXPERIMENTS_SEARCH = "/api/2.0/mlflow/experiments/search"
REACHABLE_TIMEOUT = 10  # seconds for the first request; later requests use MLflow's own retries
PROMPT_FILTER = f"tags.`{IS_PROMPT_TAG_KEY}` = 'true'"
RECORDS_PAGE_SIZE = 1000  # the server's own default page of dataset records
TRACE_PAGE_SIZE = 500
# MLflow's server endpoint for full (not sampled) histories of one key over several runs, no paging;
# its handler's limits: at most 100 runs per request, at most 25,000 points per answer over all its runs.
BULK_HISTORY = "/ajax-api/2.0/mlflow/metrics/get-history-bulk"
BULK_HISTORY_RUNS = 100
BULK_HISTORY_POINTS = 25000
# Back-off between tries of a call the server failed in a way a retry can cure (a worker
# restarting drops connections, a server under load answers 5xx): 7.5 s in all, on top of
# MLflow's own retries (MLFLOW_HTTP_REQUEST_MAX_RETRIES). A refused connection or a timeout is
# not retried here: a server that is gone or hung must end the run soon.
RETRY_DELAYS = (0.5, 1.0, 2.0, 4.0)
RETRIED = ("answered HTTP", "dropped the connection")
_ANSWERED = (re.compile(r"too many (\d{3}) error responses"), re.compile(r"error code (5\d\d)"))
_TROUBLES = (
    (("Connection refused", "Failed to establish a new connection", "Name or service not known"), "is not answering"),
    (("Connection reset", "Connection aborted", "RemoteDisconnected", "BrokenPipe", "IncompleteRead"), "dropped the connection"),
    (("timed out", "ReadTimeout", "ConnectTimeout"), "did not answer in time"),
)
# Object kinds that arrived after MLflow 2.0, by archive section: the first server version with them.
KIND_SINCE = {"prompts": (2, 21), "logged_models": (3, 0), "traces": (3, 0), "evaluation_datasets": (3, 4), "webhooks": (3, 3),
              "scorers": (3, 5), "issues": (3, 10),
              "label_schemas": (3, 12)}  # scorers: registered since 3.4, named by ID in the API's answers since 3.5
# Servers from 2.14 to 3.0 keep traces too, behind the V2 trace API (searched with GET, spans in each
# trace's traces.json artifact, no assessments, no links to runs): exported, not imported into.
V2_TRACES_SINCE = (2, 14)
V2_TRACES_SEARCH = "/api/2.0/mlflow/traces"
# Where no version is reported, one request per kind tells: a 404 for the path means no such kind.
KIND_PROBES = {
    "logged_models": ("POST", "/api/2.0/mlflow/logged-models/search", {"experiment_ids": ["0"], "max_results": 1}),
    "traces": ("POST", "/api/3.0/mlflow/traces/search", {"max_results": 1}),
    "evaluation_datasets": ("POST", "/api/3.0/mlflow/datasets/search", {"max_results": 1}),
    "webhooks": ("GET", "/api/2.0/mlflow/webhooks", None),
    "scorers": ("GET", "/api/3.0/mlflow/scorers/list", None),
    "issues": ("POST", "/api/3.0/mlflow/issues/search", {"max_results": 1}),
    "label_schemas": ("GET", "/api/3.0/mlflow/label-schemas/get", None),  # no ID: refused (400), never a write
}


def server_trouble(exc: BaseException) -> str | None:
    """What the server did, when it is the server's state that failed the call (a retry may cure it); else None."""
    import requests

    text = str(exc)
    response = getattr(exc, "response", None)
    if isinstance(exc, requests.exceptions.HTTPError) and response is not None and response.status_code >= 500:
        return f"answered HTTP {response.status_code}"
    if not isinstance(exc, (MlflowException, requests.exceptions.RequestException, ConnectionError, TimeoutError)):
        return None
    for pattern in _ANSWERED:
        match = pattern.search(text)
        if match:
            return f"answered HTTP {match.group(1)}"
    for markers, what in _TROUBLES:
        if any(m in text for m in markers):
            return what
    if isinstance(exc, (requests.exceptions.ConnectionError, requests.exceptions.Timeout, ConnectionError, TimeoutError)):
        return "is not answering"
    return None


def server_failure_error(uri: str, exc: BaseException) -> SourceError:
    trouble = server_trouble(exc)
    tries = f"{len(RETRY_DELAYS) + 1} tries in {sum(RETRY_DELAYS):.0f} s; " if trouble.startswith(RETRIED) else ""
    return SourceError(
        f"The tracking server at {redact_uri(uri)} {trouble} ({tries}{one_line(exc)}); "
        "check that it is running and not overloaded, then run the same command again."
    )


def stopped_error(exc: BaseException, uri: str, doing: str, remedy: str) -> SourceError:
    """The one sentence for an error nothing else handled: a failing server, or what failed and what to do."""
    if server_trouble(exc):
        return server_failure_error(uri, exc)
    return SourceError(f"The {doing} {redact_uri(uri)} stopped on an error ({one_line(exc, with_type=True)}); {remedy}.")


def with_retries(call, *args, **kwargs):
    """``call(*args, **kwargs)``, tried again after each delay of RETRY_DELAYS while the server answers
    5xx or drops the connection.

    A 5xx applied nothing. A write whose connection dropped may have been applied: its repeat
    can then fail as "already exists", or, for a created run, leave one extra run marked partial.
    """
    for delay in RETRY_DELAYS:
        try:
            return call(*args, **kwargs)
        except Exception as exc:
            if not (server_trouble(exc) or "").startswith(RETRIED):
                raise
        time.sleep(delay)
    return call(*args, **kwargs)


class _Retrying:
    """The wrapped client, store or artifact repository, with every method call going through ``with_retries``."""

    def __init__(self, target) -> None:
        self._target = target

    def __getattr__(self, name: str):
        value = getattr(self._target, name)
        return functools.partial(with_retries, value) if callable(value) else value


def _artifact_repository(artifact_uri: str, tracking_uri: str) -> _Retrying:
    return _Retrying(get_artifact_repository(artifact_uri, tracking_uri=tracking_uri))


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
        try:
            client = MlflowClient(tracking_uri=tracking_uri)
            store = client._tracking_client.store
        except Exception as exc:  # MLflow's refusal, a database driver not installed, a database not answering
            where = redact_uri(tracking_uri or "the default tracking URI")
            if "MLFLOW_ALLOW_FILE_STORE" in str(exc):
                raise SourceError(
                    f"{where} is an MLflow file store, which MLflow 3 opens only when "
                    "MLFLOW_ALLOW_FILE_STORE=true is set; set it and run the same command again."
                ) from None
            if isinstance(exc, ModuleNotFoundError):  # SQLAlchemy imports a dialect's driver when the store makes its engine
                raise SourceError(
                    f"{where} needs the module {exc.name!r}, which is not installed in this Python; install the package "
                    "that provides it, or name an installed driver in the URI (e.g. mysql+pymysql://)."
                ) from None
            raise SourceError(f"Cannot use the tracking URI {where}: {reason(exc)}.") from None
        self.uri = client._tracking_client.tracking_uri
        self.client = _Retrying(client)
        self.store = _Retrying(store)
        self.server_version: str | None = None  # what its /version says, for an HTTP server that answers it
        self.missing: set[str] = set()  # archive sections whose objects the server cannot hold
        self.v2_traces = False  # traces only through the V2 trace API (a 2.x server)
        self.notes: list[str] = []  # what the summary says about how the server was read

    @property
    def registry(self):
        """MLflow's registry client: the one that also serves prompts, which ``MlflowClient``'s model calls refuse."""
        return self.client._get_registry_client()

    def registered_model(self, name: str) -> RegisteredModel | None:
        """A registered model or a prompt (``_is_prompt()`` tells which) of that name."""
        try:
            return self.registry.get_registered_model(name)
        except MlflowException:
            return None

    def as_process_default(self):
        """While in effect, MLflow's process-wide tracking URI is this endpoint's, for a local store.

        MLflow's SQL registry resolves ``models:/`` version sources through a client on the
        process-wide URI, not the store's own: without this, ``--tracking-uri sqlite:///x.db``
        would look up logged models in (and create) the default ``./mlflow.db``.
        """
        if self.uri.startswith(("http://", "https://")):
            return contextlib.nullcontext()
        return _use_tracking_uri(self.uri)

    def model_versions(self, name: str, prompt: bool = False) -> Iterator[ModelVersion]:
        """The versions of a registered model, or of a prompt; deleted ones excluded.

        A search finds a prompt's versions only when it asks for the prompt tag, and a model's only
        when it does not (and none of the model's versions, deleted ones included, has that tag).
        """
        name_filter = f"{_name_filter(name)} AND {PROMPT_FILTER}" if prompt else _name_filter(name)
        return _paged(self.client.search_model_versions, filter_string=name_filter, max_results=PAGE_SIZE)

    def evaluation_datasets(self, experiment_ids: list[str] | None = None, name: str | None = None) -> Iterator[EvaluationDataset]:
        """Datasets (without records), oldest first; the store call, as the client adds nothing here."""
        return _paged(
            self.store.search_datasets, experiment_ids=experiment_ids, filter_string=_dataset_name_filter(name),
            max_results=PAGE_SIZE, order_by=["created_time ASC"],
        )

    def webhooks_unsupported(self) -> str | None:
        """Why this store cannot hold webhooks (only SQL-backed registries can), or None when it can."""
        return _refusal(lambda: self.client.list_webhooks(max_results=1))

    def webhooks(self) -> Iterator[Webhook]:
        """The registry's webhooks (deleted ones are never listed); over REST without their secrets."""
        return _paged(self.client.list_webhooks, max_results=PAGE_SIZE)

    def scorers_unsupported(self, experiment_id: str) -> str | None:
        """Why this store cannot hold scorers (only SQL-backed stores can), or None when it can; asked of an active
        experiment, since MLflow lists scorers per experiment."""
        return _refusal(lambda: self.store.list_scorers(experiment_id))

    def scorer_versions(self, experiment_id: str, name: str) -> list[ScorerVersion]:
        """Every version of the experiment's scorer of that name, oldest first; none when there is no such scorer."""
        return _unless_missing(lambda: self.store.list_scorer_versions(experiment_id, name), [])

    def online_scoring_configs(self, scorer_ids: list[str]) -> list[OnlineScoringConfig]:
        # The IDs travel in the query string: a bounded number per request.
        return [
            config for start in range(0, len(scorer_ids), 100)
            for config in self.store.get_online_scoring_configs(scorer_ids[start : start + 100])
        ]

    def issues_unsupported(self, experiment_id: str) -> str | None:
        """Why this store cannot hold issues (only SQL-backed stores can), or None when it can."""
        return _refusal(lambda: self.store.search_issues(experiment_id=experiment_id, max_results=1))

    def label_schemas_unsupported(self, experiment_id: str) -> str | None:
        """Why this store cannot hold label schemas, or None when it can; asks for one by an ID no schema has, which
        writes nothing (a list would write MLflow's default schema)."""
        return _refusal(lambda: _unless_missing(lambda: self.store.get_label_schema("ls-0"), None))

    def label_schemas_listed(self, experiment_id: str) -> list:
        """Every label schema of an active experiment; MLflow writes its default schema into one that lacks it."""
        return list(_paged(self.store.list_label_schemas, experiment_id=experiment_id, max_results=PAGE_SIZE))

    def issue(self, issue_id: str) -> Issue | None:
        return _unless_missing(lambda: self.store.get_issue(issue_id), None)

    def evaluation_datasets_unsupported(self) -> str | None:
        """Why this store cannot hold evaluation datasets (only SQL-backed stores can), or None when it can."""
        return _refusal(lambda: self.store.search_datasets(max_results=1))

    def trace_infos(self, trace_ids: list[str]) -> list[TraceInfo]:
        """The infos of those traces that exist, with their assessments."""
        return self.store.batch_get_trace_infos(trace_ids)

    def check_reachable(self) -> None:
        """Fail now, in one sentence, if the server cannot be used; then learn what it supports.

        The first request is one cheap call answered in seconds: no retry ladder before telling a dead port.
        """
        if self.uri.startswith(("http://", "https://")):
            self._check_http()
        try:
            self.client.search_experiments(max_results=1)
        except Exception as exc:
            if server_trouble(exc):
                raise server_failure_error(self.uri, exc) from None
            raise SourceError(f"Cannot use the tracking server at {redact_uri(self.uri)}: {one_line(exc)}.") from None
        self._learn_capabilities()

    def has(self, section: str) -> bool:
        """Whether the server can hold the objects of archive section ``section`` (asked once, at the start)."""
        return section not in self.missing

    @property
    def kinds(self) -> list[str]:
        """The archive sections the server has, in archive order."""
        return [section for section in SECTIONS if self.has(section)]

    def lacks(self, section: str) -> str:
        """Why the server has no objects of ``section``, as a sentence end."""
        version = f"MLflow {self.server_version}" if self.server_version else "it"
        return f"the server at {redact_uri(self.uri)} ({version}) has no {section.replace('_', ' ')}"

    def _learn_capabilities(self) -> None:
        if not self.uri.startswith(("http://", "https://")):
            return  # a local store: this process's MLflow reads and writes everything
        response = self._request("GET", "/version")
        self.server_version = response.text.strip() if response is not None and response.ok else None
        version = _version_tuple(self.server_version)
        if version is not None:
            self.missing = {kind for kind, since in KIND_SINCE.items() if version < since}
            self.v2_traces = V2_TRACES_SINCE <= version < KIND_SINCE["traces"]
        else:
            self.missing = self.probed_missing()
            if "traces" in self.missing:
                probe = self._request("GET", V2_TRACES_SEARCH, params={"experiment_ids": "0", "max_results": 1})
                self.v2_traces = probe is not None and probe.ok

    def probed_missing(self) -> set[str]:
        """The kinds the server lacks by KIND_PROBES: one request each, a 404 for the path means no such kind."""
        return {kind for kind, (method, path, body) in KIND_PROBES.items() if _no_such_endpoint(self._request(method, path, body))}

    def _request(self, method: str, path: str, body: dict | None = None, params: dict | None = None, quiet: bool = True):
        """One raw request, no retries, answered within REACHABLE_TIMEOUT; with ``quiet``, None when no answer came."""
        from mlflow.utils.rest_utils import http_request

        try:
            return http_request(
                self.store.get_host_creds(), path, method, json=body, params=params,
                max_retries=0, timeout=REACHABLE_TIMEOUT, raise_on_status=False,
            )
        except Exception:
            if quiet:
                return None
            raise

    def _check_http(self) -> None:
        try:
            response = self._request("GET", EXPERIMENTS_SEARCH, params={"max_results": 1}, quiet=False)
        except Exception as exc:
            if server_trouble(exc):
                raise server_failure_error(self.uri, exc) from None
            raise SourceError(f"Cannot reach the tracking server at {redact_uri(self.uri)}: {one_line(exc)}.") from None
        where = redact_uri(self.uri)
        if response.status_code in (401, 403):
            raise SourceError(
                f"The tracking server at {where} refused the request (HTTP {response.status_code}); "
                "set MLFLOW_TRACKING_TOKEN or MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD."
            )
        try:
            answer = response.json()
        except ValueError:
            answer = None
        if not isinstance(answer, dict):
            raise SourceError(
                f"{where} is not an MLflow tracking server (HTTP {response.status_code} on the experiments API); "
                "check the URI and port."
            )


def _version_tuple(version: str | None) -> tuple[int, int] | None:
    match = re.match(r"^(\d+)\.(\d+)", version or "")
    return (int(match.group(1)), int(match.group(2))) if match else None


def _unless_missing(call, default):
    """What ``call`` returns, or ``default`` when MLflow answers that the object does not exist."""
    try:
        return call()
    except MlflowException as exc:
        if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
            return default
        raise


def _refusal(probe) -> str | None:
    """Why the store refuses ``probe`` (a call it cannot serve), or None when it answers; a failing server raises."""
    try:
        probe()
    except Exception as exc:
        if server_trouble(exc):
            raise
        return one_line(exc).split(". ")[0]  # MLflow's first sentence says it; the rest is setup advice
    return None


def _event_order(event: dict) -> tuple:
    return event["entity"], event["action"]


def webhook_order(row: dict) -> tuple:
    """Webhooks oldest first (MLflow lists them newest first), so a database and a REST export write the same rows."""
    return row["creation_timestamp"] or 0, row["webhook_id"]


def serialized_scorer(version: ScorerVersion) -> str:
    """A scorer version's JSON text as MLflow returned it (the entity's property parses it into an object)."""
    return version.to_proto().serialized_scorer


def scorer_records(experiment_ids: list[str], scorers: list[dict], versions: list[dict], configs: list[dict]) -> list[dict]:
    """``scorers`` rows, each with its ``versions`` and ``configs`` rows, by experiment in the order given, then name;
    versions by number, configs by ID: a database and a REST export write the same rows."""
    position = {experiment_id: i for i, experiment_id in enumerate(experiment_ids)}
    records = {s["scorer_id"]: {**s, "versions": [], "configs": []} for s in scorers}
    for version in sorted(versions, key=lambda v: v["version"]):
        records[version["scorer_id"]]["versions"].append(version)
    for config in sorted(configs, key=lambda c: c["online_scoring_config_id"]):
        records[config["scorer_id"]]["configs"].append(config)
    kept = (r for r in records.values() if r["versions"])  # a scorer whose versions are all deleted is no scorer
    return sorted(kept, key=lambda r: (position[r["experiment_id"]], r["name"]))


LABEL_SCHEMA_COLUMNS = (
    "schema_id", "experiment_id", "name", "type", "input_type", "input_config_json", "instruction", "enable_comment",
    "created_by", "created_time", "last_update_time", "is_default",
)


def by_experiment_then_time(experiment_ids: list[str], rows: list[dict], time: str, key: str) -> list[dict]:
    """Rows by experiment in the order given, then ``time``, then ``key``: a database and a REST export write the same
    order."""
    position = {experiment_id: i for i, experiment_id in enumerate(experiment_ids)}
    return sorted(rows, key=lambda r: (position[r["experiment_id"]], r[time], r[key]))


ISSUE_COLUMNS = (
    "issue_id", "experiment_id", "name", "description", "status", "severity", "root_causes", "source_run_id", "categories",
    "created_timestamp", "last_updated_timestamp", "created_by", "last_seen_timestamp", "last_updated_by", "metadata",
)


def issue_fields(fields: dict) -> dict:
    """An ``issues`` row from an issue's values as MLflow holds them (lists and maps parsed, enums as their names):
    empty lists and maps are null, as MLflow stores them; metadata in the order given."""
    metadata = fields["metadata"]
    return {
        **fields,
        "experiment_id": str(fields["experiment_id"]),
        "status": str(fields["status"]),
        "severity": str(fields["severity"]) if fields["severity"] else None,
        "root_causes": list(fields["root_causes"]) if fields["root_causes"] else None,
        "categories": list(fields["categories"]) if fields["categories"] else None,
        "metadata": [{"key": k, "value": v} for k, v in metadata.items()] if metadata else None,
    }


def issue_records(experiment_ids: list[str], issues: list[dict], categories: list[dict]) -> list[dict]:
    """``issues`` rows, each with its ``issue_categories`` rows (``index``, by hash), by experiment in the order
    given, then creation time and ID: a database and a REST export write the same order."""
    records = {i["issue_id"]: {**i, "index": []} for i in issues}
    for row in sorted(categories, key=lambda c: c["category_hash"]):
        records[row["issue_id"]]["index"].append(row)
    return by_experiment_then_time(experiment_ids, list(records.values()), "created_timestamp", "issue_id")


# Answers of a server that has no such endpoint, or does not serve it (a feature it was not started with).
NO_SUCH_ENDPOINT = (404, 405, 501)
_FEATURE_OFF = re.compile(r"disabled because the server is running without")  # e.g. workspaces, answered with 503


def _no_such_endpoint(response) -> bool:
    """A 404 for a search path: a server answering "no such object" would say so in JSON."""
    if response is None or response.status_code != 404:
        return False
    try:
        return response.json().get("error_code") == "ENDPOINT_NOT_FOUND"
    except ValueError:
        return True


class TrackingSource(_Endpoint):
    """Reads a tracking server with paged calls only."""

    def has(self, section: str) -> bool:
        return super().has(section) or (section == "traces" and self.v2_traces)

    def describe(self) -> dict:
        import mlflow

        return {
            "tracking_uri": redact_uri(self.uri),
            "registry_uri": redact_uri(self.client._registry_uri),
            "mlflow_version": self.server_version or mlflow.__version__,
            "schema_revision": self._schema_revision(),
            "object_kinds": self.kinds,
        }

    def _schema_revision(self) -> str | None:
        engine = getattr(self.store, "engine", None)
        if engine is None:
            return None
        import sqlalchemy

        with engine.connect() as conn:
            return conn.execute(sqlalchemy.text("SELECT version_num FROM alembic_version")).scalar()

    def webhook_rows(self) -> list[dict]:
        """Every webhook as a ``webhooks`` row, oldest first. MLflow's API never returns a secret, nor whether there is one."""
        rows = [
            {
                "webhook_id": w.webhook_id, "name": w.name, "description": w.description or None, "url": w.url,
                "events": sorted(({"entity": e.entity.value, "action": e.action.value} for e in w.events), key=_event_order),
                "status": w.status.value, "creation_timestamp": w.creation_timestamp,
                "last_updated_timestamp": w.last_updated_timestamp, "encrypted_secret": None, "has_secret": None,
            }
            for w in self.webhooks()
        ]
        return sorted(rows, key=webhook_order)

    # MLflow's API refuses to list the scorers of a deleted experiment; a database source reads them.
    reads_deleted_experiments_scorers = False

    def scorers(self, experiment_ids: list[str]) -> list[dict]:
        """The scorers of these active experiments (``scorer_records``). A judge on a gateway endpoint names it as the
        API gives it: by the endpoint's name."""
        scorers, versions = [], []
        for experiment_id in experiment_ids:
            for latest in self.store.list_scorers(experiment_id):
                scorers.append({"scorer_id": latest.scorer_id, "experiment_id": experiment_id, "name": latest.scorer_name})
                versions += [
                    {"scorer_id": v.scorer_id, "version": v.scorer_version, "serialized_scorer": serialized_scorer(v),
                     "creation_time": v.creation_time}
                    for v in self.scorer_versions(experiment_id, latest.scorer_name)
                ]
        configs = [
            {"online_scoring_config_id": c.online_scoring_config_id, "scorer_id": c.scorer_id,
             "experiment_id": c.experiment_id, "sample_rate": c.sample_rate, "filter_string": c.filter_string}
            for c in self.online_scoring_configs([s["scorer_id"] for s in scorers])
        ]
        return scorer_records(experiment_ids, scorers, versions, configs)

    # MLflow's API writes a default label schema into each experiment whose schemas it lists: an export over REST
    # never lists them, and reads by ID the schemas that the experiments' review queues ask.
    reads_every_label_schema = False

    def label_schemas(self, experiment_ids: list[str]) -> list[dict]:
        """The label schemas that review queues of these active experiments ask, as ``label_schemas`` rows by experiment,
        then creation time."""
        from mlflow.store.tracking.dbmodels.models import _input_to_dict

        rows = []
        for experiment_id in experiment_ids:
            queues = _paged(self.store.list_review_queues, experiment_id=experiment_id, max_results=PAGE_SIZE)
            for schema_id in sorted({s for queue in queues for s in queue.schema_ids}):
                schema = self.store.get_label_schema(schema_id)
                input_type, input_config = _input_to_dict(schema.input)
                rows.append({
                    "schema_id": schema.schema_id, "experiment_id": experiment_id, "name": schema.name,
                    "type": str(schema.type), "input_type": input_type, "input_config_json": input_config,
                    "instruction": schema.instruction, "enable_comment": schema.enable_comment,
                    "created_by": schema.created_by, "created_time": schema.created_at,
                    "last_update_time": schema.updated_at, "is_default": schema.is_default,
                })
        return by_experiment_then_time(experiment_ids, rows, "created_time", "schema_id")

    def issues(self, experiment_ids: list[str]) -> list[dict]:
        """The issues of these experiments (``issue_records``); their category index as MLflow computes it from the
        categories (one per distinct trimmed, lower-cased category, the last spelling kept)."""
        from mlflow.utils.issue_utils import issue_category_hash

        issues = [
            # metadata by key: a REST answer's map has no order
            issue_fields({**{c: getattr(issue, c) for c in ISSUE_COLUMNS}, "metadata": dict(sorted((issue.metadata or {}).items()))})
            for experiment_id in experiment_ids
            for issue in _paged(self.store.search_issues, experiment_id=experiment_id, max_results=PAGE_SIZE)
        ]
        categories = [
            {"issue_id": row["issue_id"], "category_hash": category_hash, "category": category}
            for row in issues
            for category_hash, category in {issue_category_hash(c): c for c in row["categories"] or []}.items()
        ]
        return issue_records(experiment_ids, issues, categories)

    def check_artifacts(self, experiments: list[Experiment]) -> None:
        """Stop before anything is written if the files of these experiments cannot be read (a database source)."""

    def uncarried(self, experiments: list[Experiment], whole: bool) -> list[Uncarried]:
        """What the server holds that the archive does not carry (coverage.py); a local file store holds nothing more.

        A deleted experiment's kinds are not asked for: MLflow refuses to list them (the database path counts them).
        """
        if not self.uri.startswith(("http://", "https://")):
            return []
        active = [e.experiment_id for e in experiments if e.lifecycle_stage == LifecycleStage.ACTIVE]
        return uncarried_over_rest(self._listed, active, whole)

    def _listed(self, method: str, path: str, arguments: dict):
        """A list endpoint's JSON answer; None where the server has no such endpoint, else the refusal's HTTP status."""
        get = method == "GET"
        response = self._request(method, path, None if get else arguments, arguments if get else None)
        if response is None:
            return None
        if response.ok:
            try:
                return response.json()
            except ValueError:
                return response.status_code
        served = response.status_code not in NO_SUCH_ENDPOINT and not _FEATURE_OFF.search(response.text[:500])
        return response.status_code if served else None

    def close(self) -> None:
        """Release what the source holds open (a database source's snapshot)."""

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

    def metric_histories(self, run_ids: list[str]) -> Iterator[tuple[str, str, "pa.Table"]] | None:
        """Every history of these runs in one pass, where the source can read them so (a database source, in
        ``database_source.py``); None here: runs.py reads them key by key with the two calls below."""
        return None

    def model_inputs(self, run_ids: list[str]) -> dict[str, list[str]] | None:
        """The logged models each run took as input, where the source can read them for many runs at once (a
        database source); None here: MLflow's run search leaves them out, so ``run_model_inputs`` reads run by run."""
        return None

    def run_model_inputs(self, run_id: str) -> list[str]:
        run = self.run(run_id)
        return [m.model_id for m in run.inputs.model_inputs] if run and run.inputs else []

    def bulk_metric_histories(self, run_ids: list[str], key: str) -> tuple[dict[str, list[Metric]], list[str]]:
        """Full histories of one key for up to BULK_HISTORY_RUNS runs, in as few requests as the limits allow.

        Returns the histories read, and the runs whose history must be read with ``metric_history``:
        all of them on a store that is not an HTTP server or has no bulk endpoint (older or other hosts),
        a run whose history alone fills an answer (it may go on), and a run with a value the JSON did not carry
        as a number (MLflow's server writes NaN and ±infinity as JSON's non-standard literals, which Python reads). An answer is sorted by run: when it is full, every run in it but the last is whole.
        """
        histories: dict[str, list[Metric]] = {}
        pending, paged = list(run_ids), []
        while pending and self._bulk_history:
            points = with_retries(self._bulk_history_answer, pending, key)
            if points is None:
                break
            by_run: dict[str, list[dict]] = {}
            for point in points:
                by_run.setdefault(point["run_id"], []).append(point)
            if len(points) < BULK_HISTORY_POINTS:
                whole = set(pending)
            else:
                last = points[-1]["run_id"]
                whole = set(by_run) - {last}
                if not whole:
                    paged.append(last)
                    whole = {last}
                    by_run.pop(last)
            for run_id in whole:
                history = by_run.get(run_id, [])
                if all(type(p.get("value")) in (float, int) for p in history):
                    histories[run_id] = [Metric(key, float(p["value"]), p["timestamp"], p["step"]) for p in history]
                elif run_id not in paged:
                    paged.append(run_id)
            pending = [r for r in pending if r not in whole]
        return histories, paged + pending

    @functools.cached_property
    def _bulk_history(self) -> bool:
        """Whether to try the bulk endpoint: an HTTP server that has not answered 404 for it (yet)."""
        return self.uri.startswith(("http://", "https://"))

    def _bulk_history_answer(self, run_ids: list[str], key: str) -> list[dict] | None:
        """The points of one bulk request, sorted by run; None where the server has no such endpoint or refuses it."""
        import requests
        from mlflow.utils.rest_utils import http_request

        response = http_request(
            self.store.get_host_creds(), BULK_HISTORY, "GET",
            params={"run_id": run_ids, "metric_key": key, "max_results": BULK_HISTORY_POINTS}, raise_on_status=False,
        )
        if response.status_code >= 500:
            raise requests.exceptions.HTTPError(f"{response.status_code} on {BULK_HISTORY}", response=response)
        if response.status_code == 404:
            self._bulk_history = False  # not there: every later history goes the paged way at once
        if response.status_code != 200:
            return None
        try:
            return response.json()["metrics"]
        except (ValueError, KeyError, TypeError):
            return None

    def download_uri(self, artifact_uri: str, destination: Path) -> Path:
        """Download everything under an artifact URI; a location that holds no files gives an empty folder.

        Going by URI (known from the run or model listing) saves the lookup a run-ID download makes.
        """
        repository = _artifact_repository(artifact_uri, self.uri)
        # One listing per folder and one request per file: MLflow's download_artifacts would list the
        # root twice, and a folder's (or file's) path once more before it.
        root = destination.resolve()
        downloads, folders = [], [""]
        while folders:
            for entry in repository.list_artifacts(folders.pop()):
                local = (root / entry.path).resolve()
                if not local.is_relative_to(root):
                    raise SourceError(f"the artifact listing of {artifact_uri} names a path outside it: {entry.path!r}")
                if entry.is_dir:
                    local.mkdir(parents=True, exist_ok=True)
                    folders.append(entry.path)
                else:
                    local.parent.mkdir(parents=True, exist_ok=True)
                    downloads.append(repository.thread_pool.submit(repository._download_file, entry.path, str(local)))
        for download in downloads:
            download.result()
        return destination

    def download_version(self, name: str, version: str, destination: Path) -> Path:
        # Resolved here, not as models:/NAME/VERSION, which would ask the process-wide registry.
        return self.download_uri(self.client.get_model_version_download_uri(name, version), destination)

    def runs_by_id(self, experiment_ids: list[str], run_ids: list[str], include_deleted: bool) -> Iterator[Run]:
        return self.runs(experiment_ids, _run_ids_filter(run_ids), include_deleted)

    def run(self, run_id: str) -> Run | None:
        try:
            return self.client.get_run(run_id)
        except MlflowException:
            return None

    def logged_model(self, model_id: str) -> LoggedModel | None:
        try:
            return self.client.get_logged_model(model_id)
        except MlflowException:
            return None

    def logged_models(self, experiment_ids: list[str]) -> Iterator[LoggedModel]:
        return _paged(self.client.search_logged_models, experiment_ids=experiment_ids, max_results=100)

    def registered_models(self) -> Iterator[RegisteredModel]:
        """Registered models, prompts excluded (they are registered models with a marker tag)."""
        for model in _paged(self.client.search_registered_models, max_results=PAGE_SIZE):
            if not model._is_prompt():  # ``tags`` hide the marker; the search leaves prompts out already
                yield model

    def prompts(self) -> Iterator[RegisteredModel]:
        """Prompts: the registered models that carry the prompt marker tag."""
        return _paged(self.client.search_registered_models, filter_string=PROMPT_FILTER, max_results=PAGE_SIZE)

    def prompt(self, name: str) -> RegisteredModel | None:
        found = self.client.search_registered_models(filter_string=f"{_name_filter(name)} AND {PROMPT_FILTER}")
        return found[0] if found else None

    def dataset_experiment_ids(self, dataset_id: str) -> list[str]:
        return self.store.get_dataset_experiment_ids(dataset_id)

    def dataset_records(self, dataset_id: str) -> Iterator[list[DatasetRecord]]:
        """Pages of a dataset's records in the store's order (creation time, then record ID).

        ``_load_dataset_records`` is the store method behind the REST records endpoint, the only paged read.
        """
        token = None
        while True:
            records, token = self.store._load_dataset_records(dataset_id, max_results=RECORDS_PAGE_SIZE, page_token=token)
            yield records
            if not token:
                return

    # -- Traces

    def traces(self, experiment_id: str, filter_string: str) -> Iterator[TraceInfo]:
        """Trace infos of one experiment, oldest first, page by page."""
        search = self._search_traces_v2 if self.v2_traces else self.store.search_traces
        token = None
        while True:
            infos, token = search(
                experiment_ids=[experiment_id], filter_string=filter_string, max_results=TRACE_PAGE_SIZE,
                order_by=["timestamp_ms ASC", "request_id ASC"], page_token=token,
            )
            yield from infos
            if not token:
                return

    def _search_traces_v2(self, experiment_ids: list[str], filter_string: str, max_results: int, order_by: list[str], page_token: str | None):
        # MLflow's client falls back to this endpoint too, but reads its answer as V3 trace infos.
        from mlflow.protos.service_pb2 import SearchTraces

        request = SearchTraces(
            experiment_ids=experiment_ids, filter=filter_string, max_results=max_results, order_by=order_by, page_token=page_token
        )
        response = self.store._call_endpoint(SearchTraces, message_to_json(request))
        return [TraceInfoV2.from_proto(t).to_v3() for t in response.traces], response.next_page_token or None

    def trace_infos(self, trace_ids: list[str]) -> list[TraceInfo]:
        if not self.v2_traces:
            return super().trace_infos(trace_ids)
        found = []
        for trace_id in trace_ids:  # no batch read in the V2 API
            try:
                found.append(self.trace_info(trace_id))
            except MlflowException as exc:
                if exc.error_code != "RESOURCE_DOES_NOT_EXIST":
                    raise
        return found

    def traces_of_run(self, experiment_id: str, run_id: str) -> Iterator[TraceInfo]:
        """Traces of an experiment that name the run in their metadata or are linked to it."""
        return self.traces(experiment_id, f"attributes.run_id = '{run_id}'")

    def traces_with_spans(self, trace_ids: list[str]) -> list[Trace]:
        """Traces whose spans the server reads (tracking store or trace archive), at most 10 per call."""
        return self.store.batch_get_traces(trace_ids)

    def trace_with_spans(self, trace_id: str) -> Trace:
        """One trace as it is, even with no span or some spans missing (batch reads leave those out)."""
        return self.store.get_trace(trace_id, allow_partial=True)

    def trace_info(self, trace_id: str) -> TraceInfo:
        """One trace's info with its assessments (search results may leave them out)."""
        if self.v2_traces:  # MLflow's own V3 call goes to a path a 2.x server answers with HTTP 500
            from mlflow.protos.service_pb2 import GetTraceInfo

            response = self.store._call_endpoint(
                GetTraceInfo, message_to_json(GetTraceInfo(request_id=trace_id)), endpoint=f"{V2_TRACES_SEARCH}/{quote(trace_id, safe='')}/info"
            )
            return TraceInfoV2.from_proto(response.trace_info).to_v3()
        return self.store.get_trace_info(trace_id)

    def trace_artifact_data(self, trace_info: TraceInfo) -> TraceData:
        """Spans kept as the trace's ``traces.json`` artifact."""
        return TraceData.from_dict(_trace_repository(trace_info, self.uri).download_trace_data())


def _trace_repository(trace_info: TraceInfo, tracking_uri: str):
    # Resolved against this endpoint's server: MLflow's own helper would ask the process-wide one.
    return get_artifact_repository(get_artifact_uri_for_trace(trace_info), tracking_uri=tracking_uri)


def _run_ids_filter(run_ids: list[str]) -> str:
    return "attributes.run_id IN ({})".format(", ".join(f"'{r}'" for r in run_ids))


def _name_filter(name: str) -> str:
    return f'name="{name}"' if "'" in name else f"name='{name}'"


def _dataset_name_filter(name: str | None) -> str | None:
    if name is None:
        return None
    if '"' not in name:
        return f'name = "{name}"'
    return "name = '{}'".format(name.replace("'", "''"))


class TrackingDestination(_Endpoint):
    """Writes to a tracking server with batch calls."""

    def __init__(self, tracking_uri: str | None, artifacts_destination: str | None = None) -> None:
        super().__init__(tracking_uri)
        self.artifact_root = self._artifact_root(artifacts_destination)

    def _artifact_root(self, artifacts_destination: str | None) -> str | None:
        """Where a database or file store puts the artifacts of the experiments it creates; None for a server.

        MLflow's own default for a local store is ``./mlruns`` of the working folder, which an import
        run from anywhere would scatter; ``--artifacts-destination`` names the place instead.
        """
        if self.uri.startswith(("http://", "https://")):
            if artifacts_destination:
                raise SourceError(
                    f"--artifacts-destination is for a database or file-store destination; the tracking server at "
                    f"{redact_uri(self.uri)} keeps artifacts where it was started to keep them, so leave the option out."
                )
            return None
        store = self.store._target
        if artifacts_destination:
            from mlflow.utils.uri import resolve_uri_if_local

            store.artifact_root_uri = resolve_uri_if_local(artifacts_destination)
        return getattr(store, "artifact_root_uri", None)

    def create_webhook(self, row: dict, secret: str | None, status: str) -> Webhook:
        from mlflow.entities.webhook import WebhookEvent  # MLflow 3.3+

        events = [WebhookEvent(e["entity"], e["action"]) for e in row["events"]]
        return self.client.create_webhook(row["name"], row["url"], events, row["description"], secret, status)

    def register_scorer(self, experiment_id: str, name: str, definition: str) -> ScorerVersion:
        """The scorer's next version (its highest number plus one)."""
        return self.store.register_scorer(experiment_id, name, definition)

    def delete_scorer_version(self, experiment_id: str, name: str, version: int) -> None:
        self.store.delete_scorer(experiment_id, name, version)

    def upsert_online_scoring_config(self, experiment_id: str, name: str, sample_rate: float, filter_string: str | None) -> None:
        self.store.upsert_online_scoring_config(experiment_id, name, sample_rate, filter_string)

    def create_label_schema(self, row: dict, experiment_id: str):
        """The archive's label schema in that experiment; MLflow gives it its own ID, times and creator."""
        from mlflow.store.tracking.dbmodels.models import _input_from_dict

        return self.store.create_label_schema(
            experiment_id, name=row["name"], type=row["type"],
            input=_input_from_dict(row["input_type"], json.loads(row["input_config_json"])),
            instruction=row["instruction"], enable_comment=row["enable_comment"],
        )

    def label_schema_by_name(self, experiment_id: str, name: str):
        return _unless_missing(lambda: self.store.get_label_schema_by_name(experiment_id, name), None)

    def create_issue(self, row: dict, experiment_id: str, source_run_id: str | None) -> Issue:
        """The archive's issue under its own ID, in that experiment; MLflow sets its times (``last_seen_timestamp``
        excepted) and its last updater (the creator)."""
        return self.store.create_issue(
            experiment_id, row["name"], row["description"], row["status"], row["severity"], row["root_causes"],
            source_run_id, row["categories"], row["created_by"], issue_id=row["issue_id"],
            last_seen_timestamp=row["last_seen_timestamp"],
            metadata={kv["key"]: kv["value"] for kv in row["metadata"] or []} or None,
        )

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
        return self._runs(experiment_ids, f"tags.`{tag_key}` LIKE '%'")

    def runs_with_ids(self, experiment_ids: list[str], run_ids: list[str]) -> Iterator[Run]:
        """Those of the runs (deleted ones too) that exist in these experiments."""
        return self._runs(experiment_ids, _run_ids_filter(run_ids))

    def _runs(self, experiment_ids: list[str], filter_string: str) -> Iterator[Run]:
        return _paged(
            self.client.search_runs, experiment_ids=experiment_ids, filter_string=filter_string,
            run_view_type=ViewType.ALL, max_results=PAGE_SIZE,
        )

    def every_logged_model(self, experiment_ids: list[str]) -> Iterator[LoggedModel]:
        return _paged(self.client.search_logged_models, experiment_ids=experiment_ids, max_results=100)

    def create_run(
        self, experiment_id: str, start_time: int | None, run_name: str | None, tags: dict[str, str], user_id: str | None = None
    ) -> Run:
        # The store call: the client would take the user from an `mlflow.user` tag, adding one the source may not have.
        return self.store.create_run(
            experiment_id=experiment_id,
            user_id=user_id or "unknown",
            start_time=start_time or int(time.time() * 1000),
            tags=[RunTag(k, v) for k, v in tags.items()],
            run_name=run_name,
        )

    def create_holder_run(self, experiment_name: str, run_name: str, tags: dict[str, str]) -> Run:
        """A finished run in ``experiment_name`` (created if needed) that holds files for the registry."""
        experiment = self.client.get_experiment_by_name(experiment_name)
        experiment_id = experiment.experiment_id if experiment else self.client.create_experiment(experiment_name)
        run = self.create_run(experiment_id, None, run_name, tags)
        self.finish_run(run.info.run_id, "FINISHED", None)
        return run

    def log_batch(
        self, run_id: str, metrics: list[Metric] = (), params: list[Param] = (), tags: list[RunTag] = ()
    ) -> None:
        self.client.log_batch(run_id, metrics=metrics, params=params, tags=tags)

    def log_inputs(self, run_id: str, datasets: list[DatasetInput]) -> None:
        self.client.log_inputs(run_id, datasets=datasets)

    def log_artifacts(self, artifact_uri: str, local_dir: Path, artifact_path: str | None = None) -> None:
        """Upload a folder under a run's or logged model's artifact URI."""
        _artifact_repository(artifact_uri, self.uri).log_artifacts(str(local_dir), artifact_path)

    def finish_run(self, run_id: str, status: str, end_time: int | None) -> None:
        if status == RunStatus.to_string(RunStatus.RUNNING):
            return
        # The store call, not ``set_terminated``: that one re-reads the run and prints its URL to stdout.
        self.store.update_run_info(run_id, RunStatus.from_string(status), end_time, None)

    def delete_run(self, run_id: str) -> None:
        self.client.delete_run(run_id)

    def run_lifecycle_stage(self, run_id: str) -> str:
        return self.client.get_run(run_id).info.lifecycle_stage

    def set_run_tag(self, run_id: str, key: str, value: str) -> None:
        self.client.set_tag(run_id, key, value)

    # -- Logged models

    def create_logged_model(self, experiment_id, name, source_run_id, tags, params, model_type) -> LoggedModel:
        return self.client.create_logged_model(
            experiment_id, name=name, source_run_id=source_run_id, tags=tags, params=params or None, model_type=model_type
        )

    def delete_logged_model(self, model_id: str) -> None:
        self.client.delete_logged_model(model_id)

    def finalize_logged_model(self, model_id: str, status: str) -> None:
        self.client.finalize_logged_model(model_id, LoggedModelStatus(status))

    def set_logged_model_tags(self, model_id: str, tags: dict[str, str]) -> None:
        self.client.set_logged_model_tags(model_id, tags)

    def log_model_inputs(self, run_id: str, models: list[LoggedModelInput]) -> None:
        self.client.log_inputs(run_id, models=models)

    def log_model_outputs(self, run_id: str, models: list[LoggedModelOutput]) -> None:
        self.client.log_outputs(run_id, models)

    # -- Registry

    # Registered models and prompts alike go through the registry client (prompts are registered
    # models with the marker tag ``IS_PROMPT_TAG_KEY`` among ``tags``).

    def create_registered_model(self, name: str, tags: dict[str, str], description: str | None) -> None:
        self.registry.create_registered_model(name, tags=tags, description=description)

    def delete_registered_model(self, name: str) -> None:
        self.registry.delete_registered_model(name)

    def set_registered_model_tags(self, name: str, tags: dict[str, str]) -> None:
        for key, value in tags.items():
            self.registry.set_registered_model_tag(name, key, value)

    def create_prompt_version(self, name: str, tags: dict[str, str], description: str | None) -> str:
        """A prompt version (``tags`` hold the prompt marker): MLflow's placeholder source, no run or logged model."""
        return self.registry.create_model_version(
            name, _CLIENT_PROMPT_SOURCE_PLACEHOLDER, tags=tags, description=description, await_creation_for=0
        ).version

    def delete_model_version_tags(self, name: str, version: str, keys: list[str]) -> None:
        for key in keys:
            self.registry.delete_model_version_tag(name, version, key)

    @property
    def takes_any_source(self) -> bool:
        """A database or file store: MLflow's store writes a version with whatever source it is given, where a
        server refuses one outside its artifacts."""
        return not self.uri.startswith(("http://", "https://"))

    def artifact_locations(self, run_id: str | None, model_id: str | None) -> tuple[str, ...]:
        """The artifact URIs of a run and of a logged model, either of which may be None."""
        run = self.client.get_run(run_id).info.artifact_uri if run_id else None
        model = self.client.get_logged_model(model_id).artifact_location if model_id else None
        return tuple(uri for uri in (run, model) if uri)

    def create_model_version(self, name, source, run_id, model_id, tags, description, run_link) -> str:
        return self.client.create_model_version(
            name, source, run_id=run_id, tags=tags, run_link=run_link, description=description,
            await_creation_for=0, model_id=model_id,
        ).version

    def delete_model_version(self, name: str, version: str) -> None:
        self.registry.delete_model_version(name, version)

    def transition_stage(self, name: str, version: str, stage: str) -> None:
        with warnings.catch_warnings():  # stages are deprecated, but they are the source's data
            warnings.simplefilter("ignore", FutureWarning)
            self.client.transition_model_version_stage(name, version, stage, archive_existing_versions=False)

    def set_alias(self, name: str, alias: str, version: str) -> None:
        self.registry.set_registered_model_alias(name, alias, version)

    # -- Evaluation datasets: store calls, since the client would add the importing user as a tag

    def create_evaluation_dataset(self, name: str, tags: dict[str, str], experiment_ids: list[str]) -> EvaluationDataset:
        return self.store.create_dataset(name=name, tags=tags, experiment_ids=experiment_ids)

    def delete_evaluation_dataset(self, dataset_id: str) -> None:
        self.store.delete_dataset(dataset_id)

    def set_evaluation_dataset_tags(self, dataset_id: str, tags: dict[str, str]) -> None:
        self.store.set_dataset_tags(dataset_id, tags)

    def upsert_dataset_records(self, dataset_id: str, records: list[dict]) -> None:
        self.store.upsert_dataset_records(dataset_id, records)

    # -- Traces

    def link_traces_to_run(self, trace_ids: list[str], run_id: str) -> None:
        self.store.link_traces_to_run(trace_ids, run_id)

    def link_prompts_to_trace(self, trace_id: str, prompt_versions: list[PromptVersion]) -> None:
        # The store call: the client's resolves through the process-wide tracking URI.
        self.store.link_prompts_to_trace(trace_id, prompt_versions)

    def start_trace(self, trace_info: TraceInfo) -> TraceInfo:
        return self.store.start_trace(trace_info)

    def log_spans(self, experiment_id: str, spans: list[Span]) -> None:
        self.store.log_spans(experiment_id, spans)

    def upload_trace_data(self, trace_info: TraceInfo, data: TraceData) -> None:
        text = json.dumps(data.to_dict(), cls=TraceJSONEncoder, ensure_ascii=False)
        _trace_repository(trace_info, self.uri).upload_trace_data(text)

    def create_assessment(self, assessment: Assessment) -> None:
        self.store.create_assessment(assessment)

    def set_trace_tag(self, trace_id: str, key: str, value: str) -> None:
        self.store.set_trace_tag(trace_id, key, value)

    def delete_traces(self, experiment_id: str, trace_ids: list[str]) -> None:
        self.client.delete_traces(experiment_id, trace_ids=trace_ids)
