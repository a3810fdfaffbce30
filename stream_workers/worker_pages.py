"""The worker's web pages: ``/metrics``, ``/health``, ``/ready``, ``/models`` (Faust's web server).

Neither page runs on the scoring thread or blocks the event loop: ``/metrics`` renders in a thread
(a large fleet's page takes a while), and ``/ready`` asks the model registry on a thread of its own,
one query at a time and within ``READY_PROBE_S`` (a hung MLflow must not pile up probe threads).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import faust
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from model_store.cache import ModelCache
from model_store.registry import ModelRegistry

READY_PROBE_S = 5.0


class RegistryProbe:
    """Whether the model registry answers, asked at most once at a time."""

    def __init__(self, registry: ModelRegistry) -> None:
        self.registry = registry
        self.executor = ThreadPoolExecutor(1, thread_name_prefix="tmstream-ready-probe")
        self.pending: asyncio.Future[object] | None = None

    async def answers(self) -> bool:
        if self.pending is None or self.pending.done():
            loop = asyncio.get_running_loop()
            self.pending = loop.run_in_executor(self.executor, self.registry.channels)
        try:
            await asyncio.wait_for(asyncio.shield(self.pending), READY_PROBE_S)
        except Exception:  # unreachable, slow or failing: not ready, said in the body
            return False
        return True

    def close(self) -> None:
        self.executor.shutdown(wait=False)


def add_pages(
    app: faust.App, name: str, probe: RegistryProbe, cache: ModelCache, modes: Callable[[], dict[str, Any]]
) -> None:
    """``modes``: each scored channel's model version, inference mode and why (``StreamScorer.modes``)."""

    async def metrics(web: Any, request: Any) -> Any:
        content_type = CONTENT_TYPE_LATEST.split(";")[0] + "; version=0.0.4"
        return web.bytes(await asyncio.to_thread(generate_latest), content_type=content_type)

    async def health(web: Any, request: Any) -> Any:
        return web.json({"status": "ok", "worker": name})

    async def ready(web: Any, request: Any) -> Any:
        assigned = len(app.consumer.assignment())
        registry = await probe.answers()
        body = {
            "ready": assigned > 0 and registry,
            "assigned_partitions": assigned,
            "registry_reachable": registry,
        }
        return web.json(body, status=200 if body["ready"] else 503)

    async def models(web: Any, request: Any) -> Any:
        return web.json({"models": cache.versions(), "bytes": cache.nbytes, "inference": modes()})

    # Faust binds page functions to its View class; plain functions keep their closures
    for path, page in {"/metrics": metrics, "/health": health, "/ready": ready, "/models": models}.items():
        app.page(path)(page)
