"""A few sample runs, so that a new user can try an export on an empty store."""

from __future__ import annotations

import math
import tempfile
from pathlib import Path

from mlflow import MlflowClient
from mlflow.entities import Metric, Param, RunTag

DEMO_EXPERIMENT = "mlflow-archive-demo"


def log_demo_runs(tracking_uri: str | None = None, runs: int = 3, steps: int = 100) -> str:
    """Log ``runs`` small training runs (params, metric histories, an artifact); return the experiment ID."""
    client = MlflowClient(tracking_uri=tracking_uri)
    experiment = client.get_experiment_by_name(DEMO_EXPERIMENT)
    experiment_id = experiment.experiment_id if experiment else client.create_experiment(DEMO_EXPERIMENT)
    for index in range(runs):
        run = client.create_run(experiment_id, run_name=f"demo-{index}")
        run_id = run.info.run_id
        start = run.info.start_time
        learning_rate = 0.01 * (index + 1)
        metrics = [
            Metric("loss", math.exp(-learning_rate * step) + 0.01 * index, start + step, step) for step in range(steps)
        ]
        client.log_batch(
            run_id,
            metrics=metrics,
            params=[Param("learning_rate", str(learning_rate)), Param("epochs", str(steps))],
            tags=[RunTag("demo", "true")],
        )
        with tempfile.TemporaryDirectory() as tmp:
            (Path(tmp) / "notes.txt").write_text(f"demo run {index}\n")
            client.log_artifacts(run_id, tmp)
        client.set_terminated(run_id)
    return experiment_id
