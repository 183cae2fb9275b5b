"""Prompts of the prompt registry: their versions (numbers kept, gaps included) and aliases.

MLflow keeps a prompt as a registered model with the marker tag ``mlflow.prompt.is_prompt``, and
each version as a model version whose tags hold the template, its type, the response format and
the model configuration. The archive holds those in columns of their own; ``tags`` keep the rest.

Links: the prompt tag ``_mlflow_experiment_ids`` and the version tag ``mlflow.prompt.associatedRunIds``
name source IDs, and are rewritten to destination IDs (IDs of objects not in the archive are left
out). Runs, logged models and traces name prompts by name and version (their ``mlflow.linkedPrompts``
tag); names and version numbers are kept, so those links hold as they are.
"""

from __future__ import annotations

import itertools
import json

from mlflow.entities.model_registry import ModelVersion, RegisteredModel
from mlflow.prompt.constants import (
    IS_PROMPT_TAG_KEY,
    PROMPT_ASSOCIATED_RUN_IDS_TAG_KEY,
    PROMPT_EXPERIMENT_IDS_TAG_KEY,
    PROMPT_MODEL_CONFIG_TAG_KEY,
    PROMPT_TEXT_TAG_KEY,
    PROMPT_TYPE_CHAT,
    PROMPT_TYPE_TAG_KEY,
    PROMPT_TYPE_TEXT,
    RESPONSE_FORMAT_TAG_KEY,
)

from ..archive import Member
from ..context import ExportContext, ImportContext
from ._common import key_values
from .registry import (
    SOURCE_NAME_TAG,
    SOURCE_VERSION_TAG,
    VersionNumbers,
    replay_by_name,
    set_aliases,
    source_time_tags,
    tags_without_provenance,
)

SECTION = "prompts"
PER_CHUNK = 100
# Version tags whose values are columns of ``prompt_versions``, or implied by being a prompt version.
COLUMN_TAGS = {IS_PROMPT_TAG_KEY, PROMPT_TEXT_TAG_KEY, PROMPT_TYPE_TAG_KEY, RESPONSE_FORMAT_TAG_KEY, PROMPT_MODEL_CONFIG_TAG_KEY}


# -- Export -------------------------------------------------------------------------------

def export(ctx: ExportContext) -> None:
    prompts = iter(ctx.selection.prompts)
    while batch := list(itertools.islice(prompts, PER_CHUNK)):
        _export_chunk(ctx, batch)


def _export_chunk(ctx: ExportContext, prompts: list[RegisteredModel]) -> None:
    versions = [
        v
        for found in ctx.ordered_map(lambda p: list(ctx.source.model_versions(p.name, prompt=True)), prompts)
        for v in sorted(found, key=lambda v: int(v.version))
    ]
    chunk = ctx.writer.chunk(SECTION)
    chunk.write_table(
        "prompts",
        {
            "name": [p.name for p in prompts],
            "description": [p.description or None for p in prompts],
            "creation_timestamp": [p.creation_timestamp for p in prompts],
            "last_updated_timestamp": [p.last_updated_timestamp for p in prompts],
            "tags": [key_values(p.tags) for p in prompts],
            "aliases": [[{"alias": a, "version": int(v)} for a, v in (p.aliases or {}).items()] for p in prompts],
        },
    )
    chunk.write_table(
        "prompt_versions",
        {
            "name": [v.name for v in versions],
            "version": [int(v.version) for v in versions],
            "template_json": [_template_json(v) for v in versions],
            "response_format_json": [v.tags.get(RESPONSE_FORMAT_TAG_KEY) for v in versions],
            "model_config_json": [v.tags.get(PROMPT_MODEL_CONFIG_TAG_KEY) for v in versions],
            "commit_message": [v.description or None for v in versions],
            "creation_timestamp": [v.creation_timestamp for v in versions],
            "last_updated_timestamp": [v.last_updated_timestamp for v in versions],
            "user_id": [v.user_id or None for v in versions],
            "tags": [key_values({k: val for k, val in v.tags.items() if k not in COLUMN_TAGS}) for v in versions],
        },
    )
    ctx.summary.add("prompts", "exported", len(prompts))
    ctx.summary.add("prompt_versions", "exported", len(versions))


def _template_json(version: ModelVersion) -> str:
    """A chat template is stored as JSON text already; a text template becomes a JSON string."""
    text = version.tags.get(PROMPT_TEXT_TAG_KEY, "")
    return text if version.tags.get(PROMPT_TYPE_TAG_KEY) == PROMPT_TYPE_CHAT else json.dumps(text, ensure_ascii=False)


# -- Import -------------------------------------------------------------------------------

class Importer:
    def __init__(self, ctx: ImportContext) -> None:
        self.ctx = ctx
        self.prompts: dict[str, dict] = {}  # this chunk's prompts, by name
        self.versions: list[dict] = []

    def member(self, member: Member) -> None:
        rows = member.read_table().to_pylist()
        if member.stem == "prompts":
            self.prompts.update((row["name"], row) for row in rows)
        else:
            self.versions += rows

    def end_chunk(self) -> None:
        replay_by_name(self.ctx, self.prompts, self.versions, self._import_prompt)
        self.prompts, self.versions = {}, []

    def _fail(self, exc: BaseException, what: str) -> None:
        self.ctx.check_fatal(exc)
        self.ctx.summary.fail(what, exc)

    def _import_prompt(self, name: str, row: dict, versions: list[dict]) -> None:
        ctx = self.ctx
        try:
            existing = ctx.dest.registered_model(name)
            if existing is not None and not existing._is_prompt():
                raise ValueError(f"a registered model named {name!r} exists on the destination")
            ours = existing is not None and existing.tags.get(SOURCE_NAME_TAG) == name
            if existing is not None and ctx.options.delete_prompt:
                ctx.dest.delete_registered_model(name)
                existing = None
            elif existing is not None and not ours:
                ctx.summary.add("prompts", "skipped")
                ctx.summary.add("prompt_versions", "skipped", len(versions))
                ctx.summary.note(f"prompt {name!r} exists on the destination and was left as it is (--delete-prompt replaces it)")
                return
            if existing is None:
                ctx.dest.create_registered_model(name, self._prompt_tags(row), row["description"])
                ctx.summary.add("prompts", "created")
            else:
                ctx.summary.add("prompts", "skipped")
        except Exception as exc:
            self._fail(exc, "prompts")
            ctx.summary.fail("prompt_versions", "its prompt failed", len(versions))
            return
        numbers = VersionNumbers(ctx.dest, name, keep_numbers=True, prompt=True)
        for version in versions:
            if str(version["version"]) in numbers.present:
                ctx.summary.add("prompt_versions", "skipped")
                continue
            try:
                numbers.create(
                    version["version"],
                    lambda: ctx.dest.create_prompt_version(name, self._version_tags(version), version["commit_message"]),
                )
                ctx.summary.add("prompt_versions", "created")
            except Exception as exc:
                self._fail(exc, "prompt_versions")
        try:
            numbers.release()
            set_aliases(ctx, name, row["aliases"], numbers, existing.aliases if existing else {})
        except Exception as exc:
            self._fail(exc, "prompts")

    def _prompt_tags(self, row: dict) -> dict[str, str]:
        tags = tags_without_provenance(row["tags"])
        if PROMPT_EXPERIMENT_IDS_TAG_KEY in tags:
            # MLflow writes ",1,2," so that a LIKE '%,1,%' search cannot match 10.
            ids = self._dest_ids("experiment", tags.pop(PROMPT_EXPERIMENT_IDS_TAG_KEY))
            if ids:
                tags[PROMPT_EXPERIMENT_IDS_TAG_KEY] = f",{','.join(ids)},"
        tags.update({IS_PROMPT_TAG_KEY: "true", SOURCE_NAME_TAG: row["name"]})
        tags.update(source_time_tags(self.ctx, row))
        return tags

    def _version_tags(self, version: dict) -> dict[str, str]:
        tags = tags_without_provenance(version["tags"])
        if PROMPT_ASSOCIATED_RUN_IDS_TAG_KEY in tags:
            ids = self._dest_ids("run", tags.pop(PROMPT_ASSOCIATED_RUN_IDS_TAG_KEY))
            if ids:
                tags[PROMPT_ASSOCIATED_RUN_IDS_TAG_KEY] = ",".join(ids)
        template = json.loads(version["template_json"])
        chat = not isinstance(template, str)
        tags[IS_PROMPT_TAG_KEY] = "true"
        tags[PROMPT_TEXT_TAG_KEY] = version["template_json"] if chat else template
        tags[PROMPT_TYPE_TAG_KEY] = PROMPT_TYPE_CHAT if chat else PROMPT_TYPE_TEXT
        for key, column in ((RESPONSE_FORMAT_TAG_KEY, "response_format_json"), (PROMPT_MODEL_CONFIG_TAG_KEY, "model_config_json")):
            if version[column] is not None:
                tags[key] = version[column]
        tags[SOURCE_VERSION_TAG] = str(version["version"])
        tags.update(source_time_tags(self.ctx, version))
        return tags

    def _dest_ids(self, kind: str, id_list: str) -> list[str]:
        """Destination IDs of a comma-separated list of source IDs; those not imported are left out."""
        source_ids = [i.strip() for i in id_list.split(",") if i.strip()]
        dest_ids = [d for d in (self.ctx.ids.dest(kind, i) for i in source_ids) if d]
        if len(dest_ids) < len(source_ids):
            self.ctx.summary.note(f"links of prompts to {kind}s that are not in the archive were left out")
        return dest_ids

    def finish(self) -> None:
        pass
