"""Nothing left behind in silence: what a source holds that the archive has no kind for is named by the export,
which then fails unless --allow-missing-kinds; over REST and from the database, on a real MLflow 3.18 server."""

from __future__ import annotations

import sqlite3

import mlflow
import pytest
from mlflow import MlflowClient
from mlflow.genai.judges import make_judge
from mlflow.tracking._tracking_service.utils import _use_tracking_uri

import archive_cli
from mlflow_archive.coverage import CARRIED_TABLES, KIND_OF_TABLE, LEFT_OUT

UNCARRIED_LINE = "not exported, the archive has no kind for them yet"


def _uncarried(stderr: str) -> dict[str, str]:
    """``{kind: what was seen}`` from an export's summary."""
    found = {}
    for line in stderr.splitlines():
        if UNCARRIED_LINE in line:
            kind, rest = line.split(": ", 1)
            found[kind] = rest
    return found


@pytest.fixture
def server_with_uncarried_kinds(fresh_dest_server):
    """A server holding an MCP server and a skill (kinds the archive does not carry), a webhook and a registered judge
    in one experiment (which it does), and one experiment with a run and none of those."""
    client = MlflowClient(tracking_uri=fresh_dest_server.url)
    judged = client.create_experiment("judged")
    plain = client.create_experiment("plain")
    client.create_run(plain)
    client.delete_experiment(client.create_experiment("deleted"))  # over REST, MLflow refuses to list its scorers
    client.create_webhook("hook", "http://127.0.0.1:9/hook", ["registered_model.created"], secret="not-in-archive")
    client.create_mcp_server("com.example/tools", description="an MCP server")
    client.create_skill(name="summarize")
    judge = make_judge(name="quality", instructions="Is {{ outputs }} good?", model="openai:/gpt-4o-mini", feedback_value_type=bool)
    with _use_tracking_uri(fresh_dest_server.url):
        judge.register(experiment_id=judged)
    return fresh_dest_server, judged, plain


def test_export_names_every_kind_it_cannot_carry_and_fails(server_with_uncarried_kinds, tmp_path):
    server, _, _ = server_with_uncarried_kinds
    for source in (server.url, f"sqlite:///{server.backend_path}"):
        options = ("--artifacts-destination", str(server.artifacts_path)) if source.startswith("sqlite") else ()
        result = archive_cli.export(tmp_path / "all.mlar", source, "--export-deleted-experiments", *options, check=False)
        assert result.returncode == 1, result.describe()
        assert "Traceback" not in result.stderr_text
        seen = _uncarried(result.stderr_text)
        assert sorted(seen) == ["mcp_servers", "skills"], result.describe()
        counts = archive_cli.export_counts(result.stderr_text)
        assert (counts["webhooks"], counts["scorers"], counts["scorer_versions"]) == (1, 1, 1)
        assert "--allow-missing-kinds accepts that" in result.stderr_text
        if source.startswith("sqlite"):
            assert "1 row in skills" in seen["skills"]
        assert archive_cli.run("verify", str(tmp_path / "all.mlar")).returncode == 0  # the archive itself is whole


def test_allow_missing_kinds_and_selections(server_with_uncarried_kinds, tmp_path):
    server, judged, plain = server_with_uncarried_kinds
    database = f"sqlite:///{server.backend_path}"
    artifacts = ("--artifacts-destination", str(server.artifacts_path))
    allowed = archive_cli.export(tmp_path / "a.mlar", server.url, "--allow-missing-kinds")
    assert sorted(_uncarried(allowed.stderr_text)) == ["mcp_servers", "skills"]
    assert "(--allow-missing-kinds: the export still succeeds)" in allowed.stderr_text
    # A selection is judged by what belongs to its experiments: server-wide kinds were not asked for.
    for source, options in ((server.url, ()), (database, artifacts)):
        for experiment in (plain, judged):
            selected = archive_cli.export(tmp_path / "s.mlar", source, "--experiments", experiment, *options)
            assert _uncarried(selected.stderr_text) == {}, selected.describe()


def test_a_table_of_a_newer_mlflow_is_named_and_seeded_rows_are_not(fresh_dest_server, tmp_path):
    """A database with only what MLflow writes by itself (the default workspace, an experiment's default label
    schema) exports cleanly; a table this code does not know is named as it is."""
    server = fresh_dest_server
    client = MlflowClient(tracking_uri=server.url)
    experiment = client.create_experiment("labelled")
    client._tracking_client.store.list_label_schemas(experiment)  # MLflow seeds the experiment's default schema
    database, artifacts = f"sqlite:///{server.backend_path}", ("--artifacts-destination", str(server.artifacts_path))
    with sqlite3.connect(server.backend_path) as conn:
        assert conn.execute("SELECT count(*) FROM label_schemas WHERE is_default").fetchone()[0] == 1
    clean = archive_cli.export(tmp_path / "clean.mlar", database, *artifacts)
    assert _uncarried(clean.stderr_text) == {}, clean.describe()
    with sqlite3.connect(server.backend_path) as conn:
        conn.execute("CREATE TABLE agent_memories (id INTEGER PRIMARY KEY, content TEXT)")
        conn.executemany("INSERT INTO agent_memories (content) VALUES (?)", [("a",), ("b",), ("c",)])
    newer = archive_cli.export(tmp_path / "newer.mlar", database, *artifacts, check=False)
    assert newer.returncode == 1
    assert _uncarried(newer.stderr_text) == {"table agent_memories": f"{UNCARRIED_LINE} (3 rows in agent_memories)"}


def test_every_table_of_this_mlflow_is_classified(tmp_path):
    """Each table of the installed MLflow's schema is carried, left out with a reason, or known as an uncarried
    kind: a table of a new MLflow release shows up here first (and is named by exports until then)."""
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore
    import sqlalchemy as sa

    uri = f"sqlite:///{tmp_path / 'schema.db'}"
    SqlAlchemyStore(uri, str(tmp_path / "artifacts"))
    tables = set(sa.inspect(sa.create_engine(uri)).get_table_names())
    known = CARRIED_TABLES | set(LEFT_OUT) | set(KIND_OF_TABLE)
    assert tables - known == set()
    assert not CARRIED_TABLES & set(LEFT_OUT) and not CARRIED_TABLES & set(KIND_OF_TABLE)


def test_a_database_with_workspaces_is_exported_one_workspace_at_a_time(tmp_path, monkeypatch):
    """The archive does not carry workspaces yet: a database holding more than ``default`` is refused in one
    sentence that says how to export it, unchanged; with MLflow's workspace settings chosen, that workspace is
    exported and the others are named as left out."""
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    path = tmp_path / "workspaces.db"
    uri = f"sqlite:///{path}"
    store = SqlAlchemyStore(uri, str(tmp_path / "artifacts"))
    store.create_experiment("in-default")
    store.engine.dispose()
    (tmp_path / "artifacts").mkdir()  # the server's --artifacts-destination, which an export refuses when missing
    with sqlite3.connect(path) as conn:
        conn.execute("INSERT INTO workspaces (name, description) VALUES ('team-b', 'B')")
    before = path.read_bytes()
    refused = archive_cli.export(tmp_path / "refused.mlar", uri, "--artifacts-destination", str(tmp_path / "artifacts"), check=False)
    assert "holds workspaces besides default (team-b)" in refused.error_line()
    assert "MLFLOW_WORKSPACE=<name>" in refused.error_line()
    assert path.read_bytes() == before and not (tmp_path / "refused.mlar").exists()
    monkeypatch.setenv("MLFLOW_ENABLE_WORKSPACES", "true")
    monkeypatch.setenv("MLFLOW_WORKSPACE", "default")
    chosen = archive_cli.export(tmp_path / "default.mlar", uri, "--artifacts-destination", str(tmp_path / "artifacts"), check=False)
    assert chosen.returncode == 1, chosen.describe()
    assert archive_cli.export_counts(chosen.stderr_text)["experiments"] == 2  # Default and in-default
    assert _uncarried(chosen.stderr_text) == {"workspaces": f"{UNCARRIED_LINE} (1 row in workspaces)"}


def test_traces_with_attachments_are_exported_and_their_files_named(fresh_dest_server, tmp_path):
    """A span's attachment is a file beside the trace, which the archive does not carry: the trace travels, and the
    export names how many traces point at files that stay behind."""
    from mlflow.tracing.attachments import Attachment
    from models_data import using_server
    from traces_data import flush_traces

    with using_server(fresh_dest_server.url):
        mlflow.set_experiment("attached")
        with mlflow.start_span(name="look") as span:
            span.set_outputs({"image": Attachment(content_type="image/png", content_bytes=b"\x89PNG fake")})
        with mlflow.start_span(name="plain") as span:
            span.set_outputs({"text": "no file"})
        flush_traces()
    result = archive_cli.export(tmp_path / "t.mlar", fresh_dest_server.url, check=False)
    assert result.returncode == 1, result.describe()
    assert archive_cli.export_counts(result.stderr_text)["traces"] == 2
    assert _uncarried(result.stderr_text) == {
        "trace_attachments": f"{UNCARRIED_LINE} (1 trace(s) whose spans name files by mlflow-attachment:// references, "
        "which stay behind)"
    }
