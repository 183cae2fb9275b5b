"""`mlflow archive` through MLflow's own CLI, the `mlflow-archive` script, and a plugin that breaks.

Every check runs the real console scripts in subprocesses. `mlflow` takes seconds to
start, so the module fixture starts all of those processes at once and collects them.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import archive_cli
import mlflow_archive
from servers import console_script

PACKAGE = Path(mlflow_archive.__file__).parent
MLFLOW_OWN_COMMANDS = {"experiments", "runs", "server", "db", "models", "artifacts", "gc"}


def commands(help_text: str) -> set[str]:
    """The command names a click --help lists."""
    lines = help_text.split("Commands:\n", 1)[1].splitlines()
    return {line.split()[0] for line in lines if line.startswith("  ") and not line.startswith("   ")}


def shadow_package(root: Path, *, plugin: bool, cli_source: str | None) -> Path:
    """A copy of mlflow_archive's import surface under ``root``, to put first on PYTHONPATH.

    An editable install resolves ``mlflow_archive.X`` that the shadow lacks from the source tree
    (its finder comes after PYTHONPATH); the no-op finder module written here stands in for it,
    so a module missing from the shadow is missing for real, while the entry point metadata stays.
    """
    package = root / "mlflow_archive"
    package.mkdir(parents=True)
    for name in [m for m in sys.modules if m.startswith("__editable___mlflow_archive") and m.endswith("_finder")]:
        (root / f"{name}.py").write_text("def install():\n    pass\n")
    (package / "__init__.py").write_text((PACKAGE / "__init__.py").read_text())
    if plugin:
        (package / "_plugin.py").write_text((PACKAGE / "_plugin.py").read_text())
    if cli_source is not None:
        (package / "cli.py").write_text(cli_source)
    return root


# What importing the hook may load: MLflow imports it on every `import mlflow`, so it must stay cheap.
PLUGIN_MAY_IMPORT = {"mlflow_archive", "mlflow_archive._plugin"}


def test_plugin_import_loads_nothing_heavy():
    """Importing the hook loads only the package's ``__init__`` and the hook itself: no MLflow, no pyarrow, no CLI."""
    code = (
        "import sys\n"
        "before = set(sys.modules)\n"
        "import mlflow_archive._plugin\n"
        "print('\\n'.join(sorted(set(sys.modules) - before)))\n"
    )
    loaded = set(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split())
    ours = {m for m in loaded if m.split(".")[0] == "mlflow_archive"}
    assert ours == PLUGIN_MAY_IMPORT, f"importing the plugin loaded {sorted(ours - PLUGIN_MAY_IMPORT)}"
    heavy = {m.split(".")[0] for m in loaded} & {"mlflow", "pyarrow", "zstandard", "orjson", "pandas", "numpy", "boto3"}
    assert not heavy, f"importing the plugin loaded {sorted(heavy)}"


def test_every_command_has_help():
    from mlflow_archive.cli import cli

    names = sorted(cli.commands)
    assert {"export", "import", "inspect", "verify", "demo"} <= set(names), names
    for name in names:
        result = archive_cli.run(name, "--help")
        assert f" {name} [OPTIONS]" in result.stdout_text.splitlines()[0], result.describe()
        assert "--help" in result.stdout_text and result.stderr_text == "", result.describe()


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("plugin")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    broken_cli = shadow_package(tmp / "broken-cli", plugin=True,
                                cli_source='raise ImportError("simulated: a dependency of the CLI is missing")\n')
    no_plugin = shadow_package(tmp / "no-plugin", plugin=False, cli_source=None)
    mlflow = console_script("mlflow")
    commands_to_run = {
        "mlflow": ([mlflow, "--help"], env),
        "mlflow archive": ([mlflow, "archive", "--help"], env),
        "mlflow-archive": ([console_script("mlflow-archive"), "--help"], env),
        "broken cli": ([mlflow, "--help"], {**env, "PYTHONPATH": str(broken_cli)}),
        "no plugin": ([mlflow, "--help"], {**env, "PYTHONPATH": str(no_plugin)}),
    }
    procs = {}
    try:
        for key, (args, env) in commands_to_run.items():
            procs[key] = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp)
        return {key: (proc, *proc.communicate(timeout=300)) for key, proc in procs.items()}
    finally:
        for proc in procs.values():  # still running only when something above failed
            if proc.poll() is None:
                proc.kill()
                proc.communicate()


def test_mlflow_help_lists_archive(runs):
    proc, out, err = runs["mlflow"]
    assert proc.returncode == 0, err
    listed = commands(out)
    assert "archive" in listed
    assert MLFLOW_OWN_COMMANDS <= listed
    assert "mlflow-archive:" not in err and "Traceback" not in err


def test_mlflow_archive_help_lists_inspect_and_verify(runs):
    proc, out, err = runs["mlflow archive"]
    assert proc.returncode == 0, err
    assert out.startswith("Usage: mlflow archive [OPTIONS] COMMAND [ARGS]...")
    assert {"inspect", "verify"} <= commands(out)


def test_standalone_script_help(runs):
    proc, out, err = runs["mlflow-archive"]
    assert proc.returncode == 0, err
    assert out.startswith("Usage: mlflow-archive [OPTIONS] COMMAND [ARGS]...")
    assert {"inspect", "verify"} <= commands(out)
    assert err == ""


def test_broken_cli_module_leaves_mlflow_usable(runs):
    proc, out, err = runs["broken cli"]
    assert proc.returncode == 0, err
    listed = commands(out)
    assert MLFLOW_OWN_COMMANDS <= listed
    assert "archive" not in listed
    assert "mlflow-archive: `mlflow archive` is unavailable (simulated: a dependency of the CLI is missing)." in err
    assert "Traceback" not in err


def test_missing_plugin_module_leaves_mlflow_usable(runs):
    proc, out, err = runs["no plugin"]
    assert proc.returncode == 0, err
    listed = commands(out)
    assert MLFLOW_OWN_COMMANDS <= listed
    assert "archive" not in listed
    assert "No module named 'mlflow_archive._plugin'" in err  # MLflow's warning: the module really was missing
    assert "Traceback" not in err
