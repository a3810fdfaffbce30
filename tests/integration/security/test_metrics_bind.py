"""``worker.metrics_host`` decides where /metrics, /health, /ready and /models listen.

127.0.0.2 is a loopback address of its own on Linux: a worker bound there answers on it and
refuses connections on 127.0.0.1, so the setting, not a wildcard bind, decides.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request

import pytest

from tmstream.ground.settings import load_settings


def health(host: str, port: int) -> dict[str, object]:
    with urllib.request.urlopen(f"http://{host}:{port}/health", timeout=3) as response:
        return dict(json.loads(response.read()))


def test_default_is_loopback_only() -> None:
    assert load_settings({"environment": "development"}).worker.metrics_host == "127.0.0.1"


def test_worker_listens_on_the_configured_address_only(pipeline) -> None:
    pipeline.env["TMSTREAM_WORKER_METRICS_HOST"] = "127.0.0.2"
    port = pipeline.start_worker("w1")
    deadline = time.monotonic() + 90
    while True:
        assert pipeline.workers["w1"].poll() is None, pipeline.log("w1")[-2000:]
        try:
            assert health("127.0.0.2", port)["status"] == "ok"
            break
        except OSError:
            assert time.monotonic() < deadline, "no /health on 127.0.0.2"
            time.sleep(0.5)
    with pytest.raises(urllib.error.URLError) as refused:
        health("127.0.0.1", port)
    assert isinstance(refused.value.reason, ConnectionRefusedError)
