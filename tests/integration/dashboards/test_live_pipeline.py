"""One short real replay (D-14, which has labelled anomalies) through the scoring worker and the
work-order service, scraped by the session's Prometheus; then:

- the replay's anomaly opened a work order (and a hand-written thermal event, sent with kcat as a
  third-party producer would, opened a P1 one), whose ack/assign/resolve flow works from the CLI
  and the API, with clear errors that change nothing;
- a second service reading the topic from the start (a new consumer group) changes no order;
- the local Prometheus loads the alert rules from deploy/prometheus/rules;
- every panel query and annotation of the four generated boards, variables substituted the way
  Grafana would, returns data from the live Prometheus; and the channel view renders to PNG.

One scenario, one test: every step needs the state the previous one left.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from dashboards.boards import BOARDS
from dashboards.build import board_json, panel_queries, substitute, variable_queries
from dashboards.prometheus_api import PrometheusApi
from dashboards.render import render_channel
from tmstream.ground.scrape_targets import targets_dir

CHANNEL, SPACECRAFT = "D-14", "MSL"
ALERTS = {
    "TmstreamCriticalSubsystemAnomaly",
    "TmstreamChannelStalled",
    "TmstreamConsumerLagHigh",
    "TmstreamWorkerDown",
    "TmstreamDeadLettersRising",
    "TmstreamModelLoadFailures",
    "TmstreamWorkOrderOverdue",
}


def http(method: str, url: str, body: dict[str, Any] | None = None) -> tuple[int, Any]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(
        url, data=data, method=method, headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Service:
    """A real `tmstream workorders serve` process of this run."""

    def __init__(self, pipeline, group: str, name: str) -> None:
        self.port = free_port()
        self.log = (pipeline.folder / f"{name}.log").open("wb")
        env = {**os.environ, **pipeline.env, "TMSTREAM_WORKORDERS_GROUP": group}
        command = [
            sys.executable,
            "-m",
            "tmstream",
            "workorders",
            "serve",
            "--api-port",
            str(self.port),
            "--name",
            name,
        ]
        self.process = subprocess.Popen(command, stdout=self.log, stderr=subprocess.STDOUT, env=env)
        self.url = f"http://127.0.0.1:{self.port}"

    def health(self) -> dict[str, Any] | None:
        try:
            return http("GET", f"{self.url}/health")[1]
        except OSError:
            return None

    def stop(self) -> None:
        """End the service; a second call (the test's finalizer after its own stop) does nothing."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(timeout=30)
        self.log.close()


def thermal_event(run_id: str) -> str:
    return json.dumps({
        "schema": "tmstream.anomaly.v1", "event_id": f"t12{run_id}", "channel": "T-12", "spacecraft": "MSL",
        "subsystem": "thermal", "start_index": 10, "end_index": 40, "start_time_ms": 0, "end_time_ms": 0,
        "score": 1.7, "severity": "critical", "threshold": 0.2, "max_error": 0.9, "direction": "high",
        "model_version": "1", "detected_at_ms": int(time.time() * 1000), "status": "open",
    })  # fmt: skip


def cli_orders(pipeline) -> dict[str, dict[str, Any]]:
    listed = pipeline.tmstream("workorders", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    return {order["channel"]: order for order in json.loads(listed.stdout)}


def operator_flow(pipeline, service: Service, order_id: str) -> None:
    """ack (CLI) → assign (API) → resolve (CLI), with every refusal leaving the order as it was."""
    acked = pipeline.tmstream("workorders", "ack", order_id, "--by", "ana", "--json")
    assert acked.returncode == 0, acked.stderr
    assert json.loads(acked.stdout)["state"] == "acknowledged"

    before = http("GET", f"{service.url}/workorders/{order_id}")
    assert before[0] == 200 and before[1]["assignee"] == "ana"
    status, body = http("POST", f"{service.url}/workorders/{order_id}/ack", {"by": "bo"})
    assert status == 409 and "only an open order" in body["error"]
    status, body = http("GET", f"{service.url}/workorders/wo-does-not-exist")
    assert status == 404 and "wo-does-not-exist" in body["error"]
    status, body = http("POST", f"{service.url}/workorders/{order_id}/assign", {})
    assert status == 400 and "assignee" in body["error"]
    assert http("GET", f"{service.url}/workorders/{order_id}") == before

    status, body = http("POST", f"{service.url}/workorders/{order_id}/assign", {"assignee": "bo"})
    assert (status, body["assignee"]) == (200, "bo")
    resolved = pipeline.tmstream(
        "workorders", "resolve", order_id, "--note", "reset the bus", "--by", "bo", "--json"
    )
    assert resolved.returncode == 0, resolved.stderr
    assert json.loads(resolved.stdout)["state"] == "resolved"

    shown = pipeline.tmstream("workorders", "show", order_id, "--json").stdout
    again = pipeline.tmstream("workorders", "ack", order_id)
    assert again.returncode == 2 and "is resolved" in again.stderr and "Traceback" not in again.stderr
    status, body = http("POST", f"{service.url}/workorders/{order_id}/resolve", {"note": "twice"})
    assert status == 409
    missing = pipeline.tmstream("workorders", "show", "wo-does-not-exist")
    assert missing.returncode == 2 and "no work order 'wo-does-not-exist'" in missing.stderr
    assert pipeline.tmstream("workorders", "show", order_id, "--json").stdout == shown
    listed = http("GET", f"{service.url}/workorders?state=resolved")[1]
    assert [(o["id"], o["notes"][0]["text"]) for o in listed] == [(order_id, "reset the bus")]


def wait(check, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def variable_values(
    api: PrometheusApi, board: dict[str, Any], start: float, end: float
) -> dict[str, list[str]]:
    """Each variable's options as Grafana lists them (``label_values(metric, label)``), in order."""
    values: dict[str, list[str]] = {}
    for name, query in variable_queries(board).items():
        inner = query.removeprefix("label_values(").removesuffix(")")
        metric, label = (part.strip() for part in inner.rsplit(",", 1))
        chosen = {key: (CHANNEL if key == "channel" else SPACECRAFT) for key in values}
        values[name] = api.label_values(label, substitute(metric, chosen), start, end)
    return values


def queries_without_data(api: PrometheusApi, start: float, end: float) -> tuple[int, list[str]]:
    """Run every panel and annotation query of every board; returns (queries run, those with no data)."""
    grafana_builtins = {"__rate_interval": "10s", "__range": f"{int(end - start)}s"}
    run, empty = 0, []
    for name in BOARDS:
        board = board_json(name)
        options = variable_values(api, board, start, end)
        selected = {"spacecraft": SPACECRAFT, "channel": CHANNEL}
        for variable, listed in options.items():
            assert selected[variable] in listed, (
                f"{name}: ${variable} does not offer {selected[variable]}: {listed}"
            )
        for panel_query in panel_queries(board):
            # Repeated and multi-value panels are checked for the selected value: other values may
            # come from other runs on the shared stack, which can end at any moment.
            expr = substitute(panel_query.expr, {**grafana_builtins, **selected})
            result = api.instant(expr, end) if panel_query.instant else api.range(expr, start, end, 1)
            run += 1
            if not result:
                empty.append(f"{name} / {panel_query.panel}: {expr}")
    return run, empty


def test_replay_to_work_orders_alerts_and_every_panel(
    pipeline, stack, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    start = time.time()
    api = PrometheusApi(stack.prometheus.effective_url)
    assert targets_dir(pipeline.settings) == targets_dir(stack), "worker targets go to the session Prometheus"
    worker = f"w-{pipeline.run_id}"  # its own scrape target file: no other run's worker replaces it
    pipeline.start_worker(worker)
    service = Service(pipeline, f"tmstream-workorders-r{pipeline.run_id}", f"wo-{pipeline.run_id}")
    request.addfinalizer(service.stop)  # a failing assertion must not leave the service running
    pipeline.wait_ready(worker)
    wait(service.health, 60, "the work-order service")

    replay = pipeline.tmstream("replay", "--channels", CHANNEL, "--rate", "200")
    assert replay.returncode == 0, replay.stderr
    bootstrap = pipeline.settings.kafka.bootstrap_servers
    kcat = ["kcat", "-P", "-b", bootstrap, "-t"]
    telemetry_topic = pipeline.topic(CHANNEL, SPACECRAFT)
    anomalies_topic = pipeline.env["TMSTREAM_KAFKA_ANOMALIES_TOPIC"]
    bad = subprocess.run([*kcat, telemetry_topic, "-k", CHANNEL], input="{not json", text=True, timeout=30)
    event = thermal_event(pipeline.run_id)
    thermal = subprocess.run([*kcat, anomalies_topic, "-k", "T-12"], input=event, text=True, timeout=30)
    assert bad.returncode == thermal.returncode == 0

    orders = wait(lambda: (found := cli_orders(pipeline)) and {CHANNEL, "T-12"} <= set(found) and found, 120,
                  "work orders of D-14 and T-12")  # fmt: skip
    events = pipeline.topic_events()
    d14 = orders[CHANNEL]
    assert set(d14["event_ids"]) == {e["event_id"] for e in events if e["channel"] == CHANNEL}
    assert (d14["spacecraft"], d14["subsystem"], d14["state"]) == (SPACECRAFT, "data_handling", "open")
    assert d14["priority"] in ("P2", "P3"), "data handling is not a critical subsystem"
    assert (orders["T-12"]["priority"], orders["T-12"]["state"]) == ("P1", "open")

    operator_flow(pipeline, service, d14["id"])
    service.stop()
    settled = cli_orders(pipeline)
    again = Service(pipeline, f"tmstream-workorders-r{pipeline.run_id}-again", f"wo-{pipeline.run_id}-again")
    request.addfinalizer(again.stop)
    wait(
        lambda: (h := again.health()) and h["events_consumed"] >= len(pipeline.topic_events()),
        60,
        "the topic read again",
    )
    assert cli_orders(pipeline) == settled, "re-reading every event changed an order"

    resolved = f'tmstream_workorders{{state="resolved",instance="wo-{pipeline.run_id}-again"}} > 0'
    wait(lambda: api.instant(resolved, time.time()), 30, "maintenance metrics scraped")
    prometheus = stack.prometheus.effective_url
    assert http("POST", f"{prometheus}/-/reload")[0] == 200
    groups = http("GET", f"{prometheus}/api/v1/rules")[1]["data"]["groups"]
    assert {rule["name"] for group in groups for rule in group["rules"]} >= ALERTS

    end = time.time()
    run, empty = queries_without_data(api, start, end)
    assert not empty, f"{len(empty)} of {run} queries returned no data:\n" + "\n".join(empty)
    print(f"{run} panel queries, all with data")
    samples = render_channel(api, SPACECRAFT, CHANNEL, start, end, tmp_path / "channel.png")
    assert samples > 20 and (tmp_path / "channel.png").stat().st_size > 10_000
    again.stop()
