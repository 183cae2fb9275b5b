"""Adds ``mlflow archive`` to MLflow's own CLI.

MLflow 3 has no entry-point group for CLI commands, but ``import mlflow`` loads
the ``mlflow.tracking_store`` entry points before ``mlflow.cli`` is imported. Our
entry point there (the ``mlar`` scheme) imports this module, which installs a
post-import hook: when ``mlflow.cli`` finishes executing, the ``archive`` group
is attached to it. This module imports nothing heavy, so ``import mlflow`` stays
fast, and every step is guarded so that a broken install never breaks ``mlflow``.
"""

from __future__ import annotations

import importlib.abc
import importlib.util
import sys

_CLI_MODULE = "mlflow.cli"


def _attach(module) -> None:
    try:
        from mlflow_archive.cli import cli as archive_group

        if "archive" not in module.cli.commands:
            module.cli.add_command(archive_group, name="archive")
    except Exception as exc:  # a broken plugin must leave `mlflow` usable
        print(f"mlflow-archive: `mlflow archive` is unavailable ({exc}).", file=sys.stderr)


class _AttachingLoader(importlib.abc.Loader):
    def __init__(self, loader) -> None:
        self._loader = loader

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module) -> None:
        self._loader.exec_module(module)
        _attach(module)


class _CliFinder(importlib.abc.MetaPathFinder):
    """Wraps the loader of ``mlflow.cli`` once, then steps out of the way."""

    def find_spec(self, fullname, path, target=None):
        if fullname != _CLI_MODULE:
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(fullname)
        if spec is not None and spec.loader is not None:
            spec.loader = _AttachingLoader(spec.loader)
        return spec


def _install() -> None:
    if _CLI_MODULE in sys.modules:
        _attach(sys.modules[_CLI_MODULE])
    elif not any(isinstance(f, _CliFinder) for f in sys.meta_path):
        sys.meta_path.insert(0, _CliFinder())


def archive_store_builder(store_uri: str, artifact_uri: str | None = None):
    """Builder for ``mlar://`` tracking URIs, a scheme reserved for read-only archive stores."""
    from mlflow.exceptions import MlflowException

    raise MlflowException(
        f"{store_uri!r}: opening an archive as a tracking store is not supported yet; "
        "replay it into a server with `mlflow archive import -i FILE`."
    )


_install()
