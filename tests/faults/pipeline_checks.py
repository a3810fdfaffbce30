"""What every fault test checks: the emissions of an interrupted run against an independent oracle.

The oracle is ``expected_emissions``: the offline detector — the channel's champion predicting
every row in one engine call (windows, or for a version measured stateful one pass with the state
carried from row 0 and the guard's checks, ``guarded_series``), its errors fed to a
``ChannelThresholdState`` in row order, closed at the end as an idle channel is — not the worker's
``StreamScorer``, ``ChannelStream`` or core. An
emission is (event_id, status, end_index); ``detected_at_ms`` is the only field that differs
between runs, and it is not part of an emission.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import zlib
from collections import Counter
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np
import yaml

from model_store.engine import InferenceEngine
from model_store.mode_measurement import guarded_series
from model_store.registry import ModelRegistry
from stream_workers.configuration import threshold_parameters
from stream_workers.events import event_id_for
from stream_workers.thresholding.streaming import ChannelThresholdState
from tests.integration.conftest import Pipeline
from tmstream.ground.redis import redis_client
from tmstream.ground.settings import Settings, load_settings
from tmstream.ground.topic_reader import read_topic

Emission = tuple[str, str, int]


def rows_of(settings: Settings, channel: str) -> np.ndarray:
    return np.load(settings.data_dir / "test" / f"{channel}.npy", mmap_mode="r")


def only_channels(config_dir: Path, run_id: str, channels: dict[str, str], widths: dict[str, int]) -> None:
    """A registry of just these channels: a few topics instead of 82 keeps rebalances quick."""
    entries = {name: {"spacecraft": craft, "features": widths[name]} for name, craft in channels.items()}
    (config_dir / "channels.yaml").write_text(
        yaml.safe_dump(
            {"topic_pattern": f"telemetry.r{run_id}.{{channel}}", "discover": False, "channels": entries}
        )
    )


def expected_emissions(settings: Settings, channel: str, spacecraft: str, epoch: int = 0) -> set[Emission]:
    """The emissions of one uninterrupted pass over the channel with its current champion; with
    ``epoch``, of the pass after the source restarted its index that often (other event ids).

    Cached per registry, channel and champion version: other tests may promote another champion.
    """
    version = ModelRegistry(settings).resolve(channel).version
    found = _detections(str(settings.state_dir), settings.data_dir, channel, version)
    return {(event_id_for(channel, start, version, epoch), status, end) for _, start, status, end in found}


def alarm_rows(settings: Settings, channel: str) -> list[tuple[int, int]]:
    """(row that opens it, row that closes it) of each anomaly the offline detector reports: the
    channel is in alarm once the first is scored, until the second is."""
    version = ModelRegistry(settings).resolve(channel).version
    found = sorted(_detections(str(settings.state_dir), settings.data_dir, channel, version))
    opened = {start: row for row, start, status, _ in found if status == "open"}
    return [(opened[start], row) for row, start, status, _ in found if status == "closed" and start in opened]


@cache
def _detections(
    state_dir: str, data_dir: Path, channel: str, version: str
) -> frozenset[tuple[int, int, str, int]]:
    """(row emitted at, start row, status, end row) of every detection of the offline detector; a
    detection at the idle close is emitted at the last row."""
    settings = load_settings({"environment": "testing", "state_dir": state_dir, "data_dir": str(data_dir)})
    rows = np.asarray(rows_of(settings, channel), dtype=np.float32)
    registry = ModelRegistry(settings)
    weights = registry.load(registry.resolve(channel))
    assert weights.version == version
    engine = InferenceEngine()
    try:
        worker = settings.worker
        if worker.inference_policy == "hybrid" and weights.inference_mode == "stateful":
            # one pass, the state carried from row 0, the guard's checks at their rows
            predictions, _ = guarded_series(
                engine, weights, rows, worker.verify_every, worker.stateful_tolerance
            )
        else:
            predictions = engine.predict_series(weights, rows)  # rows l_s … last, one call
    finally:
        engine.close()
    params = threshold_parameters(settings)
    detector = ChannelThresholdState(channel, version, params)
    detections = []
    for offset, prediction in enumerate(predictions.tolist()):
        row = params.l_s + offset
        detections += [(row, d) for d in detector.update(row, prediction, float(rows[row, 0]))]
    detections += [(len(rows) - 1, d) for d in detector.finish("idle")]
    return frozenset((row, d.start, d.status, d.end) for row, d in detections)


def emissions_of(events: list[dict[str, object]]) -> list[Emission]:
    return [(str(e["event_id"]), str(e["status"]), int(str(e["end_index"]))) for e in events]


def closed_count(events: list[dict[str, object]]) -> int:
    return sum(1 for event in events if event["status"] == "closed")


def assert_same_emissions(
    topic: list[Emission], redis: list[Emission], expected: set[Emission]
) -> dict[str, int]:
    """0 lost, 0 duplicated, nothing extra, on the topic and in Redis; returns the figures."""
    figures = {
        "expected": len(expected),
        "topic": len(topic),
        "redis": len(redis),
        "lost": len(expected - set(topic)) + len(expected - set(redis)),
        "duplicated": sum(n - 1 for n in Counter(topic).values())
        + sum(n - 1 for n in Counter(redis).values()),
        "extra": len(set(topic) - expected) + len(set(redis) - expected),
    }
    assert (figures["lost"], figures["duplicated"], figures["extra"]) == (0, 0, 0), (
        figures,
        sorted(expected ^ set(topic)),
        sorted(expected ^ set(redis)),
    )
    return figures


def settled_emissions(
    pipeline: Pipeline, expected: set[Emission], timeout: float, *, wait_on_redis: bool = False
) -> dict[str, int]:
    """Wait until the anomalies topic (or with ``wait_on_redis`` the Redis stream, the later sink
    when Redis was away) holds every expected ``closed`` emission, then ``assert_same_emissions``."""
    closed = sum(status == "closed" for _, status, _ in expected)
    events = pipeline.redis_events if wait_on_redis else pipeline.topic_events
    where = "closed events in Redis" if wait_on_redis else "closed events"
    pipeline.wait_for(lambda: closed_count(events()) == closed, timeout, where)
    return assert_same_emissions(
        emissions_of(pipeline.topic_events()), emissions_of(pipeline.redis_events()), expected
    )


def snapshot_rows(settings: Settings) -> dict[str, int]:
    """Per channel, the next row of its latest snapshot on the state topic: where a successor resumes.

    The successor scores rows ``snapshot_rows[channel]`` … last; the rows before it were scored by
    the process that wrote the snapshot, so over both processes every row is scored at least once,
    and the ones scored twice are those its predecessor scored after its last snapshot.
    """
    latest: dict[str, int] = {}
    for record in read_topic(settings, settings.kafka.state_topic):
        if record.key is not None and record.value is not None:
            latest[record.key.decode()] = json.loads(zlib.decompress(record.value))["next_index"]
    return latest


@dataclass
class PacedReplay:
    """A ``tmstream replay --rate`` process of the pipeline; its output goes to files in its folder
    (no pipe to fill while the test waits on the worker)."""

    process: subprocess.Popen[bytes]
    stdout: Path
    stderr: Path

    def finish(self, timeout: float) -> str:
        """Wait for the replay to end, assert that it succeeded, and return its stdout."""
        self.process.wait(timeout=timeout)
        assert self.process.returncode == 0, self.stderr.read_text(errors="replace")[-2000:]
        return self.stdout.read_text()

    def kill(self) -> None:
        """SIGKILL: no flush, no summary."""
        self.process.kill()
        self.process.wait(timeout=30)


@contextmanager
def paced_replay(
    pipeline: Pipeline, channels: Iterable[str], rate: float, *, summary: bool = False, loop: bool = False
) -> Iterator[PacedReplay]:
    """A replay of ``channels`` paced at ``rate`` points/s, so a fault lands mid-stream however fast
    the workers score; ``summary`` adds ``--json`` (what ``finish`` returns), ``loop`` ``--loop``.
    Killed on the way out if it is still running."""
    name = f"replay-{len(list(pipeline.folder.glob('replay-*.out')))}"
    stdout, stderr = pipeline.folder / f"{name}.out", pipeline.folder / f"{name}.err"
    flags = (["--json"] if summary else []) + (["--loop"] if loop else [])
    command = ["replay", "--channels", ",".join(channels), "--rate", str(rate), *flags]
    with stdout.open("wb") as out, stderr.open("wb") as err:
        process = subprocess.Popen(
            [sys.executable, "-m", "tmstream", *command],
            stdout=out,
            stderr=err,
            env={**os.environ, **pipeline.env},
        )
    replay = PacedReplay(process, stdout, stderr)
    try:
        yield replay
    finally:
        if process.poll() is None:
            replay.kill()


def latest_scored(pipeline: Pipeline, channels: Iterable[str]) -> dict[str, int]:
    """Each channel's last scored row, as the worker keeps it in Redis (``tmstream:channel:<c>``)."""
    client = redis_client(pipeline.settings)
    found = {}
    for channel in channels:
        index = client.hget(f"tmstream:channel:{channel}", "index")
        if index is not None:
            found[channel] = int(float(index))
    return found


def points_lost(pipeline: Pipeline, channels: Iterable[str], timeout: float = 60) -> int:
    """Rows never scored: each channel's last row less the last one Redis says was scored, once
    every channel reached its last row or ``timeout`` passed."""
    settings = pipeline.settings
    last_rows = {channel: len(rows_of(settings, channel)) - 1 for channel in channels}
    with contextlib.suppress(AssertionError):  # the figure says what is missing
        pipeline.wait_for(lambda: latest_scored(pipeline, last_rows) == last_rows, timeout, "all scored")
    scored = latest_scored(pipeline, last_rows)
    return sum(last - scored.get(channel, -1) for channel, last in last_rows.items())
