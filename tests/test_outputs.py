"""Export outputs that are not plain new files: a FIFO, a symlink, a full device, a closed pipe.

The source is a local SQLite store with the demo runs (no server needed); the CLI runs
in-process except where a real pipe between two processes is what is tested.
"""

from __future__ import annotations

import os
import shlex
import stat
import subprocess
import threading

import pytest

import archive_cli
from mlflow_archive import verify_archive


@pytest.fixture(scope="module")
def demo_store(tmp_path_factory) -> str:
    root = tmp_path_factory.mktemp("demo-store")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    archive_cli.run("demo", tracking_uri=uri, cwd=root)
    return uri


def test_fifo_is_written_in_place(demo_store, tmp_path):
    fifo = tmp_path / "archive.fifo"
    os.mkfifo(fifo)
    received = bytearray()

    def read_all() -> None:
        with open(fifo, "rb") as reader:
            while chunk := reader.read(65536):
                received.extend(chunk)

    reader = threading.Thread(target=read_all)
    reader.start()
    archive_cli.export(fifo, demo_store)
    reader.join(timeout=60)

    assert stat.S_ISFIFO(fifo.stat().st_mode), "the FIFO was replaced"
    assert not (tmp_path / "archive.fifo.partial").exists()
    copy = tmp_path / "received.mlar"
    copy.write_bytes(bytes(received))
    report = verify_archive(str(copy))
    assert report.counts.get("runs") == 3, report.summary()


def test_symlink_target_is_written(demo_store, tmp_path):
    target = tmp_path / "real.mlar"
    link = tmp_path / "link.mlar"
    link.symlink_to(target)
    archive_cli.export(link, demo_store)

    assert link.is_symlink() and os.readlink(link) == str(target)
    assert verify_archive(str(target)).counts.get("runs") == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link.mlar", "real.mlar"]


def test_planted_partial_symlink_is_never_followed(demo_store, tmp_path):
    """``NAME.partial`` planted as a symlink to another file once had that file overwritten by the export."""
    victim = tmp_path / "victim.txt"
    victim.write_bytes(b"not to be overwritten")
    (tmp_path / "out.mlar.partial").symlink_to(victim)
    archive_cli.export(tmp_path / "out.mlar", demo_store)

    assert victim.read_bytes() == b"not to be overwritten"
    assert os.readlink(tmp_path / "out.mlar.partial") == str(victim)
    assert verify_archive(str(tmp_path / "out.mlar")).counts.get("runs") == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.mlar", "out.mlar.partial", "victim.txt"]


def test_full_device_fails_and_stays_a_device(demo_store):
    result = archive_cli.export("/dev/full", demo_store, check=False)

    assert result.returncode != 0, result.describe()
    errors = [line for line in result.stderr_text.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and "No space left" in errors[0], result.describe()
    assert "Traceback" not in result.stderr_text
    assert stat.S_ISCHR(os.stat("/dev/full").st_mode), "/dev/full was replaced by a file"


def test_folder_as_output_is_refused(demo_store, tmp_path):
    result = archive_cli.export(tmp_path, demo_store, check=False)

    assert result.returncode != 0
    assert "it is a folder" in result.stderr_text, result.describe()
    assert list(tmp_path.iterdir()) == []


def test_reader_closing_the_pipe_is_not_blamed_on_the_source(demo_store, tmp_path):
    script = f"set -o pipefail; {shlex.quote(archive_cli.MLFLOW)} archive export -o - --quiet | head -c 1000 > /dev/null"
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_REGISTRY_URI"}
    env["MLFLOW_TRACKING_URI"] = demo_store
    proc = subprocess.run(["bash", "-c", script], capture_output=True, env=env, cwd=tmp_path, timeout=120)
    stderr = proc.stderr.decode("utf-8", "replace")

    assert proc.returncode != 0, stderr
    assert "closed its end of the pipe" in stderr, stderr
    assert "tracking server" not in stderr and "Traceback" not in stderr and "Exception ignored" not in stderr, stderr
