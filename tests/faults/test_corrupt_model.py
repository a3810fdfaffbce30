"""A champion whose weights artifact is damaged: its channel goes unscored, visibly; others go on.

The registry is this test's own (a private state folder), so overwriting an artifact touches no
other test's models.
"""

from __future__ import annotations

from urllib.parse import unquote, urlparse

import pytest

from model_store.registry import WEIGHTS_FILE, ModelRegistry
from tests.faults.pipeline_checks import only_channels, rows_of

pytestmark = pytest.mark.fault
BROKEN, HEALTHY = "D-14", "T-12"


def test_corrupt_weights_leave_one_channel_unscored(pipeline, tmp_path) -> None:
    pipeline.env["TMSTREAM_STATE_DIR"] = str(tmp_path / "state")
    only_channels(
        pipeline.folder / "config",
        pipeline.run_id,
        {BROKEN: "MSL", HEALTHY: "MSL"},
        {BROKEN: 55, HEALTHY: 55},
    )
    imported = pipeline.tmstream("models", "import-reference", "-c", BROKEN, "-c", HEALTHY)
    assert imported.returncode == 0, imported.stderr
    settings = pipeline.settings
    info = ModelRegistry(settings).resolve(BROKEN)
    artifact = unquote(urlparse(info.tags["weights_uri"]).path) + "/" + WEIGHTS_FILE
    with open(artifact, "r+b") as weights:  # keep the zip's size, break its directory
        weights.seek(-64, 2)
        weights.write(b"\0" * 64)

    pipeline.start_worker("w1")
    pipeline.wait_ready("w1")
    pid = pipeline.workers["w1"].pid
    replay = pipeline.tmstream("replay", "--channels", f"{BROKEN},{HEALTHY}", "--max")
    assert replay.returncode == 0, replay.stderr
    l_s = settings.model.l_s
    broken_points = len(rows_of(settings, BROKEN)) - l_s
    healthy_points = len(rows_of(settings, HEALTHY)) - l_s

    def unscored() -> float:
        return pipeline.metric("w1", "tmstream_points_unscored_total", channel=BROKEN, reason="model_error")

    pipeline.wait_for(
        lambda: pipeline.metric("w1", "tmstream_points_scored_total", channel=HEALTHY) == healthy_points,
        180,
        f"{HEALTHY} scored",
    )
    pipeline.wait_for(lambda: unscored() == broken_points, 60, f"{BROKEN} counted as unscored")
    assert pipeline.metric("w1", "tmstream_points_scored_total", channel=BROKEN) == 0
    assert pipeline.metric("w1", "tmstream_points_unscored_total", channel=HEALTHY) == 0
    assert pipeline.metric("w1", "tmstream_model_cache_load_failures_total", channel=BROKEN) > 0
    assert f"channel {BROKEN}: cannot read weights file {artifact}" in pipeline.log("w1")
    assert pipeline.workers["w1"].poll() is None and pipeline.workers["w1"].pid == pid
    print(f"corrupt-model: {BROKEN} unscored (model_error) {unscored():.0f} of {broken_points}, "
          f"{HEALTHY} scored {healthy_points}")  # fmt: skip
