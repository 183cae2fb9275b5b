"""What a source holds that no archive kind carries: named in the export's summary, never dropped in silence.

A database is checked table by table. Every table is either carried by a kind of the archive
(``CARRIED_TABLES``), deliberately left out (``LEFT_OUT``: data MLflow derives again from what is carried,
the schema revision, the job runner's state), or checked for rows: a table with rows that MLflow did not
write by itself (``SEEDED``) is named under the kind it belongs to (``UNCARRIED_KINDS``), or under its own
name when this code does not know it (a newer MLflow's table). So a kind a future MLflow adds is named,
not lost, until the archive carries it.

Over REST the check asks, for each kind the archive does not carry, the server's list endpoint for its
first page; a server without the endpoint (an older MLflow) has no such objects. Kinds whose list
endpoint needs an experiment are asked once per exported experiment.
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa

# Tables whose rows travel in the archive (the kinds of ``archive.SECTIONS``).
CARRIED_TABLES = frozenset({
    "experiments", "experiment_tags",
    "runs", "tags", "params", "metrics", "datasets", "inputs", "input_tags",
    "logged_models", "logged_model_metrics", "logged_model_params", "logged_model_tags",
    "registered_models", "registered_model_tags", "registered_model_aliases", "model_versions", "model_version_tags",
    "trace_info", "trace_tags", "trace_request_metadata", "assessments", "spans",
    "evaluation_datasets", "evaluation_dataset_tags", "evaluation_dataset_records",
    "entity_associations",
    "webhooks", "webhook_events",
    "scorers", "scorer_versions", "online_scoring_configs",
    "label_schemas", "issues", "issue_categories",
})

# Tables deliberately not carried, with the reason (README: "What is deliberately left out").
LEFT_OUT = {
    "alembic_version": "the schema revision: recorded in the header, and the destination keeps its own",
    "latest_metrics": "derived from the metric histories, which are carried",
    "trace_metrics": "derived by MLflow from the spans when they are written",
    "span_metrics": "derived by MLflow from the spans when they are written",
    "sql_trace_metric_daily_rollups": "trace analytics rollups, rebuilt by MLflow from the traces",
    "sql_span_cost_daily_rollups": "trace analytics rollups, rebuilt by MLflow from the traces",
    "sql_assessment_daily_rollups": "trace analytics rollups, rebuilt by MLflow from the traces",
    "sql_trace_rollup_rebuild_queue": "the queue of rollups to rebuild",
    "job_locks": "locks of the server's job runner",
    "scheduler_leases": "leases of the server's job scheduler",
    "jobs": "the server's job runner state: a finished job is a log of work already done, a running one cannot move",
}

# Kinds MLflow keeps that the archive does not carry yet, by the tables that hold them.
UNCARRIED_KINDS = {
    "gateway": (
        "secrets", "model_definitions", "endpoints", "endpoint_model_mappings", "endpoint_tags",
        "endpoint_bindings", "budget_policies", "guardrails", "guardrail_configs",
    ),
    "review_queues": ("review_queues", "review_queue_users", "review_queue_label_schemas", "review_queue_items"),
    "mcp_servers": (
        "mcp_servers", "mcp_server_versions", "mcp_server_tags", "mcp_server_version_tags", "mcp_server_aliases",
        "mcp_access_endpoints",
    ),
    "skills": ("skills", "skill_versions", "skill_tags", "skill_version_tags", "skill_aliases"),
    "workspaces": ("workspaces",),
}
KIND_OF_TABLE = {table: kind for kind, tables in UNCARRIED_KINDS.items() for table in tables}

DEFAULT_WORKSPACE = "default"  # MLflow's workspace for everything on a server without workspaces

# Rows MLflow writes by itself, which a destination writes again: (column, value) rows that are not counted.
SEEDED = {
    "workspaces": ("name", DEFAULT_WORKSPACE),  # every database has it
}


@dataclass
class Uncarried:
    """One kind the source holds and the archive does not carry, and what was seen of it."""

    kind: str
    seen: str  # e.g. "3 rows in skill_versions, skills", or "found by GET /api/3.0/mlflow/skills"

    def sentence(self) -> str:
        return f"{self.kind}: not exported, the archive has no kind for them yet ({self.seen})"


def uncarried_in_database(conn: sa.Connection, experiment_ids: list[str], whole: bool) -> list[Uncarried]:
    """The kinds and unknown tables of this database with rows that the archive does not carry.

    ``whole``: the export took everything. Else only rows of the exported experiments (``experiment_ids``)
    count, in the tables that name an experiment: what belongs to no experiment was not asked for.
    """
    inspector = sa.inspect(conn)
    rows: dict[str, dict[str, int]] = {}
    for table in sorted(inspector.get_table_names()):
        if table in CARRIED_TABLES or table in LEFT_OUT:
            continue
        count = _counted_rows(conn, inspector, table, None if whole else experiment_ids)
        if count:
            rows.setdefault(KIND_OF_TABLE.get(table, f"table {table}"), {})[table] = count
    return [Uncarried(kind, f"{_rows(sum(tables.values()))} in {', '.join(tables)}") for kind, tables in sorted(rows.items())]


def _rows(n: int) -> str:
    return f"{n} row" if n == 1 else f"{n} rows"


def _counted_rows(conn: sa.Connection, inspector, table: str, experiment_ids: list[str] | None) -> int:
    columns = {c["name"] for c in inspector.get_columns(table)}
    query = sa.select(sa.func.count()).select_from(sa.table(table))
    if experiment_ids is not None:
        if "experiment_id" not in columns:
            return 0
        query = query.where(sa.column("experiment_id").in_([int(e) for e in experiment_ids]))
    seeded = SEEDED.get(table)
    if seeded and seeded[0] in columns:
        column, value = seeded
        query = query.where(sa.column(column) != sa.literal(value))
    return conn.execute(query).scalar() or 0


# Over REST: (kind, method, path, query or body, per experiment) of each kind's list endpoint.
LIST_ENDPOINTS = (
    ("gateway", "GET", "/api/3.0/mlflow/gateway/secrets/list", {}, False),
    ("gateway", "GET", "/api/3.0/mlflow/gateway/model-definitions/list", {}, False),
    ("gateway", "GET", "/api/3.0/mlflow/gateway/endpoints/list", {}, False),
    ("gateway", "GET", "/api/3.0/mlflow/gateway/budgets/list", {}, False),
    ("gateway", "GET", "/api/3.0/mlflow/gateway/guardrails/list", {}, False),
    ("review_queues", "GET", "/api/3.0/mlflow/review-queues/list", {"max_results": 1}, True),
    ("mcp_servers", "GET", "/api/3.0/mlflow/mcp-servers", {"max_results": 1}, False),
    ("skills", "GET", "/api/3.0/mlflow/skills", {"max_results": 1}, False),
    ("workspaces", "GET", "/api/3.0/mlflow/workspaces", {}, False),
)


def uncarried_over_rest(request, experiment_ids: list[str], whole: bool) -> list[Uncarried]:
    """The kinds a server answers objects of that the archive does not carry.

    ``request(method, path, query_or_body)`` returns the parsed JSON answer, None when the server has no
    such endpoint (an older MLflow, or a feature it was not started with), or an int: the HTTP status of
    any other refusal. ``experiment_ids`` and ``whole`` as for ``uncarried_in_database``: kinds that belong to
    an experiment are asked for per exported experiment, the others only when the export took everything.
    """
    found: dict[str, str] = {}
    for kind, method, path, arguments, per_experiment in LIST_ENDPOINTS:
        if kind in found or not (whole or per_experiment):
            continue
        for experiment_id in experiment_ids if per_experiment else [None]:
            answer = request(method, path, {**arguments, "experiment_id": experiment_id} if experiment_id else arguments)
            where = f" of experiment {experiment_id}" if experiment_id else ""
            if isinstance(answer, int):
                found[kind] = f"not checked: {method} {path}{where} answered HTTP {answer}"
                break
            if _holds_objects(kind, answer):
                found[kind] = f"found by {method} {path}{where}"
                break
    return [Uncarried(kind, seen) for kind, seen in sorted(found.items())]


def _holds_objects(kind: str, answer) -> bool:
    """Whether a list answer holds objects: any non-empty list in it, the default workspace not counted."""
    if not isinstance(answer, dict):
        return False
    for value in answer.values():
        if isinstance(value, list):
            if kind == "workspaces":
                value = [w for w in value if not (isinstance(w, dict) and w.get("name") == DEFAULT_WORKSPACE)]
            if value:
                return True
    return False
