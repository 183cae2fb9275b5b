"""The one way tests run ``mlflow archive``: in-process through click's runner, or as a real process.

In-process (``run``) costs nothing to start, so it is the default for checks of options,
messages and exit codes. ``run_process`` starts the real ``mlflow`` console script, for the
tests where the process itself is what is tested (the plugin hook, stdin/stdout, signals).
Both run with neither MLFLOW_TRACKING_URI nor MLFLOW_REGISTRY_URI set unless a
``tracking_uri`` is given, and in a scratch folder, so MLflow's default store
(``sqlite:///mlflow.db`` in the working folder) is never created in the repository.
"""

from __future__ import annotations

import atexit
import os
import re
import shlex
import shutil
import subprocess
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass

import pytest

from servers import console_script

MLFLOW = console_script("mlflow")
PROCESS_TIMEOUT = 300
IMPORT_LINE = re.compile(r"^(\w+): (\d+) created, (\d+) already present, (\d+) failed", re.MULTILINE)
EXPORT_LINE = re.compile(r"^(\w+): (\d+) exported", re.MULTILINE)

SCRATCH_CWD = tempfile.mkdtemp(prefix="archive-cli-cwd-")
atexit.register(shutil.rmtree, SCRATCH_CWD, True)


@dataclass
class CliResult:
    command: str
    returncode: int
    stdout_text: str
    stderr_text: str

    def describe(self) -> str:
        return (
            f"`{self.command}` exited with {self.returncode}\n--- stdout ---\n{self.stdout_text[-3000:]}\n"
            f"--- stderr ---\n{self.stderr_text[-6000:]}"
        )


def _env_changes(tracking_uri: str | None) -> dict[str, str | None]:
    return {"MLFLOW_TRACKING_URI": tracking_uri, "MLFLOW_REGISTRY_URI": None}


@contextmanager
def _working_dir(path):
    before = os.getcwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(before)


def run(
    *args, tracking_uri: str | None = None, cwd=None, check: bool = True, input: bytes | None = None, env: dict | None = None
) -> CliResult:
    """``mlflow archive ARGS`` in this process (click's runner); ``check`` fails the test on a non-zero exit.

    ``env`` sets (or, with None, removes) further environment variables for the call.
    """
    from click.testing import CliRunner

    from mlflow_archive.cli import cli

    argv = [str(a) for a in args]
    runner = CliRunner()
    with _working_dir(cwd or SCRATCH_CWD):
        outcome = runner.invoke(cli, argv, env={**_env_changes(tracking_uri), **(env or {})}, input=input, catch_exceptions=True)
    stderr = outcome.stderr
    if outcome.exception is not None and not isinstance(outcome.exception, SystemExit):
        import traceback

        stderr += "".join(traceback.format_exception(outcome.exception))
    result = CliResult(shlex.join(["mlflow", "archive", *argv]), outcome.exit_code, outcome.stdout, stderr)
    if check and result.returncode != 0:
        pytest.fail(result.describe())
    return result


def run_process(*args, tracking_uri: str | None = None, cwd=None, check: bool = True, env: dict | None = None) -> CliResult:
    """``mlflow archive ARGS`` as a real process of the ``mlflow`` console script."""
    cmd = [MLFLOW, "archive", *map(str, args)]
    process_env = dict(os.environ if env is None else env)
    for key, value in _env_changes(tracking_uri).items():
        if value is None:
            process_env.pop(key, None)
        else:
            process_env[key] = value
    proc = subprocess.run(cmd, capture_output=True, env=process_env, cwd=cwd or SCRATCH_CWD, timeout=PROCESS_TIMEOUT)
    result = CliResult(
        shlex.join(cmd), proc.returncode, proc.stdout.decode("utf-8", "replace"), proc.stderr.decode("utf-8", "replace")
    )
    if check and result.returncode != 0:
        pytest.fail(result.describe())
    return result


def export(output, source_uri: str, *options, check: bool = True) -> CliResult:
    """``export --tracking-uri SOURCE``: the option alone names the source."""
    return run("export", "-o", output, "--tracking-uri", source_uri, "--quiet", *options, check=check)


def import_(archive, dest_uri: str, *options, check: bool = True) -> CliResult:
    return run("import", "-i", archive, "--tracking-uri", dest_uri, "--quiet", *options, check=check)


def import_counts(stderr: str) -> dict[str, tuple[int, int, int]]:
    """``{"runs": (created, already_present, failed), ...}`` from an import's summary."""
    return {m[1]: (int(m[2]), int(m[3]), int(m[4])) for m in IMPORT_LINE.finditer(stderr)}


def export_counts(stderr: str) -> dict[str, int]:
    return {m[1]: int(m[2]) for m in EXPORT_LINE.finditer(stderr)}
