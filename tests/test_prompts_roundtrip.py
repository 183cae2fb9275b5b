"""Round trips of prompts between real servers (data set: ``tests/prompts_data.py``).

The data set is built on the shared ``scratch_server`` under a unique prefix. One export of its
experiment and its prompts is imported into an empty destination (``module_dest_server``); the
tests of an existing prompt, of ``--delete-prompt`` and of an interrupted import use the shared
``dest_server`` with an export of the main prompt alone.
"""

from __future__ import annotations

import json
import uuid

import mlflow
import pytest
from mlflow.prompt.constants import IS_PROMPT_TAG_KEY

from mlflow_archive.endpoints import TrackingDestination
from mlflow_archive.objects.registry import PLACEHOLDER_TAG, SOURCE_NAME_TAG, SOURCE_VERSION_TAG

import archive_cli
from archive_cli import export_counts, import_counts
from models_data import client_for, using_server
from prompts_data import LINKED_PROMPTS_TAG, build_prompts_dataset, compare_prompt, prompt_versions


@pytest.fixture(scope="module")
def prompts_data(scratch_server):
    return build_prompts_dataset(scratch_server.url, f"prompts-rt-{uuid.uuid4().hex[:8]}-")


def export_to(tmp_path_factory, source_uri: str, *options):
    path = tmp_path_factory.mktemp("prompts") / "prompts.mlar"
    return path, archive_cli.export(path, source_uri, *options)


@pytest.fixture(scope="module")
def full_export(prompts_data, scratch_server, tmp_path_factory):
    """The data set's experiment (with its run) and both prompts."""
    return export_to(tmp_path_factory, scratch_server.url, "--experiments", prompts_data.experiment, "--prompts", f"{prompts_data.prefix}*")


@pytest.fixture(scope="module")
def full_import(full_export, module_dest_server):
    return archive_cli.import_(full_export[0], module_dest_server.url)


@pytest.fixture(scope="module")
def main_only_export(prompts_data, scratch_server, tmp_path_factory):
    return export_to(tmp_path_factory, scratch_server.url, "--prompts", prompts_data.main)


def dest_ids(data, dest_uri: str) -> tuple[dict[str, str], dict[str, str]]:
    """Source -> destination IDs of the data set's experiment and run."""
    client = client_for(dest_uri)
    experiment_id = client.get_experiment_by_name(data.experiment).experiment_id
    runs = client.search_runs([experiment_id], filter_string=f"tags.`mlflow_archive.source_run_id` = '{data.run_id}'")
    assert len(runs) == 1, runs
    return {data.experiment_id: experiment_id}, {data.run_id: runs[0].info.run_id}


def fail_on(diffs: list[str], what: str) -> None:
    if diffs:
        pytest.fail(f"{len(diffs)} difference(s) in {what}:\n" + "\n".join(f"  - {d}" for d in diffs))


def load(uri: str, prompt_uri: str, experiment_id: str | None = None):
    """``load_prompt`` with ``experiment_id`` active: MLflow links a loaded prompt to the active experiment
    (the Default one when none is), so reading would otherwise change the prompt's experiment links."""
    with using_server(uri):
        if experiment_id is not None:
            mlflow.set_experiment(experiment_id=experiment_id)
        return mlflow.genai.load_prompt(prompt_uri, link_to_model=False, cache_ttl_seconds=0)


def test_roundtrip(prompts_data, scratch_server, module_dest_server, full_export, full_import):
    data, src, dst = prompts_data, scratch_server.url, module_dest_server.url
    exported = export_counts(full_export[1].stderr_text)
    assert {k: exported.get(k) for k in ("experiments", "runs", "prompts", "prompt_versions")} == {
        "experiments": 1, "runs": 1, "prompts": 2, "prompt_versions": 5
    }, full_export[1].stderr_text
    counts = import_counts(full_import.stderr_text)
    assert {k: counts.get(k) for k in ("prompts", "prompt_versions")} == {"prompts": (2, 0, 0), "prompt_versions": (5, 0, 0)}, full_import.stderr_text
    experiments, runs = dest_ids(data, dst)
    fail_on([d for name in data.names for d in compare_prompt(src, dst, name, experiments, runs)], "prompts")
    # the deleted version stays a gap, and the placeholder that kept it leaves nothing behind
    assert data.deleted_version not in prompt_versions(dst, data.main)
    assert client_for(dst).search_model_versions(f"tags.`{PLACEHOLDER_TAG}` = 'true'") == []
    # the run's link names the prompt version, which has the same name and number on the destination
    src_run, dst_run = client_for(src).get_run(data.run_id), client_for(dst).get_run(runs[data.run_id])
    assert json.loads(dst_run.data.tags[LINKED_PROMPTS_TAG]) == json.loads(src_run.data.tags[LINKED_PROMPTS_TAG])


@pytest.mark.parametrize("alias", ["production", "staging", "legacy", "latest"])
def test_load_prompt_by_alias(prompts_data, scratch_server, module_dest_server, full_import, alias):
    uri = f"prompts:/{prompts_data.main}@{alias}"
    experiments, _ = dest_ids(prompts_data, module_dest_server.url)
    src = load(scratch_server.url, uri, prompts_data.experiment_id)
    dst = load(module_dest_server.url, uri, experiments[prompts_data.experiment_id])
    assert (dst.version, dst.template, dst.response_format, dst.model_config) == (
        src.version, src.template, src.response_format, src.model_config
    )


def test_logged_prompts_of_run(prompts_data, scratch_server, module_dest_server, full_import):
    """``list_logged_prompts`` finds the versions by the run ID in their tags: the destination's run ID."""
    _, runs = dest_ids(prompts_data, module_dest_server.url)
    src = [(p.name, p.version) for p in client_for(scratch_server.url).list_logged_prompts(prompts_data.run_id)]
    dst = [(p.name, p.version) for p in client_for(module_dest_server.url).list_logged_prompts(runs[prompts_data.run_id])]
    assert src and dst == src


def test_reimport_creates_nothing(prompts_data, scratch_server, module_dest_server, full_export, full_import):
    again = archive_cli.import_(full_export[0], module_dest_server.url)
    counts = import_counts(again.stderr_text)
    assert {k: counts.get(k) for k in ("prompts", "prompt_versions")} == {"prompts": (0, 2, 0), "prompt_versions": (0, 5, 0)}, again.stderr_text
    experiments, runs = dest_ids(prompts_data, module_dest_server.url)
    fail_on(compare_prompt(scratch_server.url, module_dest_server.url, prompts_data.main, experiments, runs), "the main prompt")


def test_selection(prompts_data, scratch_server, main_only_export, tmp_path):
    src = scratch_server.url
    # --prompts alone: that prompt only, all its versions, nothing else
    exported = export_counts(main_only_export[1].stderr_text)
    assert {k: v for k, v in exported.items() if v} == {"prompts": 1, "prompt_versions": 4}, main_only_export[1].stderr_text
    # --experiments alone: no prompts (they are global, like registered models)
    proc = archive_cli.export(tmp_path / "exp.mlar", src, "--experiments", prompts_data.experiment)
    assert "prompts" not in export_counts(proc.stderr_text), proc.stderr_text
    # --no-prompts, and the errors
    proc = archive_cli.export(tmp_path / "none.mlar", src, "--experiments", prompts_data.experiment, "--prompts", prompts_data.main, "--no-prompts", check=False)
    assert proc.returncode == 1 and "exclude each other" in proc.stderr_text, proc.describe()
    proc = archive_cli.export(tmp_path / "missing.mlar", src, "--prompts", f"{prompts_data.prefix}missing", check=False)
    assert proc.returncode == 1 and "No prompt named" in proc.stderr_text, proc.describe()


def test_existing_prompt_is_kept_unless_delete_prompt(prompts_data, scratch_server, dest_server, main_only_export):
    data, src, dst = prompts_data, scratch_server.url, dest_server.url
    with using_server(dst):
        mlflow.genai.register_prompt(data.main, "the destination's own {{x}}", commit_message="mine")
    proc = archive_cli.import_(main_only_export[0], dst)
    assert import_counts(proc.stderr_text)["prompts"] == (0, 1, 0), proc.stderr_text
    assert f"prompt {data.main!r} exists on the destination" in proc.stderr_text, proc.stderr_text
    assert load(dst, f"prompts:/{data.main}/1").template == "the destination's own {{x}}"
    assert sorted(prompt_versions(dst, data.main)) == [1]

    for _ in range(2):  # replaced each time it is given
        proc = archive_cli.import_(main_only_export[0], dst, "--delete-prompt")
        counts = import_counts(proc.stderr_text)
        assert (counts["prompts"], counts["prompt_versions"]) == ((1, 0, 0), (4, 0, 0)), proc.stderr_text
        # the archive has no experiment or run: the prompt's links to them are left out
        fail_on(compare_prompt(src, dst, data.main, {}, {}), "the replaced prompt")


def test_interrupted_import_finishes(prompts_data, scratch_server, dest_server, main_only_export):
    """An import stopped after version 2 and the placeholder of the gap: the next run finishes it."""
    data, src, dst = prompts_data, scratch_server.url, dest_server.url
    client, dest = client_for(dst), TrackingDestination(dst)
    if client.get_prompt(data.main) is not None:
        client.delete_prompt(data.main)
    source = client_for(src)._get_registry_client().get_registered_model(data.main)
    tags = {k: v for k, v in source.tags.items() if not k.startswith("_mlflow_experiment")}
    dest.create_registered_model(data.main, {**tags, IS_PROMPT_TAG_KEY: "true", SOURCE_NAME_TAG: data.main}, source.description)
    for number, version in sorted(prompt_versions(src, data.main).items())[:2]:
        version_tags = {k: v for k, v in version.tags.items() if not k.startswith("mlflow.prompt.associated")}
        dest.create_prompt_version(data.main, {**version_tags, SOURCE_VERSION_TAG: str(number)}, version.description)
    dest.create_prompt_version(data.main, {IS_PROMPT_TAG_KEY: "true", PLACEHOLDER_TAG: "true"}, None)

    proc = archive_cli.import_(main_only_export[0], dst)
    counts = import_counts(proc.stderr_text)
    assert (counts["prompts"], counts["prompt_versions"]) == ((0, 1, 0), (2, 2, 0)), proc.stderr_text
    fail_on(compare_prompt(src, dst, data.main, {}, {}), "the finished prompt")
    assert client.search_model_versions(f"tags.`{PLACEHOLDER_TAG}` = 'true'") == []


def test_version_counter_continues_as_on_source(prompts_data, scratch_server, module_dest_server, full_import):
    """The next version registered on the destination gets the number the source would give."""
    expected = max(prompt_versions(scratch_server.url, prompts_data.main)) + 1
    with using_server(module_dest_server.url):
        created = mlflow.genai.register_prompt(prompts_data.main, "after the import {{x}}")
    assert created.version == expected
