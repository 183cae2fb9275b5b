"""Build the experiments and runs the round-trip tests move, through public MLflow APIs only.

``build_dataset(tracking_uri)`` fills a server with every awkward thing an
exporter must carry over unchanged, and returns a ``Dataset`` that names the
objects the tests look at. ``build_small_experiment`` makes a cheap experiment
for the tests that only need a few runs under a unique name.
"""

from __future__ import annotations

import math
import os
import random
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import mlflow
import pandas as pd
from mlflow import MlflowClient
from mlflow.entities import DatasetInput, InputTag, Metric, Param

from tags import NOTE_TAG, PARENT_TAG, USER_TAG


EXPERIMENT_MAIN = "实验 ü 🚀 main"
EXPERIMENT_WINDOWS = "time windows ⏱"
EXPERIMENT_EMPTY = "empty experiment ∅"
EXPERIMENT_DELETED = "deleted experiment 🗑"

LONG_PARAM_LENGTH = 6000
LONG_METRIC_POINTS = 5000


def ms(year: int, month: int, day: int, hour: int = 12, minute: int = 0) -> int:
    """Milliseconds since the epoch of a UTC wall-clock time."""
    return int(datetime(year, month, day, hour, minute, tzinfo=timezone.utc).timestamp() * 1000)


# Two time windows, far from any boundary a test uses, whatever the local time zone.
WINDOW_A = (ms(2021, 3, 1, 0), ms(2021, 4, 1, 0))  # runs start on 2021-03-10 .. 2021-03-20
WINDOW_B = (ms(2022, 6, 1, 0), ms(2022, 7, 1, 0))  # runs start on 2022-06-10 .. 2022-06-20
WINDOW_A_STARTS = [ms(2021, 3, 10), ms(2021, 3, 15, 8, 30), ms(2021, 3, 20)]
WINDOW_B_STARTS = [ms(2022, 6, 10), ms(2022, 6, 20, 23, 59)]


@dataclass
class Dataset:
    tracking_uri: str
    experiment_ids: dict[str, str] = field(default_factory=dict)  # name -> id
    runs: dict[str, str] = field(default_factory=dict)  # role -> run id
    window_a_runs: list[str] = field(default_factory=list)
    window_b_runs: list[str] = field(default_factory=list)
    all_run_ids: list[str] = field(default_factory=list)
    binary_artifact: bytes = b""

    @property
    def deleted_run_ids(self) -> set[str]:
        return {self.runs["deleted"], self.runs["in_deleted_experiment"]}

    @property
    def active_experiment_names(self) -> list[str]:
        return [EXPERIMENT_MAIN, EXPERIMENT_WINDOWS, EXPERIMENT_EMPTY]


def _long_param_value() -> str:
    # Multi-byte characters too: the limit is in characters, the archive stores bytes.
    unit = "abcdefghij0123456789-ü-€-字-"
    value = (unit * (LONG_PARAM_LENGTH // len(unit) + 1))[:LONG_PARAM_LENGTH]
    assert len(value) == LONG_PARAM_LENGTH
    return value


def _log_dataset_input(
    client: MlflowClient, run_id: str, name: str, context: str, extra_tags: dict, source: str | None = None
) -> None:
    df = pd.DataFrame(
        {
            "x ü": [1.5, 2.5, float("nan"), 4.0],
            "label": [0, 1, 0, 1],
            "text": ["a", "ß", "字", ""],
        }
    )
    dataset = mlflow.data.from_pandas(df, name=name, targets="label", source=source)
    tags = [InputTag(key="mlflow.data.context", value=context)]
    tags += [InputTag(key=k, value=v) for k, v in extra_tags.items()]
    client.log_inputs(run_id, datasets=[DatasetInput(dataset._to_mlflow_entity(), tags=tags)])


def _write_artifact_tree(root: Path, payload: bytes) -> None:
    (root / "nested" / "deeper" / "deepest").mkdir(parents=True)
    (root / "nested" / "deeper" / "deepest" / "random.bin").write_bytes(payload)
    (root / "nested" / "empty.txt").write_bytes(b"")
    (root / "nested" / "deeper" / "notes ü.txt").write_text("unicode file name and content: 字 ü 🚀\n", encoding="utf-8")
    (root / "top.json").write_text('{"a": 1, "b": [1, 2, 3]}\n', encoding="utf-8")


def build_dataset(tracking_uri: str, seed: int = 20240611) -> Dataset:
    """Create the shared round-trip data set on the server at ``tracking_uri``."""
    client = MlflowClient(tracking_uri=tracking_uri)
    rng = random.Random(seed)
    data = Dataset(tracking_uri=tracking_uri)
    now = int(time.time() * 1000)

    # -- experiments -------------------------------------------------------------
    main_id = client.create_experiment(
        EXPERIMENT_MAIN,
        tags={NOTE_TAG: "Beschreibung mit Umlauten ü and emoji 🚀\nsecond line", "team": "données", "empty": ""},
    )
    windows_id = client.create_experiment(EXPERIMENT_WINDOWS, tags={"purpose": "time windows"})
    empty_id = client.create_experiment(EXPERIMENT_EMPTY)
    deleted_exp_id = client.create_experiment(EXPERIMENT_DELETED, tags={"doomed": "yes"})
    data.experiment_ids = {
        EXPERIMENT_MAIN: main_id,
        EXPERIMENT_WINDOWS: windows_id,
        EXPERIMENT_EMPTY: empty_id,
        EXPERIMENT_DELETED: deleted_exp_id,
    }

    def create(role: str, experiment_id: str, **kwargs) -> str:
        run = client.create_run(experiment_id, **kwargs)
        data.runs[role] = run.info.run_id
        data.all_run_ids.append(run.info.run_id)
        return run.info.run_id

    # -- the main run: params, tags, metrics, inputs, artifacts ------------------
    main_start = now - 3_600_000
    main = create(
        "main",
        main_id,
        start_time=main_start,
        run_name="运行 ü 🚀",
        tags={USER_TAG: "jürgen@例え.jp", "stage": "训练", "long tag": "t" * 5000},
    )
    client.log_batch(
        main,
        params=[
            Param("long_param", _long_param_value()),
            Param("learning rate", "0.001"),
            Param("unicode ü", "值 🚀"),
            Param("empty", ""),
        ],
    )
    # NaN and infinities, and the same step logged twice with different values and times.
    special = [
        Metric("special", float("nan"), main_start + 1000, 0),
        Metric("special", float("inf"), main_start + 2000, 1),
        Metric("special", float("-inf"), main_start + 3000, 2),
        Metric("special", 0.0, main_start + 4000, 3),
        Metric("special", -0.5, main_start + 5000, 3),  # repeated step
        Metric("special", 1e-300, main_start + 6000, 4),
        Metric("special", -1.7976931348623157e308, main_start + 7000, 5),
    ]
    client.log_batch(main, metrics=special)
    client.log_metric(main, "repeated", 1.0, timestamp=main_start + 10, step=7)
    client.log_metric(main, "repeated", 2.0, timestamp=main_start + 20, step=7)
    client.log_metric(main, "repeated", 2.0, timestamp=main_start + 30, step=7)  # same value, other time
    client.log_metric(main, "repeated", float("nan"), timestamp=main_start + 40, step=7)
    client.log_metric(main, "loss/train ü", 0.25, timestamp=main_start + 50, step=-1)
    # A long history, logged in batches (a batch holds at most 1000 metrics).
    long_points = [
        Metric("long_history", math.sin(i / 50.0) + rng.random() * 1e-3, main_start + i * 7, i // 3)
        for i in range(LONG_METRIC_POINTS)
    ]
    for offset in range(0, LONG_METRIC_POINTS, 1000):
        client.log_batch(main, metrics=long_points[offset : offset + 1000])
    _log_dataset_input(client, main, "train ü", "training", {"split": "train", "version": "v1 🚀"})
    _log_dataset_input(client, main, "eval", "evaluation", {}, source="https://example.com/eval%20data.csv")
    data.binary_artifact = bytes(rng.getrandbits(8) for _ in range(70_000))
    with tempfile.TemporaryDirectory() as tmp:
        _write_artifact_tree(Path(tmp), data.binary_artifact)
        client.log_artifacts(main, tmp)
    client.log_text(main, "a single file at the top\n", "single.txt")
    client.set_terminated(main, "FINISHED", end_time=main_start + 600_000)

    # -- nested runs: parent -> child -> grandchild --------------------------------
    parent = create("parent", main_id, run_name="parent", start_time=now - 3_000_000)
    child = create("child", main_id, run_name="child", start_time=now - 2_990_000, tags={PARENT_TAG: parent})
    grandchild = create(
        "grandchild", main_id, run_name="grandchild", start_time=now - 2_980_000, tags={PARENT_TAG: child}
    )
    client.log_param(grandchild, "depth", "3")
    # The same dataset as the main run's, in the same experiment, with other input tags.
    _log_dataset_input(client, grandchild, "train ü", "fine-tuning", {"split": "train"})
    client.log_metric(grandchild, "depth_metric", 3.0, timestamp=now - 2_970_000, step=0)
    client.set_terminated(grandchild, "FINISHED", end_time=now - 2_900_000)
    client.set_terminated(child, "FAILED", end_time=now - 2_800_000)
    client.set_terminated(parent, "KILLED", end_time=now - 2_700_000)

    # -- statuses: one run stays RUNNING, one has no artifacts at all -------------
    running = create("running", main_id, run_name="still running", start_time=now - 1_000_000)
    client.log_param(running, "p", "v")
    client.log_metric(running, "m", 1.0, timestamp=now - 999_000, step=0)
    no_artifacts = create("no_artifacts", main_id, run_name="no artifacts", tags={USER_TAG: "someone else"})
    client.log_metric(no_artifacts, "only", 42.0, timestamp=now, step=0)
    client.set_terminated(no_artifacts, "FINISHED")

    # -- a deleted run ------------------------------------------------------------------
    deleted = create("deleted", main_id, run_name="deleted run", start_time=now - 500_000)
    client.log_param(deleted, "gone", "yes")
    client.log_metric(deleted, "gone_metric", 0.5, timestamp=now - 499_000, step=0)
    client.log_text(deleted, "artifact of a deleted run", "deleted.txt")
    client.set_terminated(deleted, "FINISHED", end_time=now - 400_000)
    client.delete_run(deleted)

    # -- runs in two time windows ----------------------------------------------------
    for i, start in enumerate(WINDOW_A_STARTS):
        rid = create(f"window_a_{i}", windows_id, run_name=f"window A {i}", start_time=start)
        client.log_metric(rid, "score", float(i), timestamp=start + 1, step=i)
        client.set_terminated(rid, "FINISHED", end_time=start + 60_000)
        data.window_a_runs.append(rid)
    for i, start in enumerate(WINDOW_B_STARTS):
        rid = create(f"window_b_{i}", windows_id, run_name=f"window B {i}", start_time=start)
        client.log_param(rid, "window", "B")
        client.set_terminated(rid, "FAILED" if i else "FINISHED", end_time=start + 120_000)
        data.window_b_runs.append(rid)

    # -- a deleted experiment with a run in it ---------------------------------------
    doomed = create("in_deleted_experiment", deleted_exp_id, run_name="in deleted experiment", start_time=now - 100_000)
    client.log_param(doomed, "k", "v")
    client.log_metric(doomed, "m", 2.0, timestamp=now - 99_000, step=1)
    client.set_terminated(doomed, "FINISHED", end_time=now - 90_000)
    client.delete_experiment(deleted_exp_id)

    return data


@dataclass
class SmallExperiment:
    name: str
    experiment_id: str
    run_ids: list[str]


def build_small_experiment(
    tracking_uri: str,
    name: str,
    n_runs: int = 2,
    start_times: list[int] | None = None,
    tags: dict | None = None,
) -> SmallExperiment:
    """An experiment with a few finished runs (a param, a metric history, a tag, an artifact)."""
    client = MlflowClient(tracking_uri=tracking_uri)
    experiment_id = client.create_experiment(name, tags=tags)
    starts = start_times or [int(time.time() * 1000) - 100_000 + i * 1000 for i in range(n_runs)]
    run_ids = []
    for i, start in enumerate(starts):
        run = client.create_run(experiment_id, start_time=start, run_name=f"{name} run {i}", tags={"index": str(i)})
        rid = run.info.run_id
        client.log_param(rid, "i", str(i))
        client.log_batch(rid, metrics=[Metric("x", float(j * i), start + j, j) for j in range(3)])
        client.log_text(rid, f"run {i} of {name}\n", "out/result.txt")
        client.set_terminated(rid, "FINISHED", end_time=start + 5000)
        run_ids.append(rid)
    return SmallExperiment(name, experiment_id, run_ids)


if __name__ == "__main__":  # manual check against a running server: python tests/tracking_data.py URL
    import sys

    started = time.monotonic()
    ds = build_dataset(sys.argv[1] if len(sys.argv) > 1 else os.environ["MLFLOW_TRACKING_URI"])
    print(f"built {len(ds.all_run_ids)} runs in {time.monotonic() - started:.1f} s")
