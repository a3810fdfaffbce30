"""The shared retry policies (tmstream.ground.retries) and Kafka's bounded connection retries,
with callables that fail a given number of times: no service, no real sleeping."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

import pytest
from kafka.errors import KafkaConnectionError

from tmstream.ground.exceptions import BrokerUnavailableError
from tmstream.ground.retries import REDIS_UNAVAILABLE, UNTIL_REDIS_IS_BACK, Backoff, async_retrying, retrying
from tmstream.ground.settings import load_settings
from tmstream.ground.topics import ConnectPolicy, connect_with_retries


@pytest.fixture
def slept(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The waits tenacity asks for (time.sleep and asyncio.sleep), without waiting."""
    waits: list[float] = []

    async def no_wait(seconds: float) -> None:
        waits.append(seconds)

    monkeypatch.setattr(time, "sleep", waits.append)
    monkeypatch.setattr(asyncio, "sleep", no_wait)
    return waits


def failing(times: int, error: Callable[[], BaseException], result: str = "done") -> Callable[[], str]:
    """A callable that raises ``error()`` on its first ``times`` calls, then returns ``result``."""
    calls = {"n": 0}

    def call() -> str:
        calls["n"] += 1
        if calls["n"] <= times:
            raise error()
        return result

    call.calls = calls  # type: ignore[attr-defined]
    return call


def test_until_success_doubles_the_wait_up_to_the_cap(slept: list[float]) -> None:
    seen: list[tuple[str, float]] = []
    call = failing(8, lambda: ConnectionRefusedError("refused"))
    policy = retrying(REDIS_UNAVAILABLE, UNTIL_REDIS_IS_BACK, on_retry=lambda e, d: seen.append((str(e), d)))
    assert policy(call) == "done"
    assert call.calls["n"] == 9  # type: ignore[attr-defined]
    assert slept == pytest.approx([0.2, 0.4, 0.8, 1.6, 3.2, 5.0, 5.0, 5.0])
    assert seen == [("refused", d) for d in slept]


def test_bounded_attempts_raise_the_last_error_and_report_every_failure(slept: list[float]) -> None:
    failures: list[int] = []
    call = failing(10, lambda: TimeoutError("late"))
    policy = retrying((TimeoutError,), Backoff(0.5, attempts=3), on_failure=lambda e, n: failures.append(n))
    with pytest.raises(TimeoutError, match="late"):
        policy(call)
    assert call.calls["n"] == 3  # type: ignore[attr-defined]
    assert failures == [1, 2, 3]
    assert slept == [0.5, 1.0], "no wait after the last attempt"


def test_other_errors_are_not_retried(slept: list[float]) -> None:
    call = failing(1, lambda: ValueError("bad input"))
    with pytest.raises(ValueError, match="bad input"):
        retrying(REDIS_UNAVAILABLE, UNTIL_REDIS_IS_BACK)(call)
    assert call.calls["n"] == 1 and slept == []  # type: ignore[attr-defined]


def test_give_up_reraises_the_error_at_once(slept: list[float]) -> None:
    retried: list[float] = []
    stopping = {"now": False}

    def call() -> str:
        if retried:
            stopping["now"] = True
        raise ConnectionResetError("gone")

    policy = retrying(
        REDIS_UNAVAILABLE, UNTIL_REDIS_IS_BACK, on_retry=lambda e, d: retried.append(d),
        give_up=lambda: stopping["now"],
    )  # fmt: skip
    with pytest.raises(ConnectionResetError):
        policy(call)
    assert retried == [0.2] and slept == [0.2], "one wait, then the failure after the stop is raised"


def test_async_policy_awaits_until_success(slept: list[float]) -> None:
    calls = {"n": 0}

    async def call() -> int:
        calls["n"] += 1
        if calls["n"] <= 3:
            raise OSError("no route")
        return 42

    async def main() -> int:
        return await async_retrying(REDIS_UNAVAILABLE, Backoff(0.2, cap_s=0.5))(call)

    assert asyncio.run(main()) == 42
    assert slept == pytest.approx([0.2, 0.4, 0.5])


def test_kafka_connection_gives_up_after_its_attempts_with_one_clear_error(
    slept: list[float], caplog: pytest.LogCaptureFixture
) -> None:
    settings = load_settings({"environment": "testing", "kafka": {"bootstrap": "127.0.0.1:9"}})
    timeouts: list[int] = []

    def build(timeout_ms: int) -> object:
        timeouts.append(timeout_ms)
        raise KafkaConnectionError()

    with (
        caplog.at_level(logging.DEBUG, "tmstream.ground.topics"),  # attempts log at DEBUG
        pytest.raises(BrokerUnavailableError) as error,
    ):
        connect_with_retries(settings, build, ConnectPolicy(attempts=3, bootstrap_timeout_ms=700), "admin")
    assert timeouts == [700, 700, 700]
    assert slept == [0.5, 1.0]
    message = str(error.value)
    assert message.startswith("cannot reach Kafka at 127.0.0.1:9 (admin): 3 attempts in ")
    assert message.endswith(
        "last: KafkaConnectionError; is the stack up (tmstream stack up) or TMSTREAM_KAFKA_BOOTSTRAP right?"
    )
    assert error.value.exit_code == 3
    logged = [record.getMessage() for record in caplog.records]
    assert [line.split(": KafkaConnectionError")[0] for line in logged] == [
        f"admin: no Kafka broker at 127.0.0.1:9 (attempt {n}/3)" for n in (1, 2, 3)
    ], logged


def test_kafka_connection_returns_the_client_once_a_broker_answers(slept: list[float]) -> None:
    settings = load_settings({"environment": "testing"})
    build = failing(1, KafkaConnectionError, result="client")
    assert connect_with_retries(settings, lambda _: build(), ConnectPolicy(), "producer") == "client"
    assert slept == [0.5]


def test_a_non_kafka_error_while_connecting_is_not_retried(slept: list[float]) -> None:
    settings = load_settings({"environment": "testing"})
    build = failing(1, lambda: ValueError("bad option"))
    with pytest.raises(ValueError):
        connect_with_retries(settings, lambda _: build(), ConnectPolicy(), "producer")
    assert slept == []
