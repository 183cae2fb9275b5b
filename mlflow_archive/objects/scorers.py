"""Registered scorers (judges) of the exported experiments, every version, and their online scoring configurations.

Scorers follow their experiments: each exported experiment's scorers travel with it (``--no-scorers`` leaves them
out). MLflow's API refuses to list a deleted experiment's scorers, so an export over REST carries only those of
active experiments (a note counts the others); an export from the database carries them all. A version's
serialized scorer is carried as the source gives it: a judge whose model is a gateway endpoint names the endpoint
by its ID from a database, by its name over REST (the gateway itself does not travel yet).

Import registers each version under the destination's copy of its experiment, in number order, so the numbers stay
the source's: a number the source deleted (a gap) gets a placeholder version, a copy of the next one, deleted again
as soon as that next version is registered. A version already on the destination with the same definition is present;
one with another definition is the destination's own, left as it is and counted as failed. A scorer is created with
its first version; the destination gives it its own ID. An online scoring configuration is set through the scorer's
experiment and name (MLflow points it at the destination's scorer); the destination's own configuration of a scorer
is left as it is.
"""

from __future__ import annotations

import json

from ..context import ExportContext
from ..endpoints import serialized_scorer
from ._common import ExperimentKindImporter, create_unless_present, experiments_read, export_by_experiment

SECTION = "scorers"
VERSIONS = "scorer_versions"
CONFIGS = "online_scoring_configs"


# -- Export -------------------------------------------------------------------------------

def export(ctx: ExportContext) -> None:
    if ctx.options.no_scorers:
        return
    experiments = experiments_read(ctx, ctx.source.reads_deleted_experiments_scorers, "scorers")
    export_by_experiment(ctx, SECTION, experiments, ctx.source.scorers_unsupported, ctx.source.scorers, {
        SECTION: lambda scorers: scorers,
        VERSIONS: lambda scorers: [v for s in scorers for v in s["versions"]],
        CONFIGS: lambda scorers: [c for s in scorers for c in s["configs"]],
    })


# -- Import -------------------------------------------------------------------------------

def same_definition(serialized: str, other: str) -> bool:
    """Whether two serialized scorers are one definition (MLflow's API gives back the JSON it stored, re-encoded)."""
    return json.loads(serialized) == json.loads(other)


class Importer(ExperimentKindImporter):
    SECTION = SECTION

    def unsupported_in(self, experiment_id: str) -> str | None:
        return self.ctx.dest.scorers_unsupported(experiment_id)

    def import_chunk(self, scorers: list[dict], tables: dict[str, list[dict]]) -> None:
        versions: dict[str, list[dict]] = {}
        configs: dict[str, list[dict]] = {}
        for row in tables.get(VERSIONS, []):
            versions.setdefault(row["scorer_id"], []).append(row)
        for row in tables.get(CONFIGS, []):
            configs.setdefault(row["scorer_id"], []).append(row)
        # Scorers concurrently, each one's versions one after another (each takes the next number).
        work = [(s, versions.get(s["scorer_id"], []), configs.get(s["scorer_id"], [])) for s in scorers]
        for _ in self.ctx.ordered_map(lambda item: self._import_scorer(*item), work):
            pass

    def _import_scorer(self, scorer: dict, versions: list[dict], configs: list[dict]) -> None:
        ctx, name = self.ctx, scorer["name"]
        experiment_id = self.experiment(scorer, f"scorer {name!r}")
        if experiment_id is None:
            return
        try:
            present = {v.scorer_version: v for v in ctx.dest.scorer_versions(experiment_id, name)}
            existed = bool(present)
            for row in versions:
                self._import_version(experiment_id, name, row, present)
            if not present:  # no version could be registered (each failure is counted)
                if configs:
                    ctx.summary.fail(CONFIGS, f"the online scoring configuration of scorer {name!r}: the scorer has no "
                                              "version on the destination", len(configs))
                return
            ctx.summary.add(SECTION, "skipped" if existed else "created")
            scorer_id = next(iter(present.values())).scorer_id
            for row in configs:
                self._import_config(experiment_id, name, scorer_id, row)
        except Exception as exc:
            ctx.check_fatal(exc)
            ctx.summary.fail(SECTION, f"scorer {name!r}: {exc}")

    def _import_version(self, experiment_id: str, name: str, row: dict, present: dict) -> None:
        ctx, number = self.ctx, row["version"]
        have = present.get(number)
        if have is not None:
            if same_definition(serialized_scorer(have), row["serialized_scorer"]):
                ctx.summary.add(VERSIONS, "skipped")
            else:
                ctx.summary.fail(VERSIONS, f"version {number} of scorer {name!r} is on the destination with another "
                                           "definition; left as it is")
            return
        highest = max(present, default=0)
        if highest >= number:
            ctx.summary.fail(VERSIONS, f"version {number} of scorer {name!r} cannot keep its number: the destination's "
                                       f"scorer already has version {highest}")
            return
        placeholders = []
        try:
            for _ in range(highest + 1, number):  # numbers the source deleted
                placeholders.append(ctx.dest.register_scorer(experiment_id, name, row["serialized_scorer"]).scorer_version)
            created = ctx.dest.register_scorer(experiment_id, name, row["serialized_scorer"])
            present[created.scorer_version] = created
            ctx.summary.add(VERSIONS, "created")
        except Exception as exc:
            ctx.check_fatal(exc)
            ctx.summary.fail(VERSIONS, f"version {number} of scorer {name!r}: {exc}")
        finally:
            for placeholder in placeholders:
                ctx.dest.delete_scorer_version(experiment_id, name, placeholder)

    def _import_config(self, experiment_id: str, name: str, scorer_id: str, row: dict) -> None:
        create_unless_present(
            self.ctx, CONFIGS, f"the online scoring configuration of scorer {name!r}",
            self.ctx.dest.online_scoring_configs([scorer_id]),
            lambda c: (c.sample_rate, c.filter_string) == (row["sample_rate"], row["filter_string"]),
            lambda: self.ctx.dest.upsert_online_scoring_config(experiment_id, name, row["sample_rate"], row["filter_string"]),
        )
