"""Work-order errors a user acts on (the CLI prints one line; the API maps them to 404/409/400)."""

from __future__ import annotations

from tmstream.ground.exceptions import TmstreamError


class WorkOrderError(TmstreamError):
    """Base of the work-order errors; the API answers ``http_status``."""

    http_status = 400


class WorkOrderNotFound(WorkOrderError):
    http_status = 404

    def __init__(self, order_id: str) -> None:
        super().__init__(f"no work order {order_id!r} (see `tmstream workorders list`)")
        self.order_id = order_id


class IllegalTransition(WorkOrderError):
    """The order's state does not allow the action; nothing was changed."""

    http_status = 409
