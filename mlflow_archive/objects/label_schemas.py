"""Label schemas (the questions reviewers answer) of the exported experiments.

Label schemas follow their experiments (``--no-label-schemas`` leaves them out). MLflow's API writes its default
schema ("Feedback", ``is_default``) into an experiment the first time that experiment's schemas are listed, so an
export over REST never lists them: it reads by ID the schemas that the review queues of the active experiments ask
(a note says so), which are the ones review needs. An export from the database reads every experiment's schemas,
deleted ones' too, and writes nothing.

Import creates each schema by name in the destination's copy of its experiment (MLflow gives it its own ID, times
and creator); a schema of that name already there is present (skipped). The default schema is never created: it is
mapped to the destination's own default, which MLflow writes when the import lists the experiment's schemas. Every
schema's destination ID is recorded for the sections that refer to schemas.
"""

from __future__ import annotations

from ..context import ExportContext
from ._common import ExperimentKindImporter, experiments_read, export_by_experiment

SECTION = "label_schemas"
KIND = "label_schema"  # in the import's ID map


def export(ctx: ExportContext) -> None:
    if ctx.options.no_label_schemas:
        return
    experiments = experiments_read(ctx, ctx.source.reads_every_label_schema, "label schemas")
    if not ctx.source.reads_every_label_schema:
        ctx.summary.note(
            "label schemas: only those that review queues ask were read (MLflow's API writes a default schema into "
            "each experiment whose schemas it lists); an export from the database carries every experiment's"
        )
    export_by_experiment(ctx, SECTION, experiments, ctx.source.label_schemas_unsupported, ctx.source.label_schemas,
                         {SECTION: lambda schemas: schemas})


class Importer(ExperimentKindImporter):
    SECTION = SECTION

    def unsupported_in(self, experiment_id: str) -> str | None:
        return self.ctx.dest.label_schemas_unsupported(experiment_id)

    def import_chunk(self, schemas: list[dict], tables: dict[str, list[dict]]) -> None:
        # In order: a default schema lists the experiment's schemas once, which writes the destination's default.
        for _ in self.ctx.ordered_map(self._import_schema, schemas):
            pass

    def _import_schema(self, row: dict) -> None:
        ctx, what = self.ctx, f"label schema {row['name']!r}"
        experiment_id = self.experiment(row, what)
        if experiment_id is None:
            return
        try:
            if row["is_default"]:
                present = next((s for s in ctx.dest.label_schemas_listed(experiment_id) if s.is_default), None)
            else:
                present = ctx.dest.label_schema_by_name(experiment_id, row["name"])
            if present is None and not row["is_default"]:
                present = ctx.dest.create_label_schema(row, experiment_id)
                ctx.summary.add(SECTION, "created")
            elif present is None:
                ctx.summary.fail(SECTION, f"{what}: the destination has no default schema to stand for it")
                return
            else:
                ctx.summary.add(SECTION, "skipped")
            ctx.ids.put(KIND, row["schema_id"], present.schema_id)
        except Exception as exc:
            ctx.check_fatal(exc)
            ctx.summary.fail(SECTION, f"{what}: {exc}")
