"""Archives on an S3-compatible object store: a real moto server on 127.0.0.1, no mocks."""

import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import boto3
import pytest

from servers import free_port

CLI = [str(Path(sys.executable).parent / "mlflow-archive")]


@pytest.fixture(scope="module")
def s3_env(tmp_path_factory):
    port = free_port()
    log = open(tmp_path_factory.mktemp("moto") / "moto.log", "wb")
    proc = subprocess.Popen(
        [str(Path(sys.executable).parent / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    endpoint = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            urllib.request.urlopen(endpoint, timeout=1)
            break
        except Exception:
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError("moto server did not start")
            time.sleep(0.2)
    env = {**os.environ, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
           "AWS_DEFAULT_REGION": "us-east-1", "AWS_ENDPOINT_URL": endpoint}
    boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="testing",
                 aws_secret_access_key="testing").create_bucket(Bucket="archives")
    yield env
    proc.terminate()
    proc.wait(10)


def run(args, env, cwd, **kwargs):
    return subprocess.run(CLI + args, env=env, cwd=cwd, capture_output=True, text=True, **kwargs)


def test_export_to_and_import_from_s3(s3_env, tmp_path):
    source = f"sqlite:///{tmp_path}/source.db"
    dest = f"sqlite:///{tmp_path}/dest.db"
    assert run(["demo", "--tracking-uri", source, "--runs", "2"], s3_env, tmp_path).returncode == 0
    exported = run(["export", "-o", "s3://archives/backups/one.mlar", "--tracking-uri", source, "--quiet"], s3_env, tmp_path)
    assert exported.returncode == 0, exported.stderr
    assert "runs: 2 exported" in exported.stderr
    verified = run(["verify", "s3://archives/backups/one.mlar"], s3_env, tmp_path)
    assert verified.returncode == 0 and verified.stdout.startswith("OK:"), verified.stderr
    imported = run(["import", "-i", "s3://archives/backups/one.mlar", "--tracking-uri", dest, "--quiet"], s3_env, tmp_path)
    assert imported.returncode == 0, imported.stderr
    assert "runs: 2 created, 0 already present, 0 failed" in imported.stderr


def test_s3_errors_are_one_sentence(s3_env, tmp_path):
    missing = run(["verify", "s3://archives/nothing-here.mlar"], s3_env, tmp_path)
    assert missing.returncode == 1
    assert missing.stderr.startswith("Error: Cannot read s3://archives/nothing-here.mlar")
    assert len(missing.stderr.strip().splitlines()) == 1 and "Traceback" not in missing.stderr


def test_failed_export_leaves_no_object(s3_env, monkeypatch):
    """A writer that fails halfway must not complete the upload: no half archive appears."""
    from mlflow_archive.streams import open_output

    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION", "AWS_ENDPOINT_URL"):
        monkeypatch.setenv(key, s3_env[key])
    with pytest.raises(RuntimeError, match="export failed"):
        with open_output("s3://archives/broken.mlar") as out:
            out.write(b"x" * (12 << 20))  # past boto3's first multipart part
            raise RuntimeError("export failed")
    listed = boto3.client("s3").list_objects_v2(Bucket="archives", Prefix="broken")
    assert listed.get("KeyCount", 0) == 0
    with open_output("s3://archives/whole.mlar") as out:
        out.write(b"y" * 1000)
    assert boto3.client("s3").get_object(Bucket="archives", Key="whole.mlar")["Body"].read() == b"y" * 1000
