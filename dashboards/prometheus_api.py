"""The few Prometheus HTTP API calls the dashboard checks and the channel render need."""

from __future__ import annotations

import json
import urllib.parse
import urllib.request
from typing import Any

from tmstream.ground.exceptions import TmstreamError


class PrometheusQueryError(TmstreamError):
    """Prometheus rejected a query or could not be reached."""


class PrometheusApi:
    def __init__(self, url: str, timeout: float = 10) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout

    def _get(self, path: str, params: dict[str, Any]) -> Any:
        address = f"{self.url}{path}?{urllib.parse.urlencode(params, doseq=True)}"
        try:
            with urllib.request.urlopen(address, timeout=self.timeout) as response:
                body = json.loads(response.read())
        except urllib.error.HTTPError as exc:
            detail = json.loads(exc.read() or b"{}").get("error", exc.reason)
            raise PrometheusQueryError(
                f"prometheus rejected {params.get('query', path)!r}: {detail}"
            ) from exc
        except OSError as exc:
            raise PrometheusQueryError(f"prometheus at {self.url} is not reachable: {exc}") from exc
        return body["data"]

    def instant(self, expr: str, at: float) -> list[dict[str, Any]]:
        data = self._get("/api/v1/query", {"query": expr, "time": at})
        return list(data["result"]) if data["resultType"] in ("vector", "matrix") else [data]

    def range(self, expr: str, start: float, end: float, step: float) -> list[dict[str, Any]]:
        data = self._get("/api/v1/query_range", {"query": expr, "start": start, "end": end, "step": step})
        return list(data["result"])

    def label_values(self, label: str, match: str, start: float, end: float) -> list[str]:
        values = self._get(f"/api/v1/label/{label}/values", {"match[]": match, "start": start, "end": end})
        return sorted(values)
