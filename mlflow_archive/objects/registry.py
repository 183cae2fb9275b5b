"""Registered models, their versions (numbers kept, gaps included), stages and aliases.

Version sources are rewritten to the destination's copy: ``models:/<new model id>``
for logged models, ``runs:/<new run id>/...`` or the new run's artifact URI for run
artifacts. A version whose source is in neither place is restored from the model
files exported with ``--export-version-model``, uploaded to a run of the experiment
``mlflow-archive-model-sources`` on the destination.
"""

from __future__ import annotations

import re
import shutil
from collections import defaultdict
from pathlib import Path
from typing import Callable
from urllib.parse import quote

from mlflow.entities.model_registry import ModelVersion, RegisteredModel
from mlflow.prompt.constants import IS_PROMPT_TAG_KEY
from mlflow.utils.mlflow_tags import MLFLOW_MODEL_VERSIONS

from ..archive import Member
from ..context import PROVENANCE_PREFIX, SOURCE_TAG_PREFIX, ExportContext, ImportContext
from ..endpoints import TrackingDestination
from ..members import ARTIFACTS_EXT, extract_file
from ..sources import REFUSED, refused
from ._common import key_values, pack_artifacts
from .logged_models import MODEL_VERSIONS_KIND

SECTION = "registry"
PER_CHUNK = 100
SOURCE_NAME_TAG = PROVENANCE_PREFIX + "source_model_name"
SOURCE_VERSION_TAG = PROVENANCE_PREFIX + "source_version"
PLACEHOLDER_TAG = PROVENANCE_PREFIX + "placeholder"
# A source of no artifact store: the server accepts it with neither run nor logged model to check it against.
PLACEHOLDER_SOURCE = "mlflow-archive:/version-number-placeholder"
SOURCES_EXPERIMENT = "mlflow-archive-model-sources"
LOGGED_MODEL_URI = re.compile(r"^models:/(m-[0-9a-f]+)(/.*)?$")
RUNS_URI = re.compile(r"^runs:/([0-9a-f]+)(/.*)?$")


def version_owner(name: str, version: int | str) -> str:
    """Owner path of a version's model files inside an artifact tarball."""
    return f"{quote(name, safe='').replace('.', '%2E')}/{version}"


class VersionNumbers:
    """Replays the version numbers of one registered model or prompt, gaps from deleted versions included.

    A placeholder version takes each missing number. It links to nothing (no run, no logged model, so
    no logged model's ``mlflow.modelVersions`` tag names it): a prompt placeholder has MLflow's prompt
    source and tag (a model placeholder must not have it: a search would then hide the model's versions),
    a model placeholder ``PLACEHOLDER_SOURCE``. Placeholders are deleted once a later real version exists,
    their tags first (the registry keeps a deleted version's tags); until then they hold the registry's
    number counter (which counts deleted versions too), so an interrupted import goes on at the right number.
    """

    def __init__(self, dest: TrackingDestination, name: str, keep_numbers: bool, prompt: bool = False, native: bool = False) -> None:
        self.dest, self.name, self.keep_numbers, self.prompt = dest, name, keep_numbers, prompt
        versions = list(dest.model_versions(name, prompt))
        self.present = {v.tags[SOURCE_VERSION_TAG]: v.version for v in versions if SOURCE_VERSION_TAG in v.tags}
        if native:  # the very model the archive came from: each of its versions is present under its own number
            self.present.update({str(v.version): v.version for v in versions if PLACEHOLDER_TAG not in v.tags})
        self.placeholders = [int(v.version) for v in versions if PLACEHOLDER_TAG in v.tags]
        self.latest = max((int(v.version) for v in versions), default=0)
        self.latest_real = max((int(v.version) for v in versions if PLACEHOLDER_TAG not in v.tags), default=0)

    def create(self, number: int, create: Callable[[], str]) -> str:
        """Create the source's version ``number`` with ``create()``; returns the destination version."""
        if self.keep_numbers:
            while self.latest + 1 < number:
                self.latest = int(self._create_placeholder())
                self.placeholders.append(self.latest)
        created = create()
        self.latest = max(self.latest, int(created))
        self.latest_real = max(self.latest_real, int(created))
        self.present[str(number)] = created
        return created

    def _create_placeholder(self) -> str:
        if self.prompt:
            return self.dest.create_prompt_version(self.name, {IS_PROMPT_TAG_KEY: "true", PLACEHOLDER_TAG: "true"}, None)
        return self.dest.create_model_version(self.name, PLACEHOLDER_SOURCE, None, None, {PLACEHOLDER_TAG: "true"}, None, None)

    def release(self) -> None:
        """Delete the placeholders below the last real version (those above remain only after a failure)."""
        tags = [PLACEHOLDER_TAG, IS_PROMPT_TAG_KEY] if self.prompt else [PLACEHOLDER_TAG]
        for number in [p for p in self.placeholders if p < self.latest_real]:
            self.dest.delete_model_version_tags(self.name, str(number), tags)
            self.dest.delete_model_version(self.name, str(number))
            self.placeholders.remove(number)


def tags_without_provenance(rows: list[dict]) -> dict[str, str]:
    return {t["key"]: t["value"] for t in rows if not t["key"].startswith(PROVENANCE_PREFIX)}


def source_time_tags(ctx: ImportContext, row: dict) -> dict[str, str]:
    """With ``--import-source-tags``: the times the API cannot set, as ``mlflow_archive.source.*`` tags."""
    if not ctx.options.import_source_tags:
        return {}
    return {SOURCE_TAG_PREFIX + k: str(row[k]) for k in ("creation_timestamp", "last_updated_timestamp") if row[k] is not None}


def replay_by_name(ctx: ImportContext, parents: dict[str, dict], versions: list[dict], import_one: Callable) -> None:
    """``import_one(name, row, its versions in number order)`` for each registered model or prompt, concurrently."""
    by_name: dict[str, list[dict]] = defaultdict(list)
    for row in versions:
        by_name[row["name"]].append(row)
    work = [(name, row, sorted(by_name.get(name, []), key=lambda r: r["version"])) for name, row in parents.items()]
    for _ in ctx.ordered_map(lambda item: import_one(*item), work):
        pass


def set_aliases(ctx: ImportContext, name: str, aliases: list[dict], numbers: VersionNumbers, existing: dict[str, str]) -> None:
    """Point each alias the destination lacks at the destination's copy of its version. An alias the destination
    has already is the user's (or what an earlier import set, and the user may have moved since): never moved."""
    for alias in aliases:
        dest_version = numbers.present.get(str(alias["version"]))
        if not dest_version:
            continue
        held = existing.get(alias["alias"])
        if held is None:
            ctx.dest.set_alias(name, alias["alias"], dest_version)
        elif str(held) != str(dest_version):
            ctx.summary.leave_alone(
                f"alias {alias['alias']!r} of {name!r} points at version {held} on the destination, and at the copy of "
                f"version {alias['version']} (version {dest_version}) in the archive: left at version {held}"
            )


# -- Export -------------------------------------------------------------------------------

def export(ctx: ExportContext) -> None:
    models = ctx.selection.registered_models
    for start in range(0, len(models), PER_CHUNK):
        _export_chunk(ctx, models[start : start + PER_CHUNK])


def _export_chunk(ctx: ExportContext, models: list[tuple[RegisteredModel, list[ModelVersion]]]) -> None:
    chunk = ctx.writer.chunk(SECTION)
    chunk.write_table(
        "registered_models",
        {
            "name": [m.name for m, _ in models],
            "description": [m.description or None for m, _ in models],
            "creation_timestamp": [m.creation_timestamp for m, _ in models],
            "last_updated_timestamp": [m.last_updated_timestamp for m, _ in models],
            "tags": [key_values(m.tags) for m, _ in models],
            "aliases": [[{"alias": a, "version": int(v)} for a, v in (m.aliases or {}).items()] for m, _ in models],
        },
    )
    versions = [v for _, vs in models for v in vs]
    chunk.write_table(
        "model_versions",
        {
            "name": [v.name for v in versions],
            "version": [int(v.version) for v in versions],
            "creation_timestamp": [v.creation_timestamp for v in versions],
            "last_updated_timestamp": [v.last_updated_timestamp for v in versions],
            "description": [v.description or None for v in versions],
            "user_id": [v.user_id or None for v in versions],
            "current_stage": [v.current_stage for v in versions],
            "source": [v.source for v in versions],
            "run_id": [v.run_id or None for v in versions],
            "run_link": [v.run_link or None for v in versions],
            "status": [v.status for v in versions],
            "status_message": [v.status_message or None for v in versions],
            "model_id": [_model_id(v) for v in versions],
            "tags": [key_values(v.tags) for v in versions],
        },
    )
    if ctx.options.export_version_model:
        pack_artifacts(
            ctx, chunk, versions, lambda v: version_owner(v.name, v.version),
            lambda v, target: ctx.source.download_version(v.name, v.version, target),
        )
    ctx.summary.add("registered_models", "exported", len(models))
    ctx.summary.add("model_versions", "exported", len(versions))


def _model_id(version: ModelVersion) -> str | None:
    if version.model_id:
        return version.model_id
    match = LOGGED_MODEL_URI.match(version.source or "")
    return match.group(1) if match else None


# -- Import -------------------------------------------------------------------------------

class Importer:
    def __init__(self, ctx: ImportContext) -> None:
        self.ctx = ctx
        self.models: dict[str, dict] = {}  # this chunk's registered models, by source name
        self.versions: list[dict] = []
        self.version_files: Path = ctx.workdir / "versions"

    def member(self, member: Member) -> None:
        if member.kind == ARTIFACTS_EXT:
            for path, data in member.iter_artifacts():
                owner_and_file = path.split("/", 2)
                if len(owner_and_file) < 3:  # names no file of a model version: ignored (FORMAT.md 6.4)
                    continue
                name, version, relative = owner_and_file
                extract_file(data, self.version_files / name / version, relative)
            return
        table = member.read_table()
        if member.stem == "registered_models":
            for row in table.to_pylist():
                self.models[row["name"]] = row
        else:
            self.versions += table.to_pylist()

    def _fail(self, exc: BaseException, what: str = "model_versions") -> None:
        self.ctx.check_fatal(exc)
        self.ctx.summary.fail(what, exc)

    def end_chunk(self) -> None:
        # Versions need their files (the chunk's last member), so a chunk is replayed at its end.
        replay_by_name(self.ctx, self.models, self.versions, self._import_model)
        shutil.rmtree(self.version_files, ignore_errors=True)
        self.models, self.versions = {}, []

    def _import_model(self, source_name: str, row: dict, versions: list[dict]) -> None:
        ctx = self.ctx
        name = ctx.options.model_rename.get(source_name, source_name)
        try:
            existing = ctx.dest.registered_model(name)
            if existing is not None and existing._is_prompt():
                raise ValueError(f"a prompt named {name!r} exists on the destination")
            if existing is not None and ctx.options.delete_model:
                ctx.dest.delete_registered_model(name)
                existing = None
            # The very model the archive came from (or a restore of it): same name, created in the same millisecond.
            native = (
                existing is not None and SOURCE_NAME_TAG not in existing.tags
                and existing.creation_timestamp == row["creation_timestamp"]
            )
            tags = tags_without_provenance(row["tags"])
            tags[SOURCE_NAME_TAG] = source_name
            tags.update(source_time_tags(ctx, row))
            if existing is None:
                ctx.dest.create_registered_model(name, tags, row["description"])
                ctx.summary.add("registered_models", "created")
            else:
                if not native:
                    # Never the source-name tag: on the user's model, it would make a later import take it for its own.
                    missing = {k: v for k, v in tags.items() if k not in existing.tags and k != SOURCE_NAME_TAG}
                    ctx.dest.set_registered_model_tags(name, missing)
                ctx.summary.add("registered_models", "skipped")
        except Exception as exc:
            self._fail(exc, "registered_models")
            ctx.summary.fail("model_versions", "its registered model failed", len(versions))
            return
        # Ours (made by an earlier import of this model, or native): versions keep their numbers.
        ours = existing is None or existing.tags.get(SOURCE_NAME_TAG) == source_name or native
        numbers = VersionNumbers(ctx.dest, name, keep_numbers=ours, native=native)
        unheld = []
        for version in versions:
            if str(version["version"]) in numbers.present:
                ctx.summary.add("model_versions", "skipped")
                continue
            try:
                rewritten = self._rewrite_source(name, source_name, version)
                if rewritten is None:
                    unheld.append(str(version["version"]))
                    continue
                self._check_source(name, version, rewritten)
                numbers.create(version["version"], lambda: self._import_version(name, version, rewritten))
                ctx.summary.add("model_versions", "created")
            except Exception as exc:
                self._fail(exc)
        if unheld:
            ctx.summary.note(
                f"version(s) {', '.join(unheld)} of {name!r} were not imported: their source is a logged model, and "
                f"{ctx.dest.lacks('logged_models')} (export with --export-version-model to carry their files)"
            )
        if not ours:
            ctx.summary.note(f"registered model {name!r} existed already: imported versions got the next free numbers")
        try:
            numbers.release()
            set_aliases(ctx, name, row["aliases"], numbers, existing.aliases if existing else {})
        except Exception as exc:
            self._fail(exc, "registered_models")

    def _import_version(self, name: str, version: dict, rewritten: tuple[str, str | None, str | None]) -> str:
        ctx = self.ctx
        source, run_id, model_id = rewritten
        tags = tags_without_provenance(version["tags"])
        tags[SOURCE_VERSION_TAG] = str(version["version"])
        tags.update(source_time_tags(ctx, version))
        created = ctx.dest.create_model_version(name, source, run_id, model_id, tags, version["description"], version["run_link"])
        listed = ctx.ids.dest(MODEL_VERSIONS_KIND, version["model_id"]) if model_id else None
        if listed:  # the registry has just rewritten the logged model's list: the source's list again
            ctx.dest.set_logged_model_tags(model_id, {MLFLOW_MODEL_VERSIONS: listed})
        if version["current_stage"] and version["current_stage"] != "None":
            ctx.dest.transition_stage(name, created, version["current_stage"])
        return created

    def _check_source(self, name: str, version: dict, rewritten: tuple[str, str | None, str | None]) -> None:
        """A source the destination's server would refuse fails the version, as it does over REST, also when MLflow's
        store is written directly (it checks no source)."""
        source, run_id, model_id = rewritten
        if self.ctx.dest.takes_any_source and refused(source, self.ctx.dest.artifact_locations(run_id, model_id)):
            raise ValueError(f"version {version['version']} of {name!r}: its source {version['source']!r} is {REFUSED}")

    def _rewrite_source(self, name: str, source_name: str, version: dict) -> tuple[str, str | None, str | None] | None:
        """The destination's (source, run ID, model ID) for a version; None when the destination cannot hold it."""
        ctx = self.ctx
        source = version["source"] or ""
        run_id = ctx.ids.dest("run", version["run_id"]) if version["run_id"] else None
        model_id = ctx.ids.dest("logged_model", version["model_id"]) if version["model_id"] else None
        logged = LOGGED_MODEL_URI.match(source)
        if logged and model_id:
            return f"models:/{model_id}{logged.group(2) or ''}", run_id, model_id
        runs_uri = RUNS_URI.match(source)
        if runs_uri and ctx.ids.dest("run", runs_uri.group(1)):
            return f"runs:/{ctx.ids.dest('run', runs_uri.group(1))}{runs_uri.group(2) or ''}", run_id, None
        for kind, id_kind in (("run_location", "run"), ("model_location", "logged_model")):
            prefix, dest_prefix = ctx.ids.longest_prefix(kind, source)
            if prefix:
                return dest_prefix + source[len(prefix) :], run_id, model_id if id_kind == "logged_model" else None
        files = self.version_files / version_owner(source_name, version["version"])
        if files.is_dir():
            return self._upload_version_files(name, version, files)
        if logged and not ctx.dest.has("logged_models"):
            return None
        ctx.summary.note(
            f"version {version['version']} of {name!r} keeps its source {source!r}: it is in neither the archive's runs "
            "nor its logged models (export with --export-version-model to carry the files)"
        )
        return source, run_id, model_id

    def _upload_version_files(self, name: str, version: dict, files: Path) -> tuple[str, str, None]:
        ctx = self.ctx
        holder = ctx.dest.create_holder_run(
            SOURCES_EXPERIMENT, f"{name} v{version['version']}", {SOURCE_NAME_TAG: name, SOURCE_VERSION_TAG: str(version["version"])}
        )
        ctx.dest.log_artifacts(holder.info.artifact_uri, files, "model")
        return f"runs:/{holder.info.run_id}/model", holder.info.run_id, None

    def finish(self) -> None:
        pass
