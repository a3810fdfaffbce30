"""The work-order JSON API (aiohttp), served by ``tmstream workorders serve`` beside ``/metrics``.

Routes: ``GET /workorders[?state=&priority=]``, ``GET /workorders/{id}``,
``POST /workorders/{id}/ack`` ``{"by"?}``, ``POST /workorders/{id}/assign`` ``{"assignee"}``,
``POST /workorders/{id}/resolve`` ``{"note", "by"?}``. Errors are ``{"error": "..."}`` with 404
(unknown id), 409 (illegal transition) or 400 (bad input); nothing changes on an error.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from workorders.errors import WorkOrderError
from workorders.model import PRIORITIES, STATES, WorkOrder
from workorders.store import WorkOrderStore, now_ms

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _order(order: WorkOrder) -> web.Response:
    return web.json_response(order.to_json(now_ms()))


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


async def _body(request: web.Request) -> dict[str, Any]:
    if not request.can_read_body:
        return {}
    try:
        body = await request.json()
    except json.JSONDecodeError as exc:
        raise WorkOrderError(f"the request body is not JSON: {exc}") from exc
    if not isinstance(body, dict):
        raise WorkOrderError("the request body must be a JSON object")
    return body


def _text(body: dict[str, Any], key: str, required: bool) -> str | None:
    value = body.get(key)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value.strip():
        raise WorkOrderError(f"{key!r} must be a non-empty string")
    return value


@web.middleware
async def _errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except WorkOrderError as exc:
        return _error(exc.http_status, str(exc))


def build_api(store: WorkOrderStore, health: Callable[[], dict[str, Any]]) -> web.Application:
    """The application; store calls are blocking Redis round trips, so they run in threads."""

    async def list_orders(request: web.Request) -> web.Response:
        state, priority = request.query.get("state"), request.query.get("priority")
        if state is not None and state not in STATES:
            raise WorkOrderError(f"state must be one of {', '.join(STATES)}")
        if priority is not None and priority not in PRIORITIES:
            raise WorkOrderError(f"priority must be one of {', '.join(PRIORITIES)}")
        orders = await asyncio.to_thread(store.orders, state, priority)
        now = now_ms()
        return web.json_response([order.to_json(now) for order in orders])

    async def show(request: web.Request) -> web.Response:
        return _order(await asyncio.to_thread(store.get, request.match_info["id"]))

    async def ack(request: web.Request) -> web.Response:
        who = _text(await _body(request), "by", required=False)
        return _order(await asyncio.to_thread(store.acknowledge, request.match_info["id"], who))

    async def assign(request: web.Request) -> web.Response:
        assignee = _text(await _body(request), "assignee", required=True) or ""
        return _order(await asyncio.to_thread(store.assign, request.match_info["id"], assignee))

    async def resolve(request: web.Request) -> web.Response:
        body = await _body(request)
        note = _text(body, "note", required=True) or ""
        who = _text(body, "by", required=False)
        return _order(await asyncio.to_thread(store.resolve, request.match_info["id"], note, who))

    async def metrics(request: web.Request) -> web.Response:
        payload = await asyncio.to_thread(generate_latest)
        return web.Response(body=payload, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def healthz(request: web.Request) -> web.Response:
        return web.json_response(health())

    app = web.Application(middlewares=[_errors])
    app.router.add_get("/workorders", list_orders)
    app.router.add_get("/workorders/{id}", show)
    app.router.add_post("/workorders/{id}/ack", ack)
    app.router.add_post("/workorders/{id}/assign", assign)
    app.router.add_post("/workorders/{id}/resolve", resolve)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/health", healthz)
    return app
