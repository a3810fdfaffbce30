"""Retry policies with exponential backoff, on tenacity: bounded, or until the call succeeds.

The callers: Kafka connections (``topics.connect_with_retries``: a few attempts, the wait
doubling, then ``BrokerUnavailableError``), the worker's Redis sink and the work-order service
(each Redis write retried until Redis is back, the wait doubling up to a cap, so an alarm is
delayed while Redis is away, never lost).

A policy is built per call (``retrying``, ``async_retrying``): tenacity keeps the state of an
ongoing retry on the object.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from redis.exceptions import (
    BusyLoadingError,
    MasterDownError,
    NoPermissionError,
    OutOfMemoryError,
    ReadOnlyError,
    TryAgainError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from tenacity import AsyncRetrying, RetryCallState, Retrying, retry_if_exception_type, wait_exponential

# (the error, the attempt that raised it, counted from 1)
OnFailure = Callable[[BaseException, int], None]
# (the error, the seconds slept before the next attempt)
OnRetry = Callable[[BaseException, float], None]


# what a Redis client raises while no server answers (a refused or dropped connection, a timeout)
REDIS_UNAVAILABLE: tuple[type[BaseException], ...] = (RedisConnectionError, RedisTimeoutError, OSError)
# what a server that answers but will not write says: a replica after failover, loading its data,
# over maxmemory, an ACL without the command. Each passes (or an operator fixes it); an alarm
# waits for that rather than being dropped.
REDIS_REFUSING: tuple[type[BaseException], ...] = (
    ReadOnlyError,
    BusyLoadingError,
    MasterDownError,
    TryAgainError,
    OutOfMemoryError,
    NoPermissionError,
)


@dataclass(frozen=True)
class Backoff:
    """Waits of ``first_s``, 2·``first_s``, 4·``first_s``, … (at most ``cap_s``) between attempts;
    at most ``attempts`` attempts (None: until one succeeds)."""

    first_s: float
    cap_s: float | None = None
    attempts: int | None = None


# Redis writes: 0.2 s, 0.4 s, … 3.2 s, then every 5 s until Redis is back
UNTIL_REDIS_IS_BACK = Backoff(first_s=0.2, cap_s=5.0)


def _options(
    errors: tuple[type[BaseException], ...],
    backoff: Backoff,
    on_failure: OnFailure | None,
    on_retry: OnRetry | None,
    give_up: Callable[[], bool] | None,
) -> dict[str, Any]:
    def stop(state: RetryCallState) -> bool:
        spent = backoff.attempts is not None and state.attempt_number >= backoff.attempts
        return spent or (give_up is not None and give_up())

    def after(state: RetryCallState) -> None:
        assert on_failure is not None and state.outcome is not None
        on_failure(_error(state), state.attempt_number)

    def before_sleep(state: RetryCallState) -> None:
        assert on_retry is not None and state.next_action is not None
        on_retry(_error(state), state.next_action.sleep)

    return {
        "retry": retry_if_exception_type(errors),
        "wait": wait_exponential(
            multiplier=backoff.first_s, max=float("inf") if backoff.cap_s is None else backoff.cap_s
        ),
        "stop": stop,
        "reraise": True,  # the last error itself, not tenacity's RetryError
        "after": after if on_failure else None,
        "before_sleep": before_sleep if on_retry else None,
    }


def _error(state: RetryCallState) -> BaseException:
    assert state.outcome is not None
    error = state.outcome.exception()
    assert error is not None
    return error


def retrying(
    errors: tuple[type[BaseException], ...],
    backoff: Backoff,
    *,
    on_failure: OnFailure | None = None,
    on_retry: OnRetry | None = None,
    give_up: Callable[[], bool] | None = None,
) -> Retrying:
    """A policy for ``policy(call)``: ``call`` again after each of ``errors`` (any other error
    propagates at once) until it returns, ``backoff.attempts`` are spent or ``give_up()`` says so;
    then the last error is raised. ``on_failure`` sees every failed attempt (the last included),
    ``on_retry`` every wait before another."""
    return Retrying(**_options(errors, backoff, on_failure, on_retry, give_up))


def async_retrying(
    errors: tuple[type[BaseException], ...],
    backoff: Backoff,
    *,
    on_failure: OnFailure | None = None,
    on_retry: OnRetry | None = None,
    give_up: Callable[[], bool] | None = None,
) -> AsyncRetrying:
    """``retrying`` for a coroutine function (``await policy(call)``), sleeping with asyncio."""
    return AsyncRetrying(**_options(errors, backoff, on_failure, on_retry, give_up))
