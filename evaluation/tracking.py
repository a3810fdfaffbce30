"""Evaluation runs in MLflow (experiment ``tmstream-evaluation``), next to the registered models.

Why: a model promoted to ``champion`` or a threshold profile should be compared with earlier runs
on the same numbers; a run keeps what produced the numbers (source, alias, threshold parameters,
model versions) with the per-spacecraft and total metrics and the per-channel CSV.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from evaluation.report import EvaluationReport
from evaluation.scoring import Counts
from model_store.registry import ModelRegistry
from stream_workers.thresholding.parameters import ThresholdParameters
from tmstream.ground.settings import Settings

EXPERIMENT = "tmstream-evaluation"
METRICS = ("tp", "fp", "fn", "precision", "recall", "f0_5", "f1", "flagged_share", "point_precision")


@dataclass(frozen=True)
class EvaluationRun:
    """What an evaluation was run on: the run's parameters.

    source: batch, stream, or stream events (``stream-kafka`` / ``stream-redis``).
    predictions: the prediction source's name (``reference``, ``alias:champion``, a folder).
    alias: the registry alias, when the predictions came from the model store.
    spacecraft, channels: the filter given (None: all).
    model_versions: channel -> registered version used, when known.
    """

    source: str
    predictions: str
    params: ThresholdParameters
    alias: str | None = None
    spacecraft: str | None = None
    channels: tuple[str, ...] | None = None
    model_versions: dict[str, str] = field(default_factory=dict)

    def mlflow_params(self) -> dict[str, str]:
        described = {
            "source": self.source,
            "predictions": self.predictions,
            "alias": self.alias or "",
            "spacecraft": self.spacecraft or "all",
            "channels": ",".join(self.channels) if self.channels else "all",
        }
        described.update({f"threshold.{key}": str(value) for key, value in asdict(self.params).items()})
        return described


def run_metrics(report: EvaluationReport) -> dict[str, float]:
    """``<scope>.<metric>`` for each spacecraft and the total (e.g. ``SMAP.f0_5``, ``total.tp``)."""
    scopes: dict[str, Counts] = {**report.by_spacecraft, "total": report.total}
    return {
        f"{scope}.{name}": float(counts.summary()[name])
        for scope, counts in scopes.items()
        for name in METRICS
    }


def log_evaluation(settings: Settings, run: EvaluationRun, report: EvaluationReport) -> str:
    """Log one evaluation as a finished MLflow run; returns its run id."""
    from mlflow.entities import Metric, Param, RunTag

    registry = ModelRegistry(settings)
    client = registry.client
    found = client.get_experiment_by_name(EXPERIMENT)
    if found is not None:
        experiment_id = found.experiment_id
    else:
        registry.artifact_root.mkdir(parents=True, exist_ok=True)
        experiment_id = client.create_experiment(
            EXPERIMENT, artifact_location=registry.artifact_root.resolve().as_uri()
        )
    name = f"{run.source} {run.predictions}" + (f" {run.spacecraft}" if run.spacecraft else "")
    created = client.create_run(experiment_id, run_name=name)
    run_id = str(created.info.run_id)
    now = int(time.time() * 1000)
    client.log_batch(
        run_id,
        metrics=[Metric(key, value, now, 0) for key, value in run_metrics(report).items()],
        params=[Param(key, value) for key, value in run.mlflow_params().items()],
        tags=[RunTag(f"model_version.{c}", v) for c, v in sorted(run.model_versions.items())],
    )
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / "evaluation.csv"
        report.write_csv(path)
        client.log_artifact(run_id, str(path))
    client.set_terminated(run_id)
    return run_id
