"""A worker killed (-9) mid-stream and restarted with its local state folder deleted.

Nothing of the channel's stream lives only on the worker's disk: the restarted process rebuilds it
from the last snapshot on the compacted state topic and re-reads the records after it.
"""

from __future__ import annotations

import shutil
import signal

import pytest

from tests.faults.pipeline_checks import (
    expected_emissions,
    only_channels,
    paced_replay,
    rows_of,
    settled_emissions,
    snapshot_rows,
)

pytestmark = pytest.mark.fault
CHANNEL, SPACECRAFT = "D-14", "MSL"


def test_restart_with_an_empty_state_folder_changes_no_emission(pipeline) -> None:
    settings = pipeline.settings
    rows = len(rows_of(settings, CHANNEL))
    l_s = settings.model.l_s
    only_channels(pipeline.folder / "config", pipeline.run_id, {CHANNEL: SPACECRAFT}, {CHANNEL: 55})
    expected = expected_emissions(settings, CHANNEL, SPACECRAFT)
    pipeline.env["BROKER_SESSION_TIMEOUT"] = "15"  # Faust's knob: the dead member's partitions free up sooner
    pipeline.start_worker("w1")
    pipeline.wait_ready("w1")
    # Paced (about 13 s for 2,625 rows), so the kill lands mid-stream however fast the worker scores.
    with paced_replay(pipeline, [CHANNEL], 200) as replay:
        pipeline.wait_for(
            lambda: pipeline.metric("w1", "tmstream_points_scored_total") >= 900, 120, "900 scored"
        )
        scored_before = pipeline.metric("w1", "tmstream_points_scored_total")
        pipeline.stop_worker("w1", signal.SIGKILL)
        replay.finish(timeout=120)
    datadir = settings.state_dir / "worker" / "w1"
    assert datadir.is_dir()
    shutil.rmtree(datadir)

    resumed = snapshot_rows(settings)[CHANNEL]
    pipeline.start_worker("w1")
    pipeline.wait_ready("w1")
    assert l_s < resumed < rows, "resumed from a snapshot the first process wrote, not from row 0"
    pipeline.wait_for(
        lambda: pipeline.metric("w1", "tmstream_points_scored_total") == rows - resumed, 180, "all scored"
    )
    figures = settled_emissions(pipeline, expected, 60)
    assert pipeline.metric("w1", "tmstream_points_scored_total") == rows - resumed
    print(f"state-loss: {figures}, scored before kill ≥{scored_before:.0f}, resumed at {resumed}, "
          f"scored after restart {rows - resumed}")  # fmt: skip
