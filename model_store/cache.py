"""The worker's in-memory models: lazy, LRU-bounded, one load per channel, hot-swapped on promotion.

Why an alias check instead of a restart: promoting a model (``tmstream models promote``) must
reach a running worker within ``refresh_seconds`` without dropping its Kafka assignment.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram

from model_store.exceptions import ModelNotFound, ModelStoreError, RegistryUnavailable
from model_store.registry import ModelVersionInfo
from model_store.weights import LstmWeights

log = logging.getLogger(__name__)


class ModelSource(Protocol):
    """What the cache needs from the registry."""

    def resolve(self, channel: str, alias: str = "champion") -> ModelVersionInfo: ...

    def load(self, info: ModelVersionInfo) -> LstmWeights: ...


@dataclass(frozen=True)
class CacheMetrics:
    hits: Counter
    misses: Counter
    loads: Counter
    evictions: Counter
    load_failures: Counter
    load_seconds: Histogram
    models: Gauge
    bytes: Gauge

    @classmethod
    def on(cls, registry: CollectorRegistry) -> CacheMetrics:
        """The metric set of one Prometheus registry (created once, shared by every cache)."""
        common: dict[str, Any] = {"namespace": "tmstream", "registry": registry}
        with _METRICS_LOCK:
            if id(registry) not in _METRICS:
                _METRICS[id(registry)] = cls(
                    hits=Counter("model_cache_hits", "Model cache hits.", **common),
                    misses=Counter("model_cache_misses", "Model cache misses.", **common),
                    loads=Counter("model_cache_loads", "Models loaded from the registry.", **common),
                    evictions=Counter("model_cache_evictions", "Models evicted (LRU).", **common),
                    load_failures=Counter(
                        "model_cache_load_failures",
                        "Model loads that failed, by channel.",
                        ["channel"],
                        **common,
                    ),
                    load_seconds=Histogram(
                        "model_load_seconds",
                        "Time to resolve and load one model.",
                        buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
                        **common,
                    ),
                    models=Gauge("model_cache_models", "Models held in the cache.", **common),
                    bytes=Gauge("model_cache_bytes", "Bytes of weights in the cache.", **common),
                )
            return _METRICS[id(registry)]


_METRICS: dict[int, CacheMetrics] = {}
_METRICS_LOCK = threading.Lock()


@dataclass(frozen=True)
class _Entry:
    weights: LstmWeights
    version: str
    nbytes: int


class ModelCache:
    """Channel → weights of the version under ``alias``; thread-safe."""

    def __init__(
        self,
        source: ModelSource,
        *,
        max_models: int = 128,
        max_bytes: int = 268_435_456,
        refresh_seconds: float = 30.0,
        alias: str = "champion",
        registry: CollectorRegistry = REGISTRY,
        unavailable_retry_s: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.source = source
        self.max_models = max_models
        self.max_bytes = max_bytes
        self.refresh_seconds = refresh_seconds
        self.alias = alias
        self.metrics = CacheMetrics.on(registry)
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self._missing: dict[str, ModelNotFound] = {}
        # a registry that did not answer is asked again after unavailable_retry_s, not at every
        # batch: each attempt can take the HTTP client's retries and hold the scoring thread
        self.unavailable_retry_s = unavailable_retry_s
        self.clock = clock
        self._unavailable: dict[str, tuple[float, RegistryUnavailable]] = {}
        self._loading: dict[str, threading.Event] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def nbytes(self) -> int:
        with self._lock:
            return sum(entry.nbytes for entry in self._entries.values())

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def versions(self) -> dict[str, str]:
        with self._lock:
            return {channel: entry.version for channel, entry in self._entries.items()}

    def get(self, channel: str) -> LstmWeights:
        """The channel's model; loads it on first use. Concurrent callers share one load.

        A channel without a model raises :class:`ModelNotFound`, remembered until the next
        refresh so an unscored channel does not query the registry on every batch.
        """
        while True:
            with self._lock:
                entry = self._entries.get(channel)
                if entry is not None:
                    self._entries.move_to_end(channel)
                    self.metrics.hits.inc()
                    return entry.weights
                if channel in self._missing:
                    raise self._missing[channel]
                if channel in self._unavailable:
                    until, error = self._unavailable[channel]
                    if self.clock() < until:
                        raise error
                    del self._unavailable[channel]
                pending = self._loading.get(channel)
                if pending is None:
                    pending = self._loading[channel] = threading.Event()
                    break
            pending.wait()
        self.metrics.misses.inc()
        try:
            self._load(channel)
        finally:
            with self._lock:
                del self._loading[channel]
            pending.set()
        return self.get(channel)

    def _load(self, channel: str) -> None:
        started = time.perf_counter()
        try:
            info = self.source.resolve(channel, self.alias)
            weights = self.source.load(info)
        except ModelNotFound as exc:
            self.metrics.load_failures.labels(channel=channel).inc()
            with self._lock:
                self._missing[channel] = exc
            raise
        except RegistryUnavailable as exc:
            self.metrics.load_failures.labels(channel=channel).inc()
            with self._lock:
                self._unavailable[channel] = (self.clock() + self.unavailable_retry_s, exc)
            raise
        except ModelStoreError:
            self.metrics.load_failures.labels(channel=channel).inc()
            raise
        self.metrics.load_seconds.observe(time.perf_counter() - started)
        self.metrics.loads.inc()
        self._store(channel, _Entry(weights, info.version, weights.nbytes))

    def _store(self, channel: str, entry: _Entry) -> None:
        with self._lock:
            self._entries[channel] = entry
            self._entries.move_to_end(channel)
            total = sum(e.nbytes for e in self._entries.values())
            while len(self._entries) > 1 and (len(self._entries) > self.max_models or total > self.max_bytes):
                _, evicted = self._entries.popitem(last=False)
                total -= evicted.nbytes
                self.metrics.evictions.inc()
            self.metrics.models.set(len(self._entries))
            self.metrics.bytes.set(total)

    def refresh(self) -> dict[str, str]:
        """Re-resolve the alias of every cached channel and swap in moved versions.

        Returns ``{channel: new_version}`` for the swapped ones. Forgets remembered
        not-found channels so a newly registered model is picked up on the next ``get``.
        """
        with self._lock:
            self._missing.clear()
            cached = {channel: entry.version for channel, entry in self._entries.items()}
        swapped = {}
        for channel, version in cached.items():
            try:
                info = self.source.resolve(channel, self.alias)
                if info.version == version:
                    continue
                started = time.perf_counter()
                weights = self.source.load(info)
            except ModelStoreError:
                self.metrics.load_failures.labels(channel=channel).inc()
                continue
            self.metrics.load_seconds.observe(time.perf_counter() - started)
            self.metrics.loads.inc()
            with self._lock:
                if channel not in self._entries:
                    continue
            self._store(channel, _Entry(weights, info.version, weights.nbytes))
            swapped[channel] = info.version
        return swapped

    def start(self) -> None:
        """Refresh every ``refresh_seconds`` from a daemon thread until :meth:`stop`."""
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._refresh_loop, name="tmstream-model-refresh", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def _refresh_loop(self) -> None:
        while not self._stop.wait(self.refresh_seconds):
            try:
                self.refresh()
            except Exception:
                log.exception("model refresh failed; keeping the cached versions")
