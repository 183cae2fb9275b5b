"""Model version sources from an archive, held to the rules MLflow's server applies to the source of a new version.

MLflow's SQL store takes any source, and a server reads a version's files from wherever its row points: a
database written directly (``restore``, ``import`` into a database URI) must get no source the server would refuse
over REST, such as ``file:///etc``, which would serve that folder to every client of the server.
"""

from __future__ import annotations

import urllib.parse
from pathlib import Path

from mlflow.exceptions import MlflowException
from mlflow.utils.file_utils import local_file_uri_to_path
from mlflow.utils.uri import is_local_uri

REFUSED = (
    "outside what the destination serves (MLflow's server refuses a local path outside the version's run, a path "
    "that climbs out with '..', and a runs:/ or models:/ URI of another server)"
)


def refused(source: str, local_roots: tuple[str, ...] = ()) -> bool:
    """Whether MLflow's server (``_create_model_version``) refuses ``source`` for where it points: a local path
    outside ``local_roots`` (the local artifact folders of the version's run and logged model, the only ones it takes
    a local source from), a path that leaves its folder (its own check: ``..``, NUL, percent-encoded too), or a
    ``runs:`` or ``models:`` URI of another server.

    Its rules of lineage (a ``runs:/`` source must name the version's run) are left out: they guard who reads what,
    not which files are read, and versions made by older servers break them.
    """
    # mlflow.server pulls in Flask: imported only when a version is checked.
    from mlflow.server.handlers import _validate_non_local_source_contains_relative_paths

    try:
        local = is_local_uri(source, is_tracking_or_registry_uri=False)
    except MlflowException:  # a file: URI of another host
        return True
    if local:
        path = Path(local_file_uri_to_path(source)).resolve()
        roots = [Path(local_file_uri_to_path(root)).resolve() for root in local_roots if is_local_uri(root, False)]
        return not any(root in (path, *path.parents) for root in roots)
    parsed = urllib.parse.urlparse(source)
    if parsed.scheme in ("runs", "models") and parsed.netloc:
        return True
    try:
        _validate_non_local_source_contains_relative_paths(source)
    except MlflowException:
        return True
    return False
