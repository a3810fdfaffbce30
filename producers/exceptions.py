"""Errors of the producer side: each is a user error the CLI shows as one line."""

from __future__ import annotations

from typing import Any, Literal

from tmstream.ground.exceptions import TmstreamError

MessageReason = Literal[
    "malformed_json", "wrong_schema", "invalid_fields", "nan_or_inf", "out_of_range", "wrong_width"
]


class ProducerError(TmstreamError):
    """Base of the errors raised while registering channels or publishing telemetry."""


class MessageError(ProducerError):
    """A telemetry message that must not be scored; ``reason`` is the dead-letter routing key."""

    def __init__(self, reason: MessageReason, detail: Any) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason: MessageReason = reason
        self.detail = detail


class RegistryError(ProducerError):
    """The channel registry file is malformed or an entry is invalid."""


class UnknownChannelError(RegistryError):
    """A channel that is neither in the registry nor in the data folder."""

    def __init__(self, channels: list[str], known: list[str]) -> None:
        super().__init__(f"unknown channel(s) {', '.join(channels)}; known: {', '.join(known) or 'none'}")
        self.channels = channels


class PublishError(ProducerError):
    """Points were handed to Kafka but not acknowledged (delivery failed or timed out)."""

    exit_code = 4
