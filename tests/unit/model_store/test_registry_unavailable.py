"""A registry that does not answer is unavailable, not "no model": a worker waits for it."""

from __future__ import annotations

import os
import time
from unittest import mock

import pytest
from prometheus_client import CollectorRegistry

from model_store.cache import ModelCache
from model_store.exceptions import ModelNotFound, RegistryUnavailable
from model_store.registry import ModelRegistry
from tmstream.ground.settings import load_settings


def test_a_registry_that_refuses_connections_is_unavailable_within_seconds(tmp_path) -> None:
    settings = load_settings(
        {"state_dir": str(tmp_path), "mlflow": {"tracking_uri": "http://127.0.0.1:9", "request_retries": 0}}
    )
    started = time.monotonic()
    with mock.patch.dict(os.environ), pytest.raises(RegistryUnavailable, match=r"127\.0\.0\.1:9"):
        ModelRegistry(settings).resolve("P-1")
    assert time.monotonic() - started < 30  # MLflow's own defaults retry for minutes


def test_a_registry_that_answers_without_the_model_says_so(tmp_path) -> None:
    registry = ModelRegistry(load_settings({"state_dir": str(tmp_path)}))
    with pytest.raises(ModelNotFound, match="channel Q-9 has no model under alias 'champion'"):
        registry.resolve("Q-9")


class AwayRegistry:
    """A model source whose registry does not answer; counts the attempts."""

    def __init__(self) -> None:
        self.asked = 0

    def resolve(self, channel: str, alias: str = "champion") -> object:
        self.asked += 1
        raise RegistryUnavailable(f"the registry did not resolve {channel}")

    def load(self, info: object) -> object:
        raise AssertionError("never resolved")


def test_the_cache_asks_an_away_registry_again_after_a_pause_not_at_every_batch() -> None:
    source, now = AwayRegistry(), [0.0]
    cache = ModelCache(source, registry=CollectorRegistry(), unavailable_retry_s=5.0, clock=lambda: now[0])
    for _ in range(20):  # one scoring batch after another
        with pytest.raises(RegistryUnavailable):
            cache.get("P-1")
        now[0] += 0.1
    assert source.asked == 1
    now[0] += 5.0
    with pytest.raises(RegistryUnavailable):
        cache.get("P-1")
    assert source.asked == 2
