"""Arrow schemas of every table an archive can hold.

This module is the single source of the table definitions. ``formats/SCHEMAS.md``
is generated from it (``python -m mlflow_archive.schemas``) and a test keeps the
two identical, so the normative spec and the code cannot drift apart.

Conventions, shared by every table:
- times are int64 milliseconds since the Unix epoch (UTC), except span times,
  which are nanoseconds as OpenTelemetry records them;
- ``*_json`` columns hold UTF-8 JSON text;
- ``key_value`` lists keep MLflow's string-to-string maps (tags, params,
  metadata) in the order the source returned them.
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

KEY_VALUE = pa.list_(
    pa.struct([pa.field("key", pa.string(), False), pa.field("value", pa.string(), True)])
)
ALIASES = pa.list_(
    pa.struct([pa.field("alias", pa.string(), False), pa.field("version", pa.int64(), False)])
)
WEBHOOK_EVENTS = pa.list_(
    pa.struct([pa.field("entity", pa.string(), False), pa.field("action", pa.string(), False)])
)

PARQUET = "parquet"
ARROW_STREAM = "arrows"


@dataclass(frozen=True)
class Table:
    name: str
    storage: str  # PARQUET or ARROW_STREAM: decides the member's file extension
    doc: str
    schema: pa.Schema


def _table(name: str, storage: str, doc: str, *columns: tuple) -> Table:
    fields = [
        pa.field(col_name, col_type, nullable, metadata={"doc": col_doc})
        for col_name, col_type, nullable, col_doc in columns
    ]
    return Table(name, storage, doc, pa.schema(fields))


S, I64, F64, B = pa.string(), pa.int64(), pa.float64(), pa.bool_()
REQ, OPT = False, True

TABLES: dict[str, Table] = {
    t.name: t
    for t in [
        _table(
            "experiments", PARQUET, "One row per experiment.",
            ("experiment_id", S, REQ, "Source experiment ID."),
            ("name", S, REQ, "Experiment name."),
            ("artifact_location", S, OPT, "Source artifact root, informational."),
            ("lifecycle_stage", S, REQ, "`active` or `deleted`."),
            ("creation_time", I64, OPT, "Creation time (ms)."),
            ("last_update_time", I64, OPT, "Last update time (ms)."),
            ("tags", KEY_VALUE, REQ, "Experiment tags, `mlflow.note.content` (description) included."),
        ),
        _table(
            "runs", PARQUET, "One row per run.",
            ("run_id", S, REQ, "Source run ID."),
            ("experiment_id", S, REQ, "Source experiment ID; its experiment precedes the run."),
            ("run_name", S, OPT, "Run name."),
            ("user_id", S, OPT, "User who created the run."),
            ("status", S, REQ, "`RUNNING`, `SCHEDULED`, `FINISHED`, `FAILED` or `KILLED`."),
            ("start_time", I64, OPT, "Start time (ms)."),
            ("end_time", I64, OPT, "End time (ms), null while running."),
            ("lifecycle_stage", S, REQ, "`active` or `deleted`."),
            ("artifact_uri", S, OPT, "Source artifact URI, informational."),
        ),
        _table(
            "run_params", PARQUET, "One row per run parameter.",
            ("run_id", S, REQ, "Source run ID."),
            ("key", S, REQ, "Parameter name."),
            ("value", S, REQ, "Parameter value, any length the source accepted."),
        ),
        _table(
            "run_tags", PARQUET, "One row per run tag, system tags (`mlflow.*`) included.",
            ("run_id", S, REQ, "Source run ID."),
            ("key", S, REQ, "Tag key."),
            ("value", S, OPT, "Tag value."),
        ),
        _table(
            "run_metrics", PARQUET,
            "Full metric history: one row per logged point, grouped by run and key, each key's points "
            "sorted by step, then timestamp. "
            "Links of points to logged models and datasets are in `logged_model_metrics`.",
            ("run_id", S, REQ, "Source run ID."),
            ("key", S, REQ, "Metric name."),
            ("value", F64, REQ, "IEEE 754 double; NaN, +inf and -inf are stored as such."),
            ("timestamp", I64, REQ, "Time the point was logged (ms)."),
            ("step", I64, REQ, "Step."),
        ),
        _table(
            "run_inputs", PARQUET, "Dataset inputs of runs, one row per (run, dataset).",
            ("run_id", S, REQ, "Source run ID."),
            ("name", S, REQ, "Dataset name."),
            ("digest", S, REQ, "Dataset digest."),
            ("source_type", S, REQ, "Dataset source type, e.g. `local`, `http`, `code`."),
            ("source", S, REQ, "Dataset source, JSON text as MLflow stores it."),
            ("schema", S, OPT, "Dataset schema, JSON text as MLflow stores it."),
            ("profile", S, OPT, "Dataset profile, JSON text as MLflow stores it."),
            ("tags", KEY_VALUE, REQ, "Input tags, e.g. `mlflow.data.context`."),
        ),
        _table(
            "run_model_io", PARQUET, "Logged-model inputs and outputs of runs; after the logged models, which they name.",
            ("run_id", S, REQ, "Source run ID."),
            ("direction", S, REQ, "`input` or `output`."),
            ("model_id", S, REQ, "Source logged-model ID."),
            ("step", I64, OPT, "Step of an output; null for inputs."),
        ),
        _table(
            "logged_models", PARQUET, "MLflow 3 logged models, one row each.",
            ("model_id", S, REQ, "Source model ID (`m-...`)."),
            ("experiment_id", S, REQ, "Source experiment ID."),
            ("name", S, REQ, "Model name."),
            ("artifact_location", S, OPT, "Source artifact location, informational."),
            ("creation_timestamp", I64, OPT, "Creation time (ms)."),
            ("last_updated_timestamp", I64, OPT, "Last update time (ms)."),
            ("model_type", S, OPT, "Model type."),
            ("source_run_id", S, OPT, "Source run ID that produced the model."),
            ("status", S, REQ, "`PENDING`, `READY` or `FAILED`."),
            ("status_message", S, OPT, "Status message."),
            ("tags", KEY_VALUE, REQ, "Model tags."),
            ("params", KEY_VALUE, REQ, "Model parameters."),
        ),
        _table(
            "logged_model_metrics", PARQUET, "Metrics of logged models.",
            ("model_id", S, REQ, "Source model ID."),
            ("key", S, REQ, "Metric name."),
            ("value", F64, REQ, "IEEE 754 double."),
            ("timestamp", I64, REQ, "Time (ms)."),
            ("step", I64, REQ, "Step."),
            ("run_id", S, OPT, "Source run the metric was logged in."),
            ("dataset_name", S, OPT, "Dataset name."),
            ("dataset_digest", S, OPT, "Dataset digest."),
        ),
        _table(
            "registered_models", PARQUET, "Registered models (prompts excluded), one row each.",
            ("name", S, REQ, "Model name."),
            ("description", S, OPT, "Description."),
            ("creation_timestamp", I64, OPT, "Creation time (ms)."),
            ("last_updated_timestamp", I64, OPT, "Last update time (ms)."),
            ("tags", KEY_VALUE, REQ, "Model tags."),
            ("aliases", ALIASES, REQ, "Aliases and the version each points to."),
        ),
        _table(
            "model_versions", PARQUET,
            "Model versions; a missing number between 1 and the highest is a deleted version.",
            ("name", S, REQ, "Registered model name."),
            ("version", I64, REQ, "Version number."),
            ("creation_timestamp", I64, OPT, "Creation time (ms)."),
            ("last_updated_timestamp", I64, OPT, "Last update time (ms)."),
            ("description", S, OPT, "Description."),
            ("user_id", S, OPT, "Creator."),
            ("current_stage", S, OPT, "`None`, `Staging`, `Production` or `Archived`."),
            ("source", S, OPT, "Source URI as on the source server."),
            ("run_id", S, OPT, "Source run ID."),
            ("run_link", S, OPT, "Run link."),
            ("status", S, OPT, "`READY`, `PENDING_REGISTRATION` or `FAILED_REGISTRATION`."),
            ("status_message", S, OPT, "Status message."),
            ("model_id", S, OPT, "Source logged-model ID the version points to."),
            ("tags", KEY_VALUE, REQ, "Version tags."),
        ),
        _table(
            "prompts", PARQUET,
            "Prompts of the prompt registry (registered models with the tag `mlflow.prompt.is_prompt` = `true`), one row each.",
            ("name", S, REQ, "Prompt name."),
            ("description", S, OPT, "Description."),
            ("creation_timestamp", I64, OPT, "Creation time (ms)."),
            ("last_updated_timestamp", I64, OPT, "Last update time (ms)."),
            ("tags", KEY_VALUE, REQ,
             "Prompt tags, without `mlflow.prompt.is_prompt`. `_mlflow_experiment_ids` (`,<id>,<id>,`) names source experiment IDs."),
            ("aliases", ALIASES, REQ, "Aliases and the version each points to."),
        ),
        _table(
            "prompt_versions", PARQUET,
            "Prompt versions, after their prompt; a missing number between 1 and the highest is a deleted version.",
            ("name", S, REQ, "Prompt name."),
            ("version", I64, REQ, "Version number."),
            ("template_json", S, REQ,
             "Template: a JSON string (text prompt) or a JSON list of messages (chat prompt), from the version tag `mlflow.prompt.text`."),
            ("response_format_json", S, OPT, "Response format (e.g. a JSON schema), JSON text as in the version tag `_mlflow_prompt_response_format`."),
            ("model_config_json", S, OPT, "Model configuration, JSON text as in the version tag `_mlflow_prompt_model_config`."),
            ("commit_message", S, OPT, "Commit message (the version's description)."),
            ("creation_timestamp", I64, OPT, "Creation time (ms)."),
            ("last_updated_timestamp", I64, OPT, "Last update time (ms)."),
            ("user_id", S, OPT, "Creator."),
            ("tags", KEY_VALUE, REQ,
             "Version tags, without the five that the columns above hold or imply: `mlflow.prompt.is_prompt`, `mlflow.prompt.text`, "
             "`_mlflow_prompt_type`, `_mlflow_prompt_response_format`, `_mlflow_prompt_model_config`. "
             "`mlflow.prompt.associatedRunIds` (comma-separated) names source run IDs."),
        ),
        _table(
            "traces", ARROW_STREAM, "Trace infos, one row per trace.",
            ("trace_id", S, REQ, "Source trace ID."),
            ("experiment_id", S, REQ, "Source experiment ID the trace is located in."),
            ("client_request_id", S, OPT, "Client request ID."),
            ("request_time", I64, REQ, "Start time (ms)."),
            ("execution_duration", I64, OPT, "Duration (ms)."),
            ("state", S, REQ, "`OK`, `ERROR`, `IN_PROGRESS` or `STATE_UNSPECIFIED`."),
            ("request_preview", S, OPT, "Request preview."),
            ("response_preview", S, OPT, "Response preview."),
            ("trace_metadata", KEY_VALUE, REQ, "Trace metadata."),
            ("tags", KEY_VALUE, REQ, "Trace tags."),
            ("linked_run_ids", pa.list_(S), OPT,
             "Source runs of the exported runs that the trace is linked to through MLflow's entity associations "
             "(`link_traces_to_run`), other than the `mlflow.sourceRun` metadata; null when none."),
        ),
        _table(
            "spans", ARROW_STREAM, "Spans of the traces in the same chunk.",
            ("trace_id", S, REQ, "Source trace ID."),
            ("span_id", S, REQ, "Span ID, hex."),
            ("parent_span_id", S, OPT, "Parent span ID, hex; null for the root span."),
            ("name", S, REQ, "Span name."),
            ("start_time_ns", I64, REQ, "Start time (ns)."),
            ("end_time_ns", I64, OPT, "End time (ns)."),
            ("status_code", S, REQ, "`OK`, `ERROR` or `UNSET`."),
            ("status_message", S, OPT, "Status message."),
            ("attributes_json", S, REQ,
             "Span attributes, a JSON object; each value is the attribute as MLflow stores it: a string "
             "holding the value's JSON text (so inputs, outputs and the span type are kept exactly)."),
            ("events_json", S, REQ, "Span events, a JSON list of {name, timestamp_ns, attributes}."),
            ("links_json", S, OPT, "Span links, a JSON list of {trace_id, span_id, attributes}; null when none."),
        ),
        _table(
            "assessments", ARROW_STREAM, "Assessments (feedback and expectations) of traces.",
            ("trace_id", S, REQ, "Source trace ID."),
            ("assessment_id", S, REQ, "Source assessment ID."),
            ("name", S, REQ, "Assessment name."),
            ("kind", S, REQ, "`feedback`, `expectation` or `issue`."),
            ("value_json", S, OPT, "The value, JSON."),
            ("error_json", S, OPT, "Feedback error, JSON."),
            ("source_type", S, REQ, "`HUMAN`, `LLM_JUDGE` or `CODE`."),
            ("source_id", S, OPT, "Source identifier."),
            ("rationale", S, OPT, "Rationale."),
            ("span_id", S, OPT, "Span the assessment is attached to."),
            ("run_id", S, OPT, "Source run ID."),
            ("create_time", I64, OPT, "Creation time (ms)."),
            ("last_update_time", I64, OPT, "Last update time (ms)."),
            ("overrides", S, OPT, "Assessment ID this one overrides."),
            ("valid", B, OPT, "False once overridden."),
            ("metadata", KEY_VALUE, REQ, "Assessment metadata."),
        ),
        _table(
            "evaluation_datasets", PARQUET, "GenAI evaluation datasets (SQL-backed stores only), one row each.",
            ("dataset_id", S, REQ, "Source dataset ID."),
            ("name", S, REQ, "Dataset name."),
            ("digest", S, OPT, "Digest (MLflow derives it from the name and last update time)."),
            ("created_time", I64, OPT, "Creation time (ms)."),
            ("last_update_time", I64, OPT, "Last update time (ms)."),
            ("created_by", S, OPT, "Creator."),
            ("last_updated_by", S, OPT, "Last updater."),
            ("schema_json", S, OPT, "Schema MLflow computed from the records, JSON."),
            ("profile_json", S, OPT, "Profile MLflow computed from the records (e.g. `num_records`), JSON."),
            ("experiment_ids", pa.list_(S), REQ, "Source experiment IDs the dataset is linked to."),
            ("tags", KEY_VALUE, REQ, "Dataset tags."),
        ),
        _table(
            "evaluation_dataset_records", ARROW_STREAM,
            "Records of evaluation datasets, grouped by dataset, each dataset's in the source's order (creation time, then record ID).",
            ("dataset_id", S, REQ, "Source dataset ID."),
            ("record_id", S, REQ, "Source record ID."),
            ("inputs_json", S, REQ, "Inputs, a JSON object."),
            ("outputs_json", S, OPT, "Outputs, any JSON value; null when the record has none."),
            ("expectations_json", S, OPT, "Expectations, a JSON object; null when the record has none."),
            ("source_type", S, OPT, "`HUMAN`, `DOCUMENT`, `TRACE`, `CODE` or `UNSPECIFIED`; null when the record has no source."),
            ("source_id", S, OPT, "Source identifier, which MLflow derives from the source data (`trace_id` for `TRACE`, else `source_id`)."),
            ("created_time", I64, OPT, "Creation time (ms)."),
            ("last_update_time", I64, OPT, "Last update time (ms)."),
            ("created_by", S, OPT, "Creator."),
            ("last_updated_by", S, OPT, "Last updater."),
            ("tags", KEY_VALUE, REQ, "Record tags (a value that is not a string is written as its JSON text)."),
            (
                "source_data_json", S, OPT,
                "The source's data, a JSON object (for `TRACE`: `trace_id`, and `session_id` when the trace had one); "
                "null when the record has no source.",
            ),
        ),
        _table(
            "webhooks", PARQUET, "One row per webhook of the model and prompt registry (deleted ones are not written).",
            ("webhook_id", S, REQ, "Source webhook ID."),
            ("name", S, REQ, "Webhook name."),
            ("description", S, OPT, "Description."),
            ("url", S, REQ, "The URL deliveries are sent to."),
            ("events", WEBHOOK_EVENTS, REQ, "Subscribed events, e.g. `registered_model`/`created`, lower case as MLflow stores them."),
            ("status", S, REQ, "`ACTIVE` or `DISABLED`."),
            ("creation_timestamp", I64, OPT, "Creation time (ms)."),
            ("last_updated_timestamp", I64, OPT, "Last update time (ms)."),
            (
                "encrypted_secret", S, OPT,
                "The signing secret exactly as the source database stores it: a Fernet token under the source server's "
                "`MLFLOW_WEBHOOK_SECRET_ENCRYPTION_KEY`, never the secret itself. Written only by an export from the "
                "database; null when the webhook has no secret, or when the export went through REST (which never "
                "returns secrets) and then `has_secret` is null too.",
            ),
            ("has_secret", B, OPT, "Whether the webhook has a signing secret; null when the source did not say (REST)."),
        ),
        _table(
            "scorers", PARQUET,
            "One row per registered scorer (judge) of an exported experiment, with at least one version; by experiment "
            "(the experiments section's order), then name.",
            ("scorer_id", S, REQ, "Source scorer ID."),
            ("experiment_id", S, REQ, "Source experiment ID; its experiment is in the archive."),
            ("name", S, REQ, "Scorer name, unique within its experiment."),
        ),
        _table(
            "scorer_versions", PARQUET,
            "Versions of the chunk's scorers, by scorer, then version; a missing number between 1 and the highest is a "
            "deleted version.",
            ("scorer_id", S, REQ, "Source scorer ID; its scorer is in the same chunk."),
            ("version", I64, REQ, "Version number, from 1."),
            (
                "serialized_scorer", S, REQ,
                "The scorer as MLflow serializes it, JSON. A judge whose model is a gateway endpoint names it as the "
                "source gave it: by endpoint ID from a database, by endpoint name over REST.",
            ),
            ("creation_time", I64, OPT, "Creation time (ms)."),
        ),
        _table(
            "online_scoring_configs", PARQUET, "Online scoring configurations of the chunk's scorers, by scorer.",
            ("online_scoring_config_id", S, REQ, "Source configuration ID."),
            ("scorer_id", S, REQ, "Source scorer ID; its scorer is in the same chunk."),
            ("experiment_id", S, REQ, "Source experiment ID of the traces it scores (MLflow: the scorer's experiment)."),
            ("sample_rate", F64, REQ, "Fraction of traces scored, 0 to 1."),
            ("filter_string", S, OPT, "Trace filter; null when every trace is eligible."),
        ),
        _table(
            "label_schemas", PARQUET,
            "One row per label schema (a question reviewers answer) of an exported experiment; by experiment (the "
            "experiments section's order), then creation time, then ID.",
            ("schema_id", S, REQ, "Source label schema ID (`ls-...`)."),
            ("experiment_id", S, REQ, "Source experiment ID; its experiment is in the archive."),
            ("name", S, REQ, "Schema name, unique within its experiment; the key of the assessments it asks for."),
            ("type", S, REQ, "`feedback` or `expectation`."),
            ("input_type", S, REQ, "`pass_fail`, `categorical`, `numeric` or `text`."),
            ("input_config_json", S, REQ, "The input's settings, JSON (e.g. `{\"options\": [...], \"multi_select\": false}`)."),
            ("instruction", S, OPT, "Instructions shown to reviewers."),
            ("enable_comment", B, REQ, "Whether reviewers may add a comment."),
            ("created_by", S, OPT, "Who created the schema."),
            ("created_time", I64, REQ, "Creation time (ms)."),
            ("last_update_time", I64, REQ, "Last update time (ms)."),
            (
                "is_default", B, REQ,
                "Whether this is MLflow's default question, which MLflow writes into an experiment by itself: an "
                "importer maps it to the destination's own and never creates it.",
            ),
        ),
        _table(
            "issues", PARQUET,
            "One row per issue of an exported experiment; by experiment (the experiments section's order), then "
            "creation time, then ID.",
            ("issue_id", S, REQ, "Source issue ID (`iss-...`); an import keeps it."),
            ("experiment_id", S, REQ, "Source experiment ID; its experiment is in the archive."),
            ("name", S, REQ, "Issue name."),
            ("description", S, REQ, "Description (may be empty)."),
            ("status", S, REQ, "Status as MLflow names it, e.g. `pending`, `resolved`."),
            ("severity", S, OPT, "Severity as MLflow names it; null when not set."),
            ("root_causes", pa.list_(S), OPT, "Root causes, in order; null when none."),
            ("source_run_id", S, OPT, "Source ID of the run that found the issue (a run of the same experiment)."),
            ("categories", pa.list_(S), OPT, "Categories, in order; null when none."),
            ("created_timestamp", I64, REQ, "Creation time (ms)."),
            ("last_updated_timestamp", I64, REQ, "Last update time (ms)."),
            ("created_by", S, OPT, "Who created the issue."),
            (
                "last_seen_timestamp", I64, OPT,
                "Latest observation (ms); null when never set (MLflow then shows the creation time; a REST export "
                "carries that).",
            ),
            ("last_updated_by", S, OPT, "Who last updated the issue."),
            ("metadata", KEY_VALUE, OPT, "String metadata as stored (by key over REST, whose maps have no order); null when none."),
        ),
        _table(
            "issue_categories", PARQUET,
            "The searchable category index of the chunk's issues, by issue, then hash: one row per distinct category "
            "after trimming and lower-casing.",
            ("issue_id", S, REQ, "Source issue ID; its issue is in the same chunk."),
            ("category_hash", S, REQ, "SHA-256 (hex) of the category trimmed and lower-cased, as MLflow computes it."),
            ("category", S, REQ, "The category as stored."),
        ),
    ]
}


def _type_name(data_type: pa.DataType) -> str:
    if data_type == KEY_VALUE:
        return "list<struct<key: string, value: string>>"
    if data_type == ALIASES:
        return "list<struct<alias: string, version: int64>>"
    if data_type == WEBHOOK_EVENTS:
        return "list<struct<entity: string, action: string>>"
    return str(data_type)


def markdown() -> str:
    """The schema section of the spec, exactly as ``formats/SCHEMAS.md`` holds it."""
    out = [
        "# Table schemas (format version 1)",
        "",
        "Generated from `mlflow_archive/schemas.py` by `python -m mlflow_archive.schemas`;",
        "a test keeps this file and the code identical. `nullable: no` means a writer",
        "never writes null there and a reader refuses a member that does. Columns",
        "not listed here are ignored by readers (see FORMAT.md, Versioning).",
        "",
    ]
    for table in TABLES.values():
        ext = "parquet" if table.storage == PARQUET else "arrows (Arrow IPC stream)"
        out += [f"## `{table.name}`", "", f"{table.doc} Storage: {ext}.", ""]
        out += ["| column | type | nullable | meaning |", "|---|---|---|---|"]
        for f in table.schema:
            doc = f.metadata[b"doc"].decode()
            out.append(f"| `{f.name}` | {_type_name(f.type)} | {'yes' if f.nullable else 'no'} | {doc} |")
        out.append("")
    return "\n".join(out)


if __name__ == "__main__":
    print(markdown(), end="")
