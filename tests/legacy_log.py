"""Log the MLflow 2.x data set of ``test_old_servers.py``: run with the 2.x virtualenv's python.

    python legacy_log.py TRACKING_URI PREFIX  ->  one JSON line on stdout

The test process has MLflow 3, whose client would log MLflow 3 objects (logged models,
``models:/m-...`` sources); this script logs what an MLflow 2 user has, with MLflow 2 itself:
nested, deleted and finished runs, NaN/±inf metric histories, dataset inputs, nested and
binary artifacts, a classic model logged as run artifacts, traces (one in a run, one failed;
spans in each trace's traces.json), a deleted experiment, and a
registered model whose versions come from ``runs:/``, ``mlflow-artifacts:/`` and plain
storage sources, with a deleted version, stages, an alias, tags and descriptions.
"""

import json
import math
import os
import sys
import tempfile
import warnings

import mlflow
import numpy as np
import pandas as pd
from mlflow import MlflowClient
from sklearn.linear_model import LinearRegression

FEATURES = [[0.0, 1.0], [1.0, 0.0], [2.0, 1.0], [3.0, 2.0], [4.0, -1.0]]


def log_artifact_tree(root: str) -> None:
    os.makedirs(os.path.join(root, "nested", "deeper"))
    with open(os.path.join(root, "notes.txt"), "w", encoding="utf-8") as fh:
        fh.write("plain text\n")
    with open(os.path.join(root, "nested", "deeper", "blob.bin"), "wb") as fh:
        fh.write(bytes(range(256)) * 9 + b"\x00\xff")
    mlflow.log_artifacts(root)


@mlflow.trace(span_type="RETRIEVER")
def retrieve(question: str) -> list:
    return [f"doc about {question}", "x" * 3000]


@mlflow.trace(span_type="CHAIN", attributes={"temperature": 0.5})
def answer(question: str) -> str:
    return f"{len(retrieve(question))} docs for {question} ✓"


@mlflow.trace
def broken(x: int) -> int:
    raise ValueError(f"no answer for {x} ✗")


def main(uri: str, prefix: str) -> dict:
    warnings.simplefilter("ignore")
    mlflow.set_tracking_uri(uri)
    client = MlflowClient(uri, uri)
    out = {
        "mlflow_version": mlflow.__version__, "experiment": prefix + "legacy-exp",
        "model": prefix + "legacy-model", "storage_model": prefix + "legacy-storage",
    }

    experiment_id = client.create_experiment(out["experiment"], tags={"team": "old", "mlflow.note.content": "from 2.x"})
    mlflow.set_experiment(experiment_id=experiment_id)
    frame = pd.DataFrame({"a": [1.0, 2.0, 3.0], "b": ["x", "y", "z"]})
    with mlflow.start_run(run_name="parent") as parent:
        mlflow.log_params({"alpha": "0.5", "layers": "3"})
        mlflow.set_tags({"stage": "train"})
        for step, value in enumerate([1.0, math.nan, math.inf, -math.inf, 0.25]):
            mlflow.log_metric("loss", value, step=step, timestamp=1_700_000_000_000 + step)
        mlflow.log_metric("loss", 0.5, step=2, timestamp=1_700_000_000_999)  # two points at one step
        mlflow.log_input(mlflow.data.from_pandas(frame, source="s3://bucket/train.csv", name="train"), context="training")
        with tempfile.TemporaryDirectory() as tmp:
            log_artifact_tree(tmp)
        model = LinearRegression().fit(np.array(FEATURES), np.array([1.0, 2.0, 4.0, 7.0, 3.0]))
        mlflow.sklearn.log_model(model, "model")
        answer("où est la gare ?")  # a trace whose metadata names the run
        traces = {"in_run": mlflow.get_last_active_trace_id()}
        with mlflow.start_run(run_name="child", nested=True) as child:
            mlflow.log_metric("acc", 0.9)
            mlflow.log_input(mlflow.data.from_pandas(frame, source="s3://bucket/eval.csv", name="eval"), context="eval")
    with mlflow.start_run(run_name="doomed") as doomed:
        mlflow.log_param("p", "1")
    client.delete_run(doomed.info.run_id)
    with mlflow.start_run(run_name="second-model") as second:
        mlflow.sklearn.log_model(LinearRegression().fit(np.array(FEATURES), np.array([0.0, 1.0, 0.0, 1.0, 0.0])), "m2")

    try:
        broken(7)  # a failed trace, in no run
    except ValueError:
        traces["error"] = mlflow.get_last_active_trace_id()
    client.set_trace_tag(traces["in_run"], "reviewed", "oui ✓")

    gone_id = client.create_experiment(prefix + "legacy-gone")
    mlflow.set_experiment(experiment_id=gone_id)
    with mlflow.start_run(run_name="in-deleted-experiment"):
        mlflow.log_metric("x", 1.0)
    client.delete_experiment(gone_id)

    name = out["model"]
    client.create_registered_model(name, tags={"owner": "ops"}, description="the legacy model")
    parent_uri = client.get_run(parent.info.run_id).info.artifact_uri
    second_uri = client.get_run(second.info.run_id).info.artifact_uri
    v1 = client.create_model_version(name, f"runs:/{parent.info.run_id}/model", run_id=parent.info.run_id, tags={"v": "1"}, description="first")
    v2 = client.create_model_version(name, f"{second_uri}/m2", run_id=second.info.run_id)
    v3 = client.create_model_version(name, f"{parent_uri}/model", run_id=parent.info.run_id, description="third")
    client.delete_model_version(name, v2.version)
    client.transition_model_version_stage(name, v1.version, "Archived")
    client.transition_model_version_stage(name, v3.version, "Production")
    client.set_registered_model_alias(name, "champion", v3.version)
    client.set_model_version_tag(name, v3.version, "validated", "yes")
    client.create_registered_model(out["storage_model"])
    # A storage URI outside the server's artifacts (a local path is refused by a 2.x server).
    client.create_model_version(out["storage_model"], "s3://legacy-bucket/models/m2", description="in a bucket")

    out.update(
        parent=parent.info.run_id, child=child.info.run_id, doomed=doomed.info.run_id, traces=traces,
        trace_json={t: mlflow.get_trace(t).to_json() for t in traces.values()},  # as MLflow 2 reads them
        sources={v.version: v.source for v in (v1, v3)},
        prediction=[float(x) for x in np.ravel(mlflow.pyfunc.load_model(f"models:/{name}@champion").predict(np.array(FEATURES)))],
    )
    return out


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1], sys.argv[2])))
