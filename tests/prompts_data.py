"""A prompt data set on a real server, and a field-by-field comparison of prompts between two servers.

The main prompt has five versions (text and chat templates, unicode, a JSON-schema response format
and a model configuration), version 3 deleted, and three aliases; it is linked to an experiment
(MLflow's ``_mlflow_experiment_ids`` prompt tag, written when a prompt is registered in an active
experiment) and to a run (the run's ``mlflow.linkedPrompts`` tag, and the legacy version tag
``mlflow.prompt.associatedRunIds``). A second prompt has one version.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

import mlflow
from mlflow.prompt.constants import IS_PROMPT_TAG_KEY, PROMPT_ASSOCIATED_RUN_IDS_TAG_KEY, PROMPT_EXPERIMENT_IDS_TAG_KEY

from models_data import client_for, name_filter, strip_archive_tags, using_server

LINKED_PROMPTS_TAG = "mlflow.linkedPrompts"
RESPONSE_FORMAT = {
    "type": "object",
    "properties": {"answer": {"type": "string"}, "confidence": {"type": "number", "minimum": 0, "maximum": 1}},
    "required": ["answer"],
}


@dataclass
class PromptsData:
    prefix: str
    experiment: str
    experiment_id: str
    run_id: str
    main: str
    other: str
    aliases: dict[str, int] = field(default_factory=dict)
    deleted_version: int = 3

    @property
    def names(self) -> list[str]:
        return [self.main, self.other]


def build_prompts_dataset(uri: str, prefix: str) -> PromptsData:
    client = client_for(uri)
    data = PromptsData(prefix, f"{prefix}exp ✓", "", "", f"{prefix}main", f"{prefix}other")
    with using_server(uri):
        data.experiment_id = mlflow.set_experiment(data.experiment).experiment_id
        register = mlflow.genai.register_prompt
        register(data.main, "Bonjour {{name}} ☕ — ünïcödé ✓", commit_message="première version",
                 tags={"langue": "français", "emoji": "🚀"})
        register(
            data.main,
            [{"role": "system", "content": "Tu es un assistant 🤖."}, {"role": "user", "content": "{{question}}"}],
            commit_message="chat", response_format=RESPONSE_FORMAT,
            model_config={"model_name": "gpt-4o-mini", "temperature": 0.2, "max_tokens": 256},
        )
        register(data.main, "to be deleted {{x}}", commit_message="oops")
        register(data.main, "Hello {{name}}, version four", tags={"stage": "review"})
        register(
            data.main, [{"role": "user", "content": "Réponds : {{q}}"}], commit_message="final",
            response_format=RESPONSE_FORMAT, model_config={"model_name": "claude-x", "temperature": 0.0, "top_p": 0.9},
        )
        register(data.other, "Other {{thing}}", commit_message="only version")
        _wait_for_experiment_links()
        client.delete_prompt_version(data.main, str(data.deleted_version))
        data.aliases = {"production": 5, "staging": 4, "legacy": 1}
        for alias, version in data.aliases.items():
            client.set_prompt_alias(data.main, alias, version)
        client.set_prompt_tag(data.main, "owner", "équipe-ml")
        data.run_id = client.create_run(data.experiment_id, run_name="uses the prompt").info.run_id
        client.link_prompt_version_to_run(data.run_id, f"prompts:/{data.main}/2")
        client.set_prompt_version_tag(data.main, "4", PROMPT_ASSOCIATED_RUN_IDS_TAG_KEY, data.run_id)
        client.set_terminated(data.run_id)
    assert client.get_prompt(data.main).tags[PROMPT_EXPERIMENT_IDS_TAG_KEY] == f",{data.experiment_id},"
    return data


def _wait_for_experiment_links() -> None:
    """``register_prompt`` tags the prompt with the active experiment in a thread of its own."""
    for thread in threading.enumerate():
        if thread.name.startswith("link_prompt_to_experiment_thread"):
            thread.join(30)


def prompt_versions(uri: str, name: str) -> dict[int, object]:
    """A prompt's versions as model versions, tags unabridged (a search finds them only by the prompt tag)."""
    found = client_for(uri).search_model_versions(f"{name_filter(name)} AND tags.`{IS_PROMPT_TAG_KEY}` = 'true'", max_results=1000)
    return {int(v.version): v for v in found}


def compare_prompt(src_uri: str, dst_uri: str, name: str, experiments: dict[str, str], runs: dict[str, str]) -> list[str]:
    """Differences between a source prompt and its copy, field by field; ``experiments`` and
    ``runs`` map source IDs to destination IDs (IDs missing from them are expected to be left out)."""
    src, dst = client_for(src_uri), client_for(dst_uri)
    diffs: list[str] = []
    s, d = src._get_registry_client().get_registered_model(name), dst._get_registry_client().get_registered_model(name)
    if not d._is_prompt():
        return [f"{name}: not a prompt on the destination"]
    if (s.description or None) != (d.description or None):
        diffs.append(f"{name}: description {s.description!r} -> {d.description!r}")
    expected_tags = dict(s.tags)
    if PROMPT_EXPERIMENT_IDS_TAG_KEY in expected_tags:
        mapped = _mapped(expected_tags.pop(PROMPT_EXPERIMENT_IDS_TAG_KEY), experiments)
        if mapped:
            expected_tags[PROMPT_EXPERIMENT_IDS_TAG_KEY] = f",{','.join(mapped)},"
    if expected_tags != strip_archive_tags(d.tags):
        diffs.append(f"{name}: tags expected {expected_tags}, destination {strip_archive_tags(d.tags)}")
    if {a: str(v) for a, v in s.aliases.items()} != {a: str(v) for a, v in d.aliases.items()}:
        diffs.append(f"{name}: aliases {s.aliases} -> {d.aliases}")

    s_versions, d_versions = prompt_versions(src_uri, name), prompt_versions(dst_uri, name)
    if not s_versions:
        diffs.append(f"{name}: no versions found on the source (test setup error?)")
    if sorted(s_versions) != sorted(d_versions):
        diffs.append(f"{name}: versions {sorted(s_versions)} -> {sorted(d_versions)}")
    for number in sorted(set(s_versions) & set(d_versions)):
        sv, dv = s_versions[number], d_versions[number]
        where = f"{name} v{number}"
        expected = dict(sv.tags)
        if PROMPT_ASSOCIATED_RUN_IDS_TAG_KEY in expected:
            mapped = _mapped(expected.pop(PROMPT_ASSOCIATED_RUN_IDS_TAG_KEY), runs)
            if mapped:
                expected[PROMPT_ASSOCIATED_RUN_IDS_TAG_KEY] = ",".join(mapped)
        got = strip_archive_tags(dv.tags)
        for key in sorted(set(expected) | set(got)):
            if expected.get(key) != got.get(key):
                diffs.append(f"{where}: tag {key} expected {expected.get(key)!r}, destination {got.get(key)!r}")
        if (sv.description or None) != (dv.description or None):
            diffs.append(f"{where}: commit message {sv.description!r} -> {dv.description!r}")
        sp, dp = src.get_prompt_version(name, number), dst.get_prompt_version(name, number)
        for attr in ("template", "is_text_prompt", "variables", "response_format", "model_config", "commit_message", "user_id"):
            if getattr(sp, attr) != getattr(dp, attr):
                diffs.append(f"{where}: {attr} {getattr(sp, attr)!r} -> {getattr(dp, attr)!r}")
        if sorted(sp.aliases) != sorted(dp.aliases):
            diffs.append(f"{where}: aliases {sorted(sp.aliases)} -> {sorted(dp.aliases)}")
    return diffs


def _mapped(id_list: str, mapping: dict[str, str]) -> list[str]:
    return [mapping[i] for i in id_list.strip(",").split(",") if i in mapping]
