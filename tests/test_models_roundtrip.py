"""Round trips of registered models, model versions and logged models between real servers.

The data set (``tests/models_data.py``) is built once on a server of its own, so that
"export everything" means exactly that data set. One full export
(``--export-deleted-runs --export-version-model``) is imported once into an empty
destination (``module_dest_server``); one ``--models '<prefix>reg-*'`` export serves the
selection, prompt, rename and delete-model tests, which import into the shared
``dest_server``. Every export and import runs the CLI in-process (``tests/archive_cli.py``), with
``--tracking-uri`` and neither MLFLOW_TRACKING_URI nor MLFLOW_REGISTRY_URI in its environment. The last section reproduces, on their own, problems that the shared data set runs into.
"""

from __future__ import annotations

import csv
import json
import uuid
from urllib.parse import quote

import mlflow
import pytest
from mlflow.entities import Dataset, DatasetInput, InputTag, LoggedModelStatus
from mlflow.exceptions import MlflowException

from mlflow_archive.objects.registry import PLACEHOLDER_TAG

import archive_cli
from archive_tables import archive_contents
from archive_cli import import_counts, export_counts
from compare import compare_servers, runs_by_source_id
from models_data import (
    SOURCE_MODEL_NAME_TAG,
    SOURCES_EXPERIMENT,
    build_models_dataset,
    client_for,
    compare_logged_models,
    compare_model_io,
    compare_registered_model,
    id_maps,
    model_versions,
    predict,
    registered_model_names,
    registry_snapshot,
    using_server,
)



def describe(result) -> str:
    return result.describe()


def export(path, source_uri: str, *options):
    """``--tracking-uri`` alone names the source: no MLFLOW_TRACKING_URI to fall back on."""
    return archive_cli.export(path, source_uri, *options)


def import_(path, dest_uri: str, *options, check: bool = False):
    return archive_cli.import_(path, dest_uri, *options, check=check)


def inspect_json(path) -> dict:
    return json.loads(archive_cli.run("inspect", path, "--json").stdout_text)


def fail_on(diffs: list[str], what: str) -> None:
    if diffs:
        pytest.fail(f"{len(diffs)} difference(s) in {what}:\n" + "\n".join(f"  - {d}" for d in diffs[:60]))


# -- fixtures --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def models_source(mlflow_server_pool):
    """A server of its own for the data set, so that an export of everything is exactly that."""
    server = mlflow_server_pool.fresh()
    yield server
    server.stop_in_background()


@pytest.fixture(scope="module")
def models_data(models_source):
    return build_models_dataset(models_source.url, f"models-rt-{uuid.uuid4().hex[:8]}-")


@pytest.fixture(scope="module")
def full_export(models_data, models_source, tmp_path_factory):
    path = tmp_path_factory.mktemp("models-full") / "full.mlar"
    proc = export(path, models_source.url, "--export-deleted-runs", "--export-version-model")
    return path, proc


@pytest.fixture(scope="module")
def full_import(full_export, module_dest_server):
    """The full archive imported once into an empty destination (checked by test_full_roundtrip)."""
    return import_(full_export[0], module_dest_server.url)


@pytest.fixture(scope="module")
def full_maps(full_import, module_dest_server):
    return id_maps(module_dest_server.url, runs_by_source_id(module_dest_server.url))


@pytest.fixture(scope="module")
def selected_export(models_data, models_source, tmp_path_factory):
    """``--models '<prefix>reg-*'`` without deleted runs: version 5 of the main model needs its own files."""
    path = tmp_path_factory.mktemp("models-selected") / "selected.mlar"
    proc = export(path, models_source.url, "--models", f"{models_data.prefix}reg-*", "--export-version-model")
    return path, proc


def source_logged_model_ids(data) -> list[str]:
    return [data.logged_models[role] for role in ("a", "b", "x", "y", "z")]


# -- 1. the full round trip ------------------------------------------------------------------


def test_full_roundtrip(models_data, models_source, module_dest_server, full_export, full_import, full_maps, tmp_path):
    """Everything exported (deleted runs, version files) and imported into an empty server.

    Every problem is collected before failing, so one run reports them all.
    """
    data, src, dst = models_data, models_source.url, module_dest_server.url
    problems: list[str] = []
    _, export_proc = full_export
    exported = export_counts(export_proc.stderr_text)
    expected_export = {"registered_models": 3, "model_versions": 6, "logged_models": 5}
    if {k: exported.get(k) for k in expected_export} != expected_export:
        problems.append(f"export summary: expected {expected_export}, got:\n{export_proc.stderr_text}")

    counts = import_counts(full_import.stderr_text)
    expected_import = {"registered_models": (3, 0, 0), "model_versions": (6, 0, 0), "logged_models": (5, 0, 0), "runs": (9, 0, 0)}
    if full_import.returncode != 0 or {k: counts.get(k) for k in expected_import} != expected_import:
        problems.append(f"import: expected exit 0 and {expected_import}; {describe(full_import)}")

    # experiments and runs (the deleted run behind version 5 included), field by field
    comparison = compare_servers(src, dst, exact=True, raise_on_difference=False)
    if not comparison.ok:
        problems.append("experiments and runs: " + comparison.report())
    maps = full_maps
    problems += maps.duplicates

    # exactly the source's registered models, each field by field; the deleted version stays a gap
    names = registered_model_names(client_for(dst))
    if names != set(data.model_names):
        problems.append(f"destination registered models {sorted(names)}, expected {sorted(data.model_names)}")
    for name in data.model_names:
        problems += compare_registered_model(src, dst, name, maps)
    main_versions = sorted(model_versions(client_for(dst), data.main_model))
    if main_versions != data.main_versions:
        problems.append(f"{data.main_model}: destination versions {main_versions}, expected {data.main_versions}")
    placeholders = client_for(dst).search_model_versions(f"tags.`{PLACEHOLDER_TAG}` = 'true'")
    if placeholders:
        problems.append(f"gap placeholders left on the destination: {[(v.name, v.version) for v in placeholders]}")

    # logged models, their metrics and files, and the runs' links to them
    if set(maps.models) != set(source_logged_model_ids(data)):
        problems.append(f"imported logged models {sorted(maps.models)}, expected {sorted(source_logged_model_ids(data))}")
    problems += compare_logged_models(src, dst, source_logged_model_ids(data), maps, tmp_path)
    problems += compare_model_io(src, dst, [data.runs[r] for r in ("a", "b", "x", "y", "z", "extra")], maps)
    fail_on(problems, "the full round trip")


# -- 2. loading by alias -----------------------------------------------------------------------


@pytest.mark.parametrize("alias", ["champion", "challenger", "legacy", "rescued"])
def test_load_model_by_alias(models_data, models_source, module_dest_server, full_import, alias):
    uri = f"models:/{models_data.main_model}@{alias}"
    expected = predict(models_source.url, uri)
    got = predict(module_dest_server.url, uri)
    assert got == expected


# -- 3. importing twice --------------------------------------------------------------------------


def test_reimport_is_noop(models_data, module_dest_server, full_export, full_import, full_maps):
    dst = module_dest_server.url
    names = models_data.model_names
    before = registry_snapshot(dst, names)
    models_before = sorted(full_maps.models.values())
    again = import_(full_export[0], dst)
    assert again.returncode == 0, describe(again)
    counts = import_counts(again.stderr_text)
    assert counts.get("registered_models") == (0, 3, 0), again.stderr_text
    assert counts.get("model_versions") == (0, 6, 0), again.stderr_text
    assert counts.get("logged_models") == (0, 5, 0), again.stderr_text
    assert registry_snapshot(dst, names) == before
    after = id_maps(dst, runs_by_source_id(dst))
    assert not after.duplicates, after.duplicates
    assert sorted(after.models.values()) == models_before


# -- 4. selecting registered models --------------------------------------------------------------


def test_models_selector_takes_dependencies_only(models_data, selected_export):
    data = models_data
    path, proc = selected_export
    info = inspect_json(path)
    counts = info["counts"]
    # the two reg-* models (the prompt matches the pattern too, and is left out); the main
    # model's four versions and the aux model's one; the runs behind them (the deleted run
    # behind version 5 excluded: no --export-deleted-runs) and the logged models they use
    expected_counts = {"registered_models": 2, "model_versions": 5, "experiments": 2, "runs": 3, "logged_models": 2}
    assert {k: counts.get(k, 0) for k in expected_counts} == expected_counts, json.dumps(counts, indent=1)
    member_sections = {m["name"].split("/", 1)[0] for m in info["members"]}
    assert {"experiments", "runs", "logged_models", "registry"} <= member_sections, info["members"]

    tables, artifacts = archive_contents(path)
    assert {r["name"] for r in tables["registered_models"]} == {data.main_model, data.aux_model}
    assert sorted((r["name"], r["version"]) for r in tables["model_versions"]) == sorted(
        [(data.main_model, v) for v in data.main_versions] + [(data.aux_model, 1)]
    )
    assert {r["name"] for r in tables["experiments"]} == {data.experiments["main"], data.experiments["aux"]}
    assert {r["run_id"] for r in tables["runs"]} == {data.runs["a"], data.runs["c"], data.runs["y"]}
    assert {r["model_id"] for r in tables["logged_models"]} == {data.logged_models["a"], data.logged_models["y"]}
    # with --export-version-model each exported version carries its files
    owners = {tuple(p.split(":", 1)[1].split("/")[:2]) for p in artifacts if p.startswith("registry:")}
    assert len(owners) == 5, sorted(owners)


def test_version_files_owner_paths_follow_format(models_data, selected_export):
    """FORMAT.md §5.1: the name percent-encoded with every character outside A-Z a-z 0-9 _ - ~ encoded."""
    _, artifacts = archive_contents(selected_export[0])
    owners = {tuple(p.split(":", 1)[1].split("/")[:2]) for p in artifacts if p.startswith("registry:")}

    def encoded(name: str) -> str:
        return quote(name, safe="~").replace(".", "%2E")

    expected = {(encoded(models_data.main_model), str(v)) for v in models_data.main_versions}
    expected.add((encoded(models_data.aux_model), "1"))
    assert owners == expected


# -- 5. prompts ----------------------------------------------------------------------------------


def test_prompt_is_not_a_registered_model(models_data, models_source, module_dest_server, full_export, full_import, selected_export):
    data = models_data
    # the prompt is on the source...
    with using_server(models_source.url):
        assert mlflow.genai.load_prompt(f"prompts:/{data.prompt}/1").template == "Hello {{name}}!"
    # ...but in neither archive as a registered model
    for path in (full_export[0], selected_export[0]):
        tables, _ = archive_contents(path)
        names = {r["name"] for r in tables.get("registered_models", [])}
        assert data.prompt not in names, names
        assert data.prompt not in {r["name"] for r in tables.get("model_versions", [])}
    assert inspect_json(full_export[0])["counts"].get("registered_models") == 3

    # the full export carries it as a prompt, and the destination has it as one, not as a registered model
    assert [r["name"] for r in archive_contents(full_export[0])[0]["prompts"]] == [data.prompt]
    with using_server(module_dest_server.url):
        assert mlflow.genai.load_prompt(f"prompts:/{data.prompt}/1").template == "Hello {{name}}!"
    dest = client_for(module_dest_server.url)
    assert data.prompt not in registered_model_names(dest)
    assert list(dest.search_registered_models(filter_string=f"name LIKE '%{data.prompt}%'")) == []
    with pytest.raises(MlflowException, match="prompt"):
        dest.get_registered_model(data.prompt)


def test_prompt_named_in_models_selector(models_data, models_source, tmp_path):
    """Naming the prompt in --models is an error (it is no registered model), and writes no archive."""
    path = tmp_path / "prompt.mlar"
    proc = archive_cli.export(path, models_source.url, "--models", models_data.prompt, check=False)
    assert proc.error_line() == f"Error: No registered model named {models_data.prompt!r} on the source; check --models."
    assert list(tmp_path.iterdir()) == []


# -- 6. --model-rename-file and --delete-model ---------------------------------------------------


def rename_models(path, renames: dict[str, str]):
    with path.open("w", newline="", encoding="utf-8") as fh:
        csv.writer(fh).writerows([["old", "new"], *renames.items()])
    return path


def test_model_rename_file(models_data, models_source, dest_server, selected_export, unique_prefix, tmp_path):
    """Both models of the archive renamed to names of this test, so no other test's import is in the way."""
    data, src, dst = models_data, models_source.url, dest_server.url
    new_name, new_aux = f"{unique_prefix}renamed main ü", f"{unique_prefix}renamed aux"
    rename = rename_models(tmp_path / "models.csv", {data.main_model: new_name, data.aux_model: new_aux})
    proc = import_(selected_export[0], dst, "--model-rename-file", rename)
    assert proc.returncode == 0, describe(proc)
    counts = import_counts(proc.stderr_text)
    assert (counts.get("registered_models"), counts.get("model_versions")) == ((2, 0, 0), (5, 0, 0)), proc.stderr_text

    names = registered_model_names(client_for(dst))
    assert {new_name, new_aux} <= names
    maps = id_maps(dst, runs_by_source_id(dst))
    diffs = compare_registered_model(src, dst, data.main_model, maps, dest_name=new_name, restored_from_files={data.deleted_run_version})
    diffs += compare_registered_model(src, dst, data.aux_model, maps, dest_name=new_aux)
    fail_on(diffs, "the renamed models")
    assert predict(dst, f"models:/{new_name}@rescued") == predict(src, f"models:/{data.main_model}@rescued")


def test_delete_model(models_data, models_source, dest_server, selected_export, unique_prefix, tmp_path):
    """A model of the same name that the destination made itself, with versions of its own, is replaced."""
    data, src, dst = models_data, models_source.url, dest_server.url
    client = client_for(dst)
    name, aux = f"{unique_prefix}main", f"{unique_prefix}aux"
    experiment_id = client.create_experiment(f"{unique_prefix}dest only")
    run_id = client.create_run(experiment_id, run_name="dest-own").info.run_id
    client.log_text(run_id, "not a model", "model/README.txt")
    client.create_registered_model(name, tags={"dest": "only"}, description="destination's own model")
    for _ in range(2):
        client.create_model_version(name, source=f"runs:/{run_id}/model", run_id=run_id, tags={"dest": "own"})
    client.set_registered_model_alias(name, "champion", "2")

    rename = rename_models(tmp_path / "models.csv", {data.main_model: name, data.aux_model: aux})
    proc = import_(selected_export[0], dst, "--delete-model", "--model-rename-file", rename)
    assert proc.returncode == 0, describe(proc)
    counts = import_counts(proc.stderr_text)
    assert (counts.get("registered_models"), counts.get("model_versions")) == ((2, 0, 0), (5, 0, 0)), proc.stderr_text

    model = client.get_registered_model(name)
    assert "dest" not in model.tags, model.tags
    assert model.tags.get(SOURCE_MODEL_NAME_TAG) == data.main_model
    versions = model_versions(client, name)
    assert sorted(versions) == data.main_versions
    assert not [v.version for v in versions.values() if v.run_id == run_id or "dest" in v.tags]
    maps = id_maps(dst, runs_by_source_id(dst))
    fail_on(
        compare_registered_model(src, dst, data.main_model, maps, dest_name=name, restored_from_files={data.deleted_run_version}),
        "the model replaced with --delete-model",
    )
    assert predict(dst, f"models:/{name}@champion") == predict(src, f"models:/{data.main_model}@champion")
    assert predict(dst, f"models:/{name}@rescued") == predict(src, f"models:/{data.main_model}@rescued")
    holder = client.get_run(versions[data.deleted_run_version].run_id)
    assert client.get_experiment(holder.info.experiment_id).name == SOURCES_EXPERIMENT


# -- 7. logged models without files ---------------------------------------------------------------


def test_logged_models_without_files(scratch_server, dest_server, unique_prefix, tmp_path):
    """A FAILED model (no files at all) and an external model (only the MLmodel MLflow writes for it).

    The destination's files are listed either way, so files that should not be there are reported.
    """

    src, dst = scratch_server.url, dest_server.url
    client = client_for(src)
    name = f"{unique_prefix}no files"
    experiment_id = client.create_experiment(name)
    run_id = client.create_run(experiment_id, run_name="r").info.run_id
    failed = client.create_logged_model(experiment_id, name="failed", source_run_id=run_id, params={"k": "v"}, model_type="regressor")
    client.finalize_logged_model(failed.model_id, LoggedModelStatus.FAILED)
    with using_server(src):  # what mlflow.set_active_model / GenAI apps make: READY, never any files
        external = mlflow.create_external_model(name="external agent", experiment_id=experiment_id, tags={"app": "chat"})
    client.set_terminated(run_id)

    archive = tmp_path / "nofiles.mlar"
    proc = archive_cli.run("export", "-o", archive, "--tracking-uri", src, "--quiet", "--experiments", name, check=False)
    assert proc.returncode == 0, describe(proc)
    assert export_counts(proc.stderr_text).get("logged_models") == 2, proc.stderr_text
    imported = import_(archive, dst)
    assert imported.returncode == 0, describe(imported)
    assert import_counts(imported.stderr_text).get("logged_models") == (2, 0, 0), imported.stderr_text
    maps = id_maps(dst, runs_by_source_id(dst))
    diffs = compare_logged_models(src, dst, [failed.model_id, external.model_id], maps, tmp_path, expect_files=False)
    fail_on(diffs, "logged models without files")


# -- 8. problems found with the data set above, reproduced on their own ----------------------------


def test_export_version_model_with_tracking_uri_option(models_data, models_source, tmp_path):
    """``--tracking-uri`` alone (no MLFLOW_TRACKING_URI) must be enough for ``--export-version-model``."""
    path = tmp_path / "aux.mlar"
    proc = archive_cli.run(
        "export", "-o", path, "--tracking-uri", models_source.url, "--quiet",
        "--models", models_data.aux_model, "--export-version-model", check=False, cwd=str(tmp_path),
    )
    created_default_store = (tmp_path / "mlflow.db").exists()
    assert proc.returncode == 0, describe(proc)
    _, artifacts = archive_contents(path)
    assert any(p.startswith("registry:") for p in artifacts), artifacts
    assert not created_default_store, "the export created MLflow's default store mlflow.db in the working directory"


def test_runs_sharing_a_dataset(scratch_server, dest_server, unique_prefix, tmp_path):
    """Runs of one experiment that used the same dataset (as runs A and X above do)."""
    src, dst = scratch_server.url, dest_server.url
    client = client_for(src)
    name = f"{unique_prefix}shared dataset"
    experiment_id = client.create_experiment(name)
    dataset = Dataset("shared", "0123abcd", "code", '{"uri": "s3://bucket/data.csv"}', '{"mlflow_colspec": []}', '{"rows": 10}')
    for i in range(8):
        run_id = client.create_run(experiment_id, run_name=f"r{i}").info.run_id
        client.log_inputs(run_id, datasets=[DatasetInput(dataset, [InputTag("mlflow.data.context", "training")])])
        client.set_terminated(run_id)

    archive = tmp_path / "shared.mlar"
    export(archive, src, "--experiments", name)
    proc = import_(archive, dst)
    assert proc.returncode == 0 and import_counts(proc.stderr_text).get("runs") == (8, 0, 0), describe(proc)
    compare_servers(src, dst, experiment_names=[name])
