"""One module per object type, in archive order.

Each module names its ``SECTION`` and provides ``export(ctx)`` and an
``Importer(ctx)`` with ``member(member)``, ``end_chunk()`` and ``finish()``.
Adding an object type means adding a module and one line here.
"""

from . import (
    evaluation_datasets, experiments, issues, label_schemas, logged_models, prompts, registry, runs, scorers, traces, webhooks,
)

OBJECT_MODULES = (
    experiments, runs, logged_models, registry, prompts, traces, evaluation_datasets, webhooks, scorers, label_schemas, issues,
)
