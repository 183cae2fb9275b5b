"""Archives on an S3-compatible object store: a real moto server on 127.0.0.1, no mocks."""

import subprocess
import time
import urllib.request

import boto3
import pytest

import archive_cli
from compare import compare_servers
from flaky_proxy import FlakyProxy
from servers import console_script, free_port
from tracking_data import build_small_experiment

S3_ENV = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}


@pytest.fixture(scope="module")
def s3_env(tmp_path_factory):
    """The AWS_* variables that point boto3 at a moto server with the bucket ``archives``."""
    port = free_port()
    with open(tmp_path_factory.mktemp("moto") / "moto.log", "wb") as log:
        proc = subprocess.Popen(
            [console_script("moto_server"), "-H", "127.0.0.1", "-p", str(port)],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
    try:
        endpoint = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(endpoint, timeout=1)
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError("moto server did not start")
                time.sleep(0.2)
        env = {**S3_ENV, "AWS_ENDPOINT_URL": endpoint}
        s3(env).create_bucket(Bucket="archives")
        yield env
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def s3(env):
    return boto3.client("s3", endpoint_url=env["AWS_ENDPOINT_URL"], region_name=env["AWS_DEFAULT_REGION"],
                        aws_access_key_id=env["AWS_ACCESS_KEY_ID"], aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"])


def keys(env, prefix: str) -> list[str]:
    return [o["Key"] for o in s3(env).list_objects_v2(Bucket="archives", Prefix=prefix).get("Contents", [])]


def test_export_to_and_import_from_s3(s3_env, scratch_server, dest_server, unique_prefix):
    name = f"{unique_prefix}to s3"
    build_small_experiment(scratch_server.url, name, n_runs=2)
    location = f"s3://archives/{unique_prefix}one.mlar"
    exported = archive_cli.run("export", "-o", location, "--tracking-uri", scratch_server.url, "--quiet",
                               "--experiments", name, env=s3_env)
    assert archive_cli.export_counts(exported.stderr_text).get("runs") == 2, exported.describe()
    verified = archive_cli.run("verify", location, env=s3_env)
    assert verified.stdout_text.startswith("OK:"), verified.describe()
    imported = archive_cli.run("import", "-i", location, "--tracking-uri", dest_server.url, "--quiet", env=s3_env)
    assert archive_cli.import_counts(imported.stderr_text)["runs"] == (2, 0, 0), imported.describe()
    compare_servers(scratch_server.url, dest_server.url, experiment_names=[name])


def test_s3_errors_are_one_sentence(s3_env):
    missing = archive_cli.run("verify", "s3://archives/nothing-here.mlar", env=s3_env, check=False)
    assert missing.returncode == 1
    assert missing.stderr_text.startswith("Error: Cannot read s3://archives/nothing-here.mlar"), missing.describe()
    assert len(missing.stderr_text.strip().splitlines()) == 1 and "Traceback" not in missing.stderr_text


def test_failed_export_leaves_no_object(s3_env, scratch_server, unique_prefix):
    """A source lost in the middle of an export: the upload is abandoned, no half archive appears."""
    name = f"{unique_prefix}lost source"
    build_small_experiment(scratch_server.url, name, n_runs=2)
    location = f"s3://archives/{unique_prefix}broken.mlar"
    proxy = None

    def vanish_at_first_artifact(n, method, path):
        if "mlflow-artifacts" in path:  # the header and the run tables are written by now
            proxy.vanish()
            return "drop"
        return None

    with FlakyProxy(scratch_server.url, vanish_at_first_artifact) as proxy:
        failed = archive_cli.run("export", "-o", location, "--tracking-uri", proxy.url, "--quiet", "--experiments", name,
                                 env=s3_env, check=False)
    assert failed.returncode != 0, failed.describe()
    assert any("mlflow-artifacts" in path for _, path in proxy.requests), "the export never reached the artifacts"
    assert keys(s3_env, unique_prefix) == [], failed.describe()
