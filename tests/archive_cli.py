"""The one way tests run ``mlflow archive``: in-process through click's runner, as a real process,
or (``CliBatch``) hundreds of real processes forked from one interpreter.

In-process (``run``) costs nothing to start, so it is the default for checks of options,
messages and exit codes. ``run_process`` starts the real ``mlflow`` console script, for the
tests where the process itself is what is tested (the plugin hook, stdin/stdout, signals).
Both run with neither MLFLOW_TRACKING_URI nor MLFLOW_REGISTRY_URI set unless a
``tracking_uri`` is given, and in a scratch folder, so MLflow's default store
(``sqlite:///mlflow.db`` in the working folder) is never created in the repository.
"""

from __future__ import annotations

import atexit
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import textwrap
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

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

    def one_line_error(self) -> str | None:
        """None if this is a clean failure (non-zero, one `Error: ` line, no traceback), else what is wrong."""
        if self.returncode == 0:
            return f"exit code 0, stdout {self.stdout_text!r}"
        if "Traceback" in self.stdout_text + self.stderr_text:
            return f"traceback: {self.stderr_text[-2000:]!r}"
        if not self.stderr_text.startswith("Error: ") or self.stderr_text.count("\n") != 1 or not self.stderr_text.endswith("\n"):
            return f"stderr is not one `Error: ` line: {self.stderr_text!r}"
        return None

    def describe(self) -> str:
        return (
            f"`{self.command}` exited with {self.returncode}\n--- stdout ---\n{self.stdout_text[-3000:]}\n"
            f"--- stderr ---\n{self.stderr_text[-6000:]}"
        )

    def error_line(self, where: str = "") -> str:
        """The one `Error:` line of a failure without a traceback (other lines, a summary, may come before it);
        an AssertionError that shows ``where`` and the whole output otherwise."""
        context = f"{where}\n{self.describe()}" if where else self.describe()
        assert self.returncode != 0, context
        assert "Traceback" not in self.stderr_text, context
        errors = [line for line in self.stderr_text.splitlines() if line.startswith("Error:")]
        assert len(errors) == 1, context
        return errors[0]


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


def demo_archive(root: Path) -> Path:
    """An archive of a fresh local SQLite store holding the demo runs (three runs with files), made in ``root``."""
    uri = f"sqlite:///{root / 'mlflow.db'}"
    run("demo", tracking_uri=uri, cwd=root)
    archive = root / "demo.mlar"
    export(archive, uri)
    return archive


# -- many runs at once, each a process of its own -----------------------------------------------

_FORK_SERVER = textwrap.dedent(
    """
    import json, os, signal, sys
    from mlflow_archive.cli import cli
    import mlflow_archive.inspection  # imported once here, not once per child

    jobs, running, results, width = json.load(open(sys.argv[1])), {}, {}, int(sys.argv[2])

    def child(job):
        signal.alarm(60)  # a hung reader fails its job (killed by SIGALRM) instead of the whole batch
        fd = os.open(job["stdin"], os.O_RDONLY)
        os.dup2(fd, 0)
        for target, path in ((1, job["out"]), (2, job["err"])):
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            os.dup2(fd, target)
        # As the console script ends: SystemExit (or a traceback) unwinds out of this script and the
        # interpreter finalizes, where a native thread still at work can abort the process.
        sys.exit(cli.main(args=job["args"], prog_name="mlflow-archive"))

    def reap():
        pid, status = os.wait()
        results[running.pop(pid)] = os.waitstatus_to_exitcode(status)

    for i, job in enumerate(jobs):
        while len(running) >= width:
            reap()
        sys.stdout.flush()
        pid = os.fork()
        if pid == 0:
            child(job)
        running[pid] = i
    while running:
        reap()
    print(json.dumps([results[i] for i in range(len(jobs))]))
    """
)


class CliBatch:
    """Runs the `mlflow-archive` CLI once per job, each in its own process, with the job's bytes on stdin.

    One Python process pays for the imports, then forks one child per job that runs the
    CLI's click entry point (what the console script calls) with its own stdin, stdout,
    stderr and exit code, and exits as the console script does (through the interpreter's
    finalization), so hundreds of damaged archives are checked in seconds. The
    batch runs in the background until ``results()`` is called. In ``args``, ``{file}``
    stands for the job's bytes as a file path.
    """

    def __init__(self, tmp: Path, jobs: list[tuple[list[str], bytes]], width: int = 1) -> None:
        tmp.mkdir(parents=True, exist_ok=True)
        self.specs = []
        for i, (args, stdin) in enumerate(jobs):
            path = tmp / f"job{i}.mlar"
            path.write_bytes(stdin)
            args = [str(path) if a == "{file}" else a for a in args]
            self.specs.append({"args": args, "stdin": str(path), "out": f"{tmp}/job{i}.out", "err": f"{tmp}/job{i}.err"})
        (tmp / "jobs.json").write_text(json.dumps(self.specs))
        self.proc = subprocess.Popen(
            [sys.executable, "-c", _FORK_SERVER, str(tmp / "jobs.json"), str(width)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )

    def results(self) -> list[CliResult]:
        try:
            out, err = self.proc.communicate(timeout=600)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise
        assert self.proc.returncode == 0, err
        results = []
        for spec, code in zip(self.specs, json.loads(out), strict=True):
            results.append(CliResult(shlex.join(["mlflow-archive", *spec["args"]]), code, Path(spec["out"]).read_text(), Path(spec["err"]).read_text()))
            for key in ("stdin", "out", "err"):
                os.unlink(spec[key])
        return results

