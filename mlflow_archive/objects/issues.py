"""Issues of the exported experiments, with their searchable category index.

Issues follow their experiments: each exported experiment's issues travel with it (``--no-issues`` leaves them out),
over REST and from the database alike (deleted experiments' too). A REST export gives an issue never seen since its
creation that time as last seen (MLflow's API does); a database export keeps the stored null.

Import creates each issue under its own ID (MLflow's API takes it), in the destination's copy of its experiment, its
source run re-pointed to the destination's copy of that run. An issue whose ID the destination holds is present
(skipped), or, when it is in another experiment, the destination's own (counted as failed). MLflow gives a created
issue its own creation and update times and makes its creator its last updater; the last-seen time, status,
severity, root causes, categories and metadata are the archive's. The category index is MLflow's to write: the
import counts its rows with their issues.
"""

from __future__ import annotations

from ..context import ExportContext
from ._common import ExperimentKindImporter, export_by_experiment

SECTION = "issues"
CATEGORIES = "issue_categories"


def export(ctx: ExportContext) -> None:
    if ctx.options.no_issues:
        return
    export_by_experiment(ctx, SECTION, ctx.experiments, ctx.source.issues_unsupported, ctx.source.issues, {
        SECTION: lambda issues: issues,
        CATEGORIES: lambda issues: [c for i in issues for c in i["index"]],
    })


class Importer(ExperimentKindImporter):
    SECTION = SECTION

    def unsupported_in(self, experiment_id: str) -> str | None:
        return self.ctx.dest.issues_unsupported(experiment_id)

    def import_chunk(self, issues: list[dict], tables: dict[str, list[dict]]) -> None:
        index: dict[str, int] = {}
        for row in tables.get(CATEGORIES, []):
            index[row["issue_id"]] = index.get(row["issue_id"], 0) + 1
        for issue, outcome in zip(issues, self.ctx.ordered_map(self._import_issue, issues)):
            if outcome and index.get(issue["issue_id"]):
                self.ctx.summary.add(CATEGORIES, outcome, index[issue["issue_id"]])

    def _import_issue(self, row: dict) -> str | None:
        """``created`` or ``skipped``; None when the issue failed (counted)."""
        ctx, what = self.ctx, f"issue {row['issue_id']}"
        experiment_id = self.experiment(row, what)
        if experiment_id is None:
            return None
        try:
            present = ctx.dest.issue(row["issue_id"])
            if present is not None:
                if str(present.experiment_id) != experiment_id:
                    ctx.summary.fail(SECTION, f"{what}: the destination holds this ID in experiment {present.experiment_id}")
                    return None
                ctx.summary.add(SECTION, "skipped")
                return "skipped"
            run_id = row["source_run_id"] and ctx.ids.dest("run", row["source_run_id"])
            ctx.dest.create_issue(row, experiment_id, run_id or None)
            ctx.summary.add(SECTION, "created")
            return "created"
        except Exception as exc:
            ctx.check_fatal(exc)
            ctx.summary.fail(SECTION, f"{what}: {exc}")
            return None
